/* test_model_format.c - the .ctrm writer and reader (model/model_write.c,
 * model/model_read.c, model/model_header.c, model/model_names.c).
 *
 * Round trips (every field and tensor byte), byte-identical rewrites, the
 * digest rule, streamed tables, writer validation, and one test per class
 * of damaged or hostile file: each must be refused with the right code and
 * a message that names the thing. Mutated files are built by editing the
 * header JSON text of a known-good file and rewriting its preamble. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctr/common.h"
#include "ctr/model.h"
#include "testutil.h"

static char g_path[512], g_mut[512];

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void sha256_hex(const void *data, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    CTR_ASSERT(ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) && EVP_DigestUpdate(ctx, data, n) &&
               EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen == 32);
    EVP_MD_CTX_free(ctx);
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

static uint64_t rd64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void wr32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void wr64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }

/* ---- a hand-made model: one of every kind of field ---------------------- */

typedef struct {
    ctr_dense_def_t dense[3];
    ctr_cat_def_t cat[3];
    ctr_layer_def_t layers[2];
    float *bufs[8];
    ctr_model_def_t def;
} own_t;

static void own_init(own_t *o, uint64_t seed)
{
    test_rng_t rng = {seed};
    memset(o, 0, sizeof(*o));
    o->dense[0] = (ctr_dense_def_t){"I1", CTR_TRANSFORM_LOG1P, 0, 1};
    o->dense[1] = (ctr_dense_def_t){"I2", CTR_TRANSFORM_IDENTITY, 0, 1};
    o->dense[2] = (ctr_dense_def_t){"I3", CTR_TRANSFORM_STANDARDIZE, -0.3, 1.7};
    o->cat[0] = (ctr_cat_def_t){.name = "C1", .buckets = 10, .dim = 4, .seed = 0};
    o->cat[1] = (ctr_cat_def_t){.name = "C2", .buckets = 7, .dim = 3, .seed = UINT64_MAX};
    o->cat[2] = (ctr_cat_def_t){.name = "C3 x", .buckets = 1, .dim = 1, .seed = 12345678901234567890ull};
    size_t nb = 0;
    for (int j = 0; j < 3; j++) {
        size_t n = (size_t)(o->cat[j].buckets + 1) * o->cat[j].dim;
        float *t = o->bufs[nb++] = malloc(n * sizeof(float));
        CTR_ASSERT(t);
        for (size_t k = 0; k < n; k++)
            t[k] = test_rng_uniform(&rng, -1, 1);
        o->cat[j].table = t;
    }
    uint32_t in = 3 + 4 + 3 + 1, widths[2] = {5, 1};
    for (int l = 0; l < 2; l++) {
        float *w = o->bufs[nb++] = malloc((size_t)in * widths[l] * sizeof(float));
        float *b = o->bufs[nb++] = malloc(widths[l] * sizeof(float));
        CTR_ASSERT(w && b);
        for (size_t k = 0; k < (size_t)in * widths[l]; k++)
            w[k] = test_rng_uniform(&rng, -1, 1);
        for (size_t k = 0; k < widths[l]; k++)
            b[k] = test_rng_uniform(&rng, -1, 1);
        o->layers[l] = (ctr_layer_def_t){in, widths[l], w, b, 0};
        in = widths[l];
    }
    o->def = (ctr_model_def_t){
        .name = "own model \xc3\xa9", .n_dense = 3, .dense = o->dense, .n_cat = 3, .cat = o->cat,
        .n_layers = 2, .layers = o->layers, .activation = CTR_ACT_SMELU, .beta = 0.3f,
        .provenance_json = "{\"source\":\"unit\",\"lr\":0.5,\"nested\":{\"a\":[1,2,3]},\"z\":null}",
    };
}

static void own_free(own_t *o)
{
    for (size_t i = 0; i < CTR_ARRAY_LEN(o->bufs); i++)
        free(o->bufs[i]);
}

static size_t ldw_of(const ctr_layer_def_t *L)
{
    return L->ldw ? L->ldw : L->out;
}

static bool floats_equal(const float *a, const float *b, size_t n)
{
    return !memcmp(a, b, n * sizeof(float));
}

static void compare_def(const ctr_model_def_t *w, const ctr_model_def_t *r)
{
    CHECK(!strcmp(w->name, r->name));
    CHECK(w->n_dense == r->n_dense && w->n_cat == r->n_cat && w->n_layers == r->n_layers);
    if (w->n_dense != r->n_dense || w->n_cat != r->n_cat || w->n_layers != r->n_layers)
        return;
    for (size_t i = 0; i < w->n_dense; i++) {
        CHECK(!strcmp(w->dense[i].name, r->dense[i].name));
        CHECK(w->dense[i].transform == r->dense[i].transform);
        if (w->dense[i].transform == CTR_TRANSFORM_STANDARDIZE)
            CHECKF(w->dense[i].mean == r->dense[i].mean && w->dense[i].std == r->dense[i].std,
                   "dense %zu: mean/std %.17g/%.17g read back as %.17g/%.17g", i, w->dense[i].mean,
                   w->dense[i].std, r->dense[i].mean, r->dense[i].std);
        else
            CHECK(r->dense[i].mean == 0 && r->dense[i].std == 1);
    }
    for (size_t j = 0; j < w->n_cat; j++) {
        const ctr_cat_def_t *a = &w->cat[j], *b = &r->cat[j];
        CHECK(!strcmp(a->name, b->name));
        CHECK(a->buckets == b->buckets && a->dim == b->dim);
        CHECKF(a->seed == b->seed, "seed %" PRIu64 " read back as %" PRIu64, a->seed, b->seed);
        if (a->table)
            CHECK(floats_equal(a->table, b->table, (size_t)(a->buckets + 1) * a->dim));
        CHECK(((uintptr_t)b->table & 63) == 0);
    }
    for (size_t l = 0; l < w->n_layers; l++) {
        const ctr_layer_def_t *a = &w->layers[l], *b = &r->layers[l];
        CHECK(a->in == b->in && a->out == b->out);
        for (size_t i = 0; i < a->in; i++) /* a loaded layer's rows may be padded */
            CHECK(floats_equal(a->weight + i * ldw_of(a), b->weight + i * ldw_of(b), a->out));
        CHECK(floats_equal(a->bias, b->bias, a->out));
        CHECK(((uintptr_t)b->weight & 63) == 0 && ((uintptr_t)b->bias & 63) == 0);
    }
    CHECK(w->activation == r->activation);
    CHECK(w->beta == r->beta);
}

/* ---- round trips -------------------------------------------------------- */

static void test_round_trip(void)
{
    own_t o;
    own_init(&o, 7);
    char err[512] = "";
    const char *path = test_path("own.ctrm");
    int rc = ctr_model_write(path, &o.def, NULL, NULL, err, sizeof(err));
    CHECKF(rc == 0, "write: %s", err);
    CHECK(!file_exists(test_path("own.ctrm.tmp")));

    ctr_model_t *m = NULL;
    rc = ctr_model_open(path, &m, err, sizeof(err));
    CHECKF(rc == 0, "open: %s", err);
    if (rc)
        goto out;
    const ctr_model_def_t *r = ctr_model_def(m);
    compare_def(&o.def, r);
    CHECKF(!strcmp(r->provenance_json, o.def.provenance_json), "provenance %s", r->provenance_json);
    CHECK(ctr_model_input_dim(r) == 11);
    CHECK(!strcmp(ctr_model_path(m), path));
    CHECK(ctr_model_verify(m, err, sizeof(err)) == 0);

    /* The digest is the SHA-256 of the header bytes as they sit in the file. */
    size_t flen, hlen;
    unsigned char *file = test_slurp(path, &flen);
    const char *hjson = ctr_model_header_json(m, &hlen);
    CHECK(file && ctr_model_file_size(m) == flen);
    CHECK(!memcmp(file, "CTRMODEL", 8));
    CHECK(rd64(file + 16) == hlen && hjson[hlen] == '\0');
    CHECK(rd64(file + 24) == ((32 + hlen + 63) & ~(uint64_t)63));
    CHECK(!memcmp(file + 32, hjson, hlen));
    char hex[65], want[72];
    sha256_hex(file + 32, hlen, hex);
    snprintf(want, sizeof(want), "sha256:%s", hex);
    CHECKF(!strcmp(ctr_model_digest(m), want), "digest %s, want %s", ctr_model_digest(m), want);
    /* The full 64-bit seeds travel as decimal strings. */
    CHECK(strstr(hjson, "\"seed\":\"18446744073709551615\""));
    CHECK(strstr(hjson, "\"seed\":\"0\""));
    free(file);

    /* Feature lookup: every name, near misses, and names inside bigger buffers. */
    for (size_t i = 0; i < 3; i++)
        CHECK(ctr_model_find_feature(m, o.dense[i].name, strlen(o.dense[i].name)) == (long)i);
    for (size_t j = 0; j < 3; j++)
        CHECK(ctr_model_find_feature(m, o.cat[j].name, strlen(o.cat[j].name)) == (long)(3 + j));
    CHECK(ctr_model_find_feature(m, "I1xyz", 2) == 0);
    CHECK(ctr_model_find_feature(m, "C3 x!", 4) == 5);
    CHECK(ctr_model_find_feature(m, "C3", 2) == -1);
    CHECK(ctr_model_find_feature(m, "I", 1) == -1);
    CHECK(ctr_model_find_feature(m, "I10", 3) == -1);
    CHECK(ctr_model_find_feature(m, "", 0) == -1);
    CHECK(ctr_model_find_feature(m, "i1", 2) == -1);
    char longname[100];
    memset(longname, 'a', sizeof(longname));
    CHECK(ctr_model_find_feature(m, longname, sizeof(longname)) == -1);
    ctr_model_close(m);

    /* Same def, same bytes (the trainer promises byte-identical files). */
    const char *path2 = test_path("own2.ctrm");
    CHECK(ctr_model_write(path2, &o.def, NULL, NULL, err, sizeof(err)) == 0);
    size_t l1, l2;
    unsigned char *a = test_slurp(path, &l1), *b = test_slurp(path2, &l2);
    CHECK(a && b && l1 == l2 && !memcmp(a, b, l1));
    free(a);
    free(b);
    /* And overwriting an existing file replaces it. */
    o.def.beta = 2.0f;
    CHECK(ctr_model_write(path2, &o.def, NULL, NULL, err, sizeof(err)) == 0);
    CHECK(ctr_model_open(path2, &m, err, sizeof(err)) == 0);
    if (m)
        CHECK(ctr_model_def(m)->beta == 2.0f);
    ctr_model_close(m);
    unlink(path2);
out:
    unlink(path);
    own_free(&o);
}

/* A NULL provenance is written as {} and relu round-trips too. */
static void test_round_trip_variants(void)
{
    own_t o;
    own_init(&o, 11);
    o.def.provenance_json = NULL;
    o.def.activation = CTR_ACT_RELU;
    o.def.beta = 1e-30f;
    o.dense[2].mean = 1e300;
    o.dense[2].std = 5e-324; /* the smallest subnormal: still > 0 */
    char err[512] = "";
    const char *path = test_path("variant.ctrm");
    CHECKF(ctr_model_write(path, &o.def, NULL, NULL, err, sizeof(err)) == 0, "%s", err);
    ctr_model_t *m = NULL;
    CHECKF(ctr_model_open(path, &m, err, sizeof(err)) == 0, "%s", err);
    if (m) {
        compare_def(&o.def, ctr_model_def(m));
        CHECK(!strcmp(ctr_model_def(m)->provenance_json, "{}"));
    }
    ctr_model_close(m);
    unlink(path);
    own_free(&o);
}

static void test_testutil_models(void)
{
    static const uint32_t hidden[] = {32, 16};
    const char *a = test_path("tu_a.ctrm"), *b = test_path("tu_b.ctrm");
    CHECK(test_make_model(a, 3, 13, 26, 100, 8, hidden, 2, CTR_ACT_SMELU, 1.0f) == 0);
    CHECK(test_make_model(b, 3, 13, 26, 100, 8, hidden, 2, CTR_ACT_SMELU, 1.0f) == 0);
    size_t la, lb;
    unsigned char *fa = test_slurp(a, &la), *fb = test_slurp(b, &lb);
    CHECK(fa && fb && la == lb && !memcmp(fa, fb, la));
    free(fa);
    free(fb);
    ctr_model_t *m = NULL;
    char err[512] = "";
    CHECKF(ctr_model_open(a, &m, err, sizeof(err)) == 0, "%s", err);
    if (m) {
        const ctr_model_def_t *d = ctr_model_def(m);
        CHECK(d->n_dense == 13 && d->n_cat == 26 && d->n_layers == 3);
        CHECK(ctr_model_input_dim(d) == 13 + 26 * 8);
        CHECK(d->layers[0].out == 32 && d->layers[1].out == 16 && d->layers[2].out == 1);
        CHECK(d->cat[25].buckets == 100 && d->cat[25].dim == 8 && d->cat[25].seed == 1025);
        CHECK(d->activation == CTR_ACT_SMELU && d->beta == 1.0f);
        CHECK(!strcmp(d->provenance_json, "{\"source\":\"test\"}"));
        CHECK(ctr_model_verify(m, err, sizeof(err)) == 0);
        char name[16];
        for (int i = 1; i <= 13; i++) {
            snprintf(name, sizeof(name), "I%d", i);
            CHECK(ctr_model_find_feature(m, name, strlen(name)) == i - 1);
        }
        for (int j = 1; j <= 26; j++) {
            snprintf(name, sizeof(name), "C%d", j);
            CHECK(ctr_model_find_feature(m, name, strlen(name)) == 13 + j - 1);
        }
        CHECK(ctr_model_find_feature(m, "C27", 3) == -1);
    }
    ctr_model_close(m);
    /* A different seed gives a different model and digest. */
    CHECK(test_make_model(b, 4, 13, 26, 100, 8, hidden, 2, CTR_ACT_SMELU, 1.0f) == 0);
    ctr_model_t *m2 = NULL;
    CHECK(ctr_model_open(a, &m, err, sizeof(err)) == 0);
    CHECK(ctr_model_open(b, &m2, err, sizeof(err)) == 0);
    if (m && m2)
        CHECK(strcmp(ctr_model_digest(m), ctr_model_digest(m2)) != 0);
    ctr_model_close(m);
    ctr_model_close(m2);
    /* No hidden layer: a logistic regression over the inputs. */
    CHECK(test_make_model(b, 5, 2, 1, 3, 2, NULL, 0, CTR_ACT_RELU, 0.5f) == 0);
    CHECK(ctr_model_open(b, &m, err, sizeof(err)) == 0);
    if (m)
        CHECK(ctr_model_def(m)->n_layers == 1 && ctr_model_def(m)->layers[0].in == 4);
    ctr_model_close(m);
    unlink(a);
    unlink(b);
}

static void test_names(void)
{
    CHECK(!strcmp(ctr_transform_name(CTR_TRANSFORM_IDENTITY), "identity"));
    CHECK(!strcmp(ctr_transform_name(CTR_TRANSFORM_LOG1P), "log1p"));
    CHECK(!strcmp(ctr_transform_name(CTR_TRANSFORM_STANDARDIZE), "standardize"));
    CHECK(!strcmp(ctr_activation_name(CTR_ACT_SMELU), "smelu"));
    CHECK(!strcmp(ctr_activation_name(CTR_ACT_RELU), "relu"));
    CHECK(!strcmp(ctr_activation_name(CTR_ACT_NONE), "none"));
}

/* ---- streamed tables ------------------------------------------------------ */

typedef struct {
    const ctr_cat_def_t *src; /* copy rows from here, or generate if NULL */
    uint32_t dim;
    uint64_t next_row[4];
    uint64_t calls, max_bytes;
    bool gaps;
    uint64_t fail_at_call; /* 0 = never */
} fill_ctx_t;

static float gen_value(size_t cat, uint64_t i)
{
    uint64_t h = (i + 1) * 0x9e3779b97f4a7c15ull ^ (cat << 56);
    h ^= h >> 29;
    return (float)(int32_t)(h & 0xffffff) / 16777216.0f;
}

static int fill_cb(void *vctx, size_t cat_index, uint64_t first_row, uint64_t n_rows, float *out)
{
    fill_ctx_t *c = vctx;
    c->calls++;
    if (c->fail_at_call && c->calls == c->fail_at_call)
        return CTR_EIO;
    if (cat_index < 4) {
        if (first_row != c->next_row[cat_index])
            c->gaps = true;
        c->next_row[cat_index] = first_row + n_rows;
    }
    uint32_t dim = c->src ? c->src[cat_index].dim : c->dim;
    uint64_t bytes = n_rows * dim * sizeof(float);
    if (bytes > c->max_bytes)
        c->max_bytes = bytes;
    if (c->src)
        memcpy(out, c->src[cat_index].table + first_row * dim, bytes);
    else
        for (uint64_t k = 0; k < n_rows * dim; k++)
            out[k] = gen_value(cat_index, first_row * dim + k);
    return 0;
}

static void test_streamed(void)
{
    own_t o;
    own_init(&o, 21);
    char err[512] = "";
    const char *a = test_path("mem.ctrm"), *b = test_path("stream.ctrm");
    CHECK(ctr_model_write(a, &o.def, NULL, NULL, err, sizeof(err)) == 0);
    /* Tables 0 and 2 streamed, table 1 from memory: same bytes. */
    ctr_cat_def_t cat[3];
    memcpy(cat, o.cat, sizeof(cat));
    cat[0].table = cat[2].table = NULL;
    ctr_model_def_t def = o.def;
    def.cat = cat;
    fill_ctx_t ctx = {.src = o.cat};
    CHECKF(ctr_model_write(b, &def, fill_cb, &ctx, err, sizeof(err)) == 0, "%s", err);
    CHECK(ctx.calls == 2 && !ctx.gaps && ctx.next_row[0] == 11 && ctx.next_row[2] == 2);
    size_t la, lb;
    unsigned char *fa = test_slurp(a, &la), *fb = test_slurp(b, &lb);
    CHECK(fa && fb && la == lb && !memcmp(fa, fb, la));
    free(fa);
    free(fb);

    /* A NULL table without a callback is a caller error. */
    CHECK(ctr_model_write(b, &def, NULL, NULL, err, sizeof(err)) == CTR_EINVAL);
    CHECK(strstr(err, "C1") != NULL);

    /* A failing callback aborts the write, and leaves no file behind. */
    unlink(b);
    fill_ctx_t fctx = {.src = o.cat, .fail_at_call = 2};
    int rc = ctr_model_write(b, &def, fill_cb, &fctx, err, sizeof(err));
    CHECKF(rc == CTR_EIO && strstr(err, "emb.C3 x") && strstr(err, "fill"), "rc %d: %s", rc, err);
    CHECK(!file_exists(b));
    CHECK(!file_exists(test_path("stream.ctrm.tmp")));

    /* A callback that produces NaN is refused like an in-memory NaN. */
    float saved = o.bufs[0][5];
    o.bufs[0][5] = NAN;
    rc = ctr_model_write(b, &o.def, NULL, NULL, err, sizeof(err));
    CHECKF(rc == CTR_ERANGE && strstr(err, "emb.C1") && strstr(err, "element 5"), "rc %d: %s", rc, err);
    fill_ctx_t nctx = {.src = o.cat};
    rc = ctr_model_write(b, &def, fill_cb, &nctx, err, sizeof(err));
    CHECKF(rc == CTR_ERANGE && strstr(err, "emb.C1"), "rc %d: %s", rc, err);
    o.bufs[0][5] = saved;
    o.bufs[3][0] = INFINITY; /* layer 0 weight */
    rc = ctr_model_write(b, &o.def, NULL, NULL, err, sizeof(err));
    CHECKF(rc == CTR_ERANGE && strstr(err, "mlp.0.weight"), "rc %d: %s", rc, err);
    CHECK(!file_exists(b));
    own_free(&o);
    unlink(a);
}

/* A table over the writer's 64 MiB chunk: streamed in bounded pieces, and
 * identical to the in-memory write. */
static void test_streamed_large(void)
{
    const uint32_t buckets = 4200000, dim = 4; /* 67.2 MB > 64 MiB */
    size_t n = (size_t)(buckets + 1) * dim;
    float *table = malloc(n * sizeof(float));
    if (!table) {
        CHECK(!"malloc 67 MB");
        return;
    }
    for (size_t k = 0; k < n; k++)
        table[k] = gen_value(0, k);
    float w[2] = {0.5f, -0.25f}, bias[1] = {0.125f};
    ctr_dense_def_t dense[1] = {{"x", CTR_TRANSFORM_IDENTITY, 0, 1}};
    ctr_cat_def_t cat[1] = {{.name = "big", .buckets = buckets, .dim = dim, .seed = 9}};
    ctr_layer_def_t layer[1] = {{1 + dim, 1, NULL, bias, 0}};
    float wfull[5] = {w[0], w[1], 0.25f, 1, -1};
    layer[0].weight = wfull;
    ctr_model_def_t def = {.name = "big", .n_dense = 1, .dense = dense, .n_cat = 1, .cat = cat,
                           .n_layers = 1, .layers = layer, .activation = CTR_ACT_SMELU, .beta = 1};
    char err[512] = "";
    const char *a = test_path("big_stream.ctrm"), *b = test_path("big_mem.ctrm");
    fill_ctx_t ctx = {.dim = dim};
    CHECKF(ctr_model_write(a, &def, fill_cb, &ctx, err, sizeof(err)) == 0, "%s", err);
    CHECKF(ctx.calls == 2 && !ctx.gaps && ctx.next_row[0] == (uint64_t)buckets + 1, "calls %" PRIu64, ctx.calls);
    CHECKF(ctx.max_bytes <= ((uint64_t)64 << 20), "a fill chunk of %" PRIu64 " bytes", ctx.max_bytes);
    cat[0].table = table;
    CHECK(ctr_model_write(b, &def, NULL, NULL, err, sizeof(err)) == 0);
    free(table);
    size_t la, lb;
    unsigned char *fa = test_slurp(a, &la), *fb = test_slurp(b, &lb);
    CHECK(fa && fb && la == lb && !memcmp(fa, fb, la));
    free(fa);
    free(fb);
    ctr_model_t *m = NULL;
    CHECK(ctr_model_open(a, &m, err, sizeof(err)) == 0);
    if (m) {
        CHECK(ctr_model_verify(m, err, sizeof(err)) == 0);
        const float *t = ctr_model_def(m)->cat[0].table;
        CHECK(t[0] == gen_value(0, 0) && t[n - 1] == gen_value(0, n - 1));
    }
    ctr_model_close(m);
    unlink(a);
    unlink(b);
}

/* ---- writer validation ------------------------------------------------------ */

static void expect_write_fail(const char *label, const ctr_model_def_t *def, int code, const char *substr)
{
    char err[512] = "";
    const char *path = test_path("invalid.ctrm");
    int rc = ctr_model_write(path, def, NULL, NULL, err, sizeof(err));
    CHECKF(rc == code, "%s: write returned %d (%s), want %d", label, rc, err, code);
    CHECKF(strstr(err, substr) != NULL, "%s: message \"%s\" does not mention \"%s\"", label, err, substr);
    CHECKF(!file_exists(path), "%s: a file was left behind", label);
}

static void test_writer_validation(void)
{
    own_t o;
    own_init(&o, 5);
    ctr_model_def_t d;
    ctr_dense_def_t dense[3];
    ctr_cat_def_t cat[3];
    ctr_layer_def_t layers[2];
#define RESET()                                                   \
    do {                                                          \
        d = o.def;                                                \
        memcpy(dense, o.dense, sizeof(dense));                    \
        memcpy(cat, o.cat, sizeof(cat));                          \
        memcpy(layers, o.layers, sizeof(layers));                 \
        d.dense = dense, d.cat = cat, d.layers = layers;          \
    } while (0)
    RESET(); d.name = "";                 expect_write_fail("empty model name", &d, CTR_EINVAL, "model name");
    RESET(); d.name = NULL;               expect_write_fail("NULL model name", &d, CTR_EINVAL, "model name");
    RESET(); d.name = "a\nb";             expect_write_fail("control char in name", &d, CTR_EINVAL, "model name");
    RESET(); d.name = "bad \xff utf8";    expect_write_fail("invalid UTF-8", &d, CTR_EINVAL, "UTF-8");
    RESET(); dense[1].name = "";          expect_write_fail("empty feature name", &d, CTR_EINVAL, "dense[1].name");
    RESET(); cat[2].name = "C\"3";        expect_write_fail("quote in name", &d, CTR_EINVAL, "categorical[2].name");
    RESET(); cat[0].name = "I2";          expect_write_fail("duplicate dense/cat", &d, CTR_EINVAL, "duplicate feature name \"I2\"");
    RESET(); dense[2].name = "I1";        expect_write_fail("duplicate dense", &d, CTR_EINVAL, "duplicate feature name \"I1\"");
    char long_name[66];
    memset(long_name, 'n', 65);
    long_name[65] = '\0';
    RESET(); dense[0].name = long_name;   expect_write_fail("65-byte name", &d, CTR_EINVAL, "dense[0].name");
    long_name[64] = '\0';
    RESET(); dense[0].name = long_name;   /* 64 bytes is fine */
    {
        char err[256];
        CHECK(ctr_model_write(test_path("ok64.ctrm"), &d, NULL, NULL, err, sizeof(err)) == 0);
        unlink(test_path("ok64.ctrm"));
    }
    RESET(); dense[2].std = 0;            expect_write_fail("std 0", &d, CTR_EINVAL, "I3");
    RESET(); dense[2].mean = NAN;         expect_write_fail("mean NaN", &d, CTR_EINVAL, "I3");
    RESET(); dense[0].transform = (ctr_transform_t)7; expect_write_fail("transform 7", &d, CTR_EINVAL, "transform");
    RESET(); cat[1].buckets = 0;          expect_write_fail("0 buckets", &d, CTR_EINVAL, "C2");
    RESET(); cat[1].dim = 0;              expect_write_fail("0 dim", &d, CTR_EINVAL, "C2");
    RESET(); layers[0].in = 12;           expect_write_fail("bad chain in", &d, CTR_EINVAL, "layers[0].in");
    RESET(); layers[1].in = 6;            expect_write_fail("bad chain mid", &d, CTR_EINVAL, "layers[1].in");
    RESET(); layers[1].out = 2;           expect_write_fail("last out 2", &d, CTR_EINVAL, "out == 1");
    RESET(); layers[1].bias = NULL;       expect_write_fail("NULL bias", &d, CTR_EINVAL, "layers[1]");
    RESET(); d.n_layers = 0;              expect_write_fail("no layers", &d, CTR_EINVAL, "layer");
    RESET(); d.beta = 0;                  expect_write_fail("beta 0", &d, CTR_EINVAL, "beta");
    RESET(); d.beta = NAN;                expect_write_fail("beta NaN", &d, CTR_EINVAL, "beta");
    RESET(); d.beta = INFINITY;           expect_write_fail("beta inf", &d, CTR_EINVAL, "beta");
    RESET(); d.activation = CTR_ACT_NONE; expect_write_fail("activation none", &d, CTR_EINVAL, "activation");
    RESET(); d.provenance_json = "[1]";   expect_write_fail("provenance array", &d, CTR_EINVAL, "provenance");
    RESET(); d.provenance_json = "{\"a\":1,\"a\":2}"; expect_write_fail("provenance dup", &d, CTR_EINVAL, "provenance");
    RESET(); d.provenance_json = "{";     expect_write_fail("provenance bad", &d, CTR_EINVAL, "provenance");
    RESET(); d.n_dense = 0, d.n_cat = 0;  expect_write_fail("no features", &d, CTR_EINVAL, "features");

    /* A header over 16 MiB (here: a huge provenance) is refused. */
    size_t big = (17u << 20);
    char *prov = malloc(big + 16);
    CTR_ASSERT(prov);
    memcpy(prov, "{\"x\":\"", 6);
    memset(prov + 6, 'a', big);
    memcpy(prov + 6 + big, "\"}", 3);
    RESET(); d.provenance_json = prov;    expect_write_fail("header too big", &d, CTR_ETOOBIG, "16777216");
    free(prov);
#undef RESET
    /* An unwritable destination is an I/O error naming the path. */
    char err[512] = "";
    char missing_dir[600];
    snprintf(missing_dir, sizeof(missing_dir), "%s/no-such-dir/m.ctrm", test_tmpdir());
    int rc = ctr_model_write(missing_dir, &o.def, NULL, NULL, err, sizeof(err));
    CHECKF(rc == CTR_EIO && strstr(err, "no-such-dir/m.ctrm.tmp"), "rc %d: %s", rc, err);
    own_free(&o);
}

/* ---- damaged and hostile files ---------------------------------------------- */

/* The known-good file that every mutation starts from. */
static unsigned char *g_base;
static size_t g_base_len, g_hlen, g_doff;
static char *g_header;

typedef struct {
    char name[64];
    uint64_t offset, nbytes;
    char sha[65];
} tinfo_t;
static tinfo_t g_t[16];
static size_t g_nt;

static void base_init(void)
{
    own_t o;
    own_init(&o, 99);
    char err[512] = "";
    snprintf(g_path, sizeof(g_path), "%s", test_path("base.ctrm"));
    snprintf(g_mut, sizeof(g_mut), "%s", test_path("mut.ctrm"));
    CTR_ASSERT(ctr_model_write(g_path, &o.def, NULL, NULL, err, sizeof(err)) == 0);
    own_free(&o);
    g_base = test_slurp(g_path, &g_base_len);
    CTR_ASSERT(g_base);
    g_hlen = rd64(g_base + 16);
    g_doff = rd64(g_base + 24);
    g_header = malloc(g_hlen + 1);
    memcpy(g_header, g_base + 32, g_hlen);
    g_header[g_hlen] = '\0';
    json_error_t je;
    json_t *root = json_loads(g_header, 0, &je), *t;
    CTR_ASSERT(root);
    size_t i;
    json_array_foreach(json_object_get(root, "tensors"), i, t) {
        CTR_ASSERT(i < CTR_ARRAY_LEN(g_t));
        snprintf(g_t[i].name, sizeof(g_t[i].name), "%s", json_string_value(json_object_get(t, "name")));
        g_t[i].offset = (uint64_t)json_integer_value(json_object_get(t, "offset"));
        g_t[i].nbytes = (uint64_t)json_integer_value(json_object_get(t, "nbytes"));
        snprintf(g_t[i].sha, sizeof(g_t[i].sha), "%s", json_string_value(json_object_get(t, "sha256")));
        g_nt = i + 1;
    }
    json_decref(root);
    if (getenv("CTR_TEST_VERBOSE"))
        printf("base header (%zu bytes): %s\n", g_hlen, g_header);
}

static void base_free(void)
{
    free(g_base);
    free(g_header);
}

/* Writes buf as the mutated file and opens it: returns the code, fills err. */
static int open_bytes(const void *buf, size_t len, char *err, size_t errlen, ctr_model_t **keep)
{
    test_spit(g_mut, buf, len);
    ctr_model_t *m = NULL;
    err[0] = '\0';
    int rc = ctr_model_open(g_mut, &m, err, errlen);
    if (rc == 0 && !m)
        rc = 12345;
    if (rc)
        CHECKF(m == NULL, "failed open left a model");
    if (keep)
        *keep = m;
    else
        ctr_model_close(m);
    return rc;
}

static void expect_open_fail(const char *label, const void *buf, size_t len, int code, const char *substr)
{
    char err[512];
    int rc = open_bytes(buf, len, err, sizeof(err), NULL);
    CHECKF(rc == code, "%s: open returned %d (%s), want %d", label, rc, err, code);
    CHECKF(substr == NULL || strstr(err, substr) != NULL, "%s: message \"%s\" does not mention \"%s\"", label,
           err, substr);
    if (getenv("CTR_TEST_VERBOSE"))
        printf("%-28s -> %s\n", label, err);
}

/* A file with the given header text in front of the base file's data,
 * with a fresh preamble, and `extra` zero bytes appended. */
static unsigned char *with_header(const char *header, size_t hlen, size_t extra, size_t *len)
{
    size_t doff = (32 + hlen + 63) & ~(size_t)63, data = g_base_len - g_doff;
    *len = doff + data + extra;
    unsigned char *f = calloc(1, *len);
    CTR_ASSERT(f);
    memcpy(f, g_base, 32);
    wr64(f + 16, hlen);
    wr64(f + 24, doff);
    memcpy(f + 32, header, hlen);
    memcpy(f + doff, g_base + g_doff, data);
    return f;
}

/* Replaces the first occurrence of find in s (malloc'd result, s freed). */
static char *replace(char *s, const char *find, const char *repl, const char *label)
{
    char *at = strstr(s, find);
    CHECKF(at != NULL, "%s: \"%s\" not in the base header", label, find);
    if (!at)
        return s;
    size_t pre = (size_t)(at - s), fl = strlen(find), rl = strlen(repl), sl = strlen(s);
    char *out = malloc(sl - fl + rl + 1);
    CTR_ASSERT(out);
    memcpy(out, s, pre);
    memcpy(out + pre, repl, rl);
    memcpy(out + pre + rl, at + fl, sl - pre - fl + 1);
    free(s);
    return out;
}

/* mutate(label, code, substr, extra, find1, repl1, find2, repl2, ..., NULL):
 * the base header with each replacement applied in turn must be refused
 * with code and a message containing substr (code 0: must open). */
static void mutate(const char *label, int code, const char *substr, size_t extra, ...)
{
    char *h = strdup(g_header);
    va_list ap;
    va_start(ap, extra);
    const char *find;
    while ((find = va_arg(ap, const char *))) {
        const char *repl = va_arg(ap, const char *);
        h = replace(h, find, repl, label);
    }
    va_end(ap);
    size_t len;
    unsigned char *f = with_header(h, strlen(h), extra, &len);
    if (code) {
        expect_open_fail(label, f, len, code, substr);
    } else {
        char err[512];
        int rc = open_bytes(f, len, err, sizeof(err), NULL);
        CHECKF(rc == 0, "%s: open failed: %s", label, err);
    }
    free(f);
    free(h);
}


/* Like mutate, but edits the parsed header: path is dot-separated object
 * keys and array indexes ("tensors.0.sha256"); value (stolen) replaces the
 * member, NULL deletes it. The result is dumped the way the writer dumps. */
static void mutate_json(const char *label, int code, const char *substr, const char *path, json_t *value)
{
    json_error_t je;
    json_t *root = json_loads(g_header, 0, &je), *parent = root;
    CTR_ASSERT(root);
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    char *key = buf, *dot;
    while ((dot = strchr(key, '.'))) {
        *dot = '\0';
        parent = json_is_array(parent) ? json_array_get(parent, (size_t)atoi(key)) : json_object_get(parent, key);
        CTR_ASSERT(parent);
        key = dot + 1;
    }
    if (json_is_array(parent))
        CTR_ASSERT(value ? !json_array_set_new(parent, (size_t)atoi(key), value)
                         : !json_array_remove(parent, (size_t)atoi(key)));
    else
        CTR_ASSERT(value ? !json_object_set_new(parent, key, value) : !json_object_del(parent, key));
    char *h = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(17));
    CTR_ASSERT(h);
    size_t len;
    unsigned char *f = with_header(h, strlen(h), 0, &len);
    if (code) {
        expect_open_fail(label, f, len, code, substr);
    } else {
        char err[512];
        int rc = open_bytes(f, len, err, sizeof(err), NULL);
        CHECKF(rc == 0, "%s: open failed: %s", label, err);
    }
    free(f);
    free(h);
    json_decref(root);
}

static void test_mutation_helper_is_faithful(void)
{
    size_t len;
    unsigned char *f = with_header(g_header, g_hlen, 0, &len);
    CHECK(len == g_base_len && !memcmp(f, g_base, len));
    free(f);
    /* jansson re-dumps the writer's header byte for byte. */
    json_error_t je;
    json_t *root = json_loads(g_header, 0, &je);
    char *h = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(17));
    CHECK(h && !strcmp(h, g_header));
    free(h);
    json_decref(root);
    mutate_json("faithful", 0, NULL, "format", json_string("ctrm"));
}

static void test_preamble(void)
{
    unsigned char *f = malloc(g_base_len + 64);
    CTR_ASSERT(f);
#define FRESH() memcpy(f, g_base, g_base_len)
    FRESH(); memcpy(f, "XXXXXXXX", 8);
    expect_open_fail("bad magic", f, g_base_len, CTR_EFORMAT, "bad magic \"XXXXXXXX\" (expected \"CTRMODEL\")");
    FRESH(); memcpy(f, "CTR\0\x01ODE", 8);
    expect_open_fail("binary magic", f, g_base_len, CTR_EFORMAT, "bad magic \"CTR\\x00\\x01ODE\"");
    FRESH(); wr32(f + 8, 3);
    expect_open_fail("version 3", f, g_base_len, CTR_EVERSION, "format version 3 (this build reads versions 1 to 2)");
    /* A version-1 header behind a version-2 preamble: the two disagree. */
    FRESH(); wr32(f + 8, 2);
    expect_open_fail("version 2 preamble", f, g_base_len, CTR_EFORMAT, "version: 1 does not match the preamble's version 2");
    FRESH(); wr32(f + 8, 0);
    expect_open_fail("version 0", f, g_base_len, CTR_EVERSION, "version 0");
    FRESH(); wr32(f + 8, UINT32_MAX);
    expect_open_fail("version max", f, g_base_len, CTR_EVERSION, "version 4294967295");
    FRESH(); wr32(f + 12, 1);
    expect_open_fail("flags 1", f, g_base_len, CTR_EFORMAT, "flags 0x1");
    FRESH(); wr32(f + 12, 0x80000000u);
    expect_open_fail("flags high", f, g_base_len, CTR_EFORMAT, "flags 0x80000000");
    FRESH(); wr64(f + 16, 0);
    expect_open_fail("header_len 0", f, g_base_len, CTR_EFORMAT, "header_len 0");
    FRESH(); wr64(f + 16, (16u << 20) + 1);
    expect_open_fail("header_len 16MiB+1", f, g_base_len, CTR_EFORMAT, "header_len 16777217");
    FRESH(); wr64(f + 16, UINT64_MAX);
    expect_open_fail("header_len max", f, g_base_len, CTR_EFORMAT, "header_len 18446744073709551615");
    FRESH(); wr64(f + 16, UINT64_MAX - 31);
    expect_open_fail("header_len wraps", f, g_base_len, CTR_EFORMAT, "header_len");
    FRESH(); wr64(f + 16, g_base_len - 31);
    expect_open_fail("header_len past EOF", f, g_base_len, CTR_EFORMAT, "past end of file");
    FRESH(); wr64(f + 16, g_hlen - 1);
    expect_open_fail("header_len short", f, g_base_len, CTR_EFORMAT, "header");
    FRESH(); wr64(f + 16, g_hlen + 1);
    expect_open_fail("header_len long", f, g_base_len, CTR_EFORMAT, "header");
    FRESH(); wr64(f + 24, g_doff + 64);
    expect_open_fail("data_offset +64", f, g_base_len, CTR_EFORMAT, "data_offset");
    FRESH(); wr64(f + 24, g_doff - 64);
    expect_open_fail("data_offset -64", f, g_base_len, CTR_EFORMAT, "data_offset");
    FRESH(); wr64(f + 24, UINT64_MAX);
    expect_open_fail("data_offset max", f, g_base_len, CTR_EFORMAT, "data_offset 18446744073709551615");
    if (32 + g_hlen < g_doff) {
        FRESH(); f[g_doff - 1] = 1;
        expect_open_fail("header padding", f, g_base_len, CTR_EFORMAT, "padding");
    }
    FRESH(); f[g_base_len] = 0;
    expect_open_fail("trailing byte", f, g_base_len + 1, CTR_EFORMAT, "trailing bytes");
    FRESH(); memset(f + g_base_len, 0, 64);
    expect_open_fail("trailing 64", f, g_base_len + 64, CTR_EFORMAT, "trailing bytes");
    expect_open_fail("empty file", f, 0, CTR_EFORMAT, "smaller than the 32-byte preamble");
#undef FRESH
    free(f);

    char err[512];
    ctr_model_t *m = (ctr_model_t *)1;
    int rc = ctr_model_open(test_path("does-not-exist.ctrm"), &m, err, sizeof(err));
    CHECKF(rc == CTR_EIO && m == NULL && strstr(err, "does-not-exist.ctrm") && strstr(err, "No such file"),
           "rc %d: %s", rc, err);
    rc = ctr_model_open(test_tmpdir(), &m, err, sizeof(err));
    CHECKF(rc == CTR_EIO && strstr(err, "not a regular file"), "rc %d: %s", rc, err);
}

/* Truncation at every byte: refused, with a message that names the section
 * (or the tensor) where the file ends. */
static void test_truncation(void)
{
    char err[512];
    size_t fails = 0;
    for (size_t cut = 0; cut < g_base_len; cut++) {
        int rc = open_bytes(g_base, cut, err, sizeof(err), NULL);
        const char *want;
        if (cut < 32)
            want = "preamble";
        else if (cut < 32 + g_hlen)
            want = "header_len";
        else if (cut < g_doff)
            want = "data_offset";
        else {
            want = "?";
            for (size_t i = 0; i < g_nt; i++)
                if (g_t[i].offset + g_t[i].nbytes > cut - g_doff) {
                    want = g_t[i].name;
                    break;
                }
        }
        bool ok = rc == CTR_EFORMAT && strstr(err, want) && (cut < 32 || strstr(err, "truncated"));
        if (!ok && fails++ < 5)
            CHECKF(ok, "cut at %zu: rc %d, message \"%s\" should mention \"%s\"", cut, rc, err, want);
        ctr_test_checks++;
    }
    CHECKF(fails == 0, "%zu truncations misreported", fails);
}

static void test_json(void)
{
    /* Not JSON, not an object, duplicate keys. */
    mutate("bad JSON", CTR_EFORMAT, "invalid JSON at line 1, column", 0, "\"schema\":{", "\"schema\":{,", NULL);
    mutate("duplicate top key", CTR_EFORMAT, "duplicate", 0, "\"format\":\"ctrm\",",
           "\"format\":\"ctrm\",\"format\":\"ctrm\",", NULL);
    mutate("duplicate inner key", CTR_EFORMAT, "duplicate", 0, "\"dim\":4,", "\"dim\":4,\"dim\":4,", NULL);
    mutate("NUL escape", CTR_EFORMAT, "invalid JSON", 0, "\"name\":\"I1\"", "\"name\":\"I\\u00001\"", NULL);
    mutate("integer too big", CTR_EFORMAT, "invalid JSON", 0, "\"data_bytes\":", "\"data_bytes\":18446744073709551615,\"x\":", NULL);
    mutate("real overflow", CTR_EFORMAT, "invalid JSON", 0, "\"beta\":", "\"beta\":1e999,\"x\":", NULL);
    static const char *not_objects[] = {"[1,2,3]", "\"ctrm\"", "{", "", " ", "null", "{}x"};
    for (size_t i = 0; i < CTR_ARRAY_LEN(not_objects); i++) {
        size_t len;
        const char *h = not_objects[i];
        unsigned char *f = with_header(h, strlen(h) ? strlen(h) : 1, 0, &len);
        if (!*h)
            f[32] = 0; /* a NUL byte as the whole header */
        expect_open_fail(h, f, len, CTR_EFORMAT, "header");
        free(f);
    }
    {
        size_t len;
        unsigned char *f = with_header("{}", 2, 0, &len);
        expect_open_fail("empty object", f, len, CTR_EFORMAT, "format: missing");
        free(f);
    }
}

static void test_keys_and_types(void)
{
    /* Top level. */
    mutate("format", CTR_EFORMAT, "header: format: expected \"ctrm\"", 0, "\"format\":\"ctrm\"", "\"format\":\"ctrx\"", NULL);
    mutate("format type", CTR_EFORMAT, "format: expected a string", 0, "\"format\":\"ctrm\"", "\"format\":1", NULL);
    mutate("json version", CTR_EFORMAT, "version: 2 does not match", 0, "\"version\":1,", "\"version\":2,", NULL);
    mutate("json version type", CTR_EFORMAT, "version: expected an integer", 0, "\"version\":1,", "\"version\":\"1\",", NULL);
    mutate("missing version", CTR_EFORMAT, "header: version: missing", 0, "\"version\":1,", "", NULL);
    mutate_json("name type", CTR_EFORMAT, "header: name: expected a string", "name", json_integer(7));
    mutate("name control", CTR_EFORMAT, "header: name:", 0, "\"name\":\"own", "\"name\":\"o\\u0001wn", NULL);
    mutate("name empty", CTR_EFORMAT, "header: name:", 0, "\"name\":\"own model \xc3\xa9\"", "\"name\":\"\"", NULL);
    mutate("unknown top key", CTR_EFORMAT, "top level: unknown key \"schemx\"", 0, "\"schema\":", "\"schemx\":", NULL);
    mutate_json("schema type", CTR_EFORMAT, "schema: expected an object", "schema", json_integer(5));
    mutate_json("missing schema", CTR_EFORMAT, "header: schema: missing", "schema", NULL);
    mutate_json("missing categorical", CTR_EFORMAT, "header: schema.categorical: missing", "schema.categorical", NULL);
    mutate_json("missing mlp", CTR_EFORMAT, "header: mlp: missing", "mlp", NULL);
    mutate_json("missing tensors", CTR_EFORMAT, "header: tensors: missing", "tensors", NULL);
    mutate_json("missing data_bytes", CTR_EFORMAT, "header: data_bytes: missing", "data_bytes", NULL);
    mutate_json("missing name", CTR_EFORMAT, "header: name: missing", "name", NULL);
    mutate_json("dense type", CTR_EFORMAT, "schema.dense: expected an array", "schema.dense", json_object());
    mutate_json("mlp type", CTR_EFORMAT, "header: mlp: expected an object", "mlp", json_array());
    mutate_json("no features", CTR_EFORMAT, "schema: no features", "schema",
                json_pack("{s:[],s:[]}", "dense", "categorical"));
    mutate("unknown schema key", CTR_EFORMAT, "schema: unknown key \"x\"", 0, "\"dense\":[", "\"x\":1,\"dense\":[", NULL);
    mutate_json("data_bytes type", CTR_EFORMAT, "data_bytes: expected an integer >= 0", "data_bytes", json_integer(-1));
    mutate_json("data_bytes real", CTR_EFORMAT, "data_bytes: expected an integer >= 0", "data_bytes", json_real(776));
    mutate_json("tensors type", CTR_EFORMAT, "tensors: expected an array", "tensors", json_object());
    mutate_json("provenance type", CTR_EFORMAT, "provenance: expected an object", "provenance", json_array());
    mutate_json("missing provenance", CTR_EFORMAT, "provenance: missing", "provenance", NULL);
    mutate_json("empty provenance ok", 0, NULL, "provenance", json_object());

    /* Dense features. */
    mutate("dense entry type", CTR_EFORMAT, "schema.dense[0]: expected an object", 0, "\"dense\":[", "\"dense\":[1,", NULL);
    mutate("unknown transform", CTR_EUNSUPPORTED, "schema.dense[0].transform: unknown transform \"sqrt\"", 0,
           "\"transform\":\"log1p\"", "\"transform\":\"sqrt\"", NULL);
    mutate("transform type", CTR_EFORMAT, "schema.dense[0].transform: expected a string", 0,
           "\"transform\":\"log1p\"", "\"transform\":1", NULL);
    mutate("missing transform", CTR_EFORMAT, "schema.dense[0].transform: missing", 0, ",\"transform\":\"log1p\"", "", NULL);
    mutate("mean on log1p", CTR_EFORMAT, "standardize only", 0, "\"transform\":\"log1p\"", "\"transform\":\"log1p\",\"mean\":1", NULL);
    mutate("std 0", CTR_EFORMAT, "schema.dense[2].std: must be > 0", 0, "\"std\":1.7", "\"std\":0", NULL);
    mutate("std negative", CTR_EFORMAT, "schema.dense[2].std", 0, "\"std\":1.7", "\"std\":-1.7", NULL);
    mutate("std string", CTR_EFORMAT, "schema.dense[2].std: expected a finite number", 0, "\"std\":1.7", "\"std\":\"1.7\"", NULL);
    mutate("missing std", CTR_EFORMAT, "schema.dense[2].std: missing", 0, ",\"std\":1.7", "", NULL);
    mutate("std integer ok", 0, NULL, 0, "\"std\":1.7", "\"std\":2", NULL);
    mutate("unknown dense key", CTR_EFORMAT, "schema.dense[1]: unknown key \"scale\"", 0, "\"name\":\"I2\"", "\"name\":\"I2\",\"scale\":1", NULL);
    mutate("bad feature name", CTR_EFORMAT, "schema.dense[1].name: \"I\\x222\" is not a valid name", 0, "\"name\":\"I2\"", "\"name\":\"I\\\"2\"", NULL);
    mutate("empty feature name", CTR_EFORMAT, "schema.dense[1].name", 0, "\"name\":\"I2\"", "\"name\":\"\"", NULL);
    mutate("duplicate dense", CTR_EFORMAT, "schema.dense[1].name: duplicate feature name \"I1\"", 0, "\"name\":\"I2\"", "\"name\":\"I1\"", NULL);
    mutate("duplicate cat/dense", CTR_EFORMAT, "schema.categorical[0].name: duplicate feature name \"I1\"", 0,
           "\"name\":\"C1\"", "\"name\":\"I1\"", NULL);

    /* Categorical features. */
    mutate("buckets string", CTR_EFORMAT, "header: schema.categorical[0].buckets: expected an integer > 0", 0,
           "\"buckets\":10", "\"buckets\":\"10\"", NULL);
    mutate("buckets 0", CTR_EFORMAT, "schema.categorical[0].buckets: expected an integer > 0", 0, "\"buckets\":10", "\"buckets\":0", NULL);
    mutate("buckets -1", CTR_EFORMAT, "schema.categorical[0].buckets", 0, "\"buckets\":10", "\"buckets\":-1", NULL);
    mutate("buckets real", CTR_EFORMAT, "schema.categorical[0].buckets", 0, "\"buckets\":10", "\"buckets\":10.0", NULL);
    mutate("buckets 2^32", CTR_EFORMAT, "schema.categorical[0].buckets: expected an integer > 0 and < 2^32", 0,
           "\"buckets\":10", "\"buckets\":4294967296", NULL);
    mutate("missing dim", CTR_EFORMAT, "schema.categorical[0].dim: missing", 0, "\"dim\":4,", "", NULL);
    mutate("dim null", CTR_EFORMAT, "schema.categorical[0].dim", 0, "\"dim\":4,", "\"dim\":null,", NULL);
    mutate("unknown hash", CTR_EUNSUPPORTED, "schema.categorical[0].hash: hash \"murmur3\" is not supported", 0,
           "\"hash\":\"xxh3_64\"", "\"hash\":\"murmur3\"", NULL);
    mutate("seed integer ok", 0, NULL, 0, "\"seed\":\"0\"", "\"seed\":0", NULL);
    mutate("seed negative", CTR_EFORMAT, "schema.categorical[0].seed", 0, "\"seed\":\"0\"", "\"seed\":-1", NULL);
    mutate("seed leading 0", CTR_EFORMAT, "schema.categorical[0].seed", 0, "\"seed\":\"0\"", "\"seed\":\"01\"", NULL);
    mutate("seed 2^64", CTR_EFORMAT, "schema.categorical[1].seed", 0, "\"seed\":\"18446744073709551615\"",
           "\"seed\":\"18446744073709551616\"", NULL);
    mutate("seed not digits", CTR_EFORMAT, "schema.categorical[0].seed", 0, "\"seed\":\"0\"", "\"seed\":\"0x1\"", NULL);
    mutate("seed real", CTR_EFORMAT, "schema.categorical[0].seed", 0, "\"seed\":\"0\"", "\"seed\":1.5", NULL);
    mutate("table type", CTR_EFORMAT, "schema.categorical[0].table: expected a string", 0,
           "\"table\":\"emb.C1\"", "\"table\":[]", NULL);

    /* MLP. */
    mutate("unknown activation", CTR_EUNSUPPORTED, "mlp.activation: unknown activation \"gelu\"", 0,
           "\"activation\":\"smelu\"", "\"activation\":\"gelu\"", NULL);
    mutate("activation none", CTR_EUNSUPPORTED, "mlp.activation", 0, "\"activation\":\"smelu\"", "\"activation\":\"none\"", NULL);
    mutate("beta negative", CTR_EFORMAT, "mlp.beta: expected a number > 0", 0, "\"beta\":", "\"beta\":-", NULL);
    mutate_json("beta zero", CTR_EFORMAT, "mlp.beta: expected a number > 0", "mlp.beta", json_integer(0));
    mutate_json("beta too big for float", CTR_EFORMAT, "mlp.beta", "mlp.beta", json_real(1e39));
    mutate_json("beta underflows float", CTR_EFORMAT, "mlp.beta", "mlp.beta", json_real(1e-50));
    mutate_json("beta string", CTR_EFORMAT, "mlp.beta: expected a finite number", "mlp.beta", json_string("1"));
    mutate_json("missing beta", CTR_EFORMAT, "mlp.beta: missing", "mlp.beta", NULL);
    mutate_json("beta integer ok", 0, NULL, "mlp.beta", json_integer(2));
    mutate_json("layers empty", CTR_EFORMAT, "mlp.layers: expected at least one layer", "mlp.layers", json_array());
    mutate_json("layer not object", CTR_EFORMAT, "mlp.layers[1]: expected an object", "mlp.layers.1", json_true());
    mutate("layer in", CTR_EFORMAT, "mlp.layers[0].in: is 12 but the schema gives (n_dense + sum of dims) 11", 0,
           "\"in\":11", "\"in\":12", NULL);
    mutate("layer chain", CTR_EFORMAT, "mlp.layers[1].in: is 6 but the previous layer's out is 5", 0,
           "\"in\":5", "\"in\":6", NULL);
    mutate("last out", CTR_EFORMAT, "out == 1", 0, "\"out\":1,", "\"out\":2,", NULL);
    mutate("layer out 0", CTR_EFORMAT, "mlp.layers[0].out: expected an integer > 0", 0, "\"out\":5", "\"out\":0", NULL);
    mutate("unknown layer key", CTR_EFORMAT, "mlp.layers[0]: unknown key \"act\"", 0, "\"in\":11", "\"act\":1,\"in\":11", NULL);
    mutate("missing weight", CTR_EFORMAT, "mlp.layers[1].weight: missing", 0, "\"weight\":\"mlp.1.weight\",", "", NULL);
}

static void test_tensors(void)
{
    char sha_zero[80], hdr[256];
    memset(sha_zero, '0', 64);
    sha_zero[64] = '\0';
    const tinfo_t *last = &g_t[g_nt - 1];
    char off_last[64], data_bytes[64];
    snprintf(off_last, sizeof(off_last), "\"offset\":%" PRIu64 ",", last->offset);
    snprintf(data_bytes, sizeof(data_bytes), "\"data_bytes\":%" PRIu64 ",", last->offset + last->nbytes);

    /* dtype */
    mutate("dtype f16", CTR_EFORMAT, "tensor \"mlp.0.weight\" dtype: dtype f16 needs format version 2", 0,
           "\"dtype\":\"f32\"", "\"dtype\":\"f16\"", NULL);
    mutate("dtype i8", CTR_EUNSUPPORTED, "\"i8\" is not supported (this build reads f32, f16, int8_rowwise)", 0, "\"dtype\":\"f32\"", "\"dtype\":\"i8\"", NULL);
    mutate("dtype unknown", CTR_EUNSUPPORTED, "\"q3_k\" is not supported", 0, "\"dtype\":\"f32\"", "\"dtype\":\"q3_k\"", NULL);
    mutate("dtype type", CTR_EFORMAT, "tensor \"mlp.0.weight\" dtype: expected a string", 0, "\"dtype\":\"f32\"", "\"dtype\":32", NULL);
    mutate("missing dtype", CTR_EFORMAT, "dtype: missing", 0, "\"dtype\":\"f32\",", "", NULL);

    /* names */
    mutate("duplicate tensor", CTR_EFORMAT, "duplicate tensor name \"mlp.1.weight\"", 0,
           "\"name\":\"mlp.1.bias\"", "\"name\":\"mlp.1.weight\"", NULL);
    mutate("missing table tensor", CTR_EFORMAT, "schema.categorical[0].table: tensor \"emb.C9\" is not in tensors", 0,
           "\"table\":\"emb.C1\"", "\"table\":\"emb.C9\"", NULL);
    mutate("missing weight tensor", CTR_EFORMAT, "mlp.layers[1].weight: tensor \"mlp.9.weight\" is not in tensors", 0,
           "\"weight\":\"mlp.1.weight\"", "\"weight\":\"mlp.9.weight\"", NULL);
    mutate("table used twice", CTR_EFORMAT, "tensor \"emb.C1\" is used twice", 0,
           "\"table\":\"emb.C2\"", "\"table\":\"emb.C1\"", NULL);
    mutate("bias used as weight", CTR_EFORMAT, "used twice", 0,
           "\"weight\":\"mlp.1.weight\"", "\"weight\":\"mlp.0.weight\"", NULL);
    /* A tensor nobody references (the file carries its bytes). */
    snprintf(hdr, sizeof(hdr),
             ",{\"name\":\"extra\",\"dtype\":\"f32\",\"shape\":[1],\"offset\":%" PRIu64
             ",\"nbytes\":4,\"sha256\":\"%s\"}],\"data_bytes\":%" PRIu64 ",",
             (last->offset + last->nbytes + 63) / 64 * 64, sha_zero, (last->offset + last->nbytes + 63) / 64 * 64 + 4);
    {
        char find[96];
        snprintf(find, sizeof(find), "}],%s", data_bytes);
        char repl[300];
        snprintf(repl, sizeof(repl), "}%s", hdr);
        uint64_t extra = (last->offset + last->nbytes + 63) / 64 * 64 + 4 - (last->offset + last->nbytes);
        mutate("unreferenced tensor", CTR_EFORMAT, "tensor \"extra\": not used by the schema or the MLP", extra,
               find, repl, NULL);
    }
    mutate("bad tensor name", CTR_EFORMAT, "tensors[0].name", 0, "\"name\":\"mlp.0.weight\"", "\"name\":\"mlp.0\\nweight\"", NULL);

    /* shape */
    mutate("shape transposed", CTR_EFORMAT,
           "tensor \"emb.C1\": shape [4,11] does not match categorical \"C1\" (expected [11,4])", 0,
           "\"shape\":[11,4]", "\"shape\":[4,11]", NULL);
    mutate("weight shape", CTR_EFORMAT, "tensor \"mlp.0.weight\": shape [5,11] does not match mlp.layers[0]", 0,
           "\"shape\":[11,5]", "\"shape\":[5,11]", NULL);
    mutate("bias rank", CTR_EFORMAT, "tensor \"mlp.0.bias\": shape [5,1] does not match", 0,
           "\"shape\":[5]", "\"shape\":[5,1]", NULL);
    mutate("shape rank 0", CTR_EFORMAT, "tensor \"mlp.0.bias\" shape: expected 1 or 2 dimensions", 0,
           "\"shape\":[5]", "\"shape\":[]", NULL);
    mutate("shape rank 3", CTR_EFORMAT, "expected 1 or 2 dimensions", 0, "\"shape\":[5]", "\"shape\":[5,1,1]", NULL);
    mutate("shape zero", CTR_EFORMAT, "tensor \"mlp.0.bias\" shape: expected positive integers", 0,
           "\"shape\":[5]", "\"shape\":[0]", NULL);
    mutate("shape string", CTR_EFORMAT, "expected positive integers", 0, "\"shape\":[5]", "\"shape\":[\"5\"]", NULL);
    mutate("shape type", CTR_EFORMAT, "shape: expected an array", 0, "\"shape\":[5]", "\"shape\":5", NULL);
    mutate("shape overflow", CTR_EFORMAT, "element count overflows", 0, "\"shape\":[5]",
           "\"shape\":[4294967296,4294967296]", NULL);
    mutate("nbytes overflow", CTR_EFORMAT, "tensor \"mlp.0.bias\" nbytes", 0, "\"shape\":[5]",
           "\"shape\":[4611686018427387905]", NULL);

    /* nbytes, offset, extents */
    mutate("nbytes mismatch", CTR_EFORMAT, "tensor \"mlp.0.bias\" nbytes: is 24 but shape [5] of f32 needs 20", 0, "\"nbytes\":20", "\"nbytes\":24", NULL);
    mutate("nbytes huge", CTR_EFORMAT, "nbytes", 0, "\"nbytes\":20", "\"nbytes\":9223372036854775807", NULL);
    mutate("nbytes negative", CTR_EFORMAT, "nbytes: expected an integer >= 0", 0, "\"nbytes\":20", "\"nbytes\":-20", NULL);
    char off1[64], off1_plus4[64], off1_minus64[64];
    snprintf(off1, sizeof(off1), "\"offset\":%" PRIu64 ",", g_t[1].offset);
    snprintf(off1_plus4, sizeof(off1_plus4), "\"offset\":%" PRIu64 ",", g_t[1].offset + 4);
    snprintf(off1_minus64, sizeof(off1_minus64), "\"offset\":%" PRIu64 ",", g_t[1].offset - 64);
    snprintf(hdr, sizeof(hdr), "tensor \"%s\" offset: %" PRIu64 " is not a multiple of 64", g_t[1].name, g_t[1].offset + 4);
    mutate("misaligned", CTR_EFORMAT, hdr, 0, off1, off1_plus4, NULL);
    snprintf(hdr, sizeof(hdr), "tensor \"%s\": offset %" PRIu64 " overlaps tensor \"%s\"", g_t[1].name,
             g_t[1].offset - 64, g_t[0].name);
    mutate("overlap", CTR_EFORMAT, hdr, 0, off1, off1_minus64, NULL);
    mutate("offset negative", CTR_EFORMAT, "offset: expected an integer >= 0", 0, off1, "\"offset\":-64,", NULL);
    char off_last_up[64], db_up[64];
    snprintf(off_last_up, sizeof(off_last_up), "\"offset\":%" PRIu64 ",", last->offset + 64);
    snprintf(db_up, sizeof(db_up), "\"data_bytes\":%" PRIu64 ",", last->offset + last->nbytes + 64);
    snprintf(hdr, sizeof(hdr), "tensor \"%s\": offset %" PRIu64 " + %" PRIu64 " bytes is past data_bytes",
             last->name, last->offset + 64, last->nbytes);
    mutate("past data_bytes", CTR_EFORMAT, hdr, 0, off_last, off_last_up, NULL);
    snprintf(hdr, sizeof(hdr), "tensor \"%s\": data_offset %zu + offset %" PRIu64 " + %" PRIu64
             " bytes runs past end of file", last->name, g_doff, last->offset + 64, last->nbytes);
    mutate("past end of file", CTR_EFORMAT, hdr, 0, off_last, off_last_up, data_bytes, db_up, NULL);
    mutate("offset near 2^63", CTR_EFORMAT, "is past data_bytes", 0, off_last, "\"offset\":9223372036854775744,", NULL);
    mutate("offset+data_bytes near 2^63", CTR_EFORMAT, "runs past end of file", 0, off_last,
           "\"offset\":9223372036854775744,", data_bytes, "\"data_bytes\":9223372036854775807,", NULL);
    mutate("offset 2^64", CTR_EFORMAT, "invalid JSON", 0, off_last, "\"offset\":18446744073709551552,", NULL);
    char db_minus[64], db_plus[64];
    snprintf(db_minus, sizeof(db_minus), "\"data_bytes\":%" PRIu64 ",", last->offset + last->nbytes - 1);
    snprintf(db_plus, sizeof(db_plus), "\"data_bytes\":%" PRIu64 ",", last->offset + last->nbytes + 1);
    mutate("data_bytes short", CTR_EFORMAT, "past data_bytes", 0, data_bytes, db_minus, NULL);
    mutate("data_bytes long", CTR_EFORMAT, "data_bytes is", 0, data_bytes, db_plus, NULL);
    mutate("data_bytes long + file", CTR_EFORMAT, "last tensor ends at", 1, data_bytes, db_plus, NULL);
    /* Tensors out of order (swap two offsets: the first one then overlaps). */
    {
        char off0[64], off2[64], tmp[] = "\"offset\":TMP,";
        snprintf(off0, sizeof(off0), "\"offset\":%" PRIu64 ",", g_t[0].offset);
        snprintf(off2, sizeof(off2), "\"offset\":%" PRIu64 ",", g_t[2].offset);
        mutate("out of order", CTR_EFORMAT, "overlaps", 0, off2, tmp, off0, off2, tmp, off0, NULL);
    }

    /* sha256 strings */
    char upper[65];
    for (int i = 0; i < 65; i++)
        upper[i] = (char)(g_t[0].sha[i] >= 'a' && g_t[0].sha[i] <= 'f' ? g_t[0].sha[i] - 32 : g_t[0].sha[i]);
    bool has_letter = strcmp(upper, g_t[0].sha) != 0;
    if (has_letter)
        mutate("sha uppercase", CTR_EFORMAT, "sha256: expected 64 lowercase hex digits", 0, g_t[0].sha, upper, NULL);
    char sha_short[64];
    snprintf(sha_short, sizeof(sha_short), "%.63s", g_t[0].sha);
    mutate("sha short", CTR_EFORMAT, "sha256: expected 64 lowercase hex", 0, g_t[0].sha, sha_short, NULL);
    mutate_json("sha type", CTR_EFORMAT, "sha256: expected a string", "tensors.0.sha256", json_integer(1));
    mutate_json("tensor not object", CTR_EFORMAT, "tensors[2]: expected an object", "tensors.2", json_string("x"));
    mutate_json("missing tensor entry", CTR_EFORMAT, "mlp.layers[0].weight: tensor \"mlp.0.weight\" is not in tensors", "tensors.0", NULL);
    snprintf(hdr, sizeof(hdr), "%.63sg", g_t[0].sha);
    mutate("sha not hex", CTR_EFORMAT, "sha256", 0, g_t[0].sha, hdr, NULL);
}

/* Flipping a data byte leaves the header (and open) intact; verify finds
 * it and names the tensor. */
static void test_checksums(void)
{
    unsigned char *f = malloc(g_base_len);
    char err[512];
    CTR_ASSERT(f);
    for (size_t i = 0; i < g_nt; i++) {
        for (int where = 0; where < 3; where++) {
            uint64_t at = g_doff + g_t[i].offset +
                          (where == 0 ? 0 : where == 1 ? g_t[i].nbytes / 2 : g_t[i].nbytes - 1);
            memcpy(f, g_base, g_base_len);
            f[at] ^= 0x01;
            ctr_model_t *m = NULL;
            int rc = open_bytes(f, g_base_len, err, sizeof(err), &m);
            CHECKF(rc == 0, "flip in %s: open failed: %s", g_t[i].name, err);
            if (!m)
                continue;
            rc = ctr_model_verify(m, err, sizeof(err));
            char want[160];
            snprintf(want, sizeof(want), "tensor \"%.64s\": SHA-256 mismatch", g_t[i].name);
            CHECKF(rc == CTR_ECHECKSUM && strstr(err, want), "flip in %s: verify %d: %s", g_t[i].name, rc, err);
            ctr_model_close(m);
        }
    }
    /* Padding between tensors must stay zero. */
    for (size_t i = 1; i < g_nt; i++) {
        uint64_t end = g_t[i - 1].offset + g_t[i - 1].nbytes;
        if (end == g_t[i].offset)
            continue;
        memcpy(f, g_base, g_base_len);
        f[g_doff + end] = 0x80;
        ctr_model_t *m = NULL;
        CHECK(open_bytes(f, g_base_len, err, sizeof(err), &m) == 0);
        if (m) {
            int rc = ctr_model_verify(m, err, sizeof(err));
            CHECKF(rc == CTR_EFORMAT && strstr(err, "padding") && strstr(err, g_t[i].name), "%d %s", rc, err);
        }
        ctr_model_close(m);
        break;
    }
    /* A NaN with a matching checksum (a writer that skipped the check):
     * verify still refuses it. */
    memcpy(f, g_base, g_base_len);
    float nan = NAN;
    memcpy(f + g_doff + g_t[0].offset + 3 * sizeof(float), &nan, sizeof(nan));
    char sha[65];
    sha256_hex(f + g_doff + g_t[0].offset, g_t[0].nbytes, sha);
    memcpy(f + 32 + (size_t)(strstr(g_header, g_t[0].sha) - g_header), sha, 64);
    ctr_model_t *m = NULL;
    CHECK(open_bytes(f, g_base_len, err, sizeof(err), &m) == 0);
    if (m) {
        int rc = ctr_model_verify(m, err, sizeof(err));
        char want[160];
        snprintf(want, sizeof(want), "tensor \"%s\": element 3 is nan", g_t[0].name);
        CHECKF(rc == CTR_EFORMAT && strstr(err, want), "%d %s", rc, err);
    }
    ctr_model_close(m);
    free(f);
}

/* Reads every float a loaded model exposes, so ASan sees any bad pointer. */
static double touch_model(const ctr_model_t *m)
{
    const ctr_model_def_t *d = ctr_model_def(m);
    double s = 0;
    for (size_t j = 0; j < d->n_cat; j++) {
        for (size_t k = 0; k < (size_t)(d->cat[j].buckets + 1) * d->cat[j].dim; k++)
            s += d->cat[j].table[k];
        CHECK(ctr_model_find_feature(m, d->cat[j].name, strlen(d->cat[j].name)) == (long)(d->n_dense + j));
    }
    for (size_t i = 0; i < d->n_dense; i++)
        CHECK(ctr_model_find_feature(m, d->dense[i].name, strlen(d->dense[i].name)) == (long)i);
    for (size_t l = 0; l < d->n_layers; l++) {
        for (size_t i = 0; i < d->layers[l].in; i++)
            for (size_t k = 0; k < d->layers[l].out; k++)
                s += d->layers[l].weight[i * ldw_of(&d->layers[l]) + k];
        for (size_t k = 0; k < d->layers[l].out; k++)
            s += d->layers[l].bias[k];
    }
    s += (double)strlen(d->name) + (double)strlen(d->provenance_json);
    return s;
}

/* Random damage: every outcome must be a clean success or a clean refusal. */
static void test_random_mutations(void)
{
    test_rng_t rng = {12345};
    unsigned char *f = malloc(g_base_len);
    CTR_ASSERT(f);
    char err[512];
    /* CTR_TEST_MUTATIONS=N (and CTR_TEST_SEED) for a longer soak. */
    size_t opened = 0, refused = 0, n = 4000;
    if (getenv("CTR_TEST_MUTATIONS"))
        n = strtoul(getenv("CTR_TEST_MUTATIONS"), NULL, 10);
    if (getenv("CTR_TEST_SEED"))
        rng.s = strtoull(getenv("CTR_TEST_SEED"), NULL, 10);
    double sink = 0;
    for (size_t it = 0; it < n; it++) {
        memcpy(f, g_base, g_base_len);
        size_t len = g_base_len;
        int kind = (int)(test_rng_next(&rng) % 4);
        int flips = 1 + (int)(test_rng_next(&rng) % 3);
        bool data_only = false;
        for (int k = 0; k < flips; k++) {
            size_t at;
            if (kind == 0) { /* anywhere in the preamble or header */
                at = test_rng_next(&rng) % (32 + g_hlen);
                f[at] = (unsigned char)test_rng_next(&rng);
            } else if (kind == 1) { /* a digit for another: JSON stays valid */
                do
                    at = 32 + test_rng_next(&rng) % g_hlen;
                while (f[at] < '0' || f[at] > '9');
                f[at] = (unsigned char)('0' + test_rng_next(&rng) % 10);
            } else if (kind == 2) { /* data bytes */
                at = g_doff + test_rng_next(&rng) % (g_base_len - g_doff);
                f[at] ^= (unsigned char)(1 + test_rng_next(&rng) % 255);
                data_only = true;
            } else { /* a preamble byte, then maybe a truncation */
                at = test_rng_next(&rng) % 32;
                f[at] = (unsigned char)test_rng_next(&rng);
                if (test_rng_next(&rng) % 2)
                    len = test_rng_next(&rng) % g_base_len;
            }
        }
        ctr_model_t *m = NULL;
        int rc = open_bytes(f, len, err, sizeof(err), &m);
        if (rc == 0) {
            opened++;
            sink += touch_model(m);
            int vrc = ctr_model_verify(m, err, sizeof(err));
            if (data_only)
                CHECKF(vrc == CTR_ECHECKSUM || vrc == CTR_EFORMAT, "data flip passed verify");
            ctr_model_close(m);
        } else {
            refused++;
            CHECKF(rc == CTR_EFORMAT || rc == CTR_EVERSION || rc == CTR_EUNSUPPORTED,
                   "mutation %zu: unexpected code %d (%s)", it, rc, err);
            CHECKF(err[0] != '\0', "mutation %zu: empty message", it);
            CHECKF(!data_only, "mutation %zu: a data-only flip failed open: %s", it, err);
        }
    }
    printf("random mutations: %zu opened, %zu refused (sink %g)\n", opened, refused, sink);
    free(f);
}

int main(void)
{
    test_names();
    test_round_trip();
    test_round_trip_variants();
    test_testutil_models();
    test_streamed();
    test_streamed_large();
    test_writer_validation();
    base_init();
    test_mutation_helper_is_faithful();
    test_preamble();
    test_truncation();
    test_json();
    test_keys_and_types();
    test_tensors();
    test_checksums();
    test_random_mutations();
    unlink(g_mut);
    unlink(g_path);
    base_free();
    rmdir(test_tmpdir());
    return test_main_end();
}
