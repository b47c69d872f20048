/* Turns the current (root, fully privileged, already inside the container's root) process
 * into the app: cwd, capabilities, credentials, no_new_privs, fd hygiene, seccomp, execve.
 * Used by the container's first process and by `exec`. The order is runc's. */
#include "paas.h"

#include <errno.h>
#include <grp.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* SPEC.md: cwd is created if missing, owned by the process's uid/gid. We are already
 * inside the container's root, so `..` and symlinks resolve within it. */
static void make_cwd(const char *cwd, uid_t uid, gid_t gid)
{
	char path[4096];
	if (strlen(cwd) >= sizeof path)
		die("cwd", "\"%s\": path too long", cwd);
	strcpy(path, cwd);
	for (char *p = path + 1;; p++) {
		if (*p != '/' && *p)
			continue;
		char c = *p;
		*p = 0;
		if (mkdir(path, 0755) == 0) {
			if (chown(path, uid, gid) < 0)
				die("cwd", "chown \"%s\": %m", path);
		} else if (errno != EEXIST) {
			die("cwd", "mkdir \"%s\": %m", path);
		}
		*p = c;
		if (!c)
			break;
	}
}

static void reset_signals(void)
{
	sigset_t none;
	sigemptyset(&none);
	for (int i = 0; i < 6; i++)
		signal(FORWARDED_SIGNALS[i], SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static const char *env_path(char **env)
{
	for (char **e = env; *e; e++)
		if (!strncmp(*e, "PATH=", 5))
			return *e + 5;
	return DEFAULT_PATH;
}

/* execvpe(3) searches the caller's PATH; SPEC.md wants the container env's PATH. */
__attribute__((noreturn)) void exec_path(char **argv, char **env)
{
	const char *file = argv[0];
	char step[4200];
	snprintf(step, sizeof step, "exec \"%.4096s\"", file);

	if (!*file) {
		errno = ENOENT;
		fail(EXIT_NOTFOUND, step, "%m");
	}
	if (strchr(file, '/')) {
		execve(file, argv, env);
		fail(errno == ENOENT || errno == ENOTDIR ? EXIT_NOTFOUND : EXIT_NOEXEC, step, "%m");
	}
	const char *path = env_path(env);
	int denied = 0;
	char full[4096];
	for (const char *dir = path;; dir++) {
		size_t len = strcspn(dir, ":");
		if (len + strlen(file) + 2 <= sizeof full) {
			if (len == 0)
				snprintf(full, sizeof full, "%s", file); /* empty entry: the cwd */
			else
				snprintf(full, sizeof full, "%.*s/%s", (int)len, dir, file);
			execve(full, argv, env);
			if (errno == EACCES)
				denied = 1;
			else if (errno != ENOENT && errno != ENOTDIR)
				fail(EXIT_NOEXEC, step, "%m");
		}
		dir += len;
		if (!*dir)
			break;
	}
	errno = denied ? EACCES : ENOENT;
	fail(denied ? EXIT_NOEXEC : EXIT_NOTFOUND, step, "%m");
}

void exec_process(const struct proc *p)
{
	reset_signals();
	if (p->mkcwd)
		make_cwd(p->cwd, p->uid, p->gid);

	/* Bounding set first: shrinking it needs CAP_SETPCAP, which a non-root uid loses at
	 * setresuid below. */
	caps_drop_bounding(p->caps);

	/* Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, which is gone after the
	 * credential switch; the filter allows everything that follows. */
	if (p->seccomp == SECCOMP_DEFAULT && !p->nonewprivs)
		seccomp_apply();

	/* Groups before gid before uid: each step needs the privilege the next one drops.
	 * setgroups also clears root's supplementary groups, which would otherwise leak in. */
	if (setgroups(p->ngroups, p->groups) < 0)
		die("setgroups", "%m");
	if (setresgid(p->gid, p->gid, p->gid) < 0)
		die("setresgid", "%u: %m", (unsigned)p->gid);
	/* For uid != 0 the kernel clears permitted/effective here (capabilities(7)). */
	if (setresuid(p->uid, p->uid, p->uid) < 0)
		die("setresuid", "%u: %m", (unsigned)p->uid);
	caps_set(p->uid == 0 ? p->caps : 0);
	/* The credential change cleared the parent-death signal (prctl(2)): set it again,
	 * then make sure the parent did not die in between. It holds the read end of our
	 * error pipe, so its death shows as POLLERR on the write end. */
	if (p->pdeathsig) {
		if (prctl(PR_SET_PDEATHSIG, p->pdeathsig, 0, 0, 0) < 0)
			die("prctl", "pdeathsig: %m");
		struct pollfd pf = { err_fd, POLLOUT, 0 };
		if (poll(&pf, 1, 0) == 1 && (pf.revents & POLLERR))
			_exit(EXIT_SETUP);
	}

	/* chdir as the target user so its permissions apply, and after pivot_root/setns so
	 * the cwd is inside the container (CVE-2024-21626 leaked a host cwd). */
	if (chdir(p->cwd) < 0)
		die("cwd", "\"%s\": %m", p->cwd);

	/* setuid/file-capability binaries in the image cannot raise privileges. */
	if (p->nonewprivs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die("no_new_privs", "%m");

	/* CVE-2024-21626: no host fd (cgroup dirs, bundle, /proc) may survive into the app.
	 * Mark rather than close: the error pipe must stay usable until execve succeeds. */
	if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		die("close_range", "%m");

	if (p->seccomp == SECCOMP_DEFAULT && p->nonewprivs)
		seccomp_apply();
	exec_path(p->argv, p->env);
}
