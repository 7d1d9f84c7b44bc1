#!/bin/bash
# Bag features end to end: ctrtool gen-data --bag-features writes bag
# columns whose summed value effects drive the hidden label; ctrtool train
# --bag reads them, pools them (sum, mean) and learns them:
#  - held-out AUC clearly above the same model trained without the bag
#    columns, and as close to the hidden model's AUC as a model trained on
#    bag-free data of the same task gets to its own (bags cost no accuracy);
#  - ctrtool eval of the model on its training rows gives the trainer's own
#    figures (from the model's provenance), so the bags are scored the way
#    they were trained; ctrtool score gives one score per row;
#  - byte-identical model across --threads 1 and 2;
#  - --init-seed and --order-seed each change the model, and --seed S is
#    --init-seed S --order-seed S byte for byte (so a run with --seed alone
#    writes what it wrote before the two seeds existed);
#  - a bag over its limit stops training naming file:line and the column.
# Figures (80k training rows, 20k test rows): bags 0.786 (mean pooling
# 0.772), without the bag columns 0.746, hidden model 0.858 (gap 0.072; on
# bag-free data of the same task 0.764 vs 0.835, gap 0.071); printed each run.
set -euo pipefail
B=${B:-build}
T=$(mktemp -d "${TMPDIR:-/tmp}/train_bags.XXXXXX")
trap 'rm -rf "$T"' EXIT
tool="$B/ctrtool"
fail() { echo "FAIL: $*"; exit 1; }

gen() { # rows seed out [flags]: prints the hidden model's AUC on the rows
    local rows=$1 seed=$2 out=$3
    shift 3
    "$tool" gen-data --rows "$rows" --seed "$seed" --model-seed 2 --out "$out" --json "$@" 2>"$T/gen.json"
    sed -n 's/.*"generator_auc":\([^,}]*\).*/\1/p' "$T/gen.json"
}
BAGS=(--bag-features 3 --max-bag 10)
gen 80000 1 "$T/train.csv" "${BAGS[@]}" >/dev/null
hidden=$(gen 20000 2 "$T/test.csv" "${BAGS[@]}")
gen 80000 1 "$T/plain_train.tsv" >/dev/null
hidden_plain=$(gen 20000 2 "$T/plain_test.tsv")
head -n 1 "$T/train.csv" | grep -q ',C26,B1,B2,B3$' || fail "gen-data header: $(head -n 1 "$T/train.csv")"
sed -n 2p "$T/train.csv" | grep -Eq ',([0-9a-f]{8}(\|[0-9a-f]{8})*)?$' || fail "gen-data bag column: $(sed -n 2p "$T/train.csv")"

DENSE=$(seq -s, -f 'I%g' 1 13)
CAT=$(seq -s, -f 'C%g' 1 26)
COMMON=(--hidden 64,32 --dim 8 --buckets 16384 --epochs 1 --valid-frac 0 --quiet)
CSV=(--format csv --dense "$DENSE" --transform log1p)
BAGFLAGS=(--categorical "$CAT,B1,B2,B3" --bag 'B1:|:10' --bag 'B2:|:10' --bag 'B3:|:10')

"$tool" train --data "$T/train.csv" "${CSV[@]}" "${BAGFLAGS[@]}" "${COMMON[@]}" --threads 2 \
    --out "$T/bags.ctrm" || fail "train with bags"
"$tool" train --data "$T/train.csv" "${CSV[@]}" "${BAGFLAGS[@]}" "${COMMON[@]}" --threads 1 \
    --out "$T/bags1.ctrm" || fail "train with bags, 1 thread"
cmp -s "$T/bags.ctrm" "$T/bags1.ctrm" || fail "bag model differs between --threads 1 and 2"
"$tool" train --data "$T/train.csv" "${CSV[@]}" "${BAGFLAGS[@]}" "${COMMON[@]}" --pool mean \
    --threads 2 --out "$T/mean.ctrm" || fail "train with bags, mean"
"$tool" train --data "$T/train.csv" "${CSV[@]}" --categorical "$CAT" "${COMMON[@]}" --threads 2 \
    --out "$T/nobags.ctrm" || fail "train without the bag columns"
"$tool" train --data "$T/plain_train.tsv" "${COMMON[@]}" --threads 2 --out "$T/plain.ctrm" \
    || fail "train on bag-free data"
# (Output to a file first: grep -q stopping early would fail the pipe.)
"$tool" inspect "$T/bags.ctrm" >"$T/bags.txt"
grep -Eq '^ +B1 .* sum' "$T/bags.txt" || fail "inspect: B1 is not a sum bag"
"$tool" inspect "$T/mean.ctrm" >"$T/mean.txt"
grep -Eq '^ +B3 .* mean' "$T/mean.txt" || fail "inspect: B3 is not a mean bag"

num() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p"; }
auc() { "$tool" eval --model "$1" --data "$2" --json | num auc; }
a_bags=$(auc "$T/bags.ctrm" "$T/test.csv")
a_mean=$(auc "$T/mean.ctrm" "$T/test.csv")
a_nob=$(auc "$T/nobags.ctrm" "$T/test.csv")
a_plain=$(auc "$T/plain.ctrm" "$T/plain_test.tsv")
echo "held-out AUC: bags (sum) $a_bags, bags (mean) $a_mean, without the bag columns $a_nob;" \
    "hidden model $hidden (gap $(awk -v h="$hidden" -v a="$a_bags" 'BEGIN{printf "%.4f", h - a}'));" \
    "bag-free data of the same task: trained $a_plain, hidden $hidden_plain" \
    "(gap $(awk -v h="$hidden_plain" -v a="$a_plain" 'BEGIN{printf "%.4f", h - a}'))"
awk -v b="$a_bags" -v n="$a_nob" 'BEGIN { exit !(b >= n + 0.02) }' \
    || fail "bags $a_bags not clearly above no bags $a_nob"
awk -v b="$a_mean" -v n="$a_nob" 'BEGIN { exit !(b >= n + 0.01) }' \
    || fail "mean bags $a_mean not above no bags $a_nob"
awk -v b="$a_bags" -v h="$hidden" -v p="$a_plain" -v hp="$hidden_plain" \
    'BEGIN { exit !(b <= h + 0.005 && h - b <= hp - p + 0.02) }' \
    || fail "bags $a_bags vs hidden $hidden: further than bag-free $a_plain vs $hidden_plain"

# ctrtool eval on the training rows = the trainer's figures on them.
for m in bags mean; do
    "$tool" inspect --json "$T/$m.ctrm" >"$T/$m.json"
    "$tool" eval --model "$T/$m.ctrm" --data "$T/train.csv" --json >"$T/$m.eval"
    for f in auc logloss; do
        want=$(sed 's/.*"metrics":{"train":{//' "$T/$m.json" | num $f)
        got=$(num $f <"$T/$m.eval")
        awk -v a="$want" -v b="$got" 'BEGIN { d = a - b; exit !(a != "" && d < 1e-9 && d > -1e-9) }' \
            || fail "$m: eval $f $got, the trainer's $want"
    done
done
"$tool" score --model "$T/bags.ctrm" --data "$T/test.csv" --format csv --out "$T/s.txt"
[ "$(wc -l <"$T/s.txt")" -eq 20000 ] && ! grep -q nan "$T/s.txt" || fail "score: one score per row"

# Criteo TSV: a C column as a bag (gen-data's values hold no '|': bags of
# one); eval splits it as the trainer did.
head -n 5000 "$T/plain_train.tsv" >"$T/small.tsv"
"$tool" train --data "$T/small.tsv" --bag 'C3:|:4' --bag 'C12:|:2' --pool mean --hidden 8 --dim 4 \
    --buckets 1024 --valid-frac 0 --quiet --out "$T/criteo.ctrm" || fail "train criteo with bags"
"$tool" inspect --json "$T/criteo.ctrm" >"$T/criteo.json"
"$tool" eval --model "$T/criteo.ctrm" --data "$T/small.tsv" --json >"$T/criteo.eval"
want=$(sed 's/.*"metrics":{"train":{//' "$T/criteo.json" | num auc)
got=$(num auc <"$T/criteo.eval")
awk -v a="$want" -v b="$got" 'BEGIN { d = a - b; exit !(a != "" && d < 1e-9 && d > -1e-9) }' \
    || fail "criteo: eval auc $got, the trainer's $want"
grep -q '"bags":\[{"column":"C3","sep":"|","max":4},{"column":"C12","sep":"|","max":2}\]' "$T/criteo.json" \
    || fail "criteo: bags in the provenance: $(grep -o '"bags".\{0,80\}' "$T/criteo.json")"
if "$tool" train --data "$T/small.tsv" --bag 'C3:tab:4' --quiet --out "$T/x.ctrm" 2>/dev/null; then
    fail "a multi-character separator was accepted"
fi

# Seeds, on a smaller slice.
head -n 5001 "$T/train.csv" >"$T/small.csv"
SMALL=(--data "$T/small.csv" "${CSV[@]}" "${BAGFLAGS[@]}" --hidden 16 --dim 4 --buckets 1024
       --epochs 2 --threads 2 --quiet)
"$tool" train "${SMALL[@]}" --seed 5 --out "$T/s5.ctrm"
"$tool" train "${SMALL[@]}" --init-seed 5 --order-seed 5 --seed 5 --out "$T/s55.ctrm"
"$tool" train "${SMALL[@]}" --seed 5 --init-seed 6 --out "$T/i6.ctrm"
"$tool" train "${SMALL[@]}" --seed 5 --order-seed 6 --out "$T/o6.ctrm"
"$tool" train "${SMALL[@]}" --seed 6 --out "$T/s6.ctrm"
cmp -s "$T/s5.ctrm" "$T/s55.ctrm" || fail "--seed 5 differs from --seed 5 --init-seed 5 --order-seed 5"
for m in i6 o6 s6; do
    ! cmp -s "$T/s5.ctrm" "$T/$m.ctrm" || fail "$m: the seed changed nothing"
done
! cmp -s "$T/i6.ctrm" "$T/o6.ctrm" || fail "init and order seeds give the same model"
for m in s5 i6 o6; do "$tool" inspect --json "$T/$m.ctrm" >"$T/$m.json"; done
grep -q '"init_seed"' "$T/s5.json" && fail "init_seed recorded without --init-seed"
grep -q '"seed":5,"init_seed":6,"order_seed":5' "$T/i6.json" \
    || fail "i6 provenance: $(grep -o '"seed".\{0,40\}' "$T/i6.json")"
grep -q '"seed":5,"init_seed":5,"order_seed":6' "$T/o6.json" || fail "o6 provenance"

# A bag over its limit stops training, naming file:line, the column and the limit.
{ head -n 3 "$T/small.csv"; sed -n 2p "$T/small.csv" | sed 's/,[^,]*$/,a|b|c|d|e|f|g|h|i|j|k/'; } >"$T/bad.csv"
if "$tool" train --data "$T/bad.csv" "${CSV[@]}" "${BAGFLAGS[@]}" --hidden 4 --quiet --out "$T/b.ctrm" 2>"$T/err.txt"; then
    fail "train accepted a bag over its limit"
fi
grep -q 'bad.csv:4: B3: more than 10 values in the bag' "$T/err.txt" || fail "message: $(cat "$T/err.txt")"
set +e
"$tool" train --data "$T/small.csv" --out "$T/x.ctrm" --bag 'B1:|' >/dev/null 2>&1; [ $? -eq 2 ] || fail "--bag without MAX must exit 2"
"$tool" train --data "$T/small.csv" --out "$T/x.ctrm" --pool max >/dev/null 2>&1; [ $? -eq 2 ] || fail "--pool max must exit 2"
echo "ok"
