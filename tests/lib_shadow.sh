# lib_shadow.sh - helpers of the shadow candidate's end-to-end tests
# (tests/test_server_shadow.sh, test_shadow_promote.sh, test_shadow_faults.sh);
# source it after lib_server.sh, do not run it.
#
#   PY                               Debian's python3 (tests parse JSON with it)
#   shadow_metrics                   /metrics into $T/metrics.txt
#   smetric NAME [LABEL=VALUE...]    the sum of NAME's series (in $T/metrics.txt)
#                                    that carry every given label
#   wait_shadow_drained N [S]        poll until ctrd_shadow_examples_total plus
#                                    every dropped reason == N; 1 on timeout
#   make_rows N SEED                 $T/rows.tsv (ctrtool gen-data) and
#                                    $T/examples.jsonl, one v1 example a row
#   send_rows PREFIX [MODEL]         every row of $T/examples.jsonl as /v1/score
#                                    requests of 1..7 examples, 8 in flight,
#                                    request ids PREFIX-<first row>; answers in
#                                    $T/PREFIX.<first row>, every score in row
#                                    order in $T/PREFIX.txt; sets SENT_REQ,
#                                    SENT_OK (answers 200)
#   train_pair P C                   two small trained models of one schema
#                                    (ctrtool train on gen-data rows): P an MLP
#                                    (seed 1, 4096 buckets), C a DCNv2 (seed 2,
#                                    2048 buckets, dim 8): a retrain of another
#                                    shape, so scores spread and PD is real
#   compare_metrics_pd METRICS PD_JSON PRIMARY CANDIDATE
#                                    checks a /metrics page's shadow series of
#                                    the pair against `ctrtool audit pd --shadow
#                                    --json`: _count, every bucket and flips
#                                    equal, _sum and the score means within
#                                    1e-9 relative; counted into CHECKS/FAILS
#   xxh3_sampled F KEY...            prints the keys ctrd's shadow samples at F
#                                    (XXH3_64 with seed "ctrd", h < F * 2^64),
#                                    computed with the libxxhash ctrd links

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

shadow_metrics() {
    curl -s --max-time 5 "$SRV_URL/metrics" >"$T/metrics.txt"
}

smetric() {  # NAME [LABEL=VALUE...]
    local name=$1
    shift
    awk -v n="$name" -v want="$*" '
        BEGIN { k = split(want, w, " ") }
        {
            s = $1; i = index(s, "{"); base = (i ? substr(s, 1, i - 1) : s)
            if (base != n || $0 ~ /^#/) next
            for (j = 1; j <= k; j++) {
                split(w[j], kv, "=")
                if (index(s, kv[1] "=\"" kv[2] "\"") == 0) next
            }
            sum += $2; found = 1
        }
        END { if (found) printf "%.17g\n", sum }' "$T/metrics.txt"
}

wait_shadow_drained() {  # N [TIMEOUT_S]
    local want=$1 i c d
    for i in $(seq 1 $(( ${2:-30} * 10 ))); do
        shadow_metrics
        c=$(smetric ctrd_shadow_examples_total); d=$(smetric ctrd_shadow_dropped_examples_total)
        [ -n "$c" ] && [ $(( ${c%.*} + ${d%.*} )) -ge "$want" ] \
            && [ "$(smetric ctrd_shadow_queue_examples)" = 0 ] && return 0
        sleep 0.1
    done
    return 1
}

make_rows() {  # N SEED (rows of the hidden model train_pair learns)
    "$CTRTOOL" gen-data --rows "$1" --out "$T/rows.tsv" --seed "$2" --model-seed 5 >/dev/null 2>&1 \
        || { echo "ctrtool gen-data failed"; exit 1; }
    tsv_to_jsonl "$T/rows.tsv" "$T/examples.jsonl"
}

send_rows() {  # PREFIX [MODEL]
    local pre=$1 model=${2-} rows start=1 k=0 n end body mk="" PIDS="" f
    rows=$(wc -l <"$T/examples.jsonl")
    [ -n "$model" ] && mk="\"model\":\"$model\","
    SENT_REQ=0
    while [ "$start" -le "$rows" ] && [ "$k" -lt 10000 ]; do
        n=$(( (k * 5) % 7 + 1 )); end=$((start + n - 1)); [ "$end" -gt "$rows" ] && end=$rows
        body="{$mk\"request_id\":\"$pre-$start\",\"examples\":[$(sed -n "${start},${end}p" "$T/examples.jsonl" | paste -sd,)]}"
        curl -s --max-time 20 -H 'Content-Type: application/json' --data-binary "$body" \
            -o "$T/$pre.$start" -w '%{http_code}\n' "$SRV_URL/v1/score" >"$T/$pre.st.$start" &
        PIDS="$PIDS $!"; k=$((k + 1)); start=$((end + 1))
        if [ $((k % 8)) = 0 ]; then wait $PIDS; PIDS=""; fi
    done
    [ -z "$PIDS" ] || wait $PIDS
    SENT_REQ=$k
    SENT_OK=$(cat "$T/$pre".st.* | grep -c '^200$')
    : >"$T/$pre.txt"
    for f in $(ls "$T/$pre".* | grep -E "/$pre\.[0-9]+\$" | sed "s|.*/$pre\.||" | sort -n); do
        { scores_of "$(cat "$T/$pre.$f")"; echo; } | tr ',' '\n' >>"$T/$pre.txt"
    done
}

train_pair() {  # P C
    "$CTRTOOL" gen-data --rows 10000 --out "$T/train.tsv" --seed 3 --model-seed 5 >/dev/null 2>&1 \
        || { echo "ctrtool gen-data (training rows) failed"; exit 1; }
    "$CTRTOOL" train --data "$T/train.tsv" --out "$1" --hidden 32,16 --buckets 4096 --seed 1 --threads 1 \
        >/dev/null 2>&1 || { echo "ctrtool train $1 failed"; exit 1; }
    "$CTRTOOL" train --data "$T/train.tsv" --out "$2" --arch dcnv2 --cross 2 --bottom 16 --hidden 16 --dim 8 \
        --buckets 2048 --seed 2 --threads 1 >/dev/null 2>&1 || { echo "ctrtool train $2 failed"; exit 1; }
}

xxh3_sampled() {  # F KEY...
    "$PY" - "$@" <<'PY'
import ctypes, sys
lib = ctypes.CDLL("libxxhash.so.0")
h = lib.XXH3_64bits_withSeed
h.restype = ctypes.c_uint64
h.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
f = float(sys.argv[1])
for k in sys.argv[2:]:
    b = k.encode()
    v = h(b, len(b), 0x63747264)
    if f >= 1.0 or (f > 0.0 and v < int(f * 18446744073709551616.0)):
        print(k)
PY
}

compare_metrics_pd() {  # METRICS PD_JSON PRIMARY CANDIDATE
    local out="$T/pd_cmp.$$"
    local rc
    "$PY" - "$1" "$2" "$3" "$4" >"$out" 2>&1 <<'PY'
import json, math, re, sys
m = open(sys.argv[1]).read()
pd = json.load(open(sys.argv[2]))
lab = 'primary="%s"' % sys.argv[3], 'candidate="%s"' % sys.argv[4]
bad = 0
def say(ok, what):
    global bad
    print(("ok: " if ok else "FAIL: ") + what)
    bad += 0 if ok else 1
def series(name, extra=""):
    out = []
    for line in m.splitlines():
        if line.startswith(name + "{") and lab[0] in line and lab[1] in line and extra in line:
            out.append(line)
    return out
def val(name, extra=""):
    s = series(name, extra)
    return float(s[0].rsplit(" ", 1)[1]) if s else None
cnt, tot = val("ctrd_shadow_pd_count"), val("ctrd_shadow_pd_sum")
say(cnt == pd["examples"], "histogram _count %s == audit pd examples %s" % (cnt, pd["examples"]))
rel = abs(tot - pd["pd_sum"]) / max(abs(pd["pd_sum"]), 1e-300)
say(rel <= 1e-9, "histogram _sum %.17g == audit pd pd_sum %.17g (relative %.2g <= 1e-9)" % (tot, pd["pd_sum"], rel))
buckets = {}
for line in series("ctrd_shadow_pd_bucket"):
    le = re.search(r'le="([^"]*)"', line).group(1)
    buckets[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
tool = {float("inf") if str(b["le"]) in ("+Inf", "inf", "Infinity") else float(b["le"]): b["count"] for b in pd["buckets"]}
say(len(buckets) == 15, "the histogram has 14 bounds and +Inf (%d buckets)" % len(buckets))
for le in sorted(set(buckets) | set(tool)):
    if le == float("inf") and le not in tool:
        say(buckets[le] == pd["examples"], "bucket +Inf %s == examples" % buckets[le])
        continue
    say(buckets.get(le) == tool.get(le), "bucket le=%g: /metrics %s, audit pd %s" % (le, buckets.get(le), tool.get(le)))
fl = val("ctrd_shadow_flips_total")
say(fl == pd["flips"], "ctrd_shadow_flips_total %s == audit pd flips %s" % (fl, pd["flips"]))
for role, key in (("primary", "primary_mean"), ("candidate", "candidate_mean")):
    g = val("ctrd_shadow_score_mean", 'role="%s"' % role)
    s = val("ctrd_shadow_score_sum_total", 'role="%s"' % role)
    r1 = abs(g - pd[key]) / max(abs(pd[key]), 1e-300)
    r2 = abs(s / cnt - pd[key]) / max(abs(pd[key]), 1e-300)
    say(r1 <= 1e-9 and r2 <= 1e-9, "%s score mean: gauge %.12g, sum/count %.12g, audit pd %.12g" % (role, g, s / cnt, pd[key]))
mean = pd["pd"]
say(abs(mean - pd["pd_sum"] / pd["examples"]) <= 1e-12, "audit pd's pd is pd_sum / examples (%.6g)" % mean)
say(0 < mean < 2, "the models disagree: mean PD %.4f" % mean)
sys.exit(1 if bad else 0)
PY
    rc=$?
    cat "$out"
    CHECKS=$((CHECKS + $(grep -c '^ok: ' "$out")))
    FAILS=$((FAILS + $(grep -c '^FAIL: ' "$out")))
    [ $rc -eq 0 ] || grep -q '^FAIL: ' "$out" || fail "the /metrics vs audit pd comparison stopped (exit $rc)"
}
