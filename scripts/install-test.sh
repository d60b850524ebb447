#!/usr/bin/env bash
# Installs a patchswarm .deb with apt-get into a clean Debian bookworm root and
# checks it there: `patchswarm --version`, the installed files, the node's
# user and folders, the bash completion, and a node started from the packaged
# config (as the patchswarm user, in its own network namespace) that refuses to
# start without the operator key (status 2), then comes up, answers `status`
# (warning that it has no address to advertise) and stops cleanly on SIGTERM;
# then, with only its domain set besides the operator key, joins an origin and
# a super-node on its LAN (no bootstrap node: LAN discovery), fetches the
# urgent patch they announce and is counted complete by the origin's rollout.
#
#   scripts/install-test.sh DEB|DIR [WORK_DIR]      (as root; CTest: package_install)
#
# The clean root is made once with debootstrap (minbase, a few minutes) and
# cached as WORK_DIR/bookworm-minbase.tar (or $PS_ROOTFS_CACHE); each run
# unpacks a fresh copy. Downloaded dependencies are kept in WORK_DIR/archives.
# Exit 77 (CTest: skipped) when the machine cannot do it, with the reason:
# not root, no debootstrap, or the mirror ($DEBIAN_MIRROR) not reachable.
set -euo pipefail
skip() { echo "install-test: SKIPPED: $*"; exit 77; }
die() { echo "install-test: FAILED: $*" >&2; exit 1; }
step() { echo "install-test: $*"; }

[ $# -ge 1 ] || { echo "usage: install-test.sh DEB|DIR [WORK_DIR]" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, chroot, mount, unshare)"
command -v debootstrap >/dev/null || skip "debootstrap is not installed (scripts/install-deps.sh installs it)"
deb=$1
# A folder: the patchswarm_*.deb in it (scripts/make-deb.sh writes BUILD_DIR/package/).
[ -d "$deb" ] && deb=$(ls "$deb"/patchswarm_*.deb 2>/dev/null | head -1)
deb=$(realpath "$deb" 2>/dev/null || true)
[ -n "$deb" ] && [ -f "$deb" ] || die "$1: no such package (scripts/package.sh builds it)"
work=${2:-$(dirname "$deb")/install-test}
mkdir -p "$work"
work=$(realpath "$work")
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${PS_ROOTFS_CACHE:-$work/bookworm-minbase.tar}
started=$(date +%s)

if [ ! -s "$cache" ]; then
  step "making a clean bookworm root with debootstrap from $mirror (once; cached as $cache)"
  boot=$work/bootstrap
  rm -rf "$boot"
  if ! timeout 600 debootstrap --variant=minbase bookworm "$boot" "$mirror" > "$work/debootstrap.log" 2>&1; then
    tail -5 "$work/debootstrap.log"
    rm -rf "$boot"
    skip "debootstrap bookworm from $mirror failed or took over 10 minutes (log: $work/debootstrap.log)"
  fi
  cp /etc/resolv.conf "$boot/etc/resolv.conf"
  # The package lists too: later runs go to the mirror only for dependencies.
  chroot "$boot" apt-get update -qq > "$work/apt-update.log" 2>&1 || { rm -rf "$boot"; skip "apt-get update in the new root failed (log: $work/apt-update.log)"; }
  tar -C "$boot" -cf "$cache.tmp" . && mv "$cache.tmp" "$cache"
  rm -rf "$boot"
  step "clean root made in $(( $(date +%s) - started )) s"
fi

root=$(mktemp -d "$work/root.XXXXXX")
node_pid=
swarm_pids=()
lan=pkglan$$
cleanup() {
  [ -n "$node_pid" ] && kill -KILL "$node_pid" 2>/dev/null
  for p in "${swarm_pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  ip netns del "$lan-ops" 2>/dev/null || true
  ip netns del "$lan-dev" 2>/dev/null || true
  umount "$root/proc" 2>/dev/null || true
  umount "$root/var/cache/apt/archives" 2>/dev/null || true
  rm -rf "$root"
}
trap cleanup EXIT
tar -C "$root" -xf "$cache"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mkdir -p "$work/archives/partial"
mount --bind "$work/archives" "$root/var/cache/apt/archives" ||
  skip "cannot bind-mount in this machine (a container without CAP_SYS_ADMIN?)"
mount -t proc proc "$root/proc" || skip "cannot mount /proc in the root (a container without CAP_SYS_ADMIN?)"
cp "$deb" "$root/tmp/"
in_root() {
  chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

step "apt-get install ./$(basename "$deb") in a clean root"
apt_install() { in_root apt-get install -y -q --no-install-recommends "/tmp/$(basename "$deb")" > "$work/apt-install.log" 2>&1; }
if ! apt_install; then
  # The cached lists may be older than the mirror (a point release): refresh once.
  in_root apt-get update -qq > "$work/apt-update.log" 2>&1 || skip "the mirror is not reachable (log: $work/apt-update.log)"
  apt_install || { cat "$work/apt-install.log"; die "apt-get install failed (above)"; }
fi

step "checks of the installed package"
version=$(dpkg-deb -f "$deb" Version)
out=$(in_root patchswarm --version) || die "patchswarm --version exited $?"
[[ $out == "patchswarm $version"* ]] || die "patchswarm --version printed '$out', expected 'patchswarm $version...'"
files=$(in_root dpkg -L patchswarm)
for f in /usr/bin/patchswarm /usr/lib/systemd/system/patchswarm.service /usr/lib/sysusers.d/patchswarm.conf \
         /usr/lib/tmpfiles.d/patchswarm.conf /etc/patchswarm/patchswarm.toml /usr/share/man/man1/patchswarm.1.gz \
         /usr/share/man/man1/patchswarm-node.1.gz /usr/share/bash-completion/completions/patchswarm \
         /usr/share/doc/patchswarm/daemon.md; do
  # usr-merged or not, dpkg lists the path as the package has it
  grep -qx "$f" <<<"$files" || grep -qx "/usr$f" <<<"$files" || die "the package has no $f"
done
in_root getent passwd patchswarm >/dev/null || die "postinst made no patchswarm user"
[ "$(in_root stat -c %U /var/lib/patchswarm)" = patchswarm ] || die "/var/lib/patchswarm is not the patchswarm user's"
grep -qx /etc/patchswarm/patchswarm.toml "$root/var/lib/dpkg/info/patchswarm.conffiles" || die "the config is not a conffile"
comp=$(in_root bash -c 'source /usr/share/bash-completion/completions/patchswarm; COMP_WORDS=(patchswarm no); COMP_CWORD=1; _patchswarm; echo "${COMPREPLY[*]}"')
[ "$comp" = node ] || die "bash completion of 'patchswarm no' gave '$comp', expected 'node'"

# Runs a command as the node's user in the root, in a network namespace of its
# own where the machine allows it. It execs, so call it in a subshell: ( ... )
# or ... & (then $! is the command's own pid, for signals).
as_node() {
  local netns=(unshare --net)
  unshare --net true 2>/dev/null || netns=()
  exec "${netns[@]}" chroot --userspec=patchswarm:patchswarm "$root" env -i PATH=/usr/bin:/bin HOME=/var/lib/patchswarm "$@"
}
step "the node refuses the packaged config without the operator key (status 2)"
set +e
(as_node patchswarm node --config /etc/patchswarm/patchswarm.toml > "$work/node.out" 2> "$work/node.err")
code=$?
set -e
[ $code -eq 2 ] || { cat "$work/node.err"; die "without operator.public the node exited $code, expected 2"; }
grep -q "node.trust" "$work/node.err" || die "the error does not name node.trust: $(cat "$work/node.err")"

step "the node starts from the packaged config once the operator key is there"
in_root patchswarm keygen --secret /root/operator.secret --public /etc/patchswarm/operator.public > /dev/null
in_root install -d -m 0700 -o patchswarm -g patchswarm /run/patchswarm
as_node patchswarm node --config /etc/patchswarm/patchswarm.toml > "$work/node.out" 2> "$work/node.err" &
node_pid=$!
for _ in $(seq 100); do
  grep -q '^ready ' "$work/node.out" && break
  kill -0 "$node_pid" 2>/dev/null || break
  sleep 0.2
done
grep -q '^ready ' "$work/node.out" || { cat "$work/node.err"; die "the node printed no ready line in 20 s"; }
step "$(head -1 "$work/node.out")"
status=$(in_root patchswarm status) || die "patchswarm status (as root, default socket) failed"
grep -q "role peer" <<<"$status" || die "status does not show the node: $status"
if unshare --net true 2>/dev/null; then
  # Only loopback in the node's namespace: nothing to advertise, and it says so.
  grep -q "warning: no address to advertise" <<<"$status" || die "status has no advertise warning: $status"
  grep -q "event=no_advertise_address" "$work/node.err" || die "no event=no_advertise_address in the log"
fi
kill -TERM "$node_pid"
set +e
wait "$node_pid"
code=$?
set -e
node_pid=
[ $code -eq 0 ] || { cat "$work/node.err"; die "the node exited $code after SIGTERM, expected 0"; }

step "the installed binary serves the dashboard, uPlot embedded (a super-node, --dashboard)"
as_node patchswarm node --config /etc/patchswarm/patchswarm.toml --role super --control none \
  --dashboard 127.0.0.1:0 > "$work/dash.out" 2> "$work/dash.err" &
node_pid=$!
for _ in $(seq 100); do
  grep -q '^ready ' "$work/dash.out" && break
  kill -0 "$node_pid" 2>/dev/null || break
  sleep 0.2
done
port=$(sed -n 's/.* dashboard=127.0.0.1:\([0-9]*\).*/\1/p' "$work/dash.out")
[ -n "$port" ] || { cat "$work/dash.err"; die "the node printed no dashboard address: $(cat "$work/dash.out")"; }
netns=()
if unshare --net true 2>/dev/null; then
  netns=(nsenter -t "$node_pid" -n)
  "${netns[@]}" ip link set lo up  # a new namespace's loopback is down
fi
get() { "${netns[@]}" bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "GET %s HTTP/1.0\r\n\r\n" "$2" >&3 && cat <&3' _ "$port" "$1"; }
grep -q 'id="domains"' <<<"$(get /)" || die "GET / is not the dashboard page"
grep -q 'uPlot' <<<"$(get /uplot.js)" || die "GET /uplot.js has no uPlot (was web/node_modules there at build time?)"
grep -q '"role":"super"' <<<"$(get /api/state)" || die "GET /api/state is not the node's state"
kill -TERM "$node_pid"
set +e
wait "$node_pid"
code=$?
set -e
node_pid=
[ $code -eq 0 ] || { cat "$work/dash.err"; die "the dashboard node exited $code after SIGTERM, expected 0"; }
step "the packaged node, with only its domain and the operator key set, joins a swarm on its LAN and is counted by rollout"
# Two namespaces on one link (a LAN): the operator's origin and the domain's
# super-node (the installed binary, as root) on 10.80.0.1, the packaged node
# (as its user, from /etc/patchswarm/patchswarm.toml) on 10.80.0.2. Nobody is
# given a bootstrap node: LAN discovery joins them (docs/daemon.md).
if ! ip netns add "$lan-ops" 2>/dev/null; then
  step "skipped: cannot make network namespaces here"
else
  ip netns add "$lan-dev"
  ip link add "$lan-a" type veth peer name "$lan-b"
  ip link set "$lan-a" netns "$lan-ops"; ip link set "$lan-b" netns "$lan-dev"
  for pair in ops:$lan-a:10.80.0.1 dev:$lan-b:10.80.0.2; do
    IFS=: read -r n dev addr <<<"$pair"
    ip -n "$lan-$n" link set lo up
    ip -n "$lan-$n" addr add "$addr/24" dev "$dev"
    ip -n "$lan-$n" link set "$dev" up
    ip -n "$lan-$n" route add 224.0.0.0/4 dev "$dev"
  done
  head -c $((3 * 1024 * 1024 + 5)) /dev/urandom > "$root/root/patch.bin"
  in_root patchswarm publish --key /root/operator.secret --file /root/patch.bin --name pkgpatch --version 1 \
    --urgent --out /root/patch.manifest > /dev/null || die "publish in the root failed"
  ops() {  # NAME ARGS...: a node of the operator's, in the ops namespace, as root
    local name=$1; shift
    ip netns exec "$lan-ops" chroot "$root" env -i PATH=/usr/bin:/bin HOME=/root patchswarm node \
      --data "/root/$name" --trust /etc/patchswarm/operator.public --log-level info \
      --listen 0.0.0.0:$((7500 + ${#swarm_pids[@]} * 10)) --dht-port $((7501 + ${#swarm_pids[@]} * 10)) "$@" \
      > "$work/$name.out" 2> "$work/$name.err" &
    swarm_pids+=($!)
  }
  ops origin --role origin --domain core --serve /root/patch.manifest=/root/patch.bin
  ops super --role super --domain d1
  # The one edit besides the operator key (already in place): the domain.
  sed -i 's/^domain = "default"/domain = "d1"/' "$root/etc/patchswarm/patchswarm.toml"
  grep -q '^domain = "d1"' "$root/etc/patchswarm/patchswarm.toml" || die "the packaged config has no domain line to set"
  ip netns exec "$lan-dev" chroot --userspec=patchswarm:patchswarm "$root" env -i PATH=/usr/bin:/bin \
    HOME=/var/lib/patchswarm patchswarm node --config /etc/patchswarm/patchswarm.toml --log-level info \
    > "$work/lan-node.out" 2> "$work/lan-node.err" &
  node_pid=$!
  counted=
  for _ in $(seq 120); do
    json=$(in_root patchswarm rollout --json --data /root/origin pkgpatch 2>/dev/null || true)
    counted=$(python3 -c "import json,sys; j=json.loads(sys.argv[1]); print(sum(d.get('complete',0) for d in j['domains'] if d['domain']=='d1'))" "$json" 2>/dev/null || true)
    [ "${counted:-0}" -ge 2 ] && break
    kill -0 "$node_pid" 2>/dev/null || break
    sleep 0.5
  done
  if [ "${counted:-0}" -lt 2 ]; then
    for f in lan-node.err origin.err super.err; do echo "--- $f"; tail -15 "$work/$f"; done
    die "the origin's rollout counted ${counted:-no} complete nodes in d1, not the super-node and the packaged node"
  fi
  cmp -s "$root/root/patch.bin" "$root/var/lib/patchswarm/patches/pkgpatch-v1" ||
    die "the packaged node's copy of the patch (/var/lib/patchswarm/patches/pkgpatch-v1) differs or is missing"
  grep -q "event=lan_node_found" "$work/lan-node.err" || die "the packaged node logged no lan_node_found"
  kill -TERM "$node_pid"; wait "$node_pid" 2>/dev/null || true; node_pid=
  step "counted by rollout: d1 complete=$counted; the patch fetched by itself into /var/lib/patchswarm/patches"
fi
step "passed in $(( $(date +%s) - started )) s"
