/* buf.h - an append-only text buffer for JSON and Prometheus output.
 *
 * Growable (heap, for responses: one allocation per response, grown by
 * doubling) or fixed (caller's memory, for log lines: truncates instead of
 * growing). After an allocation failure or a truncation `failed` is set
 * and further appends are dropped, so callers check once at the end. The
 * text is always NUL-terminated. */
#ifndef CTR_SERVER_BUF_H
#define CTR_SERVER_BUF_H

#include <stddef.h>

typedef struct {
    char *p;
    size_t len, cap;
    int failed;     /* out of memory, or a fixed buffer ran out of room */
    int fixed;      /* p is the caller's memory: never realloc'd or freed */
} ctr__buf_t;

/* Heap buffer with `initial` bytes reserved; 0 on success, CTR_ENOMEM. */
int ctr__buf_init(ctr__buf_t *b, size_t initial);
/* Fixed buffer over mem[cap] (cap >= 1). */
void ctr__buf_init_fixed(ctr__buf_t *b, char *mem, size_t cap);
void ctr__buf_free(ctr__buf_t *b);
/* Hands the heap text to the caller (free() it) and empties b. */
char *ctr__buf_take(ctr__buf_t *b, size_t *len);

void ctr__buf_put(ctr__buf_t *b, const void *s, size_t n);
void ctr__buf_puts(ctr__buf_t *b, const char *s);
void ctr__buf_putc(ctr__buf_t *b, char c);
void ctr__buf_printf(ctr__buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* s as a JSON string literal, quotes included; bytes that are not valid
 * UTF-8 are replaced by U+FFFD so the output is always valid JSON. */
void ctr__buf_json_str(ctr__buf_t *b, const char *s, size_t n);
/* A float32 as a JSON number that parses back to the same float (%.9g);
 * NaN and infinities, which JSON cannot carry, become null. */
void ctr__buf_float(ctr__buf_t *b, float f);
/* Prometheus label value: backslash, quote and newline escaped. */
void ctr__buf_prom_label(ctr__buf_t *b, const char *s);

#endif
