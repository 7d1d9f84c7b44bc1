#!/bin/bash
# End to end: a live ctrd's answers conform to docs/openapi.yaml, checked
# by real OpenAPI validators, and /metrics passes `promtool check metrics`.
#
# 1. Through @stoplight/prism-cli (pinned in tests/openapi/package.json,
#    installed by scripts/deps.sh) run as a validating proxy with --errors:
#    prism forwards each request to ctrd and validates the answer against
#    the document; a violation turns the answer into prism's own 500 (and an
#    sl-violations header), so every check wants ctrd's own status, no
#    sl-violations header and not prism's application/problem+json.
# 2. What prism cannot forward (a path or method the document does not
#    have, requests it refuses itself: no Content-Type, a gzip body, a
#    media type other than the document's, no bearer token; 503 while
#    draining, which only connections opened before the drain see) is sent
#    to ctrd directly and its answer validated by tests/openapi/validate.js
#    (ajv) against the same document. Every answer through prism is also
#    checked by validate.js.
# Good and bad requests on every path, v1 and v2, versioned paths, both
# error forms. A missing tool is a failure, never a skip.
. "$(dirname "$0")/lib_server.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SPEC="$ROOT/docs/openapi.yaml"
OA="$ROOT/tests/openapi"
PRISM="$OA/node_modules/.bin/prism"
for tool in node promtool python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "FAIL: $tool is not installed (\`make deps\` installs it)"; exit 1; }
done
[ -x "$PRISM" ] && [ -d "$OA/node_modules/ajv" ] && [ -d "$OA/node_modules/js-yaml" ] ||
    { echo "FAIL: the npm packages of tests/openapi are not installed (\`make deps\` runs npm ci)"; exit 1; }

make_model "$T/m.ctrm" 3 e2e
TOKEN=openapi-admin-token-0123456789
srv_start main --model "$T/m.ctrm" --admin-token "$TOKEN" --threads 2 --max-examples 4 \
    --max-body-bytes 65536 --drain-timeout-s 20 || exit 1

# --- prism as a validating proxy in front of it ---------------------------
PPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$PRISM" proxy "$SPEC" "$SRV_URL" --errors -h 127.0.0.1 -p "$PPORT" >"$T/prism.log" 2>&1 &
PRISM_PID=$!
_srv_all_pids="$_srv_all_pids $PRISM_PID"
PURL="http://127.0.0.1:$PPORT"
for i in $(seq 1 120); do    # <= 60 s: prism reads and compiles the document
    grep -q "Prism is listening" "$T/prism.log" && break
    kill -0 "$PRISM_PID" 2>/dev/null || break
    sleep 0.5
done
if ! grep -q "Prism is listening" "$T/prism.log"; then
    echo "FAIL: prism proxy did not start:"; cat "$T/prism.log"; exit 1
fi
ok "prism proxy validates against docs/openapi.yaml on port $PPORT"

# validate WHAT STATUS METHOD TEMPLATE: the answer in $T/h, $T/b against the
# document (METHOD - and TEMPLATE '#/components/responses/X' for a path the
# document does not have).
validate() {
    local why
    if why=$(node "$OA/validate.js" "$SPEC" "$3" "$4" "$2" "$T/h" "$T/b" 2>&1); then
        ok "$1: $2 conforms (ajv)"
    else
        fail "$1: $why; body: $(head -c 300 "$T/b")"
    fi
}

# via WHAT STATUS METHOD TEMPLATE PATH [curl args...]: through prism.
via() {
    local what=$1 want=$2 method=$3 tpl=$4 path=$5
    shift 5
    local st
    st=$(curl -s -D "$T/h" -o "$T/b" -w '%{http_code}' --max-time 20 -X "$method" \
        -H 'Accept-Encoding: identity' "$@" "$PURL$path")
    if [ "$st" != "$want" ]; then
        fail "$what: status $st through prism, want $want: $(head -c 400 "$T/b")"
    elif grep -qi '^sl-violations:' "$T/h"; then
        fail "$what: prism found violations: $(grep -i '^sl-violations:' "$T/h" | head -c 600)"
    elif grep -qi '^content-type: application/problem+json' "$T/h"; then
        fail "$what: prism answered itself: $(head -c 400 "$T/b")"
    else
        ok "$what: $st through the validating proxy"
    fi
    validate "$what" "$want" "$method" "$tpl"
}

# direct WHAT STATUS METHOD TEMPLATE PATH [curl args...]: to ctrd, then ajv.
# METHOD SENT:DOCUMENTED (PUT:POST) sends one method and validates against
# the answer documented for another (a 405 is in the operation the path has).
direct() {
    local what=$1 want=$2 method=$3 tpl=$4 path=$5
    shift 5
    curl -s -D "$T/h" -o "$T/b" --max-time 20 -X "${method%%:*}" "$@" "$SRV_URL$path" >/dev/null
    validate "$what" "$want" "${method#*:}" "$tpl"
}

JSON=(-H 'Content-Type: application/json')
req GET /v1/models
DIGEST=$(digest_of "$BODY_OUT")
SHORT=${DIGEST#sha256:}; SHORT=${SHORT:0:12}
DENSE=$(seq -s, 1 26 | sed 's/[0-9]*/0.5/g')
SPARSE=$(for i in $(seq 1 52); do printf '"v%d",' "$i"; done | sed 's/,$//')
V2BODY="{\"id\":\"oa-1\",\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[2,13],\"data\":[$DENSE]},{\"name\":\"sparse\",\"datatype\":\"BYTES\",\"shape\":[2,26],\"data\":[$SPARSE]}]}"
V2BAD='{"inputs":[{"name":"dense","datatype":"FP32","shape":[1,12],"data":[1,2,3,4,5,6,7,8,9,10,11,12]}]}'
V2MANY="{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[5,13],\"data\":[$(seq -s, 1 65)]},{\"name\":\"sparse\",\"datatype\":\"BYTES\",\"shape\":[5,26],\"data\":[$(seq -s, 1 130 | sed 's/[0-9]*/"a"/g')]}]}"
I='/v2/models/{name}/infer'
VI='/v2/models/{name}/versions/{version}/infer'

# --- health, metadata, metrics --------------------------------------------
via "GET /healthz" 200 GET /healthz /healthz
via "GET /readyz" 200 GET /readyz /readyz
via "GET /v1/models" 200 GET /v1/models /v1/models
via "GET /metrics" 200 GET /metrics /metrics
via "GET /v2" 200 GET /v2 /v2
via "GET /v2/" 200 GET /v2/ /v2/
via "GET /v2/health/live" 200 GET /v2/health/live /v2/health/live
via "GET /v2/health/ready" 200 GET /v2/health/ready /v2/health/ready
via "GET /v2/models/e2e" 200 GET '/v2/models/{name}' /v2/models/e2e
via "GET /v2/models/nope" 404 GET '/v2/models/{name}' /v2/models/nope
via "GET /v2/models/e2e/ready" 200 GET '/v2/models/{name}/ready' /v2/models/e2e/ready
via "GET /v2/models/nope/ready" 404 GET '/v2/models/{name}/ready' /v2/models/nope/ready
for v in "$DIGEST" "$SHORT"; do
    via "GET versions/$v" 200 GET '/v2/models/{name}/versions/{version}' "/v2/models/e2e/versions/$v"
    via "GET versions/$v/ready" 200 GET '/v2/models/{name}/versions/{version}/ready' "/v2/models/e2e/versions/$v/ready"
    via "POST versions/$v/infer" 200 POST "$VI" "/v2/models/e2e/versions/$v/infer" "${JSON[@]}" --data-binary "$V2BODY"
done
via "GET an unknown version" 404 GET '/v2/models/{name}/versions/{version}' /v2/models/e2e/versions/7
via "GET an unknown version's readiness" 404 GET '/v2/models/{name}/versions/{version}/ready' /v2/models/e2e/versions/7/ready
via "GET a version of an unknown model" 404 GET '/v2/models/{name}/versions/{version}' "/v2/models/nope/versions/$SHORT"
via "infer on an unknown version" 404 POST "$VI" /v2/models/e2e/versions/sha256:00/infer "${JSON[@]}" --data-binary "$V2BODY"
via "infer with a bad shape, versioned" 400 POST "$VI" "/v2/models/e2e/versions/$SHORT/infer" "${JSON[@]}" --data-binary "$V2BAD"

# --- scoring, v2 and v1 ----------------------------------------------------
via "POST infer" 200 POST "$I" /v2/models/e2e/infer "${JSON[@]}" --data-binary "$V2BODY"
via "infer on an unknown model" 404 POST "$I" /v2/models/nope/infer "${JSON[@]}" --data-binary "$V2BODY"
via "infer with a bad shape" 400 POST "$I" /v2/models/e2e/infer "${JSON[@]}" --data-binary "$V2BAD"
via "infer with an unknown input" 400 POST "$I" /v2/models/e2e/infer "${JSON[@]}" \
    --data-binary '{"inputs":[{"name":"wide","datatype":"FP32","shape":[1,1],"data":[1]}]}'
via "infer over --max-examples" 413 POST "$I" /v2/models/e2e/infer "${JSON[@]}" --data-binary "$V2MANY"
via "POST /v1/score" 200 POST /v1/score /v1/score "${JSON[@]}" --data-binary "$(score_body 1)"
via "score an unknown feature" 400 POST /v1/score /v1/score "${JSON[@]}" --data-binary '{"examples":[{"Z9":1}]}'
via "score a string as a dense value" 400 POST /v1/score /v1/score "${JSON[@]}" --data-binary '{"examples":[{"I1":"x"}]}'
via "score over --max-examples" 413 POST /v1/score /v1/score "${JSON[@]}" --data-binary '{"examples":[{},{},{},{},{}]}'
via "score with model named" 200 POST /v1/score /v1/score "${JSON[@]}" --data-binary '{"model":"e2e","examples":[{"I1":1}]}'
via "score with model null" 200 POST /v1/score /v1/score "${JSON[@]}" --data-binary '{"model":null,"examples":[{"I1":1}]}'
via "score an unknown model" 404 POST /v1/score /v1/score "${JSON[@]}" --data-binary '{"model":"nope","examples":[{"I1":1}]}'

# --- admin --------------------------------------------------------------------
via "reload with the token" 200 POST /v1/admin/reload /v1/admin/reload -H "Authorization: Bearer $TOKEN"
via "reload with a wrong token" 403 POST /v1/admin/reload /v1/admin/reload -H "Authorization: Bearer wrong"
via "reload a missing file" 500 POST /v1/admin/reload /v1/admin/reload -H "Authorization: Bearer $TOKEN" \
    "${JSON[@]}" --data-binary "{\"path\":\"$T/none.ctrm\"}"
printf 'not a model' >"$T/bad.ctrm"
via "reload a corrupt file" 422 POST /v1/admin/reload /v1/admin/reload -H "Authorization: Bearer $TOKEN" \
    "${JSON[@]}" --data-binary "{\"path\":\"$T/bad.ctrm\"}"
via "reload a model by name" 200 POST /v1/admin/reload /v1/admin/reload -H "Authorization: Bearer $TOKEN" \
    "${JSON[@]}" --data-binary '{"model":"e2e"}'
via "reload an unknown model" 404 POST /v1/admin/reload /v1/admin/reload -H "Authorization: Bearer $TOKEN" \
    "${JSON[@]}" --data-binary '{"model":"nope"}'
direct "reload without a token" 401 POST /v1/admin/reload /v1/admin/reload
direct "reload with a bad body" 400 POST /v1/admin/reload /v1/admin/reload -H "Authorization: Bearer $TOKEN" \
    "${JSON[@]}" --data-binary '{"file":1}'

# --- what prism cannot forward: routing errors, media types, encodings -----
direct "GET /nope" 404 - '#/components/responses/V1NotFound' /nope
direct "GET /v1/nope" 404 - '#/components/responses/V1NotFound' /v1/nope
direct "GET /v2/nope" 404 - '#/components/responses/V2NotFound' /v2/nope
direct "GET /v2/models/e2e/versions/$SHORT/nope" 404 - '#/components/responses/V2NotFound' "/v2/models/e2e/versions/$SHORT/nope"
direct "PUT /v1/score" 405 PUT:POST /v1/score /v1/score
direct "POST /healthz" 405 POST:GET /healthz /healthz "${JSON[@]}" -d '{}'
direct "DELETE /v2" 405 DELETE:GET /v2 /v2
direct "PUT infer" 405 PUT:POST "$I" /v2/models/e2e/infer
direct "PUT versioned infer" 405 PUT:POST "$VI" "/v2/models/e2e/versions/$SHORT/infer"
direct "score without a body" 411 POST /v1/score /v1/score
direct "infer without a body" 411 POST "$I" /v2/models/e2e/infer
direct "score as text/plain" 415 POST /v1/score /v1/score -H 'Content-Type: text/plain' --data-binary "$(score_body 1)"
direct "score without Content-Type" 415 POST /v1/score /v1/score -H 'Content-Type:' --data-binary "$(score_body 1)"
direct "infer as text/plain" 415 POST "$I" /v2/models/e2e/infer -H 'Content-Type: text/plain' --data-binary "$V2BODY"
direct "infer without Content-Type" 200 POST "$I" /v2/models/e2e/infer -H 'Content-Type:' --data-binary "$V2BODY"
direct "infer as octet-stream without the header length" 415 POST "$I" /v2/models/e2e/infer \
    -H 'Content-Type: application/octet-stream' --data-binary "$V2BODY"
direct "score malformed JSON" 400 POST /v1/score /v1/score "${JSON[@]}" --data-binary '{"examples":[{'
direct "infer malformed JSON" 400 POST "$I" /v2/models/e2e/infer "${JSON[@]}" --data-binary '{"inputs":'
head -c 70000 /dev/zero | tr '\0' ' ' >"$T/big.json"
direct "score over --max-body-bytes" 413 POST /v1/score /v1/score "${JSON[@]}" --data-binary "@$T/big.json"
direct "infer over --max-body-bytes" 413 POST "$I" /v2/models/e2e/infer "${JSON[@]}" --data-binary "@$T/big.json"
printf '%s' "$V2BODY" | gzip -c >"$T/b.gz"
direct "infer, gzip body" 200 POST "$I" /v2/models/e2e/infer "${JSON[@]}" -H 'Content-Encoding: gzip' --data-binary "@$T/b.gz"
direct "versioned infer, gzip body" 200 POST "$VI" "/v2/models/e2e/versions/$DIGEST/infer" "${JSON[@]}" \
    -H 'Content-Encoding: gzip' --data-binary "@$T/b.gz"
head -c 1000000 /dev/zero | gzip -c >"$T/bomb.gz"
direct "infer, gzip bomb" 413 POST "$I" /v2/models/e2e/infer "${JSON[@]}" -H 'Content-Encoding: gzip' --data-binary "@$T/bomb.gz"
direct "infer, corrupt deflate" 400 POST "$I" /v2/models/e2e/infer "${JSON[@]}" -H 'Content-Encoding: deflate' --data-binary "$V2BODY"
direct "infer, Content-Encoding br" 415 POST "$I" /v2/models/e2e/infer "${JSON[@]}" -H 'Content-Encoding: br' --data-binary "$V2BODY"

# --- /metrics: promtool -------------------------------------------------------
curl -s --max-time 5 "$SRV_URL/metrics" >"$T/metrics.txt"
if OUT=$(promtool check metrics <"$T/metrics.txt" 2>&1); then
    ok "promtool check metrics: no problems ($(grep -c '^ctrd_' "$T/metrics.txt") samples)"
else
    fail "promtool check metrics: $OUT"
fi

# --- 503 draining: connections opened before SIGTERM ------------------------
exec 3<>/dev/tcp/127.0.0.1/"$SRV_PORT"
exec 4<>/dev/tcp/127.0.0.1/"$SRV_PORT"
exec 5<>/dev/tcp/127.0.0.1/"$SRV_PORT"
exec 6<>/dev/tcp/127.0.0.1/"$SRV_PORT"
SLOW=$(score_body 9)
# An upload in flight keeps the drain open while the others ask.
printf 'POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
    "${#SLOW}" "${SLOW:0:10}" >&6
sleep 0.2
kill -TERM "$SRV_PID"
for i in $(seq 1 50); do grep -q '"msg":"draining"' "$SRV_LOG" && break; sleep 0.1; done
raw_answer() {  # FD: split a raw answer into $T/h and $T/b
    timeout 5 cat <&"$1" >"$T/raw"
    python3 - "$T/raw" "$T/h" "$T/b" <<'EOF'
import sys
raw = open(sys.argv[1], 'rb').read()
head, _, body = raw.partition(b'\r\n\r\n')
open(sys.argv[2], 'wb').write(head + b'\r\n\r\n')
open(sys.argv[3], 'wb').write(body)
EOF
}
# All three ask at once: a connection left idle while the others' answers
# are read can pass --header-timeout-ms (5 s from accept) on a loaded
# machine, and ctrd then closes it (seen: a broken pipe on fd 5).
printf 'GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n' >&3
printf 'GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n' >&4
printf 'POST /v2/models/e2e/versions/%s/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
    "$SHORT" "${#V2BODY}" "$V2BODY" >&5
raw_answer 3
validate "GET /v2/health/ready while draining" 503 GET /v2/health/ready
raw_answer 4
validate "GET /readyz while draining" 503 GET /readyz
raw_answer 5
validate "versioned infer while draining" 503 POST "$VI"
printf '%s' "${SLOW:10}" >&6
timeout 5 cat <&6 >/dev/null
exec 3>&- 4>&- 5>&- 6>&-
srv_stop TERM
[ "$SRV_RC" = 0 ]; check $? "ctrd exits 0 after the drain (rc $SRV_RC)"

kill "$PRISM_PID" 2>/dev/null
wait "$PRISM_PID" 2>/dev/null
finish
