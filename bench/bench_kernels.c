/* bench_kernels.c - dense-layer kernels on the reference MLP, against
 * OpenBLAS and against the machine's own measured FMA peak.
 *
 *     bench_kernels [--quick] [--json FILE] [--tsv] [--layers]
 *                   [--shape W0,W1,...] [--batches B,...] [--kernels K,...]
 *                   [--pad P]
 *
 * Reference shape: 429 -> 512 -> 256 -> 1 (SmeLU beta 1 on the hidden
 * layers), random weights, batches 1, 4, 16, 64, 256, one thread (OpenBLAS
 * too: OPENBLAS_NUM_THREADS=1 is set by re-executing before OpenBLAS
 * starts its pool, and openblas_set_num_threads(1)). Each figure is the
 * median of 5 repetitions of about 0.2 s. The FMA peak is measured in the
 * same run: 12 independent vfmadd231ps chains on ymm, and on zmm when the
 * CPU has AVX-512. Repetitions are interleaved (peak, then every kernel,
 * 5 times per batch size) and each ratio is the median of per-repetition
 * ratios, so a machine shared with other work skews both sides alike;
 * times are this thread's CPU time (see now()).
 * Lines starting with "tsv\t" (--tsv) and the --json file are for
 * bench/run.sh to paste into the README. OpenBLAS picks its kernels for
 * this CPU (SkylakeX on AVX-512 machines); OPENBLAS_CORETYPE=Haswell in
 * the environment makes it use its AVX2 kernels, the fair reference for
 * the avx2 row.
 * --shape and --batches measure other MLPs (e.g. --shape 429,4096,2048,1
 * for layers whose weights outgrow L2); the targets below are about the
 * reference shape and are only judged on it. --kernels K,... measures
 * only the variants named (e.g. avx2: the scalar kernel takes seconds a
 * pass on wide shapes) besides the default kernel and blas, which the
 * ratios always need. --pad P gives every layer with out > 1 a weight row
 * stride (ldw) of out + P floats, as the model reader does with 16 for
 * widths that are a multiple of 256 (model/model_pad.c); default 0. */
#include <cblas.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctr/common.h"
#include "ctr/kernels.h"
#include "bench_peak.h"

#define REPS 5

#define MAX_LAYERS 8
#define MAX_BATCHES 16
static size_t widths[MAX_LAYERS + 1] = {429, 512, 256, 1};
static int n_layers = 3;
static size_t batches[MAX_BATCHES] = {1, 4, 16, 64, 256};
static size_t n_batches = 5;

static double rep_seconds = 0.2;

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- FMA peak (peak_ymm, peak_zmm: bench_peak.h) ---------------------- */

/* Iterations of fn that take about `seconds`. */
static long calibrate_peak(double (*fn)(long), double seconds)
{
    long iters = 1000;
    while (1) {
        double t0 = now();
        fn(iters);
        double t = now() - t0;
        if (t > seconds / 8 || iters > (1L << 40))
            return (long)((double)iters * seconds / (t > 1e-9 ? t : 1e-9)) + 1;
        iters *= 4;
    }
}

/* ---- the MLP ---------------------------------------------------------- */

typedef struct {
    float *w[MAX_LAYERS], *b[MAX_LAYERS];
    float *x, *h[MAX_LAYERS]; /* h[l]: output of layer l, [max_batch][width] */
} mlp_t;

static uint64_t rng_state = 0x1234567887654321ull;
static float rnd(float lo, float hi)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t u = rng_state * 0x2545f4914f6cdd1dull;
    return lo + (hi - lo) * (float)((u >> 40) * (1.0 / 16777216.0));
}

static float *falloc(size_t n)
{
    float *p = aligned_alloc(64, ((n * sizeof(float)) + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static size_t pad_floats; /* --pad */
static size_t xpad_floats; /* --xpad: activation rows out + xpad apart */

static size_t ldh_of(size_t out)
{
    return out > 1 ? out + xpad_floats : out;
}

static size_t ldw_of(size_t out)
{
    return out > 1 ? out + pad_floats : out;
}

static void mlp_init(mlp_t *m, size_t max_batch)
{
    for (int l = 0; l < n_layers; l++) {
        size_t in = widths[l], out = widths[l + 1], ldw = ldw_of(out);
        m->w[l] = falloc(in * ldw);
        m->b[l] = falloc(out);
        m->h[l] = falloc(max_batch * ldh_of(out));
        float s = 2.0f / (float)in * 1.7f;
        for (size_t k = 0; k < in * ldw; k++)
            m->w[l][k] = k % ldw < out ? rnd(-1.0f, 1.0f) * s : 0.0f;
        for (size_t k = 0; k < out; k++)
            m->b[l][k] = rnd(-0.2f, 0.2f);
    }
    m->x = falloc(max_batch * widths[0]);
    for (size_t k = 0; k < max_batch * widths[0]; k++)
        m->x[k] = rnd(-1.0f, 1.0f);
}

static void mlp_forward(const mlp_t *m, ctr_linear_fn fn, size_t batch, int only_layer)
{
    const float *in = m->x;
    size_t ldin = widths[0];
    for (int l = 0; l < n_layers; l++) {
        size_t wi = widths[l], wo = widths[l + 1];
        ctr_activation_t act = l + 1 < n_layers ? CTR_ACT_SMELU : CTR_ACT_NONE;
        if (only_layer < 0 || only_layer == l)
            fn(in, ldin, batch, wi, m->w[l], ldw_of(wo), m->b[l], wo, m->h[l], ldh_of(wo), act, 1.0f);
        in = m->h[l];
        ldin = ldh_of(wo);
    }
}

static double macs_per_example(int only_layer)
{
    double s = 0;
    for (int l = 0; l < n_layers; l++)
        if (only_layer < 0 || only_layer == l)
            s += (double)widths[l] * (double)widths[l + 1];
    return s;
}

/* Forward passes that take about rep_seconds (at least one). */
static long calibrate_forward(const mlp_t *m, ctr_linear_fn fn, size_t batch, int only_layer)
{
    mlp_forward(m, fn, batch, only_layer); /* warm caches */
    double t0 = now();
    mlp_forward(m, fn, batch, only_layer);
    double once = now() - t0;
    long iters = (long)(rep_seconds / (once > 1e-9 ? once : 1e-9));
    return iters < 1 ? 1 : iters;
}

/* Examples per second over iters forward passes. */
static double time_forward(const mlp_t *m, ctr_linear_fn fn, size_t batch, int only_layer,
                           long iters)
{
    double t0 = now();
    for (long k = 0; k < iters; k++)
        mlp_forward(m, fn, batch, only_layer);
    return (double)iters * (double)batch / (now() - t0);
}

static double median_eps(const mlp_t *m, ctr_linear_fn fn, size_t batch, int only_layer)
{
    long iters = calibrate_forward(m, fn, batch, only_layer);
    double v[REPS];
    for (int r = 0; r < REPS; r++)
        v[r] = time_forward(m, fn, batch, only_layer, iters);
    return median(v, REPS);
}

/* ---- main ------------------------------------------------------------- */

#define MAX_VARIANTS 4

typedef struct {
    const ctr_kernel_t *k;
    int isa512;                          /* judged against the zmm peak */
    double eps[MAX_BATCHES][REPS];       /* examples per second */
    double pct[MAX_BATCHES][REPS];       /* of the peak measured beside it */
} var_t;

static double med_of(const double *v)
{
    double t[REPS];
    memcpy(t, v, sizeof(t));
    return median(t, REPS);
}

/* "a,b,c" -> up to max positive numbers; their count, or 0 if malformed. */
static size_t parse_list(const char *s, size_t *v, size_t max)
{
    size_t n = 0;
    while (*s) {
        char *end;
        unsigned long long u = strtoull(s, &end, 10);
        if (end == s || u == 0 || n == max || (*end && *end != ','))
            return 0;
        v[n++] = (size_t)u;
        s = *end ? end + 1 : end;
    }
    return n;
}

int main(int argc, char **argv)
{
    const char *json = NULL, *only = NULL;
    int tsv = 0, layers = 0, reference = 1;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--quick"))
            rep_seconds = 0.05;
        else if (!strcmp(argv[a], "--json") && a + 1 < argc)
            json = argv[++a];
        else if (!strcmp(argv[a], "--tsv"))
            tsv = 1;
        else if (!strcmp(argv[a], "--layers"))
            layers = 1;
        else if (!strcmp(argv[a], "--shape") && a + 1 < argc) {
            size_t n = parse_list(argv[++a], widths, MAX_LAYERS + 1);
            if (n < 2) {
                fprintf(stderr, "--shape: 2 to %d widths, e.g. 429,4096,2048,1\n",
                        MAX_LAYERS + 1);
                return 2;
            }
            n_layers = (int)n - 1;
            reference = 0;
        } else if (!strcmp(argv[a], "--batches") && a + 1 < argc) {
            n_batches = parse_list(argv[++a], batches, MAX_BATCHES);
            if (!n_batches) {
                fprintf(stderr, "--batches: 1 to %d sizes, e.g. 64,256\n", MAX_BATCHES);
                return 2;
            }
            reference = 0;
        } else if (!strcmp(argv[a], "--kernels") && a + 1 < argc)
            only = argv[++a];
        else if (!strcmp(argv[a], "--pad") && a + 1 < argc)
            pad_floats = strtoul(argv[++a], NULL, 10);
        else if (!strcmp(argv[a], "--xpad") && a + 1 < argc)
            xpad_floats = strtoul(argv[++a], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--quick] [--json FILE] [--tsv] [--layers] "
                    "[--shape W0,W1,...] [--batches B,...] [--kernels K,...] [--pad P] [--xpad P]\n", argv[0]);
            return 2;
        }
    }
    /* OpenBLAS sizes its thread pool when the library loads, from the
     * environment: set it and start again before any BLAS call. */
    const char *obt = getenv("OPENBLAS_NUM_THREADS");
    if (!obt || strcmp(obt, "1")) {
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        execv("/proc/self/exe", argv);
        /* if that fails, openblas_set_num_threads below still applies */
    }
    openblas_set_num_threads(1);

    char err[256];
    const ctr_kernel_t *def = ctr_kernel_select(CTR_KERNEL_AUTO, err, sizeof(err));
    if (!def) {
        fprintf(stderr, "bench_kernels: %s\n", err);
        return 1;
    }
    const int has512 = ctr_cpu_has_avx512(), has2 = ctr_cpu_has_avx2_fma();
    const double peak_secs = rep_seconds / 4;
    const long it2 = has2 ? calibrate_peak(peak_ymm, peak_secs) : 0;
    const long it512 = has512 ? calibrate_peak(peak_zmm, peak_secs) : 0;

    size_t max_batch = 0;
    for (size_t bi = 0; bi < n_batches; bi++)
        max_batch = batches[bi] > max_batch ? batches[bi] : max_batch;
    mlp_t m;
    mlp_init(&m, max_batch);
    char shape[128] = "", shape_json[128] = "";
    for (int l = 0; l <= n_layers; l++) {
        size_t n = strlen(shape), nj = strlen(shape_json);
        snprintf(shape + n, sizeof(shape) - n, "%s%zu", l ? " -> " : "", widths[l]);
        snprintf(shape_json + nj, sizeof(shape_json) - nj, "%s%zu", l ? ", " : "", widths[l]);
    }

    var_t vars[MAX_VARIANTS];
    int nv = 0, vdef = -1, vblas = -1;
    for (int id = 0; id < MAX_VARIANTS; id++) {
        const ctr_kernel_t *k = ctr_kernel_get((ctr_kernel_id_t)id);
        if (!k)
            continue;
        if (only && k != def && id != CTR_KERNEL_BLAS) {
            /* whole names only: "avx2" must not match "avx512" */
            size_t len = strlen(k->name);
            const char *p = only;
            while ((p = strstr(p, k->name)) &&
                   !((p == only || p[-1] == ',') && (p[len] == ',' || !p[len])))
                p += len;
            if (!p)
                continue;
        }
        vars[nv].k = k;
        /* scalar and blas are judged against the widest peak */
        vars[nv].isa512 = has512 && id != CTR_KERNEL_AVX2;
        if (k == def)
            vdef = nv;
        if (id == CTR_KERNEL_BLAS)
            vblas = nv;
        nv++;
    }

    /* Interleaved: per batch size, REPS rounds of (peak, every kernel). */
    const double macs = macs_per_example(-1);
    double peaks2[n_batches * REPS], peaks512[n_batches * REPS];
    for (size_t bi = 0; bi < n_batches; bi++) {
        long iters[MAX_VARIANTS];
        for (int v = 0; v < nv; v++)
            iters[v] = calibrate_forward(&m, vars[v].k->linear, batches[bi], -1);
        for (int r = 0; r < REPS; r++) {
            double p2 = has2 ? peak_ymm(it2) : 0.0;
            double p512 = has512 ? peak_zmm(it512) : 0.0;
            peaks2[bi * REPS + (size_t)r] = p2;
            peaks512[bi * REPS + (size_t)r] = p512;
            for (int v = 0; v < nv; v++) {
                double e = time_forward(&m, vars[v].k->linear, batches[bi], -1, iters[v]);
                double pk = vars[v].isa512 ? p512 : p2;
                vars[v].eps[bi][r] = e;
                vars[v].pct[bi][r] = pk > 0 ? 100.0 * e * 2.0 * macs * 1e-9 / pk : 0.0;
            }
        }
    }
    double peak2 = has2 ? median(peaks2, n_batches * REPS) : 0.0;
    double peak512 = has512 ? median(peaks512, n_batches * REPS) : 0.0;
    double spread2 = has2 ? peaks2[n_batches * REPS - 1] / peaks2[0] : 1.0; /* sorted */

    printf("bench_kernels: MLP %s (SmeLU beta 1), %.0f MACs/example, "
           "1 thread, median of %d x %.2fs thread CPU time\n", shape, macs, REPS, rep_seconds);
    printf("OpenBLAS: %s (core %s)\n", openblas_get_config(), openblas_get_corename());
    printf("FMA peak, measured beside each repetition: ymm %.1f GFLOP/s", peak2);
    if (has512)
        printf(", zmm %.1f GFLOP/s", peak512);
    printf(" per core (median); default kernel: %s\n", def->name);
    if (spread2 > 1.15)
        printf("note: the peak varied %.2fx between repetitions: the machine is busy, "
               "compare ratios rather than absolute figures\n", spread2);
    printf("\n%-10s %6s %14s %10s %8s %10s\n", "kernel", "batch", "examples/s", "GFLOP/s",
           "%peak", "vs OpenBLAS");
    double ratio[MAX_VARIANTS][MAX_BATCHES];
    for (int v = 0; v < nv; v++)
        for (size_t bi = 0; bi < n_batches; bi++) {
            double q[REPS];
            for (int r = 0; r < REPS; r++)
                q[r] = vars[v].eps[bi][r] / vars[vblas].eps[bi][r];
            ratio[v][bi] = median(q, REPS);
            double e = med_of(vars[v].eps[bi]);
            const char *nm = v == vblas && batches[bi] == 1 ? "blas-gemv" : vars[v].k->name;
            printf("%-10s %6zu %14.0f %10.2f %7.1f%% %10.2f\n", nm, batches[bi], e,
                   e * 2.0 * macs * 1e-9, med_of(vars[v].pct[bi]), ratio[v][bi]);
        }

    printf("\nratios (default kernel %s; medians of per-repetition ratios):\n", def->name);
    double min_vs_blas = 1e30;
    for (size_t bi = 0; bi < n_batches; bi++) {
        printf("  batch %3zu: %s / OpenBLAS %s = %.2f\n", batches[bi], def->name,
               batches[bi] == 1 ? "sgemv" : "sgemm", ratio[vdef][bi]);
        if (batches[bi] >= 16 && ratio[vdef][bi] < min_vs_blas)
            min_vs_blas = ratio[vdef][bi];
    }
    const size_t b64 = 3, b1 = 0; /* indices into the reference batches */
    const double frac64 = reference ? med_of(vars[vdef].pct[b64]) / 100.0 : 0.0;
    const double vs_gemv = reference ? ratio[vdef][b1] : 0.0;
    if (reference) {
        printf("  target: default vs OpenBLAS sgemm at batch >= 16: worst %.2f (target >= 1.0) %s\n",
               min_vs_blas, min_vs_blas >= 1.0 ? "MET" : "MISSED");
        printf("  target: default at batch 64 vs FMA peak: %.2f (target >= 0.75) %s\n", frac64,
               frac64 >= 0.75 ? "MET" : "MISSED");
        printf("  target: default at batch 1 vs sgemv: %.2f (target >= 1.0) %s\n", vs_gemv,
               vs_gemv >= 1.0 ? "MET" : "MISSED");
    }

    if (layers) {
        const double pk = vars[vdef].isa512 ? peak512 : peak2;
        printf("\nper layer, default kernel %s and blas (GFLOP/s; %% of the median peak):\n",
               def->name);
        for (int l = 0; l < n_layers; l++)
            for (size_t bi = 0; bi < n_batches; bi++) {
                double lm = macs_per_example(l);
                double gd = median_eps(&m, def->linear, batches[bi], l) * 2.0 * lm * 1e-9;
                double gb = median_eps(&m, vars[vblas].k->linear, batches[bi], l) * 2.0 * lm * 1e-9;
                printf("  layer %d (%zu->%zu) batch %3zu: %s %7.2f (%5.1f%%)  blas %7.2f\n",
                       l, widths[l], widths[l + 1], batches[bi], def->name, gd,
                       100.0 * gd / pk, gb);
            }
    }

    if (tsv) {
        printf("\ntsv\tkernel\tbatch\texamples_per_s\tgflops\tpct_peak\tvs_openblas\n");
        for (int v = 0; v < nv; v++)
            for (size_t bi = 0; bi < n_batches; bi++) {
                double e = med_of(vars[v].eps[bi]);
                printf("tsv\t%s\t%zu\t%.0f\t%.2f\t%.1f\t%.3f\n", vars[v].k->name, batches[bi],
                       e, e * 2.0 * macs * 1e-9, med_of(vars[v].pct[bi]), ratio[v][bi]);
            }
        printf("tsv\tpeak_ymm\t-\t-\t%.2f\t100\t-\n", peak2);
        if (has512)
            printf("tsv\tpeak_zmm\t-\t-\t%.2f\t100\t-\n", peak512);
    }

    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) {
            perror(json);
            return 1;
        }
        fprintf(f, "{\n  \"shape\": [%s],\n  \"macs_per_example\": %.0f,\n", shape_json, macs);
        fprintf(f, "  \"threads\": 1,\n  \"reps\": %d,\n  \"rep_seconds\": %.3f,\n", REPS,
                rep_seconds);
        fprintf(f, "  \"default_kernel\": \"%s\",\n", def->name);
        fprintf(f, "  \"openblas_core\": \"%s\",\n", openblas_get_corename());
        fprintf(f, "  \"peak_gflops\": {\"ymm\": %.2f, \"zmm\": %.2f},\n", peak2, peak512);
        fprintf(f, "  \"results\": [\n");
        for (int v = 0; v < nv; v++)
            for (size_t bi = 0; bi < n_batches; bi++) {
                double e = med_of(vars[v].eps[bi]);
                fprintf(f, "    {\"kernel\": \"%s\", \"batch\": %zu, \"examples_per_s\": %.0f, "
                        "\"gflops\": %.3f, \"pct_peak\": %.2f, \"vs_openblas\": %.3f}%s\n",
                        vars[v].k->name, batches[bi], e, e * 2.0 * macs * 1e-9,
                        med_of(vars[v].pct[bi]), ratio[v][bi],
                        v + 1 == nv && bi + 1 == n_batches ? "" : ",");
            }
        if (reference)
            fprintf(f, "  ],\n  \"targets\": {\"min_default_vs_sgemm_batch_ge_16\": %.3f, "
                    "\"default_b64_vs_peak\": %.3f, \"default_b1_vs_sgemv\": %.3f}\n}\n",
                    min_vs_blas, frac64, vs_gemv);
        else
            fprintf(f, "  ],\n  \"targets\": {}\n}\n");
        fclose(f);
    }
    return 0;
}
