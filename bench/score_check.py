#!/usr/bin/python3
"""score_check.py - send the same /v1/score requests to two servers (ctrd and
bench/torch_server.py) and check that they agree: every score within --tol
(1e-6), the same model digest, the same status for bad requests.

    score_check.py --url-a http://127.0.0.1:P --url-b http://127.0.0.1:Q \\
                   --tsv ROWS.tsv [--max-rows N] [--tol 1e-6] [--json OUT]

ROWS.tsv is Criteo-shaped (label, I1..I13, C1..C26, tab-separated, empty =
missing: `ctrtool gen-data` output or the Criteo sample). Requests are cut
from it in sizes 1, 3, 64, 17, 256, 8 in turn; every third request moves the
first example's user-side features (I1..I6, C1..C13) to "context" for all
its examples, every fourth sends some categorical values as JSON integers
and some dense values as decimals or negatives. A few hand-written edge
cases (empty and 64-byte strings, unicode, huge counts) and bad requests
(unknown feature, wrong types, NaN) follow. Exit 0 when all agree, 1
otherwise; the summary (and --json) gives counts, the largest difference
and how many scores were bit-identical.
"""

import argparse
import http.client
import json
import lzma
import struct
import sys
import urllib.parse

SIZES = [1, 3, 64, 17, 256, 8]
USER_DENSE = ["I%d" % i for i in range(1, 7)]
USER_CAT = ["C%d" % i for i in range(1, 14)]


def read_rows(path, limit):
    op = lzma.open if path.endswith(".xz") else open
    rows = []
    with op(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) == 39:  # no label
                p = [""] + p
            if len(p) != 40:
                continue
            ex = {}
            for i in range(13):
                if p[1 + i] != "":
                    ex["I%d" % (i + 1)] = int(p[1 + i])
            for i in range(26):
                if p[14 + i] != "":
                    ex["C%d" % (i + 1)] = p[14 + i]
            rows.append(ex)
            if len(rows) >= limit:
                break
    return rows


def bodies(rows):
    out, pos, n = [], 0, 0
    while pos < len(rows):
        size = SIZES[n % len(SIZES)]
        exs = [dict(r) for r in rows[pos:pos + size]]
        pos += size
        body = {"request_id": "check-%d" % n}
        if n % 3 == 2:
            ctx = {k: v for k, v in exs[0].items() if k in USER_DENSE or k in USER_CAT}
            for ex in exs:
                for k in USER_DENSE + USER_CAT:
                    ex.pop(k, None)
            body["context"] = ctx
        if n % 4 == 3:
            for i, ex in enumerate(exs):
                for k in ("C2", "C7", "C20"):
                    v = ex.get(k)
                    if isinstance(v, str):
                        try:
                            ex[k] = int(v, 16) - (1 << 31) * (i % 2)
                        except ValueError:
                            pass
                if "I3" in ex:
                    ex["I3"] = ex["I3"] + 0.375
                if "I4" in ex and i % 3 == 0:
                    ex["I4"] = -ex["I4"]
        body["examples"] = exs
        out.append(("ok", body))
        n += 1
    edge = [
        {"C1": "", "C2": "x" * 64, "C3": "\u00e9t\u00e9 \u2603", "I1": 0, "I2": 1e15},
        {"C4": 0, "C5": -1, "C6": 9223372036854775807, "C7": -9223372036854775808},
        {"I5": 2.5e-300, "I6": -1e300, "I7": 1e300, "C8": "68fd1e64"},
        {},
    ]
    out.append(("ok", {"request_id": "edge", "examples": edge}))
    bad = [
        {"examples": [{"nope": 1}]},
        {"examples": [{"I1": "3"}]},
        {"examples": [{"C1": 1.5}]},
        {"examples": [{"C1": "y" * 65}]},
        {"examples": []},
        {"context": {"C1": "a"}, "examples": [{"C1": "b"}]},
    ]
    for b in bad:
        out.append(("bad", b))
    out.append(("bad", '{"examples":[{"I1":NaN}]}'))
    out.append(("bad", '{"examples":[{"I1":1}'))
    return out


class Client:
    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)

    def post(self, body):
        data = body if isinstance(body, str) else json.dumps(body)
        self.conn.request("POST", "/v1/score", body=data.encode(),
                          headers={"Content-Type": "application/json"})
        r = self.conn.getresponse()
        return r.status, r.read()


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url-a", required=True)
    ap.add_argument("--url-b", required=True)
    ap.add_argument("--tsv", required=True)
    ap.add_argument("--max-rows", type=int, default=5000)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--json")
    a = ap.parse_args()

    ca, cb = Client(a.url_a), Client(a.url_b)
    res = dict(requests=0, examples=0, bad_requests=0, mismatched_status=0,
               digest_mismatch=0, over_tol=0, identical_bits=0, max_abs_diff=0.0,
               worst=None, tol=a.tol)
    for kind, body in bodies(read_rows(a.tsv, a.max_rows)):
        sa, ra = ca.post(body)
        sb, rb = cb.post(body)
        res["requests"] += 1
        if kind == "bad":
            res["bad_requests"] += 1
            if sa != sb or sa < 400:
                res["mismatched_status"] += 1
                print("status differs on a bad request: %d vs %d: %s" % (sa, sb, str(body)[:120]))
            continue
        if sa != 200 or sb != 200:
            res["mismatched_status"] += 1
            print("status %d vs %d: %s / %s" % (sa, sb, ra[:200], rb[:200]))
            continue
        ja, jb = json.loads(ra), json.loads(rb)
        if ja["model"]["digest"] != jb["model"]["digest"]:
            res["digest_mismatch"] += 1
        if ja.get("request_id") != jb.get("request_id"):
            res["mismatched_status"] += 1
            print("request_id differs: %r vs %r" % (ja.get("request_id"), jb.get("request_id")))
        for i, (x, y) in enumerate(zip(ja["scores"], jb["scores"])):
            d = abs(x - y)
            res["examples"] += 1
            if f32_bits(x) == f32_bits(y):
                res["identical_bits"] += 1
            if d > res["max_abs_diff"]:
                res["max_abs_diff"] = d
                res["worst"] = dict(request=body.get("request_id"), example=i, a=x, b=y)
            if d > a.tol:
                res["over_tol"] += 1
        if len(ja["scores"]) != len(jb["scores"]):
            res["mismatched_status"] += 1
    ok = (res["over_tol"] == 0 and res["mismatched_status"] == 0 and res["digest_mismatch"] == 0
          and res["examples"] > 0)
    res["ok"] = ok
    print("score check: %d requests (%d bad ones), %d examples; max |a - b| = %.3g (tol %.0e), "
          "%d over tol, %d of %d bit-identical, status/id mismatches %d, digest mismatches %d: %s" % (
              res["requests"], res["bad_requests"], res["examples"], res["max_abs_diff"], a.tol,
              res["over_tol"], res["identical_bits"], res["examples"], res["mismatched_status"],
              res["digest_mismatch"], "PASS" if ok else "FAIL"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
