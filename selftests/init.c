// SPDX-License-Identifier: GPL-2.0
/*
 * PID 1 of the LUO test initramfs.
 *
 * Stage 1 (no "luo_stage=2" on the command line): load /kernel with
 * /initrd.img through kexec_file_load(), run "/test -s 1", then kexec.
 * Stage 2: run "/test -s 2", report the result, reboot (QEMU runs with
 * -no-reboot, so this ends the VM).
 *
 * If /single-stage exists, "/test" runs once without arguments and no kexec
 * happens (for single-boot tests such as upstream's liveupdate.c).
 *
 * If /relay exists in stage 2, this kernel is a middle hop: after "/test -s 2"
 * verified what the previous kernel handed over, it loads its own /kernel and
 * /initrd.img, runs "/test -s 1" to preserve everything again, and kexecs on.
 *
 * The host side (scripts/vmtest.sh) parses these console markers:
 *   LUO-INIT: ...                 progress
 *   LUO-RESULT: PASS              stage 2 succeeded
 *   LUO-RESULT: FAIL <reason>     anything went wrong
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define NEXT_KERNEL "/kernel"
#define NEXT_INITRD "/initrd.img"
#define TEST_BIN "/test"
#define STAGE2_ARG "luo_stage=2"
#define SINGLE_STAGE "/single-stage"
#define RELAY "/relay"

static void say(const char *fmt, ...)
{
	va_list ap;

	printf("LUO-INIT: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static void __attribute__((noreturn)) finish(int stage, int ok, const char *why)
{
	if (ok)
		printf("LUO-RESULT: PASS\n");
	else
		printf("LUO-RESULT: FAIL stage %d: %s\n", stage, why);
	fflush(stdout);
	/* The verdict must reach the serial line before the reboot cuts it. */
	tcdrain(STDOUT_FILENO);
	sync();
	reboot(RB_AUTOBOOT);
	/* Not reached; if it is, the host times out. */
	for (;;)
		pause();
}

/*
 * Reboots into the loaded kernel. Just before, a kernel log record marks the
 * start of the reboot path for anyone timing it from the console
 * (scripts/bench.sh).
 */
static void __attribute__((noreturn)) kexec_next(int stage, const char *msg)
{
	static const char mark[] = "<5>luo-init: reboot(RB_KEXEC)\n";
	int fd;

	say("%s", msg);
	sync();
	fflush(stdout);
	/* Drained before the mark: the console line stays whole, out of the timed path. */
	tcdrain(STDOUT_FILENO);
	fd = open("/dev/kmsg", O_WRONLY);
	if (fd >= 0) {
		if (write(fd, mark, sizeof(mark) - 1) < 0)
			say("cannot write the kexec mark to /dev/kmsg");
		close(fd);
	}
	reboot(RB_KEXEC);
	finish(stage, 0, "reboot(RB_KEXEC) returned");
}

static void do_mount(const char *src, const char *dst, const char *type)
{
	mkdir(dst, 0755);
	if (mount(src, dst, type, 0, NULL) < 0 && errno != EBUSY)
		say("mount %s on %s failed: %s", type, dst, strerror(errno));
}

static void setup_console(void)
{
	int fd = open("/dev/console", O_RDWR);

	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	setvbuf(stderr, NULL, _IONBF, 0);
}

static int read_cmdline(char *buf, size_t len)
{
	int fd = open("/proc/cmdline", O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	return 0;
}

static int load_next_kernel(const char *cmdline)
{
	char next[4096 + 64];
	int kfd, ifd;
	long ret;

	snprintf(next, sizeof(next), "%s %s", cmdline, STAGE2_ARG);
	kfd = open(NEXT_KERNEL, O_RDONLY);
	if (kfd < 0) {
		say("open %s: %s", NEXT_KERNEL, strerror(errno));
		return -1;
	}
	ifd = open(NEXT_INITRD, O_RDONLY);
	if (ifd < 0) {
		say("open %s: %s", NEXT_INITRD, strerror(errno));
		close(kfd);
		return -1;
	}
	ret = syscall(SYS_kexec_file_load, kfd, ifd, strlen(next) + 1, next, 0UL);
	if (ret < 0)
		say("kexec_file_load: %s", strerror(errno));
	else
		say("next kernel loaded, cmdline: %s", next);
	close(kfd);
	close(ifd);
	return ret < 0 ? -1 : 0;
}

static int run_test(int stage)
{
	int single = access(SINGLE_STAGE, F_OK) == 0;
	char arg[8];
	int status;
	pid_t pid;

	snprintf(arg, sizeof(arg), "%d", stage);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		char *argv[] = { TEST_BIN, single ? NULL : "-s", arg, NULL };
		char *envp[] = { "PATH=/", NULL };

		execve(TEST_BIN, argv, envp);
		printf("LUO-INIT: execve %s: %s\n", TEST_BIN, strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	say("test killed by signal %d", WTERMSIG(status));
	return 128 + WTERMSIG(status);
}

int main(void)
{
	char cmdline[4096], why[128];
	struct utsname u;
	int stage, rc;

	do_mount("devtmpfs", "/dev", "devtmpfs");
	setup_console();
	do_mount("proc", "/proc", "proc");
	do_mount("sysfs", "/sys", "sysfs");
	do_mount("debugfs", "/sys/kernel/debug", "debugfs");

	if (read_cmdline(cmdline, sizeof(cmdline)))
		finish(0, 0, "cannot read /proc/cmdline");
	stage = strstr(cmdline, STAGE2_ARG) ? 2 : 1;
	uname(&u);
	say("stage %d start (kernel %s %s)", stage, u.release, u.version);

	if (access(SINGLE_STAGE, F_OK) == 0) {
		say("single-stage test, no kexec");
		rc = run_test(stage);
		if (rc) {
			snprintf(why, sizeof(why), "%s exited with %d", TEST_BIN, rc);
			finish(stage, 0, why);
		}
		finish(stage, 1, NULL);
	}

	if (stage == 1 && load_next_kernel(cmdline))
		finish(1, 0, "kexec_file_load failed");

	rc = run_test(stage);
	if (rc) {
		snprintf(why, sizeof(why), "%s -s %d exited with %d", TEST_BIN, stage, rc);
		finish(stage, 0, why);
	}
	if (stage == 2 && access(RELAY, F_OK) == 0) {
		/* A middle kernel: hand everything on to the next one. */
		say("relay: stage 2 verified, preparing again for the next kernel");
		if (load_next_kernel(cmdline))
			finish(2, 0, "kexec_file_load failed");
		rc = run_test(1);
		if (rc) {
			snprintf(why, sizeof(why), "%s -s 1 (relay) exited with %d", TEST_BIN, rc);
			finish(2, 0, why);
		}
		kexec_next(2, "relay ok, kexec into the next kernel");
	}
	if (stage == 2)
		finish(2, 1, NULL);

	kexec_next(1, "stage 1 ok, kexec into the next kernel");
}
