#!/bin/bash
# bench_audit.sh - make bench part 3: what the audit log costs.
#
# The same closed-loop HTTP load (wrk, or ctrload, or a curl loop when
# neither is there) against ctrd with the audit log off (--no-audit), in
# durability write (the default) and fsync, rounds interleaved so a busy
# machine hurts every mode alike; medians of ROUNDS rounds. Prints
# requests/s, the ratio to "off" (target for write: >= 0.90), ctrd's CPU
# time per request (user + sys from /proc: steadier than throughput on a
# shared machine), audit bytes per example logged, and the mean write
# (+ sync) latency and records per write from ctrd's own /metrics.
#
#   AUDIT_BENCH_SECONDS (5)  AUDIT_BENCH_CONNECTIONS (64, as bench_http.sh)
#   AUDIT_BENCH_EXAMPLES (1 example per request)  AUDIT_BENCH_ROUNDS (3)
#   AUDIT_BENCH_DIR (a directory on the disk to measure; default $B/bench)
#   AUDIT_BENCH_MODES ("off write fsync"; also async, write-pwrite, fsync-pwrite)
#   AUDIT_BENCH_WARMUP (1: seconds of load on each fresh server before the
#   measured run; 0 with BENCH_QUICK=1)
set -euo pipefail
B=${B:-build}
DUR=${AUDIT_BENCH_SECONDS:-5}
CONN=${AUDIT_BENCH_CONNECTIONS:-64}
EX=${AUDIT_BENCH_EXAMPLES:-1}
ROUNDS=${AUDIT_BENCH_ROUNDS:-3}
BASE=${AUDIT_BENCH_DIR:-$B/bench}
# Modes: off, async, write, fsync, and write-pwrite / fsync-pwrite (the
# io_uring fallback forced with CTRD_AUDIT_NO_URING=1).
MODES=${AUDIT_BENCH_MODES:-off write fsync}
if [ "${BENCH_QUICK:-0}" = 1 ]; then WARMUP=${AUDIT_BENCH_WARMUP:-0}; else WARMUP=${AUDIT_BENCH_WARMUP:-1}; fi

[ -x "$B/ctrd" ] && [ -x "$B/ctrtool" ] || { echo "bench_audit: build $B/ctrd and $B/ctrtool first"; exit 1; }
mkdir -p "$BASE"
WORK=$(mktemp -d "$BASE/audit-bench.XXXXXX")
SRV_PID=""
cleanup() {
    [ -n "$SRV_PID" ] && kill -KILL "$SRV_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

"$B/ctrtool" synth --out "$WORK/m.ctrm" --rows-per-table 20000 --seed 5 --name audit-bench \
    --hidden 128,64 >/dev/null

# A Criteo-shaped body: 13 dense (some missing), 26 categorical 8-hex-digit
# values (some missing), EX examples.
awk -v ex="$EX" 'BEGIN {
    srand(7);
    printf "{\"examples\":[";
    for (e = 0; e < ex; e++) {
        printf "%s{", (e ? "," : "");
        for (i = 1; i <= 13; i++) printf "%s\"I%d\":%s", (i > 1 ? "," : ""), i, (rand() < 0.2 ? "null" : int(rand() * 500));
        for (j = 1; j <= 26; j++) printf ",\"C%d\":%s", j, (rand() < 0.1) ? "null" : sprintf("\"%08x\"", int(rand() * 4294967295));
        printf "}";
    }
    printf "]}";
}' >"$WORK/body.json"
cat >"$WORK/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$WORK/body.json", "rb")
wrk.body = f:read("*a")
f:close()
EOF

start() {  # MODE
    local mode=$1 args=() nouring=0
    case $mode in
        off) args=(--no-audit) ;;
        *-pwrite) args=(--audit-dir "$WORK/log-$mode" --audit-durability "${mode%-pwrite}"); nouring=1 ;;
        *) args=(--audit-dir "$WORK/log-$mode" --audit-durability "$mode") ;;
    esac
    : >"$WORK/ctrd.log"
    CTRD_AUDIT_NO_URING=$nouring "$B/ctrd" --model "$WORK/m.ctrm" --host 127.0.0.1 --port 0 "${args[@]}" \
        2>"$WORK/ctrd.log" &
    SRV_PID=$!
    PORT=""
    for _ in $(seq 1 100); do
        PORT=$(grep -o '"msg":"listening".*"port":[0-9]*' "$WORK/ctrd.log" 2>/dev/null | grep -o '[0-9]*$' | head -n 1 || true)
        [ -n "$PORT" ] && break
        sleep 0.1
    done
    [ -n "$PORT" ] || { echo "bench_audit: ctrd did not start:"; cat "$WORK/ctrd.log"; exit 1; }
    URL="http://127.0.0.1:$PORT"
    for _ in $(seq 1 100); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL/readyz")" = 200 ] && return 0
        sleep 0.1
    done
    echo "bench_audit: ctrd not ready"; exit 1
}

stop() {
    kill -TERM "$SRV_PID" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
    SRV_PID=""
}

TOOL=curl
if command -v wrk >/dev/null 2>&1; then
    TOOL=wrk
elif [ -x "$B/ctrload" ]; then
    TOOL=ctrload
fi

# Requests/s of one run; non-2xx answers go to $WORK/errors.
load() {  # SECONDS
    local secs=$1
    case $TOOL in
        wrk)
            wrk -t2 -c"$CONN" -d"${secs}s" --latency -s "$WORK/post.lua" "$URL/v1/score" >"$WORK/wrk.out" 2>&1 || true
            grep -o 'Non-2xx or 3xx responses: [0-9]*' "$WORK/wrk.out" | grep -o '[0-9]*$' >"$WORK/errors" || echo 0 >"$WORK/errors"
            for q in 50 99; do
                awk -v q="$q%" '$1 == q { v = $2; m = 1;
                    if (v ~ /us$/) m = 0.001; else if (v ~ /ms$/) m = 1; else if (v ~ /s$/) m = 1000;
                    sub(/[a-z]+$/, "", v); printf "%.3f\n", v * m }' "$WORK/wrk.out" >"$WORK/p$q"
            done
            awk '/^Requests\/sec:/ {print $2}' "$WORK/wrk.out"
            ;;
        ctrload)
            : >"$WORK/p50"; : >"$WORK/p99"
            "$B/ctrload" --url "$URL" --concurrency "$CONN" --duration "${secs}s" --warmup 0s \
                --examples-per-request "$EX" --synthetic --json "$WORK/load.json" >"$WORK/load.out" 2>&1 || true
            echo 0 >"$WORK/errors"
            grep -o '"throughput[a-z_]*":[0-9.]*' "$WORK/load.json" | head -n 1 | cut -d: -f2
            ;;
        curl)
            : >"$WORK/p50"; : >"$WORK/p99"
            local n=0 t0 t1 end=$((SECONDS + secs))
            t0=$(date +%s%N)
            while [ $SECONDS -lt $end ] && [ $n -lt 100000 ]; do
                curl -s -o /dev/null --max-time 5 -H 'Content-Type: application/json' \
                    --data-binary "@$WORK/body.json" "$URL/v1/score"
                n=$((n + 1))
            done
            t1=$(date +%s%N)
            echo 0 >"$WORK/errors"
            awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / ((b - a) / 1e9) }'
            ;;
    esac
}

cpu_ticks() {  # utime + stime of ctrd, in clock ticks
    awk '{ print $14 + $15 }' "/proc/$SRV_PID/stat"
}

metric() {  # NAME
    curl -s --max-time 5 "$URL/metrics" | awk -v n="$1" '$1 == n {print $2}'
}

lat() {  # MODE -> "p50/p99" medians, or "-"
    [ -s "$WORK/p50-$1" ] || { echo "-"; return; }
    echo "$(median <"$WORK/p50-$1")/$(median <"$WORK/p99-$1")"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "audit log cost: $TOOL, $CONN connections, $EX example(s)/request, ${DUR}s per run after ${WARMUP}s warm-up, $ROUNDS rounds,"
echo "  log on $(df -h --output=source,fstype "$BASE" | tail -n 1 | tr -s ' '), $(nproc) cores shared by client and server"
for r in $(seq 1 "$ROUNDS"); do
    for mode in $MODES; do
        start "$mode"
        [ "$WARMUP" -gt 0 ] && load "$WARMUP" >/dev/null   # warm-up
        c0=$(cpu_ticks)
        rps=$(load "$DUR")
        c1=$(cpu_ticks)
        errs=$(cat "$WORK/errors")
        echo "$rps" >>"$WORK/rps-$mode"
        cpu=$(awk -v a="$c0" -v b="$c1" -v t="$(getconf CLK_TCK)" -v r="$rps" -v d="$DUR" \
              'BEGIN { if (r > 0) printf "%.1f", (b - a) / t / (r * d) * 1e6 }')
        echo "$cpu" >>"$WORK/cpu-$mode"
        cat "$WORK/p50" >>"$WORK/p50-$mode"
        cat "$WORK/p99" >>"$WORK/p99-$mode"
        if [ "$mode" != off ]; then
            b=$(metric ctrd_audit_bytes_total); e=$(metric ctrd_audit_examples_total)
            ws=$(metric ctrd_audit_write_duration_seconds_sum); wc=$(metric ctrd_audit_write_duration_seconds_count)
            rec=$(metric ctrd_audit_records_total)
            awk -v b="$b" -v e="$e" 'BEGIN { if (e > 0) printf "%.1f\n", b / e }' >>"$WORK/bpe-$mode"
            awk -v s="$ws" -v c="$wc" 'BEGIN { if (c > 0) printf "%.1f\n", s / c * 1e6 }' >>"$WORK/lat-$mode"
            awk -v r="$rec" -v c="$wc" 'BEGIN { if (c > 0) printf "%.1f\n", r / c }' >>"$WORK/rpw-$mode"
        fi
        stop
        if [ "$mode" != off ]; then
            out=$("$B/ctrtool" audit verify --model "$WORK/m.ctrm" "$WORK/log-$mode" 2>&1 | grep '^verified=' || true)
            echo "$out" >>"$WORK/verify-$mode"
            rm -rf "$WORK/log-$mode"
        fi
        printf '  round %d %-12s %10s req/s  %6s us CPU/req  non-2xx %s%s\n' "$r" "$mode" "$rps" "$cpu" "$errs" \
            "$([ "$mode" != off ] && echo "  replay: $out")"
    done
done

echo
printf '%-13s %12s %8s %12s %16s %14s %18s %14s\n' mode "req/s (med)" "vs off" "CPU us/req" "p50/p99 ms" "bytes/example" "write+sync mean" "records/write"
off=$(median <"$WORK/rps-off")
for mode in $MODES; do
    m=$(median <"$WORK/rps-$mode")
    ratio=$(awk -v a="$m" -v b="$off" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
    if [ "$mode" = off ]; then
        printf '%-13s %12.0f %8s %12s %16s %14s %18s %14s\n' "$mode" "$m" "1.000" "$(median <"$WORK/cpu-$mode")" "$(lat "$mode")" "-" "-" "-"
    else
        printf '%-13s %12.0f %8s %12s %16s %14s %15s us %14s\n' "$mode" "$m" "$ratio" "$(median <"$WORK/cpu-$mode")" "$(lat "$mode")" "$(median <"$WORK/bpe-$mode")" \
            "$(median <"$WORK/lat-$mode")" "$(median <"$WORK/rpw-$mode")"
    fi
done
[ -f "$WORK/rps-write" ] || exit 0
w=$(median <"$WORK/rps-write")
awk -v a="$w" -v b="$off" 'BEGIN { r = a / b; printf "write vs off: %.3f (target >= 0.90): %s\n", r, (r >= 0.9 ? "met" : "NOT met") }'
