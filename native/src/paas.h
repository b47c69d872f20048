/* Shared declarations of paas-shim. The contract with the TypeScript side is SPEC.md. */
#ifndef PAAS_H
#define PAAS_H

#include <stdint.h>
#include <stddef.h>
#include <signal.h>
#include <sys/types.h>

/* Exit codes of the helper itself (SPEC.md "Commands"), as Docker and a shell use them. */
enum { EXIT_SETUP = 125, EXIT_NOEXEC = 126, EXIT_NOTFOUND = 127 };

enum net_mode { NET_NONE, NET_HOST, NET_PATH };
enum seccomp_mode { SECCOMP_DEFAULT, SECCOMP_OFF };

struct volume {
	char *src, *dst;
	int ro;
};

struct spec {
	char *id, *rootfs, *upper, *work, *hostname, *cwd, *hosts, *resolv, *netns;
	char **lower, **argv, **env, **cgroups;
	size_t nlower, argc, envc, ncgroups, nvolumes, ngroups;
	struct volume *volumes;
	gid_t *groups;
	uid_t uid;
	gid_t gid;
	int readonly, stopsignal, nonewprivs;
	enum net_mode net;
	enum seccomp_mode seccomp;
	uint64_t caps;
	int userns;
	uid_t userns_uid;
	gid_t userns_gid;
	unsigned userns_count;
	unsigned short tty_rows, tty_cols; /* `tty`: both > 0 when `run` gets a terminal */
};

/* The process that runs one container command (or the exec'd process). */
struct proc {
	char **argv, **env, *cwd;
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	size_t ngroups;
	uint64_t caps;
	int nonewprivs, mkcwd;
	int pdeathsig; /* set again after the credential switch, which clears it */
	enum seccomp_mode seccomp;
};

/* util.c — failing: "<step>: <message>" goes to err_fd, cleanup runs, the process exits. */
extern int err_fd, err_coded;
extern void (*on_fail)(const char *msg);
__attribute__((noreturn, format(printf, 3, 4)))
void fail(int code, const char *step, const char *fmt, ...);
#define die(step, ...) fail(EXIT_SETUP, step, __VA_ARGS__)
int write_all(int fd, const void *buf, size_t len);
int write_file(const char *path, const char *data);
int write_atomic(const char *dir, const char *name, const char *data);
ssize_t read_fd(int fd, char *buf, size_t size);
ssize_t read_file(const char *path, char *buf, size_t size);
int proc_start_time(pid_t pid, char *out, size_t size);
void iso_time(char *out, size_t size, int with_ms);
int null_stdio(void);
int close_except(int *keep, size_t n);
int send_fd(int sock, int fd);
ssize_t recv_fd(int sock, int *fd);

/* spec.c */
void spec_parse(const char *path, struct spec *s, int execspec);
void spec_check_mapped(const struct spec *ns, const struct spec *p);
void proc_from_spec(const struct spec *s, struct proc *p);

/* container.c: create the container; returns the init's pid with fds set in cfg. */
struct launch {
	const char *bundle;
	const struct spec *spec;
	int stdio[3];          /* fds for the container's 0,1,2 */
	int status_fd;         /* write end: init reports the app's wait status here */
	int kill_with_parent;  /* init gets SIGKILL when the launcher dies */
	int tty_sock;          /* `tty`: the init sends the terminal's master end here, or -1 */
};
pid_t container_create(const struct launch *l, int *errpipe_rd);
int wait_started(int errpipe_rd, pid_t child, char *msg, size_t size);

/* mounts.c — runs in the container's fresh mount namespace: rootfs_host while host paths
 * can still be reached (propagation, the root at BUNDLE/rootfs, volume and /etc file
 * sources; rootmnt: a root mount built by userns.c, or -1), then rootfs_inside. */
void rootfs_host(const char *bundle, const struct spec *s, int rootmnt);
void rootfs_inside(const struct spec *s);

/* userns.c — the optional user namespace (SPEC.md `userns`). */
pid_t userns_clone(int netfd);
int userns_prepare(pid_t child, const struct spec *s);
int userns_send(int sock, int mnt);
int userns_recv(int sock);
void userns_become_root(int kill_with_parent);

/* init.c */
__attribute__((noreturn)) void container_init(const struct spec *s, int status_fd, int tty_sock);
/* Blocks SIGCHLD and the forwarded signals (with handlers: a namespace's init gets only
 * signals it handles), for init_wait's sigwaitinfo. */
void init_block_signals(sigset_t *set);
/* PID 1's loop: forwards signals to `app`, reaps every child, exits with app's status
 * (raw wait status written to status_fd first when it is >= 0). */
__attribute__((noreturn)) void init_wait(pid_t app, const sigset_t *set, int status_fd);

/* tty.c — `run`'s terminal (SPEC.md `tty`): the init creates it in the container's devpts
 * and sends the master end to the launcher, the app makes it its controlling terminal,
 * the launcher relays it to its own stdio. */
int tty_create(const struct spec *s, int sock);
void tty_attach(int slave);
int tty_control_fd(void);
int tty_relay(pid_t init, int master, int ctl, const sigset_t *set);

/* process.c: become the app (credentials, cwd, caps, no_new_privs, seccomp, exec). */
__attribute__((noreturn)) void exec_process(const struct proc *p);
/* execve argv[0] through the PATH in env; exits 127/126 as a shell when it cannot. */
__attribute__((noreturn)) void exec_path(char **argv, char **env);

/* caps.c: the bounding set must shrink before the uid switch, capset after it. */
int cap_parse(const char *list, uint64_t *out);
void caps_drop_bounding(uint64_t keep);
void caps_set(uint64_t keep);
extern const uint64_t CAPS_DOCKER_DEFAULT;

/* sealexe.c: re-exec from a private read-only mount of ourselves (CVE-2019-5736). */
void exe_reexec_readonly(char **argv);

/* seccomp.c */
void seccomp_apply(void);

/* signals forwarded to the container (SPEC.md "Commands" / "Inside the container"). */
extern const int FORWARDED_SIGNALS[6];

/* shim.c: signals blocked for sigwaitinfo; wait for child forwarding them. */
void block_signals(sigset_t *set);
int forward_until_exit(pid_t child, const sigset_t *set);

/* shim.c / exec.c: the commands. */
int cmd_run(const char *bundle);
int cmd_start(const char *bundle);
int cmd_supervise(const char *bundle, char **argv);
int cmd_exec(const char *bundle, const char *execspec);
int cmd_init(char **argv);

/* log.c — the bundle's `log`, kept to two generations of `log-max` bytes (SPEC.md). */
struct logfile {
	int fd;
	long long size, max;
	char path[4200];
};
void logfile_open(struct logfile *lf, const char *bundle);
struct logstream;
struct logstream *log_open(int fd, const char *tag);
int log_pump(struct logstream *ls, struct logfile *lf); /* returns 0 at EOF */
void log_flush(struct logstream *ls, struct logfile *lf);

#endif
