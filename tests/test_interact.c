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
#include "ctr/model_random.h"
#include "ctr/model_stats.h"
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

/* ---- whole models: an independent reference ------------------------- */

/* Everything below is written from the brief's formulas in doubles, with
 * none of the engine's code: tables, bags and sharing, bottom, the three
 * interactions, MLPs, the sigmoid. */

static double ref_act(double v, const ctr_model_def_t *def)
{
    double b = def->beta;
    if (def->activation == CTR_ACT_RELU)
        return v > 0 ? v : 0;
    if (v <= -b)
        return 0;
    if (v >= b)
        return v;
    return (v + b) * (v + b) / (4 * b);
}

/* y = act?(x W + b) for one layer; x and y may not overlap. */
static void ref_layer(const ctr_layer_def_t *L, const double *x, double *y, int act,
                      const ctr_model_def_t *def)
{
    for (uint32_t o = 0; o < L->out; o++) {
        double acc = L->bias[o];
        for (uint32_t i = 0; i < L->in; i++)
            acc += x[i] * L->weight[(size_t)i * (L->ldw ? L->ldw : L->out) + o];
        y[o] = act ? ref_act(acc, def) : acc;
    }
}

/* An MLP in place on buf (wide enough for every layer): activation after
 * every layer but the last, and the last when last_act. */
static void ref_mlp(const ctr_mlp_def_t *m, double *buf, int last_act, const ctr_model_def_t *def)
{
    double tmp[8192];
    for (size_t l = 0; l < m->n; l++) {
        ref_layer(&m->layers[l], buf, tmp, l + 1 < m->n || last_act, def);
        memcpy(buf, tmp, m->layers[l].out * sizeof(double));
    }
}

static void ref_ln(double *v, size_t w, const float *g, const float *b, double eps)
{
    double s = 0, q = 0;
    for (size_t a = 0; a < w; a++)
        s += v[a];
    double mean = s / (double)w;
    for (size_t a = 0; a < w; a++)
        q += (v[a] - mean) * (v[a] - mean);
    double inv = 1 / sqrt(q / (double)w + eps);
    for (size_t a = 0; a < w; a++)
        v[a] = (v[a] - mean) * inv * g[a] + b[a];
}

/* The embedding of categorical j for one example's slots. */
static void ref_embedding(const ctr_model_def_t *def, size_t j, const uint32_t *slots, double *e)
{
    const ctr_cat_def_t *c = &def->cat[j];
    const float *t = c->shares ? def->cat[c->shares - 1].table : c->table;
    size_t n = c->bag_max ? c->bag_max : 1, count = 0;
    for (size_t a = 0; a < c->dim; a++)
        e[a] = 0;
    for (size_t s = 0; s < n; s++) {
        if (slots[s] == CTR_EMPTY_SLOT)
            continue;
        count++;
        for (size_t a = 0; a < c->dim; a++)
            e[a] += t[(size_t)slots[s] * c->dim + a];
    }
    if (c->bag_max && c->pool == CTR_POOL_MEAN && count)
        for (size_t a = 0; a < c->dim; a++)
            e[a] /= (double)count;
}

static double ref_logit(const ctr_model_def_t *def, const float *dense, const uint32_t *rows)
{
    static double top[65536], X[16384], x0[16384], t[16384], u[16384], F[16384], C[16384];
    const size_t d = def->n_cat ? def->cat[0].dim : (def->bottom.n ? def->bottom.layers[def->bottom.n - 1].out : 0);
    const int hd = def->n_dense > 0;
    const size_t n = hd + def->n_cat;
    size_t w = 0, s = 0;
    if (def->arch == CTR_ARCH_MLP || (def->arch == CTR_ARCH_DCNV2 && !def->bottom.n)) {
        for (size_t i = 0; i < def->n_dense; i++)
            top[w++] = dense[i];
    } else if (hd) {
        for (size_t i = 0; i < def->n_dense; i++)
            top[i] = dense[i];
        ref_mlp(&def->bottom, top, 1, def);
        w = d;
    }
    for (size_t j = 0; j < def->n_cat; j++) {
        ref_embedding(def, j, rows + s, top + w);
        s += def->cat[j].bag_max ? def->cat[j].bag_max : 1;
        w += def->cat[j].dim;
    }
    /* top[0..w) is now x_0 / flatten(X) / the MLP input. */
    if (def->arch == CTR_ARCH_DOT) {
        memcpy(X, top, w * sizeof(double));
        size_t o = hd ? d : 0;
        for (size_t i = 0; i < n; i++) {
            size_t j0 = def->dot_order == CTR_DOT_UPPER ? i + !def->dot_self : 0;
            size_t j1 = def->dot_order == CTR_DOT_UPPER ? n : i + !!def->dot_self;
            for (size_t j = j0; j < j1; j++) {
                double g = 0;
                for (size_t a = 0; a < d; a++)
                    g += X[i * d + a] * X[j * d + a];
                top[o++] = g;
            }
        }
        w = o;
    } else if (def->arch == CTR_ARCH_DCNV2) {
        const ctr_dcn_def_t *dc = &def->dcn;
        memcpy(x0, top, w * sizeof(double));
        for (size_t l = 0; l < dc->n_cross; l++) {
            const ctr_cross_def_t *c = &dc->cross[l];
            for (size_t o = 0; o < w; o++)
                t[o] = c->bias[o];
            if (c->rank) {
                for (size_t r = 0; r < c->rank; r++) {
                    u[r] = 0;
                    for (size_t i = 0; i < w; i++)
                        u[r] += top[i] * c->v[i * c->rank + r];
                }
                for (size_t o = 0; o < w; o++)
                    for (size_t r = 0; r < c->rank; r++)
                        t[o] += u[r] * c->u[r * w + o];
            } else {
                for (size_t o = 0; o < w; o++)
                    for (size_t i = 0; i < w; i++)
                        t[o] += top[i] * c->w[i * w + o];
            }
            for (size_t a = 0; a < w; a++)
                top[a] = x0[a] * t[a] + top[a];
        }
        if (dc->structure == CTR_DCN_PARALLEL) {
            memcpy(top + w, x0, w * sizeof(double));
            ref_mlp(&dc->deep, top + w, 1, def);
            w += dc->deep.layers[dc->deep.n - 1].out;
        }
    } else if (def->arch == CTR_ARCH_WUKONG) {
        size_t nin = n;
        memcpy(X, top, w * sizeof(double));
        for (size_t li = 0; li < def->wukong.n_layers; li++) {
            const ctr_wukong_layer_def_t *L = &def->wukong.layers[li];
            const size_t k = L->k, nf = L->n_f, nl = L->n_l, nout = nf + nl;
            if (nf) {
                for (size_t a = 0; a < d; a++) /* Z = X^T Y, [d][k] in u */
                    for (size_t kk = 0; kk < k; kk++) {
                        double z = 0;
                        for (size_t m = 0; m < nin; m++)
                            z += X[m * d + a] * L->y[m * k + kk];
                        u[a * k + kk] = z;
                    }
                for (size_t m = 0; m < nin; m++) /* F = X Z */
                    for (size_t kk = 0; kk < k; kk++) {
                        double f = 0;
                        for (size_t a = 0; a < d; a++)
                            f += X[m * d + a] * u[a * k + kk];
                        F[m * k + kk] = f;
                    }
                if (def->wukong.fmb_ln == CTR_FMB_LN_FLAT)
                    ref_ln(F, nin * k, L->fmb_ln_gamma, L->fmb_ln_beta, def->ln_eps);
                ref_mlp(&L->fmb, F, def->wukong.fmb_out_act, def);
                memcpy(C, F, nf * d * sizeof(double));
            }
            for (size_t l = 0; l < nl; l++) /* L = W_L X */
                for (size_t a = 0; a < d; a++) {
                    double v = 0;
                    for (size_t m = 0; m < nin; m++)
                        v += L->lcb[l * nin + m] * X[m * d + a];
                    C[(nf + l) * d + a] = v;
                }
            for (size_t m = 0; m < nout; m++)
                for (size_t a = 0; a < d; a++) {
                    double r = 0;
                    if (L->res)
                        for (size_t q = 0; q < nin; q++)
                            r += L->res[m * nin + q] * X[q * d + a];
                    else
                        r = X[m * d + a];
                    C[m * d + a] += r;
                }
            for (size_t m = 0; m < nout; m++)
                ref_ln(C + m * d, d, L->ln_gamma, L->ln_beta, def->ln_eps);
            memcpy(X, C, nout * d * sizeof(double));
            nin = nout;
        }
        memcpy(top, X, nin * d * sizeof(double));
        w = nin * d;
    }
    ctr_mlp_def_t mlp = {def->n_layers, def->layers};
    ref_mlp(&mlp, top, 0, def);
    return top[0];
}

/* ---- whole models: examples and scoring ----------------------------- */

typedef struct {
    const ctr_model_def_t *def;
    size_t n, slots;
    float *dense;
    uint32_t *rows;
} examples_t;

/* Dense values in [-1, 3) (a fifth of them 0, as a missing one), rows
 * anywhere in the table (row 0 too), bags of 0..bag_max values with the
 * rest of their slots empty. */
static void make_examples(const ctr_model_def_t *def, size_t n, uint64_t seed, examples_t *ex)
{
    test_rng_t rng = {seed};
    ex->def = def;
    ex->n = n;
    ex->slots = ctr_model_slots(def);
    ex->dense = malloc((n * def->n_dense + 1) * sizeof(float));
    ex->rows = malloc((n * ex->slots + 1) * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < def->n_dense; j++)
            ex->dense[i * def->n_dense + j] =
                test_rng_next(&rng) % 5 == 0 ? 0.0f : test_rng_uniform(&rng, -1.0f, 3.0f);
        uint32_t *r = ex->rows + i * ex->slots;
        for (size_t j = 0; j < def->n_cat; j++) {
            const ctr_cat_def_t *c = &def->cat[j];
            if (!c->bag_max) {
                *r++ = (uint32_t)(test_rng_next(&rng) % (c->buckets + 1));
                continue;
            }
            size_t m = test_rng_next(&rng) % (c->bag_max + 1);
            for (size_t q = 0; q < c->bag_max; q++)
                *r++ = q < m ? (uint32_t)(test_rng_next(&rng) % (c->buckets + 1)) : CTR_EMPTY_SLOT;
        }
    }
}

static void free_examples(examples_t *ex)
{
    free(ex->dense);
    free(ex->rows);
}

/* Scores examples idx[0..n) as consecutive batches of `batch` through a
 * scratch of scratch_batch examples. */
static int score_batched(const examples_t *ex, const ctr_kernel_t *k, const size_t *idx,
                         size_t n, size_t batch, size_t scratch_batch, float *out)
{
    const ctr_model_def_t *def = ex->def;
    const size_t nd = def->n_dense, ns = ex->slots;
    ctr_scratch_t *s;
    char err[256];
    int rc = ctr_scratch_new(def, scratch_batch, &s, err, sizeof err);
    if (rc) {
        fprintf(stderr, "scratch: %s\n", err);
        return rc;
    }
    float *dense = malloc((batch * nd + 1) * sizeof(float));
    uint32_t *rows = malloc((batch * ns + 1) * sizeof(uint32_t));
    float *scores = malloc(batch * sizeof(float));
    for (size_t start = 0; start < n && !rc; start += batch) {
        size_t m = n - start < batch ? n - start : batch;
        for (size_t r = 0; r < m; r++) {
            size_t e = idx[start + r];
            memcpy(dense + r * nd, ex->dense + e * nd, nd * sizeof(float));
            memcpy(rows + r * ns, ex->rows + e * ns, ns * sizeof(uint32_t));
        }
        rc = ctr_forward(def, k, m, dense, rows, scores, NULL, s);
        for (size_t r = 0; r < m && !rc; r++)
            out[idx[start + r]] = scores[r];
    }
    free(scores);
    free(rows);
    free(dense);
    ctr_scratch_free(s);
    return rc;
}

static size_t count_diff(const float *a, const float *b, size_t n, size_t *first)
{
    size_t d = 0;
    for (size_t i = n; i-- > 0;)
        if (memcmp(&a[i], &b[i], sizeof(float))) {
            d++;
            *first = i;
        }
    return d;
}

struct thread_arg {
    const examples_t *ex;
    const ctr_kernel_t *k;
    const size_t *idx;
    size_t n, batch;
    float *out;
    int rc;
};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    for (int rep = 0; rep < 3 && !a->rc; rep++)
        a->rc = score_batched(a->ex, a->k, a->idx, a->n, a->batch, 64, a->out);
    return NULL;
}

#define N_EX 260

static void check_model(const char *label, const ctr_model_random_opts_t *opt,
                        const ctr_kernel_t **v, size_t nv)
{
    char err[512];
    ctr_model_random_t *rm = NULL;
    int rc = ctr_model_random_new(opt, &rm, err, sizeof err);
    CHECKF(rc == 0, "%s: model_random: %s", label, err);
    if (rc)
        return;
    const ctr_model_def_t *def = ctr_model_random_def(rm);
    examples_t ex;
    make_examples(def, N_EX, opt->seed * 31 + 7, &ex);
    size_t order[N_EX], at = 0;
    for (size_t i = 0; i < N_EX; i++)
        order[i] = i;
    float ref[N_EX], got[N_EX];

    /* The reference: scalar, one example a batch. */
    const ctr_kernel_t *scalar = ctr_kernel_get(CTR_KERNEL_SCALAR);
    CHECKF(score_batched(&ex, scalar, order, N_EX, 1, 1, ref) == 0, "%s: scoring", label);

    /* Against the independent reference, on the logit (relative to
     * max(1, |logit|): a saturated score would hide a wrong logit). */
    float logit[N_EX], sc2[N_EX];
    ctr_scratch_t *s1;
    CHECK(ctr_scratch_new(def, N_EX, &s1, NULL, 0) == 0);
    CHECK(ctr_forward(def, scalar, N_EX, ex.dense, ex.rows, sc2, logit, s1) == 0);
    ctr_scratch_free(s1);
    CHECKF(count_diff(ref, sc2, N_EX, &at) == 0, "%s: one batch of %d", label, N_EX);
    double worst = 0, lo = 1, hi = 0, worst_want = 0;
    size_t worst_i = 0;
    for (size_t i = 0; i < N_EX; i++) {
        double z = ref_logit(def, ex.dense + i * def->n_dense, ex.rows + i * ex.slots);
        double rel = fabs(logit[i] - z) / fmax(1.0, fabs(z));
        if (!(rel <= worst)) {
            worst = rel;
            worst_i = i;
            worst_want = z;
        }
        CHECK(ctr_sigmoid(logit[i]) == ref[i]);
        lo = fmin(lo, ref[i]);
        hi = fmax(hi, ref[i]);
    }
    CHECKF(worst <= 1e-5, "%s: example %zu has logit %.9g, the double reference %.9g (relative %.3g)",
           label, worst_i, logit[worst_i], worst_want, worst);
    CHECKF(hi - lo > 0.05, "%s: scores barely vary (%.4f .. %.4f)", label, lo, hi);

    /* Batch sizes: every one in 1..40, then a sample to 257. */
    size_t batches[80], nb = 0;
    for (size_t b = 1; b <= 40; b++)
        batches[nb++] = b;
    const size_t more[] = {47, 63, 64, 65, 99, 127, 128, 129, 191, 255, 256, 257};
    for (size_t i = 0; i < CTR_ARRAY_LEN(more); i++)
        batches[nb++] = more[i];
    for (size_t vi = 0; vi < nv; vi++) {
        const int slow = v[vi]->id == CTR_KERNEL_SCALAR;
        size_t tried = 0;
        for (size_t b = 0; b < nb; b++) {
            if (slow && batches[b] != 2 && batches[b] != 17 && batches[b] != 257)
                continue;
            CHECK(score_batched(&ex, v[vi], order, N_EX, batches[b], 257, got) == 0);
            size_t dn = count_diff(ref, got, N_EX, &at);
            CHECKF(dn == 0, "%s %s batch %zu: %zu of %d scores differ, first %zu: %.9g != %.9g",
                   label, v[vi]->name, batches[b], dn, N_EX, at, got[at], ref[at]);
            if (dn)
                break;
            tried++;
        }
        /* A scratch smaller than the batch: chunks. */
        CHECK(score_batched(&ex, v[vi], order, N_EX, 100, 7, got) == 0);
        CHECKF(count_diff(ref, got, N_EX, &at) == 0, "%s %s chunked", label, v[vi]->name);
        /* Neighbours shuffled. */
        test_rng_t rng = {vi + 5};
        size_t shuf[N_EX];
        memcpy(shuf, order, sizeof shuf);
        for (size_t i = N_EX - 1; i > 0; i--) {
            size_t j = test_rng_next(&rng) % (i + 1), t = shuf[i];
            shuf[i] = shuf[j];
            shuf[j] = t;
        }
        CHECK(score_batched(&ex, v[vi], shuf, N_EX, 61, 64, got) == 0);
        CHECKF(count_diff(ref, got, N_EX, &at) == 0, "%s %s shuffled", label, v[vi]->name);
        if (slow)
            continue;
        /* Three threads at once, each its own scratch and batch size. */
        memset(got, 0, sizeof got);
        pthread_t th[3];
        struct thread_arg ta[3];
        for (int t = 0; t < 3; t++) {
            size_t lo_i = t * N_EX / 3, hi_i = (t + 1) * N_EX / 3;
            ta[t] = (struct thread_arg){&ex, v[vi], shuf + lo_i, hi_i - lo_i, (size_t)(13 + 20 * t), got, 0};
            pthread_create(&th[t], NULL, thread_main, &ta[t]);
        }
        for (int t = 0; t < 3; t++) {
            pthread_join(th[t], NULL);
            CHECK(ta[t].rc == 0);
        }
        CHECKF(count_diff(ref, got, N_EX, &at) == 0, "%s %s three threads", label, v[vi]->name);
        /* One example at every position of a batch of 48 others. */
        size_t pos_idx[48];
        float pos_got[N_EX];
        for (size_t e = 0; e < 3; e++) {
            size_t target = (e * 97 + 11) % N_EX;
            for (size_t p = 0; p < 48; p++) {
                for (size_t q = 0; q < 48; q++)
                    pos_idx[q] = q == p ? target : (target + 1 + q + p * 5) % N_EX;
                CHECK(score_batched(&ex, v[vi], pos_idx, 48, 48, 48, pos_got) == 0);
                int same = !memcmp(&pos_got[target], &ref[target], sizeof(float));
                CHECKF(same, "%s %s: example %zu at position %zu", label, v[vi]->name, target, p);
                if (!same)
                    break;
            }
        }
        printf("%s: %s bit-identical to scalar batch 1 (%zu batch sizes, chunked, shuffled, "
               "3 threads, 48 positions)\n", label, v[vi]->name, tried);
    }
    printf("%s: scores %.4f..%.4f, logits within %.2g (relative) of the double reference\n", label, lo, hi, worst);
    free_examples(&ex);
    ctr_model_random_free(rm);
}

/* A small Criteo-like schema, so the reference and the scalar runs stay
 * quick; a Criteo-shaped one (13 + 26) per architecture at the end. */
static void small(ctr_model_random_opts_t *o, ctr_arch_t arch, uint64_t seed)
{
    ctr_model_random_defaults(o, arch);
    o->n_dense = 4;
    o->n_cat = 7;
    o->d = 16;
    o->rows = 60;
    o->seed = seed;
    o->top = (ctr_widths_t){2, {24, 12}};
    o->bottom = (ctr_widths_t){1, {20}};
    o->bag_features = "C1,C2:mean,C6";
    o->max_bag = 5;
    o->shared = "C4=C2,C6=C1";
}

static void test_models(const ctr_kernel_t **v, size_t nv)
{
    ctr_model_random_opts_t o;
    /* DOT */
    small(&o, CTR_ARCH_DOT, 101);
    check_model("dot lower", &o, v, nv);
    small(&o, CTR_ARCH_DOT, 102);
    o.dot_order = CTR_DOT_UPPER;
    o.act = CTR_ACT_RELU;
    check_model("dot upper relu", &o, v, nv);
    small(&o, CTR_ARCH_DOT, 103);
    o.dot_self = 1;
    o.d = 12;
    check_model("dot lower self d12", &o, v, nv);
    small(&o, CTR_ARCH_DOT, 104);
    o.dot_order = CTR_DOT_UPPER;
    o.dot_self = 1;
    o.n_dense = 0;
    o.pool = CTR_POOL_MEAN;
    check_model("dot upper self no dense", &o, v, nv);
    /* DCNv2 */
    small(&o, CTR_ARCH_DCNV2, 201);
    o.n_cross = 3;
    check_model("dcnv2 full stacked bottom", &o, v, nv);
    small(&o, CTR_ARCH_DCNV2, 202);
    o.no_bottom = 1;
    o.rank = 9;
    check_model("dcnv2 rank 9 stacked raw dense", &o, v, nv);
    small(&o, CTR_ARCH_DCNV2, 203);
    o.dcn_structure = CTR_DCN_PARALLEL;
    o.no_bottom = 1;
    o.act = CTR_ACT_RELU;
    check_model("dcnv2 full parallel raw dense relu", &o, v, nv);
    small(&o, CTR_ARCH_DCNV2, 204);
    o.dcn_structure = CTR_DCN_PARALLEL;
    o.rank = 4;
    o.deep = (ctr_widths_t){2, {33, 17}};
    check_model("dcnv2 rank 4 parallel bottom", &o, v, nv);
    small(&o, CTR_ARCH_DCNV2, 205);
    o.n_dense = 0;
    o.n_cross = 0;
    check_model("dcnv2 no cross no dense", &o, v, nv);
    /* Wukong: n_0 = 8 embeddings */
    small(&o, CTR_ARCH_WUKONG, 301);
    o.n_f = 4;
    o.n_l = 4;
    check_model("wukong identity", &o, v, nv);
    small(&o, CTR_ARCH_WUKONG, 302);
    o.n_f = 6;
    o.n_l = 4;
    o.k = 5;
    o.fmb_ln = CTR_FMB_LN_FLAT;
    o.fmb_out_act = 1;
    check_model("wukong learned res, fmb_ln flat, out act", &o, v, nv);
    small(&o, CTR_ARCH_WUKONG, 303);
    o.n_f = 4;
    o.n_l = 4;
    o.learned_res = 1;
    o.fmb_ln = CTR_FMB_LN_FLAT;
    o.act = CTR_ACT_RELU;
    check_model("wukong learned res where identity fits, flat, relu", &o, v, nv);
    small(&o, CTR_ARCH_WUKONG, 304);
    o.n_wukong = 3;
    o.d = 12;
    o.n_f = 5;
    o.n_l = 3;
    o.k = 7;
    o.fmb = (ctr_widths_t){2, {40, 19}};
    o.fmb_out_act = 1;
    check_model("wukong 3 layers d12 k7 out act", &o, v, nv);
    small(&o, CTR_ARCH_WUKONG, 305);
    o.n_dense = 0;
    o.n_f = 3;
    o.n_l = 0;
    o.n_wukong = 1;
    check_model("wukong no dense, no LCB", &o, v, nv);
    /* MLP with bags and shared tables. */
    small(&o, CTR_ARCH_MLP, 401);
    check_model("mlp bags shared", &o, v, nv);
    /* Criteo-shaped, one of each. */
    const ctr_arch_t archs[] = {CTR_ARCH_MLP, CTR_ARCH_DOT, CTR_ARCH_DCNV2, CTR_ARCH_WUKONG};
    for (size_t a = 0; a < CTR_ARRAY_LEN(archs); a++) {
        char label[64];
        ctr_model_random_defaults(&o, archs[a]);
        o.rows = 200;
        o.seed = 500 + a;
        o.bag_features = "C3,C7:mean";
        o.max_bag = 8;
        o.shared = "C20=C3";
        o.rank = archs[a] == CTR_ARCH_DCNV2 ? 32 : 0;
        snprintf(label, sizeof label, "criteo-shaped %s", ctr_arch_name(archs[a]));
        check_model(label, &o, v, nv);
    }
}

/* ---- refusals, gather, stats, odd variants --------------------------- */

static void test_edges(void)
{
    char err[512];
    ctr_model_random_opts_t o;
    ctr_model_random_t *rm = NULL;
    const ctr_kernel_t *scalar = ctr_kernel_get(CTR_KERNEL_SCALAR);
    small(&o, CTR_ARCH_WUKONG, 601);
    CHECK(ctr_model_random_new(&o, &rm, err, sizeof err) == 0);
    const ctr_model_def_t *def = ctr_model_random_def(rm);
    examples_t ex;
    make_examples(def, 8, 3, &ex);
    ctr_scratch_t *s = NULL;
    CHECK(ctr_scratch_new(def, 8, &s, err, sizeof err) == 0);
    float sc[8];
    CHECK(ctr_forward(def, scalar, 8, ex.dense, ex.rows, sc, NULL, s) == 0);
    /* C1 is a bag (slots 0..4): a row past the table in its last slot, and
     * an empty slot where a single-valued feature (C3, slot 10) sits. */
    uint32_t saved = ex.rows[4];
    ex.rows[4] = def->cat[0].buckets + 1;
    CHECK_EQ_INT(ctr_forward(def, scalar, 8, ex.dense, ex.rows, sc, NULL, s), CTR_ERANGE);
    ex.rows[4] = saved;
    CHECK_EQ_SIZE(ctr_model_slot_of(def, 2), 10);
    saved = ex.rows[10];
    ex.rows[10] = CTR_EMPTY_SLOT;
    CHECK_EQ_INT(ctr_forward(def, scalar, 8, ex.dense, ex.rows, sc, NULL, s), CTR_ERANGE);
    ex.rows[10] = saved;
    /* A bag of empty slots only pools to zeros and scores. */
    for (int q = 0; q < 5; q++)
        ex.rows[q] = CTR_EMPTY_SLOT;
    CHECK(ctr_forward(def, scalar, 8, ex.dense, ex.rows, sc, NULL, s) == 0);
    CHECK(sc[0] > 0.0f && sc[0] < 1.0f);
    /* The hand-made variant with only a linear kernel gets the scalar ops. */
    const ctr_kernel_t bare = {"bare", CTR_KERNEL_SCALAR, 1, ctr__linear_scalar, NULL, NULL, NULL, NULL};
    float sc2[8];
    CHECK(ctr_forward(def, &bare, 8, ex.dense, ex.rows, sc2, NULL, s) == 0);
    CHECK(!memcmp(sc, sc2, sizeof sc));
    /* BLAS (not bit-exact) runs every op and lands near. */
    const ctr_kernel_t *blas = ctr_kernel_get(CTR_KERNEL_BLAS);
    if (blas) {
        CHECK(blas->ln_rows && blas->pool && blas->fma && blas->add);
        CHECK(ctr_forward(def, blas, 8, ex.dense, ex.rows, sc2, NULL, s) == 0);
        for (int i = 0; i < 8; i++)
            CHECK_NEAR(sc2[i], sc[i], 1e-5);
    }
    /* A scratch made for this model refuses a bigger one. */
    ctr_model_random_t *big = NULL;
    ctr_model_random_opts_t ob = o;
    ob.n_f = 12;
    ob.fmb = (ctr_widths_t){1, {200}};
    CHECK(ctr_model_random_new(&ob, &big, err, sizeof err) == 0);
    if (big)
        CHECK_EQ_INT(ctr_forward(ctr_model_random_def(big), scalar, 1, ex.dense, ex.rows, sc,
                                 NULL, s), CTR_EINVAL);
    ctr_model_random_free(big);
    ctr_scratch_free(s);

    /* An inconsistent description is refused with the field named. */
    ctr_model_def_t bad = *def;
    ctr_wukong_layer_def_t layers[2];
    memcpy(layers, def->wukong.layers, sizeof layers);
    bad.wukong.layers = layers;
    layers[1].n_in = 9;
    s = (ctr_scratch_t *)&s;
    CHECK_EQ_INT(ctr_scratch_new(&bad, 4, &s, err, sizeof err), CTR_EINVAL);
    CHECK(!s && strstr(err, "interaction.layers[1].n_in is 9"));
    layers[1].n_in = 16;
    layers[0].res = NULL; /* 8 + 8 out of 8 in needs one */
    CHECK_EQ_INT(ctr_scratch_new(&bad, 4, &s, err, sizeof err), CTR_EINVAL);
    CHECK(strstr(err, "residual must be learned") != NULL);
    printf("refusals: %s\n", err);
    ctr_cat_def_t cats[7];
    memcpy(cats, def->cat, sizeof cats);
    bad = *def;
    bad.cat = cats;
    cats[5].dim = 8;
    CHECK_EQ_INT(ctr_scratch_new(&bad, 4, &s, err, sizeof err), CTR_EINVAL);
    CHECK(strstr(err, "C6") != NULL);
    free_examples(&ex);
    ctr_model_random_free(rm);

    /* Options that make no model. */
    small(&o, CTR_ARCH_DOT, 1);
    o.no_bottom = 1;
    CHECK_EQ_INT(ctr_model_random_new(&o, &rm, err, sizeof err), CTR_EINVAL);
    CHECK(!rm);
    small(&o, CTR_ARCH_DOT, 1);
    o.bag_features = "C9";
    CHECK_EQ_INT(ctr_model_random_new(&o, &rm, err, sizeof err), CTR_EINVAL);
    CHECK(strstr(err, "C9") != NULL);
    small(&o, CTR_ARCH_DOT, 1);
    o.shared = "C1=C4";
    CHECK_EQ_INT(ctr_model_random_new(&o, &rm, err, sizeof err), CTR_EINVAL);
    small(&o, CTR_ARCH_DCNV2, 1);
    o.dcn_structure = CTR_DCN_PARALLEL;
    o.deep.n = 0;
    CHECK_EQ_INT(ctr_model_random_new(&o, &rm, err, sizeof err), CTR_EINVAL);
}

/* ctr_forward_gather for an MLP with bags: the pooled embedding where the
 * single row would sit, sharers reading their owner's table. */
static void test_gather(void)
{
    char err[256];
    ctr_model_random_opts_t o;
    ctr_model_random_t *rm = NULL;
    small(&o, CTR_ARCH_MLP, 701);
    CHECK(ctr_model_random_new(&o, &rm, err, sizeof err) == 0);
    const ctr_model_def_t *def = ctr_model_random_def(rm);
    examples_t ex;
    make_examples(def, 30, 9, &ex);
    const size_t w = ctr_model_input_dim(def);
    float *x = malloc(30 * w * sizeof(float));
    CHECK(ctr_forward_gather(def, 30, ex.dense, ex.rows, x, w) == 0);
    size_t bad = 0;
    for (size_t r = 0; r < 30; r++) {
        const float *xr = x + r * w;
        const uint32_t *slots = ex.rows + r * ex.slots;
        bad += memcmp(xr, ex.dense + r * def->n_dense, def->n_dense * sizeof(float)) != 0;
        size_t off = def->n_dense;
        for (size_t j = 0; j < def->n_cat; j++) {
            const ctr_cat_def_t *c = &def->cat[j];
            const float *t = c->shares ? def->cat[c->shares - 1].table : c->table;
            size_t m = c->bag_max ? c->bag_max : 1, count = 0;
            float e[64] = {0};
            for (size_t q = 0; q < m; q++)
                if (slots[q] != CTR_EMPTY_SLOT) {
                    count++;
                    for (size_t a = 0; a < c->dim; a++)
                        e[a] = c->bag_max ? e[a] + t[slots[q] * c->dim + a] : t[slots[q] * c->dim + a];
                }
            if (c->bag_max && c->pool == CTR_POOL_MEAN && count)
                for (size_t a = 0; a < c->dim; a++)
                    e[a] /= (float)count;
            bad += memcmp(xr + off, e, c->dim * sizeof(float)) != 0;
            off += c->dim;
            slots += m;
        }
    }
    CHECKF(bad == 0, "ctr_forward_gather: %zu embeddings differ", bad);
    printf("gather: bags pooled in place, shared tables read (%zu slots for %zu features)\n",
           ex.slots, def->n_cat);
    free(x);
    free_examples(&ex);
    ctr_model_random_free(rm);
}

/* Parameters and MFLOP per example: exact for an MLP; the two
 * Wukong sizes (about 4.8 and 33 MFLOP an example). */
static void test_stats(void)
{
    char err[256];
    ctr_model_random_opts_t o;
    ctr_model_random_t *rm = NULL;
    ctr_model_stats_t st;
    ctr_model_random_defaults(&o, CTR_ARCH_MLP);
    o.top = (ctr_widths_t){2, {512, 256}};
    o.rows = 10;
    CHECK(ctr_model_random_new(&o, &rm, err, sizeof err) == 0);
    ctr_model_stats(ctr_model_random_def(rm), &st);
    CHECK_EQ_UINT(st.params, 429u * 512 + 512 + 512 * 256 + 256 + 256 + 1);
    CHECK_EQ_UINT(st.macs, 429u * 512 + 512 * 256 + 256);
    CHECK_EQ_UINT(st.emb_params, 26u * 11 * 16);
    CHECK_EQ_UINT(st.flops, 2 * st.macs + 512 + 256 + 1);
    ctr_model_random_free(rm);
    for (int big = 0; big < 2; big++) {
        ctr_model_random_defaults(&o, CTR_ARCH_WUKONG);
        o.rows = 10;
        o.d = big ? 128 : 64;
        o.n_wukong = big ? 3 : 2;
        o.n_f = o.n_l = big ? 16 : 8;
        o.k = 24;
        o.fmb = big ? (ctr_widths_t){2, {1024, 1024}} : (ctr_widths_t){2, {512, 512}};
        o.top = big ? (ctr_widths_t){2, {1024, 512}} : (ctr_widths_t){2, {512, 256}};
        CHECK(ctr_model_random_new(&o, &rm, err, sizeof err) == 0);
        ctr_model_stats(ctr_model_random_def(rm), &st);
        double mflop = (double)st.flops / 1e6, want = big ? 33 : 4.8;
        CHECKF(fabs(mflop - want) < 0.06 * want, "wukong %s: %.2f MFLOP, the issue says about %.1f",
               big ? "large" : "small", mflop, want);
        printf("stats: wukong %s %.2f MFLOP/example, %.2fM parameters\n", big ? "large" : "small",
               mflop, (double)st.params / 1e6);
        ctr_model_random_free(rm);
    }
}

int main(void)
{
    const ctr_kernel_t *v[8];
    size_t nv = variants(v);
    test_ln_op(v, nv);
    test_pool_op(v, nv);
    test_elementwise_ops(v, nv);
    test_edges();
    test_gather();
    test_stats();
    test_models(v, nv);
    return test_main_end();
}
