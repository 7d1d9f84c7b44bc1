/* test_audit_shadow.c - shadow records (type 2) of the audit log
 * (model/audit_record.c, model/audit_read.c; docs/AUDIT_LOG.md "Shadow
 * records"): a type-1 record's bytes are what they were before type 2
 * (pinned by a record encoded with the encoder of before), a type-2
 * record is that payload with type byte 2 and the trailer, every field of
 * both round-trips (random records, shared columns, bags and `mod`
 * decoded by the server's decoder), a payload whose length is not exactly
 * its type's and an unknown type are CORRUPT with a reason while the next
 * record still reads, and mutated type-2 segments never crash the reader.
 *
 *     test_audit_shadow                  the tests
 *     test_audit_shadow --write-corpus   (re)write the type-2 seeds of
 *         tests/fuzz/corpus/audit_reader (test_audit --write-corpus
 *         writes the others)
 *     test_audit_shadow --golden-hex     print the pinned type-1 record
 *         (how GOLDEN_T1 below was made, linked with the encoder of
 *         before type 2) */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../server/decode.h"
#include "crc32c_int.h"
#include "ctr/audit.h"
#include "ctr/common.h"
#include "ctr/model.h"
#include "model_int.h"
#include "audit_seg.h"
#include "testutil.h"

#define CORPUS "tests/fuzz/corpus/audit_reader"
#define TRAILER_FIXED 48u  /* primary seq, generation, digest */

/* ---- a segment in memory -------------------------------------------- */

/* Segments: audit_seg.h; this test's start time. */
static void seg_header(seg_t *s, uint64_t index)
{
    seg_header_at(s, 1700000000000000000ull, index);
}

/* A frame (magic, length, both CRCs) around the plen payload bytes at
 * f + 16: garbage behind valid CRCs, so the decoder's checks are what
 * stands. */
static void frame_fix(uint8_t *f, size_t plen)
{
    uint32_t v[4] = {CTR_AUDIT_RECORD_MAGIC, (uint32_t)plen, 0, 0};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 4; i++)
            f[4 * k + i] = (uint8_t)(v[k] >> (8 * i));
    v[2] = ctr__crc32c(0, f, 8);
    v[3] = ctr__crc32c(0, f + CTR_AUDIT_FRAME_BYTES, plen);
    for (int k = 2; k < 4; k++)
        for (int i = 0; i < 4; i++)
            f[4 * k + i] = (uint8_t)(v[k] >> (8 * i));
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    CTR_ASSERT(f && fwrite(p, 1, n, f) == n && fclose(f) == 0);
}

/* ---- the pinned type-1 record ---------------------------------------- */

/* Three examples: a shared dense and a shared categorical column, every
 * dense tag (small int, missing, f64, varint, -0.0), hex-packed, raw,
 * empty and missing categorical values. */
static void golden_input(ctr_audit_input_t *in)
{
    static const double dense[3 * 3] = {
        7, NAN, 2.5, 7, 1000, -0.0, 7, -3, 1e300,
    };
    static const char bytes[] = "68fe" "abc" "z0" "0123456789abcdef";
    static const uint32_t off[3 * 3] = {0, 4, 0, 0, 7, 0, 0, 9, 0};
    static const uint8_t len[3 * 3] = {4, 3, CTR_AUDIT_CAT_MISSING, 4, 2, 0, 4, 16, 1};
    static const float scores[3] = {0.25f, 0.125f, 0.9921875f};
    static uint8_t digest[32];
    for (int i = 0; i < 32; i++)
        digest[i] = (uint8_t)(i * 7 + 1);
    memset(in, 0, sizeof *in);
    in->seq = 4242;
    in->t_received_ns = 1764900000000000001ull;
    in->t_scored_ns = 1764900000000123456ull;
    in->generation = 2;
    memcpy(in->digest, digest, 32);
    in->kernel_id = 1;
    in->bit_exact = 1;
    in->client_request_id = 1;
    in->request_id = "golden-1";
    in->request_id_len = 8;
    in->n = 3;
    in->n_dense = 3;
    in->n_cat = 3;
    in->dense_raw = dense;
    in->cat_off = off;
    in->cat_len = len;
    in->cat_bytes = bytes;
    in->scores = scores;
}

/* golden_input() encoded by model/audit_record.c as of 60a14fb (before
 * type 2), frame included: `--golden-hex` linked with that encoder. */
static const char GOLDEN_T1[] =
    "434452319e000000d245e1a21b06184b010107080300000003000300000000009210000000000000014016fc322f7e18"
    "402218fc322f7e18020000000000000001080f161d242b323940474e555c636a71787f868d949ba2a9b0b7bec5ccd3da"
    "676f6c64656e2d310000803e0000003e00007e3f09078268fe8081000000000000044003616263ff82d00f8100000000"
    "00000080027a30008205819c7500883ce4377e880123456789abcdef0136";

static void hex_of(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static void test_golden(void)
{
    ctr_audit_input_t in;
    golden_input(&in);
    size_t size = ctr_audit_record_size(&in);
    CHECK_EQ_SIZE(2 * size, strlen(GOLDEN_T1));
    uint8_t *b1 = malloc(size);
    char *hex = malloc(2 * size + 1);
    CHECK(ctr_audit_record_encode(&in, b1, size) == size);
    hex_of(b1, size, hex);
    CHECKF(!strcmp(hex, GOLDEN_T1), "type-1 bytes changed:\n%s\nwant\n%s", hex, GOLDEN_T1);

    /* The same input as a shadow record: byte 0 is 2, the rest of the
     * payload the same bytes, then the trailer. */
    const float primary[3] = {0.5f, 1e-8f, 1.0f};
    ctr_audit_shadow_t sh = {.primary_seq = 4241, .primary_generation = 9, .primary_scores = primary};
    for (int i = 0; i < 32; i++)
        sh.primary_digest[i] = (uint8_t)(0xa0 + i);
    in.shadow = &sh;
    size_t size2 = ctr_audit_record_size(&in);
    CHECK_EQ_SIZE(size2, size + TRAILER_FIXED + 4 * 3);
    uint8_t *b2 = malloc(size2);
    CHECK(ctr_audit_record_encode(&in, b2, size2) == size2);
    CHECK(ctr_audit_record_encode(&in, b2, size2 - 1) == 0 && ctr_audit_record_encode(&in, b2, size) == 0);
    size_t p1 = size - CTR_AUDIT_FRAME_BYTES;
    const uint8_t *q1 = b1 + CTR_AUDIT_FRAME_BYTES, *q2 = b2 + CTR_AUDIT_FRAME_BYTES;
    CHECK(b2[4] == (uint8_t)(size2 - CTR_AUDIT_FRAME_BYTES) && q1[0] == 1 && q2[0] == 2);
    CHECK(!memcmp(q1 + 1, q2 + 1, p1 - 1));
    const uint8_t *t = q2 + p1;
    CHECK(t[0] == (4241 & 0xff) && t[1] == (4241 >> 8) && t[8] == 9);
    CHECK(!memcmp(t + 16, sh.primary_digest, 32));
    for (int i = 0; i < 3; i++) {
        uint32_t bits;
        memcpy(&bits, &primary[i], 4);
        CHECK(t[48 + 4 * i] == (bits & 0xff) && t[48 + 4 * i + 3] == bits >> 24);
    }
    free(b1);
    free(b2);
    free(hex);
}

/* ---- random records -------------------------------------------------- */

typedef struct {
    ctr_audit_input_t in;
    ctr_audit_shadow_t sh;
    double *dense;
    uint32_t *off;
    uint8_t *len;
    char *bytes;
    float *scores, *primary;
    char id[64];
} gen_t;

static void gen(gen_t *g, test_rng_t *r, size_t n, size_t nd, size_t nc, int shared, int shadow)
{
    static const double dv[] = {0, 1, 127, 128, -1, NAN, 2.5, 1e300, -0.0, 9007199254740992.0, 65535};
    memset(g, 0, sizeof *g);
    g->dense = malloc((n * nd + 1) * sizeof *g->dense);
    g->off = malloc((n * nc + 1) * sizeof *g->off);
    g->len = malloc(n * nc + 1);
    g->bytes = malloc(n * nc * 20 + 1);
    g->scores = malloc(n * sizeof(float));
    g->primary = malloc(n * sizeof(float));
    CTR_ASSERT(g->dense && g->off && g->len && g->bytes && g->scores && g->primary);
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < nd; j++)
            g->dense[i * nd + j] = i && shared && j % 2 == 0 ? g->dense[j] : dv[test_rng_next(r) % CTR_ARRAY_LEN(dv)];
        for (size_t j = 0; j < nc; j++) {
            size_t k = i * nc + j;
            if (i && shared && j % 3 == 0) {
                g->off[k] = g->off[j];
                g->len[k] = g->len[j];
                continue;
            }
            uint64_t kind = test_rng_next(r) % 5;
            size_t l = kind == 0 ? 0 : 1 + test_rng_next(r) % 19;
            g->off[k] = (uint32_t)used;
            g->len[k] = kind == 1 ? CTR_AUDIT_CAT_MISSING : (uint8_t)l;
            if (kind == 1)
                continue;
            for (size_t b = 0; b < l; b++)
                g->bytes[used++] = kind == 2 ? "0123456789abcdef"[test_rng_next(r) % 16] : (char)('A' + test_rng_next(r) % 50);
        }
        g->scores[i] = test_rng_uniform(r, 0, 1);
        g->primary[i] = test_rng_uniform(r, 0, 1);
    }
    snprintf(g->id, sizeof g->id, "req-%llu", (unsigned long long)(test_rng_next(r) % 100000));
    ctr_audit_input_t *in = &g->in;
    in->seq = 1 + test_rng_next(r) % 1000;
    in->t_received_ns = test_rng_next(r);
    in->t_scored_ns = test_rng_next(r);
    in->generation = 1 + test_rng_next(r) % 4;
    for (int b = 0; b < 32; b++)
        in->digest[b] = (uint8_t)test_rng_next(r);
    in->kernel_id = (unsigned)(test_rng_next(r) % 3);
    in->bit_exact = 1;
    in->client_request_id = (int)(test_rng_next(r) & 1);
    in->request_id = g->id;
    in->request_id_len = strlen(g->id);
    in->n = n;
    in->n_dense = nd;
    in->n_cat = nc;
    in->dense_raw = g->dense;
    in->cat_off = g->off;
    in->cat_len = g->len;
    in->cat_bytes = g->bytes;
    in->scores = g->scores;
    if (shadow) {
        g->sh.primary_seq = test_rng_next(r) % 3 ? in->seq - 1 : 0;   /* 0: not logged */
        g->sh.primary_generation = 1 + test_rng_next(r) % 4;
        for (int b = 0; b < 32; b++)
            g->sh.primary_digest[b] = (uint8_t)test_rng_next(r);
        g->sh.primary_scores = g->primary;
        in->shadow = &g->sh;
    }
}

static void gen_free(gen_t *g)
{
    free(g->dense);
    free(g->off);
    free(g->len);
    free(g->bytes);
    free(g->scores);
    free(g->primary);
}

/* Every field of rec equals in, type and trailer included. */
static int rec_matches(const ctr_audit_record_t *rec, const ctr_audit_input_t *in)
{
    if (!audit_rec_fields_match(rec, in))
        return 0;
    static const uint8_t zero[32];
    if (in->shadow) {
        const ctr_audit_shadow_t *sh = in->shadow;
        return rec->type == 2 && rec->primary_seq == sh->primary_seq &&
               rec->primary_generation == sh->primary_generation &&
               !memcmp(rec->primary_digest, sh->primary_digest, 32) && rec->primary_scores &&
               !memcmp(rec->primary_scores, sh->primary_scores, in->n * sizeof(float));
    }
    return rec->type == 1 && !rec->primary_seq && !rec->primary_generation &&
           !memcmp(rec->primary_digest, zero, 32) && !rec->primary_scores;
}

/* Type-1 and type-2 records mixed in one segment, one example and many,
 * with and without shared columns, read back field for field; a type-2
 * record is its type-1 twin plus 48 + 4n bytes. */
static void test_round_trip(test_rng_t *rng)
{
    enum { RECS = 60 };
    gen_t g[RECS];
    seg_t s = {0};
    seg_header(&s, 1);
    size_t type2 = 0;
    for (int i = 0; i < RECS; i++) {
        size_t n = 1 + test_rng_next(rng) % 6;
        int shadow = i % 3 != 0;
        gen(&g[i], rng, n, test_rng_next(rng) % 5, test_rng_next(rng) % 7, i % 2, shadow);
        if (shadow) {
            size_t s2 = ctr_audit_record_size(&g[i].in);
            g[i].in.shadow = NULL;
            size_t s1 = ctr_audit_record_size(&g[i].in);
            g[i].in.shadow = &g[i].sh;
            CHECK(s1 > 0 && s2 == s1 + TRAILER_FIXED + 4 * n);
            type2++;
        }
        seg_record(&s, &g[i].in);
    }
    ctr_audit_reader_t *r;
    char err[256];
    CHECK(ctr_audit_reader_open_mem(s.p, s.n, &r, err, sizeof err) == 0);
    ctr_audit_record_t rec;
    ctr_audit_span_t span;
    size_t good = 0, seen2 = 0;
    for (int i = 0; i < RECS; i++) {
        if (ctr_audit_reader_next(r, &rec, &span) != CTR_AUDIT_RECORD) {
            CHECKF(0, "record %d: %s", i, span.why);
            break;
        }
        good += rec_matches(&rec, &g[i].in);
        seen2 += rec.type == 2;
    }
    CHECK(ctr_audit_reader_next(r, &rec, &span) == CTR_AUDIT_END);
    CHECKF(good == RECS && seen2 == type2, "%zu of %d records match, %zu of %zu type 2", good, RECS, seen2, type2);
    ctr_audit_reader_close(r);
    free(s.p);
    for (int i = 0; i < RECS; i++)
        gen_free(&g[i]);
}

/* ---- damage ----------------------------------------------------------- */

/* One segment: a good record, the damaged payload behind a valid frame,
 * a good record. The reader must give RECORD, CORRUPT (why containing
 * want), RECORD. */
static void expect_corrupt(const char *what, const uint8_t *payload, size_t plen, const char *want,
                           const ctr_audit_input_t *good)
{
    seg_t s = {0};
    seg_header(&s, 1);
    seg_record(&s, good);
    uint8_t *f = malloc(CTR_AUDIT_FRAME_BYTES + plen + 1);
    memcpy(f + CTR_AUDIT_FRAME_BYTES, payload, plen);
    frame_fix(f, plen);
    seg_put(&s, f, CTR_AUDIT_FRAME_BYTES + plen);
    seg_record(&s, good);
    free(f);
    ctr_audit_reader_t *r;
    char err[256];
    CHECK(ctr_audit_reader_open_mem(s.p, s.n, &r, err, sizeof err) == 0);
    ctr_audit_record_t rec;
    ctr_audit_span_t span;
    ctr_audit_event_t e1 = ctr_audit_reader_next(r, &rec, &span);
    ctr_audit_event_t e2 = ctr_audit_reader_next(r, &rec, &span);
    CHECKF(e1 == CTR_AUDIT_RECORD && e2 == CTR_AUDIT_CORRUPT, "%s: events %d %d", what, e1, e2);
    if (e2 == CTR_AUDIT_CORRUPT) {
        CHECKF(strstr(span.why, want) != NULL, "%s: why \"%s\", want \"%s\"", what, span.why, want);
        CHECK(span.bytes == CTR_AUDIT_FRAME_BYTES + plen);
    }
    e1 = ctr_audit_reader_next(r, &rec, &span);
    CHECKF(e1 == CTR_AUDIT_RECORD && rec_matches(&rec, good), "%s: the next record", what);
    CHECK(ctr_audit_reader_next(r, &rec, &span) == CTR_AUDIT_END);
    ctr_audit_reader_close(r);
    /* The decoder alone says the same. */
    CHECK(ctr_audit_reader_open_mem(s.p, CTR_AUDIT_SEGMENT_HEADER_BYTES, &r, err, sizeof err) == 0);
    CHECKF(ctr_audit_reader_decode(r, payload, plen, &rec, err, sizeof err) == CTR_EFORMAT &&
           strstr(err, want), "%s: decode: %s", what, err);
    ctr_audit_reader_close(r);
    free(s.p);
}

static uint8_t *payload_of(const ctr_audit_input_t *in, size_t *plen)
{
    size_t size = ctr_audit_record_size(in);
    uint8_t *b = malloc(size + 64);
    CTR_ASSERT(size && ctr_audit_record_encode(in, b, size) == size);
    *plen = size - CTR_AUDIT_FRAME_BYTES;
    memmove(b, b + CTR_AUDIT_FRAME_BYTES, *plen);
    return b;
}

static void test_wrong_length(test_rng_t *rng)
{
    gen_t g, ok;
    gen(&g, rng, 4, 3, 5, 1, 1);
    gen(&ok, rng, 2, 3, 5, 0, 0);
    size_t p2, p1;
    uint8_t *t2 = payload_of(&g.in, &p2);
    g.in.shadow = NULL;
    uint8_t *t1 = payload_of(&g.in, &p1);
    g.in.shadow = &g.sh;
    uint8_t *b = malloc(p2 + 64);

    memcpy(b, t2, p2);
    b[0] = 1;   /* type 1 with a trailer: bytes left over */
    expect_corrupt("type-2 payload as type 1", b, p2, "bytes left after the last value", &ok.in);
    memcpy(b, t1, p1);
    b[0] = 2;   /* type 2 without its trailer */
    expect_corrupt("type-1 payload as type 2", b, p1, "", &ok.in);
    memcpy(b, t2, p2);
    b[p2] = 0;
    expect_corrupt("type 2 + 1 byte", b, p2 + 1, "before the shadow trailer", &ok.in);
    expect_corrupt("type 2 - 1 byte", t2, p2 - 1, "", &ok.in);
    expect_corrupt("type 2 - 4 bytes", t2, p2 - 4, "", &ok.in);
    memcpy(b, t2, p2);
    memset(b + p2, 0x3f, 4);
    expect_corrupt("type 2 + a score", b, p2 + 4, "before the shadow trailer", &ok.in);
    memcpy(b, t1, p1);
    b[p1] = 0x80;
    expect_corrupt("type 1 + 1 byte", b, p1 + 1, "bytes left after the last value", &ok.in);
    /* A trailer longer than the whole payload (n large, bytes few). */
    memcpy(b, t2, p2);
    b[4] = 0xff;
    b[5] = 0xff;
    expect_corrupt("type 2, n too large for its trailer", b, p2, "trailer does not fit", &ok.in);
    static const uint8_t types[] = {0, 3, 4, 0x7f, 0x82, 0xff};
    for (size_t i = 0; i < sizeof types; i++) {
        char what[64];
        memcpy(b, t1, p1);
        b[0] = types[i];
        snprintf(what, sizeof what, "type %u", types[i]);
        expect_corrupt(what, b, p1, "unknown record type", &ok.in);
    }
    /* Every cut of a type-2 payload is corrupt, never a record. */
    ctr_audit_reader_t *r;
    char err[256];
    ctr_audit_record_t rec;
    uint8_t hdr[CTR_AUDIT_SEGMENT_HEADER_BYTES];
    ctr_audit_segment_t h = {.version = 1};
    ctr_audit_segment_encode(&h, hdr);
    CHECK(ctr_audit_reader_open_mem(hdr, sizeof hdr, &r, err, sizeof err) == 0);
    size_t decoded = 0;
    for (size_t cut = 0; cut < p2; cut++) {   /* exact-size copies: ASan sees any overread */
        uint8_t *c = malloc(cut + 1);
        memcpy(c, t2, cut);
        decoded += ctr_audit_reader_decode(r, c, cut, &rec, err, sizeof err) == 0;
        free(c);
    }
    CHECK(decoded == 0);
    CHECK(ctr_audit_reader_decode(r, t2, p2, &rec, err, sizeof err) == 0 && rec_matches(&rec, &g.in));
    ctr_audit_reader_close(r);
    free(b);
    free(t1);
    free(t2);
    gen_free(&g);
    gen_free(&ok);
}

/* Mutated segments of type-2 records (frames kept valid half the time)
 * never crash the reader or read past what is there. */
static void test_hostile(test_rng_t *rng)
{
    gen_t g[4];
    seg_t s = {0};
    seg_header(&s, 1);
    for (int i = 0; i < 4; i++) {
        gen(&g[i], rng, (size_t)(1 + 2 * i), 3, 4, i % 2, i != 1);
        seg_record(&s, &g[i].in);
    }
    size_t cap = s.n + 64, records = 0;
    uint8_t *buf = malloc(cap);
    for (int t = 0; t < 20000; t++) {
        size_t n = s.n;
        memcpy(buf, s.p, n);
        int ops = 1 + (int)(test_rng_next(rng) % 3);
        for (int o = 0; o < ops; o++) {
            size_t at = CTR_AUDIT_SEGMENT_HEADER_BYTES + test_rng_next(rng) % (n - CTR_AUDIT_SEGMENT_HEADER_BYTES);
            switch (test_rng_next(rng) % 4) {
            case 0: buf[at] ^= (uint8_t)(1u << (test_rng_next(rng) % 8)); break;
            case 1: buf[at] = (uint8_t)test_rng_next(rng); break;
            case 2: n = at; break;
            default: buf[at] = (uint8_t[]){0, 1, 2, 3, 0x7f, 0x80, 0xff}[test_rng_next(rng) % 7];
            }
            if (n <= CTR_AUDIT_SEGMENT_HEADER_BYTES + 1)
                break;
        }
        if (t % 2)
            for (size_t k = 0; k < s.n_rec; k++) {
                size_t off = s.rec_off[k];
                size_t plen = (k + 1 < s.n_rec ? s.rec_off[k + 1] : s.n) - off - CTR_AUDIT_FRAME_BYTES;
                if (off + CTR_AUDIT_FRAME_BYTES + plen <= n)
                    frame_fix(buf + off, plen);
            }
        uint8_t *exact = malloc(n ? n : 1);
        memcpy(exact, buf, n);
        ctr_audit_reader_t *r;
        char err[256];
        if (!ctr_audit_reader_open_mem(exact, n, &r, err, sizeof err)) {
            ctr_audit_record_t rec;
            ctr_audit_span_t span;
            ctr_audit_event_t ev;
            int guard = 0;
            while ((ev = ctr_audit_reader_next(r, &rec, &span)) != CTR_AUDIT_END && guard++ < 10000) {
                if (ev != CTR_AUDIT_RECORD)
                    continue;
                records++;
                volatile double sink = 0;
                for (size_t i = 0; i < rec.n; i++) {
                    sink += rec.scores[i];
                    if (rec.type == 2)
                        sink += rec.primary_scores[i];
                    else
                        CTR_ASSERT(!rec.primary_scores);
                    for (size_t j = 0; j < rec.n_dense; j++)
                        sink += ctr_audit_record_dense(&rec, i, j);
                }
                (void)sink;
            }
            ctr_audit_reader_close(r);
        }
        free(exact);
    }
    printf("hostile type-2 input: 20000 mutated segments read, %zu records decoded\n", records);
    free(buf);
    free(s.p);
    for (int i = 0; i < 4; i++)
        gen_free(&g[i]);
}

/* ---- bags, decoded by the server ------------------------------------ */

/* A request decoded on a model with hash and `mod` bags (patched in
 * memory, as test_audit.c's test_bag_replay does) logged as a shadow
 * record: its shared columns (the context's bag) and empty slots read
 * back as in the type-1 record, and so do the trailer's fields. */
static void test_bags(void)
{
    char err[256];
    ctr_model_t *m = audit_bag_model("shadow_bags.ctrm");
    if (!m)
        return;
    size_t slots = ctr_model_slots(ctr_model_def(m));
    const char *body = AUDIT_BAG_BODY;
    ctr_request_t req;
    ctr_decode_error_t e;
    int rc = ctr__decode_v1(m, body, strlen(body), NULL, &req, &e);
    CHECKF(rc == 0, "%s", e.message);
    if (rc) {
        ctr_model_close(m);
        return;
    }
    float scores[4] = {0.25f, 0.5f, 0.75f, 1.0f}, primary[4] = {0.5f, 0.0f, 1e-9f, 0.75f};
    ctr_audit_shadow_t sh = {.primary_seq = 11, .primary_generation = 3, .primary_scores = primary};
    memset(sh.primary_digest, 0xcd, 32);
    ctr_audit_input_t in = {
        .seq = 12, .generation = 1, .request_id = "bags", .request_id_len = 4, .n = req.n,
        .n_dense = req.n_dense, .n_cat = req.n_cat, .dense_raw = req.dense_raw,
        .cat_off = req.cat_off, .cat_len = req.cat_len, .cat_bytes = req.cat_bytes,
        .scores = scores,
    };
    seg_t sg = {0};
    seg_header(&sg, 1);
    seg_record(&sg, &in);
    in.shadow = &sh;
    seg_record(&sg, &in);
    ctr_audit_reader_t *r;
    CHECK(ctr_audit_reader_open_mem(sg.p, sg.n, &r, err, sizeof err) == 0);
    ctr_audit_record_t rec;
    ctr_audit_span_t span;
    /* The type-1 twin first, as the reference for the bags' layout. */
    in.shadow = NULL;
    CHECK(ctr_audit_reader_next(r, &rec, &span) == CTR_AUDIT_RECORD && rec_matches(&rec, &in));
    in.shadow = &sh;
    CHECK(ctr_audit_reader_next(r, &rec, &span) == CTR_AUDIT_RECORD);
    CHECK(rec.type == 2 && rec.n == 4 && rec.n_cat == slots && rec_matches(&rec, &in));
    CHECK(rec.cat_s_ > 0);   /* the context's bag is stored once */
    const char *b;
    size_t l;
    CHECK(ctr_audit_record_cat(&rec, 3, 1, &b, &l) == 1 && l == 2 && !memcmp(b, "u1", 2));
    CHECK(ctr_audit_record_cat(&rec, 1, 6, &b, &l) == 0);   /* C4: [] */
    ctr_audit_reader_close(r);
    free(sg.p);
    ctr__request_release(&req);
    ctr_model_close(m);
}

/* ---- corpus ----------------------------------------------------------- */

/* Type-2 seeds for fuzz_audit_reader: a segment mixing both types with
 * shared columns, one cut inside a shadow record's trailer, and a bare
 * type-2 payload (the target also decodes its input as one). */
static int write_corpus(void)
{
    test_rng_t rng = {20261205};
    if (mkdir(CORPUS, 0755) && errno != EEXIST) {
        perror(CORPUS);
        return 1;
    }
    gen_t g[3];
    seg_t s = {0};
    seg_header(&s, 1);
    gen(&g[0], &rng, 3, 3, 4, 1, 1);
    gen(&g[1], &rng, 2, 3, 4, 0, 0);
    gen(&g[2], &rng, 1, 2, 3, 0, 1);
    for (int i = 0; i < 3; i++)
        seg_record(&s, &g[i].in);
    char path[512];
    snprintf(path, sizeof path, "%s/seg-16-shadow-ok", CORPUS);
    write_file(path, s.p, s.n);
    snprintf(path, sizeof path, "%s/seg-17-shadow-torn", CORPUS);
    write_file(path, s.p, s.n - 6);   /* inside the last record's trailer */
    size_t plen = s.rec_off[1] - s.rec_off[0] - CTR_AUDIT_FRAME_BYTES;
    snprintf(path, sizeof path, "%s/payload-04-shadow", CORPUS);
    write_file(path, s.p + s.rec_off[0] + CTR_AUDIT_FRAME_BYTES, plen);
    free(s.p);
    for (int i = 0; i < 3; i++)
        gen_free(&g[i]);
    printf("wrote 3 type-2 seeds to %s\n", CORPUS);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--golden-hex")) {
        ctr_audit_input_t in;
        golden_input(&in);
        size_t size = ctr_audit_record_size(&in);
        uint8_t *b = malloc(size);
        char *hex = malloc(2 * size + 1);
        if (!b || !hex || ctr_audit_record_encode(&in, b, size) != size)
            return 1;
        hex_of(b, size, hex);
        puts(hex);
        free(b);
        free(hex);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "--write-corpus"))
        return write_corpus();
    test_rng_t rng = {0x5badc0de};
    test_golden();
    test_round_trip(&rng);
    test_wrong_length(&rng);
    test_bags();
    test_hostile(&rng);
    return test_main_end();
}
