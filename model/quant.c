/* quant.c - the scalar reference of the quantized row formats (quant.h),
 * the int8 encoder, the row check and the choice of per-ISA decoders. */
#include "quant.h"

#include <cpuid.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/features.h"

size_t ctr_table_row_bytes(ctr_table_dtype_t dtype, size_t dim)
{
    switch (dtype) {
    case CTR_TABLE_F32: return 4 * dim;
    case CTR_TABLE_F16: return 2 * dim;
    case CTR_TABLE_INT8_ROWWISE: return dim + CTR_QUANT_INT8_TRAILER;
    default: return 0;
    }
}

/* The file's tensor dtype names first, then the aliases the command line
 * takes. */
static const struct {
    const char *name;
    ctr_table_dtype_t dtype;
} dtype_names[] = {
    {"f32", CTR_TABLE_F32}, {"f16", CTR_TABLE_F16}, {"int8_rowwise", CTR_TABLE_INT8_ROWWISE},
    {"fp32", CTR_TABLE_F32}, {"fp16", CTR_TABLE_F16}, {"int8", CTR_TABLE_INT8_ROWWISE},
};

int ctr_table_dtype_parse(const char *name)
{
    for (size_t i = 0; i < CTR_ARRAY_LEN(dtype_names); i++)
        if (strcmp(name, dtype_names[i].name) == 0)
            return (int)dtype_names[i].dtype;
    return -1;
}

const char *ctr_table_dtype_name(ctr_table_dtype_t dtype)
{
    for (size_t i = 0; i < CTR_ARRAY_LEN(dtype_names); i++)
        if (dtype_names[i].dtype == dtype)
            return dtype_names[i].name;
    return NULL;
}

/* ---- scalar reference ------------------------------------------------ */

static float bits_to_float(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* Half: sign 1, exponent 5 (bias 15), mantissa 10. Normal halves rebias
 * the exponent by 127 - 15 = 112; subnormals (m * 2^-24) are normalised;
 * inf and NaN map to exponent 255 with the mantissa shifted up, and a NaN
 * gets the quiet bit (bit 22), as vcvtph2ps gives. */
float ctr__half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f)
        return bits_to_float(sign | 0x7f800000u | (man << 13) | (man ? 0x400000u : 0));
    if (exp != 0)
        return bits_to_float(sign | ((exp + 112) << 23) | (man << 13));
    if (man == 0)
        return bits_to_float(sign);
    uint32_t e = 113; /* the exponent of 2^-14 with the implicit bit at 0x400 */
    while (!(man & 0x400u)) {
        man <<= 1;
        e--;
    }
    return bits_to_float(sign | (e << 23) | ((man & 0x3ffu) << 13));
}

static void fp16_scalar(const void *row, size_t dim, float *out)
{
    const uint8_t *p = row;
    for (size_t a = 0; a < dim; a++) {
        uint16_t h = (uint16_t)(p[2 * a] | (p[2 * a + 1] << 8));
        out[a] = ctr__half_to_float(h);
    }
}

static void fp16_acc_scalar(const void *row, size_t dim, float *acc)
{
    const uint8_t *p = row;
    for (size_t a = 0; a < dim; a++) {
        uint16_t h = (uint16_t)(p[2 * a] | (p[2 * a + 1] << 8));
        acc[a] += ctr__half_to_float(h);
    }
}

static void int8_params(const uint8_t *row, size_t dim, float *scale, float *bias)
{
    memcpy(scale, row + dim, 4);
    memcpy(bias, row + dim + 4, 4);
}

static void int8_scalar(const void *row, size_t dim, float *out)
{
    const uint8_t *q = row;
    float scale, bias;
    int8_params(q, dim, &scale, &bias);
    for (size_t a = 0; a < dim; a++)
        out[a] = fmaf((float)q[a], scale, bias);
}

static void int8_acc_scalar(const void *row, size_t dim, float *acc)
{
    const uint8_t *q = row;
    float scale, bias;
    int8_params(q, dim, &scale, &bias);
    for (size_t a = 0; a < dim; a++)
        acc[a] += fmaf((float)q[a], scale, bias);
}

/* The gather's forms (quant.h). The pool is ctr__pool_scalar's loop with
 * the decode in place of the fp32 load. */
static void fp16_rows_scalar(const void *table, size_t dim, const uint32_t *rows, size_t stride,
                             size_t n, float *out, size_t ldo)
{
    const uint8_t *t = table;
    for (size_t i = 0; i < n; i++)
        fp16_scalar(t + (size_t)rows[i * stride] * 2 * dim, dim, out + i * ldo);
}

static void int8_rows_scalar(const void *table, size_t dim, const uint32_t *rows, size_t stride,
                             size_t n, float *out, size_t ldo)
{
    const uint8_t *t = table;
    const size_t rb = dim + CTR_QUANT_INT8_TRAILER;
    for (size_t i = 0; i < n; i++)
        int8_scalar(t + (size_t)rows[i * stride] * rb, dim, out + i * ldo);
}

static void pool_finish(size_t dim, uint32_t count, ctr_pool_t pool, float *out)
{
    if (pool != CTR_POOL_MEAN || !count)
        return; /* a sum, or an empty bag's zeros */
    const float c = (float)count;
    for (size_t a = 0; a < dim; a++)
        out[a] = out[a] / c;
}

static void fp16_pool_scalar(const void *table, size_t dim, const uint32_t *slots, size_t n_slots,
                             ctr_pool_t pool, float *out)
{
    const uint8_t *t = table;
    uint32_t count = 0;
    for (size_t a = 0; a < dim; a++)
        out[a] = 0.0f;
    for (size_t s = 0; s < n_slots; s++) {
        if (slots[s] == CTR_EMPTY_SLOT)
            continue;
        fp16_acc_scalar(t + (size_t)slots[s] * 2 * dim, dim, out);
        count++;
    }
    pool_finish(dim, count, pool, out);
}

static void int8_pool_scalar(const void *table, size_t dim, const uint32_t *slots, size_t n_slots,
                             ctr_pool_t pool, float *out)
{
    const uint8_t *t = table;
    const size_t rb = dim + CTR_QUANT_INT8_TRAILER;
    uint32_t count = 0;
    for (size_t a = 0; a < dim; a++)
        out[a] = 0.0f;
    for (size_t s = 0; s < n_slots; s++) {
        if (slots[s] == CTR_EMPTY_SLOT)
            continue;
        int8_acc_scalar(t + (size_t)slots[s] * rb, dim, out);
        count++;
    }
    pool_finish(dim, count, pool, out);
}

/* ---- encoder and check ----------------------------------------------- */

int ctr__quant_encode_int8_row(const float *x, size_t dim, uint8_t *row)
{
    float lo = 0.0f, hi = 0.0f;
    for (size_t a = 0; a < dim; a++) {
        if (!isfinite(x[a]))
            return CTR_EINVAL;
        if (a == 0 || x[a] < lo)
            lo = x[a];
        if (a == 0 || x[a] > hi)
            hi = x[a];
    }
    float range = hi - lo;
    if (!isfinite(range))
        return CTR_ERANGE;
    float scale = range / 255.0f;
    for (size_t a = 0; a < dim; a++) {
        long q = 0;
        if (scale > 0.0f) {
            q = lrintf((x[a] - lo) / scale);
            q = q < 0 ? 0 : q > 255 ? 255 : q;
        }
        row[a] = (uint8_t)q;
    }
    if (scale == 0.0f)
        scale = 0.0f; /* never -0 */
    memcpy(row + dim, &scale, 4);
    memcpy(row + dim + 4, &lo, 4);
    return 0;
}

int ctr__quant_check_row(ctr_table_dtype_t dtype, const void *row, size_t dim, size_t row_index,
                         char *err, size_t errlen)
{
    if (dtype == CTR_TABLE_F32 || dtype == CTR_TABLE_F16)
        return 0;
    if (dtype != CTR_TABLE_INT8_ROWWISE)
        return ctr_error(err, errlen, CTR_EFORMAT, "row %zu: unknown dtype %d",
                         row_index, dtype);
    float scale, bias;
    int8_params(row, dim, &scale, &bias);
    if (!isfinite(scale) || !isfinite(bias))
        return ctr_error(err, errlen, CTR_EFORMAT,
                         "row %zu: int8_rowwise scale %g and bias %g must both be finite",
                         row_index, (double)scale, (double)bias);
    if (scale < 0.0f || signbit(scale))
        return ctr_error(err, errlen, CTR_EFORMAT,
                         "row %zu: int8_rowwise scale %g is negative", row_index,
                         (double)scale);
    if (!isfinite(fmaf(255.0f, scale, bias)))
        return ctr_error(err, errlen, CTR_EFORMAT,
                         "row %zu: int8_rowwise scale %g and bias %g overflow a float",
                         row_index, (double)scale, (double)bias);
    return 0;
}

int ctr_table_decode_rows(ctr_table_dtype_t dtype, const void *rows, uint64_t n_rows, size_t dim, float *out)
{
    const size_t rb = ctr_table_row_bytes(dtype, dim);
    if (!rb)
        return CTR_EINVAL;
    const uint8_t *row = rows;
    for (uint64_t r = 0; r < n_rows; r++, row += rb, out += dim)
        switch (dtype) {
        case CTR_TABLE_F16: fp16_scalar(row, dim, out); break;
        case CTR_TABLE_INT8_ROWWISE: int8_scalar(row, dim, out); break;
        case CTR_TABLE_F32:
        default: memcpy(out, row, rb); break;
        }
    return 0;
}

/* ---- dispatch -------------------------------------------------------- */

static int cpu_has_f16c(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(1, 0, &a, &b, &c, &d))
        return 0;
    return (c >> 29) & 1;
}

#define QUANT_OPS(name, sfx)                                                        \
    {name, ctr__dequant_fp16_##sfx, ctr__dequant_fp16_acc_##sfx, ctr__dequant_int8_##sfx, \
     ctr__dequant_int8_acc_##sfx, ctr__dequant_fp16_rows_##sfx, ctr__dequant_int8_rows_##sfx, \
     ctr__dequant_fp16_pool_##sfx, ctr__dequant_int8_pool_##sfx}

static const ctr__quant_ops_t quant_ops[] = {
    [CTR_KERNEL_SCALAR] = {"scalar", fp16_scalar, fp16_acc_scalar, int8_scalar, int8_acc_scalar,
                           fp16_rows_scalar, int8_rows_scalar, fp16_pool_scalar, int8_pool_scalar},
    [CTR_KERNEL_AVX2] = QUANT_OPS("avx2", avx2),
    [CTR_KERNEL_AVX512] = QUANT_OPS("avx512", avx512),
};

/* Which variants run here, decided once: the forward pass asks for its
 * decoders on every batch, and CPUID traps to the hypervisor in a VM. */
static int quant_usable[CTR_KERNEL_AVX512 + 1];
static pthread_once_t quant_once = PTHREAD_ONCE_INIT;

static void quant_detect(void)
{
    int f16c = cpu_has_f16c();
    quant_usable[CTR_KERNEL_SCALAR] = 1;
    quant_usable[CTR_KERNEL_AVX2] = f16c && ctr_cpu_has_avx2_fma();
    quant_usable[CTR_KERNEL_AVX512] = f16c && ctr_cpu_has_avx512();
}

const ctr__quant_ops_t *ctr__quant_ops_get(ctr_kernel_id_t id)
{
    pthread_once(&quant_once, quant_detect);
    switch (id) {
    case CTR_KERNEL_SCALAR:
    case CTR_KERNEL_AVX2:
    case CTR_KERNEL_AVX512:
        return quant_usable[id] ? &quant_ops[id] : NULL;
    case CTR_KERNEL_BLAS:
    case CTR_KERNEL_AUTO:
        for (int v = CTR_KERNEL_AVX512; v > CTR_KERNEL_SCALAR; v--)
            if (quant_usable[v])
                return &quant_ops[v];
        return &quant_ops[CTR_KERNEL_SCALAR];
    }
    return NULL;
}
