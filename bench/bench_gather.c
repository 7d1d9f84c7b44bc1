/* bench_gather - embedding gathers from a table larger than the last-level
 * cache, next to a plain random-read loop over the same mapped file.
 *
 *     bench_gather MODEL [seconds]
 *
 * Both loops visit the same random (table, row) pairs in batches of 256
 * examples; the reference only sums the first float of each 64-byte row
 * line it touches (one independent load per row), so the ratio says how
 * close the gather gets to the machine's random-access rate. Prints
 * medians of 5 runs and a tab-separated line for bench/run.sh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctr/common.h"
#include "ctr/forward.h"
#include "ctr/model.h"

#define BATCH 256
#define REPEATS 5

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_gather MODEL [seconds per run]\n");
        return 2;
    }
    double secs = argc > 2 ? atof(argv[2]) : 0.5;
    char err[512];
    ctr_model_t *m;
    if (ctr_model_open(argv[1], &m, err, sizeof(err))) {
        fprintf(stderr, "bench_gather: %s\n", err);
        return 1;
    }
    const ctr_model_def_t *def = ctr_model_def(m);
    size_t n_cat = def->n_cat, in_dim = ctr_model_input_dim(def);
    double table_bytes = 0;
    for (size_t j = 0; j < n_cat; j++)
        table_bytes += (double)(def->cat[j].buckets + 1) * def->cat[j].dim * 4;

    /* A pool of random rows, many batches long, so the loops do not replay
     * a small set that would end up cached. */
    size_t pool_batches = 512;
    uint32_t *rows = malloc(pool_batches * BATCH * n_cat * sizeof(uint32_t));
    float *dense = calloc(BATCH * (def->n_dense + 1), sizeof(float));
    float *x = malloc(BATCH * in_dim * sizeof(float));
    if (!rows || !dense || !x)
        return 1;
    for (size_t i = 0; i < pool_batches * BATCH; i++)
        for (size_t j = 0; j < n_cat; j++)
            rows[i * n_cat + j] = 1 + (uint32_t)(rng() % def->cat[j].buckets);

    /* Fault every page in once: both loops then run on a warm page cache. */
    volatile float sink = 0;
    for (size_t j = 0; j < n_cat; j++) {
        const ctr_cat_def_t *c = &def->cat[j];
        for (size_t r = 0; r <= c->buckets; r += 1024 / c->dim)
            sink += c->table[r * c->dim];
    }

    double gather_rate[REPEATS], read_rate[REPEATS];
    for (int rep = 0; rep < REPEATS; rep++) {
        size_t done = 0, b = 0;
        double t0 = now(), t;
        do {
            ctr_forward_gather(def, BATCH, dense, rows + (b % pool_batches) * BATCH * n_cat, x, in_dim);
            sink += x[in_dim - 1];
            b++;
            done += BATCH * n_cat;
        } while ((t = now() - t0) < secs);
        gather_rate[rep] = (double)done / t;

        done = 0, b = 0;
        float acc = 0;
        t0 = now();
        do {
            const uint32_t *r = rows + (b % pool_batches) * BATCH * n_cat;
            for (size_t i = 0; i < BATCH; i++)
                for (size_t j = 0; j < n_cat; j++)
                    acc += def->cat[j].table[(size_t)r[i * n_cat + j] * def->cat[j].dim];
            b++;
            done += BATCH * n_cat;
        } while ((t = now() - t0) < secs);
        sink += acc;
        read_rate[rep] = (double)done / t;
    }
    qsort(gather_rate, REPEATS, sizeof(double), cmp_double);
    qsort(read_rate, REPEATS, sizeof(double), cmp_double);
    double g = gather_rate[REPEATS / 2], r = read_rate[REPEATS / 2];
    size_t dim = n_cat ? def->cat[0].dim : 0;
    printf("tables: %zu x %u rows x %zu floats = %.2f GB (mapped file %s)\n", n_cat,
           n_cat ? def->cat[0].buckets + 1 : 0, dim, table_bytes / 1e9, argv[1]);
    printf("%-28s %12.3g rows/s  %6.2f GB/s\n", "gather (ctr_forward_gather)", g, g * dim * 4 / 1e9);
    printf("%-28s %12.3g rows/s\n", "plain random read, 1 load", r);
    printf("ratio gather / random read: %.2f\n", g / r);
    printf("BENCH\tgather\t%.4g\t%.4g\t%.3f\t%.3f\n", g, r, g / r, table_bytes / 1e9);
    ctr_model_close(m);
    free(rows);
    free(dense);
    free(x);
    return 0;
}
