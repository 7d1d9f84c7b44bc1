/* test_decode_bags.c - bag features and the `mod` mapping in the request
 * decoders (server/decode*.c): the slots each form gives, the errors each
 * mistake gets (name, example, feature), and v1, v2 JSON and v2 binary
 * giving the same request for the same values, bit for bit.
 *
 * The model: a test model (test_make_model: I1, I2; C1..C4) made in memory
 * into C1 single-valued `hash`, C2 a `hash` bag of at most 4, C3
 * single-valued `mod`, C4 a `mod` bag of at most 3 (mean): 9 slots. Until
 * the model file carries bags, the def is patched after loading, which is
 * all the decoders read. The random differential over bag bodies is in
 * test_decode.c (test_differential_bags) and fuzz_decode_bags.c. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../server/decode.h"
#include "../server/respond.h"
#include "ctr/common.h"
#include "ctr/features.h"
#include "ctr/model.h"
#include "model_int.h"
#include "testutil.h"

#define BUCKETS 1000
#define E CTR_EMPTY_SLOT
#define NS 9

static ctr_model_t *g_m;
static const ctr_model_def_t *g_def;
static const ctr_decode_limits_t g_lim = {64, 32};

static void patch(size_t j, uint32_t bag_max, ctr_pool_t pool, ctr_mapping_t map)
{
    struct ctr_model *m = g_m;
    CTR_ASSERT(m->def.cat == m->cat);
    m->cat[j].bag_max = bag_max;
    m->cat[j].pool = pool;
    m->cat[j].mapping = map;
}

static uint32_t hrow(size_t j, const char *v)
{
    return ctr_features_cat_row(&g_def->cat[j], v, strlen(v));
}

static uint32_t mrow(uint64_t v)
{
    return (uint32_t)(v % (BUCKETS + 1));
}

static int decode(int form, const char *body, ctr_request_t *req, ctr_decode_error_t *e)
{
    size_t len = strlen(body);
    return form ? ctr__decode_v2(g_m, body, len, &g_lim, req, e)
                : ctr__decode_v1(g_m, body, len, &g_lim, req, e);
}

/* Example i's slots are want[], and the raw values where given (NULL: an
 * empty slot or a missing value). */
static void check_slots(const ctr_request_t *r, size_t i, const uint32_t *want,
                        const char *const *raw)
{
    for (size_t k = 0; k < NS; k++) {
        size_t at = i * NS + k;
        if (!CHECK_EQ_UINT(r->rows[at], want[k]))
            fprintf(stderr, "  example %zu slot %zu\n", i, k);
        if (!raw)
            continue;
        if (!raw[k]) {
            CHECKF(r->cat_len[at] == CTR_CAT_MISSING_LEN, "example %zu slot %zu: raw len %u", i,
                   k, r->cat_len[at]);
        } else {
            size_t n = strlen(raw[k]);
            CHECKF(r->cat_len[at] == n && !memcmp(r->cat_bytes + r->cat_off[at], raw[k], n),
                   "example %zu slot %zu: raw \"%.*s\", want \"%s\"", i, k,
                   r->cat_len[at] == CTR_CAT_MISSING_LEN ? 0 : (int)r->cat_len[at],
                   r->cat_bytes + r->cat_off[at], raw[k]);
        }
    }
}

static void test_v1_values(void)
{
    ctr_request_t r;
    ctr_decode_error_t e;
    const char *body =
        "{\"examples\":[{\"C1\":\"a\",\"C2\":[\"x\",\"y\"],\"C3\":\"ff\",\"C4\":[16,\"1A\"]},"
        "{\"C2\":\"z\"},{\"C2\":[],\"C4\":[0,\"FFFFFFFFFFFFFFFF\",9223372036854775807]},"
        "{\"C2\":null,\"C4\":5,\"I1\":2}]}";
    int rc = decode(0, body, &r, &e);
    CHECKF(rc == 0, "%s", e.message);
    if (rc)
        return;
    CHECK_EQ_SIZE(r.n, 4);
    CHECK_EQ_SIZE(r.n_cat, NS);
    CHECK_EQ_SIZE(r.n_dense, 2);
    const uint32_t w0[NS] = {hrow(0, "a"), hrow(1, "x"), hrow(1, "y"), E, E, mrow(255), mrow(16),
                             mrow(26), E};
    const char *r0[NS] = {"a", "x", "y", NULL, NULL, "ff", "10", "1A", NULL};
    check_slots(&r, 0, w0, r0);
    const uint32_t w1[NS] = {0, hrow(1, "z"), E, E, E, 0, E, E, E};
    const char *r1[NS] = {NULL, "z", NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    check_slots(&r, 1, w1, r1);
    const uint32_t w2[NS] = {0, E, E, E, E, 0, 0, mrow(UINT64_MAX), mrow(INT64_MAX)};
    const char *r2[NS] = {NULL, NULL, NULL, NULL, NULL, NULL, "0", "FFFFFFFFFFFFFFFF",
                          "7fffffffffffffff"};
    check_slots(&r, 2, w2, r2);
    const uint32_t w3[NS] = {0, E, E, E, E, 0, 5, E, E};
    check_slots(&r, 3, w3, NULL);
    CHECK(r.dense_raw[3 * 2] == 2.0);
    ctr__request_release(&r);

    /* A bag in the context goes to every example that does not have it. */
    rc = decode(0, "{\"context\":{\"C2\":[\"c1\",\"c2\"],\"C4\":[\"a\"]},\"examples\":[{},"
                   "{\"C1\":\"q\"}]}", &r, &e);
    CHECKF(rc == 0, "%s", e.message);
    if (rc == 0) {
        const uint32_t want[NS] = {0, hrow(1, "c1"), hrow(1, "c2"), E, E, 0, 10, E, E};
        const char *raw[NS] = {NULL, "c1", "c2", NULL, NULL, NULL, "a", NULL, NULL};
        check_slots(&r, 0, want, raw);
        uint32_t w1b[NS];
        memcpy(w1b, want, sizeof w1b);
        w1b[0] = hrow(0, "q");
        check_slots(&r, 1, w1b, NULL);
    }
    ctr__request_release(&r);

    /* A bag of exactly bag_max values. */
    rc = decode(0, "{\"examples\":[{\"C2\":[\"a\",\"b\",\"c\",\"d\"],\"C4\":[\"1\",\"2\",\"3\"]}]}",
                &r, &e);
    CHECKF(rc == 0, "%s", e.message);
    if (rc == 0) {
        const uint32_t want[NS] = {0, hrow(1, "a"), hrow(1, "b"), hrow(1, "c"), hrow(1, "d"), 0,
                                   1, 2, 3};
        check_slots(&r, 0, want, NULL);
    }
    ctr__request_release(&r);
}

typedef struct {
    int form;             /* 0 v1, 1 v2 */
    const char *body;
    const char *name;     /* the error's name */
    long example;
    const char *feature;
} bad_t;

#define IN_C2(shape, data) \
    "{\"name\":\"C2\",\"datatype\":\"BYTES\",\"shape\":" shape ",\"data\":" data "}"
#define SPARSE(b, data) \
    "{\"name\":\"sparse\",\"datatype\":\"BYTES\",\"shape\":[" #b ",2],\"data\":" data "}"
#define SPARSE_INT(b, data) \
    "{\"name\":\"sparse\",\"datatype\":\"INT64\",\"shape\":[" #b ",2],\"data\":" data "}"
#define DENSE(b, data) \
    "{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[" #b ",2],\"data\":" data "}"

static const bad_t g_bad[] = {
    {0, "{\"examples\":[{\"C2\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}]}", "bag_too_long", 0, "C2"},
    {0, "{\"examples\":[{},{\"C4\":[1,2,3,4]}]}", "bag_too_long", 1, "C4"},
    {0, "{\"context\":{\"C4\":[1,2,3,\"x\"]},\"examples\":[{}]}", "bag_too_long", -1, "C4"},
    {0, "{\"examples\":[{\"C2\":[null]}]}", "wrong_type", 0, "C2"},
    {0, "{\"examples\":[{\"C2\":[\"a\",[\"b\"]]}]}", "wrong_type", 0, "C2"},
    {0, "{\"examples\":[{\"C2\":[{}]}]}", "wrong_type", 0, "C2"},
    {0, "{\"examples\":[{\"C2\":[true]}]}", "wrong_type", 0, "C2"},
    {0, "{\"examples\":[{\"C2\":[1.5]}]}", "wrong_type", 0, "C2"},
    {0, "{\"examples\":[{\"C2\":{}}]}", "wrong_type", 0, "C2"},
    {0, "{\"examples\":[{\"C1\":[\"a\"]}]}", "wrong_type", 0, "C1"},
    {0, "{\"examples\":[{\"C3\":[1]}]}", "wrong_type", 0, "C3"},
    {0, "{\"examples\":[{\"C3\":\"xyz\"}]}", "invalid_value", 0, "C3"},
    {0, "{\"examples\":[{\"C3\":\"\"}]}", "invalid_value", 0, "C3"},
    {0, "{\"examples\":[{\"C3\":\"0x1f\"}]}", "invalid_value", 0, "C3"},
    {0, "{\"examples\":[{\"C3\":\"12345678901234567\"}]}", "invalid_value", 0, "C3"},
    {0, "{\"examples\":[{\"C3\":-1}]}", "invalid_value", 0, "C3"},
    {0, "{\"examples\":[{},{},{\"C4\":[\"1\",\"g\"]}]}", "invalid_value", 2, "C4"},
    {0, "{\"context\":{\"C3\":\"-5\"},\"examples\":[{}]}", "invalid_value", -1, "C3"},
    {0, "{\"examples\":[{\"C3\":1.5}]}", "wrong_type", 0, "C3"},
    {0, "{\"examples\":[{\"C3\":18446744073709551616}]}", "number_out_of_range", 0, "C3"},
    /* v2 */
    {1, "{\"inputs\":[" SPARSE(1, "[[\"a\",\"b\",\"c\",\"d\"]]") "]}", "bad_shape", -1, ""},
    {1, "{\"inputs\":[" SPARSE(1, "[[\"a\",\"1\"]]") "," IN_C2("[1,5]", "[[\"a\",\"b\",\"c\",\"d\",\"e\"]]") "]}",
     "bad_shape", -1, "C2"},
    {1, "{\"inputs\":[" SPARSE(1, "[[\"a\",\"1\"]]") "," IN_C2("[1]", "[\"a\"]") "]}", "bad_shape",
     -1, ""},
    {1, "{\"inputs\":[" IN_C2("[1,1]", "[[\"a\"]]") "," IN_C2("[1,1]", "[[\"a\"]]") "]}",
     "duplicate_input", -1, ""},
    {1, "{\"inputs\":[{\"name\":\"C1\",\"datatype\":\"BYTES\",\"shape\":[1,1],\"data\":[\"a\"]}]}",
     "unknown_input", -1, ""},
    {1, "{\"inputs\":[{\"name\":\"C9\",\"datatype\":\"BYTES\",\"shape\":[1,1],\"data\":[\"a\"]}]}",
     "unknown_input", -1, ""},
    {1, "{\"inputs\":[" IN_C2("[1,1]", "[[\"a\"]]") "]}", "missing_input", -1, ""},
    {1, "{\"inputs\":[" SPARSE(2, "[[\"a\",\"1\"],[\"b\",\"2\"]]") "," IN_C2("[1,1]", "[[\"a\"]]") "]}",
     "bad_shape", -1, ""},
    {1, "{\"inputs\":[" SPARSE(1, "[[\"a\",\"1\"]]") "," IN_C2("[1,2]", "[[\"a\",1]]") "]}",
     "wrong_type", 0, "C2"},
    {1, "{\"inputs\":[" SPARSE(1, "[[\"a\",\"1\"]]") ",{\"name\":\"C2\",\"datatype\":\"FP32\","
        "\"shape\":[1,1],\"data\":[1]}]}", "bad_datatype", -1, ""},
    {1, "{\"inputs\":[" SPARSE(1, "[[\"a\",\"x\"]]") "]}", "invalid_value", 0, "C3"},
    {1, "{\"inputs\":[" SPARSE_INT(2, "[[1,2],[3,-1]]") "]}", "invalid_value", 1, "C3"},
    {1, "{\"inputs\":[" SPARSE(2, "[[\"a\",\"1\"],[\"b\",\"2\"]]") ",{\"name\":\"C4\",\"datatype\":"
        "\"INT64\",\"shape\":[2,2],\"data\":[[-1,-1],[4,-2]]}]}", "invalid_value", 1, "C4"},
    {1, "{\"inputs\":[" SPARSE(1, "[[\"a\",\"1\"]]") ",{\"name\":\"C4\",\"datatype\":\"BYTES\","
        "\"shape\":[1,2],\"data\":[[\"1\",\"0x2\"]]}]}", "invalid_value", 0, "C4"},
};

static void test_errors(void)
{
    for (size_t t = 0; t < CTR_ARRAY_LEN(g_bad); t++) {
        const bad_t *c = &g_bad[t];
        ctr_request_t r;
        ctr_decode_error_t e;
        int rc = decode(c->form, c->body, &r, &e);
        CHECKF(rc != 0 && e.name && !strcmp(e.name, c->name) && e.example == c->example &&
                   !strcmp(e.feature, c->feature),
               "%s: want %s ex %ld feat \"%s\", got rc %d %s ex %ld feat \"%s\" (%s)", c->body,
               c->name, c->example, c->feature, rc, rc ? e.name : "-", e.example, e.feature,
               e.message);
        if (rc) {
            CHECKF(ctr__http_status(rc, CTR__SUBJECT_REQUEST) == 400, "%s: status %d", c->body,
                   ctr__http_status(rc, CTR__SUBJECT_REQUEST));
            /* The message names where and what, for the client. */
            if (c->feature[0])
                CHECKF(strstr(e.message, c->feature) != NULL, "%s: message \"%s\"", c->name,
                       e.message);
            if (c->example >= 0 && c->form == 0) {
                char where[32];
                snprintf(where, sizeof where, "examples[%ld]", c->example);
                CHECKF(strstr(e.message, where) != NULL, "message \"%s\"", e.message);
            }
        }
        ctr__request_release(&r);
    }
}

/* Same counts, ids, encoded and raw values, bit for bit. */
static int same(const ctr_request_t *a, const ctr_request_t *b)
{
    size_t nd = a->n * a->n_dense, nc = a->n * a->n_cat;
    if (a->n != b->n || a->n_dense != b->n_dense || a->n_cat != b->n_cat)
        return 0;
    if (memcmp(a->dense, b->dense, nd * sizeof(float)) ||
        memcmp(a->rows, b->rows, nc * sizeof(uint32_t)) || memcmp(a->cat_len, b->cat_len, nc))
        return 0;
    for (size_t k = 0; k < nd; k++) {
        double x = a->dense_raw[k], y = b->dense_raw[k];
        if (isnan(x) ? !isnan(y) : memcmp(&x, &y, sizeof x))
            return 0;
    }
    for (size_t k = 0; k < nc; k++)
        if (a->cat_len[k] != CTR_CAT_MISSING_LEN &&
            memcmp(a->cat_bytes + a->cat_off[k], b->cat_bytes + b->cat_off[k], a->cat_len[k]))
            return 0;
    return 1;
}

/* A growable byte string. */
typedef struct {
    char *p;
    size_t n, cap;
} sb_t;

static void sb_put(sb_t *b, const void *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        CTR_ASSERT(b->p);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_puts(sb_t *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_le(sb_t *b, uint64_t v, int bytes)
{
    uint8_t le[8];
    for (int t = 0; t < bytes; t++)
        le[t] = (uint8_t)(v >> (8 * t));
    sb_put(b, le, (size_t)bytes);
}

/* One request three ways: v1 arrays, v2 JSON with the bags as their own
 * padded inputs (padding anywhere, C2 BYTES, C4 INT64), v2 binary tensor
 * data. Random values; every example's bags of random length. */
static void test_forms_agree(void)
{
    test_rng_t rng = {77};
    size_t bins = 0;
    for (int t = 0; t < 200; t++) {
        size_t n = 1 + test_rng_next(&rng) % 6, L2 = 4, L4 = 3;
        if (t % 4 == 1)
            L2 = 1 + test_rng_next(&rng) % 4, L4 = 1 + test_rng_next(&rng) % 3;
        sb_t v1 = {0}, dense = {0}, sparse = {0}, c2 = {0}, c4 = {0};
        sb_t bin_dense = {0}, bin_sparse = {0}, bin_c2 = {0}, bin_c4 = {0};
        sb_puts(&v1, "{\"examples\":[");
        for (size_t i = 0; i < n; i++) {
            char tmp[128];
            double d0 = (double)(test_rng_next(&rng) % 1000) / 8.0;
            snprintf(tmp, sizeof tmp, "%s{\"I1\":%.17g", i ? "," : "", d0);
            sb_puts(&v1, tmp);
            snprintf(tmp, sizeof tmp, "%s[%.17g,null]", i ? "," : "", d0);
            sb_puts(&dense, tmp);
            uint64_t u;
            memcpy(&u, &d0, 8);
            sb_le(&bin_dense, u, 8);
            double nan = NAN;
            memcpy(&u, &nan, 8);
            sb_le(&bin_dense, u, 8);
            /* C1 (hash) and C3 (mod) single values, C3 sometimes missing */
            uint32_t h = (uint32_t)test_rng_next(&rng);
            int c3_missing = test_rng_next(&rng) % 4 == 0;
            if (c3_missing)
                snprintf(tmp, sizeof tmp, ",\"C1\":\"%08x\",\"C3\":null", h);
            else
                snprintf(tmp, sizeof tmp, ",\"C1\":\"%08x\",\"C3\":\"%x\"", h, h >> 4);
            sb_puts(&v1, tmp);
            char s1[16], s3[16];
            snprintf(s1, sizeof s1, "%08x", h);
            snprintf(s3, sizeof s3, "%x", h >> 4);
            snprintf(tmp, sizeof tmp, "%s[\"%s\",%s%s%s]", i ? "," : "", s1,
                     c3_missing ? "null" : "\"", c3_missing ? "" : s3, c3_missing ? "" : "\"");
            sb_puts(&sparse, tmp);
            sb_le(&bin_sparse, 8, 4);
            sb_puts(&bin_sparse, s1);
            sb_le(&bin_sparse, c3_missing ? 0 : strlen(s3), 4);
            if (!c3_missing)
                sb_puts(&bin_sparse, s3);
            /* C2: m2 <= L2 strings; v2 pads with "" or null anywhere. */
            size_t m2 = test_rng_next(&rng) % (L2 + 1), m4 = test_rng_next(&rng) % (L4 + 1);
            sb_puts(&v1, ",\"C2\":[");
            sb_puts(&c2, i ? ",[" : "[");
            size_t put = 0;
            for (size_t k = 0; k < L2; k++) {
                int pad = put == m2 || (L2 - k > m2 - put && test_rng_next(&rng) % 3 == 0);
                if (k)
                    sb_puts(&c2, ",");
                if (pad) {
                    int nul = test_rng_next(&rng) % 2;
                    sb_puts(&c2, nul ? "null" : "\"\"");
                    sb_le(&bin_c2, 0, 4);
                    continue;
                }
                char v[16];
                snprintf(v, sizeof v, "v%u", (unsigned)(test_rng_next(&rng) % 50));
                snprintf(tmp, sizeof tmp, "%s\"%s\"", put ? "," : "", v);
                sb_puts(&v1, tmp);
                snprintf(tmp, sizeof tmp, "\"%s\"", v);
                sb_puts(&c2, tmp);
                sb_le(&bin_c2, strlen(v), 4);
                sb_puts(&bin_c2, v);
                put++;
            }
            sb_puts(&v1, "]");
            sb_puts(&c2, "]");
            /* C4: m4 <= L4 non-negative integers; v2 pads with -1 or null. */
            sb_puts(&v1, ",\"C4\":[");
            sb_puts(&c4, i ? ",[" : "[");
            put = 0;
            for (size_t k = 0; k < L4; k++) {
                int pad = put == m4 || (L4 - k > m4 - put && test_rng_next(&rng) % 3 == 0);
                if (k)
                    sb_puts(&c4, ",");
                if (pad) {
                    sb_puts(&c4, test_rng_next(&rng) % 2 ? "null" : "-1");
                    sb_le(&bin_c4, UINT64_MAX, 8);
                    continue;
                }
                uint64_t v = test_rng_next(&rng) >> (1 + test_rng_next(&rng) % 63);
                snprintf(tmp, sizeof tmp, "%s%" PRIu64, put ? "," : "", v);
                sb_puts(&v1, tmp);
                snprintf(tmp, sizeof tmp, "%" PRIu64, v);
                sb_puts(&c4, tmp);
                sb_le(&bin_c4, v, 8);
                put++;
            }
            sb_puts(&v1, "]}");
            sb_puts(&c4, "]");
        }
        sb_puts(&v1, "]}");
        char head[512];
        sb_t v2 = {0};
        snprintf(head, sizeof head,
                 "{\"inputs\":[{\"name\":\"C4\",\"datatype\":\"INT64\",\"shape\":[%zu,%zu],"
                 "\"data\":[",
                 n, L4);
        sb_puts(&v2, head);
        sb_puts(&v2, c4.p ? c4.p : "");
        snprintf(head, sizeof head, "]},{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[%zu,2],"
                                    "\"data\":[", n);
        sb_puts(&v2, head);
        sb_puts(&v2, dense.p);
        snprintf(head, sizeof head, "]},{\"name\":\"C2\",\"datatype\":\"BYTES\",\"shape\":[%zu,%zu],"
                                    "\"data\":[", n, L2);
        sb_puts(&v2, head);
        sb_puts(&v2, c2.p ? c2.p : "");
        snprintf(head, sizeof head, "]},{\"name\":\"sparse\",\"datatype\":\"BYTES\",\"shape\":[%zu,2],"
                                    "\"data\":[", n);
        sb_puts(&v2, head);
        sb_puts(&v2, sparse.p);
        sb_puts(&v2, "]}]}");

        sb_t bin = {0};
        snprintf(head, sizeof head,
                 "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP64\",\"shape\":[%zu,2],"
                 "\"parameters\":{\"binary_data_size\":%zu}},{\"name\":\"sparse\",\"datatype\":"
                 "\"BYTES\",\"shape\":[%zu,2],\"parameters\":{\"binary_data_size\":%zu}},"
                 "{\"name\":\"C2\",\"datatype\":\"BYTES\",\"shape\":[%zu,%zu],\"parameters\":"
                 "{\"binary_data_size\":%zu}},{\"name\":\"C4\",\"datatype\":\"INT64\",\"shape\":"
                 "[%zu,%zu],\"parameters\":{\"binary_data_size\":%zu}}]}",
                 n, bin_dense.n, n, bin_sparse.n, n, L2, bin_c2.n, n, L4, bin_c4.n);
        size_t hlen = strlen(head);
        sb_puts(&bin, head);
        sb_put(&bin, bin_dense.p, bin_dense.n);
        sb_put(&bin, bin_sparse.p, bin_sparse.n);
        sb_put(&bin, bin_c2.p ? bin_c2.p : "", bin_c2.n);
        sb_put(&bin, bin_c4.p ? bin_c4.p : "", bin_c4.n);

        ctr_request_t a, b, c;
        ctr_decode_error_t e;
        int ra = decode(0, v1.p, &a, &e);
        CHECKF(ra == 0, "v1: %s: %s", e.message, v1.p);
        int rb = decode(1, v2.p, &b, &e);
        CHECKF(rb == 0, "v2: %s: %s", e.message, v2.p);
        int rc = ctr__decode_v2_binary(g_m, bin.p, bin.n, hlen, &g_lim, &c, &e);
        CHECKF(rc == 0, "v2 binary: %s", e.message);
        if (ra == 0 && rb == 0)
            CHECKF(same(&a, &b), "v1 and v2 differ:\n%s\n%s", v1.p, v2.p);
        if (ra == 0 && rc == 0) {
            CHECKF(same(&a, &c), "v1 and v2 binary differ:\n%s", v1.p);
            bins++;
        }
        ctr__request_release(&a);
        ctr__request_release(&b);
        ctr__request_release(&c);
        free(v1.p), free(v2.p), free(bin.p), free(dense.p), free(sparse.p), free(c2.p);
        free(c4.p), free(bin_dense.p), free(bin_sparse.p), free(bin_c2.p), free(bin_c4.p);
    }
    CHECK(bins == 200);

    /* A bag input not sent: every example's bag is empty. An empty [B, 0]
     * bag input is the same. */
    ctr_request_t r, r0;
    ctr_decode_error_t e;
    int rc = decode(1, "{\"inputs\":[" SPARSE(2, "[[\"a\",\"1\"],[\"b\",null]]") ","
                       DENSE(2, "[1,2,3,4]") "]}", &r, &e);
    CHECKF(rc == 0, "%s", e.message);
    int rc0 = decode(1, "{\"inputs\":[" DENSE(2, "[1,2,3,4]") "," SPARSE(2, "[[\"a\",\"1\"],[\"b\",null]]") ","
                        IN_C2("[2,0]", "[[],[]]") ",{\"name\":\"C4\",\"datatype\":\"BYTES\","
                        "\"shape\":[2,3],\"data\":[[null,\"\",null],[\"\",\"\",\"\"]]}]}", &r0, &e);
    CHECKF(rc0 == 0, "%s", e.message);
    if (rc == 0) {
        const uint32_t w0[NS] = {hrow(0, "a"), E, E, E, E, 1, E, E, E};
        const uint32_t w1[NS] = {hrow(0, "b"), E, E, E, E, 0, E, E, E};
        check_slots(&r, 0, w0, NULL);
        check_slots(&r, 1, w1, NULL);
        if (rc0 == 0)
            CHECK(same(&r, &r0));
    }
    ctr__request_release(&r);
    ctr__request_release(&r0);
}

/* INT64 for a `mod` feature keeps the value's lowercase hex, so the audit
 * log's text maps back to the same row; a hash feature its decimal. */
static void test_int_raw(void)
{
    ctr_request_t r;
    ctr_decode_error_t e;
    int rc = decode(1, "{\"inputs\":[" DENSE(1, "[1,2]") "," SPARSE_INT(1, "[[-12,255]]") ",{\"name\":\"C4\",\"datatype\":"
                       "\"INT64\",\"shape\":[1,3],\"data\":[[9223372036854775807,-1,10]]}]}",
                    &r, &e);
    CHECKF(rc == 0, "%s", e.message);
    if (rc == 0) {
        const uint32_t want[NS] = {ctr_features_cat_row_int(&g_def->cat[0], -12), E, E, E, E,
                                   mrow(255), mrow(INT64_MAX), 10, E};
        const char *raw[NS] = {"-12", NULL, NULL, NULL, NULL, "ff", "7fffffffffffffff", "a", NULL};
        check_slots(&r, 0, want, raw);
        for (size_t k = 0; k < NS; k++) {
            if (r.cat_len[k] == CTR_CAT_MISSING_LEN)
                continue;
            size_t j = k == 0 ? 0 : k < 5 ? 1 : k == 5 ? 2 : 3;
            uint32_t row;
            CHECK(ctr_features_map(&g_def->cat[j], r.cat_bytes + r.cat_off[k], r.cat_len[k],
                                   &row) == 0 && row == r.rows[k]);
        }
    }
    ctr__request_release(&r);
}

int main(void)
{
    char path[512], err[256];
    const uint32_t hidden[1] = {4};
    snprintf(path, sizeof(path), "%s/bags.ctrm", test_tmpdir());
    if (test_make_model(path, 5, 2, 4, BUCKETS, 4, hidden, 1, CTR_ACT_RELU, 1.0f) ||
        ctr_model_open(path, &g_m, err, sizeof(err))) {
        fprintf(stderr, "cannot make the test model: %s\n", err);
        return 1;
    }
    patch(1, 4, CTR_POOL_SUM, CTR_MAP_HASH);
    patch(2, 0, CTR_POOL_SUM, CTR_MAP_MOD);
    patch(3, 3, CTR_POOL_MEAN, CTR_MAP_MOD);
    g_def = ctr_model_def(g_m);
    CTR_ASSERT(ctr_model_slots(g_def) == NS);
    test_v1_values();
    test_errors();
    test_forms_agree();
    test_int_raw();
    ctr_model_close(g_m);
    remove(path);
    rmdir(test_tmpdir());
    return test_main_end();
}
