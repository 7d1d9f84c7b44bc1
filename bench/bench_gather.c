/* bench_gather - embedding gathers from a table larger than the last-level
 * cache, next to a plain random-read loop over the same tables.
 *
 *     bench_gather MODEL [seconds] [--as f32|f16|int8] [--decode] [--cpu-time]
 *
 * Both loops visit the same random (table, row) pairs in batches of 256
 * examples (every slot of a bag filled); the reference only loads the
 * first byte of each row (one independent load per row), so the ratio
 * says how close the gather gets to the machine's random-access rate.
 * Tables are read in the dtype the model stores them in (fp32, fp16,
 * int8_rowwise: printed), or with --as re-encoded in memory from an fp32
 * model's tables into that dtype first (the same rows, so fp32, fp16 and
 * int8 compare on one model in one run). --decode adds the decode alone:
 * each decoder set's rows form over a table that stays in L2, next to
 * fp32's copy, in rows/s. Prints medians of 5 runs and a tab-separated
 * line for bench/run.sh (rows/s, reference rows/s, ratio, table GB).
 * --cpu-time times by this thread's CPU time instead of the wall clock,
 * for comparisons on a machine shared with other work. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctr/common.h"
#include "ctr/forward.h"
#include "ctr/model.h"
#include "quant.h"
#include "quant_encode.h"

#define BATCH 256
#define REPEATS 5

/* Wall time, or with --cpu-time this thread's CPU time (on a shared
 * machine, time spent descheduled is then not counted). */
static clockid_t clock_id = CLOCK_MONOTONIC;

static double now(void)
{
    struct timespec ts;
    clock_gettime(clock_id, &ts);
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

/* Re-encodes every owned fp32 table of def into dtype (sharers follow
 * their owner) into *cat_out, a copy of def->cat the caller frees with
 * the buffers in bufs[]. */
static int requantize(const ctr_model_def_t *def, ctr_table_dtype_t dtype, ctr_cat_def_t **cat_out,
                      void **bufs)
{
    ctr_cat_def_t *cat = malloc(def->n_cat * sizeof(*cat));
    if (!cat)
        return CTR_ENOMEM;
    memcpy(cat, def->cat, def->n_cat * sizeof(*cat));
    for (size_t j = 0; j < def->n_cat; j++) {
        ctr_cat_def_t *c = &cat[j];
        if (c->shares) {
            c->dtype = cat[c->shares - 1].dtype;
            c->qrows = cat[c->shares - 1].qrows;
            c->table = cat[c->shares - 1].table;
            continue;
        }
        if (c->dtype != CTR_TABLE_F32 || !c->table) {
            fprintf(stderr, "bench_gather: --as needs fp32 tables; %s is %s\n", c->name,
                    ctr_table_dtype_name(c->dtype));
            return CTR_EINVAL;
        }
        const size_t rows = (size_t)c->buckets + 1, rb = ctr_table_row_bytes(dtype, c->dim);
        /* 64-byte aligned, as a table in a model file is. */
        void *q0 = NULL;
        if (posix_memalign(&q0, 64, rows * rb))
            return CTR_ENOMEM;
        uint8_t *q = q0;
        bufs[j] = q;
        for (size_t r = 0; r < rows; r++) {
            const float *x = c->table + r * c->dim;
            uint8_t *row = q + r * rb;
            if (dtype == CTR_TABLE_F16) {
                for (size_t a = 0; a < c->dim; a++) {
                    uint16_t h = ctr__float_to_half(x[a]);
                    row[2 * a] = (uint8_t)h;
                    row[2 * a + 1] = (uint8_t)(h >> 8);
                }
            } else if (ctr__quant_encode_int8_row(x, c->dim, row)) {
                fprintf(stderr, "bench_gather: %s row %zu does not encode\n", c->name, r);
                return CTR_EINVAL;
            }
        }
        c->dtype = dtype;
        c->qrows = q;
        c->table = NULL;
    }
    *cat_out = cat;
    return 0;
}

/* Feature j's table as stored: first row and bytes a row. */
static const uint8_t *table_base(const ctr_model_def_t *def, size_t j, size_t *rb)
{
    const ctr_cat_def_t *c = &def->cat[j], *own = c->shares ? &def->cat[c->shares - 1] : c;
    *rb = ctr_table_row_bytes(own->dtype, c->dim);
    return own->dtype == CTR_TABLE_F32 ? (const uint8_t *)own->table : own->qrows;
}

/* The decode alone: rows/s of each decoder set's rows form over a table
 * of 2048 rows (L2-resident), next to fp32 rows copied with memcpy. */
static void bench_decode(size_t dim, double secs)
{
    /* INNER batches between clock reads: a batch takes well under a
     * microsecond, about what reading the thread's CPU clock costs. */
    enum { ROWS = 2048, N = 256, INNER = 64 };
    uint32_t idx[N];
    for (size_t i = 0; i < N; i++)
        idx[i] = (uint32_t)(rng() % ROWS);
    float *f = malloc(ROWS * dim * sizeof(float)), *out = malloc(N * dim * sizeof(float));
    uint8_t *h = malloc(ROWS * 2 * dim), *q = malloc(ROWS * (dim + 8));
    if (!f || !out || !h || !q)
        return;
    for (size_t i = 0; i < ROWS * dim; i++)
        f[i] = (float)(rng() % 2000) / 1000.0f - 1.0f;
    for (size_t r = 0; r < ROWS; r++) {
        for (size_t a = 0; a < dim; a++) {
            uint16_t x = ctr__float_to_half(f[r * dim + a]);
            memcpy(h + (r * dim + a) * 2, &x, 2);
        }
        ctr__quant_encode_int8_row(f + r * dim, dim, q + r * (dim + 8));
    }
    printf("decode alone, dim %zu, %d rows in L2, batches of %d (rows/s, median of %d):\n", dim, ROWS, N,
           REPEATS);
    volatile float sink = 0;
    double rate[REPEATS];
    for (int rep = 0; rep < REPEATS; rep++) {
        size_t done = 0;
        double t0 = now(), t;
        do {
            for (int it = 0; it < INNER; it++) {
                if (dim == 16) /* the gather's copy: constant size for the usual widths */
                    for (size_t i = 0; i < N; i++)
                        memcpy(out + i * 16, f + (size_t)idx[i] * 16, 16 * sizeof(float));
                else
                    for (size_t i = 0; i < N; i++)
                        memcpy(out + i * dim, f + (size_t)idx[i] * dim, dim * sizeof(float));
                sink += out[dim - 1];
            }
            done += INNER * N;
        } while ((t = now() - t0) < secs);
        rate[rep] = (double)done / t;
    }
    qsort(rate, REPEATS, sizeof(double), cmp_double);
    printf("  %-8s %-6s %12.3g\n", "f32", "memcpy", rate[REPEATS / 2]);
    (void)sink;
    const ctr_kernel_id_t ids[] = {CTR_KERNEL_SCALAR, CTR_KERNEL_AVX2, CTR_KERNEL_AVX512};
    for (size_t v = 0; v < CTR_ARRAY_LEN(ids); v++) {
        const ctr__quant_ops_t *o = ctr__quant_ops_get(ids[v]);
        if (!o)
            continue;
        for (int dt = 0; dt < 2; dt++) {
            for (int rep = 0; rep < REPEATS; rep++) {
                size_t done = 0;
                double t0 = now(), t;
                do {
                    for (int it = 0; it < INNER; it++) {
                        if (dt)
                            o->int8_rows(q, dim, idx, 1, N, out, dim);
                        else
                            o->fp16_rows(h, dim, idx, 1, N, out, dim);
                        sink += out[dim - 1];
                    }
                    done += INNER * N;
                } while ((t = now() - t0) < secs);
                rate[rep] = (double)done / t;
            }
            qsort(rate, REPEATS, sizeof(double), cmp_double);
            printf("  %-8s %-6s %12.3g\n", dt ? "int8" : "f16", o->name, rate[REPEATS / 2]);
        }
    }
    free(f);
    free(out);
    free(h);
    free(q);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    double secs = 0.5;
    int as = -1, decode = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--as") && i + 1 < argc) {
            if ((as = ctr_table_dtype_parse(argv[++i])) < 0) {
                fprintf(stderr, "bench_gather: --as %s: expected f32, f16 or int8\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--decode")) {
            decode = 1;
        } else if (!strcmp(argv[i], "--cpu-time")) {
            clock_id = CLOCK_THREAD_CPUTIME_ID;
        } else if (!path) {
            path = argv[i];
        } else {
            secs = atof(argv[i]);
        }
    }
    if (!path) {
        fprintf(stderr, "usage: bench_gather MODEL [seconds per run] [--as f32|f16|int8] [--decode] [--cpu-time]\n");
        return 2;
    }
    char err[512];
    ctr_model_t *m;
    if (ctr_model_open(path, &m, err, sizeof(err))) {
        fprintf(stderr, "bench_gather: %s\n", err);
        return 1;
    }
    ctr_model_def_t qdef = *ctr_model_def(m);
    const ctr_model_def_t *def = &qdef;
    ctr_cat_def_t *qcat = NULL;
    void **bufs = calloc(def->n_cat + 1, sizeof(void *));
    if (!bufs)
        return 1;
    if (as > 0) {
        if (requantize(def, (ctr_table_dtype_t)as, &qcat, bufs))
            return 1;
        qdef.cat = qcat;
    }
    size_t n_cat = def->n_cat, slots = ctr_model_slots(def), in_dim = ctr_model_input_dim(def);
    size_t n_dt[3] = {0};
    double table_bytes = 0;
    for (size_t j = 0; j < n_cat; j++) {
        const ctr_cat_def_t *c = &def->cat[j];
        if (c->shares)
            continue;
        n_dt[c->dtype < 3 ? c->dtype : 0]++;
        table_bytes += (double)(c->buckets + 1) * ctr_table_row_bytes(c->dtype, c->dim);
    }

    /* A pool of random rows, many batches long, so the loops do not replay
     * a small set that would end up cached. */
    size_t pool_batches = 512, rows_a_batch = 0;
    uint32_t *rows = malloc(pool_batches * BATCH * slots * sizeof(uint32_t));
    float *dense = calloc(BATCH * (def->n_dense + 1), sizeof(float));
    float *x = malloc(BATCH * in_dim * sizeof(float));
    if (!rows || !dense || !x)
        return 1;
    for (size_t i = 0; i < pool_batches * BATCH; i++)
        for (size_t j = 0, s = 0; j < n_cat; j++) {
            const size_t mm = def->cat[j].bag_max ? def->cat[j].bag_max : 1;
            for (size_t q = 0; q < mm; q++)
                rows[i * slots + s++] = 1 + (uint32_t)(rng() % def->cat[j].buckets);
        }
    rows_a_batch = BATCH * slots;

    /* Each feature's table, row bytes and slots, looked up once. */
    const uint8_t **tb = malloc((n_cat + 1) * sizeof(*tb));
    size_t *trb = malloc((n_cat + 1) * sizeof(size_t)), *tm = malloc((n_cat + 1) * sizeof(size_t));
    if (!tb || !trb || !tm)
        return 1;
    for (size_t j = 0; j < n_cat; j++) {
        tb[j] = table_base(def, j, &trb[j]);
        tm[j] = def->cat[j].bag_max ? def->cat[j].bag_max : 1;
    }

    /* Fault every page in once: both loops then run on a warm page cache. */
    volatile float sink = 0;
    for (size_t j = 0; j < n_cat; j++) {
        const size_t bytes = ((size_t)def->cat[j].buckets + 1) * trb[j];
        for (size_t b = 0; b < bytes; b += 4096)
            sink += tb[j][b];
    }

    double gather_rate[REPEATS], read_rate[REPEATS];
    for (int rep = 0; rep < REPEATS; rep++) {
        size_t done = 0, b = 0;
        double t0 = now(), t;
        do {
            if (ctr_forward_gather(def, BATCH, dense, rows + (b % pool_batches) * rows_a_batch, x, in_dim))
                return 1;
            sink += x[in_dim - 1];
            b++;
            done += rows_a_batch;
        } while ((t = now() - t0) < secs);
        gather_rate[rep] = (double)done / t;

        done = 0, b = 0;
        unsigned acc = 0;
        t0 = now();
        do {
            const uint32_t *r = rows + (b % pool_batches) * rows_a_batch;
            for (size_t i = 0; i < BATCH; i++)
                for (size_t j = 0, s = 0; j < n_cat; j++)
                    for (size_t q = 0; q < tm[j]; q++)
                        acc += tb[j][(size_t)r[i * slots + s++] * trb[j]];
            b++;
            done += rows_a_batch;
        } while ((t = now() - t0) < secs);
        sink += (float)acc;
        read_rate[rep] = (double)done / t;
    }
    (void)sink; /* read only so the loops are not optimised away */
    qsort(gather_rate, REPEATS, sizeof(double), cmp_double);
    qsort(read_rate, REPEATS, sizeof(double), cmp_double);
    double g = gather_rate[REPEATS / 2], r = read_rate[REPEATS / 2];
    size_t dim = n_cat ? def->cat[0].dim : 0;
    const ctr_table_dtype_t dt0 = n_cat ? def->cat[0].dtype : CTR_TABLE_F32;
    printf("tables: %zu x %u rows x %zu wide = %.2f GB (mapped file %s%s%s)\n", n_cat,
           n_cat ? def->cat[0].buckets + 1 : 0, dim, table_bytes / 1e9, path,
           as > 0 ? ", re-encoded in memory as " : "", as > 0 ? ctr_table_dtype_name((ctr_table_dtype_t)as) : "");
    printf("table dtypes: %zu f32, %zu f16, %zu int8_rowwise (%zu bytes a row of table 1)\n", n_dt[0], n_dt[1],
           n_dt[2], n_cat ? ctr_table_row_bytes(dt0, dim) : 0);
    printf("%-28s %12.3g rows/s  %6.2f GB/s of rows read\n", "gather (ctr_forward_gather)", g,
           g * (double)ctr_table_row_bytes(dt0, dim) / 1e9);
    printf("%-28s %12.3g rows/s\n", "plain random read, 1 load", r);
    printf("ratio gather / random read: %.2f\n", g / r);
    printf("BENCH\tgather\t%.4g\t%.4g\t%.3f\t%.3f\n", g, r, g / r, table_bytes / 1e9);
    printf("BENCH\tgather_dtype\t%s\n", ctr_table_dtype_name(dt0));
    if (decode && dim)
        bench_decode(dim, secs / 5);
    ctr_model_close(m);
    for (size_t j = 0; j < n_cat; j++)
        free(bufs[j]);
    free(bufs);
    free(qcat);
    free(tb);
    free(trb);
    free(tm);
    free(rows);
    free(dense);
    free(x);
    return 0;
}
