/* Capability sets of the container process: capabilities(7), capset(2) without libcap. */
#include "paas.h"

#include <errno.h>
#include <linux/capability.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BIT(c) (1ULL << (c))

/* Docker's default set (moby oci/caps/defaults.go). */
const uint64_t CAPS_DOCKER_DEFAULT =
	BIT(CAP_CHOWN) | BIT(CAP_DAC_OVERRIDE) | BIT(CAP_FSETID) | BIT(CAP_FOWNER) |
	BIT(CAP_MKNOD) | BIT(CAP_NET_RAW) | BIT(CAP_SETGID) | BIT(CAP_SETUID) |
	BIT(CAP_SETFCAP) | BIT(CAP_SETPCAP) | BIT(CAP_NET_BIND_SERVICE) |
	BIT(CAP_SYS_CHROOT) | BIT(CAP_KILL) | BIT(CAP_AUDIT_WRITE);

static const char *const NAMES[] = {
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
	"SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
	"NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
	"SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
	"SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
	"AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
	"BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
};
#define NCAPS (sizeof NAMES / sizeof *NAMES)

int cap_parse(const char *list, uint64_t *out)
{
	uint64_t set = 0;
	const char *p = list;
	while (*p) {
		size_t len = strcspn(p, ",");
		if (len > 4 && !strncasecmp(p, "CAP_", 4)) {
			size_t i;
			for (i = 0; i < NCAPS; i++)
				if (strlen(NAMES[i]) == len - 4 && !strncasecmp(p + 4, NAMES[i], len - 4))
					break;
			if (i == NCAPS)
				return -1;
			set |= BIT(i);
		} else if (len) {
			return -1;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	*out = set;
	return 0;
}

/* Shrinks the bounding set to `keep` and clears the ambient set. Must run while the
 * process still has CAP_SETPCAP, i.e. before the uid switch. Once dropped from the
 * bounding set a capability can never come back, not even through a setuid-root or
 * file-capability binary in the image. */
static void drop_bounding(uint64_t keep)
{
	for (unsigned c = 0; c < 64; c++) {
		if (keep & BIT(c))
			continue;
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) {
			if (errno == EINVAL)
				break; /* past CAP_LAST_CAP of this kernel */
			die("capabilities", "drop bounding %u: %m", c);
		}
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		die("capabilities", "clear ambient: %m");
}

/* Permitted and effective become `keep`; inheritable stays empty, as runc and Docker do
 * since CVE-2022-24769 (a non-empty inheritable set would hand the set to any binary with
 * inheritable file capabilities, even after a uid change). */
static void set_caps(uint64_t keep)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof d);
	d[0].effective = d[0].permitted = (uint32_t)keep;
	d[1].effective = d[1].permitted = (uint32_t)(keep >> 32);
	if (syscall(SYS_capset, &h, d) < 0)
		die("capabilities", "capset: %m");
}

void caps_drop_bounding(uint64_t keep) { drop_bounding(keep); }
void caps_set(uint64_t keep) { set_caps(keep); }
