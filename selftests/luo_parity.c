// SPDX-License-Identifier: GPL-2.0
/*
 * luo_parity: many small cases of the LUO userspace API, one result line
 * each, so that two kernels (upstream's C core and the Rust core) can be
 * compared case by case (scripts/parity.sh).
 *
 * Every case prints exactly one line
 *
 *   PARITY <case-name> <result>
 *
 * where the result is deterministic: return values and errno names, flags,
 * contents; never pointers, fd numbers, inode numbers or timings. Stage 1
 * runs the cases of a fresh kernel and sets up the sessions "p2-*" for
 * stage 2, which runs after the kexec. Every stage ends with
 * "PARITY-DONE stage N cases M". The program exits 0 unless its own setup
 * fails: disagreements are for the host to judge.
 *
 * Cases keep their state apart: every case uses its own session names and
 * tokens, and closes what it opened.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "lib/luo.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

#define NAME_LEN LIVEUPDATE_SESSION_NAME_LENGTH
#define PAGE 4096

static int stage, ncases, luo;

/* ---------------------------------------------------------------- output */

static void out(const char *cas, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void out(const char *cas, const char *fmt, ...)
{
	char res[600], line[800];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(res, sizeof(res), fmt, ap);
	va_end(ap);
	/* One write per line, so that nothing else lands inside it. */
	n = snprintf(line, sizeof(line), "PARITY %s %s\n", cas, res);
	if (n > (int)sizeof(line) - 1)
		n = sizeof(line) - 1;
	if (write(1, line, (size_t)n) < 0)
		exit(3);
	ncases++;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	char msg[400], line[500];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = snprintf(line, sizeof(line), "luo_parity: FAIL: setup: %s\n", msg);
	if (write(1, line, (size_t)n) < 0)
		exit(2);
	exit(1);
}

static const char *errname(int e)
{
	static char buf[8][24];
	static int i;

	switch (e) {
#define E(x) case x: return #x
	E(EPERM); E(ENOENT); E(EINTR); E(EIO); E(ENXIO); E(E2BIG); E(EBADF);
	E(EAGAIN); E(ENOMEM); E(EACCES); E(EFAULT); E(EBUSY); E(EEXIST);
	E(ENODEV); E(ENOTDIR); E(EISDIR); E(EINVAL); E(ENFILE); E(EMFILE);
	E(ENOTTY); E(EFBIG); E(ENOSPC); E(ESPIPE); E(EROFS); E(ERANGE);
	E(ENOSYS); E(EOPNOTSUPP); E(ENOTSOCK); E(EOVERFLOW);
#undef E
	}
	i = (i + 1) % 8;
	snprintf(buf[i], sizeof(buf[i]), "errno%d", e);
	return buf[i];
}

/* "ret=0" or "ret=-1 errno=NAME" for a syscall result and its errno. */
static const char *rs(long r, int e)
{
	static char buf[16][48];
	static int i;

	i = (i + 1) % 16;
	if (r < 0)
		snprintf(buf[i], sizeof(buf[i]), "ret=-1 errno=%s", errname(e));
	else
		snprintf(buf[i], sizeof(buf[i]), "ret=0");
	return buf[i];
}

/* Result of a syscall expression, errno read after it ran. */
#define SYS(expr)                                                   \
	({                                                          \
		long __r;                                           \
		errno = 0;                                          \
		__r = (long)(expr);                                 \
		rs(__r, __r < 0 ? errno : 0);                       \
	})

/* ioctl() that keeps its errno in *e (0 on success). */
static long xio(int fd, unsigned long cmd, void *arg, int *e)
{
	long r;

	errno = 0;
	r = ioctl(fd, cmd, arg);
	*e = r < 0 ? errno : 0;
	return r;
}

/* Result of a plain ioctl. */
static const char *io(int fd, unsigned long cmd, void *arg)
{
	int e;
	long r = xio(fd, cmd, arg, &e);

	return rs(r, e);
}

/* Printable form of a byte string: printable ASCII as is, else \xNN. */
static const char *esc(const void *data, size_t len)
{
	static char buf[4][300];
	static int i;
	const unsigned char *p = data;
	size_t o = 0, k;
	char *b;

	i = (i + 1) % 4;
	b = buf[i];
	for (k = 0; k < len && o < sizeof(buf[i]) - 6; k++) {
		if (p[k] > 0x20 && p[k] < 0x7f && p[k] != '\\')
			b[o++] = (char)p[k];
		else
			o += (size_t)sprintf(b + o, "\\x%02x", p[k]);
	}
	b[o] = 0;
	if (!len)
		strcpy(b, "(empty)");
	return b;
}

/* ------------------------------------------------------------ raw structs */

struct sess_arg {
	uint32_t size;
	int32_t fd;
	unsigned char name[NAME_LEN];
};

struct fd_arg {
	uint32_t size;
	int32_t fd;
	uint64_t token;
};

struct fin_arg {
	uint32_t size;
	uint32_t reserved;
};

struct gn_arg {
	uint32_t size;
	uint32_t reserved;
	unsigned char name[NAME_LEN];
};

/* Copies a C string into a zeroed 64-byte name field (no NUL at 64). */
static void put_name(unsigned char *field, const char *name)
{
	size_t len = strlen(name);

	memset(field, 0, NAME_LEN);
	memcpy(field, name, len < NAME_LEN ? len : NAME_LEN);
}

static void set_name(struct sess_arg *a, const char *name)
{
	put_name(a->name, name);
}

/* CREATE_SESSION with a raw 64-byte name field: fd or -errno. */
static int create_raw(const unsigned char *field)
{
	struct sess_arg a = { .size = sizeof(a) };
	int e;

	memcpy(a.name, field, NAME_LEN);
	if (xio(luo, LIVEUPDATE_IOCTL_CREATE_SESSION, &a, &e) < 0)
		return -e;
	return a.fd;
}

static int create(const char *name)
{
	unsigned char f[NAME_LEN];

	put_name(f, name);
	return create_raw(f);
}

static int retrieve_raw(const unsigned char *field)
{
	struct sess_arg a = { .size = sizeof(a) };
	int e;

	memcpy(a.name, field, NAME_LEN);
	if (xio(luo, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, &a, &e) < 0)
		return -e;
	return a.fd;
}

static int retrieve(const char *name)
{
	unsigned char f[NAME_LEN];

	put_name(f, name);
	return retrieve_raw(f);
}

static int preserve(int sfd, int fd, uint64_t token)
{
	struct fd_arg a = { .size = sizeof(a), .fd = fd, .token = token };
	int e;

	return xio(sfd, LIVEUPDATE_SESSION_PRESERVE_FD, &a, &e) < 0 ? -e : 0;
}

static int retrieve_fd(int sfd, uint64_t token)
{
	struct fd_arg a = { .size = sizeof(a), .fd = -1, .token = token };
	int e;

	if (xio(sfd, LIVEUPDATE_SESSION_RETRIEVE_FD, &a, &e) < 0)
		return -e;
	return a.fd;
}

static int finish(int sfd)
{
	struct fin_arg a = { .size = sizeof(a) };
	int e;

	return xio(sfd, LIVEUPDATE_SESSION_FINISH, &a, &e) < 0 ? -e : 0;
}

/* "ret=0" for fd >= 0 (closing it), else the errno of -fd. */
static const char *fdres(int fd)
{
	if (fd >= 0) {
		close(fd);
		return rs(0, 0);
	}
	return rs(-1, -fd);
}

/* The object a case needs could not be made (kernel option missing...). */
static const char *unavail(int e)
{
	static char buf[4][48];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "unavailable errno=%s", errname(e));
	return buf[i];
}

static const char *neg(int r)
{
	return r < 0 ? rs(-1, -r) : rs(0, 0);
}

static int must(int fd, const char *what)
{
	if (fd < 0)
		die("%s: %s", what, errname(fd < -1 ? -fd : errno));
	return fd;
}

static int mfd(const char *content)
{
	int fd = memfd_create("parity", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		die("memfd_create: %s", errname(errno));
	if (content && *content &&
	    write(fd, content, strlen(content)) != (ssize_t)strlen(content))
		die("memfd write: %s", errname(errno));
	return fd;
}

/* GET_NAME of a session as a printable string, or the error. */
static const char *getname(int sfd)
{
	static char buf[4][320];
	static int i;
	struct gn_arg a = { .size = sizeof(a) };
	int e;

	i = (i + 1) % 4;
	if (xio(sfd, LIVEUPDATE_SESSION_GET_NAME, &a, &e) < 0)
		snprintf(buf[i], sizeof(buf[i]), "%s", rs(-1, e));
	else
		snprintf(buf[i], sizeof(buf[i]), "ret=0 name=%s",
			 esc(a.name, strnlen((char *)a.name, NAME_LEN)));
	return buf[i];
}

/* Flags, size, position, seals and contents of a memfd. */
static const char *describe_memfd(int fd)
{
	static char buf[2][500];
	static int i;
	char data[64], flags[80] = "";
	int fl = fcntl(fd, F_GETFL), fdf = fcntl(fd, F_GETFD);
	int seals = fcntl(fd, F_GET_SEALS);
	off_t pos = lseek(fd, 0, SEEK_CUR);
	struct stat st;
	ssize_t n;

	i = (i + 1) % 2;
	if (fstat(fd, &st) < 0)
		st.st_size = -1;
	n = pread(fd, data, sizeof(data), 0);
	if (n < 0)
		n = 0;
	snprintf(flags, sizeof(flags), "%s%s%s%s",
		 (fl & O_ACCMODE) == O_RDWR ? "O_RDWR" :
		 (fl & O_ACCMODE) == O_WRONLY ? "O_WRONLY" : "O_RDONLY",
		 fl & O_LARGEFILE ? "|O_LARGEFILE" : "",
		 fl & O_NONBLOCK ? "|O_NONBLOCK" : "",
		 fl & O_APPEND ? "|O_APPEND" : "");
	snprintf(buf[i], sizeof(buf[i]),
		 "cloexec=%d fl=%s(%#x) seals=%#x size=%lld pos=%lld mode=%o data=%s",
		 fdf >= 0 ? !!(fdf & FD_CLOEXEC) : -1, flags, fl, seals,
		 (long long)st.st_size, (long long)pos, st.st_mode & 07777,
		 esc(data, (size_t)n));
	return buf[i];
}

/* What /proc/self/fd/N links to, for anon inodes ("anon_inode:[...]"). */
static const char *linkname(int fd)
{
	static char buf[2][160];
	static int i;
	char path[64];
	ssize_t n;

	i = (i + 1) % 2;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, buf[i], sizeof(buf[i]) - 1);
	if (n < 0)
		snprintf(buf[i], sizeof(buf[i]), "readlink-errno=%s", errname(errno));
	else
		buf[i][n] = 0;
	for (char *p = buf[i]; *p; p++)
		if (*p == ' ')
			*p = '_';
	return buf[i];
}

/* Flags of a session (or other) descriptor: FD_CLOEXEC, F_GETFL, mode. */
static const char *describe_fd(int fd)
{
	static char buf[2][300];
	static int i;
	int fl = fcntl(fd, F_GETFL), fdf = fcntl(fd, F_GETFD);
	struct stat st;
	char mode[16];

	i = (i + 1) % 2;
	if (fstat(fd, &st) < 0)
		snprintf(mode, sizeof(mode), "?");
	else
		snprintf(mode, sizeof(mode), "%o", st.st_mode);
	snprintf(buf[i], sizeof(buf[i]), "cloexec=%d fl=%#x st_mode=%s link=%s",
		 fdf >= 0 ? !!(fdf & FD_CLOEXEC) : -1, fl, mode, linkname(fd));
	return buf[i];
}

/* Results of read/write/lseek/mmap on a descriptor. */
static const char *file_ops(int fd)
{
	static char buf[300];
	char c[4];
	ssize_t r;
	off_t o;
	void *m;
	int er, ew, eo, em;

	errno = 0;
	r = read(fd, c, sizeof(c));
	er = r < 0 ? errno : 0;
	errno = 0;
	r = write(fd, "x", 1);
	ew = r < 0 ? errno : 0;
	errno = 0;
	o = lseek(fd, 0, SEEK_SET);
	eo = o < 0 ? errno : 0;
	errno = 0;
	m = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
	em = m == MAP_FAILED ? errno : 0;
	if (m != MAP_FAILED)
		munmap(m, PAGE);
	snprintf(buf, sizeof(buf), "read=%s write=%s lseek=%s mmap=%s",
		 er ? errname(er) : "ok", ew ? errname(ew) : "ok",
		 eo ? errname(eo) : "ok", em ? errname(em) : "ok");
	return buf;
}

/* ------------------------------------------------------------ fd pressure */

static int fillers[4096], nfill;
static struct rlimit saved_rl;

/* Uses up every descriptor number below a low limit. */
static void exhaust_fds(void)
{
	struct rlimit rl;
	int fd;

	if (getrlimit(RLIMIT_NOFILE, &saved_rl) < 0)
		die("getrlimit");
	rl = saved_rl;
	rl.rlim_cur = 512;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("setrlimit");
	nfill = 0;
	while (nfill < 4096 && (fd = dup(0)) >= 0)
		fillers[nfill++] = fd;
	if (errno != EMFILE)
		die("exhaust fds: %s", errname(errno));
}

static void release_fds(void)
{
	while (nfill)
		close(fillers[--nfill]);
	if (setrlimit(RLIMIT_NOFILE, &saved_rl) < 0)
		die("setrlimit restore");
}

/* ----------------------------------------------------------- size matrix */

/*
 * The extensible-structure rule, applied to one command. Each variant
 * builds the command's structure (fill: the fields after size, into a
 * zeroed buffer) and places it somewhere:
 */
enum variant {
	V_SIZE0,	/* size 0 */
	V_MIN1,		/* size = minimum - 1 */
	V_EXACT,	/* size = sizeof */
	V_BIG_NONZERO,	/* size + 8, a non-zero byte at the end */
	V_BIG_ZERO,	/* size + 8, zero */
	V_PAGE_ZERO,	/* size 4096, zero tail */
	V_HUGE_NONZERO, /* size 0xffffffff, first extra byte non-zero */
	V_NULL,		/* pointer NULL */
	V_BADPTR,	/* pointer to an unmapped page */
	V_PARTIAL,	/* only the size member is readable */
	V_TAIL_FAULT,	/* size + 64, zero tail running into an unmapped page */
	V_TAIL_NZ_FAULT, /* size + 64, non-zero byte then an unmapped page */
	V_READONLY,	/* sizeof, read-only memory: the reply cannot be written */
	V_UNALIGNED,	/* sizeof, at an odd address */
	V_NR
};

static const char *const vname[V_NR] = {
	"size0", "size-min-1", "exact", "big-nonzero-tail", "big-zero-tail",
	"page-zero-tail", "huge-nonzero-tail", "null-ptr", "unmapped-ptr",
	"partial-struct", "tail-fault", "tail-nonzero-then-fault", "readonly",
	"unaligned",
};

static unsigned char *arena; /* 4 pages: RW RW NONE RW */

static void arena_init(void)
{
	arena = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (arena == MAP_FAILED)
		die("mmap arena");
	if (mprotect(arena + 2 * PAGE, PAGE, PROT_NONE))
		die("mprotect arena");
}

typedef void (*fill_fn)(unsigned char *s, int v);
/* Called after the ioctl with the reply buffer (NULL if none) and result. */
typedef void (*after_fn)(const unsigned char *s, int v, long r);

static void size_matrix(const char *prefix, int fd, unsigned long cmd,
			size_t k, fill_fn fill, after_fn after)
{
	unsigned char tmp[128];
	char cas[128];
	int v, e;

	for (v = 0; v < V_NR; v++) {
		unsigned char *p = NULL;
		uint32_t size = (uint32_t)k;
		size_t visible = k;
		long r;

		memset(arena, 0, 2 * PAGE);
		mprotect(arena + 3 * PAGE, PAGE, PROT_READ | PROT_WRITE);
		memset(arena + 3 * PAGE, 0, PAGE);
		memset(tmp, 0, sizeof(tmp));
		if (fill)
			fill(tmp, v);
		switch (v) {
		case V_SIZE0:
			size = 0;
			p = arena;
			break;
		case V_MIN1:
			size = (uint32_t)k - 1;
			p = arena;
			break;
		case V_EXACT:
			p = arena;
			break;
		case V_BIG_NONZERO:
			size = (uint32_t)k + 8;
			p = arena;
			p[k + 7] = 1;
			break;
		case V_BIG_ZERO:
			size = (uint32_t)k + 8;
			p = arena;
			break;
		case V_PAGE_ZERO:
			size = PAGE;
			p = arena;
			break;
		case V_HUGE_NONZERO:
			size = 0xffffffffu;
			p = arena;
			p[k] = 0xff;
			break;
		case V_NULL:
			p = NULL;
			break;
		case V_BADPTR:
			p = arena + 2 * PAGE + 64;
			break;
		case V_PARTIAL:
			p = arena + 2 * PAGE - 4;
			visible = 4;
			break;
		case V_TAIL_FAULT:
			size = (uint32_t)k + 64;
			p = arena + 2 * PAGE - k - 8;
			break;
		case V_TAIL_NZ_FAULT:
			size = (uint32_t)k + 64;
			p = arena + 2 * PAGE - k - 8;
			p[k] = 1;
			break;
		case V_READONLY:
			p = arena + 3 * PAGE;
			break;
		case V_UNALIGNED:
			p = arena + 1;
			break;
		}
		if (p && v != V_BADPTR) {
			memcpy(tmp, &size, 4);
			memcpy(p, tmp, visible);
		}
		if (v == V_READONLY)
			mprotect(arena + 3 * PAGE, PAGE, PROT_READ);
		r = xio(fd, cmd, p, &e);
		snprintf(cas, sizeof(cas), "%s-%s", prefix, vname[v]);
		out(cas, "%s", rs(r, e));
		if (after)
			after(p && v != V_BADPTR && v != V_PARTIAL ? p : NULL, v, r);
		mprotect(arena + 3 * PAGE, PAGE, PROT_READ | PROT_WRITE);
	}
}

/* Fill and after functions of the commands. */
static const char *matrix_name; /* session name prefix for CREATE/RETRIEVE */

static void fill_sess(unsigned char *s, int v)
{
	char name[NAME_LEN];

	snprintf(name, sizeof(name), "%s-%d", matrix_name, v);
	put_name(s + 8, name);
}

static void after_fd_reply(const unsigned char *s, int v, long r)
{
	int32_t fd;

	if (r < 0 || !s)
		return;
	memcpy(&fd, s + 4, 4);
	close(fd);
}

static uint64_t matrix_token;
static int matrix_memfd[V_NR];

static void fill_preserve(unsigned char *s, int v)
{
	int32_t fd = matrix_memfd[v] = mfd("matrix");
	uint64_t token = matrix_token + (uint64_t)v;

	memcpy(s + 4, &fd, 4);
	memcpy(s + 8, &token, 8);
}

static void after_preserve(const unsigned char *s, int v, long r)
{
	close(matrix_memfd[v]);
}

static void fill_token(unsigned char *s, int v)
{
	uint64_t token = matrix_token + (uint64_t)v;

	memcpy(s + 8, &token, 8);
}

/* ------------------------------------------------------------- stage 1 */

static const struct {
	const char *name;
	unsigned long cmd;
} foreign_dev[] = {
	{ "dev-cmd-nr2", _IO(0xBA, 2) },
	{ "dev-cmd-nr-0x40", _IO(0xBA, 0x40) },
	{ "dev-cmd-nr-0xff", _IO(0xBA, 0xff) },
	{ "dev-cmd-type-0xbb-nr0", _IO(0xBB, 0) },
	{ "dev-cmd-type-0-nr1", _IO(0, 1) },
	{ "dev-cmd-iow-create", _IOW(0xBA, 0, struct liveupdate_ioctl_create_session) },
	{ "dev-cmd-iowr-retrieve", _IOWR(0xBA, 1, struct liveupdate_ioctl_retrieve_session) },
	{ "dev-cmd-ior-nr0", _IOR(0xBA, 0, uint32_t) },
	{ "dev-cmd-TCGETS", 0x5401 },
	{ "dev-cmd-FIONREAD", FIONREAD },
	{ "dev-cmd-FIOQSIZE", 0x5460 },
	{ "dev-cmd-FIONBIO", FIONBIO },
	{ "dev-cmd-FIOCLEX", FIOCLEX },
	{ "dev-cmd-FIONCLEX", FIONCLEX },
	{ "dev-cmd-session-preserve", LIVEUPDATE_SESSION_PRESERVE_FD },
	{ "dev-cmd-session-get-name", LIVEUPDATE_SESSION_GET_NAME },
};

static const struct {
	const char *name;
	unsigned long cmd;
} foreign_sess[] = {
	{ "sess-cmd-nr-0x3f", _IO(0xBA, 0x3f) },
	{ "sess-cmd-nr-0x44", _IO(0xBA, 0x44) },
	{ "sess-cmd-nr0-create", LIVEUPDATE_IOCTL_CREATE_SESSION },
	{ "sess-cmd-nr1-retrieve", LIVEUPDATE_IOCTL_RETRIEVE_SESSION },
	{ "sess-cmd-type-0xbb-nr-0x43", _IO(0xBB, 0x43) },
	{ "sess-cmd-type-0-nr-0x40", _IO(0, 0x40) },
	{ "sess-cmd-ior-get-name", _IOR(0xBA, 0x43, struct liveupdate_session_get_name) },
	{ "sess-cmd-iowr-preserve", _IOWR(0xBA, 0x40, struct liveupdate_session_preserve_fd) },
	{ "sess-cmd-iow-finish", _IOW(0xBA, 0x42, struct liveupdate_session_finish) },
	{ "sess-cmd-FIONREAD", FIONREAD },
	{ "sess-cmd-TCGETS", 0x5401 },
	{ "sess-cmd-FIOQSIZE", 0x5460 },
	{ "sess-cmd-FIONBIO", FIONBIO },
	{ "sess-cmd-FIOCLEX", FIOCLEX },
};

/* Unknown commands with a valid 72-byte argument and with NULL. */
static void foreign_cmds(const char *prefix, int fd, int dev)
{
	struct gn_arg a;
	char cas[128];
	size_t i, n = dev ? sizeof(foreign_dev) / sizeof(foreign_dev[0]) :
			    sizeof(foreign_sess) / sizeof(foreign_sess[0]);

	for (i = 0; i < n; i++) {
		const char *name = dev ? foreign_dev[i].name : foreign_sess[i].name;
		unsigned long cmd = dev ? foreign_dev[i].cmd : foreign_sess[i].cmd;
		int flags;

		/* A zero-sized argument: no command may do anything with it. */
		memset(&a, 0, sizeof(a));
		snprintf(cas, sizeof(cas), "%s%s", prefix, name);
		if (cmd == FIONBIO) {
			int zero = 0;

			out(cas, "%s", io(fd, cmd, &zero));
			continue;
		}
		out(cas, "%s", io(fd, cmd, &a));
		flags = fcntl(fd, F_GETFD);
		if (cmd == FIOCLEX || cmd == FIONCLEX) {
			snprintf(cas, sizeof(cas), "%s%s-cloexec-after", prefix, name);
			out(cas, "cloexec=%d", !!(flags & FD_CLOEXEC));
			fcntl(fd, F_SETFD, FD_CLOEXEC);
			continue;
		}
		snprintf(cas, sizeof(cas), "%s%s-null", prefix, name);
		out(cas, "%s", io(fd, cmd, NULL));
	}
}

static void s1_device(void)
{
	int fd, fd2, dupfd, s, r;

	out("dev-fd", "%s", describe_fd(luo));
	out("dev-file-ops", "%s", file_ops(luo));

	fd = open(LUO_DEV, O_RDWR);
	out("dev-second-open", "%s", rs(fd, errno));
	if (fd >= 0)
		close(fd);
	fd = open(LUO_DEV, O_RDONLY);
	out("dev-second-open-rdonly", "%s", rs(fd, errno));
	if (fd >= 0)
		close(fd);

	/* Sessions outlive the device file; the slot follows the last reference. */
	s = must(create("s1-dev-survive"), "create s1-dev-survive");
	dupfd = dup(luo);
	close(luo);
	fd = open(LUO_DEV, O_RDWR);
	out("dev-open-while-dup-held", "%s", rs(fd, errno));
	if (fd >= 0)
		close(fd);
	close(dupfd);
	luo = open(LUO_DEV, O_RDWR | O_CLOEXEC);
	out("dev-reopen-after-close", "%s", rs(luo, errno));
	if (luo < 0)
		die("reopen /dev/liveupdate: %s", errname(errno));
	out("dev-session-after-reopen-get-name", "%s", getname(s));
	fd2 = mfd("survivor");
	out("dev-session-after-reopen-preserve", "%s", neg(preserve(s, fd2, 1)));
	close(fd2);
	out("dev-session-after-reopen-duplicate-create", "%s",
	    fdres(create("s1-dev-survive")));
	close(s);
	out("dev-session-after-close-create-again", "%s",
	    fdres(create("s1-dev-survive")));

	/* Read-only open of the device (when it is the only one). */
	close(luo);
	fd = open(LUO_DEV, O_RDONLY);
	out("dev-open-rdonly-alone", "%s", rs(fd, errno));
	if (fd >= 0) {
		luo = fd;
		r = create("s1-dev-rdonly");
		out("dev-rdonly-create", "%s", fdres(r));
		close(fd);
	}
	luo = open(LUO_DEV, O_RDWR | O_CLOEXEC);
	if (luo < 0)
		die("reopen /dev/liveupdate: %s", errname(errno));

	foreign_cmds("", luo, 1);
}

static void s1_size_rules(void)
{
	int s, in;
	struct fd_arg fa;

	matrix_name = "s1-cr";
	size_matrix("create", luo, LIVEUPDATE_IOCTL_CREATE_SESSION, 72, fill_sess,
		    after_fd_reply);
	/* The reply of create could not be written: the session is gone. */
	out("create-readonly-then-same-name", "%s", fdres(create("s1-cr-12")));
	out("create-exact-then-same-name", "%s", fdres(create("s1-cr-2")));

	matrix_name = "s1-rs";
	size_matrix("retrieve-session-cold", luo, LIVEUPDATE_IOCTL_RETRIEVE_SESSION,
		    72, fill_sess, after_fd_reply);

	s = must(create("s1-pf-matrix"), "create s1-pf-matrix");
	matrix_token = 0x1000;
	size_matrix("preserve", s, LIVEUPDATE_SESSION_PRESERVE_FD, 16, fill_preserve,
		    after_preserve);
	/* The readonly variant preserved the file although the reply failed. */
	out("preserve-readonly-then-same-token", "%s",
	    neg(preserve(s, mfd("x"), 0x1000 + V_READONLY)));
	memset(&fa, 0, sizeof(fa));
	fa.size = sizeof(fa);
	fa.token = 0x1000 + V_READONLY;
	fa.fd = -1;
	out("preserve-readonly-then-same-token-badfd", "%s",
	    io(s, LIVEUPDATE_SESSION_PRESERVE_FD, &fa));

	matrix_token = 0x2000;
	size_matrix("outgoing-retrieve-fd", s, LIVEUPDATE_SESSION_RETRIEVE_FD, 16,
		    fill_token, after_fd_reply);
	size_matrix("outgoing-finish", s, LIVEUPDATE_SESSION_FINISH, 8, NULL, NULL);
	size_matrix("outgoing-get-name", s, LIVEUPDATE_SESSION_GET_NAME, 72, NULL,
		    NULL);
	close(s);

	s = must(create("s1-foreign"), "create s1-foreign");
	foreign_cmds("outgoing-", s, 0);
	close(s);

	/* A session descriptor is not /dev/liveupdate and vice versa. */
	s = must(create("s1-cross"), "create s1-cross");
	{
		struct sess_arg a = { .size = sizeof(a) };

		set_name(&a, "s1-cross-2");
		out("session-fd-create-session", "%s",
		    io(s, LIVEUPDATE_IOCTL_CREATE_SESSION, &a));
	}
	{
		struct gn_arg g = { .size = sizeof(g) };

		out("dev-fd-get-name", "%s", io(luo, LIVEUPDATE_SESSION_GET_NAME, &g));
	}
	close(s);

	/* EMFILE comes before everything but the size rule. */
	exhaust_fds();
	out("create-emfile-valid-name", "%s", fdres(create("s1-emfile")));
	out("create-emfile-empty-name", "%s", fdres(create("")));
	out("retrieve-session-emfile-unknown", "%s", fdres(retrieve("s1-nothing")));
	{
		struct sess_arg a = { .size = 0 };

		out("create-emfile-size0", "%s",
		    io(luo, LIVEUPDATE_IOCTL_CREATE_SESSION, &a));
	}
	release_fds();
	out("create-after-emfile", "%s", fdres(create("s1-emfile")));

	/* Direction checks come before the size rule, after the size read. */
	in = must(create("s1-dir"), "create s1-dir");
	{
		struct fin_arg f = { .size = 100, .reserved = 7 };

		out("outgoing-finish-bad-size-and-reserved", "%s",
		    io(in, LIVEUPDATE_SESSION_FINISH, &f));
	}
	close(in);
}

static void s1_names(void)
{
	unsigned char f[NAME_LEN];
	char n63[64];
	struct gn_arg g;
	int s, s2, e;

	out("name-empty", "%s", fdres(create("")));
	memset(f, 0, sizeof(f));
	f[1] = 'x';
	out("name-empty-then-bytes", "%s", fdres(create_raw(f)));

	s = create("x");
	out("name-1-byte", "%s", s >= 0 ? "ret=0" : rs(-1, -s));
	if (s >= 0) {
		out("name-1-byte-get-name", "%s", getname(s));
		close(s);
	}

	memset(n63, 'n', 63);
	memcpy(n63, "s1-63", 5);
	n63[63] = 0;
	s = create(n63);
	out("name-63-bytes", "%s", s >= 0 ? "ret=0" : rs(-1, -s));
	if (s >= 0) {
		out("name-63-bytes-get-name", "%s", getname(s));
		out("name-63-bytes-fd", "%s", describe_fd(s));
		close(s);
	}

	memset(f, 'm', sizeof(f));
	memcpy(f, "s1-64", 5);
	out("name-64-bytes-no-nul", "%s", fdres(create_raw(f)));

	memset(f, 0, sizeof(f));
	memcpy(f, "s1-junk\0garbage-after-nul", 25);
	s = create_raw(f);
	out("name-bytes-after-nul", "%s", s >= 0 ? "ret=0" : rs(-1, -s));
	if (s >= 0) {
		out("name-bytes-after-nul-get-name", "%s", getname(s));
		out("name-bytes-after-nul-then-plain", "%s", fdres(create("s1-junk")));
		close(s);
	}

	s = must(create("s1-dup"), "create s1-dup");
	out("name-duplicate", "%s", fdres(create("s1-dup")));
	/* Reply of a failed create leaves the fd field alone. */
	{
		struct sess_arg a = { .size = sizeof(a), .fd = 12345 };

		set_name(&a, "s1-dup");
		xio(luo, LIVEUPDATE_IOCTL_CREATE_SESSION, &a, &e);
		out("name-duplicate-fd-field", "errno=%s fd-field=%s", errname(e),
		    a.fd == 12345 ? "unchanged" : "changed");
	}
	close(s);
	out("name-reuse-after-close", "%s", fdres(create("s1-dup")));

	memset(f, 0, sizeof(f));
	memcpy(f, "s1-odd chars/\x01\x7f\xff", 17);
	s = create_raw(f);
	out("name-odd-bytes", "%s", s >= 0 ? "ret=0" : rs(-1, -s));
	if (s >= 0) {
		out("name-odd-bytes-get-name", "%s", getname(s));
		close(s);
	}

	s = must(create("s1-gn"), "create s1-gn");
	memset(&g, 0, sizeof(g));
	g.size = sizeof(g);
	g.reserved = 1;
	out("get-name-reserved-1", "%s", io(s, LIVEUPDATE_SESSION_GET_NAME, &g));
	g.reserved = 0x80000000u;
	out("get-name-reserved-high", "%s", io(s, LIVEUPDATE_SESSION_GET_NAME, &g));
	/* What the name field holds after the NUL when it was not zero. */
	memset(&g, 0xaa, sizeof(g));
	g.size = sizeof(g);
	g.reserved = 0;
	{
		long r = xio(s, LIVEUPDATE_SESSION_GET_NAME, &g, &e);
		size_t len = strnlen((char *)g.name, NAME_LEN), k, aa = 0, z = 0;

		for (k = len; k < NAME_LEN; k++) {
			aa += g.name[k] == 0xaa;
			z += g.name[k] == 0;
		}
		out("get-name-prefilled-name-field", "%s name=%s after-nul: zero=%zu 0xaa=%zu",
		    rs(r, e), esc(g.name, len), z, aa);
	}
	/* Fields before the reply: size and reserved come back as given. */
	memset(&g, 0, sizeof(g));
	g.size = sizeof(g) + 8;
	{
		unsigned char big[88] = { 0 };
		uint32_t sz = 80;

		memcpy(big, &sz, 4);
		memset(big + 72, 0, 16);
		big[84] = 0x55; /* beyond the 80 bytes userspace claims */
		long r = xio(s, LIVEUPDATE_SESSION_GET_NAME, big, &e);

		out("get-name-size-80-reply-bounds", "%s name=%s byte84=%#x",
		    rs(r, e), esc(big + 8, strnlen((char *)big + 8, 64)), big[84]);
	}
	close(s);

	/* An outgoing session cannot be retrieved. */
	s = must(create("s1-out-retrieve"), "create s1-out-retrieve");
	out("retrieve-session-outgoing-name", "%s", fdres(retrieve("s1-out-retrieve")));
	close(s);
	out("retrieve-session-empty-name", "%s", fdres(retrieve("")));
	memset(f, 'r', sizeof(f));
	out("retrieve-session-no-nul", "%s", fdres(retrieve_raw(f)));

	/* Two sessions, their fds and names are independent. */
	s = must(create("s1-pair-a"), "create s1-pair-a");
	s2 = must(create("s1-pair-b"), "create s1-pair-b");
	out("name-pair-get-names", "a:%s b:%s", getname(s), getname(s2));
	close(s);
	out("name-pair-after-close-a", "b:%s", getname(s2));
	close(s2);
}

static void s1_preserve(void)
{
	int a, b, m, m2, p[2], fd, sock, ev, e;
	char path[64];
	struct fd_arg fa;

	a = must(create("s1-pres-a"), "create s1-pres-a");
	b = must(create("s1-pres-b"), "create s1-pres-b");

	m = mfd("one");
	out("preserve-memfd", "%s", neg(preserve(a, m, 1)));
	m2 = mfd("two");
	out("preserve-token-reused", "%s", neg(preserve(a, m2, 1)));
	out("preserve-token-reused-bad-fd", "%s", neg(preserve(a, -1, 1)));
	out("preserve-token-reused-pipe", "%s", neg(preserve(a, 0, 1)));
	out("preserve-same-token-other-session", "%s", neg(preserve(b, m2, 1)));
	out("preserve-same-memfd-twice-same-session", "%s", neg(preserve(a, m, 2)));
	out("preserve-same-memfd-other-session", "%s", neg(preserve(b, m, 2)));
	out("preserve-ebusy-token-still-free", "%s", neg(preserve(a, mfd("three"), 2)));
	fd = dup(m);
	out("preserve-dup-of-preserved", "%s", neg(preserve(b, fd, 3)));
	close(fd);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", m);
	fd = open(path, O_RDWR);
	out("preserve-reopened-proc-self-fd", "%s",
	    fd < 0 ? unavail(errno) : neg(preserve(b, fd, 4)));
	if (fd >= 0)
		close(fd);
	fd = open(path, O_RDONLY);
	out("preserve-reopened-rdonly-of-preserved", "%s",
	    fd < 0 ? unavail(errno) : neg(preserve(b, fd, 5)));
	if (fd >= 0)
		close(fd);
	close(m);
	close(m2);

	out("preserve-fd-minus-1", "%s", neg(preserve(a, -1, 10)));
	out("preserve-fd-int-min", "%s", neg(preserve(a, INT32_MIN, 11)));
	out("preserve-fd-9999", "%s", neg(preserve(a, 9999, 12)));
	fd = mfd("closed");
	close(fd);
	out("preserve-fd-closed", "%s", neg(preserve(a, fd, 13)));
	out("preserve-ebadf-token-still-free", "%s", neg(preserve(a, mfd("t13"), 13)));

	fd = open("/dev/null", O_RDWR);
	out("preserve-dev-null", "%s", fd < 0 ? unavail(errno) : neg(preserve(a, fd, 20)));
	if (fd >= 0)
		close(fd);
	if (pipe(p) == 0) {
		out("preserve-pipe-read-end", "%s", neg(preserve(a, p[0], 21)));
		out("preserve-pipe-write-end", "%s", neg(preserve(a, p[1], 22)));
		close(p[0]);
		close(p[1]);
	}
	out("preserve-session-fd", "%s", neg(preserve(a, b, 23)));
	out("preserve-own-session-fd", "%s", neg(preserve(a, a, 24)));
	out("preserve-dev-liveupdate-fd", "%s", neg(preserve(a, luo, 25)));
	sock = socket(AF_UNIX, SOCK_STREAM, 0);
	out("preserve-socket", "%s", sock < 0 ? unavail(errno) : neg(preserve(a, sock, 26)));
	if (sock >= 0)
		close(sock);
	ev = eventfd(0, 0);
	out("preserve-eventfd", "%s", ev < 0 ? unavail(errno) : neg(preserve(a, ev, 27)));
	if (ev >= 0)
		close(ev);
	fd = open("/", O_RDONLY | O_DIRECTORY);
	out("preserve-directory", "%s", fd < 0 ? unavail(errno) : neg(preserve(a, fd, 28)));
	if (fd >= 0)
		close(fd);
	fd = open("/test", O_RDONLY);
	out("preserve-regular-file", "%s", fd < 0 ? unavail(errno) : neg(preserve(a, fd, 29)));
	if (fd >= 0)
		close(fd);
	fd = open("/", O_TMPFILE | O_RDWR, 0600);
	out("preserve-o-tmpfile-rootfs", "%s",
	    fd < 0 ? unavail(errno) : neg(preserve(a, fd, 30)));
	if (fd >= 0)
		close(fd);
	m = mfd("opath");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", m);
	fd = open(path, O_PATH);
	out("preserve-o-path-of-memfd", "%s", fd < 0 ? unavail(errno) : neg(preserve(a, fd, 31)));
	if (fd >= 0)
		close(fd);
	fd = open(path, O_RDONLY);
	out("preserve-rdonly-reopen-unpreserved-memfd", "%s",
	    fd < 0 ? unavail(errno) : neg(preserve(a, fd, 32)));
	if (fd >= 0)
		close(fd);
	out("preserve-original-after-rdonly-reopen", "%s", neg(preserve(a, m, 33)));
	close(m);
	fd = memfd_create("huge", MFD_HUGETLB);
	out("preserve-memfd-hugetlb", "%s", fd < 0 ? unavail(errno) : neg(preserve(a, fd, 34)));
	if (fd >= 0)
		close(fd);
	fd = memfd_create("noexec", MFD_NOEXEC_SEAL);
	out("preserve-memfd-noexec-seal", "%s",
	    fd < 0 ? unavail(errno) : neg(preserve(a, fd, 35)));
	if (fd >= 0)
		close(fd);
	m = mfd("sealed");
	fcntl(m, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	out("preserve-memfd-all-seals", "%s", neg(preserve(a, m, 36)));
	close(m);
	out("preserve-token-0", "%s", neg(preserve(a, mfd("t0"), 0)));
	out("preserve-token-max", "%s", neg(preserve(a, mfd("tmax"), UINT64_MAX)));

	/* The structure comes back unchanged on success, untouched on failure. */
	m = mfd("reply");
	memset(&fa, 0, sizeof(fa));
	fa.size = sizeof(fa);
	fa.fd = m;
	fa.token = 40;
	{
		long r = xio(a, LIVEUPDATE_SESSION_PRESERVE_FD, &fa, &e);

		out("preserve-reply-struct", "%s fd-field=%s token=%llu", rs(r, e),
		    fa.fd == m ? "same" : "changed", (unsigned long long)fa.token);
	}
	close(m);

	/* Closing a session unpreserves its files. */
	m = mfd("moves");
	out("unpreserve-on-close-first", "%s", neg(preserve(a, m, 50)));
	out("unpreserve-on-close-busy-before", "%s", neg(preserve(b, m, 50)));
	close(a);
	out("unpreserve-on-close-then-other-session", "%s", neg(preserve(b, m, 50)));
	a = must(create("s1-pres-a"), "create s1-pres-a again");
	out("unpreserve-on-close-session-empty-again", "%s", neg(preserve(a, mfd("z"), 1)));
	close(m);
	close(a);
	close(b);

	/* Writing, growing and shrinking a memfd after it was preserved. */
	a = must(create("s1-pres-mod"), "create s1-pres-mod");
	m = mfd("0123456789");
	out("preserve-for-modify", "%s", neg(preserve(a, m, 1)));
	out("preserved-memfd-pwrite", "%s", SYS(pwrite(m, "AB", 2, 0)));
	out("preserved-memfd-grow", "%s", SYS(ftruncate(m, 8192)));
	out("preserved-memfd-shrink", "%s", SYS(ftruncate(m, 4)));
	close(a);
	out("unpreserved-memfd-grow", "%s", SYS(ftruncate(m, 8192)));
	out("unpreserved-memfd-add-seal", "%s", SYS(fcntl(m, F_ADD_SEALS, F_SEAL_GROW)));
	close(m);

	/* Retrieve-side commands on an outgoing session. */
	a = must(create("s1-pres-dir"), "create s1-pres-dir");
	out("outgoing-retrieve-fd", "%s", fdres(retrieve_fd(a, 1)));
	out("outgoing-finish", "%s", neg(finish(a)));
	out("outgoing-file-ops", "%s", file_ops(a));
	out("outgoing-fd", "%s", describe_fd(a));
	close(a);
}

/* Sessions handed to stage 2. */
static int keep[64], nkeep;

static int keep_session(const char *name)
{
	int s = create(name);

	if (s < 0)
		die("create %s: %s", name, errname(-s));
	keep[nkeep++] = s;
	return s;
}

static void keep_memfd(int s, uint64_t token, const char *content)
{
	int m = mfd(content), r = preserve(s, m, token);

	if (r)
		die("preserve token %llu: %s", (unsigned long long)token, errname(-r));
	close(m);
}

static void s1_setup_stage2(void)
{
	char name[32];
	int s, m, v, r;

	/* p2-a: files with various properties. */
	s = keep_session("p2-a");
	keep_memfd(s, 1, "alpha");
	m = mfd("beta");
	fcntl(m, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW);
	r = preserve(s, m, 2);
	if (r)
		die("preserve sealed: %s", errname(-r));
	close(m);
	keep_memfd(s, 3, "");
	m = mfd("0123456789");
	lseek(m, 3, SEEK_SET);
	r = preserve(s, m, 4);
	if (r)
		die("preserve pos: %s", errname(-r));
	close(m);
	keep_memfd(s, 5, "never retrieved");
	m = mfd("rdonly-origin");
	{
		char path[64];
		int ro;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", m);
		ro = open(path, O_RDONLY);
		if (ro < 0)
			die("reopen rdonly");
		r = preserve(s, ro, 6);
		if (r)
			die("preserve rdonly: %s", errname(-r));
		close(ro);
	}
	close(m);
	m = memfd_create("noexec", MFD_NOEXEC_SEAL);
	if (m >= 0) {
		if (write(m, "nx", 2) != 2)
			die("write");
		r = preserve(s, m, 7);
		if (r)
			die("preserve noexec: %s", errname(-r));
		close(m);
	}
	m = mfd("");
	if (ftruncate(m, 3 * PAGE + 5))
		die("ftruncate");
	pwrite(m, "end", 3, 3 * PAGE + 2);
	r = preserve(s, m, 8);
	if (r)
		die("preserve sparse: %s", errname(-r));
	close(m);
	m = mfd("modified-after-preserve");
	r = preserve(s, m, 9);
	if (r)
		die("preserve modified: %s", errname(-r));
	pwrite(m, "MODIFIED", 8, 0);
	close(m);

	s = keep_session("p2-b");
	keep_memfd(s, 1, "b-one");
	keep_memfd(s, 0, "b-zero");
	keep_memfd(s, UINT64_MAX, "b-max");

	s = keep_session("p2-close");
	keep_memfd(s, 1, "close-one");
	keep_memfd(s, 2, "close-two");

	s = keep_session("p2-twice");
	keep_memfd(s, 1, "twice");

	s = keep_session("p2-busy");
	keep_memfd(s, 1, "busy-one");
	keep_memfd(s, 2, "busy-two");

	s = keep_session("p2-fin");
	keep_memfd(s, 1, "fin-one");
	keep_memfd(s, 2, "fin-two");
	keep_memfd(s, 3, "fin-three");

	keep_session("p2-empty");
	keep_session("p2-never");
	s = keep_session("p2-never-files");
	keep_memfd(s, 1, "never-files");

	s = keep_session("p2-emfile");
	keep_memfd(s, 1, "emfile");

	s = keep_session("p2-rf");
	for (v = 0; v < V_NR; v++) {
		snprintf(name, sizeof(name), "rf-%d", v);
		keep_memfd(s, 0x3000 + (uint64_t)v, name);
	}
	s = keep_session("p2-fm");
	keep_memfd(s, 1, "fm");
	s = keep_session("p2-finro");
	keep_memfd(s, 1, "finro");
	s = keep_session("p2-gn");
	s = keep_session("p2-pf");
	s = keep_session("p2-foreign");
	for (v = 0; v < V_NR; v++) {
		snprintf(name, sizeof(name), "p2-rs-%d", v);
		keep_session(name);
	}
	{
		char n63[64];

		memset(n63, 'q', 63);
		memcpy(n63, "p2-63", 5);
		n63[63] = 0;
		s = keep_session(n63);
		keep_memfd(s, 63, "sixty-three");
	}
	/* A session closed before the reboot does not come back. */
	s = create("p2-closed");
	if (s < 0)
		die("create p2-closed");
	keep_memfd(s, 1, "gone");
	close(s);
	/* Same name as outgoing sessions in stage 2. */
	s = keep_session("p2-shared-name");
	keep_memfd(s, 1, "incoming-shared");
}

static void stage1(void)
{
	s1_device();
	s1_size_rules();
	s1_names();
	s1_preserve();
	s1_setup_stage2();
}

/* ------------------------------------------------------------- stage 2 */

static void s2_basics(void)
{
	int s, s2, f, f2, m, i, e;
	struct stat st1, st2;
	unsigned char fld[NAME_LEN];

	out("s2-retrieve-unknown", "%s", fdres(retrieve("p2-unknown")));
	out("s2-retrieve-closed-before-reboot", "%s", fdres(retrieve("p2-closed")));
	out("s2-retrieve-stage1-test-session", "%s", fdres(retrieve("s1-pres-b")));

	s = retrieve("p2-a");
	out("s2-retrieve-p2-a", "%s", s >= 0 ? "ret=0" : rs(-1, -s));
	if (s < 0)
		die("retrieve p2-a: %s", errname(-s));
	out("s2-retrieve-twice", "%s", fdres(retrieve("p2-a")));
	out("s2-session-fd", "%s", describe_fd(s));
	out("s2-session-get-name", "%s", getname(s));
	out("s2-session-file-ops", "%s", file_ops(s));
	out("s2-preserve-into-incoming", "%s", neg(preserve(s, mfd("x"), 100)));
	{
		struct fd_arg fa = { .size = 0, .fd = -1, .token = 1 };

		out("s2-preserve-into-incoming-size0", "%s",
		    io(s, LIVEUPDATE_SESSION_PRESERVE_FD, &fa));
		out("s2-preserve-into-incoming-null", "%s",
		    io(s, LIVEUPDATE_SESSION_PRESERVE_FD, NULL));
	}
	out("s2-retrieve-fd-unknown-token", "%s", fdres(retrieve_fd(s, 99)));

	for (i = 1; i <= 9; i++) {
		char cas[64];

		if (i == 5)
			continue;
		f = retrieve_fd(s, (uint64_t)i);
		snprintf(cas, sizeof(cas), "s2-memfd-token-%d", i);
		if (f < 0) {
			out(cas, "%s", rs(-1, -f));
			continue;
		}
		out(cas, "%s", describe_memfd(f));
		snprintf(cas, sizeof(cas), "s2-memfd-token-%d-link", i);
		out(cas, "%s", linkname(f));
		close(f);
	}

	/* The same token twice: the same open file. */
	f = retrieve_fd(s, 1);
	f2 = retrieve_fd(s, 1);
	if (f >= 0 && f2 >= 0) {
		fstat(f, &st1);
		fstat(f2, &st2);
		lseek(f, 2, SEEK_SET);
		out("s2-retrieve-fd-twice", "same-ino=%d shared-pos=%d pos2=%lld",
		    st1.st_ino == st2.st_ino, lseek(f2, 0, SEEK_CUR) == 2,
		    (long long)lseek(f2, 0, SEEK_CUR));
		lseek(f, 0, SEEK_SET);
		out("s2-retrieve-fd-twice-content", "%s", describe_memfd(f2));
	} else {
		out("s2-retrieve-fd-twice", "first=%s second=%s", neg(f), neg(f2));
	}

	/* A retrieved file, before its session finished, is preserved. */
	s2 = must(create("s2-out-a"), "create s2-out-a");
	out("s2-preserve-retrieved-unfinished", "%s",
	    f >= 0 ? neg(preserve(s2, f, 1)) : "no-file");
	out("s2-preserve-retrieved-unfinished-twin", "%s",
	    f2 >= 0 ? neg(preserve(s2, f2, 2)) : "no-file");

	/* FINISH with files never retrieved (token 5). */
	{
		struct fin_arg fa = { .size = sizeof(fa), .reserved = 1 };

		out("s2-finish-reserved-1", "%s", io(s, LIVEUPDATE_SESSION_FINISH, &fa));
	}
	out("s2-retrieve-fd-after-failed-finish", "%s", fdres(retrieve_fd(s, 5)));
	out("s2-finish-with-unretrieved", "%s", neg(finish(s)));
	out("s2-finish-twice", "%s", neg(finish(s)));
	out("s2-retrieve-fd-after-finish", "%s", fdres(retrieve_fd(s, 1)));
	out("s2-retrieve-fd-after-finish-unretrieved", "%s", fdres(retrieve_fd(s, 5)));
	out("s2-get-name-after-finish", "%s", getname(s));
	out("s2-preserve-into-finished", "%s", neg(preserve(s, mfd("y"), 200)));
	out("s2-preserve-retrieved-after-finish", "%s",
	    f >= 0 ? neg(preserve(s2, f, 3)) : "no-file");
	out("s2-memfd-after-finish", "%s", f2 >= 0 ? describe_memfd(f2) : "no-file");
	if (f >= 0)
		close(f);
	if (f2 >= 0)
		close(f2);
	close(s2);
	close(s);
	out("s2-retrieve-after-finish-and-close", "%s", fdres(retrieve("p2-a")));

	/* Tokens 0 and max and bytes after the NUL of the name. */
	memset(fld, 0, sizeof(fld));
	memcpy(fld, "p2-b\0junk", 9);
	s = retrieve_raw(fld);
	out("s2-retrieve-name-junk-after-nul", "%s", s >= 0 ? "ret=0" : rs(-1, -s));
	if (s >= 0) {
		f = retrieve_fd(s, 0);
		out("s2-token-0", "%s", f >= 0 ? describe_memfd(f) : rs(-1, -f));
		if (f >= 0)
			close(f);
		f = retrieve_fd(s, UINT64_MAX);
		out("s2-token-max", "%s", f >= 0 ? describe_memfd(f) : rs(-1, -f));
		if (f >= 0)
			close(f);
		out("s2-p2-b-finish", "%s", neg(finish(s)));
		close(s);
	}

	/* Close without FINISH finishes. */
	s = must(retrieve("p2-close"), "retrieve p2-close");
	f = retrieve_fd(s, 1);
	out("s2-close-retrieve-fd", "%s", f >= 0 ? "ret=0" : rs(-1, -f));
	s2 = must(create("s2-out-close"), "create s2-out-close");
	out("s2-close-preserve-before", "%s", f >= 0 ? neg(preserve(s2, f, 1)) : "no-file");
	close(s);
	out("s2-close-then-retrieve-session", "%s", fdres(retrieve("p2-close")));
	out("s2-close-memfd-still-usable", "%s", f >= 0 ? describe_memfd(f) : "no-file");
	out("s2-close-preserve-after", "%s", f >= 0 ? neg(preserve(s2, f, 2)) : "no-file");
	if (f >= 0)
		close(f);
	close(s2);

	/* Retrieved but unfinished in one session, preserved elsewhere. */
	s = must(retrieve("p2-busy"), "retrieve p2-busy");
	f = retrieve_fd(s, 1);
	s2 = must(create("s2-out-busy"), "create s2-out-busy");
	out("s2-busy-preserve-retrieved", "%s", f >= 0 ? neg(preserve(s2, f, 1)) : "no-file");
	out("s2-busy-finish", "%s", neg(finish(s)));
	out("s2-busy-preserve-after-finish", "%s", f >= 0 ? neg(preserve(s2, f, 1)) : "no-file");
	out("s2-busy-preserve-again-same-session", "%s",
	    f >= 0 ? neg(preserve(s2, f, 2)) : "no-file");
	if (f >= 0)
		close(f);
	close(s2);
	close(s);

	/* Twice-retrieved session name, closed with FINISH. */
	s = must(retrieve("p2-twice"), "retrieve p2-twice");
	out("s2-twice-second", "%s", fdres(retrieve("p2-twice")));
	out("s2-twice-finish", "%s", neg(finish(s)));
	out("s2-twice-after-finish-not-closed", "%s", fdres(retrieve("p2-twice")));
	close(s);
	out("s2-twice-after-close", "%s", fdres(retrieve("p2-twice")));

	/* A session with no files. */
	s = must(retrieve("p2-empty"), "retrieve p2-empty");
	out("s2-empty-retrieve-fd", "%s", fdres(retrieve_fd(s, 0)));
	out("s2-empty-finish", "%s", neg(finish(s)));
	out("s2-empty-finish-twice", "%s", neg(finish(s)));
	close(s);

	/* A 63-byte name. */
	{
		char n63[64];

		memset(n63, 'q', 63);
		memcpy(n63, "p2-63", 5);
		n63[63] = 0;
		s = retrieve(n63);
		out("s2-name-63", "%s", s >= 0 ? getname(s) : rs(-1, -s));
		if (s >= 0) {
			f = retrieve_fd(s, 63);
			out("s2-name-63-file", "%s", f >= 0 ? describe_memfd(f) : rs(-1, -f));
			if (f >= 0)
				close(f);
			out("s2-name-63-fd", "%s", describe_fd(s));
			close(s);
		}
		n63[62] = 0;
		out("s2-name-62-prefix", "%s", fdres(retrieve(n63)));
	}

	/* Outgoing names do not collide with incoming ones. */
	s2 = create("p2-shared-name");
	out("s2-create-incoming-name", "%s", s2 >= 0 ? "ret=0" : rs(-1, -s2));
	s = retrieve("p2-shared-name");
	out("s2-retrieve-name-also-outgoing", "%s", s >= 0 ? "ret=0" : rs(-1, -s));
	if (s >= 0) {
		out("s2-shared-name-get-name-incoming", "%s", getname(s));
		f = retrieve_fd(s, 1);
		out("s2-shared-name-file", "%s", f >= 0 ? describe_memfd(f) : rs(-1, -f));
		if (f >= 0 && s2 >= 0)
			out("s2-shared-name-preserve-into-outgoing", "%s", neg(preserve(s2, f, 1)));
		if (f >= 0)
			close(f);
	}
	out("s2-create-incoming-name-twice", "%s", fdres(create("p2-shared-name")));
	out("s2-retrieve-outgoing-only-name", "%s", fdres(retrieve("s2-out-only")));
	if (s >= 0) {
		out("s2-shared-name-finish", "%s", neg(finish(s)));
		close(s);
	}
	if (s2 >= 0)
		close(s2);
	(void)e;
	(void)m;
}

static void s2_matrices(void)
{
	int s, f;
	char name[NAME_LEN];

	/* RETRIEVE_SESSION: the p2-rs-<variant> session of each variant. */
	matrix_name = "p2-rs";
	size_matrix("s2-retrieve-session", luo, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, 72,
		    fill_sess, after_fd_reply);
	snprintf(name, sizeof(name), "p2-rs-%d", V_READONLY);
	out("s2-retrieve-session-readonly-then-again", "%s", fdres(retrieve(name)));
	snprintf(name, sizeof(name), "p2-rs-%d", V_EXACT);
	out("s2-retrieve-session-exact-closed-then-again", "%s", fdres(retrieve(name)));
	snprintf(name, sizeof(name), "p2-rs-%d", V_SIZE0);
	out("s2-retrieve-session-size0-then-valid", "%s", fdres(retrieve(name)));

	/* RETRIEVE_FD: token 0x3000 + variant of p2-rf. */
	s = must(retrieve("p2-rf"), "retrieve p2-rf");
	matrix_token = 0x3000;
	size_matrix("s2-retrieve-fd", s, LIVEUPDATE_SESSION_RETRIEVE_FD, 16, fill_token,
		    after_fd_reply);
	f = retrieve_fd(s, 0x3000 + V_READONLY);
	out("s2-retrieve-fd-readonly-then-again", "%s",
	    f >= 0 ? describe_memfd(f) : rs(-1, -f));
	if (f >= 0)
		close(f);
	f = retrieve_fd(s, 0x3000 + V_SIZE0);
	out("s2-retrieve-fd-size0-then-valid", "%s", f >= 0 ? describe_memfd(f) : rs(-1, -f));
	if (f >= 0)
		close(f);

	/* The outgoing-only commands on an incoming session. */
	matrix_token = 0x4000;
	size_matrix("s2-incoming-preserve", s, LIVEUPDATE_SESSION_PRESERVE_FD, 16,
		    fill_preserve, after_preserve);
	size_matrix("s2-incoming-get-name", s, LIVEUPDATE_SESSION_GET_NAME, 72, NULL, NULL);
	foreign_cmds("incoming-", s, 0);
	out("s2-rf-finish", "%s", neg(finish(s)));
	close(s);

	/* FINISH: the first variant that succeeds finishes p2-fm. */
	s = must(retrieve("p2-fm"), "retrieve p2-fm");
	size_matrix("s2-finish", s, LIVEUPDATE_SESSION_FINISH, 8, NULL, NULL);
	out("s2-finish-matrix-then-retrieve-fd", "%s", fdres(retrieve_fd(s, 1)));
	close(s);

	/* FINISH whose reply cannot be written. */
	s = must(retrieve("p2-finro"), "retrieve p2-finro");
	{
		struct fin_arg *fa;

		memset(arena + 3 * PAGE, 0, PAGE);
		fa = (struct fin_arg *)(arena + 3 * PAGE);
		fa->size = sizeof(*fa);
		mprotect(arena + 3 * PAGE, PAGE, PROT_READ);
		out("s2-finishro-readonly-reply", "%s", io(s, LIVEUPDATE_SESSION_FINISH, fa));
		mprotect(arena + 3 * PAGE, PAGE, PROT_READ | PROT_WRITE);
	}
	out("s2-finishro-then-retrieve-fd", "%s", fdres(retrieve_fd(s, 1)));
	out("s2-finishro-then-finish", "%s", neg(finish(s)));
	close(s);

	/* EMFILE. */
	exhaust_fds();
	out("s2-retrieve-session-emfile", "%s", fdres(retrieve("p2-emfile")));
	out("s2-retrieve-session-emfile-unknown", "%s", fdres(retrieve("p2-unknown")));
	release_fds();
	s = retrieve("p2-emfile");
	out("s2-retrieve-session-after-emfile", "%s", s >= 0 ? "ret=0" : rs(-1, -s));
	if (s >= 0) {
		exhaust_fds();
		out("s2-retrieve-fd-emfile", "%s", fdres(retrieve_fd(s, 1)));
		out("s2-retrieve-fd-emfile-unknown", "%s", fdres(retrieve_fd(s, 77)));
		release_fds();
		f = retrieve_fd(s, 1);
		out("s2-retrieve-fd-after-emfile", "%s", f >= 0 ? describe_memfd(f) : rs(-1, -f));
		if (f >= 0)
			close(f);
		out("s2-emfile-finish", "%s", neg(finish(s)));
		close(s);
	}

	/* Never-retrieved sessions stay retrievable until someone does. */
	s = retrieve("p2-never-files");
	out("s2-never-files-late-retrieve", "%s", s >= 0 ? "ret=0" : rs(-1, -s));
	if (s >= 0) {
		out("s2-never-files-close-without-anything", "%s", "closing");
		close(s);
		out("s2-never-files-after-close", "%s", fdres(retrieve("p2-never-files")));
	}
}

static void stage2(void)
{
	s2_basics();
	s2_matrices();
}

/* -------------------------------------------------------------- driver */

/*
 * Kernel messages go to the same serial console and could land inside a
 * PARITY line: the console only shows emergencies while the cases run, and
 * the messages logged meanwhile are printed afterwards as "PARITY-KMSG
 * <level> <text>" lines (not cases; the host shows them as notes).
 */
static int kmsg_fd = -1, console_level = -1;

static void quiet_console(void)
{
	char buf[64] = "";
	int fd = open("/proc/sys/kernel/printk", O_RDONLY);

	if (fd >= 0) {
		if (read(fd, buf, sizeof(buf) - 1) > 0)
			console_level = atoi(buf);
		close(fd);
	}
	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (kmsg_fd >= 0)
		lseek(kmsg_fd, 0, SEEK_END);
	klogctl(8 /* SYSLOG_ACTION_CONSOLE_LEVEL */, NULL, 1);
}

static void dump_kmsg(void)
{
	char rec[4096], line[4200];
	ssize_t n;

	while (kmsg_fd >= 0 && (n = read(kmsg_fd, rec, sizeof(rec) - 1)) != 0) {
		char *msg, *nl;
		int len;

		if (n < 0) {
			if (errno == EPIPE)
				continue;
			break;
		}
		rec[n] = 0;
		msg = strchr(rec, ';');
		if (!msg)
			continue;
		msg++;
		nl = strchr(msg, '\n');
		if (nl)
			*nl = 0;
		len = snprintf(line, sizeof(line), "PARITY-KMSG %d %s\n", atoi(rec) & 7, msg);
		if (len > (int)sizeof(line) - 1)
			len = sizeof(line) - 1;
		if (write(1, line, (size_t)len) < 0)
			break;
	}
	if (console_level > 0)
		klogctl(8, NULL, console_level);
}

static void hold(void)
{
	int fd, k, keepit;
	pid_t pid;

	/* Only the p2-* sessions go on: close everything else. */
	for (fd = 3; fd < 1024; fd++) {
		keepit = 0;
		for (k = 0; k < nkeep; k++)
			keepit |= keep[k] == fd;
		if (!keepit)
			close(fd);
	}
	pid = fork();
	if (pid < 0)
		die("fork: %s", errname(errno));
	if (pid > 0)
		return;
	setsid();
	close(0);
	close(1);
	close(2);
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	char line[128];
	int opt, n;

	while ((opt = getopt(argc, argv, "s:")) != -1)
		if (opt == 's')
			stage = atoi(optarg);
	if (stage != 1 && stage != 2)
		die("usage: %s -s 1|2", argv[0]);
	arena_init();
	luo = open(LUO_DEV, O_RDWR | O_CLOEXEC);
	if (luo < 0)
		die("open %s: %s", LUO_DEV, errname(errno));
	n = snprintf(line, sizeof(line), "PARITY-START stage %d\n", stage);
	if (write(1, line, (size_t)n) < 0)
		return 2;
	quiet_console();
	if (stage == 1)
		stage1();
	else
		stage2();
	dump_kmsg();
	n = snprintf(line, sizeof(line), "PARITY-DONE stage %d cases %d\n", stage, ncases);
	if (write(1, line, (size_t)n) < 0)
		return 2;
	if (stage == 1) {
		close(luo);
		hold();
	}
	printf("LUO-TEST: luo_parity stage %d ok\n", stage);
	return 0;
}
