/* testutil.c - shared test helpers (see testutil.h). */
#include "testutil.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctr/common.h"

int ctr_test_failures;
int ctr_test_checks;

int test_main_end(void)
{
    if (ctr_test_failures) {
        fprintf(stderr, "%d of %d checks failed\n", ctr_test_failures, ctr_test_checks);
        return 1;
    }
    printf("all %d checks passed\n", ctr_test_checks);
    return 0;
}

/* Counts one check; on failure prints "file:line: check failed: WHAT"
 * and the values, and returns 0. */
static int check_done(int ok, const char *file, int line)
{
    ctr_test_checks++;
    if (!ok) {
        ctr_test_failures++;
        fprintf(stderr, "%s:%d: check failed: ", file, line);
    }
    return ok;
}

int test_check_int(const char *file, int line, const char *ea, const char *eb,
                   intmax_t a, intmax_t b)
{
    if (check_done(a == b, file, line))
        return 1;
    fprintf(stderr, "%s == %s: %jd vs %jd\n", ea, eb, a, b);
    return 0;
}

int test_check_uint(const char *file, int line, const char *ea, const char *eb,
                    uintmax_t a, uintmax_t b)
{
    if (check_done(a == b, file, line))
        return 1;
    fprintf(stderr, "%s == %s: %ju (0x%jx) vs %ju (0x%jx)\n", ea, eb, a, a, b, b);
    return 0;
}

int test_check_size(const char *file, int line, const char *ea, const char *eb,
                    size_t a, size_t b)
{
    if (check_done(a == b, file, line))
        return 1;
    fprintf(stderr, "%s == %s: %zu vs %zu\n", ea, eb, a, b);
    return 0;
}

/* s quoted, with control bytes, quotes and backslashes escaped, so two
 * strings that differ in a byte that does not print still look different. */
static void print_quoted(const char *s)
{
    if (!s) {
        fputs("NULL", stderr);
        return;
    }
    fputc('"', stderr);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(stderr, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", stderr);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(stderr, "\\x%02x", *p);
        else
            fputc(*p, stderr);
    }
    fputc('"', stderr);
}

int test_check_str(const char *file, int line, const char *ea, const char *eb,
                   const char *a, const char *b)
{
    int same = a && b ? strcmp(a, b) == 0 : a == b;
    if (check_done(same, file, line))
        return 1;
    fprintf(stderr, "%s == %s: ", ea, eb);
    print_quoted(a);
    fputs(" vs ", stderr);
    print_quoted(b);
    fputc('\n', stderr);
    return 0;
}

int test_check_dbl(const char *file, int line, const char *ea, const char *eb,
                   double a, double b)
{
    if (check_done(a == b, file, line))
        return 1;
    fprintf(stderr, "%s == %s: %.17g vs %.17g (%a vs %a)\n", ea, eb, a, b, a, b);
    return 0;
}

int test_check_flt(const char *file, int line, const char *ea, const char *eb,
                   float a, float b)
{
    if (check_done(a == b, file, line))
        return 1;
    fprintf(stderr, "%s == %s: %.9g vs %.9g\n", ea, eb, (double)a, (double)b);
    return 0;
}

int test_check_bits(const char *file, int line, const char *ea, const char *eb,
                    float a, float b)
{
    uint32_t ua, ub;
    memcpy(&ua, &a, sizeof ua);
    memcpy(&ub, &b, sizeof ub);
    if (check_done(ua == ub, file, line))
        return 1;
    fprintf(stderr, "%s == %s bit for bit: %.9g (0x%08" PRIx32 ") vs %.9g (0x%08" PRIx32 ")\n",
            ea, eb, (double)a, ua, (double)b, ub);
    return 0;
}

int test_check_near(const char *file, int line, const char *ea, const char *eb,
                    const char *etol, double a, double b, double tol)
{
    /* a == b first: two equal infinities are near, though inf - inf is NaN. */
    if (check_done(a == b || fabs(a - b) <= tol, file, line))
        return 1;
    fprintf(stderr, "|%s - %s| <= %s: %.17g vs %.17g, difference %.3g > %.3g\n", ea, eb,
            etol, a, b, fabs(a - b), tol);
    return 0;
}

void test_require_program(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0)
        return;
    fprintf(stderr, "FAIL: %s is not built (`make all` builds it)\n", path);
    exit(1);
}

uint64_t test_rng_next(test_rng_t *r)
{
    uint64_t x = r->s ? r->s : 0x9e3779b97f4a7c15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545f4914f6cdd1dull;
}

float test_rng_uniform(test_rng_t *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)((test_rng_next(r) >> 40) * (1.0 / 16777216.0));
}

int test_make_model(const char *path, uint64_t seed, size_t n_dense,
                    size_t n_cat, uint32_t buckets, uint32_t dim,
                    const uint32_t *hidden, size_t n_hidden,
                    ctr_activation_t act, float beta)
{
    test_rng_t rng = {seed * 0x9e3779b97f4a7c15ull + 1};
    ctr_dense_def_t *dense = calloc(n_dense ? n_dense : 1, sizeof(*dense));
    ctr_cat_def_t *cat = calloc(n_cat ? n_cat : 1, sizeof(*cat));
    ctr_layer_def_t *layers = calloc(n_hidden + 1, sizeof(*layers));
    char (*names)[24] = calloc(n_dense + n_cat + 1, 24);
    float **bufs = calloc(n_cat + 2 * (n_hidden + 1) + 1, sizeof(float *));
    size_t nbufs = 0;
    int rc = CTR_ENOMEM;
    if (!dense || !cat || !layers || !names || !bufs)
        goto out;
    for (size_t i = 0; i < n_dense; i++) {
        snprintf(names[i], 24, "I%zu", i + 1);
        dense[i].name = names[i];
        dense[i].transform = (ctr_transform_t)(i % 3);
        dense[i].mean = 1.5;
        dense[i].std = 2.25;
    }
    for (size_t j = 0; j < n_cat; j++) {
        snprintf(names[n_dense + j], 24, "C%zu", j + 1);
        cat[j].name = names[n_dense + j];
        cat[j].buckets = buckets;
        cat[j].dim = dim;
        cat[j].seed = 1000 + j;
        size_t n = (size_t)(buckets + 1) * dim;
        float *t = bufs[nbufs++] = malloc(n * sizeof(float));
        if (!t)
            goto out;
        for (size_t k = 0; k < n; k++)
            t[k] = test_rng_uniform(&rng, -0.5f, 0.5f);
        cat[j].table = t;
    }
    uint32_t in = (uint32_t)(n_dense + n_cat * dim);
    for (size_t l = 0; l <= n_hidden; l++) {
        uint32_t out = l < n_hidden ? hidden[l] : 1;
        float *w = bufs[nbufs++] = malloc((size_t)in * out * sizeof(float));
        float *b = bufs[nbufs++] = malloc((size_t)out * sizeof(float));
        if (!w || !b)
            goto out;
        float scale = 2.0f / (float)in;
        for (size_t k = 0; k < (size_t)in * out; k++)
            w[k] = test_rng_uniform(&rng, -1.0f, 1.0f) * scale * 1.7f;
        for (size_t k = 0; k < out; k++)
            b[k] = test_rng_uniform(&rng, -0.2f, 0.2f);
        layers[l] = (ctr_layer_def_t){in, out, w, b, 0};
        in = out;
    }
    ctr_model_def_t def = {
        .name = "test", .n_dense = n_dense, .dense = dense,
        .n_cat = n_cat, .cat = cat, .n_layers = n_hidden + 1, .layers = layers,
        .activation = act, .beta = beta, .provenance_json = "{\"source\":\"test\"}",
    };
    char err[256];
    rc = ctr_model_write(path, &def, NULL, NULL, err, sizeof(err));
    if (rc)
        fprintf(stderr, "test_make_model: %s\n", err);
out:
    for (size_t i = 0; i < nbufs; i++)
        free(bufs[i]);
    free(bufs);
    free(names);
    free(layers);
    free(cat);
    free(dense);
    return rc;
}

const char *test_tmpdir(void)
{
    static char dir[256];
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof(dir), "%s/ctrtest.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            exit(1);
        }
    }
    return dir;
}

const char *test_path(const char *name)
{
    static char buf[4][512];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 512, "%s/%s", test_tmpdir(), name);
    return p;
}

unsigned char *test_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    *len = 0;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        rewind(f);
        buf = malloc(n > 0 ? (size_t)n : 1);
        if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n)
            *len = (size_t)n;
        else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

/* Unlinks first: on ext4, truncating a file that has data forces it to
 * disk (auto_da_alloc), which made the mutation loops 10x slower. */
void test_spit(const char *path, const void *buf, size_t len)
{
    unlink(path);
    FILE *f = fopen(path, "wb");
    CTR_ASSERT(f);
    CTR_ASSERT(fwrite(buf, 1, len, f) == len);
    CTR_ASSERT(fclose(f) == 0);
}
