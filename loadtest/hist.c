/* hist.c - log-bucketed latency histogram (see hist.h for the bucket
 * layout and its error bound). */
#include "hist.h"

#include <math.h>
#include <string.h>

#define SUB (1u << CTR__HIST_SUB_BITS)

static unsigned bucket_of(uint64_t v)
{
    if (v < CTR__HIST_LINEAR)
        return (unsigned)v;
    if (v >> CTR__HIST_TOP_BIT)
        return CTR__HIST_BUCKETS - 1;
    unsigned k = 63u - (unsigned)__builtin_clzll(v);     /* 2^k <= v, k >= 8 */
    unsigned shift = k - CTR__HIST_SUB_BITS;
    return CTR__HIST_LINEAR + (k - CTR__HIST_SUB_BITS - 1) * SUB +
           (unsigned)((v >> shift) - SUB);
}

/* Lowest value of bucket b and its width. */
static void bucket_range(unsigned b, uint64_t *lo, uint64_t *width)
{
    if (b < CTR__HIST_LINEAR) {
        *lo = b;
        *width = 1;
        return;
    }
    unsigned octave = (b - CTR__HIST_LINEAR) / SUB;      /* 0 for k = 8 */
    unsigned sub = (b - CTR__HIST_LINEAR) % SUB;
    unsigned shift = octave + 1;
    *lo = (uint64_t)(SUB + sub) << shift;
    *width = (uint64_t)1 << shift;
}

void ctr__hist_init(ctr__hist_t *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

void ctr__hist_add(ctr__hist_t *h, uint64_t ns)
{
    h->counts[bucket_of(ns)]++;
    h->count++;
    h->sum += (double)ns;
    if (ns < h->min)
        h->min = ns;
    if (ns > h->max)
        h->max = ns;
}

void ctr__hist_merge(ctr__hist_t *dst, const ctr__hist_t *src)
{
    if (!src->count)
        return;
    for (unsigned i = 0; i < CTR__HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t ctr__hist_percentile(const ctr__hist_t *h, double q)
{
    if (!h->count)
        return 0;
    if (q >= 100.0)
        return h->max;
    if (q <= 0.0)
        return h->min;
    /* The nearest rank, with a little slack so that q = 99.9 of 1000
     * samples is rank 999 even though 99.9/100*1000 rounds to 999.0000001. */
    double r = ceil(q / 100.0 * (double)h->count - 1e-9);
    uint64_t rank = r < 1.0 ? 1 : (uint64_t)r;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (unsigned b = 0; b < CTR__HIST_BUCKETS; b++) {
        seen += h->counts[b];
        if (seen >= rank) {
            uint64_t lo, w;
            bucket_range(b, &lo, &w);
            uint64_t v = lo + (w - 1) / 2;
            if (v < h->min)
                v = h->min;
            if (v > h->max)
                v = h->max;
            return v;
        }
    }
    return h->max;
}

double ctr__hist_mean(const ctr__hist_t *h)
{
    return h->count ? h->sum / (double)h->count : 0.0;
}
