/* bench_qgather - embedding gathers per table dtype (fp32, fp16,
 * int8_rowwise) from tables larger than the last-level cache, each next to
 * a plain random-read loop over the same mapped rows (make bench part 9c).
 *
 *     bench_qgather [--seconds S] MODEL...
 *
 * Give it the same model in several dtypes (`ctrtool quantize`): every
 * model is opened and faulted in first, then the runs interleave the
 * models (gather, then the plain loop, per model, REPEATS rounds) so load
 * from other jobs falls on all of them alike. Both loops visit the same
 * random (table, row) pairs in batches of 256 examples; the plain loop
 * reads one 4-byte word at the start of each row (one independent load
 * per row: the machine's random-access rate for rows that size), the
 * gather decodes the whole row into floats (ctr_forward_gather). Times
 * are the thread's CPU time, so load from other jobs does not count its
 * descheduled time (it still shares caches and memory). Prints
 * medians and one tab-separated line per model:
 * "BENCH qgather dtype gather_rows_s read_rows_s ratio table_gb row_bytes". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_peak.h"
#include "ctr/common.h"
#include "ctr/forward.h"
#include "ctr/model.h"

#define BATCH 256
#define REPEATS 5
#define MAX_MODELS 8
#define POOL_BATCHES 512

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

typedef struct {
    const char *path;
    ctr_model_t *m;
    const ctr_model_def_t *def;
    const unsigned char *base[64]; /* each table's first row, as stored */
    size_t row_bytes[64];
    double table_bytes;
    uint32_t *rows;
    float *x;
    size_t in_dim;
    double gather[REPEATS], read[REPEATS];
} bm_t;

static double run_gather(bm_t *b, const float *dense, double secs)
{
    size_t done = 0, i = 0, n_cat = b->def->n_cat;
    double t0 = now(), t;
    do {
        ctr_forward_gather(b->def, BATCH, dense, b->rows + (i % POOL_BATCHES) * BATCH * n_cat, b->x, b->in_dim);
        sink += b->x[b->in_dim - 1];
        i++;
        done += BATCH * n_cat;
    } while ((t = now() - t0) < secs);
    return (double)done / t;
}

static double run_read(bm_t *b, double secs)
{
    size_t done = 0, i = 0, n_cat = b->def->n_cat;
    uint32_t acc = 0;
    double t0 = now(), t;
    do {
        const uint32_t *r = b->rows + (i % POOL_BATCHES) * BATCH * n_cat;
        for (size_t e = 0; e < BATCH; e++)
            for (size_t j = 0; j < n_cat; j++) {
                uint32_t w;
                memcpy(&w, b->base[j] + (size_t)r[e * n_cat + j] * b->row_bytes[j], 4);
                acc += w;
            }
        i++;
        done += BATCH * n_cat;
    } while ((t = now() - t0) < secs);
    sink += (float)acc;
    return (double)done / t;
}

int main(int argc, char **argv)
{
    double secs = 0.5;
    bm_t bm[MAX_MODELS];
    int n = 0;
    char err[512];
    memset(bm, 0, sizeof(bm));
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            secs = atof(argv[++i]);
            continue;
        }
        if (n == MAX_MODELS) {
            fprintf(stderr, "bench_qgather: at most %d models\n", MAX_MODELS);
            return 2;
        }
        bm[n++].path = argv[i];
    }
    if (!n) {
        fprintf(stderr, "usage: bench_qgather [--seconds S] MODEL...\n");
        return 2;
    }
    size_t max_dense = 0;
    for (int k = 0; k < n; k++) {
        bm_t *b = &bm[k];
        if (ctr_model_open(b->path, &b->m, err, sizeof(err))) {
            fprintf(stderr, "bench_qgather: %s\n", err);
            return 1;
        }
        b->def = ctr_model_def(b->m);
        size_t n_cat = b->def->n_cat;
        if (n_cat > 64 || n_cat == 0) {
            fprintf(stderr, "bench_qgather: %s: %zu tables (1-64 supported)\n", b->path, n_cat);
            return 1;
        }
        b->in_dim = ctr_model_input_dim(b->def);
        if (b->def->n_dense > max_dense)
            max_dense = b->def->n_dense;
        for (size_t j = 0; j < n_cat; j++) {
            const ctr_cat_def_t *c = &b->def->cat[j];
            if (c->bag_max) {
                fprintf(stderr, "bench_qgather: %s: bag features are not measured here\n", b->path);
                return 1;
            }
            b->row_bytes[j] = ctr_table_row_bytes(c->dtype, c->dim);
            b->base[j] = c->dtype == CTR_TABLE_F32 ? (const unsigned char *)c->table : c->qrows;
            if (!c->shares)
                b->table_bytes += (double)(c->buckets + 1) * (double)b->row_bytes[j];
        }
        b->rows = malloc((size_t)POOL_BATCHES * BATCH * n_cat * sizeof(uint32_t));
        b->x = malloc((size_t)BATCH * b->in_dim * sizeof(float));
        if (!b->rows || !b->x)
            return 1;
        /* The same row sequence for every model (same seed), many batches
         * long so the loops do not replay a small cached set. */
        rng_state = 0x9e3779b97f4a7c15ull;
        for (size_t i = 0; i < (size_t)POOL_BATCHES * BATCH; i++)
            for (size_t j = 0; j < n_cat; j++)
                b->rows[i * n_cat + j] = 1 + (uint32_t)(rng() % b->def->cat[j].buckets);
        /* Fault every page in: the loops run on a warm page cache. */
        uint32_t acc = 0;
        for (size_t j = 0; j < n_cat; j++) {
            size_t bytes = (size_t)(b->def->cat[j].buckets + 1) * b->row_bytes[j];
            for (size_t o = 0; o < bytes; o += 1024)
                acc += b->base[j][o];
        }
        sink += (float)acc;
    }
    float *dense = calloc((size_t)BATCH * (max_dense + 1), sizeof(float));
    if (!dense)
        return 1;
    for (int rep = 0; rep < REPEATS; rep++)
        for (int k = 0; k < n; k++) {
            bm[k].gather[rep] = run_gather(&bm[k], dense, secs);
            bm[k].read[rep] = run_read(&bm[k], secs);
        }
    double g0 = 0;
    for (int k = 0; k < n; k++) {
        bm_t *b = &bm[k];
        qsort(b->gather, REPEATS, sizeof(double), cmp_double);
        qsort(b->read, REPEATS, sizeof(double), cmp_double);
        double g = b->gather[REPEATS / 2], r = b->read[REPEATS / 2];
        const ctr_cat_def_t *c = &b->def->cat[0];
        const char *dt = ctr_table_dtype_name(c->dtype);
        if (k == 0)
            g0 = g;
        printf("%-13s %2zu x %u rows x %u, %zu bytes/row, %.2f GB: gather %10.4g rows/s (%.2fx of the first), "
               "%5.2f GB/s of rows; plain read %10.4g rows/s; gather/read %.2f\n",
               dt, b->def->n_cat, c->buckets + 1, c->dim, b->row_bytes[0], b->table_bytes / 1e9, g, g / g0,
               g * (double)b->row_bytes[0] / 1e9, r, g / r);
        printf("BENCH\tqgather\t%s\t%.4g\t%.4g\t%.3f\t%.3f\t%zu\n", dt, g, r, g / r, b->table_bytes / 1e9,
               b->row_bytes[0]);
    }
    for (int k = 0; k < n; k++) {
        ctr_model_close(bm[k].m);
        free(bm[k].rows);
        free(bm[k].x);
    }
    free(dense);
    return 0;
}
