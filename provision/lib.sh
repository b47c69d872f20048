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
