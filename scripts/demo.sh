#!/usr/bin/env bash
# README command 1: install what is missing, build, run the local swarm demo.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/install-deps.sh"
"$here/scripts/build.sh"
exec "$here/examples/local_swarm.sh" "${BUILD_DIR:-$here/build}" "${DEMO_DIR:-$here/demo-out}"
