/* http.c - the connection lifecycle over libmicrohttpd: requests, bodies,
 * suspend/resume, responses, drain (see http.h). It knows no endpoint: the
 * route table (routes.c) says which handler answers a path and method and
 * what to check before it runs; the handlers are handle_*.c.
 *
 * Life of a request (one ctr__http_req_t, created on the first access-handler
 * call and freed by the request-completed callback):
 *   1st call     route the path and method; refuse early what must not be
 *                read (413 by Content-Length, ambiguous framing); otherwise
 *                only remember (404/405, 411, 415, draining).
 *   body calls   append to the body buffer up to --max-body-bytes; past
 *                that (chunked uploads) or after an early error, discard
 *                up to a bound, then drop the connection.
 *   last call    (*upload_data_size == 0) answer a remembered error, or
 *                call the route's on_req, which answers or suspends.
 *   resumed call the route's on_resume answers.
 */
#include "http_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "content_coding.h"
#include "ctr/common.h"
#include "log.h"
#include "routes.h"

#define DRAINING_MSG "the server is shutting down; retry on another instance"

/* ------------------------------------------------------------------ */
/* Responses                                                           */

static void log_request(const ctr__http_req_t *r, int status, int code)
{
    /* Server faults are worth a line each; 503s (CTR_EBUSY) come in
     * floods under overload and are counted in /metrics instead. */
    ctr_log_level_t lvl = status >= MHD_HTTP_INTERNAL_SERVER_ERROR && code != CTR_EBUSY
                              ? CTR_LOG_WARN : CTR_LOG_DEBUG;
    if (!ctr__log_enabled(lvl))
        return;
    const char *model = r->model >= 0 ? ctr__modelstore_name(ctr__registry_at(r->h->d.models, (size_t)r->model)) : "";
    ctr__log(lvl, "request", CTR_LOG_S("method", r->method), CTR_LOG_S("path", r->path),
             CTR_LOG_I("status", status), CTR_LOG_S("model", model), CTR_LOG_U("examples", r->log_examples),
             CTR_LOG_S("request_id", r->log_request_id ? r->log_request_id : ""),
             CTR_LOG_D("ms", (double)(ctr__mono_ns() - r->t_start_ns) / 1e6), CTR_LOG_END);
}

/* Queues body (heap, taken over) with status; NULL body = out of memory.
 * code (CTR_E*, 0 for a success) picks the extra headers. */
static enum MHD_Result send_body(ctr__http_req_t *r, int status, int code, const char *ctype, char *body,
                                 size_t len)
{
    if (!body)
        return MHD_NO;
    int gzipped = 0;
    if (r->accept_gzip && len >= CTR__GZIP_MIN_BYTES) {
        char *z = ctr__coding_gzip(body, &len);
        if (z) {
            free(body);
            body = z;
            gzipped = 1;
        }
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (status == MHD_HTTP_OK && r->reply_infer_header_len) {
        char v[24];
        snprintf(v, sizeof v, "%zu", r->reply_infer_header_len);
        MHD_add_response_header(resp, CTR__INFER_HEADER_LEN, v);
    }
    if (gzipped)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
    if (r->route && (r->route->flags & CTR__ROUTE_V2))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, MHD_HTTP_HEADER_ACCEPT_ENCODING);
    if (code == CTR_EMETHOD && r->allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (code == CTR_EAUTH)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (code == CTR_EBUSY)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (atomic_load(&r->h->draining) || r->close_conn)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    ctr__metrics_request(r->ep, r->model, status, ctr__mono_ns() - r->t_start_ns);
    log_request(r, status, code);
    return ok;
}

static enum MHD_Result send_buf(ctr__http_req_t *r, int status, int code, const char *ctype, ctr__buf_t *b)
{
    if (b->failed) {
        ctr__buf_free(b);
        return MHD_NO;
    }
    size_t len;
    char *p = ctr__buf_take(b, &len);
    return send_body(r, status, code, ctype, p, len);
}

enum MHD_Result ctr__http_reply(ctr__http_req_t *r, const char *ctype, ctr__buf_t *b)
{
    return send_buf(r, MHD_HTTP_OK, 0, ctype, b);
}

enum MHD_Result ctr__http_reply_text(ctr__http_req_t *r, const char *json)
{
    char *p = strdup(json);
    return send_body(r, MHD_HTTP_OK, 0, CTR__JSON_TYPE, p, p ? strlen(p) : 0);
}

enum MHD_Result ctr__http_error_at(ctr__http_req_t *r, int code, ctr__subject_t subject,
                                   const char *name, const char *message,
                                   long example, const char *feature)
{
    ctr__buf_t b;
    if (ctr__buf_init(&b, 256))
        return MHD_NO;
    ctr__error_json(&b, r->err_form, name, message, example, feature);
    return send_buf(r, ctr__http_status(code, subject), code, CTR__JSON_TYPE, &b);
}

enum MHD_Result ctr__http_error(ctr__http_req_t *r, int code, const char *name, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ctr__http_error_at(r, code, CTR__SUBJECT_REQUEST, name, msg, -1, NULL);
}

enum MHD_Result ctr__http_draining_error(ctr__http_req_t *r)
{
    return ctr__http_error(r, CTR_EBUSY, "draining", DRAINING_MSG);
}

/* Records an error to answer on the last call (the body is discarded). */
static void defer_error(ctr__http_req_t *r, int code, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void defer_error(ctr__http_req_t *r, int code, const char *name, const char *fmt, ...)
{
    if (r->err_code)
        return;       /* the first error wins */
    r->err_code = code;
    r->err_name = name;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err_msg, sizeof r->err_msg, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ */
/* What handlers share                                                 */

void ctr__http_suspend(ctr__http_req_t *r)
{
    CTR_ASSERT(r->route->on_resume);   /* a row whose on_req suspends names one */
    r->state = CTR__HTTP_WAITING;
    MHD_suspend_connection(r->conn);
}

void ctr__http_resume(ctr__http_req_t *r)
{
    r->state = CTR__HTTP_READY;
    MHD_resume_connection(r->conn);
}

const char *ctr__http_header(const ctr__http_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *ctr__http_param(const ctr__http_req_t *r, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < r->params.n; i++)
        if (r->params.p[i].name_len == n && !memcmp(r->params.p[i].name, name, n))
            return r->params.p[i].value;
    return "";
}

int ctr__http_draining(const ctr__http_t *h)
{
    return atomic_load(&h->draining);
}

void ctr__http_request_id(ctr__http_t *h, char *out, size_t outlen)
{
    uint64_t id = atomic_fetch_add(&h->next_id, 1);
    snprintf(out, outlen, "%08x-%012llx", h->boot_tag, (unsigned long long)id);
}

int ctr__http_is_json_type(const char *ct)
{
    if (!ct)
        return 0;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t tl = sizeof CTR__JSON_TYPE - 1;
    if (strncasecmp(ct, CTR__JSON_TYPE, tl))
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
/* Content types and encodings of /v2                                  */

/* v is token, case-insensitive, spaces around it allowed, then the end or
 * (params_ok) a ';' starting parameters. */
static int header_is(const char *v, const char *token, int params_ok)
{
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(token);
    if (strncasecmp(v, token, n))
        return 0;
    v += n;
    while (*v == ' ' || *v == '\t')
        v++;
    return *v == '\0' || (params_ok && *v == ';');
}

/* A v2 infer body's Content-Type: absent means JSON (Triton's client sends
 * none), or the binary tensor form with Inference-Header-Content-Length;
 * application/octet-stream only with that header. */
static int v2_type_ok(const char *ct, int binary)
{
    return !ct || ctr__http_is_json_type(ct) ||
           (binary && header_is(ct, "application/octet-stream", 1));
}

/* Replaces the compressed body (r->content_encoding) with its bytes, at
 * most --max-body-bytes of them. Returns 0, CTR_ENOMEM, or CTR_ETOOBIG /
 * CTR_EINVAL with r->err_name and r->err_msg set. */
static int inflate_body(ctr__http_req_t *r)
{
    char *out;
    size_t n;
    int rc = ctr__coding_inflate(r->content_encoding, r->body ? r->body : "", r->len,
                                 r->h->d.cfg->max_body_bytes, &out, &n, r->err_msg, sizeof r->err_msg);
    if (rc) {
        r->err_name = rc == CTR_ETOOBIG ? "body_too_large" : "bad_request";
        return rc;
    }
    free(r->body);
    r->body = out;
    r->len = n;
    r->cap = n + 1;
    r->content_encoding = CTR__ENC_IDENTITY;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Routing                                                             */

/* Sets r->route, r->ep and the path's named segments, or defers a 404/405. */
static void route(ctr__http_req_t *r, const char *url, const char *method)
{
    int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    int is_post = !strcmp(method, "POST");
    r->method = is_get ? (method[0] == 'H' ? "HEAD" : "GET") : is_post ? "POST" : "other";
    snprintf(r->path, sizeof r->path, "%s", url);

    ctr__route_match_t m;
    int rc = ctr__route_match(url, method, &m);
    r->ep = m.ep;
    /* The v2 error form on a v2 row, and on any /v2 path no row takes
     * (404, 405): a v2 client reads every answer under /v2 as one. */
    int v2 = rc == 0 ? (m.route->flags & CTR__ROUTE_V2) != 0
                     : !strncmp(url, "/v2", 3) && (url[3] == '\0' || url[3] == '/');
    r->err_form = v2 ? CTR__ERROR_V2 : CTR__ERROR_V1;
    if (rc == CTR_ENOTFOUND) {
        defer_error(r, rc, "not_found", "no endpoint at %.100s (see docs/API.md)", url);
    } else if (rc == CTR_EMETHOD) {
        snprintf(r->allow, sizeof r->allow, "%s", m.allow);
        defer_error(r, rc, "method_not_allowed", "%.20s is not allowed on %.100s; use %s",
                    method, url, r->allow);
    } else {
        r->route = m.route;
        r->params = m.params;
    }
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
 * to drop the connection; may queue an early 400 or 413. */
static enum MHD_Result first_call(ctr__http_t *h, struct MHD_Connection *conn, const char *url,
                                  const char *method, void **con_cls)
{
    ctr__http_req_t *r = calloc(1, sizeof *r);
    if (!r)
        return MHD_NO;
    r->h = h;
    r->conn = conn;
    r->model = -1;
    r->t_start_ns = ctr__mono_ns();
    r->t_received_real_ns = ctr__real_ns();
    r->admitted = !atomic_load(&h->draining);
    *con_cls = r;
    atomic_fetch_add(&h->in_flight, 1);

    route(r, url, method);
    ctr__conn_verdict_t v = ctr__conns_on_headers(conn);
    if (v == CTR__CONN_GONE)
        return MHD_NO;
    if (v == CTR__CONN_REFUSED) {
        /* Over --max-connections with nothing to evict (conns.c): answer
         * now, on the first call, so that the connection closes after it. */
        r->err_code = 0;
        r->close_conn = 1;
        return ctr__http_error(r, CTR_EBUSY, "too_many_connections",
                               "the server is at --max-connections (%llu) with every connection busy; retry",
                               (unsigned long long)h->d.cfg->max_connections);
    }
    if (r->err_code)
        return MHD_YES;
    unsigned flags = r->route->flags;
    if (flags & CTR__ROUTE_V2)
        r->accept_gzip = ctr__coding_accepts_gzip(
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING));
    if (!r->admitted && (flags & CTR__ROUTE_WORK)) {
        defer_error(r, CTR_EBUSY, "draining", DRAINING_MSG);
        return MHD_YES;
    }
    if (!(flags & CTR__ROUTE_BODY))
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
        return ctr__http_error(r, CTR_EINVAL, "bad_request", "%s",
                               fr.conflict ? "conflicting Content-Length headers"
                                           : "both Content-Length and Transfer-Encoding");
    }
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (!errno && end != cl && n > max) {
            /* Refuse before reading: queueing now makes libmicrohttpd
             * close the connection after the answer instead of reading a
             * body we would throw away. */
            return ctr__http_error(r, CTR_ETOOBIG, "body_too_large",
                                   "the body is %llu bytes; the limit is %llu (--max-body-bytes)",
                                   n, (unsigned long long)max);
        }
        if (!errno && end != cl && n > 0) {
            r->body = malloc((size_t)n + 1);
            if (!r->body)
                return MHD_NO;
            r->cap = (size_t)n + 1;
        }
    } else if ((flags & CTR__ROUTE_JSON) && !(te && strcasestr(te, "chunked"))) {
        defer_error(r, CTR_ELENGTH, "length_required",
                    "send the body with Content-Length or chunked transfer encoding");
        return MHD_YES;
    }
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if ((flags & CTR__ROUTE_JSON) && (flags & CTR__ROUTE_V2)) {
        int binary = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, CTR__INFER_HEADER_LEN) != NULL;
        if (!v2_type_ok(ct, binary))
            defer_error(r, CTR_EMEDIATYPE, "unsupported_media_type",
                        "Content-Type must be application/json (charset utf-8 if given), none, or "
                        "application/octet-stream with " CTR__INFER_HEADER_LEN "; got \"%.80s\"",
                        ct);
    } else if ((flags & CTR__ROUTE_JSON) && !ctr__http_is_json_type(ct)) {
        defer_error(r, CTR_EMEDIATYPE, "unsupported_media_type",
                    "Content-Type must be application/json (charset utf-8 if given), got \"%.80s\"",
                    ct ? ct : "(none)");
    }
    if (flags & CTR__ROUTE_V2) {
        const char *ce = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING);
        int enc = ctr__coding_parse(ce);
        if (enc < 0)
            defer_error(r, CTR_EMEDIATYPE, "unsupported_content_encoding",
                        "Content-Encoding must be gzip, deflate or identity; got \"%.80s\"", ce);
        else
            r->content_encoding = enc;
    }
    return MHD_YES;
}

/* Body bytes: keep them (up to the limit) or count them away. */
static enum MHD_Result upload(ctr__http_req_t *r, const char *data, size_t size)
{
    uint64_t max = r->h->d.cfg->max_body_bytes;
    if (!r->err_code && r->len + size > max) {
        defer_error(r, CTR_ETOOBIG, "body_too_large", "the body is over %llu bytes (--max-body-bytes)",
                    (unsigned long long)max);
        free(r->body);
        r->body = NULL;
        r->discarded = r->len;
        r->len = r->cap = 0;
    }
    if (r->err_code) {
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
    ctr__http_req_t *r = *con_cls;
    if (!r)
        return first_call(h, conn, url, method, con_cls);
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return upload(r, upload_data, n);
    }
    if (r->state == CTR__HTTP_READY)
        return r->route->on_resume(r);
    if (r->state == CTR__HTTP_WAITING)
        return MHD_YES;                 /* cannot happen while suspended */
    ctr__conns_on_body(conn);           /* the body deadline ends here */
    if (r->err_code)
        return ctr__http_error_at(r, r->err_code, CTR__SUBJECT_REQUEST, r->err_name, r->err_msg, -1, NULL);
    if (r->content_encoding) {
        int rc = inflate_body(r);
        if (rc == CTR_ENOMEM)
            return MHD_NO;
        if (rc)
            return ctr__http_error_at(r, rc, CTR__SUBJECT_REQUEST, r->err_name, r->err_msg, -1, NULL);
    }
    return r->route->on_req(r);
}

static void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    ctr__http_t *h = cls;
    ctr__http_req_t *r = *con_cls;
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        ctr__conns_on_done(conn);       /* idle keep-alive from now */
    if (!r)
        return;
    *con_cls = NULL;
    /* Suspended requests are never completed (we never stop the daemon
     * with any), so nothing else points at r any more. */
    CTR_ASSERT(r->state != CTR__HTTP_WAITING);
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && ctr__log_enabled(CTR_LOG_DEBUG))
        ctr__log(CTR_LOG_DEBUG, "request ended early", CTR_LOG_S("path", r->path),
                 CTR_LOG_I("reason", (int)toe), CTR_LOG_END);
    if (r->route && r->route->on_free)
        r->route->on_free(r);
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
    long cores = ctr__config_cores();
    unsigned pool = cfg->http_threads ? (unsigned)cfg->http_threads
                                      : (unsigned)(cores > 2 ? cores : 2);
    /* One epoll thread stalls at exactly 256/512 connections in 0.9.75. */
    if (pool < 2)
        pool = 2;

    /* libmicrohttpd's own limit is above --max-connections: conns.c
     * enforces the real one, so that no client waits in the backlog. */
    ctr__conns_cfg_t ccfg = {
        .max_conns = cfg->max_connections,
        .header_timeout_ns = cfg->header_timeout_ms * 1000000u,
        .body_timeout_ns = cfg->body_timeout_ms * 1000000u,
        .idle_timeout_ns = cfg->conn_timeout_s * 1000000000u,
    };
    if ((rc = ctr__conns_start(&ccfg, &h->conns, err, errlen)))
        goto fail;
    /* listener.c accepts and keeps at most `gate` connections open; each
     * worker may hold all of them (listener.h: a libmicrohttpd bug at a
     * worker's limit). */
    unsigned gate = ctr__conns_accept_bound(&ccfg);
    uint64_t per_worker = ctr__listener_mhd_limit(gate);
    unsigned mhd_limit = per_worker * pool > 4000000000u ? 4000000000u : (unsigned)(per_worker * pool);

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
        MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
        MHD_OPTION_NOTIFY_CONNECTION, ctr__conns_notify, h->conns,
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
    /* From here connections are accepted on ctrd's own thread and spread
     * over the pool (listener.h says why). */
    if ((rc = ctr__listener_start(h->daemon, h->conns, gate, &h->listener, err, errlen)))
        goto fail;
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
    /* Stop accepting: new connects are refused by the kernel. */
    ctr__listener_stop(h->listener);
}

size_t ctr__http_in_flight(const ctr__http_t *h)
{
    return atomic_load(&h->in_flight);
}

void ctr__http_stop(ctr__http_t *h)
{
    if (!h)
        return;
    ctr__listener_stop(h->listener);    /* nothing is added to a stopping daemon */
    if (h->daemon)
        MHD_stop_daemon(h->daemon);
    ctr__listener_free(h->listener);    /* its socket only after the daemon's threads */
    ctr__conns_stop(h->conns);          /* after the daemon: it closed every connection */
    if (h->tls_key) {
        OPENSSL_cleanse(h->tls_key, strlen(h->tls_key));
        free(h->tls_key);
    }
    free(h->tls_cert);
    free(h);
}
