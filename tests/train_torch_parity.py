#!/usr/bin/python3
"""train_torch_parity.py DIR - the interaction trainer's gradients against
torch autograd on the reference modules (python/ctrd_torch/modules.py).

DIR holds what `test_train_graph --torch-dump DIR` wrote: per case the
initial model (caseN.model.ctrm), the trainer's gradient of the mean
logloss on one batch with respect to every tensor, written as a model of
the same shape (caseN.grad.ctrm), and the batch (batch.bin). Each model is
loaded into the torch module (ctrd_torch's load_ctrm, the importer's own
reader), the batch's mean binary cross-entropy is back-propagated by
autograd, and every parameter's .grad is compared with the same tensor
of the gradient file. The cases are test_train_graph's: dot, dcnv2 and
Wukong (whose torch module, WukongLayer, is MODEL_FORMAT.md's layer: Z =
X^T Y, F = X Z, the optional flat LN, the FMB MLP, W_L X, the identity or
learned residual, LN over each d-wide row, two-pass LayerNorm with eps
inside the root).

Both sides compute in float32, summing in different orders (torch's
matmul blocks and its index_add for the embedding gradients), so each
carries a few float32 roundings of its terms; with the terms of these
gradients bounded by about 1 / batch size and a few dozen per sum the
disagreement stays below 1e-6 absolute. The bound |c - t| <= 1e-6 +
1e-4 |t| leaves a margin of 10 to 100; any wrong term misses it by orders
of magnitude (test_train_graph's finite differences show the size of a
real error).
"""

import sys

import numpy as np
import torch

from ctrd_torch.__main__ import load_ctrm

BN, ND, SLOTS = 9, 3, 6


def main(d):
    raw = open(d + "/batch.bin", "rb").read()
    nd, nr = BN * ND * 4, BN * SLOTS * 8
    dense = np.frombuffer(raw[:nd], dtype="<f4").reshape(BN, ND)
    rows = np.frombuffer(raw[nd:nd + nr], dtype="<i8").reshape(BN, SLOTS)
    y = torch.tensor(np.frombuffer(raw[nd + nr:], dtype="u1").astype(np.float32))
    names = [line.split(" ", 1) for line in open(d + "/cases").read().splitlines()]
    failed = 0
    for case, title in names:
        _, model = load_ctrm("%s/%s.model.ctrm" % (d, case))
        _, grad = load_ctrm("%s/%s.grad.ctrm" % (d, case))
        logit = model(torch.from_numpy(dense.copy()), torch.from_numpy(rows.copy()))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, y, reduction="mean")
        loss.backward()
        want = dict(grad.named_parameters())
        worst, n = 0.0, 0
        for name, p in model.named_parameters():
            t = p.grad.detach().numpy().astype(np.float64)
            c = want[name].detach().numpy().astype(np.float64)
            dev = np.abs(c - t) / (1e-6 + 1e-4 * np.abs(t))
            n += t.size
            worst = max(worst, float(dev.max()))
            if dev.max() > 1:
                i = int(dev.argmax())
                print("FAIL: %s (%s): %s[%d]: trainer %.9g, torch %.9g"
                      % (case, title, name, i, c.ravel()[i], t.ravel()[i]))
                failed += 1
        print("%s: %s: %d gradients, worst at %.3f of the bound" % (case, title, n, worst))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
