/* The optional user namespace (SPEC.md `userns HOSTUID:HOSTGID:COUNT`): container ids
 * 0..COUNT-1 are host ids HOSTUID.. / HOSTGID.., so the container's root is an unprivileged
 * host uid. Image layers stay as extracted (owned by host 0, 1000 …) and shared: each lower
 * is seen through an idmapped mount (mount_setattr(2) MOUNT_ATTR_IDMAP) that shifts it into
 * the container's range, and the overlay over them is assembled here, by host root, with
 * the new mount API (fsopen(2), fsconfig(2) `lowerdir+` by fd, fsmount(2)). The child gets
 * the finished, detached root mount over a socket (unix(7) SCM_RIGHTS) and attaches it in
 * its own mount namespace.
 *
 * Who does what, and why there:
 * - the launcher (host root): writes uid_map/gid_map, chowns the writable layer, builds the
 *   root mount. An idmapped mount needs CAP_SYS_ADMIN over the filesystem's user namespace
 *   (the host's for ext4), which the child no longer has.
 * - the child (born in the new user and pid namespaces): everything inside its mount
 *   namespace, which belongs to the new user namespace. */
#include "paas.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* clone(2) with CLONE_NEWUSER | CLONE_NEWPID: the pid namespace must belong to the new
 * user namespace, or the child could not mount its /proc (proc(5): the mounter needs
 * CAP_SYS_ADMIN over the pid namespace's owner). unshare(CLONE_NEWPID) in the launcher, as
 * the default path does, would make it the host's. glibc's fork() takes no flags, so this
 * is the raw syscall (as crun does); the child runs only our code and never uses threads,
 * so glibc's stale cached tid does not matter.
 *
 * A `net` path netns belongs to the host's user namespace: setns(2) into it needs
 * CAP_SYS_ADMIN there, which the child is born without. The launcher enters it for the
 * clone (the child inherits it) and goes back to its own. */
pid_t userns_clone(int netfd)
{
	int own = -1;
	if (netfd >= 0) {
		if ((own = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)) < 0)
			die("network", "open own netns: %m");
		if (setns(netfd, CLONE_NEWNET) < 0)
			die("network", "setns: %m");
	}
	pid_t pid = syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWPID | SIGCHLD, NULL, NULL, NULL, 0);
	if (pid != 0 && own >= 0) {
		int saved = errno;
		if (setns(own, CLONE_NEWNET) < 0)
			die("network", "return to own netns: %m");
		close(own);
		errno = saved;
	}
	return pid;
}

static void write_map(pid_t pid, const char *file, unsigned long host, unsigned long count)
{
	char path[64], map[64];
	snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
	snprintf(map, sizeof map, "0 %lu %lu\n", host, count);
	if (write_file(path, map) < 0)
		die("userns", "write %s \"%.*s\": %m", file, (int)strlen(map) - 1, map);
}

/* The writable layer is per container: its root directory becomes the container's `/`, so
 * it must belong to the container's root (else `/` shows as nobody and root cannot write
 * there). Only the directories themselves; what an upper already holds is the caller's. */
static void chown_dir(const char *what, const char *path, const struct spec *s)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fchown(fd, s->userns_uid, s->userns_gid) < 0)
		die("userns", "chown %s \"%s\": %m", what, path);
	close(fd);
}

/* A detached copy of `dir` whose owners are shifted by the container's mapping: host uid 0
 * is seen as HOSTUID (the container's 0), host 1000 as HOSTUID+1000. Only a detached mount
 * (open_tree(2) OPEN_TREE_CLONE) can be idmapped, and only once. */
static int idmapped_tree(const char *dir, int usernsfd, unsigned long attr)
{
	int tree = open_tree(AT_FDCWD, dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
	if (tree < 0)
		die("rootfs", "open_tree \"%s\": %m", dir);
	struct mount_attr a = { .attr_set = MOUNT_ATTR_IDMAP | attr, .userns_fd = usernsfd };
	if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0)
		die("rootfs", "idmap \"%s\": %m", dir);
	return tree;
}

/* fsconfig(2) failures leave the filesystem's own explanation on the context fd. */
__attribute__((noreturn)) static void overlay_fail(int fs, const char *what)
{
	int saved = errno;
	char log[512] = "";
	ssize_t n = read(fs, log, sizeof log - 1);
	if (n > 0) {
		log[n] = 0;
		log[strcspn(log, "\n")] = 0;
	}
	errno = saved;
	die("rootfs", "overlay %s: %m%s%s", what, n > 0 ? ": " : "", n > 0 ? log : "");
}

static int overlay_root(const struct spec *s, int usernsfd)
{
	int fs = fsopen("overlay", FSOPEN_CLOEXEC);
	if (fs < 0)
		die("rootfs", "fsopen overlay: %m");
	/* `lowerdir+` appends one layer, topmost first like lowerdir= (overlayfs docs); by fd,
	 * so the layer is the idmapped copy, not the path on the host. */
	int *trees = calloc(s->nlower, sizeof *trees);
	if (!trees)
		die("rootfs", "out of memory");
	for (size_t i = 0; i < s->nlower; i++) {
		trees[i] = idmapped_tree(s->lower[i], usernsfd, 0);
		if (fsconfig(fs, FSCONFIG_SET_FD, "lowerdir+", NULL, trees[i]) < 0)
			overlay_fail(fs, "lowerdir+");
	}
	/* The upper is not idmapped: what the container writes is stored under its own host
	 * ids (HOSTUID…), which is the point of the user namespace. */
	if (s->upper && (fsconfig(fs, FSCONFIG_SET_STRING, "upperdir", s->upper, 0) < 0 ||
			 fsconfig(fs, FSCONFIG_SET_STRING, "workdir", s->work, 0) < 0))
		overlay_fail(fs, "upper/work");
	/* The layers are cloned at create time; a detached tree whose last fd is closed is
	 * unmounted ("overlayfs: failed to clone lowerpath"), so they stay open until then. */
	if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		overlay_fail(fs, "create");
	for (size_t i = 0; i < s->nlower; i++)
		close(trees[i]);
	free(trees);
	/* nodev as the default path: no device cgroup, an image's device node must not open. */
	int mnt = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NODEV);
	if (mnt < 0)
		die("rootfs", "fsmount overlay: %m");
	close(fs);
	return mnt;
}

/* Launcher side, right after userns_clone: maps, writable layer, root mount. Returns the
 * detached root mount for userns_send. */
int userns_prepare(pid_t child, const struct spec *s)
{
	/* Written by host root (CAP_SETUID/CAP_SETGID in the parent namespace), so
	 * /proc/PID/setgroups stays "allow" and the app's supplementary groups still work
	 * (user_namespaces(7) "Interaction with system calls that change process UIDs or
	 * GIDs"). */
	write_map(child, "uid_map", s->userns_uid, s->userns_count);
	write_map(child, "gid_map", s->userns_gid, s->userns_count);

	char path[64];
	snprintf(path, sizeof path, "/proc/%d/ns/user", (int)child);
	int ns = open(path, O_RDONLY | O_CLOEXEC);
	if (ns < 0)
		die("userns", "open %s: %m", path);
	if (s->upper) {
		chown_dir("upper", s->upper, s);
		chown_dir("work", s->work, s);
	}

	int mnt;
	if (s->nlower > 1 || (s->nlower == 1 && s->upper))
		mnt = overlay_root(s, ns);
	else if (s->nlower == 1)
		mnt = idmapped_tree(s->lower[0], ns, MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY);
	else /* spec.c: a `rootfs` dir only with readonly 1 */
		mnt = idmapped_tree(s->rootfs, ns, MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY);
	close(ns);
	return mnt;
}

/* The "go" byte of the sync channel, carrying the root mount (unix(7) SCM_RIGHTS). */
int userns_send(int sock, int mnt)
{
	return send_fd(sock, mnt);
}

/* Child side: -1 at EOF (the launcher failed and reported). */
int userns_recv(int sock)
{
	int fd;
	ssize_t n = recv_fd(sock, &fd);
	if (n <= 0)
		return -1;
	if (fd < 0)
		die("userns", "no root mount from the launcher");
	return fd;
}

/* Child side, once every host path (the bundle, volume sources, /etc files) is open: they
 * sit under root-only host directories, which the child crossed as host uid 0 (the owner;
 * it has no capability over the host). From here on everything it creates belongs in the
 * container, so it becomes the container's root, host uid HOSTUID (setresuid(2) inside the
 * namespace; the capabilities stay, user_namespaces(7)). */
void userns_become_root(int kill_with_parent)
{
	if (setgroups(0, NULL) < 0)
		die("userns", "setgroups: %m");
	if (setresgid(0, 0, 0) < 0)
		die("userns", "setresgid 0: %m");
	if (setresuid(0, 0, 0) < 0)
		die("userns", "setresuid 0: %m");
	/* A uid change resets dumpable and the parent-death signal (prctl(2) PR_SET_DUMPABLE,
	 * PR_SET_PDEATHSIG): set both again, then make sure the launcher did not die in
	 * between (its end of our error pipe would be gone). */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		die("prctl", "dumpable: %m");
	if (kill_with_parent) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
			die("prctl", "pdeathsig: %m");
		struct pollfd p = { err_fd, POLLOUT, 0 };
		if (poll(&p, 1, 0) == 1 && (p.revents & POLLERR))
			_exit(EXIT_SETUP);
	}
}
