/* `paas-shim init -- CMD…`: a bare PID 1 for containers someone else set up (the runc
 * backend bind-mounts this binary read-only into the container and runs it first). runc
 * makes the app PID 1 itself; a PID 1 that is not written to be an init ignores SIGTERM and
 * leaves orphans as zombies, so the contract (ARCHITECTURE.md: "PID 1 in the container is an
 * init that reaps zombies and forwards signals") would differ between backends. */
#include "paas.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

extern char **environ;

int cmd_init(char **argv)
{
	sigset_t set;
	init_block_signals(&set);
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
	init_wait(app, &set, -1);
}
