/* test_decode_binary.c - ctr__decode_v2_binary (Triton's binary tensor
 * data, docs/DECODER.md "v2 binary"):
 *  - every datatype mix (dense FP32/FP64/INT64, sparse BYTES/INT64) decodes
 *    to the request its JSON form decodes to, bit for bit (encoded and raw
 *    values, rows, categorical bytes), with NaN as null and "" as missing;
 *  - the binary output flag: output parameters.binary_data, request
 *    parameters.binary_data_output, and the output's flag winning;
 *  - every hostile body is refused with its name and a client status.
 * The end-to-end twin is tests/test_server_binary.sh. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../server/decode.h"
#include "../server/respond.h"
#include "ctr/common.h"
#include "ctr/model.h"
#include "testutil.h"

#define ND 13
#define NC 26

static ctr_model_t *g_m;
static const ctr_decode_limits_t g_lim = {64, 32};

typedef struct {
    char *p;
    size_t len, cap;
} sb_t;

static void sb_put(sb_t *b, const void *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        CTR_ASSERT(b->p);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_printf(sb_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sb_t *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    CTR_ASSERT(n >= 0 && (size_t)n < sizeof tmp);
    sb_put(b, tmp, (size_t)n);
}

static void put_le(sb_t *b, uint64_t v, size_t bytes)
{
    unsigned char le[8];
    for (size_t i = 0; i < bytes; i++)
        le[i] = (unsigned char)(v >> (8 * i));
    sb_put(b, le, bytes);
}

enum { D_FP32, D_FP64, D_INT64 };
enum { S_BYTES, S_INT64 };
static const char *const DNAME[] = {"FP32", "FP64", "INT64"};

typedef struct {
    size_t b;
    double dense[8 * ND];       /* NaN: missing */
    int64_t dint[8 * ND];
    char cat[8 * NC][24];       /* "" missing */
    int64_t cint[8 * NC];
} values_t;

static void make_values(test_rng_t *r, values_t *v, size_t b, int ddt)
{
    v->b = b;
    for (size_t k = 0; k < b * ND; k++) {
        uint64_t x = test_rng_next(r);
        if (ddt == D_INT64) {
            v->dint[k] = x % 5 == 0 ? (int64_t)x : (int64_t)(x % 2001) - 1000;
            v->dense[k] = (double)v->dint[k];
        } else if (x % 9 == 0) {
            v->dense[k] = NAN;
        } else {
            double d = (double)test_rng_uniform(r, -50.0f, 500.0f) * (x % 7 == 0 ? 1e-3 : 1.0);
            if (ddt == D_FP64)
                d += 1e-12 * (double)(x % 1000); /* not a float */
            v->dense[k] = ddt == D_FP32 ? (double)(float)d : d;
        }
    }
    for (size_t k = 0; k < b * NC; k++) {
        uint64_t x = test_rng_next(r);
        if (x % 8 == 0)
            v->cat[k][0] = '\0';
        else if (x % 8 == 1)
            snprintf(v->cat[k], sizeof v->cat[k], "caf\xc3\xa9%u", (unsigned)(x >> 40));
        else if (x % 8 == 2)
            snprintf(v->cat[k], sizeof v->cat[k], "q\"\\%u", (unsigned)(x >> 50));
        else
            snprintf(v->cat[k], sizeof v->cat[k], "%llx", (unsigned long long)(x >> 20));
        v->cint[k] = x % 11 == 0 ? INT64_MIN : (int64_t)(x >> (x % 40));
    }
}

static void json_str(sb_t *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            sb_put(b, "\\", 1);
        sb_put(b, s, 1);
    }
    sb_put(b, "\"", 1);
}

/* The JSON form. */
static void json_body(sb_t *b, const values_t *v, int sdt, const char *extra)
{
    sb_printf(b, "{\"id\":\"t\",\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[%zu,%d],"
                 "\"data\":[", v->b, ND);
    for (size_t k = 0; k < v->b * ND; k++) {
        if (k)
            sb_put(b, ",", 1);
        if (isnan(v->dense[k]))
            sb_printf(b, "null");
        else
            sb_printf(b, "%.17g", v->dense[k]);
    }
    sb_printf(b, "]},{\"name\":\"sparse\",\"datatype\":\"%s\",\"shape\":[%zu,%d],\"data\":[",
              sdt == S_BYTES ? "BYTES" : "INT64", v->b, NC);
    for (size_t k = 0; k < v->b * NC; k++) {
        if (k)
            sb_put(b, ",", 1);
        if (sdt == S_BYTES)
            json_str(b, v->cat[k]);
        else
            sb_printf(b, "%lld", (long long)v->cint[k]);
    }
    sb_printf(b, "]}]%s}", extra);
}

/* The binary form: returns the header length. */
static size_t binary_body(sb_t *b, const values_t *v, int ddt, int sdt, const char *extra)
{
    sb_t t = {0};
    for (size_t k = 0; k < v->b * ND; k++) {
        if (ddt == D_FP32) {
            float f = (float)v->dense[k];
            uint32_t u;
            memcpy(&u, &f, 4);
            put_le(&t, u, 4);
        } else if (ddt == D_FP64) {
            uint64_t u;
            memcpy(&u, &v->dense[k], 8);
            put_le(&t, u, 8);
        } else {
            put_le(&t, (uint64_t)v->dint[k], 8);
        }
    }
    size_t dsz = t.len;
    for (size_t k = 0; k < v->b * NC; k++) {
        if (sdt == S_BYTES) {
            put_le(&t, strlen(v->cat[k]), 4);
            sb_put(&t, v->cat[k], strlen(v->cat[k]));
        } else {
            put_le(&t, (uint64_t)v->cint[k], 8);
        }
    }
    sb_printf(b, "{\"id\":\"t\",\"inputs\":[{\"name\":\"dense\",\"datatype\":\"%s\",\"shape\":[%zu,%d],"
                 "\"parameters\":{\"other\":[1,{\"x\":2}],\"binary_data_size\":%zu}},"
                 "{\"name\":\"sparse\",\"datatype\":\"%s\",\"shape\":[%zu,%d],"
                 "\"parameters\":{\"binary_data_size\":%zu}}]%s}",
              DNAME[ddt], v->b, ND, dsz, sdt == S_BYTES ? "BYTES" : "INT64", v->b, NC,
              t.len - dsz, extra);
    size_t hl = b->len;
    sb_put(b, t.p, t.len);
    free(t.p);
    return hl;
}

static int same(const ctr_request_t *a, const ctr_request_t *b)
{
    size_t nd = a->n * ND, nc = a->n * NC;
    int ok = CHECK_EQ_SIZE(a->n, b->n) && CHECK_EQ_STR(a->request_id, b->request_id) &&
             CHECK_EQ_INT(a->binary_output, b->binary_output);
    for (size_t k = 0; ok && k < nd; k++) {
        ok = CHECK_EQ_BITS(a->dense[k], b->dense[k]);
        if (ok && !(isnan(a->dense_raw[k]) && isnan(b->dense_raw[k])))
            ok = CHECK_EQ_UINT(*(const uint64_t *)&a->dense_raw[k], *(const uint64_t *)&b->dense_raw[k]);
    }
    for (size_t k = 0; ok && k < nc; k++) {
        ok = CHECK_EQ_UINT(a->rows[k], b->rows[k]) && CHECK_EQ_UINT(a->cat_len[k], b->cat_len[k]);
        if (ok && a->cat_len[k] != CTR_CAT_MISSING_LEN)
            ok = CHECK_EQ_INT(memcmp(a->cat_bytes + a->cat_off[k], b->cat_bytes + b->cat_off[k],
                                     a->cat_len[k]), 0);
    }
    return ok;
}

static void test_same_as_json(test_rng_t *r)
{
    static const char *const extras[] = {
        "", ",\"outputs\":[{\"name\":\"score\",\"parameters\":{\"binary_data\":true}}]",
        ",\"parameters\":{\"binary_data_output\":true}",
        (",\"parameters\":{\"binary_data_output\":true},\"outputs\":[{\"name\":\"score\","
         "\"parameters\":{\"binary_data\":false}}]")};
    static const int want_bin[] = {0, 1, 1, 0};
    int n = 0;
    for (int ddt = 0; ddt < 3; ddt++)
        for (int sdt = 0; sdt < 2; sdt++)
            for (size_t b = 1; b <= 8; b += 7)
                for (int x = 0; x < 4; x++) {
                    values_t v;
                    sb_t jb = {0}, bb = {0};
                    make_values(r, &v, b, ddt);
                    json_body(&jb, &v, sdt, extras[x]);
                    size_t hl = binary_body(&bb, &v, ddt, sdt, extras[x]);
                    ctr_request_t rj, rb;
                    ctr_decode_error_t ej, eb;
                    int rcj = ctr__decode_v2(g_m, jb.p, jb.len, &g_lim, &rj, &ej);
                    int rcb = ctr__decode_v2_binary(g_m, bb.p, bb.len, hl, &g_lim, &rb, &eb);
                    CHECKF(rcj == 0, "json %s: %s", ej.name, ej.message);
                    CHECKF(rcb == 0, "binary %s/%s b=%zu: %s: %s", DNAME[ddt],
                           sdt ? "INT64" : "BYTES", b, eb.name, eb.message);
                    if (rcj == 0 && rcb == 0) {
                        same(&rj, &rb);
                        CHECK_EQ_INT(rb.binary_output, want_bin[x]);
                        n++;
                    }
                    if (!rcj)
                        ctr__request_release(&rj);
                    if (!rcb)
                        ctr__request_release(&rb);
                    free(jb.p);
                    free(bb.p);
                }
    CHECK_EQ_INT(n, 3 * 2 * 2 * 4);
}

/* A whole JSON body is a binary body with no tensor data. */
static void test_header_only(void)
{
    values_t v;
    test_rng_t r = {99};
    sb_t jb = {0};
    make_values(&r, &v, 2, D_FP32);
    json_body(&jb, &v, S_BYTES, "");
    ctr_request_t a, b;
    ctr_decode_error_t e;
    CHECK_EQ_INT(ctr__decode_v2(g_m, jb.p, jb.len, &g_lim, &a, &e), 0);
    if (CHECK_EQ_INT(ctr__decode_v2_binary(g_m, jb.p, jb.len, jb.len, &g_lim, &b, &e), 0)) {
        same(&a, &b);
        ctr__request_release(&b);
    }
    ctr__request_release(&a);
    free(jb.p);
}

static void expect_error(const char *what, const char *body, size_t len, size_t hl,
                         const char *name)
{
    ctr_request_t req;
    ctr_decode_error_t e;
    int rc = ctr__decode_v2_binary(g_m, body, len, hl, &g_lim, &req, &e);
    CHECKF(rc != 0, "%s: accepted", what);
    if (rc == 0) {
        ctr__request_release(&req);
        return;
    }
    int st = ctr__http_status(rc, CTR__SUBJECT_REQUEST);
    CHECKF(st == 400 || st == 413, "%s: status %d", what, st);
    CHECKF(e.name && !strcmp(e.name, name), "%s: error %s (%s), want %s", what,
           e.name ? e.name : "(null)", e.message, name);
    CHECKF(e.message[0] != '\0', "%s: no message", what);
}

/* A one-example body: dense FP32 from dsize bytes, sparse BYTES from the
 * rest, with the given tensor bytes. */
static size_t hostile_body(sb_t *b, const char *dsize, const char *ssize, const char *dense_extra)
{
    sb_printf(b, "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[1,%d],"
                 "\"parameters\":{\"binary_data_size\":%s}%s},"
                 "{\"name\":\"sparse\",\"datatype\":\"BYTES\",\"shape\":[1,%d],"
                 "\"parameters\":{\"binary_data_size\":%s}}]}",
              ND, dsize, dense_extra, NC, ssize);
    return b->len;
}

static void good_tensors(sb_t *b)
{
    for (int k = 0; k < ND; k++)
        put_le(b, 0x3f800000u, 4); /* 1.0f */
    for (int k = 0; k < NC; k++) {
        put_le(b, 2, 4);
        sb_put(b, "ab", 2);
    }
}

static void test_hostile(void)
{
    char ds[32], ss[32];
    snprintf(ds, sizeof ds, "%d", ND * 4);
    snprintf(ss, sizeof ss, "%d", NC * 6);
    sb_t b = {0};
    size_t hl = hostile_body(&b, ds, ss, "");
    good_tensors(&b);
    ctr_request_t req;
    ctr_decode_error_t e;
    if (CHECK_EQ_INT(ctr__decode_v2_binary(g_m, b.p, b.len, hl, &g_lim, &req, &e), 0))
        ctr__request_release(&req);

    expect_error("header length beyond the body", b.p, b.len, b.len + 1, "bad_header_length");
    expect_error("header length huge", b.p, b.len, (size_t)-2, "bad_header_length");
    expect_error("header cut", b.p, b.len, hl - 1, "malformed_json");
    expect_error("header longer than the JSON", b.p, b.len, hl + 1, "malformed_json");
    expect_error("empty body", "", 0, 0, "malformed_json");

    sb_t t = b;
    t.p = malloc(b.len + 8);
    memcpy(t.p, b.p, b.len);
    memcpy(t.p + b.len, "\0\0\0", 3);
    expect_error("trailing bytes", t.p, b.len + 3, hl, "trailing_binary_data");
    expect_error("tensor data cut", t.p, b.len - 1, hl, "bad_binary_size");
    memcpy(t.p + hl + ND * 4, "\xff\xff\xff\xff", 4);
    expect_error("BYTES length past the end", t.p, b.len, hl, "binary_data_overrun");
    memcpy(t.p + hl + ND * 4, "\x41\0\0\0", 4);
    expect_error("BYTES element of 65 bytes", t.p, b.len, hl, "string_too_long");
    memcpy(t.p + hl + ND * 4, "\x02\0\0\0\xc3\x28", 6);
    expect_error("BYTES invalid UTF-8", t.p, b.len, hl, "invalid_utf8");
    memcpy(t.p + hl + ND * 4, "\x02\0\0\0ab", 6);
    memcpy(t.p + hl, "\0\0\x80\x7f", 4); /* +inf */
    expect_error("dense infinity", t.p, b.len, hl, "number_out_of_range");
    memcpy(t.p + hl, "\0\0\xc0\x7f", 4); /* NaN: missing, accepted */
    if (CHECK_EQ_INT(ctr__decode_v2_binary(g_m, t.p, b.len, hl, &g_lim, &req, &e), 0)) {
        CHECK(isnan(req.dense_raw[0]));
        ctr__request_release(&req);
    }
    free(t.p);

    static const struct {
        const char *what, *dsize, *ssize, *dense_extra, *name;
    } cases[] = {
        {"dense size disagrees", "48", NULL, "", "bad_binary_size"},
        {"dense size 2^64-1", "18446744073709551615", NULL, "", "bad_binary_size"},
        {"dense size 2^63-1", "9223372036854775807", NULL, "", "bad_binary_size"},
        {"dense size negative", "-4", NULL, "", "bad_binary_size"},
        {"dense size fractional", "52.5", NULL, "", "bad_binary_size"},
        {"dense size a string", "\"52\"", NULL, "", "bad_binary_size"},
        {"sparse size past the end", NULL, "1000000", "", "bad_binary_size"},
        {"sparse size short of the elements", NULL, "150", "", "bad_binary_size"},
        {"binary_data_size and data", NULL, NULL,
         ",\"data\":[1,1,1,1,1,1,1,1,1,1,1,1,1]", "conflicting_data"},
    };
    for (size_t i = 0; i < CTR_ARRAY_LEN(cases); i++) {
        sb_t c = {0};
        size_t h = hostile_body(&c, cases[i].dsize ? cases[i].dsize : ds,
                                cases[i].ssize ? cases[i].ssize : ss, cases[i].dense_extra);
        good_tensors(&c);
        expect_error(cases[i].what, c.p, c.len, h, cases[i].name);
        free(c.p);
    }
    /* The sparse data one element short: its size says so. */
    sb_t c = {0};
    snprintf(ss, sizeof ss, "%d", NC * 6 + 4);
    size_t h = hostile_body(&c, ds, ss, "");
    good_tensors(&c);
    put_le(&c, 0, 4);
    expect_error("sparse bytes left over", c.p, c.len, h, "bad_binary_size");
    free(c.p);
    free(b.p);
}

int main(void)
{
    char path[512], err[256];
    const uint32_t hidden[1] = {8};
    snprintf(path, sizeof(path), "%s/binary.ctrm", test_tmpdir());
    if (test_make_model(path, 7, ND, NC, 1000, 4, hidden, 1, CTR_ACT_SMELU, 1.0f) ||
        ctr_model_open(path, &g_m, err, sizeof(err))) {
        fprintf(stderr, "cannot make the test model\n");
        return 1;
    }
    test_rng_t r = {2026};
    test_same_as_json(&r);
    test_header_only();
    test_hostile();
    ctr_model_close(g_m);
    remove(path);
    rmdir(test_tmpdir());
    return test_main_end();
}
