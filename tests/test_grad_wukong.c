/* test_grad_wukong.c - the Wukong layer's backward passes (model/grad_wukong.h).
 *
 * Gradients: every op's gradient with respect to each of its inputs and
 * parameters, computed in float by the module, against central finite
 * differences of a reference forward written here in plain loops over
 * doubles (from docs/MODEL_FORMAT.md's formulas, not from the module), so
 * a wrong formula or a wrong index fails. The loss is sum(G * output) for
 * a fixed random G, so the output's gradient is G exactly. Ops alone
 * (LayerNorm, the FM product X (X^T Y), M X), then whole layers: FMB
 * without MLP (n_in * k == n_f * d, with and without the flat LN), LCB,
 * learned or identity residual, the add and LN_d, composed in the order
 * grad_wukong.h documents, at five small shapes.
 *
 * The bound (grad_ok): |got - num| <= 1e-3 |num| + 1e-4 max|num| + 1e-6,
 * the max over the tensor. Why: the numeric gradient is in double with
 * step h = 1e-4 (truncation ~h^2 f''' / 6, rounding ~1e-16 |f| / h: both
 * far below 1e-7 at these sizes, the FM being a cubic polynomial and the
 * inputs keeping LN's variance away from 0), so what is left is the
 * float backward's own rounding: chains of at most ~100 terms at 2^-24
 * each, relative to the terms' magnitude rather than to a sum that may
 * cancel, hence the absolute floor scaled by the tensor's largest entry.
 * A real mistake (a missing path, a transposed index) is off by O(1)
 * relative; the worst error-to-bound ratio of each tensor is printed.
 *
 * Orders: every backward output against its documented chain (fmaf and
 * plain adds written out here), bit for bit.
 *
 * Determinism: the forward products and LN have the serving forward's
 * bits; a per-example result does not depend on the example's position in
 * the batch, on what else is in it, or on the scratch's previous
 * contents; the batch sums give the same bits when called again, when
 * split into row (or column) ranges, and with every bit-exact linear
 * kernel variant the machine runs. */
#include <math.h>

#include "ctr/common.h"
#include "ctr/kernels.h"
#include "grad_wukong.h"
#include "kernels_int.h"
#include "testutil.h"

#define EPS_LN 1e-5f
#define FD_H 1e-4

/* ---- helpers ----------------------------------------------------------- */

static size_t zmax(size_t a, size_t b)
{
    return a > b ? a : b;
}

static float *fbuf(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    CTR_ASSERT(p);
    return p;
}

static double *dbuf(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof(double));
    CTR_ASSERT(p);
    return p;
}

/* Garbage a function must not read: the scratch's previous contents. */
static float *dirty(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
    return p;
}

static void fill(test_rng_t *rng, float *p, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        p[i] = test_rng_uniform(rng, lo, hi);
}

static void to_double(const float *f, double *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] = f[i];
}

static int same_bits(const float *a, const float *b, size_t n, size_t *where)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float))) {
            *where = i;
            return 0;
        }
    return 1;
}

#define CHECK_BITS(a, b, n, ...)                                            \
    do {                                                                    \
        size_t at_;                                                         \
        int ok_ = same_bits((a), (b), (n), &at_);                           \
        CHECKF(ok_, __VA_ARGS__);                                           \
        if (!ok_)                                                           \
            fprintf(stderr, "  first difference at %zu: %.9g vs %.9g\n", at_, \
                    (double)(a)[at_], (double)(b)[at_]);                    \
    } while (0)

/* ---- finite differences --------------------------------------------- */

typedef double (*loss_fn)(const void *ctx, const double *p);

/* A named tensor of the parameter vector p: [off, off + len). */
typedef struct {
    const char *name;
    size_t off, len;
} seg_t;

/* The numeric gradient of f at p (p restored on return). */
static void fd_grad(loss_fn f, const void *ctx, double *p, size_t np, double *num)
{
    for (size_t i = 0; i < np; i++) {
        const double v = p[i], h = FD_H * (fabs(v) > 1.0 ? fabs(v) : 1.0);
        p[i] = v + h;
        const double up = f(ctx, p);
        p[i] = v - h;
        const double dn = f(ctx, p);
        p[i] = v;
        num[i] = (up - dn) / (2.0 * h);
    }
}

/* got (float, laid out as p) against num, tensor by tensor. */
static void grad_ok(const char *what, const seg_t *segs, size_t nseg, const float *got,
                    const double *num)
{
    for (size_t s = 0; s < nseg; s++) {
        const seg_t *g = &segs[s];
        double mx = 0, worst = 0;
        size_t worst_i = 0;
        for (size_t i = 0; i < g->len; i++)
            mx = fmax(mx, fabs(num[g->off + i]));
        int ok = 1;
        for (size_t i = 0; i < g->len; i++) {
            const double want = num[g->off + i], have = got[g->off + i];
            const double bound = 1e-3 * fabs(want) + 1e-4 * mx + 1e-6;
            const double ratio = fabs(have - want) / bound;
            if (!(ratio <= worst)) { /* NaN counts as worst */
                worst = ratio;
                worst_i = i;
            }
            if (!(ratio <= 1.0))
                ok = 0;
        }
        CHECKF(ok, "%s: d%s[%zu] = %.9g, finite differences %.9g (error %.3g of the bound)", what,
               g->name, worst_i, (double)got[g->off + worst_i], num[g->off + worst_i], worst);
        printf("  %-34s d%-7s %4zu values, max |grad| %-9.3g worst error/bound %.3g\n", what,
               g->name, g->len, mx, worst);
    }
}

/* ---- double references ---------------------------------------------- */

/* LN of one row of w: y[a] = (v[a] - mean) / sqrt(var + eps) * g[a] + b[a]. */
static void ln_ref(size_t w, const double *v, const double *g, const double *b, double eps,
                   double *y)
{
    double s = 0, q = 0;
    for (size_t a = 0; a < w; a++)
        s += v[a];
    const double mean = s / (double)w;
    for (size_t a = 0; a < w; a++)
        q += (v[a] - mean) * (v[a] - mean);
    const double inv = 1.0 / sqrt(q / (double)w + eps);
    for (size_t a = 0; a < w; a++)
        y[a] = (v[a] - mean) * inv * g[a] + b[a];
}

/* F = X (X^T Y): X [n_in][d], Y [n_in][k] -> F [n_in][k]. */
static void fm_ref(size_t n_in, size_t d, size_t k, const double *x, const double *y, double *f)
{
    double *z = dbuf(d * k);
    for (size_t a = 0; a < d; a++)
        for (size_t j = 0; j < k; j++)
            for (size_t m = 0; m < n_in; m++)
                z[a * k + j] += x[m * d + a] * y[m * k + j];
    for (size_t m = 0; m < n_in; m++)
        for (size_t j = 0; j < k; j++) {
            double s = 0;
            for (size_t a = 0; a < d; a++)
                s += x[m * d + a] * z[a * k + j];
            f[m * k + j] = s;
        }
    free(z);
}

/* out = M X: M [n_o][n_in], X [n_in][d] -> [n_o][d]. */
static void mx_ref(size_t n_o, size_t n_in, size_t d, const double *m, const double *x,
                   double *out)
{
    for (size_t o = 0; o < n_o; o++)
        for (size_t a = 0; a < d; a++) {
            double s = 0;
            for (size_t i = 0; i < n_in; i++)
                s += m[o * n_in + i] * x[i * d + a];
            out[o * d + a] = s;
        }
}

static double dot(const double *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* Every bit-exact linear variant this machine runs, scalar first. */
static size_t lin_variants(ctr_linear_fn *v, const char **names)
{
    size_t n = 0;
    const ctr_kernel_id_t ids[] = {CTR_KERNEL_SCALAR, CTR_KERNEL_AVX2, CTR_KERNEL_AVX512};
    for (size_t i = 0; i < CTR_ARRAY_LEN(ids); i++) {
        const ctr_kernel_t *k = ctr_kernel_get(ids[i]);
        if (k) {
            names[n] = k->name;
            v[n++] = k->linear;
        }
    }
    if (ctr_cpu_has_avx2_fma()) {
        names[n] = "avx512-simde";
        v[n++] = ctr__linear_avx512_simde;
    }
    return n;
}

/* ---- LayerNorm ---------------------------------------------------------- */

typedef struct {
    size_t rows, w;
    const float *G;
} ln_ctx_t;

/* p = [x [rows][w], gamma [w], beta [w]] */
static double ln_loss(const void *c, const double *p)
{
    const ln_ctx_t *ln = c;
    const size_t rows = ln->rows, w = ln->w;
    double *y = dbuf(w), loss = 0;
    for (size_t r = 0; r < rows; r++) {
        ln_ref(w, p + r * w, p + rows * w, p + rows * w + w, EPS_LN, y);
        loss += dot(y, ln->G + r * w, w);
    }
    free(y);
    return loss;
}

static void test_ln(void)
{
    const size_t shapes[][2] = {{1, 1}, {3, 2}, {4, 5}, {2, 16}, {3, 33}};
    test_rng_t rng = {21};
    for (size_t si = 0; si < CTR_ARRAY_LEN(shapes); si++) {
        const size_t rows = shapes[si][0], w = shapes[si][1], np = rows * w + 2 * w;
        float *pf = fbuf(np), *G = fbuf(rows * w), *got = fbuf(np);
        fill(&rng, pf, rows * w, -1.0f, 1.0f);
        fill(&rng, pf + rows * w, w, 0.5f, 1.5f);
        fill(&rng, pf + rows * w + w, w, -0.5f, 0.5f);
        fill(&rng, G, rows * w, -1.0f, 1.0f);
        const float *x = pf, *gamma = pf + rows * w, *beta = gamma + w;
        float *y = fbuf(rows * w), *xhat = fbuf(rows * w), *rstd = fbuf(rows), *ref = fbuf(rows * w);

        ctr__gwk_ln_fwd(rows, w, x, gamma, beta, EPS_LN, y, xhat, rstd);
        ctr__ln_rows_scalar(x, w, rows, w, gamma, beta, EPS_LN, ref, w);
        CHECK_BITS(y, ref, rows * w, "ln_fwd rows %zu w %zu: not the scalar ln_rows' bits", rows, w);
        float *inplace = fbuf(rows * w), *xh2 = fbuf(rows * w), *rs2 = fbuf(rows);
        memcpy(inplace, x, rows * w * sizeof(float));
        ctr__gwk_ln_fwd(rows, w, inplace, gamma, beta, EPS_LN, inplace, xh2, rs2);
        CHECK_BITS(inplace, ref, rows * w, "ln_fwd in place rows %zu w %zu", rows, w);

        ctr__gwk_ln_bwd(rows, w, xhat, rstd, gamma, G, got);
        ctr__gwk_ln_param_sum(rows, w, xhat, w, G, w, got + rows * w, got + rows * w + w);

        /* In place (dx == dy), strided rows, column ranges: same bits. */
        memcpy(inplace, G, rows * w * sizeof(float));
        ctr__gwk_ln_bwd(rows, w, xhat, rstd, gamma, inplace, inplace);
        CHECK_BITS(inplace, got, rows * w, "ln_bwd in place rows %zu w %zu", rows, w);
        const size_t ld = w + 3;
        float *sx = fbuf(rows * ld), *sg = fbuf(rows * ld), *dg = fbuf(w), *db = fbuf(w);
        for (size_t r = 0; r < rows; r++) {
            memcpy(sx + r * ld, xhat + r * w, w * sizeof(float));
            memcpy(sg + r * ld, G + r * w, w * sizeof(float));
        }
        const size_t a0 = w / 2;
        ctr__gwk_ln_param_sum(rows, a0, sx, ld, sg, ld, dg, db);
        ctr__gwk_ln_param_sum(rows, w - a0, sx + a0, ld, sg + a0, ld, dg + a0, db + a0);
        CHECK_BITS(dg, got + rows * w, w, "ln_param_sum dgamma strided, split at %zu (w %zu)", a0, w);
        CHECK_BITS(db, got + rows * w + w, w, "ln_param_sum dbeta strided, split at %zu (w %zu)", a0, w);

        double *p = dbuf(np), *num = dbuf(np);
        to_double(pf, p, np);
        ln_ctx_t c = {rows, w, G};
        fd_grad(ln_loss, &c, p, np, num);
        const seg_t segs[] = {{"x", 0, rows * w}, {"gamma", rows * w, w}, {"beta", rows * w + w, w}};
        char what[64];
        snprintf(what, sizeof what, "ln rows %zu w %zu", rows, w);
        grad_ok(what, segs, CTR_ARRAY_LEN(segs), got, num);
        free(pf), free(G), free(got), free(y), free(xhat), free(rstd), free(ref);
        free(inplace), free(xh2), free(rs2), free(sx), free(sg), free(dg), free(db), free(p), free(num);
    }
}

/* ---- FM product ----------------------------------------------------------- */

typedef struct {
    size_t n, n_in, d, k;
    const float *G; /* [n][n_in][k] */
} fm_ctx_t;

/* p = [X_e [n][n_in][d], Y [n_in][k]] */
static double fm_loss(const void *c, const double *p)
{
    const fm_ctx_t *fc = c;
    const size_t n_in = fc->n_in, d = fc->d, k = fc->k;
    double *f = dbuf(n_in * k), loss = 0;
    for (size_t e = 0; e < fc->n; e++) {
        fm_ref(n_in, d, k, p + e * n_in * d, p + fc->n * n_in * d, f);
        loss += dot(f, fc->G + e * n_in * k, n_in * k);
    }
    free(f);
    return loss;
}

static void test_fm(const ctr_linear_fn *lv, const char **lname, size_t nl)
{
    const size_t shapes[][3] = {{1, 1, 1}, {3, 4, 2}, {5, 3, 7}, {4, 8, 1}, {2, 1, 3}};
    const size_t n = 3;
    test_rng_t rng = {22};
    for (size_t si = 0; si < CTR_ARRAY_LEN(shapes); si++) {
        const size_t n_in = shapes[si][0], d = shapes[si][1], k = shapes[si][2];
        const size_t nx = n_in * d, np = n * nx + n_in * k;
        float *pf = fbuf(np), *G = fbuf(n * n_in * k), *got = fbuf(np), *got_e = fbuf(np);
        fill(&rng, pf, np, -1.0f, 1.0f);
        fill(&rng, G, n * n_in * k, -1.0f, 1.0f);
        const float *Y = pf + n * nx;
        const size_t ns = ctr__gwk_fm_scratch(n_in, d, k);
        float *scratch = fbuf(ns), *xt = fbuf(n * d * n_in), *z = fbuf(n * d * k);
        float *f = fbuf(n_in * k), *dz = fbuf(n * d * k), *dy_e = fbuf(n_in * k);
        float *rz = fbuf(d * k), *rf = fbuf(n_in * k);
        for (size_t e = 0; e < n; e++) {
            const float *X = pf + e * nx;
            ctr__gwk_fm_fwd(NULL, n_in, d, k, X, Y, xt + e * d * n_in, z + e * d * k, f, dirty(scratch, ns));
            /* The forward's definition, written out: chains from 0.0f. */
            for (size_t a = 0; a < d; a++)
                for (size_t j = 0; j < k; j++) {
                    float s = 0.0f;
                    for (size_t m = 0; m < n_in; m++)
                        s = fmaf(X[m * d + a], Y[m * k + j], s);
                    rz[a * k + j] = s;
                }
            for (size_t m = 0; m < n_in; m++)
                for (size_t j = 0; j < k; j++) {
                    float s = 0.0f;
                    for (size_t a = 0; a < d; a++)
                        s = fmaf(X[m * d + a], rz[a * k + j], s);
                    rf[m * k + j] = s;
                }
            CHECK_BITS(z + e * d * k, rz, d * k, "fm_fwd Z (%zu,%zu,%zu) example %zu", n_in, d, k, e);
            CHECK_BITS(f, rf, n_in * k, "fm_fwd F (%zu,%zu,%zu) example %zu", n_in, d, k, e);
            ctr__gwk_fm_bwd(NULL, n_in, d, k, X, xt + e * d * n_in, Y, z + e * d * k,
                            G + e * n_in * k, got + e * nx, dz + e * d * k, dy_e, dirty(scratch, ns));
            for (size_t i = 0; i < n_in * k; i++)
                got_e[n * nx + i] += dy_e[i];
        }
        memcpy(got_e, got, n * nx * sizeof(float));
        const size_t nss = ctr__gwk_sum_scratch(n, n_in, d, k);
        float *sscr = fbuf(nss);
        ctr__gwk_fm_dy_sum(NULL, n, n_in, d, k, pf, nx, dz, 0, n_in, got + n * nx, k, dirty(sscr, nss));

        /* Row ranges, a second call, every variant: the same bits. */
        float *dy2 = fbuf(n_in * k);
        for (size_t m0 = 0; m0 < n_in; m0 += 2)
            ctr__gwk_fm_dy_sum(NULL, n, n_in, d, k, pf, nx, dz, m0, m0 + 2 < n_in ? m0 + 2 : n_in, dy2, k,
                               dirty(sscr, nss));
        CHECK_BITS(dy2, got + n * nx, n_in * k, "fm_dy_sum in row ranges (%zu,%zu,%zu)", n_in, d, k);
        for (size_t v = 0; v < nl; v++) {
            float *dx2 = fbuf(nx), *dz2 = fbuf(d * k), *dye2 = fbuf(n_in * k);
            const size_t e = n - 1;
            ctr__gwk_fm_bwd(lv[v], n_in, d, k, pf + e * nx, xt + e * d * n_in, Y, z + e * d * k,
                            G + e * n_in * k, dx2, dz2, dye2, dirty(scratch, ns));
            CHECK_BITS(dx2, got + e * nx, nx, "fm_bwd dX with %s (%zu,%zu,%zu)", lname[v], n_in, d, k);
            CHECK_BITS(dz2, dz + e * d * k, d * k, "fm_bwd dZ with %s (%zu,%zu,%zu)", lname[v], n_in, d, k);
            CHECK_BITS(dye2, dy_e, n_in * k, "fm_bwd dY_e with %s (%zu,%zu,%zu)", lname[v], n_in, d, k);
            ctr__gwk_fm_dy_sum(lv[v], n, n_in, d, k, pf, nx, dz, 0, n_in, dy2, k, dirty(sscr, nss));
            CHECK_BITS(dy2, got + n * nx, n_in * k, "fm_dy_sum with %s (%zu,%zu,%zu)", lname[v], n_in, d, k);
            free(dx2), free(dz2), free(dye2);
        }

        double *p = dbuf(np), *num = dbuf(np);
        to_double(pf, p, np);
        fm_ctx_t c = {n, n_in, d, k, G};
        fd_grad(fm_loss, &c, p, np, num);
        const seg_t segs[] = {{"X", 0, n * nx}, {"Y", n * nx, n_in * k}};
        char what[64];
        snprintf(what, sizeof what, "fm n_in %zu d %zu k %zu", n_in, d, k);
        grad_ok(what, segs, CTR_ARRAY_LEN(segs), got, num);
        /* The per-example parts of dY, summed here, are the same gradient. */
        snprintf(what, sizeof what, "fm n_in %zu d %zu k %zu (sum dY_e)", n_in, d, k);
        grad_ok(what, segs + 1, 1, got_e, num);
        free(pf), free(G), free(got), free(got_e), free(scratch), free(xt), free(z), free(f);
        free(dz), free(dy_e), free(rz), free(rf), free(sscr), free(dy2), free(p), free(num);
    }
}

/* ---- M X ---------------------------------------------------------------- */

typedef struct {
    size_t n, n_o, n_in, d;
    const float *G; /* [n][n_o][d] */
} mx_ctx_t;

/* p = [X_e [n][n_in][d], M [n_o][n_in]] */
static double mx_loss(const void *c, const double *p)
{
    const mx_ctx_t *mc = c;
    const size_t n_o = mc->n_o, n_in = mc->n_in, d = mc->d;
    double *out = dbuf(n_o * d), loss = 0;
    for (size_t e = 0; e < mc->n; e++) {
        mx_ref(n_o, n_in, d, p + mc->n * n_in * d, p + e * n_in * d, out);
        loss += dot(out, mc->G + e * n_o * d, n_o * d);
    }
    free(out);
    return loss;
}

static void test_mx(const ctr_linear_fn *lv, const char **lname, size_t nl)
{
    const size_t shapes[][3] = {{1, 1, 1}, {3, 5, 4}, {6, 4, 2}, {2, 7, 9}, {4, 3, 1}};
    const size_t n = 3;
    test_rng_t rng = {23};
    for (size_t si = 0; si < CTR_ARRAY_LEN(shapes); si++) {
        const size_t n_o = shapes[si][0], n_in = shapes[si][1], d = shapes[si][2];
        const size_t nx = n_in * d, np = n * nx + n_o * n_in;
        float *pf = fbuf(np), *G = fbuf(n * n_o * d), *got = fbuf(np);
        fill(&rng, pf, np, -1.0f, 1.0f);
        fill(&rng, G, n * n_o * d, -1.0f, 1.0f);
        const float *M = pf + n * nx;
        const size_t ns = ctr__gwk_mx_scratch(n_in, d), ldo = d + 2;
        float *scratch = fbuf(ns), *mt = fbuf(n_in * n_o), *xt = fbuf(n * d * n_in);
        float *out = fbuf(n_o * ldo), *ref = fbuf(n_o * d);
        ctr__gwk_transpose(n_o, n_in, M, n_in, mt, n_o);
        for (size_t e = 0; e < n; e++) {
            const float *X = pf + e * nx;
            ctr__gwk_mx_fwd(NULL, n_o, n_in, d, M, X, out, ldo, dirty(scratch, ns));
            for (size_t o = 0; o < n_o; o++)
                for (size_t a = 0; a < d; a++) {
                    float s = 0.0f;
                    for (size_t i = 0; i < n_in; i++)
                        s = fmaf(M[o * n_in + i], X[i * d + a], s);
                    ref[o * d + a] = s;
                }
            for (size_t o = 0; o < n_o; o++)
                CHECK_BITS(out + o * ldo, ref + o * d, d, "mx_fwd (%zu,%zu,%zu) example %zu row %zu",
                           n_o, n_in, d, e, o);
            ctr__gwk_transpose(n_in, d, X, d, xt + e * d * n_in, n_in);
            ctr__gwk_mx_bwd(NULL, n_o, n_in, d, mt, G + e * n_o * d, got + e * nx, dirty(scratch, ns));
        }
        const size_t nss = ctr__gwk_sum_scratch(n, n_o, d, n_in);
        float *sscr = fbuf(nss), *dm2 = fbuf(n_o * n_in);
        ctr__gwk_mx_dm_sum(NULL, n, n_in, d, G, n_o * d, d, xt, 0, n_o, got + n * nx, n_in,
                           dirty(sscr, nss));
        for (size_t o = 0; o < n_o; o++)
            ctr__gwk_mx_dm_sum(NULL, n, n_in, d, G, n_o * d, d, xt, o, o + 1, dm2, n_in, dirty(sscr, nss));
        CHECK_BITS(dm2, got + n * nx, n_o * n_in, "mx_dm_sum row by row (%zu,%zu,%zu)", n_o, n_in, d);
        for (size_t v = 0; v < nl; v++) {
            float *dx2 = fbuf(nx);
            const size_t e = 1;
            ctr__gwk_mx_bwd(lv[v], n_o, n_in, d, mt, G + e * n_o * d, dx2, dirty(scratch, ns));
            CHECK_BITS(dx2, got + e * nx, nx, "mx_bwd with %s (%zu,%zu,%zu)", lname[v], n_o, n_in, d);
            ctr__gwk_mx_dm_sum(lv[v], n, n_in, d, G, n_o * d, d, xt, 0, n_o, dm2, n_in, dirty(sscr, nss));
            CHECK_BITS(dm2, got + n * nx, n_o * n_in, "mx_dm_sum with %s (%zu,%zu,%zu)", lname[v], n_o,
                       n_in, d);
            free(dx2);
        }

        double *p = dbuf(np), *num = dbuf(np);
        to_double(pf, p, np);
        mx_ctx_t c = {n, n_o, n_in, d, G};
        fd_grad(mx_loss, &c, p, np, num);
        const seg_t segs[] = {{"X", 0, n * nx}, {"M", n * nx, n_o * n_in}};
        char what[64];
        snprintf(what, sizeof what, "mx n_o %zu n_in %zu d %zu", n_o, n_in, d);
        grad_ok(what, segs, CTR_ARRAY_LEN(segs), got, num);
        free(pf), free(G), free(got), free(scratch), free(mt), free(xt), free(out), free(ref);
        free(sscr), free(dm2), free(p), free(num);
    }
}

/* ---- the documented orders --------------------------------------------- */

/* Each backward output against grad_wukong.h's formula written out with
 * fmaf and plain adds: the summation orders are the contract the trainer
 * relies on, so they are checked to the bit, not only to a tolerance. */
static void test_orders(void)
{
    const size_t shapes[][4] = {{3, 4, 2, 5}, {5, 3, 7, 2}, {1, 6, 1, 1}}; /* n_in, d, k, n_o */
    const size_t n = 3;
    test_rng_t rng = {25};
    for (size_t si = 0; si < CTR_ARRAY_LEN(shapes); si++) {
        const size_t n_in = shapes[si][0], d = shapes[si][1], k = shapes[si][2], n_o = shapes[si][3];
        const size_t nx = n_in * d;
        float *X = fbuf(n * nx), *Y = fbuf(n_in * k), *dF = fbuf(n * n_in * k), *M = fbuf(n_o * n_in);
        float *dO = fbuf(n * n_o * d), *dx0 = fbuf(nx);
        fill(&rng, X, n * nx, -1.0f, 1.0f);
        fill(&rng, Y, n_in * k, -1.0f, 1.0f);
        fill(&rng, dF, n * n_in * k, -1.0f, 1.0f);
        fill(&rng, M, n_o * n_in, -1.0f, 1.0f);
        fill(&rng, dO, n * n_o * d, -1.0f, 1.0f);
        fill(&rng, dx0, nx, -1.0f, 1.0f); /* dx += ...: a nonzero start */
        const size_t ns = zmax(ctr__gwk_fm_scratch(n_in, d, k), ctr__gwk_mx_scratch(n_in, d));
        const size_t nss = zmax(ctr__gwk_sum_scratch(n, n_in, d, k), ctr__gwk_sum_scratch(n, n_o, d, n_in));
        float *scr = fbuf(ns), *sscr = fbuf(nss), *xt = fbuf(n * d * n_in), *z = fbuf(d * k);
        float *F = fbuf(n_in * k), *dz = fbuf(n * d * k), *dx = fbuf(nx), *dye = fbuf(n_in * k);
        float *want = fbuf(zmax(zmax(nx, n_o * n_in), n_in * k)), *got = fbuf(zmax(n_o * n_in, n_in * k));
        float *mt = fbuf(n_in * n_o);
        ctr__gwk_transpose(n_o, n_in, M, n_in, mt, n_o);

        for (size_t e = 0; e < n; e++) {
            const float *Xe = X + e * nx, *dFe = dF + e * n_in * k;
            float *dze = dz + e * d * k;
            ctr__gwk_fm_fwd(NULL, n_in, d, k, Xe, Y, xt + e * d * n_in, z, F, dirty(scr, ns));
            memcpy(dx, dx0, nx * sizeof(float));
            ctr__gwk_fm_bwd(NULL, n_in, d, k, Xe, xt + e * d * n_in, Y, z, dFe, dx, dze, dye, dirty(scr, ns));
            for (size_t a = 0; a < d; a++)
                for (size_t j = 0; j < k; j++) {
                    float acc = 0.0f;
                    for (size_t m = 0; m < n_in; m++)
                        acc = fmaf(Xe[m * d + a], dFe[m * k + j], acc);
                    want[a * k + j] = acc;
                }
            CHECK_BITS(dze, want, d * k, "fm_bwd dZ order (%zu,%zu,%zu)", n_in, d, k);
            for (size_t m = 0; m < n_in; m++)
                for (size_t a = 0; a < d; a++) {
                    float acc = 0.0f;
                    for (size_t j = 0; j < k; j++)
                        acc = fmaf(dFe[m * k + j], z[a * k + j], acc);
                    for (size_t j = 0; j < k; j++)
                        acc = fmaf(Y[m * k + j], dze[a * k + j], acc);
                    want[m * d + a] = dx0[m * d + a] + acc;
                }
            CHECK_BITS(dx, want, nx, "fm_bwd dX order (%zu,%zu,%zu)", n_in, d, k);
            for (size_t m = 0; m < n_in; m++)
                for (size_t j = 0; j < k; j++) {
                    float acc = 0.0f;
                    for (size_t a = 0; a < d; a++)
                        acc = fmaf(Xe[m * d + a], dze[a * k + j], acc);
                    want[m * k + j] = acc;
                }
            CHECK_BITS(dye, want, n_in * k, "fm_bwd dY_e order (%zu,%zu,%zu)", n_in, d, k);

            const float *dOe = dO + e * n_o * d;
            memcpy(dx, dx0, nx * sizeof(float));
            ctr__gwk_mx_bwd(NULL, n_o, n_in, d, mt, dOe, dx, dirty(scr, ns));
            for (size_t i = 0; i < n_in; i++)
                for (size_t a = 0; a < d; a++) {
                    float acc = 0.0f;
                    for (size_t o = 0; o < n_o; o++)
                        acc = fmaf(M[o * n_in + i], dOe[o * d + a], acc);
                    want[i * d + a] = dx0[i * d + a] + acc;
                }
            CHECK_BITS(dx, want, nx, "mx_bwd order (%zu,%zu,%zu)", n_o, n_in, d);
        }

        ctr__gwk_fm_dy_sum(NULL, n, n_in, d, k, X, nx, dz, 0, n_in, got, k, dirty(sscr, nss));
        for (size_t m = 0; m < n_in; m++)
            for (size_t j = 0; j < k; j++) {
                float acc = 0.0f;
                for (size_t e = 0; e < n; e++)
                    for (size_t a = 0; a < d; a++)
                        acc = fmaf(X[e * nx + m * d + a], dz[e * d * k + a * k + j], acc);
                want[m * k + j] = acc;
            }
        CHECK_BITS(got, want, n_in * k, "fm_dy_sum order (%zu,%zu,%zu)", n_in, d, k);
        ctr__gwk_mx_dm_sum(NULL, n, n_in, d, dO, n_o * d, d, xt, 0, n_o, got, n_in, dirty(sscr, nss));
        for (size_t o = 0; o < n_o; o++)
            for (size_t i = 0; i < n_in; i++) {
                float acc = 0.0f;
                for (size_t e = 0; e < n; e++)
                    for (size_t a = 0; a < d; a++)
                        acc = fmaf(dO[e * n_o * d + o * d + a], X[e * nx + i * d + a], acc);
                want[o * n_in + i] = acc;
            }
        CHECK_BITS(got, want, n_o * n_in, "mx_dm_sum order (%zu,%zu,%zu)", n_o, n_in, d);

        /* LN over the n * n_in rows of X (w = d), dy = dO's first values. */
        const size_t rows = n * n_in, w = d;
        float *gamma = fbuf(w), *beta = fbuf(w), *y = fbuf(rows * w), *xh = fbuf(rows * w);
        float *rs = fbuf(rows), *dl = fbuf(rows * w), *dg = fbuf(w), *db = fbuf(w), *wl = fbuf(rows * w);
        float *wg = fbuf(w), *wb = fbuf(w), *dy = fbuf(rows * w);
        fill(&rng, gamma, w, 0.5f, 1.5f);
        fill(&rng, beta, w, -0.5f, 0.5f);
        fill(&rng, dy, rows * w, -1.0f, 1.0f);
        ctr__gwk_ln_fwd(rows, w, X, gamma, beta, EPS_LN, y, xh, rs);
        ctr__gwk_ln_bwd(rows, w, xh, rs, gamma, dy, dl);
        ctr__gwk_ln_param_sum(rows, w, xh, w, dy, w, dg, db);
        for (size_t r = 0; r < rows; r++) {
            float s1 = 0.0f, s2 = 0.0f;
            for (size_t a = 0; a < w; a++) {
                s1 = s1 + dy[r * w + a] * gamma[a];
                s2 = fmaf(dy[r * w + a] * gamma[a], xh[r * w + a], s2);
            }
            const float m1 = s1 / (float)w, m2 = s2 / (float)w;
            for (size_t a = 0; a < w; a++)
                wl[r * w + a] = (dy[r * w + a] * gamma[a] - fmaf(xh[r * w + a], m2, m1)) * rs[r];
        }
        for (size_t a = 0; a < w; a++) {
            wg[a] = wb[a] = 0.0f;
            for (size_t r = 0; r < rows; r++) {
                wg[a] = fmaf(dy[r * w + a], xh[r * w + a], wg[a]);
                wb[a] = wb[a] + dy[r * w + a];
            }
        }
        CHECK_BITS(dl, wl, rows * w, "ln_bwd order (w %zu)", w);
        CHECK_BITS(dg, wg, w, "ln_param_sum dgamma order (w %zu)", w);
        CHECK_BITS(db, wb, w, "ln_param_sum dbeta order (w %zu)", w);

        free(X), free(Y), free(dF), free(M), free(dO), free(dx0), free(scr), free(sscr), free(xt);
        free(z), free(F), free(dz), free(dx), free(dye), free(want), free(got), free(mt);
        free(gamma), free(beta), free(y), free(xh), free(rs), free(dl), free(dg), free(db), free(wl);
        free(wg), free(wb), free(dy);
    }
    printf("orders: every backward output has the bits of its documented chain\n");
}

/* ---- a whole layer ---------------------------------------------------- */

typedef struct {
    size_t n_in, n_f, n_l, k, d;
    int res, flat;
} layer_shape_t;

/* Offsets of each tensor in the parameter vector. */
typedef struct {
    size_t x, y, wl, res, g, b, fg, fb, np;
} layer_off_t;

static layer_off_t layer_offsets(const layer_shape_t *s, size_t n)
{
    const size_t n_out = s->n_f + s->n_l, nk = s->n_in * s->k;
    layer_off_t o;
    o.x = 0;
    o.y = o.x + n * s->n_in * s->d;
    o.wl = o.y + nk;
    o.res = o.wl + s->n_l * s->n_in;
    o.g = o.res + (s->res ? n_out * s->n_in : 0);
    o.b = o.g + s->d;
    o.fg = o.b + s->d;
    o.fb = o.fg + (s->flat ? nk : 0);
    o.np = o.fb + (s->flat ? nk : 0);
    return o;
}

typedef struct {
    const layer_shape_t *s;
    size_t n;
    const float *G; /* [n][n_out][d] */
} layer_ctx_t;

/* The layer in doubles, from MODEL_FORMAT.md's "arch wukong". */
static double layer_loss(const void *c, const double *p)
{
    const layer_ctx_t *lc = c;
    const layer_shape_t *s = lc->s;
    const layer_off_t o = layer_offsets(s, lc->n);
    const size_t n_in = s->n_in, d = s->d, k = s->k, n_out = s->n_f + s->n_l;
    double *f = dbuf(n_in * k), *S = dbuf(n_out * d), *R = dbuf(n_out * d), *out = dbuf(d), loss = 0;
    for (size_t e = 0; e < lc->n; e++) {
        const double *X = p + o.x + e * n_in * d;
        fm_ref(n_in, d, k, X, p + o.y, f);
        if (s->flat)
            ln_ref(n_in * k, f, p + o.fg, p + o.fb, EPS_LN, f);
        memcpy(S, f, s->n_f * d * sizeof(double)); /* n_in * k == n_f * d */
        mx_ref(s->n_l, n_in, d, p + o.wl, X, S + s->n_f * d);
        if (s->res)
            mx_ref(n_out, n_in, d, p + o.res, X, R);
        else
            memcpy(R, X, n_out * d * sizeof(double));
        for (size_t i = 0; i < n_out * d; i++)
            S[i] += R[i];
        for (size_t m = 0; m < n_out; m++) {
            ln_ref(d, S + m * d, p + o.g, p + o.b, EPS_LN, out);
            loss += dot(out, lc->G + (e * n_out + m) * d, d);
        }
    }
    free(f), free(S), free(R), free(out);
    return loss;
}

/* What the float path keeps and gives, for n examples. */
typedef struct {
    float *xt, *z, *F, *f, *fxh, *frs, *S, *R, *xn, *xh, *rs;  /* forward */
    float *dS, *dF, *dz, *dx;                                 /* per example */
    float *grad;                                              /* laid out as p */
    float *scratch, *sscr, *wlt, *rest;
    size_t ns, nss;
} layer_run_t;

static void layer_alloc(layer_run_t *r, const layer_shape_t *s, size_t n)
{
    const size_t n_in = s->n_in, d = s->d, k = s->k, n_out = s->n_f + s->n_l, nk = n_in * k;
    r->xt = fbuf(n * d * n_in);
    r->z = fbuf(n * d * k);
    r->F = fbuf(n * nk);
    r->f = fbuf(n * nk);
    r->fxh = fbuf(n * nk);
    r->frs = fbuf(n);
    r->S = fbuf(n * n_out * d);
    r->R = fbuf(n_out * d);
    r->xn = fbuf(n * n_out * d);
    r->xh = fbuf(n * n_out * d);
    r->rs = fbuf(n * n_out);
    r->dS = fbuf(n * n_out * d);
    r->dF = fbuf(nk);
    r->dz = fbuf(n * d * k);
    r->grad = fbuf(layer_offsets(s, n).np);
    r->dx = r->grad; /* dX_e is the first tensor of the gradient */
    r->ns = zmax(ctr__gwk_fm_scratch(n_in, d, k), ctr__gwk_mx_scratch(n_in, d));
    r->nss = zmax(ctr__gwk_sum_scratch(n, n_in, d, k), ctr__gwk_sum_scratch(n, n_out, d, n_in));
    r->scratch = fbuf(r->ns);
    r->sscr = fbuf(r->nss);
    r->wlt = fbuf(n_in * s->n_l);
    r->rest = fbuf(n_in * n_out);
}

static void layer_free(layer_run_t *r)
{
    float *all[] = {r->xt, r->z, r->F, r->f, r->fxh, r->frs, r->S, r->R, r->xn, r->xh, r->rs,
                    r->dS, r->dF, r->dz, r->grad, r->scratch, r->sscr, r->wlt, r->rest};
    for (size_t i = 0; i < CTR_ARRAY_LEN(all); i++)
        free(all[i]);
}

/* The layer in float through the module, forward and backward of every
 * example (phase A), then the batch sums (phase B), in grad_wukong.h's
 * order. p holds the parameters laid out as layer_offsets says. */
static void layer_run(layer_run_t *r, const layer_shape_t *s, size_t n, const float *p,
                      const float *G, ctr_linear_fn lin)
{
    const layer_off_t o = layer_offsets(s, n);
    const size_t n_in = s->n_in, d = s->d, k = s->k, n_f = s->n_f, n_l = s->n_l;
    const size_t n_out = n_f + n_l, nk = n_in * k, nx = n_in * d, no = n_out * d;
    const float *Y = p + o.y, *WL = p + o.wl, *RES = p + o.res;
    ctr__gwk_transpose(n_l, n_in, WL, n_in, r->wlt, n_l);
    if (s->res)
        ctr__gwk_transpose(n_out, n_in, RES, n_in, r->rest, n_out);
    for (size_t e = 0; e < n; e++) {
        const float *X = p + o.x + e * nx;
        float *xt = r->xt + e * d * n_in, *z = r->z + e * d * k, *F = r->F + e * nk;
        float *f = r->f + e * nk, *S = r->S + e * no, *dS = r->dS + e * no;
        float *dx = r->dx + e * nx, *scr = dirty(r->scratch, r->ns);
        ctr__gwk_fm_fwd(lin, n_in, d, k, X, Y, xt, z, F, scr);
        if (s->flat)
            ctr__gwk_ln_fwd(1, nk, F, p + o.fg, p + o.fb, EPS_LN, f, r->fxh + e * nk, r->frs + e);
        else
            memcpy(f, F, nk * sizeof(float));
        memcpy(S, f, n_f * d * sizeof(float));
        ctr__gwk_mx_fwd(lin, n_l, n_in, d, WL, X, S + n_f * d, d, scr);
        if (s->res)
            ctr__gwk_mx_fwd(lin, n_out, n_in, d, RES, X, r->R, d, scr);
        else
            memcpy(r->R, X, no * sizeof(float));
        for (size_t i = 0; i < no; i++)
            S[i] = S[i] + r->R[i];
        ctr__gwk_ln_fwd(n_out, d, S, p + o.g, p + o.b, EPS_LN, r->xn + e * no, r->xh + e * no,
                        r->rs + e * n_out);

        ctr__gwk_ln_bwd(n_out, d, r->xh + e * no, r->rs + e * n_out, p + o.g, G + e * no, dS);
        if (s->res) {
            memset(dx, 0, nx * sizeof(float));
            ctr__gwk_mx_bwd(lin, n_out, n_in, d, r->rest, dS, dx, scr);
        } else {
            memcpy(dx, dS, nx * sizeof(float));
        }
        ctr__gwk_mx_bwd(lin, n_l, n_in, d, r->wlt, dS + n_f * d, dx, scr);
        if (s->flat)
            ctr__gwk_ln_bwd(1, nk, r->fxh + e * nk, r->frs + e, p + o.fg, dS, r->dF);
        else
            memcpy(r->dF, dS, nk * sizeof(float));
        ctr__gwk_fm_bwd(lin, n_in, d, k, X, xt, Y, z, r->dF, dx, r->dz + e * d * k, NULL, scr);
    }
    float *g = r->grad;
    ctr__gwk_fm_dy_sum(lin, n, n_in, d, k, p + o.x, nx, r->dz, 0, n_in, g + o.y, k, dirty(r->sscr, r->nss));
    ctr__gwk_mx_dm_sum(lin, n, n_in, d, r->dS + n_f * d, no, d, r->xt, 0, n_l, g + o.wl, n_in,
                       dirty(r->sscr, r->nss));
    if (s->res)
        ctr__gwk_mx_dm_sum(lin, n, n_in, d, r->dS, no, d, r->xt, 0, n_out, g + o.res, n_in,
                           dirty(r->sscr, r->nss));
    ctr__gwk_ln_param_sum(n * n_out, d, r->xh, d, G, d, g + o.g, g + o.b);
    if (s->flat) /* dF' of example e: the first n_f * d values of its dS */
        ctr__gwk_ln_param_sum(n, nk, r->fxh, nk, r->dS, no, g + o.fg, g + o.fb);
}

static void test_layers(const ctr_linear_fn *lv, const char **lname, size_t nl)
{
    const layer_shape_t shapes[] = {
        /* d >= 3: a 2-wide LN's output is +-1 up to eps, its input
         * gradient eps-sized noise, too small to check anything. */
        {3, 4, 2, 4, 3, 1, 1}, /* n_in * k = 12 = 4 * 3; res 6 x 3; flat LN */
        {4, 2, 2, 2, 4, 0, 1}, /* n_out == n_in: identity residual; flat LN */
        {2, 2, 3, 3, 3, 1, 1}, /* 6 = 2 * 3; res 5 x 2 */
        {3, 3, 1, 4, 4, 1, 0}, /* 12 = 3 * 4; res 4 x 3, no flat LN */
        {6, 3, 3, 2, 4, 0, 0}, /* 12 = 3 * 4; identity, no flat LN */
    };
    const size_t n = 3;
    test_rng_t rng = {24};
    for (size_t si = 0; si < CTR_ARRAY_LEN(shapes); si++) {
        const layer_shape_t *s = &shapes[si];
        const layer_off_t o = layer_offsets(s, n);
        const size_t n_out = s->n_f + s->n_l, nx = s->n_in * s->d, no = n_out * s->d;
        CTR_ASSERT(s->n_in * s->k == s->n_f * s->d && (s->res || n_out == s->n_in));
        float *pf = fbuf(o.np), *G = fbuf(n * no);
        fill(&rng, pf, o.np, -1.0f, 1.0f);
        /* Scales that keep every LN's input well spread: X and the
         * residual dominate S; gammas near 1. */
        for (size_t i = o.y; i < o.wl; i++)
            pf[i] *= 0.5f;
        fill(&rng, pf + o.g, s->d, 0.5f, 1.5f);
        if (s->flat)
            fill(&rng, pf + o.fg, s->n_in * s->k, 0.5f, 1.5f);
        fill(&rng, G, n * no, -1.0f, 1.0f);

        layer_run_t r;
        layer_alloc(&r, s, n);
        layer_run(&r, s, n, pf, G, NULL);

        double *p = dbuf(o.np), *num = dbuf(o.np);
        to_double(pf, p, o.np);
        layer_ctx_t c = {s, n, G};
        fd_grad(layer_loss, &c, p, o.np, num);
        seg_t segs[8];
        size_t ns = 0;
        segs[ns++] = (seg_t){"X", o.x, o.y - o.x};
        segs[ns++] = (seg_t){"Y", o.y, o.wl - o.y};
        segs[ns++] = (seg_t){"W_L", o.wl, o.res - o.wl};
        if (s->res)
            segs[ns++] = (seg_t){"res", o.res, o.g - o.res};
        segs[ns++] = (seg_t){"gamma", o.g, s->d};
        segs[ns++] = (seg_t){"beta", o.b, s->d};
        if (s->flat) {
            segs[ns++] = (seg_t){"fgamma", o.fg, o.fb - o.fg};
            segs[ns++] = (seg_t){"fbeta", o.fb, o.np - o.fb};
        }
        char what[96];
        snprintf(what, sizeof what, "layer %zu->%zu+%zu k %zu d %zu%s%s", s->n_in, s->n_f, s->n_l,
                 s->k, s->d, s->res ? " res" : "", s->flat ? " flat" : "");
        grad_ok(what, segs, ns, r.grad, num);

        /* The forward agrees with the double layer (a sanity check of the
         * composition the gradients are taken of). */
        {
            double *pd = p, loss = layer_loss(&c, pd), fl = 0;
            for (size_t i = 0; i < n * no; i++)
                fl += (double)r.xn[i] * G[i];
            CHECK_NEAR(fl, loss, 1e-4 * (1 + fabs(loss)));
        }

        /* Every variant, same bits; a second run, same bits. */
        for (size_t v = 0; v < nl; v++) {
            layer_run_t r2;
            layer_alloc(&r2, s, n);
            layer_run(&r2, s, n, pf, G, lv[v]);
            CHECK_BITS(r2.grad, r.grad, o.np, "%s: gradients with %s", what, lname[v]);
            CHECK_BITS(r2.xn, r.xn, n * no, "%s: forward with %s", what, lname[v]);
            layer_free(&r2);
        }

        /* Position: example 0 moved to the end of a batch of other examples
         * ([A, B, C] -> [B', C', A] with B', C' new); its dX, dS, dZ and
         * forward stay bit for bit. */
        {
            float *q = fbuf(o.np), *G2 = fbuf(n * no);
            memcpy(q, pf, o.np * sizeof(float));
            fill(&rng, q, (n - 1) * nx, -1.0f, 1.0f);
            memcpy(q + (n - 1) * nx, pf, nx * sizeof(float));
            fill(&rng, G2, (n - 1) * no, -1.0f, 1.0f);
            memcpy(G2 + (n - 1) * no, G, no * sizeof(float));
            layer_run_t r3;
            layer_alloc(&r3, s, n);
            layer_run(&r3, s, n, q, G2, NULL);
            CHECK_BITS(r3.dx + (n - 1) * nx, r.dx, nx, "%s: dX of an example moved in the batch", what);
            CHECK_BITS(r3.dS + (n - 1) * no, r.dS, no, "%s: dS of an example moved in the batch", what);
            CHECK_BITS(r3.dz + (n - 1) * s->d * s->k, r.dz, s->d * s->k,
                       "%s: dZ of an example moved in the batch", what);
            CHECK_BITS(r3.xn + (n - 1) * no, r.xn, no, "%s: X' of an example moved in the batch", what);
            layer_free(&r3);
            free(q), free(G2);
        }
        layer_free(&r);
        free(pf), free(G), free(p), free(num);
    }
}

int main(void)
{
    ctr_linear_fn lv[8];
    const char *lname[8];
    size_t nl = lin_variants(lv, lname);
    printf("linear variants:");
    for (size_t i = 0; i < nl; i++)
        printf(" %s", lname[i]);
    printf("\n");
    test_ln();
    test_fm(lv, lname, nl);
    test_mx(lv, lname, nl);
    test_orders();
    test_layers(lv, lname, nl);
    printf("%d checks\n", ctr_test_checks);
    return test_main_end();
}
