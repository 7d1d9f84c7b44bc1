#!/bin/bash
# ctrd serving quantized models (ctrtool quantize): an int8 MLP and a Wukong
# model, and a DLRM dot model with a shared table and f16 and int8 tables
# side by side. For each:
#  - /v1/score on 40 rows in one request gives the same float text, bit
#    for bit, as ctrtool score on the TSV rows;
#  - the same rows sent one per request, 4 clients at once (so the batcher
#    groups them as it likes), give the same bits: no dependence on the
#    batch;
#  - the audit log replays bit-exact against the quantized file (ctrtool
#    audit verify: every record verified, none mismatched);
#  - a server forced to the scalar kernels (CTR_ISA=scalar) gives the
#    same bits again.
. "$(dirname "$0")/lib_server.sh"

"$CTRTOOL" gen-data --rows 40 --seed 11 --out "$T/rows.tsv" 2>/dev/null || { fail "gen-data"; finish; }
# One example a line: I* as numbers, C* as strings; an empty field is left out.
awk -F'\t' '{ sep = ""; printf "{"
              for (i = 2; i <= NF; i++) {
                  if ($i == "") continue
                  if (i <= 14) printf "%s\"I%d\":%s", sep, i - 1, $i
                  else printf "%s\"C%d\":\"%s\"", sep, i - 14, $i
                  sep = "," }
              printf "}\n" }' "$T/rows.tsv" >"$T/examples.jsonl"
[ "$(wc -l <"$T/examples.jsonl")" -eq 40 ]; check $? "40 examples as JSON"
printf '{"request_id":"batch","examples":[%s]}' "$(paste -sd, "$T/examples.jsonl")" >"$T/batch.json"

small=(--rows-per-table 500 --dim 8 --hidden 32,16)
"$CTRTOOL" synth --out "$T/mlp.ctrm" "${small[@]}" --seed 21 >/dev/null || { fail "synth mlp"; finish; }
"$CTRTOOL" synth --out "$T/wk.ctrm" "${small[@]}" --seed 22 --arch wukong --bottom 16 --layers 2 --nf 2 --nl 2 \
    --k 4 --fmb 16 >/dev/null || { fail "synth wukong"; finish; }
"$CTRTOOL" synth --out "$T/dot.ctrm" "${small[@]}" --seed 23 --arch dot --bottom 16 --shared C3=C1 \
    >/dev/null || { fail "synth dot"; finish; }
"$CTRTOOL" quantize --in "$T/mlp.ctrm" --out "$T/mlp8.ctrm" --dtype int8 >/dev/null; check $? "quantize mlp int8"
"$CTRTOOL" quantize --in "$T/wk.ctrm" --out "$T/wk8.ctrm" --dtype int8 >/dev/null; check $? "quantize wukong int8"
"$CTRTOOL" quantize --in "$T/dot.ctrm" --out "$T/dot16.ctrm" --dtype f16 --tables C3,C2,C9 >/dev/null &&
    "$CTRTOOL" quantize --in "$T/dot16.ctrm" --out "$T/dotmix.ctrm" --dtype int8 \
        --tables "$(seq -s, -f 'C%g' 10 26)" >/dev/null
check $? "quantize dot: f16 (C1 through its sharer C3, C2, C9) and int8 (C10..C26)"
"$CTRTOOL" inspect "$T/dotmix.ctrm" | grep -q "in 25 tables (f32 5, f16 3, int8_rowwise 17)"
check $? "dotmix: f32, f16 and int8 tables side by side"

singles() {  # OUT: scores of the 40 examples sent one a request, 4 clients at once
    local c pids=""
    for c in 0 1 2 3; do
        (
            local i=0 line
            while IFS= read -r line; do
                if [ $((i % 4)) -eq "$c" ]; then
                    body=$(curl -s --max-time 10 -H 'Content-Type: application/json' \
                        --data-binary "{\"request_id\":\"one-$i\",\"examples\":[$line]}" "$SRV_URL/v1/score")
                    printf '%d %s\n' "$i" "$(scores_of "$body")" >>"$T/singles.$c"
                fi
                i=$((i + 1))
            done <"$T/examples.jsonl"
        ) &
        pids="$pids $!"
    done
    wait $pids   # not a bare wait: ctrd is a background job of this shell too
    cat "$T"/singles.[0-3] | sort -n | cut -d' ' -f2 >"$1"
    rm -f "$T"/singles.[0-3]
}

for m in mlp8 wk8 dotmix; do
    Q="$T/$m.ctrm"
    "$CTRTOOL" inspect --json "$Q" | grep -q '"dtype":"int8_rowwise"'
    check $? "$m: the file holds int8_rowwise tables"
    "$CTRTOOL" score --model "$Q" --data "$T/rows.tsv" >"$T/want-$m.txt" || { fail "$m: ctrtool score"; continue; }
    srv_start "$m" --model "$Q" --audit-dir "$T/log-$m" --max-delay-us 500 || { fail "$m: ctrd did not start"; continue; }
    req POST /v1/score "$(cat "$T/batch.json")"
    expect_status 200 "$m: /v1/score, 40 examples"
    { scores_of "$BODY_OUT"; echo; } | tr ',' '\n' >"$T/got-$m.txt"
    [ "$(wc -l <"$T/want-$m.txt")" -eq 40 ] && cmp -s "$T/got-$m.txt" "$T/want-$m.txt"
    check $? "$m: ctrd's 40 scores equal ctrtool score's, bit for bit"
    singles "$T/one-$m.txt"
    cmp -s "$T/one-$m.txt" "$T/want-$m.txt"
    check $? "$m: one example a request (4 clients) gives the same bits as the batch"
    srv_stop TERM
    [ "$SRV_RC" = 0 ]; check $? "$m: SIGTERM exits 0 (got $SRV_RC)"
    OUT=$("$CTRTOOL" audit verify --model "$Q" "$T/log-$m" 2>&1)
    case "$(printf '%s\n' "$OUT" | grep '^verified=')" in
        "verified=41 mismatched=0 skipped=0 corrupt=0 torn=0") ok "$m: the audit log replays bit-exact (41 records)" ;;
        *) fail "$m: audit verify: $OUT" ;;
    esac
    CTR_ISA=scalar srv_start "$m-scalar" --model "$Q" --no-audit || { fail "$m: scalar ctrd did not start"; continue; }
    req POST /v1/score "$(cat "$T/batch.json")"
    { scores_of "$BODY_OUT"; echo; } | tr ',' '\n' >"$T/got-$m-scalar.txt"
    cmp -s "$T/got-$m-scalar.txt" "$T/want-$m.txt"
    check $? "$m: CTR_ISA=scalar gives the same bits"
    srv_stop TERM
done
finish
