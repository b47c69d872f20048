/* Parses and validates the bundle's `spec` file (SPEC.md "Spec format"). Every error
 * names the line or the field so the TypeScript side can report it as is. */
#include "paas.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_SPEC (4 << 20)

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p)
		die("spec", "out of memory");
	return p;
}

#define PUSH(arr, n, v)                                                   \
	do {                                                              \
		(arr) = xrealloc((arr), ((n) + 2) * sizeof *(arr));       \
		(arr)[(n)++] = (v);                                       \
		(arr)[(n)] = 0;                                           \
	} while (0)

/* `\n`, `\t`, `\\` are the only escapes; any other backslash is literal. In place. */
static void unescape(char *v)
{
	char *w = v;
	for (char *r = v; *r; r++) {
		if (*r == '\\' && (r[1] == 'n' || r[1] == 't' || r[1] == '\\')) {
			r++;
			*w++ = *r == 'n' ? '\n' : *r == 't' ? '\t' : '\\';
		} else {
			*w++ = *r;
		}
	}
	*w = 0;
}

static int parse_u32(const char *v, unsigned long max, unsigned long *out)
{
	if (!*v || strlen(v) > 10)
		return -1;
	for (const char *p = v; *p; p++)
		if (!isdigit((unsigned char)*p))
			return -1;
	unsigned long n = strtoul(v, NULL, 10);
	if (n > max)
		return -1;
	*out = n;
	return 0;
}

static int valid_id(const char *v)
{
	size_t n = strlen(v);
	if (n < 1 || n > 128 || !(islower((unsigned char)v[0]) || isdigit((unsigned char)v[0])))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!(islower((unsigned char)v[i]) || isdigit((unsigned char)v[i]) ||
		      strchr("_.-", v[i])))
			return 0;
	return 1;
}

static int valid_hostname(const char *v)
{
	size_t n = strlen(v), label = 0;
	if (n < 1 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if (isalnum((unsigned char)v[i]) || v[i] == '-') {
			if (++label > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return label > 0;
}

static void need_abs(const char *key, const char *v)
{
	if (v[0] != '/')
		die("spec", "%s: \"%s\" is not an absolute path", key, v);
}

static void need_kind(const char *key, const char *v, mode_t kind)
{
	struct stat st;
	need_abs(key, v);
	if (stat(v, &st) < 0)
		die("spec", "%s: \"%s\": %m", key, v);
	if (kind && (st.st_mode & S_IFMT) != kind)
		die("spec", "%s: \"%s\" is not a %s", key, v,
		    kind == S_IFDIR ? "directory" : "regular file");
}

static int flag01(int line, const char *key, const char *v)
{
	if (strcmp(v, "0") && strcmp(v, "1"))
		die("spec", "line %d: %s: expected 0 or 1, got \"%s\"", line, key, v);
	return v[0] == '1';
}

static void parse_groups(int line, char *v, struct spec *s)
{
	s->ngroups = 0;
	s->groups = xrealloc(NULL, sizeof(gid_t));
	for (char *tok = strtok(v, ","); tok; tok = strtok(NULL, ",")) {
		unsigned long g;
		if (parse_u32(tok, UINT_MAX - 1, &g) < 0)
			die("spec", "line %d: groups: \"%s\" is not a gid", line, tok);
		s->groups = xrealloc(s->groups, (s->ngroups + 1) * sizeof(gid_t));
		s->groups[s->ngroups++] = g;
	}
}

static void parse_volume(int line, char *v, struct spec *s)
{
	char *src = v, *dst = strchr(v, '\t'), *mode;
	if (!dst || !(mode = strchr(dst + 1, '\t')))
		die("spec", "line %d: mount: expected SRC\\tDST\\tro|rw", line);
	*dst++ = 0;
	*mode++ = 0;
	if (strcmp(mode, "ro") && strcmp(mode, "rw"))
		die("spec", "line %d: mount: mode must be ro or rw, got \"%s\"", line, mode);
	need_abs("mount", src);
	need_abs("mount", dst);
	s->volumes = xrealloc(s->volumes, (s->nvolumes + 1) * sizeof *s->volumes);
	s->volumes[s->nvolumes++] = (struct volume){ src, dst, mode[1] == 'o' };
}

/* Keys an exec spec may use (SPEC.md: EXECSPEC uses arg, env, cwd, uid, gid, groups). */
static const char *const EXEC_KEYS[] = { "arg", "env", "cwd", "uid", "gid", "groups", 0 };

static int exec_key(const char *k)
{
	for (const char *const *e = EXEC_KEYS; *e; e++)
		if (!strcmp(*e, k))
			return 1;
	return 0;
}

static void directive(int line, char *key, char *v, struct spec *s, int execspec,
		      unsigned *seen)
{
	static const char *const SINGLE[] = {
		"id", "rootfs", "upper", "work", "readonly", "hostname", "cwd", "uid", "gid",
		"groups", "net", "hosts", "resolv", "stopsignal", "userns", "seccomp", "caps",
		"nonewprivs", "tty", 0
	};
	unsigned long n;

	if (execspec && !exec_key(key))
		die("spec", "line %d: key \"%s\" is not allowed in an exec spec", line, key);
	for (int i = 0; SINGLE[i]; i++)
		if (!strcmp(SINGLE[i], key)) {
			if (*seen & (1u << i))
				die("spec", "line %d: %s given twice", line, key);
			*seen |= 1u << i;
		}

	if (!strcmp(key, "id")) {
		if (!valid_id(v))
			die("spec", "line %d: id: \"%s\" is not [a-z0-9][a-z0-9_.-]{0,127}", line, v);
		s->id = v;
	} else if (!strcmp(key, "rootfs")) {
		need_kind("rootfs", v, S_IFDIR);
		s->rootfs = v;
	} else if (!strcmp(key, "lower")) {
		need_kind("lower", v, S_IFDIR);
		PUSH(s->lower, s->nlower, v);
	} else if (!strcmp(key, "upper")) {
		need_kind("upper", v, S_IFDIR);
		s->upper = v;
	} else if (!strcmp(key, "work")) {
		need_kind("work", v, S_IFDIR);
		s->work = v;
	} else if (!strcmp(key, "readonly")) {
		s->readonly = flag01(line, key, v);
	} else if (!strcmp(key, "hostname")) {
		if (!valid_hostname(v))
			die("spec", "line %d: hostname: \"%s\" is not a DNS name", line, v);
		s->hostname = v;
	} else if (!strcmp(key, "arg")) {
		PUSH(s->argv, s->argc, v);
	} else if (!strcmp(key, "env")) {
		char *eq = strchr(v, '=');
		if (!eq || eq == v)
			die("spec", "line %d: env: \"%s\" is not KEY=VALUE", line, v);
		PUSH(s->env, s->envc, v);
	} else if (!strcmp(key, "cwd")) {
		if (v[0] != '/')
			die("spec", "line %d: cwd: \"%s\" is not an absolute path", line, v);
		s->cwd = v;
	} else if (!strcmp(key, "uid")) {
		if (parse_u32(v, UINT_MAX - 1, &n) < 0)
			die("spec", "line %d: uid: \"%s\" is not a uid", line, v);
		s->uid = n;
	} else if (!strcmp(key, "gid")) {
		if (parse_u32(v, UINT_MAX - 1, &n) < 0)
			die("spec", "line %d: gid: \"%s\" is not a gid", line, v);
		s->gid = n;
	} else if (!strcmp(key, "groups")) {
		parse_groups(line, v, s);
	} else if (!strcmp(key, "net")) {
		if (!strcmp(v, "none")) {
			s->net = NET_NONE;
		} else if (!strcmp(v, "host")) {
			s->net = NET_HOST;
		} else {
			need_kind("net", v, 0);
			s->net = NET_PATH;
			s->netns = v;
		}
	} else if (!strcmp(key, "cgroup")) {
		need_kind("cgroup", v, S_IFDIR);
		PUSH(s->cgroups, s->ncgroups, v);
	} else if (!strcmp(key, "mount")) {
		parse_volume(line, v, s);
	} else if (!strcmp(key, "hosts")) {
		need_kind("hosts", v, S_IFREG);
		s->hosts = v;
	} else if (!strcmp(key, "resolv")) {
		need_kind("resolv", v, S_IFREG);
		s->resolv = v;
	} else if (!strcmp(key, "stopsignal")) {
		if (parse_u32(v, SIGRTMAX, &n) < 0 || n == 0)
			die("spec", "line %d: stopsignal: \"%s\" is not a signal number", line, v);
		s->stopsignal = n;
	} else if (!strcmp(key, "userns")) {
		unsigned long u, g, c;
		char *a = strtok(v, ":"), *b = strtok(NULL, ":"), *cnt = strtok(NULL, ":");
		if (!a || !b || !cnt || strtok(NULL, ":") || parse_u32(a, UINT_MAX - 1, &u) ||
		    parse_u32(b, UINT_MAX - 1, &g) || parse_u32(cnt, UINT_MAX, &c) || c == 0)
			die("spec", "line %d: userns: expected HOSTUID:HOSTGID:COUNT", line);
		/* Mapping host 0 would make the container's root (or one of its users) host
		 * root again; (uid_t)-1 is not a uid (user_namespaces(7)). */
		if (u == 0 || g == 0)
			die("spec", "line %d: userns: HOSTUID and HOSTGID must not be 0", line);
		if (c > UINT_MAX - u || c > UINT_MAX - g)
			die("spec", "line %d: userns: HOSTUID + COUNT and HOSTGID + COUNT must "
				    "not exceed 4294967295", line);
		s->userns = 1;
		s->userns_uid = u;
		s->userns_gid = g;
		s->userns_count = c;
	} else if (!strcmp(key, "seccomp")) {
		if (!strcmp(v, "default"))
			s->seccomp = SECCOMP_DEFAULT;
		else if (!strcmp(v, "off"))
			s->seccomp = SECCOMP_OFF;
		else
			die("spec", "line %d: seccomp: expected default or off, got \"%s\"", line, v);
	} else if (!strcmp(key, "caps")) {
		if (strcmp(v, "default") && cap_parse(v, &s->caps) < 0)
			die("spec", "line %d: caps: unknown capability in \"%s\"", line, v);
	} else if (!strcmp(key, "tty")) {
		unsigned rows, cols;
		char extra;
		if (sscanf(v, "%5u %5u%c", &rows, &cols, &extra) != 2 || rows == 0 || cols == 0 ||
		    rows > 65535 || cols > 65535 || !isdigit((unsigned char)*v))
			die("spec", "line %d: tty: \"%s\" is not \"ROWS COLS\" (1-65535 each)", line, v);
		s->tty_rows = rows;
		s->tty_cols = cols;
	} else if (!strcmp(key, "nonewprivs")) {
		s->nonewprivs = flag01(line, key, v);
	} else {
		die("spec", "line %d: unknown key \"%s\"", line, key);
	}
}

static char *slurp(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		die("spec", "%s: %m", path);
	if (!S_ISREG(st.st_mode) || st.st_size > MAX_SPEC)
		die("spec", "%s: not a regular file of at most %d bytes", path, MAX_SPEC);
	char *buf = xrealloc(NULL, st.st_size + 1);
	ssize_t n = read_fd(fd, buf, st.st_size + 1);
	close(fd);
	if (n < 0)
		die("spec", "%s: %m", path);
	if (memchr(buf, 0, n))
		die("spec", "%s: contains a NUL byte", path);
	return buf;
}

void spec_parse(const char *path, struct spec *s, int execspec)
{
	unsigned seen = 0;
	char *text = slurp(path), *next;

	memset(s, 0, sizeof *s);
	s->caps = CAPS_DOCKER_DEFAULT;
	s->nonewprivs = 1;
	s->net = NET_NONE;

	int line = 0;
	for (char *l = text; l && *l; l = next) {
		line++;
		next = strchr(l, '\n');
		if (next)
			*next++ = 0;
		if (!*l)
			continue;
		char *sp = strchr(l, ' ');
		if (!sp)
			die("spec", "line %d: expected \"key value\", got \"%s\"", line, l);
		*sp = 0;
		unescape(sp + 1);
		directive(line, l, sp + 1, s, execspec, &seen);
	}

	if (s->argc == 0)
		die("spec", "arg: at least one is required");
	if (execspec)
		return;
	if (!s->id)
		die("spec", "id: required");
	if (!s->rootfs && s->nlower == 0)
		die("spec", "rootfs: required (or lower)");
	if (s->nlower && !s->readonly && (!s->upper || !s->work))
		die("spec", "%s: required with lower unless readonly 1",
		    s->upper ? "work" : "upper");
	if ((s->upper != NULL) != (s->work != NULL))
		die("spec", "%s: upper and work go together", s->upper ? "work" : "upper");
	/* Through the idmapped mount the container's root would write a `rootfs` directory
	 * as host uid 0 (userns.c): only a read-only one. */
	if (s->userns && s->rootfs && s->nlower == 0 && !s->readonly)
		die("spec", "userns: a writable rootfs directory is not supported (use lower and "
			    "upper, or readonly 1)");
	spec_check_mapped(s, s);
}

/* Every id the process takes must exist in the container's user namespace. */
void spec_check_mapped(const struct spec *ns, const struct spec *p)
{
	if (!ns->userns)
		return;
	if (p->uid >= ns->userns_count)
		die("spec", "uid: %u is not mapped by userns (COUNT %u)", (unsigned)p->uid,
		    ns->userns_count);
	if (p->gid >= ns->userns_count)
		die("spec", "gid: %u is not mapped by userns (COUNT %u)", (unsigned)p->gid,
		    ns->userns_count);
	for (size_t i = 0; i < p->ngroups; i++)
		if (p->groups[i] >= ns->userns_count)
			die("spec", "groups: %u is not mapped by userns (COUNT %u)",
			    (unsigned)p->groups[i], ns->userns_count);
}

void proc_from_spec(const struct spec *s, struct proc *p)
{
	memset(p, 0, sizeof *p);
	p->argv = s->argv;
	static char *no_env[] = { 0 };
	p->env = s->env ? s->env : no_env;
	p->cwd = s->cwd ? s->cwd : "/";
	p->uid = s->uid;
	p->gid = s->gid;
	p->groups = s->groups;
	p->ngroups = s->ngroups;
	p->caps = s->caps;
	p->nonewprivs = s->nonewprivs;
	p->seccomp = s->seccomp;
	p->mkcwd = 1;
}
