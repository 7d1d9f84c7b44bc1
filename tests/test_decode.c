/* test_decode.c - the request decoders (server/decode*.c) against a jansson
 * reference decoder written here from docs/DECODER.md.
 *
 * Both read the same bodies: hand-written cases with their expected error
 * codes, generated valid v1 and v2 bodies, random mutations of them, every
 * prefix of a few, and the fuzz seed corpora under tests/fuzz/corpus/
 * (the reference and the comparison live in decode_ref.c, shared with the
 * differential fuzz targets tests/fuzz/fuzz_decode_v*.c). They
 * must agree on accept/reject, on the error (its class for broken JSON; the
 * exact code, example and feature otherwise) and on every decoded value,
 * bit for bit. jansson cannot judge three things (it rejects duplicate keys
 * and NUL in keys at parse time, and integers beyond int64); such bodies
 * are counted as "limited", and the hand-written cases cover them.
 *
 *     test_decode                   the tests
 *     test_decode --bench [N]       decoder vs jansson throughput
 *     test_decode --write-corpus    (re)write the fuzz seed corpora
 *     test_decode --write-corpus bags   only tests/fuzz/corpus/decode_bags/ */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../server/json_num.h"
#include "../server/decode.h"
#include "../server/respond.h"
#include "decode_ref.h"
#include "ctr/common.h"
#include "ctr/features.h"
#include "ctr/model.h"
#include "testutil.h"

#define ND REF_ND
#define NC REF_NC
#define MAX_EX REF_MAX_EX
#define MAX_DEPTH REF_MAX_DEPTH
#define CORPUS_V1 "tests/fuzz/corpus/decode_v1"
#define CORPUS_V2 "tests/fuzz/corpus/decode_v2"
#define CORPUS_BAGS "tests/fuzz/corpus/decode_bags"

static ctr_model_t *g_m;
static const ctr_model_def_t *g_def;
static size_t g_nd, g_nc;
static const ctr_decode_limits_t g_lim = {MAX_EX, MAX_DEPTH};

/* ---- a growable string ------------------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
} sb_t;

static void sb_put(sb_t *b, const void *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_puts(sb_t *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_printf(sb_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sb_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    CTR_ASSERT(n >= 0);
    char *tmp = malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(tmp, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_put(b, tmp, (size_t)n);
    free(tmp);
}


/* ---- comparing (the reference decoder is in decode_ref.c) ------------- */

static int g_prints;

static int bits_eq_d(double a, double b)
{
    return !memcmp(&a, &b, sizeof(a));
}

static void print_body(const char *body, size_t len)
{
    fprintf(stderr, "    body (%zu bytes): \"", len);
    for (size_t i = 0; i < len && i < 600; i++) {
        unsigned char c = (unsigned char)body[i];
        if (c >= 0x20 && c < 0x7F && c != '\\')
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fprintf(stderr, "%s\"\n", len > 600 ? "..." : "");
}

/* Decodes body with both and checks they agree; returns 1 if they do. */
static int compare(const char *what, int v2, const char *body, size_t len)
{
    char why[1024];
    int good = ref_compare(v2, body, len, why, sizeof(why));
    CHECKF(good, "%s (%s): %s", what, v2 ? "v2" : "v1", why);
    if (!good && g_prints++ < 12) {
        print_body(body, len);
        if (getenv("DECODE_DUMP")) {
            char p[256];
            snprintf(p, sizeof(p), "%s/fail-%d.json", getenv("DECODE_DUMP"), g_prints);
            FILE *df = fopen(p, "wb");
            if (df) {
                fwrite(body, 1, len, df);
                fclose(df);
            }
        }
    }
    return good;
}

/* ---- hand-written cases ------------------------------------------------ */

typedef struct {
    int v2;
    const char *body;
    const char *name; /* the error's name; NULL: accepted */
    long example;
    const char *feature;
} case_t;

#define DENSE1 "{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[1,13],\"data\":[1,2,3,4,5,6,7,8,9,10,11,12,13]}"
#define SPARSE1 "{\"name\":\"sparse\",\"datatype\":\"BYTES\",\"shape\":[1,26],\"data\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\",\"m\",\"n\",\"o\",\"p\",\"q\",\"r\",\"s\",\"t\",\"u\",\"v\",\"w\",\"x\",\"y\",\"z\"]}"
#define SPARSE1_INT "{\"name\":\"sparse\",\"datatype\":\"INT64\",\"shape\":[1,26],\"data\":[[1,2,3,4,5,6,7,8,9,10,11,12,13,-1,-2,-3,-4,-5,-6,-7,-8,-9,-10,null,0,-0]]}"

static const case_t g_cases[] = {
    {0, "{\"examples\":[{\"I1\":1}]}", NULL, -1, ""},
    {0, "{\"examples\":[{}]}", NULL, -1, ""},
    {0, " \t\r\n{ \"examples\" : [ { \"I1\" : 1 , \"C1\" : \"x\" } ] } \n", NULL, -1, ""},
    {0, "", "malformed_json", -1, ""},
    {0, "   ", "malformed_json", -1, ""},
    {0, "[]", "wrong_type", -1, ""},
    {0, "5", "wrong_type", -1, ""},
    {0, "\"x\"", "wrong_type", -1, ""},
    {0, "{}", "missing_examples", -1, ""},
    {0, "{\"examples\":[]}", "missing_examples", -1, ""},
    {0, "{\"examples\":null}", "missing_examples", -1, ""},
    {0, "{\"examples\":{}}", "wrong_type", -1, ""},
    {0, "{\"examples\":[1]}", "wrong_type", 0, ""},
    {0, "{\"examples\":[{\"I1\":1},null]}", "wrong_type", 1, ""},
    {0, "{\"examples\":[{\"I1\":1}],\"foo\":1}", "unknown_field", -1, ""},
    {0, "{\"examples\":[{\"X\":1}]}", "unknown_feature", 0, "X"},
    {0, "{\"context\":{\"I99\":1},\"examples\":[{}]}", "unknown_feature", -1, "I99"},
    {0, "{\"examples\":[{\"i1\":1}]}", "unknown_feature", 0, "i1"},
    {0, "{\"examples\":[{\"I1\":1,\"I1\":2}]}", "duplicate_key", 0, "I1"},
    {0, "{\"examples\":[{\"I1\":1,\"I\\u0031\":2}]}", "duplicate_key", 0, "I1"},
    {0, "{\"examples\":[{\"I1\":1}],\"examples\":[{\"I1\":1}]}", "duplicate_key", -1, ""},
    {0, "{\"context\":{\"I1\":1},\"examples\":[{\"I2\":2},{\"I1\":2}]}", "duplicate_feature", 1, "I1"},
    {0, "{\"examples\":[{\"C5\":null}],\"context\":{\"C5\":\"a\"}}", "duplicate_feature", 0, "C5"},
    {0, "{\"examples\":[{\"I1\":\"a\"}]}", "wrong_type", 0, "I1"},
    {0, "{\"examples\":[{\"I1\":true}]}", "wrong_type", 0, "I1"},
    {0, "{\"examples\":[{\"I1\":[1]}]}", "wrong_type", 0, "I1"},
    {0, "{\"examples\":[{\"I1\":{}}]}", "wrong_type", 0, "I1"},
    {0, "{\"examples\":[{\"C1\":1.5}]}", "wrong_type", 0, "C1"},
    {0, "{\"examples\":[{\"C1\":1e2}]}", "wrong_type", 0, "C1"},
    {0, "{\"examples\":[{\"C1\":false}]}", "wrong_type", 0, "C1"},
    {0, "{\"examples\":[{\"C1\":[\"a\"]}]}", "wrong_type", 0, "C1"},
    {0, "{\"examples\":[{\"C1\":9223372036854775807}]}", NULL, -1, ""},
    {0, "{\"examples\":[{\"C1\":-9223372036854775808}]}", NULL, -1, ""},
    {0, "{\"examples\":[{\"C1\":9223372036854775808}]}", "number_out_of_range", 0, "C1"},
    {0, "{\"examples\":[{\"C1\":-9223372036854775809}]}", "number_out_of_range", 0, "C1"},
    {0, "{\"examples\":[{\"C1\":123456789012345678901234567890}]}", "number_out_of_range", 0, "C1"},
    {0, "{\"examples\":[{\"I1\":123456789012345678901234567890}]}", NULL, -1, ""},
    {0, "{\"examples\":[{\"I1\":1e999}]}", "number_out_of_range", -1, ""},
    {0, "{\"examples\":[{\"I1\":-1e309}]}", "number_out_of_range", -1, ""},
    {0, "{\"examples\":[{\"C1\":1e999}]}", "number_out_of_range", -1, ""},
    {0, "{\"examples\":[{\"I1\":0e999}]}", NULL, -1, ""},
    {0, "{\"examples\":[{\"I1\":1e-999}]}", NULL, -1, ""},
    {0, "{\"examples\":[{\"I1\":1.7976931348623157e308}]}", NULL, -1, ""},
    {0, "{\"examples\":[{\"I1\":1.7976931348623159e308}]}", "number_out_of_range", -1, ""},
    {0, "{\"examples\":[{\"I1\":NaN}]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"I1\":Infinity}]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"I1\":-Infinity}]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"I1\":01}]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"I1\":.5}]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"I1\":+1}]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"I1\":1.}]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"I1\":-}]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"I1\":1e}]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"I1\":1e+}]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"I1\":0x10}]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"I1\":1E+2,\"I2\":-0.0e-0}]}", NULL, -1, ""},
    {0, "{\"examples\":[{\"I1\":nul}]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"I1\":1}]} x", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"I1\":1}]}{}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"I1\":1}],}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"I1\":1},]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"I1\":1,}]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"I1\" 1}]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{'I1':1}]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"I1\":1}]", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"X\":1}], oops", "malformed_json", -1, ""},
    {0, "{\"foo\":1,", "malformed_json", -1, ""},
    {0, "\xef\xbb\xbf{\"examples\":[{}]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"C1\":\"\xff\"}]}", "invalid_utf8", -1, ""},
    {0, "{\"examples\":[{\"C1\":\"\xc0\xaf\"}]}", "invalid_utf8", -1, ""},
    {0, "{\"examples\":[{\"C1\":\"\xed\xa0\x80\"}]}", "invalid_utf8", -1, ""},
    {0, "{\"examples\":[{\"C1\":\"\xf4\x90\x80\x80\"}]}", "invalid_utf8", -1, ""},
    {0, "{\"examples\":[{\"C1\":\"\xe2\x82\"}]}", "invalid_utf8", -1, ""},
    {0, "{\"examples\":[{\"C1\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}]}", NULL, -1, ""},
    {0, "{\"examples\":[{\"C1\":\"\\ud800\"}]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"C1\":\"\\udc00\\ud800\"}]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"C1\":\"\\ud83d\\ude00\\u00e9\\/\\b\\f\\n\\r\\t\\\"\\\\\"}]}", NULL, -1, ""},
    {0, "{\"examples\":[{\"C1\":\"\\x41\"}]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"C1\":\"\\u12\"}]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"C1\":\"a\tb\"}]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"C1\":\"a\\u0000b\"}]}", NULL, -1, ""},
    {0, "{\"examples\":[{\"C1\":\"unterminated}]}", "malformed_json", -1, ""},
    {0, "{\"examples\":[{\"C1\":\"0123456789012345678901234567890123456789012345678901234567890123\"}]}", NULL, -1, ""},
    {0, "{\"examples\":[{\"C1\":\"01234567890123456789012345678901234567890123456789012345678901234\"}]}", "string_too_long", 0, "C1"},
    {0, "{\"examples\":[{\"C1\":\"\\u00e90123456789012345678901234567890123456789012345678901234567890\"}]}", NULL, -1, ""},
    {0, "{\"examples\":[{\"C1\":\"\\u00e9012345678901234567890123456789012345678901234567890123456789012\"}]}", "string_too_long", 0, "C1"},
    {0, "{\"request_id\":\"abc\",\"examples\":[{\"I1\":1}]}", NULL, -1, ""},
    {0, "{\"request_id\":null,\"examples\":[{\"I1\":1}]}", NULL, -1, ""},
    {0, "{\"request_id\":5,\"examples\":[{\"I1\":1}]}", "bad_request_id", -1, ""},
    {0, "{\"request_id\":\"a\\nb\",\"examples\":[{\"I1\":1}]}", "bad_request_id", -1, ""},
    {0, "{\"request_id\":\"a\\u0000b\",\"examples\":[{\"I1\":1}]}", "bad_request_id", -1, ""},
    {0, "{\"context\":[],\"examples\":[{}]}", "wrong_type", -1, ""},
    {0, "{\"context\":null,\"examples\":[{}]}", NULL, -1, ""},
    {0, "{\"\\u0065xamples\":[{\"I\\u0031\":1,\"\\u0043\\u0032\":\"x\"}]}", NULL, -1, ""},
    {0, "{\"examples\":[{\"I1\\u0000\":1}]}", "unknown_feature", 0, "I1"},
    {0, "{\"examples\":[[[[[[[[[[1]]]]]]]]]]}", "wrong_type", 0, ""},
    {0, "{\"examples\":[{\"I1\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}]}", "nesting_too_deep", -1, ""},
    {1, "{\"inputs\":[" DENSE1 "," SPARSE1 "]}", NULL, -1, ""},
    {1, "{\"id\":\"r1\",\"inputs\":[" SPARSE1_INT "," DENSE1 "],\"outputs\":[{\"name\":\"score\",\"parameters\":{}}],\"parameters\":{\"a\":[1,{\"b\":null}]}}", NULL, -1, ""},
    {1, "{\"inputs\":[" DENSE1 "]}", "missing_input", -1, ""},
    {1, "{\"inputs\":[" SPARSE1 "]}", "missing_input", -1, ""},
    {1, "{\"inputs\":[]}", "missing_input", -1, ""},
    {1, "{}", "missing_input", -1, ""},
    {1, "{\"inputs\":{}}", "wrong_type", -1, ""},
    {1, "{\"inputs\":[1]}", "wrong_type", -1, ""},
    {1, "{\"inputs\":[" DENSE1 "," DENSE1 "," SPARSE1 "]}", "duplicate_input", -1, ""},
    {1, "{\"inputs\":[{\"name\":\"wide\"}]}", "unknown_input", -1, ""},
    {1, "{\"inputs\":[{\"datatype\":\"FP32\"}]}", "missing_field", -1, ""},
    {1, "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[1,13]}]}", "missing_field", -1, ""},
    {1, "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP64\",\"shape\":[1,13],\"data\":[]}]}", "bad_datatype", -1, ""},
    {1, "{\"inputs\":[{\"name\":\"sparse\",\"datatype\":\"FP32\",\"shape\":[1,26],\"data\":[]}]}", "bad_datatype", -1, ""},
    {1, "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[13],\"data\":[]}]}", "bad_shape", -1, ""},
    {1, "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[1,12],\"data\":[]}]}", "bad_shape", -1, ""},
    {1, "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[0,13],\"data\":[]}]}", "bad_shape", -1, ""},
    {1, "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[1.5,13],\"data\":[]}]}", "bad_shape", -1, ""},
    {1, "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[-1,13],\"data\":[]}]}", "bad_shape", -1, ""},
    {1, "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[\"1\",13],\"data\":[]}]}", "bad_shape", -1, ""},
    {1, "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[99999999999999999999,13],\"data\":[]}]}", "bad_shape", -1, ""},
    {1, "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[65,13],\"data\":[]}]}", "too_many_examples", -1, ""},
    {1, "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[2,13],\"data\":[1,2,3,4,5,6,7,8,9,10,11,12,13]}]}", "bad_shape", -1, ""},
    {1, "{\"inputs\":[" DENSE1 ",{\"name\":\"sparse\",\"datatype\":\"BYTES\",\"shape\":[2,26],\"data\":[]}]}", "bad_shape", -1, ""},
    {1, "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[1,13],\"data\":[1,2,3,4,5,6,7,\"8\",9,10,11,12,13]}]}", "wrong_type", 0, "I8"},
    {1, "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[1,13],\"data\":[1,2,3,4,5,6,7,{},9,10,11,12,13]}]}", "wrong_type", 0, "I8"},
    {1, "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[1,13],\"data\":[1,2,3,4,5,6,7,1e999,9,10,11,12,13]}]}", "number_out_of_range", -1, ""},
    {1, "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[1,13],\"data\":{}}]}", "wrong_type", -1, ""},
    {1, "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[1,13],\"data\":[],\"extra\":1}]}", "unknown_field", -1, ""},
    {1, "{\"inputs\":[{\"name\":\"dense\",\"name\":\"dense\"}]}", "duplicate_key", -1, ""},
    {1, "{\"inputs\":[{\"name\":5}]}", "wrong_type", -1, ""},
    {1, "{\"inputs\":[" DENSE1 "," SPARSE1 "],\"outputs\":[{\"name\":\"prob\"}]}", "unknown_output", -1, ""},
    {1, "{\"inputs\":[" DENSE1 "," SPARSE1 "],\"outputs\":[{}]}", "missing_field", -1, ""},
    {1, "{\"inputs\":[" DENSE1 "," SPARSE1 "],\"outputs\":{}}", "wrong_type", -1, ""},
    {1, "{\"inputs\":[" DENSE1 "," SPARSE1 "],\"parameters\":[]}", "wrong_type", -1, ""},
    {1, "{\"inputs\":[" DENSE1 "," SPARSE1 "],\"parameters\":{\"a\":1,\"a\":2}}", NULL, -1, ""},
    {1, "{\"inputs\":[" DENSE1 "," SPARSE1 "],\"parameters\":{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}", "nesting_too_deep", -1, ""},
    {1, "{\"inputs\":[" DENSE1 "," SPARSE1 "],\"model\":\"x\"}", "unknown_field", -1, ""},
    {1, "{\"id\":7,\"inputs\":[" DENSE1 "," SPARSE1 "]}", "bad_request_id", -1, ""},
    {1, "{\"inputs\":[" DENSE1 ",{\"name\":\"sparse\",\"datatype\":\"INT64\",\"shape\":[1,26],\"data\":[1,2,3,4,5,6,7,8,9,10,11,12,13,1,2,3,4,5,6,7,8,9,10,\"x\",12,13]}]}", "wrong_type", 0, "C24"},
    {1, "{\"inputs\":[" DENSE1 ",{\"name\":\"sparse\",\"datatype\":\"INT64\",\"shape\":[1,26],\"data\":[1,2,3,4,5,6,7,8,9,10,11,12,13,1,2,3,4,5,6,7,8,9,10,1.5,12,13]}]}", "wrong_type", 0, "C24"},
    {1, "{\"inputs\":[" DENSE1 ",{\"name\":\"sparse\",\"datatype\":\"INT64\",\"shape\":[1,26],\"data\":[1,2,3,4,5,6,7,8,9,10,11,12,13,1,2,3,4,5,6,7,8,9,10,9223372036854775808,12,13]}]}", "number_out_of_range", 0, "C24"},
    {1, "{\"inputs\":[" DENSE1 ",{\"name\":\"sparse\",\"datatype\":\"BYTES\",\"shape\":[1,26],\"data\":[1,2,3,4,5,6,7,8,9,10,11,12,13,1,2,3,4,5,6,7,8,9,10,11,12,13]}]}", "wrong_type", 0, "C1"},
    {1, "{\"inputs\":[" DENSE1 "," SPARSE1 "]", "malformed_json", -1, ""},
    {1, "", "malformed_json", -1, ""},
};

static void check_case(const case_t *c)
{
    ctr_request_t req;
    ctr_decode_error_t e;
    size_t len = strlen(c->body);
    int rc = c->v2 ? ctr__decode_v2(g_m, c->body, len, &g_lim, &req, &e)
                   : ctr__decode_v1(g_m, c->body, len, &g_lim, &req, &e);
    if (!c->name) {
        CHECKF(rc == 0, "case %s: expected success, got %s (%s)", c->body, e.name, e.message);
    } else {
        CHECKF(rc != 0 && e.name && !strcmp(e.name, c->name) && e.example == c->example &&
                   !strcmp(e.feature, c->feature),
               "case %s: expected %s ex %ld feat \"%s\", got rc %d %s ex %ld feat \"%s\" (%s)",
               c->body, c->name, c->example, c->feature, rc, rc ? e.name : "-", e.example,
               e.feature, e.message);
        /* The code its name has, and from it the status clients always got. */
        CHECKF(rc == ref_error_code(c->name), "case %s: %s with rc %d, want %d", c->body, c->name,
               rc, ref_error_code(c->name));
        CHECK(ctr__http_status(rc, CTR__SUBJECT_REQUEST) ==
              (!strcmp(c->name, "too_many_examples") ? 413 : 400));
        CHECK(e.message[0] != '\0');
    }
    ctr__request_release(&req);
    /* Every hand-written case through the differential check too. */
    compare("case", c->v2, c->body, len);
}

/* ---- specific semantics ------------------------------------------------ */

static int decode_str(int v2, const char *body, ctr_request_t *req, ctr_decode_error_t *e)
{
    return v2 ? ctr__decode_v2(g_m, body, strlen(body), &g_lim, req, e)
              : ctr__decode_v1(g_m, body, strlen(body), &g_lim, req, e);
}

static void test_semantics(void)
{
    ctr_request_t req;
    ctr_decode_error_t e;
    const ctr_cat_def_t *c1 = &g_def->cat[0];

    /* Context merge, missing values, integers hash like their text. */
    int rc = decode_str(0, "{\"request_id\":\"r-1\",\"context\":{\"C1\":\"u\",\"I2\":2.5},"
                           "\"examples\":[{\"I1\":1,\"C2\":12},{\"C2\":\"12\",\"C3\":-0}]}",
                        &req, &e);
    CHECKF(rc == 0, "%s", e.message);
    if (rc == 0) {
        CHECK(req.n == 2 && req.has_request_id && !strcmp(req.request_id, "r-1"));
        for (size_t i = 0; i < 2; i++) {
            size_t k = i * g_nc;
            CHECK(req.rows[k] == ctr_features_cat_row(c1, "u", 1));
            CHECK(req.cat_len[k] == 1 && req.cat_bytes[req.cat_off[k]] == 'u');
            CHECK(req.dense_raw[i * g_nd + 1] == 2.5);
            CHECK(req.rows[k + 1] == ctr_features_cat_row_int(&g_def->cat[1], 12));
            CHECK(req.cat_len[k + 1] == 2 && !memcmp(req.cat_bytes + req.cat_off[k + 1], "12", 2));
            CHECK(isnan(req.dense_raw[i * g_nd + 3]));
            CHECK(req.dense[i * g_nd + 3] == ctr_features_dense_missing(&g_def->dense[3]));
            CHECK(req.rows[k + 4] == CTR_MISSING_ROW && req.cat_len[k + 4] == CTR_CAT_MISSING_LEN);
        }
        CHECK(req.dense_raw[0] == 1.0 && isnan(req.dense_raw[g_nd]));
        CHECK(req.cat_len[g_nc + 2] == 1 && req.cat_bytes[req.cat_off[g_nc + 2]] == '0');
        CHECK(req.rows[2] == CTR_MISSING_ROW);
        CHECK(req.arena != NULL && req.arena_size > 0);
    }
    ctr__request_release(&req);
    CHECK(req.arena == NULL && req.n == 0);
    ctr__request_release(&req); /* twice is harmless */

    /* -0 stays -0 for a dense value (strtod), is "0" for a categorical. */
    rc = decode_str(0, "{\"examples\":[{\"I1\":-0,\"I2\":-0.0,\"C1\":-0}]}", &req, &e);
    CHECK(rc == 0);
    if (rc == 0) {
        CHECK(signbit(req.dense_raw[0]) && signbit(req.dense_raw[1]));
        CHECK(req.rows[0] == ctr_features_cat_row_int(c1, 0));
    }
    ctr__request_release(&req);

    /* Syntax errors name the byte; semantic errors name the feature. */
    rc = decode_str(0, "{\"examples\":x}", &req, &e);
    CHECK(rc == CTR_EFORMAT && strstr(e.message, "byte 12"));
    rc = decode_str(0, "{\"examples\":[{},{\"I1\":\"a\"}]}", &req, &e);
    CHECK(rc == CTR_EINVAL && strstr(e.message, "examples[1]") && strstr(e.message, "\"I1\""));
    CHECK(e.example == 1 && !strcmp(e.feature, "I1"));

    /* Unknown names are reported truncated to 64 bytes of whole UTF-8. */
    {
        sb_t b = {0};
        sb_puts(&b, "{\"examples\":[{\"");
        for (int i = 0; i < 40; i++)
            sb_puts(&b, "\xc3\xa9"); /* 80 bytes */
        sb_puts(&b, "\":1}]}");
        rc = decode_str(0, b.p, &req, &e);
        CHECK(rc == CTR_EINVAL && !strcmp(e.name, "unknown_feature") && strlen(e.feature) == 64);
        free(b.p);
        sb_t b2 = {0};
        sb_puts(&b2, "{\"examples\":[{\"x");
        for (int i = 0; i < 40; i++)
            sb_puts(&b2, "\xc3\xa9");
        sb_puts(&b2, "\":1}]}");
        rc = decode_str(0, b2.p, &req, &e);
        CHECK(rc == CTR_EINVAL && !strcmp(e.name, "unknown_feature") && strlen(e.feature) == 63);
        free(b2.p);
    }

    /* max_examples: exactly the limit passes, one more is 413. */
    for (int extra = 0; extra <= 1; extra++) {
        sb_t b = {0};
        sb_puts(&b, "{\"examples\":[");
        for (int i = 0; i < MAX_EX + extra; i++)
            sb_puts(&b, i ? ",{\"I1\":1}" : "{\"I1\":1}");
        sb_puts(&b, "]}");
        rc = decode_str(0, b.p, &req, &e);
        if (extra)
            CHECK(rc == CTR_ETOOBIG && !strcmp(e.name, "too_many_examples") &&
                  ctr__http_status(rc, CTR__SUBJECT_REQUEST) == 413 && e.example == MAX_EX);
        else
            CHECK(rc == 0 && req.n == MAX_EX);
        ctr__request_release(&req);
        free(b.p);
    }

    /* Deep nesting is refused without recursion, at any depth. */
    {
        size_t n = 200000;
        char *deep = malloc(n * 2 + 64);
        size_t k = (size_t)sprintf(deep, "{\"examples\":");
        memset(deep + k, '[', n);
        memset(deep + k + n, ']', n);
        deep[k + 2 * n] = '}';
        for (int v2 = 0; v2 <= 1; v2++) {
            rc = v2 ? ctr__decode_v2(g_m, deep, k + 2 * n + 1, &g_lim, &req, &e)
                    : ctr__decode_v1(g_m, deep, k + 2 * n + 1, &g_lim, &req, &e);
            CHECK(rc == CTR_EFORMAT && !strcmp(e.name, "nesting_too_deep"));
        }
        free(deep);
    }

    /* NULL limits mean the defaults; NULL error pointer is allowed. */
    rc = ctr__decode_v1(g_m, "{\"examples\":[{}]}", 17, NULL, &req, NULL);
    CHECK(rc == 0 && req.n == 1);
    ctr__request_release(&req);
    rc = ctr__decode_v1(g_m, "{", 1, NULL, &req, NULL);
    CHECK(rc != 0);
    rc = ctr__decode_v1(g_m, NULL, 0, NULL, &req, &e);
    CHECK(rc == CTR_EFORMAT && !strcmp(e.name, "malformed_json"));

    /* The body need not be NUL-terminated: a value cut at len is broken. */
    rc = ctr__decode_v1(g_m, "{\"examples\":[{\"I1\":12}]}", 19, &g_lim, &req, &e);
    CHECK(rc == CTR_EFORMAT && !strcmp(e.name, "malformed_json"));
    const char *cut = "{\"examples\":[{\"I1\":12}]}9";
    rc = ctr__decode_v1(g_m, cut, strlen(cut) - 1, &g_lim, &req, &e);
    CHECK(rc == 0 && req.dense_raw[0] == 12.0);
    ctr__request_release(&req);
}

/* Every error name has one CTR_E* code, and ctr__http_status() turns it
 * into the status the decoder used to carry itself (frozen here: clients
 * see the same status as before the decoder stopped knowing HTTP). */
static void test_error_codes(void)
{
    static const struct {
        const char *name;
        int status;
    } old[] = {
        {"malformed_json", 400},    {"invalid_utf8", 400},      {"number_out_of_range", 400},
        {"nesting_too_deep", 400},  {"wrong_type", 400},        {"unknown_feature", 400},
        {"unknown_field", 400},     {"duplicate_key", 400},     {"duplicate_feature", 400},
        {"string_too_long", 400},   {"bad_request_id", 400},    {"missing_examples", 400},
        {"missing_field", 400},     {"unknown_input", 400},     {"duplicate_input", 400},
        {"missing_input", 400},     {"bad_datatype", 400},      {"bad_shape", 400},
        {"unknown_output", 400},    {"too_many_examples", 413}, {"body_too_large", 413},
        {"out_of_memory", 500},     {"internal_error", 500},
    };
    for (size_t i = 0; i < CTR_ARRAY_LEN(old); i++) {
        int code = ref_error_code(old[i].name);
        CHECKF(code < 0 && ctr__http_status(code, CTR__SUBJECT_REQUEST) == old[i].status,
               "%s: code %d gives %d, want %d", old[i].name, code,
               ctr__http_status(code, CTR__SUBJECT_REQUEST), old[i].status);
    }

    ctr_request_t req;
    ctr_decode_error_t e;
    /* Refused from its length alone (cat_off is 32-bit): the bytes are
     * never read. */
    if ((uint64_t)SIZE_MAX > UINT32_MAX) {
        int rc = ctr__decode_v1(g_m, "{}", (size_t)UINT32_MAX, &g_lim, &req, &e);
        CHECK(rc == CTR_ETOOBIG && !strcmp(e.name, "body_too_large") && e.example == -1 &&
              strstr(e.message, "too large"));
        CHECK(req.arena == NULL);
    }
    /* number_out_of_range, from the scanner (beyond a double) and from a
     * categorical integer (beyond int64): the same name, the same code. */
    int rc = decode_str(0, "{\"examples\":[{\"I1\":-1e400}]}", &req, &e);
    CHECK(rc == CTR_ERANGE && !strcmp(e.name, "number_out_of_range") && e.example == -1);
    rc = decode_str(1, "{\"parameters\":{\"x\":[1e999]}}", &req, &e);
    CHECK(rc == CTR_ERANGE && !strcmp(e.name, "number_out_of_range") && e.example == -1);
    rc = decode_str(0, "{\"examples\":[{\"C1\":-9223372036854775809}]}", &req, &e);
    CHECK(rc == CTR_ERANGE && !strcmp(e.name, "number_out_of_range") && e.example == 0 &&
          !strcmp(e.feature, "C1"));
}

/* Models without dense or without categorical features. */
static void test_small_models(void)
{
    const uint32_t hidden[1] = {4};
    for (int shape = 0; shape < 2; shape++) {
        char path[512], err[256];
        ctr_model_t *m;
        size_t nd = shape ? 3 : 0, nc = shape ? 0 : 3;
        snprintf(path, sizeof(path), "%s/small%d.ctrm", test_tmpdir(), shape);
        if (test_make_model(path, 3, nd, nc, 100, 4, hidden, 1, CTR_ACT_SMELU, 1.0f) ||
            ctr_model_open(path, &m, err, sizeof(err))) {
            CHECKF(0, "small model %zu/%zu", nd, nc);
            continue;
        }
        ctr_request_t req;
        ctr_decode_error_t e;
        const char *v1 = shape ? "{\"examples\":[{\"I1\":1,\"I3\":2},{}]}"
                               : "{\"examples\":[{\"C1\":\"a\",\"C3\":7},{}]}";
        int rc = ctr__decode_v1(m, v1, strlen(v1), &g_lim, &req, &e);
        CHECKF(rc == 0 && req.n == 2 && req.n_dense == nd && req.n_cat == nc, "%s", e.message);
        ctr__request_release(&req);
        const char *v2 = shape ? "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\","
                                 "\"shape\":[2,3],\"data\":[[1,2,3],[4,5,null]]}]}"
                               : "{\"inputs\":[{\"name\":\"sparse\",\"datatype\":\"BYTES\","
                                 "\"shape\":[1,3],\"data\":[\"a\",\"\",null]}]}";
        rc = ctr__decode_v2(m, v2, strlen(v2), &g_lim, &req, &e);
        CHECKF(rc == 0 && req.n == (shape ? 2u : 1u), "%s", e.message);
        if (rc == 0 && !shape)
            CHECK(req.cat_len[0] == 1 && req.cat_len[1] == CTR_CAT_MISSING_LEN &&
                  req.cat_len[2] == CTR_CAT_MISSING_LEN);
        if (rc == 0 && shape)
            CHECK(req.dense_raw[3] == 4.0 && isnan(req.dense_raw[5]));
        ctr__request_release(&req);
        /* The absent kind may still be sent, as an empty [B, 0] tensor. */
        const char *v2b = shape ? "{\"inputs\":[{\"name\":\"sparse\",\"datatype\":\"INT64\","
                                  "\"shape\":[1,0],\"data\":[]},{\"name\":\"dense\",\"datatype\":"
                                  "\"FP32\",\"shape\":[1,3],\"data\":[1,2,3]}]}"
                                : "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\","
                                  "\"shape\":[1,0],\"data\":[[]]},{\"name\":\"sparse\",\"datatype\":"
                                  "\"INT64\",\"shape\":[1,3],\"data\":[1,2,3]}]}";
        rc = ctr__decode_v2(m, v2b, strlen(v2b), &g_lim, &req, &e);
        CHECKF(rc == 0 && req.n == 1, "%s", e.message);
        ctr__request_release(&req);
        ctr_model_close(m);
        remove(path);
    }
}

/* v1 and v2 give the same arrays for the same examples. */
static void test_v1_v2_same(test_rng_t *rng)
{
    for (int t = 0; t < 50; t++) {
        size_t n = 1 + test_rng_next(rng) % 8;
        int ints = t % 2;
        sb_t v1 = {0}, v2 = {0}, dd = {0}, ss = {0};
        sb_puts(&v1, "{\"examples\":[");
        for (size_t i = 0; i < n; i++) {
            sb_puts(&v1, i ? ",{" : "{");
            for (size_t f = 0; f < g_nd; f++) {
                int64_t v = (int64_t)(test_rng_next(rng) % 2001) - 1000;
                int null = test_rng_next(rng) % 10 == 0;
                char num[64];
                if (null)
                    snprintf(num, sizeof(num), "null");
                else if (f % 2)
                    snprintf(num, sizeof(num), "%" PRId64, v);
                else
                    snprintf(num, sizeof(num), "%.17g", (double)v / 7.0);
                sb_printf(&v1, "%s\"I%zu\":%s", f ? "," : "", f + 1, num);
                sb_printf(&dd, "%s%s", i || f ? "," : "", num);
            }
            for (size_t j = 0; j < g_nc; j++) {
                uint32_t h = (uint32_t)test_rng_next(rng);
                int null = test_rng_next(rng) % 10 == 0;
                char val[32];
                if (null)
                    snprintf(val, sizeof(val), "null");
                else if (ints)
                    snprintf(val, sizeof(val), "%" PRId32, (int32_t)h);
                else
                    snprintf(val, sizeof(val), "\"%08x\"", h);
                sb_printf(&v1, ",\"C%zu\":%s", j + 1, val);
                sb_printf(&ss, "%s%s", i || j ? "," : "", val);
            }
            sb_puts(&v1, "}");
        }
        sb_puts(&v1, "]}");
        sb_printf(&v2, "{\"inputs\":[{\"name\":\"sparse\",\"datatype\":\"%s\",\"shape\":[%zu,%zu],"
                       "\"data\":[%s]},{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[%zu,%zu],"
                       "\"data\":[%s]}]}",
                  ints ? "INT64" : "BYTES", n, g_nc, ss.p, n, g_nd, dd.p);
        ctr_request_t a, b;
        ctr_decode_error_t e;
        int ra = decode_str(0, v1.p, &a, &e);
        int rb = decode_str(1, v2.p, &b, &e);
        CHECKF(ra == 0 && rb == 0, "v1/v2 pair: %d %d %s", ra, rb, e.message);
        if (ra == 0 && rb == 0) {
            CHECK(a.n == b.n);
            CHECK(!memcmp(a.dense, b.dense, n * g_nd * sizeof(float)));
            CHECK(!memcmp(a.dense_raw, b.dense_raw, n * g_nd * sizeof(double)));
            CHECK(!memcmp(a.rows, b.rows, n * g_nc * sizeof(uint32_t)));
            CHECK(!memcmp(a.cat_len, b.cat_len, n * g_nc));
        }
        ctr__request_release(&a);
        ctr__request_release(&b);
        free(v1.p);
        free(v2.p);
        free(dd.p);
        free(ss.p);
    }
}

/* ---- numbers: json_num against strtod ---------------------------------- */

static void check_num(const char *tok)
{
    ctr__json_num_t n;
    size_t len = strlen(tok);
    long k = ctr__json_num_parse(tok, len, CTR__NUM_WANT_DOUBLE, &n);
    double want = strtod(tok, NULL);
    CHECKF(k == (long)len, "number %s: parsed %ld of %zu bytes", tok, k, len);
    CHECKF(bits_eq_d(n.d, want) || (isinf(want) && n.overflow),
           "number %.80s: %a, strtod %a", tok, n.d, want);
    CHECKF(n.overflow == (unsigned)(isinf(want) != 0), "number %.80s: overflow %u", tok, n.overflow);
    ctr__json_num_t m;
    ctr__json_num_parse(tok, len, 0, &m);
    CHECKF(m.overflow == n.overflow, "number %.80s: overflow without WANT_DOUBLE", tok);
}

static void test_numbers(test_rng_t *rng)
{
    static const char *fixed[] = {
        "0", "-0", "1", "-1", "0.1", "0.5", "1e23", "8.98846567431158e307",
        "1.7976931348623157e308", "1.7976931348623158e308", "1.7976931348623159e308",
        "2.2250738585072011e-308", "2.2250738585072014e-308", "4.9e-324", "2.4703282292062327e-324",
        "2.4703282292062328e-324", "1e-400", "9007199254740992", "9007199254740993",
        "9007199254740993.0000000000000000000000000001", "18446744073709551615",
        "18446744073709551616", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
        "123456789012345678901234567890", "0.000000000000000000000000000001234", "1E5", "1e+5",
        "1e-5", "0e999", "-0e-999", "1e999", "-1e999", "3.14159265358979323846264338327950288",
        "1.00000000000000011102230246251565404236316680908203125",
        "1.00000000000000011102230246251565404236316680908203124",
        "1.00000000000000011102230246251565404236316680908203126", "100000000000000000000e-20",
        "7.2057594037927933e16", "1e22", "1e-22", "123456789012345678e-30", "4503599627370497.5",
    };
    for (size_t i = 0; i < CTR_ARRAY_LEN(fixed); i++)
        check_num(fixed[i]);

    /* A halfway case decided by a digit beyond 800 significant ones. */
    {
        sb_t b = {0};
        sb_puts(&b, "9007199254740993");
        for (int i = 0; i < 1000; i++)
            sb_puts(&b, "0");
        sb_puts(&b, "1e-1000");
        check_num(b.p);
        b.p[b.n - 7] = '0';
        check_num(b.p);
        free(b.p);
    }

    char tok[128];
    for (int t = 0; t < 200000; t++) {
        uint64_t r = test_rng_next(rng);
        size_t k = 0;
        if (r & 1)
            tok[k++] = '-';
        if ((r & 0x18) == 0x18) { /* 0.000ddd */
            tok[k++] = '0';
            tok[k++] = '.';
            for (int i = (int)(test_rng_next(rng) % 30); i > 0; i--)
                tok[k++] = '0';
            for (int i = 1 + (int)(test_rng_next(rng) % 25); i > 0; i--)
                tok[k++] = (char)('0' + test_rng_next(rng) % 10);
            if (r & 4)
                k += (size_t)sprintf(tok + k, "e%d", (int)(test_rng_next(rng) % 700) - 350);
            tok[k] = '\0';
            check_num(tok);
            continue;
        }
        int idig = 1 + (int)(test_rng_next(rng) % 25);
        tok[k++] = (char)('1' + test_rng_next(rng) % 9);
        for (int i = 1; i < idig; i++)
            tok[k++] = (char)('0' + test_rng_next(rng) % 10);
        if (r & 2) {
            int fd = 1 + (int)(test_rng_next(rng) % 25);
            tok[k++] = '.';
            for (int i = 0; i < fd; i++)
                tok[k++] = (char)('0' + test_rng_next(rng) % 10);
        }
        if (r & 4)
            k += (size_t)sprintf(tok + k, "e%d", (int)(test_rng_next(rng) % 700) - 350);
        tok[k] = '\0';
        check_num(tok);
    }
    /* Random doubles printed shortest-ish and in full. */
    for (int t = 0; t < 50000; t++) {
        uint64_t bits = test_rng_next(rng);
        double d;
        memcpy(&d, &bits, sizeof(d));
        if (!isfinite(d))
            continue;
        snprintf(tok, sizeof(tok), t % 2 ? "%.17g" : "%.15g", d);
        check_num(tok);
    }

    /* Grammar errors and where they are. */
    static const struct {
        const char *tok;
        long want;
    } bad[] = {{"-", -2}, {"01", -2}, {"1.", -3}, {"1.e5", -3}, {".5", -1}, {"+1", -1},
               {"1e", -3}, {"1e+", -4}, {"-a", -2}, {"", -1}, {"--1", -2}};
    for (size_t i = 0; i < CTR_ARRAY_LEN(bad); i++) {
        ctr__json_num_t n;
        long k = ctr__json_num_parse(bad[i].tok, strlen(bad[i].tok), 0, &n);
        CHECKF(k == bad[i].want, "bad number \"%s\": %ld, want %ld", bad[i].tok, k, bad[i].want);
    }
    ctr__json_num_t n;
    CHECK(ctr__json_num_parse("12,", 3, 0, &n) == 2 && n.is_int && n.int_ok && n.i == 12);
    CHECK(ctr__json_num_parse("1.0", 3, 0, &n) == 3 && !n.is_int);
    CHECK(ctr__json_num_parse("-9223372036854775808", 20, 0, &n) == 20 && n.int_ok &&
          n.i == INT64_MIN);
    CHECK(ctr__json_num_parse("9223372036854775808", 19, 0, &n) == 19 && n.is_int && !n.int_ok);
}

/* ---- generated bodies -------------------------------------------------- */

typedef struct {
    test_rng_t *rng;
    int bad;        /* 1: now and then insert a semantic error */
} gen_t;

static uint64_t rnd(gen_t *g, uint64_t n)
{
    return test_rng_next(g->rng) % n;
}

static void gen_ws(gen_t *g, sb_t *b)
{
    static const char w[] = " \t\n\r";
    if (rnd(g, 5) == 0)
        for (uint64_t i = rnd(g, 4); i > 0; i--)
            sb_put(b, &w[rnd(g, 4)], 1);
}

static void gen_digits(gen_t *g, sb_t *b, int n, int first_nonzero)
{
    for (int i = 0; i < n; i++) {
        char c = (char)('0' + (i == 0 && first_nonzero ? 1 + rnd(g, 9) : rnd(g, 10)));
        sb_put(b, &c, 1);
    }
}

static void gen_dense(gen_t *g, sb_t *b)
{
    static const char *edge[] = {
        "4.9e-324", "2.2250738585072011e-308", "1.7976931348623157e308", "9007199254740993",
        "0.1", "1e23", "-0", "-0.0", "0e5", "0.000", "1E+2", "2.5e-3", "1e-400", "123456789e-300",
        "100000000000000000000000.0", "4503599627370497.5", "7.2057594037927933e16",
    };
    switch (rnd(g, 14)) {
    case 0:
    case 1:
    case 2:
        sb_printf(b, "%d", (int)rnd(g, 100));
        break;
    case 3:
        sb_printf(b, "%" PRId64, (int64_t)rnd(g, 2000000) - 1000000);
        break;
    case 4: {
        uint64_t bits = test_rng_next(g->rng);
        double d;
        memcpy(&d, &bits, sizeof(d));
        if (!isfinite(d))
            d = 1.5;
        sb_printf(b, "%.17g", d);
        break;
    }
    case 5:
        sb_printf(b, "%.*f", (int)rnd(g, 8), ((double)rnd(g, 1000000) - 500000) / 997.0);
        break;
    case 6:
        if (rnd(g, 2))
            sb_puts(b, "-");
        gen_digits(g, b, 1 + (int)rnd(g, 24), 1);
        sb_puts(b, ".");
        gen_digits(g, b, 1 + (int)rnd(g, 24), 0);
        if (rnd(g, 2))
            sb_printf(b, "e%d", (int)rnd(g, 600) - 320);
        break;
    case 7:
        sb_printf(b, "%de%d", 1 + (int)rnd(g, 999), (int)rnd(g, 620) - 330);
        break;
    case 8:
        gen_digits(g, b, 16 + (int)rnd(g, 3), 1);
        break;
    case 9:
    case 10:
        sb_puts(b, "null");
        break;
    case 11:
        sb_puts(b, edge[rnd(g, CTR_ARRAY_LEN(edge))]);
        break;
    case 12:
        if (g->bad && rnd(g, 8) == 0) {
            static const char *wrong[] = {"\"1\"", "true", "[]", "{}", "false"};
            sb_puts(b, wrong[rnd(g, CTR_ARRAY_LEN(wrong))]);
            break;
        }
        /* fall through */
    default:
        sb_printf(b, "%d", (int)rnd(g, 1000000));
    }
}

/* A string body with escapes and multi-byte characters; about want bytes
 * once unescaped. */
static void gen_string_body(gen_t *g, sb_t *b, size_t want, int ctrl)
{
    static const struct {
        const char *text;
        size_t bytes;
    } piece[] = {{"a", 1}, {"Z", 1}, {"7", 1}, {"\\n", 1}, {"\\\"", 1}, {"\\\\", 1}, {"\\/", 1},
                 {"\\u00e9", 2}, {"\\u20AC", 3}, {"\\ud83d\\ude00", 4}, {"\xc3\xa9", 2},
                 {"\xe2\x82\xac", 3}, {"\xf0\x9f\x98\x80", 4}, {"\\u0041", 1}, {" ", 1},
                 {"\\t", 1}, {"\\u0000", 1}};
    size_t got = 0;
    while (got < want) {
        size_t i = rnd(g, CTR_ARRAY_LEN(piece));
        if (!ctrl && (piece[i].text[1] == 'n' || piece[i].text[1] == 't' ||
                      !strcmp(piece[i].text, "\\u0000")))
            continue;
        sb_puts(b, piece[i].text);
        got += piece[i].bytes;
    }
}

/* A `mod` value (features.h): hex digits of either case, a non-negative
 * integer (v1, INT64), sometimes (bad) a negative one or a non-hex string. */
static void gen_mod(gen_t *g, sb_t *b, int v2_dt)
{
    uint64_t r = rnd(g, 8), v = test_rng_next(g->rng) >> rnd(g, 64);
    if (g->bad && rnd(g, 6) == 0) {
        static const char *wrong[] = {"\"\"", "\"0x1f\"", "\"12345678901234567\"", "\"g\"", "-5",
                                      "\" 1\""};
        sb_puts(b, wrong[rnd(g, CTR_ARRAY_LEN(wrong))]);
    } else if (v2_dt == 2 || (v2_dt == 0 && r < 3)) {
        sb_printf(b, "%" PRIu64, v >> 1);
    } else {
        sb_printf(b, r % 2 ? "\"%" PRIx64 "\"" : "\"%" PRIX64 "\"", v);
    }
}

/* The bag model's features are bags or `mod` (ref_open_bag_model); the
 * plain model's are not, and these are never called with it. */
static const ctr_cat_def_t *gen_catdef(size_t j)
{
    return &g_def->cat[j];
}

static void gen_cat_one(gen_t *g, sb_t *b, int v2_dt, size_t j, int no_null);

/* A v1 value of categorical feature j: a bag sometimes as an array. */
static void gen_cat(gen_t *g, sb_t *b, int v2_dt, size_t j)
{
    const ctr_cat_def_t *c = gen_catdef(j);
    if (c->bag_max && !v2_dt && rnd(g, 3) != 0) {
        size_t m = rnd(g, c->bag_max + 1);
        if (g->bad && rnd(g, 10) == 0)
            m = c->bag_max + 1;
        sb_puts(b, "[");
        for (size_t k = 0; k < m; k++) {
            if (k)
                sb_puts(b, ",");
            gen_ws(g, b);
            if (g->bad && rnd(g, 40) == 0)
                sb_puts(b, rnd(g, 2) ? "null" : "[\"a\"]");
            else
                gen_cat_one(g, b, 0, j, 1);
        }
        sb_puts(b, "]");
        return;
    }
    gen_cat_one(g, b, v2_dt, j, 0);
}

static void gen_cat_one(gen_t *g, sb_t *b, int v2_dt, size_t j, int no_null)
{
    if (gen_catdef(j)->mapping == CTR_MAP_MOD && rnd(g, 8) != 0) {
        gen_mod(g, b, v2_dt);
        return;
    }
    uint64_t r = rnd(g, 16);
    if (no_null && (r == 10 || (v2_dt == 2 && r < 2)))
        r = 0;
    if (v2_dt == 2) { /* INT64 */
        if (r < 2)
            sb_puts(b, "null");
        else if (r < 4)
            sb_puts(b, rnd(g, 2) ? "-9223372036854775808" : "9223372036854775807");
        else if (r == 4 && g->bad && rnd(g, 4) == 0)
            sb_puts(b, "1.5");
        else
            sb_printf(b, "%" PRId64, (int64_t)test_rng_next(g->rng) >> rnd(g, 63));
        return;
    }
    if (r < 8) {
        sb_printf(b, "\"%08x\"", (uint32_t)test_rng_next(g->rng));
    } else if (r < 10 && !v2_dt) {
        if (rnd(g, 4) == 0)
            sb_puts(b, rnd(g, 2) ? "-0" : "-9223372036854775808");
        else
            sb_printf(b, "%" PRId64, (int64_t)test_rng_next(g->rng) >> rnd(g, 63));
    } else if (r < 11) {
        sb_puts(b, "null");
    } else if (r < 14) {
        sb_puts(b, "\"");
        gen_string_body(g, b, rnd(g, 20) == 0 ? 56 + rnd(g, g->bad ? 12 : 5) : rnd(g, 12), 1);
        sb_puts(b, "\"");
    } else if (r < 15) {
        sb_puts(b, "\"\"");
    } else if (g->bad && rnd(g, 6) == 0) {
        static const char *wrong[] = {"1.5", "true", "[\"a\"]", "{}", "2e3"};
        sb_puts(b, wrong[rnd(g, CTR_ARRAY_LEN(wrong))]);
    } else {
        sb_printf(b, "\"%x\"", (unsigned)rnd(g, 100000));
    }
}

/* A key, sometimes spelled with escapes. */
static void gen_key(gen_t *g, sb_t *b, const char *name)
{
    gen_ws(g, b);
    if (rnd(g, 40) == 0)
        sb_printf(b, "\"\\u%04x%s\"", (unsigned char)name[0], name + 1);
    else
        sb_printf(b, "\"%s\"", name);
    gen_ws(g, b);
    sb_puts(b, ":");
    gen_ws(g, b);
}

static void gen_shuffle(gen_t *g, size_t *idx, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = rnd(g, i), t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

/* An object of the features f with in_ctx[f] == want (most of them). */
static void gen_features(gen_t *g, sb_t *b, const unsigned char *in_ctx, int want)
{
    size_t idx[ND + NC], n = 0, nf = g_nd + g_nc;
    for (size_t f = 0; f < nf; f++)
        if (in_ctx[f] == want && rnd(g, 10) != 0)
            idx[n++] = f;
    if (g->bad && !want && rnd(g, 30) == 0)
        for (size_t f = 0; f < nf; f++)
            if (in_ctx[f]) { /* duplicate_feature */
                idx[n++] = f;
                break;
            }
    if (rnd(g, 4) == 0)
        gen_shuffle(g, idx, n);
    sb_puts(b, "{");
    for (size_t i = 0; i < n; i++) {
        size_t f = idx[i];
        if (i)
            sb_puts(b, ",");
        gen_key(g, b, f < g_nd ? g_def->dense[f].name : g_def->cat[f - g_nd].name);
        if (f < g_nd)
            gen_dense(g, b);
        else
            gen_cat(g, b, 0, f - g_nd);
        gen_ws(g, b);
    }
    if (g->bad && rnd(g, 40) == 0)
        sb_puts(b, n ? ",\"I99\":1" : "\"I99\":1");
    sb_puts(b, "}");
}

static void gen_rid(gen_t *g, sb_t *b)
{
    if (g->bad && rnd(g, 20) == 0) {
        sb_puts(b, rnd(g, 2) ? "42" : "\"a\\u0001b\"");
        return;
    }
    sb_puts(b, "\"");
    gen_string_body(g, b, rnd(g, 10) == 0 ? 118 + rnd(g, g->bad ? 16 : 7) : rnd(g, 24),
                    g->bad && rnd(g, 4) == 0);
    sb_puts(b, "\"");
}

static void gen_v1(gen_t *g, sb_t *b, size_t n_ex)
{
    unsigned char ctx[ND + NC] = {0};
    int has_ctx = rnd(g, 3) == 0, has_rid = rnd(g, 2);
    if (has_ctx)
        for (size_t f = 0; f < g_nd + g_nc; f++)
            ctx[f] = rnd(g, 4) == 0;
    size_t order[3] = {0, 1, 2};
    gen_shuffle(g, order, 3);
    gen_ws(g, b);
    sb_puts(b, "{");
    int first = 1;
    for (size_t o = 0; o < 3; o++) {
        if ((order[o] == 0 && !has_rid) || (order[o] == 1 && !has_ctx))
            continue;
        if (!first)
            sb_puts(b, ",");
        first = 0;
        if (order[o] == 0) {
            gen_key(g, b, "request_id");
            gen_rid(g, b);
        } else if (order[o] == 1) {
            gen_key(g, b, "context");
            gen_features(g, b, ctx, 1);
        } else {
            gen_key(g, b, "examples");
            sb_puts(b, "[");
            for (size_t i = 0; i < n_ex; i++) {
                if (i)
                    sb_puts(b, ",");
                gen_ws(g, b);
                gen_features(g, b, ctx, 0);
                gen_ws(g, b);
            }
            sb_puts(b, "]");
        }
        gen_ws(g, b);
    }
    sb_puts(b, "}");
    gen_ws(g, b);
}

/* Any JSON value for "parameters": nested, keys unique per object. */
static void gen_any(gen_t *g, sb_t *b, int depth)
{
    uint64_t r = rnd(g, depth > 4 ? 4 : 7);
    switch (r) {
    case 0: sb_puts(b, "null"); break;
    case 1: sb_printf(b, "%d", (int)rnd(g, 1000) - 500); break;
    case 2: sb_puts(b, "\"s\\u00e9\""); break;
    case 3: sb_puts(b, rnd(g, 2) ? "true" : "1.5e3"); break;
    case 4:
    case 5: {
        size_t n = rnd(g, 4);
        sb_puts(b, "{");
        for (size_t i = 0; i < n; i++) {
            sb_printf(b, "%s\"key%zu\":", i ? "," : "", i);
            gen_any(g, b, depth + 1);
        }
        sb_puts(b, "}");
        break;
    }
    default: {
        size_t n = rnd(g, 4);
        sb_puts(b, "[");
        for (size_t i = 0; i < n; i++) {
            if (i)
                sb_puts(b, ",");
            gen_any(g, b, depth + 1);
        }
        sb_puts(b, "]");
    }
    }
}

/* The categorical features in "sparse": the single-valued ones. */
static size_t gen_single(size_t *idx)
{
    size_t n = 0;
    for (size_t j = 0; j < g_nc; j++)
        if (!g_def->cat[j].bag_max)
            idx[n++] = j;
    return n;
}

/* which: 0 "dense", 1 "sparse", 2 + j bag feature j's own input. */
static void gen_v2_input(gen_t *g, sb_t *b, int which, size_t bsz)
{
    size_t single[NC], n_single = gen_single(single);
    const ctr_cat_def_t *bag = which >= 2 ? &g_def->cat[which - 2] : NULL;
    size_t n = bag ? rnd(g, bag->bag_max + 1) : which ? n_single : g_nd;
    int dt = which ? 1 + (int)rnd(g, 2) : 0; /* 1 BYTES, 2 INT64 */
    int nested = rnd(g, 3) == 0, params = rnd(g, 6) == 0;
    size_t order[5] = {0, 1, 2, 3, 4};
    if (rnd(g, 3) == 0)
        gen_shuffle(g, order, 5);
    sb_puts(b, "{");
    int first = 1;
    for (size_t o = 0; o < 5; o++) {
        if (order[o] == 4 && !params)
            continue;
        if (!first)
            sb_puts(b, ",");
        first = 0;
        switch (order[o]) {
        case 0:
            gen_key(g, b, "name");
            if (bag)
                sb_printf(b, "\"%s\"", bag->name);
            else
                sb_puts(b, which ? "\"sparse\"" : "\"dense\"");
            break;
        case 1:
            gen_key(g, b, "datatype");
            sb_puts(b, !which ? "\"FP32\"" : dt == 1 ? "\"BYTES\"" : "\"INT64\"");
            break;
        case 2: {
            size_t b0 = bsz, b1 = n;
            if (g->bad && rnd(g, 30) == 0)
                b1 = n + 1;
            gen_key(g, b, "shape");
            sb_printf(b, "[%zu,%zu]", b0, b1);
            break;
        }
        case 3:
            gen_key(g, b, "data");
            sb_puts(b, "[");
            for (size_t i = 0; i < bsz; i++) {
                if (nested)
                    sb_puts(b, i ? ",[" : "[");
                for (size_t j = 0; j < n; j++) {
                    if (i || j)
                        sb_puts(b, (nested && j == 0) ? "" : ",");
                    gen_ws(g, b);
                    if (bag && rnd(g, 4) == 0)
                        sb_puts(b, rnd(g, 2) ? "null" : dt == 1 ? "\"\"" : "-1"); /* padding */
                    else if (bag)
                        gen_cat_one(g, b, dt, (size_t)which - 2, 1);
                    else if (which)
                        gen_cat_one(g, b, dt, single[j], 0);
                    else
                        gen_dense(g, b);
                }
                if (nested)
                    sb_puts(b, "]");
            }
            sb_puts(b, "]");
            break;
        default:
            gen_key(g, b, "parameters");
            sb_puts(b, "{\"p\":");
            gen_any(g, b, 2);
            sb_puts(b, "}");
        }
    }
    sb_puts(b, "}");
}

static void gen_v2(gen_t *g, sb_t *b, size_t bsz)
{
    size_t order[4] = {0, 1, 2, 3};
    int has[4] = {rnd(g, 2) != 0, 1, rnd(g, 3) == 0, rnd(g, 4) == 0};
    gen_shuffle(g, order, 4);
    gen_ws(g, b);
    sb_puts(b, "{");
    int first = 1;
    for (size_t o = 0; o < 4; o++) {
        if (!has[order[o]])
            continue;
        if (!first)
            sb_puts(b, ",");
        first = 0;
        switch (order[o]) {
        case 0:
            gen_key(g, b, "id");
            gen_rid(g, b);
            break;
        case 1: {
            /* dense, sparse and (bag model) the bags' inputs, most of them */
            size_t in[2 + NC], n_in = 0;
            in[n_in++] = 0;
            in[n_in++] = 1;
            if (g->bad && rnd(g, 40) == 0)
                in[0] = in[--n_in - rnd(g, 2)]; /* one of them is missing */
            for (size_t j = 0; j < g_nc; j++)
                if (g_def->cat[j].bag_max && rnd(g, 4) != 0)
                    in[n_in++] = 2 + j;
            gen_shuffle(g, in, n_in);
            gen_key(g, b, "inputs");
            sb_puts(b, "[");
            for (size_t k = 0; k < n_in; k++) {
                if (k) {
                    sb_puts(b, ",");
                    gen_ws(g, b);
                }
                gen_v2_input(g, b, (int)in[k], bsz);
            }
            sb_puts(b, "]");
            break;
        }
        case 2:
            gen_key(g, b, "outputs");
            sb_puts(b, rnd(g, 4) ? "[{\"name\":\"score\"}]" : "[]");
            break;
        default:
            gen_key(g, b, "parameters");
            sb_puts(b, "{\"q\":");
            gen_any(g, b, 1);
            sb_puts(b, "}");
        }
        gen_ws(g, b);
    }
    sb_puts(b, "}");
}

/* ---- mutations --------------------------------------------------------- */

static size_t mutate(gen_t *g, const char *in, size_t n, char *out, size_t cap)
{
    static const char bytes[] = "\"\\{}[],:0-e.+ n\x00\x80\xc3\xff\xed";
    static const char *tokens[] = {"null", "1e999", "\\u", "\"", "{}", "[]", ",", "-", "0.",
                                   "\xc3", "\xed\xa0\x80", "\\ud800", "true", "  ", "\"I1\":1,",
                                   "9223372036854775808", "[[[[", "]]", "\\", "\"\\u0000\""};
    static const char *values[] = {"\"x\"", "1", "1.5", "null", "true", "[]", "{}", "-0", "\"\"",
                                   "9223372036854775807", "1e308", "[1,2]", "{\"a\":1}", "\"12\"",
                                   "\"0123456789012345678901234567890123456789012345678901234567890123456789\""};
    static const char *keys[] = {"I1", "I13", "C1", "C26", "I99", "examples", "context", "name",
                                 "data", "shape", "datatype", "id", "request_id", "parameters"};
    CTR_ASSERT(cap >= n + 64);
    memcpy(out, in, n);
    size_t len = n;
    for (uint64_t ops = 1 + rnd(g, 3); ops > 0 && len > 0; ops--) {
        size_t at = rnd(g, len);
        uint64_t op = rnd(g, 9);
        if (op >= 5) { /* token-level: keeps the JSON valid more often */
            const char *c = memchr(out + at, op == 8 ? '"' : ':', len - at);
            if (!c)
                continue;
            size_t s0 = (size_t)(c - out) + 1, s1 = s0;
            if (op == 8) { /* a string's content (often a key) */
                while (s1 < len && out[s1] != '"' && out[s1] != '\\')
                    s1++;
            } else {
                while (s0 < len && (out[s0] == ' ' || out[s0] == '\n'))
                    s0++;
                s1 = s0;
                if (s1 < len && out[s1] == '"') {
                    for (s1++; s1 < len && out[s1] != '"'; s1++)
                        if (out[s1] == '\\')
                            s1++;
                    s1++;
                } else {
                    while (s1 < len && !strchr(",}] \t\r\n", out[s1]))
                        s1++;
                }
                if (s1 > len)
                    s1 = len;
            }
            const char *t = op == 8 ? keys[rnd(g, CTR_ARRAY_LEN(keys))]
                                    : values[rnd(g, CTR_ARRAY_LEN(values))];
            size_t k = strlen(t);
            if (len - (s1 - s0) + k > cap)
                continue;
            memmove(out + s0 + k, out + s1, len - s1);
            memcpy(out + s0, t, k);
            len = len - (s1 - s0) + k;
            continue;
        }
        switch (op) {
        case 0:
            out[at] = bytes[rnd(g, sizeof(bytes) - 1)];
            break;
        case 1: {
            size_t k = 1 + rnd(g, 4);
            if (at + k > len)
                k = len - at;
            memmove(out + at, out + at + k, len - at - k);
            len -= k;
            break;
        }
        case 2: {
            const char *t = tokens[rnd(g, CTR_ARRAY_LEN(tokens))];
            size_t k = strlen(t);
            if (len + k > cap)
                break;
            memmove(out + at + k, out + at, len - at);
            memcpy(out + at, t, k);
            len += k;
            break;
        }
        case 3: { /* duplicate a short span */
            size_t k = 1 + rnd(g, 16);
            if (at + k > len)
                k = len - at;
            if (len + k > cap)
                break;
            memmove(out + at + k, out + at, len - at);
            len += k;
            break;
        }
        default:
            len = at;
        }
    }
    return len;
}

/* ---- corpora ----------------------------------------------------------- */

static int replay_dir(const char *dir, int v2)
{
    DIR *dp = opendir(dir);
    struct dirent *de;
    int n = 0;
    if (!dp)
        return -1;
    while ((de = readdir(dp))) {
        char path[1024];
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        sb_t b = {0};
        char buf[4096];
        size_t k;
        while ((k = fread(buf, 1, sizeof(buf), f)) > 0)
            sb_put(&b, buf, k);
        fclose(f);
        compare(path, v2, b.p ? b.p : "", b.n);
        free(b.p);
        n++;
    }
    closedir(dp);
    return n;
}

static void write_file(const char *dir, const char *name, const char *body, size_t len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(body, 1, len, f) != len || fclose(f)) {
        perror(path);
        exit(1);
    }
}

static void to_binary(const ctr_model_def_t *def, const ctr_request_t *r, sb_t *b, size_t *hlen);

/* tests/fuzz/corpus/decode_bags/: the first byte picks the decoder
 * (fuzz_decode_bags.c): '0' v1, '1' v2, '2' v2 binary (then the 2-byte
 * header length). Generated bodies on the bag model, with and without
 * injected errors, some mutated, and the binary form of accepted v2 ones. */
static int write_corpus_bags(gen_t *g)
{
    ctr_model_t *plain = g_m;
    g_m = (ctr_model_t *)ref_open_bag_model();
    g_def = ctr_model_def(g_m);
    if (mkdir(CORPUS_BAGS, 0755) && errno != EEXIST) {
        perror(CORPUS_BAGS);
        return 1;
    }
    static const char *cases[] = {
        "0{\"examples\":[{\"C1\":[\"a\",\"b\"],\"C2\":\"1F\",\"C3\":[12,\"ff\"],\"C26\":7}]}",
        "0{\"context\":{\"C1\":[\"x\"]},\"examples\":[{\"C3\":[]},{\"C26\":null}]}",
        "0{\"examples\":[{\"C1\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}]}",
        "0{\"examples\":[{\"C1\":[null]}]}",
        "0{\"examples\":[{\"C1\":[[\"a\"]]}]}",
        "0{\"examples\":[{\"C2\":[\"a\"]}]}",
        "0{\"examples\":[{\"C2\":-1}]}",
        "0{\"examples\":[{\"C3\":[\"0x1\"]}]}",
        "1{\"inputs\":[{\"name\":\"C1\",\"datatype\":\"BYTES\",\"shape\":[2,3],"
        "\"data\":[[\"a\",\"\",\"b\"],[null,\"\",\"\"]]},{\"name\":\"C3\",\"datatype\":\"INT64\","
        "\"shape\":[2,2],\"data\":[[-1,5],[7,-1]]}]}",
        "1{\"inputs\":[{\"name\":\"C26\",\"datatype\":\"BYTES\",\"shape\":[1,3],\"data\":[\"a\",\"b\",\"c\"]}]}",
        "1{\"inputs\":[{\"name\":\"C2\",\"datatype\":\"BYTES\",\"shape\":[1,1],\"data\":[\"a\"]}]}",
    };
    int count = 0;
    for (size_t i = 0; i < CTR_ARRAY_LEN(cases); i++) {
        char name[64];
        snprintf(name, sizeof(name), "case-%02zu", i);
        write_file(CORPUS_BAGS, name, cases[i], strlen(cases[i]));
        count++;
    }
    for (int v = 0; v < 2; v++) {
        for (int i = 0; i < 16; i++) {
            sb_t b = {0};
            g->bad = i >= 10;
            sb_puts(&b, v ? "1" : "0");
            if (v)
                gen_v2(g, &b, 1 + rnd(g, 3));
            else
                gen_v1(g, &b, 1 + rnd(g, 3));
            char name[64];
            snprintf(name, sizeof(name), "gen-v%d-%02d", v + 1, i);
            write_file(CORPUS_BAGS, name, b.p, b.n);
            count++;
            if (i % 3 == 0) {
                char out[8192];
                out[0] = b.p[0];
                size_t n = mutate(g, b.p + 1, b.n - 1, out + 1, sizeof(out) - 1);
                snprintf(name, sizeof(name), "mut-v%d-%02d", v + 1, i);
                write_file(CORPUS_BAGS, name, out, n + 1);
                count++;
            }
            ctr_request_t req;
            ctr_decode_error_t e;
            if (v && ctr__decode_v2(g_m, b.p + 1, b.n - 1, &g_lim, &req, &e) == 0) {
                sb_t bin = {0};
                size_t hlen;
                uint8_t pre[3] = {'2', 0, 0};
                sb_put(&bin, pre, 3);
                to_binary(g_def, &req, &bin, &hlen);
                bin.p[1] = (char)(hlen & 0xff);
                bin.p[2] = (char)(hlen >> 8);
                if (hlen < 65536) {
                    snprintf(name, sizeof(name), "bin-%02d", i);
                    write_file(CORPUS_BAGS, name, bin.p, bin.n);
                    count++;
                }
                free(bin.p);
                ctr__request_release(&req);
            }
            free(b.p);
        }
    }
    printf("wrote %d files to %s\n", count, CORPUS_BAGS);
    g_m = plain;
    g_def = ctr_model_def(g_m);
    ref_init(g_m);
    return 0;
}

static int write_corpus(int only_bags)
{
    test_rng_t rng = {20261123};
    gen_t g = {&rng, 1};
    if (only_bags)
        return write_corpus_bags(&g);
    int counts[2] = {0, 0};
    const char *dirs[2] = {CORPUS_V1, CORPUS_V2};
    mkdir("tests/fuzz", 0755);
    mkdir("tests/fuzz/corpus", 0755);
    for (int v = 0; v < 2; v++)
        if (mkdir(dirs[v], 0755) && errno != EEXIST) {
            perror(dirs[v]);
            return 1;
        }
    for (size_t i = 0; i < CTR_ARRAY_LEN(g_cases); i++) {
        const case_t *c = &g_cases[i];
        char name[64];
        snprintf(name, sizeof(name), "case-%03zu-%s", i, c->name ? c->name : "ok");
        write_file(dirs[c->v2], name, c->body, strlen(c->body));
        counts[c->v2]++;
    }
    for (int v = 0; v < 2; v++) {
        for (int i = 0; i < 12; i++) {
            sb_t b = {0};
            g.bad = i >= 8;
            if (v)
                gen_v2(&g, &b, 1 + rnd(&g, 3));
            else
                gen_v1(&g, &b, 1 + rnd(&g, 3));
            char name[64];
            snprintf(name, sizeof(name), "gen-%02d", i);
            write_file(dirs[v], name, b.p, b.n);
            if (i < 6) {
                char out[8192];
                size_t n = mutate(&g, b.p, b.n, out, sizeof(out));
                snprintf(name, sizeof(name), "mut-%02d", i);
                write_file(dirs[v], name, out, n);
                counts[v]++;
            }
            counts[v]++;
            free(b.p);
        }
    }
    printf("wrote %d files to %s, %d to %s\n", counts[0], CORPUS_V1, counts[1], CORPUS_V2);
    return write_corpus_bags(&g);
}

/* ---- the differential run ---------------------------------------------- */

static void test_differential(test_rng_t *rng)
{
    gen_t g = {rng, 0};
    size_t bodies = 0, truncs = 0, muts = 0, gen_ok[2][2] = {{0}}, gen_n[2][2] = {{0}};
    char *out = malloc(1 << 20);
    for (int v2 = 0; v2 <= 1; v2++) {
        for (int t = 0; t < 800; t++) {
            sb_t b = {0};
            g.bad = t % 3 == 2;
            size_t n = 1 + rnd(&g, t % 10 == 0 ? 40 : 4);
            if (v2)
                gen_v2(&g, &b, n);
            else
                gen_v1(&g, &b, n);
            compare("generated", v2, b.p, b.n);
            bodies++;
            gen_ok[v2][g.bad] += g_ref.verdict == REF_OK;
            if (getenv("DECODE_DEBUG") && !g.bad && g_ref.verdict != REF_OK)
                fprintf(stderr, "clean generated v%d rejected: verdict %d %s\n", v2 + 1,
                        g_ref.verdict, g_ref.name ? g_ref.name : "");
            gen_n[v2][g.bad]++;
            for (int k = 0; k < 16; k++) {
                size_t len = mutate(&g, b.p, b.n, out, 1 << 20);
                compare("mutated", v2, out, len);
                muts++;
            }
            if (t < 6 && b.n < 4000) {
                for (size_t len = 0; len <= b.n; len++) {
                    compare("truncated", v2, b.p, len);
                    truncs++;
                }
            }
            free(b.p);
        }
    }
    free(out);
    int c1 = replay_dir(CORPUS_V1, 0), c2 = replay_dir(CORPUS_V2, 1);
    printf("differential: %zu generated, %zu mutated, %zu truncated bodies, corpus %d + %d files;\n"
           "  reference verdicts over all %zu compared: %zu accepted, %zu broken JSON, "
           "%zu semantic errors, %zu jansson-limited\n",
           bodies, muts, truncs, c1, c2, ref_stats.total, ref_stats.ok, ref_stats.syntax,
           ref_stats.semantic, ref_stats.limited);
    printf("  generated bodies accepted: v1 %zu/%zu clean, %zu/%zu with injected errors; "
           "v2 %zu/%zu, %zu/%zu\n",
           gen_ok[0][0], gen_n[0][0], gen_ok[0][1], gen_n[0][1], gen_ok[1][0], gen_n[1][0],
           gen_ok[1][1], gen_n[1][1]);
    CHECKF(c1 > 0 && c2 > 0, "fuzz corpora missing (run from the repository root)");
}

/* The binary tensor data form of a decoded request (docs/DECODER.md "v2
 * binary"): dense as FP64 (the raw doubles, NaN when missing), "sparse"
 * and each bag as BYTES, a missing value or an empty slot as "". Body
 * into b, its JSON header's length into *hlen. */
static void to_binary(const ctr_model_def_t *def, const ctr_request_t *r, sb_t *b, size_t *hlen)
{
    sb_t head = {0}, data = {0};
    size_t n = r->n, nd = r->n_dense, single[NC], n_single = gen_single(single);
    sb_printf(&head, "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP64\",\"shape\":[%zu,%zu],"
                     "\"parameters\":{\"binary_data_size\":%zu}}",
              n, nd, n * nd * 8);
    for (size_t k = 0; k < n * nd; k++) {
        uint8_t le[8];
        uint64_t u;
        memcpy(&u, &r->dense_raw[k], 8);
        for (int t = 0; t < 8; t++)
            le[t] = (uint8_t)(u >> (8 * t));
        sb_put(&data, le, 8);
    }
    for (size_t in = 0; in <= def->n_cat; in++) { /* 0: sparse; 1 + j: bag j */
        const ctr_cat_def_t *bag = in ? &def->cat[in - 1] : NULL;
        if (bag && !bag->bag_max)
            continue;
        size_t start = data.n, w = bag ? bag->bag_max : n_single;
        for (size_t i = 0; i < n; i++)
            for (size_t t = 0; t < w; t++) {
                size_t k = i * r->n_cat + (bag ? ctr_model_slot_of(def, in - 1) + t
                                               : ctr_model_slot_of(def, single[t]));
                uint32_t len = r->cat_len[k] == CTR_CAT_MISSING_LEN ? 0 : r->cat_len[k];
                uint8_t le[4] = {(uint8_t)len, (uint8_t)(len >> 8), 0, 0};
                sb_put(&data, le, 4);
                sb_put(&data, r->cat_bytes + r->cat_off[k], len);
            }
        sb_printf(&head, ",{\"name\":\"%s\",\"datatype\":\"BYTES\",\"shape\":[%zu,%zu],"
                         "\"parameters\":{\"binary_data_size\":%zu}}",
                  bag ? bag->name : "sparse", n, w, data.n - start);
    }
    sb_puts(&head, "]");
    if (r->has_request_id) {
        sb_puts(&head, ",\"id\":\"");
        for (const char *c = r->request_id; *c; c++) {
            if (*c == '"' || *c == '\\')
                sb_puts(&head, "\\");
            sb_put(&head, c, 1);
        }
        sb_puts(&head, "\"");
    }
    sb_printf(&head, ",\"parameters\":{\"binary_data_output\":%s}}",
              r->binary_output ? "true" : "false");
    *hlen = head.n;
    sb_put(b, head.p, head.n);
    sb_put(b, data.p, data.n);
    free(head.p);
    free(data.p);
}

/* The generated bodies and their mutations on the bag model (C1, C3 and
 * C26 bags, C2 and C3 `mod`: ref_open_bag_model): both decoders agree,
 * and every accepted v2 body decodes to the same request in its binary
 * form. */
static void test_differential_bags(test_rng_t *rng)
{
    ctr_model_t *plain = g_m;
    g_m = (ctr_model_t *)ref_open_bag_model();
    g_def = ctr_model_def(g_m);
    gen_t g = {rng, 0};
    size_t bodies = 0, muts = 0, ok[2] = {0, 0}, bins = 0, arrays = 0;
    char *out = malloc(1 << 20);
    ref_stats_t before = ref_stats;
    for (int v2 = 0; v2 <= 1; v2++) {
        for (int t = 0; t < 600; t++) {
            sb_t b = {0};
            g.bad = t % 3 == 2;
            size_t n = 1 + rnd(&g, t % 10 == 0 ? 40 : 4);
            if (v2)
                gen_v2(&g, &b, n);
            else
                gen_v1(&g, &b, n);
            arrays += !v2 && strstr(b.p, ":[") != NULL;
            compare("bags generated", v2, b.p, b.n);
            bodies++;
            ok[v2] += g_ref.verdict == REF_OK;
            if (getenv("DECODE_DEBUG") && !g.bad && g_ref.verdict != REF_OK)
                fprintf(stderr, "clean generated v%d rejected: %s\n", v2 + 1,
                        g_ref.name ? g_ref.name : "");
            for (int k = 0; k < 8; k++) {
                size_t len = mutate(&g, b.p, b.n, out, 1 << 20);
                compare("bags mutated", v2, out, len);
                muts++;
            }
            ctr_request_t req, breq;
            ctr_decode_error_t e;
            if (v2 && ctr__decode_v2(g_m, b.p, b.n, &g_lim, &req, &e) == 0) {
                sb_t bin = {0};
                size_t hlen;
                to_binary(g_def, &req, &bin, &hlen);
                int rc = ctr__decode_v2_binary(g_m, bin.p, bin.n, hlen, &g_lim, &breq, &e);
                CHECKF(rc == 0, "binary form refused: %s %s", e.name, e.message);
                if (rc == 0) {
                    CHECKF(ref_same_request(&req, &breq), "binary form differs: %s", b.p);
                    ctr__request_release(&breq);
                }
                bins++;
                free(bin.p);
                ctr__request_release(&req);
            }
            free(b.p);
        }
    }
    free(out);
    printf("bag model: %zu generated (%zu v1 bodies with arrays), %zu mutated; accepted v1 %zu, "
           "v2 %zu; %zu binary forms; reference verdicts: %zu accepted, %zu semantic errors\n",
           bodies, arrays, muts, ok[0], ok[1], bins, ref_stats.ok - before.ok,
           ref_stats.semantic - before.semantic);
    CHECK(ok[0] > 100 && ok[1] > 100 && bins > 100 && arrays > 100);
    g_m = plain;
    g_def = ctr_model_def(g_m);
    ref_init(g_m);
}

/* ---- benchmark --------------------------------------------------------- */

static double now_s(void)
{
    /* CPU time of this thread: the machine may be shared and busy. */
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A Criteo-like v1 body: 13 small integers and 26 8-hex-digit strings per
 * example, pretty-printed (one feature per line, as clients' JSON
 * libraries often send it) or compact. */
static void bench_body(sb_t *b, size_t n_ex, int pretty, test_rng_t *rng)
{
    const char *nl = pretty ? "\n" : "", *in2 = pretty ? "    " : "", *in3 = pretty ? "      " : "";
    const char *sp = pretty ? " " : "";
    sb_printf(b, "{%s%s\"request_id\":%s\"bench-0001\",%s%s\"examples\":%s[%s", nl, in2, sp, nl, in2,
              sp, nl);
    for (size_t i = 0; i < n_ex; i++) {
        sb_printf(b, "%s%s{%s", i ? "," : "", in2, nl);
        for (size_t f = 0; f < ND; f++)
            sb_printf(b, "%s\"I%zu\":%s%u,%s", in3, f + 1, sp, (unsigned)(test_rng_next(rng) % 5000),
                      nl);
        for (size_t j = 0; j < NC; j++)
            sb_printf(b, "%s\"C%zu\":%s\"%08x\"%s%s", in3, j + 1, sp, (uint32_t)test_rng_next(rng),
                      j + 1 < NC ? "," : "", nl);
        sb_printf(b, "%s}%s", in2, nl);
    }
    sb_printf(b, "%s]%s}%s", in2, nl, nl);
}

static int bench(int iters, int ours_only)
{
    test_rng_t rng = {42};
    for (int pretty = 1; pretty >= 0; pretty--) {
        sb_t b = {0};
        const size_t n_ex = 64;
        bench_body(&b, n_ex, pretty, &rng);
        ctr_request_t req;
        ctr_decode_error_t e;
        if (ctr__decode_v1(g_m, b.p, b.n, NULL, &req, &e)) {
            fprintf(stderr, "bench body rejected: %s\n", e.message);
            return 1;
        }
        ctr__request_release(&req);
        double best_ours = 1e9, best_jans = 1e9, best_ref = 1e9;
        for (int round = 0; round < 9; round++) {
            double t0 = now_s();
            for (int i = 0; i < iters; i++) {
                ctr__decode_v1(g_m, b.p, b.n, NULL, &req, &e);
                ctr__request_release(&req);
            }
            double t1 = now_s();
            if (ours_only) {
                best_ours = fmin(best_ours, (t1 - t0) / iters);
                continue;
            }
            for (int i = 0; i < iters / 4 + 1; i++) {
                json_error_t je;
                json_t *j = json_loadb(b.p, b.n, 0, &je);
                json_decref(j);
            }
            double t2 = now_s();
            for (int i = 0; i < iters / 8 + 1; i++)
                ref_run(0, b.p, b.n);
            double t3 = now_s();
            best_ours = fmin(best_ours, (t1 - t0) / iters);
            best_jans = fmin(best_jans, (t2 - t1) / (iters / 4 + 1));
            best_ref = fmin(best_ref, (t3 - t2) / (iters / 8 + 1));
        }
        printf("%s body: %zu examples, %zu bytes (%.0f bytes/example)\n",
               pretty ? "pretty-printed" : "compact", n_ex, b.n, (double)b.n / (double)n_ex);
        printf("  ctr__decode_v1            %8.1f MB/s  %7.3f us/example  %8.1f us/body\n",
               (double)b.n / best_ours / 1e6, best_ours / (double)n_ex * 1e6, best_ours * 1e6);
        printf("  jansson json_loadb        %8.1f MB/s  %7.3f us/example  %8.1f us/body"
               "  (parse only; %.1fx slower)\n",
               (double)b.n / best_jans / 1e6, best_jans / (double)n_ex * 1e6, best_jans * 1e6,
               best_jans / best_ours);
        printf("  jansson reference decoder %8.1f MB/s  %7.3f us/example  %8.1f us/body"
               "  (2 parses + walk; %.1fx slower)\n",
               (double)b.n / best_ref / 1e6, best_ref / (double)n_ex * 1e6, best_ref * 1e6,
               best_ref / best_ours);
        free(b.p);
    }
    return 0;
}

/* ---- main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
    char path[512], err[256];
    const uint32_t hidden[1] = {8};
    snprintf(path, sizeof(path), "%s/decode.ctrm", test_tmpdir());
    if (test_make_model(path, 7, ND, NC, 1000, 4, hidden, 1, CTR_ACT_SMELU, 1.0f)) {
        fprintf(stderr, "cannot write the test model\n");
        return 1;
    }
    if (ctr_model_open(path, &g_m, err, sizeof(err))) {
        fprintf(stderr, "cannot open the test model: %s\n", err);
        return 1;
    }
    g_def = ctr_model_def(g_m);
    g_nd = g_def->n_dense;
    g_nc = g_def->n_cat;
    CTR_ASSERT(g_nd == ND && g_nc == NC);
    ref_init(g_m);
    int rc = 0;

    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        rc = bench(argc > 2 ? atoi(argv[2]) : 2000, argc > 3 && !strcmp(argv[3], "ours"));
    } else if (argc > 1 && !strcmp(argv[1], "--write-corpus")) {
        rc = write_corpus(argc > 2 && !strcmp(argv[2], "bags"));
    } else {
        test_rng_t rng = {12345};
        for (size_t i = 0; i < CTR_ARRAY_LEN(g_cases); i++)
            check_case(&g_cases[i]);
        test_semantics();
        test_error_codes();
        test_small_models();
        test_v1_v2_same(&rng);
        test_numbers(&rng);
        test_differential(&rng);
        test_differential_bags(&rng);
        bench(20, 0); /* smoke: the benchmark itself runs */
        rc = test_main_end();
    }
    ctr_model_close(g_m);
    remove(path);
    rmdir(test_tmpdir());
    return rc;
}
