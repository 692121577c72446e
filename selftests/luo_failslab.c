// SPDX-License-Identifier: GPL-2.0
/*
 * luo_failslab: every allocation of every LUO ioctl fails once.
 *
 * /proc/thread-self/fail-nth (CONFIG_FAULT_INJECTION) makes the Nth slab or
 * page allocation of the calling task fail (failslab, fail_page_alloc; the
 * test sets both up to fail GFP_KERNEL and order-0 allocations). For each
 * call under test the loop writes N = 1, 2, ..., issues the ioctl and reads
 * fail-nth back: a positive value means that the call made fewer than N
 * allocations, so every allocation site has been failed once and the loop
 * ends. Each failed call must return ENOMEM and change nothing; each call
 * that absorbed the failure must have fully worked.
 *
 * Stage 1: CREATE_SESSION (first session block, and with a second block
 * needed), PRESERVE_FD (first file block, and with a second block needed);
 * the last successful sessions, and sessions for stage 2, stay.
 * Stage 2: the sessions preserved under faults are intact; RETRIEVE_SESSION,
 * RETRIEVE_FD (a failed retrieve of a file keeps failing with the same errno,
 * as in upstream), FINISH (with retrieved and unretrieved files), then
 * CREATE_SESSION and PRESERVE_FD again in the new kernel.
 * At the end of each stage the test scans kmemleak.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/luo.h"

#define STATE "failslab-state"
#define MAX_N 5000
#define NRS 64 /* sessions for the RETRIEVE_SESSION loop */
#define NRFD 200 /* files for the RETRIEVE_FD loop */
#define NFIN 48 /* sessions for the FINISH loop */
#define FILES_PER_BLOCK 63 /* (4096 - 16) / 64 */
#define SESSIONS_PER_BLOCK 51 /* (4096 - 16) / 80 */
#define PFILE_LEN (3 * 4096 + 100)
#define RFD_LEN (2 * 4096 + 10)
#define FIN_LEN (3 * 4096)

#include "lib/kmemleak.h"

/* ---------------------------------------------------------------- fail-nth */
static int luo_fd, nth_fd = -1;

static void knob(const char *dir, const char *file, const char *val)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "/sys/kernel/debug/%s/%s", dir, file);
	fd = open(path, O_WRONLY);
	T_CHECK(fd >= 0, "open %s: %s (need CONFIG_FAULT_INJECTION_DEBUG_FS)", path,
		strerror(errno));
	T_CHECK(write(fd, val, strlen(val)) == (ssize_t)strlen(val), "write %s to %s: %s",
		val, path, strerror(errno));
	close(fd);
}

static void fault_setup(void)
{
	static const char *const dirs[] = { "failslab", "fail_page_alloc" };
	unsigned int i;

	for (i = 0; i < 2; i++) {
		/* No random faults: only fail-nth. */
		knob(dirs[i], "probability", "0");
		/* GFP_KERNEL allocations may sleep: fail them too. */
		knob(dirs[i], "ignore-gfp-wait", "N");
		/* Each injected fault would print a stack trace. */
		knob(dirs[i], "verbose", "0");
	}
	knob("failslab", "cache-filter", "N");
	knob("fail_page_alloc", "ignore-gfp-highmem", "N");
	/* Single pages too (default: order >= 1 only). */
	knob("fail_page_alloc", "min-order", "0");
	T_CHECK(access("/proc/thread-self/fail-nth", R_OK | W_OK) == 0,
		"/proc/thread-self/fail-nth: %s", strerror(errno));
}

/*
 * fail-nth cannot seek, so each round opens it twice, before arming: one fd
 * to arm (and disarm), one to read the count back after the call.
 */
static int nth_rfd = -1;

/* Fails the nth allocation of this thread from now on. */
static void arm(int n)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%d", n);

	nth_rfd = open("/proc/thread-self/fail-nth", O_RDONLY);
	nth_fd = open("/proc/thread-self/fail-nth", O_WRONLY);
	T_CHECK(nth_rfd >= 0 && nth_fd >= 0, "open fail-nth: %s", strerror(errno));
	if (write(nth_fd, buf, len) != len)
		t_fail("write %d to fail-nth: %s", n, strerror(errno));
}

/* Disarms; returns how many allocations were still to go (0: injected). */
static int disarm(void)
{
	char buf[16] = { 0 };
	int rem;

	if (read(nth_rfd, buf, sizeof(buf) - 1) <= 0)
		t_fail("read fail-nth: %s", strerror(errno));
	rem = atoi(buf);
	if (rem && write(nth_fd, "0", 1) != 1)
		t_fail("reset fail-nth: %s", strerror(errno));
	close(nth_rfd);
	close(nth_fd);
	return rem;
}

struct tally {
	const char *what;
	int sites, failed, absorbed;
	int handler_errnos;
};

static void tally_done(struct tally *t, int n)
{
	T_CHECK(n <= MAX_N, "%s: still allocating after %d faults", t->what, MAX_N);
	t->sites = n - 1;
	t_info("%s: %d allocation(s) failed in turn: %d call(s) failed cleanly, "
	       "%d absorbed the failure", t->what, t->sites, t->failed, t->absorbed);
}

/*
 * A failed call: ENOMEM, and the fault was the reason. RETRIEVE_FD passes on
 * the errno of memfd's retrieve() (mm/memfd_luo.c), which is ENOSPC when
 * shmem cannot allocate the new inode and EINVAL when kho_restore_vmalloc()
 * of the folio array fails.
 */
static void expect_enomem(struct tally *t, int n, int ret, int rem)
{
	T_CHECK(ret == -ENOMEM ||
		(t->handler_errnos && (ret == -ENOSPC || ret == -EINVAL)),
		"%s with allocation #%d failing: %s, expected ENOMEM%s",
		t->what, n, t_errname(-ret),
		t->handler_errnos ? " (or memfd's ENOSPC, EINVAL)" : "");
	T_CHECK(rem == 0, "%s failed (%s) but allocation #%d was not reached", t->what,
		t_errname(-ret), n);
	t->failed++;
}

/* ---------------------------------------------------------------- helpers */
static void check_contents(int fd, const void *want, size_t len, const char *what)
{
	size_t got_len = 0;
	unsigned char *got = memfd_slurp(fd, &got_len);

	T_CHECK(got != NULL, "%s: cannot read", what);
	T_CHECK(got_len == len && !memcmp(got, want, len),
		"%s: contents differ (%zu bytes, want %zu)", what, got_len, len);
	free(got);
}

/* A session fd that works: its name, and it takes a file. */
static void check_outgoing(int sfd, const char *name)
{
	char got[LIVEUPDATE_SESSION_NAME_LENGTH];

	T_EXPECT_RET(luo_get_name(sfd, got, sizeof(got)), 0);
	T_CHECK(!strcmp(got, name), "session %s calls itself %s", name, got);
	T_EXPECT_RET(memfd_preserve_buf(sfd, 0x77, name, strlen(name)), 0);
}

static int create_or_die(const char *name)
{
	int sfd = luo_session_create(luo_fd, name);

	T_CHECK(sfd >= 0, "create %s: %s", name, t_errname(-sfd));
	return sfd;
}

/* -------------------------------------------------------- CREATE_SESSION */
static void fault_create(const char *name, const char *what)
{
	struct tally t = { .what = what };
	int n, sfd, rem;

	for (n = 1; n <= MAX_N; n++) {
		arm(n);
		sfd = luo_session_create(luo_fd, name);
		rem = disarm();
		if (sfd < 0) {
			expect_enomem(&t, n, sfd, rem);
			/* No session was left behind: the name is free. */
			T_EXPECT_RET(luo_session_retrieve(luo_fd, name), -ENOENT);
			sfd = luo_session_create(luo_fd, name);
			T_CHECK(sfd >= 0, "create %s after a failed create (#%d): %s", name,
				n, t_errname(-sfd));
			check_outgoing(sfd, name);
			close(sfd);
			continue;
		}
		check_outgoing(sfd, name);
		T_EXPECT_RET(luo_session_create(luo_fd, name), -EEXIST);
		close(sfd);
		if (rem > 0)
			break;
		t.absorbed++;
	}
	tally_done(&t, n);
	/* Closed: the name is free again. */
	sfd = create_or_die(name);
	close(sfd);
}

/* ----------------------------------------------------------- PRESERVE_FD */
static void pfile_fill(unsigned char *buf, int j)
{
	pattern_fill(buf, PFILE_LEN, 0xfa110000ULL + (uint64_t)j, 0);
}

/*
 * Preserves a memfd as file number `before` (after `before` others) of a
 * session named `name`. Returns the session of the last, successful call.
 */
static int fault_preserve(const char *name, int before, const char *what)
{
	static unsigned char buf[PFILE_LEN];
	struct tally t = { .what = what };
	int n, j, sfd, mfd, rem, r;
	uint64_t token = 0x9000ULL + (uint64_t)before;

	pfile_fill(buf, before);
	mfd = memfd_new("fs-pfile", buf, PFILE_LEN);
	T_CHECK(mfd >= 0, "memfd: %s", t_errname(-mfd));
	for (n = 1; n <= MAX_N; n++) {
		sfd = create_or_die(name);
		for (j = 0; j < before; j++) {
			pfile_fill(buf, j);
			T_EXPECT_RET(memfd_preserve_buf(sfd, 0x9000ULL + (uint64_t)j, buf,
							PFILE_LEN), 0);
		}
		arm(n);
		r = luo_preserve_fd(sfd, mfd, token);
		rem = disarm();
		if (r < 0) {
			expect_enomem(&t, n, r, rem);
			/* The token and the file are free. */
			T_EXPECT_RET(luo_preserve_fd(sfd, mfd, token), 0);
		} else {
			T_EXPECT_RET(luo_preserve_fd(sfd, mfd, token + 1000), -EBUSY);
			if (rem > 0)
				break;
			t.absorbed++;
		}
		T_EXPECT_RET(luo_preserve_fd(sfd, mfd, token), -EEXIST);
		/* Unpreserves all. */
		close(sfd);
	}
	tally_done(&t, n);
	close(mfd);
	return sfd;
}

static void check_preserved(const char *name, int nfiles)
{
	static unsigned char buf[PFILE_LEN];
	char what[64];
	int sfd, j, fd;

	sfd = luo_session_retrieve(luo_fd, name);
	T_CHECK(sfd >= 0, "retrieve %s: %s", name, t_errname(-sfd));
	for (j = 0; j < nfiles; j++) {
		snprintf(what, sizeof(what), "%s file %d", name, j);
		fd = luo_retrieve_fd(sfd, 0x9000ULL + (uint64_t)j);
		T_CHECK(fd >= 0, "retrieve %s: %s", what, t_errname(-fd));
		pfile_fill(buf, j);
		check_contents(fd, buf, PFILE_LEN, what);
		close(fd);
	}
	T_EXPECT_RET(luo_retrieve_fd(sfd, 0x9000ULL + (uint64_t)nfiles), -ENOENT);
	T_EXPECT_RET(luo_finish(sfd), 0);
	close(sfd);
	t_info("%s: %d file(s) preserved under faults came back intact", name, nfiles);
}

/* ----------------------------------------------------------------- stage 1 */
static void rs_name(char *buf, size_t len, int i)
{
	snprintf(buf, len, "fs-rs-%02d", i);
}

static void fin_name(char *buf, size_t len, int i)
{
	snprintf(buf, len, "fs-fin-%02d", i);
}

static void rfd_fill(unsigned char *buf, int j)
{
	pattern_fill(buf, RFD_LEN, 0xf0f00000ULL + (uint64_t)j, 0);
}

static void fin_fill(unsigned char *buf, int i, int k)
{
	pattern_fill(buf, FIN_LEN, 0xf1200000ULL + (uint64_t)i * 2 + (uint64_t)k, 0);
}

static void stage1(int fd)
{
	static unsigned char buf[RFD_LEN > FIN_LEN ? RFD_LEN : FIN_LEN];
	static int fill[SESSIONS_PER_BLOCK];
	char name[64];
	int i, j, k, sfd;

	luo_fd = fd;
	kmemleak_start(1);
	t_want_fds(1024);
	fault_setup();

	/* The state session exists: this create fits in the first block. */
	fault_create("fs-create", "CREATE_SESSION");
	/* 1 + (SESSIONS_PER_BLOCK - 1) sessions fill the first block. */
	for (i = 0; i < SESSIONS_PER_BLOCK - 1; i++) {
		snprintf(name, sizeof(name), "fs-fill-%02d", i);
		fill[i] = create_or_die(name);
	}
	fault_create("fs-create-b2", "CREATE_SESSION (new session block)");
	for (i = 0; i < SESSIONS_PER_BLOCK - 1; i++)
		close(fill[i]);

	/* Kept for stage 2. */
	fault_preserve("fs-p0", 0, "PRESERVE_FD");
	fault_preserve("fs-p63", FILES_PER_BLOCK, "PRESERVE_FD (new file block)");

	/* For the stage-2 loops. */
	for (i = 0; i < NRS; i++) {
		rs_name(name, sizeof(name), i);
		sfd = create_or_die(name);
		T_EXPECT_RET(memfd_preserve_buf(sfd, 1, name, strlen(name)), 0);
	}
	sfd = create_or_die("fs-rfd");
	for (j = 0; j < NRFD; j++) {
		rfd_fill(buf, j);
		T_EXPECT_RET(memfd_preserve_buf(sfd, 0x100ULL + (uint64_t)j, buf, RFD_LEN), 0);
	}
	for (i = 0; i < NFIN; i++) {
		fin_name(name, sizeof(name), i);
		sfd = create_or_die(name);
		for (k = 0; k < 2; k++) {
			fin_fill(buf, i, k);
			T_EXPECT_RET(memfd_preserve_buf(sfd, 0x200ULL + (uint64_t)k, buf,
							FIN_LEN), 0);
		}
	}
	t_info("stage 1: kept fs-p0, fs-p63, %d + 1 + %d sessions for stage 2", NRS, NFIN);
}

/* ----------------------------------------------------------------- stage 2 */
static void check_rs_session(int sfd, const char *name)
{
	char got[LIVEUPDATE_SESSION_NAME_LENGTH];
	int fd;

	T_EXPECT_RET(luo_get_name(sfd, got, sizeof(got)), 0);
	T_CHECK(!strcmp(got, name), "session %s calls itself %s", name, got);
	fd = luo_retrieve_fd(sfd, 1);
	T_CHECK(fd >= 0, "retrieve the file of %s: %s", name, t_errname(-fd));
	check_contents(fd, name, strlen(name), name);
	close(fd);
	T_EXPECT_RET(luo_finish(sfd), 0);
	close(sfd);
	T_EXPECT_RET(luo_session_retrieve(luo_fd, name), -ENOENT);
}

static void fault_retrieve_session(void)
{
	struct tally t = { .what = "RETRIEVE_SESSION" };
	char name[64];
	int n, cur = 0, sfd, rem;

	for (n = 1; n <= MAX_N; n++) {
		T_CHECK(cur < NRS, "RETRIEVE_SESSION: ran out of sessions at #%d", n);
		rs_name(name, sizeof(name), cur);
		arm(n);
		sfd = luo_session_retrieve(luo_fd, name);
		rem = disarm();
		if (sfd < 0) {
			/* Still there, not retrieved: the next round retries it. */
			expect_enomem(&t, n, sfd, rem);
			continue;
		}
		T_EXPECT_RET(luo_session_retrieve(luo_fd, name), -EINVAL);
		check_rs_session(sfd, name);
		cur++;
		if (rem > 0)
			break;
		t.absorbed++;
	}
	tally_done(&t, n);
	/* The rest are intact. */
	for (; cur < NRS; cur++) {
		rs_name(name, sizeof(name), cur);
		sfd = luo_session_retrieve(luo_fd, name);
		T_CHECK(sfd >= 0, "retrieve %s: %s", name, t_errname(-sfd));
		check_rs_session(sfd, name);
	}
}

static void fault_retrieve_fd(void)
{
	static unsigned char buf[RFD_LEN];
	struct tally t = { .what = "RETRIEVE_FD", .handler_errnos = 1 };
	int n, cur = 0, sfd, fd, fd2, rem, sticky = 0;
	char what[64];

	sfd = luo_session_retrieve(luo_fd, "fs-rfd");
	T_CHECK(sfd >= 0, "retrieve fs-rfd: %s", t_errname(-sfd));
	for (n = 1; n <= MAX_N; n++) {
		uint64_t token = 0x100ULL + (uint64_t)cur;

		T_CHECK(cur < NRFD, "RETRIEVE_FD: ran out of files at #%d", n);
		snprintf(what, sizeof(what), "fs-rfd token %#llx", (unsigned long long)token);
		rfd_fill(buf, cur);
		arm(n);
		fd = luo_retrieve_fd(sfd, token);
		rem = disarm();
		if (fd < 0) {
			expect_enomem(&t, n, fd, rem);
			/*
			 * A failure before the handler ran changes nothing; one in
			 * the handler's retrieve() is final, as upstream: the same
			 * errno again.
			 */
			fd2 = luo_retrieve_fd(sfd, token);
			if (fd2 >= 0) {
				check_contents(fd2, buf, RFD_LEN, what);
				close(fd2);
			} else {
				T_CHECK(fd2 == fd, "%s: failed with %s, then %s", what,
					t_errname(-fd), t_errname(-fd2));
				sticky++;
			}
			cur++;
			continue;
		}
		check_contents(fd, buf, RFD_LEN, what);
		fd2 = luo_retrieve_fd(sfd, token);
		T_CHECK(fd2 >= 0, "%s again: %s", what, t_errname(-fd2));
		close(fd2);
		close(fd);
		cur++;
		if (rem > 0)
			break;
		t.absorbed++;
	}
	tally_done(&t, n);
	t_info("RETRIEVE_FD: %d failure(s) were final for their file", sticky);
	/* Some files retrieved, some failed for good, the rest never retrieved. */
	for (; cur < NRFD; cur += 17) {
		rfd_fill(buf, cur);
		fd = luo_retrieve_fd(sfd, 0x100ULL + (uint64_t)cur);
		T_CHECK(fd >= 0, "retrieve fs-rfd file %d: %s", cur, t_errname(-fd));
		check_contents(fd, buf, RFD_LEN, "fs-rfd");
		close(fd);
	}
	T_EXPECT_RET(luo_finish(sfd), 0);
	close(sfd);
	T_EXPECT_RET(luo_session_retrieve(luo_fd, "fs-rfd"), -ENOENT);
}

static void fault_finish(void)
{
	static unsigned char buf[FIN_LEN];
	struct tally t = { .what = "FINISH" };
	char name[64];
	int n, cur = 0, sfd, fd, rem, r;

	for (n = 1; n <= MAX_N; n++) {
		T_CHECK(cur < NFIN, "FINISH: ran out of sessions at #%d", n);
		fin_name(name, sizeof(name), cur);
		sfd = luo_session_retrieve(luo_fd, name);
		T_CHECK(sfd >= 0, "retrieve %s: %s", name, t_errname(-sfd));
		/* File 0 retrieved, file 1 left for finish to clean up. */
		fd = luo_retrieve_fd(sfd, 0x200);
		T_CHECK(fd >= 0, "retrieve %s file 0: %s", name, t_errname(-fd));
		arm(n);
		r = luo_finish(sfd);
		rem = disarm();
		fin_fill(buf, cur, 0);
		check_contents(fd, buf, FIN_LEN, name);
		close(fd);
		if (r < 0) {
			expect_enomem(&t, n, r, rem);
			/* Nothing was finished: file 1 is still there. */
			fd = luo_retrieve_fd(sfd, 0x201);
			T_CHECK(fd >= 0, "%s file 1 after a failed finish: %s", name,
				t_errname(-fd));
			fin_fill(buf, cur, 1);
			check_contents(fd, buf, FIN_LEN, name);
			close(fd);
			T_EXPECT_RET(luo_finish(sfd), 0);
		} else {
			T_EXPECT_RET(luo_retrieve_fd(sfd, 0x201), -ENOENT);
		}
		close(sfd);
		T_EXPECT_RET(luo_session_retrieve(luo_fd, name), -ENOENT);
		cur++;
		if (r == 0 && rem > 0)
			break;
		if (r == 0)
			t.absorbed++;
	}
	tally_done(&t, n);
	/* The rest finish on close, without FINISH. */
	for (; cur < NFIN; cur++) {
		fin_name(name, sizeof(name), cur);
		sfd = luo_session_retrieve(luo_fd, name);
		T_CHECK(sfd >= 0, "retrieve %s: %s", name, t_errname(-sfd));
		close(sfd);
		T_EXPECT_RET(luo_session_retrieve(luo_fd, name), -ENOENT);
	}
}

static void stage2(int fd)
{
	int sfd;

	luo_fd = fd;
	kmemleak_start(2);
	t_want_fds(1024);
	fault_setup();

	check_preserved("fs-p0", 1);
	check_preserved("fs-p63", FILES_PER_BLOCK + 1);
	fault_retrieve_session();
	fault_retrieve_fd();
	fault_finish();
	/* And the outgoing side of the new kernel. */
	fault_create("fs-create", "CREATE_SESSION (stage 2)");
	sfd = fault_preserve("fs-p0", 0, "PRESERVE_FD (stage 2)");
	close(sfd);
}

int main(int argc, char **argv)
{
	return luo_stage_main(argc, argv, "luo_failslab", STATE, stage1, stage2);
}
