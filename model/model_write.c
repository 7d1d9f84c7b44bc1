/* model_write.c - the .ctrm writer (ctr_model_write in ctr/model.h).
 *
 * The byte layout and the header JSON are in the comment block at the top
 * of model_read.c. This writer emits exactly the key order shown there,
 * compact, reals with 17 significant digits, so one def always gives the
 * same bytes.
 *
 * The header length does not depend on the checksums (fixed-width hex),
 * so the writer lays out the tensors from a header built with zero
 * checksums, streams each tensor (in chunks of CHUNK_BYTES, through the
 * fill callback for tables given as NULL) hashing as it goes, then writes
 * the final header in front: memory stays bounded for any model size. The
 * file is written as path.tmp and renamed over path, so a reader never
 * sees half a file and an existing mapping of path stays intact. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctr/common.h"
#include "ctr/model.h"
#include "ctr/sha256.h"
#include "model_int.h"
#include "quant_encode.h"

#define CHUNK_BYTES ((size_t)64 << 20)

typedef struct {
    char name[TENSOR_NAME_MAX_BYTES + 1];
    int rank;
    uint64_t shape[2];
    uint64_t offset, nbytes;
    const float *data; /* NULL: streamed through the fill callback */
    uint64_t ld;       /* data's row stride in floats when > shape[1] (a
                        * padded layer weight, ctr_layer_def_t.ldw), else 0 */
    size_t cat_index;  /* for streamed tables */
    uint32_t dim;
    ctr_table_dtype_t dtype; /* a table's; f32 for everything else */
    const uint8_t *qdata;    /* a quantized table's stored rows, copied as is;
                              * NULL: encoded from data or the fill callback */
    char sha[SHA_HEX + 1];
} wtensor_t;

static int validate_def(const ctr_model_def_t *def, ctr_table_fill_fn fill,
                        char *err, size_t errlen)
{
    int rc = 0;
    ctr__name_index_t ix = {0};
    if (!def->name || !ctr__model_name_valid(def->name, strlen(def->name)))
        return ctr_error(err, errlen, CTR_EINVAL,
                         "model name: expected 1..%d bytes of UTF-8 without control characters",
                         MODEL_NAME_MAX_BYTES);
    json_t *probe = json_string(def->name);
    if (!probe)
        return ctr_error(err, errlen, CTR_EINVAL, "model name: not valid UTF-8");
    json_decref(probe);
    if ((def->n_dense && !def->dense) || (def->n_cat && !def->cat))
        return ctr_error(err, errlen, CTR_EINVAL, "n_dense/n_cat > 0 with a NULL array");
    if (def->n_dense + def->n_cat == 0 || def->n_dense + def->n_cat > INT32_MAX)
        return ctr_error(err, errlen, CTR_EINVAL, "a model needs 1..2^31-1 features, got %zu",
                         def->n_dense + def->n_cat);
    if (!def->n_layers || !def->layers)
        return ctr_error(err, errlen, CTR_EINVAL, "a model needs at least one layer");
    if (def->activation != CTR_ACT_SMELU && def->activation != CTR_ACT_RELU)
        return ctr_error(err, errlen, CTR_EINVAL, "activation must be smelu or relu (got %d)",
                         (int)def->activation);
    if (!(def->beta > 0) || !isfinite(def->beta))
        return ctr_error(err, errlen, CTR_EINVAL, "beta must be finite and > 0 (got %g)",
                         (double)def->beta);
    if (ctr__name_index_init(&ix, def->n_dense + def->n_cat))
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    for (size_t i = 0; i < def->n_dense + def->n_cat; i++) {
        bool is_dense = i < def->n_dense;
        size_t k = is_dense ? i : i - def->n_dense;
        const char *kind = is_dense ? "dense" : "categorical";
        const char *name = is_dense ? def->dense[k].name : def->cat[k].name;
        if (!name || !ctr__name_valid(name, strlen(name), NAME_MAX_BYTES)) {
            rc = ctr_error(err, errlen, CTR_EINVAL,
                           "%s[%zu].name: expected 1..%d bytes of printable ASCII without quotes or backslash",
                           kind, k, NAME_MAX_BYTES);
            goto out;
        }
        if (!ctr__name_index_add(&ix, name, strlen(name), (uint32_t)i)) {
            rc = ctr_error(err, errlen, CTR_EINVAL, "%s[%zu]: duplicate feature name \"%s\"", kind, k, name);
            goto out;
        }
        if (is_dense) {
            const ctr_dense_def_t *d = &def->dense[k];
            if (d->transform != CTR_TRANSFORM_IDENTITY && d->transform != CTR_TRANSFORM_LOG1P &&
                d->transform != CTR_TRANSFORM_STANDARDIZE) {
                rc = ctr_error(err, errlen, CTR_EINVAL, "dense \"%s\": unknown transform %d", name, (int)d->transform);
                goto out;
            }
            if (d->transform == CTR_TRANSFORM_STANDARDIZE &&
                (!isfinite(d->mean) || !isfinite(d->std) || !(d->std > 0))) {
                rc = ctr_error(err, errlen, CTR_EINVAL,
                               "dense \"%s\": standardize needs a finite mean and a finite std > 0 (got %g, %g)",
                               name, d->mean, d->std);
                goto out;
            }
        } else {
            const ctr_cat_def_t *c = &def->cat[k];
            if (!c->buckets || !c->dim) {
                rc = ctr_error(err, errlen, CTR_EINVAL, "categorical \"%s\": buckets and dim must be > 0", name);
                goto out;
            }
        }
    }
    /* The graph, as the reader will check it. */
    if ((rc = ctr__model_check(def, CTR_EINVAL, "", err, errlen)))
        goto out;
    /* A table is written once, by its owner: from memory or through the
     * fill callback. A sharer's table is the owner's (or NULL). */
    for (size_t j = 0; j < def->n_cat; j++) {
        const ctr_cat_def_t *c = &def->cat[j];
        if (c->shares && c->dtype != def->cat[c->shares - 1].dtype) {
            rc = ctr_error(err, errlen, CTR_EINVAL,
                           "schema.categorical[%zu].dtype: \"%s\" shares the table of \"%s\" but has dtype %d, not %d",
                           j, c->name, def->cat[c->shares - 1].name, (int)c->dtype,
                           (int)def->cat[c->shares - 1].dtype);
            goto out;
        }
        if (c->shares && c->table && c->table != def->cat[c->shares - 1].table) {
            rc = ctr_error(err, errlen, CTR_EINVAL,
                           "schema.categorical[%zu].table: \"%s\" shares the table of \"%s\" but points elsewhere",
                           j, c->name, def->cat[c->shares - 1].name);
            goto out;
        }
        if (!c->shares && !c->table && !c->qrows && !fill) {
            rc = ctr_error(err, errlen, CTR_EINVAL,
                           "categorical \"%s\": table is NULL and no fill callback was given", c->name);
            goto out;
        }
        if (!c->shares && (!ctr_table_dtype_name(c->dtype) || (c->qrows && c->dtype == CTR_TABLE_F32))) {
            rc = ctr_error(err, errlen, CTR_EINVAL, "categorical \"%s\": %s", c->name,
                           c->qrows ? "qrows set on an f32 table" : "unknown table dtype");
            goto out;
        }
    }
out:
    ctr__name_index_free(&ix);
    return rc;
}

/* The schema's dense features, appended to arr (both versions). */
static int dense_json(const ctr_model_def_t *def, json_t *arr)
{
    for (size_t i = 0; i < def->n_dense; i++) {
        const ctr_dense_def_t *d = &def->dense[i];
        json_t *o = d->transform == CTR_TRANSFORM_STANDARDIZE
                        ? json_pack("{s:s,s:s,s:f,s:f}", "name", d->name, "transform",
                                    ctr_transform_name(d->transform), "mean", d->mean, "std", d->std)
                        : json_pack("{s:s,s:s}", "name", d->name, "transform",
                                    ctr_transform_name(d->transform));
        if (json_array_append_new(arr, o))
            return CTR_ENOMEM;
    }
    return 0;
}

/* The "tensors" entries, appended to arr (both versions). */
static int tensors_json(const wtensor_t *t, size_t nt, json_t *arr)
{
    for (size_t i = 0; i < nt; i++) {
        json_t *shape = t[i].rank == 2 ? json_pack("[I,I]", (json_int_t)t[i].shape[0], (json_int_t)t[i].shape[1])
                                       : json_pack("[I]", (json_int_t)t[i].shape[0]);
        json_t *o = json_pack("{s:s,s:s,s:o,s:I,s:I,s:s}", "name", t[i].name, "dtype", ctr_table_dtype_name(t[i].dtype),
                              "shape", shape, "offset", (json_int_t)t[i].offset,
                              "nbytes", (json_int_t)t[i].nbytes, "sha256", t[i].sha);
        if (json_array_append_new(arr, o))
            return CTR_ENOMEM;
    }
    return 0;
}

/* The version-1 header JSON text (malloc'd) for the given tensor layout. */
static int build_header_v1(const ctr_model_def_t *def, const wtensor_t *t, size_t nt,
                        uint64_t data_bytes, json_t *provenance, char **out, size_t *len)
{
    json_t *root = NULL, *dense = NULL, *cat = NULL, *layers = NULL, *tensors = NULL;
    int rc = CTR_ENOMEM;
    *out = NULL;
    if (!(dense = json_array()) || !(cat = json_array()) || !(layers = json_array()) ||
        !(tensors = json_array()))
        goto fail;
    if (dense_json(def, dense))
        goto fail;
    for (size_t j = 0; j < def->n_cat; j++) {
        const ctr_cat_def_t *c = &def->cat[j];
        char table[TENSOR_NAME_MAX_BYTES + 1], seed[24];
        snprintf(table, sizeof(table), "emb.%s", c->name);
        snprintf(seed, sizeof(seed), "%" PRIu64, c->seed);
        json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:s,s:s}", "name", c->name, "table", table,
                              "buckets", (json_int_t)c->buckets, "dim", (json_int_t)c->dim,
                              "seed", seed, "hash", "xxh3_64");
        if (json_array_append_new(cat, o))
            goto fail;
    }
    for (size_t l = 0; l < def->n_layers; l++) {
        char w[32], b[32];
        snprintf(w, sizeof(w), "mlp.%zu.weight", l);
        snprintf(b, sizeof(b), "mlp.%zu.bias", l);
        json_t *o = json_pack("{s:I,s:I,s:s,s:s}", "in", (json_int_t)def->layers[l].in,
                              "out", (json_int_t)def->layers[l].out, "weight", w, "bias", b);
        if (json_array_append_new(layers, o))
            goto fail;
    }
    if (tensors_json(t, nt, tensors))
        goto fail;
    root = json_pack("{s:s,s:i,s:s,s:{s:O,s:O},s:{s:s,s:f,s:O},s:O,s:I,s:O}",
                     "format", "ctrm", "version", (int)FORMAT_VERSION, "name", def->name,
                     "schema", "dense", dense, "categorical", cat,
                     "mlp", "activation", ctr_activation_name(def->activation),
                     "beta", (double)def->beta, "layers", layers,
                     "tensors", tensors, "data_bytes", (json_int_t)data_bytes,
                     "provenance", provenance);
    if (!root)
        goto fail;
    *out = json_dumps(root, DUMP_FLAGS);
    if (!*out)
        goto fail;
    *len = strlen(*out);
    rc = 0;
fail:
    json_decref(root);
    json_decref(dense);
    json_decref(cat);
    json_decref(layers);
    json_decref(tensors);
    return rc;
}

/* ---- version 2 ----------------------------------------------------------- */

/* Sets obj[key] = v (stolen); -1 if v is NULL or the set fails. */
static int put(json_t *obj, const char *key, json_t *v)
{
    return v && obj && !json_object_set_new(obj, key, v) ? 0 : (json_decref(v), -1);
}

/* A layer list whose tensors are <prefix>.<i>.weight|bias. */
static json_t *layers_json(const char *prefix, const ctr_layer_def_t *L, size_t n)
{
    json_t *arr = json_array();
    for (size_t l = 0; arr && l < n; l++) {
        char w[TENSOR_NAME_MAX_BYTES + 1], b[TENSOR_NAME_MAX_BYTES + 1];
        snprintf(w, sizeof(w), "%s.%zu.weight", prefix, l);
        snprintf(b, sizeof(b), "%s.%zu.bias", prefix, l);
        if (json_array_append_new(arr, json_pack("{s:I,s:I,s:s,s:s}", "in", (json_int_t)L[l].in, "out",
                                                 (json_int_t)L[l].out, "weight", w, "bias", b))) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static json_t *cat_json_v2(const ctr_model_def_t *def, size_t j)
{
    const ctr_cat_def_t *c = &def->cat[j];
    const ctr_cat_def_t *owner = c->shares ? &def->cat[c->shares - 1] : c;
    char table[TENSOR_NAME_MAX_BYTES + 1], seed[24];
    snprintf(table, sizeof(table), "emb.%s", owner->name);
    snprintf(seed, sizeof(seed), "%" PRIu64, c->seed);
    json_t *o = json_object();
    int bad = put(o, "name", json_string(c->name)) | put(o, "table", json_string(table)) |
              put(o, "buckets", json_integer(c->buckets)) | put(o, "dim", json_integer(c->dim)) |
              put(o, "mapping", json_string(c->mapping == CTR_MAP_MOD ? "mod" : "hash"));
    if (c->mapping == CTR_MAP_HASH)
        bad |= put(o, "seed", json_string(seed)) | put(o, "hash", json_string("xxh3_64"));
    if (c->bag_max)
        bad |= put(o, "bag", json_pack("{s:I,s:s}", "max", (json_int_t)c->bag_max, "pool",
                                       c->pool == CTR_POOL_MEAN ? "mean" : "sum"));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *dcn_json(const ctr_model_def_t *def)
{
    const ctr_dcn_def_t *dc = &def->dcn;
    json_t *o = json_object(), *cross = json_array();
    int bad = put(o, "structure", json_string(dc->structure == CTR_DCN_PARALLEL ? "parallel" : "stacked"));
    for (size_t l = 0; cross && l < dc->n_cross; l++) {
        const ctr_cross_def_t *x = &dc->cross[l];
        char a[48], b[48], bias[48];
        snprintf(bias, sizeof(bias), "cross.%zu.bias", l);
        json_t *e;
        if (!x->rank) {
            snprintf(a, sizeof(a), "cross.%zu.weight", l);
            e = json_pack("{s:I,s:I,s:s,s:s}", "dim", (json_int_t)x->dim, "rank", (json_int_t)0, "weight", a,
                          "bias", bias);
        } else {
            snprintf(a, sizeof(a), "cross.%zu.v", l);
            snprintf(b, sizeof(b), "cross.%zu.u", l);
            e = json_pack("{s:I,s:I,s:s,s:s,s:s}", "dim", (json_int_t)x->dim, "rank", (json_int_t)x->rank, "v", a,
                          "u", b, "bias", bias);
        }
        bad |= json_array_append_new(cross, e);
    }
    bad |= put(o, "cross", cross) | put(o, "deep", layers_json("deep", dc->deep.layers, dc->deep.n));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *wukong_json(const ctr_model_def_t *def)
{
    const ctr_wukong_def_t *wk = &def->wukong;
    json_t *o = json_object(), *layers = json_array();
    int bad = put(o, "ln_eps", json_real((double)def->ln_eps)) |
              put(o, "fmb_ln", json_string(wk->fmb_ln == CTR_FMB_LN_FLAT ? "flat" : "none")) |
              put(o, "fmb_out_act", json_boolean(wk->fmb_out_act));
    for (size_t i = 0; layers && i < wk->n_layers; i++) {
        const ctr_wukong_layer_def_t *L = &wk->layers[i];
        char name[TENSOR_NAME_MAX_BYTES + 1];
        json_t *e = json_object();
#define NAME(fmt) (snprintf(name, sizeof(name), fmt, i), json_string(name))
        bad |= put(e, "n_in", json_integer(L->n_in)) | put(e, "n_f", json_integer(L->n_f)) |
               put(e, "n_l", json_integer(L->n_l)) | put(e, "k", json_integer(L->k)) |
               put(e, "y", NAME("wukong.%zu.y"));
        if (wk->fmb_ln == CTR_FMB_LN_FLAT)
            bad |= put(e, "fmb_ln_gamma", NAME("wukong.%zu.fmb_ln.gamma")) |
                   put(e, "fmb_ln_beta", NAME("wukong.%zu.fmb_ln.beta"));
        snprintf(name, sizeof(name), "wukong.%zu.fmb", i);
        bad |= put(e, "fmb", layers_json(name, L->fmb.layers, L->fmb.n)) | put(e, "lcb", NAME("wukong.%zu.lcb"));
        if (L->res)
            bad |= put(e, "res", NAME("wukong.%zu.res"));
        bad |= put(e, "ln_gamma", NAME("wukong.%zu.ln.gamma")) | put(e, "ln_beta", NAME("wukong.%zu.ln.beta"));
#undef NAME
        bad |= json_array_append_new(layers, e);
    }
    bad |= put(o, "layers", layers);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The version-2 header JSON text (malloc'd), keys in the order of the
 * comment at the top of model_read.c. */
static int build_header_v2(const ctr_model_def_t *def, const wtensor_t *t, size_t nt,
                           uint64_t data_bytes, json_t *provenance, char **out, size_t *len)
{
    json_t *root = json_object(), *dense = json_array(), *cat = json_array(), *tensors = json_array();
    json_t *schema = json_object(), *mlp = json_object();
    int bad = !dense || !cat || !tensors || dense_json(def, dense) || tensors_json(t, nt, tensors);
    for (size_t j = 0; cat && j < def->n_cat; j++)
        bad |= json_array_append_new(cat, cat_json_v2(def, j));
    bad |= put(schema, "dense", dense) | put(schema, "categorical", cat);
    bad |= put(mlp, "activation", json_string(ctr_activation_name(def->activation))) |
           put(mlp, "beta", json_real((double)def->beta)) |
           put(mlp, "layers", layers_json("mlp", def->layers, def->n_layers));
    bad |= put(root, "format", json_string("ctrm")) | put(root, "version", json_integer(2)) |
           put(root, "name", json_string(def->name)) | put(root, "arch", json_string(ctr_arch_name(def->arch))) |
           put(root, "schema", schema);
    if (def->bottom.n)
        bad |= put(root, "bottom", json_pack("{s:o}", "layers", layers_json("bottom", def->bottom.layers,
                                                                             def->bottom.n)));
    if (def->arch == CTR_ARCH_DOT)
        bad |= put(root, "interaction", json_pack("{s:s,s:b}", "order", def->dot_order == CTR_DOT_UPPER ? "upper"
                                                                                                    : "lower",
                                                  "self", def->dot_self));
    else if (def->arch == CTR_ARCH_DCNV2)
        bad |= put(root, "interaction", dcn_json(def));
    else if (def->arch == CTR_ARCH_WUKONG)
        bad |= put(root, "interaction", wukong_json(def));
    bad |= put(root, "mlp", mlp) | put(root, "tensors", tensors) |
           put(root, "data_bytes", json_integer((json_int_t)data_bytes)) |
           put(root, "provenance", json_incref(provenance));
    *out = bad ? NULL : json_dumps(root, DUMP_FLAGS);
    json_decref(root);
    if (!*out)
        return CTR_ENOMEM;
    *len = strlen(*out);
    return 0;
}

static int build_header(const ctr_model_def_t *def, unsigned version, const wtensor_t *t, size_t nt,
                        uint64_t data_bytes, json_t *provenance, char **out, size_t *len)
{
    if (version == 1)
        return build_header_v1(def, t, nt, data_bytes, provenance, out, len);
    return build_header_v2(def, t, nt, data_bytes, provenance, out, len);
}

/* ---- the tensors, in file order ------------------------------------------ */

/* Version 1: the top MLP, then the tables. Version 2: the bottom MLP, the
 * interaction, the top MLP, then each table once, by its owner. Small,
 * always-read tensors first; the big, randomly-read tables after. */
typedef struct {
    wtensor_t *t;
    size_t n, cap;
} plan_t;

static wtensor_t *plan_add(plan_t *pl, const float *data, int rank, uint64_t d0, uint64_t d1, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static wtensor_t *plan_add(plan_t *pl, const float *data, int rank, uint64_t d0, uint64_t d1, const char *fmt, ...)
{
    if (pl->n == pl->cap) {
        size_t cap = pl->cap ? 2 * pl->cap : 16;
        wtensor_t *t = realloc(pl->t, cap * sizeof(*t));
        if (!t)
            return NULL;
        pl->t = t;
        pl->cap = cap;
    }
    wtensor_t *w = &pl->t[pl->n++];
    memset(w, 0, sizeof(*w));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->name, sizeof(w->name), fmt, ap);
    va_end(ap);
    w->rank = rank;
    w->shape[0] = d0;
    w->shape[1] = rank == 2 ? d1 : 0;
    w->data = data;
    w->dim = 1;
    return w;
}

static int plan_layers(plan_t *pl, const char *prefix, const ctr_layer_def_t *L, size_t n)
{
    for (size_t l = 0; l < n; l++) {
        wtensor_t *w = plan_add(pl, L[l].weight, 2, L[l].in, L[l].out, "%s.%zu.weight", prefix, l);
        if (!w)
            return CTR_ENOMEM;
        if (L[l].ldw > L[l].out) /* padded rows: the file holds them packed */
            w->ld = L[l].ldw;
        if (!plan_add(pl, L[l].bias, 1, L[l].out, 0, "%s.%zu.bias", prefix, l))
            return CTR_ENOMEM;
    }
    return 0;
}

static int plan_tensors(const ctr_model_def_t *def, unsigned version, plan_t *pl)
{
    const ctr_dcn_def_t *dc = &def->dcn;
    const ctr_wukong_def_t *wk = &def->wukong;
    uint64_t d = def->n_cat ? def->cat[0].dim : def->bottom.n ? def->bottom.layers[def->bottom.n - 1].out : 0;
    int rc = 0;
    if (version >= 2 && (rc = plan_layers(pl, "bottom", def->bottom.layers, def->bottom.n)))
        return rc;
    for (size_t l = 0; version >= 2 && def->arch == CTR_ARCH_DCNV2 && l < dc->n_cross; l++) {
        const ctr_cross_def_t *x = &dc->cross[l];
        bool ok = x->rank ? plan_add(pl, x->v, 2, x->dim, x->rank, "cross.%zu.v", l) &&
                                plan_add(pl, x->u, 2, x->rank, x->dim, "cross.%zu.u", l)
                          : plan_add(pl, x->w, 2, x->dim, x->dim, "cross.%zu.weight", l) != NULL;
        if (!ok || !plan_add(pl, x->bias, 1, x->dim, 0, "cross.%zu.bias", l))
            return CTR_ENOMEM;
    }
    if (version >= 2 && def->arch == CTR_ARCH_DCNV2 && (rc = plan_layers(pl, "deep", dc->deep.layers, dc->deep.n)))
        return rc;
    for (size_t i = 0; version >= 2 && def->arch == CTR_ARCH_WUKONG && i < wk->n_layers; i++) {
        const ctr_wukong_layer_def_t *L = &wk->layers[i];
        uint64_t flat = (uint64_t)L->n_in * L->k;
        char prefix[48];
        snprintf(prefix, sizeof(prefix), "wukong.%zu.fmb", i);
        if (!plan_add(pl, L->y, 2, L->n_in, L->k, "wukong.%zu.y", i) ||
            (wk->fmb_ln == CTR_FMB_LN_FLAT &&
             (!plan_add(pl, L->fmb_ln_gamma, 1, flat, 0, "wukong.%zu.fmb_ln.gamma", i) ||
              !plan_add(pl, L->fmb_ln_beta, 1, flat, 0, "wukong.%zu.fmb_ln.beta", i))) ||
            plan_layers(pl, prefix, L->fmb.layers, L->fmb.n) ||
            !plan_add(pl, L->lcb, 2, L->n_l, L->n_in, "wukong.%zu.lcb", i) ||
            (L->res && !plan_add(pl, L->res, 2, (uint64_t)L->n_f + L->n_l, L->n_in, "wukong.%zu.res", i)) ||
            !plan_add(pl, L->ln_gamma, 1, d, 0, "wukong.%zu.ln.gamma", i) ||
            !plan_add(pl, L->ln_beta, 1, d, 0, "wukong.%zu.ln.beta", i))
            return CTR_ENOMEM;
    }
    if ((rc = plan_layers(pl, "mlp", def->layers, def->n_layers)))
        return rc;
    for (size_t j = 0; j < def->n_cat; j++) {
        const ctr_cat_def_t *c = &def->cat[j];
        if (c->shares)
            continue;
        wtensor_t *w = plan_add(pl, c->table, 2, (uint64_t)c->buckets + 1, c->dim, "emb.%s", c->name);
        if (!w)
            return CTR_ENOMEM;
        w->cat_index = j;
        w->dim = c->dim;
        w->dtype = c->dtype;
        w->qdata = c->dtype != CTR_TABLE_F32 ? c->qrows : NULL;
    }
    return 0;
}

static int pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
    const char *p = buf;
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* The writer's chunk buffers, grown on demand and freed at the end. */
typedef struct {
    float *f;          /* fp32 rows: filled, packed or about to be encoded */
    size_t f_cap;      /* floats */
    uint8_t *q;        /* encoded rows of a quantized table */
    size_t q_cap;      /* bytes */
} wbufs_t;

static void *grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (*cap < need) {
        free(*p);
        *p = malloc(need * size);
        *cap = *p ? need : 0;
    }
    return *p;
}

/* Hashes and writes n bytes of a tensor at byte `at` of it. */
static int put_bytes(int fd, uint64_t base, const wtensor_t *t, EVP_MD_CTX *ctx, const void *p, size_t n,
                     uint64_t at, const char *tmp, char *err, size_t errlen)
{
    if (!EVP_DigestUpdate(ctx, p, n))
        return ctr_error(err, errlen, CTR_ENOMEM, "SHA-256 update failed");
    if (pwrite_all(fd, p, n, base + t->offset + at))
        return ctr_error(err, errlen, CTR_EIO, "write %s: %s", tmp, strerror(errno));
    return 0;
}

/* A quantized table given as stored rows: copied in whole-row chunks,
 * each row checked as the reader will check it. */
static int put_stored_rows(int fd, uint64_t base, const wtensor_t *t, EVP_MD_CTX *ctx, const char *tmp,
                           char *err, size_t errlen)
{
    const size_t row_bytes = ctr_table_row_bytes(t->dtype, t->dim);
    const uint64_t rows = t->shape[0], step = CHUNK_BYTES / row_bytes ? CHUNK_BYTES / row_bytes : 1;
    for (uint64_t r = 0; r < rows; r += step) {
        const size_t n = (size_t)(rows - r < step ? rows - r : step);
        const uint8_t *src = t->qdata + r * row_bytes;
        char why[192];
        int rc;
        if (ctr__quant_check_rows(t->dtype, src, n, t->dim, r, why, sizeof why))
            return ctr_error(err, errlen, CTR_EINVAL, "tensor \"%s\" (%s table): %s", t->name,
                             ctr_table_dtype_name(t->dtype), why);
        if ((rc = put_bytes(fd, base, t, ctx, src, n * row_bytes, r * row_bytes, tmp, err, errlen)))
            return rc;
    }
    return 0;
}

/* Streams one tensor to fd at base + t->offset, hashing it; fills t->sha.
 * Floats come from memory (a padded weight's rows packed first) or the
 * fill callback, a quantized table's encoded as they come. */
static int write_tensor(int fd, uint64_t base, wtensor_t *t, ctr_table_fill_fn fill,
                        void *fill_ctx, wbufs_t *bufs, const char *tmp,
                        char *err, size_t errlen)
{
    unsigned char md[CTR_SHA256_LEN];
    int rc;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory (SHA-256 context)");
        goto out;
    }
    if (t->qdata) {
        if ((rc = put_stored_rows(fd, base, t, ctx, tmp, err, errlen)))
            goto out;
        goto hashed;
    }
    /* Whole rows per chunk so the fill callback sees row ranges, so a
     * padded weight's rows can be packed into the buffer, and so a
     * quantized table's rows are encoded whole. */
    const bool quantized = t->dtype != CTR_TABLE_F32;
    const bool direct = t->data && !t->ld;      /* floats read in place */
    uint64_t row_floats = t->data && !t->ld && !quantized ? 1 : t->data && t->ld ? t->shape[1] : t->dim;
    const size_t row_bytes = ctr_table_row_bytes(t->dtype, row_floats);
    uint64_t total = t->shape[0] * (t->rank == 2 ? t->shape[1] : 1);
    uint64_t step = CHUNK_BYTES / sizeof(float) / row_floats;
    if (!step)
        step = 1;
    step *= row_floats;
    for (uint64_t done = 0; done < total; done += step) {
        uint64_t n = total - done < step ? total - done : step;
        const uint64_t row0 = done / row_floats, n_rows = n / row_floats;
        const float *src;
        if (direct) {
            src = t->data + done;
        } else {
            if (!grow((void **)&bufs->f, &bufs->f_cap, n, sizeof(float))) {
                rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory (%" PRIu64 "-byte fill buffer)",
                               n * (uint64_t)sizeof(float));
                goto out;
            }
            if (t->data) { /* packs rows row0 .. of a padded weight */
                for (uint64_t r = 0; r < n_rows; r++)
                    memcpy(bufs->f + r * row_floats, t->data + (row0 + r) * t->ld, row_floats * sizeof(float));
                rc = 0;
            } else {
                rc = fill(fill_ctx, t->cat_index, row0, n_rows, bufs->f);
            }
            if (rc) {
                rc = ctr_error(err, errlen, rc < 0 ? rc : CTR_EIO,
                               "tensor \"%s\": fill callback failed at row %" PRIu64 " (%s)", t->name,
                               row0, ctr_strerror(rc));
                goto out;
            }
            src = bufs->f;
        }
        size_t bad = ctr__first_nonfinite(src, n);
        if (bad < n) {
            rc = ctr_error(err, errlen, CTR_ERANGE, "tensor \"%s\": element %" PRIu64 " is %g (values must be finite)",
                           t->name, done + bad, (double)src[bad]);
            goto out;
        }
        if (!quantized) {
            rc = put_bytes(fd, base, t, ctx, src, n * sizeof(float), done * sizeof(float), tmp, err, errlen);
        } else {
            char why[192];
            if (!grow((void **)&bufs->q, &bufs->q_cap, n_rows * row_bytes, 1)) {
                rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory (%" PRIu64 "-byte encode buffer)",
                               n_rows * row_bytes);
                goto out;
            }
            if ((rc = ctr__quant_encode_rows(t->dtype, src, n_rows, t->dim, row0, bufs->q, why, sizeof why))) {
                rc = ctr_error(err, errlen, rc, "tensor \"%s\" as %s: %s", t->name, ctr_table_dtype_name(t->dtype),
                               why);
                goto out;
            }
            rc = put_bytes(fd, base, t, ctx, bufs->q, n_rows * row_bytes, row0 * row_bytes, tmp, err, errlen);
        }
        if (rc)
            goto out;
    }
hashed:
    if (!EVP_DigestFinal_ex(ctx, md, NULL)) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "SHA-256 final failed");
        goto out;
    }
    ctr_hex_encode(md, CTR_SHA256_LEN, t->sha);
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* After rename, the directory entry itself must reach the disk. */
static void fsync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else if ((size_t)(slash - path) < sizeof(dir))
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    else
        return;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
}

int ctr_model_write(const char *path, const ctr_model_def_t *def,
                    ctr_table_fill_fn fill, void *fill_ctx,
                    char *err, size_t errlen)
{
    if (!path || !def)
        return ctr_error(err, errlen, CTR_EINVAL, "ctr_model_write: NULL path or def");
    int rc = validate_def(def, fill, err, errlen);
    if (rc)
        return rc;

    unsigned version = ctr_model_def_version(def);
    plan_t plan = {0};
    wtensor_t *t = NULL;
    size_t nt = 0;
    json_t *prov = NULL;
    char *header = NULL, *tmp = NULL;
    wbufs_t bufs = {0};
    size_t header_len = 0;
    int fd = -1;
    bool created = false;
    if (plan_tensors(def, version, &plan) || !(tmp = malloc(strlen(path) + 5))) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
        goto fail;
    }
    t = plan.t;
    nt = plan.n;
    sprintf(tmp, "%s.tmp", path);

    if (def->provenance_json) {
        json_error_t je;
        prov = json_loads(def->provenance_json, JSON_REJECT_DUPLICATES, &je);
        if (!prov) {
            rc = ctr_error(err, errlen, CTR_EINVAL, "provenance_json: invalid JSON at line %d, column %d: %s",
                           je.line, je.column, je.text);
            goto fail;
        }
        if (!json_is_object(prov)) {
            rc = ctr_error(err, errlen, CTR_EINVAL, "provenance_json: expected a JSON object");
            goto fail;
        }
    } else if (!(prov = json_object())) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
        goto fail;
    }

    /* Layout: offsets depend only on the shapes. */
    uint64_t end = 0;
    for (size_t i = 0; i < nt; i++) {
        wtensor_t *w = &t[i];
        if (!ctr__mul_u64(w->shape[0], w->rank == 2 ? ctr_table_row_bytes(w->dtype, w->shape[1]) : sizeof(float),
                          &w->nbytes) || !ctr__align_up(end, &w->offset) ||
            !ctr__add_u64(w->offset, w->nbytes, &end) || end > INT64_MAX) {
            rc = ctr_error(err, errlen, CTR_ERANGE, "tensor \"%s\": model too large", w->name);
            goto fail;
        }
        memset(w->sha, '0', SHA_HEX);
    }

    size_t final_len;
    if ((rc = build_header(def, version, t, nt, end, prov, &header, &header_len))) {
        rc = ctr_error(err, errlen, rc, "building the header JSON: out of memory");
        goto fail;
    }
    if (header_len > HEADER_MAX) {
        rc = ctr_error(err, errlen, CTR_ETOOBIG, "header JSON is %zu bytes, over the %u-byte limit",
                       header_len, HEADER_MAX);
        goto fail;
    }
    uint64_t data_offset, file_size;
    ctr__align_up(PREAMBLE_BYTES + (uint64_t)header_len, &data_offset);
    if (!ctr__add_u64(data_offset, end, &file_size) || file_size > INT64_MAX) {
        rc = ctr_error(err, errlen, CTR_ERANGE, "model too large");
        goto fail;
    }

    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = ctr_error(err, errlen, CTR_EIO, "open %s: %s", tmp, strerror(errno));
        goto fail;
    }
    created = true;
    /* Sets the exact size up front: padding is the file's implicit zeros. */
    if (ftruncate(fd, (off_t)file_size)) {
        rc = ctr_error(err, errlen, CTR_EIO, "ftruncate %s to %" PRIu64 " bytes: %s", tmp, file_size,
                       strerror(errno));
        goto fail;
    }
    for (size_t i = 0; i < nt; i++)
        if ((rc = write_tensor(fd, data_offset, &t[i], fill, fill_ctx, &bufs, tmp, err, errlen)))
            goto fail;

    free(header);
    header = NULL;
    if ((rc = build_header(def, version, t, nt, end, prov, &header, &final_len))) {
        rc = ctr_error(err, errlen, rc, "building the header JSON: out of memory");
        goto fail;
    }
    CTR_ASSERT(final_len == header_len); /* checksums are fixed-width hex */

    preamble_t pre;
    memcpy(pre.magic, MAGIC, 8);
    pre.version = version;
    pre.flags = 0;
    pre.header_len = header_len;
    pre.data_offset = data_offset;
    if (pwrite_all(fd, &pre, sizeof(pre), 0) || pwrite_all(fd, header, header_len, PREAMBLE_BYTES)) {
        rc = ctr_error(err, errlen, CTR_EIO, "write %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (fsync(fd)) {
        rc = ctr_error(err, errlen, CTR_EIO, "fsync %s: %s", tmp, strerror(errno));
        goto fail;
    }
    int cr = close(fd);
    fd = -1;
    if (cr) {
        rc = ctr_error(err, errlen, CTR_EIO, "close %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path)) {
        rc = ctr_error(err, errlen, CTR_EIO, "rename %s to %s: %s", tmp, path, strerror(errno));
        goto fail;
    }
    fsync_parent_dir(path);
    rc = 0;
    goto done;
fail:
    if (fd >= 0)
        close(fd);
    if (created)
        unlink(tmp);
done:
    free(bufs.f);
    free(bufs.q);
    free(header);
    free(tmp);
    free(plan.t);
    json_decref(prov);
    return rc;
}
