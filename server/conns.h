/* conns.h - connection tracking: deadlines for request headers and bodies,
 * and what happens at --max-connections (evict a stalled or idle
 * connection, else refuse with 503). The design and its reasons are at the
 * top of conns.c; docs/OPERATIONS.md describes the policy for operators.
 *
 * http.c wires it into libmicrohttpd: ctr__conns_notify is the daemon's
 * MHD_OPTION_NOTIFY_CONNECTION callback (cls = the ctr__conns_t), the
 * accept thread's bound is ctr__conns_accept_bound(), and the access handler
 * reports each request's progress with the ctr__conns_on_* calls, which
 * are lock-free and run on the connection's own thread. */
#ifndef CTR_SERVER_CONNS_H
#define CTR_SERVER_CONNS_H

#include <microhttpd.h>
#include <stdint.h>

typedef struct ctr__conns ctr__conns_t;

typedef struct {
    uint64_t max_conns;          /* --max-connections: admitted at once */
    uint64_t header_timeout_ns;  /* accept (or idle keep-alive) -> headers; 0 = none */
    uint64_t body_timeout_ns;    /* headers -> whole body; 0 = none */
    uint64_t idle_timeout_ns;    /* --conn-timeout-s (libmicrohttpd's own); 0 = never */
} ctr__conns_cfg_t;

/* What the access handler should do with a request whose headers are in. */
typedef enum {
    CTR__CONN_OK = 0,       /* go on */
    CTR__CONN_REFUSED,      /* over the limit with nothing to evict: answer 503, close */
    CTR__CONN_GONE,         /* evicted meanwhile: drop the connection (MHD_NO) */
} ctr__conn_verdict_t;

/* Starts the sweeper thread. The handle outlives the daemon using it. */
int ctr__conns_start(const ctr__conns_cfg_t *cfg, ctr__conns_t **out, char *err, size_t errlen);
/* Stops the sweeper and frees the handle; the daemon is stopped already. */
void ctr__conns_stop(ctr__conns_t *c);

/* The most connections open at once, refused ones included (listener.c
 * stops accepting there): above max_conns, so that ctrd keeps accepting
 * and the policy here decides. */
unsigned ctr__conns_accept_bound(const ctr__conns_cfg_t *cfg);

/* Connections libmicrohttpd has closed since the start (every one that it
 * announced with NOTIFY_STARTED): listener.c counts what it handed over,
 * and the difference is what is open. */
uint64_t ctr__conns_closed(ctr__conns_t *c);

/* MHD_NotifyConnectionCallback; cls is the ctr__conns_t. */
void ctr__conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                       enum MHD_ConnectionNotificationCode code);

/* The request's headers are in (first access-handler call). */
ctr__conn_verdict_t ctr__conns_on_headers(struct MHD_Connection *conn);
/* The request's body is in (last access-handler call): no deadline now. */
void ctr__conns_on_body(struct MHD_Connection *conn);
/* The request is over (request-completed callback): idle keep-alive. */
void ctr__conns_on_done(struct MHD_Connection *conn);

#endif
