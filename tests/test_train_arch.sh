#!/bin/bash
# ctrtool train --arch dot|dcnv2|wukong end to end, on gen-data rows (whose
# hidden model has pairwise interactions of latent factors):
#  - every architecture learns: validation AUC well above 0.5 and within
#    0.02 of the MLP's on the same rows and split;
#  - the model file is byte-identical for --threads 1 vs 2 and for
#    CTR_ISA=scalar vs the default kernel;
#  - ctrtool eval on the held-out rows (the split recomputed here from the
#    trainer's split seed) reproduces the validation AUC and logloss the
#    trainer recorded in the model's provenance: the same scoring path;
#  - the provenance records the architecture and its sizes.
set -euo pipefail
B=${B:-build}
T=$(mktemp -d "${TMPDIR:-/tmp}/train_arch.XXXXXX")
trap 'rm -rf "$T"' EXIT
tool="$B/ctrtool"
PY=/usr/bin/python3
fail() { echo "FAIL: $*"; exit 1; }

ROWS=20000
"$tool" gen-data --rows $ROWS --seed 1 --out "$T/data.tsv" 2>/dev/null
common=(--data "$T/data.tsv" --hidden 64,32 --dim 8 --buckets 2048 --batch 128 --lr 3e-3
        --epochs 1 --valid-frac 0.2 --split-seed 3 --seed 5)

# valid AUC and logloss from a training log's last line
valid() { sed -n 's/.*valid AUC \([0-9.]*\) logloss \([0-9.]*\).*/\1 \2/p' "$1" | tail -n 1; }

declare -A auc
train() { # name, extra flags...
    local name=$1
    shift
    "$tool" train "${common[@]}" --out "$T/$name.ctrm" --threads 2 "$@" 2>"$T/$name.log" \
        || fail "train $name: $(tail -n 3 "$T/$name.log")"
    auc[$name]=$(valid "$T/$name.log" | cut -d' ' -f1)
    echo "$name: valid AUC ${auc[$name]}, $(sed -n 's/^train: \([0-9.]* s, [0-9]* rows\/s\).*/\1/p' "$T/$name.log")"
}
train mlp
train dot --arch dot --bottom 32
train dot_upper_self --arch dot --bottom 32 --dot-order upper --dot-self
train dcn --arch dcnv2 --bottom 32 --cross 2
train dcn_lowrank_par --arch dcnv2 --bottom 32 --cross 2 --rank 8 --structure parallel --deep 64
train dcn_nobottom --arch dcnv2 --no-bottom --cross 1
# Wukong, small for 16k training rows: a learned then an identity residual;
# one layer with the flat FMB LayerNorm and the FMB's output activation
wk=(--arch wukong --bottom 32 --layers 2 --nf 4 --nl 4 --k 8 --fmb 64)
train wk "${wk[@]}"
train wk_flat --arch wukong --bottom 32 --layers 1 --nf 4 --nl 4 --k 8 --fmb 64 --fmb-ln flat --fmb-out-act
for m in dot dot_upper_self dcn dcn_lowrank_par dcn_nobottom wk wk_flat; do
    awk -v a="${auc[$m]}" -v b="${auc[mlp]}" 'BEGIN { exit !(a > 0.7 && a > b - 0.02) }' \
        || fail "$m: valid AUC ${auc[$m]} (MLP ${auc[mlp]})"
done

# byte-identical across thread counts and ISAs
for spec in "dot --arch dot --bottom 32" "dcn_lowrank_par --arch dcnv2 --bottom 32 --cross 2 --rank 8 --structure parallel --deep 64" \
            "wk ${wk[*]}"; do
    set -- $spec
    name=$1
    shift
    "$tool" train "${common[@]}" --out "$T/$name.t1.ctrm" --threads 1 --quiet "$@"
    cmp -s "$T/$name.ctrm" "$T/$name.t1.ctrm" || fail "$name: --threads 1 and 2 wrote different files"
    CTR_ISA=scalar "$tool" train "${common[@]}" --out "$T/$name.scalar.ctrm" --threads 2 --quiet "$@"
    cmp -s "$T/$name.ctrm" "$T/$name.scalar.ctrm" || fail "$name: CTR_ISA=scalar wrote a different file"
done

# The held-out rows: the trainer's split (model/train.c split_rows), a
# shuffle by splitmix64 from ctr__train_rng_stream(split_seed, 0x5b117);
# the first round(n * frac) shuffled rows are held out, kept in file order.
$PY - "$T/data.tsv" "$T/valid.tsv" 3 0.2 <<'EOF'
import math, sys
M = (1 << 64) - 1
G = 0x9e3779b97f4a7c15
def mix(z):
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M
    return z ^ (z >> 31)
lines = open(sys.argv[1]).read().splitlines()
n, seed, frac = len(lines), int(sys.argv[3]), float(sys.argv[4])
s = ((seed ^ ((0x5b117 * 0xd1342543de82ef95) & M)) + G) & M  # stream state after one draw
idx = list(range(n))
for i in range(n, 1, -1):
    s = (s + G) & M
    j = (mix(s) * i) >> 64
    idx[i - 1], idx[j] = idx[j], idx[i - 1]
nv = int(math.floor(n * frac + 0.5))
held = sorted(idx[:nv])
with open(sys.argv[2], "w") as f:
    f.write("".join(lines[i] + "\n" for i in held))
EOF
for m in mlp dot dcn dcn_lowrank_par wk wk_flat; do
    "$tool" eval --model "$T/$m.ctrm" --data "$T/valid.tsv" --json >"$T/$m.eval.json"
    "$tool" inspect --json "$T/$m.ctrm" >"$T/$m.inspect.json"
    $PY - "$T/$m.eval.json" "$T/$m.inspect.json" "$m" <<'EOF' || fail "$m: eval does not reproduce the trainer's validation figures"
import json, sys
ev = json.load(open(sys.argv[1]))
hdr = json.load(open(sys.argv[2]))["header"]
prov = hdr["provenance"]
va = prov["metrics"]["valid"]
ok = ev["n"] == va["n"] and abs(ev["auc"] - va["auc"]) < 1e-9 and abs(ev["logloss"] - va["logloss"]) < 1e-9
print("%s: eval on the held-out rows n %d AUC %.10f logloss %.10f; trainer n %d AUC %.10f logloss %.10f"
      % (sys.argv[3], ev["n"], ev["auc"], ev["logloss"], va["n"], va["auc"], va["logloss"]))
h = prov["hyperparameters"]
if sys.argv[3] != "mlp":
    assert h["arch"] == hdr["arch"], (h, hdr["arch"])
    assert "bottom" in h and ("cross" in h or "dot_order" in h or "nf" in h), h
else:
    assert "arch" not in h
sys.exit(0 if ok else 1)
EOF
done

# bad architecture options are refused, naming them
if "$tool" train "${common[@]}" --out "$T/x.ctrm" --arch dcnv2 --rank 5000 --quiet 2>"$T/err.txt"; then
    fail "rank over the width accepted"
fi
grep -q "rank" "$T/err.txt" || fail "rank message: $(cat "$T/err.txt")"
if "$tool" train "${common[@]}" --out "$T/x.ctrm" --arch wukong --no-bottom --quiet 2>"$T/err.txt"; then
    fail "wukong without a bottom MLP accepted"
fi
grep -q "no-bottom" "$T/err.txt" || fail "no-bottom message: $(cat "$T/err.txt")"
if "$tool" train "${common[@]}" --out "$T/x.ctrm" --arch wukong --layers 65 --quiet 2>"$T/err.txt"; then
    fail "65 Wukong layers accepted"
fi
grep -q "layers" "$T/err.txt" || fail "layers message: $(cat "$T/err.txt")"
echo "ok"
