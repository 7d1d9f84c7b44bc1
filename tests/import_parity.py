#!/usr/bin/python3
"""import_parity.py - the PyTorch import's checks, run by tests/test_import.sh.

    import_parity.py unit  --ctrtool PATH --work DIR
        the Python side alone: XXH3 against libxxhash, the feature encoding
        against the golden rows of docs/MODEL_FORMAT.md, the version-1
        writer byte for byte against `ctrtool synth`, every case's .ctrm
        scored by an independent float64 numpy implementation of the
        format's arithmetic (read back from the file) against the torch
        reference modules, and TorchRec-named state_dicts exporting to the
        same tensors and header as the reference names.
    import_parity.py make  --out DIR [--only NAME,...]
        builds every case: DIR/<case>/{config.json, state.pt, model.ctrm,
        examples.json, expected.json} and DIR/cases (their names).
    import_parity.py check --url URL --case DIR
        POSTs the case's examples to ctrd's /v1/score and compares with the
        torch probabilities: max |difference| <= 1e-5.

Runs on Debian's /usr/bin/python3 (python3-torch, python3-numpy) with
PYTHONPATH=python.
"""

import argparse
import copy
import ctypes
import json
import math
import os
import random
import subprocess
import sys
import urllib.request

import numpy as np

from ctrd_torch import config as C
from ctrd_torch import ctrm
from ctrd_torch import export as E
from ctrd_torch.__main__ import load_model, random_model
from ctrd_torch.features import encode
from ctrd_torch.xxh3 import xxh3_64

TOL = 1e-5
N_EXAMPLES = 1200
FAILS = []


def ok(msg):
    print("ok: " + msg, flush=True)


def fail(msg):
    FAILS.append(msg)
    print("FAIL: " + msg, flush=True)


# ---- the cases ---------------------------------------------------------

def dense_feats(n, kinds=("log1p",)):
    out = []
    for i in range(n):
        t = kinds[i % len(kinds)]
        f = {"name": "I%d" % (i + 1), "transform": t}
        if t == "standardize":
            f["mean"], f["std"] = 3.5 + i, 2.25 + 0.5 * i
        out.append(f)
    return out


def cat_feats(n, buckets, dim, **over):
    """n categorical features C1..Cn; over maps a name to extra keys."""
    out = []
    for j in range(n):
        name = "C%d" % (j + 1)
        f = {"name": name, "buckets": buckets, "dim": dim, "mapping": "hash", "seed": str(100 + j)}
        if name in over:
            f.update(over[name])
            if f["mapping"] == "mod":
                f.pop("seed", None)
            elif "table" in f:  # a sharer hashes with its owner's seed
                f["seed"] = next(o for o in out if o["name"] == f["table"])["seed"]
        out.append(f)
    return out


def cases():
    """name -> (config, state_dict names). Two or more sizes of each
    architecture; bags (sum, mean), shared tables, mod mapping, both dot
    orders and the diagonal, DCNv2 low rank and full, stacked and parallel,
    Wukong with identity and learned residuals."""
    bag_s = {"bag": {"max": 4, "pool": "sum"}}
    bag_m = {"bag": {"max": 6, "pool": "mean"}}
    mod = {"mapping": "mod"}
    crit = lambda: dense_feats(13)
    cs = {}
    cs["mlp-v1-small"] = {
        "arch": "mlp", "activation": "smelu", "beta": 0.5,
        "dense": dense_feats(3, ("log1p", "standardize", "identity")),
        "categorical": [dict(c, dim=d) for c, d in zip(cat_feats(4, 50, 4), (4, 8, 8, 2))],
        "top": [16]}
    cs["mlp-v1-criteo"] = {
        "arch": "mlp", "activation": "relu", "dense": crit(),
        "categorical": cat_feats(26, 2000, 16), "top": [128, 64]}
    cs["mlp-bags-mod-shared"] = {
        "arch": "mlp", "activation": "smelu", "beta": 1.0,
        "dense": dense_feats(2),
        "categorical": cat_feats(5, 300, 8, C1=dict(bag_s), C2=dict(mod, **bag_m),
                                 C3=dict(mod), C4=dict(table="C1"),
                                 C5=dict(table="C1", bag={"max": 3, "pool": "mean"})),
        "top": [32, 16]}
    cs["dot-lower-small"] = {
        "arch": "dot", "activation": "relu", "dense": dense_feats(2, ("log1p", "identity")),
        "categorical": cat_feats(5, 100, 8, C2=dict(bag_m), C4=dict(mod)),
        "bottom": [16, 8], "interaction": {"order": "lower"}, "top": [32]}
    cs["dot-upper-self-small"] = {
        "arch": "dot", "activation": "smelu", "beta": 0.25, "dense": dense_feats(3),
        "categorical": cat_feats(4, 80, 4, C1=dict(bag_s), C3=dict(table="C2")),
        "bottom": [4], "interaction": {"order": "upper", "self": True}, "top": [16, 8]}
    cs["dot-upper-torchrec"] = {
        "arch": "dot", "activation": "relu", "dense": crit(),
        "categorical": cat_feats(26, 1000, 16, **dict(
            {"C%d" % j: dict(mod) for j in range(1, 27)},
            C2=dict(mod, table="C1"), C5=dict(mod, bag={"max": 8, "pool": "sum"}))),
        "bottom": [64, 32, 16], "interaction": {"order": "upper"}, "top": [128, 64]}
    cs["dcn-mixed-stacked-small"] = {
        "arch": "dcnv2", "activation": "relu", "dense": dense_feats(3),
        "categorical": cat_feats(6, 60, 8, C2=dict(bag_s), C6=dict(mod)),
        "bottom": [8], "interaction": {"structure": "stacked", "layers": 2, "rank": [4, 0]},
        "top": [32]}
    cs["dcn-full-parallel-nobottom"] = {
        "arch": "dcnv2", "activation": "smelu", "beta": 1.0,
        "dense": dense_feats(4, ("log1p", "standardize")),
        "categorical": cat_feats(5, 70, 8, C3=dict(bag_m), C5=dict(table="C4")),
        "interaction": {"structure": "parallel", "layers": 2, "rank": 0, "deep": [32, 16]},
        "top": [16]}
    cs["dcn-lowrank-torchrec"] = {
        "arch": "dcnv2", "activation": "relu", "dense": crit(),
        "categorical": cat_feats(26, 500, 16, **{"C%d" % j: dict(mod) for j in range(1, 27)}),
        "bottom": [64, 16], "interaction": {"structure": "stacked", "layers": 3, "rank": 16},
        "top": [64, 32]}
    cs["dcn-mixed-parallel"] = {
        "arch": "dcnv2", "activation": "relu", "dense": dense_feats(6),
        "categorical": cat_feats(10, 200, 12, C1=dict(bag_s), C2=dict(bag_m)),
        "bottom": [32, 12],
        "interaction": {"structure": "parallel", "layers": 3, "rank": [8, 0, 24], "deep": [64]},
        "top": [32, 16]}
    cs["wukong-identity-small"] = {
        "arch": "wukong", "activation": "smelu", "beta": 0.5, "dense": dense_feats(2),
        "categorical": cat_feats(5, 90, 8, C1=dict(bag_m), C2=dict(mod, **bag_s)),
        "bottom": [16, 8],
        "interaction": {"ln_eps": 1e-5, "fmb_ln": "none", "fmb_out_act": True,
                        "layers": [{"n_f": 3, "n_l": 3, "k": 4, "fmb": [16]},
                                   {"n_f": 2, "n_l": 4, "k": 3, "fmb": []}]},
        "top": [16]}
    cs["wukong-learned-criteo"] = {
        "arch": "wukong", "activation": "relu", "dense": crit(),
        "categorical": cat_feats(26, 400, 16, C1=dict(bag_s), C2=dict(bag_m),
                                 C3=dict(mod), C4=dict(mod, table="C3"),
                                 C7=dict(table="C1", bag={"max": 2, "pool": "sum"})),
        "bottom": [64, 16],
        "interaction": {"ln_eps": 1e-3, "fmb_ln": "flat", "fmb_out_act": False,
                        "layers": [{"n_f": 8, "n_l": 8, "k": 8, "fmb": [64]},
                                   {"n_f": 8, "n_l": 8, "k": 6, "fmb": [64, 64],
                                    "residual": "identity"},
                                   {"n_f": 4, "n_l": 4, "k": 4, "fmb": [32]},
                                   {"n_f": 4, "n_l": 2, "k": 4, "fmb": [32],
                                    "residual": "learned"}]},
        "top": [64, 32]}
    cs["wukong-nodense"] = {
        "arch": "wukong", "activation": "relu",
        "categorical": cat_feats(4, 50, 8, C4=dict(bag_s)),
        "interaction": {"fmb_ln": "flat", "layers": [{"n_f": 2, "n_l": 2, "k": 2, "fmb": [8]}]},
        "top": [8]}
    names = {"dot-upper-torchrec": "torchrec", "dcn-lowrank-torchrec": "torchrec"}
    out = {}
    for i, (name, cfg) in enumerate(cs.items()):
        cfg["name"] = name
        out[name] = (cfg, names.get(name, "reference"), 1000 + i)
    return out


# ---- examples ----------------------------------------------------------

def cat_value(rng, f):
    if f["mapping"] == "mod":
        r = rng.random()
        if r < 0.4:
            return "%08x" % rng.getrandbits(32)
        if r < 0.5:
            return ("%X" % rng.getrandbits(rng.choice((4, 40, 64)))).rjust(rng.randint(1, 3), "0")
        if r < 0.9:
            return rng.randrange(0, 3 * (f["buckets"] + 1))
        return rng.getrandbits(62)
    r = rng.random()
    if r < 0.6:
        return "%08x" % rng.randrange(0, 2 * f["buckets"])
    if r < 0.85:
        return rng.randrange(-50, 2 * f["buckets"])
    return rng.choice(["", "u", "caf\u00e9", "\u65e5\u672c", "a\"b\\c", "x" * 64, "tab\tnl\n"])


def dense_raw(rng, f):
    t = f["transform"]
    r = rng.random()
    if t == "log1p":
        if r < 0.7:
            return rng.randrange(0, 3000)
        if r < 0.8:
            return -rng.randrange(1, 5)
        return round(rng.uniform(0, 200), 3)
    if r < 0.5:
        return round(rng.gauss(f.get("mean", 0.0), f.get("std", 1.0)), 4)
    return rng.randrange(-10, 20)


def make_examples(cfg, n, seed):
    """n examples with every kind of value: missing (absent and null) dense
    and categorical values, bags of every length including empty, absent
    and null bags, hex and integer ids, strings with escapes."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ex = {}
        for f in cfg["dense"]:
            r = rng.random()
            if r < 0.08:
                continue
            ex[f["name"]] = None if r < 0.15 else dense_raw(rng, f)
        for f in cfg["categorical"]:
            r = rng.random()
            if r < 0.07:
                continue
            if r < 0.12:
                ex[f["name"]] = None
            elif f["bag"]:
                ex[f["name"]] = [cat_value(rng, f) for _ in range(rng.randint(0, f["bag"]["max"]))]
            else:
                ex[f["name"]] = cat_value(rng, f)
        out.append(ex)
    return out


# ---- an independent float64 implementation, from the .ctrm file --------

_LIBXXH = None


def xxh_c(b, seed):
    global _LIBXXH
    if _LIBXXH is None:
        _LIBXXH = ctypes.CDLL("libxxhash.so.0")
        _LIBXXH.XXH3_64bits_withSeed.restype = ctypes.c_uint64
        _LIBXXH.XXH3_64bits_withSeed.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
    return _LIBXXH.XXH3_64bits_withSeed(b, len(b), seed)


def ref_row(c, v):
    rows = c["buckets"] + 1
    if c.get("mapping", "hash") == "mod":
        return (v if isinstance(v, int) else int(v, 16)) % rows
    b = (str(v) if isinstance(v, int) else v).encode()
    return 1 + (xxh_c(b, int(c["seed"])) * c["buckets"] >> 64)


def ref_scores(hdr, T, examples):
    """Scores from the header and tensors of a .ctrm file alone, in float64,
    following docs/MODEL_FORMAT.md's arithmetic (not the torch modules)."""
    sch = hdr["schema"]
    arch = hdr.get("arch", "mlp")
    m = hdr["mlp"]
    beta = m["beta"]

    def act(x):
        if m["activation"] == "relu":
            return np.maximum(x, 0.0)
        return np.where(x <= -beta, 0.0, np.where(x >= beta, x, (x + beta) ** 2 / (4 * beta)))

    def lin(x, L, a):
        y = x @ T[L["weight"]].astype(np.float64) + T[L["bias"]]
        return act(y) if a else y

    def chain(x, layers, last_act):
        for i, L in enumerate(layers):
            x = lin(x, L, i + 1 < len(layers) or last_act)
        return x

    def ln(v, g, b, eps):
        mu = v.mean(-1, keepdims=True)
        var = ((v - mu) ** 2).mean(-1, keepdims=True)
        return (v - mu) / np.sqrt(var + eps) * g + b

    out = []
    for ex in examples:
        dv = []
        for d in sch["dense"]:
            x = ex.get(d["name"])
            if x is None:
                dv.append(0.0)
                continue
            t = d["transform"]
            v = math.log1p(max(x, 0.0)) if t == "log1p" else \
                (x - d["mean"]) / d["std"] if t == "standardize" else float(x)
            dv.append(float(np.float32(v)))
        dv = np.array(dv)
        embs = []
        for c in sch["categorical"]:
            tab = T[c["table"]].astype(np.float64)
            v = ex.get(c["name"])
            if "bag" not in c:
                embs.append(tab[0 if v is None else ref_row(c, v)])
                continue
            vals = v or []
            acc = np.zeros(c["dim"])
            for e in vals:
                acc = acc + tab[ref_row(c, e)]
            if c["bag"]["pool"] == "mean" and vals:
                acc = acc / len(vals)
            embs.append(acc)
        if arch == "mlp":
            h = np.concatenate([dv] + embs)
        else:
            first = []
            if sch["dense"]:
                first = [chain(dv, hdr["bottom"]["layers"], True) if "bottom" in hdr else dv]
            it = hdr["interaction"]
            if arch == "dot":
                X = np.stack(first + embs)
                G = X @ X.T
                n = len(X)
                pairs = []
                for i in range(n):
                    if it["order"] == "lower":
                        js = range(i + 1) if it["self"] else range(i)
                    else:
                        js = range(i, n) if it["self"] else range(i + 1, n)
                    pairs.extend(G[i, j] for j in js)
                h = np.concatenate(first + [np.array(pairs)])
            elif arch == "dcnv2":
                x0 = np.concatenate(first + embs)
                xl = x0
                for cr in it["cross"]:
                    if cr["rank"] == 0:
                        t = xl @ T[cr["weight"]] + T[cr["bias"]]
                    else:
                        t = (xl @ T[cr["v"]]) @ T[cr["u"]] + T[cr["bias"]]
                    xl = x0 * t + xl
                h = xl
                if it["structure"] == "parallel":
                    h = np.concatenate([xl, chain(x0, it["deep"], True)])
            else:
                X = np.stack(first + embs)
                d = X.shape[1]
                for L in it["layers"]:
                    F = X @ (X.T @ T[L["y"]])
                    f = F.reshape(-1)
                    if it["fmb_ln"] == "flat":
                        f = ln(f, T[L["fmb_ln_gamma"]], T[L["fmb_ln_beta"]], it["ln_eps"])
                    f = chain(f, L["fmb"], it["fmb_out_act"])
                    Cm = np.concatenate([f.reshape(L["n_f"], d), T[L["lcb"]] @ X])
                    R = T[L["res"]] @ X if "res" in L else X
                    X = ln(Cm + R, T[L["ln_gamma"]], T[L["ln_beta"]], it["ln_eps"])
                h = X.reshape(-1)
        z = chain(h, m["layers"], False)[0]
        out.append(1.0 / (1.0 + math.exp(-z)))
    return np.array(out)


# ---- steps -------------------------------------------------------------

def torchrec_able(cfg):
    return cfg["arch"] == "dot" or (cfg["arch"] == "dcnv2" and
                                    cfg["interaction"]["structure"] == "stacked")


def build_case(name, cfg, names, seed, out_dir):
    """Writes the case's files: config.json, state.pt (in the case's names),
    state-alt.pt (the other names, where TorchRec has the model),
    model.ctrm, examples.json, expected.json (the torch probabilities)."""
    import torch
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    ncfg, _, model = random_model(cfg, seed)
    examples = make_examples(ncfg, N_EXAMPLES, seed)
    dense, rows = encode(ncfg, examples)
    # Scale the last layer so that the logits spread over about +-3: scores
    # neither saturate nor bunch up, and a difference in the logit shows.
    with torch.no_grad():
        z = model.forward(dense, rows)
        last = model.top[-1]
        k = 1.5 / float(z.std().clamp(min=1e-3))
        last.weight.mul_(k)
        last.bias.copy_(last.bias * k - float(z.mean()) * k)
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    states = {"reference": sd}
    if torchrec_able(ncfg):
        states["torchrec"] = E.torchrec_state(sd, ncfg)
    torch.save(states[names], os.path.join(d, "state.pt"))
    for other in states:
        if other != names:
            torch.save(states[other], os.path.join(d, "state-alt.pt"))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(C.to_json(ncfg), f, indent=1)
    E.export(os.path.join(d, "config.json"), os.path.join(d, "state.pt"),
             os.path.join(d, "model.ctrm"))
    probs = model.predict(dense, rows).numpy().astype(np.float64)
    with open(os.path.join(d, "examples.json"), "w") as f:
        json.dump(examples, f)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump([float(p) for p in probs], f)
    return ncfg, examples, probs, d


def synth_cases():
    """Models `ctrtool synth --arch` writes (the C writer): the reference
    modules load them from the .ctrm (ctrd_torch score --model) and must
    agree with ctrd too."""
    common = ["--rows-per-table", "60", "--hidden", "16"]
    return {
        "synth-dot": ["--arch", "dot", "--dense", "3", "--categorical", "5", "--dim", "8",
                      "--bottom", "16", "--dot-order", "upper", "--bag-features", "C1,C2:mean",
                      "--max-bag", "3", "--mapping", "mod", "--shared", "C4=C3",
                      "--activation", "relu"] + common,
        "synth-dcnv2": ["--arch", "dcnv2", "--dense", "4", "--categorical", "4", "--dim", "8",
                        "--no-bottom", "--structure", "parallel", "--cross", "2", "--rank", "4",
                        "--deep", "16", "--bag-features", "C2", "--beta", "0.5"] + common,
        "synth-wukong": ["--arch", "wukong", "--dense", "2", "--categorical", "6", "--dim", "8",
                         "--bottom", "16", "--layers", "2", "--nf", "4", "--nl", "3", "--k", "3",
                         "--fmb", "16", "--fmb-ln", "flat", "--fmb-out-act",
                         "--bag-features", "C1:sum,C2:mean", "--shared", "C5=C4",
                         "--activation", "relu"] + common,
    }


def synth_has_arch(ctrtool):
    h = subprocess.run([ctrtool, "synth", "--help"], capture_output=True, text=True)
    return "--arch" in h.stdout + h.stderr


def build_synth_case(name, flags, ctrtool, seed, out_dir):
    """A case whose .ctrm comes from ctrtool synth; expected.json from the
    reference modules loaded from that file."""
    from ctrd_torch.__main__ import load_ctrm
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.ctrm")
    subprocess.run([ctrtool, "synth", "--out", path, "--seed", str(seed), "--name", name] + flags,
                   check=True, stdout=subprocess.DEVNULL)
    cfg, model = load_ctrm(path)
    examples = make_examples(cfg, N_EXAMPLES, seed)
    probs = model.predict(*encode(cfg, examples)).numpy().astype(np.float64)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(C.to_json(cfg), f, indent=1)
    with open(os.path.join(d, "examples.json"), "w") as f:
        json.dump(examples, f)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump([float(p) for p in probs], f)
    return cfg, examples, probs, d


def all_cases(ctrtool):
    """(name, builder) of every case: the torch-made ones, then ctrtool's."""
    out = [(name, lambda o, n=name, c=c, nm=nm, s=s: build_case(n, c, nm, s, o))
           for name, (c, nm, s) in cases().items()]
    if ctrtool and synth_has_arch(ctrtool):
        out += [(name, lambda o, n=name, f=f, s=2000 + i: build_synth_case(n, f, ctrtool, s, o))
                for i, (name, f) in enumerate(synth_cases().items())]
    elif ctrtool:
        print("note: this ctrtool's synth has no --arch: no synth-* cases")
    return out


def cmd_make(args):
    only = set(args.only.split(",")) if args.only else None
    names = []
    for name, build in all_cases(args.ctrtool):
        if only and name not in only:
            continue
        ncfg, ex, probs, d = build(args.out)
        bags = sum(1 for e in ex for f in ncfg["categorical"] if f["bag"] and e.get(f["name"]))
        print("made %-28s v%d  %4d examples (%d bags), scores %.3f..%.3f (std %.3f)"
              % (name, ctrm.read(os.path.join(d, "model.ctrm"))[0]["version"], len(ex), bags,
                 probs.min(), probs.max(), probs.std()))
        names.append(name)
    with open(os.path.join(args.out, "cases"), "w") as f:
        f.write("\n".join(names) + "\n")
    return 0


def post(url, body):
    req = urllib.request.Request(url + "/v1/score", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def cmd_check(args):
    ex = json.load(open(os.path.join(args.case, "examples.json")))
    want = np.array(json.load(open(os.path.join(args.case, "expected.json"))))
    digest = ctrm.read(os.path.join(args.case, "model.ctrm"))[2]
    got = []
    for s in range(0, len(ex), 1000):
        st, body = post(args.url, {"request_id": "parity-%d" % s, "examples": ex[s:s + 1000]})
        if st != 200:
            fail("%s: /v1/score answered %s: %s" % (args.case, st, str(body)[:400]))
            return 1
        if body["model"]["digest"] != digest:
            fail("%s: served digest %s, the file's is %s" % (args.case, body["model"]["digest"], digest))
            return 1
        got.extend(body["scores"])
    got = np.array(got)
    diff = np.abs(got - want)
    i = int(diff.argmax())
    msg = "%s: %d examples, max |ctrd - torch| = %.3g (example %d: %.9g vs %.9g), mean %.3g" % (
        os.path.basename(args.case), len(ex), diff[i], i, got[i], want[i], diff.mean())
    if diff[i] <= TOL:
        ok(msg)
        return 0
    fail(msg + " > %g" % TOL)
    return 1


def unit_xxh3():
    rng = random.Random(7)
    bad = 0
    for n in range(241):
        for t in range(8):
            b = bytes(rng.randrange(256) for _ in range(n))
            s = rng.getrandbits(64) if t else 0
            bad += xxh3_64(b, s) != xxh_c(b, s)
    (ok if not bad else fail)("xxh3_64 equals libxxhash on lengths 0..240 (%d mismatches)" % bad)
    f = {"name": "C", "buckets": 65536, "mapping": "hash", "seed": 42, "bag": None}
    cfg = {"dense": [], "categorical": [f]}
    golden = [("68fd1e64", 54261), ("a9f2c1b0", 64698), ("", 45098), (12, 25605), (-7, 30148)]
    got = [int(encode(cfg, [{"C": v}])[1][0, 0]) for v, _ in golden]
    (ok if got == [r for _, r in golden] else fail)(
        "hash rows equal docs/MODEL_FORMAT.md's golden rows (%s)" % got)
    g = {"name": "M", "buckets": 999, "mapping": "mod", "seed": 0,
         "bag": {"max": 3, "pool": "sum"}}
    _, rows = encode({"dense": [], "categorical": [g]},
                     [{"M": ["ff", 1001, "FFFFFFFFFFFFFFFF"]}, {"M": []}, {}])
    want = [[255, 1, (2 ** 64 - 1) % 1000], [-1, -1, -1], [-1, -1, -1]]
    (ok if rows.tolist() == want else fail)("mod rows and bag slots (%s)" % rows.tolist())


def unit_v1_bytes(ctrtool, work):
    path = os.path.join(work, "synth.ctrm")
    subprocess.run([ctrtool, "synth", "--out", path, "--rows-per-table", "30", "--seed", "5",
                    "--dense", "3", "--categorical", "4", "--dim", "4", "--hidden", "8,4",
                    "--beta", "0.3"], check=True, stdout=subprocess.DEVNULL)
    h, T, _ = ctrm.read(path)
    desc = {"name": h["name"], "arch": "mlp", "activation": h["mlp"]["activation"],
            "beta": h["mlp"]["beta"], "dense": h["schema"]["dense"],
            "categorical": [{"name": c["name"], "buckets": c["buckets"], "dim": c["dim"],
                             "mapping": "hash", "seed": int(c["seed"]), "bag": None,
                             "shares": None, "table": T[c["table"]]}
                            for c in h["schema"]["categorical"]],
            "top": [(T[L["weight"]], T[L["bias"]]) for L in h["mlp"]["layers"]],
            "provenance": h["provenance"]}
    same = ctrm.encode(desc) == open(path, "rb").read()
    (ok if same else fail)("the version-1 writer gives ctrtool synth's bytes")


def strip_tensors(hdr):
    h = copy.deepcopy(hdr)
    for k in ("tensors", "data_bytes"):
        h.pop(k)
    return h


def strip_prov(hdr):
    h = copy.deepcopy(hdr)
    h.pop("provenance")
    return h


def unit_cases(work, ctrtool):
    for name, build in all_cases(ctrtool):
        ncfg, ex, probs, d = build(work)
        path = os.path.join(d, "model.ctrm")
        h, T, _ = ctrm.read(path)
        same = ctrm.encode(ctrm.desc_of(h, T)) == open(path, "rb").read()
        (ok if same else fail)("%s: read back and written again, the .ctrm has the same bytes"
                               % name)
        names = h["provenance"].get("names")
        ref = ref_scores(h, T, ex)
        diff = float(np.abs(ref - probs).max())
        (ok if diff <= TOL else fail)(
            "%s: torch vs float64 numpy from the .ctrm: max |diff| %.3g over %d examples"
            % (name, diff, len(ref)))
        if names == "torchrec":
            _, m2 = load_model(os.path.join(d, "config.json"), os.path.join(d, "state.pt"))
            diff = float(np.abs(m2.predict(*encode(ncfg, ex)).numpy() - probs).max())
            (ok if diff <= 1e-6 else fail)(
                "%s: the TorchRec state_dict loads into the reference modules (max |diff| %.3g)"
                % (name, diff))
        alt = os.path.join(d, "state-alt.pt")
        if os.path.exists(alt):
            out2 = os.path.join(d, "model-alt.ctrm")
            E.export(os.path.join(d, "config.json"), alt, out2)
            h2, T2, _ = ctrm.read(out2)
            same = strip_prov(h) == strip_prov(h2) and all(
                np.array_equal(T[k], T2[k]) for k in T)
            (ok if same else fail)("%s: the %s names export to the same header and tensors"
                                   % (name, h2["provenance"]["names"]))
        if ncfg["arch"] == "dcnv2" and names == "torchrec":
            sd = E.load_state(os.path.join(d, "state.pt"))
            sd = {k: v.reshape(-1, 1) if ".bias." in k else v for k, v in sd.items()}
            h3 = ctrm.build(E.to_desc(ncfg, sd))[0]
            same = h3 == strip_prov(strip_tensors(h))
            (ok if same else fail)("%s: TorchRec cross biases of shape [D, 1] read the same" % name)


def unit_errors(work):
    """The exporter refuses state_dicts its config does not describe."""
    cfg = cases()["dot-lower-small"][0]
    _, sd, _ = random_model(cfg, 3)
    sd = {k: v.numpy() for k, v in sd.items()}
    trials = {
        "a missing tensor": {k: v for k, v in sd.items() if k != "top.1.bias"},
        "an extra tensor": dict(sd, **{"extra.weight": np.zeros(3, np.float32)}),
        "a wrong width": dict(sd, **{"bottom.1.weight": np.zeros((9, 16), np.float32)}),
    }
    for what, s in trials.items():
        try:
            E.to_desc(cfg, s)
            fail("export accepted %s" % what)
        except (E.ExportError, C.ConfigError) as e:
            ok("export refuses %s: %s" % (what, e))


def cmd_unit(args):
    os.makedirs(args.work, exist_ok=True)
    unit_xxh3()
    unit_v1_bytes(args.ctrtool, args.work)
    unit_errors(args.work)
    unit_cases(args.work, args.ctrtool)
    print("%d failed" % len(FAILS))
    return 1 if FAILS else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("unit")
    u.add_argument("--ctrtool", required=True)
    u.add_argument("--work", required=True)
    m = sub.add_parser("make")
    m.add_argument("--out", required=True)
    m.add_argument("--ctrtool", help="also cases that ctrtool synth --arch writes")
    m.add_argument("--only")
    c = sub.add_parser("check")
    c.add_argument("--url", required=True)
    c.add_argument("--case", required=True)
    args = ap.parse_args()
    if args.cmd != "check":  # check only talks HTTP: no torch to load
        import torch
        torch.set_num_threads(1)
    return {"unit": cmd_unit, "make": cmd_make, "check": cmd_check}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
