/* train_wukong.c - training Wukong's layers (arXiv 2403.02545) inside the
 * interaction trainer (train_graph.h: the lins, the phases, determinism;
 * the serving arithmetic: docs/MODEL_FORMAT.md, model/forward_wukong.c;
 * each op's backward: grad_wukong.h).
 *
 * X_0 is DOT's X: the bottom MLP's embedding, then the features'. Every
 * parameter of layer i is a lin, so the optimizer, the phase-B tasks and
 * the initialisation are train_graph.c's:
 *   Y      in n_in, out k, rows d: an example's d rows of X^T times Y give
 *          Z = X^T Y [d][k]; AT [n_in][bn * d] holds the X_e side by side
 *          and dZ the dZ_e, so gW = sum over (e, a) of X_e[m][a] dZ_e[a][j],
 *          ctr__gwk_fm_dy_sum's order;
 *   flat LN (fmb_ln flat) in 0, bias [gamma | beta] of n_in * k, rows 1;
 *   FMB    an MLP from n_in * k to n_f * d, act after its last layer with
 *          fmb_out_act;
 *   LCB    in n_in, out n_l, rows d: W = W_L^T, so WT is the model's
 *          [n_l][n_in] W_L (what the forward and the export read), dZ rows
 *          (e, a) are dL_e^T;
 *   res    (only where n_f + n_l != n_in) likewise, out n_f + n_l;
 *   LN_d   in 0, bias [gamma | beta] of d, rows n_f + n_l.
 * Initialisation: Y, LCB, res Glorot-uniform (+-sqrt(6 / (in + out))),
 * the FMB MLP as any MLP (He before an activation), gamma 1 and beta 0.
 * Streams: layer i's from 2^20 + 16 i: Y + 0, FMB layer l + 3 + l, LCB
 * + 12, res + 13 (far from the tables' 1000 + j).
 *
 * Phase A, per example of the chunk (in this order: it fixes the bits):
 *   forward, layer by layer: AT columns; ctr__gwk_fm_fwd (Z kept in Y's
 *   Z, F in f); the flat LN in place (xhat, rstd kept); then the chunk's
 *   FMB MLP; per example F' into X', L = W_L X after it (mx_fwd with WT),
 *   S = C + R (R = res X or X, one float add each), X' = LN_d(S) in place;
 *   the top input is the last X'.
 *   backward, last layer first, from dX' (the top's input gradient):
 *   LN_d's dZ rows [dX' * xhat | dX'], dS = ln_bwd in place; LCB's and
 *   res's dZ (transposes of dS's rows); dX = dS (identity) or 0 + res^T
 *   dS, then dX += W_L^T dL; dF' = dS's first n_f rows into the FMB's
 *   last dZ; the chunk's FMB backward into df; per example the flat LN's
 *   dZ and backward in place, then ctr__gwk_fm_bwd: dX += dF Z^T + Y
 *   dZ^T and dZ into Y's dZ. dX is the layer below's dX' or, for layer 0,
 *   the graph's dX (the tables and the bottom MLP read it). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "grad_wukong.h"
#include "train_graph.h"

#define WK_MAX_LAYERS 64
#define WK_MAX_VALUES (1u << 20) /* n_in * k, n_out * d per example */
#define WK_STREAM0 ((uint64_t)1 << 20)

static size_t n0_of(const ctr__graph_shape_t *sh)
{
    return (sh->n_dense > 0) + sh->n_cat;
}

static size_t n_in_of(const ctr__graph_shape_t *sh, size_t i)
{
    return i ? (size_t)sh->n_f + sh->n_l : n0_of(sh);
}

static size_t zmax(size_t a, size_t b)
{
    return a > b ? a : b;
}

int ctr__twk_check(const ctr__graph_shape_t *sh, char *err, size_t errlen)
{
    const size_t d = sh->cat[0].dim, n_out = (size_t)sh->n_f + sh->n_l;
    if (sh->no_bottom && sh->n_dense)
        return ctr_error(err, errlen, CTR_EINVAL, "no-bottom: wukong needs a bottom MLP for dense features");
    if (!(sh->ln_eps > 0.0f) || !isfinite(sh->ln_eps))
        return ctr_error(err, errlen, CTR_EINVAL, "ln-eps must be > 0");
    if (sh->fmb_ln != CTR_FMB_LN_NONE && sh->fmb_ln != CTR_FMB_LN_FLAT)
        return ctr_error(err, errlen, CTR_EINVAL, "fmb-ln: none or flat");
    if (sh->n_wk > WK_MAX_LAYERS)
        return ctr_error(err, errlen, CTR_EINVAL, "layers: at most %d Wukong layers", WK_MAX_LAYERS);
    if (!sh->n_wk)
        return 0;
    if (!sh->n_f || !sh->n_l)
        return ctr_error(err, errlen, CTR_EINVAL, "nf and nl must be >= 1 (nf %u, nl %u)", sh->n_f, sh->n_l);
    if (!sh->k)
        return ctr_error(err, errlen, CTR_EINVAL, "k must be >= 1");
    if (n_out * d > WK_MAX_VALUES || (size_t)sh->n_f * d > 65536)
        return ctr_error(err, errlen, CTR_EINVAL, "nf + nl (%zu) embeddings of %zu make a layer too wide",
                         n_out, d);
    if (zmax(n0_of(sh), n_out) * sh->k > WK_MAX_VALUES)
        return ctr_error(err, errlen, CTR_EINVAL, "k %u: n_in * k is over %u", sh->k, WK_MAX_VALUES);
    return 0;
}

size_t ctr__twk_n_lins(const ctr__graph_shape_t *sh)
{
    size_t n = 0;
    for (size_t i = 0; i < sh->n_wk; i++)
        n += 1 + (sh->fmb_ln == CTR_FMB_LN_FLAT) + sh->n_fmb + 1 + 1 +
             (n_in_of(sh, i) != (size_t)sh->n_f + sh->n_l) + 1;
    return n;
}

int ctr__twk_build(ctr__graph_t *g)
{
    const ctr__graph_shape_t *sh = &g->sh;
    const uint32_t d = g->d, n_out = sh->n_f + sh->n_l;
    if (!(g->wk = calloc(sh->n_wk ? sh->n_wk : 1, sizeof(*g->wk))))
        return CTR_ENOMEM;
    for (size_t i = 0; i < sh->n_wk; i++) {
        ctr__twk_layer_t *W = &g->wk[i];
        const uint32_t n_in = (uint32_t)n_in_of(sh, i), nk = n_in * sh->k;
        const uint64_t s0 = WK_STREAM0 + 16 * (uint64_t)i;
        W->n_in = n_in;
        W->n_out = n_out;
        W->y = g->n_lin;
        ctr__graph_add_lin(g, n_in, sh->k, 0, 0, s0);
        g->lin[W->y].rows = d;
        W->fln = SIZE_MAX;
        if (sh->fmb_ln == CTR_FMB_LN_FLAT) {
            W->fln = g->n_lin;
            ctr__graph_add_lin(g, 0, 2 * nk, 1, 0, s0 + 1);
            g->lin[W->fln].ln = 1;
        }
        ctr__graph_add_mlp(g, &W->fmb, nk, sh->n_fmb, sh->fmb, sh->n_f * d, sh->fmb_out_act != 0, s0 + 3);
        W->lcb = g->n_lin;
        ctr__graph_add_lin(g, n_in, sh->n_l, 0, 0, s0 + 12);
        g->lin[W->lcb].rows = d;
        W->res = SIZE_MAX;
        if (n_in != n_out) {
            W->res = g->n_lin;
            ctr__graph_add_lin(g, n_in, n_out, 0, 0, s0 + 13);
            g->lin[W->res].rows = d;
        }
        W->ln = g->n_lin;
        ctr__graph_add_lin(g, 0, 2 * d, 1, 0, s0 + 14);
        g->lin[W->ln].rows = n_out;
        g->lin[W->ln].ln = 1;
    }
    g->tin = sh->n_wk ? (size_t)n_out * d : g->ldx;
    return 0;
}

/* The scratch floats one thread needs for layer W: X^T, the grad_wukong
 * scratch, R. */
static size_t layer_tmp(const ctr__graph_t *g, const ctr__twk_layer_t *W)
{
    const size_t d = g->d, n_in = W->n_in, k = g->sh.k;
    return d * n_in + zmax(ctr__gwk_fm_scratch(n_in, d, k), ctr__gwk_mx_scratch(n_in, d)) +
           (size_t)W->n_out * d;
}

int ctr__twk_alloc(ctr__graph_t *g, size_t *tmp_n)
{
    const size_t B = g->max_batch, d = g->d, k = g->sh.k;
    for (size_t i = 0; i < g->sh.n_wk; i++) {
        ctr__twk_layer_t *W = &g->wk[i];
        const size_t nk = (size_t)W->n_in * k, no = (size_t)W->n_out * d;
        const int flat = W->fln != SIZE_MAX, last = i + 1 == g->sh.n_wk;
        if (!(W->f = calloc(B * nk, sizeof(float))) || !(W->df = calloc(B * nk, sizeof(float))) ||
            (flat && (!(W->fhat = calloc(B * nk, sizeof(float))) || !(W->frstd = calloc(B, sizeof(float))))) ||
            !(W->xo = calloc(B * no, sizeof(float))) || !(W->xhat = calloc(B * no, sizeof(float))) ||
            !(W->rstd = calloc(B * W->n_out, sizeof(float))) ||
            !(W->dxo = last ? g->dT : calloc(B * no, sizeof(float))))
            return CTR_ENOMEM;
        *tmp_n = zmax(*tmp_n, layer_tmp(g, W));
    }
    return 0;
}

void ctr__twk_free(ctr__graph_t *g)
{
    for (size_t i = 0; g->wk && i < g->sh.n_wk; i++) {
        ctr__twk_layer_t *W = &g->wk[i];
        free(W->f);
        free(W->df);
        free(W->fhat);
        free(W->frstd);
        free(W->xo);
        free(W->xhat);
        free(W->rstd);
        if (W->dxo != g->dT)
            free(W->dxo);
    }
    free(g->wk);
    g->wk = NULL;
}

void ctr__twk_fwd(const ctr__gstep_t *c, size_t b0, size_t b1, unsigned tid)
{
    const ctr__graph_t *g = c->g;
    const size_t d = g->d, k = g->sh.k, bn = c->bn, n = b1 - b0;
    const float eps = g->sh.ln_eps;
    const float *xin = g->X;
    for (size_t i = 0; i < g->sh.n_wk; i++) {
        const ctr__twk_layer_t *W = &g->wk[i];
        const size_t n_in = W->n_in, n_out = W->n_out, n_f = g->sh.n_f, n_l = g->sh.n_l;
        const size_t ldi = n_in * d, ldo = n_out * d, ldf = n_in * k;
        ctr__glin_t *Y = &g->lin[W->y], *LC = &g->lin[W->lcb], *LN = &g->lin[W->ln];
        ctr__glin_t *RS = W->res != SIZE_MAX ? &g->lin[W->res] : NULL;
        const ctr__glin_t *FL = W->fln != SIZE_MAX ? &g->lin[W->fln] : NULL;
        float *xt = g->tmp[tid], *scr = xt + d * n_in;
        float *R = scr + zmax(ctr__gwk_fm_scratch(n_in, d, k), ctr__gwk_mx_scratch(n_in, d));
        for (size_t b = b0; b < b1; b++) {
            const float *x = xin + b * ldi;
            /* AT [n_in][bn * d]: example b's X in columns b d .. b d + d. */
            for (size_t m = 0; m < n_in; m++) {
                memcpy(Y->AT + m * bn * d + b * d, x + m * d, d * sizeof(float));
                memcpy(LC->AT + m * bn * d + b * d, x + m * d, d * sizeof(float));
                if (RS)
                    memcpy(RS->AT + m * bn * d + b * d, x + m * d, d * sizeof(float));
            }
            float *f = W->f + b * ldf;
            ctr__gwk_fm_fwd(c->linear, n_in, d, k, x, Y->W, xt, Y->Z + b * d * k, f, scr);
            if (FL)
                ctr__gwk_ln_fwd(1, ldf, f, FL->W, FL->W + ldf, eps, f, W->fhat + b * ldf, W->frstd + b);
        }
        const float *h = ctr__graph_mlp_fwd(c, &W->fmb, W->f + b0 * ldf, ldf, b0, n);
        for (size_t b = b0; b < b1; b++) {
            const float *x = xin + b * ldi;
            float *xo = W->xo + b * ldo;
            memcpy(xo, h + (b - b0) * n_f * d, n_f * d * sizeof(float));
            ctr__gwk_mx_fwd(c->linear, n_l, n_in, d, LC->WT, x, xo + n_f * d, d, scr);
            if (RS) {
                ctr__gwk_mx_fwd(c->linear, n_out, n_in, d, RS->WT, x, R, d, scr);
                for (size_t e = 0; e < ldo; e++)
                    xo[e] = xo[e] + R[e];
            } else { /* n_out == n_in */
                for (size_t e = 0; e < ldo; e++)
                    xo[e] = xo[e] + x[e];
            }
            ctr__gwk_ln_fwd(n_out, d, xo, LN->W, LN->W + d, eps, xo, W->xhat + b * ldo, W->rstd + b * n_out);
        }
        xin = W->xo;
    }
    if (g->sh.n_wk) /* the top input: the last X' (with no layers, X itself) */
        memcpy(g->T + b0 * g->tin, xin + b0 * g->tin, n * g->tin * sizeof(float));
    else
        memcpy(g->T + b0 * g->tin, g->X + b0 * g->ldx, n * g->tin * sizeof(float));
}

void ctr__twk_bwd(const ctr__gstep_t *c, size_t b0, size_t b1, unsigned tid)
{
    const ctr__graph_t *g = c->g;
    const size_t d = g->d, k = g->sh.k, n = b1 - b0;
    if (!g->sh.n_wk) {
        memcpy(g->dX + b0 * g->ldx, g->dT + b0 * g->tin, n * g->tin * sizeof(float));
        return;
    }
    for (size_t i = g->sh.n_wk; i-- > 0;) {
        const ctr__twk_layer_t *W = &g->wk[i];
        const size_t n_in = W->n_in, n_out = W->n_out, n_f = g->sh.n_f, n_l = g->sh.n_l;
        const size_t ldi = n_in * d, ldo = n_out * d, ldf = n_in * k;
        ctr__glin_t *Y = &g->lin[W->y], *LC = &g->lin[W->lcb], *LN = &g->lin[W->ln];
        ctr__glin_t *RS = W->res != SIZE_MAX ? &g->lin[W->res] : NULL;
        ctr__glin_t *FL = W->fln != SIZE_MAX ? &g->lin[W->fln] : NULL;
        ctr__glin_t *last = &g->lin[W->fmb.first + W->fmb.n - 1];
        const float *xin = i ? g->wk[i - 1].xo : g->X;
        float *dxin = i ? g->wk[i - 1].dxo : g->dX;
        float *xt = g->tmp[tid], *scr = xt + d * n_in;
        for (size_t b = b0; b < b1; b++) {
            float *ds = W->dxo + b * ldo, *dx = dxin + b * ldi;
            const float *xh = W->xhat + b * ldo;
            float *lz = LN->dZ + b * n_out * 2 * d;
            for (size_t r = 0; r < n_out; r++)
                for (size_t a = 0; a < d; a++) {
                    lz[r * 2 * d + a] = ds[r * d + a] * xh[r * d + a];
                    lz[r * 2 * d + d + a] = ds[r * d + a];
                }
            ctr__gwk_ln_bwd(n_out, d, xh, W->rstd + b * n_out, LN->W, ds, ds);
            float *lcz = LC->dZ + b * d * n_l;
            for (size_t a = 0; a < d; a++)
                for (size_t o = 0; o < n_l; o++)
                    lcz[a * n_l + o] = ds[(n_f + o) * d + a];
            if (RS) {
                float *rz = RS->dZ + b * d * n_out;
                for (size_t a = 0; a < d; a++)
                    for (size_t o = 0; o < n_out; o++)
                        rz[a * n_out + o] = ds[o * d + a];
                memset(dx, 0, ldi * sizeof(float));
                ctr__gwk_mx_bwd(c->linear, n_out, n_in, d, RS->W, ds, dx, scr);
            } else {
                memcpy(dx, ds, ldo * sizeof(float));
            }
            ctr__gwk_mx_bwd(c->linear, n_l, n_in, d, LC->W, ds + n_f * d, dx, scr);
            memcpy(last->dZ + b * n_f * d, ds, n_f * d * sizeof(float));
        }
        ctr__graph_mlp_bwd(c, &W->fmb, b0, n, W->df + b0 * ldf, ldf);
        for (size_t b = b0; b < b1; b++) {
            const float *x = xin + b * ldi;
            float *df = W->df + b * ldf;
            if (FL) {
                const float *fh = W->fhat + b * ldf;
                float *fz = FL->dZ + b * 2 * ldf;
                for (size_t e = 0; e < ldf; e++) {
                    fz[e] = df[e] * fh[e];
                    fz[ldf + e] = df[e];
                }
                ctr__gwk_ln_bwd(1, ldf, fh, W->frstd + b, FL->W, df, df);
            }
            ctr__gwk_transpose(n_in, d, x, d, xt, n_in);
            ctr__gwk_fm_bwd(c->linear, n_in, d, k, x, xt, Y->W, Y->Z + b * d * k, df, dxin + b * ldi,
                            Y->dZ + b * d * k, NULL, scr);
        }
    }
}

void ctr__twk_export(ctr__graph_t *g, ctr_model_def_t *def)
{
    const ctr__graph_shape_t *sh = &g->sh;
    const size_t d = g->d;
    for (size_t i = 0; i < sh->n_wk; i++) {
        const ctr__twk_layer_t *W = &g->wk[i];
        const ctr__glin_t *FL = W->fln != SIZE_MAX ? &g->lin[W->fln] : NULL, *LN = &g->lin[W->ln];
        const size_t nk = (size_t)W->n_in * sh->k;
        g->wk_defs[i] = (ctr_wukong_layer_def_t){
            .n_in = W->n_in, .n_f = sh->n_f, .n_l = sh->n_l, .k = sh->k,
            .y = g->lin[W->y].W,
            .fmb_ln_gamma = FL ? FL->W : NULL, .fmb_ln_beta = FL ? FL->W + nk : NULL,
            .fmb = {W->fmb.n, g->layer_defs + W->fmb.first},
            .lcb = g->lin[W->lcb].WT,
            .res = W->res != SIZE_MAX ? g->lin[W->res].WT : NULL,
            .ln_gamma = LN->W, .ln_beta = LN->W + d,
        };
    }
    def->wukong = (ctr_wukong_def_t){sh->n_wk, sh->n_wk ? g->wk_defs : NULL, sh->fmb_ln,
                                     sh->fmb_out_act != 0};
    def->ln_eps = sh->ln_eps;
}
