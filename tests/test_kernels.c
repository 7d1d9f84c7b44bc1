/* test_kernels.c - the dense-layer kernels and SmeLU.
 *
 * Every variant this machine runs (scalar, avx2, avx512 natively when the
 * CPU has it, and always the AVX-512 source compiled against SIMDe) must
 * equal the scalar reference bit for bit on many shapes, strides, pointer
 * offsets and activations; a row's bits must not depend on the batch it is
 * in or on how many threads split the batch; partial vectors must not read
 * or write outside the arrays. The BLAS variant only has to be close, and
 * the test reports whether it differed. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ctr/common.h"
#include "ctr/kernels.h"
#include "kernels_int.h"
#include "testutil.h"

typedef struct {
    const char *name;
    ctr_linear_fn fn;
} variant_t;

static variant_t variants[8];
static size_t n_variants;

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static float bitsf(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* ---- SmeLU ------------------------------------------------------------ */

static void test_smelu(void)
{
    static const float betas[] = {0.5f, 1.0f, 2.0f};
    for (size_t k = 0; k < CTR_ARRAY_LEN(betas); k++) {
        const float b = betas[k];
        const float below = nextafterf(-b, -INFINITY), above = nextafterf(-b, INFINITY);
        const float under = nextafterf(b, 0.0f), over = nextafterf(b, INFINITY);

        /* Values: flat left of -beta, x right of +beta, the quadratic
         * between; powers of two make the middle points exact. */
        CHECK_EQ_BITS(ctr_smelu(-b, b), 0.0f);           /* +0, not -0 */
        CHECK_EQ_BITS(ctr_smelu(below, b), 0.0f);
        CHECK_EQ_BITS(ctr_smelu(-4.0f * b, b), 0.0f);
        CHECK_EQ_BITS(ctr_smelu(-INFINITY, b), 0.0f);
        CHECK_EQ_BITS(ctr_smelu(0.0f, b), b / 4.0f);
        CHECK_EQ_BITS(ctr_smelu(-0.0f, b), b / 4.0f);
        CHECK_EQ_BITS(ctr_smelu(-0.5f * b, b), b / 16.0f);
        CHECK_EQ_BITS(ctr_smelu(0.5f * b, b), 0.5625f * b);
        CHECK_EQ_BITS(ctr_smelu(b, b), b);
        CHECK_EQ_BITS(ctr_smelu(over, b), over);
        CHECK_EQ_BITS(ctr_smelu(3.0f * b, b), 3.0f * b);
        CHECK_EQ_BITS(ctr_smelu(INFINITY, b), (float)INFINITY);
        CHECK(isnan(ctr_smelu(NAN, b)));

        /* Just inside -beta: t = above + beta is one ulp of beta (exact,
         * Sterbenz), so the value is (ulp * ulp) * c, tiny and >= 0. */
        float t = above + b;
        CHECK_EQ_BITS(t, b - nextafterf(b, 0.0f));
        CHECK_EQ_BITS(ctr_smelu(above, b), (t * t) * (0.25f / b));
        CHECK(ctr_smelu(above, b) >= 0.0f && ctr_smelu(above, b) < 1e-12f);

        /* Just inside +beta: continuous with x, within two ulps, below beta. */
        float v = ctr_smelu(under, b);
        CHECKF(v <= b && v >= nextafterf(nextafterf(under, 0.0f), 0.0f),
               "smelu(%a, %g) = %a", under, b, v);

        /* Slopes: 0 / (x + beta) / (2 beta) / 1. */
        CHECK_EQ_FLT(ctr_smelu_grad(-b, b), 0.0f);
        CHECK_EQ_FLT(ctr_smelu_grad(below, b), 0.0f);
        CHECK_EQ_FLT(ctr_smelu_grad(-5.0f * b, b), 0.0f);
        CHECK(ctr_smelu_grad(above, b) > 0.0f && ctr_smelu_grad(above, b) < 1e-6f);
        CHECK_EQ_BITS(ctr_smelu_grad(above, b), (above + b) * (0.5f / b));
        CHECK_EQ_BITS(ctr_smelu_grad(-0.5f * b, b), 0.25f);
        CHECK_EQ_BITS(ctr_smelu_grad(0.0f, b), 0.5f);
        CHECK_EQ_BITS(ctr_smelu_grad(0.5f * b, b), 0.75f);
        CHECK_EQ_BITS(ctr_smelu_grad(b, b), 1.0f);
        CHECK_EQ_BITS(ctr_smelu_grad(over, b), 1.0f);
        float g = ctr_smelu_grad(under, b);
        CHECKF(g <= 1.0f && g > 1.0f - 4.0f * FLT_EPSILON, "grad(%a, %g) = %a", under, b, g);

        /* Continuity and monotonicity on a fine sweep of [-2b, 2b]; the
         * middle region agrees with (x+b)^2/(4b) in double to 2 ulps; the
         * slope agrees with a central difference. */
        float prev = -1.0f;
        int mono = 1, close = 1, slope = 1;
        for (int s = -4000; s <= 4000; s++) {
            float x = (float)s * (b / 2000.0f);
            float y = ctr_smelu(x, b);
            if (y < prev)
                mono = 0;
            prev = y;
            if (x > -b && x < b) {
                double e = ((double)x + b) * ((double)x + b) / (4.0 * b);
                if (fabs(y - e) > 2.0 * FLT_EPSILON * (e + 1e-30))
                    close = 0;
                double h = 1e-3 * b;
                if (x > -b + h && x < b - h) {
                    double d = (ctr_smelu((float)(x + h), b) - ctr_smelu((float)(x - h), b)) /
                               ((double)(float)(x + h) - (double)(float)(x - h));
                    if (fabs(d - ctr_smelu_grad(x, b)) > 1e-3)
                        slope = 0;
                }
            }
        }
        CHECKF(mono, "smelu not monotone for beta %g", b);
        CHECKF(close, "smelu middle region off (x+b)^2/4b for beta %g", b);
        CHECKF(slope, "smelu_grad is not the slope of smelu for beta %g", b);
    }
}

/* ---- variants --------------------------------------------------------- */

static void collect_variants(void)
{
    variants[n_variants++] = (variant_t){"scalar", ctr_kernel_get(CTR_KERNEL_SCALAR)->linear};
    const ctr_kernel_t *k = ctr_kernel_get(CTR_KERNEL_AVX2);
    if (k)
        variants[n_variants++] = (variant_t){"avx2", k->linear};
    else
        printf("avx2: this CPU cannot run it, not tested\n");
    /* The SIMDe object is built with -mavx2 -mfma: it needs an AVX2 CPU. */
    if (ctr_cpu_has_avx2_fma())
        variants[n_variants++] = (variant_t){"avx512-simde", ctr__linear_avx512_simde};
    else
        printf("avx512-simde: built with -mavx2 -mfma, this CPU cannot run it, not tested\n");
    k = ctr_kernel_get(CTR_KERNEL_AVX512);
    if (k) {
        variants[n_variants++] = (variant_t){"avx512", k->linear};
        printf("avx512: CPU has AVX-512F, native kernel tested (and the SIMDe build)\n");
    } else {
        printf("avx512: CPU lacks AVX-512F, the AVX-512 source is checked via SIMDe only\n");
    }
}

/* ---- guarded buffers -------------------------------------------------- */

/* n floats whose last one ends right before a PROT_NONE page (or, with
 * at_end = 0, starting `lead` floats into a plain allocation), so a vector
 * load or store past the end of an array faults instead of passing. */
typedef struct {
    void *base;
    size_t len;
    float *p;
} gbuf_t;

static gbuf_t gbuf_new(size_t n, int at_end, size_t lead)
{
    gbuf_t g = {0};
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t bytes = (n + lead) * sizeof(float);
    size_t data_pages = (bytes + page - 1) / page;
    g.len = (data_pages + 1) * page;
    g.base = mmap(NULL, g.len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g.base == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    char *guard = (char *)g.base + data_pages * page;
    if (mprotect(guard, page, PROT_NONE)) {
        perror("mprotect");
        exit(1);
    }
    g.p = at_end ? (float *)(void *)(guard - n * sizeof(float))
                 : (float *)(void *)g.base + lead;
    return g;
}

static void gbuf_free(gbuf_t *g)
{
    if (g->base)
        munmap(g->base, g->len);
    g->base = NULL;
}

/* ---- random data ------------------------------------------------------ */

/* Values with a spread of magnitudes (2^-e for e up to `spread`), random
 * sign, some exact zeros: products land at many scales, so a mul+add that
 * rounds twice differs from the fused chain. */
static float rnd_val(test_rng_t *r, int spread)
{
    uint64_t u = test_rng_next(r);
    if ((u & 63) == 0)
        return 0.0f;
    float m = test_rng_uniform(r, 0.5f, 1.0f);
    int e = spread ? (int)((u >> 8) % (uint64_t)(2 * spread + 1)) - spread : 0;
    float v = ldexpf(m, e);
    return (u >> 7) & 1 ? -v : v;
}

typedef struct {
    size_t rows, in, out, ldx, ldy;
    ctr_activation_t act;
    float beta;
    gbuf_t gx, gw, gb;
    const float *x, *w, *bias;
} case_t;

/* xscale moves the whole input range: 2^-66 makes products subnormal,
 * 2^60 makes chains overflow to infinities and NaNs. */
static void case_fill_scaled(case_t *c, test_rng_t *r, int guard_end, int spread, float xscale)
{
    size_t lead = 1 + (size_t)(test_rng_next(r) % 15); /* 4-byte aligned only */
    size_t nx = (c->rows - 1) * c->ldx + c->in;
    size_t nx_alloc = nx ? nx : 1, nw = c->in * c->out;
    if (nw == 0)
        nw = 1;
    c->gx = gbuf_new(nx_alloc, guard_end, lead);
    c->gw = gbuf_new(nw, guard_end, lead + 3);
    c->gb = gbuf_new(c->out, guard_end, lead + 5);
    float *x = c->gx.p, *w = c->gw.p, *b = c->gb.p;
    /* Scale so that accumulators often fall inside (-beta, beta). */
    float xs = xscale, ws = 1.0f / sqrtf((float)(c->in ? c->in : 1));
    for (size_t k = 0; k < nx; k++)
        x[k] = xs * rnd_val(r, spread);
    for (size_t k = 0; k < c->in * c->out; k++)
        w[k] = ws * rnd_val(r, spread);
    for (size_t k = 0; k < c->out; k++)
        b[k] = test_rng_uniform(r, -1.0f, 1.0f) * c->beta * (xscale < 1.0f ? xscale : 1.0f);
    c->x = x;
    c->w = w;
    c->bias = b;
}

static void case_fill(case_t *c, test_rng_t *r, int guard_end, int spread)
{
    case_fill_scaled(c, r, guard_end, spread, 1.0f);
}

static void case_free(case_t *c)
{
    gbuf_free(&c->gx);
    gbuf_free(&c->gw);
    gbuf_free(&c->gb);
}

#define SENTINEL 0x7fc0deadu

/* y for rows x ldy with every slot set to a NaN sentinel; the columns
 * out..ldy-1 must keep it. */
static float *y_new(const case_t *c, gbuf_t *g, int guard_end)
{
    size_t n = c->rows * c->ldy;
    *g = gbuf_new(n ? n : 1, guard_end, 2);
    for (size_t k = 0; k < n; k++)
        g->p[k] = bitsf(SENTINEL);
    return g->p;
}

static int y_padding_intact(const case_t *c, const float *y)
{
    for (size_t r = 0; r < c->rows; r++)
        for (size_t o = c->out; o < c->ldy; o++)
            if (fbits(y[r * c->ldy + o]) != SENTINEL)
                return 0;
    return 1;
}

/* Index of the first output whose bits differ, or -1. */
static long first_diff(const case_t *c, const float *a, const float *b)
{
    for (size_t r = 0; r < c->rows; r++)
        if (memcmp(a + r * c->ldy, b + r * c->ldy, c->out * sizeof(float)))
            for (size_t o = 0; o < c->out; o++)
                if (fbits(a[r * c->ldy + o]) != fbits(b[r * c->ldy + o]))
                    return (long)(r * c->out + o);
    return -1;
}

/* y equals ref bit for bit (outputs only, not the ldy padding). One check:
 * on a difference it shows the first differing output's two values
 * (CHECK_EQ_BITS) and then where it is and in which case. */
static int check_same_bits(const case_t *c, const float *y, const float *ref, const char *who,
                           const char *what)
{
    long d = first_diff(c, ref, y);
    size_t r = d < 0 ? 0 : (size_t)d / c->out, o = d < 0 ? 0 : (size_t)d % c->out;
    if (CHECK_EQ_BITS(y[r * c->ldy + o], ref[r * c->ldy + o]))
        return 1;
    fprintf(stderr, "  %s: %s rows=%zu in=%zu out=%zu ldx=%zu ldy=%zu act=%d beta=%g: "
            "row %zu output %zu is the first that differs\n", who, what, c->rows, c->in,
            c->out, c->ldx, c->ldy, (int)c->act, (double)c->beta, r, o);
    return 0;
}

static void run(ctr_linear_fn fn, const case_t *c, float *y)
{
    fn(c->x, c->ldx, c->rows, c->in, c->w, c->out, c->bias, c->out, y, c->ldy, c->act, c->beta);
}

/* The same chain without fusing: a*b rounded, then added. Exists only to
 * show that the data tells fused from unfused apart. */
static void run_unfused(const case_t *c, float *y)
{
    float k = ctr__smelu_scale(c->beta);
    for (size_t r = 0; r < c->rows; r++)
        for (size_t o = 0; o < c->out; o++) {
            float acc = c->bias[o];
            for (size_t i = 0; i < c->in; i++) {
                volatile float p = c->x[r * c->ldx + i] * c->w[i * c->out + o];
                acc = acc + p;
            }
            y[r * c->ldy + o] = ctr__act(acc, c->act, c->beta, k);
        }
}

/* ---- bit-exact across variants ---------------------------------------- */

static const size_t ins[] = {1, 3, 7, 8, 15, 16, 17, 31, 64, 429};
static const size_t outs[] = {1, 2, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 33, 64, 256, 512};
static const float betas[] = {0.5f, 1.0f, 2.0f};

static long unfused_diffs, middle_hits, outputs_checked, cases_run, nonfinite_hits,
    subnormal_hits;

static void check_case(case_t *c, int guard_end, const char *what)
{
    gbuf_t gref, gv;
    float *ref = y_new(c, &gref, guard_end);
    run(variants[0].fn, c, ref);
    CHECKF(y_padding_intact(c, ref), "scalar wrote past out (%s)", what);
    for (size_t v = 1; v < n_variants; v++) {
        float *y = y_new(c, &gv, guard_end);
        run(variants[v].fn, c, y);
        char who[64];
        snprintf(who, sizeof who, "%s vs scalar", variants[v].name);
        check_same_bits(c, y, ref, who, what);
        CHECKF(y_padding_intact(c, y), "%s wrote past out: %s rows=%zu in=%zu out=%zu",
               variants[v].name, what, c->rows, c->in, c->out);
        gbuf_free(&gv);
    }
    if (c->in >= 2) {
        float *y = y_new(c, &gv, 0);
        run_unfused(c, y);
        for (size_t r = 0; r < c->rows; r++)
            for (size_t o = 0; o < c->out; o++)
                unfused_diffs += fbits(y[r * c->ldy + o]) != fbits(ref[r * c->ldy + o]);
        gbuf_free(&gv);
    }
    if (c->act == CTR_ACT_SMELU)
        for (size_t r = 0; r < c->rows; r++)
            for (size_t o = 0; o < c->out; o++) {
                float v = ref[r * c->ldy + o];
                middle_hits += v > 0.0f && v < c->beta;
            }
    for (size_t r = 0; r < c->rows; r++)
        for (size_t o = 0; o < c->out; o++) {
            float v = ref[r * c->ldy + o];
            nonfinite_hits += !isfinite(v);
            subnormal_hits += v != 0.0f && fabsf(v) < FLT_MIN;
        }
    outputs_checked += (long)(c->rows * c->out);
    cases_run++;
    gbuf_free(&gref);
}

static void test_bit_exact(void)
{
    test_rng_t rng = {12345};
    for (size_t a = 0; a < CTR_ARRAY_LEN(ins); a++)
        for (size_t b = 0; b < CTR_ARRAY_LEN(outs); b++) {
            size_t in = ins[a], out = outs[b];
            size_t rows_list[90], n_rows = 0;
            if (in * out <= 4096)
                for (size_t r = 1; r <= 70; r++)
                    rows_list[n_rows++] = r;
            else
                for (int k = 0; k < 10; k++)
                    rows_list[n_rows++] = 1 + (size_t)(test_rng_next(&rng) % 70);
            rows_list[n_rows++] = 256;
            rows_list[n_rows++] = 512;
            for (size_t k = 0; k < n_rows; k++) {
                uint64_t u = test_rng_next(&rng);
                case_t c = {.rows = rows_list[k], .in = in, .out = out};
                c.ldx = in + (u & 1 ? 0 : (u >> 1) % 7);
                c.ldy = out + (u & 8 ? 0 : (u >> 4) % 5);
                c.act = (ctr_activation_t)((u >> 12) % 3);
                c.beta = betas[(u >> 16) % 3];
                int guard_end = (u >> 20) & 1;
                /* Mostly ordinary ranges; 1 in 16 subnormal products,
                 * 1 in 16 overflowing chains. */
                int mode = (int)((u >> 21) % 16);
                int spread = mode & 1 ? 12 : 3;
                float xscale = mode == 14 ? 0x1p-66f : mode == 15 ? 0x1p118f : 1.0f;
                case_fill_scaled(&c, &rng, guard_end, spread, xscale);
                check_case(&c, guard_end, "random");
                case_free(&c);
            }
        }
    printf("bit-exact: %ld cases, %ld outputs, %zu variants against scalar\n",
           cases_run, outputs_checked, n_variants - 1);
    printf("teeth: an unfused mul+add chain differs from the fused one in %ld outputs\n",
           unfused_diffs);
    CHECKF(unfused_diffs > 1000, "test data does not tell fused from unfused (%ld)",
           unfused_diffs);
    printf("smelu: %ld outputs landed in the quadratic region\n", middle_hits);
    printf("extremes: %ld outputs inf or NaN, %ld subnormal\n", nonfinite_hits, subnormal_hits);
    CHECK(nonfinite_hits > 100 && subnormal_hits > 100);
    CHECK(middle_hits > 1000);
}

/* ---- wide layers: the cache-blocked path ------------------------------- */

/* A w over 1 MB runs in passes over blocks of up to 128 inputs x 1024
 * outputs, each pass carrying the chains on from partial sums stored in y
 * (kernels_avx2.c, kernels_avx512.c). The shapes give many passes
 * (4096 inputs), uneven input splits (429 -> 108 + 3 x 107, 1031, 600),
 * one pass over several output panels (100 -> 4099), a last panel cut
 * short by out with a masked vector inside (2047, 4099, 1030), a w just
 * over the threshold (300 x 1000 is 1.2 MB) and every row shape
 * (64 = 5 x 12 + 4, 17 = 12 + 4 + 1, 23 = 12 + 8 + 3). One w per shape
 * serves every batch size. */
static void test_wide(void)
{
    /* ... and wide final layers: out == 1 transposes x 16 (AVX2: 8) inputs at a time */
    static const size_t shapes[][2] = {{4096, 2048}, {429, 4096}, {600, 2047},
                                       {300, 1000},  {100, 4099}, {1031, 1030},
                                       {2048, 1},    {129, 1},    {65, 1}};
    static const size_t rows_list[] = {1, 3, 17, 23, 64};
    test_rng_t rng = {2024};
    long before = cases_run, outputs = outputs_checked;
    for (size_t s = 0; s < CTR_ARRAY_LEN(shapes); s++) {
        case_t c = {.rows = 64, .in = shapes[s][0], .out = shapes[s][1]};
        c.ldx = c.in + s % 3;
        case_fill(&c, &rng, 1, 6);
        for (size_t k = 0; k < CTR_ARRAY_LEN(rows_list); k++) {
            uint64_t u = test_rng_next(&rng);
            case_t cr = c;
            cr.rows = rows_list[k];
            cr.x = c.x + (c.rows - cr.rows) * c.ldx; /* ends at the guard page */
            cr.ldy = c.out + (u & 1 ? 0 : 1 + (u >> 1) % 5);
            cr.act = (ctr_activation_t)((u >> 8) % 3);
            cr.beta = betas[(u >> 16) % 3];
            check_case(&cr, (u >> 20) & 1, "wide");
        }
        case_free(&c);
    }
    printf("wide: %ld cases, %ld outputs bit-exact against scalar\n", cases_run - before,
           outputs_checked - outputs);
}

/* ---- a padded weight row stride ---------------------------------------- */

/* ldw = out + 16 (what the model reader gives 256k-wide layers): every
 * variant gives the bits it gives with the packed w (ldw = out), one pass
 * and cache-blocked (1024 x 1024 is 4 MB), at several batch sizes. The
 * padding holds NaNs, and the padded w ends at a guard page: a variant
 * that read a padding float as a weight, or strode by out, would show. */
static void test_ldw(void)
{
    static const size_t shapes[][2] = {{64, 256}, {429, 256}, {129, 1024}, {1024, 1024}, {300, 512}};
    static const size_t rows_list[] = {1, 5, 16, 64};
    test_rng_t rng = {1515};
    long checked = 0;
    for (size_t s = 0; s < CTR_ARRAY_LEN(shapes); s++) {
        case_t c = {.rows = 64, .in = shapes[s][0], .out = shapes[s][1]};
        c.ldx = c.in + 1;
        c.ldy = c.out;
        case_fill(&c, &rng, 1, 6);
        const size_t ldw = c.out + 16;
        gbuf_t gp = gbuf_new(c.in * ldw, 1, 0);
        for (size_t i = 0; i < c.in; i++) {
            memcpy(gp.p + i * ldw, c.w + i * c.out, c.out * sizeof(float));
            for (size_t o = c.out; o < ldw; o++)
                gp.p[i * ldw + o] = bitsf(SENTINEL);
        }
        for (size_t k = 0; k < CTR_ARRAY_LEN(rows_list); k++) {
            case_t cr = c;
            cr.rows = rows_list[k];
            cr.act = (ctr_activation_t)(k % 3);
            cr.beta = 1.0f;
            for (size_t v = 0; v < n_variants; v++) {
                gbuf_t g0, g1;
                float *y0 = y_new(&cr, &g0, 1), *y1 = y_new(&cr, &g1, 1);
                variants[v].fn(cr.x, cr.ldx, cr.rows, cr.in, cr.w, cr.out, cr.bias, cr.out, y0,
                               cr.ldy, cr.act, cr.beta);
                variants[v].fn(cr.x, cr.ldx, cr.rows, cr.in, gp.p, ldw, cr.bias, cr.out, y1,
                               cr.ldy, cr.act, cr.beta);
                char who[64];
                snprintf(who, sizeof who, "%s ldw %zu vs ldw out", variants[v].name, ldw);
                check_same_bits(&cr, y1, y0, who, "ldw");
                checked += (long)(cr.rows * cr.out);
                gbuf_free(&g0);
                gbuf_free(&g1);
            }
#ifndef CTR_NO_BLAS
            /* sgemm's ldb: not bit-exact, so within a few rounding errors
             * (a NaN read from the padding or a wrong stride is far off) */
            const ctr_kernel_t *kb = ctr_kernel_get(CTR_KERNEL_BLAS);
            if (kb) {
                gbuf_t g0, g1;
                float *y0 = y_new(&cr, &g0, 1), *y1 = y_new(&cr, &g1, 1);
                kb->linear(cr.x, cr.ldx, cr.rows, cr.in, cr.w, cr.out, cr.bias, cr.out, y0, cr.ldy,
                           cr.act, cr.beta);
                kb->linear(cr.x, cr.ldx, cr.rows, cr.in, gp.p, ldw, cr.bias, cr.out, y1, cr.ldy,
                           cr.act, cr.beta);
                int close = 1;
                for (size_t r = 0; r < cr.rows; r++)
                    for (size_t o = 0; o < cr.out; o++) {
                        float a = y0[r * cr.ldy + o], b = y1[r * cr.ldy + o];
                        close &= isfinite(a) == isfinite(b) &&
                                 (!isfinite(a) || fabsf(a - b) <= 1e-3f * (1.0f + fabsf(a)));
                    }
                CHECKF(close, "blas ldw %zu vs ldw out: %zu x %zu, %zu rows", ldw, cr.in, cr.out, cr.rows);
                gbuf_free(&g0);
                gbuf_free(&g1);
            }
#endif
        }
        gbuf_free(&gp);
        case_free(&c);
    }
    printf("ldw: %ld outputs, every variant the same bits with rows out + 16 apart\n", checked);
}

/* ---- activation edge values through every variant --------------------- */

/* in = 0, so y = act(bias) exactly: feed the activation -0, NaN, +-beta
 * and their neighbours, infinities, through full and partial vectors. */
static void test_act_specials(void)
{
    for (size_t bi = 0; bi < CTR_ARRAY_LEN(betas); bi++) {
        const float b = betas[bi];
        float vals[] = {-0.0f, 0.0f, NAN, -NAN, INFINITY, -INFINITY, b, -b,
                        nextafterf(b, 0), nextafterf(b, INFINITY),
                        nextafterf(-b, 0), nextafterf(-b, -INFINITY), 0.5f * b,
                        -0.5f * b, FLT_MIN, -FLT_MIN, 1e-45f, -1e-45f, 3 * b, -3 * b};
        const size_t n = CTR_ARRAY_LEN(vals);
        for (int act = 0; act < 3; act++) {
            for (size_t rows = 1; rows <= 40; rows += 13) {
                case_t c = {.rows = rows, .in = 0, .out = n, .ldx = 1, .ldy = n,
                            .act = (ctr_activation_t)act, .beta = b};
                float xdummy = 1.0f, wdummy = 1.0f;
                c.x = &xdummy;
                c.w = &wdummy;
                c.bias = vals;
                check_case(&c, 0, "specials");
                /* And out == 1 (the rows-across-lanes path), one value. */
                for (size_t k = 0; k < n; k++) {
                    case_t c1 = c;
                    c1.out = 1;
                    c1.ldy = 1;
                    c1.bias = &vals[k];
                    check_case(&c1, 0, "specials out=1");
                }
            }
            float k = ctr__smelu_scale(b);
            if (act == CTR_ACT_RELU) {
                CHECK_EQ_BITS(ctr__act(-0.0f, CTR_ACT_RELU, b, k), 0.0f);
                CHECK_EQ_BITS(ctr__act(NAN, CTR_ACT_RELU, b, k), 0.0f);
            }
        }
    }
    for (size_t k = 0; k < 3; k++)
        CHECK(isnan(ctr__act(NAN, CTR_ACT_SMELU, betas[k], 1.0f)));
}

/* ---- batch invariance ------------------------------------------------- */

static void test_row_invariance(void)
{
    static const size_t shapes[][2] = {{429, 512}, {512, 256}, {256, 1}, {17, 33}, {31, 7}, {8, 2}};
    static const size_t batches[] = {1, 2, 3, 4, 5, 7, 8, 11, 12, 13, 16, 17, 23, 24, 31,
                                     32, 33, 47, 48, 63, 64, 65, 70, 100, 255, 256, 257, 512};
    test_rng_t rng = {777};
    long compared = 0;
    for (size_t s = 0; s < CTR_ARRAY_LEN(shapes); s++) {
        const size_t maxb = 512;
        case_t c = {.rows = maxb, .in = shapes[s][0], .out = shapes[s][1], .act = CTR_ACT_SMELU,
                    .beta = 1.0f};
        c.ldx = c.in + 3;
        c.ldy = c.out + 1;
        case_fill(&c, &rng, 1, 6);
        gbuf_t galone, gbatch;
        for (size_t v = 0; v < n_variants; v++) {
            /* The scalar reference on the big shapes costs seconds and is
             * row-invariant by construction; the others must prove it. */
            if (v == 0 && c.in * c.out > 64 * 64)
                continue;
            float *alone = y_new(&c, &galone, 0);
            for (size_t r = 0; r < maxb; r++)
                variants[v].fn(c.x + r * c.ldx, c.ldx, 1, c.in, c.w, c.out, c.bias, c.out,
                               alone + r * c.ldy, c.ldy, c.act, c.beta);
            for (size_t k = 0; k < CTR_ARRAY_LEN(batches); k++) {
                size_t nb = batches[k];
                /* Batches start at varying rows of the big array. */
                size_t start = (size_t)(test_rng_next(&rng) % (maxb - nb + 1));
                case_t cb = c;
                cb.rows = nb;
                cb.x = c.x + start * c.ldx;
                float *y = y_new(&cb, &gbatch, 0);
                run(variants[v].fn, &cb, y);
                char who[96];
                snprintf(who, sizeof who, "%s, rows %zu..%zu in one batch vs each alone",
                         variants[v].name, start, start + nb - 1);
                check_same_bits(&cb, y, alone + start * c.ldy, who, "row invariance");
                compared += (long)nb;
                gbuf_free(&gbatch);
            }
            gbuf_free(&galone);
        }
        case_free(&c);
    }
    printf("row invariance: %ld rows compared with the same rows scored alone\n", compared);
}

/* ---- thread invariance ------------------------------------------------ */

typedef struct {
    ctr_linear_fn fn;
    const case_t *c;
    size_t r0, r1;
    float *y;
} half_t;

static void *half_run(void *arg)
{
    half_t *h = arg;
    const case_t *c = h->c;
    h->fn(c->x + h->r0 * c->ldx, c->ldx, h->r1 - h->r0, c->in, c->w, c->out, c->bias, c->out,
          h->y + h->r0 * c->ldy, c->ldy, c->act, c->beta);
    return NULL;
}

static void test_thread_invariance(void)
{
    test_rng_t rng = {4242};
    static const size_t batch_sizes[] = {2, 7, 64, 255};
    for (size_t k = 0; k < CTR_ARRAY_LEN(batch_sizes); k++) {
        case_t c = {.rows = batch_sizes[k], .in = 429, .out = 512, .ldx = 429, .ldy = 512,
                    .act = CTR_ACT_SMELU, .beta = 1.0f};
        case_fill(&c, &rng, 0, 6);
        for (size_t v = 0; v < n_variants; v++) {
            gbuf_t g1, g2;
            float *one = y_new(&c, &g1, 0), *two = y_new(&c, &g2, 0);
            run(variants[v].fn, &c, one);
            size_t mid = c.rows / 2;
            half_t h[2] = {{variants[v].fn, &c, 0, mid, two},
                           {variants[v].fn, &c, mid, c.rows, two}};
            pthread_t t[2];
            for (int i = 0; i < 2; i++)
                CHECK(pthread_create(&t[i], NULL, half_run, &h[i]) == 0);
            for (int i = 0; i < 2; i++)
                pthread_join(t[i], NULL);
            char who[96];
            snprintf(who, sizeof who, "%s, two threads (rows 0..%zu, %zu..%zu) vs one",
                     variants[v].name, mid - 1, mid, c.rows - 1);
            check_same_bits(&c, two, one, who, "thread invariance");
            gbuf_free(&g1);
            gbuf_free(&g2);
        }
        case_free(&c);
    }
}

/* ---- BLAS: runs and is close ------------------------------------------ */

static void test_blas(void)
{
    const ctr_kernel_t *k = ctr_kernel_get(CTR_KERNEL_BLAS);
#ifdef CTR_NO_BLAS
    /* make BLAS=0: the variant is absent and selecting it says why. */
    char err[256] = "";
    CHECK(k == NULL);
    CHECK(ctr_kernel_select(CTR_KERNEL_BLAS, err, sizeof err) == NULL);
    CHECKF(strstr(err, "not built") != NULL, "blas in a BLAS=0 build: \"%s\"", err);
    printf("blas: not built in (BLAS=0): \"%s\"\n", err);
    return;
#endif
    CHECK(k && !k->bit_exact && !strcmp(k->name, "blas"));
    if (!k)
        return;
    static const size_t shapes[][3] = {{1, 429, 512}, {64, 429, 512}, {256, 512, 256},
                                       {64, 256, 1}, {1, 256, 1}, {33, 17, 31}, {5, 3, 9}};
    test_rng_t rng = {99};
    long differ = 0, total = 0;
    for (size_t s = 0; s < CTR_ARRAY_LEN(shapes); s++)
        for (int act = 0; act < 3; act++) {
            case_t c = {.rows = shapes[s][0], .in = shapes[s][1], .out = shapes[s][2],
                        .act = (ctr_activation_t)act, .beta = 1.0f};
            c.ldx = c.in + 2;
            c.ldy = c.out + 1;
            case_fill(&c, &rng, 0, 6);
            gbuf_t gr, gbl;
            float *ref = y_new(&c, &gr, 0), *y = y_new(&c, &gbl, 0);
            run(variants[0].fn, &c, ref);
            run(k->linear, &c, y);
            CHECK(y_padding_intact(&c, y));
            /* The first output outside its bound, if any, is the one checked. */
            double far_a = 0, far_b = 0, far_tol = 0;
            size_t far_r = 0, far_o = 0;
            int close = 1;
            for (size_t r = 0; r < c.rows; r++)
                for (size_t o = 0; o < c.out; o++) {
                    /* Error bound of any summation order: a few in * eps
                     * times the sum of magnitudes (act is 1-Lipschitz). */
                    double mag = fabs(c.bias[o]);
                    for (size_t i = 0; i < c.in; i++)
                        mag += fabs((double)c.x[r * c.ldx + i] * c.w[i * c.out + o]);
                    double tol = 2.0 * (double)(c.in + 1) * FLT_EPSILON * mag + 1e-30;
                    float a = ref[r * c.ldy + o], b = y[r * c.ldy + o];
                    if (close && fabs((double)a - b) > tol) {
                        close = 0;
                        far_a = b, far_b = a, far_tol = tol, far_r = r, far_o = o;
                    }
                    differ += fbits(a) != fbits(b);
                    total++;
                }
            if (!CHECK_NEAR(far_a, far_b, far_tol))
                fprintf(stderr, "  blas vs scalar: rows=%zu in=%zu out=%zu act=%d, row %zu "
                        "output %zu\n", c.rows, c.in, c.out, act, far_r, far_o);
            gbuf_free(&gr);
            gbuf_free(&gbl);
            case_free(&c);
        }
    printf("blas: within tolerance; bits differed from scalar in %ld of %ld outputs "
           "(expected: it is not bit-exact)\n", differ, total);
}

/* ---- dispatch ---------------------------------------------------------- */

static int cpuinfo_has(const char *flag)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[8192];
    int found = 0;
    if (!f)
        return -1;
    while (!found && fgets(line, sizeof(line), f))
        if (!strncmp(line, "flags", 5)) {
            char pat[64];
            snprintf(pat, sizeof(pat), " %s", flag);
            char *p = strstr(line, pat);
            found = p && (p[strlen(pat)] == ' ' || p[strlen(pat)] == '\n');
            break;
        }
    fclose(f);
    return found;
}

static void test_dispatch(void)
{
    char err[256];
    CHECK_EQ_INT(ctr_kernel_parse("auto"), CTR_KERNEL_AUTO);
    CHECK_EQ_INT(ctr_kernel_parse("scalar"), CTR_KERNEL_SCALAR);
    CHECK_EQ_INT(ctr_kernel_parse("avx2"), CTR_KERNEL_AVX2);
    CHECK_EQ_INT(ctr_kernel_parse("avx512"), CTR_KERNEL_AVX512);
    CHECK_EQ_INT(ctr_kernel_parse("blas"), CTR_KERNEL_BLAS);
    CHECK_EQ_INT(ctr_kernel_parse("AVX2"), -1);
    CHECK_EQ_INT(ctr_kernel_parse(""), -1);
    CHECK_EQ_INT(ctr_kernel_parse(NULL), -1);
    CHECK(ctr_kernel_get((ctr_kernel_id_t)99) == NULL);
    CHECK(ctr_kernel_get(CTR_KERNEL_AUTO) == NULL);

    static const char *names[] = {"scalar", "avx2", "avx512", "blas"};
    for (int id = 0; id < 4; id++) {
        const ctr_kernel_t *k = ctr_kernel_get((ctr_kernel_id_t)id);
        if (!k)
            continue;
        CHECK(k->id == (ctr_kernel_id_t)id && !strcmp(k->name, names[id]) && k->linear);
        CHECK_EQ_INT(k->bit_exact, id != CTR_KERNEL_BLAS);
        CHECK(ctr_kernel_get((ctr_kernel_id_t)id) == k); /* stable */
    }
    CHECK(ctr_kernel_get(CTR_KERNEL_SCALAR) != NULL);
    CHECK_EQ_INT(ctr_kernel_get(CTR_KERNEL_AVX2) != NULL, ctr_cpu_has_avx2_fma());
    CHECK_EQ_INT(ctr_kernel_get(CTR_KERNEL_AVX512) != NULL, ctr_cpu_has_avx512());
    /* An OS may hide AVX-512 state (then the flag is also cleared in
     * /proc/cpuinfo by Linux); the kernel's view and ours must agree. */
    int flag512 = cpuinfo_has("avx512f"), flag2 = cpuinfo_has("avx2");
    if (flag512 >= 0)
        CHECKF(flag512 == ctr_cpu_has_avx512(), "/proc/cpuinfo avx512f=%d, cpuid says %d",
               flag512, ctr_cpu_has_avx512());
    if (flag2 >= 0)
        CHECKF(flag2 == ctr_cpu_has_avx2_fma(), "/proc/cpuinfo avx2=%d, cpuid says %d",
               flag2, ctr_cpu_has_avx2_fma());
    printf("cpu: avx2+fma %d, avx512f %d\n", ctr_cpu_has_avx2_fma(), ctr_cpu_has_avx512());

    unsetenv("CTR_ISA");
    const ctr_kernel_t *k = ctr_kernel_select(CTR_KERNEL_AUTO, err, sizeof(err));
    ctr_kernel_id_t widest = ctr_cpu_has_avx512() ? CTR_KERNEL_AVX512
                             : ctr_cpu_has_avx2_fma() ? CTR_KERNEL_AVX2 : CTR_KERNEL_SCALAR;
    CHECK(k && k->bit_exact);
    CHECK_EQ_STR(k ? k->name : NULL, ctr_kernel_get(widest)->name);
    printf("auto selects: %s\n", k ? k->name : "(null)");

    setenv("CTR_ISA", "scalar", 1);
    k = ctr_kernel_select(CTR_KERNEL_AUTO, err, sizeof(err));
    CHECK(k && k->id == CTR_KERNEL_SCALAR);
    setenv("CTR_ISA", "avx2", 1);
    err[0] = 0;
    k = ctr_kernel_select(CTR_KERNEL_AUTO, err, sizeof(err));
    CHECK(ctr_cpu_has_avx2_fma() ? k && k->id == CTR_KERNEL_AVX2 : !k && err[0]);
    setenv("CTR_ISA", "avx512", 1);
    err[0] = 0;
    k = ctr_kernel_select(CTR_KERNEL_AUTO, err, sizeof(err));
    CHECK(ctr_cpu_has_avx512() ? k && k->id == CTR_KERNEL_AVX512 : !k && err[0]);
    setenv("CTR_ISA", "sse9", 1);
    err[0] = 0;
    k = ctr_kernel_select(CTR_KERNEL_AUTO, err, sizeof(err));
    CHECKF(!k && strstr(err, "sse9"), "CTR_ISA=sse9: %s", err);
    setenv("CTR_ISA", "blas", 1); /* blas is opt-in by name, never through CTR_ISA */
    k = ctr_kernel_select(CTR_KERNEL_AUTO, err, sizeof(err));
    CHECK(!k);
    unsetenv("CTR_ISA");
    /* An explicit id ignores CTR_ISA. */
    setenv("CTR_ISA", "scalar", 1);
    k = ctr_kernel_select(CTR_KERNEL_BLAS, err, sizeof(err));
#ifdef CTR_NO_BLAS
    CHECK(!k); /* not built in: test_blas checks the message */
#else
    CHECK(k && k->id == CTR_KERNEL_BLAS);
#endif
    unsetenv("CTR_ISA");
    if (!ctr_cpu_has_avx512()) {
        err[0] = 0;
        CHECK(!ctr_kernel_select(CTR_KERNEL_AVX512, err, sizeof(err)) && err[0]);
        printf("explicit avx512 on this CPU: %s\n", err);
    }
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_dispatch();
    test_smelu();
    collect_variants();
    test_act_specials();
    test_bit_exact();
    test_wide();
    test_ldw();
    test_row_invariance();
    test_thread_invariance();
    test_blas();
    return test_main_end();
}
