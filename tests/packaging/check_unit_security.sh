#!/usr/bin/env bash
# CTest package_unit_security: systemd's own rating of the unit's sandbox
# (`systemd-analyze security`, 0 = locked down, 10 = exposed) stays at most MAX.
# Exit 77 (skipped) where systemd-analyze cannot rate a unit file offline.
set -euo pipefail
unit=${1:?usage: check_unit_security.sh UNIT MAX}
max=${2:?usage: check_unit_security.sh UNIT MAX}
command -v systemd-analyze >/dev/null || { echo "SKIPPED: no systemd-analyze (package systemd)"; exit 77; }
out=$(systemd-analyze security --offline=yes "$unit" 2>&1) || true
level=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
[ -n "$level" ] || { echo "$out" | tail -3; echo "SKIPPED: this systemd-analyze cannot rate a unit file offline (needs systemd >= 250)"; exit 77; }
grep "✗" <<<"$out" || true
echo "exposure level $level (at most $max)"
awk -v l="$level" -v m="$max" 'BEGIN { exit !(l <= m) }' || { echo "check_unit_security: $unit exposure $level is above $max" >&2; exit 1; }
