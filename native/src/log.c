/* The container's `log` file (SPEC.md "Bundle directory"): one line per output line,
 * `<ISO-8601 UTC with ms> <stdout|stderr> <text>`, long lines split at 16 KiB, control
 * bytes escaped so a line of the file is always a line of output. Fixed buffers: the
 * shim must stay small however much an app prints. */
#include "paas.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

void logfile_open(struct logfile *lf, const char *bundle)
{
	char max[32];
	snprintf(lf->path, sizeof lf->path, "%s/log-max", bundle);
	lf->max = read_file(lf->path, max, sizeof max) > 0 ? strtoll(max, NULL, 10) : 0;
	snprintf(lf->path, sizeof lf->path, "%s/log", bundle);
	lf->fd = open(lf->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	struct stat st;
	if (lf->fd < 0 || fstat(lf->fd, &st) < 0)
		die("log", "open \"%s\": %m", lf->path);
	lf->size = st.st_size;
}

/* Keeps the log bounded however much the app prints: after the line that takes it past
 * `max`, `log` is renamed to `log.1` (replacing the older generation) and a fresh `log`
 * takes its fd number. A reader that follows the rename loses nothing; one that was away
 * for two generations loses the oldest, as with Docker's max-size/max-file. */
static void rotate(struct logfile *lf)
{
	char old[4210];
	snprintf(old, sizeof old, "%s.1", lf->path);
	/* A log that cannot rotate still takes lines; the next try is a generation later. */
	lf->size = 0;
	if (rename(lf->path, old) < 0)
		return;
	int fd = open(lf->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	dup3(fd, lf->fd, O_CLOEXEC);
	close(fd);
}

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

static void emit(struct logstream *ls, const char *text, size_t len, struct logfile *lf)
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
	(void)write_all(lf->fd, out, n);
	lf->size += n;
	if (lf->max > 0 && lf->size >= lf->max)
		rotate(lf);
}

int log_pump(struct logstream *ls, struct logfile *lf)
{
	ssize_t r;
	do
		r = read(ls->fd, ls->buf + ls->len, sizeof ls->buf - ls->len);
	while (r < 0 && errno == EINTR);
	if (r < 0 && errno == EAGAIN)
		return 1;
	if (r <= 0) {
		log_flush(ls, lf);
		return 0;
	}
	ls->len += r;

	char *start = ls->buf, *end = ls->buf + ls->len, *nl;
	while ((nl = memchr(start, '\n', end - start))) {
		emit(ls, start, nl - start, lf);
		start = nl + 1;
	}
	ls->len = end - start;
	if (ls->len == sizeof ls->buf) {
		emit(ls, ls->buf, ls->len, lf); /* a 16 KiB line without newline: split */
		ls->len = 0;
	} else if (start != ls->buf) {
		memmove(ls->buf, start, ls->len);
	}
	return 1;
}

/* SPEC.md: a partial last line is flushed when the stream closes. */
void log_flush(struct logstream *ls, struct logfile *lf)
{
	if (ls->len)
		emit(ls, ls->buf, ls->len, lf);
	ls->len = 0;
}
