#!/usr/bin/env bash
# SIP registrar throughput of officebox against kamailio, on loopback only.
#
# Part 1 (written): digest registrations. sipp runs REGISTER -> 401 -> REGISTER with
# digest credentials -> 200 (one sipp "call" per registration) against each server in
# turn, from the demo users in crates/voice/tests/sipp/users.csv (alice = 101, bob = 102,
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
# Part 2 (TODO, not written yet): call setups and concurrent RTP calls; see the marked
# section below.
#
# Usage (as root, like the other benchmarks):
#   bench/sip.sh                       # 5 s per rate; builds officebox (release) first
#   DURATION=3 bench/sip.sh            # quicker
#   SKIP_OFFICEBOX=1 bench/sip.sh      # kamailio only, no cargo build
#   OFFICEBOX_BIN=path bench/sip.sh    # this officebox binary, no cargo build
#   PEERS=0 bench/sip.sh               # officebox only (while tuning; ratios need kamailio)
#   RATES="1000 5000" bench/sip.sh     # the rates to try, upward
# Needs sipp (Debian package sip-tester) and kamailio (package kamailio; its install
# enables a system kamailio on 5060 at boot: scripts/test disables it, elsewhere run
# `systemctl disable --now kamailio`). kamailio runs as a private instance: config,
# pid file and runtime dir in the scratch dir, UDP on 127.0.0.1 only, no DNS lookups.
# officebox runs from a copy of examples/demo.toml with every port moved up by
# PORT_OFFSET (default 1000: SIP on 16060) and its data dir in the scratch dir.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${DURATION:-5}"
skip_officebox="${SKIP_OFFICEBOX:-0}"
rates="${RATES:-2000 4000 6000 7000 8000 9000 10000 11000 12000 13000 14000 16000 20000 24000}"
port_offset="${PORT_OFFSET:-1000}"
max_failed=1                   # percent of the registrations of one run
min_pace=95                    # percent of the asked rate a passing run completes at
limit=5000                     # sipp -l: registrations in progress at most
addr=127.0.0.1
kam_port=$((15061 + port_offset))
cli_port=$((15062 + port_offset))   # sipp's own port (without -p it takes 5060 if free)
sipp_dir="crates/voice/tests/sipp"
users_csv="$sipp_dir/users.csv"
clk_tck="$(getconf CLK_TCK)"

for tool in sipp kamailio ss awk pgrep timeout; do
    command -v "$tool" >/dev/null || {
        echo "missing: $tool (DEBIAN_FRONTEND=noninteractive apt-get install -y sip-tester kamailio)" >&2
        exit 1
    }
done
for f in options.xml register_digest.xml register_wrong_password.xml users.csv \
    users_wrong_password.csv; do
    [ -f "$sipp_dir/$f" ] || { echo "missing: $sipp_dir/$f" >&2; exit 1; }
done

source bench/lib.sh
bench_start sip

# The domain (and so the digest realm) of the demo: [network] domain in demo.toml.
domain="$(awk '/^\[/ { s = $0 } s == "[network]" && $1 == "domain" { gsub(/"/, "", $3); print $3; exit }' \
    examples/demo.toml)"
[ -n "$domain" ] || { echo "no [network] domain in examples/demo.toml" >&2; exit 1; }

# ------------------------------------------------------------------ the load scenario

# register_digest.xml without its unregister: the registration half, as a load.
cat >"$work/register_load.xml" <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<!-- bench/sip.sh: REGISTER, 401, REGISTER with [field1] (see register_digest.xml), 200 -->
<scenario name="REGISTER with digest (load)">
  <send retrans="500">
    <![CDATA[

      REGISTER sip:[domain] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];rport;branch=[branch]
      Max-Forwards: 70
      From: <sip:[field0]@[domain]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field0]@[domain]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[field0]@[local_ip]:[local_port]>
      Expires: 3600
      User-Agent: sipp bench
      Content-Length: 0

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[

      REGISTER sip:[domain] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];rport;branch=[branch]
      Max-Forwards: 70
      From: <sip:[field0]@[domain]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field0]@[domain]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:[field0]@[local_ip]:[local_port]>
      Expires: 3600
      [field1]
      User-Agent: sipp bench
      Content-Length: 0

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
</scenario>
EOF

# ------------------------------------------------------------------ helpers

# sipp_run TAG PORT SCENARIO [ARGS...]: sipp from $work against $addr:PORT; its screen
# goes to $work/TAG.out, its errors to $work/TAG.err. Returns sipp's status (0: every call
# succeeded, 1: some failed, other: sipp itself failed).
sipp_run() {
    local tag="$1" port="$2" scenario="$3" rc=0
    shift 3
    # -key domain and -auth_uri: see the header of register_digest.xml.
    (cd "$work" && timeout $((duration * 4 + 60)) sipp -sf "$scenario" \
        -key domain "$domain" -auth_uri "$domain" -i "$addr" -p "$cli_port" \
        -nostdin -recv_timeout 5s -timeout $((duration * 4 + 50))s \
        -trace_err -error_file "$work/$tag.err" "$@" "$addr:$port") \
        >"$work/$tag.out" 2>&1 || rc=$?
    return "$rc"
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

results=()   # "server best_rate at_r us_per_registration"

# one_run NAME PORT RATE: one load run. Prints a line; sets run_rate (registrations
# completed per second), run_ok and run_us (server CPU per registration).
one_run() {
    local before after rc=0 line ok failed retrans elapsed
    run_ok=0 run_rate=n/a run_us=n/a
    rm -f "$work/stat.csv"
    before="$(server_ticks "$1")"
    sipp_run "$1-load" "$2" "$work/register_load.xml" -inf "$PWD/$users_csv" \
        -r "$3" -m $(($3 * duration)) -l "$limit" -trace_stat -stf "$work/stat.csv" -fd 1 || rc=$?
    after="$(server_ticks "$1")"
    if [ "$rc" -gt 1 ] || [ ! -s "$work/stat.csv" ]; then
        echo "  sipp failed (status $rc) against $1:" >&2
        tail -n 20 "$work/$1-load.out" >&2
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
    run_ok="$(awk -v ok="$ok" -v f="$failed" -v r="$run_rate" -v asked="$3" -v mf="$max_failed" \
        -v mp="$min_pace" 'BEGIN { n = ok + f
        print (n > 0 && f * 100 < mf * n && r * 100 >= mp * asked) ? 1 : 0 }')"
    printf '  %-9s -r %-6s %6s registrations/s  ok %-7s failed %-6s retransmissions %-7s server CPU %6s us/registration  %s\n' \
        "$1" "$3" "$run_rate" "$ok" "$failed" "$retrans" "$run_us" \
        "$([ "$run_ok" = 1 ] && echo ok || echo FAIL)"
    sleep 1   # late retransmissions and answers die down before the next run
}

# bench NAME PORT: rates upward until the first failing run; records the best passing one.
bench() {
    local rate best=n/a at=n/a us=n/a
    for rate in $rates; do
        one_run "$1" "$2" "$rate" || break
        [ "$run_ok" = 1 ] || break
        if [ "$best" = n/a ] || [ "$run_rate" -gt "$best" ]; then
            best=$run_rate at=$rate us=$run_us
        fi
    done
    results+=("$1 $best $at $us")
}

na() { results+=("$1 n/a n/a n/a"); }

stop() { # PID: stop one server we started
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

echo "SIP: sipp on $addr:$cli_port, domain $domain, users from $users_csv; runs of ${duration}s"
echo "rates (-r): $rates; pass: failed < $max_failed% and completed >= $min_pace% of the rate"

# ------------------------------------------------------------------ officebox

obx_src=""
if [ "$skip_officebox" = 1 ]; then
    echo "officebox: skipped (SKIP_OFFICEBOX=1)"
elif [ -n "${OFFICEBOX_BIN:-}" ]; then
    obx_src="$OFFICEBOX_BIN"
elif cargo build --release --locked -p officebox; then
    obx_src="$PWD/target/release/officebox"
else
    echo "officebox: build failed, marked n/a" >&2
fi
if [ -z "$obx_src" ]; then
    na officebox
else
    mkdir -p "$work/obx/data"
    # A private copy: a rebuild during the run does not swap the binary under us.
    obx_bin="$work/obx/officebox"
    cp "$obx_src" "$obx_bin"
    # examples/demo.toml with its data dir in $work and every port (NAME_port = N, and
    # rtp_ports = "A-B") moved up by $port_offset; everything else as the demo has it.
    awk -v data="$work/obx/data" -v off="$port_offset" '
        /^data_dir[ \t]*=/ { print "data_dir = \"" data "\""; next }
        match($0, /^[a-z0-9_]*port[ \t]*=[ \t]*[0-9]+/) {
            head = substr($0, 1, RLENGTH); rest = substr($0, RLENGTH + 1)
            n = head; sub(/.*=[ \t]*/, "", n); sub(/[0-9]+$/, "", head)
            print head (n + off) rest; next }
        match($0, /^rtp_ports[ \t]*=[ \t]*"[0-9]+-[0-9]+"/) {
            rest = substr($0, RLENGTH + 1); v = substr($0, 1, RLENGTH)
            sub(/^[^"]*"/, "", v); sub(/"$/, "", v); split(v, r, "-")
            print "rtp_ports = \"" (r[1] + off) "-" (r[2] + off) "\"" rest; next }
        { print }' examples/demo.toml >"$work/obx/officebox.toml"
    obx_sip="$(awk '/^\[/ { s = $0 } s == "[phone]" && $1 == "sip_port" { print $3; exit }' \
        "$work/obx/officebox.toml")"
    obx_ports="$(awk '/^[a-z0-9_]*port[ \t]*=/ { print $3 }' "$work/obx/officebox.toml")"
    for p in $obx_ports; do
        port_free "$addr" "$p" || { echo "$addr:$p is in use (ss -lnut)" >&2; exit 1; }
    done
    echo "officebox: $obx_src, SIP on $addr:${obx_sip:?no [phone] sip_port in the config}"
    (cd "$work/obx" && exec "$obx_bin" run --config officebox.toml) >"$work/obx/officebox.log" 2>&1 &
    obx_pid=$!
    pids+=("$obx_pid")
    if ! wait_listen "$obx_sip" "$obx_pid" "$work/obx/officebox.log"; then
        echo "officebox: did not start or listen on SIP, marked n/a" >&2
        na officebox
    elif ! check officebox "$obx_sip" "$work/obx/officebox.log"; then
        echo "officebox: registration check failed, marked n/a" >&2
        na officebox
    else
        bench officebox "$obx_sip"
    fi
    stop "$obx_pid"
fi

# ------------------------------------------------------------------ kamailio
if [ "${PEERS:-1}" = 1 ]; then

port_free "$addr" "$kam_port" || { echo "$addr:$kam_port is in use (ss -lnut)" >&2; exit 1; }
mkdir -p "$work/kam/run"
# A registrar like officebox's: the digest username is the LOGIN, the password that
# login's, the realm the To domain; the AOR (To user) must be that login's extension
# (403 otherwise). Users and passwords come from $users_csv, whose rows are
# EXT;[authentication username=LOGIN password=PASSWORD]. No database (usrloc db_mode 0).
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
    if (!is_method("REGISTER")) {
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
EOF
} >"$work/kam/kamailio.cfg"
if ! kamailio -f "$work/kam/kamailio.cfg" -c >"$work/kam/check.log" 2>&1; then
    echo "kamailio: config check failed:" >&2
    cat "$work/kam/check.log" >&2
    exit 1
fi
# -DD: no daemon, the main process stays our child (and stops its children on SIGTERM).
kamailio -f "$work/kam/kamailio.cfg" -P "$work/kam/kamailio.pid" -Y "$work/kam/run" \
    -w "$work/kam" -DD -E >"$work/kam/kamailio.log" 2>&1 &
kam_pid=$!
pids+=("$kam_pid")
echo "kamailio $(kamailio -v | awk 'NR == 1 { print $3 }'): $addr:$kam_port (private instance, pid $kam_pid)"
wait_listen "$kam_port" "$kam_pid" "$work/kam/kamailio.log" || { echo "kamailio failed" >&2; exit 1; }
if check kamailio "$kam_port" "$work/kam/kamailio.log"; then
    bench kamailio "$kam_port"
else
    na kamailio
fi
stop "$kam_pid"
grep -E ' (ERROR|CRITICAL|ALERT|BUG): ' "$work/kam/kamailio.log" | sed 's/^/  kamailio log: /' | head -5 >&2 || true

fi # PEERS

# ------------------------------------------------------------------ part 2: calls (TODO)
#
# TODO (a later session writes this part; nothing below runs yet):
#   (a) call setups: INVITE -> 100/180 -> 200 -> ACK -> BYE -> 200 between two registered
#       demo phones through each server. A sipp UAS registers as bob (102) (a scenario
#       that REGISTERs with digest, then waits as a UAS; or sipp -sn uas plus a separate
#       registration of its contact) and a sipp UAC calls sip:102@DOMAIN as alice (101),
#       answering the 407 (or 401) challenge to the INVITE with [field1] as in
#       register_digest.xml. Figure: call setups/s with under 1% failed, stepped like
#       part 1, plus server CPU per call. kamailio needs a proxy route for that: modules
#       rr, tm (t_relay), registrar lookup("location"), auth proxy_authorize/
#       proxy_challenge for INVITEs from local users, record_route(), loose_route() for
#       in-dialog ACK/BYE.
#   (b) concurrent RTP calls: N calls held open at once with audio through the server's
#       RTP relay (officebox [phone] rtp_ports, here moved up by PORT_OFFSET): sipp's
#       rtp_stream / -rtp_echo, or baresip pairs, playing a WAV made with espeak-ng and
#       sox; count calls whose audio arrives (packets received vs sent, jitter). kamailio
#       alone relays no media: the fair peer is kamailio + rtpengine/rtpproxy (not
#       installed yet), or compare officebox with kamailio on signalling only.
# Report both next to part 1's table, with ratios and the bar the brief sets.

# ------------------------------------------------------------------ report

echo
printf '%-10s %16s %8s %18s\n' server registrations/s "at -r" "CPU us/registration"
for r in "${results[@]}"; do
    # shellcheck disable=SC2086
    printf '%-10s %16s %8s %18s\n' $r
done

field() { # SERVER COLUMN (2 = registrations/s, 3 = at -r, 4 = CPU us/registration)
    local r cols
    for r in "${results[@]}"; do
        read -r -a cols <<<"$r"
        if [ "${cols[0]}" = "$1" ]; then
            echo "${cols[$(($2 - 1))]}"
            return
        fi
    done
    echo n/a
}

echo
echo "officebox / kamailio:"
printf '  registrations/s      %6s\n' "$(ratio "$(field officebox 2)" "$(field kamailio 2)")"
printf '  CPU/registration     %6s\n' "$(ratio "$(field officebox 4)" "$(field kamailio 4)")"
v="$(awk -v a="$(field officebox 2)" -v b="$(field kamailio 2)" \
    'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else print (a >= b) ? "PASS" : "FAIL" }')"
echo "bar: officebox registrations/s >= kamailio: $v"
for s in officebox kamailio; do
    if [ "$(field "$s" 3)" = "${rates##* }" ]; then
        echo "note: $s passed the highest rate tried; add higher RATES to find its limit"
    fi
done
echo "(sipp and the server share the two cores: compare ratios from the same run)"
