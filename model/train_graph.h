/* train_graph.h - the trainer of the interaction architectures (DLRM's
 * dot interaction and DCNv2 in train_graph.c, Wukong's layers in
 * train_wukong.c), shared by the training run
 * (train.c) and exposed for tests (gradient checks). The MLP architecture
 * keeps its own network (train_int.h).
 *
 * The parameters are dense blocks and embedding tables. Every dense block
 * is one linear map, "lin": weight rows [in][out] and, with a bias, the
 * bias as one more row, in one array (as in train_int.h), so its gradient
 * is A^T dZ over the batch with a constant-1 column in A for the bias.
 * An MLP is a run of consecutive lins; a full-rank cross layer is one lin
 * (W with bias b), a low-rank one two (V without bias, then U with b).
 *
 * Determinism: the two phases of train_net.c. Phase A runs per fixed
 * chunk of examples (the forward pass exactly as the serving pass computes
 * it, the loss gradient and the backward pass down to each example's
 * embeddings): each example's values depend on that example only. Phase B
 * runs per task: a chunk of rows of one lin (gradient A^T dZ as a kernel
 * product over the batch rows in order, then the optimizer), or one owned
 * embedding table (every touched row's gradient summed over the batch in
 * example order, slot order within an example, then row-wise Adagrad).
 *
 * Adding an architecture (as Wukong was, train_wukong.c): give the shape
 * its fields; in build_lins append its lins (its MLPs as runs) and set
 * ldx, emb_off and tin (X's width, where the embeddings start in it, the
 * top input's width); add its forward (X -> T) and backward (dT -> dX)
 * per chunk to the two switches of phase_a_chunk, with per-thread room in
 * tmp; and its part of ctr__graph_export. A weight applied to several
 * rows of one example (Wukong's Y, the LCB and residual matrices) still
 * has a gradient of the form A^T dZ, with that example's rows one after
 * another in A and dZ: a lin with a rows-per-example count (`rows`; AT
 * [(in + bias)][bn * rows]) keeps the kernel product and its fixed
 * order. Elementwise ones (LayerNorm's gamma and beta) sum per-example
 * gradient rows G over the batch: a lin with in 0 whose bias row is the
 * parameters (`ln`), AT a row of ones, so the kernel product ones^T G
 * gives that sum in batch order too. */
#ifndef CTR_TRAIN_GRAPH_H
#define CTR_TRAIN_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "ctr/kernels.h"
#include "ctr/model.h"
#include "ctr/train.h"
#include "pool_int.h"

/* What to build. The widths lists are hidden widths: the bottom MLP gets
 * a last layer of d (the embedding width), the top MLP one of 1. */
typedef struct {
    ctr_arch_t arch;               /* CTR_ARCH_DOT, DCNV2 or WUKONG */
    size_t n_dense, n_cat;
    const ctr_cat_def_t *cat;      /* buckets, dim (one d for all), bag_max,
                                    * pool, shares; name etc. not used */
    ctr_activation_t act;
    float beta;
    size_t n_bottom;               /* bottom MLP hidden widths */
    const uint32_t *bottom;
    int no_bottom;                 /* DCNv2: raw dense values in x_0 */
    size_t n_top;                  /* top MLP hidden widths */
    const uint32_t *top;
    ctr_dot_order_t dot_order;     /* DOT */
    int dot_self;
    ctr_dcn_structure_t structure; /* DCNv2 */
    size_t n_cross;
    uint32_t rank;                 /* 0: full rank */
    size_t n_deep;                 /* parallel: the deep MLP's widths (act
                                    * after every layer, no width added) */
    const uint32_t *deep;
    size_t n_wk;                   /* WUKONG: layers, every one n_f + n_l */
    uint32_t n_f, n_l, k;          /* out and k columns of Y (layer 0's n_in
                                    * is the embeddings' count) */
    size_t n_fmb;                  /* the FMB MLP's hidden widths (a last */
    const uint32_t *fmb;           /* layer of n_f * d is added) */
    ctr_fmb_ln_t fmb_ln;
    int fmb_out_act;
    float ln_eps;
} ctr__graph_shape_t;

/* One linear map and everything the trainer keeps for it. A lin applied
 * to `rows` rows of each example (Wukong) keeps rows-per-example batch
 * rows in AT, Z and dZ, example after example. A LayerNorm's affine
 * parameters are a lin with in 0 and the bias row [gamma | beta] (out =
 * 2w): AT is a row of ones, dZ's rows [dy * xhat | dy]. */
typedef struct {
    uint32_t in, out;
    int bias;                /* 1: the bias is row `in` of W */
    int act;                 /* 1: the model's activation follows */
    uint32_t rows;           /* batch rows per example: 1 but in Wukong */
    int ln;                  /* LayerNorm gamma | beta: gamma starts at 1 */
    uint64_t stream;         /* its initialisation stream */
    float init_a;            /* uniform in [-init_a, init_a) */
    float *W;                /* [(in + bias) * out] */
    float *WT;               /* [out * in]: the weight rows transposed */
    float *gW, *m, *v;       /* gradient and optimizer state, W's shape */
    float *AT;               /* [(in + bias) * bn * rows]: the inputs of the
                                batch, transposed, a row of ones for the bias */
    float *Z;                /* [max_batch * rows * out]: outputs before act */
    float *H;                /* [max_batch * rows * out]: after act (act only) */
    float *dZ;               /* [max_batch * rows * out]: dloss/dZ */
} ctr__glin_t;

/* A run of lins: lin[first .. first + n). */
typedef struct {
    size_t first, n;
} ctr__gmlp_t;

/* One Wukong layer (train_wukong.c): its lins and what phase A keeps per
 * example for the backward pass. */
typedef struct {
    uint32_t n_in, n_out;
    size_t y, fln, lcb, res, ln; /* lin indices; fln, res SIZE_MAX if none */
    ctr__gmlp_t fmb;
    float *f;                /* [B][n_in * k]: F, then the flat LN's output */
    float *fhat, *frstd;     /* flat LN: [B][n_in * k], [B] */
    float *xo;               /* [B][n_out * d]: X', the layer's output */
    float *xhat, *rstd;      /* LN_d: [B][n_out * d], [B][n_out] */
    float *df;               /* [B][n_in * k]: dloss/dF */
    float *dxo;              /* [B][n_out * d]: dloss/dX', then dS; the
                              * last layer's is the graph's dT */
} ctr__twk_layer_t;

typedef struct {
    ctr__graph_shape_t sh;
    uint32_t d;                    /* embedding width */
    size_t slots;                  /* row slots per example */
    size_t ne;                     /* DOT: rows of X */
    size_t ldx;                    /* X's width: DOT ne * d, DCNv2 D */
    size_t emb_off;                /* where the first embedding starts in X */
    size_t tin;                    /* the top MLP's input width */
    int has_bottom;

    size_t n_lin;
    ctr__glin_t *lin;
    ctr__gmlp_t bottom, top, deep;
    size_t *cross;                 /* per cross layer: its first lin */
    ctr__twk_layer_t *wk;          /* WUKONG: per layer */

    /* Tables: feature j reads owner[j]'s table; only owners hold one. */
    size_t *owner, *slot0, *slot_feat;
    float **table, **acc, **gT;    /* gT: keep_grads only (tests) */

    ctr_optimizer_t opt;
    float lr, emb_lr, emb_l2;
    uint64_t step;
    double b1t, b2t;

    size_t max_batch;
    unsigned n_threads;
    float *X, *dX, *T, *dT;        /* [B][ldx], [B][ldx], [B][tin], [B][tin] */
    float **xl;                    /* DCNv2: x_1 .. x_L, [B][D] each */
    float *dbk, *dx0;              /* DCNv2: [B][D] each */
    uint32_t *cnt;                 /* [B][n_cat]: a bag's non-empty slots */
    float *zeros, *loss;
    float **tmp;                   /* per thread: DOT's X^T, G and dG */
    uint64_t **keys;               /* per thread: table gradient sort keys */
    float **gbuf;                  /* per thread: one row's gradient */
    size_t n_tasks;
    uint32_t *task_lin, *task_r0, *task_r1;

    /* The description the export fills. */
    ctr_layer_def_t *layer_defs;   /* one per lin of the MLPs */
    ctr_cross_def_t *cross_defs;
    ctr_wukong_layer_def_t *wk_defs;
} ctr__graph_t;

/* A step's context, shared by train_graph.c and train_wukong.c. */
typedef struct {
    ctr__graph_t *g;
    ctr_linear_fn linear;
    ctr_pool_fn pool;
    ctr_fma_fn fma;
    size_t bn;
    const float *dense;
    const uint32_t *rows;
    const uint8_t *labels;
    int update;
    float lr_t;              /* Adam: lr * sqrt(1 - b2^t) / (1 - b1^t) */
    size_t next;             /* atomic task counter */
} ctr__gstep_t;

/* Checks a shape: CTR_EINVAL naming the first bad field. */
int ctr__graph_check(const ctr__graph_shape_t *sh, char *err, size_t errlen);

/* Allocates every buffer for batches of up to max_batch (sh is copied;
 * the arrays it points at must outlive g). keep_grads allocates gT. 0,
 * CTR_EINVAL (a bad shape, named in err) or CTR_ENOMEM. */
int ctr__graph_init(ctr__graph_t *g, const ctr__graph_shape_t *sh, size_t max_batch,
                    unsigned n_threads, int keep_grads, char *err, size_t errlen);
void ctr__graph_free(ctr__graph_t *g);

/* Every parameter from seed (train_graph.c gives the streams and
 * ranges); the top MLP's output bias to out_bias, tables uniform in
 * [-emb_scale, emb_scale). */
void ctr__graph_init_params(ctr__graph_t *g, uint64_t seed, float out_bias, float emb_scale);

/* One mini-batch of bn <= max_batch examples (dense [bn][n_dense], rows
 * [bn][slots], labels 0/1): forward, backward into every gW (and gT), and
 * with update one optimizer step. Returns the batch's summed logloss. */
double ctr__graph_step(ctr__graph_t *g, const ctr_kernel_t *k, ctr__pool_t *pool,
                       size_t bn, const float *dense, const uint32_t *rows,
                       const uint8_t *labels, int update);

/* Points def's architecture fields, layers and the tables of cat[n_cat]
 * (names etc. set by the caller) at the parameters; def keeps its name,
 * schema and provenance. */
void ctr__graph_export(ctr__graph_t *g, ctr_model_def_t *def, ctr_cat_def_t *cat);

/* train_graph.c's pieces that train_wukong.c uses. */
void ctr__graph_add_lin(ctr__graph_t *g, uint32_t in, uint32_t out, int bias, int act, uint64_t stream);
uint32_t ctr__graph_add_mlp(ctr__graph_t *g, ctr__gmlp_t *m, uint32_t in, size_t n, const uint32_t *w,
                            uint32_t last_out, int last_act, uint64_t stream0);
/* The MLP m over rows b0 .. b0+n of x (ldx): its output rows. */
const float *ctr__graph_mlp_fwd(const ctr__gstep_t *c, const ctr__gmlp_t *m, const float *x,
                                size_t ldx, size_t b0, size_t n);
/* Back through m: its last lin's dZ rows hold the output's gradient; the
 * input's gradient to dx (ldd) unless dx is NULL. */
void ctr__graph_mlp_bwd(const ctr__gstep_t *c, const ctr__gmlp_t *m, size_t b0, size_t n, float *dx,
                        size_t ldd);

/* train_wukong.c: the shape's checks (called by ctr__graph_check); the
 * lins (from build_lins, which set ldx, emb_off and ne; sets tin); the
 * per-layer buffers and each thread's scratch floats (*tmp_n); the
 * forward X -> T and the backward dT -> dX of rows b0..b1 (phase A); the
 * description. Each returns 0 or CTR_EINVAL / CTR_ENOMEM. */
int ctr__twk_check(const ctr__graph_shape_t *sh, char *err, size_t errlen);
int ctr__twk_build(ctr__graph_t *g);
int ctr__twk_alloc(ctr__graph_t *g, size_t *tmp_n);
void ctr__twk_free(ctr__graph_t *g);
size_t ctr__twk_n_lins(const ctr__graph_shape_t *sh);
void ctr__twk_fwd(const ctr__gstep_t *c, size_t b0, size_t b1, unsigned tid);
void ctr__twk_bwd(const ctr__gstep_t *c, size_t b0, size_t b1, unsigned tid);
void ctr__twk_export(ctr__graph_t *g, ctr_model_def_t *def);

#endif
