#!/usr/bin/env bash
# Builds the Debian package: configures BUILD_DIR (default build/) for /usr,
# builds, and runs CPack's DEB generator. Prints the path of the .deb
# (BUILD_DIR/package/patchswarm_VERSION_ARCH.deb). Extra arguments go to CMake.
# Needs dpkg-shlibdeps (dpkg-dev) and help2man: scripts/install-deps.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$here/build}
"$here/scripts/build.sh" -DCMAKE_INSTALL_PREFIX=/usr "$@"
"$here/scripts/make-deb.sh" "$build"
