#!/bin/bash
# repro.sh - model quality and the SmeLU vs ReLU reproducibility study on
# the real Criteo sample (`make repro`; docs/MODELS.md and
# docs/REPRODUCIBILITY.md quote its output).
#
#  1. A fixed-seed 90/10 split of the sample (GNU shuf fed by a seeded
#     AES-CTR stream, the coreutils recipe for a reproducible shuffle),
#     written to a temporary directory outside the repository and removed
#     at the end (the data may not be copied into the project).
#  2. Quality: logistic regression and the SmeLU MLP trained on the 90%,
#     scored on the 10%.
#  3. Study: for ReLU and SmeLU with beta 0.5, 1, 2, one model per seed
#     (the seed sets initialisation and shuffle order; data, split and every
#     other option are the same); per activation the mean and spread of the
#     test AUC and logloss, and of the relative PD and flip rate over every
#     pair of seeds.
# Writes $OUT/REPORT.md (default build/repro) and prints it.
#
# Environment: B (build dir), CRITEO (sample path), SEEDS ("1 2 ... 8"),
# THREADS (2), MLP (model options), OUT.
set -euo pipefail
B=${B:-build}
CRITEO=${CRITEO:-../shared/data/criteo/criteo_sample.tsv.xz}
SEEDS=${SEEDS:-"1 2 3 4 5 6 7 8"}
THREADS=${THREADS:-2}
MLP=${MLP:-"--hidden 512,256 --dim 16 --buckets 65536 --epochs 1 --batch 256 --lr 1e-3 --emb-lr 0.1 --lr-decay linear"}
LR_OPTS=${LR_OPTS:-"--hidden none --dim 1 --buckets 65536 --epochs 1 --batch 256 --lr 1e-2 --emb-lr 0.1 --lr-decay none"}
OUT=${OUT:-build/repro}
ACTS=${ACTS:-"relu smelu:0.5 smelu:1 smelu:2"}
tool=$B/ctrtool

if [ ! -r "$CRITEO" ]; then
    echo "repro: $CRITEO is not here (set CRITEO=path to criteo_sample.tsv.xz)" >&2
    exit 1
fi
[ -x "$tool" ] || { echo "repro: $tool not built (make $tool)" >&2; exit 1; }
for p in xz shuf openssl awk; do
    command -v $p >/dev/null || { echo "repro: needs $p" >&2; exit 1; }
done
mkdir -p "$OUT"
work=$(mktemp -d "${TMPDIR:-/tmp}/ctrd-repro.XXXXXX")
trap 'rm -rf "$work"' EXIT
t_start=$(date +%s)
log() { echo "[repro $(( $(date +%s) - t_start ))s] $*" >&2; }

# ---- 1. split ----
seeded_random() { openssl enc -aes-256-ctr -pass pass:"$1" -nosalt </dev/zero 2>/dev/null; }
xz -dc "$CRITEO" | shuf --random-source=<(seeded_random 1) >"$work/all.tsv"
n=$(wc -l <"$work/all.tsv")
n_test=$((n / 10))
head -n "$n_test" "$work/all.tsv" >"$work/test.tsv"
tail -n +"$((n_test + 1))" "$work/all.tsv" >"$work/train.tsv"
rm "$work/all.tsv"
sha_train=$(sha256sum "$work/train.tsv" | cut -c1-16)
sha_test=$(sha256sum "$work/test.tsv" | cut -c1-16)
log "split: $((n - n_test)) train rows ($sha_train...), $n_test test rows ($sha_test...)"

json_field() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p"; }

# train NAME OPTS...: trains on the 90%, evaluates on the 10%; appends
# "name auc logloss mean_pred seconds rows_per_s" to $work/models.txt.
train() {
    local name=$1
    shift
    # shellcheck disable=SC2068
    "$tool" train --data "$work/train.tsv" --out "$work/$name.ctrm" --valid-frac 0 \
        --threads "$THREADS" --name "$name" $@ 2>"$work/$name.log"
    local line secs rate ev
    line=$(grep '^train: [0-9.]* s, ' "$work/$name.log")
    secs=$(echo "$line" | sed 's/^train: \([0-9.]*\) s, \([0-9]*\) rows\/s.*/\1/')
    rate=$(echo "$line" | sed 's/^train: \([0-9.]*\) s, \([0-9]*\) rows\/s.*/\2/')
    ev=$("$tool" eval --model "$work/$name.ctrm" --data "$work/test.tsv" --json --threads "$THREADS")
    echo "$name $(echo "$ev" | json_field auc) $(echo "$ev" | json_field logloss) $(echo "$ev" | json_field mean_pred) $(echo "$ev" | json_field pos_rate) $secs $rate" >>"$work/models.txt"
    log "$name: test AUC $(echo "$ev" | json_field auc), logloss $(echo "$ev" | json_field logloss), ${secs}s, ${rate} rows/s"
}

: >"$work/models.txt"
: >"$work/pairs.txt"

# ---- 2. quality ----
train lr $LR_OPTS --seed 1
# ---- 3. study ----
for act in $ACTS; do
    a=${act%%:*}
    beta=1
    [ "$a" != "$act" ] && beta=${act#*:}
    tag=$a
    [ "$a" = smelu ] && tag="smelu-b$beta"
    for s in $SEEDS; do
        train "$tag-s$s" $MLP --activation "$a" --beta "$beta" --seed "$s"
    done
    set -- $SEEDS
    for i in "$@"; do
        for j in "$@"; do
            [ "$i" -lt "$j" ] || continue
            pd=$("$tool" pd --model "$work/$tag-s$i.ctrm" --model "$work/$tag-s$j.ctrm" \
                 --data "$work/test.tsv" --json --threads "$THREADS")
            echo "$tag $i $j $(echo "$pd" | json_field pd) $(echo "$pd" | json_field flip_rate)" >>"$work/pairs.txt"
        done
    done
    log "$tag: pairwise PD $(awk -v t="$tag" '$1 == t { s += $4; n++ } END { printf "%.5f", s / n }' "$work/pairs.txt") (mean)"
    rm -f "$work/$tag"-s*.ctrm
done

# ---- report ----
report=$OUT/REPORT.md
{
    echo "# make repro: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),"
    echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg); ctrtool threads: $THREADS."
    echo "Data: $CRITEO, $n rows; fixed-seed split: $((n - n_test)) train (sha256 $sha_train...),"
    echo "$n_test test (sha256 $sha_test...). Seeds: $SEEDS."
    echo
    echo "MLP options: \`$MLP\`"
    echo
    echo "LR options: \`$LR_OPTS\`"
    echo
    echo "## Quality on the test 10%"
    echo
    echo "| model | test AUC | test logloss | mean pred / positive rate | train s | rows/s |"
    echo "|---|---|---|---|---|---|"
    awk '$1 == "lr" || $1 == "smelu-b1-s1" || $1 == "relu-s1" {
        name = $1 == "lr" ? "logistic regression" : $1 == "relu-s1" ? "ReLU MLP (seed 1)" : "SmeLU MLP, beta 1 (seed 1)"
        printf "| %s | %.4f | %.4f | %.4f / %.4f | %.1f | %d |\n", name, $2, $3, $4, $5, $6, $7 }' "$work/models.txt"
    echo
    echo "## Reproducibility: models differing only in seed"
    echo
    echo "PD = relative prediction difference (1/N) sum 2|p1-p2|/(p1+p2) on the test rows, over"
    echo "every pair of seeds; mean ± sample standard deviation [min, max]."
    echo
    echo "| activation | models | test AUC | test logloss | pairwise PD | flip rate | train s (mean) |"
    echo "|---|---|---|---|---|---|---|"
    for act in $ACTS; do
        a=${act%%:*}
        beta=1
        [ "$a" != "$act" ] && beta=${act#*:}
        tag=$a
        label="ReLU"
        [ "$a" = smelu ] && tag="smelu-b$beta" && label="SmeLU beta $beta"
        awk -v t="$tag-s" -v label="$label" '
            function stats(x, n,   i, m, s) { m = 0; for (i = 1; i <= n; i++) m += x[i]; m /= n
                s = 0; for (i = 1; i <= n; i++) s += (x[i] - m) ^ 2; s = n > 1 ? sqrt(s / (n - 1)) : 0
                return sprintf("%.4f ± %.4f", m, s) }
            function range(x, n,   i, lo, hi) { lo = hi = x[1]; for (i = 2; i <= n; i++) { if (x[i] < lo) lo = x[i]; if (x[i] > hi) hi = x[i] }
                return sprintf(" [%.4f, %.4f]", lo, hi) }
            FNR == 1 { f++ }
            f == 1 && index($1, t) == 1 { n++; auc[n] = $2; ll[n] = $3; secs += $6 }
            f == 2 && $1 "-s" == t { m++; pd[m] = $4; fl[m] = $5 }
            END { printf "| %s | %d | %s | %s | %s%s | %s | %.1f |\n", label, n, stats(auc, n), stats(ll, n),
                         stats(pd, m), range(pd, m), stats(fl, m), secs / n }' "$work/models.txt" "$work/pairs.txt"
    done
    echo
    echo "Paired by seeds: seed s gives every activation the same initial weights and the"
    echo "same shuffle order, so each pair of seeds (i, j) can be compared across"
    echo "activations. Against ReLU on the same pair:"
    echo
    echo "| activation | pairs with lower PD than ReLU | mean PD change vs ReLU |"
    echo "|---|---|---|"
    awk '$1 == "relu" { base[$2 " " $3] = $4 }
         $1 != "relu" { k = $2 " " $3; if (!(k in base)) next
                        n[$1]++; if ($4 < base[k]) lower[$1]++; d[$1] += ($4 - base[k]) / base[k]
                        if (!($1 in seen)) { seen[$1] = 1; order[++m] = $1 } }
         END { for (i = 1; i <= m; i++) { t = order[i]; b = t; sub(/^smelu-b/, "", b)
                   printf "| SmeLU beta %s | %d of %d | %+.1f%% |\n", b, lower[t], n[t], 100 * d[t] / n[t] } }' \
        "$work/pairs.txt"
    echo
    echo "Raw figures (name, AUC, logloss, mean pred, positive rate, train s, rows/s):"
    echo
    echo '```'
    cat "$work/models.txt"
    echo '```'
    echo
    echo "Pairs (tag, seed a, seed b, PD, flip rate):"
    echo
    echo '```'
    cat "$work/pairs.txt"
    echo '```'
    echo
    echo "Total wall time: $(( $(date +%s) - t_start )) s."
} >"$report"
cat "$report"
