"""Raw feature values to model inputs, the way ctrd does it.

A model scores correctly in ctrd only if it was trained on the inputs ctrd
builds from a request (docs/IMPORT.md, "What the model must have been
trained with"). This module builds them in Python, so a training pipeline
can use it and the parity test can feed the reference modules exactly
what the server computes:

- dense value x (a number, or None/absent = missing): the transform in
  double precision (identity x; log1p log(1 + max(x, 0)); standardize
  (x - mean) / std), clamped to +-FLT_MAX, rounded once to float32. A
  missing value is 0.0.
- categorical value (a string of at most 64 bytes or an integer):
  mapping hash: row = 1 + floor(XXH3_64(bytes, seed) * buckets / 2^64),
  an integer hashed as its decimal text; mapping mod: an integer v >= 0
  or a string of 1..16 hex digits (either case, no 0x) read as an
  unsigned integer v, row = v mod (buckets + 1). Missing: row 0.
- bag (bag.max set): a list of values, each mapped as above, filling the
  feature's first len(list) slots in order; the other slots are EMPTY
  (-1 here, CTR_EMPTY_SLOT in C). An absent, null or empty bag is all
  EMPTY (its embedding is zeros). A null element is an error.

`encode` returns (dense float32 [B, n_dense], rows int64 [B, slots]),
the layout the reference modules take (modules.CTRModel.forward).
"""

import math
import re

import numpy as np

from .xxh3 import xxh3_64

EMPTY = -1
FLT_MAX = float(np.finfo(np.float32).max)
MAX_CAT_BYTES = 64
_HEX = re.compile(r"[0-9A-Fa-f]{1,16}\Z")


class FeatureError(ValueError):
    """A value the server would refuse with 400."""


def dense_value(f, x):
    """One dense feature's input (a float32) from its raw value (None = missing)."""
    if x is None:
        return np.float32(0.0)
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise FeatureError("dense feature %s: expected a number or null (got %r)" % (f["name"], x))
    x = float(x)
    if x != x:
        return np.float32(0.0)
    t = f["transform"]
    if t == "log1p":
        v = math.log1p(x if x > 0.0 else 0.0)
    elif t == "standardize":
        v = (x - f["mean"]) / f["std"]
    else:
        v = x
    v = min(max(v, -FLT_MAX), FLT_MAX)
    return np.float32(v)


def cat_row(f, v):
    """The table row of one categorical value (not None) of feature f."""
    rows = f["buckets"] + 1
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise FeatureError("categorical feature %s: expected a string or an integer (got %r)"
                           % (f["name"], v))
    if f["mapping"] == "mod":
        if isinstance(v, int):
            if v < 0:
                raise FeatureError("categorical feature %s: mapping mod takes integers >= 0 (got %d)"
                                   % (f["name"], v))
            return v % rows
        if not _HEX.match(v):
            raise FeatureError("categorical feature %s: mapping mod takes 1..16 hex digits (got %r)"
                               % (f["name"], v))
        return int(v, 16) % rows
    b = str(v).encode("utf-8")
    if len(b) > MAX_CAT_BYTES:
        raise FeatureError("categorical feature %s: value over %d bytes" % (f["name"], MAX_CAT_BYTES))
    return 1 + ((xxh3_64(b, f["seed"]) * f["buckets"]) >> 64)


def encode(cfg, examples):
    """Encodes a list of example dicts {feature name: raw value} for cfg.

    Returns (dense, rows): float32 [B, n_dense] and int64 [B, slots] with
    EMPTY (-1) in unused bag slots. Raises FeatureError where the server
    answers 400.
    """
    n = len(examples)
    dense = np.zeros((n, len(cfg["dense"])), dtype=np.float32)
    n_slots = sum(f["bag"]["max"] if f["bag"] else 1 for f in cfg["categorical"])
    rows = np.full((n, n_slots), EMPTY, dtype=np.int64)
    for r, ex in enumerate(examples):
        for i, f in enumerate(cfg["dense"]):
            dense[r, i] = dense_value(f, ex.get(f["name"]))
        s = 0
        for f in cfg["categorical"]:
            v = ex.get(f["name"])
            if f["bag"] is None:
                if isinstance(v, list):
                    raise FeatureError("categorical feature %s: not a bag feature" % f["name"])
                rows[r, s] = 0 if v is None else cat_row(f, v)
                s += 1
                continue
            m = f["bag"]["max"]
            if v is not None:
                if not isinstance(v, list):
                    raise FeatureError("bag feature %s: expected a list of values (got %r)"
                                       % (f["name"], v))
                if len(v) > m:
                    raise FeatureError("bag feature %s: %d values, over its maximum %d"
                                       % (f["name"], len(v), m))
                for t, e in enumerate(v):
                    if e is None:
                        raise FeatureError("bag feature %s: element %d is null" % (f["name"], t))
                    rows[r, s + t] = cat_row(f, e)
            s += m
    return dense, rows
