#!/bin/bash
# test_audit_diskfull.sh - the audit log on a full disk: a 256 KiB tmpfs
# this test mounts (root only; skipped with 77 otherwise).
#   --audit-on-error fail (default): once the disk is full, scoring
#     requests are refused (5xx, never a 200 without its record), the
#     server stays up, the log holds no corrupt record, every 200 is in it,
#     and it recovers by itself when space comes back
#   --audit-on-error continue: requests keep being served, the errors are
#     counted in /metrics
. "$(dirname "$0")/lib_server.sh"

if [ "$(id -u)" -ne 0 ]; then
    echo "skipped: mounting a small tmpfs needs root"
    exit 77
fi
MNT="$T/full"
mkdir -p "$MNT"
if ! mount -t tmpfs -o size=256k ctrd-audit-test "$MNT" 2>"$T/mount.err"; then
    echo "skipped: cannot mount a tmpfs here: $(cat "$T/mount.err")"
    exit 77
fi
trap 'umount "$MNT" 2>/dev/null; _cleanup' EXIT

make_model "$T/m.ctrm" 31 full

# Leaves about KB kilobytes free on the tmpfs.
fill_to() {  # KB
    rm -f "$MNT/filler"
    local avail
    avail=$(df -k --output=avail "$MNT" | tail -n 1 | tr -d ' ')
    [ "$avail" -gt "$1" ] && dd if=/dev/zero of="$MNT/filler" bs=1k count=$((avail - $1)) status=none 2>/dev/null
    true
}

send() {  # PREFIX N: sequential requests, "ID STATUS" lines to $T/sent-PREFIX
    local p=$1 i st
    for i in $(seq 1 "$2"); do
        st=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'Content-Type: application/json' \
             --data-binary "{\"request_id\":\"$p-$i\",\"examples\":[$(example_json "$i"),$(example_json $((i + 3)))]}" \
             "$SRV_URL/v1/score")
        echo "$p-$i $st" >>"$T/sent-$p"
    done
}

metric() {  # NAME -> value
    req GET /metrics
    printf '%s\n' "$BODY_OUT" | awk -v n="$1" '$1 == n {print $2}'
}

# --- fail ---------------------------------------------------------------
mkdir -p "$MNT/fail"
fill_to 40
srv_start fail --model "$T/m.ctrm" --audit-dir "$MNT/fail" --threads 2 || exit 1
send f 300
N200=$(awk '$2 == 200' "$T/sent-f" | wc -l)
N5XX=$(awk '$2 ~ /^5/' "$T/sent-f" | wc -l)
NOTHER=$(awk '$2 != 200 && $2 !~ /^5/' "$T/sent-f" | wc -l)
log "fail: $N200 answered 200, $N5XX refused with 5xx ($(awk '$2 ~ /^5/ {print $2}' "$T/sent-f" | sort | uniq -c | tr '\n' ' '))"
[ "$N200" -gt 0 ] && [ "$N5XX" -gt 0 ] && [ "$NOTHER" -eq 0 ]; check $? "fail: 200s until the disk filled, then 5xx ($N200/$N5XX/$NOTHER)"
# Once failing, it keeps refusing (no 200 after the first 5xx while full).
FIRST5=$(awk '$2 ~ /^5/ {print NR; exit}' "$T/sent-f")
LATE200=$(awk -v f="$FIRST5" 'NR > f && $2 == 200' "$T/sent-f" | wc -l)
log "fail: $LATE200 answers of 200 after the first 5xx (the writer retries; small records may still fit)"
req GET /healthz
expect_status 200 "fail: the server is still up on a full disk"
ERR=$(metric ctrd_audit_errors_total)
[ "${ERR:-0}" -gt 0 ]; check $? "fail: ctrd_audit_errors_total counts the failed records ($ERR)"
grep -q '"msg":"audit write failed"' "$SRV_LOG"; check $? "fail: the failure is logged"
# Space comes back: the writer recovers by itself.
rm -f "$MNT/filler"
send g 10
[ "$(awk '$2 == 200' "$T/sent-g" | wc -l)" -eq 10 ]; check $? "fail: serves again once space is back"
srv_stop TERM

"$CTRTOOL" audit dump --no-values "$MNT/fail" >"$T/dump-f" 2>"$T/dump-f.err"
grep -o '"request_id":"[^"]*"' "$T/dump-f" | cut -d'"' -f4 | sort >"$T/logged-f"
cat "$T/sent-f" "$T/sent-g" | awk '$2 == 200 {print $1}' | sort >"$T/ok-f"
cat "$T/sent-f" | awk '$2 != 200 {print $1}' | sort >"$T/refused-f"
MISSING=$(comm -23 "$T/ok-f" "$T/logged-f" | wc -l)
LOGGED_REFUSED=$(comm -12 "$T/refused-f" "$T/logged-f" | wc -l)
[ "$MISSING" -eq 0 ]; check $? "fail: every 200 is in the log ($MISSING missing)"
[ "$LOGGED_REFUSED" -eq 0 ]; check $? "fail: no refused request is in the log ($LOGGED_REFUSED)"
OUT=$("$CTRTOOL" audit verify --model "$T/m.ctrm" "$MNT/fail" 2>&1)
log "$(printf '%s\n' "$OUT" | grep '^verified=')"
printf '%s\n' "$OUT" | grep -q ' mismatched=0 skipped=0 corrupt=0 '; check $? "fail: the log verifies with no corrupt record"

# --- continue -----------------------------------------------------------
rm -rf "$MNT/fail"
mkdir -p "$MNT/cont"
fill_to 40
srv_start cont --model "$T/m.ctrm" --audit-dir "$MNT/cont" --audit-on-error continue --threads 2 || exit 1
send c 300
N200=$(awk '$2 == 200' "$T/sent-c" | wc -l)
[ "$N200" -eq 300 ]; check $? "continue: every request served on a full disk ($N200/300)"
ERR=$(metric ctrd_audit_errors_total)
REC=$(metric ctrd_audit_records_total)
[ "${ERR:-0}" -gt 0 ] && [ $((ERR + REC)) -eq 300 ]; check $? "continue: $REC logged + $ERR counted as errors = 300"
srv_stop TERM
OUT=$("$CTRTOOL" audit verify --model "$T/m.ctrm" "$MNT/cont" 2>&1)
printf '%s\n' "$OUT" | grep -q "^verified=$REC mismatched=0 skipped=0 corrupt=0 "; check $? "continue: the records written verify ($(printf '%s\n' "$OUT" | grep '^verified='))"
finish
