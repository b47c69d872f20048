#!/usr/bin/env bash
# End-to-end checks of paas-shim against SPEC.md, as root, on the busybox test rootfs:
# run/start/exec/supervise, the log/state/exit files, escapes, leftovers, bad specs.
# Creates a temp dir and v1 cgroups named paas-smoke-$$ and removes both on exit.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
make -s -C "$here" >/dev/null || exit 1
shim=$here/build/paas-shim
probe_dir=$here/build
rootfs=$("$here/../provision/test-rootfs") || exit 1
[ "$(id -u)" = 0 ] || { echo "smoke.sh: needs root" >&2; exit 1; }

tmp=$(mktemp -d /tmp/paas-smoke.XXXXXX)
cgname=paas-smoke-$$
controllers=(memory pids cpu cpuacct)
cgroup_lines=()
for c in "${controllers[@]}"; do
  d=/sys/fs/cgroup/$c/$cgname
  mkdir -p "$d" && cgroup_lines+=("cgroup $d")
done

pass=0 failed=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }

cleanup() {
  # containers started here die with their shims; give stragglers a moment
  for s in "$tmp"/*/state; do
    [ -f "$s" ] || continue
    pid=$(sed -n 's/.*"shimPid":\([0-9]*\).*/\1/p' "$s")
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  done
  sleep 0.2
  for c in "${controllers[@]}"; do rmdir "/sys/fs/cgroup/$c/$cgname" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

n=0
# bundle NAME [extra spec lines...]: an overlay bundle over the busybox rootfs
bundle() {
  local b=$tmp/$1; shift
  mkdir -p "$b/rootfs" "$b/upper" "$b/work"
  {
    echo "id smoke-$((n++))"
    echo "lower $rootfs"
    echo "upper $b/upper"
    echo "work $b/work"
    echo "hostname smoke.web.1"
    echo "env PATH=/usr/bin:/bin"
    printf '%s\n' "${cgroup_lines[@]}"
    printf '%s\n' "$@"
  } >"$b/spec"
  echo "$b"
}

no_mounts() { ! grep -q "$tmp" /proc/self/mountinfo; }

wait_file() { for _ in $(seq 100); do [ -f "$1" ] && return 0; sleep 0.05; done; return 1; }

# ---- run: exit codes, stdio, env, cwd, user ----
b=$(bundle run0 "arg true")
"$shim" run "$b"; check "run exits 0" [ $? = 0 ]
b=$(bundle run3 "arg sh" "arg -c" "arg exit 3")
"$shim" run "$b"; check "run exits with the app's code (3)" [ $? = 3 ]
b=$(bundle run9 "arg sh" "arg -c" 'arg kill -9 $$')
"$shim" run "$b"; check "run exits 128+9 when the app is killed" [ $? = 137 ]

b=$(bundle stdio "arg sh" "arg -c" "arg echo to-out; echo to-err >&2")
out=$("$shim" run "$b" 2>"$tmp/err")
check "stdout passes through" [ "$out" = to-out ]
check "stderr passes through" [ "$(cat "$tmp/err")" = to-err ]

b=$(bundle user "arg sh" "arg -c" 'arg echo "$(id -u):$(id -g):$(id -G)|$(pwd)|$(env | sort | tr "\n" " ")|$(hostname)|$(cat /proc/self/cgroup | head -1)"' \
  "uid 1000" "gid 1000" "groups 10" "cwd /home/app/new/dir" "env FOO=a\\tb")
out=$(FOO=leak SECRET=host "$shim" run "$b")
check "uid/gid/groups applied ($out)" [ "${out%%|*}" = "1000:1000:1000 10" ]
IFS='|' read -r _ cwd envs host cg <<<"$out"
check "cwd created and entered" [ "$cwd" = /home/app/new/dir ]
check "cwd owned by the user" [ "$(stat -c %u "$tmp/user/upper/home/app/new/dir")" = 1000 ]
check "env is exactly the spec's (escapes decoded)" [ "$envs" = "$(printf 'FOO=a\tb PATH=/usr/bin:/bin PWD=/home/app/new/dir SHLVL=1 ')" ]
check "hostname set" [ "$host" = smoke.web.1 ]
check "cgroup namespace rooted at the container ($cg)" bash -c "[[ '$cg' == *:/ ]]"

b=$(bundle pid1 "arg sh" "arg -c" 'arg echo $$ $(cat /proc/1/cmdline | tr "\0" " ")')
out=$("$shim" run "$b")
check "app is pid 2 under the shim's init ($out)" bash -c "[[ '$out' == '2 '*paas-shim* ]]"

b=$(bundle sig "arg sh" "arg -c" 'arg trap "echo got-term; exit 7" TERM; sleep 30 & wait')
"$shim" run "$b" >"$tmp/sigout" &
rp=$!
sleep 0.3
kill -TERM $rp
wait $rp; rc=$?
check "run forwards SIGTERM to the app (rc $rc)" [ $rc = 7 ]
check "the app saw the signal" grep -q got-term "$tmp/sigout"

b=$(bundle nope "arg /bin/nope")
msg=$("$shim" run "$b" 2>&1); rc=$?
check "missing binary exits 127 ($msg)" [ $rc = 127 ]
check "and says exec \"/bin/nope\"" [ "$msg" = 'exec "/bin/nope": No such file or directory' ]
b=$(bundle noexec "arg /etc/passwd")
"$shim" run "$b" 2>/dev/null; check "non-executable exits 126" [ $? = 126 ]
b=$(bundle pathsearch "arg busybox" "arg true")
"$shim" run "$b"; check "argv[0] resolved through the container's PATH" [ $? = 0 ]

# ---- escapes ----
b=$(bundle probe "arg /probe/escape-probe" "arg all" "mount $probe_dir	/probe	ro")
out=$("$shim" run "$b"); rc=$?
echo "$out" | sed 's/^/     /'
check "escape-probe: everything BLOCKED" [ $rc = 0 ]
check "escape-probe: no ALLOWED line" bash -c "! grep -q ALLOWED <<<'$out'"

# a symlink in the image must not carry a volume out of the root
b=$(bundle symlink "arg sh" "arg -c" "arg test -f /escape/inner/marker")
mkdir -p "$tmp/vol" && touch "$tmp/vol/marker"
ln -s "../../../../../../..$tmp/hostside" "$b/upper/escape"
echo "mount $tmp/vol	/escape/inner	ro" >>"$b/spec"
"$shim" run "$b"; rc=$?
check "volume through a symlink lands inside the root" [ $rc = 0 ]
check "nothing created on the host side of the symlink" [ ! -e "$tmp/hostside" ]
check "…but inside the rootfs" [ -d "$b/upper$tmp/hostside/inner" ]

b=$(bundle rovol "arg sh" "arg -c" "arg touch /v/x" "mount $tmp/vol	/v	ro")
"$shim" run "$b" 2>/dev/null; check "ro volume is read-only" [ $? != 0 ]
b=$(bundle rwvol "arg sh" "arg -c" "arg touch /v/x" "mount $tmp/vol	/v	rw")
"$shim" run "$b"; check "rw volume is writable" [ -f "$tmp/vol/x" ]
b=$(bundle roroot "arg sh" "arg -c" "arg touch /x" "readonly 1")
"$shim" run "$b" 2>/dev/null; check "readonly root" [ $? != 0 ]

echo "10.0.0.9 example.test" >"$tmp/hosts"
b=$(bundle hostsfile "arg cat" "arg /etc/hosts" "hosts $tmp/hosts")
check "hosts bound at /etc/hosts" [ "$("$shim" run "$b")" = "10.0.0.9 example.test" ]

check "no mount left on the host after run" no_mounts

# ---- start: detached, state/log/exit ----
b=$(bundle start "arg sh" "arg -c" 'arg echo line1; printf "a\134b\001"; echo; echo e1 >&2; printf partial; exec sleep 30')
state=$(timeout 5 "$shim" start "$b"); rc=$?
check "start exits 0 and prints the state ($state)" [ $rc = 0 ]
check "state file equals stdout" [ "$state" = "$(cat "$b/state")" ]
init=$(sed -n 's/.*"initPid":\([0-9]*\).*/\1/p' "$b/state")
shimpid=$(sed -n 's/.*"shimPid":\([0-9]*\).*/\1/p' "$b/state")
check "initStart is field 22 of /proc/<init>/stat" \
  grep -q "\"initStart\":\"$(awk '{print $22}' "/proc/$init/stat")\"" "$b/state"
check "shim is detached (session leader's child, not ours)" [ "$(ps -o ppid= -p "$shimpid" | tr -d ' ')" != $$ ]
check "init is in the memory cgroup" grep -qx "$init" "/sys/fs/cgroup/memory/$cgname/cgroup.procs"
echo "     shim RSS: $(grep -E 'VmRSS' "/proc/$shimpid/status" | tr -s ' \t' ' ')" \
  "(anon $(grep RssAnon "/proc/$shimpid/status" | awk '{print $2}') kB)"
check "shim holds no mount of the rootfs" no_mounts
check "the container's root is an overlay in its own namespace" \
  awk '$5 == "/" && / - overlay / { found = 1 } END { exit !found }' "/proc/$init/mountinfo"

# exec into it
cat >"$tmp/execspec" <<EOF
arg sh
arg -c
arg echo \$(hostname) \$(id -u) \$(pwd) \$(cat /proc/1/cmdline | tr "\\0" " " | cut -c1-40); exit 5
uid 1000
gid 1000
cwd /tmp
env PATH=/bin
EOF
out=$("$shim" exec "$b" "$tmp/execspec"); rc=$?
check "exec exits with the process's code" [ $rc = 5 ]
check "exec joins the container's namespaces ($out)" bash -c "[[ '$out' == 'smoke.web.1 1000 /tmp '*paas-shim* ]]"
printf 'arg /probe/escape-probe\narg all\n' >"$tmp/execprobe"
b2=$(bundle startprobe "arg sleep" "arg 30" "mount $probe_dir	/probe	ro")
"$shim" start "$b2" >/dev/null
out=$("$shim" exec "$b2" "$tmp/execprobe"); rc=$?
check "escape-probe through exec: everything BLOCKED" [ $rc = 0 ]
kill -KILL "$(sed -n 's/.*"initPid":\([0-9]*\).*/\1/p' "$b2/state")"

kill -TERM "$init"
wait_file "$b/exit"
check "exit file: killed by SIGTERM ($(cat "$b/exit" 2>/dev/null))" grep -q '"exitCode":143,"signal":15,"at":"' "$b/exit"
log=$(cat "$b/log")
echo "$log" | sed 's/^/     /'
check "log: timestamp with ms, stream, text" grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z stdout line1$' <<<"$log"
check "log: escapes" grep -qF 'stdout a\\b\x01' <<<"$log"
check "log: stderr" grep -q ' stderr e1$' <<<"$log"
check "log: partial last line flushed" grep -q ' stdout partial$' <<<"$log"
sleep 0.2
check "no mount left after the container exits" no_mounts

# long lines are split at 16 KiB
b=$(bundle long "arg sh" "arg -c" "arg head -c 40000 /dev/zero | tr '\\\\0' x; echo")
"$shim" start "$b" >/dev/null && wait_file "$b/exit"
check "a 40000-byte line becomes 16384+16384+7232" \
  [ "$(awk '{print length($3)}' "$b/log" | tr '\n' ' ')" = "16384 16384 7232 " ]

# the log stays bounded: past log-max it becomes log.1 (one older generation kept)
b=$(bundle chatty "arg sh" "arg -c" 'arg i=0; while [ $i -lt 3000 ]; do echo "line $i of a chatty app"; i=$((i+1)); done')
echo 20000 >"$b/log-max"
"$shim" start "$b" >/dev/null && wait_file "$b/exit"
size() { stat -c %s "$1" 2>/dev/null || echo 0; }
check "log rotates past log-max: log $(size "$b/log") and log.1 $(size "$b/log.1") bytes, within a line of 20000" \
  bash -c "[ $(size "$b/log") -lt 20100 ] && [ $(size "$b/log.1") -ge 20000 ] && [ $(size "$b/log.1") -lt 20100 ]"
check "the newest line is in log, and log.1 holds the lines just before it" \
  bash -c "tail -n1 '$b/log' | grep -q ' stdout line 2999 of a chatty app\$' && [ \$(( \$(tail -n1 '$b/log.1' | awk '{print \$4}') + 1 )) = \$(head -n1 '$b/log' | awk '{print \$4}') ]"

b=$(bundle startfail "arg /bin/nope")
msg=$("$shim" start "$b" 2>&1); rc=$?
check "start of a missing binary fails 127 ($msg)" [ $rc = 127 ]
check "…leaves no state and no process" [ ! -f "$b/state" ]

# ---- networks: none (only lo, up), host, a netns path; exec into a host-net container ----
b=$(bundle netnone "arg sh" "arg -c" "arg cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | tr '\\n' ' '; cat /sys/class/net/lo/operstate")
out=$("$shim" run "$b")
check "net none: only lo ($out)" [ "$out" = "lo unknown" ]
hostdevs=$(tail -n +3 /proc/net/dev | wc -l)
b=$(bundle nethost "arg sh" "arg -c" "arg tail -n +3 /proc/net/dev | wc -l" "net host")
check "net host: the host's interfaces" [ "$("$shim" run "$b")" = "$hostdevs" ]
b=$(bundle nethostexec "arg sleep" "arg 30" "net host")
"$shim" start "$b" >/dev/null
printf 'arg hostname\n' >"$tmp/es-host"
check "exec into a net host container" [ "$("$shim" exec "$b" "$tmp/es-host")" = smoke.web.1 ]
kill -KILL "$(sed -n 's/.*"initPid":\([0-9]*\).*/\1/p' "$b/state")"
if command -v ip >/dev/null; then
  ns=paas-smoke-$$
  ip netns add "$ns" && ip -n "$ns" link add smoke0 type veth peer name smoke1
  b=$(bundle netpath "arg sh" "arg -c" "arg ls /sys/class/net | tr '\\n' ' '" "net /run/netns/$ns")
  out=$("$shim" run "$b")
  check "net PATH joins that netns, sysfs shows its devices ($out)" bash -c "[[ '$out' == *smoke0* ]]"
  ip netns del "$ns"
fi

# ---- userns: container root is host 100000, layers idmapped, escapes still blocked ----
uvol=$tmp/uvol && mkdir -p "$uvol" && chown 100000:100000 "$uvol"
b=$(bundle userns "arg sh" "arg -c" "arg id -u; cat /proc/self/uid_map | tr -s ' '; stat -c %u /bin/busybox /home/app; touch /v/f /new" \
  "userns 100000:100000:65536" "mount $uvol	/v	rw")
out=$("$shim" run "$b" | tr '\n' '|')
check "userns: root inside, mapping, image owners unshifted ($out)" [ "$out" = "0| 0 100000 65536|0|1000|" ]
check "userns: a volume file is host 100000's" [ "$(stat -c %u "$uvol/f")" = 100000 ]
check "userns: copy-up/new files in the upper are host 100000's" [ "$(stat -c %u:%u "$b/upper" "$b/upper/new" | tr '\n' ' ')" = "100000:100000 100000:100000 " ]
check "userns: the image layer is untouched" [ "$(stat -c %u "$rootfs/bin/busybox")" = 0 ]
b=$(bundle uprobe "arg /probe/escape-probe" "arg all" "userns 100000:100000:65536" "mount $probe_dir	/probe	ro")
out=$("$shim" run "$b"); rc=$?
check "userns: escape-probe, everything BLOCKED" bash -c "[ $rc = 0 ] && ! grep -q ALLOWED <<<'$out'"
b=$(bundle uexec "arg sleep" "arg 30" "userns 100000:100000:65536" "mount $probe_dir	/probe	ro")
"$shim" start "$b" >/dev/null
printf 'arg sh\narg -c\narg id -u; touch /tmp/e\nuid 1000\ngid 1000\n' >"$tmp/es-user"
check "userns: exec runs as the mapped user" [ "$("$shim" exec "$b" "$tmp/es-user")" = 1000 ] && [ "$(stat -c %u "$b/upper/tmp/e")" = 101000 ]
check "userns: escape-probe through exec, everything BLOCKED" bash -c "'$shim' exec '$b' '$tmp/execprobe' >/dev/null"
uinit=$(sed -n 's/.*"initPid":\([0-9]*\).*/\1/p' "$b/state")
check "userns: the init is host uid 100000" grep -qP '^Uid:\t100000\t' "/proc/$uinit/status"
kill -KILL "$uinit"

# ---- run with a terminal (tty) ----
b=$(bundle tty "arg sh" "arg -c" 'arg trap "stty size" WINCH; tty; stty size; [ -t 0 ] && [ -t 2 ] && echo all-tty; ls -ln $(tty) | cut -c1-20; read x; echo "got $x"; sleep 1; exit 4' "uid 1000" "gid 1000" "tty 33 101")
out=$( (sleep 0.3; echo hello) | "$shim" run "$b" 3< <(sleep 0.6; echo "30 90"; sleep 1) ); rc=$?
out=$(tr -d '\r' <<<"$out")
check "tty: exit code passes through ($rc)" [ $rc = 4 ]
check "tty: the app's terminal is the container's /dev/pts/0" [ "$(sed -n 1p <<<"$out")" = /dev/pts/0 ]
check "tty: initial size from the spec" [ "$(sed -n 2p <<<"$out")" = "33 101" ]
check "tty: stdin, stdout and stderr are the terminal" [ "$(sed -n 3p <<<"$out")" = all-tty ]
check "tty: the terminal belongs to the app's user ($(sed -n 4p <<<"$out"))" bash -c "[[ '$(sed -n 4p <<<"$out")' == 'crw--w----    1 1000'* ]]"
check "tty: stdin reaches the app, echoed by the terminal" grep -qx 'got hello' <<<"$out"
check "tty: a resize line on fd 3 sets the size (SIGWINCH)" grep -qx '30 90' <<<"$out"
b=$(bundle ttyint "arg sh" "arg -c" 'arg echo ready; sleep 30; echo not-interrupted' "tty 24 80")
out=$( (sleep 0.5; printf '\003') | timeout 10 "$shim" run "$b" ); rc=$?
check "tty: ^C interrupts the foreground process (rc $rc)" bash -c "[ $rc = 130 ] && [[ '$out' != *not-interrupted* ]]"
b=$(bundle ttyflood "arg sh" "arg -c" 'arg head -c 300000 /dev/zero | tr "\\0" x; echo; echo end' "tty 24 80")
out=$(head -c 200000 /dev/zero | tr '\0' y | timeout 10 "$shim" run "$b" | tr -d '\r\n' | tr -d y | wc -c); rc=$?
check "tty: a flood of input while the app floods output does not deadlock ($out)" [ "$out" = 300003 ]
b=$(bundle ttystart "arg true" "tty 24 80")
msg=$("$shim" start "$b" 2>&1); rc=$?
check "tty: start refuses it ($msg)" bash -c "[ $rc = 125 ] && [[ '$msg' == *'tty: only for run'* ]]"

# ---- exec as a non-root user dies with its helper ----
b=$(bundle execdeath "arg sleep" "arg 30")
"$shim" start "$b" >/dev/null
# A number of our own: another smoke.sh running at the same time has its own sleeper.
nap=77$$
printf 'arg sleep\narg %s\nuid 1000\ngid 1000\n' "$nap" >"$tmp/es-sleep"
"$shim" exec "$b" "$tmp/es-sleep" & helper=$!
for _ in $(seq 50); do pgrep -fx "sleep $nap" >/dev/null && break; sleep 0.05; done
kill -KILL $helper; wait $helper 2>/dev/null
for _ in $(seq 20); do pgrep -fx "sleep $nap" >/dev/null || break; sleep 0.05; done
check "exec as uid 1000: the process dies with a killed helper" bash -c "! pgrep -fx 'sleep $nap' >/dev/null"
kill -KILL "$(sed -n 's/.*"initPid":\([0-9]*\).*/\1/p' "$b/state")"

# ---- supervise ----
b=$tmp/sup && mkdir -p "$b"
state=$("$shim" supervise "$b" -- sh -c 'echo sup-out; echo sup-err >&2; exit 6'); rc=$?
check "supervise exits 0 with the state" [ $rc = 0 ] && [ -n "$state" ]
wait_file "$b/exit"
check "supervise: exit file" grep -q '"exitCode":6,"signal":null' "$b/exit"
check "supervise: log" grep -q ' stdout sup-out$' "$b/log"
check "supervise: stderr log" grep -q ' stderr sup-err$' "$b/log"
check "supervise: CMD not found is 127" bash -c "'$shim' supervise '$b' -- /nonexistent 2>/dev/null; [ \$? = 127 ]"

# ---- bad specs ----
bad_spec() {
  local name=$1 want=$2; shift 2
  local b=$tmp/bad-$name
  mkdir -p "$b/rootfs"
  printf '%s\n' "$@" >"$b/spec"
  local msg rc
  msg=$("$shim" run "$b" 2>&1); rc=$?
  check "bad spec ($name) → 125 naming $want: $msg" bash -c "[ $rc = 125 ] && [[ '$msg' == *'$want'* ]]"
}
bad_spec unknown-key '"lowr"' "id x" "rootfs $rootfs" "lowr /x" "arg true"
bad_spec relative rootfs "id x" "rootfs relative/dir" "arg true"
bad_spec missing-rootfs rootfs "id x" "arg true"
bad_spec rootfs-gone rootfs "id x" "rootfs /nonexistent/rootfs" "arg true"
bad_spec no-arg arg "id x" "rootfs $rootfs"
bad_spec bad-id id "id X!" "rootfs $rootfs" "arg true"
bad_spec bad-mount mount "id x" "rootfs $rootfs" "arg true" "mount /tmp	rel	ro"
bad_spec bad-cap caps "id x" "rootfs $rootfs" "arg true" "caps CAP_NOPE"
bad_spec userns-host-root userns "id x" "lower $rootfs" "readonly 1" "arg true" "userns 0:100000:65536"
bad_spec userns-count userns "id x" "lower $rootfs" "readonly 1" "arg true" "userns 100000:100000:0"
bad_spec userns-garbage userns "id x" "lower $rootfs" "readonly 1" "arg true" "userns 100000:x:65536"
bad_spec userns-rwdir userns "id x" "rootfs $rootfs" "arg true" "userns 100000:100000:65536"
bad_spec bad-tty tty "id x" "rootfs $rootfs" "arg true" "tty 24x80"
bad_spec zero-tty tty "id x" "rootfs $rootfs" "arg true" "tty 0 80"
bad_spec userns-unmapped uid "id x" "lower $rootfs" "readonly 1" "arg true" "uid 1000" "userns 100000:100000:100"
msg=$("$shim" start "$tmp/bad-unknown-key" 2>&1); rc=$?
check "start with a bad spec → 125 ($msg)" [ $rc = 125 ]

check "no mount left at the end" no_mounts
echo "passed $pass, failed $failed"
[ $failed = 0 ]
