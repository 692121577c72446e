/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Small userspace helper library for the LUO selftests of this project.
 *
 * Every luo_* call returns a file descriptor or 0 on success and -errno on
 * failure, so that tests can compare against exact error codes.
 */
#ifndef LUO_RS_SELFTEST_LUO_H
#define LUO_RS_SELFTEST_LUO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <linux/liveupdate.h>

#define LUO_DEV "/dev/liveupdate"

/* Console output helpers: every line is prefixed with the test name. */
void t_set_name(const char *name);
void t_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print a failure and exit(1). */
void t_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define T_CHECK(cond, fmt, ...)                                             \
	do {                                                                \
		if (!(cond))                                                \
			t_fail("%s:%d: check '%s' failed: " fmt, __FILE__,  \
			       __LINE__, #cond, ##__VA_ARGS__);             \
	} while (0)

/* Assert that an expression returning -errno equals an expected value. */
#define T_EXPECT_RET(expr, want)                                            \
	do {                                                                \
		long __r = (expr);                                          \
		if (__r != (want))                                          \
			t_fail("%s:%d: %s returned %ld (%s), expected %ld", \
			       __FILE__, __LINE__, #expr, __r,              \
			       __r < 0 ? t_errname(-__r) : "ok",           \
			       (long)(want));                               \
	} while (0)

const char *t_errname(long err);

/* /dev/liveupdate */
int luo_open(void);
int luo_session_create(int luo_fd, const char *name);
int luo_session_retrieve(int luo_fd, const char *name);

/* session fd */
int luo_preserve_fd(int session_fd, int fd, uint64_t token);
int luo_retrieve_fd(int session_fd, uint64_t token);
int luo_finish(int session_fd);
int luo_get_name(int session_fd, char *buf, size_t len);

/* memfd helpers */
int memfd_new(const char *name, const void *data, size_t len);
/* Read the whole memfd into a malloc'd buffer; size is returned in *len. */
void *memfd_slurp(int fd, size_t *len);
int memfd_preserve_buf(int session_fd, uint64_t token, const void *data,
		       size_t len);

/* Deterministic pattern generator: byte at offset off of stream seed. */
void pattern_fill(void *buf, size_t len, uint64_t seed, uint64_t off);
uint64_t fnv1a64(const void *buf, size_t len);

/* Raise RLIMIT_NOFILE so that n more descriptors can be opened. */
void t_want_fds(long n);

/* Calls fn with the level (0-7) and the message of every record in the kernel log. */
void kmsg_for_each(void (*fn)(int level, const char *msg, void *ctx), void *ctx);
/* Number of records in the kernel log whose message contains needle. */
int kmsg_count(const char *needle);

/*
 * Two-stage driver.
 *
 * A test calls luo_stage_main() from main(). It parses "-s 1|2", detects
 * the real stage by looking for the state session state_name (it only
 * exists after a kexec), and calls stage1() or stage2().
 *
 * stage1() sets up everything to preserve and returns; the driver then
 * forks a holder process that keeps every descriptor open across the kexec
 * (closing an outgoing session fd would unpreserve it) and exits 0.
 *
 * stage2() verifies; when it returns, the driver finishes the state session
 * and prints the final PASS line. Any failure exits non-zero.
 */
/*
 * Forks a process that keeps every open descriptor (and so every outgoing
 * session) until the kexec; returns its pid in the caller.
 */
pid_t luo_fork_holder(void);

typedef void (*luo_stage1_fn)(int luo_fd);
typedef void (*luo_stage2_fn)(int luo_fd);
int luo_stage_main(int argc, char **argv, const char *test_name,
		   const char *state_name, luo_stage1_fn stage1,
		   luo_stage2_fn stage2);

#endif
