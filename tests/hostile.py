#!/usr/bin/env python3
"""hostile.py - raw-socket hostile HTTP clients for ctrd's end-to-end tests
(tests/test_hostile_*.sh). Loopback only; every loop is bounded in count and
in time. Standard library only.

    hostile.py cases PORT MODEL_NAME      the table of malformed and abusive
                                          requests, each with its expected
                                          status and error code
    hostile.py slowloris PORT [--conns N] [--seconds S] [--rate R]
                                          N connections trickling one byte a
                                          second while a normal client sends
                                          R requests/s; prints its p50/p99
    hostile.py flood PORT --conns N       N more connections than the server
                                          takes, then a normal request
    hostile.py vanish PORT [--rounds N]   clients that disconnect mid-request
                                          and mid-response (reset and FIN)
    hostile.py latency PORT [--seconds S] [--rate R]
                                          the normal client alone (baseline)
    hostile.py idload PORT --out FILE [--seconds S] [--conns N] [--prefix P]
                  [--stop FILE]           N keep-alive clients sending numbered
                                          requests (request_id P-c-i) as fast
                                          as answered for S seconds (or until
                                          FILE exists), through server deaths
                                          (reconnecting); writes "ID STATUS"
                                          per request (000: no answer)

Each prints one line per check, "ok: ..." or "FAIL: ...", and exits 1 when
any check failed, 2 on a usage or set-up problem.
"""

import json
import os
import select
import socket
import struct
import sys
import threading
import time

HOST = "127.0.0.1"
FAILS = 0
CHECKS = 0


def ok(msg):
    global CHECKS
    CHECKS += 1
    print("ok: " + msg, flush=True)


def fail(msg):
    global FAILS
    FAILS += 1
    print("FAIL: " + msg, flush=True)


# ---- raw HTTP ----------------------------------------------------------


def build(body=b"", path="/v1/score", method="POST", ctype="application/json",
          length="auto", version="HTTP/1.1", headers=(), host=True, te=None):
    """One request as bytes. length: "auto" (the real one), None (no
    Content-Length header) or any value to send as is (a lie). te: a
    Transfer-Encoding value; with "chunked" the body is sent as one chunk
    plus the last chunk unless it is already bytes framed by the caller
    (pass te="chunked-raw")."""
    if isinstance(body, str):
        body = body.encode()
    lines = ["%s %s %s" % (method, path, version)]
    if host:
        lines.append("Host: 127.0.0.1")
    if ctype is not None:
        lines.append("Content-Type: " + ctype)
    if te == "chunked":
        lines.append("Transfer-Encoding: chunked")
        body = (b"%x\r\n" % len(body) + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    elif te == "chunked-raw":
        lines.append("Transfer-Encoding: chunked")
    elif te is not None:
        lines.append("Transfer-Encoding: " + te)
    if length == "auto" and te is None:
        lines.append("Content-Length: %d" % len(body))
    elif length not in ("auto", None):
        lines.append("Content-Length: %s" % length)
    lines.extend(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def code(self):
        """The JSON error code, or None when the body is not our error JSON:
        {"error":{"code":...}} (v1) or {"error":"<message>","code":...}
        (every /v2 path, the Open Inference Protocol's form)."""
        try:
            j = json.loads(self.body)
            if isinstance(j["error"], str):
                return j["code"]
            return j["error"]["code"]
        except Exception:
            return None

    def json(self):
        try:
            return json.loads(self.body)
        except Exception:
            return None


def _parse_one(buf, head_only=False):
    """(Response, rest) or (None, buf) when buf does not hold a whole one."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None, buf
    head = buf[:end].decode("latin-1").split("\r\n")
    parts = head[0].split(" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        raise ValueError("bad status line %r" % head[0])
    headers = {}
    for h in head[1:]:
        k, _, v = h.partition(":")
        headers[k.strip().lower()] = v.strip()
    rest = buf[end + 4:]
    if head_only:
        return Response(status, headers, b""), rest
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        pos = 0
        while True:
            nl = rest.find(b"\r\n", pos)
            if nl < 0:
                return None, buf
            n = int(rest[pos:nl].split(b";")[0], 16)
            if len(rest) < nl + 2 + n + 2:
                return None, buf
            body += rest[nl + 2:nl + 2 + n]
            pos = nl + 2 + n + 2
            if n == 0:
                return Response(status, headers, body), rest[pos:]
    n = int(headers.get("content-length", "0"))
    if len(rest) < n:
        return None, buf
    return Response(status, headers, rest[:n]), rest[n:]


def exchange(port, chunks, want=1, timeout=5.0, pause=0.0, head_only=False, linger_rst=False):
    """Sends chunks (bytes or a list of bytes, `pause` seconds apart) on a
    new connection, reads up to `want` responses. Returns (responses,
    closed): closed is True when the server ended the connection (FIN or
    reset) before `want` responses came; False on a timeout with the
    connection still open."""
    if isinstance(chunks, bytes):
        chunks = [chunks]
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    responses, buf, closed = [], b"", False
    deadline = time.monotonic() + timeout
    try:
        for i, c in enumerate(chunks):
            if i and pause:
                time.sleep(pause)
            try:
                s.sendall(c)
            except (BrokenPipeError, ConnectionResetError):
                break       # the server answered early and closed: read what came
        while len(responses) < want:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                data = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not data:
                closed = True
                break
            buf += data
            while len(responses) < want:
                r, buf = _parse_one(buf, head_only)
                if r is None:
                    break
                responses.append(r)
    finally:
        if linger_rst:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    return responses, closed


def score_body(i, rid=None):
    ex = {"I1": i, "I2": i * 7 % 100 + 0.25, "I3": -(i % 5), "I5": None,
          "C1": "%08x" % (i * 2654435761 % 4294967296), "C2": "u%d" % (i % 13), "C3": i * 31}
    d = {"examples": [ex]}
    if rid is not None:
        d = {"request_id": rid, "examples": [ex]}
    return json.dumps(d, separators=(",", ":"))


# ---- the case table ----------------------------------------------------

CLOSED = "closed"       # the server hangs up without an answer


def v2_inputs(b=1, dense_dt="FP32", sparse_dt="BYTES", dshape=None, sshape=None,
              ddata=None, sdata=None):
    dshape = dshape if dshape is not None else [b, 13]
    sshape = sshape if sshape is not None else [b, 26]
    ddata = ddata if ddata is not None else [1.0] * (b * 13)
    sdata = sdata if sdata is not None else ["v%d" % k for k in range(b * 26)]
    return [{"name": "dense", "datatype": dense_dt, "shape": dshape, "data": ddata},
            {"name": "sparse", "datatype": sparse_dt, "shape": sshape, "data": sdata}]


def cases(model):
    """(name, raw request bytes, expected outcomes, options). An outcome is
    (status, code) with code None for a 2xx or an answer without a JSON
    error body (libmicrohttpd's own), or CLOSED. The expected answers are
    those of ctrd on Debian 12's libmicrohttpd 0.9.75; where a header trick
    is answered by libmicrohttpd itself, another version may differ.
    options: want (responses), closes (the server must also hang up),
    head_only, timeout, rids / sequence (pipelining)."""
    C = []
    V2 = "/v2/models/%s/infer" % model

    def add(name, raw, *expect, **opt):
        C.append((name, raw, list(expect), opt))

    def v1(name, body, status, code, **kw):
        add(name, build(body, **kw), (status, code))

    ok1 = '{"examples":[{"I1":1,"C1":"68fd1e64"}]}'

    # -- broken UTF-8 (raw bytes in strings, keys, ids) --
    v1("utf8: lone continuation byte in a value", b'{"examples":[{"C1":"\x80"}]}', 400, "invalid_utf8")
    v1("utf8: bad 2-byte sequence", b'{"examples":[{"C1":"\xc3\x28"}]}', 400, "invalid_utf8")
    v1("utf8: overlong '/'", b'{"examples":[{"C1":"\xc0\xaf"}]}', 400, "invalid_utf8")
    v1("utf8: encoded surrogate U+D800", b'{"examples":[{"C1":"\xed\xa0\x80"}]}', 400, "invalid_utf8")
    v1("utf8: code point above U+10FFFF", b'{"examples":[{"C1":"\xf4\x90\x80\x80"}]}', 400, "invalid_utf8")
    v1("utf8: sequence cut by the closing quote", b'{"examples":[{"C1":"\xe2\x82"}]}', 400, "invalid_utf8")
    v1("utf8: 0xFF byte in a key", b'{"examples":[{"C\xff":1}]}', 400, "invalid_utf8")
    v1("utf8: broken request_id", b'{"request_id":"\xfe\xfe","examples":[{}]}', 400, "invalid_utf8")
    v1("utf8: lone surrogate escape", '{"examples":[{"C1":"\\ud800"}]}', 400, "malformed_json")
    v1("utf8: reversed surrogate pair", '{"examples":[{"C1":"\\udc00\\ud800"}]}', 400, "malformed_json")
    v1("utf8: valid 4-byte value is fine", '{"examples":[{"C1":"\U0001F600"}]}'.encode(), 200, None)

    # -- unterminated and broken strings / syntax --
    v1("unterminated string value", '{"examples":[{"C1":"abc', 400, "malformed_json")
    v1("unterminated key", '{"examples":[{"C1', 400, "malformed_json")
    v1("unterminated escape at the end", '{"examples":[{"C1":"ab\\', 400, "malformed_json")
    v1("unknown escape \\x", '{"examples":[{"C1":"\\x41"}]}', 400, "malformed_json")
    v1("short \\u escape", '{"examples":[{"C1":"\\u12"}]}', 400, "malformed_json")
    v1("raw control byte in a string", b'{"examples":[{"C1":"a\x01b"}]}', 400, "malformed_json")
    v1("raw NUL in the body", b'{"examples":[{"I1":1\x00}]}', 400, "malformed_json")
    v1("empty body", "", 400, "malformed_json")
    v1("whitespace only", "  \r\n\t ", 400, "malformed_json")
    v1("trailing comma", '{"examples":[{"I1":1,}]}', 400, "malformed_json")
    v1("trailing garbage after the object", ok1 + " x", 400, "malformed_json")
    v1("two objects", ok1 + ok1, 400, "malformed_json")
    v1("single quotes", "{'examples':[{}]}", 400, "malformed_json")
    v1("a comment", '{/* c */"examples":[{}]}', 400, "malformed_json")
    v1("a UTF-8 BOM", b"\xef\xbb\xbf" + ok1.encode(), 400, "malformed_json")
    v1("NaN", '{"examples":[{"I1":NaN}]}', 400, "malformed_json")
    v1("-Infinity", '{"examples":[{"I1":-Infinity}]}', 400, "malformed_json")
    v1("leading zero", '{"examples":[{"I1":01}]}', 400, "malformed_json")
    v1("bare dot number", '{"examples":[{"I1":.5}]}', 400, "malformed_json")
    v1("plus sign", '{"examples":[{"I1":+1}]}', 400, "malformed_json")
    v1("random binary", bytes(range(256)) * 4, 400, "malformed_json")

    # -- nesting --
    v1("1 MB of '['", "[" * 1000000, 400, "nesting_too_deep")
    v1("1 MB of '{\"a\":'", '{"a":' * 200000, 400, "nesting_too_deep")
    v1("33 levels inside a value", '{"examples":[{"I1":' + "[" * 33 + "]" * 33 + "}]}", 400, "nesting_too_deep")
    v1("deep but legal nesting in a value", '{"examples":[{"I1":' + "[" * 20 + "]" * 20 + "}]}", 400, "wrong_type")

    # -- many keys --
    keys = ",".join('"k%06d":0' % i for i in range(100000))
    v1("100k unknown keys in one example", '{"examples":[{%s}]}' % keys, 400, "unknown_feature")
    dup = ",".join('"I%d":%d' % (1 + i % 13, i) for i in range(100000))
    v1("100k keys repeating 13 features", '{"examples":[{%s}]}' % dup, 400, "duplicate_key")
    v1("100k top-level keys", "{%s}" % keys, 400, "unknown_field")
    body = {"parameters": {"k%06d" % i: i for i in range(100000)}, "inputs": v2_inputs()}
    add("v2: 100k keys in ignored parameters", build(json.dumps(body), path=V2), (200, None))
    many = ",".join(["{}"] * 100000)
    v1("100k examples (limit 8)", '{"examples":[%s]}' % many, 413, "too_many_examples")

    # -- numbers --
    v1("1e999 dense", '{"examples":[{"I1":1e999}]}', 400, "number_out_of_range")
    v1("-1e400 dense", '{"examples":[{"I2":-1e400}]}', 400, "number_out_of_range")
    v1("a 5000-digit integer", '{"examples":[{"I1":1%s}]}' % ("0" * 5000), 400, "number_out_of_range")
    v1("5000 fraction digits (underflow is fine)", '{"examples":[{"I1":0.%s1}]}' % ("0" * 5000), 200, None)
    v1("1e-400 (underflows to 0)", '{"examples":[{"I1":1e-400}]}', 200, None)
    v1("dense beyond float, within double", '{"examples":[{"I1":1e300}]}', 200, None)
    v1("categorical 2^63", '{"examples":[{"C1":9223372036854775808}]}', 400, "number_out_of_range")
    v1("categorical -2^63 - 1", '{"examples":[{"C1":-9223372036854775809}]}', 400, "number_out_of_range")
    v1("categorical -2^63", '{"examples":[{"C1":-9223372036854775808}]}', 200, None)
    v1("negative zero dense", '{"examples":[{"I1":-0,"I2":-0.0,"I3":-0e0}]}', 200, None)
    v1("negative zero categorical", '{"examples":[{"C1":-0}]}', 200, None)
    v1("exponent with many digits", '{"examples":[{"I1":1e0000000000000000000001}]}', 200, None)
    v1("huge exponent overflow", '{"examples":[{"I1":1e99999999999999999999}]}', 400, "number_out_of_range")

    # -- duplicates --
    v1("duplicate feature key", '{"examples":[{"I1":1,"I1":2}]}', 400, "duplicate_key")
    v1("duplicate key via an escape", '{"examples":[{"I1":1,"I\\u0031":2}]}', 400, "duplicate_key")
    v1("duplicate examples field", '{"examples":[{}],"examples":[{}]}', 400, "duplicate_key")
    v1("duplicate request_id", '{"request_id":"a","request_id":"b","examples":[{}]}', 400, "duplicate_key")
    v1("duplicate key in context", '{"context":{"C1":"a","C1":"b"},"examples":[{}]}', 400, "duplicate_key")
    v1("feature in context and example", '{"context":{"C1":"a"},"examples":[{"C1":"b"}]}', 400, "duplicate_feature")

    # -- wrong types at every level --
    for name, doc in [("top-level array", "[]"), ("top-level string", '"x"'), ("top-level number", "1"),
                      ("top-level null", "null"), ("top-level true", "true")]:
        v1("wrong type: " + name, doc, 400, "wrong_type")
    for name, val in [("object", '{"I1":1}'), ("string", '"x"'), ("number", "1"), ("true", "true")]:
        v1("wrong type: examples as " + name, '{"examples":%s}' % val, 400, "wrong_type")
    v1("examples null", '{"examples":null}', 400, "missing_examples")
    v1("examples empty", '{"examples":[]}', 400, "missing_examples")
    v1("no examples", '{"request_id":"x"}', 400, "missing_examples")
    for name, val in [("number", "1"), ("array", "[]"), ("null", "null"), ("string", '"x"')]:
        v1("wrong type: example as " + name, '{"examples":[%s]}' % val, 400, "wrong_type")
    for name, val in [("array", "[]"), ("string", '"x"'), ("number", "7")]:
        v1("wrong type: context as " + name, '{"context":%s,"examples":[{}]}' % val, 400, "wrong_type")
    for name, val in [("number", "1"), ("object", "{}"), ("array", '["x"]'), ("true", "true")]:
        v1("wrong type: request_id as " + name, '{"request_id":%s,"examples":[{}]}' % val, 400, "bad_request_id")
    for name, val in [("string", '"12"'), ("true", "true"), ("array", "[1]"), ("object", "{}")]:
        v1("wrong type: dense as " + name, '{"examples":[{"I3":%s}]}' % val, 400, "wrong_type")
    for name, val in [("float", "1.5"), ("exponent", "1e3"), ("false", "false"), ("array", '["a"]'),
                      ("object", '{"a":1}')]:
        v1("wrong type: categorical as " + name, '{"examples":[{"C2":%s}]}' % val, 400, "wrong_type")
    v1("wrong type: in context", '{"context":{"I1":"x"},"examples":[{}]}', 400, "wrong_type")

    # -- other semantic errors --
    v1("unknown top-level field", '{"examples":[{}],"models":"x"}', 400, "unknown_field")
    v1("a model this server does not serve", '{"examples":[{}],"model":"x"}', 404, "model_not_found")
    v1("unknown feature", '{"examples":[{"Z9":1}]}', 400, "unknown_feature")
    v1("feature name case", '{"examples":[{"i1":1}]}', 400, "unknown_feature")
    v1("65-byte categorical", '{"examples":[{"C1":"%s"}]}' % ("a" * 65), 400, "string_too_long")
    v1("64-byte categorical is fine", '{"examples":[{"C1":"%s"}]}' % ("a" * 64), 200, None)
    v1("129-char request_id", '{"request_id":"%s","examples":[{}]}' % ("r" * 129), 400, "bad_request_id")
    v1("request_id with a control char", '{"request_id":"a\\u0001","examples":[{}]}', 400, "bad_request_id")
    v1("9 examples (limit 8)", '{"examples":[%s]}' % ",".join(["{}"] * 9), 413, "too_many_examples")

    # -- v2 --
    def v2(name, doc, status, code, path=V2):
        add(name, build(json.dumps(doc) if not isinstance(doc, (str, bytes)) else doc, path=path),
            (status, code))

    v2("v2: a good request", {"inputs": v2_inputs()}, 200, None)
    v2("v2: unknown model name", {"inputs": v2_inputs()}, 404, "model_not_found",
       path="/v2/models/nope/infer")
    v2("v2: 300-byte model name", {"inputs": v2_inputs()}, 404, "not_found",
       path="/v2/models/%s/infer" % ("m" * 300))
    v2("v2: inputs as object", {"inputs": {}}, 400, "wrong_type")
    v2("v2: input as number", {"inputs": [1]}, 400, "wrong_type")
    v2("v2: dense as INT64", {"inputs": v2_inputs(dense_dt="INT64")}, 400, "bad_datatype")
    v2("v2: sparse as FP32", {"inputs": v2_inputs(sparse_dt="FP32")}, 400, "bad_datatype")
    v2("v2: shape of rank 3", {"inputs": v2_inputs(dshape=[1, 13, 1])}, 400, "bad_shape")
    v2("v2: negative shape", {"inputs": v2_inputs(dshape=[-1, 13])}, 400, "bad_shape")
    v2("v2: fractional shape", {"inputs": v2_inputs(dshape=[1.5, 13])}, 400, "bad_shape")
    v2("v2: B of 10^12", {"inputs": v2_inputs(dshape=[10 ** 12, 13])}, 413, "too_many_examples")
    v2("v2: B of 2^64", '{"inputs":[{"name":"dense","datatype":"FP32","shape":[18446744073709551616,13],"data":[]}]}',
       400, "bad_shape")
    v2("v2: data shorter than the shape", {"inputs": v2_inputs(ddata=[1.0] * 12)}, 400, "bad_shape")
    v2("v2: different B per input", {"inputs": v2_inputs(b=1, sshape=[2, 26], sdata=["x"] * 52)},
       400, "bad_shape")
    v2("v2: missing sparse", {"inputs": v2_inputs()[:1]}, 400, "missing_input")
    v2("v2: input twice", {"inputs": v2_inputs() + v2_inputs()[:1]}, 400, "duplicate_input")
    v2("v2: unknown input", {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1]}]},
       400, "unknown_input")
    v2("v2: string in FP32 data", {"inputs": v2_inputs(ddata=["1"] * 13)}, 400, "wrong_type")
    v2("v2: object in data", {"inputs": v2_inputs(ddata=[{}] * 13)}, 400, "wrong_type")
    v2("v2: unknown output", {"inputs": v2_inputs(), "outputs": [{"name": "prob"}]}, 400, "unknown_output")
    v2("v2: deeply nested data", '{"inputs":[{"name":"dense","datatype":"FP32","shape":[1,13],"data":%s1%s}]}'
       % ("[" * 40, "]" * 40), 400, "nesting_too_deep")

    # -- HTTP: content type, length, framing --
    add("no Content-Type", build(ok1, ctype=None), (415, "unsupported_media_type"))
    add("Content-Type text/plain", build(ok1, ctype="text/plain"), (415, "unsupported_media_type"))
    add("charset latin1", build(ok1, ctype="application/json; charset=latin1"), (415, "unsupported_media_type"))
    add("application/jsonx", build(ok1, ctype="application/jsonx"), (415, "unsupported_media_type"))
    add("charset=UTF-8 is fine", build(ok1, ctype="application/json; charset=\"UTF-8\""), (200, None))
    add("no Content-Length, not chunked", build(ok1, length=None), (411, "length_required"))
    add("Content-Length over the limit, no body sent",
        build(b"", length=str(64 << 20)), (413, "body_too_large"), closes=True)
    # libmicrohttpd answers this one itself (its HTML 413, headers sent twice
    # in 0.9.75), before ctrd sees the request.
    add("Content-Length 2^64 + 1", build(b"", length="18446744073709551617"), (413, None))
    add("negative Content-Length", build(ok1, length="-1"), (400, None))
    add("non-numeric Content-Length", build(ok1, length="12abc"), (400, None))
    add("two different Content-Lengths (smuggling)", build(ok1, headers=["Content-Length: 3"]),
        (400, "bad_request"), closes=True)
    add("the same Content-Length twice", build(ok1, headers=["Content-Length: %d" % len(ok1)]), (200, None))
    add("Content-Length shorter than the body (rest is garbage)",
        build(ok1.encode(), length=str(len(ok1) - 5)), (400, "malformed_json"))
    add("Content-Length longer than the body (client waits)",
        build(ok1.encode(), length=str(len(ok1) + 100)), CLOSED, timeout=8.0)
    add("chunked body", build(ok1, te="chunked"), (200, None))
    add("chunked, many 1-byte chunks",
        build(b"".join(b"1\r\n" + bytes([c]) + b"\r\n" for c in ok1.encode()) + b"0\r\n\r\n", te="chunked-raw"),
        (200, None))
    add("chunked with extensions and trailer",
        build(b"%x;ext=1\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n" % (len(ok1), ok1.encode()), te="chunked-raw"),
        (200, None))
    add("chunked, bad chunk size", build(b"zz\r\n" + ok1.encode() + b"\r\n0\r\n\r\n", te="chunked-raw"),
        (400, None))
    add("chunked, chunk size overflowing 64 bits",
        build(b"1" + b"0" * 20 + b"\r\nabc\r\n0\r\n\r\n", te="chunked-raw"), (413, None))
    add("chunked over the limit (3 MB)", build(b"%x\r\n" % 0x300000 + b" " * 0x300000 + b"\r\n0\r\n\r\n",
                                               te="chunked-raw"), (413, "body_too_large"))
    add("chunked, declared 805 MB chunk, 3 MB sent", build(b"30000000\r\n" + b" " * 0x300000, te="chunked-raw"),
        CLOSED)
    add("Transfer-Encoding gzip (no length)", build(ok1, te="gzip", length=None), CLOSED)
    add("Content-Length and chunked together (smuggling)",
        build(ok1, te="chunked", headers=["Content-Length: 5"]), (400, "bad_request"), closes=True)

    # -- HTTP: versions, methods, lines, headers --
    add("HTTP/1.0 with a length (closed after)", build(ok1, version="HTTP/1.0"), (200, None), closes=True)
    add("HTTP/1.0 without Host", build(ok1, version="HTTP/1.0", host=False), (200, None))
    add("HTTP/1.1 without Host (tolerated)", build(ok1, host=False), (200, None))
    add("HTTP/2.0 request line", build(ok1, version="HTTP/2.0"), (505, None))
    add("HTTP/0.9 request line", b"GET /healthz\r\n\r\n", (400, None))
    add("lowercase method", build(ok1, method="post"), (405, "method_not_allowed"))
    add("unknown method", build(ok1, method="BREW"), (405, "method_not_allowed"))
    add("GET on /v1/score", build(b"", method="GET", ctype=None, length=None), (405, "method_not_allowed"))
    add("HEAD on /v1/score", build(b"", method="HEAD", ctype=None, length=None), (405, None), head_only=True)
    add("unknown path", build(ok1, path="/v1/scorex"), (404, "not_found"))
    add("dot-dot path", build(ok1, path="/v1/../v1/score"), (404, "not_found"))
    add("query string is ignored", build(ok1, path="/v1/score?debug=1"), (200, None))
    # RFC 9112 wants absolute-form accepted; libmicrohttpd passes it through
    # and ctrd routes by path: 404. Harmless (no proxy sends it to an origin).
    add("absolute-form URL", build(ok1, path="http://127.0.0.1/v1/score"), (404, "not_found"))
    add("100 KB URL", build(ok1, path="/v1/" + "a" * 100000), (414, None))
    add("100 KB header value", build(ok1, headers=["X-Big: " + "b" * 100000]), (431, None))
    add("2000 small headers", build(ok1, headers=["X-H%d: v" % i for i in range(2000)]), (431, None))
    add("header without a colon", build(ok1, headers=["NoColonHere"]), (400, None))
    add("obsolete header folding", build(ok1, headers=["X-A: a", " folded"]), (200, None))
    add("NUL byte in the request line", b"POST /v1/sc\x00ore HTTP/1.1\r\nHost: x\r\n\r\n",
        (404, "not_found"))
    add("TLS hello on the plain port", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, CLOSED)
    add("bare LF line endings", build(ok1).replace(b"\r\n", b"\n"), (200, None))
    add("Expect: 100-continue over the limit", build(b"", length=str(8 << 20), headers=["Expect: 100-continue"]),
        (413, "body_too_large"))

    # -- pipelining --
    add("pipelining: 3 good requests in one write",
        b"".join(build(score_body(i, "p%d" % i)) for i in range(3)), (200, None), want=3, rids=["p0", "p1", "p2"])
    add("pipelining: good, bad, good",
        build(score_body(1, "q1")) + build('{"examples":[{"I1":"x"}]}') + build(score_body(2, "q2")),
        (200, None), (400, "wrong_type"), (200, None), want=3, sequence=True)
    add("pipelining: 50 health checks",
        build(b"", method="GET", path="/healthz", ctype=None, length=None) * 50, (200, None), want=50)
    return C


def run_cases(port, model):
    table = cases(model)
    for name, raw, expect, opt in table:
        want = opt.get("want", 1)
        closes = opt.get("closes", False)
        try:
            rs, closed = exchange(port, raw, want=want + (1 if closes else 0),
                                  timeout=opt.get("timeout", 10.0), head_only=opt.get("head_only", False))
        except Exception as e:      # connect refused, parse error: the server misbehaved
            fail("%s: %s: %s" % (name, type(e).__name__, e))
            continue
        if opt.get("sequence"):
            got = [(r.status, r.code()) for r in rs]
            want_seq = [(s, c) for s, c in expect]
            if len(rs) == want and all(g[0] == w[0] and (w[1] is None or g[1] == w[1])
                                       for g, w in zip(got, want_seq)):
                ok("%s -> %s" % (name, got))
            else:
                fail("%s: want %s, got %s%s" % (name, want_seq, got, " (closed)" if closed else ""))
            continue
        if want > 1:
            st, cd = expect[0]
            good = len(rs) == want and all(r.status == st for r in rs)
            rids = opt.get("rids")
            if good and rids:
                good = [(r.json() or {}).get("request_id") for r in rs] == rids
            if good:
                ok("%s -> %d x %d" % (name, want, st))
            else:
                fail("%s: want %d x %d, got %s%s" % (name, want, st, [r.status for r in rs],
                                                      " (closed)" if closed else ""))
            continue
        if not rs:
            got = CLOSED if closed else "timeout"
        else:
            got = (rs[0].status, rs[0].code())
        good = False
        for e in expect:
            if e == CLOSED:
                good = good or got == CLOSED
            elif got not in (CLOSED, "timeout"):
                st, cd = e
                # A 4xx/5xx from ctrd itself must carry the documented code;
                # libmicrohttpd's own answers (None) carry none.
                good = good or (got[0] == st and (cd is None or got[1] == cd))
        show = got if isinstance(got, str) else "%d %s" % (got[0], got[1] or "")
        if closes and (len(rs) != 1 or not closed):
            good = False
            show += " (and the connection %s)" % ("stayed open" if not closed else "gave %d answers" % len(rs))
        elif closes:
            show += ", connection closed"
        if good:
            ok("%s -> %s" % (name, show.strip()))
        else:
            want_s = " or ".join(e if isinstance(e, str) else "%d %s" % (e[0], e[1] or "") for e in expect)
            fail("%s: want %s, got %s; body %r" % (name, want_s, show, rs[0].body[:200] if rs else b""))
    print("%d hostile requests sent" % len(table))
    return len(table)


# ---- latency of a normal client ----------------------------------------


class Normal(threading.Thread):
    """A well-behaved keep-alive client: `rate` requests/s for `seconds`,
    each latency recorded; any status other than 200 is an error."""

    def __init__(self, port, seconds, rate):
        super().__init__(daemon=True)
        self.port, self.seconds, self.rate = port, seconds, rate
        self.lat, self.errors, self.statuses = [], 0, {}

    def run(self):
        s = None
        buf = b""
        end = time.monotonic() + self.seconds
        gap = 1.0 / self.rate
        i = 0
        nxt = time.monotonic()
        while time.monotonic() < end and i < self.seconds * self.rate + 10:
            now = time.monotonic()
            if now < nxt:
                time.sleep(nxt - now)
            nxt += gap
            i += 1
            t0 = time.monotonic()
            try:
                if s is None:
                    s = socket.create_connection((HOST, self.port), timeout=5)
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    buf = b""
                s.sendall(build(score_body(i)))
                r = None
                while r is None:
                    data = s.recv(65536)
                    if not data:
                        raise ConnectionError("closed")
                    buf += data
                    r, buf = _parse_one(buf)
                self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
                if r.status != 200:
                    self.errors += 1
                self.lat.append(time.monotonic() - t0)
            except Exception:
                self.errors += 1
                self.statuses["error"] = self.statuses.get("error", 0) + 1
                if s:
                    s.close()
                s = None
        if s:
            s.close()

    def pct(self, p):
        if not self.lat:
            return float("inf")
        v = sorted(self.lat)
        return v[min(len(v) - 1, int(p / 100.0 * len(v)))]


def latency(port, seconds, rate):
    n = Normal(port, seconds, rate)
    n.start()
    n.join(seconds + 30)
    print("normal client: %d requests, p50 %.2f ms, p99 %.2f ms, max %.2f ms, errors %d %s" % (
        len(n.lat), n.pct(50) * 1e3, n.pct(99) * 1e3, max(n.lat or [0]) * 1e3, n.errors, n.statuses))
    return n


# ---- slowloris -----------------------------------------------------------


def slowloris(port, conns, seconds, rate, p99_ms):
    """conns connections each sending a valid request one byte a second
    (never finishing within `seconds`), while a normal client measures."""
    req = build(score_body(7))
    socks = []
    for _ in range(conns):
        try:
            s = socket.create_connection((HOST, port), timeout=5)
            s.setblocking(False)
            socks.append([s, 0])
        except OSError as e:
            fail("slowloris: connect %d: %s" % (len(socks), e))
            break
    ok("slowloris: %d connections open" % len(socks))
    n = Normal(port, seconds, rate)
    n.start()
    end = time.monotonic() + seconds
    sent = dropped = 0
    while time.monotonic() < end:
        for e in socks:
            s, pos = e
            if s is None:
                continue
            try:
                s.send(req[pos % len(req):pos % len(req) + 1])
                e[1] += 1
                sent += 1
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                s.close()
                e[0] = None
                dropped += 1
        time.sleep(max(0.0, min(1.0, end - time.monotonic())))
    n.join(30)
    alive = sum(1 for s, _ in socks if s is not None)
    for s, _ in socks:
        if s is not None:
            s.close()
    p99 = n.pct(99) * 1e3
    print("slowloris: %d bytes trickled over %d s; %d connections dropped by the server, %d still open"
          % (sent, seconds, dropped, alive))
    print("normal client beside it: %d requests, p50 %.2f ms, p99 %.2f ms, max %.2f ms, errors %d" % (
        len(n.lat), n.pct(50) * 1e3, p99, max(n.lat or [0]) * 1e3, n.errors))
    if n.errors == 0 and len(n.lat) >= seconds * rate * 0.8:
        ok("slowloris: the normal client got 200 every time (%d requests)" % len(n.lat))
    else:
        fail("slowloris: normal client: %d requests, %d errors %s" % (len(n.lat), n.errors, n.statuses))
    if p99 <= p99_ms:
        ok("slowloris: normal client p99 %.2f ms <= %.0f ms" % (p99, p99_ms))
    else:
        fail("slowloris: normal client p99 %.2f ms > %.0f ms" % (p99, p99_ms))


# ---- flood beyond --max-connections ----------------------------------------


def closed_by_peer(s):
    """True when the server has closed s: it reads as end of file now."""
    r, _, _ = select.select([s], [], [], 0)
    if not r:
        return False
    try:
        return s.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def flood(port, conns, max_conns):
    """Opens conns (> max_conns) connections, each then sending one
    keep-alive health check and holding its connection. The server serves
    at most max_conns at once and leaves nobody waiting in the listen
    backlog (server/conns.c): a connection over the limit takes the slot of
    one that has sent nothing yet (which is closed unanswered), or of an
    idle one, or gets 503. So every client is answered or closed, none
    twice, and at least max_conns are served. Needs --conn-timeout-s well
    above the 2 s waits here, so that idle clients are not dropped for
    the server."""
    socks, refused = [], 0
    for _ in range(conns):
        try:
            socks.append(socket.create_connection((HOST, port), timeout=2))
        except OSError:
            refused += 1
    for s in socks:
        try:
            s.sendall(build(b"", method="GET", path="/healthz", ctype=None, length=None))
        except OSError:
            pass
    pending = {s: b"" for s in socks}
    waves, closed_by_server, evicted, over = [], 0, 0, 0
    end = time.monotonic() + 30
    while pending and time.monotonic() < end:
        wave = []
        # A wave ends 0.3 s after its last answer, or 2 s after it began.
        wave_start = time.monotonic()
        last = None
        while pending:
            limit = wave_start + 2 if last is None else min(wave_start + 2, last + 0.3)
            left = limit - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select(list(pending), [], [], left)
            for s in r:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    closed_by_server += 1
                    del pending[s]
                    continue
                pending[s] += data
                if b"\r\n\r\n" in pending[s]:
                    wave.append(s)
                    del pending[s]
                    last = time.monotonic()
        waves.append(len(wave))
        # An answered client is idle, and the server may close it to admit
        # a newcomer (idle_at_limit), which then answers within the same
        # wave (seen under ASan, where connects lag behind). So what the
        # limit bounds is the answered connections the server still holds
        # open, counted at the wave's end.
        still_open = [s for s in wave if not closed_by_peer(s)]
        evicted += len(wave) - len(still_open)
        over = max(over, len(still_open))
        for s in wave:          # this wave leaves: the next one gets in
            s.close()
    served = sum(waves)
    print("flood: %d connects, %d refused at connect, served in waves of %s, %d closed unanswered, "
          "%d closed idle after their answer, %d never answered"
          % (conns, refused, waves, closed_by_server, evicted, len(pending)))
    if over <= max_conns:
        ok("flood: never more than --max-connections (%d) held open at once (largest wave %d)" % (max_conns, over))
    else:
        fail("flood: %d answered connections open at once with --max-connections %d" % (over, max_conns))
    if served + refused + closed_by_server == conns and not pending and served >= min(conns, max_conns):
        ok("flood: all %d clients were served in the end (%d waves)" % (served, len(waves)))
    else:
        fail("flood: %d of %d served, %d never answered" % (served, conns, len(pending)))
    for s in list(pending) + [s for s in socks if s.fileno() >= 0]:
        s.close()
    time.sleep(0.3)
    rs, _ = exchange(port, build(score_body(3)), timeout=10)
    if rs and rs[0].status == 200:
        ok("flood: a normal request is served afterwards")
    else:
        fail("flood: no 200 afterwards: %s" % ([r.status for r in rs]))


# ---- clients that vanish -----------------------------------------------------


def vanish(port, rounds):
    """Clients that go away at every point: after part of the headers, after
    the headers, mid-body, right after the full request (before the answer:
    the request is suspended in the batcher), and mid-response (a big
    /metrics answer, a 8-example score, reading one byte then leaving), each
    with a FIN and with a reset."""
    req = build('{"examples":[%s]}' % ",".join([score_body(5)[14:-2]] * 8))
    cuts = [("mid request line", req[:10]), ("mid headers", req[:40]),
            ("after headers", req[:req.find(b"\r\n\r\n") + 4]),
            ("mid body", req[:len(req) - 20]), ("whole request, no read", req)]
    n = 0
    for k in range(rounds):
        for rst in (False, True):
            for what, data in cuts:
                try:
                    s = socket.create_connection((HOST, port), timeout=5)
                    s.sendall(data)
                    if rst:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.close()
                    n += 1
                except OSError as e:
                    fail("vanish %s: %s" % (what, e))
            for path in ("/metrics", "/v1/models"):
                try:
                    s = socket.create_connection((HOST, port), timeout=5)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
                    s.sendall(build(b"", method="GET", path=path, ctype=None, length=None) * 4)
                    s.recv(1)
                    if rst:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.close()
                    n += 1
                except OSError as e:
                    fail("vanish mid-response %s: %s" % (path, e))
    time.sleep(0.5)
    rs, _ = exchange(port, build(score_body(4)), timeout=10)
    if rs and rs[0].status == 200:
        ok("vanish: %d clients went away at every point; a normal request is served after" % n)
    else:
        fail("vanish: no 200 after %d vanishing clients" % n)


# ---- numbered load through crashes ------------------------------------------


def idload(port, out, seconds, conns, prefix, stop=None):
    lines = []
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def client(c):
        s, buf, i, mine = None, b"", 0, []
        while time.monotonic() < end and i < 100000:
            if stop and os.path.exists(stop):
                break
            if s is None:
                try:
                    s = socket.create_connection((HOST, port), timeout=2)
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    buf = b""
                except OSError:
                    time.sleep(0.05)
                    continue
            i += 1
            rid = "%s-%d-%d" % (prefix, c, i)
            st = "000"
            try:
                s.sendall(build(score_body(c * 100000 + i, rid)))
                r = None
                while r is None:
                    data = s.recv(65536)
                    if not data:
                        raise ConnectionError("closed")
                    buf += data
                    r, buf = _parse_one(buf)
                st = "%d" % r.status
            except Exception:
                s.close()
                s = None
            mine.append("%s %s" % (rid, st))
        if s:
            s.close()
        with lock:
            lines.extend(mine)

    ts = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(seconds + 10)
    with open(out, "w") as f:
        f.write("\n".join(lines) + ("\n" if lines else ""))
    print("idload: %d requests, %d answered 200" % (len(lines), sum(1 for l in lines if l.endswith(" 200"))))


# ---- main ------------------------------------------------------------------


def main(argv):
    if len(argv) < 3:
        print(__doc__)
        return 2
    cmd, port = argv[1], int(argv[2])
    opts = {}
    rest = argv[3:]
    pos = []
    i = 0
    while i < len(rest):
        if rest[i].startswith("--") and i + 1 < len(rest):
            opts[rest[i][2:]] = rest[i + 1]
            i += 2
        else:
            pos.append(rest[i])
            i += 1
    if cmd == "cases":
        run_cases(port, pos[0] if pos else "e2e")
    elif cmd == "slowloris":
        slowloris(port, int(opts.get("conns", 300)), int(opts.get("seconds", 15)),
                  float(opts.get("rate", 50)), float(opts.get("p99-ms", 50)))
    elif cmd == "flood":
        flood(port, int(opts.get("conns", 100)), int(opts.get("max-conns", 32)))
    elif cmd == "vanish":
        vanish(port, int(opts.get("rounds", 5)))
    elif cmd == "idload":
        idload(port, opts["out"], float(opts.get("seconds", 5)), int(opts.get("conns", 4)),
               opts.get("prefix", "r"), opts.get("stop"))
    elif cmd == "latency":
        n = latency(port, int(opts.get("seconds", 5)), float(opts.get("rate", 50)))
        if n.errors:
            fail("latency: %d errors" % n.errors)
    else:
        print(__doc__)
        return 2
    print("%d checks passed, %d failed" % (CHECKS, FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
