/* model.h - the .ctrm model file: writer, mmapped reader and its schema.
 *
 * A model is a feature schema (dense features with a transform, categorical
 * features each with its own hashed embedding table) and an MLP whose last
 * layer has one output, fed to a sigmoid. The same description struct,
 * ctr_model_def_t, is what a writer is given and what a reader exposes; in a
 * loaded model every pointer points into the read-only file mapping.
 * Byte layout: docs/MODEL_FORMAT.md and the comment block in
 * model/model_read.c; the writer is model/model_write.c. */
#ifndef CTR_MODEL_H
#define CTR_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct ctr_model ctr_model_t;

typedef enum {
    CTR_TRANSFORM_IDENTITY = 0,    /* x */
    CTR_TRANSFORM_LOG1P = 1,       /* log(1 + max(x, 0)) */
    CTR_TRANSFORM_STANDARDIZE = 2, /* (x - mean) / std */
} ctr_transform_t;

typedef enum {
    CTR_ACT_NONE = 0,
    CTR_ACT_SMELU = 1,
    CTR_ACT_RELU = 2,
} ctr_activation_t;

typedef struct {
    const char *name;
    ctr_transform_t transform;
    double mean, std; /* used by STANDARDIZE only; std > 0 */
} ctr_dense_def_t;

/* How a categorical value becomes a table row (features.h). */
typedef enum {
    CTR_MAP_HASH = 0,  /* XXH3 with seed into rows 1..buckets; missing: row 0 */
    CTR_MAP_MOD = 1,   /* the value as an unsigned integer (a JSON integer, or
                        * a string of hex digits: TorchRec's Criteo ids)
                        * modulo buckets + 1; missing: row 0 */
} ctr_mapping_t;

/* How a bag (a list of values) is pooled into one embedding. */
typedef enum {
    CTR_POOL_SUM = 0,
    CTR_POOL_MEAN = 1,
} ctr_pool_t;

/* How a table's rows are stored in the file and in memory
 * (docs/MODEL_FORMAT.md "Table dtypes"; model/quant.h has the byte layout
 * and the one decode every kernel variant matches bit for bit). */
typedef enum {
    CTR_TABLE_F32 = 0,            /* dim floats */
    CTR_TABLE_F16 = 1,            /* dim IEEE halves, decoded exactly */
    CTR_TABLE_INT8_ROWWISE = 2,   /* dim uint8 q, float scale, float bias:
                                   * x = fmaf((float)q, scale, bias) */
} ctr_table_dtype_t;

/* Bytes one stored row of `dim` takes (4 dim, 2 dim, dim + 8); 0 for an
 * unknown dtype. */
size_t ctr_table_row_bytes(ctr_table_dtype_t dtype, size_t dim);
/* The tensor dtype written in the file: "f32", "f16", "int8_rowwise". */
const char *ctr_table_dtype_name(ctr_table_dtype_t dtype);
/* A name -> dtype: the file's names and the aliases "fp32", "fp16",
 * "int8"; -1 if unknown. */
int ctr_table_dtype_parse(const char *name);

/* out[r * dim + a] = element a of stored row r < n_rows at rows (back to
 * back, ctr_table_row_bytes each), decoded as the format defines it (the
 * bits every kernel variant gives; f32 rows are copied). 0, or CTR_EINVAL
 * for an unknown dtype. */
int ctr_table_decode_rows(ctr_table_dtype_t dtype, const void *rows, uint64_t n_rows, size_t dim, float *out);

/* Embedding table of one categorical feature: buckets + 1 rows of dim
 * values. Row 0 (CTR_MISSING_ROW) is the missing value's own row; hashed
 * values land in rows 1..buckets (see features.h).
 *
 * A bag feature (bag_max >= 1) takes a list of up to bag_max values; it
 * occupies bag_max row slots per example (empty ones are CTR_EMPTY_SLOT)
 * and its embedding is the sum, or the mean, of its rows in slot order
 * (an empty bag: zeros). bag_max == 0: one value, one slot, as in v1.
 *
 * Tables may be shared: shares is 0 when the feature owns its table, else
 * 1 + the index (in cat[]) of the owner, whose table it reads. An owner
 * comes before every feature sharing its table and owns one itself;
 * sharers have the owner's buckets, dim, mapping and seed, and table
 * points at the owner's rows. */
typedef struct {
    const char *name;
    uint32_t buckets;
    uint32_t dim;
    uint64_t seed;          /* CTR_MAP_HASH only */
    const float *table;     /* [(buckets + 1) * dim], row-major, fp32 */
    ctr_table_dtype_t dtype;  /* how the file stores the table (a sharer:
                             * the owner's) */
    const void *qrows;      /* dtype != F32 as stored: (buckets + 1) rows of
                             * ctr_table_row_bytes(dtype, dim) bytes, back to
                             * back; a loaded model sets this and leaves table
                             * NULL (see ctr_model_write for writing) */
    ctr_mapping_t mapping;
    uint32_t bag_max;       /* 0: single-valued; else 1..CTR_MAX_BAG */
    ctr_pool_t pool;        /* bags only */
    uint32_t shares;
} ctr_cat_def_t;

#define CTR_MAX_BAG 1024
#define CTR_MAX_SLOTS 65535   /* row slots a model may take (the audit record's bound) */

/* y[o] = act(bias[o] + sum_i x[i] * weight[i * ldw + o]): weight is
 * [in][out] with a row stride of ldw floats (0 means out: packed). A
 * loaded model pads the rows of some widths (model/model_pad.c). */
typedef struct {
    uint32_t in, out;
    const float *weight;
    const float *bias;
    uint32_t ldw; /* row stride of weight in floats; 0 = out */
} ctr_layer_def_t;

/* The interaction architectures (docs/MODEL_FORMAT.md, version 2, gives
 * each one's arithmetic exactly). In every one but MLP, the embeddings all
 * have one width d, and the dense features (if any) go through the bottom
 * MLP to one more d-wide embedding, which comes first: X = [dense_emb;
 * cat embeddings in schema order], n = (n_dense > 0) + n_cat rows of d. */
typedef enum {
    CTR_ARCH_MLP = 0,     /* top MLP over [dense values; embeddings] (v1) */
    CTR_ARCH_DOT = 1,     /* DLRM: top MLP over [dense_emb; pairwise dots] */
    CTR_ARCH_DCNV2 = 2,   /* cross layers over flatten(X), then the top MLP */
    CTR_ARCH_WUKONG = 3,  /* Wukong layers over X, top MLP over flatten */
} ctr_arch_t;

typedef enum {
    CTR_DOT_LOWER = 0,    /* reference DLRM: for i, for j < i (row-major) */
    CTR_DOT_UPPER = 1,    /* TorchRec: for i, for j > i (triu_indices) */
} ctr_dot_order_t;

/* A stack of layers; `act` after every layer, or every layer but the
 * last (see where each is used). */
typedef struct {
    size_t n;
    const ctr_layer_def_t *layers;
} ctr_mlp_def_t;

/* DCNv2 cross layer on D = dim values: t = W x_l + b (full, rank 0) or
 * t = U (V x_l) + b (low rank r), then x_{l+1} = fmaf(x_0, t, x_l).
 * Weights are [in][out] like every layer: w [D][D], v [D][r], u [r][D]. */
typedef struct {
    uint32_t dim, rank;
    const float *w;          /* rank 0 only */
    const float *v, *u;      /* rank > 0 only */
    const float *bias;       /* [D] */
} ctr_cross_def_t;

typedef enum {
    CTR_DCN_STACKED = 0,     /* top MLP over x_L */
    CTR_DCN_PARALLEL = 1,    /* top MLP over [x_L; deep(x_0)] */
} ctr_dcn_structure_t;

typedef struct {
    ctr_dcn_structure_t structure;
    size_t n_cross;
    const ctr_cross_def_t *cross;
    ctr_mlp_def_t deep;      /* parallel only: act after every layer */
} ctr_dcn_def_t;

/* One Wukong layer, n_in embeddings in, n_f + n_l out:
 *   FMB: F = reshape(MLP(LN?(flatten(X (X^T Y)))))  -> n_f x d
 *   LCB: L = W_L X                                   -> n_l x d
 *   X' = LN_d(concat(F, L) + R(X)), R = identity when n_f + n_l == n_in
 *   and res == NULL, else res X. LN_d: over each embedding's d values. */
typedef struct {
    uint32_t n_in, n_f, n_l, k;
    const float *y;                 /* [n_in][k] */
    const float *fmb_ln_gamma;      /* [n_in * k] when fmb_ln is FLAT */
    const float *fmb_ln_beta;
    ctr_mlp_def_t fmb;              /* n_in*k -> ... -> n_f*d */
    const float *lcb;               /* [n_l][n_in] */
    const float *res;               /* [n_f + n_l][n_in], or NULL */
    const float *ln_gamma, *ln_beta; /* [d] */
} ctr_wukong_layer_def_t;

typedef enum {
    CTR_FMB_LN_NONE = 0,
    CTR_FMB_LN_FLAT = 1,     /* LN over the n_in * k values, affine */
} ctr_fmb_ln_t;

typedef struct {
    size_t n_layers;
    const ctr_wukong_layer_def_t *layers;
    ctr_fmb_ln_t fmb_ln;
    int fmb_out_act;         /* activation after the FMB MLP's last layer */
} ctr_wukong_def_t;

typedef struct {
    const char *name;
    ctr_arch_t arch;
    size_t n_dense;
    const ctr_dense_def_t *dense;
    size_t n_cat;
    const ctr_cat_def_t *cat;
    size_t n_layers;                 /* >= 1; the last has out == 1 */
    const ctr_layer_def_t *layers;   /* hidden layers use `activation` */
    ctr_activation_t activation;     /* SMELU or RELU */
    float beta;                      /* SmeLU half-width, > 0 */
    const char *provenance_json;     /* a JSON object as text, or NULL */
    /* Version 2 (all zero in an MLP model): */
    ctr_mlp_def_t bottom;            /* dense -> d; act after every layer */
    ctr_dot_order_t dot_order;       /* DOT */
    int dot_self;                    /* DOT: include the diagonal i == j */
    ctr_dcn_def_t dcn;               /* DCNV2 */
    ctr_wukong_def_t wukong;         /* WUKONG */
    float ln_eps;                    /* LayerNorm epsilon (WUKONG), > 0 */
} ctr_model_def_t;

/* Streams table rows for a categorical feature whose def has table == NULL
 * (models larger than memory): fill n_rows * dim floats starting at
 * first_row into out. Returns 0 or a negative code to abort the write. */
typedef int (*ctr_table_fill_fn)(void *ctx, size_t cat_index,
                                 uint64_t first_row, uint64_t n_rows,
                                 float *out);

/* Writes def to path (via path.tmp + rename, so readers never see a half
 * file). A table whose dtype is not F32 is written from qrows when set
 * (bytes copied; every row checked), else encoded from its fp32 rows
 * (table, or the fill callback) in the dtype's one encoder (model/quant.h):
 * that is how a model is quantized. Version 1 when ctr_model_def_version(def) says so (byte-identical
 * to a version-1 writer), else version 2. Validates def first with the
 * reader's own graph rules (model/model_check.c): names unique and
 * non-empty, every shape chained for its architecture, last layer out ==
 * 1, only the fields of def->arch set, at most CTR_MAX_SLOTS row slots. */
int ctr_model_write(const char *path, const ctr_model_def_t *def,
                    ctr_table_fill_fn fill, void *fill_ctx,
                    char *err, size_t errlen);

/* Maps path read-only and checks everything but tensor checksums (those
 * cost a pass over the data: ctr_model_verify). On success *out is owned by
 * the caller and freed with ctr_model_close. */
int ctr_model_open(const char *path, ctr_model_t **out, char *err, size_t errlen);
void ctr_model_close(ctr_model_t *m);

/* How the mapping of the large tables (>= 2 MiB) is advised: "random"
 * (MADV_RANDOM: tables larger than half of memory, or the cgroup's limit)
 * or "normal" (read-around on a miss); CTR_TABLE_ADVICE=random|normal in
 * the environment decides instead. */
const char *ctr_model_table_advice(const ctr_model_t *m);

/* Recomputes every tensor's SHA-256 and compares with the header. */
int ctr_model_verify(const ctr_model_t *m, char *err, size_t errlen);

/* Borrowed views, valid until ctr_model_close. */
const ctr_model_def_t *ctr_model_def(const ctr_model_t *m);
const char *ctr_model_digest(const ctr_model_t *m);   /* "sha256:<64 hex>" */
const char *ctr_model_header_json(const ctr_model_t *m, size_t *len);
const char *ctr_model_path(const ctr_model_t *m);
uint64_t ctr_model_file_size(const ctr_model_t *m);

/* Width of the top MLP's input: for MLP n_dense + sum of the dims; for
 * the others what the interaction hands it. */
size_t ctr_model_input_dim(const ctr_model_def_t *def);

/* Row slots per example: sum over categorical features of max(1, bag_max).
 * Encoded rows are [n][slots] (features.h); == n_cat without bags. */
size_t ctr_model_slots(const ctr_model_def_t *def);
/* Index of categorical feature j's first slot. */
size_t ctr_model_slot_of(const ctr_model_def_t *def, size_t j);

/* The format version def needs: 1 for an MLP without bags, mod mapping,
 * shared or quantized tables (so those files stay byte-identical), else 2. */
unsigned ctr_model_def_version(const ctr_model_def_t *def);

const char *ctr_arch_name(ctr_arch_t a);

/* Feature lookup by name (not NUL-terminated): returns the dense index
 * (0..n_dense-1), or n_dense + categorical index, or -1. */
long ctr_model_find_feature(const ctr_model_t *m, const char *name, size_t len);

const char *ctr_transform_name(ctr_transform_t t);
const char *ctr_activation_name(ctr_activation_t a);

#endif
