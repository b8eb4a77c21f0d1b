#!/usr/bin/env bash
# Concurrent fax receptions over G.711: how many fax calls officebox takes at once with
# every page intact, its CPU while they run, and its CPU seconds per page received.
#
# officebox runs the demo (every port moved up by PORT_OFFSET, default 3000) with a fax
# machine at extension 180 mailing to alice. For each N in CONCURRENT, N fax machines
# (testkit's fax-sender: SpanDSP's own T.30 engine and modems, each on its own RTP port)
# send PAGES A4 fine pages each (test pages of blocks and bars, made by fax-sender), and
# one sipp places their N calls from alice's extension (INVITE with digest, 200, ACK,
# the box's BYE when the fax is over: crates/voice/tests/sipp/uac_fax.xml with each
# call's RTP port from the injection file) at RAMP calls/s. A run passes when every call
# ended well on both sides: each machine's T.30 status is 0 with all PAGES confirmed
# (ECM: every page arrives as sent or not at all), and the box mailed each fax with all
# its pages whole ("phone: fax delivered ... complete=PAGES reason=OK"). officebox's CPU
# time over the run gives its share of a core and its CPU per page. No peer: the fax
# servers a user might pick instead (HylaFAX with a modem, Asterisk's res_fax) are not
# Debian packages that run here without hardware; the bar is the issue's, 20 at once
# under one core.
#
# Usage (as root, like the other benchmarks):
#   bench/fax.sh                         # N = 1 10 20 30, 3 pages each; builds (release)
#   CONCURRENT="20 30" PAGES=2 bench/fax.sh
#   OFFICEBOX_BIN=path FAX_SENDER_BIN=path bench/fax.sh   # no cargo build
# Loopback only: officebox, sipp and the fax machines all on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

concurrent="${CONCURRENT:-1 10 20 30}"
pages="${PAGES:-3}"
ramp="${RAMP:-5}"
port_offset="${PORT_OFFSET:-3000}"
first_rtp=$((40000 + port_offset))   # the fax machines' RTP ports, two apart

for tool in sipp awk python3; do
    command -v "$tool" >/dev/null || {
        echo "missing: $tool (apt packages: sip-tester gawk python3)" >&2
        exit 1
    }
done

source bench/lib.sh
bench_start fax
officebox_binary
[ -n "${obx_src:-}" ] || { echo "no officebox binary" >&2; exit 1; }
if [ -n "${FAX_SENDER_BIN:-}" ]; then
    sender="$FAX_SENDER_BIN"
else
    cargo build --release --locked -p officebox-testkit --bin fax-sender
    sender="$repo/target/release/fax-sender"
fi

phone_demo "$work/obx" "$port_offset" 4000
printf '\n[[phone.fax]]\nname = "main"\nextension = "180"\nto = "alice"\nident = "+1 555 0199"\n' \
    >>"$work/obx/officebox.toml"
phone_demo_start "$work/obx"
"$sender" pages "$pages" "$work/pages.tif"
# uac_fax.xml with each call's RTP port from the injection file (field 2).
sed 's/\[fax_port\]/[field2]/' crates/voice/tests/sipp/uac_fax.xml >"$work/uac_fax.xml"

results=()
for n in $concurrent; do
    log_before="$(grep -c "phone: fax delivered" "$work/obx/officebox.log" || true)"
    {
        echo "SEQUENTIAL"
        for i in $(seq 0 $((n - 1))); do
            echo "101;[authentication username=alice password=demo-alice];$((first_rtp + 2 * i))"
        done
    } >"$work/calls.csv"
    senders=()
    for i in $(seq 0 $((n - 1))); do
        "$sender" send $((first_rtp + 2 * i)) "$work/pages.tif" >"$work/sender-$n-$i.out" 2>&1 &
        senders+=($!)
        pids+=($!)
    done
    t0="$(now)" c0="$(ticks "$obx_pid")"
    rc=0
    (cd "$work" && timeout 3600 sipp -sf "$work/uac_fax.xml" -inf "$work/calls.csv" \
        -key domain "$domain" -key callee 180 -auth_uri "$domain" -i 127.0.0.1 \
        -p $((15090 + port_offset)) \
        -r "$ramp" -m "$n" -l "$n" -nostdin -recv_timeout 900s -trace_err \
        -error_file "$work/sipp-$n.err" "127.0.0.1:$sip_port") >"$work/sipp-$n.out" 2>&1 || rc=$?
    t1="$(now)" c1="$(ticks "$obx_pid")"
    # sipp itself failed (not a failed call): no call will come for the machines.
    if [ "$rc" -gt 1 ]; then
        kill "${senders[@]}" 2>/dev/null || true
        tail -n 5 "$work/sipp-$n.out" >&2
    fi
    good=0
    for p in "${senders[@]}"; do
        if wait "$p"; then good=$((good + 1)); fi
    done
    sleep 1
    whole="$(awk -v from="$log_before" -v p="$pages" '/phone: fax delivered/ { k++; if (k > from && index($0, "complete=" p " ") && index($0, "reason=OK")) n++ } END { print n + 0 }' "$work/obx/officebox.log")"
    received=$((whole * pages))
    cpu="$(pct $((c1 - c0)) "$t0" "$t1")"
    per_page="$(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n="$received" 'BEGIN { if (n > 0) printf "%.3f", t / hz / n; else print "n/a" }')"
    secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }')"
    ok=$([ "$rc" = 0 ] && [ "$good" = "$n" ] && [ "$whole" = "$n" ] && echo ok || echo FAIL)
    printf '  %3s at once: %s machines sent all %s pages, %s faxes mailed whole; %s s; officebox %s of a core, %s CPU-s per page  %s\n' \
        "$n" "$good" "$pages" "$whole" "$secs" "$cpu" "$per_page" "$ok"
    [ "$ok" = ok ] || { tail -n 5 "$work/sipp-$n.err" 2>/dev/null || true; }
    results+=("$n $ok $cpu $per_page")
done

best=n/a
for r in "${results[@]}"; do
    read -r n ok cpu per <<<"$r"
    [ "$ok" = ok ] && best="$n at once ($cpu of a core, $per CPU-s per page)"
done
echo
echo "concurrent fax receptions, every page intact: $best"
echo "bar: 20 at once under one core"
