/* The container's seccomp filter: the effect of Docker's default profile (moby
 * profiles/seccomp/default.json) for a container without CAP_SYS_ADMIN, CAP_SYS_MODULE,
 * CAP_SYS_BOOT, CAP_SYS_TIME, CAP_SYS_PTRACE, CAP_SYSLOG…, written as a default-allow
 * filter with the blocked calls failing with EPERM. seccomp(2), seccomp_rule_add(3). */
#include "paas.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

/* Kernel-administration calls no container needs; most already need a capability the
 * container lacks, the filter also closes the door on kernel bugs behind them. */
static const char *const BLOCKED[] = {
	/* mounts and the root: the container's view of the filesystem is fixed */
	"mount", "umount", "umount2", "pivot_root", "open_tree", "move_mount",
	"fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
	/* namespaces: no new ones, no joining others (clone is filtered by flags below) */
	"unshare", "setns",
	/* kernel modules, kexec, reboot, swap, accounting, quotas */
	"init_module", "finit_module", "delete_module", "create_module", "query_module",
	"get_kernel_syms", "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff",
	"acct", "quotactl", "quotactl_fd", "nfsservctl",
	/* the kernel keyring is not namespaced */
	"add_key", "request_key", "keyctl",
	/* large kernel attack surface / host-wide observation */
	"bpf", "perf_event_open", "userfaultfd", "lookup_dcookie", "fanotify_init",
	"io_uring_setup", "io_uring_enter", "io_uring_register", "syslog",
	/* shocker (2014): open_by_handle_at walks outside the mount */
	"open_by_handle_at", "name_to_handle_at",
	/* the clock and the host name are host-wide (the UTS ns is set up by us) */
	"settimeofday", "stime", "clock_settime", "clock_settime64", "clock_adjtime",
	"clock_adjtime64", "sethostname", "setdomainname",
	/* hardware and legacy */
	"iopl", "ioperm", "vm86", "vm86old", "uselib", "ustat", "sysfs", "_sysctl",
	"vhangup",
	/* NUMA placement (Docker: CAP_SYS_NICE) */
	"mbind", "set_mempolicy", "get_mempolicy", "move_pages", "migrate_pages",
	"set_mempolicy_home_node",
	/* cross-process inspection (Docker: CAP_SYS_PTRACE) */
	"kcmp", "pidfd_getfd", "process_madvise",
	0,
};

/* Namespace flags of clone(2): the same namespaces unshare would create. */
static const unsigned long CLONE_NS_FLAGS[] = {
	CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
	CLONE_NEWCGROUP,
};

static void add(scmp_filter_ctx ctx, uint32_t action, int nr, unsigned n,
		const struct scmp_arg_cmp *cmp, const char *name)
{
	int r = seccomp_rule_add_array(ctx, action, nr, n, cmp);
	if (r < 0) {
		errno = -r;
		die("seccomp", "rule for %s: %m", name);
	}
}

static void build_rules(scmp_filter_ctx ctx)
{
	const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);

	for (const char *const *name = BLOCKED; *name; name++) {
		int nr = seccomp_syscall_resolve_name(*name);
		if (nr == __NR_SCMP_ERROR)
			continue; /* not a syscall of any of our arches */
		add(ctx, eperm, nr, 0, NULL, *name);
	}
	for (size_t i = 0; i < sizeof CLONE_NS_FLAGS / sizeof *CLONE_NS_FLAGS; i++) {
		struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NS_FLAGS[i],
						CLONE_NS_FLAGS[i]);
		add(ctx, eperm, SCMP_SYS(clone), 1, &c, "clone");
	}
	/* clone3 passes its flags in memory a filter cannot read: ENOSYS makes glibc fall back
	 * to clone(2), whose flags we can check (as Docker does). */
	add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0, NULL, "clone3");

	/* CAP_MKNOD stays (Docker's set) but device nodes are not allowed: this runtime has no
	 * device cgroup, so a block device node would open the host's disks. FIFOs, sockets
	 * and regular files can still be made. */
	const unsigned long types[] = { S_IFBLK, S_IFCHR };
	for (int i = 0; i < 2; i++) {
		struct scmp_arg_cmp m1 = SCMP_A1(SCMP_CMP_MASKED_EQ, S_IFMT, types[i]);
		struct scmp_arg_cmp m2 = SCMP_A2(SCMP_CMP_MASKED_EQ, S_IFMT, types[i]);
		add(ctx, eperm, SCMP_SYS(mknod), 1, &m1, "mknod");
		add(ctx, eperm, SCMP_SYS(mknodat), 1, &m2, "mknodat");
	}
}

/* personality(2) with anything but the harmless personas Docker allows (PER_LINUX,
 * PER_LINUX32, UNAME26 and the query 0xffffffff): ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC and
 * friends weaken the process. libseccomp cannot say "a0 not in {…}" in one rule, so this
 * is a second, stacked classic-BPF filter; the kernel applies the stricter verdict. */
static void personality_filter(void)
{
#define LD(off) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off))
#define JEQ(k, t, f) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (k), (t), (f))
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))
	struct sock_filter prog[] = {
		/* 0 */ LD(offsetof(struct seccomp_data, arch)),
		/* 1 */ JEQ(AUDIT_ARCH_X86_64, 0, 3),
		/* 2 */ LD(offsetof(struct seccomp_data, nr)),
		/* 3 */ JEQ(135, 5, 0),              /* x86_64 personality */
		/* 4 */ JEQ(135 | 0x40000000, 4, 3), /* x32 personality */
		/* 5 */ JEQ(AUDIT_ARCH_I386, 0, 2),
		/* 6 */ LD(offsetof(struct seccomp_data, nr)),
		/* 7 */ JEQ(136, 1, 0),              /* i386 personality */
		/* 8 */ RET(SECCOMP_RET_ALLOW),
		/* 9: the high half of a0 must be zero (little endian) */
		/* 9 */ LD(offsetof(struct seccomp_data, args[0]) + 4),
		/* 10 */ JEQ(0, 0, 6),
		/* 11 */ LD(offsetof(struct seccomp_data, args[0])),
		/* 12 */ JEQ(0x0, 5, 0),
		/* 13 */ JEQ(0x8, 4, 0),
		/* 14 */ JEQ(0x20000, 3, 0),
		/* 15 */ JEQ(0x20008, 2, 0),
		/* 16 */ JEQ(0xffffffff, 1, 0),
		/* 17 */ RET(SECCOMP_RET_ERRNO | EPERM),
		/* 18 */ RET(SECCOMP_RET_ALLOW),
	};
#undef LD
#undef JEQ
#undef RET
	struct sock_fprog fprog = { sizeof prog / sizeof *prog, prog };
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) < 0)
		die("seccomp", "personality filter: %m");
}

/* Called last before execve: every syscall made after this is subject to the filter. */
void seccomp_apply(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		die("seccomp", "init failed");
	/* no_new_privs is the spec's `nonewprivs` decision, not libseccomp's. */
	if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) < 0)
		die("seccomp", "attr nnp");
	/* 32-bit and x32 binaries are filtered like native ones; any other ABI is killed
	 * (libseccomp's bad-arch action) so it cannot be used to dodge the rules. */
	int r;
	if ((r = seccomp_arch_add(ctx, SCMP_ARCH_X86)) < 0 && r != -EEXIST)
		die("seccomp", "arch x86: %d", r);
	if ((r = seccomp_arch_add(ctx, SCMP_ARCH_X32)) < 0 && r != -EEXIST)
		die("seccomp", "arch x32: %d", r);
	build_rules(ctx);
	if ((r = seccomp_load(ctx)) < 0) {
		errno = -r;
		die("seccomp", "load: %m");
	}
	personality_filter();
	seccomp_release(ctx);
}
