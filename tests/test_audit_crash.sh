#!/bin/bash
# test_audit_crash.sh - kill -9 of ctrd under concurrent load with the
# default durability (write), then replay: every request that got a 200 is
# in the audit log exactly once and `ctrtool audit verify` reproduces every
# score bit for bit (a torn final record is allowed, corruption is not).
# Run twice: io_uring, then the pwrite fallback (CTRD_AUDIT_NO_URING=1).
# All traffic is loopback; every loop is bounded in count and time.
. "$(dirname "$0")/lib_server.sh"

WORKERS=${AUDIT_CRASH_WORKERS:-4}
PER_WORKER=${AUDIT_CRASH_REQUESTS:-400}   # upper bound per worker
KILL_AFTER=${AUDIT_CRASH_KILL_AFTER:-2}    # seconds of load before kill -9

make_model "$T/m.ctrm" 11 crash

# One worker: numbered requests with 1-3 examples and a context, each
# answer's status logged as "ID STATUS". Stops at its count, when the
# stop file appears, or after 30 s.
worker() {  # W URL OUT
    local w=$1 url=$2 out=$3 i st body end=$((SECONDS + 30))
    for i in $(seq 1 "$PER_WORKER"); do
        [ -e "$T/stop" ] && break
        [ "$SECONDS" -ge "$end" ] && break
        local id="w$w-$i" ex
        ex=$(example_json $((w * 1000 + i)))
        case $((i % 3)) in
            0) body="{\"request_id\":\"$id\",\"examples\":[$ex]}" ;;
            1) body="{\"request_id\":\"$id\",\"context\":{\"C20\":\"u$w\",\"I9\":$w},\"examples\":[$ex,$(example_json $((i + 7)))]}" ;;
            *) body="{\"request_id\":\"$id\",\"context\":{\"C21\":\"abcdef01\"},\"examples\":[$ex,$ex,$(example_json $i)]}" ;;
        esac
        st=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'Content-Type: application/json' \
             --data-binary "$body" "$url/v1/score" 2>/dev/null)
        echo "$id ${st:-000}" >>"$out"
    done
}

crash_run() {  # LABEL [env...]
    local label=$1
    shift
    local dir="$T/audit-$label"
    rm -f "$T/stop" "$T"/status-"$label"-*
    local v
    for v in "$@"; do export "${v?}"; done
    srv_start "crash-$label" --model "$T/m.ctrm" --audit-dir "$dir" --threads 2 || { fail "$label: start"; return; }
    for v in "$@"; do unset "${v%%=*}"; done
    if [ "$label" = pwrite ]; then
        grep -q 'pwrite/fdatasync' "$SRV_LOG" && ok "$label: ctrd logs the fallback" || fail "$label: no fallback line in the log"
    fi
    local pids="" w
    for w in $(seq 1 "$WORKERS"); do
        worker "$w" "$SRV_URL" "$T/status-$label-$w" &
        pids="$pids $!"
    done
    sleep "$KILL_AFTER"
    # On a loaded machine the clients are slow: wait (at most 20 s more)
    # until enough answers were given that the kill lands mid-load.
    local waited=0
    while [ "$(cat "$T"/status-"$label"-* 2>/dev/null | awk '$2 == 200' | wc -l)" -le 25 ] &&
          [ $waited -lt 200 ]; do
        sleep 0.1; waited=$((waited + 1))
    done
    kill -KILL "$SRV_PID"
    wait "$SRV_PID" 2>/dev/null
    SRV_PID=""
    touch "$T/stop"
    for w in $pids; do wait "$w"; done

    cat "$T"/status-"$label"-* >"$T/status-$label"
    local n200 n_all
    n200=$(awk '$2 == 200' "$T/status-$label" | wc -l)
    n_all=$(wc -l <"$T/status-$label")
    log "$label: $n_all requests sent, $n200 answered 200 before kill -9"
    [ "$n200" -gt 20 ] && ok "$label: load ran ($n200 answered)" || fail "$label: too few answers ($n200)"

    "$CTRTOOL" audit dump --no-values "$dir" >"$T/dump-$label" 2>"$T/dump-$label.err"
    grep -o '"request_id":"[^"]*"' "$T/dump-$label" | cut -d'"' -f4 | sort >"$T/logged-$label"
    awk '$2 == 200 {print $1}' "$T/status-$label" | sort >"$T/answered-$label"
    local missing dups
    missing=$(comm -23 "$T/answered-$label" "$T/logged-$label" | wc -l)
    dups=$(uniq -d "$T/logged-$label" | wc -l)
    [ "$missing" -eq 0 ] && ok "$label: every 200 is in the audit log" ||
        fail "$label: $missing answered requests missing from the log: $(comm -23 "$T/answered-$label" "$T/logged-$label" | head -5 | tr '\n' ' ')"
    [ "$dups" -eq 0 ] && ok "$label: no request logged twice" || fail "$label: $dups request ids logged twice"

    local out rc
    out=$("$CTRTOOL" audit verify --model "$T/m.ctrm" "$dir" 2>&1)
    rc=$?
    log "$out" | tail -n 8
    [ $rc -eq 0 ] && ok "$label: audit verify exits 0" || fail "$label: audit verify exit $rc"
    local summary
    summary=$(printf '%s\n' "$out" | grep '^verified=')
    case "$summary" in
        *" mismatched=0 "*" corrupt=0 "*) ok "$label: no mismatch, no corruption ($summary)" ;;
        *) fail "$label: $summary" ;;
    esac
    local verified
    verified=$(printf '%s' "$summary" | sed 's/^verified=\([0-9]*\).*/\1/')
    [ "${verified:-0}" -ge "$n200" ] && ok "$label: $verified records verified >= $n200 answered" ||
        fail "$label: only $verified records verified for $n200 answers"
}

crash_run uring
crash_run pwrite CTRD_AUDIT_NO_URING=1
finish
