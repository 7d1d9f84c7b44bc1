/* bench_peak.h - what the single-thread benchmarks (bench_kernels,
 * bench_interact, bench_qgather) share: the thread CPU clock they time with and the
 * measured FMA peak they report against. Header-only, included once by
 * each benchmark program. */
#ifndef CTR_BENCH_PEAK_H
#define CTR_BENCH_PEAK_H

#include <immintrin.h>
#include <string.h>
#include <time.h>

/* Thread CPU time, not wall time: on a machine shared with other work the
 * time this thread spent descheduled is not counted, so the figures show
 * what one core does (they equal wall time on an idle machine). */
static inline double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Keeps the peak loops' results (and the benchmarks' own) observable. */
static volatile float sink;

/* 12 independent chains, enough to cover 4-cycle latency on two FMA
 * ports; a * m + c converges, so no denormals or infinities. */
#define PEAK_BODY(T, SET1, FMA, ADD, LANES)                                   \
    T m = SET1(0.9999999f), c = SET1(1e-7f);                                  \
    T a0 = SET1(1.0f), a1 = SET1(1.1f), a2 = SET1(1.2f), a3 = SET1(1.3f);     \
    T a4 = SET1(1.4f), a5 = SET1(1.5f), a6 = SET1(1.6f), a7 = SET1(1.7f);     \
    T a8 = SET1(1.8f), a9 = SET1(1.9f), a10 = SET1(2.0f), a11 = SET1(2.1f);   \
    double t0 = now();                                                        \
    for (long k = 0; k < iters; k++) {                                        \
        a0 = FMA(a0, m, c); a1 = FMA(a1, m, c); a2 = FMA(a2, m, c);           \
        a3 = FMA(a3, m, c); a4 = FMA(a4, m, c); a5 = FMA(a5, m, c);           \
        a6 = FMA(a6, m, c); a7 = FMA(a7, m, c); a8 = FMA(a8, m, c);           \
        a9 = FMA(a9, m, c); a10 = FMA(a10, m, c); a11 = FMA(a11, m, c);       \
        __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3));        \
    }                                                                         \
    double t = now() - t0;                                                    \
    T s = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));  \
    s = ADD(s, ADD(ADD(a8, a9), ADD(a10, a11)));                              \
    float out[LANES];                                                         \
    memcpy(out, &s, sizeof(out));                                             \
    sink += out[0];                                                           \
    return 12.0 * LANES * 2.0 * (double)iters / t * 1e-9;

__attribute__((target("avx2,fma"))) static inline double peak_ymm(long iters)
{
    PEAK_BODY(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, 8)
}

__attribute__((target("avx512f,avx2,fma"))) static inline double peak_zmm(long iters)
{
    PEAK_BODY(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, 16)
}

#endif
