#!/usr/bin/python3
"""criteo_paired.py - is model A better than model B on the test rows, beyond
the noise of 11.6k rows and of the seed? Trains both configurations on
criteo_grid.py's dev rows (the same hold-out flags, so the same training
rows), for each seed, scores the test rows with `ctrtool score`, and reports
the test AUC and logloss differences A - B averaged over the seeds, with a
95% paired bootstrap interval over the test rows (the same resampled rows
for A and B, 1000 resamples, fixed generator seed).

Usage: bench/criteo_paired.py --split DIR --a "FLAGS" --b "FLAGS"
       [--seeds 1,2,3] [--tool build/ctrtool] [--threads 2]
DIR holds dev.tsv and test.tsv as `criteo_grid.py --keep DIR` leaves them.
"""
import argparse
import math
import os
import random
import subprocess
import sys
import tempfile


def auc(labels, scores, idx):
    """Mann-Whitney AUC over the rows idx (ties count one half)."""
    pairs = sorted((scores[i], labels[i]) for i in idx)
    n_pos = sum(l for _, l in pairs)
    n_neg = len(pairs) - n_pos
    rank_sum, i = 0.0, 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        r = (i + 1 + j) / 2.0  # average rank of the tie group, 1-based
        rank_sum += r * sum(l for _, l in pairs[i:j])
        i = j
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def logloss(labels, scores, idx):
    s = 0.0
    for i in idx:
        p = min(max(scores[i], 1e-7), 1 - 1e-7)
        s -= math.log(p) if labels[i] else math.log(1 - p)
    return s / len(idx)


def scores_of(a, flags, seed, work):
    model = os.path.join(work, "m.ctrm")
    out = os.path.join(work, "s.txt")
    subprocess.run([a.tool, "train", "--data", os.path.join(a.split, "dev.tsv"), "--out", model,
                    "--valid-frac", "0.1", "--split-seed", "1", "--seed", seed, "--threads",
                    str(a.threads), "--quiet"] + flags.split(), check=True)
    subprocess.run([a.tool, "score", "--model", model, "--data", os.path.join(a.split, "test.tsv"),
                    "--out", out], check=True)
    with open(out) as f:
        s = [float(x) for x in f]
    os.remove(model)
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", required=True)
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--tool", default="build/ctrtool")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    with open(os.path.join(a.split, "test.tsv")) as f:
        labels = [int(line.split("\t", 1)[0]) for line in f]
    n = len(labels)
    work = tempfile.mkdtemp(prefix="ctrd-paired.")
    sa, sb = [], []
    try:
        for seed in a.seeds.split(","):
            sa.append(scores_of(a, a.a, seed, work))
            sb.append(scores_of(a, a.b, seed, work))
    finally:
        for f in os.listdir(work):
            os.remove(os.path.join(work, f))
        os.rmdir(work)
    if any(len(s) != n for s in sa + sb):
        sys.exit("criteo_paired: a score file does not match the test rows")

    def diff(idx):
        k = len(sa)
        da = sum(auc(labels, sa[i], idx) - auc(labels, sb[i], idx) for i in range(k)) / k
        dl = sum(logloss(labels, sa[i], idx) - logloss(labels, sb[i], idx) for i in range(k)) / k
        return da, dl

    every = range(n)
    d_auc, d_ll = diff(every)
    per_seed = [(auc(labels, sa[i], every) - auc(labels, sb[i], every)) for i in range(len(sa))]
    rng = random.Random(12345)
    boot = []
    for _ in range(1000):
        idx = [rng.randrange(n) for _ in range(n)]
        boot.append(diff(idx))
    ba = sorted(x for x, _ in boot)
    bl = sorted(y for _, y in boot)
    print(f"A: {a.a or '(defaults)'}\nB: {a.b or '(defaults)'}\nseeds {a.seeds}, {n} test rows")
    print(f"AUC A - B: {d_auc:+.4f} (per seed {', '.join(f'{x:+.4f}' for x in per_seed)}), "
          f"95% bootstrap [{ba[25]:+.4f}, {ba[974]:+.4f}]")
    print(f"logloss A - B: {d_ll:+.4f}, 95% bootstrap [{bl[25]:+.4f}, {bl[974]:+.4f}]")


if __name__ == "__main__":
    main()
