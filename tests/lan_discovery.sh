#!/usr/bin/env bash
# LAN discovery (docs/daemon.md, "LAN discovery"): nodes with no bootstrap node
# find each other on their LAN by multicast beacons. Network namespaces the
# test makes itself, one LAN (a bridge), real daemons, real OpenDHT nodes:
#
#   lan bridge: origin 10.79.0.1, super-node (d1) .2, device (d1) .3,
#               device with --lan-discovery off (d1) .4
#
# Every node listens on 0.0.0.0 and is given no --bootstrap. Checked:
#  - the origin, the super-node and the device join one DHT through the
#    beacons: the device fetches the urgent patch the origin serves by itself
#    (announced, found, downloaded, byte-identical), and the origin's rollout
#    counts both d1 nodes complete;
#  - a malformed beacon is refused (counted in status) and the node goes on;
#  - the device with LAN discovery off stays alone (no DHT node): the beacons
#    are what joined the others.
# Usage: lan_discovery.sh PATCHSWARM. Exits 77 (skipped) where network
# namespaces cannot be made.
set -euo pipefail
ps=${1:?usage: $0 PATCHSWARM}
ps=$(readlink -f "$ps")
skip() { echo "SKIPPED: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
command -v ip >/dev/null || skip "no ip command (iproute2)"

tag=pslan$$
sw=$tag-sw hosts=(origin sup dev off)
work=$(mktemp -d /tmp/ps-lan.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    for n in "$sw" "${hosts[@]/#/$tag-}"; do ip netns del "$n" 2>/dev/null || true; done
    if [ "${keep:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "FAIL: $*"; for f in "$work"/*.log; do echo "--- $f"; tail -15 "$f"; done; exit 1; }

ip netns add "$sw" 2>/dev/null || skip "cannot create network namespaces here"
nsx() { local n=$1; shift; ip netns exec "$n" "$@"; }
nsx "$sw" ip link add br0 type bridge
# No IGMP querier on this LAN: flood multicast rather than wait for one.
nsx "$sw" ip link set br0 type bridge mcast_snooping 0
nsx "$sw" ip link set br0 up
i=1
for h in "${hosts[@]}"; do
    n=$tag-$h
    ip netns add "$n"
    nsx "$n" ip link set lo up
    ip link add "$tag-x" type veth peer name "$tag-y"
    ip link set "$tag-x" netns "$n"; ip link set "$tag-y" netns "$sw"
    nsx "$n" ip link set "$tag-x" name eth0
    nsx "$n" ip addr add "10.79.0.$i/24" dev eth0
    nsx "$n" ip link set eth0 up
    nsx "$n" ip route add 224.0.0.0/4 dev eth0  # a LAN host's multicast route (no gateway here)
    nsx "$sw" ip link set "$tag-y" master br0
    nsx "$sw" ip link set "$tag-y" name "p$i"
    nsx "$sw" ip link set "p$i" up
    i=$((i + 1))
done

. "$(dirname "$0")/daemon_lib.sh"
make_patch lanpatch $((2 * 1024 * 1024 + 99)) --urgent
start() {  # HOST ARGS...
    local h=$1; shift
    ip netns exec "$tag-$h" "$ps" node --data "$work/$h" --trust "$work/op.public" --log-level info \
        --listen 0.0.0.0:7401 --dht-port 7402 "$@" > "$work/$h.out" 2> "$work/$h.log" &
    pids+=($!)
    wait_for 20 grep -q "ready" "$work/$h.out" || fail "$h did not start"
}
start origin --domain core --role origin --serve "$work/patch.manifest=$work/patch.bin"
start sup --domain d1 --role super
start dev --domain d1 --role peer --start-delay 0 --patches "$work/dev-patches"
start off --domain d1 --role peer --start-delay 0 --lan-discovery off

for h in origin sup dev; do
    grep -q "event=lan_discovery " "$work/$h.log" || fail "$h did not start LAN discovery"
done
grep -q "event=lan_discovery " "$work/off.log" && fail "the node with --lan-discovery off multicasts all the same"
found() { grep -q "event=lan_node_found" "$work/dev.log"; }
wait_for 20 found || fail "the device found no DHT node on the LAN"

# A malformed beacon from the LAN: refused, counted, and the node goes on.
nsx "$tag-off" python3 -c "
import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
s.sendto(b'PSLD\x07' + b'\x00' * 19, ('239.255.83.76', 7409)); s.sendto(b'x' * 100, ('239.255.83.76', 7409))"
refused() { [ "$(status origin | jget "j['node']['lan_discovery']['refused']")" -ge 2 ]; }
wait_for 10 refused || fail "the origin did not count the malformed beacons as refused"

complete() { [ "$(status "$1" | jget "any(p.get('state') == 'complete' for p in j['patches'])")" = True ]; }
wait_for 60 complete dev || fail "the device did not fetch the urgent patch by itself"
wait_for 60 complete sup || fail "the super-node did not prefetch the patch"
got=$(ls "$work"/dev-patches/lanpatch-v1* 2>/dev/null | head -1)
cmp -s "$work/patch.bin" "$got" || fail "the device's file ($got) differs"
d1() {
    "$ps" rollout --json --data "$work/origin" lanpatch 2>/dev/null > "$work/rollout.json" || { echo -1; return; }
    jget "sum(d.get('complete', 0) for d in j['domains'] if d['domain'] == 'd1')" < "$work/rollout.json"
}
two() { [ "$(d1)" -ge 2 ]; }
wait_for 60 two || fail "the origin's rollout does not count the super-node and the device ($(cat "$work/rollout.json"))"
n=$(status off | jget "j['node']['dht_nodes']")
[ "$n" = 0 ] || fail "the node with LAN discovery off has $n DHT nodes: something else joined it"
echo "ok: joined by LAN beacons alone: the device fetched the urgent patch by itself, rollout counts d1's 2 nodes; malformed beacons refused; a node without discovery stays alone"
