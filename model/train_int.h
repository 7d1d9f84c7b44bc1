/* train_int.h - the trainer's network (train_net.c), shared by the
 * training run (train.c) and exposed for tests (gradient check).
 *
 * Parameter layout: layer l's weights and bias live in one block W[l] of
 * (dims[l] + 1) x dims[l+1] floats, weight rows first ([in][out], as in
 * ctr_layer_def_t) and the bias as the last row, so one loop updates both
 * and the bias gradient is the weight gradient of a constant-1 input. */
#ifndef CTR_TRAIN_INT_H
#define CTR_TRAIN_INT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#ifdef __SSE2__
#include <immintrin.h>
#endif

#include "ctr/kernels.h"
#include "ctr/model.h"
#include "ctr/rng.h"
#include "ctr/train.h"
#include "pool_int.h"

/* The trainer's independent random streams: a splitmix64 state for
 * (seed, stream). In use: from the init seed, 1 + l (layer l's weights)
 * and 1000 + j (table j); from the order seed, 0xe90c0000 + epoch (the
 * shuffle order); from the split seed, 0x5b117 (the hold-out split). The
 * init and order seeds are both --seed unless given apart (train.h). */
static inline uint64_t ctr__train_rng_stream(uint64_t seed, uint64_t stream)
{
    uint64_t s = seed ^ (stream * 0xd1342543de82ef95ull);
    ctr_splitmix64_next(&s);
    return s;
}

#define CTR__ADAM_B1 0.9
#define CTR__ADAM_B2 0.999
#define CTR__ADAM_EPS 1e-8f

/* Adam on n parameters. Each element goes through the same IEEE
 * operations (no fusion, correctly rounded sqrt and division) in the
 * 4-wide SSE path and the scalar tail, so the bits do not depend on where
 * a task's rows start. Shared by every trainer (train_net.c and the
 * interaction architectures'), so they update alike. */
static inline void ctr__adam_update(float *restrict w, float *restrict m, float *restrict v,
                                    const float *restrict g, size_t n, float lr_t)
{
    const float b1 = (float)CTR__ADAM_B1, b2 = (float)CTR__ADAM_B2;
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
    size_t i = 0;
#ifdef __SSE2__
    const __m128 vb1 = _mm_set1_ps(b1), vb2 = _mm_set1_ps(b2), vc1 = _mm_set1_ps(c1),
                 vc2 = _mm_set1_ps(c2), vlr = _mm_set1_ps(lr_t), veps = _mm_set1_ps(CTR__ADAM_EPS);
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
        w[i] -= lr_t * m[i] / (sqrtf(v[i]) + CTR__ADAM_EPS);
    }
}

#define CTR__ADAGRAD_EPS 1e-8f

/* Adagrad on n dense parameters (v: the squared-gradient sums). */
static inline void ctr__adagrad_update(float *restrict w, float *restrict v,
                                       const float *restrict g, size_t n, float lr)
{
    for (size_t i = 0; i < n; i++) {
        v[i] += g[i] * g[i];
        w[i] -= lr * g[i] / (sqrtf(v[i]) + CTR__ADAGRAD_EPS);
    }
}

/* Row-wise Adagrad on one embedding row w of d floats whose gradient,
 * summed over the batch, is g (L2 added in place): one accumulator per
 * row, the mean of the row's squared gradient. Shared by every trainer. */
static inline void ctr__rowwise_adagrad(float *restrict w, float *restrict g, size_t d,
                                        float *acc, float l2, float lr)
{
    float ss = 0.0f;
    for (size_t e = 0; e < d; e++) {
        g[e] += l2 * w[e];
        ss += g[e] * g[e];
    }
    *acc += ss / (float)d;
    const float scale = lr / (sqrtf(*acc) + CTR__ADAGRAD_EPS);
    for (size_t e = 0; e < d; e++)
        w[e] -= scale * g[e];
}

typedef struct {
    size_t n_dense, n_cat, n_layers;
    uint32_t *dims;          /* n_layers + 1; dims[0] = input width, last = 1 */
    uint32_t *cat_dim;       /* per table */
    uint32_t *cat_buckets;   /* per table; the table has buckets + 1 rows */
    size_t *cat_off;         /* where table j's slice starts in the input */
    uint32_t *cat_bag;       /* per table: bag_max, 0 = single-valued */
    ctr_pool_t *cat_pool;    /* per table: a bag's pooling */
    size_t *cat_slot;        /* per table: its first row slot (ctr_model_slot_of) */
    size_t slots;            /* row slots per example: the stride of rows */
    ctr_activation_t act;
    float beta;

    float **table;           /* [(buckets + 1) * dim] */
    float **acc;             /* row-wise Adagrad accumulators, one per row */
    float **W;               /* [(dims[l] + 1) * dims[l+1]], see above */
    float **WT;              /* [dims[l+1] * dims[l]]: W transposed, bias left out */
    float **gW;              /* gradient of W, same shape */
    float **m, **v;          /* optimizer state, same shape (m unused by Adagrad) */
    float **gT;              /* only with keep_grads: dense embedding gradients */

    ctr_optimizer_t opt;
    float lr, emb_lr, emb_l2;
    uint64_t step;
    double b1t, b2t;         /* beta1^t, beta2^t */

    size_t max_batch;
    unsigned n_threads;
    float **A, **Z, **dZ, **AT;
    float *dA0, *zeros, *loss;
    uint64_t **keys;         /* per thread: sort keys for embedding updates,
                                max_batch * max(1, bag_max) */
    uint32_t **cnt;          /* per thread: each example's bag size (mean) */
    float **gbuf;            /* per thread: one row's gradient */
    size_t n_tasks;          /* update tasks: weight row chunks, then tables */
    uint32_t *task_layer, *task_r0, *task_r1;
} ctr__net_t;

/* Shapes from def: n_dense, n_cat, cat[].buckets/dim/bag_max/pool,
 * layers[].in/out (the pointers in def are not used). keep_grads
 * allocates gT (tests). */
int ctr__net_init(ctr__net_t *net, const ctr_model_def_t *def, size_t max_batch,
                  unsigned n_threads, int keep_grads);
void ctr__net_free(ctr__net_t *net);

/* Initialises every parameter from seed; the output bias to out_bias. */
void ctr__net_init_params(ctr__net_t *net, uint64_t seed, float out_bias, float emb_scale);

/* One mini-batch of bn <= max_batch examples (dense [bn][n_dense], rows
 * [bn][slots] as features.h encodes them, labels 0/1): forward, backward
 * into gW (and gT), and, with update, one optimizer step. A bag's
 * embedding is pooled by the serving op (kernels.h ctr_pool_fn); its
 * gradient goes to each of its rows (mean: divided by the bag's size),
 * summed per row in (example, slot) order. Returns the batch's summed
 * logloss. */
double ctr__net_step(ctr__net_t *net, const ctr_kernel_t *k, ctr__pool_t *pool,
                     size_t bn, const float *dense, const uint32_t *rows,
                     const uint8_t *labels, int update);

/* Points def's layers and tables at the network's parameters (the caller
 * provides layers[n_layers] and cat[n_cat] with names etc. already set). */
void ctr__net_export(const ctr__net_t *net, ctr_layer_def_t *layers, ctr_cat_def_t *cat);

#endif
