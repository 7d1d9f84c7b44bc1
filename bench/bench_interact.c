/* bench_interact.c - the forward pass of every architecture, one thread.
 *
 *     bench_interact [--quick] [--kernel K] [--models NAME,...] [--batches B,...]
 *                    [--tsv] [--json FILE]
 *
 * Models (ctr/model_random.h, in memory, Criteo-shaped: 13 dense, 26
 * categorical; the FLOP counts are ctr_model_stats'):
 *   mlp           the reference MLP, 13 + 26 x 16 -> 512 -> 256 -> 1
 *   dlrm          DOT, MLPerf's DLRM shapes: d 128, bottom 512-256-128,
 *                 top 1024-1024-512-256-1, 10,000 rows a table
 *   dcnv2         DCNv2 stacked, 3 cross layers of rank 512 over
 *                 27 x 128, bottom 512-256-128, top 1024-1024-512-256-1
 *   wukong-small  d 64, 2 layers, n_F = n_L = 8, k 24, FMB 512-512, top
 *                 512-256 (the 4.8 MFLOP model)
 *   wukong-large  d 128, 3 layers, n_F = n_L = 16, k 24, FMB 1024-1024, top
 *                 1024-512 (the 33 MFLOP model)
 * Batches 1, 16, 64, 256. Each figure is the median of 5 repetitions of
 * about 0.3 s (thread CPU time, so time spent descheduled on a shared
 * machine is not counted), over a pool of 4,096 random examples; the FMA
 * peak (12 independent vfmadd chains, on zmm for the avx512 kernel, else
 * ymm) is measured in the same run. Lines starting with "tsv\t" (--tsv) and the
 * --json file are for reports. */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctr/common.h"
#include "ctr/features.h"
#include "ctr/forward.h"
#include "ctr/kernels.h"
#include "ctr/model_random.h"
#include "ctr/model_stats.h"

#define REPS 5
#define POOL 4096
#define MAX_BATCHES 16

static double rep_seconds = 0.3;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(double), cmp_double);
    return v[n / 2];
}

/* ---- FMA peak (as bench_kernels) ------------------------------------ */

static volatile float sink;

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

__attribute__((target("avx2,fma"))) static double peak_ymm(long iters)
{
    PEAK_BODY(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, 8)
}

__attribute__((target("avx512f,avx2,fma"))) static double peak_zmm(long iters)
{
    PEAK_BODY(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, 16)
}

/* The peak of the kernel's own registers: zmm for avx512, else ymm. */
static double measure_peak(const ctr_kernel_t *k)
{
    double (*fn)(long) = k->id == CTR_KERNEL_AVX512 ? peak_zmm : ctr_cpu_has_avx2_fma() ? peak_ymm : NULL;
    if (!fn)
        return 0;
    long iters = 1000;
    for (;;) {
        double t0 = now();
        fn(iters);
        if (now() - t0 > 0.02)
            break;
        iters *= 2;
    }
    double v[REPS];
    for (int r = 0; r < REPS; r++)
        v[r] = fn(iters);
    return median(v, REPS);
}

/* ---- models --------------------------------------------------------- */

typedef struct {
    const char *name;
    void (*setup)(ctr_model_random_opts_t *o);
} bench_model_t;

static void m_mlp(ctr_model_random_opts_t *o)
{
    ctr_model_random_defaults(o, CTR_ARCH_MLP);
    o->rows = 100000;
    o->top = (ctr_widths_t){2, {512, 256}};
}

static void m_dlrm(ctr_model_random_opts_t *o)
{
    ctr_model_random_defaults(o, CTR_ARCH_DOT);
    o->d = 128;
    o->rows = 10000;
    o->bottom = (ctr_widths_t){2, {512, 256}};
    o->top = (ctr_widths_t){4, {1024, 1024, 512, 256}};
}

static void m_dcnv2(ctr_model_random_opts_t *o)
{
    m_dlrm(o);
    o->arch = CTR_ARCH_DCNV2;
    o->n_cross = 3;
    o->rank = 512;
}

static void m_wukong_small(ctr_model_random_opts_t *o)
{
    ctr_model_random_defaults(o, CTR_ARCH_WUKONG);
    o->d = 64;
    o->rows = 20000;
    o->bottom = (ctr_widths_t){2, {512, 256}};
    o->n_wukong = 2;
    o->n_f = o->n_l = 8;
    o->k = 24;
    o->fmb = (ctr_widths_t){2, {512, 512}};
    o->top = (ctr_widths_t){2, {512, 256}};
}

static void m_wukong_large(ctr_model_random_opts_t *o)
{
    m_wukong_small(o);
    o->d = 128;
    o->rows = 10000;
    o->n_wukong = 3;
    o->n_f = o->n_l = 16;
    o->fmb = (ctr_widths_t){2, {1024, 1024}};
    o->top = (ctr_widths_t){2, {1024, 512}};
}

static const bench_model_t models[] = {
    {"mlp", m_mlp}, {"dlrm", m_dlrm}, {"dcnv2", m_dcnv2},
    {"wukong-small", m_wukong_small}, {"wukong-large", m_wukong_large},
};

/* Examples/s of batches of `batch` taken in turn from the pool. */
static double run(const ctr_model_def_t *def, const ctr_kernel_t *k, ctr_scratch_t *s,
                  const float *dense, const uint32_t *rows, size_t batch, double secs)
{
    const size_t nd = def->n_dense, ns = ctr_model_slots(def);
    float scores[256];
    size_t ex = 0, off = 0;
    double t0 = now(), t;
    do {
        if (off + batch > POOL)
            off = 0;
        if (ctr_forward(def, k, batch, dense + off * nd, rows + off * ns, scores, NULL, s)) {
            fprintf(stderr, "bench_interact: ctr_forward failed\n");
            exit(1);
        }
        off += batch;
        ex += batch;
    } while ((t = now() - t0) < secs);
    return (double)ex / t;
}

static int parse_list(const char *text, size_t *v, size_t max)
{
    size_t n = 0;
    for (const char *p = text; *p && n < max;) {
        char *end;
        v[n++] = strtoul(p, &end, 10);
        if (end == p)
            return -1;
        p = *end == ',' ? end + 1 : end;
    }
    return (int)n;
}

int main(int argc, char **argv)
{
    const char *kname = "auto", *only = NULL, *json = NULL;
    size_t batches[MAX_BATCHES] = {1, 16, 64, 256}, nb = 4;
    int tsv = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            rep_seconds = 0.05;
        else if (!strcmp(argv[i], "--tsv"))
            tsv = 1;
        else if (!strcmp(argv[i], "--kernel") && i + 1 < argc)
            kname = argv[++i];
        else if (!strcmp(argv[i], "--models") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--json") && i + 1 < argc)
            json = argv[++i];
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc) {
            int n = parse_list(argv[++i], batches, MAX_BATCHES);
            if (n <= 0) {
                fprintf(stderr, "bench_interact: --batches B,B,... (1..256)\n");
                return 2;
            }
            nb = (size_t)n;
            for (size_t b = 0; b < nb; b++)
                if (batches[b] < 1 || batches[b] > 256) {
                    fprintf(stderr, "bench_interact: batches are 1..256\n");
                    return 2;
                }
        } else {
            fprintf(stderr, "usage: bench_interact [--quick] [--kernel K] [--models NAME,...] "
                            "[--batches B,...] [--tsv] [--json FILE]\n");
            return 2;
        }
    }
    char err[512];
    int kid = ctr_kernel_parse(kname);
    const ctr_kernel_t *k = kid < 0 ? NULL : ctr_kernel_select((ctr_kernel_id_t)kid, err, sizeof err);
    if (!k) {
        fprintf(stderr, "bench_interact: --kernel %s: %s\n", kname, kid < 0 ? "unknown" : err);
        return 2;
    }
    FILE *jf = json ? fopen(json, "w") : NULL;
    if (json && !jf) {
        perror(json);
        return 1;
    }
    double peak = measure_peak(k);
    printf("forward pass, one thread, kernel %s; FMA peak %.1f GFLOP/s (%s)\n", k->name, peak,
           k->id == CTR_KERNEL_AVX512 ? "zmm" : "ymm");
    printf("%-13s %8s %8s %6s %12s %9s %6s\n", "model", "MFLOP/ex", "Mparams", "batch",
           "examples/s", "GFLOP/s", "%peak");
    if (jf)
        fprintf(jf, "{\"kernel\":\"%s\",\"peak_gflops\":%.2f,\"models\":[", k->name, peak);
    int first_model = 1;
    for (size_t mi = 0; mi < CTR_ARRAY_LEN(models); mi++) {
        if (only) {
            const char *p = strstr(only, models[mi].name);
            size_t len = strlen(models[mi].name);
            if (!p || (p != only && p[-1] != ',') || (p[len] && p[len] != ','))
                continue;
        }
        ctr_model_random_opts_t o;
        models[mi].setup(&o);
        ctr_model_random_t *rm;
        if (ctr_model_random_new(&o, &rm, err, sizeof err)) {
            fprintf(stderr, "bench_interact: %s: %s\n", models[mi].name, err);
            return 1;
        }
        const ctr_model_def_t *def = ctr_model_random_def(rm);
        ctr_model_stats_t st;
        ctr_model_stats(def, &st);
        const size_t nd = def->n_dense, ns = ctr_model_slots(def);
        float *dense = malloc(POOL * nd * sizeof(float) + 1);
        uint32_t *rows = malloc(POOL * ns * sizeof(uint32_t) + 1);
        uint64_t x = 0x9e3779b97f4a7c15ull;
        for (size_t i = 0; i < POOL * nd; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            dense[i] = (float)(x >> 40) / 16777216.0f * 3.0f;
        }
        for (size_t i = 0; i < POOL * ns; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            rows[i] = (uint32_t)((x >> 33) % (o.rows + 1));
        }
        ctr_scratch_t *s;
        if (ctr_scratch_new(def, 256, &s, err, sizeof err)) {
            fprintf(stderr, "bench_interact: %s: %s\n", models[mi].name, err);
            return 1;
        }
        const double mflop = (double)st.flops / 1e6;
        if (jf)
            fprintf(jf, "%s{\"name\":\"%s\",\"mflop\":%.4f,\"params\":%llu,\"batches\":[",
                    first_model ? "" : ",", models[mi].name, mflop, (unsigned long long)st.params);
        first_model = 0;
        for (size_t bi = 0; bi < nb; bi++) {
            double v[REPS];
            run(def, k, s, dense, rows, batches[bi], rep_seconds / 4); /* warm */
            for (int r = 0; r < REPS; r++)
                v[r] = run(def, k, s, dense, rows, batches[bi], rep_seconds);
            double eps = median(v, REPS), gf = eps * mflop / 1e3;
            printf("%-13s %8.3f %8.2f %6zu %12.0f %9.1f %5.0f%%\n", models[mi].name, mflop,
                   (double)st.params / 1e6, batches[bi], eps, gf, peak > 0 ? 100 * gf / peak : 0);
            if (tsv)
                printf("tsv\t%s\t%zu\t%.0f\t%.2f\t%.4f\n", models[mi].name, batches[bi], eps, gf, mflop);
            if (jf)
                fprintf(jf, "%s{\"batch\":%zu,\"examples_per_s\":%.1f,\"gflops\":%.3f}",
                        bi ? "," : "", batches[bi], eps, gf);
            fflush(stdout);
        }
        if (jf)
            fprintf(jf, "]}");
        ctr_scratch_free(s);
        free(dense);
        free(rows);
        ctr_model_random_free(rm);
    }
    if (jf) {
        fprintf(jf, "]}\n");
        fclose(jf);
    }
    return 0;
}
