#!/usr/bin/env bash
# A device behind a NAT (issue 16, item 4): network namespaces the test makes
# itself, real daemons, real OpenDHT nodes.
#
#   wan (origin, 10.77.1.1) --- router (10.77.1.2 | 192.168.77.1, masquerade) --- lan (device, 192.168.77.2)
#
# The device listens on 0.0.0.0 with the origin as its bootstrap node, so it
# advertises its source address toward it, 192.168.77.2. The origin's DHT node
# sees its requests come from the router, 10.77.1.2. Checked:
#  - the device's status says "unreachable" and names 10.77.1.2 as seen;
#  - it still downloads the patch over the connections it dials, byte-identical;
#  - it publishes no holder record: the origin's rollout never counts it, while
#    the domain's super-node and a device on the WAN side, reachable, are
#    counted (rollout learns domains from super-nodes' records);
#  - the origin, on the WAN, is "reachable".
# Usage: nat_reachability.sh PATCHSWARM. Exits 77 (skipped) where network
# namespaces cannot be made (not root, no `ip netns`, no iptables).
set -euo pipefail
ps=${1:?usage: $0 PATCHSWARM}
ps=$(readlink -f "$ps")

skip() { echo "SKIPPED: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
command -v ip >/dev/null || skip "no ip command (iproute2)"
command -v iptables >/dev/null || skip "no iptables for the router's masquerade"

tag=psnat$$
wan=$tag-wan rtr=$tag-rtr lan=$tag-lan ctl=$tag-ctl
work=$(mktemp -d /tmp/ps-nat.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    for n in "$wan" "$rtr" "$lan" "$ctl"; do ip netns del "$n" 2>/dev/null || true; done
    ip link del "$tag-b" 2>/dev/null || true
    if [ "${keep:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$wan" 2>/dev/null || skip "cannot create network namespaces here"
ip netns add "$rtr"; ip netns add "$lan"; ip netns add "$ctl"
nsx() { local n=$1; shift; ip netns exec "$n" "$@"; }
for n in "$wan" "$rtr" "$lan" "$ctl"; do nsx "$n" ip link set lo up; done
# The WAN side is a bridge in the router's namespace: the origin and the
# control device on it, the router's WAN address on the bridge itself.
nsx "$rtr" ip link add wanbr type bridge
nsx "$rtr" ip link set wanbr up
nsx "$rtr" ip addr add 10.77.1.2/24 dev wanbr
for pair in "$wan:10.77.1.1" "$ctl:10.77.1.3"; do
    n=${pair%%:*} addr=${pair#*:}
    ip link add "$tag-x" type veth peer name "$tag-y"
    ip link set "$tag-x" netns "$n"; ip link set "$tag-y" netns "$rtr"
    nsx "$n" ip link set "$tag-x" name eth0
    nsx "$n" ip addr add "$addr/24" dev eth0
    nsx "$n" ip link set eth0 up
    nsx "$rtr" ip link set "$tag-y" master wanbr
    nsx "$rtr" ip link set "$tag-y" name "p-${n##*-}"
    nsx "$rtr" ip link set "p-${n##*-}" up
done
ip link add "$tag-x" type veth peer name "$tag-y"
ip link set "$tag-x" netns "$lan"; ip link set "$tag-y" netns "$rtr"
nsx "$lan" ip link set "$tag-x" name eth0
nsx "$lan" ip addr add 192.168.77.2/24 dev eth0
nsx "$lan" ip link set eth0 up
nsx "$lan" ip route add default via 192.168.77.1
nsx "$rtr" ip link set "$tag-y" name lan0
nsx "$rtr" ip addr add 192.168.77.1/24 dev lan0
nsx "$rtr" ip link set lan0 up
nsx "$rtr" sysctl -qw net.ipv4.ip_forward=1
nsx "$rtr" iptables -t nat -A POSTROUTING -s 192.168.77.0/24 -o wanbr -j MASQUERADE ||
    skip "iptables cannot masquerade in a network namespace here"

fail() { echo "FAIL: $*"; for f in "$work"/*.log; do echo "--- $f"; tail -20 "$f"; done; exit 1; }
status() { "$ps" status --json --data "$work/$1" 2>/dev/null; }
jget() { python3 -c "import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
wait_for() {  # SECONDS COMMAND...
    local until=$((SECONDS + $1)); shift
    until "$@"; do [ $SECONDS -lt $until ] || return 1; sleep 0.5; done
}

"$ps" keygen --secret "$work/op.secret" --public "$work/op.public" >/dev/null
head -c $((3 * 1024 * 1024 + 77)) /dev/urandom > "$work/patch.bin"
"$ps" publish --key "$work/op.secret" --file "$work/patch.bin" --name natpatch --version 1 \
    --out "$work/patch.manifest" >/dev/null

start() {  # NS NAME ARGS...: a daemon in a namespace, logging to NAME.log
    local n=$1 name=$2; shift 2
    nsx "$n" "$ps" node --data "$work/$name" --trust "$work/op.public" --log-level info --start-delay 0 "$@" \
        > "$work/$name.out" 2> "$work/$name.log" &
    pids+=($!)
    wait_for 20 grep -q "ready" "$work/$name.out" || fail "$name did not start"
}
start "$wan" origin --domain core --role origin --listen 10.77.1.1:7401 --dht-port 7402 \
    --serve "$work/patch.manifest=$work/patch.bin"
start "$lan" natdev --domain d1 --role peer --listen 0.0.0.0:7401 --dht-port 7402 --bootstrap 10.77.1.1:7402
start "$ctl" wansup --domain d1 --role super --listen 10.77.1.3:7401 --dht-port 7402 --bootstrap 10.77.1.1:7402
start "$ctl" wandev --domain d1 --role peer --listen 10.77.1.3:7411 --dht-port 7412 --bootstrap 10.77.1.1:7402

grep -q "event=advertise_detected host=192.168.77.2 .*via=bootstrap" "$work/natdev.log" ||
    fail "the device did not advertise its source address toward the bootstrap node"
reach() { [ "$(status "$1" | jget "j['node']['reachability']['state']")" = "$2" ]; }
wait_for 60 reach natdev unreachable || fail "the device behind the NAT never said unreachable"
seen=$(status natdev | jget "','.join(j['node']['reachability']['seen_as'])")
case ",$seen," in *,10.77.1.2,*) ;; *) fail "the device was seen at '$seen', not at the router's 10.77.1.2" ;; esac
status natdev | jget "j['node']['warnings']" | grep -q "unreachable" || fail "status gives no unreachable warning"
grep -q "event=unreachable" "$work/natdev.log" || fail "no unreachable warning in the device's log"
wait_for 60 reach wandev reachable || fail "the device on the WAN never said reachable"
wait_for 60 reach origin reachable || fail "the origin never said reachable"

# Both download; only the reachable one is counted by the rollout.
for d in natdev wandev; do
    "$ps" add --data "$work/$d" --manifest "$work/patch.manifest" --out "$work/$d.bin" >/dev/null
done
# A super-node fetches an announced patch by itself (prefetch); if it has not
# heard of it yet, it is told.
"$ps" add --data "$work/wansup" --manifest "$work/patch.manifest" >/dev/null 2>&1 || true
done_() { [ "$(status "$1" | jget "any(p.get('state') == 'complete' for p in j['patches'])")" = True ]; }
wait_for 90 done_ natdev || fail "the device behind the NAT did not complete its download"
wait_for 90 done_ wandev || fail "the device on the WAN did not complete its download"
wait_for 90 done_ wansup || fail "the super-node did not complete its download"
cmp -s "$work/patch.bin" "$work/natdev.bin" || fail "the NAT device's file differs"
cmp -s "$work/patch.bin" "$work/wandev.bin" || fail "the WAN device's file differs"
complete_d1() {
    "$ps" rollout --json --data "$work/origin" natpatch 2>/dev/null > "$work/rollout.json" || { echo -1; return; }
    jget "sum(d.get('complete', 0) for d in j['domains'] if d['domain'] == 'd1')" < "$work/rollout.json"
}
at_least_2() { [ "$(complete_d1)" -ge 2 ]; }
wait_for 60 at_least_2 || fail "the rollout never counted the super-node and the WAN device ($(cat "$work/rollout.json"))"
sleep 5
n=$(complete_d1)
[ "$n" = 2 ] || fail "the rollout counted $n complete nodes in d1, the device behind the NAT among them ($(cat "$work/rollout.json"))"
echo "ok: behind the NAT: unreachable (seen as $seen), downloaded, not advertised; the WAN nodes counted"
