#!/usr/bin/env bash
# Tunnel throughput of officebox's WireGuard against wireguard-go, inside namespaces.
#
# Five namespaces joined by veth pairs, as tests/sites.rs has them:
#     pcA 192.168.1.50 - boxA (LAN 192.168.1.1, WAN 198.51.100.2) - inet (a plain router)
#     - boxB (WAN 203.0.113.2, LAN 192.168.2.1) - pcB 192.168.2.50
# Run "officebox": officebox in boxA and boxB (firewall-nat, managing their interfaces,
# only the network and tunnel services on), each the other's [[vpn.sites]] entry from
# `officebox vpn pairing`. Run "wireguard-go": the same namespaces, with wireguard-go
# in boxA and boxB instead (an interface each set up with `wg`, the other LAN routed through it, IP
# forwarding on, no firewall). In each run iperf3 sends TCP from pcA to pcB for DURATION
# seconds (-P STREAMS), ROUNDS times, the two implementations taking turns; the figure
# is the median throughput (iperf3's receiver side), and the CPU time the tunnel
# processes of both boxes used during the transfer (utime+stime from /proc/PID/stat),
# per gigabyte carried. Prints both, the ratios, and the bar: officebox's throughput >=
# wireguard-go's at no more CPU per gigabyte.
#
# Then calls across the tunnel, officebox only (wireguard-go is no phone system): both
# boxes afresh with their phone servers, alice (101) at the head office and carol (201)
# at the branch, each registered under its own office's domain. carol's phone in pcB is
# bench/rtp_phone.py (registered by sipp's register_contact.xml), its echo socket in pcA;
# sipp in pcA calls 201 as alice (digest, then 180, 200, ACK; bench/sipp/uac_rtp.xml),
# so each call is set up by box A over the site line to box B, and its audio (G.711 A-law,
# 30 ms packets, both ways) crosses both boxes' relays and the tunnel twice: phone ->
# relay B -> tunnel -> relay A -> echo in pcA -> relay A -> tunnel -> relay B -> phone.
# CALLS numbers of calls are tried upward (placed at RAMP/s, all talking together for
# STEADY s) until one loses 0.1% or more of its packets or fails a call; prints the
# largest that passed, its loss and the CPU of the two boxes, and the bar: 200 calls.
#
# Usage (as root: it creates namespaces):
#   bench/vpn.sh                        # 10 s x 3 rounds; builds officebox (release) first
#   DURATION=5 ROUNDS=1 bench/vpn.sh    # quicker
#   OFFICEBOX_BIN=path bench/vpn.sh     # use this officebox binary, no cargo build
#   STREAMS=4 bench/vpn.sh              # iperf3 -P 4
#   CALLS="200 400" RAMP=50 STEADY=10 bench/vpn.sh   # the cross-site calls tried
#   CALLS="" bench/vpn.sh               # throughput only
# Nothing leaves the namespaces; no host interface, route or firewall is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

duration="${DURATION:-10}"
rounds="${ROUNDS:-3}"
streams="${STREAMS:-1}"
calls="${CALLS-100 200 300 400 500}"
ramp="${RAMP:-50}"
steady="${STEADY:-10}"

if [ "$(id -u)" -ne 0 ]; then
    echo "bench/vpn.sh: run as root (it creates network namespaces)" >&2
    exit 1
fi
for tool in ip iperf3 wireguard-go wg nft awk python3 ping sysctl sipp md5sum sha256sum; do
    command -v "$tool" >/dev/null || {
        echo "missing: $tool (apt packages: iproute2 iperf3 wireguard-go wireguard-tools nftables gawk python3 iputils-ping procps sip-tester coreutils)" >&2
        exit 1
    }
done

# shellcheck source=bench/lib.sh
source bench/lib.sh             # officebox_binary, ticks, ratio
work="$(mktemp -d /tmp/obx-bench-vpn-XXXXXX)"
tag="$(printf '%05x' $(($$ & 0xfffff)))"
ns_pca="obx-bvpn-pa-$$" ns_boxa="obx-bvpn-ba-$$" ns_inet="obx-bvpn-i-$$"
ns_boxb="obx-bvpn-bb-$$" ns_pcb="obx-bvpn-pb-$$"
all_ns=("$ns_pca" "$ns_boxa" "$ns_inet" "$ns_boxb" "$ns_pcb")
# veth names (15 characters at most): box side / far side.
la_box="ovla$tag" la_pc="ovpa$tag" wa_box="ovwa$tag" wa_net="ovia$tag"
wb_box="ovwb$tag" wb_net="ovib$tag" lb_box="ovlb$tag" lb_pc="ovpb$tag"
pids=()

cleanup() {
    local p ns
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    for ns in "${all_ns[@]}"; do
        if [ -e "/run/netns/$ns" ]; then
            for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM   # so that the EXIT trap cleans up after a kill too

in_ns() { local ns="$1"; shift; ip netns exec "$ns" "$@"; }

for ns in "${all_ns[@]}"; do
    ip netns add "$ns"
    in_ns "$ns" ip link set lo up
done
link() {  # link NS_A IF_A NS_B IF_B ADDR_B: a veth pair, ADDR_B on B's end (A's is the box's)
    ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
    in_ns "$1" ip link set "$2" up
    in_ns "$3" ip link set "$4" up
    if [ -n "$5" ]; then in_ns "$3" ip addr add "$5" dev "$4"; fi
}
link "$ns_boxa" "$la_box" "$ns_pca" "$la_pc" 192.168.1.50/24
link "$ns_boxa" "$wa_box" "$ns_inet" "$wa_net" 198.51.100.1/24
link "$ns_boxb" "$wb_box" "$ns_inet" "$wb_net" 203.0.113.1/24
link "$ns_boxb" "$lb_box" "$ns_pcb" "$lb_pc" 192.168.2.50/24
in_ns "$ns_pca" ip route add default via 192.168.1.1
in_ns "$ns_pcb" ip route add default via 192.168.2.1
in_ns "$ns_inet" sysctl -qw net.ipv4.ip_forward=1

officebox_binary
obx="${obx_src:-}"

# ---------------------------------------------------------------- officebox's configs
# user LOGIN NAME EXTENSION DOMAIN PASSWORD: a [[users]] entry whose phone signs in with
# PASSWORD under DOMAIN (the digest realm). Its login password (pages, mail; unused here)
# is the demo admin's hash.
login_hash="$(awk -F'"' '$1 == "password = " && $2 ~ /^[$]argon2/ { print $2; exit }' examples/demo.toml)"
user() {
    local md5 sha
    md5="$(printf '%s:%s:%s' "$1" "$4" "$5" | md5sum | cut -d' ' -f1)"
    sha="$(printf '%s:%s:%s' "$1" "$4" "$5" | sha256sum | cut -d' ' -f1)"
    printf '[[users]]\nlogin = "%s"\nname = "%s"\npassword = "%s"\nextension = "%s"\nsip_ha1_md5 = "%s"\nsip_ha1_sha256 = "%s"\n\n' \
        "$1" "$2" "$login_hash" "$3" "$md5" "$sha"
}

# office NAME DOMAIN LAN_IF LAN_ADDR WAN_IF WAN_ADDR GATEWAY TUNNEL_ADDR USER_ARGS...
office() {
    cat <<EOF
data_dir = "data"

[network]
hostname = "$1"
domain = "$2"
manage = true

[network.lan]
interface = "$3"
address = "$4"
netmask = "255.255.255.0"

[network.wan]
interface = "$5"
mode = "static"
address = "$6"
netmask = "255.255.255.0"
gateway = "$7"

[security]
mode = "firewall-nat"

[dns]
enabled = false

[dhcp]
enabled = false

[mail]
enabled = false

[phone]
sip_port = 5060
rtp_ports = "20000-23999"

[web]
enabled = false

[ntp]
enabled = false

[vpn]
enabled = true
address = "$8"

EOF
    user "${@:9}"
}

obx_pids=()
start_officebox() {
    local a="$work/obx-a" b="$work/obx-b"
    mkdir -p "$a" "$b"
    office head a.test "$la_box" 192.168.1.1 "$wa_box" 198.51.100.2 198.51.100.1 10.99.0.1/24 \
        alice "Alice Example" 101 a.test demo-alice >"$a/officebox.toml"
    office branch b.test "$lb_box" 192.168.2.1 "$wb_box" 203.0.113.2 203.0.113.1 10.99.0.2/24 \
        carol "Carol Example" 201 b.test demo-carol >"$b/officebox.toml"
    local d
    for d in a b; do
        if ! (cd "$work/obx-$d" && "$obx" vpn pairing --config officebox.toml) >"$work/pair-$d.txt" 2>"$work/pairing.err"; then
            echo "officebox vpn pairing refused box $d's config:" >&2
            cat "$work/pairing.err" >&2
            return 1
        fi
    done
    cat "$work/pair-b.txt" >>"$a/officebox.toml"
    cat "$work/pair-a.txt" >>"$b/officebox.toml"
    (cd "$a" && exec ip netns exec "$ns_boxa" "$obx" run --config officebox.toml >officebox.log 2>&1) &
    obx_pids=($!)
    (cd "$b" && exec ip netns exec "$ns_boxb" "$obx" run --config officebox.toml >officebox.log 2>&1) &
    obx_pids+=($!)
    pids+=("${obx_pids[@]}")
    wait_across "officebox" "$a/officebox.log" "$b/officebox.log"
}

stop_pids() {
    local p
    for p in "$@"; do kill "$p" 2>/dev/null || true; done
    for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

# ---------------------------------------------------------------- wireguard-go
wg_pids=()
start_wireguard_go() {
    local ka kb pa pb
    ka="$(wg genkey)" kb="$(wg genkey)"
    pa="$(printf '%s' "$ka" | wg pubkey)" pb="$(printf '%s' "$kb" | wg pubkey)"
    printf '%s\n' "$ka" >"$work/wg-a.key"
    printf '%s\n' "$kb" >"$work/wg-b.key"
    chmod 600 "$work/wg-a.key" "$work/wg-b.key"
    # ns key-file peer-key peer-endpoint own-wan own-gateway own-tunnel other-lan
    # Each its own interface name: wireguard-go's control socket
    # (/var/run/wireguard/NAME.sock) is one per name for the whole machine.
    wg_box() {
        local ns="$1" wan_if="$2" wan="$3" gw="$4" lan_if="$5" lan="$6" key="$7" peer="$8" endpoint="$9" tunnel="${10}" other="${11}" wg="${12}"
        in_ns "$ns" ip addr replace "$wan/24" dev "$wan_if"
        in_ns "$ns" ip route replace default via "$gw"
        in_ns "$ns" ip addr replace "$lan/24" dev "$lan_if"
        in_ns "$ns" sysctl -qw net.ipv4.ip_forward=1
        WG_PROCESS_FOREGROUND=1 ip netns exec "$ns" wireguard-go -f "$wg" >"$work/wg-$ns.log" 2>&1 &
        wg_pids+=($!)
        pids+=($!)
        for _ in $(seq 50); do in_ns "$ns" ip link show "$wg" >/dev/null 2>&1 && break; sleep 0.1; done
        in_ns "$ns" wg set "$wg" listen-port 51820 private-key "$key" \
            peer "$peer" endpoint "$endpoint" allowed-ips "$other,10.99.0.0/24" persistent-keepalive 25
        in_ns "$ns" ip addr add "$tunnel" dev "$wg"
        in_ns "$ns" ip link set "$wg" mtu 1420 up
        in_ns "$ns" ip route replace "$other" dev "$wg"
    }
    wg_pids=()
    wg_box "$ns_boxa" "$wa_box" 198.51.100.2 198.51.100.1 "$la_box" 192.168.1.1 "$work/wg-a.key" "$pb" 203.0.113.2:51820 10.99.0.1/24 192.168.2.0/24 "owga$tag"
    wg_box "$ns_boxb" "$wb_box" 203.0.113.2 203.0.113.1 "$lb_box" 192.168.2.1 "$work/wg-b.key" "$pa" 198.51.100.2:51820 10.99.0.2/24 192.168.1.0/24 "owgb$tag"
    wait_across "wireguard-go"
}

stop_wireguard_go() {
    stop_pids "${wg_pids[@]}"
    local ns
    for ns in "$ns_boxa" "$ns_boxb"; do
        in_ns "$ns" ip link del "owga$tag" 2>/dev/null || true
        in_ns "$ns" ip link del "owgb$tag" 2>/dev/null || true
        in_ns "$ns" ip addr flush dev "$([ "$ns" = "$ns_boxa" ] && echo "$wa_box" || echo "$wb_box")"
        in_ns "$ns" ip addr flush dev "$([ "$ns" = "$ns_boxa" ] && echo "$la_box" || echo "$lb_box")"
    done
}

# Waits until pcA reaches pcB through the tunnel (20 s at most).
wait_across() {
    local what="$1"
    shift
    for _ in $(seq 200); do
        if in_ns "$ns_pca" ping -c1 -W1 192.168.2.50 >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "$what: pcA does not reach pcB through the tunnel" >&2
    for log in "$@"; do tail -n 30 "$log" >&2; done
    return 1
}

# ---------------------------------------------------------------- the transfer
in_ns "$ns_pcb" iperf3 -s -D -I "$work/iperf3.pid" --logfile "$work/iperf3-server.log"
for _ in $(seq 50); do [ -s "$work/iperf3.pid" ] && break; sleep 0.1; done
pids+=("$(cat "$work/iperf3.pid")")

# transfer NAME PID...: one iperf3 run; appends "NAME MBITS CPU_S_PER_GB" to $work/runs.
transfer() {
    local name="$1" before after json bits bytes cpu
    shift
    before="$(ticks "$@")"
    json="$(in_ns "$ns_pca" iperf3 -c 192.168.2.50 -t "$duration" -P "$streams" -J)"
    after="$(ticks "$@")"
    bits="$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])')"
    bytes="$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bytes"])')"
    cpu="$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v b="$bytes" 'BEGIN { printf "%.2f", (t / hz) / (b / 1e9) }')"
    echo "$name $(awk -v b="$bits" 'BEGIN { printf "%.0f", b / 1e6 }') $cpu" >>"$work/runs"
    echo "  $name: $(awk -v b="$bits" 'BEGIN { printf "%.0f", b / 1e6 }') Mbit/s, ${cpu} CPU-s per GB"
}

: >"$work/runs"
for round in $(seq "$rounds"); do
    echo "round $round of $rounds (iperf3 TCP, ${duration} s, -P $streams, pcA -> pcB)"
    if [ -n "$obx" ]; then
        start_officebox
        transfer officebox "${obx_pids[@]}"
        stop_pids "${obx_pids[@]}"
        # What officebox left in the boxes (its firewall table) goes before the next run.
        for ns in "$ns_boxa" "$ns_boxb"; do
            in_ns "$ns" nft delete table inet officebox 2>/dev/null || true
        done
    fi
    start_wireguard_go
    transfer wireguard-go "${wg_pids[@]}"
    stop_wireguard_go
done

median() {  # median NAME COLUMN
    awk -v n="$1" -v c="$2" '$1 == n { print $c }' "$work/runs" | sort -n |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
o_mbit="$(median officebox 2)" o_cpu="$(median officebox 3)"
w_mbit="$(median wireguard-go 2)" w_cpu="$(median wireguard-go 3)"
echo
printf '%-14s %12s %18s\n' "tunnel" "Mbit/s" "CPU-s per GB"
printf '%-14s %12s %18s\n' officebox "$o_mbit" "$o_cpu"
printf '%-14s %12s %18s\n' wireguard-go "$w_mbit" "$w_cpu"
echo "officebox / wireguard-go: throughput $(ratio "$o_mbit" "$w_mbit")x, CPU per GB $(ratio "$o_cpu" "$w_cpu")x"
echo "bar: throughput >= wireguard-go's (1.00x) at no more CPU per GB (<= 1.00x)"

# ---------------------------------------------------------------- calls across the tunnel
[ -n "$obx" ] && [ -n "$calls" ] || exit 0
echo
echo "calls across the tunnel (officebox only): sipp in pcA calls 201 at the branch as alice; carol's phone in pcB, its echo in pcA"
sipp_port=5070 sipp_media=6000     # sipp in pcA (its -mp is bound, carries no audio)
reg_port=5071                      # the registering sipp in pcB
phone_sip=5062 phone_rtp=7000 echo_rtp=7002
g711_pcap=/usr/share/sip-tester/g711a.pcap
printf 'SEQUENTIAL\n101;[authentication username=alice password=demo-alice]\n' >"$work/caller.csv"
printf 'SEQUENTIAL\n201;[authentication username=carol password=demo-carol]\n' >"$work/callee.csv"
start_officebox
# carol's phone, and its registration at the branch.
(cd "$work" && PHONE_ADDR=192.168.2.50 ECHO_ADDR=192.168.1.50 ECHO_NETNS="$ns_pca" \
    exec ip netns exec "$ns_pcb" python3 "$repo/bench/rtp_phone.py" "$phone_sip" "$phone_rtp" \
    "$echo_rtp" "$work/phone.stats" "$g711_pcap") >"$work/phone.log" 2>&1 &
phone_pid=$!
pids+=("$phone_pid")
sleep 1
if ! (cd "$work" && in_ns "$ns_pcb" sipp -sf "$repo/crates/voice/tests/sipp/register_contact.xml" \
    -inf "$work/callee.csv" -key domain b.test -auth_uri b.test -key contact_port "$phone_sip" \
    -i 192.168.2.50 -p "$reg_port" -m 1 -nostdin -timeout 20s -trace_err \
    -error_file "$work/register.err" 192.168.2.1:5060) >"$work/register.out" 2>&1; then
    echo "registering carol's phone at the branch failed:" >&2
    tail -n 20 "$work/register.out" "$work/register.err" "$work/obx-b/officebox.log" >&2
    exit 1
fi

# calls_run N: N calls placed at RAMP/s, all talking for STEADY s; prints a line and sets
# run_ok, run_loss, run_cpu.
calls_run() {
    local n="$1" ramp_ms hold_ms sp rc=0 ok failed line sent received echoed lost t0 t1 o0 o1
    ramp_ms=$((n * 1000 / ramp))
    hold_ms=$((ramp_ms + steady * 1000))
    run_ok=0 run_loss=n/a run_cpu=n/a
    phone_stats >/dev/null || return 1   # new totals
    rm -f "$work/calls.csv"
    (cd "$work" && exec ip netns exec "$ns_pca" timeout $((2 * ramp_ms / 1000 + steady + 60)) \
        sipp -sf "$repo/bench/sipp/uac_rtp.xml" -inf "$work/caller.csv" -key callee 201 \
        -key echo_port "$echo_rtp" -key domain a.test -auth_uri a.test -i 192.168.1.50 \
        -p "$sipp_port" -mp "$sipp_media" -nostdin -recv_timeout 5s -r "$ramp" -m "$n" -l "$n" \
        -d "$hold_ms" -trace_stat -stf "$work/calls.csv" -fd 1 -trace_err \
        -error_file "$work/calls-$n.err" 192.168.1.1:5060) >"$work/calls-$n.out" 2>&1 &
    sp=$!
    # Full load: from 0.5 s after the last call is placed to 1.5 s before the first hangs up.
    sleep "$(awk -v ms="$ramp_ms" 'BEGIN { print ms / 1000 + 0.5 }')"
    t0="$(now)" o0="$(ticks "${obx_pids[@]}")"
    sleep $((steady - 2))
    t1="$(now)" o1="$(ticks "${obx_pids[@]}")"
    wait "$sp" || rc=$?
    sleep 1
    line="$(phone_stats)" || return 1
    if [ "$rc" -gt 1 ] || [ ! -s "$work/calls.csv" ]; then
        echo "  sipp failed (status $rc):" >&2
        tail -n 20 "$work/calls-$n.out" >&2
        return 1
    fi
    read -r ok failed < <(sipp_outcome "$work/calls.csv")
    sent="$(kv sent "$line")" received="$(kv received "$line")" echoed="$(kv echoed "$line")"
    sent=${sent:-0} received=${received:-0} echoed=${echoed:-0}
    lost=$((sent - received))
    run_loss="$(awk -v l="$lost" -v s="$sent" 'BEGIN { if (s > 0) printf "%.3f%%", l * 100 / s; else print "n/a" }')"
    run_cpu="$(pct $((o1 - o0)) "$t0" "$t1")"
    if [ "${failed:-1}" = 0 ] && [ "${ok:-0}" = "$n" ] && [ "$(kv max_talking "$line")" -ge "$n" ] &&
        [ "$sent" -gt 0 ] && [ $((lost * 1000)) -lt "$sent" ] && [ "$(kv skipped "$line")" = 0 ]; then
        run_ok=1
    fi
    printf '  %5s calls: ok %s, failed %s, talking at once %s; RTP %s sent, %s lost (%s: %s on the way to pcA, %s back), worst call %s%%; both boxes %s of a core  %s\n' \
        "$n" "${ok:-0}" "${failed:-0}" "$(kv max_talking "$line")" "$sent" "$lost" "$run_loss" \
        "$((sent - echoed))" "$((echoed - received))" "$(kv worst_call_loss_pct "$line")" "$run_cpu" \
        "$([ "$run_ok" = 1 ] && echo ok || echo FAIL)"
    [ "$(kv skipped "$line")" = 0 ] || echo "  (the RTP phone was short of CPU: $(kv skipped "$line") packets skipped)"
}

best=n/a best_loss="" best_cpu=""
for n in $calls; do
    calls_run "$n" || break
    [ "$run_ok" = 1 ] || break
    best=$n best_loss=$run_loss best_cpu=$run_cpu
    sleep 2   # the last BYEs, and the relays' ports, settle before the next run
done
echo
echo "cross-site calls with audio: $best at once${best_loss:+ (loss $best_loss, both boxes $best_cpu of a core)}"
echo "bar: 200 concurrent cross-site calls under 0.1% loss"
