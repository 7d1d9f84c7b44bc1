/* forward_dcn.c - DCNv2: cross layers over x_0, stacked before the top
 * MLP or parallel to a deep MLP.
 *
 *   x_0 (E0, D an example) = [bottom(dense); embeddings], or without a
 *       bottom MLP [raw dense values; embeddings]
 *   layer l: t = linear(x_l, W, b)                      full
 *            v = linear(x_l, V, 0) (T1), t = linear(v, U, b)   rank r
 *            x_{l+1}[a] = fmaf(x_0[a], t[a], x_l[a])
 *   the top input (X) holds x_l from layer 1 on: [x_L] (stacked), or
 *   [x_L; deep(x_0)] (parallel, activation after every deep layer).
 * The weights are shared by the batch, so each product is one linear call
 * over the whole chunk; every output stays one fma chain of its own. */
#include <string.h>

#include "ctr/common.h"
#include "forward_int.h"

/* x_0's width. */
static size_t dcn_width(const ctr_model_def_t *def)
{
    size_t d = ctr__emb_dim(def);
    return (def->bottom.n ? (def->n_dense > 0) * d : def->n_dense) + def->n_cat * d;
}

static size_t max_rank(const ctr_model_def_t *def)
{
    size_t r = 0;
    for (size_t l = 0; l < def->dcn.n_cross; l++)
        r = ctr__max(r, def->dcn.cross[l].rank);
    return r;
}

int ctr__check_dcn(const ctr_model_def_t *def, char *err, size_t errlen)
{
    const ctr_dcn_def_t *dc = &def->dcn;
    const size_t D = dcn_width(def);
    if (dc->structure != CTR_DCN_STACKED && dc->structure != CTR_DCN_PARALLEL)
        return ctr_error(err, errlen, CTR_EINVAL, "interaction.structure: unknown (%d)", (int)dc->structure);
    if (dc->n_cross && !dc->cross)
        return ctr_error(err, errlen, CTR_EINVAL, "interaction.cross: no array");
    for (size_t l = 0; l < dc->n_cross; l++) {
        const ctr_cross_def_t *c = &dc->cross[l];
        if (c->dim != D)
            return ctr_error(err, errlen, CTR_EINVAL, "interaction.cross[%zu].dim is %u, x_0 is %zu wide",
                             l, c->dim, D);
        if (c->rank > D)
            return ctr_error(err, errlen, CTR_EINVAL, "interaction.cross[%zu].rank %u is over the width %zu",
                             l, c->rank, D);
        if (!c->bias || (c->rank ? !c->v || !c->u : !c->w))
            return ctr_error(err, errlen, CTR_EINVAL, "interaction.cross[%zu]: a weight or the bias is missing", l);
    }
    if (dc->structure == CTR_DCN_STACKED)
        return dc->deep.n ? ctr_error(err, errlen, CTR_EINVAL, "interaction.deep: a stacked DCNv2 has no deep MLP") : 0;
    if (!dc->deep.n)
        return ctr_error(err, errlen, CTR_EINVAL, "interaction.deep: a parallel DCNv2 needs a deep MLP");
    return ctr__check_mlp(&dc->deep, D, 0, "interaction.deep", err, errlen);
}

void ctr__plan_dcn(const ctr_model_def_t *def, ctr__fwd_plan_t *p)
{
    const size_t D = dcn_width(def), r = max_rank(def);
    p->ld[CTR__FB_E0] = D;
    p->ld[CTR__FB_T0] = (D + 15) & ~(size_t)15;
    p->ld[CTR__FB_T1] = (r + 15) & ~(size_t)15;
    p->zeros = r;
    if (def->dcn.structure == CTR_DCN_PARALLEL) {
        size_t h = (ctr__mlp_max_width(&def->dcn.deep) + 15) & ~(size_t)15;
        p->ld[CTR__FB_H0] = p->ld[CTR__FB_H1] = ctr__max(p->ld[CTR__FB_H0], h);
    }
}

int ctr__forward_dcn(const ctr_model_def_t *def, const ctr__ops_t *o, size_t n,
                     const float *dense, const uint32_t *rows, ctr_scratch_t *s)
{
    const ctr_dcn_def_t *dc = &def->dcn;
    const size_t D = dcn_width(def), d = ctr__emb_dim(def);
    float *x0 = s->buf[CTR__FB_E0];
    int rc;
    if (def->bottom.n) {
        if ((rc = ctr__fwd_embeddings(def, o, n, rows, x0, D, d)))
            return rc;
        ctr__fwd_bottom(def, o, n, dense, s, x0, D);
    } else {
        for (size_t r = 0; r < n && def->n_dense; r++)
            memcpy(x0 + r * D, dense + r * def->n_dense, def->n_dense * sizeof(float));
        if ((rc = ctr__fwd_embeddings(def, o, n, rows, x0, D, def->n_dense)))
            return rc;
    }
    float *xl = s->buf[CTR__FB_X], *t = s->buf[CTR__FB_T0], *v = s->buf[CTR__FB_T1];
    const size_t ldx = s->plan.ld[CTR__FB_X], ldt = s->plan.ld[CTR__FB_T0], ldv = s->plan.ld[CTR__FB_T1];
    if (!dc->n_cross)
        for (size_t r = 0; r < n; r++)
            memcpy(xl + r * ldx, x0 + r * D, D * sizeof(float));
    for (size_t l = 0; l < dc->n_cross; l++) {
        const ctr_cross_def_t *c = &dc->cross[l];
        const float *in = l ? xl : x0;
        const size_t ldin = l ? ldx : D;
        if (c->rank) {
            o->linear(in, ldin, n, D, c->v, c->rank, s->zeros, c->rank, v, ldv, CTR_ACT_NONE, def->beta);
            o->linear(v, ldv, n, c->rank, c->u, D, c->bias, D, t, ldt, CTR_ACT_NONE, def->beta);
        } else {
            o->linear(in, ldin, n, D, c->w, D, c->bias, D, t, ldt, CTR_ACT_NONE, def->beta);
        }
        for (size_t r = 0; r < n; r++)
            o->fma(x0 + r * D, t + r * ldt, in + r * ldin, xl + r * ldx, D);
    }
    if (dc->structure == CTR_DCN_PARALLEL)
        ctr__fwd_mlp(o, &dc->deep, n, x0, D, s->buf[CTR__FB_H0], s->buf[CTR__FB_H1],
                     s->plan.ld[CTR__FB_H0], xl + D, ldx, def->activation, def->beta, 1);
    ctr_mlp_def_t top = {def->n_layers, def->layers};
    ctr__fwd_mlp(o, &top, n, xl, ldx, s->buf[CTR__FB_H0], s->buf[CTR__FB_H1],
                 s->plan.ld[CTR__FB_H0], s->logit, 1, def->activation, def->beta, 0);
    return 0;
}
