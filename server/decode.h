/* decode.h - a decoded scoring request: the contract between the request
 * decoders (/v1/score and KServe v2 infer bodies: decode.c, decode_v1.c,
 * decode_v2.c over the JSON scanner json_scan.c) and the rest of the
 * server (batcher, audit writer, response encoder).
 *
 * A request owns one arena sized at decode time from the body length, so a
 * request costs a bounded number of allocations whatever its example count,
 * and nothing is allocated per value. Values are kept twice on purpose:
 * encoded (what the kernels consume) and raw (what the audit log records,
 * "exactly as the model saw it", so a replay re-encodes them). */
#ifndef CTR_SERVER_DECODE_H
#define CTR_SERVER_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "ctr/model.h"

#define CTR_REQUEST_ID_MAX 128
#define CTR_REQUEST_MODEL_MAX 64   /* a model name (modelstore.h CTR__MODEL_NAME_MAX) */
#define CTR_CAT_MISSING_LEN 0xffu  /* cat_len value of a missing categorical */

typedef struct {
    char request_id[CTR_REQUEST_ID_MAX + 1]; /* NUL-terminated, "" if none */
    int has_request_id;
    /* v1 "model": the model the body names (NUL-terminated); has_model 0:
     * absent or null (the default model), 1: model holds it, 2: longer
     * than CTR_REQUEST_MODEL_MAX (no model has such a name). */
    char model[CTR_REQUEST_MODEL_MAX + 1];
    int has_model;
    size_t n;            /* examples */
    size_t n_dense;
    /* Categorical columns per example: one per row slot,
     * ctr_model_slots(def) (model.h, features.h), which is the model's
     * n_cat when it has no bags. Feature j's slots are [slot_of(j),
     * slot_of(j) + max(1, bag_max)). */
    size_t n_cat;

    /* Encoded inputs (features.h), row-major [n][n_dense] and [n][n_cat]
     * (n_cat = slots: a bag's unused slots are CTR_EMPTY_SLOT). */
    float *dense;
    uint32_t *rows;

    /* Raw inputs for the audit log, one per column: dense as parsed (NaN =
     * missing); categorical value bytes at cat_bytes + cat_off[k],
     * cat_len[k] bytes, cat_len == CTR_CAT_MISSING_LEN when missing or an
     * empty bag slot. k = i*n_cat + slot. An integer value is stored as
     * the text its mapping turns into the same row (features.h
     * ctr_features_int_raw): its decimal text for `hash`, its lowercase
     * hex digits for `mod`. */
    double *dense_raw;
    uint32_t *cat_off;
    uint8_t *cat_len;
    char *cat_bytes;

    float *scores;       /* [n], filled by the batcher */

    /* v2: the score output was asked for as binary tensor data (output
     * parameters.binary_data, else request parameters.binary_data_output). */
    int binary_output;

    void *arena;         /* owns every array above */
    size_t arena_size;
} ctr_request_t;

/* What went wrong, for the JSON error body, next to the CTR_E* code the
 * decoder returns (its HTTP status is ctr__http_status(code,
 * CTR__SUBJECT_REQUEST), respond.h). example/feature are -1/"" when they
 * do not apply. docs/DECODER.md lists every name with its code. */
typedef struct {
    const char *name;        /* stable machine-readable name, e.g. "unknown_feature":
                                the error body's "code" (static string) */
    char message[256];       /* human text naming what and where */
    long example;            /* example index or -1 */
    char feature[65];        /* feature name or "" */
} ctr_decode_error_t;

typedef struct {
    size_t max_examples;     /* --max-examples: more is 413 */
    size_t max_depth;        /* nesting bound for unknown JSON values */
} ctr_decode_limits_t;

/* Decode a /v1/score body (DESIGN.md "HTTP API"). On success req is
 * filled and owns its arena (ctr__request_release frees it); on failure
 * returns a negative CTR_E* code, fills e (if not NULL) and leaves req
 * empty. */
int ctr__decode_v1(const ctr_model_t *m, const char *body, size_t len,
                   const ctr_decode_limits_t *lim, ctr_request_t *req,
                   ctr_decode_error_t *e);

/* Decode a KServe v2 / Open Inference Protocol infer body: inputs "dense"
 * (FP32, [B, n_dense]), "sparse" (BYTES or INT64, [B, single-valued
 * categorical features]) and one input per bag feature, named after it
 * (BYTES or INT64, [B, L], L <= its bag_max, padded; docs/DECODER.md). */
int ctr__decode_v2(const ctr_model_t *m, const char *body, size_t len,
                   const ctr_decode_limits_t *lim, ctr_request_t *req,
                   ctr_decode_error_t *e);

/* Triton's binary tensor data extension (docs/DECODER.md "v2 binary"):
 * body holds a JSON header of header_len bytes (the request's
 * Inference-Header-Content-Length), then the raw little-endian, row-major
 * data of each input whose parameters.binary_data_size is set, in input
 * order. The request decoded is the one its JSON form would give, value
 * for value. header_len > len is an error (bad_header_length). */
int ctr__decode_v2_binary(const ctr_model_t *m, const char *body, size_t len, size_t header_len,
                          const ctr_decode_limits_t *lim, ctr_request_t *req,
                          ctr_decode_error_t *e);

void ctr__request_release(ctr_request_t *req);

/* The model a /v1/score body names, found without decoding it: the
 * top-level members before "model" are skipped (validated), so a body
 * that puts "model" first costs next to nothing, one without it a full
 * scan. Returns 1 with its unescaped text in name (at most cap bytes) and
 * its full length in *name_len (> cap: too long for any name); 0 when the
 * body names none or is not well-formed up to it, and "model" that is
 * not a string: the decoder then reports what is wrong. */
int ctr__decode_v1_model(const char *body, size_t len, char *name, size_t cap, size_t *name_len);

#endif
