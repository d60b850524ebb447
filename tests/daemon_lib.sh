# Helpers shared by the shell tests that run daemons (nat_reachability.sh,
# lan_discovery.sh). Sourced after $ps (the patchswarm binary) and $work (the
# test's folder, each daemon's data folder in it by name) are set.

# status NAME: the daemon's `status --json`.
status() { "$ps" status --json --data "$work/$1" 2>/dev/null; }
# jget EXPR < JSON: a Python expression of j, the parsed JSON.
jget() { python3 -c "import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
# wait_for SECONDS COMMAND...: until COMMAND succeeds, or fail after SECONDS.
wait_for() {
    local until=$((SECONDS + $1)); shift
    until "$@"; do [ $SECONDS -lt $until ] || return 1; sleep 0.5; done
}
# make_patch NAME SIZE_BYTES [publish flags...]: an operator key, a random
# patch of that size and its signed manifest, in $work.
make_patch() {
    local name=$1 size=$2; shift 2
    "$ps" keygen --secret "$work/op.secret" --public "$work/op.public" >/dev/null
    head -c "$size" /dev/urandom > "$work/patch.bin"
    "$ps" publish --key "$work/op.secret" --file "$work/patch.bin" --name "$name" --version 1 "$@" \
        --out "$work/patch.manifest" >/dev/null
}
