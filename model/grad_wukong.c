/* grad_wukong.c - backward passes of the Wukong layer's operations (the
 * contracts, shapes and summation orders are in grad_wukong.h).
 *
 * Every product is a ctr_linear_fn call over operands laid out so that
 * each output is one fma chain from a zero bias in the documented order:
 * the chain is the kernel's (ascending input index), so the order is
 * chosen by how the operands are laid out, never by the variant. The
 * few layout copies (transposes, gathers, concatenations) cost a small
 * fraction of the products they feed. */
#include <math.h>
#include <string.h>

#include "grad_wukong.h"
#include "kernels_int.h"

static ctr_linear_fn lin_or_scalar(ctr_linear_fn lin)
{
    return lin ? lin : ctr__linear_scalar;
}

static float *zeros(float *p, size_t n)
{
    memset(p, 0, n * sizeof(float));
    return p;
}

static size_t max2(size_t a, size_t b)
{
    return a > b ? a : b;
}

void ctr__gwk_transpose(size_t rows, size_t cols, const float *src, size_t lds, float *dst,
                        size_t ldd)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++)
            dst[c * ldd + r] = src[r * lds + c];
}

/* ---- LayerNorm ------------------------------------------------------- */

void ctr__gwk_ln_fwd(size_t rows, size_t w, const float *x, const float *gamma,
                     const float *beta, float eps, float *y, float *xhat, float *rstd)
{
    const float fw = (float)w;
    for (size_t r = 0; r < rows; r++) {
        const float *v = x + r * w;
        float *yr = y + r * w, *hr = xhat + r * w;
        float sum = 0.0f;
        for (size_t a = 0; a < w; a++)
            sum += v[a];
        const float mean = sum / fw;
        float sq = 0.0f;
        for (size_t a = 0; a < w; a++) {
            const float t = v[a] - mean;
            sq = fmaf(t, t, sq);
        }
        const float var = sq / fw;
        const float inv = 1.0f / sqrtf(var + eps);
        /* xhat first, all of it: y may be x. */
        for (size_t a = 0; a < w; a++)
            hr[a] = (v[a] - mean) * inv;
        for (size_t a = 0; a < w; a++)
            yr[a] = fmaf(hr[a], gamma[a], beta[a]);
        rstd[r] = inv;
    }
}

void ctr__gwk_ln_bwd(size_t rows, size_t w, const float *xhat, const float *rstd,
                     const float *gamma, const float *dy, float *dx)
{
    const float fw = (float)w;
    for (size_t r = 0; r < rows; r++) {
        const float *hr = xhat + r * w, *gr = dy + r * w;
        float *dr = dx + r * w;
        float s1 = 0.0f, s2 = 0.0f;
        for (size_t a = 0; a < w; a++) {
            const float g = gr[a] * gamma[a];
            s1 += g;
            s2 = fmaf(g, hr[a], s2);
        }
        const float m1 = s1 / fw, m2 = s2 / fw, inv = rstd[r];
        /* g is recomputed from dy[a] before dx[a] is written: dx may be dy. */
        for (size_t a = 0; a < w; a++) {
            const float g = gr[a] * gamma[a];
            dr[a] = (g - fmaf(hr[a], m2, m1)) * inv;
        }
    }
}

void ctr__gwk_ln_param_sum(size_t rows, size_t w, const float *xhat, size_t ldx,
                           const float *dy, size_t ldy, float *dgamma, float *dbeta)
{
    for (size_t a = 0; a < w; a++)
        dgamma[a] = dbeta[a] = 0.0f;
    /* Row-major walk: each column's two chains still go r = 0, 1, ... */
    for (size_t r = 0; r < rows; r++) {
        const float *hr = xhat + r * ldx, *gr = dy + r * ldy;
        for (size_t a = 0; a < w; a++) {
            dgamma[a] = fmaf(gr[a], hr[a], dgamma[a]);
            dbeta[a] += gr[a];
        }
    }
}

/* ---- FM product -------------------------------------------------------- */

size_t ctr__gwk_fm_scratch(size_t n_in, size_t d, size_t k)
{
    return max2(d, k) + 2 * k * (n_in + d) + n_in * d;
}

void ctr__gwk_fm_fwd(ctr_linear_fn lin, size_t n_in, size_t d, size_t k, const float *x,
                     const float *y, float *xt, float *z, float *f, float *scratch)
{
    lin = lin_or_scalar(lin);
    const float *zero = zeros(scratch, k);
    ctr__gwk_transpose(n_in, d, x, d, xt, n_in);
    lin(xt, n_in, d, n_in, y, k, zero, k, z, k, CTR_ACT_NONE, 1.0f);
    lin(x, d, n_in, d, z, k, zero, k, f, k, CTR_ACT_NONE, 1.0f);
}

void ctr__gwk_fm_bwd(ctr_linear_fn lin, size_t n_in, size_t d, size_t k, const float *x,
                     const float *xt, const float *y, const float *z, const float *df,
                     float *dx, float *dz, float *dy_e, float *scratch)
{
    lin = lin_or_scalar(lin);
    const size_t k2 = 2 * k;
    float *zero = zeros(scratch, max2(d, k));
    float *cat = zero + max2(d, k);        /* [n_in][2k]: [dF | Y] */
    float *wcat = cat + n_in * k2;         /* [2k][d]: [Z^T; dZ^T] */
    float *tmp = wcat + k2 * d;            /* [n_in][d] */

    lin(xt, n_in, d, n_in, df, k, zero, k, dz, k, CTR_ACT_NONE, 1.0f);
    for (size_t m = 0; m < n_in; m++) {
        memcpy(cat + m * k2, df + m * k, k * sizeof(float));
        memcpy(cat + m * k2 + k, y + m * k, k * sizeof(float));
    }
    ctr__gwk_transpose(d, k, z, k, wcat, d);
    ctr__gwk_transpose(d, k, dz, k, wcat + k * d, d);
    lin(cat, k2, n_in, k2, wcat, d, zero, d, tmp, d, CTR_ACT_NONE, 1.0f);
    for (size_t i = 0; i < n_in * d; i++)
        dx[i] += tmp[i];
    if (dy_e)
        lin(x, d, n_in, d, dz, k, zero, k, dy_e, k, CTR_ACT_NONE, 1.0f);
}

void ctr__gwk_fm_dy_sum(ctr_linear_fn lin, size_t n, size_t n_in, size_t d, size_t k,
                        const float *x, size_t ldx_ex, const float *dz_stack, size_t m0,
                        size_t m1, float *dy, size_t ldy, float *scratch)
{
    (void)n_in; /* the shape of X_e; the rows taken are m0..m1-1 */
    ctr__gwk_sum_ex(lin, n, d, x, ldx_ex, d, m0, m1, dz_stack, k, dy, ldy, scratch);
}

/* ---- M X ----------------------------------------------------------------- */

size_t ctr__gwk_mx_scratch(size_t n_in, size_t d)
{
    return d + n_in * d;
}

void ctr__gwk_mx_fwd(ctr_linear_fn lin, size_t n_o, size_t n_in, size_t d, const float *m,
                     const float *x, float *out, size_t ldo, float *scratch)
{
    lin = lin_or_scalar(lin);
    lin(m, n_in, n_o, n_in, x, d, zeros(scratch, d), d, out, ldo, CTR_ACT_NONE, 1.0f);
}

void ctr__gwk_mx_bwd(ctr_linear_fn lin, size_t n_o, size_t n_in, size_t d, const float *mt,
                     const float *dout, float *dx, float *scratch)
{
    lin = lin_or_scalar(lin);
    float *zero = zeros(scratch, d), *tmp = scratch + d;
    lin(mt, n_o, n_in, n_o, dout, d, zero, d, tmp, d, CTR_ACT_NONE, 1.0f);
    for (size_t i = 0; i < n_in * d; i++)
        dx[i] += tmp[i];
}

void ctr__gwk_mx_dm_sum(ctr_linear_fn lin, size_t n, size_t n_in, size_t d,
                        const float *dout, size_t ldd_ex, size_t ldd, const float *xt_stack,
                        size_t o0, size_t o1, float *dm, size_t ldm, float *scratch)
{
    ctr__gwk_sum_ex(lin, n, d, dout, ldd_ex, ldd, o0, o1, xt_stack, n_in, dm, ldm, scratch);
}

/* ---- batch sums ---------------------------------------------------------- */

size_t ctr__gwk_sum_scratch(size_t n, size_t rows, size_t d, size_t cols)
{
    return rows * n * d + cols;
}

void ctr__gwk_sum_ex(ctr_linear_fn lin, size_t n, size_t d, const float *a, size_t lda_ex,
                     size_t lda, size_t r0, size_t r1, const float *stack, size_t cols,
                     float *out, size_t ldo, float *scratch)
{
    if (r1 <= r0)
        return;
    lin = lin_or_scalar(lin);
    const size_t rows = r1 - r0, in = n * d;
    float *g = scratch, *zero = zeros(scratch + rows * in, cols);
    for (size_t r = 0; r < rows; r++)
        for (size_t e = 0; e < n; e++)
            memcpy(g + r * in + e * d, a + e * lda_ex + (r0 + r) * lda, d * sizeof(float));
    lin(g, in, rows, in, stack, cols, zero, cols, out + r0 * ldo, ldo, CTR_ACT_NONE, 1.0f);
}
