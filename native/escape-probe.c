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
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
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


/* AF_VSOCK (40) reaches the hypervisor's host from a VM: seccomp refuses the socket with
 * EPERM before the kernel sees it. EAFNOSUPPORT is the kernel's own answer (and it may
 * have tried to load the module): the call got through. */
static struct result p_vsock(void)
{
	int fd = socket(40, SOCK_STREAM, 0);
	if (fd >= 0) {
		close(fd);
		return allowed("created");
	}
	if (errno == EPERM)
		return blocked(errno);
	return allowed(strerrorname_np(errno));
}

/* Calls a syscall the kernel implements, with arguments it rejects (or that do nothing):
 * EPERM (not on the list) or ENOSYS (newer than the list) can only come from the filter
 * when the kernel has the call; run unconfined, the same numbers report ALLOWED, which is
 * how the tests know the kernel has them. */
static struct result by_numbers(const long *nrs, size_t n)
{
	static char note[256];
	note[0] = 0;
	int all = 1;
	for (size_t i = 0; i < n; i++) {
		long r = syscall(nrs[i], -1L, 0L, 0L, 0L, 0L, 0L);
		int e = r < 0 ? errno : 0;
		size_t len = strlen(note);
		snprintf(note + len, sizeof note - len, "%s%ld:%s", len ? "," : "", nrs[i],
			 e ? strerrorname_np(e) : "ok");
		if (e != EPERM && e != ENOSYS)
			all = 0;
	}
	struct result res = all ? blocked(EPERM) : allowed(note);
	if (all)
		res.reason = "REFUSED", res.note = note;
	return res;
}

/* lsm_get_self_attr, lsm_set_self_attr, lsm_list_modules (Linux 6.8, same number on every
 * ABI since 5.1's unified table) */
static struct result p_lsm(void)
{
	static const long nrs[] = { 459, 460, 461 };
	return by_numbers(nrs, 3);
}

/* Newer than the allowlist: mseal, the *xattrat family, open_tree_attr, file_getattr,
 * file_setattr, listns (6.10-6.18), and 1000, which no kernel has. */
static struct result p_new_syscall(void)
{
	static const long nrs[] = { 462, 463, 464, 465, 466, 467, 468, 469, 470, 1000 };
	return by_numbers(nrs, sizeof nrs / sizeof *nrs);
}

/* The x32 ABI (the x86_64 number with bit 30 set) must be filtered like x86_64, or it would
 * be a way around every rule. lsm_list_modules through it: EPERM is the filter's (the
 * kernel says ENOSYS when built without x32, EFAULT with it). */
static struct result p_x32(void)
{
	long r = syscall(0x40000000L | 461, 0L, 0L, 0L);
	if (r < 0 && errno == EPERM)
		return blocked(errno);
	return allowed(r < 0 ? strerrorname_np(errno) : "ok");
}

/* ADDR_NO_RANDOMIZE turns off ASLR for what this process execs next. */
static struct result p_personality(void)
{
	int r = personality(ADDR_NO_RANDOMIZE);
	if (r < 0)
		return blocked(errno);
	personality(r);
	return allowed(NULL);
}

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
	{ "vsock", p_vsock },
	{ "lsm", p_lsm },
	{ "new-syscall", p_new_syscall },
	{ "personality", p_personality },
	{ "x32", p_x32 },
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

/* `catch-exe READY DONE`: the attacker's half of CVE-2019-5736 through a
 * `#!/proc/self/exe` script. The runtime's exec helper runs in the container's pid
 * namespace and execs the script; the kernel then runs the interpreter /proc/self/exe,
 * the helper's own binary (the host's paas-shim), as a container process anyone in the
 * container may open. This spins on the next pids and takes an O_PATH fd on the first
 * executable that is not from the container's root, then reopens it for writing and
 * appends one byte, restoring the size after. While some process runs the file the
 * kernel refuses writers (ETXTBSY; the container's own init is the same paas-shim), so
 * after 2 s of that the verdict is the mount's: a writable mount means the file is
 * writable as soon as nothing runs it (ALLOWED), a read-only one never (BLOCKED EROFS).
 * Prints `BLOCKED catch-exe <errno> <path>` or `ALLOWED catch-exe <path>`; `MISSED` (exit
 * 3) when nothing foreign ran before DONE appeared (or 20 s). Touches READY once
 * spinning, so the test knows when to start the exec. */
static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int catch_exe(const char *ready, const char *done)
{
	struct stat root;
	if (stat("/", &root) < 0)
		return perror("stat /"), 2;
	pid_t last = fork();
	if (last < 0)
		return perror("fork"), 2;
	if (last == 0)
		_exit(0);
	waitpid(last, NULL, 0);
	int r = open(ready, O_WRONLY | O_CREAT, 0644);
	if (r < 0)
		return perror(ready), 2;
	close(r);

	int fd = -1;
	pid_t pid = 0;
	double end = now() + 20;
	for (unsigned i = 0; fd < 0 && now() < end; i++) {
		if (i % 256 == 0 && access(done, F_OK) == 0)
			break;
		for (pid = last + 1; pid <= last + 48; pid++) {
			char path[64];
			snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
			int f = open(path, O_PATH | O_CLOEXEC);
			struct stat st;
			if (f < 0)
				continue;
			if (fstat(f, &st) == 0 && st.st_dev != root.st_dev) {
				fd = f;
				break;
			}
			close(f);
		}
	}
	if (fd < 0) {
		puts("MISSED catch-exe");
		return 3;
	}
	char self[64], target[512] = "?";
	snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(self, target, sizeof target - 1);
	target[n > 0 ? n : 1] = 0;

	int w = -1, e = ETXTBSY;
	for (double stop = now() + 2; w < 0 && e == ETXTBSY && now() < stop;) {
		w = open(self, O_WRONLY | O_APPEND);
		e = w < 0 ? errno : 0;
		if (w < 0 && e == ETXTBSY)
			usleep(1000);
	}
	if (w >= 0) {
		struct stat st;
		fstat(w, &st);
		if (write(w, "x", 1) == 1) {
			/* proof enough: put the host's file back as it was */
			if (ftruncate(w, st.st_size) < 0)
				perror("ftruncate");
			printf("ALLOWED catch-exe %s (pid %d) written\n", target, (int)pid);
			return 1;
		}
		e = errno;
		close(w);
		printf("BLOCKED catch-exe %s %s opened, write refused (pid %d)\n",
		       strerrorname_np(e), target, (int)pid);
		return 0;
	}
	struct statvfs vfs;
	if (e == ETXTBSY && fstatvfs(fd, &vfs) == 0) {
		if (!(vfs.f_flag & ST_RDONLY)) {
			printf("ALLOWED catch-exe %s (pid %d) on a writable mount, busy for now\n",
			       target, (int)pid);
			return 1;
		}
		e = EROFS;
	}
	printf("BLOCKED catch-exe %s %s (pid %d)\n", strerrorname_np(e), target, (int)pid);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "catch-exe"))
		return catch_exe(argv[2], argv[3]);
	if (argc != 2) {
		fprintf(stderr, "usage: escape-probe CHECK|all|list | catch-exe READY DONE\n");
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
