#!/usr/bin/python3
"""scaling.py - plots and fits scripts/scaling.sh's results (docs/SCALING.md).

usage: /usr/bin/python3 scripts/scaling.py [RESULTS.tsv [OUTDIR]]
  RESULTS.tsv  scripts/scaling.sh's table [build/scaling/results.tsv]
  OUTDIR       where docs/scaling_<set>.png go [docs]

One figure per data set (criteo; syn, which also carries syn100k, the first
100k of the same synthetic rows): held-out logloss against MFLOP/example
(log x axis), the mean over seeds with each seed's point in grey, a least-
squares fit of logloss against log4(MFLOP) per set (the slope is per 4x of
compute, the way the paper states its law), and the paper's law (0.1% lower
logloss per 4x: L(x) = L(x0) (1 - 0.001 log4(x / x0))) drawn through the
first set's fit at the grid's geometric mean. ref-* points (the MLP,
logistic regression) are horizontal lines, not fitted; on the synthetic
figure the hidden model's own logloss on the held-out rows is the floor.
Prints the fits, then every trained point with its training-rows logloss
(from the trainer's log: the overfitting gap), as Markdown tables; then,
where the held-out rows are still in $WORK (/tmp/ctrd-scaling), the test-
set noise: each seed-1 model scored per row (`ctrtool score`, $CTRTOOL,
build/ctrtool; cached beside the model), and its logloss minus w1's with
the paired standard error of that difference (sd of the per-row loss
differences / sqrt(rows)): what a single test set can resolve. Sets:
$PAIRED_SETS ("criteo syn").
"""
import csv
import json
import math
import os
import re
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PAPER = 0.001  # the paper's relative logloss improvement per 4x compute
FIGURES = {"criteo": ["criteo"], "syn": ["syn", "syn100k"]}
LABELS = {"criteo": "Criteo sample", "syn": "gen-data", "syn100k": "gen-data, first 100k rows"}


def fit(xs, ys):
    """Least squares y = a + b x; returns a, b and b's standard error."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    b = sxy / sxx
    a = my - b * mx
    se = float("nan")
    if n > 2:
        rss = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys))
        se = math.sqrt(rss / (n - 2) / sxx)
    return a, b, se


def load(path):
    rows = list(csv.DictReader(open(path), delimiter="\t"))
    for r in rows:
        # The trainer's last line: "train: S s, R rows/s; train AUC A logloss L".
        log = os.path.join(os.path.dirname(path), f"{r['set']}-{r['point']}-s{r['seed']}.log")
        r["train_logloss"] = float("nan")
        if os.path.exists(log):
            for line in open(log):
                m = re.search(r"train AUC [0-9.]+ logloss ([0-9.]+)", line)
                if m:
                    r["train_logloss"] = float(m.group(1))
    return rows


def curve(rows, s):
    """The grid points of set s, by MFLOP: names, MFLOP, mean logloss, per-seed loglosses."""
    pts = {}
    for r in rows:
        if r["set"] == s and not r["point"].startswith("ref-"):
            pts.setdefault(r["point"], []).append(r)
    names = sorted(pts, key=lambda p: float(pts[p][0]["mflop"]))
    mf = [float(pts[p][0]["mflop"]) for p in names]
    each = [[float(r["logloss"]) for r in pts[p]] for p in names]
    ll = [sum(e) / len(e) for e in each]
    return names, mf, ll, each


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "build/scaling/results.tsv"
    outdir = sys.argv[2] if len(sys.argv) > 2 else "docs"
    rows = load(path)
    present = []
    for r in rows:
        if r["set"] not in present:
            present.append(r["set"])
    gen = os.path.join(os.path.dirname(path), "gen_test.json")

    print("| set | train rows | points | seeds | MFLOP/ex | fitted slope per 4x (logloss +- s.e.) | relative | paper |")
    print("|-----|------------|--------|-------|----------|---------------------------------------|----------|-------|")
    for fig_name, sets in FIGURES.items():
        sets = [s for s in sets if s in present]
        if not sets:
            continue
        fig, ax = plt.subplots(figsize=(7.5, 5))
        law = None
        for i, s in enumerate(sets):
            names, mf, ll, each = curve(rows, s)
            if len(names) < 2:
                continue
            l4 = [math.log(x, 4) for x in mf]
            a, b, se = fit(l4, ll)
            gm = sum(l4) / len(l4)
            l0 = a + b * gm
            rel = b / l0
            trows = sorted({int(r["train_rows"]) for r in rows if r["set"] == s})
            nseed = max(len(e) for e in each)
            print(f"| {s} | {', '.join(f'{t:,}' for t in trows)} | {len(names)} | {nseed} | "
                  f"{min(mf):.3g}-{max(mf):.3g} | {b:+.5f} +- {se:.5f} | {100 * rel:+.3f}% | -0.1% |")
            # The same over the points up to the best one: the part of the
            # curve where compute still buys something (favours a law).
            best = ll.index(min(ll))
            if best >= 2:
                a2, b2, se2 = fit(l4[:best + 1], ll[:best + 1])
                r2 = b2 / (a2 + b2 * sum(l4[:best + 1]) / (best + 1))
                print(f"| {s}, {names[0]}-{names[best]} only | | {best + 1} | {nseed} | "
                      f"{mf[0]:.3g}-{mf[best]:.3g} | {b2:+.5f} +- {se2:.5f} | {100 * r2:+.3f}% | -0.1% |")
            c = f"C{2 * i}"
            for x, e in zip(mf, each):
                if len(e) > 1:
                    ax.scatter([x] * len(e), e, s=10, color="0.6", zorder=2)
            lab = f"Wukong, {LABELS.get(s, s)} ({trows[0]:,} train rows)"
            ax.plot(mf, ll, "o-", color=c, zorder=3, label=lab + (f", mean of {nseed} seeds" if nseed > 1 else ""))
            for p, x, y in zip(names, mf, ll):
                ax.annotate(p, (x, y), textcoords="offset points", xytext=(4, 5), fontsize=7)
            xr = [min(mf) / 1.3, max(mf) * 1.3]
            ax.plot(xr, [a + b * math.log(x, 4) for x in xr], "--", color=c, lw=1,
                    label=f"  fit: {b:+.5f} per 4x ({100 * rel:+.3f}%)")
            if law is None:
                law = (xr, gm, l0)
            refs = {}
            for r in rows:
                if r["set"] == s and r["point"].startswith("ref-"):
                    refs.setdefault(r["point"][4:], []).append(float(r["logloss"]))
            for j, (p, ys) in enumerate(sorted(refs.items())):
                y = sum(ys) / len(ys)
                ax.axhline(y, color=c, lw=0.8, ls=[(0, (1, 1)), (0, (5, 2, 1, 2))][j % 2],
                           label=f"  {p} ({'MLP 512,256' if p == 'mlp' else 'logistic regression'}): {y:.4f}")
        if law is not None:
            xr, gm, l0 = law
            ax.plot(xr, [l0 * (1 - PAPER * (math.log(x, 4) - gm)) for x in xr], ":", color="k", lw=1.5,
                    label="the paper's law, -0.1% per 4x (through the first fit)")
        if fig_name == "syn" and os.path.exists(gen):
            g = json.load(open(gen))
            ax.axhline(g["generator_logloss"], color="C3", lw=1.5,
                       label=f"hidden model's own logloss (the floor): {g['generator_logloss']:.4f}")
        ax.set_xscale("log")
        ax.set_xlabel("MFLOP per example (ctrtool inspect)")
        ax.set_ylabel("held-out logloss")
        ax.set_title({"criteo": "Wukong on the Criteo sample (scripts/repro.sh's split, 11,713 test rows)",
                      "syn": "Wukong on gen-data rows (100,000 held-out rows)"}[fig_name], fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        out = os.path.join(outdir, f"scaling_{fig_name}.png")
        fig.savefig(out, dpi=110)
        plt.close(fig)
        print(f"wrote {out}", file=sys.stderr)

    print()
    print("| set | point | MFLOP/ex | dense params | seeds | train s (seed 1) | rows/s | test AUC | test logloss | train-rows logloss | flags |")
    print("|-----|-------|----------|--------------|-------|------------------|--------|----------|--------------|--------------------|-------|")
    keys = []
    for r in rows:
        if (r["set"], r["point"]) not in keys:
            keys.append((r["set"], r["point"]))
    keys.sort(key=lambda k: (present.index(k[0]), k[1].startswith("ref-"),
                             float(next(r["mflop"] for r in rows if (r["set"], r["point"]) == k))))
    for s, p in keys:
        rs = [r for r in rows if r["set"] == s and r["point"] == p]
        n = len(rs)

        def fmt(k, d):
            v = [float(r[k]) for r in rs]
            m = sum(v) / n
            if n == 1:
                return f"{m:.{d}f}"
            sd = math.sqrt(sum((x - m) ** 2 for x in v) / (n - 1))
            return f"{m:.{d}f} +- {sd:.{d}f}"

        r1 = rs[0]
        print(f"| {s} | {p} | {float(r1['mflop']):.3g} | {int(r1['dense_params']):,} | {n} | {float(r1['seconds']):.1f} | "
              f"{int(r1['rows_per_s']):,} | {fmt('auc', 4)} | {fmt('logloss', 4)} | {fmt('train_logloss', 4)} | `{r1['flags']}` |")


def paired(rows, path):
    """Seed-1 models against w1 on the same held-out rows (see the docstring)."""
    work = os.environ.get("WORK", "/tmp/ctrd-scaling")
    tool = os.environ.get("CTRTOOL", "build/ctrtool")
    outdir = os.path.dirname(path)
    print()
    print("| set | point | test logloss (seed 1) | minus w1 | paired s.e. |")
    print("|-----|-------|-----------------------|----------|-------------|")
    # syn100k shares syn's held-out rows; scoring its models too would add
    # minutes for the same noise estimate.
    for s in os.environ.get("PAIRED_SETS", "criteo syn").split():
        test = os.path.join(work, f"{s}_test.tsv")
        if not os.path.exists(test) or not os.path.exists(tool):
            continue
        labels = [int(line.split("\t", 1)[0]) for line in open(test)]
        losses = {}
        for r in rows:
            if r["set"] != s or r["seed"] != "1":
                continue
            model = os.path.join(outdir, f"{s}-{r['point']}-s1.ctrm")
            scores = model[:-5] + ".scores"
            if not os.path.exists(model):
                continue
            if not os.path.exists(scores) or os.path.getmtime(scores) < os.path.getmtime(model):
                subprocess.run([tool, "score", "--model", model, "--data", test, "--out", scores + ".tmp"], check=True)
                os.replace(scores + ".tmp", scores)
            ps = [float(line) for line in open(scores)]
            losses[r["point"]] = [-math.log(q) if y else -math.log(1 - q) for q, y in zip(ps, labels)]
        if "w1" not in losses:
            continue
        n = len(labels)
        base = losses["w1"]
        for p, lo in sorted(losses.items(), key=lambda kv: (kv[0].startswith("ref-"), kv[0])):
            d = [a - b for a, b in zip(lo, base)]
            m = sum(d) / n
            se = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1) / n)
            print(f"| {s} | {p} | {sum(lo) / n:.5f} | {m:+.5f} | {se:.5f} |")


if __name__ == "__main__":
    main()
    paired(load(sys.argv[1] if len(sys.argv) > 1 else "build/scaling/results.tsv"),
           sys.argv[1] if len(sys.argv) > 1 else "build/scaling/results.tsv")
