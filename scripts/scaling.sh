#!/bin/bash
# scaling.sh - Wukong's scaling law in miniature (`make scaling`;
# docs/SCALING.md quotes its output).
#
# Grows Wukong as the paper does (layers first, then n_F, n_L, k and the
# MLP widths) over the grid below, trains every point for one epoch on
#  (a) the Criteo sample, split exactly as scripts/repro.sh splits it (a
#      fixed-seed 90/10 shuffle; train on the 90%, score the 10%), and
#  (b) synthetic rows from `ctrtool gen-data` (hidden model --model-seed 1;
#      training rows --seed 1, held-out rows --seed 2): set syn trains on
#      all $SYN_ROWS rows, set syn100k on their first 100,000 (the same
#      held-out rows), so that more data can be set against more compute,
# and appends one line per trained point to $OUT/results.tsv. Resumable:
# a point whose line is already there is skipped, so an interrupted run
# picks up where it stopped. The split and the synthetic rows live in
# $WORK, outside the repository (the Criteo data may not be copied into
# the project); delete it to start over. scripts/scaling.py plots the
# results.
#
# Environment: B (build dir), CRITEO (sample path), OUT (build/scaling),
# WORK (/tmp/ctrd-scaling), THREADS (2), SYN_ROWS (training rows, 1000000),
# SYN_TEST (held-out rows, 100000), SETS ("criteo syn syn100k"),
# CRITEO_POINTS and SYN_POINTS (grid names: every point for criteo and
# syn100k, w1..w8 for syn, whose 1M rows make w9 a 40-minute run here),
# CRITEO_SEEDS ("1 2 3") and SYN_SEEDS ("1"): the --seed of each trained
# point (initialisation and order; the split and the data stay the same);
# ONE_SEED ("w9"): points trained with the first seed only (w9 takes as
# long as the rest of a Criteo seed).
set -euo pipefail
B=${B:-build}
CRITEO=${CRITEO:-../shared/data/criteo/criteo_sample.tsv.xz}
OUT=${OUT:-build/scaling}
WORK=${WORK:-${TMPDIR:-/tmp}/ctrd-scaling}
THREADS=${THREADS:-2}
SYN_ROWS=${SYN_ROWS:-1000000}
SYN_TEST=${SYN_TEST:-100000}
SETS=${SETS:-"criteo syn syn100k"}
CRITEO_SEEDS=${CRITEO_SEEDS:-"1 2 3"}
SYN_SEEDS=${SYN_SEEDS:-"1"}
ONE_SEED=${ONE_SEED:-"w9"}
tool=$B/ctrtool

# The grid: name, then the size flags. Every point shares --dim 16,
# --buckets 65536, the optimizers and schedule of docs/MODELS.md (Adam
# 1e-3 on dense weights, row-wise Adagrad 0.1 on tables, linear decay),
# batch 256, one epoch. Steps of about 2-4x in MFLOP/example. ref-*
# points are references, not part of the fit: the MLP of docs/MODELS.md's
# defaults and logistic regression (repro.sh's settings).
GRID="
w1 --layers 1 --nf 2 --nl 2 --k 4 --fmb 32 --hidden 32 --bottom 16
w2 --layers 1 --nf 4 --nl 4 --k 8 --fmb 64 --hidden 64 --bottom 32
w3 --layers 4 --nf 4 --nl 4 --k 8 --fmb 64 --hidden 64 --bottom 32
w4 --layers 4 --nf 8 --nl 8 --k 8 --fmb 64 --hidden 64 --bottom 32
w5 --layers 4 --nf 8 --nl 8 --k 16 --fmb 128 --hidden 128 --bottom 32
w6 --layers 4 --nf 16 --nl 16 --k 16 --fmb 128 --hidden 128,64 --bottom 64
w7 --layers 4 --nf 16 --nl 16 --k 24 --fmb 256 --hidden 256,128 --bottom 64
w8 --layers 6 --nf 16 --nl 16 --k 32 --fmb 512 --hidden 512,256 --bottom 64
w9 --layers 8 --nf 24 --nl 24 --k 48 --fmb 512,512 --hidden 1024,512 --bottom 128
ref-mlp --arch mlp --hidden 512,256
ref-lr --arch mlp --hidden none --dim 1 --lr 1e-2 --lr-decay none
"
CRITEO_POINTS=${CRITEO_POINTS:-"w1 w2 w3 w4 w5 w6 w7 w8 w9 ref-mlp ref-lr"}
SYN_POINTS=${SYN_POINTS:-"w1 w2 w3 w4 w5 w6 w7 w8 ref-mlp ref-lr"}
# The point's own flags come last, so ref-* override --arch, --dim, --lr.
COMMON="--arch wukong --dim 16 --buckets 65536 --epochs 1 --batch 256 --lr 1e-3 --emb-lr 0.1 --lr-decay linear"

[ -x "$tool" ] || { echo "scaling: $tool not built (make $tool)" >&2; exit 1; }
for p in xz shuf openssl awk sha256sum; do
    command -v $p >/dev/null || { echo "scaling: needs $p" >&2; exit 1; }
done
mkdir -p "$OUT" "$WORK"
res=$OUT/results.tsv
[ -s "$res" ] || printf 'set\tpoint\tseed\tmflop\tdense_params\ttrain_rows\tseconds\trows_per_s\tauc\tlogloss\tflags\n' >"$res"
t_start=$(date +%s)
log() { echo "[scaling $(date -u +%H:%M:%S) +$(( $(date +%s) - t_start ))s] $*" >&2; }
json_field() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p"; }

# ---- data ----
if [[ " $SETS " == *" criteo "* ]] && [ ! -s "$WORK/criteo_test.tsv" ]; then
    [ -r "$CRITEO" ] || { echo "scaling: $CRITEO is not here (set CRITEO=path)" >&2; exit 1; }
    # scripts/repro.sh's split, byte for byte.
    seeded_random() { openssl enc -aes-256-ctr -pass pass:"$1" -nosalt </dev/zero 2>/dev/null; }
    xz -dc "$CRITEO" | shuf --random-source=<(seeded_random 1) >"$WORK/all.tsv"
    n=$(wc -l <"$WORK/all.tsv")
    n_test=$((n / 10))
    tail -n +"$((n_test + 1))" "$WORK/all.tsv" >"$WORK/criteo_train.tsv"
    head -n "$n_test" "$WORK/all.tsv" >"$WORK/criteo_test.tsv.tmp"
    rm "$WORK/all.tsv"
    mv "$WORK/criteo_test.tsv.tmp" "$WORK/criteo_test.tsv"
    log "criteo split: $((n - n_test)) train rows ($(sha256sum "$WORK/criteo_train.tsv" | cut -c1-16)...), $n_test test rows ($(sha256sum "$WORK/criteo_test.tsv" | cut -c1-16)...)"
fi
if [[ " $SETS " == *" syn"* ]]; then
    if [ ! -s "$WORK/syn_test.tsv" ]; then
        "$tool" gen-data --rows "$SYN_ROWS" --seed 1 --model-seed 1 --out "$WORK/syn_train.tsv" --json 2>"$OUT/gen_train.json"
        "$tool" gen-data --rows "$SYN_TEST" --seed 2 --model-seed 1 --out "$WORK/syn_test.tsv.tmp" --json 2>"$OUT/gen_test.json"
        mv "$WORK/syn_test.tsv.tmp" "$WORK/syn_test.tsv"
    fi
    if [ ! -s "$WORK/syn100k_test.tsv" ]; then
        head -n 100000 "$WORK/syn_train.tsv" >"$WORK/syn100k_train.tsv"
        ln -sf syn_test.tsv "$WORK/syn100k_test.tsv"
    fi
    log "synthetic: $SYN_ROWS train rows, $SYN_TEST test rows; hidden model on the test rows: $(cat "$OUT/gen_test.json")"
fi

# ---- grid ----
# run SET NAME SEED FLAGS...: trains NAME with --seed SEED on SET's
# training rows, scores the held-out rows, appends the line to results.tsv.
run() {
    local set=$1 name=$2 seed=$3
    shift 3
    if awk -F'\t' -v s="$set" -v p="$name" -v d="$seed" '$1 == s && $2 == p && $3 == d {f = 1} END {exit !f}' "$res"; then
        return 0
    fi
    local model=$OUT/$set-$name-s$seed.ctrm lg=$OUT/$set-$name-s$seed.log
    # shellcheck disable=SC2086
    "$tool" train --data "$WORK/${set}_train.tsv" --out "$model" --valid-frac 0 \
        --threads "$THREADS" --name "$set-$name" --seed "$seed" $COMMON "$@" 2>"$lg"
    local line secs rate ev mflop params rows
    line=$(grep '^train: [0-9.]* s, ' "$lg")
    secs=$(echo "$line" | sed 's/^train: \([0-9.]*\) s, \([0-9]*\) rows\/s.*/\1/')
    rate=$(echo "$line" | sed 's/^train: \([0-9.]*\) s, \([0-9]*\) rows\/s.*/\2/')
    mflop=$("$tool" inspect "$model" | sed -n 's/.*compute: \([0-9.e+-]*\) MFLOP per example.*/\1/p')
    params=$("$tool" inspect "$model" | sed -n 's/.*(dense \([0-9]*\), embeddings.*/\1/p')
    rows=$(wc -l <"$WORK/${set}_train.tsv")
    ev=$("$tool" eval --model "$model" --data "$WORK/${set}_test.tsv" --json --threads "$THREADS")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$set" "$name" "$seed" "$mflop" "$params" "$rows" "$secs" "$rate" \
        "$(echo "$ev" | json_field auc)" "$(echo "$ev" | json_field logloss)" "$*" >>"$res"
    log "$set $name seed $seed: $mflop MFLOP/ex, $params dense params, ${secs}s (${rate} rows/s), test AUC $(echo "$ev" | json_field auc), logloss $(echo "$ev" | json_field logloss)"
}

# Every point with the first seed, smallest first, then the other seeds.
for set in $SETS; do
    case $set in
    criteo) points=$CRITEO_POINTS seeds=$CRITEO_SEEDS ;;
    syn100k) points=$CRITEO_POINTS seeds=$SYN_SEEDS ;;
    syn) points=$SYN_POINTS seeds=$SYN_SEEDS ;;
    *) echo "scaling: no set $set" >&2; exit 1 ;;
    esac
    first=${seeds%% *}
    for seed in $seeds; do
        for p in $points; do
            if [ "$seed" != "$first" ] && [[ " $ONE_SEED " == *" $p "* ]]; then continue; fi
            flags=$(echo "$GRID" | awk -v p="$p" '$1 == p {$1 = ""; print}')
            [ -n "$flags" ] || { echo "scaling: no grid point $p" >&2; exit 1; }
            # shellcheck disable=SC2086
            run "$set" "$p" "$seed" $flags
        done
    done
done
log "done: $res"
column -t -s "$(printf '\t')" "$res" >&2
