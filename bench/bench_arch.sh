#!/bin/bash
# bench_arch.sh - part 7 of make bench: every architecture, ctrd next to
# PyTorch on the same model file, one thread, batches 1, 16, 64, 256, and
# the measured FMA peak (bench/torch_arch.py says what each side times).
#
# The models (ctrtool synth, ReLU, Criteo-shaped: 13 dense, 26 categorical;
# the shapes of bench_interact's in-memory models), written once to
# $ARCH_DIR (default $B/bench/arch, about 0.7 GB) and reused while the
# flags that made them are unchanged:
#   mlp           13 + 26 x 16 -> 512 -> 256 -> 1, 100,000 rows a table
#   dlrm          DOT (DLRM), MLPerf's shapes on 10,000-row tables: d 128,
#                 bottom 512-256-128, top 1024-1024-512-256-1
#   dcnv2         DCNv2 stacked, 3 cross layers of rank 512 over 27 x 128,
#                 the same bottom and top
#   wukong-small  d 64, 2 layers, n_F = n_L = 8, k 24, FMB 512-512, top
#                 512-256 (the issue's 4.8 MFLOP model)
#   wukong-large  d 128, 3 layers, n_F = n_L = 16, k 24, FMB 1024-1024,
#                 top 1024-512 (the issue's 33 MFLOP model)
# BENCH_QUICK=1: batches 1 and 64, 3 repetitions of 0.05 s. ARCH_MODELS
# (space-separated names) runs a subset. Output: the table on stdout,
# $B/bench/out/arch.json (report.py's part 7).
set -euo pipefail
B=${B:-build}
out="$B/bench/out"
dir=${ARCH_DIR:-$B/bench/arch}
mkdir -p "$out" "$dir"
PY=/usr/bin/python3
if ! "$PY" -c 'import torch' 2>/dev/null; then
    echo "bench_arch: $PY has no torch (apt-get install python3-torch); part 7 skipped"
    exit 0
fi

declare -A FLAGS=(
    [mlp]="--rows-per-table 100000 --dim 16 --hidden 512,256"
    [dlrm]="--arch dot --rows-per-table 10000 --dim 128 --bottom 512,256 --hidden 1024,1024,512,256"
    [dcnv2]="--arch dcnv2 --rows-per-table 10000 --dim 128 --bottom 512,256 --cross 3 --rank 512 --hidden 1024,1024,512,256"
    [wukong-small]="--arch wukong --rows-per-table 20000 --dim 64 --bottom 512,256 --layers 2 --nf 8 --nl 8 --k 24 --fmb 512,512 --hidden 512,256"
    [wukong-large]="--arch wukong --rows-per-table 10000 --dim 128 --bottom 512,256 --layers 3 --nf 16 --nl 16 --k 24 --fmb 1024,1024 --hidden 1024,512"
)
names=${ARCH_MODELS:-mlp dlrm dcnv2 wukong-small wukong-large}

args=()
for m in $names; do
    [ -n "${FLAGS[$m]:-}" ] || { echo "bench_arch: unknown model $m" >&2; exit 2; }
    f="$dir/$m.ctrm"
    want="${FLAGS[$m]} --activation relu --seed 15 --name $m"
    if [ ! -f "$f" ] || [ "$(cat "$f.flags" 2>/dev/null)" != "$want" ]; then
        # shellcheck disable=SC2086
        "$B/ctrtool" synth --out "$f" $want
        echo "$want" >"$f.flags"
    fi
    args+=(--model "$m=$f")
done

if [ "${BENCH_QUICK:-0}" = 1 ]; then
    targs=(--batches "1,64" --reps 3 --seconds 0.05 --check 256)
else
    targs=(--batches "1,16,64,256" --reps "${ARCH_REPS:-5}" --seconds "${ARCH_SECONDS:-0.3}" --check 512)
fi
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(date -u +%FT%TZ)"
"$PY" bench/torch_arch.py --bench "$B/bench/bench_interact" "${args[@]}" "${targs[@]}" --json "$out/arch.json"
