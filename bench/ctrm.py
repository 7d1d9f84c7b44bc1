"""ctrm.py - a second, independent reader of ctrd's .ctrm model files and of
its feature encoding, for the benchmarks (bench/torch_server.py) and the
score cross-check (bench/score_check.py).

Written from docs/MODEL_FORMAT.md alone, not from model/*.c, so that it can
catch a disagreement between the document and the C implementation:

  preamble (32 bytes): b"CTRMODEL", u32 version 1, u32 flags 0,
                       u64 header_len, u64 data_offset = round_up(32 + len, 64)
  header:              header_len bytes of JSON (schema, mlp, tensors)
  tensors:             f32 little-endian at data_offset + offset, 64-aligned;
                       weights [in][out], tables [buckets + 1][dim], row 0 =
                       missing

Feature encoding (the end of MODEL_FORMAT.md):
  categorical  row = 1 + (xxh3_64(bytes, seed) * buckets >> 64); an integer
               hashes as its shortest decimal text; missing -> row 0
  dense        identity / log1p(max(x, 0)) / (x - mean) / std, in double,
               clamped to +-FLT_MAX, rounded once to float; missing -> 0.0f
  score        (float)(1 / (1 + exp(-(double)logit)))

The tensors are mapped copy-on-write (np.memmap mode "c"): nothing is read
until used and nothing is ever written back, so a model larger than memory
opens at once. Standard library + numpy; xxh3 from python3-xxhash, or from
libxxhash through ctypes when that module is absent.
"""

import ctypes
import ctypes.util
import hashlib
import json
import math
import struct

import numpy as np

MAGIC = b"CTRMODEL"
FLT_MAX = float(np.finfo(np.float32).max)
MAX_HEADER = 16 << 20


class FormatError(Exception):
    pass


# --- xxh3 ---------------------------------------------------------------------
def _xxh3_impl():
    try:
        import xxhash
        if hasattr(xxhash, "xxh3_64_intdigest"):
            f = xxhash.xxh3_64_intdigest
            return lambda data, seed: f(data, seed=seed), "python3-xxhash"
    except ImportError:
        pass
    name = ctypes.util.find_library("xxhash") or "libxxhash.so.0"
    lib = ctypes.CDLL(name)
    fn = lib.XXH3_64bits_withSeed
    fn.restype = ctypes.c_uint64
    fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
    return lambda data, seed: fn(data, len(data), seed), "libxxhash (ctypes)"


xxh3_64, XXH3_SOURCE = _xxh3_impl()


def cat_row(value, seed, buckets):
    """Row of a categorical value (str, bytes or int); None -> 0 (missing)."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise TypeError("a categorical value is a string or an integer")
    if isinstance(value, int):
        data = str(value).encode()
    elif isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    else:
        raise TypeError("a categorical value is a string or an integer")
    if len(data) > 64:
        raise ValueError("categorical value longer than 64 bytes")
    return 1 + ((xxh3_64(data, seed) * buckets) >> 64)


def dense_value(feature, x):
    """MLP input (a Python float holding a float32 value) of dense value x."""
    if x is None:
        return 0.0
    x = float(x)
    if x != x:
        return 0.0
    t = feature["transform"]
    if t == "log1p":
        v = math.log1p(x if x > 0.0 else 0.0)
    elif t == "standardize":
        v = (x - feature["mean"]) / feature["std"]
    else:
        v = x
    if v > FLT_MAX:
        v = FLT_MAX
    elif v < -FLT_MAX:
        v = -FLT_MAX
    return float(np.float32(v))


def sigmoid32(logits):
    """float32 scores from float32 logits, through double as the spec says."""
    z = np.asarray(logits, dtype=np.float64)
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


# --- the file -----------------------------------------------------------------
def _no_dup_keys(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise FormatError("header: duplicate key %r" % k)
        d[k] = v
    return d


class Model:
    """An opened .ctrm: header (dict), digest, tensors (numpy views)."""

    def __init__(self, path):
        self.path = path
        raw = np.memmap(path, dtype=np.uint8, mode="c")
        size = len(raw)
        if size < 32:
            raise FormatError("file shorter than the 32-byte preamble")
        magic, version, flags, hlen, doff = struct.unpack_from("<8sIIQQ", raw, 0)
        if magic != MAGIC:
            raise FormatError("bad magic %r: not a ctrm model file" % magic)
        if version != 1:
            raise FormatError("version %d: this reader knows version 1" % version)
        if flags != 0:
            raise FormatError("flags %#x: reserved, must be 0" % flags)
        if not 1 <= hlen <= MAX_HEADER or 32 + hlen > size:
            raise FormatError("header_len %d out of range" % hlen)
        if doff != (32 + hlen + 63) // 64 * 64 or doff > size:
            raise FormatError("data_offset %d is not round_up(32 + %d, 64)" % (doff, hlen))
        hbytes = bytes(raw[32:32 + hlen])
        try:
            header = json.loads(hbytes, object_pairs_hook=_no_dup_keys)
        except ValueError as e:
            raise FormatError("header: invalid JSON: %s" % e)
        if header.get("format") != "ctrm" or header.get("version") != 1:
            raise FormatError("header: format/version is not ctrm 1")
        if doff + header["data_bytes"] != size:
            raise FormatError("data_offset + data_bytes != file size %d (truncated?)" % size)
        self.header = header
        self.name = header["name"]
        self.digest = "sha256:" + hashlib.sha256(hbytes).hexdigest()
        self.tensors = {}
        end = 0
        for t in header["tensors"]:
            if t["dtype"] != "f32":
                raise FormatError("tensor %r: dtype %r unsupported" % (t["name"], t["dtype"]))
            n = 1
            for s in t["shape"]:
                n *= s
            off = t["offset"]
            if off % 64 or off < end or t["nbytes"] != 4 * n or off + t["nbytes"] > header["data_bytes"]:
                raise FormatError("tensor %r: bad offset/size" % t["name"])
            end = off + t["nbytes"]
            arr = np.frombuffer(raw, dtype="<f4", count=n, offset=doff + off)
            self.tensors[t["name"]] = arr.reshape(t["shape"])
        self._raw = raw

        sch = header["schema"]
        self.dense = sch["dense"]
        self.cats = []
        for c in sch["categorical"]:
            seed = int(c["seed"])
            if c["hash"] != "xxh3_64":
                raise FormatError("categorical %r: hash %r unsupported" % (c["name"], c["hash"]))
            tab = self.tensors[c["table"]]
            if tab.shape != (c["buckets"] + 1, c["dim"]):
                raise FormatError("table %r: shape %s" % (c["table"], tab.shape))
            self.cats.append(dict(name=c["name"], seed=seed, buckets=c["buckets"],
                                  dim=c["dim"], table=tab))
        mlp = header["mlp"]
        self.activation = mlp["activation"]
        self.beta = float(mlp["beta"])
        self.layers = []
        prev = len(self.dense) + sum(c["dim"] for c in self.cats)
        for lay in mlp["layers"]:
            w, b = self.tensors[lay["weight"]], self.tensors[lay["bias"]]
            if lay["in"] != prev or w.shape != (lay["in"], lay["out"]) or b.shape != (lay["out"],):
                raise FormatError("layer %r: broken chain or shape" % lay["weight"])
            prev = lay["out"]
            self.layers.append((w, b))
        if prev != 1:
            raise FormatError("last layer out is %d, not 1" % prev)
        self.features = [d["name"] for d in self.dense] + [c["name"] for c in self.cats]
        self.feature_set = set(self.features)


def dense_columns(dense_defs, raw):
    """float32 [B, n_dense] MLP inputs from float64 raw values (NaN = missing),
    column by column: the same rule as dense_value, vectorized."""
    out = np.zeros(raw.shape, dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        for i, d in enumerate(dense_defs):
            x = raw[:, i]
            t = d["transform"]
            if t == "log1p":
                v = np.log1p(np.maximum(x, 0.0))
            elif t == "standardize":
                v = (x - d["mean"]) / d["std"]
            else:
                v = x.copy()
            np.clip(v, -FLT_MAX, FLT_MAX, out=v)
            v[np.isnan(x)] = 0.0
            out[:, i] = v.astype(np.float32)
    return out
