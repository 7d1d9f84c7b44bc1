/* respond.c - JSON response bodies and error-code -> HTTP status (see
 * respond.h). */
#include "respond.h"

#include <stdint.h>
#include <string.h>

#include "ctr/common.h"

int ctr__http_status(int code, ctr__subject_t subject)
{
    switch (code) {
    case CTR_OK: return 200;
    case CTR_EINVAL:
    case CTR_ERANGE: return subject == CTR__SUBJECT_MODEL ? 422 : 400;
    case CTR_EFORMAT:
    case CTR_EVERSION:
    case CTR_ECHECKSUM:
    case CTR_EUNSUPPORTED: return subject == CTR__SUBJECT_MODEL ? 422 : 400;
    case CTR_ENOTFOUND: return subject == CTR__SUBJECT_STATE ? 409 : 404;
    case CTR_ETOOBIG: return 413;
    case CTR_EBUSY: return 503;
    case CTR_EAUTH: return 401;
    case CTR_EDENIED: return 403;
    case CTR_EMETHOD: return 405;
    case CTR_ELENGTH: return 411;
    case CTR_EMEDIATYPE: return 415;
    case CTR_ENOMEM:
    case CTR_EIO:
    default: return 500;
    }
}

void ctr__error_json(ctr__buf_t *b, ctr__error_form_t form, const char *code,
                     const char *message, long example, const char *feature)
{
    if (form == CTR__ERROR_V2) {
        /* Open Inference Protocol: "error" is the message string; the
         * machine-readable rest beside it. */
        ctr__buf_puts(b, "{\"error\":");
        ctr__buf_json_str(b, message, strlen(message));
        ctr__buf_puts(b, ",\"code\":");
        ctr__buf_json_str(b, code, strlen(code));
    } else {
        ctr__buf_puts(b, "{\"error\":{\"code\":");
        ctr__buf_json_str(b, code, strlen(code));
        ctr__buf_puts(b, ",\"message\":");
        ctr__buf_json_str(b, message, strlen(message));
    }
    if (example >= 0)
        ctr__buf_printf(b, ",\"example\":%ld", example);
    else
        ctr__buf_puts(b, ",\"example\":null");
    ctr__buf_puts(b, ",\"feature\":");
    if (feature && *feature)
        ctr__buf_json_str(b, feature, strlen(feature));
    else
        ctr__buf_puts(b, "null");
    ctr__buf_puts(b, form == CTR__ERROR_V2 ? "}\n" : "}}\n");
}

size_t ctr__score_json_size_hint(size_t n)
{
    return 512 + CTR_REQUEST_ID_MAX * 6 + n * 17;
}

static void scores_array(ctr__buf_t *b, const ctr_request_t *req)
{
    ctr__buf_putc(b, '[');
    for (size_t i = 0; i < req->n; i++) {
        if (i)
            ctr__buf_putc(b, ',');
        ctr__buf_float(b, req->scores[i]);
    }
    ctr__buf_putc(b, ']');
}

void ctr__score_v1_json(ctr__buf_t *b, const ctr_request_t *req,
                        const char *model_name, const char *digest)
{
    ctr__buf_puts(b, "{\"request_id\":");
    ctr__buf_json_str(b, req->request_id, strnlen(req->request_id, CTR_REQUEST_ID_MAX));
    ctr__buf_puts(b, ",\"model\":{\"name\":");
    ctr__buf_json_str(b, model_name, strlen(model_name));
    ctr__buf_puts(b, ",\"digest\":");
    ctr__buf_json_str(b, digest, strlen(digest));
    ctr__buf_puts(b, "},\"scores\":");
    scores_array(b, req);
    ctr__buf_puts(b, "}\n");
}

void ctr__score_v2_json(ctr__buf_t *b, const ctr_request_t *req,
                        const char *model_name, const char *digest)
{
    ctr__buf_puts(b, "{\"model_name\":");
    ctr__buf_json_str(b, model_name, strlen(model_name));
    ctr__buf_puts(b, ",\"model_version\":");
    ctr__buf_json_str(b, digest, strlen(digest));
    ctr__buf_puts(b, ",\"id\":");
    ctr__buf_json_str(b, req->request_id, strnlen(req->request_id, CTR_REQUEST_ID_MAX));
    ctr__buf_printf(b, ",\"outputs\":[{\"name\":\"score\",\"datatype\":\"FP32\",\"shape\":[%zu,1],\"data\":", req->n);
    scores_array(b, req);
    ctr__buf_puts(b, "}]}\n");
}

size_t ctr__score_v2_binary(ctr__buf_t *b, const ctr_request_t *req,
                            const char *model_name, const char *digest)
{
    ctr__buf_puts(b, "{\"model_name\":");
    ctr__buf_json_str(b, model_name, strlen(model_name));
    ctr__buf_puts(b, ",\"model_version\":");
    ctr__buf_json_str(b, digest, strlen(digest));
    ctr__buf_puts(b, ",\"id\":");
    ctr__buf_json_str(b, req->request_id, strnlen(req->request_id, CTR_REQUEST_ID_MAX));
    ctr__buf_printf(b,
                    ",\"outputs\":[{\"name\":\"score\",\"datatype\":\"FP32\",\"shape\":[%zu,1],"
                    "\"parameters\":{\"binary_data_size\":%zu}}]}",
                    req->n, req->n * sizeof(float));
    size_t header_len = b->len;
    for (size_t i = 0; i < req->n; i++) {
        uint32_t u;
        memcpy(&u, &req->scores[i], sizeof u);
        unsigned char le[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                               (unsigned char)(u >> 24)};
        ctr__buf_put(b, le, sizeof le);
    }
    return header_len;
}
