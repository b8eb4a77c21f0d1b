#!/usr/bin/env bash
# DHCP throughput of officebox against dnsmasq and kea-dhcp4, inside network namespaces.
#
# One server namespace and one client namespace joined by a veth pair (10.231.200.1/16 on
# the server's end, 10.231.200.2/16 on perfdhcp's). The servers run one at a time, each
# restarted with an empty lease database for every perfdhcp run:
#     perfdhcp -4 -l IFACE -R CLIENTS -r RATE -p DURATION 10.231.200.1
# For each server and client count, the rates are tried in increasing order until one
# has 1% or more drops (DISCOVER-OFFER or REQUEST-ACK); the best "Rate:" (4-way
# exchanges/second) with under 1% drops is the server's figure. Then officebox's ratios
# and the bar: officebox >= 2x dnsmasq and >= 3x kea.
#
# Usage (as root: it creates namespaces):
#   bench/dhcp.sh                        # 10 s per run; builds officebox (release) first
#   DURATION=3 bench/dhcp.sh             # quicker
#   SKIP_OFFICEBOX=1 bench/dhcp.sh       # peers only, no cargo build
#   PEERS=0 bench/dhcp.sh                # officebox only (no ratios)
#   OFFICEBOX_BIN=path bench/dhcp.sh     # use this officebox binary, no cargo build
#   CLIENTS="1 1000" RATES="1000 2000" bench/dhcp.sh
#   SERVER_CPU=25 bench/dhcp.sh          # every server held to 25% of one core (cgroup),
#                                        # so the server, not perfdhcp, is the limit
# CLIENTS is perfdhcp's -R: 1 (perfdhcp's default: one MAC, one lease renewed over and
# over) and 1000 (a populated lease table). perfdhcp acts as a relay: it sends from
# 10.231.200.2:67 with giaddr 10.231.200.2, and the server answers there.
# Nothing leaves the two namespaces; no host interface, route or file outside the
# scratch directory is touched (kea gets /run/kea only if it is missing, removed after).
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${DURATION:-10}"
skip_officebox="${SKIP_OFFICEBOX:-0}"
rates="${RATES:-250 500 1000 2000 3000 5000 8000 10000 12000 16000 24000}"
clients_list="${CLIENTS:-1 1000}"
max_drops=1                     # percent, per exchange half
srv_addr=10.231.200.1 cli_addr=10.231.200.2 prefix=16
pool_first=10.231.1.1 pool_last=10.231.250.250
clk_tck="$(getconf CLK_TCK)"

if [ "$(id -u)" -ne 0 ]; then
    echo "bench/dhcp.sh: run as root (it creates network namespaces)" >&2
    exit 1
fi
for tool in ip perfdhcp dnsmasq kea-dhcp4 awk; do
    command -v "$tool" >/dev/null || {
        echo "missing: $tool (apt packages: iproute2 kea-admin dnsmasq-base kea-dhcp4-server)" >&2
        exit 1
    }
done

# shellcheck source=bench/lib.sh
source bench/lib.sh             # cpu_cap_start, cap_cmd (its bench_start is not used)
work="$(mktemp -d /tmp/obx-bench-dhcp-XXXXXX)"
chmod 755 "$work"               # dnsmasq drops root but keeps its lease file open
ns_srv="obx-bdhcp-s-$$" ns_cli="obx-bdhcp-c-$$"
if_srv="$(printf 'oxbd%06xs' $(($$ & 0xffffff)))" if_cli="$(printf 'oxbd%06xc' $(($$ & 0xffffff)))"
made_ns=() made_run_kea=0 srv_pid=""

cleanup() {
    local ns p
    if [ -n "$srv_pid" ]; then
        kill "$srv_pid" 2>/dev/null || true
        wait "$srv_pid" 2>/dev/null || true
    fi
    # Anything still inside the namespaces we made is ours (a server's helpers).
    for ns in "${made_ns[@]}"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do
            kill -9 "$p" 2>/dev/null || true
        done
        ip netns del "$ns" 2>/dev/null || true
    done
    if [ "$made_run_kea" = 1 ]; then
        rmdir /run/kea 2>/dev/null || true
    fi
    if [ -n "$cap_dir" ]; then
        rmdir "$cap_dir" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cpu_cap_start

# ------------------------------------------------------------------ network

for ns in "$ns_srv" "$ns_cli"; do
    if [ -e "/run/netns/$ns" ]; then
        echo "namespace $ns exists already (a killed earlier run?); not touching it" >&2
        exit 1
    fi
    ip netns add "$ns"
    made_ns+=("$ns")
    ip -n "$ns" link set lo up
done
ip -n "$ns_srv" link add name "$if_srv" type veth peer name "$if_cli" netns "$ns_cli"
ip -n "$ns_srv" addr add "$srv_addr/$prefix" dev "$if_srv"
ip -n "$ns_cli" addr add "$cli_addr/$prefix" dev "$if_cli"
ip -n "$ns_srv" link set "$if_srv" up
ip -n "$ns_cli" link set "$if_cli" up

# ------------------------------------------------------------------ servers
# start_NAME: starts the server in $ns_srv with an empty lease database; sets srv_pid
# and srv_log. The run directory is wiped first.

rundir="$work/run"

fresh_rundir() {
    rm -rf "$rundir"
    mkdir -p "$rundir"
    chmod 755 "$rundir"
}

start_dnsmasq() {
    fresh_rundir
    srv_log="$rundir/dnsmasq.log"
    : >"$rundir/dnsmasq.leases"
    # --dhcp-lease-max: the default (1000) would refuse clients beyond it.
    "${cap_cmd[@]}" ip netns exec "$ns_srv" dnsmasq --keep-in-foreground --log-facility=- \
        --conf-file=/dev/null --pid-file= --port=0 --interface="$if_srv" --bind-interfaces \
        --no-ping --dhcp-authoritative --dhcp-range="$pool_first,$pool_last,1h" \
        --dhcp-leasefile="$rundir/dnsmasq.leases" --dhcp-lease-max=100000 \
        >"$srv_log" 2>&1 &
    srv_pid=$!
}

start_kea() {
    fresh_rundir
    srv_log="$rundir/kea.log"
    if [ ! -d /run/kea ]; then
        mkdir -p /run/kea
        made_run_kea=1
    fi
    cat >"$rundir/kea.json" <<EOF
{ "Dhcp4": {
    "interfaces-config": { "interfaces": ["$if_srv"], "dhcp-socket-type": "raw" },
    "lease-database": { "type": "memfile", "persist": true,
                        "name": "$rundir/kea-leases.csv", "lfc-interval": 0 },
    "valid-lifetime": 3600,
    "subnet4": [ { "id": 1, "subnet": "10.231.0.0/$prefix",
                   "pools": [ { "pool": "$pool_first - $pool_last" } ] } ],
    "loggers": [ { "name": "kea-dhcp4", "severity": "WARN",
                   "output_options": [ { "output": "stdout" } ] } ]
} }
EOF
    "${cap_cmd[@]}" ip netns exec "$ns_srv" env KEA_PIDFILE_DIR="$rundir" KEA_LOCKFILE_DIR="$rundir" \
        kea-dhcp4 -c "$rundir/kea.json" >"$srv_log" 2>&1 &
    srv_pid=$!
}

obx_bin=""
start_officebox() {
    fresh_rundir
    srv_log="$rundir/officebox.log"
    mkdir -p "$rundir/data"
    cat >"$rundir/officebox.toml" <<EOF
data_dir = "$rundir/data"

[network]
hostname = "officebox"
domain = "office.test"
manage = false
listen = []

[network.wan]
mode = "static"
address = "203.0.113.10"
netmask = "255.255.255.0"
gateway = "203.0.113.1"

[network.lan]
interface = "$if_srv"
address = "$srv_addr"
netmask = "255.255.0.0"

[dns]
enabled = false

[dhcp]
enabled = true
range = ["$pool_first", "$pool_last"]
lease_time = "1h"

[mail]
enabled = false

[phone]
enabled = false

[web]
enabled = false

[ntp]
enabled = false
EOF
    (cd "$rundir" && exec "${cap_cmd[@]}" ip netns exec "$ns_srv" "$obx_bin" run --config officebox.toml) \
        >"$srv_log" 2>&1 &
    srv_pid=$!
}

stop_server() { # SIGTERM, then SIGKILL after 5 s
    local i
    if [ -n "$srv_pid" ]; then
        kill "$srv_pid" 2>/dev/null || true
        for i in $(seq 50); do
            kill -0 "$srv_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$srv_pid" 2>/dev/null || true
        wait "$srv_pid" 2>/dev/null || true
        srv_pid=""
    fi
}

# ready NAME: up to 15 s for the server to answer DISCOVERs (perfdhcp -i: no lease is
# made). Prints the log and fails if it exits or never answers.
ready() {
    local i out
    for i in $(seq 15); do
        if ! kill -0 "$srv_pid" 2>/dev/null; then
            echo "  $1 exited; its log:" >&2
            cat "$srv_log" >&2
            return 1
        fi
        out="$(ip netns exec "$ns_cli" perfdhcp -4 -l "$if_cli" -i -r 20 -p 1 "$srv_addr" 2>&1)" || true
        if [ "$(awk '/^received packets:/ { print $3; exit }' <<<"$out")" -gt 0 ] 2>/dev/null; then
            return 0
        fi
    done
    echo "  $1 did not answer DISCOVERs within 15 s; its log:" >&2
    cat "$srv_log" >&2
    return 1
}

# ------------------------------------------------------------------ measuring

results=()   # "server clients best_rate at_r us_per_exchange"

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
pct() { # a number, or -nan (nothing sent): 2 decimals
    awk -v v="$1" 'BEGIN { if (v ~ /^[0-9.]+$/) printf "%.2f", v; else print v }'
}

# one_run NAME CLIENTS RATE: fresh server, one perfdhcp run. Prints a line; sets
# run_rate, run_ok (1 when both drop ratios are under max_drops) and run_us (the server's
# CPU time per completed exchange, utime+stime of all its threads).
one_run() {
    local out offer ack note="" before after cpu
    run_ok=0 run_rate=n/a run_us=n/a
    "start_$1"
    if ! ready "$1"; then
        stop_server
        return 1
    fi
    before="$(cpu_ticks "$srv_pid")"
    out="$(ip netns exec "$ns_cli" perfdhcp -4 -l "$if_cli" -R "$2" -r "$3" -p "$duration" \
        "$srv_addr" 2>&1)" || true   # exit status 3: some exchanges failed (counted below)
    after="$(cpu_ticks "$srv_pid")"
    stop_server
    run_rate="$(awk '/^Rate:/ { printf "%.0f", $2; exit }' <<<"$out")"
    offer="$(awk '/^drops ratio:/ { n++; if (n == 1) print $3 }' <<<"$out")"
    ack="$(awk '/^drops ratio:/ { n++; if (n == 2) print $3 }' <<<"$out")"
    cpu="$(awk -v t=$((after - before)) -v hz="$clk_tck" -v d="$duration" \
        'BEGIN { printf "%.0f", t * 100 / hz / d }')"
    run_us="$(awk -v t=$((after - before)) -v hz="$clk_tck" -v r="$run_rate" -v d="$duration" \
        'BEGIN { if (r * d > 0) printf "%.1f", t * 1e6 / hz / (r * d); else print "n/a" }')"
    if [ -z "$run_rate" ]; then
        echo "  perfdhcp failed against $1:" >&2
        echo "$out" >&2
        return 1
    fi
    # -nan (nothing sent or received) counts as 100 %.
    run_ok="$(awk -v o="$offer" -v a="$ack" -v m="$max_drops" -v r="$run_rate" 'BEGIN {
        if (o !~ /^[0-9.]+$/ || a !~ /^[0-9.]+$/ || r + 0 == 0) print 0
        else print (o + 0 < m && a + 0 < m) ? 1 : 0 }')"
    if [ "$run_ok" = 1 ] && [ "$run_rate" -lt $(($3 * 9 / 10)) ]; then
        note="  (perfdhcp sent slower than asked)"
    fi
    printf '  %-9s -R %-5s -r %-6s %6s/s  drops: offer %6s%%  ack %6s%%  server CPU %3s%% %6s us/exchange  %s%s\n' \
        "$1" "$2" "$3" "$run_rate" "$(pct "$offer")" "$(pct "$ack")" "$cpu" "$run_us" \
        "$([ "$run_ok" = 1 ] && echo ok || echo FAIL)" "$note"
}

# bench NAME: every client count, rates upward until the first run with >= 1% drops.
# A server that fails to start or answer is not tried again.
bench() {
    local clients rate best at us dead=0
    for clients in $clients_list; do
        best=n/a at=n/a us=n/a
        for rate in $rates; do
            [ "$dead" = 0 ] || break
            if ! one_run "$1" "$clients" "$rate"; then
                [ "$best" != n/a ] || dead=1
                break
            fi
            [ "$run_ok" = 1 ] || break
            if [ "$best" = n/a ] || [ "$run_rate" -gt "$best" ]; then
                best=$run_rate at=$rate us=$run_us
            fi
        done
        results+=("$1 $clients $best $at $us")
    done
}

na() {
    local clients
    for clients in $clients_list; do
        results+=("$1 $clients n/a n/a n/a")
    done
}

echo "DHCP: perfdhcp in $ns_cli ($if_cli $cli_addr/$prefix) -> $ns_srv ($if_srv $srv_addr/$prefix)"
echo "runs of ${duration}s; clients (-R): $clients_list; rates (-r): $rates; pass: drops < $max_drops%"

# ------------------------------------------------------------------ officebox

if [ "$skip_officebox" = 1 ]; then
    echo "officebox: skipped (SKIP_OFFICEBOX=1)"
    na officebox
else
    src="${OFFICEBOX_BIN:-}"
    if [ -z "$src" ]; then
        if cargo build --release --locked -p officebox; then
            src="$PWD/target/release/officebox"
        else
            echo "officebox: build failed, marked n/a" >&2
        fi
    fi
    if [ -n "$src" ]; then
        # A private copy: a rebuild during the run does not swap the binary under us.
        obx_bin="$work/officebox"
        cp "$src" "$obx_bin"
        echo "officebox: $src"
        # The first failing start (no DHCP service yet, bad config) marks it n/a.
        n_before=${#results[@]}
        bench officebox
        ok_runs=0
        for r in "${results[@]:$n_before}"; do
            [ "$(cut -d' ' -f3 <<<"$r")" = n/a ] || ok_runs=1
        done
        [ "$ok_runs" = 1 ] || echo "officebox: did not start or answer, marked n/a" >&2
    else
        na officebox
    fi
fi

# ------------------------------------------------------------------ peers

if [ "${PEERS:-1}" = 0 ]; then
    echo "dnsmasq, kea: skipped (PEERS=0)"
    na dnsmasq
    na kea
else
    echo "dnsmasq: $(dnsmasq --version | head -1)"
    bench dnsmasq
    echo "kea: kea-dhcp4 $(kea-dhcp4 -v) (memfile, persist, raw socket, default threading)"
    bench kea
fi

# ------------------------------------------------------------------ report

field() { # SERVER CLIENTS COLUMN (3 = best rate, 4 = at -r)
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
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
verdict() { # RATIO BAR
    awk -v r="$1" -v b="$2" 'BEGIN { if (r == "n/a") print "n/a"; else print (r + 0 >= b) ? "PASS" : "FAIL" }'
}

echo
echo "best 4-way exchanges/s with < $max_drops% drops (${duration}s runs)"
printf '%-10s %8s %12s %8s %18s\n' server clients exchanges/s "at -r" "CPU us/exchange"
for r in "${results[@]}"; do
    # shellcheck disable=SC2086
    printf '%-10s %8s %12s %8s %18s\n' $r
done
echo
echo "bar: officebox >= 2x dnsmasq and >= 3x kea"
for clients in $clients_list; do
    obx="$(field officebox "$clients" 3)"
    vs_dm="$(ratio "$obx" "$(field dnsmasq "$clients" 3)")"
    vs_kea="$(ratio "$obx" "$(field kea "$clients" 3)")"
    printf '  -R %-5s officebox/dnsmasq %5s (%s)   officebox/kea %5s (%s)\n' "$clients" \
        "$vs_dm" "$(verdict "$vs_dm" 2)" "$vs_kea" "$(verdict "$vs_kea" 3)"
done
echo "note: perfdhcp and the server share the machine's cores: near the top, drops can be the"
echo "generator's; a server CPU well under 100% at a failing rate points there. Compare ratios"
echo "and CPU us/exchange from one run, not absolute figures across runs."
