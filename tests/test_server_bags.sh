#!/bin/bash
# test_server_bags.sh - bag and `mod` features through a running ctrd, for
# every architecture (ctrtool synth --arch mlp|dot|dcnv2|wukong, with
# C1 a bag pooled by sum and C2 one pooled by mean; the dcnv2 and wukong
# models map every feature with `mod`):
#   1. tests/bags_e2e.py check: /v1/models and the v2 metadata describe the
#      architecture and the bags; one batch as /v1/score (bags as arrays,
#      one in "context"), v2 JSON (bags as padded inputs) and v2 binary
#      gives the same score bits, and each example alone too; the refusals
#      name their example and feature;
#   2. the audit log of all that: `ctrtool audit verify` re-scores every
#      record bit for bit, `audit pd` against the same model is all
#      identical, `audit dump --requests` gives bodies that score the same;
#   3. `ctrtool score` on a CSV of the same kind of rows (a bag of at most
#      one value per column) prints the server's scores.
# Loopback only; every wait bounded.
. "$(dirname "$0")/lib_server.sh"

PY=${PYTHON:-python3}
HERE=$(dirname "$0")
SMALL="--rows-per-table 300 --dim 8 --hidden 16,8 --bag-features C1,C2:mean --max-bag 4"

for arch in mlp dot dcnv2 wukong; do
    case $arch in
        mlp)    extra="" ;;
        dot)    extra="--bottom 16 --dot-order upper" ;;
        dcnv2)  extra="--bottom 16 --cross 2 --rank 3 --mapping mod" ;;
        wukong) extra="--bottom 16 --layers 2 --nf 3 --nl 2 --k 4 --fmb 16 --mapping mod" ;;
    esac
    M="$T/$arch.ctrm"
    # shellcheck disable=SC2086
    if ! "$CTRTOOL" synth --arch "$arch" --out "$M" --seed 7 --name "bags-$arch" $SMALL $extra >"$T/synth-$arch.txt" 2>&1; then
        fail "$arch: ctrtool synth: $(cat "$T/synth-$arch.txt")"
        continue
    fi
    ok "$arch: $(cat "$T/synth-$arch.txt")"
    srv_start "$arch" --model "$M" --audit-dir "$T/audit-$arch" --max-delay-us 200 || { fail "$arch: ctrd did not start"; continue; }

    # 1. the three request forms, alone and batched, and the refusals
    out=$("$PY" "$HERE/bags_e2e.py" check "$SRV_PORT" 11 2>&1)
    rc=$?
    printf '%s\n' "$out" | sed "s/^/  $arch: /"
    [ $rc -eq 0 ]; check $? "$arch: bags_e2e.py check ($(printf '%s\n' "$out" | grep -c '^ok:') ok)"

    # 3. ctrtool score gives the server's bits
    "$PY" "$HERE/bags_e2e.py" csv "$SRV_PORT" 12 "$T/rows-$arch" || fail "$arch: writing the csv rows"
    if "$CTRTOOL" score --model "$M" --data "$T/rows-$arch.csv" --format csv >"$T/rows-$arch.got" 2>"$T/score-$arch.err"; then
        cmp -s "$T/rows-$arch.got" "$T/rows-$arch.want"
        check $? "$arch: ctrtool score prints the server's $(wc -l <"$T/rows-$arch.want") scores"
    else
        fail "$arch: ctrtool score: $(cat "$T/score-$arch.err")"
    fi

    # 2. the audit log
    req POST /v1/score '{"request_id":"ctx","context":{"C1":["a","b",7]},"examples":[{"C2":["e"]},{"C2":[]},{"C3":"5"}]}'
    expect_status 200 "$arch: a context bag"
    CTX_SCORES=$(scores_of "$BODY_OUT")
    srv_stop TERM
    [ "$SRV_RC" = 0 ]; check $? "$arch: ctrd exits 0 (got $SRV_RC)"
    v=$("$CTRTOOL" audit verify --model "$M" "$T/audit-$arch" 2>&1)
    line=$(printf '%s\n' "$v" | grep '^verified=')
    case "$line" in
        verified=0*|"") fail "$arch: audit verify: $v" ;;
        *" mismatched=0 "*) ok "$arch: audit verify: $line" ;;
        *) fail "$arch: audit verify: $v" ;;
    esac
    p=$("$CTRTOOL" audit pd --model "$M" --json "$T/audit-$arch" 2>&1)
    case "$p" in
        *'"identical":1'*) ok "$arch: audit pd against itself: every score identical" ;;
        *) fail "$arch: audit pd: $p" ;;
    esac
    "$CTRTOOL" audit dump --requests --model "$M" "$T/audit-$arch" >"$T/replay-$arch.jsonl" 2>"$T/dump-$arch.err"
    check $? "$arch: audit dump --requests ($(wc -l <"$T/replay-$arch.jsonl") bodies)"
    ctx_line=$(grep '"request_id":"ctx"' "$T/replay-$arch.jsonl" | sed 's/"t_ns":[0-9]*,//')
    case "$ctx_line" in
        *'"C1":["a","b","7"]'*) ok "$arch: the dumped request has the context bag as an array" ;;
        *) fail "$arch: dumped request: $ctx_line" ;;
    esac
    srv_start "$arch-replay" --model "$M" || { fail "$arch: ctrd did not restart"; continue; }
    req POST /v1/score "$ctx_line"
    [ "$ST" = 200 ] && [ "$(scores_of "$BODY_OUT")" = "$CTX_SCORES" ]
    check $? "$arch: the dumped request scores the logged bits ($CTX_SCORES)"
    srv_stop TERM
done
finish
