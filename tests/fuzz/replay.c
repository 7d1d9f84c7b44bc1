/* replay.c - runs one fuzz target's LLVMFuzzerTestOneInput over files, the
 * way libFuzzer replays a corpus, without libFuzzer: any compiler, any
 * sanitizer set. `make test` builds one per target ($(B)/tests/fuzz_replay_<name>)
 * and tests/test_fuzz_replay.sh runs it over tests/fuzz/corpus/<name>/.
 *
 *     fuzz_replay_<name> PATH...             files, or directories (their plain
 *                                            files, sorted by name, not recursive)
 *     fuzz_replay_<name> --write-seeds DIR   the target's generated seeds, if it has any
 *
 * Each input is copied into a buffer of exactly its size, so ASan flags a
 * read one byte past the end as libFuzzer would. A crashing input aborts the
 * run; the last "input:" line on stderr names it. Exit 0 when every input
 * ran, 2 on a usage or I/O problem. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fuzz.h"

/* Targets without seeds leave this undefined. */
__attribute__((weak)) int fuzz_write_seeds(const char *dir);

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_file(const char *path, size_t *bytes)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            fprintf(stderr, "%s: out of memory\n", path);
            return -1;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        unsigned char *nb = realloc(buf, cap * 2);
        if (!nb)
            free(buf);
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        fprintf(stderr, "%s: read error\n", path);
        return -1;
    }
    /* Exactly n bytes (malloc(0) may return NULL: keep one byte then). */
    unsigned char *exact = malloc(n ? n : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, n);
    free(buf);
    if (getenv("FUZZ_REPLAY_VERBOSE"))
        fprintf(stderr, "input: %s (%zu bytes)\n", path, n);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    *bytes += n;
    return 0;
}

static int run_dir(const char *dir, size_t *files, size_t *bytes)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "%s: %s\n", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            char **nn = realloc(names, cap * sizeof(*names));
            if (!nn)
                break;
            names = nn;
        }
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), cmp_names);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (rc == 0 && names[i] && !stat(path, &st) && S_ISREG(st.st_mode)) {
            if (run_file(path, bytes))
                rc = -1;
            else
                (*files)++;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--write-seeds")) {
        if (!fuzz_write_seeds) {
            fprintf(stderr, "this target has no generated seeds\n");
            return 2;
        }
        int n = fuzz_write_seeds(argv[2]);
        if (n < 0)
            return 2;
        printf("%d seeds written to %s\n", n, argv[2]);
        return 0;
    }
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: %s FILE|DIR...\n       %s --write-seeds DIR\n", argv[0], argv[0]);
        return 2;
    }
    size_t files = 0, bytes = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st)) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            return 2;
        }
        int rc;
        if (S_ISDIR(st.st_mode)) {
            rc = run_dir(argv[i], &files, &bytes);
        } else {
            rc = run_file(argv[i], &bytes);
            files += rc == 0;
        }
        if (rc)
            return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("replayed %zu inputs (%zu bytes) in %.2f s\n", files, bytes,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
