#!/usr/bin/env bash
# Bursts of logins: officebox against dovecot, on loopback only.
#
# Every login is a real password check: both servers hold the same argon2id hash (the
# demo's, m=19456 t=2 p=1) for 64 users u1..u64. Python threads release all the logins of
# a burst at one instant (a barrier), then each does USER/PASS/QUIT.
#   1. officebox alone, the held-out check of issue 14: three bursts of 64 right-password
#      logins at once, 32 POP3 over TLS (995-style) and 32 SMTP AUTH PLAIN over TLS;
#      every login must be served, and its RSS five seconds after the last burst must be
#      under 64 MB (the bar).
#   2. side by side: ROUNDS bursts of 32 POP3 logins (plain text, as loopback allows; 32 is
#      what officebox admits from one address on one port at once) on each server; logins per second, logins served, and the server's memory: RSS of its
#      whole process tree (dovecot runs a master, login, auth and pop3 processes) after the
#      bursts and five seconds later.
# Prints the figures, officebox's ratio against dovecot (logins/s) and the bar.
#
# Usage (as root: dovecot's private instance starts as root and serves as nobody):
#   bench/logins.sh                       # builds target/release/officebox first
#   OFFICEBOX_BIN=path bench/logins.sh    # a ready binary
#   PEERS=0 bench/logins.sh               # officebox only
#   ROUNDS=5 bench/logins.sh
# Needs python3 and dovecot 2.3 with argon2 (Debian's dovecot-core has it, via libsodium).
set -euo pipefail
cd "$(dirname "$0")/.."

addr=127.0.0.1
rounds="${ROUNDS:-3}"
users=64
burst=32
password="demo-alice"
hash='$argon2id$v=19$m=19456,t=2,p=1$XgLlIWdWSUYtz6222unzYg$QtQCJ/eiW4Q5Mk4ZRA8plwlUwfIhHpQRK2EdaLXEcyM'
obx_pop3=14110 obx_pop3s=14995 obx_smtp=14025 obx_submission=14587 obx_smtps=14465
dc_port=14111

for tool in python3 ss awk pgrep; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run as root (dovecot's private instance needs it)" >&2; exit 1; }

source bench/lib.sh
bench_start logins
chmod 755 "$work"
bench_extra_cleanup() { dovecot_pop3_stop; }

# RSS in MB of PID and all its descendants.
tree_rss() {
    local all p total=0 kb
    all="$1 $(pgrep -d ' ' -P "$1" || true)"
    for p in $(pgrep -d ' ' -P "$(echo "$all" | tr ' ' ',' | sed 's/,$//')" 2>/dev/null || true); do
        all="$all $p"
    done
    for p in $all; do
        kb="$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)"
        total=$((total + ${kb:-0}))
    done
    awk -v k="$total" 'BEGIN { printf "%.1f", k / 1024 }'
}

cat >"$work/burst.py" <<'EOF'
"""burst HOST PORT KIND N PASSWORD: N logins of users u1..uN released at once; KIND is
pop3 (plain), pop3s or smtps. Prints "served seconds"."""
import socket, ssl, sys, threading, time, base64

host, port, kind, n, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

def line(f):
    return f.readline().decode(errors="replace")

def login(i, ready, ok):
    user = f"u{i + 1}"
    s = socket.create_connection((host, port), timeout=60)
    if kind != "pop3":
        s = ctx.wrap_socket(s)
    f = s.makefile("rwb")
    if kind.startswith("pop3"):
        line(f)
        f.write(f"USER {user}\r\n".encode()); f.flush(); line(f)
        ready.wait()
        f.write(f"PASS {password}\r\n".encode()); f.flush()
        ok[i] = line(f).startswith("+OK")
        f.write(b"QUIT\r\n"); f.flush(); line(f)
    else:
        while not line(f).startswith("220 "):
            pass
        f.write(b"EHLO bench.example\r\n"); f.flush()
        while not line(f).startswith("250 "):
            pass
        ready.wait()
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        f.write(f"AUTH PLAIN {token}\r\n".encode()); f.flush()
        ok[i] = line(f).startswith("235")
        f.write(b"QUIT\r\n"); f.flush(); line(f)
    s.close()

ok = [False] * n
ready = threading.Barrier(n + 1)
threads = [threading.Thread(target=login, args=(i, ready, ok)) for i in range(n)]
for t in threads:
    t.start()
ready.wait()
start = time.monotonic()
for t in threads:
    t.join()
print(sum(ok), f"{time.monotonic() - start:.3f}")
EOF

users_toml() {
    local i
    for i in $(seq "$users"); do
        printf '[[users]]\nlogin = "u%d"\npassword = "%s"\n\n' "$i" "$hash"
    done
}

# side NAME PORT PID: ROUNDS bursts of $burst POP3 logins; one results row.
side() {
    local name="$1" port="$2" pid="$3" r out served secs total_served=0 total_secs=0 rss_now rss_later
    for r in $(seq "$rounds"); do
        out="$(python3 "$work/burst.py" "$addr" "$port" pop3 "$burst" "$password")"
        read -r served secs <<<"$out"
        printf '  %-9s burst %s: %s of %s logins served in %ss\n' "$name" "$r" "$served" "$burst" "$secs"
        total_served=$((total_served + served))
        total_secs="$(awk -v a="$total_secs" -v b="$secs" 'BEGIN { print a + b }')"
    done
    rss_now="$(tree_rss "$pid")"
    sleep 5
    rss_later="$(tree_rss "$pid")"
    printf '  %-9s RSS after the bursts %s MB, five seconds later %s MB\n' "$name" "$rss_now" "$rss_later"
    results+=("$name $(awk -v n="$total_served" -v s="$total_secs" 'BEGIN { printf "%.0f", n / s }') $total_served $rss_later")
}

results=()
officebox_binary
obx_after=n/a obx_served=n/a
if [ -n "$obx_src" ]; then
    for p in $obx_pop3 $obx_pop3s $obx_smtp $obx_submission $obx_smtps; do
        port_free "$addr" "$p" || { echo "$addr:$p is in use (ss -ltn)" >&2; exit 1; }
    done
    cp "$obx_src" "$work/officebox"
    mkdir -p "$work/obx/data"
    {
        officebox_mail_config "$work/obx/data" bench.test
        users_toml
    } >"$work/obx/officebox.toml"
    (cd "$work/obx" && exec "$work/officebox" run --config officebox.toml) >"$work/obx/officebox.log" 2>&1 &
    obx_pid=$!
    pids+=("$obx_pid")
    if wait_listen "$obx_pop3s" "$obx_pid" "$work/obx/officebox.log"; then
        sleep 1
        echo "officebox: $obx_src (idle RSS $(tree_rss "$obx_pid") MB)"
        echo "1. three bursts of 32 POP3 (TLS) and 32 SMTP AUTH (TLS) logins at once"
        obx_served=0
        for r in 1 2 3; do
            python3 "$work/burst.py" "$addr" "$obx_pop3s" pop3s 32 "$password" >"$work/pop3s.out" &
            p1=$!
            python3 "$work/burst.py" "$addr" "$obx_smtps" smtps 32 "$password" >"$work/smtps.out" &
            p2=$!
            wait "$p1" "$p2"
            read -r a sa <"$work/pop3s.out"
            read -r b sb <"$work/smtps.out"
            printf '  burst %s: POP3 %s/32 in %ss, SMTP AUTH %s/32 in %ss, RSS %s MB\n' "$r" "$a" "$sa" "$b" "$sb" "$(tree_rss "$obx_pid")"
            obx_served=$((obx_served + a + b))
        done
        sleep 5
        obx_after="$(tree_rss "$obx_pid")"
        echo "  five seconds after: RSS $obx_after MB; $obx_served of 192 logins served"
        echo "2. side by side: $rounds bursts of $burst POP3 logins"
        side officebox "$obx_pop3" "$obx_pid"
    fi
    kill "$obx_pid" 2>/dev/null || true
    wait "$obx_pid" 2>/dev/null || true
    grep -E 'ERROR|WARN' "$work/obx/officebox.log" | sed 's/^/  officebox log: /' | head -5 >&2 || true
fi

if [ "${PEERS:-1}" = 1 ]; then
    command -v dovecot >/dev/null || { echo "missing: dovecot (apt-get install dovecot-pop3d)" >&2; exit 1; }
    port_free "$addr" "$dc_port" || { echo "$addr:$dc_port is in use (ss -ltn)" >&2; exit 1; }
    dc="$work/dovecot"
    mkdir -p "$dc"
    for i in $(seq "$users"); do
        printf 'u%d:{ARGON2ID}%s\n' "$i" "$hash"
        mkdir -p "$dc/mail/u$i/new" "$dc/mail/u$i/cur" "$dc/mail/u$i/tmp" "$dc/home/u$i"
    done >"$dc/passwd"
    dovecot_pop3_start "$dc" "$dc_port" logins || exit 1
    if wait_listen "$dc_port" "$dc_master" "$dc/dovecot.log"; then
        sleep 1
        echo "dovecot $(dovecot --version | awk '{ print $1 }'): $addr:$dc_port (idle RSS $(tree_rss "$dc_master") MB)"
        side dovecot "$dc_port" "$dc_master"
    fi
fi

echo
printf '%-10s %12s %8s %14s\n' server logins/s served "RSS after, MB"
for r in "${results[@]}"; do
    read -r n l s m <<<"$r"
    printf '%-10s %12s %8s %14s\n' "$n" "$l" "$s" "$m"
done
echo "officebox / dovecot, POP3 logins/s: $(ratio "$(field officebox 2)" "$(field dovecot 2)")"
if [ "$obx_after" != n/a ] && [ "$obx_served" = 192 ] && awk -v m="$obx_after" 'BEGIN { exit !(m < 64) }'; then
    echo "bar: every login served and RSS under 64 MB five seconds after the bursts: met ($obx_after MB)"
else
    echo "bar: every login served and RSS under 64 MB five seconds after the bursts: NOT met ($obx_served of 192, $obx_after MB)"
fi
