/* `run` with a terminal (SPEC.md `tty`): what `paas run` uses when the operator sits at
 * one. The init opens a pseudo-terminal in the container's own devpts, keeps the slave end
 * for the app and passes the master end to the launcher over a unix socket (as runc's
 * console socket does). The launcher relays its stdin to the master, the master to its
 * stdout, and resize lines from fd 3 to the terminal's size. */
#include "paas.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define CONTROL_FD 3

/* In the init, inside the container's root: returns the slave end for the app. */
int tty_create(const struct spec *s, int sock)
{
	int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		die("tty", "open /dev/ptmx: %m");
	int unlock = 0;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
		die("tty", "unlock: %m");
	struct winsize ws = { .ws_row = s->tty_rows, .ws_col = s->tty_cols };
	if (ioctl(master, TIOCSWINSZ, &ws) < 0)
		die("tty", "size: %m");
	/* The peer by the master fd, not by a path someone in the container could swap. */
	int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		die("tty", "open the terminal: %m");
	/* The app's own terminal, as login(1) leaves it: tools that reopen their tty work. */
	if (fchown(slave, s->uid, (gid_t)-1) < 0)
		die("tty", "chown: %m");
	if (send_fd(sock, master) < 0)
		die("tty", "send: %m");
	close(master);
	close(sock);
	return slave;
}

/* In the app's process before exec: a new session whose controlling terminal is `slave`,
 * which becomes its stdin, stdout and stderr. */
void tty_attach(int slave)
{
	if (setsid() < 0)
		die("tty", "setsid: %m");
	if (ioctl(slave, TIOCSCTTY, 0) < 0)
		die("tty", "controlling terminal: %m");
	for (int i = 0; i < 3; i++)
		if (dup2(slave, i) < 0)
			die("tty", "stdio: %m");
	if (slave > 2)
		close(slave);
}

/* "ROWS COLS\n" lines from the control fd; a malformed line is ignored, not fatal. */
static void apply_sizes(int master, char *buf, size_t *len)
{
	char *nl;
	while ((nl = memchr(buf, '\n', *len))) {
		*nl = 0;
		unsigned rows, cols;
		char extra;
		if (sscanf(buf, "%5u %5u%c", &rows, &cols, &extra) == 2 && rows && cols &&
		    rows <= 65535 && cols <= 65535) {
			struct winsize ws = { .ws_row = rows, .ws_col = cols };
			ioctl(master, TIOCSWINSZ, &ws); /* the kernel sends SIGWINCH */
		}
		size_t used = nl + 1 - buf;
		memmove(buf, nl + 1, *len - used);
		*len -= used;
	}
	if (*len == 128) /* a line this long is garbage: drop it */
		*len = 0;
}

static int exit_code(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* fd 3 when the caller passed one (resize lines), else -1. Asked before the launcher opens
 * anything, or the answer could be one of its own fds. */
int tty_control_fd(void)
{
	return fcntl(CONTROL_FD, F_GETFD) >= 0 ? CONTROL_FD : -1;
}

/* The launcher's loop until the init exits, then what the terminal still holds. Input is
 * buffered and written only when the terminal takes it, so an app that is not reading
 * cannot block its own output (the loop never sleeps in a write to the master). */

int tty_relay(pid_t init, int master, int ctl, const sigset_t *set)
{
	int in = 0;
	int sfd = signalfd(-1, set, SFD_CLOEXEC);
	if (sfd < 0)
		die("tty", "signalfd: %m");
	if (fcntl(master, F_SETFL, O_NONBLOCK) < 0)
		die("tty", "nonblock: %m");
	char inbuf[4096], outbuf[65536], ctlbuf[128];
	size_t inlen = 0, inoff = 0, ctllen = 0;
	int status = -1, master_open = 1;

	while (status < 0) {
		struct pollfd p[4] = {
			{ sfd, POLLIN, 0 },
			{ master_open ? master : -1, POLLIN | (inlen > inoff ? POLLOUT : 0), 0 },
			{ inlen == inoff ? in : -1, POLLIN, 0 },
			{ ctl, POLLIN, 0 },
		};
		if (poll(p, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("tty", "poll: %m");
		}
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof si) == sizeof si) {
				if ((int)si.ssi_signo != SIGCHLD) {
					kill(init, si.ssi_signo);
				} else {
					int st;
					if (waitpid(init, &st, WNOHANG) == init)
						status = st;
				}
			}
		}
		if (p[1].revents & POLLIN) {
			ssize_t n = read(master, outbuf, sizeof outbuf);
			if (n > 0)
				write_all(1, outbuf, n);
			else if (n == 0 || (errno != EAGAIN && errno != EINTR))
				master_open = 0; /* EIO: no process holds the terminal any more */
		} else if (p[1].revents & (POLLHUP | POLLERR)) {
			master_open = 0;
		}
		if ((p[1].revents & POLLOUT) && inlen > inoff) {
			ssize_t n = write(master, inbuf + inoff, inlen - inoff);
			if (n > 0)
				inoff += n;
			else if (n < 0 && errno != EAGAIN && errno != EINTR)
				inoff = inlen; /* the terminal is gone: drop the input */
		}
		if (p[2].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(in, inbuf, sizeof inbuf);
			if (n > 0) {
				inoff = 0;
				inlen = n;
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				in = -1; /* the caller closed stdin; the session goes on */
			}
		}
		if (p[3].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(ctl, ctlbuf + ctllen, sizeof ctlbuf - ctllen);
			if (n > 0) {
				ctllen += n;
				apply_sizes(master, ctlbuf, &ctllen);
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				ctl = -1;
			}
		}
	}

	/* The init is gone, and with it every process of the container (pid_namespaces(7)):
	 * relay what they wrote before, until the terminal reports EIO or stays quiet. */
	while (master_open) {
		struct pollfd p = { master, POLLIN, 0 };
		if (poll(&p, 1, 500) <= 0)
			break;
		ssize_t n = read(master, outbuf, sizeof outbuf);
		if (n > 0)
			write_all(1, outbuf, n);
		else if (n == 0 || (errno != EAGAIN && errno != EINTR))
			break;
	}
	close(master);
	close(sfd);
	return exit_code(status);
}
