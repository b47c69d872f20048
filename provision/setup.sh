#!/usr/bin/env bash
# One command to install and start paas on a fresh Debian/Ubuntu box, as root. Idempotent:
# run it again on a newer checkout to upgrade (the daemon restarts; apps keep serving,
# since containers and the router outlive it). Options given once are remembered in
# <data-dir>/setup.env, so a bare re-run upgrades the same install.
#
#   bash provision/setup.sh [--data-dir DIR] [--domain D] [--http-port P] [--https-port P] [--api-port P] [--runtime native|runc]
#                           [--router haproxy|node (the data plane; default: the daemon's, haproxy)]
#                           [--ssh-port P (git over SSH, default 2222; 22 once the system's sshd moved)]
#                           [--run-dir DIR] [--log-dir DIR] [--bin-link PATH] [--base-images busybox,debian,node]
#                           [--tls-cert FILE --tls-key FILE]
#   bash provision/setup.sh --uninstall [--purge] [--data-dir DIR]
#
# --run-dir / --log-dir: where the pid file and the daemon log go when systemd does not run
# (default /run/paas and /var/log/paas for the default data dir, else <data-dir>/run and
# <data-dir>/log, so a second install on a test data dir never touches the real one's).
# --tls-cert/--tls-key: the API port's certificate; without them setup makes a self-signed one
# for the box's names and addresses (<data-dir>/tls/api.{crt,key}) and prints its fingerprint
# for `paas login --fingerprint`.
set -euo pipefail
PAAS_SRC=$(cd "$(dirname "$0")/.." && pwd)
export PAAS_SRC
. "$PAAS_SRC/provision/lib.sh"

DEFAULT_DATA_DIR=/var/lib/paas
DATA_DIR=$DEFAULT_DATA_DIR
UNINSTALL=0
PURGE=0
declare -A OPT=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data-dir|--domain|--http-port|--https-port|--api-port|--ssh-port|--runtime|--router|--run-dir|--log-dir|--bin-link|--base-images|--tls-cert|--tls-key)
      [ $# -ge 2 ] || { echo "setup: $1 needs a value" >&2; exit 2; }
      if [ "$1" = --data-dir ]; then DATA_DIR=$2; else OPT[${1#--}]=$2; fi
      shift 2 ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "setup: unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "setup: run as root" >&2; exit 1; }
case "$DATA_DIR" in /*) ;; *) echo "setup: --data-dir must be an absolute path" >&2; exit 2 ;; esac
DATA_DIR=${DATA_DIR%/}

# What the last run chose, then what this run says (the command line wins).
SETUP_ENV="$DATA_DIR/setup.env"
declare -A SAVED=()
if [ -f "$SETUP_ENV" ]; then
  while IFS='=' read -r k v; do
    case "$k" in domain|http-port|https-port|api-port|ssh-port|runtime|router|run-dir|log-dir|bin-link|base-images|tls-cert|tls-key) SAVED[$k]=$v ;; esac
  done <"$SETUP_ENV"
fi
opt() { echo "${OPT[$1]:-${SAVED[$1]:-$2}}"; }
if [ "$DATA_DIR" = "$DEFAULT_DATA_DIR" ]; then run_default=/run/paas; log_default=/var/log/paas; else run_default=$DATA_DIR/run; log_default=$DATA_DIR/log; fi
DOMAIN=$(opt domain "${PAAS_DOMAIN:-localhost}")
HTTP_PORT=$(opt http-port 80)
HTTPS_PORT=$(opt https-port 443)
API_PORT=$(opt api-port 7070)
SSH_PORT=$(opt ssh-port 2222)
RUNTIME=$(opt runtime native)
# Empty: the daemon's default plane. A changed one takes over from the running plane.
ROUTER=$(opt router "")
RUN_DIR=$(opt run-dir "$run_default")
LOG_DIR=$(opt log-dir "$log_default")
BIN_LINK=$(opt bin-link /usr/local/bin/paas)
BASE_IMAGES=$(opt base-images busybox,debian,node)
TLS_CERT=$(opt tls-cert "$DATA_DIR/tls/api.crt")
TLS_KEY=$(opt tls-key "$DATA_DIR/tls/api.key")
for p in "$HTTP_PORT" "$API_PORT" "$SSH_PORT"; do
  [[ "$p" =~ ^[0-9]{1,5}$ ]] && [ "$p" -ge 1 ] && [ "$p" -le 65535 ] || { echo "setup: bad port $p" >&2; exit 2; }
done
case "$RUNTIME" in native|runc) ;; *) echo "setup: --runtime must be native or runc, not $RUNTIME" >&2; exit 2 ;; esac
case "$ROUTER" in ''|haproxy|node) ;; *) echo "setup: --router must be haproxy or node, not $ROUTER" >&2; exit 2 ;; esac

PIDFILE=$RUN_DIR/daemon.pid
LOGFILE=$LOG_DIR/daemon.log
# One systemd unit per data dir: the default install is paas.service, others get a suffix.
if [ "$DATA_DIR" = "$DEFAULT_DATA_DIR" ]; then UNIT_NAME=paas.service; else UNIT_NAME="paas-$(echo "$DATA_DIR" | sha256sum | cut -c1-8).service"; fi
UNIT=/etc/systemd/system/$UNIT_NAME
has_systemd() { [ -d /run/systemd/system ]; }

# The pid file's process, if it is still our daemon (a stale file may name a reused pid).
daemon_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid=$(cat "$PIDFILE")
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "daemon --data-dir $DATA_DIR " || return 1
  echo "$pid"
}

stop_daemon() {
  if has_systemd && [ -f "$UNIT" ]; then systemctl stop "$UNIT_NAME" || true; fi
  local pid
  if pid=$(daemon_pid); then
    # SIGTERM: the daemon closes its listeners and exits; the router and the containers
    # are detached on purpose and keep serving until the next daemon adopts them.
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}

api_ping() {
  [ -f "$DATA_DIR/admin-token" ] || return 1
  # The token goes in a header file, not argv, so `ps` never shows it.
  curl -fsS -m 1 -H @<(printf 'Authorization: Bearer %s\n' "$(cat "$DATA_DIR/admin-token")") \
    "http://127.0.0.1:$API_PORT/api/ping" >/dev/null 2>&1
}

if [ "$UNINSTALL" = 1 ]; then
  [ -d "$DATA_DIR" ] || { echo "setup: no install at $DATA_DIR" >&2; exit 1; }
  stop_daemon
  if has_systemd && [ -f "$UNIT" ]; then systemctl disable "$UNIT_NAME" || true; rm -f "$UNIT"; systemctl daemon-reload || true; fi
  use_node
  # The router and the app containers outlive the daemon by design; uninstall ends them,
  # through the runtime itself (shims, cgroups, netns, overlay mounts and IP leases).
  # Either data plane: the node router, or haproxy (one process; a master-worker pair of an
  # older paas: its master, which its worker follows).
  for pidfile in "$DATA_DIR/router/router.pid" "$DATA_DIR/router/haproxy/haproxy.pid"; do
    [ -f "$pidfile" ] || continue
    rpid=$(cat "$pidfile")
    if [[ "$rpid" =~ ^[0-9]+$ ]] && kill -0 "$rpid" 2>/dev/null; then
      kill -TERM "$rpid"
      for _ in $(seq 1 50); do kill -0 "$rpid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$rpid" 2>/dev/null || true
    fi
  done
  PAAS_DATA_DIR=$DATA_DIR PAAS_RUNTIME=$RUNTIME node --disable-warning=ExperimentalWarning --input-type=module -e "
    const { createRuntime } = await import('$PAAS_SRC/src/runtime/index.ts');
    const rt = createRuntime(process.env.PAAS_RUNTIME, { dataDir: process.env.PAAS_DATA_DIR });
    let n = 0;
    for (const c of await rt.list()) { await rt.remove(c.id, { force: true }); n++; }
    console.log('stopped ' + n + ' container(s)');
  "
  # The bridge is shared by every install on the box: remove it only when nothing uses it.
  if ip link show paas0 >/dev/null 2>&1 && [ -z "$(ip -o link show master paas0 2>/dev/null)" ]; then ip link del paas0 || true; fi
  if [ -L "$BIN_LINK" ] && [ "$(readlink -f "$BIN_LINK")" = "$(readlink -f "$PAAS_SRC/bin/paas")" ]; then rm -f "$BIN_LINK"; fi
  rm -f "$PIDFILE"
  if [ "$PURGE" = 1 ]; then
    # Anything still mounted under the data dir (a build interrupted long ago) goes first.
    awk -v d="$DATA_DIR/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" || true; done
    rm -rf "$DATA_DIR"
    [ "$RUN_DIR" = /run/paas ] && rm -rf "$RUN_DIR"
    echo "paas removed, data dir $DATA_DIR purged"
  else
    echo "paas removed; data kept in $DATA_DIR (use --purge to delete it)"
  fi
  exit 0
fi

echo "== packages"
apt_ensure ca-certificates curl git make gcc libc6-dev libseccomp-dev pkg-config iproute2 nftables iptables \
  runc busybox-static debootstrap attr openssl haproxy
# paas runs its own haproxy (`--router haproxy`, one per data dir); Debian's unit would only
# hold an idle copy in memory.
if has_systemd; then systemctl disable --now haproxy.service 2>/dev/null || true; fi
use_node
echo "== npm dependencies"
npm_ensure
echo "== native/"
make -s -C "$PAAS_SRC/native"
mkdir -p "$DATA_DIR" "$RUN_DIR" "$LOG_DIR"
chmod 0700 "$DATA_DIR"
{
  echo "domain=$DOMAIN"; echo "http-port=$HTTP_PORT"; echo "https-port=$HTTPS_PORT"; echo "api-port=$API_PORT"; echo "ssh-port=$SSH_PORT"; echo "runtime=$RUNTIME"
  echo "router=$ROUTER"
  echo "run-dir=$RUN_DIR"; echo "log-dir=$LOG_DIR"; echo "bin-link=$BIN_LINK"; echo "base-images=$BASE_IMAGES"
  echo "tls-cert=$TLS_CERT"; echo "tls-key=$TLS_KEY"
} >"$SETUP_ENV.tmp" && mv "$SETUP_ENV.tmp" "$SETUP_ENV"
echo "== base images ($BASE_IMAGES)"
"$PAAS_SRC/provision/base-images" --data-dir "$DATA_DIR" --only "$BASE_IMAGES"
echo "== network (paas0)"
# The runtime creates the bridge on demand too; doing it here makes a box without bridge or
# NAT support fail at setup, not at the first push.
PAAS_DATA_DIR=$DATA_DIR node --disable-warning=ExperimentalWarning --input-type=module -e "
  const { Network } = await import('$PAAS_SRC/src/runtime/index.ts');
  const net = new Network({ dataDir: process.env.PAAS_DATA_DIR });
  try { console.log(net.bridge + ' ' + net.gateway + ', outbound NAT: ' + await net.ensureBridge()); } finally { net.close(); }
"
mkdir -p "$(dirname "$BIN_LINK")"
ln -sfn "$PAAS_SRC/bin/paas" "$BIN_LINK"

echo "== TLS certificate of the API port"
# Self-signed for every name and address the box answers on, made once (delete the two files
# to make a new one, e.g. after an address change). Clients pin it by its fingerprint (paas
# login), so no CA is involved; a certificate given with --tls-cert is used as it is.
if [ ! -f "$TLS_CERT" ] || [ ! -f "$TLS_KEY" ]; then
  if [ "$TLS_CERT" != "$DATA_DIR/tls/api.crt" ]; then echo "setup: --tls-cert $TLS_CERT / --tls-key $TLS_KEY: no such file" >&2; exit 2; fi
  mkdir -p "$DATA_DIR/tls" && chmod 0700 "$DATA_DIR/tls"
  san="DNS:localhost,IP:127.0.0.1,IP:::1"
  for n in "$(hostname)" "$(hostname -f 2>/dev/null || true)" "$DOMAIN"; do
    [[ "$n" =~ ^[A-Za-z0-9.-]+$ ]] && [[ ! "$n" =~ ^[0-9.]+$ ]] && [[ ",$san," != *",DNS:$n,"* ]] && san="$san,DNS:$n"
  done
  for a in $(ip -o addr show scope global 2>/dev/null | awk '{ sub(/\/.*/, "", $4); print $4 }'); do
    [[ ",$san," != *",IP:$a,"* ]] && san="$san,IP:$a"
  done
  # umask 077: the key is 0600 from its first byte.
  ( umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -subj "/CN=$(hostname)" -addext "subjectAltName=$san" \
      -keyout "$TLS_KEY.tmp" -out "$TLS_CERT.tmp" 2>/dev/null
    mv "$TLS_KEY.tmp" "$TLS_KEY" && mv "$TLS_CERT.tmp" "$TLS_CERT" )
  echo "made a self-signed certificate for $san"
fi
chmod 0600 "$TLS_KEY"
TLS_FINGERPRINT=$(openssl x509 -noout -fingerprint -sha256 -in "$TLS_CERT" | sed 's/^.*=/SHA256:/')
echo "fingerprint: $TLS_FINGERPRINT"

echo "== daemon"
ARGS=(daemon --data-dir "$DATA_DIR" --api-port "$API_PORT" --http-port "$HTTP_PORT" --https-port "$HTTPS_PORT" --ssh-port "$SSH_PORT" --domain "$DOMAIN" --runtime "$RUNTIME"
  --tls-cert "$TLS_CERT" --tls-key "$TLS_KEY")
if [ -n "$ROUTER" ]; then ARGS+=(--router "$ROUTER"); fi
# Upgrade: the old daemon stops, the new one adopts the running router and containers; the
# router keeps answering in between (ARCHITECTURE.md: the front door outlives the daemon).
stop_daemon
if has_systemd; then
  sed -e "s|@PAAS@|$PAAS_SRC/bin/paas|" -e "s|@ARGS@|${ARGS[*]}|" "$PAAS_SRC/provision/paas.service" >"$UNIT"
  systemctl daemon-reload
  systemctl enable "$UNIT_NAME"
  systemctl restart "$UNIT_NAME"
else
  # No systemd (containers, minimal boxes): a detached process in its own session with a
  # pid file and a log. setsid: the daemon must not die with this shell's terminal.
  # Each (re)start keeps one previous log once it passes 10 MiB, so upgrades bound its size.
  if [ -f "$LOGFILE" ] && [ "$(stat -c %s "$LOGFILE")" -gt $((10 << 20)) ]; then mv -f "$LOGFILE" "$LOGFILE.1"; fi
  setsid "$PAAS_SRC/bin/paas" "${ARGS[@]}" >>"$LOGFILE" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
fi

# PAAS_SETUP_WAIT: seconds to wait for the daemon's first answer (adopting many containers
# after an upgrade takes a while).
deadline=$((SECONDS + ${PAAS_SETUP_WAIT:-60}))
while [ $SECONDS -lt $deadline ]; do
  api_ping && break
  # Alive is enough here: right after the fork the process may not have exec'd the daemon yet.
  if ! has_systemd && ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then break; fi
  sleep 0.2
done
# The answer must come from the daemon just started, not from whatever else holds the port.
if ! api_ping || { ! has_systemd && ! daemon_pid >/dev/null; }; then
  echo "setup: the daemon did not answer on port $API_PORT; the end of $(has_systemd && echo "journalctl -u $UNIT_NAME" || echo "$LOGFILE"):" >&2
  if has_systemd; then journalctl -u "$UNIT_NAME" -n 20 --no-pager >&2 || true; else tail -n 20 "$LOGFILE" >&2 2>/dev/null || true; fi
  # A daemon that cannot serve must not linger holding the data dir.
  stop_daemon
  exit 1
fi

HOST=$(hostname -f 2>/dev/null || echo localhost)
# The SSH host key's fingerprint (ssh-keygen -lf form), for users to check on first connect.
SSH_FP=$(PAAS_API="http://127.0.0.1:$API_PORT" PAAS_DATA_DIR="$DATA_DIR" "$PAAS_SRC/bin/paas" ssh-keys:host | sed -n 1p | cut -d" " -f2)
cat <<EOT

paas is running (data dir $DATA_DIR$(has_systemd && echo ", unit $UNIT_NAME" || echo ", pid $(cat "$PIDFILE"), log $LOGFILE")).
  admin token:  $DATA_DIR/admin-token   (export PAAS_TOKEN=\$(cat $DATA_DIR/admin-token))
  dashboard:    https://$HOST:$API_PORT/   (http://127.0.0.1:$API_PORT/ on this box)
  apps:         http://<app>.$DOMAIN:$HTTP_PORT/
  TLS:          $TLS_CERT, fingerprint $TLS_FINGERPRINT
  from a laptop: paas login https://$HOST:$API_PORT --fingerprint $TLS_FINGERPRINT
                paas git:remote <app> && git push paas main
  on this box:  git remote add paas http://paas:\$(cat $DATA_DIR/admin-token)@127.0.0.1:$API_PORT/<app>.git
                git push paas main
  ssh push:     paas ssh-keys:add NAME < ~/.ssh/id_ed25519.pub
                git remote add paas ssh://git@$HOST:$SSH_PORT/<app>.git
  ssh host key: $SSH_FP (ED25519)
EOT
