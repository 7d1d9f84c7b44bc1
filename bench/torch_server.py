#!/usr/bin/python3
"""torch_server.py - what a user would run instead of ctrd: FastAPI + uvicorn +
PyTorch (Debian's python3-fastapi, python3-uvicorn, python3-torch), serving
the same .ctrm model behind the same POST /v1/score.

It exists for `make bench` part 5 (bench/bench_compare.sh): the same
requests go to both servers, under the same ctrload load, and the scores
must agree within 1e-6. Nothing here shares code with ctrd: the model is
read by bench/ctrm.py (written from docs/MODEL_FORMAT.md), the feature
encoding is reimplemented there, and the forward pass is torch float32
(addmm, one request at a time, no cross-request batching, as a typical
PyTorch service does).

    torch_server.py serve --model M.ctrm [--host 127.0.0.1] [--port 8000]
                          [--workers N] [--torch-threads T]
    torch_server.py score --model M.ctrm < bodies.jsonl   # offline, one line each

API (the subset of docs/API.md that the benchmark uses):
    POST /v1/score  {"request_id"?, "context"?, "examples": [{feature: value}]}
                    -> {"request_id", "model": {"name", "digest"}, "scores": [...]}
                    errors: 400/413/415 {"error": {"code", "message", ...}}
    GET  /readyz, /healthz, /v1/models
"""

import argparse
import itertools
import json
import math
import os
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True  # no bench/__pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ctrm  # noqa: E402

MAX_EXAMPLES = 1024
MAX_BODY = 1 << 20


class BadRequest(Exception):
    def __init__(self, status, code, message, example=None, feature=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.example, self.feature = example, feature

    def body(self):
        e = {"code": self.code, "message": self.message}
        if self.example is not None:
            e["example"] = self.example
        if self.feature is not None:
            e["feature"] = self.feature
        return json.dumps({"error": e}).encode()


def _reject_constant(name):
    raise ValueError("%s is not valid JSON" % name)


class TorchScorer:
    """The model in torch: embedding tables and MLP weights as tensors that
    share memory with the mapped file (no copy)."""

    def __init__(self, path):
        m = ctrm.Model(path)
        self.m = m
        self.name, self.digest = m.name, m.digest
        self.dense = m.dense
        self.dense_index = {d["name"]: i for i, d in enumerate(m.dense)}
        self.cat_index = {c["name"]: i for i, c in enumerate(m.cats)}
        self.cats = m.cats
        self.tables = [torch.from_numpy(c["table"]) for c in m.cats]
        self.layers = [(torch.from_numpy(w), torch.from_numpy(b)) for w, b in m.layers]
        self.smelu = m.activation == "smelu"
        self.beta = np.float32(m.beta)
        self.n_dense = len(m.dense)

    # --- features ------------------------------------------------------------
    def encode(self, examples, context):
        """-> (dense float32 [B, n_dense], int64 [n_tables, B] row indices)"""
        B = len(examples)
        raw = np.full((B, self.n_dense), np.nan, dtype=np.float64)
        rows = np.zeros((len(self.cats), B), dtype=np.int64)
        ctx = context or {}
        dense_index, cat_index, cats = self.dense_index, self.cat_index, self.cats
        xxh3 = ctrm.xxh3_64
        for e, ex in enumerate(examples):
            if not isinstance(ex, dict):
                raise BadRequest(400, "bad_type", "an example must be an object", example=e)
            if ctx:
                for k in ex:
                    if k in ctx:
                        raise BadRequest(400, "duplicate_feature",
                                         "feature is both in context and in the example",
                                         example=e, feature=k)
                items = itertools.chain(ctx.items(), ex.items())
            else:
                items = ex.items()
            for k, v in items:
                i = dense_index.get(k)
                if i is not None:
                    if v is None:
                        continue
                    if isinstance(v, bool) or not isinstance(v, (int, float)):
                        raise BadRequest(400, "bad_type", "a dense value is a number or null",
                                         example=e, feature=k)
                    x = float(v)
                    if math.isinf(x) or x != x:
                        raise BadRequest(400, "bad_value", "NaN or infinity", example=e, feature=k)
                    raw[e, i] = x
                    continue
                j = cat_index.get(k)
                if j is None:
                    raise BadRequest(400, "unknown_feature", "no feature %r in the model" % k,
                                     example=e, feature=k)
                if v is None:
                    continue
                if isinstance(v, str):
                    data = v.encode()
                elif isinstance(v, int) and not isinstance(v, bool):
                    data = str(v).encode()
                else:
                    raise BadRequest(400, "bad_type", "a categorical value is a string or an integer",
                                     example=e, feature=k)
                if len(data) > 64:
                    raise BadRequest(400, "bad_value", "categorical value over 64 bytes",
                                     example=e, feature=k)
                c = cats[j]
                rows[j, e] = 1 + ((xxh3(data, c["seed"]) * c["buckets"]) >> 64)
        return ctrm.dense_columns(self.dense, raw), rows

    # --- forward pass ----------------------------------------------------------
    def forward(self, dense, rows):
        """float32 scores [B]: torch float32 MLP, sigmoid in double."""
        with torch.inference_mode():
            parts = [torch.from_numpy(dense)]
            idx = torch.from_numpy(rows)
            for j, t in enumerate(self.tables):
                parts.append(torch.index_select(t, 0, idx[j]))
            x = torch.cat(parts, 1)
            last = len(self.layers) - 1
            for li, (w, b) in enumerate(self.layers):
                x = torch.addmm(b, x, w)
                if li < last:
                    if self.smelu:
                        beta = float(self.beta)
                        q = (x + beta) * (x + beta) / (4.0 * beta)
                        x = torch.where(x <= -beta, torch.zeros_like(x),
                                        torch.where(x >= beta, x, q))
                    else:
                        x = torch.relu(x)
            logits = x[:, 0].numpy()
        return ctrm.sigmoid32(logits)

    def score_request(self, body):
        """Parsed /v1/score body -> (response dict)"""
        if not isinstance(body, dict):
            raise BadRequest(400, "bad_type", "the body must be a JSON object")
        examples = body.get("examples")
        if not isinstance(examples, list) or not examples:
            raise BadRequest(400, "bad_request", "examples: a non-empty array is required")
        if len(examples) > MAX_EXAMPLES:
            raise BadRequest(413, "too_many_examples", "more than %d examples" % MAX_EXAMPLES)
        ctx = body.get("context")
        if ctx is not None and not isinstance(ctx, dict):
            raise BadRequest(400, "bad_type", "context must be an object")
        rid = body.get("request_id")
        dense, rows = self.encode(examples, ctx)
        scores = self.forward(dense, rows)
        return {"request_id": rid if isinstance(rid, str) else None,
                "model": {"name": self.name, "digest": self.digest},
                "scores": scores}


def render(resp):
    # %.9g: parses back to the same float32, like ctrd's answers.
    scores = ",".join("%.9g" % s for s in resp["scores"].tolist())
    return ('{"request_id":%s,"model":{"name":%s,"digest":"%s"},"scores":[%s]}' % (
        json.dumps(resp["request_id"]), json.dumps(resp["model"]["name"]),
        resp["model"]["digest"], scores)).encode()


def parse(raw):
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise BadRequest(400, "bad_json", "malformed JSON: %s" % e)


# --- the FastAPI app (built when uvicorn imports this module) ----------------
def make_app(path):
    from fastapi import FastAPI, Request
    from fastapi.responses import Response

    scorer = TorchScorer(path)
    app = FastAPI(title="torch CTR server (ctrd benchmark reference)")
    counter = itertools.count(1)
    tag = "%08x" % (os.getpid() & 0xFFFFFFFF)

    @app.post("/v1/score")
    async def score(request: Request):
        ctype = request.headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() != "application/json":
            e = BadRequest(415, "unsupported_media_type", "Content-Type must be application/json")
            return Response(e.body(), status_code=e.status, media_type="application/json")
        raw = await request.body()
        try:
            if len(raw) > MAX_BODY:
                raise BadRequest(413, "body_too_large", "body over %d bytes" % MAX_BODY)
            resp = scorer.score_request(parse(raw))
        except BadRequest as e:
            return Response(e.body(), status_code=e.status, media_type="application/json")
        if resp["request_id"] is None:
            resp["request_id"] = "%s-%012d" % (tag, next(counter))
        return Response(render(resp), media_type="application/json")

    @app.get("/readyz")
    @app.get("/healthz")
    async def ready():
        return {"status": "ok", "ready": True}

    @app.get("/v1/models")
    async def models():
        return {"models": [{"name": scorer.name, "digest": scorer.digest,
                            "kernel": {"name": "torch-%s" % torch.__version__, "bit_exact": False},
                            "torch_threads": torch.get_num_threads(),
                            "xxh3": ctrm.XXH3_SOURCE}]}

    return app


app = None
if os.environ.get("TORCH_SERVER_MODEL"):
    torch.set_num_threads(int(os.environ.get("TORCH_SERVER_THREADS", "1")))
    app = make_app(os.environ["TORCH_SERVER_MODEL"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--model", required=True)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--torch-threads", type=int, default=1)
    o = sub.add_parser("score")
    o.add_argument("--model", required=True)
    a = ap.parse_args()

    if a.cmd == "score":
        scorer = TorchScorer(a.model)
        for line in sys.stdin:
            if line.strip():
                r = scorer.score_request(parse(line))
                print(json.dumps([float(s) for s in r["scores"].tolist()]))
        return

    import uvicorn
    os.environ["TORCH_SERVER_MODEL"] = os.path.abspath(a.model)
    os.environ["TORCH_SERVER_THREADS"] = str(a.torch_threads)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    uvicorn.run("torch_server:app", host=a.host, port=a.port, workers=a.workers,
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
