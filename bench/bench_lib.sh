# bench_lib.sh - helpers shared by bench_compare.sh and bench_scale.sh
# (sourced, not run). Servers listen on 127.0.0.1 only and are stopped by
# the pid these functions record; every load run is bounded by ctrload's
# warmup + duration + timeout.

PY=${PY:-/usr/bin/python3}
[ -x "$PY" ] || PY=python3

# apt_install PKG...: install Debian packages that are missing (sudo when
# not root). Returns non-zero when something could not be installed.
apt_install() {
    local missing=() p sudo=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 && return 0
    $sudo apt-get update -qq >/dev/null 2>&1 || true
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1
}

# jget FILE EXPR: a field of a JSON file, EXPR in Python syntax on `j`
# (e.g. 'j["latency_ms"]["corrected"]["p99"]'); prints "nan" when absent.
jget() {
    "$PY" - "$1" "$2" <<'EOF'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
    v = eval(sys.argv[2])
    print("nan" if v is None else v)
except Exception:
    print("nan")
EOF
}

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

now_ns() { date +%s%N; }

# wait_ready URL PID SECONDS: poll URL until 200; 1 if PID died or time ran out.
wait_ready() {
    local url=$1 pid=$2 secs=$3 end
    end=$(( $(date +%s) + secs ))
    while [ "$(date +%s)" -le "$end" ]; do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url")" = 200 ] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.02
    done
    return 1
}

# start_ctrd LOG MODEL [FLAGS...]: sets CTRD_PID, CTRD_PORT, CTRD_URL,
# CTRD_PREFIX (words, e.g. "taskset -c 0") runs ctrd under a wrapper;
# CTRD_READY_S (process start to /readyz answering 200). ctrd checks every
# tensor's SHA-256 before it listens, so a big model takes a while:
# CTRD_START_TIMEOUT seconds (120).
start_ctrd() {
    local log=$1 model=$2; shift 2
    local t0 end
    CTRD_PORT=""
    : >"$log"
    end=$(( $(date +%s) + ${CTRD_START_TIMEOUT:-120} ))
    t0=$(now_ns)
    # shellcheck disable=SC2086 # CTRD_PREFIX is words on purpose
    ${CTRD_PREFIX:-} "$B/ctrd" --model "$model" --host 127.0.0.1 --port 0 "$@" 2>"$log" &
    CTRD_PID=$!
    while [ "$(date +%s)" -le "$end" ]; do
        CTRD_PORT=$(grep -o '"msg":"listening".*"port":[0-9]*' "$log" 2>/dev/null | grep -o '[0-9]*$' | head -n 1 || true)
        [ -n "$CTRD_PORT" ] && break
        kill -0 "$CTRD_PID" 2>/dev/null || break
        sleep 0.01
    done
    if [ -z "$CTRD_PORT" ]; then
        echo "ctrd did not start (ctrd --model $model $*):"; tail -n 5 "$log"
        stop_pid "$CTRD_PID"; CTRD_PID=""; return 1
    fi
    CTRD_URL="http://127.0.0.1:$CTRD_PORT"
    wait_ready "$CTRD_URL/readyz" "$CTRD_PID" 60 || { echo "ctrd not ready"; tail -n 5 "$log"; return 1; }
    CTRD_READY_S=$(awk -v a="$t0" -v b="$(now_ns)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
}

# mem_kb PID FIELD: a field of /proc/PID/status in kB (VmRSS, RssAnon, RssFile, VmHWM).
mem_kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# stop_pid PID: SIGTERM, wait up to 30 s, then SIGKILL.
stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# rss_kb PID: VmRSS of PID plus its direct children (uvicorn workers), in kB.
rss_kb() {
    local total=0 p v
    for p in "$1" $(cat "/proc/$1/task/"*/children 2>/dev/null); do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        total=$(( total + ${v:-0} ))
    done
    echo "$total"
}

# load_run OUT.json URL ARGS...: one ctrload run, prints
# "ok_rps examples_per_s p50 p99 p999 errors_pct clean lag_p99" (corrected
# latency for open loop; closed loop reports latency from the send).
# LOAD_PREFIX (words, e.g. "taskset -c 1") runs ctrload under a wrapper.
load_run() {
    local json=$1 url=$2; shift 2
    # shellcheck disable=SC2086
    ${LOAD_PREFIX:-} "$B/ctrload" --url "$url" --no-progress --quiet --json "$json" "$@" >/dev/null 2>&1 || true
    "$PY" - "$json" <<'EOF'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
    lat = j["latency_ms"]["corrected"] if j.get("mode") == "open" else j["latency_ms"]["uncorrected"]
    req = j["requests"]
    bad = req["scheduled" if j.get("mode") == "open" else "sent"] - req["ok"]
    base = max(req["scheduled"] if j.get("mode") == "open" else req["sent"], 1)
    print("%.1f %.1f %.3f %.3f %.3f %.3f %d %.3f" % (
        j["throughput"]["ok_rps"], j["throughput"]["examples_per_s"], lat["p50"], lat["p99"],
        lat["p99_9"], 100.0 * max(bad, 0) / base, 1 if j["verdict"]["clean"] else 0,
        j["client"]["send_lag_ms"]["p99"]))
except Exception as e:
    print("0 0 nan nan nan 100 0 nan")
EOF
}

# median_col FILE COL: median (lower middle) of a whitespace column.
median_col() {
    awk -v c="$2" '{ print $c }' "$1" | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "nan" }'
}

load_avg() { cut -d' ' -f1-3 /proc/loadavg; }

# jnum X: X as a JSON number, or null when it is not one (nan, empty).
jnum() {
    case $1 in
        ''|nan|-nan|inf|-inf|null) echo null ;;
        *) echo "$1" ;;
    esac
}
