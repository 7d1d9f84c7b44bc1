"""Reference PyTorch modules for the four architectures ctrd serves.

Each is written from its paper's equations, with the choices the papers
leave open fixed the way ctrd computes them (docs/IMPORT.md and
docs/MODEL_FORMAT.md give the arithmetic); a model built and trained with
these modules exports to `.ctrm` without any translation of meaning, and
the exporter maps their parameter names (below) one to one.

Inputs (`CTRModel.forward(dense, rows)`), as `features.encode` builds them:
  dense  float32 [B, n_dense]: the dense values after their transform;
  rows   int64 [B, slots]: table rows, one slot per single-valued feature
         and bag.max slots per bag feature, -1 in an unused bag slot.

Embeddings. Categorical feature j reads its table (its own, or the table of
the feature it shares with). A single-valued feature's embedding is its
row; a bag's is the sum of its rows, or the sum divided by their count
(mean; an empty bag gives zeros).

Architectures (X = [dense_emb; e_1; ...; e_F], n rows of d, the dense
embedding first and only when there are dense features; dense_emb =
bottom MLP of the dense values with the activation after every layer,
including the last):

  mlp     top MLP over [dense values; e_1; ...; e_F] (ctrd's version 1).
  dot     DLRM (Naumov et al. 2019, arXiv 1906.00091): the pairwise dot
          products <x_i, x_j> of X's rows, in the order the model records:
          lower (the reference DLRM: for i, for j < i) or upper (TorchRec:
          for i, for j > i), optionally with i == j; the top MLP takes
          [dense_emb; the products].
  dcnv2   DCN-V2 (Wang et al. 2020, arXiv 2008.13535): x_0 = flatten(X)
          (or [raw dense values; e_1..e_F] without a bottom MLP), cross
          layers x_{l+1} = x_0 * (W_l x_l + b_l) + x_l with W_l full or
          low rank U_l V_l; stacked: top MLP over x_L; parallel: top MLP
          over [x_L; deep(x_0)], deep with the activation after every layer.
  wukong  Wukong (Zhang et al. 2024, arXiv 2403.02545), layer i:
          X_{i+1} = LN(concat(FMB(X_i), LCB(X_i)) + R(X_i)),
          FMB(X) = reshape(MLP(LN(flatten(X (X^T Y)))), n_F x d) with Y
          [n_i, k] (the paper's optimized FM), the flat LN optional
          ("fmb_ln"), the activation after every FMB layer but the last,
          and after the last only with "fmb_out_act";
          LCB(X) = W_L X (n_L x d); R the identity, or a learned
          (n_F + n_L) x n_i matrix; LN over each embedding's d values.
          The top MLP takes flatten(X_last).

Top MLP: the activation after every layer but the last; the last has one
output, the logit; the score is sigmoid(logit). One activation, ReLU or
SmeLU(beta), is used for every nonlinearity of a model.

Parameter names (what the exporter reads; PyTorch Linear weights are
[out, in]):
  emb.<table>.weight            [buckets + 1, d]
  bottom.<i>.weight|bias        bottom MLP
  cross.<l>.w.weight|bias       full-rank cross layer ([D, D], [D])
  cross.<l>.v.weight            low rank: V [r, D]
  cross.<l>.u.weight|bias       low rank: U [D, r], bias [D]
  deep.<i>.weight|bias          DCNv2 parallel deep MLP
  wukong.<i>.y                  Y [n_in, k]
  wukong.<i>.fmb_ln.weight|bias flat LN gamma, beta [n_in * k]
  wukong.<i>.fmb.<j>.weight|bias
  wukong.<i>.lcb.weight         W_L [n_l, n_in]
  wukong.<i>.res.weight         [n_f + n_l, n_in] (learned residual only)
  wukong.<i>.ln.weight|bias     gamma, beta [d]
  top.<i>.weight|bias           top MLP, the last with out == 1
"""

import torch
from torch import nn

from . import config as C


def activation(x, kind, beta):
    """ReLU, or SmeLU(beta) (Shamir & Lin 2022) exactly as ctrd's kernels:

        smelu(x) = 0                         x <= -beta
                 = x                         x >= beta
                 = ((x + beta)^2) * (0.25 / beta)   in between
    """
    if kind == "relu":
        return torch.relu(x)
    c = torch.tensor(0.25, dtype=x.dtype) / torch.tensor(beta, dtype=x.dtype)
    t = x + beta
    mid = (t * t) * c
    return torch.where(x <= -beta, torch.zeros_like(x), torch.where(x >= beta, x, mid))


def layer_norm(v, gamma, beta, eps):
    """LayerNorm over the last axis, two passes, epsilon inside the root:

        mean = sum(v) / w;  var = sum((v - mean)^2) / w
        y = (v - mean) / sqrt(var + eps) * gamma + beta
    """
    w = v.shape[-1]
    mean = v.sum(-1, keepdim=True) / w
    t = v - mean
    var = (t * t).sum(-1, keepdim=True) / w
    inv = 1.0 / torch.sqrt(var + eps)
    return t * inv * gamma + beta


class LayerNorm(nn.Module):
    """Affine LayerNorm with parameters named like nn.LayerNorm's (weight, bias)."""

    def __init__(self, width, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width))
        self.eps = eps

    def forward(self, v):
        return layer_norm(v, self.weight, self.bias, self.eps)


def mlp(widths):
    """Linear layers widths[0] -> widths[1] -> ...; names <i>.weight, <i>.bias."""
    return nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))


def run_mlp(layers, x, act, beta, last_act):
    """The activation after every layer, and after the last one only if last_act."""
    for i, lin in enumerate(layers):
        x = lin(x)
        if i + 1 < len(layers) or last_act:
            x = activation(x, act, beta)
    return x


class CrossLayer(nn.Module):
    """One DCN-V2 cross layer on D values: x_{l+1} = x_0 * (W x_l + b) + x_l.

    rank 0: W is a full [D, D] matrix (`w`); rank r: W = U V with V [r, D]
    (`v`, no bias) and U [D, r] (`u`, with the bias), TorchRec's
    LowRankCrossNet (V_kernels = v.weight, W_kernels = u.weight).
    """

    def __init__(self, dim, rank):
        super().__init__()
        self.rank = rank
        if rank == 0:
            self.w = nn.Linear(dim, dim)
        else:
            self.v = nn.Linear(dim, rank, bias=False)
            self.u = nn.Linear(rank, dim)

    def forward(self, x0, xl):
        t = self.w(xl) if self.rank == 0 else self.u(self.v(xl))
        return x0 * t + xl


class WukongLayer(nn.Module):
    """One Wukong layer: n_in embeddings of d in, n_f + n_l out.

        Z = X^T Y        [d, k]        (Y: [n_in, k], learned)
        F = X Z          [n_in, k]     the optimized FM: X X^T Y
        f = flatten(F); f = LN(f) if fmb_ln == "flat"
        F' = reshape(MLP(f), [n_f, d])                  FMB
        L = W_L X        [n_l, d]                        LCB
        R = X (identity) or W_R X ([n_f + n_l, n_in])    residual
        X' = LN_d([F'; L] + R)       LN over each row's d values
    """

    def __init__(self, n_in, n_f, n_l, k, d, fmb_hidden, fmb_ln, fmb_out_act, learned_res,
                 eps, act, beta):
        super().__init__()
        self.n_in, self.n_f, self.n_l, self.k, self.d = n_in, n_f, n_l, k, d
        self.fmb_out_act, self.act, self.beta = fmb_out_act, act, beta
        self.y = nn.Parameter(torch.empty(n_in, k))
        nn.init.normal_(self.y, std=n_in ** -0.5)
        self.fmb_ln = LayerNorm(n_in * k, eps) if fmb_ln == "flat" else None
        self.fmb = mlp([n_in * k] + list(fmb_hidden) + [n_f * d])
        self.lcb = nn.Linear(n_in, n_l, bias=False)
        self.res = nn.Linear(n_in, n_f + n_l, bias=False) if learned_res else None
        self.ln = LayerNorm(d, eps)

    def forward(self, x):
        b = x.shape[0]
        z = torch.matmul(x.transpose(1, 2), self.y)
        f = torch.matmul(x, z).reshape(b, self.n_in * self.k)
        if self.fmb_ln is not None:
            f = self.fmb_ln(f)
        f = run_mlp(self.fmb, f, self.act, self.beta, self.fmb_out_act)
        fm = f.reshape(b, self.n_f, self.d)
        lc = torch.matmul(self.lcb.weight, x)
        r = x if self.res is None else torch.matmul(self.res.weight, x)
        return self.ln(torch.cat([fm, lc], 1) + r)


def dot_pairs(n, order, self_pairs):
    """(i, j) index lists of DLRM's pairwise products, in the recorded order.

    lower: for i in 0..n-1, for j in 0..i-1 (j <= i with self);
    upper: for i in 0..n-1, for j in i+1..n-1 (j >= i with self)."""
    li, lj = [], []
    for i in range(n):
        js = (range(i + 1) if self_pairs else range(i)) if order == "lower" else \
             (range(i, n) if self_pairs else range(i + 1, n))
        for j in js:
            li.append(i)
            lj.append(j)
    return li, lj


class CTRModel(nn.Module):
    """A whole model of any of the four architectures, from a config
    (config.py; every width given). forward(dense, rows) returns logits
    [B]; predict() the probabilities."""

    def __init__(self, cfg):
        super().__init__()
        if not cfg.get("_normalized"):
            cfg = C.normalize(cfg)
        C.check_widths(cfg)
        self.cfg = cfg
        a, act, beta = cfg["arch"], cfg["activation"], cfg["beta"]
        self.act, self.beta = act, beta
        self.emb = nn.ModuleDict()
        for f in cfg["categorical"]:
            if f["shares"] is None:
                self.emb[f["table"]] = nn.Embedding(f["buckets"] + 1, f["dim"])
        n_dense = len(cfg["dense"])
        self.bottom = mlp([n_dense] + cfg["bottom"]) if cfg["bottom"] else nn.ModuleList()
        d = C.d_of(cfg)
        it = cfg["interaction"]
        if a == "dot":
            li, lj = dot_pairs(C.n_embeddings(cfg), it["order"], it["self"])
            self.register_buffer("li", torch.tensor(li, dtype=torch.long), persistent=False)
            self.register_buffer("lj", torch.tensor(lj, dtype=torch.long), persistent=False)
        elif a == "dcnv2":
            D = C.dcn_width(cfg)
            self.cross = nn.ModuleList(CrossLayer(D, r) for r in it["ranks"])
            self.deep = mlp([D] + it["deep"]) if it["deep"] else nn.ModuleList()
        elif a == "wukong":
            self.wukong = nn.ModuleList()
            for i, L in enumerate(it["layers"]):
                self.wukong.append(WukongLayer(
                    C.wukong_n_in(cfg, i), L["n_f"], L["n_l"], L["k"], d, L["fmb"], it["fmb_ln"],
                    it["fmb_out_act"], C.residual_learned(cfg, i), it["ln_eps"], act, beta))
        self.top = mlp([C.top_in(cfg)] + cfg["top"] + [1])

    def table(self, f):
        return self.emb[f["table"]].weight

    def embeddings(self, rows):
        """The pooled embedding of every categorical feature, in schema order."""
        out, s = [], 0
        for f in self.cfg["categorical"]:
            t = self.table(f)
            if f["bag"] is None:
                out.append(t[rows[:, s]])
                s += 1
                continue
            m = f["bag"]["max"]
            idx = rows[:, s:s + m]
            mask = (idx >= 0).to(t.dtype)
            acc = (t[idx.clamp(min=0)] * mask.unsqueeze(-1)).sum(1)
            if f["bag"]["pool"] == "mean":
                cnt = mask.sum(1, keepdim=True)
                acc = torch.where(cnt > 0, acc / cnt.clamp(min=1), torch.zeros_like(acc))
            out.append(acc)
            s += m
        return out

    def forward(self, dense, rows):
        cfg, act, beta = self.cfg, self.act, self.beta
        a = cfg["arch"]
        dense = torch.as_tensor(dense, dtype=torch.float32)
        rows = torch.as_tensor(rows, dtype=torch.long)
        embs = self.embeddings(rows)
        has_dense = len(cfg["dense"]) > 0
        if a == "mlp":
            h = torch.cat(([dense] if has_dense else []) + embs, 1)
        else:
            first = []
            if has_dense:
                first = [run_mlp(self.bottom, dense, act, beta, True) if len(self.bottom) else dense]
            if a == "dot":
                x = torch.stack(first + embs, 1)
                g = torch.matmul(x, x.transpose(1, 2))
                h = torch.cat(first + [g[:, self.li, self.lj]], 1)
            elif a == "dcnv2":
                x0 = torch.cat(first + embs, 1)
                xl = x0
                for layer in self.cross:
                    xl = layer(x0, xl)
                h = xl
                if cfg["interaction"]["structure"] == "parallel":
                    h = torch.cat([xl, run_mlp(self.deep, x0, act, beta, True)], 1)
            else:
                x = torch.stack(first + embs, 1)
                for layer in self.wukong:
                    x = layer(x)
                h = x.reshape(x.shape[0], -1)
        return run_mlp(self.top, h, act, beta, False).squeeze(1)

    def predict(self, dense, rows):
        with torch.no_grad():
            return torch.sigmoid(self.forward(dense, rows))


def init_random(model, seed, emb_std=0.5):
    """Random parameters that keep activations O(1) through any depth, so
    a random model gives scores spread over (0, 1): what the parity tests
    and `ctrd_torch random` need (not a training initialisation)."""
    g = torch.Generator().manual_seed(seed)

    def normal(p, std, mean=0.0):
        with torch.no_grad():
            p.copy_(torch.randn(p.shape, generator=g) * std + mean)

    for name, p in model.named_parameters():
        if name.startswith("emb."):
            normal(p, emb_std)
        elif name.endswith("ln.weight") or name.endswith("fmb_ln.weight"):
            normal(p, 0.1, 1.0)
        elif name.endswith(".y"):
            normal(p, p.shape[0] ** -0.5)
        elif p.dim() == 2:
            gain = 0.5 if name.startswith("cross.") else 1.4
            normal(p, gain * p.shape[1] ** -0.5)
        else:
            normal(p, 0.1)
    return model
