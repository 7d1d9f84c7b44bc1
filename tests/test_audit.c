/* test_audit.c - the audit log format (model/crc32c.c, model/audit_record.c,
 * model/audit_read.c): CRC32C, segment header, record round trip of every
 * field, a flipped bit anywhere is caught, truncation at every byte of the
 * last record reads as a torn tail, and hostile input (random mutations,
 * payloads with valid CRCs but garbage inside, the fuzz seed corpus) never
 * crashes the reader.
 *
 *     test_audit                  the tests
 *     test_audit --write-corpus   (re)write tests/fuzz/corpus/audit_reader */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>

#include "../server/decode.h"
#include "crc32c_int.h"
#include "ctr/audit.h"
#include "ctr/common.h"
#include "ctr/features.h"
#include "model_int.h"
#include "audit_seg.h"
#include "testutil.h"

#define CORPUS "tests/fuzz/corpus/audit_reader"

/* ---- generated records ------------------------------------------------ */

typedef struct {
    ctr_audit_input_t in;
    double *dense;
    uint32_t *off;
    uint8_t *len;
    char *bytes;
    float *scores;
    char id[CTR_AUDIT_REQUEST_ID_MAX + 1];
} gen_rec_t;

static double rnd_dense(test_rng_t *r)
{
    static const double special[] = {
        0.0, -0.0, 1.0, 127.0, 128.0, -1.0, -128.0, 9007199254740992.0, -9007199254740992.0,
        9007199254740994.0, 1e300, -1e-300, 4.9e-324, 0.1, 1.5, 65535.0, 1e15, INFINITY, -INFINITY,
    };
    uint64_t k = test_rng_next(r) % 10;
    if (k == 0)
        return NAN;
    if (k == 1)
        return special[test_rng_next(r) % CTR_ARRAY_LEN(special)];
    if (k <= 5)
        return (double)(int64_t)(test_rng_next(r) % 300) - 50;
    if (k == 6)
        return (double)((int64_t)(test_rng_next(r) >> 12) - ((int64_t)1 << 51));
    if (k == 7) {
        double v;
        uint64_t bits = test_rng_next(r);
        memcpy(&v, &bits, 8);
        return isnan(v) ? 2.5 : v;
    }
    return (double)test_rng_uniform(r, -1000, 1000);
}

/* A random record of n examples; with shared, some columns are the same
 * in every example (a request "context"). */
static void gen_record(gen_rec_t *g, test_rng_t *r, size_t n, size_t nd, size_t nc, int shared)
{
    memset(g, 0, sizeof *g);
    g->dense = malloc((n * nd + 1) * sizeof *g->dense);
    g->off = malloc((n * nc + 1) * sizeof *g->off);
    g->len = malloc(n * nc + 1);
    g->bytes = malloc(n * nc * CTR_AUDIT_CAT_MAX + 1);
    g->scores = malloc(n * sizeof *g->scores);
    CTR_ASSERT(g->dense && g->off && g->len && g->bytes && g->scores);
    size_t used = 0;
    uint8_t *col_shared = calloc(nd + nc + 1, 1);
    for (size_t c = 0; c < nd + nc; c++)
        col_shared[c] = shared && test_rng_next(r) % 3 == 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < nd; j++)
            g->dense[i * nd + j] = (i > 0 && col_shared[j]) ? g->dense[j] : rnd_dense(r);
        for (size_t j = 0; j < nc; j++) {
            size_t k = i * nc + j;
            if (i > 0 && col_shared[nd + j]) {
                g->off[k] = g->off[j];
                g->len[k] = g->len[j];
                continue;
            }
            uint64_t kind = test_rng_next(r) % 8;
            if (kind == 0) {
                g->off[k] = 0;
                g->len[k] = CTR_AUDIT_CAT_MISSING;
                continue;
            }
            size_t l = kind == 1 ? 0 : kind == 2 ? CTR_AUDIT_CAT_MAX : kind == 3 ? 64 : 1 + test_rng_next(r) % 12;
            g->off[k] = (uint32_t)used;
            g->len[k] = (uint8_t)l;
            for (size_t b = 0; b < l; b++)
                g->bytes[used++] = kind == 4 ? (char)(test_rng_next(r) & 0xff) : "0123456789abcdef"[test_rng_next(r) % 16];
        }
        uint32_t bits = (uint32_t)test_rng_next(r);
        if (i % 2)
            g->scores[i] = test_rng_uniform(r, 0, 1);
        else
            memcpy(&g->scores[i], &bits, 4);  /* any bits, NaNs included */
    }
    free(col_shared);
    size_t idl = test_rng_next(r) % 4 == 0 ? CTR_AUDIT_REQUEST_ID_MAX : test_rng_next(r) % 40;
    for (size_t b = 0; b < idl; b++)
        g->id[b] = (char)(' ' + test_rng_next(r) % 95);
    ctr_audit_input_t *in = &g->in;
    in->seq = test_rng_next(r);
    in->t_received_ns = test_rng_next(r);
    in->t_scored_ns = test_rng_next(r);
    in->generation = test_rng_next(r) % 5;
    for (int b = 0; b < 32; b++)
        in->digest[b] = (uint8_t)test_rng_next(r);
    in->kernel_id = (unsigned)(test_rng_next(r) % 4);
    in->bit_exact = in->kernel_id != 3;
    in->client_request_id = (int)(test_rng_next(r) & 1);
    in->request_id = g->id;
    in->request_id_len = idl;
    in->n = n;
    in->n_dense = nd;
    in->n_cat = nc;
    in->dense_raw = g->dense;
    in->cat_off = g->off;
    in->cat_len = g->len;
    in->cat_bytes = g->bytes;
    in->scores = g->scores;
}

static void gen_free(gen_rec_t *g)
{
    free(g->dense);
    free(g->off);
    free(g->len);
    free(g->bytes);
    free(g->scores);
}

/* Every field of rec equals in. */
static int rec_matches(const ctr_audit_record_t *rec, const ctr_audit_input_t *in)
{
    return audit_rec_fields_match(rec, in) && rec->request_id[rec->request_id_len] == '\0';
}

/* ---- a segment in memory -------------------------------------------- */

static void seg_header(seg_t *s)
{
    ctr_audit_segment_t h;
    memset(&h, 0, sizeof h);
    h.version = CTR_AUDIT_FORMAT_VERSION;
    h.durability = 1;
    h.server_start_ns = 1700000000123456789ull;
    h.created_ns = 1700000001000000000ull;
    h.segment_index = 3;
    h.first_seq = 41;
    h.pid = 4242;
    snprintf(h.host, sizeof h.host, "host-%s", "test");
    snprintf(h.version_str, sizeof h.version_str, "0.1.0");
    uint8_t buf[CTR_AUDIT_SEGMENT_HEADER_BYTES];
    ctr_audit_segment_encode(&h, buf);
    seg_put(s, buf, sizeof buf);
}

typedef struct {
    size_t records, corrupt, torn, events;
    int last_torn;     /* TORN was the last event */
    uint64_t rec_offsets[64];
} scan_t;

/* Reads buf to the end; checks accessors of every record on the way. */
static int scan(const void *buf, size_t len, scan_t *out)
{
    memset(out, 0, sizeof *out);
    ctr_audit_reader_t *r;
    char err[256];
    int rc = ctr_audit_reader_open_mem(buf, len, &r, err, sizeof err);
    if (rc)
        return rc;
    ctr_audit_record_t rec;
    ctr_audit_span_t span;
    ctr_audit_event_t ev;
    size_t guard = 0;
    while ((ev = ctr_audit_reader_next(r, &rec, &span)) != CTR_AUDIT_END) {
        CTR_ASSERT(++guard < 1000000);
        out->events++;
        out->last_torn = ev == CTR_AUDIT_TORN;
        if (ev == CTR_AUDIT_RECORD) {
            if (out->records < 64)
                out->rec_offsets[out->records] = rec.offset;
            out->records++;
            /* Touch every value: ASan sees any read out of bounds. */
            volatile double sink = 0;
            for (size_t i = 0; i < rec.n; i++) {
                sink += rec.scores[i];
                for (size_t j = 0; j < rec.n_dense; j++)
                    sink += ctr_audit_record_dense(&rec, i, j);
                for (size_t j = 0; j < rec.n_cat; j++) {
                    const char *b;
                    size_t l;
                    if (ctr_audit_record_cat(&rec, i, j, &b, &l) && l)
                        sink += (unsigned char)b[l - 1];
                }
            }
            (void)sink;
        } else if (ev == CTR_AUDIT_CORRUPT) {
            out->corrupt++;
            CTR_ASSERT(span.offset + span.bytes <= len && span.bytes > 0);
        } else {
            out->torn++;
            CTR_ASSERT(span.offset + span.bytes == len);
        }
    }
    CTR_ASSERT(ctr_audit_reader_next(r, &rec, &span) == CTR_AUDIT_END);
    ctr_audit_reader_close(r);
    return 0;
}

/* ---- tests ---------------------------------------------------------- */

static void test_crc(test_rng_t *rng)
{
    const char *v = "123456789";
    CHECK(ctr__crc32c_sw(0, v, 9) == 0xE3069283u);
    CHECK(ctr__crc32c(0, v, 9) == 0xE3069283u);
    CHECK(ctr__crc32c(0, "", 0) == 0);
    uint8_t zeros[32] = {0};
    CHECK(ctr__crc32c_sw(0, zeros, 32) == 0x8A9136AAu);   /* RFC 3720 B.4 */
    uint8_t ones[32];
    memset(ones, 0xff, 32);
    CHECK(ctr__crc32c_sw(0, ones, 32) == 0x62A8AB43u);
    uint8_t buf[1024];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)test_rng_next(rng);
    /* Continuation: crc(a || b) == crc(crc(a), b). */
    CHECK(ctr__crc32c(ctr__crc32c(0, buf, 100), buf + 100, 900) == ctr__crc32c(0, buf, 1000));
    if (ctr__crc32c_hw_available()) {
        int same = 1;
        for (int t = 0; t < 2000; t++) {
            size_t off = test_rng_next(rng) % 64, len = test_rng_next(rng) % (sizeof buf - 64);
            uint32_t seed = (uint32_t)test_rng_next(rng);
            same &= ctr__crc32c_hw(seed, buf + off, len) == ctr__crc32c_sw(seed, buf + off, len);
        }
        CHECKF(same, "SSE4.2 and table CRC32C differ");
        CHECK(!strcmp(ctr__crc32c_impl(), "sse4.2"));
    } else {
        CHECK(!strcmp(ctr__crc32c_impl(), "table"));
    }
    printf("crc32c: %s\n", ctr__crc32c_impl());
}

static void test_segment_header(void)
{
    seg_t s = {0};
    seg_header(&s);
    ctr_audit_segment_t h;
    char err[160];
    CHECK(ctr_audit_segment_decode(s.p, s.n, &h, err, sizeof err) == 0);
    CHECK(h.version == 1 && h.durability == 1 && h.server_start_ns == 1700000000123456789ull &&
          h.created_ns == 1700000001000000000ull && h.segment_index == 3 && h.first_seq == 41 &&
          h.pid == 4242 && !strcmp(h.host, "host-test") && !strcmp(h.version_str, "0.1.0"));
    /* Every flipped bit is refused. */
    int all = 1;
    for (size_t bit = 0; bit < CTR_AUDIT_SEGMENT_HEADER_BYTES * 8; bit++) {
        s.p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        all &= ctr_audit_segment_decode(s.p, s.n, &h, err, sizeof err) != 0;
        s.p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    CHECKF(all, "a flipped bit in the segment header went unnoticed");
    CHECK(ctr_audit_segment_decode(s.p, 159, &h, err, sizeof err) == CTR_EFORMAT);
    /* Version 2 with a good CRC: refused as a version, not as damage. */
    s.p[8] = 2;
    uint32_t c = ctr__crc32c(0, s.p, 156);
    memcpy(s.p + 156, &c, 4);
    CHECK(ctr_audit_segment_decode(s.p, s.n, &h, err, sizeof err) == CTR_EVERSION);
    /* A file cut inside its header is a torn tail; other magic is refused. */
    scan_t sc;
    CHECK(scan(s.p, 100, &sc) == 0 && sc.torn == 1 && sc.records == 0);
    CHECK(scan(s.p, 0, &sc) == 0 && sc.torn == 1);
    CHECK(scan("GARBAGE!GARBAGE!", 16, &sc) == CTR_EFORMAT);
    free(s.p);
}

static void test_round_trip(test_rng_t *rng)
{
    static const size_t ns[] = {1, 1, 2, 3, 7, 64};
    static const size_t shapes[][2] = {{13, 26}, {0, 3}, {4, 0}, {1, 1}, {40, 2}};
    size_t n_ok = 0, n_total = 0, bytes = 0, examples = 0;
    for (int t = 0; t < 300; t++) {
        size_t n = ns[t % CTR_ARRAY_LEN(ns)];
        const size_t *sh = shapes[(t / 6) % CTR_ARRAY_LEN(shapes)];
        gen_rec_t g;
        gen_record(&g, rng, n, sh[0], sh[1], t % 2);
        seg_t s = {0};
        seg_header(&s);
        seg_record(&s, &g.in);
        ctr_audit_reader_t *r;
        char err[160];
        CHECK(ctr_audit_reader_open_mem(s.p, s.n, &r, err, sizeof err) == 0);
        ctr_audit_record_t rec;
        ctr_audit_span_t span;
        int ev = ctr_audit_reader_next(r, &rec, &span);
        n_total++;
        if (ev == CTR_AUDIT_RECORD && rec_matches(&rec, &g.in) && rec.offset == CTR_AUDIT_SEGMENT_HEADER_BYTES &&
            rec.size == s.n - CTR_AUDIT_SEGMENT_HEADER_BYTES)
            n_ok++;
        else
            fprintf(stderr, "round trip %d (n=%zu) failed: event %d %s\n", t, n, ev,
                    ev == CTR_AUDIT_RECORD ? "" : span.why);
        CHECK(ctr_audit_reader_next(r, &rec, &span) == CTR_AUDIT_END);
        ctr_audit_reader_close(r);
        if (sh[0] == 13 && sh[1] == 26) {
            bytes += s.n - CTR_AUDIT_SEGMENT_HEADER_BYTES;
            examples += n;
        }
        free(s.p);
        gen_free(&g);
    }
    CHECKF(n_ok == n_total, "%zu of %zu records round-tripped", n_ok, n_total);
    printf("round trip: %zu records, every field equal; random 13+26 records: %.1f bytes/example\n",
           n_total, (double)bytes / (double)examples);

    /* Limits the encoder refuses rather than writing a record no reader takes. */
    gen_rec_t g;
    gen_record(&g, rng, 1, 2, 2, 0);
    g.in.request_id_len = CTR_AUDIT_REQUEST_ID_MAX + 1;
    CHECK(ctr_audit_record_size(&g.in) == 0);
    g.in.request_id_len = 3;
    g.len[0] = CTR_AUDIT_CAT_MAX;
    CHECK(ctr_audit_record_size(&g.in) > 0);
    g.len[0] = CTR_AUDIT_CAT_MAX + 1;
    CHECK(ctr_audit_record_size(&g.in) == 0);
    g.len[0] = CTR_AUDIT_CAT_MAX;
    uint8_t small[8];
    CHECK(ctr_audit_record_encode(&g.in, small, sizeof small) == 0);
    /* A size that is not the record's is refused, never overrun. */
    size_t sz = ctr_audit_record_size(&g.in);
    uint8_t *big = malloc(sz + 1);
    CHECK(ctr_audit_record_encode(&g.in, big, sz + 1) == 0);
    for (size_t cut = 1; cut < 200 && cut < sz; cut++) {
        uint8_t *exact = malloc(sz - cut);   /* ASan sees any write past it */
        CHECK(ctr_audit_record_encode(&g.in, exact, sz - cut) == 0);
        free(exact);
    }
    CHECK(ctr_audit_record_encode(&g.in, big, sz) == sz);
    free(big);
    g.in.n = 0;
    CHECK(ctr_audit_record_size(&g.in) == 0);
    gen_free(&g);
}

/* Criteo-shaped records: what a real deployment logs per example. */
static void test_compactness(test_rng_t *rng)
{
    size_t nd = 13, nc = 26, total = 0, ex = 0, total64 = 0, ex64 = 0;
    for (int t = 0; t < 200; t++) {
        size_t n = t < 100 ? 1 : 64;
        double *dense = malloc(n * nd * sizeof *dense);
        uint32_t *off = malloc(n * nc * sizeof *off);
        uint8_t *len = malloc(n * nc);
        char *bytes = malloc(n * nc * 8);
        float *scores = malloc(n * sizeof *scores);
        size_t used = 0;
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < nd; j++) {
                uint64_t k = test_rng_next(rng) % 10;
                dense[i * nd + j] = k < 2 ? NAN : (double)(test_rng_next(rng) % (k < 7 ? 100 : 5000));
            }
            for (size_t j = 0; j < nc; j++) {
                size_t k = i * nc + j;
                /* Half the features describe the user and repeat in a ranking request. */
                if (i > 0 && j < 13) {
                    off[k] = off[j];
                    len[k] = len[j];
                    continue;
                }
                if (test_rng_next(rng) % 10 == 0) {
                    len[k] = CTR_AUDIT_CAT_MISSING;
                    off[k] = 0;
                    continue;
                }
                off[k] = (uint32_t)used;
                len[k] = 8;
                for (int b = 0; b < 8; b++)
                    bytes[used++] = "0123456789abcdef"[test_rng_next(rng) % 16];
            }
            scores[i] = test_rng_uniform(rng, 0, 1);
        }
        ctr_audit_input_t in = {
            .seq = (uint64_t)t + 1, .t_received_ns = 1, .t_scored_ns = 2, .generation = 1,
            .kernel_id = 2, .bit_exact = 1, .request_id = "8f3a2b1c-000000000001",
            .request_id_len = 21, .n = n, .n_dense = nd, .n_cat = nc, .dense_raw = dense,
            .cat_off = off, .cat_len = len, .cat_bytes = bytes, .scores = scores,
        };
        size_t s = ctr_audit_record_size(&in);
        CHECK(s > 0);
        if (n == 1) {
            total += s;
            ex += n;
        } else {
            total64 += s;
            ex64 += n;
        }
        free(dense);
        free(off);
        free(len);
        free(bytes);
        free(scores);
    }
    double one = (double)total / (double)ex, many = (double)total64 / (double)ex64;
    printf("compactness (13 dense, 26 categorical of 8 bytes, 10-20%% missing): "
           "%.1f bytes/example at 1 example/request, %.1f at 64 with 13 shared user features\n", one, many);
    /* Raw doubles + 8-byte strings alone are 13*8 + 26*9 + 4 = 342. */
    CHECKF(one < 280 && many < 150, "records grew: %.1f / %.1f bytes per example", one, many);
}

/* Three records; a flipped bit anywhere in one of them makes exactly that
 * record CORRUPT, never TORN, and leaves the others readable. */
static void test_bit_flips(test_rng_t *rng)
{
    gen_rec_t g[3];
    seg_t s = {0};
    seg_header(&s);
    for (int i = 0; i < 3; i++) {
        gen_record(&g[i], rng, (size_t)(1 + i), 5, 6, 1);
        seg_record(&s, &g[i].in);
    }
    scan_t sc;
    CHECK(scan(s.p, s.n, &sc) == 0 && sc.records == 3 && sc.corrupt == 0 && sc.torn == 0);
    size_t flips = 0, bad = 0;
    for (int victim = 0; victim < 3; victim++) {
        size_t beg = s.rec_off[victim], end = victim < 2 ? s.rec_off[victim + 1] : s.n;
        for (size_t byte = beg; byte < end; byte++)
            for (int bit = 0; bit < 8; bit++) {
                s.p[byte] ^= (uint8_t)(1u << bit);
                int rc = scan(s.p, s.n, &sc);
                flips++;
                int ok = rc == 0 && sc.records == 2 && sc.corrupt >= 1 && sc.torn == 0;
                for (size_t k = 0; ok && k < 2; k++)
                    ok = sc.rec_offsets[k] != beg;
                if (!ok) {
                    if (bad++ < 5)
                        fprintf(stderr, "flip record %d byte %zu bit %d: rc %d, %zu records, %zu corrupt, %zu torn\n",
                                victim, byte - beg, bit, rc, sc.records, sc.corrupt, sc.torn);
                }
                s.p[byte] ^= (uint8_t)(1u << bit);
            }
    }
    CHECKF(bad == 0, "%zu of %zu flipped bits misread", bad, flips);
    printf("bit flips: %zu flipped bits, each caught as a corrupt record, the other records intact\n", flips);
    free(s.p);
    for (int i = 0; i < 3; i++)
        gen_free(&g[i]);
}

/* Cutting the file at every byte inside its last record leaves the others
 * readable and reports one torn tail, never a corrupt record. */
static void test_truncation(test_rng_t *rng)
{
    gen_rec_t g[3];
    seg_t s = {0};
    seg_header(&s);
    for (int i = 0; i < 3; i++) {
        gen_record(&g[i], rng, (size_t)(2 + i), 13, 26, 1);
        seg_record(&s, &g[i].in);
    }
    size_t last = s.rec_off[2], cuts = 0, bad = 0;
    for (size_t cut = last; cut <= s.n; cut++) {
        scan_t sc;
        int rc = scan(s.p, cut, &sc);
        cuts++;
        int want_torn = cut != last && cut != s.n;
        int ok = rc == 0 && sc.corrupt == 0 && sc.records == (cut == s.n ? 3u : 2u) &&
                 sc.torn == (size_t)want_torn && (!want_torn || sc.last_torn);
        if (!ok && bad++ < 5)
            fprintf(stderr, "cut at %zu of %zu: rc %d, %zu records, %zu corrupt, %zu torn\n", cut - last,
                    s.n - last, rc, sc.records, sc.corrupt, sc.torn);
    }
    CHECKF(bad == 0, "%zu of %zu truncations misread", bad, cuts);
    /* A crash that left a zero-filled tail (size extended, data not written). */
    size_t n0 = s.n;
    uint8_t zeros[300] = {0};
    seg_put(&s, zeros, sizeof zeros);
    scan_t sc;
    CHECK(scan(s.p, s.n, &sc) == 0 && sc.records == 3 && sc.torn == 1 && sc.corrupt == 0);
    /* Garbage after the last record is corruption, not a torn tail. */
    memset(s.p + n0, 0x5a, 40);
    CHECK(scan(s.p, n0 + 40, &sc) == 0 && sc.records == 3 && sc.corrupt == 1 && sc.torn == 0);
    printf("truncation: %zu cuts inside the last record, each a torn tail\n", cuts);
    free(s.p);
    for (int i = 0; i < 3; i++)
        gen_free(&g[i]);
}

/* Garbage that passes the CRCs: payload bytes mutated, then the frame
 * fixed up, so the decoder's own checks are what stands. */
static void refix_frame(uint8_t *f, size_t plen)
{
    uint32_t c = ctr__crc32c(0, f + CTR_AUDIT_FRAME_BYTES, plen);
    for (int i = 0; i < 4; i++)
        f[12 + i] = (uint8_t)(c >> (8 * i));
}

static size_t mutate(test_rng_t *r, const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    if (n > cap)
        n = cap;
    memcpy(out, in, n);
    int ops = 1 + (int)(test_rng_next(r) % 4);
    for (int o = 0; o < ops && n > 0; o++) {
        size_t at = test_rng_next(r) % n;
        switch (test_rng_next(r) % 5) {
        case 0: out[at] ^= (uint8_t)(1u << (test_rng_next(r) % 8)); break;
        case 1: out[at] = (uint8_t)test_rng_next(r); break;
        case 2: n = at; break;
        case 3: {   /* an interesting value into a length or count field */
            static const uint8_t vals[] = {0, 1, 0x7f, 0x80, 0x81, 0x82, 0xfe, 0xff};
            out[at] = vals[test_rng_next(r) % sizeof vals];
            break;
        }
        default:
            if (n + 8 <= cap) {
                memmove(out + at + 8, out + at, n - at);
                for (int k = 0; k < 8; k++)
                    out[at + k] = (uint8_t)test_rng_next(r);
                n += 8;
            }
        }
    }
    return n;
}

static void test_hostile(test_rng_t *rng)
{
    gen_rec_t g[4];
    seg_t s = {0};
    seg_header(&s);
    for (int i = 0; i < 4; i++) {
        gen_record(&g[i], rng, (size_t)(1 + 3 * i), 4, 5, 1);
        seg_record(&s, &g[i].in);
    }
    size_t cap = s.n + 256;
    uint8_t *buf = malloc(cap);
    size_t runs = 0, crc_valid = 0, decoded = 0;
    for (int t = 0; t < 20000; t++) {
        size_t n = mutate(rng, s.p, s.n, buf, cap);
        if (t % 2) {
            /* Keep the frames valid so the payload decoder sees the garbage. */
            for (size_t k = 0; k < s.n_rec; k++) {
                size_t off = s.rec_off[k];
                size_t plen = (k + 1 < s.n_rec ? s.rec_off[k + 1] : s.n) - off - CTR_AUDIT_FRAME_BYTES;
                if (off + CTR_AUDIT_FRAME_BYTES + plen <= n) {
                    memcpy(buf + off, s.p + off, 12);   /* magic, length, header CRC */
                    refix_frame(buf + off, plen);
                }
            }
            crc_valid++;
        }
        scan_t sc;
        scan(buf, n, &sc);
        decoded += sc.records;
        runs++;
    }
    /* Payloads of random bytes behind valid frames. */
    for (int t = 0; t < 5000; t++) {
        size_t plen = CTR_AUDIT_FIXED_BYTES + test_rng_next(rng) % 200;
        seg_t z = {0};
        seg_header(&z);
        uint8_t f[CTR_AUDIT_FRAME_BYTES + 300];
        for (size_t i = 0; i < plen; i++)
            f[CTR_AUDIT_FRAME_BYTES + i] = (uint8_t)test_rng_next(rng);
        f[CTR_AUDIT_FRAME_BYTES] = 1;     /* type */
        f[CTR_AUDIT_FRAME_BYTES + 2] &= 7;
        f[CTR_AUDIT_FRAME_BYTES + 4 + 1] = f[CTR_AUDIT_FRAME_BYTES + 4 + 2] = f[CTR_AUDIT_FRAME_BYTES + 4 + 3] = 0;
        f[CTR_AUDIT_FRAME_BYTES + 9] = f[CTR_AUDIT_FRAME_BYTES + 11] = 0;
        uint32_t magic = CTR_AUDIT_RECORD_MAGIC, pl = (uint32_t)plen;
        for (int i = 0; i < 4; i++) {
            f[i] = (uint8_t)(magic >> (8 * i));
            f[4 + i] = (uint8_t)(pl >> (8 * i));
        }
        uint32_t hc = ctr__crc32c(0, f, 8);
        for (int i = 0; i < 4; i++)
            f[8 + i] = (uint8_t)(hc >> (8 * i));
        refix_frame(f, plen);
        seg_put(&z, f, CTR_AUDIT_FRAME_BYTES + plen);
        scan_t sc;
        CHECK(scan(z.p, z.n, &sc) == 0 && sc.events == 1);
        decoded += sc.records;
        free(z.p);
        runs++;
    }
    printf("hostile input: %zu files read without a crash (%zu with valid frames over garbage), "
           "%zu records decoded\n", runs, crc_valid + 5000, decoded);
    free(buf);
    free(s.p);
    for (int i = 0; i < 4; i++)
        gen_free(&g[i]);
}

/* The reader on a file: read(), not mmap, and a directory or missing file
 * is an error, not a crash. */
static void test_file(test_rng_t *rng)
{
    char path[512];
    snprintf(path, sizeof path, "%s/seg.audit", test_tmpdir());
    gen_rec_t g;
    gen_record(&g, rng, 3, 13, 26, 1);
    seg_t s = {0};
    seg_header(&s);
    seg_record(&s, &g.in);
    seg_record(&s, &g.in);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(s.p, 1, s.n, f) == s.n && fclose(f) == 0);
    ctr_audit_reader_t *r;
    char err[256];
    CHECK(ctr_audit_reader_open(path, &r, err, sizeof err) == 0);
    const ctr_audit_segment_t *h = ctr_audit_reader_segment(r);
    CHECK(h->segment_index == 3 && h->pid == 4242 && ctr_audit_reader_header_status(r) == 0);
    ctr_audit_record_t rec;
    int n = 0;
    while (ctr_audit_reader_next(r, &rec, NULL) == CTR_AUDIT_RECORD)
        n += rec_matches(&rec, &g.in);
    CHECK(n == 2);
    ctr_audit_reader_close(r);
    CHECK(ctr_audit_reader_open(test_tmpdir(), &r, err, sizeof err) == CTR_EIO);
    snprintf(path, sizeof path, "%s/missing.audit", test_tmpdir());
    CHECK(ctr_audit_reader_open(path, &r, err, sizeof err) == CTR_EIO);
    free(s.p);
    gen_free(&g);

    uint8_t d[32], d2[32];
    for (int i = 0; i < 32; i++)
        d[i] = (uint8_t)(i * 37);
    char str[72];
    ctr_audit_digest_str(d, str);
    CHECK(strlen(str) == 71 && ctr_audit_digest_parse(str, d2) == 0 && !memcmp(d, d2, 32));
    CHECK(ctr_audit_digest_parse("sha256:zz", d2) == CTR_EINVAL);
    /* Upper-case digits and the bare 64 digits are accepted too. */
    for (char *c = str + 7; *c; c++)
        *c = (char)(*c >= 'a' && *c <= 'f' ? *c - 'a' + 'A' : *c);
    memset(d2, 0, sizeof d2);
    CHECK(ctr_audit_digest_parse(str, d2) == 0 && !memcmp(d, d2, 32));
    memset(d2, 0, sizeof d2);
    CHECK(ctr_audit_digest_parse(str + 7, d2) == 0 && !memcmp(d, d2, 32));
    str[70] = 'g';
    CHECK(ctr_audit_digest_parse(str, d2) == CTR_EINVAL);
    CHECK(!strcmp(ctr_audit_kernel_name(2), "avx512") && !strcmp(ctr_audit_kernel_name(99), "unknown"));
}

/* ---- corpus ----------------------------------------------------------- */

static int write_corpus(void)
{
    test_rng_t rng = {20261124};
    mkdir("tests/fuzz", 0755);
    mkdir("tests/fuzz/corpus", 0755);
    if (mkdir(CORPUS, 0755) && errno != EEXIST) {
        perror(CORPUS);
        return 1;
    }
    int count = 0;
    for (int i = 0; i < 16; i++) {
        gen_rec_t g[3];
        seg_t s = {0};
        seg_header(&s);
        int nrec = 1 + i % 3;
        for (int k = 0; k < nrec; k++) {
            gen_record(&g[k], &rng, (size_t)(1 + (i + k) % 4), 3, 4, i % 2);
            seg_record(&s, &g[k].in);
        }
        size_t n = s.n;
        uint8_t out[8192];
        const char *kind = "ok";
        if (i >= 8 && i < 12) {
            n = mutate(&rng, s.p, s.n, out, sizeof out);
            memcpy(s.p, out, n < s.n ? n : s.n);
            kind = "mut";
        } else if (i >= 12) {
            n = s.rec_off[s.n_rec - 1] + (s.n - s.rec_off[s.n_rec - 1]) / 2;
            kind = "torn";
        }
        char path[512];
        snprintf(path, sizeof path, "%s/seg-%02d-%s", CORPUS, i, kind);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(s.p, 1, n, f) != n || fclose(f)) {
            perror(path);
            return 1;
        }
        count++;
        if (i < 4) {
            /* A bare payload: the fuzz target also decodes its input as one. */
            size_t off = s.rec_off[0] + CTR_AUDIT_FRAME_BYTES;
            size_t end = s.n_rec > 1 ? s.rec_off[1] : s.n;
            snprintf(path, sizeof path, "%s/payload-%02d", CORPUS, i);
            f = fopen(path, "wb");
            if (!f || fwrite(s.p + off, 1, end - off, f) != end - off || fclose(f)) {
                perror(path);
                return 1;
            }
            count++;
        }
        free(s.p);
        for (int k = 0; k < nrec; k++)
            gen_free(&g[k]);
    }
    printf("wrote %d files to %s\n", count, CORPUS);
    return 0;
}

static void test_corpus(void)
{
    DIR *d = opendir(CORPUS);
    CHECKF(d != NULL, "%s missing (run from the repository root)", CORPUS);
    if (!d)
        return;
    struct dirent *e;
    int files = 0, ok_files = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", CORPUS, e->d_name);
        ctr_audit_reader_t *r;
        char err[256];
        files++;
        if (!strncmp(e->d_name, "payload-", 8)) {
            /* A bare record payload: decodes on its own. */
            static uint8_t buf[1 << 16], empty[CTR_AUDIT_SEGMENT_HEADER_BYTES];
            ctr_audit_segment_t h;
            memset(&h, 0, sizeof h);
            ctr_audit_segment_encode(&h, empty);
            FILE *f = fopen(path, "rb");
            size_t len = f ? fread(buf, 1, sizeof buf, f) : 0;
            if (f)
                fclose(f);
            ctr_audit_record_t rec;
            if (!ctr_audit_reader_open_mem(empty, sizeof empty, &r, err, sizeof err)) {
                ok_files += ctr_audit_reader_decode(r, buf, len, &rec, err, sizeof err) == 0;
                ctr_audit_reader_close(r);
            }
            continue;
        }
        if (ctr_audit_reader_open(path, &r, err, sizeof err))
            continue;
        ctr_audit_record_t rec;
        ctr_audit_span_t span;
        ctr_audit_event_t ev;
        int corrupt = 0, n = 0;
        while ((ev = ctr_audit_reader_next(r, &rec, &span)) != CTR_AUDIT_END && n++ < 100000)
            corrupt += ev == CTR_AUDIT_CORRUPT;
        ctr_audit_reader_close(r);
        if (strstr(e->d_name, "-ok"))
            ok_files += corrupt == 0;

        else
            ok_files++;
    }
    closedir(d);
    CHECKF(files > 0 && ok_files == files, "corpus: %d of %d files as expected", ok_files, files);
    printf("corpus: %d files replayed\n", files);
}

/* Bags and `mod` in a record: a request decoded on a model with a hash
 * bag, a `mod` feature and a `mod` bag (patched in memory, as the model
 * file does not carry bags yet) is logged with one categorical column per
 * row slot; reading the record back and mapping each column as
 * docs/AUDIT_LOG.md says (a value through its feature's mapping, a missing
 * one row 0 or an empty slot) gives the rows the server scored, bit for
 * bit. This is what `ctrtool audit verify` replays. */
static void test_bag_replay(void)
{
    char err[256];
    ctr_model_t *m = audit_bag_model("audit_bags.ctrm");
    if (!m)
        return;
    const ctr_model_def_t *def = ctr_model_def(m);
    size_t slots = ctr_model_slots(def);
    CHECK_EQ_SIZE(slots, 9);
    const char *body = AUDIT_BAG_BODY;
    ctr_request_t req;
    ctr_decode_error_t e;
    int rc = ctr__decode_v1(m, body, strlen(body), NULL, &req, &e);
    CHECKF(rc == 0, "%s", e.message);
    if (rc) {
        ctr_model_close(m);
        return;
    }
    CHECK_EQ_SIZE(req.n_cat, slots);
    float scores[4] = {0.25f, 0.5f, 0.75f, 1.0f};
    ctr_audit_input_t in = {
        .seq = 1, .request_id = "bags", .request_id_len = 4, .n = req.n,
        .n_dense = req.n_dense, .n_cat = req.n_cat, .dense_raw = req.dense_raw,
        .cat_off = req.cat_off, .cat_len = req.cat_len, .cat_bytes = req.cat_bytes,
        .scores = scores,
    };
    size_t size = ctr_audit_record_size(&in);
    CHECK(size > 0);
    seg_t sg = {0};
    seg_header(&sg);
    seg_record(&sg, &in);
    ctr_audit_reader_t *r;
    CHECK(ctr_audit_reader_open_mem(sg.p, sg.n, &r, err, sizeof err) == 0);
    ctr_audit_record_t rec;
    ctr_audit_span_t span;
    CHECK(ctr_audit_reader_next(r, &rec, &span) == CTR_AUDIT_RECORD);
    CHECK(rec.n == req.n && rec.n_cat == slots && rec_matches(&rec, &in));
    size_t differ = 0;
    for (size_t i = 0; i < rec.n; i++)
        for (size_t j = 0, k = 0; j < def->n_cat; j++) {
            const ctr_cat_def_t *c = &def->cat[j];
            for (size_t t = 0; t < ctr_features_width(c); t++, k++) {
                const char *b;
                size_t l;
                uint32_t row = c->bag_max ? CTR_EMPTY_SLOT : CTR_MISSING_ROW;
                if (ctr_audit_record_cat(&rec, i, k, &b, &l))
                    CHECK(ctr_features_map(c, b, l, &row) == 0);
                differ += row != req.rows[i * slots + k];
            }
        }
    CHECKF(differ == 0, "%zu replayed rows differ from the decoded ones", differ);
    /* The shared columns (the context's bag) are stored once. */
    CHECK(req.rows[1] == req.rows[3 * slots + 1] && req.rows[1] != CTR_EMPTY_SLOT);
    CHECK(req.rows[3] == CTR_EMPTY_SLOT && req.rows[3 * slots + 6] == CTR_EMPTY_SLOT);
    CHECK(req.rows[slots + 5] == 255 && req.rows[5] == 255 && req.rows[6] == 16);
    ctr_audit_reader_close(r);
    free(sg.p);
    ctr__request_release(&req);
    ctr_model_close(m);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--write-corpus"))
        return write_corpus();
    test_rng_t rng = {0x5eed0a0d17ull};
    test_crc(&rng);
    test_segment_header();
    test_round_trip(&rng);
    test_compactness(&rng);
    test_bit_flips(&rng);
    test_truncation(&rng);
    test_hostile(&rng);
    test_file(&rng);
    test_corpus();
    test_bag_replay();
    return test_main_end();
}
