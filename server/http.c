/* http.c - routing, bodies, suspend/resume and responses over
 * libmicrohttpd (see http.h; endpoints in docs/API.md).
 *
 * Life of a request (one req_t, created on the first access-handler call
 * and freed by the request-completed callback):
 *   1st call     route the path and method; refuse early what must not be
 *                read (413 by Content-Length); otherwise only remember.
 *   body calls   append to the body buffer up to --max-body-bytes; past
 *                that (chunked uploads) or after an early error, discard
 *                up to a bound, then drop the connection.
 *   last call    (*upload_data_size == 0) answer: GETs at once; scoring
 *                requests are decoded, suspended and queued in the batcher;
 *                admin reloads go to the model store's thread, suspended.
 *   resumed call the scored (or reloaded) request's response is built and
 *                queued.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "buf.h"
#include "clock.h"
#include "ctr/common.h"
#include "log.h"
#include "metrics.h"
#include "decode.h"
#include "respond.h"

#define DECODE_MAX_DEPTH 32
#define V2_NAME_MAX 256
#define JSON_TYPE "application/json"

typedef enum {
    R_NONE = 0,
    R_SCORE_V1,
    R_INFER_V2,
    R_RELOAD,
    R_HEALTHZ,
    R_READYZ,
    R_MODELS,
    R_METRICS,
    R_V2_SERVER,
    R_V2_LIVE,
    R_V2_READY,
    R_V2_MODEL,
    R_V2_MODEL_READY,
} route_t;

typedef enum {
    S_RECEIVING = 0,   /* headers seen, body (if any) coming */
    S_WAITING,         /* suspended: in the batcher or the reload queue */
    S_READY,           /* resumed: a result to turn into a response */
} state_t;

struct ctr__http {
    ctr__http_deps_t d;
    struct MHD_Daemon *daemon;
    unsigned port;
    atomic_int draining;
    atomic_size_t in_flight;
    atomic_uint_fast64_t next_id;
    uint32_t boot_tag;             /* makes generated request ids unique per process */
    unsigned char token_sha[SHA256_DIGEST_LENGTH];
    int has_token;
    char *tls_cert, *tls_key;
};

typedef struct {
    ctr__http_t *h;
    struct MHD_Connection *conn;
    route_t route;
    ctr__endpoint_t ep;
    state_t state;
    uint64_t t_start_ns;           /* monotonic, headers received */
    uint64_t t_received_real_ns;
    int admitted;                  /* arrived before drain started */
    int close_conn;                /* answer with Connection: close */
    const char *method;            /* static strings for the log */
    char path[96];                 /* start of the path, for the log */
    char v2_name[V2_NAME_MAX + 1]; /* {name} of /v2/models/{name}/... */

    /* Body. */
    char *body;
    size_t len, cap;
    uint64_t discarded;

    /* An error decided before the last call, answered on it. */
    int err_status;
    const char *err_code;
    char err_msg[200];
    const char *allow;             /* Allow header of a 405 */

    /* Scoring. */
    ctr__gen_t *gen;
    ctr_request_t req;
    int req_valid;
    ctr__job_t job;
    int queue_refused;             /* the batcher said CTR_EBUSY */
    int release_status;            /* from the audit hook's release */

    /* Admin reload. */
    ctr__reload_result_t reload;
} req_t;

/* ------------------------------------------------------------------ */
/* Responses                                                           */

static void log_request(const req_t *r, int status)
{
    /* 500s are worth a line each; 503s come in floods under overload and
     * are counted in /metrics instead. */
    ctr_log_level_t lvl = status >= 500 && status != 503 ? CTR_LOG_WARN : CTR_LOG_DEBUG;
    if (!ctr__log_enabled(lvl))
        return;
    ctr__log(lvl, "request", CTR_LOG_S("method", r->method), CTR_LOG_S("path", r->path),
             CTR_LOG_I("status", status), CTR_LOG_U("examples", r->req_valid ? r->req.n : 0),
             CTR_LOG_S("request_id", r->req_valid ? r->req.request_id : ""),
             CTR_LOG_D("ms", (double)(ctr__mono_ns() - r->t_start_ns) / 1e6), CTR_LOG_END);
}

/* Queues body (heap, taken over) with status; NULL body = out of memory. */
static enum MHD_Result send_body(req_t *r, int status, const char *ctype, char *body, size_t len,
                                 int retry_after)
{
    if (!body)
        return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (status == 405 && r->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (retry_after)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (atomic_load(&r->h->draining) || r->close_conn)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    ctr__metrics_request(r->ep, status, ctr__mono_ns() - r->t_start_ns);
    log_request(r, status);
    return ok;
}

static enum MHD_Result send_buf(req_t *r, int status, const char *ctype, ctr__buf_t *b, int retry_after)
{
    if (b->failed) {
        ctr__buf_free(b);
        return MHD_NO;
    }
    size_t len;
    char *p = ctr__buf_take(b, &len);
    return send_body(r, status, ctype, p, len, retry_after);
}

static enum MHD_Result send_error(req_t *r, int status, const char *code, const char *msg,
                                  long example, const char *feature)
{
    ctr__buf_t b;
    if (ctr__buf_init(&b, 256))
        return MHD_NO;
    ctr__error_json(&b, code, msg, example, feature);
    return send_buf(r, status, JSON_TYPE, &b, status == 503);
}

static enum MHD_Result send_json(req_t *r, int status, const char *text)
{
    char *p = strdup(text);
    return send_body(r, status, JSON_TYPE, p, p ? strlen(p) : 0, 0);
}

/* Records an error to answer on the last call (the body is discarded). */
static void defer_error(req_t *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void defer_error(req_t *r, int status, const char *code, const char *fmt, ...)
{
    if (r->err_status)
        return;       /* the first error wins */
    r->err_status = status;
    r->err_code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err_msg, sizeof r->err_msg, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Routing                                                             */

typedef struct {
    const char *path;
    route_t route;
    ctr__endpoint_t ep;
    int post;           /* 1: POST, 0: GET (and HEAD) */
} fixed_route_t;

static const fixed_route_t fixed_routes[] = {
    {"/v1/score", R_SCORE_V1, CTR__EP_SCORE, 1},
    {"/healthz", R_HEALTHZ, CTR__EP_HEALTH, 0},
    {"/readyz", R_READYZ, CTR__EP_READY, 0},
    {"/v1/models", R_MODELS, CTR__EP_MODELS, 0},
    {"/metrics", R_METRICS, CTR__EP_METRICS, 0},
    {"/v1/admin/reload", R_RELOAD, CTR__EP_RELOAD, 1},
    {"/v2", R_V2_SERVER, CTR__EP_V2_META, 0},
    {"/v2/health/live", R_V2_LIVE, CTR__EP_HEALTH, 0},
    {"/v2/health/ready", R_V2_READY, CTR__EP_READY, 0},
};

/* Sets r->route/ep from url and method, or defers a 404/405. */
static void route(req_t *r, const char *url, const char *method)
{
    int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    int is_post = !strcmp(method, "POST");
    int want_post = -1;
    r->method = is_get ? (method[0] == 'H' ? "HEAD" : "GET") : is_post ? "POST" : "other";
    snprintf(r->path, sizeof r->path, "%s", url);

    for (size_t i = 0; i < CTR_ARRAY_LEN(fixed_routes); i++)
        if (!strcmp(url, fixed_routes[i].path)) {
            r->route = fixed_routes[i].route;
            r->ep = fixed_routes[i].ep;
            want_post = fixed_routes[i].post;
            break;
        }
    static const char v2m[] = "/v2/models/";
    if (want_post < 0 && !strncmp(url, v2m, sizeof v2m - 1)) {
        const char *name = url + sizeof v2m - 1;
        const char *slash = strchr(name, '/');
        size_t nlen = slash ? (size_t)(slash - name) : strlen(name);
        const char *rest = name + nlen;
        if (nlen > 0 && nlen <= V2_NAME_MAX) {
            if (!*rest) {
                r->route = R_V2_MODEL;
                want_post = 0;
            } else if (!strcmp(rest, "/ready")) {
                r->route = R_V2_MODEL_READY;
                want_post = 0;
            } else if (!strcmp(rest, "/infer")) {
                r->route = R_INFER_V2;
                want_post = 1;
            }
            if (want_post >= 0) {
                memcpy(r->v2_name, name, nlen);
                r->v2_name[nlen] = '\0';
                r->ep = r->route == R_INFER_V2 ? CTR__EP_INFER : CTR__EP_V2_META;
            }
        }
    }
    if (want_post < 0) {
        r->route = R_NONE;
        r->ep = CTR__EP_OTHER;
        defer_error(r, 404, "not_found", "no endpoint at %.100s (see docs/API.md)", url);
        return;
    }
    if (want_post ? !is_post : !is_get) {
        r->allow = want_post ? "POST" : "GET, HEAD";
        defer_error(r, 405, "method_not_allowed", "%.20s is not allowed on %.100s; use %s",
                    method, url, r->allow);
    }
}

/* "application/json", optionally with "; charset=utf-8" (any case, quotes
 * allowed); any other media type or charset is refused. */
static int json_content_type(const char *ct)
{
    if (!ct)
        return 0;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t tl = sizeof JSON_TYPE - 1;
    if (strncasecmp(ct, JSON_TYPE, tl))
        return 0;
    const char *p = ct + tl;
    while (*p == ' ' || *p == '\t')
        p++;
    while (*p == ';') {
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        const char *name = p;
        while (*p && *p != '=' && *p != ';')
            p++;
        size_t nl = (size_t)(p - name);
        while (nl && (name[nl - 1] == ' ' || name[nl - 1] == '\t'))
            nl--;
        if (*p != '=')
            return nl == 0 && !*p;   /* a stray trailing ';' is tolerated */
        p++;
        const char *val = p;
        while (*p && *p != ';')
            p++;
        size_t vl = (size_t)(p - val);
        while (vl && (val[vl - 1] == ' ' || val[vl - 1] == '\t'))
            vl--;
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
            val++;
            vl -= 2;
        }
        if (nl == 7 && !strncasecmp(name, "charset", 7) &&
            !((vl == 5 && !strncasecmp(val, "utf-8", 5)) || (vl == 4 && !strncasecmp(val, "utf8", 4))))
            return 0;
    }
    return *p == '\0';
}

/* ------------------------------------------------------------------ */
/* GET endpoints                                                       */

static int name_matches(const req_t *r, const ctr__gen_t *g)
{
    return !strcmp(r->v2_name, g->name);
}

static enum MHD_Result model_not_found(req_t *r, const ctr__gen_t *g)
{
    char msg[V2_NAME_MAX + 160];
    snprintf(msg, sizeof msg, "no model named \"%s\" here; this server serves \"%.100s\"",
             r->v2_name, g->name);
    return send_error(r, 404, "model_not_found", msg, -1, NULL);
}

static enum MHD_Result draining_error(req_t *r)
{
    return send_error(r, 503, "draining", "the server is shutting down; retry on another instance", -1, NULL);
}

static enum MHD_Result handle_get(req_t *r)
{
    ctr__http_t *h = r->h;
    int draining = atomic_load(&h->draining);
    enum MHD_Result ok;
    ctr__buf_t b;
    ctr__gen_t *g;

    switch (r->route) {
    case R_HEALTHZ:
    case R_V2_LIVE:
        return send_json(r, 200, "{\"status\":\"ok\",\"live\":true}\n");
    case R_READYZ:
    case R_V2_READY:
        if (draining)
            return draining_error(r);
        return send_json(r, 200, "{\"status\":\"ok\",\"ready\":true}\n");
    case R_V2_SERVER:
        return send_json(r, 200, "{\"name\":\"ctrd\",\"version\":\"" CTR__SERVER_VERSION "\",\"extensions\":[]}\n");
    case R_MODELS:
        g = ctr__modelstore_acquire(h->d.store);
        if (ctr__buf_init(&b, g->info_json_len + 32)) {
            ctr__gen_release(g);
            return MHD_NO;
        }
        ctr__buf_puts(&b, "{\"models\":[");
        ctr__buf_put(&b, g->info_json, g->info_json_len);
        ctr__buf_puts(&b, "]}\n");
        ctr__gen_release(g);
        return send_buf(r, 200, JSON_TYPE, &b, 0);
    case R_V2_MODEL:
    case R_V2_MODEL_READY:
        g = ctr__modelstore_acquire(h->d.store);
        if (!name_matches(r, g)) {
            ok = model_not_found(r, g);
        } else if (r->route == R_V2_MODEL_READY) {
            if (draining) {
                ok = draining_error(r);
            } else if (!ctr__buf_init(&b, 128)) {
                ctr__buf_puts(&b, "{\"name\":");
                ctr__buf_json_str(&b, g->name, strlen(g->name));
                ctr__buf_puts(&b, ",\"ready\":true}\n");
                ok = send_buf(r, 200, JSON_TYPE, &b, 0);
            } else {
                ok = MHD_NO;
            }
        } else if (!ctr__buf_init(&b, g->v2_json_len + 2)) {
            ctr__buf_put(&b, g->v2_json, g->v2_json_len);
            ctr__buf_putc(&b, '\n');
            ok = send_buf(r, 200, JSON_TYPE, &b, 0);
        } else {
            ok = MHD_NO;
        }
        ctr__gen_release(g);
        return ok;
    case R_METRICS: {
        ctr__metrics_snapshot_t s;
        memset(&s, 0, sizeof s);
        g = ctr__modelstore_acquire(h->d.store);
        s.model_name = g->name;
        s.digest = g->digest;
        s.generation = g->id;
        s.loaded_real_ns = g->loaded_real_ns;
        s.kernel = h->d.kernel->name;
        s.bit_exact = h->d.kernel->bit_exact;
        s.queued_examples = ctr__batcher_queued(h->d.batcher);
        s.queue_limit = h->d.cfg->queue_limit;
        s.in_flight = atomic_load(&h->in_flight);
        s.draining = draining;
        ctr__audit_stats(h->d.audit, &s.audit);
        if (ctr__buf_init(&b, 16384)) {
            ctr__gen_release(g);
            return MHD_NO;
        }
        ctr__metrics_render(&b, &s);
        ctr__gen_release(g);
        return send_buf(r, 200, "text/plain; version=0.0.4; charset=utf-8", &b, 0);
    }
    default:
        return send_error(r, 500, "internal", "unrouted request", -1, NULL);
    }
}

/* ------------------------------------------------------------------ */
/* Scoring                                                             */

/* Audit hook release (audit_writer.h): any thread. Resumes the connection;
 * the response is built on the resumed access-handler call. */
static void job_released(ctr__audit_item_t *item, int status)
{
    ctr__job_t *job = (ctr__job_t *)((char *)item - offsetof(ctr__job_t, item));
    req_t *r = (req_t *)((char *)job - offsetof(req_t, job));
    r->release_status = status;
    r->state = S_READY;
    MHD_resume_connection(r->conn);
}

static enum MHD_Result handle_score(req_t *r)
{
    ctr__http_t *h = r->h;
    const ctr__config_t *cfg = h->d.cfg;
    ctr_decode_error_t e;
    int rc;

    r->gen = ctr__modelstore_acquire(h->d.store);
    if (r->route == R_INFER_V2 && !name_matches(r, r->gen))
        return model_not_found(r, r->gen);

    ctr_decode_limits_t lim = {.max_examples = cfg->max_examples, .max_depth = DECODE_MAX_DEPTH};
    memset(&e, 0, sizeof e);
    e.example = -1;
    const char *body = r->body ? r->body : "";
    if (r->route == R_SCORE_V1)
        rc = ctr__decode_v1(r->gen->model, body, r->len, &lim, &r->req, &e);
    else
        rc = ctr__decode_v2(r->gen->model, body, r->len, &lim, &r->req, &e);
    /* The body is not needed any more: give its memory back now. */
    free(r->body);
    r->body = NULL;
    r->cap = r->len = 0;
    if (rc)
        return send_error(r, ctr__http_status(rc, CTR__SUBJECT_REQUEST), e.name ? e.name : "bad_request",
                          e.message[0] ? e.message : ctr_strerror(rc), e.example, e.feature);
    r->req_valid = 1;
    if (r->req.n == 0)
        return send_error(r, 400, "missing_examples", "the request holds no examples", -1, NULL);
    if (!r->req.request_id[0]) {
        uint64_t id = atomic_fetch_add(&h->next_id, 1);
        snprintf(r->req.request_id, sizeof r->req.request_id, "%08x-%012llx", h->boot_tag,
                 (unsigned long long)id);
    }

    r->job.req = &r->req;
    r->job.gen = r->gen;
    r->job.item.req = &r->req;
    r->job.item.t_received_ns = r->t_received_real_ns;
    r->job.item.release = job_released;
    r->state = S_WAITING;
    /* Suspend before queueing: the release may come from a scoring thread
     * before this call returns. */
    MHD_suspend_connection(r->conn);
    rc = ctr__batcher_submit(h->d.batcher, &r->job);
    if (rc) {
        r->queue_refused = 1;
        r->release_status = rc;
        r->state = S_READY;
        MHD_resume_connection(r->conn);
    }
    return MHD_YES;
}

static enum MHD_Result finish_score(req_t *r)
{
    int rs = r->release_status;
    if (r->queue_refused) {
        ctr__metrics_rejected();
        if (atomic_load(&r->h->draining))
            return draining_error(r);
        char msg[160];
        snprintf(msg, sizeof msg, "the scoring queue is full (--queue-limit %llu examples); retry shortly",
                 (unsigned long long)r->h->d.cfg->queue_limit);
        return send_error(r, 503, "queue_full", msg, -1, NULL);
    }
    if (rs == CTR_EBUSY)
        return send_error(r, 503, "audit_busy", "the audit log cannot keep up; retry shortly", -1, NULL);
    if (rs < 0)
        return send_error(r, 503, "audit_failed", "the audit record could not be written; the score is withheld",
                          -1, NULL);
    if (r->job.item.score_status)
        return send_error(r, 500, "scoring_failed", ctr_strerror(r->job.item.score_status), -1, NULL);
    ctr__buf_t b;
    if (ctr__buf_init(&b, ctr__score_json_size_hint(r->req.n)))
        return MHD_NO;
    if (r->route == R_SCORE_V1)
        ctr__score_v1_json(&b, &r->req, r->gen->name, r->gen->digest);
    else
        ctr__score_v2_json(&b, &r->req, r->gen->name, r->gen->digest);
    return send_buf(r, 200, JSON_TYPE, &b, 0);
}

/* ------------------------------------------------------------------ */
/* Admin                                                               */

/* 0 ok, else the status to answer (401, 403, 404). Constant time in the
 * token: both sides are hashed, then compared with CRYPTO_memcmp. */
static int check_admin(req_t *r)
{
    ctr__http_t *h = r->h;
    if (!h->has_token)
        return 404;
    const char *auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!auth || strncasecmp(auth, "Bearer ", 7))
        return 401;
    const char *tok = auth + 7;
    while (*tok == ' ')
        tok++;
    unsigned char sha[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)tok, strlen(tok), sha);
    return CRYPTO_memcmp(sha, h->token_sha, sizeof sha) ? 403 : 0;
}

static void reload_done(void *ctx, const ctr__reload_result_t *res)
{
    req_t *r = ctx;
    r->reload = *res;
    r->state = S_READY;
    MHD_resume_connection(r->conn);
}

static enum MHD_Result handle_reload(req_t *r)
{
    int st = check_admin(r);
    if (st == 404)
        return send_error(r, 404, "admin_disabled", "admin endpoints are off: start ctrd with --admin-token", -1, NULL);
    if (st == 401)
        return send_error(r, 401, "unauthorized", "missing \"Authorization: Bearer <token>\" header", -1, NULL);
    if (st == 403)
        return send_error(r, 403, "forbidden", "wrong admin token", -1, NULL);

    /* Optional body {"path": "/new/model.ctrm"}; empty = reload --model. */
    char *path = NULL;
    if (r->len > 0) {
        const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (!json_content_type(ct))
            return send_error(r, 415, "unsupported_media_type", "a reload body must be application/json", -1, NULL);
        json_error_t je;
        json_t *j = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &je);
        json_t *p = j ? json_object_get(j, "path") : NULL;
        if (!j || !json_is_object(j) || (p && !json_is_string(p)) || json_object_size(j) != (p ? 1u : 0u)) {
            json_decref(j);
            return send_error(r, 400, "bad_request", "the reload body is {} or {\"path\": \"FILE\"}", -1, NULL);
        }
        if (p && !(path = strdup(json_string_value(p)))) {
            json_decref(j);
            return MHD_NO;
        }
        json_decref(j);
    }
    r->state = S_WAITING;
    MHD_suspend_connection(r->conn);
    int rc = ctr__modelstore_reload_async(r->h->d.store, path, reload_done, r);
    free(path);
    if (rc) {
        memset(&r->reload, 0, sizeof r->reload);
        r->reload.rc = rc;
        snprintf(r->reload.message, sizeof r->reload.message, "%s", ctr_strerror(rc));
        r->state = S_READY;
        MHD_resume_connection(r->conn);
    }
    return MHD_YES;
}

static enum MHD_Result finish_reload(req_t *r)
{
    const ctr__reload_result_t *res = &r->reload;
    if (res->rc) {
        char msg[700];
        snprintf(msg, sizeof msg, "%s; still serving %s", res->message,
                 res->digest[0] ? res->digest : "the previous model");
        int status = ctr__http_status(res->rc, CTR__SUBJECT_MODEL);
        return send_error(r, status, status == 503 ? "draining" : "reload_failed", msg, -1, NULL);
    }
    ctr__buf_t b;
    if (ctr__buf_init(&b, 256))
        return MHD_NO;
    ctr__buf_printf(&b, "{\"status\":\"%s\",\"generation\":%llu,\"digest\":",
                    res->unchanged ? "unchanged" : "reloaded", (unsigned long long)res->generation);
    ctr__buf_json_str(&b, res->digest, strlen(res->digest));
    ctr__buf_puts(&b, ",\"previous_digest\":");
    ctr__buf_json_str(&b, res->previous_digest, strlen(res->previous_digest));
    ctr__buf_printf(&b, ",\"seconds\":%.3f}\n", (double)res->elapsed_ns / 1e9);
    return send_buf(r, 200, JSON_TYPE, &b, 0);
}

/* ------------------------------------------------------------------ */
/* libmicrohttpd callbacks                                             */

typedef struct {
    const char *first;   /* the Content-Length value libmicrohttpd uses */
    int conflict;        /* another Content-Length with a different value */
} framing_t;

static enum MHD_Result count_lengths(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    framing_t *f = cls;
    if (key && value && f->first && !strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) &&
        strcmp(value, f->first))
        f->conflict = 1;
    return MHD_YES;
}

/* First call: route, check headers, size the body buffer. Returns MHD_NO
 * to drop the connection; may queue an early 413. */
static enum MHD_Result first_call(ctr__http_t *h, struct MHD_Connection *conn, const char *url,
                                  const char *method, void **con_cls)
{
    req_t *r = calloc(1, sizeof *r);
    if (!r)
        return MHD_NO;
    r->h = h;
    r->conn = conn;
    r->t_start_ns = ctr__mono_ns();
    r->t_received_real_ns = ctr__real_ns();
    r->admitted = !atomic_load(&h->draining);
    r->req.request_id[0] = '\0';
    *con_cls = r;
    atomic_fetch_add(&h->in_flight, 1);

    route(r, url, method);
    if (r->err_status)
        return MHD_YES;
    int scoring = r->route == R_SCORE_V1 || r->route == R_INFER_V2;
    if (!r->admitted && (scoring || r->route == R_RELOAD)) {
        defer_error(r, 503, "draining", "the server is shutting down; retry on another instance");
        return MHD_YES;
    }
    if (!scoring && r->route != R_RELOAD)
        return MHD_YES;

    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    uint64_t max = h->d.cfg->max_body_bytes;
    /* Ambiguous framing (RFC 9112 6.3): Content-Length twice with other
     * values, or beside Transfer-Encoding. libmicrohttpd frames by the first
     * Content-Length (or by the chunks); a proxy in front may pick another,
     * and the bytes left over would be read as the next request (request
     * smuggling). Refuse before reading; the connection is closed. */
    framing_t fr = {cl, 0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_lengths, &fr);
    if (fr.conflict || (cl && te)) {
        r->close_conn = 1;
        return send_error(r, 400, "bad_request",
                          fr.conflict ? "conflicting Content-Length headers"
                                      : "both Content-Length and Transfer-Encoding",
                          -1, NULL);
    }
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (!errno && end != cl && n > max) {
            /* Refuse before reading: queueing now makes libmicrohttpd
             * close the connection after the answer instead of reading a
             * body we would throw away. */
            char msg[160];
            snprintf(msg, sizeof msg, "the body is %llu bytes; the limit is %llu (--max-body-bytes)",
                     n, (unsigned long long)max);
            return send_error(r, 413, "body_too_large", msg, -1, NULL);
        }
        if (!errno && end != cl && n > 0) {
            r->body = malloc((size_t)n + 1);
            if (!r->body)
                return MHD_NO;
            r->cap = (size_t)n + 1;
        }
    } else if (scoring && !(te && strcasestr(te, "chunked"))) {
        defer_error(r, 411, "length_required", "send the body with Content-Length or chunked transfer encoding");
        return MHD_YES;
    }
    if (scoring) {
        const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (!json_content_type(ct))
            defer_error(r, 415, "unsupported_media_type",
                        "Content-Type must be application/json (charset utf-8 if given), got \"%.80s\"",
                        ct ? ct : "(none)");
    }
    return MHD_YES;
}

/* Body bytes: keep them (up to the limit) or count them away. */
static enum MHD_Result upload(req_t *r, const char *data, size_t size)
{
    uint64_t max = r->h->d.cfg->max_body_bytes;
    if (!r->err_status && r->len + size > max) {
        defer_error(r, 413, "body_too_large", "the body is over %llu bytes (--max-body-bytes)",
                    (unsigned long long)max);
        free(r->body);
        r->body = NULL;
        r->discarded = r->len;
        r->len = r->cap = 0;
    }
    if (r->err_status) {
        /* Read at most about another limit's worth, then hang up: a
         * client must not make us read forever. */
        r->discarded += size;
        return r->discarded > 2 * max ? MHD_NO : MHD_YES;
    }
    if (r->len + size + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + size + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = (size_t)max + 1;
        char *p = realloc(r->body, cap);
        if (!p)
            return MHD_NO;
        r->body = p;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, size);
    r->len += size;
    r->body[r->len] = '\0';
    return MHD_YES;
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    (void)version;
    ctr__http_t *h = cls;
    req_t *r = *con_cls;
    if (!r)
        return first_call(h, conn, url, method, con_cls);
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return upload(r, upload_data, n);
    }
    if (r->state == S_READY)
        return r->route == R_RELOAD ? finish_reload(r) : finish_score(r);
    if (r->state == S_WAITING)
        return MHD_YES;                 /* cannot happen while suspended */
    if (r->err_status)
        return send_error(r, r->err_status, r->err_code, r->err_msg, -1, NULL);
    switch (r->route) {
    case R_SCORE_V1:
    case R_INFER_V2:
        return handle_score(r);
    case R_RELOAD:
        return handle_reload(r);
    default:
        return handle_get(r);
    }
}

static void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    ctr__http_t *h = cls;
    req_t *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    /* Suspended requests are never completed (we never stop the daemon
     * with any), so nothing else points at r any more. */
    CTR_ASSERT(r->state != S_WAITING);
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && ctr__log_enabled(CTR_LOG_DEBUG))
        ctr__log(CTR_LOG_DEBUG, "request ended early", CTR_LOG_S("path", r->path),
                 CTR_LOG_I("reason", (int)toe), CTR_LOG_END);
    if (r->req_valid)
        ctr__request_release(&r->req);
    ctr__gen_release(r->gen);
    free(r->body);
    free(r);
    atomic_fetch_sub(&h->in_flight, 1);
}

/* libmicrohttpd's messages, at most 10 a second: some ("Server reached
 * connection limit") repeat once per connection under a flood. */
static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    static atomic_uint_fast64_t window_start, in_window, suppressed;
    uint64_t now_s = ctr__mono_ns() / 1000000000u;
    uint64_t ws = atomic_load(&window_start);
    if (ws != now_s && atomic_compare_exchange_strong(&window_start, &ws, now_s)) {
        atomic_store(&in_window, 0);
        uint64_t dropped = atomic_exchange(&suppressed, 0);
        if (dropped)
            ctr__log(CTR_LOG_WARN, "libmicrohttpd messages suppressed", CTR_LOG_U("count", dropped), CTR_LOG_END);
    }
    if (atomic_fetch_add(&in_window, 1) >= 10) {
        atomic_fetch_add(&suppressed, 1);
        return;
    }
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    ctr__log(CTR_LOG_WARN, "libmicrohttpd", CTR_LOG_S("detail", msg), CTR_LOG_END);
}

static void mhd_panic(void *cls, const char *file, unsigned int line, const char *reason)
{
    (void)cls;
    ctr__log(CTR_LOG_ERROR, "libmicrohttpd panic", CTR_LOG_S("file", file), CTR_LOG_U("line", line),
             CTR_LOG_S("reason", reason ? reason : ""), CTR_LOG_END);
    abort();
}

/* ------------------------------------------------------------------ */
/* Start and stop                                                      */

static char *read_file(const char *path, char *err, size_t errlen, int *rc)
{
    FILE *f = fopen(path, "rb");
    char *p = NULL;
    if (!f) {
        *rc = ctr_error(err, errlen, CTR_EIO, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) || ftell(f) < 0 || ftell(f) > (1 << 24)) {
        *rc = ctr_error(err, errlen, CTR_EIO, "cannot read %s (or over 16 MiB)", path);
        goto out;
    }
    long n = ftell(f);
    rewind(f);
    if (!(p = malloc((size_t)n + 1))) {
        *rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
        goto out;
    }
    if (fread(p, 1, (size_t)n, f) != (size_t)n) {
        *rc = ctr_error(err, errlen, CTR_EIO, "cannot read %s: %s", path, strerror(errno));
        free(p);
        p = NULL;
        goto out;
    }
    p[n] = '\0';
out:
    fclose(f);
    return p;
}

int ctr__http_start(const ctr__http_deps_t *deps, ctr__http_t **out, char *err, size_t errlen)
{
    int rc = 0;
    const ctr__config_t *cfg = deps->cfg;
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    struct sockaddr *sa;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;

    ctr__http_t *h = calloc(1, sizeof *h);
    if (!h)
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    h->d = *deps;
    atomic_init(&h->draining, 0);
    atomic_init(&h->in_flight, 0);
    atomic_init(&h->next_id, 1);
    h->boot_tag = (uint32_t)(ctr__real_ns() ^ ((uint64_t)getpid() << 16));
    if (cfg->admin_token) {
        SHA256((const unsigned char *)cfg->admin_token, strlen(cfg->admin_token), h->token_sha);
        h->has_token = 1;
    }

    memset(&sin, 0, sizeof sin);
    memset(&sin6, 0, sizeof sin6);
    if (inet_pton(AF_INET, cfg->host, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)cfg->port);
        sa = (struct sockaddr *)&sin;
    } else if (inet_pton(AF_INET6, cfg->host, &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons((uint16_t)cfg->port);
        sa = (struct sockaddr *)&sin6;
        /* "::" serves IPv4 too (v4-mapped), as users of 0.0.0.0 expect. */
        flags |= IN6_IS_ADDR_UNSPECIFIED(&sin6.sin6_addr) ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
    } else {
        rc = ctr_error(err, errlen, CTR_EINVAL, "--host \"%s\" is not an IPv4 or IPv6 address", cfg->host);
        goto fail;
    }
    /* epoll where libmicrohttpd has it, its best choice otherwise. */
    flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL : MHD_USE_AUTO;
    if (cfg->tls_cert) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            rc = ctr_error(err, errlen, CTR_EUNSUPPORTED, "this libmicrohttpd was built without TLS");
            goto fail;
        }
        if (!(h->tls_cert = read_file(cfg->tls_cert, err, errlen, &rc)) ||
            !(h->tls_key = read_file(cfg->tls_key, err, errlen, &rc)))
            goto fail;
        flags |= MHD_USE_TLS;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned pool = cfg->http_threads ? (unsigned)cfg->http_threads
                                      : (unsigned)(cores > 2 ? cores : 2);
    /* One epoll thread stalls at exactly 256/512 connections in 0.9.75. */
    if (pool < 2)
        pool = 2;

    MHD_set_panic_func(mhd_panic, NULL);
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key},
        {MHD_OPTION_END, 0, NULL},
    };
    h->daemon = MHD_start_daemon(
        flags, (uint16_t)cfg->port, NULL, NULL, access_handler, h,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, h,      /* first, to catch everything */
        MHD_OPTION_SOCK_ADDR, sa,
        MHD_OPTION_THREAD_POOL_SIZE, pool,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->conn_timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, request_completed, h,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        MHD_OPTION_ARRAY, cfg->tls_cert ? tls_opts : &tls_opts[2],
        MHD_OPTION_END);
    if (!h->daemon) {
        rc = ctr_error(err, errlen, CTR_EIO, "cannot listen on %s port %llu (in use, or no permission)",
                       cfg->host, (unsigned long long)cfg->port);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : (unsigned)cfg->port;
    ctr__log(CTR_LOG_INFO, "listening", CTR_LOG_S("host", cfg->host), CTR_LOG_U("port", h->port),
             CTR_LOG_B("tls", cfg->tls_cert != NULL), CTR_LOG_U("http_threads", pool),
             CTR_LOG_S("poll", (flags & MHD_USE_EPOLL) ? "epoll" : "auto"), CTR_LOG_END);
    *out = h;
    return 0;
fail:
    ctr__http_stop(h);
    return rc;
}

unsigned ctr__http_port(const ctr__http_t *h)
{
    return h->port;
}

void ctr__http_drain(ctr__http_t *h)
{
    atomic_store(&h->draining, 1);
    /* Stop accepting: libmicrohttpd hands the listening socket back. */
    MHD_socket s = MHD_quiesce_daemon(h->daemon);
    if (s != MHD_INVALID_SOCKET)
        close(s);
}

size_t ctr__http_in_flight(const ctr__http_t *h)
{
    return atomic_load(&h->in_flight);
}

void ctr__http_stop(ctr__http_t *h)
{
    if (!h)
        return;
    if (h->daemon)
        MHD_stop_daemon(h->daemon);
    if (h->tls_key) {
        OPENSSL_cleanse(h->tls_key, strlen(h->tls_key));
        free(h->tls_key);
    }
    free(h->tls_cert);
    OPENSSL_cleanse(h->token_sha, sizeof h->token_sha);
    free(h);
}
