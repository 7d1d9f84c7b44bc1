#!/bin/bash
# test_faults_restart.sh - kill -9 under load, restart on the same audit
# directory, FAULT_CYCLES (3) times, then a clean SIGTERM: every request
# answered 200 in any of the runs is in the audit log exactly once, and
# `ctrtool audit verify` reproduces every logged score (a torn final record
# per killed run is allowed, corruption is not). Each restart serves at
# once. The single-run crash with both audit back ends (io_uring, pwrite)
# is tests/test_audit_crash.sh; the full audit directory is
# tests/test_audit_diskfull.sh.
. "$(dirname "$0")/lib_server.sh"
. "$(dirname "$0")/lib_hard.sh"
need_python
CYCLES=${FAULT_CYCLES:-3}

make_model "$T/m.ctrm" 41 restart
: >"$T/all"
for c in $(seq 1 "$CYCLES"); do
    srv_start "run$c" --model "$T/m.ctrm" --audit-dir "$T/audit" --threads 2 || { fail "start $c"; break; }
    req POST /v1/score "$(score_body "$c")"; expect_status 200 "run $c serves after the restart"
    base=$(metric 'ctrd_http_requests_total{endpoint="/v1/score",code="200",model="restart"}')
    $HOSTILE idload "$SRV_PORT" --out "$T/ids$c" --seconds 30 --conns 4 --prefix "k$c" \
        --stop "$T/stop$c" >"$T/idload$c.out" 2>&1 &
    LOAD=$!
    # Kill once the load is flowing (300 answers; at most 15 s), mid-stream.
    for i in $(seq 1 150); do
        n=$(metric 'ctrd_http_requests_total{endpoint="/v1/score",code="200",model="restart"}')
        [ $(( ${n:-0} - ${base:-0} )) -ge 300 ] && break
        sleep 0.1
    done
    sleep 0.3
    kill -KILL "$SRV_PID"
    wait "$SRV_PID" 2>/dev/null
    SRV_PID=""
    sleep 0.3          # the clients see the dead server, and record it
    touch "$T/stop$c"
    wait "$LOAD"
    N200=$(grep -c ' 200$' "$T/ids$c")
    log "run $c: $(wc -l <"$T/ids$c") requests, $N200 answered 200 before kill -9"
    [ "$N200" -gt 20 ]; check $? "run $c: load ran ($N200 answered)"
    cat "$T/ids$c" >>"$T/all"
done
srv_start final --model "$T/m.ctrm" --audit-dir "$T/audit" || exit 1
$HOSTILE idload "$SRV_PORT" --out "$T/idsf" --seconds 1 --conns 2 --prefix kf >/dev/null 2>&1
cat "$T/idsf" >>"$T/all"
srv_stop TERM
[ "$SRV_RC" = 0 ]; check $? "the final run exits 0 on SIGTERM"

awk '$2 == 200 {print $1}' "$T/all" | sort >"$T/answered"
"$CTRTOOL" audit dump --no-values "$T/audit" 2>"$T/dump.err" | grep -o '"request_id":"[^"]*"' |
    cut -d'"' -f4 | sort >"$T/logged"
MISSING=$(comm -23 "$T/answered" "$T/logged" | wc -l)
DUPS=$(uniq -d "$T/logged" | wc -l)
log "$(wc -l <"$T/answered") answered 200 over $CYCLES kills and a clean stop, $(wc -l <"$T/logged") records logged"
[ "$MISSING" = 0 ]; check $? "no acknowledged request missing from the log ($MISSING missing: $(comm -23 "$T/answered" "$T/logged" | head -n 3 | tr '\n' ' '))"
[ "$DUPS" = 0 ]; check $? "no request logged twice ($DUPS)"
OUT=$("$CTRTOOL" audit verify --model "$T/m.ctrm" "$T/audit" 2>&1); RC=$?
SUMMARY=$(printf '%s\n' "$OUT" | grep '^verified=')
log "audit verify: $SUMMARY"
[ "$RC" = 0 ]; check $? "audit verify exits 0"
case "$SUMMARY" in *" mismatched=0 "*" corrupt=0 "*) ok "no mismatch, no corruption" ;; *) fail "$SUMMARY" ;; esac
TORN=$(printf '%s' "$SUMMARY" | sed -n 's/.*torn=\([0-9]*\).*/\1/p')
[ "${TORN:-0}" -le "$CYCLES" ]; check $? "at most one torn record per kill ($TORN)"
NSEG=$(ls "$T/audit" | wc -l)
log "$NSEG audit segments"
finish
