/* test_features.c - the feature encoding rule and the deterministic math.
 *
 * Golden values pin the hashing rule: if any of them changes, every model
 * trained before would silently score different rows. */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <xxhash.h>

#include "ctr/common.h"
#include "ctr/features.h"
#include "ctr/forward.h"
#include "detmath_int.h"
#include "testutil.h"

static void test_hash_rule(void)
{
    /* xxHash's own published vector: XXH3_64bits("") = 0x2D06800538D394C2. */
    CHECK_EQ_UINT(XXH3_64bits_withSeed("", 0, 0), 0x2D06800538D394C2ull);

    ctr_cat_def_t c = {.name = "C1", .buckets = 65536, .dim = 16, .seed = 42};
    struct { const char *value; uint32_t row; } golden[] = {
        {"68fd1e64", 54261}, {"a9f2c1b0", 64698}, {"", 45098},
        {"12", 25605}, {"-7", 30148},
    };
    for (size_t i = 0; i < sizeof(golden) / sizeof(golden[0]); i++) {
        uint32_t row = ctr_features_cat_row(&c, golden[i].value, strlen(golden[i].value));
        if (!CHECK_EQ_UINT(row, golden[i].row))
            fprintf(stderr, "  golden row of \"%s\"\n", golden[i].value);
        uint64_t h = XXH3_64bits_withSeed(golden[i].value, strlen(golden[i].value), 42);
        CHECK_EQ_UINT(row, 1 + (uint32_t)(h >> 48)); /* h * 2^16 / 2^64 */
    }
    /* An integer hashes exactly like its decimal string. */
    int64_t ints[] = {0, 1, -1, 12, -7, 1234567890123, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%" PRId64, ints[i]);
        char key[25] = "";
        size_t len = ctr_features_int_key(ints[i], key);
        CHECK_EQ_SIZE(len, strlen(buf));
        key[len < 24 ? len : 24] = 0;
        CHECK_EQ_STR(key, buf);
        CHECK_EQ_UINT(ctr_features_cat_row_int(&c, ints[i]),
                      ctr_features_cat_row(&c, buf, strlen(buf)));
    }
    /* Every row is in 1..buckets; row 0 stays the missing value's. */
    ctr_cat_def_t small = {.name = "C2", .buckets = 3, .dim = 4, .seed = 7};
    int seen[4] = {0};
    for (int i = 0; i < 300; i++) {
        uint32_t row = ctr_features_cat_row_int(&small, i);
        CHECK(row >= 1 && row <= 3);
        if (row <= 3)
            seen[row]++;
    }
    CHECK(seen[0] == 0 && seen[1] > 50 && seen[2] > 50 && seen[3] > 50);
    /* The seed matters: two tables place the same value independently. */
    ctr_cat_def_t other = c;
    other.seed = 43;
    int same = 0;
    for (int i = 0; i < 1000; i++)
        same += ctr_features_cat_row_int(&c, i) == ctr_features_cat_row_int(&other, i);
    CHECK(same < 10);
}

static void test_dense_transforms(void)
{
    ctr_dense_def_t id = {"I1", CTR_TRANSFORM_IDENTITY, 0, 1};
    ctr_dense_def_t lg = {"I2", CTR_TRANSFORM_LOG1P, 0, 1};
    ctr_dense_def_t st = {"I3", CTR_TRANSFORM_STANDARDIZE, 3.0, 2.0};
    CHECK_EQ_FLT(ctr_features_dense(&id, 2.5), 2.5f);
    CHECK_EQ_FLT(ctr_features_dense(&id, NAN), 0.0f);
    CHECK_EQ_FLT(ctr_features_dense(&lg, NAN), 0.0f);
    CHECK_EQ_FLT(ctr_features_dense_missing(&st), 0.0f);
    CHECK_EQ_FLT(ctr_features_dense(&lg, 0.0), 0.0f);
    CHECK_EQ_FLT(ctr_features_dense(&lg, -5.0), 0.0f); /* log(1 + max(x, 0)) */
    CHECK_EQ_BITS(ctr_features_dense(&lg, 1.0), (float)log(2.0));
    CHECK_EQ_BITS(ctr_features_dense(&st, 7.0), 2.0f);
    CHECK_EQ_BITS(ctr_features_dense(&id, 1e300), FLT_MAX);
    CHECK_EQ_BITS(ctr_features_dense(&id, -1e300), -FLT_MAX);
    /* The float result equals libm's correctly rounded float on Criteo-like
     * counts; a 1-ulp difference would be allowed by the bound, none is
     * expected on these. */
    int differ = 0;
    for (int v = 0; v < 200000; v += 7) {
        float ours = ctr_features_dense(&lg, v);
        float ref = (float)log1p((double)v);
        if (ours != ref && !differ++)
            fprintf(stderr, "log1p(%d): ours %.9g, libm %.9g\n", v, (double)ours, (double)ref);
        if (!CHECK_NEAR(ours, ref, nextafterf(ref, INFINITY) - ref))
            fprintf(stderr, "  log1p(%d)\n", v);
    }
    CHECKF(differ == 0, "%d of the log1p floats differ from libm", differ);

    /* Small integers come from a table filled at load: same bits as the
     * computation, on every entry and on the values beside its edges. */
    int table_differ = 0;
    for (int v = 0; v <= 1100; v++) {
        double xs[] = {v, v + 0.5, nextafter(v, -1.0), nextafter(v, 2e9)};
        for (int k = 0; k < 4; k++) {
            if (xs[k] < 0.0)
                continue;
            float want = (float)ctr__log1p(xs[k]);
            float got = ctr_features_dense(&lg, xs[k]);
            if (memcmp(&want, &got, sizeof want) && !table_differ++ && !CHECK_EQ_BITS(got, want))
                fprintf(stderr, "  log1p(%.17g): the table vs ctr__log1p\n", xs[k]);
        }
    }
    CHECKF(table_differ == 0, "%d log1p table entries differ from ctr__log1p", table_differ);
    CHECK_EQ_FLT(ctr_features_dense(&lg, -0.0), 0.0f);
}

static void test_detmath_accuracy(void)
{
    test_rng_t rng = {7};
    double worst_exp = 0, worst_log = 0;
    for (int i = 0; i < 200000; i++) {
        double x = (double)test_rng_uniform(&rng, -700.0f, 700.0f) +
                   (double)test_rng_uniform(&rng, -1.0f, 1.0f) * 1e-3;
        double ours = ctr__exp(x), ref = exp(x);
        double rel = fabs(ours - ref) / ref;
        if (rel > worst_exp)
            worst_exp = rel;
        double y = ldexp((double)test_rng_uniform(&rng, 0.0f, 1.0f), (int)(test_rng_next(&rng) % 120) - 60);
        double lo = ctr__log1p(y), lref = log1p(y);
        double err = fabs(lo - lref) / (1.0 + fabs(lref));
        if (err > worst_log)
            worst_log = err;
    }
    CHECKF(worst_exp < 0x1p-51, "exp worst relative error %.3g", worst_exp);
    CHECKF(worst_log < 0x1p-51, "log1p worst error %.3g", worst_log);
    printf("exp worst relative error %.3g, log1p worst %.3g (bound 4.4e-16)\n", worst_exp, worst_log);
    CHECK_EQ_DBL(ctr__exp(0.0), 1.0);
    CHECK_EQ_DBL(ctr__exp(800.0), INFINITY);
    CHECK_EQ_DBL(ctr__exp(-800.0), 0.0);
    CHECK(isnan(ctr__exp(NAN)));
    CHECK_EQ_DBL(ctr__log1p(0.0), 0.0);
    CHECK(isnan(ctr__log1p(-1.0)));
    CHECK_EQ_DBL(ctr__log1p(1e-300), 1e-300);

    /* Sigmoid: within 1 ulp of the libm reference, exact at 0, saturating. */
    int off = 0;
    for (int i = 0; i < 200000; i++) {
        float z = test_rng_uniform(&rng, -40.0f, 40.0f);
        float ours = ctr_sigmoid(z);
        float ref = (float)(1.0 / (1.0 + exp(-(double)z)));
        if (ours != ref) {
            off++;
            CHECKF(ours == nextafterf(ref, 0) || ours == nextafterf(ref, 1),
                   "sigmoid(%a) = %.9g, libm-based %.9g: more than 1 ulp apart", (double)z,
                   (double)ours, (double)ref);
        }
    }
    printf("sigmoid differs from the libm-based float in %d of 200000 points (1 ulp allowed)\n", off);
    CHECK_EQ_BITS(ctr_sigmoid(0.0f), 0.5f);
    CHECK_EQ_BITS(ctr_sigmoid(100.0f), 1.0f);
    CHECK_EQ_BITS(ctr_sigmoid(-200.0f), 0.0f);
    CHECK(ctr_sigmoid(-80.0f) > 0.0f);
}

/* `mod`: hex strings and integers modulo buckets + 1 (TorchRec's Criteo
 * ids). Rows worked out by hand (Python's int % (buckets + 1)). */
static void test_mod_rule(void)
{
    ctr_cat_def_t c = {.name = "C1", .buckets = 65536, .dim = 4, .mapping = CTR_MAP_MOD};
    struct { const char *value; uint32_t row; } golden[] = {
        {"68fd1e64", 46440}, {"68FD1E64", 46440}, {"a9f2c1b0", 6078}, {"A9f2C1b0", 6078},
        {"0", 0}, {"c", 12}, {"0000000c", 12}, {"10001", 0}, {"10002", 1},
        {"ffffffffffffffff", 0}, {"fffffffffffffffe", 65536}, {"0000000000000001", 1},
    };
    for (size_t i = 0; i < CTR_ARRAY_LEN(golden); i++) {
        uint32_t row = 77;
        int rc = ctr_features_map(&c, golden[i].value, strlen(golden[i].value), &row);
        if (!CHECK_EQ_INT(rc, 0) || !CHECK_EQ_UINT(row, golden[i].row))
            fprintf(stderr, "  mod row of \"%s\"\n", golden[i].value);
    }
    /* Not 1..16 hex digits: refused, *row untouched. */
    const char *bad[] = {"", "g", "0x1f", "-1", "+1", " 1", "1 ", "12345678901234567", "1f.0",
                         "\xc3\xa9", "0X1", "ff\0"};
    size_t bad_len[CTR_ARRAY_LEN(bad)];
    for (size_t i = 0; i < CTR_ARRAY_LEN(bad); i++)
        bad_len[i] = strlen(bad[i]);
    bad_len[CTR_ARRAY_LEN(bad) - 1] = 3; /* an embedded NUL */
    for (size_t i = 0; i < CTR_ARRAY_LEN(bad); i++) {
        uint32_t row = 77;
        uint64_t v = 5;
        if (!CHECK_EQ_INT(ctr_features_map(&c, bad[i], bad_len[i], &row), CTR_EINVAL))
            fprintf(stderr, "  \"%s\" was accepted as hex\n", bad[i]);
        CHECK_EQ_UINT(row, 77);
        CHECK_EQ_INT(ctr_features_hex_u64(bad[i], bad_len[i], &v), CTR_EINVAL);
        CHECK_EQ_UINT(v, 5);
    }
    uint64_t v = 0;
    CHECK(ctr_features_hex_u64("FfFfFfFfFfFfFfFf", 16, &v) == 0 && v == UINT64_MAX);
    CHECK(ctr_features_hex_u64("0123456789abcdef", 16, &v) == 0 && v == 0x0123456789abcdefull);
    CHECK(ctr_features_hex_u64("ABCDEF", 6, &v) == 0 && v == 0xabcdefu);

    /* Integers: v mod (buckets + 1); negative refused. */
    struct { int64_t v; uint32_t row; } ints[] = {
        {0, 0}, {1, 1}, {65536, 65536}, {65537, 0}, {1761418852, 46440}, {INT64_MAX, 32768},
    };
    for (size_t i = 0; i < CTR_ARRAY_LEN(ints); i++) {
        uint32_t row = 77;
        CHECK_EQ_INT(ctr_features_map_int(&c, ints[i].v, &row), 0);
        if (!CHECK_EQ_UINT(row, ints[i].row))
            fprintf(stderr, "  mod row of %" PRId64 "\n", ints[i].v);
        /* Its raw text (lowercase hex) maps to the same row: the audit
         * log's replay. */
        char buf[24];
        size_t len = ctr_features_int_raw(&c, ints[i].v, buf);
        uint32_t again = 99;
        CHECK_EQ_SIZE(len, strlen(buf));
        CHECK(len >= 1 && len <= CTR_MOD_HEX_MAX);
        CHECK(ctr_features_map(&c, buf, len, &again) == 0 && again == row);
        char want[24];
        snprintf(want, sizeof want, "%" PRIx64, (uint64_t)ints[i].v);
        CHECK_EQ_STR(buf, want);
    }
    uint32_t row = 77;
    CHECK_EQ_INT(ctr_features_map_int(&c, -1, &row), CTR_EINVAL);
    CHECK_EQ_INT(ctr_features_map_int(&c, INT64_MIN, &row), CTR_EINVAL);
    CHECK_EQ_UINT(row, 77);
    /* The largest table: buckets + 1 = 2^32 does not wrap. */
    ctr_cat_def_t big = c;
    big.buckets = UINT32_MAX;
    CHECK(ctr_features_map(&big, "ffffffffffffffff", 16, &row) == 0 && row == UINT32_MAX);
    CHECK(ctr_features_map(&big, "100000000", 9, &row) == 0 && row == 0);
    CHECK(ctr_features_map_int(&big, 4294967297, &row) == 0 && row == 1);
    /* hash: the mapping helpers are the hash rule; ints keep their decimal text. */
    ctr_cat_def_t h = {.name = "C2", .buckets = 1000, .dim = 4, .seed = 9};
    char buf[24];
    CHECK(ctr_features_map(&h, "zz", 2, &row) == 0 && row == ctr_features_cat_row(&h, "zz", 2));
    CHECK(ctr_features_map(&h, "", 0, &row) == 0 && row == ctr_features_cat_row(&h, "", 0));
    CHECK(ctr_features_map_int(&h, -12, &row) == 0 && row == ctr_features_cat_row(&h, "-12", 3));
    CHECK(ctr_features_int_raw(&h, -12, buf) == 3 && !strcmp(buf, "-12"));
}

/* Slots: a single value fills its slot (row 0 when missing); a bag its
 * first m slots, CTR_EMPTY_SLOT after. */
static void test_bag_slots(void)
{
    ctr_cat_def_t one = {.name = "C1", .buckets = 100, .dim = 4, .seed = 3};
    ctr_cat_def_t bag = {.name = "C2", .buckets = 100, .dim = 4, .seed = 3, .bag_max = 4};
    ctr_cat_def_t modbag = {.name = "C3", .buckets = 100, .dim = 4, .mapping = CTR_MAP_MOD,
                            .bag_max = 3, .pool = CTR_POOL_MEAN};
    CHECK_EQ_SIZE(ctr_features_width(&one), 1);
    CHECK_EQ_SIZE(ctr_features_width(&bag), 4);
    const char *vals[] = {"a", "b", "c", "d", "e"};
    const size_t lens[] = {1, 1, 1, 1, 1};
    uint32_t s[8];
    size_t bad = 99;

    memset(s, 0xab, sizeof s);
    CHECK_EQ_INT(ctr_features_encode_values(&one, vals, lens, 0, s, &bad), 0);
    CHECK_EQ_UINT(s[0], CTR_MISSING_ROW);
    CHECK_EQ_UINT(s[1], 0xabababab);
    CHECK_EQ_INT(ctr_features_encode_values(&one, vals, lens, 1, s, &bad), 0);
    CHECK_EQ_UINT(s[0], ctr_features_cat_row(&one, "a", 1));
    CHECK_EQ_INT(ctr_features_encode_values(&one, vals, lens, 2, s, &bad), CTR_ERANGE);

    memset(s, 0xab, sizeof s);
    CHECK_EQ_INT(ctr_features_encode_values(&bag, vals, lens, 0, s, &bad), 0);
    for (int k = 0; k < 4; k++)
        CHECK_EQ_UINT(s[k], CTR_EMPTY_SLOT);
    CHECK_EQ_UINT(s[4], 0xabababab);
    CHECK_EQ_INT(ctr_features_encode_values(&bag, vals + 1, lens, 2, s, &bad), 0);
    CHECK_EQ_UINT(s[0], ctr_features_cat_row(&bag, "b", 1));
    CHECK_EQ_UINT(s[1], ctr_features_cat_row(&bag, "c", 1));
    CHECK_EQ_UINT(s[2], CTR_EMPTY_SLOT);
    CHECK_EQ_UINT(s[3], CTR_EMPTY_SLOT);
    CHECK_EQ_UINT(s[4], 0xabababab);
    CHECK_EQ_INT(ctr_features_encode_values(&bag, vals, lens, 4, s, &bad), 0);
    for (int k = 0; k < 4; k++)
        CHECK_EQ_UINT(s[k], ctr_features_cat_row(&bag, vals[k], 1));
    CHECK_EQ_INT(ctr_features_encode_values(&bag, vals, lens, 5, s, &bad), CTR_ERANGE);

    /* mod bag: "a" and "c" are hex, "x" is not: refused with its index. */
    const char *hex[] = {"a", "C", "x"};
    const size_t hl[] = {1, 1, 1};
    CHECK_EQ_INT(ctr_features_encode_values(&modbag, hex, hl, 2, s, &bad), 0);
    CHECK(s[0] == 10 && s[1] == 12 && s[2] == CTR_EMPTY_SLOT);
    CHECK_EQ_INT(ctr_features_encode_values(&modbag, hex, hl, 3, s, &bad), CTR_EINVAL);
    CHECK_EQ_SIZE(bad, 2);

    /* finish on its own: the rule the decoders and the audit replay share. */
    uint32_t t[4] = {5, 6, 7, 8};
    ctr_features_slots_finish(&bag, t, 1);
    CHECK(t[0] == 5 && t[1] == CTR_EMPTY_SLOT && t[2] == CTR_EMPTY_SLOT && t[3] == CTR_EMPTY_SLOT);
    t[0] = 5;
    ctr_features_slots_finish(&one, t, 1);
    CHECK_EQ_UINT(t[0], 5);
    ctr_features_slots_finish(&one, t, 0);
    CHECK_EQ_UINT(t[0], CTR_MISSING_ROW);
}

int main(void)
{
    test_hash_rule();
    test_mod_rule();
    test_bag_slots();
    test_dense_transforms();
    test_detmath_accuracy();
    return test_main_end();
}
