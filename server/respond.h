/* respond.h - JSON response bodies and the one map from error codes to
 * HTTP status. No network code here: http.c sends what these build.
 *
 * Error body, every status >= 400, in one of two forms:
 *   v1 and every path outside /v2 (CTR__ERROR_V1):
 *     {"error":{"code":"queue_full","message":"...","example":3,"feature":"I5"}}
 *   every /v2 path, unmatched ones included (CTR__ERROR_V2; the Open
 *   Inference Protocol's {"error": "<message>"} with the rest beside it):
 *     {"error":"...","code":"queue_full","example":3,"feature":"I5"}
 * with "example" null and "feature" null where they do not apply. */
#ifndef CTR_SERVER_RESPOND_H
#define CTR_SERVER_RESPOND_H

#include <stddef.h>

#include "buf.h"
#include "ctr/model.h"
#include "decode.h"

/* What a CTR_E* code was about: the same code means a different status
 * for a client's request (CTR_ERANGE: 400) than for a model file being
 * (re)loaded (CTR_ERANGE: the file is bad, 422), or for the server's
 * state (CTR_ENOTFOUND: nothing to act on now, 409: promote without an
 * active shadow). */
typedef enum {
    CTR__SUBJECT_REQUEST = 0,
    CTR__SUBJECT_MODEL = 1,
    CTR__SUBJECT_STATE = 2,
} ctr__subject_t;

/* The one mapping from a CTR_E* code (or 0) to an HTTP status, a request
 * decoder's errors included (each decoder error name comes with the code
 * whose status it has, docs/DECODER.md). */
int ctr__http_status(int code, ctr__subject_t subject);

typedef enum {
    CTR__ERROR_V1 = 0,
    CTR__ERROR_V2 = 1,
} ctr__error_form_t;

/* Error body (see above) into b. example < 0 and feature NULL/"" give
 * null. */
void ctr__error_json(ctr__buf_t *b, ctr__error_form_t form, const char *code,
                     const char *message, long example, const char *feature);

/* 200 body of POST /v1/score:
 *     {"request_id":"...","model":{"name":"...","digest":"sha256:..."},
 *      "scores":[0.0312,...]}
 * every score printed %.9g (parses back to the same float32). */
void ctr__score_v1_json(ctr__buf_t *b, const ctr_request_t *req,
                        const char *model_name, const char *digest);

/* 200 body of POST /v2/models/{name}/infer (Open Inference Protocol):
 *     {"model_name":"...","model_version":"sha256:...","id":"...",
 *      "outputs":[{"name":"score","datatype":"FP32","shape":[B,1],"data":[...]}]} */
void ctr__score_v2_json(ctr__buf_t *b, const ctr_request_t *req,
                        const char *model_name, const char *digest);

/* 200 body of a v2 infer whose score output was asked for as binary
 * tensor data (req->binary_output; Triton's binary extension): the JSON
 * header
 *     {"model_name":"...","model_version":"sha256:...","id":"...",
 *      "outputs":[{"name":"score","datatype":"FP32","shape":[B,1],
 *                  "parameters":{"binary_data_size":4B}}]}
 * then the B scores as raw little-endian float32. Returns the JSON
 * header's length (the response's Inference-Header-Content-Length). */
size_t ctr__score_v2_binary(ctr__buf_t *b, const ctr_request_t *req,
                            const char *model_name, const char *digest);

/* Bytes a score response for n examples may need, for sizing the buffer
 * once (scores take at most 16 bytes each in %.9g plus a comma). */
size_t ctr__score_json_size_hint(size_t n);

#endif
