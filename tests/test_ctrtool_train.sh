#!/bin/bash
# ctrtool gen-data / train / eval / pd / score end to end: exit codes, the
# eval --json figures, PD of a model with itself is 0, score prints one line
# per row (nan for a skipped bad row), bad rows named by file:line.
set -euo pipefail
B=${B:-build}
T=$(mktemp -d "${TMPDIR:-/tmp}/ctrtool_train.XXXXXX")
trap 'rm -rf "$T"' EXIT
tool="$B/ctrtool"
fail() { echo "FAIL: $*"; exit 1; }

"$tool" gen-data --rows 6000 --seed 1 --out "$T/train.tsv" 2>"$T/gen.log"
grep -q "hidden model's own AUC" "$T/gen.log" || fail "gen-data did not report its AUC"
"$tool" gen-data --rows 1000 --seed 2 --out "$T/test.tsv" 2>/dev/null
[ "$(wc -l <"$T/test.tsv")" -eq 1000 ] || fail "gen-data row count"

"$tool" train --data "$T/train.tsv" --out "$T/m.ctrm" --hidden 16 --dim 4 \
    --buckets 1024 --batch 64 --lr 3e-3 --threads 2 --quiet || fail "train"
"$tool" eval --model "$T/m.ctrm" --data "$T/test.tsv" --json >"$T/eval.json"
field() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" "$T/eval.json"; }
[ "$(field n)" = 1000 ] || fail "eval n: $(cat "$T/eval.json")"
awk -v a="$(field auc)" -v l="$(field logloss)" 'BEGIN { exit !(a > 0.65 && a < 1 && l > 0.2 && l < 0.6) }' \
    || fail "eval figures: $(cat "$T/eval.json")"

out=$("$tool" pd --model "$T/m.ctrm" --model "$T/m.ctrm" --data "$T/test.tsv" --json)
echo "$out" | grep -q '"pd":0\.0*[,}]' || fail "PD of a model with itself: $out"
echo "$out" | grep -q '"flip_rate":0\.0*[,}]' || fail "flip rate of a model with itself: $out"

"$tool" score --model "$T/m.ctrm" --data "$T/test.tsv" --out "$T/s.txt"
[ "$(wc -l <"$T/s.txt")" -eq 1000 ] || fail "score line count"
# the same rows without labels (39 fields) score the same
cut -f2- "$T/test.tsv" >"$T/nolabel.tsv"
"$tool" score --model "$T/m.ctrm" --data "$T/nolabel.tsv" | cmp -s - "$T/s.txt" || fail "unlabelled rows score differently"

# a bad row: train stops naming it; --skip-bad counts it; score prints nan
{ head -n 10 "$T/test.tsv"; printf '1\tx\n'; tail -n 5 "$T/test.tsv"; } >"$T/bad.tsv"
if "$tool" train --data "$T/bad.tsv" --out "$T/b.ctrm" --hidden 4 --quiet 2>"$T/err.txt"; then
    fail "train accepted a bad row"
fi
grep -q 'bad.tsv:11: expected 40 tab-separated fields, found 2' "$T/err.txt" || fail "message: $(cat "$T/err.txt")"
"$tool" eval --model "$T/m.ctrm" --data "$T/bad.tsv" --skip-bad --json 2>/dev/null | grep -q '"bad_rows_skipped":1' \
    || fail "eval --skip-bad count"
"$tool" score --model "$T/m.ctrm" --data "$T/bad.tsv" --skip-bad 2>/dev/null >"$T/sb.txt"
[ "$(sed -n 11p "$T/sb.txt")" = nan ] && [ "$(wc -l <"$T/sb.txt")" -eq 16 ] || fail "score --skip-bad alignment"

# usage errors exit 2
set +e
"$tool" train --data "$T/train.tsv" >/dev/null 2>&1; [ $? -eq 2 ] || fail "missing --out must exit 2"
"$tool" train --data x --out y --activation tanh >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad activation must exit 2"
echo "ok"
