/* json_text.h - JSON string literals: the one escaper of ctr (ctrd's
 * response bodies, logs and metrics labels; ctrtool's JSON output). */
#ifndef CTR_JSON_TEXT_H
#define CTR_JSON_TEXT_H

#include <stddef.h>

/* What to do with bytes that are not valid UTF-8. */
typedef enum {
    /* Each invalid byte becomes U+FFFD, valid UTF-8 passes as it is
     * (text for people and clients: responses, logs). */
    CTR_JSON_INVALID_REPLACE = 0,
    /* A string that is not valid UTF-8 as a whole is written byte for byte
     * as \u00XX for every byte >= 0x80, so a reader can get the bytes back
     * (ctrtool audit dump: values exactly as the model saw them). */
    CTR_JSON_INVALID_BYTES = 1,
} ctr_json_invalid_t;

/* Room that ctr_json_escape may need for n input bytes. */
#define CTR_JSON_ESCAPE_MAX(n) (6 * (size_t)(n) + 2)

/* s[0..n) as a quoted JSON string, written like snprintf: at most cap
 * bytes into out (whole escapes only, no NUL; *written, when not NULL,
 * says how many), and the return value is the full length, so a return
 * > cap means the text was cut. '"' and '\\' are
 * escaped, \n \r \t by their short forms, other control characters as
 * \u00XX. */
size_t ctr_json_escape(char *out, size_t cap, const char *s, size_t n,
                       ctr_json_invalid_t invalid, size_t *written);

/* Length of the valid UTF-8 sequence starting at s (at most n bytes), 0 if
 * it is not one (overlong forms, surrogates and > U+10FFFF are invalid). */
size_t ctr_utf8_len(const unsigned char *s, size_t n);

#endif
