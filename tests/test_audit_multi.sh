#!/bin/bash
# End to end: the tools on the audit log of a ctrd serving several models.
# Records carry the digest of the generation that scored them, not the
# served name, so the tools match them to model files:
# - `audit dump --requests --model [NAME=]PATH ...` writes each record of a
#   given file's digest with "model": NAME, skips (and counts on stderr)
#   the others; one bare --model keeps the old output (every record, no
#   "model"); one name for two files of one digest is refused.
# - Replaying that dump with ctrload --replay to a fresh ctrd sends each
#   request to the model that scored it: the new log holds every request
#   under its old digest with the same score bits.
# - `audit pd --digest D | --primary M` compares one model's traffic only
#   and says how many records of other models it skipped.
# - `audit verify` takes 16 models and refuses a 17th.
# - ctrload --model-name NAME puts "model" in v1 bodies: the load lands on
#   that model only.
. "$(dirname "$0")/lib_server.sh"

make_model "$T/a.ctrm" 41 alpha
make_model "$T/b.ctrm" 42 beta
make_model "$T/b2.ctrm" 43 beta
cp "$T/b.ctrm" "$T/cur_b.ctrm"
TOKEN=audit-multi-token-abcdefghij
N=30

srv_start log --model "$T/a.ctrm" --model "beta=$T/cur_b.ctrm" --audit-dir "$T/audit" \
    --admin-token "$TOKEN" || exit 1
req GET /v1/models
DA=$(printf '%s' "$BODY_OUT" | grep -o '"name":"alpha","digest":"[^"]*"' | sed 's/.*"digest":"//; s/"$//')
DB=$(printf '%s' "$BODY_OUT" | grep -o '"name":"beta","digest":"[^"]*"' | sed 's/.*"digest":"//; s/"$//')
[ -n "$DA" ] && [ -n "$DB" ] && [ "$DA" != "$DB" ]; check $? "alpha and beta served ($DA, $DB)"
for i in $(seq 1 $N); do
    req POST /v1/score "{\"request_id\":\"a-$i\",\"examples\":[$(example_json "$i")]}"
    [ "$ST" = 200 ] || fail "alpha request $i: $ST $BODY_OUT"
    req POST /v1/score "{\"request_id\":\"b-$i\",\"model\":\"beta\",\"examples\":[$(example_json "$i"),$(example_json $((i + 100)))]}"
    [ "$ST" = 200 ] || fail "beta request $i: $ST $BODY_OUT"
done
cp "$T/b2.ctrm" "$T/cur_b.tmp" && mv "$T/cur_b.tmp" "$T/cur_b.ctrm"
req POST /v1/admin/reload '{"model":"beta"}' -H "Authorization: Bearer $TOKEN"
expect_status 200 "beta reloaded to B2"
DB2=$(printf '%s' "$BODY_OUT" | sed -n 's/.*"digest":"\([^"]*\)".*/\1/p')
for i in $(seq 1 10); do
    req POST /v1/score "{\"model\":\"beta\",\"request_id\":\"c-$i\",\"examples\":[$(example_json "$i")]}"
    [ "$ST" = 200 ] || fail "beta gen 2 request $i: $ST"
done
srv_stop
[ "$SRV_RC" = 0 ]; check $? "first ctrd exits 0"

# --- dump --requests --------------------------------------------------------
"$CTRTOOL" audit dump --requests --model "$T/a.ctrm" "$T/audit" >"$T/bare.jsonl" 2>"$T/bare.err"
check $? "dump --requests with one bare model"
[ "$(wc -l <"$T/bare.jsonl")" = $((2 * N + 10)) ] && ! grep -q '"model"' "$T/bare.jsonl" && [ ! -s "$T/bare.err" ]
check $? "one bare model: every record, no \"model\", nothing on stderr, as before several models"

"$CTRTOOL" audit dump --requests --model "$T/a.ctrm" --model "beta=$T/b.ctrm" "$T/audit" \
    >"$T/two.jsonl" 2>"$T/two.err"
check $? "dump --requests with alpha and beta=B"
[ "$(grep -c '^{"t_ns":[0-9]*,"model":"alpha","request_id":"a-' "$T/two.jsonl")" = $N ]
check $? "alpha's $N requests say \"model\":\"alpha\" (the header name), right after t_ns"
[ "$(grep -c '^{"t_ns":[0-9]*,"model":"beta","request_id":"b-' "$T/two.jsonl")" = $N ]
check $? "beta's $N requests say \"model\":\"beta\""
[ "$(wc -l <"$T/two.jsonl")" = $((2 * N)) ] && ! grep -q '"request_id":"c-' "$T/two.jsonl"
check $? "B2's records are not written"
grep -q "skipped 10 records (10 examples) of 1 model digest no --model has: $DB2 (10)" "$T/two.err"
check $? "the skip is counted on stderr with the digest: $(grep skipped "$T/two.err")"
# Without "model" the bodies are the bare dump's, byte for byte.
sed 's/"model":"[a-z]*",//' "$T/two.jsonl" | sort >"$T/two.stripped"
grep -v '"request_id":"c-' "$T/bare.jsonl" | sort >"$T/bare.ab"
cmp -s "$T/two.stripped" "$T/bare.ab"; check $? "bodies differ from the bare dump by \"model\" only"

"$CTRTOOL" audit dump --requests --model "$T/a.ctrm" --model "beta=$T/b.ctrm" --model "beta=$T/b2.ctrm" \
    "$T/audit" >"$T/all.jsonl" 2>"$T/all.err"
[ "$(wc -l <"$T/all.jsonl")" = $((2 * N + 10)) ] && [ "$(grep -c '"model":"beta","request_id":"c-' "$T/all.jsonl")" = 10 ] \
    && ! grep -q skipped "$T/all.err"
check $? "two generations under one name: every record written, none skipped"

"$CTRTOOL" audit dump --requests --model "x=$T/a.ctrm" --model "y=$T/a.ctrm" "$T/audit" >/dev/null 2>"$T/same.err"
rc=$?
[ $rc = 2 ] && grep -q 'one model (sha256:[0-9a-f]*) under two names, "x" and "y"' "$T/same.err"
check $? "one file under two names is refused, exit 2 (rc $rc)"
"$CTRTOOL" audit dump --requests --model 'a?b='"$T/a.ctrm" "$T/audit" >/dev/null 2>"$T/badname.err"
rc=$?
[ $rc = 2 ] && grep -q 'expected NAME=PATH' "$T/badname.err"; check $? "a name ctrd would refuse exits 2 (rc $rc)"

# --- replay to a fresh ctrd: each request to its model, same score bits ------
srv_start replay --model "alpha=$T/a.ctrm" --model "beta=$T/b.ctrm" --audit-dir "$T/audit2" || exit 1
"$CTRLOAD" --url "$SRV_URL" --replay "$T/two.jsonl" --concurrency 4 --json "$T/replay.json" --quiet \
    2>"$T/replay.err"
check $? "ctrload --replay of the two-model dump"
grep -q "\"status\":{\"200\":$((2 * N))}" "$T/replay.json"; check $? "all $((2 * N)) replayed requests answered 200"
srv_stop
"$CTRTOOL" audit dump --no-values "$T/audit" | grep '"request_id"' \
    | sed 's/.*"request_id":"\([^"]*\)".*"model":"\([^"]*\)".*"scores":\(\[[^]]*\]\).*/\1 \2 \3/' \
    | grep -v '^c-' | sort >"$T/old.txt"
"$CTRTOOL" audit dump --no-values "$T/audit2" | grep '"request_id"' \
    | sed 's/.*"request_id":"\([^"]*\)".*"model":"\([^"]*\)".*"scores":\(\[[^]]*\]\).*/\1 \2 \3/' \
    | sort >"$T/new.txt"
[ "$(wc -l <"$T/new.txt")" = $((2 * N)) ] && cmp -s "$T/old.txt" "$T/new.txt"
check $? "the replay's log: every request under its first digest with the same scores"

# --- pd of one model's traffic -------------------------------------------------
"$CTRTOOL" audit pd --model "$T/b2.ctrm" --json "$T/audit" >"$T/pd_all.json"
"$CTRTOOL" audit pd --model "$T/b2.ctrm" --digest "$DB" --json "$T/audit" >"$T/pd_d.json"
check $? "pd --digest beta's"
grep -q "\"records\":$N,\"examples\":$((2 * N)),\"skipped\":0,\"skipped_model\":$((N + 10)),\"skipped_model_examples\":$((N + 10)),\"only\":\[\"$DB\"\]" "$T/pd_d.json"
check $? "pd --digest compares beta's $N records and counts the $((N + 10)) of alpha and B2 as skipped"
grep -q "\"records\":$((2 * N + 10))," "$T/pd_all.json"; check $? "without a filter every record is compared (the mix)"
"$CTRTOOL" audit pd --model "$T/b2.ctrm" --primary "$T/b.ctrm" --json "$T/audit" >"$T/pd_p.json"
cmp -s "$T/pd_d.json" "$T/pd_p.json"; check $? "--primary B is --digest of B's digest"
"$CTRTOOL" audit pd --model "$T/b.ctrm" --primary "$T/b.ctrm" --json "$T/audit" >"$T/pd_same.json"
grep -q '"pd":0,"flip_rate":0,"identical":1}' "$T/pd_same.json"; check $? "B against its own traffic: PD 0, all identical"
"$CTRTOOL" audit pd --model "$T/b2.ctrm" --digest "$DB" "$T/audit" >"$T/pd_d.txt"
grep -q "skipped     $((N + 10)) records, $((N + 10)) examples of another model" "$T/pd_d.txt"
check $? "the table says how many records of other models were skipped"
"$CTRTOOL" audit pd --model "$T/b2.ctrm" --digest "sha256:$(printf '0%.0s' $(seq 1 64))" "$T/audit" \
    >/dev/null 2>"$T/pd_none.err"
rc=$?
[ $rc = 1 ] && grep -q 'no record of the --digest/--primary model' "$T/pd_none.err"
check $? "a digest of no record exits 1 (rc $rc)"
"$CTRTOOL" audit pd --model "$T/b2.ctrm" --digest nothex "$T/audit" >/dev/null 2>"$T/pd_bad.err"
rc=$?
[ $rc = 2 ] && grep -q 'expected sha256:' "$T/pd_bad.err"; check $? "a malformed --digest exits 2 (rc $rc)"

# --- verify: 16 models, not 17 -----------------------------------------------
args=""
for i in $(seq 1 14); do args="$args --model $T/a.ctrm"; done
"$CTRTOOL" audit verify $args --model "$T/b.ctrm" --model "$T/b2.ctrm" "$T/audit" >"$T/v16.out" 2>&1
check $? "verify with 16 models"
grep -q "^verified=$((2 * N + 10)) mismatched=0 skipped=0 " "$T/v16.out"; check $? "... verifies every record"
"$CTRTOOL" audit verify $args --model "$T/b.ctrm" --model "$T/b2.ctrm" --model "$T/a.ctrm" "$T/audit" \
    >/dev/null 2>"$T/v17.err"
rc=$?
[ $rc = 2 ] && grep -q -- '--model: at most 16' "$T/v17.err"; check $? "a 17th model exits 2 naming the limit (rc $rc)"

# --- ctrload --model-name with v1 ----------------------------------------------
out=$("$CTRLOAD" --url http://127.0.0.1:1 --model-name beta --print-request 2>&1)
case "$out" in *$'\r\n\r\n{"model":"beta","request_id":"'*) ok "--model-name beta: v1 bodies begin with \"model\":\"beta\"" ;;
    *) fail "--print-request: $out" ;; esac
"$CTRLOAD" --url http://127.0.0.1:1 --replay "$T/two.jsonl" --model-name beta >/dev/null 2>"$T/rm.err"
rc=$?
[ $rc = 2 ] && grep -q -- '--model-name does not apply' "$T/rm.err"; check $? "--model-name with --replay exits 2 (rc $rc)"
srv_start load --model "alpha=$T/a.ctrm" --model "beta=$T/b.ctrm" --no-audit || exit 1
"$CTRLOAD" --url "$SRV_URL" --model-name beta --concurrency 2 --duration 1s --warmup 0 \
    --examples-per-request 3 --json "$T/load.json" --quiet 2>/dev/null
check $? "ctrload --model-name beta runs"
SENT=$(sed -n 's/.*"status":{"200":\([0-9]*\)}.*/\1/p' "$T/load.json")
EA=$(metric 'ctrd_examples_scored_total{model="alpha"}')
EB=$(metric 'ctrd_examples_scored_total{model="beta"}')
[ -n "$SENT" ] && [ "$SENT" -gt 0 ] && [ "${EA:-x}" = 0 ] && [ "${EB:-0}" -ge $((3 * SENT)) ]
check $? "the load lands on beta only (200s $SENT, examples alpha $EA, beta $EB)"
"$CTRLOAD" --url "$SRV_URL" --model-name gamma --concurrency 1 --duration 300ms --warmup 0 \
    --json "$T/gamma.json" --quiet 2>/dev/null
grep -q '"status":{"404":' "$T/gamma.json"; check $? "--model-name of a model not served: 404s"
srv_stop
finish
