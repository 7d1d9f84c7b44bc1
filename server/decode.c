/* decode.c - request bodies (/v1/score and KServe v2 infer) to
 * ctr_request_t: the entry points and what the two readers share.
 *
 * A schema-driven JSON decoder: one pass over the body, keys resolved to
 * feature indices as they are read (the next schema name is tried first,
 * then the model's hash index), values converted in place (json_num.c for
 * numbers, strings unescaped straight into the request's byte area), and
 * one allocation per request: an arena sized before the values are read
 * (v1: examples bounded by the number of '{' in the body; v2: B from the
 * tensor shape), holding every array of ctr_request_t plus the
 * categorical bytes, whose total is bounded by the body length because
 * unescaping never lengthens a string.
 *
 * Files: json_scan.c reads JSON (strings, numbers, whitespace, any value);
 * decode_v1.c and decode_v2.c read the two body shapes; this file holds
 * the entry points, error reporting, the arena, value conversion and the
 * body's top-level object, which both shapes share (decode_int.h).
 *
 * Errors. The fast pass stops at the first problem. A semantic problem
 * (wrong type, unknown feature, ...) is only reported if the body is valid
 * JSON: on any failure the scanner's validator re-reads the whole body,
 * and its first syntax error (malformed_json, invalid_utf8,
 * number_out_of_range for a number beyond double, nesting_too_deep) wins.
 * So a client always learns about broken JSON first, at the byte where it
 * breaks, and otherwise about the first semantic problem in document order
 * (docs/DECODER.md lists the rules). Failures are the slow path; a valid
 * body is read exactly once after a memchr count of '{'. Every error is a
 * CTR_E* code (returned) plus a name, a message and where (the
 * ctr_decode_error_t); the HTTP status is ctr__http_status(code) in
 * respond.c, so each name below is given the code whose status it had.
 *
 * Nothing here recurses: v1 has a fixed shape (object, array, object,
 * scalar) and anything deeper is a type error; generic values (v2
 * "parameters", the validator) are walked with an explicit bit stack
 * bounded by the effective max_depth. */
#include "decode.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/features.h"
#include "decode_int.h"
#include "json_scan.h"

#define DEFAULT_MAX_EXAMPLES 1024
#define DEFAULT_MAX_DEPTH 64
#define MIN_MAX_DEPTH 16        /* v2 needs 5 levels; below 16 is a misconfiguration */
#define MAX_MAX_DEPTH CTR__JSON_MAX_DEPTH
#define ARENA_ALIGN 64

/* ---- error reporting --------------------------------------------------- */

/* Cuts a trailing incomplete UTF-8 sequence, so truncated names and
 * messages stay valid UTF-8 in the JSON error body. */
static void utf8_trim(char *s)
{
    size_t n = strlen(s), i = n, k = 0;
    while (i > 0 && k < 4 && ((uchar)s[i - 1] & 0xC0) == 0x80) {
        i--;
        k++;
    }
    if (i == 0)
        return;
    uchar lead = (uchar)s[i - 1];
    size_t need = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (lead >= 0x80 && k + 1 < need)
        s[i - 1] = '\0';
}

static void set_feature(ctr_decode_error_t *e, const char *name, size_t len)
{
    if (len > sizeof(e->feature) - 1)
        len = sizeof(e->feature) - 1;
    memcpy(e->feature, name, len);
    e->feature[len] = '\0';
    utf8_trim(e->feature);
}

static void reset_error(ctr_decode_error_t *e)
{
    e->name = NULL;
    e->message[0] = '\0';
    e->example = -1;
    e->feature[0] = '\0';
}

const uchar *ctr__dec_sem(ctr__dec_t *d, int code, const char *name, long example,
                          const char *feature, size_t flen, const char *fmt, ...)
{
    ctr_decode_error_t *e = d->e;
    va_list ap;
    d->stop = CTR__DEC_SEMANTIC;
    d->code = code;
    e->name = name;
    e->example = example;
    e->feature[0] = '\0';
    if (feature)
        set_feature(e, feature, flen);
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    utf8_trim(e->message);
    return NULL;
}

const char *ctr__dec_where(ctr__dec_t *d, long ex)
{
    if (d->v2)
        snprintf(d->wbuf, sizeof(d->wbuf), "example %ld: ", ex);
    else if (ex >= 0)
        snprintf(d->wbuf, sizeof(d->wbuf), "examples[%ld]: ", ex);
    else
        snprintf(d->wbuf, sizeof(d->wbuf), "context: ");
    return d->wbuf;
}

/* ---- arena ------------------------------------------------------------- */

static size_t align_up(size_t n)
{
    return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
}

/* Categorical bytes: the body length bounds them. */
int ctr__dec_arena_alloc(ctr__dec_t *d, size_t cap, int v1)
{
    ctr_request_t *r = d->req;
    size_t nd = d->nd, nc = d->nc, ns = d->ns, w = d->words;
    size_t off[20], k = 0, total = 0;
    /* Overflow: cap <= max_examples and ns <= 65535 * CTR_MAX_BAG keep
     * every product far below SIZE_MAX on a 64-bit size_t. */
#define SECTION(bytes) (off[k++] = total, total += align_up(bytes))
    SECTION(cap * nd * sizeof(float));          /* 0 dense */
    SECTION(cap * ns * sizeof(uint32_t));       /* 1 rows */
    SECTION(cap * nd * sizeof(double));         /* 2 dense_raw */
    SECTION(cap * ns * sizeof(uint32_t));       /* 3 cat_off */
    SECTION(cap * ns);                          /* 4 cat_len */
    SECTION(cap * sizeof(float));               /* 5 scores */
    SECTION(v1 ? cap * w * sizeof(uint64_t) : 0); /* 6 pres */
    SECTION(v1 ? nd * sizeof(double) : 0);      /* 7 ctx_raw */
    SECTION(v1 ? nd * sizeof(float) : 0);       /* 8 ctx_enc */
    SECTION(v1 ? ns * sizeof(uint32_t) : 0);    /* 9 ctx_row */
    SECTION(v1 ? ns * sizeof(uint32_t) : 0);    /* 10 ctx_off */
    SECTION(v1 ? ns : 0);                       /* 11 ctx_len */
    SECTION(v1 ? w * sizeof(uint64_t) : 0);     /* 12 ctx_pres */
    SECTION(nc * sizeof(uint32_t));             /* 13 slot_of */
    SECTION(nc * sizeof(uint32_t));             /* 14 single */
    SECTION(nc);                                /* 15 bag_done */
    SECTION((size_t)(d->sc.end - d->sc.beg) + d->cat_extra + 64); /* 16 cat_bytes */
#undef SECTION
    char *a = aligned_alloc(ARENA_ALIGN, total);
    if (!a) {
        d->stop = CTR__DEC_NOMEM;
        return -1;
    }
    r->arena = a;
    r->arena_size = total;
    r->dense = (float *)(a + off[0]);
    r->rows = (uint32_t *)(a + off[1]);
    r->dense_raw = (double *)(a + off[2]);
    r->cat_off = (uint32_t *)(a + off[3]);
    r->cat_len = (uint8_t *)(a + off[4]);
    r->scores = (float *)(a + off[5]);
    d->pres = (uint64_t *)(a + off[6]);
    d->ctx_raw = (double *)(a + off[7]);
    d->ctx_enc = (float *)(a + off[8]);
    d->ctx_row = (uint32_t *)(a + off[9]);
    d->ctx_off = (uint32_t *)(a + off[10]);
    d->ctx_len = (uint8_t *)(a + off[11]);
    d->ctx_pres = (uint64_t *)(a + off[12]);
    d->slot_of = (uint32_t *)(a + off[13]);
    d->single = (uint32_t *)(a + off[14]);
    d->bag_done = (uint8_t *)(a + off[15]);
    r->cat_bytes = a + off[16];
    d->cap = cap;
    d->cat_used = 0;
    size_t slot = 0, n1 = 0;
    for (size_t j = 0; j < nc; j++) {
        const ctr_cat_def_t *c = &d->def->cat[j];
        d->slot_of[j] = (uint32_t)slot;
        slot += ctr_features_width(c);
        if (!c->bag_max)
            d->single[n1++] = (uint32_t)j;
    }
    CTR_ASSERT(slot == ns && n1 == d->n_single);
    memset(d->bag_done, 0, nc);
    if (v1)
        memset(d->ctx_pres, 0, w * sizeof(uint64_t));
    else if (d->n_bags)
        for (size_t i = 0; i < cap; i++) {
            ctr__dec_slots_t s = ctr__dec_example_slots(d, i);
            for (size_t j = 0; j < nc; j++)
                if (d->def->cat[j].bag_max)
                    ctr__dec_cat_absent(d, &s, j);
        }
    return 0;
}

/* ---- values ------------------------------------------------------------ */

const uchar *ctr__dec_dense_value(ctr__dec_t *d, const uchar *p, size_t f,
                                  const ctr__dec_slots_t *s, long ex)
{
    const ctr_dense_def_t *def = &d->def->dense[f];
    if (ctr__json_is_num_start(*p)) {
        ctr__json_num_t num;
        const uchar *q = ctr__json_scan_number(&d->sc, p, CTR__NUM_WANT_DOUBLE, &num);
        if (!q)
            return NULL;
        s->raw[f] = num.d;
        s->enc[f] = ctr_features_dense(def, num.d);
        return q;
    }
    if (*p == 'n') {
        if (!ctr__json_lit(p, d->sc.end, "null", 4))
            return SYN(d, p, "invalid literal");
        s->raw[f] = NAN;
        s->enc[f] = ctr_features_dense_missing(def);
        return p + 4;
    }
    return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", ex, def->name, strlen(def->name),
                        "%sfeature \"%s\" is dense: expected a number or null",
                        ctr__dec_where(d, ex), def->name);
}

/* A value the mapping refuses: only `mod` does (features.h). */
static int refused(ctr__dec_t *d, const ctr_cat_def_t *c, long ex, const char *what)
{
    ctr__dec_sem(d, CTR_EINVAL, "invalid_value", ex, c->name, strlen(c->name),
                 "%sfeature \"%s\" maps values by mod: expected a non-negative integer or 1 to "
                 "%d hex digits, got %s",
                 ctr__dec_where(d, ex), c->name, CTR_MOD_HEX_MAX, what);
    return -1;
}

/* The `mod` mapping refused the value at dst: the error, showing the
 * value when it is short printable ASCII. Off the hot path. */
__attribute__((noinline, cold)) static int cat_refused(ctr__dec_t *d, const ctr_cat_def_t *c,
                                                       const char *dst, size_t len, long ex)
{
    char shown[40];
    if (len == 0) {
        snprintf(shown, sizeof shown, "an empty string");
    } else if (len > CTR_MOD_HEX_MAX) {
        snprintf(shown, sizeof shown, "a string of %zu bytes", len);
    } else {
        size_t t = 0;
        while (t < len && dst[t] >= 0x20 && dst[t] < 0x7f && dst[t] != '"' && dst[t] != '\\')
            t++;
        if (t == len)
            snprintf(shown, sizeof shown, "\"%.*s\"", (int)len, dst);
        else
            snprintf(shown, sizeof shown, "a string that is not hex");
    }
    return refused(d, c, ex, shown);
}

/* The value's bytes are at cat_bytes + cat_used, len of them: map them
 * into slot k and keep them. 0, or -1 with the error recorded. Inlined:
 * it is the tail of every categorical value. */
__attribute__((always_inline)) static inline int cat_keep(ctr__dec_t *d, size_t j, size_t k,
                                                          const ctr__dec_slots_t *s, size_t len,
                                                          long ex)
{
    const ctr_cat_def_t *c = &d->def->cat[j];
    const char *dst = d->req->cat_bytes + d->cat_used;
    uint32_t row;
    if (c->mapping == CTR_MAP_HASH)
        row = ctr_features_cat_row(c, dst, len);
    else if (ctr_features_map(c, dst, len, &row))
        return cat_refused(d, c, dst, len, ex);
    s->off[k] = (uint32_t)d->cat_used;
    s->len[k] = (uint8_t)len;
    s->row[k] = row;
    d->cat_used += len;
    return 0;
}

__attribute__((always_inline)) static inline const uchar *
cat_string(ctr__dec_t *d, const uchar *p, size_t j, size_t k, const ctr__dec_slots_t *s, long ex,
           int empty_missing, int *present)
{
    const ctr_cat_def_t *c = &d->def->cat[j];
    char *dst = d->req->cat_bytes + d->cat_used;
    const uchar *end = d->sc.end, *q = ctr__json_plain_run(p + 1, end);
    size_t len;
    if (q < end && *q == '"' && (size_t)(q - p - 1) <= CTR_MAX_CAT_BYTES) {
        len = (size_t)(q - p - 1);
        memcpy(dst, p + 1, len);
        q++;
    } else {
        q = ctr__json_scan_string(&d->sc, p + 1, dst, CTR_MAX_CAT_BYTES, &len);
        if (!q)
            return NULL;
        if (len > CTR_MAX_CAT_BYTES)
            return ctr__dec_sem(d, CTR_ERANGE, "string_too_long", ex, c->name, strlen(c->name),
                                "%sfeature \"%s\": categorical value of %zu bytes, at most %d "
                                "allowed",
                                ctr__dec_where(d, ex), c->name, len, CTR_MAX_CAT_BYTES);
    }
    if (empty_missing && len == 0) {
        if (present)
            *present = 0;
        else
            ctr__dec_cat_absent(d, s, j);
        return q;
    }
    if (present)
        *present = 1;
    if (cat_keep(d, j, k, s, len, ex))
        return NULL;
    return q;
}

const uchar *ctr__dec_cat_string(ctr__dec_t *d, const uchar *p, size_t j, size_t k,
                                 const ctr__dec_slots_t *s, long ex)
{
    return cat_string(d, p, j, k, s, ex, 0, NULL);
}

const uchar *ctr__dec_cat_string_v2(ctr__dec_t *d, const uchar *p, size_t j, size_t k,
                                    const ctr__dec_slots_t *s, long ex, int *present)
{
    return cat_string(d, p, j, k, s, ex, 1, present);
}

int ctr__dec_cat_put(ctr__dec_t *d, size_t j, size_t k, const ctr__dec_slots_t *s,
                     const void *src, size_t len, long ex)
{
    memcpy(d->req->cat_bytes + d->cat_used, src, len);
    return cat_keep(d, j, k, s, len, ex);
}

int ctr__dec_cat_i64(ctr__dec_t *d, size_t j, size_t k, const ctr__dec_slots_t *s, int64_t v,
                     long ex)
{
    const ctr_cat_def_t *c = &d->def->cat[j];
    if (c->mapping == CTR_MAP_MOD && v < 0) {
        char shown[32];
        snprintf(shown, sizeof shown, "%lld", (long long)v);
        return refused(d, c, ex, shown);
    }
    /* The raw text (decimal for hash, hex for mod) maps to the integer's
     * row (features.h), so a replay from the audit log agrees. */
    char tmp[24];
    size_t len = ctr_features_int_raw(c, v, tmp);
    memcpy(d->req->cat_bytes + d->cat_used, tmp, len);
    return cat_keep(d, j, k, s, len, ex);
}

const uchar *ctr__dec_cat_int(ctr__dec_t *d, const uchar *p, size_t j, size_t k,
                              const ctr__dec_slots_t *s, long ex, int *present)
{
    const ctr_cat_def_t *c = &d->def->cat[j];
    ctr__json_num_t num;
    const uchar *q = ctr__json_scan_number(&d->sc, p, 0, &num);
    if (!q)
        return NULL;
    if (!num.is_int)
        return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", ex, c->name, strlen(c->name),
                            "%sfeature \"%s\" is categorical: expected a string, an integer or "
                            "null, not a fractional number",
                            ctr__dec_where(d, ex), c->name);
    if (!num.int_ok)
        return ctr__dec_sem(d, CTR_ERANGE, "number_out_of_range", ex, c->name, strlen(c->name),
                            "%sfeature \"%s\": integer value outside the 64-bit range",
                            ctr__dec_where(d, ex), c->name);
    if (present) {
        *present = num.i != -1;
        if (num.i == -1)
            return q;
    }
    if (ctr__dec_cat_i64(d, j, k, s, num.i, ex))
        return NULL;
    return q;
}

/* ---- the body's top-level object, shared by v1 and v2 ------------------- */

/* It is echoed in responses and logs: hence no control characters. */
const uchar *ctr__dec_request_id(ctr__dec_t *d, const uchar *p, const char *key)
{
    ctr_request_t *r = d->req;
    size_t len;
    if (*p == 'n') {
        if (!ctr__json_lit(p, d->sc.end, "null", 4))
            return SYN(d, p, "invalid literal");
        return p + 4;
    }
    if (*p != '"')
        return ctr__dec_sem(d, CTR_EINVAL, "bad_request_id", -1, NULL, 0,
                            "\"%s\" must be a string", key);
    const uchar *q = ctr__json_scan_string(&d->sc, p + 1, r->request_id, CTR_REQUEST_ID_MAX, &len);
    if (!q)
        return NULL;
    if (len > CTR_REQUEST_ID_MAX)
        return ctr__dec_sem(d, CTR_EINVAL, "bad_request_id", -1, NULL, 0,
                            "\"%s\" is %zu bytes long, at most %d allowed", key, len,
                            CTR_REQUEST_ID_MAX);
    for (size_t i = 0; i < len; i++)
        if ((uchar)r->request_id[i] < 0x20 || r->request_id[i] == 0x7F)
            return ctr__dec_sem(d, CTR_EINVAL, "bad_request_id", -1, NULL, 0,
                                "\"%s\" contains a control character", key);
    r->request_id[len] = '\0';
    r->has_request_id = 1;
    return q;
}

const uchar *ctr__dec_body_open(ctr__dec_t *d, const uchar *p)
{
    if (p >= d->sc.end) {
        SYN(d, p, "empty body");
        return NULL;
    }
    if (*p != '{') {
        ctr__dec_sem(d, CTR_EINVAL, "wrong_type", -1, NULL, 0, "the body must be a JSON object");
        return NULL;
    }
    return ctr__json_ws(p + 1, d->sc.end);
}

const uchar *ctr__dec_top_member(ctr__dec_t *d, const uchar *p, const char *const *keys,
                                 int nkeys, const char *expected, unsigned *seen, int *which)
{
    const uchar *end = d->sc.end;
    const char *k;
    size_t klen;
    char kbuf[CTR__DEC_KEY_CAP];
    if (p >= end || *p != '"')
        return SYN(d, p, "expected a string key");
    p = ctr__dec_key(d, p, kbuf, &k, &klen);
    if (!p)
        return NULL;
    int i = 0;
    while (i < nkeys && !ctr__dec_key_is(k, klen, keys[i]))
        i++;
    if (i == nkeys)
        return ctr__dec_sem(d, CTR_EINVAL, "unknown_field", -1, NULL, 0,
                            "unknown field \"%.*s\" (expected %s)", (int)(klen < 64 ? klen : 64),
                            k, expected);
    if (*seen & (1u << i))
        return ctr__dec_sem(d, CTR_EINVAL, "duplicate_key", -1, NULL, 0, "\"%.*s\" appears twice",
                            (int)klen, k);
    *seen |= 1u << i;
    *which = i;
    if (!(p = ctr__dec_colon(d, p)))
        return NULL;
    return p;
}

int ctr__dec_top_next(ctr__dec_t *d, const uchar **pp)
{
    const uchar *p = ctr__json_ws(*pp, d->sc.end);
    if (p < d->sc.end && *p == ',') {
        *pp = ctr__json_ws(p + 1, d->sc.end);
        return 1;
    }
    if (p < d->sc.end && *p == '}') {
        *pp = p + 1;
        return 0;
    }
    SYN(d, p, "expected ',' or '}' after an object member");
    return -1;
}

int ctr__dec_body_end(ctr__dec_t *d, const uchar *p)
{
    p = ctr__json_ws(p, d->sc.end);
    if (p < d->sc.end) {
        SYN(d, p, "unexpected data after the JSON value");
        return -1;
    }
    return 0;
}

/* ---- entry points ------------------------------------------------------ */

static void request_clear(ctr_request_t *req)
{
    memset(req, 0, sizeof(*req));
}

void ctr__request_release(ctr_request_t *req)
{
    if (!req)
        return;
    free(req->arena);
    request_clear(req);
}

/* After a failed fast pass: the validator's syntax error wins, else the
 * semantic error stands. A fast-pass syntax error the validator does not
 * confirm would be a decoder bug: reported as a 500 (CTR_EINTERNAL), never
 * as the client's fault. */
static int conclude_failure(ctr__dec_t *d)
{
    ctr_decode_error_t *e = d->e;
    if (d->stop == CTR__DEC_NOMEM) {
        reset_error(e);
        e->name = "out_of_memory";
        snprintf(e->message, sizeof(e->message), "out of memory decoding the request");
        return CTR_ENOMEM;
    }
    size_t fast_at = d->sc.err_at;
    const char *fast_why = d->sc.err_why;
    if (ctr__json_validate(&d->sc)) {
        const ctr__json_scan_t *s = &d->sc;
        int code = CTR_EFORMAT;
        reset_error(e);
        switch (s->err) {
        case CTR__JSON_TOO_DEEP:
            e->name = "nesting_too_deep";
            snprintf(e->message, sizeof(e->message),
                     "JSON nested deeper than %zu levels at byte %zu", s->max_depth, s->err_at);
            break;
        case CTR__JSON_NUM_RANGE:
            e->name = "number_out_of_range";
            code = CTR_ERANGE;
            snprintf(e->message, sizeof(e->message),
                     "number at byte %zu is beyond the range of a double", s->err_at);
            break;
        case CTR__JSON_BAD_UTF8:
            e->name = "invalid_utf8";
            snprintf(e->message, sizeof(e->message), "invalid UTF-8 at byte %zu", s->err_at);
            break;
        default:
            e->name = "malformed_json";
            snprintf(e->message, sizeof(e->message), "malformed JSON at byte %zu: %s", s->err_at,
                     s->err_why);
        }
        return code;
    }
    if (d->stop == CTR__DEC_SEMANTIC)
        return d->code;
    reset_error(e);
    e->name = "internal_error";
    snprintf(e->message, sizeof(e->message),
             "request decoder disagrees with its validator at byte %zu (%s)", fast_at,
             fast_why ? fast_why : "?");
    return CTR_EINTERNAL;
}

/* header_len: the JSON header's length in a binary body (v2 binary tensor
 * data), or (size_t)-1 for a body that is all JSON. */
static int decode(int v2, const ctr_model_t *m, const char *body, size_t len, size_t header_len,
                  const ctr_decode_limits_t *lim, ctr_request_t *req, ctr_decode_error_t *e)
{
    ctr_decode_error_t dummy;
    ctr__dec_t d;
    if (!e)
        e = &dummy;
    reset_error(e);
    request_clear(req);
    if (!body)
        len = 0;
    if (len > (size_t)UINT32_MAX - 1024) { /* cat_off is 32-bit */
        e->name = "body_too_large";
        snprintf(e->message, sizeof(e->message), "request body of %zu bytes is too large", len);
        return CTR_ETOOBIG;
    }
    int binary = header_len != (size_t)-1;
    if (binary && len > ((size_t)UINT32_MAX - 1024) / 4) { /* INT64 text: up to 20 bytes of 8 */
        e->name = "body_too_large";
        snprintf(e->message, sizeof(e->message), "request body of %zu bytes is too large", len);
        return CTR_ETOOBIG;
    }
    if (binary && header_len > len) {
        e->name = "bad_header_length";
        snprintf(e->message, sizeof(e->message),
                 "Inference-Header-Content-Length is %zu but the body is only %zu bytes",
                 header_len, len);
        return CTR_EINVAL;
    }
    memset(&d, 0, sizeof(d));
    size_t max_depth = lim && lim->max_depth ? lim->max_depth : DEFAULT_MAX_DEPTH;
    if (max_depth < MIN_MAX_DEPTH)
        max_depth = MIN_MAX_DEPTH;
    if (max_depth > MAX_MAX_DEPTH)
        max_depth = MAX_MAX_DEPTH;
    ctr__json_scan_init(&d.sc, body ? body : "", binary ? header_len : len, max_depth);
    if (binary) {
        d.binary = 1;
        d.bin = (const uchar *)(body ? body : "") + header_len;
        d.bin_len = len - header_len;
        d.cat_extra = d.bin_len * 3;
    }
    d.m = m;
    d.def = ctr_model_def(m);
    d.nd = d.def->n_dense;
    d.nc = d.def->n_cat;
    d.nf = d.nd + d.nc;
    d.ns = ctr_model_slots(d.def);
    for (size_t j = 0; j < d.nc; j++)
        d.n_bags += d.def->cat[j].bag_max != 0;
    d.n_single = d.nc - d.n_bags;
    d.words = (d.nf + 63) / 64;
    d.max_examples = lim && lim->max_examples ? lim->max_examples : DEFAULT_MAX_EXAMPLES;
    d.e = e;
    d.req = req;
    d.v2 = v2;

    int rc;
    if (v2) {
        rc = ctr__dec_v2_parse(&d);
    } else {
        /* Every example is an object with its own '{': a bound on n. */
        size_t braces = 0;
        for (const uchar *p = d.sc.beg; (p = memchr(p, '{', (size_t)(d.sc.end - p))); p++)
            braces++;
        size_t cap = braces < d.max_examples ? braces : d.max_examples;
        rc = ctr__dec_arena_alloc(&d, cap ? cap : 1, 1);
        if (!rc)
            rc = ctr__dec_v1_parse(&d);
    }
    if (rc == 0) {
        req->n_dense = d.nd;
        req->n_cat = d.ns;
        memset(req->scores, 0, req->n * sizeof(float));
        return 0;
    }
    rc = conclude_failure(&d);
    ctr__request_release(req);
    return rc;
}

int ctr__decode_v1(const ctr_model_t *m, const char *body, size_t len,
                   const ctr_decode_limits_t *lim, ctr_request_t *req, ctr_decode_error_t *e)
{
    return decode(0, m, body, len, (size_t)-1, lim, req, e);
}

int ctr__decode_v2(const ctr_model_t *m, const char *body, size_t len,
                   const ctr_decode_limits_t *lim, ctr_request_t *req, ctr_decode_error_t *e)
{
    return decode(1, m, body, len, (size_t)-1, lim, req, e);
}

int ctr__decode_v2_binary(const ctr_model_t *m, const char *body, size_t len, size_t header_len,
                          const ctr_decode_limits_t *lim, ctr_request_t *req,
                          ctr_decode_error_t *e)
{
    return decode(1, m, body, len, header_len, lim, req, e);
}
