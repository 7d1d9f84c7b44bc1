/* quant_avx2.c - the quantized row decoders (quant.h) with AVX2, FMA and
 * F16C, 8 elements a vector. Same bits as the scalar reference: vcvtph2ps
 * is exact, and each int8 element is one vfmadd (correctly rounded, as
 * fmaf). A tail of fewer than 8 is copied into a zeroed buffer, converted
 * whole and stored with a mask, so no byte past the row is read.
 * The gather's forms (rows, pool) inline the per-row decode, with the
 * common widths as constants so the compiler unrolls them.
 * Compiled with -mavx2 -mfma -mf16c (Makefile); called only when CPUID says
 * so (quant.c). */
#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "quant_avx2.c must be compiled with -mavx2 -mfma -mf16c"
#endif
#include <immintrin.h>
#include <string.h>

#include "ctr/features.h"
#include "quant.h"

#define VL 8
#define INLINE static inline __attribute__((always_inline))

INLINE __m256i tail_mask(size_t n)
{
    static const int32_t m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(m + 8 - n));
}

INLINE __m256 fp16_load(const uint8_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

INLINE __m256 fp16_load_tail(const uint8_t *p, size_t n)
{
    uint8_t buf[16] = {0};
    memcpy(buf, p, 2 * n);
    return fp16_load(buf);
}

INLINE void fp16_dq(const uint8_t *p, size_t dim, float *out)
{
    size_t a = 0;
    for (; a + VL <= dim; a += VL)
        _mm256_storeu_ps(out + a, fp16_load(p + 2 * a));
    if (a < dim)
        _mm256_maskstore_ps(out + a, tail_mask(dim - a), fp16_load_tail(p + 2 * a, dim - a));
}

INLINE void fp16_acc(const uint8_t *p, size_t dim, float *acc)
{
    size_t a = 0;
    for (; a + VL <= dim; a += VL)
        _mm256_storeu_ps(acc + a, _mm256_add_ps(_mm256_loadu_ps(acc + a), fp16_load(p + 2 * a)));
    if (a < dim) {
        __m256i m = tail_mask(dim - a);
        __m256 s = _mm256_add_ps(_mm256_maskload_ps(acc + a, m), fp16_load_tail(p + 2 * a, dim - a));
        _mm256_maskstore_ps(acc + a, m, s);
    }
}

INLINE __m256 int8_load(const uint8_t *q, __m256 scale, __m256 bias)
{
    __m256i w = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)q));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(w), scale, bias);
}

INLINE __m256 int8_load_tail(const uint8_t *q, size_t n, __m256 scale, __m256 bias)
{
    uint8_t buf[8] = {0};
    memcpy(buf, q, n);
    return int8_load(buf, scale, bias);
}

INLINE void int8_params(const uint8_t *q, size_t dim, __m256 *scale, __m256 *bias)
{
    float s, b;
    memcpy(&s, q + dim, 4);
    memcpy(&b, q + dim + 4, 4);
    *scale = _mm256_set1_ps(s);
    *bias = _mm256_set1_ps(b);
}

INLINE void int8_dq(const uint8_t *q, size_t dim, float *out)
{
    __m256 scale, bias;
    int8_params(q, dim, &scale, &bias);
    size_t a = 0;
    for (; a + VL <= dim; a += VL)
        _mm256_storeu_ps(out + a, int8_load(q + a, scale, bias));
    if (a < dim)
        _mm256_maskstore_ps(out + a, tail_mask(dim - a), int8_load_tail(q + a, dim - a, scale, bias));
}

INLINE void int8_acc(const uint8_t *q, size_t dim, float *acc)
{
    __m256 scale, bias;
    int8_params(q, dim, &scale, &bias);
    size_t a = 0;
    for (; a + VL <= dim; a += VL)
        _mm256_storeu_ps(acc + a, _mm256_add_ps(_mm256_loadu_ps(acc + a), int8_load(q + a, scale, bias)));
    if (a < dim) {
        __m256i m = tail_mask(dim - a);
        __m256 x = int8_load_tail(q + a, dim - a, scale, bias);
        _mm256_maskstore_ps(acc + a, m, _mm256_add_ps(_mm256_maskload_ps(acc + a, m), x));
    }
}

void ctr__dequant_fp16_avx2(const void *row, size_t dim, float *out) { fp16_dq(row, dim, out); }
void ctr__dequant_fp16_acc_avx2(const void *row, size_t dim, float *acc) { fp16_acc(row, dim, acc); }
void ctr__dequant_int8_avx2(const void *row, size_t dim, float *out) { int8_dq(row, dim, out); }
void ctr__dequant_int8_acc_avx2(const void *row, size_t dim, float *acc) { int8_acc(row, dim, acc); }

/* out[a] /= count for a mean over count > 0 rows (IEEE division: the
 * scalar bits). */
INLINE void pool_finish(size_t dim, uint32_t count, ctr_pool_t pool, float *out)
{
    if (pool != CTR_POOL_MEAN || !count)
        return;
    const __m256 c = _mm256_set1_ps((float)count);
    size_t a = 0;
    for (; a + VL <= dim; a += VL)
        _mm256_storeu_ps(out + a, _mm256_div_ps(_mm256_loadu_ps(out + a), c));
    if (a < dim) {
        __m256i m = tail_mask(dim - a);
        _mm256_maskstore_ps(out + a, m, _mm256_div_ps(_mm256_maskload_ps(out + a, m), c));
    }
}

/* The rows and pool forms for one dtype (DQ, ACC: its inline decoders;
 * RB: its row bytes). */
#define ROWS_LOOP(DQ, RB, D)                                                   \
    for (size_t i = 0; i < n; i++)                                            \
        DQ(t + (size_t)rows[i * stride] * (RB(D)), (D), out + i * ldo)
#define GATHER_FORMS(NAME, DQ, ACC, RB)                                                          \
    void ctr__dequant_##NAME##_rows_avx2(const void *table, size_t dim, const uint32_t *rows,     \
                                         size_t stride, size_t n, float *out, size_t ldo)         \
    {                                                                                            \
        const uint8_t *t = table;                                                                \
        switch (dim) {                                                                           \
        case 16: ROWS_LOOP(DQ, RB, 16); break;                                                   \
        case 32: ROWS_LOOP(DQ, RB, 32); break;                                                   \
        case 64: ROWS_LOOP(DQ, RB, 64); break;                                                   \
        default: ROWS_LOOP(DQ, RB, dim); break;                                                  \
        }                                                                                        \
    }                                                                                            \
    void ctr__dequant_##NAME##_pool_avx2(const void *table, size_t dim, const uint32_t *slots,    \
                                         size_t n_slots, ctr_pool_t pool, float *out)             \
    {                                                                                            \
        const uint8_t *t = table;                                                                \
        uint32_t count = 0;                                                                      \
        memset(out, 0, dim * sizeof(float));                                                     \
        for (size_t s = 0; s < n_slots; s++) {                                                   \
            if (slots[s] == CTR_EMPTY_SLOT)                                                      \
                continue;                                                                        \
            ACC(t + (size_t)slots[s] * RB(dim), dim, out);                                       \
            count++;                                                                             \
        }                                                                                        \
        pool_finish(dim, count, pool, out);                                                      \
    }
#define FP16_RB(d) (2 * (size_t)(d))
#define INT8_RB(d) ((size_t)(d) + CTR_QUANT_INT8_TRAILER)
GATHER_FORMS(fp16, fp16_dq, fp16_acc, FP16_RB)
GATHER_FORMS(int8, int8_dq, int8_acc, INT8_RB)
