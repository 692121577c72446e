// SPDX-License-Identifier: GPL-2.0
/*
 * A live update that fails at the last moment must leave everything as it was.
 *
 * Needs a Rust-core kernel with CONFIG_LIVEUPDATE_RUST_CORRUPT_TEST booted with
 * luo_corrupt=freeze-fail: the first reboot(LINUX_REBOOT_CMD_KEXEC) then fails while
 * freezing the second preserved file, after the first was frozen.
 *
 * Stage 1 preserves three memfds in two sessions and calls reboot(KEXEC) itself (init
 * has loaded the next kernel already). The call must fail with EIO, and then: every
 * session still answers, files can still be preserved and unpreserved, and changes
 * written to the preserved memfds after the failure are what the next kernel sees.
 * The init's own kexec (the second attempt) then succeeds, and stage 2 checks it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/reboot.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/luo.h"

/* A preserved memfd keeps its size; its contents may still change. */
static const char *const before[] = { "a1 before", "a2 before", "b1 before" };
static const char *const after[] = { "a1 AFTER!", "a2 AFTER!", "b1 AFTER!" };

static int memfds[3];

static void write_all(int fd, const char *text)
{
	T_CHECK(pwrite(fd, text, strlen(text), 0) == (ssize_t)strlen(text),
		"pwrite: %s", strerror(errno));
}

static void stage1(int luo_fd)
{
	int a = luo_session_create(luo_fd, "abort-a");
	int b = luo_session_create(luo_fd, "abort-b");
	char name[LIVEUPDATE_SESSION_NAME_LENGTH];
	long ret;
	int c, i;

	T_CHECK(a >= 0 && b >= 0, "create sessions");
	for (i = 0; i < 3; i++) {
		memfds[i] = memfd_new("abort", before[i], strlen(before[i]));
		T_CHECK(memfds[i] >= 0, "memfd_new");
	}
	T_EXPECT_RET(luo_preserve_fd(a, memfds[0], 1), 0);
	T_EXPECT_RET(luo_preserve_fd(a, memfds[1], 2), 0);
	T_EXPECT_RET(luo_preserve_fd(b, memfds[2], 1), 0);

	ret = syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
		      LINUX_REBOOT_CMD_KEXEC, NULL);
	T_CHECK(ret == -1 && errno == EIO, "first reboot(KEXEC) returned %ld (%s), expected EIO",
		ret, ret ? strerror(errno) : "success");
	t_info("reboot(KEXEC) failed with EIO as injected; checking that nothing changed");

	T_EXPECT_RET(luo_get_name(a, name, sizeof(name)), 0);
	T_CHECK(!strcmp(name, "abort-a"), "GET_NAME gave '%s'", name);
	T_EXPECT_RET(luo_preserve_fd(a, memfds[0], 3), -EBUSY);
	T_EXPECT_RET(luo_session_create(luo_fd, "abort-a"), -EEXIST);

	c = luo_session_create(luo_fd, "abort-c");
	T_CHECK(c >= 0, "create abort-c: %s", t_errname(-c));
	T_EXPECT_RET(memfd_preserve_buf(c, 1, "short-lived", 11), 0);
	close(c);
	t_info("sessions can still be created, filled and closed");

	for (i = 0; i < 3; i++)
		write_all(memfds[i], after[i]);
	t_info("memfds rewritten after the failed attempt");
}

static void check(int session, uint64_t token, const char *want)
{
	int fd = luo_retrieve_fd(session, token);
	size_t len;
	char *got;

	T_CHECK(fd >= 0, "retrieve %llu: %s", (unsigned long long)token, t_errname(-fd));
	got = memfd_slurp(fd, &len);
	T_CHECK(len == strlen(want) && !memcmp(got, want, len), "got '%.*s', want '%s'",
		(int)len, got, want);
	free(got);
	close(fd);
}

static void stage2(int luo_fd)
{
	int a = luo_session_retrieve(luo_fd, "abort-a");
	int b = luo_session_retrieve(luo_fd, "abort-b");

	T_CHECK(a >= 0 && b >= 0, "retrieve sessions");
	T_EXPECT_RET(luo_session_retrieve(luo_fd, "abort-c"), -ENOENT);
	check(a, 1, after[0]);
	check(a, 2, after[1]);
	check(b, 1, after[2]);
	T_EXPECT_RET(luo_finish(a), 0);
	T_EXPECT_RET(luo_finish(b), 0);
	close(a);
	close(b);
	t_info("the second attempt carried the rewritten memfds; abort-c is gone");
}

int main(int argc, char **argv)
{
	return luo_stage_main(argc, argv, "luo_reboot_abort", "reboot_abort_state", stage1,
			      stage2);
}
