/* test_model_quant.c - quantized tables in the .ctrm format (issue 17):
 *  - the reference f16 encoder against the CPU's own conversion (F16C's
 *    vcvtps2ph, round to nearest even) and the exact round trip;
 *  - writing a model whose tables are f16 / int8_rowwise (encoded from
 *    fp32 in memory, from the fill callback, or copied as stored rows):
 *    file layout, the loaded def (dtype, qrows, table NULL, sharers), the
 *    stored rows equal to the encoder's, verify passing, the copy of a
 *    loaded quantized model byte-identical to the original;
 *  - fp32 models unchanged (version 1 where it was);
 *  - bad files refused with messages naming the tensor and row: a NaN or
 *    negative scale, an infinite f16, a wrong nbytes, an unknown dtype, a
 *    quantized dtype in a version-1 file; bad defs refused by the writer. */
#include <immintrin.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/model.h"
#include "ctr/sha256.h"
#include "model_v2_defs.h"
#include "quant.h"
#include "quant_encode.h"
#include "testutil.h"

static bool file_exists(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f)
        fclose(f);
    return f != NULL;
}

static int cpu_has_f16c(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
}

__attribute__((target("f16c"))) static uint16_t f16c_half(float f)
{
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}

static float bits_float(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static void test_half_encoder(void)
{
    /* Every half decodes and encodes back to itself (NaNs: to a NaN). */
    for (uint32_t h = 0; h < 0x10000u; h++) {
        float f = ctr__half_to_float((uint16_t)h);
        uint16_t back = ctr__float_to_half(f);
        if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu))
            CHECK((back & 0x7c00u) == 0x7c00u && (back & 0x3ffu));
        else if (back != h)
            CHECKF(0, "half 0x%04x -> %g -> 0x%04x", h, (double)f, back);
    }
    if (!cpu_has_f16c()) {
        printf("note: no F16C: the encoder is checked by the round trip only\n");
        return;
    }
    /* Against vcvtps2ph: every 61st float bit pattern (all exponents,
     * scattered mantissas), then the ties and edges around each half. */
    size_t bad = 0, n = 0;
    for (uint64_t b = 0; b <= 0xffffffffu; b += 61, n++) {
        float f = bits_float((uint32_t)b);
        uint16_t want = f16c_half(f), got = ctr__float_to_half(f);
        if (want != got && bad++ < 5)
            CHECKF(0, "float 0x%08" PRIx64 " (%g): encoder 0x%04x, F16C 0x%04x", b, (double)f, got, want);
    }
    for (uint32_t h = 0; h < 0x7c00u; h++) {
        float lo = ctr__half_to_float((uint16_t)h), hi = ctr__half_to_float((uint16_t)(h + 1));
        float mid = lo + (hi - lo) / 2; /* exact: one more bit than a half */
        const float probes[] = {mid, nextafterf(mid, 0), nextafterf(mid, INFINITY), -mid, lo, -lo};
        for (size_t k = 0; k < CTR_ARRAY_LEN(probes); k++, n++) {
            uint16_t want = f16c_half(probes[k]), got = ctr__float_to_half(probes[k]);
            if (want != got && bad++ < 10)
                CHECKF(0, "float %a: encoder 0x%04x, F16C 0x%04x", (double)probes[k], got, want);
        }
    }
    CHECK_EQ_SIZE(bad, 0);
    printf("f16 encoder: %zu floats, all equal to F16C\n", n);
}

/* The expected stored bytes of one fp32 table. */
static uint8_t *encode_table(ctr_table_dtype_t dt, const float *x, size_t rows, size_t dim)
{
    char err[256];
    uint8_t *out = malloc(rows * ctr_table_row_bytes(dt, dim));
    CTR_ASSERT(out);
    CHECK_EQ_INT(ctr__quant_encode_rows(dt, x, rows, dim, 0, out, err, sizeof err), 0);
    return out;
}

typedef struct {
    const v2_model_t *src;
} fill_ctx_t;

static int fill_from(void *ctx, size_t j, uint64_t first, uint64_t n, float *out)
{
    const ctr_cat_def_t *c = &((fill_ctx_t *)ctx)->src->def.cat[j];
    memcpy(out, c->table + first * c->dim, n * c->dim * sizeof(float));
    return 0;
}

static void test_write_read(void)
{
    char err[512];
    v2_model_t o;
    v2_opts_t opt = {.arch = CTR_ARCH_DOT, .n_dense = 2, .n_cat = 4, .d = 16, .buckets = 50, .bags = true,
                     .share = true};
    v2_build(&o, &opt, 7);
    /* C1 f16 (shared by C4), C2 int8, C3 f32. */
    o.cat[0].dtype = CTR_TABLE_F16;
    o.cat[3].dtype = CTR_TABLE_F16;
    o.cat[1].dtype = CTR_TABLE_INT8_ROWWISE;
    CHECK_EQ_UINT(ctr_model_def_version(&o.def), 2);
    const char *a = test_path("q_mem.ctrm"), *b = test_path("q_fill.ctrm"), *c = test_path("q_copy.ctrm");
    CHECK_EQ_INT(ctr_model_write(a, &o.def, NULL, NULL, err, sizeof err), 0);

    /* Streamed through the fill callback: the same bytes. */
    v2_model_t s = o;
    s.def.cat = s.cat;
    for (size_t j = 0; j < 4; j++)
        s.cat[j].table = NULL;
    fill_ctx_t fc = {&o};
    CHECK_EQ_INT(ctr_model_write(b, &s.def, fill_from, &fc, err, sizeof err), 0);
    size_t la, lb, lc;
    unsigned char *fa = test_slurp(a, &la), *fb = test_slurp(b, &lb);
    CHECK(fa && fb && la == lb && memcmp(fa, fb, la) == 0);

    ctr_model_t *m = NULL;
    CHECK_EQ_INT(ctr_model_open(a, &m, err, sizeof err), 0);
    if (!m) {
        printf("open: %s\n", err);
        return;
    }
    CHECK_EQ_INT(ctr_model_verify(m, err, sizeof err), 0);
    /* A few KB of tables: far below half of memory, so read-around. */
    CHECK_EQ_STR(ctr_model_table_advice(m), "normal");
    ctr_model_t *r = NULL;
    setenv("CTR_TABLE_ADVICE", "random", 1);
    CHECK_EQ_INT(ctr_model_open(a, &r, err, sizeof err), 0);
    unsetenv("CTR_TABLE_ADVICE");
    CHECK(r && !strcmp(ctr_model_table_advice(r), "random"));
    ctr_model_close(r);
    const ctr_model_def_t *d = ctr_model_def(m);
    CHECK_EQ_INT(d->cat[0].dtype, CTR_TABLE_F16);
    CHECK_EQ_INT(d->cat[1].dtype, CTR_TABLE_INT8_ROWWISE);
    CHECK_EQ_INT(d->cat[2].dtype, CTR_TABLE_F32);
    CHECK_EQ_INT(d->cat[3].dtype, CTR_TABLE_F16);
    CHECK(d->cat[0].table == NULL && d->cat[0].qrows && d->cat[3].qrows == d->cat[0].qrows);
    CHECK(d->cat[1].table == NULL && d->cat[1].qrows);
    CHECK(d->cat[2].table && !d->cat[2].qrows);
    for (size_t j = 0; j < 3; j++) {
        const ctr_cat_def_t *q = &d->cat[j];
        size_t rows = (size_t)q->buckets + 1;
        uint8_t *want = encode_table(q->dtype, o.cat[j].table, rows, q->dim);
        const void *got = q->dtype == CTR_TABLE_F32 ? (const void *)q->table : q->qrows;
        CHECKF(memcmp(want, got, rows * ctr_table_row_bytes(q->dtype, q->dim)) == 0, "table %zu bytes", j);
        free(want);
    }
    /* The header's tensor entries: dtype and nbytes per table. */
    size_t hl;
    const char *h = ctr_model_header_json(m, &hl);
    char probe[128];
    snprintf(probe, sizeof probe, "\"dtype\":\"int8_rowwise\",\"shape\":[%u,16],\"offset\"", o.cat[1].buckets + 1);
    CHECKF(memmem(h, hl, probe, strlen(probe)) != NULL, "header has %s", probe);
    snprintf(probe, sizeof probe, "\"nbytes\":%u,", (o.cat[1].buckets + 1) * 24);
    CHECKF(memmem(h, hl, probe, strlen(probe)) != NULL, "header has %s", probe);
    snprintf(probe, sizeof probe, "\"nbytes\":%u,", (o.cat[0].buckets + 1) * 32);
    CHECKF(memmem(h, hl, probe, strlen(probe)) != NULL, "header has %s", probe);

    /* A loaded quantized model written again (qrows copied): identical. */
    ctr_model_def_t copy = *d;
    CHECK_EQ_INT(ctr_model_write(c, &copy, NULL, NULL, err, sizeof err), 0);
    unsigned char *fcpy = test_slurp(c, &lc);
    CHECK(fcpy && lc == la && memcmp(fa, fcpy, la) == 0);
    ctr_model_close(m);
    free(fa);
    free(fb);
    free(fcpy);

    /* fp32 again: version 1 for a plain MLP, and nothing quantized. */
    v2_model_t p;
    v2_opts_t popt = {.arch = CTR_ARCH_MLP, .n_dense = 2, .n_cat = 2, .d = 8, .buckets = 9};
    v2_build(&p, &popt, 3);
    CHECK_EQ_UINT(ctr_model_def_version(&p.def), 1);
    p.cat[1].dtype = CTR_TABLE_INT8_ROWWISE;
    CHECK_EQ_UINT(ctr_model_def_version(&p.def), 2);
    v2_free(&p);
    v2_free(&o);
}

/* Replaces the first `from` in buf (len bytes) by `to` of the same length. */
static int patch(unsigned char *buf, size_t len, const char *from, const char *to)
{
    CTR_ASSERT(strlen(from) == strlen(to));
    unsigned char *at = memmem(buf, len, from, strlen(from));
    if (!at)
        return 0;
    memcpy(at, to, strlen(to));
    return 1;
}

/* Sets the sha256 of the tensor whose data is bytes [off, off + n) of the
 * file: the old hex is found in the header and overwritten. */
static void rehash(unsigned char *buf, size_t len, const unsigned char *old_data_copy, size_t off, size_t n)
{
    unsigned char md[CTR_SHA256_LEN];
    char old_hex[65], new_hex[65];
    CHECK_EQ_INT(ctr_sha256(old_data_copy, n, md), 0);
    ctr_hex_encode(md, CTR_SHA256_LEN, old_hex);
    CHECK_EQ_INT(ctr_sha256(buf + off, n, md), 0);
    ctr_hex_encode(md, CTR_SHA256_LEN, new_hex);
    CHECK(patch(buf, len, old_hex, new_hex));
}

static void expect_refused(const char *name, const unsigned char *buf, size_t len, int code, const char *want1,
                           const char *want2)
{
    char err[512] = "";
    const char *path = test_path(name);
    test_spit(path, buf, len);
    ctr_model_t *m = NULL;
    int rc = ctr_model_open(path, &m, err, sizeof err);
    if (rc == 0) {
        rc = ctr_model_verify(m, err, sizeof err);
        ctr_model_close(m);
    }
    CHECKF(rc == code, "%s: rc %d, want %d (%s)", name, rc, code, err);
    CHECKF(strstr(err, want1) != NULL, "%s: \"%s\" lacks \"%s\"", name, err, want1);
    CHECKF(!want2 || strstr(err, want2) != NULL, "%s: \"%s\" lacks \"%s\"", name, err, want2);
}

/* Offset of a table's stored rows in the file (found by content). */
static size_t offset_of(const unsigned char *file, size_t len, const void *rows, size_t n)
{
    const unsigned char *at = memmem(file, len, rows, n);
    CTR_ASSERT(at);
    return (size_t)(at - file);
}

static void test_bad_files(void)
{
    char err[512];
    v2_model_t o;
    v2_opts_t opt = {.arch = CTR_ARCH_MLP, .n_dense = 1, .n_cat = 2, .d = 8, .buckets = 20, .mod = true};
    v2_build(&o, &opt, 11);
    o.cat[0].dtype = CTR_TABLE_INT8_ROWWISE;
    o.cat[1].dtype = CTR_TABLE_F16;
    const char *good = test_path("q_good.ctrm");
    CHECK_EQ_INT(ctr_model_write(good, &o.def, NULL, NULL, err, sizeof err), 0);
    size_t len;
    unsigned char *file = test_slurp(good, &len), *bad = malloc(len);
    CTR_ASSERT(file && bad);
    const size_t rows = 21, i8_bytes = rows * 16, h_bytes = (rows + 1) * 16; /* C2 has one bucket more */
    uint8_t *i8 = encode_table(CTR_TABLE_INT8_ROWWISE, o.cat[0].table, rows, 8);
    uint8_t *h16 = encode_table(CTR_TABLE_F16, o.cat[1].table, rows + 1, 8);
    const size_t i8_off = offset_of(file, len, i8, i8_bytes), h_off = offset_of(file, len, h16, h_bytes);

    const float nan = NAN, neg = -0.5f;
    memcpy(bad, file, len);
    memcpy(bad + i8_off + 5 * 16 + 8, &nan, 4); /* row 5's scale */
    rehash(bad, len, i8, i8_off, i8_bytes);
    expect_refused("q_nan_scale.ctrm", bad, len, CTR_EFORMAT, "tensor \"emb.C1\" (int8_rowwise table)",
                   "row 5: int8_rowwise scale nan");
    memcpy(bad, file, len);
    memcpy(bad + i8_off + 3 * 16 + 8, &neg, 4);
    rehash(bad, len, i8, i8_off, i8_bytes);
    expect_refused("q_neg_scale.ctrm", bad, len, CTR_EFORMAT, "row 3: int8_rowwise scale -0.5 is negative", NULL);
    memcpy(bad, file, len);
    bad[h_off + (2 * 8 + 3) * 2] = 0x00;
    bad[h_off + (2 * 8 + 3) * 2 + 1] = 0x7c;
    rehash(bad, len, h16, h_off, h_bytes);
    expect_refused("q_inf_half.ctrm", bad, len, CTR_EFORMAT, "tensor \"emb.C2\" (f16 table)",
                   "row 2 element 3 is infinite");

    memcpy(bad, file, len);
    CHECK(patch(bad, len, "\"nbytes\":336,", "\"nbytes\":335,"));
    expect_refused("q_nbytes.ctrm", bad, len, CTR_EFORMAT, "tensor \"emb.C1\" nbytes: is 335",
                   "of int8_rowwise needs 336");
    memcpy(bad, file, len);
    CHECK(patch(bad, len, "\"dtype\":\"f16\"", "\"dtype\":\"f64\""));
    expect_refused("q_dtype.ctrm", bad, len, CTR_EUNSUPPORTED, "dtype \"f64\" is not supported",
                   "emb.C2");
    memcpy(bad, file, len);
    CHECK(patch(bad, len, "\"dtype\":\"int8_rowwise\"", "\"dtype\":\"int8_rowwisf\""));
    expect_refused("q_dtype2.ctrm", bad, len, CTR_EUNSUPPORTED, "int8_rowwisf", NULL);

    /* Version 1 is f32 throughout. */
    v2_model_t p;
    v2_opts_t popt = {.arch = CTR_ARCH_MLP, .n_dense = 1, .n_cat = 1, .d = 8, .buckets = 5};
    v2_build(&p, &popt, 5);
    const char *v1 = test_path("q_v1.ctrm");
    CHECK_EQ_INT(ctr_model_write(v1, &p.def, NULL, NULL, err, sizeof err), 0);
    size_t l1;
    unsigned char *f1 = test_slurp(v1, &l1);
    CHECK(f1 && patch(f1, l1, "\"name\":\"emb.C1\",\"dtype\":\"f32\"", "\"name\":\"emb.C1\",\"dtype\":\"f16\""));
    expect_refused("q_v1_f16.ctrm", f1, l1, CTR_EFORMAT, "dtype f16 needs format version 2", NULL);
    free(f1);

    /* The writer refuses what the reader would. */
    p.cat[0].dtype = CTR_TABLE_F16;
    float keep = p.cat[0].table[9];
    ((float *)p.cat[0].table)[9] = 1e6f;
    CHECK_EQ_INT(ctr_model_write(test_path("q_w1.ctrm"), &p.def, NULL, NULL, err, sizeof err), CTR_ERANGE);
    CHECKF(strstr(err, "row 1 element 1 is 1e+06, beyond f16's range"), "%s", err);
    ((float *)p.cat[0].table)[9] = keep;
    p.cat[0].dtype = (ctr_table_dtype_t)9;
    CHECK_EQ_INT(ctr_model_write(test_path("q_w2.ctrm"), &p.def, NULL, NULL, err, sizeof err), CTR_EINVAL);
    CHECKF(strstr(err, "unknown table dtype"), "%s", err);
    p.cat[0].dtype = CTR_TABLE_F32;
    p.cat[0].qrows = i8;
    CHECK_EQ_INT(ctr_model_write(test_path("q_w3.ctrm"), &p.def, NULL, NULL, err, sizeof err), CTR_EINVAL);
    CHECKF(strstr(err, "qrows set on an f32 table"), "%s", err);
    /* Stored rows with a bad row: refused, naming it. */
    uint8_t *rows6 = encode_table(CTR_TABLE_INT8_ROWWISE, p.cat[0].table, 6, 8);
    memcpy(rows6 + 4 * 16 + 12, &nan, 4); /* row 4's bias */
    p.cat[0].dtype = CTR_TABLE_INT8_ROWWISE;
    p.cat[0].qrows = rows6;
    CHECK_EQ_INT(ctr_model_write(test_path("q_w4.ctrm"), &p.def, NULL, NULL, err, sizeof err), CTR_EINVAL);
    CHECKF(strstr(err, "tensor \"emb.C1\" (int8_rowwise table): row 4"), "%s", err);
    CHECK(!file_exists(test_path("q_w4.ctrm")) && !file_exists(test_path("q_w4.ctrm.tmp")));
    free(rows6);
    v2_free(&p);
    free(i8);
    free(h16);
    free(file);
    free(bad);
    v2_free(&o);
}

int main(void)
{
    test_half_encoder();
    test_write_read();
    test_bad_files();
    return test_main_end();
}
