/* kernels_int.h - internals shared by the dense-layer kernel variants.
 *
 * Each per-ISA file (kernels_avx2.c, kernels_avx512.c, kernels_blas.c) is
 * compiled with its own -m flags and defines one ctr_linear_fn; kernels.c
 * holds the scalar reference, CPU detection and the dispatch table, and is
 * the only caller. The contract every variant keeps is in ctr/kernels.h;
 * the activation below is the one definition they all apply, op for op. */
#ifndef CTR_KERNELS_INT_H
#define CTR_KERNELS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "ctr/kernels.h"

void ctr__linear_scalar(const float *x, size_t ldx, size_t rows, size_t in,
                        const float *w, size_t ldw, const float *bias, size_t out,
                        float *y, size_t ldy, ctr_activation_t act, float beta);
void ctr__linear_avx2(const float *x, size_t ldx, size_t rows, size_t in,
                      const float *w, size_t ldw, const float *bias, size_t out,
                      float *y, size_t ldy, ctr_activation_t act, float beta);
void ctr__linear_avx512(const float *x, size_t ldx, size_t rows, size_t in,
                        const float *w, size_t ldw, const float *bias, size_t out,
                        float *y, size_t ldy, ctr_activation_t act, float beta);
void ctr__linear_blas(const float *x, size_t ldx, size_t rows, size_t in,
                      const float *w, size_t ldw, const float *bias, size_t out,
                      float *y, size_t ldy, ctr_activation_t act, float beta);

/* The row-wise and elementwise ops (ctr/kernels.h), per variant:
 * kernels_scalar.c, kernels_avx2.c, kernels_avx512.c. */
#define CTR__OPS_DECLARE(sfx)                                                  \
    void ctr__ln_rows_##sfx(const float *x, size_t ldx, size_t rows, size_t w, \
                            const float *gamma, const float *beta, float eps,  \
                            float *y, size_t ldy);                             \
    void ctr__pool_##sfx(const float *table, size_t dim, const uint32_t *slots, \
                         size_t n_slots, ctr_pool_t pool, float *out);         \
    void ctr__fma_##sfx(const float *a, const float *b, const float *c,        \
                        float *y, size_t n);                                   \
    void ctr__add_##sfx(const float *a, const float *b, float *y, size_t n);
CTR__OPS_DECLARE(scalar)
CTR__OPS_DECLARE(avx2)
CTR__OPS_DECLARE(avx512)
/* Test-only, like ctr__linear_avx512_simde below. */
CTR__OPS_DECLARE(avx512_simde)

/* Test-only: kernels_avx512.c compiled against SIMDe (-DCTR_AVX512_SIMDE)
 * into build/tests/kernels_avx512_simde.o, so the AVX-512 code path is
 * checked bit for bit on CPUs without AVX-512. Not part of libctr. */
void ctr__linear_avx512_simde(const float *x, size_t ldx, size_t rows,
                              size_t in, const float *w, size_t ldw, const float *bias,
                              size_t out, float *y, size_t ldy,
                              ctr_activation_t act, float beta);

/* The SmeLU quadratic's scale, 1 / (4 beta), computed the one way every
 * variant computes it: once per call, as 0.25f / beta. */
static inline float ctr__smelu_scale(float beta)
{
    return 0.25f / beta;
}

/* The activation of one accumulator. Vector code applies the same
 * operations in the same order:
 *   RELU:  v > 0 ? v : +0       (NaN -> +0, -0 -> +0: MAXPS(v, 0))
 *   SMELU: v <= -beta ? +0 : v >= beta ? v : ((v + beta) * (v + beta)) * c
 *          (ordered compares: NaN falls to the quadratic and stays NaN)
 * c is ctr__smelu_scale(beta). */
static inline float ctr__act(float v, ctr_activation_t act, float beta, float c)
{
    switch (act) {
    case CTR_ACT_RELU:
        return v > 0.0f ? v : 0.0f;
    case CTR_ACT_SMELU:
        if (v <= -beta)
            return 0.0f;
        if (v >= beta)
            return v;
        {
            float t = v + beta;
            return (t * t) * c;
        }
    case CTR_ACT_NONE:
    default:
        return v;
    }
}

/* Compile-time repetition for the register-blocked kernels, which keep
 * each accumulator in its own named variable rather than in an array:
 * clang 14 leaves an array of vectors on the stack even when its loops are
 * fully unrolled, which costs 10x. CTR__REPJ_n(F, r) expands to
 * F(r, 0) F(r, 1) ... F(r, n-1); CTR__REPR_n(F, nv) to F(0, nv) ...
 * F(n-1, nv). Arguments must be literal numbers (they are pasted). */
#define CTR__REPJ_1(F, r) F(r, 0)
#define CTR__REPJ_2(F, r) CTR__REPJ_1(F, r) F(r, 1)
#define CTR__REPJ_3(F, r) CTR__REPJ_2(F, r) F(r, 2)
#define CTR__REPJ_4(F, r) CTR__REPJ_3(F, r) F(r, 3)
#define CTR__REPJ_5(F, r) CTR__REPJ_4(F, r) F(r, 4)
#define CTR__REPJ_6(F, r) CTR__REPJ_5(F, r) F(r, 5)
#define CTR__REPJ_7(F, r) CTR__REPJ_6(F, r) F(r, 6)
#define CTR__REPJ_8(F, r) CTR__REPJ_7(F, r) F(r, 7)
#define CTR__REPJ_9(F, r) CTR__REPJ_8(F, r) F(r, 8)
#define CTR__REPJ_10(F, r) CTR__REPJ_9(F, r) F(r, 9)
#define CTR__REPJ_11(F, r) CTR__REPJ_10(F, r) F(r, 10)
#define CTR__REPJ_12(F, r) CTR__REPJ_11(F, r) F(r, 11)
#define CTR__REPJ_13(F, r) CTR__REPJ_12(F, r) F(r, 12)
#define CTR__REPJ_14(F, r) CTR__REPJ_13(F, r) F(r, 13)
#define CTR__REPJ_15(F, r) CTR__REPJ_14(F, r) F(r, 14)
#define CTR__REPJ_16(F, r) CTR__REPJ_15(F, r) F(r, 15)
#define CTR__REPR_1(F, nv) F(0, nv)
#define CTR__REPR_2(F, nv) CTR__REPR_1(F, nv) F(1, nv)
#define CTR__REPR_3(F, nv) CTR__REPR_2(F, nv) F(2, nv)
#define CTR__REPR_4(F, nv) CTR__REPR_3(F, nv) F(3, nv)
#define CTR__REPR_5(F, nv) CTR__REPR_4(F, nv) F(4, nv)
#define CTR__REPR_6(F, nv) CTR__REPR_5(F, nv) F(5, nv)
#define CTR__REPR_7(F, nv) CTR__REPR_6(F, nv) F(6, nv)
#define CTR__REPR_8(F, nv) CTR__REPR_7(F, nv) F(7, nv)
#define CTR__REPR_9(F, nv) CTR__REPR_8(F, nv) F(8, nv)
#define CTR__REPR_10(F, nv) CTR__REPR_9(F, nv) F(9, nv)
#define CTR__REPR_11(F, nv) CTR__REPR_10(F, nv) F(10, nv)
#define CTR__REPR_12(F, nv) CTR__REPR_11(F, nv) F(11, nv)

#endif
