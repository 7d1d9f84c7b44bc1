#!/usr/bin/python3
"""criteo_quant.py - what quantizing the embedding tables costs in accuracy
on the real Criteo sample (docs/MODELS.md, "Quantized tables: accuracy";
issue 17).

For each family and seed: train the fp32 model exactly as the Criteo grid's
final phase does (bench/criteo_grid.py: the same content-hashed test split,
the same dev/valid split, the selected flags), quantize it with `ctrtool
quantize --dtype fp16` and `--dtype int8`, and score the test rows with
`ctrtool eval` (AUC, logloss, mean prediction) and `ctrtool pd` (relative
prediction difference (1/N) sum 2|a-b|/(a+b) and flip rate) against the
fp32 model it came from. The seed-to-seed PD of the fp32 models (every pair
of seeds) is the yardstick: PD(fp32, int8) should be far below it.

With --emb-dtype-check, the seed-1 model of each family is also trained
straight to int8 (`ctrtool train --emb-dtype int8`) and compared with the
quantized one (same scores expected: the trainer writes its fp32 tables
through the same encoder).

Writes one TSV row per model (--out, default docs/criteo_quant.tsv):
family, seed, dtype, file_bytes, test_auc, test_logloss, test_mean_pred,
pd_vs_fp32, flip_vs_fp32, train_s, load1; and one per seed pair with
dtype "seedpair" (seed = "a-b", pd and flip in the pd columns).
--report prints the markdown tables of docs/MODELS.md from the TSV.

Usage: bench/criteo_quant.py [--data FILE] [--tool build/ctrtool]
       [--families mlp,dcnv2,wukong] [--seeds 1,2,3] [--threads 2]
       [--out docs/criteo_quant.tsv] [--keep DIR] [--emb-dtype-check]
       bench/criteo_quant.py --report [--out docs/criteo_quant.tsv]
"""
import argparse
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import criteo_grid  # noqa: E402  (the split rule, one definition)

COLS = ["family", "seed", "dtype", "file_bytes", "test_auc", "test_logloss", "test_mean_pred",
        "pd_vs_fp32", "flip_vs_fp32", "train_s", "load1"]

# The grid's selected configurations (docs/criteo_grid.tsv, phase final).
FLAGS = {
    "mlp": "--arch mlp --hidden 512,256 --dim 16 --buckets 262144 --epochs 1 --batch 256 --lr 3e-3 "
           "--emb-lr 0.1 --lr-decay linear --emb-l2 1e-5",
    "dcnv2": "--arch dcnv2 --structure parallel --rank 32 --cross 1 --bottom 64 --hidden 512,256 --dim 16 "
             "--buckets 65536 --epochs 1 --batch 128 --lr 1e-3 --emb-lr 0.1 --lr-decay linear --emb-l2 0",
    "wukong": "--arch wukong --layers 1 --nf 4 --nl 4 --k 24 --fmb 256 --bottom 64 --hidden 256,128 --dim 16 "
              "--buckets 65536 --epochs 1 --batch 128 --lr 3e-3 --emb-lr 0.1 --lr-decay linear --emb-l2 0",
    "dot": "--arch dot --hidden 512,256 --bottom 128,64 --dim 16 --buckets 65536 --epochs 1 --batch 256 "
           "--lr 1e-3 --emb-lr 0.1 --lr-decay linear --emb-l2 1e-4",
}
DTYPES = ["fp16", "int8"]
TRAIN_RE = re.compile(r"^train: ([0-9.]+) s, ", re.M)


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode:
        sys.exit(f"criteo_quant: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
    return p


def evaluate(a, work, model):
    e = run([a.tool, "eval", "--model", model, "--data", os.path.join(work, "test.tsv"), "--json",
             "--threads", str(a.threads)])
    return json.loads(e.stdout)


def pd(a, work, m1, m2):
    e = run([a.tool, "pd", "--model", m1, "--model", m2, "--data", os.path.join(work, "test.tsv"),
             "--json", "--threads", str(a.threads)])
    return json.loads(e.stdout)


def measure(a, work, out):
    done = []
    for fam in a.families.split(","):
        fp32 = {}
        for seed in a.seeds.split(","):
            m = os.path.join(work, f"{fam}-s{seed}.ctrm")
            t = run([a.tool, "train", "--data", os.path.join(work, "dev.tsv"), "--out", m,
                     "--valid-frac", "0.1", "--split-seed", "1", "--seed", seed,
                     "--threads", str(a.threads), "--name", fam] + FLAGS[fam].split())
            ts = TRAIN_RE.search(t.stderr)
            load1 = open("/proc/loadavg").read().split()[0]
            fp32[seed] = m
            ev = evaluate(a, work, m)
            row = dict(family=fam, seed=seed, dtype="fp32", file_bytes=str(os.path.getsize(m)),
                       test_auc=f"{ev['auc']:.5f}", test_logloss=f"{ev['logloss']:.5f}",
                       test_mean_pred=f"{ev['mean_pred']:.5f}", pd_vs_fp32="0", flip_vs_fp32="0",
                       train_s=ts.group(1) if ts else "-", load1=load1)
            rows = [row]
            for dt in DTYPES:
                q = os.path.join(work, f"{fam}-s{seed}-{dt}.ctrm")
                run([a.tool, "quantize", "--in", m, "--out", q, "--dtype", dt])
                eq = evaluate(a, work, q)
                p = pd(a, work, m, q)
                rows.append(dict(family=fam, seed=seed, dtype=dt, file_bytes=str(os.path.getsize(q)),
                                 test_auc=f"{eq['auc']:.5f}", test_logloss=f"{eq['logloss']:.5f}",
                                 test_mean_pred=f"{eq['mean_pred']:.5f}", pd_vs_fp32=f"{p['pd']:.6g}",
                                 flip_vs_fp32=f"{p['flip_rate']:.6g}", train_s="-", load1=load1))
                if dt != "int8" or not (a.emb_dtype_check and seed == a.seeds.split(",")[0]):
                    continue
                # Trained straight to int8: the same tables through the same encoder.
                d = os.path.join(work, f"{fam}-s{seed}-direct-int8.ctrm")
                run([a.tool, "train", "--data", os.path.join(work, "dev.tsv"), "--out", d,
                     "--valid-frac", "0.1", "--split-seed", "1", "--seed", seed,
                     "--threads", str(a.threads), "--name", fam, "--emb-dtype", "int8"] + FLAGS[fam].split())
                pq = pd(a, work, q, d)
                print(f"  {fam} seed {seed}: train --emb-dtype int8 vs quantize --dtype int8: "
                      f"PD {pq['pd']:.3g}, flip {pq['flip_rate']:.3g}", file=sys.stderr)
                rows.append(dict(family=fam, seed=seed, dtype="int8-direct", file_bytes=str(os.path.getsize(d)),
                                 test_auc="-", test_logloss="-", test_mean_pred="-",
                                 pd_vs_fp32=f"{pq['pd']:.6g}", flip_vs_fp32=f"{pq['flip_rate']:.6g}",
                                 train_s="-", load1=load1))
                os.remove(d)
            for r in rows:
                out.write("\t".join(r[c] for c in COLS) + "\n")
                print(f"[{time.strftime('%H:%M:%S')}] {fam} seed {seed} {r['dtype']}: AUC {r['test_auc']} "
                      f"ll {r['test_logloss']} PD vs fp32 {r['pd_vs_fp32']} ({r['file_bytes']} bytes)",
                      file=sys.stderr, flush=True)
            out.flush()
            for dt in DTYPES:
                os.remove(os.path.join(work, f"{fam}-s{seed}-{dt}.ctrm"))
            done += rows
        for s1, s2 in itertools.combinations(sorted(fp32), 2):
            p = pd(a, work, fp32[s1], fp32[s2])
            out.write("\t".join([fam, f"{s1}-{s2}", "seedpair", "-", "-", "-", "-", f"{p['pd']:.6g}",
                                 f"{p['flip_rate']:.6g}", "-", open("/proc/loadavg").read().split()[0]]) + "\n")
            out.flush()
        for m in fp32.values():
            os.remove(m)


def report(path):
    rows = []
    with open(path) as f:
        head = f.readline().rstrip("\n").split("\t")
        for line in f:
            rows.append(dict(zip(head, line.rstrip("\n").split("\t"))))
    fams = []
    for r in rows:
        if r["family"] not in fams:
            fams.append(r["family"])

    def mean(v):
        return sum(v) / len(v) if v else float("nan")

    def sd(v):
        m = mean(v)
        return (sum((x - m) ** 2 for x in v) / (len(v) - 1)) ** 0.5 if len(v) > 1 else 0.0

    print("| model | dtype | file | test AUC | AUC - fp32 (per seed) | test logloss | logloss - fp32 | "
          "PD vs fp32 | flip rate vs fp32 | seed-to-seed PD (fp32) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for fam in fams:
        fr = [r for r in rows if r["family"] == fam]
        base = {r["seed"]: r for r in fr if r["dtype"] == "fp32"}
        pairs = [float(r["pd_vs_fp32"]) for r in fr if r["dtype"] == "seedpair"]
        spd = f"{mean(pairs):.4f} ({len(pairs)} pairs)" if pairs else "-"
        for dt in ["fp32"] + DTYPES:
            d = [r for r in fr if r["dtype"] == dt and r["seed"] in base]
            if not d:
                continue
            auc = [float(r["test_auc"]) for r in d]
            ll = [float(r["test_logloss"]) for r in d]
            dauc = [float(r["test_auc"]) - float(base[r["seed"]]["test_auc"]) for r in d]
            dll = [float(r["test_logloss"]) - float(base[r["seed"]]["test_logloss"]) for r in d]
            pdv = [float(r["pd_vs_fp32"]) for r in d]
            fl = [float(r["flip_vs_fp32"]) for r in d]
            size = mean([float(r["file_bytes"]) for r in d])
            rel = size / mean([float(base[r["seed"]]["file_bytes"]) for r in d])
            same = dt == "fp32"
            print(f"| {fam} | {dt} | {size / 1e6:.1f} MB ({rel:.3f}x) | {mean(auc):.5f} ± {sd(auc):.5f} | "
                  f"{'-' if same else ', '.join('%+.5f' % x for x in dauc)} | {mean(ll):.5f} | "
                  f"{'-' if same else ', '.join('%+.5f' % x for x in dll)} | "
                  f"{'-' if same else '%.2e' % mean(pdv)} | {'-' if same else '%.2e' % mean(fl)} | "
                  f"{spd if same else ''} |")
    direct = [r for r in rows if r["dtype"] == "int8-direct"]
    for r in direct:
        print(f"\n{r['family']} seed {r['seed']}: `ctrtool train --emb-dtype int8` against `ctrtool quantize "
              f"--dtype int8` of the fp32 model: PD {r['pd_vs_fp32']}, flip rate {r['flip_vs_fp32']}, "
              f"{r['file_bytes']} bytes.")
    loads = [float(r["load1"]) for r in rows if r["load1"] not in ("-", "")]
    if loads:
        print(f"\nLoad average (1 min) during the runs: {min(loads):.1f}-{max(loads):.1f}.")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/criteo/criteo_sample.tsv.xz")
    ap.add_argument("--tool", default="build/ctrtool")
    ap.add_argument("--families", default="mlp,dcnv2,wukong")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="docs/criteo_quant.tsv")
    ap.add_argument("--keep", help="work directory to keep (split files); default a temporary one, removed")
    ap.add_argument("--emb-dtype-check", action="store_true")
    ap.add_argument("--report", action="store_true")
    a = ap.parse_args()
    if a.report:
        report(a.out)
        return
    for f in a.families.split(","):
        if f not in FLAGS:
            sys.exit(f"criteo_quant: unknown family {f} (known: {', '.join(FLAGS)})")
    work = a.keep or tempfile.mkdtemp(prefix="criteo-quant-")
    os.makedirs(work, exist_ok=True)
    try:
        if not os.path.exists(os.path.join(work, "test.tsv")):
            n = criteo_grid.split(a.data, work)
            print(f"split: {n['dev']} dev rows, {n['test']} test rows", file=sys.stderr)
        with open(a.out, "w") as out:
            out.write("\t".join(COLS) + "\n")
            measure(a, work, out)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    report(a.out)


if __name__ == "__main__":
    main()
