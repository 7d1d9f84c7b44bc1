#!/usr/bin/env python3
"""bags_e2e.py - bag and `mod` features through a real ctrd
(tests/test_server_bags.sh), for a model of any architecture.

  bags_e2e.py check PORT SEED        the model's schema from /v1/models, then:
      - /v1/models and v2 metadata describe the architecture and each bag;
      - one batch sent as /v1/score (a bag in "context", bags as arrays of
        strings and integers, single values, null, []), as v2 JSON (each bag
        its own input, padded with null, "" or -1 anywhere) and as v2 binary
        tensor data: the same score bits, example for example;
      - every example alone scores the bits it had in the batch;
      - the refusals: a bag over its max, a null or nested element, an array
        for a single-valued feature, a value `mod` refuses, a v2 bag input
        wider than the max: 400 with the code, example and feature.
  bags_e2e.py csv PORT SEED OUT      rows with at most one value per bag (a
      data file has one value a column) as OUT.csv, their server scores
      (%.9g) as OUT.want: ctrtool score must print the same lines.

Every wait is bounded (socket timeout 10 s); loopback only.
"""
import http.client
import json
import random
import struct
import sys

IHCL = "Inference-Header-Content-Length"
FAILS = []


def check(cond, what):
    if cond:
        print("ok: " + what)
    else:
        print("FAIL: " + what)
        FAILS.append(what)


def call(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = dict(headers or {})
    if body is not None and "Content-Type" not in h:
        h["Content-Type"] = "application/json"
    if isinstance(body, str):
        body = body.encode()
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


class Schema:
    def __init__(self, port):
        st, data = call(port, "GET", "/v1/models")
        assert st == 200, data
        self.info = json.loads(data)["models"][0]
        self.name = self.info["name"]
        self.dense = [d["name"] for d in self.info["schema"]["dense"]]
        self.cat = self.info["schema"]["categorical"]
        self.bags = [c for c in self.cat if "bag" in c]
        self.single = [c for c in self.cat if "bag" not in c]


def rand_value(rng, c, as_int=None):
    """One value of feature c (a dict from /v1/models)."""
    if as_int is None:
        as_int = rng.randrange(4) == 0
    if c["mapping"] == "mod":
        v = rng.getrandbits(rng.choice([8, 32, 63]))
        if as_int:
            return v
        s = "%x" % v
        return s.upper() if rng.randrange(3) == 0 else s
    if as_int:
        return rng.randrange(-2 ** 40, 2 ** 40)
    return rng.choice(["%08x" % rng.getrandbits(32), "u%d" % rng.randrange(50), "caf\u00e9"])


def make_examples(rng, sc, n, max_one=False):
    """Examples as {feature: value}; bags as lists (maybe empty), some
    features absent, some null."""
    out = []
    for _ in range(n):
        ex = {}
        for d in sc.dense:
            k = rng.randrange(8)
            if k == 0:
                continue
            ex[d] = None if k == 1 else rng.choice([rng.randrange(100), rng.uniform(-5, 50)])
        for c in sc.cat:
            k = rng.randrange(10)
            if k == 0:
                continue                     # absent
            if k == 1:
                ex[c["name"]] = None
                continue
            if "bag" in c:
                m = rng.randrange(c["bag"]["max"] + 1)
                if max_one:
                    m = min(m, 1)
                ex[c["name"]] = [rand_value(rng, c) for _ in range(m)]
            else:
                ex[c["name"]] = rand_value(rng, c)
        out.append(ex)
    return out


def v1_body(examples, context=None, rid="b"):
    b = {"request_id": rid, "examples": examples}
    if context:
        b["context"] = context
    return json.dumps(b)


def merged(ex, context):
    e = dict(ex)
    for k, v in (context or {}).items():
        e[k] = v
    return e


def bag_rows(rng, vals, width, dt):
    """A bag's values as a row of width elements, padding anywhere."""
    pad_null = rng.randrange(2) == 0
    row, i = [], 0
    for t in range(width):
        left, need = width - t, len(vals) - i
        if need and (left == need or rng.randrange(3)):
            row.append(vals[i])
            i += 1
        else:
            row.append(None if pad_null else ("" if dt == "BYTES" else -1))
    assert i == len(vals)
    return row


def as_text(c, v):
    """A value as the string that maps to the same row: an integer's
    decimal text for `hash`, its hex digits for `mod`."""
    if v is None or isinstance(v, str):
        return v
    return ("%x" % v) if c["mapping"] == "mod" else str(v)


def v2_forms(rng, sc, examples):
    """The v2 JSON body and the binary body (header length, bytes) of the
    examples (context already merged)."""
    n = len(examples)
    dense = [[e.get(d) for d in sc.dense] for e in examples]
    sparse = [[as_text(c, e.get(c["name"])) for c in sc.single] for e in examples]
    inputs = [{"name": "dense", "datatype": "FP32", "shape": [n, len(sc.dense)], "data": dense},
              {"name": "sparse", "datatype": "BYTES", "shape": [n, len(sc.single)], "data": sparse}]
    bin_inputs, blobs = [], []
    dd = b"".join(struct.pack("<d", float("nan") if v is None else float(v))
                  for row in dense for v in row)
    bin_inputs.append({"name": "dense", "datatype": "FP64", "shape": [n, len(sc.dense)],
                       "parameters": {"binary_data_size": len(dd)}})
    blobs.append(dd)
    sb = b"".join(struct.pack("<I", len(x)) + x for row in sparse
                  for x in [(v or "").encode() for v in row])
    bin_inputs.append({"name": "sparse", "datatype": "BYTES", "shape": [n, len(sc.single)],
                       "parameters": {"binary_data_size": len(sb)}})
    blobs.append(sb)
    for c in sc.bags:
        vals = []
        for e in examples:
            v = e.get(c["name"])
            vals.append([] if v is None else (v if isinstance(v, list) else [v]))
        # INT64 when every value is an integer (and -1 is not one), else BYTES
        ints = all(isinstance(x, int) and x != -1 for vs in vals for x in vs)
        dt = "INT64" if ints and rng.randrange(2) else "BYTES"
        width = rng.randrange(max([len(vs) for vs in vals] + [0]), c["bag"]["max"] + 1)
        rows = [bag_rows(rng, vs if dt == "INT64" else [as_text(c, x) for x in vs], width, dt)
                for vs in vals]
        inputs.append({"name": c["name"], "datatype": dt, "shape": [n, width], "data": rows})
        if dt == "INT64":
            blob = b"".join(struct.pack("<q", -1 if x is None else x) for r in rows for x in r)
        else:
            blob = b"".join(struct.pack("<I", len(x)) + x for r in rows
                            for x in [(v or "").encode() for v in r])
        bin_inputs.append({"name": c["name"], "datatype": dt, "shape": [n, width],
                           "parameters": {"binary_data_size": len(blob)}})
        blobs.append(blob)
    rng.shuffle(inputs)
    order = list(range(len(bin_inputs)))
    rng.shuffle(order)
    head = json.dumps({"id": "bin", "inputs": [bin_inputs[i] for i in order]}).encode()
    return json.dumps({"id": "v2", "inputs": inputs}), head, b"".join(blobs[i] for i in order)


def v1_scores(port, body):
    st, data = call(port, "POST", "/v1/score", body)
    if st != 200:
        return st, data.decode(errors="replace")
    return st, [bits(x) for x in json.loads(data)["scores"]]


def v2_scores(port, name, body, hlen=None):
    h = {IHCL: str(hlen)} if hlen is not None else None
    st, data = call(port, "POST", "/v2/models/%s/infer" % name, body, h)
    if st != 200:
        return st, data.decode(errors="replace")
    return st, [bits(x) for x in json.loads(data)["outputs"][0]["data"]]


def check_metadata(port, sc):
    info = sc.info
    check(info.get("arch") in ("mlp", "dot", "dcnv2", "wukong"), "/v1/models arch %s" % info.get("arch"))
    slots = sum(c["bag"]["max"] if "bag" in c else 1 for c in sc.cat)
    check(info.get("slots") == slots, "/v1/models slots %s == %d" % (info.get("slots"), slots))
    check(all(c["mapping"] in ("hash", "mod") for c in sc.cat), "every feature has its mapping")
    check(len(sc.bags) > 0 and all(c["bag"]["pool"] in ("sum", "mean") for c in sc.bags),
          "/v1/models bags: " + ", ".join("%s max %d %s" % (c["name"], c["bag"]["max"],
                                                            c["bag"]["pool"]) for c in sc.bags))
    st, data = call(port, "GET", "/v2/models/" + sc.name)
    md = json.loads(data)
    ins = {i["name"]: i for i in md["inputs"]}
    check(st == 200 and ins["sparse"]["shape"] == [-1, len(sc.single)], "v2 metadata: sparse [-1, %d]" % len(sc.single))
    check(all(ins.get(c["name"], {}).get("shape") == [-1, c["bag"]["max"]] for c in sc.bags),
          "v2 metadata: one input per bag, [-1, max]")
    p = md["parameters"]
    check(p.get("arch") == info.get("arch") and [b["name"] for b in p["bag_features"]] ==
          [c["name"] for c in sc.bags] and p["sparse_features"] == [c["name"] for c in sc.single],
          "v2 metadata parameters: arch, bag_features, sparse_features")


def check_refusals(port, sc):
    b0 = sc.bags[0]
    s0 = sc.single[0]
    cases = [
        ({b0["name"]: ["a"] * (b0["bag"]["max"] + 1)}, "bag_too_long", b0["name"]),
        ({b0["name"]: ["1", None]}, "wrong_type", b0["name"]),
        ({b0["name"]: [["1"]]}, "wrong_type", b0["name"]),
        ({s0["name"]: ["1"]}, "wrong_type", s0["name"]),
    ]
    mods = [c for c in sc.cat if c["mapping"] == "mod"]
    if mods:
        m = mods[0]
        cases.append(({m["name"]: (["xyz"] if "bag" in m else "xyz")}, "invalid_value", m["name"]))
        cases.append(({m["name"]: ([-5] if "bag" in m else -5)}, "invalid_value", m["name"]))
    for ex, code, feat in cases:
        st, data = call(port, "POST", "/v1/score", json.dumps({"examples": [{}, ex]}))
        try:
            e = json.loads(data).get("error", {})   # v1: {"error": {"code", ...}}
        except ValueError:
            e = {}
        check(st == 400 and e.get("code") == code and e.get("example") == 1 and
              e.get("feature") == feat, "v1 %s: 400 %s example 1 feature %s (%d %s)" %
              (json.dumps(ex)[:60], code, feat, st, data[:160]))
    n = b0["bag"]["max"] + 1
    body = {"inputs": [{"name": b0["name"], "datatype": "BYTES", "shape": [1, n], "data": [["a"] * n]}]}
    st, data = call(port, "POST", "/v2/models/%s/infer" % sc.name, json.dumps(body))
    check(st == 400 and json.loads(data).get("code") == "bad_shape",
          "v2 bag input wider than its max: 400 bad_shape")


def cmd_check(port, seed):
    sc = Schema(port)
    rng = random.Random(seed)
    check_metadata(port, sc)
    for t in range(6):
        n = rng.randrange(1, 12)
        exs = make_examples(rng, sc, n)
        context = None
        if t % 2:
            b = sc.bags[-1]
            context = {b["name"]: [rand_value(rng, b) for _ in range(rng.randrange(1, b["bag"]["max"] + 1))]}
            for e in exs:
                e.pop(b["name"], None)
        st, s1 = v1_scores(port, v1_body(exs, context))
        check(st == 200 and len(s1) == n, "v1 batch of %d (bags as arrays%s): %s" %
              (n, ", a bag in context" if context else "", st))
        if st != 200:
            print(s1)
            continue
        full = [merged(e, context) for e in exs]
        body, head, blob = v2_forms(rng, sc, full)
        st, s2 = v2_scores(port, sc.name, body)
        check(st == 200 and s2 == s1, "v2 JSON (bags as padded inputs): the same %d score bits" % n)
        st, s3 = v2_scores(port, sc.name, head + blob, len(head))
        check(st == 200 and s3 == s1, "v2 binary: the same %d score bits" % n)
        alone = []
        for e in full:
            st, s = v1_scores(port, v1_body([e]))
            alone += s if st == 200 else [None]
        check(alone == s1, "each of the %d examples alone: the bits it had in the batch" % n)
    check_refusals(port, sc)
    return 1 if FAILS else 0


def cmd_csv(port, seed, out):
    sc = Schema(port)
    rng = random.Random(seed)
    exs = make_examples(rng, sc, 40, max_one=True)
    cols = sc.dense + [c["name"] for c in sc.cat]
    feat = {c["name"]: c for c in sc.cat}
    with open(out + ".csv", "w") as f:
        f.write(",".join(cols) + "\n")
        for e in exs:
            row = []
            for k in cols:
                v = e.get(k)
                if isinstance(v, list):
                    v = v[0] if v else None
                if isinstance(v, float):
                    v = repr(v)
                elif k in feat:
                    v = as_text(feat[k], v)
                row.append("" if v is None or v == "" else str(v))
            f.write(",".join(row) + "\n")
    # An empty CSV field is missing: send what the file says.
    sent = []
    for e in exs:
        s = {}
        for k, v in e.items():
            if isinstance(v, list):
                v = v[0] if v else None
            if v is not None and v != "":
                s[k] = float(repr(v)) if isinstance(v, float) else v
        sent.append(s)
    st, data = call(port, "POST", "/v1/score", json.dumps({"examples": sent}))
    if st != 200:
        print("FAIL: scoring the csv rows: %d %s" % (st, data[:200]))
        return 1
    with open(out + ".want", "w") as f:
        for x in json.loads(data)["scores"]:
            f.write("%.9g\n" % x)
    return 0


def main(argv):
    if len(argv) >= 4 and argv[1] == "check":
        return cmd_check(int(argv[2]), int(argv[3]))
    if len(argv) >= 5 and argv[1] == "csv":
        return cmd_csv(int(argv[2]), int(argv[3]), argv[4])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
