#!/bin/bash
# test_audit_e2e.sh - the audit log of a running ctrd:
#   1. hot reload (SIGHUP, second model renamed into place) under load:
#      records of both models verify against their own files, each
#      model's records are skipped by the other, pd compares them
#   2. SIGTERM flushes: every 200 is logged, exit 0, the segment closes
#   3. rotation at --audit-segment-bytes: many segments, each with its
#      header, none past the limit, all verify; a restart opens a new
#      segment and leaves the old ones byte for byte as they were
#   4. fsync and async durability, /metrics audit series, request ids
#      the server generates
# Loopback only; every loop bounded.
. "$(dirname "$0")/lib_server.sh"

make_model "$T/a.ctrm" 21 audit-a
make_model "$T/b.ctrm" 22 audit-b
cp "$T/a.ctrm" "$T/cur.ctrm"

served_digest() {
    req GET /v1/models
    digest_of "$BODY_OUT"
}

send() {  # PREFIX FROM TO: one request each, "ID STATUS" lines to $T/sent
    local p=$1 i st
    for i in $(seq "$2" "$3"); do
        st=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'Content-Type: application/json' \
             --data-binary "{\"request_id\":\"$p-$i\",\"context\":{\"C9\":\"ctx$p\"},\"examples\":[$(example_json "$i"),$(example_json $((i + 1)))]}" \
             "$SRV_URL/v1/score")
        echo "$p-$i $st" >>"$T/sent"
    done
}

summary() {  # verify output -> the key=value line
    printf '%s\n' "$1" | grep '^verified='
}

# --- 1. reload ----------------------------------------------------------
: >"$T/sent"
srv_start reload --model "$T/cur.ctrm" --audit-dir "$T/log1" --max-delay-us 300 || exit 1
DA=$(served_digest)
send a 1 40
( send bg 1 60 ) &
BG=$!
cp "$T/b.ctrm" "$T/cur.tmp" && mv "$T/cur.tmp" "$T/cur.ctrm"
kill -HUP "$SRV_PID"
for i in $(seq 1 100); do
    [ "$(served_digest)" != "$DA" ] && break
    sleep 0.1
done
DB=$(served_digest)
[ "$DB" != "$DA" ]; check $? "SIGHUP swapped in model B"
send b 1 40
wait "$BG"
srv_stop TERM
[ "$SRV_RC" = 0 ]; check $? "SIGTERM exits 0 (got $SRV_RC)"
grep -q '"msg":"audit flush failed"' "$SRV_LOG" && fail "flush failed on SIGTERM" || ok "no flush failure on SIGTERM"
N200=$(awk '$2 == 200' "$T/sent" | wc -l)
N_ALL=$(wc -l <"$T/sent")
[ "$N200" -eq "$N_ALL" ]; check $? "every request answered 200 across the reload ($N200/$N_ALL)"

OUT_A=$("$CTRTOOL" audit verify --model "$T/a.ctrm" "$T/log1" 2>&1); RC_A=$?
OUT_B=$("$CTRTOOL" audit verify --model "$T/b.ctrm" "$T/log1" 2>&1); RC_B=$?
OUT_AB=$("$CTRTOOL" audit verify --model "$T/a.ctrm" --model "$T/b.ctrm" "$T/log1" 2>&1); RC_AB=$?
log "$OUT_AB"
SA=$(summary "$OUT_A"); SB=$(summary "$OUT_B"); SAB=$(summary "$OUT_AB")
VA=$(echo "$SA" | sed 's/verified=\([0-9]*\).*/\1/'); KA=$(echo "$SA" | sed 's/.*skipped=\([0-9]*\).*/\1/')
VB=$(echo "$SB" | sed 's/verified=\([0-9]*\).*/\1/'); KB=$(echo "$SB" | sed 's/.*skipped=\([0-9]*\).*/\1/')
[ $RC_A -eq 0 ] && [ $RC_B -eq 0 ] && [ $RC_AB -eq 0 ]; check $? "verify exits 0 for A, B, and both ($RC_A $RC_B $RC_AB)"
[ "$VA" -ge 40 ] && [ "$VB" -ge 40 ]; check $? "each model verifies its own records (A $VA, B $VB)"
[ $((VA + KA)) -eq "$N200" ] && [ "$KA" -eq "$VB" ] && [ "$KB" -eq "$VA" ]; check $? "each model skips the other's records ($SA / $SB)"
case "$SAB" in "verified=$N200 mismatched=0 skipped=0 corrupt=0 torn=0") ok "both models: $SAB" ;; *) fail "both models: $SAB (want $N200 verified)" ;; esac
"$CTRTOOL" audit dump --no-values "$T/log1" >"$T/dump1"
grep -c "\"model\":\"$DA\"" "$T/dump1" | grep -qx "$VA"; check $? "dump names model A's digest on its $VA records"
grep -q '"generation":2' "$T/dump1"; check $? "records after the reload carry generation 2"
dups=$(grep -o '"request_id":"[^"]*"' "$T/dump1" | sort | uniq -d | wc -l)
[ "$dups" -eq 0 ]; check $? "no request logged twice"
PD=$("$CTRTOOL" audit pd --model "$T/b.ctrm" --json "$T/log1")
log "pd of B against the logged scores: $PD"
case "$PD" in *"\"records\":$N200,"*) ok "pd compared every record" ;; *) fail "pd: $PD" ;; esac
PDV=$(echo "$PD" | sed 's/.*"pd":\([^,]*\),.*/\1/')
awk -v p="$PDV" 'BEGIN { exit !(p > 0 && p < 2) }'; check $? "PD of B vs logged A+B scores is in (0, 2): $PDV"
"$CTRTOOL" audit pd --model "$T/b.ctrm" --json "$T/log1" >/dev/null; check $? "pd exits 0"

# A flipped byte in the middle of a copy of the log: verify fails, names it.
mkdir -p "$T/bad"
SEG=$(ls "$T/log1"/*.audit | head -n 1)
cp "$SEG" "$T/bad/x.audit"
printf '\x00\x01' | dd of="$T/bad/x.audit" bs=1 seek=700 conv=notrunc status=none
OUT=$("$CTRTOOL" audit verify --model "$T/a.ctrm" --model "$T/b.ctrm" "$T/bad" 2>&1); RC=$?
[ $RC -ne 0 ]; check $? "verify exits non-zero on corruption in the middle"
echo "$OUT" | grep -q 'corrupt=1'; check $? "verify counts one corrupt record"
# A torn tail on another copy: reported, not an error.
SIZE=$(stat -c %s "$SEG")
head -c $((SIZE - 37)) "$SEG" >"$T/bad/x.audit"
OUT=$("$CTRTOOL" audit verify --model "$T/a.ctrm" --model "$T/b.ctrm" "$T/bad" 2>&1); RC=$?
[ $RC -eq 0 ] && echo "$OUT" | grep -q 'corrupt=0 torn=1'; check $? "a torn final record is skipped, exit 0"

# --- 2/3. rotation and restart -----------------------------------------
: >"$T/sent"
srv_start rotate --model "$T/a.ctrm" --audit-dir "$T/log2" --audit-segment-bytes 4096 || exit 1
send r 1 60
req GET /metrics
M="$BODY_OUT"
for s in ctrd_audit_records_total ctrd_audit_bytes_total ctrd_audit_examples_total ctrd_audit_segments_total \
         ctrd_audit_write_duration_seconds_count ctrd_audit_fallback ctrd_audit_lag_seconds ctrd_audit_rejected_total; do
    echo "$M" | grep -q "^$s " ; check $? "/metrics has $s"
done
echo "$M" | grep -q '^ctrd_audit_records_total 60$'; check $? "ctrd_audit_records_total is 60"
echo "$M" | grep -q '^ctrd_audit_fallback 0$'; check $? "io_uring in use (ctrd_audit_fallback 0)"
srv_stop TERM
NSEG=$(ls "$T/log2"/*.audit | wc -l)
[ "$NSEG" -ge 4 ]; check $? "rotation made $NSEG segments"
BIG=$(stat -c %s "$T/log2"/*.audit | sort -n | tail -n 1)
[ "$BIG" -le 4096 ]; check $? "no segment past 4096 bytes (largest $BIG)"
"$CTRTOOL" audit dump --no-values "$T/log2" >"$T/dump2"
[ "$(grep -c '"segment":' "$T/dump2")" -eq "$NSEG" ] && ! grep -q '"header":"crc_mismatch"' "$T/dump2"
check $? "every segment opens with a good header"
grep -o '"index":[0-9]*' "$T/dump2" | cut -d: -f2 | tr '\n' ' ' | grep -q "^$(seq -s ' ' 1 "$NSEG") $"
check $? "segment indexes run 1..$NSEG in name order"
OUT=$("$CTRTOOL" audit verify --model "$T/a.ctrm" "$T/log2" 2>&1)
summary "$OUT" | grep -qx 'verified=60 mismatched=0 skipped=0 corrupt=0 torn=0'; check $? "rotated log verifies: $(summary "$OUT")"
md5sum "$T/log2"/*.audit >"$T/sums"
srv_start restart --model "$T/a.ctrm" --audit-dir "$T/log2" --audit-segment-bytes 4096 || exit 1
send s 1 3
srv_stop TERM
md5sum -c --quiet "$T/sums"; check $? "a restart leaves the old segments untouched"
[ "$(ls "$T/log2"/*.audit | wc -l)" -gt "$NSEG" ]; check $? "a restart writes a new segment"
OUT=$("$CTRTOOL" audit verify --model "$T/a.ctrm" "$T/log2" 2>&1)
summary "$OUT" | grep -qx 'verified=63 mismatched=0 skipped=0 corrupt=0 torn=0'; check $? "old and new runs verify: $(summary "$OUT")"

# --- 4. fsync, async, generated ids --------------------------------------
for mode in fsync async; do
    : >"$T/sent"
    srv_start "$mode" --model "$T/a.ctrm" --audit-dir "$T/log-$mode" --audit-durability "$mode" || exit 1
    send "$mode" 1 20
    req POST /v1/score '{"examples":[{"I1":3}]}'
    expect_status 200 "$mode: request without an id"
    srv_stop TERM
    OUT=$("$CTRTOOL" audit verify --model "$T/a.ctrm" "$T/log-$mode" 2>&1)
    summary "$OUT" | grep -qx 'verified=21 mismatched=0 skipped=0 corrupt=0 torn=0'; check $? "$mode: $(summary "$OUT")"
    "$CTRTOOL" audit dump --no-values "$T/log-$mode" | grep '"client_request_id":false' | grep -q '"request_id":"[0-9a-f]*-[0-9a-f]*"'
    check $? "$mode: the server-made request id is logged"
    grep -q "\"durability\":\"$mode\"" <("$CTRTOOL" audit dump --no-values "$T/log-$mode"); check $? "$mode: segment header names the mode"
done

# --- 5. back-pressure: a slow disk (CTRD_AUDIT_DELAY_US) and small buffers:
# requests wait, then get 503 audit_busy; memory does not grow; every 200 is
# logged and no refused request is.
big_body() {  # ID: 200 examples with every feature set (a record of ~50 KB)
    awk -v id="$1" 'BEGIN {
        printf "{\"request_id\":\"%s\",\"examples\":[", id;
        for (e = 0; e < 200; e++) {
            printf "%s{", (e ? "," : "");
            for (i = 1; i <= 13; i++) printf "%s\"I%d\":%d", (i > 1 ? "," : ""), i, e * 13 + i;
            for (j = 1; j <= 26; j++) printf ",\"C%d\":\"%08x\"", j, e * 26 + j;
            printf "}";
        }
        printf "]}";
    }'
}
big_body X >"$T/big.json"
CTRD_AUDIT_DELAY_US=150000 CTRD_AUDIT_BUFFER_BYTES=65536 CTRD_AUDIT_WAIT_MS=40 \
    srv_start slow --model "$T/a.ctrm" --audit-dir "$T/log-slow" --threads 2 || exit 1
: >"$T/sent-slow"
PIDS=""
for w in 1 2 3 4 5 6; do
    (
        for i in $(seq 1 8); do
            st=$(sed "s/\"request_id\":\"X\"/\"request_id\":\"slow-$w-$i\"/" "$T/big.json" |
                 curl -s -o "$T/out-$w" -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
                      --data-binary @- "$SRV_URL/v1/score")
            code=$(grep -o '"code":"[a-z_]*"' "$T/out-$w" | cut -d'"' -f4)
            echo "slow-$w-$i $st ${code:-ok}"
        done >"$T/sent-slow-$w"
    ) &
    PIDS="$PIDS $!"
done
for p in $PIDS; do wait "$p"; done
cat "$T"/sent-slow-* >"$T/sent-slow"
srv_stop TERM
N200=$(awk '$2 == 200' "$T/sent-slow" | wc -l)
NBUSY=$(awk '$2 == 503 && $3 == "audit_busy"' "$T/sent-slow" | wc -l)
NOTHER=$(awk '$2 != 200 && !($2 == 503 && ($3 == "audit_busy" || $3 == "queue_full"))' "$T/sent-slow" | wc -l)
log "slow disk: $N200 answered 200, $NBUSY refused 503 audit_busy, $NOTHER other"
[ "$NBUSY" -gt 0 ] && [ "$N200" -gt 0 ] && [ "$NOTHER" -eq 0 ]; check $? "slow disk: 503 audit_busy after waiting, the rest served"
"$CTRTOOL" audit dump --no-values "$T/log-slow" | grep -o '"request_id":"[^"]*"' | cut -d'"' -f4 | sort >"$T/logged-slow"
awk '$2 == 200 {print $1}' "$T/sent-slow" | sort >"$T/ok-slow"
awk '$2 != 200 {print $1}' "$T/sent-slow" | sort >"$T/refused-slow"
[ -z "$(comm -23 "$T/ok-slow" "$T/logged-slow")" ] && [ -z "$(comm -12 "$T/refused-slow" "$T/logged-slow")" ]
check $? "slow disk: every 200 logged, no refused request logged"

# --no-audit writes nothing; the log says so. It also serves the replay:
# `audit dump --requests` turns records back into bodies that score the same.
srv_start off --model "$T/a.ctrm" --no-audit || exit 1
req POST /v1/score '{"examples":[{"I1":3}]}'
expect_status 200 "--no-audit serves"
grep -q '"state":"disabled' "$SRV_LOG"; check $? "--no-audit is reported at start-up"
"$CTRTOOL" audit dump --requests --model "$T/a.ctrm" "$T/log-fsync" | head -n 8 >"$T/replay.jsonl"
"$CTRTOOL" audit dump --no-values "$T/log-fsync" >"$T/dump-fsync"
same=0 n=0
while IFS= read -r line; do
    id=$(printf '%s' "$line" | grep -o '"request_id":"[^"]*"' | cut -d'"' -f4)
    req POST /v1/score "$(printf '%s' "$line" | sed 's/^{"t_ns":[0-9]*,/{/')"
    want=$(grep "\"request_id\":\"$id\"" "$T/dump-fsync" | sed -n 's/.*"scores":\[\([^]]*\)\].*/\1/p')
    n=$((n + 1))
    [ "$ST" = 200 ] && [ "$(scores_of "$BODY_OUT")" = "$want" ] && same=$((same + 1))
done <"$T/replay.jsonl"
[ "$n" -eq 8 ] && [ "$same" -eq 8 ]; check $? "dump --requests replays to the logged scores ($same/$n)"
[ -z "$(ls -A "$T" | grep -x audit)" ]; check $? "--no-audit created no audit directory"
srv_stop TERM
finish
