/* forward.h - batch scoring of every architecture (model.h): gather and
 * pool embeddings, the interaction (DOT, DCNv2, Wukong), the MLPs, sigmoid.
 *
 * Inputs are already encoded (features.h): dense[n][n_dense] floats and
 * rows[n][slots] table rows, slots = ctr_model_slots(def) (one a feature,
 * bag_max for a bag, its unused slots CTR_EMPTY_SLOT). The score of an
 * example depends only on the model and that example (bit-exact kernels
 * and ops, one summation order per output), never on n, its neighbours,
 * the thread or the kernel variant (but blas). The arithmetic of each
 * architecture is docs/MODEL_FORMAT.md's. */
#ifndef CTR_FORWARD_H
#define CTR_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "ctr/kernels.h"
#include "ctr/model.h"

/* Per-thread working memory sized for one model shape and a batch bound;
 * allocated once, reused for every batch. */
typedef struct ctr_scratch ctr_scratch_t;

/* For def's shape and up to max_batch (>= 1) examples a chunk: every
 * intermediate is sized from def, so a batch never allocates. Checks def's
 * shapes first (widths chain through every layer, one embedding width,
 * residuals, shared tables). Returns 0 with *out owned by the caller
 * (ctr_scratch_free), or CTR_EINVAL (naming the field) / CTR_ENOMEM with
 * *out NULL and err filled. */
int ctr_scratch_new(const ctr_model_def_t *def, size_t max_batch, ctr_scratch_t **out,
                    char *err, size_t errlen);
void ctr_scratch_free(ctr_scratch_t *s);

/* Scores n examples (any n; batches above max_batch run in chunks).
 * logits may be NULL; otherwise it receives the pre-sigmoid values.
 * CTR_ERANGE for a row past its table (or an empty slot outside a bag);
 * CTR_EINVAL for a scratch made for a smaller model. */
int ctr_forward(const ctr_model_def_t *def, const ctr_kernel_t *k,
                size_t n, const float *dense, const uint32_t *rows,
                float *scores, float *logits, ctr_scratch_t *s);

/* The first step of ctr_forward on its own (benchmarks, the trainer):
 * writes each example's dense values then each feature's embedding (its
 * row, or its bag pooled by sum or mean, a sharer reading its owner's
 * table, a quantized table decoded exactly: MODEL_FORMAT.md "Table dtypes")
 * into x[r * ldx ...]: an MLP model's input row (for the others,
 * DCNv2's x_0 without a bottom MLP). Returns CTR_ERANGE for a row past its
 * table. */
int ctr_forward_gather(const ctr_model_def_t *def, size_t n, const float *dense,
                       const uint32_t *rows, float *x, size_t ldx);

/* 1 / (1 + exp(-z)) with the project's own exp (no libm): see detmath. */
float ctr_sigmoid(float z);

#endif
