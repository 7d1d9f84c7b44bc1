#!/bin/bash
# End to end: the scoring threads are shared fairly between models. With
# one scoring thread, a closed-loop flood on a heavy model keeps its queue
# dozens of batches deep; a light model's requests, sent at a low rate
# meanwhile, must not wait behind that queue (the batcher leads the models'
# queues in turn, batcher.h): every one is answered 200, and its p99 stays
# well below the heavy model's median (its median under a quarter, its p90
# under heavy's median) (a single FIFO queue would give both
# the same wait). Latencies are ctrload's uncorrected ones. Bounded: two ctrload runs of a few seconds, loopback only.
. "$(dirname "$0")/lib_server.sh"

command -v python3 >/dev/null 2>&1 || { echo "FAIL: python3 is needed to read ctrload's JSON"; exit 1; }
"$CTRTOOL" synth --out "$T/heavy.ctrm" --rows-per-table 500 --seed 41 --name heavy \
    --hidden 1024,512 >/dev/null || { echo "synth heavy failed"; exit 1; }
make_model "$T/light.ctrm" 42 light

srv_start fair --model "$T/heavy.ctrm" --model "$T/light.ctrm" --threads 1 --max-batch 32 \
    --inline-max-examples 0 --queue-limit 100000 --max-delay-us 200 --no-audit || exit 1

# The flood: 48 requests of 32 examples in flight on heavy, for 6 s.
"$CTRLOAD" --url "$SRV_URL" --protocol v2 --model-name heavy --concurrency 48 \
    --examples-per-request 32 --duration 6s --warmup 1s --timeout 10s --json "$T/heavy.json" \
    >"$T/heavy.out" 2>&1 &
FLOOD=$!
sleep 1.5
# The probe: 40 requests/s of one example on light, for 3 s, inside the flood.
"$CTRLOAD" --url "$SRV_URL" --protocol v2 --model-name light --rate 40 --connections 4 \
    --duration 3s --warmup 0 --timeout 10s --json "$T/light.json" >"$T/light.out" 2>&1
PROBE_RC=$?
req GET /metrics
QA=$(printf '%s\n' "$BODY_OUT" | awk '$1 == "ctrd_model_queue_examples{model=\"heavy\"}" {print $2}')
wait $FLOOD
FLOOD_RC=$?
log "flood: $(tail -n 5 "$T/heavy.out" | tr '\n' ' ')"
log "probe: $(tail -n 5 "$T/light.out" | tr '\n' ' ')"
[ "${QA:-0}" -ge 256 ]; check $? "heavy's queue was deep during the probe ($QA examples waiting)"

read_json() {  # FILE: "completed ok p50_ms p99_ms max_ms" of a ctrload --json report
    python3 - "$1" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    print(0, 0, 0, 0, 0)
    sys.exit(0)
# Uncorrected: from each actual send. The probe's schedule is not what is
# measured here, and on a busy machine its client can fall behind it.
lat = d["latency_ms"]["uncorrected"]
print(d["requests"]["completed"], d["status"].get("200", 0), lat["p50"], lat["p90"], lat["max"])
PY
}
# ctrload's own exit status says whether its figures are clean (a shared
# CI machine may not be); the report is what this test reads.
[ -s "$T/heavy.json" ] && [ -s "$T/light.json" ]; check $? "both ctrload runs reported (rc $FLOOD_RC, $PROBE_RC)"
set -- $(read_json "$T/heavy.json"); H_N=$1 H_OK=$2 H_P50=$3 H_P90=$4
set -- $(read_json "$T/light.json"); L_N=$1 L_OK=$2 L_P50=$3 L_P90=$4 L_MAX=$5
log "heavy: $H_N requests, $H_OK 200, p50 ${H_P50} ms, p90 ${H_P90} ms"
log "light: $L_N requests, $L_OK 200, p50 ${L_P50} ms, p90 ${L_P90} ms, max ${L_MAX} ms"
[ "${L_N:-0}" -ge 100 ] && [ "$L_N" = "$L_OK" ]; check $? "every light request answered 200 ($L_OK of $L_N)"
# One FIFO queue would give light the heavy wait; a fair share gives it
# about one heavy batch.
lt() { python3 -c "import sys; sys.exit(0 if 0 < float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$1" "$2"; }
lt "${L_P50:-0}" "$(python3 -c "print(float('${H_P50:-0}') / 4)")"
check $? "light median (${L_P50} ms) under a quarter of heavy's (${H_P50} ms)"
lt "${L_P90:-0}" "${H_P50:-0}"
check $? "light p90 (${L_P90} ms) under heavy's median (${H_P50} ms)"
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 1000 else 1)" "${L_MAX:-99999}"
check $? "light's slowest answer under 1 s (${L_MAX} ms)"
srv_stop
[ "$SRV_RC" = 0 ]; check $? "SIGTERM exits 0"
finish
