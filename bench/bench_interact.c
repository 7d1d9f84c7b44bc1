/* bench_interact.c - the forward pass of every architecture, one thread.
 *
 *     bench_interact [--quick] [--kernel K] [--models NAME,...] [--batches B,...]
 *                    [--reps N] [--seconds S] [--no-peak] [--no-pad] [--tsv] [--json FILE]
 *     bench_interact --model FILE [--name NAME] [--dump FILE [--dump-n N]] [same options]
 *
 * --model times a .ctrm file instead of the in-memory models (what
 * bench/bench_arch.sh does, next to torch on the same file). --dump FILE
 * writes the example pool and the scores of its first N examples (default
 * 512), for a check against another implementation: u32 pool, n_dense,
 * slots, N; f32 dense[pool][n_dense]; u32 rows[pool][slots]; f32
 * scores[N]; f32 logits[N] (little-endian, as this machine writes them).
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
 * ymm) is measured in the same run. The in-memory models' layers whose
 * out is a multiple of 256 run from row-padded copies, as a loaded model's
 * do (model/model_pad.c); --no-pad keeps them packed (what a model ran as
 * before the padding: before/after in one binary). Lines starting with "tsv\t" (--tsv) and the
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
#include "ctr/model.h"
#include "ctr/model_random.h"
#include "ctr/model_stats.h"
#include "model_pad.h"
#include "bench_peak.h"

#define MAX_REPS 64
#define POOL 4096
#define MAX_BATCHES 16

static double rep_seconds = 0.3;
static int reps = 5;

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(double), cmp_double);
    return v[n / 2];
}

/* ---- FMA peak (peak_ymm, peak_zmm: bench_peak.h) -------------------- */

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
    double v[5];
    for (int r = 0; r < 5; r++)
        v[r] = fn(iters);
    return median(v, 5);
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

/* A pool of POOL random examples for def: dense values in [0, 3), each
 * slot a random row of its feature's table (a bag's slots all filled). */
static int make_pool(const ctr_model_def_t *def, float **dense_out, uint32_t **rows_out)
{
    const size_t nd = def->n_dense, ns = ctr_model_slots(def);
    float *dense = malloc(POOL * nd * sizeof(float) + 1);
    uint32_t *rows = malloc(POOL * ns * sizeof(uint32_t) + 1);
    uint64_t *bound = malloc(ns * sizeof(uint64_t) + 1);
    if (!dense || !rows || !bound) {
        free(dense);
        free(rows);
        free(bound);
        return -1;
    }
    for (size_t j = 0; j < def->n_cat; j++) {
        size_t s0 = ctr_model_slot_of(def, j), m = def->cat[j].bag_max ? def->cat[j].bag_max : 1;
        for (size_t t = 0; t < m; t++)
            bound[s0 + t] = (uint64_t)def->cat[j].buckets + 1;
    }
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < POOL * nd; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        dense[i] = (float)(x >> 40) / 16777216.0f * 3.0f;
    }
    for (size_t i = 0; i < POOL * ns; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        rows[i] = (uint32_t)((x >> 33) % bound[i % ns]);
    }
    free(bound);
    *dense_out = dense;
    *rows_out = rows;
    return 0;
}

/* Reads one float a 4 KiB page of every table: a mapped model's pages are
 * then in the page tables before any timing (as in a server that has run
 * a while, and as torch's tables, which are in ordinary memory). */
static void touch_tables(const ctr_model_def_t *def)
{
    float acc = 0;
    for (size_t j = 0; j < def->n_cat; j++) {
        if (def->cat[j].shares)
            continue;
        const volatile float *t = def->cat[j].table;
        size_t n = ((size_t)def->cat[j].buckets + 1) * def->cat[j].dim;
        for (size_t i = 0; i < n; i += 1024)
            acc += t[i];
        acc += t[n - 1];
    }
    sink += acc;
}

/* --dump: the pool and the scores and logits of its first n examples. */
static int dump_pool(const char *path, const ctr_model_def_t *def, const ctr_kernel_t *k,
                     ctr_scratch_t *s, const float *dense, const uint32_t *rows, size_t n)
{
    const size_t nd = def->n_dense, ns = ctr_model_slots(def);
    float *scores = malloc(n * sizeof(float) + 1), *logits = malloc(n * sizeof(float) + 1);
    FILE *f = fopen(path, "wb");
    int rc = -1;
    if (!scores || !logits || !f)
        goto done;
    if (ctr_forward(def, k, n, dense, rows, scores, logits, s))
        goto done;
    uint32_t hdr[4] = {POOL, (uint32_t)nd, (uint32_t)ns, (uint32_t)n};
    if (fwrite(hdr, sizeof hdr, 1, f) != 1 || fwrite(dense, sizeof(float), POOL * nd, f) != POOL * nd ||
        fwrite(rows, sizeof(uint32_t), POOL * ns, f) != POOL * ns ||
        fwrite(scores, sizeof(float), n, f) != n || fwrite(logits, sizeof(float), n, f) != n)
        goto done;
    rc = 0;
done:
    if (f && fclose(f))
        rc = -1;
    free(scores);
    free(logits);
    return rc;
}

typedef struct {
    const ctr_kernel_t *k;
    const size_t *batches;
    size_t nb;
    int tsv;
    FILE *jf;
    double peak;
    const char *dump;
    size_t dump_n;
} bench_opts_t;

/* Times def at every batch size: the table, tsv and JSON lines. */
static int bench_def(const char *name, const ctr_model_def_t *def, const bench_opts_t *b, int first)
{
    char err[512];
    ctr_model_stats_t st;
    ctr_model_stats(def, &st);
    float *dense;
    uint32_t *rows;
    if (make_pool(def, &dense, &rows)) {
        fprintf(stderr, "bench_interact: %s: out of memory\n", name);
        return -1;
    }
    ctr_scratch_t *s;
    if (ctr_scratch_new(def, 256, &s, err, sizeof err)) {
        fprintf(stderr, "bench_interact: %s: %s\n", name, err);
        free(dense);
        free(rows);
        return -1;
    }
    touch_tables(def);
    if (b->dump && dump_pool(b->dump, def, b->k, s, dense, rows, b->dump_n)) {
        fprintf(stderr, "bench_interact: %s: --dump %s failed\n", name, b->dump);
        ctr_scratch_free(s);
        free(dense);
        free(rows);
        return -1;
    }
    const double mflop = (double)st.flops / 1e6;
    if (b->jf)
        fprintf(b->jf, "%s{\"name\":\"%s\",\"mflop\":%.4f,\"params\":%llu,\"batches\":[", first ? "" : ",",
                name, mflop, (unsigned long long)st.params);
    for (size_t bi = 0; bi < b->nb; bi++) {
        double v[MAX_REPS];
        run(def, b->k, s, dense, rows, b->batches[bi], rep_seconds / 4); /* warm */
        for (int r = 0; r < reps; r++)
            v[r] = run(def, b->k, s, dense, rows, b->batches[bi], rep_seconds);
        double eps = median(v, (size_t)reps), gf = eps * mflop / 1e3;
        printf("%-13s %8.3f %8.2f %6zu %12.0f %9.1f %5.0f%%\n", name, mflop, (double)st.params / 1e6,
               b->batches[bi], eps, gf, b->peak > 0 ? 100 * gf / b->peak : 0);
        if (b->tsv)
            printf("tsv\t%s\t%zu\t%.0f\t%.2f\t%.4f\n", name, b->batches[bi], eps, gf, mflop);
        if (b->jf)
            fprintf(b->jf, "%s{\"batch\":%zu,\"examples_per_s\":%.1f,\"gflops\":%.3f}", bi ? "," : "",
                    b->batches[bi], eps, gf);
        fflush(stdout);
    }
    if (b->jf)
        fprintf(b->jf, "]}");
    ctr_scratch_free(s);
    free(dense);
    free(rows);
    return 0;
}

/* The padded copies of the in-memory model's weights. */
typedef struct {
    void **p;
    size_t n, cap;
} copies_t;

static int keep_copy(void *ctx, void *p, const float *orig, size_t n)
{
    (void)orig; /* the random model's own array: freed with it */
    (void)n;
    copies_t *c = ctx;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        void **q = realloc(c->p, cap * sizeof(*q));
        if (!q)
            return CTR_ENOMEM;
        c->p = q;
        c->cap = cap;
    }
    c->p[c->n++] = p;
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_interact [--quick] [--kernel K] [--models NAME,...] [--batches B,...]\n"
                    "                      [--reps N] [--seconds S] [--no-peak] [--no-pad] [--tsv] [--json FILE]\n"
                    "       bench_interact --model FILE [--name NAME] [--dump FILE [--dump-n N]] [options]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *kname = "auto", *only = NULL, *json = NULL, *model = NULL, *label = NULL;
    size_t batches[MAX_BATCHES] = {1, 16, 64, 256}, nb = 4;
    int tsv = 0, no_peak = 0, no_pad = 0;
    bench_opts_t b = {.dump_n = 512};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            rep_seconds = 0.05;
        else if (!strcmp(argv[i], "--tsv"))
            tsv = 1;
        else if (!strcmp(argv[i], "--no-peak"))
            no_peak = 1;
        else if (!strcmp(argv[i], "--no-pad"))
            no_pad = 1;
        else if (!strcmp(argv[i], "--kernel") && i + 1 < argc)
            kname = argv[++i];
        else if (!strcmp(argv[i], "--models") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--name") && i + 1 < argc)
            label = argv[++i];
        else if (!strcmp(argv[i], "--dump") && i + 1 < argc)
            b.dump = argv[++i];
        else if (!strcmp(argv[i], "--dump-n") && i + 1 < argc) {
            b.dump_n = strtoul(argv[++i], NULL, 10);
            if (b.dump_n < 1 || b.dump_n > POOL) {
                fprintf(stderr, "bench_interact: --dump-n is 1..%d\n", POOL);
                return 2;
            }
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
            if (reps < 1 || reps > MAX_REPS) {
                fprintf(stderr, "bench_interact: --reps is 1..%d\n", MAX_REPS);
                return 2;
            }
        } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            rep_seconds = atof(argv[++i]);
            if (!(rep_seconds > 0 && rep_seconds <= 60)) {
                fprintf(stderr, "bench_interact: --seconds is in (0, 60]\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--json") && i + 1 < argc)
            json = argv[++i];
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc) {
            int n = parse_list(argv[++i], batches, MAX_BATCHES);
            if (n <= 0) {
                fprintf(stderr, "bench_interact: --batches B,B,... (1..256)\n");
                return 2;
            }
            nb = (size_t)n;
            for (size_t bi = 0; bi < nb; bi++)
                if (batches[bi] < 1 || batches[bi] > 256) {
                    fprintf(stderr, "bench_interact: batches are 1..256\n");
                    return 2;
                }
        } else
            return usage();
    }
    if (b.dump && !model)
        return usage();
    char err[512];
    int kid = ctr_kernel_parse(kname);
    const ctr_kernel_t *k = kid < 0 ? NULL : ctr_kernel_select((ctr_kernel_id_t)kid, err, sizeof err);
    if (!k) {
        fprintf(stderr, "bench_interact: --kernel %s: %s\n", kname, kid < 0 ? "unknown" : err);
        return 2;
    }
    ctr_model_t *m = NULL;
    if (model && ctr_model_open(model, &m, err, sizeof err)) {
        fprintf(stderr, "bench_interact: %s: %s\n", model, err);
        return 1;
    }
    FILE *jf = json ? fopen(json, "w") : NULL;
    if (json && !jf) {
        perror(json);
        return 1;
    }
    b.k = k;
    b.batches = batches;
    b.nb = nb;
    b.tsv = tsv;
    b.jf = jf;
    b.peak = no_peak ? 0 : measure_peak(k);
    printf("forward pass, one thread, kernel %s; FMA peak %.1f GFLOP/s (%s)\n", k->name, b.peak,
           k->id == CTR_KERNEL_AVX512 ? "zmm" : "ymm");
    if (tsv)
        printf("tsv\tpeak\t%.2f\t%s\n", b.peak, k->name);
    printf("%-13s %8s %8s %6s %12s %9s %6s\n", "model", "MFLOP/ex", "Mparams", "batch",
           "examples/s", "GFLOP/s", "%peak");
    if (jf)
        fprintf(jf, "{\"kernel\":\"%s\",\"peak_gflops\":%.2f,\"models\":[", k->name, b.peak);
    int rc = 0;
    if (m) {
        if (!label) {
            const char *slash = strrchr(model, '/');
            label = slash ? slash + 1 : model;
        }
        rc = bench_def(label, ctr_model_def(m), &b, 1) ? 1 : 0;
        ctr_model_close(m);
    } else {
        int first_model = 1;
        for (size_t mi = 0; mi < CTR_ARRAY_LEN(models) && !rc; mi++) {
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
            copies_t copies = {0};
            if (!no_pad && ctr__pad_weights(ctr_model_random_def(rm), keep_copy, &copies)) {
                fprintf(stderr, "bench_interact: %s: out of memory padding the weights\n", models[mi].name);
                return 1;
            }
            rc = bench_def(models[mi].name, ctr_model_random_def(rm), &b, first_model) ? 1 : 0;
            first_model = 0;
            ctr_model_random_free(rm);
            for (size_t i = 0; i < copies.n; i++)
                free(copies.p[i]);
            free(copies.p);
        }
    }
    if (jf) {
        fprintf(jf, "]}\n");
        fclose(jf);
    }
    return rc;
}
