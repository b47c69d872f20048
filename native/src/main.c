/* paas-shim: carries out a bundle prepared by src/runtime (SPEC.md). Must run as root. */
#include "paas.h"

#include <stdio.h>
#include <string.h>

static const char USAGE[] =
	"usage: paas-shim start BUNDLE | run BUNDLE | exec BUNDLE EXECSPEC |"
	" supervise BUNDLE -- CMD... | init -- CMD...";

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";
	/* Before anything of a container exists: the commands whose processes exec the
	 * container's files (sealexe.c). supervise execs runc and init is already the
	 * container's read-only /dev/.paas-init (runc backend). */
	if (!strcmp(cmd, "start") || !strcmp(cmd, "run") || !strcmp(cmd, "exec"))
		exe_reexec_readonly(argv);
	if (!strcmp(cmd, "start") && argc == 3)
		return cmd_start(argv[2]);
	if (!strcmp(cmd, "run") && argc == 3)
		return cmd_run(argv[2]);
	if (!strcmp(cmd, "exec") && argc == 4)
		return cmd_exec(argv[2], argv[3]);
	if (!strcmp(cmd, "supervise") && argc >= 5 && !strcmp(argv[3], "--"))
		return cmd_supervise(argv[2], argv + 4);
	if (!strcmp(cmd, "init") && argc >= 4 && !strcmp(argv[2], "--"))
		return cmd_init(argv + 3);
	die("usage", "%s", USAGE);
}
