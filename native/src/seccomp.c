/* The container's seccomp filter: an allowlist with the effect of Docker's default profile
 * (moby profiles/seccomp/default.json), compiled from ../seccomp.list at build time by
 * tools/seccomp-gen.c (see both for what is allowed and why). Loading a ready program
 * keeps libseccomp's compiler off the start path. seccomp(2). */
#include "paas.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>

#include "seccomp-bpf.h"

/* Called last before execve: every syscall made after this is subject to the filter. */
void seccomp_apply(void)
{
	struct sock_fprog prog = {
		sizeof SECCOMP_PROGRAM / sizeof *SECCOMP_PROGRAM,
		(struct sock_filter *)SECCOMP_PROGRAM,
	};
	/* no flags: no TSYNC (one thread here), no SPEC_ALLOW (keep the kernel's default
	 * speculative-store-bypass mitigation for seccomp'd tasks, as runc) */
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		die("seccomp", "load: %m");
}
