// SPDX-License-Identifier: GPL-2.0
/* Helper library for the LUO selftests of this project. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "luo.h"

static const char *t_name = "test";

void t_set_name(const char *name)
{
	t_name = name;
	setvbuf(stdout, NULL, _IONBF, 0);
	setvbuf(stderr, NULL, _IONBF, 0);
}

void t_info(const char *fmt, ...)
{
	va_list ap;

	printf("%s: ", t_name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

void t_fail(const char *fmt, ...)
{
	va_list ap;

	printf("%s: FAIL: ", t_name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	exit(1);
}

const char *t_errname(long err)
{
	switch (err) {
	case ENOENT: return "ENOENT";
	case EINVAL: return "EINVAL";
	case EEXIST: return "EEXIST";
	case EBADF: return "EBADF";
	case ENOMEM: return "ENOMEM";
	case ENOSPC: return "ENOSPC";
	case EBUSY: return "EBUSY";
	case ENOTTY: return "ENOTTY";
	case E2BIG: return "E2BIG";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EIO: return "EIO";
	case EFAULT: return "EFAULT";
	case EMFILE: return "EMFILE";
	default: return strerror((int)err);
	}
}

int luo_open(void)
{
	int fd = open(LUO_DEV, O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

static int luo_ioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) < 0 ? -errno : 0;
}

static void copy_name(__u8 *dst, const char *name)
{
	memset(dst, 0, LIVEUPDATE_SESSION_NAME_LENGTH);
	strncpy((char *)dst, name, LIVEUPDATE_SESSION_NAME_LENGTH - 1);
}

int luo_session_create(int luo_fd, const char *name)
{
	struct liveupdate_ioctl_create_session a;
	int ret;

	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	copy_name(a.name, name);
	ret = luo_ioctl(luo_fd, LIVEUPDATE_IOCTL_CREATE_SESSION, &a);
	return ret ? ret : a.fd;
}

int luo_session_retrieve(int luo_fd, const char *name)
{
	struct liveupdate_ioctl_retrieve_session a;
	int ret;

	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	copy_name(a.name, name);
	ret = luo_ioctl(luo_fd, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, &a);
	return ret ? ret : a.fd;
}

int luo_preserve_fd(int session_fd, int fd, uint64_t token)
{
	struct liveupdate_session_preserve_fd a;

	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.fd = fd;
	a.token = token;
	return luo_ioctl(session_fd, LIVEUPDATE_SESSION_PRESERVE_FD, &a);
}

int luo_retrieve_fd(int session_fd, uint64_t token)
{
	struct liveupdate_session_retrieve_fd a;
	int ret;

	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.token = token;
	ret = luo_ioctl(session_fd, LIVEUPDATE_SESSION_RETRIEVE_FD, &a);
	return ret ? ret : a.fd;
}

int luo_finish(int session_fd)
{
	struct liveupdate_session_finish a;

	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	return luo_ioctl(session_fd, LIVEUPDATE_SESSION_FINISH, &a);
}

int luo_get_name(int session_fd, char *buf, size_t len)
{
	struct liveupdate_session_get_name a;
	int ret;

	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	ret = luo_ioctl(session_fd, LIVEUPDATE_SESSION_GET_NAME, &a);
	if (ret)
		return ret;
	snprintf(buf, len, "%.*s", LIVEUPDATE_SESSION_NAME_LENGTH, (char *)a.name);
	return 0;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int memfd_new(const char *name, const void *data, size_t len)
{
	int fd = memfd_create(name, MFD_CLOEXEC);
	int ret;

	if (fd < 0)
		return -errno;
	ret = len ? write_all(fd, data, len) : 0;
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

void *memfd_slurp(int fd, size_t *len)
{
	struct stat st;
	size_t done = 0;
	char *buf;

	if (fstat(fd, &st) < 0)
		return NULL;
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf)
		return NULL;
	while (done < (size_t)st.st_size) {
		ssize_t n = pread(fd, buf + done, (size_t)st.st_size - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return NULL;
		}
		done += (size_t)n;
	}
	*len = done;
	return buf;
}

int memfd_preserve_buf(int session_fd, uint64_t token, const void *data,
		       size_t len)
{
	int fd = memfd_new("luo-test", data, len);
	int ret;

	if (fd < 0)
		return fd;
	ret = luo_preserve_fd(session_fd, fd, token);
	/* LUO holds its own reference to a preserved file. */
	close(fd);
	return ret;
}

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

void pattern_fill(void *buf, size_t len, uint64_t seed, uint64_t off)
{
	unsigned char *p = buf;
	size_t i;

	for (i = 0; i < len; i++) {
		uint64_t pos = off + i;
		uint64_t w = mix64(seed ^ (pos >> 3));

		p[i] = (unsigned char)(w >> ((pos & 7) * 8));
	}
}

uint64_t fnv1a64(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t h = 0xcbf29ce484222325ULL;

	while (len--) {
		h ^= *p++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

void t_want_fds(long n)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		t_fail("getrlimit: %s", strerror(errno));
	n += 64;
	if ((long)rl.rlim_cur >= n)
		return;
	rl.rlim_cur = (rlim_t)n;
	if (rl.rlim_max < rl.rlim_cur)
		rl.rlim_max = rl.rlim_cur;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		t_fail("setrlimit(%ld): %s", n, strerror(errno));
}

void kmsg_for_each(void (*fn)(int level, const char *msg, void *ctx), void *ctx)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	char rec[2048];
	ssize_t n;

	if (fd < 0)
		t_fail("open /dev/kmsg: %s", strerror(errno));
	/* EPIPE: records were overwritten before we read them; go on with the rest. */
	while ((n = read(fd, rec, sizeof(rec) - 1)) > 0 || (n < 0 && errno == EPIPE)) {
		char *msg;

		if (n < 0)
			continue;
		rec[n] = 0;
		msg = strchr(rec, ';');
		if (msg)
			fn(atoi(rec) & 7, msg + 1, ctx);
	}
	close(fd);
}

struct kmsg_needle {
	const char *needle;
	int count;
};

static void count_needle(int level, const char *msg, void *ctx)
{
	struct kmsg_needle *n = ctx;

	(void)level;
	if (strstr(msg, n->needle))
		n->count++;
}

int kmsg_count(const char *needle)
{
	struct kmsg_needle n = { .needle = needle };

	kmsg_for_each(count_needle, &n);
	return n.count;
}

#define STATE_TOKEN 0x5157a7e0ULL

pid_t luo_fork_holder(void)
{
	pid_t pid = fork();

	if (pid < 0)
		t_fail("fork: %s", strerror(errno));
	if (pid > 0)
		return pid;
	/* The holder: own session, no stdio, sleeps until the kexec. */
	setsid();
	close(0);
	close(1);
	close(2);
	if (chdir("/") < 0)
		_exit(1);
	for (;;)
		pause();
}

static void hold_and_exit(const char *test_name)
{
	pid_t pid = luo_fork_holder();

	t_info("stage 1 done; holder pid %d keeps the sessions open", pid);
	printf("LUO-TEST: %s stage 1 ok\n", test_name);
	exit(0);
}

int luo_stage_main(int argc, char **argv, const char *test_name,
		   const char *state_name, luo_stage1_fn stage1,
		   luo_stage2_fn stage2)
{
	int want = 0, have, luo_fd, state_fd, opt, mfd, ret;
	char buf[16] = { 0 };

	t_set_name(test_name);
	while ((opt = getopt(argc, argv, "s:")) != -1) {
		if (opt == 's')
			want = atoi(optarg);
		else
			t_fail("usage: %s -s 1|2", argv[0]);
	}
	if (want != 1 && want != 2)
		t_fail("usage: %s -s 1|2", argv[0]);

	luo_fd = luo_open();
	if (luo_fd < 0)
		t_fail("open %s: %s", LUO_DEV, t_errname(-luo_fd));

	state_fd = luo_session_retrieve(luo_fd, state_name);
	if (state_fd == -ENOENT)
		have = 1;
	else if (state_fd >= 0)
		have = 2;
	else
		t_fail("retrieving state session '%s': %s", state_name,
		       t_errname(-state_fd));
	if (have != want)
		t_fail("asked for stage %d but the system is in stage %d", want, have);

	if (have == 1) {
		t_info("stage 1: preparing");
		state_fd = luo_session_create(luo_fd, state_name);
		if (state_fd < 0)
			t_fail("create state session: %s", t_errname(-state_fd));
		ret = memfd_preserve_buf(state_fd, STATE_TOKEN, "2", 1);
		if (ret)
			t_fail("preserve state memfd: %s", t_errname(-ret));
		stage1(luo_fd);
		close(luo_fd);
		hold_and_exit(test_name);
	}

	t_info("stage 2: verifying");
	mfd = luo_retrieve_fd(state_fd, STATE_TOKEN);
	if (mfd < 0)
		t_fail("retrieve state memfd: %s", t_errname(-mfd));
	if (pread(mfd, buf, sizeof(buf) - 1, 0) != 1 || buf[0] != '2')
		t_fail("state memfd holds '%s', expected '2'", buf);
	close(mfd);
	stage2(luo_fd);
	ret = luo_finish(state_fd);
	if (ret)
		t_fail("finish state session: %s", t_errname(-ret));
	close(state_fd);
	close(luo_fd);
	printf("LUO-TEST: %s stage 2 ok\n", test_name);
	return 0;
}
