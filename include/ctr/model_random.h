/* model_random.h - a random, valid model of any architecture, in memory.
 *
 * For tests, benchmarks and `ctrtool synth`: every size is a parameter and
 * the same options always give the same values. The schema is Criteo's by
 * default (dense I1..I13 with log1p, categorical C1..C26 hashed into
 * `rows` rows each). Values come from a counter-based generator
 * (ctr_model_random_value), so a table can also be streamed to a writer
 * without being held in memory (no_tables + ctr_model_random_fill).
 *
 * Weights are uniform in +-sqrt(3 / fan_in) (unit variance through a
 * layer), biases and LayerNorm betas small, gammas near 1, cross layers
 * damped, so that scores spread over (0, 1) rather than saturate. */
#ifndef CTR_MODEL_RANDOM_H
#define CTR_MODEL_RANDOM_H

#include <stddef.h>
#include <stdint.h>

#include "ctr/model.h"

#define CTR_RANDOM_MAX_LAYERS 16

/* A list of layer widths. */
typedef struct {
    size_t n;
    uint32_t w[CTR_RANDOM_MAX_LAYERS];
} ctr_widths_t;

typedef struct {
    ctr_arch_t arch;
    const char *name;              /* model name; "random" */
    size_t n_dense, n_cat;         /* I1..I<n_dense>, C1..C<n_cat>: 13, 26 */
    uint32_t d;                    /* every table's width: 16 */
    uint32_t rows;                 /* buckets of every table (plus row 0): 1000 */
    ctr_mapping_t mapping;         /* hash */
    ctr_activation_t act;          /* smelu */
    float beta;                    /* 1.0 */
    float emb_scale;               /* table values uniform in +-emb_scale: 0.5 */
    ctr_widths_t top;              /* top MLP hidden widths; the 1-wide last
                                    * layer is added: 64, 32 */
    ctr_widths_t bottom;           /* bottom MLP hidden widths; the d-wide last
                                    * layer is added: 32 (not for MLP) */
    int no_bottom;                 /* DCNv2: no bottom MLP, raw dense in x_0 */
    /* DOT */
    ctr_dot_order_t dot_order;     /* lower */
    int dot_self;
    /* DCNv2 */
    ctr_dcn_structure_t dcn_structure; /* stacked */
    size_t n_cross;                /* 2 */
    uint32_t rank;                 /* 0: full W; else U V of this rank */
    ctr_widths_t deep;             /* parallel: the deep MLP's widths: 64, 32 */
    /* Wukong */
    size_t n_wukong;               /* layers: 2 */
    uint32_t n_f, n_l, k;          /* per layer: 8, 8, 8 */
    ctr_widths_t fmb;              /* FMB MLP hidden widths; the n_f*d-wide
                                    * last layer is added: 64 */
    ctr_fmb_ln_t fmb_ln;           /* none */
    int fmb_out_act;
    int learned_res;               /* a res matrix even where the identity fits */
    float ln_eps;                  /* 1e-5 */
    /* Bags and shared tables, by feature name: */
    const char *bag_features;      /* "C1,C5:mean": bags (pool `pool` unless
                                    * ":sum" or ":mean" follows); NULL: none */
    uint32_t max_bag;              /* slots of each bag: 4 */
    ctr_pool_t pool;               /* sum */
    const char *shared;            /* "C3=C1,C4=C1": C3 and C4 read C1's table */
    int no_tables;                 /* tables left NULL: stream them with
                                    * ctr_model_random_fill */
    uint64_t seed;                 /* 1 */
} ctr_model_random_opts_t;

typedef struct ctr_model_random ctr_model_random_t;

/* The defaults above for arch. */
void ctr_model_random_defaults(ctr_model_random_opts_t *o, ctr_arch_t arch);

/* Builds the model. Returns 0 with *out owned by the caller
 * (ctr_model_random_free), or CTR_EINVAL (an option that makes no valid
 * model, named in err) / CTR_ENOMEM with *out NULL. */
int ctr_model_random_new(const ctr_model_random_opts_t *o, ctr_model_random_t **out,
                         char *err, size_t errlen);
void ctr_model_random_free(ctr_model_random_t *m);

/* The description; every pointer in it is owned by m. */
const ctr_model_def_t *ctr_model_random_def(const ctr_model_random_t *m);

/* A ctr_table_fill_fn (model.h) for ctx = m: the values table cat_index
 * has (its owner's, for a feature sharing a table). */
int ctr_model_random_fill(void *ctx, size_t cat_index, uint64_t first_row,
                          uint64_t n_rows, float *out);

/* Element i of stream `stream` of the generator, uniform in [-scale,
 * scale): splitmix64 of (seed, stream, i), top 24 bits, exact in float. */
float ctr_model_random_value(uint64_t seed, uint64_t stream, uint64_t i, float scale);

#endif
