/* forward.c - batch scoring: gather, MLP layers, sigmoid.
 *
 * Scratch layout (one allocation, 64-byte aligned rows):
 *   x      [max_batch][ldx]   MLP input: dense then each table's row
 *   h0, h1 [max_batch][ldh]   hidden activations, ping-pong between layers
 *   logit  [max_batch]
 * Nothing is allocated per batch or per example. */
#include "ctr/forward.h"

#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "detmath_int.h"

struct ctr_scratch {
    size_t max_batch;
    size_t in_dim, ldx;      /* MLP input width and its padded stride */
    size_t max_width, ldh;   /* widest layer output and its padded stride */
    float *x, *h0, *h1, *logit;
    void *mem;
};

static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

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
    if (!(s = calloc(1, sizeof(*s)))) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
        goto fail;
    }
    s->max_batch = max_batch;
    s->in_dim = ctr_model_input_dim(def);
    s->ldx = pad16(s->in_dim);
    for (size_t l = 0; l < def->n_layers; l++)
        if (def->layers[l].out > s->max_width)
            s->max_width = def->layers[l].out;
    s->ldh = pad16(s->max_width);
    size_t floats = max_batch * (s->ldx + 2 * s->ldh) + pad16(max_batch);
    if (posix_memalign(&s->mem, 64, floats * sizeof(float))) {
        s->mem = NULL;
        rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory (scratch for %zu examples)", max_batch);
        goto fail;
    }
    memset(s->mem, 0, floats * sizeof(float));
    s->x = s->mem;
    s->h0 = s->x + max_batch * s->ldx;
    s->h1 = s->h0 + max_batch * s->ldh;
    s->logit = s->h1 + max_batch * s->ldh;
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

/* One embedding row. The common widths get a copy of constant size, which
 * the compiler turns into a few vector moves: a libc memcpy call per row
 * (26 per example) was 3% of the server's CPU. */
static inline void copy_row(float *dst, const float *src, size_t dim)
{
    switch (dim) {
    case 4: memcpy(dst, src, 4 * sizeof(float)); break;
    case 8: memcpy(dst, src, 8 * sizeof(float)); break;
    case 16: memcpy(dst, src, 16 * sizeof(float)); break;
    case 32: memcpy(dst, src, 32 * sizeof(float)); break;
    default: memcpy(dst, src, dim * sizeof(float)); break;
    }
}

/* Copies each example's dense values and embedding rows into x. All row
 * addresses are prefetched first so the cache misses of a batch (tables
 * far larger than the cache) overlap instead of queueing one by one. */
int ctr_forward_gather(const ctr_model_def_t *def, size_t n, const float *dense,
                       const uint32_t *rows, float *x, size_t ldx)
{
    size_t n_cat = def->n_cat;
    for (size_t r = 0; r < n; r++)
        for (size_t j = 0; j < n_cat; j++) {
            const ctr_cat_def_t *c = &def->cat[j];
            uint32_t row = rows[r * n_cat + j];
            if (row > c->buckets)
                return CTR_ERANGE;
            const float *src = c->table + (size_t)row * c->dim;
            for (size_t k = 0; k < c->dim; k += 16)
                __builtin_prefetch(src + k);
        }
    for (size_t r = 0; r < n; r++) {
        float *dst = x + r * ldx;
        if (def->n_dense)
            memcpy(dst, dense + r * def->n_dense, def->n_dense * sizeof(float));
        dst += def->n_dense;
        for (size_t j = 0; j < n_cat; j++) {
            const ctr_cat_def_t *c = &def->cat[j];
            copy_row(dst, c->table + (size_t)rows[r * n_cat + j] * c->dim, c->dim);
            dst += c->dim;
        }
    }
    return 0;
}

static int forward_chunk(const ctr_model_def_t *def, const ctr_kernel_t *k,
                         size_t n, const float *dense, const uint32_t *rows,
                         float *scores, float *logits, ctr_scratch_t *s)
{
    int rc = ctr_forward_gather(def, n, dense, rows, s->x, s->ldx);
    if (rc)
        return rc;
    const float *in = s->x;
    size_t ldin = s->ldx;
    float *bufs[2] = {s->h0, s->h1};
    for (size_t l = 0; l < def->n_layers; l++) {
        const ctr_layer_def_t *L = &def->layers[l];
        int last = l + 1 == def->n_layers;
        float *out = last ? s->logit : bufs[l & 1];
        size_t ldout = last ? 1 : s->ldh;
        k->linear(in, ldin, n, L->in, L->weight, L->bias, L->out, out, ldout,
                  last ? CTR_ACT_NONE : def->activation, def->beta);
        in = out;
        ldin = ldout;
    }
    for (size_t r = 0; r < n; r++) {
        scores[r] = ctr_sigmoid(s->logit[r]);
        if (logits)
            logits[r] = s->logit[r];
    }
    return 0;
}

int ctr_forward(const ctr_model_def_t *def, const ctr_kernel_t *k,
                size_t n, const float *dense, const uint32_t *rows,
                float *scores, float *logits, ctr_scratch_t *s)
{
    if (!def || !k || !s || (n && (!scores || (!dense && def->n_dense) || (!rows && def->n_cat))))
        return CTR_EINVAL;
    /* A scratch made for another shape (say, before a reload) is refused
     * rather than overrun. */
    if (ctr_model_input_dim(def) > s->ldx || def->layers[def->n_layers - 1].out != 1)
        return CTR_EINVAL;
    for (size_t l = 0; l < def->n_layers; l++)
        if (def->layers[l].out > s->ldh)
            return CTR_EINVAL;
    for (size_t done = 0; done < n;) {
        size_t m = n - done < s->max_batch ? n - done : s->max_batch;
        int rc = forward_chunk(def, k, m,
                               def->n_dense ? dense + done * def->n_dense : NULL,
                               def->n_cat ? rows + done * def->n_cat : NULL,
                               scores + done,
                               logits ? logits + done : NULL, s);
        if (rc)
            return rc;
        done += m;
    }
    return 0;
}

float ctr_sigmoid(float z)
{
    return (float)(1.0 / (1.0 + ctr__exp(-(double)z)));
}
