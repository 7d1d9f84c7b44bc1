/* kernels_panels.h - the ISA-independent half of the register-blocked
 * kernels (kernels_avx2.c, kernels_avx512.c): the micro-kernel's argument
 * block, the walk of a batch over row blocks and output panels, the cache
 * blocking of wide layers and the scalar chains for rows left over in
 * out == 1. Only the micro-kernels and the lane-wise out == 1 path differ
 * by ISA.
 *
 * Not a module of its own: each of the two files includes it once, after
 * defining VL (floats a vector), act_t (ctr__act's arguments, with the
 * ISA's vector constants) and SHAPE_MAX_NV (most vectors in a panel), and
 * before its micro-kernels; it is compiled with that file's -m flags. */
#ifndef CTR_KERNELS_PANELS_H
#define CTR_KERNELS_PANELS_H

#include <math.h>
#include <stddef.h>

#include "ctr/common.h"
#include "kernels_int.h"

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

typedef void (*mk_fn)(const blk_t *);

/* A row-block shape: the full-panel kernel, and for the last panel of a
 * row block the masked kernel with exactly as many vectors as it needs
 * (part[nv]), so only its last vector is masked. The micro-kernels come
 * after this header; each file passes its table of shapes, tallest row
 * block first, to panels_linear. */
typedef struct {
    int mr, nv;
    mk_fn full;
    mk_fn part[SHAPE_MAX_NV + 1];
} shape_t;

/* ---- walking the batch ---------------------------------------------- */

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
 * by *a. b holds the layer's strides (ldx, out, ldy). */
static void pass(const shape_t *shapes, size_t n_shapes, blk_t *b, const float *x,
                 size_t rows, size_t k0, size_t kc, const float *w, const float *init,
                 size_t ldi, float *y, size_t o0, size_t o1, const act_t *a)
{
    b->in = kc;
    b->ldi = ldi;
    b->a = a;
    size_t r = 0;
    for (size_t s = 0; s < n_shapes; s++) {
        const size_t mr = (size_t)shapes[s].mr;
        for (; r + mr <= rows; r += mr) {
            b->x = x + r * b->ldx + k0;
            row_block(&shapes[s], b, w + k0 * b->out, init + r * ldi, y + r * b->ldy, o0, o1);
        }
    }
}

/* ---- cache blocking ------------------------------------------------- */

/* A w of up to BLOCK_MIN_BYTES stays in L2 (1-2 MB a core) and runs
 * as one pass, each row block streaming it from L2. A larger w would come
 * from memory once per row block (4096 -> 2048 at batch 64: 60 GFLOP/s),
 * so it runs in passes over blocks of KC inputs x OW outputs (512 KB):
 * the whole batch goes through one block before the next, so a block is
 * read from memory once and then from L2, and while a pass runs its
 * micro-kernel calls prefetch the next pass's block into L2. Splitting
 * the inputs keeps every chain whole: a pass stores its partial sums to
 * y, unactivated, and the next pass reloads them (a float stores and
 * reloads exactly) and goes on with the following inputs, in order; only
 * the last pass over an output panel activates. 4096 -> 2048, one core,
 * AVX-512 GFLOP/s at batch 16 / 64 / 256, on an Intel Xeon with 2 MB L2:
 * 57 / 96 / 148 without the prefetch, 90 / 150 / 150 with it (AVX2: 25 /
 * 27 / 28 -> 75 / 85 / 88); smaller w: blocking costs 3-8% (y reloads),
 * larger: it wins at every batch size, even one row (10 -> 12.6, the
 * block rows are 4 KB runs the prefetchers follow). KC 64..160 and OW
 * 768..1024 were within noise of each other; OW 512 and KC 256 lost. On
 * an AMD EPYC (Zen 4, 1 MB L2) the whole MLP 429 -> 4096 -> 2048 -> 1
 * went from 31 / 36 / 40 to 43 / 68 / 77, KC 32..128 x OW 512..1024 all
 * within 10% of each other. */
#define BLOCK_MIN_BYTES ((size_t)1 << 20)
/* -DKC=.. -DOW=.. (CFLAGS) build a variant to measure others. */
#ifndef KC
#define KC 128   /* inputs a block, at most; passes are split evenly */
#endif
#ifndef OW
#define OW 1024  /* outputs a block: a multiple of every panel width */
#endif

static void linear_blocked(const shape_t *shapes, size_t n_shapes, blk_t *b,
                           const float *x, size_t rows, size_t in, const float *w,
                           const float *bias, size_t out, float *y, const act_t *a)
{
    const size_t ldw = b->out; /* out: outputs; ldw: w's row stride */
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
            b->pf = w + nk0 * ldw + no0;
            b->pf_rows = no0 < out ? (in - nk0 < kc ? in - nk0 : kc) : 0;
            b->pf_lines = ((no1 - no0) * sizeof(float) + 63) / 64;
            pass(shapes, n_shapes, b, x, rows, k0, n, w, first ? bias : y,
                 first ? 0 : b->ldy, y, o0, o1, last ? a : &partial);
        }
    }
}

/* The whole layer for out > 1: one pass while w fits in L2, cache-blocked
 * passes beyond. */
static void panels_linear(const shape_t *shapes, size_t n_shapes, const float *x,
                          size_t ldx, size_t rows, size_t in, const float *w,
                          size_t ldw, const float *bias, size_t out, float *y,
                          size_t ldy, const act_t *a)
{
    blk_t b = {.ldx = ldx, .out = ldw, .ldy = ldy};
    if (in * out * sizeof(float) <= BLOCK_MIN_BYTES)
        pass(shapes, n_shapes, &b, x, rows, 0, in, w, bias, 0, y, 0, out, a);
    else
        linear_blocked(shapes, n_shapes, &b, x, rows, in, w, bias, out, y, a);
}

/* ---- out == 1 ------------------------------------------------------- */

/* Rows the lane-wise out == 1 path leaves: scalar chains (fmaf compiles
 * to one vfmadd here), four rows interleaved. */
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

#endif
