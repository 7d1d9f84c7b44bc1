"""inline_load.py - drives ctrd with a load that switches between inline
scoring and batching, and checks that an example's score is the same bits
whichever path scored it (tests/test_inline.sh).

Phases, repeated ROUNDS times:
  quiet  one connection, one request at a time: the queue is always empty,
         so ctrd scores each request on its HTTP thread (inline);
  burst  CONNS connections at once, each sending BURST requests back to
         back: the inline slots fill up and the rest queue and batch.
Every request holds 1..3 examples drawn from a fixed set (shuffled per
request, so an example sits at every position). The score text ctrd sends
is the shortest decimal that reads back as the same float, so equal text
is equal bits. Prints one JSON line: per-example distinct score texts and
request counts. Bounded: ROUNDS x (QUIET + CONNS x BURST) requests, each
with a 10 s timeout.

usage: inline_load.py PORT ROUNDS QUIET CONNS BURST
"""
import http.client
import json
import random
import sys
import threading

PORT, ROUNDS, QUIET, CONNS, BURST = (int(a) for a in sys.argv[1:6])

EXAMPLES = []
for i in range(8):
    ex = {"I%d" % (j + 1): (i * 7 + j * 3) % 50 + 0.5 for j in range(13)}
    for j in range(26):
        ex["C%d" % (j + 1)] = "%08x" % ((i * 2654435761 + j * 40503) % 4294967296)
    if i % 3 == 0:
        ex["I2"] = None
        ex["C5"] = None
    EXAMPLES.append(ex)

lock = threading.Lock()
seen = {i: set() for i in range(len(EXAMPLES))}
errors = []
sent = [0]


def one_request(conn, rng):
    k = rng.randint(1, 3)
    idx = [rng.randrange(len(EXAMPLES)) for _ in range(k)]
    body = json.dumps({"examples": [EXAMPLES[i] for i in idx]})
    conn.request("POST", "/v1/score", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    text = resp.read().decode()
    if resp.status != 200:
        raise RuntimeError("status %d: %s" % (resp.status, text[:200]))
    # The scores' text exactly as sent: the array between "scores":[ and ].
    start = text.index('"scores":[') + len('"scores":[')
    scores = text[start:text.index("]", start)].split(",")
    if len(scores) != k:
        raise RuntimeError("%d scores for %d examples" % (len(scores), k))
    with lock:
        sent[0] += 1
        for i, s in zip(idx, scores):
            seen[i].add(s)


def client(seed, count):
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
    try:
        for _ in range(count):
            one_request(conn, rng)
    except Exception as e:  # reported, and the test fails on it
        with lock:
            errors.append(repr(e))
    finally:
        conn.close()


for r in range(ROUNDS):
    client(1000 + r, QUIET)
    threads = [threading.Thread(target=client, args=(r * 100 + c, BURST)) for c in range(CONNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

print(json.dumps({"requests": sent[0], "errors": errors[:5],
                  "distinct": {str(i): sorted(s) for i, s in seen.items()}}))
