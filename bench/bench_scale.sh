#!/bin/bash
# bench_scale.sh - make bench part 6: how ctrd's cost grows.
#
#   6a  MLP width: hidden W,W/2 for W = 256, 1024, 4096 (tables ~100 MB);
#       examples/s and p99 against W = 256, beside the growth in
#       multiply-adds per example (the cost a perfect kernel would show).
#   6b  table size: 26 x 16-dim tables of ~0.1, 1, 8 and 32 GB in all
#       (SCALE_TABLE_GB; a size is skipped when the disk lacks room for it
#       plus 8 GB), hidden 256,128, built with `ctrtool synth` (streamed,
#       so larger than RAM is fine) and deleted after use when >= 1 GB.
#       examples/s, p99, resident memory (VmRSS, and its anonymous and
#       file-backed parts) after start-up and after the load, and the time
#       from process start to /readyz. Requests: ctrload --synthetic with
#       SCALE_BODIES distinct bodies (Zipf-like vocabularies: real traffic
#       touches a small hot set of rows, so RSS stays far below the file).
#       The largest size is then loaded again, in the same ctrd process,
#       with --synthetic-cats uniform: every row equally likely, so in
#       tables larger than RAM a lookup misses the page cache about as often
#       as the file is not resident (the worst case); examples/s, p99 and
#       RSS beside the hot-set figures (scale_tables_uniform.tsv).
#   6c  request size: 1, 8, 64, 512 examples per request (base model).
#   6d  threads: ctrd --threads 1 vs 2, rounds interleaved.
#   6e  time to /readyz: the demo model (build/demo.ctrm) and the largest
#       model, each against `sha256sum` of the same file (ctrd checks every
#       tensor's SHA-256 before it listens, so hashing the file is the floor).
#
# Load: ctrload closed loop (--concurrency), examples/s of 2xx answers and
# p99 from the send; medians of SCALE_RUNS runs. ctrload shares the cores
# with ctrd (and, on this machine, with everything else running).
# Output in $B/bench/out/: scale_{hidden,tables,tables_uniform,request,
# threads,ready}.tsv, scale.png (gnuplot-nox), scale.txt (this summary).
# Knobs: BENCH_QUICK=1 (short runs, small tables only, fewer request
# sizes), SCALE_TABLE_GB ("0.1 1 8 32"), SCALE_WIDTHS ("256 1024 4096"),
# SCALE_BATCHES ("1 8 64 512"), SCALE_DURATION, SCALE_RUNS, SCALE_BODIES
# (5000), SCALE_DIR (where big models are written; $B/bench).
set -euo pipefail
B=${B:-build}
out="$B/bench/out"
mkdir -p "$out" "$B/bench"
# shellcheck source=bench/bench_lib.sh
. "$(dirname "$0")/bench_lib.sh"

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
    # A smoke test: the uniform run uses the largest small table.
    DUR=${SCALE_DURATION:-0.5s}; WARM=0.2s; RUNS=${SCALE_RUNS:-1}
    TABLE_GB=${SCALE_TABLE_GB:-"0.1 0.25"}; WIDTHS=${SCALE_WIDTHS:-"256 1024"}
    BODIES=${SCALE_BODIES:-200}; BATCHES=${SCALE_BATCHES:-"1 64 512"}
else
    DUR=${SCALE_DURATION:-4s}; WARM=1s; RUNS=${SCALE_RUNS:-3}
    TABLE_GB=${SCALE_TABLE_GB:-"0.1 1 8 32"}; WIDTHS=${SCALE_WIDTHS:-"256 1024 4096"}
    BODIES=${SCALE_BODIES:-5000}; BATCHES=${SCALE_BATCHES:-"1 8 64 512"}
fi
DIR=${SCALE_DIR:-$B/bench}
N_CAT=26 DIM=16 N_DENSE=13
ROW_BYTES=$(( N_CAT * DIM * 4 ))

for p in ctrd ctrload ctrtool; do
    [ -x "$B/$p" ] || { echo "bench_scale: $B/$p is not built (make)"; exit 1; }
done
apt_install python3 >/dev/null 2>&1 || true
have_gnuplot=1
apt_install gnuplot-nox || have_gnuplot=0
command -v gnuplot >/dev/null 2>&1 || have_gnuplot=0

W=$(mktemp -d "${TMPDIR:-/tmp}/bench-scale.XXXXXX")
CTRD_PID=""
BIG=""
cleanup() {
    stop_pid "$CTRD_PID"; CTRD_PID=""
    [ -n "$BIG" ] && rm -f "$BIG" "$BIG.tmp"
    rm -rf "$W"
}
trap cleanup EXIT
exec 3>&1
say() { echo "$@" | tee -a "$out/scale.txt" >&3; }
: >"$out/scale.txt"

rows_for_gb() { awk -v g="$1" -v r="$ROW_BYTES" 'BEGIN { printf "%d", g * 1e9 / r }'; }
macs() {  # W: multiply-adds per example of the MLP in -> W -> W/2 -> 1
    local in=$(( N_DENSE + N_CAT * DIM )) w=$1
    echo $(( in * w + w * (w / 2) + w / 2 ))
}
model_for() {  # ROWS HIDDEN PATH
    if [ ! -f "$3" ]; then
        "$B/ctrtool" synth --out "$3" --rows-per-table "$1" --hidden "$2" --seed 21 --name scale >/dev/null
    fi
}

# measure URL B CONC [CTRLOAD FLAGS...] -> "median_examples_per_s median_p99_ms" over RUNS runs
measure() {
    local url=$1 b=$2 c=$3 i
    shift 3
    : >"$W/m"
    for i in $(seq 1 "$RUNS"); do
        load_run "$W/run.json" "$url" --concurrency "$c" --duration "$DUR" --warmup "$WARM" \
            --examples-per-request "$b" --bodies "$BODIES" --timeout 10s "$@" >>"$W/m"
    done
    echo "$(median_col "$W/m" 2) $(median_col "$W/m" 4)"
}
conc_for() {  # B -> connections in flight: ~256 examples (one full batch), at least 2
    local c=$(( 256 / $1 ))
    [ "$c" -lt 2 ] && c=2
    [ "$c" -gt 32 ] && c=32
    echo "$c"
}

say "scale: ctrload closed loop, ${DUR} per run, median of $RUNS; $(nproc) cores shared by ctrd and ctrload; load average $(load_avg)"

# --- 6a: MLP width ---------------------------------------------------------------
BASE_ROWS=$(rows_for_gb 0.1)
say ""
say "6a: MLP width (hidden W,W/2; tables $(awk -v r="$BASE_ROWS" -v b="$ROW_BYTES" 'BEGIN { printf "%.2f", r * b / 1e9 }') GB), 64 examples/request, $(conc_for 64) in flight"
printf 'width\tmacs\texamples_per_s\tp99_ms\n' >"$out/scale_hidden.tsv"
for w in $WIDTHS; do
    m="$B/bench/scale-h$w.ctrm"
    model_for "$BASE_ROWS" "$w,$(( w / 2 ))" "$m"
    start_ctrd "$W/ctrd.log" "$m" --no-audit
    read -r eps p99 <<<"$(measure "$CTRD_URL" 64 "$(conc_for 64)")"
    stop_pid "$CTRD_PID"; CTRD_PID=""
    printf '%s\t%s\t%s\t%s\n' "$w" "$(macs "$w")" "$eps" "$p99" >>"$out/scale_hidden.tsv"
done
awk -F'\t' 'NR == 2 { e0 = $3; m0 = $2; p0 = $4 }
    NR > 1 { printf "  W %5d: %9.0f examples/s (%5.3fx of W 256), p99 %8.2f ms (%5.1fx), MACs/example %5.1fx, %6.1f GFLOP/s\n",
             $1, $3, $3 / e0, $4, $4 / p0, $2 / m0, 2 * $2 * $3 / 1e9 }' "$out/scale_hidden.tsv" | tee -a "$out/scale.txt"

# --- 6b: table size --------------------------------------------------------------
say ""
say "6b: embedding tables (26 x 16-dim, hidden 256,128), 64 examples/request, $(conc_for 64) in flight, $BODIES distinct bodies"
printf 'table_gb\tfile_bytes\tsynth_s\tready_s\trss_ready_kb\trss_kb\tanon_kb\tfile_kb\texamples_per_s\tp99_ms\n' >"$out/scale_tables.tsv"
# The uniform run (largest size only): rss_before_kb is VmRSS when it
# starts, right after the Zipf runs in the same process.
printf 'table_gb\tfile_bytes\tcats\trss_before_kb\trss_kb\tanon_kb\tfile_kb\texamples_per_s\tp99_ms\n' >"$out/scale_tables_uniform.tsv"
LARGEST=""
LAST_GB=$(echo "$TABLE_GB" | awk '{print $NF}')
for gb in $TABLE_GB; do
    rows=$(rows_for_gb "$gb")
    if awk -v g="$gb" 'BEGIN { exit !(g < 0.15) }'; then
        m="$B/bench/scale-h256.ctrm"; rows=$BASE_ROWS
    else
        m="$DIR/scale-t${gb}g.ctrm"
    fi
    need_kb=$(awk -v g="$gb" 'BEGIN { printf "%d", (g + 8) * 1e6 }')
    free_kb=$(df -k --output=avail "$DIR" | tail -n 1 | tr -d ' ')
    synth_s=0
    if [ ! -f "$m" ]; then
        if [ "$free_kb" -lt "$need_kb" ]; then
            say "  $gb GB: skipped, $(( free_kb / 1000000 )) GB free on $DIR (needs $gb + 8)"
            [ "$gb" = "$LAST_GB" ] && say "  (so no uniform-rows run: it runs on the largest size, $LAST_GB GB)"
            continue
        fi
        awk -v g="$gb" 'BEGIN { exit !(g >= 1) }' && BIG=$m
        t0=$(now_ns)
        model_for "$rows" 256,128 "$m"
        synth_s=$(awk -v a="$t0" -v b="$(now_ns)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    fi
    CTRD_START_TIMEOUT=1800 start_ctrd "$W/ctrd.log" "$m" --no-audit
    rss0=$(mem_kb "$CTRD_PID" VmRSS)
    read -r eps p99 <<<"$(measure "$CTRD_URL" 64 "$(conc_for 64)")"
    rss=$(mem_kb "$CTRD_PID" VmRSS); anon=$(mem_kb "$CTRD_PID" RssAnon); file=$(mem_kb "$CTRD_PID" RssFile)
    size=$(stat -c %s "$m")
    uline=""
    if [ "$gb" = "$LAST_GB" ]; then
        # Worst case: uniformly random rows (ctrload --synthetic-cats uniform),
        # same process, same load, right after the hot-set runs.
        read -r ueps up99 <<<"$(measure "$CTRD_URL" 64 "$(conc_for 64)" --synthetic-cats uniform)"
        urss=$(mem_kb "$CTRD_PID" VmRSS); uanon=$(mem_kb "$CTRD_PID" RssAnon); ufile=$(mem_kb "$CTRD_PID" RssFile)
        printf '%s\t%s\tuniform\t%s\t%s\t%s\t%s\t%s\t%s\n' "$gb" "$size" "$rss" "$urss" "$uanon" "$ufile" "$ueps" "$up99" \
            >>"$out/scale_tables_uniform.tsv"
        uline=$(awk -v s="$size" -v e="$ueps" -v p="$up99" -v z="$eps" -v zp="$p99" -v rb="$rss" -v ra="$urss" -v a="$uanon" 'BEGIN {
            printf "  %6.2f GB file, uniform random rows (--synthetic-cats uniform, same process): %9.0f examples/s (%.3fx of the hot set), p99 %8.2f ms (%.2fx); RSS %7.1f MiB before (%.2f of the file resident), %7.1f MiB after (%5.1f MiB anonymous)\n",
                s / 1e9, e, (z > 0 ? e / z : 0), p, (zp > 0 ? p / zp : 0), rb / 1024, rb * 1024 / s, ra / 1024, a / 1024 }')
    fi
    stop_pid "$CTRD_PID"; CTRD_PID=""
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$gb" "$size" "$synth_s" "$CTRD_READY_S" "$rss0" "$rss" "$anon" "$file" "$eps" "$p99" \
        >>"$out/scale_tables.tsv"
    awk -v g="$gb" -v s="$size" -v r="$CTRD_READY_S" -v r0="$rss0" -v rs="$rss" -v a="$anon" -v e="$eps" -v p="$p99" -v sy="$synth_s" 'BEGIN {
        printf "  %6.2f GB file: %9.0f examples/s, p99 %8.2f ms; ready in %6.2f s; RSS %7.1f MiB at ready, %7.1f MiB after load (%5.1f MiB anonymous) = %.4f of the file%s\n",
            s / 1e9, e, p, r, r0 / 1024, rs / 1024, a / 1024, rs * 1024 / s, (sy > 0 ? sprintf("; synth %.0f s", sy) : "") }' \
        | tee -a "$out/scale.txt"
    [ -n "$uline" ] && say "$uline"
    LARGEST=$m
    if [ "$m" = "$BIG" ] && [ "$gb" != "$(echo "$TABLE_GB" | awk '{print $NF}')" ]; then
        rm -f "$m"; BIG=""
    fi
done

# --- 6e: time to /readyz: demo model and largest, against sha256sum ----------------
say ""
say "6e: process start to /readyz (ctrd checks every tensor's SHA-256 first), against sha256sum of the same file"
printf 'model\tfile_bytes\tready_s\tsha256sum_s\n' >"$out/scale_ready.tsv"
DEMO=build/demo.ctrm
if [ ! -f "$DEMO" ] && [ -f Makefile ]; then
    make --no-print-directory demo-model >/dev/null 2>&1 || true
fi
ready_of() {  # NAME MODEL TRIES
    local i t0 sha
    : >"$W/rd"; : >"$W/sh"
    for i in $(seq 1 "$3"); do
        t0=$(now_ns); sha256sum "$2" >/dev/null
        awk -v a="$t0" -v b="$(now_ns)" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }' >>"$W/sh"
        CTRD_START_TIMEOUT=1800 start_ctrd "$W/ctrd.log" "$2" --no-audit
        echo "$CTRD_READY_S" >>"$W/rd"
        stop_pid "$CTRD_PID"; CTRD_PID=""
    done
    r=$(median_col "$W/rd" 1); s=$(median_col "$W/sh" 1)
    printf '%s\t%s\t%s\t%s\n' "$1" "$(stat -c %s "$2")" "$r" "$s" >>"$out/scale_ready.tsv"
    awk -v n="$1" -v z="$(stat -c %s "$2")" -v r="$r" -v s="$s" 'BEGIN {
        printf "  %-8s %8.2f GB: ready in %7.3f s, sha256sum %7.3f s (ratio %.2f)\n", n, z / 1e9, r, s, (s > 0 ? r / s : 0) }' \
        | tee -a "$out/scale.txt"
}
[ -f "$DEMO" ] && ready_of demo "$DEMO" "$RUNS"
[ -n "$LARGEST" ] && [ -f "$LARGEST" ] && ready_of largest "$LARGEST" 1
if [ -n "$BIG" ]; then rm -f "$BIG"; BIG=""; fi

# --- 6c: request size ---------------------------------------------------------------
BASE="$B/bench/scale-h256.ctrm"
model_for "$BASE_ROWS" 256,128 "$BASE"
start_ctrd "$W/ctrd.log" "$BASE" --no-audit
say ""
say "6c: examples per request (base model), ~256 examples in flight"
printf 'examples\tconcurrency\texamples_per_s\tp99_ms\n' >"$out/scale_request.tsv"
for b in $BATCHES; do
    c=$(conc_for "$b")
    read -r eps p99 <<<"$(measure "$CTRD_URL" "$b" "$c")"
    printf '%s\t%s\t%s\t%s\n' "$b" "$c" "$eps" "$p99" >>"$out/scale_request.tsv"
done
awk -F'\t' 'NR == 2 { e0 = $3; p0 = $4 }
    NR > 1 { printf "  %4d examples, %2d in flight: %9.0f examples/s (%5.2fx of 1), p99 %8.2f ms (%5.2fx)\n", $1, $2, $3, $3 / e0, $4, $4 / p0 }' \
    "$out/scale_request.tsv" | tee -a "$out/scale.txt"
stop_pid "$CTRD_PID"; CTRD_PID=""

# --- 6d: threads --------------------------------------------------------------------
say ""
say "6d: scoring threads (ctrd --threads), 64 examples/request, $(conc_for 64) in flight, rounds interleaved; ctrload shares the $(nproc) cores"
printf 'threads\texamples_per_s\tp99_ms\n' >"$out/scale_threads.tsv"
: >"$W/t1"; : >"$W/t2"
R0=$RUNS; RUNS=1
for i in $(seq 1 "$R0"); do
    for t in 1 2; do
        start_ctrd "$W/ctrd.log" "$BASE" --no-audit --threads "$t"
        measure "$CTRD_URL" 64 "$(conc_for 64)" >>"$W/t$t"
        stop_pid "$CTRD_PID"; CTRD_PID=""
    done
done
RUNS=$R0
for t in 1 2; do
    printf '%s\t%s\t%s\n' "$t" "$(median_col "$W/t$t" 1)" "$(median_col "$W/t$t" 2)" >>"$out/scale_threads.tsv"
done
awk -F'\t' 'NR == 2 { e0 = $2 }
    NR > 1 { printf "  %d thread(s): %9.0f examples/s (%5.2fx of 1), p99 %8.2f ms\n", $1, $2, $2 / e0, $3 }' \
    "$out/scale_threads.tsv" | tee -a "$out/scale.txt"

# --- plots ------------------------------------------------------------------------------
if [ "$have_gnuplot" = 1 ]; then
    UT="" UM=""
    if [ "$(wc -l <"$out/scale_tables_uniform.tsv")" -gt 1 ]; then
        UT=", \"$out/scale_tables_uniform.tsv\" every ::1 using (\$2/1e9):8 with points pt 7 ps 1.5 title \"examples/s, uniform random rows\""
        UM=", \"$out/scale_tables_uniform.tsv\" every ::1 using (\$2/1e9):(\$5/1024) with points pt 7 ps 1.5 title \"after uniform random rows\""
    fi
    gnuplot <<EOF
set terminal pngcairo size 1200,860 font "sans,9"
set output "$out/scale.png"
set datafile separator "\t"
set multiplot layout 2,2 title "ctrd cost growth (ctrload closed loop on a shared $(nproc)-core machine; medians of $RUNS runs)"
set grid
set key top left opaque box
set logscale x 2
set ytics nomirror
set y2tics
set title "MLP width: hidden W,W/2 (64 examples/request)"
set xlabel "W"
set ylabel "examples/s"
set y2label "p99 ms"
set logscale y
set logscale y2
plot "$out/scale_hidden.tsv" every ::1 using 1:3 with linespoints lw 2 title "examples/s", \
     "" every ::1 using 1:4 axes x1y2 with linespoints dt 2 title "p99 ms",
set title "embedding tables (hidden 256,128; 64 examples/request)"
set xlabel "model file (GB)"
set logscale x 10
plot "$out/scale_tables.tsv" every ::1 using (\$2/1e9):9 with linespoints lw 2 title "examples/s (Zipf hot set)", \
     "" every ::1 using (\$2/1e9):10 axes x1y2 with linespoints dt 2 title "p99 ms"$UT
set title "request size"
set xlabel "examples per request"
set logscale x 2
plot "$out/scale_request.tsv" every ::1 using 1:3 with linespoints lw 2 title "examples/s", \
     "" every ::1 using 1:4 axes x1y2 with linespoints dt 2 title "p99 ms"
set title "resident memory vs model size"
set xlabel "model file (GB)"
set ylabel "VmRSS (MiB)"
set key bottom right opaque box
set logscale x 10
unset y2tics
unset y2label
plot "$out/scale_tables.tsv" every ::1 using (\$2/1e9):(\$5/1024) with linespoints title "at /readyz", \
     "" every ::1 using (\$2/1e9):(\$6/1024) with linespoints lw 2 title "after the load", \
     "" every ::1 using (\$2/1e9):(\$7/1024) with linespoints dt 2 title "anonymous part", \
     "" every ::1 using (\$2/1e9):(\$2/1048576) with lines lc rgb "gray" dt 3 title "file size"$UM
unset multiplot
EOF
    say ""
    say "plot: $out/scale.png"
fi
