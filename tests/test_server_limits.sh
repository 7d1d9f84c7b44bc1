#!/bin/bash
# End to end: the limits answer as documented. 413 for a body or an
# example count over the limit (both protocols), 503 queue_full with
# Retry-After when --queue-limit examples are already waiting, and the
# server serves normally again afterwards.
. "$(dirname "$0")/lib_server.sh"

make_model "$T/m.ctrm" 4 e2e

# One scoring thread, batches that wait 3 s to fill, room for 1 example,
# no inline scoring: the first request waits in the queue and every other
# one is refused.
srv_start limits --model "$T/m.ctrm" --threads 1 --max-batch 64 --max-delay-us 3000000 \
    --queue-limit 1 --max-examples 4 --max-body-bytes 2048 --inline-max-examples 0 || exit 1

req POST /v1/score "$(head -c 3000 /dev/zero | tr '\0' ' ')"
expect_status 413 "body over --max-body-bytes"; expect_code body_too_large "body over the limit"
req POST /v1/score '{"examples":[{},{},{},{},{}]}'
expect_status 413 "5 examples over --max-examples 4"; expect_code too_many_examples "examples over the limit"
SPARSE=$(for i in $(seq 1 130); do printf '"v",'; done | sed 's/,$//')
DENSE=$(for i in $(seq 1 65); do printf '1,'; done | sed 's/,$//')
req POST /v2/models/e2e/infer "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[5,13],\"data\":[$DENSE]},{\"name\":\"sparse\",\"datatype\":\"BYTES\",\"shape\":[5,26],\"data\":[$SPARSE]}]}"
expect_status 413 "v2 batch of 5 over --max-examples 4"; expect_code too_many_examples "v2 over the limit"

curl -s -o "$T/first.out" -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
    --data-binary "$(score_body 1)" "$SRV_URL/v1/score" >"$T/first.st" &
PIDS=$!
wait_metric ctrd_queue_examples 1 5; check $? "the first request waits in the queue"
for i in $(seq 1 8); do
    curl -s -D "$T/h$i" -o "$T/b$i" -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
        --data-binary "$(score_body $((i + 1)))" "$SRV_URL/v1/score" >"$T/st$i" &
    PIDS="$PIDS $!"
done
wait $PIDS     # not the server[ "$(cat "$T/first.st")" = 200 ]; check $? "the queued request is scored (200)"
N503=0
for i in $(seq 1 8); do
    if [ "$(cat "$T/st$i")" = 503 ]; then
        N503=$((N503 + 1))
        grep -q '"code":"queue_full"' "$T/b$i" || fail "503 without queue_full: $(cat "$T/b$i")"
        grep -qi '^Retry-After: 1' "$T/h$i" || fail "503 without Retry-After"
    fi
done
[ "$N503" -ge 6 ]; check $? "a full queue refuses with 503 queue_full + Retry-After ($N503 of 8)"

req POST /v1/score "$(score_body 9)"; expect_status 200 "scores again once the queue drained"
req GET /metrics
R=$(printf '%s\n' "$BODY_OUT" | awk '$1 == "ctrd_queue_rejected_total{model=\"e2e\"}" {print $2}')
[ "${R:-0}" -ge "$N503" ]; check $? "ctrd_queue_rejected_total{model=\"e2e\"} counts them ($R)"
expect_body 'ctrd_http_requests_total{endpoint="/v1/score",code="503",model="e2e"}' "503s counted by endpoint, code and model"
expect_body 'ctrd_http_requests_total{endpoint="/v1/score",code="413"}' "413s counted by endpoint and code"
srv_stop TERM
[ "$SRV_RC" = 0 ]; check $? "SIGTERM exits 0"

# --max-connections: with 2 idle keep-alive connections held, a third
# client takes the slot of the one idle longest (server/conns.c), which is
# closed; nobody waits in the listen backlog.
srv_start conns --model "$T/m.ctrm" --max-connections 2 --http-threads 2 || exit 1
exec 7<>/dev/tcp/127.0.0.1/"$SRV_PORT"
exec 8<>/dev/tcp/127.0.0.1/"$SRV_PORT"
for fd in 7 8; do     # one request each: both are accepted and kept alive
    printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' >&$fd
    [ "$(read_response $fd)" = 200 ]; check $? "held connection $fd is served"
    sleep 0.1
done
ST=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$SRV_URL/readyz")
[ "$ST" = 200 ]; check $? "a third connection is served while 2 idle ones are held ($ST)"
GONE=$(timeout 2 cat <&7 | wc -c)
[ "$GONE" = 0 ]; check $? "the longest idle connection was closed for it"
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' >&8
[ "$(read_response 8)" = 200 ]; check $? "the other held connection still serves"
N=$(curl -s "$SRV_URL/metrics" | awk '$1 == "ctrd_connections_evicted_total{reason=\"idle_at_limit\"}" {print $2}')
[ "${N:-0}" -ge 1 ]; check $? "counted as idle_at_limit ($N)"
exec 7>&- 8>&-
sleep 0.3
req GET /readyz; expect_status 200 "served once the held connections are closed"
srv_stop

# A request larger than --max-batch is scored alone, in one piece.
srv_start bigreq --model "$T/m.ctrm" --max-batch 2 --max-examples 16 || exit 1
BODY='{"examples":['
for i in $(seq 1 16); do BODY="$BODY$(example_json $i),"; done
BODY="${BODY%,}]}"
req POST /v1/score "$BODY"; expect_status 200 "16 examples with --max-batch 2"
N=$(scores_of "$BODY_OUT" | tr ',' '\n' | grep -c .)
[ "$N" = 16 ]; check $? "16 scores ($N)"
req POST /v1/score "$(score_body 16)"
S16=$(scores_of "$BODY_OUT")
LAST=$(curl -s -H 'Content-Type: application/json' --data-binary "$BODY" "$SRV_URL/v1/score" | sed -n 's/.*"scores":\[\([^]]*\)\].*/\1/p' | tr ',' '\n' | tail -n 1)
[ "$LAST" = "$S16" ]; check $? "the 16th example scores the same alone ($S16) and in the big request ($LAST)"
srv_stop
finish
