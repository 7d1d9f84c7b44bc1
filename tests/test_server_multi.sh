#!/bin/bash
# End to end: several models in one ctrd (--model NAME=PATH, repeated).
# Two models of different architectures served at once each score exactly
# what `ctrtool score` gives for them (v1 by "model", v2 by path, binary
# tensors too); no "model" is the default (the first); an unknown model is
# a 404 in each protocol's error form; names are checked and duplicates
# refused at start-up (flags and CTRD_MODEL); /v1/models and /metrics list
# each model with its label; the audit log carries each request's own
# model digest and replays with `ctrtool audit verify --model A --model B`;
# a reload of one model (admin call with "model") leaves the other serving
# with zero failures, a bad file keeps the old generation, SIGHUP reloads
# every model. The batcher's fairness under a flood is test_server_fair.sh.
. "$(dirname "$0")/lib_server.sh"

ROWS=120
make_model "$T/a.ctrm" 31 alpha
"$CTRTOOL" synth --out "$T/b.ctrm" --rows-per-table 300 --seed 32 --name beta --arch dcnv2 \
    --bottom 16 --cross 2 --hidden 24 >/dev/null || { echo "synth b failed"; exit 1; }
"$CTRTOOL" synth --out "$T/b2.ctrm" --rows-per-table 300 --seed 33 --name beta --arch dcnv2 \
    --bottom 16 --cross 2 --hidden 24 >/dev/null || { echo "synth b2 failed"; exit 1; }
"$CTRTOOL" gen-data --rows $ROWS --out "$T/rows.tsv" --seed 5 >/dev/null 2>&1 || { echo "gen-data failed"; exit 1; }
for m in a b b2; do
    "$CTRTOOL" score --model "$T/$m.ctrm" --data "$T/rows.tsv" --out "$T/offline_$m.txt" >/dev/null 2>&1 \
        || { echo "ctrtool score $m failed"; exit 1; }
done
cmp -s "$T/offline_a.txt" "$T/offline_b.txt" && { echo "FAIL: the two models score alike"; exit 1; }

tsv_to_jsonl "$T/rows.tsv" "$T/examples.jsonl"
# ... and one v2 infer body per row (dense null / sparse "" = missing).
awk -F'\t' '{
    d = ""; s = ""
    for (i = 2; i <= 14; i++) d = d (i > 2 ? "," : "") ($i == "" ? "null" : $i)
    for (i = 15; i <= 40; i++) s = s (i > 15 ? "," : "") "\"" $i "\""
    printf "{\"id\":\"v2-%d\",\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[1,13],\"data\":[%s]},", NR, d
    printf "{\"name\":\"sparse\",\"datatype\":\"BYTES\",\"shape\":[1,26],\"data\":[%s]}]}\n", s
}' "$T/rows.tsv" >"$T/v2.jsonl"

# --- start-up: names and duplicates ---------------------------------------
"$CTRD" --model x="$T/a.ctrm" --model x="$T/b.ctrm" --port 0 2>"$T/dup.log"; rc=$?
[ $rc -eq 2 ] && grep -q 'two models named \\"x\\"' "$T/dup.log"; check $? "two --model x=... exit 2 naming x (rc $rc)"
"$CTRD" --model "$T/a.ctrm" --model "$T/a.ctrm" --port 0 2>"$T/dup2.log"; rc=$?
[ $rc -eq 1 ] && grep -q 'two models named \\"alpha\\"' "$T/dup2.log"; check $? "two bare paths with one header name exit 1 naming it (rc $rc)"
"$CTRD" --model 'a?b='"$T/a.ctrm" --port 0 2>"$T/bad.log"; rc=$?
[ $rc -eq 2 ] && grep -q 'is not allowed' "$T/bad.log"; check $? "a name with '?' exits 2 (rc $rc)"
LONG=$(printf 'n%.0s' $(seq 1 65))
"$CTRD" --model "$LONG=$T/a.ctrm" --port 0 2>"$T/long.log"; rc=$?
[ $rc -eq 2 ] && grep -q 'at most 64' "$T/long.log"; check $? "a 65-byte name exits 2 (rc $rc)"
"$CTRD" --model "=$T/a.ctrm" --port 0 2>"$T/empty.log"; rc=$?
[ $rc -eq 2 ]; check $? "an empty name exits 2 (rc $rc)"
CTRD_MODEL="e1=$T/a.ctrm,e1=$T/b.ctrm" "$CTRD" --port 0 2>"$T/envdup.log"; rc=$?
[ $rc -eq 2 ] && grep -q 'CTRD_MODEL: two models named' "$T/envdup.log"; check $? "CTRD_MODEL duplicates exit 2 (rc $rc)"

# CTRD_MODEL, comma-separated; a --model flag replaces it entirely.
CTRD_MODEL="envb=$T/b.ctrm,$T/a.ctrm" srv_start env --no-audit || exit 1
req GET /v1/models
case "$BODY_OUT" in '{"models":[{"name":"envb",'*'"name":"alpha",'*) ok "CTRD_MODEL serves envb (default) and alpha" ;;
    *) fail "CTRD_MODEL models: $BODY_OUT" ;; esac
srv_stop
CTRD_MODEL="envb=$T/b.ctrm" srv_start env2 --model "$T/a.ctrm" --no-audit || exit 1
req GET /v2/models/envb/ready; expect_status 404 "a --model flag drops CTRD_MODEL's models"
req GET /v2/models/alpha/ready; expect_status 200 "... and serves the flag's"
srv_stop

# --- two models at once -----------------------------------------------------
cp "$T/b.ctrm" "$T/cur_b.ctrm"
TOKEN=multi-token-abcdefghijklmnop
AUTH="Authorization: Bearer $TOKEN"
srv_start multi --model "$T/a.ctrm" --model "beta=$T/cur_b.ctrm" --audit-dir "$T/audit" \
    --admin-token "$TOKEN" --threads 2 --max-delay-us 1000 || exit 1
req GET /v1/models
DA=$(printf '%s' "$BODY_OUT" | grep -o '"name":"alpha","digest":"[^"]*"' | sed 's/.*"digest":"//; s/"$//')
DB=$(printf '%s' "$BODY_OUT" | grep -o '"name":"beta","digest":"[^"]*"' | sed 's/.*"digest":"//; s/"$//')
[ -n "$DA" ] && [ -n "$DB" ] && [ "$DA" != "$DB" ]; check $? "/v1/models lists alpha and beta ($DA, $DB)"
case "$BODY_OUT" in '{"models":[{"name":"alpha",'*) ok "the first --model is listed first" ;;
    *) fail "order: $BODY_OUT" ;; esac
expect_body '"arch":"dcnv2"' "beta's entry says its arch"

# v1: alpha by default, alpha by name, beta with "model" first or last; 8
# requests at a time, 1..7 examples each.
send_v1() {  # MODEL(or -) WHERE(first|last) OUTPREFIX
    local model=$1 where=$2 pre=$3 start=1 k=0 n end ex mk PIDS=""
    while [ $start -le $ROWS ]; do
        n=$(( (k * 5) % 7 + 1 )); end=$((start + n - 1)); [ $end -gt $ROWS ] && end=$ROWS
        ex="\"examples\":[$(sed -n "${start},${end}p" "$T/examples.jsonl" | paste -sd,)]"
        mk=""; [ "$model" != - ] && mk="\"model\":\"$model\""
        if [ -z "$mk" ]; then body="{$ex}"
        elif [ "$where" = first ]; then body="{$mk,$ex}"
        else body="{\"request_id\":\"r$start\",$ex,$mk}"; fi
        curl -s --max-time 20 -H 'Content-Type: application/json' --data-binary "$body" \
            -o "$T/$pre.$start" "$SRV_URL/v1/score" &
        PIDS="$PIDS $!"; k=$((k + 1)); start=$((end + 1))
        if [ $((k % 8)) = 0 ]; then wait $PIDS; PIDS=""; fi
    done
    wait $PIDS
    : >"$T/$pre.txt"
    for f in $(ls "$T/$pre".* | grep -v '\.txt$' | sed "s|.*/$pre\.||" | sort -n); do
        { scores_of "$(cat "$T/$pre.$f")"; echo; } | tr ',' '\n' >>"$T/$pre.txt"
    done
}
compare() {  # OFFLINE HTTP WHAT
    if cmp -s "$1" "$2"; then ok "$3: every score equals ctrtool score's text"
    else fail "$3 differs from ctrtool score:"; diff "$1" "$2" | head -n 6; fi
}
send_v1 - first dflt;     compare "$T/offline_a.txt" "$T/dflt.txt" "v1 without model (default alpha)"
send_v1 alpha first va;   compare "$T/offline_a.txt" "$T/va.txt" "v1 model alpha"
send_v1 beta first vbf;   compare "$T/offline_b.txt" "$T/vbf.txt" "v1 model beta (first key)"
send_v1 beta last vbl;    compare "$T/offline_b.txt" "$T/vbl.txt" "v1 model beta (last key)"
grep -q "\"digest\":\"$DB\"" "$T/vbl.1"; check $? "a beta answer names beta's digest"
grep -q '"model":{"name":"beta"' "$T/vbl.1"; check $? "a beta answer names the model beta"

# v2 by name, JSON and binary outputs, every row.
for m in alpha beta; do
    : >"$T/v2_$m.txt"
    i=0
    while IFS= read -r body; do
        i=$((i + 1))
        out=$(curl -s --max-time 10 -H 'Content-Type: application/json' --data-binary "$body" \
            "$SRV_URL/v2/models/$m/infer")
        printf '%s\n' "$out" | sed -n 's/.*"data":\[\([^]]*\)\].*/\1/p' >>"$T/v2_$m.txt"
        [ $i = 1 ] && V2FIRST=$out
    done <"$T/v2.jsonl"
    case "$V2FIRST" in *"\"model_name\":\"$m\""*) ok "v2 answers name $m" ;; *) fail "v2 $m: $V2FIRST" ;; esac
done
compare "$T/offline_a.txt" "$T/v2_alpha.txt" "v2 /v2/models/alpha/infer"
compare "$T/offline_b.txt" "$T/v2_beta.txt" "v2 /v2/models/beta/infer"
if command -v python3 >/dev/null 2>&1; then
    python3 - "$T/rows.tsv" "$T/bin" <<'PY'
import json, struct, sys
row = open(sys.argv[1]).readline().rstrip("\n").split("\t")
dense = struct.pack("<13f", *[float(v) if v else float("nan") for v in row[1:14]])
sparse = b"".join(struct.pack("<I", len(v)) + v.encode() for v in row[14:40])
head = json.dumps({"id": "bin-1", "inputs": [
    {"name": "dense", "datatype": "FP32", "shape": [1, 13], "parameters": {"binary_data_size": len(dense)}},
    {"name": "sparse", "datatype": "BYTES", "shape": [1, 26], "parameters": {"binary_data_size": len(sparse)}}],
    "outputs": [{"name": "score", "parameters": {"binary_data": True}}]}).encode()
open(sys.argv[2] + ".req", "wb").write(head + dense + sparse)
open(sys.argv[2] + ".hlen", "w").write(str(len(head)))
PY
    for m in alpha beta; do
        curl -s --max-time 10 -o "$T/bin.$m" -H 'Content-Type: application/octet-stream' \
            -H "Inference-Header-Content-Length: $(cat "$T/bin.hlen")" --data-binary @"$T/bin.req" \
            "$SRV_URL/v2/models/$m/infer"
        f=a; [ $m = beta ] && f=b
        got=$(python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(); print("%.9g" % struct.unpack("<f", d[-4:])[0])' "$T/bin.$m")
        [ "$got" = "$(head -n 1 "$T/offline_$f.txt")" ]; check $? "binary tensor infer on $m scores row 1 as ctrtool does ($got)"
    done
fi

# --- 404s in each protocol's form, and the other errors ----------------------
req POST /v1/score '{"model":"gamma","examples":[{"I1":1}]}'
expect_status 404 "v1 unknown model"; expect_code model_not_found "v1 unknown model"
case "$BODY_OUT" in '{"error":{"code":"model_not_found","message":"no model named \"gamma\" here; this server serves \"alpha\", \"beta\""'*)
    ok "v1 404 names the model and lists the served ones" ;; *) fail "v1 404 form: $BODY_OUT" ;; esac
req POST /v1/score "{\"examples\":[{\"I1\":1}],\"model\":\"$LONG\"}"
expect_status 404 "v1 over-long model name"
req POST /v1/score '{"model":7,"examples":[{"I1":1}]}'
expect_status 400 "v1 model not a string"; expect_code wrong_type "v1 model not a string"
req POST /v1/score '{"model":null,"examples":[{"I1":1}]}'
expect_status 200 "v1 model null means the default"; expect_body '"name":"alpha"' "... alpha"
for p in /v2/models/gamma /v2/models/gamma/ready; do
    req GET $p; expect_status 404 "GET $p"
    case "$BODY_OUT" in '{"error":"no model named \"gamma\"'*'"code":"model_not_found"'*) ok "$p: v2 error form" ;;
        *) fail "$p form: $BODY_OUT" ;; esac
done
req POST /v2/models/gamma/infer "$(head -n 1 "$T/v2.jsonl")"
expect_status 404 "v2 infer unknown model"; expect_code model_not_found "v2 infer unknown model"
case "$BODY_OUT" in '{"error":"'*) ok "v2 infer 404 in the v2 form" ;; *) fail "v2 infer 404 form: $BODY_OUT" ;; esac
req GET "/v2/models/beta/versions/${DA#sha256:}"; expect_status 404 "beta under alpha's version"
expect_code version_not_found "beta under alpha's version"
req GET "/v2/models/beta/versions/$(printf '%s' "${DB#sha256:}" | cut -c1-12)/ready"
expect_status 200 "beta's short version is ready"
req GET /v2/models/beta; expect_status 200 "GET /v2/models/beta"
expect_body '"name":"beta"' "v2 metadata is beta's"; expect_body "\"digest\":\"$DB\"" "with beta's digest"

# --- metrics ------------------------------------------------------------------
req GET /metrics
for m in 'ctrd_http_requests_total{endpoint="/v1/score",code="200",model="alpha"}' \
         'ctrd_http_requests_total{endpoint="/v1/score",code="200",model="beta"}' \
         'ctrd_http_requests_total{endpoint="/v2/models/{name}/infer",code="200",model="beta"}' \
         'ctrd_http_requests_total{endpoint="/v1/score",code="404"}' \
         'ctrd_request_duration_seconds_count{endpoint="/v1/score",model="beta"}' \
         "ctrd_model_info{name=\"beta\",digest=\"$DB\"" 'ctrd_model_generation{model="beta"} 1' \
         'ctrd_model_reloads_total{result="success",model="alpha"}' 'ctrd_model_mapped_bytes{model="beta"}' \
         'ctrd_model_queue_examples{model="alpha"}'; do
    expect_body "$m" "/metrics has $m"
done
EXA=$(printf '%s\n' "$BODY_OUT" | awk '$1 == "ctrd_examples_scored_total{model=\"alpha\"}" {print $2}')
EXB=$(printf '%s\n' "$BODY_OUT" | awk '$1 == "ctrd_examples_scored_total{model=\"beta\"}" {print $2}')
# alpha: 2 x ROWS (v1) + ROWS (v2) + 1 (model null) + 1 binary; beta: 2 x ROWS + ROWS + 1.
[ "${EXA:-0}" -ge $((3 * ROWS + 1)) ] && [ "${EXB:-0}" -ge $((3 * ROWS)) ] && [ "${EXB:-0}" -le $((3 * ROWS + 1)) ]
check $? "examples scored by model (alpha $EXA, beta $EXB)"
# The batcher's histograms are per model too: every scored example is in
# exactly one batch of its own model's.
BSA=$(printf '%s\n' "$BODY_OUT" | awk '$1 == "ctrd_batch_size_examples_sum{model=\"alpha\"}" {print $2}')
BSB=$(printf '%s\n' "$BODY_OUT" | awk '$1 == "ctrd_batch_size_examples_sum{model=\"beta\"}" {print $2}')
[ -n "$BSA" ] && [ "$BSA" = "$EXA" ] && [ -n "$BSB" ] && [ "$BSB" = "$EXB" ]
check $? "batch size sums by model equal examples scored (alpha $BSA, beta $BSB)"
for m in 'ctrd_compute_seconds_count{model="alpha"}' 'ctrd_compute_seconds_count{model="beta"}' \
         'ctrd_queue_wait_seconds_bucket{model="beta",le="+Inf"}'; do
    expect_body "$m" "/metrics has $m"
done
RB=$(printf '%s\n' "$BODY_OUT" | awk '$1 == "ctrd_model_resident_bytes{model=\"beta\"}" {print $2}')
MB=$(printf '%s\n' "$BODY_OUT" | awk '$1 == "ctrd_model_mapped_bytes{model=\"beta\"}" {print $2}')
# Loading verifies every tensor checksum, so the whole file was read.
[ "${MB:-0}" = "$(stat -c %s "$T/cur_b.ctrm")" ] && [ "${RB:-0}" -gt $((MB / 2)) ] && [ "$RB" -le "$MB" ]
check $? "beta's mapped ($MB) and resident ($RB) bytes"
if command -v promtool >/dev/null 2>&1; then
    printf '%s\n' "$BODY_OUT" | promtool check metrics >"$T/promtool.out" 2>&1
    check $? "promtool check metrics accepts the per-model series"
fi

# --- reload one model while the other serves -------------------------------
PIDS=""
for c in 1 2; do
    (
        for i in $(seq 1 150); do
            curl -s --max-time 10 -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json' \
                --data-binary "$(score_body $((c * 1000 + i)))" "$SRV_URL/v1/score"
        done >"$T/loada.$c"
    ) &
    PIDS="$PIDS $!"
    (
        for i in $(seq 1 150); do
            curl -s --max-time 10 -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json' \
                --data-binary "{\"model\":\"beta\",\"examples\":[$(example_json $i)]}" "$SRV_URL/v1/score"
        done >"$T/loadb.$c"
    ) &
    PIDS="$PIDS $!"
done
sleep 0.3
cp "$T/b2.ctrm" "$T/cur_b.tmp" && mv "$T/cur_b.tmp" "$T/cur_b.ctrm"
req POST /v1/admin/reload '{"model":"beta"}' -H "$AUTH"
expect_status 200 "admin reload of beta"
expect_body '"status":"reloaded","model":"beta","generation":2' "beta is at generation 2"
DB2=$(printf '%s' "$BODY_OUT" | sed -n 's/.*"digest":"\([^"]*\)".*/\1/p')
[ -n "$DB2" ] && [ "$DB2" != "$DB" ]; check $? "beta's digest changed"
printf 'corrupt' | dd of="$T/cur_b.ctrm" bs=1 seek=5000 conv=notrunc 2>/dev/null
req POST /v1/admin/reload '{"model":"beta"}' -H "$AUTH"
expect_status 422 "a corrupt beta file is refused"; expect_body "still serving $DB2" "... beta keeps serving"
req POST /v1/admin/reload '{"model":"gamma"}' -H "$AUTH"
expect_status 404 "reload of an unknown model"; expect_code model_not_found "reload of an unknown model"
cp "$T/b.ctrm" "$T/path_b.ctrm"
req POST /v1/admin/reload '{"model":"beta","path":"'"$T/path_b.ctrm"'"}' -H "$AUTH"
expect_status 200 "reload beta from another path"; expect_body "\"digest\":\"$DB\"" "... back to B"
wait $PIDS
A200=$(cat "$T"/loada.* | grep -c '^200$'); B200=$(cat "$T"/loadb.* | grep -c '^200$')
[ "$A200" = 300 ] && [ "$B200" = 300 ]; check $? "no request failed during beta's reloads (alpha $A200/300, beta $B200/300)"
req GET /v1/models
printf '%s' "$BODY_OUT" | grep -q "\"name\":\"alpha\",\"digest\":\"$DA\",\"generation\":1"
check $? "alpha untouched by beta's reloads (generation 1)"
req GET /metrics
expect_body 'ctrd_model_reloads_total{result="success",model="beta"} 2' "beta: 2 reloads counted"
expect_body 'ctrd_model_reloads_total{result="failure",model="beta"} 1' "beta: 1 failed reload counted"
expect_body 'ctrd_model_reloads_total{result="success",model="alpha"} 0' "alpha: none"

# SIGHUP: every model, each from its current path: alpha's file is the
# same (kept), beta's (path_b.ctrm since the reload above) is now B2.
cp "$T/b2.ctrm" "$T/cur_b.tmp" && mv "$T/cur_b.tmp" "$T/path_b.ctrm"
kill -HUP "$SRV_PID"
for i in $(seq 1 100); do
    grep -q '"msg":"model reload: same digest, kept","model":"alpha"' "$SRV_LOG" \
        && grep -q "\"msg\":\"model reloaded\",\"model\":\"beta\".*\"digest\":\"$DB2\"" "$SRV_LOG" && break
    sleep 0.1
done
grep -q '"msg":"model reload: same digest, kept","model":"alpha"' "$SRV_LOG"; check $? "SIGHUP reloaded alpha"
grep -q "\"msg\":\"model reloaded\",\"model\":\"beta\".*\"digest\":\"$DB2\"" "$SRV_LOG"; check $? "SIGHUP reloaded beta"

# The audit log syncs once per reload, not whenever records of models of
# different generations alternate (alpha is at its first, beta at its
# fourth load now).
req POST /v1/score "$(score_body 1)"
req POST /v1/score "{\"model\":\"beta\",\"examples\":[$(example_json 1)]}"
S0=$(metric ctrd_audit_syncs_total)
for i in $(seq 1 20); do
    req POST /v1/score "$(score_body "$i")"
    req POST /v1/score "{\"model\":\"beta\",\"examples\":[$(example_json "$i")]}"
done
S1=$(metric ctrd_audit_syncs_total)
[ $((S1 - S0)) -le 1 ]; check $? "40 alternating alpha/beta records: $((S1 - S0)) audit syncs"

srv_stop
[ "$SRV_RC" = 0 ]; check $? "SIGTERM exits 0"

# --- audit: each record carries its model's digest -------------------------
"$CTRTOOL" audit dump --no-values "$T/audit" >"$T/dump.jsonl" 2>/dev/null
NA=$(grep -c "\"model\":\"$DA\"" "$T/dump.jsonl"); NB=$(grep -c "\"model\":\"$DB\"" "$T/dump.jsonl")
NB2=$(grep -c "\"model\":\"$DB2\"" "$T/dump.jsonl")
[ "$NA" -gt 0 ] && [ "$NB" -gt 0 ] && [ "$NB2" -gt 0 ]; check $? "audit records by digest: alpha $NA, beta $NB, beta gen 2 $NB2"
grep '"request_id":"r1"' "$T/dump.jsonl" | grep -q "\"model\":\"$DB\""; check $? "beta's request r1 is logged with beta's digest"
"$CTRTOOL" audit verify --model "$T/a.ctrm" --model "$T/b.ctrm" --model "$T/b2.ctrm" "$T/audit" >"$T/verify.out" 2>&1
check $? "ctrtool audit verify with all three models replays every record"
grep -q '^verified=[1-9][0-9]* mismatched=0 skipped=0 corrupt=0 torn=0$' "$T/verify.out"
check $? "every record verified bit for bit, none skipped: $(tail -n 1 "$T/verify.out")"
# ... and dumps as bodies naming each record's model (both generations of
# beta under one name), none skipped (test_audit_multi.sh replays such a dump).
"$CTRTOOL" audit dump --requests --model "$T/a.ctrm" --model "beta=$T/b.ctrm" --model "beta=$T/b2.ctrm" \
    "$T/audit" >"$T/requests.jsonl" 2>"$T/requests.err"
check $? "audit dump --requests with all three models"
NR=$(grep -c '"request_id"' "$T/dump.jsonl")
[ "$(wc -l <"$T/requests.jsonl")" = "$NR" ] && ! grep -q skipped "$T/requests.err" \
    && [ "$(grep -c '^{"t_ns":[0-9]*,"model":"beta",' "$T/requests.jsonl")" = $((NB + NB2)) ] \
    && [ "$(grep -c '^{"t_ns":[0-9]*,"model":"alpha",' "$T/requests.jsonl")" = "$NA" ]
check $? "every record as a body naming its model (alpha $NA, beta $((NB + NB2)) of $NR), none skipped"
finish
