"""Writing (and reading back) `.ctrm` model files in pure Python and numpy.

The byte layout is docs/MODEL_FORMAT.md: a 32-byte preamble, the header
JSON, zero padding to a 64-byte boundary, then the f32 little-endian
tensors, each at a multiple of 64. A description that the C side would
write as version 1 (arch mlp, hash mapping, no bags, no shared tables) is
written here byte for byte as `ctr_model_write` writes it (same key order,
compact, reals as jansson prints them with 17 significant digits, MLP
tensors then tables); anything else is version 2 (the keys of the issue 15
contract: "arch", "mapping", "bag", shared "table", "bottom",
"interaction").

A description (`desc`) is a dict, every matrix already in ctrm's layout
([in][out] for layers, see the shapes in `write`):

    {"name", "arch", "activation", "beta",
     "dense": [{"name", "transform"[, "mean", "std"]}],
     "categorical": [{"name", "buckets", "dim", "mapping", "seed",
                      "bag": None | {"max", "pool"},
                      "shares": None | owner's name,
                      "table": f32 [buckets + 1, dim] (owners only)}],
     "bottom": [(w [in, out], b [out]), ...],
     "top": [(w, b), ...],                       # the last has out == 1
     "dot": {"order", "self"},
     "dcn": {"structure", "cross": [{"w" | "v", "u", "bias"}], "deep": [...]},
     "wukong": {"ln_eps", "fmb_ln", "fmb_out_act",
                "layers": [{"y", "fmb_ln_gamma", "fmb_ln_beta", "fmb",
                            "lcb", "res" (or None), "ln_gamma", "ln_beta"}]},
     "provenance": dict}
"""

import hashlib
import json
import os
import struct

import numpy as np

MAGIC = b"CTRMODEL"
PREAMBLE = 32
ALIGN = 64
HEADER_MAX = 16 << 20


class FormatError(ValueError):
    """A description that does not make a valid model, or a damaged file."""


def _align(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


def jreal(x):
    """A real as jansson's json_dumps writes it with JSON_REAL_PRECISION(17)."""
    x = float(x)
    if x != x or x in (float("inf"), float("-inf")):
        raise FormatError("non-finite real %r" % x)
    s = "%.17g" % x
    if "." not in s and "e" not in s:
        s += ".0"
    e = s.find("e")
    if e >= 0:
        mant, exp = s[:e], s[e + 1:]
        sign = "-" if exp.startswith("-") else ""
        exp = exp.lstrip("+-").lstrip("0") or "0"
        s = mant + "e" + sign + exp
    return s


def _dump(v):
    """Compact JSON in insertion order, reals as jreal (the C writer's bytes)."""
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + _dump(x)
                              for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_dump(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return jreal(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    raise FormatError("cannot write %r in the header" % (v,))


def f32(a, name):
    a = np.ascontiguousarray(np.asarray(a, dtype="<f4"))
    if not np.all(np.isfinite(a)):
        bad = int(np.flatnonzero(~np.isfinite(a.ravel()))[0])
        raise FormatError("tensor \"%s\": element %d is %r (values must be finite)"
                          % (name, bad, float(a.ravel()[bad])))
    return a


def version_of(desc):
    """1 for what a version-1 file can say (ctr_model_def_version), else 2."""
    if desc["arch"] != "mlp" or desc.get("bottom"):
        return 2
    for c in desc["categorical"]:
        if c["mapping"] != "hash" or c.get("bag") or c.get("shares"):
            return 2
    return 1


class _Tensors:
    """The tensors in file order, each named and checked for its shape."""

    def __init__(self):
        self.items = []
        self.names = set()

    def add(self, name, arr, shape):
        a = f32(arr, name)
        if tuple(a.shape) != tuple(shape):
            raise FormatError("tensor \"%s\": shape %s, expected %s"
                              % (name, list(a.shape), list(shape)))
        if name in self.names:
            raise FormatError("tensor \"%s\" twice" % name)
        self.names.add(name)
        self.items.append((name, a))
        return name


def _layers(T, prefix, layers, in_dim, where):
    """Adds a chain of layers; returns the header entries and the last width."""
    out = []
    for i, (w, b) in enumerate(layers):
        w = np.asarray(w)
        if w.ndim != 2:
            raise FormatError("%s[%d].weight: expected a matrix" % (where, i))
        if w.shape[0] != in_dim:
            raise FormatError("%s[%d].in is %d, the previous layer gives %d"
                              % (where, i, w.shape[0], in_dim))
        o = w.shape[1]
        wn = T.add("%s.%d.weight" % (prefix, i), w, (in_dim, o))
        bn = T.add("%s.%d.bias" % (prefix, i), b, (o,))
        out.append({"in": in_dim, "out": o, "weight": wn, "bias": bn})
        in_dim = o
    return out, in_dim


def build(desc):
    """Checks desc and returns (header dict without tensors, tensor list)."""
    a = desc["arch"]
    ver = version_of(desc)
    T = _Tensors()
    dense, cats = desc["dense"], desc["categorical"]
    if not dense and not cats:
        raise FormatError("a model needs at least one feature")
    sd = []
    for d in dense:
        e = {"name": d["name"], "transform": d["transform"]}
        if d["transform"] == "standardize":
            e["mean"], e["std"] = float(d["mean"]), float(d["std"])
        sd.append(e)
    sc, owners = [], {}
    for j, c in enumerate(cats):
        e = {"name": c["name"]}
        if c.get("shares"):
            if c["shares"] not in owners:
                raise FormatError("categorical[%d] %s shares the table of %r, which is not an "
                                  "earlier owner" % (j, c["name"], c["shares"]))
            o = owners[c["shares"]]
            for k in ("buckets", "dim", "mapping", "seed"):
                if c.get(k) != o.get(k):
                    raise FormatError("categorical[%d] %s: %s differs from its table's owner %s"
                                      % (j, c["name"], k, o["name"]))
            e["table"] = "emb." + o["name"]
        else:
            e["table"] = "emb." + c["name"]
            owners[c["name"]] = c
        e["buckets"], e["dim"] = int(c["buckets"]), int(c["dim"])
        if ver == 2:
            e["mapping"] = c["mapping"]
        if c["mapping"] == "hash":
            e["seed"] = str(int(c["seed"]))
            e["hash"] = "xxh3_64"
        if c.get("bag"):
            e["bag"] = {"max": int(c["bag"]["max"]), "pool": c["bag"]["pool"]}
        sc.append(e)
    hdr = {"format": "ctrm", "version": ver, "name": desc["name"]}
    if ver == 2:
        hdr["arch"] = a
    hdr["schema"] = {"dense": sd, "categorical": sc}

    d = cats[0]["dim"] if cats else None
    if a != "mlp":
        for j, c in enumerate(cats):
            if c["dim"] != d:
                raise FormatError("categorical[%d].dim is %d; every embedding of a %s model is "
                                  "%d wide" % (j, c["dim"], a, d))
    first = []  # widths of X's first row (dense part)
    if desc.get("bottom"):
        layers, out = _layers(T, "bottom", desc["bottom"], len(dense), "bottom.layers")
        if d is not None and out != d:
            raise FormatError("bottom.layers[%d].out is %d, the embeddings are %d wide"
                              % (len(layers) - 1, out, d))
        d = out if d is None else d
        hdr["bottom"] = {"layers": layers}
        first = [out]
    elif dense:
        if a in ("dot", "wukong"):
            raise FormatError("arch %s with dense features needs a bottom MLP" % a)
        first = [len(dense)]
    n = len(first) + len(cats)

    if a == "mlp":
        top_in = len(dense) + sum(c["dim"] for c in cats)
    elif a == "dot":
        it = desc["dot"]
        hdr["interaction"] = {"order": it["order"], "self": bool(it["self"])}
        pairs = n * (n + 1) // 2 if it["self"] else n * (n - 1) // 2
        top_in = (d if dense else 0) + pairs
    elif a == "dcnv2":
        it = desc["dcn"]
        D = sum(first) + sum(c["dim"] for c in cats)
        cross = []
        for l, x in enumerate(it["cross"]):
            if x.get("w") is not None:
                e = {"dim": D, "rank": 0,
                     "weight": T.add("cross.%d.weight" % l, x["w"], (D, D))}
            else:
                r = np.asarray(x["v"]).shape[1]
                e = {"dim": D, "rank": r,
                     "v": T.add("cross.%d.v" % l, x["v"], (D, r)),
                     "u": T.add("cross.%d.u" % l, x["u"], (r, D))}
            e["bias"] = T.add("cross.%d.bias" % l, x["bias"], (D,))
            cross.append(e)
        deep, dout = _layers(T, "deep", it.get("deep") or [], D, "interaction.deep")
        if it["structure"] == "parallel" and not deep:
            raise FormatError("interaction.deep: parallel needs a deep MLP")
        if it["structure"] == "stacked" and deep:
            raise FormatError("interaction.deep: stacked has none")
        hdr["interaction"] = {"structure": it["structure"], "cross": cross, "deep": deep}
        top_in = D + (dout if deep else 0)
    elif a == "wukong":
        it = desc["wukong"]
        layers = []
        for i, L in enumerate(it["layers"]):
            y = np.asarray(L["y"])
            if y.ndim != 2 or y.shape[0] != n:
                raise FormatError("interaction.layers[%d].n_in is %s, the previous layer gives %d"
                                  % (i, y.shape[0] if y.ndim == 2 else "?", n))
            k = y.shape[1]
            lcb = np.asarray(L["lcb"])
            n_l = lcb.shape[0]
            fmb_last = np.asarray(L["fmb"][-1][0]).shape[1]
            if fmb_last % d:
                raise FormatError("interaction.layers[%d].fmb: the last out %d is not a multiple "
                                  "of d = %d" % (i, fmb_last, d))
            n_f = fmb_last // d
            p = "wukong.%d." % i
            e = {"n_in": n, "n_f": n_f, "n_l": n_l, "k": k, "y": T.add(p + "y", y, (n, k))}
            if it["fmb_ln"] == "flat":
                e["fmb_ln_gamma"] = T.add(p + "fmb_ln.gamma", L["fmb_ln_gamma"], (n * k,))
                e["fmb_ln_beta"] = T.add(p + "fmb_ln.beta", L["fmb_ln_beta"], (n * k,))
            e["fmb"], _ = _layers(T, p + "fmb", L["fmb"], n * k,
                                  "interaction.layers[%d].fmb" % i)
            e["lcb"] = T.add(p + "lcb", lcb, (n_l, n))
            if L.get("res") is not None:
                e["res"] = T.add(p + "res", L["res"], (n_f + n_l, n))
            elif n_f + n_l != n:
                raise FormatError("interaction.layers[%d]: n_f + n_l = %d differs from n_in = %d, "
                                  "so it needs a learned residual" % (i, n_f + n_l, n))
            e["ln_gamma"] = T.add(p + "ln.gamma", L["ln_gamma"], (d,))
            e["ln_beta"] = T.add(p + "ln.beta", L["ln_beta"], (d,))
            layers.append(e)
            n = n_f + n_l
        hdr["interaction"] = {"ln_eps": float(np.float32(it["ln_eps"])), "fmb_ln": it["fmb_ln"],
                              "fmb_out_act": bool(it["fmb_out_act"]), "layers": layers}
        top_in = n * d
    else:
        raise FormatError("unknown arch %r" % a)

    top, out = _layers(T, "mlp", desc["top"], top_in, "mlp.layers")
    if not top or out != 1:
        raise FormatError("mlp.layers: the last layer must have out == 1 (got %s)"
                          % (out if top else "no layers"))
    hdr["mlp"] = {"activation": desc["activation"], "beta": float(np.float32(desc["beta"])),
                  "layers": top}
    for c in cats:
        if not c.get("shares"):
            T.add("emb." + c["name"], c["table"], (c["buckets"] + 1, c["dim"]))
    return hdr, T.items


def encode(desc):
    """The whole file as bytes."""
    hdr, tensors = build(desc)
    entries, off = [], 0
    for name, a in tensors:
        off = _align(off)
        entries.append({"name": name, "dtype": "f32", "shape": list(a.shape), "offset": off,
                        "nbytes": a.nbytes, "sha256": hashlib.sha256(a.tobytes()).hexdigest()})
        off += a.nbytes
    hdr["tensors"] = entries
    hdr["data_bytes"] = off
    hdr["provenance"] = desc.get("provenance") or {}
    text = _dump(hdr).encode("utf-8")
    if len(text) > HEADER_MAX:
        raise FormatError("header JSON is %d bytes, over the %d-byte limit" % (len(text), HEADER_MAX))
    doff = _align(PREAMBLE + len(text))
    buf = bytearray(doff + off)
    struct.pack_into("<8sIIQQ", buf, 0, MAGIC, hdr["version"], 0, len(text), doff)
    buf[PREAMBLE:PREAMBLE + len(text)] = text
    for e, (_, a) in zip(entries, tensors):
        buf[doff + e["offset"]:doff + e["offset"] + a.nbytes] = a.tobytes()
    return bytes(buf)


def write(path, desc):
    """Writes desc to path via path.tmp and a rename, like ctr_model_write."""
    data = encode(desc)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return len(data)


def desc_of(hdr, tensors):
    """The description of a file read by `read`: build's inverse, so that
    `encode(desc_of(*read(path)[:2]))` gives the file's bytes back when the
    file came from this writer or ctr_model_write."""
    sch = hdr["schema"]
    arch = hdr.get("arch", "mlp")
    owners = {}
    cats = []
    for c in sch["categorical"]:
        e = {"name": c["name"], "buckets": c["buckets"], "dim": c["dim"],
             "mapping": c.get("mapping", "hash"), "seed": int(c.get("seed", 0)),
             "bag": dict(c["bag"]) if "bag" in c else None, "shares": None, "table": None}
        if c["table"] in owners:
            e["shares"] = owners[c["table"]]
        else:
            owners[c["table"]] = c["name"]
            e["table"] = tensors[c["table"]]
        cats.append(e)

    def layers(ls):
        return [(tensors[L["weight"]], tensors[L["bias"]]) for L in ls]

    desc = {"name": hdr["name"], "arch": arch, "activation": hdr["mlp"]["activation"],
            "beta": hdr["mlp"]["beta"],
            "dense": [dict(d) for d in sch["dense"]], "categorical": cats,
            "bottom": layers(hdr["bottom"]["layers"]) if "bottom" in hdr else [],
            "top": layers(hdr["mlp"]["layers"]), "provenance": hdr.get("provenance", {})}
    it = hdr.get("interaction", {})
    if arch == "dot":
        desc["dot"] = {"order": it["order"], "self": it["self"]}
    elif arch == "dcnv2":
        cross = []
        for x in it["cross"]:
            if x["rank"] == 0:
                cross.append({"w": tensors[x["weight"]], "bias": tensors[x["bias"]]})
            else:
                cross.append({"v": tensors[x["v"]], "u": tensors[x["u"]],
                              "bias": tensors[x["bias"]]})
        desc["dcn"] = {"structure": it["structure"], "cross": cross, "deep": layers(it["deep"])}
    elif arch == "wukong":
        wl = []
        for L in it["layers"]:
            e = {"y": tensors[L["y"]], "fmb": layers(L["fmb"]), "lcb": tensors[L["lcb"]],
                 "res": tensors[L["res"]] if "res" in L else None,
                 "ln_gamma": tensors[L["ln_gamma"]], "ln_beta": tensors[L["ln_beta"]]}
            if "fmb_ln_gamma" in L:
                e["fmb_ln_gamma"] = tensors[L["fmb_ln_gamma"]]
                e["fmb_ln_beta"] = tensors[L["fmb_ln_beta"]]
            wl.append(e)
        desc["wukong"] = {"ln_eps": it["ln_eps"], "fmb_ln": it["fmb_ln"],
                          "fmb_out_act": it["fmb_out_act"], "layers": wl}
    return desc


def _no_dups(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise FormatError("header: duplicate key %r" % k)
        d[k] = v
    return d


def _fma_f32(a, b, c):
    """float32(a * b + c) rounded once, as C's fmaf, for float64 arrays
    whose product a * b is exact in float64 (an 8-bit q times a float32
    scale is). numpy has no fma: the sum is taken as a float64 t plus its
    exact error e (TwoSum); t rounded to float32 is fmaf's answer unless t
    lies exactly halfway between two floats and e moves the true sum off
    that midpoint, which then decides the side."""
    p = a * b
    t = p + c
    z = t - p
    e = (p - (t - z)) + (c - z)
    r = t.astype(np.float32)
    r64 = r.astype(np.float64)
    other = np.nextafter(r, np.where(t > r64, np.float32(np.inf), np.float32(-np.inf)))
    mid = (r64 + other.astype(np.float64)) / 2
    tie = (t != r64) & (t == mid) & (e != 0)
    # At a midpoint, e > 0 means the true sum is above it: the larger float.
    above = np.where(e > 0, np.maximum(r, other), np.minimum(r, other))
    return np.where(tie, above, r).astype(np.float32)


def decode_rows(dtype, blob, shape):
    """A table's stored bytes as float32 [rows, dim]: the decode of
    docs/MODEL_FORMAT.md "Table dtypes", bit for bit (f16: the half's exact
    value; int8_rowwise: fmaf((float)q, scale, bias))."""
    rows, dim = shape
    if dtype == "f16":
        return np.frombuffer(blob, "<f2").astype(np.float32).reshape(rows, dim)
    r = np.frombuffer(blob, np.uint8).reshape(rows, dim + 8)
    q = r[:, :dim].astype(np.float64)
    sb = np.ascontiguousarray(r[:, dim:]).view("<f4").astype(np.float64)
    return _fma_f32(q, sb[:, :1], sb[:, 1:])


def _stored_bytes(dtype, shape):
    """Bytes of a tensor of dtype and shape; None for a dtype this reader
    does not know, or a quantized dtype on anything but a table."""
    if dtype == "f32":
        return 4 * int(np.prod(shape))
    row_bytes = {"f16": lambda dim: 2 * dim, "int8_rowwise": lambda dim: dim + 8}.get(dtype)
    if row_bytes is None or len(shape) != 2:
        return None
    return shape[0] * row_bytes(shape[1])


def read(path):
    """Reads a .ctrm file: (header dict, {tensor name: f32 array}, digest).

    Checks the preamble, the layout of every tensor and its SHA-256; the
    graph is the C reader's business. Quantized tables (f16, int8_rowwise)
    come back decoded to float32, with the C decoder's bits."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < PREAMBLE:
        raise FormatError("%s: shorter than the preamble" % path)
    magic, ver, flags, hlen, doff = struct.unpack_from("<8sIIQQ", raw, 0)
    if magic != MAGIC or flags != 0:
        raise FormatError("%s: not a ctrm file" % path)
    if not 1 <= hlen <= HEADER_MAX or doff != _align(PREAMBLE + hlen) or doff > len(raw):
        raise FormatError("%s: bad header_len/data_offset" % path)
    hb = raw[PREAMBLE:PREAMBLE + hlen]
    hdr = json.loads(hb.decode("utf-8"), object_pairs_hook=_no_dups)
    if hdr.get("version") != ver:
        raise FormatError("%s: version %r in the header, %d in the preamble"
                          % (path, hdr.get("version"), ver))
    if doff + hdr["data_bytes"] != len(raw):
        raise FormatError("%s: data_offset + data_bytes != file size" % path)
    tensors, end = {}, 0
    for t in hdr["tensors"]:
        want = _stored_bytes(t["dtype"], t["shape"])
        if want is None:
            raise FormatError("%s: tensor %s: dtype %r is not supported here (f32, f16 and "
                              "int8_rowwise tables)" % (path, t["name"], t["dtype"]))
        if t["offset"] % ALIGN or t["offset"] < end or \
                t["nbytes"] != want or t["offset"] + t["nbytes"] > hdr["data_bytes"]:
            raise FormatError("%s: tensor %s: bad layout" % (path, t["name"]))
        start = doff + t["offset"]
        blob = raw[start:start + t["nbytes"]]
        if hashlib.sha256(blob).hexdigest() != t["sha256"]:
            raise FormatError("%s: tensor %s: SHA-256 mismatch" % (path, t["name"]))
        if t["dtype"] == "f32":
            tensors[t["name"]] = np.frombuffer(blob, dtype="<f4").reshape(t["shape"])
        else:
            tensors[t["name"]] = decode_rows(t["dtype"], blob, t["shape"])
        end = t["offset"] + t["nbytes"]
    return hdr, tensors, "sha256:" + hashlib.sha256(hb).hexdigest()
