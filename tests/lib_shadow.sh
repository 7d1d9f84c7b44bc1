# lib_shadow.sh - helpers of the shadow candidate's end-to-end tests
# (tests/test_server_shadow.sh, test_shadow_promote.sh, test_shadow_faults.sh);
# source it after lib_server.sh, do not run it.
#
#   PY                               Debian's python3 (tests parse JSON with it)
#   shadow_metrics                   /metrics into $T/metrics.txt
#   smetric NAME [LABEL=VALUE...]    the sum of NAME's series (in $T/metrics.txt)
#                                    that carry every given label
#   wait_shadow_drained N [S]        poll until ctrd_shadow_examples_total plus
#                                    every dropped reason == N; 1 on timeout
#   make_rows N SEED                 $T/rows.tsv (ctrtool gen-data) and
#                                    $T/examples.jsonl, one v1 example a row
#   send_rows PREFIX [MODEL]         every row of $T/examples.jsonl as /v1/score
#                                    requests of 1..7 examples, 8 in flight,
#                                    request ids PREFIX-<first row>; answers in
#                                    $T/PREFIX.<first row>, every score in row
#                                    order in $T/PREFIX.txt; sets SENT_REQ,
#                                    SENT_OK (answers 200)
#   train_pair P C                   two small trained models of one schema
#                                    (ctrtool train on gen-data rows): P an MLP
#                                    (seed 1, 4096 buckets), C a DCNv2 (seed 2,
#                                    2048 buckets, dim 8): a retrain of another
#                                    shape, so scores spread and PD is real
#   xxh3_sampled F KEY...            prints the keys ctrd's shadow samples at F
#                                    (XXH3_64 with seed "ctrd", h < F * 2^64),
#                                    computed with the libxxhash ctrd links

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

shadow_metrics() {
    curl -s --max-time 5 "$SRV_URL/metrics" >"$T/metrics.txt"
}

smetric() {  # NAME [LABEL=VALUE...]
    local name=$1
    shift
    awk -v n="$name" -v want="$*" '
        BEGIN { k = split(want, w, " ") }
        {
            s = $1; i = index(s, "{"); base = (i ? substr(s, 1, i - 1) : s)
            if (base != n || $0 ~ /^#/) next
            for (j = 1; j <= k; j++) {
                split(w[j], kv, "=")
                if (index(s, kv[1] "=\"" kv[2] "\"") == 0) next
            }
            sum += $2; found = 1
        }
        END { if (found) printf "%.17g\n", sum }' "$T/metrics.txt"
}

wait_shadow_drained() {  # N [TIMEOUT_S]
    local want=$1 i c d
    for i in $(seq 1 $(( ${2:-30} * 10 ))); do
        shadow_metrics
        c=$(smetric ctrd_shadow_examples_total); d=$(smetric ctrd_shadow_dropped_examples_total)
        [ -n "$c" ] && [ $(( ${c%.*} + ${d%.*} )) -ge "$want" ] \
            && [ "$(smetric ctrd_shadow_queue_examples)" = 0 ] && return 0
        sleep 0.1
    done
    return 1
}

make_rows() {  # N SEED (rows of the hidden model train_pair learns)
    "$CTRTOOL" gen-data --rows "$1" --out "$T/rows.tsv" --seed "$2" --model-seed 5 >/dev/null 2>&1 \
        || { echo "ctrtool gen-data failed"; exit 1; }
    awk -F'\t' '{
        s = "{"; sep = ""
        for (i = 2; i <= 14; i++) if ($i != "") { s = s sep "\"I" (i - 1) "\":" $i; sep = "," }
        for (i = 15; i <= 40; i++) if ($i != "") { s = s sep "\"C" (i - 14) "\":\"" $i "\""; sep = "," }
        print s "}"
    }' "$T/rows.tsv" >"$T/examples.jsonl"
}

send_rows() {  # PREFIX [MODEL]
    local pre=$1 model=${2-} rows start=1 k=0 n end body mk="" PIDS="" f
    rows=$(wc -l <"$T/examples.jsonl")
    [ -n "$model" ] && mk="\"model\":\"$model\","
    SENT_REQ=0
    while [ "$start" -le "$rows" ] && [ "$k" -lt 10000 ]; do
        n=$(( (k * 5) % 7 + 1 )); end=$((start + n - 1)); [ "$end" -gt "$rows" ] && end=$rows
        body="{$mk\"request_id\":\"$pre-$start\",\"examples\":[$(sed -n "${start},${end}p" "$T/examples.jsonl" | paste -sd,)]}"
        curl -s --max-time 20 -H 'Content-Type: application/json' --data-binary "$body" \
            -o "$T/$pre.$start" -w '%{http_code}\n' "$SRV_URL/v1/score" >"$T/$pre.st.$start" &
        PIDS="$PIDS $!"; k=$((k + 1)); start=$((end + 1))
        if [ $((k % 8)) = 0 ]; then wait $PIDS; PIDS=""; fi
    done
    [ -z "$PIDS" ] || wait $PIDS
    SENT_REQ=$k
    SENT_OK=$(cat "$T/$pre".st.* | grep -c '^200$')
    : >"$T/$pre.txt"
    for f in $(ls "$T/$pre".* | grep -E "/$pre\.[0-9]+\$" | sed "s|.*/$pre\.||" | sort -n); do
        { scores_of "$(cat "$T/$pre.$f")"; echo; } | tr ',' '\n' >>"$T/$pre.txt"
    done
}

train_pair() {  # P C
    "$CTRTOOL" gen-data --rows 10000 --out "$T/train.tsv" --seed 3 --model-seed 5 >/dev/null 2>&1 \
        || { echo "ctrtool gen-data (training rows) failed"; exit 1; }
    "$CTRTOOL" train --data "$T/train.tsv" --out "$1" --hidden 32,16 --buckets 4096 --seed 1 --threads 1 \
        >/dev/null 2>&1 || { echo "ctrtool train $1 failed"; exit 1; }
    "$CTRTOOL" train --data "$T/train.tsv" --out "$2" --arch dcnv2 --cross 2 --bottom 16 --hidden 16 --dim 8 \
        --buckets 2048 --seed 2 --threads 1 >/dev/null 2>&1 || { echo "ctrtool train $2 failed"; exit 1; }
}

xxh3_sampled() {  # F KEY...
    "$PY" - "$@" <<'PY'
import ctypes, sys
lib = ctypes.CDLL("libxxhash.so.0")
h = lib.XXH3_64bits_withSeed
h.restype = ctypes.c_uint64
h.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
f = float(sys.argv[1])
for k in sys.argv[2:]:
    b = k.encode()
    v = h(b, len(b), 0x63747264)
    if f >= 1.0 or (f > 0.0 and v < int(f * 18446744073709551616.0)):
        print(k)
PY
}
