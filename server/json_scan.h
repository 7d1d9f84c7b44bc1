/* json_scan.h - the JSON scanner under the request decoders: byte classes,
 * whitespace, strings (validated and unescaped), numbers (json_num.h), and
 * a generic validator and skipper for whole values. It knows JSON (RFC
 * 8259, UTF-8 per RFC 3629) and nothing of requests, so it is fuzzed alone
 * (tests/fuzz/fuzz_json_scan.c, against jansson).
 *
 * The text is a byte range [beg, end), not NUL-terminated: nothing here
 * reads at or past end. Functions that read a token take its first byte p
 * and return the byte after it, or NULL on a syntax error, which they
 * record in the scanner (the last one recorded wins): its kind, its byte
 * offset from beg and what was expected there. Nothing allocates and
 * nothing recurses: containers are walked with an explicit bit stack, so
 * max_depth is bounded by CTR__JSON_MAX_DEPTH.
 *
 * The per-byte helpers are static inline here because the decoders call
 * them on every token (decode_v1.c, decode_v2.c); the rest is json_scan.c. */
#ifndef CTR_SERVER_JSON_SCAN_H
#define CTR_SERVER_JSON_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "json_num.h"

#define CTR__JSON_MAX_DEPTH 1024 /* the bit stack lives on the C stack */

/* What a syntax error was. The request decoders report each under its own
 * error name (decode.c). */
typedef enum {
    CTR__JSON_OK = 0,
    CTR__JSON_MALFORMED,  /* not JSON: "malformed_json" */
    CTR__JSON_BAD_UTF8,   /* a string holds invalid UTF-8: "invalid_utf8" */
    CTR__JSON_NUM_RANGE,  /* a number beyond the range of a double: "number_out_of_range" */
    CTR__JSON_TOO_DEEP,   /* containers nested deeper than max_depth: "nesting_too_deep" */
} ctr__json_err_t;

typedef struct {
    const unsigned char *beg, *end; /* the text (borrowed) */
    size_t max_depth;               /* 1..CTR__JSON_MAX_DEPTH; the outermost container is 1 */
    ctr__json_err_t err;            /* the last syntax error recorded, CTR__JSON_OK if none */
    size_t err_at;                  /* its byte offset from beg */
    const char *err_why;            /* what was wrong there, e.g. "invalid escape in string" */
} ctr__json_scan_t;

/* Points s at [text, text + len) with no error recorded. max_depth is
 * clamped to 1..CTR__JSON_MAX_DEPTH. */
void ctr__json_scan_init(ctr__json_scan_t *s, const void *text, size_t len, size_t max_depth);

/* Records a syntax error at p (why: a static string) and returns NULL, so
 * a reader can `return ctr__json_fail(...)`. */
const unsigned char *ctr__json_fail(ctr__json_scan_t *s, const unsigned char *p,
                                    ctr__json_err_t err, const char *why);

/* Reads a string whose opening quote is at p[-1]: validates it (escapes,
 * surrogate pairs, UTF-8, no raw control bytes), writes at most cap
 * unescaped bytes to dst (NULL when cap is 0) and the full unescaped length
 * to *len, which may exceed cap (unescaping never lengthens a string, so
 * *len is at most the token's length). Returns the byte after the closing
 * quote. */
const unsigned char *ctr__json_scan_string(ctr__json_scan_t *s, const unsigned char *p,
                                           char *dst, size_t cap, size_t *len);

/* Skips one JSON value at p (whitespace first), fully validated. depth0:
 * containers already open around it, counted against max_depth. leaves, if
 * not NULL, counts the values that sit in arrays only (the value at p being
 * an array): the elements of a possibly nested tensor, an object counting
 * as one. Returns the byte after the value. */
const unsigned char *ctr__json_skip_value(ctr__json_scan_t *s, const unsigned char *p,
                                          size_t depth0, size_t *leaves);

/* The whole text as one JSON value with optional whitespace around it:
 * 0 if valid; else -1 with its first syntax error in s. */
int ctr__json_validate(ctr__json_scan_t *s);

/* ---- per-byte helpers -------------------------------------------------- */

/* Inside a string: 0 plain printable ASCII, 1 '"', 2 '\\', 3 control
 * (invalid raw), 4 a byte >= 0x80 (UTF-8, validated). */
extern const uint8_t ctr__json_str_class[256];

/* The first byte at or after p that is not plain string content ('"',
 * '\\', a control byte or a byte >= 0x80), or end. SSE2 (baseline on
 * x86-64) looks at 16 bytes at a time: a signed compare below 0x20 catches
 * both control bytes and bytes >= 0x80. */
static inline const unsigned char *ctr__json_plain_run(const unsigned char *p,
                                                       const unsigned char *end)
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
    while (p < end && ctr__json_str_class[*p] == 0)
        p++;
    return p;
}

static inline int ctr__json_is_ws(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Skips JSON whitespace. Compact bodies have none between most tokens;
 * pretty-printed ones have runs (newline + indentation), taken 16 bytes at
 * a time. */
static inline const unsigned char *ctr__json_ws(const unsigned char *p, const unsigned char *end)
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
    while (p < end && ctr__json_is_ws(*p))
        p++;
    return p;
}

static inline int ctr__json_is_num_start(unsigned char c)
{
    return c == '-' || (unsigned)(c - '0') < 10u;
}

/* The n bytes of word (true, false, null) at p. */
static inline int ctr__json_lit(const unsigned char *p, const unsigned char *end, const char *word,
                                size_t n)
{
    return (size_t)(end - p) >= n && !memcmp(p, word, n);
}

/* Reads the number token at p into *num (flags: json_num.h). Returns the
 * byte after it; NULL if the bytes at p are not a JSON number
 * (CTR__JSON_MALFORMED at the first offending byte) or its value is beyond
 * the range of a double (CTR__JSON_NUM_RANGE at p). */
static inline const unsigned char *ctr__json_scan_number(ctr__json_scan_t *s,
                                                         const unsigned char *p, int flags,
                                                         ctr__json_num_t *num)
{
    long k = ctr__json_num_parse((const char *)p, (size_t)(s->end - p), flags, num);
    if (k < 0)
        return ctr__json_fail(s, p + (-k - 1), CTR__JSON_MALFORMED, "invalid number");
    if (num->overflow)
        return ctr__json_fail(s, p, CTR__JSON_NUM_RANGE, "number beyond the range of a double");
    return p + k;
}

#endif
