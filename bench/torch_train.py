#!/usr/bin/python3
"""torch_train.py - PyTorch training the reference modules on the rows
`ctrtool train` trains on, for part 8 of make bench (bench/bench_train.sh
runs it beside ctrtool train and prints the table).

    torch_train.py --data FILE [--cache FILE.npz] [model and optimizer flags]
                   [--threads T] [--json OUT]
    torch_train.py --encode-only --data FILE --cache FILE.npz [--buckets N] [--hash-seed S]
    torch_train.py --check MODEL.ctrm --ctrtool build/ctrtool --data FILE [model flags]
    torch_train.py --self-test

The model and optimizer flags are `ctrtool train`'s, with its names,
defaults and meanings (the size flags are `ctrtool synth`'s): --arch
mlp|dot|dcnv2|wukong, --dim, --hidden (top MLP hidden widths), --bottom
(dense MLP hidden widths; a last layer of --dim is added), --cross,
--rank, --structure, --deep (dcnv2), --layers, --nf, --nl, --k, --fmb,
--fmb-ln, --ln-eps (wukong; --fmb's last layer of nf x dim is added),
--activation, --beta, --buckets, --hash-seed, --batch, --epochs, --lr,
--emb-lr, --emb-l2, --emb-init, --lr-decay, --seed, --threads. So
bench_train.sh passes one flag string to both sides.

The rows. The Criteo TSV (label, I1..I13, C1..C26) encoded with
python/ctrd_torch's feature code (features.dense_value, features.cat_row),
the config ctrtool train writes into its model: I1..I13 log1p, C_j hashed
(XXH3-64, seed hash_seed + j - 1) into --buckets rows plus row 0 for a
missing value. Each distinct raw value is encoded once (a dict per column),
and --cache keeps the encoded arrays between runs (checked against the
data file's size and mtime and the encoding flags). None of this is timed.
Every row is trained on (ctrtool train runs with --valid-frac 0).

The model: python/ctrd_torch's CTRModel for the config the flags describe,
float32, with one change: single-valued embedding lookups go through
F.embedding(sparse=True), so a table's gradient is the touched rows
(sparse), not a dense [buckets + 1, d] tensor zeroed and filled every step
(the forward arithmetic is the same). Initialisation follows the trainer:
tables uniform in [-emb_init, emb_init], weights He-uniform (Glorot-uniform
into the output), biases 0 but the output's, the training rows' log-odds.

One step per mini-batch, the trainer's optimizers:
  - binary cross-entropy on the logits, mean over the batch;
  - torch.optim.Adam (betas 0.9, 0.999, eps 1e-8, foreach=True: torch
    1.13's fastest CPU path, about 1.5x the default per-tensor loop on the
    MLP here) on every dense weight and bias (torch puts eps after the bias
    correction of sqrt(v), the trainer before: the same cost); --optimizer
    adagrad: torch.optim.Adagrad;
  - row-wise Adagrad on each table (torch has none; written here): the
    coalesced sparse gradient g of each touched row (+ emb_l2 * w), one
    accumulator per row, acc += mean(g^2) over the row's d values,
    w -= emb_lr / (sqrt(acc) + 1e-8) * g;
  - --lr-decay linear: both rates times 1 - done/total before each step.
The rows are shuffled each epoch (torch.randperm from --seed) and each
batch gathered from the encoded arrays, as the trainer copies its batches.

Timed: the epochs only (time.perf_counter around them), the shuffle and
batch gathers included; rows/s = rows * epochs / seconds, as ctrtool
train reports it. torch.set_num_threads(T) with OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS and MKL_NUM_THREADS set to T before torch loads, and
one inter-op thread. OMP_WAIT_POLICY=PASSIVE unless --omp-wait-policy says
otherwise: on a shared 2-core machine with other jobs running, libgomp's
default spinning made torch's 2-thread training 5-10x slower than passive
waiting (1,400 against 10,700 rows/s on the MLP), so passive is torch's
better setting there; on an idle machine, compare with --omp-wait-policy
default.

--check: the encoding and the architecture against ctrd's. It builds the
reference model the flags describe and compares its config (every
feature's mapping, seed, buckets and transform, every width) with the one
in MODEL.ctrm (what `ctrtool train` wrote with the same flags), then loads
MODEL.ctrm into the reference modules (python/ctrd_torch's .ctrm reader),
scores the first --check-rows rows of FILE encoded here, and compares with
`ctrtool score` on the same rows: max |score diff| <= 1e-5 or it fails.

--self-test: the row-wise Adagrad above against the rule written out row
by row in float64 (repeated rows in a batch, L2 on, two steps).
"""

import argparse
import json
import os
import sys


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="torch_train.py", description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="Criteo TSV rows (ctrtool gen-data)")
    ap.add_argument("--self-test", action="store_true",
                    help="check the row-wise Adagrad against a per-row loop and stop")
    ap.add_argument("--cache", help="encoded rows (.npz), written when missing or stale")
    ap.add_argument("--encode-only", action="store_true", help="write --cache and stop")
    ap.add_argument("--json", help="the result as JSON")
    ap.add_argument("--check", metavar="MODEL", help="compare with a ctrtool train model (above)")
    ap.add_argument("--ctrtool", default="build/ctrtool", help="for --check: ctrtool score")
    ap.add_argument("--check-rows", type=int, default=256)
    # ctrtool train's flags (defaults as there)
    ap.add_argument("--arch", choices=("mlp", "dot", "dcnv2", "wukong"), default="mlp")
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--hidden", default="512,256")
    ap.add_argument("--bottom", default="512,256")
    ap.add_argument("--no-bottom", action="store_true")
    ap.add_argument("--dot-order", choices=("lower", "upper"), default="lower")
    ap.add_argument("--dot-self", action="store_true")
    ap.add_argument("--structure", choices=("stacked", "parallel"), default="stacked")
    ap.add_argument("--cross", type=int, default=3)
    ap.add_argument("--rank", type=int, default=0)
    ap.add_argument("--deep", default="256,128")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--nf", type=int, default=8)
    ap.add_argument("--nl", type=int, default=8)
    ap.add_argument("--k", type=int, default=24)
    ap.add_argument("--fmb", default="512,512")
    ap.add_argument("--fmb-ln", choices=("none", "flat"), default="none")
    ap.add_argument("--fmb-out-act", action="store_true")
    ap.add_argument("--ln-eps", type=float, default=1e-5)
    ap.add_argument("--activation", choices=("smelu", "relu"), default="smelu")
    ap.add_argument("--beta", type=float, default=1.0)
    ap.add_argument("--buckets", type=int, default=65536)
    ap.add_argument("--hash-seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--optimizer", choices=("adam", "adagrad"), default="adam")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--emb-lr", type=float, default=0.1)
    ap.add_argument("--emb-l2", type=float, default=0.0)
    ap.add_argument("--emb-init", type=float, default=0.05)
    ap.add_argument("--lr-decay", choices=("linear", "none"), default="linear")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--omp-wait-policy", choices=("passive", "active", "default"), default="passive",
                    help="OMP_WAIT_POLICY for torch's OpenMP threads (passive: see above)")
    ap.add_argument("--valid-frac", type=float, default=0.0,
                    help="only 0 here (every row is trained on); accepted so the flags match")
    a = ap.parse_args(argv)
    if not a.data and not a.self_test:
        ap.error("--data is needed")
    if a.valid_frac != 0:
        ap.error("--valid-frac: only 0 (train on every row, as bench_train.sh runs ctrtool train)")
    if a.threads < 1:
        ap.error("--threads: at least 1")
    return a


a = parse_args(sys.argv[1:])
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = str(a.threads)
if a.omp_wait_policy != "default":
    os.environ["OMP_WAIT_POLICY"] = a.omp_wait_policy.upper()

import math  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
from ctrd_torch import config as C  # noqa: E402
from ctrd_torch import features  # noqa: E402
from ctrd_torch.modules import CTRModel  # noqa: E402

N_DENSE, N_CAT = 13, 26
ADAGRAD_EPS = 1e-8
CACHE_VERSION = 1


def widths(s):
    s = s.strip()
    return [] if s in ("", "none") else [int(w) for w in s.split(",")]


def make_config(a):
    """The reference config of the model `ctrtool train` builds from the same flags."""
    d = a.dim
    cfg = {"name": "torch-train-" + a.arch, "arch": a.arch, "activation": a.activation,
           "beta": a.beta,
           "dense": [{"name": "I%d" % i, "transform": "log1p"} for i in range(1, N_DENSE + 1)],
           "categorical": [{"name": "C%d" % j, "buckets": a.buckets, "dim": d, "mapping": "hash",
                            "seed": a.hash_seed + j - 1} for j in range(1, N_CAT + 1)],
           "top": widths(a.hidden)}
    if a.arch != "mlp" and not (a.arch == "dcnv2" and a.no_bottom):
        cfg["bottom"] = widths(a.bottom) + [d]
    if a.arch == "dot":
        cfg["interaction"] = {"order": a.dot_order, "self": a.dot_self}
    elif a.arch == "dcnv2":
        cfg["interaction"] = {"structure": a.structure, "layers": a.cross, "rank": a.rank}
        if a.structure == "parallel":
            cfg["interaction"]["deep"] = widths(a.deep)
    elif a.arch == "wukong":
        # the model file holds epsilon as a float32
        cfg["interaction"] = {"ln_eps": float(np.float32(a.ln_eps)), "fmb_ln": a.fmb_ln, "fmb_out_act": a.fmb_out_act,
                              "layers": [{"n_f": a.nf, "n_l": a.nl, "k": a.k, "fmb": widths(a.fmb)}
                                         for _ in range(a.layers)]}
    cfg = C.normalize(cfg)
    C.check_widths(cfg)
    return cfg


# ---- the rows ------------------------------------------------------------------------

def encode_file(path, cfg, limit=None):
    """(dense float32 [n, 13], rows int64 [n, 26], labels float32 [n]) of a Criteo TSV,
    every value through features.dense_value / features.cat_row, each distinct
    raw value once."""
    dense_f, cat_f = cfg["dense"], cfg["categorical"]
    dmemo = [{} for _ in dense_f]
    cmemo = [{"": 0} for _ in cat_f]   # empty field: missing, row 0
    dense, rows, labels = [], [], []
    with open(path, encoding="utf-8", newline="\n") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if not line:
                continue
            p = line.split("\t")
            if len(p) != 1 + N_DENSE + N_CAT:
                raise SystemExit("%s: a line of %d fields (expected %d)" % (path, len(p), 1 + N_DENSE + N_CAT))
            labels.append(int(p[0]))
            dv = []
            for k in range(N_DENSE):
                s = p[1 + k]
                v = dmemo[k].get(s)
                if v is None:
                    v = dmemo[k][s] = float(features.dense_value(dense_f[k], float(s) if s else None))
                dv.append(v)
            dense.append(dv)
            rv = []
            for j in range(N_CAT):
                s = p[1 + N_DENSE + j]
                r = cmemo[j].get(s)
                if r is None:
                    r = cmemo[j][s] = features.cat_row(cat_f[j], s)
                rv.append(r)
            rows.append(rv)
            if limit and len(labels) == limit:
                break
    return (np.asarray(dense, dtype=np.float32), np.asarray(rows, dtype=np.int64),
            np.asarray(labels, dtype=np.float32))


def cache_key(path, a):
    st = os.stat(path)
    return "v%d size=%d mtime_ns=%d buckets=%d hash_seed=%d" % (
        CACHE_VERSION, st.st_size, st.st_mtime_ns, a.buckets, a.hash_seed)


def load_rows(a, cfg):
    """The encoded rows, from --cache when it matches the data file and flags."""
    key = cache_key(a.data, a)
    if a.cache and os.path.exists(a.cache):
        try:
            z = np.load(a.cache)
            if str(z["key"]) == key:
                return z["dense"], z["rows"], z["labels"], True
        except (OSError, ValueError, KeyError):
            pass
    dense, rows, labels = encode_file(a.data, cfg)
    if a.cache:
        tmp = a.cache + ".tmp.npz"
        np.savez(tmp, key=np.array(key), dense=dense, rows=rows, labels=labels)
        os.replace(tmp, a.cache)
    return dense, rows, labels, False


# ---- the model ------------------------------------------------------------------------

class TrainModel(CTRModel):
    """CTRModel with sparse-gradient lookups for single-valued features
    (bags, none here, keep the reference path)."""

    def embeddings(self, rows):
        out, s = [], 0
        for f in self.cfg["categorical"]:
            if f["bag"] is not None:
                return super().embeddings(rows)
            out.append(F.embedding(rows[:, s], self.table(f), sparse=True))
            s += 1
        return out


def init_params(model, a, pos_rate):
    """The trainer's initialisation (train_net.c), with torch's generator."""
    g = torch.Generator().manual_seed(a.seed)
    last = "top.%d." % (len(model.top) - 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("emb."):
                p.uniform_(-a.emb_init, a.emb_init, generator=g)
            elif name.endswith("ln.weight"):
                p.fill_(1.0)
            elif name.endswith(".y"):
                p.normal_(0.0, p.shape[0] ** -0.5, generator=g)
            elif p.dim() == 2:
                fan_in, fan_out = p.shape[1], p.shape[0]
                lim = math.sqrt(6.0 / (fan_in + fan_out)) if name.startswith(last) else \
                    math.sqrt(6.0 / fan_in)
                p.uniform_(-lim, lim, generator=g)
            elif name == last + "bias":
                p.fill_(math.log(pos_rate / (1.0 - pos_rate)))
            else:
                p.zero_()


def rowwise_adagrad(tables, accs, lr, l2):
    """Row-wise Adagrad on sparse gradients: one accumulator per row, the
    mean of the squared gradient over the row's d values."""
    with torch.no_grad():
        for w, acc in zip(tables, accs):
            if w.grad is None:
                continue
            g = w.grad.coalesce()
            idx, v = g.indices()[0], g.values()
            if l2:
                v = v + l2 * w.index_select(0, idx)
            a_new = acc.index_select(0, idx) + v.pow(2).mean(1)
            acc.index_copy_(0, idx, a_new)
            w.index_add_(0, idx, v * (-lr / (a_new.sqrt() + ADAGRAD_EPS)).unsqueeze(1))
            w.grad = None


def train(a, cfg, dense, rows, labels):
    torch.manual_seed(a.seed)
    model = TrainModel(cfg)
    n = len(labels)
    pos_rate = (float(labels.sum()) + 0.5) / (n + 1.0)
    init_params(model, a, pos_rate)
    tables = [p for name, p in model.named_parameters() if name.startswith("emb.")]
    params = [p for name, p in model.named_parameters() if not name.startswith("emb.")]
    if a.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, foreach=True)
    else:
        opt = torch.optim.Adagrad(params, lr=a.lr, eps=1e-8, foreach=True)
    accs = [torch.zeros(t.shape[0]) for t in tables]
    td, tr, tl = torch.from_numpy(dense), torch.from_numpy(rows), torch.from_numpy(labels)
    gen = torch.Generator().manual_seed(a.seed)
    total, done, loss_sum = n * a.epochs, 0, 0.0
    t0 = time.perf_counter()
    for _ in range(a.epochs):
        perm = torch.randperm(n, generator=gen)
        for b0 in range(0, n, a.batch):
            idx = perm[b0:b0 + a.batch]
            f = 1.0 - done / total if a.lr_decay == "linear" else 1.0
            for grp in opt.param_groups:
                grp["lr"] = a.lr * f
            logits = model(td.index_select(0, idx), tr.index_select(0, idx))
            loss = F.binary_cross_entropy_with_logits(logits, tl.index_select(0, idx))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            rowwise_adagrad(tables, accs, a.emb_lr * f, a.emb_l2)
            loss_sum += float(loss) * len(idx)
            done += len(idx)
    secs = time.perf_counter() - t0
    return {"rows": n, "epochs": a.epochs, "seconds": secs, "rows_per_s": total / secs,
            "train_logloss_running": loss_sum / total,
            "parameters": sum(p.numel() for p in model.parameters())}


# ---- --check ------------------------------------------------------------------------

def comparable(cfg):
    j = C.to_json(cfg)
    j.pop("name", None)
    for f in j["categorical"]:
        f["seed"] = str(f.get("seed", "0"))
    return j


def check(a, cfg):
    from ctrd_torch.__main__ import load_ctrm
    mcfg, model = load_ctrm(a.check)
    want, got = comparable(cfg), comparable(mcfg)
    if want != got:
        diff = [k for k in want if want[k] != got.get(k)]
        return {"ok": False, "why": "the model's config differs from the flags' in %s" % diff,
                "flags_config": want, "model_config": got}
    dense, rows, _ = encode_file(a.data, cfg, limit=a.check_rows)
    n = len(rows)
    with tempfile.TemporaryDirectory() as tmp:
        head = os.path.join(tmp, "head.tsv")
        with open(a.data, encoding="utf-8") as f, open(head, "w", encoding="utf-8") as o:
            k = 0
            for line in f:
                if line.strip():
                    o.write(line)
                    k += 1
                    if k == n:
                        break
        r = subprocess.run([a.ctrtool, "score", "--model", a.check, "--data", head],
                           capture_output=True, text=True)
        if r.returncode:
            return {"ok": False, "why": "ctrtool score failed: " + r.stderr.strip()[-300:]}
    ref = np.array([float(x) for x in r.stdout.split()], dtype=np.float64)
    mine = model.predict(torch.from_numpy(dense), torch.from_numpy(rows)).double().numpy()
    if len(ref) != n:
        return {"ok": False, "why": "ctrtool score gave %d scores for %d rows" % (len(ref), n)}
    diff = float(np.max(np.abs(ref - mine)))
    return {"ok": diff <= 1e-5, "rows": n, "max_score_diff": diff,
            "why": "" if diff <= 1e-5 else "scores differ by %.3g (> 1e-5)" % diff}


def self_test():
    """rowwise_adagrad on a sparse gradient with repeated rows (two steps,
    L2 on) against the rule written out row by row in float64."""
    g = torch.Generator().manual_seed(3)
    w = torch.nn.Parameter(torch.randn(10, 4, generator=g))
    acc = torch.zeros(10)
    w_ref, acc_ref = w.detach().double().clone(), torch.zeros(10, dtype=torch.float64)
    for step in range(2):
        idx = torch.tensor([3, 7, 3, 0, 9, 3] if step == 0 else [7, 1, 1])
        up = torch.randn(len(idx), 4, generator=g)
        w.grad = torch.sparse_coo_tensor(idx.unsqueeze(0), up, w.shape)
        lr, l2 = 0.1 * (step + 1), 0.01
        for r in sorted(set(idx.tolist())):
            gr = up[idx == r].double().sum(0) + l2 * w_ref[r]
            acc_ref[r] += (gr * gr).mean()
            w_ref[r] -= lr / (acc_ref[r].sqrt() + ADAGRAD_EPS) * gr
        rowwise_adagrad([w], [acc], lr, l2)
    dw = float((w.detach().double() - w_ref).abs().max())
    da = float((acc.double() - acc_ref).abs().max())
    ok = dw < 1e-5 and da < 1e-5 and w.grad is None
    print("self-test: row-wise Adagrad %s (max |w diff| %.2g, |acc diff| %.2g)" % (
        "ok" if ok else "FAILED", dw, da))
    return 0 if ok else 1


def main():
    if a.self_test:
        return self_test()
    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    cfg = make_config(a)
    if a.check:
        res = check(a, cfg)
        res.update({"arch": a.arch, "model": a.check})
        print("check %s: %s" % (a.arch, "ok, max |score diff| %.3g over %d rows" % (
            res["max_score_diff"], res["rows"]) if res["ok"] else "FAILED: " + res["why"]))
    else:
        t0 = time.perf_counter()
        dense, rows, labels, cached = load_rows(a, cfg)
        load_s = time.perf_counter() - t0
        if a.encode_only:
            print("encoded %d rows of %s in %.1f s%s" % (len(labels), a.data, load_s,
                                                        " (cached)" if cached else ""))
            return 0
        res = train(a, cfg, dense, rows, labels)
        res.update({"arch": a.arch, "threads": a.threads, "batch": a.batch, "load_seconds": load_s,
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
                    "cached": cached, "torch": torch.__version__,
                    "config": comparable(cfg)})
        print("torch %s %s, %d thread(s): %d rows in %.2f s, %.0f rows/s (running logloss %.4f)" % (
            torch.__version__, a.arch, a.threads, res["rows"] * res["epochs"], res["seconds"],
            res["rows_per_s"], res["train_logloss_running"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")
    return 0 if res.get("ok", True) else 1


if __name__ == "__main__":
    sys.exit(main())
