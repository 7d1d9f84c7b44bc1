/* fuzz_decode_v2_binary.c - libFuzzer target for Triton's binary tensor
 * data on v2 infer (ctr__decode_v2_binary, server/decode_v2.c).
 *
 * Input: the first 2 bytes (little-endian) are the request's
 * Inference-Header-Content-Length, the rest is the body, so the header
 * length may run past the body as a hostile client's can. Checks:
 *  - a rejection has a name, a message and a client status (400 or 413),
 *    never a 500 (internal_error: the fast pass and the validator disagree);
 *  - an accepted request is re-encoded as its JSON form (dense values
 *    %.17g or null, categorical values as strings or null, the id, the
 *    binary_data output flag) and decoded by ctr__decode_v2: it must be
 *    accepted and decode to the same request, bit for bit (encoded and raw
 *    values, rows, categorical bytes, id, binary output). This is the
 *    contract: a binary request is its JSON form, value for value.
 *
 * Model and limits are those of the decode_v2 target (13 dense + 26
 * categorical features, 64 examples, depth 32). Seeds:
 * tests/fuzz/corpus/decode_v2_binary/ (tests/binary_v2.py seeds DIR). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../decode_ref.h"
#include "../../server/buf.h"
#include "ctr/common.h"
#include "../../server/decode.h"
#include "fuzz.h"
#include "../../server/respond.h"

static void die(const char *what, const uint8_t *data, size_t size)
{
    fprintf(stderr, "decode_v2_binary: %s\n", what);
    fprintf(stderr, "input (%zu bytes): ", size);
    for (size_t i = 0; i < size && i < 600; i++)
        fprintf(stderr, "%02x", data[i]);
    fprintf(stderr, "\n");
    abort();
}

static void json_bytes(ctr__buf_t *b, const char *s, size_t n)
{
    ctr__buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            ctr__buf_printf(b, "\\%c", c);
        else if (c < 0x20)
            ctr__buf_printf(b, "\\u%04x", c);
        else
            ctr__buf_putc(b, (char)c);
    }
    ctr__buf_putc(b, '"');
}

/* The JSON form of a decoded request. */
static void to_json(ctr__buf_t *b, const ctr_request_t *r)
{
    ctr__buf_puts(b, "{");
    if (r->has_request_id) {
        ctr__buf_puts(b, "\"id\":");
        json_bytes(b, r->request_id, strlen(r->request_id));
        ctr__buf_puts(b, ",");
    }
    ctr__buf_printf(b, "\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[%zu,%zu],"
                       "\"data\":[",
                    r->n, r->n_dense);
    for (size_t k = 0; k < r->n * r->n_dense; k++) {
        if (k)
            ctr__buf_putc(b, ',');
        if (isnan(r->dense_raw[k]))
            ctr__buf_puts(b, "null");
        else
            ctr__buf_printf(b, "%.17g", r->dense_raw[k]);
    }
    ctr__buf_printf(b, "]},{\"name\":\"sparse\",\"datatype\":\"BYTES\",\"shape\":[%zu,%zu],\"data\":[",
                    r->n, r->n_cat);
    for (size_t k = 0; k < r->n * r->n_cat; k++) {
        if (k)
            ctr__buf_putc(b, ',');
        if (r->cat_len[k] == CTR_CAT_MISSING_LEN)
            ctr__buf_puts(b, "null");
        else
            json_bytes(b, r->cat_bytes + r->cat_off[k], r->cat_len[k]);
    }
    ctr__buf_printf(b, "]}],\"outputs\":[{\"name\":\"score\",\"parameters\":{\"binary_data\":%s}}]}",
                    r->binary_output ? "true" : "false");
}

static int same_request(const ctr_request_t *a, const ctr_request_t *b)
{
    size_t nd = a->n * a->n_dense, nc = a->n * a->n_cat;
    if (a->n != b->n || a->n_dense != b->n_dense || a->n_cat != b->n_cat ||
        a->has_request_id != b->has_request_id || strcmp(a->request_id, b->request_id) ||
        a->binary_output != b->binary_output)
        return 0;
    if (memcmp(a->dense, b->dense, nd * sizeof(float)) || memcmp(a->rows, b->rows, nc * sizeof(uint32_t)) ||
        memcmp(a->cat_len, b->cat_len, nc))
        return 0;
    for (size_t k = 0; k < nd; k++) {
        double x = a->dense_raw[k], y = b->dense_raw[k];
        if (isnan(x) ? !isnan(y) : memcmp(&x, &y, sizeof x))
            return 0;
    }
    for (size_t k = 0; k < nc; k++)
        if (a->cat_len[k] != CTR_CAT_MISSING_LEN &&
            memcmp(a->cat_bytes + a->cat_off[k], b->cat_bytes + b->cat_off[k], a->cat_len[k]))
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const ctr_model_t *m = ref_open_test_model();
    if (size < 2)
        return 0;
    size_t hl = (size_t)data[0] | (size_t)data[1] << 8;
    size_t len = size - 2;
    /* An exact-size copy: ASan sees any read past the body. */
    char *body = malloc(len ? len : 1);
    if (!body)
        return 0;
    memcpy(body, data + 2, len);
    ctr_request_t req;
    ctr_decode_error_t e;
    int rc = ctr__decode_v2_binary(m, body, len, hl, &ref_lim, &req, &e);
    free(body);
    if (rc) {
        int st = ctr__http_status(rc, CTR__SUBJECT_REQUEST);
        if (!e.name || !e.message[0])
            die("a rejection without a name or message", data, size);
        if (st != 400 && st != 413) {
            fprintf(stderr, "status %d, %s: %s\n", st, e.name, e.message);
            die("a rejection that is not the client's fault", data, size);
        }
        return 0;
    }
    if (req.n == 0 || req.n > ref_lim.max_examples)
        die("accepted with a bad example count", data, size);
    for (size_t k = 0; k < req.n * req.n_cat; k++)
        if (req.cat_len[k] != CTR_CAT_MISSING_LEN && req.cat_len[k] > CTR_MAX_CAT_BYTES)
            die("a categorical value over the limit", data, size);

    ctr__buf_t b;
    if (ctr__buf_init(&b, 4096)) {
        ctr__request_release(&req);
        return 0;
    }
    to_json(&b, &req);
    if (b.failed) {
        ctr__buf_free(&b);
        ctr__request_release(&req);
        return 0;
    }
    ctr_request_t jr;
    ctr_decode_error_t je;
    rc = ctr__decode_v2(m, b.p, b.len, &ref_lim, &jr, &je);
    if (rc) {
        fprintf(stderr, "JSON form rejected: %s: %s\n%.*s\n", je.name, je.message,
                (int)(b.len < 3000 ? b.len : 3000), b.p);
        die("the JSON form of an accepted binary request is rejected", data, size);
    }
    if (!same_request(&req, &jr)) {
        fprintf(stderr, "JSON form: %.*s\n", (int)(b.len < 3000 ? b.len : 3000), b.p);
        die("the JSON form decodes to a different request", data, size);
    }
    ctr__request_release(&jr);
    ctr__request_release(&req);
    ctr__buf_free(&b);
    return 0;
}
