/* hist.h - log-bucketed latency histogram: fixed memory, no per-sample
 * storage, at most 0.4% relative error from 256 ns to 18 minutes.
 *
 * Values are nanoseconds. Below 256 ns every value has its own bucket
 * (exact). Above, each power of two [2^k, 2^(k+1)) is cut into 128 equal
 * buckets, so a bucket is at most 1/128 of its lower edge wide; a
 * percentile is reported as the midpoint of the bucket that holds the
 * sample of that rank, which is within 1/256 (0.39%) of it. The promise
 * made to users (docs/LOADTEST.md) is the looser "1% from 1 us to 60 s".
 * Values of 2^40 ns (18.3 min) and more land in the top bucket; min, max,
 * count and sum are kept exactly.
 *
 * Percentiles use the nearest-rank definition: p(q) is the smallest value
 * v such that at least q% of the samples are <= v, i.e. the sample of rank
 * ceil(q/100 * n) in sorted order (rank 1 for q = 0). */
#ifndef CTR_LOADTEST_HIST_H
#define CTR_LOADTEST_HIST_H

#include <stdint.h>

#define CTR__HIST_SUB_BITS 7                          /* 128 buckets per octave */
#define CTR__HIST_LINEAR (2u << CTR__HIST_SUB_BITS)   /* 256 exact buckets */
#define CTR__HIST_TOP_BIT 40                          /* values < 2^40 ns */
#define CTR__HIST_BUCKETS \
    (CTR__HIST_LINEAR + (CTR__HIST_TOP_BIT - CTR__HIST_SUB_BITS - 1) * (1u << CTR__HIST_SUB_BITS))

typedef struct {
    uint64_t count;
    uint64_t min, max;     /* exact; min = UINT64_MAX when empty */
    double sum;            /* for the mean */
    uint64_t counts[CTR__HIST_BUCKETS];
} ctr__hist_t;

void ctr__hist_init(ctr__hist_t *h);
void ctr__hist_add(ctr__hist_t *h, uint64_t ns);
/* dst += src. */
void ctr__hist_merge(ctr__hist_t *dst, const ctr__hist_t *src);
/* Nearest-rank percentile q in [0, 100], in ns; 0 for an empty histogram.
 * q = 100 gives the exact max, q = 0 the exact min. */
uint64_t ctr__hist_percentile(const ctr__hist_t *h, double q);
/* Mean in ns; 0 when empty. */
double ctr__hist_mean(const ctr__hist_t *h);

#endif
