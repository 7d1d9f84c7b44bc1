/* kernels_blas.c - the dense layer through OpenBLAS, the opt-in variant.
 *
 * y rows are set to bias, then y += x * w by cblas_sgemm (beta = 1), then
 * the activation is applied in place. OpenBLAS splits and reorders each
 * dot product as its blocking and thread count dictate, so the result is
 * not bit-exact with the scalar reference, and a row's bits can change with
 * the batch it is in: ctr_kernel_t.bit_exact is 0 for this variant and it
 * is never picked by CTR_KERNEL_AUTO. One row (or one output) goes through
 * sgemv, OpenBLAS's faster path for that shape. Thread count is OpenBLAS's
 * own (OPENBLAS_NUM_THREADS / openblas_set_num_threads). */
#include <cblas.h>

#include "kernels_int.h"

void ctr__linear_blas(const float *x, size_t ldx, size_t rows, size_t in,
                      const float *w, size_t ldw, const float *bias, size_t out, float *y,
                      size_t ldy, ctr_activation_t act, float beta)
{
    if (rows == 0 || out == 0)
        return;
    for (size_t r = 0; r < rows; r++)
        for (size_t o = 0; o < out; o++)
            y[r * ldy + o] = bias[o];
    if (in > 0) {
        if (rows == 1) /* y[1][out] += x[1][in] * w[in][out]: w^T x */
            cblas_sgemv(CblasRowMajor, CblasTrans, (blasint)in, (blasint)out, 1.0f,
                        w, (blasint)ldw, x, 1, 1.0f, y, 1);
        else if (out == 1) /* y[rows] (stride ldy) += x[rows][in] * w[in] */
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)rows, (blasint)in, 1.0f,
                        x, (blasint)ldx, w, 1, 1.0f, y, (blasint)ldy); /* w: a column */
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)rows,
                        (blasint)out, (blasint)in, 1.0f, x, (blasint)ldx, w,
                        (blasint)ldw, 1.0f, y, (blasint)ldy);
    }
    if (act != CTR_ACT_NONE) {
        float c = ctr__smelu_scale(beta);
        for (size_t r = 0; r < rows; r++)
            for (size_t o = 0; o < out; o++)
                y[r * ldy + o] = ctr__act(y[r * ldy + o], act, beta, c);
    }
}
