/* features.c - raw feature values to MLP inputs (the rule is in features.h).
 *
 * Training, offline scoring and the server all call these, so the three
 * agree bit for bit. Transforms run in double with the project's own log
 * (detmath) and round to float once at the end. */
#include "ctr/features.h"

#include <float.h>
#include <math.h>
/* Inline XXH3 (the same algorithm and values as libxxhash): 26 hashes of a
 * few bytes per example cost a library call and its dispatch each. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "ctr/common.h"
#include "detmath_int.h"

/* A finite double that overflows float would become inf and poison the
 * score with NaN; clamp it to the largest float instead (documented in
 * docs/MODEL_FORMAT.md, "Feature encoding"). */
static float to_float_clamped(double v)
{
    if (v > (double)FLT_MAX)
        return FLT_MAX;
    if (v < -(double)FLT_MAX)
        return -FLT_MAX;
    return (float)v;
}

/* log1p of the small integers, the common case of count features (Criteo's
 * I1..I13): filled once at load with the same function, so a lookup returns
 * the bits the computation would. */
#define LOG1P_TABLE_SIZE 1024
static float log1p_table[LOG1P_TABLE_SIZE];

__attribute__((constructor)) static void log1p_table_fill(void)
{
    for (int i = 0; i < LOG1P_TABLE_SIZE; i++)
        log1p_table[i] = to_float_clamped(ctr__log1p((double)i));
}

static float log1p_feature(double raw)
{
    if (raw >= 0.0 && raw < (double)LOG1P_TABLE_SIZE) {
        int i = (int)raw;
        if ((double)i == raw)
            return log1p_table[i];
    }
    return to_float_clamped(ctr__log1p(raw > 0.0 ? raw : 0.0));
}

float ctr_features_dense(const ctr_dense_def_t *d, double raw)
{
    if (raw != raw)
        return ctr_features_dense_missing(d);
    switch (d->transform) {
    case CTR_TRANSFORM_LOG1P:
        return log1p_feature(raw);
    case CTR_TRANSFORM_STANDARDIZE:
        return to_float_clamped((raw - d->mean) / d->std);
    case CTR_TRANSFORM_IDENTITY:
    default:
        return to_float_clamped(raw);
    }
}

float ctr_features_dense_missing(const ctr_dense_def_t *d)
{
    (void)d;
    return 0.0f;
}

uint32_t ctr_features_cat_row(const ctr_cat_def_t *c, const void *bytes, size_t len)
{
    uint64_t h = XXH3_64bits_withSeed(bytes, len, c->seed);
    /* Multiply-shift range reduction (Lemire): floor(h * buckets / 2^64),
     * uniform like h % buckets but without a 64-bit division. */
    return 1u + (uint32_t)(((unsigned __int128)h * c->buckets) >> 64);
}

size_t ctr_features_int_key(int64_t v, char *buf)
{
    char tmp[24];
    size_t n = 0;
    /* Negate in unsigned arithmetic: INT64_MIN has no positive twin. */
    uint64_t u = v < 0 ? 0u - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t len = 0;
    if (v < 0)
        buf[len++] = '-';
    while (n)
        buf[len++] = tmp[--n];
    buf[len] = '\0';
    return len;
}

uint32_t ctr_features_cat_row_int(const ctr_cat_def_t *c, int64_t v)
{
    char buf[24];
    size_t len = ctr_features_int_key(v, buf);
    return ctr_features_cat_row(c, buf, len);
}

/* ---- mappings ---------------------------------------------------------- */

int ctr_features_hex_u64(const void *bytes, size_t len, uint64_t *v)
{
    const unsigned char *s = bytes;
    uint64_t x = 0;
    if (len == 0 || len > CTR_MOD_HEX_MAX)
        return CTR_EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned c = s[i], d;
        if (c - '0' < 10u)
            d = c - '0';
        else if ((c | 0x20u) - 'a' < 6u)
            d = (c | 0x20u) - 'a' + 10u;
        else
            return CTR_EINVAL;
        x = x << 4 | d;
    }
    *v = x;
    return 0;
}

uint32_t ctr_features_mod_row(const ctr_cat_def_t *c, uint64_t v)
{
    return (uint32_t)(v % ((uint64_t)c->buckets + 1u));
}

int ctr_features_map(const ctr_cat_def_t *c, const void *bytes, size_t len, uint32_t *row)
{
    if (c->mapping == CTR_MAP_MOD) {
        uint64_t v;
        if (ctr_features_hex_u64(bytes, len, &v))
            return CTR_EINVAL;
        *row = ctr_features_mod_row(c, v);
        return 0;
    }
    *row = ctr_features_cat_row(c, bytes, len);
    return 0;
}

int ctr_features_map_int(const ctr_cat_def_t *c, int64_t v, uint32_t *row)
{
    if (c->mapping == CTR_MAP_MOD) {
        if (v < 0)
            return CTR_EINVAL;
        *row = ctr_features_mod_row(c, (uint64_t)v);
        return 0;
    }
    *row = ctr_features_cat_row_int(c, v);
    return 0;
}

size_t ctr_features_int_raw(const ctr_cat_def_t *c, int64_t v, char *buf)
{
    if (c->mapping != CTR_MAP_MOD)
        return ctr_features_int_key(v, buf);
    static const char digits[16] = "0123456789abcdef";
    uint64_t u = (uint64_t)v;
    char tmp[16];
    size_t n = 0, len = 0;
    do {
        tmp[n++] = digits[u & 15u];
        u >>= 4;
    } while (u);
    while (n)
        buf[len++] = tmp[--n];
    buf[len] = '\0';
    return len;
}

/* ---- slots and bags ---------------------------------------------------- */

void ctr_features_slots_finish(const ctr_cat_def_t *c, uint32_t *slots, size_t m)
{
    if (!c->bag_max) {
        if (m == 0)
            slots[0] = CTR_MISSING_ROW;
        return;
    }
    for (size_t s = m; s < c->bag_max; s++)
        slots[s] = CTR_EMPTY_SLOT;
}

int ctr_features_encode_values(const ctr_cat_def_t *c, const char *const *vals,
                               const size_t *lens, size_t m, uint32_t *slots, size_t *bad)
{
    if (m > ctr_features_width(c))
        return CTR_ERANGE;
    for (size_t k = 0; k < m; k++)
        if (ctr_features_map(c, vals[k], lens[k], &slots[k])) {
            if (bad)
                *bad = k;
            return CTR_EINVAL;
        }
    ctr_features_slots_finish(c, slots, m);
    return 0;
}
