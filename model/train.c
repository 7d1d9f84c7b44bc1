/* train.c - the trainer (contract in train.h, network layout in
 * train_int.h).
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
 *     those rows), or one whole embedding table (sum each touched row's
 *     gradient over the batch in example order, then row-wise Adagrad).
 * Every float lands in one place computed by one fixed chain of
 * operations, so threads change speed, never bits. */
#include "ctr/train.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __SSE2__
#include <immintrin.h>
#endif

#include "ctr/common.h"
#include "ctr/features.h"
#include "ctr/forward.h"
#include "train_int.h"


#define FWD_CHUNK 32      /* examples per phase-A task */
#define ROW_CHUNK 16      /* weight rows per phase-B task */
#define ADAM_B1 0.9
#define ADAM_B2 0.999
#define ADAM_EPS 1e-8f
#define ADAGRAD_EPS 1e-8f

/* ---- thread pool ---- */

struct ctr__pool {
    unsigned n;
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    void (*fn)(void *, unsigned);
    void *ctx;
    unsigned long gen;
    unsigned running;
    int stop;
    struct pool_arg {
        struct ctr__pool *p;
        unsigned tid;
    } *args;
};

static void *pool_main(void *arg)
{
    struct pool_arg *a = arg;
    ctr__pool_t *p = a->p;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->gen == seen)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->stop)
            break;
        seen = p->gen;
        void (*fn)(void *, unsigned) = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->mu);
        fn(ctx, a->tid);
        pthread_mutex_lock(&p->mu);
        if (--p->running == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

ctr__pool_t *ctr__pool_new(unsigned n)
{
    ctr__pool_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->n = n ? n : 1;
    if (p->n == 1)
        return p;
    p->th = calloc(p->n, sizeof(*p->th));
    p->args = calloc(p->n, sizeof(*p->args));
    if (!p->th || !p->args)
        goto fail;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    for (unsigned t = 1; t < p->n; t++) {
        p->args[t] = (struct pool_arg){p, t};
        if (pthread_create(&p->th[t], NULL, pool_main, &p->args[t])) {
            p->n = t; /* join what started */
            ctr__pool_free(p);
            return NULL;
        }
    }
    return p;
fail:
    free(p->th);
    free(p->args);
    free(p);
    return NULL;
}

void ctr__pool_free(ctr__pool_t *p)
{
    if (!p)
        return;
    if (p->n > 1) {
        pthread_mutex_lock(&p->mu);
        p->stop = 1;
        pthread_cond_broadcast(&p->go);
        pthread_mutex_unlock(&p->mu);
        for (unsigned t = 1; t < p->n; t++)
            pthread_join(p->th[t], NULL);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->go);
        pthread_cond_destroy(&p->done);
    }
    free(p->th);
    free(p->args);
    free(p);
}

unsigned ctr__pool_size(const ctr__pool_t *p)
{
    return p ? p->n : 1;
}

void ctr__pool_run(ctr__pool_t *p, void (*fn)(void *, unsigned), void *ctx)
{
    if (!p || p->n == 1) {
        fn(ctx, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->running = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0);
    pthread_mutex_lock(&p->mu);
    while (p->running)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* ---- random numbers: splitmix64, the same on every platform ---- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rng_sym(uint64_t *s, float a) /* uniform in [-a, a) */
{
    float u = (float)(rng_next(s) >> 40) * (1.0f / 16777216.0f);
    return (2.0f * u - 1.0f) * a;
}

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rng_next(s) * n) >> 64);
}

static uint64_t rng_stream(uint64_t seed, uint64_t stream)
{
    uint64_t s = seed ^ (stream * 0xd1342543de82ef95ull);
    rng_next(&s);
    return s;
}

static void shuffle(uint32_t *idx, size_t n, uint64_t *s)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(s, i);
        uint32_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

/* ---- the network ---- */

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
    free(net->dA0);
    free(net->zeros);
    free(net->loss);
    free(net->dims);
    free(net->cat_dim);
    free(net->cat_buckets);
    free(net->cat_off);
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
        !(net->cat_off = calloc(nc + 1, sizeof(size_t))))
        goto fail;
    size_t off = def->n_dense;
    for (size_t j = 0; j < nc; j++) {
        net->cat_dim[j] = def->cat[j].dim;
        net->cat_buckets[j] = def->cat[j].buckets;
        net->cat_off[j] = off;
        off += def->cat[j].dim;
    }
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
        !ARR(keys, net->n_threads) || !ARR(gbuf, net->n_threads))
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
        if (!(net->keys[t] = calloc(B, sizeof(uint64_t))) || !(net->gbuf[t] = falloc(maxdim)))
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
        uint64_t s = rng_stream(seed, 1000 + j);
        size_t n = ((size_t)net->cat_buckets[j] + 1) * net->cat_dim[j];
        for (size_t i = 0; i < n; i++)
            net->table[j][i] = rng_sym(&s, emb_scale);
        memset(net->acc[j], 0, ((size_t)net->cat_buckets[j] + 1) * sizeof(float));
    }
    for (size_t l = 0; l < net->n_layers; l++) {
        uint64_t s = rng_stream(seed, 1 + l);
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
    uint32_t in0 = net->dims[0];
    for (size_t b = b0; b < b1; b++) {
        float *x = net->A[0] + b * in0;
        memcpy(x, c->dense + b * nd, nd * sizeof(float));
        for (size_t j = 0; j < nc; j++) {
            uint32_t r = c->rows[b * nc + j], d = net->cat_dim[j];
            memcpy(x + net->cat_off[j], net->table[j] + (size_t)r * d, d * sizeof(float));
        }
    }
    for (size_t l = 0; l < L; l++) {
        uint32_t in = net->dims[l], out = net->dims[l + 1];
        float *a = net->A[l] + b0 * in, *z = net->Z[l] + b0 * out;
        k->linear(a, in, n, in, net->W[l], net->W[l] + (size_t)in * out, out, z, out,
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
        k->linear(net->dZ[l] + b0 * out, out, n, out, net->WT[l], net->zeros, in, dst, in,
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

static void update_table(step_ctx_t *c, size_t j, unsigned tid)
{
    ctr__net_t *net = c->net;
    size_t bn = c->bn, nc = net->n_cat;
    uint32_t d = net->cat_dim[j], in0 = net->dims[0];
    uint64_t *keys = net->keys[tid];
    float *g = net->gbuf[tid];
    for (size_t b = 0; b < bn; b++)
        keys[b] = (uint64_t)c->rows[b * nc + j] << 32 | b;
    qsort(keys, bn, sizeof(uint64_t), cmp_u64);
    const float *da = net->dA0 + net->cat_off[j];
    for (size_t i = 0; i < bn;) {
        uint32_t row = (uint32_t)(keys[i] >> 32);
        memset(g, 0, d * sizeof(float));
        for (; i < bn && (uint32_t)(keys[i] >> 32) == row; i++) {
            const float *src = da + (size_t)(uint32_t)keys[i] * in0;
            for (uint32_t e = 0; e < d; e++)
                g[e] += src[e];
        }
        float *w = net->table[j] + (size_t)row * d;
        if (net->gT)
            memcpy(net->gT[j] + (size_t)row * d, g, d * sizeof(float));
        if (!c->update)
            continue;
        float ss = 0.0f;
        for (uint32_t e = 0; e < d; e++) {
            g[e] += net->emb_l2 * w[e];
            ss += g[e] * g[e];
        }
        float *acc = &net->acc[j][row];
        *acc += ss / (float)d;
        float scale = net->emb_lr / (sqrtf(*acc) + ADAGRAD_EPS);
        for (uint32_t e = 0; e < d; e++)
            w[e] -= scale * g[e];
    }
}

/* Adam on n parameters. Each element goes through the same IEEE
 * operations (no fusion, correctly rounded sqrt and division) in the
 * 4-wide SSE path and the scalar tail, so the bits do not depend on where
 * a task's rows start. */
static void adam_update(float *restrict w, float *restrict m, float *restrict v,
                        const float *restrict g, size_t n, float lr_t)
{
    const float b1 = (float)ADAM_B1, b2 = (float)ADAM_B2;
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
    size_t i = 0;
#ifdef __SSE2__
    const __m128 vb1 = _mm_set1_ps(b1), vb2 = _mm_set1_ps(b2), vc1 = _mm_set1_ps(c1),
                 vc2 = _mm_set1_ps(c2), vlr = _mm_set1_ps(lr_t), veps = _mm_set1_ps(ADAM_EPS);
    for (; i + 4 <= n; i += 4) {
        __m128 gi = _mm_loadu_ps(g + i);
        __m128 mi = _mm_add_ps(_mm_mul_ps(vb1, _mm_loadu_ps(m + i)), _mm_mul_ps(vc1, gi));
        __m128 vi = _mm_add_ps(_mm_mul_ps(vb2, _mm_loadu_ps(v + i)),
                               _mm_mul_ps(_mm_mul_ps(vc2, gi), gi));
        __m128 step = _mm_div_ps(_mm_mul_ps(vlr, mi), _mm_add_ps(_mm_sqrt_ps(vi), veps));
        _mm_storeu_ps(m + i, mi);
        _mm_storeu_ps(v + i, vi);
        _mm_storeu_ps(w + i, _mm_sub_ps(_mm_loadu_ps(w + i), step));
    }
#endif
    for (; i < n; i++) {
        m[i] = b1 * m[i] + c1 * g[i];
        v[i] = b2 * v[i] + c2 * g[i] * g[i];
        w[i] -= lr_t * m[i] / (sqrtf(v[i]) + ADAM_EPS);
    }
}

static void update_weights(step_ctx_t *c, size_t l, uint32_t r0, uint32_t r1)
{
    ctr__net_t *net = c->net;
    size_t bn = c->bn;
    uint32_t out = net->dims[l + 1];
    float *gw = net->gW[l] + (size_t)r0 * out;
    /* gW[r][o] = sum_b AT[r][b] dZ[b][o]; row `in` of AT is all ones. */
    c->k->linear(net->AT[l] + (size_t)r0 * bn, bn, r1 - r0, bn, net->dZ[l], net->zeros, out,
                 gw, out, CTR_ACT_NONE, net->beta);
    if (!c->update)
        return;
    size_t n = (size_t)(r1 - r0) * out;
    float *w = net->W[l] + (size_t)r0 * out, *m = net->m[l] + (size_t)r0 * out,
          *v = net->v[l] + (size_t)r0 * out;
    if (net->opt == CTR_OPT_ADAM)
        adam_update(w, m, v, gw, n, c->lr_t);
    else
        for (size_t i = 0; i < n; i++) {
            v[i] += gw[i] * gw[i];
            w[i] -= net->lr * gw[i] / (sqrtf(v[i]) + ADAGRAD_EPS);
        }
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
        net->b1t *= ADAM_B1;
        net->b2t *= ADAM_B2;
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

/* ---- scoring with the serving path ---- */

typedef struct {
    const ctr_model_def_t *def;
    const ctr_kernel_t *k;
    size_t n, nd, nc;
    const float *dense;
    const uint32_t *rows;
    float *scores;
    ctr_scratch_t **scratch;
    size_t next;
    int rc;
} score_ctx_t;

#define SCORE_CHUNK 512

static void score_worker(void *arg, unsigned tid)
{
    score_ctx_t *c = arg;
    for (;;) {
        size_t t = __atomic_fetch_add(&c->next, 1, __ATOMIC_RELAXED);
        size_t i0 = t * SCORE_CHUNK;
        if (i0 >= c->n)
            break;
        size_t m = c->n - i0 < SCORE_CHUNK ? c->n - i0 : SCORE_CHUNK;
        int rc = ctr_forward(c->def, c->k, m, c->dense + i0 * c->nd, c->rows + i0 * c->nc,
                             c->scores + i0, NULL, c->scratch[tid]);
        if (rc)
            __atomic_store_n(&c->rc, rc, __ATOMIC_RELAXED);
    }
}

static unsigned default_threads(unsigned t)
{
    if (t)
        return t;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 16 ? 16 : (unsigned)n;
}

static int score_pool(const ctr_model_def_t *def, const ctr_kernel_t *k, size_t n,
                      const float *dense, const uint32_t *rows, float *scores,
                      ctr__pool_t *pool)
{
    unsigned nt = ctr__pool_size(pool);
    score_ctx_t c = {def, k, n, def->n_dense, def->n_cat, dense, rows, scores, NULL, 0, 0};
    if (!(c.scratch = calloc(nt, sizeof(*c.scratch))))
        return CTR_ENOMEM;
    for (unsigned t = 0; t < nt; t++)
        if (ctr_scratch_new(def, SCORE_CHUNK, &c.scratch[t], NULL, 0))
            c.rc = CTR_ENOMEM;
    if (!c.rc)
        ctr__pool_run(pool, score_worker, &c);
    for (unsigned t = 0; t < nt; t++)
        ctr_scratch_free(c.scratch[t]);
    free(c.scratch);
    return c.rc;
}

int ctr_train_score(const ctr_model_def_t *def, const ctr_kernel_t *k, size_t n,
                    const float *dense, const uint32_t *rows, float *scores, unsigned threads)
{
    ctr__pool_t *pool = ctr__pool_new(default_threads(threads));
    if (!pool)
        return CTR_ENOMEM;
    int rc = score_pool(def, k, n, dense, rows, scores, pool);
    ctr__pool_free(pool);
    return rc;
}

int ctr_train_load_for_model(const char *path, const ctr_data_opts_t *fmt,
                             const ctr_model_def_t *def, int skip_bad, FILE *log,
                             ctr_dataset_t *ds, char *err, size_t errlen)
{
    const char **names = calloc(def->n_dense + def->n_cat + 1, sizeof(char *));
    if (!names)
        return CTR_ENOMEM;
    ctr_data_opts_t o = *fmt;
    ctr_data_opts_for_model(&o, def, names);
    int rc = ctr_dataset_load(path, &o, def->dense, def->cat, skip_bad, log, ds, err, errlen);
    free(names);
    return rc;
}

int ctr_train_file_sha256(const char *path, char hex[65], char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ctr_error(err, errlen, CTR_EIO, "%s: %s", path, strerror(errno));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char buf[1 << 16], dig[32];
    int rc = 0;
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "sha256: cannot initialise");
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = ctr_error(err, errlen, CTR_EIO, "%s: read: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        EVP_DigestUpdate(md, buf, (size_t)n);
    }
    unsigned len = 0;
    EVP_DigestFinal_ex(md, dig, &len);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", dig[i]);
out:
    EVP_MD_CTX_free(md);
    close(fd);
    return rc;
}

/* ---- the training run ---- */

void ctr_train_opts_init(ctr_train_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->data.format = CTR_DATA_CRITEO;
    o->valid_frac = 0.1;
    o->split_seed = 1;
    o->name = "ctr";
    o->activation = CTR_ACT_SMELU;
    o->beta = 1.0;
    o->n_hidden = 2;
    o->hidden[0] = 512;
    o->hidden[1] = 256;
    o->dim = 16;
    o->epochs = 1;
    o->batch = 256;
    o->lr = 1e-3;
    o->emb_lr = 0.1;
    o->lr_decay = 1;
    o->emb_init = 0.05;
    o->optimizer = CTR_OPT_ADAM;
    o->seed = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *const criteo_dense[] = {"I1", "I2", "I3", "I4", "I5", "I6", "I7",
                                           "I8", "I9", "I10", "I11", "I12", "I13"};
static const char *const criteo_cat[] = {"C1", "C2", "C3", "C4", "C5", "C6", "C7",
                                         "C8", "C9", "C10", "C11", "C12", "C13",
                                         "C14", "C15", "C16", "C17", "C18", "C19",
                                         "C20", "C21", "C22", "C23", "C24", "C25", "C26"};

static json_t *metrics_json(const ctr_metrics_t *m)
{
    json_t *j = json_object();
    json_object_set_new(j, "n", json_integer((json_int_t)m->n));
    json_object_set_new(j, "auc", isnan(m->auc) ? json_null() : json_real(m->auc));
    json_object_set_new(j, "logloss", isnan(m->logloss) ? json_null() : json_real(m->logloss));
    json_object_set_new(j, "mean_pred", isnan(m->mean_pred) ? json_null() : json_real(m->mean_pred));
    json_object_set_new(j, "pos_rate", isnan(m->pos_rate) ? json_null() : json_real(m->pos_rate));
    return j;
}

static char *provenance(const ctr_train_opts_t *o, const ctr_model_def_t *def,
                        const ctr_train_report_t *rep)
{
    json_t *root = json_object();
    json_object_set_new(root, "tool", json_string("ctrtool train"));
    json_object_set_new(root, "ctrd_version", json_string(CTR_VERSION));

    json_t *data = json_object();
    const char *base = strrchr(o->data_path, '/');
    json_object_set_new(data, "file", json_string(base ? base + 1 : o->data_path));
    json_object_set_new(data, "sha256", json_string(rep->data_sha256));
    json_object_set_new(data, "format", json_string(ctr_data_format_name(o->data.format)));
    json_object_set_new(data, "label", json_string(o->data.label ? o->data.label : "label"));
    if (o->data.format == CTR_DATA_CSV) {
        char d[2] = {o->data.delimiter ? o->data.delimiter : ',', '\0'};
        json_object_set_new(data, "delimiter", json_string(d));
    }
    json_object_set_new(data, "rows", json_integer((json_int_t)rep->rows));
    json_object_set_new(data, "bad_rows_skipped", json_integer((json_int_t)rep->bad_rows));
    json_object_set_new(data, "valid_frac", json_real(o->valid_frac));
    json_object_set_new(data, "split_seed", json_integer((json_int_t)o->split_seed));
    json_object_set_new(data, "train_rows", json_integer((json_int_t)rep->n_train));
    json_object_set_new(data, "valid_rows", json_integer((json_int_t)rep->n_valid));
    json_object_set_new(root, "data", data);
    json_object_set_new(root, "seed", json_integer((json_int_t)o->seed));

    json_t *h = json_object();
    json_object_set_new(h, "activation", json_string(ctr_activation_name(o->activation)));
    json_object_set_new(h, "beta", json_real(o->beta));
    json_t *hid = json_array();
    for (size_t l = 0; l < o->n_hidden; l++)
        json_array_append_new(hid, json_integer(o->hidden[l]));
    json_object_set_new(h, "hidden", hid);
    json_object_set_new(h, "dim", json_integer(o->dim));
    json_t *bk = json_array();
    for (size_t j = 0; j < def->n_cat; j++)
        json_array_append_new(bk, json_integer(def->cat[j].buckets));
    json_object_set_new(h, "buckets", bk);
    json_t *tr = json_array();
    for (size_t k = 0; k < def->n_dense; k++)
        json_array_append_new(tr, json_string(ctr_transform_name(def->dense[k].transform)));
    json_object_set_new(h, "transforms", tr);
    json_object_set_new(h, "hash_seed", json_integer((json_int_t)o->hash_seed));
    json_object_set_new(h, "epochs", json_integer(o->epochs));
    json_object_set_new(h, "batch", json_integer((json_int_t)o->batch));
    json_object_set_new(h, "optimizer", json_string(o->optimizer == CTR_OPT_ADAM ? "adam" : "adagrad"));
    json_object_set_new(h, "lr", json_real(o->lr));
    json_object_set_new(h, "lr_decay", json_string(o->lr_decay ? "linear" : "none"));
    json_object_set_new(h, "emb_optimizer", json_string("rowwise_adagrad"));
    json_object_set_new(h, "emb_lr", json_real(o->emb_lr));
    json_object_set_new(h, "emb_l2", json_real(o->emb_l2));
    json_object_set_new(h, "emb_init", json_real(o->emb_init));
    json_object_set_new(root, "hyperparameters", h);

    json_t *m = json_object();
    json_object_set_new(m, "train", metrics_json(&rep->train));
    if (rep->n_valid)
        json_object_set_new(m, "valid", metrics_json(&rep->valid));
    json_object_set_new(root, "metrics", m);

    char *s = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(root);
    return s;
}

typedef struct {
    size_t n, nd, nc;
    float *dense;
    uint32_t *rows;
    uint8_t *labels;
} subset_t;

static void subset_free(subset_t *s)
{
    free(s->dense);
    free(s->rows);
    free(s->labels);
}

static int subset_take(subset_t *s, const ctr_dataset_t *ds, const uint32_t *idx, size_t n)
{
    s->n = n;
    s->nd = ds->n_dense;
    s->nc = ds->n_cat;
    s->dense = malloc(n * s->nd * sizeof(float) + 1);
    s->rows = malloc(n * s->nc * sizeof(uint32_t) + 1);
    s->labels = malloc(n + 1);
    if (!s->dense || !s->rows || !s->labels)
        return CTR_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        memcpy(s->dense + i * s->nd, ds->dense + (size_t)idx[i] * s->nd, s->nd * sizeof(float));
        memcpy(s->rows + i * s->nc, ds->rows + (size_t)idx[i] * s->nc, s->nc * sizeof(uint32_t));
        s->labels[i] = ds->labels[idx[i]];
    }
    return 0;
}

static int eval_subset(const ctr_model_def_t *def, const ctr_kernel_t *k, ctr__pool_t *pool,
                       const subset_t *s, ctr_metrics_t *m)
{
    memset(m, 0, sizeof(*m));
    m->auc = m->logloss = m->mean_pred = m->pos_rate = NAN;
    if (!s->n)
        return 0;
    float *sc = malloc(s->n * sizeof(float));
    if (!sc)
        return CTR_ENOMEM;
    int rc = score_pool(def, k, s->n, s->dense, s->rows, sc, pool);
    if (!rc)
        rc = ctr_metrics_compute(sc, s->labels, s->n, m);
    free(sc);
    return rc;
}

static void fmt_eta(double s, char *buf, size_t len)
{
    if (!(s >= 0) || s > 359999)
        s = 359999;
    unsigned t = (unsigned)(s + 0.5);
    snprintf(buf, len, "%u:%02u:%02u", t / 3600, t / 60 % 60, t % 60);
}

int ctr_train_run(const ctr_train_opts_t *o, const char *out_path, ctr_train_report_t *rep_out,
                  char *err, size_t errlen)
{
    ctr_train_report_t rep_local, *rep = rep_out ? rep_out : &rep_local;
    memset(rep, 0, sizeof(*rep));
    FILE *lg = o->log;
    ctr_data_opts_t dopt = o->data;
    dopt.label_optional = 0;
    if (dopt.format == CTR_DATA_CRITEO) {
        if (!dopt.dense) {
            dopt.n_dense = CTR_CRITEO_N_DENSE;
            dopt.dense = criteo_dense;
        }
        if (!dopt.cat) {
            dopt.n_cat = CTR_CRITEO_N_CAT;
            dopt.cat = criteo_cat;
        }
    }
    size_t nd = dopt.n_dense, nc = dopt.n_cat, L = o->n_hidden + 1;
    if (!o->data_path || !strcmp(o->data_path, "-"))
        return ctr_error(err, errlen, CTR_EINVAL, "train needs a data file (its SHA-256 goes into the model)");
    if (nd + nc == 0)
        return ctr_error(err, errlen, CTR_EINVAL, "no features: name dense and/or categorical columns");
    if (o->n_hidden > CTR_TRAIN_MAX_HIDDEN)
        return ctr_error(err, errlen, CTR_EINVAL, "at most %d hidden layers", CTR_TRAIN_MAX_HIDDEN);
    for (size_t l = 0; l < o->n_hidden; l++)
        if (o->hidden[l] == 0 || o->hidden[l] > 65536)
            return ctr_error(err, errlen, CTR_EINVAL, "hidden layer width %u: must be 1..65536", o->hidden[l]);
    if (o->activation != CTR_ACT_SMELU && o->activation != CTR_ACT_RELU)
        return ctr_error(err, errlen, CTR_EINVAL, "activation must be smelu or relu");
    if (!(o->beta > 0) || o->beta > 1e6)
        return ctr_error(err, errlen, CTR_EINVAL, "beta must be > 0");
    if (nc && (o->dim == 0 || o->dim > 1024))
        return ctr_error(err, errlen, CTR_EINVAL, "dim must be 1..1024");
    if (nc && o->n_buckets > 1 && o->n_buckets != nc)
        return ctr_error(err, errlen, CTR_EINVAL,
                         "--buckets: give one value or one per categorical feature (%zu), not %zu",
                         nc, o->n_buckets);
    if (o->n_transforms > 1 && o->n_transforms != nd)
        return ctr_error(err, errlen, CTR_EINVAL,
                         "--transform: give one value or one per dense feature (%zu), not %zu",
                         nd, o->n_transforms);
    if (!o->epochs || !o->batch || o->batch > 65536)
        return ctr_error(err, errlen, CTR_EINVAL, "epochs must be >= 1 and batch 1..65536");
    if (!(o->valid_frac >= 0 && o->valid_frac <= 0.9))
        return ctr_error(err, errlen, CTR_EINVAL, "valid-frac must be in [0, 0.9]");
    if (!(o->lr > 0) || !(o->emb_lr > 0) || !(o->emb_l2 >= 0) || !(o->emb_init >= 0))
        return ctr_error(err, errlen, CTR_EINVAL, "learning rates must be > 0, emb-l2 and emb-init >= 0");

    int rc = 0;
    ctr_dataset_t ds = {0};
    ctr_dense_def_t *dense = calloc(nd + 1, sizeof(*dense));
    ctr_cat_def_t *cat = calloc(nc + 1, sizeof(*cat));
    ctr_layer_def_t *layers = calloc(L, sizeof(*layers));
    uint32_t *idx = NULL;
    uint8_t *is_valid = NULL;
    subset_t tr = {0}, va = {0};
    ctr__net_t net = {0};
    int net_ok = 0;
    ctr__pool_t *pool = NULL;
    char *prov = NULL;
    float *bd = NULL;
    uint32_t *br = NULL;
    uint8_t *bl = NULL;
    if (!dense || !cat || !layers) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
        goto out;
    }
    const ctr_kernel_t *k = ctr_kernel_select(CTR_KERNEL_AUTO, err, errlen);
    if (!k) {
        rc = CTR_EUNSUPPORTED;
        goto out;
    }
    if ((rc = ctr_train_file_sha256(o->data_path, rep->data_sha256, err, errlen)))
        goto out;

    for (size_t j = 0; j < nc; j++) {
        cat[j].name = dopt.cat[j];
        cat[j].buckets = o->buckets ? o->buckets[o->n_buckets == 1 ? 0 : j] : 65536;
        cat[j].dim = o->dim;
        cat[j].seed = o->hash_seed + j;
        if (cat[j].buckets == 0 || cat[j].buckets > (1u << 30)) {
            rc = ctr_error(err, errlen, CTR_EINVAL, "%s: buckets must be 1..2^30", cat[j].name);
            goto out;
        }
    }
    ctr_transform_t dflt = dopt.format == CTR_DATA_CRITEO ? CTR_TRANSFORM_LOG1P : CTR_TRANSFORM_STANDARDIZE;
    for (size_t q = 0; q < nd; q++) {
        dense[q].name = dopt.dense[q];
        dense[q].transform = o->n_transforms ? o->transforms[o->n_transforms == 1 ? 0 : q] : dflt;
        dense[q].mean = 0.0;
        dense[q].std = 1.0;
    }

    double t0 = now_s();
    if (lg)
        fprintf(lg, "train: reading %s\n", o->data_path);
    if ((rc = ctr_dataset_load(o->data_path, &dopt, NULL, cat, o->skip_bad, lg, &ds, err, errlen)))
        goto out;
    rep->rows = ds.n;
    rep->bad_rows = ds.bad_rows;
    if (ds.n < 2 || ds.n > UINT32_MAX) {
        rc = ctr_error(err, errlen, CTR_EINVAL, "%s: %zu rows; need 2 .. 2^32-1", o->data_path, ds.n);
        goto out;
    }

    /* Hold-out split: a permutation from split_seed, the first part valid. */
    size_t nv = (size_t)floor((double)ds.n * o->valid_frac + 0.5), nt = ds.n - nv;
    if (nt == 0) {
        rc = ctr_error(err, errlen, CTR_EINVAL, "%s: no training rows left after the validation split",
                       o->data_path);
        goto out;
    }
    if (!(idx = malloc(ds.n * sizeof(uint32_t))) || !(is_valid = calloc(ds.n, 1))) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < ds.n; i++)
        idx[i] = (uint32_t)i;
    uint64_t ss = rng_stream(o->split_seed, 0x5b117);
    shuffle(idx, ds.n, &ss);
    for (size_t i = 0; i < nv; i++)
        is_valid[idx[i]] = 1;
    size_t a = 0, b = nt;
    for (size_t i = 0; i < ds.n; i++)
        idx[is_valid[i] ? b++ : a++] = (uint32_t)i;

    /* Standardisation statistics from the training rows only. */
    for (size_t q = 0; q < nd; q++) {
        if (dense[q].transform != CTR_TRANSFORM_STANDARDIZE)
            continue;
        double s1 = 0, s2 = 0;
        size_t cnt = 0;
        for (size_t i = 0; i < nt; i++) {
            double v = ds.raw_dense[(size_t)idx[i] * nd + q];
            if (isnan(v))
                continue;
            s1 += v;
            cnt++;
        }
        double mean = cnt ? s1 / (double)cnt : 0.0;
        for (size_t i = 0; i < nt; i++) {
            double v = ds.raw_dense[(size_t)idx[i] * nd + q];
            if (!isnan(v))
                s2 += (v - mean) * (v - mean);
        }
        double sd = cnt > 1 ? sqrt(s2 / (double)cnt) : 0.0;
        dense[q].mean = mean;
        dense[q].std = sd > 1e-12 ? sd : 1.0;
    }
    if ((rc = ctr_dataset_encode_dense(&ds, dense))) {
        ctr_error(err, errlen, rc, "out of memory");
        goto out;
    }
    free(ds.raw_dense);
    ds.raw_dense = NULL;
    if ((rc = subset_take(&tr, &ds, idx, nt)) || (rc = subset_take(&va, &ds, idx + nt, nv))) {
        ctr_error(err, errlen, rc, "out of memory");
        goto out;
    }
    ctr_dataset_free(&ds);
    rep->n_train = nt;
    rep->n_valid = nv;
    rep->load_seconds = now_s() - t0;

    size_t pos = 0;
    for (size_t i = 0; i < nt; i++)
        pos += tr.labels[i];
    double pr = ((double)pos + 0.5) / ((double)nt + 1.0);
    if (lg)
        fprintf(lg, "train: %zu rows (%llu bad skipped): %zu train, %zu valid; positive rate %.4f; "
                     "loaded in %.1f s; kernel %s\n",
                (size_t)rep->rows, (unsigned long long)rep->bad_rows, nt, nv,
                (double)pos / (double)nt, rep->load_seconds, k->name);

    /* The model definition; layers and tables point into the network. */
    uint32_t in = (uint32_t)nd;
    for (size_t j = 0; j < nc; j++)
        in += o->dim;
    for (size_t l = 0; l < L; l++) {
        layers[l].in = in;
        layers[l].out = l < o->n_hidden ? o->hidden[l] : 1;
        in = layers[l].out;
    }
    ctr_model_def_t def = {
        .name = o->name ? o->name : "ctr",
        .n_dense = nd, .dense = dense, .n_cat = nc, .cat = cat,
        .n_layers = L, .layers = layers,
        .activation = o->activation, .beta = (float)o->beta,
    };
    unsigned threads = default_threads(o->threads);
    if (!(pool = ctr__pool_new(threads)) ||
        ctr__net_init(&net, &def, o->batch, threads, 0)) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory for the network");
        goto out;
    }
    net_ok = 1;
    net.opt = o->optimizer;
    net.lr = (float)o->lr;
    net.emb_lr = (float)o->emb_lr;
    net.emb_l2 = (float)o->emb_l2;
    ctr__net_init_params(&net, o->seed, (float)log(pr / (1.0 - pr)), (float)o->emb_init);
    ctr__net_export(&net, layers, cat);

    if (!(bd = malloc(o->batch * (nd + 1) * sizeof(float))) ||
        !(br = malloc(o->batch * (nc + 1) * sizeof(uint32_t))) || !(bl = malloc(o->batch))) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
        goto out;
    }
    int tty = lg && isatty(fileno(lg));
    int show = lg && (o->progress || tty);
    double t_train = now_s(), t_shown = t_train, t_eval = 0;
    uint64_t done = 0, total = (uint64_t)nt * o->epochs;
    for (unsigned ep = 0; ep < o->epochs; ep++) {
        for (size_t i = 0; i < nt; i++)
            idx[i] = (uint32_t)i;
        uint64_t s = rng_stream(o->seed, 0xe90c0000ull + ep);
        shuffle(idx, nt, &s);
        double ep_loss = 0;
        size_t ep_rows = 0;
        for (size_t b0 = 0; b0 < nt; b0 += o->batch) {
            size_t bn = nt - b0 < o->batch ? nt - b0 : o->batch;
            for (size_t q = 0; q < bn; q++) {
                uint32_t r = idx[b0 + q];
                memcpy(bd + q * nd, tr.dense + (size_t)r * nd, nd * sizeof(float));
                memcpy(br + q * nc, tr.rows + (size_t)r * nc, nc * sizeof(uint32_t));
                bl[q] = tr.labels[r];
            }
            if (o->lr_decay) {
                /* Linear decay to 0 at the last step, from integers only. */
                double f = 1.0 - (double)done / (double)total;
                net.lr = (float)(o->lr * f);
                net.emb_lr = (float)(o->emb_lr * f);
            }
            ep_loss += ctr__net_step(&net, k, pool, bn, bd, br, bl, 1);
            ep_rows += bn;
            done += bn;
            double t = now_s();
            if (show && (t - t_shown >= (tty ? 0.5 : 10.0) || b0 + bn >= nt)) {
                t_shown = t;
                double rate = (double)done / (t - t_train - t_eval);
                char eta[16];
                fmt_eta((double)(total - done) / rate, eta, sizeof(eta));
                fprintf(lg, "%sepoch %u/%u %5.1f%%  %.0f rows/s  logloss %.4f  ETA %s%s",
                        tty ? "\r" : "", ep + 1, o->epochs, 100.0 * (double)(b0 + bn) / (double)nt,
                        rate, ep_loss / (double)ep_rows, eta, tty ? "\033[K" : "\n");
                fflush(lg);
            }
        }
        if (show && tty)
            fputc('\n', lg);
        if (lg && nv) {
            double te = now_s();
            ctr_metrics_t vm;
            if ((rc = eval_subset(&def, k, pool, &va, &vm))) {
                ctr_error(err, errlen, rc, "scoring the validation rows failed: %s", ctr_strerror(rc));
                goto out;
            }
            fprintf(lg, "epoch %u/%u: train logloss %.5f (running); valid AUC %.5f logloss %.5f\n",
                    ep + 1, o->epochs, ep_loss / (double)ep_rows, vm.auc, vm.logloss);
            t_eval += now_s() - te;
        }
    }
    rep->train_seconds = now_s() - t_train - t_eval;
    rep->rows_per_s = rep->train_seconds > 0 ? (double)total / rep->train_seconds : 0;

    if ((rc = eval_subset(&def, k, pool, &tr, &rep->train)) ||
        (rc = eval_subset(&def, k, pool, &va, &rep->valid))) {
        ctr_error(err, errlen, rc, "scoring the data failed: %s", ctr_strerror(rc));
        goto out;
    }
    if (!(prov = provenance(o, &def, rep))) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
        goto out;
    }
    def.provenance_json = prov;
    if ((rc = ctr_model_write(out_path, &def, NULL, NULL, err, errlen)))
        goto out;
    if (lg) {
        fprintf(lg, "train: %.1f s, %.0f rows/s; train AUC %.5f logloss %.5f", rep->train_seconds,
                rep->rows_per_s, rep->train.auc, rep->train.logloss);
        if (nv)
            fprintf(lg, "; valid AUC %.5f logloss %.5f (mean pred %.4f, positive rate %.4f)",
                    rep->valid.auc, rep->valid.logloss, rep->valid.mean_pred, rep->valid.pos_rate);
        fprintf(lg, "\ntrain: wrote %s\n", out_path);
    }
out:
    free(prov);
    free(bd);
    free(br);
    free(bl);
    if (net_ok)
        ctr__net_free(&net);
    ctr__pool_free(pool);
    subset_free(&tr);
    subset_free(&va);
    ctr_dataset_free(&ds);
    free(idx);
    free(is_valid);
    free(layers);
    free(cat);
    free(dense);
    return rc;
}
