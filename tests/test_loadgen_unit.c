/* test_loadgen_unit.c - ctrload's pieces without a network: the latency
 * histogram against exact sorted percentiles, the HTTP/1.1 response
 * parser fed in every split, open-loop schedules, request bodies, and the
 * replay log reader. */
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../loadtest/bodies.h"
#include "../loadtest/hist.h"
#include "../loadtest/http1.h"
#include "../loadtest/replay.h"
#include "../loadtest/schedule.h"
#include "ctr/common.h"
#include "testutil.h"

/* ---- histogram ------------------------------------------------------------ */

static double urand(test_rng_t *r)
{
    return (double)(test_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static double nrand(test_rng_t *r)
{
    double u = urand(r), v = urand(r);
    return sqrt(-2.0 * log(1.0 - u)) * cos(2 * M_PI * v);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

typedef enum { D_LOGUNIFORM, D_UNIFORM, D_EXP, D_LOGNORMAL, D_BIMODAL, D_CONST, D_TINY, D_N } dist_t;
static const char *dist_name[D_N] = {"log-uniform 1us..60s", "uniform 1us..60s", "exponential 1ms",
                                     "lognormal 500us", "bimodal 200us/200ms", "constant",
                                     "sub-microsecond"};

static uint64_t draw(dist_t d, test_rng_t *r)
{
    switch (d) {
    case D_LOGUNIFORM: return (uint64_t)exp(log(1e3) + urand(r) * (log(60e9) - log(1e3)));
    case D_UNIFORM: return (uint64_t)(1e3 + urand(r) * (60e9 - 1e3));
    case D_EXP: return (uint64_t)(1e3 - 1e6 * log(1.0 - urand(r)));
    case D_LOGNORMAL: return (uint64_t)(500e3 * exp(nrand(r)));
    case D_BIMODAL:
        return urand(r) < 0.95 ? (uint64_t)fmax(1e3, 200e3 + 20e3 * nrand(r))
                               : (uint64_t)(200e6 + 5e6 * nrand(r));
    case D_CONST: return 12345678;
    case D_TINY: return 1 + (uint64_t)(urand(r) * 5000);
    default: return 0;
    }
}

static void test_hist(void)
{
    const size_t n = 200000;
    static const double qs[] = {0, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100};
    uint64_t *v = malloc(n * sizeof *v);
    ctr__hist_t *h = malloc(sizeof *h), *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    CHECK(v && h && a && b);
    if (!v || !h || !a || !b)
        return;
    test_rng_t rng = {42};
    double worst_all = 0;
    for (int d = 0; d < D_N; d++) {
        ctr__hist_init(h);
        ctr__hist_init(a);
        ctr__hist_init(b);
        double sum = 0;
        for (size_t i = 0; i < n; i++) {
            v[i] = draw((dist_t)d, &rng);
            sum += (double)v[i];
            ctr__hist_add(h, v[i]);
            ctr__hist_add(i % 3 ? a : b, v[i]);
        }
        ctr__hist_merge(a, b);
        CHECK(a->count == n && !memcmp(a->counts, h->counts, sizeof h->counts));
        CHECK(a->min == h->min && a->max == h->max);
        qsort(v, n, sizeof *v, cmp_u64);
        double worst = 0;
        for (size_t k = 0; k < CTR_ARRAY_LEN(qs); k++) {
            double q = qs[k];
            size_t rank = (size_t)ceil(q / 100.0 * (double)n - 1e-9);
            if (rank < 1)
                rank = 1;
            uint64_t exact = v[rank - 1];
            uint64_t got = ctr__hist_percentile(h, q);
            uint64_t got_merged = ctr__hist_percentile(a, q);
            double rel = exact ? fabs((double)got - (double)exact) / (double)exact : (double)got;
            if (rel > worst)
                worst = rel;
            CHECKF(rel <= 0.01, "%s: p%g = %llu, exact %llu (%.3f%% off)", dist_name[d], q,
                   (unsigned long long)got, (unsigned long long)exact, 100 * rel);
            CHECK(got == got_merged);
        }
        CHECK(ctr__hist_percentile(h, 100) == v[n - 1]);
        CHECK(ctr__hist_percentile(h, 0) == v[0]);
        CHECK(fabs(ctr__hist_mean(h) - sum / (double)n) <= 1e-9 * sum / (double)n);
        printf("hist %-22s worst percentile error %.4f%%\n", dist_name[d], 100 * worst);
        if (worst > worst_all)
            worst_all = worst;
    }
    /* The promise is 1%; the layout gives 1/256. */
    CHECKF(worst_all <= 1.0 / 256 + 1e-12, "worst error %.4f%% over the 0.39%% design bound", 100 * worst_all);

    /* Every value from 1 us to 60 s, on a fine log grid: one-sample
     * histograms report it within 1/256. */
    for (double x = 1e3; x < 60e9; x *= 1.0037) {
        ctr__hist_init(h);
        ctr__hist_add(h, (uint64_t)x);
        ctr__hist_add(h, (uint64_t)x + 1);
        ctr__hist_add(h, (uint64_t)x * 2);   /* so p50 is not clamped to max */
        uint64_t got = ctr__hist_percentile(h, 50);
        double rel = fabs((double)got - (double)((uint64_t)x + 1)) / (double)((uint64_t)x + 1);
        if (rel > 1.0 / 256) {
            CHECKF(0, "value %.0f reported as %llu", x + 1, (unsigned long long)got);
            break;
        }
    }
    /* Empty, huge. */
    ctr__hist_init(h);
    CHECK(ctr__hist_percentile(h, 99) == 0 && ctr__hist_mean(h) == 0);
    ctr__hist_add(h, UINT64_C(1) << 50);
    CHECK(ctr__hist_percentile(h, 50) == UINT64_C(1) << 50);
    free(v);
    free(h);
    free(a);
    free(b);
}

/* ---- HTTP/1.1 response parser --------------------------------------------- */

/* Feeds s in two pieces split at every position; returns the status of the
 * final call for every split and checks they agree. */
static int feed_split(const char *s, size_t len, ctr__http1_t *p, size_t *consumed)
{
    int first_rc = 99;
    for (size_t cut = 0; cut <= len; cut++) {
        ctr__http1_reset(p);
        size_t used = 0, total = 0;
        int rc = ctr__http1_feed(p, s, cut, &used);
        total += used;
        if (rc == CTR__HTTP1_MORE) {
            rc = ctr__http1_feed(p, s + cut, len - cut, &used);
            total += used;
        }
        if (first_rc == 99) {
            first_rc = rc;
            *consumed = total;
        }
        if (rc != first_rc || (rc == CTR__HTTP1_DONE && total != *consumed)) {
            CHECKF(0, "split at %zu changed the result (%d vs %d)", cut, rc, first_rc);
            return rc;
        }
    }
    /* And byte by byte. */
    ctr__http1_reset(p);
    size_t total = 0;
    int rc = CTR__HTTP1_MORE;
    while (rc == CTR__HTTP1_MORE && total < len) {
        size_t used;
        rc = ctr__http1_feed(p, s + total, 1, &used);
        total += used;
    }
    CHECKF(rc == first_rc, "byte-by-byte result %d, whole %d", rc, first_rc);
    return rc;
}

static void test_http1(void)
{
    ctr__http1_t *p = malloc(sizeof *p);
    size_t used;
    CHECK(p);
    if (!p)
        return;
    const char *r1 = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"scores\":[1]}\n";
    CHECK(feed_split(r1, strlen(r1), p, &used) == CTR__HTTP1_DONE);
    CHECK(p->status == 200 && p->keep_alive && p->body_bytes == 15 && used == strlen(r1));
    CHECK(p->snippet_len == 15 && !memcmp(p->snippet, "{\"scores\":[1]}", 14));

    const char *r2 = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5;ext=1\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: y\r\n\r\n";
    CHECK(feed_split(r2, strlen(r2), p, &used) == CTR__HTTP1_DONE);
    CHECK(p->status == 200 && p->body_bytes == 31 && used == strlen(r2) && p->keep_alive);

    const char *r3 = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                     "Content-Length: 2\r\nConnection: close\r\n\r\nno";
    CHECK(feed_split(r3, strlen(r3), p, &used) == CTR__HTTP1_DONE);
    CHECK(p->status == 503 && !p->keep_alive && used == strlen(r3));

    const char *r4 = "HTTP/1.1 204 No Content\r\n\r\n";
    CHECK(feed_split(r4, strlen(r4), p, &used) == CTR__HTTP1_DONE && p->status == 204);

    const char *r5 = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
    CHECK(feed_split(r5, strlen(r5), p, &used) == CTR__HTTP1_DONE && !p->keep_alive);
    const char *r6 = "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n";
    CHECK(feed_split(r6, strlen(r6), p, &used) == CTR__HTTP1_DONE && p->keep_alive);

    /* Body until close. */
    const char *r7 = "HTTP/1.1 200 OK\r\n\r\nsome body";
    CHECK(feed_split(r7, strlen(r7), p, &used) == CTR__HTTP1_MORE);
    CHECK(ctr__http1_eof(p) == CTR__HTTP1_DONE && p->body_bytes == 9 && !p->keep_alive);

    /* Cut short. */
    const char *r8 = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345";
    CHECK(feed_split(r8, strlen(r8), p, &used) == CTR__HTTP1_MORE);
    CHECK(ctr__http1_eof(p) == CTR__HTTP1_ERROR && p->error);
    ctr__http1_reset(p);
    CHECK(ctr__http1_idle(p) && ctr__http1_eof(p) == CTR__HTTP1_ERROR);

    /* A response followed by more bytes: DONE, the rest not consumed. */
    const char *r9 = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1";
    ctr__http1_reset(p);
    CHECK(ctr__http1_feed(p, r9, strlen(r9), &used) == CTR__HTTP1_DONE && used == strlen(r9) - 8);

    /* Malformed. */
    static const char *bad[] = {
        "HTTX/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
    };
    for (size_t i = 0; i < CTR_ARRAY_LEN(bad); i++) {
        ctr__http1_reset(p);
        int rc = ctr__http1_feed(p, bad[i], strlen(bad[i]), &used);
        CHECKF(rc == CTR__HTTP1_ERROR && p->error, "malformed response %zu accepted (rc %d)", i, rc);
    }
    /* Over-long headers. */
    size_t big = CTR__HTTP1_MAX_HEADER + 100;
    char *h = malloc(big);
    if (h) {
        memcpy(h, "HTTP/1.1 200 OK\r\nX: ", 20);
        memset(h + 20, 'a', big - 20);
        ctr__http1_reset(p);
        CHECK(ctr__http1_feed(p, h, big, &used) == CTR__HTTP1_ERROR);
        free(h);
    }
    free(p);
}

/* ---- schedules -------------------------------------------------------------- */

static void test_schedule(void)
{
    ctr__sched_t s, s2;
    ctr__sched_init(&s, CTR__ARRIVAL_CONSTANT, 3000, 1);
    for (uint64_t i = 0; i < 100000; i++) {
        uint64_t t = ctr__sched_next(&s);
        uint64_t want = (uint64_t)llround((double)i * 1e9 / 3000);
        if (t != want) {
            CHECKF(0, "constant: request %llu at %llu, want %llu", (unsigned long long)i,
                   (unsigned long long)t, (unsigned long long)want);
            break;
        }
    }
    /* Poisson: mean gap 1/rate, coefficient of variation 1, deterministic. */
    ctr__sched_init(&s, CTR__ARRIVAL_POISSON, 2000, 7);
    ctr__sched_init(&s2, CTR__ARRIVAL_POISSON, 2000, 7);
    const int n = 200000;
    double prev = 0, sum = 0, sum2 = 0;
    int same = 1;
    for (int i = 0; i < n + 1; i++) {
        uint64_t t = ctr__sched_next(&s);
        same &= t == ctr__sched_next(&s2);
        if (i) {
            double g = (double)t - prev;
            sum += g;
            sum2 += g * g;
        }
        prev = (double)t;
    }
    double mean = sum / n, sd = sqrt(sum2 / n - mean * mean);
    CHECKF(fabs(mean - 500000) < 0.01 * 500000, "poisson mean gap %.0f ns, want 500000", mean);
    CHECKF(fabs(sd / mean - 1) < 0.02, "poisson gap cv %.3f, want 1", sd / mean);
    CHECK(same);
    ctr__sched_init(&s2, CTR__ARRIVAL_POISSON, 2000, 8);
    ctr__sched_init(&s, CTR__ARRIVAL_POISSON, 2000, 7);
    ctr__sched_next(&s);
    ctr__sched_next(&s2);
    CHECK(ctr__sched_next(&s) != ctr__sched_next(&s2));

    uint64_t tr[3] = {0, 100, 1000};
    ctr__sched_init_trace(&s, tr, 3, 2.0);
    CHECK(ctr__sched_next(&s) == 0 && ctr__sched_next(&s) == 50 && ctr__sched_next(&s) == 500);
    CHECK(ctr__sched_next(&s) == CTR__SCHED_END);
}

/* ---- bodies ----------------------------------------------------------------- */

static json_t *body_json(const ctr__msg_t *m)
{
    size_t off = ctr__msg_body_off(m);
    json_error_t je;
    json_t *v = json_loadb(m->buf + off, m->len - off, 0, &je);
    CHECKF(v != NULL, "body is not JSON: %s", je.text);
    return v;
}

static int is_feature(const char *k)
{
    char *end;
    long n;
    if (k[0] == 'I') {
        n = strtol(k + 1, &end, 10);
        return !*end && n >= 1 && n <= 13;
    }
    if (k[0] == 'C') {
        n = strtol(k + 1, &end, 10);
        return !*end && n >= 1 && n <= 26;
    }
    return 0;
}

static int is_hex8(const char *s)
{
    if (strlen(s) != 8)
        return 0;
    for (int i = 0; i < 8; i++)
        if (!strchr("0123456789abcdef", s[i]))
            return 0;
    return 1;
}

static void test_bodies(void)
{
    char err[512];
    ctr__bodies_opts_t o;
    memset(&o, 0, sizeof o);
    o.protocol = CTR__PROTO_V1;
    o.examples = 4;
    o.synthetic = 50;
    o.seed = 3;
    ctr__msgset_t *s = NULL;
    CHECK(ctr__bodies_build(&o, stderr, &s, err, sizeof err) == 0);
    CHECK(s->n == 50 && s->examples == 200);
    CHECK(ctr__msgset_frame(s, "127.0.0.1:8080", "/v1/score", err, sizeof err) == 0);
    for (size_t i = 0; i < s->n; i++) {
        ctr__msg_t *m = &s->v[i];
        size_t off = ctr__msg_body_off(m);
        char cl[64];
        snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", m->len - off);
        CHECK(strstr(m->buf, cl) != NULL && !strncmp(m->buf, "POST /v1/score HTTP/1.1\r\n", 25));
        CHECK(m->id_off != CTR__NO_ID && !memcmp(m->buf + m->id_off, "0000000000000000", 16));
        json_t *v = body_json(m);
        if (!v)
            continue;
        CHECK(json_string_length(json_object_get(v, "request_id")) == 16);
        json_t *ex = json_object_get(v, "examples");
        CHECK(json_array_size(ex) == 4);
        size_t j;
        json_t *e;
        json_array_foreach(ex, j, e) {
            const char *k;
            json_t *x;
            json_object_foreach(e, k, x) {
                CHECKF(is_feature(k), "unexpected key %s", k);
                if (k[0] == 'I')
                    CHECK(json_is_integer(x) && json_integer_value(x) >= 0);
                else
                    CHECK(json_is_string(x) && is_hex8(json_string_value(x)));
            }
        }
        json_decref(v);
    }
    ctr__msgset_free(s);

    /* --model-name with v1: "model" leads each body (ctrd then finds it
     * without a scan), escaped, and the id slot still holds the id. */
    o.model_name = "beta \"2\"";
    CHECK(ctr__bodies_build(&o, stderr, &s, err, sizeof err) == 0);
    CHECK(ctr__msgset_frame(s, "h", "/v1/score", err, sizeof err) == 0);
    for (size_t i = 0; i < s->n; i++) {
        ctr__msg_t *m = &s->v[i];
        static const char lead[] = "{\"model\":\"beta \\\"2\\\"\",\"request_id\":\"";
        CHECKF(!strncmp(m->buf + ctr__msg_body_off(m), lead, sizeof lead - 1), "body %zu: %.60s", i,
               m->buf + ctr__msg_body_off(m));
        CHECK(m->id_off == ctr__msg_body_off(m) + sizeof lead - 1 &&
              !memcmp(m->buf + m->id_off, "0000000000000000", 16));
        json_t *v = body_json(m);
        if (!v)
            continue;
        CHECK(!strcmp(json_string_value(json_object_get(v, "model")), "beta \"2\""));
        CHECK(json_array_size(json_object_get(v, "examples")) == 4);
        json_decref(v);
    }
    ctr__msgset_free(s);
    o.model_name = NULL;

    /* Context split: shared user features move to "context", never repeat. */
    o.context_split = 1;
    CHECK(ctr__bodies_build(&o, stderr, &s, err, sizeof err) == 0);
    CHECK(ctr__msgset_frame(s, "h", "/v1/score", err, sizeof err) == 0);
    for (size_t i = 0; i < s->n; i++) {
        json_t *v = body_json(&s->v[i]);
        if (!v)
            continue;
        json_t *ctx = json_object_get(v, "context");
        CHECK(json_is_object(ctx) && json_object_get(ctx, "C1") && json_object_get(ctx, "C2"));
        size_t j;
        json_t *e;
        json_array_foreach(json_object_get(v, "examples"), j, e) {
            const char *k;
            json_t *x;
            json_object_foreach(ctx, k, x) CHECKF(!json_object_get(e, k), "%s in context and example", k);
        }
        json_decref(v);
    }
    ctr__msgset_free(s);

    /* v2: tensors of the right shapes; v2 has no context. */
    o.context_split = 0;
    o.protocol = CTR__PROTO_V2;
    CHECK(ctr__bodies_build(&o, stderr, &s, err, sizeof err) == 0);
    CHECK(ctr__msgset_frame(s, "h", "/v2/models/m/infer", err, sizeof err) == 0);
    json_t *v = body_json(&s->v[0]);
    if (v) {
        json_t *in = json_object_get(v, "inputs");
        json_t *dn = json_array_get(in, 0), *sp = json_array_get(in, 1);
        CHECK(!strcmp(json_string_value(json_object_get(dn, "datatype")), "FP32"));
        CHECK(json_integer_value(json_array_get(json_object_get(dn, "shape"), 0)) == 4);
        CHECK(json_integer_value(json_array_get(json_object_get(dn, "shape"), 1)) == 13);
        CHECK(json_array_size(json_object_get(dn, "data")) == 52);
        CHECK(json_array_size(json_object_get(sp, "data")) == 104);
        CHECK(!strcmp(json_string_value(json_object_get(sp, "datatype")), "BYTES"));
        json_decref(v);
    }
    ctr__msgset_free(s);
    o.context_split = 1;
    CHECK(ctr__bodies_build(&o, stderr, &s, err, sizeof err) == CTR_EINVAL);
    ctr__msgset_free(s);

    /* From a Criteo file: values as written, missing left out; three rows
     * at two per request make one request; a bad row names its line. */
    const char *dir = test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/rows.tsv", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    for (int r = 0; r < 3; r++) {
        fprintf(f, "%d", r & 1);
        for (int k = 1; k <= 13; k++) {
            if (k == 2 && r == 1)
                fprintf(f, "\t");
            else
                fprintf(f, "\t%d", r * 100 + k);
        }
        for (int j = 1; j <= 26; j++) {
            if (j == 5)
                fprintf(f, "\t");
            else
                fprintf(f, "\t%08x", (unsigned)(r * 1000 + j));
        }
        fprintf(f, "\n");
    }
    fclose(f);
    memset(&o, 0, sizeof o);
    o.protocol = CTR__PROTO_V1;
    o.examples = 2;
    o.data_path = path;
    o.format = CTR_DATA_CRITEO;
    CHECK(ctr__bodies_build(&o, stderr, &s, err, sizeof err) == 0);
    CHECK(s->n == 1);
    CHECK(ctr__msgset_frame(s, "h", "/v1/score", err, sizeof err) == 0);
    v = s->n ? body_json(&s->v[0]) : NULL;
    if (v) {
        json_t *e0 = json_array_get(json_object_get(v, "examples"), 0);
        json_t *e1 = json_array_get(json_object_get(v, "examples"), 1);
        CHECK(json_integer_value(json_object_get(e0, "I2")) == 2);
        CHECK(json_object_get(e1, "I2") == NULL && json_integer_value(json_object_get(e1, "I3")) == 103);
        CHECK(!strcmp(json_string_value(json_object_get(e1, "C26")), "00000402"));
        CHECK(json_object_get(e0, "C5") == NULL);
        json_decref(v);
    }
    ctr__msgset_free(s);
    f = fopen(path, "a");
    if (f) {
        fprintf(f, "1\t2\tthree\n");
        fclose(f);
    }
    err[0] = 0;
    CHECK(ctr__bodies_build(&o, stderr, &s, err, sizeof err) == CTR_EFORMAT);
    CHECKF(strstr(err, "rows.tsv:4") != NULL, "error does not name the line: %s", err);
    ctr__msgset_free(s);
    o.skip_bad = 1;
    CHECK(ctr__bodies_build(&o, NULL, &s, err, sizeof err) == 0 && s->n == 1);
    ctr__msgset_free(s);

    char id[CTR__ID_LEN];
    ctr__format_id(id, 0xabc);
    CHECK(!memcmp(id, "0000000000000abc", 16));
}

/* Distinct values of feature `name` over the examples of every request in s
 * (-1 if a body does not parse); *n_seen counts the examples that had it. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static long distinct_values(const ctr__msgset_t *s, const char *name, size_t *n_seen)
{
    size_t cap = (size_t)s->examples, n = 0;
    char **vals = calloc(cap ? cap : 1, sizeof *vals);
    *n_seen = 0;
    if (!vals)
        return -1;
    for (size_t i = 0; i < s->n; i++) {
        json_t *v = body_json(&s->v[i]);
        if (!v)
            continue;
        size_t j;
        json_t *e;
        json_array_foreach(json_object_get(v, "examples"), j, e) {
            const char *x = json_string_value(json_object_get(e, name));
            if (x && n < cap) {
                CHECKF(is_hex8(x), "%s = \"%s\" is not 8 hex digits", name, x);
                vals[n++] = strdup(x);
            }
        }
        json_decref(v);
    }
    qsort(vals, n, sizeof *vals, cmp_str);
    long d = 0;
    for (size_t i = 0; i < n; i++) {
        if (!i || strcmp(vals[i], vals[i - 1]))
            d++;
    }
    for (size_t i = 0; i < n; i++)
        free(vals[i]);
    free(vals);
    *n_seen = n;
    return d;
}

/* --synthetic-cats: zipf draws from small vocabularies (C1: 10 values), so
 * traffic hits a hot set of rows; uniform makes every value (and so every
 * table row) equally likely: about as many distinct values as examples. */
static void test_synthetic_cats(void)
{
    char err[512];
    ctr__bodies_opts_t o;
    memset(&o, 0, sizeof o);
    o.protocol = CTR__PROTO_V1;
    o.examples = 100;
    o.synthetic = 10;                          /* 1000 examples */
    o.seed = 5;
    long dz[2], du[2];
    size_t nz, nu;
    const char *feat[2] = {"C1", "C9"};        /* vocabularies of 10 and 52 */
    for (int f = 0; f < 2; f++) {
        ctr__msgset_t *s = NULL;
        o.synthetic_cats = CTR__CATS_ZIPF;
        CHECK(ctr__bodies_build(&o, stderr, &s, err, sizeof err) == 0 && s->examples == 1000);
        dz[f] = distinct_values(s, feat[f], &nz);
        ctr__msgset_free(s);
        o.synthetic_cats = CTR__CATS_UNIFORM;
        CHECK(ctr__bodies_build(&o, stderr, &s, err, sizeof err) == 0 && s->examples == 1000);
        du[f] = distinct_values(s, feat[f], &nu);
        ctr__msgset_free(s);
        printf("synthetic %s over 1000 examples: zipf %ld distinct of %zu, uniform %ld distinct of %zu\n",
               feat[f], dz[f], nz, du[f], nu);
        /* C1 and C9 are never missing: every example carries them. */
        CHECK(nz == 1000 && nu == 1000);
        /* 1000 draws from 2^32 values: a repeat has odds of about 1e-4. */
        CHECKF(du[f] >= 995, "uniform %s: %ld distinct values of 1000", feat[f], du[f]);
    }
    CHECKF(dz[0] <= 10, "zipf C1: %ld distinct values (vocabulary 10)", dz[0]);
    CHECKF(dz[1] <= 52, "zipf C9: %ld distinct values (vocabulary 52)", dz[1]);

    /* Uniform keeps the missing rates: C22 is missing ~76% of the time. */
    ctr__msgset_t *s = NULL;
    o.synthetic_cats = CTR__CATS_UNIFORM;
    CHECK(ctr__bodies_build(&o, stderr, &s, err, sizeof err) == 0);
    size_t n22;
    long d22 = distinct_values(s, "C22", &n22);
    CHECKF(n22 > 150 && n22 < 330, "uniform C22 present in %zu of 1000 examples (expected ~240)", n22);
    CHECK(d22 >= (long)n22 - 2);
    ctr__msgset_free(s);
}

/* ---- replay logs ------------------------------------------------------------ */

static void test_replay(void)
{
    const char *dir = test_tmpdir();
    char p1[512], p2[512], err[512];
    snprintf(p1, sizeof p1, "%s/a.jsonl", dir);
    snprintf(p2, sizeof p2, "%s/b.jsonl", dir);
    FILE *f = fopen(p1, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fprintf(f, "# comment\n"
               "{\"t_ns\": 300, \"request_id\": \"r3\", \"examples\": [{\"I1\": 3, \"C1\": \"68fd1e64\"}]}\n"
               "\n"
               "{\"t_ns\": 100, \"body\": {\"request_id\": \"r1\", \"examples\": [{\"I1\": 0.5}, {\"C2\": \"x\"}]}}\n");
    fclose(f);
    f = fopen(p2, "w");
    if (!f)
        return;
    fprintf(f, "{\"t_ns\": 200, \"examples\": [{\"I13\": 7}]}\n");
    fclose(f);
    const char *paths[2] = {p1, p2};
    ctr__msgset_t *s = NULL;
    int timed = 0;
    CHECK(ctr__replay_load(paths, 2, NULL, &timed, &s, err, sizeof err) == 0);
    CHECK(timed == 1 && s->n == 3);
    if (s->n == 3) {
        /* Ordered by time across files; t_ns taken out; bodies otherwise kept. */
        CHECK(s->v[0].t_ns == 100 && s->v[1].t_ns == 200 && s->v[2].t_ns == 300);
        CHECK(s->v[0].n_examples == 2 && s->v[0].id_off == CTR__NO_ID);
        json_error_t je;
        json_t *got = json_loadb(s->v[2].buf, s->v[2].len, 0, &je);
        json_t *want = json_loads("{\"request_id\": \"r3\", \"examples\": [{\"I1\": 3, \"C1\": \"68fd1e64\"}]}", 0, &je);
        CHECK(got && want && json_equal(got, want));
        CHECK(!strstr(s->v[2].buf, "t_ns"));
        json_decref(got);
        json_decref(want);
    }
    ctr__msgset_free(s);

    /* Without t_ns a line is sent byte for byte. */
    f = fopen(p2, "w");
    if (!f)
        return;
    fprintf(f, "{\"examples\":[{\"I1\":1.10}],  \"request_id\":\"v\"}\n");
    fclose(f);
    CHECK(ctr__replay_load(paths + 1, 1, "jsonl", &timed, &s, err, sizeof err) == 0);
    CHECK(timed == 0 && s->n == 1 && s->v[0].len == 45 &&
          !memcmp(s->v[0].buf, "{\"examples\":[{\"I1\":1.10}],  \"request_id\":\"v\"}", 45));
    ctr__msgset_free(s);

    /* Bad lines say where. */
    f = fopen(p2, "w");
    if (!f)
        return;
    fprintf(f, "{\"examples\":[]}\n{\"examples\": [}\n");
    fclose(f);
    CHECK(ctr__replay_load(paths + 1, 1, NULL, &timed, &s, err, sizeof err) == CTR_EFORMAT);
    CHECKF(strstr(err, "b.jsonl:2") != NULL, "%s", err);
    ctr__msgset_free(s);
    f = fopen(p2, "w");
    if (!f)
        return;
    fprintf(f, "{\"t_ns\": -5, \"examples\":[]}\n");
    fclose(f);
    CHECK(ctr__replay_load(paths + 1, 1, NULL, &timed, &s, err, sizeof err) == CTR_EFORMAT);
    ctr__msgset_free(s);
    f = fopen(p2, "w");
    if (!f)
        return;
    fprintf(f, "{\"no_examples\": 1}\n");
    fclose(f);
    CHECK(ctr__replay_load(paths + 1, 1, NULL, &timed, &s, err, sizeof err) == CTR_EFORMAT);
    ctr__msgset_free(s);
    CHECK(ctr__replay_load(paths + 1, 1, "nope", &timed, &s, err, sizeof err) == CTR_EINVAL);
    ctr__msgset_free(s);
}

/* Removes this test's scratch directory and its files. */
static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tmpdir(void)
{
    nftw(test_tmpdir(), rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    test_hist();
    test_http1();
    test_schedule();
    test_bodies();
    test_synthetic_cats();
    test_replay();
    rm_tmpdir();
    return test_main_end();
}
