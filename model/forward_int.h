/* forward_int.h - what forward.c shares with the architectures' forward
 * passes (forward_dot.c, forward_dcn.c, forward_wukong.c).
 *
 * A pass scores a chunk of n <= max_batch examples out of the scratch's
 * buffers and leaves the logits in s->logit. Buffers are sized by a plan,
 * computed from the description alone: `ld[b]` floats for each example in
 * buffer b (so max_batch * ld[b] in all), `zeros` floats of an all-zero
 * bias (the linear kernel's chains start at bias[o]: no bias = 0.0f) and
 * `tmp` floats for one example's products at a time. ctr_forward refuses a
 * scratch whose plan is smaller than the model's in any buffer. */
#ifndef CTR_FORWARD_INT_H
#define CTR_FORWARD_INT_H

#include <stddef.h>
#include <stdint.h>

#include "ctr/forward.h"
#include "ctr/kernels.h"
#include "quant.h"

enum {
    CTR__FB_X,     /* the top MLP's input */
    CTR__FB_H0,    /* hidden activations of every MLP, ping-pong */
    CTR__FB_H1,
    CTR__FB_E0,    /* the embedding matrix X (DCNv2: x_0), ping-pong in Wukong */
    CTR__FB_E1,
    CTR__FB_T0,    /* arch-specific products (see each file) */
    CTR__FB_T1,
    CTR__FB_T2,
    CTR__FB_N
};

typedef struct {
    size_t ld[CTR__FB_N];
    size_t zeros;
    size_t tmp;
} ctr__fwd_plan_t;

struct ctr_scratch {
    size_t max_batch;
    ctr__fwd_plan_t plan;
    float *buf[CTR__FB_N];
    float *zeros, *tmp, *logit;
    void *mem;
};

/* The kernel variant with every op filled in (a NULL op of a hand-made
 * variant is the scalar one), and the quantized tables' decoders: the
 * variant's own (ctr__quant_ops_get(k->id)), or for blas and a variant
 * this CPU cannot decode with (a hand-made one) the widest that runs.
 * Every decoder gives the same bits, so the choice is only speed. */
typedef struct {
    ctr_linear_fn linear;
    ctr_ln_rows_fn ln_rows;
    ctr_pool_fn pool;
    ctr_fma_fn fma;
    ctr_add_fn add;
    const ctr__quant_ops_t *quant;
} ctr__ops_t;

/* Fills o from k (the forward pass does this once a call). */
void ctr__ops_resolve(const ctr_kernel_t *k, ctr__ops_t *o);

static inline size_t ctr__max(size_t a, size_t b) { return a > b ? a : b; }

/* The width every embedding has in an interaction model. */
size_t ctr__emb_dim(const ctr_model_def_t *def);

/* embed.c: each categorical feature's embedding of each example (its row,
 * decoded from the table's dtype, or its bag pooled: o->pool for fp32,
 * o->quant's pool forms otherwise) into x + r * ldx + off + (sum of the
 * previous dims). CTR_ERANGE for a row past its table (or an empty slot
 * that is not in a bag). rows is [n][ctr_model_slots(def)]. Uses
 * o->pool and o->quant only. */
int ctr__fwd_embeddings(const ctr_model_def_t *def, const ctr__ops_t *o, size_t n,
                        const uint32_t *rows, float *x, size_t ldx, size_t off);

/* 0 if categorical feature j's table is there for its dtype (fp32: table;
 * otherwise qrows, of a dtype this build decodes; a sharer reads its
 * owner's), else CTR_EINVAL naming it. */
int ctr__check_table(const ctr_model_def_t *def, size_t j, char *err, size_t errlen);

/* An MLP over n rows of `in` (x, ldx): hidden outputs ping-pong through
 * h0/h1 (ldh), the last layer writes y (ldy). The activation follows every
 * layer but the last, and the last too when last_act. */
void ctr__fwd_mlp(const ctr__ops_t *o, const ctr_mlp_def_t *m, size_t n, const float *x,
                  size_t ldx, float *h0, float *h1, size_t ldh, float *y, size_t ldy,
                  ctr_activation_t act, float beta, int last_act);

/* The widest layer of m. */
size_t ctr__mlp_max_width(const ctr_mlp_def_t *m);

/* Checks that m chains from `in` and ends at `out` (0: any), naming it
 * `what` in err. */
int ctr__check_mlp(const ctr_mlp_def_t *m, size_t in, size_t out, const char *what,
                   char *err, size_t errlen);

/* Per architecture: the shape checks (CTR_EINVAL naming the field), the
 * plan, and the pass over a chunk. */
int ctr__check_dot(const ctr_model_def_t *def, char *err, size_t errlen);
void ctr__plan_dot(const ctr_model_def_t *def, ctr__fwd_plan_t *p);
int ctr__forward_dot(const ctr_model_def_t *def, const ctr__ops_t *o, size_t n,
                     const float *dense, const uint32_t *rows, ctr_scratch_t *s);
int ctr__check_dcn(const ctr_model_def_t *def, char *err, size_t errlen);
void ctr__plan_dcn(const ctr_model_def_t *def, ctr__fwd_plan_t *p);
int ctr__forward_dcn(const ctr_model_def_t *def, const ctr__ops_t *o, size_t n,
                     const float *dense, const uint32_t *rows, ctr_scratch_t *s);
int ctr__check_wukong(const ctr_model_def_t *def, char *err, size_t errlen);
void ctr__plan_wukong(const ctr_model_def_t *def, ctr__fwd_plan_t *p);
int ctr__forward_wukong(const ctr_model_def_t *def, const ctr__ops_t *o, size_t n,
                        const float *dense, const uint32_t *rows, ctr_scratch_t *s);

/* The bottom MLP over the dense values into columns 0..d-1 of x (ldx);
 * DOT, DCNv2 and Wukong share it. */
void ctr__fwd_bottom(const ctr_model_def_t *def, const ctr__ops_t *o, size_t n,
                     const float *dense, ctr_scratch_t *s, float *x, size_t ldx);

#endif
