#!/usr/bin/env bash
# The whole test suite, from a fresh Debian box: installs what it needs, builds native/,
# prepares the cached test images, then type-checks and runs every test as root.
#   bash provision/test.sh [vitest args…]
set -euo pipefail
PAAS_SRC=$(cd "$(dirname "$0")/.." && pwd)
export PAAS_SRC
cd "$PAAS_SRC"
. provision/lib.sh

[ "$(id -u)" = 0 ] || { echo "provision/test.sh: run as root (containers, cgroups, netns)" >&2; exit 1; }

apt_ensure ca-certificates curl git make gcc libc6-dev libseccomp-dev pkg-config openssh-client \
  attr iproute2 nftables iptables runc busybox-static skopeo umoci debootstrap hyperfine wrk nginx chromium openssl haproxy \
  pebble apache2-utils
# test/e2e/docker-registry.test.ts and src/scheduler/swarm.test.ts use it, each with a dockerd of
# its own; paas talks to Docker only with --scheduler swarm (docs/scaling.md). Debian's
# docker-registry (distribution) is the pull tests' stand-in for Docker Hub and private
# registries (test/helpers/registry.ts: a child process of its own per test; htpasswd from
# apache2-utils for its Basic auth), not the service its package would start.
apt_ensure_stopped docker.io containerd docker-registry
use_node
npm_ensure
make -s -C native
provision/test-rootfs >/dev/null

echo "== tsc --noEmit"
node_modules/.bin/tsc --noEmit -p .
echo "== prettier --check"
node_modules/.bin/prettier --check --log-level warn src test bench '*.json' '*.ts'
echo "== madge --circular"
node_modules/.bin/madge --circular --extensions ts src >/dev/null || node_modules/.bin/madge --circular --extensions ts src
echo "== vitest"
exec node_modules/.bin/vitest run "$@"
