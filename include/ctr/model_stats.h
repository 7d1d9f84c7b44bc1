/* model_stats.h - the size and cost of a model description: parameters,
 * and arithmetic per example (what `ctrtool inspect` and the benchmarks
 * print as MFLOP per example and GFLOP/s). */
#ifndef CTR_MODEL_STATS_H
#define CTR_MODEL_STATS_H

#include <stdint.h>

#include "ctr/model.h"

typedef struct {
    uint64_t params;     /* the graph's floats: layers, cross layers, Wukong
                          * tensors, LayerNorm gammas and betas (no tables) */
    uint64_t emb_params; /* table floats, a shared table counted once */
    uint64_t macs;       /* multiply-adds of the matrix products, one example
                          * (DOT: the whole n x n Gram matrix, as computed) */
    uint64_t flops;      /* 2 * macs plus one per elementwise operation:
                          * activations, bag pooling adds (bags full),
                          * LayerNorm (7 per element), DCNv2's fused update
                          * (2 per element), Wukong's residual adds */
} ctr_model_stats_t;

/* Fills *st for def (any architecture). */
void ctr_model_stats(const ctr_model_def_t *def, ctr_model_stats_t *st);

#endif
