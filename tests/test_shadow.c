/* test_shadow.c - the shadow candidate's pieces (server/shadow.c) without
 * HTTP:
 *  - the sampling rule: XXH3_64bits_withSeed(key, "ctrd") < F * 2^64, F = 0
 *    never and 1 always without hashing, the request id as the key when
 *    the client sent one, else the body; about F of many keys;
 *  - the compatibility check: buckets, seeds, dims may differ; the
 *    feature list, bag_max and mapping kind may not;
 *  - the re-encoding of a request decoded for the primary with a
 *    candidate of other buckets and seeds (single values, `mod`, bags,
 *    missing values, chunk offsets): the rows and dense values the
 *    candidate's own decoder gives for the same body, bit for bit;
 *  - the module end to end with a real audit writer: requests of up to 7
 *    examples with --max-batch 3 (chunks), each offered once; the log
 *    holds one type-2 record per request with the candidate's digest and
 *    scores (those of a direct forward pass), the primary's seq,
 *    generation, digest and score bits; the /metrics text counts exactly
 *    those examples, its PD sum is theirs; an incompatible candidate's
 *    examples are dropped "incompatible"; promote turns the shadow off. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "../server/audit_writer.h"
#include "../server/decode.h"
#include "../server/modelstore.h"
#include "../server/shadow.h"
#include "ctr/audit.h"
#include "ctr/common.h"
#include "ctr/features.h"
#include "ctr/forward.h"
#include "ctr/metrics.h"
#include "ctr/model.h"
#include "model_int.h"
#include "testutil.h"

static const ctr_decode_limits_t g_lim = {64, 32};
static const ctr_kernel_t *g_kernel;

/* ---- sampling ----------------------------------------------------------- */

static void test_sampling(void)
{
    const char *key = "req-42";
    uint64_t h = XXH3_64bits_withSeed(key, strlen(key), 0x63747264u);
    CHECK_EQ_INT(ctr__shadow_sample_key(0.5, key, strlen(key)), h < (UINT64_C(1) << 63));
    CHECK_EQ_INT(ctr__shadow_sample_key(0.0, key, strlen(key)), 0);
    CHECK_EQ_INT(ctr__shadow_sample_key(1.0, key, strlen(key)), 1);
    /* The bound of F as a 64-bit fraction, either side of the hash. */
    double f = (double)h / 18446744073709551616.0;
    CHECK_EQ_INT(ctr__shadow_sample_key(f * 1.0001 + 1e-12, key, strlen(key)), 1);
    CHECK_EQ_INT(ctr__shadow_sample_key(f * 0.9999, key, strlen(key)), 0);
    CHECK_EQ_INT(ctr__shadow_sample_key(0.9999999999999999, key, strlen(key)), h < (uint64_t)(0.9999999999999999 * 18446744073709551616.0));
    size_t picked = 0, again = 0;
    char k[32];
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(k, sizeof k, "ex-%d", i);
        int a = ctr__shadow_sample_key(0.25, k, (size_t)n);
        picked += (size_t)a;
        again += (size_t)(a == ctr__shadow_sample_key(0.25, k, (size_t)n));
    }
    CHECKF(picked > 4700 && picked < 5300, "0.25 of 20000 keys picked %zu", picked);
    CHECK_EQ_SIZE(again, 20000);
}

/* ---- compatibility ------------------------------------------------------ */

static void test_compatible(const ctr_model_def_t *p)
{
    char why[256];
    ctr_dense_def_t dense[64];
    ctr_cat_def_t cat[64];
    CTR_ASSERT(p->n_dense <= 64 && p->n_cat <= 64);
    ctr_model_def_t c = *p;
    memcpy(dense, p->dense, p->n_dense * sizeof *dense);
    memcpy(cat, p->cat, p->n_cat * sizeof *cat);
    c.dense = dense;
    c.cat = cat;
    CHECK_EQ_INT(ctr__shadow_compatible(p, &c, why, sizeof why), 0);
    cat[1].buckets += 17;
    cat[1].seed ^= 99;
    cat[2].dim *= 2;
    dense[0].transform = CTR_TRANSFORM_IDENTITY;
    CHECK_EQ_INT(ctr__shadow_compatible(p, &c, why, sizeof why), 0);
    c.n_dense--;
    CHECK_EQ_INT(ctr__shadow_compatible(p, &c, why, sizeof why), CTR_EINVAL);
    CHECKF(strstr(why, "dense") != NULL, "%s", why);
    c.n_dense++;
    c.n_cat--;
    CHECK_EQ_INT(ctr__shadow_compatible(p, &c, why, sizeof why), CTR_EINVAL);
    c.n_cat++;
    const char *n0 = cat[0].name;
    cat[0].name = cat[1].name;
    CHECK_EQ_INT(ctr__shadow_compatible(p, &c, why, sizeof why), CTR_EINVAL);
    CHECKF(strstr(why, n0) != NULL, "%s", why);
    cat[0].name = n0;
    dense[1].name = "other";
    CHECK_EQ_INT(ctr__shadow_compatible(p, &c, why, sizeof why), CTR_EINVAL);
    dense[1].name = p->dense[1].name;
    cat[3].bag_max = cat[3].bag_max ? 0 : 2;
    CHECK_EQ_INT(ctr__shadow_compatible(p, &c, why, sizeof why), CTR_EINVAL);
    CHECKF(strstr(why, "bag_max") != NULL, "%s", why);
    cat[3].bag_max = p->cat[3].bag_max;
    cat[0].mapping = cat[0].mapping == CTR_MAP_MOD ? CTR_MAP_HASH : CTR_MAP_MOD;
    CHECK_EQ_INT(ctr__shadow_compatible(p, &c, why, sizeof why), CTR_EINVAL);
    CHECKF(strstr(why, "mapping") != NULL, "%s", why);
}

/* ---- re-encoding -------------------------------------------------------- */

static void patch(ctr_model_t *m, size_t j, uint32_t bag_max, ctr_mapping_t map)
{
    CTR_ASSERT(m->def.cat == m->cat);
    m->cat[j].bag_max = bag_max;
    m->cat[j].pool = CTR_POOL_SUM;
    m->cat[j].mapping = map;
}

/* req (decoded for the primary) re-encoded with cand's def equals the
 * candidate's own decoding of the same body (want), in chunks of chunk. */
static void check_encode(const ctr_model_def_t *cand, const ctr_request_t *req, const ctr_request_t *want,
                         size_t chunk, const char *what)
{
    size_t nd = cand->n_dense, nc = ctr_model_slots(cand);
    float dense[64 * 8];
    uint32_t rows[64 * 16];
    CTR_ASSERT(nd <= 8 && nc <= 16 && chunk <= 64);
    for (size_t i0 = 0; i0 < req->n; i0 += chunk) {
        size_t n = req->n - i0 < chunk ? req->n - i0 : chunk;
        int rc = ctr__shadow_encode(cand, req, i0, n, dense, rows);
        CHECKF(rc == 0, "%s: encode [%zu, +%zu): %d", what, i0, n, rc);
        for (size_t i = 0; i < n * nd; i++)
            if (!CHECK_EQ_BITS(dense[i], want->dense[i0 * nd + i])) {
                fprintf(stderr, "  %s: example %zu dense %zu\n", what, i0 + i / nd, i % nd);
                break;
            }
        for (size_t i = 0; i < n * nc; i++)
            if (!CHECK_EQ_UINT(rows[i], want->rows[i0 * nc + i])) {
                fprintf(stderr, "  %s: example %zu slot %zu\n", what, i0 + i / nc, i % nc);
                break;
            }
    }
}

static void test_encode(void)
{
    const uint32_t hidden[] = {8};
    const char *pp = test_path("enc_p.ctrm"), *cp = test_path("enc_c.ctrm");
    ctr_model_t *p = NULL, *c = NULL;
    char err[256];
    if (test_make_model(pp, 5, 3, 5, 1000, 4, hidden, 1, CTR_ACT_RELU, 1.0f) ||
        test_make_model(cp, 6, 3, 5, 313, 4, hidden, 1, CTR_ACT_RELU, 1.0f) ||
        ctr_model_open(pp, &p, err, sizeof err) || ctr_model_open(cp, &c, err, sizeof err)) {
        CHECKF(0, "models: %s", err);
        ctr_model_close(p);
        return;
    }
    /* C1 hash, C2 a hash bag of 4, C3 mod, C4 a mod bag of 3, C5 hash;
     * the candidate's tables are other sizes with other seeds. */
    for (int k = 0; k < 2; k++) {
        ctr_model_t *m = k ? c : p;
        patch(m, 1, 4, CTR_MAP_HASH);
        patch(m, 2, 0, CTR_MAP_MOD);
        patch(m, 3, 3, CTR_MAP_MOD);
    }
    char why[256];
    CHECKF(ctr__shadow_compatible(ctr_model_def(p), ctr_model_def(c), why, sizeof why) == 0, "%s", why);
    const char *body =
        "{\"request_id\":\"enc\",\"examples\":["
        "{\"I1\":3,\"I2\":-1.5,\"C1\":\"a\",\"C2\":[\"x\",\"y\"],\"C3\":\"ff\",\"C4\":[16,\"1A\"],\"C5\":7},"
        "{\"I3\":null,\"C2\":\"z\",\"C3\":12345},"
        "{\"C2\":[],\"C4\":[0,\"FFFFFFFFFFFFFFFF\",9223372036854775807],\"C5\":\"q\"},"
        "{\"I1\":1e300,\"C1\":-17,\"C2\":null,\"C4\":5},"
        "{\"I2\":0,\"C1\":\"\",\"C2\":[\"a\",\"b\",\"c\",\"d\"],\"C3\":\"0\"}]}";
    ctr_request_t rp, rc;
    ctr_decode_error_t e;
    int r1 = ctr__decode_v1(p, body, strlen(body), &g_lim, &rp, &e);
    CHECKF(r1 == 0, "primary decode: %s", e.message);
    int r2 = ctr__decode_v1(c, body, strlen(body), &g_lim, &rc, &e);
    CHECKF(r2 == 0, "candidate decode: %s", e.message);
    if (!r1 && !r2) {
        CHECK_EQ_SIZE(rp.n_cat, 1 + 4 + 1 + 3 + 1);
        for (size_t chunk = 1; chunk <= 5; chunk++)
            check_encode(ctr_model_def(c), &rp, &rc, chunk, "bags and mod");
        /* Other rows than the primary's, or the test shows nothing. */
        size_t differ = 0;
        for (size_t i = 0; i < rp.n * rp.n_cat; i++)
            differ += rp.rows[i] != rc.rows[i];
        CHECKF(differ > 10, "only %zu rows differ between the models", differ);
        /* Out of range or an incompatible shape is refused. */
        float d[64];
        uint32_t rows[64];
        CHECK_EQ_INT(ctr__shadow_encode(ctr_model_def(c), &rp, 4, 2, d, rows), CTR_EINVAL);
        rp.n_cat--;
        CHECK_EQ_INT(ctr__shadow_encode(ctr_model_def(c), &rp, 0, 1, d, rows), CTR_EINVAL);
        rp.n_cat++;
    }
    test_compatible(ctr_model_def(p));
    if (!r1)
        ctr__request_release(&rp);
    if (!r2)
        ctr__request_release(&rc);
    ctr_model_close(p);
    ctr_model_close(c);
}

/* ---- the module --------------------------------------------------------- */

#define N_REQ 40

/* The only segment file in dir (a fresh writer writes one). */
static int segment_in(const char *dir, char *out, size_t cap)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    while (d && (de = readdir(d)))
        if (strstr(de->d_name, ".audit")) {
            snprintf(out, cap, "%s/%s", dir, de->d_name);
            n++;
        }
    if (d)
        closedir(d);
    return n;
}

/* A /metrics sample's value: the first line starting with prefix. */
static double sample(const char *text, const char *prefix)
{
    const char *at = strstr(text, prefix);
    return at ? strtod(at + strlen(prefix), NULL) : NAN;
}

static void body_of(int i, size_t n, char *out, size_t cap)
{
    /* Two requests in three carry an id (the sampling key), the third is
     * keyed by its body. */
    size_t w = i % 3 ? (size_t)snprintf(out, cap, "{\"request_id\":\"m-%03d\",\"examples\":[", i)
                     : (size_t)snprintf(out, cap, "{\"examples\":[");
    for (size_t k = 0; k < n; k++)
        w += (size_t)snprintf(out + w, cap - w, "%s{\"I1\":%d,\"I2\":%zu.5,\"C1\":\"v%d\",\"C7\":\"%zx\",\"C9\":%d}",
                              k ? "," : "", i, k, i * 7 + (int)k, k * 977 + (size_t)i, i - 20);
    snprintf(out + w, cap - w, "]}");
}

static void test_module(int compatible)
{
    const uint32_t hidden[] = {16, 8};
    char pp[512], cp[512], dir[512], err[512];
    snprintf(pp, sizeof pp, "%s", test_path("mod_p.ctrm"));
    snprintf(cp, sizeof cp, "%s", test_path(compatible ? "mod_c.ctrm" : "mod_x.ctrm"));
    snprintf(dir, sizeof dir, "%s", test_path(compatible ? "audit_ok" : "audit_x"));
    CHECK(test_make_model(pp, 11, 13, 26, 997, 8, hidden, 2, CTR_ACT_SMELU, 0.75f) == 0);
    CHECK(test_make_model(cp, 12, 13, compatible ? 26 : 25, 541, 4, hidden, 2, CTR_ACT_RELU, 1.0f) == 0);
    ctr__modelstore_t *ps = NULL, *cs = NULL;
    if (ctr__modelstore_open("p", pp, 0, g_kernel, &ps, err, sizeof err) ||
        ctr__modelstore_open("c", cp, 1, g_kernel, &cs, err, sizeof err)) {
        CHECKF(0, "modelstore: %s", err);
        ctr__modelstore_close(ps);
        return;
    }
    ctr__audit_config_t acfg = {.enabled = 1, .dir = dir, .durability = CTR__AUDIT_WRITE,
                                .segment_bytes = 1 << 26, .on_error_fail = 1};
    ctr__audit_t *a = NULL;
    CHECKF(ctr__audit_open(&acfg, &a, err, sizeof err) == 0, "audit: %s", err);
    ctr__shadow_config_t scfg = {
        .primary = ps, .candidate = cs, .primary_name = "p", .candidate_name = "c",
        .sample = 1, .threshold = 0.5, .queue_limit = 1000000, .max_batch = 3,
        .kernel = g_kernel, .audit = a, .audit_enabled = 1,
    };
    ctr__shadow_t *sh = NULL;
    CHECKF(a && ctr__shadow_start(&scfg, &sh, err, sizeof err) == 0, "shadow: %s", err);
    if (!sh) {
        ctr__audit_close(a);
        ctr__modelstore_close(ps);
        ctr__modelstore_close(cs);
        return;
    }
    ctr__gen_t *pg = ctr__modelstore_acquire(ps), *cg = ctr__modelstore_acquire(cs);
    ctr_scratch_t *psc = NULL, *csc = NULL;
    CHECK(ctr_scratch_new(pg->def, 16, &psc, NULL, 0) == 0);
    CHECK(!compatible || ctr_scratch_new(cg->def, 16, &csc, NULL, 0) == 0);
    /* What the log must hold, per request: the candidate's scores (its own
     * decoding, forward pass) and the primary's. */
    static float want_p[N_REQ][8], want_c[N_REQ][8];
    size_t want_n[N_REQ], examples = 0;
    double pd_sum = 0;
    uint64_t flips = 0;
    char body[4096];
    for (int i = 0; i < N_REQ; i++) {
        size_t n = 1 + (size_t)(i * 5 % 7);    /* 1..7: above --max-batch 3 too */
        body_of(i, n, body, sizeof body);
        CHECK(ctr__shadow_sampled(sh, 0, &(ctr_request_t){.has_request_id = 0}, body, strlen(body)) == 1);
        CHECK(ctr__shadow_sampled(sh, 1, &(ctr_request_t){.has_request_id = 0}, body, strlen(body)) == 0);
        ctr_request_t r, rc;
        ctr_decode_error_t e;
        if (ctr__decode_v1(pg->model, body, strlen(body), &g_lim, &r, &e)) {
            CHECKF(0, "decode %d: %s", i, e.message);
            continue;
        }
        CHECK(ctr_forward(pg->def, g_kernel, n, r.dense, r.rows, r.scores, NULL, psc) == 0);
        memcpy(want_p[i], r.scores, n * sizeof(float));
        want_n[i] = n;
        if (compatible && !ctr__decode_v1(cg->model, body, strlen(body), &g_lim, &rc, &e)) {
            CHECK(ctr_forward(cg->def, g_kernel, n, rc.dense, rc.rows, want_c[i], NULL, csc) == 0);
            ctr__request_release(&rc);
            for (size_t k = 0; k < n; k++) {
                pd_sum += ctr_metrics_pd_one(want_p[i][k], want_c[i][k]);
                flips += (want_p[i][k] >= 0.5f) != (want_c[i][k] >= 0.5f);
            }
        }
        examples += n;
        ctr__audit_item_t prim = {.seq = 1000 + (uint64_t)i, .generation = pg->id, .t_received_ns = 77};
        ctr__gen_retain(pg);
        if (!CHECK_EQ_INT(ctr__shadow_offer(sh, &r, pg, &prim), 1)) {
            ctr__request_release(&r);
            ctr__gen_release(pg);
        } else {
            CHECK(r.arena == NULL);
        }
    }
    /* Stop drops what is still queued: first let the shadow account for
     * every example (compared, or dropped as incompatible), at most 20 s. */
    for (int tries = 0; tries < 2000; tries++) {
        ctr__buf_t wb;
        if (ctr__buf_init(&wb, 4096))
            break;
        ctr__shadow_render(&wb, sh);
        const char *w = wb.p ? wb.p : "";
        double done = sample(w, "ctrd_shadow_examples_total{primary=\"p\",candidate=\"c\"} ") +
                      sample(w, "ctrd_shadow_dropped_examples_total{primary=\"p\",candidate=\"c\",reason=\"incompatible\"} ");
        ctr__buf_free(&wb);
        if (done >= (double)examples)
            break;
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    ctr__shadow_stop(sh);
    ctr__buf_t mb;
    CHECK(ctr__buf_init(&mb, 4096) == 0);
    CHECK(ctr__audit_flush(a, 5000000000u, err, sizeof err) == 0);
    ctr__shadow_render(&mb, sh);
    ctr__audit_close(a);

    /* The log: one type-2 record per request, in offer order. */
    char seg[1024];
    uint8_t pd[32], cd[32];
    ctr_audit_digest_parse(pg->digest, pd);
    ctr_audit_digest_parse(cg->digest, cd);
    ctr_audit_reader_t *rd = NULL;
    size_t got = 0;
    if (CHECK_EQ_INT(segment_in(dir, seg, sizeof seg), 1) &&
        CHECK_EQ_INT(ctr_audit_reader_open(seg, &rd, err, sizeof err), 0)) {
        ctr_audit_record_t rec;
        ctr_audit_span_t sp;
        ctr_audit_event_t ev;
        while ((ev = ctr_audit_reader_next(rd, &rec, &sp)) == CTR_AUDIT_RECORD) {
            size_t i = got++;
            if (i >= N_REQ || !CHECK_EQ_UINT(rec.type, 2) || !CHECK_EQ_SIZE(rec.n, want_n[i]))
                break;
            CHECK_EQ_UINT(rec.primary_seq, 1000 + i);
            CHECK_EQ_UINT(rec.primary_generation, pg->id);
            CHECK_EQ_UINT(rec.generation, cg->id);
            CHECK_EQ_UINT(rec.t_received_ns, 77);
            CHECK(!memcmp(rec.primary_digest, pd, 32));
            CHECK(!memcmp(rec.digest, cd, 32));
            for (size_t k = 0; k < rec.n; k++) {
                CHECK_EQ_BITS(rec.primary_scores[k], want_p[i][k]);
                if (!CHECK_EQ_BITS(rec.scores[k], want_c[i][k]))
                    fprintf(stderr, "  request %zu example %zu\n", i, k);
            }
        }
        CHECK_EQ_INT(ev, CTR_AUDIT_END);
        ctr_audit_reader_close(rd);
    }
    CHECK_EQ_SIZE(got, compatible ? N_REQ : 0);

    /* /metrics: exactly the logged examples. */
    const char *t = mb.p ? mb.p : "";
    const char *L = "{primary=\"p\",candidate=\"c\"} ";
    char key[160];
#define S(name) (snprintf(key, sizeof key, "%s%s", name, L), sample(t, key))
    CHECK_EQ_DBL(S("ctrd_shadow_requests_sampled_total"), N_REQ);
    CHECK_EQ_DBL(S("ctrd_shadow_examples_total"), compatible ? examples : 0);
    CHECK_EQ_DBL(S("ctrd_shadow_pd_count"), compatible ? examples : 0);
    CHECK_EQ_DBL(S("ctrd_shadow_flips_total"), flips);
    CHECK_NEAR(S("ctrd_shadow_pd_sum"), pd_sum, 1e-9 * (pd_sum + 1));
    CHECK_EQ_DBL(S("ctrd_shadow_queue_examples"), 0);
    CHECK_EQ_DBL(S("ctrd_shadow_active"), 0);   /* stopped */
#undef S
    snprintf(key, sizeof key, "ctrd_shadow_dropped_examples_total{primary=\"p\",candidate=\"c\",reason=\"incompatible\"} ");
    CHECK_EQ_DBL(sample(t, key), compatible ? 0 : examples);
    snprintf(key, sizeof key, "ctrd_shadow_pd_bucket{primary=\"p\",candidate=\"c\",le=\"+Inf\"} ");
    CHECK_EQ_DBL(sample(t, key), compatible ? examples : 0);
    CHECK(strstr(t, "# TYPE ctrd_shadow_pd histogram") != NULL);

    ctr__buf_free(&mb);
    ctr_scratch_free(psc);
    ctr_scratch_free(csc);
    ctr__gen_release(pg);
    ctr__gen_release(cg);
    ctr__shadow_free(sh);
    ctr__modelstore_close(ps);
    ctr__modelstore_close(cs);
}

/* Promote: begin claims the shadow once, end(1) turns it off for good. */
static void test_promote(void)
{
    const uint32_t hidden[] = {8};
    char pp[512], cp[512], path[4096], err[256];
    snprintf(pp, sizeof pp, "%s", test_path("pr_p.ctrm"));
    snprintf(cp, sizeof cp, "%s", test_path("pr_c.ctrm"));
    CHECK(test_make_model(pp, 21, 13, 26, 97, 4, hidden, 1, CTR_ACT_RELU, 1.0f) == 0);
    CHECK(test_make_model(cp, 22, 13, 26, 89, 4, hidden, 1, CTR_ACT_RELU, 1.0f) == 0);
    ctr__modelstore_t *ps = NULL, *cs = NULL, *got = NULL;
    ctr__audit_config_t acfg = {.enabled = 0};
    ctr__audit_t *a = NULL;
    if (ctr__modelstore_open("p", pp, 0, g_kernel, &ps, err, sizeof err) ||
        ctr__modelstore_open("c", cp, 1, g_kernel, &cs, err, sizeof err) ||
        ctr__audit_open(&acfg, &a, err, sizeof err)) {
        CHECKF(0, "%s", err);
        return;
    }
    ctr__shadow_config_t scfg = {.primary = ps, .candidate = cs, .primary_name = "p", .candidate_name = "c",
                                 .sample = 0.5, .threshold = 0.3, .queue_limit = 4, .max_batch = 2,
                                 .kernel = g_kernel, .audit = a};
    ctr__shadow_t *sh = NULL;
    CHECK(ctr__shadow_start(&scfg, &sh, err, sizeof err) == 0);
    /* The id is the key when there is one, whatever the body. */
    ctr_request_t q = {.has_request_id = 1};
    snprintf(q.request_id, sizeof q.request_id, "abc");
    CHECK_EQ_INT(ctr__shadow_sampled(sh, 0, &q, "x", 1), ctr__shadow_sample_key(0.5, "abc", 3));
    CHECK_EQ_INT(ctr__shadow_sampled(sh, 0, &q, "y", 1), ctr__shadow_sample_key(0.5, "abc", 3));
    q.has_request_id = 0;
    CHECK_EQ_INT(ctr__shadow_sampled(sh, 0, &q, "body", 4), ctr__shadow_sample_key(0.5, "body", 4));
    CHECK_EQ_INT(ctr__shadow_promote_begin(sh, &got, path, sizeof path), 0);
    CHECK(got == ps);
    CHECK_EQ_STR(path, cp);
    CHECK_EQ_INT(ctr__shadow_promote_begin(sh, &got, path, sizeof path), CTR_ENOTFOUND);
    ctr__shadow_promote_end(sh, 0);
    CHECK_EQ_INT(ctr__shadow_promote_begin(sh, &got, path, sizeof path), 0);
    ctr__shadow_promote_end(sh, 1);
    CHECK_EQ_INT(ctr__shadow_promote_begin(sh, &got, path, sizeof path), CTR_ENOTFOUND);
    CHECK_EQ_INT(ctr__shadow_sampled(sh, 0, &q, "body", 4), 0);    /* off: nothing sampled */
    CHECK_EQ_INT(ctr__shadow_promote_begin(NULL, &got, path, sizeof path), CTR_ENOTFOUND);
    ctr__shadow_stop(sh);
    ctr__audit_close(a);
    ctr__shadow_free(sh);
    ctr__modelstore_close(ps);
    ctr__modelstore_close(cs);
}

int main(void)
{
    char err[256];
    g_kernel = ctr_kernel_select(CTR_KERNEL_AUTO, err, sizeof err);
    if (!g_kernel) {
        fprintf(stderr, "no kernel: %s\n", err);
        return 1;
    }
    test_sampling();
    test_encode();
    test_module(1);
    test_module(0);
    test_promote();
    return test_main_end();
}
