// SPDX-License-Identifier: GPL-2.0
/*
 * What one core hands over, the other must take back whole: run with the C core on
 * one side of the kexec and the Rust core on the other (either way), or the same core
 * on both.
 *
 * Stage 1 preserves:
 *   - one session for every permitted name length, 1 to 63 bytes (63 sessions, so the
 *     session chain needs two blocks); every seventh is empty, the others hold one
 *     memfd of a length-dependent size and pattern, and one also holds an empty memfd;
 *   - "io-many", 70 memfds (two file blocks);
 *   - "io-reclaim", a 16 MiB memfd that stage 2 never retrieves;
 *   - "io-meta", the live update number of the outgoing root, read from KHO's debugfs.
 * Stage 2 checks every name (GET_NAME too) and every byte, that the live update number
 * went up by one, that finishing frees the never-retrieved memfd's memory, that
 * finished sessions are gone, and that the kernel's test FLBs came back.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/luo.h"

#define NAME_MAX_LEN (LIVEUPDATE_SESSION_NAME_LENGTH - 1)
#define MANY 70
#define RECLAIM_SIZE (16UL << 20)
#define LUO_OUT_ROOT "/sys/kernel/debug/kho/out/sub_fdts/LUO"

static void name_of_length(char *buf, int len)
{
	for (int i = 0; i < len; i++)
		buf[i] = 'a' + (len + i) % 26;
	buf[len] = 0;
}

static size_t size_of_length(int len)
{
	return (size_t)len * 97 + 3;
}

static uint64_t outgoing_liveupdate_num(void)
{
	unsigned char root[32];
	uint64_t num;
	int fd = open(LUO_OUT_ROOT, O_RDONLY);

	T_CHECK(fd >= 0, "open %s: %s", LUO_OUT_ROOT, strerror(errno));
	T_CHECK(read(fd, root, sizeof(root)) == sizeof(root), "read the LUO root");
	close(fd);
	T_CHECK(!memcmp(root, "luo-v5\0\0", 8), "outgoing root is not luo-v5");
	memcpy(&num, root + 8, sizeof(num));
	return num;
}

static long mem_free_kib(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[128];
	long kib = -1;

	T_CHECK(f, "open /proc/meminfo");
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemFree: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static void preserve_pattern(int session, uint64_t token, size_t size, uint64_t seed)
{
	char *buf = malloc(size ? size : 1);

	T_CHECK(buf, "malloc");
	pattern_fill(buf, size, seed, 0);
	T_EXPECT_RET(memfd_preserve_buf(session, token, buf, size), 0);
	free(buf);
}

static void check_pattern(int session, uint64_t token, size_t size, uint64_t seed)
{
	int fd = luo_retrieve_fd(session, token);
	char *want = malloc(size ? size : 1), *got;
	size_t len;

	T_CHECK(fd >= 0, "retrieve token %llu: %s", (unsigned long long)token, t_errname(-fd));
	got = memfd_slurp(fd, &len);
	pattern_fill(want, size, seed, 0);
	T_CHECK(len == size && !memcmp(got, want, size),
		"token %llu: %zu bytes back, %zu expected, or different bytes",
		(unsigned long long)token, len, size);
	free(got);
	free(want);
	close(fd);
}

static void stage1(int luo_fd)
{
	char name[LIVEUPDATE_SESSION_NAME_LENGTH];
	uint64_t num = outgoing_liveupdate_num();
	int s, len;

	for (len = 1; len <= NAME_MAX_LEN; len++) {
		name_of_length(name, len);
		s = luo_session_create(luo_fd, name);
		T_CHECK(s >= 0, "create %d-byte name: %s", len, t_errname(-s));
		if (len % 7)
			preserve_pattern(s, len, size_of_length(len), len);
		if (len == 5)
			T_EXPECT_RET(memfd_preserve_buf(s, 1000, "", 0), 0);
	}

	s = luo_session_create(luo_fd, "io-many");
	T_CHECK(s >= 0, "create io-many");
	for (int i = 0; i < MANY; i++)
		preserve_pattern(s, 5000 + i, 64 + i, 5000 + i);

	s = luo_session_create(luo_fd, "io-reclaim");
	T_CHECK(s >= 0, "create io-reclaim");
	preserve_pattern(s, 1, RECLAIM_SIZE, 77);

	s = luo_session_create(luo_fd, "io-meta");
	T_CHECK(s >= 0, "create io-meta");
	T_EXPECT_RET(memfd_preserve_buf(s, 1, &num, sizeof(num)), 0);
	t_info("preserved %d named sessions, %d + 1 memfds, live update #%llu outgoing",
	       NAME_MAX_LEN, MANY, (unsigned long long)num);
}

/*
 * The kernel's LUO test (CONFIG_LIVEUPDATE_TEST) attaches three FLBs to the memfd
 * handler: stage 1's memfds preserved them, and this boot retrieved them when the
 * handler registered, from the FLB page the other kernel wrote.
 */
static void check_test_flbs(void)
{
	char line[96];

	for (int i = 0; i < 3; i++) {
		snprintf(line, sizeof(line),
			 "liveupdate-test-flb-v%d: found flb data from the previous boot", i);
		T_CHECK(kmsg_count(line) == 1, "kernel log lacks '%s'", line);
	}
	T_CHECK(kmsg_count("liveupdate_flb_get_incoming for") == 0,
		"an FLB retrieve failed (see the kernel log)");
	T_CHECK(kmsg_count(": ERROR - ") == 0, "a test FLB got wrong data (see the kernel log)");
	t_info("the 3 test FLBs came back with their data");
}

static void stage2(int luo_fd)
{
	char name[LIVEUPDATE_SESSION_NAME_LENGTH], got[LIVEUPDATE_SESSION_NAME_LENGTH];
	uint64_t before, now = outgoing_liveupdate_num();
	long free_before, free_after;
	int s, fd, len;
	size_t n;
	void *buf;

	s = luo_session_retrieve(luo_fd, "io-meta");
	T_CHECK(s >= 0, "retrieve io-meta: %s", t_errname(-s));
	fd = luo_retrieve_fd(s, 1);
	T_CHECK(fd >= 0, "retrieve io-meta memfd");
	buf = memfd_slurp(fd, &n);
	T_CHECK(n == sizeof(before), "io-meta holds %zu bytes", n);
	memcpy(&before, buf, sizeof(before));
	free(buf);
	close(fd);
	T_EXPECT_RET(luo_finish(s), 0);
	close(s);
	T_CHECK(now == before + 1, "live update number %llu after #%llu",
		(unsigned long long)now, (unsigned long long)before);
	t_info("live update number went from %llu to %llu", (unsigned long long)before,
	       (unsigned long long)now);

	for (len = 1; len <= NAME_MAX_LEN; len++) {
		name_of_length(name, len);
		s = luo_session_retrieve(luo_fd, name);
		T_CHECK(s >= 0, "retrieve %d-byte name: %s", len, t_errname(-s));
		T_EXPECT_RET(luo_get_name(s, got, sizeof(got)), 0);
		T_CHECK(!strcmp(got, name), "GET_NAME of a %d-byte name gave '%s'", len, got);
		if (len % 7)
			check_pattern(s, len, size_of_length(len), len);
		else
			T_EXPECT_RET(luo_retrieve_fd(s, len), -ENOENT);
		if (len == 5)
			check_pattern(s, 1000, 0, 0);
		T_EXPECT_RET(luo_finish(s), 0);
		close(s);
		T_EXPECT_RET(luo_session_retrieve(luo_fd, name), -ENOENT);
	}
	t_info("all %d names (1 to %d bytes) and their memfds came back", NAME_MAX_LEN,
	       NAME_MAX_LEN);

	s = luo_session_retrieve(luo_fd, "io-many");
	T_CHECK(s >= 0, "retrieve io-many");
	for (int i = MANY - 1; i >= 0; i--)
		check_pattern(s, 5000 + i, 64 + i, 5000 + i);
	T_EXPECT_RET(luo_finish(s), 0);
	close(s);
	t_info("all %d memfds of io-many came back", MANY);

	s = luo_session_retrieve(luo_fd, "io-reclaim");
	T_CHECK(s >= 0, "retrieve io-reclaim");
	free_before = mem_free_kib();
	T_EXPECT_RET(luo_finish(s), 0);
	close(s);
	/*
	 * Freed pages may wait in per-CPU lists, which MemFree does not count, until the
	 * kernel drains them: give it up to 5 s.
	 */
	for (int i = 0; i < 50; i++) {
		free_after = mem_free_kib();
		if (free_after - free_before >= (long)(RECLAIM_SIZE >> 10) / 2)
			break;
		usleep(100000);
	}
	T_CHECK(free_after - free_before >= (long)(RECLAIM_SIZE >> 10) / 2,
		"finish freed %ld KiB, expected about %lu", free_after - free_before,
		RECLAIM_SIZE >> 10);
	t_info("finishing the never-retrieved 16 MiB memfd freed %ld KiB",
	       free_after - free_before);
	T_EXPECT_RET(luo_session_retrieve(luo_fd, "io-reclaim"), -ENOENT);
	check_test_flbs();
}

int main(int argc, char **argv)
{
	return luo_stage_main(argc, argv, "luo_interop", "interop_state", stage1, stage2);
}
