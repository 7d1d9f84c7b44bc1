#!/bin/bash
# bench_http.sh - `make bench` part 2: ctrd's HTTP path against references
# measured in the same run, on the same machine, with the same load tool.
#
#   2a  one example per request: ctrd scoring it vs nginx answering the same
#       POST with a fixed JSON body (the machine's HTTP ceiling); wrk, median
#       of BENCH_RUNS runs; target ctrd >= 0.7x nginx requests/s. Beside it,
#       in the same run, a second ctrd with --inline-max-examples 0 (every
#       request queued and batched, as before inline scoring): its
#       requests/s, and both servers' corrected p99 under ctrload's open
#       loop at half of the inline server's peak (target: inline no worse).
#   2b  64 examples per request: ctrd's examples/s vs `ctrtool score` on the
#       same rows on one core (parse + encode + forward, the offline path);
#       target >= 0.7x; the queued-only ctrd beside it (no worse).
#
# Latency p50/p99 are wrk's (closed loop: BENCH_CONNS connections each with
# one request in flight). wrk, nginx and ctrd share this machine's cores, as
# do the two servers' loads with wrk, so the ratio is the fair figure.
# Installs wrk and nginx (Debian packages) when missing, through sudo when
# not root. Knobs: BENCH_DURATION (s, 10), BENCH_CONNS (64), BENCH_RUNS (3),
# BENCH_ROWS_PER_TABLE (100000), BENCH_HIDDEN (256,128: the shape `ctrtool
# train` gives by default; the MLP is most of the per-example cost),
# BENCH_WARMUP (s of wrk load on each server before measuring: 2, 1 with
# BENCH_QUICK=1), CTRD_FLAGS (extra ctrd flags).
set -euo pipefail
B=${B:-build}
DUR=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNS:-64}
RUNS=${BENCH_RUNS:-3}
ROWS_PER_TABLE=${BENCH_ROWS_PER_TABLE:-100000}
HIDDEN=${BENCH_HIDDEN:-256,128}
if [ "${BENCH_QUICK:-0}" = 1 ]; then WARMUP=${BENCH_WARMUP:-1}; else WARMUP=${BENCH_WARMUP:-2}; fi
CORES=$(nproc)
WRK_THREADS=$(( CORES < 4 ? CORES : 4 ))

for bin in "$B/ctrd" "$B/ctrtool"; do
    [ -x "$bin" ] || { echo "bench_http: $bin is not built (make)"; exit 1; }
done

install_missing() {
    local missing=""
    command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx-light"
    [ -z "$missing" ] && return 0
    echo "bench_http: installing$missing (apt-get)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    # The package scripts may try to start a system nginx; we never use it.
    $sudo apt-get update -qq >/dev/null || true
    # shellcheck disable=SC2086
    $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 || true
    # A system nginx the package may have started (by its pid file).
    [ -f /run/nginx.pid ] && $sudo kill "$(cat /run/nginx.pid)" 2>/dev/null || true
}
install_missing
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if ! command -v wrk >/dev/null 2>&1 || [ ! -x "$NGINX" ]; then
    echo "bench_http: wrk and nginx are needed (apt-get install wrk nginx-light); part 2 skipped"
    exit 0
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/bench-http.XXXXXX")
NGINX_PID="" CTRD_PID="" CTRDQ_PID=""
cleanup() {
    [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null
    [ -n "$CTRD_PID" ] && kill "$CTRD_PID" 2>/dev/null
    [ -n "$CTRDQ_PID" ] && kill "$CTRDQ_PID" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT

# --- model and request bodies -------------------------------------------------
MODEL="$B/bench/http-${ROWS_PER_TABLE}-h${HIDDEN//,/x}.ctrm"
mkdir -p "$B/bench"
if [ ! -f "$MODEL" ]; then
    echo "building $MODEL (ctrtool synth: 13 dense, 26 x 16-dim tables of $ROWS_PER_TABLE rows, hidden $HIDDEN)"
    "$B/ctrtool" synth --out "$MODEL" --rows-per-table "$ROWS_PER_TABLE" --seed 1 --name bench \
        --hidden "$HIDDEN" >/dev/null
fi
"$B/ctrtool" gen-data --rows 64 --out "$W/rows.tsv" --seed 9 >/dev/null 2>&1
awk -F'\t' '{
    s = "{"; sep = ""
    for (i = 2; i <= 14; i++) if ($i != "") { s = s sep "\"I" (i - 1) "\":" $i; sep = "," }
    for (i = 15; i <= 40; i++) if ($i != "") { s = s sep "\"C" (i - 14) "\":\"" $i "\""; sep = "," }
    print s "}"
}' "$W/rows.tsv" >"$W/examples.jsonl"
printf '{"examples":[%s]}' "$(head -n 1 "$W/examples.jsonl")" >"$W/body1.json"
printf '{"examples":[%s]}' "$(paste -sd, "$W/examples.jsonl")" >"$W/body64.json"

lua_for() {  # BODYFILE -> a wrk script POSTing it
    local body
    body=$(sed 's/\\/\\\\/g; s/"/\\"/g' "$1")
    cat <<EOF
wrk.method = "POST"
wrk.body = "$body"
wrk.headers["Content-Type"] = "application/json"
EOF
}
lua_for "$W/body1.json" >"$W/post1.lua"
lua_for "$W/body64.json" >"$W/post64.lua"

# --- servers ------------------------------------------------------------------
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
        || echo $((20000 + RANDOM % 20000))
}

# start_ctrd LOG [flags...]: sets STARTED_PID and STARTED_PORT.
start_ctrd() {
    local log=$1 i port=""
    shift
    # shellcheck disable=SC2086
    "$B/ctrd" --model "$MODEL" --host 127.0.0.1 --port 0 --log-level info ${CTRD_FLAGS:-} "$@" 2>"$log" &
    STARTED_PID=$!
    for i in $(seq 1 100); do
        port=$(grep -o '"msg":"listening".*"port":[0-9]*' "$log" | grep -o '[0-9]*$' || true)
        [ -n "$port" ] && break
        sleep 0.1
    done
    "$B/ctrd" --log-level warn --check "http://127.0.0.1:$port/readyz" \
        || { echo "ctrd did not start"; cat "$log"; exit 1; }
    STARTED_PORT=$port
}

start_nginx() {
    NGINX_PORT=$(free_port)
    mkdir -p "$W/nginx"
    local reply
    reply=$(curl -s -H 'Content-Type: application/json' --data-binary @"$W/body1.json" \
        "http://127.0.0.1:$CTRD_PORT/v1/score")
    reply=${reply//\'/}
    cat >"$W/nginx/nginx.conf" <<EOF
worker_processes $CORES;
daemon off;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $W/nginx/body;
    proxy_temp_path $W/nginx/proxy;
    fastcgi_temp_path $W/nginx/fastcgi;
    uwsgi_temp_path $W/nginx/uwsgi;
    scgi_temp_path $W/nginx/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location = /v1/score {
            default_type application/json;
            return 200 '$reply';
        }
    }
}
EOF
    "$NGINX" -c "$W/nginx/nginx.conf" -p "$W/nginx" 2>"$W/nginx/start.log" &
    NGINX_PID=$!
    local i
    for i in $(seq 1 50); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d x "http://127.0.0.1:$NGINX_PORT/v1/score")" = 200 ] && return 0
        sleep 0.1
    done
    echo "nginx did not start:"; cat "$W/nginx/start.log" "$W/nginx/error.log" 2>/dev/null; exit 1
}

# --- measuring ------------------------------------------------------------------
to_ms() {  # wrk latency ("512.00us", "1.23ms", "2.01s") -> ms
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else printf "nan" }'
}

# run_wrk NAME URL SCRIPT CONNS -> appends "rps p50 p99 non2xx" to $W/NAME.runs
run_wrk() {
    local name=$1 url=$2 script=$3 conns=$4 out="$W/$1.wrk"
    wrk -t"$WRK_THREADS" -c"$conns" -d"${DUR}s" --latency -s "$script" "$url" >"$out" 2>&1
    local rps p50 p99 bad
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    bad=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
    echo "${rps:-0} $p50 $p99 ${bad:-0}" >>"$W/$name.runs"
}

# median over the runs by requests/s: prints "rps p50 p99 non2xx"
median() {
    sort -n -k1,1 "$W/$1.runs" | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }'
}

start_ctrd "$W/ctrd.log"
CTRD_PID=$STARTED_PID CTRD_PORT=$STARTED_PORT
start_ctrd "$W/ctrdq.log" --inline-max-examples 0
CTRDQ_PID=$STARTED_PID CTRDQ_PORT=$STARTED_PORT
start_nginx
echo "machine: $CORES cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')); wrk -t$WRK_THREADS, ${DUR}s per run, median of $RUNS"
echo "model: $MODEL ($(du -h "$MODEL" | cut -f1); 13 dense, 26 x 16-dim tables, hidden $HIDDEN), kernel: $(curl -s "http://127.0.0.1:$CTRD_PORT/v1/models" | grep -o '"kernel":{"name":"[a-z0-9]*"' | cut -d'"' -f6)"

# warm-up: page in the model, let both servers settle
wrk -t1 -c8 -d"${WARMUP}s" -s "$W/post1.lua" "http://127.0.0.1:$CTRD_PORT/v1/score" >/dev/null 2>&1
wrk -t1 -c8 -d"${WARMUP}s" -s "$W/post1.lua" "http://127.0.0.1:$CTRDQ_PORT/v1/score" >/dev/null 2>&1
wrk -t1 -c8 -d"${WARMUP}s" -s "$W/post1.lua" "http://127.0.0.1:$NGINX_PORT/v1/score" >/dev/null 2>&1

for r in $(seq 1 "$RUNS"); do
    run_wrk nginx1 "http://127.0.0.1:$NGINX_PORT/v1/score" "$W/post1.lua" "$CONNS"
    run_wrk ctrd1 "http://127.0.0.1:$CTRD_PORT/v1/score" "$W/post1.lua" "$CONNS"
    run_wrk ctrdq1 "http://127.0.0.1:$CTRDQ_PORT/v1/score" "$W/post1.lua" "$CONNS"
done
read -r N_RPS N_P50 N_P99 N_BAD <<<"$(median nginx1)"
read -r C_RPS C_P50 C_P99 C_BAD <<<"$(median ctrd1)"
read -r Q_RPS Q_P50 Q_P99 Q_BAD <<<"$(median ctrdq1)"

# p99 at half of the inline server's peak, open loop (ctrload: latency
# counted from when each request was due), both servers, median of runs.
HALF=$(awk -v r="$C_RPS" 'BEGIN { printf "%d", r / 2 }')
half_p99() {  # PORT -> corrected p99 ms
    local json
    json=$("$B/ctrload" --url "http://127.0.0.1:$1" --rate "$HALF" --duration "${DUR}s" --warmup 1s \
        --connections "$CONNS" --json - --quiet 2>/dev/null || true)
    printf '%s' "$json" | tr -d '\n' | grep -o '"corrected":{[^}]*}' | grep -o '"p99":[0-9.]*' | cut -d: -f2
}
: >"$W/half_inline.runs"; : >"$W/half_queued.runs"
if [ -x "$B/ctrload" ]; then
    for r in $(seq 1 "$RUNS"); do
        half_p99 "$CTRD_PORT" >>"$W/half_inline.runs"
        half_p99 "$CTRDQ_PORT" >>"$W/half_queued.runs"
    done
fi
med1() { sort -n "$1" | awk '{ l[NR] = $0 } END { print (NR ? l[int((NR + 1) / 2)] : "nan") }'; }
H_P99=$(med1 "$W/half_inline.runs")
HQ_P99=$(med1 "$W/half_queued.runs")

CONNS64=$(( CONNS / 4 > 4 ? CONNS / 4 : 4 ))
for r in $(seq 1 "$RUNS"); do
    run_wrk ctrd64 "http://127.0.0.1:$CTRD_PORT/v1/score" "$W/post64.lua" "$CONNS64"
    run_wrk ctrdq64 "http://127.0.0.1:$CTRDQ_PORT/v1/score" "$W/post64.lua" "$CONNS64"
done
read -r C64_RPS C64_P50 C64_P99 C64_BAD <<<"$(median ctrd64)"
read -r Q64_RPS Q64_P50 Q64_P99 Q64_BAD <<<"$(median ctrdq64)"

# Offline: the same 64 rows, repeated, through ctrtool score on one core.
REPS=$(( 4000 ))
awk -v n=$REPS '{ l[NR] = $0 } END { for (i = 0; i < n; i++) for (j = 1; j <= NR; j++) print l[j] }' \
    "$W/rows.tsv" >"$W/rows_rep.tsv"
NROWS=$(( 64 * REPS ))
PIN=""
command -v taskset >/dev/null 2>&1 && PIN="taskset -c 0"
: >"$W/offline.runs"
for r in $(seq 1 "$RUNS"); do
    t0=$(date +%s%N)
    $PIN "$B/ctrtool" score --model "$MODEL" --data "$W/rows_rep.tsv" --out /dev/null >/dev/null 2>&1
    t1=$(date +%s%N)
    awk -v n=$NROWS -v ns=$((t1 - t0)) 'BEGIN { printf "%.0f\n", n / (ns / 1e9) }' >>"$W/offline.runs"
done
OFF_EPS=$(sort -n "$W/offline.runs" | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }')

C64_EPS=$(awk -v r="$C64_RPS" 'BEGIN { printf "%.0f", r * 64 }')
Q64_EPS=$(awk -v r="$Q64_RPS" 'BEGIN { printf "%.0f", r * 64 }')
RQ1=$(awk -v a="$Q_RPS" -v b="$N_RPS" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
R1=$(awk -v a="$C_RPS" -v b="$N_RPS" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
R64=$(awk -v a="$C64_EPS" -v b="$OFF_EPS" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r >= t ? "meets" : "BELOW") " target >= " t "x" }'; }

echo
printf '2a: one example per request, %d connections\n' "$CONNS"
printf '  %-34s %12s %9s %9s %8s\n' "" "requests/s" "p50 ms" "p99 ms" "non-2xx"
printf '  %-34s %12.0f %9s %9s %8s\n' "nginx, fixed JSON body (ceiling)" "$N_RPS" "$N_P50" "$N_P99" "$N_BAD"
printf '  %-34s %12.0f %9s %9s %8s\n' "ctrd /v1/score" "$C_RPS" "$C_P50" "$C_P99" "$C_BAD"
printf '  %-34s %12.0f %9s %9s %8s\n' "ctrd, --inline-max-examples 0" "$Q_RPS" "$Q_P50" "$Q_P99" "$Q_BAD"
printf '  ratio ctrd / nginx: %s  (%s); queued only: %s\n' "$R1" "$(verdict "$R1" 0.7)" "$RQ1"
printf '  p99 at half of peak (%s req/s, open loop, corrected): inline %s ms, queued only %s ms (%s)\n' \
    "$HALF" "$H_P99" "$HQ_P99" \
    "$(awk -v a="$H_P99" -v b="$HQ_P99" 'BEGIN { print (a + 0 <= b * 1.1 ? "no worse" : "WORSE") }')"
echo
printf '2b: 64 examples per request, %d connections\n' "$CONNS64"
printf '  %-34s %12s %9s %9s %8s\n' "" "examples/s" "p50 ms" "p99 ms" "non-2xx"
printf '  %-34s %12.0f %9s %9s %8s\n' "ctrd /v1/score ($C64_RPS req/s)" "$C64_EPS" "$C64_P50" "$C64_P99" "$C64_BAD"
printf '  %-34s %12.0f %9s %9s %8s\n' "ctrd, --inline-max-examples 0" "$Q64_EPS" "$Q64_P50" "$Q64_P99" "$Q64_BAD"
printf '  %-34s %12.0f\n' "ctrtool score, same rows, 1 core" "$OFF_EPS"
printf '  ratio ctrd / offline: %s  (%s)\n' "$R64" "$(verdict "$R64" 0.7)"
echo
echo "runs (requests/s p50 p99 non-2xx):"
for n in nginx1 ctrd1 ctrdq1 ctrd64 ctrdq64; do
    printf '  %-7s %s\n' "$n" "$(tr '\n' ';' <"$W/$n.runs")"
done
printf '  %-7s %s\n' "offline" "$(tr '\n' ';' <"$W/offline.runs") examples/s"
printf '  %-7s %s\n' "half-p99" "inline $(tr '\n' ';' <"$W/half_inline.runs") queued $(tr '\n' ';' <"$W/half_queued.runs") ms"
