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
 * (linear_blocked): the inputs are split, but each pass carries every
 * chain on from the partial sum the previous one stored in y, so the
 * chains and their bits are the same as in one pass.
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
    const float *x;      /* first row of the block, at the first input */
    size_t ldx, in;      /* in: inputs in this pass */
    const float *w;      /* w + first input's row + panel start */
    size_t out;          /* row stride of w */
    const float *init;   /* where the chains start, at the panel start: */
    size_t ldi;          /* row r's at init + r * ldi (bias: ldi = 0) */
    float *y;            /* first row of the block, at the panel start */
    size_t ldy;
    size_t n;            /* outputs in this panel */
    const act_t *a;      /* CTR_ACT_NONE on a pass that leaves partial sums */
    /* Cache-blocked layers only (linear_blocked): the next pass's block of
     * w, one row of it prefetched into L2 by each micro-kernel call. */
    const float *pf;     /* the row this call prefetches */
    size_t pf_rows;      /* rows of the block left to prefetch */
    size_t pf_lines;     /* 64-byte lines in a row */
    size_t pf_n;         /* lines this call prefetches: pf_lines or 0 */
} blk_t;

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

/* Outputs o0 .. o1-1 of one row block: full panels, then the partial
 * one. w, init and y point at output 0 of the pass's first input / row.
 * While a cache-blocked pass runs, each call also prefetches one row of
 * the next pass's block into L2 (b->pf_rows of them are left). */
static void row_block(const shape_t *s, blk_t *b, const float *w,
                      const float *init, float *y, size_t o0, size_t o1)
{
    const size_t pw = (size_t)s->nv * VL;
    for (size_t o = o0; o < o1; o += pw) {
        const size_t n = o1 - o < pw ? o1 - o : pw;
        b->w = w + o;
        b->init = init + o;
        b->y = y + o;
        b->n = n;
        b->pf_n = b->pf_rows ? b->pf_lines : 0;
        if (n == pw)
            s->full(b);
        else
            s->part[(n + VL - 1) / VL](b);
        if (b->pf_rows) {
            b->pf += b->out;
            b->pf_rows--;
        }
    }
}

/* One pass: every row block of the batch over outputs o0 .. o1-1 and
 * inputs k0 .. k0+kc-1. The chains start from init (bias with ldi = 0, or
 * the partial sums an earlier pass left in y) and end in y, activated
 * by *a. */
static void pass(blk_t *b, const float *x, size_t ldx, size_t rows, size_t k0,
                 size_t kc, const float *w, size_t out, const float *init,
                 size_t ldi, float *y, size_t ldy, size_t o0, size_t o1,
                 const act_t *a)
{
    b->in = kc;
    b->ldi = ldi;
    b->a = a;
    size_t r = 0;
    for (size_t s = 0; s < CTR_ARRAY_LEN(shapes); s++) {
        const size_t mr = (size_t)shapes[s].mr;
        for (; r + mr <= rows; r += mr) {
            b->x = x + r * ldx + k0;
            row_block(&shapes[s], b, w + k0 * out, init + r * ldi, y + r * ldy, o0, o1);
        }
    }
}

/* ---- cache blocking ------------------------------------------------- */

/* A w of up to BLOCK_MIN_BYTES stays in L2 (2 MB a core here) and runs
 * as one pass, each row block streaming it from L2. A larger w would come
 * from memory once per row block, so it runs in passes over blocks of KC
 * inputs x OW outputs (512 KB): the whole batch goes through one block
 * before the next, so a block is read from memory once and then from L2,
 * and while a pass runs its micro-kernel calls prefetch the next pass's
 * block into L2. Splitting the inputs keeps every chain whole: a pass
 * stores its partial sums to y, unactivated, and the next pass reloads
 * them (a float stores and reloads exactly) and goes on with the
 * following inputs, in order; only the last pass over an output panel
 * activates. Same scheme and sizes as kernels_avx512.c; 4096 -> 2048, one
 * core, GFLOP/s at batch 16 / 64 / 256: 25 / 27 / 28 -> 75 / 85 / 88.
 * KC 64 and 256, OW 512, 768 and 1536 measured no better. */
#define BLOCK_MIN_BYTES ((size_t)1 << 20)
#define KC 128   /* inputs a block, at most; passes are split evenly */
#define OW 1024  /* outputs a block: a multiple of the 6x2 panel (16) */

static void linear_blocked(blk_t *b, const float *x, size_t ldx, size_t rows,
                           size_t in, const float *w, const float *bias,
                           size_t out, float *y, size_t ldy, const act_t *a)
{
    act_t partial = *a;
    partial.act = CTR_ACT_NONE;
    /* 429 inputs run as 108 + 107 + 107 + 107, not 128 x 3 + 45 */
    const size_t nk = (in + KC - 1) / KC, kc = (in + nk - 1) / nk;
    for (size_t o0 = 0; o0 < out; o0 += OW) {
        const size_t o1 = out - o0 > OW ? o0 + OW : out;
        for (size_t k0 = 0; k0 < in; k0 += kc) {
            const size_t n = in - k0 < kc ? in - k0 : kc;
            const int first = k0 == 0, last = k0 + n == in;
            /* The next pass's block: this panel's next inputs, or the
             * next panel's first (none after the last panel). */
            const size_t nk0 = last ? 0 : k0 + n, no0 = last ? o1 : o0;
            const size_t no1 = out - no0 > OW ? no0 + OW : out;
            b->pf = w + nk0 * out + no0;
            b->pf_rows = no0 < out ? (in - nk0 < kc ? in - nk0 : kc) : 0;
            b->pf_lines = ((no1 - no0) * sizeof(float) + 63) / 64;
            pass(b, x, ldx, rows, k0, n, w, out, first ? bias : y, first ? 0 : ldy, y,
                 ldy, o0, o1, last ? a : &partial);
        }
    }
}

/* ---- out == 1: rows across lanes ------------------------------------ */

/* The final layer (in -> 1): a lane per row, w[i] broadcast, two 8-row
 * groups side by side. x is read a tile at a time: TI inputs of each of
 * the 16 rows copied, transposed, into xt, so that xt[i] holds input i of
 * every lane (a gather down the column makes rows that lie a multiple of
 * 4 KB apart evict each other from L1; see kernels_avx512.c). Rows left
 * over run scalar chains (fmaf compiles to one vfmadd here), four
 * interleaved. */
#define TI 64 /* inputs a tile: 2 x 8 x 64 floats = 4 KB on the stack */
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

/* xt[i * VL + k] = x[k * ldx + i0 + i] for k < VL, i < n. */
INLINE void transpose_tile(float *xt, const float *x, size_t ldx, size_t i0, size_t n)
{
    for (size_t k = 0; k < VL; k++) {
        const float *xk = x + k * ldx + i0;
        for (size_t i = 0; i < n; i++)
            xt[i * VL + k] = xk[i];
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
    float xt0[TI * VL] __attribute__((aligned(32)));
    float xt1[TI * VL] __attribute__((aligned(32)));
    const __m256 bv = _mm256_set1_ps(bias[0]);
    size_t r = 0;
    for (; r + 2 * VL <= rows; r += 2 * VL) {
        const float *x0 = x + r * ldx, *x1 = x0 + VL * ldx;
        __m256 s0 = bv, s1 = bv;
        for (size_t i0 = 0; i0 < in; i0 += TI) {
            const size_t n = in - i0 < TI ? in - i0 : TI;
            transpose_tile(xt0, x0, ldx, i0, n);
            transpose_tile(xt1, x1, ldx, i0, n);
            for (size_t i = 0; i < n; i++) {
                const __m256 wi = _mm256_broadcast_ss(w + i0 + i);
                s0 = _mm256_fmadd_ps(_mm256_load_ps(xt0 + i * VL), wi, s0);
                s1 = _mm256_fmadd_ps(_mm256_load_ps(xt1 + i * VL), wi, s1);
            }
        }
        store_col(y + r * ldy, ldy, act_apply(s0, a));
        store_col(y + (r + VL) * ldy, ldy, act_apply(s1, a));
    }
    for (; r + VL <= rows; r += VL) {
        const float *x0 = x + r * ldx;
        __m256 s0 = bv;
        for (size_t i0 = 0; i0 < in; i0 += TI) {
            const size_t n = in - i0 < TI ? in - i0 : TI;
            transpose_tile(xt0, x0, ldx, i0, n);
            for (size_t i = 0; i < n; i++)
                s0 = _mm256_fmadd_ps(_mm256_load_ps(xt0 + i * VL),
                                     _mm256_broadcast_ss(w + i0 + i), s0);
        }
        store_col(y + r * ldy, ldy, act_apply(s0, a));
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
    blk_t b = {.ldx = ldx, .out = out, .ldy = ldy};
    if (in * out * sizeof(float) <= BLOCK_MIN_BYTES)
        pass(&b, x, ldx, rows, 0, in, w, out, bias, 0, y, ldy, 0, out, &a);
    else
        linear_blocked(&b, x, ldx, rows, in, w, bias, out, y, ldy, &a);
}
