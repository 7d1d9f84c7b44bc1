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

/* Fraction of examples whose side of 0.5 differs (a >= 0.5 vs b >= 0.5). */
double ctr_metrics_flip_rate(const float *a, const float *b, size_t n);

#endif
