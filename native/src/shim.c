/* `run`, `start` and `supervise` (SPEC.md "Commands"). `start` and `supervise` detach a
 * shim that outlives its caller (even `kill -9`), owns the log, and writes `state` and
 * `exit`; `run` stays in the foreground. */
#include "paas.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define REPORT_FD 3

static char bundle_path[4096];

static void spec_of(const char *bundle, struct spec *s)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/spec", bundle);
	spec_parse(path, s, 0);
}

void block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGCHLD);
	for (int i = 0; i < 6; i++)
		sigaddset(set, FORWARDED_SIGNALS[i]);
	if (sigprocmask(SIG_BLOCK, set, NULL) < 0)
		die("signals", "%m");
}

/* Waits for `child`, forwarding the stop signals to it; returns its wait status. */
int forward_until_exit(pid_t child, const sigset_t *set)
{
	for (;;) {
		int sig = sigwaitinfo(set, NULL);
		if (sig < 0) {
			if (errno == EINTR)
				continue;
			die("wait", "%m");
		}
		if (sig != SIGCHLD) {
			kill(child, sig);
			continue;
		}
		int st;
		pid_t r = waitpid(child, &st, WNOHANG);
		if (r == child)
			return st;
	}
}

static int exit_code_of(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int cmd_run(const char *bundle)
{
	struct spec s;
	sigset_t set;
	char msg[1100];
	int ctl = tty_control_fd();
	spec_of(bundle, &s);
	block_signals(&set);

	/* the foreground container dies with its launcher: nobody else would wait for it */
	struct launch l = { bundle, &s, { 0, 1, 2 }, -1, 1, -1 };
	int tty[2] = { -1, -1 };
	if (s.tty_rows && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, tty) < 0)
		die("tty", "socketpair: %m");
	l.tty_sock = tty[1];
	int errrd;
	pid_t init = container_create(&l, &errrd);
	if (tty[1] >= 0)
		close(tty[1]);
	int code = wait_started(errrd, init, msg, sizeof msg);
	if (code) {
		write_all(2, msg, strlen(msg));
		return code;
	}
	if (tty[0] < 0)
		return exit_code_of(forward_until_exit(init, &set));
	/* Sent before the app was forked, so it is here once the app runs. */
	int master;
	if (recv_fd(tty[0], &master) != 1 || master < 0) {
		kill(init, SIGKILL);
		die("tty", "no terminal from the container");
	}
	close(tty[0]);
	return tty_relay(init, master, ctl, &set);
}

/* ---- the detached shim ---- */

static void report_failure(const char *msg)
{
	/* SPEC.md: when setup fails after detaching, `error` holds the line too, for a
	 * caller that was killed before it could read the report. */
	char line[1100];
	snprintf(line, sizeof line, "%s", msg);
	write_atomic(bundle_path, "error", line);
}

/* Forks twice with a setsid between: the shim is nobody's child but the system's
 * subreaper, has no controlling terminal, and survives its caller. The caller gets one
 * report over a pipe: a code byte, then the state JSON or the error line. Returns in the
 * shim; the caller's process exits from here. */
static void detach(void)
{
	int rep[2];
	if (pipe2(rep, O_CLOEXEC) < 0)
		die("pipe", "%m");
	pid_t first = fork();
	if (first < 0)
		die("fork", "%m");
	if (first > 0) {
		close(rep[1]);
		int st;
		while (waitpid(first, &st, 0) < 0 && errno == EINTR)
			;
		char buf[4200];
		ssize_t n = read_fd(rep[0], buf, sizeof buf);
		if (n <= 0) {
			fprintf(stderr, "start: the shim died before reporting\n");
			_exit(EXIT_SETUP);
		}
		int code = (unsigned char)buf[0];
		if (code == 0) {
			fputs(buf + 1, stdout);
			fputc('\n', stdout);
			fflush(stdout);
		} else {
			fputs(buf + 1, stderr);
		}
		_exit(code);
	}
	close(rep[0]);
	/* A caller killed before reading the report must not take the shim with it (EPIPE
	 * instead of SIGPIPE); the app gets SIGPIPE back in process.c. */
	signal(SIGPIPE, SIG_IGN);
	if (setsid() < 0)
		die("setsid", "%m");
	pid_t second = fork();
	if (second < 0)
		die("fork", "%m");
	if (second > 0)
		_exit(0);

	/* The shim keeps nothing of its caller: not its stdio (a caller reading our stdout to
	 * EOF would hang for the container's lifetime), not any other fd. */
	if (dup3(rep[1], REPORT_FD, O_CLOEXEC) < 0)
		die("report", "%m");
	if (null_stdio() < 0 || syscall(SYS_close_range, REPORT_FD + 1, ~0U, 0) < 0)
		die("detach", "%m");
	if (chdir("/") < 0)
		die("detach", "chdir: %m");
	err_fd = REPORT_FD;
	err_coded = 1;
	on_fail = report_failure;
}

static void write_state(pid_t pid)
{
	char start[32], json[128], report[130];
	if (proc_start_time(pid, start, sizeof start) < 0)
		die("state", "start time of %d: %m", (int)pid);
	snprintf(json, sizeof json, "{\"shimPid\":%d,\"initPid\":%d,\"initStart\":\"%s\"}",
		 (int)getpid(), (int)pid, start);
	if (write_atomic(bundle_path, "state", json) < 0)
		die("state", "write: %m");
	report[0] = 0;
	strcpy(report + 1, json);
	write_all(REPORT_FD, report, strlen(json) + 1);
	close(REPORT_FD);
	/* From now on failures have no caller to go to. */
	err_fd = 2;
	err_coded = 0;
	on_fail = NULL;
}

/* Copies output to the log until `pid` is gone, then writes `exit`. `status` is the wait
 * status to report when the child's own one is not the whole story (the init exits with
 * 128+n when its app was killed by n; it sends the app's raw status on status_fd). */
static __attribute__((noreturn)) void shim_loop(pid_t pid, int out, int err, int status_fd)
{
	struct logfile lf;
	logfile_open(&lf, bundle_path);
	int pidfd = syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		die("pidfd_open", "%m");
	struct logstream *streams[2] = { log_open(out, "stdout"), log_open(err, "stderr") };
	struct pollfd pfd[3] = { { out, POLLIN, 0 }, { err, POLLIN, 0 }, { pidfd, POLLIN, 0 } };

	while (pfd[2].fd >= 0) {
		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++)
			if (pfd[i].revents && !log_pump(streams[i], &lf)) {
				close(pfd[i].fd);
				pfd[i].fd = -1;
			}
		if (pfd[2].revents)
			pfd[2].fd = -1;
	}

	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	/* Every process of the container is gone with its init (pid_namespaces(7)), so the
	 * pipes hold only what is left to read. */
	for (int i = 0; i < 2; i++) {
		if (pfd[i].fd < 0)
			continue;
		fcntl(pfd[i].fd, F_SETFL, O_NONBLOCK);
		while (log_pump(streams[i], &lf) > 0) {
			struct pollfd p = { pfd[i].fd, POLLIN, 0 };
			if (poll(&p, 1, 0) <= 0)
				break;
		}
		log_flush(streams[i], &lf);
	}

	int app_status, signal_no = 0, code;
	if (WIFSIGNALED(st)) {
		signal_no = WTERMSIG(st);
	} else if (status_fd >= 0 && read(status_fd, &app_status, sizeof app_status) ==
					     (ssize_t)sizeof app_status) {
		if (WIFSIGNALED(app_status))
			signal_no = WTERMSIG(app_status);
	}
	code = signal_no ? 128 + signal_no : WEXITSTATUS(st);

	char at[40], sigbuf[16], json[160];
	iso_time(at, sizeof at, 1);
	snprintf(sigbuf, sizeof sigbuf, signal_no ? "%d" : "null", signal_no);
	snprintf(json, sizeof json, "{\"exitCode\":%d,\"signal\":%s,\"at\":\"%s\"}", code, sigbuf,
		 at);
	if (write_atomic(bundle_path, "exit", json) < 0)
		die("exit", "write: %m");
	_exit(0);
}

static void set_bundle(const char *bundle)
{
	/* The shim chdirs to / so it pins no directory; keep the bundle absolute. */
	if (bundle[0] == '/') {
		snprintf(bundle_path, sizeof bundle_path, "%s", bundle);
	} else if (!realpath(bundle, bundle_path)) {
		die("bundle", "\"%s\": %m", bundle);
	}
}

int cmd_start(const char *bundle)
{
	struct spec s;
	char msg[1100];
	set_bundle(bundle);
	spec_of(bundle_path, &s);
	/* A detached container has nobody at a terminal: its output goes to the log. */
	if (s.tty_rows)
		die("spec", "tty: only for run, not start");
	detach();

	int out[2], err[2], status[2];
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
	    pipe2(status, O_CLOEXEC) < 0)
		die("pipe", "%m");
	/* The init dies with the shim: without it nobody reads the app's output. */
	struct launch l = { bundle_path, &s, { 0, out[1], err[1] }, status[1], 1, -1 };
	int errrd;
	pid_t init = container_create(&l, &errrd);
	close(out[1]);
	close(err[1]);
	close(status[1]);
	int code = wait_started(errrd, init, msg, sizeof msg);
	if (code) {
		msg[strcspn(msg, "\n")] = 0;
		fail(code, "", "%s", msg); /* already "<step>: <message>" */
	}
	write_state(init);
	shim_loop(init, out[0], err[0], status[0]);
}

int cmd_supervise(const char *bundle, char **argv)
{
	char msg[1100];
	set_bundle(bundle);
	detach();

	int out[2], err[2], ep[2];
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0)
		die("pipe", "%m");
	pid_t pid = fork();
	if (pid < 0)
		die("fork", "%m");
	if (pid == 0) {
		err_fd = ep[1];
		err_coded = 0;
		on_fail = NULL;
		if (dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
			die("stdio", "%m");
		execvp(argv[0], argv);
		fail(errno == ENOENT ? EXIT_NOTFOUND : EXIT_NOEXEC, "exec", "\"%s\": %m", argv[0]);
	}
	close(out[1]);
	close(err[1]);
	close(ep[1]);
	int code = wait_started(ep[0], pid, msg, sizeof msg);
	if (code) {
		msg[strcspn(msg, "\n")] = 0;
		fail(code, "", "%s", msg);
	}
	write_state(pid);
	shim_loop(pid, out[0], err[0], -1);
}
