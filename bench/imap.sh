#!/usr/bin/env bash
# IMAP speed of officebox against dovecot (dovecot-imapd), on loopback only.
#
# Writes two Maildirs: MESSAGES messages (user bench, 50,000 by default) and SYNC messages
# (user sync, 10,000), about 5 KB each, every 10th with the word "needle" in its body; each
# server gets its own copy. Then, per server, timed from connect:
#   open 1/2   LOGIN and SELECT INBOX of bench: the first is each server's first look at
#              the Maildir (dovecot builds its index, officebox its UIDs); the second warm.
#   headers    FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS
#              (FROM SUBJECT DATE)]): what a mail client asks when it opens a folder;
#              messages/s.
#   search     UID SEARCH BODY needle (reads every message); seconds; the count must be
#              MESSAGES/10.
#   store      STORE 1:* +FLAGS.SILENT (\Seen) (renames every file); seconds.
#   idle       a second client IDLEs; the first APPENDs a message; milliseconds until
#              the idling client hears EXISTS (the median of 20).
#   mbsync     mbsync (isync) copies all of sync's INBOX into an empty local Maildir
#              (in /dev/shm, no fsync: the client's disk is not what is measured);
#              seconds; every message must arrive.
#   RSS        the server's peak memory over the run, measured the same way for both:
#              the highest sum of its processes' resident memory, sampled every 0.1 s
#              (RSS_EVERY seconds), MB. A peak shorter than a sample can fall between
#              samples (officebox's password check holds its argon2 block, 19 MiB, for
#              some 30 ms), so the figure moves by that much from run to run; officebox's
#              exact peak (its VmHWM) is printed below the table, and RSS_EVERY=0.01
#              samples both more finely (taking CPU from the run).
# Prints a table (with each server's CPU time for the whole run), officebox's ratios and
# the bar (issue 20): open, headers, search and mbsync at least 1.5x dovecot, with less
# memory.
#
# Usage (as root: dovecot's private instance starts as root and serves as nobody):
#   bench/imap.sh                         # 50,000 + 10,000 messages; builds officebox first
#   MESSAGES=5000 SYNC=2000 bench/imap.sh # quicker
#   OFFICEBOX_BIN=path bench/imap.sh      # this officebox binary, no cargo build
#   SKIP_OFFICEBOX=1 bench/imap.sh        # dovecot only
#   PEERS=0 bench/imap.sh                 # officebox only (no ratios)
# Needs python3, mbsync (isync) and dovecot 2.3 (Debian package dovecot-imapd; installing it starts no
# service here, on a systemd machine run `systemctl disable --now dovecot` afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."

messages="${MESSAGES:-50000}"
sync_messages="${SYNC:-10000}"
domain="bench.test"
addr=127.0.0.1
password="demo-alice"                   # alice's demo password, and its hash (both servers)
hash='$argon2id$v=19$m=19456,t=2,p=1$XgLlIWdWSUYtz6222unzYg$QtQCJ/eiW4Q5Mk4ZRA8plwlUwfIhHpQRK2EdaLXEcyM'
obx_pop3=14110 obx_pop3s=14995 obx_smtp=14025 obx_submission=14587 obx_smtps=14465
obx_imap=14143 obx_imaps=14993
dc_port=14144
clk_tck="$(getconf CLK_TCK)"

for tool in python3 dovecot mbsync ss awk pgrep; do
    command -v "$tool" >/dev/null || {
        echo "missing: $tool (DEBIAN_FRONTEND=noninteractive apt-get install -y dovecot-imapd isync)" >&2; exit 1; }
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
    print(" ".join(f"{out[k]:.3f}" for k in ("open1", "open2", "headers", "search", "store", "idle")))

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
out="$(python3 "$work/imapbench.py" gen "$work/src/sync" "$sync_messages" "$((secs - 200000))")"
read -r _ sync_total <<<"$out"
echo "Maildirs: bench $messages messages ($total bytes), sync $sync_messages ($sync_total bytes)"

results=()   # "server open1 open2 headers search store idle mbsync rss cpu"
hwm=""       # officebox's VmHWM at the end of its run, MB

# The resident memory (kB) of PIDS and their children, summed.
rss_of() {
    local p total=0 kb
    for p in "$@" $(pgrep -P "$(echo "$@" | tr ' ' ',')" 2>/dev/null || true); do
        kb="$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)"
        total=$((total + ${kb:-0}))
    done
    echo "$total"
}

# A sampler in the background: the highest rss_of PIDS, written to FILE every 0.1 s.
rss_sampler() {
    local file="$1" peak=0 now
    shift
    while kill -0 "$1" 2>/dev/null; do
        now="$(rss_of "$@")"
        [ "$now" -gt "$peak" ] && { peak="$now"; echo "$peak" >"$file"; }
        sleep "${RSS_EVERY:-0.1}"
    done
}

# mbsync PORT: a full sync of user sync's INBOX into an empty Maildir; prints seconds.
mbsync_run() {
    local port="$1" dir="$work/mbsync-$1" near t0 t1 n
    rm -rf "$dir"
    mkdir -p "$dir"
    # The client's copy in memory (tmpfs) where there is one, and no fsync on its side:
    # writing 10,000 files would otherwise time the disk, not the server.
    near="$(mktemp -d -p /dev/shm obx-bench-mbsync.XXXXXX 2>/dev/null || mktemp -d -p "$dir")"
    ln -s "$near" "$dir/local"
    cat >"$dir/rc" <<EOF2
FSync no

IMAPAccount bench
Host $addr
Port $port
User sync
Pass $password
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account bench

MaildirStore local
Path $dir/local/
Inbox $dir/local/INBOX

Channel bench
Far :remote:
Near :local:
Patterns INBOX
Create Near
SyncState *
EOF2
    t0="$EPOCHREALTIME"
    mbsync -q -c "$dir/rc" -a >"$dir/log" 2>&1 || { echo "  WARNING: mbsync failed: $(tail -3 "$dir/log")" >&2; rm -rf "$near"; echo n/a; return; }
    t1="$EPOCHREALTIME"
    n="$(find "$dir/local/INBOX/cur" "$dir/local/INBOX/new" -type f | wc -l)"
    rm -rf "$near"
    if [ "$n" != "$sync_messages" ]; then
        echo "  WARNING: mbsync brought $n of $sync_messages messages" >&2
        echo n/a
        return
    fi
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

bench() {
    local name="$1" port="$2" tfn="$3" c0 c1 out sync rss sampler
    shift 3
    rss_sampler "$work/rss-$name" "$@" &
    sampler=$!
    c0="$($tfn)"
    if out="$(PASSWORD="$password" python3 "$work/imapbench.py" run "$port" "$messages" "$total")"; then
        sync="$(mbsync_run "$port")"
        c1="$($tfn)"
        rss="$(awk '{ printf "%.1f", $1 / 1024 }' "$work/rss-$name" 2>/dev/null || echo n/a)"
        if [ "$name" = officebox ]; then
            hwm="$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status")"
        fi
        results+=("$name $out $sync $rss $(awk -v t=$((c1 - c0)) -v hz="$clk_tck" 'BEGIN { printf "%.2f", t / hz }')")
    else
        echo "  WARNING: $name: the run failed" >&2
        na "$name"
    fi
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
}

na() { results+=("$1 n/a n/a n/a n/a n/a n/a n/a n/a n/a"); }

officebox_binary
if [ -z "$obx_src" ]; then
    na officebox
else
    for p in $obx_pop3 $obx_pop3s $obx_smtp $obx_submission $obx_smtps $obx_imap $obx_imaps; do
        port_free "$addr" "$p" || { echo "$addr:$p is in use (ss -ltn)" >&2; exit 1; }
    done
    cp "$obx_src" "$work/officebox"
    mkdir -p "$work/obx/data/mail"
    cp -a "$work/src/bench" "$work/src/sync" "$work/obx/data/mail/"
    {
        officebox_mail_config "$work/obx/data" "$domain"
        printf '[[users]]\nlogin = "%s"\npassword = "%s"\n\n' bench "$hash" sync "$hash"
    } >"$work/obx/officebox.toml"
    echo "officebox: $obx_src on $addr:$obx_imap"
    (cd "$work/obx" && exec "$work/officebox" run --config officebox.toml) >"$work/obx/officebox.log" 2>&1 &
    obx_pid=$!
    pids+=("$obx_pid")
    if ! wait_listen "$obx_imap" "$obx_pid" "$work/obx/officebox.log"; then
        echo "officebox: did not start or listen, marked n/a" >&2
        na officebox
    else
        bench officebox "$obx_imap" obx_ticks "$obx_pid"
    fi
    kill "$obx_pid" 2>/dev/null || true
    wait "$obx_pid" 2>/dev/null || true
    grep -E 'ERROR|WARN' "$work/obx/officebox.log" | sed 's/^/  officebox log: /' | head -5 >&2 || true
fi

if [ "${PEERS:-1}" = 1 ]; then
    port_free "$addr" "$dc_port" || { echo "$addr:$dc_port is in use (ss -ltn)" >&2; exit 1; }
    dc="$work/dovecot"
    mkdir -p "$dc/mail" "$dc/home/bench" "$dc/home/sync"
    cp -a "$work/src/bench" "$work/src/sync" "$dc/mail/"
    # The same argon2id hash officebox checks, so a login costs both the same.
    printf 'bench:{ARGON2ID}%s\nsync:{ARGON2ID}%s\n' "$hash" "$hash" >"$dc/passwd"
    dovecot_pop3_start "$dc" "$dc_port" imap imap || exit 1
    echo "dovecot $dc_version: $addr:$dc_port (private instance, master pid $dc_master)"
    if wait_listen "$dc_port" "$dc_master" "$dc/dovecot.log"; then
        bench dovecot "$dc_port" dc_ticks "$dc_master"
    else
        echo "dovecot: did not listen, marked n/a" >&2
        na dovecot
    fi
    dovecot_pop3_stop
    grep -E '(Warning|Error|Fatal|Panic): ' "$dc/dovecot.log" | grep -v 'Killed with signal 15' | sed 's/^/  dovecot log: /' | head -5 >&2 || true
fi

echo
echo "bench: $messages messages of about 5 KB; open: LOGIN+SELECT s; headers: messages/s; search (BODY),"
echo "store (+FLAGS \\Seen on all): s; idle: ms from APPEND to EXISTS (median of 20);"
echo "mbsync: s for $sync_messages messages; RSS: peak MB; CPU: the server's, whole run"
printf '%-10s %8s %8s %9s %8s %8s %8s %8s %8s %8s\n' server "open1 s" "open2 s" "headers/s" \
    "search s" "store s" "idle ms" "mbsync s" "RSS MB" "CPU s"
for r in "${results[@]}"; do
    # shellcheck disable=SC2086
    printf '%-10s %8s %8s %9s %8s %8s %8s %8s %8s %8s\n' $r
done
echo
echo "how many times dovecot's speed officebox has (higher is better), and memory officebox / dovecot:"
names=(server open1 open2 headers search store idle mbsync rss cpu)
verdict=PASS
for col in 2 3 4 5 6 7 8 9 10; do
    a="$(field officebox "$col")" b="$(field dovecot "$col")"
    case "$col" in
        4) r="$(ratio "$a" "$b")" ;;            # a rate
        9|10) r="$(ratio "$a" "$b")" ;;         # memory, CPU: officebox / dovecot
        *) r="$(ratio "$b" "$a")" ;;            # a time: dovecot's over officebox's
    esac
    printf '  %-8s %6s\n' "${names[$((col - 1))]}" "$r"
    case "$col" in
        2|3|4|5|8) want=">= 1.5" ;;
        9) want="< 1" ;;
        *) continue ;;
    esac
    if [ "$r" = n/a ]; then
        verdict=n/a
    elif [ "$verdict" != n/a ]; then
        awk -v r="$r" -v w="$want" 'BEGIN { exit !((w == "< 1") ? r < 1 : r >= 1.5) }' || verdict=FAIL
    fi
done
echo "officebox's exact peak (VmHWM, every moment counted): ${hwm:-n/a} MB"
echo "bar: open, headers, search and mbsync >= 1.5x dovecot, with less memory: $verdict"
