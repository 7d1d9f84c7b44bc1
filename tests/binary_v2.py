#!/usr/bin/env python3
"""binary_v2.py - Triton's binary tensor data extension against a real ctrd
(tests/test_server_binary.sh; bench/bench_binary.sh writes its bodies).

  binary_v2.py pairs PORT MODEL N      N requests, each sent as JSON and as
                                       binary (every datatype mix, binary and
                                       JSON outputs): the score bits must be equal
  binary_v2.py hostile PORT MODEL      hostile binary bodies: 400 + error code,
                                       and the server still scores afterwards
  binary_v2.py seeds DIR               the fuzz target's seed corpus into DIR
  binary_v2.py write DIR B             a B-example request as DIR/req.json and
                                       DIR/req.bin (+ DIR/req.bin.hlen)

The model is 13 dense + 26 categorical features (ctrtool synth). Every
wait is bounded (socket timeout 10 s); loopback only.
"""
import http.client
import json
import math
import random
import struct
import sys

ND, NC = 13, 26
IHCL = "Inference-Header-Content-Length"


def rand_str(rng):
    k = rng.randrange(8)
    if k == 0:
        return ""                        # the missing value
    if k == 1:
        return rng.choice(["caf\u00e9", "\u65e5\u672c", "\U0001f600x", "a\"b\\c", "\u0001ctl"])
    return "%x" % rng.getrandbits(rng.choice([8, 32, 64]))


def rand_int64(rng):
    k = rng.randrange(6)
    if k == 0:
        return rng.choice([0, -1, 2 ** 63 - 1, -2 ** 63, 2 ** 53 + 1])
    return rng.randrange(-2 ** 40, 2 ** 40)


def rand_dense(rng, dt):
    k = rng.randrange(10)
    if dt == "INT64":
        return rand_int64(rng) if k else rng.randrange(-1000, 1000)
    if k == 0:
        return float("nan")              # missing, like null
    if k == 1:
        v = rng.choice([0.0, -0.0, 1e30, -1e-30, 3.0])
    else:
        v = rng.uniform(-50, 500) if k < 8 else rng.lognormvariate(0, 5)
    if dt == "FP32":
        v = struct.unpack("<f", struct.pack("<f", v))[0]
    return v


def build(rng, b, dense_dt="FP32", sparse_dt="BYTES", binary_out=None, req_binary_out=False,
          rid="r"):
    """(json_body, binary_body, header_len) of the same request."""
    dense = [rand_dense(rng, dense_dt) for _ in range(b * ND)]
    if sparse_dt == "BYTES":
        sparse = [rand_str(rng) for _ in range(b * NC)]
    else:
        sparse = [rand_int64(rng) for _ in range(b * NC)]

    def jdense(v):
        if isinstance(v, float) and math.isnan(v):
            return None
        return v                          # repr: the exact double

    outputs = None
    if binary_out is not None:
        outputs = [{"name": "score", "parameters": {"binary_data": binary_out}}]
    params = {"binary_data_output": True} if req_binary_out else None

    jb = {"id": rid, "inputs": [
        {"name": "dense", "datatype": "FP32", "shape": [b, ND],
         "data": [jdense(v) for v in dense]},
        {"name": "sparse", "datatype": sparse_dt, "shape": [b, NC],
         "data": [[sparse[i * NC + j] for j in range(NC)] for i in range(b)]}]}
    if outputs:
        jb["outputs"] = outputs
    if params:
        jb["parameters"] = params
    fmt = {"FP32": "<f", "FP64": "<d", "INT64": "<q"}[dense_dt]
    dbytes = b"".join(struct.pack(fmt, v) for v in dense)
    if sparse_dt == "BYTES":
        sbytes = b"".join(struct.pack("<I", len(s.encode())) + s.encode() for s in sparse)
    else:
        sbytes = b"".join(struct.pack("<q", v) for v in sparse)
    hb = {"id": rid, "inputs": [
        {"name": "dense", "datatype": dense_dt, "shape": [b, ND],
         "parameters": {"binary_data_size": len(dbytes)}},
        {"name": "sparse", "datatype": sparse_dt, "shape": [b, NC],
         "parameters": {"binary_data_size": len(sbytes)}}]}
    if outputs:
        hb["outputs"] = outputs
    if params:
        hb["parameters"] = params
    header = json.dumps(hb).encode()
    return json.dumps(jb).encode(), header + dbytes + sbytes, len(header)


class Client:
    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)

    def post(self, path, body, headers):
        h = {"Content-Type": "application/json"}
        h.update(headers)
        self.c.request("POST", path, body=body, headers=h)
        r = self.c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def score_bits(status, hdrs, data):
    """The scores' float32 bit patterns from a JSON or binary answer."""
    if status != 200:
        raise ValueError("status %d: %r" % (status, data[:300]))
    if IHCL.lower() in hdrs:
        hl = int(hdrs[IHCL.lower()])
        head = json.loads(data[:hl])
        out = head["outputs"][0]
        assert "data" not in out, head
        n = out["shape"][0]
        assert out["parameters"]["binary_data_size"] == 4 * n, head
        assert len(data) == hl + 4 * n, (len(data), hl, n)
        assert hdrs.get("content-type") == "application/octet-stream", hdrs
        return [struct.unpack("<I", data[hl + 4 * i:hl + 4 * i + 4])[0] for i in range(n)], True
    assert hdrs.get("content-type", "").startswith("application/json"), hdrs
    out = json.loads(data)["outputs"][0]
    return [struct.unpack("<I", struct.pack("<f", v))[0] for v in out["data"]], False


def pairs(port, model, n):
    rng = random.Random(14)
    c = Client(port)
    path = "/v2/models/%s/infer" % model
    fails = 0
    kinds = {}
    for k in range(n):
        ddt = ("FP32", "FP64", "INT64")[k % 3]
        sdt = ("BYTES", "INT64")[(k // 3) % 2]
        bout = (None, True, False)[k % 3 if k % 5 else 0]
        rbout = k % 7 == 3
        b = rng.choice([1, 2, 3, 17, 64])
        jbody, bbody, hl = build(rng, b, ddt, sdt, bout, rbout, "pair-%d" % k)
        want_bin = bout if bout is not None else rbout
        sj, hj, dj = c.post(path, jbody, {})
        sb, hb, db = c.post(path, bbody, {IHCL: str(hl)})
        try:
            bits_j, isbin_j = score_bits(sj, hj, dj)
            bits_b, isbin_b = score_bits(sb, hb, db)
        except (ValueError, AssertionError, KeyError) as e:
            print("FAIL: request %d (%s/%s b=%d): %s" % (k, ddt, sdt, b, e))
            fails += 1
            continue
        if isbin_j != want_bin or isbin_b != want_bin:
            print("FAIL: request %d: binary output %s/%s, asked %s" % (k, isbin_j, isbin_b, want_bin))
            fails += 1
        if bits_j != bits_b or len(bits_j) != b:
            print("FAIL: request %d (%s/%s b=%d): score bits differ" % (k, ddt, sdt, b))
            fails += 1
        kinds[(ddt, sdt, want_bin)] = kinds.get((ddt, sdt, want_bin), 0) + 1
    print("pairs: %d requests, %d kinds (dense/sparse/binary out), %d failures" %
          (n, len(kinds), fails))
    return fails


def hostile(port, model):
    rng = random.Random(7)
    c = Client(port)
    path = "/v2/models/%s/infer" % model
    _, good, hl = build(rng, 2, "FP32", "BYTES", rid="h")
    head, tail = good[:hl], good[hl:]
    dsz = 2 * ND * 4

    def hdr(dsize, ssize, ddt="FP32", sdt="BYTES", extra_dense=None):
        d = {"name": "dense", "datatype": ddt, "shape": [2, ND],
             "parameters": {"binary_data_size": dsize}}
        if extra_dense:
            d.update(extra_dense)
        h = {"inputs": [d, {"name": "sparse", "datatype": sdt, "shape": [2, NC],
                            "parameters": {"binary_data_size": ssize}}]}
        return json.dumps(h).encode()

    ssz = len(tail) - dsz
    cases = []
    cases.append(("header length beyond the body", good, str(len(good) + 1), "bad_header_length"))
    cases.append(("header length not a number", good, "12x", "bad_header_length"))
    cases.append(("header length negative", good, "-5", "bad_header_length"))
    cases.append(("header length huge", good, "99999999999999999999999", "bad_header_length"))
    cases.append(("header cut inside the JSON", good, str(hl - 3), "malformed_json"))
    cases.append(("JSON header not JSON", b"\x00\x01garbage" + tail, "9", "malformed_json"))
    cases.append(("trailing bytes", good + b"\x00\x00\x00", str(hl), "trailing_binary_data"))
    h = hdr(dsz - 4, ssz + 4)
    cases.append(("dense size disagrees with shape", h + tail, str(len(h)), "bad_binary_size"))
    h = hdr(dsz, ssz + 10 ** 6)
    cases.append(("sparse size past the end", h + tail, str(len(h)), "bad_binary_size"))
    h = hdr(2 ** 64 - 1, ssz)
    cases.append(("size overflows 64 bits", h + tail, str(len(h)), "bad_binary_size"))
    h = hdr(2 ** 63 - 1, ssz)
    cases.append(("size near 2^63", h + tail, str(len(h)), "bad_binary_size"))
    h = hdr(-4, ssz)
    cases.append(("negative size", h + tail, str(len(h)), "bad_binary_size"))
    # A BYTES element length running past the end of the input's data.
    bad_tail = tail[:dsz] + struct.pack("<I", 0xFFFFFFF0) + tail[dsz + 4:]
    cases.append(("BYTES length past the end", head + bad_tail, str(hl), "binary_data_overrun"))
    bad_tail = tail[:dsz] + struct.pack("<I", 65) + tail[dsz + 4:]
    cases.append(("BYTES element too long", head + bad_tail, str(hl), None))
    h = hdr(dsz, 3)
    cases.append(("BYTES data ends in a length", h + tail[:dsz + 3], str(len(h)), "bad_binary_size"))
    h = hdr(dsz, ssz, extra_dense={"data": [0.0] * (2 * ND)})
    cases.append(("binary_data_size and data", h + tail, str(len(h)), "conflicting_data"))
    h = hdr(dsz, ssz, ddt="FP16")
    cases.append(("dense FP16", h + tail, str(len(h)), "bad_datatype"))
    h = hdr(dsz, ssz, sdt="FP32")
    cases.append(("sparse FP32", h + tail, str(len(h)), "bad_datatype"))
    inf_tail = struct.pack("<f", float("inf")) + tail[4:]
    cases.append(("dense infinity", head + inf_tail, str(hl), "number_out_of_range"))
    utf_tail = tail[:dsz] + struct.pack("<I", 2) + b"\xc3\x28" + tail[dsz + 6:]
    # keep the sizes: replace the first sparse element with a 2-byte invalid one
    first = struct.unpack("<I", tail[dsz:dsz + 4])[0]
    if first == 2:
        cases.append(("BYTES invalid UTF-8", head + utf_tail, str(hl), "invalid_utf8"))
    fails = 0
    for what, body, hv, code in cases:
        s, hd, d = c.post(path, body, {IHCL: hv})
        text = d.decode("utf-8", "replace")
        try:
            err = json.loads(text)
        except ValueError:
            err = {}
        # The OIP error form: "error" is the message, the name beside it.
        okc = isinstance(err.get("error"), str) and (code is None or err.get("code") == code)
        if s not in (400, 413) or not okc:
            print("FAIL: %s: status %d, want 400 %s: %s" % (what, s, code, text[:300]))
            fails += 1
        else:
            print("ok: %s -> %d %s" % (what, s, text.strip()[:160]))
    s, hd, d = c.post(path, good, {IHCL: str(hl)})
    if s != 200:
        print("FAIL: the good binary request after the hostile ones: %d %r" % (s, d[:200]))
        fails += 1
    else:
        print("ok: the good binary request still scores")
    print("hostile: %d cases, %d failures" % (len(cases), fails))
    return fails


def write(dirname, b):
    rng = random.Random(64)
    jbody, bbody, hl = build(rng, int(b), "FP32", "BYTES", rid="bench")
    with open(dirname + "/req.json", "wb") as f:
        f.write(jbody)
    with open(dirname + "/req.bin", "wb") as f:
        f.write(bbody)
    with open(dirname + "/req.bin.hlen", "w") as f:
        f.write("%d\n" % hl)
    return 0


def seeds(dirname):
    """Seed corpus of tests/fuzz/fuzz_decode_v2_binary.c: 2 bytes (LE) of
    header length, then the body."""
    import hashlib
    rng = random.Random(99)
    out = []
    for k, (ddt, sdt) in enumerate([(d, s) for d in ("FP32", "FP64", "INT64")
                                    for s in ("BYTES", "INT64")]):
        for b in (1, 2):
            _, body, hl = build(rng, b, ddt, sdt, (None, True, False)[k % 3], k % 2 == 1,
                                "seed-%d" % k)
            out.append((hl, body))
    _, body, hl = build(rng, 2, "FP32", "BYTES")
    out += [(hl + 1, body), (len(body) + 7, body), (hl - 2, body), (hl, body + b"\x00"),
            (hl, body[:-1]), (0, body), (hl, body[:hl] + b"\xff" * (len(body) - hl))]
    # A JSON-only body (no binary input) and a mixed one (dense as JSON data).
    jbody, _, _ = build(rng, 1, "FP32", "INT64")
    out.append((len(jbody), jbody))
    mixed = json.loads(jbody)
    mixed["inputs"][1]["parameters"] = {"binary_data_size": NC * 8}
    del mixed["inputs"][1]["data"]
    mh = json.dumps(mixed).encode()
    out.append((len(mh), mh + b"".join(struct.pack("<q", i) for i in range(NC))))
    conflict = json.loads(jbody)
    conflict["inputs"][0]["parameters"] = {"binary_data_size": 0}
    ch = json.dumps(conflict).encode()
    out.append((len(ch), ch))
    for hl, body in out:
        data = struct.pack("<H", hl & 0xFFFF) + body
        name = hashlib.sha1(data).hexdigest()
        with open("%s/%s" % (dirname, name), "wb") as f:
            f.write(data)
    return 0


def main():
    a = sys.argv[1:]
    if len(a) == 4 and a[0] == "pairs":
        return 1 if pairs(a[1], a[2], int(a[3])) else 0
    if len(a) == 3 and a[0] == "hostile":
        return 1 if hostile(a[1], a[2]) else 0
    if len(a) == 2 and a[0] == "seeds":
        return seeds(a[1])
    if len(a) == 3 and a[0] == "write":
        return write(a[1], a[2])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
