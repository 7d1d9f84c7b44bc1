#!/bin/bash
# End to end: hot reload. Under concurrent load, reloads by the admin call
# and by SIGHUP switch the digest in responses with zero failed requests;
# a corrupt, truncated or missing file is refused with the loader's reason
# and the old model keeps serving; the admin endpoint wants its token.
. "$(dirname "$0")/lib_server.sh"

make_model "$T/a.ctrm" 11 e2e
make_model "$T/b.ctrm" 12 e2e
cp "$T/a.ctrm" "$T/cur.ctrm"
TOKEN=reload-token-abcdefghijklmnop
AUTH="Authorization: Bearer $TOKEN"
srv_start reload --model "$T/cur.ctrm" --admin-token "$TOKEN" --max-delay-us 500 || exit 1

req GET /v1/models; DA=$(digest_of "$BODY_OUT")
"$CTRTOOL" synth --help >/dev/null 2>&1
DB=""

served_digest() {
    req GET /v1/models
    digest_of "$BODY_OUT"
}

wait_digest() {  # DIGEST: poll /v1/models up to 10 s
    local i
    for i in $(seq 1 100); do
        [ "$(served_digest)" = "$1" ] && return 0
        sleep 0.1
    done
    return 1
}

# Load: 4 clients x 250 requests (bounded), each line "STATUS DIGEST".
curl_load 250
sleep 0.5

# 1. Admin reload of a new file at the same path.
cp "$T/b.ctrm" "$T/cur.tmp" && mv "$T/cur.tmp" "$T/cur.ctrm"
req POST /v1/admin/reload "" -H "$AUTH"
expect_status 200 "admin reload to model B"
expect_body '"status":"reloaded"' "reload says reloaded"
expect_body "\"previous_digest\":\"$DA\"" "reload names the previous digest"
DB=$(digest_of "$BODY_OUT")
[ -n "$DB" ] && [ "$DB" != "$DA" ]; check $? "digest changed ($DA -> $DB)"
[ "$(served_digest)" = "$DB" ]; check $? "/v1/models serves B"
sleep 0.5

# 2. SIGHUP back to A.
cp "$T/a.ctrm" "$T/cur.tmp" && mv "$T/cur.tmp" "$T/cur.ctrm"
kill -HUP "$SRV_PID"
wait_digest "$DA"; check $? "SIGHUP reloads model A"
sleep 0.5

# 3. Admin reload with an explicit path.
req POST /v1/admin/reload "{\"path\":\"$T/b.ctrm\"}" -H "$AUTH"
expect_status 200 "admin reload with {\"path\": b.ctrm}"
[ "$(served_digest)" = "$DB" ]; check $? "serves B from its own path"
sleep 0.5

# 4. Broken files: the old model keeps serving, the reason is reported.
head -c 100000 "$T/a.ctrm" >"$T/trunc.ctrm"
cp "$T/a.ctrm" "$T/flip.ctrm"
SIZE=$(stat -c %s "$T/flip.ctrm")
printf '\x5a\x5a\x5a\x5a' | dd of="$T/flip.ctrm" bs=1 seek=$((SIZE - 100)) conv=notrunc status=none
printf 'not a model at all' >"$T/junk.ctrm"
for f in trunc flip junk; do
    req POST /v1/admin/reload "{\"path\":\"$T/$f.ctrm\"}" -H "$AUTH"
    expect_status 422 "reload of a $f file is refused"
    expect_code reload_failed "$f file"
    expect_body "still serving $DB" "$f: the answer names the model still serving"
    [ "$(served_digest)" = "$DB" ]; check $? "$f: B still serves"
done
req POST /v1/admin/reload "{\"path\":\"$T/none.ctrm\"}" -H "$AUTH"
case "$ST" in 4??|5??) ok "reload of a missing file -> $ST" ;; *) fail "missing file: $ST $BODY_OUT" ;; esac
expect_code reload_failed "missing file"

# Back to cur.ctrm as the path SIGHUP reloads (a path given to the admin
# call becomes the current one), then corrupt it: SIGHUP fails too.
cp "$T/b.ctrm" "$T/cur.ctrm"
req POST /v1/admin/reload "{\"path\":\"$T/cur.ctrm\"}" -H "$AUTH"
expect_status 200 "reload of the same model from another path"
expect_body '"status":"unchanged"' "same digest: unchanged"
cp "$T/junk.ctrm" "$T/cur.tmp" && mv "$T/cur.tmp" "$T/cur.ctrm"
N0=$(grep -c '"msg":"model reload failed' "$SRV_LOG")
kill -HUP "$SRV_PID"
for i in $(seq 1 50); do
    [ "$(grep -c '"msg":"model reload failed' "$SRV_LOG")" -gt "$N0" ] && break
    sleep 0.1
done
[ "$(grep -c '"msg":"model reload failed' "$SRV_LOG")" -gt "$N0" ]; check $? "a failed SIGHUP reload is logged"
[ "$(served_digest)" = "$DB" ]; check $? "and B still serves"

# 5. Auth.
req POST /v1/admin/reload "";                             expect_status 401 "no token"
req POST /v1/admin/reload "" -H "Authorization: Bearer x"; expect_status 403 "wrong token"
req POST /v1/admin/reload "" -H "Authorization: Bearer ${TOKEN}x"; expect_status 403 "token with an extra byte"
req POST /v1/admin/reload "" -H "Authorization: Basic $TOKEN"; expect_status 401 "not a bearer token"
req POST /v1/admin/reload '{"path":1}' -H "$AUTH";        expect_status 400 "a bad reload body"

wait $PIDS
cat "$T"/load.* >"$T/load.all"
NALL=$(grep -c . "$T/load.all")
NOK=$(grep -c '^200 ' "$T/load.all")
[ "$NALL" -ge 100 ] && [ "$NOK" = "$NALL" ]; check $? "zero failed requests under reloads ($NOK of $NALL got 200)"
grep -v '^200 ' "$T/load.all" | head -n 5
SEEN_A=$(grep -c " $DA\$" "$T/load.all")
SEEN_B=$(grep -c " $DB\$" "$T/load.all")
[ "$SEEN_A" -gt 0 ] && [ "$SEEN_B" -gt 0 ]; check $? "responses carry both digests (A: $SEEN_A, B: $SEEN_B)"

req GET /metrics
OKR=$(printf '%s\n' "$BODY_OUT" | awk '$1 == "ctrd_model_reloads_total{result=\"success\",model=\"e2e\"}" {print $2}')
BADR=$(printf '%s\n' "$BODY_OUT" | awk '$1 == "ctrd_model_reloads_total{result=\"failure\",model=\"e2e\"}" {print $2}')
[ "${OKR:-0}" -ge 3 ] && [ "${BADR:-0}" -ge 5 ]; check $? "reload counters: $OKR successes, $BADR failures"
grep -q '"msg":"model generation retired"' "$SRV_LOG"; check $? "old generations are freed once idle"
srv_stop TERM
[ "$SRV_RC" = 0 ]; check $? "SIGTERM exits 0"

# Without --admin-token the endpoint does not exist.
srv_start noadmin --model "$T/a.ctrm" || exit 1
req POST /v1/admin/reload "" -H "$AUTH"; expect_status 404 "admin off without --admin-token"
expect_code admin_disabled "admin off"
srv_stop
finish
