/* seccomp-gen LIST: compiles the allowlist (seccomp.list, format described there) into
 * the classic-BPF program paas-shim loads, printed as a C header. Runs at build time, so
 * the container start path loads a ready program (one seccomp(2) call) instead of running
 * libseccomp's compiler in every container.
 *
 * The program is two parts run as one filter:
 * 1. a stub that answers ENOSYS for any syscall numbered above the highest one the list
 *    names, per ABI (x86_64, x32, i386). Such a call is newer than the list (or than the
 *    libseccomp we build with): ENOSYS lets libc fall back to an older call, where EPERM
 *    would be an error. runc prepends the same stub to Docker's profile (patchbpf), so
 *    both backends answer alike;
 * 2. libseccomp's compilation of the list: listed calls allowed (or their errno), any
 *    other call EPERM (Docker's defaultErrnoRet), an unknown ABI kills the process.
 * seccomp(2), seccomp_rule_add(3), seccomp_export_bpf(3). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAXCOND 6

static void fail(const char *list, int line, const char *what)
{
	fprintf(stderr, "seccomp-gen: %s:%d: %s\n", list, line, what);
	exit(1);
}

/* `aN<op>V` or `aN&MASK==V` */
static int parse_cond(const char *t, struct scmp_arg_cmp *c)
{
	char *end;
	if (t[0] != 'a' || t[1] < '0' || t[1] > '5')
		return -1;
	c->arg = t[1] - '0';
	t += 2;
	if (*t == '&') {
		c->op = SCMP_CMP_MASKED_EQ;
		c->datum_a = strtoull(t + 1, &end, 0);
		if (strncmp(end, "==", 2))
			return -1;
		c->datum_b = strtoull(end + 2, &end, 0);
		return *end ? -1 : 0;
	}
	static const struct { const char *s; enum scmp_compare op; } OPS[] = {
		{ "==", SCMP_CMP_EQ }, { "!=", SCMP_CMP_NE }, { "<=", SCMP_CMP_LE },
		{ ">=", SCMP_CMP_GE }, { "<", SCMP_CMP_LT },  { ">", SCMP_CMP_GT },
	};
	for (size_t i = 0; i < sizeof OPS / sizeof *OPS; i++) {
		size_t n = strlen(OPS[i].s);
		if (!strncmp(t, OPS[i].s, n)) {
			c->op = OPS[i].op;
			c->datum_a = strtoull(t + n, &end, 0);
			c->datum_b = 0;
			return *end || end == t + n ? -1 : 0;
		}
	}
	return -1;
}

static int errno_of(const char *name)
{
	if (!strcmp(name, "EPERM"))
		return EPERM;
	if (!strcmp(name, "ENOSYS"))
		return ENOSYS;
	return -1;
}

static const uint32_t ARCHES[] = { SCMP_ARCH_X86_64, SCMP_ARCH_X32, SCMP_ARCH_X86 };
#define NARCH (sizeof ARCHES / sizeof *ARCHES)

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: seccomp-gen LIST > header\n");
		return 2;
	}
	const char *list = argv[1];
	FILE *f = fopen(list, "r");
	if (!f) {
		perror(list);
		return 1;
	}
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	if (!ctx)
		fail(list, 0, "seccomp_init failed");
	if (seccomp_arch_native() != SCMP_ARCH_X86_64)
		fail(list, 0, "only x86_64 hosts are supported (the stub below is x86's)");
	if (seccomp_arch_add(ctx, SCMP_ARCH_X86) < 0 || seccomp_arch_add(ctx, SCMP_ARCH_X32) < 0)
		fail(list, 0, "arch add failed");
	/* 2 = a binary tree of syscall numbers: fewer BPF steps per syscall than a chain */
	if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2) < 0 ||
	    seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) < 0)
		fail(list, 0, "filter attributes");

	int max[NARCH] = { -1, -1, -1 };
	char skipped[4096] = "";
	char buf[512];
	int line = 0, rules = 0;
	while (fgets(buf, sizeof buf, f)) {
		line++;
		char *hash = strchr(buf, '#');
		if (hash)
			*hash = 0;
		char *save, *name = strtok_r(buf, " \t\n", &save);
		if (!name)
			continue;
		struct scmp_arg_cmp cond[MAXCOND];
		unsigned n = 0;
		uint32_t action = SCMP_ACT_ALLOW;
		for (char *t; (t = strtok_r(NULL, " \t\n", &save));) {
			if (!strncmp(t, "errno:", 6)) {
				int e = errno_of(t + 6);
				if (e < 0)
					fail(list, line, "errno: EPERM or ENOSYS");
				action = SCMP_ACT_ERRNO(e);
			} else if (n == MAXCOND || parse_cond(t, &cond[n++]) < 0) {
				fail(list, line, "bad condition (aN<op>V or aN&MASK==V)");
			}
		}
		int nr = seccomp_syscall_resolve_name(name);
		if (nr == __NR_SCMP_ERROR) {
			/* unknown to this libseccomp: above the list, so ENOSYS (as runc) */
			if (!strstr(skipped, name) && strlen(skipped) + strlen(name) + 2 < sizeof skipped)
				strcat(strcat(skipped, " "), name);
			continue;
		}
		for (size_t a = 0; a < NARCH; a++) {
			int anr = seccomp_syscall_resolve_name_arch(ARCHES[a], name);
			if (anr >= 0 && anr > max[a])
				max[a] = anr;
		}
		int r = seccomp_rule_add_array(ctx, action, nr, n, cond);
		if (r < 0) {
			errno = -r;
			fprintf(stderr, "seccomp-gen: %s:%d: rule for %s: %m\n", list, line, name);
			return 1;
		}
		rules++;
	}
	fclose(f);

	int mfd = memfd_create("bpf", 0);
	if (mfd < 0 || seccomp_export_bpf(ctx, mfd) < 0)
		fail(list, 0, "export failed");
	off_t size = lseek(mfd, 0, SEEK_END);
	struct sock_filter *prog = malloc(size);
	if (!prog || pread(mfd, prog, size, 0) != size)
		fail(list, 0, "reading the exported program");
	size_t len = size / sizeof *prog;

	/* The stub (jumps count from the next instruction; CONT is the first instruction of
	 * libseccomp's program, which loads the arch again). */
#define LD(off) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off))
#define J(op, k, t, f) BPF_JUMP(BPF_JMP | (op) | BPF_K, (k), (t), (f))
	const uint32_t ARCH = offsetof(struct seccomp_data, arch),
		       NR = offsetof(struct seccomp_data, nr);
	struct sock_filter stub[] = {
		/* 0 */ LD(ARCH),
		/* 1 */ J(BPF_JEQ, AUDIT_ARCH_X86_64, 0, 4),
		/* 2 */ LD(NR),
		/* 3 */ J(BPF_JGE, 0x40000000, 1, 0), /* __X32_SYSCALL_BIT */
		/* 4 */ J(BPF_JGT, (uint32_t)max[0], 4, 5),
		/* 5 */ J(BPF_JGT, (uint32_t)max[1], 3, 4),
		/* 6 */ J(BPF_JEQ, AUDIT_ARCH_I386, 0, 3),
		/* 7 */ LD(NR),
		/* 8 */ J(BPF_JGT, (uint32_t)max[2], 0, 1),
		/* 9 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		/* 10: CONT */
	};
	size_t nstub = sizeof stub / sizeof *stub;
	if (max[0] < 0 || max[1] < 0 || max[2] < 0)
		fail(list, 0, "an ABI has no syscall in the list");
	if (nstub + len > BPF_MAXINSNS)
		fail(list, 0, "program too long");

	printf("/* Generated by tools/seccomp-gen from seccomp.list with libseccomp %u.%u.%u:"
	       " do not edit.\n * %d rules; above x86_64 %d, x32 %#x, i386 %d: ENOSYS.\n"
	       " * Not known to this libseccomp (so ENOSYS):%s */\n",
	       seccomp_version()->major, seccomp_version()->minor, seccomp_version()->micro,
	       rules, max[0], max[1], max[2], *skipped ? skipped : " none");
	printf("static const struct sock_filter SECCOMP_PROGRAM[] = {\n");
	for (size_t i = 0; i < nstub + len; i++) {
		const struct sock_filter *p = i < nstub ? &stub[i] : &prog[i - nstub];
		printf("\t{ 0x%02x, %u, %u, 0x%08x },\n", p->code, p->jt, p->jf, p->k);
	}
	printf("};\n");
	return 0;
}
