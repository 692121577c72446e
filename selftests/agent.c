// SPDX-License-Identifier: GPL-2.0
/*
 * agent: a toy "VMM agent" that survives a kernel live update.
 *
 * It keeps its state in memfds spread over three LUO sessions:
 *   vmm-config     the VM's configuration string
 *   vmm-state      a boot counter (u64) and the agent's generation string
 *   vmm-guest-ram  4 MiB of "guest memory"
 * Stage 1 builds the state, prints it with checksums, preserves it and lets
 * the kernel kexec. Stage 2 gets everything back, prints it again, and says
 * whether it matches what was preserved.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/luo.h"

#define STATE "agent-state"
#define CONFIG_SESSION "vmm-config"
#define STATE_SESSION "vmm-state"
#define RAM_SESSION "vmm-guest-ram"
#define TOK_CONFIG 1
#define TOK_COUNTER 2
#define TOK_GEN 3
#define TOK_RAM 4
#define RAM_SIZE (4u << 20)
#define RAM_SEED 0x6d656d6fULL
#define COUNTER 41

static const char config[] = "name=demo-guest vcpus=2 memory=4M net=tap0 disk=/dev/vda";
static const char generation[] = "agent generation 1, preserved before the live update";
static const char boot_msg[] = "GUEST: hello from guest memory, still running";

static unsigned char *make_ram(void)
{
	unsigned char *ram = malloc(RAM_SIZE);

	if (!ram)
		t_fail("malloc");
	pattern_fill(ram, RAM_SIZE, RAM_SEED, 0);
	memcpy(ram + 0x7c00, boot_msg, sizeof(boot_msg));
	return ram;
}

static int preserve_in(int luo_fd, const char *session, uint64_t token,
		       const void *data, size_t len)
{
	int sfd = luo_session_create(luo_fd, session);
	int ret;

	if (sfd == -EEXIST)
		t_fail("session %s exists", session);
	T_CHECK(sfd >= 0, "create %s: %s", session, t_errname(-sfd));
	ret = memfd_preserve_buf(sfd, token, data, len);
	T_CHECK(ret == 0, "preserve in %s: %s", session, t_errname(-ret));
	return sfd;
}

static void stage1(int luo_fd)
{
	uint64_t counter = COUNTER;
	unsigned char *ram = make_ram();
	int sfd, ret;

	printf("agent: ==== before the live update ====\n");
	preserve_in(luo_fd, CONFIG_SESSION, TOK_CONFIG, config, sizeof(config) - 1);
	printf("agent: config      \"%s\" (fnv %016" PRIx64 ")\n", config,
	       fnv1a64(config, sizeof(config) - 1));

	sfd = preserve_in(luo_fd, STATE_SESSION, TOK_COUNTER, &counter, sizeof(counter));
	ret = memfd_preserve_buf(sfd, TOK_GEN, generation, sizeof(generation) - 1);
	T_CHECK(ret == 0, "preserve generation: %s", t_errname(-ret));
	printf("agent: counter     %" PRIu64 "\n", counter);
	printf("agent: generation  \"%s\"\n", generation);

	preserve_in(luo_fd, RAM_SESSION, TOK_RAM, ram, RAM_SIZE);
	printf("agent: guest RAM   %u bytes (fnv %016" PRIx64 "), at 0x7c00: \"%s\"\n",
	       RAM_SIZE, fnv1a64(ram, RAM_SIZE), (char *)ram + 0x7c00);
	free(ram);
	printf("agent: 3 sessions, 4 memfds preserved; handing over to the next kernel\n");
}

static void *fetch(int luo_fd, const char *session, uint64_t token, size_t *len,
		   int *sfdp)
{
	int sfd = *sfdp, fd;
	void *data;

	if (sfd < 0) {
		sfd = luo_session_retrieve(luo_fd, session);
		T_CHECK(sfd >= 0, "retrieve %s: %s", session, t_errname(-sfd));
		*sfdp = sfd;
	}
	fd = luo_retrieve_fd(sfd, token);
	T_CHECK(fd >= 0, "retrieve token %" PRIu64 " of %s: %s", token, session,
		t_errname(-fd));
	data = memfd_slurp(fd, len);
	T_CHECK(data != NULL, "read %s", session);
	close(fd);
	return data;
}

static int same(const char *what, const void *a, size_t alen, const void *b,
		size_t blen)
{
	int ok = alen == blen && !memcmp(a, b, alen);

	printf("agent:   %-10s %s\n", what, ok ? "MATCH" : "MISMATCH");
	return ok;
}

static void stage2(int luo_fd)
{
	int cfg_fd = -1, st_fd = -1, ram_fd = -1, ok = 1;
	unsigned char *want_ram = make_ram();
	size_t clen, nlen, glen, rlen;
	char *cfg, *gen, *ram;
	uint64_t counter, want_counter = COUNTER;

	printf("agent: ==== after the live update ====\n");
	cfg = fetch(luo_fd, CONFIG_SESSION, TOK_CONFIG, &clen, &cfg_fd);
	printf("agent: config      \"%.*s\" (fnv %016" PRIx64 ")\n", (int)clen, cfg,
	       fnv1a64(cfg, clen));
	{
		uint64_t *c = fetch(luo_fd, STATE_SESSION, TOK_COUNTER, &nlen, &st_fd);

		counter = nlen == sizeof(counter) ? *c : 0;
		free(c);
	}
	gen = fetch(luo_fd, STATE_SESSION, TOK_GEN, &glen, &st_fd);
	printf("agent: counter     %" PRIu64 " -> %" PRIu64 " after this boot\n",
	       counter, counter + 1);
	printf("agent: generation  \"%.*s\"\n", (int)glen, gen);
	ram = fetch(luo_fd, RAM_SESSION, TOK_RAM, &rlen, &ram_fd);
	printf("agent: guest RAM   %zu bytes (fnv %016" PRIx64 "), at 0x7c00: \"%s\"\n",
	       rlen, fnv1a64(ram, rlen), rlen > 0x7c00 + sizeof(boot_msg) ? ram + 0x7c00 : "?");

	printf("agent: comparing with what stage 1 preserved:\n");
	ok &= same("config", cfg, clen, config, sizeof(config) - 1);
	ok &= same("counter", &counter, nlen, &want_counter, sizeof(want_counter));
	ok &= same("generation", gen, glen, generation, sizeof(generation) - 1);
	ok &= same("guest RAM", ram, rlen, want_ram, RAM_SIZE);
	free(cfg);
	free(gen);
	free(ram);
	free(want_ram);

	T_EXPECT_RET(luo_finish(cfg_fd), 0);
	T_EXPECT_RET(luo_finish(st_fd), 0);
	T_EXPECT_RET(luo_finish(ram_fd), 0);
	close(cfg_fd);
	close(st_fd);
	close(ram_fd);
	if (!ok)
		t_fail("state did not survive the live update");
	printf("agent: ALL STATE MATCHES: the agent survived the live update\n");
}

int main(int argc, char **argv)
{
	return luo_stage_main(argc, argv, "agent", STATE, stage1, stage2);
}
