// SPDX-License-Identifier: GPL-2.0
/*
 * kmemleak around a test stage: the leaks from before the test are recorded and
 * cleared, and at exit two scans (a leak must be seen twice, and objects younger than
 * 5 s are not reported) print "KMEMLEAK-RESULT: stage N baseline B leaks L" for the
 * host to judge.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kmemleak.h"
#include "luo.h"

#define KMEMLEAK "/sys/kernel/debug/kmemleak"
static int kml_stage, kml_baseline = -1, kml_armed;

static int kmemleak_cmd(const char *cmd)
{
	int fd = open(KMEMLEAK, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, cmd, strlen(cmd));
	close(fd);
	return n < 0 ? -errno : 0;
}

/* Prints every line of the report with a prefix; returns the number of leaks. */
static int kmemleak_report(const char *prefix)
{
	size_t cap = 1 << 16, used = 0;
	char *buf = malloc(cap), *line, *nl;
	int fd = open(KMEMLEAK, O_RDONLY), leaks = 0;
	ssize_t n;

	if (fd < 0 || !buf) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((n = read(fd, buf + used, cap - used - 1)) > 0) {
		used += (size_t)n;
		if (cap - used < 4096) {
			char *bigger = realloc(buf, cap * 2);

			if (!bigger)
				break;
			buf = bigger;
			cap *= 2;
		}
	}
	close(fd);
	buf[used] = 0;
	for (line = buf; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		if (!strncmp(line, "unreferenced object", 19))
			leaks++;
		printf("%s%s\n", prefix, line);
		if (!nl)
			break;
	}
	free(buf);
	return leaks;
}

static void kmemleak_final(void)
{
	int leaks;

	if (!kml_armed)
		return;
	kml_armed = 0;
	/* Objects younger than 5 s are not reported; a leak must be seen twice. */
	sleep(6);
	leaks = -1;
	if (!kmemleak_cmd("scan")) {
		sleep(1);
		if (!kmemleak_cmd("scan"))
			leaks = kmemleak_report("KMEMLEAK| ");
	}
	if (leaks < 0) {
		printf("KMEMLEAK-RESULT: stage %d unavailable at the end (%s)\n",
		       kml_stage, strerror(errno));
		return;
	}
	printf("KMEMLEAK-RESULT: stage %d baseline %d leaks %d\n", kml_stage,
	       kml_baseline, leaks);
}

/* Records the leaks from before the test, then forgets them. */
void kmemleak_start(int stage)
{
	kml_stage = stage;
	if (kmemleak_cmd("scan")) {
		printf("KMEMLEAK-RESULT: stage %d unavailable (%s)\n", stage,
		       strerror(errno));
		return;
	}
	kmemleak_cmd("scan");
	kml_baseline = kmemleak_report("KMEMLEAK-BASELINE| ");
	kmemleak_cmd("clear");
	t_info("kmemleak: %d leak(s) before the test (cleared)", kml_baseline);
	kml_armed = 1;
	atexit(kmemleak_final);
}
