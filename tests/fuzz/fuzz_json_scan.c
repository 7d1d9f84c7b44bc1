/* fuzz_json_scan.c - libFuzzer target for the JSON scanner alone
 * (server/json_scan.c, under the request decoders), differential against
 * jansson: any bytes are valid JSON for ctr__json_validate exactly when
 * jansson parses them (RFC 8259, any value at the top, whitespace around
 * it) and they nest at most MAX_DEPTH deep; deeper, the scanner's error
 * must be nesting. When the text is one string, number or array, the
 * scanner's reading of it must match jansson's too: the unescaped bytes
 * (whole, and cut at a smaller capacity), the double bit for bit, and the
 * tensor leaf count ctr__json_skip_value gives the v2 decoder. Any error
 * must name a byte within the text. A disagreement aborts with both
 * verdicts and the input on stderr.
 *
 * jansson differs from RFC 8259 and the scanner in three documented ways,
 * handled here: it refuses "\u0000" in an object key even with
 * JSON_ALLOW_NUL (such inputs are skipped: the scanner accepts them), it
 * skips a raw NUL byte after a number (any raw NUL is invalid JSON: never
 * handed to jansson), and it bounds nesting at JSON_PARSER_MAX_DEPTH (2048,
 * beyond MAX_DEPTH, so both refuse). Integers are parsed as doubles
 * (JSON_DECODE_INT_AS_REAL) so that jansson's int64 limit does not apply.
 *
 * Seeds: tests/fuzz/corpus/json_scan/ (bodies from the decoder corpora and
 * hand-written edge cases); replayed under ASan+UBSan by
 * test_fuzz_replay.sh in make test. Build and run: make fuzz. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/json_scan.h"
#include "fuzz.h"

#define MAX_DEPTH 32

static const char *kind_name(ctr__json_err_t e)
{
    switch (e) {
    case CTR__JSON_OK: return "ok";
    case CTR__JSON_MALFORMED: return "malformed";
    case CTR__JSON_BAD_UTF8: return "bad_utf8";
    case CTR__JSON_NUM_RANGE: return "num_range";
    case CTR__JSON_TOO_DEEP: return "too_deep";
    }
    return "?";
}

static void disagree(const uint8_t *data, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
static void disagree(const uint8_t *data, size_t size, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "json_scan disagrees with jansson: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\ninput (%zu bytes): ", size);
    for (size_t i = 0; i < size && i < 2000; i++) {
        unsigned c = data[i];
        if (c >= 0x20 && c < 0x7F && c != '\\')
            fputc((int)c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fputc('\n', stderr);
    abort();
}

/* Nesting depth, the outermost container being 1 (jansson's tree is at
 * most JSON_PARSER_MAX_DEPTH deep: the recursion is bounded). */
static size_t depth_of(const json_t *j)
{
    size_t best = 0;
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v) {
            size_t d = depth_of(v);
            best = d > best ? d : best;
        }
        return best + 1;
    }
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) {
            size_t d = depth_of(v);
            best = d > best ? d : best;
        }
        return best + 1;
    }
    return 0;
}

/* The elements of a nested array, flattened; an object is one element. */
static size_t leaves_of(const json_t *a)
{
    size_t n = 0, i;
    json_t *v;
    json_array_foreach(a, i, v)
        n += json_is_array(v) ? leaves_of(v) : 1;
    return n;
}

/* The top-level value read again with the token readers the decoders use,
 * compared with jansson's reading of it. */
static void check_value(const uint8_t *data, size_t size, const json_t *j)
{
    ctr__json_scan_t s;
    ctr__json_scan_init(&s, data, size, MAX_DEPTH);
    const unsigned char *p = ctr__json_ws(s.beg, s.end), *q = NULL;
    if (json_is_string(j)) {
        size_t len = 0, len2 = 0, want = json_string_length(j);
        char *buf = malloc(size + 1);
        q = ctr__json_scan_string(&s, p + 1, buf, size, &len);
        if (!q || len != want || memcmp(buf, json_string_value(j), want))
            disagree(data, size, "string unescaped differently");
        /* A smaller capacity: the same length, a cut prefix. */
        size_t cap = want / 2;
        const unsigned char *q2 = ctr__json_scan_string(&s, p + 1, buf, cap, &len2);
        if (q2 != q || len2 != want || memcmp(buf, json_string_value(j), cap))
            disagree(data, size, "string cut at half its length read differently");
        free(buf);
    } else if (json_is_real(j)) {
        ctr__json_num_t num;
        double want = json_real_value(j);
        q = ctr__json_scan_number(&s, p, CTR__NUM_WANT_DOUBLE, &num);
        if (!q || memcmp(&num.d, &want, sizeof(want))) {
            disagree(data, size, "number %a, jansson %a", q ? num.d : 0.0, want);
        }
    } else if (json_is_array(j)) {
        size_t leaves = 0;
        q = ctr__json_skip_value(&s, p, 0, &leaves);
        if (!q || leaves != leaves_of(j)) {
            disagree(data, size, "array of %zu leaves, jansson %zu", leaves, leaves_of(j));
        }
    } else {
        return;
    }
    if (ctr__json_ws(q, s.end) != s.end)
        disagree(data, size, "the token ends before the text does");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ctr__json_scan_t s;
    ctr__json_scan_init(&s, data, size, MAX_DEPTH);
    int ok = ctr__json_validate(&s) == 0;
    if (ok ? s.err != CTR__JSON_OK : s.err == CTR__JSON_OK || s.err_at > size || !s.err_why)
        disagree(data, size, "%s with error record %s at %zu", ok ? "valid" : "invalid",
                 kind_name(s.err), s.err_at);

    /* JSON has no place for a raw NUL byte; jansson would skip one after a
     * number. */
    if (memchr(data, 0, size)) {
        if (ok)
            disagree(data, size, "scanner accepted a raw NUL byte");
        return 0;
    }
    json_error_t je;
    json_t *j = json_loadb((const char *)data, size,
                           JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &je);
    if (!j) {
        if (strstr(je.text, "NUL byte in object key"))
            return 0;
        if (ok)
            disagree(data, size, "scanner: valid; jansson: %s", je.text);
        return 0;
    }
    size_t depth = depth_of(j);
    if (depth > MAX_DEPTH) {
        if (s.err != CTR__JSON_TOO_DEEP)
            disagree(data, size, "%zu deep, over %d; scanner: %s", depth, MAX_DEPTH,
                     kind_name(s.err));
    } else if (!ok) {
        disagree(data, size, "jansson: valid; scanner: %s at byte %zu (%s)", kind_name(s.err),
                 s.err_at, s.err_why);
    } else {
        check_value(data, size, j);
    }
    json_decref(j);
    return 0;
}
