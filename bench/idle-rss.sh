#!/usr/bin/env bash
# Idle memory of the demo: starts `officebox run --config examples/demo.toml` (release
# build) in a scratch directory, lets it settle, and prints its resident set size.
# The foundation's bar: under 30 MB. Usage: bench/idle-rss.sh [SECONDS_TO_SETTLE]
set -euo pipefail
cd "$(dirname "$0")/.."
settle="${1:-5}"

cargo build --release --locked -q -p officebox
bin="$PWD/target/release/officebox"
work="$(mktemp -d /tmp/obx-bench-rss-XXXXXX)"
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

cp examples/demo.toml "$work/officebox.toml"
(cd "$work" && exec "$bin" run --config officebox.toml >"$work/log" 2>&1) &
pid=$!
for _ in $(seq 50); do grep -q "officebox running" "$work/log" 2>/dev/null && break; sleep 0.1; done
grep -q "officebox running" "$work/log" || { cat "$work/log"; echo "officebox did not start" >&2; exit 1; }
sleep "$settle"

rss_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
hwm_kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
threads=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status")
printf 'officebox demo, idle %ss: RSS %.1f MB (peak %.1f MB), %s threads; bar: < 30 MB\n' \
    "$settle" "$(echo "$rss_kb/1024" | bc -l)" "$(echo "$hwm_kb/1024" | bc -l)" "$threads"
[ "$rss_kb" -lt $((30 * 1024)) ]
