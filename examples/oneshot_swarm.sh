#!/usr/bin/env bash
# The swarm with one-shot nodes: one origin and two domains on loopback, each
# node a `patchswarm fetch` process (no daemon). examples/local_swarm.sh is the
# same story told through daemons and their control sockets.
#
#   origin (domain "core")  serves a generated patch (32 MiB + change)
#   domain "east": 1 super-node + 3 devices      domain "west": 1 super-node + 3 devices
#
# Every node finds holders through the DHT (real OpenDHT nodes on 127.0.0.1/::1),
# downloads over encrypted streams, checks every segment against the signed
# manifest, and seeds for a while. The demo prints, per node, where its bytes
# came from and how long it took, and exits non-zero if any file differs.
#
# Usage: examples/oneshot_swarm.sh [BUILD_DIR] [OUT_DIR]
# Environment: PATCH_MIB (32), DOMAINS ("east west"), DEVICES_PER_DOMAIN (3),
# SEED_SECONDS (6); MAX_ORIGIN_X / MAX_IMPORT_X make the run fail when the origin
# sent, or a domain imported, more than that many copies of the patch.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
out=${2:-$here/demo-out}
bin=$build/patchswarm
size_mib=${PATCH_MIB:-32}
devices=${DEVICES_PER_DOMAIN:-3}
read -r -a domains <<<"${DOMAINS:-east west}"

[ -x "$bin" ] || { echo "demo: $bin not built; run scripts/demo.sh" >&2; exit 2; }
rm -rf "$out"
mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

echo "== operator: key, patch of ${size_mib} MiB + 123457 bytes, signed manifest"
"$bin" keygen --secret "$out/operator.secret" --public "$out/operator.public"
head -c $((size_mib * 1024 * 1024 + 123457)) /dev/urandom > "$out/patch.bin"
"$bin" publish --key "$out/operator.secret" --file "$out/patch.bin" --name ims-client \
  --version 1 --label demo --out "$out/patch.manifest"

echo "== origin"
"$bin" node --data "$out/origin" --listen 127.0.0.1:0 --dht-port 0 --domain core --role origin \
  --trust "$out/operator.public" --serve "$out/patch.manifest=$out/patch.bin" > "$out/origin.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q '^ready' "$out/origin.log" && break; sleep 0.1; done
ready=$(grep '^ready' "$out/origin.log") || { cat "$out/origin.log"; echo "demo: origin did not start" >&2; exit 1; }
dht_port=$(sed -n 's/.* dht=\([0-9]*\).*/\1/p' <<<"$ready")
echo "   $ready"

fetch() {  # name domain role seed-ratio
  ${WRAP:-} "$bin" fetch --data "$out/$1" --listen 127.0.0.1:0 --dht-port 0 --bootstrap "127.0.0.1:$dht_port" \
    --domain "$2" --role "$3" --trust "$out/operator.public" --manifest "$out/patch.manifest" \
    --out "$out/$1.bin" --seed-ratio "$4" --seed-seconds "${SEED_SECONDS:-6}" --timeout 120 \
    --stats-json "$out/$1.json" > "$out/$1.log" 2>&1 &
  fetchers+=($!)
  names+=("$1")
}

fetchers=()
names=()
t0=$(date +%s.%N)
echo "$t0" > "$out/release-time"  # the benchmark measures completions from here
echo "== super-nodes fetch early"
# Super-nodes are caches: they keep serving their domain (until stopped below).
for d in "${domains[@]}"; do SEED_SECONDS=600 fetch "$d-super" "$d" super 1000; done
nsuper=${#domains[@]}
# Super-nodes prefetch: devices join once their domain's cache holds the patch.
for _ in $(seq 600); do
  n=0; for d in "${domains[@]}"; do [ -f "$out/$d-super.json" ] && n=$((n + 1)); done
  [ "$n" -eq "$nsuper" ] && break; sleep 0.1
done
echo "== devices join"
for d in "${domains[@]}"; do for i in $(seq 1 "$devices"); do fetch "$d-dev$i" "$d" peer 1; done; done

fail=0
for i in "${!fetchers[@]}"; do
  [ "$i" -lt "$nsuper" ] && continue  # the super-nodes, stopped after the devices
  if ! wait "${fetchers[$i]}"; then echo "demo: ${names[$i]} failed: $(tail -1 "$out/${names[$i]}.log")" >&2; fail=1; fi
done
kill -TERM "${fetchers[@]:0:$nsuper}"
for i in $(seq 0 $((nsuper - 1))); do
  if ! wait "${fetchers[$i]}"; then echo "demo: ${names[$i]} failed: $(tail -1 "$out/${names[$i]}.log")" >&2; fail=1; fi
done
t1=$(date +%s.%N)
kill -TERM "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

identical=yes
for n in "${names[@]}"; do
  if ! cmp -s "$out/patch.bin" "$out/$n.bin"; then echo "demo: $n.bin DIFFERS from the patch" >&2; fail=1; identical=NO; fi
done

python3 - "$out" "${names[@]}" <<'PY' || fail=1
import json, os, sys
out, names = sys.argv[1], sys.argv[2:]
size = os.path.getsize(os.path.join(out, "patch.bin"))
mib = lambda b: f"{b / 2**20:8.1f}"
print(f"\n{'node':<12} {'role':<6} {'secs':>6} {'same-dom':>8} {'other-dom':>9} {'origin':>8} {'uploaded':>8}   (MiB)")
origin_total = 0
imports = {}
for n in names:
    p = os.path.join(out, n + ".json")
    if not os.path.exists(p):
        print(f"{n:<12} no statistics"); continue
    j = json.load(open(p))
    secs = j["seconds_to_complete"]
    print(f"{n:<12} {j['role']:<6} {secs if secs is not None else float('nan'):6.2f} {mib(j['bytes_from_same_domain'])}"
          f" {mib(j['bytes_from_other_domains']):>9} {mib(j['bytes_from_origin'])} {mib(j['bytes_uploaded'])}")
    origin_total += j["bytes_from_origin"]
    imports[j["domain"]] = imports.get(j["domain"], 0) + j["bytes_from_origin"] + j["bytes_from_other_domains"]
print(f"\npatch size {size / 2**20:.1f} MiB; origin sent {origin_total / size:.2f}x the patch")
for d, b in sorted(imports.items()):
    print(f"domain {d}: imported {b / size:.2f}x the patch")
bad = []
if os.environ.get("MAX_ORIGIN_X") and origin_total / size > float(os.environ["MAX_ORIGIN_X"]):
    bad.append(f"origin sent {origin_total / size:.2f}x > {os.environ['MAX_ORIGIN_X']}x")
for d, b in sorted(imports.items()):
    if os.environ.get("MAX_IMPORT_X") and b / size > float(os.environ["MAX_IMPORT_X"]):
        bad.append(f"domain {d} imported {b / size:.2f}x > {os.environ['MAX_IMPORT_X']}x")
for b in bad:
    print("demo: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
echo
echo "all files identical: $identical   wall time $(python3 -c "print(f'{$t1-$t0:.1f}')") s"
exit $fail
