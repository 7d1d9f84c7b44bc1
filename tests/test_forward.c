/* test_forward.c - the determinism contract of the whole forward pass.
 *
 * The score of an example must depend only on the model and the example:
 * the same bits at every batch size 1..512, at every position in a batch,
 * in any batch composition, on any thread, and with every bit-exact kernel
 * variant (scalar, AVX2, AVX-512 native where the CPU has it, and the
 * AVX-512 source compiled against SIMDe everywhere). */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "ctr/common.h"
#include "ctr/features.h"
#include "ctr/forward.h"
#include "ctr/kernels.h"
#include "kernels_int.h"
#include "testutil.h"

#define N_EXAMPLES 700

typedef struct {
    const ctr_model_def_t *def;
    size_t n;
    float *dense;
    uint32_t *rows;
} examples_t;

static void make_examples(const ctr_model_def_t *def, size_t n, uint64_t seed, examples_t *ex)
{
    test_rng_t rng = {seed};
    ex->def = def;
    ex->n = n;
    ex->dense = malloc((n * def->n_dense + 1) * sizeof(float));
    ex->rows = malloc((n * def->n_cat + 1) * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < def->n_dense; j++) {
            double raw = (test_rng_next(&rng) % 5 == 0) ? NAN : (double)(test_rng_next(&rng) % 60) - 5;
            ex->dense[i * def->n_dense + j] = ctr_features_dense(&def->dense[j], raw);
        }
        for (size_t j = 0; j < def->n_cat; j++) {
            uint32_t v = (uint32_t)(test_rng_next(&rng) % 5000);
            ex->rows[i * def->n_cat + j] = v % 7 == 0 ? CTR_MISSING_ROW : ctr_features_cat_row_int(&def->cat[j], v);
        }
    }
}

/* Scores examples idx[0..n) as consecutive batches of `batch`. */
static int score_batched(const examples_t *ex, const ctr_kernel_t *k, const size_t *idx,
                         size_t n, size_t batch, size_t scratch_batch, float *out)
{
    const ctr_model_def_t *def = ex->def;
    ctr_scratch_t *s;
    CHECK(ctr_scratch_new(def, scratch_batch, &s, NULL, 0) == 0);
    float *dense = malloc((batch * def->n_dense + 1) * sizeof(float));
    uint32_t *rows = malloc((batch * def->n_cat + 1) * sizeof(uint32_t));
    float *scores = malloc(batch * sizeof(float));
    int rc = 0;
    for (size_t start = 0; start < n && !rc; start += batch) {
        size_t m = n - start < batch ? n - start : batch;
        for (size_t r = 0; r < m; r++) {
            size_t e = idx[start + r];
            memcpy(dense + r * def->n_dense, ex->dense + e * def->n_dense, def->n_dense * sizeof(float));
            memcpy(rows + r * def->n_cat, ex->rows + e * def->n_cat, def->n_cat * sizeof(uint32_t));
        }
        rc = ctr_forward(def, k, m, dense, rows, scores, NULL, s);
        for (size_t r = 0; r < m; r++)
            out[idx[start + r]] = scores[r];
    }
    free(scores);
    free(rows);
    free(dense);
    ctr_scratch_free(s);
    return rc;
}

static size_t count_diff(const float *a, const float *b, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        d += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    return d;
}

/* The AVX-512 source built against SIMDe, wrapped as a kernel variant. */
static const ctr_kernel_t simde_avx512 = {
    "avx512-simde", CTR_KERNEL_AVX512, 1, ctr__linear_avx512_simde,
    ctr__ln_rows_avx512_simde, ctr__pool_avx512_simde, ctr__fma_avx512_simde,
    ctr__add_avx512_simde};

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

struct thread_arg {
    const examples_t *ex;
    const ctr_kernel_t *k;
    const size_t *idx;
    size_t n;
    float *out;
    int rc;
};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    a->rc = score_batched(a->ex, a->k, a->idx, a->n, 37, 64, a->out);
    return NULL;
}

static void check_model(const char *path, size_t n_examples, const size_t *batches, size_t n_batches)
{
    char err[512];
    ctr_model_t *m = NULL;
    int rc = ctr_model_open(path, &m, err, sizeof(err));
    CHECKF(rc == 0, "open %s: %s", path, err);
    if (rc)
        return;
    const ctr_model_def_t *def = ctr_model_def(m);
    examples_t ex;
    make_examples(def, n_examples, 99, &ex);
    size_t *order = malloc(n_examples * sizeof(size_t));
    for (size_t i = 0; i < n_examples; i++)
        order[i] = i;

    /* Reference: scalar, one example at a time. */
    const ctr_kernel_t *scalar = ctr_kernel_get(CTR_KERNEL_SCALAR);
    float *ref = malloc(n_examples * sizeof(float));
    float *got = malloc(n_examples * sizeof(float));
    CHECK(score_batched(&ex, scalar, order, n_examples, 1, 1, ref) == 0);
    size_t distinct = 0;
    for (size_t i = 0; i < n_examples; i++) {
        CHECKF(ref[i] > 0.0f && ref[i] < 1.0f, "score %zu = %g", i, ref[i]);
        distinct += i && ref[i] != ref[i - 1];
    }
    CHECKF(distinct > n_examples / 2, "scores barely vary (%zu distinct)", distinct);

    const ctr_kernel_t *v[8];
    size_t nv = variants(v);
    for (size_t vi = 0; vi < nv; vi++) {
        for (size_t b = 0; b < n_batches; b++) {
            memset(got, 0, n_examples * sizeof(float));
            CHECK(score_batched(&ex, v[vi], order, n_examples, batches[b], 512, got) == 0);
            size_t d = count_diff(ref, got, n_examples);
            CHECKF(d == 0, "%s batch %zu: %zu of %zu scores differ from scalar batch 1",
                   v[vi]->name, batches[b], d, n_examples);
        }
        /* Chunking: a scratch smaller than the batch. */
        CHECK(score_batched(&ex, v[vi], order, n_examples, 100, 7, got) == 0);
        CHECKF(count_diff(ref, got, n_examples) == 0, "%s chunked", v[vi]->name);
        /* Composition: shuffled neighbours, odd batch. */
        test_rng_t rng = {vi + 5};
        for (size_t i = n_examples - 1; i > 0; i--) {
            size_t j = test_rng_next(&rng) % (i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        CHECK(score_batched(&ex, v[vi], order, n_examples, 61, 512, got) == 0);
        CHECKF(count_diff(ref, got, n_examples) == 0, "%s shuffled", v[vi]->name);
        /* Threads: two scoring at once, each its own scratch. */
        memset(got, 0, n_examples * sizeof(float));
        pthread_t th[2];
        struct thread_arg ta[2];
        for (int t = 0; t < 2; t++) {
            ta[t] = (struct thread_arg){&ex, v[vi], order + t * (n_examples / 2),
                                        t ? n_examples - n_examples / 2 : n_examples / 2, got, 0};
            pthread_create(&th[t], NULL, thread_main, &ta[t]);
        }
        for (int t = 0; t < 2; t++) {
            pthread_join(th[t], NULL);
            CHECK(ta[t].rc == 0);
        }
        CHECKF(count_diff(ref, got, n_examples) == 0, "%s two threads", v[vi]->name);
        printf("%s: bit-identical to scalar batch 1 on %zu examples, %zu batch sizes, shuffled, chunked, 2 threads\n",
               v[vi]->name, n_examples, n_batches);
    }

    /* Logits come out too, and sigmoid(logit) is the score. */
    ctr_scratch_t *s;
    CHECK(ctr_scratch_new(def, 8, &s, NULL, 0) == 0);
    float scores[8], logits[8];
    CHECK(ctr_forward(def, scalar, 8, ex.dense, ex.rows, scores, logits, s) == 0);
    for (int i = 0; i < 8; i++)
        CHECK(ctr_sigmoid(logits[i]) == scores[i] && scores[i] == ref[i]);
    /* A row past the table is refused, not read. */
    uint32_t saved = ex.rows[0];
    ex.rows[0] = def->cat[0].buckets + 1;
    CHECK(ctr_forward(def, scalar, 1, ex.dense, ex.rows, scores, NULL, s) == CTR_ERANGE);
    ex.rows[0] = saved;
    ctr_scratch_free(s);
    /* A scratch for no examples is refused with a reason, *out NULL. */
    char why[128] = "";
    s = (ctr_scratch_t *)&s;
    CHECK(ctr_scratch_new(def, 0, &s, why, sizeof why) == CTR_EINVAL && !s && why[0]);

    free(got);
    free(ref);
    free(order);
    free(ex.dense);
    free(ex.rows);
    ctr_model_close(m);
}

static bool same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    while (same) {
        int ca = getc(fa), cb = getc(fb);
        same = ca == cb;
        if (ca == EOF)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

/* Resident bytes of the process's mappings of path (Rss in /proc/self/smaps). */
static long mapped_rss(const char *path)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[1024];
    long kb = 0;
    int in = 0;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        long v;
        if (line[0] && strchr("0123456789abcdef", line[0])) { /* a mapping's first line */
            size_t n = strlen(line), pl = strlen(path);
            in = n > pl && !strncmp(line + n - 1 - pl, path, pl);
        } else if (in && sscanf(line, "Rss: %ld kB", &v) == 1) {
            kb += v;
        }
    }
    fclose(f);
    return kb * 1024;
}

/* A model with 1024- and 256-wide layers: the reader pads their rows
 * (ldw = out + 16, model_pad.c), and the loaded model scores the same
 * bits as the in-memory def it was written from, with every variant at
 * several batch sizes; rewritten, it gives the same file bytes. */
static void test_padded_layers(void)
{
    enum { ND = 13, NC = 4, DIM = 8, BUCKETS = 100 };
    static const uint32_t widths[] = {ND + NC * DIM, 1024, 256, 1};
    test_rng_t rng = {77};
    ctr_dense_def_t dense[ND];
    ctr_cat_def_t cat[NC];
    ctr_layer_def_t layers[3];
    float *bufs[NC + 6];
    size_t nb = 0;
    static const char *const dnames[ND] = {"I1", "I2", "I3", "I4", "I5", "I6", "I7",
                                           "I8", "I9", "I10", "I11", "I12", "I13"};
    static const char *const cnames[NC] = {"C1", "C2", "C3", "C4"};
    for (size_t j = 0; j < ND; j++)
        dense[j] = (ctr_dense_def_t){.name = dnames[j], .transform = CTR_TRANSFORM_LOG1P};
    for (size_t j = 0; j < NC; j++) {
        size_t n = (size_t)(BUCKETS + 1) * DIM;
        float *t = bufs[nb++] = malloc(n * sizeof(float));
        for (size_t k = 0; k < n; k++)
            t[k] = test_rng_uniform(&rng, -0.5f, 0.5f);
        cat[j] = (ctr_cat_def_t){.name = cnames[j], .buckets = BUCKETS, .dim = DIM, .seed = 50 + j,
                                 .table = t};
    }
    for (size_t l = 0; l < 3; l++) {
        size_t in = widths[l], out = widths[l + 1];
        float *w = bufs[nb++] = malloc(in * out * sizeof(float));
        float *b = bufs[nb++] = malloc(out * sizeof(float));
        for (size_t k = 0; k < in * out; k++)
            w[k] = test_rng_uniform(&rng, -1.0f, 1.0f) * 3.4f / (float)in;
        for (size_t k = 0; k < out; k++)
            b[k] = test_rng_uniform(&rng, -0.2f, 0.2f);
        layers[l] = (ctr_layer_def_t){.in = (uint32_t)in, .out = (uint32_t)out, .weight = w, .bias = b};
    }
    const ctr_model_def_t mem = {.name = "padded", .n_dense = ND, .dense = dense, .n_cat = NC,
                                 .cat = cat, .n_layers = 3, .layers = layers,
                                 .activation = CTR_ACT_SMELU, .beta = 1.0f};
    char path[512], path2[512], err[256];
    snprintf(path, sizeof path, "%s/padded.ctrm", test_tmpdir());
    snprintf(path2, sizeof path2, "%s/padded2.ctrm", test_tmpdir());
    ctr_model_t *m = NULL;
    CHECKF(ctr_model_write(path, &mem, NULL, NULL, err, sizeof err) == 0, "%s", err);
    CHECKF(ctr_model_open(path, &m, err, sizeof err) == 0, "%s", err);
    if (!m)
        goto out;
    const ctr_model_def_t *def = ctr_model_def(m);
    CHECK_EQ_UINT(def->layers[0].ldw, 1040u);
    CHECK_EQ_UINT(def->layers[1].ldw, 272u);
    CHECK_EQ_UINT(def->layers[2].ldw, 0u);
    CHECK(((uintptr_t)def->layers[0].weight & 63) == 0 && ((uintptr_t)def->layers[1].weight & 63) == 0);
    CHECKF(ctr_model_verify(m, err, sizeof err) == 0, "%s", err);
    /* verify read every page; the padded weights' originals are dropped
     * again, so only the rest of the file stays mapped (a page at each
     * end of a tensor may be shared with its neighbour). */
    {
        struct stat st;
        CHECK(stat(path, &st) == 0);
        const long padded = (long)(widths[0] * 1024 + 1024 * 256) * (long)sizeof(float);
        const long rss = mapped_rss(path), bound = (long)st.st_size - padded + 4 * 4096;
        CHECKF(rss >= 0 && rss <= bound, "%ld bytes of %s resident after verify, want <= %ld "
               "(the padded weights' mapped pages dropped)", rss, path, bound);
    }
    CHECKF(ctr_model_write(path2, def, NULL, NULL, err, sizeof err) == 0, "%s", err);
    CHECKF(same_file(path, path2), "%s rewritten from its padded load differs from the original", path);

    enum { N = 70 };
    examples_t ex;
    make_examples(&mem, N, 5, &ex);
    size_t idx[N];
    for (size_t i = 0; i < N; i++)
        idx[i] = i;
    const ctr_kernel_t *v[8];
    size_t nv = variants(v);
    static const size_t batches[] = {1, 7, 64};
    float want[N], got[N];
    for (size_t i = 0; i < nv; i++)
        for (size_t b = 0; b < CTR_ARRAY_LEN(batches); b++) {
            examples_t e = ex;
            CHECK(score_batched(&e, v[i], idx, N, batches[b], 64, want) == 0);
            e.def = def;
            CHECK(score_batched(&e, v[i], idx, N, batches[b], 64, got) == 0);
            CHECKF(count_diff(want, got, N) == 0, "%s batch %zu: %zu of %d scores differ loaded vs in memory",
                   v[i]->name, batches[b], count_diff(want, got, N), N);
        }
    printf("padded layers: ldw 1040 / 272, %zu variants x %zu batch sizes the same bits as in memory\n",
           nv, CTR_ARRAY_LEN(batches));
    free(ex.dense);
    free(ex.rows);
out:
    ctr_model_close(m);
    for (size_t i = 0; i < nb; i++)
        free(bufs[i]);
}

int main(void)
{
    char path[512];
    const size_t all_batches[] = {1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 127, 128, 255, 256, 257, 511, 512};
    /* A small model with awkward widths (tails everywhere) ... */
    uint32_t hidden_small[] = {37, 17};
    snprintf(path, sizeof(path), "%s/small.ctrm", test_tmpdir());
    CHECK(test_make_model(path, 1, 5, 6, 50, 3, hidden_small, 2, CTR_ACT_SMELU, 0.75f) == 0);
    check_model(path, N_EXAMPLES, all_batches, CTR_ARRAY_LEN(all_batches));
    /* ... ReLU and logistic regression ... */
    snprintf(path, sizeof(path), "%s/relu.ctrm", test_tmpdir());
    CHECK(test_make_model(path, 2, 3, 4, 20, 8, hidden_small, 1, CTR_ACT_RELU, 1.0f) == 0);
    check_model(path, 300, all_batches, CTR_ARRAY_LEN(all_batches));
    snprintf(path, sizeof(path), "%s/lr.ctrm", test_tmpdir());
    CHECK(test_make_model(path, 3, 13, 26, 100, 4, NULL, 0, CTR_ACT_SMELU, 1.0f) == 0);
    check_model(path, 300, all_batches, CTR_ARRAY_LEN(all_batches));
    /* ... and the reference shape, 13 + 26 x 16 = 429 -> 512 -> 256 -> 1. */
    uint32_t hidden_ref[] = {512, 256};
    const size_t ref_batches[] = {1, 3, 16, 64, 100, 256, 512};
    snprintf(path, sizeof(path), "%s/ref.ctrm", test_tmpdir());
    CHECK(test_make_model(path, 4, 13, 26, 1000, 16, hidden_ref, 2, CTR_ACT_SMELU, 1.0f) == 0);
    check_model(path, 520, ref_batches, CTR_ARRAY_LEN(ref_batches));
    test_padded_layers();

    /* A scratch sized for a small model refuses a bigger one. */
    ctr_model_t *small = NULL, *big = NULL;
    char err[256];
    snprintf(path, sizeof(path), "%s/small.ctrm", test_tmpdir());
    CHECK(ctr_model_open(path, &small, err, sizeof(err)) == 0);
    snprintf(path, sizeof(path), "%s/ref.ctrm", test_tmpdir());
    CHECK(ctr_model_open(path, &big, err, sizeof(err)) == 0);
    if (small && big) {
        ctr_scratch_t *s;
        CHECK(ctr_scratch_new(ctr_model_def(small), 4, &s, NULL, 0) == 0);
        float d[13] = {0}, sc[1];
        uint32_t r[26] = {0};
        CHECK(ctr_forward(ctr_model_def(big), ctr_kernel_get(CTR_KERNEL_SCALAR), 1, d, r, sc, NULL, s) == CTR_EINVAL);
        ctr_scratch_free(s);
    }
    ctr_model_close(small);
    ctr_model_close(big);
    return test_main_end();
}
