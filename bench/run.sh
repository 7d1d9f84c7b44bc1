#!/bin/bash
# make bench: every benchmark part, each printing its figures next to the
# reference measured in the same run. Raw output lands in $B/bench/out/.
#   part 1  kernels vs OpenBLAS and the measured FMA peak (bench_kernels)
#           embedding gathers vs a plain random-read loop (bench_gather)
#   part 2  HTTP: ctrd vs nginx under the same wrk load (bench_http.sh);
#           2c: /v2 infer with 64 examples, JSON vs Triton's binary tensor
#           data, examples/s and server CPU per example (bench_binary.sh)
#   part 3  audit log on (write, fsync) vs off under the same load,
#           bytes per example logged (bench_audit.sh)
#   part 4  latency under open-loop load, sweeps and plots (bench_latency.sh)
#   part 5  ctrd vs a FastAPI + PyTorch server on the same models (the demo
#           model and the h256x128 benchmark model): scores agree within
#           1e-6, peak throughput and throughput at equal p99 (bench_compare.sh)
#   part 6  scale: MLP width, tables up to 32 GB (Zipf hot set, and uniform
#           random rows on the largest), request size, threads, memory,
#           start-up time (bench_scale.sh)
#   part 7  architectures: MLP, DLRM, DCNv2, two Wukongs, ctrd vs torch on
#           the same .ctrm, batches 1-256, one thread, beside the measured
#           FMA peak (bench_arch.sh, bench/torch_arch.py)
#   part 8  training: ctrtool train rows/s against torch training the
#           reference modules on the same rows, same optimizers, threads 1
#           and 2, per architecture (bench_train.sh, bench/torch_train.py)
#   part 9  quantized tables (issue 17): file size and RSS per width and
#           dtype, gathers fp32 vs fp16 vs int8 beside a plain random read,
#           madvise on a table larger than RAM, the uniform-rows case of
#           part 6 on the 32 GB fp32 model and its int8 form
#           (bench_quant.sh; docs/BENCHMARKS-quant.md)
#   part 10 shadow candidate (issue 18): the primary's p99 and throughput at
#           half of its peak, open loop, with --shadow C:P --shadow-sample
#           1.0 against no shadow, runs alternating (bench_shadow.sh)
#   then    BENCHMARKS.md and README's headline table (bench/report.py)
# GATHER_GB sets the size of the gather model (default 2, above this
# machine's 480 MiB last-level cache). BENCH_QUICK=1 (make bench-quick):
# every part, short (under 3 minutes once the models are built, about 1 on
# an idle machine), with the slowest sub-parts cut (listed when it starts);
# a smoke test of the benchmark, not figures to quote. Its report goes to
# $B/bench/out/BENCHMARKS-quick.md, never over BENCHMARKS.md.
set -euo pipefail
B=${B:-build}
out="$B/bench/out"
mkdir -p "$out"
QUICK=${BENCH_QUICK:-0}
export BENCH_QUICK=$QUICK
T0=$(date +%s)
failed=""   # parts that exited non-zero; the report is written anyway
rm -f "$out"/*.txt "$out"/*.json "$out"/*.tsv "$out"/*.png
printf 'quick=%s\nstart=%s\nload_start=%s\n' "$QUICK" "$(date -u +%FT%TZ)" "$(cut -d' ' -f1-3 /proc/loadavg)" >"$out/meta.txt"
if [ "$QUICK" = 1 ]; then
    export BENCH_DURATION=${BENCH_DURATION:-1} BENCH_RUNS=${BENCH_RUNS:-1}
    export AUDIT_BENCH_SECONDS=${AUDIT_BENCH_SECONDS:-1} AUDIT_BENCH_ROUNDS=${AUDIT_BENCH_ROUNDS:-1}
    export LAT_RATES_1=${LAT_RATES_1:-1000:2000:1000} LAT_RATES_64=${LAT_RATES_64:-50:100:50}
    export LAT_DURATION=${LAT_DURATION:-0.5s} LAT_WARMUP=${LAT_WARMUP:-0.2s}
    KFLAGS="--quick --kernels avx512" GATHER_SECS=0.1 GATHER_GB=${GATHER_GB:-1}
    cat <<'EOF'
quick mode (make bench-quick): a smoke test of every part, not figures to quote.
  Cut here, measured by the full run: part 1a times the default kernel and
  OpenBLAS only (no scalar / AVX2 rows); part 2 runs 1 s per figure after
  1 s of warm-up; part 3 runs one round without warm-up; part 4 sweeps two
  rates each, 0.5 s per rate; part 5 measures closed-loop peaks and p99 at
  one rate only (no open-loop search; no score check on the demo model),
  0.5 s per run; part 6 uses tables of 0.1 and 0.25 GB only (the uniform-rows
  run on the 0.25 GB one), request sizes 1, 64 and 512, 0.5 s per run;
  part 7 times batches 1 and 64 only, 3 repetitions of 0.05 s;
  part 8 trains on 20,000 rows, one run per figure; part 9 measures widths
  16 and 64 on 0.05 GB tables, gathers 0.1 s a run, and skips the model
  larger than RAM (paging study, uniform rows fp32 vs int8); part 10 runs
  one round of 1 s per arm.
EOF
    echo
else
    KFLAGS="" GATHER_SECS=0.5
fi

echo "== [$(( $(date +%s) - T0 )) s] part 1a: dense layer kernels (one thread)"
# shellcheck disable=SC2086
"$B/bench/bench_kernels" $KFLAGS --json "$out/kernels.json" | tee "$out/kernels.txt"

echo
echo "== [$(( $(date +%s) - T0 )) s] part 1b: embedding gathers from a table larger than the LLC"
gb=${GATHER_GB:-2}
rows=$(( gb * 1000000000 / (26 * 16 * 4) ))
big="$B/bench/gather-${gb}g.ctrm"
if [ ! -f "$big" ]; then
    echo "building $big ($gb GB, ctrtool synth)..."
    "$B/ctrtool" synth --out "$big" --rows-per-table "$rows" --hidden 64 --seed 7 --name gather-bench >/dev/null
fi
"$B/bench/bench_gather" "$big" "$GATHER_SECS" | tee "$out/gather.txt"

if [ -x bench/bench_http.sh ] && [ -x "$B/ctrd" ]; then
    echo
    echo "== [$(( $(date +%s) - T0 )) s] part 2: HTTP"
    B="$B" bench/bench_http.sh | tee "$out/http.txt" || failed="$failed 2"
fi

if [ -x bench/bench_binary.sh ] && [ -x "$B/ctrd" ]; then
    echo
    echo "== [$(( $(date +%s) - T0 )) s] part 2c: /v2 infer, 64 examples: JSON vs binary tensor data, same load"
    B="$B" bench/bench_binary.sh | tee "$out/binary.txt" || failed="$failed 2c"
fi

if [ -x bench/bench_audit.sh ] && [ -x "$B/ctrd" ]; then
    echo
    echo "== [$(( $(date +%s) - T0 )) s] part 3: audit log on (write, fsync) vs off, same load"
    B="$B" bench/bench_audit.sh | tee "$out/audit.txt" || failed="$failed 3"
fi

if [ -x bench/bench_latency.sh ] && [ -x "$B/ctrd" ] && [ -x "$B/ctrload" ]; then
    echo
    echo "== [$(( $(date +%s) - T0 )) s] part 4: latency under open-loop load (ctrload)"
    B="$B" bench/bench_latency.sh | tee "$out/latency_run.txt" || failed="$failed 4"
fi

if [ -x bench/bench_compare.sh ]; then
    echo
    echo "== [$(( $(date +%s) - T0 )) s] part 5: ctrd vs a FastAPI + PyTorch server, same models (demo, h256x128), same load"
    B="$B" bench/bench_compare.sh | tee "$out/compare.txt" || failed="$failed 5"
fi

if [ -x bench/bench_scale.sh ]; then
    echo
    echo "== [$(( $(date +%s) - T0 )) s] part 6: scale (MLP width, table size, request size, threads, memory, start-up)"
    B="$B" bench/bench_scale.sh || failed="$failed 6"
fi

if [ -x bench/bench_arch.sh ] && [ -x "$B/bench/bench_interact" ]; then
    echo
    echo "== [$(( $(date +%s) - T0 )) s] part 7: architectures, ctrd vs torch on the same model, one thread"
    B="$B" bench/bench_arch.sh | tee "$out/arch.txt" || failed="$failed 7"
fi

if [ -x bench/bench_train.sh ]; then
    echo
    echo "== [$(( $(date +%s) - T0 )) s] part 8: training, ctrtool train vs torch on the same rows, same threads"
    B="$B" bench/bench_train.sh | tee "$out/train.txt" || failed="$failed 8"
fi

if [ -x bench/bench_quant.sh ] && [ -x "$B/bench/bench_qgather" ]; then
    echo
    echo "== [$(( $(date +%s) - T0 )) s] part 9: quantized tables (fp16, int8) against fp32; paging of tables larger than RAM"
    B="$B" GATHER_GB="$gb" bench/bench_quant.sh || failed="$failed 9"
fi

if [ -x bench/bench_shadow.sh ] && [ -x "$B/ctrd" ] && [ -x "$B/ctrload" ]; then
    echo
    echo "== [$(( $(date +%s) - T0 )) s] part 10: shadow candidate at sample 1.0 vs no shadow, half of peak, open loop"
    B="$B" SHADOW_BENCH_OUT="$out" bench/bench_shadow.sh | tee "$out/shadow.txt" || failed="$failed 10"
fi

printf 'load_end=%s\nwall_s=%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" "$(( $(date +%s) - T0 ))" >>"$out/meta.txt"
echo
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
if [ "$QUICK" = 1 ]; then
    "$PY" bench/report.py --out-dir "$out" --md "$out/BENCHMARKS-quick.md" --plots "$out/plots"
else
    "$PY" bench/report.py --out-dir "$out" --md BENCHMARKS.md --plots docs/bench --readme README.md
fi
echo "make bench$([ "$QUICK" = 1 ] && echo -quick): $(( $(date +%s) - T0 )) s"
if [ -n "$failed" ]; then
    echo "make bench: part(s)$failed FAILED (see above)"
    exit 1
fi
