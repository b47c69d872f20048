/* The container's `log` file (SPEC.md "Bundle directory"): one line per output line,
 * `<ISO-8601 UTC with ms> <stdout|stderr> <text>`, long lines split at 16 KiB, control
 * bytes escaped so a line of the file is always a line of output. Fixed buffers: the
 * shim must stay small however much an app prints. */
#include "paas.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINE_MAX_BYTES (16 * 1024)

struct logstream {
	int fd;
	const char *tag;
	size_t len;
	char buf[LINE_MAX_BYTES];
};

/* Worst case: every byte becomes \xNN. */
static char out[32 + 8 + LINE_MAX_BYTES * 4 + 1];

struct logstream *log_open(int fd, const char *tag)
{
	struct logstream *ls = malloc(sizeof *ls);
	if (!ls)
		die("log", "out of memory");
	ls->fd = fd;
	ls->tag = tag;
	ls->len = 0;
	return ls;
}

static void emit(struct logstream *ls, const char *text, size_t len, int logfd)
{
	static const char hex[] = "0123456789abcdef";
	iso_time(out, 32, 1);
	size_t n = strlen(out);
	out[n++] = ' ';
	n += strlen(strcpy(out + n, ls->tag));
	out[n++] = ' ';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = text[i];
		if (c == '\\') {
			out[n++] = '\\';
			out[n++] = '\\';
		} else if ((c < 0x20 && c != '\t') || c == 0x7f) {
			out[n++] = '\\';
			out[n++] = 'x';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		} else {
			out[n++] = c;
		}
	}
	out[n++] = '\n';
	/* One write per line: a reader tailing the file never sees two lines interleave. A
	 * failing log (disk full) must not stop the app, so the error is dropped. */
	(void)write_all(logfd, out, n);
}

int log_pump(struct logstream *ls, int logfd)
{
	ssize_t r;
	do
		r = read(ls->fd, ls->buf + ls->len, sizeof ls->buf - ls->len);
	while (r < 0 && errno == EINTR);
	if (r < 0 && errno == EAGAIN)
		return 1;
	if (r <= 0) {
		log_flush(ls, logfd);
		return 0;
	}
	ls->len += r;

	char *start = ls->buf, *end = ls->buf + ls->len, *nl;
	while ((nl = memchr(start, '\n', end - start))) {
		emit(ls, start, nl - start, logfd);
		start = nl + 1;
	}
	ls->len = end - start;
	if (ls->len == sizeof ls->buf) {
		emit(ls, ls->buf, ls->len, logfd); /* a 16 KiB line without newline: split */
		ls->len = 0;
	} else if (start != ls->buf) {
		memmove(ls->buf, start, ls->len);
	}
	return 1;
}

/* SPEC.md: a partial last line is flushed when the stream closes. */
void log_flush(struct logstream *ls, int logfd)
{
	if (ls->len)
		emit(ls, ls->buf, ls->len, logfd);
	ls->len = 0;
}
