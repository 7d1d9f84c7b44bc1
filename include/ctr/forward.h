/* forward.h - batch scoring: gather embeddings, run the MLP, sigmoid.
 *
 * Inputs are already encoded (features.h): dense[n][n_dense] floats and
 * rows[n][n_cat] table rows. The score of an example depends only on the
 * model and that example (bit-exact kernels), never on n or its neighbours. */
#ifndef CTR_FORWARD_H
#define CTR_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "ctr/kernels.h"
#include "ctr/model.h"

/* Per-thread working memory sized for one model shape and a batch bound;
 * allocated once, reused for every batch. */
typedef struct ctr_scratch ctr_scratch_t;

/* For def's shape and up to max_batch (>= 1) examples a chunk. Returns 0
 * with *out owned by the caller (ctr_scratch_free), or CTR_EINVAL /
 * CTR_ENOMEM with *out NULL and err filled. */
int ctr_scratch_new(const ctr_model_def_t *def, size_t max_batch, ctr_scratch_t **out,
                    char *err, size_t errlen);
void ctr_scratch_free(ctr_scratch_t *s);

/* Scores n examples (any n; batches above max_batch run in chunks).
 * logits may be NULL; otherwise it receives the pre-sigmoid values. */
int ctr_forward(const ctr_model_def_t *def, const ctr_kernel_t *k,
                size_t n, const float *dense, const uint32_t *rows,
                float *scores, float *logits, ctr_scratch_t *s);

/* The first step of ctr_forward on its own (benchmarks, the trainer):
 * writes each example's MLP input row, dense values then each table's
 * embedding row, into x[r * ldx ...]. Returns CTR_ERANGE for a row past
 * its table. */
int ctr_forward_gather(const ctr_model_def_t *def, size_t n, const float *dense,
                       const uint32_t *rows, float *x, size_t ldx);

/* 1 / (1 + exp(-z)) with the project's own exp (no libm): see detmath. */
float ctr_sigmoid(float z);

#endif
