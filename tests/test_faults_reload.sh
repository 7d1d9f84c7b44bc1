#!/bin/bash
# test_faults_reload.sh - reload storm: an admin reload every 100 ms for
# RELOAD_STORM_SECONDS (10; docs/RELIABILITY.md reports a 30 s run),
# alternating between two models, while ctrload sends 300 requests/s with
# the audit log on. Zero failed or non-200 requests; every reload answers
# 200; afterwards the fd count is back to the baseline, one model mapping
# is left (retired generations are unmapped), RSS within a few MiB of the
# baseline, and the audit log verifies against both models.
. "$(dirname "$0")/lib_server.sh"
. "$(dirname "$0")/lib_hard.sh"
STORM=${RELOAD_STORM_SECONDS:-10}
RATE=${RELOAD_STORM_RATE:-300}
# RELOAD_STORM_NO_AUDIT=1: without the audit log (isolates the batcher and
# reload paths, e.g. for a ThreadSanitizer run: docs/RELIABILITY.md).
AUDIT=(--audit-dir "$T/audit")
[ "${RELOAD_STORM_NO_AUDIT:-0}" = 1 ] && AUDIT=(--no-audit)

make_model "$T/a.ctrm" 21 storm
make_model "$T/b.ctrm" 22 storm
TOKEN=storm-token-0123456789abcdef
srv_start storm --model "$T/a.ctrm" --admin-token "$TOKEN" "${AUDIT[@]}" || exit 1
"$CTRLOAD" --url "$SRV_URL" --rate 200 --duration 1s --warmup 0 --quiet >/dev/null 2>&1
RSS0=$(rss_kb "$SRV_PID"); FD0=$(fd_count "$SRV_PID")
MAPS0=$(grep -c '\.ctrm' "/proc/$SRV_PID/maps")
log "baseline: RSS $RSS0 KiB, $FD0 fds, $MAPS0 model mappings"

"$CTRLOAD" --url "$SRV_URL" --rate "$RATE" --duration "$((STORM + 2))s" --warmup 1s --timeout 5s \
    --connections 16 --json "$T/load.json" --quiet >"$T/load.out" 2>&1 &
LOAD=$!
sleep 1.5
n=0 okn=0
end=$((SECONDS + STORM))
next=$(date +%s%N)
while [ $SECONDS -lt "$end" ] && [ $n -lt $((STORM * 12)) ]; do
    n=$((n + 1))
    p="$T/a.ctrm"; [ $((n % 2)) -eq 1 ] && p="$T/b.ctrm"
    st=$(curl -s -o "$T/reload.out" -w '%{http_code}' --max-time 10 -X POST \
        -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        --data-binary "{\"path\":\"$p\"}" "$SRV_URL/v1/admin/reload")
    if [ "$st" = 200 ] && grep -q '"status":"reloaded"' "$T/reload.out"; then
        okn=$((okn + 1))
    else
        [ $((n - okn)) -le 3 ] && log "reload $n: $st $(cat "$T/reload.out")"
    fi
    next=$((next + 100000000))
    now=$(date +%s%N)
    [ "$now" -lt "$next" ] && sleep "$(awk -v d=$((next - now)) 'BEGIN { printf "%.3f", d / 1e9 }')"
done
wait "$LOAD"
log "$n reloads in ${STORM} s, $okn answered 200 reloaded"
[ "$n" -ge $((STORM * 5)) ] && [ "$okn" = "$n" ]; check $? "every reload of the storm succeeded ($okn of $n)"

read -r SENT OK2XX FAILED NON200 P99 < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
st = d["status"]
print(d["requests"]["sent"], d["requests"]["ok"], d["requests"]["failed"],
      sum(v for k, v in st.items() if k != "200"), d["latency_ms"]["corrected"]["p99"])' "$T/load.json")
log "load during the storm: $SENT sent, $OK2XX 200, $FAILED failed, $NON200 non-200, corrected p99 $P99 ms"
[ "$SENT" -gt 0 ] && [ "$FAILED" = 0 ] && [ "$NON200" = 0 ] && [ "$OK2XX" = "$SENT" ]
check $? "zero failed requests during the storm ($OK2XX of $SENT answered 200)"

req GET /metrics
R=$(printf '%s\n' "$BODY_OUT" | awk '$1 == "ctrd_model_reloads_total{result=\"success\",model=\"storm\"}" {print $2}')
log "ctrd_model_reloads_total success: ${R:-?}"
sleep 1
FDS=$(settle_fds "$SRV_PID" "$FD0" 10)
[ "$FDS" -le "$FD0" ]; check $? "fds back to the baseline ($FDS, baseline $FD0)"
MAPS=$(grep -c '\.ctrm' "/proc/$SRV_PID/maps")
[ "$MAPS" -le "$MAPS0" ]; check $? "retired generations are unmapped ($MAPS model mappings, baseline $MAPS0)"
RSS1=$(rss_kb "$SRV_PID")
log "RSS: baseline $RSS0 KiB, after the storm $RSS1 KiB"
[ $((RSS1 - RSS0)) -le 16384 ]; check_rss $? "RSS within 16 MiB of the baseline ($((RSS1 - RSS0)) KiB)"
srv_stop TERM
[ "$SRV_RC" = 0 ]; check $? "SIGTERM exits 0"
if [ "${RELOAD_STORM_NO_AUDIT:-0}" != 1 ]; then
    OUT=$("$CTRTOOL" audit verify --model "$T/a.ctrm" --model "$T/b.ctrm" "$T/audit" 2>&1); RC=$?
    [ "$RC" = 0 ]; check $? "the audit log verifies against both models: $(printf '%s' "$OUT" | grep '^verified=')"
fi
finish
