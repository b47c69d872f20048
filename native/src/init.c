/* PID 1 of the container (SPEC.md "Inside the container"): starts the app, forwards the
 * stop signals to it, reaps every orphan that lands on it, and exits with the app's
 * status. A process that is PID 1 gets only the signals it asked for, so without this
 * a `kill -TERM` would never reach an app that is not written to be an init. */
#include "paas.h"

#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>

const int FORWARDED_SIGNALS[6] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

static void noop(int sig) { (void)sig; }

static int exit_code(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void init_block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGCHLD);
	for (int i = 0; i < 6; i++) {
		sigaddset(set, FORWARDED_SIGNALS[i]);
		/* A handler, not SIG_DFL: the kernel drops default-action signals sent to a
		 * namespace's init (pid_namespaces(7)). Blocked, so sigwaitinfo collects them. */
		signal(FORWARDED_SIGNALS[i], noop);
	}
	if (sigprocmask(SIG_BLOCK, set, NULL) < 0)
		die("init", "sigprocmask: %m");
}

void init_wait(pid_t app, const sigset_t *set, int status_fd)
{
	for (;;) {
		siginfo_t info;
		int sig = sigwaitinfo(set, &info);
		if (sig < 0) {
			if (errno == EINTR)
				continue;
			die("init", "sigwaitinfo: %m");
		}
		if (sig != SIGCHLD) {
			kill(app, sig);
			continue;
		}
		int status;
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			if (pid != app)
				continue;
			/* The raw status tells the shim whether the app was killed by a signal; our
			 * own exit code cannot (init cannot die of the same signal). */
			if (status_fd >= 0)
				write_all(status_fd, &status, sizeof status);
			_exit(exit_code(status));
		}
	}
}

void container_init(const struct spec *s, int status_fd, int tty_sock)
{
	sigset_t set;
	init_block_signals(&set);

	struct proc p;
	proc_from_spec(s, &p);
	/* Created here, inside the container's root: the terminal belongs to its devpts. */
	int tty = tty_sock >= 0 ? tty_create(s, tty_sock) : -1;
	pid_t app = fork();
	if (app < 0)
		die("init", "fork: %m");
	if (app == 0) {
		close(status_fd);
		if (tty >= 0)
			tty_attach(tty);
		exec_process(&p);
	}
	if (tty >= 0)
		close(tty);

	/* From here the init only waits. Our copy of the error pipe must go so the launcher
	 * sees EOF when the app execs; further failures go to the container's stderr. */
	close(err_fd);
	err_fd = 2;
	/* The init lives as long as the container, as host root inside it: keep only
	 * CAP_KILL (to signal an app running as another uid) and forbid regaining more. */
	caps_drop_bounding(1ULL << CAP_KILL);
	caps_set(1ULL << CAP_KILL);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die("init", "no_new_privs: %m");
	init_wait(app, &set, status_fd);
}
