/* json_text.c - JSON string literals (see json_text.h). */
#include "ctr/json_text.h"

#include <stdint.h>
#include <string.h>

size_t ctr_utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; }
    else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; }
    else if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; }
    else return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

static int utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0, l; i < n; i += l)
        if (!(l = ctr_utf8_len(s + i, n - i)))
            return 0;
    return 1;
}

/* The output cursor: writes while there is room, counts always. */
typedef struct {
    char *p;
    size_t len, cap;
} out_t;

static void emit(out_t *o, const void *s, size_t n)
{
    if (o->len + n <= o->cap)
        memcpy(o->p + o->len, s, n);
    else if (o->len < o->cap)
        o->cap = o->len;    /* cut here, once: no later, shorter piece may land */
    o->len += n;
}

static void emit_u00(out_t *o, unsigned c)
{
    static const char hex[] = "0123456789abcdef";
    char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
    emit(o, e, 6);
}

size_t ctr_json_escape(char *out, size_t cap, const char *str, size_t n,
                       ctr_json_invalid_t invalid, size_t *written)
{
    const unsigned char *s = (const unsigned char *)str;
    int bytes = invalid == CTR_JSON_INVALID_BYTES && !utf8_valid(s, n);
    out_t o = {out, 0, cap};
    emit(&o, "\"", 1);
    size_t i = 0;
    while (i < n) {
        size_t run = i;     /* copy plain bytes in one go */
        while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\')
            run++;
        if (run > i) {
            emit(&o, s + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t l = bytes ? 0 : ctr_utf8_len(s + i, n - i);
            if (l) {
                emit(&o, s + i, l);
                i += l;
            } else {
                if (bytes)
                    emit_u00(&o, c);
                else
                    emit(&o, "\\ufffd", 6);
                i++;
            }
            continue;
        }
        switch (c) {
        case '"': emit(&o, "\\\"", 2); break;
        case '\\': emit(&o, "\\\\", 2); break;
        case '\n': emit(&o, "\\n", 2); break;
        case '\r': emit(&o, "\\r", 2); break;
        case '\t': emit(&o, "\\t", 2); break;
        default: emit_u00(&o, c);
        }
        i++;
    }
    emit(&o, "\"", 1);
    if (written)
        *written = o.len < o.cap ? o.len : o.cap;
    return o.len;
}
