/* kernels_avx2.c - the dense-layer kernel with AVX2 and FMA.
 *
 * Same contract as the scalar reference (ctr/kernels.h): each output is one
 * fused chain, bias first, inputs in ascending order. A ymm lane holds one
 * chain; vectors run across outputs (contiguous in w, which is [in][out])
 * and a block of rows shares each w vector:
 *
 *     for each block of MR rows, for each panel of NV*8 outputs:
 *         acc[r][j] = bias[panel + 8j ..]
 *         for i = 0 .. in-1:   wv[j] = w[i][panel + 8j ..]
 *                              acc[r][j] = fma(broadcast(x[r][i]), wv[j], acc[r][j])
 *         y[r][panel + 8j ..] = act(acc[r][j])
 *
 * Blocks, by rows left: 6x2 (12 ymm accumulators, 16 outputs a panel; with
 * two w vectors and a broadcast that is 15 of the 16 registers), 4x3, 2x4,
 * 1x12 (w as memory operands: each is used once). The last panel of a row
 * has exactly as many vectors as it needs, the last one through vmaskmov
 * (a lane past `out` loads 0 and is never stored). out == 1 runs 8 rows per
 * vector instead (x copied down a column), each lane its own row's chain.
 * A w larger than 1 MB runs in passes over blocks of it that stay in L2
 * (linear_blocked, in kernels_panels.h with the rest of the ISA-neutral
 * walk): the inputs are split, but each pass carries every chain on from
 * the partial sum the previous one stored in y, so the chains and their
 * bits are the same as in one pass.
 * Nothing here depends on where a row sits in the batch, so a row's bits
 * are the same alone or in any batch. Compiled with -mavx2 -mfma. */
#if !defined(__AVX2__) || !defined(__FMA__)
#  error "kernels_avx2.c must be compiled with -mavx2 -mfma"
#endif

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ctr/common.h"
#include "kernels_int.h"

#define VL 8
/* w streams from L2 with a stride of `out` floats, which the hardware
 * prefetchers follow poorly: every block prefetches its w lines 8 rows
 * ahead. Measured on 429 -> 512 -> 256 -> 1: one row 60 -> 70 GFLOP/s,
 * batch 64 101 -> 112 (best of 30), 88 -> 103 (mean). */
#define PF_ROWS 8
#define INLINE static inline __attribute__((always_inline))

/* Keeps a w vector in a register: with two or more rows the compiler may
 * otherwise fold the load into every row's FMA, loading it MR times. */
#define PIN(v) __asm__("" : "+x"(v))

/* ---- partial vectors ------------------------------------------------ */

/* Lane mask for the first n lanes: a window into -1 x 8, 0 x 8. */
static const int32_t mask_window[2 * VL] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                            0,  0,  0,  0,  0,  0,  0,  0};

typedef __m256i lanes_t;
INLINE lanes_t lanes(size_t n)
{
    return _mm256_loadu_si256((const __m256i *)(mask_window + VL - (n > VL ? VL : n)));
}
INLINE __m256 load_lanes(const float *p, lanes_t m) { return _mm256_maskload_ps(p, m); }
INLINE void store_lanes(float *p, __m256 v, lanes_t m) { _mm256_maskstore_ps(p, m, v); }

/* ---- activation ----------------------------------------------------- */

typedef struct {
    ctr_activation_t act;
    float beta, c;        /* scalar copies for the scalar tails */
    __m256 vbeta, vnbeta, vc;
} act_t;

static void act_init(act_t *a, ctr_activation_t act, float beta)
{
    a->act = act;
    a->beta = beta;
    a->c = ctr__smelu_scale(beta);
    a->vbeta = _mm256_set1_ps(beta);
    a->vnbeta = _mm256_set1_ps(-beta);
    a->vc = _mm256_set1_ps(a->c);
}

/* ctr__act on 8 lanes, the same operations in the same order. */
INLINE __m256 act_apply(__m256 v, const act_t *a)
{
    const __m256 zero = _mm256_setzero_ps();
    switch (a->act) {
    case CTR_ACT_RELU:
        return _mm256_max_ps(v, zero); /* v > 0 ? v : +0 */
    case CTR_ACT_SMELU: {
        __m256 t = _mm256_add_ps(v, a->vbeta);
        __m256 q = _mm256_mul_ps(_mm256_mul_ps(t, t), a->vc);
        __m256 hi = _mm256_cmp_ps(v, a->vbeta, _CMP_GE_OQ);
        __m256 lo = _mm256_cmp_ps(v, a->vnbeta, _CMP_LE_OQ);
        q = _mm256_blendv_ps(q, v, hi);
        return _mm256_blendv_ps(q, zero, lo);
    }
    case CTR_ACT_NONE:
    default:
        return v;
    }
}

/* ---- the register-blocked micro-kernel ------------------------------ */

#define SHAPE_MAX_NV 12 /* the 1x12 shape */
#include "kernels_panels.h" /* blk_t, shape_t and the drivers */

/* MR rows x NV vectors of 8 outputs, MR * NV <= 12 accumulators a<r>_<j>.
 * With MASKED the panel holds (NV-1)*8 < b->n <= NV*8 outputs and the
 * last vector's loads and stores of w, init and y are masked (m). With the
 * CTR__REP macros (kernels_int.h) each accumulator is its own variable.
 * The accumulators start from b->init (bias, or a previous pass's partial
 * sums) and the b->pf_n lines at b->pf are prefetched one every other
 * step, spread over the call rather than issued in a burst. */
#define MK_PART_VEC(j) (masked && j == last)
#define MK_ACC1(r, j)                                                         \
    __m256 a##r##_##j = MK_PART_VEC(j) ? load_lanes(init + (size_t)r * ldi + j * VL, m) \
                                       : _mm256_loadu_ps(init + (size_t)r * ldi + j * VL);
#define MK_ACC(r, nv) CTR__REPJ_##nv(MK_ACC1, r)
#define MK_LOADW(unused, j)                                                   \
    __m256 w##j = MK_PART_VEC(j) ? load_lanes(wi + j * VL, m) : _mm256_loadu_ps(wi + j * VL); \
    if (mr > 1)                                                               \
        PIN(w##j);
#define MK_PREFETCH(unused, j)                                                \
    if (j % 2 == 0) /* a line is two vectors */                               \
        _mm_prefetch((const char *)(wi + PF_ROWS * out + j * VL), _MM_HINT_T0);
#define MK_FMA1(r, j) a##r##_##j = _mm256_fmadd_ps(xv, w##j, a##r##_##j);
#define MK_ROW(r, nv)                                                         \
    {                                                                         \
        const __m256 xv = _mm256_broadcast_ss(x + (size_t)r * ldx + i);       \
        CTR__REPJ_##nv(MK_FMA1, r)                                            \
    }
#define MK_STORE1(r, j)                                                       \
    if (MK_PART_VEC(j))                                                       \
        store_lanes(yr + j * VL, act_apply(a##r##_##j, &a), m);               \
    else                                                                      \
        _mm256_storeu_ps(yr + j * VL, act_apply(a##r##_##j, &a));
#define MK_STORE(r, nv)                                                       \
    {                                                                         \
        float *yr = b->y + (size_t)r * b->ldy;                                \
        CTR__REPJ_##nv(MK_STORE1, r)                                          \
    }

/* Step i of the chains: prefetch w PF_ROWS ahead, load w, NV x MR FMAs. */
#define MK_STEP(MR, NV)                                                       \
    {                                                                         \
        const float *wi = w + i * out;                                        \
        if (i + PF_ROWS < in) {                                               \
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

MK_FULL(6, 2) MK_PART(6, 1) MK_PART(6, 2)
MK_FULL(4, 3) MK_PART(4, 1) MK_PART(4, 2) MK_PART(4, 3)
MK_FULL(2, 4) MK_PART(2, 1) MK_PART(2, 2) MK_PART(2, 3) MK_PART(2, 4)
MK_FULL(1, 12) MK_PART(1, 1) MK_PART(1, 2) MK_PART(1, 3) MK_PART(1, 4)
MK_PART(1, 5) MK_PART(1, 6) MK_PART(1, 7) MK_PART(1, 8) MK_PART(1, 9)
MK_PART(1, 10) MK_PART(1, 11) MK_PART(1, 12)

static const shape_t shapes[] = {
    {6, 2, mk_6x2, {0, mk_6x1_m, mk_6x2_m}},
    {4, 3, mk_4x3, {0, mk_4x1_m, mk_4x2_m, mk_4x3_m}},
    {2, 4, mk_2x4, {0, mk_2x1_m, mk_2x2_m, mk_2x3_m, mk_2x4_m}},
    {1, 12, mk_1x12, {0, mk_1x1_m, mk_1x2_m, mk_1x3_m, mk_1x4_m, mk_1x5_m,
                     mk_1x6_m, mk_1x7_m, mk_1x8_m, mk_1x9_m, mk_1x10_m,
                     mk_1x11_m, mk_1x12_m}},
};

/* ---- 8 x 8 transpose in registers ---------------------------------- */

/* Columns a .. a+7 of 8 rows (row i at rp[i]) into c[0..7], lane i of c[j]
 * holding rp[i][a + j]: the 8 x 8 block loaded a row per vector (columns
 * past w load as 0) and transposed in registers: a 4 x 4 transpose inside
 * each 128-bit half (unpack, shuffle), then the halves exchanged. */
INLINE void cols8(const float *const rp[VL], size_t a, lanes_t m, int full, __m256 c[VL])
{
    __m256 u[VL];
#pragma GCC unroll 2
    for (int g = 0; g < 2; g++) {
        const __m256 r0 = full ? _mm256_loadu_ps(rp[4 * g] + a) : load_lanes(rp[4 * g] + a, m);
        const __m256 r1 = full ? _mm256_loadu_ps(rp[4 * g + 1] + a) : load_lanes(rp[4 * g + 1] + a, m);
        const __m256 r2 = full ? _mm256_loadu_ps(rp[4 * g + 2] + a) : load_lanes(rp[4 * g + 2] + a, m);
        const __m256 r3 = full ? _mm256_loadu_ps(rp[4 * g + 3] + a) : load_lanes(rp[4 * g + 3] + a, m);
        const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
        const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
        u[4 * g] = _mm256_shuffle_ps(t0, t2, 0x44);
        u[4 * g + 1] = _mm256_shuffle_ps(t0, t2, 0xEE);
        u[4 * g + 2] = _mm256_shuffle_ps(t1, t3, 0x44);
        u[4 * g + 3] = _mm256_shuffle_ps(t1, t3, 0xEE);
    }
    /* u[4g + j], half H: column 4H + j of rows 4g .. 4g+3. */
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        c[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
        c[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
    }
}

/* ---- out == 1: rows across lanes ------------------------------------ */

/* The final layer (in -> 1): a lane per row, w[i] broadcast, so each lane
 * runs its row's chain in the scalar order. cols8 turns 8 inputs of 8 rows
 * into 8 column vectors in registers (a tile copied transposed through
 * memory a float at a time bounded the loop; a gather down the column
 * makes rows a multiple of 4 KB apart evict each other from L1: see
 * kernels_avx512.c). Rows left over, fewer than 8, run out1_scalar. */
INLINE void store_col(float *y, size_t ldy, __m256 v)
{
    float t[VL];
    _mm256_storeu_ps(t, v);
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
        __m256 c[VL];
        __m256 s = _mm256_set1_ps(bias[0]);
        for (size_t i = 0; i < inf; i += VL) {
            cols8(rp, i, mt, 1, c);
#pragma GCC unroll 8
            for (int j = 0; j < VL; j++)
                s = _mm256_fmadd_ps(c[j], _mm256_broadcast_ss(w + i + j), s);
        }
        if (inf < in) {
            cols8(rp, inf, mt, 0, c);
            for (size_t j = 0; j < in - inf; j++)
                s = _mm256_fmadd_ps(c[j], _mm256_broadcast_ss(w + inf + j), s);
        }
        store_col(y + r * ldy, ldy, act_apply(s, a));
    }
    out1_scalar(x + r * ldx, ldx, rows - r, in, w, bias[0], y + r * ldy, ldy, a);
}

/* ---- entry ---------------------------------------------------------- */

void ctr__linear_avx2(const float *x, size_t ldx, size_t rows, size_t in,
                      const float *w, size_t ldw, const float *bias, size_t out, float *y,
                      size_t ldy, ctr_activation_t act, float beta)
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
    const __m256 vm = _mm256_set1_ps(mean), vi = _mm256_set1_ps(inv);
    size_t a = 0;
    for (; a + VL <= w; a += VL) {
        __m256 t = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(v + a), vm), vi);
        _mm256_storeu_ps(yr + a, _mm256_fmadd_ps(t, _mm256_loadu_ps(gamma + a),
                                                 _mm256_loadu_ps(beta + a)));
    }
    if (a < w) {
        const lanes_t m = lanes(w - a);
        __m256 t = _mm256_mul_ps(_mm256_sub_ps(load_lanes(v + a, m), vm), vi);
        store_lanes(yr + a, _mm256_fmadd_ps(t, load_lanes(gamma + a, m), load_lanes(beta + a, m)), m);
    }
}

/* ctr_ln_rows_fn (ctr/kernels.h). The two sums run a row per lane, 8 rows
 * at a time (a lane past the last row reads row 0 and is dropped), each
 * lane adding its row's values in ascending order as the scalar
 * definition does; cols8 turns 8 row vectors into 8 column vectors. The
 * affine step goes across each row's elements. */
void ctr__ln_rows_avx2(const float *x, size_t ldx, size_t rows, size_t w,
                       const float *gamma, const float *beta, float eps, float *y,
                       size_t ldy)
{
    const __m256 vw = _mm256_set1_ps((float)w), veps = _mm256_set1_ps(eps);
    const __m256 one = _mm256_set1_ps(1.0f);
    const size_t wf = w & ~(size_t)(VL - 1);
    const lanes_t mt = lanes(w - wf);
    for (size_t r0 = 0; r0 < rows; r0 += VL) {
        const size_t nr = rows - r0 < VL ? rows - r0 : VL;
        const float *xb = x + r0 * ldx;
        const float *rp[VL];
        for (size_t k = 0; k < VL; k++)
            rp[k] = xb + (k < nr ? k : 0) * ldx;
        __m256 c[VL];
        __m256 sum = _mm256_setzero_ps();
        for (size_t a = 0; a < wf; a += VL) {
            cols8(rp, a, mt, 1, c);
#pragma GCC unroll 8
            for (int j = 0; j < VL; j++)
                sum = _mm256_add_ps(sum, c[j]);
        }
        if (wf < w) {
            cols8(rp, wf, mt, 0, c);
            for (size_t j = 0; j < w - wf; j++)
                sum = _mm256_add_ps(sum, c[j]);
        }
        const __m256 mean = _mm256_div_ps(sum, vw);
        __m256 sq = _mm256_setzero_ps();
        for (size_t a = 0; a < wf; a += VL) {
            cols8(rp, a, mt, 1, c);
#pragma GCC unroll 8
            for (int j = 0; j < VL; j++) {
                const __m256 t = _mm256_sub_ps(c[j], mean);
                sq = _mm256_fmadd_ps(t, t, sq);
            }
        }
        if (wf < w) {
            cols8(rp, wf, mt, 0, c);
            for (size_t j = 0; j < w - wf; j++) {
                const __m256 t = _mm256_sub_ps(c[j], mean);
                sq = _mm256_fmadd_ps(t, t, sq);
            }
        }
        const __m256 var = _mm256_div_ps(sq, vw);
        const __m256 inv = _mm256_div_ps(one, _mm256_sqrt_ps(_mm256_add_ps(var, veps)));
        float m[VL], iv[VL];
        _mm256_storeu_ps(m, mean);
        _mm256_storeu_ps(iv, inv);
        for (size_t k = 0; k < nr; k++)
            ln_affine(xb + k * ldx, y + (r0 + k) * ldy, w, m[k], iv[k], gamma, beta);
    }
}

/* ctr_pool_fn: across the embedding's elements, four vectors at a time
 * (four independent chains of adds, each in slot order). */
void ctr__pool_avx2(const float *table, size_t dim, const uint32_t *slots,
                    size_t n_slots, ctr_pool_t pool, float *out)
{
    uint32_t count = 0;
    for (size_t s = 0; s < n_slots; s++)
        count += slots[s] != UINT32_MAX; /* CTR_EMPTY_SLOT */
    const int mean = pool == CTR_POOL_MEAN;
    if (mean && !count) {
        memset(out, 0, dim * sizeof(float));
        return;
    }
    const __m256 vc = _mm256_set1_ps((float)count);
    size_t a = 0;
    for (; a + 4 * VL <= dim; a += 4 * VL) {
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (size_t s = 0; s < n_slots; s++) {
            if (slots[s] == UINT32_MAX)
                continue;
            const float *row = table + (size_t)slots[s] * dim + a;
            s0 = _mm256_add_ps(s0, _mm256_loadu_ps(row));
            s1 = _mm256_add_ps(s1, _mm256_loadu_ps(row + VL));
            s2 = _mm256_add_ps(s2, _mm256_loadu_ps(row + 2 * VL));
            s3 = _mm256_add_ps(s3, _mm256_loadu_ps(row + 3 * VL));
        }
        if (mean) {
            s0 = _mm256_div_ps(s0, vc);
            s1 = _mm256_div_ps(s1, vc);
            s2 = _mm256_div_ps(s2, vc);
            s3 = _mm256_div_ps(s3, vc);
        }
        _mm256_storeu_ps(out + a, s0);
        _mm256_storeu_ps(out + a + VL, s1);
        _mm256_storeu_ps(out + a + 2 * VL, s2);
        _mm256_storeu_ps(out + a + 3 * VL, s3);
    }
    for (; a < dim; a += VL) {
        const lanes_t m = lanes(dim - a);
        __m256 s0 = _mm256_setzero_ps();
        for (size_t s = 0; s < n_slots; s++)
            if (slots[s] != UINT32_MAX)
                s0 = _mm256_add_ps(s0, load_lanes(table + (size_t)slots[s] * dim + a, m));
        if (mean)
            s0 = _mm256_div_ps(s0, vc);
        store_lanes(out + a, s0, m);
    }
}

void ctr__fma_avx2(const float *a, const float *b, const float *c, float *y, size_t n)
{
    size_t i = 0;
    for (; i + VL <= n; i += VL)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i),
                                                _mm256_loadu_ps(c + i)));
    if (i < n) {
        const lanes_t m = lanes(n - i);
        store_lanes(y + i, _mm256_fmadd_ps(load_lanes(a + i, m), load_lanes(b + i, m),
                                           load_lanes(c + i, m)), m);
    }
}

void ctr__add_avx2(const float *a, const float *b, float *y, size_t n)
{
    size_t i = 0;
    for (; i + VL <= n; i += VL)
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    if (i < n) {
        const lanes_t m = lanes(n - i);
        store_lanes(y + i, _mm256_add_ps(load_lanes(a + i, m), load_lanes(b + i, m)), m);
    }
}
