/* bench_paging - how the kernel's paging treats an embedding table read the
 * way ctrd reads it: one row at a time, at random, through a read-only
 * shared mapping of the model file. The study behind model_read.c's
 * advise() (docs/OPERATIONS.md, "Sizing a machine for a model").
 *
 *   bench_paging FILE [options]
 *     --advice A     none | random | normal | sequential | willneed |
 *                    hugepage | hugepage+willneed | nohugepage (madvise on
 *                    the range; nohugepage keeps every mapping 4 KB)
 *     --offset N     start of the range in the file (bytes; rounded down
 *                    to 2 MiB so a huge page can map it), default 0
 *     --length N     bytes of the range (default: the rest of the file)
 *     --row-bytes N  bytes per row (64: a 16-wide fp32 row); every read
 *                    touches the first and last byte of one random row
 *     --seconds S    random-read time (default 30); 0: warm-up only
 *     --window S     print a line every S seconds (default 5)
 *     --threads T    reading threads (default 2: one per core here)
 *     --cold         drop the range from the page cache first
 *                    (posix_fadvise DONTNEED: only this file's clean pages)
 *     --mlock        mlock the range (faults it all in) before reading
 *     --touch        read one byte of every page in order before reading
 *                    (what ctrd's SHA-256 check at load does)
 *     --then A       after the warm-up, switch the range to advice A
 *                    (none = MADV_NORMAL) before reading: ctrd hashes a
 *                    table under MADV_SEQUENTIAL, then sets MADV_RANDOM
 *
 * Prints, per window, rows/s, major faults/s and MB/s read from the disk
 * (this process's /proc/self/io read_bytes), then the totals, the share
 * of the range resident in the page cache (mincore) before and after, the
 * time of the warm-up steps and the latency of the first batch of 6,656
 * rows (256 examples x 26 tables). The last line is tab-separated for
 * scripts: "PAGING advice rows_per_s majflt_per_s read_mb_per_s
 * resident_before resident_after warm_s first_batch_ms file_pmd_kb". */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FIRST_BATCH (256 * 26)
#define MAX_THREADS 64

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

static const unsigned char *base;
static size_t n_rows, row_bytes;
static atomic_uint_fast64_t rows_done;
static atomic_int stop;
static volatile unsigned sink;

/* Seeded from the clock: a run must not replay the rows an earlier run
 * just brought into the page cache. */
static uint64_t seed0;

static void *reader(void *arg)
{
    uint64_t s = seed0 ^ ((uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull);
    unsigned acc = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        for (int i = 0; i < 256; i++) {
            const unsigned char *r = base + (xorshift(&s) % n_rows) * row_bytes;
            acc += r[0] + r[row_bytes - 1];
        }
        atomic_fetch_add_explicit(&rows_done, 256, memory_order_relaxed);
    }
    sink += acc;
    return NULL;
}

/* User + system CPU seconds of this process: rows per CPU second do not
 * count time the threads spent descheduled on a busy machine. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec * 1e-6;
}

static long majflt(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_majflt;
}

static double read_bytes(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    double v = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "read_bytes:", 11))
            v = atof(line + 11);
    fclose(f);
    return v;
}

/* FilePmdMapped of this process: the part of the range mapped by 2 MiB
 * page-table entries (huge pages of the page cache). */
static long file_pmd_kb(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    long v = 0;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "FilePmdMapped:", 14))
            v = atol(line + 14);
    fclose(f);
    return v;
}

static double resident(const void *p, size_t len)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t n = (len + (size_t)page - 1) / (size_t)page, in = 0;
    unsigned char *v = malloc(n);
    if (!v || mincore((void *)p, len, v)) {
        free(v);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        in += v[i] & 1;
    free(v);
    return (double)in / (double)n;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *advice = "none", *then = NULL;
    double secs = 30, window = 5;
    size_t off = 0, len = 0;
    int threads = 2, cold = 0, lock = 0, touch = 0;
    row_bytes = 64;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--cold"))
            cold = 1;
        else if (!strcmp(a, "--mlock"))
            lock = 1;
        else if (!strcmp(a, "--touch"))
            touch = 1;
        else if (v && !strcmp(a, "--advice"))
            advice = argv[++i];
        else if (v && !strcmp(a, "--then"))
            then = argv[++i];
        else if (v && !strcmp(a, "--offset"))
            off = strtoull(argv[++i], NULL, 10);
        else if (v && !strcmp(a, "--length"))
            len = strtoull(argv[++i], NULL, 10);
        else if (v && !strcmp(a, "--row-bytes"))
            row_bytes = strtoull(argv[++i], NULL, 10);
        else if (v && !strcmp(a, "--seconds"))
            secs = atof(argv[++i]);
        else if (v && !strcmp(a, "--window"))
            window = atof(argv[++i]);
        else if (v && !strcmp(a, "--threads"))
            threads = atoi(argv[++i]);
        else if (a[0] != '-' && !path)
            path = a;
        else {
            fprintf(stderr, "bench_paging: bad argument %s (see the comment at the top of bench/bench_paging.c)\n", a);
            return 2;
        }
    }
    if (!path || threads < 1 || threads > MAX_THREADS || row_bytes < 1 || window <= 0) {
        fprintf(stderr, "usage: bench_paging FILE [--advice A] [--offset N] [--length N] [--row-bytes N]\n"
                        "       [--seconds S] [--window S] [--threads T] [--cold] [--mlock] [--touch]\n");
        return 2;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        fprintf(stderr, "bench_paging: open %s: %s\n", path, strerror(errno));
        return 1;
    }
    off &= ~(size_t)((2u << 20) - 1);
    if (off >= (size_t)st.st_size) {
        fprintf(stderr, "bench_paging: offset %zu past the end of %s\n", off, path);
        return 1;
    }
    if (!len || len > (size_t)st.st_size - off)
        len = (size_t)st.st_size - off;
    n_rows = len / row_bytes;
    if (!n_rows) {
        fprintf(stderr, "bench_paging: range shorter than one row\n");
        return 1;
    }
    if (cold) {
        /* Clean pages of this file only; a page mapped elsewhere stays. */
        (void)posix_fadvise(fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
    }
    void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)off);
    if (map == MAP_FAILED) {
        fprintf(stderr, "bench_paging: mmap: %s\n", strerror(errno));
        return 1;
    }
    base = map;
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed0 = ((uint64_t)ts.tv_sec * 1000000007ull) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    }
    double res0 = resident(map, len);

    double t0 = now();
    int rc = 0;
    if (!strcmp(advice, "random"))
        rc = madvise(map, len, MADV_RANDOM);
    else if (!strcmp(advice, "normal"))
        rc = madvise(map, len, MADV_NORMAL);
    else if (!strcmp(advice, "sequential"))
        rc = madvise(map, len, MADV_SEQUENTIAL);
    else if (!strcmp(advice, "willneed"))
        rc = madvise(map, len, MADV_WILLNEED);
    else if (!strcmp(advice, "hugepage"))
        rc = madvise(map, len, MADV_HUGEPAGE);
    else if (!strcmp(advice, "nohugepage"))
        rc = madvise(map, len, MADV_NOHUGEPAGE);
    else if (!strcmp(advice, "hugepage+willneed"))
        rc = madvise(map, len, MADV_HUGEPAGE) || madvise(map, len, MADV_WILLNEED);
    else if (strcmp(advice, "none")) {
        fprintf(stderr, "bench_paging: unknown --advice %s\n", advice);
        return 2;
    }
    if (rc)
        printf("madvise(%s): %s\n", advice, strerror(errno));
    double t_advise = now() - t0;
    double t_lock = 0, t_touch = 0;
    if (lock) {
        double t = now();
        if (mlock(map, len))
            printf("mlock: %s\n", strerror(errno));
        t_lock = now() - t;
    }
    if (touch) {
        double t = now();
        long page = sysconf(_SC_PAGESIZE);
        unsigned acc = 0;
        for (size_t i = 0; i < len; i += (size_t)page)
            acc += base[i];
        sink += acc;
        t_touch = now() - t;
    }
    double warm_s = now() - t0;
    if (then) {
        int adv = !strcmp(then, "random") ? MADV_RANDOM : !strcmp(then, "sequential") ? MADV_SEQUENTIAL
                  : !strcmp(then, "hugepage") ? MADV_HUGEPAGE : MADV_NORMAL;
        if (madvise(map, len, adv))
            printf("madvise(%s): %s\n", then, strerror(errno));
    }
    double res_warm = resident(map, len);

    /* The first batch, one thread: what the first request after start-up
     * pays for the rows it touches. */
    uint64_t s = seed0 | 1;
    unsigned acc = 0;
    double tb = now();
    for (int i = 0; i < FIRST_BATCH; i++) {
        const unsigned char *r = base + (xorshift(&s) % n_rows) * row_bytes;
        acc += r[0] + r[row_bytes - 1];
    }
    double first_ms = (now() - tb) * 1e3;
    sink += acc;

    printf("range %.2f GB of %s at %zu, %zu rows of %zu bytes, advice %s%s%s%s%s%s, %d thread(s)\n",
           (double)len / 1e9, path, off, n_rows, row_bytes, advice, cold ? ", cold" : "", lock ? ", mlock" : "",
           touch ? ", touch" : "", then ? ", then " : "", then ? then : "", threads);
    printf("resident before %.4f, after warm-up %.4f; madvise %.3f s, mlock %.3f s, touch %.3f s; first %d rows %.2f ms\n",
           res0, res_warm, t_advise, t_lock, t_touch, FIRST_BATCH, first_ms);

    double total_rows = 0, total_flt = 0, total_rd = 0, elapsed = 0, cpu = 0;
    if (secs > 0) {
        pthread_t th[MAX_THREADS];
        long f0 = majflt();
        double rd0 = read_bytes();
        double c0 = cpu_s();
        double ts = now();
        for (int i = 0; i < threads; i++)
            pthread_create(&th[i], NULL, reader, (void *)(uintptr_t)(i + 1));
        uint64_t last_rows = 0;
        long last_f = f0;
        double last_rd = rd0, last_t = ts;
        while (now() - ts < secs) {
            double next = last_t + window, t;
            while ((t = now()) < next && t - ts < secs)
                usleep(20000);
            uint64_t r = atomic_load(&rows_done);
            long f = majflt();
            double rd = read_bytes(), dt = t - last_t;
            printf("  %6.1f s: %10.0f rows/s  %8.0f majflt/s  %8.1f MB/s read\n", t - ts, (double)(r - last_rows) / dt,
                   (double)(f - last_f) / dt, (rd - last_rd) / dt / 1e6);
            fflush(stdout);
            last_rows = r, last_f = f, last_rd = rd, last_t = t;
        }
        atomic_store(&stop, 1);
        for (int i = 0; i < threads; i++)
            pthread_join(th[i], NULL);
        elapsed = now() - ts;
        cpu = cpu_s() - c0;
        total_rows = (double)atomic_load(&rows_done);
        total_flt = (double)(majflt() - f0);
        total_rd = read_bytes() - rd0;
    }
    double res1 = resident(map, len);
    long pmd = file_pmd_kb();
    double rps = elapsed > 0 ? total_rows / elapsed : 0;
    printf("total: %.0f rows/s (%.0f rows per CPU second), %.0f majflt/s (%.4f per row), %.1f MB/s read (%.0f bytes per "
           "fault); resident after %.4f; FilePmdMapped %ld kB\n",
           rps, cpu > 0 ? total_rows / cpu : 0, elapsed > 0 ? total_flt / elapsed : 0, total_rows > 0 ? total_flt / total_rows : 0,
           elapsed > 0 ? total_rd / elapsed / 1e6 : 0, total_flt > 0 ? total_rd / total_flt : 0, res1, pmd);
    printf("PAGING\t%s\t%.0f\t%.0f\t%.2f\t%.4f\t%.4f\t%.3f\t%.2f\t%ld\n", advice, rps,
           elapsed > 0 ? total_flt / elapsed : 0, elapsed > 0 ? total_rd / elapsed / 1e6 : 0, res0, res1, warm_s,
           first_ms, pmd);
    munmap(map, len);
    close(fd);
    return 0;
}
