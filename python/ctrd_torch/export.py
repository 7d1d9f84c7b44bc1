"""state_dict (torch.save) + architecture config (JSON) -> .ctrm.

    /usr/bin/python3 -m ctrd_torch.export --config C.json --state S.pt --out M.ctrm

Two naming schemes are read (docs/IMPORT.md lists every name and layout):

- the reference modules' (modules.py): emb.<table>.weight, bottom.<i>.*,
  cross.<l>.{w,v,u}.*, deep.<i>.*, wukong.<i>.*, top.<i>.*;
- TorchRec's DLRM and DLRM_DCN (torchrec.models.dlrm):
  sparse_arch.embedding_bag_collection.embedding_bags.<table>.weight,
  dense_arch.model._mlp.<i>._linear.{weight,bias},
  inter_arch.crossnet.{V_kernels,W_kernels,bias}.<l> (LowRankCrossNet;
  also kernels.<l> of the full-rank CrossNet),
  over_arch.model.0._mlp.<i>._linear.{weight,bias}, over_arch.model.1.*.

PyTorch Linear weights are [out, in]; ctrm's are [in, out], so every
layer weight is transposed. LowRankCrossNet computes
x_0 * (W (V x) + b) + x with V_kernels [r, D] and W_kernels [D, r]:
ctrm's v [D][r] is V_kernels^T and u [r][D] is W_kernels^T. Keys that
the config does not account for are an error (a config that does not
describe the state_dict would otherwise export a different model).
"""

import argparse
import copy
import os
import sys

import numpy as np

from . import config as C
from . import ctrm

TORCHREC_EMB = "sparse_arch.embedding_bag_collection.embedding_bags.%s.weight"
_WRAPPERS = ("module.", "model.", "_orig_mod.")


class ExportError(ValueError):
    """A state_dict that does not match its config."""


def load_state(path):
    """torch.load a state_dict (or a checkpoint dict holding one, or a
    module) and returns {name: float32 numpy array}, with DistributedDataParallel's
    "module.", torch.compile's "_orig_mod." and TorchRec's DLRMTrain "model."
    prefixes taken off when every key has them."""
    import torch
    obj = torch.load(path, map_location="cpu")
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()
    for k in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(k), dict):
            obj = obj[k]
    if not isinstance(obj, dict):
        raise ExportError("%s: not a state_dict" % path)
    sd = {k: v for k, v in obj.items() if hasattr(v, "dtype") and v.dtype.is_floating_point}
    changed = True
    while changed and sd:
        changed = False
        for p in _WRAPPERS:
            if all(k.startswith(p) for k in sd):
                sd = {k[len(p):]: v for k, v in sd.items()}
                changed = True
    return {k: v.detach().to(torch.float32).numpy() for k, v in sd.items()}


class _State:
    """Looks tensors up by name, checks shapes, records what was used."""

    def __init__(self, sd):
        self.sd = sd
        self.used = set()

    def has(self, k):
        return k in self.sd

    def get(self, k, shape=None, what=None):
        if k not in self.sd:
            raise ExportError("state_dict has no %s%s" % (k, " (%s)" % what if what else ""))
        a = np.asarray(self.sd[k], dtype=np.float32)
        if shape is not None and a.shape != tuple(shape):
            raise ExportError("%s: shape %s, the config says %s%s"
                              % (k, list(a.shape), list(shape), " (%s)" % what if what else ""))
        self.used.add(k)
        return a

    def linear(self, prefix, n_in, n_out, what):
        """A torch Linear [out, in] + bias [out] -> ctrm (w [in, out], b)."""
        w = self.get(prefix + "weight", (n_out, n_in), what)
        b = self.get(prefix + "bias", (n_out,), what)
        return (w.T.copy(), b)

    def unused(self):
        return sorted(set(self.sd) - self.used)


def naming_of(sd):
    return "torchrec" if any(k.startswith("sparse_arch.") for k in sd) else "reference"


def _chain(st, names, widths, n_in, what):
    out = []
    for i, w in enumerate(widths):
        out.append(st.linear(names(i), n_in, w, "%s layer %d: %d -> %d" % (what, i, n_in, w)))
        n_in = w
    return out


def to_desc(cfg, sd, provenance=None):
    """The ctrm description (ctrm.py) of state_dict sd under config cfg."""
    cfg = copy.deepcopy(C.normalize(cfg))
    st = _State(sd)
    tr = naming_of(sd) == "torchrec"
    a, it = cfg["arch"], cfg["interaction"]
    if tr and a not in ("dot", "dcnv2"):
        raise ExportError("TorchRec names are read for arch dot (DLRM) and dcnv2 (DLRM_DCN), "
                          "not %s" % a)
    if tr and a == "dcnv2" and it["structure"] != "stacked":
        raise ExportError("TorchRec's DLRM_DCN is stacked (interaction.structure)")

    cats, owners = [], {}
    for j, f in enumerate(cfg["categorical"]):
        key = (TORCHREC_EMB if tr else "emb.%s.weight") % f["table"]
        e = {"name": f["name"], "mapping": f["mapping"], "seed": f["seed"],
             "bag": f["bag"], "shares": None, "table": None}
        if f["shares"] is None:
            t = st.get(key, what="table of categorical feature %s" % f["name"])
            if t.ndim != 2 or t.shape[0] < 2:
                raise ExportError("%s: expected [buckets + 1, dim], got %s" % (key, list(t.shape)))
            rows, dim = t.shape
            if f.get("buckets", rows - 1) != rows - 1 or f.get("dim", dim) != dim:
                raise ExportError("%s: shape %s, the config says buckets %s (%s rows), dim %s"
                                  % (key, list(t.shape), f.get("buckets"),
                                     f.get("buckets", 0) + 1, f.get("dim")))
            e["table"], e["buckets"], e["dim"] = t, rows - 1, dim
            owners[f["table"]] = e
        else:
            o = owners[f["table"]]
            e["shares"], e["buckets"], e["dim"] = o["name"], o["buckets"], o["dim"]
        cats.append(e)
    # Widths now known: check the rest of the config against them.
    for f, e in zip(cfg["categorical"], cats):
        f["buckets"], f["dim"] = e["buckets"], e["dim"]
    C.check_widths(cfg)
    d = C.d_of(cfg)
    n_dense = len(cfg["dense"])

    desc = {"name": cfg["name"], "arch": a, "activation": cfg["activation"], "beta": cfg["beta"],
            "dense": cfg["dense"], "categorical": cats,
            "provenance": provenance or {}}
    bottom_name = (lambda i: "dense_arch.model._mlp.%d._linear." % i) if tr else \
                  (lambda i: "bottom.%d." % i)
    desc["bottom"] = _chain(st, bottom_name, cfg["bottom"], n_dense, "bottom MLP")

    if a == "dot":
        desc["dot"] = {"order": it["order"], "self": it["self"]}
    elif a == "dcnv2":
        D = C.dcn_width(cfg)
        cross = []
        for l, r in enumerate(it["ranks"]):
            what = "cross layer %d (D %d, rank %d)" % (l, D, r)
            if tr:
                p = "inter_arch.crossnet."
                if r == 0:
                    w = st.get(p + "kernels.%d" % l, (D, D), what)
                    b = st.get(p + "bias.%d" % l, what=what)
                    if b.shape not in ((D,), (D, 1)):
                        raise ExportError("%sbias.%d: shape %s, expected [%d] or [%d, 1] (%s)"
                                          % (p, l, list(b.shape), D, D, what))
                    b = b.reshape(-1)
                    x = {"w": w.T.copy(), "bias": b}
                else:
                    v = st.get(p + "V_kernels.%d" % l, (r, D), what)
                    u = st.get(p + "W_kernels.%d" % l, (D, r), what)
                    b = st.get(p + "bias.%d" % l, what=what)
                    if b.shape not in ((D,), (D, 1)):
                        raise ExportError("%sbias.%d: shape %s, expected [%d] or [%d, 1] (%s)"
                                          % (p, l, list(b.shape), D, D, what))
                    x = {"v": v.T.copy(), "u": u.T.copy(), "bias": b.reshape(-1)}
            else:
                p = "cross.%d." % l
                if r == 0:
                    w, b = st.linear(p + "w.", D, D, what)
                    x = {"w": w, "bias": b}
                else:
                    v = st.get(p + "v.weight", (r, D), what)
                    u, b = st.linear(p + "u.", r, D, what)
                    x = {"v": v.T.copy(), "u": u, "bias": b}
            cross.append(x)
        deep = _chain(st, lambda i: "deep.%d." % i, it["deep"], D, "deep MLP")
        desc["dcn"] = {"structure": it["structure"], "cross": cross, "deep": deep}
    elif a == "wukong":
        layers = []
        for i, L in enumerate(it["layers"]):
            n_in, k, n_f, n_l = C.wukong_n_in(cfg, i), L["k"], L["n_f"], L["n_l"]
            p = "wukong.%d." % i
            what = "Wukong layer %d (n_in %d, n_f %d, n_l %d, k %d)" % (i, n_in, n_f, n_l, k)
            e = {"y": st.get(p + "y", (n_in, k), what)}
            if it["fmb_ln"] == "flat":
                e["fmb_ln_gamma"] = st.get(p + "fmb_ln.weight", (n_in * k,), what)
                e["fmb_ln_beta"] = st.get(p + "fmb_ln.bias", (n_in * k,), what)
            e["fmb"] = _chain(st, lambda j: p + "fmb.%d." % j, L["fmb"] + [n_f * d], n_in * k,
                              "FMB MLP of " + what)
            e["lcb"] = st.get(p + "lcb.weight", (n_l, n_in), what)
            e["res"] = st.get(p + "res.weight", (n_f + n_l, n_in), what) \
                if C.residual_learned(cfg, i) else None
            e["ln_gamma"] = st.get(p + "ln.weight", (d,), what)
            e["ln_beta"] = st.get(p + "ln.bias", (d,), what)
            layers.append(e)
        desc["wukong"] = {"ln_eps": it["ln_eps"], "fmb_ln": it["fmb_ln"],
                          "fmb_out_act": it["fmb_out_act"], "layers": layers}

    top_in = C.top_in(cfg)
    widths = cfg["top"] + [1]
    if tr:
        hidden = _chain(st, lambda i: "over_arch.model.0._mlp.%d._linear." % i, cfg["top"],
                        top_in, "over arch")
        last_in = cfg["top"][-1] if cfg["top"] else top_in
        desc["top"] = hidden + [st.linear("over_arch.model.1.", last_in, 1, "over arch's last layer")]
    else:
        desc["top"] = _chain(st, lambda i: "top.%d." % i, widths, top_in, "top MLP")
    left = st.unused()
    if left:
        raise ExportError("state_dict tensors the config does not account for: %s%s"
                          % (", ".join(left[:8]), " ..." if len(left) > 8 else ""))
    return desc


def torchrec_state(sd, cfg, bias_2d=False):
    """A reference-module state_dict renamed and laid out as TorchRec's DLRM
    (arch dot) or DLRM_DCN (arch dcnv2, stacked) holds it: what a TorchRec
    checkpoint of the same model looks like (the tests use it; TorchRec
    itself is not needed). The cross layers' biases are [D, 1] as in
    TorchRec's CrossNet (full rank) and older LowRankCrossNets, [D] as in
    current LowRankCrossNets; bias_2d makes them all [D, 1]."""
    cfg = C.normalize(cfg)
    if cfg["arch"] not in ("dot", "dcnv2"):
        raise ExportError("TorchRec has no %s model" % cfg["arch"])
    out = {}
    for k, v in sd.items():
        p = k.split(".")
        if p[0] == "emb":
            out[TORCHREC_EMB % p[1]] = v
        elif p[0] == "bottom":
            out["dense_arch.model._mlp.%s._linear.%s" % (p[1], p[2])] = v
        elif p[0] == "top":
            i = int(p[1])
            if i == len(cfg["top"]):
                out["over_arch.model.1.%s" % p[2]] = v
            else:
                out["over_arch.model.0._mlp.%d._linear.%s" % (i, p[2])] = v
        elif p[0] == "cross":
            l, sub = p[1], p[2]
            if sub == "w":
                if p[3] == "weight":
                    out["inter_arch.crossnet.kernels.%s" % l] = v
                else:
                    out["inter_arch.crossnet.bias.%s" % l] = v.reshape(-1, 1)
            elif sub == "v":
                out["inter_arch.crossnet.V_kernels.%s" % l] = v
            elif p[3] == "weight":
                out["inter_arch.crossnet.W_kernels.%s" % l] = v
            else:
                out["inter_arch.crossnet.bias.%s" % l] = v.reshape(-1, 1) if bias_2d else v
        else:
            raise ExportError("no TorchRec name for %s" % k)
    return out


def reference_state(desc, cfg):
    """The reference modules' state_dict (numpy arrays) of a description:
    to_desc's inverse, so that any state_dict the exporter reads (TorchRec's
    too) loads into modules.CTRModel."""
    cfg = C.normalize(cfg)
    sd = {}
    for f, c in zip(cfg["categorical"], desc["categorical"]):
        if not c["shares"]:
            sd["emb.%s.weight" % f["table"]] = c["table"]

    def layers(prefix, ls):
        for i, (w, b) in enumerate(ls):
            sd["%s.%d.weight" % (prefix, i)] = w.T.copy()
            sd["%s.%d.bias" % (prefix, i)] = b

    layers("bottom", desc.get("bottom") or [])
    if desc["arch"] == "dcnv2":
        for l, x in enumerate(desc["dcn"]["cross"]):
            if x.get("w") is not None:
                sd["cross.%d.w.weight" % l] = x["w"].T.copy()
                sd["cross.%d.w.bias" % l] = x["bias"]
            else:
                sd["cross.%d.v.weight" % l] = x["v"].T.copy()
                sd["cross.%d.u.weight" % l] = x["u"].T.copy()
                sd["cross.%d.u.bias" % l] = x["bias"]
        layers("deep", desc["dcn"]["deep"])
    elif desc["arch"] == "wukong":
        for i, L in enumerate(desc["wukong"]["layers"]):
            p = "wukong.%d." % i
            sd[p + "y"] = L["y"]
            if "fmb_ln_gamma" in L:
                sd[p + "fmb_ln.weight"], sd[p + "fmb_ln.bias"] = L["fmb_ln_gamma"], L["fmb_ln_beta"]
            layers(p + "fmb", L["fmb"])
            sd[p + "lcb.weight"] = L["lcb"]
            if L["res"] is not None:
                sd[p + "res.weight"] = L["res"]
            sd[p + "ln.weight"], sd[p + "ln.bias"] = L["ln_gamma"], L["ln_beta"]
    layers("top", desc["top"])
    return sd


def config_of(desc):
    """The config (normalized) of a description, e.g. of a .ctrm file read
    back with ctrm.desc_of: with reference_state, a ctrd model (one
    `ctrtool train` or `synth` wrote) loads into the reference modules."""
    cats = []
    for c in desc["categorical"]:
        e = {"name": c["name"], "buckets": c["buckets"], "dim": c["dim"], "mapping": c["mapping"],
             "table": c["shares"] or c["name"]}
        if c["mapping"] == "hash":
            e["seed"] = c["seed"]
        if c.get("bag"):
            e["bag"] = dict(c["bag"])
        cats.append(e)
    cfg = {"name": desc["name"], "arch": desc["arch"], "activation": desc["activation"],
           "beta": desc["beta"], "dense": [dict(d) for d in desc["dense"]], "categorical": cats,
           "top": [np.asarray(w).shape[1] for w, _ in desc["top"][:-1]]}
    if desc.get("bottom"):
        cfg["bottom"] = [np.asarray(w).shape[1] for w, _ in desc["bottom"]]
    a = desc["arch"]
    if a == "dot":
        cfg["interaction"] = dict(desc["dot"])
    elif a == "dcnv2":
        it = desc["dcn"]
        cfg["interaction"] = {
            "structure": it["structure"], "layers": len(it["cross"]),
            "rank": [0 if x.get("w") is not None else np.asarray(x["v"]).shape[1]
                     for x in it["cross"]],
            "deep": [np.asarray(w).shape[1] for w, _ in it["deep"]]}
    elif a == "wukong":
        it = desc["wukong"]
        d = desc["categorical"][0]["dim"] if desc["categorical"] else \
            np.asarray(desc["bottom"][-1][0]).shape[1]
        layers = []
        for L in it["layers"]:
            layers.append({"n_f": np.asarray(L["fmb"][-1][0]).shape[1] // d,
                           "n_l": np.asarray(L["lcb"]).shape[0], "k": np.asarray(L["y"]).shape[1],
                           "fmb": [np.asarray(w).shape[1] for w, _ in L["fmb"][:-1]]})
        cfg["interaction"] = {"ln_eps": it["ln_eps"], "fmb_ln": it["fmb_ln"],
                              "fmb_out_act": it["fmb_out_act"], "layers": layers}
    return C.normalize(cfg)


def export(config_path, state_path, out_path):
    cfg = C.load(config_path)
    sd = load_state(state_path)
    prov = {"tool": "ctrd_torch.export", "state_dict": os.path.basename(state_path),
            "config": os.path.basename(config_path), "names": naming_of(sd)}
    desc = to_desc(cfg, sd, prov)
    n = ctrm.write(out_path, desc)
    return desc, n


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m ctrd_torch.export",
                                 description="state_dict + architecture config -> .ctrm")
    ap.add_argument("--config", required=True, help="architecture config (JSON)")
    ap.add_argument("--state", required=True, help="state_dict saved with torch.save")
    ap.add_argument("--out", required=True, help="the .ctrm file to write")
    args = ap.parse_args(argv)
    try:
        desc, n = export(args.config, args.state, args.out)
    except (C.ConfigError, ExportError, ctrm.FormatError, OSError) as e:
        print("export: %s" % e, file=sys.stderr)
        return 1
    print("wrote %s: %s, version %d, %d bytes, names %s"
          % (args.out, desc["arch"], ctrm.version_of(desc), n, desc["provenance"]["names"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
