"""The architecture config: a small JSON file that says what a state_dict is.

A state_dict holds tensors, not the graph around them: which features there
are and how their raw values become inputs, which interaction, the dot
order, the activation, LayerNorm's epsilon. The config says all of that
(docs/IMPORT.md, "The config"); layer widths are in it too, so that
`ctrd_torch random` can build a model from it, and the exporter checks
every width against the tensors it finds.

    {"name": "wk", "arch": "wukong", "activation": "relu", "beta": 1.0,
     "dense": [{"name": "I1", "transform": "log1p"}],
     "categorical": [{"name": "C1", "buckets": 1000, "dim": 16,
                      "mapping": "hash", "seed": 42,
                      "bag": {"max": 8, "pool": "sum"}, "table": "C1"}],
     "bottom": [32, 16],
     "interaction": {...},
     "top": [64, 32]}

`normalize(cfg)` checks a config and returns a copy with every default
filled in; the rest of the package only sees normalized configs.
"""

import copy
import json

ARCHS = ("mlp", "dot", "dcnv2", "wukong")
TRANSFORMS = ("identity", "log1p", "standardize")
ACTIVATIONS = ("relu", "smelu")
MAPPINGS = ("hash", "mod")
POOLS = ("sum", "mean")
MAX_BAG = 1024
U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1


class ConfigError(ValueError):
    """A config that does not describe a model ctrd can serve."""


def _fail(where, msg):
    raise ConfigError("config: %s: %s" % (where, msg))


def _keys(obj, where, required, optional=()):
    if not isinstance(obj, dict):
        _fail(where, "expected an object")
    for k in required:
        if k not in obj:
            _fail(where, "missing key \"%s\"" % k)
    for k in obj:
        if k not in required and k not in optional:
            _fail(where, "unknown key \"%s\"" % k)


def _int(v, where, lo, hi):
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        _fail(where, "expected an integer in %d..%d (got %r)" % (lo, hi, v))
    return v


def _widths(v, where, allow_empty=True):
    if v is None:
        v = []
    if not isinstance(v, list) or (not v and not allow_empty):
        _fail(where, "expected a%s list of layer widths" % ("" if allow_empty else " non-empty"))
    return [_int(w, "%s[%d]" % (where, i), 1, U32_MAX) for i, w in enumerate(v)]


def _name(v, where):
    if not isinstance(v, str) or not 1 <= len(v) <= 64 or any(
            c in "\"'\\" or not 0x20 <= ord(c) <= 0x7e for c in v):
        _fail(where, "expected 1..64 printable ASCII characters without quotes "
              "or backslash (got %r)" % (v,))
    return v


def _seed(v, where):
    if isinstance(v, str) and v.isdigit():
        v = int(v)
    return _int(v, where, 0, U64_MAX)


def normalize(cfg):
    """Checks cfg (a dict, as parsed from the JSON) and returns a normalized copy.

    Every default is filled in: activation "relu", beta 1.0, transform
    "log1p", mapping "hash" with seed 0, table = the feature's name, no
    bag, no bottom MLP, the interaction's defaults (below). Widths given
    in the config are only checked for type here; `check_widths` checks
    that they chain.
    """
    if isinstance(cfg, dict) and cfg.get("_normalized"):
        return cfg
    _keys(cfg, "top level", ("arch", "categorical", "top"),
          ("name", "activation", "beta", "dense", "bottom", "interaction", "comment"))
    c = {"_normalized": True, "name": cfg.get("name", "imported"), "arch": cfg["arch"]}
    if not isinstance(c["name"], str) or not 1 <= len(c["name"].encode()) <= 128:
        _fail("name", "expected 1..128 bytes")
    if c["arch"] not in ARCHS:
        _fail("arch", "expected one of %s (got %r)" % ("|".join(ARCHS), c["arch"]))
    c["activation"] = cfg.get("activation", "relu")
    if c["activation"] not in ACTIVATIONS:
        _fail("activation", "expected relu or smelu (got %r)" % (c["activation"],))
    beta = cfg.get("beta", 1.0)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0 \
            or beta != beta or beta == float("inf"):
        _fail("beta", "expected a finite number > 0")
    c["beta"] = float(beta)

    names = set()
    c["dense"] = []
    dense = cfg.get("dense", [])
    if not isinstance(dense, list):
        _fail("dense", "expected a list")
    for i, d in enumerate(dense):
        w = "dense[%d]" % i
        _keys(d, w, ("name",), ("transform", "mean", "std"))
        n = _name(d["name"], w + ".name")
        if n in names:
            _fail(w, "duplicate feature name %r" % n)
        names.add(n)
        t = d.get("transform", "log1p")
        if t not in TRANSFORMS:
            _fail(w + ".transform", "expected one of %s" % "|".join(TRANSFORMS))
        e = {"name": n, "transform": t}
        if t == "standardize":
            if "mean" not in d or "std" not in d:
                _fail(w, "standardize needs mean and std")
            e["mean"], e["std"] = float(d["mean"]), float(d["std"])
            if not e["std"] > 0:
                _fail(w + ".std", "expected > 0")
        elif "mean" in d or "std" in d:
            _fail(w, "mean and std go with standardize only")
        c["dense"].append(e)

    c["categorical"] = []
    cats = cfg["categorical"]
    if not isinstance(cats, list):
        _fail("categorical", "expected a list")
    owners = {}
    for j, f in enumerate(cats):
        w = "categorical[%d]" % j
        _keys(f, w, ("name",), ("buckets", "dim", "mapping", "seed", "bag", "table"))
        n = _name(f["name"], w + ".name")
        if n in names:
            _fail(w, "duplicate feature name %r" % n)
        names.add(n)
        e = {"name": n, "mapping": f.get("mapping", "hash"), "bag": None,
             "table": f.get("table", n), "shares": None}
        if e["mapping"] not in MAPPINGS:
            _fail(w + ".mapping", "expected hash or mod")
        if e["mapping"] == "hash":
            e["seed"] = _seed(f.get("seed", 0), w + ".seed")
        elif "seed" in f:
            _fail(w + ".seed", "a seed goes with mapping hash only")
        else:
            e["seed"] = 0
        if "buckets" in f:
            e["buckets"] = _int(f["buckets"], w + ".buckets", 1, U32_MAX - 1)
        if "dim" in f:
            e["dim"] = _int(f["dim"], w + ".dim", 1, U32_MAX)
        if f.get("bag") is not None:
            b = f["bag"]
            _keys(b, w + ".bag", ("max",), ("pool",))
            e["bag"] = {"max": _int(b["max"], w + ".bag.max", 1, MAX_BAG),
                        "pool": b.get("pool", "sum")}
            if e["bag"]["pool"] not in POOLS:
                _fail(w + ".bag.pool", "expected sum or mean")
        _name(e["table"], w + ".table")
        if e["table"] in owners:
            o = c["categorical"][owners[e["table"]]]
            e["shares"] = o["name"]
            for k in ("mapping", "seed"):
                if e[k] != o[k]:
                    _fail(w, "shares table %r with %r but its %s differs" % (e["table"], o["name"], k))
            for k in ("buckets", "dim"):
                if k in e and k in o and e[k] != o[k]:
                    _fail(w, "shares table %r with %r but its %s differs" % (e["table"], o["name"], k))
        else:
            owners[e["table"]] = j
        c["categorical"].append(e)
    for e in c["categorical"]:
        if e["shares"] is not None:
            o = c["categorical"][owners[e["table"]]]
            for k in ("buckets", "dim"):
                if k in o:
                    e[k] = o[k]
                elif k in e:
                    o[k] = e[k]
    if not c["dense"] and not c["categorical"]:
        _fail("top level", "a model needs at least one feature")

    c["bottom"] = _widths(cfg.get("bottom"), "bottom")
    c["top"] = _widths(cfg.get("top"), "top")
    if c["arch"] == "mlp" and c["bottom"]:
        _fail("bottom", "arch mlp has no bottom MLP (the dense values go to the top MLP as they are)")
    if c["arch"] in ("dot", "wukong") and c["dense"] and not c["bottom"]:
        _fail("bottom", "arch %s with dense features needs a bottom MLP (dense -> d)" % c["arch"])
    if c["bottom"] and not c["dense"]:
        _fail("bottom", "a bottom MLP needs dense features")

    it = cfg.get("interaction")
    a = c["arch"]
    if a == "mlp":
        if it not in (None, {}):
            _fail("interaction", "arch mlp has none")
        c["interaction"] = {}
    elif a == "dot":
        it = it or {}
        _keys(it, "interaction", (), ("order", "self"))
        c["interaction"] = {"order": it.get("order", "lower"), "self": bool(it.get("self", False))}
        if c["interaction"]["order"] not in ("lower", "upper"):
            _fail("interaction.order", "expected lower (reference DLRM) or upper (TorchRec)")
    elif a == "dcnv2":
        it = it or {}
        _keys(it, "interaction", ("layers",), ("structure", "rank", "deep"))
        s = it.get("structure", "stacked")
        if s not in ("stacked", "parallel"):
            _fail("interaction.structure", "expected stacked or parallel")
        nl = _int(it["layers"], "interaction.layers", 0, 1 << 20)
        rank = it.get("rank", 0)
        if isinstance(rank, list):
            if len(rank) != nl:
                _fail("interaction.rank", "a list needs one rank per layer (%d)" % nl)
            ranks = [_int(r, "interaction.rank[%d]" % i, 0, U32_MAX) for i, r in enumerate(rank)]
        else:
            ranks = [_int(rank, "interaction.rank", 0, U32_MAX)] * nl
        deep = _widths(it.get("deep"), "interaction.deep")
        if s == "parallel" and not deep:
            _fail("interaction.deep", "parallel needs a deep MLP")
        if s == "stacked" and deep:
            _fail("interaction.deep", "stacked has no deep MLP")
        c["interaction"] = {"structure": s, "ranks": ranks, "deep": deep}
    else:
        it = it or {}
        _keys(it, "interaction", ("layers",), ("ln_eps", "fmb_ln", "fmb_out_act"))
        eps = it.get("ln_eps", 1e-5)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            _fail("interaction.ln_eps", "expected a number > 0")
        fl = it.get("fmb_ln", "flat")
        if fl not in ("none", "flat"):
            _fail("interaction.fmb_ln", "expected none or flat")
        layers = []
        if not isinstance(it["layers"], list):
            _fail("interaction.layers", "expected a list")
        for i, L in enumerate(it["layers"]):
            w = "interaction.layers[%d]" % i
            _keys(L, w, ("n_f", "n_l", "k"), ("fmb", "residual"))
            e = {"n_f": _int(L["n_f"], w + ".n_f", 1, U32_MAX),
                 "n_l": _int(L["n_l"], w + ".n_l", 1, U32_MAX),
                 "k": _int(L["k"], w + ".k", 1, U32_MAX),
                 "fmb": _widths(L.get("fmb"), w + ".fmb"),
                 "residual": L.get("residual", "auto")}
            if e["residual"] not in ("auto", "identity", "learned"):
                _fail(w + ".residual", "expected auto, identity or learned")
            layers.append(e)
        c["interaction"] = {"ln_eps": float(eps), "fmb_ln": fl,
                            "fmb_out_act": bool(it.get("fmb_out_act", False)), "layers": layers}
    return c


def load(path):
    """Reads and normalizes a config file."""
    with open(path) as f:
        try:
            raw = json.load(f)
        except ValueError as e:
            raise ConfigError("config %s: invalid JSON: %s" % (path, e))
    return normalize(raw)


def d_of(c):
    """The embedding width d of an interaction model (None for mlp without cats)."""
    for f in c["categorical"]:
        if "dim" in f:
            return f["dim"]
    if c["bottom"]:
        return c["bottom"][-1]
    return None


def n_embeddings(c):
    """Rows of X: the dense embedding (when there are dense features) and the cats."""
    return (1 if c["dense"] else 0) + len(c["categorical"])


def slots(c):
    """Row slots per example (ctr_model_slots): max(1, bag max) per cat."""
    return sum(f["bag"]["max"] if f["bag"] else 1 for f in c["categorical"])


def slot_of(c, j):
    return sum(f["bag"]["max"] if f["bag"] else 1 for f in c["categorical"][:j])


def residual_learned(c, i):
    """Whether Wukong layer i has a learned residual, (n_f + n_l) x n_in,
    which it has exactly when n_f + n_l != n_in (else the identity)."""
    L = c["interaction"]["layers"][i]
    n_in = wukong_n_in(c, i)
    learned = L["n_f"] + L["n_l"] != n_in
    if L["residual"] == "identity" and learned:
        _fail("interaction.layers[%d].residual" % i,
              "identity needs n_f + n_l == n_in (%d + %d != %d)" % (L["n_f"], L["n_l"], n_in))
    if L["residual"] == "learned" and not learned:
        _fail("interaction.layers[%d].residual" % i,
              "a learned residual is for n_f + n_l != n_in (here both are %d): ctrd's format "
              "has the identity there" % n_in)
    return learned


def wukong_n_in(c, i):
    if i == 0:
        return n_embeddings(c)
    L = c["interaction"]["layers"][i - 1]
    return L["n_f"] + L["n_l"]


def dcn_width(c):
    """DCNv2's x_0 width: flatten(X), or raw dense + embeddings without a bottom MLP."""
    w = (c["bottom"][-1] if c["bottom"] else len(c["dense"])) if c["dense"] else 0
    return w + sum(f["dim"] for f in c["categorical"])


def top_in(c):
    """Width of the top MLP's input (ctr_model_input_dim)."""
    a, d, n = c["arch"], d_of(c), n_embeddings(c)
    if a == "mlp":
        return len(c["dense"]) + sum(f["dim"] for f in c["categorical"])
    if a == "dot":
        pairs = n * (n + 1) // 2 if c["interaction"]["self"] else n * (n - 1) // 2
        return (d if c["dense"] else 0) + pairs
    if a == "dcnv2":
        w = dcn_width(c)
        if c["interaction"]["structure"] == "parallel":
            w += c["interaction"]["deep"][-1]
        return w
    layers = c["interaction"]["layers"]
    if layers:
        return (layers[-1]["n_f"] + layers[-1]["n_l"]) * d
    return n * d


def check_widths(c):
    """Checks that a fully sized config chains (every cat has buckets and dim)."""
    for j, f in enumerate(c["categorical"]):
        for k in ("buckets", "dim"):
            if k not in f:
                _fail("categorical[%d]" % j, "%s is needed here" % k)
    if c["arch"] != "mlp":
        d = d_of(c)
        for j, f in enumerate(c["categorical"]):
            if f["dim"] != d:
                _fail("categorical[%d].dim" % j, "is %d, but every embedding of a %s model has one "
                      "width (d = %d)" % (f["dim"], c["arch"], d))
        if c["bottom"] and c["bottom"][-1] != d:
            _fail("bottom", "the last width is %d, but d is %d" % (c["bottom"][-1], d))
        if d is None:
            _fail("top level", "no embedding width: no categorical feature and no bottom MLP")
    if c["arch"] == "wukong":
        for i in range(len(c["interaction"]["layers"])):
            residual_learned(c, i)


def to_json(c):
    """The normalized config as the JSON a user would write (round-trips)."""
    out = {"name": c["name"], "arch": c["arch"], "activation": c["activation"], "beta": c["beta"],
           "dense": copy.deepcopy(c["dense"]), "categorical": []}
    for f in c["categorical"]:
        e = {"name": f["name"]}
        for k in ("buckets", "dim"):
            if k in f:
                e[k] = f[k]
        e["mapping"] = f["mapping"]
        if f["mapping"] == "hash":
            e["seed"] = str(f["seed"])
        if f["bag"]:
            e["bag"] = dict(f["bag"])
        e["table"] = f["table"]
        out["categorical"].append(e)
    if c["bottom"]:
        out["bottom"] = list(c["bottom"])
    it = c["interaction"]
    if c["arch"] == "dot":
        out["interaction"] = dict(it)
    elif c["arch"] == "dcnv2":
        r = it["ranks"]
        out["interaction"] = {"structure": it["structure"], "layers": len(r),
                              "rank": r[0] if len(set(r)) == 1 else list(r)}
        if it["deep"]:
            out["interaction"]["deep"] = list(it["deep"])
    elif c["arch"] == "wukong":
        out["interaction"] = {"ln_eps": it["ln_eps"], "fmb_ln": it["fmb_ln"],
                              "fmb_out_act": it["fmb_out_act"],
                              "layers": [dict(L) for L in it["layers"]]}
    out["top"] = list(c["top"])
    return out
