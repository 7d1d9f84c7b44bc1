/* decode_v2.c - the KServe v2 / Open Inference Protocol infer body:
 * {"id", "inputs", "outputs", "parameters"} (docs/DECODER.md "v2"). Each
 * input object is read key by key; its "data" is first only validated and
 * counted (ctr__json_skip_value), and once the object closes and name,
 * datatype and shape check out, the arena is allocated for the batch and
 * the elements are converted in row-major order (v2_data).
 *
 * Inputs: "dense" [B, n_dense], "sparse" [B, single-valued categorical
 * features, in schema order], and one per bag feature, named after it,
 * [B, L] with L <= its bag_max: each row one example's values, padded
 * with null, "" (BYTES) or -1 (INT64), padding skipped wherever it is. A
 * bag input not sent is an empty bag in every example. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/features.h"
#include "decode_int.h"
#include "json_scan.h"

enum { IN_DENSE = 0, IN_SPARSE = 1, IN_BAG = 2 };
enum { DT_OTHER = 0, DT_FP32, DT_BYTES, DT_INT64, DT_FP64 };

typedef struct {
    int has_name, has_dt, has_shape, has_data, has_params;
    int has_bin;            /* parameters.binary_data_size (binary bodies) */
    uint64_t bin_size;
    char name[72];          /* feature names are <= 64 bytes */
    size_t name_len;
    char dt[16];
    size_t dt_len;
    size_t rank;
    uint64_t dims[2];
    const uchar *data;
    size_t leaves;
} v2_input_t;

/* The input being decoded: what it feeds and its elements per example. */
typedef struct {
    int which;                /* IN_* */
    size_t j;                 /* IN_BAG: the categorical feature */
    size_t cols;
    const char *name;
} v2_target_t;

typedef struct {
    int done[2];              /* dense, sparse (bags: d->bag_done) */
    size_t b;     /* examples, once the first input is decoded */
    size_t bin_pos;   /* binary bodies: tensor bytes taken so far */
    int out_binary;   /* outputs' parameters.binary_data: -1 unset, 0, 1 */
} v2_state_t;

/* A short string value (name, datatype) into buf; longer ones are kept
 * truncated, with *len the full length, so they compare unequal. */
static const uchar *short_string(ctr__dec_t *d, const uchar *p, char *buf, size_t cap, size_t *len,
                                 const char *what, long idx)
{
    if (*p != '"')
        return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", -1, NULL, 0, "%s[%ld]: expected a string",
                            what, idx);
    return ctr__json_scan_string(&d->sc, p + 1, buf, cap, len);
}

static int str_is(const char *s, size_t len, size_t cap, const char *word)
{
    return len <= cap && ctr__dec_key_is(s, len, word);
}

/* Element [i][t] of a categorical input: its feature and slot; for a
 * bag, the next free slot of example i (*m counts its values, *cur is the
 * example it counts for). */
static size_t v2_cat_slot(const ctr__dec_t *d, const v2_target_t *tg, size_t i, size_t t,
                          size_t *cur, size_t *m, size_t *j)
{
    if (tg->which == IN_SPARSE) {
        *j = d->single[t];
        return d->slot_of[*j];
    }
    if (*cur != i) {
        *cur = i;
        *m = 0;
    }
    *j = tg->j;
    return d->slot_of[tg->j] + *m;
}

/* The tensor's elements, flattened in row-major order. */
static const uchar *v2_data(ctr__dec_t *d, const v2_input_t *in, const v2_target_t *tg, int dt)
{
    const uchar *p = in->data, *end = d->sc.end;
    size_t n = tg->cols, k = 0, depth = 0, cur = SIZE_MAX, m = 0;
    int bag = tg->which == IN_BAG;
    for (;;) {
        p = ctr__json_ws(p, end);
        CTR_ASSERT(p < end); /* validated by ctr__json_skip_value */
        uchar c = *p;
        if (c == '[') {
            depth++;
            p++;
            continue;
        }
        if (c == ',') {
            p++;
            continue;
        }
        if (c == ']') {
            p++;
            if (--depth == 0)
                return p;
            continue;
        }
        size_t i = k / n, t = k % n;
        ctr__dec_slots_t s = ctr__dec_example_slots(d, i);
        k++;
        if (tg->which == IN_DENSE) {
            p = ctr__dec_dense_value(d, p, t, &s, (long)i);
            if (!p)
                return NULL;
            continue;
        }
        size_t j, slot = v2_cat_slot(d, tg, i, t, &cur, &m, &j);
        int present = 1;
        if (c == 'n' && ctr__json_lit(p, end, "null", 4)) {
            if (!bag)
                ctr__dec_cat_absent(d, &s, j);
            present = 0;
            p += 4;
        } else if (dt == DT_BYTES && c == '"') {
            p = ctr__dec_cat_string_v2(d, p, j, slot, &s, (long)i, bag ? &present : NULL);
        } else if (dt == DT_INT64 && ctr__json_is_num_start(c)) {
            p = ctr__dec_cat_int(d, p, j, slot, &s, (long)i, bag ? &present : NULL);
        } else {
            const char *name = d->def->cat[j].name;
            return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", (long)i, name, strlen(name),
                                "input \"%s\" (%s): element [%zu][%zu] (feature \"%s\") "
                                "must be %s or null",
                                tg->name, dt == DT_BYTES ? "BYTES" : "INT64", i, t, name,
                                dt == DT_BYTES ? "a string" : "an integer");
        }
        if (!p)
            return NULL;
        m += bag && present;
    }
}


/* ---- binary tensor data (ctr__decode_v2_binary) -------------------------- */

static uint32_t le32(const uchar *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uchar *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* Strict UTF-8 (no overlong forms, no surrogates, at most U+10FFFF): what
 * a JSON string may carry, so the request is one its JSON form can say. */
static int utf8_ok(const uchar *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uchar c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= k)
            return 0;
        for (size_t t = 1; t <= k; t++) {
            if ((s[i + t] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + t] & 0x3F);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k + 1;
    }
    return 1;
}

static size_t dt_size(int dt)
{
    return dt == DT_FP32 ? 4 : dt == DT_FP64 || dt == DT_INT64 ? 8 : 0;
}

static const char *dt_name(int dt)
{
    return dt == DT_FP32 ? "FP32" : dt == DT_FP64 ? "FP64" : dt == DT_INT64 ? "INT64" : "BYTES";
}

/* The b x n elements of an input from size bytes of tensor data at
 * d->bin + at. 0, or -1 with the error recorded. */
static int v2_bin_data(ctr__dec_t *d, const v2_target_t *tg, int dt, size_t b, size_t at,
                       size_t size)
{
    const uchar *p = d->bin + at, *end = p + size;
    const char *iname = tg->name;
    size_t n = tg->cols, total = b * n, cur = SIZE_MAX, m = 0;
    size_t body_at = (size_t)(d->sc.end - d->sc.beg) + at; /* byte of the body */
    int bag = tg->which == IN_BAG;
    if (dt != DT_BYTES) {
        size_t es = dt_size(dt);
        if (size / es != total || size % es)
            return ctr__dec_sem(d, CTR_EINVAL, "bad_binary_size", -1, NULL, 0,
                                "input \"%s\": binary_data_size is %zu bytes, shape [%zu, %zu] "
                                "of %s needs %zu",
                                iname, size, b, n, dt_name(dt), total * es), -1;
        for (size_t k = 0; k < total; k++, p += es) {
            size_t i = k / n, t = k % n;
            ctr__dec_slots_t s = ctr__dec_example_slots(d, i);
            if (tg->which != IN_DENSE) {
                size_t j, slot = v2_cat_slot(d, tg, i, t, &cur, &m, &j);
                int64_t v = (int64_t)le64(p);
                if (bag && v == -1)
                    continue; /* padding */
                if (ctr__dec_cat_i64(d, j, slot, &s, v, (long)i))
                    return -1;
                m++;
                continue;
            }
            const ctr_dense_def_t *def = &d->def->dense[t];
            double v;
            if (dt == DT_FP32) {
                uint32_t u = le32(p);
                float f;
                memcpy(&f, &u, sizeof f);
                v = (double)f;
            } else if (dt == DT_FP64) {
                uint64_t u = le64(p);
                memcpy(&v, &u, sizeof v);
            } else {
                v = (double)(int64_t)le64(p);
            }
            if (isnan(v)) {
                s.raw[t] = NAN;
                s.enc[t] = ctr_features_dense_missing(def);
            } else if (isinf(v)) {
                return ctr__dec_sem(d, CTR_ERANGE, "number_out_of_range", (long)i, def->name,
                                    strlen(def->name),
                                    "%sfeature \"%s\": infinite value in input \"dense\" "
                                    "(%s element [%zu][%zu] at byte %zu)",
                                    ctr__dec_where(d, (long)i), def->name, dt_name(dt), i, t,
                                    body_at + k * es), -1;
            } else {
                s.raw[t] = v;
                s.enc[t] = ctr_features_dense(def, v);
            }
        }
        return 0;
    }
    /* BYTES: each element a 4-byte little-endian length, then its bytes. */
    for (size_t k = 0; k < total; k++) {
        size_t i = k / n, t = k % n, off = body_at + (size_t)(p - (d->bin + at));
        size_t j, slot = v2_cat_slot(d, tg, i, t, &cur, &m, &j);
        const char *fname = d->def->cat[j].name;
        if ((size_t)(end - p) < 4)
            return ctr__dec_sem(d, CTR_EINVAL, "bad_binary_size", (long)i, fname, strlen(fname),
                                "input \"%s\": binary_data_size of %zu bytes ends inside "
                                "element [%zu][%zu] (%zu of %zu elements, byte %zu): no room "
                                "for its 4-byte length",
                                iname, size, i, t, k, total, off), -1;
        uint32_t len = le32(p);
        p += 4;
        if (len > (size_t)(end - p))
            return ctr__dec_sem(d, CTR_EINVAL, "binary_data_overrun", (long)i, fname,
                                strlen(fname),
                                "input \"%s\": element [%zu][%zu] at byte %zu is %u bytes "
                                "long, past the end of the input's %zu bytes of data",
                                iname, i, t, off, len, size), -1;
        if (len > CTR_MAX_CAT_BYTES)
            return ctr__dec_sem(d, CTR_ERANGE, "string_too_long", (long)i, fname, strlen(fname),
                                "%sfeature \"%s\": categorical value of %u bytes, at most %d "
                                "allowed",
                                ctr__dec_where(d, (long)i), fname, len, CTR_MAX_CAT_BYTES), -1;
        if (!utf8_ok(p, len))
            return ctr__dec_sem(d, CTR_EFORMAT, "invalid_utf8", (long)i, fname, strlen(fname),
                                "input \"%s\": element [%zu][%zu] at byte %zu is not valid "
                                "UTF-8",
                                iname, i, t, off), -1;
        ctr__dec_slots_t s = ctr__dec_example_slots(d, i);
        if (len == 0) {
            if (!bag)
                ctr__dec_cat_absent(d, &s, j);
        } else {
            if (ctr__dec_cat_put(d, j, slot, &s, p, len, (long)i))
                return -1;
            m++;
        }
        p += len;
    }
    if (p != end)
        return ctr__dec_sem(d, CTR_EINVAL, "bad_binary_size", -1, NULL, 0,
                            "input \"%s\": binary_data_size is %zu bytes, its %zu BYTES "
                            "elements take %zu (%zu bytes left over at byte %zu)",
                            iname, size, total, (size_t)(p - (d->bin + at)), (size_t)(end - p),
                            body_at + (size_t)(p - (d->bin + at))), -1;
    return 0;
}

/* A parameters object at p (containers already open around it: depth0):
 * *val is the value of member key (the last one), or stays NULL. */
static const uchar *v2_param(ctr__dec_t *d, const uchar *p, size_t depth0, const char *key,
                             const uchar **val)
{
    const uchar *end = d->sc.end;
    char kbuf[CTR__DEC_KEY_CAP];
    p = ctr__json_ws(p + 1, end);
    if (p < end && *p == '}')
        return p + 1;
    for (;;) {
        const char *k;
        size_t klen;
        if (p >= end || *p != '"')
            return SYN(d, p, "expected a string key");
        p = ctr__dec_key(d, p, kbuf, &k, &klen);
        if (!p)
            return NULL;
        int want = ctr__dec_key_is(k, klen, key);
        if (!(p = ctr__dec_colon(d, p)))
            return NULL;
        if (want)
            *val = p;
        p = ctr__json_skip_value(&d->sc, p, depth0 + 1, NULL);
        if (!p)
            return NULL;
        p = ctr__json_ws(p, end);
        if (p < end && *p == ',') {
            p = ctr__json_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}')
            return p + 1;
        return SYN(d, p, "expected ',' or '}' after an object member");
    }
}

/* A boolean parameter: 1 true, 0 false, -1 anything else (ignored). */
static int v2_param_bool(const ctr__dec_t *d, const uchar *v)
{
    if (!v)
        return -1;
    if (ctr__json_lit(v, d->sc.end, "true", 4))
        return 1;
    if (ctr__json_lit(v, d->sc.end, "false", 5))
        return 0;
    return -1;
}

/* The length of s[0..n) without a UTF-8 sequence cut at its end: a name
 * longer than its buffer is shown cut at a character boundary (messages
 * are UTF-8 in the JSON error body). */
static size_t utf8_whole(const char *s, size_t n)
{
    size_t i = n, k = 0;
    while (i > 0 && k < 4 && ((uchar)s[i - 1] & 0xC0) == 0x80) {
        i--;
        k++;
    }
    if (i == 0)
        return n;
    uchar lead = (uchar)s[i - 1];
    size_t need = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return lead >= 0x80 && k + 1 < need ? i - 1 : n;
}

/* Checks an input once its object is closed, then decodes its data. */
static const uchar *v2_input_close(ctr__dec_t *d, v2_state_t *st, const v2_input_t *in, long idx,
                                   const uchar *p)
{
    if (!in->has_name)
        return ctr__dec_sem(d, CTR_EINVAL, "missing_field", -1, NULL, 0,
                            "inputs[%ld] has no \"name\"", idx);
    v2_target_t tg = {IN_DENSE, 0, d->nd, "dense"};
    size_t shown = utf8_whole(in->name, in->name_len < sizeof(in->name) ? in->name_len
                                                                         : sizeof(in->name));
    if (str_is(in->name, in->name_len, sizeof(in->name), "dense")) {
        tg = (v2_target_t){IN_DENSE, 0, d->nd, "dense"};
    } else if (str_is(in->name, in->name_len, sizeof(in->name), "sparse")) {
        tg = (v2_target_t){IN_SPARSE, 0, d->n_single, "sparse"};
    } else {
        long f = in->name_len <= sizeof(in->name)
                     ? ctr_model_find_feature(d->m, in->name, in->name_len) : -1;
        if (f >= (long)d->nd && d->def->cat[f - (long)d->nd].bag_max) {
            size_t j = (size_t)f - d->nd;
            tg = (v2_target_t){IN_BAG, j, 0, d->def->cat[j].name};
        } else if (f >= (long)d->nd) {
            return ctr__dec_sem(d, CTR_EINVAL, "unknown_input", -1, NULL, 0,
                                "inputs[%ld]: unknown input \"%.*s\": that feature is not a "
                                "bag, its values go in \"sparse\"",
                                idx, (int)shown, in->name);
        } else {
            return ctr__dec_sem(d, CTR_EINVAL, "unknown_input", -1, NULL, 0,
                                "inputs[%ld]: unknown input \"%.*s\" (expected \"dense\", "
                                "\"sparse\"%s)",
                                idx, (int)shown, in->name,
                                d->n_bags ? " and the bag features' own inputs" : "");
        }
    }
    const char *iname = tg.name;
    int bag = tg.which == IN_BAG;
    if (bag ? st->b && d->bag_done[tg.j] : st->done[tg.which])
        return ctr__dec_sem(d, CTR_EINVAL, "duplicate_input", -1, NULL, 0,
                            "input \"%s\" appears twice", iname);
    if (in->has_bin && in->has_data)
        return ctr__dec_sem(d, CTR_EINVAL, "conflicting_data", -1, NULL, 0,
                            "input \"%s\" has both \"data\" and parameters.binary_data_size",
                            iname);
    if (!in->has_dt || !in->has_shape || (!in->has_data && !in->has_bin))
        return ctr__dec_sem(d, CTR_EINVAL, "missing_field", -1, NULL, 0,
                            "input \"%s\" has no \"%s\"%s", iname,
                            !in->has_dt ? "datatype" : !in->has_shape ? "shape" : "data",
                            in->has_dt && in->has_shape && d->binary
                                ? " nor parameters.binary_data_size" : "");
    int dt = DT_OTHER;
    if (str_is(in->dt, in->dt_len, sizeof(in->dt), "FP32"))
        dt = DT_FP32;
    else if (str_is(in->dt, in->dt_len, sizeof(in->dt), "BYTES"))
        dt = DT_BYTES;
    else if (str_is(in->dt, in->dt_len, sizeof(in->dt), "INT64"))
        dt = DT_INT64;
    else if (str_is(in->dt, in->dt_len, sizeof(in->dt), "FP64"))
        dt = DT_FP64;
    /* Binary dense data may also be FP64 or INT64: each value is the double
     * the JSON number would be. */
    int dense_ok = dt == DT_FP32 || (in->has_bin && (dt == DT_FP64 || dt == DT_INT64));
    if (tg.which == IN_DENSE ? !dense_ok : dt != DT_BYTES && dt != DT_INT64)
        return ctr__dec_sem(d, CTR_EINVAL, "bad_datatype", -1, NULL, 0,
                            "input \"%s\": datatype must be %s", iname,
                            tg.which == IN_DENSE ? in->has_bin ? "FP32, FP64 or INT64" : "FP32"
                                                 : "BYTES or INT64");
    if (in->rank != 2)
        return ctr__dec_sem(d, CTR_EINVAL, "bad_shape", -1, NULL, 0,
                            bag ? "input \"%s\": shape must be [batch, L] with L <= %zu, got %zu "
                                  "dimensions"
                                : "input \"%s\": shape must be [batch, %zu], got %zu dimensions",
                            iname, bag ? (size_t)d->def->cat[tg.j].bag_max : tg.cols, in->rank);
    if (bag) {
        uint32_t max = d->def->cat[tg.j].bag_max;
        if (in->dims[1] > max)
            return ctr__dec_sem(d, CTR_EINVAL, "bad_shape", -1, iname, strlen(iname),
                                "input \"%s\": shape [%llu, %llu], the bag holds at most %u "
                                "values",
                                iname, (unsigned long long)in->dims[0],
                                (unsigned long long)in->dims[1], max);
        tg.cols = (size_t)in->dims[1];
    } else if (in->dims[1] != tg.cols) {
        return ctr__dec_sem(d, CTR_EINVAL, "bad_shape", -1, NULL, 0,
                            "input \"%s\": shape [%llu, %llu], the model has %zu %s features%s",
                            iname, (unsigned long long)in->dims[0],
                            (unsigned long long)in->dims[1], tg.cols,
                            tg.which == IN_DENSE ? "dense" : d->n_bags ? "single-valued categorical"
                                                                       : "sparse",
                            tg.which == IN_SPARSE && d->n_bags
                                ? " (each bag feature is an input of its own)" : "");
    }
    size_t n = tg.cols;
    if (in->dims[0] == 0)
        return ctr__dec_sem(d, CTR_EINVAL, "bad_shape", -1, NULL, 0, "input \"%s\": batch size 0",
                            iname);
    if (in->dims[0] > d->max_examples)
        return ctr__dec_sem(d, CTR_ETOOBIG, "too_many_examples", -1, NULL, 0,
                            "input \"%s\": batch of %llu examples, at most %zu allowed", iname,
                            (unsigned long long)in->dims[0], d->max_examples);
    size_t b = (size_t)in->dims[0];
    if (st->b && b != st->b)
        return ctr__dec_sem(d, CTR_EINVAL, "bad_shape", -1, NULL, 0,
                            "input \"%s\": batch %zu differs from the other input's %zu", iname, b,
                            st->b);
    if (in->has_data && in->leaves != b * n)
        return ctr__dec_sem(d, CTR_EINVAL, "bad_shape", -1, NULL, 0,
                            "input \"%s\": shape [%zu, %zu] needs %zu elements, data has %zu",
                            iname, b, n, b * n, in->leaves);
    size_t left = d->bin_len - st->bin_pos;
    if (in->has_bin && in->bin_size > left)
        return ctr__dec_sem(d, CTR_EINVAL, "bad_binary_size", -1, NULL, 0,
                            "input \"%s\": binary_data_size is %llu bytes, past the end of the "
                            "body (its data starts at byte %zu, %zu bytes remain)",
                            iname, (unsigned long long)in->bin_size,
                            (size_t)(d->sc.end - d->sc.beg) + st->bin_pos, left);
    if (!st->b) {
        if (ctr__dec_arena_alloc(d, b, 0))
            return NULL;
        st->b = b;
        d->req->n = b;
    }
    if (in->has_bin) {
        if (v2_bin_data(d, &tg, dt, b, st->bin_pos, (size_t)in->bin_size))
            return NULL;
        st->bin_pos += (size_t)in->bin_size;
    } else if (n && !v2_data(d, in, &tg, dt)) {
        return NULL;
    }
    if (bag)
        d->bag_done[tg.j] = 1;
    else
        st->done[tg.which] = 1;
    return p;
}

static const uchar *v2_shape(ctr__dec_t *d, const uchar *p, v2_input_t *in, long idx)
{
    const uchar *end = d->sc.end;
    if (*p != '[')
        return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", -1, NULL, 0,
                            "inputs[%ld]: \"shape\" must be an array", idx);
    p = ctr__json_ws(p + 1, end);
    if (p < end && *p == ']')
        return p + 1;
    for (;;) {
        ctr__json_num_t num;
        if (p >= end || !ctr__json_is_num_start(*p))
            return ctr__dec_sem(d, CTR_EINVAL, "bad_shape", -1, NULL, 0,
                                "inputs[%ld]: \"shape\" must hold non-negative integers", idx);
        const uchar *q = ctr__json_scan_number(&d->sc, p, 0, &num);
        if (!q)
            return NULL;
        if (!num.int_ok || num.i < 0)
            return ctr__dec_sem(d, CTR_EINVAL, "bad_shape", -1, NULL, 0,
                                "inputs[%ld]: \"shape\" must hold non-negative integers", idx);
        if (in->rank < 2)
            in->dims[in->rank] = (uint64_t)num.i;
        in->rank++;
        p = ctr__json_ws(q, end);
        if (p < end && *p == ',') {
            p = ctr__json_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == ']')
            return p + 1;
        return SYN(d, p, "expected ',' or ']' after an array element");
    }
}

static const uchar *v2_input(ctr__dec_t *d, v2_state_t *st, const uchar *p, long idx)
{
    const uchar *end = d->sc.end;
    v2_input_t in;
    char kbuf[CTR__DEC_KEY_CAP];
    memset(&in, 0, sizeof(in));
    p = ctr__json_ws(p + 1, end);
    if (p < end && *p == '}')
        return v2_input_close(d, st, &in, idx, p + 1);
    for (;;) {
        const char *k;
        size_t klen;
        int *seen;
        if (p >= end || *p != '"')
            return SYN(d, p, "expected a string key");
        p = ctr__dec_key(d, p, kbuf, &k, &klen);
        if (!p)
            return NULL;
        if (ctr__dec_key_is(k, klen, "name"))
            seen = &in.has_name;
        else if (ctr__dec_key_is(k, klen, "datatype"))
            seen = &in.has_dt;
        else if (ctr__dec_key_is(k, klen, "shape"))
            seen = &in.has_shape;
        else if (ctr__dec_key_is(k, klen, "data"))
            seen = &in.has_data;
        else if (ctr__dec_key_is(k, klen, "parameters"))
            seen = &in.has_params;
        else
            return ctr__dec_sem(d, CTR_EINVAL, "unknown_field", -1, NULL, 0,
                                "inputs[%ld]: unknown field \"%.*s\"", idx,
                                (int)(klen < 64 ? klen : 64), k);
        if (*seen)
            return ctr__dec_sem(d, CTR_EINVAL, "duplicate_key", -1, NULL, 0,
                                "inputs[%ld]: \"%.*s\" appears twice", idx, (int)klen, k);
        *seen = 1;
        if (!(p = ctr__dec_colon(d, p)))
            return NULL;
        if (seen == &in.has_name) {
            p = short_string(d, p, in.name, sizeof(in.name), &in.name_len, "inputs", idx);
        } else if (seen == &in.has_dt) {
            p = short_string(d, p, in.dt, sizeof(in.dt), &in.dt_len, "inputs", idx);
        } else if (seen == &in.has_shape) {
            p = v2_shape(d, p, &in, idx);
        } else if (seen == &in.has_data) {
            if (*p != '[')
                return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", -1, NULL, 0,
                                    "inputs[%ld]: \"data\" must be an array", idx);
            in.data = p;
            p = ctr__json_skip_value(&d->sc, p, 3, &in.leaves);
        } else {
            if (*p != '{')
                return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", -1, NULL, 0,
                                    "inputs[%ld]: \"parameters\" must be an object", idx);
            if (d->binary) {
                const uchar *v = NULL;
                p = v2_param(d, p, 3, "binary_data_size", &v);
                if (p && v) {
                    ctr__json_num_t num;
                    const uchar *q = ctr__json_is_num_start(*v)
                                         ? ctr__json_scan_number(&d->sc, v, 0, &num) : v;
                    if (!q)
                        return NULL;
                    if (q == v || !num.int_ok || num.i < 0)
                        return ctr__dec_sem(d, CTR_EINVAL, "bad_binary_size", -1, NULL, 0,
                                            "inputs[%ld]: parameters.binary_data_size must be "
                                            "a non-negative 64-bit integer",
                                            idx);
                    in.has_bin = 1;
                    in.bin_size = (uint64_t)num.i;
                }
            } else {
                p = ctr__json_skip_value(&d->sc, p, 3, NULL);
            }
        }
        if (!p)
            return NULL;
        p = ctr__json_ws(p, end);
        if (p < end && *p == ',') {
            p = ctr__json_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}')
            return v2_input_close(d, st, &in, idx, p + 1);
        return SYN(d, p, "expected ',' or '}' after an object member");
    }
}

static const uchar *v2_output(ctr__dec_t *d, v2_state_t *st, const uchar *p, long idx)
{
    const uchar *end = d->sc.end;
    int has_name = 0, has_params = 0;
    char name[16], kbuf[CTR__DEC_KEY_CAP];
    size_t name_len = 0;
    p = ctr__json_ws(p + 1, end);
    if (p < end && *p == '}') {
        p++;
        goto close;
    }
    for (;;) {
        const char *k;
        size_t klen;
        int *seen;
        if (p >= end || *p != '"')
            return SYN(d, p, "expected a string key");
        p = ctr__dec_key(d, p, kbuf, &k, &klen);
        if (!p)
            return NULL;
        if (ctr__dec_key_is(k, klen, "name"))
            seen = &has_name;
        else if (ctr__dec_key_is(k, klen, "parameters"))
            seen = &has_params;
        else
            return ctr__dec_sem(d, CTR_EINVAL, "unknown_field", -1, NULL, 0,
                                "outputs[%ld]: unknown field \"%.*s\"", idx,
                                (int)(klen < 64 ? klen : 64), k);
        if (*seen)
            return ctr__dec_sem(d, CTR_EINVAL, "duplicate_key", -1, NULL, 0,
                                "outputs[%ld]: \"%.*s\" appears twice", idx, (int)klen, k);
        *seen = 1;
        if (!(p = ctr__dec_colon(d, p)))
            return NULL;
        if (seen == &has_name) {
            p = short_string(d, p, name, sizeof(name), &name_len, "outputs", idx);
        } else {
            if (*p != '{')
                return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", -1, NULL, 0,
                                    "outputs[%ld]: \"parameters\" must be an object", idx);
            const uchar *v = NULL;
            p = v2_param(d, p, 3, "binary_data", &v);
            if (p && v2_param_bool(d, v) >= 0)
                st->out_binary = v2_param_bool(d, v);
        }
        if (!p)
            return NULL;
        p = ctr__json_ws(p, end);
        if (p < end && *p == ',') {
            p = ctr__json_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}') {
            p++;
            break;
        }
        return SYN(d, p, "expected ',' or '}' after an object member");
    }
close:
    if (!has_name)
        return ctr__dec_sem(d, CTR_EINVAL, "missing_field", -1, NULL, 0,
                            "outputs[%ld] has no \"name\"", idx);
    if (!str_is(name, name_len, sizeof(name), "score"))
        return ctr__dec_sem(d, CTR_EINVAL, "unknown_output", -1, NULL, 0,
                            "outputs[%ld]: unknown output \"%.*s\" (the model has \"score\")", idx,
                            (int)utf8_whole(name, name_len < sizeof(name) ? name_len
                                                                          : sizeof(name)),
                            name);
    return p;
}

/* "inputs" or "outputs": an array of objects. */
static const uchar *v2_array(ctr__dec_t *d, v2_state_t *st, const uchar *p, int inputs)
{
    const uchar *end = d->sc.end;
    const char *what = inputs ? "inputs" : "outputs";
    if (*p != '[')
        return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", -1, NULL, 0,
                            "\"%s\" must be an array of objects", what);
    p = ctr__json_ws(p + 1, end);
    if (p < end && *p == ']')
        return p + 1;
    for (long i = 0;; i++) {
        if (p >= end || *p != '{')
            return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", -1, NULL, 0,
                                "%s[%ld] must be an object", what, i);
        p = inputs ? v2_input(d, st, p, i) : v2_output(d, st, p, i);
        if (!p)
            return NULL;
        p = ctr__json_ws(p, end);
        if (p < end && *p == ',') {
            p = ctr__json_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == ']')
            return p + 1;
        return SYN(d, p, "expected ',' or ']' after an array element");
    }
}

static const char *const V2_KEYS[] = {"inputs", "id", "outputs", "parameters"};
enum { V2_INPUTS, V2_ID, V2_OUTPUTS, V2_PARAMETERS };

int ctr__dec_v2_parse(ctr__dec_t *d)
{
    const uchar *end = d->sc.end, *p = ctr__json_ws(d->sc.beg, end);
    unsigned seen = 0;
    int req_binary = 0;
    v2_state_t st = {{0, 0}, 0, 0, -1};

    if (!(p = ctr__dec_body_open(d, p)))
        return -1;
    int more = 1;
    if (p < end && *p == '}') {
        p++;
        more = 0;
    }
    while (more) {
        int which = 0;
        p = ctr__dec_top_member(d, p, V2_KEYS, 4, "id, inputs, outputs, parameters", &seen, &which);
        if (!p)
            return -1;
        if (which == V2_INPUTS || which == V2_OUTPUTS) {
            p = v2_array(d, &st, p, which == V2_INPUTS);
        } else if (which == V2_ID) {
            p = ctr__dec_request_id(d, p, "id");
        } else {
            if (*p != '{')
                return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", -1, NULL, 0,
                                    "\"parameters\" must be an object"), -1;
            const uchar *v = NULL;
            p = v2_param(d, p, 1, "binary_data_output", &v);
            if (p)
                req_binary = v2_param_bool(d, v) == 1;
        }
        if (!p || (more = ctr__dec_top_next(d, &p)) < 0)
            return -1;
    }
    if (ctr__dec_body_end(d, p))
        return -1;
    if (st.bin_pos != d->bin_len)
        return ctr__dec_sem(d, CTR_EINVAL, "trailing_binary_data", -1, NULL, 0,
                            "%zu bytes of tensor data at byte %zu follow the last binary input "
                            "(the inputs' binary_data_size take %zu of the %zu bytes after the "
                            "JSON header)",
                            d->bin_len - st.bin_pos, (size_t)(d->sc.end - d->sc.beg) + st.bin_pos,
                            st.bin_pos, d->bin_len), -1;
    for (int w = 0; w < 2; w++) {
        size_t n = w == IN_DENSE ? d->nd : d->n_single;
        if (n && !st.done[w])
            return ctr__dec_sem(d, CTR_EINVAL, "missing_input", -1, NULL, 0,
                                "input \"%s\" is missing", w == IN_DENSE ? "dense" : "sparse"), -1;
    }
    if (!st.b)
        return ctr__dec_sem(d, CTR_EINVAL, "missing_input", -1, NULL, 0, "no inputs"), -1;
    d->req->binary_output = st.out_binary >= 0 ? st.out_binary : req_binary;
    return 0;
}
