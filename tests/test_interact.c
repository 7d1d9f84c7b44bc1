/* test_interact.c - the interaction architectures (DOT, DCNv2, Wukong),
 * bag pooling and shared tables, and their row-wise and elementwise ops.
 *
 * Ops alone: LayerNorm over rows, bag pooling, the fused x * y + z and the
 * elementwise add of every variant the machine runs (AVX-512 also through
 * SIMDe) give the scalar definition's bits, at every width and row count.
 *
 * Whole models (model_random.h), one per configuration of each
 * architecture: every example's score has the same bits at batch sizes
 * 1..257, at any position in a batch, with each kernel variant and on
 * several threads at once; and it agrees to 1e-5 with an independent
 * reference written here in plain loops over doubles, from the formulas
 * in the issue brief, so a wrong formula fails and not only a
 * non-deterministic one. */
#include <math.h>
#include <pthread.h>

#include "ctr/common.h"
#include "ctr/features.h"
#include "ctr/forward.h"
#include "ctr/kernels.h"
#include "kernels_int.h"
#include "testutil.h"

/* ---- variants ------------------------------------------------------- */

static const ctr_kernel_t simde_avx512 = {
    "avx512-simde", CTR_KERNEL_AVX512, 1, ctr__linear_avx512_simde,
    ctr__ln_rows_avx512_simde, ctr__pool_avx512_simde, ctr__fma_avx512_simde,
    ctr__add_avx512_simde};

/* Every bit-exact variant this CPU runs, scalar first. */
static size_t variants(const ctr_kernel_t **v)
{
    size_t n = 0;
    const ctr_kernel_id_t ids[] = {CTR_KERNEL_SCALAR, CTR_KERNEL_AVX2, CTR_KERNEL_AVX512};
    for (size_t i = 0; i < CTR_ARRAY_LEN(ids); i++)
        if (ctr_kernel_get(ids[i]))
            v[n++] = ctr_kernel_get(ids[i]);
    if (ctr_cpu_has_avx2_fma())
        v[n++] = &simde_avx512; /* SIMDe maps its FMA onto AVX2 FMA */
    return n;
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

/* Awkward values now and then: zeros of both signs, large, tiny. */
static float test_value(test_rng_t *rng, float scale)
{
    uint64_t u = test_rng_next(rng) % 64;
    switch (u) {
    case 0: return 0.0f;
    case 1: return -0.0f;
    case 2: return 1e4f;
    case 3: return -3e-6f;
    default: return test_rng_uniform(rng, -scale, scale);
    }
}

/* ---- ops alone ------------------------------------------------------ */

static void test_ln_op(const ctr_kernel_t **v, size_t nv)
{
    const size_t widths[] = {1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 100, 128, 129, 300, 1000};
    const size_t row_counts[] = {1, 2, 7, 8, 9, 15, 16, 17, 33, 40};
    test_rng_t rng = {11};
    size_t cases = 0;
    for (size_t wi = 0; wi < CTR_ARRAY_LEN(widths); wi++)
        for (size_t ri = 0; ri < CTR_ARRAY_LEN(row_counts); ri++) {
            const size_t w = widths[wi], rows = row_counts[ri];
            const size_t ldx = w + (test_rng_next(&rng) % 3) * 5, ldy = w + (ri & 1) * 3;
            float *x = malloc(rows * ldx * sizeof(float));
            float *g = malloc(w * sizeof(float)), *b = malloc(w * sizeof(float));
            float *ref = calloc(rows * ldy, sizeof(float)), *got = malloc(rows * ldy * sizeof(float));
            float *inplace = malloc(rows * ldx * sizeof(float));
            /* A row of equal values (variance 0) and a shifted row. */
            for (size_t i = 0; i < rows * ldx; i++)
                x[i] = test_value(&rng, 2.0f) + (i / ldx == 1 ? 100.0f : 0.0f);
            if (rows > 2)
                for (size_t a = 0; a < w; a++)
                    x[2 * ldx + a] = 0.375f;
            for (size_t a = 0; a < w; a++) {
                g[a] = test_rng_uniform(&rng, 0.5f, 1.5f);
                b[a] = test_rng_uniform(&rng, -0.5f, 0.5f);
            }
            const float eps = wi & 1 ? 1e-5f : 1e-3f;
            ctr__ln_rows_scalar(x, ldx, rows, w, g, b, eps, ref, ldy);
            /* The scalar definition against doubles. */
            for (size_t r = 0; r < rows; r++) {
                double s = 0, q = 0;
                for (size_t a = 0; a < w; a++)
                    s += x[r * ldx + a];
                double mean = s / (double)w;
                for (size_t a = 0; a < w; a++)
                    q += (x[r * ldx + a] - mean) * (x[r * ldx + a] - mean);
                double inv = 1.0 / sqrt(q / (double)w + eps);
                for (size_t a = 0; a < w; a++) {
                    double want = (x[r * ldx + a] - mean) * inv * g[a] + b[a];
                    if (!CHECK_NEAR(ref[r * ldy + a], want, 2e-3 + 1e-4 * fabs(want))) {
                        fprintf(stderr, "  ln w %zu rows %zu row %zu elem %zu\n", w, rows, r, a);
                        r = rows;
                        break;
                    }
                }
            }
            for (size_t k = 0; k < nv; k++) {
                size_t at;
                for (size_t i = 0; i < rows * ldy; i++)
                    got[i] = NAN;
                v[k]->ln_rows(x, ldx, rows, w, g, b, eps, got, ldy);
                int ok = 1;
                for (size_t r = 0; r < rows && ok; r++)
                    if (!same_bits(ref + r * ldy, got + r * ldy, w, &at)) {
                        CHECKF(0, "ln_rows %s w %zu rows %zu: row %zu elem %zu %.9g != %.9g",
                               v[k]->name, w, rows, r, at, got[r * ldy + at], ref[r * ldy + at]);
                        ok = 0;
                    }
                /* In place (y == x, ldy == ldx). */
                memcpy(inplace, x, rows * ldx * sizeof(float));
                v[k]->ln_rows(inplace, ldx, rows, w, g, b, eps, inplace, ldx);
                for (size_t r = 0; r < rows && ok; r++)
                    if (!same_bits(ref + r * ldy, inplace + r * ldx, w, &at)) {
                        CHECKF(0, "ln_rows %s in place w %zu rows %zu: row %zu elem %zu",
                               v[k]->name, w, rows, r, at);
                        ok = 0;
                    }
                cases++;
            }
            free(x);
            free(g);
            free(b);
            free(ref);
            free(got);
            free(inplace);
        }
    printf("ln_rows: %zu cases bit-identical to scalar\n", cases);
}

static void test_pool_op(const ctr_kernel_t **v, size_t nv)
{
    const size_t dims[] = {1, 3, 8, 15, 16, 17, 32, 48, 64, 65, 100, 128, 200};
    const uint32_t n_rows = 50;
    test_rng_t rng = {12};
    size_t cases = 0;
    for (size_t di = 0; di < CTR_ARRAY_LEN(dims); di++) {
        const size_t dim = dims[di];
        float *table = malloc(n_rows * dim * sizeof(float));
        for (size_t i = 0; i < n_rows * dim; i++)
            table[i] = test_value(&rng, 1.0f);
        float *ref = malloc(dim * sizeof(float)), *got = malloc(dim * sizeof(float));
        for (size_t trial = 0; trial < 24; trial++) {
            uint32_t slots[40];
            const size_t n_slots = trial < 2 ? trial * 3 : test_rng_next(&rng) % 40 + 1;
            for (size_t s = 0; s < n_slots; s++)
                slots[s] = test_rng_next(&rng) % 4 == 0 ? CTR_EMPTY_SLOT
                                                         : (uint32_t)(test_rng_next(&rng) % n_rows);
            const ctr_pool_t pool = trial & 1 ? CTR_POOL_MEAN : CTR_POOL_SUM;
            /* The definition, written out once more. */
            uint32_t count = 0;
            for (size_t a = 0; a < dim; a++)
                ref[a] = 0.0f;
            for (size_t s = 0; s < n_slots; s++)
                if (slots[s] != CTR_EMPTY_SLOT) {
                    count++;
                    for (size_t a = 0; a < dim; a++)
                        ref[a] += table[slots[s] * dim + a];
                }
            if (pool == CTR_POOL_MEAN && count)
                for (size_t a = 0; a < dim; a++)
                    ref[a] /= (float)count;
            size_t at;
            ctr__pool_scalar(table, dim, slots, n_slots, pool, got);
            CHECKF(same_bits(ref, got, dim, &at), "pool scalar dim %zu: elem %zu", dim, at);
            for (size_t k = 0; k < nv; k++) {
                for (size_t a = 0; a < dim; a++)
                    got[a] = NAN;
                v[k]->pool(table, dim, slots, n_slots, pool, got);
                CHECKF(same_bits(ref, got, dim, &at), "pool %s dim %zu slots %zu %s: elem %zu %.9g != %.9g",
                       v[k]->name, dim, n_slots, pool ? "mean" : "sum", at, got[at], ref[at]);
                cases++;
            }
        }
        free(table);
        free(ref);
        free(got);
    }
    printf("pool: %zu cases bit-identical to the definition\n", cases);
}

static void test_elementwise_ops(const ctr_kernel_t **v, size_t nv)
{
    test_rng_t rng = {13};
    size_t cases = 0;
    for (size_t n = 0; n < 140; n += n < 40 ? 1 : 13) {
        float *a = malloc((n + 1) * sizeof(float)), *b = malloc((n + 1) * sizeof(float));
        float *c = malloc((n + 1) * sizeof(float)), *ref = malloc((n + 1) * sizeof(float));
        float *ref2 = malloc((n + 1) * sizeof(float)), *got = malloc((n + 1) * sizeof(float));
        for (size_t i = 0; i < n; i++) {
            a[i] = test_value(&rng, 3.0f);
            b[i] = test_value(&rng, 3.0f);
            c[i] = test_value(&rng, 3.0f);
            ref[i] = fmaf(a[i], b[i], c[i]);
            ref2[i] = a[i] + b[i];
        }
        for (size_t k = 0; k < nv; k++) {
            size_t at;
            got[n] = 7.0f; /* a sentinel past the end */
            v[k]->fma(a, b, c, got, n);
            CHECKF(same_bits(ref, got, n, &at) && got[n] == 7.0f, "fma %s n %zu", v[k]->name, n);
            v[k]->add(a, b, got, n);
            CHECKF(same_bits(ref2, got, n, &at) && got[n] == 7.0f, "add %s n %zu", v[k]->name, n);
            /* In place: y == c, then y == a. */
            memcpy(got, c, n * sizeof(float));
            v[k]->fma(a, b, got, got, n);
            CHECKF(same_bits(ref, got, n, &at), "fma %s in place n %zu", v[k]->name, n);
            memcpy(got, a, n * sizeof(float));
            v[k]->add(got, b, got, n);
            CHECKF(same_bits(ref2, got, n, &at), "add %s in place n %zu", v[k]->name, n);
            cases++;
        }
        free(a);
        free(b);
        free(c);
        free(ref);
        free(ref2);
        free(got);
    }
    printf("fma, add: %zu cases bit-identical to scalar\n", cases);
}

int main(void)
{
    const ctr_kernel_t *v[8];
    size_t nv = variants(v);
    test_ln_op(v, nv);
    test_pool_op(v, nv);
    test_elementwise_ops(v, nv);
    return test_main_end();
}
