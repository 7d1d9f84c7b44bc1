/* forward_dot.c - DLRM's pairwise dot interaction.
 *
 *   X (E0, [n][d] an example, dense embedding first) = [bottom(dense); embeddings]
 *   G = X X^T, one example at a time: linear(x = X, rows n, in d,
 *       w = X^T (tmp, [d][n]), out n, bias 0), into tmp after X^T
 *   top input (X buffer) = [dense embedding; G's pairs in the recorded order]
 *   LOWER: for i, for j < i (j <= i with the diagonal)
 *   UPPER: for i, for j > i (j >= i with the diagonal)
 * Every g[i][j] is one fma chain over k ascending from 0.0f, the linear
 * kernel's contract, so the pair values and the score do not depend on the
 * batch. */
#include <string.h>

#include "ctr/common.h"
#include "forward_int.h"

static size_t n_emb(const ctr_model_def_t *def)
{
    return (def->n_dense > 0) + def->n_cat;
}

int ctr__check_dot(const ctr_model_def_t *def, char *err, size_t errlen)
{
    if (def->dot_order != CTR_DOT_LOWER && def->dot_order != CTR_DOT_UPPER)
        return ctr_error(err, errlen, CTR_EINVAL, "interaction.order: unknown (%d)", (int)def->dot_order);
    if (n_emb(def) < 2 && !def->dot_self)
        return ctr_error(err, errlen, CTR_EINVAL, "interaction: dot of one embedding has no pairs");
    return 0;
}

void ctr__plan_dot(const ctr_model_def_t *def, ctr__fwd_plan_t *p)
{
    size_t n = n_emb(def), d = ctr__emb_dim(def);
    p->ld[CTR__FB_E0] = n * d;
    p->zeros = n;
    p->tmp = d * n + n * n;
}

int ctr__forward_dot(const ctr_model_def_t *def, const ctr__ops_t *o, size_t n,
                     const float *dense, const uint32_t *rows, ctr_scratch_t *s)
{
    const size_t ne = n_emb(def), d = ctr__emb_dim(def), lde = ne * d;
    const int has_dense = def->n_dense > 0;
    float *X = s->buf[CTR__FB_E0];
    int rc = ctr__fwd_embeddings(def, o, n, rows, X, lde, has_dense * d);
    if (rc)
        return rc;
    if (has_dense)
        ctr__fwd_bottom(def, o, n, dense, s, X, lde);
    float *T = s->buf[CTR__FB_X];
    const size_t ldt = s->plan.ld[CTR__FB_X];
    float *xt = s->tmp, *g = s->tmp + d * ne;
    const int self = def->dot_self != 0, upper = def->dot_order == CTR_DOT_UPPER;
    for (size_t r = 0; r < n; r++) {
        const float *x = X + r * lde;
        for (size_t i = 0; i < ne; i++)
            for (size_t a = 0; a < d; a++)
                xt[a * ne + i] = x[i * d + a];
        o->linear(x, d, ne, d, xt, ne, s->zeros, ne, g, ne, CTR_ACT_NONE, def->beta);
        float *t = T + r * ldt;
        if (has_dense) {
            memcpy(t, x, d * sizeof(float));
            t += d;
        }
        for (size_t i = 0; i < ne; i++) {
            const float *gi = g + i * ne;
            if (upper)
                for (size_t j = self ? i : i + 1; j < ne; j++)
                    *t++ = gi[j];
            else
                for (size_t j = 0; j < i + self; j++)
                    *t++ = gi[j];
        }
    }
    ctr_mlp_def_t top = {def->n_layers, def->layers};
    ctr__fwd_mlp(o, &top, n, T, ldt, s->buf[CTR__FB_H0], s->buf[CTR__FB_H1],
                 s->plan.ld[CTR__FB_H0], s->logit, 1, def->activation, def->beta, 0);
    return 0;
}
