#!/bin/bash
# End to end: POST /v1/admin/promote makes the shadow's candidate the
# primary. Under concurrent load (curl clients tracking each answer's digest,
# and ctrload closed loop at once) the promote loses no request: every
# answer is 200, answers switch from the primary's digest to the
# candidate's, and afterwards the primary serves the candidate's file
# (digest, path, scores of `ctrtool score` of the candidate), generation 2,
# the candidate still serves under its own name, ctrd_shadow_active 0 and
# the shadow queue empties. The admin checks are reload's: 401 without a
# bearer token, 403 with a wrong one, 404 admin_disabled without
# --admin-token; 409 no_shadow with no active shadow (a second promote, a
# server without --shadow) or a body naming a model that is not the
# shadow's primary; 404 model_not_found for a name not served; 400 and 415
# for bodies that are not {} or {"primary": "NAME"} in JSON.
# Every answer conforms to docs/openapi.yaml (tests/openapi/validate.js).
# The audit log of the whole run verifies with both models.
. "$(dirname "$0")/lib_server.sh"
. "$(dirname "$0")/lib_shadow.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SPEC="$ROOT/docs/openapi.yaml"
OA="$ROOT/tests/openapi"
command -v node >/dev/null 2>&1 && [ -d "$OA/node_modules/ajv" ] && [ -d "$OA/node_modules/js-yaml" ] ||
    { echo "FAIL: node and the npm packages of tests/openapi are not installed (\`make deps\` installs them)"; exit 1; }

make_model "$T/p.ctrm" 71 ctr
make_model "$T/c.ctrm" 72 ctr
cp "$T/p.ctrm" "$T/cur_p.ctrm"
make_rows 40 4
for m in p c; do
    "$CTRTOOL" score --model "$T/$m.ctrm" --data "$T/rows.tsv" --out "$T/offline_$m.txt" >/dev/null 2>&1 \
        || { echo "ctrtool score $m failed"; exit 1; }
done
TOKEN=promote-token-abcdefghijklmnop
AUTH="Authorization: Bearer $TOKEN"

# promote WHAT STATUS [BODY] [curl args...]: POST /v1/admin/promote, its
# answer in $T/h, $T/b, BODY_OUT and ST, validated against the document.
promote() {
    local what=$1 want=$2 body=${3-} why ct="Content-Type: application/json"
    shift 2; [ $# -gt 0 ] && shift
    case "$*" in *Content-Type:*) ct="X-No-Default-Type: 1" ;; esac
    if [ -n "$body" ]; then
        ST=$(curl -s -D "$T/h" -o "$T/b" -w '%{http_code}' --max-time 30 -X POST \
            -H "$ct" --data-binary "$body" "$@" "$SRV_URL/v1/admin/promote")
    else
        ST=$(curl -s -D "$T/h" -o "$T/b" -w '%{http_code}' --max-time 30 -X POST "$@" "$SRV_URL/v1/admin/promote")
    fi
    BODY_OUT=$(cat "$T/b")
    expect_status "$want" "$what"
    if why=$(node "$OA/validate.js" "$SPEC" POST /v1/admin/promote "$ST" "$T/h" "$T/b" 2>&1); then
        ok "$what: the $ST answer conforms to docs/openapi.yaml"
    else
        fail "$what: $why; body: $(head -c 300 "$T/b")"
    fi
}

served() {  # NAME: its digest in /v1/models
    req GET /v1/models
    printf '%s' "$BODY_OUT" | grep -o "\"name\":\"$1\",\"digest\":\"[^\"]*\"" | sed 's/.*"digest":"//; s/"$//'
}

# --- admin off, no shadow -------------------------------------------------------
srv_start noadmin --model "ctr=$T/p.ctrm" --model "next=$T/c.ctrm" --shadow next:ctr --no-audit || exit 1
promote "promote without --admin-token" 404 "" -H "$AUTH"
expect_code admin_disabled "promote without --admin-token"
srv_stop
srv_start noshadow --model "ctr=$T/p.ctrm" --model "next=$T/c.ctrm" --admin-token "$TOKEN" --no-audit || exit 1
promote "promote with no --shadow" 409 "" -H "$AUTH"
expect_code no_shadow "promote with no --shadow"
[ "$(served ctr)" = "$(served ctr)" ] && [ -n "$(served ctr)" ]; check $? "the primary still serves"
srv_stop

# --- the rollout ------------------------------------------------------------------
srv_start main --model "ctr=$T/cur_p.ctrm" --model "next=$T/c.ctrm" --shadow next:ctr --shadow-sample 1.0 \
    --admin-token "$TOKEN" --audit-dir "$T/audit" --threads 2 --max-delay-us 500 || exit 1
DP=$(served ctr); DC=$(served next)
[ -n "$DP" ] && [ -n "$DC" ] && [ "$DP" != "$DC" ]; check $? "ctr ($DP) and next ($DC) served"

promote "promote with no Authorization" 401 "" 
grep -qi '^WWW-Authenticate: Bearer' "$T/h"; check $? "401 carries WWW-Authenticate: Bearer"
promote "promote with a wrong token" 403 "" -H "Authorization: Bearer x"
promote "promote with the token and one extra byte" 403 "" -H "Authorization: Bearer ${TOKEN}x"
promote "promote with a Basic header" 401 "" -H "Authorization: Basic $TOKEN"
promote "promote with a body that is not JSON" 400 'not json' -H "$AUTH"
promote "promote with \"primary\" not a string" 400 '{"primary":1}' -H "$AUTH"
promote "promote with an unknown member" 400 '{"model":"ctr"}' -H "$AUTH"
expect_code bad_request "promote with an unknown member"
promote "promote with a body of another media type" 415 '{}' -H "$AUTH" -H 'Content-Type: text/plain'
promote "promote naming the candidate as the primary" 409 '{"primary":"next"}' -H "$AUTH"
expect_code no_shadow "promote naming a served model that is not the shadow's primary"
promote "promote naming a model not served" 404 '{"primary":"nope"}' -H "$AUTH"
expect_code model_not_found "promote naming a model not served"
[ "$(served ctr)" = "$DP" ]; check $? "refused promotes changed nothing"
shadow_metrics
[ "$(smetric ctrd_shadow_active)" = 1 ]; check $? "the shadow is still active"

# Load: 4 curl clients x 150 requests (bounded in count and time), each line
# "STATUS DIGEST", and ctrload at 400 requests/s (open loop) for 6 s.
curl_load 150
"$CTRLOAD" --url "$SRV_URL" --rate 400 --connections 8 --duration 6s --warmup 0s --timeout 5s --quiet \
    --json "$T/ctrload.json" >"$T/ctrload.out" 2>&1 &
LPID=$!
sleep 1.5
promote "promote under load, naming the primary" 200 '{"primary":"ctr"}' -H "$AUTH"
expect_body '"promoted":true' "the answer says promoted"
expect_body '"primary":"ctr"' "... names the primary"
expect_body '"candidate":"next"' "... and the candidate"
expect_body "\"digest\":\"$DC\"" "... the new digest is the candidate's"
expect_body "\"previous_digest\":\"$DP\"" "... the previous one the primary's"
expect_body '"generation":2' "... generation 2"
expect_body '"elapsed_ms":' "... with the time it took"
[ "$(served ctr)" = "$DC" ]; check $? "/v1/models: ctr now serves the candidate's digest"
[ "$(served next)" = "$DC" ]; check $? "/v1/models: next still serves under its own name"
shadow_metrics
[ "$(smetric ctrd_shadow_active)" = 0 ]; check $? "ctrd_shadow_active 0 after the promote"
promote "a second promote" 409 "" -H "$AUTH"
expect_code no_shadow "a second promote"
[ -z "$PIDS" ] || wait $PIDS
wait $LPID; LRC=$?
cat "$T"/load.* >"$T/load.all"
NALL=$(grep -c . "$T/load.all"); NOK=$(grep -c '^200 ' "$T/load.all")
[ "$NALL" -ge 100 ] && [ "$NOK" = "$NALL" ]; check $? "curl clients: zero failed requests through the promote ($NOK of $NALL got 200)"
grep -v '^200 ' "$T/load.all" | head -n 5
SEEN_P=$(grep -c " $DP\$" "$T/load.all"); SEEN_C=$(grep -c " $DC\$" "$T/load.all")
[ "$SEEN_P" -gt 0 ] && [ "$SEEN_C" -gt 0 ] && [ $((SEEN_P + SEEN_C)) = "$NALL" ]
check $? "answers carry the primary's digest, then the candidate's (P: $SEEN_P, C: $SEEN_C)"
# Once an answer names the candidate's digest, no later answer of that
# client names the primary's.
back=0
for c in 1 2 3 4; do
    awk -v p="$DP" -v c="$DC" '$2 == c { seen = 1 } $2 == p && seen { bad = 1 } END { exit bad }' "$T/load.$c" || back=1
done
[ $back = 0 ]; check $? "no client saw the old digest after the new one"
"$PY" - "$T/ctrload.json" <<'PY' >"$T/ctrload_cmp.txt"
import json, sys
j = json.load(open(sys.argv[1]))
st = j.get("status", {})
errs = sum(v for k, v in j.get("errors", {}).items() if isinstance(v, (int, float)) and not k.startswith("server_closed"))
n200 = st.get("200", 0)
other = sum(v for k, v in st.items() if k != "200")
print("%d %d %d" % (n200, other, errs))
PY
read -r L200 LOTHER LERR <"$T/ctrload_cmp.txt"
[ "$LRC" = 0 ] && [ "${L200:-0}" -gt 0 ] && [ "$LOTHER" = 0 ] && [ "$LERR" = 0 ]
check $? "ctrload through the promote: $L200 answered 200, $LOTHER other statuses, $LERR errors (exit $LRC)"

# After: the primary scores as the candidate does, from the candidate's file.
send_rows after
[ "$SENT_OK" = "$SENT_REQ" ] && cmp -s "$T/offline_c.txt" "$T/after.txt"
check $? "ctr's answers now equal ctrtool score of the candidate's file ($SENT_OK of $SENT_REQ requests)"
req GET /v1/models
printf '%s' "$BODY_OUT" | grep -q "\"name\":\"ctr\",\"digest\":\"$DC\",\"generation\":2"; check $? "ctr at generation 2"
printf '%s' "$BODY_OUT" | grep -o '"name":"ctr",[^}]*"path":"[^"]*"' | grep -q "\"path\":\"$T/c.ctrm\""
check $? "ctr's path is now the candidate's file"
# The shadow queue empties, it never waits for the promote.
for i in $(seq 1 100); do
    shadow_metrics
    [ "$(smetric ctrd_shadow_queue_examples)" = 0 ] && break
    sleep 0.1
done
[ "$(smetric ctrd_shadow_queue_examples)" = 0 ]; check $? "the shadow queue is empty after the promote"
C0=$(smetric ctrd_shadow_examples_total); S0=$(smetric ctrd_shadow_requests_sampled_total)
req POST /v1/score "$(score_body 1)"
sleep 0.3; shadow_metrics
[ "$(smetric ctrd_shadow_examples_total)" = "$C0" ] && [ "$(smetric ctrd_shadow_requests_sampled_total)" = "$S0" ]
check $? "nothing more is sampled or compared once promoted"
[ "$(smetric ctrd_model_reloads_total result=success model=ctr)" = 1 ]; check $? "the promote counts as one reload of ctr"
[ "$(smetric ctrd_model_generation model=ctr)" = 2 ]; check $? "ctrd_model_generation{model=ctr} 2"
[ "$(smetric ctrd_model_generation model=next)" = 1 ]; check $? "the candidate's own generation is untouched"
SAMPLED_EX=$(smetric ctrd_shadow_examples_total); DROPPED=$(smetric ctrd_shadow_dropped_examples_total)
INACT=$(smetric ctrd_shadow_dropped_examples_total reason=inactive)
log "shadow before the promote: $SAMPLED_EX examples compared, $DROPPED dropped ($INACT of them queued at the promote: inactive)"
# SIGHUP now reloads ctr from the candidate's path: same digest, kept.
N0=$(grep -c 'same digest, kept","model":"ctr"' "$SRV_LOG")
kill -HUP "$SRV_PID"
for i in $(seq 1 100); do
    [ "$(grep -c 'same digest, kept","model":"ctr"' "$SRV_LOG")" -gt "$N0" ] && break
    sleep 0.1
done
[ "$(grep -c 'same digest, kept","model":"ctr"' "$SRV_LOG")" -gt "$N0" ] && [ "$(served ctr)" = "$DC" ]
check $? "SIGHUP after the promote keeps the candidate's file as ctr"
grep -q '"msg":"[^"]*promot' "$SRV_LOG"; check $? "the promote is logged: $(grep -o '"msg":"[^"]*promot[^"]*"' "$SRV_LOG" | head -n 1)"
srv_stop
[ "$SRV_RC" = 0 ]; check $? "SIGTERM exits 0"

"$CTRTOOL" audit verify --model "$T/p.ctrm" --model "$T/c.ctrm" "$T/audit" >"$T/verify.out" 2>&1
check $? "audit verify of the whole run with both models: exit 0"
grep -q '^verified=[1-9][0-9]* mismatched=0 ' "$T/verify.out"; check $? "0 mismatched: $(grep '^verified=' "$T/verify.out")"
finish
