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
 * vector instead (x gathered down a column), each lane its own row's chain.
 * Nothing here depends on where a row sits in the batch, so a row's bits
 * are the same alone or in any batch. Compiled with -mavx2 -mfma. */
#if !defined(__AVX2__) || !defined(__FMA__)
#  error "kernels_avx2.c must be compiled with -mavx2 -mfma"
#endif

#include <immintrin.h>
#include <math.h>
#include <stdint.h>

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

typedef struct {
    const float *x;      /* first row of the block */
    size_t ldx, in;
    const float *w;      /* w + panel start */
    size_t out;          /* row stride of w */
    const float *bias;   /* bias + panel start */
    float *y;            /* first row of the block, at the panel start */
    size_t ldy;
    size_t n;            /* outputs in this panel */
    const act_t *a;
} blk_t;

/* MR rows x NV vectors of 8 outputs, MR * NV <= 12 accumulators a<r>_<j>.
 * With MASKED the panel holds (NV-1)*8 < b->n <= NV*8 outputs and the
 * last vector's loads and stores of w, bias and y are masked (m). With the
 * CTR__REP macros (kernels_int.h) each accumulator is its own variable. */
#define MK_PART_VEC(j) (masked && j == last)
#define MK_INIT(unused, j)                                                    \
    const __m256 bias##j = MK_PART_VEC(j) ? load_lanes(b->bias + j * VL, m)   \
                                          : _mm256_loadu_ps(b->bias + j * VL);
#define MK_ACC1(r, j) __m256 a##r##_##j = bias##j;
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

#define MK_DEFINE(name, MR, NV, MASKED)                                       \
    static void name(const blk_t *b)                                          \
    {                                                                         \
        const int masked = MASKED, last = NV - 1, mr = MR;                    \
        const lanes_t m = lanes(masked ? b->n - (size_t)last * VL : VL);      \
        const float *x = b->x, *w = b->w;                                     \
        const size_t ldx = b->ldx, in = b->in, out = b->out;                  \
        const act_t a = *b->a; /* a local copy: stores to y cannot alias it */ \
        CTR__REPJ_##NV(MK_INIT, 0)                                            \
        CTR__REPR_##MR(MK_ACC, NV)                                            \
        for (size_t i = 0; i < in; i++) {                                     \
            const float *wi = w + i * out;                                    \
            if (i + PF_ROWS < in) {                                           \
                CTR__REPJ_##NV(MK_PREFETCH, 0)                                \
            }                                                                 \
            CTR__REPJ_##NV(MK_LOADW, 0)                                       \
            CTR__REPR_##MR(MK_ROW, NV)                                        \
        }                                                                     \
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

typedef void (*mk_fn)(const blk_t *);

/* A row-block shape: the full-panel kernel, and for the last panel of a
 * row block the masked kernel with exactly as many vectors as it needs
 * (part[nv]), so only its last vector is masked. */
typedef struct {
    int mr, nv;
    mk_fn full;
    mk_fn part[13];
} shape_t;

static const shape_t shapes[] = {
    {6, 2, mk_6x2, {0, mk_6x1_m, mk_6x2_m}},
    {4, 3, mk_4x3, {0, mk_4x1_m, mk_4x2_m, mk_4x3_m}},
    {2, 4, mk_2x4, {0, mk_2x1_m, mk_2x2_m, mk_2x3_m, mk_2x4_m}},
    {1, 12, mk_1x12, {0, mk_1x1_m, mk_1x2_m, mk_1x3_m, mk_1x4_m, mk_1x5_m,
                     mk_1x6_m, mk_1x7_m, mk_1x8_m, mk_1x9_m, mk_1x10_m,
                     mk_1x11_m, mk_1x12_m}},
};

/* Full panels of one row block, then the partial one. */
static void row_block(const shape_t *s, blk_t *b, const float *w,
                      const float *bias, float *y, size_t out)
{
    const size_t pw = (size_t)s->nv * VL;
    size_t o = 0;
    for (; o + pw <= out; o += pw) {
        b->w = w + o;
        b->bias = bias + o;
        b->y = y + o;
        b->n = pw;
        s->full(b);
    }
    if (o < out) {
        size_t n = out - o;
        b->w = w + o;
        b->bias = bias + o;
        b->y = y + o;
        b->n = n;
        s->part[(n + VL - 1) / VL](b);
    }
}

/* ---- out == 1: rows across lanes ------------------------------------ */

/* The final layer (in -> 1): a lane per row, x[r][i] gathered down the
 * column, w[i] broadcast; two 8-row groups run side by side. Rows left
 * over, or an ldx too wide for 32-bit gather offsets, run scalar chains
 * (fmaf compiles to one vfmadd here), four rows interleaved. */
static void out1_scalar(const float *x, size_t ldx, size_t rows, size_t in,
                        const float *w, float bias, float *y, size_t ldy,
                        const act_t *a)
{
    size_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const float *x0 = x + r * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx;
        float s0 = bias, s1 = bias, s2 = bias, s3 = bias;
        for (size_t i = 0; i < in; i++) {
            s0 = fmaf(x0[i], w[i], s0);
            s1 = fmaf(x1[i], w[i], s1);
            s2 = fmaf(x2[i], w[i], s2);
            s3 = fmaf(x3[i], w[i], s3);
        }
        y[r * ldy] = ctr__act(s0, a->act, a->beta, a->c);
        y[(r + 1) * ldy] = ctr__act(s1, a->act, a->beta, a->c);
        y[(r + 2) * ldy] = ctr__act(s2, a->act, a->beta, a->c);
        y[(r + 3) * ldy] = ctr__act(s3, a->act, a->beta, a->c);
    }
    for (; r < rows; r++) {
        const float *xr = x + r * ldx;
        float s = bias;
        for (size_t i = 0; i < in; i++)
            s = fmaf(xr[i], w[i], s);
        y[r * ldy] = ctr__act(s, a->act, a->beta, a->c);
    }
}

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
    size_t r = 0;
    if (ldx <= (size_t)INT32_MAX / (2 * VL)) {
        const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                               _mm256_set1_epi32((int)ldx));
        const __m256 bv = _mm256_set1_ps(bias[0]);
        for (; r + 2 * VL <= rows; r += 2 * VL) {
            const float *x0 = x + r * ldx, *x1 = x0 + VL * ldx;
            __m256 s0 = bv, s1 = bv;
            for (size_t i = 0; i < in; i++) {
                __m256 wi = _mm256_broadcast_ss(w + i);
                s0 = _mm256_fmadd_ps(_mm256_i32gather_ps(x0 + i, idx, 4), wi, s0);
                s1 = _mm256_fmadd_ps(_mm256_i32gather_ps(x1 + i, idx, 4), wi, s1);
            }
            store_col(y + r * ldy, ldy, act_apply(s0, a));
            store_col(y + (r + VL) * ldy, ldy, act_apply(s1, a));
        }
        for (; r + VL <= rows; r += VL) {
            const float *x0 = x + r * ldx;
            __m256 s0 = bv;
            for (size_t i = 0; i < in; i++)
                s0 = _mm256_fmadd_ps(_mm256_i32gather_ps(x0 + i, idx, 4),
                                     _mm256_broadcast_ss(w + i), s0);
            store_col(y + r * ldy, ldy, act_apply(s0, a));
        }
    }
    out1_scalar(x + r * ldx, ldx, rows - r, in, w, bias[0], y + r * ldy, ldy, a);
}

/* ---- entry ---------------------------------------------------------- */

void ctr__linear_avx2(const float *x, size_t ldx, size_t rows, size_t in,
                      const float *w, const float *bias, size_t out, float *y,
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
    blk_t b = {.ldx = ldx, .in = in, .out = out, .ldy = ldy, .a = &a};
    size_t r = 0;
    for (size_t s = 0; s < CTR_ARRAY_LEN(shapes); s++) {
        const size_t mr = (size_t)shapes[s].mr;
        for (; r + mr <= rows; r += mr) {
            b.x = x + r * ldx;
            row_block(&shapes[s], &b, w, bias, y + r * ldy, out);
        }
    }
}
