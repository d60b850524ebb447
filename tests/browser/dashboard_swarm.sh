#!/usr/bin/env bash
# The dashboard's browser test (CTest "browser_dashboard", label browser): a
# 3-domain swarm of real daemons on loopback (origin + per domain a super-node
# and 2 devices), every super-node publishing its domain summary and the origin
# serving the dashboard; a patch is published, then headless Chromium (Debian's,
# driven by puppeteer-core from web/node_modules) loads the origin's page and
# check_dashboard.cjs compares the numbers the page shows with
# `patchswarm rollout NAME --json` until they agree (and the rollout is done).
# Saves a screenshot to BUILD_DIR/dashboard.png.
#
# Usage: tests/browser/dashboard_swarm.sh BUILD_DIR
# Exits 77 (skipped) when chromium or web/node_modules is missing, except
# under CI (CI=true), where that fails: scripts/install-deps.sh installs them.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
bin=$build/patchswarm
out=$build/dashboard-test
chromium=${CHROMIUM:-/usr/bin/chromium}
domains=(east west north)
devices=2

missing=""
[ -x "$chromium" ] || missing="$chromium"
[ -d "$here/web/node_modules/puppeteer-core" ] || missing="$missing web/node_modules/puppeteer-core (npm ci in web/)"
command -v node >/dev/null || missing="$missing node"
if [ -n "$missing" ]; then
  echo "browser test: missing $missing; scripts/install-deps.sh installs them" >&2
  [ -n "${CI:-}" ] && exit 1
  exit 77
fi

who="browser test"
. "$here/examples/daemons.sh"
daemons_begin patchswarm-dash

"$bin" keygen --secret "$out/operator.secret" --public "$out/operator.public" >/dev/null
head -c $((6 * 1024 * 1024 + 4321)) /dev/urandom > "$out/patch.bin"

dash=(--dashboard 127.0.0.1:0 --dashboard-interval 1s)
start origin origin core "${dash[@]}"
wait_ready origin
dht_port=$(sed -n 's/.* dht=\([0-9]*\).*/\1/p' "$out/origin.ready")
url=$(sed -n 's/.* dashboard=\([0-9.:]*\).*/http:\/\/\1\//p' "$out/origin.ready")
names=()
for d in "${domains[@]}"; do
  start "$d-super" super "$d" "${dash[@]}"
  names+=("$d-super")
  for i in $(seq 1 "$devices"); do start "$d-dev$i" peer "$d" --start-delay 1s; names+=("$d-dev$i"); done
done
for n in "${names[@]}"; do wait_ready "$n"; done
echo "origin dashboard: $url"
# Every node has a peer before the release, so that it hears the announcement.
for n in "${names[@]}"; do
  for _ in $(seq 150); do
    "$bin" status --json --socket "$sockdir/$n/control.sock" 2>/dev/null |
      python3 -c 'import json, sys; sys.exit(0 if json.load(sys.stdin)["node"]["peers"] >= 1 else 1)' && break
    sleep 0.2
  done
done

"$bin" publish --key "$out/operator.secret" --file "$out/patch.bin" --name dash-demo --version 1 \
  --mandatory --out "$out/patch.manifest" --announce --socket "$sockdir/origin/control.sock" >/dev/null

node "$here/tests/browser/check_dashboard.cjs" --web "$here/web" \
  --url "$url" --chromium "$chromium" --patchswarm "$bin" --socket "$sockdir/origin/control.sock" \
  --name dash-demo --domains "${domains[*]}" --expect $((devices + 1)) \
  --screenshot "$build/dashboard.png" --timeout "${TIMEOUT:-45}"
