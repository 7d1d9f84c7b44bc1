#!/bin/bash
# make bench, part 4: ctrd's latency under open-loop load, driven by ctrload.
#
#   1. rate sweeps with 1 and with 64 examples per request; each finds the
#      highest rate whose corrected p99 meets its target (1 ms and 5 ms),
#      with a clean ctrload verdict and errors <= 0.1%
#   2. the latency distribution (corrected and uncorrected) at half of
#      that rate (or at the sweep's first rate if none met the target)
#   3. PNG plots with gnuplot (Debian's gnuplot-nox, installed with apt-get
#      if missing; without it the CSV files are still written)
#
# Output in $B/bench/out/: latency_b{1,64}.csv/.json (sweeps),
# latency_dist_b{1,64}.csv, latency_vs_rate.png, latency_dist.png,
# latency.txt (the summary below).
#
# Knobs (environment): LAT_RATES_1 / LAT_RATES_64 (FROM:TO:STEP),
# LAT_DURATION, LAT_WARMUP, LAT_CONNECTIONS, LAT_MAX_LAG_MS (ctrload's own
# lag bound for a clean verdict), LAT_MODEL (a .ctrm; default a synthetic
# model with 100k rows per table), LAT_CTRD_FLAGS (extra ctrd flags; the
# audit writer is not in ctrd yet, so the default is --no-audit).
# ctrd listens on 127.0.0.1, a free port, and is stopped by its pid.
set -euo pipefail
B=${B:-build}
out="$B/bench/out"
mkdir -p "$out"
RATES_1=${LAT_RATES_1:-1000:40000:1000}
RATES_64=${LAT_RATES_64:-50:3000:50}
DURATION=${LAT_DURATION:-3s}
WARMUP=${LAT_WARMUP:-1s}
CONNS=${LAT_CONNECTIONS:-64}
MAX_LAG=${LAT_MAX_LAG_MS:-1}
CTRD_FLAGS=${LAT_CTRD_FLAGS:---no-audit}

for p in ctrd ctrload ctrtool; do
    if [ ! -x "$B/$p" ]; then
        echo "bench_latency: $B/$p is not built; skipping part 4"
        exit 0
    fi
done

have_gnuplot=1
if ! command -v gnuplot >/dev/null 2>&1; then
    echo "bench_latency: installing gnuplot-nox (apt-get) for the plots..."
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    if ! { DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null 2>&1 ||
           { $SUDO apt-get update -qq >/dev/null 2>&1 &&
             DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null 2>&1; }; }; then
        echo "bench_latency: gnuplot could not be installed: writing CSV files only"
        have_gnuplot=0
    fi
fi

model=${LAT_MODEL:-$B/bench/latency.ctrm}
if [ ! -f "$model" ]; then
    echo "bench_latency: building $model (ctrtool synth, 100k rows per table)..."
    "$B/ctrtool" synth --out "$model" --rows-per-table 100000 --seed 11 --name latency-bench >/dev/null
fi

log=$(mktemp "${TMPDIR:-/tmp}/ctrd-bench.XXXXXX")
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -f "$log"
}
trap cleanup EXIT
# shellcheck disable=SC2086
"$B/ctrd" --model "$model" --host 127.0.0.1 --port 0 $CTRD_FLAGS 2>"$log" &
pid=$!
port=""
for _ in $(seq 300); do
    port=$(grep '"msg":"listening"' "$log" 2>/dev/null | grep -o '"port":[0-9]*' | head -1 | cut -d: -f2 || true)
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "bench_latency: ctrd did not start:"; cat "$log"; exit 1
fi
url="http://127.0.0.1:$port"
echo "ctrd $url, model $model, $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"

common=(--url "$url" --duration "$DURATION" --warmup "$WARMUP" --connections "$CONNS"
        --max-lag-ms "$MAX_LAG" --no-progress)
summary=()
for spec in "1:1:$RATES_1" "64:5:$RATES_64"; do
    b=${spec%%:*}; rest=${spec#*:}; slo=${rest%%:*}; rates=${rest#*:}
    echo
    echo "-- sweep: $b example(s) per request, target p99 <= $slo ms, rates $rates"
    "$B/ctrload" "${common[@]}" --examples-per-request "$b" --sweep "$rates" --slo-p99-ms "$slo" \
        --csv "$out/latency_b$b.csv" --json "$out/latency_b$b.json"
    best=$(grep -o '"best_rate":[0-9.a-z]*' "$out/latency_b$b.json" | cut -d: -f2)
    if [ "$best" = "null" ] || [ -z "$best" ]; then
        line="$b example(s)/request: no rate met p99 <= $slo ms (see $out/latency_b$b.csv)"
        dist_rate=${rates%%:*}
    else
        line=$(awk -v r="$best" -v b="$b" -v s="$slo" \
            'BEGIN { printf "%d example(s)/request: highest rate with p99 <= %s ms: %.0f req/s (%.0f examples/s)", b, s, r, r * b }')
        dist_rate=$(awk -v r="$best" 'BEGIN { x = r / 2; printf "%.0f", x < 1 ? 1 : x }')
    fi
    summary+=("$line")
    echo "-- distribution at $dist_rate req/s"
    "$B/ctrload" "${common[@]}" --examples-per-request "$b" --rate "$dist_rate" \
        --dist-csv "$out/latency_dist_b$b.csv" --json "$out/latency_dist_b$b.json" --quiet
    sed -n 's/.*"p99":\([0-9.]*\).*"p99":\([0-9.]*\).*/   p99 corrected \1 ms, uncorrected \2 ms/p' \
        "$out/latency_dist_b$b.json" | head -1
    echo "$dist_rate" >"$out/latency_dist_b$b.rate"
done

{
    echo "latency (ctrload open loop against ctrd, corrected for coordinated omission):"
    for l in "${summary[@]}"; do echo "  $l"; done
} | tee "$out/latency.txt"

if [ "$have_gnuplot" = 1 ]; then
    r1=$(cat "$out/latency_dist_b1.rate"); r64=$(cat "$out/latency_dist_b64.rate")
    gnuplot <<EOF
set terminal pngcairo size 1200,480 font "sans,10"
set datafile separator ","
set output "$out/latency_vs_rate.png"
set multiplot layout 1,2 title "ctrd latency vs offered rate (ctrload, open loop; corrected unless marked)"
set logscale y
set grid
set xlabel "offered rate (requests/s)"
set ylabel "latency (ms)"
set key top left opaque box
set title "1 example per request, target p99 <= 1 ms"
plot "$out/latency_b1.csv" every ::1 using 2:17 with linespoints title "p50", \
     "" every ::1 using 2:18 with linespoints title "p90", \
     "" every ::1 using 2:19 with linespoints lw 2 title "p99", \
     "" every ::1 using 2:20 with linespoints title "p99.9", \
     "" every ::1 using 2:25 with lines dt 2 title "p99 uncorrected", \
     "" every ::1 using 2:(\$31 == 0 ? \$19 : 1/0) with points pt 6 ps 2 lc rgb "red" title "run not clean (client lag/CPU)", \
     1 with lines lc rgb "red" dt 3 title "target"
set title "64 examples per request, target p99 <= 5 ms"
plot "$out/latency_b64.csv" every ::1 using 2:17 with linespoints title "p50", \
     "" every ::1 using 2:18 with linespoints title "p90", \
     "" every ::1 using 2:19 with linespoints lw 2 title "p99", \
     "" every ::1 using 2:20 with linespoints title "p99.9", \
     "" every ::1 using 2:25 with lines dt 2 title "p99 uncorrected", \
     "" every ::1 using 2:(\$31 == 0 ? \$19 : 1/0) with points pt 6 ps 2 lc rgb "red" title "run not clean (client lag/CPU)", \
     5 with lines lc rgb "red" dt 3 title "target"
unset multiplot

set output "$out/latency_dist.png"
set terminal pngcairo size 900,520 font "sans,10"
set title "ctrd latency distribution (ctrload, open loop)"
set logscale x
set xlabel "percentile"
set xtics ("0%%" 1, "90%%" 10, "99%%" 100, "99.9%%" 1000, "99.99%%" 10000, "99.999%%" 100000)
set key top left opaque box
plot "$out/latency_dist_b1.csv" every ::1 using (\$1 < 100 ? 100/(100-\$1) : 1/0):2 with lines lw 2 title "1 example, $r1 req/s, corrected", \
     "" every ::1 using (\$1 < 100 ? 100/(100-\$1) : 1/0):3 with lines dt 2 title "1 example, uncorrected", \
     "$out/latency_dist_b64.csv" every ::1 using (\$1 < 100 ? 100/(100-\$1) : 1/0):2 with lines lw 2 title "64 examples, $r64 req/s, corrected", \
     "" every ::1 using (\$1 < 100 ? 100/(100-\$1) : 1/0):3 with lines dt 2 title "64 examples, uncorrected"
EOF
    echo "plots: $out/latency_vs_rate.png $out/latency_dist.png"
fi
