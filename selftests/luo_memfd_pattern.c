// SPDX-License-Identifier: GPL-2.0
/*
 * luo_memfd_pattern: preserve memfds with known contents across a kexec.
 *
 * Stage 1 preserves, in session "pattern":
 *   BIG    8 MiB deterministic pattern, file position set to 4242
 *   ODD    12345 bytes (not page aligned), sealed against shrink/grow
 *   SPARSE 1 MiB with only one written page (holes must read as zeros)
 *   EMPTY  a zero-sized memfd
 * and checks the error codes of misuse on the outgoing side.
 * Stage 2 retrieves everything, checks every byte, size, position and seals,
 * checks misuse on the incoming side, finishes the session and checks that
 * it is gone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/luo.h"

#define SESSION "pattern"
#define STATE "pattern-state"

#define TOK_BIG 0x10
#define TOK_ODD 0x11
#define TOK_SPARSE 0x12
#define TOK_EMPTY 0x13

#define BIG_SIZE (8u << 20)
#define BIG_SEED 0x1badb002ULL
#define BIG_POS 4242
#define ODD_SIZE 12345u
#define ODD_SEED 0xfeedULL
#define ODD_SEALS (F_SEAL_SHRINK | F_SEAL_GROW)
#define SPARSE_SIZE (1u << 20)
#define SPARSE_OFF (512u << 10)
#define SPARSE_LEN 4096u
#define SPARSE_SEED 0x5ca1eULL

static void *pattern_buf(size_t len, uint64_t seed)
{
	void *p = malloc(len);

	if (!p)
		t_fail("malloc(%zu)", len);
	pattern_fill(p, len, seed, 0);
	return p;
}

static void stage1(int luo_fd)
{
	int sfd, fd, pipefd[2];
	char name[LIVEUPDATE_SESSION_NAME_LENGTH];
	void *buf;

	/* /dev/liveupdate is single-open. */
	T_EXPECT_RET(luo_open(), -EBUSY);
	/* Empty session names are rejected. */
	T_EXPECT_RET(luo_session_create(luo_fd, ""), -EINVAL);
	/* Nothing came from a previous kernel. */
	T_EXPECT_RET(luo_session_retrieve(luo_fd, SESSION), -ENOENT);

	sfd = luo_session_create(luo_fd, SESSION);
	T_CHECK(sfd >= 0, "create session: %s", t_errname(-sfd));
	T_EXPECT_RET(luo_session_create(luo_fd, SESSION), -EEXIST);
	T_EXPECT_RET(luo_get_name(sfd, name, sizeof(name)), 0);
	T_CHECK(!strcmp(name, SESSION), "get_name gave '%s'", name);

	/* BIG */
	buf = pattern_buf(BIG_SIZE, BIG_SEED);
	fd = memfd_new("big", buf, BIG_SIZE);
	T_CHECK(fd >= 0, "memfd big: %s", t_errname(-fd));
	T_CHECK(lseek(fd, BIG_POS, SEEK_SET) == BIG_POS, "lseek");
	T_EXPECT_RET(luo_preserve_fd(sfd, fd, TOK_BIG), 0);
	t_info("preserved BIG: %u bytes, fnv1a64 %016llx", BIG_SIZE,
	       (unsigned long long)fnv1a64(buf, BIG_SIZE));
	/* The same file cannot be preserved twice. */
	T_EXPECT_RET(luo_preserve_fd(sfd, fd, 0x99), -EBUSY);
	close(fd);
	free(buf);

	/* A token can only be used once per session. */
	fd = memfd_new("dup", "x", 1);
	T_CHECK(fd >= 0, "memfd dup");
	T_EXPECT_RET(luo_preserve_fd(sfd, fd, TOK_BIG), -EEXIST);
	close(fd);

	/* ODD, sealed */
	buf = pattern_buf(ODD_SIZE, ODD_SEED);
	fd = memfd_create("odd", MFD_ALLOW_SEALING);
	T_CHECK(fd >= 0, "memfd odd");
	T_CHECK(write(fd, buf, ODD_SIZE) == ODD_SIZE, "write odd");
	T_CHECK(fcntl(fd, F_ADD_SEALS, ODD_SEALS) == 0, "add seals");
	T_EXPECT_RET(luo_preserve_fd(sfd, fd, TOK_ODD), 0);
	close(fd);
	free(buf);

	/* SPARSE */
	fd = memfd_create("sparse", 0);
	T_CHECK(fd >= 0, "memfd sparse");
	T_CHECK(ftruncate(fd, SPARSE_SIZE) == 0, "ftruncate");
	buf = pattern_buf(SPARSE_LEN, SPARSE_SEED);
	T_CHECK(pwrite(fd, buf, SPARSE_LEN, SPARSE_OFF) == SPARSE_LEN, "pwrite");
	free(buf);
	T_EXPECT_RET(luo_preserve_fd(sfd, fd, TOK_SPARSE), 0);
	close(fd);

	/* EMPTY */
	fd = memfd_create("empty", 0);
	T_CHECK(fd >= 0, "memfd empty");
	T_EXPECT_RET(luo_preserve_fd(sfd, fd, TOK_EMPTY), 0);
	close(fd);

	/* Not a memfd: no handler for it. */
	T_CHECK(pipe(pipefd) == 0, "pipe");
	T_EXPECT_RET(luo_preserve_fd(sfd, pipefd[0], 0x77), -ENOENT);
	close(pipefd[0]);
	close(pipefd[1]);
	/* Not a file descriptor at all. */
	T_EXPECT_RET(luo_preserve_fd(sfd, 9999, 0x78), -EBADF);

	/* Incoming-only operations on an outgoing session. */
	T_EXPECT_RET(luo_retrieve_fd(sfd, TOK_BIG), -EINVAL);
	T_EXPECT_RET(luo_finish(sfd), -EINVAL);

	t_info("stage 1: 4 memfds preserved in session '%s'", SESSION);
	/* sfd stays open: the holder process keeps it across the kexec. */
}

static void expect_bytes(const char *what, const unsigned char *got,
			 const unsigned char *want, size_t len, size_t base)
{
	size_t i;

	if (!memcmp(got, want, len))
		return;
	for (i = 0; i < len; i++)
		if (got[i] != want[i])
			t_fail("%s: byte %zu is 0x%02x, expected 0x%02x", what,
			       base + i, got[i], want[i]);
}

static unsigned char *get_file(int sfd, uint64_t token, size_t want_size,
			       int *fdp)
{
	unsigned char *data;
	struct stat st;
	size_t len;
	int fd;

	fd = luo_retrieve_fd(sfd, token);
	T_CHECK(fd >= 0, "retrieve token %#llx: %s", (unsigned long long)token,
		t_errname(-fd));
	T_CHECK(fstat(fd, &st) == 0, "fstat");
	T_CHECK((size_t)st.st_size == want_size,
		"token %#llx: size %lld, expected %zu", (unsigned long long)token,
		(long long)st.st_size, want_size);
	data = memfd_slurp(fd, &len);
	T_CHECK(data && len == want_size, "read token %#llx", (unsigned long long)token);
	*fdp = fd;
	return data;
}

static void stage2(int luo_fd)
{
	char name[LIVEUPDATE_SESSION_NAME_LENGTH];
	unsigned char *data, *want, *zeros;
	struct stat st1, st2;
	int sfd, fd, fd2, seals;

	sfd = luo_session_retrieve(luo_fd, SESSION);
	T_CHECK(sfd >= 0, "retrieve session: %s", t_errname(-sfd));
	/* A session can be retrieved only once. */
	T_EXPECT_RET(luo_session_retrieve(luo_fd, SESSION), -EINVAL);
	T_EXPECT_RET(luo_session_retrieve(luo_fd, "no-such-session"), -ENOENT);
	T_EXPECT_RET(luo_get_name(sfd, name, sizeof(name)), 0);
	T_CHECK(!strcmp(name, SESSION), "get_name gave '%s'", name);

	/* Outgoing-only operation on an incoming session. */
	fd = memfd_new("late", "x", 1);
	T_CHECK(fd >= 0, "memfd late");
	T_EXPECT_RET(luo_preserve_fd(sfd, fd, 0x55), -EINVAL);
	close(fd);
	T_EXPECT_RET(luo_retrieve_fd(sfd, 0x99), -ENOENT);

	/* BIG: every byte, the size and the file position. */
	data = get_file(sfd, TOK_BIG, BIG_SIZE, &fd);
	want = pattern_buf(BIG_SIZE, BIG_SEED);
	expect_bytes("BIG", data, want, BIG_SIZE, 0);
	t_info("BIG ok: %u bytes, fnv1a64 %016llx", BIG_SIZE,
	       (unsigned long long)fnv1a64(data, BIG_SIZE));
	free(data);
	free(want);
	T_CHECK(lseek(fd, 0, SEEK_CUR) == BIG_POS, "file position %lld, expected %d",
		(long long)lseek(fd, 0, SEEK_CUR), BIG_POS);
	/* Retrieving the same token again gives the same file. */
	fd2 = luo_retrieve_fd(sfd, TOK_BIG);
	T_CHECK(fd2 >= 0, "second retrieve of BIG: %s", t_errname(-fd2));
	T_CHECK(fstat(fd, &st1) == 0 && fstat(fd2, &st2) == 0, "fstat");
	T_CHECK(st1.st_ino == st2.st_ino && st1.st_dev == st2.st_dev,
		"second retrieve gave another file");
	close(fd2);
	close(fd);

	/* ODD: contents and seals. */
	data = get_file(sfd, TOK_ODD, ODD_SIZE, &fd);
	want = pattern_buf(ODD_SIZE, ODD_SEED);
	expect_bytes("ODD", data, want, ODD_SIZE, 0);
	free(data);
	free(want);
	seals = fcntl(fd, F_GET_SEALS);
	T_CHECK(seals >= 0 && (seals & ODD_SEALS) == ODD_SEALS,
		"ODD seals are %#x, expected %#x set", seals, ODD_SEALS);
	T_CHECK(ftruncate(fd, 1) < 0 && errno == EPERM, "ODD shrink not blocked by seal");
	close(fd);
	t_info("ODD ok: %u bytes, seals %#x", ODD_SIZE, seals);

	/* SPARSE: zeros around one written page. */
	data = get_file(sfd, TOK_SPARSE, SPARSE_SIZE, &fd);
	zeros = calloc(1, SPARSE_SIZE);
	want = pattern_buf(SPARSE_LEN, SPARSE_SEED);
	T_CHECK(zeros != NULL, "calloc");
	expect_bytes("SPARSE head", data, zeros, SPARSE_OFF, 0);
	expect_bytes("SPARSE page", data + SPARSE_OFF, want, SPARSE_LEN, SPARSE_OFF);
	expect_bytes("SPARSE tail", data + SPARSE_OFF + SPARSE_LEN, zeros,
		     SPARSE_SIZE - SPARSE_OFF - SPARSE_LEN, SPARSE_OFF + SPARSE_LEN);
	free(zeros);
	free(want);
	free(data);
	close(fd);
	t_info("SPARSE ok");

	/* EMPTY */
	data = get_file(sfd, TOK_EMPTY, 0, &fd);
	free(data);
	/* A restored memfd is a normal memfd again. */
	T_CHECK(write(fd, "abc", 3) == 3, "write to restored memfd");
	close(fd);
	t_info("EMPTY ok");

	T_EXPECT_RET(luo_finish(sfd), 0);
	close(sfd);
	/* Finished and closed: the session is gone. */
	T_EXPECT_RET(luo_session_retrieve(luo_fd, SESSION), -ENOENT);
	t_info("session finished and gone");
}

int main(int argc, char **argv)
{
	return luo_stage_main(argc, argv, "luo_memfd_pattern", STATE, stage1, stage2);
}
