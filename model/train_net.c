/* train_net.c - the trainer's network: parameters, one mini-batch step
 * (forward, backward, optimizers) and initialisation (layout in
 * train_int.h, determinism contract in train.h).
 *
 * One step over a mini-batch runs in two parallel phases:
 *  A. per chunk of examples: gather embeddings, forward through every
 *     layer (kernel linear with no activation, then the activation here, so
 *     the pre-activations stay for the backward pass), the loss gradient,
 *     and the backward pass down to the input (dA = dZ W^T, also a kernel
 *     product with W transposed). Each example's values depend on that
 *     example only.
 *  B. per task: a chunk of rows of one layer's weight block (gradient
 *     X^T dZ as a kernel product over the batch, then the optimizer on
 *     those rows: Adam or Adagrad), or one whole embedding table (sum each
 *     touched row's gradient over the batch in example order, then
 *     row-wise Adagrad).
 * A bag feature is pooled in phase A by the serving op (the same bits as
 * ctr_forward); in phase B each of its rows gets the pooled gradient
 * (mean: divided by the bag's size), its contributions summed in
 * (example, slot) order, so a row twice in one bag counts twice.
 * Every float lands in one place computed by one fixed chain of
 * operations, so threads change speed, never bits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/forward.h"
#include "ctr/kernels.h"
#include "ctr/features.h"
#include "ctr/rng.h"
#include "kernels_int.h"
#include "train_int.h"

#define FWD_CHUNK 32      /* examples per phase-A task */
#define ROW_CHUNK 16      /* weight rows per phase-B task */

static float rng_sym(uint64_t *s, float a) /* uniform in [-a, a) */
{
    float u = (float)(ctr_splitmix64_next(s) >> 40) * (1.0f / 16777216.0f);
    return (2.0f * u - 1.0f) * a;
}

static float *falloc(size_t n)
{
    return calloc(n ? n : 1, sizeof(float));
}

void ctr__net_free(ctr__net_t *net)
{
    if (!net)
        return;
    for (size_t j = 0; j < net->n_cat; j++) {
        if (net->table)
            free(net->table[j]);
        if (net->acc)
            free(net->acc[j]);
        if (net->gT)
            free(net->gT[j]);
    }
    for (size_t l = 0; l < net->n_layers; l++) {
        float **arrs[] = {net->W, net->WT, net->gW, net->m, net->v, net->A, net->Z, net->dZ, net->AT};
        for (size_t a = 0; a < CTR_ARRAY_LEN(arrs); a++)
            if (arrs[a])
                free(arrs[a][l]);
    }
    for (unsigned t = 0; t < net->n_threads; t++) {
        if (net->keys)
            free(net->keys[t]);
        if (net->gbuf)
            free(net->gbuf[t]);
        if (net->cnt)
            free(net->cnt[t]);
    }
    free(net->table);
    free(net->acc);
    free(net->gT);
    free(net->W);
    free(net->WT);
    free(net->gW);
    free(net->m);
    free(net->v);
    free(net->A);
    free(net->Z);
    free(net->dZ);
    free(net->AT);
    free(net->keys);
    free(net->gbuf);
    free(net->cnt);
    free(net->dA0);
    free(net->zeros);
    free(net->loss);
    free(net->dims);
    free(net->cat_dim);
    free(net->cat_buckets);
    free(net->cat_off);
    free(net->cat_bag);
    free(net->cat_pool);
    free(net->cat_slot);
    free(net->task_layer);
    free(net->task_r0);
    free(net->task_r1);
    memset(net, 0, sizeof(*net));
}

int ctr__net_init(ctr__net_t *net, const ctr_model_def_t *def, size_t max_batch,
                  unsigned n_threads, int keep_grads)
{
    memset(net, 0, sizeof(*net));
    size_t L = def->n_layers, nc = def->n_cat;
    net->n_dense = def->n_dense;
    net->n_cat = nc;
    net->n_layers = L;
    net->act = def->activation;
    net->beta = def->beta;
    net->max_batch = max_batch;
    net->n_threads = n_threads ? n_threads : 1;
    net->b1t = net->b2t = 1.0;
    size_t B = max_batch;

    if (!(net->dims = calloc(L + 1, sizeof(uint32_t))) ||
        !(net->cat_dim = calloc(nc + 1, sizeof(uint32_t))) ||
        !(net->cat_buckets = calloc(nc + 1, sizeof(uint32_t))) ||
        !(net->cat_off = calloc(nc + 1, sizeof(size_t))) ||
        !(net->cat_bag = calloc(nc + 1, sizeof(uint32_t))) ||
        !(net->cat_pool = calloc(nc + 1, sizeof(ctr_pool_t))) ||
        !(net->cat_slot = calloc(nc + 1, sizeof(size_t))))
        goto fail;
    size_t off = def->n_dense, slot = 0, maxw = 1;
    for (size_t j = 0; j < nc; j++) {
        net->cat_dim[j] = def->cat[j].dim;
        net->cat_buckets[j] = def->cat[j].buckets;
        net->cat_off[j] = off;
        off += def->cat[j].dim;
        net->cat_bag[j] = def->cat[j].bag_max;
        net->cat_pool[j] = def->cat[j].pool;
        net->cat_slot[j] = slot;
        slot += ctr_features_width(&def->cat[j]);
        maxw = ctr_features_width(&def->cat[j]) > maxw ? ctr_features_width(&def->cat[j]) : maxw;
    }
    net->slots = slot;
    for (size_t l = 0; l < L; l++)
        net->dims[l] = def->layers[l].in;
    net->dims[L] = def->layers[L - 1].out;
    CTR_ASSERT(net->dims[0] == off && net->dims[L] == 1);

    uint32_t maxd = 1;
    for (size_t l = 0; l <= L; l++)
        maxd = net->dims[l] > maxd ? net->dims[l] : maxd;

#define ARR(f, n) (net->f = calloc((n) ? (n) : 1, sizeof(*net->f)))
    if (!ARR(table, nc) || !ARR(acc, nc) || (keep_grads && !ARR(gT, nc)) ||
        !ARR(W, L) || !ARR(WT, L) || !ARR(gW, L) || !ARR(m, L) || !ARR(v, L) ||
        !ARR(A, L) || !ARR(Z, L) || !ARR(dZ, L) || !ARR(AT, L) ||
        !ARR(keys, net->n_threads) || !ARR(gbuf, net->n_threads) || !ARR(cnt, net->n_threads))
        goto fail;
#undef ARR
    for (size_t j = 0; j < nc; j++) {
        size_t rows = (size_t)def->cat[j].buckets + 1;
        if (!(net->table[j] = falloc(rows * def->cat[j].dim)) || !(net->acc[j] = falloc(rows)) ||
            (keep_grads && !(net->gT[j] = falloc(rows * def->cat[j].dim))))
            goto fail;
    }
    size_t n_tasks = nc;
    for (size_t l = 0; l < L; l++) {
        size_t in = net->dims[l], out = net->dims[l + 1], blk = (in + 1) * out;
        if (!(net->W[l] = falloc(blk)) || !(net->WT[l] = falloc(in * out)) ||
            !(net->gW[l] = falloc(blk)) || !(net->m[l] = falloc(blk)) ||
            !(net->v[l] = falloc(blk)) || !(net->A[l] = falloc(B * in)) ||
            !(net->Z[l] = falloc(B * out)) || !(net->dZ[l] = falloc(B * out)) ||
            !(net->AT[l] = falloc((in + 1) * B)))
            goto fail;
        n_tasks += (in + 1 + ROW_CHUNK - 1) / ROW_CHUNK;
    }
    uint32_t maxdim = 1;
    for (size_t j = 0; j < nc; j++)
        maxdim = net->cat_dim[j] > maxdim ? net->cat_dim[j] : maxdim;
    for (unsigned t = 0; t < net->n_threads; t++)
        if (!(net->keys[t] = calloc(B * maxw, sizeof(uint64_t))) || !(net->gbuf[t] = falloc(maxdim)) ||
            !(net->cnt[t] = calloc(B, sizeof(uint32_t))))
            goto fail;
    if (!(net->dA0 = falloc(B * net->dims[0])) || !(net->zeros = falloc(maxd)) ||
        !(net->loss = falloc(B)))
        goto fail;

    /* Phase-B tasks: the big weight chunks first, tables after. */
    net->n_tasks = n_tasks;
    if (!(net->task_layer = calloc(n_tasks, sizeof(uint32_t))) ||
        !(net->task_r0 = calloc(n_tasks, sizeof(uint32_t))) ||
        !(net->task_r1 = calloc(n_tasks, sizeof(uint32_t))))
        goto fail;
    size_t t = 0;
    for (size_t l = 0; l < L; l++)
        for (uint32_t r = 0; r < net->dims[l] + 1; r += ROW_CHUNK) {
            net->task_layer[t] = (uint32_t)l;
            net->task_r0[t] = r;
            net->task_r1[t] = r + ROW_CHUNK < net->dims[l] + 1 ? r + ROW_CHUNK : net->dims[l] + 1;
            t++;
        }
    for (size_t j = 0; j < nc; j++, t++) {
        net->task_layer[t] = UINT32_MAX;
        net->task_r0[t] = (uint32_t)j;
    }
    return 0;
fail:
    ctr__net_free(net);
    return CTR_ENOMEM;
}

static void sync_transpose(ctr__net_t *net, size_t l, uint32_t r0, uint32_t r1)
{
    uint32_t in = net->dims[l], out = net->dims[l + 1];
    if (r1 > in)
        r1 = in;
    for (uint32_t r = r0; r < r1; r++)
        for (uint32_t o = 0; o < out; o++)
            net->WT[l][(size_t)o * in + r] = net->W[l][(size_t)r * out + o];
}

void ctr__net_init_params(ctr__net_t *net, uint64_t seed, float out_bias, float emb_scale)
{
    for (size_t j = 0; j < net->n_cat; j++) {
        uint64_t s = ctr__train_rng_stream(seed, 1000 + j);
        size_t n = ((size_t)net->cat_buckets[j] + 1) * net->cat_dim[j];
        for (size_t i = 0; i < n; i++)
            net->table[j][i] = rng_sym(&s, emb_scale);
        memset(net->acc[j], 0, ((size_t)net->cat_buckets[j] + 1) * sizeof(float));
    }
    for (size_t l = 0; l < net->n_layers; l++) {
        uint64_t s = ctr__train_rng_stream(seed, 1 + l);
        uint32_t in = net->dims[l], out = net->dims[l + 1];
        int last = l + 1 == net->n_layers;
        /* He-uniform into a rectifier; Glorot-uniform into the sigmoid. */
        float a = last ? sqrtf(6.0f / (float)(in + out)) : sqrtf(6.0f / (float)in);
        size_t blk = ((size_t)in + 1) * out;
        for (size_t i = 0; i < (size_t)in * out; i++)
            net->W[l][i] = rng_sym(&s, a);
        for (size_t o = 0; o < out; o++)
            net->W[l][(size_t)in * out + o] = last ? out_bias : 0.0f;
        memset(net->m[l], 0, blk * sizeof(float));
        memset(net->v[l], 0, blk * sizeof(float));
        sync_transpose(net, l, 0, in);
    }
    net->step = 0;
    net->b1t = net->b2t = 1.0;
}

void ctr__net_export(const ctr__net_t *net, ctr_layer_def_t *layers, ctr_cat_def_t *cat)
{
    for (size_t l = 0; l < net->n_layers; l++) {
        layers[l].in = net->dims[l];
        layers[l].out = net->dims[l + 1];
        layers[l].weight = net->W[l];
        layers[l].ldw = 0; /* packed */
        layers[l].bias = net->W[l] + (size_t)net->dims[l] * net->dims[l + 1];
    }
    for (size_t j = 0; j < net->n_cat; j++) {
        cat[j].buckets = net->cat_buckets[j];
        cat[j].dim = net->cat_dim[j];
        cat[j].table = net->table[j];
    }
}

static inline float act_fwd(ctr_activation_t act, float z, float beta)
{
    if (act == CTR_ACT_SMELU)
        return ctr_smelu(z, beta);
    return z > 0.0f ? z : 0.0f;
}

static inline float act_grad(ctr_activation_t act, float z, float beta)
{
    if (act == CTR_ACT_SMELU)
        return ctr_smelu_grad(z, beta);
    return z > 0.0f ? 1.0f : 0.0f;
}

typedef struct {
    ctr__net_t *net;
    const ctr_kernel_t *k;
    size_t bn;
    const float *dense;
    const uint32_t *rows;
    const uint8_t *labels;
    int update;
    float lr_t;              /* Adam: lr * sqrt(1 - b2^t) / (1 - b1^t) */
    size_t next;             /* atomic task counter */
} step_ctx_t;

static void phase_a_chunk(step_ctx_t *c, size_t b0, size_t b1)
{
    ctr__net_t *net = c->net;
    const ctr_kernel_t *k = c->k;
    size_t bn = c->bn, n = b1 - b0, L = net->n_layers, nd = net->n_dense, nc = net->n_cat;
    size_t ns = net->slots;
    uint32_t in0 = net->dims[0];
    ctr_pool_fn pool = k->pool ? k->pool : ctr__pool_scalar;
    for (size_t b = b0; b < b1; b++) {
        float *x = net->A[0] + b * in0;
        memcpy(x, c->dense + b * nd, nd * sizeof(float));
        for (size_t j = 0; j < nc; j++) {
            const uint32_t *rs = c->rows + b * ns + net->cat_slot[j];
            uint32_t d = net->cat_dim[j];
            if (net->cat_bag[j])
                pool(net->table[j], d, rs, net->cat_bag[j], net->cat_pool[j], x + net->cat_off[j]);
            else
                memcpy(x + net->cat_off[j], net->table[j] + (size_t)rs[0] * d, d * sizeof(float));
        }
    }
    for (size_t l = 0; l < L; l++) {
        uint32_t in = net->dims[l], out = net->dims[l + 1];
        float *a = net->A[l] + b0 * in, *z = net->Z[l] + b0 * out;
        k->linear(a, in, n, in, net->W[l], out, net->W[l] + (size_t)in * out, out, z, out,
                  CTR_ACT_NONE, net->beta);
        if (l + 1 < L) {
            float *an = net->A[l + 1] + b0 * out;
            for (size_t i = 0; i < n * out; i++)
                an[i] = act_fwd(net->act, z[i], net->beta);
        }
        float *at = net->AT[l];
        for (size_t b = b0; b < b1; b++) {
            const float *ar = net->A[l] + b * in;
            for (uint32_t i = 0; i < in; i++)
                at[(size_t)i * bn + b] = ar[i];
            at[(size_t)in * bn + b] = 1.0f;
        }
    }
    /* d(mean BCE)/dz = (sigmoid(z) - y) / bn */
    float inv_bn = 1.0f / (float)bn;
    for (size_t b = b0; b < b1; b++) {
        float z = net->Z[L - 1][b];
        float p = ctr_sigmoid(z);
        float y = c->labels[b] ? 1.0f : 0.0f;
        net->dZ[L - 1][b] = (p - y) * inv_bn;
        double pc = p < 1e-7f ? 1e-7 : p > 1.0f - 1e-7f ? 1.0 - 1e-7 : (double)p;
        net->loss[b] = (float)(y > 0.5f ? -log(pc) : -log1p(-pc));
    }
    for (size_t l = L; l-- > 0;) {
        uint32_t in = net->dims[l], out = net->dims[l + 1];
        if (l == 0 && nc == 0)
            break;
        float *dst = (l > 0 ? net->dZ[l - 1] : net->dA0) + b0 * in;
        k->linear(net->dZ[l] + b0 * out, out, n, out, net->WT[l], in, net->zeros, in, dst, in,
                  CTR_ACT_NONE, net->beta);
        if (l > 0) {
            const float *z = net->Z[l - 1] + b0 * in;
            for (size_t i = 0; i < n * in; i++)
                dst[i] *= act_grad(net->act, z[i], net->beta);
        }
    }
}

static void phase_a(void *arg, unsigned tid)
{
    (void)tid;
    step_ctx_t *c = arg;
    size_t n_chunks = (c->bn + FWD_CHUNK - 1) / FWD_CHUNK;
    for (;;) {
        size_t t = __atomic_fetch_add(&c->next, 1, __ATOMIC_RELAXED);
        if (t >= n_chunks)
            break;
        size_t b0 = t * FWD_CHUNK, b1 = b0 + FWD_CHUNK < c->bn ? b0 + FWD_CHUNK : c->bn;
        phase_a_chunk(c, b0, b1);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Table j's touched rows: each row's gradient summed over the batch in
 * (example, slot) order, then row-wise Adagrad. A key is row << 32 |
 * example * width + slot (width = the feature's slots; bn * width < 2^26),
 * so one sort gives that order; a single-valued feature's keys are row <<
 * 32 | example, as before bags. */
static void update_table(step_ctx_t *c, size_t j, unsigned tid)
{
    ctr__net_t *net = c->net;
    size_t bn = c->bn, ns = net->slots, nk = 0;
    uint32_t d = net->cat_dim[j], in0 = net->dims[0], bag = net->cat_bag[j];
    uint32_t width = bag ? bag : 1;
    uint64_t *keys = net->keys[tid];
    uint32_t *cnt = net->cnt[tid];
    int mean = bag && net->cat_pool[j] == CTR_POOL_MEAN;
    float *g = net->gbuf[tid];
    for (size_t b = 0; b < bn; b++) {
        const uint32_t *rs = c->rows + b * ns + net->cat_slot[j];
        uint32_t m = 0;
        for (uint32_t q = 0; q < width; q++) {
            if (bag && rs[q] == CTR_EMPTY_SLOT)
                continue;
            keys[nk++] = (uint64_t)rs[q] << 32 | (b * width + q);
            m++;
        }
        cnt[b] = m;
    }
    qsort(keys, nk, sizeof(uint64_t), cmp_u64);
    const float *da = net->dA0 + net->cat_off[j];
    for (size_t i = 0; i < nk;) {
        uint32_t row = (uint32_t)(keys[i] >> 32);
        memset(g, 0, d * sizeof(float));
        for (; i < nk && (uint32_t)(keys[i] >> 32) == row; i++) {
            size_t b = (uint32_t)keys[i] / width;
            const float *src = da + b * in0;
            if (mean) {
                /* d(acc / count) / d acc: the pooled gradient over count. */
                const float m = (float)cnt[b];
                for (uint32_t e = 0; e < d; e++)
                    g[e] += src[e] / m;
            } else {
                for (uint32_t e = 0; e < d; e++)
                    g[e] += src[e];
            }
        }
        float *w = net->table[j] + (size_t)row * d;
        if (net->gT)
            memcpy(net->gT[j] + (size_t)row * d, g, d * sizeof(float));
        if (!c->update)
            continue;
        ctr__rowwise_adagrad(w, g, d, &net->acc[j][row], net->emb_l2, net->emb_lr);
    }
}

static void update_weights(step_ctx_t *c, size_t l, uint32_t r0, uint32_t r1)
{
    ctr__net_t *net = c->net;
    size_t bn = c->bn;
    uint32_t out = net->dims[l + 1];
    float *gw = net->gW[l] + (size_t)r0 * out;
    /* gW[r][o] = sum_b AT[r][b] dZ[b][o]; row `in` of AT is all ones. */
    c->k->linear(net->AT[l] + (size_t)r0 * bn, bn, r1 - r0, bn, net->dZ[l], out, net->zeros, out,
                 gw, out, CTR_ACT_NONE, net->beta);
    if (!c->update)
        return;
    size_t n = (size_t)(r1 - r0) * out;
    float *w = net->W[l] + (size_t)r0 * out, *m = net->m[l] + (size_t)r0 * out,
          *v = net->v[l] + (size_t)r0 * out;
    if (net->opt == CTR_OPTIM_ADAM)
        ctr__adam_update(w, m, v, gw, n, c->lr_t);
    else
        ctr__adagrad_update(w, v, gw, n, net->lr);
    sync_transpose(net, l, r0, r1);
}

static void phase_b(void *arg, unsigned tid)
{
    step_ctx_t *c = arg;
    ctr__net_t *net = c->net;
    for (;;) {
        size_t t = __atomic_fetch_add(&c->next, 1, __ATOMIC_RELAXED);
        if (t >= net->n_tasks)
            break;
        if (net->task_layer[t] == UINT32_MAX)
            update_table(c, net->task_r0[t], tid);
        else
            update_weights(c, net->task_layer[t], net->task_r0[t], net->task_r1[t]);
    }
}

double ctr__net_step(ctr__net_t *net, const ctr_kernel_t *k, ctr__pool_t *pool,
                     size_t bn, const float *dense, const uint32_t *rows,
                     const uint8_t *labels, int update)
{
    CTR_ASSERT(bn > 0 && bn <= net->max_batch);
    CTR_ASSERT(ctr__pool_size(pool) <= net->n_threads);
    step_ctx_t c = {net, k, bn, dense, rows, labels, update, 0.0f, 0};
    if (update) {
        net->step++;
        net->b1t *= CTR__ADAM_B1;
        net->b2t *= CTR__ADAM_B2;
        c.lr_t = (float)(net->lr * sqrt(1.0 - net->b2t) / (1.0 - net->b1t));
    }
    ctr__pool_run(pool, phase_a, &c);
    c.next = 0;
    ctr__pool_run(pool, phase_b, &c);
    double sum = 0;
    for (size_t b = 0; b < bn; b++)
        sum += net->loss[b];
    return sum;
}
