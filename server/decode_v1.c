/* decode_v1.c - the /v1/score body: {"request_id", "context", "examples"}
 * (docs/DECODER.md "v1"), read in one pass into the arena decode.c sized
 * from the body's '{' count. Feature objects are the hot loop: each key is
 * resolved to a schema index (the next name in schema order first, then
 * the model's hash index) and its value converted in place; the context is
 * merged into every example at the end (v1_finish). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/features.h"
#include "decode_int.h"
#include "json_scan.h"

/* Feature index of a key, or -1. Bodies usually list features in schema
 * order, so the one after the last match is tried before hashing. */
static long lookup(ctr__dec_t *d, const char *k, size_t klen)
{
    if (klen > CTR__DEC_KEY_CAP)
        return -1;
    size_t g = d->guess;
    if (g < d->nf) {
        const char *name = ctr__dec_feat_name(d, g);
        size_t i = 0;
        while (i < klen && name[i] && name[i] == k[i])
            i++;
        if (i == klen && !name[i]) {
            d->guess = g + 1;
            return (long)g;
        }
    }
    long f = ctr_model_find_feature(d->m, k, klen);
    if (f >= 0)
        d->guess = (size_t)f + 1;
    return f;
}

/* A bag's array (p at its '['): strings and integers, at most bag_max,
 * into the feature's first slots in order; the rest stay empty. */
static const uchar *bag_array(ctr__dec_t *d, const uchar *p, size_t j, const ctr__dec_slots_t *s,
                              long ex)
{
    const uchar *end = d->sc.end;
    const ctr_cat_def_t *c = &d->def->cat[j];
    size_t k0 = d->slot_of[j], m = 0;
    ctr__dec_cat_absent(d, s, j);
    p = ctr__json_ws(p + 1, end);
    if (p < end && *p == ']')
        return p + 1;
    for (;;) {
        if (p >= end)
            return SYN(d, p, "unexpected end of body, expected a value");
        if (*p == '"' || ctr__json_is_num_start(*p)) {
            if (m == c->bag_max)
                return ctr__dec_sem(d, CTR_ERANGE, "bag_too_long", ex, c->name, strlen(c->name),
                                    "%sfeature \"%s\": more than %u values in its bag",
                                    ctr__dec_where(d, ex), c->name, c->bag_max);
            p = *p == '"' ? ctr__dec_cat_string(d, p, j, k0 + m, s, ex)
                          : ctr__dec_cat_int(d, p, j, k0 + m, s, ex, NULL);
            if (!p)
                return NULL;
            m++;
        } else {
            const char *what = *p == '[' ? "a nested array" : *p == '{' ? "an object"
                             : *p == 'n' ? "null" : "a boolean";
            if (*p == 'n' && !ctr__json_lit(p, end, "null", 4))
                return SYN(d, p, "invalid literal");
            return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", ex, c->name, strlen(c->name),
                                "%sfeature \"%s\" is a bag: its elements must be strings or "
                                "integers, not %s (element %zu)",
                                ctr__dec_where(d, ex), c->name, what, m);
        }
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

/* Categorical feature j: a string, an integer or null; a bag also takes
 * an array of strings and integers (a single value is a bag of one, null
 * an empty bag). */
static const uchar *cat_value(ctr__dec_t *d, const uchar *p, size_t j, const ctr__dec_slots_t *s,
                              long ex)
{
    const ctr_cat_def_t *c = &d->def->cat[j];
    size_t k = d->slot_of[j];
    if (*p == '"' || ctr__json_is_num_start(*p)) {
        /* A bag of one: its other slots empty (first, so that the value
         * is a tail call: the hot path of every categorical value). */
        if (c->bag_max)
            ctr__dec_cat_absent(d, s, j);
        if (*p == '"')
            return ctr__dec_cat_string(d, p, j, k, s, ex);
        return ctr__dec_cat_int(d, p, j, k, s, ex, NULL);
    }
    if (*p == 'n') {
        if (!ctr__json_lit(p, d->sc.end, "null", 4))
            return SYN(d, p, "invalid literal");
        ctr__dec_cat_absent(d, s, j);
        return p + 4;
    }
    if (*p == '[' && c->bag_max)
        return bag_array(d, p, j, s, ex);
    return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", ex, c->name, strlen(c->name),
                        c->bag_max ? "%sfeature \"%s\" is a bag: expected an array of strings "
                                     "and integers, a string, an integer or null"
                        : *p == '[' ? "%sfeature \"%s\" is categorical, not a bag: expected a "
                                      "string, an integer or null, not an array"
                                    : "%sfeature \"%s\" is categorical: expected a string, an "
                                      "integer or null",
                        ctr__dec_where(d, ex), c->name);
}

/* One v1 feature object: the context (ex = -1) or examples[ex]. */
static const uchar *features_object(ctr__dec_t *d, const uchar *p, long ex)
{
    const uchar *end = d->sc.end;
    ctr__dec_slots_t s;
    uint64_t *pres;
    char kbuf[CTR__DEC_KEY_CAP];

    if (ex >= 0) {
        s = ctr__dec_example_slots(d, (size_t)ex);
        pres = d->pres + (size_t)ex * d->words;
        memset(pres, 0, d->words * sizeof(uint64_t));
    } else {
        s = (ctr__dec_slots_t){d->ctx_raw, d->ctx_enc, d->ctx_row, d->ctx_off, d->ctx_len};
        pres = d->ctx_pres;
    }
    d->guess = 0;
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
        long f = lookup(d, k, klen);
        if (f < 0)
            return ctr__dec_sem(d, CTR_EINVAL, "unknown_feature", ex, k,
                                klen < CTR__DEC_KEY_CAP ? klen : CTR__DEC_KEY_CAP,
                                "%sunknown feature \"%.*s\"", ctr__dec_where(d, ex),
                                (int)(klen < 64 ? klen : 64), k);
        uint64_t bit = 1ull << (f % 64);
        if (pres[f / 64] & bit)
            return ctr__dec_sem(d, CTR_EINVAL, "duplicate_key", ex, k, klen,
                                "%sfeature \"%s\" appears twice", ctr__dec_where(d, ex),
                                ctr__dec_feat_name(d, (size_t)f));
        pres[f / 64] |= bit;
        if (!(p = ctr__dec_colon(d, p)))
            return NULL;
        if ((size_t)f < d->nd)
            p = ctr__dec_dense_value(d, p, (size_t)f, &s, ex);
        else
            p = cat_value(d, p, (size_t)f - d->nd, &s, ex);
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

static const uchar *examples_array(ctr__dec_t *d, const uchar *p)
{
    const uchar *end = d->sc.end;
    if (*p == 'n' && ctr__json_lit(p, end, "null", 4))
        return ctr__dec_sem(d, CTR_EINVAL, "missing_examples", -1, NULL, 0,
                            "\"examples\" is null");
    if (*p != '[')
        return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", -1, NULL, 0,
                            "\"examples\" must be an array of objects");
    p = ctr__json_ws(p + 1, end);
    if (p < end && *p == ']')
        return ctr__dec_sem(d, CTR_EINVAL, "missing_examples", -1, NULL, 0,
                            "\"examples\" is empty");
    for (size_t i = 0;; i++) {
        if (i >= d->max_examples)
            return ctr__dec_sem(d, CTR_ETOOBIG, "too_many_examples", (long)i, NULL, 0,
                                "more than %zu examples in one request", d->max_examples);
        if (p >= end || *p != '{')
            return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", (long)i, NULL, 0,
                                "examples[%zu] must be an object", i);
        CTR_ASSERT(i < d->cap); /* each example has its own '{' */
        p = features_object(d, p, (long)i);
        if (!p)
            return NULL;
        d->req->n = i + 1;
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

/* Context into every example, missing values where neither has a key; a
 * key in both is an error (the lowest example, then schema order). */
static int v1_finish(ctr__dec_t *d)
{
    ctr_request_t *r = d->req;
    size_t nd = d->nd, w = d->words;
    for (size_t i = 0; i < r->n; i++) {
        const uint64_t *pres = d->pres + i * w;
        ctr__dec_slots_t s = ctr__dec_example_slots(d, i);
        for (size_t k = 0; k < w; k++) {
            uint64_t all = k + 1 < w || d->nf % 64 == 0 ? ~0ull : (1ull << (d->nf % 64)) - 1;
            uint64_t both = pres[k] & d->ctx_pres[k], absent = all & ~pres[k];
            if (both) {
                size_t f = k * 64 + (size_t)__builtin_ctzll(both);
                const char *name = ctr__dec_feat_name(d, f);
                ctr__dec_sem(d, CTR_EINVAL, "duplicate_feature", (long)i, name, strlen(name),
                             "examples[%zu]: feature \"%s\" is also in \"context\"", i, name);
                return -1;
            }
            while (absent) {
                size_t f = k * 64 + (size_t)__builtin_ctzll(absent);
                absent &= absent - 1;
                int in_ctx = d->ctx_pres[k] >> (f % 64) & 1;
                if (f < nd) {
                    s.raw[f] = in_ctx ? d->ctx_raw[f] : NAN;
                    s.enc[f] = in_ctx ? d->ctx_enc[f]
                                      : ctr_features_dense_missing(&d->def->dense[f]);
                } else {
                    size_t j = f - nd;
                    if (in_ctx) {
                        size_t at = d->slot_of[j], wd = ctr_features_width(&d->def->cat[j]);
                        memcpy(s.row + at, d->ctx_row + at, wd * sizeof(uint32_t));
                        memcpy(s.off + at, d->ctx_off + at, wd * sizeof(uint32_t));
                        memcpy(s.len + at, d->ctx_len + at, wd);
                    } else {
                        ctr__dec_cat_absent(d, &s, j);
                    }
                }
            }
        }
    }
    return 0;
}

static const char *const V1_KEYS[] = {"examples", "context", "request_id", "model"};
enum { V1_EXAMPLES, V1_CONTEXT, V1_REQUEST_ID, V1_MODEL };

/* "model": a string or null (the default). The HTTP layer picked the
 * model before decoding (ctr__decode_v1_model); it checks this against it. */
static const uchar *v1_model(ctr__dec_t *d, const uchar *p)
{
    ctr_request_t *r = d->req;
    size_t len;
    if (*p == 'n' && ctr__json_lit(p, d->sc.end, "null", 4))
        return p + 4;
    if (*p != '"')
        return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", -1, NULL, 0,
                            "\"model\" must be a string (a model's name) or null");
    const uchar *q = ctr__json_scan_string(&d->sc, p + 1, r->model, CTR_REQUEST_MODEL_MAX, &len);
    if (!q)
        return NULL;
    r->model[len <= CTR_REQUEST_MODEL_MAX ? len : CTR_REQUEST_MODEL_MAX] = '\0';
    r->has_model = len <= CTR_REQUEST_MODEL_MAX ? 1 : 2;
    return q;
}

int ctr__decode_v1_model(const char *body, size_t len, char *name, size_t cap, size_t *name_len)
{
    ctr__json_scan_t sc;
    ctr__json_scan_init(&sc, body, len, 64);
    const uchar *end = sc.end, *p = ctr__json_ws(sc.beg, end);
    if (p >= end || *p != '{')
        return 0;
    p = ctr__json_ws(p + 1, end);
    for (;;) {
        char key[8];
        size_t klen;
        if (p >= end || *p != '"' || !(p = ctr__json_scan_string(&sc, p + 1, key, sizeof key, &klen)))
            return 0;
        p = ctr__json_ws(p, end);
        if (p >= end || *p != ':')
            return 0;
        p = ctr__json_ws(p + 1, end);
        if (klen == 5 && !memcmp(key, "model", 5))
            return p < end && *p == '"' && ctr__json_scan_string(&sc, p + 1, name, cap, name_len) ? 1 : 0;
        if (!(p = ctr__json_skip_value(&sc, p, 1, NULL)))
            return 0;
        p = ctr__json_ws(p, end);
        if (p >= end || *p != ',')
            return 0;
        p = ctr__json_ws(p + 1, end);
    }
}

int ctr__dec_v1_parse(ctr__dec_t *d)
{
    const uchar *end = d->sc.end, *p = ctr__json_ws(d->sc.beg, end);
    unsigned seen = 0;

    if (!(p = ctr__dec_body_open(d, p)))
        return -1;
    int more = 1;
    if (p < end && *p == '}') {
        p++;
        more = 0;
    }
    while (more) {
        int which = 0;
        p = ctr__dec_top_member(d, p, V1_KEYS, 4, "request_id, model, context, examples", &seen, &which);
        if (!p)
            return -1;
        if (which == V1_EXAMPLES) {
            p = examples_array(d, p);
        } else if (which == V1_CONTEXT) {
            if (*p == '{')
                p = features_object(d, p, -1);
            else if (*p == 'n' && ctr__json_lit(p, end, "null", 4))
                p += 4;
            else
                p = ctr__dec_sem(d, CTR_EINVAL, "wrong_type", -1, NULL, 0,
                                 "\"context\" must be an object");
        } else if (which == V1_MODEL) {
            p = v1_model(d, p);
        } else {
            p = ctr__dec_request_id(d, p, "request_id");
        }
        if (!p || (more = ctr__dec_top_next(d, &p)) < 0)
            return -1;
    }
    if (ctr__dec_body_end(d, p))
        return -1;
    if (!(seen & (1u << V1_EXAMPLES)))
        return ctr__dec_sem(d, CTR_EINVAL, "missing_examples", -1, NULL, 0,
                            "\"examples\" is missing"), -1;
    return v1_finish(d);
}
