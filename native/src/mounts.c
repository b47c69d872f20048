/* The container's filesystem, built inside its fresh mount namespace, in runc's order:
 * private propagation, root, /proc, /dev, /sys, volumes, /etc files, masked and read-only
 * paths, pivot_root. Every target under the root is resolved with openat2(2)
 * RESOLVE_IN_ROOT and mounted through its fd, so a symlink planted in an image (`/proc ->
 * /`, `data -> ../../..`) can never redirect a mount onto the host (the class of
 * CVE-2021-30465 and CVE-2023-27561). */
#include "paas.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Docker's defaults (moby oci/defaults.go). Masked: information about the host, or knobs
 * that reach it, hidden behind /dev/null (files) or an empty read-only tmpfs (dirs). */
static const char *const MASKED[] = {
	"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
	"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
	"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap", 0,
};
/* Read-only: sysctls and the sysrq trigger are host-wide, not per namespace. */
static const char *const READONLY[] = {
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", 0,
};

static const struct { const char *name; unsigned maj, min; } DEVICES[] = {
	{ "null", 1, 3 }, { "zero", 1, 5 }, { "full", 1, 7 }, { "random", 1, 8 },
	{ "urandom", 1, 9 }, { "tty", 5, 0 },
};

static const struct { const char *name, *target; } DEV_LINKS[] = {
	{ "fd", "/proc/self/fd" }, { "stdin", "/proc/self/fd/0" },
	{ "stdout", "/proc/self/fd/1" }, { "stderr", "/proc/self/fd/2" },
	{ "ptmx", "pts/ptmx" }, { "core", "/proc/kcore" },
};

static int rootfd = -1;
static int in_userns;
/* Sources on the host, opened before anything is mounted inside (rootfs_host): with a user
 * namespace the child can reach them only before it becomes the container's root. */
static int *volume_tree, hosts_tree = -1, resolv_tree = -1;
static struct stat *volume_stat;

static int openat2_in_root(const char *path, int flags)
{
	struct open_how how = {
		.flags = flags | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	return syscall(SYS_openat2, rootfd, path, &how, sizeof how);
}

static int resolve_depth(const char *path, int create, int file, int depth);

/* parent/name exists but does not open as a directory: when it is a
 * symlink whose target is missing, create the target (inside the root: RESOLVE_IN_ROOT
 * clamps `..` and absolute targets) as runc's MkdirAllInRoot does, so an image's
 * `/var/run -> /run` works for a volume at /var/run/x. */
static int follow_dangling(const char *parent, const char *name, int depth)
{
	char target[4096], joined[8192];
	int dir = openat2_in_root(*parent ? parent : "/", O_PATH | O_DIRECTORY);
	if (dir < 0)
		return -1;
	ssize_t n = readlinkat(dir, name, target, sizeof target - 1);
	int saved = errno;
	close(dir);
	if (n < 0) {
		errno = saved == EINVAL ? ENOTDIR : saved; /* not a symlink: a file */
		return -1;
	}
	target[n] = 0;
	snprintf(joined, sizeof joined, "%s/%s", target[0] == '/' ? "" : parent, target);
	int fd = resolve_depth(joined, 1, 0, depth + 1);
	if (fd >= 0)
		close(fd);
	return fd < 0 ? -1 : 0;
}

/* Returns an O_PATH fd of `path` inside the root, creating what is missing (directories,
 * or an empty file as the last component when `file`). -1 with errno when it cannot. */
static int resolve_depth(const char *path, int create, int file, int depth)
{
	if (depth > 40) {
		errno = ELOOP;
		return -1;
	}
	int fd = openat2_in_root(path, O_PATH);
	if (fd >= 0 || errno != ENOENT || !create)
		return fd;

	char buf[4096], *p;
	if (strlen(path) >= sizeof buf) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(buf, path);
	for (p = buf; *p == '/'; p++)
		;
	while (*p) {
		char *end = p + strcspn(p, "/");
		char saved = *end;
		int last = !saved || !end[strspn(end, "/")];
		*end = 0;
		char c = *p;
		*p = 0;
		char parent[4096];
		snprintf(parent, sizeof parent, "%s", buf);
		*p = c;
		int pfd = openat2_in_root(*parent ? parent : "/", O_PATH | O_DIRECTORY);
		if (pfd < 0)
			return -1;
		int r;
		if (last && file) {
			r = openat(pfd, p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
			if (r >= 0)
				close(r);
		} else {
			r = mkdirat(pfd, p, 0755);
		}
		int err = errno;
		close(pfd);
		if (r < 0 && err != EEXIST) {
			errno = err;
			return -1;
		}
		if (r < 0 && !(last && file)) {
			int d = openat2_in_root(buf, O_PATH | O_DIRECTORY);
			if (d >= 0)
				close(d);
			else if (errno != ENOENT || follow_dangling(parent, p, depth) < 0)
				return -1;
		}
		*end = saved;
		p = end + strspn(end, "/");
	}
	return openat2_in_root(path, O_PATH);
}

static int resolve(const char *path, int create, int file)
{
	return resolve_depth(path, create, file, 0);
}

static int resolve_or_die(const char *what, const char *path, int create, int file)
{
	int fd = resolve(path, create, file);
	if (fd < 0)
		die(what, "\"%s\" in the root: %m", path);
	return fd;
}

static const char *fdpath(int fd, char *buf)
{
	sprintf(buf, "/proc/self/fd/%d", fd);
	return buf;
}

static void mount_fs(const char *what, const char *path, const char *type,
		     unsigned long flags, const char *data)
{
	char p[32];
	int fd = resolve_or_die(what, path, 1, 0);
	if (mount(type, fdpath(fd, p), type, flags, data) < 0)
		die(what, "mount %s on \"%s\": %m", type, path);
	close(fd);
}

/* A detached recursive copy of `src` (a host path, or the fd `srcfd` when src is NULL). */
static int clone_tree(const char *src, int srcfd)
{
	return open_tree(src ? AT_FDCWD : srcfd, src ? src : "",
			 OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | (src ? 0 : AT_EMPTY_PATH));
}

/* Attaches the detached `tree` onto the O_PATH fd `dst` with the given MOUNT_ATTR_* set
 * recursively: mount_setattr + move_mount apply the attributes to the detached copy before
 * it becomes visible, with no remount window. Closes tree. */
static int attach_tree(int tree, int dst, unsigned attr)
{
	if (tree < 0)
		return -1;
	struct mount_attr a = { .attr_set = attr };
	int r = attr ? mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) : 0;
	if (r == 0)
		r = move_mount(tree, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
	int saved = errno;
	close(tree);
	errno = saved;
	return r;
}

/* Bind `src` (a host path, or an fd when src is NULL) onto the O_PATH fd `dst`. */
static int bind_fd(const char *src, int srcfd, int dst, unsigned attr)
{
	return attach_tree(clone_tree(src, srcfd), dst, attr);
}

static void mount_overlay(const struct spec *s, const char *target)
{
	/* nodev: there is no device cgroup, so a device node shipped in an image layer must
	 * not open a host device. The container's /dev is a separate tmpfs. */
	char data[4096];
	size_t n = snprintf(data, sizeof data, "lowerdir=");
	for (size_t i = 0; i < s->nlower; i++) {
		if (strpbrk(s->lower[i], ":,\\"))
			die("rootfs", "lower \"%s\": ':', ',' and '\\' are not supported",
			    s->lower[i]);
		n += snprintf(data + n, n < sizeof data ? sizeof data - n : 0, "%s%s",
			      i ? ":" : "", s->lower[i]);
	}
	if (s->upper) {
		if (strpbrk(s->upper, ":,\\") || strpbrk(s->work, ":,\\"))
			die("rootfs", "upper/work: ':', ',' and '\\' are not supported");
		n += snprintf(data + n, n < sizeof data ? sizeof data - n : 0,
			      ",upperdir=%s,workdir=%s", s->upper, s->work);
	}
	if (n >= sizeof data)
		die("rootfs", "overlay options longer than a page (%zu layers)", s->nlower);
	if (mount("overlay", target, "overlay", MS_NODEV, data) < 0)
		die("rootfs", "mount overlay on \"%s\": %m", target);
}

static void mount_bind_root(const struct spec *s, const char *target)
{
	const char *src = s->nlower ? s->lower[0] : s->rootfs;
	if (mount(src, target, NULL, MS_BIND | MS_REC, NULL) < 0)
		die("rootfs", "bind \"%s\" on \"%s\": %m", src, target);
	if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_NODEV |
				(s->nlower ? MS_RDONLY : 0), NULL) < 0)
		die("rootfs", "remount \"%s\": %m", target);
}

static void mount_root(const char *bundle, const struct spec *s, int rootmnt)
{
	char target[4096];
	if (snprintf(target, sizeof target, "%s/rootfs", bundle) >= (int)sizeof target)
		die("rootfs", "bundle path too long");
	/* With a user namespace the launcher built the root (userns.c), idmapped and nodev. */
	if (rootmnt >= 0) {
		if (move_mount(rootmnt, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
			die("rootfs", "attach on \"%s\": %m", target);
		close(rootmnt);
	} else if (s->nlower > 1 || (s->nlower == 1 && s->upper)) {
		mount_overlay(s, target);
	} else {
		mount_bind_root(s, target);
	}
	rootfd = open(target, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		die("rootfs", "open \"%s\": %m", target);
}

static void make_dev(void)
{
	mount_fs("mount /dev", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME,
		 "mode=755,size=65536k");
	int dev = openat2_in_root("/dev", O_PATH | O_DIRECTORY);
	if (dev < 0)
		die("mount /dev", "open: %m");

	for (size_t i = 0; i < sizeof DEVICES / sizeof *DEVICES; i++) {
		const char *name = DEVICES[i].name;
		if (mknodat(dev, name, S_IFCHR | 0666, makedev(DEVICES[i].maj, DEVICES[i].min)) == 0)
			continue;
		/* In a user namespace mknod is refused: bind the host's node instead. */
		if (errno != EPERM || !in_userns)
			die("mount /dev", "mknod %s: %m", name);
		char host[32];
		snprintf(host, sizeof host, "/dev/%s", name);
		int f = openat(dev, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (f >= 0)
			close(f);
		int dst = f < 0 ? -1 : openat(dev, name, O_PATH | O_CLOEXEC);
		if (dst < 0 || bind_fd(host, -1, dst, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC) < 0)
			die("mount /dev", "bind %s: %m", host);
		close(dst);
	}
	for (size_t i = 0; i < sizeof DEV_LINKS / sizeof *DEV_LINKS; i++)
		if (symlinkat(DEV_LINKS[i].target, dev, DEV_LINKS[i].name) < 0)
			die("mount /dev", "symlink %s: %m", DEV_LINKS[i].name);
	close(dev);

	/* newinstance: the container's ptys are its own, not the host's (devpts(5)). */
	mount_fs("mount /dev/pts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		 "newinstance,ptmxmode=0666,mode=0620,gid=5");
	mount_fs("mount /dev/shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		 "mode=1777,size=65536k");
	mount_fs("mount /dev/mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		 NULL);
}

static void make_sys(const struct spec *s)
{
	const unsigned long flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
	char p[32];
	int fd = resolve_or_die("mount /sys", "/sys", 1, 0);
	/* A fresh sysfs shows the network devices of the mounter's netns, and needs that
	 * netns to belong to our user namespace; otherwise bind the host's read-only. */
	if (mount("sysfs", fdpath(fd, p), "sysfs", flags, NULL) < 0) {
		if (errno != EPERM || s->net == NET_NONE)
			die("mount /sys", "sysfs: %m");
		if (bind_fd("/sys", -1, fd, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
						     MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC) < 0)
			die("mount /sys", "bind: %m");
	}
	close(fd);
}

static void open_sources(const struct spec *s)
{
	volume_tree = calloc(s->nvolumes + 1, sizeof *volume_tree);
	volume_stat = calloc(s->nvolumes + 1, sizeof *volume_stat);
	if (!volume_tree || !volume_stat)
		die("mount", "out of memory");
	for (size_t i = 0; i < s->nvolumes; i++) {
		const struct volume *v = &s->volumes[i];
		if (stat(v->src, &volume_stat[i]) < 0)
			die("mount", "source \"%s\": %m", v->src);
		if ((volume_tree[i] = clone_tree(v->src, -1)) < 0)
			die("mount", "\"%s\" on \"%s\": %m", v->src, v->dst);
	}
	if (s->hosts && (hosts_tree = clone_tree(s->hosts, -1)) < 0)
		die("mount /etc/hosts", "\"%s\" on \"/etc/hosts\": %m", s->hosts);
	if (s->resolv && (resolv_tree = clone_tree(s->resolv, -1)) < 0)
		die("mount /etc/resolv.conf", "\"%s\" on \"/etc/resolv.conf\": %m", s->resolv);
}

/* Volumes are plain binds, also in a user namespace: an idmapped volume would store what
 * the container's root writes as host uid 0 (SECURITY.md). */
static void mount_volumes(const struct spec *s)
{
	for (size_t i = 0; i < s->nvolumes; i++) {
		const struct volume *v = &s->volumes[i];
		int dst = resolve_or_die("mount", v->dst, 1, !S_ISDIR(volume_stat[i].st_mode));
		unsigned attr = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (v->ro ? MOUNT_ATTR_RDONLY : 0);
		if (attach_tree(volume_tree[i], dst, attr) < 0)
			die("mount", "\"%s\" on \"%s\": %m", v->src, v->dst);
		close(dst);
	}
}

static void bind_file_ro(const char *what, const char *src, int tree, const char *dst)
{
	if (!src)
		return;
	int fd = resolve_or_die(what, dst, 1, 1);
	if (attach_tree(tree, fd, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
					  MOUNT_ATTR_NOEXEC) < 0)
		die(what, "\"%s\" on \"%s\": %m", src, dst);
	close(fd);
}

static void mask_paths(void)
{
	char p[32];
	for (const char *const *m = MASKED; *m; m++) {
		int fd = resolve(*m, 0, 0);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			die("masked paths", "\"%s\": %m", *m);
		}
		struct stat st;
		if (fstat(fd, &st) < 0)
			die("masked paths", "stat \"%s\": %m", *m);
		int r = S_ISDIR(st.st_mode)
			? mount("tmpfs", fdpath(fd, p), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV |
				MS_NOEXEC, "size=0,mode=555")
			: bind_fd("/dev/null", -1, fd, 0);
		if (r < 0)
			die("masked paths", "\"%s\": %m", *m);
		close(fd);
	}
	for (const char *const *m = READONLY; *m; m++) {
		int fd = resolve(*m, 0, 0);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			die("readonly paths", "\"%s\": %m", *m);
		}
		if (bind_fd(NULL, fd, fd, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
						  MOUNT_ATTR_NOEXEC) < 0)
			die("readonly paths", "\"%s\": %m", *m);
		close(fd);
	}
}

/* pivot_root(".", ".") stacks the old root under the new one; detaching it leaves the
 * host's tree unreachable (pivot_root(2) NOTES, as runc does). */
static void pivot(void)
{
	if (fchdir(rootfd) < 0)
		die("pivot_root", "chdir: %m");
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		die("pivot_root", "%m");
	if (umount2(".", MNT_DETACH) < 0)
		die("pivot_root", "detach old root: %m");
	if (chdir("/") < 0)
		die("pivot_root", "chdir /: %m");
	close(rootfd);
	rootfd = -1;
}

void rootfs_host(const char *bundle, const struct spec *s, int rootmnt)
{
	in_userns = s->userns;
	/* Nothing we mount may propagate back to the host's namespace (and a host mount
	 * event must not reach in): this is what keeps the rootfs mount out of the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		die("mount propagation", "%m");
	mount_root(bundle, s, rootmnt);
	open_sources(s);
}

void rootfs_inside(const struct spec *s)
{
	mount_fs("mount /proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	make_dev();
	make_sys(s);
	mount_volumes(s);
	bind_file_ro("mount /etc/hosts", s->hosts, hosts_tree, "/etc/hosts");
	bind_file_ro("mount /etc/resolv.conf", s->resolv, resolv_tree, "/etc/resolv.conf");
	mask_paths();
	pivot();
	if (s->readonly) {
		struct mount_attr a = { .attr_set = MOUNT_ATTR_RDONLY };
		if (mount_setattr(AT_FDCWD, "/", 0, &a, sizeof a) < 0)
			die("readonly", "remount /: %m");
	}
}
