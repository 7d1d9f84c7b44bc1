/* model_header.c - parses and checks a .ctrm header (the JSON text after
 * the preamble) into the reader's model: schema, MLP, tensor list and
 * provenance (ctr__model_parse_header in model_int.h; the layout is at the
 * top of model_read.c).
 *
 * Every key is checked for type and range, unknown keys are refused,
 * every tensor extent is checked against the file with overflow-checked
 * arithmetic, and every tensor is used exactly once with the shape its
 * user expects, before any pointer into the mapping is set: a hostile
 * header gets an error message naming the place, never an out-of-bounds
 * read. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/model.h"
#include "ctr/sha256.h"
#include "model_int.h"

/* Parse state. Messages name the place as a path into the header, e.g.
 * "schema.categorical[3].buckets", built by the caller in `where`. */
typedef struct {
    struct ctr_model *m;
    char *err;
    size_t errlen;
} parse_t;

static const char *arena_dup(struct ctr_model *m, const char *s, size_t len)
{
    CTR_ASSERT(m->strings_used + len + 1 <= m->strings_cap);
    char *p = m->strings + m->strings_used;
    memcpy(p, s, len);
    p[len] = '\0';
    m->strings_used += len + 1;
    return p;
}

/* A short rendering of a JSON value for "got ..." in messages. */
static const char *show(const json_t *v, char *out, size_t outlen)
{
    if (!v)
        return "nothing";
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!s)
        return "?";
    ctr__printable_ex(s, strlen(s), out, outlen, true);
    free(s);
    return out;
}

static int bad(parse_t *p, int code, const char *where, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int bad(parse_t *p, int code, const char *where, const char *key, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t wl = strlen(where);
    const char *sep = !key || !wl ? "" : where[wl - 1] == '"' ? " " : ".";
    return ctr_error(p->err, p->errlen, code, "header: %s%s%s: %s", where, sep, key ? key : "", msg);
}

static int check_keys(parse_t *p, json_t *obj, const char *where, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = !strcmp(key, *a);
        if (!ok) {
            char q[256];
            return bad(p, CTR_EFORMAT, where, NULL, "unknown key \"%s\"", ctr__printable(key, strlen(key), q, sizeof(q)));
        }
    }
    return 0;
}

static int get_key(parse_t *p, json_t *obj, const char *where, const char *key, json_t **out)
{
    *out = json_object_get(obj, key);
    return *out ? 0 : bad(p, CTR_EFORMAT, where, key, "missing");
}

static int get_object(parse_t *p, json_t *obj, const char *where, const char *key, json_t **out)
{
    char g[64];
    int rc = get_key(p, obj, where, key, out);
    if (!rc && !json_is_object(*out))
        rc = bad(p, CTR_EFORMAT, where, key, "expected an object (got %s)", show(*out, g, sizeof(g)));
    return rc;
}

static int get_array(parse_t *p, json_t *obj, const char *where, const char *key, json_t **out)
{
    char g[64];
    int rc = get_key(p, obj, where, key, out);
    if (!rc && !json_is_array(*out))
        rc = bad(p, CTR_EFORMAT, where, key, "expected an array (got %s)", show(*out, g, sizeof(g)));
    return rc;
}

static int get_string(parse_t *p, json_t *obj, const char *where, const char *key,
                      const char **s, size_t *len)
{
    json_t *v;
    char g[64];
    int rc = get_key(p, obj, where, key, &v);
    if (rc)
        return rc;
    if (!json_is_string(v))
        return bad(p, CTR_EFORMAT, where, key, "expected a string (got %s)", show(v, g, sizeof(g)));
    *s = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}

static int get_uint(parse_t *p, json_t *obj, const char *where, const char *key,
                    uint64_t min, uint64_t max, uint64_t *out)
{
    json_t *v;
    char g[64], want[64];
    int rc = get_key(p, obj, where, key, &v);
    if (rc)
        return rc;
    if (json_is_integer(v) && json_integer_value(v) >= 0 && (uint64_t)json_integer_value(v) >= min &&
        (uint64_t)json_integer_value(v) <= max) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    if (max >= INT64_MAX && min == 0)
        snprintf(want, sizeof(want), ">= 0");
    else if (max >= INT64_MAX)
        snprintf(want, sizeof(want), "> %" PRIu64, min - 1);
    else if (min == 1 && max == UINT32_MAX)
        snprintf(want, sizeof(want), "> 0 and < 2^32");
    else
        snprintf(want, sizeof(want), "in %" PRIu64 "..%" PRIu64, min, max);
    return bad(p, CTR_EFORMAT, where, key, "expected an integer %s (got %s)", want, show(v, g, sizeof(g)));
}

static int get_finite(parse_t *p, json_t *obj, const char *where, const char *key, double *out)
{
    json_t *v;
    char g[64];
    int rc = get_key(p, obj, where, key, &v);
    if (rc)
        return rc;
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return bad(p, CTR_EFORMAT, where, key, "expected a finite number (got %s)", show(v, g, sizeof(g)));
    *out = json_number_value(v);
    return 0;
}

/* A feature or tensor name: valid, copied into the model's arena. */
static int get_name(parse_t *p, json_t *obj, const char *where, size_t max, const char **out)
{
    const char *s;
    size_t len;
    char q[256];
    int rc = get_string(p, obj, where, "name", &s, &len);
    if (rc)
        return rc;
    if (!ctr__name_valid(s, len, max))
        return bad(p, CTR_EFORMAT, where, "name",
                   "\"%s\" is not a valid name (1..%zu bytes of printable ASCII, no quotes or backslash)",
                   ctr__printable(s, len, q, sizeof(q)), max);
    *out = arena_dup(p->m, s, len);
    return 0;
}

static int parse_seed(parse_t *p, json_t *obj, const char *where, uint64_t *out)
{
    json_t *v;
    char g[64];
    int rc = get_key(p, obj, where, "seed", &v);
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
    return bad(p, CTR_EFORMAT, where, "seed", "expected a 64-bit unsigned integer in a decimal string (got %s)",
               show(v, g, sizeof(g)));
}

static int parse_dense(parse_t *p, json_t *arr)
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
            return bad(p, CTR_EFORMAT, where, NULL, "expected an object (got %s)", show(o, g, sizeof(g)));
        if ((rc = check_keys(p, o, where, keys)) || (rc = get_name(p, o, where, NAME_MAX_BYTES, &d->name)) ||
            (rc = get_string(p, o, where, "transform", &s, &len)))
            return rc;
        if (!strcmp(s, "identity"))
            d->transform = CTR_TRANSFORM_IDENTITY;
        else if (!strcmp(s, "log1p"))
            d->transform = CTR_TRANSFORM_LOG1P;
        else if (!strcmp(s, "standardize"))
            d->transform = CTR_TRANSFORM_STANDARDIZE;
        else
            return bad(p, CTR_EUNSUPPORTED, where, "transform",
                       "unknown transform \"%s\" (this build knows identity, log1p, standardize)",
                       ctr__printable(s, len, g, sizeof(g)));
        if (d->transform == CTR_TRANSFORM_STANDARDIZE) {
            if ((rc = get_finite(p, o, where, "mean", &d->mean)) || (rc = get_finite(p, o, where, "std", &d->std)))
                return rc;
            if (!(d->std > 0))
                return bad(p, CTR_EFORMAT, where, "std", "must be > 0 (got %g)", d->std);
        } else {
            if (json_object_get(o, "mean") || json_object_get(o, "std"))
                return bad(p, CTR_EFORMAT, where, NULL, "mean and std belong to transform standardize only");
            d->mean = 0;
            d->std = 1;
        }
    }
    return 0;
}

static int parse_cat(parse_t *p, json_t *arr, json_t **table_refs)
{
    static const char *const keys[] = {"name", "table", "buckets", "dim", "seed", "hash", NULL};
    struct ctr_model *m = p->m;
    for (size_t j = 0; j < m->def.n_cat; j++) {
        json_t *o = json_array_get(arr, j);
        ctr_cat_def_t *c = &m->cat[j];
        char where[64], g[64];
        const char *s;
        size_t len;
        uint64_t v;
        int rc;
        snprintf(where, sizeof(where), "schema.categorical[%zu]", j);
        if (!json_is_object(o))
            return bad(p, CTR_EFORMAT, where, NULL, "expected an object (got %s)", show(o, g, sizeof(g)));
        if ((rc = check_keys(p, o, where, keys)) || (rc = get_name(p, o, where, NAME_MAX_BYTES, &c->name)) ||
            (rc = get_string(p, o, where, "table", &s, &len)))
            return rc;
        table_refs[j] = json_object_get(o, "table");
        if ((rc = get_uint(p, o, where, "buckets", 1, UINT32_MAX, &v)))
            return rc;
        c->buckets = (uint32_t)v;
        if ((rc = get_uint(p, o, where, "dim", 1, UINT32_MAX, &v)))
            return rc;
        c->dim = (uint32_t)v;
        if ((rc = parse_seed(p, o, where, &c->seed)) || (rc = get_string(p, o, where, "hash", &s, &len)))
            return rc;
        if (strcmp(s, "xxh3_64") || len != 7)
            return bad(p, CTR_EUNSUPPORTED, where, "hash",
                       "hash \"%s\" is not supported (this build hashes with xxh3_64)",
                       ctr__printable(s, len, g, sizeof(g)));
    }
    return 0;
}

static int parse_mlp(parse_t *p, json_t *mlp, json_t **refs)
{
    static const char *const keys[] = {"activation", "beta", "layers", NULL};
    static const char *const lkeys[] = {"in", "out", "weight", "bias", NULL};
    struct ctr_model *m = p->m;
    const char *s;
    size_t len;
    char g[64];
    double beta;
    json_t *layers;
    int rc;
    if ((rc = check_keys(p, mlp, "mlp", keys)) || (rc = get_string(p, mlp, "mlp", "activation", &s, &len)))
        return rc;
    if (!strcmp(s, "smelu"))
        m->def.activation = CTR_ACT_SMELU;
    else if (!strcmp(s, "relu"))
        m->def.activation = CTR_ACT_RELU;
    else
        return bad(p, CTR_EUNSUPPORTED, "mlp", "activation",
                   "unknown activation \"%s\" (this build knows smelu, relu)", ctr__printable(s, len, g, sizeof(g)));
    if ((rc = get_finite(p, mlp, "mlp", "beta", &beta)))
        return rc;
    if (!(beta > 0) || beta > 3.4028234663852886e38 || !((float)beta > 0))
        return bad(p, CTR_EFORMAT, "mlp", "beta", "expected a number > 0 that fits a float (got %g)", beta);
    m->def.beta = (float)beta;
    if ((rc = get_array(p, mlp, "mlp", "layers", &layers)))
        return rc;
    m->def.n_layers = json_array_size(layers);
    if (!m->def.n_layers)
        return bad(p, CTR_EFORMAT, "mlp", "layers", "expected at least one layer");
    if (!(m->layers = calloc(m->def.n_layers, sizeof(*m->layers))))
        return ctr_error(p->err, p->errlen, CTR_ENOMEM, "out of memory");
    m->def.layers = m->layers;
    uint64_t want = ctr_model_input_dim(&m->def);
    for (size_t l = 0; l < m->def.n_layers; l++) {
        json_t *o = json_array_get(layers, l);
        char where[64];
        uint64_t in, out;
        snprintf(where, sizeof(where), "mlp.layers[%zu]", l);
        if (!json_is_object(o))
            return bad(p, CTR_EFORMAT, where, NULL, "expected an object (got %s)", show(o, g, sizeof(g)));
        if ((rc = check_keys(p, o, where, lkeys)) || (rc = get_uint(p, o, where, "in", 1, UINT32_MAX, &in)) ||
            (rc = get_uint(p, o, where, "out", 1, UINT32_MAX, &out)) ||
            (rc = get_string(p, o, where, "weight", &s, &len)) || (rc = get_string(p, o, where, "bias", &s, &len)))
            return rc;
        if (in != want)
            return bad(p, CTR_EFORMAT, where, "in", "is %" PRIu64 " but %s %" PRIu64, in,
                       l ? "the previous layer's out is" : "the schema gives (n_dense + sum of dims)", want);
        m->layers[l].in = (uint32_t)in;
        m->layers[l].out = (uint32_t)out;
        refs[2 * l] = json_object_get(o, "weight");
        refs[2 * l + 1] = json_object_get(o, "bias");
        want = out;
    }
    if (want != 1)
        return bad(p, CTR_EFORMAT, "mlp.layers", NULL, "the last layer must have out == 1 (got %" PRIu64 ")", want);
    return 0;
}

static int parse_tensors(parse_t *p, json_t *arr, uint64_t data_bytes, ctr__name_index_t *tix)
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
            return bad(p, CTR_EFORMAT, where, NULL, "expected an object (got %s)", show(o, g, sizeof(g)));
        if ((rc = check_keys(p, o, where, keys)) || (rc = get_name(p, o, where, TENSOR_NAME_MAX_BYTES, &t->name)))
            return rc;
        if (!ctr__name_index_add(tix, t->name, strlen(t->name), (uint32_t)i))
            return bad(p, CTR_EFORMAT, where, "name", "duplicate tensor name \"%s\"", t->name);
        snprintf(where, sizeof(where), "tensor \"%s\"", t->name);
        if ((rc = get_string(p, o, where, "dtype", &s, &len)))
            return rc;
        if (len != 3 || strcmp(s, "f32"))
            return bad(p, CTR_EUNSUPPORTED, where, "dtype",
                       "dtype \"%s\" is not supported yet (this build reads f32 only)",
                       ctr__printable(s, len, g, sizeof(g)));
        if ((rc = get_array(p, o, where, "shape", &shape)))
            return rc;
        t->rank = (int)json_array_size(shape);
        if (t->rank < 1 || t->rank > 2)
            return bad(p, CTR_EFORMAT, where, "shape", "expected 1 or 2 dimensions (got %s)",
                       show(shape, g, sizeof(g)));
        uint64_t elems = 1;
        for (int k = 0; k < t->rank; k++) {
            json_t *d = json_array_get(shape, (size_t)k);
            if (!json_is_integer(d) || json_integer_value(d) <= 0)
                return bad(p, CTR_EFORMAT, where, "shape", "expected positive integers (got %s)",
                           show(shape, g, sizeof(g)));
            t->shape[k] = (uint64_t)json_integer_value(d);
            if (!ctr__mul_u64(elems, t->shape[k], &elems))
                return bad(p, CTR_EFORMAT, where, "shape", "element count overflows (%s)", show(shape, g, sizeof(g)));
        }
        if ((rc = get_uint(p, o, where, "offset", 0, INT64_MAX, &t->offset)) ||
            (rc = get_uint(p, o, where, "nbytes", 0, INT64_MAX, &t->nbytes)) ||
            (rc = get_string(p, o, where, "sha256", &s, &len)))
            return rc;
        if (len != SHA_HEX || ctr_hex_decode(s, CTR_SHA256_LEN, t->sha, 1))
            return bad(p, CTR_EFORMAT, where, "sha256", "expected 64 lowercase hex digits (got \"%s\")",
                       ctr__printable(s, len, g, sizeof(g)));
        uint64_t want;
        if (!ctr__mul_u64(elems, sizeof(float), &want))
            return bad(p, CTR_EFORMAT, where, "nbytes", "shape %s of f32 needs more than 2^64 bytes",
                       show(shape, g, sizeof(g)));
        if (t->nbytes != want)
            return bad(p, CTR_EFORMAT, where, "nbytes", "is %" PRIu64 " but shape %s of f32 needs %" PRIu64,
                       t->nbytes, show(shape, g, sizeof(g)), want);
        if (t->offset % ALIGN)
            return bad(p, CTR_EFORMAT, where, "offset", "%" PRIu64 " is not a multiple of %u", t->offset, ALIGN);
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

/* Resolves a tensor reference from the schema or the MLP and checks shape. */
static int link_tensor(parse_t *p, const ctr__name_index_t *tix, json_t *ref, const char *where,
                       const char *what, const char *key, int rank, uint64_t d0, uint64_t d1, bool is_table,
                       const float **out)
{
    struct ctr_model *m = p->m;
    char q[256];
    long i = ctr__name_index_find(tix, json_string_value(ref), json_string_length(ref));
    if (i < 0)
        return bad(p, CTR_EFORMAT, where, key, "tensor \"%s\" is not in tensors",
                   ctr__printable(json_string_value(ref), json_string_length(ref), q, sizeof(q)));
    ctr__rtensor_t *t = &m->tensors[i];
    if (t->refs++)
        return bad(p, CTR_EFORMAT, where, key, "tensor \"%s\" is used twice", t->name);
    if (t->rank != rank || t->shape[0] != d0 || (rank == 2 && t->shape[1] != d1)) {
        char want[64], got[64];
        snprintf(want, sizeof(want), rank == 2 ? "[%" PRIu64 ",%" PRIu64 "]" : "[%" PRIu64 "]", d0, d1);
        if (t->rank == 2)
            snprintf(got, sizeof(got), "[%" PRIu64 ",%" PRIu64 "]", t->shape[0], t->shape[1]);
        else
            snprintf(got, sizeof(got), "[%" PRIu64 "]", t->shape[0]);
        return ctr_error(p->err, p->errlen, CTR_EFORMAT, "tensor \"%s\": shape %s does not match %s (expected %s)",
                         t->name, got, what, want);
    }
    t->is_table = is_table;
    *out = (const float *)(m->map + m->data_offset + t->offset);
    return 0;
}

static int parse_header(parse_t *p, uint32_t version)
{
    static const char *const keys[] = {"format", "version", "name", "schema", "mlp",
                                       "tensors", "data_bytes", "provenance", NULL};
    static const char *const skeys[] = {"dense", "categorical", NULL};
    struct ctr_model *m = p->m;
    json_error_t je;
    json_t *root = NULL, *schema, *dense, *cat, *mlp, *tensors, *prov, **refs = NULL;
    ctr__name_index_t tix = {0};
    const char *s;
    size_t len;
    uint64_t v, data_bytes;
    char g[64];
    int rc;

    root = json_loadb(m->header, m->header_len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        rc = ctr_error(p->err, p->errlen, CTR_EFORMAT,
                       "header: invalid JSON at line %d, column %d (file offset %" PRIu64 "): %s", je.line,
                       je.column, (uint64_t)PREAMBLE_BYTES + (uint64_t)(je.position > 0 ? je.position : 0),
                       je.text);
        goto fail;
    }
    if (!json_is_object(root)) {
        rc = bad(p, CTR_EFORMAT, "top level", NULL, "expected an object (got %s)", show(root, g, sizeof(g)));
        goto fail;
    }
    if ((rc = check_keys(p, root, "top level", keys)) || (rc = get_string(p, root, "", "format", &s, &len)))
        goto fail;
    if (len != 4 || strcmp(s, "ctrm")) {
        rc = bad(p, CTR_EFORMAT, "", "format", "expected \"ctrm\" (got \"%s\")", ctr__printable(s, len, g, sizeof(g)));
        goto fail;
    }
    if ((rc = get_uint(p, root, "", "version", 0, INT64_MAX, &v)))
        goto fail;
    if (v != version) {
        rc = bad(p, CTR_EFORMAT, "", "version", "%" PRIu64 " does not match the preamble's version %" PRIu32, v,
                 version);
        goto fail;
    }
    if ((rc = get_string(p, root, "", "name", &s, &len)))
        goto fail;
    if (!ctr__model_name_valid(s, len)) {
        rc = bad(p, CTR_EFORMAT, "", "name", "expected 1..%d bytes without control characters (got \"%s\")",
                 MODEL_NAME_MAX_BYTES, ctr__printable(s, len, g, sizeof(g)));
        goto fail;
    }
    m->def.name = arena_dup(m, s, len);

    if ((rc = get_object(p, root, "", "schema", &schema)) || (rc = check_keys(p, schema, "schema", skeys)) ||
        (rc = get_array(p, schema, "schema", "dense", &dense)) ||
        (rc = get_array(p, schema, "schema", "categorical", &cat)))
        goto fail;
    m->def.n_dense = json_array_size(dense);
    m->def.n_cat = json_array_size(cat);
    m->dense = calloc(m->def.n_dense + 1, sizeof(*m->dense));
    m->cat = calloc(m->def.n_cat + 1, sizeof(*m->cat));
    refs = calloc(m->def.n_cat + 1, sizeof(*refs));
    if (!m->dense || !m->cat || !refs || ctr__name_index_init(&m->features, m->def.n_dense + m->def.n_cat)) {
        rc = ctr_error(p->err, p->errlen, CTR_ENOMEM, "out of memory");
        goto fail;
    }
    m->def.dense = m->dense;
    m->def.cat = m->cat;
    if ((rc = parse_dense(p, dense)) || (rc = parse_cat(p, cat, refs)))
        goto fail;
    for (size_t i = 0; i < m->def.n_dense + m->def.n_cat; i++) {
        bool is_dense = i < m->def.n_dense;
        size_t k = is_dense ? i : i - m->def.n_dense;
        const char *name = is_dense ? m->dense[k].name : m->cat[k].name;
        if (!ctr__name_index_add(&m->features, name, strlen(name), (uint32_t)i)) {
            char where[64];
            snprintf(where, sizeof(where), "schema.%s[%zu]", is_dense ? "dense" : "categorical", k);
            rc = bad(p, CTR_EFORMAT, where, "name", "duplicate feature name \"%s\"", name);
            goto fail;
        }
    }
    if (m->def.n_dense + m->def.n_cat == 0) {
        rc = bad(p, CTR_EFORMAT, "schema", NULL, "no features");
        goto fail;
    }

    json_t **lrefs, *layers;
    if ((rc = get_object(p, root, "", "mlp", &mlp)) || (rc = get_array(p, mlp, "mlp", "layers", &layers)))
        goto fail;
    /* refs: the n_cat table names, then weight and bias of each layer. */
    lrefs = realloc(refs, (m->def.n_cat + 2 * json_array_size(layers) + 1) * sizeof(*refs));
    if (!lrefs) {
        rc = ctr_error(p->err, p->errlen, CTR_ENOMEM, "out of memory");
        goto fail;
    }
    refs = lrefs;
    if ((rc = parse_mlp(p, mlp, refs + m->def.n_cat)))
        goto fail;

    if ((rc = get_uint(p, root, "", "data_bytes", 0, INT64_MAX, &data_bytes)) ||
        (rc = get_array(p, root, "", "tensors", &tensors)))
        goto fail;
    m->n_tensors = json_array_size(tensors);
    if (!(m->tensors = calloc(m->n_tensors + 1, sizeof(*m->tensors))) || ctr__name_index_init(&tix, m->n_tensors)) {
        rc = ctr_error(p->err, p->errlen, CTR_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = parse_tensors(p, tensors, data_bytes, &tix)))
        goto fail;
    for (size_t j = 0; j < m->def.n_cat; j++) {
        char where[64], what[96];
        snprintf(where, sizeof(where), "schema.categorical[%zu]", j);
        snprintf(what, sizeof(what), "categorical \"%s\"", m->cat[j].name);
        if ((rc = link_tensor(p, &tix, refs[j], where, what, "table", 2, (uint64_t)m->cat[j].buckets + 1,
                              m->cat[j].dim, true, &m->cat[j].table)))
            goto fail;
    }
    for (size_t l = 0; l < m->def.n_layers; l++) {
        char where[64];
        snprintf(where, sizeof(where), "mlp.layers[%zu]", l);
        if ((rc = link_tensor(p, &tix, refs[m->def.n_cat + 2 * l], where, where, "weight", 2, m->layers[l].in,
                              m->layers[l].out, false, &m->layers[l].weight)) ||
            (rc = link_tensor(p, &tix, refs[m->def.n_cat + 2 * l + 1], where, where, "bias", 1, m->layers[l].out, 0,
                              false, &m->layers[l].bias)))
            goto fail;
    }
    for (size_t i = 0; i < m->n_tensors; i++)
        if (!m->tensors[i].refs) {
            rc = ctr_error(p->err, p->errlen, CTR_EFORMAT,
                           "tensor \"%s\": not used by the schema or the MLP", m->tensors[i].name);
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

    if ((rc = get_object(p, root, "", "provenance", &prov)))
        goto fail;
    if (!(m->provenance = json_dumps(prov, DUMP_FLAGS))) {
        rc = ctr_error(p->err, p->errlen, CTR_ENOMEM, "out of memory");
        goto fail;
    }
    m->def.provenance_json = m->provenance;
    rc = 0;
fail:
    ctr__name_index_free(&tix);
    free(refs);
    json_decref(root);
    return rc;
}

int ctr__model_parse_header(struct ctr_model *m, uint32_t version, char *err, size_t errlen)
{
    parse_t p = {m, err, errlen};
    return parse_header(&p, version);
}
