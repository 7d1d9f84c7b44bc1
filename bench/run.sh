#!/bin/bash
# make bench: every benchmark part, each printing its figures next to the
# reference measured in the same run. Raw output lands in $B/bench/out/.
#   part 1  kernels vs OpenBLAS and the measured FMA peak (bench_kernels)
#           embedding gathers vs a plain random-read loop (bench_gather)
#   part 2  HTTP: ctrd vs nginx under the same wrk load (bench_http.sh)
# GATHER_GB sets the size of the gather model (default 2, above this
# machine's 480 MiB last-level cache).
set -euo pipefail
B=${B:-build}
out="$B/bench/out"
mkdir -p "$out"

echo "== part 1a: dense layer kernels (one thread)"
"$B/bench/bench_kernels" | tee "$out/kernels.txt"

echo
echo "== part 1b: embedding gathers from a table larger than the LLC"
gb=${GATHER_GB:-2}
rows=$(( gb * 1000000000 / (26 * 16 * 4) ))
big="$B/bench/gather-${gb}g.ctrm"
if [ ! -f "$big" ]; then
    echo "building $big ($gb GB, ctrtool synth)..."
    "$B/ctrtool" synth --out "$big" --rows-per-table "$rows" --hidden 64 --seed 7 --name gather-bench >/dev/null
fi
"$B/bench/bench_gather" "$big" | tee "$out/gather.txt"

if [ -x bench/bench_http.sh ] && [ -x "$B/ctrd" ]; then
    echo
    echo "== part 2: HTTP"
    B="$B" bench/bench_http.sh | tee "$out/http.txt"
fi

if [ -x bench/bench_latency.sh ] && [ -x "$B/ctrd" ] && [ -x "$B/ctrload" ]; then
    echo
    echo "== part 4: latency under open-loop load (ctrload)"
    B="$B" bench/bench_latency.sh | tee "$out/latency_run.txt"
fi
