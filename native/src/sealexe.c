/* CVE-2019-5736, the `#!/proc/self/exe` way: when this process (or a child forked from it
 * before its execve) execs a file of the container that starts with `#!/proc/self/exe`,
 * the kernel runs the interpreter /proc/self/exe, which is this binary, as a process of
 * the container. Any container process may then take an O_PATH fd on its
 * /proc/PID/exe and, once it has exited (no more ETXTBSY), reopen that fd for writing:
 * the host's paas-shim, run as root by the next container start. Being non-dumpable does
 * not help here: the execve made the process dumpable again.
 *
 * So the launcher runs from a read-only mount of itself before it touches a container:
 * a private, detached clone of its own file's mount (open_tree OPEN_TREE_CLONE, attached
 * nowhere, invisible in every mount table, gone with the last process using it), made
 * read-only (mount_setattr), and re-executed through the fd (execveat AT_EMPTY_PATH).
 * Every /proc/PID/exe a container can reach then names a file on a read-only mount: the
 * reopen fails with EROFS, and the container cannot remount it (no CAP_SYS_ADMIN; mount
 * syscalls refused by seccomp). Same inode, so no copy and no extra memory, unlike runc's
 * sealed-memfd clone (which native/SECURITY.md measured at +1.2 ms and ~1.1 MB per
 * container); runc 1.2 likewise moved to an unattached read-only (overlayfs) mount.
 * open_tree(2), mount_setattr(2), execveat(2). */
#include "paas.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

void exe_reexec_readonly(char **argv)
{
	struct statvfs st;
	if (statvfs("/proc/self/exe", &st) < 0)
		die("self-exe", "statvfs: %m");
	if (st.f_flag & ST_RDONLY)
		return; /* re-executed already, or installed on a read-only mount */
	/* execveat(AT_EMPTY_PATH) names the program /dev/fd/N: if that run lands here again
	 * the mount did not come out read-only, and looping would not fix it. */
	const char *fn = (const char *)getauxval(AT_EXECFN);
	if (fn && !strncmp(fn, "/dev/fd/", 8))
		die("self-exe", "re-executed, but not from a read-only mount");

	int fd = syscall(SYS_open_tree, AT_FDCWD, "/proc/self/exe",
			 OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (fd < 0)
		die("self-exe", "open_tree (Linux >= 5.12 needed): %m");
	struct mount_attr attr = {
		.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
	};
	if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0)
		die("self-exe", "mount_setattr: %m");
	syscall(SYS_execveat, fd, "", argv, environ, AT_EMPTY_PATH);
	die("self-exe", "execveat: %m");
}
