/* test_metrics.c - AUC against a brute-force pairwise count (with ties),
 * logloss, calibration, relative PD and flip rate; PD of a model with
 * itself is exactly 0 whatever the thread count. */
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
            CHECKF(isnan(a), "one class must give NaN, got %g", a);
        } else {
            double b = brute_auc(s, y, n);
            CHECKF(fabs(a - b) < 1e-12, "trial %d n=%zu: auc %.15f brute %.15f", trial, n, a, b);
        }
        free(s);
        free(y);
    }
    /* Hand cases: perfect, inverted, all tied. */
    float s1[] = {0.1f, 0.2f, 0.8f, 0.9f};
    uint8_t y1[] = {0, 0, 1, 1}, y2[] = {1, 1, 0, 0};
    CHECK(ctr_metrics_auc(s1, y1, 4) == 1.0);
    CHECK(ctr_metrics_auc(s1, y2, 4) == 0.0);
    float s3[] = {0.5f, 0.5f, 0.5f, 0.5f};
    CHECK(ctr_metrics_auc(s3, y1, 4) == 0.5);
}

static void test_logloss_calibration(void)
{
    float s[] = {0.9f, 0.2f, 0.0f, 1.0f};
    uint8_t y[] = {1, 0, 0, 1};
    double want = -(log((double)0.9f) + log1p(-(double)0.2f) + log1p(-CTR_LOGLOSS_EPS) +
                    log(1.0 - CTR_LOGLOSS_EPS)) / 4.0;
    CHECKF(fabs(ctr_metrics_logloss(s, y, 4) - want) < 1e-12, "logloss %.12f want %.12f",
           ctr_metrics_logloss(s, y, 4), want);
    uint8_t bad[] = {0, 1, 1, 0};
    CHECK(isfinite(ctr_metrics_logloss(s, bad, 4))); /* clipped, not infinite */
    ctr_metrics_t m;
    CHECK(ctr_metrics_compute(s, y, 4, &m) == 0);
    CHECK(m.n == 4 && m.positives == 2);
    CHECK(fabs(m.mean_pred - ((double)0.9f + (double)0.2f + 1.0) / 4.0) < 1e-12);
    CHECK(m.pos_rate == 0.5);
    CHECK(m.auc == 1.0);
}

static void test_pd(void)
{
    float a[] = {0.1f, 0.5f, 0.4f, 1e-9f, 0.0f};
    float b[] = {0.3f, 0.5f, 0.6f, 1e-8f, 0.2f};
    double want = (2.0 * fabs((double)0.1f - (double)0.3f) / ((double)0.1f + (double)0.3f) + 0.0 +
                   2.0 * fabs((double)0.4f - (double)0.6f) / ((double)0.4f + (double)0.6f) +
                   0.0 /* both below the floor */ + 2.0) / 5.0;
    CHECKF(fabs(ctr_metrics_pd(a, b, 5) - want) < 1e-12, "pd %.12f want %.12f",
           ctr_metrics_pd(a, b, 5), want);
    CHECK(ctr_metrics_pd(a, a, 5) == 0.0);
    /* flips: 0.4 -> 0.6 crosses; 0.5 vs 0.5 does not. */
    CHECK(ctr_metrics_flip_rate(a, b, 5) == 1.0 / 5.0);
    CHECK(ctr_metrics_flip_rate(a, a, 5) == 0.0);
}

/* A model scored twice (different thread counts, so different chunking)
 * gives identical scores: PD exactly 0, no flips. */
static void test_pd_self_model(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/m.ctrm", test_tmpdir());
    uint32_t hidden[] = {24, 12};
    if (test_make_model(path, 7, 13, 26, 200, 4, hidden, 2, CTR_ACT_SMELU, 1.0f)) {
        CHECK(!"test_make_model");
        return;
    }
    ctr_model_t *m;
    char err[256];
    if (ctr_model_open(path, &m, err, sizeof(err))) {
        CHECKF(0, "open: %s", err);
        return;
    }
    const ctr_model_def_t *def = ctr_model_def(m);
    size_t n = 3000;
    float *dense = malloc(n * 13 * sizeof(float));
    uint32_t *rows = malloc(n * 26 * sizeof(uint32_t));
    float *s1 = malloc(n * sizeof(float)), *s2 = malloc(n * sizeof(float));
    test_rng_t r = {9};
    for (size_t i = 0; i < n * 13; i++)
        dense[i] = test_rng_uniform(&r, -2, 2);
    for (size_t i = 0; i < n * 26; i++)
        rows[i] = (uint32_t)(test_rng_next(&r) % 201);
    const ctr_kernel_t *k = ctr_kernel_select(CTR_KERNEL_AUTO, err, sizeof(err));
    CHECK(k != NULL);
    if (k) {
        CHECK(ctr_score_dataset(def, k, n, dense, rows, s1, 1) == 0);
        CHECK(ctr_score_dataset(def, k, n, dense, rows, s2, 3) == 0);
        CHECK(memcmp(s1, s2, n * sizeof(float)) == 0);
        CHECK(ctr_metrics_pd(s1, s2, n) == 0.0);
        CHECK(ctr_metrics_flip_rate(s1, s2, n) == 0.0);
    }
    free(dense);
    free(rows);
    free(s1);
    free(s2);
    ctr_model_close(m);
    remove(path);
}

int main(void)
{
    test_auc();
    test_logloss_calibration();
    test_pd();
    test_pd_self_model();
    return test_main_end();
}
