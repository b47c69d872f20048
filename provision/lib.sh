# Shared helpers for provision scripts. Sourced, not run.

# apt_ensure PKG…: installs the Debian packages that are missing, once; idempotent and quiet
# when everything is present, so the test command can call it on every run.
apt_ensure() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "provision: apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# apt_ensure_stopped PKG…: apt_ensure for packages whose install scripts would start a system
# service. docker.io would start the host's dockerd, which adds iptables rules (FORWARD policy
# DROP) and a bridge that break container networking; its test starts a private one instead.
# A policy-rc.d answering 101 ("action forbidden by policy", init-system-helpers'
# README.policy-rc.d) keeps invoke-rc.d and deb-systemd-invoke from starting anything; under
# systemd the units of what this call installed are disabled too, so a reboot starts nothing.
# A package that was already installed is left as the operator set it up.
apt_ensure_stopped() {
  local policy=/usr/sbin/policy-rc.d ours=0 rc=0 new=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || new+=("$p")
  done
  [ ${#new[@]} -eq 0 ] && return 0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && ours=1
  fi
  apt_ensure "${new[@]}" || rc=$?
  [ "$ours" = 1 ] && rm -f "$policy"
  if [ "$rc" = 0 ] && [ -d /run/systemd/system ]; then
    for p in "${new[@]}"; do
      dpkg -L "$p" | grep -E '^/lib/systemd/system/[^/]+\.(service|socket)$' | xargs -r -n1 basename |
        xargs -r systemctl disable --now --quiet || true
    done
  fi
  return "$rc"
}

# use_node: puts Node >= 24 (provision/node) first on PATH.
use_node() {
  local node
  node=$("$PAAS_SRC/provision/node")
  PATH="$(dirname "$node"):$PATH"
  export PATH
}

# npm_ensure: `npm ci` when package-lock.json changed since the last install.
npm_ensure() {
  local stamp="$PAAS_SRC/node_modules/.paas-lock-sha"
  local want
  want=$(sha256sum "$PAAS_SRC/package-lock.json" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  (cd "$PAAS_SRC" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
}
