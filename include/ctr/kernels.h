/* kernels.h - the dense layer kernel and its per-ISA variants.
 *
 * Every variant computes, for each row r < rows and output o < out,
 *     y[r*ldy + o] = act(acc)   where acc starts at bias[o] and then
 *     acc = fmaf(x[r*ldx + i], w[i*ldw + o], acc)   for i = 0, 1, ..., in-1
 * i.e. one fused multiply-add chain per output in ascending i. ldw >= out is
 * w's row stride in floats (out when w is packed; the model reader pads
 * rows of some widths, see model/model_pad.c); when out == 1, w is read as
 * a column of `in` consecutive floats and ldw must be 1. Vector code
 * runs many such chains side by side (across outputs and rows) and never
 * splits one, so scalar, AVX2 and AVX-512 give the same bits at any batch
 * size and position. The BLAS variant (OpenBLAS sgemm) is the opt-in
 * exception: it is not bit-exact and says so in `bit_exact`. */
#ifndef CTR_KERNELS_H
#define CTR_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "ctr/opts.h"

#include "ctr/model.h"

typedef enum {
    CTR_KERNEL_SCALAR = 0,
    CTR_KERNEL_AVX2 = 1,
    CTR_KERNEL_AVX512 = 2,
    CTR_KERNEL_BLAS = 3,
    CTR_KERNEL_AUTO = 4,
} ctr_kernel_id_t;

typedef void (*ctr_linear_fn)(const float *x, size_t ldx, size_t rows,
                              size_t in, const float *w, size_t ldw, const float *bias,
                              size_t out, float *y, size_t ldy,
                              ctr_activation_t act, float beta);

/* The interaction architectures' elementwise and row-wise operations.
 * Each has one scalar definition (below); a vector variant runs many of
 * them side by side, across rows or elements, and never reorders a sum, so
 * it gives the same bits.
 *
 * LayerNorm of each of `rows` rows of w floats (x + r*ldx -> y + r*ldy;
 * y == x is allowed), eps > 0, gamma and beta [w]:
 *     sum = 0;  for a ascending: sum += v[a];          mean = sum / (float)w
 *     sq = 0;   for a ascending: t = v[a] - mean; sq = fmaf(t, t, sq)
 *     var = sq / (float)w;  inv = 1.0f / sqrtf(var + eps)
 *     y[a] = fmaf((v[a] - mean) * inv, gamma[a], beta[a])
 * Vector variants keep one row per lane for the two sums (a row's sums
 * stay serial) and go across elements for the last line. */
typedef void (*ctr_ln_rows_fn)(const float *x, size_t ldx, size_t rows, size_t w,
                               const float *gamma, const float *beta, float eps,
                               float *y, size_t ldy);

/* A bag's pooled embedding: acc = 0; for each slot s < n_slots in order
 * whose row is not CTR_EMPTY_SLOT (UINT32_MAX): acc[a] += table[row * dim
 * + a] (plain float adds); out = acc (sum), or acc[a] / (float)count
 * (mean; an empty bag gives zeros). Rows are checked by the caller. */
typedef void (*ctr_pool_fn)(const float *table, size_t dim, const uint32_t *slots,
                            size_t n_slots, ctr_pool_t pool, float *out);

/* y[i] = fmaf(a[i], b[i], c[i]) for i < n (DCNv2's x0 * t + x_l); y may be
 * a, b or c. */
typedef void (*ctr_fma_fn)(const float *a, const float *b, const float *c,
                           float *y, size_t n);

/* y[i] = a[i] + b[i] for i < n; y may be a or b. */
typedef void (*ctr_add_fn)(const float *a, const float *b, float *y, size_t n);

/* A variant made by hand (tests) may leave the ops after `linear` NULL:
 * the forward pass then runs the scalar ones, which give the same bits. */
typedef struct {
    const char *name;       /* "scalar", "avx2", "avx512", "blas" */
    ctr_kernel_id_t id;
    int bit_exact;          /* 1 for every variant but blas */
    ctr_linear_fn linear;
    ctr_ln_rows_fn ln_rows;
    ctr_pool_fn pool;
    ctr_fma_fn fma;
    ctr_add_fn add;
} ctr_kernel_t;

/* The variant, or NULL when this build or CPU cannot run it. */
const ctr_kernel_t *ctr_kernel_get(ctr_kernel_id_t id);

/* AUTO: the CTR_ISA environment variable (scalar|avx2|avx512) if set, else
 * the widest bit-exact variant the CPU and OS support. Returns NULL and
 * fills err when CTR_ISA names a variant this CPU cannot run. */
const ctr_kernel_t *ctr_kernel_select(ctr_kernel_id_t id, char *err, size_t errlen);

/* "auto", "scalar", "avx2", "avx512", "blas" -> id; -1 if unknown. */
int ctr_kernel_parse(const char *name);

/* The same names as a flag's enum table (ctr/opts.h), for --kernel. */
extern const ctr_opt_enum_t ctr_kernel_choices[];

/* CPUID + XCR0: the CPU has the instructions and the OS saves the registers. */
int ctr_cpu_has_avx2_fma(void);
int ctr_cpu_has_avx512(void);

/* SmeLU and its slope, the scalar definition every kernel matches. */
float ctr_smelu(float x, float beta);
float ctr_smelu_grad(float x, float beta);

#endif
