#!/usr/bin/python3
"""criteo_grid.py - a small hyperparameter grid per model family on the real
Criteo sample, selected on a validation split, reported on held-out rows
(docs/MODELS.md, "Accuracy on the Criteo sample"; issue 16).

The rows, split three ways (the data never enters the repository: the split
files go to a temporary directory, removed at the end unless --keep):

  test  the rows whose SHA-256 (of the line's bytes, newline included) taken
        as a little-endian 64-bit integer from its first 8 bytes is 0 mod 10:
        about 10%, fixed by the content alone, whatever the file order;
  dev   every other row. `ctrtool train --data dev --valid-frac 0.1
        --split-seed 1` then holds out its own 10% of dev (valid) and trains
        on the rest (train, about 81% of the sample).

Every grid run trains on train and is judged on valid (the trainer's own
figures). Selection uses valid AUC only. The test rows are scored only in
the final phase, by `ctrtool eval`, for: each family's selected
configuration (with --seed 1, 2, 3: the spread from initialisation and
order), each DCNv2 variant's, and plain `ctrtool train` defaults (three
seeds too).

The grid is staged, per family: stage 1 crosses the sizes, each later stage
crosses a few more knobs around the best run of the earlier stages (best
valid AUC; a configuration already run keeps its first stage). DCNv2's four
variants (stacked/parallel, full/low rank) are then run once more with the
selected rest (stage v). Runs are deterministic (ctrtool's
contract), so the whole table reproduces except the times.

Writes one TSV row per run (--out, default docs/criteo_grid.tsv):
phase, family, stage, seed, flags, valid_auc, valid_logloss, test_auc,
test_logloss, test_mean_pred, train_s, rows_per_s, load1 ("-" where not
measured). With --resume, runs already in --out are not run again (final
rows that the current selection no longer asks for are dropped).

Usage: bench/criteo_grid.py [--data FILE] [--tool build/ctrtool]
       [--threads 2] [--families lr,mlp,dot,dcnv2,wukong] [--out docs/criteo_grid.tsv]
       [--resume] [--keep DIR]
"""
import argparse
import hashlib
import itertools
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

COLS = ["phase", "family", "stage", "seed", "flags", "valid_auc", "valid_logloss",
        "test_auc", "test_logloss", "test_mean_pred", "train_s", "rows_per_s", "load1"]

# ---- the grid: per family, a base configuration and stages ----
# A configuration is a dict flag -> value (None: the flag alone); its flag
# string lists the keys in insertion order, so equal dicts give equal strings.

LR_BASE = {"--hidden": "none", "--dim": "1", "--buckets": "65536", "--epochs": "1",
           "--batch": "256", "--lr": "1e-2", "--emb-lr": "0.1", "--lr-decay": "none",
           "--emb-l2": "0"}
NET = {"--buckets": "65536", "--epochs": "1", "--batch": "256", "--lr": "1e-3",
       "--emb-lr": "0.1", "--lr-decay": "linear", "--emb-l2": "0"}
MLP_BASE = {"--arch": "mlp", "--hidden": "512,256", "--dim": "16", **NET}
DOT_BASE = {"--arch": "dot", "--hidden": "512,256", "--bottom": "64", "--dim": "16", **NET}
WUKONG_BASE = {"--arch": "wukong", "--layers": "2", "--nf": "8", "--nl": "8", "--k": "24",
               "--fmb": "256", "--bottom": "64", "--hidden": "512,256", "--dim": "16", **NET}
DCN_BASE = {"--arch": "dcnv2", "--structure": "stacked", "--rank": "0", "--cross": "3",
            "--bottom": "64", "--hidden": "512,256", "--dim": "16", **NET}

# The optimisation stages every network shares.
NET_STAGES = [
    {"--epochs": ["1", "2", "3"], "--lr": ["3e-4", "1e-3", "3e-3"]},
    {"--buckets": ["16384", "65536", "262144"], "--batch": ["128", "256", "1024"]},
    {"--emb-l2": ["0", "1e-5", "1e-4", "1e-3"], "--epochs": ["1", "2"]},
]

FAMILIES = {
    "lr": (LR_BASE, [
        {"--emb-lr": ["0.03", "0.1", "0.3"], "--epochs": ["1", "2", "3"],
         "--lr-decay": ["none", "linear"]},
        {"--buckets": ["16384", "65536", "262144", "1048576"],
         "--emb-l2": ["0", "1e-5", "1e-4", "1e-3"]},
        {"--lr": ["3e-3", "1e-2", "3e-2"], "--batch": ["64", "256", "1024"]},
        # More passes only with more L2 and slower tables, if at all.
        {"--epochs": ["1", "2", "3"], "--emb-l2": ["1e-4", "1e-3", "3e-3"],
         "--emb-lr": ["0.03", "0.1"]},
        {"--emb-lr": ["0.05", "0.1", "0.2"], "--lr": ["1e-2", "2e-2"],
         "--batch": ["32", "64", "128"]},
    ]),
    "mlp": (MLP_BASE, [
        {"--dim": ["4", "8", "16"], "--hidden": ["128,64", "256,128", "512,256"],
         "--emb-lr": ["0.03", "0.1"]},
    ] + NET_STAGES),
    "dot": (DOT_BASE, [
        {"--dim": ["4", "8", "16"], "--hidden": ["256,128", "512,256"],
         "--bottom": ["64", "128,64"], "--emb-lr": ["0.03", "0.1"]},
    ] + NET_STAGES),
    "dcnv2": (DCN_BASE, [
        {"--structure": ["stacked", "parallel"], "--rank": ["0", "32"], "--cross": ["1", "2", "3"]},
        {"--dim": ["4", "8", "16"], "--hidden": ["256,128", "512,256"], "--emb-lr": ["0.03", "0.1"]},
    ] + NET_STAGES),
    "wukong": (WUKONG_BASE, [
        {"--layers": ["1", "2", "3"], ("--nf", "--nl"): [("4", "4"), ("8", "8"), ("16", "16")],
         "--dim": ["8", "16"]},
        {("--k", "--fmb"): [("8", "128"), ("24", "256")], "--hidden": ["256,128", "512,256"],
         "--emb-lr": ["0.03", "0.1"]},
        # Lighter than NET_STAGES (Wukong is 2x the MLP's time, and a
        # second or third epoch lost 0.02-0.05 AUC in every other family).
        {"--epochs": ["1", "2"], "--lr": ["3e-4", "1e-3", "3e-3"]},
        NET_STAGES[1],
        {"--emb-l2": ["0", "1e-5", "1e-4", "1e-3"]},
    ]),
}

# After its stages, DCNv2's four variants with the selected rest, so each
# can be reported tuned alike.
VARIANTS = {"dcnv2": {"--structure": ["stacked", "parallel"], "--rank": ["0", "32"]}}

FINAL_SEEDS = ["1", "2", "3"]
# Families whose best valid logloss is also scored on the test rows.
BY_LOGLOSS = {"lr"}


def flag_string(cfg):
    return " ".join(k if v is None else f"{k} {v}" for k, v in cfg.items())


def split(data, work):
    """dev.tsv and test.tsv in work, split by each line's SHA-256."""
    opener = lzma.open if data.endswith(".xz") else open
    n = {"dev": 0, "test": 0}
    with opener(data, "rb") as f, open(os.path.join(work, "dev.tsv"), "wb") as dev, \
            open(os.path.join(work, "test.tsv"), "wb") as test:
        for line in f:
            h = int.from_bytes(hashlib.sha256(line).digest()[:8], "little")
            if h % 10 == 0:
                test.write(line)
                n["test"] += 1
            else:
                dev.write(line)
                n["dev"] += 1
    return n


TRAIN_RE = re.compile(r"^train: ([0-9.]+) s, ([0-9]+) rows/s; .*valid AUC ([0-9.]+) logloss ([0-9.]+)", re.M)


class Runner:
    def __init__(self, args, work):
        self.a = args
        self.work = work
        self.done = {}  # (phase, family, seed, flags) -> row
        self.used = set()  # the keys this pass asked for
        self.out = None
        self.path = None

    def load(self, path):
        if not os.path.exists(path):
            return
        with open(path) as f:
            head = f.readline().rstrip("\n").split("\t")
            if head != COLS:
                sys.exit(f"criteo_grid: {path} has other columns; move it away or drop --resume")
            for line in f:
                row = dict(zip(COLS, line.rstrip("\n").split("\t")))
                self.done[(row["phase"], row["family"], row["seed"], row["flags"])] = row

    def finish(self):
        """Rewrites the file without the final rows of an earlier selection
        (a resumed grid whose selection moved)."""
        self.out.close()
        keep = [r for k, r in self.done.items() if r["phase"] == "grid" or k in self.used]
        with open(self.path, "w") as f:
            f.write("\t".join(COLS) + "\n")
            for r in keep:
                f.write("\t".join(r[c] for c in COLS) + "\n")

    def open(self, path):
        self.path = path
        rows = list(self.done.values())
        self.out = open(path, "w")
        self.out.write("\t".join(COLS) + "\n")
        for r in rows:
            self.out.write("\t".join(r[c] for c in COLS) + "\n")
        self.out.flush()

    def run(self, phase, family, stage, flags, seed="1", test=False):
        key = (phase, family, seed, flags)
        self.used.add(key)
        if key in self.done:
            return self.done[key]
        model = os.path.join(self.work, "m.ctrm")
        cmd = [self.a.tool, "train", "--data", os.path.join(self.work, "dev.tsv"), "--out", model,
               "--valid-frac", "0.1", "--split-seed", "1", "--seed", seed,
               "--threads", str(self.a.threads), "--name", family] + flags.split()
        p = subprocess.run(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        if p.returncode:
            sys.exit(f"criteo_grid: {' '.join(cmd)} failed:\n{p.stderr}")
        m = TRAIN_RE.search(p.stderr)
        if not m:
            sys.exit(f"criteo_grid: no summary line in:\n{p.stderr}")
        row = {c: "-" for c in COLS}
        row.update(phase=phase, family=family, stage=str(stage), seed=seed, flags=flags,
                   train_s=m.group(1), rows_per_s=m.group(2), valid_auc=m.group(3),
                   valid_logloss=m.group(4), load1=open("/proc/loadavg").read().split()[0])
        if test:
            e = subprocess.run([self.a.tool, "eval", "--model", model, "--data",
                                os.path.join(self.work, "test.tsv"), "--json",
                                "--threads", str(self.a.threads)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if e.returncode:
                sys.exit(f"criteo_grid: eval failed:\n{e.stderr}")
            ev = json.loads(e.stdout)
            for name in ("auc", "logloss", "mean_pred"):
                row["test_" + name] = f"{ev[name]:.5f}"
        os.remove(model)
        self.done[key] = row
        self.out.write("\t".join(row[c] for c in COLS) + "\n")
        self.out.flush()
        print(f"[{time.strftime('%H:%M:%S')}] {phase} {family} s{stage} seed {seed}: valid AUC "
              f"{row['valid_auc']} ll {row['valid_logloss']} test AUC {row['test_auc']} "
              f"({row['train_s']} s) {flags}", file=sys.stderr, flush=True)
        return row

    def best(self, family, before=None):
        """The family's grid run with the best valid AUC; with before, among
        the stages numbered below it only, so that a resumed or extended grid
        replays the same stages (a row keeps the stage it first ran in)."""
        rows = [r for (ph, fam, seed, _), r in self.done.items()
                if ph == "grid" and fam == family and seed == "1"
                and (before is None or (r["stage"].isdigit() and int(r["stage"]) < before))]
        return max(rows, key=lambda r: float(r["valid_auc"]))


def cfg_of(flags):
    t = flags.split()
    cfg, i = {}, 0
    while i < len(t):
        if i + 1 < len(t) and not t[i + 1].startswith("--"):
            cfg[t[i]] = t[i + 1]
            i += 2
        else:
            cfg[t[i]] = None
            i += 1
    return cfg


def cross(base, axes):
    """Every combination of the axes' values over base; an axis keyed by a
    tuple of flags moves them together (its values are tuples)."""
    keys = list(axes)
    for vals in itertools.product(*(axes[k] for k in keys)):
        c = dict(base)
        for k, v in zip(keys, vals):
            if isinstance(k, tuple):
                c.update(zip(k, v))
            else:
                c[k] = v
        yield c


def report(path):
    """Markdown tables from a finished TSV: per family the runs and the
    selected configuration's valid figures, then the final test figures."""
    with open(path) as f:
        head = f.readline().rstrip("\n").split("\t")
        rows = [dict(zip(head, l.rstrip("\n").split("\t"))) for l in f]
    grid = [r for r in rows if r["phase"] == "grid"]
    final = [r for r in rows if r["phase"] == "final"]
    print("| family | runs | valid AUC range | selected (best valid AUC) | valid AUC | valid logloss |")
    print("|---|---|---|---|---|---|")
    for fam in dict.fromkeys(r["family"] for r in grid):
        rs = [r for r in grid if r["family"] == fam]
        aucs = [float(r["valid_auc"]) for r in rs]
        b = max(rs, key=lambda r: float(r["valid_auc"]))
        print(f"| {fam} | {len(rs)} | {min(aucs):.4f}-{max(aucs):.4f} | `{b['flags']}` | "
              f"{b['valid_auc']} | {b['valid_logloss']} |")
    print()
    print("| model | seeds | test AUC | test logloss | test mean pred | train s | flags |")
    print("|---|---|---|---|---|---|---|")
    groups = {}
    for r in final:
        groups.setdefault((r["family"], r["flags"]), []).append(r)

    def ms(xs):
        m = sum(xs) / len(xs)
        if len(xs) < 2:
            return f"{m:.4f}"
        sd = (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5
        return f"{m:.4f} ± {sd:.4f}"
    for (fam, flags), rs in groups.items():
        col = lambda c: [float(r[c]) for r in rs]
        print(f"| {fam} | {','.join(r['seed'] for r in rs)} | {ms(col('test_auc'))} | "
              f"{ms(col('test_logloss'))} | {ms(col('test_mean_pred'))} | "
              f"{min(col('train_s')):.1f}-{max(col('train_s')):.1f} | `{flags or '(defaults)'}` |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/criteo/criteo_sample.tsv.xz")
    ap.add_argument("--tool", default="build/ctrtool")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--families", default="lr,mlp,dot,dcnv2,wukong")
    ap.add_argument("--out", default="docs/criteo_grid.tsv")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--keep", help="directory for the split files, kept (default: a temporary one, removed)")
    ap.add_argument("--no-final", action="store_true", help="only the grid, no test rows scored")
    ap.add_argument("--report", action="store_true", help="print Markdown tables from --out and stop")
    a = ap.parse_args()
    if a.report:
        report(a.out)
        return
    fams = a.families.split(",")
    for f in fams:
        if f not in FAMILIES:
            sys.exit(f"criteo_grid: unknown family {f} (have {','.join(FAMILIES)})")
    if not os.access(a.data, os.R_OK):
        sys.exit(f"criteo_grid: {a.data} is not here (--data FILE)")
    if a.keep:
        work = a.keep
        os.makedirs(work, exist_ok=True)
    else:
        work = tempfile.mkdtemp(prefix="ctrd-criteo-grid.")
    try:
        if not (os.path.exists(os.path.join(work, "dev.tsv")) and os.path.exists(os.path.join(work, "test.tsv"))):
            n = split(a.data, work)
            print(f"split: {n['dev']} dev rows, {n['test']} test rows", file=sys.stderr)
        r = Runner(a, work)
        if a.resume:
            r.load(a.out)
        r.open(a.out)
        for fam in fams:
            base, stages = FAMILIES[fam]
            r.run("grid", fam, 0, flag_string(base))
            for i, axes in enumerate(stages, 1):
                start = cfg_of(r.best(fam, before=i)["flags"])
                for c in cross(start, axes):
                    r.run("grid", fam, i, flag_string(c))
            if fam in VARIANTS:
                start = cfg_of(r.best(fam)["flags"])
                for c in cross(start, VARIANTS[fam]):
                    r.run("grid", fam, "v", flag_string(c))
        if a.no_final:
            r.finish()
            return
        # Final: the selected configurations on the test rows, three seeds.
        for s in FINAL_SEEDS:
            r.run("final", "defaults", "-", "", seed=s, test=True)
        for fam in fams:
            best = r.best(fam)["flags"]
            for s in FINAL_SEEDS:
                r.run("final", fam, "-", best, seed=s, test=True)
            if fam in BY_LOGLOSS:
                # The baseline at its best calibration too: selected by valid logloss.
                rows = [row for (ph, f2, sd, _), row in r.done.items() if ph == "grid" and f2 == fam]
                ll = min(rows, key=lambda row: float(row["valid_logloss"]))["flags"]
                if ll != best:
                    for s in FINAL_SEEDS:
                        r.run("final", fam, "ll", ll, seed=s, test=True)
            if fam in VARIANTS:
                rows = [row for (ph, f2, sd, _), row in r.done.items()
                        if ph == "grid" and f2 == fam and row["stage"] == "v"]
                for row in rows:
                    if row["flags"] != best:
                        r.run("final", fam, "v", row["flags"], test=True)
        r.finish()
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
