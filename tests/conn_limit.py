#!/usr/bin/env python3
"""conn_limit.py - clients that hold connections at --max-connections, for
tests/test_conn_limit.sh. Loopback only; every loop is bounded in count and
time. Standard library only (and hostile.py's request builder).

    conn_limit.py starve PORT [--stalled N] [--trickle N] [--body N]
                  [--requests N] [--p90-ms MS]
        N connections that send a request line and stall (re-opened when
        the server closes them), N that trickle a request's headers one
        byte every 200 ms, N that send headers and trickle the body; with
        them in place, a normal client sends --requests requests, each on a
        new connection: every one must get 200, p90 under --p90-ms.
    conn_limit.py refuse PORT --hold N
        N connections that send headers and trickle a body (busy, not
        evictable) fill the limit; a new client must get 503 with
        Retry-After and Connection: close at once (not wait in the backlog).

Each prints "ok: ..." or "FAIL: ..." per check and exits 1 when any failed.
"""

import argparse
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile import HOST, build, _parse_one, score_body  # noqa: E402

FAILS = 0


def ok(msg):
    print("ok: " + msg, flush=True)


def fail(msg):
    global FAILS
    FAILS += 1
    print("FAIL: " + msg, flush=True)


def connect(port):
    s = socket.create_connection((HOST, port), timeout=2)
    s.setblocking(False)
    return s


def try_send(s, data):
    """Sends what it can; False when the server has closed the connection."""
    try:
        s.send(data)
        return True
    except (BlockingIOError, InterruptedError):
        return True
    except OSError:
        return False


def closed_by_server(s):
    try:
        d = s.recv(65536)
        return d == b""    # EOF (an answer with data is also "not stalled" any more)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


def one_request(port, i, timeout=5.0):
    """(status, seconds, headers) of one request on a new connection."""
    t0 = time.monotonic()
    s = socket.create_connection((HOST, port), timeout=timeout)
    try:
        s.sendall(build(score_body(i)))
        buf = b""
        while True:
            d = s.recv(65536)
            if not d:
                return None, time.monotonic() - t0, {}
            buf += d
            r, buf = _parse_one(buf)
            if r is not None:
                return r.status, time.monotonic() - t0, r.headers
    finally:
        s.close()


class Attack:
    """The hostile connections, kept up by step() until close()."""

    def __init__(self, port, stalled, trickle, body):
        self.port = port
        self.line = b"POST /v1/score HTTP/1.1\r\n"
        self.req = build(score_body(7))
        head, _, b = self.req.partition(b"\r\n\r\n")
        self.head = head + b"\r\n\r\n"
        self.body_len = len(b)
        self.big = build(b"x" * 8192)
        self.conns = []   # [kind, sock, pos]
        self.reopened = self.errors = 0
        for _ in range(stalled):
            self.open("stalled")
        for _ in range(trickle):
            self.open("trickle")
        for _ in range(body):
            self.open("body")

    def open(self, kind):
        try:
            s = connect(self.port)
        except OSError:
            self.errors += 1
            return
        e = [kind, s, 0]
        if kind == "stalled":
            try_send(s, self.line)
        elif kind == "body":
            head = self.big.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
            try_send(s, head)
        self.conns.append(e)

    def step(self):
        """One round: trickle a byte each, re-open what the server closed."""
        for e in list(self.conns):
            kind, s, pos = e
            if closed_by_server(s):
                s.close()
                self.conns.remove(e)
                self.reopened += 1
                self.open(kind)
                continue
            if kind == "trickle":
                if pos < len(self.head) - 1:   # never the last byte
                    try_send(s, self.head[pos:pos + 1])
                    e[2] += 1
            elif kind == "body":
                try_send(s, b"x")

    def close(self):
        for _, s, _ in self.conns:
            s.close()
        self.conns = []


def starve(a):
    att = Attack(a.port, a.stalled, a.trickle, a.body)
    ok("%d stalled, %d trickling-header and %d trickling-body connections open" % (
        a.stalled, a.trickle, a.body))
    time.sleep(0.3)
    att.step()
    lat, bad = [], []
    end = time.monotonic() + 60
    i = 0
    nxt = time.monotonic()
    while i < a.requests and time.monotonic() < end:
        if time.monotonic() >= nxt:
            att.step()
            nxt = time.monotonic() + 0.2
        i += 1
        try:
            st, dt, _ = one_request(a.port, i)
        except OSError as e:
            st, dt = "error %s" % e, 5.0
        if st == 200:
            lat.append(dt)
        else:
            bad.append(st)
        time.sleep(0.02)
    att.step()
    att.close()
    lat.sort()
    p50 = lat[len(lat) // 2] * 1e3 if lat else float("inf")
    p90 = lat[min(len(lat) - 1, int(0.9 * len(lat)))] * 1e3 if lat else float("inf")
    mx = lat[-1] * 1e3 if lat else float("inf")
    print("normal client: %d requests, %d answered 200, p50 %.2f ms, p90 %.2f ms, max %.2f ms; "
          "others %s; the attack re-opened %d connections the server closed" % (
              i, len(lat), p50, p90, mx, bad[:10], att.reopened))
    if len(lat) == a.requests:
        ok("all %d requests of the normal client answered 200 beside the attack" % a.requests)
    else:
        fail("%d of %d requests answered 200 (others: %s)" % (len(lat), a.requests, bad[:10]))
    if p90 <= a.p90_ms:
        ok("normal client p90 %.2f ms <= %.0f ms" % (p90, a.p90_ms))
    else:
        fail("normal client p90 %.2f ms > %.0f ms" % (p90, a.p90_ms))


def refuse(a):
    att = Attack(a.port, 0, 0, a.hold)
    time.sleep(0.5)
    att.step()
    try:
        st, dt, hdrs = one_request(a.port, 1, timeout=3)
    except OSError as e:
        st, dt, hdrs = "error %s" % e, 3.0, {}
    att.close()
    h = {k.lower(): v for k, v in (hdrs.items() if hasattr(hdrs, "items") else hdrs)}
    print("a new client beside %d busy connections: %s in %.1f ms, headers %s" % (a.hold, st, dt * 1e3, h))
    if st == 503 and dt < 1.0:
        ok("a new client at the limit gets 503 at once (%.1f ms)" % (dt * 1e3))
    else:
        fail("a new client at the limit: %s after %.1f ms" % (st, dt * 1e3))
    if h.get("retry-after") and "close" in h.get("connection", "").lower():
        ok("the 503 says Retry-After: %s and Connection: close" % h["retry-after"])
    else:
        fail("the 503 lacks Retry-After or Connection: close: %s" % h)


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["starve", "refuse"])
    p.add_argument("port", type=int)
    p.add_argument("--stalled", type=int, default=80)
    p.add_argument("--trickle", type=int, default=40)
    p.add_argument("--body", type=int, default=8)
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--p90-ms", type=float, default=100.0)
    p.add_argument("--hold", type=int, default=64)
    a = p.parse_args(argv)
    {"starve": starve, "refuse": refuse}[a.mode](a)
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
