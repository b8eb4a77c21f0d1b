# Helpers shared by the side-by-side benchmarks (sourced, not run).
#
#   bench_start TAG    a scratch directory in $work (/tmp/obx-bench-TAG-...), the array
#                      $pids of processes to stop, and traps that clean up on any exit:
#                      bench_extra_cleanup (if the script defines it) runs first, then
#                      every pid in $pids is stopped and waited for, then $work goes.
#   port_free ADDR PORT       nothing listens on ADDR:PORT (TCP or UDP) nor the wildcard
#   wait_listen PORT PID LOG  up to 10 s for PID (still alive) to listen on $addr:PORT
#   ticks PID...              CPU clock ticks (utime+stime+cutime+cstime) of the PIDs
#   ratio A B                 A / B to two places, or n/a
#   field SERVER COLUMN [ARRAY]  column COLUMN (1-based) of the row of $results (or of
#                             the named array) whose first word is SERVER, or n/a
#   phone_demo DIR OFFSET RTP_SPAN [PHONE_LINES]
#                             writes DIR/officebox.toml: examples/demo.toml with its data
#                             dir in DIR/data, every port moved up by OFFSET, RTP_SPAN
#                             RTP ports, PHONE_LINES added to [phone]; sets sip_port, domain
#   phone_demo_start DIR      runs $obx_src on DIR/officebox.toml until its phone server
#                             serves (sets obx_pid, added to $pids; its log DIR/officebox.log)
#   officebox_binary          sets obx_src: "" with SKIP_OFFICEBOX=1, $OFFICEBOX_BIN when
#                             set, else a fresh release build ("" if it fails)
#   now                       the time, in seconds since the epoch (nanoseconds)
#   pct TICKS T0 T1           TICKS of CPU time as a percentage of one core over T0..T1
#   machine_jiffies           "busy total" CPU time of the whole machine (all cores)
#   phone_stats               the totals of bench/rtp_phone.py (pid $phone_pid, writing
#                             $work/phone.stats, its log $work/phone.log) since the last
#                             call, one line of key=value; it starts new ones
#   kv KEY LINE               the value of KEY in such a line
#   sipp_outcome FILE         "successful failed": the calls of a sipp -trace_stat file
#   cpu_cap_start             with SERVER_CPU=P set, a cgroup that gives what runs in it
#                             P% of one core (cgroup v1 cpu controller or v2 cpu.max);
#                             removed on exit. Without SERVER_CPU: nothing.
#   "${cap_cmd[@]}" CMD ARGS...  runs CMD inside that cgroup (its children and threads
#                             too; a prefix that execs, so $! is still CMD's pid), or
#                             just CMD when there is no cap
#
# Why a cap: on this two-core machine the load generators (sipp, perfdhcp) top out near
# what the servers do, so an uncapped run measures the generator. With every server held
# to the same fraction of a core, the server is the bottleneck again and the ratio says
# which does more with the same CPU.

bench_start() {
    work="$(mktemp -d "/tmp/obx-bench-$1-XXXXXX")"
    pids=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    local p
    if declare -F bench_extra_cleanup >/dev/null; then
        bench_extra_cleanup
    fi
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    if [ -n "${cap_dir:-}" ]; then
        rmdir "$cap_dir" 2>/dev/null || true
    fi
    if [ "${KEEP_WORK:-0}" = 1 ]; then
        echo "kept the scratch directory (KEEP_WORK=1): $work" >&2
    else
        rm -rf "$work"
    fi
}

cap_dir=""
cap_cmd=()
cpu_cap_start() {
    local pct="${SERVER_CPU:-}"
    [ -n "$pct" ] || return 0
    case "$pct" in ''|*[!0-9]*) echo "SERVER_CPU: a whole percentage of one core, e.g. 25" >&2; exit 2 ;; esac
    local name
    name="obx-bench-$$"
    if [ -d /sys/fs/cgroup/cpu ] && [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
        cap_dir="/sys/fs/cgroup/cpu/$name"
        mkdir "$cap_dir"
        echo 100000 >"$cap_dir/cpu.cfs_period_us"
        echo $((pct * 1000)) >"$cap_dir/cpu.cfs_quota_us"
    elif grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
        cap_dir="/sys/fs/cgroup/$name"
        mkdir "$cap_dir"
        echo "$((pct * 1000)) 100000" >"$cap_dir/cpu.max"
    else
        echo "SERVER_CPU needs a cgroup cpu controller (v1 or v2); none is mounted" >&2
        exit 2
    fi
    # shellcheck disable=SC2016  # $1 and $@ belong to the inner shell
    cap_cmd=(sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$cap_dir")
    echo "servers capped at $pct% of one core (cgroup $cap_dir)"
}


port_free() {
    ! ss -Hlnut | awk -v a="$1" -v p="$2" '
        { n = split($5, f, ":"); port = f[n]; host = substr($5, 1, length($5) - length(port) - 1) }
        port == p && (host == a || host == "0.0.0.0" || host == "*" || host == "[::]") { found = 1 }
        END { exit !found }'
}

wait_listen() {
    local i
    for i in $(seq 100); do
        if ! kill -0 "$2" 2>/dev/null; then
            echo "server (pid $2) exited; its log:" >&2; cat "$3" >&2; return 1
        fi
        port_free "${addr:?}" "$1" || return 0
        sleep 0.1
    done
    echo "nothing listens on $addr:$1 after 10 s; server log:" >&2; tail -n 50 "$3" >&2
    return 1
}

# A PID that just exited counts 0 (its time moves into its parent's cutime/cstime).
ticks() {
    local p t=0 v
    for p in "$@"; do
        v="$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$p/stat" 2>/dev/null)" || v=0
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

field() {
    local r cols
    local -n rows="${3:-results}"
    for r in "${rows[@]}"; do
        read -r -a cols <<<"$r"
        if [ "${cols[0]}" = "$1" ]; then
            echo "${cols[$(($2 - 1))]}"
            return
        fi
    done
    echo n/a
}

officebox_binary() {
    obx_src=""
    if [ "${SKIP_OFFICEBOX:-0}" = 1 ]; then
        echo "officebox: skipped (SKIP_OFFICEBOX=1)"
    elif [ -n "${OFFICEBOX_BIN:-}" ]; then
        obx_src="$OFFICEBOX_BIN"
    elif cargo build --release --locked -p officebox; then
        obx_src="$PWD/target/release/officebox"
    else
        echo "officebox: build failed, marked n/a" >&2
    fi
}

# The config of an officebox that runs mail only, on $addr with the ports $obx_smtp,
# $obx_submission, $obx_smtps, $obx_pop3, $obx_pop3s and $obx_imap, $obx_imaps (13143 and
# 13993 when unset): `officebox_mail_config DATA_DIR
# DOMAIN` prints it without users (append [[users]] tables).
officebox_mail_config() {
    cat <<EOF2
data_dir = "$1"

[network]
hostname = "officebox"
domain = "$2"
manage = false
listen = ["${addr:?}"]

[dns]
enabled = false

[dhcp]
enabled = false

[mail]
smtp_port = ${obx_smtp:?}
submission_port = ${obx_submission:?}
smtps_port = ${obx_smtps:?}
pop3_port = ${obx_pop3:?}
pop3s_port = ${obx_pop3s:?}
imap_port = ${obx_imap:-13143}
imaps_port = ${obx_imaps:-13993}

[phone]
enabled = false

[web]
enabled = false

[ntp]
enabled = false

EOF2
}

# A private dovecot 2.3 instance serving POP3 (or with PROTOCOL imap, IMAP; clear text, as
# loopback allows) on $addr:PORT: `dovecot_pop3_start DIR PORT NAME [PROTOCOL]` with
# DIR/passwd already written
# (passwd-file lines, each password with its scheme: `u:{PLAIN}pw`, `u:{ARGON2ID}$argon2id$...`)
# and the mailboxes in DIR/mail/USER; its config, state, log (DIR/dovecot.log) and runtime
# files stay in DIR; it serves as nobody. Sets dc_conf and dc_master (the master's pid);
# `dovecot_pop3_stop` ends it (call it from bench_extra_cleanup too). Defaults except
# paths, the listener and clear-text logins; the pop3s (imaps) listener is off.
dc_conf="" dc_master=""
dovecot_pop3_start() {
    local dir="$1" port="$2" name="$3" proto="${4:-pop3}" uid gid
    uid="$(id -u nobody)" gid="$(id -g nobody)"
    mkdir -p "$dir/run" "$dir/state" "$dir/mail" "$dir/home"
    chown -R "$uid:$gid" "$dir/mail" "$dir/home"
    dc_conf="$dir/dovecot.conf"
    cat >"$dc_conf" <<EOF2
protocols = $proto
listen = ${addr:?}
base_dir = $dir/run
state_dir = $dir/state
instance_name = obx-bench-$name
log_path = $dir/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:$dir/mail/%u
passdb {
  driver = passwd-file
  args = $dir/passwd
}
userdb {
  driver = static
  args = uid=$uid gid=$gid home=$dir/home/%u
}
service $proto-login {
  inet_listener $proto {
    port = $port
  }
  inet_listener ${proto}s {
    port = 0
  }
}
EOF2
    if ! dovecot -c "$dc_conf"; then
        echo "dovecot: start failed; its log:" >&2
        cat "$dir/dovecot.log" >&2 2>/dev/null || true
        return 1
    fi
    for _ in $(seq 50); do
        [ -s "$dir/run/master.pid" ] && break
        sleep 0.1
    done
    dc_master="$(tr -d ' \n' <"$dir/run/master.pid")"
}

dovecot_pop3_stop() {
    [ -n "$dc_master" ] || return 0
    dovecot -c "$dc_conf" stop >/dev/null 2>&1 || true
    for _ in $(seq 100); do
        kill -0 "$dc_master" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$dc_master" 2>/dev/null || true
    dc_master=""
}

phone_demo() {
    local dir="$1" off="$2" span="$3" extra="${4:-}"
    mkdir -p "$dir/data"
    awk -v data="$dir/data" -v off="$off" -v span="$span" -v extra="$extra" '
        /^data_dir[ \t]*=/ { print "data_dir = \"" data "\""; next }
        match($0, /^[a-z0-9_]*port[ \t]*=[ \t]*[0-9]+/) {
            head = substr($0, 1, RLENGTH); rest = substr($0, RLENGTH + 1)
            n = head; sub(/.*=[ \t]*/, "", n); sub(/[0-9]+$/, "", head)
            print head (n + off) rest; next }
        match($0, /^rtp_ports[ \t]*=/) {
            print "rtp_ports = \"" (20000 + off) "-" (20000 + off + span - 1) "\""; next }
        { print }
        $0 == "[phone]" && extra != "" { print extra }
    ' examples/demo.toml >"$dir/officebox.toml"
    sip_port="$(awk '/^\[/ { s = $0 } s == "[phone]" && $1 == "sip_port" { print $3; exit }' "$dir/officebox.toml")"
    domain="$(awk '/^\[/ { s = $0 } s == "[network]" && $1 == "domain" { gsub(/"/, "", $3); print $3; exit }' "$dir/officebox.toml")"
}

phone_demo_start() {
    local dir="$1"
    (cd "$dir" && exec "$obx_src" run --config officebox.toml) >"$dir/officebox.log" 2>&1 &
    obx_pid=$!
    pids+=("$obx_pid")
    for _ in $(seq 100); do
        grep -q "phone: serving" "$dir/officebox.log" && return 0
        sleep 0.1
    done
    cat "$dir/officebox.log" >&2
    exit 1
}

now() { date +%s.%N; }

pct() {
    awk -v t="$1" -v a="$2" -v b="$3" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { if (b > a) printf "%.0f%%", t * 100 / hz / (b - a); else print "n/a" }'
}

machine_jiffies() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }

phone_stats() {
    local i
    rm -f "$work/phone.stats"
    kill -USR1 "$phone_pid" 2>/dev/null || return 1
    for i in $(seq 100); do
        if [ -s "$work/phone.stats" ]; then cat "$work/phone.stats"; return 0; fi
        sleep 0.1
    done
    echo "the RTP phone did not write its totals; its log:" >&2
    tail -n 20 "$work/phone.log" >&2
    return 1
}

kv() { tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2 }'; }

sipp_outcome() {
    awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
        { r = $c["SuccessfulCall(C)"] " " $c["FailedCall(C)"] } END { print r }' "$1"
}
