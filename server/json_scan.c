/* json_scan.c - the JSON scanner: strings, the generic value validator and
 * skipper (contract in json_scan.h). The request decoders read the shapes
 * they know themselves and come here for strings that need unescaping, for
 * values they only check ("parameters", a tensor's data before it is
 * read) and, after any failure, for the validation of the whole body. */
#include "json_scan.h"

#define SYN(s, p, why) ctr__json_fail((s), (p), CTR__JSON_MALFORMED, (why))

typedef unsigned char uchar;

/* ---- byte classes ------------------------------------------------------ */

const uint8_t ctr__json_str_class[256] = {
    [0 ... 31] = 3, ['"'] = 1, ['\\'] = 2, [128 ... 255] = 4,
};

void ctr__json_scan_init(ctr__json_scan_t *s, const void *text, size_t len, size_t max_depth)
{
    s->beg = (const uchar *)text;
    s->end = s->beg + len;
    s->max_depth = max_depth < 1 ? 1 : max_depth > CTR__JSON_MAX_DEPTH ? CTR__JSON_MAX_DEPTH
                                                                      : max_depth;
    s->err = CTR__JSON_OK;
    s->err_at = 0;
    s->err_why = NULL;
}

const uchar *ctr__json_fail(ctr__json_scan_t *s, const uchar *p, ctr__json_err_t err,
                            const char *why)
{
    s->err = err;
    s->err_at = (size_t)(p - s->beg);
    s->err_why = why;
    return NULL;
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

const uchar *ctr__json_scan_string(ctr__json_scan_t *s, const uchar *p, char *dst, size_t cap,
                                   size_t *len)
{
    const uchar *end = s->end;
    size_t n = 0;
    for (;;) {
        const uchar *q = ctr__json_plain_run(p, end);
        if (n < cap) {
            size_t k = (size_t)(q - p) < cap - n ? (size_t)(q - p) : cap - n;
            memcpy(dst + n, p, k);
        }
        n += (size_t)(q - p);
        p = q;
        if (p >= end)
            return SYN(s, p, "unterminated string");
        switch (ctr__json_str_class[*p]) {
        case 1:
            *len = n;
            return p + 1;
        case 3:
            return SYN(s, p, "control character in string (escape it)");
        case 4: {
            size_t k = utf8_seq(p, end);
            if (!k)
                return ctr__json_fail(s, p, CTR__JSON_BAD_UTF8, "invalid UTF-8");
            for (size_t i = 0; i < k; i++, n++)
                if (n < cap)
                    dst[n] = (char)p[i];
            p += k;
            break;
        }
        default: { /* backslash */
            const uchar *esc = p;
            if (p + 1 >= end)
                return SYN(s, p + 1, "unterminated string");
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
                    return SYN(s, esc, "invalid \\u escape");
                p += 4;
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return SYN(s, esc, "lone low surrogate in \\u escape");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, end, &lo) ||
                        lo < 0xDC00 || lo > 0xDFFF)
                        return SYN(s, esc, "high surrogate not followed by a low surrogate");
                    p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                n = utf8_put(dst, cap, n, cp);
                continue;
            }
            default:
                return SYN(s, esc, "invalid escape in string");
            }
            if (n < cap)
                dst[n] = (char)out;
            n++;
            break;
        }
        }
    }
}

/* ---- generic values: validator and skipper ----------------------------- */

const uchar *ctr__json_skip_value(ctr__json_scan_t *s, const uchar *p, size_t depth0,
                                  size_t *leaves)
{
    uint64_t stack[CTR__JSON_MAX_DEPTH / 64 + 1]; /* bit set: object */
    size_t depth = 0, objs = 0;
    const uchar *end = s->end;
    ctr__json_num_t num;
    size_t slen;

value:
    p = ctr__json_ws(p, end);
    if (p >= end)
        return SYN(s, p, "unexpected end of body, expected a value");
    if (leaves && depth > 0 && objs == 0 && *p != '[')
        (*leaves)++;
    switch (*p) {
    case '{':
    case '[': {
        int obj = *p == '{';
        if (depth0 + depth + 1 > s->max_depth)
            return ctr__json_fail(s, p, CTR__JSON_TOO_DEEP, "nesting too deep");
        if (obj)
            stack[depth / 64] |= 1ull << (depth % 64);
        else
            stack[depth / 64] &= ~(1ull << (depth % 64));
        depth++;
        objs += (size_t)obj;
        p = ctr__json_ws(p + 1, end);
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
        p = ctr__json_scan_string(s, p + 1, NULL, 0, &slen);
        if (!p)
            return NULL;
        goto after;
    case 't':
        if (!ctr__json_lit(p, end, "true", 4))
            return SYN(s, p, "invalid literal");
        p += 4;
        goto after;
    case 'f':
        if (!ctr__json_lit(p, end, "false", 5))
            return SYN(s, p, "invalid literal");
        p += 5;
        goto after;
    case 'n':
        if (!ctr__json_lit(p, end, "null", 4))
            return SYN(s, p, "invalid literal");
        p += 4;
        goto after;
    default: {
        if (!ctr__json_is_num_start(*p))
            return SYN(s, p, "unexpected character, expected a value");
        p = ctr__json_scan_number(s, p, 0, &num);
        if (!p)
            return NULL;
        goto after;
    }
    }

after:
    if (depth == 0)
        return p;
    p = ctr__json_ws(p, end);
    if (p >= end)
        return SYN(s, p, "unexpected end of body");
    if (stack[(depth - 1) / 64] >> ((depth - 1) % 64) & 1) {
        if (*p == ',') {
            p = ctr__json_ws(p + 1, end);
            goto key;
        }
        if (*p != '}')
            return SYN(s, p, "expected ',' or '}' after an object member");
        objs--;
    } else {
        if (*p == ',') {
            p++;
            goto value;
        }
        if (*p != ']')
            return SYN(s, p, "expected ',' or ']' after an array element");
    }
    p++;
    depth--;
    goto after;

key:
    if (p >= end || *p != '"')
        return SYN(s, p, "expected a string key");
    p = ctr__json_scan_string(s, p + 1, NULL, 0, &slen);
    if (!p)
        return NULL;
    p = ctr__json_ws(p, end);
    if (p >= end || *p != ':')
        return SYN(s, p, "expected ':' after an object key");
    p++;
    goto value;
}

int ctr__json_validate(ctr__json_scan_t *s)
{
    s->err = CTR__JSON_OK;
    const uchar *p = ctr__json_ws(s->beg, s->end);
    if (p >= s->end) {
        SYN(s, p, s->beg == s->end ? "empty body" : "body holds only whitespace");
        return -1;
    }
    p = ctr__json_skip_value(s, p, 0, NULL);
    if (!p)
        return -1;
    p = ctr__json_ws(p, s->end);
    if (p < s->end) {
        SYN(s, p, "unexpected data after the JSON value");
        return -1;
    }
    return 0;
}
