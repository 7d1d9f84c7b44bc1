/* model_v2_defs.h - small hand-built model descriptions of every
 * architecture of .ctrm version 2 (mlp with bags, mod mapping and shared
 * tables; dot; dcnv2 stacked and parallel, full and low rank; wukong with
 * and without the flat FMB LayerNorm, identity and learned residuals),
 * for the format tests (test_model_v2.c) and the model fuzz target's
 * seeds (fuzz/fuzz_model.c). Header-only: both programs build from tests/
 * with testutil.o and nothing else of ours.
 *
 * Deterministic: the same options and seed give the same def, so the same
 * file bytes. Every tensor is its own malloc'd buffer (v2_free). */
#ifndef CTR_TESTS_MODEL_V2_DEFS_H
#define CTR_TESTS_MODEL_V2_DEFS_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/model.h"
#include "testutil.h"

#define V2_MAX_FEAT 8
#define V2_MAX_CROSS 4
#define V2_MAX_WK 3
#define V2_MAX_BUFS 160

typedef struct {
    ctr_arch_t arch;
    size_t n_dense, n_cat;      /* n_cat <= V2_MAX_FEAT, n_dense too */
    uint32_t d, buckets;
    bool bags;                  /* C1 a sum bag of 3, C2 a mean bag of 2 */
    bool mod;                   /* C1 mapping mod */
    bool share;                 /* the last categorical shares C1's table */
    bool bottom;                /* dcnv2: with a bottom MLP (dot and wukong: always, if n_dense) */
    ctr_dot_order_t order;
    int self;
    ctr_dcn_structure_t structure;
    size_t n_cross;             /* <= V2_MAX_CROSS; odd layers low rank */
    uint32_t rank;
    size_t n_wk;                /* <= V2_MAX_WK */
    uint32_t n_f, n_l, k;
    ctr_fmb_ln_t fmb_ln;
    int fmb_out_act;
} v2_opts_t;

typedef struct {
    ctr_dense_def_t dense[V2_MAX_FEAT];
    ctr_cat_def_t cat[V2_MAX_FEAT];
    ctr_layer_def_t top[2], bottom[2], deep[2], fmb[V2_MAX_WK][2];
    ctr_cross_def_t cross[V2_MAX_CROSS];
    ctr_wukong_layer_def_t wk[V2_MAX_WK];
    float *bufs[V2_MAX_BUFS];
    size_t n_bufs;
    test_rng_t rng;
    ctr_model_def_t def;
} v2_model_t;

static inline float *v2_buf(v2_model_t *o, size_t n)
{
    CTR_ASSERT(o->n_bufs < V2_MAX_BUFS);
    float *p = malloc((n ? n : 1) * sizeof(float));
    CTR_ASSERT(p);
    for (size_t i = 0; i < n; i++)
        p[i] = test_rng_uniform(&o->rng, -1, 1);
    o->bufs[o->n_bufs++] = p;
    return p;
}

static inline ctr_layer_def_t v2_layer(v2_model_t *o, uint32_t in, uint32_t out)
{
    return (ctr_layer_def_t){in, out, v2_buf(o, (size_t)in * out), v2_buf(o, out), 0};
}

/* Positive values near 1 (LayerNorm gains). */
static inline float *v2_gain(v2_model_t *o, size_t n)
{
    float *p = v2_buf(o, n);
    for (size_t i = 0; i < n; i++)
        p[i] = 1.0f + 0.25f * p[i];
    return p;
}

static inline void v2_build(v2_model_t *o, const v2_opts_t *opt, uint64_t seed)
{
    static const char *const dn[V2_MAX_FEAT] = {"I1", "I2", "I3", "I4", "I5", "I6", "I7", "I8"};
    static const char *const cn[V2_MAX_FEAT] = {"C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8"};
    memset(o, 0, sizeof(*o));
    o->rng.s = seed;
    ctr_model_def_t *def = &o->def;
    uint32_t d = opt->d;
    CTR_ASSERT(opt->n_dense <= V2_MAX_FEAT && opt->n_cat <= V2_MAX_FEAT);
    for (size_t i = 0; i < opt->n_dense; i++)
        o->dense[i] = (ctr_dense_def_t){dn[i], i % 3 == 2 ? CTR_TRANSFORM_STANDARDIZE : (ctr_transform_t)(i % 3),
                                        i % 3 == 2 ? 0.5 : 0, i % 3 == 2 ? 2.0 : 1};
    for (size_t j = 0; j < opt->n_cat; j++) {
        ctr_cat_def_t *c = &o->cat[j];
        *c = (ctr_cat_def_t){.name = cn[j], .buckets = opt->buckets + (uint32_t)j, .dim = d, .seed = 1000 + j};
        if (j == 0 && opt->mod)
            c->mapping = CTR_MAP_MOD, c->seed = 0;
        if (opt->bags && j < 2)
            c->bag_max = j ? 2 : 3, c->pool = j ? CTR_POOL_MEAN : CTR_POOL_SUM;
        if (opt->share && j + 1 == opt->n_cat && j > 0) {
            c->buckets = o->cat[0].buckets;
            c->mapping = o->cat[0].mapping;
            c->seed = o->cat[0].seed;
            c->shares = 1;
            c->table = o->cat[0].table;
        } else {
            c->table = v2_buf(o, ((size_t)c->buckets + 1) * d);
        }
    }
    *def = (ctr_model_def_t){.name = "v2 test", .arch = opt->arch, .n_dense = opt->n_dense, .dense = o->dense,
                             .n_cat = opt->n_cat, .cat = o->cat, .activation = CTR_ACT_SMELU, .beta = 0.5f,
                             .provenance_json = "{\"source\":\"model_v2_defs.h\"}"};
    bool want_bottom = opt->n_dense && (opt->arch == CTR_ARCH_DOT || opt->arch == CTR_ARCH_WUKONG ||
                                        (opt->arch == CTR_ARCH_DCNV2 && opt->bottom));
    if (want_bottom) {
        o->bottom[0] = v2_layer(o, (uint32_t)opt->n_dense, 3);
        o->bottom[1] = v2_layer(o, 3, d);
        def->bottom = (ctr_mlp_def_t){2, o->bottom};
    }
    size_t n = (opt->n_dense > 0) + opt->n_cat;
    if (opt->arch == CTR_ARCH_DOT) {
        def->dot_order = opt->order;
        def->dot_self = opt->self;
    } else if (opt->arch == CTR_ARCH_DCNV2) {
        uint32_t D = (uint32_t)(want_bottom ? n * d : opt->n_dense + opt->n_cat * d);
        CTR_ASSERT(opt->n_cross <= V2_MAX_CROSS);
        for (size_t l = 0; l < opt->n_cross; l++) {
            ctr_cross_def_t *x = &o->cross[l];
            x->dim = D;
            x->rank = l % 2 ? opt->rank : 0;
            if (x->rank) {
                x->v = v2_buf(o, (size_t)D * x->rank);
                x->u = v2_buf(o, (size_t)x->rank * D);
            } else {
                x->w = v2_buf(o, (size_t)D * D);
            }
            x->bias = v2_buf(o, D);
        }
        def->dcn.structure = opt->structure;
        def->dcn.n_cross = opt->n_cross;
        def->dcn.cross = opt->n_cross ? o->cross : NULL;
        if (opt->structure == CTR_DCN_PARALLEL) {
            o->deep[0] = v2_layer(o, D, 3);
            o->deep[1] = v2_layer(o, 3, 2);
            def->dcn.deep = (ctr_mlp_def_t){2, o->deep};
        }
    } else if (opt->arch == CTR_ARCH_WUKONG) {
        uint32_t n_in = (uint32_t)n;
        CTR_ASSERT(opt->n_wk <= V2_MAX_WK);
        for (size_t i = 0; i < opt->n_wk; i++) {
            ctr_wukong_layer_def_t *L = &o->wk[i];
            uint32_t n_f = opt->n_f + (uint32_t)(i % 2), n_l = opt->n_l, k = opt->k;
            L->n_in = n_in, L->n_f = n_f, L->n_l = n_l, L->k = k;
            L->y = v2_buf(o, (size_t)n_in * k);
            if (opt->fmb_ln == CTR_FMB_LN_FLAT) {
                L->fmb_ln_gamma = v2_gain(o, (size_t)n_in * k);
                L->fmb_ln_beta = v2_buf(o, (size_t)n_in * k);
            }
            o->fmb[i][0] = v2_layer(o, n_in * k, 3);
            o->fmb[i][1] = v2_layer(o, 3, n_f * d);
            L->fmb = (ctr_mlp_def_t){2, o->fmb[i]};
            L->lcb = v2_buf(o, (size_t)n_l * n_in);
            if (n_f + n_l != n_in)
                L->res = v2_buf(o, (size_t)(n_f + n_l) * n_in);
            L->ln_gamma = v2_gain(o, d);
            L->ln_beta = v2_buf(o, d);
            n_in = n_f + n_l;
        }
        def->wukong = (ctr_wukong_def_t){opt->n_wk, opt->n_wk ? o->wk : NULL, opt->fmb_ln, opt->fmb_out_act};
        def->ln_eps = 1e-5f;
    }
    o->top[0] = v2_layer(o, (uint32_t)ctr_model_input_dim(def), 4);
    o->top[1] = v2_layer(o, 4, 1);
    def->n_layers = 2;
    def->layers = o->top;
}

static inline void v2_free(v2_model_t *o)
{
    for (size_t i = 0; i < o->n_bufs; i++)
        free(o->bufs[i]);
    o->n_bufs = 0;
}

/* One of each shape the tests and seeds start from: index 0.. until it
 * returns false. */
static inline bool v2_example(size_t i, v2_opts_t *opt, const char **label)
{
    static const struct {
        const char *label;
        v2_opts_t o;
    } ex[] = {
        {"mlp-bags-mod-share", {.arch = CTR_ARCH_MLP, .n_dense = 2, .n_cat = 3, .d = 2, .buckets = 4,
                                .bags = true, .mod = true, .share = true}},
        {"mlp-cat-only-bag", {.arch = CTR_ARCH_MLP, .n_cat = 1, .d = 3, .buckets = 2, .bags = true}},
        {"dot-lower", {.arch = CTR_ARCH_DOT, .n_dense = 3, .n_cat = 3, .d = 4, .buckets = 5}},
        {"dot-upper-self-bags", {.arch = CTR_ARCH_DOT, .n_dense = 1, .n_cat = 4, .d = 2, .buckets = 3,
                                 .bags = true, .share = true, .order = CTR_DOT_UPPER, .self = 1}},
        {"dot-no-dense", {.arch = CTR_ARCH_DOT, .n_cat = 2, .d = 3, .buckets = 2, .mod = true}},
        {"dcnv2-stacked-raw", {.arch = CTR_ARCH_DCNV2, .n_dense = 2, .n_cat = 2, .d = 2, .buckets = 3,
                               .n_cross = 3, .rank = 2}},
        {"dcnv2-parallel-bottom", {.arch = CTR_ARCH_DCNV2, .n_dense = 3, .n_cat = 2, .d = 2, .buckets = 3,
                                   .bottom = true, .structure = CTR_DCN_PARALLEL, .n_cross = 2, .rank = 1,
                                   .bags = true}},
        {"dcnv2-no-cross", {.arch = CTR_ARCH_DCNV2, .n_dense = 1, .n_cat = 1, .d = 2, .buckets = 2}},
        {"wukong-none", {.arch = CTR_ARCH_WUKONG, .n_dense = 2, .n_cat = 3, .d = 4, .buckets = 3, .n_wk = 2,
                         .n_f = 2, .n_l = 2, .k = 2}},
        {"wukong-flat-act", {.arch = CTR_ARCH_WUKONG, .n_dense = 1, .n_cat = 2, .d = 2, .buckets = 2, .n_wk = 3,
                             .n_f = 1, .n_l = 2, .k = 3, .fmb_ln = CTR_FMB_LN_FLAT, .fmb_out_act = 1,
                             .bags = true, .mod = true, .share = true}},
        {"wukong-no-layers", {.arch = CTR_ARCH_WUKONG, .n_dense = 1, .n_cat = 2, .d = 2, .buckets = 2}},
    };
    if (i >= sizeof(ex) / sizeof(ex[0]))
        return false;
    *opt = ex[i].o;
    if (label)
        *label = ex[i].label;
    return true;
}

#endif
