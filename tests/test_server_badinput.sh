#!/bin/bash
# End to end: every class of bad input gets its 4xx JSON error naming the
# problem (and the example and feature where they apply), and none of it
# disturbs a client sending good requests at the same time.
. "$(dirname "$0")/lib_server.sh"

make_model "$T/m.ctrm" 3 e2e
srv_start bad --model "$T/m.ctrm" --max-examples 8 --max-body-bytes 65536 --conn-timeout-s 2 || exit 1

req POST /v1/score "$(score_body 5)"; expect_status 200 "reference score"
REF=$(scores_of "$BODY_OUT")

# A good client scoring the same example throughout (bounded: 300 requests
# or 60 s); it records every status and score text.
(
    end=$((SECONDS + 60))
    for i in $(seq 1 300); do
        [ $SECONDS -ge $end ] && break
        curl -s --max-time 10 -H 'Content-Type: application/json' --data-binary "$(score_body 5)" \
            -w ' %{http_code}\n' "$SRV_URL/v1/score"
        echo
    done >"$T/good.out" 2>&1
) &
GOOD=$!

bad() {  # WANT_STATUS WANT_CODE WHAT BODY [curl args]
    local want=$1 code=$2 what=$3 body=$4
    shift 4
    req POST /v1/score "$body" "$@"
    expect_status "$want" "$what"
    expect_code "$code" "$what"
}

LONG=$(head -c 65 /dev/zero | tr '\0' 'a')
bad 400 malformed_json      "malformed JSON"            '{"examples":[{"I1":1,}]}'
bad 400 malformed_json      "truncated body"            '{"examples":[{"I1":1}'
bad 400 malformed_json      "garbage bytes"             "$(printf '\x01\x02\xfe\xffgarbage')"
bad 400 wrong_type          "dense value as a string"   '{"examples":[{"I1":"12"}]}'
bad 400 wrong_type          "categorical as an object"  '{"examples":[{"C1":{"a":1}}]}'
bad 400 wrong_type          "examples not an array"     '{"examples":{"I1":1}}'
bad 400 unknown_feature     "unknown feature"           '{"examples":[{"I1":1},{},{"Z9":1}]}'
expect_body '"example":2' "unknown feature: the example index"
expect_body '"feature":"Z9"' "unknown feature: the feature name"
bad 400 string_too_long     "a 65-byte categorical"     "{\"examples\":[{\"C4\":\"$LONG\"}]}"
expect_body '"feature":"C4"' "long string: the feature name"
bad 400 malformed_json      "NaN"                       '{"examples":[{"I1":NaN}]}'
bad 400 malformed_json      "Infinity"                  '{"examples":[{"I2":-Infinity}]}'
bad 400 number_out_of_range "1e999"                     '{"examples":[{"I1":1e999}]}'
bad 400 duplicate_key       "duplicate key"             '{"examples":[{"I1":1,"I1":2}]}'
bad 400 nesting_too_deep    "deep nesting"              "$(head -c 5000 /dev/zero | tr '\0' '[')"
bad 400 missing_examples    "empty examples"            '{"examples":[]}'
bad 400 missing_examples    "no examples"               '{"request_id":"x"}'
bad 413 too_many_examples   "too many examples"         '{"examples":[{},{},{},{},{},{},{},{},{}]}'
bad 400 bad_request_id      "request id over 128 chars" "{\"request_id\":\"$(head -c 129 /dev/zero | tr '\0' r)\",\"examples\":[{}]}"
bad 400 invalid_utf8        "invalid UTF-8"             "$(printf '{"examples":[{"C1":"\xc3\x28"}]}')"

BIG=$(head -c 70000 /dev/zero | tr '\0' ' ')
bad 413 body_too_large      "oversized body (Content-Length)" "$BIG"
bad 413 body_too_large      "oversized body (chunked)"        "$BIG" -H 'Transfer-Encoding: chunked'
# A huge upload is cut off rather than read for ever: curl sees the
# connection end (413, or a reset after "100 Continue"; never a hang).
ST=$(head -c 20000000 /dev/zero | curl -s -o /dev/null -w '%{http_code}' --max-time 20 \
    -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' --data-binary @- "$SRV_URL/v1/score")
case "$ST" in 413|100|000) ok "a 20 MB chunked upload is refused or cut ($ST)" ;; *) fail "20 MB chunked upload: $ST" ;; esac

bad 415 unsupported_media_type "wrong content type" '{"examples":[{}]}' -H 'Content-Type: text/plain'
req POST /v1/score '{"examples":[{}]}' -H 'Content-Type: application/json; charset=utf-8'
expect_status 200 "charset=utf-8 is accepted"
req POST /v1/score '{"examples":[{}]}' -H 'Content-Type: application/json; charset=latin1'
expect_status 415 "charset=latin1 is refused"
req POST /v1/score "" -X POST;      expect_status 411 "POST without a length"; expect_code length_required "no length"
req GET /v1/score;                  expect_status 405 "wrong method";  expect_code method_not_allowed "wrong method"
req GET /v1/scores;                 expect_status 404 "unknown path";  expect_code not_found "unknown path"

# Broken HTTP on raw sockets: a body shorter than its Content-Length, then
# the client goes away; garbage instead of a request line.
exec 3<>/dev/tcp/127.0.0.1/"$SRV_PORT"
printf 'POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"exa' >&3
exec 3>&-
exec 3<>/dev/tcp/127.0.0.1/"$SRV_PORT"
printf '\x16\x03\x01\x02\x00garbage\r\n\r\n' >&3
R=$(timeout 5 head -c 12 <&3 | tr -d '\r\n')
exec 3>&-
case "$R" in "HTTP/1.1 400"|"") ok "garbage request line: 400 or closed (${R:-closed})" ;; *) fail "garbage request line: $R" ;; esac

# A slow client (half a request line, then nothing) is dropped after
# --conn-timeout-s, and others are served meanwhile.
exec 4<>/dev/tcp/127.0.0.1/"$SRV_PORT"
printf 'POST /v1/score HTTP/1.1\r\nHost: x\r\n' >&4
T0=$(date +%s%N)
req POST /v1/score "$(score_body 5)"; expect_status 200 "served while a slow client hangs"
[ "$(scores_of "$BODY_OUT")" = "$REF" ]; check $? "same score while a slow client hangs"
MS=$(( ($(date +%s%N) - T0) / 1000000 ))
[ "$MS" -lt 1500 ]; check $? "not delayed by the slow client (${MS} ms; it is dropped after 2 s)"
timeout 8 cat <&4 >/dev/null
RC=$?
exec 4>&-
[ "$RC" -eq 0 ]; check $? "the slow client's connection is closed within the timeout (cat rc $RC)"

wait "$GOOD"
NGOOD=$(grep -c ' 200$' "$T/good.out")
NALL=$(grep -c ' [0-9][0-9][0-9]$' "$T/good.out")
[ "$NGOOD" -gt 0 ] && [ "$NGOOD" = "$NALL" ]; check $? "the good client got 200 every time ($NGOOD of $NALL)"
NDIFF=$(grep ' 200$' "$T/good.out" | sed -n 's/.*"scores":\[\([^]]*\)\].*/\1/p' | grep -vcx "$REF")
[ "$NDIFF" = 0 ]; check $? "and the same score text every time ($NDIFF differ)"

req GET /readyz; expect_status 200 "still ready after all of it"
kill -0 "$SRV_PID"; check $? "still running"
srv_stop TERM
[ "$SRV_RC" = 0 ]; check $? "SIGTERM exits 0"
finish
