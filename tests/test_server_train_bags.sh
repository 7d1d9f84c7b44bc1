#!/bin/bash
# A model trained with bag features (ctrtool train --bag, sum and mean)
# served by ctrd: /v1/score with each bag as a JSON array gives the same
# float bits as ctrtool score on the CSV rows it came from (the trainer's
# own evaluation path), so the model carries bag_max and pooling and the
# server pools the bags exactly as the trainer did. The rows include empty
# bags (the key left out) and full ones.
. "$(dirname "$0")/lib_server.sh"

"$CTRTOOL" gen-data --rows 3000 --seed 1 --model-seed 3 --bag-features 2 --max-bag 6 \
    --out "$T/train.csv" 2>/dev/null || { fail "gen-data"; finish; }
"$CTRTOOL" gen-data --rows 40 --seed 2 --model-seed 3 --bag-features 2 --max-bag 6 \
    --out "$T/rows.csv" 2>/dev/null || { fail "gen-data"; finish; }
DENSE=$(seq -s, -f 'I%g' 1 13)
CAT=$(seq -s, -f 'C%g' 1 26)

# The rows as one /v1/score body: numbers for I*, strings for C*, arrays
# for B*; an empty field is left out (missing, or an empty bag).
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) name[i] = $i; printf "{\"examples\":["; next }
         { printf "%s{", (NR > 2 ? "," : ""); sep = ""
           for (i = 2; i <= NF; i++) {
               if ($i == "") continue
               if (name[i] ~ /^I/) v = $i
               else if (name[i] ~ /^B/) { n = split($i, a, "|"); v = "["
                   for (k = 1; k <= n; k++) v = v (k > 1 ? "," : "") "\"" a[k] "\""; v = v "]" }
               else v = "\"" $i "\""
               printf "%s\"%s\":%s", sep, name[i], v; sep = "," }
           printf "}" }
         END { printf "]}" }' "$T/rows.csv" >"$T/body.json"
grep -q '\["[0-9a-f]\{8\}","[0-9a-f]\{8\}"' "$T/body.json"; check $? "the body holds bags of several values"

for pool in sum mean; do
    M="$T/$pool.ctrm"
    if ! "$CTRTOOL" train --data "$T/train.csv" --format csv --dense "$DENSE" --categorical "$CAT,B1,B2" \
        --bag 'B1:|:6' --bag 'B2:|:6' --pool "$pool" --transform log1p --hidden 16 --dim 4 \
        --buckets 2048 --threads 2 --quiet --out "$M" 2>"$T/train-$pool.err"; then
        fail "$pool: train: $(cat "$T/train-$pool.err")"
        continue
    fi
    "$CTRTOOL" score --model "$M" --data "$T/rows.csv" --format csv >"$T/want-$pool.txt" \
        || { fail "$pool: ctrtool score"; continue; }
    srv_start "$pool" --model "$M" --no-audit || { fail "$pool: ctrd did not start"; continue; }
    req POST /v1/score "$(cat "$T/body.json")"
    expect_status 200 "$pool: /v1/score with bag arrays"
    { scores_of "$BODY_OUT"; echo; } | tr ',' '\n' >"$T/got-$pool.txt"
    [ "$(wc -l <"$T/want-$pool.txt")" -eq 40 ] && cmp -s "$T/got-$pool.txt" "$T/want-$pool.txt"
    check $? "$pool: ctrd's 40 scores equal ctrtool score's, bit for bit"
    srv_stop TERM
done
finish
