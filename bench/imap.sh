#!/usr/bin/env bash
# IMAP speed of officebox against dovecot (dovecot-imapd), on loopback only.
#
# Writes one Maildir of MESSAGES messages (about 5 KB each, every 10th with the word
# "needle" in its body) and gives each server its own copy. Python's imaplib then runs,
# per server, one session after another, each timed from connect:
#   open 1/2   LOGIN and SELECT INBOX: the first is each server's first look at the
#              Maildir (dovecot builds its index, officebox its UIDs); the second is warm.
#   headers    FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS
#              (FROM SUBJECT DATE)]): what a mail client asks when it opens a folder;
#              messages/s.
#   bodies     UID FETCH n BODY.PEEK[] for every message, one command each (a syncing
#              client); messages/s; the bytes must equal the files' sizes.
#   search     UID SEARCH BODY needle (reads every message); seconds; the count must be
#              MESSAGES/10.
#   store      STORE 1:* +FLAGS.SILENT (\Seen) (renames every file); seconds.
#   idle       a second client IDLEs; the first APPENDs a message; milliseconds until
#              the idling client hears EXISTS (the median of 20).
# Prints a table (with each server's CPU time for the whole run), officebox's ratios and
# the bar: officebox at least as fast as dovecot on every line.
#
# Usage (as root: dovecot's private instance starts as root and serves as nobody):
#   bench/imap.sh                         # 10,000 messages; builds officebox first
#   MESSAGES=2000 bench/imap.sh           # quicker
#   OFFICEBOX_BIN=path bench/imap.sh      # this officebox binary, no cargo build
#   SKIP_OFFICEBOX=1 bench/imap.sh        # dovecot only
#   PEERS=0 bench/imap.sh                 # officebox only (no ratios)
# Needs python3 and dovecot 2.3 (Debian package dovecot-imapd; installing it starts no
# service here, on a systemd machine run `systemctl disable --now dovecot` afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."

messages="${MESSAGES:-10000}"
domain="bench.test"
addr=127.0.0.1
password="demo-alice"                   # alice's demo password, and its hash (both servers)
hash='$argon2id$v=19$m=19456,t=2,p=1$XgLlIWdWSUYtz6222unzYg$QtQCJ/eiW4Q5Mk4ZRA8plwlUwfIhHpQRK2EdaLXEcyM'
obx_pop3=14110 obx_pop3s=14995 obx_smtp=14025 obx_submission=14587 obx_smtps=14465
obx_imap=14143 obx_imaps=14993
dc_port=14144
clk_tck="$(getconf CLK_TCK)"

for tool in python3 dovecot ss awk pgrep; do
    command -v "$tool" >/dev/null || {
        echo "missing: $tool (DEBIAN_FRONTEND=noninteractive apt-get install -y dovecot-imapd)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run as root (dovecot's private instance needs it)" >&2; exit 1; }
dc_version="$(dovecot --version | awk '{ print $1 }')"
case "$dc_version" in
    2.3.*) ;;
    *) echo "dovecot $dc_version: this script writes a dovecot 2.3 config (2.4 changed its syntax)" >&2
       [ "${PEERS:-1}" = 0 ] || exit 1 ;;
esac
[ -x /usr/lib/dovecot/imap ] || [ "${PEERS:-1}" = 0 ] || {
    echo "missing: dovecot's imap (apt-get install dovecot-imapd)" >&2; exit 1; }

source bench/lib.sh
bench_start imap
chmod 755 "$work"                       # dovecot serves as nobody below it
bench_extra_cleanup() { dovecot_pop3_stop; }

obx_ticks() { ticks "$obx_pid"; }
# shellcheck disable=SC2046
dc_ticks() { ticks "$dc_master" $(pgrep -P "$dc_master" || true); }

cat >"$work/imapbench.py" <<'EOF'
import imaplib, os, re, socket, statistics, sys, threading, time

def gen(root, n, secs):
    for d in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    pid, total = os.getpid(), 0
    pad = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod"
    for q in range(n):
        head = (f"From: Sender {q % 97} <sender{q % 97}@example.org>\r\n"
                f"To: Bench <bench@bench.test>\r\n"
                f"Subject: bench message {q}\r\n"
                f"Date: Fri, 28 Nov 2025 08:00:00 +0000\r\n"
                f"Message-ID: <{q}.{pid}@example.org>\r\n"
                f"MIME-Version: 1.0\r\n"
                f"Content-Type: text/plain; charset=us-ascii\r\n\r\n")
        target = 4700 + (q * 37) % 700
        lines, size, i = [head], len(head), 0
        while size < target:
            word = "needle" if (q % 10 == 0 and i == 5) else "haystack"
            line = f"line {i:03d} of message {q}: {pad} {word}\r\n"
            lines.append(line)
            size += len(line)
            i += 1
        data = "".join(lines).encode()
        name = f"{secs + q // 50}.M{(q * 7919) % 1000000}P{pid}Q{q}.bench,S={len(data)}"
        with open(os.path.join(root, "new", name), "wb") as f:
            f.write(data)
        total += len(data)
    print(n, total)

def login(port):
    m = imaplib.IMAP4("127.0.0.1", int(port), timeout=600)
    m.login("bench", PASSWORD)
    return m

def run(port, n, total):
    out = {}
    for k in ("open1", "open2"):
        t0 = time.perf_counter()
        m = login(port)
        typ, data = m.select("INBOX")
        out[k] = time.perf_counter() - t0
        assert int(data[0]) == n, data
        if k == "open1":
            m.logout()
    t0 = time.perf_counter()
    typ, data = m.fetch("1:*", "(UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])")
    out["headers"] = n / (time.perf_counter() - t0)
    assert len([d for d in data if isinstance(d, tuple)]) == n, len(data)
    typ, data = m.uid("SEARCH", "ALL")
    uids = data[0].split()
    got = 0
    t0 = time.perf_counter()
    for u in uids:
        typ, data = m.uid("FETCH", u, "(BODY.PEEK[])")
        got += len(data[0][1])
    out["bodies"] = n / (time.perf_counter() - t0)
    assert got == total, (got, total)
    t0 = time.perf_counter()
    typ, data = m.uid("SEARCH", "BODY", "needle")
    out["search"] = time.perf_counter() - t0
    found = len(data[0].split())
    assert found == (n + 9) // 10, found
    t0 = time.perf_counter()
    m.store("1:*", "+FLAGS.SILENT", "(\\Seen)")
    out["store"] = time.perf_counter() - t0
    # IDLE: a second session idles, this one appends.
    w = login(port)
    w.select("INBOX")
    delays = []
    for i in range(20):
        w.send(f"i{i} IDLE\r\n".encode())
        assert w.readline().startswith(b"+"), "no continuation"
        time.sleep(0.05)
        t0 = time.perf_counter()
        m.append("INBOX", None, None, f"Subject: idle {i}\r\n\r\nhello\r\n".encode())
        while True:
            line = w.readline()
            if re.match(rb"\* \d+ EXISTS", line):
                break
            assert line, "the idling client was cut off"
        delays.append((time.perf_counter() - t0) * 1000)
        w.send(b"DONE\r\n")
        while not w.readline().startswith(f"i{i} ".encode()):
            pass
    out["idle"] = statistics.median(delays)
    w.logout()
    m.logout()
    print(" ".join(f"{out[k]:.3f}" for k in ("open1", "open2", "headers", "bodies", "search", "store", "idle")))

PASSWORD = os.environ.get("PASSWORD", "")
if sys.argv[1] == "gen":
    gen(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
else:
    try:
        run(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    except Exception as e:
        print(f"failed: {e!r}", file=sys.stderr)
        sys.exit(1)
EOF

secs="$(date +%s)"
out="$(python3 "$work/imapbench.py" gen "$work/src/bench" "$messages" "$((secs - 100000))")"
read -r _ total <<<"$out"
echo "Maildir: $messages messages, $total bytes"

results=()   # "server open1 open2 headers bodies search store idle cpu"

bench() {
    local name="$1" port="$2" tfn="$3" c0 c1 out
    c0="$($tfn)"
    if out="$(PASSWORD="$password" python3 "$work/imapbench.py" run "$port" "$messages" "$total")"; then
        c1="$($tfn)"
        results+=("$name $out $(awk -v t=$((c1 - c0)) -v hz="$clk_tck" 'BEGIN { printf "%.2f", t / hz }')")
    else
        echo "  WARNING: $name: the run failed" >&2
        results+=("$name n/a n/a n/a n/a n/a n/a n/a n/a")
    fi
}

na() { results+=("$1 n/a n/a n/a n/a n/a n/a n/a n/a"); }

officebox_binary
if [ -z "$obx_src" ]; then
    na officebox
else
    for p in $obx_pop3 $obx_pop3s $obx_smtp $obx_submission $obx_smtps $obx_imap $obx_imaps; do
        port_free "$addr" "$p" || { echo "$addr:$p is in use (ss -ltn)" >&2; exit 1; }
    done
    cp "$obx_src" "$work/officebox"
    mkdir -p "$work/obx/data/mail"
    cp -a "$work/src/bench" "$work/obx/data/mail/"
    {
        officebox_mail_config "$work/obx/data" "$domain"
        printf '[[users]]\nlogin = "%s"\npassword = "%s"\n\n' bench "$hash"
    } >"$work/obx/officebox.toml"
    echo "officebox: $obx_src on $addr:$obx_imap"
    (cd "$work/obx" && exec "$work/officebox" run --config officebox.toml) >"$work/obx/officebox.log" 2>&1 &
    obx_pid=$!
    pids+=("$obx_pid")
    if ! wait_listen "$obx_imap" "$obx_pid" "$work/obx/officebox.log"; then
        echo "officebox: did not start or listen, marked n/a" >&2
        na officebox
    else
        bench officebox "$obx_imap" obx_ticks
    fi
    kill "$obx_pid" 2>/dev/null || true
    wait "$obx_pid" 2>/dev/null || true
    grep -E 'ERROR|WARN' "$work/obx/officebox.log" | sed 's/^/  officebox log: /' | head -5 >&2 || true
fi

if [ "${PEERS:-1}" = 1 ]; then
    port_free "$addr" "$dc_port" || { echo "$addr:$dc_port is in use (ss -ltn)" >&2; exit 1; }
    dc="$work/dovecot"
    mkdir -p "$dc/mail" "$dc/home/bench"
    cp -a "$work/src/bench" "$dc/mail/"
    # The same argon2id hash officebox checks, so a login costs both the same.
    printf 'bench:{ARGON2ID}%s\n' "$hash" >"$dc/passwd"
    dovecot_pop3_start "$dc" "$dc_port" imap imap || exit 1
    echo "dovecot $dc_version: $addr:$dc_port (private instance, master pid $dc_master)"
    if wait_listen "$dc_port" "$dc_master" "$dc/dovecot.log"; then
        bench dovecot "$dc_port" dc_ticks
    else
        echo "dovecot: did not listen, marked n/a" >&2
        na dovecot
    fi
    dovecot_pop3_stop
    grep -E '(Warning|Error|Fatal|Panic): ' "$dc/dovecot.log" | grep -v 'Killed with signal 15' | sed 's/^/  dovecot log: /' | head -5 >&2 || true
fi

echo
echo "$messages messages of about 5 KB; open: LOGIN+SELECT s; headers, bodies: messages/s;"
echo "search (BODY), store (+FLAGS \\Seen on all): s; idle: ms from APPEND to EXISTS (median of 20)"
printf '%-10s %8s %8s %9s %9s %8s %8s %8s %8s\n' server "open1 s" "open2 s" "headers/s" "bodies/s" \
    "search s" "store s" "idle ms" "CPU s"
for r in "${results[@]}"; do
    # shellcheck disable=SC2086
    printf '%-10s %8s %8s %9s %9s %8s %8s %8s %8s\n' $r
done
echo
echo "officebox / dovecot (per second: higher is better; s and ms: lower is better):"
names=(server open1 open2 headers bodies search store idle cpu)
verdict=PASS
for col in 2 3 4 5 6 7 8 9; do
    a="$(field officebox "$col")" b="$(field dovecot "$col")"
    r="$(ratio "$a" "$b")"
    printf '  %-8s %6s\n' "${names[$((col - 1))]}" "$r"
    if [ "$r" = n/a ]; then
        verdict=n/a
    elif [ "$verdict" != n/a ]; then
        case "$col" in
            4|5) awk -v r="$r" 'BEGIN { exit !(r >= 1) }' || verdict=FAIL ;;
            *) awk -v r="$r" 'BEGIN { exit !(r <= 1) }' || verdict=FAIL ;;
        esac
    fi
done
echo "bar: officebox as fast as dovecot or faster on every line: $verdict"
