/* `exec BUNDLE EXECSPEC` (SPEC.md "Commands"): one more process inside a running
 * container, with the container's namespaces, cgroups, capabilities, seccomp filter and
 * no_new_privs. */
#include "paas.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* setns(2) order: the cgroup ns after the cgroup join (so it is rooted there), pid late
 * but before mnt (joining mnt replaces our root and cwd, /proc paths would stop
 * resolving), user last: each setns before it needs CAP_SYS_ADMIN over the host's user
 * namespace (a `net` path belongs to it), which joining the container's gives up. */
static const struct { const char *name; int type; } NAMESPACES[] = {
	{ "cgroup", CLONE_NEWCGROUP }, { "ipc", CLONE_NEWIPC }, { "uts", CLONE_NEWUTS },
	{ "net", CLONE_NEWNET },       { "pid", CLONE_NEWPID }, { "mnt", CLONE_NEWNS },
	{ "user", CLONE_NEWUSER },
};
/* Without `userns` the container shares ours: the user entry is not even opened. */
#define NNS(s) (sizeof NAMESPACES / sizeof *NAMESPACES - !(s)->userns)

/* A dead init whose shim is gone too stays a zombie until the system reaps it. */
static int zombie(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (read_file(path, buf, sizeof buf) <= 0)
		return 1;
	char *p = strrchr(buf, ')');
	return !p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X';
}

/* initPid from `state`, checked against /proc so a recycled pid is never joined. */
static pid_t running_init(const char *bundle)
{
	char path[4200], buf[512], now[32], want[32];
	snprintf(path, sizeof path, "%s/state", bundle);
	if (read_file(path, buf, sizeof buf) < 0)
		die("exec", "state \"%s\": %m", path);
	char *p = strstr(buf, "\"initPid\":"), *q = strstr(buf, "\"initStart\":\"");
	if (!p || !q)
		die("exec", "state \"%s\": no initPid/initStart", path);
	pid_t pid = strtol(p + 10, NULL, 10);
	q += 13;
	size_t n = strcspn(q, "\"");
	if (pid <= 0 || n == 0 || n >= sizeof want)
		die("exec", "state \"%s\": bad initPid/initStart", path);
	memcpy(want, q, n);
	want[n] = 0;
	if (proc_start_time(pid, now, sizeof now) < 0 || strcmp(now, want) || zombie(pid))
		die("exec", "container is not running (init %d is gone)", (int)pid);
	return pid;
}

int cmd_exec(const char *bundle, const char *execspec)
{
	struct spec cs, es;
	char path[4200], msg[1100];
	snprintf(path, sizeof path, "%s/spec", bundle);
	spec_parse(path, &cs, 0);
	spec_parse(execspec, &es, 1);
	pid_t init = running_init(bundle);

	/* Not dumpable before entering: from inside, this process (host root, our binary)
	 * must not be ptrace-able nor its /proc/PID/exe openable (CVE-2019-5736). */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		die("prctl", "dumpable: %m");
	spec_check_mapped(&cs, &es);
	int fds[sizeof NAMESPACES / sizeof *NAMESPACES];
	for (size_t i = 0; i < NNS(&cs); i++) {
		struct stat theirs, ours;
		char self[64];
		snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)init, NAMESPACES[i].name);
		snprintf(self, sizeof self, "/proc/self/ns/%s", NAMESPACES[i].name);
		fds[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (fds[i] < 0 || fstat(fds[i], &theirs) < 0)
			die("exec", "open %s: %m", path);
		/* `net host` shares ours: setns to the same ns is pointless */
		if (stat(self, &ours) == 0 && ours.st_ino == theirs.st_ino &&
		    ours.st_dev == theirs.st_dev) {
			close(fds[i]);
			fds[i] = -1;
		}
	}
	if (init != running_init(bundle))
		die("exec", "container changed while joining");

	/* Move ourselves into the container's cgroups, so the child starts inside its limits
	 * from its first instruction. */
	char me[16];
	snprintf(me, sizeof me, "%d", (int)getpid());
	for (size_t i = 0; i < cs.ncgroups; i++) {
		snprintf(path, sizeof path, "%s/cgroup.procs", cs.cgroups[i]);
		if (write_file(path, me) < 0)
			die("cgroup", "join \"%s\": %m", cs.cgroups[i]);
	}
	for (size_t i = 0; i < NNS(&cs); i++) {
		if (fds[i] < 0)
			continue;
		if (setns(fds[i], NAMESPACES[i].type) < 0)
			die("setns", "%s: %m", NAMESPACES[i].name);
		close(fds[i]);
	}
	/* In the container's user namespace we are still host uid 0, which it does not map:
	 * become its root (host HOSTUID) before creating anything (the cwd) in it. */
	if (cs.userns)
		userns_become_root(0);

	sigset_t set;
	block_signals(&set);

	int ep[2];
	if (pipe2(ep, O_CLOEXEC) < 0)
		die("pipe", "%m");
	/* setns(CLONE_NEWPID) applies to children only: the process must be forked. */
	pid_t child = fork();
	if (child < 0)
		die("fork", "%m");
	if (child == 0) {
		close(ep[0]);
		err_fd = ep[1];
		/* foreground, like `run`: the process dies with this helper */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
			die("prctl", "pdeathsig: %m");
		struct proc p;
		proc_from_spec(&cs, &p);
		p.pdeathsig = SIGKILL;
		p.argv = es.argv;
		p.env = es.env ? es.env : (char *[]){ 0 };
		p.cwd = es.cwd ? es.cwd : "/";
		p.uid = es.uid;
		p.gid = es.gid;
		p.groups = es.groups;
		p.ngroups = es.ngroups;
		exec_process(&p);
	}
	close(ep[1]);
	int code = wait_started(ep[0], child, msg, sizeof msg);
	if (code) {
		write_all(2, msg, strlen(msg));
		return code;
	}
	int st = forward_until_exit(child, &set);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
