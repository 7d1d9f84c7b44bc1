#!/usr/bin/python3
"""torch_arch.py - ctrd next to PyTorch on the same .ctrm model, one thread
(part 7 of make bench; bench/bench_arch.sh builds the models and runs this).

    torch_arch.py --bench build/bench/bench_interact --model NAME=FILE [...]
                  [--batches 1,16,64,256] [--reps 5] [--seconds 0.3]
                  [--check 512] [--json OUT]

Per model:
  1. the same file on both sides: ctrd reads it with its own loader
     (bench_interact --model), torch with python/ctrd_torch (the .ctrm
     reader and the reference modules, as `python3 -m ctrd_torch score
     --model` does);
  2. bench_interact --dump writes its pool of 4,096 random encoded
     examples (dense values already transformed, table rows) and its
     scores of the first --check of them; torch scores the same examples
     and the largest difference must be <= 1e-5, or the model is reported
     as not comparable;
  3. --reps repetitions, interleaved: one bench_interact run (every batch
     size: a quarter-length warm-up then one timed repetition) then torch
     on the same batch sizes the same way; the median of the repetitions.

What each side times, per batch of B examples taken in turn from the pool:
  ctrd   ctr_forward(): embedding gathers, bottom MLP, interaction, top
         MLP, sigmoid, from encoded inputs in memory (thread CPU time).
  torch  sigmoid(model(dense[off:off+B], rows[off:off+B])) under
         torch.inference_mode() with float32 tensors already built (rows
         int64): the embedding lookups (index), the same layers, sigmoid
         (process CPU time; torch.set_num_threads(1) and OMP/OpenBLAS/MKL
         at one thread, so all of it is the one thread's).
Neither side parses JSON or hashes features. GFLOP/s are examples/s times
ctr_model_stats' FLOPs a example, the same count for both sides.
Targets (issue 15): ctrd >= 5x torch at batch 1, >= 1.5x at batch 64, and
the larger Wukong at batch 64 >= 70% of the measured FMA peak.
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
from ctrd_torch.__main__ import load_ctrm  # noqa: E402

EMPTY = 0xFFFFFFFF
TOL = 1e-5


def read_dump(path):
    raw = open(path, "rb").read()
    pool, nd, ns, n = (int(v) for v in np.frombuffer(raw, "<u4", 4, 0))
    o = 16
    dense = np.frombuffer(raw, "<f4", pool * nd, o).reshape(pool, nd)
    o += 4 * pool * nd
    rows = np.frombuffer(raw, "<u4", pool * ns, o).reshape(pool, ns)
    o += 4 * pool * ns
    scores = np.frombuffer(raw, "<f4", n, o)
    logits = np.frombuffer(raw, "<f4", n, o + 4 * n)
    r = rows.astype(np.int64)
    r[rows == EMPTY] = -1
    return torch.from_numpy(dense.copy()), torch.from_numpy(r), scores, logits


def torch_run(model, dense, rows, batch, secs):
    """Examples/s of batches taken in turn from the pool (process CPU time)."""
    pool = dense.shape[0]
    ex = off = 0
    t0 = time.process_time()
    while True:
        if off + batch > pool:
            off = 0
        torch.sigmoid(model(dense[off:off + batch], rows[off:off + batch]))
        off += batch
        ex += batch
        t = time.process_time() - t0
        if t >= secs:
            return ex / t


def ctrd_run(bench, name, path, batches, secs):
    """One bench_interact run: {batch: examples/s}, mflop, params, peak."""
    cmd = [bench, "--model", path, "--name", name, "--batches", ",".join(map(str, batches)),
           "--reps", "1", "--seconds", str(secs), "--tsv"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    eps, mflop, peak = {}, None, None
    for line in out.splitlines():
        f = line.split("\t")
        if f[0] != "tsv":
            continue
        if f[1] == "peak":
            peak = float(f[2])
        else:
            eps[int(f[2])] = float(f[3])
            mflop = float(f[5])
    return eps, mflop, peak


def verdict(ok):
    return "meets" if ok else "BELOW"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", required=True, help="bench_interact")
    ap.add_argument("--model", action="append", required=True, metavar="NAME=FILE")
    ap.add_argument("--batches", default="1,16,64,256")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.3)
    ap.add_argument("--check", type=int, default=512, help="examples whose scores are compared")
    ap.add_argument("--json")
    a = ap.parse_args()
    batches = [int(b) for b in a.batches.split(",")]
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    res = {"torch": torch.__version__, "python": platform.python_version(),
           "threads": torch.get_num_threads(), "reps": a.reps, "seconds": a.seconds,
           "batches": batches, "models": []}
    peaks = []
    print("ctrd (bench_interact --model) vs torch %s (python/ctrd_torch reference modules), "
          "same .ctrm, one thread, median of %d interleaved repetitions of %.2f s"
          % (torch.__version__, a.reps, a.seconds))
    tmp = tempfile.mkdtemp(prefix="torch_arch.")
    all_ok = True
    for spec in a.model:
        name, path = spec.split("=", 1)
        t0 = time.time()
        cfg, model = load_ctrm(path)
        model.eval()
        load_s = time.time() - t0
        dump = os.path.join(tmp, name + ".pool")
        subprocess.run([a.bench, "--model", path, "--name", name, "--dump", dump, "--dump-n",
                        str(a.check), "--batches", "1", "--reps", "1", "--seconds", "0.001",
                        "--no-peak"], capture_output=True, check=True)
        dense, rows, c_scores, c_logits = read_dump(dump)
        os.unlink(dump)
        with torch.inference_mode():
            lt = model(dense[:a.check], rows[:a.check]).double().numpy()
        st = 1.0 / (1.0 + np.exp(-lt))
        sdiff = float(np.abs(st - c_scores).max())
        ldiff = float(np.abs(lt - c_logits).max())
        same = sdiff <= TOL
        all_ok &= same
        print("%s: %s, loaded by torch in %.1f s; %d examples: max |score diff| %.2g, "
              "max |logit diff| %.2g (scores %.3f..%.3f): %s"
              % (name, cfg["arch"], load_s, a.check, sdiff, ldiff, float(c_scores.min()),
                 float(c_scores.max()), "same model" if same else "DIFFERENT (ratios not comparable)"))
        sys.stdout.flush()
        ce = {b: [] for b in batches}
        te = {b: [] for b in batches}
        mflop = None
        with torch.inference_mode():
            for r in range(a.reps):
                eps, mflop, peak = ctrd_run(a.bench, name, path, batches, a.seconds)
                if peak:
                    peaks.append(peak)
                for b in batches:
                    ce[b].append(eps[b])
                for b in batches:
                    torch_run(model, dense, rows, b, a.seconds / 4)  # warm
                    te[b].append(torch_run(model, dense, rows, b, a.seconds))
        m = {"name": name, "arch": cfg["arch"], "file": path, "mflop": mflop,
             "check": {"n": a.check, "max_score_diff": sdiff, "max_logit_diff": ldiff, "same": same},
             "batches": []}
        for b in batches:
            m["batches"].append({"batch": b, "ctrd_eps": statistics.median(ce[b]),
                                 "torch_eps": statistics.median(te[b]),
                                 "ctrd_reps": ce[b], "torch_reps": te[b]})
        res["models"].append(m)
        del model, dense, rows
    os.rmdir(tmp)
    peak = statistics.median(peaks) if peaks else None
    res["peak_gflops"] = peak
    res["process_threads"] = len(os.listdir("/proc/self/task"))
    print()
    print("threads in the torch process: %d (torch.get_num_threads() = %d)"
          % (res["process_threads"], torch.get_num_threads()))
    print("FMA peak (zmm/ymm as the kernel, median of %d runs beside the models): %s GFLOP/s"
          % (len(peaks), "%.1f" % peak if peak else "-"))
    print("%-13s %8s %6s %12s %12s %7s %9s %9s %6s %6s" % (
        "model", "MFLOP/ex", "batch", "ctrd ex/s", "torch ex/s", "ratio", "ctrd GF/s",
        "torch GF/s", "ctrd%", "torch%"))
    for m in res["models"]:
        for r in m["batches"]:
            gc, gt = r["ctrd_eps"] * m["mflop"] / 1e3, r["torch_eps"] * m["mflop"] / 1e3
            r["ctrd_gflops"], r["torch_gflops"] = gc, gt
            r["ratio"] = r["ctrd_eps"] / r["torch_eps"]
            r["ctrd_peak_frac"] = gc / peak if peak else None
            r["torch_peak_frac"] = gt / peak if peak else None
            print("%-13s %8.3f %6d %12.0f %12.0f %6.2fx %9.1f %9.1f %5.0f%% %5.0f%%" % (
                m["name"], m["mflop"], r["batch"], r["ctrd_eps"], r["torch_eps"], r["ratio"], gc, gt,
                100 * (r["ctrd_peak_frac"] or 0), 100 * (r["torch_peak_frac"] or 0)))
    print()
    targets = []
    for m in res["models"]:
        by = {r["batch"]: r for r in m["batches"]}
        for b, want in ((1, 5.0), (64, 1.5)):
            if b in by:
                targets.append({"model": m["name"], "what": "ctrd/torch at batch %d" % b,
                                "value": by[b]["ratio"], "target": want,
                                "ok": by[b]["ratio"] >= want and m["check"]["same"]})
        if m["name"] == "wukong-large" and 64 in by and peak:
            targets.append({"model": m["name"], "what": "ctrd at batch 64, fraction of the FMA peak",
                            "value": by[64]["ctrd_peak_frac"], "target": 0.70,
                            "ok": by[64]["ctrd_peak_frac"] >= 0.70})
    res["targets"] = targets
    for t in targets:
        print("target: %-13s %-44s %6.2f  (>= %.2f)  %s" % (
            t["model"], t["what"], t["value"], t["target"], verdict(t["ok"])))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
