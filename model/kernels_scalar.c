/* kernels_scalar.c - the scalar definitions of the interaction
 * architectures' row-wise and elementwise operations (ctr/kernels.h):
 * LayerNorm over rows, bag pooling, x * y + z fused, and elementwise adds.
 *
 * These are the reference the per-ISA versions (kernels_avx2.c,
 * kernels_avx512.c) match bit for bit. Compiled without -m flags, like
 * kernels.c: fmaf is glibc's correctly rounded one, the sums run in the
 * order written (-ffp-contract=off, no -ffast-math), and sqrtf and the
 * divisions are IEEE, so any variant doing the same operations in the
 * same order per row gets the same bits. */
#include <math.h>
#include <stdint.h>

#include "ctr/features.h"
#include "kernels_int.h"

void ctr__ln_rows_scalar(const float *x, size_t ldx, size_t rows, size_t w,
                         const float *gamma, const float *beta, float eps,
                         float *y, size_t ldy)
{
    const float fw = (float)w;
    for (size_t r = 0; r < rows; r++) {
        const float *v = x + r * ldx;
        float *yr = y + r * ldy;
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
        for (size_t a = 0; a < w; a++)
            yr[a] = fmaf((v[a] - mean) * inv, gamma[a], beta[a]);
    }
}

void ctr__pool_scalar(const float *table, size_t dim, const uint32_t *slots,
                      size_t n_slots, ctr_pool_t pool, float *out)
{
    uint32_t count = 0;
    for (size_t a = 0; a < dim; a++)
        out[a] = 0.0f;
    for (size_t s = 0; s < n_slots; s++) {
        if (slots[s] == CTR_EMPTY_SLOT)
            continue;
        const float *row = table + (size_t)slots[s] * dim;
        for (size_t a = 0; a < dim; a++)
            out[a] += row[a];
        count++;
    }
    if (pool == CTR_POOL_MEAN) {
        if (!count)
            return; /* zeros */
        const float c = (float)count;
        for (size_t a = 0; a < dim; a++)
            out[a] = out[a] / c;
    }
}

void ctr__fma_scalar(const float *a, const float *b, const float *c, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = fmaf(a[i], b[i], c[i]);
}

void ctr__add_scalar(const float *a, const float *b, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}
