/* quant_avx512.c - the quantized row decoders (quant.h) with AVX-512F and
 * F16C's 512-bit form, 16 elements a vector. Same bits as the scalar
 * reference: vcvtph2ps is exact, and each int8 element is one vfmadd
 * (correctly rounded, as fmaf). A tail of fewer than 16 is copied into a
 * zeroed buffer (byte-masked loads would need AVX-512BW), converted whole
 * and stored with a mask, so no byte past the row is read.
 * The gather's forms (rows, pool) inline the per-row decode, with the
 * common widths as constants so the compiler unrolls them.
 *
 * Built twice, like kernels_avx512.c: natively (-mavx512f -mavx2 -mfma
 * -mf16c, libctr; called only when CPUID says so, quant.c) and, for tests
 * on CPUs without AVX-512, against SIMDe with -DCTR_AVX512_SIMDE -mavx2
 * -mfma -mf16c (entries suffixed _simde, and ctr__quant_ops_avx512_simde).
 * Debian 12's SIMDe lacks the 512-bit conversions (cvtph_ps, cvtepu8_epi32,
 * cvtepi32_ps) and masked loads and stores: the SIMDe build does those
 * exact conversions with their 256-bit AVX2/F16C forms and touches only
 * the lanes in range; the arithmetic (fmadd, add, div) is SIMDe's 512-bit
 * emulation (-mfma: each 512-bit FMA is two fused 256-bit ones). */
#ifdef CTR_AVX512_SIMDE
#  if !defined(__FMA__) || !defined(__F16C__) || !defined(__AVX2__)
#    error "the SIMDe build needs -mavx2 -mfma -mf16c"
#  endif
#  define SIMDE_ENABLE_NATIVE_ALIASES
#  pragma GCC diagnostic ignored "-Wpsabi" /* SIMDe passes 64-byte structs */
#  include <simde/x86/avx512.h>
#  define QFN(name) name##_avx512_simde
#else
#  ifndef __AVX512F__
#    error "quant_avx512.c must be compiled with -mavx512f -mavx2 -mfma -mf16c"
#  endif
#  include <immintrin.h>
#  define QFN(name) name##_avx512
#endif
#include <string.h>

#include "ctr/features.h"
#include "quant.h"

#define VL 16
#define INLINE static inline __attribute__((always_inline))

/* ---- what differs between the native and the SIMDe build ------------ */

#ifdef CTR_AVX512_SIMDE
typedef unsigned lanes_t; /* a count of lanes in range */
INLINE lanes_t tail_mask(size_t n) { return (lanes_t)n; }
INLINE __m512 join(__m256 lo, __m256 hi)
{
    float t[VL];
    _mm256_storeu_ps(t, lo);
    _mm256_storeu_ps(t + 8, hi);
    return _mm512_loadu_ps(t);
}
INLINE __m512 cvt_fp16(const uint8_t *p) /* 16 halves */
{
    return join(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)),
                _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 16))));
}
INLINE __m512 cvt_u8(const uint8_t *q) /* 16 bytes */
{
    return join(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)q))),
                _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(q + 8)))));
}
INLINE __m512 load_lanes(const float *p, lanes_t n)
{
    float t[VL] = {0};
    memcpy(t, p, n * sizeof(float));
    return _mm512_loadu_ps(t);
}
INLINE void store_lanes(float *p, __m512 v, lanes_t n)
{
    float t[VL];
    _mm512_storeu_ps(t, v);
    memcpy(p, t, n * sizeof(float));
}
#else
typedef __mmask16 lanes_t;
INLINE lanes_t tail_mask(size_t n) { return (lanes_t)((1u << n) - 1); }
INLINE __m512 cvt_fp16(const uint8_t *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
INLINE __m512 cvt_u8(const uint8_t *q)
{
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)q)));
}
INLINE __m512 load_lanes(const float *p, lanes_t m) { return _mm512_maskz_loadu_ps(m, p); }
INLINE void store_lanes(float *p, __m512 v, lanes_t m) { _mm512_mask_storeu_ps(p, m, v); }
#endif

/* ---- one row -------------------------------------------------------- */

INLINE __m512 fp16_load_tail(const uint8_t *p, size_t n)
{
    uint8_t buf[32] = {0};
    memcpy(buf, p, 2 * n);
    return cvt_fp16(buf);
}

INLINE void fp16_dq(const uint8_t *p, size_t dim, float *out)
{
    size_t a = 0;
    for (; a + VL <= dim; a += VL)
        _mm512_storeu_ps(out + a, cvt_fp16(p + 2 * a));
    if (a < dim)
        store_lanes(out + a, fp16_load_tail(p + 2 * a, dim - a), tail_mask(dim - a));
}

INLINE void fp16_acc(const uint8_t *p, size_t dim, float *acc)
{
    size_t a = 0;
    for (; a + VL <= dim; a += VL)
        _mm512_storeu_ps(acc + a, _mm512_add_ps(_mm512_loadu_ps(acc + a), cvt_fp16(p + 2 * a)));
    if (a < dim) {
        lanes_t m = tail_mask(dim - a);
        store_lanes(acc + a, _mm512_add_ps(load_lanes(acc + a, m), fp16_load_tail(p + 2 * a, dim - a)), m);
    }
}

INLINE __m512 int8_load(const uint8_t *q, __m512 scale, __m512 bias)
{
    return _mm512_fmadd_ps(cvt_u8(q), scale, bias);
}

INLINE __m512 int8_load_tail(const uint8_t *q, size_t n, __m512 scale, __m512 bias)
{
    uint8_t buf[16] = {0};
    memcpy(buf, q, n);
    return int8_load(buf, scale, bias);
}

INLINE void int8_params(const uint8_t *q, size_t dim, __m512 *scale, __m512 *bias)
{
    float s, b;
    memcpy(&s, q + dim, 4);
    memcpy(&b, q + dim + 4, 4);
    *scale = _mm512_set1_ps(s);
    *bias = _mm512_set1_ps(b);
}

INLINE void int8_dq(const uint8_t *q, size_t dim, float *out)
{
    __m512 scale, bias;
    int8_params(q, dim, &scale, &bias);
    size_t a = 0;
    for (; a + VL <= dim; a += VL)
        _mm512_storeu_ps(out + a, int8_load(q + a, scale, bias));
    if (a < dim)
        store_lanes(out + a, int8_load_tail(q + a, dim - a, scale, bias), tail_mask(dim - a));
}

INLINE void int8_acc(const uint8_t *q, size_t dim, float *acc)
{
    __m512 scale, bias;
    int8_params(q, dim, &scale, &bias);
    size_t a = 0;
    for (; a + VL <= dim; a += VL)
        _mm512_storeu_ps(acc + a, _mm512_add_ps(_mm512_loadu_ps(acc + a), int8_load(q + a, scale, bias)));
    if (a < dim) {
        lanes_t m = tail_mask(dim - a);
        __m512 x = int8_load_tail(q + a, dim - a, scale, bias);
        store_lanes(acc + a, _mm512_add_ps(load_lanes(acc + a, m), x), m);
    }
}

void QFN(ctr__dequant_fp16)(const void *row, size_t dim, float *out) { fp16_dq(row, dim, out); }
void QFN(ctr__dequant_fp16_acc)(const void *row, size_t dim, float *acc) { fp16_acc(row, dim, acc); }
void QFN(ctr__dequant_int8)(const void *row, size_t dim, float *out) { int8_dq(row, dim, out); }
void QFN(ctr__dequant_int8_acc)(const void *row, size_t dim, float *acc) { int8_acc(row, dim, acc); }

/* ---- the gather's forms --------------------------------------------- */

/* out[a] /= count for a mean over count > 0 rows (IEEE division: the
 * scalar bits). */
INLINE void pool_finish(size_t dim, uint32_t count, ctr_pool_t pool, float *out)
{
    if (pool != CTR_POOL_MEAN || !count)
        return;
    const __m512 c = _mm512_set1_ps((float)count);
    size_t a = 0;
    for (; a + VL <= dim; a += VL)
        _mm512_storeu_ps(out + a, _mm512_div_ps(_mm512_loadu_ps(out + a), c));
    if (a < dim) {
        lanes_t m = tail_mask(dim - a);
        store_lanes(out + a, _mm512_div_ps(load_lanes(out + a, m), c), m);
    }
}

/* The rows and pool forms for one dtype (DQ, ACC: its inline decoders;
 * RB: its row bytes). */
#define ROWS_LOOP(DQ, RB, D)                                                   \
    for (size_t i = 0; i < n; i++)                                            \
        DQ(t + (size_t)rows[i * stride] * (RB(D)), (D), out + i * ldo)
#define GATHER_FORMS(NAME, DQ, ACC, RB)                                                          \
    void QFN(ctr__dequant_##NAME##_rows)(const void *table, size_t dim, const uint32_t *rows,     \
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
    void QFN(ctr__dequant_##NAME##_pool)(const void *table, size_t dim, const uint32_t *slots,    \
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

#ifdef CTR_AVX512_SIMDE
const ctr__quant_ops_t ctr__quant_ops_avx512_simde = {
    "avx512-simde", ctr__dequant_fp16_avx512_simde, ctr__dequant_fp16_acc_avx512_simde,
    ctr__dequant_int8_avx512_simde, ctr__dequant_int8_acc_avx512_simde,
    ctr__dequant_fp16_rows_avx512_simde, ctr__dequant_int8_rows_avx512_simde,
    ctr__dequant_fp16_pool_avx512_simde, ctr__dequant_int8_pool_avx512_simde};
#endif
