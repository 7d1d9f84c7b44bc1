/* test_audit_shadow_log.c - a log of shadow records for `ctrtool audit
 * pd --shadow` and `ctrtool audit verify` (tests/test_ctrtool_audit_shadow.sh),
 * with the figures pd --shadow must print computed here on their own.
 *
 *     test_audit_shadow_log --write-log DIR   write DIR (see write_log)
 *     test_audit_shadow_log                   write one to a temporary
 *         directory, read it back with the reader, and check the figures
 *         from the decoded records equal the ones from what was encoded */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../server/decode.h"
#include "ctr/audit.h"
#include "ctr/common.h"
#include "ctr/forward.h"
#include "ctr/kernels.h"
#include "ctr/model.h"
#include "audit_seg.h"
#include "testutil.h"

/* ---- a segment in memory -------------------------------------------- */

/* Segments: audit_seg.h; this test's start time. */
static void seg_header(seg_t *s, uint64_t index)
{
    seg_header_at(s, 1764900000000000000ull, index);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    CTR_ASSERT(f && fwrite(p, 1, n, f) == n && fclose(f) == 0);
}

/* ---- the log for ctrtool ---------------------------------------------- */

/* ctrtool audit pd --shadow's figures, computed here on their own: the
 * term, the buckets and the flips are written out again rather than
 * taken from ctr/metrics.h, so a change there shows. */
static const double BOUNDS[] = {1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0};
#define NB (sizeof BOUNDS / sizeof BOUNDS[0])

typedef struct {
    uint64_t records, examples, flips, buckets[NB + 1];
    double pd_sum, primary_sum, candidate_sum, threshold;
    int filter;                   /* only records of this primary digest */
    uint8_t only[32];
} expect_t;

/* One shadow record: the primary's digest and scores, the candidate's
 * scores, n examples. */
static void expect_add(expect_t *x, const uint8_t digest[32], const float *ps, const float *cs, size_t n)
{
    if (x->filter && memcmp(digest, x->only, 32))
        return;
    x->records++;
    for (size_t i = 0; i < n; i++) {
        double a = ps[i], c = cs[i];
        double pd = a < 1e-7 && c < 1e-7 ? 0.0 : 2.0 * fabs(a - c) / (a + c);
        size_t k = 0;
        while (k < NB && !(pd <= BOUNDS[k]))
            k++;
        x->buckets[k]++;
        x->pd_sum += pd;
        x->primary_sum += a;
        x->candidate_sum += c;
        x->flips += (a >= x->threshold) != (c >= x->threshold);
        x->examples++;
    }
}

static void expect_in(expect_t *x, const ctr_audit_input_t *in)
{
    if (in->shadow)
        expect_add(x, in->shadow->primary_digest, in->shadow->primary_scores, in->scores, in->n);
}

static void expect_json(FILE *f, const char *name, const expect_t *x)
{
    fprintf(f, "\"%s\":{\"threshold\":%.17g,\"records\":%llu,\"examples\":%llu,\"flips\":%llu,\"pd_sum\":%.17g,"
               "\"primary_sum\":%.17g,\"candidate_sum\":%.17g,\"buckets\":[",
            name, x->threshold, (unsigned long long)x->records, (unsigned long long)x->examples,
            (unsigned long long)x->flips, x->pd_sum, x->primary_sum, x->candidate_sum);
    uint64_t cum = 0;
    for (size_t k = 0; k <= NB; k++) {
        cum += x->buckets[k];
        fprintf(f, "%s%llu", k ? "," : "", (unsigned long long)cum);
    }
    fputs("]}", f);
}

typedef struct {
    ctr_model_t *m;
    const ctr_model_def_t *def;
    ctr_scratch_t *scratch;
    uint8_t digest[32];
} tmodel_t;

/* Primary and candidate: one seed, another SmeLU beta (a retrained
 * model's scores near, not equal to, the primary's). */
static int tmodel_open(const char *path, float beta, tmodel_t *t)
{
    const uint32_t hidden[1] = {8};
    char err[256];
    if (test_make_model(path, 31, 4, 6, 1000, 4, hidden, 1, CTR_ACT_SMELU, beta) ||
        ctr_model_open(path, &t->m, err, sizeof err)) {
        fprintf(stderr, "%s: cannot make the model\n", path);
        return -1;
    }
    t->def = ctr_model_def(t->m);
    if (ctr_audit_digest_parse(ctr_model_digest(t->m), t->digest) ||
        ctr_scratch_new(t->def, 64, &t->scratch, err, sizeof err))
        return -1;
    return 0;
}

/* Scores body with t as ctrd would: decode, then ctr_forward. */
static int tmodel_score(tmodel_t *t, const char *body, ctr_request_t *req, float *scores)
{
    ctr_decode_error_t e;
    if (ctr__decode_v1(t->m, body, strlen(body), NULL, req, &e)) {
        fprintf(stderr, "decode: %s\n", e.message);
        return -1;
    }
    return ctr_forward(t->def, ctr_kernel_get(CTR_KERNEL_SCALAR), req->n, req->dense, req->rows, scores,
                       NULL, t->scratch);
}

static void input_of(ctr_audit_input_t *in, const ctr_request_t *req, uint64_t seq, const uint8_t digest[32],
                     const float *scores)
{
    memset(in, 0, sizeof *in);
    in->seq = seq;
    in->t_received_ns = 1764900000000000000ull + seq * 1000;
    in->t_scored_ns = in->t_received_ns + 500;
    in->generation = 1;
    memcpy(in->digest, digest, 32);
    in->kernel_id = CTR_KERNEL_SCALAR;
    in->bit_exact = 1;
    in->client_request_id = req->has_request_id;
    in->request_id = req->request_id;
    in->request_id_len = strlen(req->request_id);
    in->n = req->n;
    in->n_dense = req->n_dense;
    in->n_cat = req->n_cat;
    in->dense_raw = req->dense_raw;
    in->cat_off = req->cat_off;
    in->cat_len = req->cat_len;
    in->cat_bytes = req->cat_bytes;
    in->scores = scores;
}

/* DIR/p.ctrm (primary) and DIR/c.ctrm (candidate); DIR/log/ two segments
 * of 60 requests as ctrd with `--shadow c:p` logs them: each request's
 * primary record, and (unless not sampled) a shadow record written after
 * the next request's primary record, some of whose primary record was
 * dropped (primary_seq 0, not in the log); DIR/synth/ a segment of
 * shadow records of made-up score pairs (both below the floor, equal,
 * either side of the threshold, 0 against 1, ...) for two primary
 * digests; DIR/expected.json the figures. */
enum { X_LOG, X_LOG_T03, X_SYNTH, X_SYNTH_D1, X_N };

static int write_log(const char *dir, expect_t out[X_N])
{
    char path[1024];
    snprintf(path, sizeof path, "%s/log", dir);
    mkdir(dir, 0755);
    if (mkdir(path, 0755) && errno != EEXIST)
        return 1;
    snprintf(path, sizeof path, "%s/synth", dir);
    if (mkdir(path, 0755) && errno != EEXIST)
        return 1;
    tmodel_t p, c;
    memset(&p, 0, sizeof p);
    memset(&c, 0, sizeof c);
    char pp[1024], cp[1024];
    snprintf(pp, sizeof pp, "%s/p.ctrm", dir);
    snprintf(cp, sizeof cp, "%s/c.ctrm", dir);
    if (tmodel_open(pp, 1.0f, &p) || tmodel_open(cp, 2.0f, &c))
        return 1;
    test_rng_t rng = {20261205};
    expect_t all = {.threshold = 0.5}, t03 = {.threshold = 0.435};
    uint64_t seq = 0, type1 = 0, type2 = 0, type2_examples = 0, unlogged = 0;
    seg_t seg[2] = {{0}};
    seg_header(&seg[0], 1);
    seg_header(&seg[1], 2);
    /* The shadow record waiting for the next request's primary record. */
    ctr_request_t held_req;
    float held_c[16], held_p[16];
    ctr_audit_shadow_t held_sh;
    int held = 0;
    enum { REQS = 60 };
    for (int k = 0; k <= REQS; k++) {
        seg_t *s = &seg[k < REQS / 2 ? 0 : 1];
        ctr_request_t rp, rc;
        float sp[16], sc[16];
        int have = k < REQS;
        uint64_t pseq = 0;
        if (have) {
            char body[4096];
            size_t n = 1 + (size_t)k % 5, o = 0;
            o += (size_t)snprintf(body + o, sizeof body - o, "{\"request_id\":\"r-%d\",%s\"examples\":[", k,
                                  k % 4 == 0 ? "\"context\":{\"C6\":\"ctx\",\"I4\":0}," : "");
            for (size_t i = 0; i < n; i++) {
                o += (size_t)snprintf(body + o, sizeof body - o, "%s{\"I1\":%llu,\"I2\":%.3f,%s\"C1\":\"%llx\","
                                      "\"C2\":\"w%llu\",\"C3\":%llu%s}", i ? "," : "",
                                      (unsigned long long)(test_rng_next(&rng) % 4),
                                      (double)test_rng_uniform(&rng, -1, 1),
                                      test_rng_next(&rng) % 3 ? "\"I3\":1," : "",
                                      (unsigned long long)(test_rng_next(&rng) % 100000),
                                      (unsigned long long)(test_rng_next(&rng) % 50),
                                      (unsigned long long)(test_rng_next(&rng) % 300),
                                      test_rng_next(&rng) % 2 ? ",\"C5\":\"x\"" : "");
            }
            snprintf(body + o, sizeof body - o, "]}");
            if (tmodel_score(&p, body, &rp, sp) || tmodel_score(&c, body, &rc, sc))
                return 1;
            /* The primary's record; one in 7 dropped (an async writer
             * that was full): its shadow record says primary_seq 0. */
            ctr_audit_input_t in;
            if (k % 7 != 3) {
                pseq = ++seq;
                input_of(&in, &rp, pseq, p.digest, sp);
                seg_record(s, &in);
                type1++;
            } else {
                unlogged++;
            }
        }
        if (held) {
            ctr_audit_input_t in;
            input_of(&in, &held_req, ++seq, c.digest, held_c);
            in.shadow = &held_sh;
            seg_record(s, &in);
            expect_in(&all, &in);
            expect_in(&t03, &in);
            type2++;
            type2_examples += in.n;
            ctr__request_release(&held_req);
            held = 0;
        }
        if (!have)
            break;
        ctr__request_release(&rc);
        if (k % 5 == 4) {   /* not sampled */
            ctr__request_release(&rp);
            continue;
        }
        held_req = rp;
        memcpy(held_c, sc, sizeof sc);
        memcpy(held_p, sp, sizeof sp);
        held_sh = (ctr_audit_shadow_t){.primary_seq = pseq, .primary_generation = 1, .primary_scores = held_p};
        memcpy(held_sh.primary_digest, p.digest, 32);
        held = 1;
    }
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/log/shadow-%04d.audit", dir, i + 1);
        write_file(path, seg[i].p, seg[i].n);
        free(seg[i].p);
    }

    /* The made-up pairs. */
    static const float pairs[][2] = {
        {0, 0}, {5e-8f, 9e-8f}, {1e-7f, 0}, {0.5f, 0.5f}, {0.5f, 0.49999997f}, {0.49999997f, 0.5f},
        {0.3f, 0.7f}, {1, 0}, {0, 1e-3f}, {0.2f, 0.2002f}, {0.9f, 0.1f}, {0.25f, 0.2500001f},
        {0.3f, 0.29999998f}, {1e-6f, 1.1e-6f}, {0.99f, 0.98f},
    };
    uint8_t d1[32], d2[32], dc[32];
    for (int i = 0; i < 32; i++) {
        d1[i] = (uint8_t)(0x11 * (i % 15));
        d2[i] = (uint8_t)(0xe0 + i % 16);
        dc[i] = (uint8_t)(i * 3);
    }
    expect_t syn = {.threshold = 0.5}, syn_d1 = {.threshold = 0.5, .filter = 1};
    memcpy(syn_d1.only, d1, 32);
    seg_t z = {0};
    seg_header(&z, 1);
    double dense[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint32_t off[8] = {0};
    uint8_t len[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    float a[8], b[8];
    size_t np = CTR_ARRAY_LEN(pairs), at = 0;
    for (int r = 0; at < np + 400; r++) {
        size_t n = 1 + (size_t)r % 8;
        for (size_t i = 0; i < n; i++, at++) {
            if (at < np) {
                a[i] = pairs[at][0];
                b[i] = pairs[at][1];
            } else {
                /* Relative differences across every decade. */
                a[i] = test_rng_uniform(&rng, 0, 1);
                float rel = powf(10.0f, -(float)(test_rng_next(&rng) % 9)) * test_rng_uniform(&rng, -1, 1);
                b[i] = fminf(1.0f, fmaxf(0.0f, a[i] * (1 + rel)));
            }
        }
        ctr_audit_shadow_t sh = {.primary_seq = (uint64_t)r + 1, .primary_generation = 1, .primary_scores = a};
        memcpy(sh.primary_digest, r % 3 ? d1 : d2, 32);
        ctr_audit_input_t in = {.seq = 1000 + (uint64_t)r, .generation = 1, .request_id = "syn",
                                .request_id_len = 3, .n = n, .n_dense = 1, .n_cat = 1, .dense_raw = dense,
                                .cat_off = off, .cat_len = len, .cat_bytes = "k", .scores = b,
                                .shadow = &sh};
        memcpy(in.digest, dc, 32);
        seg_record(&z, &in);
        expect_in(&syn, &in);
        expect_in(&syn_d1, &in);
        if (r % 10 == 0) {   /* a type-1 record between them: not compared */
            in.shadow = NULL;
            memcpy(in.digest, d1, 32);
            seg_record(&z, &in);
        }
    }
    snprintf(path, sizeof path, "%s/synth/synth.audit", dir);
    write_file(path, z.p, z.n);
    free(z.p);

    snprintf(path, sizeof path, "%s/expected.json", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return 1;
    char dp[72], dcs[72], dd1[72], dd2[72];
    ctr_audit_digest_str(p.digest, dp);
    ctr_audit_digest_str(c.digest, dcs);
    ctr_audit_digest_str(d1, dd1);
    ctr_audit_digest_str(d2, dd2);
    fprintf(f, "{\"primary_digest\":\"%s\",\"candidate_digest\":\"%s\",\"d1\":\"%s\",\"d2\":\"%s\","
               "\"type1\":%llu,\"type2\":%llu,\"type2_examples\":%llu,\"unlogged_primary\":%llu,",
            dp, dcs, dd1, dd2, (unsigned long long)type1, (unsigned long long)type2,
            (unsigned long long)type2_examples, (unsigned long long)unlogged);
    expect_json(f, "log", &all);
    fputc(',', f);
    expect_json(f, "log_t", &t03);
    fputc(',', f);
    expect_json(f, "synth", &syn);
    fputc(',', f);
    expect_json(f, "synth_d1", &syn_d1);
    fputs("}\n", f);
    fclose(f);
    out[X_LOG] = all;
    out[X_LOG_T03] = t03;
    out[X_SYNTH] = syn;
    out[X_SYNTH_D1] = syn_d1;
    ctr_scratch_free(p.scratch);
    ctr_scratch_free(c.scratch);
    ctr_model_close(p.m);
    ctr_model_close(c.m);
    printf("wrote %s: %llu type-1 and %llu type-2 records in log/, %llu pairs in synth/\n", dir,
           (unsigned long long)type1, (unsigned long long)type2, (unsigned long long)syn.examples);
    return 0;
}


/* The figures again, from the records the reader decodes in file order. */
static void read_back(const char *path, expect_t *x)
{
    ctr_audit_reader_t *r;
    char err[256];
    CHECKF(ctr_audit_reader_open(path, &r, err, sizeof err) == 0, "%s: %s", path, err);
    ctr_audit_record_t rec;
    ctr_audit_event_t ev;
    while ((ev = ctr_audit_reader_next(r, &rec, NULL)) != CTR_AUDIT_END) {
        CHECKF(ev == CTR_AUDIT_RECORD, "%s: event %d", path, ev);
        if (ev == CTR_AUDIT_RECORD && rec.type == 2)
            expect_add(x, rec.primary_digest, rec.primary_scores, rec.scores, rec.n);
    }
    ctr_audit_reader_close(r);
}

static int same(const expect_t *a, const expect_t *b)
{
    return a->records == b->records && a->examples == b->examples && a->flips == b->flips &&
           !memcmp(a->buckets, b->buckets, sizeof a->buckets) && !memcmp(&a->pd_sum, &b->pd_sum, 8) &&
           !memcmp(&a->primary_sum, &b->primary_sum, 8) && !memcmp(&a->candidate_sum, &b->candidate_sum, 8);
}

int main(int argc, char **argv)
{
    expect_t w[X_N];
    if (argc > 2 && !strcmp(argv[1], "--write-log"))
        return write_log(argv[2], w);
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/shadow", test_tmpdir());
    CHECK(write_log(dir, w) == 0);
    expect_t r[X_N];
    memset(r, 0, sizeof r);
    r[X_LOG].threshold = r[X_SYNTH].threshold = r[X_SYNTH_D1].threshold = 0.5;
    r[X_LOG_T03].threshold = 0.435;
    r[X_SYNTH_D1].filter = 1;
    memcpy(r[X_SYNTH_D1].only, w[X_SYNTH_D1].only, 32);
    for (int i = 1; i <= 2; i++) {
        snprintf(path, sizeof path, "%s/log/shadow-%04d.audit", dir, i);
        read_back(path, &r[X_LOG]);
        read_back(path, &r[X_LOG_T03]);
    }
    snprintf(path, sizeof path, "%s/synth/synth.audit", dir);
    read_back(path, &r[X_SYNTH]);
    read_back(path, &r[X_SYNTH_D1]);
    for (int i = 0; i < X_N; i++)
        CHECKF(same(&w[i], &r[i]), "figures %d: %llu/%llu examples, pd_sum %.17g/%.17g", i,
               (unsigned long long)w[i].examples, (unsigned long long)r[i].examples, w[i].pd_sum, r[i].pd_sum);
    /* Every bucket and both sides of the threshold are reached. */
    CHECK(w[X_SYNTH].buckets[0] > 0 && w[X_SYNTH].flips > 0 && w[X_LOG].examples > 50 && w[X_LOG_T03].flips > 0);
    for (size_t k = 0; k < NB; k++)
        CHECKF(w[X_SYNTH].buckets[k] > 0, "synth: bucket %zu (le %g) empty", k, BOUNDS[k]);
    CHECK(w[X_SYNTH_D1].examples > 0 && w[X_SYNTH_D1].examples < w[X_SYNTH].examples);
    printf("log: %llu shadow examples, pd_sum %.17g, %llu flips; synth: %llu pairs\n",
           (unsigned long long)w[X_LOG].examples, w[X_LOG].pd_sum, (unsigned long long)w[X_LOG].flips,
           (unsigned long long)w[X_SYNTH].examples);
    return test_main_end();
}
