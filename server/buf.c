/* buf.c - append-only text buffer (see buf.h). */
#include "buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/json_text.h"
#include "float_text.h"

int ctr__buf_init(ctr__buf_t *b, size_t initial)
{
    memset(b, 0, sizeof *b);
    if (initial < 64)
        initial = 64;
    b->p = malloc(initial);
    if (!b->p) {
        b->failed = 1;
        return CTR_ENOMEM;
    }
    b->cap = initial;
    b->p[0] = '\0';
    return 0;
}

void ctr__buf_init_fixed(ctr__buf_t *b, char *mem, size_t cap)
{
    memset(b, 0, sizeof *b);
    b->p = mem;
    b->cap = cap;
    b->fixed = 1;
    if (cap)
        mem[0] = '\0';
    else
        b->failed = 1;
}

void ctr__buf_free(ctr__buf_t *b)
{
    if (!b->fixed)
        free(b->p);
    memset(b, 0, sizeof *b);
}

char *ctr__buf_take(ctr__buf_t *b, size_t *len)
{
    char *p = b->p;
    if (len)
        *len = b->len;
    memset(b, 0, sizeof *b);
    return p;
}

/* Makes room for n more bytes plus the NUL; 0 if there is room. */
static int reserve(ctr__buf_t *b, size_t n)
{
    if (b->failed)
        return -1;
    if (b->len + n + 1 <= b->cap)
        return 0;
    if (b->fixed) {
        b->failed = 1;
        return -1;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1) {
        if (cap > SIZE_MAX / 2) {
            b->failed = 1;
            return -1;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void ctr__buf_put(ctr__buf_t *b, const void *s, size_t n)
{
    if (reserve(b, n)) {
        if (b->fixed && b->cap > b->len + 1) {  /* keep what fits */
            size_t room = b->cap - b->len - 1;
            memcpy(b->p + b->len, s, room);
            b->len += room;
            b->p[b->len] = '\0';
        }
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void ctr__buf_puts(ctr__buf_t *b, const char *s)
{
    ctr__buf_put(b, s, strlen(s));
}

void ctr__buf_putc(ctr__buf_t *b, char c)
{
    if (reserve(b, 1))
        return;
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}

void ctr__buf_printf(ctr__buf_t *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        ctr__buf_put(b, small, (size_t)n);
        return;
    }
    if (reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void ctr__buf_json_str(ctr__buf_t *b, const char *str, size_t n)
{
    if (b->failed)
        return;
    size_t room = b->cap > b->len ? b->cap - b->len - 1 : 0, written;
    size_t need = ctr_json_escape(b->p + b->len, room, str, n, CTR_JSON_INVALID_REPLACE, &written);
    if (need > room) {
        if (b->fixed) {     /* keep what fits, as ctr__buf_put does */
            b->len += written;
            b->p[b->len] = '\0';
            b->failed = 1;
            return;
        }
        if (reserve(b, need))
            return;
        ctr_json_escape(b->p + b->len, need, str, n, CTR_JSON_INVALID_REPLACE, NULL);
    }
    b->len += need;
    b->p[b->len] = '\0';
}

void ctr__buf_float(ctr__buf_t *b, float f)
{
    if (!isfinite(f)) {
        ctr__buf_puts(b, "null");
        return;
    }
    char tmp[CTR__FLOAT_TEXT_MAX];
    size_t n = ctr__float_text(tmp, f);
    ctr__buf_put(b, tmp, n);
}

void ctr__buf_prom_label(ctr__buf_t *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            ctr__buf_putc(b, '\\');
        if (*s == '\n') {
            ctr__buf_puts(b, "\\n");
            continue;
        }
        ctr__buf_putc(b, *s);
    }
}
