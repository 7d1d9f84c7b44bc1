#!/bin/bash
# End to end: what goes wrong with a shadow candidate never reaches the
# primary.
# 1. A candidate file missing, flipped (one byte of a tensor), truncated or
#    not a model at start-up: ctrd starts anyway, the primary answers 200
#    with the scores `ctrtool score` gives, ctrd_shadow_active is 0, the log
#    names the file and why, nothing is compared.
# 2. An incompatible candidate (12 dense features; mod mapping): at start-up
#    ctrd starts, serves it under its own name, the shadow is active but
#    every sampled example is counted dropped with reason "incompatible"
#    (logged once); reloaded at run time to such a file, the same, and a
#    compatible reload compares again.
# 3. A full shadow queue: a heavy candidate (a 2048-wide MLP) and
#    --shadow-queue-limit 16 under a burst: the queue gauge never passes the
#    limit, examples are dropped with reason "queue_full" and counted, every
#    primary request is 200 with its exact scores, and the primary's latency
#    stays that of the same burst without a shadow; the shadow thread runs
#    at idle priority; SIGTERM with shadow work queued exits at once.
. "$(dirname "$0")/lib_server.sh"
. "$(dirname "$0")/lib_shadow.sh"

make_model "$T/p.ctrm" 81 ctr
make_model "$T/c.ctrm" 82 ctr
make_rows 60 6
"$CTRTOOL" score --model "$T/p.ctrm" --data "$T/rows.tsv" --out "$T/offline_p.txt" >/dev/null 2>&1 \
    || { echo "ctrtool score failed"; exit 1; }
TOKEN=faults-token-abcdefghijklmnop
AUTH="Authorization: Bearer $TOKEN"

# --- 1. a bad candidate file at start-up --------------------------------------
cp "$T/c.ctrm" "$T/flip.ctrm"
SIZE=$(stat -c %s "$T/flip.ctrm")
OFF=$((SIZE / 2))        # the middle of the embedding tables: a tensor's bytes
B0=$(od -An -tu1 -j "$OFF" -N1 "$T/flip.ctrm" | tr -d ' ')
printf "$(printf '\\%03o' $((B0 ^ 0x5a)))" | dd of="$T/flip.ctrm" bs=1 seek="$OFF" conv=notrunc status=none
cmp -s "$T/c.ctrm" "$T/flip.ctrm" && { echo "FAIL: the byte flip did not change the file"; exit 1; }
head -c $((SIZE - 1000)) "$T/c.ctrm" >"$T/trunc.ctrm"
printf 'not a model at all' >"$T/junk.ctrm"
for kind in missing flip trunc junk; do
    f="$T/$kind.ctrm"
    if ! srv_start "bad_$kind" --model "ctr=$T/p.ctrm" --model "next=$f" --shadow next:ctr \
            --audit-dir "$T/audit_$kind"; then
        fail "$kind candidate: ctrd did not start"
        continue
    fi
    ok "$kind candidate: ctrd starts"
    send_rows "r_$kind"
    [ "$SENT_OK" = "$SENT_REQ" ] && cmp -s "$T/offline_p.txt" "$T/r_$kind.txt"
    check $? "$kind candidate: every primary request 200 with ctrtool score's scores ($SENT_OK of $SENT_REQ)"
    shadow_metrics
    [ "$(smetric ctrd_shadow_active)" = 0 ]; check $? "$kind candidate: ctrd_shadow_active 0"
    [ "$(smetric ctrd_shadow_examples_total)" = 0 ]; check $? "$kind candidate: nothing compared"
    grep -F "$f" "$SRV_LOG" | grep -q '"level":"error"'
    check $? "$kind candidate: an error in the log names the file: $(grep -F "$f" "$SRV_LOG" | head -n 1 | head -c 300)"
    req GET /readyz; expect_status 200 "$kind candidate: ready"
    req POST /v1/score "{\"model\":\"next\",\"examples\":[{\"I1\":1}]}"
    [ "$ST" != 200 ]; check $? "$kind candidate: the candidate itself is not served ($ST)"
    srv_stop
    [ "$SRV_RC" = 0 ]; check $? "$kind candidate: SIGTERM exits 0"
    "$CTRTOOL" audit verify --model "$T/p.ctrm" "$T/audit_$kind" >"$T/verify_$kind.out" 2>&1
    grep -q '^verified=[1-9][0-9]* mismatched=0 skipped=0 ' "$T/verify_$kind.out"
    check $? "$kind candidate: the log holds the primary's records only: $(grep '^verified=' "$T/verify_$kind.out")"
done

# --- 2. an incompatible candidate ------------------------------------------------
"$CTRTOOL" synth --out "$T/inc_dense.ctrm" --rows-per-table 200 --seed 83 --name ctr --hidden 32,16 --dense 12 >/dev/null
"$CTRTOOL" synth --out "$T/inc_mod.ctrm" --rows-per-table 200 --seed 84 --name ctr --hidden 32,16 --mapping mod >/dev/null
for inc in inc_dense inc_mod; do
    if ! srv_start "start_$inc" --model "ctr=$T/p.ctrm" --model "next=$T/$inc.ctrm" --shadow next:ctr --no-audit; then
        fail "$inc at start-up: ctrd did not start"
        continue
    fi
    send_rows "s_$inc"
    [ "$SENT_OK" = "$SENT_REQ" ] && cmp -s "$T/offline_p.txt" "$T/s_$inc.txt"
    check $? "$inc at start-up: ctrd starts, the primary is unharmed ($SENT_OK of $SENT_REQ)"
    wait_shadow_drained 60 30
    shadow_metrics
    [ "$(smetric ctrd_shadow_examples_total)" = 0 ] && [ "$(smetric ctrd_shadow_active)" = 1 ]
    check $? "$inc at start-up: the shadow is active but compares nothing"
    [ "$(smetric ctrd_shadow_dropped_examples_total reason=incompatible)" = 60 ]
    check $? "$inc at start-up: its 60 examples counted dropped as incompatible"
    [ "$(grep -c '"msg":"shadow candidate incompatible with the primary' "$SRV_LOG")" = 1 ]
    check $? "$inc at start-up: logged once: $(grep -o '"msg":"shadow candidate incompatible[^}]*' "$SRV_LOG" | head -n 1 | head -c 250)"
    req GET /v2/models/next/ready; expect_status 200 "$inc at start-up: the candidate is served under its own name"
    srv_stop
done
cp "$T/c.ctrm" "$T/cur_c.ctrm"
srv_start runtime --model "ctr=$T/p.ctrm" --model "next=$T/cur_c.ctrm" --shadow next:ctr --admin-token "$TOKEN" \
    --no-audit || exit 1
send_rows rt0
wait_shadow_drained 60 30; check $? "compatible candidate: 60 examples compared or dropped"
shadow_metrics; C0=$(smetric ctrd_shadow_examples_total)
req POST /v1/admin/reload "{\"model\":\"next\",\"path\":\"$T/inc_dense.ctrm\"}" -H "$AUTH"
expect_status 200 "the candidate reloaded to a file of 12 dense features"
send_rows rt1
[ "$SENT_OK" = "$SENT_REQ" ] && cmp -s "$T/offline_p.txt" "$T/rt1.txt"
check $? "incompatible generation: every primary request 200 with its scores"
wait_shadow_drained 120 30
shadow_metrics
INC=$(smetric ctrd_shadow_dropped_examples_total reason=incompatible)
[ "${INC:-0}" = 60 ] && [ "$(smetric ctrd_shadow_examples_total)" = "$C0" ]
check $? "its 60 examples dropped as incompatible ($INC), none compared"
send_rows rt2
shadow_metrics
[ "$(grep -c '"msg":"shadow candidate incompatible with the primary' "$SRV_LOG")" = 1 ]; check $? "logged once for the generation"
req POST /v1/admin/reload "{\"model\":\"next\",\"path\":\"$T/cur_c.ctrm\"}" -H "$AUTH"
expect_status 200 "the candidate reloaded back to a compatible file"
send_rows rt3
wait_shadow_drained 240 30
shadow_metrics
[ "$(smetric ctrd_shadow_examples_total)" = $((C0 + 60)) ]; check $? "a compatible generation is compared again ($(smetric ctrd_shadow_examples_total))"
[ "$(smetric ctrd_shadow_active)" = 1 ]; check $? "the shadow stayed active"
srv_stop

# --- 3. a full queue ---------------------------------------------------------------
"$CTRTOOL" synth --out "$T/heavy.ctrm" --rows-per-table 200 --seed 85 --name ctr --hidden 2048,2048,2048 >/dev/null \
    || { echo "synth heavy failed"; exit 1; }
LIMIT=16
# burst NAME: 8 clients x 25 requests of 8 examples, each line "STATUS SECONDS";
# the shadow queue gauge sampled meanwhile into $T/NAME.queue.
burst() {
    local name=$1 c PIDS="" i
    for c in 1 2 3 4 5 6 7 8; do
        (
            end=$((SECONDS + 60))
            for i in $(seq 1 25); do
                [ $SECONDS -ge $end ] && break
                s=$(( ((c * 25 + i) * 8) % 53 + 1 ))
                body="{\"request_id\":\"$name-$c-$i\",\"examples\":[$(sed -n "${s},$((s + 7))p" "$T/examples.jsonl" | paste -sd,)]}"
                curl -s --max-time 10 -o "$T/$name.$c.$i" -w '%{http_code} %{time_total}\n' \
                    -H 'Content-Type: application/json' --data-binary "$body" "$SRV_URL/v1/score"
            done >"$T/$name.lat.$c"
        ) &
        PIDS="$PIDS $!"
    done
    : >"$T/$name.queue"
    for i in $(seq 1 40); do
        curl -s --max-time 2 "$SRV_URL/metrics" | awk '$1 ~ /^ctrd_shadow_queue_examples/ {print $2}' >>"$T/$name.queue"
        sleep 0.05
    done
    [ -z "$PIDS" ] || wait $PIDS
    cat "$T/$name".lat.* >"$T/$name.lat"
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
p90() { sort -g | awk '{ v[NR] = $1 } END { i = int(NR * 0.9); if (i < 1) i = 1; print v[i] }'; }

srv_start base --model "ctr=$T/p.ctrm" --model "next=$T/heavy.ctrm" --no-audit --threads 2 || exit 1
burst base
srv_stop
srv_start full --model "ctr=$T/p.ctrm" --model "next=$T/heavy.ctrm" --shadow next:ctr --shadow-queue-limit $LIMIT \
    --no-audit --threads 2 || exit 1
burst full
NALL=$(grep -c . "$T/full.lat"); NOK=$(grep -c '^200 ' "$T/full.lat")
[ "$NALL" = 200 ] && [ "$NOK" = 200 ]; check $? "full queue: every primary request 200 ($NOK of $NALL)"
bad=0
for f in "$T"/full.[1-8].*; do
    c=${f#"$T"/full.}; cl=${c%%.*}; i=${c#*.}
    s=$(( ((cl * 25 + i) * 8) % 53 + 1 ))
    [ "$(scores_of "$(cat "$f")" | tr ',' '\n')" = "$(sed -n "${s},$((s + 7))p" "$T/offline_p.txt")" ] || bad=$((bad + 1))
done
[ $bad = 0 ]; check $? "full queue: every primary answer has ctrtool score's scores ($bad differ)"
QMAX=$(sort -g "$T/full.queue" | tail -n 1)
[ -n "$QMAX" ] && [ "${QMAX%.*}" -le $LIMIT ]; check $? "the queue gauge never passed --shadow-queue-limit $LIMIT (max seen $QMAX)"
# Compared + dropped adds up to what was sampled (every request, at 1.0).
wait_shadow_drained 1600 30
shadow_metrics
QF=$(smetric ctrd_shadow_dropped_examples_total reason=queue_full)
CMP=$(smetric ctrd_shadow_examples_total)
DALL=$(smetric ctrd_shadow_dropped_examples_total)
[ "${QF:-0}" -gt 0 ]; check $? "examples dropped with reason queue_full: $QF"
[ "$DALL" = "$QF" ]; check $? "no other reason counted ($DALL dropped in all)"
[ $(( ${CMP:-0} + ${QF:-0} )) = 1600 ]; check $? "compared $CMP + dropped $QF == the 1600 examples sampled"
[ "$(smetric ctrd_shadow_requests_sampled_total)" = 200 ]; check $? "200 requests sampled"
TID=""
for t in /proc/"$SRV_PID"/task/*; do
    st=$(sed 's/^.*) //' "$t/stat")   # fields from 3 on: state is the 1st
    pol=$(printf '%s' "$st" | awk '{print $39}'); nice=$(printf '%s' "$st" | awk '{print $17}')
    if [ "$pol" = 5 ] || [ "$nice" = 19 ]; then TID="$(cat "$t/comm") policy $pol nice $nice"; break; fi
done
[ -n "$TID" ]; check $? "a ctrd thread runs at idle priority (SCHED_IDLE or nice 19): $TID"
# SIGTERM with shadow work possibly still queued: exits at once, 0.
burst full2 >/dev/null 2>&1 &
BPID=$!
sleep 1
t0=$(date +%s%N)
srv_stop TERM 20
t1=$(date +%s%N)
wait $BPID 2>/dev/null
[ "$SRV_RC" = 0 ] && [ $(( (t1 - t0) / 1000000 )) -lt 8000 ]
check $? "SIGTERM under a burst with the heavy shadow: exit $SRV_RC in $(( (t1 - t0) / 1000000 )) ms"
! grep -q 'never released' "$SRV_LOG"; check $? "every shadow slot came back before exit (no 'never released' in the log)"

BM=$(awk '{print $2}' "$T/base.lat" | median); FM=$(awk '{print $2}' "$T/full.lat" | median)
B9=$(awk '{print $2}' "$T/base.lat" | p90); F9=$(awk '{print $2}' "$T/full.lat" | p90)
awk -v b="$BM" -v f="$FM" -v b9="$B9" -v f9="$F9" 'BEGIN { exit !(f <= 1.5 * b + 0.002 && f9 <= 2 * b9 + 0.005) }'
check $? "primary latency with the heavy shadow: median ${FM}s (no shadow ${BM}s), p90 ${F9}s (${B9}s)"
finish
