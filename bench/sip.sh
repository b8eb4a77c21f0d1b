#!/usr/bin/env bash
# SIP registrar and call throughput of officebox against kamailio, on loopback only.
#
# Part 1: digest registrations. sipp runs REGISTER -> 401 -> REGISTER with digest
# credentials -> 200 (one sipp "call" per registration) against each server in turn, from
# the demo users in crates/voice/tests/sipp/users.csv (alice = 101, bob = 102,
# SEQUENTIAL: the rows repeat, so every registration after the first two refreshes one of
# two bindings, on both servers alike). Before the load, each server must pass the test
# scenarios in crates/voice/tests/sipp: options.xml, register_digest.xml (register and
# unregister both users) and register_wrong_password.xml (refused); a server that fails
# the registration check gets no load run. Then rates are tried upward (sipp -r RATE for
# DURATION seconds each) until a run fails 1% or more of its registrations or completes
# them at under 95% of the rate asked (the server falls behind); the best completed rate
# of the runs before is the server's figure, with its CPU time per registration
# (utime+stime from /proc/PID/stat; kamailio: the main process and its children). Prints
# officebox's ratios and the bar: officebox registrations/s >= kamailio.
#
# Part 2 (a): call setups. Each server is started afresh; bob's phone (102) is a sipp UAS
# that answers every INVITE (180, 200 with SDP) and every BYE, registered by
# register_contact.xml. A sipp UAC calls 102 as alice: INVITE -> 407 -> ACK -> INVITE with
# Proxy-Authorization (digest username = the login) -> 180 -> 200 -> ACK -> BYE at once
# -> 200, one sipp call per call, rates stepped up as in part 1 (same pass rule). officebox
# is a B2BUA and always relays media: its figure includes opening two RTP ports and a
# relay task per call (it has no switch to turn the relay off). kamailio is a stateful
# proxy: proxy_challenge/pv_proxy_authenticate (the users of part 1), lookup("location"),
# record_route(), t_relay(), loose_route() for ACK and BYE; SDP passes untouched and no
# media relay runs. Prints calls/s, CPU per call, the ratio and the bar: officebox calls/s
# >= kamailio.
# Part 2 (b): concurrent relayed G.711 calls, officebox only (kamailio relays no media;
# rtpengine/rtpproxy are not installed). officebox is started afresh; 102's phone is now
# a small Python asyncio program, because sipp cannot carry the audio at this scale:
# sipp 3.6's play_pcap_audio takes a thread and a raw socket per playing call (and each
# raw UDP socket gets a copy of every UDP packet on the machine), and its -rtp_echo
# socket keeps the default 208 KB buffer (it dropped 4.5% of 1000 calls' packets here).
# sipp only signals. The phone answers, and from the ACK to the BYE sends PCMA (sipp's
# g711a.pcap payloads, 30 ms packets) to its relay port; the caller's SDP names an echo
# socket (a child process of the phone) that sends each packet straight back, so every
# packet crosses officebox's relay twice and the phone counts what comes back per call.
# sipp places N calls at RAMP calls/s, each held until all N have talked together for
# STEADY seconds, then hangs up; N goes up (CONCURRENT) until a run loses 0.1% or more
# of its packets, fails a call, or the generator falls behind. Prints the largest N that
# passed, the loss and the CPU used by officebox and by the load generators at full
# load, and the bar: N >= 500.
#
# Part 3: calls over a SIP trunk, officebox only, beside kamailio as the telephone
# provider. officebox (afresh) registers trunk account 4930123456 at a second private
# kamailio (the provider, on PROVIDER port), and route `9.` (strip the 9) sends alice's
# calls there; alice may have 1,000 outside calls at once and 100,000 a day here (the
# defaults are 2 and 100). The
# provider challenges every INVITE on the trunk with 407 for the account's digest,
# record-routes it and relays it to the far phone at 102's port (no registration, no
# lookup), as a provider's proxy does. (a) Call setups: the calls of part 2 (a) to
# 95551234: INVITE, 407, INVITE with digest at the box, then the box's INVITE, the
# provider's 407, the box's INVITE with the account's digest, 180, 200, ACK, BYE, all
# relayed, rates stepped up as before. (b) Concurrent trunk calls with audio, as part 2
# (b), the RTP phone now behind the provider. Prints the trunk calls/s against
# officebox's internal calls/s of part 2 (a) in the same run, and the bars: trunk calls/s
# >= 80% of internal calls/s, and concurrent trunk calls >= 500.
#
# Usage (as root, like the other benchmarks):
#   bench/sip.sh                       # 5 s per rate; builds officebox (release) first
#   DURATION=3 bench/sip.sh            # quicker
#   SKIP_OFFICEBOX=1 bench/sip.sh      # kamailio only, no cargo build
#   OFFICEBOX_BIN=path bench/sip.sh    # this officebox binary, no cargo build
#   PEERS=0 bench/sip.sh               # officebox only (while tuning; ratios need kamailio)
#   RATES="1000 5000" bench/sip.sh     # the registration rates to try, upward
#   PARTS=2 bench/sip.sh               # calls only (PARTS=1: registrations only; PARTS="2 3":
#                                      # internal and trunk calls, the trunk bar's pair)
#   CALL_RATES="500 1000" bench/sip.sh # the call rates to try, upward
#   CONCURRENT="100 500" bench/sip.sh  # the numbers of concurrent calls to try, upward
#   RAMP=100 STEADY=10 bench/sip.sh    # calls placed per second; seconds all talk at once
#   SERVER_CPU=25 bench/sip.sh         # both servers held to 25% of one core (cgroup), so
#                                      # the server, not sipp, is the limit
# Needs sipp (Debian package sip-tester), kamailio (package kamailio; its install
# enables a system kamailio on 5060 at boot: scripts/test disables it, elsewhere run
# `systemctl disable --now kamailio`) and, for part 2, python3. kamailio runs as a
# private instance: config, pid file and runtime dir in the scratch dir, UDP on
# 127.0.0.1 only, no DNS lookups. officebox runs from a copy of examples/demo.toml with
# every port moved up by PORT_OFFSET (default 1000: SIP on 16060), rtp_ports widened to
# 10,000 ports (21000-30999: 2,500 calls) and its data dir in the scratch dir.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${DURATION:-5}"
rates="${RATES:-2000 4000 6000 7000 8000 9000 10000 11000 12000 13000 14000 16000 20000 24000}"
call_rates="${CALL_RATES:-500 1000 1500 2000 2500 3000 3500 4000 4500 5000 6000 8000}"
concurrent="${CONCURRENT:-100 200 500 800 1000 1200 1500 2000}"
ramp="${RAMP:-100}"            # calls placed per second in part 2 (b)
steady="${STEADY:-10}"         # seconds all N calls of a part 2 (b) run talk at once
parts="${PARTS:-1 2 3}"
trunk_concurrent="${TRUNK_CONCURRENT:-100 200 500 800 1000}"
port_offset="${PORT_OFFSET:-1000}"
max_failed=1                   # percent of the registrations (calls) of one run
min_pace=95                    # percent of the asked rate a passing run completes at
max_loss_permille=1            # RTP packets lost per 1000 sent: 0.1%
limit=5000                     # sipp -l: registrations (calls) in progress at most
rtp_span=10000                 # officebox's RTP ports in the copy (two per call)
addr=127.0.0.1
kam_port=$((15061 + port_offset))
cli_port=$((15062 + port_offset))   # sipp's own port (without -p it takes 5060 if free)
uas_port=$((15063 + port_offset))   # part 2: 102's phone (a sipp UAS, then the RTP phone)
uas_media=$((15070 + port_offset))  # its sipp's -mp (sipp binds it and +2; no audio)
cli_media=$((15080 + port_offset))  # the calling sipp's -mp (bound, no audio)
phone_rtp=$((15090 + port_offset))  # part 2 (b): the phone's audio socket, all calls
echo_rtp=$((15092 + port_offset))   # part 2 (b): the caller side's echo socket
prov_port=$((15064 + port_offset))  # part 3: the provider (a second kamailio) ...
prov_addr=127.0.0.2                 # ... on its own address: the box knows its calls by it
trunk_user=4930123456 trunk_password=trunk-secret  # part 3: the trunk account
sipp_dir="crates/voice/tests/sipp"
users_csv="$sipp_dir/users.csv"
g711_pcap=/usr/share/sip-tester/g711a.pcap   # 7 s of PCMA, 30 ms packets (sip-tester)
clk_tck="$(getconf CLK_TCK)"

part() { [[ " $parts " == *" $1 "* ]]; }

tools="sipp kamailio ss awk pgrep timeout"
if part 2 || part 3; then tools="$tools python3"; fi
for tool in $tools; do
    command -v "$tool" >/dev/null || {
        echo "missing: $tool (DEBIAN_FRONTEND=noninteractive apt-get install -y sip-tester kamailio python3)" >&2
        exit 1
    }
done
for f in options.xml register_digest.xml register_wrong_password.xml users.csv \
    users_wrong_password.csv register_contact.xml callee.csv caller.csv; do
    [ -f "$sipp_dir/$f" ] || { echo "missing: $sipp_dir/$f" >&2; exit 1; }
done
[ "$steady" -ge 4 ] || { echo "STEADY must be 4 s or more" >&2; exit 1; }
for n in $trunk_concurrent; do
    [ "$n" -le 1000 ] || { echo "TRUNK_CONCURRENT: $n is over alice's 1000 outside calls at once" >&2; exit 1; }
done
for n in $concurrent $trunk_concurrent; do
    [ "$n" -le $((rtp_span / 4)) ] || { echo "CONCURRENT: $n calls need more than $rtp_span RTP ports" >&2; exit 1; }
done

source bench/lib.sh
bench_start sip
cpu_cap_start

# The domain (and so the digest realm) of the demo: [network] domain in demo.toml.
domain="$(awk '/^\[/ { s = $0 } s == "[network]" && $1 == "domain" { gsub(/"/, "", $3); print $3; exit }' \
    examples/demo.toml)"
[ -n "$domain" ] || { echo "no [network] domain in examples/demo.toml" >&2; exit 1; }

# ------------------------------------------------------------------ the load scenarios
# In bench/sipp (each says what it does): register_load.xml, uas_load.xml,
# uac_call_load.xml, uac_rtp.xml; and part 2 (b)'s phone, bench/rtp_phone.py.
scenarios="$PWD/bench/sipp"
rtp_phone="$PWD/bench/rtp_phone.py"
for f in "$scenarios"/{register_load,uas_load,uac_call_load,uac_rtp}.xml "$rtp_phone"; do
    [ -f "$f" ] || { echo "missing: $f" >&2; exit 1; }
done

# Part 2 (b): bob's phone with audio (see its header).

# ------------------------------------------------------------------ helpers

# sipp_run TAG PORT SCENARIO [ARGS...]: sipp from $work against $addr:PORT; its screen
# goes to $work/TAG.out, its errors to $work/TAG.err. Returns sipp's status (0: every call
# succeeded, 1: some failed, other: sipp itself failed). sipp_timeout (seconds, default
# DURATION * 4 + 50) bounds the whole run.
sipp_run() {
    local tag="$1" port="$2" scenario="$3" rc=0 t="${sipp_timeout:-$((duration * 4 + 50))}"
    shift 3
    rm -f "$work/$tag.err"
    # -key domain and -auth_uri: see the header of register_digest.xml.
    (cd "$work" && timeout $((t + 10)) sipp -sf "$scenario" \
        -key domain "$domain" -auth_uri "$domain" -i "$addr" -p "$cli_port" -mp "$cli_media" \
        -nostdin -recv_timeout 5s -timeout "${t}s" \
        -trace_err -error_file "$work/$tag.err" "$@" "$addr:$port") \
        >"$work/$tag.out" 2>&1 || rc=$?
    return "$rc"
}

# sipp_errors FILE: the commonest kinds of error sipp logged in a run, four at most
sipp_errors() {
    [ -s "$1" ] || return 0
    grep -aoE "while expecting '[^']*' \(index [0-9]+\), received '[^']{0,70}|receive timeout on message [^:]*:[0-9]+|Unable to [^:]{0,70}" \
        "$1" | sort | uniq -c | sort -rn | head -4 |
        awk '{ n = $1; sub(/^ *[0-9]+ /, ""); printf "    sipp errors: %d x %s\n", n, $0 }' || true
}

# check NAME PORT LOG: the test scenarios, once each. Fails if registering does not work.
check() {
    local rc=0 opt reg wrong
    sipp_run "$1-options" "$2" "$PWD/$sipp_dir/options.xml" -m 1 && opt=ok || opt=FAIL
    sipp_run "$1-register" "$2" "$PWD/$sipp_dir/register_digest.xml" \
        -inf "$PWD/$users_csv" -m 2 && reg=ok || { reg=FAIL; rc=1; }
    sipp_run "$1-wrong" "$2" "$PWD/$sipp_dir/register_wrong_password.xml" \
        -inf "$PWD/$sipp_dir/users_wrong_password.csv" -m 2 && wrong=ok || wrong=FAIL
    printf '  %-9s checks: options %s, register+unregister %s, wrong password refused %s\n' \
        "$1" "$opt" "$reg" "$wrong"
    if [ "$opt" = FAIL ]; then
        echo "  WARNING: $1 did not answer OPTIONS with 200 ($work/$1-options.err):" >&2
        head -c 1500 "$work/$1-options.err" >&2 2>/dev/null || tail -n 20 "$work/$1-options.out" >&2
    fi
    if [ "$wrong" = FAIL ]; then
        echo "  WARNING: $1 did not refuse wrong passwords: its figure is not comparable" >&2
        head -c 1500 "$work/$1-wrong.err" >&2 2>/dev/null || tail -n 20 "$work/$1-wrong.out" >&2
    fi
    if [ "$reg" = FAIL ]; then
        echo "  $1: digest registration failed; sipp's errors:" >&2
        head -c 3000 "$work/$1-register.err" >&2 2>/dev/null || tail -n 20 "$work/$1-register.out" >&2
        echo "  $1's log:" >&2
        tail -n 30 "$3" >&2
    fi
    return "$rc"
}

# server_ticks NAME: CPU ticks of the server and its live children
server_ticks() {
    if [ "$1" = kamailio ]; then
        # shellcheck disable=SC2046  # a list of pids
        ticks "$kam_pid" $(pgrep -P "$kam_pid")
    else
        ticks "$obx_pid"
    fi
}

results=()        # part 1: "server best_rate at_r us_per_registration"
call_results=()   # part 2 (a): "server best_rate at_r us_per_call"
rtp_result="n/a"  # part 2 (b): officebox's largest N of concurrent calls under the loss bar
rtp_note=""
rtp_cpu=""
trunk_result="officebox n/a n/a n/a"  # part 3 (a): as call_results
trunk_rtp="n/a" trunk_rtp_cpu="" trunk_rtp_note=""  # part 3 (b)

# load_run NAME PORT RATE UNIT SCENARIO [SIPP ARGS...]: one load run of RATE * DURATION
# sipp calls, each one UNIT (a registration or a call). Prints a line; sets run_rate
# (completed per second), run_ok and run_us (server CPU per completed one).
load_run() {
    local name="$1" port="$2" rate="$3" unit="$4" scenario="$5" tag="$1-$4-load"
    local before after rc=0 line ok failed retrans elapsed
    shift 5
    run_ok=0 run_rate=n/a run_us=n/a
    rm -f "$work/stat.csv"
    before="$(server_ticks "$name")"
    sipp_run "$tag" "$port" "$scenario" "$@" \
        -r "$rate" -m $((rate * duration)) -l "$limit" -trace_stat -stf "$work/stat.csv" -fd 1 || rc=$?
    after="$(server_ticks "$name")"
    if [ "$rc" -gt 1 ] || [ ! -s "$work/stat.csv" ]; then
        echo "  sipp failed (status $rc) against $name:" >&2
        tail -n 20 "$work/$tag.out" >&2
        return 1
    fi
    # The last row: cumulative counts; StartTime and CurrentTime end in epoch seconds.
    line="$(awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
        { split($c["StartTime"], s, "\t"); split($c["CurrentTime"], e, "\t")
          r = sprintf("%d %d %d %.3f", $c["SuccessfulCall(C)"], $c["FailedCall(C)"],
                      $c["Retransmissions(C)"], e[3] - s[3]) }
        END { print r }' "$work/stat.csv")"
    read -r ok failed retrans elapsed <<<"$line"
    run_rate="$(awk -v n="$ok" -v t="$elapsed" 'BEGIN { if (t > 0) printf "%.0f", n / t; else print 0 }')"
    run_us="$(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="$ok" \
        'BEGIN { if (n > 0) printf "%.1f", t * 1e6 / hz / n; else print "n/a" }')"
    run_ok="$(awk -v ok="$ok" -v f="$failed" -v r="$run_rate" -v asked="$rate" -v mf="$max_failed" \
        -v mp="$min_pace" 'BEGIN { n = ok + f
        print (n > 0 && f * 100 < mf * n && r * 100 >= mp * asked) ? 1 : 0 }')"
    printf '  %-9s -r %-6s %6s %ss/s  ok %-7s failed %-6s retransmissions %-7s server CPU %6s us/%s  %s\n' \
        "$name" "$rate" "$run_rate" "$unit" "$ok" "$failed" "$retrans" "$run_us" "$unit" \
        "$([ "$run_ok" = 1 ] && echo ok || echo FAIL)"
    [ "$run_ok" = 1 ] || sipp_errors "$work/$tag.err"
    sleep 1   # late retransmissions and answers die down before the next run
}

# ladder NAME PORT UNIT RATES SCENARIO [SIPP ARGS...]: RATES upward until the first failing
# run; sets lad_best, lad_at and lad_us from the best passing one (n/a: none passed).
ladder() {
    local name="$1" port="$2" unit="$3" rate_list="$4" scenario="$5" rate
    shift 5
    lad_best=n/a lad_at=n/a lad_us=n/a
    for rate in $rate_list; do
        load_run "$name" "$port" "$rate" "$unit" "$scenario" "$@" || break
        [ "$run_ok" = 1 ] || break
        if [ "$lad_best" = n/a ] || [ "$run_rate" -gt "$lad_best" ]; then
            lad_best=$run_rate lad_at=$rate lad_us=$run_us
        fi
    done
}

# bench NAME PORT: part 1's registration rates; records the best passing one.
bench() {
    ladder "$1" "$2" registration "$rates" "$scenarios/register_load.xml" -inf "$PWD/$users_csv"
    results+=("$1 $lad_best $lad_at $lad_us")
}

na() { results+=("$1 n/a n/a n/a"); }

# forget PID: it has ended; the clean-up must not signal that number (pids wrap at 32768).
forget() {
    local p keep=()
    for p in "${pids[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    pids=("${keep[@]}")
}

stop() { # PID: stop one process we started
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    forget "$1"
}

# register_phone NAME PORT: registers extension 102 (bob) with its contact at $uas_port.
register_phone() {
    sipp_run "$1-register-102" "$2" "$PWD/$sipp_dir/register_contact.xml" \
        -inf "$PWD/$sipp_dir/callee.csv" -key contact_port "$uas_port" -m 1 && return 0
    echo "  $1: registering 102's phone failed; sipp's errors:" >&2
    head -c 2000 "$work/$1-register-102.err" >&2 2>/dev/null || tail -n 20 "$work/$1-register-102.out" >&2
    return 1
}

# calls NAME PORT LOG: part 2 (a) against a fresh server: bob's phone is a sipp UAS, one
# call must go through, then the call rates; records the best passing one.
calls() {
    local uas rc=0
    (cd "$work" && exec sipp -sf "$scenarios/uas_load.xml" -i "$addr" -p "$uas_port" -mp "$uas_media" \
        -nostdin -trace_err -error_file "$work/$1-uas.err") >"$work/$1-uas.out" 2>&1 &
    uas=$!
    pids+=("$uas")
    if ! wait_listen "$uas_port" "$uas" "$work/$1-uas.out" || ! register_phone "$1" "$2"; then
        rc=1
    elif ! sipp_run "$1-call" "$2" "$scenarios/uac_call_load.xml" -inf "$PWD/$sipp_dir/caller.csv" \
        -key callee 102 -m 1; then
        echo "  $1: a call from 101 to 102 failed; sipp's errors:" >&2
        head -c 3000 "$work/$1-call.err" >&2 2>/dev/null || tail -n 20 "$work/$1-call.out" >&2
        echo "  $1's log:" >&2
        tail -n 30 "$3" >&2
        rc=1
    else
        printf '  %-9s check: 102 registered at %s:%s (sipp UAS), a call from 101 to 102 ok\n' \
            "$1" "$addr" "$uas_port"
        ladder "$1" "$2" call "$call_rates" "$scenarios/uac_call_load.xml" \
            -inf "$PWD/$sipp_dir/caller.csv" -key callee 102
        call_results+=("$1 $lad_best $lad_at $lad_us")
    fi
    [ "$rc" = 0 ] || call_results+=("$1 n/a n/a n/a")
    stop "$uas"
    grep -aq 'Aborting call' "$work/$1-uas.err" 2>/dev/null &&
        echo "  (bob's sipp aborted calls: $(grep -ac 'Aborting call' "$work/$1-uas.err"); $work/$1-uas.err)"
    return 0
}

# child_named PID NAME: the first child or grandchild of PID called NAME (none: nothing)
child_named() {
    local c g
    for c in $(pgrep -P "$1" || true); do
        [ "$(cat "/proc/$c/comm" 2>/dev/null)" = "$2" ] && { echo "$c"; return 0; }
        for g in $(pgrep -P "$c" || true); do
            [ "$(cat "/proc/$g/comm" 2>/dev/null)" = "$2" ] && { echo "$g"; return 0; }
        done
    done
    return 0
}

# rtp_run NAME PORT N: N calls placed at $ramp/s, all talking at once for $steady s. Prints
# two lines; sets run_ok (passed), run_gen (the generator fell behind), run_cpu.
rtp_run() {
    local n="$3" rc=0 sp sipp_pid="" ramp_ms hold_ms line ok=0 failed=0
    local o0 o1 p0 p1 s0 s1 m0 m1 j0 j1 t0 t1
    local sent received echoed lost out back loss talking skipped late lossy worst
    ramp_ms=$((n * 1000 / ramp))
    hold_ms=$((ramp_ms + steady * 1000))
    run_ok=0 run_gen=0 run_cpu=""
    phone_stats >/dev/null || return 1   # new totals
    rm -f "$work/rtp-stat.csv"
    sipp_timeout=$((2 * ramp_ms / 1000 + steady + 60)) sipp_run "$1-rtp-$n" "$2" \
        "$scenarios/uac_rtp.xml" -inf "$PWD/$sipp_dir/caller.csv" -key callee "${rtp_callee:-102}" \
        -key echo_port "$echo_rtp" -r "$ramp" -m "$n" -l "$n" -d "$hold_ms" \
        -trace_stat -stf "$work/rtp-stat.csv" -fd 1 &
    sp=$!
    sleep 0.5
    sipp_pid="$(child_named "$sp" sipp)"
    [ -z "$sipp_pid" ] || pids+=("$sipp_pid")
    # Full load: from 1 s after the last call is placed to 1 s before the first hangs up.
    sleep "$(awk -v ms="$ramp_ms" 'BEGIN { print ms / 1000 + 0.5 }')"
    t0="$(now)" o0="$(ticks "$obx_pid")" p0="$(ticks "$phone_pid" "$echo_pid")"
    s0="$(ticks $sipp_pid)"
    read -r m0 j0 < <(machine_jiffies)
    sleep $((steady - 2))
    t1="$(now)" o1="$(ticks "$obx_pid")" p1="$(ticks "$phone_pid" "$echo_pid")"
    s1="$(ticks $sipp_pid)"
    read -r m1 j1 < <(machine_jiffies)
    wait "$sp" || rc=$?
    [ -z "$sipp_pid" ] || forget "$sipp_pid"
    sleep 1
    line="$(phone_stats)" || return 1
    if [ "$rc" -gt 1 ] || [ ! -s "$work/rtp-stat.csv" ]; then
        echo "  sipp failed (status $rc) against $1:" >&2
        tail -n 20 "$work/$1-rtp-$n.out" >&2
        return 1
    fi
    read -r ok failed < <(sipp_outcome "$work/rtp-stat.csv")
    sent="$(kv sent "$line")" received="$(kv received "$line")" echoed="$(kv echoed "$line")"
    talking="$(kv max_talking "$line")" skipped="$(kv skipped "$line")"
    late="$(kv max_late_ms "$line")" lossy="$(kv lossy_calls "$line")"
    worst="$(kv worst_call_loss_pct "$line")"
    sent=${sent:-0} received=${received:-0} echoed=${echoed:-0} talking=${talking:-0}
    skipped=${skipped:-0} ok=${ok:-0} failed=${failed:-0}
    lost=$((sent - received)) out=$((sent - echoed)) back=$((echoed - received))
    loss="$(awk -v l="$lost" -v s="$sent" 'BEGIN { if (s > 0) printf "%.3f%%", l * 100 / s; else print "n/a" }')"
    run_cpu="officebox $(pct $((o1 - o0)) "$t0" "$t1") of a core, load generators $(pct $((p1 - p0 + s1 - s0)) "$t0" "$t1") (phone+echo $(pct $((p1 - p0)) "$t0" "$t1"), sipp $(pct $((s1 - s0)) "$t0" "$t1")), machine $(awk -v b=$((m1 - m0)) -v t=$((j1 - j0)) 'BEGIN { if (t > 0) printf "%.0f%%", b * 100 / t; else print "n/a" }') busy"
    [ "$skipped" = 0 ] || run_gen=1
    if [ "$failed" = 0 ] && [ "$ok" = "$n" ] && [ "$talking" -ge "$n" ] && [ "$sent" -gt 0 ] &&
        [ $((lost * 1000)) -lt $((sent * max_loss_permille)) ] && [ "$run_gen" = 0 ]; then
        run_ok=1
    fi
    printf '  %-9s %5s calls: ok %s, failed %s, talking at once %s; RTP %s sent, %s lost (%s: %s on the way out, %s back; calls with loss %s, worst %s%%)  %s\n' \
        "$1" "$n" "$ok" "$failed" "$talking" "$sent" "$lost" "$loss" "$out" "$back" "$lossy" "$worst" \
        "$([ "$run_ok" = 1 ] && echo ok || echo FAIL)"
    printf '  %-9s %5s       CPU at full load: %s; generator up to %.0f ms late%s\n' "" "" "$run_cpu" \
        "${late:-0}" "$([ "$run_gen" = 1 ] && echo ", $skipped packets skipped: the generator is short of CPU" || true)"
    [ "$failed" = 0 ] || sipp_errors "$work/$1-rtp-$n.err"
}

# rtp_calls NAME PORT LOG: part 2 (b) against a fresh officebox: bob's phone is the RTP
# phone; N upward until a run fails; records the largest N that passed.
rtp_calls() {
    local n best=n/a cpu=""
    (cd "$work" && exec python3 "$rtp_phone" "$uas_port" "$phone_rtp" "$echo_rtp" \
        "$work/phone.stats" "$g711_pcap") >"$work/phone.log" 2>&1 &
    phone_pid=$!
    pids+=("$phone_pid")
    echo_pid=""
    # Over the trunk the provider reaches the phone at its port: nothing to register.
    if wait_listen "$uas_port" "$phone_pid" "$work/phone.log" &&
        { [ -n "${rtp_callee:-}" ] || register_phone "$1" "$2"; }; then
        echo_pid="$(pgrep -P "$phone_pid" || true)"
        [ -z "$echo_pid" ] || pids+=("$echo_pid")
        rtp_note="loss over every packet's two trips through the relay; sipp places $ramp calls/s"
        for n in ${rtp_list:-$concurrent}; do
            rtp_run "$1" "$2" "$n" || break
            if [ "$run_ok" != 1 ]; then
                [ "$run_gen" = 0 ] || rtp_note="the load generator fell behind at $n calls: a lower bound"
                break
            fi
            best=$n cpu="$run_cpu"
            sleep 2   # the calls' relay ports are given back
        done
        local list="${rtp_list:-$concurrent}"
        [ "$best" != "${list##* }" ] || rtp_note="passed the largest N tried (${list##* }): add larger CONCURRENT"
    fi
    rtp_result="$best"
    rtp_cpu="$cpu"
    stop "$phone_pid"   # its echo child goes with it
    [ -z "$echo_pid" ] || forget "$echo_pid"
}

# provider_config: part 3's telephone provider, a private kamailio on $prov_addr:$prov_port
# (its own address: officebox knows a provider's calls by where they come from): the trunk
# account registers with digest (www), every new INVITE is challenged for the account's
# digest (407, realm the From domain), record-routed, and relayed to the far phone at
# $uas_port; in-dialog requests follow the route. Also the trunk and route for officebox.
provider_config() {
    mkdir -p "$work/prov/run"
    cat >"$work/prov/kamailio.cfg" <<EOF
#!KAMAILIO
debug=1
log_stderror=yes
children=2
listen=udp:$prov_addr:$prov_port
dns=no
rev_dns=no
auto_aliases=no
disable_tcp=yes
disable_sctp=yes
use_dns_cache=no

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "siputils.so"
loadmodule "textops.so"

modparam("usrloc", "db_mode", 0)
modparam("auth", "secret", "provider-$$-$RANDOM")

request_route {
    if (!mf_process_maxfwd_header("10")) {
        sl_send_reply("483", "Too Many Hops");
        exit;
    }
    if (has_totag()) {
        if (loose_route()) {
            if (!t_relay()) {
                sl_reply_error();
            }
            exit;
        }
        if (is_method("ACK")) {
            if (t_check_trans()) {
                t_relay();
            }
            exit;
        }
        sl_send_reply("404", "Not Here");
        exit;
    }
    if (is_method("CANCEL")) {
        if (t_check_trans()) {
            t_relay();
        }
        exit;
    }
    if (is_method("OPTIONS")) {
        sl_send_reply("200", "OK");
        exit;
    }
    if (is_method("REGISTER")) {
        if (!pv_www_authenticate("\$td", "$trunk_password", "0") || \$au != "$trunk_user") {
            www_challenge("\$td", "0");
            exit;
        }
        consume_credentials();
        if (!save("location")) {
            sl_reply_error();
        }
        exit;
    }
    if (!is_method("INVITE")) {
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }
    if (\$au != "$trunk_user" || !pv_proxy_authenticate("\$fd", "$trunk_password", "0")) {
        proxy_challenge("\$fd", "0");
        exit;
    }
    consume_credentials();
    record_route();
    \$du = "sip:$addr:$uas_port";
    if (!t_relay()) {
        sl_reply_error();
    }
}
EOF
    cat >"$work/trunk.toml" <<EOF

[[phone.trunks]]
name = "provider"
server = "$prov_addr:$prov_port"
username = "$trunk_user"
password = "$trunk_password"

[[phone.routes]]
name = "out"
pattern = "9."
strip = 1
trunks = ["provider"]
EOF
    if ! kamailio -f "$work/prov/kamailio.cfg" -c >"$work/prov/check.log" 2>&1; then
        echo "the provider's kamailio config does not check:" >&2
        cat "$work/prov/check.log" >&2
        return 1
    fi
}

# provider_start: the provider (sets prov_pid); -m 512 as for kamailio below. It is the
# world outside the office: SERVER_CPU holds officebox, not the provider.
provider_start() {
    kamailio -f "$work/prov/kamailio.cfg" -P "$work/prov/kamailio.pid" \
        -Y "$work/prov/run" -w "$work/prov" -DD -E -m 512 >>"$work/prov/kamailio.log" 2>&1 &
    prov_pid=$!
    pids+=("$prov_pid")
    addr="$prov_addr" wait_listen "$prov_port" "$prov_pid" "$work/prov/kamailio.log"
}

# trunk_registered LOG: waits up to 10 s for officebox's trunk to register
trunk_registered() {
    local i
    for i in $(seq 100); do
        grep -aq 'phone: trunk registered' "$1" && return 0
        sleep 0.1
    done
    echo "  the trunk did not register at the provider; officebox's log:" >&2
    grep -a 'trunk' "$1" | tail -n 5 >&2
    return 1
}

# trunk_calls PORT LOG: part 3 (a): the far phone is a sipp UAS behind the provider; one
# call must go through, then the call rates; records the best passing one.
trunk_calls() {
    local uas
    (cd "$work" && exec sipp -sf "$scenarios/uas_load.xml" -i "$addr" -p "$uas_port" -mp "$uas_media" \
        -nostdin -trace_err -error_file "$work/trunk-uas.err") >"$work/trunk-uas.out" 2>&1 &
    uas=$!
    pids+=("$uas")
    if wait_listen "$uas_port" "$uas" "$work/trunk-uas.out" &&
        sipp_run trunk-call "$1" "$scenarios/uac_call_load.xml" -inf "$PWD/$sipp_dir/caller.csv" \
            -key callee 95551234 -m 1; then
        printf '  %-9s check: a call from 101 to 95551234 over the trunk ok\n' officebox
        ladder officebox "$1" call "$call_rates" "$scenarios/uac_call_load.xml" \
            -inf "$PWD/$sipp_dir/caller.csv" -key callee 95551234
        trunk_result="officebox $lad_best $lad_at $lad_us"
    else
        echo "  a call over the trunk failed; sipp's errors:" >&2
        head -c 3000 "$work/trunk-call.err" >&2 2>/dev/null || tail -n 20 "$work/trunk-call.out" >&2
        tail -n 30 "$2" >&2
    fi
    stop "$uas"
}

echo "SIP: sipp on $addr:$cli_port, domain $domain, users from $users_csv; runs of ${duration}s"
if part 1; then
    echo "part 1, registrations: rates (-r) $rates"
fi
if part 2; then
    echo "part 2 (a), calls: rates (-r) $call_rates; (b) concurrent calls with RTP: N = $concurrent"
fi
if part 3; then
    echo "part 3, calls over a trunk to kamailio as the provider: rates (-r) $call_rates; with RTP: N = $trunk_concurrent"
fi
echo "pass: failed < $max_failed% and completed >= $min_pace% of the rate (RTP: lost < 0.$max_loss_permille%)"
port_free "$prov_addr" "$prov_port" || { echo "$prov_addr:$prov_port is in use (ss -lnut)" >&2; exit 1; }
for p in "$kam_port" "$cli_port" "$uas_port" "$uas_media" $((uas_media + 2)) "$cli_media" \
    $((cli_media + 2)) "$phone_rtp" "$echo_rtp"; do
    port_free "$addr" "$p" || { echo "$addr:$p is in use (ss -lnut)" >&2; exit 1; }
done

# ------------------------------------------------------------------ officebox

officebox_binary

# obx_start DIR: officebox from $work/DIR with an empty data dir (sets obx_pid, obx_log)
obx_start() {
    local dir="$work/$1" p
    mkdir -p "$dir/data"
    # examples/demo.toml with its data dir in $dir and every port (NAME_port = N, and
    # rtp_ports = "A-B") moved up by $port_offset, rtp_ports widened to $rtp_span ports;
    # everything else as the demo has it.
    awk -v data="$dir/data" -v off="$port_offset" -v span="$rtp_span" '
        /^data_dir[ \t]*=/ { print "data_dir = \"" data "\""; next }
        match($0, /^[a-z0-9_]*port[ \t]*=[ \t]*[0-9]+/) {
            head = substr($0, 1, RLENGTH); rest = substr($0, RLENGTH + 1)
            n = head; sub(/.*=[ \t]*/, "", n); sub(/[0-9]+$/, "", head)
            print head (n + off) rest; next }
        match($0, /^rtp_ports[ \t]*=[ \t]*"[0-9]+-[0-9]+"/) {
            rest = substr($0, RLENGTH + 1); v = substr($0, 1, RLENGTH)
            sub(/^[^"]*"/, "", v); sub(/"$/, "", v); split(v, r, "-")
            print "rtp_ports = \"" (r[1] + off) "-" (r[1] + off + span - 1) "\"" rest; next }
        { print }' examples/demo.toml >"$dir/officebox.toml"
    if [ -n "${obx_extra:-}" ]; then
        # Part 3: the trunk and the route, and alice may make 1,000 outside calls at once
        # and 100,000 a day (the defaults, 2 and 100, would end the benchmark early).
        awk '{ print } $0 == "login = \"alice\"" {
            print "outside_calls_at_once = 1000"; print "outside_calls_per_day = 100000" }' \
            "$dir/officebox.toml" >"$dir/officebox.toml.new"
        cat "$obx_extra" >>"$dir/officebox.toml.new"
        mv "$dir/officebox.toml.new" "$dir/officebox.toml"
    fi
    obx_sip="$(awk '/^\[/ { s = $0 } s == "[phone]" && $1 == "sip_port" { print $3; exit }' \
        "$dir/officebox.toml")"
    obx_rtp="$(awk '/^\[/ { s = $0 } s == "[phone]" && $1 == "rtp_ports" { gsub(/"/, "", $3); print $3; exit }' \
        "$dir/officebox.toml")"
    for p in $(awk '/^[a-z0-9_]*port[ \t]*=/ { print $3 }' "$dir/officebox.toml"); do
        port_free "$addr" "$p" || { echo "$addr:$p is in use (ss -lnut)" >&2; exit 1; }
    done
    obx_log="$dir/officebox.log"
    (cd "$dir" && exec "${cap_cmd[@]}" "$obx_bin" run --config officebox.toml) >"$obx_log" 2>&1 &
    obx_pid=$!
    pids+=("$obx_pid")
    wait_listen "${obx_sip:?no [phone] sip_port in the config}" "$obx_pid" "$obx_log"
}

obx_warnings() { # the first warnings and errors of the phone service in officebox's log
    grep -aE ' (WARN|ERROR) .*phone' "$obx_log" | head -5 | sed 's/^/  officebox log: /' >&2 || true
}

if [ -z "$obx_src" ]; then
    na officebox
    call_results+=("officebox n/a n/a n/a")
else
    mkdir -p "$work/obx"
    # A private copy: a rebuild during the run does not swap the binary under us.
    obx_bin="$work/obx/officebox"
    cp "$obx_src" "$obx_bin"
    if part 1; then
        if ! obx_start obx; then
            echo "officebox: did not start or listen on SIP, marked n/a" >&2
            na officebox
        else
            echo "officebox: $obx_src, SIP on $addr:$obx_sip"
            if ! check officebox "$obx_sip" "$obx_log"; then
                echo "officebox: registration check failed, marked n/a" >&2
                na officebox
            else
                bench officebox "$obx_sip"
            fi
        fi
        stop "$obx_pid"
    fi
    if part 2; then
        if obx_start obx-calls; then
            echo "officebox (afresh): calls, SIP on $addr:$obx_sip, RTP relay ports $obx_rtp"
            calls officebox "$obx_sip" "$obx_log"
            obx_warnings
        else
            echo "officebox: did not start, calls marked n/a" >&2
            call_results+=("officebox n/a n/a n/a")
        fi
        stop "$obx_pid"
        if obx_start obx-rtp; then
            echo "officebox (afresh): concurrent calls with RTP through its relay ($obx_rtp); phone 102 = bench/rtp_phone.py"
            rtp_calls officebox "$obx_sip" "$obx_log"
            obx_warnings
        else
            echo "officebox: did not start, concurrent calls marked n/a" >&2
        fi
        stop "$obx_pid"
    fi
    if part 3; then
        if ! provider_config || ! provider_start; then
            echo "the provider (kamailio) did not start; part 3 marked n/a" >&2
        else
            echo "provider: kamailio $(kamailio -v | awk 'NR == 1 { print $3 }') on $prov_addr:$prov_port (pid $prov_pid), trunk account $trunk_user"
            if obx_extra="$work/trunk.toml" obx_start obx-trunk && trunk_registered "$obx_log"; then
                echo "officebox (afresh): calls over the trunk, SIP on $addr:$obx_sip"
                trunk_calls "$obx_sip" "$obx_log"
                obx_warnings
            fi
            stop "$obx_pid"
            # A fresh provider too: after an overloaded rate, kamailio still retransmits
            # the last run's requests for a while, into the next one.
            stop "$prov_pid"
            if provider_start && obx_extra="$work/trunk.toml" obx_start obx-trunk-rtp &&
                trunk_registered "$obx_log"; then
                echo "officebox (afresh): concurrent calls over the trunk with RTP ($obx_rtp)"
                internal_rtp=("$rtp_result" "$rtp_cpu" "$rtp_note")
                rtp_note=""
                rtp_callee=95551234 rtp_list="$trunk_concurrent" rtp_calls officebox "$obx_sip" "$obx_log"
                trunk_rtp="$rtp_result" trunk_rtp_cpu="$rtp_cpu" trunk_rtp_note="$rtp_note"
                rtp_result="${internal_rtp[0]}" rtp_cpu="${internal_rtp[1]}" rtp_note="${internal_rtp[2]}"
                obx_warnings
            fi
            stop "$obx_pid"
            stop "$prov_pid"
            grep -E ' (ERROR|CRITICAL|ALERT|BUG): ' "$work/prov/kamailio.log" | sed 's/^/  provider log: /' | head -5 >&2 || true
        fi
    fi
fi

# ------------------------------------------------------------------ kamailio
if [ "${PEERS:-1}" = 1 ]; then

mkdir -p "$work/kam/run"
# A registrar like officebox's: the digest username is the LOGIN, the password that
# login's, the realm the To domain; the AOR (To user) must be that login's extension
# (403 otherwise). Users and passwords come from $users_csv, whose rows are
# EXT;[authentication username=LOGIN password=PASSWORD]. No database (usrloc db_mode 0).
# For part 2, a stateful proxy for calls: an INVITE from a local user is challenged with
# 407 (realm the From domain, the same users; pv_proxy_authenticate is proxy_authorize
# with the password from the script instead of a database), its callee looked up in the
# location table, record-routed and relayed with tm; ACK and BYE follow the route.
{
    cat <<EOF
#!KAMAILIO
debug=1
log_stderror=yes
children=2
listen=udp:$addr:$kam_port
dns=no
rev_dns=no
auto_aliases=no
disable_tcp=yes
disable_sctp=yes
use_dns_cache=no

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "siputils.so"
loadmodule "textops.so"

modparam("usrloc", "db_mode", 0)
modparam("auth", "secret", "bench-$$-$RANDOM")

request_route {
    if (!mf_process_maxfwd_header("10")) {
        sl_send_reply("483", "Too Many Hops");
        exit;
    }
    if (is_method("OPTIONS")) {
        sl_send_reply("200", "OK");
        exit;
    }
    if (has_totag()) {
        route(WITHINDLG);
        exit;
    }
    if (is_method("CANCEL")) {
        if (t_check_trans()) {
            t_relay();
        }
        exit;
    }
    if (!is_method("REGISTER|INVITE")) {
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }
    \$var(pw) = "";
    \$var(ext) = "";
EOF
    awk -F';' '/^[0-9]/ {
        u = $2; sub(/.*username=/, "", u); sub(/[ \]].*/, "", u)
        p = $2; sub(/.*password=/, "", p); sub(/[ \]].*/, "", p)
        printf "    if ($au == \"%s\") {\n        $var(pw) = \"%s\";\n        $var(ext) = \"%s\";\n    }\n", u, p, $1
    }' "$users_csv"
    cat <<'EOF'
    if (is_method("INVITE")) {
        route(CALL);
        exit;
    }
    if ($var(pw) == "" || !pv_www_authenticate("$td", "$var(pw)", "0")) {
        www_challenge("$td", "0");
        exit;
    }
    if ($tU != $var(ext)) {
        sl_send_reply("403", "Forbidden");
        exit;
    }
    consume_credentials();
    if (!save("location")) {
        sl_reply_error();
    }
}

route[CALL] {
    if ($var(pw) == "" || !pv_proxy_authenticate("$fd", "$var(pw)", "0")) {
        proxy_challenge("$fd", "0");
        exit;
    }
    consume_credentials();
    if (!lookup("location")) {
        sl_send_reply("404", "Not Found");
        exit;
    }
    record_route();
    if (!t_relay()) {
        sl_reply_error();
    }
}

route[WITHINDLG] {
    if (loose_route()) {
        if (!t_relay()) {
            sl_reply_error();
        }
        exit;
    }
    if (is_method("ACK")) {
        if (t_check_trans()) {
            t_relay();
        }
        exit;
    }
    sl_send_reply("404", "Not Here");
}
EOF
} >"$work/kam/kamailio.cfg"
if ! kamailio -f "$work/kam/kamailio.cfg" -c >"$work/kam/check.log" 2>&1; then
    echo "kamailio: config check failed:" >&2
    cat "$work/kam/check.log" >&2
    exit 1
fi

# kam_start: a private kamailio (sets kam_pid). -DD: no daemon, the main process stays
# our child (and stops its children on SIGTERM). -m 512: shared memory for the
# transactions of a few thousand calls a second (tm keeps each one 5 s after it ends;
# the default 64 MB runs out).
kam_start() {
    "${cap_cmd[@]}" kamailio -f "$work/kam/kamailio.cfg" -P "$work/kam/kamailio.pid" -Y "$work/kam/run" \
        -w "$work/kam" -DD -E -m 512 >>"$work/kam/kamailio.log" 2>&1 &
    kam_pid=$!
    pids+=("$kam_pid")
    wait_listen "$kam_port" "$kam_pid" "$work/kam/kamailio.log"
}

if part 1; then
    kam_start || { echo "kamailio failed" >&2; exit 1; }
    echo "kamailio $(kamailio -v | awk 'NR == 1 { print $3 }'): $addr:$kam_port (private instance, pid $kam_pid)"
    if check kamailio "$kam_port" "$work/kam/kamailio.log"; then
        bench kamailio "$kam_port"
    else
        na kamailio
    fi
    stop "$kam_pid"
fi
if part 2; then
    kam_start || { echo "kamailio failed" >&2; exit 1; }
    echo "kamailio (afresh, pid $kam_pid): calls as a stateful proxy, no media relay"
    calls kamailio "$kam_port" "$work/kam/kamailio.log"
    stop "$kam_pid"
fi
grep -E ' (ERROR|CRITICAL|ALERT|BUG): ' "$work/kam/kamailio.log" | sed 's/^/  kamailio log: /' | head -5 >&2 || true

fi # PEERS

# ------------------------------------------------------------------ report


bar() { # A B: PASS when A >= B
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else print (a >= b) ? "PASS" : "FAIL" }'
}

if part 1; then
    echo
    printf '%-10s %16s %8s %18s\n' server registrations/s "at -r" "CPU us/registration"
    for r in "${results[@]}"; do
        # shellcheck disable=SC2086
        printf '%-10s %16s %8s %18s\n' $r
    done
    echo
    echo "officebox / kamailio:"
    printf '  registrations/s      %6s\n' "$(ratio "$(field officebox 2)" "$(field kamailio 2)")"
    printf '  CPU/registration     %6s\n' "$(ratio "$(field officebox 4)" "$(field kamailio 4)")"
    echo "bar: officebox registrations/s >= kamailio: $(bar "$(field officebox 2)" "$(field kamailio 2)")"
    for s in officebox kamailio; do
        if [ "$(field "$s" 3)" = "${rates##* }" ]; then
            echo "note: $s passed the highest rate tried; add higher RATES to find its limit"
        fi
    done
fi

if part 2; then
    echo
    echo "calls (INVITE, 407, INVITE with digest, 180, 200, ACK, BYE, 200):"
    printf '%-10s %16s %8s %18s\n' server calls/s "at -r" "CPU us/call"
    for r in "${call_results[@]}"; do
        # shellcheck disable=SC2086
        printf '%-10s %16s %8s %18s\n' $r
    done
    echo
    echo "officebox / kamailio:"
    printf '  calls/s              %6s\n' "$(ratio "$(field officebox 2 call_results)" "$(field kamailio 2 call_results)")"
    printf '  CPU/call             %6s\n' "$(ratio "$(field officebox 4 call_results)" "$(field kamailio 4 call_results)")"
    # Both pass the same rate with completed rates a few calls/s apart: the bar compares
    # the highest rate passed (-r).
    echo "bar: officebox calls/s >= kamailio (the highest rate passed): $(bar "$(field officebox 3 call_results)" "$(field kamailio 3 call_results)")"
    echo "note: officebox's calls include its media relay (two RTP ports opened and a relay task per"
    echo "  call; it has no switch to turn the relay off); kamailio passes SDP through, no media relay"
    for s in officebox kamailio; do
        if [ "$(field "$s" 3 call_results)" = "${call_rates##* }" ]; then
            echo "note: $s passed the highest call rate tried; add higher CALL_RATES to find its limit"
        fi
    done
    echo
    echo "concurrent G.711 calls relayed by officebox (PCMA, 30 ms packets, audio both ways, loss < 0.$max_loss_permille%):"
    echo "  officebox: $rtp_result calls${rtp_cpu:+; at that load $rtp_cpu}"
    [ -z "$rtp_note" ] || echo "  ($rtp_note)"
    echo "  kamailio: n/a (no media relay: rtpengine/rtpproxy not installed)"
    echo "bar: officebox concurrent calls >= 500: $(bar "$rtp_result" 500)"
fi
if part 3; then
    echo
    echo "calls over a trunk (the calls of part 2 (a); then the box's INVITE to the provider, its 407,"
    echo "the INVITE with the trunk account's digest; kamailio as the provider relays to the far phone):"
    printf '%-10s %16s %8s %18s\n' server calls/s "at -r" "CPU us/call"
    # shellcheck disable=SC2086
    printf '%-10s %16s %8s %18s\n' $trunk_result
    internal="$(field officebox 2 call_results)"
    trunk="$(awk '{ print $2 }' <<<"$trunk_result")"
    echo "officebox over the trunk / officebox between extensions (part 2 (a)): $(ratio "$trunk" "$internal")"
    echo "bar: trunk calls/s >= 80% of internal calls/s: $(bar "$trunk" "$(awk -v i="$internal" 'BEGIN { if (i == "n/a") print "n/a"; else printf "%.0f", i * 0.8 }')")"
    echo "concurrent G.711 calls over the trunk (audio both ways through the relay, loss < 0.$max_loss_permille%):"
    echo "  officebox: $trunk_rtp calls${trunk_rtp_cpu:+; at that load $trunk_rtp_cpu}"
    [ -z "$trunk_rtp_note" ] || echo "  ($trunk_rtp_note)"
    echo "bar: concurrent trunk calls >= 500: $(bar "$trunk_rtp" 500)"
fi
echo "(sipp and the server share the two cores: compare ratios from the same run)"
