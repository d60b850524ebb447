#!/usr/bin/env bash
# Devices behind a home router's NAT (issue 16, items 3 and 4): network
# namespaces the test makes itself, real daemons, real OpenDHT nodes.
#
#   wan bridge: origin .1, router .2, ctl .3 (a super-node and a device)
#   router: WAN .2 | LAN 192.168.77.1, masquerade
#   lan bridge: natdev 192.168.77.2 (and, in portmap mode, natdev2 .3)
#
# The devices listen on 0.0.0.0 with the origin as bootstrap node, so they
# advertise their source address toward it, 192.168.77.x. The origin's DHT
# node sees their requests come from the router.
#
# Mode "plain" (WAN 10.77.1.0/24; the router offers no port mapping). Checked:
#  - the device's status says "unreachable", names 10.77.1.2 as seen, and says
#    why port mapping failed;
#  - it still downloads the patch over the connections it dials, byte-identical;
#  - it publishes no holder record: the origin's rollout never counts it, while
#    the domain's super-node and a device on the WAN side, reachable, are
#    counted (rollout learns domains from super-nodes' records);
#  - the origin, on the WAN, is "reachable".
#
# Mode "portmap": the router runs miniupnpd (Debian's miniupnpd-iptables),
# offering UPnP IGD and NAT-PMP. miniupnpd refuses to map behind a private WAN
# address, so this WAN is 11.77.1.0/24: the namespaces have no link to the
# host's network, so nothing sent to those addresses leaves this machine.
# natdev asks by UPnP only, natdev2 by NAT-PMP only, both for their port 7401.
# Checked:
#  - each says "reachable" through a mapping of its own method on 11.77.1.2,
#    on two different public ports (the second one to ask cannot have 7401);
#  - a TCP connection from the WAN to each advertised address is accepted;
#  - both download byte-identical files, and the rollout counts all four
#    nodes of the domain (the two devices' records went out);
#  - a device that stops deletes its mapping on the router.
# Usage: nat_reachability.sh PATCHSWARM [plain|portmap]. Exits 77 (skipped)
# where network namespaces cannot be made (not root, no `ip netns`, no
# iptables), or, in portmap mode, without miniupnpd.
set -euo pipefail
ps=${1:?usage: $0 PATCHSWARM [plain|portmap]}
ps=$(readlink -f "$ps")
mode=${2:-plain}
case $mode in plain) net=10.77.1 ;; portmap) net=11.77.1 ;; *) echo "unknown mode '$mode'" >&2; exit 2 ;; esac

skip() { echo "SKIPPED: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
command -v ip >/dev/null || skip "no ip command (iproute2)"
# miniupnpd writes its rules with the legacy iptables library, so in portmap
# mode the router's masquerade goes through the same tables.
ipt=iptables
if [ "$mode" = portmap ]; then
    ipt=iptables-legacy
    command -v miniupnpd >/dev/null || [ -x /usr/sbin/miniupnpd ] || skip "no miniupnpd (apt-get install miniupnpd-iptables)"
fi
command -v $ipt >/dev/null || skip "no $ipt for the router's masquerade"

tag=psnat$$
wan=$tag-wan rtr=$tag-rtr lan=$tag-lan lan2=$tag-lan2 ctl=$tag-ctl
work=$(mktemp -d /tmp/ps-nat.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    for n in "$wan" "$rtr" "$lan" "$lan2" "$ctl"; do ip netns del "$n" 2>/dev/null || true; done
    if [ "${keep:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$wan" 2>/dev/null || skip "cannot create network namespaces here"
for n in "$rtr" "$lan" "$lan2" "$ctl"; do ip netns add "$n"; done
nsx() { local n=$1; shift; ip netns exec "$n" "$@"; }
for n in "$wan" "$rtr" "$lan" "$lan2" "$ctl"; do nsx "$n" ip link set lo up; done
# Both sides are bridges in the router's namespace, its own address on each.
nsx "$rtr" sysctl -qw net.ipv4.ip_forward=1
attach() {  # BRIDGE NS ADDR [GATEWAY]: NS's eth0 on the bridge
    local br=$1 n=$2 addr=$3 gw=${4:-}
    ip link add "$tag-x" type veth peer name "$tag-y"
    ip link set "$tag-x" netns "$n"; ip link set "$tag-y" netns "$rtr"
    nsx "$n" ip link set "$tag-x" name eth0
    nsx "$n" ip addr add "$addr/24" dev eth0
    nsx "$n" ip link set eth0 up
    [ -z "$gw" ] || nsx "$n" ip route add default via "$gw"
    nsx "$rtr" ip link set "$tag-y" master "$br"
    nsx "$rtr" ip link set "$tag-y" name "p-${n##*-}"
    nsx "$rtr" ip link set "p-${n##*-}" up
}
for br in wanbr:$net.2 lanbr:192.168.77.1; do
    nsx "$rtr" ip link add "${br%%:*}" type bridge
    nsx "$rtr" ip link set "${br%%:*}" up
    nsx "$rtr" ip addr add "${br#*:}/24" dev "${br%%:*}"
done
attach wanbr "$wan" $net.1
attach wanbr "$ctl" $net.3
attach lanbr "$lan" 192.168.77.2 192.168.77.1
attach lanbr "$lan2" 192.168.77.3 192.168.77.1
nsx "$rtr" $ipt -t nat -A POSTROUTING -s 192.168.77.0/24 -o wanbr -j MASQUERADE ||
    skip "$ipt cannot masquerade in a network namespace here"

fail() { echo "FAIL: $*"; for f in "$work"/*.log; do echo "--- $f"; tail -20 "$f"; done; exit 1; }

if [ "$mode" = portmap ]; then
    # The chains miniupnpd fills, hooked where its own iptables_init.sh hooks
    # them, but for the router's own address only: the WAN is a bridge in
    # this namespace, and where the kernel passes bridged frames through
    # iptables, its DNAT rules (no destination of their own) would take
    # connections between WAN hosts on a mapped port too.
    for t in nat mangle filter; do nsx "$rtr" $ipt -t $t -N MINIUPNPD; done
    nsx "$rtr" $ipt -t nat -N MINIUPNPD-POSTROUTING
    nsx "$rtr" $ipt -t nat -I PREROUTING -d $net.2 -i wanbr -j MINIUPNPD
    nsx "$rtr" $ipt -t mangle -I PREROUTING -d $net.2 -i wanbr -j MINIUPNPD
    nsx "$rtr" $ipt -t filter -I FORWARD -i wanbr ! -o wanbr -j MINIUPNPD
    nsx "$rtr" $ipt -t nat -I POSTROUTING -o wanbr -j MINIUPNPD-POSTROUTING
    cat > "$work/miniupnpd.conf" <<EOC
ext_ifname=wanbr
listening_ip=lanbr
port=0
enable_upnp=yes
enable_natpmp=yes
secure_mode=yes
system_uptime=yes
uuid=6b1f3e0a-5c2d-4e8f-9a7b-1c2d3e4f5a6b
allow 1024-65535 192.168.77.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
EOC
    ip netns exec "$rtr" /usr/sbin/miniupnpd -f "$work/miniupnpd.conf" -d -4 -P "$work/miniupnpd.pid" \
        > "$work/miniupnpd.log" 2>&1 &
    pids+=($!)
fi
. "$(dirname "$0")/daemon_lib.sh"
make_patch natpatch $((3 * 1024 * 1024 + 77))

start() {  # NS NAME ARGS...: a daemon in a namespace, logging to NAME.log
    local n=$1 name=$2; shift 2
    # ip netns exec, not nsx: $! must be the daemon itself, not a subshell
    ip netns exec "$n" "$ps" node --data "$work/$name" --trust "$work/op.public" --log-level info --start-delay 0 "$@" \
        > "$work/$name.out" 2> "$work/$name.log" &
    pids+=($!)
    eval "pid_$name=$!"
    wait_for 20 grep -q "ready" "$work/$name.out" || fail "$name did not start"
}
devices=(natdev)
start "$wan" origin --domain core --role origin --listen $net.1:7401 --dht-port 7402 \
    --serve "$work/patch.manifest=$work/patch.bin"
if [ "$mode" = portmap ]; then
    devices+=(natdev2)
    start "$lan" natdev --domain d1 --role peer --listen 0.0.0.0:7401 --dht-port 7402 --bootstrap $net.1:7402 --portmap upnp
    start "$lan2" natdev2 --domain d1 --role peer --listen 0.0.0.0:7401 --dht-port 7402 --bootstrap $net.1:7402 --portmap natpmp
else
    start "$lan" natdev --domain d1 --role peer --listen 0.0.0.0:7401 --dht-port 7402 --bootstrap $net.1:7402
fi
start "$ctl" wansup --domain d1 --role super --listen $net.3:7401 --dht-port 7402 --bootstrap $net.1:7402
start "$ctl" wandev --domain d1 --role peer --listen $net.3:7411 --dht-port 7412 --bootstrap $net.1:7402

grep -q "event=advertise_detected host=192.168.77.2 .*via=bootstrap" "$work/natdev.log" ||
    fail "the device did not advertise its source address toward the bootstrap node"
reach() { [ "$(status "$1" | jget "j['node']['reachability']['state']")" = "$2" ]; }
rget() { status "$1" | jget "j['node']['reachability']['$2']"; }
if [ "$mode" = plain ]; then
    wait_for 60 reach natdev unreachable || fail "the device behind the NAT never said unreachable"
    seen=$(status natdev | jget "','.join(j['node']['reachability']['seen_as'])")
    case ",$seen," in *,$net.2,*) ;; *) fail "the device was seen at '$seen', not at the router's $net.2" ;; esac
    status natdev | jget "j['node']['warnings']" | grep -q "unreachable" || fail "status gives no unreachable warning"
    grep -q "event=unreachable" "$work/natdev.log" || fail "no unreachable warning in the device's log"
    has_pm_error() { [ -n "$(rget natdev portmap_error)" ]; }
    wait_for 30 has_pm_error || fail "status does not say why port mapping failed"
    grep -q "event=port_mapping_failed" "$work/natdev.log" || fail "no port_mapping_failed warning in the log"
else
    for d in natdev natdev2; do
        wait_for 60 reach $d reachable || fail "$d never turned reachable through the router's port mapping"
    done
    pm1=$(rget natdev portmap) pm2=$(rget natdev2 portmap)
    case $pm1 in "upnp $net.2:"*" TCP"*) ;; *) fail "natdev's mapping is '$pm1', not a UPnP one on $net.2" ;; esac
    case $pm2 in "natpmp $net.2:"*" TCP"*) ;; *) fail "natdev2's mapping is '$pm2', not a NAT-PMP one on $net.2" ;; esac
    a1=$(rget natdev advertise) a2=$(rget natdev2 advertise)
    [ "$a1" != "$a2" ] || fail "both devices advertise $a1"
    for a in "$a1" "$a2"; do
        case $a in "$net.2:"*) ;; *) fail "a device advertises '$a', not the router's public address" ;; esac
        nsx "$ctl" python3 -c "import socket,sys; socket.create_connection(('${a%:*}', ${a##*:}), timeout=3).close()" ||
            fail "no TCP connection from the WAN to the advertised $a"
    done
    grep -q "event=port_mapped" "$work/natdev.log" || fail "no port_mapped line in natdev's log"
fi
wait_for 60 reach wandev reachable || fail "the device on the WAN never said reachable"
wait_for 60 reach origin reachable || fail "the origin never said reachable"

# Every device downloads; the rollout counts only those that advertise.
for d in "${devices[@]}" wandev; do
    "$ps" add --data "$work/$d" --manifest "$work/patch.manifest" --out "$work/$d.bin" >/dev/null
done
# A super-node fetches an announced patch by itself (prefetch); if it has not
# heard of it yet, it is told.
"$ps" add --data "$work/wansup" --manifest "$work/patch.manifest" >/dev/null 2>&1 || true
done_() { [ "$(status "$1" | jget "any(p.get('state') == 'complete' for p in j['patches'])")" = True ]; }
for d in "${devices[@]}" wandev wansup; do
    wait_for 90 done_ $d || fail "$d did not complete its download"
done
for d in "${devices[@]}" wandev; do
    cmp -s "$work/patch.bin" "$work/$d.bin" || fail "$d's file differs"
done
complete_d1() {
    "$ps" rollout --json --data "$work/origin" natpatch 2>/dev/null > "$work/rollout.json" || { echo -1; return; }
    jget "sum(d.get('complete', 0) for d in j['domains'] if d['domain'] == 'd1')" < "$work/rollout.json"
}
want=$((2 + ${#devices[@]}))
[ "$mode" = plain ] && want=2
at_least() { [ "$(complete_d1)" -ge "$want" ]; }
wait_for 60 at_least || fail "the rollout never counted $want complete nodes in d1 ($(cat "$work/rollout.json"))"
if [ "$mode" = plain ]; then
    sleep 5
    n=$(complete_d1)
    [ "$n" = 2 ] || fail "the rollout counted $n complete nodes in d1, the device behind the NAT among them ($(cat "$work/rollout.json"))"
    echo "ok: behind the NAT: unreachable (seen as $seen), downloaded, not advertised; the WAN nodes counted"
    exit 0
fi
# A device that stops takes its mapping back.
port1=${a1##*:}
nsx "$rtr" $ipt -t nat -S MINIUPNPD | grep -q "dport $port1 " || fail "no DNAT rule for natdev's port $port1 on the router"
kill "$pid_natdev"
wait "$pid_natdev" 2>/dev/null || true
gone() { ! nsx "$rtr" $ipt -t nat -S MINIUPNPD | grep -q "dport $port1 "; }
wait_for 10 gone || fail "natdev stopped and its mapping of port $port1 is still on the router"
echo "ok: behind the NAT with port mapping: $pm1; $pm2; reachable, dialable from the WAN, counted by the rollout; mapping deleted on stop"
