/* kernels.h - the dense layer kernel and its per-ISA variants.
 *
 * Every variant computes, for each row r < rows and output o < out,
 *     y[r*ldy + o] = act(acc)   where acc starts at bias[o] and then
 *     acc = fmaf(x[r*ldx + i], w[i*out + o], acc)   for i = 0, 1, ..., in-1
 * i.e. one fused multiply-add chain per output in ascending i. Vector code
 * runs many such chains side by side (across outputs and rows) and never
 * splits one, so scalar, AVX2 and AVX-512 give the same bits at any batch
 * size and position. The BLAS variant (OpenBLAS sgemm) is the opt-in
 * exception: it is not bit-exact and says so in `bit_exact`. */
#ifndef CTR_KERNELS_H
#define CTR_KERNELS_H

#include <stddef.h>

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
                              size_t in, const float *w, const float *bias,
                              size_t out, float *y, size_t ldy,
                              ctr_activation_t act, float beta);

typedef struct {
    const char *name;       /* "scalar", "avx2", "avx512", "blas" */
    ctr_kernel_id_t id;
    int bit_exact;          /* 1 for every variant but blas */
    ctr_linear_fn linear;
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
