#!/usr/bin/env bash
# The local swarm demo (README, first command): an operator's rollout, told
# through the daemons and their control sockets, all on loopback.
#
#   origin  (domain "core")            patchswarm node --role origin
#   east, west, north: 1 super-node    patchswarm node --role super   (a cache)
#                      + 4 devices     patchswarm node --role peer    (background node)
#
# Every node is a daemon with its own data folder and control socket, and its
# own OpenDHT node. The operator signs a 64 MiB patch as mandatory and pushes
# it with `publish --announce` through the origin's socket. Nobody is told to
# download anything: super-nodes prefetch the announced patch, devices fetch it
# after a random start delay, each from the nearest holders (peers of its
# domain, its super-node, other domains, the origin last), checking every
# segment against the signed manifest. The script watches the control sockets,
# then prints a table per domain (completion times, bytes by source class),
# the origin's bytes as a multiple of the patch, and `patchswarm rollout`.
#
# Usage: examples/local_swarm.sh [BUILD_DIR] [OUT_DIR]
# Environment: PATCH_MIB (64), DOMAINS ("east west north"), DEVICES_PER_DOMAIN (4),
# START_DELAY (devices' random start delay, up to; 2s), TIMEOUT (seconds, 300);
# MAX_ORIGIN_X / MAX_IMPORT_X make the run fail when the origin sent, or a
# domain imported, more than that many copies of the patch.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
out=${2:-$here/demo-out}
bin=$build/patchswarm
size_mib=${PATCH_MIB:-64}
devices=${DEVICES_PER_DOMAIN:-4}
read -r -a domains <<<"${DOMAINS:-east west north}"

[ -x "$bin" ] || { echo "demo: $bin not built; run scripts/demo.sh" >&2; exit 2; }
who=demo
. "$here/examples/daemons.sh"
daemons_begin patchswarm-demo

echo "== operator: key pair, a patch of ${size_mib} MiB + 123457 bytes"
"$bin" keygen --secret "$out/operator.secret" --public "$out/operator.public" >/dev/null
head -c $((size_mib * 1024 * 1024 + 123457)) /dev/urandom > "$out/patch.bin"

echo "== origin, then per domain a super-node and $devices devices (daemons)"
start origin origin core
wait_ready origin
dht_port=$(sed -n 's/.* dht=\([0-9]*\).*/\1/p' "$out/origin.ready")
echo "   $(cat "$out/origin.ready")"
for d in "${domains[@]}"; do
  start "$d-super" super "$d"
  for i in $(seq 1 "$devices"); do start "$d-dev$i" peer "$d" --start-delay "${START_DELAY:-2s}"; done
done
for n in "${nodes[@]}"; do wait_ready "$n"; done
echo "   ${#nodes[@]} nodes running; control sockets in $sockdir"

# The monitor talks JSON lines to every control socket (what `patchswarm status` does).
cat > "$out/monitor.py" <<'PY'
import json, os, socket, sys, time

def ask(sock, cmd, **args):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock)
    s.sendall((json.dumps({"v": 1, "cmd": cmd, **args}) + "\n").encode())
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(1 << 16)
        if not chunk:
            break
        buf += chunk
    s.close()
    return json.loads(buf)

def wait_connected(sockdir, names, timeout=30):
    """Every node has a peer, so that it hears the announcement at once."""
    end = time.time() + timeout
    left = set(names)
    while left and time.time() < end:
        for n in list(left):
            if ask(f"{sockdir}/{n}/control.sock", "status")["node"]["peers"] >= 1:
                left.discard(n)
        time.sleep(0.2)
    return sorted(left)

def watch(sockdir, names, t0, timeout):
    """Seconds after the release when each node completed the patch (its own clock)."""
    done = {}
    end = t0 + timeout
    while len(done) < len(names) and time.time() < end:
        for n in names:
            if n in done:
                continue
            for p in ask(f"{sockdir}/{n}/control.sock", "status")["patches"]:
                if p["state"] == "complete" and p.get("completed_unix"):
                    done[n] = p["completed_unix"] - t0
        time.sleep(0.2)
    return done

mode, sockdir, out = sys.argv[1], sys.argv[2], sys.argv[3]
names = sys.argv[4:]
if mode == "connected":
    missing = wait_connected(sockdir, names)
    if missing:
        print("demo: no peer after 30 s: " + " ".join(missing), file=sys.stderr)
    sys.exit(0)

t0 = float(open(f"{out}/release-time").read())
done = watch(sockdir, names, t0, float(os.environ.get("TIMEOUT", "300")))
size = os.path.getsize(f"{out}/patch.bin")
status = {n: ask(f"{sockdir}/{n}/control.sock", "status") for n in ["origin"] + names}
rows, by_domain = [], {}
for n in names:
    st = status[n]
    p = st["patches"][0] if st["patches"] else {}
    f = p.get("bytes_from", {})
    dom = st["node"]["domain"]
    rows.append((dom, n, st["node"]["role"], done.get(n), p.get("seconds_to_complete"), f, p.get("bytes_uploaded", 0)))
    agg = by_domain.setdefault(dom, {"nodes": 0, "done": [], "from": {}})
    agg["nodes"] += 1
    if n in done:
        agg["done"].append(done[n])
    for k, v in f.items():
        agg["from"][k] = agg["from"].get(k, 0) + v

mib = lambda b: f"{b / 2**20:7.1f}"
keys = ["same_domain_peer", "same_domain_super", "other_domain", "origin"]
print(f"\n{'node':<13} {'role':<6} {'done at':>8} {'took':>6}   {'peers':>7} {'super':>7} {'other':>7} {'origin':>7}   {'sent':>7}  (MiB; s after the release)")
for dom, n, role, at, took, f, up in rows:
    at_s = f"{at:8.2f}" if at is not None else "     --"
    took_s = f"{took:6.2f}" if took is not None else "    --"
    print(f"{n:<13} {role:<6} {at_s} {took_s}   " + " ".join(mib(f.get(k, 0)) for k in keys) + f"   {mib(up)}")

print(f"\n{'domain':<8} {'nodes':>5} {'complete':>8} {'first':>7} {'last':>7}   {'peers':>7} {'super':>7} {'other':>7} {'origin':>7}   {'imported':>8}")
bad = []
for dom in sorted(by_domain):
    a = by_domain[dom]
    imported = (a["from"].get("other_domain", 0) + a["from"].get("origin", 0)) / size
    first = f"{min(a['done']):7.2f}" if a["done"] else "     --"
    last = f"{max(a['done']):7.2f}" if a["done"] else "     --"
    print(f"{dom:<8} {a['nodes']:>5} {len(a['done']):>8} {first} {last}   "
          + " ".join(mib(a["from"].get(k, 0)) for k in keys) + f"   {imported:7.2f}x")
    if os.environ.get("MAX_IMPORT_X") and imported > float(os.environ["MAX_IMPORT_X"]):
        bad.append(f"domain {dom} imported {imported:.2f}x > {os.environ['MAX_IMPORT_X']}x")
origin_sent = sum(p.get("bytes_uploaded", 0) for p in status["origin"]["patches"])
print(f"\npatch {size / 2**20:.1f} MiB; origin sent {origin_sent / size:.2f}x the patch; "
      f"{len(done)} of {len(names)} nodes complete, the last {max(done.values()) if done else float('nan'):.2f} s after the release")
if os.environ.get("MAX_ORIGIN_X") and origin_sent / size > float(os.environ["MAX_ORIGIN_X"]):
    bad.append(f"origin sent {origin_sent / size:.2f}x > {os.environ['MAX_ORIGIN_X']}x")
if len(done) < len(names):
    bad.append("not complete: " + " ".join(n for n in names if n not in done))
for b in bad:
    print("demo: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

others=("${nodes[@]:1}")
python3 "$out/monitor.py" connected "$sockdir" "$out" "${others[@]}"

echo "== operator: sign the manifest (mandatory) and announce it through the origin"
date +%s.%N > "$out/release-time"  # completion times count from here
"$bin" publish --key "$out/operator.secret" --file "$out/patch.bin" --name ims-client --version 1 \
  --label demo --mandatory --out "$out/patch.manifest" --announce --socket "$sockdir/origin/control.sock"

echo "== super-nodes prefetch, devices fetch after a random delay of up to ${START_DELAY:-2s}"
fail=0
python3 "$out/monitor.py" watch "$sockdir" "$out" "${others[@]}" || fail=1

echo
echo "\$ patchswarm rollout ims-client --socket <origin>"
"$bin" rollout ims-client --socket "$sockdir/origin/control.sock" || fail=1
echo
echo "\$ patchswarm status --socket <${domains[0]}-dev1>"
"$bin" status --socket "$sockdir/${domains[0]}-dev1/control.sock" || fail=1

identical=yes
for n in "${others[@]}"; do
  case $n in *-super) continue ;; esac  # a cache keeps no exported copy
  if ! cmp -s "$out/patch.bin" "$out/$n/patches/ims-client-v1"; then
    echo "demo: $n's copy DIFFERS from the patch (or is missing)" >&2; fail=1; identical=NO
  fi
done
echo
echo "every device's file is identical to the patch: $identical"

# A clean stop: each daemon withdraws its DHT records and flushes its state.
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do wait "$p" || { echo "demo: a node did not stop cleanly" >&2; fail=1; }; done
pids=()
exit $fail
