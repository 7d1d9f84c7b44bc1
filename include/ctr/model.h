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

/* Embedding table of one categorical feature: buckets + 1 rows of dim
 * floats. Row 0 (CTR_MISSING_ROW) is the missing value's own row; hashed
 * values land in rows 1..buckets (see features.h). */
typedef struct {
    const char *name;
    uint32_t buckets;
    uint32_t dim;
    uint64_t seed;
    const float *table; /* [(buckets + 1) * dim], row-major */
} ctr_cat_def_t;

/* y[o] = act(bias[o] + sum_i x[i] * weight[i * out + o]): weight is [in][out]. */
typedef struct {
    uint32_t in, out;
    const float *weight;
    const float *bias;
} ctr_layer_def_t;

typedef struct {
    const char *name;
    size_t n_dense;
    const ctr_dense_def_t *dense;
    size_t n_cat;
    const ctr_cat_def_t *cat;
    size_t n_layers;                 /* >= 1; the last has out == 1 */
    const ctr_layer_def_t *layers;   /* hidden layers use `activation` */
    ctr_activation_t activation;     /* SMELU or RELU */
    float beta;                      /* SmeLU half-width, > 0 */
    const char *provenance_json;     /* a JSON object as text, or NULL */
} ctr_model_def_t;

/* Streams table rows for a categorical feature whose def has table == NULL
 * (models larger than memory): fill n_rows * dim floats starting at
 * first_row into out. Returns 0 or a negative code to abort the write. */
typedef int (*ctr_table_fill_fn)(void *ctx, size_t cat_index,
                                 uint64_t first_row, uint64_t n_rows,
                                 float *out);

/* Writes def to path (via path.tmp + rename, so readers never see a half
 * file). Validates def first: names unique and non-empty, shapes chained
 * (layer 0 in == n_dense + sum of dims), last layer out == 1. */
int ctr_model_write(const char *path, const ctr_model_def_t *def,
                    ctr_table_fill_fn fill, void *fill_ctx,
                    char *err, size_t errlen);

/* Maps path read-only and checks everything but tensor checksums (those
 * cost a pass over the data: ctr_model_verify). On success *out is owned by
 * the caller and freed with ctr_model_close. */
int ctr_model_open(const char *path, ctr_model_t **out, char *err, size_t errlen);
void ctr_model_close(ctr_model_t *m);

/* Recomputes every tensor's SHA-256 and compares with the header. */
int ctr_model_verify(const ctr_model_t *m, char *err, size_t errlen);

/* Borrowed views, valid until ctr_model_close. */
const ctr_model_def_t *ctr_model_def(const ctr_model_t *m);
const char *ctr_model_digest(const ctr_model_t *m);   /* "sha256:<64 hex>" */
const char *ctr_model_header_json(const ctr_model_t *m, size_t *len);
const char *ctr_model_path(const ctr_model_t *m);
uint64_t ctr_model_file_size(const ctr_model_t *m);

/* Width of the MLP input: n_dense + sum of the tables' dims. */
size_t ctr_model_input_dim(const ctr_model_def_t *def);

/* Feature lookup by name (not NUL-terminated): returns the dense index
 * (0..n_dense-1), or n_dense + categorical index, or -1. */
long ctr_model_find_feature(const ctr_model_t *m, const char *name, size_t len);

const char *ctr_transform_name(ctr_transform_t t);
const char *ctr_activation_name(ctr_activation_t a);

#endif
