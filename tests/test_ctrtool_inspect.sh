#!/bin/bash
# ctrtool inspect / verify on a model of every architecture (the version-2
# seeds of the model fuzz corpus, written by tests/model_v2_defs.h through
# the writer) and on a version-1 model: exit codes, the arch and graph
# lines, the parameter count and MFLOP per example (pinned for one Wukong
# model, counted by hand), verify's tensor count equal to the header's.
set -euo pipefail
B=${B:-build}
T=$(mktemp -d "${TMPDIR:-/tmp}/ctrtool_inspect.XXXXXX")
trap 'rm -rf "$T"' EXIT
tool="$B/ctrtool"
fail() { echo "FAIL: $*"; exit 1; }
corpus=tests/fuzz/corpus/model

n=0
for f in "$corpus"/seed-v2-*.ctrm; do
    label=$(basename "$f" .ctrm)
    arch=$(echo "$label" | sed 's/^seed-v2-[0-9]*-\([a-z0-9]*\)-.*/\1/')
    "$tool" inspect "$f" >"$T/out" 2>"$T/err" || fail "$label: inspect: $(cat "$T/err")"
    grep -q "^  preamble     magic \"CTRMODEL\", version 2," "$T/out" || fail "$label: preamble line"
    grep -q "^arch: $arch[ ;]" "$T/out" || fail "$label: no 'arch: $arch' line"
    grep -q "^graph:$" "$T/out" || fail "$label: no graph"
    grep -q "^    mlp\.1  *linear 4 -> 1, sigmoid$" "$T/out" || fail "$label: no top MLP line"
    grep -q "^parameters: [0-9]* (dense [0-9]*, embeddings [0-9]*)" "$T/out" || fail "$label: parameters"
    grep -q "^compute: [0-9.e-]* MFLOP per example" "$T/out" || fail "$label: MFLOP"
    tensors=$(sed -n 's/^tensors: \([0-9]*\)$/\1/p' "$T/out")
    "$tool" verify "$f" >"$T/v" 2>&1 || fail "$label: verify: $(cat "$T/v")"
    grep -q "^ok: $tensors tensors, " "$T/v" || fail "$label: verify counts $(cat "$T/v"), header has $tensors"
    case $arch in
    dot) grep -q "^    dot  *\(lower\|upper\) triangle" "$T/out" || fail "$label: dot line" ;;
    dcnv2) grep -q "^    cross\.0  *x_0 \* (W x + b) + x" "$T/out" || grep -q "no-cross" <<<"$label" ||
        fail "$label: cross line" ;;
    wukong) grep -q "^    flatten  *-> " "$T/out" || fail "$label: flatten line" ;;
    mlp) grep -q "^    concat  *\[" "$T/out" || fail "$label: concat line" ;;
    esac
    n=$((n + 1))
done
[ "$n" -ge 8 ] || fail "only $n version-2 seeds in $corpus"

# Wukong, counted by hand: bottom 2*(2*3+3*4) = 36; layer 0: X^T Y and X Z
# 2*4*4*2 each, FMB 2*(8*3+3*8), LCB 2*2*4*4 = 288; layer 1 the same plus
# FMB 2*(8*3+3*12) and a residual 2*5*4*4 = 472; top 2*(20*4+4) = 168.
f="$corpus/seed-v2-08-wukong-none.ctrm"
"$tool" inspect "$f" >"$T/out"
grep -q "^compute: 0.000964 MFLOP per example" "$T/out" || fail "wukong MFLOP: $(grep compute "$T/out")"
grep -q "^parameters: 376 (dense 316, embeddings 60)" "$T/out" || fail "wukong parameters: $(grep parameters "$T/out")"
grep -q "^    wukong\.1\.out  *LN_d(\[F; L\] + res X), res \[5 x 4\] -> 5 x 4$" "$T/out" || fail "wukong residual line"
# A shared table is listed as such and counted once.
f="$corpus/seed-v2-00-mlp-bags-mod-share.ctrm"
"$tool" inspect "$f" >"$T/out"
grep -q "^    C3  .* mod .* shares C1$" "$T/out" || fail "shared table line: $(grep '^    C3' "$T/out")"
grep -q "^    C1  *pool sum over up to 3 rows of 2$" "$T/out" || fail "bag pooling line"

# Version 1: an MLP over the concatenation, as before.
"$tool" synth --out "$T/v1.ctrm" --rows-per-table 10 --dense 2 --categorical 3 --dim 4 --hidden 8 >/dev/null
"$tool" inspect "$T/v1.ctrm" >"$T/out"
grep -q "version 1," "$T/out" || fail "v1 preamble"
grep -q "^arch: mlp; activation smelu" "$T/out" || fail "v1 arch line"
grep -q "^    concat  *\[2 dense; 3 embeddings\] -> 14$" "$T/out" || fail "v1 concat line"
# 2*(14*8 + 8*1) = 240 FLOP; 3*(11*4) + (14*8+8) + (8+1) = 261 parameters
grep -q "^compute: 0.00024 MFLOP" "$T/out" || fail "v1 MFLOP: $(grep compute "$T/out")"
grep -q "^parameters: 261 (dense 129, embeddings 132)" "$T/out" || fail "v1 parameters: $(grep parameters "$T/out")"
"$tool" verify "$T/v1.ctrm" | grep -q "^ok: 7 tensors, 1044 bytes verified" || fail "v1 verify"
echo "ok: inspect and verify on $n version-2 models and a version-1 model"
