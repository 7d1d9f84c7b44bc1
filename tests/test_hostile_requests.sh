#!/bin/bash
# test_hostile_requests.sh - the hostile request table (tests/hostile.py
# `cases`): 170 malformed or abusive requests on raw sockets (broken UTF-8,
# unterminated strings, 1 MB of nesting, 100k keys, huge numbers, negative
# zero, duplicate keys, wrong types at every level, v2 tensors, chunked
# bodies, missing or lying Content-Length, request smuggling framings,
# HTTP/1.0, pipelining, oversized lines and headers), each with its expected
# status and error code. Sent three times, while a good client scores the same
# example throughout: the good client gets 200 and the same score every
# time, the server keeps serving, its fd count returns to the baseline and
# its heap returns to its level after every round (no leak) and its RSS
# stays bounded; the audit log of it all verifies.
. "$(dirname "$0")/lib_server.sh"
. "$(dirname "$0")/lib_hard.sh"
need_python

make_model "$T/m.ctrm" 3 e2e
srv_start hostile --model "$T/m.ctrm" --max-examples 8 --max-body-bytes 2097152 \
    --conn-timeout-s 2 --audit-dir "$T/audit" || exit 1

req POST /v1/score "$(score_body 5)"; expect_status 200 "reference score"
REF=$(scores_of "$BODY_OUT")
for i in $(seq 1 20); do req POST /v1/score "$(score_body "$i")"; done
RSS0=$(rss_kb "$SRV_PID"); FD0=$(fd_count "$SRV_PID")
log "baseline: RSS $RSS0 KiB, $FD0 fds"

# The good client: the same example, 10 requests/s, bounded (400 or 90 s).
(
    end=$((SECONDS + 90))
    for i in $(seq 1 400); do
        [ $SECONDS -ge $end ] && break
        [ -e "$T/stop" ] && break
        curl -s --max-time 10 -H 'Content-Type: application/json' --data-binary "$(score_body 5)" \
            -w ' %{http_code}\n' "$SRV_URL/v1/score"
        echo
        sleep 0.1
    done >"$T/good.out" 2>&1
) &
GOOD=$!

for round in 1 2 3; do
    $HOSTILE cases "$SRV_PORT" e2e >"$T/cases$round.out" 2>&1
    RC=$?
    grep -v '^ok:' "$T/cases$round.out" | head -n 40
    N=$(grep -c '^ok:' "$T/cases$round.out")
    [ "$RC" -eq 0 ]; check $? "round $round: every hostile request got its expected answer ($N)"
    kill -0 "$SRV_PID"; check $? "round $round: ctrd still running"
    FDS=$(settle_fds "$SRV_PID" "$FD0" 10)
    [ "$FDS" -le "$FD0" ]; check $? "round $round: fds back to the baseline ($FDS, baseline $FD0)"
    eval "RSS$round=$(rss_kb "$SRV_PID")"
    eval "HEAP$round=$(heap_in_use "$SRV_URL")"
done
touch "$T/stop"
wait "$GOOD"
log "RSS: baseline $RSS0 KiB, after rounds 1, 2, 3: $RSS1, $RSS2, $RSS3 KiB"
log "heap in use after rounds 1, 2, 3: $HEAP1, $HEAP2, $HEAP3 bytes"
# RSS is no leak detector: glibc keeps freed 1-2 MB bodies in per-thread
# arenas and RSS climbs for 5-10 rounds before it levels off (measured:
# 13 -> 26 MiB, flat from round 9 of 14). Bytes in use (mallinfo2, which
# /metrics exports) return to their level after each round instead
# (measured: +3 KiB a round, flat from round 12); a leak of 1.5 KB per
# hostile request would add 256 KiB a round.
[ -n "$HEAP1" ] && [ -n "$HEAP3" ] && [ $((HEAP3 - HEAP1)) -le 262144 ]
check_rss $? "no heap growth from round 1 to 3 ($((HEAP3 - HEAP1)) bytes)"
[ $((RSS3 - RSS0)) -le 65536 ]; check_rss $? "RSS within 64 MiB of the baseline ($((RSS3 - RSS0)) KiB)"

NGOOD=$(grep -c ' 200$' "$T/good.out")
NALL=$(grep -c ' [0-9][0-9][0-9]$' "$T/good.out")
[ "$NGOOD" -gt 0 ] && [ "$NGOOD" = "$NALL" ]; check $? "the good client got 200 every time ($NGOOD of $NALL)"
NDIFF=$(grep ' 200$' "$T/good.out" | sed -n 's/.*"scores":\[\([^]]*\)\].*/\1/p' | grep -vcx "$REF")
[ "$NDIFF" = 0 ]; check $? "and the same score every time ($NDIFF differ)"

req GET /readyz; expect_status 200 "still ready"
srv_stop TERM
[ "$SRV_RC" = 0 ]; check $? "SIGTERM exits 0"
OUT=$("$CTRTOOL" audit verify --model "$T/m.ctrm" "$T/audit" 2>&1); RC=$?
[ "$RC" = 0 ]; check $? "the audit log of the hostile run verifies: $(printf '%s' "$OUT" | tail -n 1)"
finish
