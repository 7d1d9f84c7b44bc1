/* handle_admin.c - POST /v1/admin/reload and /v1/admin/promote (see
 * routes.h; docs/API.md).
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
 * its outcome is answered on resume.
 *
 * Promote: body empty, {} or {"primary": "P"} (P must then be the
 * shadow's primary). The shadow's primary is reloaded from the
 * candidate's current file, a reload like any other (verified beside the
 * serving file, swapped atomically: no request fails); on success the
 * shadow is switched off (shadow.h). 409 no_shadow when no shadow is
 * active (none configured, its candidate did not load, already promoted,
 * or another promote under way). */
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

/* Suspends r and queues the reload of store from path (NULL: its current
 * one) on the store's thread; done resumes r with the result. A reload
 * that cannot be queued is r's result at once. Returns its code. */
static int start_reload(ctr__http_req_t *r, ctr__modelstore_t *store, const char *path,
                        ctr__reload_done_fn done)
{
    ctr__http_suspend(r);
    int rc = ctr__modelstore_reload_async(store, path, done, r);
    if (rc) {
        ctr__reload_result_t *res = &r->u.reload.result;
        memset(res, 0, sizeof *res);
        res->rc = rc;
        snprintf(res->message, sizeof res->message, "%s", ctr_strerror(rc));
        ctr__http_resume(r);
    }
    return rc;
}

/* A body's model name that no model has: 404 model_not_found, in the
 * form ctr__model_lookup gives every unknown name. */
static enum MHD_Result no_such_model(ctr__http_req_t *r, const json_t *name)
{
    enum MHD_Result answered = MHD_NO;
    ctr__model_lookup(r, json_string_value(name), json_string_length(name), NULL, &answered);
    return answered;
}

/* 1 when r may not use an admin endpoint, with the refusal in *answered. */
static int refused(ctr__http_req_t *r, enum MHD_Result *answered)
{
    int rc = check_token(r);
    if (rc == CTR_ENOTFOUND)
        *answered = ctr__http_error(r, rc, "admin_disabled", "admin endpoints are off: start ctrd with --admin-token");
    else if (rc == CTR_EAUTH)
        *answered = ctr__http_error(r, rc, "unauthorized", "missing \"Authorization: Bearer <token>\" header");
    else if (rc)
        *answered = ctr__http_error(r, rc, "forbidden", "wrong admin token");
    return rc != 0;
}

enum MHD_Result ctr__admin_reload(ctr__http_req_t *r)
{
    enum MHD_Result answered;
    if (refused(r, &answered))
        return answered;

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
            answered = no_such_model(r, m);
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
    start_reload(r, store, path, reload_done);
    free(path);
    return MHD_YES;
}

static void promote_done(void *ctx, const ctr__reload_result_t *res)
{
    ctr__http_req_t *r = ctx;
    ctr__shadow_promote_end(r->h->d.shadow, res->rc == 0);
    reload_done(r, res);
}

enum MHD_Result ctr__admin_promote(ctr__http_req_t *r)
{
    enum MHD_Result answered;
    ctr__shadow_t *sh = r->h->d.shadow;
    if (refused(r, &answered))
        return answered;
    if (r->len > 0) {
        if (!ctr__http_is_json_type(ctr__http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE)))
            return ctr__http_error(r, CTR_EMEDIATYPE, "unsupported_media_type",
                                   "a promote body must be application/json");
        json_error_t je;
        json_t *j = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &je);
        json_t *p = j ? json_object_get(j, "primary") : NULL;
        if (!j || !json_is_object(j) || (p && !json_is_string(p)) || json_object_size(j) != (p ? 1u : 0u)) {
            json_decref(j);
            return ctr__http_error(r, CTR_EINVAL, "bad_request", "the promote body is {} or {\"primary\": \"NAME\"}");
        }
        if (p) {
            const char *name = json_string_value(p);
            size_t len = json_string_length(p);
            if (!ctr__registry_find(r->h->d.models, name, len)) {
                answered = no_such_model(r, p);
                json_decref(j);
                return answered;
            }
            if (!sh || strlen(ctr__shadow_primary_name(sh)) != len || memcmp(ctr__shadow_primary_name(sh), name, len)) {
                answered = ctr__http_error_at(r, CTR_ENOTFOUND, CTR__SUBJECT_STATE, "no_shadow",
                                              "the model has no shadow candidate to promote", -1, NULL);
                json_decref(j);
                return answered;
            }
        }
        json_decref(j);
    }
    char path[4096];
    ctr__modelstore_t *store;
    if (ctr__shadow_promote_begin(sh, &store, path, sizeof path))
        return ctr__http_error_at(r, CTR_ENOTFOUND, CTR__SUBJECT_STATE, "no_shadow",
                                  sh ? "no shadow is active (its candidate did not load, it was promoted, or a "
                                       "promote is under way)"
                                     : "no shadow is configured (--shadow CANDIDATE:PRIMARY)",
                                  -1, NULL);
    r->u.reload.model = ctr__shadow_primary_name(sh);
    r->u.reload.promote = 1;
    if (start_reload(r, store, path, promote_done))
        ctr__shadow_promote_end(sh, 0);
    return MHD_YES;
}

/* A promote's 200. */
static enum MHD_Result promoted(ctr__http_req_t *r)
{
    const ctr__reload_result_t *res = &r->u.reload.result;
    const char *c = ctr__shadow_candidate_name(r->h->d.shadow);
    ctr__buf_t b;
    if (ctr__buf_init(&b, 384))
        return MHD_NO;
    ctr__buf_puts(&b, "{\"promoted\":true,\"primary\":");
    ctr__buf_json_str(&b, r->u.reload.model, strlen(r->u.reload.model));
    ctr__buf_puts(&b, ",\"candidate\":");
    ctr__buf_json_str(&b, c, strlen(c));
    ctr__buf_puts(&b, ",\"digest\":");
    ctr__buf_json_str(&b, res->digest, strlen(res->digest));
    ctr__buf_puts(&b, ",\"previous_digest\":");
    ctr__buf_json_str(&b, res->previous_digest, strlen(res->previous_digest));
    ctr__buf_printf(&b, ",\"generation\":%llu,\"elapsed_ms\":%.3f}\n", (unsigned long long)res->generation,
                    (double)res->elapsed_ns / 1e6);
    return ctr__http_reply(r, CTR__JSON_TYPE, &b);
}

/* The outcome: 200, or the loader's code about the model file (422 for a
 * bad file, 500 for I/O; 503 draining when the store stopped reloading).
 * A promote answers the same errors. */
enum MHD_Result ctr__admin_reload_resume(ctr__http_req_t *r)
{
    const ctr__reload_result_t *res = &r->u.reload.result;
    if (!res->rc && r->u.reload.promote)
        return promoted(r);
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
