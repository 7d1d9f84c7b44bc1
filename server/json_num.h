/* json_num.h - exact parsing of one JSON number token (RFC 8259 grammar).
 *
 * The request decoders read numbers in place, without a NUL-terminated
 * copy on the common path: integers and short decimals are converted
 * exactly (Clinger's fast path: a mantissa below 2^53 times or divided by
 * an exact power of ten is one correctly rounded IEEE operation), anything
 * else goes through strtod_l in the C locale on a bounded, normalized copy
 * of the token (at most 800 significant digits plus a sticky digit, which
 * decides every double exactly). Either way the result is bit-identical to
 * strtod on the token. Nothing is allocated. */
#ifndef CTR_SERVER_JSON_NUM_H
#define CTR_SERVER_JSON_NUM_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    double d;          /* the value (only with CTR__NUM_WANT_DOUBLE, else 0) */
    int64_t i;         /* the value when int_ok */
    unsigned is_int;   /* the token has no fraction and no exponent */
    unsigned int_ok;   /* is_int and the value fits int64 */
    unsigned overflow; /* |value| rounds beyond DBL_MAX (always decided) */
} ctr__json_num_t;

enum {
    CTR__NUM_WANT_DOUBLE = 1, /* compute d; without it only `overflow` is decided */
};

/* Parses the number token starting at p (at most avail bytes). Returns the
 * token length (> 0), or -(k + 1) when the bytes do not start a JSON
 * number, k being the offset of the first offending byte from p ("01",
 * "1.", "-", "1e+" are errors). What follows a complete token is the
 * caller's business. */
long ctr__json_num_parse(const char *p, size_t avail, int flags, ctr__json_num_t *out);

#endif
