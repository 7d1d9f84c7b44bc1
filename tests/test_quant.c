/* test_quant.c - the quantized row formats (model/quant.h).
 *
 * fp16: all 65,536 halves decode to the same bits in every variant the CPU
 * runs, and the scalar reference equals an independent definition
 * (ldexp of the fields, in double). int8_rowwise: random rows of widths
 * 1..70 (every tail length) decode and accumulate to the scalar bits in
 * every variant, with no byte past the row read (rows end at the end of a
 * malloc'd block, which ASan checks); the encoder's round trip is within
 * scale/2 per element; constant rows; the check refuses NaN, infinite and
 * negative scales and bias, and overflow. The gather's rows and pool forms
 * agree with the per-row decoders and with the fp32 pool over decoded
 * rows. Variants: scalar, AVX2+F16C, AVX-512 natively and through SIMDe. */
#include <math.h>

#include "ctr/common.h"
#include "ctr/features.h"
#include "ctr/kernels.h"
#include "kernels_int.h"
#include "quant.h"
#include "testutil.h"

static size_t variants(const ctr__quant_ops_t **v)
{
    size_t n = 0;
    const ctr_kernel_id_t ids[] = {CTR_KERNEL_SCALAR, CTR_KERNEL_AVX2, CTR_KERNEL_AVX512};
    const char *names[] = {"scalar", "avx2+f16c", "avx512"};
    for (size_t i = 0; i < CTR_ARRAY_LEN(ids); i++) {
        const ctr__quant_ops_t *o = ctr__quant_ops_get(ids[i]);
        if (o)
            v[n++] = o;
        else
            printf("variant %s: not run (this CPU or OS lacks it)\n", names[i]);
    }
    /* quant_avx512.c through SIMDe: built with -mavx2 -mfma -mf16c. */
    if (ctr__quant_ops_get(CTR_KERNEL_AVX2))
        v[n++] = &ctr__quant_ops_avx512_simde;
    else
        printf("variant avx512-simde: not run (built with -mavx2 -mfma -mf16c, which this CPU lacks)\n");
    return n;
}

static uint32_t float_bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

/* The value of a half from its fields, in double: independent of quant.c. */
static double half_value(uint16_t h)
{
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return sign ? -v : v;
}

static void test_fp16(const ctr__quant_ops_t **v, size_t nv)
{
    uint8_t *row = malloc(65536 * 2);
    float *want = malloc(65536 * sizeof(float)), *got = malloc(65536 * sizeof(float));
    CTR_ASSERT(row && want && got);
    for (uint32_t h = 0; h < 65536; h++) {
        row[2 * h] = (uint8_t)h;
        row[2 * h + 1] = (uint8_t)(h >> 8);
    }
    int bad = 0;
    for (uint32_t h = 0; h < 65536 && bad < 5; h++) {
        float f = ctr__half_to_float((uint16_t)h);
        double d = half_value((uint16_t)h);
        int ok = isnan(d) ? isnan(f) && (float_bits(f) & 0x1fffu) == 0 &&
                                ((float_bits(f) >> 13) & 0x3ffu) == (((h & 0x3ffu)) | 0x200u)
                          : (double)f == d && !signbit(f) == !signbit(d);
        CHECKF(ok, "half 0x%04x: scalar %a (0x%08x), want %a", h, (double)f, float_bits(f), d);
        bad += !ok;
    }
    /* One call of the whole table (65,536 wide) and every width 1..70 at
     * several offsets, so every tail length runs. */
    v[0]->fp16(row, 65536, want);
    for (size_t i = 0; i < nv; i++) {
        memset(got, 0xab, 65536 * sizeof(float));
        v[i]->fp16(row, 65536, got);
        size_t diff = 0;
        for (size_t h = 0; h < 65536; h++)
            if (float_bits(got[h]) != float_bits(want[h])) {
                if (diff++ < 3)
                    fprintf(stderr, "  %s: half 0x%04zx gives 0x%08x, scalar 0x%08x\n", v[i]->name,
                            h, float_bits(got[h]), float_bits(want[h]));
            }
        CHECKF(diff == 0, "%s fp16: %zu of 65536 halves differ from scalar", v[i]->name, diff);
        printf("fp16 %s: all 65536 halves %s\n", v[i]->name, diff ? "DIFFER" : "equal scalar");
    }
    for (size_t dim = 1; dim <= 70; dim++)
        for (size_t off = 0; off + dim <= 65536; off += 4093) {
            float acc0[70], acc[70], out[72];
            for (size_t a = 0; a < dim; a++)
                acc0[a] = (float)(a * 0.37 - 3.1);
            float want_acc[70];
            memcpy(want_acc, acc0, sizeof acc0);
            v[0]->fp16_acc(row + 2 * off, dim, want_acc);
            for (size_t i = 0; i < nv; i++) {
                out[dim] = out[dim + 1] = 12345.0f;
                v[i]->fp16(row + 2 * off, dim, out);
                CHECKF(memcmp(out, want + off, dim * 4) == 0 && out[dim] == 12345.0f,
                       "%s fp16 dim %zu off %zu", v[i]->name, dim, off);
                memcpy(acc, acc0, sizeof acc0);
                v[i]->fp16_acc(row + 2 * off, dim, acc);
                CHECKF(memcmp(acc, want_acc, dim * 4) == 0, "%s fp16_acc dim %zu off %zu",
                       v[i]->name, dim, off);
            }
        }
    free(row);
    free(want);
    free(got);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float rndf(float lo, float hi)
{
    return lo + (hi - lo) * (float)(rnd() & 0xffffff) / 16777216.0f;
}

static void test_int8(const ctr__quant_ops_t **v, size_t nv)
{
    for (size_t dim = 1; dim <= 70; dim++)
        for (int rep = 0; rep < 20; rep++) {
            size_t bytes = ctr_table_row_bytes(CTR_TABLE_INT8_ROWWISE, dim);
            CHECK_EQ_SIZE(bytes, dim + 8);
            /* The row ends where the block does: a read past it is an ASan error. */
            uint8_t *row = malloc(bytes);
            float x[70], want[70], got[71], acc0[70], want_acc[70], acc[70];
            CTR_ASSERT(row);
            float span = ldexpf(1.0f, (int)(rnd() % 30) - 20);
            float centre = rndf(-4.0f, 4.0f) * span;
            for (size_t a = 0; a < dim; a++) {
                x[a] = centre + rndf(-span, span);
                acc0[a] = rndf(-1.0f, 1.0f);
            }
            if (rep == 0)
                for (size_t a = 0; a < dim; a++)
                    x[a] = -0.75f; /* a constant row */
            CHECK_EQ_INT(ctr__quant_encode_int8_row(x, dim, row), 0);
            char err[200];
            CHECK_EQ_INT(ctr__quant_check_row(CTR_TABLE_INT8_ROWWISE, row, dim, 7, err, sizeof err), 0);
            float scale, bias;
            memcpy(&scale, row + dim, 4);
            memcpy(&bias, row + dim + 4, 4);
            v[0]->int8(row, dim, want);
            for (size_t a = 0; a < dim; a++) {
                CHECK_EQ_BITS(want[a], fmaf((float)row[a], scale, bias));
                /* FBGEMM's bound, scale/2, plus the roundings of
                 * x - min, the division and the fma (a few ulps). */
                double tol = scale * 0.5 * (1 + 1e-5) + 4 * ldexp(fabs((double)x[a]) + fabs((double)bias), -24);
                CHECKF(fabs((double)want[a] - (double)x[a]) <= tol,
                       "dim %zu a %zu: x %a decodes to %a (scale %a)", dim, a, (double)x[a],
                       (double)want[a], (double)scale);
            }
            if (rep == 0) {
                CHECK_EQ_BITS(scale, 0.0f);
                for (size_t a = 0; a < dim; a++)
                    CHECK_EQ_BITS(want[a], -0.75f);
            }
            memcpy(want_acc, acc0, sizeof acc0);
            v[0]->int8_acc(row, dim, want_acc);
            for (size_t i = 0; i < nv; i++) {
                got[dim] = 999.0f;
                v[i]->int8(row, dim, got);
                CHECKF(memcmp(got, want, dim * 4) == 0 && got[dim] == 999.0f,
                       "%s int8 dim %zu rep %d", v[i]->name, dim, rep);
                memcpy(acc, acc0, sizeof acc0);
                v[i]->int8_acc(row, dim, acc);
                CHECKF(memcmp(acc, want_acc, dim * 4) == 0, "%s int8_acc dim %zu rep %d",
                       v[i]->name, dim, rep);
            }
            /* Random q, scale and bias too (not only what the encoder writes). */
            for (size_t a = 0; a < dim; a++)
                row[a] = (uint8_t)rnd();
            scale = rndf(0.0f, 1.0f) * span;
            bias = centre;
            memcpy(row + dim, &scale, 4);
            memcpy(row + dim + 4, &bias, 4);
            v[0]->int8(row, dim, want);
            for (size_t i = 1; i < nv; i++) {
                v[i]->int8(row, dim, got);
                CHECKF(memcmp(got, want, dim * 4) == 0, "%s int8 random dim %zu", v[i]->name, dim);
            }
            free(row);
        }
    printf("int8_rowwise: widths 1..70, %zu variants agree\n", nv);
}

static void test_check_and_edges(void)
{
    enum { D = 5 };
    uint8_t row[D + 8] = {0, 1, 2, 255, 128};
    char err[200];
    const float bad[] = {NAN, INFINITY, -INFINITY};
    const float one = 1.0f;
    for (size_t i = 0; i < CTR_ARRAY_LEN(bad); i++) {
        memcpy(row + D, &bad[i], 4);
        memcpy(row + D + 4, &one, 4);
        err[0] = 0;
        CHECK_EQ_INT(ctr__quant_check_row(CTR_TABLE_INT8_ROWWISE, row, D, 41, err, sizeof err), CTR_EFORMAT);
        CHECKF(strstr(err, "row 41") != NULL, "message \"%s\" names the row", err);
        memcpy(row + D, &one, 4);
        memcpy(row + D + 4, &bad[i], 4);
        CHECK_EQ_INT(ctr__quant_check_row(CTR_TABLE_INT8_ROWWISE, row, D, 41, err, sizeof err), CTR_EFORMAT);
    }
    float neg = -1.0f, nz = -0.0f, zero = 0.0f, big = 3e38f, huge = 2e36f;
    memcpy(row + D, &neg, 4);
    memcpy(row + D + 4, &zero, 4);
    CHECK_EQ_INT(ctr__quant_check_row(CTR_TABLE_INT8_ROWWISE, row, D, 0, err, sizeof err), CTR_EFORMAT);
    memcpy(row + D, &nz, 4);
    CHECK_EQ_INT(ctr__quant_check_row(CTR_TABLE_INT8_ROWWISE, row, D, 0, err, sizeof err), CTR_EFORMAT);
    memcpy(row + D, &zero, 4);
    CHECK_EQ_INT(ctr__quant_check_row(CTR_TABLE_INT8_ROWWISE, row, D, 0, err, sizeof err), 0);
    memcpy(row + D, &huge, 4); /* 255 * 2e36 overflows */
    memcpy(row + D + 4, &big, 4);
    CHECK_EQ_INT(ctr__quant_check_row(CTR_TABLE_INT8_ROWWISE, row, D, 0, err, sizeof err), CTR_EFORMAT);
    CHECK_EQ_INT(ctr__quant_check_row(9, row, D, 3, err, sizeof err), CTR_EFORMAT);
    CHECK_EQ_INT(ctr__quant_check_row(CTR_TABLE_F16, row, 2, 3, err, sizeof err), 0);

    /* The encoder refuses non-finite input and an overflowing range, and
     * leaves the row alone. */
    float x[3] = {1.0f, NAN, 2.0f};
    memset(row, 0x5a, sizeof row);
    CHECK_EQ_INT(ctr__quant_encode_int8_row(x, 3, row), CTR_EINVAL);
    CHECK_EQ_UINT(row[0], 0x5a);
    float y[2] = {-3e38f, 3e38f};
    CHECK_EQ_INT(ctr__quant_encode_int8_row(y, 2, row), CTR_ERANGE);
    /* Extremes land on q = 0 and q = 255 and decode exactly at the min. */
    float z[4] = {-2.0f, 0.5f, 3.0f, 1.0f};
    CHECK_EQ_INT(ctr__quant_encode_int8_row(z, 4, row), 0);
    CHECK_EQ_UINT(row[0], 0);
    CHECK_EQ_UINT(row[2], 255);
    const ctr__quant_ops_t *s = ctr__quant_ops_get(CTR_KERNEL_SCALAR);
    float out[4];
    s->int8(row, 4, out);
    CHECK_EQ_BITS(out[0], -2.0f);

    CHECK_EQ_SIZE(ctr_table_row_bytes(CTR_TABLE_F16, 16), 32);
    CHECK_EQ_SIZE(ctr_table_row_bytes(CTR_TABLE_INT8_ROWWISE, 16), 24);
    CHECK_EQ_SIZE(ctr_table_row_bytes(CTR_TABLE_F32, 16), 64);
    CHECK_EQ_SIZE(ctr_table_row_bytes((ctr_table_dtype_t)7, 16), 0);
    CHECK_EQ_INT(ctr_table_dtype_parse("int8_rowwise"), CTR_TABLE_INT8_ROWWISE);
    CHECK_EQ_INT(ctr_table_dtype_parse("int4"), -1);
    CHECK_EQ_STR(ctr_table_dtype_name(CTR_TABLE_F16), "f16");
    CHECK_EQ_INT(ctr_table_dtype_parse("int8"), CTR_TABLE_INT8_ROWWISE);
    CHECK_EQ_INT(ctr_table_dtype_parse("f32"), CTR_TABLE_F32);
}

/* A table of finite rows of dtype (fp16: random halves but inf and NaN;
 * int8: random q, scale and bias), exactly rows * row_bytes long, and its
 * scalar decode. */
static uint8_t *forms_table(ctr_table_dtype_t dtype, size_t dim, size_t rows, float *dec)
{
    const size_t rb = ctr_table_row_bytes(dtype, dim);
    uint8_t *t = malloc(rows * rb);
    CTR_ASSERT(t);
    const ctr__quant_ops_t *s = ctr__quant_ops_get(CTR_KERNEL_SCALAR);
    for (size_t r = 0; r < rows; r++) {
        uint8_t *row = t + r * rb;
        if (dtype == CTR_TABLE_F16) {
            for (size_t a = 0; a < dim; a++) {
                uint16_t h;
                do
                    h = (uint16_t)rnd();
                while (((h >> 10) & 31) == 31);
                row[2 * a] = (uint8_t)h;
                row[2 * a + 1] = (uint8_t)(h >> 8);
            }
            s->fp16(row, dim, dec + r * dim);
        } else {
            for (size_t a = 0; a < dim; a++)
                row[a] = (uint8_t)rnd();
            float scale = r % 5 == 0 ? 0.0f : rndf(0.0f, 0.1f), bias = rndf(-2.0f, 2.0f);
            memcpy(row + dim, &scale, 4);
            memcpy(row + dim + 4, &bias, 4);
            s->int8(row, dim, dec + r * dim);
        }
    }
    return t;
}

/* The gather's forms: rows decode each row where the per-row decoder
 * would, touching nothing else; pool gives, in every variant, the bits
 * of the fp32 pool (ctr__pool_scalar) over the scalar-decoded table. */
static void test_forms(const ctr__quant_ops_t **v, size_t nv)
{
    static const size_t dims[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 48, 63, 64, 65, 100, 128};
    enum { ROWS = 37, N = 23, STRIDE = 3, MAXD = 128, LDO = MAXD + 5 };
    static float dec[ROWS * MAXD], want[N * LDO], got[N * LDO];
    uint32_t idx[N * STRIDE];
    size_t cases = 0;
    for (size_t di = 0; di < CTR_ARRAY_LEN(dims); di++)
        for (int dt = 0; dt < 2; dt++) {
            const ctr_table_dtype_t dtype = dt ? CTR_TABLE_INT8_ROWWISE : CTR_TABLE_F16;
            const size_t dim = dims[di], ldo = dim + 3;
            uint8_t *t = forms_table(dtype, dim, ROWS, dec);
            for (size_t i = 0; i < N * STRIDE; i++)
                idx[i] = i % 7 == 0 ? ROWS - 1 : rnd() % ROWS;
            for (size_t i = 0; i < N * LDO; i++)
                want[i] = -777.0f;
            for (size_t i = 0; i < N; i++)
                memcpy(want + i * ldo, dec + (size_t)idx[i * STRIDE] * dim, dim * sizeof(float));
            for (size_t k = 0; k < nv; k++) {
                for (size_t i = 0; i < N * LDO; i++)
                    got[i] = -777.0f;
                (dt ? v[k]->int8_rows : v[k]->fp16_rows)(t, dim, idx, STRIDE, N, got, ldo);
                CHECKF(memcmp(got, want, sizeof got) == 0, "%s %s_rows dim %zu", v[k]->name,
                       dt ? "int8" : "fp16", dim);
            }
            /* Bags of 0..9 slots, empty ones anywhere, sum and mean. */
            for (size_t rep = 0; rep < 40; rep++) {
                uint32_t slots[9];
                const size_t n_slots = rep % 10;
                for (size_t q = 0; q < n_slots; q++)
                    slots[q] = rnd() % 4 == 0 ? CTR_EMPTY_SLOT : rnd() % ROWS;
                const ctr_pool_t pool = rep % 2 ? CTR_POOL_MEAN : CTR_POOL_SUM;
                float pw[MAXD + 1], pg[MAXD + 1];
                ctr__pool_scalar(dec, dim, slots, n_slots, pool, pw);
                pw[dim] = 4242.0f;
                for (size_t k = 0; k < nv; k++) {
                    memset(pg, 0x5c, sizeof pg);
                    pg[dim] = 4242.0f;
                    (dt ? v[k]->int8_pool : v[k]->fp16_pool)(t, dim, slots, n_slots, pool, pg);
                    CHECKF(memcmp(pg, pw, (dim + 1) * sizeof(float)) == 0, "%s %s_pool dim %zu, %zu slots, %s",
                           v[k]->name, dt ? "int8" : "fp16", dim, n_slots, pool ? "mean" : "sum");
                    cases++;
                }
            }
            free(t);
        }
    printf("rows and pool forms: %zu widths, %zu pool cases, %zu variants agree\n",
           CTR_ARRAY_LEN(dims), cases, nv);
}

int main(void)
{
    const ctr__quant_ops_t *v[4];
    size_t nv = variants(v);
    test_fp16(v, nv);
    test_int8(v, nv);
    test_forms(v, nv);
    test_check_and_edges();
    return test_main_end();
}
