/* train_graph.c - training DLRM's dot interaction and DCNv2 (layout and
 * determinism in train_graph.h; the serving arithmetic this follows is
 * docs/MODEL_FORMAT.md "Scoring", model/forward_dot.c and forward_dcn.c).
 *
 * Phase A, per chunk of FWD_CHUNK examples:
 *   embeddings: each feature's row, or its bag pooled by the kernel's pool
 *     op (slot order, plain float adds, mean divides by the count);
 *   dense: the bottom MLP (act after every layer) into X's first d
 *     columns, or (DCNv2 without one) the raw values;
 *   DOT: G = X X^T per example with the linear kernel (x = X, w = X^T),
 *     the pairs in the model's order after the dense embedding;
 *   DCNv2: t = linear(x_l, W, b) or U(V x_l) + b, x_{l+1} = fmaf(x_0, t,
 *     x_l); the top input [x_L] or [x_L; deep(x_0)];
 *   the top MLP, the loss gradient (p - y) / bn, and back:
 *   MLPs: dZ *= act'(Z); dA = dZ W^T (linear kernel with W transposed);
 *   DOT: dG[i][j] = dG[j][i] = the pair's gradient (2x on the diagonal,
 *     d(x.x)/dx = 2x), dX = dG X (linear kernel), plus the dense
 *     embedding's direct gradient;
 *   DCNv2, from the last layer down, starting from d x_L:
 *     dt = dx * x_0;  dx0 = fmaf(dx, t, dx0);  dx = dx + dt W^T (or
 *     (dt U^T) V^T); finally dx_0 = dx + dx0, where dx0 starts as the deep
 *     MLP's input gradient (parallel) or zero.
 * Every value of an example is computed from that example alone by a
 * fixed sequence of operations, so the chunking (fixed) and the thread
 * running it change nothing.
 *
 * Phase B: as train_net.c. A lin's gradient rows r0..r1 are AT[r0..r1]
 * times dZ, a kernel product whose chains run over the batch rows in
 * order; a table's touched rows get their slots' gradients (a mean bag's
 * divided by its count) summed in (example, slot) order.
 *
 * Initialisation, from ctr__train_rng_stream(seed, stream): a lin
 * followed by the activation is He-uniform, +-sqrt(6 / in); the others
 * (cross layers, the top MLP's output) Glorot-uniform, +-sqrt(6 / (in +
 * out)); biases 0 but the output's (the base rate's log-odds); tables
 * uniform in +-emb_init. Streams: top MLP layer l 1 + l (as the MLP
 * trainer), bottom layer l 100 + l, cross layer l 200 + 2l (W, or V) and
 * 201 + 2l (U), deep layer l 300 + l, owned table j 1000 + j. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/features.h"
#include "ctr/forward.h"
#include "ctr/rng.h"
#include "kernels_int.h"
#include "train_graph.h"
#include "train_int.h"

#define FWD_CHUNK 32      /* examples per phase-A task, as train_net.c */
#define ROW_CHUNK 16      /* weight rows per phase-B task */
#define MAX_WIDTH 65536u

static float rng_sym(uint64_t *s, float a) /* uniform in [-a, a), as train_net.c */
{
    float u = (float)(ctr_splitmix64_next(s) >> 40) * (1.0f / 16777216.0f);
    return (2.0f * u - 1.0f) * a;
}

static float *falloc(size_t n)
{
    return calloc(n ? n : 1, sizeof(float));
}

static size_t umax(size_t a, size_t b)
{
    return a > b ? a : b;
}

static size_t n_pairs(size_t ne, int self)
{
    return self ? ne * (ne + 1) / 2 : ne * (ne - 1) / 2;
}

/* ---- shape ------------------------------------------------------------ */

static int check_widths(size_t n, const uint32_t *w, const char *what, char *err, size_t errlen)
{
    if (n > CTR_TRAIN_MAX_HIDDEN)
        return ctr_error(err, errlen, CTR_EINVAL, "%s: at most %d hidden layers", what, CTR_TRAIN_MAX_HIDDEN);
    for (size_t l = 0; l < n; l++)
        if (!w[l] || w[l] > MAX_WIDTH)
            return ctr_error(err, errlen, CTR_EINVAL, "%s: width %u must be 1..65536", what, w[l]);
    return 0;
}

int ctr__graph_check(const ctr__graph_shape_t *sh, char *err, size_t errlen)
{
    int rc;
    if (sh->arch != CTR_ARCH_DOT && sh->arch != CTR_ARCH_DCNV2 && sh->arch != CTR_ARCH_WUKONG)
        return ctr_error(err, errlen, CTR_EINVAL, "arch: the graph trainer takes dot, dcnv2 or wukong, not %s",
                         ctr_arch_name(sh->arch));
    if (!sh->n_cat)
        return ctr_error(err, errlen, CTR_EINVAL, "%s needs categorical features (embeddings)",
                         ctr_arch_name(sh->arch));
    uint32_t d = sh->cat[0].dim;
    if (!d || d > 4096)
        return ctr_error(err, errlen, CTR_EINVAL, "dim %u: must be 1..4096", d);
    for (size_t j = 0; j < sh->n_cat; j++) {
        const ctr_cat_def_t *c = &sh->cat[j];
        if (c->dim != d)
            return ctr_error(err, errlen, CTR_EINVAL, "categorical %zu is %u wide, the embeddings are %u",
                             j, c->dim, d);
        if (c->shares && (c->shares > j || sh->cat[c->shares - 1].shares ||
                          sh->cat[c->shares - 1].buckets != c->buckets))
            return ctr_error(err, errlen, CTR_EINVAL, "categorical %zu shares a table that is not an "
                             "earlier owner of its shape", j);
        if (c->bag_max > CTR_MAX_BAG)
            return ctr_error(err, errlen, CTR_EINVAL, "categorical %zu: bag max %u is over %d", j,
                             c->bag_max, CTR_MAX_BAG);
    }
    if (sh->act != CTR_ACT_SMELU && sh->act != CTR_ACT_RELU)
        return ctr_error(err, errlen, CTR_EINVAL, "activation must be smelu or relu");
    if ((rc = check_widths(sh->n_top, sh->top, "hidden", err, errlen)) ||
        (rc = check_widths(sh->no_bottom ? 0 : sh->n_bottom, sh->bottom, "bottom", err, errlen)))
        return rc;
    size_t ne = (sh->n_dense > 0) + sh->n_cat;
    if (sh->arch == CTR_ARCH_WUKONG) {
        if ((rc = check_widths(sh->n_fmb, sh->fmb, "fmb", err, errlen)))
            return rc;
        return ctr__twk_check(sh, err, errlen);
    }
    if (sh->arch == CTR_ARCH_DOT) {
        if (sh->no_bottom && sh->n_dense)
            return ctr_error(err, errlen, CTR_EINVAL, "no-bottom: dot needs a bottom MLP for dense features");
        if (sh->dot_order != CTR_DOT_LOWER && sh->dot_order != CTR_DOT_UPPER)
            return ctr_error(err, errlen, CTR_EINVAL, "dot-order: lower or upper");
        if (ne < 2 && !sh->dot_self)
            return ctr_error(err, errlen, CTR_EINVAL, "dot of one embedding has no pairs (add dot-self)");
        if (n_pairs(ne, sh->dot_self) + d > MAX_WIDTH * 16u)
            return ctr_error(err, errlen, CTR_EINVAL, "dot: %zu embeddings make too many pairs", ne);
        return 0;
    }
    size_t D = (sh->n_dense && sh->no_bottom ? sh->n_dense : (sh->n_dense > 0) * d) + sh->n_cat * d;
    if (D > MAX_WIDTH)
        return ctr_error(err, errlen, CTR_EINVAL, "dcnv2: x_0 is %zu wide, over %u", D, MAX_WIDTH);
    if (sh->structure != CTR_DCN_STACKED && sh->structure != CTR_DCN_PARALLEL)
        return ctr_error(err, errlen, CTR_EINVAL, "structure: stacked or parallel");
    if (sh->n_cross > 64)
        return ctr_error(err, errlen, CTR_EINVAL, "cross: at most 64 layers");
    if (sh->rank > D)
        return ctr_error(err, errlen, CTR_EINVAL, "rank %u is over x_0's width %zu", sh->rank, D);
    if (sh->structure == CTR_DCN_PARALLEL) {
        if (!sh->n_deep)
            return ctr_error(err, errlen, CTR_EINVAL, "deep: a parallel DCNv2 needs a deep MLP");
        return check_widths(sh->n_deep, sh->deep, "deep", err, errlen);
    }
    return 0;
}

/* ---- building --------------------------------------------------------- */

void ctr__graph_add_lin(ctr__graph_t *g, uint32_t in, uint32_t out, int bias, int act, uint64_t stream)
{
    ctr__glin_t *L = &g->lin[g->n_lin++];
    L->in = in;
    L->out = out;
    L->bias = bias;
    L->act = act;
    L->rows = 1;
    L->stream = stream;
    L->init_a = act ? sqrtf(6.0f / (float)in) : sqrtf(6.0f / (float)(in + out));
}

/* n hidden layers of widths w (act after each), then one of last_out
 * (0: none) with act when last_act. Returns the output width. */
uint32_t ctr__graph_add_mlp(ctr__graph_t *g, ctr__gmlp_t *m, uint32_t in, size_t n, const uint32_t *w,
                        uint32_t last_out, int last_act, uint64_t stream0)
{
    m->first = g->n_lin;
    for (size_t l = 0; l < n; l++) {
        ctr__graph_add_lin(g, in, w[l], 1, 1, stream0 + l);
        in = w[l];
    }
    if (last_out) {
        ctr__graph_add_lin(g, in, last_out, 1, last_act, stream0 + n);
        in = last_out;
    }
    m->n = g->n_lin - m->first;
    return in;
}

void ctr__graph_free(ctr__graph_t *g)
{
    if (!g)
        return;
    for (size_t i = 0; g->lin && i < g->n_lin; i++) {
        ctr__glin_t *L = &g->lin[i];
        free(L->W);
        free(L->WT);
        free(L->gW);
        free(L->m);
        free(L->v);
        free(L->AT);
        free(L->Z);
        free(L->H);
        free(L->dZ);
    }
    for (size_t j = 0; j < g->sh.n_cat; j++) {
        if (g->table)
            free(g->table[j]);
        if (g->acc)
            free(g->acc[j]);
        if (g->gT)
            free(g->gT[j]);
    }
    for (size_t l = 0; g->xl && l < g->sh.n_cross; l++)
        free(g->xl[l]);
    ctr__twk_free(g);
    for (unsigned t = 0; t < g->n_threads; t++) {
        if (g->tmp)
            free(g->tmp[t]);
        if (g->keys)
            free(g->keys[t]);
        if (g->gbuf)
            free(g->gbuf[t]);
    }
    void *ptrs[] = {g->lin, g->cross, g->owner, g->slot0, g->slot_feat, g->table, g->acc, g->gT,
                    g->X, g->dX, g->T, g->dT, g->xl, g->dbk, g->dx0, g->cnt, g->zeros, g->loss,
                    g->tmp, g->keys, g->gbuf, g->task_lin, g->task_r0, g->task_r1,
                    g->layer_defs, g->cross_defs, g->wk_defs};
    for (size_t i = 0; i < CTR_ARRAY_LEN(ptrs); i++)
        free(ptrs[i]);
    memset(g, 0, sizeof(*g));
}

/* The lins in order (bottom, cross, deep, top) and the widths they imply. */
static int build_lins(ctr__graph_t *g)
{
    const ctr__graph_shape_t *sh = &g->sh;
    const uint32_t d = g->d;
    const int dcn = sh->arch == CTR_ARCH_DCNV2, parallel = dcn && sh->structure == CTR_DCN_PARALLEL;
    size_t n = (g->has_bottom ? sh->n_bottom + 1 : 0) + sh->n_top + 1;
    if (dcn)
        n += sh->n_cross * (sh->rank ? 2 : 1) + (parallel ? sh->n_deep : 0);
    if (sh->arch == CTR_ARCH_WUKONG)
        n += ctr__twk_n_lins(sh);
    if (!(g->lin = calloc(n, sizeof(*g->lin))) || !(g->cross = calloc(sh->n_cross + 1, sizeof(size_t))))
        return CTR_ENOMEM;
    if (g->has_bottom)
        ctr__graph_add_mlp(g, &g->bottom, (uint32_t)sh->n_dense, sh->n_bottom, sh->bottom, d, 1, 100);
    if (sh->arch == CTR_ARCH_WUKONG) { /* X as DOT's: the embeddings' rows */
        g->ne = (sh->n_dense > 0) + sh->n_cat;
        g->ldx = g->ne * d;
        g->emb_off = (sh->n_dense > 0) * d;
        if (ctr__twk_build(g))
            return CTR_ENOMEM;
    } else if (!dcn) {
        g->ne = (sh->n_dense > 0) + sh->n_cat;
        g->ldx = g->ne * d;
        g->emb_off = (sh->n_dense > 0) * d;
        g->tin = g->emb_off + n_pairs(g->ne, sh->dot_self);
    } else {
        g->emb_off = g->has_bottom ? d : sh->n_dense;
        size_t D = g->ldx = g->emb_off + sh->n_cat * d;
        for (size_t l = 0; l < sh->n_cross; l++) {
            g->cross[l] = g->n_lin;
            if (sh->rank) {
                ctr__graph_add_lin(g, (uint32_t)D, sh->rank, 0, 0, 200 + 2 * l);
                ctr__graph_add_lin(g, sh->rank, (uint32_t)D, 1, 0, 201 + 2 * l);
            } else {
                ctr__graph_add_lin(g, (uint32_t)D, (uint32_t)D, 1, 0, 200 + 2 * l);
            }
        }
        g->tin = D;
        if (parallel)
            g->tin += ctr__graph_add_mlp(g, &g->deep, (uint32_t)D, sh->n_deep, sh->deep, 0, 1, 300);
    }
    ctr__graph_add_mlp(g, &g->top, (uint32_t)g->tin, sh->n_top, sh->top, 1, 0, 1);
    CTR_ASSERT(g->n_lin == n);
    return 0;
}

int ctr__graph_init(ctr__graph_t *g, const ctr__graph_shape_t *sh, size_t max_batch,
                    unsigned n_threads, int keep_grads, char *err, size_t errlen)
{
    memset(g, 0, sizeof(*g));
    int rc = ctr__graph_check(sh, err, errlen);
    if (rc)
        return rc;
    g->sh = *sh;
    g->d = sh->cat[0].dim;
    g->has_bottom = sh->n_dense > 0 && !sh->no_bottom;
    g->max_batch = max_batch;
    g->n_threads = n_threads ? n_threads : 1;
    g->b1t = g->b2t = 1.0;
    const size_t B = max_batch, nc = sh->n_cat, d = g->d;
    const unsigned nt = g->n_threads;
    if (build_lins(g))
        goto oom;

    /* Slots: where each feature's start, and whose each slot is. Keys pack
     * (example, slot) as b * slots + s below 2^32. */
    if (!(g->owner = calloc(nc, sizeof(size_t))) || !(g->slot0 = calloc(nc + 1, sizeof(size_t))))
        goto oom;
    for (size_t j = 0; j < nc; j++) {
        g->owner[j] = sh->cat[j].shares ? sh->cat[j].shares - 1 : j;
        g->slot0[j + 1] = g->slot0[j] + (sh->cat[j].bag_max ? sh->cat[j].bag_max : 1);
    }
    g->slots = g->slot0[nc];
    if ((uint64_t)B * g->slots > UINT32_MAX) {
        size_t slots = g->slots;
        ctr__graph_free(g);
        return ctr_error(err, errlen, CTR_EINVAL, "batch %zu x %zu row slots is over 2^32", B, slots);
    }
    if (!(g->slot_feat = calloc(g->slots, sizeof(size_t))))
        goto oom;
    for (size_t j = 0; j < nc; j++)
        for (size_t s = g->slot0[j]; s < g->slot0[j + 1]; s++)
            g->slot_feat[s] = j;

#define ARR(f, n) (g->f = calloc((n) > 0 ? (n) : 1, sizeof(*g->f)))
    if (!ARR(table, nc) || !ARR(acc, nc) || (keep_grads && !ARR(gT, nc)) || !ARR(tmp, nt) ||
        !ARR(keys, nt) || !ARR(gbuf, nt) || !ARR(xl, sh->n_cross) || !ARR(cnt, B * nc) ||
        !ARR(layer_defs, g->n_lin) || !ARR(cross_defs, sh->n_cross) || !ARR(wk_defs, sh->n_wk))
        goto oom;
#undef ARR
    size_t max_keys = 1;
    for (size_t j = 0; j < nc; j++) {
        if (g->owner[j] != j)
            continue;
        size_t rows = (size_t)sh->cat[j].buckets + 1, ks = 0;
        if (!(g->table[j] = falloc(rows * d)) || !(g->acc[j] = falloc(rows)) ||
            (keep_grads && !(g->gT[j] = falloc(rows * d))))
            goto oom;
        for (size_t i = j; i < nc; i++)
            if (g->owner[i] == j)
                ks += g->slot0[i + 1] - g->slot0[i];
        max_keys = umax(max_keys, ks * B);
    }

    size_t widest = umax(umax(g->ldx, g->tin), g->ne * g->ne), n_tasks = 0;
    for (size_t i = 0; i < g->n_lin; i++) {
        ctr__glin_t *L = &g->lin[i];
        size_t rows = (size_t)L->in + L->bias, blk = rows * L->out, BR = B * L->rows;
        if (!(L->W = falloc(blk)) || !(L->WT = falloc((size_t)L->in * L->out)) ||
            !(L->gW = falloc(blk)) || !(L->m = falloc(blk)) || !(L->v = falloc(blk)) ||
            !(L->AT = falloc(rows * BR)) || !(L->Z = falloc(BR * L->out)) ||
            (L->act && !(L->H = falloc(BR * L->out))) || !(L->dZ = falloc(BR * L->out)))
            goto oom;
        if (!L->in) /* a LayerNorm's affine lin: AT is its constant row of ones */
            for (size_t e = 0; e < BR; e++)
                L->AT[e] = 1.0f;
        widest = umax(widest, umax(L->in, L->out));
        n_tasks += (rows + ROW_CHUNK - 1) / ROW_CHUNK;
    }
    if (!(g->X = falloc(B * g->ldx)) || !(g->dX = falloc(B * g->ldx)) || !(g->T = falloc(B * g->tin)) ||
        !(g->dT = falloc(B * g->tin)) || !(g->zeros = falloc(widest)) || !(g->loss = falloc(B)))
        goto oom;
    if (sh->arch == CTR_ARCH_DCNV2) {
        for (size_t l = 0; l < sh->n_cross; l++)
            if (!(g->xl[l] = falloc(B * g->ldx)))
                goto oom;
        if (!(g->dbk = falloc(B * g->ldx)) || !(g->dx0 = falloc(B * g->ldx)))
            goto oom;
    }
    size_t tmp_n = sh->arch == CTR_ARCH_DOT ? d * g->ne + 2 * g->ne * g->ne : 1;
    if (sh->arch == CTR_ARCH_WUKONG && ctr__twk_alloc(g, &tmp_n))
        goto oom;
    for (unsigned t = 0; t < nt; t++)
        if (!(g->tmp[t] = falloc(tmp_n)) || !(g->keys[t] = calloc(max_keys, sizeof(uint64_t))) ||
            !(g->gbuf[t] = falloc(d)))
            goto oom;

    /* Phase-B tasks: weight row chunks in lin order, then the tables. */
    for (size_t j = 0; j < nc; j++)
        n_tasks += g->owner[j] == j;
    g->n_tasks = n_tasks;
    if (!(g->task_lin = calloc(n_tasks, sizeof(uint32_t))) ||
        !(g->task_r0 = calloc(n_tasks, sizeof(uint32_t))) ||
        !(g->task_r1 = calloc(n_tasks, sizeof(uint32_t))))
        goto oom;
    size_t t = 0;
    for (size_t i = 0; i < g->n_lin; i++) {
        uint32_t rows = g->lin[i].in + (uint32_t)g->lin[i].bias;
        for (uint32_t r = 0; r < rows; r += ROW_CHUNK, t++) {
            g->task_lin[t] = (uint32_t)i;
            g->task_r0[t] = r;
            g->task_r1[t] = r + ROW_CHUNK < rows ? r + ROW_CHUNK : rows;
        }
    }
    for (size_t j = 0; j < nc; j++)
        if (g->owner[j] == j) {
            g->task_lin[t] = UINT32_MAX;
            g->task_r0[t++] = (uint32_t)j;
        }
    CTR_ASSERT(t == n_tasks);
    return 0;
oom:
    ctr__graph_free(g);
    return ctr_error(err, errlen, CTR_ENOMEM, "out of memory for the %s network", ctr_arch_name(sh->arch));
}

static void sync_transpose(ctr__glin_t *L, uint32_t r0, uint32_t r1)
{
    if (r1 > L->in)
        r1 = L->in;
    for (uint32_t o = 0; o < L->out; o++) /* a run of r1 - r0 writes per output */
        for (uint32_t r = r0; r < r1; r++)
            L->WT[(size_t)o * L->in + r] = L->W[(size_t)r * L->out + o];
}

void ctr__graph_init_params(ctr__graph_t *g, uint64_t seed, float out_bias, float emb_scale)
{
    for (size_t j = 0; j < g->sh.n_cat; j++) {
        if (g->owner[j] != j)
            continue;
        uint64_t s = ctr__train_rng_stream(seed, 1000 + j);
        size_t rows = (size_t)g->sh.cat[j].buckets + 1;
        for (size_t i = 0; i < rows * g->d; i++)
            g->table[j][i] = rng_sym(&s, emb_scale);
        memset(g->acc[j], 0, rows * sizeof(float));
    }
    for (size_t i = 0; i < g->n_lin; i++) {
        ctr__glin_t *L = &g->lin[i];
        uint64_t s = ctr__train_rng_stream(seed, L->stream);
        size_t blk = ((size_t)L->in + L->bias) * L->out;
        for (size_t e = 0; e < (size_t)L->in * L->out; e++)
            L->W[e] = rng_sym(&s, L->init_a);
        for (size_t e = (size_t)L->in * L->out; e < blk; e++)
            L->W[e] = L->ln && e < (size_t)L->out / 2 ? 1.0f : 0.0f; /* gamma 1, beta 0 */
        memset(L->m, 0, blk * sizeof(float));
        memset(L->v, 0, blk * sizeof(float));
        sync_transpose(L, 0, L->in);
    }
    ctr__glin_t *out = &g->lin[g->top.first + g->top.n - 1];
    out->W[out->in] = out_bias;
    g->step = 0;
    g->b1t = g->b2t = 1.0;
}

void ctr__graph_export(ctr__graph_t *g, ctr_model_def_t *def, ctr_cat_def_t *cat)
{
    const ctr__graph_shape_t *sh = &g->sh;
    for (size_t i = 0; i < g->n_lin; i++) {
        ctr__glin_t *L = &g->lin[i];
        g->layer_defs[i] = (ctr_layer_def_t){.in = L->in, .out = L->out, .weight = L->W,
                                             .bias = L->bias ? L->W + (size_t)L->in * L->out : NULL};
    }
    def->arch = sh->arch;
    def->activation = sh->act;
    def->beta = sh->beta;
    def->n_layers = g->top.n;
    def->layers = g->layer_defs + g->top.first;
    def->bottom = (ctr_mlp_def_t){g->has_bottom ? g->bottom.n : 0,
                                  g->has_bottom ? g->layer_defs + g->bottom.first : NULL};
    if (sh->arch == CTR_ARCH_WUKONG) {
        ctr__twk_export(g, def);
    } else if (sh->arch == CTR_ARCH_DOT) {
        def->dot_order = sh->dot_order;
        def->dot_self = sh->dot_self;
    } else {
        const uint32_t D = (uint32_t)g->ldx;
        for (size_t l = 0; l < sh->n_cross; l++) {
            const ctr__glin_t *L = &g->lin[g->cross[l]];
            ctr_cross_def_t *c = &g->cross_defs[l];
            *c = (ctr_cross_def_t){.dim = D, .rank = sh->rank};
            if (sh->rank) {
                c->v = L[0].W;
                c->u = L[1].W;
                c->bias = L[1].W + (size_t)sh->rank * D;
            } else {
                c->w = L->W;
                c->bias = L->W + (size_t)D * D;
            }
        }
        int par = sh->structure == CTR_DCN_PARALLEL;
        def->dcn = (ctr_dcn_def_t){sh->structure, sh->n_cross, sh->n_cross ? g->cross_defs : NULL,
                                   {par ? g->deep.n : 0, par ? g->layer_defs + g->deep.first : NULL}};
    }
    for (size_t j = 0; j < sh->n_cat; j++) {
        cat[j].buckets = sh->cat[j].buckets;
        cat[j].dim = g->d;
        cat[j].table = g->table[g->owner[j]];
    }
}

/* ---- phase A ---------------------------------------------------------- */

typedef ctr__gstep_t step_ctx_t;

static inline float act_fwd(ctr_activation_t act, float z, float beta)
{
    return act == CTR_ACT_SMELU ? ctr_smelu(z, beta) : z > 0.0f ? z : 0.0f;
}

static inline float act_grad(ctr_activation_t act, float z, float beta)
{
    return act == CTR_ACT_SMELU ? ctr_smelu_grad(z, beta) : z > 0.0f ? 1.0f : 0.0f;
}

/* Rows b0 .. b0+n of lin L on x (ldx): Z, H and the AT columns. Returns
 * the output rows (H with act, else Z), `out` apart. The linear kernel
 * with no activation and then act_fwd give the bits of the kernel with
 * the activation fused (both are ctr__act of the same chain). */
static const float *lin_fwd(const step_ctx_t *c, ctr__glin_t *L, const float *x, size_t ldx,
                            size_t b0, size_t n)
{
    const ctr__graph_t *g = c->g;
    const size_t bn = c->bn, in = L->in, out = L->out;
    float *z = L->Z + b0 * out;
    c->linear(x, ldx, n, in, L->W, out, L->bias ? L->W + in * out : g->zeros, out, z, out,
              CTR_ACT_NONE, g->sh.beta);
    /* Input by input, so each AT row takes the chunk's n values in a run
     * (the chunk's rows of x stay in cache meanwhile). */
    for (size_t i = 0; i < in; i++) {
        float *at = L->AT + i * bn + b0;
        for (size_t b = 0; b < n; b++)
            at[b] = x[b * ldx + i];
    }
    if (L->bias)
        for (size_t b = 0; b < n; b++)
            L->AT[in * bn + b0 + b] = 1.0f;
    if (!L->act)
        return z;
    float *h = L->H + b0 * out;
    for (size_t i = 0; i < n * out; i++)
        h[i] = act_fwd(g->sh.act, z[i], g->sh.beta);
    return h;
}

const float *ctr__graph_mlp_fwd(const step_ctx_t *c, const ctr__gmlp_t *m, const float *x, size_t ldx,
                            size_t b0, size_t n)
{
    for (size_t l = 0; l < m->n; l++) {
        ctr__glin_t *L = &c->g->lin[m->first + l];
        x = lin_fwd(c, L, x, ldx, b0, n);
        ldx = L->out;
    }
    return x;
}

/* Back through m for rows b0 .. b0+n: the last lin's dZ holds dloss/d(its
 * output) on entry. Each dZ is multiplied by act'(Z) where act follows,
 * then dZ W^T goes to the lin below, or to dx (ldd) from the first lin,
 * unless dx is NULL (an input that needs no gradient). */
void ctr__graph_mlp_bwd(const step_ctx_t *c, const ctr__gmlp_t *m, size_t b0, size_t n, float *dx,
                    size_t ldd)
{
    const ctr__graph_t *g = c->g;
    for (size_t l = m->n; l-- > 0;) {
        ctr__glin_t *L = &g->lin[m->first + l];
        const size_t in = L->in, out = L->out;
        float *dz = L->dZ + b0 * out;
        if (L->act) {
            const float *z = L->Z + b0 * out;
            for (size_t i = 0; i < n * out; i++)
                dz[i] *= act_grad(g->sh.act, z[i], g->sh.beta);
        }
        float *dst = l ? g->lin[m->first + l - 1].dZ + b0 * in : dx;
        if (!dst)
            break;
        c->linear(dz, out, n, out, L->WT, in, g->zeros, in, dst, l ? in : ldd, CTR_ACT_NONE, g->sh.beta);
    }
}

/* Each feature's embedding (row, or bag pooled) into X, and each bag's
 * non-empty slot count. */
static void gather(const step_ctx_t *c, size_t b0, size_t b1)
{
    const ctr__graph_t *g = c->g;
    const size_t nc = g->sh.n_cat, S = g->slots, d = g->d;
    for (size_t b = b0; b < b1; b++) {
        const uint32_t *rr = c->rows + b * S;
        float *dst = g->X + b * g->ldx + g->emb_off;
        for (size_t j = 0; j < nc; j++, dst += d) {
            const ctr_cat_def_t *cd = &g->sh.cat[j];
            const float *t = g->table[g->owner[j]];
            const uint32_t *sl = rr + g->slot0[j];
            if (cd->bag_max) {
                uint32_t cnt = 0;
                for (size_t q = 0; q < cd->bag_max; q++) {
                    CTR_ASSERT(sl[q] == CTR_EMPTY_SLOT || sl[q] <= cd->buckets);
                    cnt += sl[q] != CTR_EMPTY_SLOT;
                }
                c->pool(t, d, sl, cd->bag_max, cd->pool, dst);
                g->cnt[b * nc + j] = cnt;
            } else {
                CTR_ASSERT(sl[0] <= cd->buckets);
                memcpy(dst, t + (size_t)sl[0] * d, d * sizeof(float));
                g->cnt[b * nc + j] = 1;
            }
        }
    }
}

static void fwd_dot(const step_ctx_t *c, size_t b0, size_t b1, unsigned tid)
{
    const ctr__graph_t *g = c->g;
    const size_t ne = g->ne, d = g->d, has_dense = g->sh.n_dense > 0;
    const int self = g->sh.dot_self != 0, upper = g->sh.dot_order == CTR_DOT_UPPER;
    float *xt = g->tmp[tid], *gm = xt + d * ne;
    for (size_t b = b0; b < b1; b++) {
        const float *x = g->X + b * g->ldx;
        for (size_t i = 0; i < ne; i++)
            for (size_t a = 0; a < d; a++)
                xt[a * ne + i] = x[i * d + a];
        c->linear(x, d, ne, d, xt, ne, g->zeros, ne, gm, ne, CTR_ACT_NONE, g->sh.beta);
        float *t = g->T + b * g->tin;
        if (has_dense) {
            memcpy(t, x, d * sizeof(float));
            t += d;
        }
        for (size_t i = 0; i < ne; i++) {
            const float *gi = gm + i * ne;
            if (upper)
                for (size_t j = self ? i : i + 1; j < ne; j++)
                    *t++ = gi[j];
            else
                for (size_t j = 0; j < i + self; j++)
                    *t++ = gi[j];
        }
    }
}

static void bwd_dot(const step_ctx_t *c, size_t b0, size_t b1, unsigned tid)
{
    const ctr__graph_t *g = c->g;
    const size_t ne = g->ne, d = g->d, has_dense = g->sh.n_dense > 0;
    const int self = g->sh.dot_self != 0, upper = g->sh.dot_order == CTR_DOT_UPPER;
    float *dg = g->tmp[tid] + d * ne + ne * ne;
    for (size_t b = b0; b < b1; b++) {
        const float *p = g->dT + b * g->tin + has_dense * d;
        memset(dg, 0, ne * ne * sizeof(float));
        for (size_t i = 0; i < ne; i++) {
            size_t j0 = upper ? (self ? i : i + 1) : 0, j1 = upper ? ne : i + self;
            for (size_t j = j0; j < j1; j++) {
                float v = *p++;
                if (i == j) {
                    dg[i * ne + i] = 2.0f * v;
                } else {
                    dg[i * ne + j] = v;
                    dg[j * ne + i] = v;
                }
            }
        }
        float *dx = g->dX + b * g->ldx;
        c->linear(dg, ne, ne, ne, g->X + b * g->ldx, d, g->zeros, d, dx, d, CTR_ACT_NONE, g->sh.beta);
        if (has_dense) {
            const float *dt = g->dT + b * g->tin;
            for (size_t a = 0; a < d; a++)
                dx[a] = dx[a] + dt[a];
        }
    }
}

static void fwd_dcn(const step_ctx_t *c, size_t b0, size_t b1)
{
    const ctr__graph_t *g = c->g;
    const size_t n = b1 - b0, D = g->ldx, r = g->sh.rank;
    const float *x0 = g->X + b0 * D, *xin = x0;
    for (size_t l = 0; l < g->sh.n_cross; l++) {
        ctr__glin_t *L = &g->lin[g->cross[l]];
        const float *t = r ? lin_fwd(c, L + 1, lin_fwd(c, L, xin, D, b0, n), r, b0, n)
                           : lin_fwd(c, L, xin, D, b0, n);
        float *xo = g->xl[l] + b0 * D;
        for (size_t b = 0; b < n; b++)
            c->fma(x0 + b * D, t + b * D, xin + b * D, xo + b * D, D);
        xin = xo;
    }
    for (size_t b = 0; b < n; b++)
        memcpy(g->T + (b0 + b) * g->tin, xin + b * D, D * sizeof(float));
    if (g->sh.structure == CTR_DCN_PARALLEL) {
        const float *e = ctr__graph_mlp_fwd(c, &g->deep, x0, D, b0, n);
        const size_t w = g->tin - D;
        for (size_t b = 0; b < n; b++)
            memcpy(g->T + (b0 + b) * g->tin + D, e + b * w, w * sizeof(float));
    }
}

static void bwd_dcn(const step_ctx_t *c, size_t b0, size_t b1)
{
    const ctr__graph_t *g = c->g;
    const size_t n = b1 - b0, D = g->ldx, r = g->sh.rank, nD = n * D;
    float *dx = g->dX + b0 * D, *dx0 = g->dx0 + b0 * D, *bk = g->dbk + b0 * D;
    const float *x0 = g->X + b0 * D;
    for (size_t b = 0; b < n; b++)
        memcpy(dx + b * D, g->dT + (b0 + b) * g->tin, D * sizeof(float));
    if (g->sh.structure == CTR_DCN_PARALLEL) {
        const ctr__glin_t *last = &g->lin[g->deep.first + g->deep.n - 1];
        const size_t w = last->out;
        for (size_t b = 0; b < n; b++)
            memcpy(last->dZ + (b0 + b) * w, g->dT + (b0 + b) * g->tin + D, w * sizeof(float));
        ctr__graph_mlp_bwd(c, &g->deep, b0, n, dx0, D);
    } else {
        memset(dx0, 0, nD * sizeof(float));
    }
    for (size_t l = g->sh.n_cross; l-- > 0;) {
        ctr__glin_t *L = &g->lin[g->cross[l]], *Lt = r ? L + 1 : L;
        const float *t = Lt->Z + b0 * D;
        float *dt = Lt->dZ + b0 * D;
        for (size_t i = 0; i < nD; i++) {
            dt[i] = dx[i] * x0[i];
            dx0[i] = fmaf(dx[i], t[i], dx0[i]);
        }
        if (r) {
            float *dv = L->dZ + b0 * r;
            c->linear(dt, D, n, D, Lt->WT, r, g->zeros, r, dv, r, CTR_ACT_NONE, g->sh.beta);
            c->linear(dv, r, n, r, L->WT, D, g->zeros, D, bk, D, CTR_ACT_NONE, g->sh.beta);
        } else {
            c->linear(dt, D, n, D, L->WT, D, g->zeros, D, bk, D, CTR_ACT_NONE, g->sh.beta);
        }
        for (size_t i = 0; i < nD; i++)
            dx[i] = dx[i] + bk[i];
    }
    for (size_t i = 0; i < nD; i++)
        dx[i] = dx[i] + dx0[i];
}

static void phase_a_chunk(step_ctx_t *c, size_t b0, size_t b1, unsigned tid)
{
    ctr__graph_t *g = c->g;
    const size_t n = b1 - b0, nd = g->sh.n_dense, d = g->d, ldx = g->ldx, tin = g->tin;
    gather(c, b0, b1);
    if (g->has_bottom) {
        const float *e = ctr__graph_mlp_fwd(c, &g->bottom, c->dense + b0 * nd, nd, b0, n);
        for (size_t b = 0; b < n; b++)
            memcpy(g->X + (b0 + b) * ldx, e + b * d, d * sizeof(float));
    } else if (nd) {
        for (size_t b = b0; b < b1; b++)
            memcpy(g->X + b * ldx, c->dense + b * nd, nd * sizeof(float));
    }
    switch (g->sh.arch) { /* the interaction: X -> the top input T */
    case CTR_ARCH_DOT: fwd_dot(c, b0, b1, tid); break;
    case CTR_ARCH_DCNV2: fwd_dcn(c, b0, b1); break;
    case CTR_ARCH_WUKONG: ctr__twk_fwd(c, b0, b1, tid); break;
    default: CTR_ASSERT(!"architecture not trained here");
    }
    const float *logit = ctr__graph_mlp_fwd(c, &g->top, g->T + b0 * tin, tin, b0, n);
    ctr__glin_t *out = &g->lin[g->top.first + g->top.n - 1];
    /* d(mean BCE)/dz = (sigmoid(z) - y) / bn, as train_net.c */
    float inv_bn = 1.0f / (float)c->bn;
    for (size_t b = b0; b < b1; b++) {
        float z = logit[b - b0];
        float p = ctr_sigmoid(z);
        float y = c->labels[b] ? 1.0f : 0.0f;
        out->dZ[b] = (p - y) * inv_bn;
        double pc = p < 1e-7f ? 1e-7 : p > 1.0f - 1e-7f ? 1.0 - 1e-7 : (double)p;
        g->loss[b] = (float)(y > 0.5f ? -log(pc) : -log1p(-pc));
    }
    ctr__graph_mlp_bwd(c, &g->top, b0, n, g->dT + b0 * tin, tin);
    switch (g->sh.arch) { /* and back: dT -> dX */
    case CTR_ARCH_DOT: bwd_dot(c, b0, b1, tid); break;
    case CTR_ARCH_DCNV2: bwd_dcn(c, b0, b1); break;
    case CTR_ARCH_WUKONG: ctr__twk_bwd(c, b0, b1, tid); break;
    default: CTR_ASSERT(!"architecture not trained here");
    }
    if (g->has_bottom) {
        ctr__glin_t *last = &g->lin[g->bottom.first + g->bottom.n - 1];
        for (size_t b = b0; b < b1; b++)
            memcpy(last->dZ + b * d, g->dX + b * ldx, d * sizeof(float));
        ctr__graph_mlp_bwd(c, &g->bottom, b0, n, NULL, 0);
    }
}

static void phase_a(void *arg, unsigned tid)
{
    step_ctx_t *c = arg;
    size_t n_chunks = (c->bn + FWD_CHUNK - 1) / FWD_CHUNK;
    for (;;) {
        size_t t = __atomic_fetch_add(&c->next, 1, __ATOMIC_RELAXED);
        if (t >= n_chunks)
            break;
        size_t b0 = t * FWD_CHUNK, b1 = b0 + FWD_CHUNK < c->bn ? b0 + FWD_CHUNK : c->bn;
        phase_a_chunk(c, b0, b1, tid);
    }
}

/* ---- phase B ---------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Owned table j: every slot that reads it, keyed (row, example, slot), so
 * a row's gradient is summed in example order, slot order within one. */
static void update_table(step_ctx_t *c, size_t j, unsigned tid)
{
    ctr__graph_t *g = c->g;
    const size_t bn = c->bn, nc = g->sh.n_cat, S = g->slots, d = g->d;
    uint64_t *keys = g->keys[tid];
    float *gr = g->gbuf[tid];
    size_t nk = 0;
    for (size_t b = 0; b < bn; b++)
        for (size_t f = j; f < nc; f++) {
            if (g->owner[f] != j)
                continue;
            for (size_t s = g->slot0[f]; s < g->slot0[f + 1]; s++) {
                uint32_t row = c->rows[b * S + s];
                if (row == CTR_EMPTY_SLOT && g->sh.cat[f].bag_max)
                    continue;
                keys[nk++] = (uint64_t)row << 32 | (uint64_t)(b * S + s);
            }
        }
    qsort(keys, nk, sizeof(uint64_t), cmp_u64);
    for (size_t i = 0; i < nk;) {
        uint32_t row = (uint32_t)(keys[i] >> 32);
        memset(gr, 0, d * sizeof(float));
        for (; i < nk && (uint32_t)(keys[i] >> 32) == row; i++) {
            size_t bs = (uint32_t)keys[i], b = bs / S, f = g->slot_feat[bs % S];
            const float *src = g->dX + b * g->ldx + g->emb_off + f * d;
            const ctr_cat_def_t *cd = &g->sh.cat[f];
            if (cd->bag_max && cd->pool == CTR_POOL_MEAN) {
                const float cnt = (float)g->cnt[b * nc + f];
                for (size_t e = 0; e < d; e++)
                    gr[e] += src[e] / cnt;
            } else {
                for (size_t e = 0; e < d; e++)
                    gr[e] += src[e];
            }
        }
        float *w = g->table[j] + (size_t)row * d;
        if (g->gT)
            memcpy(g->gT[j] + (size_t)row * d, gr, d * sizeof(float));
        if (!c->update)
            continue;
        ctr__rowwise_adagrad(w, gr, d, &g->acc[j][row], g->emb_l2, g->emb_lr);
    }
}

static void update_lin(step_ctx_t *c, ctr__glin_t *L, uint32_t r0, uint32_t r1)
{
    const ctr__graph_t *g = c->g;
    const size_t bn = c->bn * L->rows, out = L->out;
    float *gw = L->gW + (size_t)r0 * out;
    /* gW[r][o] = sum_b AT[r][b] dZ[b][o] over the batch rows (rows per
     * example); the bias row of AT is all ones. */
    c->linear(L->AT + (size_t)r0 * bn, bn, r1 - r0, bn, L->dZ, out, g->zeros, out, gw, out,
              CTR_ACT_NONE, g->sh.beta);
    if (!c->update)
        return;
    size_t n = (size_t)(r1 - r0) * out;
    float *w = L->W + (size_t)r0 * out, *m = L->m + (size_t)r0 * out, *v = L->v + (size_t)r0 * out;
    if (g->opt == CTR_OPTIM_ADAM)
        ctr__adam_update(w, m, v, gw, n, c->lr_t);
    else
        ctr__adagrad_update(w, v, gw, n, g->lr);
    sync_transpose(L, r0, r1);
}

static void phase_b(void *arg, unsigned tid)
{
    step_ctx_t *c = arg;
    ctr__graph_t *g = c->g;
    for (;;) {
        size_t t = __atomic_fetch_add(&c->next, 1, __ATOMIC_RELAXED);
        if (t >= g->n_tasks)
            break;
        if (g->task_lin[t] == UINT32_MAX)
            update_table(c, g->task_r0[t], tid);
        else
            update_lin(c, &g->lin[g->task_lin[t]], g->task_r0[t], g->task_r1[t]);
    }
}

double ctr__graph_step(ctr__graph_t *g, const ctr_kernel_t *k, ctr__pool_t *pool,
                       size_t bn, const float *dense, const uint32_t *rows,
                       const uint8_t *labels, int update)
{
    CTR_ASSERT(bn > 0 && bn <= g->max_batch);
    CTR_ASSERT(ctr__pool_size(pool) <= g->n_threads);
    step_ctx_t c = {g, k->linear, k->pool ? k->pool : ctr__pool_scalar, k->fma ? k->fma : ctr__fma_scalar,
                    bn, dense, rows, labels, update, 0.0f, 0};
    if (update) {
        g->step++;
        g->b1t *= CTR__ADAM_B1;
        g->b2t *= CTR__ADAM_B2;
        c.lr_t = (float)(g->lr * sqrt(1.0 - g->b2t) / (1.0 - g->b1t));
    }
    ctr__pool_run(pool, phase_a, &c);
    c.next = 0;
    ctr__pool_run(pool, phase_b, &c);
    double sum = 0;
    for (size_t b = 0; b < bn; b++)
        sum += g->loss[b];
    return sum;
}
