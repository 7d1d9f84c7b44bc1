/* http_int.h - what the connection lifecycle (http.c) shares with the route
 * table (routes.c) and the endpoint handlers (handle_*.c). Not for the rest
 * of the server: main.c sees only http.h.
 *
 * A request's life, as the handlers see it:
 *   on_req     called once, on the access-handler call after the whole body
 *              arrived (r->body, r->len) and only when nothing was refused
 *              before (404/405, 411, 413, 415, draining). It answers with a
 *              ctr__http_reply* / ctr__http_error* call, or suspends the
 *              connection (ctr__http_suspend) and hands the request to
 *              another thread.
 *   on_resume  called on the call after that thread's ctr__http_resume;
 *              answers.
 *   on_free    when the request is over, answered or not (the client may
 *              have gone): release what on_req took. Also called for a
 *              request that never reached on_req (its state is zeroed).
 * Every function here returns what libmicrohttpd's access handler must
 * return: MHD_YES, or MHD_NO to drop the connection (out of memory).
 *
 * HTTP status: handlers never name one. An error is a CTR_E* code mapped by
 * ctr__http_status() (respond.h); successes are 200. */
#ifndef CTR_SERVER_HTTP_INT_H
#define CTR_SERVER_HTTP_INT_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "batcher.h"
#include "buf.h"
#include "conns.h"
#include "content_coding.h"
#include "decode.h"
#include "http.h"
#include "listener.h"
#include "metrics.h"
#include "modelstore.h"
#include "registry.h"
#include "respond.h"

#define CTR__JSON_TYPE "application/json"
/* Triton's binary tensor data extension: the request's (and a binary
 * reply's) JSON header length, and a binary reply's Content-Type. */
#define CTR__INFER_HEADER_LEN "Inference-Header-Content-Length"
#define CTR__BINARY_TYPE "application/octet-stream"

/* Named path segments ("{name}"): at most this many per pattern, each
 * 1 to CTR__ROUTE_PARAM_MAX bytes (a longer segment matches no row: 404). */
#define CTR__ROUTE_MAX_PARAMS 3
#define CTR__ROUTE_PARAM_MAX 256

struct ctr__http {
    ctr__http_deps_t d;
    struct MHD_Daemon *daemon;
    ctr__conns_t *conns;           /* deadlines and the connection limit (conns.c) */
    ctr__listener_t *listener;     /* the accept thread (listener.c) */
    unsigned port;
    atomic_int draining;
    atomic_size_t in_flight;
    atomic_uint_fast64_t next_id;
    uint32_t boot_tag;             /* makes generated request ids unique per process */
    char *tls_cert, *tls_key;
};

typedef struct ctr__http_req ctr__http_req_t;
typedef enum MHD_Result (*ctr__route_fn)(ctr__http_req_t *r);

/* Route flags: what the lifecycle does for a row before its on_req. */
enum {
    /* Reads a request body: ambiguous framing is refused (400, connection
     * closed), a Content-Length over --max-body-bytes is refused before the
     * body is read (413), the body buffer is sized once from it. */
    CTR__ROUTE_BODY = 1u << 0,
    /* The body is JSON and required: neither Content-Length nor chunked is
     * 411, a Content-Type other than application/json is 415, both decided
     * from the headers. */
    CTR__ROUTE_JSON = 1u << 1,
    /* Starts work: refused with 503 draining when it arrives after the
     * drain began. */
    CTR__ROUTE_WORK = 1u << 2,
    /* A /v2 (Open Inference Protocol) row: errors in the v2 form
     * (respond.h); with BODY, the body may come compressed
     * (Content-Encoding gzip or deflate, decompressed before on_req within
     * --max-body-bytes); with JSON, a missing Content-Type means JSON, and
     * a request with Inference-Header-Content-Length (the binary tensor
     * form) may say application/octet-stream; a response of
     * CTR__GZIP_MIN_BYTES or more is gzipped for an Accept-Encoding: gzip
     * client. */
    CTR__ROUTE_V2 = 1u << 3,
};

/* Smaller responses are never compressed: not worth the CPU. */
#define CTR__GZIP_MIN_BYTES 1024

/* One row of the route table (routes.c). */
typedef struct {
    const char *method;            /* "GET" (answers HEAD too) or "POST" */
    const char *pattern;           /* "/v1/score", "/v2/models/{name}/infer" */
    ctr__endpoint_t ep;            /* the /metrics endpoint label */
    unsigned flags;                /* CTR__ROUTE_* */
    ctr__route_fn on_req;          /* required */
    ctr__route_fn on_resume;       /* required when on_req suspends */
    void (*on_free)(ctr__http_req_t *r);  /* optional */
} ctr__route_t;

typedef struct {
    size_t n;
    struct {
        const char *name;          /* the pattern's text after '{' */
        size_t name_len;
        char value[CTR__ROUTE_PARAM_MAX + 1];
    } p[CTR__ROUTE_MAX_PARAMS];
} ctr__route_params_t;

typedef enum {
    CTR__HTTP_RECEIVING = 0,       /* headers seen, body (if any) coming */
    CTR__HTTP_WAITING,             /* suspended: another thread has it */
    CTR__HTTP_READY,               /* resumed: on_resume answers */
} ctr__http_req_state_t;

/* Per endpoint family: what a request keeps across its suspension (a
 * family that needs none adds nothing here). */
typedef struct {
    int v2;                        /* answer in the v2 (KServe) shape */
    ctr__gen_t *gen;               /* the generation it was decoded with */
    ctr_request_t req;
    int req_valid;
    ctr__job_t job;
    int queue_refused;             /* the batcher said CTR_EBUSY */
    int release_status;            /* from the audit hook's release */
    int answer_in_req;             /* scored inline, released at once: on_req answers */
    int shadow_sampled;            /* the shadow's primary, picked by --shadow-sample */
    int answered_ok;               /* its 200 with the scores was queued */
} ctr__score_state_t;

/* POST /v1/admin/reload, and /v1/admin/promote (a reload of the shadow's
 * primary from the candidate's file). */
typedef struct {
    ctr__reload_result_t result;
    const char *model;             /* the model reloaded (its store's name) */
    int promote;                   /* a promote: answered in its own form */
} ctr__reload_state_t;

/* One request: created on the first access-handler call, freed when
 * libmicrohttpd says the request is complete. */
struct ctr__http_req {
    ctr__http_t *h;
    struct MHD_Connection *conn;
    const ctr__route_t *route;     /* NULL when refused by routing (404/405) */
    ctr__route_params_t params;
    ctr__endpoint_t ep;
    long model;                    /* the registry index it was answered for
                                      (its /metrics model label), -1: none */
    ctr__http_req_state_t state;
    uint64_t t_start_ns;           /* monotonic, headers received */
    uint64_t t_received_real_ns;
    int admitted;                  /* arrived before drain started */
    int close_conn;                /* answer with Connection: close */
    ctr__error_form_t err_form;    /* v2 on a V2 row or an unmatched /v2 path */
    int content_encoding;          /* CTR__ENC_*: the body still to decompress */
    int accept_gzip;               /* a V2 row whose client accepts gzip */
    const char *method;            /* static strings for the log */
    char path[96];                 /* start of the path, for the log */

    /* Body. */
    char *body;
    size_t len, cap;
    uint64_t discarded;

    /* An error decided before the last call, answered on it. */
    int err_code;                  /* CTR_E*, 0: none */
    const char *err_name;
    char err_msg[200];
    char allow[64];                /* Allow header of a 405 */

    /* The request log line's examples and request_id (a handler sets them). */
    size_t log_examples;
    const char *log_request_id;

    /* > 0: a 200 carries Inference-Header-Content-Length (binary reply). */
    size_t reply_infer_header_len;

    union {
        ctr__score_state_t score;
        ctr__reload_state_t reload;
    } u;
};

/* ---- answers (http.c) ----------------------------------------------------
 * Each queues the response and records it in /metrics and the log. */

/* 200 with b's text (taken over, freed in every case). */
enum MHD_Result ctr__http_reply(ctr__http_req_t *r, const char *ctype, ctr__buf_t *b);
/* 200 with a constant JSON text. */
enum MHD_Result ctr__http_reply_text(ctr__http_req_t *r, const char *json);
/* The error body of respond.h (its v1 or v2 form by r->err_form) with the
 * status ctr__http_status(code, subject); example < 0 and feature NULL/""
 * give null. Extra headers follow
 * the code: CTR_EMETHOD Allow, CTR_EAUTH WWW-Authenticate, CTR_EBUSY
 * Retry-After. */
enum MHD_Result ctr__http_error_at(ctr__http_req_t *r, int code, ctr__subject_t subject,
                                   const char *name, const char *message,
                                   long example, const char *feature);
/* The same about the client's request, message printf-formatted. */
enum MHD_Result ctr__http_error(ctr__http_req_t *r, int code, const char *name,
                                const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* 503 draining: the server is shutting down (Retry-After). */
enum MHD_Result ctr__http_draining_error(ctr__http_req_t *r);

/* ---- request state (http.c) --------------------------------------------- */

/* Suspends the connection: no thread waits on it. Call before handing r to
 * the thread that will call ctr__http_resume, which may run at once. */
void ctr__http_suspend(ctr__http_req_t *r);
/* Any thread: marks r ready and resumes it; on_resume answers it. */
void ctr__http_resume(ctr__http_req_t *r);

/* A request header's value, NULL if absent. */
const char *ctr__http_header(const ctr__http_req_t *r, const char *name);
/* The value of the pattern's {name} segment, "" if the pattern has none. */
const char *ctr__http_param(const ctr__http_req_t *r, const char *name);
/* 1 once the drain began (readiness off). */
int ctr__http_draining(const ctr__http_t *h);
/* A request id unique to this server process, for a request that sent
 * none ("8a6bb03a-000000000001"). */
void ctr__http_request_id(ctr__http_t *h, char *out, size_t outlen);
/* "application/json", optionally with "; charset=utf-8" (any case, quotes
 * allowed); 0 for anything else, NULL included. */
int ctr__http_is_json_type(const char *content_type);

#endif
