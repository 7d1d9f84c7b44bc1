/* decode_ref.c - a reference decoder for /v1/score and KServe v2 infer
 * bodies built on jansson, written from docs/DECODER.md independently of
 * the decoder (server/decode*.c), and the differential check that feeds
 * one body to both (contract in decode_ref.h). Shared by tests/test_decode.c and the
 * libFuzzer targets tests/fuzz/fuzz_decode_v1.c and fuzz_decode_v2.c. */
#include "decode_ref.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../server/buf.h"
#include "../server/respond.h"
#include "ctr/common.h"
#include "ctr/features.h"
#include "model_int.h"
#include "testutil.h"

#define ND REF_ND
#define NC REF_NC
#define NS REF_NS_MAX
#define MAX_EX REF_MAX_EX
#define MAX_DEPTH REF_MAX_DEPTH

const ctr_decode_limits_t ref_lim = {REF_MAX_EX, REF_MAX_DEPTH};
static const ctr_model_t *g_m;
static const ctr_model_def_t *g_def;
static size_t g_nd, g_nc, g_ns, g_n_single;
static size_t g_slot_of[NC], g_single[NC];

void ref_init(const ctr_model_t *m)
{
    g_m = m;
    g_def = ctr_model_def(m);
    g_nd = g_def->n_dense;
    g_nc = g_def->n_cat;
    CTR_ASSERT(g_nd == ND && g_nc == NC);
    g_ns = 0;
    g_n_single = 0;
    for (size_t j = 0; j < NC; j++) {
        g_slot_of[j] = g_ns;
        g_ns += g_def->cat[j].bag_max ? g_def->cat[j].bag_max : 1;
        if (!g_def->cat[j].bag_max)
            g_single[g_n_single++] = j;
    }
    CTR_ASSERT(g_ns <= NS && g_ns == ctr_model_slots(g_def));
}

/* ---- the reference decoder (jansson) ----------------------------------- */


ref_t g_ref;
static ref_t g_ctx; /* g_ctx: row 0 holds the v1 context's values */

/* Same rule as the decoder's error.feature: 64 bytes, whole UTF-8 only. */
static void trunc_name(char *dst, const char *s, size_t len)
{
    if (len > 64)
        len = 64;
    memcpy(dst, s, len);
    dst[len] = '\0';
    size_t n = len, i = n, k = 0;
    while (i > 0 && k < 4 && ((unsigned char)dst[i - 1] & 0xC0) == 0x80) {
        i--;
        k++;
    }
    if (i == 0)
        return;
    unsigned char lead = (unsigned char)dst[i - 1];
    size_t need = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (lead >= 0x80 && k + 1 < need)
        dst[i - 1] = '\0';
}

static int ref_sem(ref_t *r, const char *name, long ex, const char *feat, size_t flen)
{
    r->verdict = REF_SEMANTIC;
    r->name = name;
    r->status = !strcmp(name, "too_many_examples") ? 413 : 400;
    r->example = ex;
    r->feature[0] = '\0';
    if (feat)
        trunc_name(r->feature, feat, flen);
    return -1;
}

static long ref_find(const char *k, size_t len)
{
    for (size_t f = 0; f < g_nd + g_nc; f++) {
        const char *name = f < g_nd ? g_def->dense[f].name : g_def->cat[f - g_nd].name;
        if (strlen(name) == len && !memcmp(name, k, len))
            return (long)f;
    }
    return -1;
}

static size_t ref_depth(const json_t *j)
{
    size_t best = 0;
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v) {
            size_t d = ref_depth(v);
            best = d > best ? d : best;
        }
        return best + 1;
    }
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) {
            size_t d = ref_depth(v);
            best = d > best ? d : best;
        }
        return best + 1;
    }
    return 0;
}

/* Parses twice: A with integers as reals (exact strtod doubles, -0 kept),
 * B with integers as integers (int64, integer-ness). */
static int ref_parse(const char *body, size_t len, json_t **a, json_t **b, ref_t *r)
{
    size_t f = JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES;
    json_error_t err;
    *b = NULL;
    *a = NULL;
    /* jansson skips a raw NUL byte after a number; JSON has no place for one. */
    if (memchr(body, 0, len)) {
        r->verdict = REF_SYNTAX;
        return -1;
    }
    *a = json_loadb(body, len, f | JSON_DECODE_INT_AS_REAL, &err);
    if (!*a) {
        if (strstr(err.text, "duplicate object key") || strstr(err.text, "NUL byte in object key"))
            r->verdict = REF_LIMITED_DUP;
        else
            r->verdict = REF_SYNTAX;
        return -1;
    }
    if (ref_depth(*a) > MAX_DEPTH) {
        r->verdict = REF_SYNTAX;
        json_decref(*a);
        *a = NULL;
        return -1;
    }
    *b = json_loadb(body, len, f, &err);
    if (!*b)
        CTR_ASSERT(strstr(err.text, "too big"));
    return 0;
}

/* Row i of r (or the context scratch): dense value f. */
static int ref_dense(ref_t *r, size_t i, size_t f, const json_t *va, long ex)
{
    const ctr_dense_def_t *def = &g_def->dense[f];
    if (json_is_null(va)) {
        r->raw[i * ND + f] = NAN;
        r->dense[i * ND + f] = ctr_features_dense_missing(def);
        return 0;
    }
    if (!json_is_number(va))
        return ref_sem(&g_ref, "wrong_type", ex, def->name, strlen(def->name));
    double v = json_number_value(va);
    r->raw[i * ND + f] = v;
    r->dense[i * ND + f] = ctr_features_dense(def, v);
    return 0;
}

/* Feature j of example i has no value: row 0, or an empty bag. */
static void ref_cat_absent(ref_t *r, size_t i, size_t j)
{
    const ctr_cat_def_t *c = &g_def->cat[j];
    size_t w = c->bag_max ? c->bag_max : 1;
    for (size_t t = 0; t < w; t++) {
        size_t k = i * NS + g_slot_of[j] + t;
        r->rows[k] = c->bag_max ? CTR_EMPTY_SLOT : CTR_MISSING_ROW;
        r->clen[k] = CTR_CAT_MISSING_LEN;
    }
}

/* docs/DECODER.md: a `mod` string is 1 to 16 hex digits, either case. */
static int ref_hex(const char *s, size_t len, uint64_t *v)
{
    char buf[17];
    if (len < 1 || len > 16)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (!s[i] || !strchr("0123456789abcdefABCDEF", s[i]))
            return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    *v = strtoull(buf, NULL, 16);
    return 0;
}

/* A present value's bytes into slot `slot` of example i. */
static int ref_put(ref_t *r, size_t i, size_t j, size_t slot, const char *b, size_t len, long ex)
{
    const ctr_cat_def_t *c = &g_def->cat[j];
    size_t k = i * NS + slot;
    uint32_t row;
    if (c->mapping == CTR_MAP_MOD) {
        uint64_t v;
        if (ref_hex(b, len, &v))
            return ref_sem(&g_ref, "invalid_value", ex, c->name, strlen(c->name));
        row = (uint32_t)(v % ((uint64_t)c->buckets + 1));
    } else {
        row = ctr_features_cat_row(c, b, len);
    }
    memcpy(r->cbytes[k], b, len);
    r->clen[k] = (uint8_t)len;
    r->rows[k] = row;
    return 0;
}

/* One value of categorical feature j (not null) into slot `slot` of
 * example i. v2_dt: 0 v1, 1 BYTES, 2 INT64. bag_v2: a v2 bag input,
 * where "" and -1 are padding (*present = 0). vb: the same value parsed
 * with integers, or NULL when that parse failed on a too-big integer. */
static int ref_cat_elem(ref_t *r, size_t i, size_t j, size_t slot, const json_t *va,
                        const json_t *vb, long ex, int v2_dt, int bag_v2, int *present)
{
    const ctr_cat_def_t *c = &g_def->cat[j];
    *present = 1;
    if (json_is_string(va) && v2_dt != 2) {
        size_t len = json_string_length(va);
        if (len > CTR_MAX_CAT_BYTES)
            return ref_sem(&g_ref, "string_too_long", ex, c->name, strlen(c->name));
        if (v2_dt == 1 && len == 0) {
            *present = 0;
            return 0;
        }
        return ref_put(r, i, j, slot, json_string_value(va), len, ex);
    }
    if (json_is_number(va) && v2_dt != 1) {
        if (!vb) {
            g_ref.verdict = REF_LIMITED_INT;
            return -1;
        }
        if (!json_is_integer(vb))
            return ref_sem(&g_ref, "wrong_type", ex, c->name, strlen(c->name));
        int64_t v = json_integer_value(vb);
        if (bag_v2 && v == -1) {
            *present = 0;
            return 0;
        }
        char tmp[32];
        if (c->mapping == CTR_MAP_MOD) {
            if (v < 0)
                return ref_sem(&g_ref, "invalid_value", ex, c->name, strlen(c->name));
            snprintf(tmp, sizeof tmp, "%llx", (unsigned long long)v);
        } else {
            snprintf(tmp, sizeof tmp, "%lld", (long long)v);
        }
        return ref_put(r, i, j, slot, tmp, strlen(tmp), ex);
    }
    return ref_sem(&g_ref, "wrong_type", ex, c->name, strlen(c->name));
}

/* v1: categorical feature j of example i (the context: row 0 of g_ctx).
 * A bag takes an array (or one value: a bag of one; null: empty). */
static int ref_cat_v1(ref_t *r, size_t i, size_t j, const json_t *va, const json_t *vb, long ex)
{
    const ctr_cat_def_t *c = &g_def->cat[j];
    int present;
    if (json_is_null(va)) {
        ref_cat_absent(r, i, j);
        return 0;
    }
    if (json_is_array(va)) {
        if (!c->bag_max)
            return ref_sem(&g_ref, "wrong_type", ex, c->name, strlen(c->name));
        ref_cat_absent(r, i, j);
        size_t m = 0;
        for (size_t e = 0; e < json_array_size(va); e++) {
            const json_t *ea = json_array_get(va, e);
            if (!json_is_string(ea) && !json_is_number(ea))
                return ref_sem(&g_ref, "wrong_type", ex, c->name, strlen(c->name));
            if (m == c->bag_max)
                return ref_sem(&g_ref, "bag_too_long", ex, c->name, strlen(c->name));
            if (ref_cat_elem(r, i, j, g_slot_of[j] + m, ea, vb ? json_array_get(vb, e) : NULL,
                             ex, 0, 0, &present))
                return -1;
            m++;
        }
        return 0;
    }
    if (!json_is_string(va) && !json_is_number(va))
        return ref_sem(&g_ref, "wrong_type", ex, c->name, strlen(c->name));
    if (c->bag_max)
        ref_cat_absent(r, i, j);
    return ref_cat_elem(r, i, j, g_slot_of[j], va, vb, ex, 0, 0, &present);
}

static int ref_features(const json_t *oa, const json_t *ob, long ex)
{
    ref_t *r = ex >= 0 ? &g_ref : &g_ctx;
    size_t i = ex >= 0 ? (size_t)ex : 0;
    unsigned char *has = ex >= 0 ? g_ref.ex_has[i] : g_ref.ctx_has;
    const char *k;
    json_t *va;
    memset(has, 0, ND + NC);
    json_object_foreach((json_t *)oa, k, va) {
        size_t klen = strlen(k);
        long f = ref_find(k, klen);
        if (f < 0)
            return ref_sem(&g_ref, "unknown_feature", ex, k, klen);
        has[f] = 1;
        const json_t *vb = ob ? json_object_get(ob, k) : NULL;
        int rc = (size_t)f < g_nd ? ref_dense(r, i, (size_t)f, va, ex)
                                  : ref_cat_v1(r, i, (size_t)f - g_nd, va, vb, ex);
        if (rc)
            return rc;
    }
    return 0;
}

static int ref_request_id(const json_t *v, ref_t *r)
{
    if (json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return ref_sem(r, "bad_request_id", -1, NULL, 0);
    size_t len = json_string_length(v);
    const char *s = json_string_value(v);
    if (len > CTR_REQUEST_ID_MAX)
        return ref_sem(r, "bad_request_id", -1, NULL, 0);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F)
            return ref_sem(r, "bad_request_id", -1, NULL, 0);
    memcpy(r->rid, s, len);
    r->rid[len] = '\0';
    r->has_rid = 1;
    return 0;
}

static int ref_v1_walk(const json_t *a, const json_t *b)
{
    ref_t *r = &g_ref;
    int seen_ex = 0;
    const char *k;
    json_t *va;
    if (!json_is_object(a))
        return ref_sem(r, "wrong_type", -1, NULL, 0);
    json_object_foreach((json_t *)a, k, va) {
        const json_t *vb = b ? json_object_get(b, k) : NULL;
        if (!strcmp(k, "examples")) {
            seen_ex = 1;
            if (json_is_null(va))
                return ref_sem(r, "missing_examples", -1, NULL, 0);
            if (!json_is_array(va))
                return ref_sem(r, "wrong_type", -1, NULL, 0);
            if (json_array_size(va) == 0)
                return ref_sem(r, "missing_examples", -1, NULL, 0);
            for (size_t i = 0; i < json_array_size(va); i++) {
                if (i >= MAX_EX)
                    return ref_sem(r, "too_many_examples", (long)i, NULL, 0);
                const json_t *ea = json_array_get(va, i);
                if (!json_is_object(ea))
                    return ref_sem(r, "wrong_type", (long)i, NULL, 0);
                if (ref_features(ea, vb ? json_array_get(vb, i) : NULL, (long)i))
                    return -1;
            }
            r->n = json_array_size(va);
        } else if (!strcmp(k, "context")) {
            if (json_is_null(va))
                continue;
            if (!json_is_object(va))
                return ref_sem(r, "wrong_type", -1, NULL, 0);
            if (ref_features(va, vb, -1))
                return -1;
        } else if (!strcmp(k, "request_id")) {
            if (ref_request_id(va, r))
                return -1;
        } else if (!strcmp(k, "model")) {
            /* A name or null; which model it names is the HTTP layer's. */
            if (!json_is_null(va) && !json_is_string(va))
                return ref_sem(r, "wrong_type", -1, NULL, 0);
        } else {
            return ref_sem(r, "unknown_field", -1, NULL, 0);
        }
    }
    if (!seen_ex)
        return ref_sem(r, "missing_examples", -1, NULL, 0);
    for (size_t i = 0; i < r->n; i++) {
        for (size_t f = 0; f < g_nd + g_nc; f++) {
            const char *name = f < g_nd ? g_def->dense[f].name : g_def->cat[f - g_nd].name;
            if (r->ex_has[i][f] && r->ctx_has[f])
                return ref_sem(r, "duplicate_feature", (long)i, name, strlen(name));
            if (r->ex_has[i][f])
                continue;
            if (f < g_nd) {
                r->raw[i * ND + f] = r->ctx_has[f] ? g_ctx.raw[f] : NAN;
                r->dense[i * ND + f] = r->ctx_has[f] ? g_ctx.dense[f]
                                                     : ctr_features_dense_missing(&g_def->dense[f]);
            } else {
                size_t j = f - g_nd, w = g_def->cat[j].bag_max ? g_def->cat[j].bag_max : 1;
                if (r->ctx_has[f]) {
                    for (size_t t = 0; t < w; t++) {
                        size_t kk = i * NS + g_slot_of[j] + t, kc = g_slot_of[j] + t;
                        r->rows[kk] = g_ctx.rows[kc];
                        r->clen[kk] = g_ctx.clen[kc];
                        memcpy(r->cbytes[kk], g_ctx.cbytes[kc], CTR_MAX_CAT_BYTES);
                    }
                } else {
                    ref_cat_absent(r, i, j);
                }
            }
        }
    }
    return 0;
}

/* v2: what one input said, checked when it is complete (decoder order). */
static void ref_leaves(const json_t *a, const json_t *b, const json_t **la, const json_t **lb,
                       size_t *n, size_t cap)
{
    if (json_is_array(a)) {
        for (size_t i = 0; i < json_array_size(a); i++)
            ref_leaves(json_array_get(a, i), b ? json_array_get(b, i) : NULL, la, lb, n, cap);
        return;
    }
    if (*n < cap) {
        la[*n] = a;
        lb[*n] = b;
    }
    (*n)++;
}

static int ref_v2_input(const json_t *ia, const json_t *ib, int *done, size_t *bsz)
/* done: [0] dense, [1] sparse, [2 + j] bag feature j */
{
    ref_t *r = &g_ref;
    const json_t *name = NULL, *dt = NULL, *shape = NULL, *shape_b = NULL, *data = NULL,
                 *data_b = NULL;
    const char *k;
    json_t *va;
    json_object_foreach((json_t *)ia, k, va) {
        const json_t *vb = ib ? json_object_get(ib, k) : NULL;
        if (!strcmp(k, "name")) {
            if (!json_is_string(va))
                return ref_sem(r, "wrong_type", -1, NULL, 0);
            name = va;
        } else if (!strcmp(k, "datatype")) {
            if (!json_is_string(va))
                return ref_sem(r, "wrong_type", -1, NULL, 0);
            dt = va;
        } else if (!strcmp(k, "shape")) {
            if (!json_is_array(va))
                return ref_sem(r, "wrong_type", -1, NULL, 0);
            for (size_t i = 0; i < json_array_size(va); i++) {
                const json_t *e = json_array_get(va, i);
                if (!json_is_number(e))
                    return ref_sem(r, "bad_shape", -1, NULL, 0);
                if (!vb) {
                    r->verdict = REF_LIMITED_INT;
                    return -1;
                }
                const json_t *eb = json_array_get(vb, i);
                if (!json_is_integer(eb) || json_integer_value(eb) < 0)
                    return ref_sem(r, "bad_shape", -1, NULL, 0);
            }
            shape = va;
            shape_b = vb;
        } else if (!strcmp(k, "data")) {
            if (!json_is_array(va))
                return ref_sem(r, "wrong_type", -1, NULL, 0);
            data = va;
            data_b = vb;
        } else if (!strcmp(k, "parameters")) {
            if (!json_is_object(va))
                return ref_sem(r, "wrong_type", -1, NULL, 0);
        } else {
            return ref_sem(r, "unknown_field", -1, NULL, 0);
        }
    }
    if (!name)
        return ref_sem(r, "missing_field", -1, NULL, 0);
    int which;        /* 0 dense, 1 sparse, 2 a bag */
    size_t bj = 0;
    const char *nm = json_string_value(name);
    size_t nmlen = json_string_length(name);
    if (nmlen == 5 && !memcmp(nm, "dense", 5)) {
        which = 0;
    } else if (nmlen == 6 && !memcmp(nm, "sparse", 6)) {
        which = 1;
    } else {
        long f = ref_find(nm, nmlen);
        if (f < (long)g_nd || !g_def->cat[f - (long)g_nd].bag_max)
            return ref_sem(r, "unknown_input", -1, NULL, 0);
        which = 2;
        bj = (size_t)f - g_nd;
    }
    if (done[which < 2 ? which : 2 + (int)bj])
        return ref_sem(r, "duplicate_input", -1, NULL, 0);
    if (!dt || !shape || !data)
        return ref_sem(r, "missing_field", -1, NULL, 0);
    const char *dts = json_string_value(dt);
    size_t dtlen = json_string_length(dt);
    int dtype = 0; /* v2_dt for ref_cat: 1 BYTES, 2 INT64 */
    if (which == 0) {
        if (!(dtlen == 4 && !memcmp(dts, "FP32", 4)))
            return ref_sem(r, "bad_datatype", -1, NULL, 0);
    } else if (dtlen == 5 && !memcmp(dts, "BYTES", 5)) {
        dtype = 1;
    } else if (dtlen == 5 && !memcmp(dts, "INT64", 5)) {
        dtype = 2;
    } else {
        return ref_sem(r, "bad_datatype", -1, NULL, 0);
    }
    size_t n = which == 0 ? g_nd : g_n_single;
    if (json_array_size(shape) != 2)
        return ref_sem(r, "bad_shape", -1, NULL, 0);
    uint64_t d0 = (uint64_t)json_integer_value(json_array_get(shape_b, 0));
    uint64_t d1 = (uint64_t)json_integer_value(json_array_get(shape_b, 1));
    if (which == 2) {
        if (d1 > g_def->cat[bj].bag_max)
            return ref_sem(r, "bad_shape", -1, nm, nmlen);
        n = (size_t)d1;
    } else if (d1 != n) {
        return ref_sem(r, "bad_shape", -1, NULL, 0);
    }
    if (d0 == 0)
        return ref_sem(r, "bad_shape", -1, NULL, 0);
    if (d0 > MAX_EX)
        return ref_sem(r, "too_many_examples", -1, NULL, 0);
    if (*bsz && d0 != *bsz)
        return ref_sem(r, "bad_shape", -1, NULL, 0);
    static const json_t *la[MAX_EX * (ND + NC)], *lb[MAX_EX * (ND + NC)];
    size_t leaves = 0;
    ref_leaves(data, data_b, la, lb, &leaves, MAX_EX * (ND + NC));
    if (leaves != d0 * n)
        return ref_sem(r, "bad_shape", -1, NULL, 0);
    *bsz = d0;
    r->n = d0;
    size_t m = 0;
    for (size_t q = 0; q < leaves; q++) {
        size_t i = q / n, t = q % n;
        if (which == 0) {
            if (ref_dense(r, i, t, la[q], (long)i))
                return -1;
            continue;
        }
        size_t j = which == 1 ? g_single[t] : bj;
        if (t == 0)
            m = 0;
        int present = 0;
        if (!json_is_null(la[q]) &&
            ref_cat_elem(r, i, j, g_slot_of[j] + (which == 2 ? m : 0), la[q],
                         data_b ? lb[q] : NULL, (long)i, dtype, which == 2, &present))
            return -1;
        if (which == 1 && !present)
            ref_cat_absent(r, i, j);
        m += present;
    }
    done[which < 2 ? which : 2 + (int)bj] = 1;
    return 0;
}

static int ref_v2_output(const json_t *o)
{
    ref_t *r = &g_ref;
    const json_t *name = NULL;
    const char *k;
    json_t *va;
    json_object_foreach((json_t *)o, k, va) {
        if (!strcmp(k, "name")) {
            if (!json_is_string(va))
                return ref_sem(r, "wrong_type", -1, NULL, 0);
            name = va;
        } else if (!strcmp(k, "parameters")) {
            if (!json_is_object(va))
                return ref_sem(r, "wrong_type", -1, NULL, 0);
        } else {
            return ref_sem(r, "unknown_field", -1, NULL, 0);
        }
    }
    if (!name)
        return ref_sem(r, "missing_field", -1, NULL, 0);
    if (!(json_string_length(name) == 5 && !memcmp(json_string_value(name), "score", 5)))
        return ref_sem(r, "unknown_output", -1, NULL, 0);
    return 0;
}

static int ref_v2_walk(const json_t *a, const json_t *b)
{
    ref_t *r = &g_ref;
    int done[2 + NC] = {0};
    size_t bsz = 0;
    /* A bag input not sent: every example's bag is empty. */
    for (size_t i = 0; i < MAX_EX; i++)
        for (size_t j = 0; j < NC; j++)
            if (g_def->cat[j].bag_max)
                ref_cat_absent(r, i, j);
    const char *k;
    json_t *va;
    if (!json_is_object(a))
        return ref_sem(r, "wrong_type", -1, NULL, 0);
    json_object_foreach((json_t *)a, k, va) {
        const json_t *vb = b ? json_object_get(b, k) : NULL;
        if (!strcmp(k, "id")) {
            if (ref_request_id(va, r))
                return -1;
        } else if (!strcmp(k, "inputs") || !strcmp(k, "outputs")) {
            int in = k[0] == 'i';
            if (!json_is_array(va))
                return ref_sem(r, "wrong_type", -1, NULL, 0);
            for (size_t i = 0; i < json_array_size(va); i++) {
                const json_t *e = json_array_get(va, i);
                if (!json_is_object(e))
                    return ref_sem(r, "wrong_type", -1, NULL, 0);
                int rc = in ? ref_v2_input(e, vb ? json_array_get(vb, i) : NULL, done, &bsz)
                            : ref_v2_output(e);
                if (rc)
                    return rc;
            }
        } else if (!strcmp(k, "parameters")) {
            if (!json_is_object(va))
                return ref_sem(r, "wrong_type", -1, NULL, 0);
        } else {
            return ref_sem(r, "unknown_field", -1, NULL, 0);
        }
    }
    if ((g_nd && !done[0]) || (g_n_single && !done[1]) || !bsz)
        return ref_sem(r, "missing_input", -1, NULL, 0);
    return 0;
}

void ref_run(int v2, const char *body, size_t len)
{
    ref_t *r = &g_ref;
    json_t *a, *b;
    r->verdict = REF_OK;
    r->name = NULL;
    r->n = 0;
    r->has_rid = 0;
    r->rid[0] = '\0';
    memset(r->ctx_has, 0, sizeof(r->ctx_has));
    if (ref_parse(body, len, &a, &b, r))
        return;
    if (v2)
        ref_v2_walk(a, b);
    else
        ref_v1_walk(a, b);
    json_decref(a);
    json_decref(b);
}

/* ---- comparing --------------------------------------------------------- */

ref_stats_t ref_stats;

/* docs/DECODER.md "Error names and codes". */
static const struct {
    const char *name;
    int code;
} ref_codes[] = {
    {"malformed_json", CTR_EFORMAT},   {"invalid_utf8", CTR_EFORMAT},
    {"nesting_too_deep", CTR_EFORMAT}, {"number_out_of_range", CTR_ERANGE},
    {"string_too_long", CTR_ERANGE},   {"wrong_type", CTR_EINVAL},
    {"unknown_feature", CTR_EINVAL},   {"unknown_field", CTR_EINVAL},
    {"duplicate_key", CTR_EINVAL},     {"duplicate_feature", CTR_EINVAL},
    {"bad_request_id", CTR_EINVAL},    {"missing_examples", CTR_EINVAL},
    {"missing_field", CTR_EINVAL},     {"unknown_input", CTR_EINVAL},
    {"duplicate_input", CTR_EINVAL},   {"missing_input", CTR_EINVAL},
    {"bad_datatype", CTR_EINVAL},      {"bad_shape", CTR_EINVAL},
    {"unknown_output", CTR_EINVAL},    {"too_many_examples", CTR_ETOOBIG},
    {"body_too_large", CTR_ETOOBIG},   {"out_of_memory", CTR_ENOMEM},
    {"internal_error", CTR_EINTERNAL}, {"bag_too_long", CTR_ERANGE},
    {"invalid_value", CTR_EINVAL},
};

int ref_error_code(const char *name)
{
    for (size_t i = 0; name && i < CTR_ARRAY_LEN(ref_codes); i++)
        if (!strcmp(name, ref_codes[i].name))
            return ref_codes[i].code;
    return 0;
}

static int is_syntax_name(const char *c)
{
    return c && (!strcmp(c, "malformed_json") || !strcmp(c, "invalid_utf8") ||
                 !strcmp(c, "number_out_of_range") || !strcmp(c, "nesting_too_deep"));
}

static int bits_eq_f(float a, float b)
{
    return !memcmp(&a, &b, sizeof(a));
}

static int bits_eq_d(double a, double b)
{
    return !memcmp(&a, &b, sizeof(a));
}

int ref_compare(int v2, const char *body0, size_t len, char *why, size_t whylen)
{
    ctr_request_t req;
    ctr_decode_error_t e;
    /* An exact-size copy: ASan catches any read past len. */
    char *body = malloc(len ? len : 1);
    memcpy(body, body0, len);
    int rc = v2 ? ctr__decode_v2(g_m, body, len, &ref_lim, &req, &e)
                : ctr__decode_v1(g_m, body, len, &ref_lim, &req, &e);
    ref_t *r = &g_ref;
    ref_run(v2, body, len);
    int good = 1;
    if (whylen)
        why[0] = '\0';
    const char *name = e.name ? e.name : "(none)";
    ref_stats.total++;

    if (rc != 0 && e.name && !strcmp(e.name, "internal_error"))
        good = 0, snprintf(why, whylen, "internal_error: %.300s", e.message);
    /* Every error: the code its name has, and a client status from it. */
    if (rc != 0 && good && rc != ref_error_code(e.name))
        good = 0, snprintf(why, whylen, "error %s came with rc %d (%s), not %d", name, rc,
                           ctr_strerror(rc), ref_error_code(e.name));
    switch (r->verdict) {
    case REF_LIMITED_DUP:
        ref_stats.limited++;
        /* jansson saw a duplicate key or a NUL in a key; only ignored
         * "parameters" content may hold those in a valid body. */
        if (rc == 0 && (!v2 || !memmem(body, len, "parameters", 10)))
            good = 0, snprintf(why, whylen, "accepted a duplicate/NUL key");
        break;
    case REF_LIMITED_INT:
        ref_stats.limited++;
        break;
    case REF_SYNTAX:
        ref_stats.syntax++;
        if (rc == 0 || !is_syntax_name(e.name))
            good = 0, snprintf(why, whylen, "reference: broken JSON; decoder: rc %d %s", rc,
                               rc ? name : "accepted");
        else if (ctr__http_status(rc, CTR__SUBJECT_REQUEST) != 400 || e.example != -1 ||
                 !strstr(e.message, "byte "))
            good = 0, snprintf(why, whylen, "syntax error report: %d %ld \"%.300s\"",
                               ctr__http_status(rc, CTR__SUBJECT_REQUEST), e.example, e.message);
        break;
    case REF_SEMANTIC:
        ref_stats.semantic++;
        if (rc == 0 || strcmp(e.name, r->name) || e.example != r->example ||
            strcmp(e.feature, r->feature) ||
            ctr__http_status(rc, CTR__SUBJECT_REQUEST) != r->status)
            good = 0, snprintf(why, whylen,
                               "reference: %.40s ex %ld feat \"%.64s\"; decoder: rc %d %s ex %ld "
                               "feat \"%s\" (%.300s)",
                               r->name, r->example, r->feature, rc, rc ? name : "accepted",
                               e.example, e.feature, e.message);
        break;
    default:
        ref_stats.ok++;
        if (rc != 0) {
            good = 0;
            snprintf(why, whylen, "reference accepted; decoder: %s (%.300s)", name, e.message);
            break;
        }
        if (req.n != r->n || req.n_dense != g_nd || req.n_cat != g_ns ||
            req.has_request_id != r->has_rid || strcmp(req.request_id, r->rid)) {
            good = 0;
            snprintf(why, whylen, "n %zu/%zu or request_id \"%.130s\"/\"%.130s\" differ", req.n,
                     r->n, req.request_id, r->rid);
            break;
        }
        for (size_t k = 0; good && k < req.n * g_nd; k++)
            if (!bits_eq_f(req.dense[k], r->dense[k]) || !bits_eq_d(req.dense_raw[k], r->raw[k]))
                good = 0, snprintf(why, whylen, "dense [%zu][%zu]: %.17g/%a vs %.17g/%a",
                                   k / g_nd, k % g_nd, req.dense_raw[k], (double)req.dense[k],
                                   r->raw[k], (double)r->dense[k]);
        for (size_t k = 0; good && k < req.n * g_ns; k++) {
            size_t rk = k / g_ns * NS + k % g_ns;
            int same = req.rows[k] == r->rows[rk] && req.cat_len[k] == r->clen[rk];
            if (same && r->clen[rk] != CTR_CAT_MISSING_LEN)
                same = !memcmp(req.cat_bytes + req.cat_off[k], r->cbytes[rk], r->clen[rk]);
            if (!same)
                good = 0, snprintf(why, whylen, "categorical [%zu] slot %zu: row %u/%u len %u/%u",
                                   k / g_ns, k % g_ns, req.rows[k], r->rows[rk], req.cat_len[k],
                                   r->clen[rk]);
        }
        for (size_t i = 0; good && i < req.n; i++)
            if (req.scores[i] != 0.0f)
                good = 0, snprintf(why, whylen, "scores not zeroed");
    }
    if (rc != 0 && (req.arena || req.n || req.dense))
        good = 0, snprintf(why, whylen, "a refused request left its arrays set");
    ctr__request_release(&req);
    if (req.arena)
        good = 0, snprintf(why, whylen, "ctr__request_release left the arena set");
    free(body);
    return good;
}

void ref_patch_feature(const ctr_model_t *m, size_t j, uint32_t bag_max, ctr_pool_t pool,
                       ctr_mapping_t map)
{
    struct ctr_model *mm = (struct ctr_model *)m;
    CTR_ASSERT(j < mm->def.n_cat && mm->def.cat == mm->cat);
    mm->cat[j].bag_max = bag_max;
    mm->cat[j].pool = pool;
    mm->cat[j].mapping = map;
}

static ctr_model_t *open_model(const char *file)
{
    ctr_model_t *m = NULL;
    char path[512], err[256];
    const uint32_t hidden[1] = {8};
    snprintf(path, sizeof(path), "%s/%s", test_tmpdir(), file);
    mkdir(test_tmpdir(), 0700); /* removed after an earlier model */
    if (test_make_model(path, 7, REF_ND, REF_NC, 1000, 4, hidden, 1, CTR_ACT_SMELU, 1.0f) ||
        ctr_model_open(path, &m, err, sizeof(err))) {
        fprintf(stderr, "decode_ref: cannot make the test model\n");
        abort();
    }
    /* The mapping outlives the name. */
    remove(path);
    rmdir(test_tmpdir());
    return m;
}

const ctr_model_t *ref_open_test_model(void)
{
    static ctr_model_t *m;
    if (!m)
        m = open_model("decode_ref.ctrm");
    ref_init(m);
    return m;
}

const ctr_model_t *ref_open_bag_model(void)
{
    static ctr_model_t *m;
    if (!m) {
        m = open_model("decode_ref_bags.ctrm");
        ref_patch_feature(m, 0, 4, CTR_POOL_SUM, CTR_MAP_HASH);
        ref_patch_feature(m, 1, 0, CTR_POOL_SUM, CTR_MAP_MOD);
        ref_patch_feature(m, 2, 3, CTR_POOL_MEAN, CTR_MAP_MOD);
        ref_patch_feature(m, 25, 2, CTR_POOL_SUM, CTR_MAP_HASH);
    }
    ref_init(m);
    return m;
}

/* ---- binary tensor data: a request is its JSON form ---------------------- */

static void json_bytes(ctr__buf_t *b, const char *s, size_t n)
{
    ctr__buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            ctr__buf_printf(b, "\\%c", c);
        else if (c < 0x20)
            ctr__buf_printf(b, "\\u%04x", c);
        else
            ctr__buf_putc(b, (char)c);
    }
    ctr__buf_putc(b, '"');
}

/* Slot k of example i as a BYTES element: its raw text, or null. */
static void json_slot(ctr__buf_t *b, const ctr_request_t *r, size_t i, size_t k)
{
    size_t at = i * r->n_cat + k;
    if (r->cat_len[at] == CTR_CAT_MISSING_LEN)
        ctr__buf_puts(b, "null");
    else
        json_bytes(b, r->cat_bytes + r->cat_off[at], r->cat_len[at]);
}

/* The JSON form of a decoded request: "dense", "sparse" (the
 * single-valued features) and one input per bag, [n, bag_max], its empty
 * slots null. */
static void to_json(ctr__buf_t *b, const ctr_model_def_t *def, const ctr_request_t *r)
{
    size_t n_single = 0;
    for (size_t j = 0; j < def->n_cat; j++)
        n_single += !def->cat[j].bag_max;
    ctr__buf_puts(b, "{");
    if (r->has_request_id) {
        ctr__buf_puts(b, "\"id\":");
        json_bytes(b, r->request_id, strlen(r->request_id));
        ctr__buf_puts(b, ",");
    }
    ctr__buf_printf(b, "\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[%zu,%zu],"
                       "\"data\":[",
                    r->n, r->n_dense);
    for (size_t k = 0; k < r->n * r->n_dense; k++) {
        if (k)
            ctr__buf_putc(b, ',');
        if (isnan(r->dense_raw[k]))
            ctr__buf_puts(b, "null");
        else
            ctr__buf_printf(b, "%.17g", r->dense_raw[k]);
    }
    ctr__buf_printf(b, "]},{\"name\":\"sparse\",\"datatype\":\"BYTES\",\"shape\":[%zu,%zu],\"data\":[",
                    r->n, n_single);
    int first = 1;
    for (size_t i = 0; i < r->n; i++)
        for (size_t j = 0, k = 0; j < def->n_cat; k += def->cat[j].bag_max ? def->cat[j].bag_max : 1, j++) {
            if (def->cat[j].bag_max)
                continue;
            if (!first)
                ctr__buf_putc(b, ',');
            first = 0;
            json_slot(b, r, i, k);
        }
    ctr__buf_puts(b, "]}");
    for (size_t j = 0, k = 0; j < def->n_cat; k += def->cat[j].bag_max ? def->cat[j].bag_max : 1, j++) {
        const ctr_cat_def_t *c = &def->cat[j];
        if (!c->bag_max)
            continue;
        ctr__buf_puts(b, ",{\"name\":");
        json_bytes(b, c->name, strlen(c->name));
        ctr__buf_printf(b, ",\"datatype\":\"BYTES\",\"shape\":[%zu,%u],\"data\":[", r->n, c->bag_max);
        for (size_t i = 0; i < r->n; i++)
            for (size_t t = 0; t < c->bag_max; t++) {
                if (i || t)
                    ctr__buf_putc(b, ',');
                json_slot(b, r, i, k + t);
            }
        ctr__buf_puts(b, "]}");
    }
    ctr__buf_printf(b, "],\"outputs\":[{\"name\":\"score\",\"parameters\":{\"binary_data\":%s}}]}",
                    r->binary_output ? "true" : "false");
}

int ref_same_request(const ctr_request_t *a, const ctr_request_t *b)
{
    size_t nd = a->n * a->n_dense, nc = a->n * a->n_cat;
    if (a->n != b->n || a->n_dense != b->n_dense || a->n_cat != b->n_cat ||
        a->has_request_id != b->has_request_id || strcmp(a->request_id, b->request_id) ||
        a->binary_output != b->binary_output)
        return 0;
    if (memcmp(a->dense, b->dense, nd * sizeof(float)) || memcmp(a->rows, b->rows, nc * sizeof(uint32_t)) ||
        memcmp(a->cat_len, b->cat_len, nc))
        return 0;
    for (size_t k = 0; k < nd; k++) {
        double x = a->dense_raw[k], y = b->dense_raw[k];
        if (isnan(x) ? !isnan(y) : memcmp(&x, &y, sizeof x))
            return 0;
    }
    for (size_t k = 0; k < nc; k++)
        if (a->cat_len[k] != CTR_CAT_MISSING_LEN &&
            memcmp(a->cat_bytes + a->cat_off[k], b->cat_bytes + b->cat_off[k], a->cat_len[k]))
            return 0;
    return 1;
}

int ref_binary_check(const ctr_model_t *m, const uint8_t *data, size_t size, char *why,
                     size_t whylen)
{
    if (size < 2)
        return 1;
    size_t hl = (size_t)data[0] | (size_t)data[1] << 8;
    size_t len = size - 2;
    /* An exact-size copy: ASan sees any read past the body. */
    char *body = malloc(len ? len : 1);
    if (!body)
        return 1;
    memcpy(body, data + 2, len);
    ctr_request_t req;
    ctr_decode_error_t e;
    int rc = ctr__decode_v2_binary(m, body, len, hl, &ref_lim, &req, &e);
    free(body);
    if (rc) {
        int st = ctr__http_status(rc, CTR__SUBJECT_REQUEST);
        if (!e.name || !e.message[0])
            return snprintf(why, whylen, "a rejection without a name or message"), 0;
        if (st != 400 && st != 413)
            return snprintf(why, whylen, "a rejection that is not the client's fault: status %d, "
                                         "%s: %.300s", st, e.name, e.message), 0;
        return 1;
    }
    int good = 1;
    if (req.n == 0 || req.n > ref_lim.max_examples)
        good = 0, snprintf(why, whylen, "accepted with a bad example count");
    for (size_t k = 0; good && k < req.n * req.n_cat; k++)
        if (req.cat_len[k] != CTR_CAT_MISSING_LEN && req.cat_len[k] > CTR_MAX_CAT_BYTES)
            good = 0, snprintf(why, whylen, "a categorical value over the limit");
    ctr__buf_t b;
    if (!good || ctr__buf_init(&b, 4096)) {
        ctr__request_release(&req);
        return good;
    }
    to_json(&b, ctr_model_def(m), &req);
    if (!b.failed) {
        ctr_request_t jr;
        ctr_decode_error_t je;
        rc = ctr__decode_v2(m, b.p, b.len, &ref_lim, &jr, &je);
        if (rc) {
            good = 0;
            snprintf(why, whylen, "the JSON form of an accepted binary request is rejected: %s: "
                                  "%.200s; JSON form: %.200s",
                     je.name, je.message, b.p);
        } else {
            if (!ref_same_request(&req, &jr))
                good = 0, snprintf(why, whylen, "the JSON form decodes to a different request: "
                                                "%.300s", b.p);
            ctr__request_release(&jr);
        }
    }
    ctr__request_release(&req);
    ctr__buf_free(&b);
    return good;
}
