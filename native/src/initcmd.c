/* `paas-shim init -- CMD…`: a bare PID 1 for containers someone else set up (the runc
 * backend bind-mounts this binary read-only into the container and runs it first). runc
 * makes the app PID 1 itself; a PID 1 that is not written to be an init ignores SIGTERM and
 * leaves orphans as zombies, so the contract (ARCHITECTURE.md: "PID 1 in the container is an
 * init that reaps zombies and forwards signals") would differ between backends. */
#include "paas.h"

#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void noop(int sig) { (void)sig; }

int cmd_init(char **argv)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	for (int i = 0; i < 6; i++) {
		sigaddset(&set, FORWARDED_SIGNALS[i]);
		/* pid_namespaces(7): default-action signals to a namespace's init are dropped. */
		signal(FORWARDED_SIGNALS[i], noop);
	}
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		die("init", "sigprocmask: %m");
	/* CVE-2019-5736: this process is a host binary; a non-dumpable process's /proc/PID/exe
	 * cannot be opened by the container's other processes (they lack CAP_SYS_PTRACE). */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		die("init", "prctl(PR_SET_DUMPABLE): %m");

	pid_t app = fork();
	if (app < 0)
		die("init", "fork: %m");
	if (app == 0) {
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		for (int i = 0; i < 6; i++)
			signal(FORWARDED_SIGNALS[i], SIG_DFL);
		exec_path(argv, environ);
	}
	for (;;) {
		siginfo_t info;
		int sig = sigwaitinfo(&set, &info);
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
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			if (pid == app)
				_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	}
}
