/* forward_wukong.c - Wukong layers (arXiv 2403.02545) over the embedding
 * matrix, then the top MLP over the last layer's embeddings.
 *
 * X_0 (E0, [n_0][d] an example, dense embedding first). Layer i, X (cur)
 * -> X' (nxt), n_in -> n_f + n_l embeddings; the two E buffers ping-pong:
 *   Z = X^T Y:  X^T of every example of the chunk stacked (T0,
 *       [n * d][n_in]), one linear call with w = Y [n_in][k] (T1)
 *   F = X Z:    per example, linear(x = X [n_in][d], w = Z [d][k]) into
 *       T2 as f = flatten(F), n_in * k an example
 *   FLAT: f = LN(f) (one row an example)
 *   F' = FMB MLP(f), its last layer writing the first n_f * d values of
 *       each example's row of nxt (act after it only with fmb_out_act)
 *   L = W_L X:  per example, linear(x = W_L [n_l][n_in], w = X
 *       [n_in][d]) into the next n_l * d values of nxt
 *   R:          identity (X itself), or res X per example into X's
 *       buffer (free here: the top MLP reads the E buffers)
 *   S = C + R;  X' = LN_d(S) over every d-wide row of the chunk at once.
 * Every product's output is one fma chain of the linear kernel from 0.0f
 * (or the layer's bias), whatever the batch; LN and the add are the
 * kernel variant's row-wise ops with the scalar definition's bits. */
#include <stdio.h>
#include <string.h>

#include "ctr/common.h"
#include "forward_int.h"

static size_t n0_of(const ctr_model_def_t *def)
{
    return (def->n_dense > 0) + def->n_cat;
}

int ctr__check_wukong(const ctr_model_def_t *def, char *err, size_t errlen)
{
    const ctr_wukong_def_t *wk = &def->wukong;
    const size_t d = ctr__emb_dim(def);
    if (!(def->ln_eps > 0.0f))
        return ctr_error(err, errlen, CTR_EINVAL, "interaction.ln_eps must be > 0");
    if (wk->fmb_ln != CTR_FMB_LN_NONE && wk->fmb_ln != CTR_FMB_LN_FLAT)
        return ctr_error(err, errlen, CTR_EINVAL, "interaction.fmb_ln: unknown (%d)", (int)wk->fmb_ln);
    if (wk->n_layers && !wk->layers)
        return ctr_error(err, errlen, CTR_EINVAL, "interaction.layers: no array");
    size_t n_in = n0_of(def);
    for (size_t i = 0; i < wk->n_layers; i++) {
        const ctr_wukong_layer_def_t *L = &wk->layers[i];
        const size_t n_out = (size_t)L->n_f + L->n_l;
        char what[64];
        if (L->n_in != n_in)
            return ctr_error(err, errlen, CTR_EINVAL, "interaction.layers[%zu].n_in is %u, the %s gives %zu",
                             i, L->n_in, i ? "previous layer" : "input", n_in);
        if (!L->k || !n_out)
            return ctr_error(err, errlen, CTR_EINVAL, "interaction.layers[%zu]: k and n_f + n_l must be >= 1", i);
        if ((L->n_f && !L->y) || !L->ln_gamma || !L->ln_beta || (L->n_l && !L->lcb))
            return ctr_error(err, errlen, CTR_EINVAL, "interaction.layers[%zu]: a tensor is missing", i);
        if (L->n_f && wk->fmb_ln == CTR_FMB_LN_FLAT && (!L->fmb_ln_gamma || !L->fmb_ln_beta))
            return ctr_error(err, errlen, CTR_EINVAL, "interaction.layers[%zu]: fmb_ln is flat but "
                             "fmb_ln_gamma or fmb_ln_beta is missing", i);
        if (!L->res && n_out != n_in)
            return ctr_error(err, errlen, CTR_EINVAL, "interaction.layers[%zu]: n_f + n_l is %zu, n_in %zu: "
                             "the residual must be learned (res)", i, n_out, n_in);
        snprintf(what, sizeof what, "interaction.layers[%zu].fmb", i);
        if (!L->n_f && L->fmb.n)
            return ctr_error(err, errlen, CTR_EINVAL, "%s: n_f is 0, the FMB has no MLP", what);
        if (L->n_f && !L->fmb.n && n_in * L->k != (size_t)L->n_f * d)
            return ctr_error(err, errlen, CTR_EINVAL, "%s: no MLP, and n_in * k (%zu) is not n_f * d (%zu)",
                             what, n_in * L->k, (size_t)L->n_f * d);
        int rc = ctr__check_mlp(&L->fmb, n_in * L->k, (size_t)L->n_f * d, what, err, errlen);
        if (rc)
            return rc;
        n_in = n_out;
    }
    return 0;
}

void ctr__plan_wukong(const ctr_model_def_t *def, ctr__fwd_plan_t *p)
{
    const ctr_wukong_def_t *wk = &def->wukong;
    const size_t d = ctr__emb_dim(def);
    size_t e = n0_of(def) * d, nin = 0, k = 0, f = 0, h = 0, res = 0;
    for (size_t i = 0; i < wk->n_layers; i++) {
        const ctr_wukong_layer_def_t *L = &wk->layers[i];
        const size_t n_out = (size_t)L->n_f + L->n_l;
        e = ctr__max(e, n_out * d);
        nin = ctr__max(nin, L->n_in);
        k = ctr__max(k, L->k);
        f = ctr__max(f, (size_t)L->n_in * L->k);
        h = ctr__max(h, ctr__mlp_max_width(&L->fmb));
        if (L->res)
            res = ctr__max(res, n_out * d);
    }
    p->ld[CTR__FB_E0] = p->ld[CTR__FB_E1] = e;
    p->ld[CTR__FB_T0] = d * nin;
    p->ld[CTR__FB_T1] = d * k;
    p->ld[CTR__FB_T2] = f;
    p->ld[CTR__FB_X] = ctr__max(p->ld[CTR__FB_X], res);
    h = (h + 15) & ~(size_t)15;
    p->ld[CTR__FB_H0] = p->ld[CTR__FB_H1] = ctr__max(p->ld[CTR__FB_H0], h);
    p->zeros = ctr__max(k, d);
}

/* The FMB: F' of every example into the first n_f * d values of its row
 * of nxt (ldn). */
static void fmb(const ctr_model_def_t *def, const ctr__ops_t *o, const ctr_wukong_layer_def_t *L,
                size_t n, const float *cur, float *nxt, size_t ldn, ctr_scratch_t *s)
{
    const size_t d = ctr__emb_dim(def), n_in = L->n_in, k = L->k, ldc = n_in * d, ldf = n_in * k;
    float *xt = s->buf[CTR__FB_T0], *z = s->buf[CTR__FB_T1], *f = s->buf[CTR__FB_T2];
    for (size_t r = 0; r < n; r++) {
        const float *x = cur + r * ldc;
        float *t = xt + r * d * n_in;
        for (size_t m = 0; m < n_in; m++)
            for (size_t a = 0; a < d; a++)
                t[a * n_in + m] = x[m * d + a];
    }
    o->linear(xt, n_in, n * d, n_in, L->y, k, s->zeros, k, z, k, CTR_ACT_NONE, def->beta);
    for (size_t r = 0; r < n; r++)
        o->linear(cur + r * ldc, d, n_in, d, z + r * d * k, k, s->zeros, k, f + r * ldf, k,
                  CTR_ACT_NONE, def->beta);
    if (def->wukong.fmb_ln == CTR_FMB_LN_FLAT)
        o->ln_rows(f, ldf, n, ldf, L->fmb_ln_gamma, L->fmb_ln_beta, def->ln_eps, f, ldf);
    if (L->fmb.n)
        ctr__fwd_mlp(o, &L->fmb, n, f, ldf, s->buf[CTR__FB_H0], s->buf[CTR__FB_H1],
                     s->plan.ld[CTR__FB_H0], nxt, ldn, def->activation, def->beta,
                     def->wukong.fmb_out_act != 0);
    else /* n_in * k == n_f * d (checked) */
        for (size_t r = 0; r < n; r++)
            memcpy(nxt + r * ldn, f + r * ldf, ldf * sizeof(float));
}

int ctr__forward_wukong(const ctr_model_def_t *def, const ctr__ops_t *o, size_t n,
                        const float *dense, const uint32_t *rows, ctr_scratch_t *s)
{
    const ctr_wukong_def_t *wk = &def->wukong;
    const size_t d = ctr__emb_dim(def);
    const int has_dense = def->n_dense > 0;
    size_t n_cur = n0_of(def);
    float *cur = s->buf[CTR__FB_E0], *nxt = s->buf[CTR__FB_E1];
    int rc = ctr__fwd_embeddings(def, o, n, rows, cur, n_cur * d, has_dense * d);
    if (rc)
        return rc;
    if (has_dense)
        ctr__fwd_bottom(def, o, n, dense, s, cur, n_cur * d);
    for (size_t i = 0; i < wk->n_layers; i++) {
        const ctr_wukong_layer_def_t *L = &wk->layers[i];
        const size_t n_in = L->n_in, n_out = (size_t)L->n_f + L->n_l;
        const size_t ldc = n_in * d, ldn = n_out * d;
        if (L->n_f)
            fmb(def, o, L, n, cur, nxt, ldn, s);
        if (L->n_l)
            for (size_t r = 0; r < n; r++)
                o->linear(L->lcb, n_in, L->n_l, n_in, cur + r * ldc, d, s->zeros, d,
                          nxt + r * ldn + (size_t)L->n_f * d, d, CTR_ACT_NONE, def->beta);
        if (L->res) {
            float *R = s->buf[CTR__FB_X];
            for (size_t r = 0; r < n; r++)
                o->linear(L->res, n_in, n_out, n_in, cur + r * ldc, d, s->zeros, d, R + r * ldn, d,
                          CTR_ACT_NONE, def->beta);
            o->add(nxt, R, nxt, n * ldn);
        } else { /* n_out == n_in: the rows line up */
            o->add(nxt, cur, nxt, n * ldn);
        }
        o->ln_rows(nxt, d, n * n_out, d, L->ln_gamma, L->ln_beta, def->ln_eps, nxt, d);
        float *t = cur;
        cur = nxt;
        nxt = t;
        n_cur = n_out;
    }
    ctr_mlp_def_t top = {def->n_layers, def->layers};
    ctr__fwd_mlp(o, &top, n, cur, n_cur * d, s->buf[CTR__FB_H0], s->buf[CTR__FB_H1],
                 s->plan.ld[CTR__FB_H0], s->logit, 1, def->activation, def->beta, 0);
    return 0;
}
