#!/bin/bash
# End to end: Triton's binary tensor data extension on POST /v2/.../infer
# (docs/API.md "Binary tensor data"). Every request is sent both as JSON and
# as binary (FP32/FP64/INT64 dense, BYTES/INT64 sparse, binary and JSON
# outputs) and the score bits must be equal; hostile binary bodies get 400
# with a named error and harm nothing; the audit log of binary requests
# replays with 0 mismatches and records the same values as the JSON form.
. "$(dirname "$0")/lib_server.sh"
if ! command -v python3 >/dev/null 2>&1; then
    echo "FAIL: python3 is not installed (\`make deps\` installs it)"; exit 1
fi
PY="python3 $(dirname "$0")/binary_v2.py"

make_model "$T/m.ctrm" 1 e2e
srv_start bin --model "$T/m.ctrm" --threads 2 --audit-dir "$T/audit" --max-delay-us 300 || exit 1

req GET /v2; expect_status 200 "GET /v2"
expect_body '"extensions":["binary_tensor_data"]' "/v2 advertises binary_tensor_data"

OUT=$($PY pairs "$SRV_PORT" e2e 90 2>&1); RC=$?
printf '%s\n' "$OUT" | tail -n 5
check $RC "90 requests, JSON and binary forms: same score bits"

# curl with --data-binary, as docs/API.md shows.
$PY write "$T" 64 || fail "write the 64-example bodies"
HL=$(cat "$T/req.bin.hlen")
ST=$(curl -s -o "$T/out.bin" -D "$T/hdrs" -w '%{http_code}' --max-time 10 \
    -H 'Content-Type: application/json' -H "Inference-Header-Content-Length: $HL" \
    --data-binary @"$T/req.bin" "$SRV_URL/v2/models/e2e/infer")
[ "$ST" = 200 ]; check $? "curl --data-binary @req.bin -> $ST"
ST=$(curl -s -o "$T/out.json" -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
    --data-binary @"$T/req.json" "$SRV_URL/v2/models/e2e/infer")
[ "$ST" = 200 ]; check $? "the same request as JSON -> $ST"
cmp -s "$T/out.bin" "$T/out.json"; check $? "binary input, JSON output: the same answer bytes as JSON input"
# Triton's HTTP client sets no Content-Type on a binary request; others send
# application/octet-stream: both are the binary form, with the same answer.
for ct in 'Content-Type:' 'Content-Type: application/octet-stream'; do
    ST=$(curl -s -o "$T/out3.bin" -w '%{http_code}' --max-time 10 -H "$ct" \
        -H "Inference-Header-Content-Length: $HL" \
        --data-binary @"$T/req.bin" "$SRV_URL/v2/models/e2e/infer")
    [ "$ST" = 200 ] && cmp -s "$T/out3.bin" "$T/out.json"
    check $? "binary request with [$ct] -> $ST, the same answer"
done
! grep -qi '^inference-header-content-length' "$T/hdrs"; check $? "no Inference-Header-Content-Length on a JSON answer"

# Binary output asked by the request: header, Content-Type, sizes.
ST=$(curl -s -o "$T/out2.bin" -D "$T/hdrs2" -w '%{http_code}' --max-time 10 \
    -H 'Content-Type: application/json' --data-binary \
    '{"inputs":[{"name":"dense","datatype":"FP32","shape":[1,13],"data":[1,2,3,4,5,6,7,8,9,10,11,12,13]},{"name":"sparse","datatype":"INT64","shape":[1,26],"data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26]}],"outputs":[{"name":"score","parameters":{"binary_data":true}}]}' \
    "$SRV_URL/v2/models/e2e/infer")
[ "$ST" = 200 ]; check $? "JSON request asking a binary output -> $ST"
OHL=$(tr -d '\r' <"$T/hdrs2" | awk -F': ' 'tolower($1)=="inference-header-content-length"{print $2}')
OCT=$(tr -d '\r' <"$T/hdrs2" | awk -F': ' 'tolower($1)=="content-type"{print $2}')
SZ=$(stat -c %s "$T/out2.bin")
[ -n "$OHL" ] && [ "$SZ" -eq $((OHL + 4)) ]; check $? "binary answer: JSON header of $OHL bytes + 4 bytes of score ($SZ)"
[ "$OCT" = application/octet-stream ]; check $? "binary answer Content-Type application/octet-stream ($OCT)"
head -c "$OHL" "$T/out2.bin" | grep -q '"parameters":{"binary_data_size":4}'; check $? "binary answer header has binary_data_size 4"
! head -c "$OHL" "$T/out2.bin" | grep -q '"data"'; check $? "binary answer header has no data"

OUT=$($PY hostile "$SRV_PORT" e2e 2>&1); RC=$?
printf '%s\n' "$OUT" | grep -v '^ok:'
check $RC "hostile binary bodies: 400 with a named error, server unharmed"
kill -0 "$SRV_PID" 2>/dev/null; check $? "ctrd still running"
req GET /readyz; expect_status 200 "ready after the hostile bodies"

srv_stop TERM 30
[ "$SRV_RC" = 0 ]; check $? "clean exit ($SRV_RC)"
OUT=$("$CTRTOOL" audit verify --model "$T/m.ctrm" "$T/audit" 2>&1); RC=$?
printf '%s\n' "$OUT" | tail -n 3
check $RC "audit verify of the binary and JSON requests exits 0"
printf '%s\n' "$OUT" | grep -q 'verified=[1-9][0-9]* mismatched=0 '; check $? "audit verify: 0 mismatches"

# The audit records of each binary request hold the same values as its
# JSON twin's: dump them and compare, request by request (ids pair-K).
"$CTRTOOL" audit dump "$T/audit" >"$T/dump" 2>&1; check $? "audit dump"
python3 - "$T/dump" <<'PYEOF'
import json, sys
recs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if str(r.get("request_id", "")).startswith("pair-"):
        recs.setdefault(r["request_id"], []).append(r)
keys = ("n", "n_dense", "n_cat", "dense", "cat", "scores", "model")
bad = [k for k, v in recs.items() if len(v) != 2 or any(v[0].get(x) != v[1].get(x) for x in keys)]
print("audit: %d request ids with a JSON and a binary record, %d differ" % (len(recs), len(bad)))
sys.exit(1 if bad or len(recs) != 90 else 0)
PYEOF
check $? "audit records of each binary request equal its JSON twin's (values and scores)"
finish
