/* forward.c - batch scoring: scratch, the MLP architecture's pass, the
 * MLPs every architecture runs, and the dispatch to the interaction
 * architectures (forward_dot.c, forward_dcn.c, forward_wukong.c). The
 * embedding gather, every table dtype, is embed.c.
 *
 * Scratch layout (one allocation, each buffer 64-byte aligned): the
 * buffers of forward_int.h, max_batch * ld[b] floats each, the all-zero
 * bias, one example's temporary products, and the logits. The sizes come
 * from the model description (a plan), so a batch never allocates.
 * The MLP architecture uses X (its input: dense values then each
 * feature's embedding) and H0/H1 (hidden activations), as in version 1. */
#include "ctr/forward.h"

#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "detmath_int.h"
#include "forward_int.h"
#include "kernels_int.h"
#include "model_pad.h"

static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

size_t ctr__emb_dim(const ctr_model_def_t *def)
{
    if (def->n_cat)
        return def->cat[0].dim;
    if (def->bottom.n)
        return def->bottom.layers[def->bottom.n - 1].out;
    return 0;
}

size_t ctr__mlp_max_width(const ctr_mlp_def_t *m)
{
    size_t w = 0;
    for (size_t l = 0; l < m->n; l++)
        w = ctr__max(w, m->layers[l].out);
    return w;
}

int ctr__check_mlp(const ctr_mlp_def_t *m, size_t in, size_t out, const char *what,
                   char *err, size_t errlen)
{
    if (m->n && !m->layers)
        return ctr_error(err, errlen, CTR_EINVAL, "%s: no layers array", what);
    for (size_t l = 0; l < m->n; l++) {
        const ctr_layer_def_t *L = &m->layers[l];
        if (L->in != in)
            return ctr_error(err, errlen, CTR_EINVAL, "%s[%zu].in is %u, the input is %zu wide",
                             what, l, L->in, in);
        if (!L->out || !L->weight || !L->bias)
            return ctr_error(err, errlen, CTR_EINVAL, "%s[%zu]: no outputs, weight or bias", what, l);
        if (L->ldw && (L->ldw < L->out || (L->out == 1 && L->ldw != 1)))
            return ctr_error(err, errlen, CTR_EINVAL, "%s[%zu]: row stride %u is under out %u (or out is 1)",
                             what, l, L->ldw, L->out);
        in = L->out;
    }
    if (out && m->n && in != out)
        return ctr_error(err, errlen, CTR_EINVAL, "%s ends %zu wide, expected %zu", what, in, out);
    return 0;
}

/* The shape checks every architecture shares: the top MLP, tables, and
 * for interaction models one embedding width and the bottom MLP. */
static int check_common(const ctr_model_def_t *def, char *err, size_t errlen)
{
    if (!def->n_layers || !def->layers)
        return ctr_error(err, errlen, CTR_EINVAL, "mlp: no layers");
    if (def->layers[def->n_layers - 1].out != 1)
        return ctr_error(err, errlen, CTR_EINVAL, "mlp: the last layer has %u outputs, expected 1",
                         def->layers[def->n_layers - 1].out);
    for (size_t j = 0; j < def->n_cat; j++) {
        const ctr_cat_def_t *c = &def->cat[j];
        if (c->shares && (c->shares > j || def->cat[c->shares - 1].shares))
            return ctr_error(err, errlen, CTR_EINVAL, "categorical %zu (%s) shares the table of %u, "
                             "which is not an owner before it", j, c->name, c->shares - 1);
        const ctr_cat_def_t *own = c->shares ? &def->cat[c->shares - 1] : c;
        int rc = ctr__check_table(def, j, err, errlen);
        if (rc)
            return rc;
        if (c->shares && (c->dim != own->dim || c->buckets != own->buckets))
            return ctr_error(err, errlen, CTR_EINVAL, "categorical %zu (%s) shares a table of "
                             "another shape", j, c->name);
        if (c->bag_max > CTR_MAX_BAG)
            return ctr_error(err, errlen, CTR_EINVAL, "categorical %zu (%s): bag max %u is over %d",
                             j, c->name, c->bag_max, CTR_MAX_BAG);
    }
    if (def->arch == CTR_ARCH_MLP)
        return def->bottom.n ? ctr_error(err, errlen, CTR_EINVAL, "bottom: an MLP model has none") : 0;
    size_t d = ctr__emb_dim(def);
    if (!d)
        return ctr_error(err, errlen, CTR_EINVAL, "%s: no embeddings", ctr_arch_name(def->arch));
    for (size_t j = 0; j < def->n_cat; j++)
        if (def->cat[j].dim != d)
            return ctr_error(err, errlen, CTR_EINVAL, "categorical %zu (%s) is %u wide, the "
                             "embeddings are %zu", j, def->cat[j].name, def->cat[j].dim, d);
    if (def->n_dense && !def->bottom.n && def->arch != CTR_ARCH_DCNV2)
        return ctr_error(err, errlen, CTR_EINVAL, "bottom: %s with dense features needs a bottom MLP",
                         ctr_arch_name(def->arch));
    if (!def->n_dense && def->bottom.n)
        return ctr_error(err, errlen, CTR_EINVAL, "bottom: no dense features to take");
    return ctr__check_mlp(&def->bottom, def->n_dense, d, "bottom.layers", err, errlen);
}

/* Inputs first, then the interaction, then the top MLP it feeds, so the
 * message names the first field that is wrong. */
static int check_def(const ctr_model_def_t *def, char *err, size_t errlen)
{
    int rc = check_common(def, err, errlen);
    if (rc)
        return rc;
    switch (def->arch) {
    case CTR_ARCH_MLP: break;
    case CTR_ARCH_DOT: rc = ctr__check_dot(def, err, errlen); break;
    case CTR_ARCH_DCNV2: rc = ctr__check_dcn(def, err, errlen); break;
    case CTR_ARCH_WUKONG: rc = ctr__check_wukong(def, err, errlen); break;
    default: return ctr_error(err, errlen, CTR_EINVAL, "unknown architecture %d", (int)def->arch);
    }
    if (rc)
        return rc;
    ctr_mlp_def_t top = {def->n_layers, def->layers};
    return ctr__check_mlp(&top, ctr_model_input_dim(def), 1, "mlp.layers", err, errlen);
}

static void plan_def(const ctr_model_def_t *def, ctr__fwd_plan_t *p)
{
    memset(p, 0, sizeof(*p));
    p->ld[CTR__FB_X] = pad16(ctr_model_input_dim(def));
    ctr_mlp_def_t top = {def->n_layers, def->layers};
    size_t h = pad16(ctr__max(ctr__mlp_max_width(&top), ctr__mlp_max_width(&def->bottom)));
    p->ld[CTR__FB_H0] = p->ld[CTR__FB_H1] = h;
    switch (def->arch) {
    case CTR_ARCH_DOT: ctr__plan_dot(def, p); break;
    case CTR_ARCH_DCNV2: ctr__plan_dcn(def, p); break;
    case CTR_ARCH_WUKONG: ctr__plan_wukong(def, p); break;
    case CTR_ARCH_MLP:
    default: break;
    }
    /* Rows of activations a multiple of 1 KB (256 floats) apart put the
     * rows a micro-kernel broadcasts from in the same L1 set, as
     * power-of-two weight rows do (model_pad.c): the MLP buffers' rows
     * get one more cache line. */
    p->ld[CTR__FB_X] = ctr__pad_ldw(p->ld[CTR__FB_X]);
    p->ld[CTR__FB_H0] = p->ld[CTR__FB_H1] = ctr__pad_ldw(p->ld[CTR__FB_H0]);
}

static int plan_fits(const ctr__fwd_plan_t *need, const ctr__fwd_plan_t *have)
{
    for (int b = 0; b < CTR__FB_N; b++)
        if (need->ld[b] > have->ld[b])
            return 0;
    return need->zeros <= have->zeros && need->tmp <= have->tmp;
}

int ctr_scratch_new(const ctr_model_def_t *def, size_t max_batch, ctr_scratch_t **out,
                    char *err, size_t errlen)
{
    ctr_scratch_t *s = NULL;
    int rc;
    if (!out)
        return ctr_error(err, errlen, CTR_EINVAL, "ctr_scratch_new: NULL out");
    *out = NULL;
    if (!def || !max_batch)
        return ctr_error(err, errlen, CTR_EINVAL, "ctr_scratch_new: NULL model or a zero batch bound");
    if ((rc = check_def(def, err, errlen)))
        return rc;
    if (!(s = calloc(1, sizeof(*s)))) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
        goto fail;
    }
    s->max_batch = max_batch;
    plan_def(def, &s->plan);
    size_t floats = pad16(s->plan.zeros) + pad16(s->plan.tmp) + pad16(max_batch);
    for (int b = 0; b < CTR__FB_N; b++)
        floats += pad16(max_batch * s->plan.ld[b]);
    if (posix_memalign(&s->mem, 64, floats * sizeof(float))) {
        s->mem = NULL;
        rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory (scratch for %zu examples)", max_batch);
        goto fail;
    }
    memset(s->mem, 0, floats * sizeof(float));
    float *p = s->mem;
    for (int b = 0; b < CTR__FB_N; b++) {
        s->buf[b] = p;
        p += pad16(max_batch * s->plan.ld[b]);
    }
    s->zeros = p;
    p += pad16(s->plan.zeros);
    s->tmp = p;
    p += pad16(s->plan.tmp);
    s->logit = p;
    *out = s;
    return 0;
fail:
    ctr_scratch_free(s);
    return rc;
}

void ctr_scratch_free(ctr_scratch_t *s)
{
    if (!s)
        return;
    free(s->mem);
    free(s);
}

/* ---- MLPs ----------------------------------------------------------- */

void ctr__fwd_mlp(const ctr__ops_t *o, const ctr_mlp_def_t *m, size_t n, const float *x,
                  size_t ldx, float *h0, float *h1, size_t ldh, float *y, size_t ldy,
                  ctr_activation_t act, float beta, int last_act)
{
    const float *in = x;
    size_t ldin = ldx;
    float *bufs[2] = {h0, h1};
    for (size_t l = 0; l < m->n; l++) {
        const ctr_layer_def_t *L = &m->layers[l];
        const int last = l + 1 == m->n;
        float *out = last ? y : bufs[l & 1];
        const size_t ldout = last ? ldy : ldh;
        o->linear(in, ldin, n, L->in, L->weight, L->ldw ? L->ldw : L->out, L->bias, L->out,
                  out, ldout,
                  last && !last_act ? CTR_ACT_NONE : act, beta);
        in = out;
        ldin = ldout;
    }
}

void ctr__fwd_bottom(const ctr_model_def_t *def, const ctr__ops_t *o, size_t n,
                     const float *dense, ctr_scratch_t *s, float *x, size_t ldx)
{
    ctr__fwd_mlp(o, &def->bottom, n, dense, def->n_dense, s->buf[CTR__FB_H0],
                 s->buf[CTR__FB_H1], s->plan.ld[CTR__FB_H0], x, ldx, def->activation,
                 def->beta, 1);
}

/* ---- passes --------------------------------------------------------- */

static int forward_mlp(const ctr_model_def_t *def, const ctr__ops_t *o, size_t n,
                       const float *dense, const uint32_t *rows, ctr_scratch_t *s)
{
    float *x = s->buf[CTR__FB_X];
    const size_t ldx = s->plan.ld[CTR__FB_X];
    if (def->n_dense)
        for (size_t r = 0; r < n; r++)
            memcpy(x + r * ldx, dense + r * def->n_dense, def->n_dense * sizeof(float));
    int rc = ctr__fwd_embeddings(def, o, n, rows, x, ldx, def->n_dense);
    if (rc)
        return rc;
    ctr_mlp_def_t top = {def->n_layers, def->layers};
    ctr__fwd_mlp(o, &top, n, x, ldx, s->buf[CTR__FB_H0], s->buf[CTR__FB_H1],
                 s->plan.ld[CTR__FB_H0], s->logit, 1, def->activation, def->beta, 0);
    return 0;
}

void ctr__ops_resolve(const ctr_kernel_t *k, ctr__ops_t *o)
{
    o->linear = k->linear;
    o->ln_rows = k->ln_rows ? k->ln_rows : ctr__ln_rows_scalar;
    o->pool = k->pool ? k->pool : ctr__pool_scalar;
    o->fma = k->fma ? k->fma : ctr__fma_scalar;
    o->add = k->add ? k->add : ctr__add_scalar;
    o->quant = ctr__quant_ops_get(k->id);
    if (!o->quant)
        o->quant = ctr__quant_ops_get(CTR_KERNEL_AUTO);
}

int ctr_forward(const ctr_model_def_t *def, const ctr_kernel_t *k,
                size_t n, const float *dense, const uint32_t *rows,
                float *scores, float *logits, ctr_scratch_t *s)
{
    if (!def || !k || !k->linear || !s ||
        (n && (!scores || (!dense && def->n_dense) || (!rows && def->n_cat))))
        return CTR_EINVAL;
    if (!def->n_layers || def->layers[def->n_layers - 1].out != 1)
        return CTR_EINVAL;
    /* A scratch made for another shape (say, before a reload) is refused
     * rather than overrun. */
    ctr__fwd_plan_t need;
    plan_def(def, &need);
    if (!plan_fits(&need, &s->plan))
        return CTR_EINVAL;
    ctr__ops_t o;
    ctr__ops_resolve(k, &o);
    const size_t slots = ctr_model_slots(def);
    for (size_t done = 0; done < n;) {
        const size_t m = n - done < s->max_batch ? n - done : s->max_batch;
        const float *d = def->n_dense ? dense + done * def->n_dense : NULL;
        const uint32_t *rw = def->n_cat ? rows + done * slots : NULL;
        int rc;
        switch (def->arch) {
        case CTR_ARCH_DOT: rc = ctr__forward_dot(def, &o, m, d, rw, s); break;
        case CTR_ARCH_DCNV2: rc = ctr__forward_dcn(def, &o, m, d, rw, s); break;
        case CTR_ARCH_WUKONG: rc = ctr__forward_wukong(def, &o, m, d, rw, s); break;
        case CTR_ARCH_MLP: rc = forward_mlp(def, &o, m, d, rw, s); break;
        default: rc = CTR_EINVAL; break;
        }
        if (rc)
            return rc;
        for (size_t r = 0; r < m; r++) {
            scores[done + r] = ctr_sigmoid(s->logit[r]);
            if (logits)
                logits[done + r] = s->logit[r];
        }
        done += m;
    }
    return 0;
}

float ctr_sigmoid(float z)
{
    return (float)(1.0 / (1.0 + ctr__exp(-(double)z)));
}
