/* quant_avx2.c - the quantized row decoders (quant.h) with AVX2, FMA and
 * F16C, 8 elements a vector. Same bits as the scalar reference: vcvtph2ps
 * is exact, and each int8 element is one vfmadd (correctly rounded, as
 * fmaf). A tail of fewer than 8 is copied into a zeroed buffer, converted
 * whole and stored with a mask, so no byte past the row is read.
 * Compiled with -mavx2 -mfma -mf16c (Makefile); called only when CPUID says
 * so (quant.c). */
#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "quant_avx2.c must be compiled with -mavx2 -mfma -mf16c"
#endif
#include <immintrin.h>
#include <string.h>

#include "quant.h"

#define VL 8

static __m256i tail_mask(size_t n)
{
    static const int32_t m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(m + 8 - n));
}

static inline __m256 fp16_load(const uint8_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static inline __m256 fp16_load_tail(const uint8_t *p, size_t n)
{
    uint8_t buf[16] = {0};
    memcpy(buf, p, 2 * n);
    return fp16_load(buf);
}

void ctr__dequant_fp16_avx2(const void *row, size_t dim, float *out)
{
    const uint8_t *p = row;
    size_t a = 0;
    for (; a + VL <= dim; a += VL)
        _mm256_storeu_ps(out + a, fp16_load(p + 2 * a));
    if (a < dim)
        _mm256_maskstore_ps(out + a, tail_mask(dim - a), fp16_load_tail(p + 2 * a, dim - a));
}

void ctr__dequant_fp16_acc_avx2(const void *row, size_t dim, float *acc)
{
    const uint8_t *p = row;
    size_t a = 0;
    for (; a + VL <= dim; a += VL)
        _mm256_storeu_ps(acc + a, _mm256_add_ps(_mm256_loadu_ps(acc + a), fp16_load(p + 2 * a)));
    if (a < dim) {
        __m256i m = tail_mask(dim - a);
        __m256 s = _mm256_add_ps(_mm256_maskload_ps(acc + a, m), fp16_load_tail(p + 2 * a, dim - a));
        _mm256_maskstore_ps(acc + a, m, s);
    }
}

static inline __m256 int8_load(const uint8_t *q, __m256 scale, __m256 bias)
{
    __m256i w = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)q));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(w), scale, bias);
}

static inline __m256 int8_load_tail(const uint8_t *q, size_t n, __m256 scale, __m256 bias)
{
    uint8_t buf[8] = {0};
    memcpy(buf, q, n);
    return int8_load(buf, scale, bias);
}

void ctr__dequant_int8_avx2(const void *row, size_t dim, float *out)
{
    const uint8_t *q = row;
    float s, b;
    memcpy(&s, q + dim, 4);
    memcpy(&b, q + dim + 4, 4);
    __m256 scale = _mm256_set1_ps(s), bias = _mm256_set1_ps(b);
    size_t a = 0;
    for (; a + VL <= dim; a += VL)
        _mm256_storeu_ps(out + a, int8_load(q + a, scale, bias));
    if (a < dim)
        _mm256_maskstore_ps(out + a, tail_mask(dim - a), int8_load_tail(q + a, dim - a, scale, bias));
}

void ctr__dequant_int8_acc_avx2(const void *row, size_t dim, float *acc)
{
    const uint8_t *q = row;
    float s, b;
    memcpy(&s, q + dim, 4);
    memcpy(&b, q + dim + 4, 4);
    __m256 scale = _mm256_set1_ps(s), bias = _mm256_set1_ps(b);
    size_t a = 0;
    for (; a + VL <= dim; a += VL)
        _mm256_storeu_ps(acc + a, _mm256_add_ps(_mm256_loadu_ps(acc + a), int8_load(q + a, scale, bias)));
    if (a < dim) {
        __m256i m = tail_mask(dim - a);
        __m256 x = int8_load_tail(q + a, dim - a, scale, bias);
        _mm256_maskstore_ps(acc + a, m, _mm256_add_ps(_mm256_maskload_ps(acc + a, m), x));
    }
}
