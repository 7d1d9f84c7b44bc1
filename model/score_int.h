/* score_int.h - offline scoring on a thread pool the caller already has
 * (the trainer evaluates on its training pool). */
#ifndef CTR_SCORE_INT_H
#define CTR_SCORE_INT_H

#include "ctr/score.h"
#include "pool_int.h"

/* ctr_score_dataset on pool's threads. */
int ctr__score_pool(const ctr_model_def_t *def, const ctr_kernel_t *k, size_t n,
                    const float *dense, const uint32_t *rows, float *scores,
                    ctr__pool_t *pool);

#endif
