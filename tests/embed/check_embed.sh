#!/usr/bin/env bash
# CTest embed_install: installs this build into a temporary prefix, builds
# examples/embed against the INSTALLED libpatchswarm twice (its CMake package,
# then pkg-config), and runs each build against a real local origin
# (`patchswarm node --role origin --serve ...`): the example's embedded node
# downloads a small patch, which must match byte for byte.
# WRAP runs the C programs under a wrapper (WRAP="timeout 60", say). For a
# -DPS_SANITIZE=ON build, link the programs with -fsanitize=address instead:
# an LD_PRELOADed libasan hangs at exit in p11-kit's destructor.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: check_embed.sh BUILD_DIR [WORK_DIR]}
build=$(cd "$build" && pwd)
work=${2:-$(mktemp -d)}
rm -rf "$work" && mkdir -p "$work"
work=$(cd "$work" && pwd)
origin_pid=
cleanup() {
  if [ -n "$origin_pid" ]; then kill "$origin_pid" 2>/dev/null || true; wait "$origin_pid" 2>/dev/null || true; fi
  origin_pid=
}
trap cleanup EXIT
fail() { echo "check_embed: $*" >&2; for f in "$work"/*.log "$work"/*.err; do [ "$f" = "$work/install.log" ] && continue; [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }; done >&2; exit 1; }

# DESTDIR: the package's config goes to an absolute /etc/patchswarm, kept
# inside the staging root this way.
prefix=$work/root/opt/patchswarm
echo "check_embed: DESTDIR=$work/root cmake --install $build --prefix /opt/patchswarm"
DESTDIR=$work/root cmake --install "$build" --prefix /opt/patchswarm >"$work/install.log" 2>&1 || fail "install failed"
[ -f "$prefix/include/patchswarm/patchswarm.h" ] || fail "no header installed"
pc=$(find "$prefix" -name patchswarm.pc | head -1)
[ -n "$pc" ] || fail "no patchswarm.pc installed"
lib=$(find "$prefix" -name 'libpatchswarm.so*' -type f | head -1)
[ -n "$lib" ] || fail "no libpatchswarm.so installed"
echo "check_embed: $lib exports $(nm -D --defined-only "$lib" | awk '$2 == "T"' | grep -c ' ps_') ps_* functions" \
     "and $(nm -D --defined-only "$lib" | awk '$2 == "T"' | grep -vc ' ps_\| _init$\| _fini$' || true) others"

# The example, built against the installed files only (no path into this tree).
cmake -S "$here/examples/embed" -B "$work/ex-cmake" -DCMAKE_PREFIX_PATH="$prefix" >"$work/ex-cmake.log" 2>&1 \
  && cmake --build "$work/ex-cmake" >>"$work/ex-cmake.log" 2>&1 || fail "find_package build failed"
PKG_CONFIG_PATH=$(dirname "$pc") cmake -S "$here/examples/embed" -B "$work/ex-pc" -DUSE_PKG_CONFIG=ON \
  >"$work/ex-pc.log" 2>&1 && cmake --build "$work/ex-pc" >>"$work/ex-pc.log" 2>&1 || fail "pkg-config build failed"
grep -q -- "-lpatchswarm\|libpatchswarm" "$work/ex-pc/CMakeCache.txt" || fail "pkg-config did not name libpatchswarm"

# A 3 MiB + 77 B patch in 256 KiB segments, and a real origin serving it. Each
# run gets a fresh origin (and so a fresh DHT): the holder record of the run
# before, whose node is gone, would otherwise be tried first.
bin=$build/patchswarm
"$bin" keygen --secret "$work/op.secret" --public "$work/op.public" >/dev/null
head -c $((3 * 1024 * 1024 + 77)) /dev/urandom >"$work/patch.bin"
"$bin" publish --key "$work/op.secret" --file "$work/patch.bin" --name embedded --version 1 \
  --segment-size 262144 --out "$work/patch.manifest" >/dev/null
start_origin() {  # NAME
  cleanup
  "$bin" node --data "$work/origin-$1" --domain core --role origin --trust "$work/op.public" --listen 127.0.0.1:0 \
    --dht-port 0 --control none --serve "$work/patch.manifest=$work/patch.bin" >"$work/origin-$1.out" 2>"$work/origin-$1.err" &
  origin_pid=$!
  for _ in $(seq 100); do grep -q '^ready ' "$work/origin-$1.out" 2>/dev/null && break; sleep 0.1; done
  dht=$(sed -n 's/.* dht=\([0-9]*\).*/\1/p' "$work/origin-$1.out")
  [ -n "$dht" ] || fail "the origin did not start"
}

run_example() {  # NAME EXECUTABLE
  local name=$1 exe=$2
  start_origin "$name"
  mkdir -p "$work/$name"
  cat >"$work/$name/node.toml" <<TOML
[node]
role = "peer"
domain = "east"
data = "$work/$name/data"
trust = "$work/op.public"
listen = "127.0.0.1:0"
[dht]
port = 0
bootstrap = ["127.0.0.1:$dht"]
[device]
auto_fetch = false
[log]
level = "warn"
TOML
  local t0=$SECONDS
  ${WRAP:-} "$exe" "$work/$name/node.toml" "$work/patch.manifest" "$work/$name/out.bin" 25 >"$work/$name.log" 2>"$work/$name.err" \
    || fail "$name: the example exited $?"
  cmp -s "$work/patch.bin" "$work/$name/out.bin" || fail "$name: the downloaded file differs"
  grep -q "^progress embedded v1: 3145805 of 3145805 bytes, complete" "$work/$name.log" || fail "$name: no complete progress"
  grep -q "^complete " "$work/$name.log" || fail "$name: no complete line"
  echo "check_embed: $name: downloaded and verified in $((SECONDS - t0)) s ($(grep -c '^progress' "$work/$name.log") progress callbacks)"
}
# The error paths, with plain cc and pkg-config (no CMake).
cc -std=c11 -Wall -Wextra -Werror "$here/tests/embed/api_checks.c" -o "$work/api_checks" \
  $(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --cflags --libs patchswarm) \
  -Wl,-rpath,"$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --variable=libdir patchswarm)" >"$work/api.log" 2>&1 \
  || fail "cc with pkg-config failed"
mkdir -p "$work/api"
printf '[node]\ndomain = "east"\nrole = "peer"\ndata = "%s"\ntrust = "%s"\nlisten = "127.0.0.1:0"\n[dht]\nport = 0\n[log]\nlevel = "off"\n' \
  "$work/api/data" "$work/op.public" >"$work/api/node.toml"
sed "s|$work/op.public|$work/api/missing.public|" "$work/api/node.toml" >"$work/api/bad.toml"
${WRAP:-} "$work/api_checks" "$work/api/node.toml" "$work/api/bad.toml" "$work/patch.manifest" "$work/api" >>"$work/api.log" 2>&1 \
  || fail "api_checks failed"
echo "check_embed: $(tail -1 "$work/api.log")"

run_example find_package "$work/ex-cmake/embed_fetch"
run_example pkg_config "$work/ex-pc/embed_fetch"
echo "check_embed: ok"
