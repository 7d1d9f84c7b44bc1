#!/bin/bash
# End to end: every endpoint of a real ctrd answers as docs/API.md says;
# keep-alive really keeps the connection; flags, their environment twins
# and --check work.
. "$(dirname "$0")/lib_server.sh"

make_model "$T/m.ctrm" 1 e2e
TOKEN=e2e-admin-token-0123456789
srv_start main --model "$T/m.ctrm" --admin-token "$TOKEN" --threads 2 || exit 1

# --- health and readiness -------------------------------------------------
req GET /healthz;            expect_status 200 "GET /healthz"
req GET /readyz;             expect_status 200 "GET /readyz"
req GET /v2/health/live;     expect_status 200 "GET /v2/health/live"
req GET /v2/health/ready;    expect_status 200 "GET /v2/health/ready"
req HEAD /healthz "" -I;     expect_status 200 "HEAD /healthz"
req GET /v2;                 expect_status 200 "GET /v2 (server metadata)"
expect_body '"name":"ctrd"' "/v2 names the server"

# --- model description ----------------------------------------------------
req GET /v1/models;          expect_status 200 "GET /v1/models"
for k in '"name":"e2e"' '"digest":"sha256:' '"schema":' '"dense":' '"categorical":' \
         '"layers":' '"kernel":{"name":' '"bit_exact":true' '"generation":1'; do
    expect_body "$k" "/v1/models has $k"
done
DIGEST=$(digest_of "$BODY_OUT")
[ -n "$DIGEST" ]; check $? "digest read from /v1/models ($DIGEST)"

req GET /v2/models/e2e;      expect_status 200 "GET /v2/models/e2e"
expect_body '"name":"dense","datatype":"FP32","shape":[-1,13]' "v2 metadata: dense input"
expect_body '"name":"sparse","datatype":"BYTES","shape":[-1,26]' "v2 metadata: sparse input"
expect_body '"name":"score","datatype":"FP32","shape":[-1,1]' "v2 metadata: score output"
req GET /v2/models/e2e/ready; expect_status 200 "GET /v2/models/e2e/ready"
req GET /v2/models/other;    expect_status 404 "GET /v2/models/other"
expect_code model_not_found "unknown v2 model"
req GET /v2/models/other/ready; expect_status 404 "GET /v2/models/other/ready"

# --- scoring ----------------------------------------------------------------
req POST /v1/score "$(score_body 1)"; expect_status 200 "POST /v1/score"
expect_body '"request_id":"ex-1"' "request id echoed"
expect_body "\"model\":{\"name\":\"e2e\",\"digest\":\"$DIGEST\"}" "model name and digest in the answer"
S1=$(scores_of "$BODY_OUT")
[ -n "$S1" ]; check $? "one score ($S1)"

req POST /v1/score '{"context":{"C1":"user-9","I2":4},"examples":[{"I1":1},{"I1":2,"C2":"ad"},{}]}'
expect_status 200 "POST /v1/score with context, 3 examples"
N=$(scores_of "$BODY_OUT" | tr ',' '\n' | grep -c .)
[ "$N" = 3 ]; check $? "three scores ($N)"
case "$BODY_OUT" in *'"request_id":"'?*'"'*) ok "a request id is generated when none is sent" ;;
    *) fail "no generated request id: $BODY_OUT" ;; esac

# Context values merge into every example: context + {} == the same
# features given in the example itself.
req POST /v1/score '{"context":{"C1":"user-9","I2":4},"examples":[{}]}'
A=$(scores_of "$BODY_OUT")
req POST /v1/score '{"examples":[{"C1":"user-9","I2":4}]}'
Bv=$(scores_of "$BODY_OUT")
[ -n "$A" ] && [ "$A" = "$Bv" ]; check $? "context merges into examples ($A vs $Bv)"

DENSE=$(seq -s, 1 26 | sed 's/[0-9]*/0.5/g')   # 2 x 13 values
SPARSE=$(for i in $(seq 1 52); do printf '"v%d",' "$i"; done | sed 's/,$//')
V2BODY="{\"id\":\"v2-1\",\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[2,13],\"data\":[$DENSE]},{\"name\":\"sparse\",\"datatype\":\"BYTES\",\"shape\":[2,26],\"data\":[$SPARSE]}]}"
req POST /v2/models/e2e/infer "$V2BODY"; expect_status 200 "POST /v2/models/e2e/infer"
expect_body '"model_name":"e2e"' "v2 answer names the model"
expect_body '"id":"v2-1"' "v2 answer echoes the id"
expect_body '"name":"score","datatype":"FP32","shape":[2,1]' "v2 output score [2,1]"
req POST /v2/models/other/infer "$V2BODY"; expect_status 404 "infer on an unknown model"
expect_code model_not_found "infer on an unknown model"

# --- Open Inference Protocol: versions, error form, types, encodings --------
req GET /v2/;                expect_status 200 "GET /v2/ answers like GET /v2"
expect_body '"name":"ctrd"' "/v2/ names the server"
SHORT=${DIGEST#sha256:}; SHORT=${SHORT:0:12}
req GET /v2/models/e2e;      expect_body "\"versions\":[\"$DIGEST\",\"$SHORT\"]" "versions lists the digest and its short form"
for v in "$DIGEST" "$SHORT"; do
    req GET "/v2/models/e2e/versions/$v"; expect_status 200 "GET .../versions/$v"
    expect_body '"name":"e2e"' "versioned metadata names the model"
    req GET "/v2/models/e2e/versions/$v/ready"; expect_status 200 "GET .../versions/$v/ready"
    req POST "/v2/models/e2e/versions/$v/infer" "$V2BODY"; expect_status 200 "POST .../versions/$v/infer"
    expect_body '"shape":[2,1]' "versioned infer scores"
    [ "$(scores_of "$BODY_OUT")" = "$(req POST /v2/models/e2e/infer "$V2BODY"; scores_of "$BODY_OUT")" ]
    check $? "versioned infer gives the same scores"
done
V2SCORES=$(req POST /v2/models/e2e/infer "$V2BODY"; printf '%s' "$BODY_OUT" | grep -o '"data":\[[^]]*\]')
for p in /v2/models/e2e/versions/1 /v2/models/e2e/versions/1/ready; do
    req GET "$p"; expect_status 404 "unknown version $p"; expect_code version_not_found "unknown version"
done
req POST /v2/models/e2e/versions/sha256:00/infer "$V2BODY"; expect_status 404 "infer on an unknown version"
expect_code version_not_found "infer on an unknown version"
req GET /v2/models/other/versions/$SHORT; expect_status 404 "unknown model, known version"
expect_code model_not_found "unknown model under a version"
# v2 errors: "error" is the message string, the code beside it.
v2_error_form() {  # WHAT
    case "$BODY_OUT" in
        '{"error":"'*'","code":"'*'","example":'*',"feature":'*'}') ok "$1: v2 error form" ;;
        *) fail "$1: want {\"error\":\"<message>\",\"code\":...}: $BODY_OUT" ;;
    esac
}
req GET /v2/models/other;    v2_error_form "404 unknown model"
req GET /v2/nope;            expect_status 404 "unknown /v2 path"; v2_error_form "404 unknown /v2 path"
req PUT /v2/models/e2e/infer; expect_status 405 "PUT on infer"; v2_error_form "405"
req POST /v2/models/e2e/infer '{"inputs":'; expect_status 400 "v2 bad JSON"; v2_error_form "400 decode error"
expect_body '"code":"' "400 keeps its code"
req POST /v2/models/e2e/infer "$V2BODY" -H 'Content-Type: text/plain'; expect_status 415 "v2 text/plain"
v2_error_form "415"
req GET /nope; case "$BODY_OUT" in '{"error":{"code":"not_found","message":'*) ok "/v1 and others keep the object form" ;;
    *) fail "non-v2 404 form: $BODY_OUT" ;; esac
# Content types: none is JSON; octet-stream only for the binary form.
ST=$(curl -s -o "$T/o" -w '%{http_code}' -H 'Content-Type:' --data-binary "$V2BODY" "$SRV_URL/v2/models/e2e/infer")
[ "$ST" = 200 ] && grep -q '"shape":\[2,1\]' "$T/o"; check $? "v2 infer without Content-Type is JSON ($ST)"
ST=$(curl -s -o "$T/o" -w '%{http_code}' -H 'Content-Type:' --data-binary "$(score_body 1)" "$SRV_URL/v1/score")
[ "$ST" = 415 ]; check $? "v1 still requires application/json ($ST)"
ST=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/octet-stream' --data-binary "$V2BODY" "$SRV_URL/v2/models/e2e/infer")
[ "$ST" = 415 ]; check $? "octet-stream without Inference-Header-Content-Length is 415 ($ST)"
ST=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/octet-stream' \
    -H "Inference-Header-Content-Length: ${#V2BODY}" --data-binary "$V2BODY" "$SRV_URL/v2/models/e2e/infer")
[ "$ST" != 415 ]; check $? "octet-stream with Inference-Header-Content-Length is let through ($ST)"
# Content-Encoding: gzip and deflate (zlib) decompressed, bounded.
printf '%s' "$V2BODY" | gzip -c >"$T/b.gz"
python3 -c 'import sys,zlib; sys.stdout.buffer.write(zlib.compress(sys.stdin.buffer.read()))' <<<"$V2BODY" >"$T/b.zz"
for e in gzip:b.gz deflate:b.zz; do
    ST=$(curl -s -o "$T/o" -w '%{http_code}' -H 'Content-Type: application/json' -H "Content-Encoding: ${e%%:*}" \
        --data-binary "@$T/${e#*:}" "$SRV_URL/v2/models/e2e/infer")
    [ "$ST" = 200 ] && [ "$(grep -o '"data":\[[^]]*\]' "$T/o")" = "$V2SCORES" ]
    check $? "Content-Encoding ${e%%:*}: same scores ($ST)"
done
head -c 2000000 /dev/zero | gzip -c >"$T/bomb.gz"
ST=$(curl -s -o "$T/o" -w "%{http_code}" -H "Content-Type: application/json" -H 'Content-Encoding: gzip' --data-binary "@$T/bomb.gz" "$SRV_URL/v2/models/e2e/infer")
[ "$ST" = 413 ] && grep -q '"code":"body_too_large"' "$T/o"; check $? "a gzip bomb over --max-body-bytes is 413 ($ST)"
head -c 100 "$T/b.gz" >"$T/cut.gz"
ST=$(curl -s -o "$T/o" -w "%{http_code}" -H "Content-Type: application/json" -H 'Content-Encoding: gzip' --data-binary "@$T/cut.gz" "$SRV_URL/v2/models/e2e/infer")
[ "$ST" = 400 ]; check $? "truncated gzip is 400 ($ST)"
ST=$(curl -s -o "$T/o" -w "%{http_code}" -H "Content-Type: application/json" -H 'Content-Encoding: deflate' --data-binary "$V2BODY" "$SRV_URL/v2/models/e2e/infer")
[ "$ST" = 400 ]; check $? "corrupt deflate is 400 ($ST)"
ST=$(curl -s -o "$T/o" -w "%{http_code}" -H "Content-Type: application/json" -H 'Content-Encoding: br' --data-binary "$V2BODY" "$SRV_URL/v2/models/e2e/infer")
[ "$ST" = 415 ] && grep -q '"code":"unsupported_content_encoding"' "$T/o"; check $? "Content-Encoding br is 415 ($ST)"
# Accept-Encoding: gzip for responses of 1 KiB and more.
BIG="{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[100,13],\"data\":[$(seq -s, 1 1300 | sed 's/[0-9]*/0.25/g')]},{\"name\":\"sparse\",\"datatype\":\"BYTES\",\"shape\":[100,26],\"data\":[$(seq -s, 1 2600 | sed 's/[0-9]*/"x"/g')]}]}"
H=$(curl -s -D - -o "$T/o.gz" -H 'Accept-Encoding: gzip' -H 'Content-Type: application/json' --data-binary "$BIG" \
    "$SRV_URL/v2/models/e2e/infer" | tr -d '\r')
case "$H" in *"Content-Encoding: gzip"*) ok "a large v2 answer is gzipped for Accept-Encoding: gzip" ;;
    *) fail "no gzip: $H" ;; esac
gzip -dc "$T/o.gz" 2>/dev/null | grep -q '"shape":\[100,1\]'; check $? "the gzipped answer decompresses to the scores"
H=$(curl -s -D - -o /dev/null -H 'Accept-Encoding: gzip' "$SRV_URL/v2/health/live" | tr -d '\r')
case "$H" in *"Content-Encoding"*) fail "a small answer was compressed" ;; *) ok "small answers are not compressed" ;; esac

# --- metrics ----------------------------------------------------------------
req GET /metrics;            expect_status 200 "GET /metrics"
for m in 'ctrd_http_requests_total{endpoint="/v1/score",code="200",model="e2e"}' \
         'ctrd_request_duration_seconds_bucket{endpoint="/v1/score",model="e2e",le=' \
         'ctrd_queue_wait_seconds_bucket{model="e2e",le=' 'ctrd_compute_seconds_count{model="e2e"}' \
         'ctrd_batch_size_examples_bucket{model="e2e",le="1"}' "ctrd_model_info{name=\"e2e\",digest=\"$DIGEST\"" \
         'ctrd_model_reloads_total{result="success",model="e2e"}' 'ctrd_model_reloads_total{result="failure",model="e2e"}' \
         'ctrd_resident_memory_bytes ' 'ctrd_audit_records_total' 'ctrd_audit_dropped_total' \
         'ctrd_audit_lag_records' 'ctrd_queue_examples'; do
    expect_body "$m" "/metrics has $m"
done
RSS=$(printf '%s\n' "$BODY_OUT" | awk '$1 == "ctrd_resident_memory_bytes" {print $2}')
[ "${RSS:-0}" -gt 1000000 ]; check $? "resident memory reported ($RSS bytes)"
HEAP=$(printf '%s\n' "$BODY_OUT" | awk '$1 == "ctrd_heap_in_use_bytes" {print $2}')
# (under ASan the sanitizer's own allocator serves malloc and this reads ~0)
[ -n "$HEAP" ] && [ "$HEAP" -ge 0 ] && [ "$HEAP" -lt "${RSS:-0}" ]
check $? "heap in use reported, below RSS ($HEAP bytes)"
CT=$(curl -s -o /dev/null -w '%{content_type}' "$SRV_URL/metrics")
case "$CT" in text/plain*version=0.0.4*) ok "metrics content type $CT" ;; *) fail "metrics content type $CT" ;; esac

# --- admin ------------------------------------------------------------------
req POST /v1/admin/reload "" -H "Authorization: Bearer $TOKEN"
expect_status 200 "POST /v1/admin/reload with the token"
expect_body '"status":"unchanged"' "reloading the same file keeps the generation"
req POST /v1/admin/reload "";                      expect_status 401 "reload without a token"
expect_code unauthorized "reload without a token"
req POST /v1/admin/reload "" -H "Authorization: Bearer wrong"; expect_status 403 "reload with a wrong token"
expect_code forbidden "reload with a wrong token"
req GET /v1/admin/reload;                          expect_status 405 "GET on the admin endpoint"

# --- routing errors ---------------------------------------------------------
req GET /nope;               expect_status 404 "unknown path"; expect_code not_found "unknown path"
H=$(curl -s -i -X PUT "$SRV_URL/v1/score" | tr -d '\r')
case "$H" in *"405"*"Allow: POST"*) ok "405 with Allow: POST" ;; *) fail "405 without Allow: $H" ;; esac
H=$(curl -s -i -X POST -H 'Content-Type: application/json' -d '{}' "$SRV_URL/healthz" | tr -d '\r')
case "$H" in *"405"*"Allow: GET, HEAD"*) ok "405 with Allow: GET, HEAD" ;; *) fail "405 without Allow: $H" ;; esac

# --- keep-alive: two requests, one connection -------------------------------
NC=$(curl -s -o /dev/null -o /dev/null -w '%{num_connects}\n' -H 'Content-Type: application/json' \
    --data-binary "$(score_body 2)" "$SRV_URL/v1/score" "$SRV_URL/v1/score" | tr '\n' ' ')
[ "$NC" = "1 0 " ]; check $? "keep-alive: second POST reuses the connection (connects: $NC)"
V=$(curl -s -v -o /dev/null -o /dev/null "$SRV_URL/healthz" "$SRV_URL/readyz" 2>&1)
case "$V" in *"Re-using existing connection"*) ok "keep-alive: curl re-uses the connection for GETs" ;;
    *) fail "keep-alive: no connection reuse" ;; esac
case "$V" in *"Connection: close"*) fail "a response said Connection: close" ;;
    *) ok "no Connection: close on normal answers" ;; esac

# --- --check probe ----------------------------------------------------------
"$CTRD" --check "$SRV_URL/readyz";   check $? "--check on /readyz exits 0"
"$CTRD" --check "$SRV_URL/nope" 2>/dev/null; [ $? -eq 1 ]; check $? "--check on a 404 exits 1"
"$CTRD" --check "http://127.0.0.1:1/readyz" 2>/dev/null; [ $? -eq 1 ]; check $? "--check on a closed port exits 1"

# --- start-up log is JSON lines ---------------------------------------------
BAD=$(grep -vc '^{.*}$' "$SRV_LOG")
[ "$BAD" = 0 ]; check $? "every log line is a JSON object ($BAD are not)"
srv_stop TERM
[ "$SRV_RC" = 0 ]; check $? "SIGTERM exits 0 (rc $SRV_RC)"

# --- flags, environment twins, audit flags ----------------------------------
CTRD_MAX_EXAMPLES=2 srv_start env --model "$T/m.ctrm" || exit 1
req POST /v1/score '{"examples":[{},{},{}]}'; expect_status 413 "CTRD_MAX_EXAMPLES=2 limits a request"
srv_stop
CTRD_MAX_EXAMPLES=2 srv_start envflag --model "$T/m.ctrm" --max-examples 3 || exit 1
req POST /v1/score '{"examples":[{},{},{}]}'; expect_status 200 "--max-examples 3 wins over CTRD_MAX_EXAMPLES=2"
srv_stop
CTRD_MODEL="$T/m.ctrm" srv_start audit --audit-dir "$T/audit" --audit-durability fsync \
    --audit-segment-bytes 1m --audit-on-error continue --kernel scalar --log-level debug || exit 1
req POST /v1/score "$(score_body 1)"; expect_status 200 "CTRD_MODEL, audit flags and --kernel scalar accepted"
[ "$(scores_of "$BODY_OUT")" = "$S1" ]; check $? "scalar kernel gives the same score text as auto"
grep -q '"msg":"request"' "$SRV_LOG"; check $? "--log-level debug logs requests"
srv_stop

"$CTRD" --model "$T/m.ctrm" --bogus 2>/dev/null; [ $? -eq 2 ]; check $? "an unknown flag exits 2"
"$CTRD" 2>/dev/null; [ $? -eq 2 ]; check $? "no model exits 2"
"$CTRD" --model "$T/missing.ctrm" --port 0 2>"$T/missing.log"; [ $? -eq 1 ]; check $? "a missing model file exits 1"
grep -q '"msg":"cannot load the model"' "$T/missing.log"; check $? "and says why in the log"
"$CTRD" --help | grep -q CTRD_MAX_BATCH; check $? "--help lists the environment twins"

finish
