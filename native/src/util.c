/* Error reporting and small file helpers shared by every command. */
#include "paas.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int err_fd = 2;
int err_coded;
void (*on_fail)(const char *msg);

void fail(int code, const char *step, const char *fmt, ...)
{
	char buf[1025], *msg = buf + 1;
	int saved = errno;
	int n = *step ? snprintf(msg, sizeof buf - 1, "%s: ", step) : 0; /* "": preformatted */
	va_list ap;
	va_start(ap, fmt);
	errno = saved; /* for %m */
	n += vsnprintf(msg + n, sizeof buf - 1 - n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof buf - 3)
		n = sizeof buf - 3;
	msg[n++] = '\n';
	msg[n] = 0;
	if (on_fail)
		on_fail(msg);
	/* One write so a reader of a pipe gets the message whole (PIPE_BUF is 4096); on the
	 * shim's report pipe the exit code travels as a leading byte. */
	buf[0] = (char)code;
	if (err_coded)
		write_all(err_fd, buf, n + 1);
	else
		write_all(err_fd, msg, n);
	_exit(code);
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		len -= w;
	}
	return 0;
}

int write_file(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = write_all(fd, data, strlen(data));
	int saved = errno;
	close(fd);
	errno = saved;
	return r;
}

/* SPEC.md: state/exit are replaced atomically so a reader never sees half a file. */
int write_atomic(const char *dir, const char *name, const char *data)
{
	char tmp[4096], dst[4096];
	if (snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name) >= (int)sizeof tmp ||
	    snprintf(dst, sizeof dst, "%s/%s", dir, name) >= (int)sizeof dst) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -1;
	if (write_all(fd, data, strlen(data)) < 0) {
		int saved = errno;
		close(fd);
		unlink(tmp);
		errno = saved;
		return -1;
	}
	close(fd);
	if (rename(tmp, dst) < 0) {
		int saved = errno;
		unlink(tmp);
		errno = saved;
		return -1;
	}
	return 0;
}

/* Reads up to size-1 bytes and NUL-terminates. */
ssize_t read_fd(int fd, char *buf, size_t size)
{
	size_t n = 0;
	while (n < size - 1) {
		ssize_t r = read(fd, buf + n, size - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		n += r;
	}
	buf[n] = 0;
	return n;
}

ssize_t read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read_fd(fd, buf, size);
	int saved = errno;
	close(fd);
	errno = saved;
	return n;
}

/* Field 22 of /proc/PID/stat (proc(5)): with the pid it names one process for good. */
int proc_start_time(pid_t pid, char *out, size_t size)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (read_file(path, buf, sizeof buf) <= 0)
		return -1;
	char *p = strrchr(buf, ')'); /* comm may contain spaces and parentheses */
	if (!p)
		return -1;
	p += 2; /* now at field 3 */
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -1;
		p++;
	}
	size_t len = strcspn(p, " ");
	if (len == 0 || len >= size)
		return -1;
	memcpy(out, p, len);
	out[len] = 0;
	return 0;
}

void iso_time(char *out, size_t size, int with_ms)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
	if (with_ms)
		snprintf(out + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000);
	else
		snprintf(out + n, size - n, "Z");
}

int null_stdio(void)
{
	int fd = open("/dev/null", O_RDWR); /* no O_CLOEXEC: dup2(fd, fd) would keep it */
	if (fd < 0)
		return -1;
	for (int i = 0; i < 3; i++)
		if (dup2(fd, i) < 0)
			return -1;
	if (fd > 2)
		close(fd);
	return 0;
}

/* Closes every fd >= 3 except those in keep (any order, -1 entries ignored). */
int close_except(int *keep, size_t n)
{
	int lo = 3;
	for (;;) {
		int next = -1;
		for (size_t i = 0; i < n; i++)
			if (keep[i] >= lo && (next < 0 || keep[i] < next))
				next = keep[i];
		if (next < 0)
			return syscall(SYS_close_range, lo, ~0U, 0);
		if (next > lo && syscall(SYS_close_range, lo, next - 1, 0) < 0)
			return -1;
		lo = next + 1;
	}
}

/* One byte with one fd attached (SCM_RIGHTS) over a unix socket. */
int send_fd(int sock, int fd)
{
	char go = '1';
	struct iovec iov = { &go, 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} c;
	memset(&c, 0, sizeof c);
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf,
			    .msg_controllen = sizeof c.buf };
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &fd, sizeof fd);
	return sendmsg(sock, &m, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

/* The other end of send_fd: returns the bytes read (0 at EOF, -1 on error), the fd
 * (O_CLOEXEC) in *fd or -1 when the message carried none. */
ssize_t recv_fd(int sock, int *fd)
{
	char go;
	struct iovec iov = { &go, 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} c;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf,
			    .msg_controllen = sizeof c.buf };
	ssize_t n;
	*fd = -1;
	while ((n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	struct cmsghdr *h = n == 1 ? CMSG_FIRSTHDR(&m) : NULL;
	if (h && h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS &&
	    h->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(fd, CMSG_DATA(h), sizeof *fd);
	return n;
}
