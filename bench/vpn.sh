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
# Usage (as root: it creates namespaces):
#   bench/vpn.sh                        # 10 s x 3 rounds; builds officebox (release) first
#   DURATION=5 ROUNDS=1 bench/vpn.sh    # quicker
#   OFFICEBOX_BIN=path bench/vpn.sh     # use this officebox binary, no cargo build
#   STREAMS=4 bench/vpn.sh              # iperf3 -P 4
# Nothing leaves the namespaces; no host interface, route or firewall is touched.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${DURATION:-10}"
rounds="${ROUNDS:-3}"
streams="${STREAMS:-1}"

if [ "$(id -u)" -ne 0 ]; then
    echo "bench/vpn.sh: run as root (it creates network namespaces)" >&2
    exit 1
fi
for tool in ip iperf3 wireguard-go wg nft awk python3 ping sysctl; do
    command -v "$tool" >/dev/null || {
        echo "missing: $tool (apt packages: iproute2 iperf3 wireguard-go wireguard-tools nftables gawk python3 iputils-ping procps)" >&2
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
# office NAME DOMAIN LAN_IF LAN_ADDR WAN_IF WAN_ADDR GATEWAY TUNNEL_ADDR
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
enabled = false

[web]
enabled = false

[ntp]
enabled = false

[vpn]
enabled = true
address = "$8"

EOF
}

obx_pids=()
start_officebox() {
    local a="$work/obx-a" b="$work/obx-b"
    mkdir -p "$a" "$b"
    office head a.test "$la_box" 192.168.1.1 "$wa_box" 198.51.100.2 198.51.100.1 10.99.0.1/24 >"$a/officebox.toml"
    office branch b.test "$lb_box" 192.168.2.1 "$wb_box" 203.0.113.2 203.0.113.1 10.99.0.2/24 >"$b/officebox.toml"
    (cd "$a" && "$obx" vpn pairing --config officebox.toml 2>>pairing.log) >"$work/pair-a.txt"
    (cd "$b" && "$obx" vpn pairing --config officebox.toml 2>>pairing.log) >"$work/pair-b.txt"
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
