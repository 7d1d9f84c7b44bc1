#!/bin/bash
# The interaction trainer's gradients (model/train_graph.c, Wukong's in
# train_wukong.c) against torch autograd on the reference modules (dot,
# dcnv2 and wukong cases): test_train_graph --torch-dump writes
# each case's initial model, its gradients on one batch (as a model of the
# same shape) and the batch; tests/train_torch_parity.py loads them into
# python/ctrd_torch's modules and compares every parameter's .grad (the
# bound and its reasoning are in that file).
#
# Python is Debian's /usr/bin/python3 with python3-torch and python3-numpy
# (`make deps`); a missing one is a failure, as in test_import.sh.
set -euo pipefail
B=${B:-build}
PY=/usr/bin/python3
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS=1
T=$(mktemp -d "${TMPDIR:-/tmp}/train_torch.XXXXXX")
trap 'rm -rf "$T"' EXIT
if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
    echo "FAIL: $PY cannot import torch and numpy (\`make deps\` installs python3-torch, python3-numpy)"
    exit 1
fi
"$B/tests/test_train_graph" --torch-dump "$T" >"$T/cases"
"$PY" "$ROOT/tests/train_torch_parity.py" "$T"
echo "ok"
