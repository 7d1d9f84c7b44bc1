/* quant_avx512.c - the quantized row decoders (quant.h) with AVX-512F and
 * F16C's 512-bit form, 16 elements a vector. Same bits as the scalar
 * reference: vcvtph2ps is exact, and each int8 element is one vfmadd
 * (correctly rounded, as fmaf). A tail of fewer than 16 is copied into a
 * zeroed buffer (byte-masked loads would need AVX-512BW), converted whole
 * and stored with a mask, so no byte past the row is read.
 * Compiled with -mavx512f -mavx2 -mfma -mf16c (Makefile); called only when
 * CPUID says so (quant.c). Not built against SIMDe (unlike
 * kernels_avx512.c): its tests run only on CPUs with AVX-512. */
#ifndef __AVX512F__
#error "quant_avx512.c must be compiled with -mavx512f -mavx2 -mfma -mf16c"
#endif
#include <immintrin.h>
#include <string.h>

#include "quant.h"

#define VL 16

static inline __mmask16 tail_mask(size_t n)
{
    return (__mmask16)((1u << n) - 1);
}

static inline __m512 fp16_load(const uint8_t *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

static inline __m512 fp16_load_tail(const uint8_t *p, size_t n)
{
    uint8_t buf[32] = {0};
    memcpy(buf, p, 2 * n);
    return fp16_load(buf);
}

void ctr__dequant_fp16_avx512(const void *row, size_t dim, float *out)
{
    const uint8_t *p = row;
    size_t a = 0;
    for (; a + VL <= dim; a += VL)
        _mm512_storeu_ps(out + a, fp16_load(p + 2 * a));
    if (a < dim)
        _mm512_mask_storeu_ps(out + a, tail_mask(dim - a), fp16_load_tail(p + 2 * a, dim - a));
}

void ctr__dequant_fp16_acc_avx512(const void *row, size_t dim, float *acc)
{
    const uint8_t *p = row;
    size_t a = 0;
    for (; a + VL <= dim; a += VL)
        _mm512_storeu_ps(acc + a, _mm512_add_ps(_mm512_loadu_ps(acc + a), fp16_load(p + 2 * a)));
    if (a < dim) {
        __mmask16 m = tail_mask(dim - a);
        __m512 s = _mm512_add_ps(_mm512_maskz_loadu_ps(m, acc + a), fp16_load_tail(p + 2 * a, dim - a));
        _mm512_mask_storeu_ps(acc + a, m, s);
    }
}

static inline __m512 int8_load(const uint8_t *q, __m512 scale, __m512 bias)
{
    __m512i w = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)q));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(w), scale, bias);
}

static inline __m512 int8_load_tail(const uint8_t *q, size_t n, __m512 scale, __m512 bias)
{
    uint8_t buf[16] = {0};
    memcpy(buf, q, n);
    return int8_load(buf, scale, bias);
}

void ctr__dequant_int8_avx512(const void *row, size_t dim, float *out)
{
    const uint8_t *q = row;
    float s, b;
    memcpy(&s, q + dim, 4);
    memcpy(&b, q + dim + 4, 4);
    __m512 scale = _mm512_set1_ps(s), bias = _mm512_set1_ps(b);
    size_t a = 0;
    for (; a + VL <= dim; a += VL)
        _mm512_storeu_ps(out + a, int8_load(q + a, scale, bias));
    if (a < dim)
        _mm512_mask_storeu_ps(out + a, tail_mask(dim - a), int8_load_tail(q + a, dim - a, scale, bias));
}

void ctr__dequant_int8_acc_avx512(const void *row, size_t dim, float *acc)
{
    const uint8_t *q = row;
    float s, b;
    memcpy(&s, q + dim, 4);
    memcpy(&b, q + dim + 4, 4);
    __m512 scale = _mm512_set1_ps(s), bias = _mm512_set1_ps(b);
    size_t a = 0;
    for (; a + VL <= dim; a += VL)
        _mm512_storeu_ps(acc + a, _mm512_add_ps(_mm512_loadu_ps(acc + a), int8_load(q + a, scale, bias)));
    if (a < dim) {
        __mmask16 m = tail_mask(dim - a);
        __m512 x = int8_load_tail(q + a, dim - a, scale, bias);
        _mm512_mask_storeu_ps(acc + a, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, acc + a), x));
    }
}
