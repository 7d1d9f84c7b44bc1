/* metrics.c - AUC, logloss, calibration, relative PD, flip rate. */
#include "ctr/metrics.h"

#include <math.h>
#include <stdlib.h>

#include "ctr/common.h"

typedef struct {
    float s;
    uint8_t y;
} scored_t;

static int cmp_scored(const void *a, const void *b)
{
    float x = ((const scored_t *)a)->s, y = ((const scored_t *)b)->s;
    return (x > y) - (x < y);
}

double ctr_metrics_auc(const float *scores, const uint8_t *labels, size_t n)
{
    scored_t *v = malloc((n ? n : 1) * sizeof(*v));
    if (!v)
        return CTR_ENOMEM;
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        v[i].s = scores[i];
        v[i].y = labels[i] ? 1 : 0;
        pos += v[i].y;
    }
    size_t neg = n - pos;
    if (!pos || !neg) {
        free(v);
        return NAN;
    }
    qsort(v, n, sizeof(*v), cmp_scored);
    /* Sum of the positives' ranks (1-based), each tie group getting its
     * average rank; then U = R+ - P(P+1)/2 and AUC = U / (P N). */
    double rank_sum = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        size_t p = 0;
        while (j < n && v[j].s == v[i].s)
            p += v[j++].y;
        double avg_rank = ((double)(i + 1) + (double)j) / 2.0;
        rank_sum += avg_rank * (double)p;
        i = j;
    }
    free(v);
    double u = rank_sum - (double)pos * ((double)pos + 1.0) / 2.0;
    return u / ((double)pos * (double)neg);
}

double ctr_metrics_logloss(const float *scores, const uint8_t *labels, size_t n)
{
    if (!n)
        return NAN;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double p = scores[i];
        if (p < CTR_LOGLOSS_EPS)
            p = CTR_LOGLOSS_EPS;
        if (p > 1.0 - CTR_LOGLOSS_EPS)
            p = 1.0 - CTR_LOGLOSS_EPS;
        sum -= labels[i] ? log(p) : log1p(-p);
    }
    return sum / (double)n;
}

int ctr_metrics_compute(const float *scores, const uint8_t *labels, size_t n,
                        ctr_metrics_t *out)
{
    out->n = n;
    out->positives = 0;
    double sp = 0;
    for (size_t i = 0; i < n; i++) {
        out->positives += labels[i] ? 1 : 0;
        sp += scores[i];
    }
    out->mean_pred = n ? sp / (double)n : NAN;
    out->pos_rate = n ? (double)out->positives / (double)n : NAN;
    out->logloss = ctr_metrics_logloss(scores, labels, n);
    out->auc = ctr_metrics_auc(scores, labels, n);
    return out->auc < 0 ? CTR_ENOMEM : 0;
}

double ctr_metrics_pd_one(float a, float b)
{
    double x = a, y = b;
    if (x < CTR_PD_FLOOR && y < CTR_PD_FLOOR)
        return 0;
    return 2.0 * fabs(x - y) / (x + y);
}

double ctr_metrics_pd(const float *a, const float *b, size_t n)
{
    if (!n)
        return NAN;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += ctr_metrics_pd_one(a[i], b[i]);
    return sum / (double)n;
}

/* Decades where retrained models usually sit apart from identical ones
 * (docs/REPRODUCIBILITY.md: seed-to-seed PD 0.15-0.18, int8 tables 4e-4),
 * then finer steps where an alert threshold goes. */
const double ctr_pd_hist_bounds[CTR_PD_HIST_BOUNDS] = {
    1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0,
};

size_t ctr_pd_hist_bucket(double pd)
{
    size_t i = 0;
    while (i < CTR_PD_HIST_BOUNDS && !(pd <= ctr_pd_hist_bounds[i]))
        i++;
    return i;
}

double ctr_metrics_flip_rate(const float *a, const float *b, size_t n)
{
    if (!n)
        return NAN;
    size_t f = 0;
    for (size_t i = 0; i < n; i++)
        f += (a[i] >= 0.5f) != (b[i] >= 0.5f);
    return (double)f / (double)n;
}
