#!/usr/bin/env bash
# SMTP delivery throughput of officebox against postfix, on loopback only.
#
# postfix's smtp-source sends MESSAGES messages of 5 KB over 20 parallel sessions (one
# message per connection) to each server in turn; each server delivers them to a local
# Maildir with fsync. The clock runs from the first connection until every message is a
# file in the Maildir's new/ (officebox answers 250 only after its Maildir fsync; postfix
# queues first and delivers later), with a timeout. Prints per server: accepted/s (until
# smtp-source exits), delivered/s (until all are in new/), the server's CPU seconds
# (utime+stime from /proc/PID/stat; for postfix the master, its live children and its
# reaped children), then officebox's ratios against postfix and the bar: >= 2x postfix.
#
# Usage (as root: postfix drops privileges and delivers as nobody):
#   bench/smtp.sh                    # 10,000 messages; builds officebox (release) first
#   MESSAGES=500 bench/smtp.sh       # quicker
#   SKIP_OFFICEBOX=1 bench/smtp.sh   # postfix only, no cargo build
#   PEERS=0 bench/smtp.sh            # officebox only (while tuning; ratios need postfix)
#   TIMEOUT=600 bench/smtp.sh        # seconds per server (default 60 + MESSAGES/25)
# Needs smtp-source and postfix (Debian package postfix). postfix runs as a private
# instance (postfix -c DIR) whose config, queue, data, log and mailboxes are all in the
# scratch dir: it listens on 127.0.0.1 only, has no smtp/relay/lmtp client services in
# its master.cf and every non-local transport is error:, so nothing can leave the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

messages="${MESSAGES:-10000}"
skip_officebox="${SKIP_OFFICEBOX:-0}"
timeout_s="${TIMEOUT:-$((60 + messages / 25))}"
sessions=20
size=5120
domain="bench.test"
addr=127.0.0.1
obx_smtp=12525 obx_submission=12587 obx_smtps=12465 obx_pop3=12110 obx_pop3s=12995
pf_port=12526
clk_tck="$(getconf CLK_TCK)"

for tool in smtp-source postfix postconf ss awk pgrep timeout; do
    command -v "$tool" >/dev/null || {
        echo "missing: $tool (DEBIAN_FRONTEND=noninteractive apt-get install -y postfix)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run as root (postfix's private instance needs it)" >&2; exit 1; }

source bench/lib.sh
bench_start smtp
chmod 755 "$work"                       # postfix's virtual(8) runs as nobody below it
pf_etc="$work/postfix/etc"
pf_master=""                            # pid of our postfix instance's master, once started
bench_extra_cleanup() {
    local i
    if [ -n "$pf_master" ]; then
        postfix -c "$pf_etc" stop >/dev/null 2>&1 || true
        for i in $(seq 100); do
            kill -0 "$pf_master" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pf_master" 2>/dev/null || true
    fi
}

# ------------------------------------------------------------------ helpers


count_new() { # MAILDIR: files in new/ (0 while it does not exist)
    if [ -d "$1/new" ]; then
        find "$1/new" -maxdepth 1 -type f | wc -l
    else
        echo 0
    fi
}

# shellcheck disable=SC2046
obx_ticks() { ticks "$obx_pid"; }
# shellcheck disable=SC2046
pf_ticks() { ticks "$pf_master" $(pgrep -P "$pf_master" || true); }

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s == "n/a" || s + 0 <= 0) print "n/a"; else printf "%.0f", n / s }'; }

results=()   # "server accept_s deliver_s delivered cpu_s cpu_ms_per_msg"

# measure NAME PORT MAILDIR TICKS_FN: one smtp-source run, then wait for the Maildir
measure() {
    local t0 t1 t2 c0 c1 out rc n left accept_s deliver_s cpu_s cpu_ms
    c0="$($4)"
    t0="$(now)"
    rc=0
    out="$(timeout "$timeout_s" smtp-source -s "$sessions" -m "$messages" -l "$size" \
        -f "from@$domain" -t "bench@$domain" "$addr:$2" 2>&1)" || rc=$?
    t1="$(now)"
    if [ "$rc" != 0 ]; then
        echo "  WARNING: $1: smtp-source exited with status $rc" >&2
        [ -z "$out" ] || tail -n 5 <<<"$out" | sed 's/^/  smtp-source: /' >&2
    fi
    left="$(awk -v t="$timeout_s" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", t - (b - a) }')"
    n="$(count_new "$3")"
    while [ "$n" -lt "$messages" ] && awk -v l="$left" 'BEGIN { exit !(l > 0) }'; do
        sleep 0.05
        n="$(count_new "$3")"
        left="$(awk -v t="$timeout_s" -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", t - (b - a) }')"
    done
    t2="$(now)"
    c1="$($4)"
    accept_s="$(elapsed "$t0" "$t1")"
    deliver_s="$(elapsed "$t0" "$t2")"
    [ "$rc" = 0 ] || accept_s="n/a"
    if [ "$n" -lt "$messages" ]; then
        echo "  WARNING: $1: only $n of $messages messages in the Maildir after ${timeout_s}s" >&2
        deliver_s="n/a"
    elif [ "$n" -gt "$messages" ]; then
        echo "  WARNING: $1: $n files in the Maildir for $messages messages" >&2
    fi
    cpu_s="$(awk -v t=$((c1 - c0)) -v hz="$clk_tck" 'BEGIN { printf "%.2f", t / hz }')"
    cpu_ms="$(awk -v s="$cpu_s" -v n="$n" 'BEGIN { if (n > 0) printf "%.3f", s * 1000 / n; else print "n/a" }')"
    results+=("$1 $(rate "$messages" "$accept_s") $(rate "$messages" "$deliver_s") $n $cpu_s $cpu_ms")
    printf '  %-9s smtp-source done after %s, %s of %s in the Maildir after %s, server CPU %ss\n' \
        "$1" "$(elapsed "$t0" "$t1")s" "$n" "$messages" "$(elapsed "$t0" "$t2")s" "$cpu_s"
}

na() { results+=("$1 n/a n/a n/a n/a n/a"); }

echo "smtp-source: $messages messages of $size bytes, $sessions sessions, timeout ${timeout_s}s per server"

# ------------------------------------------------------------------ officebox

if [ "$skip_officebox" = 1 ]; then
    echo "officebox: skipped (SKIP_OFFICEBOX=1)"
    na officebox
elif ! cargo build --release --locked -p officebox; then
    echo "officebox: build failed, marked n/a" >&2
    na officebox
else
    bin="$PWD/target/release/officebox"
    for p in $obx_smtp $obx_submission $obx_smtps $obx_pop3 $obx_pop3s; do
        port_free "$addr" "$p" || { echo "$addr:$p is in use (ss -ltn)" >&2; exit 1; }
    done
    mkdir -p "$work/obx/data"
    # The password is alice's demo hash from examples/demo.toml; nothing logs in here.
    cat >"$work/obx/officebox.toml" <<EOF
data_dir = "$work/obx/data"

[network]
hostname = "officebox"
domain = "$domain"
manage = false
listen = ["$addr"]

[dns]
enabled = false

[dhcp]
enabled = false

[mail]
smtp_port = $obx_smtp
submission_port = $obx_submission
smtps_port = $obx_smtps
pop3_port = $obx_pop3
pop3s_port = $obx_pop3s

[phone]
enabled = false

[web]
enabled = false

[ntp]
enabled = false

[[users]]
login = "bench"
password = "\$argon2id\$v=19\$m=19456,t=2,p=1\$XgLlIWdWSUYtz6222unzYg\$QtQCJ/eiW4Q5Mk4ZRA8plwlUwfIhHpQRK2EdaLXEcyM"
EOF
    echo "officebox: $addr:$obx_smtp"
    (cd "$work/obx" && exec "$bin" run --config officebox.toml) >"$work/obx/officebox.log" 2>&1 &
    obx_pid=$!
    pids+=("$obx_pid")
    if ! wait_listen "$obx_smtp" "$obx_pid" "$work/obx/officebox.log"; then
        echo "officebox: did not start or listen, marked n/a" >&2
        na officebox
    elif ! measure officebox "$obx_smtp" "$work/obx/data/mail/bench" obx_ticks; then
        na officebox
    fi
    kill "$obx_pid" 2>/dev/null || true
    wait "$obx_pid" 2>/dev/null || true
fi

# ------------------------------------------------------------------ postfix
if [ "${PEERS:-1}" = 1 ]; then

port_free "$addr" "$pf_port" || { echo "$addr:$pf_port is in use (ss -ltn)" >&2; exit 1; }
pf="$work/postfix"
nobody_uid="$(id -u nobody)" nobody_gid="$(id -g nobody)"
mkdir -p "$pf_etc" "$pf/queue" "$pf/data" "$pf/mail"
chown postfix "$pf/data"
chown "$nobody_uid:$nobody_gid" "$pf/mail"
echo "bench@$domain bench/" >"$pf_etc/vmailbox"
# Defaults everywhere except paths, addresses, name lookups and where mail goes:
# bench.test is a virtual mailbox domain delivered by virtual(8) to $pf/mail/bench/
# (a Maildir: the map's value ends in '/'), as nobody; nothing else is deliverable.
cat >"$pf_etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $pf/queue
data_directory = $pf/data
maillog_file = $pf/maillog
maillog_file_prefixes = $pf
shlib_directory = /usr/lib/postfix
inet_interfaces = $addr
inet_protocols = ipv4
myhostname = postfix.$domain
mydomain = $domain
myorigin = $domain
mydestination =
mynetworks = 127.0.0.0/8
relay_domains =
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
default_transport = error:bench: nothing leaves this instance
relay_transport = error:bench: nothing leaves this instance
local_transport = error:bench: no local delivery
alias_maps =
alias_database =
local_recipient_maps =
virtual_mailbox_domains = $domain
virtual_mailbox_base = $pf/mail
virtual_mailbox_maps = texthash:$pf_etc/vmailbox
virtual_uid_maps = static:$nobody_uid
virtual_gid_maps = static:$nobody_gid
default_process_limit = 100
notify_classes =
biff = no
smtputf8_enable = no
EOF
# Debian's master.cf without its smtp listener, its SMTP/LMTP clients, tlsmgr and the
# pipe(8) examples; chroot off (nothing is set up inside the queue directory).
cat >"$pf_etc/master.cf" <<EOF
$addr:$pf_port inet n - n - - smtpd
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n -  0 cleanup
qmgr       unix  n - n 300 1 qmgr
rewrite    unix  - - n -  - trivial-rewrite
bounce     unix  - - n -  0 bounce
defer      unix  - - n -  0 bounce
trace      unix  - - n -  0 bounce
verify     unix  - - n -  1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -  - proxymap
proxywrite unix  - - n -  1 proxymap
showq      unix  n - n -  - showq
error      unix  - - n -  - error
retry      unix  - - n -  - error
discard    unix  - - n -  - discard
local      unix  - n n -  - local
virtual    unix  - n n -  - virtual
anvil      unix  - - n -  1 anvil
scache     unix  - - n -  1 scache
postlog    unix-dgram n - n - 1 postlogd
EOF
# postfix(1) reports errors on stderr only with a terminal; otherwise see $pf/maillog.
if ! postfix -c "$pf_etc" check || ! postfix -c "$pf_etc" start; then
    echo "postfix: check or start failed; its log:" >&2
    cat "$pf/maillog" >&2 2>/dev/null || true
    exit 1
fi
pf_master="$(tr -d ' \n' <"$pf/queue/pid/master.pid")"
echo "postfix $(postconf -h -d mail_version): $addr:$pf_port (private instance, master pid $pf_master)"
wait_listen "$pf_port" "$pf_master" "$pf/maillog" || { echo "postfix failed" >&2; exit 1; }
measure postfix "$pf_port" "$pf/mail/bench" pf_ticks || na postfix
postfix -c "$pf_etc" stop >/dev/null 2>&1 || true
for _ in $(seq 100); do
    kill -0 "$pf_master" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$pf_master" 2>/dev/null || pf_master=""
grep -E ' (warning|error|fatal|panic): ' "$pf/maillog" | sed 's/^/  postfix log: /' | head -5 >&2 || true

fi # PEERS

# ------------------------------------------------------------------ report

echo
printf '%-10s %10s %10s %10s %8s %12s\n' server accepted/s delivered/s in-Maildir "CPU s" "CPU ms/msg"
for r in "${results[@]}"; do
    # shellcheck disable=SC2086
    printf '%-10s %10s %10s %10s %8s %12s\n' $r
done


echo
echo "officebox / postfix:"
printf '  delivered/s  %6s\n' "$(ratio "$(field officebox 3)" "$(field postfix 3)")"
printf '  accepted/s   %6s\n' "$(ratio "$(field officebox 2)" "$(field postfix 2)")"
printf '  CPU/message  %6s\n' "$(ratio "$(field officebox 6)" "$(field postfix 6)")"
v="$(awk -v a="$(field officebox 3)" -v b="$(field postfix 3)" \
    'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else print (a >= 2 * b) ? "PASS" : "FAIL" }')"
echo "bar: officebox delivered/s >= 2x postfix: $v"
