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
    rm -rf "$work"
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
