// SPDX-License-Identifier: GPL-2.0
/*
 * luo_multi_block: enough sessions and files that the serialized session
 * array and one session's file array each span several 4 KiB blocks.
 *
 * Stage 1: NR_SESSIONS sessions "mb-NNN", each with one small memfd, plus
 * session "mb-files" with NR_FILES memfds of distinct sizes and contents.
 * Stage 2: every session and every file comes back with the right name and
 * contents (retrieved in reverse order); all sessions are finished and gone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/luo.h"

#define NR_SESSIONS 130 /* > 2 blocks of sessions */
#define NR_FILES 150 /* > 2 blocks of files */
#define FILES_SESSION "mb-files"
#define STATE "multi-block-state"
#define SESS_TOKEN(i) (0x1000ULL + (i))
#define FILE_TOKEN(j) (0xf00000000ULL + 7ULL * (j))

static void session_name(char *buf, size_t len, int i)
{
	snprintf(buf, len, "mb-%03d", i);
}

static size_t file_len(int j)
{
	return 1 + (size_t)j * 37 % 5000;
}

static void stage1(int luo_fd)
{
	char name[32], text[64];
	unsigned char buf[5001];
	int i, j, sfd, ret;

	t_want_fds(NR_SESSIONS + NR_FILES + 16);
	for (i = 0; i < NR_SESSIONS; i++) {
		session_name(name, sizeof(name), i);
		sfd = luo_session_create(luo_fd, name);
		T_CHECK(sfd >= 0, "create %s: %s", name, t_errname(-sfd));
		snprintf(text, sizeof(text), "contents of session %d", i);
		ret = memfd_preserve_buf(sfd, SESS_TOKEN(i), text, strlen(text));
		T_CHECK(ret == 0, "preserve in %s: %s", name, t_errname(-ret));
	}
	t_info("created %d sessions with one memfd each", NR_SESSIONS);

	sfd = luo_session_create(luo_fd, FILES_SESSION);
	T_CHECK(sfd >= 0, "create %s: %s", FILES_SESSION, t_errname(-sfd));
	for (j = 0; j < NR_FILES; j++) {
		pattern_fill(buf, file_len(j), (uint64_t)j, 0);
		ret = memfd_preserve_buf(sfd, FILE_TOKEN(j), buf, file_len(j));
		T_CHECK(ret == 0, "preserve file %d: %s", j, t_errname(-ret));
	}
	t_info("preserved %d memfds in session '%s'", NR_FILES, FILES_SESSION);
}

static void check_file(int sfd, uint64_t token, const void *want, size_t len)
{
	unsigned char *got;
	size_t got_len;
	int fd;

	fd = luo_retrieve_fd(sfd, token);
	T_CHECK(fd >= 0, "retrieve token %#llx: %s", (unsigned long long)token,
		t_errname(-fd));
	got = memfd_slurp(fd, &got_len);
	T_CHECK(got != NULL, "read token %#llx", (unsigned long long)token);
	T_CHECK(got_len == len && !memcmp(got, want, len),
		"token %#llx: contents differ (got %zu bytes, want %zu)",
		(unsigned long long)token, got_len, len);
	free(got);
	close(fd);
}

static void stage2(int luo_fd)
{
	static int sfds[NR_SESSIONS];
	char name[32], got[LIVEUPDATE_SESSION_NAME_LENGTH], text[64];
	unsigned char buf[5001];
	int i, j, sfd;

	t_want_fds(NR_SESSIONS + 16);
	for (i = NR_SESSIONS - 1; i >= 0; i--) {
		session_name(name, sizeof(name), i);
		sfd = luo_session_retrieve(luo_fd, name);
		T_CHECK(sfd >= 0, "retrieve %s: %s", name, t_errname(-sfd));
		T_EXPECT_RET(luo_get_name(sfd, got, sizeof(got)), 0);
		T_CHECK(!strcmp(got, name), "session %s calls itself '%s'", name, got);
		snprintf(text, sizeof(text), "contents of session %d", i);
		check_file(sfd, SESS_TOKEN(i), text, strlen(text));
		/* The token of another session is not in this one. */
		T_EXPECT_RET(luo_retrieve_fd(sfd, SESS_TOKEN(i + 1)), -ENOENT);
		sfds[i] = sfd;
	}
	t_info("all %d sessions and their memfds verified", NR_SESSIONS);

	sfd = luo_session_retrieve(luo_fd, FILES_SESSION);
	T_CHECK(sfd >= 0, "retrieve %s: %s", FILES_SESSION, t_errname(-sfd));
	for (j = NR_FILES - 1; j >= 0; j--) {
		pattern_fill(buf, file_len(j), (uint64_t)j, 0);
		check_file(sfd, FILE_TOKEN(j), buf, file_len(j));
	}
	t_info("all %d memfds of '%s' verified", NR_FILES, FILES_SESSION);
	T_EXPECT_RET(luo_finish(sfd), 0);
	close(sfd);

	for (i = 0; i < NR_SESSIONS; i++) {
		T_EXPECT_RET(luo_finish(sfds[i]), 0);
		close(sfds[i]);
	}
	for (i = 0; i < NR_SESSIONS; i += 13) {
		session_name(name, sizeof(name), i);
		T_EXPECT_RET(luo_session_retrieve(luo_fd, name), -ENOENT);
	}
	T_EXPECT_RET(luo_session_retrieve(luo_fd, FILES_SESSION), -ENOENT);
	t_info("all sessions finished and gone");
}

int main(int argc, char **argv)
{
	return luo_stage_main(argc, argv, "luo_multi_block", STATE, stage1, stage2);
}
