/* model_header.c - parses and checks a .ctrm header (the JSON text after
 * the preamble) into the reader's model: schema, graph, MLP, tensor list
 * and provenance (ctr__model_parse_header in model_int.h; the layout is at
 * the top of model_read.c, the long form in docs/MODEL_FORMAT.md).
 *
 * Version 1 and version 2 headers share this code: version 2 adds "arch",
 * the categorical keys "mapping" and "bag", table sharing, and the
 * "bottom" and "interaction" sections (model_header_graph.c); version 1
 * refuses every one of them as an unknown key.
 *
 * Every key is checked for type and range, unknown keys are refused,
 * every tensor extent is checked against the file with overflow-checked
 * arithmetic. Then, in this order: the graph is checked
 * (ctr__model_check, the writer's rules: a graph that does not chain is
 * reported as such, not as a tensor of the wrong shape), every tensor
 * reference is resolved (a tensor used twice is refused; only a
 * categorical table may be named by several features, in version 2,
 * which is how they share it), every referenced tensor's shape is checked
 * against its user, and a tensor nobody uses is refused. A hostile header gets an error message naming
 * the place, never an out-of-bounds read: nothing reads tensor data here. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/model.h"
#include "ctr/sha256.h"
#include "model_int.h"
#include "model_parse_int.h"

static int parse_seed(ctr__parse_t *p, json_t *obj, const char *where, uint64_t *out)
{
    json_t *v;
    char g[64];
    int rc = ctr__hp_key(p, obj, where, "seed", &v);
    if (rc)
        return rc;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        uint64_t x = 0;
        bool ok = len > 0 && len <= 20 && !(len > 1 && s[0] == '0');
        for (size_t i = 0; ok && i < len; i++)
            ok = s[i] >= '0' && s[i] <= '9' && ctr__mul_u64(x, 10, &x) && ctr__add_u64(x, (uint64_t)(s[i] - '0'), &x);
        if (ok) {
            *out = x;
            return 0;
        }
    }
    return ctr__hp_bad(p, CTR_EFORMAT, where, "seed", "expected a 64-bit unsigned integer in a decimal string (got %s)",
               ctr__hp_show(v, g, sizeof(g)));
}

static int parse_dense(ctr__parse_t *p, json_t *arr)
{
    static const char *const keys[] = {"name", "transform", "mean", "std", NULL};
    struct ctr_model *m = p->m;
    for (size_t i = 0; i < m->def.n_dense; i++) {
        json_t *o = json_array_get(arr, i);
        ctr_dense_def_t *d = &m->dense[i];
        char where[64], g[64];
        const char *s;
        size_t len;
        int rc;
        snprintf(where, sizeof(where), "schema.dense[%zu]", i);
        if (!json_is_object(o))
            return ctr__hp_bad(p, CTR_EFORMAT, where, NULL, "expected an object (got %s)",
                               ctr__hp_show(o, g, sizeof(g)));
        if ((rc = ctr__hp_keys(p, o, where, keys)) || (rc = ctr__hp_name(p, o, where, NAME_MAX_BYTES, &d->name)) ||
            (rc = ctr__hp_string(p, o, where, "transform", &s, &len)))
            return rc;
        if (!strcmp(s, "identity"))
            d->transform = CTR_TRANSFORM_IDENTITY;
        else if (!strcmp(s, "log1p"))
            d->transform = CTR_TRANSFORM_LOG1P;
        else if (!strcmp(s, "standardize"))
            d->transform = CTR_TRANSFORM_STANDARDIZE;
        else
            return ctr__hp_bad(p, CTR_EUNSUPPORTED, where, "transform",
                       "unknown transform \"%s\" (this build knows identity, log1p, standardize)",
                       ctr__printable(s, len, g, sizeof(g)));
        if (d->transform == CTR_TRANSFORM_STANDARDIZE) {
            if ((rc = ctr__hp_finite(p, o, where, "mean", &d->mean)) ||
                (rc = ctr__hp_finite(p, o, where, "std", &d->std)))
                return rc;
            if (!(d->std > 0))
                return ctr__hp_bad(p, CTR_EFORMAT, where, "std", "must be > 0 (got %g)", d->std);
        } else {
            if (json_object_get(o, "mean") || json_object_get(o, "std"))
                return ctr__hp_bad(p, CTR_EFORMAT, where, NULL, "mean and std belong to transform standardize only");
            d->mean = 0;
            d->std = 1;
        }
    }
    return 0;
}

/* A tensor's dtype: the file's names only ("f32", "f16", "int8_rowwise";
 * not the command line's aliases), the quantized ones in version 2 only
 * (version 1 is f32 throughout, so a version-1 reader never meets them). */
static int parse_dtype(ctr__parse_t *p, const char *where, const char *s, size_t len, ctr__rtensor_t *t)
{
    char g[64];
    int d = ctr_table_dtype_parse(s);
    if (d < 0 || strlen(s) != len || strcmp(ctr_table_dtype_name((ctr_table_dtype_t)d), s))
        return ctr__hp_bad(p, CTR_EUNSUPPORTED, where, "dtype",
                           "dtype \"%s\" is not supported (this build reads f32, f16, int8_rowwise)",
                           ctr__printable(s, len, g, sizeof(g)));
    if (d != CTR_TABLE_F32 && p->version < 2)
        return ctr__hp_bad(p, CTR_EFORMAT, where, "dtype", "dtype %s needs format version 2 (this file is version %u)",
                           s, (unsigned)p->version);
    t->dtype = (ctr_table_dtype_t)d;
    return 0;
}

static int parse_tensors(ctr__parse_t *p, json_t *arr, uint64_t data_bytes, ctr__name_index_t *tix)
{
    static const char *const keys[] = {"name", "dtype", "shape", "offset", "nbytes", "sha256", NULL};
    struct ctr_model *m = p->m;
    uint64_t prev_end = 0;
    for (size_t i = 0; i < m->n_tensors; i++) {
        json_t *o = json_array_get(arr, i), *shape;
        ctr__rtensor_t *t = &m->tensors[i];
        char where[64], g[64];
        const char *s;
        size_t len;
        int rc;
        snprintf(where, sizeof(where), "tensors[%zu]", i);
        if (!json_is_object(o))
            return ctr__hp_bad(p, CTR_EFORMAT, where, NULL, "expected an object (got %s)",
                               ctr__hp_show(o, g, sizeof(g)));
        if ((rc = ctr__hp_keys(p, o, where, keys)) || (rc = ctr__hp_name(p, o, where, TENSOR_NAME_MAX_BYTES, &t->name)))
            return rc;
        if (!ctr__name_index_add(tix, t->name, strlen(t->name), (uint32_t)i))
            return ctr__hp_bad(p, CTR_EFORMAT, where, "name", "duplicate tensor name \"%s\"", t->name);
        snprintf(where, sizeof(where), "tensor \"%s\"", t->name);
        if ((rc = ctr__hp_string(p, o, where, "dtype", &s, &len)) || (rc = parse_dtype(p, where, s, len, t)))
            return rc;
        if ((rc = ctr__hp_array(p, o, where, "shape", &shape)))
            return rc;
        t->rank = (int)json_array_size(shape);
        if (t->rank < 1 || t->rank > 2)
            return ctr__hp_bad(p, CTR_EFORMAT, where, "shape", "expected 1 or 2 dimensions (got %s)",
                       ctr__hp_show(shape, g, sizeof(g)));
        uint64_t elems = 1;
        for (int k = 0; k < t->rank; k++) {
            json_t *d = json_array_get(shape, (size_t)k);
            if (!json_is_integer(d) || json_integer_value(d) <= 0)
                return ctr__hp_bad(p, CTR_EFORMAT, where, "shape", "expected positive integers (got %s)",
                           ctr__hp_show(shape, g, sizeof(g)));
            t->shape[k] = (uint64_t)json_integer_value(d);
            if (!ctr__mul_u64(elems, t->shape[k], &elems))
                return ctr__hp_bad(p, CTR_EFORMAT, where, "shape", "element count overflows (%s)",
                                   ctr__hp_show(shape, g, sizeof(g)));
        }
        if ((rc = ctr__hp_uint(p, o, where, "offset", 0, INT64_MAX, &t->offset)) ||
            (rc = ctr__hp_uint(p, o, where, "nbytes", 0, INT64_MAX, &t->nbytes)) ||
            (rc = ctr__hp_string(p, o, where, "sha256", &s, &len)))
            return rc;
        if (len != SHA_HEX || ctr_hex_decode(s, CTR_SHA256_LEN, t->sha, 1))
            return ctr__hp_bad(p, CTR_EFORMAT, where, "sha256", "expected 64 lowercase hex digits (got \"%s\")",
                       ctr__printable(s, len, g, sizeof(g)));
        /* Rows of a table: shape[0] rows of ctr_table_row_bytes (for f32
         * and f16 that is elements x 4 or 2; int8_rowwise rows carry 8
         * more bytes, so only a [rows, dim] table can be int8_rowwise). */
        const char *dt = ctr_table_dtype_name(t->dtype);
        if (t->dtype == CTR_TABLE_INT8_ROWWISE && t->rank != 2)
            return ctr__hp_bad(p, CTR_EFORMAT, where, "shape", "dtype %s needs [rows, dim] (got %s)", dt,
                               ctr__hp_show(shape, g, sizeof(g)));
        uint64_t want;
        if (!ctr__mul_u64(t->shape[0], ctr_table_row_bytes(t->dtype, t->rank == 2 ? t->shape[1] : 1), &want))
            return ctr__hp_bad(p, CTR_EFORMAT, where, "nbytes", "shape %s of %s needs more than 2^64 bytes",
                       ctr__hp_show(shape, g, sizeof(g)), dt);
        if (t->nbytes != want)
            return ctr__hp_bad(p, CTR_EFORMAT, where, "nbytes", "is %" PRIu64 " but shape %s of %s needs %" PRIu64,
                       t->nbytes, ctr__hp_show(shape, g, sizeof(g)), dt, want);
        if (t->offset % ALIGN)
            return ctr__hp_bad(p, CTR_EFORMAT, where, "offset", "%" PRIu64 " is not a multiple of %u", t->offset,
                               ALIGN);
        uint64_t end, abs_end;
        if (!ctr__add_u64(t->offset, t->nbytes, &end) || end > data_bytes)
            return ctr_error(p->err, p->errlen, CTR_EFORMAT,
                             "tensor \"%s\": offset %" PRIu64 " + %" PRIu64 " bytes is past data_bytes %" PRIu64,
                             t->name, t->offset, t->nbytes, data_bytes);
        if (!ctr__add_u64(m->data_offset, end, &abs_end) || abs_end > m->file_size)
            return ctr_error(p->err, p->errlen, CTR_EFORMAT,
                             "tensor \"%s\": data_offset %" PRIu64 " + offset %" PRIu64 " + %" PRIu64
                             " bytes runs past end of file (size %" PRIu64 "): truncated?",
                             t->name, m->data_offset, t->offset, t->nbytes, m->file_size);
        if (i && t->offset < prev_end)
            return ctr_error(p->err, p->errlen, CTR_EFORMAT,
                             "tensor \"%s\": offset %" PRIu64 " overlaps tensor \"%s\", which ends at %" PRIu64
                             " (tensors must be in ascending offset order without overlap)",
                             t->name, t->offset, m->tensors[i - 1].name, prev_end);
        prev_end = end;
    }
    if (prev_end != data_bytes)
        return ctr_error(p->err, p->errlen, CTR_EFORMAT,
                         "header: data_bytes is %" PRIu64 " but the last tensor ends at %" PRIu64, data_bytes,
                         prev_end);
    return 0;
}

static int parse_cat(ctr__parse_t *p, json_t *arr, ctr__name_index_t *tables)
{
    static const char *const keys1[] = {"name", "table", "buckets", "dim", "seed", "hash", NULL};
    static const char *const keys2[] = {"name", "table", "buckets", "dim", "mapping", "seed", "hash", "bag", NULL};
    static const char *const bkeys[] = {"max", "pool", NULL};
    static const char *const mappings[] = {"hash", "mod"}, *const pools[] = {"sum", "mean"};
    struct ctr_model *m = p->m;
    bool v2 = p->version >= 2;
    for (size_t j = 0; j < m->def.n_cat; j++) {
        json_t *o = json_array_get(arr, j), *bag;
        ctr_cat_def_t *c = &m->cat[j];
        char where[64], g[64], what[96];
        const char *s, *table;
        size_t len, table_len;
        uint64_t v;
        int rc, e;
        snprintf(where, sizeof(where), "schema.categorical[%zu]", j);
        if (!json_is_object(o))
            return ctr__hp_bad(p, CTR_EFORMAT, where, NULL, "expected an object (got %s)",
                               ctr__hp_show(o, g, sizeof(g)));
        if ((rc = ctr__hp_keys(p, o, where, v2 ? keys2 : keys1)) ||
            (rc = ctr__hp_name(p, o, where, NAME_MAX_BYTES, &c->name)) ||
            (rc = ctr__hp_string(p, o, where, "table", &table, &table_len)))
            return rc;
        if ((rc = ctr__hp_uint(p, o, where, "buckets", 1, UINT32_MAX, &v)))
            return rc;
        c->buckets = (uint32_t)v;
        if ((rc = ctr__hp_uint(p, o, where, "dim", 1, UINT32_MAX, &v)))
            return rc;
        c->dim = (uint32_t)v;
        if (v2) {
            if ((rc = ctr__hp_enum(p, o, where, "mapping", mappings, 2, &e)))
                return rc;
            c->mapping = (ctr_mapping_t)e;
        }
        if (c->mapping == CTR_MAP_HASH) {
            if ((rc = parse_seed(p, o, where, &c->seed)) || (rc = ctr__hp_string(p, o, where, "hash", &s, &len)))
                return rc;
            if (strcmp(s, "xxh3_64") || len != 7)
                return ctr__hp_bad(p, CTR_EUNSUPPORTED, where, "hash",
                                   "hash \"%s\" is not supported (this build hashes with xxh3_64)",
                                   ctr__printable(s, len, g, sizeof(g)));
        } else {
            const char *k = json_object_get(o, "seed") ? "seed" : json_object_get(o, "hash") ? "hash" : NULL;
            if (k)
                return ctr__hp_bad(p, CTR_EFORMAT, where, k, "belongs to mapping hash only (this feature's is mod)");
        }
        if ((bag = json_object_get(o, "bag"))) {
            snprintf(where, sizeof(where), "schema.categorical[%zu].bag", j);
            if (!json_is_object(bag))
                return ctr__hp_bad(p, CTR_EFORMAT, where, NULL, "expected an object (got %s)",
                                   ctr__hp_show(bag, g, sizeof(g)));
            if ((rc = ctr__hp_keys(p, bag, where, bkeys)) ||
                (rc = ctr__hp_uint(p, bag, where, "max", 1, CTR_MAX_BAG, &v)) ||
                (rc = ctr__hp_enum(p, bag, where, "pool", pools, 2, &e)))
                return rc;
            c->bag_max = (uint32_t)v;
            c->pool = (ctr_pool_t)e;
            snprintf(where, sizeof(where), "schema.categorical[%zu]", j);
        }
        /* Version 2: the first feature naming a table owns it; a later
         * one naming it shares it (ctr__model_check compares the two). */
        long owner = v2 ? ctr__name_index_find(tables, table, table_len) : -1;
        if (owner >= 0) {
            c->shares = (uint32_t)owner + 1;
            continue;
        }
        if (v2)
            (void)ctr__name_index_add(tables, table, table_len, (uint32_t)j); /* not there: added */
        snprintf(what, sizeof(what), "categorical \"%s\"", c->name);
        if ((rc = ctr__hp_ref(p, o, where, "table", what, 2, (uint64_t)c->buckets + 1, c->dim, true, &c->table)))
            return rc;
        p->refs[p->n_refs - 1].cat = c;
    }
    return 0;
}

static int parse_mlp(ctr__parse_t *p, json_t *mlp)
{
    static const char *const keys[] = {"activation", "beta", "layers", NULL};
    struct ctr_model *m = p->m;
    const char *s;
    size_t len;
    char g[64];
    json_t *layers;
    ctr_layer_def_t *L;
    int rc;
    if ((rc = ctr__hp_keys(p, mlp, "mlp", keys)) || (rc = ctr__hp_string(p, mlp, "mlp", "activation", &s, &len)))
        return rc;
    if (!strcmp(s, "smelu"))
        m->def.activation = CTR_ACT_SMELU;
    else if (!strcmp(s, "relu"))
        m->def.activation = CTR_ACT_RELU;
    else
        return ctr__hp_bad(p, CTR_EUNSUPPORTED, "mlp", "activation",
                           "unknown activation \"%s\" (this build knows smelu, relu)",
                           ctr__printable(s, len, g, sizeof(g)));
    if ((rc = ctr__hp_positive_float(p, mlp, "mlp", "beta", &m->def.beta)) ||
        (rc = ctr__hp_array(p, mlp, "mlp", "layers", &layers)))
        return rc;
    if (!json_array_size(layers))
        return ctr__hp_bad(p, CTR_EFORMAT, "mlp", "layers", "expected at least one layer");
    if ((rc = ctr__hp_layers(p, layers, "mlp.layers", &L, &m->def.n_layers)))
        return rc;
    m->def.layers = L;
    return 0;
}

/* Every reference to its tensor: the pointer into the mapping (replacing
 * ctr__hp_ref's placeholder), each tensor used once. */
static int resolve_refs(ctr__parse_t *p, const ctr__name_index_t *tix)
{
    struct ctr_model *m = p->m;
    char q[256];
    for (size_t r = 0; r < p->n_refs; r++) {
        ctr__tref_t *ref = &p->refs[r];
        const char *s = json_string_value(ref->name);
        size_t len = json_string_length(ref->name);
        long i = ctr__name_index_find(tix, s, len);
        if (i < 0)
            return ctr__hp_bad(p, CTR_EFORMAT, ref->where, ref->key, "tensor \"%s\" is not in tensors",
                               ctr__printable(s, len, q, sizeof(q)));
        ctr__rtensor_t *t = &m->tensors[i];
        if (t->refs++)
            return ctr__hp_bad(p, CTR_EFORMAT, ref->where, ref->key, "tensor \"%s\" is used twice", t->name);
        ref->tensor = (size_t)i;
        t->is_table = ref->is_table;
        const unsigned char *data = m->map + m->data_offset + t->offset;
        if (t->dtype == CTR_TABLE_F32) {
            *ref->out = (const float *)data;
            continue;
        }
        if (!ref->cat)
            return ctr__hp_bad(p, CTR_EFORMAT, ref->where, ref->key,
                               "tensor \"%s\" is %s, but only embedding tables may be quantized (weights and "
                               "biases are f32)", t->name, ctr_table_dtype_name(t->dtype));
        *ref->out = NULL;
        ref->cat->dtype = t->dtype;
        ref->cat->qrows = data;
    }
    for (size_t j = 0; j < m->def.n_cat; j++)
        if (m->cat[j].shares) {
            const ctr_cat_def_t *owner = &m->cat[m->cat[j].shares - 1];
            m->cat[j].table = owner->table;
            m->cat[j].dtype = owner->dtype;
            m->cat[j].qrows = owner->qrows;
        }
    return 0;
}

static void shape_text(char *out, size_t outlen, int rank, uint64_t d0, uint64_t d1)
{
    if (rank == 2)
        snprintf(out, outlen, "[%" PRIu64 ",%" PRIu64 "]", d0, d1);
    else
        snprintf(out, outlen, "[%" PRIu64 "]", d0);
}

static int check_shapes(ctr__parse_t *p)
{
    for (size_t r = 0; r < p->n_refs; r++) {
        const ctr__tref_t *ref = &p->refs[r];
        const ctr__rtensor_t *t = &p->m->tensors[ref->tensor];
        if (t->rank == ref->rank && t->shape[0] == ref->d0 && (ref->rank == 1 || t->shape[1] == ref->d1))
            continue;
        char want[64], got[64];
        shape_text(want, sizeof(want), ref->rank, ref->d0, ref->d1);
        shape_text(got, sizeof(got), t->rank, t->shape[0], t->shape[1]);
        return ctr_error(p->err, p->errlen, CTR_EFORMAT, "tensor \"%s\": shape %s does not match %s (expected %s)",
                         t->name, got, ref->what, want);
    }
    return 0;
}

static int parse_header(ctr__parse_t *p, uint32_t version)
{
    static const char *const keys1[] = {"format", "version", "name", "schema", "mlp",
                                        "tensors", "data_bytes", "provenance", NULL};
    static const char *const keys2[] = {"format", "version", "name", "arch", "schema", "bottom", "interaction",
                                        "mlp", "tensors", "data_bytes", "provenance", NULL};
    static const char *const skeys[] = {"dense", "categorical", NULL};
    static const char *const archs[] = {"mlp", "dot", "dcnv2", "wukong"};
    struct ctr_model *m = p->m;
    json_error_t je;
    json_t *root = NULL, *schema, *dense, *cat, *mlp, *tensors, *prov;
    ctr__name_index_t tix = {0}, tables = {0};
    const char *s;
    size_t len;
    uint64_t v, data_bytes;
    char g[64];
    int rc, e;

    root = json_loadb(m->header, m->header_len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        rc = ctr_error(p->err, p->errlen, CTR_EFORMAT,
                       "header: invalid JSON at line %d, column %d (file offset %" PRIu64 "): %s", je.line,
                       je.column, (uint64_t)PREAMBLE_BYTES + (uint64_t)(je.position > 0 ? je.position : 0),
                       je.text);
        goto fail;
    }
    if (!json_is_object(root)) {
        rc = ctr__hp_bad(p, CTR_EFORMAT, "top level", NULL, "expected an object (got %s)",
                         ctr__hp_show(root, g, sizeof(g)));
        goto fail;
    }
    if ((rc = ctr__hp_keys(p, root, "top level", version >= 2 ? keys2 : keys1)) ||
        (rc = ctr__hp_string(p, root, "", "format", &s, &len)))
        goto fail;
    if (len != 4 || strcmp(s, "ctrm")) {
        rc = ctr__hp_bad(p, CTR_EFORMAT, "", "format", "expected \"ctrm\" (got \"%s\")",
                         ctr__printable(s, len, g, sizeof(g)));
        goto fail;
    }
    if ((rc = ctr__hp_uint(p, root, "", "version", 0, INT64_MAX, &v)))
        goto fail;
    if (v != version) {
        rc = ctr__hp_bad(p, CTR_EFORMAT, "", "version", "%" PRIu64 " does not match the preamble's version %" PRIu32,
                         v, version);
        goto fail;
    }
    if ((rc = ctr__hp_string(p, root, "", "name", &s, &len)))
        goto fail;
    if (!ctr__model_name_valid(s, len)) {
        rc = ctr__hp_bad(p, CTR_EFORMAT, "", "name", "expected 1..%d bytes without control characters (got \"%s\")",
                         MODEL_NAME_MAX_BYTES, ctr__printable(s, len, g, sizeof(g)));
        goto fail;
    }
    m->def.name = ctr__hp_strdup(m, s, len);
    if (version >= 2) {
        if ((rc = ctr__hp_enum(p, root, "", "arch", archs, 4, &e)))
            goto fail;
        m->def.arch = (ctr_arch_t)e;
    }

    if ((rc = ctr__hp_object(p, root, "", "schema", &schema)) || (rc = ctr__hp_keys(p, schema, "schema", skeys)) ||
        (rc = ctr__hp_array(p, schema, "schema", "dense", &dense)) ||
        (rc = ctr__hp_array(p, schema, "schema", "categorical", &cat)))
        goto fail;
    m->def.n_dense = json_array_size(dense);
    m->def.n_cat = json_array_size(cat);
    m->dense = calloc(m->def.n_dense + 1, sizeof(*m->dense));
    m->cat = calloc(m->def.n_cat + 1, sizeof(*m->cat));
    if (!m->dense || !m->cat || ctr__name_index_init(&m->features, m->def.n_dense + m->def.n_cat) ||
        ctr__name_index_init(&tables, m->def.n_cat)) {
        rc = ctr__hp_nomem(p);
        goto fail;
    }
    m->def.dense = m->dense;
    m->def.cat = m->cat;
    if ((rc = parse_dense(p, dense)) || (rc = parse_cat(p, cat, &tables)))
        goto fail;
    for (size_t i = 0; i < m->def.n_dense + m->def.n_cat; i++) {
        bool is_dense = i < m->def.n_dense;
        size_t k = is_dense ? i : i - m->def.n_dense;
        const char *name = is_dense ? m->dense[k].name : m->cat[k].name;
        if (!ctr__name_index_add(&m->features, name, strlen(name), (uint32_t)i)) {
            char where[64];
            snprintf(where, sizeof(where), "schema.%s[%zu]", is_dense ? "dense" : "categorical", k);
            rc = ctr__hp_bad(p, CTR_EFORMAT, where, "name", "duplicate feature name \"%s\"", name);
            goto fail;
        }
    }
    if (m->def.n_dense + m->def.n_cat == 0) {
        rc = ctr__hp_bad(p, CTR_EFORMAT, "schema", NULL, "no features");
        goto fail;
    }
    if (version >= 2 && (rc = ctr__hp_graph(p, root)))
        goto fail;
    if ((rc = ctr__hp_object(p, root, "", "mlp", &mlp)) || (rc = parse_mlp(p, mlp)) ||
        (rc = ctr__model_check(&m->def, CTR_EFORMAT, "header: ", p->err, p->errlen)))
        goto fail;

    if ((rc = ctr__hp_uint(p, root, "", "data_bytes", 0, INT64_MAX, &data_bytes)) ||
        (rc = ctr__hp_array(p, root, "", "tensors", &tensors)))
        goto fail;
    m->n_tensors = json_array_size(tensors);
    if (!(m->tensors = calloc(m->n_tensors + 1, sizeof(*m->tensors))) || ctr__name_index_init(&tix, m->n_tensors)) {
        rc = ctr__hp_nomem(p);
        goto fail;
    }
    if ((rc = parse_tensors(p, tensors, data_bytes, &tix)) || (rc = resolve_refs(p, &tix)) ||
        (rc = check_shapes(p)))
        goto fail;
    for (size_t i = 0; i < m->n_tensors; i++)
        if (!m->tensors[i].refs) {
            rc = ctr_error(p->err, p->errlen, CTR_EFORMAT, "tensor \"%s\": not used by the schema or the %s",
                           m->tensors[i].name, version >= 2 ? "graph" : "MLP");
            goto fail;
        }
    uint64_t data_end;
    if (!ctr__add_u64(m->data_offset, data_bytes, &data_end) || data_end != m->file_size) {
        rc = ctr_error(p->err, p->errlen, CTR_EFORMAT,
                       "file is %" PRIu64 " bytes but data ends at %" PRIu64 " (data_offset %" PRIu64
                       " + data_bytes %" PRIu64 "): %s",
                       m->file_size, data_end, m->data_offset, data_bytes,
                       data_end < m->file_size ? "trailing bytes" : "truncated");
        goto fail;
    }

    if ((rc = ctr__hp_object(p, root, "", "provenance", &prov)))
        goto fail;
    if (!(m->provenance = json_dumps(prov, DUMP_FLAGS))) {
        rc = ctr__hp_nomem(p);
        goto fail;
    }
    m->def.provenance_json = m->provenance;
    rc = 0;
fail:
    ctr__name_index_free(&tix);
    ctr__name_index_free(&tables);
    json_decref(root);
    return rc;
}

int ctr__model_parse_header(struct ctr_model *m, uint32_t version, char *err, size_t errlen)
{
    ctr__parse_t p = {.m = m, .err = err, .errlen = errlen, .version = version};
    int rc = parse_header(&p, version);
    free(p.refs);
    return rc;
}
