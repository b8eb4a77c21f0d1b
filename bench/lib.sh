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
#   officebox_binary          sets obx_src: "" with SKIP_OFFICEBOX=1, $OFFICEBOX_BIN when
#                             set, else a fresh release build ("" if it fails)
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
    rm -rf "$work"
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
