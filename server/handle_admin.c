/* handle_admin.c - POST /v1/admin/reload (see routes.h; docs/API.md).
 *
 * The endpoint exists only with --admin-token (404 admin_disabled
 * without); a request needs "Authorization: Bearer <token>" (401 without,
 * 403 with a wrong one). The token is compared in constant time: both
 * sides are hashed, then compared with CRYPTO_memcmp. Checked after the
 * body was read, like every refusal that is not decided by the headers
 * alone (so a 413 for an over-long body comes first).
 *
 * Body: empty or {} (reload the default model from its path), {"path":
 * "FILE"} (the default model from FILE), {"model": "NAME"} and
 * {"model": "NAME", "path": "FILE"} (that model). One model per call, as
 * /v1/score's default is the first model; SIGHUP reloads every model. The
 * reload runs on the model's store thread with the connection suspended;
 * its outcome is answered on resume. */
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "ctr/common.h"
#include "routes.h"

/* 0, or the CTR_E* code to refuse with: CTR_ENOTFOUND (no token
 * configured), CTR_EAUTH (no bearer token sent), CTR_EDENIED (wrong). */
static int check_token(const ctr__http_req_t *r)
{
    const char *want = r->h->d.cfg->admin_token;
    if (!want)
        return CTR_ENOTFOUND;
    const char *auth = ctr__http_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!auth || strncasecmp(auth, "Bearer ", 7))
        return CTR_EAUTH;
    const char *tok = auth + 7;
    while (*tok == ' ')
        tok++;
    unsigned char got_sha[SHA256_DIGEST_LENGTH], want_sha[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)tok, strlen(tok), got_sha);
    SHA256((const unsigned char *)want, strlen(want), want_sha);
    int differ = CRYPTO_memcmp(got_sha, want_sha, sizeof got_sha);
    OPENSSL_cleanse(want_sha, sizeof want_sha);
    return differ ? CTR_EDENIED : 0;
}

static void reload_done(void *ctx, const ctr__reload_result_t *res)
{
    ctr__http_req_t *r = ctx;
    r->u.reload.result = *res;
    ctr__http_resume(r);
}

enum MHD_Result ctr__admin_reload(ctr__http_req_t *r)
{
    int rc = check_token(r);
    if (rc == CTR_ENOTFOUND)
        return ctr__http_error(r, rc, "admin_disabled", "admin endpoints are off: start ctrd with --admin-token");
    if (rc == CTR_EAUTH)
        return ctr__http_error(r, rc, "unauthorized", "missing \"Authorization: Bearer <token>\" header");
    if (rc)
        return ctr__http_error(r, rc, "forbidden", "wrong admin token");

    char *path = NULL;
    ctr__modelstore_t *store = ctr__registry_at(r->h->d.models, 0);
    if (r->len > 0) {
        if (!ctr__http_is_json_type(ctr__http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE)))
            return ctr__http_error(r, CTR_EMEDIATYPE, "unsupported_media_type",
                                   "a reload body must be application/json");
        json_error_t je;
        json_t *j = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &je);
        json_t *p = j ? json_object_get(j, "path") : NULL;
        json_t *m = j ? json_object_get(j, "model") : NULL;
        if (!j || !json_is_object(j) || (p && !json_is_string(p)) || (m && !json_is_string(m)) ||
            json_object_size(j) != (p ? 1u : 0u) + (m ? 1u : 0u)) {
            json_decref(j);
            return ctr__http_error(r, CTR_EINVAL, "bad_request",
                                   "the reload body is {}, {\"path\": \"FILE\"}, {\"model\": \"NAME\"} or both");
        }
        if (m && !(store = ctr__registry_find(r->h->d.models, json_string_value(m), json_string_length(m)))) {
            enum MHD_Result answered = MHD_NO;
            ctr__model_lookup(r, json_string_value(m), json_string_length(m), NULL, &answered);
            json_decref(j);
            return answered;
        }
        if (p && !(path = strdup(json_string_value(p)))) {
            json_decref(j);
            return MHD_NO;
        }
        json_decref(j);
    }
    r->u.reload.model = ctr__modelstore_name(store);
    ctr__http_suspend(r);
    rc = ctr__modelstore_reload_async(store, path, reload_done, r);
    free(path);
    if (rc) {
        ctr__reload_result_t *res = &r->u.reload.result;
        memset(res, 0, sizeof *res);
        res->rc = rc;
        snprintf(res->message, sizeof res->message, "%s", ctr_strerror(rc));
        ctr__http_resume(r);
    }
    return MHD_YES;
}

/* The outcome: 200, or the loader's code about the model file (422 for a
 * bad file, 500 for I/O; 503 draining when the store stopped reloading). */
enum MHD_Result ctr__admin_reload_resume(ctr__http_req_t *r)
{
    const ctr__reload_result_t *res = &r->u.reload.result;
    if (res->rc) {
        char msg[700];
        snprintf(msg, sizeof msg, "%s; still serving %s", res->message,
                 res->digest[0] ? res->digest : "the previous model");
        return ctr__http_error_at(r, res->rc, CTR__SUBJECT_MODEL,
                                  res->rc == CTR_EBUSY ? "draining" : "reload_failed", msg, -1, NULL);
    }
    ctr__buf_t b;
    if (ctr__buf_init(&b, 256))
        return MHD_NO;
    ctr__buf_printf(&b, "{\"status\":\"%s\",\"model\":", res->unchanged ? "unchanged" : "reloaded");
    ctr__buf_json_str(&b, r->u.reload.model, strlen(r->u.reload.model));
    ctr__buf_printf(&b, ",\"generation\":%llu,\"digest\":", (unsigned long long)res->generation);
    ctr__buf_json_str(&b, res->digest, strlen(res->digest));
    ctr__buf_puts(&b, ",\"previous_digest\":");
    ctr__buf_json_str(&b, res->previous_digest, strlen(res->previous_digest));
    ctr__buf_printf(&b, ",\"seconds\":%.3f}\n", (double)res->elapsed_ns / 1e9);
    return ctr__http_reply(r, CTR__JSON_TYPE, &b);
}
