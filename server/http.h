/* http.h - the HTTP front end (libmicrohttpd): connections, request
 * bodies, suspend/resume around the batcher, responses (http.c); which
 * handler answers which path is the route table (routes.c), the endpoints
 * are handle_score.c, handle_info.c and handle_admin.c (http_int.h is what
 * they share). Endpoints and errors are documented in docs/API.md.
 *
 * Threads: libmicrohttpd's internal thread pool, each thread running its
 * own epoll loop over its share of the connections. A scoring request is
 * read, decoded and handed to the batcher on that thread; the connection
 * is then suspended (no thread waits on it) and resumed by whichever
 * thread releases the scored request (a scoring thread, or the audit
 * writer); the response is built and queued on the resumed call.
 *
 * Keep-alive with libmicrohttpd 0.9.75: a response is queued only on a
 * later access-handler call, never on the first one for a request (which
 * would make it answer `Connection: close`). Early refusals that must not
 * read the body (413 by Content-Length, 400 for ambiguous framing) are the
 * deliberate exception. */
#ifndef CTR_SERVER_HTTP_H
#define CTR_SERVER_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "audit_writer.h"
#include "batcher.h"
#include "config.h"
#include "ctr/kernels.h"
#include "registry.h"
#include "shadow.h"

typedef struct ctr__http ctr__http_t;

typedef struct {
    const ctr__config_t *cfg;
    ctr__registry_t *models;
    ctr__batcher_t *batcher;
    ctr__audit_t *audit;
    const ctr_kernel_t *kernel;
    ctr__shadow_t *shadow;        /* NULL: no --shadow */
} ctr__http_deps_t;

/* Binds and starts serving. The deps outlive the returned handle. */
int ctr__http_start(const ctr__http_deps_t *deps, ctr__http_t **out,
                    char *err, size_t errlen);

/* The bound port (useful with --port 0). */
unsigned ctr__http_port(const ctr__http_t *h);

/* Drain: /readyz answers 503, requests that arrive from now on get 503
 * draining (Connection: close), requests already in flight finish. Then
 * stops accepting new connections. */
void ctr__http_drain(ctr__http_t *h);

/* Requests received and not yet completely answered. */
size_t ctr__http_in_flight(const ctr__http_t *h);

/* Stops the daemon and closes every connection. Nothing may be waiting in
 * the batcher or the reload queue any more (stop those first). */
void ctr__http_stop(ctr__http_t *h);

#endif
