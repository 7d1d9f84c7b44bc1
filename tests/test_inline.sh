#!/bin/bash
# End to end: small requests scored inline (on their HTTP thread, nothing
# queued) and batched (queued, on a scoring thread) give the same bits.
# tests/inline_load.py alternates a quiet phase (one connection: inline)
# and bursts (many connections: the one inline slot is busy, requests
# queue); ctrd_requests_scored_total{path} must show both paths, every
# example must get one score text whatever the path and batch, and
# `ctrtool audit verify` must reproduce every logged score bit for bit.
# Run twice: audit async (answered with no suspension at all) and audit
# write (scored inline, answered once the record is written).
. "$(dirname "$0")/lib_server.sh"

make_model "$T/m.ctrm" 11 inline

path_count() {  # PATH: ctrd_requests_scored_total{path="PATH"}
    curl -s --max-time 5 "$SRV_URL/metrics" |
        awk -v p="ctrd_requests_scored_total{path=\"$1\"}" '$1 == p {print $2; exit}'
}

run_case() {  # LABEL DURABILITY
    local label=$1 durability=$2 dir="$T/audit-$1"
    srv_start "inline-$label" --model "$T/m.ctrm" --threads 1 --http-threads 2 \
        --max-delay-us 500 --inline-max-examples 16 \
        --audit-dir "$dir" --audit-durability "$durability" || { fail "$label: ctrd did not start"; return; }
    local out
    out=$(timeout 120 python3 "$(dirname "$0")/inline_load.py" "$SRV_PORT" 4 40 16 15 2>&1)
    log "$label: $(printf '%s' "$out" | head -c 300)"
    local inl bat
    inl=$(path_count inline); bat=$(path_count batched)
    [ "${inl:-0}" -gt 0 ] && [ "${bat:-0}" -gt 0 ] &&
        ok "$label: both paths scored requests (inline $inl, batched $bat)" ||
        fail "$label: a path was not used (inline ${inl:-?}, batched ${bat:-?})"
    printf '%s' "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert not r["errors"], "request errors: %s" % r["errors"]
assert r["requests"] == 4 * (40 + 16 * 15), "requests answered: %d" % r["requests"]
multi = {k: v for k, v in r["distinct"].items() if len(v) != 1}
assert not multi, "examples with more than one score: %s" % multi
' 2>"$T/check-$label.err" && ok "$label: every example got one score, whichever path (all 1,120 requests 200)" ||
        fail "$label: $(cat "$T/check-$label.err" | tail -n 1)"
    srv_stop TERM 20
    [ "$SRV_RC" = 0 ] && ok "$label: ctrd exits 0" || fail "$label: ctrd exit $SRV_RC"
    local summary
    summary=$("$CTRTOOL" audit verify --model "$T/m.ctrm" "$dir" 2>&1 | grep '^verified=')
    case "$summary" in
        *" mismatched=0 "*" corrupt=0 "*) ok "$label: audit verify replays every score bit for bit ($summary)" ;;
        *) fail "$label: audit verify: ${summary:-no summary}" ;;
    esac
}

run_case async async
run_case write write
finish
