#!/usr/bin/env bash
# CTest package_deb: builds the .deb from this build (scripts/make-deb.sh) and
# checks its control data: name, version, dependencies found by dpkg-shlibdeps,
# the maintainer scripts and the conffile.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: check_deb.sh BUILD_DIR VERSION}
version=${2:?usage: check_deb.sh BUILD_DIR VERSION}
fail() { echo "check_deb: $*" >&2; exit 1; }
deb=$("$here/scripts/make-deb.sh" "$build")
echo "check_deb: $deb"
[ "$(dpkg-deb -f "$deb" Package)" = patchswarm ] || fail "Package is not patchswarm"
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "Version is $(dpkg-deb -f "$deb" Version), not $version"
depends=$(dpkg-deb -f "$deb" Depends)
echo "check_deb: Depends: $depends"
for lib in libc6 libuv1 libsodium23 libopendht2 libspdlog1 libfmt; do
  grep -q "$lib" <<<"$depends" || fail "Depends does not name $lib (dpkg-shlibdeps did not run?): $depends"
done
ctrl=$(mktemp -d)
trap 'rm -rf "$ctrl"' EXIT
dpkg-deb -e "$deb" "$ctrl"
for s in postinst prerm postrm; do [ -x "$ctrl/$s" ] || fail "no executable $s"; done
grep -qx /etc/patchswarm/patchswarm.toml "$ctrl/conffiles" || fail "/etc/patchswarm/patchswarm.toml is not a conffile"
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/patchswarm ./usr/lib/systemd/system/patchswarm.service ./usr/lib/sysusers.d/patchswarm.conf \
         ./usr/lib/tmpfiles.d/patchswarm.conf ./etc/patchswarm/patchswarm.toml ./usr/share/man/man1/patchswarm.1.gz \
         ./usr/share/bash-completion/completions/patchswarm; do
  grep -q " $f\$" <<<"$contents" || grep -q " ${f/usr\/lib\/systemd/lib\/systemd}\$" <<<"$contents" || fail "the package has no $f"
done
# libpatchswarm (docs/embedding.md): the library, its header, pkg-config file and CMake package; a shlibs
# file and the ldconfig trigger.
for f in 'usr/lib/\(x86_64-linux-gnu/\)\?libpatchswarm\.so\.0' 'usr/include/patchswarm/patchswarm\.h' \
         'usr/lib/\(x86_64-linux-gnu/\)\?pkgconfig/patchswarm\.pc' \
         'usr/lib/\(x86_64-linux-gnu/\)\?cmake/patchswarm/patchswarmConfig\.cmake'; do
  grep -q " \./$f\( ->.*\)\?\$" <<<"$contents" || fail "the package has no $f"
done
grep -q '^libpatchswarm 0 patchswarm' "$ctrl/shlibs" || fail "no shlibs entry for libpatchswarm"
grep -q '^activate-noawait ldconfig' "$ctrl/triggers" || fail "no ldconfig trigger"
echo "check_deb: ok ($(du -k "$deb" | cut -f1) KiB)"
