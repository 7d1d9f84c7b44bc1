#!/bin/bash
# End to end: HTTPS with --tls-cert/--tls-key on a self-signed certificate
# made here: scoring, health, keep-alive over TLS; plain HTTP to the TLS
# port fails; bad TLS settings stop the start with a clear message.
. "$(dirname "$0")/lib_server.sh"

if ! command -v openssl >/dev/null 2>&1; then
    echo "skipped: openssl (the command) is not installed"
    exit 77
fi
make_model "$T/m.ctrm" 6 e2e
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 2 \
    -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" >/dev/null 2>&1 \
    || { echo "openssl could not make a certificate"; exit 1; }

srv_start tls --model "$T/m.ctrm" --tls-cert "$T/cert.pem" --tls-key "$T/key.pem" || exit 1
case "$SRV_URL" in https://*) ok "serving https ($SRV_URL)" ;; *) fail "not https: $SRV_URL" ;; esac
grep -q '"tls":true' "$SRV_LOG"; check $? "the listening line says tls"

ST=$(curl -s --cacert "$T/cert.pem" -o "$T/out" -w '%{http_code}' --max-time 10 "$SRV_URL/readyz")
[ "$ST" = 200 ]; check $? "GET /readyz over TLS, certificate verified ($ST)"
ST=$(curl -s --cacert "$T/cert.pem" -o "$T/out" -w '%{http_code}' --max-time 10 \
    -H 'Content-Type: application/json' --data-binary "$(score_body 3)" "$SRV_URL/v1/score")
[ "$ST" = 200 ] && grep -q '"scores":\[' "$T/out"; check $? "POST /v1/score over TLS ($ST)"
TLS_SCORE=$(sed -n 's/.*"scores":\[\([^]]*\)\].*/\1/p' "$T/out")

NC=$(curl -s --cacert "$T/cert.pem" -o /dev/null -o /dev/null -w '%{num_connects}\n' \
    -H 'Content-Type: application/json' --data-binary "$(score_body 3)" \
    "$SRV_URL/v1/score" "$SRV_URL/v1/score" | tr '\n' ' ')
[ "$NC" = "1 0 " ]; check $? "keep-alive over TLS (connects: $NC)"

ST=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$SRV_PORT/readyz")
[ "$ST" != 200 ]; check $? "plain HTTP to the TLS port does not get 200 ($ST)"
ST=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$SRV_URL/readyz")
[ "$ST" = 000 ]; check $? "an unverified client refuses the self-signed certificate"
"$CTRD" --check "$SRV_URL/readyz" 2>/dev/null; [ $? -eq 2 ]; check $? "--check says https is not supported (exit 2)"
srv_stop
[ "$SRV_RC" = 0 ]; check $? "SIGTERM exits 0"

# The same score as over plain HTTP.
srv_start plain --model "$T/m.ctrm" || exit 1
req POST /v1/score "$(score_body 3)"
[ "$(scores_of "$BODY_OUT")" = "$TLS_SCORE" ]; check $? "TLS and plain HTTP give the same score text"
srv_stop

"$CTRD" --model "$T/m.ctrm" --port 0 --tls-cert "$T/cert.pem" 2>/dev/null; [ $? -eq 2 ]
check $? "--tls-cert without --tls-key exits 2"
"$CTRD" --model "$T/m.ctrm" --port 0 --tls-cert "$T/cert.pem" --tls-key "$T/nokey.pem" 2>"$T/e.log"
[ $? -eq 1 ] && grep -q 'nokey.pem' "$T/e.log"; check $? "a missing key file exits 1 naming it"
printf 'garbage' >"$T/bad.pem"
"$CTRD" --model "$T/m.ctrm" --port 0 --tls-cert "$T/bad.pem" --tls-key "$T/bad.pem" 2>"$T/e2.log"
[ $? -eq 1 ]; check $? "an unusable certificate exits 1"
finish
