/* audit_seg.h - an audit segment built in memory, for the audit tests
 * (test_audit.c, test_audit_shadow.c, test_audit_shadow_log.c): bytes
 * appended as the writer would lay them out, each record's offset kept so
 * a test can cut or damage it; the field-by-field comparison of a record
 * read back with its input; and a small model with bags to log requests
 * of. Header-only: static functions, included
 * by those tests alone. */
#ifndef CTR_TESTS_AUDIT_SEG_H
#define CTR_TESTS_AUDIT_SEG_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/audit.h"
#include "ctr/common.h"
#include "ctr/model.h"
#include "model_int.h"
#include "testutil.h"

typedef struct {
    uint8_t *p;
    size_t n, cap;
    size_t rec_off[256];          /* where each record's frame starts */
    size_t n_rec;
} seg_t;

static void seg_put(seg_t *s, const void *b, size_t n)
{
    if (s->n + n > s->cap) {
        s->cap = (s->n + n) * 2;
        s->p = realloc(s->p, s->cap);
        CTR_ASSERT(s->p);
    }
    memcpy(s->p + s->n, b, n);
    s->n += n;
}

/* A plain segment header: server start start_ns, segment index (created
 * index ns later), seq from 1, pid 77, host "shadow-test". */
static inline void seg_header_at(seg_t *s, uint64_t start_ns, uint64_t index)
{
    ctr_audit_segment_t h;
    memset(&h, 0, sizeof h);
    h.version = CTR_AUDIT_FORMAT_VERSION;
    h.durability = 1;
    h.server_start_ns = start_ns;
    h.created_ns = start_ns + index;
    h.segment_index = index;
    h.first_seq = 1;
    h.pid = 77;
    snprintf(h.host, sizeof h.host, "shadow-test");
    snprintf(h.version_str, sizeof h.version_str, "test");
    uint8_t buf[CTR_AUDIT_SEGMENT_HEADER_BYTES];
    ctr_audit_segment_encode(&h, buf);
    seg_put(s, buf, sizeof buf);
}

/* Appends in's record (type 1, or 2 with in->shadow), as encoded by libctr. */
static void seg_record(seg_t *s, const ctr_audit_input_t *in)
{
    size_t size = ctr_audit_record_size(in);
    CTR_ASSERT(size > 0);
    uint8_t *b = malloc(size);
    CTR_ASSERT(b && ctr_audit_record_encode(in, b, size) == size);
    CTR_ASSERT(s->n_rec < CTR_ARRAY_LEN(s->rec_off));
    s->rec_off[s->n_rec++] = s->n;
    seg_put(s, b, size);
    free(b);
}

/* a and b are the same double, bit for bit (NaNs: both NaN). */
static inline int audit_same_double(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return !memcmp(&a, &b, 8);
}

/* The type-1 part of rec equals in: every header field, the request id,
 * the scores' bits and every input column (a missing categorical stays
 * missing). The record type and a shadow trailer are the caller's. */
static inline int audit_rec_fields_match(const ctr_audit_record_t *rec, const ctr_audit_input_t *in)
{
    int ok = rec->seq == in->seq && rec->t_received_ns == in->t_received_ns &&
             rec->t_scored_ns == in->t_scored_ns && rec->generation == in->generation &&
             !memcmp(rec->digest, in->digest, 32) && rec->kernel_id == in->kernel_id &&
             rec->bit_exact == in->bit_exact && rec->client_request_id == in->client_request_id &&
             rec->request_id_len == in->request_id_len &&
             !memcmp(rec->request_id, in->request_id, in->request_id_len) && rec->n == in->n &&
             rec->n_dense == in->n_dense && rec->n_cat == in->n_cat &&
             !memcmp(rec->scores, in->scores, in->n * sizeof(float));
    if (!ok)
        return 0;
    for (size_t i = 0; i < in->n; i++) {
        for (size_t j = 0; j < in->n_dense; j++)
            if (!audit_same_double(ctr_audit_record_dense(rec, i, j), in->dense_raw[i * in->n_dense + j]))
                return 0;
        for (size_t j = 0; j < in->n_cat; j++) {
            const char *b;
            size_t l, k = i * in->n_cat + j;
            int present = ctr_audit_record_cat(rec, i, j, &b, &l);
            if (in->cat_len[k] == CTR_AUDIT_CAT_MISSING ? present
                : !present || l != in->cat_len[k] || memcmp(b, in->cat_bytes + in->cat_off[k], l))
                return 0;
        }
    }
    return 1;
}

/* A request for audit_bag_model: a context bag, hash and `mod` bags given
 * as strings and integers, an empty bag and a null one. */
#define AUDIT_BAG_BODY                                                             \
    "{\"context\":{\"C2\":[\"u1\",\"u2\"],\"I1\":3},\"examples\":["                    \
    "{\"C1\":\"a\",\"C3\":255,\"C4\":[16,\"1A\",7]},{\"C3\":\"FF\",\"C4\":[]},"       \
    "{\"C1\":12,\"C4\":5},{\"C1\":\"z\",\"C4\":null}]}"

/* A small model (2 dense, 4 categorical features, 9 row slots) with a hash
 * bag, a `mod` feature and a `mod` bag, patched in memory after it is
 * opened; file names its temporary file. NULL (a failed check) when it
 * cannot be made. */
static inline ctr_model_t *audit_bag_model(const char *file)
{
    char path[512], err[256] = "";
    const uint32_t hidden[1] = {4};
    ctr_model_t *m;
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), file);
    if (test_make_model(path, 9, 2, 4, 500, 4, hidden, 1, CTR_ACT_RELU, 1.0f) ||
        ctr_model_open(path, &m, err, sizeof err)) {
        CHECKF(0, "test model: %s", err);
        return NULL;
    }
    remove(path);
    struct ctr_model *mm = m;
    mm->cat[1].bag_max = 4;
    mm->cat[2].mapping = CTR_MAP_MOD;
    mm->cat[3].bag_max = 3;
    mm->cat[3].mapping = CTR_MAP_MOD;
    return m;
}

#endif
