/* test_metrics.c - the offline metrics on inputs whose answers are known.
 *
 * AUC against a brute-force pairwise count (with ties) and hand-computed
 * cases; logloss with its clipping; relative PD (DESIGN.md: the mean of
 * 2|a - b| / (a + b), terms with both below 1e-7 counting 0) on values
 * chosen so that each plausible wrong formula gives another answer; flip
 * rate; and PD 0 between a model's scores cut into batches in different
 * ways, against PD > 0 for a second model. */
#include <math.h>
#include <stdlib.h>

#include "ctr/common.h"
#include "ctr/data.h"
#include "ctr/forward.h"
#include "ctr/kernels.h"
#include "ctr/metrics.h"
#include "ctr/model.h"
#include "ctr/score.h"
#include "testutil.h"

/* P(score of a positive > score of a negative) + 0.5 P(equal), O(n^2). */
static double brute_auc(const float *s, const uint8_t *y, size_t n)
{
    double num = 0, pairs = 0;
    for (size_t i = 0; i < n; i++) {
        if (!y[i])
            continue;
        for (size_t j = 0; j < n; j++) {
            if (y[j])
                continue;
            pairs += 1;
            num += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
        }
    }
    return num / pairs;
}

static void test_auc(void)
{
    test_rng_t r = {42};
    int one_class = 0;
    for (int trial = 0; trial < 200; trial++) {
        size_t n = 2 + test_rng_next(&r) % 300;
        int levels = 1 + (int)(test_rng_next(&r) % 12); /* few levels: many ties */
        float *s = malloc(n * sizeof(float));
        uint8_t *y = malloc(n);
        size_t pos = 0;
        for (size_t i = 0; i < n; i++) {
            s[i] = trial % 3 == 0 ? test_rng_uniform(&r, 0, 1)
                                  : (float)(test_rng_next(&r) % (uint64_t)levels) / (float)levels;
            y[i] = (uint8_t)(test_rng_next(&r) % 3 == 0);
            pos += y[i];
        }
        double a = ctr_metrics_auc(s, y, n);
        if (pos == 0 || pos == n) {
            one_class++;
            CHECKF(isnan(a), "one class must give NaN, got %g", a);
        } else if (!CHECK_NEAR(a, brute_auc(s, y, n), 1e-12)) {
            fprintf(stderr, "  trial %d, n = %zu\n", trial, n);
        }
        free(s);
        free(y);
    }
    printf("auc: 200 random cases, %d of one class\n", one_class);
    /* Hand cases: perfect, inverted, all tied, one swapped pair (3 of 4
     * pairs ordered), a tie across the classes (3.5 of 4). */
    float s1[] = {0.1f, 0.2f, 0.8f, 0.9f};
    uint8_t y1[] = {0, 0, 1, 1}, y2[] = {1, 1, 0, 0};
    CHECK_EQ_DBL(ctr_metrics_auc(s1, y1, 4), 1.0);
    CHECK_EQ_DBL(ctr_metrics_auc(s1, y2, 4), 0.0);
    float s3[] = {0.5f, 0.5f, 0.5f, 0.5f};
    CHECK_EQ_DBL(ctr_metrics_auc(s3, y1, 4), 0.5);
    float s4[] = {0.1f, 0.4f, 0.35f, 0.8f};
    CHECK_EQ_DBL(ctr_metrics_auc(s4, y1, 4), 0.75);
    float s5[] = {0.5f, 0.5f, 0.2f, 0.9f};
    uint8_t y5[] = {1, 0, 0, 1};
    CHECK_EQ_DBL(ctr_metrics_auc(s5, y5, 4), 0.875);
    CHECK(isnan(ctr_metrics_auc(s1, y1, 2))); /* negatives only */
}

static void test_logloss_calibration(void)
{
    float s[] = {0.9f, 0.2f, 0.0f, 1.0f};
    uint8_t y[] = {1, 0, 0, 1};
    double want = -(log((double)0.9f) + log1p(-(double)0.2f) + log1p(-CTR_LOGLOSS_EPS) +
                    log(1.0 - CTR_LOGLOSS_EPS)) / 4.0;
    CHECK_NEAR(ctr_metrics_logloss(s, y, 4), want, 1e-12);
    /* Labels the other way: 0 and 1 predicted for the wrong class are
     * clipped to eps and 1 - eps, each costing about -log(eps) = 16.1,
     * not infinity. */
    uint8_t bad[] = {0, 1, 1, 0};
    double want_bad = -(log1p(-(double)0.9f) + log((double)0.2f) + log(CTR_LOGLOSS_EPS) +
                        log1p(-(1.0 - CTR_LOGLOSS_EPS))) / 4.0;
    CHECK_NEAR(ctr_metrics_logloss(s, bad, 4), want_bad, 1e-12);
    CHECK(isnan(ctr_metrics_logloss(s, y, 0)));

    ctr_metrics_t m;
    CHECK_EQ_INT(ctr_metrics_compute(s, y, 4, &m), 0);
    CHECK_EQ_SIZE(m.n, 4);
    CHECK_EQ_SIZE(m.positives, 2);
    CHECK_NEAR(m.mean_pred, ((double)0.9f + (double)0.2f + 1.0) / 4.0, 1e-12);
    CHECK_EQ_DBL(m.pos_rate, 0.5);
    CHECK_EQ_DBL(m.logloss, ctr_metrics_logloss(s, y, 4));
    CHECK_EQ_DBL(m.auc, 1.0);
}

static double pd1(float a, float b)
{
    return ctr_metrics_pd(&a, &b, 1);
}

static void test_pd(void)
{
    /* Hand-computed on values exact in binary: (2 * 0.5 / 1.0 + 0) / 2.
     * Without the factor 2 this is 0.25; over |a - b| / a it is 1.0; over
     * max(a, b) 0.33; as a mean absolute difference 0.25. */
    float a[] = {0.25f, 0.5f}, b[] = {0.75f, 0.5f};
    CHECK_EQ_DBL(ctr_metrics_pd(a, b, 2), 0.5);
    CHECK_EQ_DBL(pd1(0.125f, 0.375f), 1.0);    /* 2 * 0.25 / 0.5 */
    CHECK_NEAR(pd1(0.5f, 0.25f), 2.0 / 3.0, 1e-15); /* 2 * 0.25 / 0.75 */
    CHECK_EQ_DBL(pd1(0.0f, 0.5f), 2.0);        /* the largest a term can be */
    CHECK_EQ_DBL(pd1(1.0f, 0.0f), 2.0);

    /* The 1e-7 rule: a term whose two predictions are both below 1e-7
     * counts 0 (the plain formula would give 2 * 8e-8 / 1e-7 = 1.6)... */
    CHECK_EQ_DBL(pd1(1e-8f, 9e-8f), 0.0);
    CHECK_EQ_DBL(pd1(nextafterf(1e-7f, 0.0f), 0.0f), 0.0); /* 9.99999951e-8 */
    /* ... but one below and one above is an ordinary term: 2 * 1.9 / 2.1
     * (float 1e-7 is 1.00000001e-7, just above the floor). */
    CHECK_NEAR(pd1(1e-8f, 2e-7f), 38.0 / 21.0, 1e-6);
    CHECK_EQ_DBL(pd1(1e-7f, 0.0f), 2.0);
    CHECK_EQ_DBL(pd1(0.0f, 0.0f), 0.0); /* not 0/0 */
    /* A term the rule zeroes still counts in n: (0 + 1.0) / 2, where the
     * mean over the counted terms alone would be 1.0. */
    float fa[] = {1e-8f, 0.125f}, fb[] = {9e-8f, 0.375f};
    CHECK_EQ_DBL(ctr_metrics_pd(fa, fb, 2), 0.5);

    /* The mixed case: both below the floor, identical, a plain term, a
     * zero against a positive. */
    float ma[] = {0.1f, 0.5f, 0.4f, 1e-9f, 0.0f};
    float mb[] = {0.3f, 0.5f, 0.6f, 1e-8f, 0.2f};
    double want = (2.0 * fabs((double)0.1f - (double)0.3f) / ((double)0.1f + (double)0.3f) + 0.0 +
                   2.0 * fabs((double)0.4f - (double)0.6f) / ((double)0.4f + (double)0.6f) +
                   0.0 + 2.0) / 5.0;
    CHECK_NEAR(ctr_metrics_pd(ma, mb, 5), want, 1e-12);
    CHECK_NEAR(ctr_metrics_pd(ma, mb, 5), (1.0 + 0.4 + 2.0) / 5.0, 1e-7); /* 0.68 */

    /* Symmetric and zero on identical inputs, exactly, on random arrays
     * with zeros and tiny values among them (0 vs 0 would be NaN without
     * the floor rule). */
    test_rng_t r = {5};
    enum { N = 1000 };
    static float x[N], y[N];
    for (size_t i = 0; i < N; i++) {
        uint64_t u = test_rng_next(&r);
        x[i] = u % 7 == 0 ? 0.0f : u % 7 == 1 ? 1e-9f * (float)(u % 50) : test_rng_uniform(&r, 0, 1);
        y[i] = u % 5 == 0 ? 0.0f : u % 5 == 1 ? x[i] : test_rng_uniform(&r, 0, 1);
    }
    double pxy = ctr_metrics_pd(x, y, N);
    CHECKF(pxy > 0.0 && pxy < 2.0, "pd %g", pxy);
    CHECK_EQ_DBL(ctr_metrics_pd(y, x, N), pxy);
    CHECK_EQ_DBL(ctr_metrics_pd(x, x, N), 0.0);
    CHECK_EQ_DBL(ctr_metrics_pd(y, y, N), 0.0);
    CHECK(isnan(ctr_metrics_pd(x, y, 0)));

    /* Flips: the sides are >= 0.5 and < 0.5. 0.1 -> 0.3 and 0.5 -> 0.5
     * stay; 0.4 -> 0.6 crosses. */
    CHECK_EQ_DBL(ctr_metrics_flip_rate(ma, mb, 5), 1.0 / 5.0);
    CHECK_EQ_DBL(ctr_metrics_flip_rate(ma, ma, 5), 0.0);
    float fl[] = {0.5f, nextafterf(0.5f, 0.0f), 0.9f, 0.1f};
    float fr[] = {nextafterf(0.5f, 0.0f), 0.5f, 0.8f, 0.6f};
    CHECK_EQ_DBL(ctr_metrics_flip_rate(fl, fr, 4), 0.75);
    CHECK(isnan(ctr_metrics_flip_rate(fl, fr, 0)));
}

/* One model's scores whatever the batching, so its PD with itself is 0.
 * ctr_score_dataset cuts the examples into fixed chunks of 512 whatever the
 * thread count (threads only change which thread, and which scratch arena,
 * scores a chunk), so 1 and 3 threads compare the same chunking; calling
 * ctr_forward on chunks of 1, 7, 33 and 1000 cuts them differently. A
 * second model scores the same examples with PD > 0: the zero is not
 * an artefact of the metric. */
static void test_pd_self_model(void)
{
    char path[512], path2[512];
    snprintf(path, sizeof(path), "%s/m.ctrm", test_tmpdir());
    snprintf(path2, sizeof(path2), "%s/m2.ctrm", test_tmpdir());
    uint32_t hidden[] = {24, 12};
    if (!CHECK_EQ_INT(test_make_model(path, 7, 13, 26, 200, 4, hidden, 2, CTR_ACT_SMELU, 1.0f), 0) ||
        !CHECK_EQ_INT(test_make_model(path2, 8, 13, 26, 200, 4, hidden, 2, CTR_ACT_SMELU, 1.0f), 0))
        return;
    ctr_model_t *m = NULL, *m2 = NULL;
    char err[256];
    if (ctr_model_open(path, &m, err, sizeof(err)) || ctr_model_open(path2, &m2, err, sizeof(err))) {
        CHECKF(0, "open: %s", err);
        ctr_model_close(m);
        return;
    }
    const ctr_model_def_t *def = ctr_model_def(m);
    const size_t n = 3000;
    float *dense = malloc(n * 13 * sizeof(float));
    uint32_t *rows = malloc(n * 26 * sizeof(uint32_t));
    float *s1 = malloc(n * sizeof(float)), *s3 = malloc(n * sizeof(float));
    float *sc = malloc(n * sizeof(float)), *other = malloc(n * sizeof(float));
    test_rng_t r = {9};
    for (size_t i = 0; i < n * 13; i++)
        dense[i] = test_rng_uniform(&r, -2, 2);
    for (size_t i = 0; i < n * 26; i++)
        rows[i] = (uint32_t)(test_rng_next(&r) % 201);
    const ctr_kernel_t *k = ctr_kernel_select(CTR_KERNEL_AUTO, err, sizeof(err));
    ctr_scratch_t *scr = NULL;
    CHECKF(k != NULL, "kernel: %s", err);
    CHECK_EQ_INT(ctr_scratch_new(def, 1000, &scr, NULL, 0), 0);
    if (k && scr) {
        CHECK_EQ_INT(ctr_score_dataset(def, k, n, dense, rows, s1, 1), 0);
        CHECK_EQ_INT(ctr_score_dataset(def, k, n, dense, rows, s3, 3), 0);
        CHECK_EQ_INT(ctr_score_dataset(ctr_model_def(m2), k, n, dense, rows, other, 2), 0);
        static const size_t cuts[] = {1, 7, 33, 1000};
        for (size_t i = 0, c = 0; i < n; c++) {
            size_t len = cuts[c % 4] < n - i ? cuts[c % 4] : n - i;
            if (!CHECK_EQ_INT(ctr_forward(def, k, len, dense + i * 13, rows + i * 26, sc + i,
                                          NULL, scr), 0))
                break;
            i += len;
        }
        size_t finite = 0;
        for (size_t i = 0; i < n; i++) {
            finite += isfinite(s1[i]) && s1[i] > 0.0f && s1[i] < 1.0f;
            if (!CHECK_EQ_BITS(s3[i], s1[i]) || !CHECK_EQ_BITS(sc[i], s1[i])) {
                fprintf(stderr, "  example %zu\n", i);
                break;
            }
        }
        CHECK_EQ_SIZE(finite, n); /* probabilities, so PD is defined */
        CHECK_EQ_DBL(ctr_metrics_pd(s1, s3, n), 0.0);
        CHECK_EQ_DBL(ctr_metrics_pd(s1, sc, n), 0.0);
        CHECK_EQ_DBL(ctr_metrics_flip_rate(s1, sc, n), 0.0);
        double pd = ctr_metrics_pd(s1, other, n);
        CHECKF(pd > 1e-3 && pd < 2.0, "PD against another model: %g", pd);
        printf("pd: a model with itself 0, against another seed %.4f\n", pd);
    }
    ctr_scratch_free(scr);
    free(dense);
    free(rows);
    free(s1);
    free(s3);
    free(sc);
    free(other);
    ctr_model_close(m);
    ctr_model_close(m2);
    remove(path);
    remove(path2);
    remove(test_tmpdir());
}

int main(void)
{
    test_auc();
    test_logloss_calibration();
    test_pd();
    test_pd_self_model();
    return test_main_end();
}
