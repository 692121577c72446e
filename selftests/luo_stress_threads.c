// SPDX-License-Identifier: GPL-2.0
/*
 * luo_stress_threads: NTHREADS threads hammer the one shared /dev/liveupdate
 * fd (and each other's session fds) at the same time.
 *
 * Stage 1:
 *   race     every thread creates the same NRACE names; exactly one create
 *            per name succeeds, the others get EEXIST.
 *   churn    per thread ROUNDS x: create a session, create it again (EEXIST),
 *            preserve FILES memfds, a taken token again (EEXIST), a
 *            preserved memfd again under a new token (EBUSY), NSHARED memfds
 *            that every thread fights over (0 or EBUSY), misuse of an
 *            outgoing session (EINVAL/ENOENT), close (unpreserves all). The
 *            same memfds are preserved again in the next round.
 *   keep     per thread KEEP sessions of KEEP_FILES patterned memfds, the
 *            first NKEEP_RACE race sessions, and "st-shared" with the shared
 *            memfds (which must all be free again) stay for the kexec.
 * Stage 2:
 *   retrieve every thread retrieves every kept session at once: exactly one
 *            wins, the others get EINVAL (the session is retrieved).
 *   files    every thread retrieves every file of every session at once
 *            (through the winner's fd): all get the same file, contents
 *            checked; a retrieved file cannot be preserved (EBUSY).
 *   finish   two threads finish each session at once (both 0); then its
 *            tokens are gone (ENOENT), its files can be preserved again,
 *            retrieving it again is EINVAL until closed, ENOENT after.
 *   churn    ROUNDS/2 more rounds of stage-1 churn.
 * At the end of each stage the test scans kmemleak (see kmemleak_*): the
 * debug check fails on any leak found after the test.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/luo.h"

#define NTHREADS 8
#define ROUNDS 40
#define FILES 8
#define NRACE 24
#define NKEEP_RACE 4
#define NSHARED 4
#define KEEP 3
#define KEEP_FILES 3
#define STATE "stress-threads-state"
#define SHARED_SESSION "st-shared"

#define TOK(k) (0x1000ULL + (uint64_t)(k))
#define RACE_TOKEN(n) (0x7000ULL + (uint64_t)(n))
#define SHARED_TOKEN(s) (0x5000ULL + (uint64_t)(s))
#define KEEP_TOKEN(t, j, k) (0xabc00000ULL + (uint64_t)(t) * 0x10000 + (uint64_t)(j) * 0x100 + (k))

#include "lib/kmemleak.h"

/* ------------------------------------------------------------------ common */
static int luo_fd;
static pthread_barrier_t barrier;
static int shared_mfd[NSHARED];
static atomic_long n_preserve, n_busy_shared;

static void wait_all(void)
{
	int r = pthread_barrier_wait(&barrier);

	T_CHECK(r == 0 || r == PTHREAD_BARRIER_SERIAL_THREAD, "barrier: %d", r);
}

static void run_threads(void *(*fn)(void *))
{
	pthread_t th[NTHREADS];
	long t;
	int r;

	r = pthread_barrier_init(&barrier, NULL, NTHREADS);
	T_CHECK(r == 0, "barrier init: %s", strerror(r));
	for (t = 0; t < NTHREADS; t++) {
		r = pthread_create(&th[t], NULL, fn, (void *)t);
		T_CHECK(r == 0, "pthread_create: %s", strerror(r));
	}
	for (t = 0; t < NTHREADS; t++)
		pthread_join(th[t], NULL);
	pthread_barrier_destroy(&barrier);
}

static size_t keep_len(int t, int j, int k)
{
	return 1 + (size_t)((t * 131 + j * 17 + k * 7) % 3) * 4096 +
	       (size_t)((t * 1009 + j * 311 + k * 53) % 4096);
}

static uint64_t keep_seed(int t, int j, int k)
{
	return 0x51ee0000ULL + (uint64_t)t * 1000 + (uint64_t)j * 10 + (uint64_t)k;
}

static void keep_name(char *buf, size_t len, int t, int j)
{
	snprintf(buf, len, "st-keep-%d-%d", t, j);
}

static void race_name(char *buf, size_t len, int n)
{
	snprintf(buf, len, "st-race-%02d", n);
}

static void shared_fill(void *buf, size_t len, int s)
{
	pattern_fill(buf, len, 0x5a5a0000ULL + (uint64_t)s, 0);
}

#define SHARED_LEN 5000

static void check_contents(int fd, const void *want, size_t len, const char *what)
{
	size_t got_len = 0;
	unsigned char *got = memfd_slurp(fd, &got_len);

	T_CHECK(got != NULL, "%s: cannot read", what);
	T_CHECK(got_len == len && !memcmp(got, want, len),
		"%s: contents differ (%zu bytes, want %zu)", what, got_len, len);
	free(got);
}

/*
 * One churn round: every step either succeeds or fails with exactly the
 * errno the core documents.
 */
static void churn_round(int t, int i, const char *prefix, int *mfds)
{
	char name[64], got[LIVEUPDATE_SESSION_NAME_LENGTH];
	int sfd, extra, k, s, r;

	snprintf(name, sizeof(name), "%s%d-%03d", prefix, t, i);
	sfd = luo_session_create(luo_fd, name);
	T_CHECK(sfd >= 0, "create %s: %s", name, t_errname(-sfd));
	T_EXPECT_RET(luo_session_create(luo_fd, name), -EEXIST);
	for (k = 0; k < FILES; k++) {
		T_EXPECT_RET(luo_preserve_fd(sfd, mfds[k], TOK(k)), 0);
		n_preserve++;
	}
	/* A taken token, with another file. */
	extra = memfd_new("st-extra", "x", 1);
	T_CHECK(extra >= 0, "memfd: %s", t_errname(-extra));
	T_EXPECT_RET(luo_preserve_fd(sfd, extra, TOK(i % FILES)), -EEXIST);
	/* A preserved file, under a new token. */
	T_EXPECT_RET(luo_preserve_fd(sfd, mfds[i % FILES], 0xdead0000ULL + i), -EBUSY);
	/* Not a file LUO can preserve: no handler takes a session fd. */
	T_EXPECT_RET(luo_preserve_fd(sfd, sfd, 0xbeef0000ULL + i), -ENOENT);
	T_EXPECT_RET(luo_preserve_fd(sfd, -1, 0xbeef1000ULL + i), -EBADF);
	/* The extra file under a free token works, and goes with the session. */
	T_EXPECT_RET(luo_preserve_fd(sfd, extra, 0xe0000ULL + i), 0);
	n_preserve++;
	close(extra);
	/* Files that every thread fights over. */
	for (s = 0; s < NSHARED; s++) {
		r = luo_preserve_fd(sfd, shared_mfd[(s + t) % NSHARED],
				    SHARED_TOKEN((s + t) % NSHARED));
		T_CHECK(r == 0 || r == -EBUSY, "preserve shared memfd in %s: %s",
			name, t_errname(-r));
		if (r == 0)
			n_preserve++;
		else
			n_busy_shared++;
	}
	if (i % 4 == 0) {
		/* Outgoing sessions cannot be retrieved or finished. */
		T_EXPECT_RET(luo_retrieve_fd(sfd, TOK(0)), -EINVAL);
		T_EXPECT_RET(luo_finish(sfd), -EINVAL);
		T_EXPECT_RET(luo_session_retrieve(luo_fd, name), -ENOENT);
		T_EXPECT_RET(luo_get_name(sfd, got, sizeof(got)), 0);
		T_CHECK(!strcmp(got, name), "session %s calls itself %s", name, got);
	}
	/* Unpreserves everything. */
	close(sfd);
}

static void open_private_memfds(int t, int *mfds)
{
	char text[32];
	int k;

	for (k = 0; k < FILES; k++) {
		snprintf(text, sizeof(text), "thread %d file %d", t, k);
		mfds[k] = memfd_new("st-churn", text, strlen(text));
		T_CHECK(mfds[k] >= 0, "memfd: %s", t_errname(-mfds[k]));
	}
}

/* ----------------------------------------------------------------- stage 1 */
static atomic_int race_wins[NRACE];
static int race_fd[NRACE];

static void *stage1_thread(void *arg)
{
	int t = (int)(long)arg, mfds[FILES], i, j, k, n, fd, sfd;
	unsigned char *buf = malloc(3 * 4096 + 4096);
	char name[64];

	T_CHECK(buf != NULL, "malloc");
	open_private_memfds(t, mfds);

	/* Race: the same names from every thread at once. */
	wait_all();
	for (i = 0; i < NRACE; i++) {
		n = (i + 3 * t) % NRACE;
		race_name(name, sizeof(name), n);
		fd = luo_session_create(luo_fd, name);
		if (fd >= 0) {
			race_wins[n]++;
			race_fd[n] = fd;
			T_EXPECT_RET(memfd_preserve_buf(fd, RACE_TOKEN(n), name, strlen(name)), 0);
		} else {
			T_CHECK(fd == -EEXIST, "create %s: %s, expected EEXIST or success",
				name, t_errname(-fd));
		}
	}
	wait_all();
	if (t == 0) {
		for (n = 0; n < NRACE; n++)
			T_CHECK(race_wins[n] == 1, "%d creates of race session %d succeeded",
				race_wins[n], n);
		for (n = NKEEP_RACE; n < NRACE; n++)
			close(race_fd[n]);
		t_info("race: each of %d names created exactly once", NRACE);
	}
	wait_all();

	/* Churn. */
	for (i = 0; i < ROUNDS; i++)
		churn_round(t, i, "st-c", mfds);
	wait_all();
	/* Every churn session is gone: its name is free. */
	for (i = 0; i < ROUNDS; i += 7) {
		snprintf(name, sizeof(name), "st-c%d-%03d", t, i);
		sfd = luo_session_create(luo_fd, name);
		T_CHECK(sfd >= 0, "create %s again: %s", name, t_errname(-sfd));
		close(sfd);
	}
	/* The closed race names are free again too. */
	for (n = NKEEP_RACE + t; n < NRACE; n += NTHREADS) {
		race_name(name, sizeof(name), n);
		sfd = luo_session_create(luo_fd, name);
		T_CHECK(sfd >= 0, "create %s again: %s", name, t_errname(-sfd));
		close(sfd);
	}

	/* Keep: sessions for the kexec (left open). */
	for (j = 0; j < KEEP; j++) {
		keep_name(name, sizeof(name), t, j);
		sfd = luo_session_create(luo_fd, name);
		T_CHECK(sfd >= 0, "create %s: %s", name, t_errname(-sfd));
		for (k = 0; k < KEEP_FILES; k++) {
			pattern_fill(buf, keep_len(t, j, k), keep_seed(t, j, k), 0);
			T_EXPECT_RET(memfd_preserve_buf(sfd, KEEP_TOKEN(t, j, k), buf,
							keep_len(t, j, k)), 0);
		}
	}
	for (k = 0; k < FILES; k++)
		close(mfds[k]);
	free(buf);
	return NULL;
}

static void stage1(int fd)
{
	unsigned char buf[SHARED_LEN];
	int s, sfd;

	luo_fd = fd;
	kmemleak_start(1);
	t_want_fds(4096);
	for (s = 0; s < NSHARED; s++) {
		shared_fill(buf, sizeof(buf), s);
		shared_mfd[s] = memfd_new("st-shared", buf, sizeof(buf));
		T_CHECK(shared_mfd[s] >= 0, "memfd: %s", t_errname(-shared_mfd[s]));
	}
	run_threads(stage1_thread);
	t_info("stage 1: %ld preserves (and as many unpreserves), %ld EBUSY on shared memfds",
	       (long)n_preserve, (long)n_busy_shared);

	/* Every shared memfd is free again, and goes across in one session. */
	sfd = luo_session_create(luo_fd, SHARED_SESSION);
	T_CHECK(sfd >= 0, "create %s: %s", SHARED_SESSION, t_errname(-sfd));
	for (s = 0; s < NSHARED; s++) {
		T_EXPECT_RET(luo_preserve_fd(sfd, shared_mfd[s], SHARED_TOKEN(s)), 0);
		close(shared_mfd[s]);
	}
	t_info("stage 1: %d thread sessions, %d race sessions and '%s' kept",
	       NTHREADS * KEEP, NKEEP_RACE, SHARED_SESSION);
	/* kmemleak_final() runs at exit, after the holder took the fds. */
}

/* ----------------------------------------------------------------- stage 2 */
#define NKEPT (NTHREADS * KEEP + NKEEP_RACE + 1)

struct kept {
	char name[64];
	int nfiles;
	uint64_t token[KEEP_FILES > NSHARED ? KEEP_FILES : NSHARED];
	size_t len[KEEP_FILES > NSHARED ? KEEP_FILES : NSHARED];
	uint64_t seed[KEEP_FILES > NSHARED ? KEEP_FILES : NSHARED];
	int kind; /* 0 patterned, 1 race (name as contents), 2 shared */
	atomic_int wins;
	int fd;
	atomic_ulong ino[KEEP_FILES > NSHARED ? KEEP_FILES : NSHARED];
	int held_fd; /* a retrieved file, kept open past finish */
};

static struct kept kept[NKEPT];

static void build_kept_table(void)
{
	int t, j, k, n, i = 0;

	for (t = 0; t < NTHREADS; t++)
		for (j = 0; j < KEEP; j++, i++) {
			keep_name(kept[i].name, sizeof(kept[i].name), t, j);
			kept[i].nfiles = KEEP_FILES;
			for (k = 0; k < KEEP_FILES; k++) {
				kept[i].token[k] = KEEP_TOKEN(t, j, k);
				kept[i].len[k] = keep_len(t, j, k);
				kept[i].seed[k] = keep_seed(t, j, k);
			}
		}
	for (n = 0; n < NKEEP_RACE; n++, i++) {
		race_name(kept[i].name, sizeof(kept[i].name), n);
		kept[i].kind = 1;
		kept[i].nfiles = 1;
		kept[i].token[0] = RACE_TOKEN(n);
		kept[i].len[0] = strlen(kept[i].name);
	}
	snprintf(kept[i].name, sizeof(kept[i].name), "%s", SHARED_SESSION);
	kept[i].kind = 2;
	kept[i].nfiles = NSHARED;
	for (k = 0; k < NSHARED; k++) {
		kept[i].token[k] = SHARED_TOKEN(k);
		kept[i].len[k] = SHARED_LEN;
	}
	for (i = 0; i < NKEPT; i++)
		kept[i].held_fd = -1;
}

static void expected(const struct kept *s, int k, unsigned char *buf)
{
	if (s->kind == 0)
		pattern_fill(buf, s->len[k], s->seed[k], 0);
	else if (s->kind == 1)
		memcpy(buf, s->name, s->len[k]);
	else
		shared_fill(buf, s->len[k], k);
}

static void *stage2_thread(void *arg)
{
	int t = (int)(long)arg, i, ii, k, fd, out, mfds[FILES];
	unsigned char *buf = malloc(4 * 4096);
	char what[96], got[LIVEUPDATE_SESSION_NAME_LENGTH];
	struct stat st;

	T_CHECK(buf != NULL, "malloc");

	/* Everyone retrieves every session at once: one wins, others EINVAL. */
	wait_all();
	for (ii = 0; ii < NKEPT; ii++) {
		i = (ii + 5 * t) % NKEPT;
		fd = luo_session_retrieve(luo_fd, kept[i].name);
		if (fd >= 0) {
			kept[i].wins++;
			kept[i].fd = fd;
		} else {
			T_CHECK(fd == -EINVAL, "retrieve %s: %s, expected EINVAL or success",
				kept[i].name, t_errname(-fd));
		}
	}
	wait_all();
	if (t == 0) {
		for (i = 0; i < NKEPT; i++)
			T_CHECK(kept[i].wins == 1, "%s retrieved %d times", kept[i].name,
				kept[i].wins);
		t_info("retrieve: each of %d sessions retrieved exactly once", NKEPT);
	}
	wait_all();

	/* Everyone retrieves every file at once, through the winner's fd. */
	for (ii = 0; ii < NKEPT; ii++) {
		i = (ii + 3 * t) % NKEPT;
		for (k = 0; k < kept[i].nfiles; k++) {
			unsigned long zero = 0;

			fd = luo_retrieve_fd(kept[i].fd, kept[i].token[k]);
			snprintf(what, sizeof(what), "%s token %#llx", kept[i].name,
				 (unsigned long long)kept[i].token[k]);
			T_CHECK(fd >= 0, "retrieve %s: %s", what, t_errname(-fd));
			T_CHECK(fstat(fd, &st) == 0, "fstat %s", what);
			/* Every retrieve of a token hands out the same file. */
			if (!atomic_compare_exchange_strong(&kept[i].ino[k], &zero,
							    (unsigned long)st.st_ino))
				T_CHECK(zero == (unsigned long)st.st_ino,
					"%s: inode %lu, another thread got %lu", what,
					(unsigned long)st.st_ino, zero);
			expected(&kept[i], k, buf);
			check_contents(fd, buf, kept[i].len[k], what);
			close(fd);
		}
		T_EXPECT_RET(luo_retrieve_fd(kept[i].fd, 0xffffffffULL), -ENOENT);
		T_EXPECT_RET(luo_get_name(kept[i].fd, got, sizeof(got)), 0);
		T_CHECK(!strcmp(got, kept[i].name), "%s calls itself %s", kept[i].name, got);
	}
	wait_all();

	/* The sessions of thread t: incoming sessions cannot preserve, and
	 * retrieved files cannot be preserved again before finish. */
	for (i = t; i < NKEPT; i += NTHREADS) {
		kept[i].held_fd = luo_retrieve_fd(kept[i].fd, kept[i].token[0]);
		T_CHECK(kept[i].held_fd >= 0, "retrieve %s: %s", kept[i].name,
			t_errname(-kept[i].held_fd));
		T_EXPECT_RET(luo_preserve_fd(kept[i].fd, kept[i].held_fd, 1), -EINVAL);
		/* An outgoing session may have the name of an incoming one. */
		out = luo_session_create(luo_fd, kept[i].name);
		T_CHECK(out >= 0, "create outgoing %s: %s", kept[i].name, t_errname(-out));
		T_EXPECT_RET(luo_preserve_fd(out, kept[i].held_fd, 1), -EBUSY);
		close(out);
	}
	wait_all();

	/* Two threads finish each session at once. */
	for (i = 0; i < NKEPT; i++)
		if (i % NTHREADS == t || (i + 1) % NTHREADS == t)
			T_EXPECT_RET(luo_finish(kept[i].fd), 0);
	wait_all();

	for (i = t; i < NKEPT; i += NTHREADS) {
		/* Finished: the tokens are gone, the files are free. */
		T_EXPECT_RET(luo_retrieve_fd(kept[i].fd, kept[i].token[0]), -ENOENT);
		out = luo_session_create(luo_fd, kept[i].name);
		T_CHECK(out >= 0, "create outgoing %s: %s", kept[i].name, t_errname(-out));
		T_EXPECT_RET(luo_preserve_fd(out, kept[i].held_fd, 1), 0);
		close(out);
		expected(&kept[i], 0, buf);
		check_contents(kept[i].held_fd, buf, kept[i].len[0], kept[i].name);
		close(kept[i].held_fd);
		/* Retrieved until its fd is closed, then gone. */
		T_EXPECT_RET(luo_session_retrieve(luo_fd, kept[i].name), -EINVAL);
		close(kept[i].fd);
		T_EXPECT_RET(luo_session_retrieve(luo_fd, kept[i].name), -ENOENT);
	}
	wait_all();

	/* More churn in the new kernel. */
	open_private_memfds(t, mfds);
	for (i = 0; i < ROUNDS / 2; i++)
		churn_round(t, i, "st-d", mfds);
	for (k = 0; k < FILES; k++)
		close(mfds[k]);
	free(buf);
	return NULL;
}

static void stage2(int fd)
{
	unsigned char buf[SHARED_LEN];
	int s;

	luo_fd = fd;
	kmemleak_start(2);
	t_want_fds(4096);
	build_kept_table();
	for (s = 0; s < NSHARED; s++) {
		shared_fill(buf, sizeof(buf), s + 100);
		shared_mfd[s] = memfd_new("st-shared2", buf, sizeof(buf));
		T_CHECK(shared_mfd[s] >= 0, "memfd: %s", t_errname(-shared_mfd[s]));
	}
	run_threads(stage2_thread);
	for (s = 0; s < NSHARED; s++)
		close(shared_mfd[s]);
	t_info("stage 2: all %d sessions retrieved, checked, finished; %ld preserves in churn",
	       NKEPT, (long)n_preserve);
}

int main(int argc, char **argv)
{
	return luo_stage_main(argc, argv, "luo_stress_threads", STATE, stage1, stage2);
}
