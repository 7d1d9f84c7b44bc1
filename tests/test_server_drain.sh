#!/bin/bash
# End to end: SIGTERM drains. Requests already in flight (waiting in a
# batch that takes 1.5 s to fill) all get 200; /readyz turns 503 and new
# scoring requests on open connections get 503 draining; new connections
# are refused; the process exits 0 well within --drain-timeout-s. SIGINT
# does the same.
. "$(dirname "$0")/lib_server.sh"

make_model "$T/m.ctrm" 5 e2e
srv_start drain --model "$T/m.ctrm" --max-batch 1024 --max-delay-us 5000000 --inline-max-examples 0 --drain-timeout-s 20 || exit 1

# Connections opened before the signal: an idle one to ask /readyz, one
# for a new scoring request, one uploading a body slowly (in flight: it
# keeps the drain open until it is done).
exec 3<>/dev/tcp/127.0.0.1/"$SRV_PORT"
exec 5<>/dev/tcp/127.0.0.1/"$SRV_PORT"
exec 4<>/dev/tcp/127.0.0.1/"$SRV_PORT"
SLOW=$(score_body 77)
printf 'POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
    "${#SLOW}" "${SLOW:0:10}" >&4

PIDS=""
for i in $(seq 1 20); do
    curl -s -o "$T/out.$i" -w '%{http_code}' --max-time 15 -H 'Content-Type: application/json' \
        --data-binary "$(score_body "$i")" "$SRV_URL/v1/score" >"$T/st.$i" &
    PIDS="$PIDS $!"
done
wait_metric ctrd_queue_examples 20 4; check $? "all 20 requests wait in the batcher"
T0=$(date +%s%N)
kill -TERM "$SRV_PID"
for i in $(seq 1 50); do grep -q '"msg":"draining"' "$SRV_LOG" && break; sleep 0.1; done
sleep 0.1

printf 'GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n' >&3
R=$(timeout 5 cat <&3 | tr -d '\r')
exec 3>&-
case "$R" in "HTTP/1.1 503"*'"code":"draining"'*) ok "/readyz answers 503 draining while draining" ;;
    *) fail "/readyz while draining: $R" ;; esac

BODY=$(score_body 2)
printf 'POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' "${#BODY}" "$BODY" >&5
R=$(timeout 5 cat <&5 | tr -d '\r')
exec 5>&-
case "$R" in "HTTP/1.1 503"*'"code":"draining"'*) ok "a new request while draining gets 503 draining" ;;
    *) fail "new request while draining: $R" ;; esac
case "$R" in *"Retry-After: 1"*) ok "with Retry-After" ;; *) fail "no Retry-After: $R" ;; esac
case "$R" in *"Connection: close"*) ok "and Connection: close" ;; *) fail "no Connection: close: $R" ;; esac

ST=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$SRV_URL/healthz")
[ "$ST" = 000 ]; check $? "new connections are refused while draining ($ST)"

wait $PIDS
N200=0
for i in $(seq 1 20); do
    [ "$(cat "$T/st.$i")" = 200 ] && grep -q '"scores":\[' "$T/out.$i" && N200=$((N200 + 1))
done
[ "$N200" = 20 ]; check $? "every queued request got its 200 ($N200 of 20)"

kill -0 "$SRV_PID" 2>/dev/null; check $? "still draining while an upload is in flight"
printf '%s' "${SLOW:10}" >&4
R=$(timeout 5 cat <&4 | tr -d '\r')
exec 4>&-
case "$R" in "HTTP/1.1 200"*'"request_id":"ex-77"'*) ok "the upload in flight at SIGTERM is scored (200)" ;;
    *) fail "slow upload: $R" ;; esac

for i in $(seq 1 100); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
MS=$(( ($(date +%s%N) - T0) / 1000000 ))
srv_stop TERM 5
[ "$SRV_RC" = 0 ]; check $? "exit code 0 after the drain (rc $SRV_RC)"
[ "$MS" -lt 10000 ]; check $? "drained and exited in ${MS} ms"
grep -q '"msg":"draining"' "$SRV_LOG"; check $? "the drain is logged"
grep -q '"msg":"stopped"' "$SRV_LOG"; check $? "the stop is logged"

# SIGINT does the same.
srv_start drain2 --model "$T/m.ctrm" --max-delay-us 5000000 --inline-max-examples 0 --drain-timeout-s 20 || exit 1
curl -s -o "$T/out.x" -w '%{http_code}' --max-time 15 -H 'Content-Type: application/json' \
    --data-binary "$(score_body 1)" "$SRV_URL/v1/score" >"$T/st.x" &
P=$!
wait_metric ctrd_queue_examples 1 4; check $? "a request waits in the batcher"
kill -INT "$SRV_PID"
wait $P
[ "$(cat "$T/st.x")" = 200 ]; check $? "the request in flight at SIGINT got 200"
srv_stop INT 10
[ "$SRV_RC" = 0 ]; check $? "SIGINT exits 0 (rc $SRV_RC)"

# The drain timeout bounds the wait for a client that never finishes.
srv_start drain3 --model "$T/m.ctrm" --drain-timeout-s 1 || exit 1
exec 4<>/dev/tcp/127.0.0.1/"$SRV_PORT"
printf 'POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{' >&4
sleep 0.2
T0=$(date +%s%N)
srv_stop TERM 10
MS=$(( ($(date +%s%N) - T0) / 1000000 ))
exec 4>&-
[ "$SRV_RC" = 0 ] && [ "$MS" -lt 4000 ]; check $? "a stuck upload is cut at --drain-timeout-s 1 (rc $SRV_RC, ${MS} ms)"
grep -q '"msg":"drain timeout' "$SRV_LOG"; check $? "the cut is logged"
finish
