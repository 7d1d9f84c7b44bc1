#!/bin/bash
# bench_quant.sh - make bench part 9: quantized embedding tables (issue 17)
# and how the kernel's paging treats tables, against fp32.
#
#   9a  sizes per width: 26 tables of dim 16, 32, 64 and 128, fp32 tables of
#       QUANT_SIZE_GB in all (`ctrtool synth`), quantized to fp16 and int8
#       (`ctrtool quantize`): file bytes, ctrd's resident memory (VmRSS and
#       its file-backed part) at /readyz and after a load of uniformly random
#       rows, examples/s and p99 of that load (hidden 256,128; 64 examples a
#       request). int8_rowwise stores dim bytes + a float scale and bias a
#       row: (dim + 8) / (4 dim) of fp32; fp16 is 1/2.
#   9b  gathers: the gather model of part 1b (GATHER_GB, fp32, larger than
#       the last-level cache) and its fp16 and int8 forms, rows/s of
#       ctr_forward_gather next to a plain random-read loop over the same
#       stored rows (bench_qgather: one thread, interleaved, medians of 5).
#   9c  paging, a table larger than RAM (QUANT_BIG_GB, default 32; skipped
#       when the disk lacks room for it, its int8 form and 8 GB):
#       bench_paging's random row reads through the mapping with
#       MADV_RANDOM (what ctrd sets), none (MADV_NORMAL) and MADV_HUGEPAGE,
#       interleaved, QUANT_PAGING_RUNS runs of QUANT_PAGING_S seconds:
#       rows/s, major faults/s, MB/s read from the disk.
#   9d  the uniform-random-rows case of part 6 again: the QUANT_BIG_GB fp32
#       model against its int8 form (which fits in RAM), same ctrd flags
#       (ctrd picks each one's table advice: model_read.c),
#       same ctrload load (--synthetic-cats uniform), examples/s, p99, RSS.
#       Both files are deleted afterwards.
#
# Load: ctrload closed loop, 4 connections (part 6's 64-example setting),
# 64 examples a request, medians of QUANT_RUNS runs of QUANT_DURATION; run
# i uses --seed i, so a run does not replay the rows an earlier run just
# brought into the page cache (part 6 reuses seed 1). Output in $B/bench/out/:
# quant_sizes.tsv, quant_gather.tsv, quant_paging.tsv, quant_uniform.tsv,
# quant.txt (this summary). QUANT_PARTS ("a b c d") picks parts; c and d
# share the big model; QUANT_KEEP=1 keeps it and its int8 form (else they
# are deleted at the end). BENCH_QUICK=1: 9a at dims 16 and 64 with tiny
# tables, 9b on the quick gather model, no 9c/9d.
set -euo pipefail
B=${B:-build}
out="$B/bench/out"
mkdir -p "$out" "$B/bench"
# shellcheck source=bench/bench_lib.sh
. "$(dirname "$0")/bench_lib.sh"

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
    DUR=${QUANT_DURATION:-0.5s}; WARM=0.2s; RUNS=${QUANT_RUNS:-1}
    SIZE_GB=${QUANT_SIZE_GB:-0.05}; DIMS=${QUANT_DIMS:-"16 64"}; BIG_GB=${QUANT_BIG_GB:-0}
    PAGING_S=${QUANT_PAGING_S:-2}; PAGING_RUNS=${QUANT_PAGING_RUNS:-1}; GSECS=0.1
else
    DUR=${QUANT_DURATION:-4s}; WARM=1s; RUNS=${QUANT_RUNS:-3}
    SIZE_GB=${QUANT_SIZE_GB:-1}; DIMS=${QUANT_DIMS:-"16 32 64 128"}; BIG_GB=${QUANT_BIG_GB:-32}
    PAGING_S=${QUANT_PAGING_S:-20}; PAGING_RUNS=${QUANT_PAGING_RUNS:-3}; GSECS=0.5
fi
DIR=${QUANT_DIR:-$B/bench}
PARTS=${QUANT_PARTS:-"a b c d"}
part() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
N_CAT=26 CONC=4 BODIES=${QUANT_BODIES:-5000}

for p in ctrd ctrload ctrtool bench/bench_qgather bench/bench_paging; do
    [ -x "$B/$p" ] || { echo "bench_quant: $B/$p is not built (make)"; exit 1; }
done
W=$(mktemp -d "${TMPDIR:-/tmp}/bench-quant.XXXXXX")
CTRD_PID=""
DOOMED=()   # model files this script made and removes on exit
cleanup() {
    stop_pid "$CTRD_PID"; CTRD_PID=""
    for f in "${DOOMED[@]}"; do rm -f "$f" "$f.tmp"; done
    rm -rf "$W"
}
trap cleanup EXIT
exec 3>&1
say() { echo "$@" | tee -a "$out/quant.txt" >&3; }
: >"$out/quant.txt"

quantize() {  # IN OUT DTYPE
    # A source larger than half of memory is mapped MADV_RANDOM and would be
    # read 4 KB a fault (12x slower from a cold cache): ask for readahead.
    [ -f "$2" ] || "$B/ctrtool" quantize --in "$1" --out "$2" --dtype "$3" >/dev/null
}
# measure URL -> "examples_per_s p99_ms", medians of RUNS uniform-rows runs
measure() {
    local i
    : >"$W/m"
    for i in $(seq 1 "$RUNS"); do
        load_run "$W/run.json" "$1" --concurrency "$CONC" --duration "$DUR" --warmup "$WARM" \
            --examples-per-request 64 --bodies "$BODIES" --timeout 10s --synthetic-cats uniform --seed "$i" >>"$W/m"
    done
    echo "$(median_col "$W/m" 2) $(median_col "$W/m" 4)"
}

say "quant: $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM; load average $(load_avg)"

# --- 9a: sizes and resident memory per width and dtype ------------------------------
if part a; then
say ""
say "9a: file size and ctrd resident memory per table width and dtype (26 tables, fp32 tables ${SIZE_GB} GB; uniform random rows, 64 examples/request, $CONC in flight)"
printf 'dim\tdtype\trows\tfile_bytes\ttable_bytes\tratio\trss_ready_kb\tfile_ready_kb\trss_kb\tfile_kb\texamples_per_s\tp99_ms\n' >"$out/quant_sizes.tsv"
for dim in $DIMS; do
    rows=$(awk -v g="$SIZE_GB" -v d="$dim" -v n="$N_CAT" 'BEGIN { printf "%d", g * 1e9 / (n * d * 4) }')
    f32="$DIR/quant-d$dim.ctrm"
    DOOMED+=("$f32" "$DIR/quant-d$dim-f16.ctrm" "$DIR/quant-d$dim-int8.ctrm")
    [ -f "$f32" ] || "$B/ctrtool" synth --out "$f32" --rows-per-table "$rows" --dim "$dim" --hidden 256,128 \
        --seed 17 --name quant >/dev/null
    quantize "$f32" "$DIR/quant-d$dim-f16.ctrm" f16
    quantize "$f32" "$DIR/quant-d$dim-int8.ctrm" int8
    base=$(stat -c %s "$f32")
    for dt in f32 f16 int8; do
        m=$f32
        [ "$dt" = f32 ] || m="$DIR/quant-d$dim-$dt.ctrm"
        size=$(stat -c %s "$m")
        start_ctrd "$W/ctrd.log" "$m" --no-audit
        r0=$(mem_kb "$CTRD_PID" VmRSS); f0=$(mem_kb "$CTRD_PID" RssFile)
        read -r eps p99 <<<"$(measure "$CTRD_URL")"
        r1=$(mem_kb "$CTRD_PID" VmRSS); f1=$(mem_kb "$CTRD_PID" RssFile)
        stop_pid "$CTRD_PID"; CTRD_PID=""
        tb=$(awk -v r="$rows" -v d="$dim" -v n="$N_CAT" -v t="$dt" 'BEGIN {
            b = (t == "f32") ? 4 * d : (t == "f16") ? 2 * d : d + 8; printf "%.0f", (r + 1) * n * b }')
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$dim" "$dt" "$rows" "$size" "$tb" \
            "$(awk -v a="$size" -v b="$base" 'BEGIN { printf "%.4f", a / b }')" "$r0" "$f0" "$r1" "$f1" "$eps" "$p99" \
            >>"$out/quant_sizes.tsv"
    done
    rm -f "$f32" "$DIR/quant-d$dim-f16.ctrm" "$DIR/quant-d$dim-int8.ctrm"
done
awk -F'\t' 'NR > 1 {
    if ($2 == "f32") { b = $4; br = $9; be = $11 }
    printf "  dim %3d %-4s: file %8.1f MB (%.3fx of fp32; the row rule gives %.3fx), RSS %7.1f MiB at ready, %7.1f MiB after the load (%.3fx of fp32); %8.0f examples/s (%.2fx), p99 %7.2f ms\n",
        $1, $2, $4 / 1e6, $4 / b, ($2 == "f32") ? 1 : ($2 == "f16") ? 0.5 : ($1 + 8) / (4 * $1), $7 / 1024, $9 / 1024, $9 / br, $11, $11 / be, $12 }' \
    "$out/quant_sizes.tsv" | tee -a "$out/quant.txt"
fi

# --- 9b: gathers per dtype -------------------------------------------------------------
if part b; then
gb=${GATHER_GB:-2}
[ "$QUICK" = 1 ] && gb=${GATHER_GB:-1}
grows=$(( gb * 1000000000 / (26 * 16 * 4) ))
big="$B/bench/gather-${gb}g.ctrm"
if [ ! -f "$big" ]; then
    "$B/ctrtool" synth --out "$big" --rows-per-table "$grows" --hidden 64 --seed 7 --name gather-bench >/dev/null
fi
DOOMED+=("$B/bench/gather-${gb}g-f16.ctrm" "$B/bench/gather-${gb}g-int8.ctrm")
quantize "$big" "$B/bench/gather-${gb}g-f16.ctrm" f16
quantize "$big" "$B/bench/gather-${gb}g-int8.ctrm" int8
say ""
say "9b: gathers from the part 1b model ($gb GB fp32, 26 x 16-dim) and its fp16 and int8 forms: rows/s, one thread, medians of 5 interleaved runs; load average $(load_avg)"
"$B/bench/bench_qgather" --seconds "$GSECS" "$big" "$B/bench/gather-${gb}g-f16.ctrm" "$B/bench/gather-${gb}g-int8.ctrm" >"$W/g"
grep -v '^BENCH' "$W/g" | sed 's/^/  /' | tee -a "$out/quant.txt"
{ printf 'dtype\tgather_rows_s\tread_rows_s\tratio\ttable_gb\trow_bytes\n'; awk -F'\t' '$1 == "BENCH" { OFS = "\t"; print $3, $4, $5, $6, $7, $8 }' "$W/g"; } \
    >"$out/quant_gather.tsv"
rm -f "$B/bench/gather-${gb}g-f16.ctrm" "$B/bench/gather-${gb}g-int8.ctrm"
fi

# --- 9c/9d: a model larger than RAM ------------------------------------------------------
printf 'advice\trun\trows_per_s\tmajflt_per_s\tread_mb_per_s\tresident\n' >"$out/quant_paging.tsv"
printf 'model\tdtype\tfile_bytes\tready_s\trss_ready_kb\trss_kb\tfile_kb\texamples_per_s\tp99_ms\n' >"$out/quant_uniform.tsv"
if awk -v g="$BIG_GB" 'BEGIN { exit !(g <= 0) }' || ! { part c || part d; }; then
    say ""
    say "9c/9d: skipped (QUANT_BIG_GB=$BIG_GB, QUANT_PARTS=$PARTS)"
    exit 0
fi
need_kb=$(awk -v g="$BIG_GB" 'BEGIN { printf "%d", (g * 1.375 + 8) * 1e6 }')
free_kb=$(df -k --output=avail "$DIR" | tail -n 1 | tr -d ' ')
BIG="$DIR/scale-t${BIG_GB}g.ctrm" Q="$DIR/scale-t${BIG_GB}g-int8.ctrm"
if [ ! -f "$BIG" ] && [ "$free_kb" -lt "$need_kb" ]; then
    say ""
    say "9c/9d: skipped: $(( free_kb / 1000000 )) GB free on $DIR, needs $BIG_GB GB + its int8 form + 8"
    exit 0
fi
[ "${QUANT_KEEP:-0}" = 1 ] || DOOMED+=("$BIG" "$Q")
[ -f "$BIG" ] || "$B/ctrtool" synth --out "$BIG" --rows-per-table \
    "$(awk -v g="$BIG_GB" 'BEGIN { printf "%d", g * 1e9 / (26 * 16 * 4) }')" --hidden 256,128 --seed 21 --name scale >/dev/null
if part c; then
say ""
say "9c: random 64-byte row reads through a mapping of the $BIG_GB GB model ($(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM; read_ahead_kb $(cat /sys/block/"$(basename "$(df --output=source "$DIR" | tail -n 1)")"/queue/read_ahead_kb 2>/dev/null || echo '?')), 2 threads, ${PAGING_S} s a run, $PAGING_RUNS runs interleaved; load average $(load_avg)"
for i in $(seq 1 "$PAGING_RUNS"); do
    for a in random none hugepage; do
        "$B/bench/bench_paging" "$BIG" --advice "$a" --seconds "$PAGING_S" --window "$PAGING_S" >"$W/p"
        awk -F'\t' -v i="$i" '$1 == "PAGING" { OFS = "\t"; print $2, i, $3, $4, $5, $7 }' "$W/p" >>"$out/quant_paging.tsv"
    done
done
for a in random none hugepage; do
    awk -F'\t' -v a="$a" '$1 == a { print $3, $4, $5, $6 }' "$out/quant_paging.tsv" >"$W/pa"
    printf '  %-9s %9.0f rows/s, %7.0f major faults/s, %8.1f MB/s read from the disk, %.2f of the file resident (medians)\n' \
        "$a" "$(median_col "$W/pa" 1)" "$(median_col "$W/pa" 2)" "$(median_col "$W/pa" 3)" "$(median_col "$W/pa" 4)" \
        | tee -a "$out/quant.txt"
done
fi

part d || exit 0
quantize "$BIG" "$Q" int8
say ""
say "9d: uniform random rows (--synthetic-cats uniform), the $BIG_GB GB fp32 model against its int8 form, each in a fresh ctrd, 64 examples/request, $CONC in flight, medians of $RUNS; load average $(load_avg)"
for dt in f32 int8; do
    m=$BIG
    [ "$dt" = f32 ] || m=$Q
    CTRD_START_TIMEOUT=1800 start_ctrd "$W/ctrd.log" "$m" --no-audit
    r0=$(mem_kb "$CTRD_PID" VmRSS)
    read -r eps p99 <<<"$(measure "$CTRD_URL")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(basename "$m")" "$dt" "$(stat -c %s "$m")" "$CTRD_READY_S" "$r0" \
        "$(mem_kb "$CTRD_PID" VmRSS)" "$(mem_kb "$CTRD_PID" RssFile)" "$eps" "$p99" >>"$out/quant_uniform.tsv"
    stop_pid "$CTRD_PID"; CTRD_PID=""
done
awk -F'\t' 'NR == 2 { e0 = $8; p0 = $9 } NR > 1 {
    printf "  %-5s %6.2f GB file: %9.0f examples/s (%.2fx of fp32), p99 %8.2f ms (%.3fx); ready in %6.1f s; RSS %7.1f MiB after the load\n",
        $2, $3 / 1e9, $8, $8 / e0, $9, $9 / p0, $4, $6 / 1024 }' "$out/quant_uniform.tsv" | tee -a "$out/quant.txt"
