#!/bin/bash
# End to end: the shadow candidate (--shadow CANDIDATE:PRIMARY).
# 1. Flags: bad --shadow / --shadow-* values refuse to start; CTRD_SHADOW
#    and its twins work from the environment.
# 2. Sample 1.0 with an audit log: every primary answer equals `ctrtool
#    score` of the primary (the shadow changes nothing on the response
#    path); once the shadow has drained (examples compared + dropped ==
#    examples sent) the /metrics PD histogram's _count and every bucket
#    equal `ctrtool audit pd --shadow --json` on the same run's log, its
#    _sum within 1e-9 relative (summation order differs), flips and score
#    means too; `ctrtool audit verify --model P --model C` replays every
#    record, type 1 and type 2, with 0 mismatched; each type-2 record's
#    candidate scores are `ctrtool score` of the candidate on the same rows
#    and its primary trailer is the primary record's. The series have
#    HELP/TYPE, pass `promtool check metrics`, and every ctrd_shadow_* name
#    the alert rules in deploy/prometheus/ use is exported.
# 3. Sample 0.5: the shadowed request ids are the ones XXH3 (seed "ctrd")
#    picks, the same on two server runs, 30-70% of 200; without request ids
#    the body bytes are the key.
# 4. Bags (full, short, empty, missing, in "context"): a Wukong candidate
#    of other widths re-encodes the raw values; /metrics == audit pd and
#    audit verify replays every record.
# Faults (missing, corrupt, incompatible candidate, full queue) are
# test_shadow_faults.sh; promote is test_shadow_promote.sh.
. "$(dirname "$0")/lib_server.sh"
. "$(dirname "$0")/lib_shadow.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)

ROWS=300
train_pair "$T/p.ctrm" "$T/c.ctrm"
make_rows $ROWS 9
for m in p c; do
    "$CTRTOOL" score --model "$T/$m.ctrm" --data "$T/rows.tsv" --out "$T/offline_$m.txt" >/dev/null 2>&1 \
        || { echo "ctrtool score $m failed"; exit 1; }
done
cmp -s "$T/offline_p.txt" "$T/offline_c.txt" && { echo "FAIL: the two models score alike"; exit 1; }

# --- 1. flags ------------------------------------------------------------------
refused() {  # WHAT MESSAGE ctrd-args...: must exit 2 (a config error), saying MESSAGE
    local what=$1 msg=$2 rc
    shift 2
    timeout 20 "$CTRD" --host 127.0.0.1 --port 0 --no-audit "$@" >"$T/refused.out" 2>"$T/refused.log"
    rc=$?
    if [ $rc -eq 2 ] && grep -qF -- "$msg" "$T/refused.log" && ! grep -q '"msg":"listening"' "$T/refused.log"; then
        ok "$what: exit 2, \"$msg\""
    else
        fail "$what: exit $rc, want 2 and \"$msg\": $(tail -n 1 "$T/refused.log" | head -c 300)"
    fi
}
M2=(--model "ctr=$T/p.ctrm" --model "next=$T/c.ctrm")
refused "--shadow naming an unknown candidate" 'no --model is named \"nope\"' "${M2[@]}" --shadow nope:ctr
refused "--shadow naming an unknown primary" 'no --model is named \"nope\"' "${M2[@]}" --shadow next:nope
refused "--shadow C:C" 'the candidate and the primary are one model' "${M2[@]}" --shadow next:next
refused "--shadow without a colon" 'expected CANDIDATE:PRIMARY' "${M2[@]}" --shadow next
refused "--shadow with an empty side" '--shadow' "${M2[@]}" --shadow :ctr
refused "--shadow-sample 1.5" 'outside 0..1' "${M2[@]}" --shadow next:ctr --shadow-sample 1.5
refused "--shadow-sample -0.1" '--shadow-sample' "${M2[@]}" --shadow next:ctr --shadow-sample -0.1
refused "--shadow-sample abc" '--shadow-sample' "${M2[@]}" --shadow next:ctr --shadow-sample abc
refused "--shadow-threshold 0" '--shadow-threshold 0: must be above 0 and below 1' "${M2[@]}" --shadow next:ctr --shadow-threshold 0
refused "--shadow-threshold 1" 'must be above 0 and below 1' "${M2[@]}" --shadow next:ctr --shadow-threshold 1
refused "--shadow-queue-limit -1" '--shadow-queue-limit' "${M2[@]}" --shadow next:ctr --shadow-queue-limit -1
refused "--shadow-queue-limit 0" '--shadow-queue-limit' "${M2[@]}" --shadow next:ctr --shadow-queue-limit 0
refused "--shadow with a bare --model primary of another name" 'no model is named' \
    --model "$T/p.ctrm" --model "next=$T/c.ctrm" --shadow next:zzz
CTRD_SHADOW=nope:ctr timeout 20 "$CTRD" --host 127.0.0.1 --port 0 --no-audit "${M2[@]}" 2>"$T/env.log"
rc=$?; [ $rc -eq 2 ] && grep -q 'CTRD_SHADOW' "$T/env.log"; check $? "CTRD_SHADOW=nope:ctr refused too, naming the variable (exit $rc)"
"$CTRD" --help 2>&1 | grep -q -- '--shadow-queue-limit'; check $? "--help lists the --shadow flags"
"$CTRD" --help 2>&1 | grep -q 'CTRD_SHADOW_SAMPLE'; check $? "--help names the environment twins"

# The environment twins.
CTRD_SHADOW=next:ctr CTRD_SHADOW_SAMPLE=0.25 CTRD_SHADOW_THRESHOLD=0.3 CTRD_SHADOW_QUEUE_LIMIT=100 \
    srv_start env "${M2[@]}" --no-audit || exit 1
shadow_metrics
[ "$(smetric ctrd_shadow_active primary=ctr candidate=next)" = 1 ]; check $? "CTRD_SHADOW=next:ctr: ctrd_shadow_active{primary=ctr,candidate=next} 1"
[ "$(smetric ctrd_shadow_sample_ratio)" = 0.25 ]; check $? "CTRD_SHADOW_SAMPLE: ctrd_shadow_sample_ratio 0.25 ($(smetric ctrd_shadow_sample_ratio))"
[ "$(smetric ctrd_shadow_threshold)" = 0.29999999999999999 ] || [ "$(smetric ctrd_shadow_threshold)" = 0.3 ]
check $? "CTRD_SHADOW_THRESHOLD: ctrd_shadow_threshold 0.3 ($(smetric ctrd_shadow_threshold))"
srv_stop
# Without --shadow there are no shadow series.
srv_start none "${M2[@]}" --no-audit || exit 1
shadow_metrics
! grep -q '^ctrd_shadow_pd_count' "$T/metrics.txt"; check $? "no --shadow: no ctrd_shadow_pd series"
srv_stop

# --- 2. sample 1.0 with an audit log --------------------------------------------
srv_start s1 "${M2[@]}" --shadow next:ctr --shadow-sample 1.0 --audit-dir "$T/audit1" \
    --threads 2 --max-delay-us 500 || exit 1
req GET /v1/models
DP=$(printf '%s' "$BODY_OUT" | grep -o '"name":"ctr","digest":"[^"]*"' | sed 's/.*"digest":"//; s/"$//')
DC=$(printf '%s' "$BODY_OUT" | grep -o '"name":"next","digest":"[^"]*"' | sed 's/.*"digest":"//; s/"$//')
[ -n "$DP" ] && [ -n "$DC" ] && [ "$DP" != "$DC" ]; check $? "primary ctr and candidate next both served ($DP, $DC)"
shadow_metrics
[ "$(smetric ctrd_shadow_active)" = 1 ]; check $? "ctrd_shadow_active 1"
[ "$(smetric ctrd_shadow_examples_total)" = 0 ]; check $? "nothing compared before any request"

send_rows s1
[ "$SENT_OK" = "$SENT_REQ" ]; check $? "every primary request answered 200 ($SENT_OK of $SENT_REQ)"
if cmp -s "$T/offline_p.txt" "$T/s1.txt"; then ok "every primary score equals ctrtool score of the primary ($ROWS rows)"
else fail "primary scores differ from ctrtool score of the primary:"; diff "$T/offline_p.txt" "$T/s1.txt" | head -n 6; fi
grep -q "\"digest\":\"$DP\"" "$T/s1.1"; check $? "the answers name the primary's digest, not the candidate's"
# A request to the candidate by name is an ordinary request, never shadowed.
req POST /v1/score "{\"model\":\"next\",\"request_id\":\"direct-1\",\"examples\":[$(head -n 1 "$T/examples.jsonl")]}"
expect_status 200 "the candidate serves its own requests"
[ "$(scores_of "$BODY_OUT")" = "$(head -n 1 "$T/offline_c.txt")" ]; check $? "... with its own scores"

wait_shadow_drained $ROWS 60; check $? "the shadow drained: compared + dropped == $ROWS examples"
shadow_metrics
cp "$T/metrics.txt" "$T/metrics_s1.txt"
EX=$(smetric ctrd_shadow_examples_total primary=ctr candidate=next)
DR=$(smetric ctrd_shadow_dropped_examples_total)
[ "$EX" = $ROWS ] && [ "${DR:-0}" = 0 ]; check $? "all $ROWS examples compared, none dropped (compared $EX, dropped $DR)"
[ "$(smetric ctrd_shadow_requests_sampled_total)" = "$SENT_REQ" ]; check $? "ctrd_shadow_requests_sampled_total == $SENT_REQ requests"
[ "$(smetric ctrd_shadow_sample_ratio)" = 1 ]; check $? "ctrd_shadow_sample_ratio 1"
[ "$(smetric ctrd_shadow_threshold)" = 0.5 ]; check $? "ctrd_shadow_threshold 0.5 (the default)"
[ "$(smetric ctrd_shadow_queue_examples)" = 0 ]; check $? "ctrd_shadow_queue_examples 0 once drained"
for r in queue_full incompatible failed inactive audit; do
    grep -q "^ctrd_shadow_dropped_examples_total{.*reason=\"$r\"" "$T/metrics.txt"; check $? "dropped series for reason $r present (0 or more)"
done
# Every family has HELP and TYPE; promtool accepts the whole page.
for fam in ctrd_shadow_active ctrd_shadow_pd ctrd_shadow_flips_total ctrd_shadow_threshold ctrd_shadow_score_sum_total \
           ctrd_shadow_score_mean ctrd_shadow_examples_total ctrd_shadow_dropped_examples_total \
           ctrd_shadow_requests_sampled_total ctrd_shadow_queue_examples ctrd_shadow_sample_ratio; do
    grep -q "^# HELP $fam " "$T/metrics.txt" && grep -q "^# TYPE $fam " "$T/metrics.txt"
    check $? "$fam has HELP and TYPE"
done
grep -q '^# TYPE ctrd_shadow_pd histogram' "$T/metrics.txt"; check $? "ctrd_shadow_pd is a histogram"
if out=$(promtool check metrics <"$T/metrics.txt" 2>&1); then ok "promtool check metrics: no problems with the shadow series"
else fail "promtool check metrics: $out"; fi
# The alert rules only use names ctrd exports.
for n in $(grep -o 'ctrd_shadow_[a-z_]*' "$ROOT/deploy/prometheus/ctrd-shadow-rules.yaml" | sort -u); do
    grep -q "^$n[{ ]" "$T/metrics.txt"; check $? "deploy/prometheus rules use $n: exported"
done

srv_stop
[ "$SRV_RC" = 0 ]; check $? "SIGTERM exits 0"

# /metrics against ctrtool audit pd --shadow on the same log.
"$CTRTOOL" audit pd --shadow --json "$T/audit1" >"$T/pd.json" 2>"$T/pd.err"
check $? "ctrtool audit pd --shadow --json on the log"
compare_metrics_pd "$T/metrics_s1.txt" "$T/pd.json" ctr next
"$CTRTOOL" audit pd --shadow --threshold 0.3 --json "$T/audit1" >"$T/pd03.json" 2>/dev/null
check $? "audit pd --shadow --threshold 0.3"
"$PY" -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(0 if a["pd_sum"]==b["pd_sum"] and a["examples"]==b["examples"] else 1)' \
    "$T/pd.json" "$T/pd03.json"
check $? "the threshold moves flips only, not PD"

# audit verify with both models: every record, type 1 and type 2.
"$CTRTOOL" audit verify --model "$T/p.ctrm" --model "$T/c.ctrm" "$T/audit1" >"$T/verify.out" 2>&1
check $? "ctrtool audit verify --model P --model C: exit 0"
grep -q 'mismatched=0 ' "$T/verify.out" && grep -q '^verified=[1-9]' "$T/verify.out"
check $? "0 mismatched: $(grep '^verified=' "$T/verify.out")"
"$CTRTOOL" audit verify --model "$T/p.ctrm" "$T/audit1" >"$T/verify_p.out" 2>&1
grep -q 'skipped=[1-9]' "$T/verify_p.out"; check $? "verify with the primary alone skips the candidate's records: $(grep '^verified=' "$T/verify_p.out")"

# The records themselves.
"$CTRTOOL" audit dump --no-values "$T/audit1" >"$T/dump1.jsonl" 2>/dev/null
"$PY" - "$T/dump1.jsonl" "$T/offline_p.txt" "$T/offline_c.txt" "$DP" "$DC" "$SENT_REQ" <<'PY' >"$T/dump_cmp.txt"
import json, struct, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{") and '"request_id"' in l]
offp = [float(x) for x in open(sys.argv[2]).read().split()]
offc = [float(x) for x in open(sys.argv[3]).read().split()]
dp, dc, nreq = sys.argv[4], sys.argv[5], int(sys.argv[6])
f32 = lambda v: struct.unpack("<f", struct.pack("<f", v))[0]
bad = 0
def say(ok, what):
    global bad
    print(("ok: " if ok else "FAIL: ") + what)
    bad += 0 if ok else 1
t1 = {r["request_id"]: r for r in recs if r.get("type", 1) == 1 and r["request_id"].startswith("s1-")}
t2 = {r["request_id"]: r for r in recs if r.get("type") == 2}
say(len(t1) == nreq, "%d type-1 records of the primary (%d requests)" % (len(t1), nreq))
say(len(t2) == nreq, "%d type-2 records, one per shadowed request" % len(t2))
say(all(r["model"] == dc for r in t2.values()), "type-2 records carry the candidate's digest")
say(all(r["model"] == dp for r in t1.values()), "type-1 records carry the primary's digest")
okc = okp = okseq = okgen = 0
for rid, r in t2.items():
    start = int(rid.split("-")[1]) - 1
    n = len(r["scores"])
    if [f32(x) for x in r["scores"]] == [f32(x) for x in offc[start:start + n]]:
        okc += 1
    p = t1.get(rid)
    if p and [f32(x) for x in r.get("primary_scores", [])] == [f32(x) for x in p["scores"]] \
            and [f32(x) for x in p["scores"]] == [f32(x) for x in offp[start:start + n]]:
        okp += 1
    if p and r.get("primary_seq") == p["seq"]:
        okseq += 1
    if p and r.get("primary_model") == dp and r.get("primary_generation") == p["generation"]:
        okgen += 1
say(okc == len(t2), "candidate scores == ctrtool score of the candidate on the same rows (%d of %d records)" % (okc, len(t2)))
say(okp == len(t2), "each trailer's primary scores == its primary record's == ctrtool score (%d of %d)" % (okp, len(t2)))
say(okseq == len(t2), "each trailer's primary_seq is its primary record's seq (%d of %d)" % (okseq, len(t2)))
say(okgen == len(t2), "each trailer's primary digest and generation are the primary record's (%d of %d)" % (okgen, len(t2)))
sys.exit(1 if bad else 0)
PY
cat "$T/dump_cmp.txt"
CHECKS=$((CHECKS + $(grep -c '^ok: ' "$T/dump_cmp.txt")))
FAILS=$((FAILS + $(grep -c '^FAIL: ' "$T/dump_cmp.txt")))
[ -s "$T/dump_cmp.txt" ] || fail "the audit dump could not be compared"

# --- 3. sample 0.5: deterministic by request id --------------------------------
NS=200
sampled_ids() {  # RUN: the request ids of the shadow's records
    "$CTRTOOL" audit dump --no-values "$T/audit_$1" 2>/dev/null | "$PY" -c '
import json, sys
for l in sys.stdin:
    if l.startswith("{") and "\"request_id\"" in l:
        r = json.loads(l)
        if r.get("type") == 2:
            print(r["request_id"])' | sort
}
for run in a b; do
    srv_start "half_$run" "${M2[@]}" --shadow next:ctr --shadow-sample 0.5 --audit-dir "$T/audit_$run" || exit 1
    PIDS=""
    for i in $(seq 1 $NS); do
        curl -s --max-time 10 -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json' \
            --data-binary "{\"request_id\":\"h-$i\",\"examples\":[$(example_json "$i")]}" "$SRV_URL/v1/score" >>"$T/half_$run.st" &
        PIDS="$PIDS $!"
        if [ $((i % 8)) = 0 ]; then wait $PIDS; PIDS=""; fi
    done
    [ -z "$PIDS" ] || wait $PIDS
    [ "$(grep -c '^200$' "$T/half_$run.st")" = $NS ]; check $? "run $run: $NS requests answered 200"
    shadow_metrics
    SAMP=$(smetric ctrd_shadow_requests_sampled_total)
    wait_shadow_drained "$SAMP" 30; check $? "run $run: the shadow drained ($SAMP sampled)"
    [ "$(smetric ctrd_shadow_sample_ratio)" = 0.5 ]; check $? "run $run: ctrd_shadow_sample_ratio 0.5"
    srv_stop
    sampled_ids "$run" >"$T/ids_$run.txt"
done
NA=$(wc -l <"$T/ids_a.txt")
cmp -s "$T/ids_a.txt" "$T/ids_b.txt"; check $? "both runs shadowed the same $NA request ids"
[ "$NA" -ge $((NS * 30 / 100)) ] && [ "$NA" -le $((NS * 70 / 100)) ]; check $? "$NA of $NS ids sampled (30-70%)"
[ "$NA" = "$SAMP" ]; check $? "ctrd_shadow_requests_sampled_total ($SAMP) == shadow records ($NA)"
xxh3_sampled 0.5 $(seq -f 'h-%g' 1 $NS) | sort >"$T/ids_xxh.txt"
cmp -s "$T/ids_a.txt" "$T/ids_xxh.txt"; check $? "exactly the ids XXH3_64(id, seed 0x63747264) < 2^63 picks ($(wc -l <"$T/ids_xxh.txt"))"

# Without request ids the key is the body: the same bodies twice, the same
# number sampled, and the count XXH3 of the bodies predicts.
: >"$T/bodies.txt"
for i in $(seq 1 100); do printf '{"examples":[%s]}\n' "$(example_json $((i + 500)))" >>"$T/bodies.txt"; done
srv_start nobody "${M2[@]}" --shadow next:ctr --shadow-sample 0.5 --no-audit || exit 1
for pass in 1 2; do
    while IFS= read -r b; do
        curl -s --max-time 10 -o /dev/null -H 'Content-Type: application/json' --data-binary "$b" "$SRV_URL/v1/score"
    done <"$T/bodies.txt"
    shadow_metrics; eval "S$pass=\$(smetric ctrd_shadow_requests_sampled_total)"
done
"$PY" - "$T/bodies.txt" >"$T/nobody_want.txt" <<'PY'
import ctypes, sys
lib = ctypes.CDLL("libxxhash.so.0")
h = lib.XXH3_64bits_withSeed
h.restype = ctypes.c_uint64
h.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
n = 0
for line in open(sys.argv[1], "rb"):
    b = line.rstrip(b"\n")
    n += h(b, len(b), 0x63747264) < 2 ** 63
print(n)
PY
WANT=$(cat "$T/nobody_want.txt")
[ "$S1" = "$WANT" ] && [ "$S2" = $((2 * WANT)) ]
check $? "without request ids the body bytes are the key: $S1 then $S2 sampled, XXH3 of the bodies says $WANT each pass"
srv_stop

# --- 4. bags and mod mapping: the candidate re-encodes raw values ---------------
# Both models take C1 (a bag of <= 4, sum) and C2 (a bag, mean), hashed
# (the mapping kind must match per feature); the candidate differs in
# everything else (architecture, rows, widths, seed).
# Requests with full, short, empty and missing bags and missing singles:
# every candidate record re-scores bit for bit and /metrics == audit pd.
BAGS="--bag-features C1,C2:mean --max-bag 4"
"$CTRTOOL" synth --out "$T/bp.ctrm" --rows-per-table 300 --dim 8 --hidden 16,8 $BAGS --seed 91 --name bags >/dev/null \
    || { echo "synth bp failed"; exit 1; }
"$CTRTOOL" synth --out "$T/bc.ctrm" --rows-per-table 500 --dim 4 --hidden 8 $BAGS --seed 92 --name bags \
    --arch wukong --bottom 8 --layers 1 --nf 2 --nl 2 --k 3 --fmb 8 >/dev/null || { echo "synth bc failed"; exit 1; }
srv_start bags --model "p=$T/bp.ctrm" --model "c=$T/bc.ctrm" --shadow c:p --audit-dir "$T/audit_bags" || exit 1
NB=0; NEX=0
for i in $(seq 1 40); do
    case $((i % 5)) in
        0) ex="{\"C1\":[\"a$i\",\"b$i\",$i],\"C2\":[\"x\"],\"I1\":$i}" ;;
        1) ex="{\"C1\":[],\"C2\":[\"y$i\",\"z\",\"w\",\"v\"],\"C3\":\"c$i\"}" ;;
        2) ex="{\"I2\":$((i * 3)),\"C4\":\"k$i\"}" ;;
        3) ex="{\"C1\":[\"only$i\"],\"I13\":null}" ;;
        4) ex="{\"C2\":[],\"C26\":\"$i\"}" ;;
    esac
    req POST /v1/score "{\"request_id\":\"bag-$i\",\"context\":{\"C9\":\"ctx$((i % 3))\"},\"examples\":[$ex,$ex]}"
    [ "$ST" = 200 ] && NB=$((NB + 1))
    NEX=$((NEX + 2))
done
[ "$NB" = 40 ]; check $? "bag requests answered 200 ($NB of 40)"
wait_shadow_drained $NEX 30; check $? "the bag shadow drained ($NEX examples)"
shadow_metrics; cp "$T/metrics.txt" "$T/metrics_bags.txt"
[ "$(smetric ctrd_shadow_examples_total)" = $NEX ]; check $? "every bag example compared ($(smetric ctrd_shadow_examples_total))"
srv_stop
"$CTRTOOL" audit pd --shadow --json "$T/audit_bags" >"$T/pd_bags.json" 2>/dev/null
compare_metrics_pd "$T/metrics_bags.txt" "$T/pd_bags.json" p c
"$CTRTOOL" audit verify --model "$T/bp.ctrm" --model "$T/bc.ctrm" "$T/audit_bags" >"$T/verify_bags.out" 2>&1
grep -q "^verified=80 mismatched=0 skipped=0 corrupt=0 torn=0 shadow=40\$" "$T/verify_bags.out"
check $? "bags: every record re-scores bit for bit with both models: $(grep '^verified=' "$T/verify_bags.out")"
finish
