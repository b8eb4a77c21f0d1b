#!/usr/bin/env bash
# DNS throughput of officebox against dnsmasq and unbound, on loopback only.
#
# Every server gets the same 10,000 local names (hostN.bench.test A 10.x.y.z) and forwards
# everything else to one shared upstream: a dnsmasq on 127.0.0.2:53 that serves 10,000
# names nameN.fwd.test. The servers run one at a time; each gets
#   (a) local:     dnsperf over the 10,000 local names,
#   (b) forwarded: a warm-up pass that caches every nameN.fwd.test, then dnsperf over them.
# Prints qps, queries lost, the server's CPU time per completed query (/proc/PID/stat
# utime+stime) and its RSS after each run, then officebox's ratios against the peers.
#
# Usage (as root: the upstream binds 127.0.0.2:53, because officebox forwards to port 53):
#   bench/dns.sh                     # 20 s per dnsperf run, builds officebox (release)
#   DURATION=5 bench/dns.sh          # quicker
#   SKIP_OFFICEBOX=1 bench/dns.sh    # peers only, no cargo build
#   PEERS=0 bench/dns.sh             # officebox only (while tuning; ratios need the peers)
# Nothing leaves 127.0.0.0/8: no server reads /etc/resolv.conf or uses root hints.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${DURATION:-20}"
skip_officebox="${SKIP_OFFICEBOX:-0}"
names=10000
domain="bench.test"
up_addr=127.0.0.2 up_port=53           # shared upstream (officebox has no upstream port setting)
obx_addr=127.0.0.1 obx_port=15353
dm_addr=127.0.0.1 dm_port=15354
ub_addr=127.0.0.1 ub_port=15355
clk_tck="$(getconf CLK_TCK)"

for tool in dnsmasq unbound dnsperf dig ss awk; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done

source bench/lib.sh
bench_start dns
chmod 755 "$work"                       # dnsmasq drops root and rereads its hosts files

# ------------------------------------------------------------------ data

awk -v n="$names" -v d="$domain" 'BEGIN { for (i = 1; i <= n; i++)
    printf "10.%d.%d.%d host%d.%s\n", 1 + int(i / 65536), int(i / 256) % 256, i % 256, i, d }' \
    >"$work/local.hosts"
awk -v n="$names" 'BEGIN { for (i = 1; i <= n; i++)
    printf "10.%d.%d.%d name%d.fwd.test\n", 100 + int(i / 65536), int(i / 256) % 256, i % 256, i }' \
    >"$work/fwd.hosts"
awk '{ print $2, "A" }' "$work/local.hosts" >"$work/local.queries"
awk '{ print $2, "A" }' "$work/fwd.hosts" >"$work/fwd.queries"
chmod 644 "$work"/*.hosts
host1_ip="$(awk 'NR == 1 { print $1 }' "$work/local.hosts")"

# ------------------------------------------------------------------ helpers

# wait_answer ADDR PORT NAME EXPECTED PID LOG: up to 10 s for the server to answer
wait_answer() {
    local i
    for i in $(seq 100); do
        if ! kill -0 "$5" 2>/dev/null; then
            echo "server (pid $5) exited; its log:" >&2; cat "$6" >&2; return 1
        fi
        if [ "$(dig +short +time=1 +tries=1 @"$1" -p "$2" "$3" A 2>/dev/null)" = "$4" ]; then
            return 0
        fi
        sleep 0.1
    done
    echo "no answer for $3 from $1:$2 after 10 s; server log:" >&2; cat "$6" >&2
    return 1
}

rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

stop() { # PID: stop one server we started
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

results=()   # "server test qps lost us_per_query rss_mb"

# measure NAME TEST ADDR PORT QUERYFILE PID
measure() {
    local before after out qps lost done_q us rcodes up_before up_after
    before="$(ticks "$6")" up_before="$(ticks "$up_pid")"
    out="$(dnsperf -s "$3" -p "$4" -d "$5" -l "$duration" -c 4 -Q 1000000 2>&1)" || {
        echo "$out" >&2; echo "dnsperf failed against $1" >&2; return 1; }
    after="$(ticks "$6")" up_after="$(ticks "$up_pid")"
    qps="$(awk '/Queries per second:/ { printf "%.0f", $4 }' <<<"$out")"
    lost="$(awk '/Queries lost:/ { print $3 }' <<<"$out")"
    done_q="$(awk '/Queries completed:/ { print $3 }' <<<"$out")"
    us="$(awk -v t=$((after - before)) -v hz="$clk_tck" -v q="$done_q" \
        'BEGIN { if (q > 0) printf "%.2f", t * 1e6 / hz / q; else print "n/a" }')"
    rcodes="$(awk -F': *' '/Response codes:/ { print $2 }' <<<"$out")"
    results+=("$1 $2 $qps $lost $us $(rss_mb "$6")")
    printf '  %-9s %-9s %9s qps  lost %-6s %6s us/query  %s\n' "$1" "$2" "$qps" "$lost" "$us" "$rcodes"
    [[ "$rcodes" =~ ^NOERROR\ [0-9]+\ \(100\.00%\)$ ]] ||
        echo "  WARNING: $1 $2: not every answer was NOERROR ($rcodes)" >&2
    # A warm cache sends (almost) nothing upstream during the forwarded run.
    [ $((up_after - up_before)) -le $((clk_tck / 10)) ] ||
        echo "  WARNING: $1 $2: upstream used $((up_after - up_before)) ticks of CPU (cache misses?)" >&2
}

# warm ADDR PORT: resolve every forwarded name once, until a pass loses none (max 5 passes)
warm() {
    local pass out lost
    for pass in 1 2 3 4 5; do
        out="$(dnsperf -s "$1" -p "$2" -d "$work/fwd.queries" -n 1 -c 4 -q 50 -Q 5000 -t 2 2>&1)" || {
            echo "$out" >&2; return 1; }
        lost="$(awk '/Queries lost:/ { print $3 }' <<<"$out")"
        [ "$lost" = 0 ] && return 0
        echo "  warm-up pass $pass lost $lost queries, again" >&2
    done
    echo "  warm-up still lost queries after 5 passes" >&2
}

# bench NAME ADDR PORT PID LOG: the two tests against one running server
bench() {
    if ! wait_answer "$2" "$3" "host1.$domain" "$host1_ip" "$4" "$5"; then
        return 1
    fi
    if ! wait_answer "$2" "$3" "name1.fwd.test" "10.100.0.1" "$4" "$5"; then
        return 1
    fi
    # errexit is off in here (callers test the status): check every step
    measure "$1" local "$2" "$3" "$work/local.queries" "$4" || return 1
    warm "$2" "$3" || return 1
    measure "$1" forwarded "$2" "$3" "$work/fwd.queries" "$4" || return 1
}

na() { results+=("$1 local n/a n/a n/a n/a" "$1 forwarded n/a n/a n/a n/a"); }

# ------------------------------------------------------------------ shared upstream

port_free "$up_addr" "$up_port" || {
    echo "$up_addr:$up_port is in use (ss -lnup); the upstream needs it" >&2; exit 1; }
dnsmasq --no-daemon --log-facility=- --port="$up_port" --listen-address="$up_addr" \
    --bind-interfaces --no-resolv --no-hosts --addn-hosts="$work/fwd.hosts" \
    --local=/fwd.test/ --local-ttl=3600 --cache-size=0 --address=/many.test/10.200.0.1 \
    >"$work/upstream.log" 2>&1 &
up_pid=$!
pids+=("$up_pid")
wait_answer "$up_addr" "$up_port" name1.fwd.test 10.100.0.1 "$up_pid" "$work/upstream.log"
echo "upstream: dnsmasq on $up_addr:$up_port, $names names in fwd.test; runs of ${duration}s"

# ------------------------------------------------------------------ officebox

if [ "$skip_officebox" = 1 ]; then
    echo "officebox: skipped (SKIP_OFFICEBOX=1)"
    na officebox
elif ! cargo build --release --locked -p officebox; then
    echo "officebox: build failed, marked n/a" >&2
    na officebox
else
    bin="$PWD/target/release/officebox"
    mkdir -p "$work/obx-data"
    {
        cat <<EOF
data_dir = "$work/obx-data"

[network]
hostname = "officebox"
domain = "$domain"
manage = false
listen = ["$obx_addr"]

[dns]
port = $obx_port
use_upstream = true
primary = "$up_addr"
cache_size = 100000

[dhcp]
enabled = false

[mail]
enabled = false

[phone]
enabled = false

[web]
enabled = false

[ntp]
enabled = false
EOF
        awk '{ split($2, n, "."); printf "\n[[dns.records]]\nname = \"%s\"\ntype = \"A\"\nvalue = \"%s\"\n", n[1], $1 }' \
            "$work/local.hosts"
    } >"$work/officebox.toml"
    echo "officebox: $obx_addr:$obx_port"
    (cd "$work" && exec "$bin" run --config officebox.toml) >"$work/officebox.log" 2>&1 &
    obx_pid=$!
    pids+=("$obx_pid")
    if ! bench officebox "$obx_addr" "$obx_port" "$obx_pid" "$work/officebox.log"; then
        echo "officebox: did not start or answer, marked n/a" >&2
        na officebox
    else
        # (c) memory with 100,000 cached names: one pass over 100,000 new names.
        awk 'BEGIN { for (i = 1; i <= 100000; i++) printf "n%d.many.test A\n", i }' >"$work/many.queries"
        dnsperf -s "$obx_addr" -p "$obx_port" -d "$work/many.queries" -n 1 -c 4 -Q 20000 \
            >"$work/many.dnsperf" 2>&1 || true
        many_done=$(awk '/Queries completed:/ { print $3 }' "$work/many.dnsperf")
        cached_rss=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$obx_pid/status")
        echo "  officebox RSS after caching ${many_done:-?} more names: ${cached_rss} MB"
    fi
    stop "$obx_pid"
fi

# ------------------------------------------------------------------ dnsmasq
if [ "${PEERS:-1}" = 1 ]; then

echo "dnsmasq: $dm_addr:$dm_port"
port_free "$dm_addr" "$dm_port" || { echo "$dm_addr:$dm_port is in use" >&2; exit 1; }
dnsmasq --no-daemon --log-facility=- --port="$dm_port" --listen-address="$dm_addr" \
    --bind-interfaces --no-resolv --no-hosts --addn-hosts="$work/local.hosts" \
    --local=/"$domain"/ --cache-size=10000 --server="$up_addr#$up_port" \
    >"$work/dnsmasq.log" 2>&1 &
dm_pid=$!
pids+=("$dm_pid")
bench dnsmasq "$dm_addr" "$dm_port" "$dm_pid" "$work/dnsmasq.log" || { echo "dnsmasq failed" >&2; exit 1; }
stop "$dm_pid"

# ------------------------------------------------------------------ unbound

echo "unbound: $ub_addr:$ub_port"
port_free "$ub_addr" "$ub_port" || { echo "$ub_addr:$ub_port is in use" >&2; exit 1; }
{
    cat <<EOF
server:
    interface: $ub_addr@$ub_port
    do-daemonize: no
    use-syslog: no
    logfile: ""
    verbosity: 0
    username: ""
    chroot: ""
    directory: "$work"
    pidfile: "$work/unbound.pid"
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    do-ip6: no
    do-not-query-localhost: no
    module-config: "iterator"
    # test. is one of unbound's built-in empty zones (RFC 6761); fwd.test must be forwarded.
    local-zone: "test." nodefault
    local-zone: "$domain." static
EOF
    awk '{ printf "    local-data: \"%s. 3600 IN A %s\"\n", $2, $1 }' "$work/local.hosts"
    cat <<EOF
forward-zone:
    name: "."
    forward-addr: $up_addr@$up_port
    forward-first: no
EOF
} >"$work/unbound.conf"
unbound-checkconf "$work/unbound.conf" >/dev/null
unbound -c "$work/unbound.conf" -d >"$work/unbound.log" 2>&1 &
ub_pid=$!
pids+=("$ub_pid")
bench unbound "$ub_addr" "$ub_port" "$ub_pid" "$work/unbound.log" || { echo "unbound failed" >&2; exit 1; }
stop "$ub_pid"

fi # PEERS

# ------------------------------------------------------------------ report

echo
printf '%-10s %-10s %10s %8s %14s %8s\n' server test qps lost "CPU us/query" "RSS MB"
for r in "${results[@]}"; do
    # shellcheck disable=SC2086
    printf '%-10s %-10s %10s %8s %14s %8s\n' $r
done

field() { # SERVER TEST COLUMN (3 = qps, 4 = lost, 5 = CPU us/query)
    local r cols
    for r in "${results[@]}"; do
        read -r -a cols <<<"$r"
        if [ "${cols[0]}" = "$1" ] && [ "${cols[1]}" = "$2" ]; then
            echo "${cols[$(($3 - 1))]}"
            return
        fi
    done
    echo n/a
}

echo
echo "officebox / peer:       local   forwarded"
printf '  qps vs dnsmasq     %7s   %9s\n' \
    "$(ratio "$(field officebox local 3)" "$(field dnsmasq local 3)")" \
    "$(ratio "$(field officebox forwarded 3)" "$(field dnsmasq forwarded 3)")"
printf '  qps vs unbound     %7s   %9s\n' \
    "$(ratio "$(field officebox local 3)" "$(field unbound local 3)")" \
    "$(ratio "$(field officebox forwarded 3)" "$(field unbound forwarded 3)")"
printf '  CPU/query vs dnsmasq %5s   %9s\n' \
    "$(ratio "$(field officebox local 5)" "$(field dnsmasq local 5)")" \
    "$(ratio "$(field officebox forwarded 5)" "$(field dnsmasq forwarded 5)")"
echo "bar: officebox qps >= 1.25x dnsmasq on local and forwarded, CPU/query <= dnsmasq, 0 lost"
echo "officebox RSS with 100,000 more cached names: ${cached_rss:-n/a} MB (bar: < 64 MB)"

verdict() { # LABEL A B AWK-CONDITION-ON-a-AND-b
    local v
    v="$(awk -v a="$2" -v b="$3" "BEGIN { if (a == \"n/a\" || b == \"n/a\") print \"n/a\"; else print ($4) ? \"PASS\" : \"FAIL\" }")"
    printf '  %-34s %s\n' "$1" "$v"
}
for t in local forwarded; do
    verdict "$t: qps >= 1.25x dnsmasq" "$(field officebox $t 3)" "$(field dnsmasq $t 3)" "a >= 1.25 * b"
    verdict "$t: CPU/query <= dnsmasq" "$(field officebox $t 5)" "$(field dnsmasq $t 5)" "a <= b"
    verdict "$t: 0 lost" "$(field officebox $t 4)" 0 "a == 0"
done
