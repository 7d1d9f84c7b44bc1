/* kernels_avx512.c - the dense-layer kernel with AVX-512F and FMA.
 *
 * Same contract as the scalar reference (ctr/kernels.h): each output is one
 * fused chain, bias first, inputs in ascending order. A zmm lane holds one
 * chain; vectors run across outputs (contiguous in w, which is [in][out])
 * and a block of rows shares each w vector:
 *
 *     for each block of MR rows, for each panel of NV*16 outputs:
 *         acc[r][j] = bias[panel + 16j ..]
 *         for i = 0 .. in-1:   wv[j] = w[i][panel + 16j ..]
 *                              acc[r][j] = fma(broadcast(x[r][i]), wv[j], acc[r][j])
 *         y[r][panel + 16j ..] = act(acc[r][j])
 *
 * Blocks, by rows left: 12x2 (24 zmm accumulators, 32 outputs a panel),
 * 8x3, 4x4, 3x8, 2x8, 1x16 (w as memory operands: each is used once).
 * The w row of a panel lives in a register and x[r][i] is broadcast, so
 * one i step costs NV loads, MR broadcasts and MR*NV FMAs; w streams from
 * L2 once per row block. The last panel of a row has exactly as many
 * vectors as it needs, the last one masked (a lane past `out` loads 0 and
 * is never stored). out == 1 runs 16 rows per vector instead (x copied
 * down a column), each lane its own row's chain.
 * A w larger than 1 MB runs in passes over blocks of it that stay in L2
 * (linear_blocked, in kernels_panels.h with the rest of the ISA-neutral
 * walk): the inputs are split, but each pass carries every chain on from
 * the partial sum the previous one stored in y, so the chains and their
 * bits are the same as in one pass.
 * Nothing here depends on where a row sits in the batch, so a row's bits
 * are the same alone or in any batch.
 *
 * Built twice: natively (-mavx512f -mavx2 -mfma, libctr) and, for tests on
 * CPUs without AVX-512, against SIMDe with -DCTR_AVX512_SIMDE -mavx2 -mfma
 * (SIMDe then runs each 512-bit FMA as two native 256-bit FMAs: still
 * fused). The SIMDe build names its entry ctr__linear_avx512_simde. */
#ifdef CTR_AVX512_SIMDE
#  ifndef __FMA__
#    error "the SIMDe build needs -mfma: SIMDe would otherwise split each FMA into mul + add"
#  endif
#  define SIMDE_ENABLE_NATIVE_ALIASES
#  pragma GCC diagnostic ignored "-Wpsabi" /* SIMDe passes 64-byte structs */
#  include <simde/x86/avx512.h>
#  define CTR__AVX512_FN(name) name##_simde
#else
#  ifndef __AVX512F__
#    error "kernels_avx512.c must be compiled with -mavx512f -mavx2 -mfma"
#  endif
#  include <immintrin.h>
#  define CTR__AVX512_FN(name) name
#endif

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ctr/common.h"
#include "kernels_int.h"

#define VL 16
#define INLINE static inline __attribute__((always_inline))

/* w streams from L2 with a stride of `out` floats, which the hardware
 * prefetchers follow poorly: blocks of 2 or more rows prefetch each w line
 * 8 rows ahead (whole MLP at batch 64: 181 -> 190 GFLOP/s best, 159 -> 174
 * mean on a shared machine). One row is faster without (1x16: 86 vs 80). */
#define PF_ROWS 8

/* Keeps a w vector in a register: with two or more rows the compiler
 * otherwise folds the load into every row's FMA, loading each w vector MR
 * times (2 rows of 429 -> 512: 100 -> 149 GFLOP/s with the pin). */
#ifdef CTR_AVX512_SIMDE
#  define PIN(v) ((void)0)
#else
#  define PIN(v) __asm__("" : "+v"(v))
#endif

/* ---- partial vectors ------------------------------------------------ */

/* The lanes of a partial vector that are in range: a mask natively, a
 * count under SIMDe (whose release in Debian 12 lacks masked loads and
 * stores; the emulation below touches only the lanes in range). */
#ifdef CTR_AVX512_SIMDE
typedef unsigned lanes_t;
INLINE lanes_t lanes(size_t n) { return (lanes_t)(n > VL ? VL : n); }
INLINE __m512 load_lanes(const float *p, lanes_t n)
{
    if (n == VL)
        return _mm512_loadu_ps(p);
    float t[VL] = {0};
    memcpy(t, p, n * sizeof(float));
    return _mm512_loadu_ps(t);
}
INLINE void store_lanes(float *p, __m512 v, lanes_t n)
{
    if (n == VL) {
        _mm512_storeu_ps(p, v);
        return;
    }
    float t[VL];
    _mm512_storeu_ps(t, v);
    memcpy(p, t, n * sizeof(float));
}
#else
typedef __mmask16 lanes_t;
INLINE lanes_t lanes(size_t n)
{
    return (lanes_t)(n >= VL ? 0xffffu : (1u << n) - 1u);
}
INLINE __m512 load_lanes(const float *p, lanes_t m) { return _mm512_maskz_loadu_ps(m, p); }
INLINE void store_lanes(float *p, __m512 v, lanes_t m) { _mm512_mask_storeu_ps(p, m, v); }
#endif

/* ---- activation ----------------------------------------------------- */

typedef struct {
    ctr_activation_t act;
    float beta, c;        /* scalar copies for the scalar tails */
    __m512 vbeta, vnbeta, vc;
} act_t;

static void act_init(act_t *a, ctr_activation_t act, float beta)
{
    a->act = act;
    a->beta = beta;
    a->c = ctr__smelu_scale(beta);
    a->vbeta = _mm512_set1_ps(beta);
    a->vnbeta = _mm512_set1_ps(-beta);
    a->vc = _mm512_set1_ps(a->c);
}

/* ctr__act on 16 lanes, the same operations in the same order. */
INLINE __m512 act_apply(__m512 v, const act_t *a)
{
    const __m512 zero = _mm512_setzero_ps();
    switch (a->act) {
    case CTR_ACT_RELU:
        return _mm512_max_ps(v, zero); /* v > 0 ? v : +0 */
    case CTR_ACT_SMELU: {
        __m512 t = _mm512_add_ps(v, a->vbeta);
        __m512 q = _mm512_mul_ps(_mm512_mul_ps(t, t), a->vc);
        __mmask16 hi = _mm512_cmp_ps_mask(v, a->vbeta, _CMP_GE_OQ);
        __mmask16 lo = _mm512_cmp_ps_mask(v, a->vnbeta, _CMP_LE_OQ);
        q = _mm512_mask_blend_ps(hi, q, v);
        return _mm512_mask_blend_ps(lo, q, zero);
    }
    case CTR_ACT_NONE:
    default:
        return v;
    }
}

/* ---- the register-blocked micro-kernel ------------------------------ */

#define SHAPE_MAX_NV 16 /* the 1x16 shape */
#include "kernels_panels.h" /* blk_t, shape_t and the drivers */

/* MR rows x NV vectors of 16 outputs; MR * NV <= 24 so the accumulators
 * a<r>_<j>, the NV w vectors w<j> and a broadcast fit the 32 zmm
 * registers. With MASKED the panel holds (NV-1)*16 < b->n <= NV*16
 * outputs and the last vector's loads and stores are masked (m). With the
 * CTR__REP macros (kernels_int.h) each accumulator is its own variable.
 * The accumulators start from b->init (bias, or a previous pass's partial
 * sums) and the b->pf_n lines at b->pf are prefetched one every other
 * step, spread over the call rather than issued in a burst. */
#define MK_PART_VEC(j) (masked && j == last)
#define MK_ACC1(r, j)                                                         \
    __m512 a##r##_##j = MK_PART_VEC(j) ? load_lanes(init + (size_t)r * ldi + j * VL, m) \
                                       : _mm512_loadu_ps(init + (size_t)r * ldi + j * VL);
#define MK_ACC(r, nv) CTR__REPJ_##nv(MK_ACC1, r)
#define MK_LOADW(unused, j)                                                   \
    __m512 w##j = MK_PART_VEC(j) ? load_lanes(wi + j * VL, m) : _mm512_loadu_ps(wi + j * VL); \
    if (mr > 1)                                                               \
        PIN(w##j);
#define MK_PREFETCH(unused, j)                                                \
    _mm_prefetch((const char *)(wi + PF_ROWS * out + j * VL), _MM_HINT_T0);
#define MK_FMA1(r, j) a##r##_##j = _mm512_fmadd_ps(xv, w##j, a##r##_##j);
#define MK_ROW(r, nv)                                                         \
    {                                                                         \
        const __m512 xv = _mm512_set1_ps(x[(size_t)r * ldx + i]);             \
        CTR__REPJ_##nv(MK_FMA1, r)                                            \
    }
#define MK_STORE1(r, j)                                                       \
    if (MK_PART_VEC(j))                                                       \
        store_lanes(yr + j * VL, act_apply(a##r##_##j, &a), m);               \
    else                                                                      \
        _mm512_storeu_ps(yr + j * VL, act_apply(a##r##_##j, &a));
#define MK_STORE(r, nv)                                                       \
    {                                                                         \
        float *yr = b->y + (size_t)r * b->ldy;                                \
        CTR__REPJ_##nv(MK_STORE1, r)                                          \
    }

/* Step i of the chains: prefetch w PF_ROWS ahead, load w, NV x MR FMAs. */
#define MK_STEP(MR, NV)                                                       \
    {                                                                         \
        const float *wi = w + i * out;                                        \
        if (mr > 1 && i + PF_ROWS < in) {                                     \
            CTR__REPJ_##NV(MK_PREFETCH, 0)                                    \
        }                                                                     \
        CTR__REPJ_##NV(MK_LOADW, 0)                                           \
        CTR__REPR_##MR(MK_ROW, NV)                                            \
    }

#define MK_DEFINE(name, MR, NV, MASKED)                                       \
    static void name(const blk_t *b)                                          \
    {                                                                         \
        const int masked = MASKED, last = NV - 1, mr = MR;                    \
        const lanes_t m = lanes(masked ? b->n - (size_t)last * VL : VL);      \
        const float *x = b->x, *w = b->w;                                     \
        const size_t ldx = b->ldx, in = b->in, out = b->out, ldi = b->ldi;    \
        const float *init = b->init;                                          \
        const char *pf = (const char *)b->pf;                                 \
        const size_t pfn = 2 * b->pf_n;                                       \
        const act_t a = *b->a; /* a local copy: stores to y cannot alias it */ \
        CTR__REPR_##MR(MK_ACC, NV)                                            \
        /* The steps that prefetch, then the rest without the test: a test \
         * in every step cost 4 rows of 429 -> 512 6% on AVX2. */            \
        const size_t split = pfn < in ? pfn : in;                             \
        size_t i = 0;                                                         \
        for (; i < split; i++) {                                              \
            if (i & 1)                                                        \
                _mm_prefetch(pf + (i >> 1) * 64, _MM_HINT_T1); /* to L2 */    \
            MK_STEP(MR, NV)                                                   \
        }                                                                     \
        for (; i < in; i++)                                                   \
            MK_STEP(MR, NV)                                                   \
        CTR__REPR_##MR(MK_STORE, NV)                                          \
    }
#define MK_FULL(MR, NV) MK_DEFINE(mk_##MR##x##NV, MR, NV, 0)
#define MK_PART(MR, NV) MK_DEFINE(mk_##MR##x##NV##_m, MR, NV, 1)

MK_FULL(12, 2) MK_PART(12, 1) MK_PART(12, 2)
MK_FULL(8, 3) MK_PART(8, 1) MK_PART(8, 2) MK_PART(8, 3)
MK_FULL(4, 4) MK_PART(4, 1) MK_PART(4, 2) MK_PART(4, 3) MK_PART(4, 4)
MK_FULL(3, 8) MK_PART(3, 1) MK_PART(3, 2) MK_PART(3, 3) MK_PART(3, 4)
MK_PART(3, 5) MK_PART(3, 6) MK_PART(3, 7) MK_PART(3, 8)
MK_FULL(2, 8) MK_PART(2, 1) MK_PART(2, 2) MK_PART(2, 3) MK_PART(2, 4)
MK_PART(2, 5) MK_PART(2, 6) MK_PART(2, 7) MK_PART(2, 8)
MK_FULL(1, 16) MK_PART(1, 1) MK_PART(1, 2) MK_PART(1, 3) MK_PART(1, 4)
MK_PART(1, 5) MK_PART(1, 6) MK_PART(1, 7) MK_PART(1, 8) MK_PART(1, 9)
MK_PART(1, 10) MK_PART(1, 11) MK_PART(1, 12) MK_PART(1, 13) MK_PART(1, 14)
MK_PART(1, 15) MK_PART(1, 16)

static const shape_t shapes[] = {
    {12, 2, mk_12x2, {0, mk_12x1_m, mk_12x2_m}},
    {8, 3, mk_8x3, {0, mk_8x1_m, mk_8x2_m, mk_8x3_m}},
    {4, 4, mk_4x4, {0, mk_4x1_m, mk_4x2_m, mk_4x3_m, mk_4x4_m}},
    {3, 8, mk_3x8, {0, mk_3x1_m, mk_3x2_m, mk_3x3_m, mk_3x4_m, mk_3x5_m,
                     mk_3x6_m, mk_3x7_m, mk_3x8_m}},
    {2, 8, mk_2x8, {0, mk_2x1_m, mk_2x2_m, mk_2x3_m, mk_2x4_m, mk_2x5_m,
                     mk_2x6_m, mk_2x7_m, mk_2x8_m}},
    {1, 16, mk_1x16, {0, mk_1x1_m, mk_1x2_m, mk_1x3_m, mk_1x4_m, mk_1x5_m,
                     mk_1x6_m, mk_1x7_m, mk_1x8_m, mk_1x9_m, mk_1x10_m,
                     mk_1x11_m, mk_1x12_m, mk_1x13_m, mk_1x14_m, mk_1x15_m,
                     mk_1x16_m}},
};

/* ---- 16 x 16 transpose in registers -------------------------------- */

/* Columns a .. a+15 of 16 rows (row i at rp[i]) into c[0..15], lane i of
 * c[j] holding rp[i][a + j]: the 16 x 16 block loaded a row per vector
 * (columns past w load as 0) and transposed in registers: a 4 x 4
 * transpose inside each 128-bit lane (unpack, shuffle), then two rounds of
 * 128-bit lane shuffles. */
#ifdef CTR_AVX512_SIMDE /* its release in Debian 12 has no native alias for this one */
#  define SHUF128(a, b, imm) simde_mm512_shuffle_f32x4(a, b, imm)
#else
#  define SHUF128(a, b, imm) _mm512_shuffle_f32x4(a, b, imm)
#endif

INLINE void cols16(const float *const rp[VL], size_t a, lanes_t m, int full, __m512 c[VL])
{
    __m512 u[VL];
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        const __m512 r0 = full ? _mm512_loadu_ps(rp[4 * g] + a) : load_lanes(rp[4 * g] + a, m);
        const __m512 r1 = full ? _mm512_loadu_ps(rp[4 * g + 1] + a) : load_lanes(rp[4 * g + 1] + a, m);
        const __m512 r2 = full ? _mm512_loadu_ps(rp[4 * g + 2] + a) : load_lanes(rp[4 * g + 2] + a, m);
        const __m512 r3 = full ? _mm512_loadu_ps(rp[4 * g + 3] + a) : load_lanes(rp[4 * g + 3] + a, m);
        const __m512 t0 = _mm512_unpacklo_ps(r0, r1), t1 = _mm512_unpackhi_ps(r0, r1);
        const __m512 t2 = _mm512_unpacklo_ps(r2, r3), t3 = _mm512_unpackhi_ps(r2, r3);
        u[4 * g] = _mm512_shuffle_ps(t0, t2, 0x44);
        u[4 * g + 1] = _mm512_shuffle_ps(t0, t2, 0xEE);
        u[4 * g + 2] = _mm512_shuffle_ps(t1, t3, 0x44);
        u[4 * g + 3] = _mm512_shuffle_ps(t1, t3, 0xEE);
    }
    /* u[4g + j], 128-bit lane L: column 4L + j of rows 4g .. 4g+3. */
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const __m512 vlo = SHUF128(u[j], u[4 + j], 0x44);
        const __m512 vhi = SHUF128(u[j], u[4 + j], 0xEE);
        const __m512 wlo = SHUF128(u[8 + j], u[12 + j], 0x44);
        const __m512 whi = SHUF128(u[8 + j], u[12 + j], 0xEE);
        c[j] = SHUF128(vlo, wlo, 0x88);
        c[4 + j] = SHUF128(vlo, wlo, 0xDD);
        c[8 + j] = SHUF128(vhi, whi, 0x88);
        c[12 + j] = SHUF128(vhi, whi, 0xDD);
    }
}

/* ---- out == 1: rows across lanes ------------------------------------ */

/* The final layer (in -> 1): a lane per row, w[i] broadcast, so each lane
 * runs its row's chain in the scalar order. cols16 turns 16 inputs of 16
 * rows into 16 column vectors in registers. Copying a tile transposed
 * through memory a float at a time ran at 5.2 GFLOP/s for 256 -> 1 at
 * batch 64 (the copy, not the chain, bounded it: 2.6% of the whole MLP's
 * time for 0.07% of its FLOPs); gathering down the column, at 0.8 for
 * 2048 -> 1 (rows 8 KB apart fall in one L1 set). Rows left over, fewer
 * than 16, run out1_scalar. */
INLINE void store_col(float *y, size_t ldy, __m512 v)
{
    float t[VL];
    _mm512_storeu_ps(t, v);
    for (int k = 0; k < VL; k++)
        y[(size_t)k * ldy] = t[k];
}

static void out1(const float *x, size_t ldx, size_t rows, size_t in,
                 const float *w, const float *bias, float *y, size_t ldy,
                 const act_t *a)
{
    const size_t inf = in & ~(size_t)(VL - 1);
    const lanes_t mt = lanes(in - inf);
    size_t r = 0;
    for (; r + VL <= rows; r += VL) {
        const float *rp[VL];
        for (size_t k = 0; k < VL; k++)
            rp[k] = x + (r + k) * ldx;
        __m512 c[VL];
        __m512 s = _mm512_set1_ps(bias[0]);
        for (size_t i = 0; i < inf; i += VL) {
            cols16(rp, i, mt, 1, c);
#pragma GCC unroll 16
            for (int j = 0; j < VL; j++)
                s = _mm512_fmadd_ps(c[j], _mm512_set1_ps(w[i + j]), s);
        }
        if (inf < in) {
            cols16(rp, inf, mt, 0, c);
            for (size_t j = 0; j < in - inf; j++)
                s = _mm512_fmadd_ps(c[j], _mm512_set1_ps(w[inf + j]), s);
        }
        store_col(y + r * ldy, ldy, act_apply(s, a));
    }
    out1_scalar(x + r * ldx, ldx, rows - r, in, w, bias[0], y + r * ldy, ldy, a);
}

/* ---- entry ---------------------------------------------------------- */

void CTR__AVX512_FN(ctr__linear_avx512)(const float *x, size_t ldx, size_t rows,
                                        size_t in, const float *w, size_t ldw,
                                        const float *bias, size_t out, float *y,
                                        size_t ldy, ctr_activation_t act,
                                        float beta)
{
    act_t a;
    act_init(&a, act, beta);
    if (out == 0 || rows == 0)
        return;
    if (out == 1) {
        out1(x, ldx, rows, in, w, bias, y, ldy, &a);
        return;
    }
    panels_linear(shapes, CTR_ARRAY_LEN(shapes), x, ldx, rows, in, w, ldw, bias, out, y, ldy,
                  &a);
}

/* ---- LayerNorm over rows, bag pooling, elementwise ------------------ */

/* The last step of LayerNorm on one row, across its elements. */
INLINE void ln_affine(const float *v, float *yr, size_t w, float mean, float inv,
                      const float *gamma, const float *beta)
{
    const __m512 vm = _mm512_set1_ps(mean), vi = _mm512_set1_ps(inv);
    size_t a = 0;
    for (; a + VL <= w; a += VL) {
        __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(v + a), vm), vi);
        _mm512_storeu_ps(yr + a, _mm512_fmadd_ps(t, _mm512_loadu_ps(gamma + a),
                                                 _mm512_loadu_ps(beta + a)));
    }
    if (a < w) {
        const lanes_t m = lanes(w - a);
        __m512 t = _mm512_mul_ps(_mm512_sub_ps(load_lanes(v + a, m), vm), vi);
        store_lanes(yr + a, _mm512_fmadd_ps(t, load_lanes(gamma + a, m), load_lanes(beta + a, m)), m);
    }
}

/* ctr_ln_rows_fn (ctr/kernels.h). The two sums run a row per lane, 16
 * rows at a time (a lane past the last row reads row 0 and is dropped),
 * each lane adding its row's values in ascending order as the scalar
 * definition does; cols16 turns 16 row vectors into 16 column vectors.
 * The affine step goes across each row's elements. 16 rows of 64 floats:
 * 0.94 ns an element with a vgatherdps a column, 0.29 with the transpose
 * (AMD EPYC, Zen 5; AVX2: 1.22 and 0.38). */
void CTR__AVX512_FN(ctr__ln_rows_avx512)(const float *x, size_t ldx, size_t rows,
                                         size_t w, const float *gamma,
                                         const float *beta, float eps, float *y,
                                         size_t ldy)
{
    const __m512 vw = _mm512_set1_ps((float)w), veps = _mm512_set1_ps(eps);
    const __m512 one = _mm512_set1_ps(1.0f);
    const size_t wf = w & ~(size_t)(VL - 1);
    const lanes_t mt = lanes(w - wf);
    for (size_t r0 = 0; r0 < rows; r0 += VL) {
        const size_t nr = rows - r0 < VL ? rows - r0 : VL;
        const float *xb = x + r0 * ldx;
        const float *rp[VL];
        for (size_t k = 0; k < VL; k++)
            rp[k] = xb + (k < nr ? k : 0) * ldx;
        __m512 c[VL];
        __m512 sum = _mm512_setzero_ps();
        for (size_t a = 0; a < wf; a += VL) {
            cols16(rp, a, mt, 1, c);
#pragma GCC unroll 16
            for (int j = 0; j < VL; j++)
                sum = _mm512_add_ps(sum, c[j]);
        }
        if (wf < w) {
            cols16(rp, wf, mt, 0, c);
            for (size_t j = 0; j < w - wf; j++)
                sum = _mm512_add_ps(sum, c[j]);
        }
        const __m512 mean = _mm512_div_ps(sum, vw);
        __m512 sq = _mm512_setzero_ps();
        for (size_t a = 0; a < wf; a += VL) {
            cols16(rp, a, mt, 1, c);
#pragma GCC unroll 16
            for (int j = 0; j < VL; j++) {
                const __m512 t = _mm512_sub_ps(c[j], mean);
                sq = _mm512_fmadd_ps(t, t, sq);
            }
        }
        if (wf < w) {
            cols16(rp, wf, mt, 0, c);
            for (size_t j = 0; j < w - wf; j++) {
                const __m512 t = _mm512_sub_ps(c[j], mean);
                sq = _mm512_fmadd_ps(t, t, sq);
            }
        }
        const __m512 var = _mm512_div_ps(sq, vw);
        const __m512 inv = _mm512_div_ps(one, _mm512_sqrt_ps(_mm512_add_ps(var, veps)));
        float m[VL], iv[VL];
        _mm512_storeu_ps(m, mean);
        _mm512_storeu_ps(iv, inv);
        for (size_t k = 0; k < nr; k++)
            ln_affine(xb + k * ldx, y + (r0 + k) * ldy, w, m[k], iv[k], gamma, beta);
    }
}

/* ctr_pool_fn: across the embedding's elements, four vectors at a time
 * (four independent chains of adds, each in slot order). */
void CTR__AVX512_FN(ctr__pool_avx512)(const float *table, size_t dim,
                                      const uint32_t *slots, size_t n_slots,
                                      ctr_pool_t pool, float *out)
{
    uint32_t count = 0;
    for (size_t s = 0; s < n_slots; s++)
        count += slots[s] != UINT32_MAX; /* CTR_EMPTY_SLOT */
    const int mean = pool == CTR_POOL_MEAN;
    if (mean && !count) {
        memset(out, 0, dim * sizeof(float));
        return;
    }
    const __m512 vc = _mm512_set1_ps((float)count);
    size_t a = 0;
    for (; a + 4 * VL <= dim; a += 4 * VL) {
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (size_t s = 0; s < n_slots; s++) {
            if (slots[s] == UINT32_MAX)
                continue;
            const float *row = table + (size_t)slots[s] * dim + a;
            s0 = _mm512_add_ps(s0, _mm512_loadu_ps(row));
            s1 = _mm512_add_ps(s1, _mm512_loadu_ps(row + VL));
            s2 = _mm512_add_ps(s2, _mm512_loadu_ps(row + 2 * VL));
            s3 = _mm512_add_ps(s3, _mm512_loadu_ps(row + 3 * VL));
        }
        if (mean) {
            s0 = _mm512_div_ps(s0, vc);
            s1 = _mm512_div_ps(s1, vc);
            s2 = _mm512_div_ps(s2, vc);
            s3 = _mm512_div_ps(s3, vc);
        }
        _mm512_storeu_ps(out + a, s0);
        _mm512_storeu_ps(out + a + VL, s1);
        _mm512_storeu_ps(out + a + 2 * VL, s2);
        _mm512_storeu_ps(out + a + 3 * VL, s3);
    }
    for (; a < dim; a += VL) {
        const lanes_t m = lanes(dim - a);
        __m512 s0 = _mm512_setzero_ps();
        for (size_t s = 0; s < n_slots; s++)
            if (slots[s] != UINT32_MAX)
                s0 = _mm512_add_ps(s0, load_lanes(table + (size_t)slots[s] * dim + a, m));
        if (mean)
            s0 = _mm512_div_ps(s0, vc);
        store_lanes(out + a, s0, m);
    }
}

void CTR__AVX512_FN(ctr__fma_avx512)(const float *a, const float *b, const float *c,
                                     float *y, size_t n)
{
    size_t i = 0;
    for (; i + VL <= n; i += VL)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i),
                                                _mm512_loadu_ps(c + i)));
    if (i < n) {
        const lanes_t m = lanes(n - i);
        store_lanes(y + i, _mm512_fmadd_ps(load_lanes(a + i, m), load_lanes(b + i, m),
                                           load_lanes(c + i, m)), m);
    }
}

void CTR__AVX512_FN(ctr__add_avx512)(const float *a, const float *b, float *y, size_t n)
{
    size_t i = 0;
    for (; i + VL <= n; i += VL)
        _mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i)));
    if (i < n) {
        const lanes_t m = lanes(n - i);
        store_lanes(y + i, _mm512_add_ps(load_lanes(a + i, m), load_lanes(b + i, m)), m);
    }
}
