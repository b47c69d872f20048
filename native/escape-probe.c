/* escape-probe CHECK: tries one thing a container must not be able to do and prints
 * `BLOCKED <check> <reason>` (exit 0) or `ALLOWED <check>` (exit 1). Run as root inside a
 * container. Each attempt is chosen so that, where the kernel checks privilege before
 * arguments, an invalid argument tells "allowed" (EINVAL/EBADF/EFAULT) apart from
 * "blocked" (EPERM) without doing harm; where that is not possible the action is one
 * that only touches the container itself. `all` runs every check. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

struct result {
	int allowed;
	const char *reason; /* errno name or a word */
	const char *note;
};

static struct result blocked(int e)
{
	return (struct result){ 0, strerrorname_np(e) ? strerrorname_np(e) : "?", NULL };
}
static struct result allowed(const char *note) { return (struct result){ 1, NULL, note }; }

/* r < 0 with errno in `ok` means the privilege check passed and an argument failed */
static struct result by_errno(long r, int ok1, int ok2)
{
	if (r == 0 || (r < 0 && (errno == ok1 || errno == ok2)))
		return allowed(NULL);
	return blocked(errno);
}

static struct result p_mount(void)
{
	mkdir("/tmp/.probe-mnt", 0700);
	if (mount("probe", "/tmp/.probe-mnt", "tmpfs", 0, NULL) == 0) {
		umount2("/tmp/.probe-mnt", MNT_DETACH);
		return allowed(NULL);
	}
	return blocked(errno);
}

/* /proc/sys is a read-only bind: removing it would make the sysctls writable */
static struct result p_umount(void) { return by_errno(umount2("/proc/sys", MNT_DETACH), EINVAL, 0); }
/* new_root "/proc/self" is not a mount point: EINVAL once past the capability check */
static struct result p_pivot_root(void)
{
	return by_errno(syscall(SYS_pivot_root, "/proc/self", "/proc/self"), EINVAL, EBUSY);
}

static struct result p_mknod(void)
{
	const char *path = "/tmp/.probe-blk";
	unlink(path);
	if (mknod(path, S_IFBLK | 0600, makedev(7, 0)) < 0)
		return blocked(errno);
	int fd = open(path, O_RDONLY);
	int e = errno;
	unlink(path);
	if (fd >= 0) {
		close(fd);
		return allowed("created and opened a block device");
	}
	struct result r = blocked(e);
	r.note = "created, but open refused";
	return r;
}

static struct result p_init_module(void) { return by_errno(syscall(SYS_init_module, NULL, 0, ""), EFAULT, EINVAL); }
static struct result p_finit_module(void) { return by_errno(syscall(SYS_finit_module, -1, "", 0), EBADF, EINVAL); }
static struct result p_kexec_load(void) { return by_errno(syscall(SYS_kexec_load, 0, 0, NULL, 0xdead0000UL), EINVAL, 0); }
/* a wrong magic is EINVAL, but only after the CAP_SYS_BOOT check */
static struct result p_reboot(void) { return by_errno(syscall(SYS_reboot, 0, 0, 0, NULL), EINVAL, 0); }
static struct result p_swapon(void) { return by_errno(swapon("/nonexistent-probe", 0), ENOENT, EINVAL); }

static struct result p_sethostname(void)
{
	char old[256] = "";
	gethostname(old, sizeof old);
	if (sethostname("probe", 5) < 0)
		return blocked(errno);
	sethostname(old, strlen(old));
	return allowed("container UTS namespace only");
}

static struct result open_write(const char *const *paths)
{
	int e = ENOENT;
	for (; *paths; paths++) {
		int fd = open(*paths, O_WRONLY);
		if (fd >= 0) {
			close(fd); /* opened for write is enough; nothing is written */
			return allowed(*paths);
		}
		if (errno != ENOENT)
			e = errno;
	}
	return blocked(e);
}

static struct result p_write_proc_sys(void)
{
	static const char *const p[] = { "/proc/sys/kernel/core_pattern",
					 "/proc/sys/vm/drop_caches", "/proc/sysrq-trigger", 0 };
	return open_write(p);
}

static struct result p_write_sys(void)
{
	static const char *const p[] = { "/sys/kernel/uevent_helper", "/sys/kernel/mm/ksm/run",
					 "/sys/power/state", "/sys/kernel/profiling", 0 };
	return open_write(p);
}

static struct result p_read_kcore(void)
{
	int fd = open("/proc/kcore", O_RDONLY);
	if (fd < 0)
		return blocked(errno);
	char c;
	ssize_t n = read(fd, &c, 1);
	close(fd);
	if (n <= 0)
		return (struct result){ 0, "MASKED", "reads as empty" };
	return allowed(NULL);
}

/* CVE-2019-5736: open the host binary running as PID 1 (O_PATH first, as the exploit did,
 * then for writing through that fd). */
static struct result p_open_proc1_exe(void)
{
	int fd = open("/proc/1/exe", O_PATH);
	if (fd < 0)
		return blocked(errno);
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	int w = open(path, O_WRONLY);
	int e = errno;
	close(fd);
	if (w >= 0) {
		close(w);
		return allowed(NULL);
	}
	return blocked(e);
}

static struct result p_open_self_exe(void)
{
	int fd = open("/proc/self/exe", O_WRONLY);
	if (fd >= 0) {
		close(fd);
		return allowed(NULL);
	}
	return blocked(errno);
}

static struct result p_ptrace_init(void)
{
	if (ptrace(PTRACE_ATTACH, 1, NULL, NULL) == 0) {
		waitpid(1, NULL, __WALL);
		ptrace(PTRACE_DETACH, 1, NULL, NULL);
		return allowed(NULL);
	}
	return blocked(errno);
}

static struct result p_unshare_userns(void) { return by_errno(unshare(CLONE_NEWUSER), -1, -1); }
static struct result p_setns(void)
{
	int fd = open("/proc/self/ns/mnt", O_RDONLY);
	if (fd < 0)
		return blocked(errno);
	long r = setns(fd, 0);
	int e = errno;
	close(fd);
	errno = e;
	return by_errno(r, -1, -1);
}
static struct result p_open_by_handle(void) { return by_errno(syscall(SYS_open_by_handle_at, -1, NULL, 0), EBADF, EFAULT); }
static struct result p_bpf(void) { return by_errno(syscall(SYS_bpf, -1, NULL, 0), EINVAL, EFAULT); }
static struct result p_keyctl(void) { return by_errno(syscall(SYS_keyctl, -1, 0, 0, 0, 0), EOPNOTSUPP, EINVAL); }

static const struct { const char *name; struct result (*fn)(void); } CHECKS[] = {
	{ "mount", p_mount },
	{ "umount", p_umount },
	{ "pivot_root", p_pivot_root },
	{ "mknod", p_mknod },
	{ "init_module", p_init_module },
	{ "finit_module", p_finit_module },
	{ "kexec_load", p_kexec_load },
	{ "reboot", p_reboot },
	{ "swapon", p_swapon },
	{ "sethostname", p_sethostname },
	{ "write-proc-sys", p_write_proc_sys },
	{ "write-sys", p_write_sys },
	{ "read-kcore", p_read_kcore },
	{ "open-proc1-exe-write", p_open_proc1_exe },
	{ "open-self-exe-write", p_open_self_exe },
	{ "ptrace-init", p_ptrace_init },
	{ "unshare-userns", p_unshare_userns },
	{ "setns", p_setns },
	{ "open_by_handle_at", p_open_by_handle },
	{ "bpf", p_bpf },
	{ "keyctl", p_keyctl },
};
#define NCHECKS (sizeof CHECKS / sizeof *CHECKS)

static int run(size_t i)
{
	struct result r = CHECKS[i].fn();
	if (r.allowed)
		printf("ALLOWED %s%s%s\n", CHECKS[i].name, r.note ? " " : "", r.note ? r.note : "");
	else
		printf("BLOCKED %s %s%s%s\n", CHECKS[i].name, r.reason, r.note ? " " : "",
		       r.note ? r.note : "");
	return r.allowed;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: escape-probe CHECK|all|list\n");
		return 2;
	}
	int any = 0;
	for (size_t i = 0; i < NCHECKS; i++) {
		if (!strcmp(argv[1], "list"))
			puts(CHECKS[i].name);
		else if (!strcmp(argv[1], "all") || !strcmp(argv[1], CHECKS[i].name))
			any |= run(i) | 4;
	}
	if (!strcmp(argv[1], "list"))
		return 0;
	if (!any) {
		fprintf(stderr, "escape-probe: unknown check \"%s\"\n", argv[1]);
		return 2;
	}
	return any & 1;
}
