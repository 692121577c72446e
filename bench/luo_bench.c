// SPDX-License-Identifier: GPL-2.0
/*
 * luo_bench: per-operation cost of the LUO core, run as the two-stage VM
 * test binary (/test -s 1, kexec, /test -s 2) by scripts/bench.sh.
 *
 * The size comes from the kernel command line, which init passes on to the
 * next kernel:
 *
 *   luo_bench=sessions:N   N empty sessions (no files)
 *   luo_bench=files:N      one session holding N small memfds
 *
 * Every path is run once before it is timed (warm-up): under QEMU TCG the
 * first run of any kernel code pays for translating it, which would swamp
 * the single operations of the files mode. The warm-up session
 * "bench-warm" (one memfd) crosses the kexec with the measured state, so
 * that stage 2 can warm its paths too; serialize and restore include it.
 *
 * Stage 1 (outgoing kernel), each loop timed as a whole with
 * clock_gettime(CLOCK_MONOTONIC), nothing but the ioctl/close inside:
 *   first_open      first open of /dev/liveupdate (one-off, cold)
 *   open            open of /dev/liveupdate, warm (20 reopens)
 *   create          N sessions created (sessions) / the one session (files)
 *   preserve        N memfds preserved into the session (files only)
 *   create_cycle    M more sessions created, on top of the N (sessions)
 *   close_outgoing  ... and closed again = unpreserved (sessions)
 *   preserve_cycle  N memfds preserved into a second session (files)
 *   unpreserve      close() of that session, per file (files)
 * The N sessions (or the session with N files) are then kept by a holder
 * process for the kexec. The host times the reboot path from printk
 * timestamps: from the record init writes just before reboot(RB_KEXEC) to
 * the first device shutdown line.
 *
 * Stage 2 (incoming kernel):
 *   open            first open of /dev/liveupdate (the C core deserializes
 *                   here; the Rust core binds handlers here), before warm-up
 *   retrieve_session, retrieve_fd (files), finish, close_incoming
 * and it copies the "initcall ... returned ... after N usecs" lines (boot
 * with initcall_debug) and the cores' own restore lines from the kernel log.
 *
 * Every result is one line:
 *   BENCH core=<rust|c> mode=<sessions|files> size=N stage=S op=OP n=COUNT
 *         total_ns=T per_op_ns=P
 * The benchmark measures; it fails (exit 1) only if an operation fails, as
 * the numbers would then mean nothing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../selftests/lib/luo.h"

#define MAX_CYCLE_SESSIONS 10000
#define REOPENS 20
#define WARM_SESSION "bench-warm"
#define WARMUP_SESSION "bench-warmup"
#define WARM_TOKEN 0x77ULL
#define FILES_SESSION "bench-files"
#define CYCLE_SESSION "bench-cycle"
#define FILE_TOKEN(j) (0x10000ULL + (uint64_t)(j))
#define FILE_BYTES 64

static const char *core = "?";
static const char *mode = "?";
static long size;
static int stage;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void report(const char *op, long n, uint64_t total)
{
	printf("BENCH core=%s mode=%s size=%ld stage=%d op=%s n=%ld total_ns=%llu per_op_ns=%llu\n",
	       core, mode, size, stage, op, n, (unsigned long long)total,
	       (unsigned long long)(n ? total / (uint64_t)n : 0));
}

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return 0;
}

/* "Rust LUO core" appears in the kernel log only with the Rust core. */
static int kernel_log_has(const char *needle)
{
	char rec[2048];
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	int found = 0;
	ssize_t n;

	if (fd < 0)
		return 0;
	for (;;) {
		n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue; /* overwritten records */
		if (n <= 0)
			break;
		rec[n] = 0;
		if (strstr(rec, needle))
			found = 1;
	}
	close(fd);
	return found;
}

/*
 * Copies the kernel log lines the host needs, with their timestamps (us):
 * the initcall_debug lines ("calling  <fn> @ pid" / "initcall <fn> returned
 * ... after N usecs", KERN_DEBUG so not on the console) of the functions
 * named by luo_bench_early=ADDR[,ADDR] (raw addresses: no KALLSYMS, so the
 * host resolves the early initcall in System.map and boots with nokaslr),
 * and the cores' restore lines. "after N usecs" comes from ktime_get(),
 * which is still jiffies-based (4 ms steps) at early initcall time; the
 * record timestamps come from the TSC and are what the host uses.
 */
static void dump_kernel_lines(const char *early)
{
	char rec[2048];
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	ssize_t n;

	if (fd < 0) {
		t_info("open /dev/kmsg: %s", strerror(errno));
		return;
	}
	for (;;) {
		unsigned long long ts = 0;
		char *msg, *nl, *p;
		int keep = 0;

		n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue;
		if (n <= 0)
			break;
		rec[n] = 0;
		msg = strchr(rec, ';');
		if (!msg)
			continue;
		*msg++ = 0;
		nl = strchr(msg, '\n');
		if (nl)
			*nl = 0;
		/* prio,seq,ts_usec,flags */
		p = strchr(rec, ',');
		if (p && (p = strchr(p + 1, ',')))
			ts = strtoull(p + 1, NULL, 10);
		if (!strncmp(msg, "calling  ", 9) || !strncmp(msg, "initcall ", 9)) {
			char addr[32];

			if (sscanf(msg + 9, "%31s", addr) == 1 && early && *addr &&
			    strstr(early, addr))
				keep = 1;
		} else if (strstr(msg, "LUO core") || strstr(msg, "liveupdate number") ||
			   !strncmp(msg, "luo:", 4)) {
			keep = 1;
		}
		if (keep)
			printf("BENCH-KLOG %llu %s\n", ts, msg);
	}
	close(fd);
}

static char early_addrs[256];

static void parse_cmdline(void)
{
	char cmdline[4096], *p;

	if (read_file("/proc/cmdline", cmdline, sizeof(cmdline)))
		t_fail("cannot read /proc/cmdline");
	p = strstr(cmdline, "luo_bench_early=");
	if (p) {
		snprintf(early_addrs, sizeof(early_addrs), "%s", p + strlen("luo_bench_early="));
		early_addrs[strcspn(early_addrs, " ")] = 0;
	}
	p = strstr(cmdline, "luo_bench=");
	if (!p)
		t_fail("no luo_bench= on the kernel command line");
	p += strlen("luo_bench=");
	if (!strncmp(p, "sessions:", 9)) {
		mode = "sessions";
		size = strtol(p + 9, NULL, 10);
	} else if (!strncmp(p, "files:", 6)) {
		mode = "files";
		size = strtol(p + 6, NULL, 10);
	} else {
		t_fail("luo_bench=%.20s: want sessions:N or files:N", p);
	}
	if (size < 1 || size > 1000000)
		t_fail("luo_bench size %ld out of range", size);
}

/* Room for n descriptors: RLIMIT_NOFILE, and fs.nr_open above it. */
static void want_fds(long n)
{
	char buf[64];
	long nr_open;

	if (!read_file("/proc/sys/fs/nr_open", buf, sizeof(buf))) {
		nr_open = strtol(buf, NULL, 10);
		if (nr_open < n + 128) {
			int fd = open("/proc/sys/fs/nr_open", O_WRONLY);

			snprintf(buf, sizeof(buf), "%ld", n + 128);
			if (fd < 0 || write(fd, buf, strlen(buf)) < 0)
				t_fail("cannot raise fs.nr_open to %s", buf);
			close(fd);
		}
	}
	t_want_fds(n);
}

static char (*names)[LIVEUPDATE_SESSION_NAME_LENGTH];

static void make_names(const char *prefix, long n)
{
	long i;

	free(names);
	names = calloc((size_t)n, sizeof(*names));
	T_CHECK(names != NULL, "no memory for %ld names", n);
	for (i = 0; i < n; i++)
		snprintf(names[i], sizeof(names[i]), "%s-%07ld", prefix, i);
}

/* Creates n sessions named by names[]; their fds go to fds[]. */
static uint64_t create_sessions(int luo_fd, int *fds, long n)
{
	uint64_t t0 = now_ns(), t1;
	long i;

	for (i = 0; i < n; i++) {
		fds[i] = luo_session_create(luo_fd, names[i]);
		if (fds[i] < 0)
			break;
	}
	t1 = now_ns();
	if (i < n)
		t_fail("create session %ld of %ld (%s): %s", i, n, names[i],
		       t_errname(-fds[i]));
	return t1 - t0;
}

/* n small memfds, each with FILE_BYTES of distinct contents. */
static int *make_memfds(long n)
{
	char data[FILE_BYTES];
	int *fds = calloc((size_t)n, sizeof(int));
	long j;

	T_CHECK(fds != NULL, "no memory");
	for (j = 0; j < n; j++) {
		memset(data, (int)(j & 0xff), sizeof(data));
		fds[j] = memfd_new("bench", data, sizeof(data));
		T_CHECK(fds[j] >= 0, "memfd %ld: %s", j, t_errname(-fds[j]));
	}
	return fds;
}

static uint64_t preserve_all(int sfd, int *mfds, long n)
{
	uint64_t t0 = now_ns(), t1;
	long j;
	int ret = 0;

	for (j = 0; j < n; j++) {
		ret = luo_preserve_fd(sfd, mfds[j], FILE_TOKEN(j));
		if (ret)
			break;
	}
	t1 = now_ns();
	if (ret)
		t_fail("preserve file %ld of %ld: %s", j, n, t_errname(-ret));
	/* LUO holds its own reference to each preserved file. */
	for (j = 0; j < n; j++)
		close(mfds[j]);
	return t1 - t0;
}

static void hold_and_exit(void)
{
	int fd;

	luo_fork_holder();
	fd = open("/proc/sys/kernel/printk", O_WRONLY);
	printf("LUO-TEST: luo_bench stage 1 ok\n");
	/*
	 * The host boots with "quiet" (no console backlog to drain in the
	 * reboot path) and reads the reboot path's timestamps from the
	 * console (from init's record before reboot(RB_KEXEC)): show
	 * everything from here on.
	 */
	if (fd < 0 || write(fd, "7", 1) < 0)
		t_info("cannot raise the console log level");
	if (fd >= 0)
		close(fd);
	exit(0);
}

/* Creates session @name holding one small memfd; returns the session fd. */
static int session_with_memfd(int luo_fd, const char *name)
{
	static const char data[] = "warm";
	int sfd, mfd, ret;

	sfd = luo_session_create(luo_fd, name);
	T_CHECK(sfd >= 0, "create %s: %s", name, t_errname(-sfd));
	mfd = memfd_new(name, data, sizeof(data));
	T_CHECK(mfd >= 0, "memfd: %s", t_errname(-mfd));
	ret = luo_preserve_fd(sfd, mfd, WARM_TOKEN);
	T_CHECK(ret == 0, "preserve into %s: %s", name, t_errname(-ret));
	close(mfd);
	return sfd;
}

/*
 * Runs every stage-1 path once: create, preserve, close (unpreserve) of a
 * throwaway session, then the warm session that crosses the kexec (its fd
 * stays open: the holder keeps it).
 */
static void warm_up_stage1(int luo_fd)
{
	close(session_with_memfd(luo_fd, WARMUP_SESSION));
	session_with_memfd(luo_fd, WARM_SESSION);
}

/* Runs every stage-2 path once on the warm session. */
static void warm_up_stage2(int luo_fd)
{
	int sfd, mfd, ret;

	sfd = luo_session_retrieve(luo_fd, WARM_SESSION);
	T_CHECK(sfd >= 0, "retrieve %s: %s", WARM_SESSION, t_errname(-sfd));
	mfd = luo_retrieve_fd(sfd, WARM_TOKEN);
	T_CHECK(mfd >= 0, "retrieve the warm memfd: %s", t_errname(-mfd));
	ret = luo_finish(sfd);
	T_CHECK(ret == 0, "finish %s: %s", WARM_SESSION, t_errname(-ret));
	close(sfd);
	close(mfd);
}

/* Warm opens of /dev/liveupdate (one opener at a time): returns a new fd. */
static int time_reopens(int luo_fd)
{
	uint64_t total = 0, t0, t1;
	int i;

	for (i = 0; i < REOPENS; i++) {
		close(luo_fd);
		t0 = now_ns();
		luo_fd = luo_open();
		t1 = now_ns();
		if (luo_fd < 0)
			t_fail("reopen %s: %s", LUO_DEV, t_errname(-luo_fd));
		total += t1 - t0;
	}
	report("open", REOPENS, total);
	return luo_fd;
}

static void stage1_sessions(int luo_fd)
{
	long m = size < MAX_CYCLE_SESSIONS ? size : MAX_CYCLE_SESSIONS;
	int *fds = calloc((size_t)size, sizeof(int));
	int *cyc = calloc((size_t)m, sizeof(int));
	uint64_t t0, t1;
	long i;

	T_CHECK(fds && cyc, "no memory");
	want_fds(size + m + 64);

	make_names("s", size);
	report("create", size, create_sessions(luo_fd, fds, size));

	/* Close = unpreserve, measured with the N sessions in place. */
	make_names("c", m);
	report("create_cycle", m, create_sessions(luo_fd, cyc, m));
	t0 = now_ns();
	for (i = 0; i < m; i++)
		close(cyc[i]);
	t1 = now_ns();
	report("close_outgoing", m, t1 - t0);
	/* fds[] stay open; the holder keeps them. */
}

static void stage1_files(int luo_fd)
{
	uint64_t t0, t1;
	int sfd, *mfds;

	want_fds(size + 64);

	/* The cycle first: preserve N into a session, then close it. */
	sfd = luo_session_create(luo_fd, CYCLE_SESSION);
	T_CHECK(sfd >= 0, "create %s: %s", CYCLE_SESSION, t_errname(-sfd));
	mfds = make_memfds(size);
	report("preserve_cycle", size, preserve_all(sfd, mfds, size));
	free(mfds);
	t0 = now_ns();
	close(sfd);
	t1 = now_ns();
	report("unpreserve", size, t1 - t0);

	t0 = now_ns();
	sfd = luo_session_create(luo_fd, FILES_SESSION);
	t1 = now_ns();
	T_CHECK(sfd >= 0, "create %s: %s", FILES_SESSION, t_errname(-sfd));
	report("create", 1, t1 - t0);
	mfds = make_memfds(size);
	report("preserve", size, preserve_all(sfd, mfds, size));
	free(mfds);
}

static void stage2_sessions(int luo_fd)
{
	int *fds = calloc((size_t)size, sizeof(int));
	uint64_t t0, t1;
	long i;
	int ret = 0;

	T_CHECK(fds != NULL, "no memory");
	want_fds(size + 64);
	make_names("s", size);

	t0 = now_ns();
	for (i = 0; i < size; i++) {
		fds[i] = luo_session_retrieve(luo_fd, names[i]);
		if (fds[i] < 0)
			break;
	}
	t1 = now_ns();
	if (i < size)
		t_fail("retrieve %s: %s", names[i], t_errname(-fds[i]));
	report("retrieve_session", size, t1 - t0);

	t0 = now_ns();
	for (i = 0; i < size; i++) {
		ret = luo_finish(fds[i]);
		if (ret)
			break;
	}
	t1 = now_ns();
	if (ret)
		t_fail("finish %s: %s", names[i], t_errname(-ret));
	report("finish", size, t1 - t0);

	t0 = now_ns();
	for (i = 0; i < size; i++)
		close(fds[i]);
	t1 = now_ns();
	report("close_incoming", size, t1 - t0);
}

static void stage2_files(int luo_fd)
{
	int *fds = calloc((size_t)size, sizeof(int));
	uint64_t t0, t1;
	int sfd, ret;
	long j;

	T_CHECK(fds != NULL, "no memory");
	want_fds(size + 64);

	t0 = now_ns();
	sfd = luo_session_retrieve(luo_fd, FILES_SESSION);
	t1 = now_ns();
	T_CHECK(sfd >= 0, "retrieve %s: %s", FILES_SESSION, t_errname(-sfd));
	report("retrieve_session", 1, t1 - t0);

	t0 = now_ns();
	for (j = 0; j < size; j++) {
		fds[j] = luo_retrieve_fd(sfd, FILE_TOKEN(j));
		if (fds[j] < 0)
			break;
	}
	t1 = now_ns();
	if (j < size)
		t_fail("retrieve file %ld: %s", j, t_errname(-fds[j]));
	report("retrieve_fd", size, t1 - t0);

	/* Spot check: the contents came back. */
	for (j = 0; j < size; j += size / 7 + 1) {
		unsigned char b = 0;

		T_CHECK(pread(fds[j], &b, 1, 0) == 1 && b == (unsigned char)(j & 0xff),
			"file %ld holds %#x", j, b);
	}

	t0 = now_ns();
	ret = luo_finish(sfd);
	t1 = now_ns();
	T_CHECK(ret == 0, "finish: %s", t_errname(-ret));
	report("finish", size, t1 - t0);

	t0 = now_ns();
	close(sfd);
	t1 = now_ns();
	report("close_incoming", 1, t1 - t0);
	for (j = 0; j < size; j++)
		close(fds[j]);
}

int main(int argc, char **argv)
{
	int opt, luo_fd;
	uint64_t t0, t1;

	t_set_name("luo_bench");
	while ((opt = getopt(argc, argv, "s:")) != -1) {
		if (opt == 's')
			stage = atoi(optarg);
		else
			t_fail("usage: %s -s 1|2", argv[0]);
	}
	if (stage != 1 && stage != 2)
		t_fail("usage: %s -s 1|2", argv[0]);
	parse_cmdline();
	core = kernel_log_has("Rust LUO core") ? "rust" : "c";
	t_info("stage %d: core %s, %s:%ld", stage, core, mode, size);

	t0 = now_ns();
	luo_fd = luo_open();
	t1 = now_ns();
	if (luo_fd < 0)
		t_fail("open %s: %s", LUO_DEV, t_errname(-luo_fd));
	report(stage == 1 ? "first_open" : "open", 1, t1 - t0);

	if (stage == 1) {
		warm_up_stage1(luo_fd);
		luo_fd = time_reopens(luo_fd);
		if (!strcmp(mode, "sessions"))
			stage1_sessions(luo_fd);
		else
			stage1_files(luo_fd);
		close(luo_fd);
		hold_and_exit();
	}

	warm_up_stage2(luo_fd);
	if (!strcmp(mode, "sessions"))
		stage2_sessions(luo_fd);
	else
		stage2_files(luo_fd);
	close(luo_fd);
	dump_kernel_lines(early_addrs);
	printf("LUO-TEST: luo_bench stage 2 ok\n");
	return 0;
}
