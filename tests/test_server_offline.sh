#!/bin/bash
# End to end: scores over HTTP equal `ctrtool score` bit for bit (same
# %.9g text, which parses back to the same float32) on Criteo-shaped rows
# from `ctrtool gen-data`, sent in requests of mixed sizes from concurrent
# clients, against offline scores from both the default and the scalar
# kernel.
. "$(dirname "$0")/lib_server.sh"

for cmd in score gen-data; do
    "$CTRTOOL" $cmd --help >"$T/help.out" 2>&1 \
        || { echo "FAIL: $CTRTOOL $cmd --help failed:"; cat "$T/help.out"; exit 1; }
done

ROWS=400
make_model "$T/m.ctrm" 21 e2e
"$CTRTOOL" gen-data --rows $ROWS --out "$T/rows.tsv" --seed 3 >/dev/null 2>&1 || { echo "gen-data failed"; exit 1; }
"$CTRTOOL" score --model "$T/m.ctrm" --data "$T/rows.tsv" --out "$T/offline.txt" >/dev/null 2>&1 \
    || { echo "ctrtool score failed"; exit 1; }
"$CTRTOOL" score --model "$T/m.ctrm" --data "$T/rows.tsv" --out "$T/offline_scalar.txt" --kernel scalar \
    >/dev/null 2>&1 || { echo "ctrtool score --kernel scalar failed"; exit 1; }
[ "$(grep -c . "$T/offline.txt")" = $ROWS ]; check $? "ctrtool score gave $ROWS scores"
cmp -s "$T/offline.txt" "$T/offline_scalar.txt"; check $? "offline: default kernel == scalar kernel"

tsv_to_jsonl "$T/rows.tsv" "$T/examples.jsonl"

srv_start offline --model "$T/m.ctrm" --max-delay-us 2000 --max-batch 128 || exit 1

# Requests of 1..17 examples, 8 at a time; each remembers its first row.
PIDS=""
start=1 k=0
while [ $start -le $ROWS ]; do
    n=$(( (k * 7) % 17 + 1 ))
    end=$((start + n - 1)); [ $end -gt $ROWS ] && end=$ROWS
    body="{\"request_id\":\"rows-$start\",\"examples\":[$(sed -n "${start},${end}p" "$T/examples.jsonl" | paste -sd,)]}"
    curl -s --max-time 20 -H 'Content-Type: application/json' --data-binary "$body" \
        -o "$T/resp.$start" "$SRV_URL/v1/score" &
    PIDS="$PIDS $!"
    k=$((k + 1)); start=$((end + 1))
    if [ $((k % 8)) = 0 ]; then wait $PIDS; PIDS=""; fi
done
wait $PIDS

: >"$T/http.txt"
for f in $(ls "$T"/resp.* | sed 's/.*resp\.//' | sort -n); do
    { scores_of "$(cat "$T/resp.$f")"; echo; } | tr ',' '\n' >>"$T/http.txt"
done
[ "$(grep -c . "$T/http.txt")" = $ROWS ]; check $? "HTTP gave $ROWS scores ($(grep -c . "$T/http.txt"))"
if cmp -s "$T/offline.txt" "$T/http.txt"; then
    ok "every HTTP score equals ctrtool score's text"
else
    fail "HTTP and ctrtool score differ:"; diff "$T/offline.txt" "$T/http.txt" | head -n 10
fi
req GET /metrics
C=$(printf '%s\n' "$BODY_OUT" | awk '$1 ~ /^ctrd_batch_size_examples_count\{model=/ {print $2}')
log "batches: $C for $k requests"
srv_stop
[ "$SRV_RC" = 0 ]; check $? "SIGTERM exits 0"
finish
