#!/bin/bash
# repro.sh - the SmeLU reproducibility study, taken apart, on the real
# Criteo sample (`make repro`; docs/REPRODUCIBILITY.md quotes its output,
# docs/MODELS.md its logistic regression and MLP rows).
#
#  1. Data, in $WORK (outside the repository: the sample may not be copied
#     into the project), made once and kept so that a rerun resumes:
#     - a fixed-seed 90/10 split of the sample (GNU shuf fed by a seeded
#       AES-CTR stream, the coreutils recipe for a reproducible shuffle):
#       real-train.tsv (105,426 rows), real-test.tsv (11,713), checked
#       against their sha256;
#     - realq-train.tsv: the first quarter of real-train.tsv;
#     - syn1m-train.tsv: 1M `ctrtool gen-data` rows (hidden model seed 1),
#       syn100k-train.tsv its first 100k, syn-test.tsv 20k other rows of
#       the same hidden model.
#  2. scripts/repro_study.py run: every model of the study (ReLU and SmeLU
#     beta 0.25..4 with 8 seeds, init-only and order-only seeds, tables
#     initialised to 0, logistic regression, DCNv2, one knob at a time with
#     4 seeds), each evaluated on the test rows, and the PD of every pair of
#     seeds. Resumable: existing models and results are not redone.
#  3. scripts/repro_study.py report: $OUT/STUDY.md (tables with bootstrap
#     confidence intervals over seeds) and the PD-against-logloss plots
#     $PLOTS/repro_pd_logloss_{mlp,arch}.png.
#
# About 75 minutes on 2 shared cores for the default groups; STUDY_GROUPS=betas
# (48 models) takes about 8. `rm -rf $WORK` starts afresh.
#
# Environment: B (build dir), CRITEO (sample path), WORK
# (${TMPDIR:-/tmp}/ctrd-repro-study), STUDY_GROUPS (repro_study.py's groups,
# comma-separated; default all), THREADS (2), OUT (build/repro),
# PLOTS (= OUT; docs/ to refresh the documented plots), KEEP_MODELS (1:
# keep the model files, about 100 MB each and 30 GB for the whole study;
# default: delete a group's models once its evaluations and pairs are
# recorded in $WORK/results.jsonl).
set -euo pipefail
B=${B:-build}
CRITEO=${CRITEO:-../shared/data/criteo/criteo_sample.tsv.xz}
WORK=${WORK:-${TMPDIR:-/tmp}/ctrd-repro-study}
THREADS=${THREADS:-2}
OUT=${OUT:-build/repro}
PLOTS=${PLOTS:-$OUT}
STUDY_GROUPS=${STUDY_GROUPS:-}
KEEP_MODELS=${KEEP_MODELS:-0}
PY=/usr/bin/python3   # Debian's python, which sees python3-matplotlib
tool=$B/ctrtool

if [ ! -r "$CRITEO" ]; then
    echo "repro: $CRITEO is not here (set CRITEO=path to criteo_sample.tsv.xz)" >&2
    exit 1
fi
[ -x "$tool" ] || { echo "repro: $tool not built (make $tool)" >&2; exit 1; }
for p in xz shuf openssl sha256sum $PY; do
    command -v $p >/dev/null || { echo "repro: needs $p" >&2; exit 1; }
done
mkdir -p "$OUT" "$PLOTS" "$WORK"
t_start=$(date +%s)
log() { echo "[repro $(( $(date +%s) - t_start ))s] $*" >&2; }

# ---- 1. data ----
seeded_random() { openssl enc -aes-256-ctr -pass pass:"$1" -nosalt </dev/zero 2>/dev/null; }
if [ ! -s "$WORK/real-test.tsv" ]; then
    xz -dc "$CRITEO" | shuf --random-source=<(seeded_random 1) >"$WORK/all.tsv"
    n=$(wc -l <"$WORK/all.tsv")
    n_test=$((n / 10))
    # The test file last: its presence says the split is complete.
    tail -n +"$((n_test + 1))" "$WORK/all.tsv" >"$WORK/real-train.tsv"
    head -n "$n_test" "$WORK/all.tsv" >"$WORK/real-test.tsv.part"
    mv "$WORK/real-test.tsv.part" "$WORK/real-test.tsv"
    rm "$WORK/all.tsv"
fi
sha_train=$(sha256sum "$WORK/real-train.tsv" | cut -c1-16)
sha_test=$(sha256sum "$WORK/real-test.tsv" | cut -c1-16)
log "split: $(wc -l <"$WORK/real-train.tsv") train rows ($sha_train...), $(wc -l <"$WORK/real-test.tsv") test rows ($sha_test...)"
if [ "$sha_train $sha_test" != "180e2088eba37b4a b19910f28e549522" ]; then
    echo "repro: the split differs from the documented one (180e2088eba37b4a..., b19910f28e549522...);" \
         "the figures will not match docs/REPRODUCIBILITY.md" >&2
fi
n_train=$(wc -l <"$WORK/real-train.tsv")
[ -s "$WORK/realq-train.tsv" ] || head -n $((n_train / 4)) "$WORK/real-train.tsv" >"$WORK/realq-train.tsv"
ln -sf real-test.tsv "$WORK/realq-test.tsv"
if [ ! -s "$WORK/syn1m-train.tsv" ]; then
    "$tool" gen-data --rows 1000000 --seed 1 --model-seed 1 --out "$WORK/syn1m-train.tsv.part"
    mv "$WORK/syn1m-train.tsv.part" "$WORK/syn1m-train.tsv"
fi
[ -s "$WORK/syn100k-train.tsv" ] || head -n 100000 "$WORK/syn1m-train.tsv" >"$WORK/syn100k-train.tsv"
[ -s "$WORK/syn-test.tsv" ] || "$tool" gen-data --rows 20000 --seed 2 --model-seed 1 --out "$WORK/syn-test.tsv"
ln -sf syn-test.tsv "$WORK/syn100k-test.tsv"
ln -sf syn-test.tsv "$WORK/syn1m-test.tsv"

# ---- 2. models, evaluations, pairs ----
# shellcheck disable=SC2086
$PY scripts/repro_study.py run --work "$WORK" --tool "$tool" --threads "$THREADS" \
    ${STUDY_GROUPS:+--groups "$STUDY_GROUPS"} $([ "$KEEP_MODELS" = 1 ] || echo --prune)
log "models and pairs done"

# ---- 3. report ----
$PY scripts/repro_study.py report --work "$WORK" --out "$OUT" --plots "$PLOTS" >/dev/null
{
    echo
    echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),"
    echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg); ctrtool threads: $THREADS."
    echo "Data: $CRITEO; split $n_train train (sha256 $sha_train...), test sha256 $sha_test...;"
    echo "work directory $WORK ($(du -sh "$WORK" | cut -f1), kept for resuming)."
    echo "Wall time of this invocation: $(( $(date +%s) - t_start )) s."
} >>"$OUT/STUDY.md"
cat "$OUT/STUDY.md"
