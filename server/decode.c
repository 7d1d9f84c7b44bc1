/* decode.c - request bodies (/v1/score and KServe v2 infer) to ctr_request_t.
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
 * Errors. The fast pass stops at the first problem. A semantic problem
 * (wrong type, unknown feature, ...) is only reported if the body is valid
 * JSON: on any failure a generic iterative validator re-reads the whole
 * body, and its first syntax error (malformed_json, invalid_utf8,
 * number_out_of_range for a number beyond double, nesting_too_deep) wins.
 * So a client always learns about broken JSON first, at the byte where it
 * breaks, and otherwise about the first semantic problem in document order
 * (docs/DECODER.md lists the rules). Failures are the slow path; a valid
 * body is read exactly once after a memchr count of '{'.
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

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "ctr/common.h"
#include "ctr/features.h"
#include "json_num.h"

#define DEFAULT_MAX_EXAMPLES 1024
#define DEFAULT_MAX_DEPTH 64
#define MIN_MAX_DEPTH 16        /* v2 needs 5 levels; below 16 is a misconfiguration */
#define MAX_MAX_DEPTH 1024      /* the bit stack lives on the C stack */
#define KEY_CAP 128             /* unescaped keys: feature names are <= 64 bytes */
#define ARENA_ALIGN 64

typedef unsigned char uchar;

enum { ERR_NONE = 0, ERR_SYNTAX, ERR_SEMANTIC, ERR_NOMEM };

/* What a syntax error was, as found by the validator. */
typedef struct {
    size_t at;
    const char *code;
    const char *why;
} syn_t;

typedef struct {
    const uchar *beg, *end;
    const ctr_model_t *m;
    const ctr_model_def_t *def;
    size_t nd, nc, nf, words;   /* words: uint64 per presence bitmap */
    size_t max_examples, max_depth;
    ctr_decode_error_t *e;
    ctr_request_t *req;
    int err;
    syn_t syn;
    size_t guess;               /* schema index the next key is tried as */
    int v2;
    char wbuf[48];              /* where(): message prefix */

    size_t cap;                 /* examples the arena holds */
    size_t cat_used;            /* bytes of req->cat_bytes in use */
    uint64_t *pres;             /* v1: [cap][words] keys seen per example */
    /* v1 context, merged into every example at the end. */
    double *ctx_raw;
    float *ctx_enc;
    uint32_t *ctx_row, *ctx_off;
    uint8_t *ctx_len;
    uint64_t *ctx_pres;
} dec_t;

/* ---- byte classes ------------------------------------------------------ */

/* Inside a string: 0 plain printable ASCII, 1 '"', 2 '\\', 3 control
 * (invalid raw), 4 a byte >= 0x80 (UTF-8, validated). */
static const uint8_t str_class[256] = {
    [0 ... 31] = 3, ['"'] = 1, ['\\'] = 2, [128 ... 255] = 4,
};

/* The first byte at or after p that is not plain string content ('"',
 * '\\', a control byte or a byte >= 0x80), or end. SSE2 (baseline on
 * x86-64) looks at 16 bytes at a time: a signed compare below 0x20 catches
 * both control bytes and bytes >= 0x80. */
static inline const uchar *plain_run(const uchar *p, const uchar *end)
{
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                   _mm_cmplt_epi8(v, space));
        unsigned mask = (unsigned)_mm_movemask_epi8(hit);
        if (mask)
            return p + __builtin_ctz(mask);
        p += 16;
    }
#endif
    while (p < end && str_class[*p] == 0)
        p++;
    return p;
}

static inline int is_ws(uchar c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Skips JSON whitespace. Compact bodies have none between most tokens;
 * pretty-printed ones have runs (newline + indentation), taken 16 bytes at
 * a time. */
static inline const uchar *ws(const uchar *p, const uchar *end)
{
    if (p >= end || *p > ' ')
        return p;
#ifdef __SSE2__
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i w = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\n'))),
            _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\r')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\t'))));
        unsigned mask = ~(unsigned)_mm_movemask_epi8(w) & 0xFFFFu;
        if (mask)
            return p + __builtin_ctz(mask);
        p += 16;
    }
#endif
    while (p < end && is_ws(*p))
        p++;
    return p;
}

static inline int is_num_start(uchar c)
{
    return c == '-' || (unsigned)(c - '0') < 10u;
}

static int lit(const uchar *p, const uchar *end, const char *word, size_t n)
{
    return (size_t)(end - p) >= n && !memcmp(p, word, n);
}

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
    e->http_status = 0;
    e->code = NULL;
    e->message[0] = '\0';
    e->example = -1;
    e->feature[0] = '\0';
}

/* Records the first semantic error (the fast pass stops at it) and returns
 * NULL so parsers can `return sem(...)`. feature may be NULL. */
static const uchar *sem(dec_t *d, int status, const char *code, long example,
                        const char *feature, size_t flen, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static const uchar *sem(dec_t *d, int status, const char *code, long example,
                        const char *feature, size_t flen, const char *fmt, ...)
{
    ctr_decode_error_t *e = d->e;
    va_list ap;
    d->err = ERR_SEMANTIC;
    e->http_status = status;
    e->code = code;
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

/* The fast pass met bytes that are not JSON; the validator says where. */
static const uchar *syntax(dec_t *d, const uchar *p, const char *code, const char *why)
{
    if (d->err == ERR_NONE || d->err == ERR_SYNTAX) {
        d->err = ERR_SYNTAX;
        d->syn.at = (size_t)(p - d->beg);
        d->syn.code = code;
        d->syn.why = why;
    }
    return NULL;
}

#define SYN(d, p, why) syntax((d), (p), "malformed_json", (why))

/* The name of feature f (schema order: dense, then categorical). */
static const char *feat_name(const dec_t *d, size_t f)
{
    return f < d->nd ? d->def->dense[f].name : d->def->cat[f - d->nd].name;
}

/* Message prefix naming where a value sits. */
static const char *where(dec_t *d, long ex)
{
    if (d->v2)
        snprintf(d->wbuf, sizeof(d->wbuf), "example %ld: ", ex);
    else if (ex >= 0)
        snprintf(d->wbuf, sizeof(d->wbuf), "examples[%ld]: ", ex);
    else
        snprintf(d->wbuf, sizeof(d->wbuf), "context: ");
    return d->wbuf;
}

/* ---- strings ----------------------------------------------------------- */

static size_t utf8_put(char *dst, size_t cap, size_t n, uint32_t cp)
{
    uchar b[4];
    size_t k;
    if (cp < 0x80) {
        b[0] = (uchar)cp;
        k = 1;
    } else if (cp < 0x800) {
        b[0] = (uchar)(0xC0 | (cp >> 6));
        b[1] = (uchar)(0x80 | (cp & 0x3F));
        k = 2;
    } else if (cp < 0x10000) {
        b[0] = (uchar)(0xE0 | (cp >> 12));
        b[1] = (uchar)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (uchar)(0x80 | (cp & 0x3F));
        k = 3;
    } else {
        b[0] = (uchar)(0xF0 | (cp >> 18));
        b[1] = (uchar)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (uchar)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (uchar)(0x80 | (cp & 0x3F));
        k = 4;
    }
    for (size_t i = 0; i < k; i++, n++)
        if (n < cap)
            dst[n] = (char)b[i];
    return n;
}

static int hex4(const uchar *p, const uchar *end, uint32_t *out)
{
    uint32_t v = 0;
    if (end - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        uchar c = p[i];
        unsigned h;
        if (c >= '0' && c <= '9')
            h = c - '0';
        else if (c >= 'a' && c <= 'f')
            h = c - 'a' + 10u;
        else if (c >= 'A' && c <= 'F')
            h = c - 'A' + 10u;
        else
            return -1;
        v = v << 4 | h;
    }
    *out = v;
    return 0;
}

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), 0 if invalid or cut by end. */
static size_t utf8_seq(const uchar *p, const uchar *end)
{
    uchar c = p[0];
    size_t n = (size_t)(end - p);
    if (c >= 0xC2 && c <= 0xDF)
        return n >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (p[2] & 0xC0) != 0x80)
            return 0;
        uchar lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        return p[1] >= lo && p[1] <= hi ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        uchar lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        return p[1] >= lo && p[1] <= hi ? 4 : 0;
    }
    return 0;
}

/* Reads a string whose opening quote is at p[-1]: validates it (escapes,
 * UTF-8, no raw control bytes), writes at most cap unescaped bytes to dst
 * and the full unescaped length to *len (which may exceed cap). Returns
 * the byte after the closing quote, or NULL on a syntax error. */
static const uchar *scan_string(dec_t *d, const uchar *p, char *dst, size_t cap, size_t *len)
{
    const uchar *end = d->end;
    size_t n = 0;
    for (;;) {
        const uchar *q = plain_run(p, end);
        if (n < cap) {
            size_t k = (size_t)(q - p) < cap - n ? (size_t)(q - p) : cap - n;
            memcpy(dst + n, p, k);
        }
        n += (size_t)(q - p);
        p = q;
        if (p >= end)
            return SYN(d, p, "unterminated string");
        switch (str_class[*p]) {
        case 1:
            *len = n;
            return p + 1;
        case 3:
            return SYN(d, p, "control character in string (escape it)");
        case 4: {
            size_t k = utf8_seq(p, end);
            if (!k)
                return syntax(d, p, "invalid_utf8", "invalid UTF-8");
            for (size_t i = 0; i < k; i++, n++)
                if (n < cap)
                    dst[n] = (char)p[i];
            p += k;
            break;
        }
        default: { /* backslash */
            const uchar *esc = p;
            if (p + 1 >= end)
                return SYN(d, p + 1, "unterminated string");
            uchar c = p[1];
            uchar out;
            p += 2;
            switch (c) {
            case '"': out = '"'; break;
            case '\\': out = '\\'; break;
            case '/': out = '/'; break;
            case 'b': out = '\b'; break;
            case 'f': out = '\f'; break;
            case 'n': out = '\n'; break;
            case 'r': out = '\r'; break;
            case 't': out = '\t'; break;
            case 'u': {
                uint32_t cp, lo;
                if (hex4(p, end, &cp))
                    return SYN(d, esc, "invalid \\u escape");
                p += 4;
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return SYN(d, esc, "lone low surrogate in \\u escape");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, end, &lo) ||
                        lo < 0xDC00 || lo > 0xDFFF)
                        return SYN(d, esc, "high surrogate not followed by a low surrogate");
                    p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                n = utf8_put(dst, cap, n, cp);
                continue;
            }
            default:
                return SYN(d, esc, "invalid escape in string");
            }
            if (n < cap)
                dst[n] = (char)out;
            n++;
            break;
        }
        }
    }
}

/* A key at p (the opening quote): in place when it has no escape and is
 * plain ASCII (the common case), else unescaped into buf (KEY_CAP bytes).
 * *klen > KEY_CAP means too long to be any name. */
static const uchar *scan_key(dec_t *d, const uchar *p, char *buf, const char **key, size_t *klen)
{
    const uchar *q = plain_run(p + 1, d->end), *end = d->end;
    if (q < end && *q == '"') {
        *key = (const char *)(p + 1);
        *klen = (size_t)(q - p - 1);
        return q + 1;
    }
    *key = buf;
    return scan_string(d, p + 1, buf, KEY_CAP, klen);
}

static int key_is(const char *k, size_t klen, const char *word)
{
    size_t n = strlen(word);
    return klen == n && !memcmp(k, word, n);
}

/* Feature index of a key, or -1. Bodies usually list features in schema
 * order, so the one after the last match is tried before hashing. */
static long lookup(dec_t *d, const char *k, size_t klen)
{
    if (klen > KEY_CAP)
        return -1;
    size_t g = d->guess;
    if (g < d->nf) {
        const char *name = feat_name(d, g);
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

/* ---- generic values: validator and skipper ----------------------------- */

/* Skips one JSON value at p (whitespace first), fully validated, without
 * recursion. depth0: containers already open around it. leaves, if not
 * NULL, counts the values that sit in arrays only (the value at p being an
 * array): the elements of a possibly nested tensor, an object counting as
 * one. Returns the byte after the value or NULL (d->syn says why). */
static const uchar *skip_value(dec_t *d, const uchar *p, size_t depth0, size_t *leaves)
{
    uint64_t stack[MAX_MAX_DEPTH / 64 + 1]; /* bit set: object */
    size_t depth = 0, objs = 0;
    const uchar *end = d->end;
    ctr__json_num_t num;
    size_t slen;

value:
    p = ws(p, end);
    if (p >= end)
        return SYN(d, p, "unexpected end of body, expected a value");
    if (leaves && depth > 0 && objs == 0 && *p != '[')
        (*leaves)++;
    switch (*p) {
    case '{':
    case '[': {
        int obj = *p == '{';
        if (depth0 + depth + 1 > d->max_depth)
            return syntax(d, p, "nesting_too_deep", "nesting too deep");
        if (obj)
            stack[depth / 64] |= 1ull << (depth % 64);
        else
            stack[depth / 64] &= ~(1ull << (depth % 64));
        depth++;
        objs += (size_t)obj;
        p = ws(p + 1, end);
        if (p < end && *p == (obj ? '}' : ']')) {
            p++;
            depth--;
            objs -= (size_t)obj;
            goto after;
        }
        if (obj)
            goto key;
        goto value;
    }
    case '"':
        p = scan_string(d, p + 1, NULL, 0, &slen);
        if (!p)
            return NULL;
        goto after;
    case 't':
        if (!lit(p, end, "true", 4))
            return SYN(d, p, "invalid literal");
        p += 4;
        goto after;
    case 'f':
        if (!lit(p, end, "false", 5))
            return SYN(d, p, "invalid literal");
        p += 5;
        goto after;
    case 'n':
        if (!lit(p, end, "null", 4))
            return SYN(d, p, "invalid literal");
        p += 4;
        goto after;
    default: {
        if (!is_num_start(*p))
            return SYN(d, p, "unexpected character, expected a value");
        long k = ctr__json_num_parse((const char *)p, (size_t)(end - p), 0, &num);
        if (k < 0)
            return SYN(d, p + (-k - 1), "invalid number");
        if (num.overflow)
            return syntax(d, p, "number_out_of_range", "number beyond the range of a double");
        p += k;
        goto after;
    }
    }

after:
    if (depth == 0)
        return p;
    p = ws(p, end);
    if (p >= end)
        return SYN(d, p, "unexpected end of body");
    if (stack[(depth - 1) / 64] >> ((depth - 1) % 64) & 1) {
        if (*p == ',') {
            p = ws(p + 1, end);
            goto key;
        }
        if (*p != '}')
            return SYN(d, p, "expected ',' or '}' after an object member");
        objs--;
    } else {
        if (*p == ',') {
            p++;
            goto value;
        }
        if (*p != ']')
            return SYN(d, p, "expected ',' or ']' after an array element");
    }
    p++;
    depth--;
    goto after;

key:
    if (p >= end || *p != '"')
        return SYN(d, p, "expected a string key");
    p = scan_string(d, p + 1, NULL, 0, &slen);
    if (!p)
        return NULL;
    p = ws(p, end);
    if (p >= end || *p != ':')
        return SYN(d, p, "expected ':' after an object key");
    p++;
    goto value;
}

/* The whole body as JSON. 0 if valid; else -1 and d->syn. */
static int validate(dec_t *d)
{
    d->err = ERR_NONE;
    const uchar *p = ws(d->beg, d->end);
    if (p >= d->end) {
        SYN(d, p, d->beg == d->end ? "empty body" : "body holds only whitespace");
        return -1;
    }
    p = skip_value(d, p, 0, NULL);
    if (!p)
        return -1;
    p = ws(p, d->end);
    if (p < d->end) {
        SYN(d, p, "unexpected data after the JSON value");
        return -1;
    }
    return 0;
}

/* ---- arena ------------------------------------------------------------- */

static size_t align_up(size_t n)
{
    return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
}

/* One allocation for cap examples; v1 adds the presence bitmaps and the
 * context row. Categorical bytes: the body length bounds them. */
static int arena_alloc(dec_t *d, size_t cap, int v1)
{
    ctr_request_t *r = d->req;
    size_t nd = d->nd, nc = d->nc, w = d->words;
    size_t off[16], k = 0, total = 0;
#define SECTION(bytes) (off[k++] = total, total += align_up(bytes))
    SECTION(cap * nd * sizeof(float));          /* 0 dense */
    SECTION(cap * nc * sizeof(uint32_t));       /* 1 rows */
    SECTION(cap * nd * sizeof(double));         /* 2 dense_raw */
    SECTION(cap * nc * sizeof(uint32_t));       /* 3 cat_off */
    SECTION(cap * nc);                          /* 4 cat_len */
    SECTION(cap * sizeof(float));               /* 5 scores */
    SECTION(v1 ? cap * w * sizeof(uint64_t) : 0); /* 6 pres */
    SECTION(v1 ? nd * sizeof(double) : 0);      /* 7 ctx_raw */
    SECTION(v1 ? nd * sizeof(float) : 0);       /* 8 ctx_enc */
    SECTION(v1 ? nc * sizeof(uint32_t) : 0);    /* 9 ctx_row */
    SECTION(v1 ? nc * sizeof(uint32_t) : 0);    /* 10 ctx_off */
    SECTION(v1 ? nc : 0);                       /* 11 ctx_len */
    SECTION(v1 ? w * sizeof(uint64_t) : 0);     /* 12 ctx_pres */
    SECTION((size_t)(d->end - d->beg) + 64);    /* 13 cat_bytes */
#undef SECTION
    char *a = aligned_alloc(ARENA_ALIGN, total);
    if (!a) {
        d->err = ERR_NOMEM;
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
    r->cat_bytes = a + off[13];
    d->cap = cap;
    d->cat_used = 0;
    if (v1)
        memset(d->ctx_pres, 0, w * sizeof(uint64_t));
    return 0;
}

/* ---- values ------------------------------------------------------------ */

/* Where one example's (or the v1 context's) values go. */
typedef struct {
    double *raw;
    float *enc;
    uint32_t *row, *off;
    uint8_t *len;
} slots_t;

static slots_t example_slots(dec_t *d, size_t i)
{
    ctr_request_t *r = d->req;
    return (slots_t){r->dense_raw + i * d->nd, r->dense + i * d->nd, r->rows + i * d->nc,
                     r->cat_off + i * d->nc, r->cat_len + i * d->nc};
}

/* A dense value at p: a number or null. */
static const uchar *dense_value(dec_t *d, const uchar *p, size_t f, const slots_t *s, long ex)
{
    const ctr_dense_def_t *def = &d->def->dense[f];
    if (is_num_start(*p)) {
        ctr__json_num_t num;
        long k = ctr__json_num_parse((const char *)p, (size_t)(d->end - p), CTR__NUM_WANT_DOUBLE, &num);
        if (k < 0)
            return SYN(d, p + (-k - 1), "invalid number");
        if (num.overflow)
            return syntax(d, p, "number_out_of_range", "number beyond the range of a double");
        s->raw[f] = num.d;
        s->enc[f] = ctr_features_dense(def, num.d);
        return p + k;
    }
    if (*p == 'n') {
        if (!lit(p, d->end, "null", 4))
            return SYN(d, p, "invalid literal");
        s->raw[f] = NAN;
        s->enc[f] = ctr_features_dense_missing(def);
        return p + 4;
    }
    return sem(d, 400, "wrong_type", ex, def->name, strlen(def->name),
               "%sfeature \"%s\" is dense: expected a number or null",
               where(d, ex), def->name);
}

static void cat_missing(const slots_t *s, size_t j)
{
    s->row[j] = CTR_MISSING_ROW;
    s->off[j] = 0;
    s->len[j] = CTR_CAT_MISSING_LEN;
}

/* Appends a categorical string value (opening quote at p) to cat_bytes.
 * empty_missing: v2 BYTES, where "" is the missing value. */
static const uchar *cat_string(dec_t *d, const uchar *p, size_t j, const slots_t *s, long ex,
                               int empty_missing)
{
    const ctr_cat_def_t *c = &d->def->cat[j];
    char *dst = d->req->cat_bytes + d->cat_used;
    const uchar *q = plain_run(p + 1, d->end), *end = d->end;
    size_t len;
    if (q < end && *q == '"' && (size_t)(q - p - 1) <= CTR_MAX_CAT_BYTES) {
        len = (size_t)(q - p - 1);
        memcpy(dst, p + 1, len);
        q++;
    } else {
        q = scan_string(d, p + 1, dst, CTR_MAX_CAT_BYTES, &len);
        if (!q)
            return NULL;
        if (len > CTR_MAX_CAT_BYTES)
            return sem(d, 400, "string_too_long", ex, c->name, strlen(c->name),
                       "%sfeature \"%s\": categorical value of %zu bytes, at most %d allowed",
                       where(d, ex), c->name, len,
                       CTR_MAX_CAT_BYTES);
    }
    if (empty_missing && len == 0) {
        cat_missing(s, j);
        return q;
    }
    s->off[j] = (uint32_t)d->cat_used;
    s->len[j] = (uint8_t)len;
    s->row[j] = ctr_features_cat_row(c, dst, len);
    d->cat_used += len;
    return q;
}

/* An integer categorical value: stored as its decimal text, which is what
 * ctr_features_cat_row_int hashes, so the row is the same. */
static const uchar *cat_int(dec_t *d, const uchar *p, size_t j, const slots_t *s, long ex)
{
    const ctr_cat_def_t *c = &d->def->cat[j];
    ctr__json_num_t num;
    long k = ctr__json_num_parse((const char *)p, (size_t)(d->end - p), 0, &num);
    if (k < 0)
        return SYN(d, p + (-k - 1), "invalid number");
    if (num.overflow)
        return syntax(d, p, "number_out_of_range", "number beyond the range of a double");
    if (!num.is_int)
        return sem(d, 400, "wrong_type", ex, c->name, strlen(c->name),
                   "%sfeature \"%s\" is categorical: expected a string, an integer or "
                   "null, not a fractional number",
                   where(d, ex), c->name);
    if (!num.int_ok)
        return sem(d, 400, "number_out_of_range", ex, c->name, strlen(c->name),
                   "%sfeature \"%s\": integer value outside the 64-bit range",
                   where(d, ex), c->name);
    char *dst = d->req->cat_bytes + d->cat_used;
    char tmp[24];
    size_t len = ctr_features_int_key(num.i, tmp);
    memcpy(dst, tmp, len);
    s->off[j] = (uint32_t)d->cat_used;
    s->len[j] = (uint8_t)len;
    s->row[j] = ctr_features_cat_row(c, dst, len);
    d->cat_used += len;
    return p + k;
}

static const uchar *cat_value(dec_t *d, const uchar *p, size_t j, const slots_t *s, long ex)
{
    if (*p == '"')
        return cat_string(d, p, j, s, ex, 0);
    if (is_num_start(*p))
        return cat_int(d, p, j, s, ex);
    if (*p == 'n') {
        if (!lit(p, d->end, "null", 4))
            return SYN(d, p, "invalid literal");
        cat_missing(s, j);
        return p + 4;
    }
    const char *name = d->def->cat[j].name;
    return sem(d, 400, "wrong_type", ex, name, strlen(name),
               "%sfeature \"%s\" is categorical: expected a string, an integer or null",
               where(d, ex), name);
}

/* ---- v1 ---------------------------------------------------------------- */

/* request_id / id: a string of at most 128 bytes without control
 * characters (it is echoed in responses and logs), or null. */
static const uchar *request_id(dec_t *d, const uchar *p, const char *key)
{
    ctr_request_t *r = d->req;
    size_t len;
    if (*p == 'n') {
        if (!lit(p, d->end, "null", 4))
            return SYN(d, p, "invalid literal");
        return p + 4;
    }
    if (*p != '"')
        return sem(d, 400, "bad_request_id", -1, NULL, 0, "\"%s\" must be a string", key);
    const uchar *q = scan_string(d, p + 1, r->request_id, CTR_REQUEST_ID_MAX, &len);
    if (!q)
        return NULL;
    if (len > CTR_REQUEST_ID_MAX)
        return sem(d, 400, "bad_request_id", -1, NULL, 0,
                   "\"%s\" is %zu bytes long, at most %d allowed", key, len, CTR_REQUEST_ID_MAX);
    for (size_t i = 0; i < len; i++)
        if ((uchar)r->request_id[i] < 0x20 || r->request_id[i] == 0x7F)
            return sem(d, 400, "bad_request_id", -1, NULL, 0,
                       "\"%s\" contains a control character", key);
    r->request_id[len] = '\0';
    r->has_request_id = 1;
    return q;
}

/* One v1 feature object: the context (ex = -1) or examples[ex]. */
static const uchar *features_object(dec_t *d, const uchar *p, long ex)
{
    const uchar *end = d->end;
    slots_t s;
    uint64_t *pres;
    char kbuf[KEY_CAP];

    if (ex >= 0) {
        s = example_slots(d, (size_t)ex);
        pres = d->pres + (size_t)ex * d->words;
        memset(pres, 0, d->words * sizeof(uint64_t));
    } else {
        s = (slots_t){d->ctx_raw, d->ctx_enc, d->ctx_row, d->ctx_off, d->ctx_len};
        pres = d->ctx_pres;
    }
    d->guess = 0;
    p = ws(p + 1, end);
    if (p < end && *p == '}')
        return p + 1;
    for (;;) {
        const char *k;
        size_t klen;
        if (p >= end || *p != '"')
            return SYN(d, p, "expected a string key");
        p = scan_key(d, p, kbuf, &k, &klen);
        if (!p)
            return NULL;
        long f = lookup(d, k, klen);
        if (f < 0)
            return sem(d, 400, "unknown_feature", ex, k, klen < KEY_CAP ? klen : KEY_CAP,
                       "%sunknown feature \"%.*s\"", where(d, ex), (int)(klen < 64 ? klen : 64), k);
        uint64_t bit = 1ull << (f % 64);
        if (pres[f / 64] & bit)
            return sem(d, 400, "duplicate_key", ex, k, klen,
                       "%sfeature \"%s\" appears twice", where(d, ex), feat_name(d, (size_t)f));
        pres[f / 64] |= bit;
        p = ws(p, end);
        if (p >= end || *p != ':')
            return SYN(d, p, "expected ':' after an object key");
        p = ws(p + 1, end);
        if (p >= end)
            return SYN(d, p, "unexpected end of body, expected a value");
        if ((size_t)f < d->nd)
            p = dense_value(d, p, (size_t)f, &s, ex);
        else
            p = cat_value(d, p, (size_t)f - d->nd, &s, ex);
        if (!p)
            return NULL;
        p = ws(p, end);
        if (p < end && *p == ',') {
            p = ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}')
            return p + 1;
        return SYN(d, p, "expected ',' or '}' after an object member");
    }
}

static const uchar *examples_array(dec_t *d, const uchar *p)
{
    const uchar *end = d->end;
    if (*p == 'n' && lit(p, end, "null", 4))
        return sem(d, 400, "missing_examples", -1, NULL, 0, "\"examples\" is null");
    if (*p != '[')
        return sem(d, 400, "wrong_type", -1, NULL, 0, "\"examples\" must be an array of objects");
    p = ws(p + 1, end);
    if (p < end && *p == ']')
        return sem(d, 400, "missing_examples", -1, NULL, 0, "\"examples\" is empty");
    for (size_t i = 0;; i++) {
        if (i >= d->max_examples)
            return sem(d, 413, "too_many_examples", (long)i, NULL, 0,
                       "more than %zu examples in one request", d->max_examples);
        if (p >= end || *p != '{')
            return sem(d, 400, "wrong_type", (long)i, NULL, 0,
                       "examples[%zu] must be an object", i);
        CTR_ASSERT(i < d->cap); /* each example has its own '{' */
        p = features_object(d, p, (long)i);
        if (!p)
            return NULL;
        d->req->n = i + 1;
        p = ws(p, end);
        if (p < end && *p == ',') {
            p = ws(p + 1, end);
            continue;
        }
        if (p < end && *p == ']')
            return p + 1;
        return SYN(d, p, "expected ',' or ']' after an array element");
    }
}

/* Context into every example, missing values where neither has a key; a
 * key in both is an error (the lowest example, then schema order). */
static int v1_finish(dec_t *d)
{
    ctr_request_t *r = d->req;
    size_t nd = d->nd, w = d->words;
    for (size_t i = 0; i < r->n; i++) {
        const uint64_t *pres = d->pres + i * w;
        slots_t s = example_slots(d, i);
        for (size_t k = 0; k < w; k++) {
            uint64_t all = k + 1 < w || d->nf % 64 == 0 ? ~0ull : (1ull << (d->nf % 64)) - 1;
            uint64_t both = pres[k] & d->ctx_pres[k], absent = all & ~pres[k];
            if (both) {
                size_t f = k * 64 + (size_t)__builtin_ctzll(both);
                const char *name = feat_name(d, f);
                sem(d, 400, "duplicate_feature", (long)i, name, strlen(name),
                    "examples[%zu]: feature \"%s\" is also in \"context\"", i, name);
                return -1;
            }
            while (absent) {
                size_t f = k * 64 + (size_t)__builtin_ctzll(absent);
                absent &= absent - 1;
                int in_ctx = d->ctx_pres[k] >> (f % 64) & 1;
                if (f < nd) {
                    s.raw[f] = in_ctx ? d->ctx_raw[f] : NAN;
                    s.enc[f] = in_ctx ? d->ctx_enc[f] : ctr_features_dense_missing(&d->def->dense[f]);
                } else {
                    size_t j = f - nd;
                    if (in_ctx) {
                        s.row[j] = d->ctx_row[j];
                        s.off[j] = d->ctx_off[j];
                        s.len[j] = d->ctx_len[j];
                    } else {
                        cat_missing(&s, j);
                    }
                }
            }
        }
    }
    return 0;
}

/* The start shared by both body parsers: the body must be a JSON object.
 * Returns the position after '{' and its whitespace, or NULL with the
 * error recorded. */
static const uchar *body_object_open(dec_t *d, const uchar *p)
{
    if (p >= d->end) {
        SYN(d, p, "empty body");
        return NULL;
    }
    if (*p != '{') {
        sem(d, 400, "wrong_type", -1, NULL, 0, "the body must be a JSON object");
        return NULL;
    }
    return ws(p + 1, d->end);
}

/* One member of the body's top-level object, shared by both parsers: the
 * key must be one of keys[] (expected lists them for the error) and may
 * appear once (*seen: a bit per key). Returns the member value's first
 * byte with *which = the key's index, or NULL with the error recorded. */
static const uchar *top_member(dec_t *d, const uchar *p, const char *const *keys, int nkeys,
                               const char *expected, unsigned *seen, int *which)
{
    const uchar *end = d->end;
    const char *k;
    size_t klen;
    char kbuf[KEY_CAP];
    if (p >= end || *p != '"')
        return SYN(d, p, "expected a string key");
    p = scan_key(d, p, kbuf, &k, &klen);
    if (!p)
        return NULL;
    int i = 0;
    while (i < nkeys && !key_is(k, klen, keys[i]))
        i++;
    if (i == nkeys)
        return sem(d, 400, "unknown_field", -1, NULL, 0, "unknown field \"%.*s\" (expected %s)",
                   (int)(klen < 64 ? klen : 64), k, expected);
    if (*seen & (1u << i))
        return sem(d, 400, "duplicate_key", -1, NULL, 0, "\"%.*s\" appears twice", (int)klen, k);
    *seen |= 1u << i;
    *which = i;
    p = ws(p, end);
    if (p >= end || *p != ':')
        return SYN(d, p, "expected ':' after an object key");
    p = ws(p + 1, end);
    if (p >= end)
        return SYN(d, p, "unexpected end of body, expected a value");
    return p;
}

/* After a top-level member's value (at *pp): 1 when another member
 * follows, 0 when the object closed, -1 on a syntax error. Moves *pp past
 * the ',' and its whitespace, or past the '}'. */
static int top_next(dec_t *d, const uchar **pp)
{
    const uchar *p = ws(*pp, d->end);
    if (p < d->end && *p == ',') {
        *pp = ws(p + 1, d->end);
        return 1;
    }
    if (p < d->end && *p == '}') {
        *pp = p + 1;
        return 0;
    }
    SYN(d, p, "expected ',' or '}' after an object member");
    return -1;
}

/* The body's end: nothing but whitespace may follow the object. */
static int body_end(dec_t *d, const uchar *p)
{
    p = ws(p, d->end);
    if (p < d->end) {
        SYN(d, p, "unexpected data after the JSON value");
        return -1;
    }
    return 0;
}

static const char *const V1_KEYS[] = {"examples", "context", "request_id"};
enum { V1_EXAMPLES, V1_CONTEXT, V1_REQUEST_ID };

static int v1_parse(dec_t *d)
{
    const uchar *end = d->end, *p = ws(d->beg, end);
    unsigned seen = 0;

    if (!(p = body_object_open(d, p)))
        return -1;
    int more = 1;
    if (p < end && *p == '}') {
        p++;
        more = 0;
    }
    while (more) {
        int which = 0;
        p = top_member(d, p, V1_KEYS, 3, "request_id, context, examples", &seen, &which);
        if (!p)
            return -1;
        if (which == V1_EXAMPLES) {
            p = examples_array(d, p);
        } else if (which == V1_CONTEXT) {
            if (*p == '{')
                p = features_object(d, p, -1);
            else if (*p == 'n' && lit(p, end, "null", 4))
                p += 4;
            else
                p = sem(d, 400, "wrong_type", -1, NULL, 0, "\"context\" must be an object");
        } else {
            p = request_id(d, p, "request_id");
        }
        if (!p || (more = top_next(d, &p)) < 0)
            return -1;
    }
    if (body_end(d, p))
        return -1;
    if (!(seen & (1u << V1_EXAMPLES)))
        return sem(d, 400, "missing_examples", -1, NULL, 0, "\"examples\" is missing"), -1;
    return v1_finish(d);
}

/* ---- v2 ---------------------------------------------------------------- */

enum { IN_DENSE = 0, IN_SPARSE = 1 };
enum { DT_OTHER = 0, DT_FP32, DT_BYTES, DT_INT64 };

typedef struct {
    int has_name, has_dt, has_shape, has_data, has_params;
    char name[24];
    size_t name_len;
    char dt[16];
    size_t dt_len;
    size_t rank;
    uint64_t dims[2];
    const uchar *data;
    size_t leaves;
} v2_input_t;

typedef struct {
    int done[2];
    size_t b;     /* examples, once the first input is decoded */
} v2_state_t;

/* A short string value (name, datatype) into buf; longer ones are kept
 * truncated, with *len the full length, so they compare unequal. */
static const uchar *short_string(dec_t *d, const uchar *p, char *buf, size_t cap, size_t *len,
                                 const char *what, long idx)
{
    if (*p != '"')
        return sem(d, 400, "wrong_type", -1, NULL, 0, "%s[%ld]: expected a string", what, idx);
    return scan_string(d, p + 1, buf, cap, len);
}

static int str_is(const char *s, size_t len, size_t cap, const char *word)
{
    return len <= cap && key_is(s, len, word);
}

/* The tensor's elements, flattened in row-major order. */
static const uchar *v2_data(dec_t *d, const v2_input_t *in, int which, int dt)
{
    const uchar *p = in->data, *end = d->end;
    size_t n = which == IN_DENSE ? d->nd : d->nc, k = 0, depth = 0;
    for (;;) {
        p = ws(p, end);
        CTR_ASSERT(p < end); /* validated by skip_value */
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
        size_t i = k / n, j = k % n;
        slots_t s = example_slots(d, i);
        k++;
        if (which == IN_DENSE) {
            p = dense_value(d, p, j, &s, (long)i);
        } else if (c == 'n' && lit(p, end, "null", 4)) {
            cat_missing(&s, j);
            p += 4;
        } else if (dt == DT_BYTES && c == '"') {
            p = cat_string(d, p, j, &s, (long)i, 1);
        } else if (dt == DT_INT64 && is_num_start(c)) {
            p = cat_int(d, p, j, &s, (long)i);
        } else {
            const char *name = d->def->cat[j].name;
            return sem(d, 400, "wrong_type", (long)i, name, strlen(name),
                       "input \"sparse\" (%s): element [%zu][%zu] (feature \"%s\") must be %s or null",
                       dt == DT_BYTES ? "BYTES" : "INT64", i, j, name,
                       dt == DT_BYTES ? "a string" : "an integer");
        }
        if (!p)
            return NULL;
    }
}

/* Checks an input once its object is closed, then decodes its data. */
static const uchar *v2_input_close(dec_t *d, v2_state_t *st, const v2_input_t *in, long idx,
                                   const uchar *p)
{
    if (!in->has_name)
        return sem(d, 400, "missing_field", -1, NULL, 0, "inputs[%ld] has no \"name\"", idx);
    int which;
    if (str_is(in->name, in->name_len, sizeof(in->name), "dense"))
        which = IN_DENSE;
    else if (str_is(in->name, in->name_len, sizeof(in->name), "sparse"))
        which = IN_SPARSE;
    else
        return sem(d, 400, "unknown_input", -1, NULL, 0,
                   "inputs[%ld]: unknown input \"%.*s\" (expected \"dense\" and \"sparse\")", idx,
                   (int)(in->name_len < sizeof(in->name) ? in->name_len : sizeof(in->name)),
                   in->name);
    const char *iname = which == IN_DENSE ? "dense" : "sparse";
    if (st->done[which])
        return sem(d, 400, "duplicate_input", -1, NULL, 0, "input \"%s\" appears twice", iname);
    if (!in->has_dt || !in->has_shape || !in->has_data)
        return sem(d, 400, "missing_field", -1, NULL, 0, "input \"%s\" has no \"%s\"", iname,
                   !in->has_dt ? "datatype" : !in->has_shape ? "shape" : "data");
    int dt = DT_OTHER;
    if (str_is(in->dt, in->dt_len, sizeof(in->dt), "FP32"))
        dt = DT_FP32;
    else if (str_is(in->dt, in->dt_len, sizeof(in->dt), "BYTES"))
        dt = DT_BYTES;
    else if (str_is(in->dt, in->dt_len, sizeof(in->dt), "INT64"))
        dt = DT_INT64;
    if (which == IN_DENSE ? dt != DT_FP32 : dt != DT_BYTES && dt != DT_INT64)
        return sem(d, 400, "bad_datatype", -1, NULL, 0, "input \"%s\": datatype must be %s",
                   iname, which == IN_DENSE ? "FP32" : "BYTES or INT64");
    size_t n = which == IN_DENSE ? d->nd : d->nc;
    if (in->rank != 2)
        return sem(d, 400, "bad_shape", -1, NULL, 0,
                   "input \"%s\": shape must be [batch, %zu], got %zu dimensions", iname, n,
                   in->rank);
    if (in->dims[1] != n)
        return sem(d, 400, "bad_shape", -1, NULL, 0,
                   "input \"%s\": shape [%llu, %llu], the model has %zu %s features", iname,
                   (unsigned long long)in->dims[0], (unsigned long long)in->dims[1], n, iname);
    if (in->dims[0] == 0)
        return sem(d, 400, "bad_shape", -1, NULL, 0, "input \"%s\": batch size 0", iname);
    if (in->dims[0] > d->max_examples)
        return sem(d, 413, "too_many_examples", -1, NULL, 0,
                   "input \"%s\": batch of %llu examples, at most %zu allowed", iname,
                   (unsigned long long)in->dims[0], d->max_examples);
    size_t b = (size_t)in->dims[0];
    if (st->b && b != st->b)
        return sem(d, 400, "bad_shape", -1, NULL, 0,
                   "input \"%s\": batch %zu differs from the other input's %zu", iname, b, st->b);
    if (in->leaves != b * n)
        return sem(d, 400, "bad_shape", -1, NULL, 0,
                   "input \"%s\": shape [%zu, %zu] needs %zu elements, data has %zu", iname, b, n,
                   b * n, in->leaves);
    if (!st->b) {
        if (arena_alloc(d, b, 0))
            return NULL;
        st->b = b;
        d->req->n = b;
    }
    if (n && !v2_data(d, in, which, dt))
        return NULL;
    st->done[which] = 1;
    return p;
}

static const uchar *v2_shape(dec_t *d, const uchar *p, v2_input_t *in, long idx)
{
    const uchar *end = d->end;
    if (*p != '[')
        return sem(d, 400, "wrong_type", -1, NULL, 0, "inputs[%ld]: \"shape\" must be an array",
                   idx);
    p = ws(p + 1, end);
    if (p < end && *p == ']')
        return p + 1;
    for (;;) {
        ctr__json_num_t num;
        if (p >= end || !is_num_start(*p))
            return sem(d, 400, "bad_shape", -1, NULL, 0,
                       "inputs[%ld]: \"shape\" must hold non-negative integers", idx);
        long k = ctr__json_num_parse((const char *)p, (size_t)(end - p), 0, &num);
        if (k < 0)
            return SYN(d, p + (-k - 1), "invalid number");
        if (num.overflow)
            return syntax(d, p, "number_out_of_range", "number beyond the range of a double");
        if (!num.int_ok || num.i < 0)
            return sem(d, 400, "bad_shape", -1, NULL, 0,
                       "inputs[%ld]: \"shape\" must hold non-negative integers", idx);
        if (in->rank < 2)
            in->dims[in->rank] = (uint64_t)num.i;
        in->rank++;
        p = ws(p + k, end);
        if (p < end && *p == ',') {
            p = ws(p + 1, end);
            continue;
        }
        if (p < end && *p == ']')
            return p + 1;
        return SYN(d, p, "expected ',' or ']' after an array element");
    }
}

static const uchar *v2_input(dec_t *d, v2_state_t *st, const uchar *p, long idx)
{
    const uchar *end = d->end;
    v2_input_t in;
    char kbuf[KEY_CAP];
    memset(&in, 0, sizeof(in));
    p = ws(p + 1, end);
    if (p < end && *p == '}')
        return v2_input_close(d, st, &in, idx, p + 1);
    for (;;) {
        const char *k;
        size_t klen;
        int *seen;
        if (p >= end || *p != '"')
            return SYN(d, p, "expected a string key");
        p = scan_key(d, p, kbuf, &k, &klen);
        if (!p)
            return NULL;
        if (key_is(k, klen, "name"))
            seen = &in.has_name;
        else if (key_is(k, klen, "datatype"))
            seen = &in.has_dt;
        else if (key_is(k, klen, "shape"))
            seen = &in.has_shape;
        else if (key_is(k, klen, "data"))
            seen = &in.has_data;
        else if (key_is(k, klen, "parameters"))
            seen = &in.has_params;
        else
            return sem(d, 400, "unknown_field", -1, NULL, 0,
                       "inputs[%ld]: unknown field \"%.*s\"", idx, (int)(klen < 64 ? klen : 64), k);
        if (*seen)
            return sem(d, 400, "duplicate_key", -1, NULL, 0, "inputs[%ld]: \"%.*s\" appears twice",
                       idx, (int)klen, k);
        *seen = 1;
        p = ws(p, end);
        if (p >= end || *p != ':')
            return SYN(d, p, "expected ':' after an object key");
        p = ws(p + 1, end);
        if (p >= end)
            return SYN(d, p, "unexpected end of body, expected a value");
        if (seen == &in.has_name) {
            p = short_string(d, p, in.name, sizeof(in.name), &in.name_len, "inputs", idx);
        } else if (seen == &in.has_dt) {
            p = short_string(d, p, in.dt, sizeof(in.dt), &in.dt_len, "inputs", idx);
        } else if (seen == &in.has_shape) {
            p = v2_shape(d, p, &in, idx);
        } else if (seen == &in.has_data) {
            if (*p != '[')
                return sem(d, 400, "wrong_type", -1, NULL, 0,
                           "inputs[%ld]: \"data\" must be an array", idx);
            in.data = p;
            p = skip_value(d, p, 3, &in.leaves);
        } else {
            if (*p != '{')
                return sem(d, 400, "wrong_type", -1, NULL, 0,
                           "inputs[%ld]: \"parameters\" must be an object", idx);
            p = skip_value(d, p, 3, NULL);
        }
        if (!p)
            return NULL;
        p = ws(p, end);
        if (p < end && *p == ',') {
            p = ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}')
            return v2_input_close(d, st, &in, idx, p + 1);
        return SYN(d, p, "expected ',' or '}' after an object member");
    }
}

static const uchar *v2_output(dec_t *d, const uchar *p, long idx)
{
    const uchar *end = d->end;
    int has_name = 0, has_params = 0;
    char name[16], kbuf[KEY_CAP];
    size_t name_len = 0;
    p = ws(p + 1, end);
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
        p = scan_key(d, p, kbuf, &k, &klen);
        if (!p)
            return NULL;
        if (key_is(k, klen, "name"))
            seen = &has_name;
        else if (key_is(k, klen, "parameters"))
            seen = &has_params;
        else
            return sem(d, 400, "unknown_field", -1, NULL, 0,
                       "outputs[%ld]: unknown field \"%.*s\"", idx, (int)(klen < 64 ? klen : 64), k);
        if (*seen)
            return sem(d, 400, "duplicate_key", -1, NULL, 0,
                       "outputs[%ld]: \"%.*s\" appears twice", idx, (int)klen, k);
        *seen = 1;
        p = ws(p, end);
        if (p >= end || *p != ':')
            return SYN(d, p, "expected ':' after an object key");
        p = ws(p + 1, end);
        if (p >= end)
            return SYN(d, p, "unexpected end of body, expected a value");
        if (seen == &has_name) {
            p = short_string(d, p, name, sizeof(name), &name_len, "outputs", idx);
        } else {
            if (*p != '{')
                return sem(d, 400, "wrong_type", -1, NULL, 0,
                           "outputs[%ld]: \"parameters\" must be an object", idx);
            p = skip_value(d, p, 3, NULL);
        }
        if (!p)
            return NULL;
        p = ws(p, end);
        if (p < end && *p == ',') {
            p = ws(p + 1, end);
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
        return sem(d, 400, "missing_field", -1, NULL, 0, "outputs[%ld] has no \"name\"", idx);
    if (!str_is(name, name_len, sizeof(name), "score"))
        return sem(d, 400, "unknown_output", -1, NULL, 0,
                   "outputs[%ld]: unknown output \"%.*s\" (the model has \"score\")", idx,
                   (int)(name_len < sizeof(name) ? name_len : sizeof(name)), name);
    return p;
}

/* "inputs" or "outputs": an array of objects. */
static const uchar *v2_array(dec_t *d, v2_state_t *st, const uchar *p, int inputs)
{
    const uchar *end = d->end;
    const char *what = inputs ? "inputs" : "outputs";
    if (*p != '[')
        return sem(d, 400, "wrong_type", -1, NULL, 0, "\"%s\" must be an array of objects", what);
    p = ws(p + 1, end);
    if (p < end && *p == ']')
        return p + 1;
    for (long i = 0;; i++) {
        if (p >= end || *p != '{')
            return sem(d, 400, "wrong_type", -1, NULL, 0, "%s[%ld] must be an object", what, i);
        p = inputs ? v2_input(d, st, p, i) : v2_output(d, p, i);
        if (!p)
            return NULL;
        p = ws(p, end);
        if (p < end && *p == ',') {
            p = ws(p + 1, end);
            continue;
        }
        if (p < end && *p == ']')
            return p + 1;
        return SYN(d, p, "expected ',' or ']' after an array element");
    }
}

static const char *const V2_KEYS[] = {"inputs", "id", "outputs", "parameters"};
enum { V2_INPUTS, V2_ID, V2_OUTPUTS, V2_PARAMETERS };

static int v2_parse(dec_t *d)
{
    const uchar *end = d->end, *p = ws(d->beg, end);
    unsigned seen = 0;
    v2_state_t st = {{0, 0}, 0};

    if (!(p = body_object_open(d, p)))
        return -1;
    int more = 1;
    if (p < end && *p == '}') {
        p++;
        more = 0;
    }
    while (more) {
        int which = 0;
        p = top_member(d, p, V2_KEYS, 4, "id, inputs, outputs, parameters", &seen, &which);
        if (!p)
            return -1;
        if (which == V2_INPUTS || which == V2_OUTPUTS) {
            p = v2_array(d, &st, p, which == V2_INPUTS);
        } else if (which == V2_ID) {
            p = request_id(d, p, "id");
        } else {
            if (*p != '{')
                return sem(d, 400, "wrong_type", -1, NULL, 0, "\"parameters\" must be an object"), -1;
            p = skip_value(d, p, 1, NULL);
        }
        if (!p || (more = top_next(d, &p)) < 0)
            return -1;
    }
    if (body_end(d, p))
        return -1;
    for (int w = 0; w < 2; w++) {
        size_t n = w == IN_DENSE ? d->nd : d->nc;
        if (n && !st.done[w])
            return sem(d, 400, "missing_input", -1, NULL, 0, "input \"%s\" is missing",
                       w == IN_DENSE ? "dense" : "sparse"), -1;
    }
    if (!st.b)
        return sem(d, 400, "missing_input", -1, NULL, 0, "no inputs"), -1;
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
 * confirm would be a decoder bug: reported as 500, never as the client's
 * fault. */
static int conclude_failure(dec_t *d)
{
    ctr_decode_error_t *e = d->e;
    int err = d->err;
    if (err == ERR_NOMEM) {
        reset_error(e);
        e->http_status = 500;
        e->code = "out_of_memory";
        snprintf(e->message, sizeof(e->message), "out of memory decoding the request");
        return CTR_ENOMEM;
    }
    syn_t fast = d->syn;
    if (validate(d)) {
        const syn_t *s = &d->syn;
        reset_error(e);
        e->http_status = 400;
        e->code = s->code;
        if (!strcmp(s->code, "nesting_too_deep"))
            snprintf(e->message, sizeof(e->message),
                     "JSON nested deeper than %zu levels at byte %zu", d->max_depth, s->at);
        else if (!strcmp(s->code, "number_out_of_range"))
            snprintf(e->message, sizeof(e->message),
                     "number at byte %zu is beyond the range of a double", s->at);
        else if (!strcmp(s->code, "invalid_utf8"))
            snprintf(e->message, sizeof(e->message), "invalid UTF-8 at byte %zu", s->at);
        else
            snprintf(e->message, sizeof(e->message), "malformed JSON at byte %zu: %s", s->at,
                     s->why);
        return CTR_EFORMAT;
    }
    if (err == ERR_SEMANTIC)
        return e->http_status == 413 ? CTR_ETOOBIG : CTR_EINVAL;
    reset_error(e);
    e->http_status = 500;
    e->code = "internal_error";
    snprintf(e->message, sizeof(e->message),
             "request decoder disagrees with its validator at byte %zu (%s)", fast.at,
             fast.why ? fast.why : "?");
    return CTR_EINVAL;
}

static int decode(int v2, const ctr_model_t *m, const char *body, size_t len,
                  const ctr_decode_limits_t *lim, ctr_request_t *req, ctr_decode_error_t *e)
{
    ctr_decode_error_t dummy;
    dec_t d;
    if (!e)
        e = &dummy;
    reset_error(e);
    request_clear(req);
    if (!body)
        len = 0;
    if (len > (size_t)UINT32_MAX - 1024) { /* cat_off is 32-bit */
        e->http_status = 413;
        e->code = "body_too_large";
        snprintf(e->message, sizeof(e->message), "request body of %zu bytes is too large", len);
        return CTR_ETOOBIG;
    }
    memset(&d, 0, sizeof(d));
    d.beg = (const uchar *)(body ? body : "");
    d.end = d.beg + len;
    d.m = m;
    d.def = ctr_model_def(m);
    d.nd = d.def->n_dense;
    d.nc = d.def->n_cat;
    d.nf = d.nd + d.nc;
    d.words = (d.nf + 63) / 64;
    d.max_examples = lim && lim->max_examples ? lim->max_examples : DEFAULT_MAX_EXAMPLES;
    d.max_depth = lim && lim->max_depth ? lim->max_depth : DEFAULT_MAX_DEPTH;
    if (d.max_depth < MIN_MAX_DEPTH)
        d.max_depth = MIN_MAX_DEPTH;
    if (d.max_depth > MAX_MAX_DEPTH)
        d.max_depth = MAX_MAX_DEPTH;
    d.e = e;
    d.req = req;
    d.v2 = v2;

    int rc;
    if (v2) {
        rc = v2_parse(&d);
    } else {
        /* Every example is an object with its own '{': a bound on n. */
        size_t braces = 0;
        for (const uchar *p = d.beg; (p = memchr(p, '{', (size_t)(d.end - p))); p++)
            braces++;
        size_t cap = braces < d.max_examples ? braces : d.max_examples;
        rc = arena_alloc(&d, cap ? cap : 1, 1);
        if (!rc)
            rc = v1_parse(&d);
    }
    if (rc == 0) {
        req->n_dense = d.nd;
        req->n_cat = d.nc;
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
    return decode(0, m, body, len, lim, req, e);
}

int ctr__decode_v2(const ctr_model_t *m, const char *body, size_t len,
                   const ctr_decode_limits_t *lim, ctr_request_t *req, ctr_decode_error_t *e)
{
    return decode(1, m, body, len, lim, req, e);
}
