#!/usr/bin/env bash
# Runs CPack's DEB generator in an already built BUILD_DIR (scripts/package.sh
# builds first; CTest's package_deb calls this directly). Prints the .deb's path.
set -euo pipefail
build=${1:?usage: make-deb.sh BUILD_DIR}
rm -f "$build"/package/patchswarm_*.deb
if ! (cd "$build" && cpack -G DEB > "$build/package.log" 2>&1); then
  cat "$build/package.log" >&2
  echo "make-deb: cpack failed (log above, also in $build/package.log)" >&2
  exit 1
fi
deb=$(ls "$build"/package/patchswarm_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || { echo "make-deb: cpack ran but wrote no $build/package/patchswarm_*.deb" >&2; exit 1; }
echo "$deb"
