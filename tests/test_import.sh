#!/bin/bash
# test_import.sh - the import from PyTorch (python/ctrd_torch, docs/IMPORT.md)
# against the real ctrd.
#
# 1. tests/import_parity.py unit: the Python side alone (XXH3 against
#    libxxhash, the writer byte for byte against ctrtool's files, each
#    case's .ctrm scored by an independent float64 numpy reading of the
#    file against the torch modules, TorchRec names exporting to the same
#    file as the reference names, the exporter's refusals).
# 2. Every case of import_parity.py (each architecture at two sizes or
#    more; bags pooled by sum and mean, shared tables, mod mapping, both
#    dot orders, DCNv2 low rank and full, stacked and parallel, Wukong with
#    identity and learned residuals; two of them exported from
#    TorchRec-named state_dicts), and three that `ctrtool synth --arch`
#    writes, loaded into the torch modules: `ctrtool verify` reads the
#    file, ctrd serves it, and its /v1/score answers for 1,200 examples
#    (bags, missing values, hex and integer ids) are within 1e-5 of the
#    torch forward pass.
# 3. The README's three commands (random, export, serve) and
#    `ctrd_torch score` against ctrd.
#
# Python is Debian's /usr/bin/python3 (python3-torch, python3-numpy; `make
# deps` installs them): a missing one is a failure, not a skip.
# IMPORT_CASES="name ..." runs only those cases (for development).
. "$(dirname "$0")/lib_server.sh"

PY=/usr/bin/python3
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
    echo "FAIL: $PY cannot import torch and numpy (\`make deps\` installs python3-torch, python3-numpy)"
    exit 1
fi
# One thread each: the test shares the machine with the rest of make test.
export OMP_NUM_THREADS=1

if "$PY" "$ROOT/tests/import_parity.py" unit --ctrtool "$CTRTOOL" --work "$T/unit"; then
    ok "python side (import_parity.py unit)"
else
    fail "python side (import_parity.py unit)"
fi

only=""
[ -n "${IMPORT_CASES:-}" ] && only="--only $(printf '%s' "$IMPORT_CASES" | tr ' ' ',')"
# shellcheck disable=SC2086
if ! "$PY" "$ROOT/tests/import_parity.py" make --out "$T/cases" --ctrtool "$CTRTOOL" $only; then
    fail "import_parity.py make"
    finish
fi

while read -r c; do
    [ -z "$c" ] && continue
    m="$T/cases/$c/model.ctrm"
    if out=$("$CTRTOOL" verify "$m" 2>&1); then ok "$c: ctrtool verify"; else fail "$c: ctrtool verify: $out"; continue; fi
    if ! srv_start "$c" --model "$m" --no-audit --threads 2; then
        fail "$c: ctrd did not start with the exported model"
        continue
    fi
    if "$PY" "$ROOT/tests/import_parity.py" check --url "$SRV_URL" --case "$T/cases/$c"; then
        ok "$c: ctrd scores = torch scores within 1e-5"
    else
        fail "$c: ctrd scores differ from torch"
    fi
    srv_stop
done <"$T/cases/cases"

# The README's import, as a user runs it: a random Wukong in TorchRec-free
# reference names, exported, served, and scored by both sides.
if [ -z "${IMPORT_CASES:-}" ]; then
    W="$T/cli"
    mkdir -p "$W"
    if "$PY" -m ctrd_torch random --arch wukong --config "$W/wk.json" --state "$W/wk.pt" --seed 3 >/dev/null &&
        "$PY" -m ctrd_torch.export --config "$W/wk.json" --state "$W/wk.pt" --out "$W/wk.ctrm" >/dev/null; then
        ok "ctrd_torch random + ctrd_torch.export"
        "$PY" - >"$W/wk.jsonl" <<'PY'
import json, random
r = random.Random(5)
for i in range(300):
    ex = {"I%d" % k: r.randrange(0, 500) for k in range(1, 14) if r.random() > 0.1}
    ex.update({"C%d" % k: "%08x" % r.getrandbits(32) for k in range(1, 27) if r.random() > 0.1})
    print(json.dumps(ex))
PY
        "$PY" -m ctrd_torch score --config "$W/wk.json" --state "$W/wk.pt" --examples "$W/wk.jsonl" >"$W/wk.torch"
        if srv_start cli --model "$W/wk.ctrm" --no-audit; then
            "$PY" -c 'import json, sys; print(json.dumps({"examples": [json.loads(l) for l in open(sys.argv[1])]}))' \
                "$W/wk.jsonl" >"$W/body.json"
            # shellcheck disable=SC2034  # ST and BODY_OUT are read by expect_status
            ST=$(curl -s -o "$W/answer.json" -w '%{http_code}' --max-time 30 -H 'Content-Type: application/json' \
                --data-binary @"$W/body.json" "$SRV_URL/v1/score")
            # shellcheck disable=SC2034
            BODY_OUT=$(head -c 300 "$W/answer.json")
            expect_status 200 "the exported Wukong scores"
            if "$PY" -c '
import json, sys
got = json.load(sys.stdin)["scores"]
want = [float(l) for l in open(sys.argv[1])]
d = max(abs(a - b) for a, b in zip(got, want))
print("ctrd_torch score vs ctrd: %d examples, max |diff| %.3g" % (len(got), d))
sys.exit(0 if len(got) == len(want) == 300 and d <= 1e-5 else 1)' "$W/wk.torch" <"$W/answer.json"; then
                ok "ctrd_torch score = ctrd's scores"
            else
                fail "ctrd_torch score differs from ctrd"
            fi
            srv_stop
        else
            fail "ctrd did not serve the exported Wukong"
        fi
    else
        fail "ctrd_torch random / export"
    fi
fi
finish
