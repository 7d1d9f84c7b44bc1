/* train.h - training a .ctrm model from labelled rows (offline scoring
 * is score.h).
 *
 * The model: each dense feature is transformed (features.h), each
 * categorical feature looks up a row of its own hashed embedding table (a
 * bag feature, a column named in data.bags, pools the rows of its values
 * by sum or mean), the concatenation feeds an MLP (hidden layers with
 * SmeLU or ReLU, last layer one output, sigmoid). No hidden layers =
 * logistic regression. With arch DOT, DCNV2 or WUKONG the embeddings
 * (and the dense features through the bottom MLP) meet in DLRM's pairwise
 * dot products, DCNv2's cross layers or Wukong's layers before the top
 * MLP (docs/MODEL_FORMAT.md, version 2).
 *
 * Training: mini-batch binary cross-entropy (mean over the batch); Adam (or
 * Adagrad) for the MLP's weights and biases; row-wise Adagrad for the
 * embedding tables, updating only the rows a batch touched. Examples are
 * shuffled every epoch from the order seed, and weights and tables
 * initialised from the init seed; both are the seed unless given apart
 * (has_init_seed, has_order_seed), so the two sources of retraining
 * disagreement can be told apart.
 *
 * Quantized tables (emb_dtype): training is fp32; the written model's
 * tables are encoded by the writer's encoder, and the metrics reported and stored
 * in the provenance are those of the written model (its tables read back
 * and decoded exactly as the server decodes them), the fp32 weights' next
 * to them ("metrics_fp32").
 *
 * Determinism: the same data, options and seed give a byte-identical model
 * file, whatever the thread count. Every float sum has one fixed order:
 * threads split work into pieces whose results do not depend on who
 * computes them (rows of a batch in the forward pass, rows of a weight
 * matrix and whole embedding tables in the update), and the matrix
 * products use the bit-exact kernels of kernels.h. */
#ifndef CTR_TRAIN_H
#define CTR_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ctr/data.h"
#include "ctr/kernels.h"
#include "ctr/metrics.h"
#include "ctr/model.h"
#include "ctr/sha256.h"

#define CTR_TRAIN_MAX_HIDDEN 8

typedef enum {
    CTR_OPTIM_ADAM = 0,
    CTR_OPTIM_ADAGRAD = 1,
} ctr_optimizer_t;

typedef struct {
    /* data */
    const char *data_path;
    ctr_data_opts_t data;          /* format and columns; criteo: all 39;
                                      data.bags: the bag features */
    int skip_bad;                  /* count and skip bad rows, else stop */
    double valid_frac;             /* rows held out for validation [0, 0.9] */
    uint64_t split_seed;           /* which rows are held out */

    /* model */
    const char *name;              /* model name in the header */
    ctr_activation_t activation;   /* SMELU or RELU */
    double beta;                   /* SmeLU half-width */
    size_t n_hidden;               /* 0 = logistic regression */
    uint32_t hidden[CTR_TRAIN_MAX_HIDDEN];
    uint32_t dim;                  /* embedding width of every table */
    size_t n_buckets;              /* 1 (all tables) or n_cat entries */
    const uint32_t *buckets;
    size_t n_transforms;           /* 0 (format default), 1 or n_dense */
    const ctr_transform_t *transforms;
    uint64_t hash_seed;            /* table j hashes with hash_seed + j */
    ctr_pool_t pool;               /* every bag feature's pooling [sum] */
    /* Interaction architectures (ctrtool synth's names); with any but MLP,
     * `hidden` is the top MLP's hidden widths and `dim` every table's. */
    ctr_arch_t arch;               /* MLP (default), DOT, DCNV2 or WUKONG */
    size_t n_bottom;               /* dense MLP hidden widths; a last layer of */
    uint32_t bottom[CTR_TRAIN_MAX_HIDDEN]; /* dim is added: 64 */
    int no_bottom;                 /* DCNV2: raw dense values in x_0 */
    ctr_dot_order_t dot_order;     /* DOT: LOWER (DLRM) or UPPER (TorchRec) */
    int dot_self;                  /* DOT: each embedding with itself too */
    ctr_dcn_structure_t dcn_structure; /* DCNV2: STACKED or PARALLEL */
    uint32_t n_cross;              /* DCNV2: cross layers: 3 */
    uint32_t rank;                 /* DCNV2: 0 full rank, else U V of rank */
    size_t n_deep;                 /* DCNV2 parallel: deep MLP widths: 256,128 */
    uint32_t deep[CTR_TRAIN_MAX_HIDDEN];
    uint32_t n_wukong;             /* WUKONG: layers: 2 */
    uint32_t n_f, n_l, k;          /* WUKONG: FMB, LCB outputs, Y's columns: 8, 8, 24 */
    size_t n_fmb;                  /* WUKONG: FMB MLP hidden widths (a last */
    uint32_t fmb[CTR_TRAIN_MAX_HIDDEN]; /* layer of n_f * dim is added): 256 */
    ctr_fmb_ln_t fmb_ln;           /* WUKONG: NONE or FLAT */
    int fmb_out_act;               /* WUKONG: act after the FMB's last layer */
    double ln_eps;                 /* WUKONG: LayerNorm epsilon: 1e-5 */
    ctr_table_dtype_t emb_dtype;   /* how the written model stores its tables:
                                    * F32 (default), F16 or INT8_ROWWISE;
                                    * training is fp32 either way */

    /* optimisation */
    unsigned epochs;
    size_t batch;
    double lr;                     /* MLP (Adam / Adagrad) */
    double emb_lr;                 /* embedding tables (row-wise Adagrad) */
    double emb_l2;                 /* L2 on embedding rows, applied when touched */
    double emb_init;               /* embedding init: uniform in [-x, x] */
    int lr_decay;                  /* 1: both rates fall linearly to 0 over the run */
    ctr_optimizer_t optimizer;
    uint64_t seed;                 /* initialisation and shuffle order */
    int has_init_seed;             /* 1: init_seed drives initialisation */
    uint64_t init_seed;
    int has_order_seed;            /* 1: order_seed drives the shuffles */
    uint64_t order_seed;
    unsigned threads;              /* 0 = online CPUs, at most 16 */

    /* reporting */
    int progress;                  /* 1: a progress line on log */
    FILE *log;                     /* NULL = quiet */
} ctr_train_opts_t;

typedef struct {
    uint64_t rows;                 /* rows read and kept */
    uint64_t bad_rows;             /* skipped with skip_bad */
    size_t n_train, n_valid;
    ctr_metrics_t train, valid;    /* the model as written, ctr_forward
                                    * scores (quantized tables: decoded) */
    ctr_metrics_t train_f32, valid_f32; /* emb_dtype != F32: the fp32 weights
                                    * before quantization; else == train, valid */
    double load_seconds;           /* reading and encoding the data */
    double train_seconds;          /* the epochs, without loading/eval */
    double rows_per_s;             /* training examples / train_seconds */
    char data_sha256[CTR_SHA256_HEX_LEN + 1]; /* the data file, lowercase hex */
} ctr_train_report_t;

/* Defaults: criteo format, valid_frac 0.1, split_seed 1, SmeLU beta 1,
 * hidden 512,256, dim 16, 65536 buckets, 1 epoch, batch 256, lr 1e-3,
 * emb_lr 0.1, linear lr decay, emb_init 0.05, seed 1 (init and order seeds
 * not set apart), pool sum; arch mlp (bottom 64, 3 full-rank cross layers,
 * deep 256,128, Wukong 2 layers of nf 8, nl 8, k 24, fmb 256, no FMB LN,
 * ln_eps 1e-5 when asked for), emb_dtype F32. */
void ctr_train_opts_init(ctr_train_opts_t *o);

/* Trains and writes the model to out_path. rep may be NULL. */
int ctr_train_run(const ctr_train_opts_t *o, const char *out_path,
                  ctr_train_report_t *rep, char *err, size_t errlen);

#endif
