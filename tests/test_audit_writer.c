/* test_audit_writer.c - the audit writer (server/audit_writer.c) through its hook
 * (server/audit_writer.h), without HTTP: concurrent submitters, every
 * durability mode, io_uring and the forced pwrite fallback, segment
 * rotation, a restart opening a new segment, back-pressure (wait, then
 * CTR_EBUSY) and async drops with a stalled writer, write failures under
 * --audit-on-error fail and continue (RLIMIT_FSIZE stands in for a full
 * disk), and flush. Each log written is read back with the reader: every
 * released record is there once, in seq order, with its values. */
#include <errno.h>
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../server/audit_writer.h"
#include "ctr/audit.h"
#include "ctr/common.h"
#include "ctr/kernels.h"
#include "ctr/model.h"
#include "testutil.h"

#define ND 13
#define NC 26

static ctr_model_t *g_model;
static const ctr_kernel_t *g_kernel;

/* ---- fake scored requests --------------------------------------------- */

typedef struct {
    ctr__audit_item_t item;
    ctr_request_t req;
    atomic_int released;          /* release() calls */
    atomic_int status;
    double dense_raw[4 * ND];
    uint32_t cat_off[4 * NC];
    uint8_t cat_len[4 * NC];
    char cat_bytes[4 * NC * 8];
    float scores[4];
} treq_t;

static atomic_int g_released;

static void on_release(ctr__audit_item_t *item, int status)
{
    treq_t *t = (treq_t *)((char *)item - offsetof(treq_t, item));
    atomic_store(&t->status, status);
    atomic_fetch_add(&t->released, 1);
    atomic_fetch_add(&g_released, 1);
}

static void treq_init(treq_t *t, uint64_t id, size_t n)
{
    memset(t, 0, sizeof *t);
    ctr_request_t *r = &t->req;
    snprintf(r->request_id, sizeof r->request_id, "req-%llu", (unsigned long long)id);
    r->has_request_id = 1;
    r->n = n;
    r->n_dense = ND;
    r->n_cat = NC;
    r->dense_raw = t->dense_raw;
    r->cat_off = t->cat_off;
    r->cat_len = t->cat_len;
    r->cat_bytes = t->cat_bytes;
    r->scores = t->scores;
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < ND; j++)
            t->dense_raw[i * ND + j] = (j + id) % 5 == 0 ? NAN : (double)(id * 31 + j) / 4.0;
        for (size_t j = 0; j < NC; j++) {
            size_t k = i * NC + j;
            if ((j + id) % 7 == 0) {
                t->cat_len[k] = CTR_CAT_MISSING_LEN;
                continue;
            }
            int l = snprintf(t->cat_bytes + used, 9, "%08llx", (unsigned long long)(id * 2654435761u + j));
            t->cat_off[k] = (uint32_t)used;
            t->cat_len[k] = (uint8_t)l;
            used += (size_t)l;
        }
        t->scores[i] = (float)((double)(id % 1000) / 1000.0 + 0.0001 * (double)i);
    }
    t->item.req = r;
    t->item.t_received_ns = 1700000000000000000ull + id;
    t->item.release = on_release;
}

static void submit(ctr__audit_t *a, treq_t *reqs, size_t n, uint64_t generation)
{
    ctr__audit_item_t *items[64];
    CTR_ASSERT(n <= 64);
    for (size_t i = 0; i < n; i++) {
        reqs[i].item.generation = generation;
        items[i] = &reqs[i].item;
    }
    ctr__audit_batch_t b = {g_model, generation, g_kernel, 1700000000500000000ull};
    ctr__audit_submit(a, &b, items, n);
}

static int wait_released(int want, int ms)
{
    for (int i = 0; i < ms && atomic_load(&g_released) < want; i++)
        usleep(1000);
    return atomic_load(&g_released) >= want;
}

/* ---- reading a directory back ------------------------------------------ */

typedef struct {
    size_t files, records, corrupt, torn;
    uint64_t max_file;
    int in_order;                 /* seq strictly increasing across files */
    uint64_t *seqs;               /* [records] */
    char (*ids)[32];
    size_t cap;
} log_t;

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void read_log(const char *dir, log_t *L)
{
    memset(L, 0, sizeof *L);
    L->in_order = 1;
    DIR *d = opendir(dir);
    CTR_ASSERT(d);
    char *names[4096];
    size_t nn = 0;
    struct dirent *e;
    while ((e = readdir(d)) && nn < 4096)
        if (strstr(e->d_name, ".audit"))
            names[nn++] = strdup(e->d_name);
    closedir(d);
    qsort(names, nn, sizeof *names, cmp_name);
    uint64_t last = 0;
    for (size_t f = 0; f < nn; f++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[f]);
        struct stat st;
        if (!stat(path, &st) && (uint64_t)st.st_size > L->max_file)
            L->max_file = (uint64_t)st.st_size;
        ctr_audit_reader_t *r;
        char err[256];
        if (ctr_audit_reader_open(path, &r, err, sizeof err)) {
            fprintf(stderr, "%s: %s\n", path, err);
            L->corrupt++;
            free(names[f]);
            continue;
        }
        L->files++;
        const ctr_audit_segment_t *h = ctr_audit_reader_segment(r);
        ctr_audit_record_t rec;
        ctr_audit_event_t ev;
        int first = 1;
        while ((ev = ctr_audit_reader_next(r, &rec, NULL)) != CTR_AUDIT_END) {
            if (ev == CTR_AUDIT_CORRUPT) {
                L->corrupt++;
                continue;
            }
            if (ev == CTR_AUDIT_TORN) {
                L->torn++;
                continue;
            }
            if (first && rec.seq < h->first_seq)
                L->in_order = 0;
            first = 0;
            if (L->records == L->cap) {
                L->cap = L->cap ? 2 * L->cap : 1024;
                L->seqs = realloc(L->seqs, L->cap * sizeof *L->seqs);
                L->ids = realloc(L->ids, L->cap * sizeof *L->ids);
                CTR_ASSERT(L->seqs && L->ids);
            }
            if (rec.seq <= last && h->server_start_ns == 0)
                L->in_order = 0;
            L->seqs[L->records] = rec.seq;
            snprintf(L->ids[L->records], 32, "%s", rec.request_id);
            L->records++;
            last = rec.seq;
        }
        ctr_audit_reader_close(r);
        free(names[f]);
    }
}

static void log_free(log_t *L)
{
    free(L->seqs);
    free(L->ids);
}

/* Index of request id in the log, or -1; counts duplicates into *dups. */
static long log_find(const log_t *L, const char *id, int *dups)
{
    long at = -1;
    for (size_t i = 0; i < L->records; i++)
        if (!strcmp(L->ids[i], id)) {
            if (at >= 0)
                (*dups)++;
            at = (long)i;
        }
    return at;
}

static char *subdir(const char *name)
{
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", test_tmpdir(), name);
    return p;
}

static ctr__audit_t *open_writer(const char *dir, ctr__audit_durability_t dur, uint64_t seg_bytes,
                                 int fail, uint64_t buffer_bytes, uint64_t wait_ns)
{
    ctr__audit_config_t cfg = {
        .enabled = 1, .dir = dir, .durability = dur, .segment_bytes = seg_bytes,
        .on_error_fail = fail, .buffer_bytes = buffer_bytes, .wait_ns = wait_ns,
    };
    ctr__audit_t *a = NULL;
    char err[512];
    int rc = ctr__audit_open(&cfg, &a, err, sizeof err);
    CHECKF(rc == 0, "ctr__audit_open(%s): %s", dir, err);
    return a;
}

/* ---- concurrent submitters ---------------------------------------------- */

typedef struct {
    ctr__audit_t *a;
    treq_t *reqs;
    size_t n;
    uint64_t generation;
} thr_t;

static void *submitter(void *arg)
{
    thr_t *t = arg;
    size_t i = 0;
    while (i < t->n) {
        size_t k = 1 + (i * 7) % 9;
        if (k > t->n - i)
            k = t->n - i;
        submit(t->a, t->reqs + i, k, t->generation);
        i += k;
    }
    return NULL;
}

/* N requests from 3 threads; every one released 0 and in the log once. */
static void run_mode(const char *name, ctr__audit_durability_t dur, int no_uring, uint64_t seg_bytes)
{
    const size_t N = 3000, T = 3;
    char *dir = subdir(name);
    if (no_uring)
        setenv("CTRD_AUDIT_NO_URING", "1", 1);
    else
        unsetenv("CTRD_AUDIT_NO_URING");
    ctr__audit_t *a = open_writer(dir, dur, seg_bytes, 1, 0, 0);
    if (!a)
        return;
    ctr__audit_stats_t st;
    ctr__audit_stats(a, &st);
    CHECKF(st.fallback == no_uring, "%s: fallback %d", name, st.fallback);
    treq_t *reqs = malloc(N * sizeof *reqs);
    for (size_t i = 0; i < N; i++)
        treq_init(&reqs[i], i, 1 + i % 3);
    atomic_store(&g_released, 0);
    pthread_t th[3];
    thr_t targs[3];
    for (size_t t = 0; t < T; t++) {
        targs[t] = (thr_t){a, reqs + t * (N / T), N / T, 1 + (t == 2)};
        pthread_create(&th[t], NULL, submitter, &targs[t]);
    }
    for (size_t t = 0; t < T; t++)
        pthread_join(th[t], NULL);
    CHECKF(wait_released((int)N, 10000), "%s: %d of %zu released", name, atomic_load(&g_released), N);
    char err[256];
    CHECKF(ctr__audit_flush(a, 5000000000u, err, sizeof err) == 0, "%s: flush: %s", name, err);
    ctr__audit_stats(a, &st);
    ctr__audit_close(a);
    size_t bad = 0;
    for (size_t i = 0; i < N; i++)
        bad += atomic_load(&reqs[i].released) != 1 || atomic_load(&reqs[i].status) != 0;
    CHECKF(bad == 0, "%s: %zu requests released wrongly", name, bad);
    log_t L;
    read_log(dir, &L);
    int dups = 0;
    size_t missing = 0;
    for (size_t i = 0; i < N; i++)
        missing += log_find(&L, reqs[i].req.request_id, &dups) < 0;
    int seq_ok = 1;
    for (size_t i = 0; i < L.records; i++)
        seq_ok &= L.seqs[i] == i + 1;
    CHECKF(L.records == N && missing == 0 && dups == 0 && L.corrupt == 0 && L.torn == 0 && seq_ok &&
               L.in_order,
           "%s: %zu records for %zu requests, %zu missing, %d duplicated, %zu corrupt, %zu torn, seq ok %d",
           name, L.records, N, missing, dups, L.corrupt, L.torn, seq_ok);
    CHECK(st.records == N && st.errors == 0 && st.dropped == 0 && st.rejected == 0 && st.lag_records == 0);
    uint64_t writes = 0;
    for (int i = 0; i < CTR__AUDIT_WRITE_BUCKETS; i++)
        writes += st.write_hist[i];
    if (seg_bytes < 100000) {
        CHECKF(L.files > 5 && L.max_file <= seg_bytes, "%s: %zu segments, largest %llu bytes", name, L.files,
               (unsigned long long)L.max_file);
    }
    if (dur == CTR__AUDIT_FSYNC)
        CHECKF(st.syncs >= writes, "%s: %llu syncs for %llu writes", name, (unsigned long long)st.syncs,
               (unsigned long long)writes);
    printf("%-16s %zu records in %llu writes (%.1f records/write, mean %.1f us), %zu segment(s), %llu syncs, "
           "%.1f bytes/example\n",
           name, L.records, (unsigned long long)writes, (double)N / (double)(writes ? writes : 1),
           (double)st.write_sum_ns / 1e3 / (double)(writes ? writes : 1), L.files,
           (unsigned long long)st.syncs, (double)st.bytes / (double)st.examples);
    log_free(&L);
    free(reqs);
    unsetenv("CTRD_AUDIT_NO_URING");
}

/* Two writers on one directory: the second never appends to the first's
 * segment. */
static void test_restart(void)
{
    char *dir = subdir("restart");
    treq_t r;
    for (int run = 0; run < 2; run++) {
        ctr__audit_t *a = open_writer(dir, CTR__AUDIT_WRITE, 1 << 20, 1, 0, 0);
        if (!a)
            return;
        atomic_store(&g_released, 0);
        treq_init(&r, (uint64_t)run, 2);
        submit(a, &r, 1, 1);
        CHECK(wait_released(1, 5000));
        ctr__audit_close(a);
    }
    log_t L;
    read_log(dir, &L);
    CHECKF(L.files == 2 && L.records == 2 && L.corrupt == 0, "restart: %zu files, %zu records", L.files,
           L.records);
    log_free(&L);
}

/* A slow disk (CTRD_AUDIT_DELAY_US): records wait for buffer space, then
 * are refused with CTR_EBUSY (write mode) or dropped and counted (async).
 * Memory stays at the two buffers. */
static void test_backpressure(ctr__audit_durability_t dur)
{
    const size_t N = 1200;
    char *dir = subdir(dur == CTR__AUDIT_ASYNC ? "bp-async" : "bp-write");
    setenv("CTRD_AUDIT_DELAY_US", "100000", 1);   /* every write takes 100 ms */
    ctr__audit_t *a = open_writer(dir, dur, 1 << 30, 1, 64 << 10, 50000000u);
    unsetenv("CTRD_AUDIT_DELAY_US");
    if (!a)
        return;
    treq_t *reqs = malloc(N * sizeof *reqs);
    for (size_t i = 0; i < N; i++)
        treq_init(&reqs[i], 100000 + i, 3);
    atomic_store(&g_released, 0);
    pthread_t th;
    thr_t targ = {a, reqs, N, 1};
    pthread_create(&th, NULL, submitter, &targ);
    pthread_join(th, NULL);
    CHECK(wait_released((int)N, 10000));
    char err[256];
    ctr__audit_flush(a, 5000000000u, err, sizeof err);
    ctr__audit_stats_t st;
    ctr__audit_stats(a, &st);
    ctr__audit_close(a);
    size_t ok = 0, busy = 0, other = 0;
    for (size_t i = 0; i < N; i++) {
        int s = atomic_load(&reqs[i].status);
        ok += s == 0;
        busy += s == CTR_EBUSY;
        other += s != 0 && s != CTR_EBUSY;
    }
    log_t L;
    read_log(dir, &L);
    int dups = 0;
    size_t logged_busy = 0;
    for (size_t i = 0; i < N; i++)
        if (atomic_load(&reqs[i].status) == CTR_EBUSY)
            logged_busy += log_find(&L, reqs[i].req.request_id, &dups) >= 0;
    if (dur == CTR__AUDIT_WRITE) {
        CHECKF(busy > 0 && st.rejected == busy && logged_busy == 0 && other == 0 && L.records == ok &&
                   L.corrupt == 0,
               "back-pressure: %zu ok, %zu busy (%llu counted), %zu other, %zu records, %zu refused yet logged",
               ok, busy, (unsigned long long)st.rejected, other, L.records, logged_busy);
        printf("back-pressure (write): %zu served, %zu refused with 503 after waiting 50 ms, none of those "
               "logged\n", ok, busy);
    } else {
        CHECKF(ok == N && L.records + st.dropped == N && L.corrupt == 0 && dups == 0,
               "async: %zu ok, %zu records, %llu dropped", ok, L.records, (unsigned long long)st.dropped);
        printf("async: %zu released at once, %zu logged, %llu dropped and counted\n", ok, L.records,
               (unsigned long long)st.dropped);
    }
    log_free(&L);
    free(reqs);
}

/* A "full disk": RLIMIT_FSIZE makes writes past a size fail (EFBIG). With
 * fail the requests are released with an error, with continue with 0 and
 * counted; the log never holds a half record before good ones and the
 * writer recovers when the limit is lifted. */
static void test_write_errors(int fail, int no_uring)
{
    char name[64];
    snprintf(name, sizeof name, "full-%s-%s", fail ? "fail" : "continue", no_uring ? "pwrite" : "uring");
    char *dir = subdir(name);
    if (no_uring)
        setenv("CTRD_AUDIT_NO_URING", "1", 1);
    ctr__audit_t *a = open_writer(dir, CTR__AUDIT_WRITE, 1 << 30, fail, 0, 0);
    unsetenv("CTRD_AUDIT_NO_URING");
    if (!a)
        return;
    const size_t N = 300;
    treq_t *reqs = malloc(N * sizeof *reqs);
    for (size_t i = 0; i < N; i++)
        treq_init(&reqs[i], 200000 + i, 2);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 20000;
    signal(SIGXFSZ, SIG_IGN);
    atomic_store(&g_released, 0);
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    for (size_t i = 0; i < 200; i += 5) {
        submit(a, reqs + i, 5, 1);
        wait_released((int)i + 5, 5000);
    }
    CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
    for (size_t i = 200; i < N; i += 5) {
        submit(a, reqs + i, 5, 1);
        wait_released((int)i + 5, 5000);
    }
    CHECK(wait_released((int)N, 5000));
    char err[256];
    ctr__audit_flush(a, 5000000000u, err, sizeof err);
    ctr__audit_stats_t st;
    ctr__audit_stats(a, &st);
    ctr__audit_close(a);
    size_t ok = 0, eio = 0, ok_after = 0;
    for (size_t i = 0; i < N; i++) {
        int s = atomic_load(&reqs[i].status);
        ok += s == 0;
        eio += s == CTR_EIO;
        ok_after += i >= 200 && s == 0;
    }
    log_t L;
    read_log(dir, &L);
    int dups = 0;
    size_t ok_missing = 0, failed_logged = 0;
    for (size_t i = 0; i < N; i++) {
        long at = log_find(&L, reqs[i].req.request_id, &dups);
        if (fail && atomic_load(&reqs[i].status) == 0 && at < 0)
            ok_missing++;
        if (fail && atomic_load(&reqs[i].status) != 0 && at >= 0)
            failed_logged++;
    }
    CHECKF(st.errors > 0 && L.corrupt == 0 && L.torn == 0 && dups == 0 && ok_after == N - 200 &&
               L.records == N - st.errors,
           "%s: %llu errors, %zu records, %zu corrupt, %zu torn, %zu served after the limit was lifted",
           name, (unsigned long long)st.errors, L.records, L.corrupt, L.torn, ok_after);
    if (fail)
        CHECKF(eio == st.errors && ok_missing == 0 && failed_logged == 0,
               "%s: %zu EIO for %llu errors, %zu served but not logged, %zu failed but logged", name, eio,
               (unsigned long long)st.errors, ok_missing, failed_logged);
    else
        CHECKF(ok == N && eio == 0, "%s: %zu of %zu served", name, ok, N);
    printf("%-22s %llu records failed (%s), %zu logged, log clean, recovered after the limit\n", name,
           (unsigned long long)st.errors, fail ? "released with CTR_EIO" : "served, counted", L.records);
    log_free(&L);
    free(reqs);
}

static void test_disabled(void)
{
    ctr__audit_config_t cfg = {.enabled = 0};
    ctr__audit_t *a;
    char err[128];
    CHECK(ctr__audit_open(&cfg, &a, err, sizeof err) == 0);
    treq_t r;
    treq_init(&r, 1, 1);
    atomic_store(&g_released, 0);
    submit(a, &r, 1, 1);
    CHECK(atomic_load(&g_released) == 1 && atomic_load(&r.status) == 0);
    ctr__audit_stats_t st;
    ctr__audit_stats(a, &st);
    CHECK(!st.enabled && strstr(ctr__audit_describe(a), "disabled"));
    CHECK(ctr__audit_flush(a, 1000, err, sizeof err) == 0);
    ctr__audit_close(a);
    /* Enabled without a directory: disabled, and it says so. */
    cfg.enabled = 1;
    CHECK(ctr__audit_open(&cfg, &a, err, sizeof err) == 0);
    CHECK(strstr(ctr__audit_describe(a), "--audit-dir") != NULL);
    ctr__audit_close(a);
    /* A directory that cannot be made is an error at start-up. */
    cfg.dir = "/proc/no/such/dir";
    CHECK(ctr__audit_open(&cfg, &a, err, sizeof err) == CTR_EIO);
}

int main(void)
{
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/m.ctrm", test_tmpdir());
    uint32_t hidden[] = {8};
    CHECK(test_make_model(path, 7, ND, NC, 50, 4, hidden, 1, CTR_ACT_SMELU, 1.0f) == 0);
    CHECK(ctr_model_open(path, &g_model, err, sizeof err) == 0);
    g_kernel = ctr_kernel_select(CTR_KERNEL_AUTO, err, sizeof err);
    CTR_ASSERT(g_model && g_kernel);

    test_disabled();
    run_mode("write/io_uring", CTR__AUDIT_WRITE, 0, 1 << 30);
    run_mode("write/pwrite", CTR__AUDIT_WRITE, 1, 1 << 30);
    run_mode("fsync/io_uring", CTR__AUDIT_FSYNC, 0, 1 << 30);
    run_mode("fsync/pwrite", CTR__AUDIT_FSYNC, 1, 1 << 30);
    run_mode("async/io_uring", CTR__AUDIT_ASYNC, 0, 1 << 30);
    run_mode("rotate-8k", CTR__AUDIT_WRITE, 0, 8192);
    run_mode("rotate-8k/pwrite", CTR__AUDIT_FSYNC, 1, 8192);
    test_restart();
    test_backpressure(CTR__AUDIT_WRITE);
    test_backpressure(CTR__AUDIT_ASYNC);
    test_write_errors(1, 0);
    test_write_errors(0, 0);
    test_write_errors(1, 1);
    test_write_errors(0, 1);

    ctr_model_close(g_model);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_tmpdir());
    if (system(cmd))
        fprintf(stderr, "could not remove %s\n", test_tmpdir());
    return test_main_end();
}
