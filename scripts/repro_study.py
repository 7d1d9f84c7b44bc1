#!/usr/bin/python3
"""repro_study.py - the SmeLU reproducibility study, taken apart
(docs/REPRODUCIBILITY.md; `make repro` runs it through scripts/repro.sh).

  repro_study.py run    --work DIR [--groups G,..]   train, evaluate, pair
  repro_study.py report --work DIR [--out DIR] [--plots DIR]

`run` trains every model of the chosen groups with ctrtool, evaluates it on
the test rows and computes the PD of every pair of seeds. It is resumable:
a model file that exists is not trained again (models are written under a
temporary name and renamed, so a killed run leaves no half file), an
evaluation or a pair's PD already in DIR/results.jsonl is not redone, and a
group whose evaluations and pairs are all there is skipped (so --prune,
which deletes a group's ~100 MB model files once it is complete, is safe). The
split (DIR/train.tsv, DIR/test.tsv) and the synthetic data (DIR/syn-*.tsv)
come from scripts/repro.sh.

`report` reads DIR/results.jsonl and writes DIR/../STUDY.md (or --out) with
every table of docs/REPRODUCIBILITY.md, and the PD-against-logloss plots
(PNG, matplotlib) into --plots.

Statistics. The k(k-1)/2 pairs of k seeds share their models, so they are
not independent trials. Confidence intervals are bootstrapped over seeds:
draw k seeds with replacement, keep the distinct ones (at least two), and
recompute the mean PD over the pairs among them; 95% = the 2.5 and 97.5
percentiles of 4000 draws. A SmeLU configuration is compared with ReLU on
the same draw (paired: seed s gives both the same initialisation and
order), so the reduction's interval accounts for the shared seeds.
"""
import argparse
import itertools
import json
import os
import random
import subprocess
import sys
import time

SEEDS8 = [1, 2, 3, 4, 5, 6, 7, 8]
SEEDS4 = [1, 2, 3, 4]
BETAS = ["0.25", "0.5", "1", "2", "4"]

# The MLP of the previous study (docs/MODELS.md's defaults for the sample).
BASE = {
    "hidden": "512,256", "dim": "16", "buckets": "65536", "epochs": "1", "batch": "256",
    "lr": "1e-3", "emb-lr": "0.1", "lr-decay": "linear",
}
LR_OPTS = {
    "hidden": "none", "dim": "1", "buckets": "65536", "epochs": "1", "batch": "256",
    "lr": "1e-2", "emb-lr": "0.1", "lr-decay": "none",
}
# The same with the rates decaying linearly to 0, as the MLP's do.
LRLIN_OPTS = dict(LR_OPTS, **{"lr-decay": "linear"})

# A configuration: name -> (options over BASE, data set, seeds, label).
# Data sets: "real" (the 90% of the Criteo sample), "realq" (its first
# quarter), "syn100k"/"syn1m" (ctrtool gen-data rows, model seed 1).
CONFIGS = {
    "base": ({}, "real", SEEDS8, "MLP 512-256, dim 16, 1 epoch, linear decay"),
    "emb0": ({"emb-init": "0"}, "real", SEEDS8, "tables initialised to 0"),
    "ep2": ({"epochs": "2"}, "real", SEEDS4, "2 epochs"),
    "ep3": ({"epochs": "3"}, "real", SEEDS4, "3 epochs"),
    "const": ({"lr-decay": "none"}, "real", SEEDS4, "constant learning rates"),
    "h128": ({"hidden": "128,64"}, "real", SEEDS4, "hidden 128,64"),
    "h1024": ({"hidden": "1024,512"}, "real", SEEDS4, "hidden 1024,512"),
    "d4": ({"dim": "4"}, "real", SEEDS4, "embedding dim 4"),
    "d32": ({"dim": "32"}, "real", SEEDS4, "embedding dim 32"),
    "realq": ({}, "realq", SEEDS4, "a quarter of the real rows (26k)"),
    "syn100k": ({}, "syn100k", SEEDS4, "100k synthetic rows"),
    "syn1m": ({}, "syn1m", SEEDS4, "1M synthetic rows"),
    "dcn": ({"arch": "dcnv2"}, "real", SEEDS8, "DCNv2 (3 cross layers, bottom 64, top 512-256)"),
    "wukong": ({"arch": "wukong", "bottom": "64"}, "real", SEEDS8,
               "Wukong (2 layers, nf = nl = 8, k 24, FMB 256, bottom 64, top 512-256: ctrtool's defaults)"),
}

# Groups run in this order by default (cheapest and most important first).
GROUPS = {
    "betas": [("base", a, "both") for a in ["relu"] + ["b" + b for b in BETAS]],
    "lr": [("lr", "lr", m) for m in ("both", "init", "order")],
    "sources": [("base", a, m) for a in ("relu", "b1") for m in ("init", "order")],
    "lrlin": [("lrlin", "lr", m) for m in ("both", "init", "order")],
    "betas_init": [("base", "b" + b, "init") for b in BETAS if b != "1"],
    "emb0": [("emb0", a, m) for a in ("relu", "b1") for m in ("both", "order", "init")],
    "knobs": [(c, a, "both") for c in ("const", "h128", "d4", "d32", "realq", "syn100k", "ep2")
              for a in ("relu", "b1")],
    "dcn": [("dcn", a, "both") for a in ("relu", "b1", "b4")],
    "sources4": [("base", "b4", "order")],
    "knobs2": [(c, a, "both") for c in ("ep3", "h1024", "syn1m") for a in ("relu", "b1")],
    "wukong": [("wukong", a, "both") for a in ("relu", "b1", "b4")],
    "arch_init": [(c, a, "init") for c in ("dcn", "wukong") for a in ("relu", "b1")],
}
DEFAULT_GROUPS = "betas,lr,sources,lrlin,betas_init,emb0,knobs,dcn,wukong,sources4,knobs2,arch_init"
FIXED = 1  # the seed held fixed when only the other source varies


def act_opts(act):
    if act == "relu":
        return {"activation": "relu"}
    if act == "lr":
        return {}
    return {"activation": "smelu", "beta": act[1:]}


def act_label(act):
    return {"relu": "ReLU", "lr": "LR"}.get(act, "SmeLU beta " + act[1:])


def seeds_for(mode, s):
    """(init seed, order seed) of seed s under a source mode."""
    return {"both": (s, s), "init": (s, FIXED), "order": (FIXED, s)}[mode]


def model_name(cfg, act, init, order):
    return "%s-%s-i%d-o%d" % (cfg, act, init, order)


def data_files(work, data):
    return os.path.join(work, data + "-train.tsv"), os.path.join(work, data + "-test.tsv")


class Results:
    """results.jsonl: one JSON object a line, {"kind": "eval"|"pd", ...}."""

    def __init__(self, work):
        self.path = os.path.join(work, "results.jsonl")
        self.evals, self.pds = {}, {}
        if os.path.exists(self.path):
            with open(self.path) as f:
                for line in f:
                    if not line.strip():
                        continue
                    r = json.loads(line)
                    if r["kind"] == "eval":
                        self.evals[r["model"]] = r
                    else:
                        self.pds[(r["a"], r["b"])] = r

    def add(self, rec):
        with open(self.path, "a") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
        if rec["kind"] == "eval":
            self.evals[rec["model"]] = rec
        else:
            self.pds[(rec["a"], rec["b"])] = rec


def log(msg):
    print(time.strftime("[%H:%M:%S] ") + msg, flush=True)


def train(args, res, cfg, act, init, order):
    opts_over, data, _, _ = CONFIGS.get(cfg, ({}, "real", None, None))
    name = model_name(cfg, act, init, order)
    path = os.path.join(args.work, "models", name + ".ctrm")
    train_tsv, test_tsv = data_files(args.work, data)
    if not os.path.exists(path):
        opts = dict({"lr": LR_OPTS, "lrlin": LRLIN_OPTS}.get(cfg, BASE))
        opts.update(opts_over)
        opts.update(act_opts(act))
        cmd = [args.tool, "train", "--data", train_tsv, "--out", path + ".part.ctrm",
               "--valid-frac", "0", "--threads", str(args.threads), "--name", name,
               "--init-seed", str(init), "--order-seed", str(order), "--quiet"]
        for k, v in opts.items():
            cmd += ["--" + k, v]
        t0 = time.time()
        subprocess.run(cmd, check=True)
        os.rename(path + ".part.ctrm", path)
        log("trained %s in %.1f s" % (name, time.time() - t0))
        res.evals.pop(name, None)
    if name not in res.evals:
        out = subprocess.run([args.tool, "eval", "--model", path, "--data", test_tsv, "--json",
                              "--threads", str(args.threads)], check=True, capture_output=True, text=True)
        ev = json.loads(out.stdout)
        res.add({"kind": "eval", "model": name, "cfg": cfg, "act": act, "init": init, "order": order,
                 "auc": ev["auc"], "logloss": ev["logloss"], "mean_pred": ev.get("mean_pred"),
                 "size": os.path.getsize(path)})
    return name, path


def run(args):
    res = Results(args.work)
    os.makedirs(os.path.join(args.work, "models"), exist_ok=True)
    for g in args.groups.split(","):
        for cfg, act, mode in GROUPS[g]:
            seeds = SEEDS8 if cfg in ("lr", "lrlin") else CONFIGS[cfg][2]
            test_tsv = data_files(args.work, "real" if cfg in ("lr", "lrlin") else CONFIGS[cfg][1])[1]
            names = {s: model_name(cfg, act, *seeds_for(mode, s)) for s in seeds}
            if all(n in res.evals for n in names.values()) and \
                    all((names[i], names[j]) in res.pds for i, j in itertools.combinations(seeds, 2)):
                continue  # complete: its models may have been pruned
            paths = {}
            for s in seeds:
                init, order = seeds_for(mode, s)
                paths[s] = train(args, res, cfg, act, init, order)
            for i, j in itertools.combinations(seeds, 2):
                (na, pa), (nb, pb) = paths[i], paths[j]
                if (na, nb) in res.pds:
                    continue
                out = subprocess.run([args.tool, "pd", "--model", pa, "--model", pb, "--data", test_tsv,
                                      "--json", "--threads", str(args.threads)],
                                     check=True, capture_output=True, text=True)
                r = json.loads(out.stdout)
                res.add({"kind": "pd", "a": na, "b": nb, "pd": r["pd"], "flip_rate": r["flip_rate"]})
            log("%s %s %s: %d models, pairs done" % (cfg, act, mode, len(seeds)))
            if args.prune:
                for _, path in paths.values():
                    os.remove(path)


# ---- report ----

def pd_matrix(res, cfg, act, mode, seeds):
    """{(i, j): pd} for i < j among seeds, or None if any is missing."""
    m = {}
    for i, j in itertools.combinations(seeds, 2):
        a = model_name(cfg, act, *seeds_for(mode, i))
        b = model_name(cfg, act, *seeds_for(mode, j))
        r = res.pds.get((a, b))
        if r is None:
            return None
        m[(i, j)] = r
    return m


def evals_of(res, cfg, act, mode, seeds):
    out = []
    for s in seeds:
        e = res.evals.get(model_name(cfg, act, *seeds_for(mode, s)))
        if e is None:
            return None
        out.append(e)
    return out


def mean(xs):
    return sum(xs) / len(xs)


def mean_pd(m, seeds, key="pd"):
    xs = [m[(i, j)][key] for i, j in itertools.combinations(sorted(seeds), 2)]
    return mean(xs)


class Boot:
    """Seed draws shared by every statistic of one seed set, so that paired
    comparisons use the same draws."""

    def __init__(self, seeds, n=4000, rng_seed=12345):
        rng = random.Random(rng_seed)
        self.seeds = list(seeds)
        self.draws = []
        while len(self.draws) < n:
            d = sorted(set(rng.choice(self.seeds) for _ in self.seeds))
            if len(d) >= 2:
                self.draws.append(d)

    def ci(self, f):
        xs = sorted(f(d) for d in self.draws)
        return xs[int(0.025 * len(xs))], xs[min(len(xs) - 1, int(0.975 * len(xs)))]


def fmt_ci(x, lo, hi, pct=False, digits=4):
    if pct:
        return "%+.1f%% [%+.1f, %+.1f]" % (100 * x, 100 * lo, 100 * hi)
    return "%.*f [%.*f, %.*f]" % (digits, x, digits, lo, digits, hi)


def row_stats(res, cfg, act, mode, seeds, boot):
    m = pd_matrix(res, cfg, act, mode, seeds)
    ev = evals_of(res, cfg, act, mode, seeds)
    if m is None or ev is None:
        return None
    byseed = dict(zip(seeds, ev))
    st = {"m": m, "ev": byseed}
    st["pd"] = mean_pd(m, seeds)
    st["pd_ci"] = boot.ci(lambda d: mean_pd(m, d))
    st["flip"] = mean_pd(m, seeds, "flip_rate")
    st["ll"] = mean([e["logloss"] for e in ev])
    st["ll_ci"] = boot.ci(lambda d: mean([byseed[s]["logloss"] for s in d]))
    st["auc"] = mean([e["auc"] for e in ev])
    st["auc_ci"] = boot.ci(lambda d: mean([byseed[s]["auc"] for s in d]))
    return st


def paired(st, base, boot, seeds):
    """Relative PD change and logloss/AUC change of st against base."""
    red = st["pd"] / base["pd"] - 1
    red_ci = boot.ci(lambda d: mean_pd(st["m"], d) / mean_pd(base["m"], d) - 1)
    dll = st["ll"] - base["ll"]
    dll_ci = boot.ci(lambda d: mean([st["ev"][s]["logloss"] - base["ev"][s]["logloss"] for s in d]))
    dauc = st["auc"] - base["auc"]
    dauc_ci = boot.ci(lambda d: mean([st["ev"][s]["auc"] - base["ev"][s]["auc"] for s in d]))
    lower = sum(1 for k in st["m"] if st["m"][k]["pd"] < base["m"][k]["pd"])
    return {"red": red, "red_ci": red_ci, "dll": dll, "dll_ci": dll_ci, "dauc": dauc,
            "dauc_ci": dauc_ci, "lower": lower, "pairs": len(st["m"])}


def report(args):
    res = Results(args.work)
    lines = []
    w = lines.append
    w("# Reproducibility study: %s" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    w("")
    w("PD = mean relative prediction difference (1/N) sum 2|p1-p2|/(p1+p2) over the test rows,")
    w("averaged over every pair of seeds. [lo, hi] = 95% bootstrap interval over seeds")
    w("(distinct resampled seeds, pairs among them; paired with ReLU on the same draw).")
    w("Change = mean PD / ReLU's mean PD - 1; negative = more reproducible than ReLU.")
    w("")
    boot8, boot4 = Boot(SEEDS8), Boot(SEEDS4)
    stats = {}

    def get(cfg, act, mode, seeds, boot):
        k = (cfg, act, mode, tuple(seeds))
        if k not in stats:
            stats[k] = row_stats(res, cfg, act, mode, seeds, boot)
        return stats[k]

    def table(title, rows, seeds, boot, base_of):
        w("## " + title)
        w("")
        w("| configuration | activation | sources | AUC | logloss | PD | flip rate | PD change vs ReLU | "
          "pairs lower | logloss change vs ReLU |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        for cfg, act, mode in rows:
            st = get(cfg, act, mode, seeds, boot)
            if st is None:
                w("| %s | %s | %s | not run | | | | | | |" % (cfg, act_label(act), mode))
                continue
            b = base_of(cfg, act, mode)
            cmp = "" if b is None else None
            if b is not None:
                bst = get(b[0], b[1], b[2], seeds, boot)
                if bst is not None and bst is not st:
                    p = paired(st, bst, boot, seeds)
                    cmp = "| %s | %d of %d | %s " % (fmt_ci(p["red"], *p["red_ci"], pct=True), p["lower"],
                                                   p["pairs"], fmt_ci(p["dll"], *p["dll_ci"]))
                else:
                    cmp = "| | | "
            else:
                cmp = "| | | "
            w("| %s | %s | %s | %s | %s | %s | %.4f %s|" % (
                cfg, act_label(act), mode, fmt_ci(st["auc"], *st["auc_ci"]), fmt_ci(st["ll"], *st["ll_ci"]),
                fmt_ci(st["pd"], *st["pd_ci"]), st["flip"], cmp))
        w("")

    def relu_base(cfg, act, mode):
        return None if act in ("relu", "lr") else (cfg, "relu", mode)
    acts = ["relu"] + ["b" + b for b in BETAS]
    table("SmeLU beta against ReLU (MLP, 8 seeds, init and order both vary)",
          [("base", a, "both") for a in acts], SEEDS8, boot8, relu_base)
    table("Sources of disagreement (8 seeds; 'init': order seed fixed at 1, 'order': init seed fixed at 1)",
          [(c, a, m) for c, a in (("lr", "lr"), ("lrlin", "lr"), ("base", "relu"), ("base", "b1"),
                                  ("base", "b4"), ("emb0", "relu"), ("emb0", "b1"))
           for m in ("both", "init", "order")],
          SEEDS8, boot8, relu_base)
    table("SmeLU beta against ReLU when only the initialisation differs (8 seeds, order seed 1)",
          [("base", a, "init") for a in acts], SEEDS8, boot8, relu_base)
    table("Architectures (8 seeds)",
          [(c, a, m) for c in ("base", "dcn", "wukong") for m in ("both", "init") for a in ("relu", "b1", "b4")
           if not (m == "init" and c != "base" and a == "b4")],
          SEEDS8, boot8, relu_base)
    knob_cfgs = ["base", "ep2", "ep3", "const", "h128", "h1024", "d4", "d32", "realq", "syn100k", "syn1m"]
    table("One knob at a time (seeds 1-4 only, base row included on the same 4 seeds)",
          [(c, a, "both") for c in knob_cfgs for a in ("relu", "b1")], SEEDS4, boot4, relu_base)
    w("Configurations:")
    w("")
    for c, (o, data, seeds, label) in CONFIGS.items():
        w("- `%s`: %s (%s data; %s over the base: `%s`)" % (
            c, label, data, "options" if o else "no options", " ".join("--%s %s" % kv for kv in o.items())))
    w("- base options: `%s`" % " ".join("--%s %s" % kv for kv in BASE.items()))
    w("- lr options: `%s`" % " ".join("--%s %s" % kv for kv in LR_OPTS.items()))
    w("")
    with open(os.path.join(args.out, "STUDY.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.plots:
        plot(args, get, boot8, boot4)


def plot(args, get, boot8, boot4):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("report: no matplotlib (apt-get install python3-matplotlib); no plots", file=sys.stderr)
        return
    acts = ["relu"] + ["b" + b for b in BETAS]
    # MLP, left: the activation sweep per source of disagreement (8 seeds);
    # right: one knob at a time, ReLU -> SmeLU beta 1 (4 seeds).
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5.5))
    for k, (cfg, mode, lab) in enumerate((("base", "both", "init and order differ"),
                                          ("base", "init", "only init differs"),
                                          ("base", "order", "only order differs"),
                                          ("emb0", "both", "tables start at 0, init and order"),
                                          ("emb0", "order", "tables start at 0, only order"),
                                          ("emb0", "init", "tables start at 0, only init"))):
        pts = [(a, get(cfg, a, mode, SEEDS8, boot8)) for a in acts]
        pts = [(a, s) for a, s in pts if s]
        if not pts:
            continue
        xs = [s["ll"] for _, s in pts]
        ys = [s["pd"] for _, s in pts]
        err = [[s["pd"] - s["pd_ci"][0] for _, s in pts], [s["pd_ci"][1] - s["pd"] for _, s in pts]]
        ax.errorbar(xs, ys, yerr=err, fmt="o-" if cfg == "base" else "^--", color="C%d" % k, capsize=3,
                    ms=4, label=lab)
        for a, s in pts:
            ax.annotate(act_label(a).replace("SmeLU beta ", "β"), (s["ll"], s["pd"]),
                        textcoords="offset points", xytext=(4, 3), fontsize=7, color="C%d" % k)
    for cfg, mode, txt in (("lrlin", "order", "logistic regression, only order"),
                           ("lrlin", "init", "logistic regression, only init")):
        lr = get(cfg, "lr", mode, SEEDS8, boot8)
        if lr:
            ax.axhline(lr["pd"], color="k", ls=":", lw=1)
            ax.annotate("%s: PD %.3f (logloss %.4f)" % (txt, lr["pd"], lr["ll"]),
                        (ax.get_xlim()[0], lr["pd"]), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.set_xlabel("test logloss (mean over 8 seeds)")
    ax.set_ylabel("relative PD between seeds (mean over 28 pairs, 95% CI)")
    ax.set_title("MLP: ReLU and SmeLU β 0.25-4, by source")
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(alpha=0.3)
    # 2 and 3 epochs (PD 0.4-0.6, logloss 0.56-0.69) would squash the rest:
    # they are in the table only.
    for k, (cfg, lab) in enumerate([("base", "base (seeds 1-4)"), ("const", "constant lr"), ("h128", "128-64"), ("h1024", "1024-512"),
                                    ("d4", "dim 4"), ("d32", "dim 32"), ("realq", "26k rows")]):
        r = get(cfg, "relu", "both", SEEDS4, boot4)
        s = get(cfg, "b1", "both", SEEDS4, boot4)
        if not r or not s:
            continue
        col = "C%d" % k
        ax2.annotate("", (s["ll"], s["pd"]), (r["ll"], r["pd"]),
                     arrowprops=dict(arrowstyle="->", color=col))
        ax2.plot([r["ll"]], [r["pd"]], "s", color=col, ms=5, label=lab)
        ax2.plot([s["ll"]], [s["pd"]], "o", color=col, ms=2)  # so that the axes hold the arrow head
        ax2.annotate(lab, (r["ll"], r["pd"]), textcoords="offset points", xytext=(4, 3), fontsize=7, color=col)
    ax2.set_xlabel("test logloss (mean over 4 seeds)")
    ax2.set_ylabel("relative PD between seeds (mean over 6 pairs)")
    ax2.set_title("MLP, one knob at a time: ReLU (square) -> SmeLU β 1 (arrow)\n"
                  "(2 and 3 epochs, off this scale: see the table)", fontsize=10)
    ax2.legend(fontsize=7, loc="best")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(args.plots, "repro_pd_logloss_mlp.png"), dpi=100)
    plt.close(fig)
    # Every architecture with results: activations at 8 seeds.
    archs = [(c, lab) for c, lab in (("base", "MLP"), ("dcn", "DCNv2"), ("wukong", "Wukong"))
             if get(c, "relu", "both", SEEDS8, boot8)]
    fig, axs = plt.subplots(1, len(archs), figsize=(5 * len(archs), 4.5), squeeze=False)
    for ax, (c, lab) in zip(axs[0], archs):
        pts = [(a, get(c, a, "both", SEEDS8, boot8)) for a in acts]
        pts = [(a, s) for a, s in pts if s]
        xs = [s["ll"] for _, s in pts]
        ys = [s["pd"] for _, s in pts]
        err = [[s["pd"] - s["pd_ci"][0] for _, s in pts], [s["pd_ci"][1] - s["pd"] for _, s in pts]]
        xerr = [[s["ll"] - s["ll_ci"][0] for _, s in pts], [s["ll_ci"][1] - s["ll"] for _, s in pts]]
        ax.errorbar(xs, ys, xerr=xerr, yerr=err, fmt="o-", capsize=3)
        for a, s in pts:
            ax.annotate(act_label(a).replace("SmeLU beta", "β"), (s["ll"], s["pd"]), textcoords="offset points",
                        xytext=(5, 5), fontsize=8)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(5))
        ax.set_title("%s (8 seeds, 95%% CI)" % lab)
        ax.set_xlabel("test logloss")
        ax.set_ylabel("relative PD between seeds")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(args.plots, "repro_pd_logloss_arch.png"), dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=("run", "report"))
    ap.add_argument("--work", required=True)
    ap.add_argument("--tool", default="build/ctrtool")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--groups", default=DEFAULT_GROUPS)
    ap.add_argument("--prune", action="store_true",
                    help="delete a group's model files once its evaluations and pairs are recorded "
                         "(about 100 MB each; a later run skips complete groups)")
    ap.add_argument("--out", default=None, help="where STUDY.md goes [WORK]")
    ap.add_argument("--plots", default=None, help="folder for the PNG plots [none]")
    args = ap.parse_args()
    args.tool = os.path.abspath(args.tool)
    if args.out is None:
        args.out = args.work
    if args.cmd == "run":
        for g in args.groups.split(","):
            if g not in GROUPS:
                sys.exit("repro_study: unknown group %s (%s)" % (g, ", ".join(GROUPS)))
        run(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
