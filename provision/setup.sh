#!/usr/bin/env bash
# One command to install and start paas on a fresh Debian/Ubuntu box, as root. Idempotent:
# run it again on a newer checkout to upgrade (the daemon restarts; apps keep serving,
# since containers and the router outlive it).
#
#   bash provision/setup.sh [--data-dir DIR] [--domain D] [--http-port P] [--api-port P] [--runtime native|runc]
#   bash provision/setup.sh --uninstall [--purge]
set -euo pipefail
PAAS_SRC=$(cd "$(dirname "$0")/.." && pwd)
export PAAS_SRC
. "$PAAS_SRC/provision/lib.sh"

DATA_DIR=/var/lib/paas
DOMAIN=${PAAS_DOMAIN:-localhost}
HTTP_PORT=80
API_PORT=7070
RUNTIME=native
UNINSTALL=0
PURGE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --data-dir) DATA_DIR=$2; shift 2 ;;
    --domain) DOMAIN=$2; shift 2 ;;
    --http-port) HTTP_PORT=$2; shift 2 ;;
    --api-port) API_PORT=$2; shift 2 ;;
    --runtime) RUNTIME=$2; shift 2 ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "setup: unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "setup: run as root" >&2; exit 1; }

PIDFILE=/run/paas/daemon.pid
LOGFILE=/var/log/paas/daemon.log
UNIT=/etc/systemd/system/paas.service
has_systemd() { [ -d /run/systemd/system ]; }

stop_daemon() {
  if has_systemd && [ -f "$UNIT" ]; then systemctl stop paas.service || true; fi
  if [ -f "$PIDFILE" ]; then
    pid=$(cat "$PIDFILE")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
  fi
}

if [ "$UNINSTALL" = 1 ]; then
  stop_daemon
  if has_systemd && [ -f "$UNIT" ]; then systemctl disable paas.service || true; rm -f "$UNIT"; systemctl daemon-reload || true; fi
  # The router and app containers outlive the daemon by design; uninstall ends them too.
  [ -f "$DATA_DIR/router/router.pid" ] && kill -TERM "$(cat "$DATA_DIR/router/router.pid")" 2>/dev/null || true
  for state in "$DATA_DIR"/containers/*/state; do
    [ -f "$state" ] || continue
    pid=$(sed -n 's/.*"initPid":\([0-9]*\).*/\1/p' "$state")
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  done
  ip link del paas0 2>/dev/null || true
  rm -f /usr/local/bin/paas
  if [ "$PURGE" = 1 ]; then rm -rf "$DATA_DIR"; echo "paas removed, data dir $DATA_DIR purged"; else echo "paas removed; data kept in $DATA_DIR (use --purge to delete it)"; fi
  exit 0
fi

echo "== packages"
apt_ensure ca-certificates curl git make gcc libc6-dev libseccomp-dev pkg-config iproute2 nftables iptables \
  runc busybox-static debootstrap attr
use_node
echo "== npm dependencies"
npm_ensure
echo "== native/"
make -s -C "$PAAS_SRC/native"
mkdir -p "$DATA_DIR" /run/paas "$(dirname "$LOGFILE")"
chmod 0700 "$DATA_DIR"
echo "== base images"
"$PAAS_SRC/provision/base-images" --data-dir "$DATA_DIR"
ln -sf "$PAAS_SRC/bin/paas" /usr/local/bin/paas

echo "== daemon"
ARGS=(daemon --data-dir "$DATA_DIR" --api-port "$API_PORT" --http-port "$HTTP_PORT" --domain "$DOMAIN" --runtime "$RUNTIME")
stop_daemon
if has_systemd; then
  sed -e "s|@PAAS@|$PAAS_SRC/bin/paas|" -e "s|@ARGS@|${ARGS[*]}|" "$PAAS_SRC/provision/paas.service" >"$UNIT"
  systemctl daemon-reload
  systemctl enable --now paas.service
else
  # No systemd (containers, minimal boxes): a detached process with a pid file and a log.
  setsid nohup "$PAAS_SRC/bin/paas" "${ARGS[@]}" >>"$LOGFILE" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
fi

for _ in $(seq 1 150); do
  curl -fsS "http://127.0.0.1:$API_PORT/api/ping" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$API_PORT/api/ping" >/dev/null || { echo "setup: the daemon did not answer; see $LOGFILE" >&2; exit 1; }

cat <<EOT

paas is running.
  admin token:  $DATA_DIR/admin-token   (export PAAS_TOKEN=\$(cat $DATA_DIR/admin-token))
  dashboard:    http://$(hostname -f 2>/dev/null || echo localhost):$API_PORT/
  apps:         http://<app>.$DOMAIN:$HTTP_PORT/
  deploy:       git remote add paas http://paas:\$(cat $DATA_DIR/admin-token)@$(hostname -f 2>/dev/null || echo localhost):$API_PORT/<app>.git
                git push paas main
EOT
