#!/bin/bash
# bench_binary.sh - `make bench` part 2c: POST /v2/models/{name}/infer with
# 64 examples per request, the JSON body vs Triton's binary tensor data
# (docs/API.md "Binary tensor data") carrying the same request (the same
# decoded values, tests/binary_v2.py write: what Triton's clients send,
# float32 values printed in full in the JSON form). Both against one ctrd
# under the same wrk load, interleaved (JSON, binary, JSON, binary, ...),
# median of BENCH_RUNS runs: examples/s, p50/p99, and the server's CPU time
# per example (utime + stime of ctrd from /proc over each run, divided by
# the examples it answered). Knobs as bench_http.sh: BENCH_DURATION (s, 10),
# BENCH_RUNS (3), BENCH_ROWS_PER_TABLE, BENCH_HIDDEN, CTRD_FLAGS; connections
# BENCH_CONNS64 (16).
set -euo pipefail
B=${B:-build}
DUR=${BENCH_DURATION:-10}
RUNS=${BENCH_RUNS:-3}
CONNS=${BENCH_CONNS64:-16}
ROWS_PER_TABLE=${BENCH_ROWS_PER_TABLE:-100000}
HIDDEN=${BENCH_HIDDEN:-256,128}
CORES=$(nproc)
WRK_THREADS=$(( CORES < 4 ? CORES : 4 ))
TCK=$(getconf CLK_TCK)

for bin in "$B/ctrd" "$B/ctrtool"; do
    [ -x "$bin" ] || { echo "bench_binary: $bin is not built (make)"; exit 1; }
done
command -v wrk >/dev/null 2>&1 || { echo "bench_binary: wrk is not installed (bench_http.sh installs it)"; exit 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}/bench-binary.XXXXXX")
CTRD_PID=""
cleanup() {
    [ -n "$CTRD_PID" ] && kill "$CTRD_PID" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT

MODEL="$B/bench/http-${ROWS_PER_TABLE}-h${HIDDEN//,/x}.ctrm"
mkdir -p "$B/bench"
if [ ! -f "$MODEL" ]; then
    echo "building $MODEL (ctrtool synth, hidden $HIDDEN)"
    "$B/ctrtool" synth --out "$MODEL" --rows-per-table "$ROWS_PER_TABLE" --seed 1 --name bench \
        --hidden "$HIDDEN" >/dev/null
fi
python3 tests/binary_v2.py write "$W" 64
HL=$(cat "$W/req.bin.hlen")

# wrk reads each body from its file (a binary body cannot be a Lua literal).
lua_for() {  # FILE [IHCL]
    printf 'local f = assert(io.open("%s", "rb"))\n' "$1"
    printf 'wrk.method = "POST"\nwrk.body = f:read("*a")\nf:close()\n'
    printf 'wrk.headers["Content-Type"] = "application/json"\n'
    [ -n "${2:-}" ] && printf 'wrk.headers["Inference-Header-Content-Length"] = "%s"\n' "$2"
    return 0
}
lua_for "$W/req.json" >"$W/json.lua"
lua_for "$W/req.bin" "$HL" >"$W/bin.lua"

# shellcheck disable=SC2086
"$B/ctrd" --model "$MODEL" --host 127.0.0.1 --port 0 --log-level info ${CTRD_FLAGS:-} 2>"$W/ctrd.log" &
CTRD_PID=$!
PORT=""
for i in $(seq 1 100); do
    PORT=$(grep -o '"msg":"listening".*"port":[0-9]*' "$W/ctrd.log" | grep -o '[0-9]*$' || true)
    [ -n "$PORT" ] && break
    sleep 0.1
done
"$B/ctrd" --log-level warn --check "http://127.0.0.1:$PORT/readyz" || { echo "ctrd did not start"; cat "$W/ctrd.log"; exit 1; }
URL="http://127.0.0.1:$PORT/v2/models/bench/infer"
for k in json bin; do
    h=(-H "X-Form: $k")
    [ $k = bin ] && h=(-H "Inference-Header-Content-Length: $HL")
    st=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' "${h[@]}" \
        --data-binary @"$W/req.$k" "$URL")
    [ "$st" = 200 ] || { echo "bench_binary: the $k request answers $st"; exit 1; }
done

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$CTRD_PID/stat"; }
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else printf "nan" }'
}
# run NAME -> appends "examples/s p50 p99 non2xx cpu_us_per_example" to $W/NAME.runs
run() {
    local name=$1 out="$W/$1.wrk" c0 c1
    c0=$(cpu_ticks)
    wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DUR}s" --latency -s "$W/$name.lua" "$URL" >"$out" 2>&1
    c1=$(cpu_ticks)
    local req rps p50 p99 bad
    req=$(awk '/requests in/ {print $1}' "$out")
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    bad=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
    awk -v r="${rps:-0}" -v n="${req:-0}" -v t=$((c1 - c0)) -v tck="$TCK" -v p50="$p50" -v p99="$p99" -v bad="${bad:-0}" \
        'BEGIN { printf "%.0f %s %s %s %.2f\n", r * 64, p50, p99, bad, (n > 0 ? t / tck * 1e6 / (n * 64) : 0) }' >>"$W/$name.runs"
}
median() { sort -n -k1,1 "$W/$1.runs" | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }'; }

echo "machine: $CORES cores, load $(cut -d' ' -f1-3 /proc/loadavg); wrk -t$WRK_THREADS -c$CONNS, ${DUR}s per run, median of $RUNS interleaved runs"
echo "request: 64 examples, JSON $(stat -c %s "$W/req.json") bytes, binary $(stat -c %s "$W/req.bin") bytes (JSON header $HL)"
wrk -t1 -c4 -d2s -s "$W/json.lua" "$URL" >/dev/null 2>&1
for r in $(seq 1 "$RUNS"); do
    run json
    run bin
done
read -r J_EPS J_P50 J_P99 J_BAD J_CPU <<<"$(median json)"
read -r B_EPS B_P50 B_P99 B_BAD B_CPU <<<"$(median bin)"
echo
printf '2c: /v2 infer, 64 examples per request, %d connections\n' "$CONNS"
printf '  %-28s %12s %9s %9s %8s %14s\n' "" "examples/s" "p50 ms" "p99 ms" "non-2xx" "CPU us/example"
printf '  %-28s %12.0f %9s %9s %8s %14s\n' "JSON body" "$J_EPS" "$J_P50" "$J_P99" "$J_BAD" "$J_CPU"
printf '  %-28s %12.0f %9s %9s %8s %14s\n' "binary tensor data" "$B_EPS" "$B_P50" "$B_P99" "$B_BAD" "$B_CPU"
awk -v a="$B_EPS" -v b="$J_EPS" -v c="$J_CPU" -v d="$B_CPU" \
    'BEGIN { printf "  binary / JSON: %.2fx examples/s, %.2fx server CPU per example\n", (b > 0 ? a / b : 0), (c > 0 ? d / c : 0) }'
echo "runs (examples/s p50 p99 non-2xx cpu_us/example):"
for n in json bin; do printf '  %-5s %s\n' "$n" "$(tr '\n' ';' <"$W/$n.runs")"; done
[ "$J_BAD" = 0 ] && [ "$B_BAD" = 0 ] || { echo "bench_binary: non-2xx answers"; exit 1; }
