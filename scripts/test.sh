#!/usr/bin/env bash
# README command 2: install what is missing, build, run the whole test suite
# through CTest (unit tests, integration tests on loopback, fuzz corpus replays).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$here/build}
"$here/scripts/install-deps.sh"
"$here/scripts/build.sh" "$@"
cd "$build"
ctest --output-on-failure -j "${JOBS:-2}" --timeout 600
