#!/bin/bash
# ctrtool audit on shadow records (type 2), from logs written with the
# library encoder by test_audit_shadow_log --write-log (two models, each
# request's primary record and its shadow record, in two segments; and a
# segment of made-up score pairs of two primaries), whose expected.json
# holds the figures computed there on their own:
#   - pd --shadow --json: examples, flips, pd_sum and both score sums
#     exactly, pd/means = sum/examples exactly, every cumulative bucket;
#     at --threshold T; --digest/--primary select by the primary's digest
#   - pd --shadow text, usage errors, a log with no shadow record
#   - verify --model P --model C: every record, shadow=N; with P alone the
#     shadow records are skipped
#   - plain pd skips shadow records and says so; dump prints type and the
#     primary fields; dump --requests leaves shadow records out
set -euo pipefail
B=${B:-build}
T=$(mktemp -d "${TMPDIR:-/tmp}/ctrtool_shadow.XXXXXX")
trap 'rm -rf "$T"' EXIT
tool="$B/ctrtool"
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$tool" ] || fail "$tool is not built"
"$B/tests/test_audit_shadow_log" --write-log "$T" >/dev/null || fail "writing the logs"
X="$T/expected.json"
PY=/usr/bin/python3

# compare NAME JSON_OUT: the pd --shadow output against expected[NAME].
compare() {
    "$PY" - "$X" "$1" "$2" <<'EOF' || fail "pd --shadow $1: $(cat "$2")"
import json, sys
want = json.load(open(sys.argv[1]))[sys.argv[2]]
got = json.load(open(sys.argv[3]))
bad = []
for k in ("records", "examples", "flips", "threshold"):
    if got[k] != want[k]:
        bad.append("%s %r, want %r" % (k, got[k], want[k]))
# The sums exactly: both sides print %.17g.
for k in ("pd_sum", "primary_sum", "candidate_sum"):
    if got[k] != want[k]:
        bad.append("%s %r, want %r" % (k, got[k], want[k]))
n = want["examples"]
for k, v in (("pd", want["pd_sum"] / n), ("flip_rate", want["flips"] / n),
             ("primary_mean", want["primary_sum"] / n), ("candidate_mean", want["candidate_sum"] / n)):
    if got[k] != v:
        bad.append("%s %r, want %r" % (k, got[k], v))
les = [b["le"] for b in got["buckets"]]
want_les = [1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, "+Inf"]
if les != want_les:
    bad.append("bucket bounds %r" % les)
counts = [b["count"] for b in got["buckets"]]
if counts != want["buckets"]:
    bad.append("buckets %r, want %r" % (counts, want["buckets"]))
if bad:
    print("\n".join(bad))
    sys.exit(1)
EOF
}

"$tool" audit pd --shadow --json "$T/log" >"$T/pd.json" || fail "pd --shadow exit $?"
compare log "$T/pd.json"
"$tool" audit pd --shadow --json --threshold 0.435 "$T/log" >"$T/pd_t.json" || fail "pd --shadow --threshold"
compare log_t "$T/pd_t.json"
"$tool" audit pd --shadow --json "$T/synth" >"$T/pd_s.json" || fail "pd --shadow synth"
compare synth "$T/pd_s.json"
D1=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["d1"])' "$X")
"$tool" audit pd --shadow --json --digest "$D1" "$T/synth" >"$T/pd_d1.json" || fail "pd --shadow --digest"
compare synth_d1 "$T/pd_d1.json"
"$PY" - "$X" "$T/pd.json" "$T/pd_s.json" "$T/pd_d1.json" <<'EOF' || fail "pairs, skipped counts"
import json, sys
x = json.load(open(sys.argv[1]))
log, syn, d1 = (json.load(open(p)) for p in sys.argv[2:])
assert log["pairs"] == [{"primary": x["primary_digest"], "candidate": x["candidate_digest"],
                         "records": x["type2"], "examples": x["type2_examples"]}], log["pairs"]
assert log["skipped_scored"] == x["type1"] and log["corrupt"] == 0 and log["torn"] == 0, log
assert [p["primary"] for p in syn["pairs"]] == [x["d2"], x["d1"]], syn["pairs"]
assert d1["only"] == [x["d1"]] and d1["skipped_model"] > 0, d1
assert d1["skipped_model"] + d1["records"] == syn["records"], (d1, syn)
EOF
# --primary M: the digest of file M, here the log's primary.
"$tool" audit pd --shadow --json --primary "$T/p.ctrm" "$T/log" >"$T/pd_p.json" || fail "pd --shadow --primary"
compare log "$T/pd_p.json"
# A filter matching no shadow record: exit 1.
set +e
"$tool" audit pd --shadow --primary "$T/c.ctrm" "$T/log" >"$T/out" 2>"$T/err"; rc=$?
set -e
[ $rc = 1 ] && grep -q "no shadow record of the --digest/--primary" "$T/err" ||
    fail "--primary of no shadow record: exit $rc, $(cat "$T/err")"

# The table.
"$tool" audit pd --shadow "$T/log" >"$T/out" || fail "pd --shadow text"
grep -q "^audit pd --shadow: $("$PY" -c 'import json,sys; x=json.load(open(sys.argv[1])); print(x["type2"], "shadow records,", x["type2_examples"])' "$X") examples" "$T/out" ||
    fail "text head: $(head -1 "$T/out")"
grep -q "^    le +Inf  *$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["type2_examples"])' "$X")$" "$T/out" ||
    fail "text +Inf bucket"
grep -q "^  relative PD .* (sum $("$PY" -c 'import json,sys; print("%.17g" % json.load(open(sys.argv[1]))["log"]["pd_sum"])' "$X"))$" "$T/out" ||
    fail "text pd sum: $(grep 'relative PD' "$T/out")"

# Usage errors: exit 2.
for args in "--shadow --model $T/c.ctrm" "--threshold 0.3 --model $T/c.ctrm" "--shadow --threshold 1" \
            "--shadow --threshold 0" "--shadow --kernel scalar" ""; do
    set +e
    # shellcheck disable=SC2086
    "$tool" audit pd $args "$T/log" >/dev/null 2>"$T/err"; rc=$?
    set -e
    [ $rc = 2 ] || fail "pd $args: exit $rc, want 2: $(cat "$T/err")"
done

# A log without shadow records (a fuzz seed of type-1 records): nothing
# compared, exit 0, a note.
"$tool" audit pd --shadow --json tests/fuzz/corpus/audit_reader/seg-00-ok >"$T/none.json" 2>"$T/err" ||
    fail "pd --shadow on a log without shadow records: exit $?"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["examples"] == 0 and d["pd"] is None and d["buckets"][-1]["count"] == 0, d' "$T/none.json" ||
    fail "no shadow records: $(cat "$T/none.json")"
grep -q "no shadow record (type 2) in the log" "$T/err" || fail "no note: $(cat "$T/err")"

# verify: type-2 records verify with the candidate's file.
N1=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["type1"])' "$X")
N2=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["type2"])' "$X")
"$tool" audit verify --model "$T/p.ctrm" --model "$T/c.ctrm" "$T/log" >"$T/v.out" 2>&1 || fail "verify: $(cat "$T/v.out")"
grep -qx "verified=$((N1 + N2)) mismatched=0 skipped=0 corrupt=0 torn=0 shadow=$N2" "$T/v.out" ||
    fail "verify both: $(grep '^verified=' "$T/v.out")"
grep -q "^  shadow      $N2 records" "$T/v.out" || fail "verify shadow line"
"$tool" audit verify --model "$T/p.ctrm" "$T/log" >"$T/v.out" 2>&1 || fail "verify P: $(cat "$T/v.out")"
grep -qx "verified=$N1 mismatched=0 skipped=$N2 corrupt=0 torn=0 shadow=0" "$T/v.out" ||
    fail "verify P alone: $(grep '^verified=' "$T/v.out")"
grep -q "$N2 of them shadow records" "$T/v.out" || fail "verify P alone: no shadow note"
# A log without shadow records prints the summary line as before.
"$tool" audit verify --model "$T/p.ctrm" tests/fuzz/corpus/audit_reader/seg-00-ok >"$T/v.out" 2>&1 &&
    fail "verify of another model's records exits 0"
grep -qx "verified=0 mismatched=0 skipped=[0-9]* corrupt=0 torn=0" "$T/v.out" ||
    fail "verify without shadow records: $(grep '^verified=' "$T/v.out")"
"$tool" audit verify --model "$T/c.ctrm" "$T/synth" >"$T/v.out" 2>&1 && fail "verify of made-up digests exits 0"
grep -q "^verified=0 mismatched=0 skipped=[0-9]* corrupt=0 torn=0 shadow=0$" "$T/v.out" ||
    fail "verify synth: $(grep '^verified=' "$T/v.out")"

# Plain pd skips the shadow records and says so.
"$tool" audit pd --model "$T/c.ctrm" --json "$T/log" >"$T/pd_plain.json" || fail "plain pd"
"$PY" - "$X" "$T/pd_plain.json" <<'EOF' || fail "plain pd: $(cat "$T/pd_plain.json")"
import json, sys
x = json.load(open(sys.argv[1])); d = json.load(open(sys.argv[2]))
assert d["records"] == x["type1"] and d["skipped_shadow"] == x["type2"], d
EOF
"$tool" audit pd --model "$T/c.ctrm" "$T/log" >"$T/out" || fail "plain pd text: exit $?"
grep -q "^  skipped     $N2 shadow records" "$T/out" || fail "plain pd text"

# dump: type, and the primary's fields of a shadow record.
"$tool" audit dump --no-values "$T/log" >"$T/dump" || fail "dump"
[ "$(grep -c '"type":2,' "$T/dump")" = "$N2" ] || fail "dump: type 2 count"
[ "$(grep -c '"type":1,' "$T/dump")" = "$N1" ] || fail "dump: type 1 count"
first2=$(grep -m1 '"type":2,' "$T/dump")
grep -q '"primary_seq":[0-9]*,"primary_model":"sha256:[0-9a-f]\{64\}","primary_generation":1,"primary_scores":\[' <<<"$first2" ||
    fail "dump: primary fields: $first2"
"$PY" - "$X" "$T/dump" <<'EOF' || fail "dump: primary fields against the primary records"
import json, sys
x = json.load(open(sys.argv[1]))
recs = [json.loads(l) for l in open(sys.argv[2]) if '"offset"' in l]
by_seq = {r["seq"]: r for r in recs if r["type"] == 1}
unlogged = 0
for r in recs:
    if r["type"] != 2:
        continue
    assert r["model"] == x["candidate_digest"] and r["primary_model"] == x["primary_digest"], r
    if r["primary_seq"] == 0:
        unlogged += 1
        continue
    p = by_seq[r["primary_seq"]]
    assert p["request_id"] == r["request_id"] and p["scores"] == r["primary_scores"], (p, r)
assert unlogged > 0
EOF
"$tool" audit dump --requests --model "$T/p.ctrm" "$T/log" >"$T/req" 2>"$T/err" || fail "dump --requests"
[ "$(wc -l <"$T/req")" = "$N1" ] || fail "dump --requests: $(wc -l <"$T/req") bodies, want $N1"
grep -q "left out $N2 shadow records" "$T/err" || fail "dump --requests note: $(cat "$T/err")"
echo "ok: pd --shadow ($N2 shadow records, 4 logs and filters exact), verify, plain pd, dump"
