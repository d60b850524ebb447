#!/usr/bin/env bash
# CTest package_cli_docs: the man pages and the bash completion generated from
# the binary's --help (scripts/cli_reference.py) cover every command and work.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: check_cli_docs.sh BUILD_DIR}
fail() { echo "check_cli_docs: $*" >&2; exit 1; }
comp=$build/completion/patchswarm
[ -s "$comp" ] || fail "$comp was not generated"

# complete WORDS...: what the completion offers for the last word.
complete_words() {
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _patchswarm; echo "${COMPREPLY[*]}"' _ "$comp" "$@"
}
[ "$(complete_words patchswarm no)" = node ] || fail "'patchswarm no' completes to '$(complete_words patchswarm no)'"
grep -qw -- --version <<<"$(complete_words patchswarm --)" || fail "'patchswarm --' does not offer --version"
got=$(complete_words patchswarm node --conf)
[ "$got" = --config ] || fail "'patchswarm node --conf' completes to '$got', not --config"
grep -qw -- --json <<<"$(complete_words patchswarm status --)" || fail "'patchswarm status --' does not offer --json"
# After an option with a value: files.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
touch "$tmp/op.public"
got=$(complete_words patchswarm node --trust "$tmp/op.pu")
[ "$got" = "$tmp/op.public" ] || fail "'node --trust $tmp/op.pu' completes to '$got'"

# One man page per command, plus patchswarm(1) with the exit-status table.
commands=$(python3 "$here/scripts/cli_reference.py" "$build/patchswarm" commands | cut -d' ' -f1)
[ "$(wc -l <<<"$commands")" -ge 10 ] || fail "only $(wc -l <<<"$commands") commands found in --help"
for c in $commands; do
  page=$build/man/patchswarm-$c.1.gz
  [ -s "$page" ] || fail "no man page $page"
  grep -q "^        $c) " "$comp" || fail "the completion does not know '$c'"
done
grep -qF -- '\-\-config\fR TEXT' <<<"$(zcat "$build/man/patchswarm-node.1.gz")" || fail "patchswarm-node(1) does not describe --config"
grep -q 'usage error' <<<"$(zcat "$build/man/patchswarm.1.gz")" || fail "patchswarm(1) lacks the exit-status table"
echo "check_cli_docs: ok ($(wc -w <<<"$commands") commands)"
