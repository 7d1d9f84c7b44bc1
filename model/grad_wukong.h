/* grad_wukong.h - the backward passes of a Wukong layer's operations
 * (forward arithmetic: docs/MODEL_FORMAT.md, model/forward_wukong.c), for
 * the trainer. Internal to libctr; tests/test_grad_wukong.c checks them.
 *
 * Two kinds of function, after the trainer's determinism design
 * (model/train_net.c):
 *  - per example (phase A): forward that keeps what backward needs, and
 *    backward to the example's inputs. Every value depends on that
 *    example's arguments only. They never allocate: the caller passes
 *    `scratch` of at least the size helper's floats; its contents on entry
 *    do not matter and on return are garbage.
 *  - over a batch (phase B): a parameter's gradient summed over the
 *    examples in example order, one fixed chain per output, so the bits
 *    depend on neither the thread count nor how rows are split in tasks.
 *
 * Matrices are row-major and packed unless an ld (row stride, in floats)
 * is given; [r][c] gives the shape. "chain over i" below means
 *     acc = 0.0f;  for i ascending: acc = fmaf(p_i, q_i, acc)
 * which is exactly one output of the linear kernel (ctr/kernels.h) with a
 * zero bias. Products run through `lin`, a ctr_linear_fn: NULL is the
 * scalar one (ctr__linear_scalar); any bit-exact variant (AVX2, AVX-512)
 * gives the same bits, so the trainer may pass its kernel's. Not the BLAS
 * one (not bit-exact).
 *
 * Accumulation into an input gradient: `dx += P` means each element gets
 * dx[i] = dx[i] + P[i] (one plain float add) with P[i] one chain from
 * 0.0f. So a gradient fed by several users is fixed by the order of the
 * calls; the caller zeroes (or seeds) dx before the first.
 *
 * One Wukong layer, X [n_in][d] -> X' [n_out][d] (n_out = n_f + n_l),
 * forward per example:
 *     ctr__gwk_fm_fwd(X, Y) -> xt = X^T, Z, F        (F [n_in][k])
 *     [fmb_ln flat] ctr__gwk_ln_fwd(1 row of n_in * k) over F -> f
 *     FMB MLP (trainer) over f -> F' (n_f rows of d)
 *     ctr__gwk_mx_fwd(W_L, X) -> L                   (C = [F'; L])
 *     ctr__gwk_mx_fwd(res, X) -> R, or R = X         (identity residual)
 *     S = C + R;  ctr__gwk_ln_fwd(n_out rows of d) -> X', xhat, rstd
 * and backward, in the order the tests use (the order fixes dX's bits):
 *     dS = ctr__gwk_ln_bwd(dX')                      (the add: dC = dR = dS)
 *     dX = dS (identity residual), or dX = 0, dX += res^T dS (mx_bwd)
 *     dX += W_L^T dL (mx_bwd, dL = dS rows n_f..)
 *     dF' = dS rows 0..n_f-1 -> FMB MLP backward (trainer) -> [flat LN
 *     backward] -> dF;  ctr__gwk_fm_bwd: dX += dF Z^T + Y dZ^T, dZ
 * and over the batch:
 *     dres = ctr__gwk_mx_dm_sum(dS rows, xt stack), dW_L likewise with dL
 *     dY   = ctr__gwk_fm_dy_sum(X, dZ stack)
 *     dgamma, dbeta = ctr__gwk_ln_param_sum(xhat rows, dX' rows)
 *     (the flat LN's: one row of n_in * k per example). */
#ifndef CTR_GRAD_WUKONG_H
#define CTR_GRAD_WUKONG_H

#include <stddef.h>

#include "ctr/kernels.h"

/* ---- LayerNorm over rows of w --------------------------------------- */

/* Forward of `rows` packed rows of w floats (x [rows][w] -> y [rows][w],
 * y == x allowed), eps > 0, gamma and beta [w]. y has the bits of the
 * scalar ln_rows (ctr/kernels.h): mean and variance in two passes, then
 * xhat[a] = (v[a] - mean) * inv and y[a] = fmaf(xhat[a], gamma[a],
 * beta[a]). Keeps xhat [rows][w] (must not alias x) and rstd [rows] (inv,
 * 1 / sqrtf(var + eps)) for the backward pass. */
void ctr__gwk_ln_fwd(size_t rows, size_t w, const float *x, const float *gamma,
                     const float *beta, float eps, float *y, float *xhat, float *rstd);

/* Backward to the input: dy [rows][w] -> dx [rows][w] (overwritten; dx ==
 * dy allowed), from the forward's xhat [rows][w] and rstd [rows]. Per
 * row, with g[a] = dy[a] * gamma[a]:
 *     s1 = 0.0f;  for a ascending: s1 = s1 + g[a]        (plain adds)
 *     s2 = chain over a of g[a] * xhat[a]
 *     m1 = s1 / (float)w;  m2 = s2 / (float)w
 *     dx[a] = (g[a] - fmaf(xhat[a], m2, m1)) * rstd
 * the exact derivative of LN (mean and variance of the row included). */
void ctr__gwk_ln_bwd(size_t rows, size_t w, const float *xhat, const float *rstd,
                     const float *gamma, const float *dy, float *dx);

/* Over a batch: rows r < rows of xhat (row r at xhat + r * ldx) and dy (at
 * dy + r * ldy), in batch order (example by example, each example's rows
 * in order), w floats each:
 *     dgamma[a] = chain over r ascending of dy[r][a] * xhat[r][a]
 *     dbeta[a]  = 0.0f, then dbeta[a] = dbeta[a] + dy[r][a], r ascending
 * overwriting dgamma, dbeta [w]. Columns are independent: a task may take
 * columns a0..a1-1 by passing xhat + a0, dy + a0, w = a1 - a0 and the
 * same lds, and gets the same bits. */
void ctr__gwk_ln_param_sum(size_t rows, size_t w, const float *xhat, size_t ldx,
                           const float *dy, size_t ldy, float *dgamma, float *dbeta);

/* ---- the optimized FM product F = X (X^T Y) ------------------------- */

/* Scratch floats for ctr__gwk_fm_fwd and ctr__gwk_fm_bwd:
 * max(d, k) + 2 * k * (n_in + d) + n_in * d. */
size_t ctr__gwk_fm_scratch(size_t n_in, size_t d, size_t k);

/* Forward of one example: x = X [n_in][d], y = Y [n_in][k] ->
 *     xt = X^T [d][n_in]                         (kept: fm_bwd and the
 *                                                 batch sums read it)
 *     z  = Z = X^T Y [d][k]:  Z[a][j] = chain over m of X[m][a] * Y[m][j]
 *     f  = F = X Z [n_in][k]: F[m][j] = chain over a of X[m][a] * Z[a][j]
 * the bits of the serving forward (forward_wukong.c). */
void ctr__gwk_fm_fwd(ctr_linear_fn lin, size_t n_in, size_t d, size_t k, const float *x,
                     const float *y, float *xt, float *z, float *f, float *scratch);

/* Backward of one example, from the forward's x [n_in][d], xt [d][n_in],
 * y [n_in][k], z [d][k] and df = dF [n_in][k]:
 *     dz = dZ = X^T dF [d][k]:  dZ[a][j] = chain over m of X[m][a] * dF[m][j]
 *     dx += dF Z^T + Y dZ^T [n_in][d], one chain of 2k terms:
 *           over j of dF[m][j] * Z[a][j], then on over j of Y[m][j] * dZ[a][j]
 *     dy_e = X dZ [n_in][k] (this example's part of dY; NULL: skipped):
 *           dY_e[m][j] = chain over a of X[m][a] * dZ[a][j]
 * The trainer keeps dz (stacked, example after example) for
 * ctr__gwk_fm_dy_sum; the sum of the dy_e is the same gradient with other
 * roundings. */
void ctr__gwk_fm_bwd(ctr_linear_fn lin, size_t n_in, size_t d, size_t k, const float *x,
                     const float *xt, const float *y, const float *z, const float *df,
                     float *dx, float *dz, float *dy_e, float *scratch);

/* dY [n_in][k] of a batch of n examples, rows m0..m1-1 (written at dy +
 * m * ldy; a task may take a range of rows and gets the same bits):
 *     dY[m][j] = chain over e ascending, then a ascending, of
 *                X_e[m][a] * dZ_e[a][j]
 * where X_e = x + e * ldx_ex ([n_in][d], packed) and dz_stack holds the
 * n examples' dZ_e [d][k] one after the other ([n * d][k]). Scratch:
 * ctr__gwk_sum_scratch(n, m1 - m0, d, k) floats. */
void ctr__gwk_fm_dy_sum(ctr_linear_fn lin, size_t n, size_t n_in, size_t d, size_t k,
                        const float *x, size_t ldx_ex, const float *dz_stack, size_t m0,
                        size_t m1, float *dy, size_t ldy, float *scratch);

/* ---- M X: the LCB (M = W_L) and the learned residual (M = res) ------- */

/* Scratch floats for ctr__gwk_mx_fwd and ctr__gwk_mx_bwd: d + n_in * d. */
size_t ctr__gwk_mx_scratch(size_t n_in, size_t d);

/* Forward of one example: m = M [n_o][n_in], x = X [n_in][d] ->
 * out [n_o][d] (at out + o * ldo), out[o][a] = chain over i of
 * M[o][i] * X[i][a]: the serving forward's bits. */
void ctr__gwk_mx_fwd(ctr_linear_fn lin, size_t n_o, size_t n_in, size_t d, const float *m,
                     const float *x, float *out, size_t ldo, float *scratch);

/* Backward to X of one example: dx [n_in][d] += M^T dOut, one chain of
 * n_o terms each: over o of M[o][i] * dOut[o][a]. mt = M^T [n_in][n_o]
 * (the weight transposed once per step, ctr__gwk_transpose), dout =
 * dOut [n_o][d], packed (dL is rows n_f.. of the packed dS). */
void ctr__gwk_mx_bwd(ctr_linear_fn lin, size_t n_o, size_t n_in, size_t d, const float *mt,
                     const float *dout, float *dx, float *scratch);

/* dM [n_o][n_in] of a batch of n examples, rows o0..o1-1 (at dm + o * ldm):
 *     dM[o][i] = chain over e ascending, then a ascending, of
 *                dOut_e[o][a] * X_e[i][a]
 * where dOut_e row o is at dout + e * ldd_ex + o * ldd (d floats) and
 * xt_stack holds the n examples' X_e^T [d][n_in] one after the other
 * ([n * d][n_in]: what ctr__gwk_fm_fwd leaves in xt, example by example).
 * Scratch: ctr__gwk_sum_scratch(n, o1 - o0, d, n_in) floats. */
void ctr__gwk_mx_dm_sum(ctr_linear_fn lin, size_t n, size_t n_in, size_t d,
                        const float *dout, size_t ldd_ex, size_t ldd, const float *xt_stack,
                        size_t o0, size_t o1, float *dm, size_t ldm, float *scratch);

/* ---- shared ---------------------------------------------------------- */

/* Scratch floats of the batch sums: rows * n * d + cols. */
size_t ctr__gwk_sum_scratch(size_t n, size_t rows, size_t d, size_t cols);

/* The batch sums' one primitive, rows r0..r1-1 of out [.][cols]:
 *     out[r][c] = chain over e < n ascending, then a < d ascending, of
 *                 A_e[r][a] * stack[e * d + a][c]
 * A_e row r at a + e * lda_ex + r * lda (d floats); stack packed
 * [n * d][cols]; out row r at out + r * ldo. One linear call over the
 * rows gathered as [r1 - r0][n * d], so every output is one chain whatever
 * the row range. */
void ctr__gwk_sum_ex(ctr_linear_fn lin, size_t n, size_t d, const float *a, size_t lda_ex,
                     size_t lda, size_t r0, size_t r1, const float *stack, size_t cols,
                     float *out, size_t ldo, float *scratch);

/* dst [cols][rows] (row stride ldd) = src^T, src [rows][cols] (lds). */
void ctr__gwk_transpose(size_t rows, size_t cols, const float *src, size_t lds, float *dst,
                        size_t ldd);

#endif
