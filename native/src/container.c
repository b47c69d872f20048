/* Creates a container: the namespaces, the cgroup join, the filesystem, then hands over
 * to the init (init.c). Runs in the launcher (`run`) or in the detached shim (`start`). */
#include "paas.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* `net none`: a fresh netns has only `lo`, and it is down (netdevice(7) SIOCSIFFLAGS). */
static void loopback_up(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		die("network", "socket: %m");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		die("network", "lo flags: %m");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		die("network", "lo up: %m");
	close(s);
}

/* The child, from fork to the init. Errors go to the error pipe; exiting tears the
 * half-built mount namespace down with it. With a user namespace it was born in it (and in
 * its pid namespace, userns.c) and is host uid 0 without any capability over the host. */
__attribute__((noreturn)) static void child(const struct launch *l, int sync_rd, int err_wr,
					    int netfd)
{
	const struct spec *s = l->spec;
	err_fd = err_wr;
	err_coded = 0;
	on_fail = NULL;

	/* Before anything of the container can run: no ptrace attach, no /proc/1/exe for
	 * container processes (CVE-2019-5736); inherited by the app until its execve. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		die("prctl", "dumpable: %m");
	if (l->kill_with_parent && prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		die("prctl", "pdeathsig: %m");
	for (int i = 0; i < 3; i++)
		if (l->stdio[i] != i && dup2(l->stdio[i], i) < 0)
			die("stdio", "%m");
	/* The init never execs, so O_CLOEXEC does not protect it: drop every fd of the
	 * launcher (log, report pipe, other containers' pipes) it does not need. */
	int keep[] = { sync_rd, err_wr, netfd, l->status_fd, l->tty_sock };
	if (close_except(keep, 5) < 0)
		die("close_range", "%m");

	/* In a user namespace these namespaces belong to it: the container's root may then
	 * mount /proc, /dev and (with `net none`) sysfs in them, and nothing of the host's. */
	int flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC;
	if (s->net == NET_NONE)
		flags |= CLONE_NEWNET;
	if (unshare(flags) < 0)
		die("unshare", "%m");
	if (netfd >= 0 && setns(netfd, CLONE_NEWNET) < 0)
		die("network", "setns \"%s\": %m", s->netns);

	/* Wait until the launcher has put us in the cgroups: nothing of the container may run
	 * outside its limits. EOF means the launcher failed and already reported. With a user
	 * namespace the same message carries the root mount, and the id maps are written. */
	int rootmnt = -1;
	char go;
	if (s->userns ? (rootmnt = userns_recv(sync_rd)) < 0 : read(sync_rd, &go, 1) != 1)
		_exit(EXIT_SETUP);
	close(sync_rd);

	/* Taken now, the cgroup namespace is rooted at the container's own cgroups:
	 * /proc/self/cgroup shows "/", the host's hierarchy stays hidden. */
	if (unshare(CLONE_NEWCGROUP) < 0)
		die("unshare", "cgroup: %m");
	if (s->net == NET_NONE)
		loopback_up();

	umask(0);
	rootfs_host(l->bundle, s, rootmnt);
	if (s->userns)
		userns_become_root(l->kill_with_parent);
	rootfs_inside(s);
	const char *host = s->hostname ? s->hostname : s->id;
	if (sethostname(host, strlen(host)) < 0)
		die("sethostname", "%m");
	umask(022);
	container_init(s, l->status_fd, l->tty_sock);
}

static pid_t pending_child = -1;
static void (*outer_on_fail)(const char *);

static void kill_pending(const char *msg)
{
	if (pending_child > 0) {
		kill(pending_child, SIGKILL);
		waitpid(pending_child, NULL, 0);
		pending_child = -1;
	}
	if (outer_on_fail)
		outer_on_fail(msg);
}

pid_t container_create(const struct launch *l, int *errpipe_rd)
{
	const struct spec *s = l->spec;
	int sync[2], err[2], netfd = -1;

	if (s->net == NET_PATH && (netfd = open(s->netns, O_RDONLY | O_CLOEXEC)) < 0)
		die("network", "open \"%s\": %m", s->netns);
	/* With a user namespace the sync channel also carries the root mount (an fd). */
	if ((s->userns ? socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sync)
		       : pipe2(sync, O_CLOEXEC)) < 0 ||
	    pipe2(err, O_CLOEXEC) < 0)
		die("pipe", "%m");

	pid_t pid;
	if (s->userns) {
		/* Born in the new user and pid namespaces; a `net` path is joined by the
		 * launcher for it (userns.c), so the child has nothing to setns. */
		pid = userns_clone(netfd);
		if (pid == 0 && netfd >= 0) {
			close(netfd);
			netfd = -1;
		}
	} else {
		/* The first child forked after this is PID 1 of the new pid namespace; fork (not
		 * a raw clone) keeps glibc's idea of our tid right. The launcher stays outside. */
		if (unshare(CLONE_NEWPID) < 0)
			die("unshare", "pid: %m");
		pid = fork();
	}
	if (pid < 0)
		die(s->userns ? "clone" : "fork", "%m");
	if (pid == 0) {
		close(sync[1]);
		close(err[0]);
		child(l, sync[0], err[1], netfd);
	}
	close(sync[0]);
	close(err[1]);
	if (netfd >= 0)
		close(netfd);
	pending_child = pid;
	outer_on_fail = on_fail;
	on_fail = kill_pending;

	int rootmnt = s->userns ? userns_prepare(pid, s) : -1;
	char pidstr[16];
	snprintf(pidstr, sizeof pidstr, "%d", (int)pid);
	for (size_t i = 0; i < s->ncgroups; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/cgroup.procs", s->cgroups[i]);
		if (write_file(path, pidstr) < 0)
			die("cgroup", "join \"%s\": %m", s->cgroups[i]);
	}
	if (s->userns ? userns_send(sync[1], rootmnt) < 0 : write(sync[1], "1", 1) != 1)
		die("sync", "%m");
	if (rootmnt >= 0)
		close(rootmnt);
	close(sync[1]);

	on_fail = outer_on_fail;
	pending_child = -1;
	*errpipe_rd = err[0];
	return pid;
}

/* Reads the error pipe to EOF: it closes on the app's successful execve (O_CLOEXEC) or
 * when the setup fails. Returns 0 when the app runs, else the exit code with the
 * "<step>: <message>" line in msg and the child reaped. */
int wait_started(int errpipe_rd, pid_t child, char *msg, size_t size)
{
	size_t n = 0;
	for (;;) {
		ssize_t r = read(errpipe_rd, msg + n, size - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || (n += r) == size - 1)
			break;
	}
	msg[n] = 0;
	close(errpipe_rd);
	if (n == 0)
		return 0;
	int st, code = EXIT_SETUP;
	while (waitpid(child, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st))
		code = WEXITSTATUS(st);
	return code;
}
