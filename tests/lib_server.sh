# lib_server.sh - helpers shared by the end-to-end server tests
# (tests/test_server_*.sh); source it, do not run it.
#
# Every server is the real $B/ctrd on 127.0.0.1 with --port 0: it binds a
# free port itself and logs it, so there is no race between picking a port
# and binding it. Servers are stopped by pid; every wait is bounded.
#
# $CTRD, $CTRTOOL and $CTRLOAD (default $B/ctrd, $B/ctrtool, $B/ctrload)
# must all be built, and curl installed: `make test` runs after `make all`
# and `make deps`, so a missing one is a broken build and the test fails
# (exit 1) naming it; it is never skipped.
#
#   srv_start NAME [ctrd flags...]   start, wait for /readyz; sets SRV_PID,
#                                    SRV_PORT, SRV_URL, SRV_LOG
#   srv_stop [SIGNAL] [TIMEOUT_S]    signal (TERM), wait, set SRV_RC
#   make_model OUT SEED [NAME]       a small random model (ctrtool synth)
#   req METHOD PATH [BODY] [curl args...]
#                                    sets ST (status) and BODY_OUT (body);
#                                    a body is sent as application/json
#                                    unless the args set a Content-Type
#   score_body I                     a deterministic one-example /v1/score body
#   expect_status WANT WHAT          check ST, count a failure otherwise
#   expect_code CODE WHAT            check the error code in BODY_OUT
#   metric NAME / wait_metric NAME VALUE [S]
#                                    read / poll a value from /metrics
#   finish                           exit 0/1 by the failure count

set -u
trap '' PIPE      # a write to a socket the server closed fails, not kills
B=${B:-build}
CTRD=${CTRD:-$B/ctrd}
CTRTOOL=${CTRTOOL:-$B/ctrtool}
CTRLOAD=${CTRLOAD:-$B/ctrload}
FAILS=0
CHECKS=0
SRV_PID=""
SRV_PORT=""
SRV_URL=""
SRV_LOG=""
SRV_RC=""

for bin in "$CTRD" "$CTRTOOL" "$CTRLOAD"; do
    if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then
        echo "FAIL: $bin is not built (\`make all\` builds it)"
        exit 1
    fi
done
if ! command -v curl >/dev/null 2>&1; then
    echo "FAIL: curl is not installed (\`make deps\` installs it)"
    exit 1
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/ctrd-e2e.XXXXXX")
_srv_all_pids=""

_cleanup() {
    for p in $_srv_all_pids; do
        kill -KILL "$p" 2>/dev/null
    done
    rm -rf "$T"
}
trap _cleanup EXIT

log() { printf '%s\n' "$*"; }

fail() {
    FAILS=$((FAILS + 1))
    printf 'FAIL: %s\n' "$*"
}

ok() {
    CHECKS=$((CHECKS + 1))
    printf 'ok: %s\n' "$*"
}

check() {  # check COND_STATUS WHAT  (COND_STATUS from `[ ... ]`)
    if [ "$1" -eq 0 ]; then ok "$2"; else fail "$2"; fi
}

finish() {
    echo "$CHECKS checks passed, $FAILS failed"
    [ "$FAILS" -eq 0 ] && exit 0
    exit 1
}

make_model() {  # OUT SEED [NAME]
    "$CTRTOOL" synth --out "$1" --rows-per-table 200 --seed "$2" --name "${3:-e2e}" \
        --hidden 32,16 >/dev/null || { echo "ctrtool synth failed"; exit 1; }
}

srv_start() {  # NAME [flags...]
    local name=$1
    shift
    SRV_LOG="$T/$name.log"
    : >"$SRV_LOG"
    "$CTRD" --host 127.0.0.1 --port 0 "$@" 2>"$SRV_LOG" &
    SRV_PID=$!
    _srv_all_pids="$_srv_all_pids $SRV_PID"
    SRV_PORT=""
    local i
    for i in $(seq 1 100); do   # <= 10 s
        SRV_PORT=$(grep -o '"msg":"listening".*"port":[0-9]*' "$SRV_LOG" 2>/dev/null | grep -o '[0-9]*$' | head -n 1)
        [ -n "$SRV_PORT" ] && break
        if ! kill -0 "$SRV_PID" 2>/dev/null; then
            echo "ctrd exited during start-up:"; cat "$SRV_LOG"; return 1
        fi
        sleep 0.1
    done
    if [ -z "$SRV_PORT" ]; then
        echo "ctrd did not log its port in 10 s:"; cat "$SRV_LOG"; return 1
    fi
    local scheme=http
    case " $* " in *" --tls-cert "*) scheme=https ;; esac
    SRV_URL="$scheme://127.0.0.1:$SRV_PORT"
    for i in $(seq 1 100); do
        if [ "$(curl -s -k -o /dev/null -w '%{http_code}' --max-time 2 "$SRV_URL/readyz")" = 200 ]; then
            return 0
        fi
        sleep 0.1
    done
    echo "ctrd not ready in 10 s:"; cat "$SRV_LOG"; return 1
}

srv_stop() {  # [SIGNAL] [TIMEOUT_S]; sets SRV_RC (124 if it did not exit)
    local sig=${1:-TERM} timeout=${2:-30} i
    [ -z "$SRV_PID" ] && return 0
    kill -"$sig" "$SRV_PID" 2>/dev/null
    for i in $(seq 1 $((timeout * 10))); do
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SRV_PID" 2>/dev/null; then
        kill -KILL "$SRV_PID" 2>/dev/null
        wait "$SRV_PID" 2>/dev/null
        SRV_RC=124
    else
        wait "$SRV_PID" 2>/dev/null
        SRV_RC=$?
    fi
    SRV_PID=""
}

req() {  # METHOD PATH [BODY] [extra curl args...]
    local method=$1 path=$2 body=${3-}
    shift 2
    [ $# -gt 0 ] && shift
    local out="$T/body.$$"
    local ct="Content-Type: application/json"
    case "$*" in *Content-Type:*) ct="X-No-Default-Type: 1" ;; esac
    if [ -n "$body" ]; then
        ST=$(curl -s -k -o "$out" -w '%{http_code}' --max-time 10 -X "$method" \
            -H "$ct" --data-binary "$body" "$@" "$SRV_URL$path")
    else
        ST=$(curl -s -k -o "$out" -w '%{http_code}' --max-time 10 -X "$method" "$@" "$SRV_URL$path")
    fi
    BODY_OUT=$(cat "$out" 2>/dev/null)
    rm -f "$out"
}

expect_status() {  # WANT WHAT
    if [ "$ST" = "$1" ]; then ok "$2 -> $ST"; else fail "$2: want $1, got $ST: $BODY_OUT"; fi
}

expect_code() {  # CODE WHAT: the JSON error code in BODY_OUT
    case "$BODY_OUT" in
        *"\"code\":\"$1\""*) ok "$2 has code $1" ;;
        *) fail "$2: want error code $1 in: $BODY_OUT" ;;
    esac
}

expect_body() {  # SUBSTRING WHAT
    case "$BODY_OUT" in
        *"$1"*) ok "$2" ;;
        *) fail "$2: want \"$1\" in: $BODY_OUT" ;;
    esac
}

# One deterministic example per index: dense values, hex categoricals, an
# integer categorical and a missing value, so encodings of every kind show.
example_json() {  # I
    local i=$1
    printf '{"I1":%d,"I2":%d.25,"I3":-%d,"I5":null,"C1":"%08x","C2":"u%d","C3":%d,"C7":"%x"}' \
        "$i" "$((i * 7 % 100))" "$((i % 5))" "$((i * 2654435761 % 4294967296))" \
        "$((i % 13))" "$((i * 31))" "$((i * 977))"
}

score_body() {  # I
    printf '{"request_id":"ex-%d","examples":[%s]}' "$1" "$(example_json "$1")"
}

# Criteo TSV (label, I1..I13, C1..C26; empty = missing) IN -> one /v1
# example object per line OUT; missing values are left out.
tsv_to_jsonl() {  # IN OUT
    awk -F'\t' '{
        s = "{"; sep = ""
        for (i = 2; i <= 14; i++) if ($i != "") { s = s sep "\"I" (i - 1) "\":" $i; sep = "," }
        for (i = 15; i <= 40; i++) if ($i != "") { s = s sep "\"C" (i - 14) "\":\"" $i "\""; sep = "," }
        print s "}"
    }' "$1" >"$2"
}

# Load in the background: 4 curl clients x N /v1/score requests each
# (bounded in count and 90 s), client c's lines "STATUS DIGEST" in
# $T/load.c; their pids in PIDS (wait $PIDS).
curl_load() {  # N
    local c
    PIDS=""
    for c in 1 2 3 4; do
        (
            end=$((SECONDS + 90))
            for i in $(seq 1 "$1"); do
                [ $SECONDS -ge $end ] && break
                out=$(curl -s --max-time 10 -w ' %{http_code}' -H 'Content-Type: application/json' \
                    --data-binary "$(score_body $((c * 1000 + i)))" "$SRV_URL/v1/score")
                printf '%s %s\n' "${out##* }" "$(digest_of "$out")"
            done >"$T/load.$c"
        ) &
        PIDS="$PIDS $!"
    done
}

# The "scores":[...] array text of a /v1/score answer.
scores_of() {
    printf '%s' "$1" | sed -n 's/.*"scores":\[\([^]]*\)\].*/\1/p'
}

metric() {  # NAME: its value from /metrics (first series with that exact name)
    curl -s --max-time 5 "$SRV_URL/metrics" | awk -v n="$1" '$1 == n {print $2; exit}'
}

wait_metric() {  # NAME VALUE [TIMEOUT_S]: poll until NAME == VALUE; 1 on timeout
    local i
    for i in $(seq 1 $(( ${3:-10} * 20 ))); do
        [ "$(metric "$1")" = "$2" ] && return 0
        sleep 0.05
    done
    return 1
}

# read_response FD: reads one HTTP response (headers, Content-Length body)
# from an open /dev/tcp descriptor; prints the status code ("" on timeout).
read_response() {
    local fd=$1 line status="" len=0 body
    IFS= read -r -t 5 line <&"$fd" || return 1
    status=$(printf '%s' "$line" | cut -d' ' -f2)
    while IFS= read -r -t 5 line <&"$fd"; do
        line=${line%$'\r'}
        [ -z "$line" ] && break
        case "${line,,}" in content-length:*) len=${line#*: } ;; esac
    done
    [ "$len" -gt 0 ] && IFS= read -r -t 5 -N "$len" body <&"$fd"
    printf '%s' "$status"
}

digest_of() {
    printf '%s' "$1" | grep -o '"digest":"sha256:[0-9a-f]*"' | head -n 1 | cut -d'"' -f4
}
