#!/usr/bin/env bash
# POP3 retrieval and login speed of officebox against dovecot, on loopback only.
#
# Generates two Maildirs once: MESSAGES messages (user bench) and BIG messages (user big)
# of about 5 KB each (CRLF lines, a few headers, a body with one dot-stuffed line), as
# files `new/{secs}.M{micros}P{pid}Q{n}.bench,S={size}`; each server gets its own copy of
# both. Python's poplib then measures, per server, one session after another:
#   RETR 1/2  on bench: connect, USER/PASS, STAT, RETR 1..N, QUIT; the clock runs from
#             connect until QUIT is answered; messages/s; the bytes retrieved (after
#             dot-unstuffing, with CRLFs) must equal the sum of the file sizes. Run twice:
#             the first session is dovecot's first look at the Maildir (it builds its
#             index, moves new/ to cur/ and, at QUIT, marks the messages seen).
#   STAT 1/2  on big: connect, USER/PASS, STAT answered (QUIT not timed); the count and
#             size must match. The first is again dovecot's first look at that Maildir.
# Prints a table (with server CPU per message retrieved, from /proc/PID/stat, and the
# client's CPU, to show which side is the limit), officebox's ratios against dovecot and
# the bar: officebox at least as fast as dovecot on RETR and on login-to-STAT.
#
# Usage (as root: dovecot's private instance starts as root and serves as nobody):
#   bench/pop3.sh                        # 10,000 + 50,000 messages; builds officebox first
#   MESSAGES=1000 BIG=5000 bench/pop3.sh # quicker
#   SKIP_OFFICEBOX=1 bench/pop3.sh       # dovecot only, no cargo build
#   OFFICEBOX_BIN=path bench/pop3.sh     # this officebox binary, no cargo build
#   PEERS=0 bench/pop3.sh                # officebox only (while tuning; ratios need dovecot)
#   WSIZE=1 bench/pop3.sh                # names also carry `,W={size}` (dovecot's own
#                                        # deliveries do; it then needn't read each file
#                                        # for its virtual size on the first login)
# Needs python3 and dovecot 2.3 (Debian package dovecot-pop3d; installing it starts no
# service here, on a systemd machine run `systemctl disable --now dovecot` afterwards).
# dovecot runs as a private instance (dovecot -c FILE) whose config, base_dir, state_dir,
# log and mailboxes are in the scratch dir; it listens on 127.0.0.1 for POP3 only.
set -euo pipefail
cd "$(dirname "$0")/.."

messages="${MESSAGES:-10000}"
big="${BIG:-50000}"
wsize="${WSIZE:-0}"
domain="bench.test"
addr=127.0.0.1
password="demo-alice"                   # alice's demo password; its hash is below
obx_pop3=13110 obx_pop3s=13995 obx_smtp=13025 obx_submission=13587 obx_smtps=13465
dc_port=13111
clk_tck="$(getconf CLK_TCK)"

for tool in python3 dovecot ss awk pgrep; do
    command -v "$tool" >/dev/null || {
        echo "missing: $tool (DEBIAN_FRONTEND=noninteractive apt-get install -y dovecot-pop3d)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run as root (dovecot's private instance needs it)" >&2; exit 1; }
dc_version="$(dovecot --version | awk '{ print $1 }')"
case "$dc_version" in
    2.3.*) ;;
    *) echo "dovecot $dc_version: this script writes a dovecot 2.3 config (2.4 changed its syntax)" >&2
       [ "${PEERS:-1}" = 0 ] || exit 1 ;;
esac

source bench/lib.sh
bench_start pop3
chmod 755 "$work"                       # dovecot serves as nobody below it
bench_extra_cleanup() { dovecot_pop3_stop; }

# ------------------------------------------------------------------ helpers


obx_ticks() { ticks "$obx_pid"; }
# shellcheck disable=SC2046
dc_ticks() { ticks "$dc_master" $(pgrep -P "$dc_master" || true); }


# The client: `gen DIR N SECS WSIZE` writes a Maildir and prints "count bytes";
# `retr|stat HOST PORT USER PASS` runs one session and prints
# "seconds count stat_bytes retrieved_bytes client_cpu_seconds" (retrieved 0 for stat).
cat >"$work/pop3bench.py" <<'EOF'
import os, poplib, sys, time

def gen(root, n, secs, wsize):
    for d in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    pid, total = os.getpid(), 0
    pad = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod"
    for q in range(n):
        head = (f"Return-Path: <sender{q % 97}@example.org>\r\n"
                f"From: Sender {q % 97} <sender{q % 97}@example.org>\r\n"
                f"To: Bench <bench@bench.test>\r\n"
                f"Subject: bench message {q}\r\n"
                f"Date: Fri, 28 Nov 2025 08:00:00 +0000\r\n"
                f"Message-ID: <{q}.{pid}@example.org>\r\n"
                f"MIME-Version: 1.0\r\n"
                f"Content-Type: text/plain; charset=us-ascii\r\n\r\n")
        target = 4700 + (q * 37) % 700
        lines, size, i = [head], len(head), 0
        while size < target:
            line = (f".a line starting with a dot, {q}\r\n" if i == 7
                    else f"line {i:03d} of message {q}: {pad}\r\n")
            lines.append(line)
            size += len(line)
            i += 1
        data = "".join(lines).encode()
        name = f"{secs + q // 50}.M{(q * 7919) % 1000000}P{pid}Q{q}.bench,S={len(data)}"
        if wsize:
            name += f",W={len(data)}"
        with open(os.path.join(root, "new", name), "wb") as f:
            f.write(data)
        total += len(data)
    print(n, total)

def session(mode, host, port, user, password):
    c0, t0 = time.process_time(), time.perf_counter()
    p = poplib.POP3(host, int(port), timeout=300)
    p.user(user)
    p.pass_(password)
    count, size = p.stat()
    got = 0
    if mode == "retr":
        for i in range(1, count + 1):
            _, _, octets = p.retr(i)
            got += octets
        p.quit()
        t1 = time.perf_counter()
    else:
        t1 = time.perf_counter()
        p.quit()
    print(f"{t1 - t0:.3f} {count} {size} {got} {time.process_time() - c0:.2f}")

if sys.argv[1] == "gen":
    gen(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1")
else:
    try:
        session(*sys.argv[1:6])
    except Exception as e:
        print(f"{sys.argv[1]} failed: {e!r}", file=sys.stderr)
        sys.exit(1)
EOF

# ------------------------------------------------------------------ the Maildirs

secs="$(date +%s)"
t0="$EPOCHREALTIME"
out="$(python3 "$work/pop3bench.py" gen "$work/src/bench" "$messages" "$((secs - 100000))" "$wsize")"
read -r _ bench_bytes <<<"$out"
out="$(python3 "$work/pop3bench.py" gen "$work/src/big" "$big" "$((secs - 200000))" "$wsize")"
read -r _ big_bytes <<<"$out"
echo "Maildirs: bench $messages messages ($bench_bytes bytes), big $big messages ($big_bytes bytes)," \
    "written in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')s$([ "$wsize" = 1 ] && echo ", names with ,W=")"

results=()   # "server retr1/s retr2/s bytes_ok srv_ms_per_msg cli_cpu_s stat1_s stat2_s count_ok"

# bench NAME PORT TICKS_FN: the four sessions against one server; one results line
bench() {
    local name="$1" port="$2" tfn="$3" out c0 c1 s n size got cpu
    local r1=n/a r2=n/a ok=yes ms=n/a cli=n/a st1=n/a st2=n/a cok=yes run
    for run in 1 2; do
        c0="$($tfn)"
        if out="$(python3 "$work/pop3bench.py" retr "$addr" "$port" bench "$password")"; then
            sleep 0.3                   # let dovecot's master reap the pop3 process
            c1="$($tfn)"
            read -r s n size got cpu <<<"$out"
            printf '  %-9s RETR %s: %s messages, %s bytes in %ss; client CPU %ss, server CPU %ss\n' \
                "$name" "$run" "$n" "$got" "$s" "$cpu" "$(awk -v t=$((c1 - c0)) -v hz="$clk_tck" 'BEGIN { printf "%.2f", t / hz }')"
            if [ "$n" != "$messages" ] || [ "$got" != "$bench_bytes" ] || [ "$size" != "$bench_bytes" ]; then
                echo "  WARNING: $name: expected $messages messages and $bench_bytes bytes; STAT said $n $size, RETR gave $got bytes" >&2
                ok=NO
            fi
            if [ "$run" = 1 ]; then
                r1="$(awk -v n="$n" -v s="$s" 'BEGIN { printf "%.0f", n / s }')"
            else
                r2="$(awk -v n="$n" -v s="$s" 'BEGIN { printf "%.0f", n / s }')"
                ms="$(awk -v t=$((c1 - c0)) -v hz="$clk_tck" -v n="$n" 'BEGIN { if (n > 0) printf "%.3f", t * 1000 / hz / n; else print "n/a" }')"
                cli="$cpu"
            fi
        else
            echo "  WARNING: $name: RETR session $run failed" >&2
            ok=NO
        fi
    done
    for run in 1 2; do
        if out="$(python3 "$work/pop3bench.py" stat "$addr" "$port" big "$password")"; then
            read -r s n size _ _ <<<"$out"
            printf '  %-9s STAT %s: %s messages, %s bytes, login-to-STAT %ss\n' "$name" "$run" "$n" "$size" "$s"
            if [ "$n" != "$big" ] || [ "$size" != "$big_bytes" ]; then
                echo "  WARNING: $name: expected $big messages of $big_bytes bytes, STAT said $n $size" >&2
                cok=NO
            fi
            if [ "$run" = 1 ]; then st1="$s"; else st2="$s"; fi
        else
            echo "  WARNING: $name: STAT session $run failed" >&2
            cok=NO
        fi
    done
    results+=("$name $r1 $r2 $ok $ms $cli $st1 $st2 $cok")
}

na() { results+=("$1 n/a n/a n/a n/a n/a n/a n/a n/a"); }

# ------------------------------------------------------------------ officebox

officebox_binary
if [ -z "$obx_src" ]; then
    na officebox
else
    for p in $obx_pop3 $obx_pop3s $obx_smtp $obx_submission $obx_smtps; do
        port_free "$addr" "$p" || { echo "$addr:$p is in use (ss -ltn)" >&2; exit 1; }
    done
    # A private copy: a rebuild during the run does not swap the binary under us.
    cp "$obx_src" "$work/officebox"
    mkdir -p "$work/obx/data/mail"
    cp -a "$work/src/bench" "$work/src/big" "$work/obx/data/mail/"
    # alice's demo hash from examples/demo.toml: the password is demo-alice.
    hash='$argon2id$v=19$m=19456,t=2,p=1$XgLlIWdWSUYtz6222unzYg$QtQCJ/eiW4Q5Mk4ZRA8plwlUwfIhHpQRK2EdaLXEcyM'
    {
        officebox_mail_config "$work/obx/data" "$domain"
        printf '[[users]]\nlogin = "%s"\npassword = "%s"\n\n' bench "$hash" big "$hash"
    } >"$work/obx/officebox.toml"
    echo "officebox: $obx_src on $addr:$obx_pop3"
    (cd "$work/obx" && exec "$work/officebox" run --config officebox.toml) >"$work/obx/officebox.log" 2>&1 &
    obx_pid=$!
    pids+=("$obx_pid")
    if ! wait_listen "$obx_pop3" "$obx_pid" "$work/obx/officebox.log"; then
        echo "officebox: did not start or listen, marked n/a" >&2
        na officebox
    else
        bench officebox "$obx_pop3" obx_ticks
    fi
    kill "$obx_pid" 2>/dev/null || true
    wait "$obx_pid" 2>/dev/null || true
    grep -E 'ERROR|WARN' "$work/obx/officebox.log" | sed 's/^/  officebox log: /' | head -5 >&2 || true
fi

# ------------------------------------------------------------------ dovecot
if [ "${PEERS:-1}" = 1 ]; then

port_free "$addr" "$dc_port" || { echo "$addr:$dc_port is in use (ss -ltn)" >&2; exit 1; }
dc="$work/dovecot"
mkdir -p "$dc/mail" "$dc/home/bench" "$dc/home/big"
cp -a "$work/src/bench" "$work/src/big" "$dc/mail/"
printf 'bench:{PLAIN}%s\nbig:{PLAIN}%s\n' "$password" "$password" >"$dc/passwd"
# Indexes live in each Maildir (dovecot's default).
dovecot_pop3_start "$dc" "$dc_port" pop3 || exit 1
echo "dovecot $dc_version: $addr:$dc_port (private instance, master pid $dc_master)"
if wait_listen "$dc_port" "$dc_master" "$dc/dovecot.log"; then
    bench dovecot "$dc_port" dc_ticks
else
    echo "dovecot: did not listen, marked n/a" >&2
    na dovecot
fi
dovecot_pop3_stop
grep -E '(Warning|Error|Fatal|Panic): ' "$dc/dovecot.log" | grep -v 'Killed with signal 15' | sed 's/^/  dovecot log: /' | head -5 >&2 || true

fi # PEERS

# ------------------------------------------------------------------ report

echo
echo "RETR: $messages messages, connect to QUIT answered; STAT: login to STAT answered on $big messages"
printf '%-10s %11s %11s %8s %13s %9s %9s %9s %8s\n' server "RETR1 msg/s" "RETR2 msg/s" bytes-ok \
    "srv ms/msg" "cli CPU s" "STAT1 s" "STAT2 s" count-ok
for r in "${results[@]}"; do
    # shellcheck disable=SC2086
    printf '%-10s %11s %11s %8s %13s %9s %9s %9s %8s\n' $r
done
echo "(srv ms/msg: server CPU per message in RETR 2; cli CPU s: poplib's CPU in RETR 2)"


echo
echo "officebox / dovecot (msg/s: higher is better; seconds: lower is better):"
printf '  RETR1 msg/s  %6s\n' "$(ratio "$(field officebox 2)" "$(field dovecot 2)")"
printf '  RETR2 msg/s  %6s\n' "$(ratio "$(field officebox 3)" "$(field dovecot 3)")"
printf '  STAT1 s      %6s\n' "$(ratio "$(field officebox 7)" "$(field dovecot 7)")"
printf '  STAT2 s      %6s\n' "$(ratio "$(field officebox 8)" "$(field dovecot 8)")"
v="$(awk -v a1="$(field officebox 2)" -v b1="$(field dovecot 2)" -v a2="$(field officebox 3)" \
    -v b2="$(field dovecot 3)" -v s1="$(field officebox 7)" -v d1="$(field dovecot 7)" \
    -v s2="$(field officebox 8)" -v d2="$(field dovecot 8)" -v ok="$(field officebox 4)$(field officebox 9)" '
    BEGIN {
        if (a1 == "n/a" || b1 == "n/a" || a2 == "n/a" || b2 == "n/a" || s1 == "n/a" || d1 == "n/a" || s2 == "n/a" || d2 == "n/a") { print "n/a"; exit }
        if (ok != "yesyes") { print "FAIL (wrong counts or bytes)"; exit }
        print (a1 >= b1 && a2 >= b2 && s1 <= d1 && s2 <= d2) ? "PASS" : "FAIL"
    }')"
echo "bar: officebox RETR msg/s >= dovecot and login-to-STAT <= dovecot, first and second runs: $v"
