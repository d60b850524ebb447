# Sourced by the scripts that run a swarm of daemons on loopback
# (examples/local_swarm.sh, tests/browser/dashboard_swarm.sh); not run alone.
# Expects $bin (the patchswarm binary), $out (a folder for data and logs, made
# anew) and, for the messages, $who. Each node gets a data folder
# $out/NAME, its `ready` line in $out/NAME.ready, its log in $out/NAME.log and
# a control socket in a 0700 folder of its own under $sockdir (Unix socket
# paths are short: 107 bytes). LOG_LEVEL sets the nodes' log level (info).
# Nodes started after $dht_port is set bootstrap from it. Every node is
# stopped (SIGTERM) when the script exits.

daemons_begin() {  # prefix of the socket folder in /tmp
  rm -rf "$out"
  mkdir -p "$out"
  sockdir=$(mktemp -d "/tmp/$1.XXXXXX")
  pids=()
  nodes=()
  trap daemons_cleanup EXIT
}

daemons_cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$sockdir"
}

start() {  # name role domain [options...]
  local name=$1 role=$2 domain=$3; shift 3
  local boot=()
  [ -n "${dht_port:-}" ] && boot=(--bootstrap "127.0.0.1:$dht_port")
  mkdir -p "$sockdir/$name" && chmod 700 "$sockdir/$name"
  "$bin" node --data "$out/$name" --role "$role" --domain "$domain" --trust "$out/operator.public" \
    --control "$sockdir/$name/control.sock" --log-level "${LOG_LEVEL:-info}" "${boot[@]}" "$@" \
    > "$out/$name.ready" 2> "$out/$name.log" &
  pids+=($!)
  nodes+=("$name")
}

wait_ready() {  # name
  for _ in $(seq 150); do grep -q '^ready' "$out/$1.ready" && return 0; sleep 0.1; done
  cat "$out/$1.log" >&2; echo "$who: $1 did not start" >&2; exit 1
}
