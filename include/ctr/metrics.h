/* metrics.h - offline quality and reproducibility metrics.
 *
 * Scores are probabilities (float, as the model outputs them); labels are
 * 0 or 1. Every function is deterministic and computes in double. */
#ifndef CTR_METRICS_H
#define CTR_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Clipping applied to p before log in the logloss: [eps, 1 - eps]. */
#define CTR_LOGLOSS_EPS 1e-7

/* Terms of the relative PD where both predictions are below this count as
 * 0 (DESIGN.md). */
#define CTR_PD_FLOOR 1e-7

typedef struct {
    size_t n;
    size_t positives;
    double auc;        /* NaN when only one class is present */
    double logloss;
    double mean_pred;  /* calibration: mean score ... */
    double pos_rate;   /* ... against the positive rate */
} ctr_metrics_t;

/* Area under the ROC curve: the probability that a random positive scores
 * above a random negative, ties counting one half. Rank-based (Mann-Whitney
 * U with average ranks for ties), O(n log n). Returns NaN if labels hold
 * only one class, a negative code on allocation failure (never a valid
 * AUC). */
double ctr_metrics_auc(const float *scores, const uint8_t *labels, size_t n);

/* Mean binary cross-entropy with scores clipped to [eps, 1 - eps]. */
double ctr_metrics_logloss(const float *scores, const uint8_t *labels, size_t n);

/* All of the above. Returns 0, or CTR_ENOMEM. */
int ctr_metrics_compute(const float *scores, const uint8_t *labels, size_t n,
                        ctr_metrics_t *out);

/* Relative prediction difference between two models on the same examples:
 * (1/n) sum 2|a - b| / (a + b), terms with a and b both < CTR_PD_FLOOR = 0. */
double ctr_metrics_pd(const float *a, const float *b, size_t n);
/* One example's term of ctr_metrics_pd: 2|a - b| / (a + b) in double, 0
 * when a and b are both < CTR_PD_FLOOR. ctrd's shadow histogram and
 * `ctrtool audit pd --shadow` both use it, so they agree bit for bit. */
double ctr_metrics_pd_one(float a, float b);

/* The bucket upper bounds of the shadow PD histogram (ctrd's
 * ctrd_shadow_pd and `ctrtool audit pd --shadow`): 1e-7, 1e-6, ..., then
 * finer steps up to 2 (the largest PD); a value goes in the first bucket
 * whose bound it does not exceed (Prometheus "le"). */
#define CTR_PD_HIST_BOUNDS 14
extern const double ctr_pd_hist_bounds[CTR_PD_HIST_BOUNDS];
/* The bucket of pd: 0..CTR_PD_HIST_BOUNDS (the last: above every bound). */
size_t ctr_pd_hist_bucket(double pd);

/* Fraction of examples whose side of 0.5 differs (a >= 0.5 vs b >= 0.5). */
double ctr_metrics_flip_rate(const float *a, const float *b, size_t n);

#endif
