/* conns.c - connection tracking: header and body deadlines, eviction and
 * refusal at --max-connections (see conns.h).
 *
 * Design (libmicrohttpd 0.9.75, internal thread pool, epoll):
 *
 * - The accept thread (listener.c) keeps at most ctr__conns_accept_bound
 *   (--max-connections + max(128, max/2)) connections open; beyond that
 *   new clients wait in the listen backlog with no answer, which is the
 *   starvation this module exists to prevent below that bound. The real
 *   limit is enforced here.
 * - Every connection is tracked from MHD_CONNECTION_NOTIFY_STARTED to
 *   MHD_CONNECTION_NOTIFY_CLOSED: an entry in one list (oldest first) under
 *   one mutex, its pointer in libmicrohttpd's socket_context. Its state
 *   (HEADERS -> BODY -> BUSY -> IDLE -> BODY ...) is an atomic moved by the
 *   connection's own thread from the access handler, lock-free (CAS, so a
 *   move never undoes an eviction).
 * - A connection is closed from outside libmicrohttpd's own timeout with
 *   shutdown(fd, SHUT_RDWR): the socket becomes readable at EOF, the
 *   connection's own thread sees it in its epoll loop and closes the
 *   connection the ordinary way (request-completed, NOTIFY_CLOSED, close).
 *   No libmicrohttpd call is made from a foreign thread. The fd cannot have
 *   been reused under us: libmicrohttpd calls NOTIFY_CLOSED (which takes
 *   the mutex and unlinks the entry) before it closes the fd, and every
 *   shutdown() is made with the mutex held and the entry linked.
 *   Only connections in HEADERS, BODY or IDLE are ever shut down: a
 *   request being scored (suspended) or answered (BUSY) is never cut.
 * - Deadlines, checked by a sweeper thread every tick (at most 100 ms):
 *   HEADERS: --header-timeout-ms from accept, whatever bytes trickle in
 *   (libmicrohttpd's --conn-timeout-s restarts at every byte);
 *   BODY: --body-timeout-ms from the end of the headers;
 *   IDLE (keep-alive between requests): --conn-timeout-s + the header
 *   timeout from the last answer. libmicrohttpd closes a silent idle
 *   connection at --conn-timeout-s; one still open past that plus the
 *   header timeout is trickling its next request's headers.
 * - At the limit (NOTIFY_STARTED of a connection that would be one too
 *   many), under the mutex: evict the oldest connection still in HEADERS
 *   (stalled_at_limit), else the one idle longest (idle_at_limit), and admit
 *   the new one; with neither, the new one is REFUSED: it is answered 503
 *   with Retry-After and Connection: close as soon as its headers are in
 *   (on the first access-handler call, which works for TLS as for plain
 *   HTTP), and shut down by the sweeper if it sends none within a second.
 *   Refused connections do not count against --max-connections; they are
 *   bounded by libmicrohttpd's higher limit and that second.
 * - Cost: the access handler adds a few atomics per request; the mutex is
 *   taken once per connection open and close and per sweep; choosing a
 *   victim is a scan of the list, only when at the limit.
 */
#include "conns.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "clock.h"
#include "ctr/common.h"
#include "metrics.h"

#define REFUSED_GRACE_NS 1000000000ull

enum { ST_HEADERS, ST_BODY, ST_BUSY, ST_IDLE, ST_REFUSED, ST_EVICTED };

/* A state and when it began (monotonic ns) in one word, so that a reader
 * never pairs a new state with the old state's time: (since << 3) | state. */
#define W(st, since) (((uint64_t)(since) << 3) | (uint64_t)(st))
#define W_ST(w) ((int)((w) & 7))
#define W_SINCE(w) ((w) >> 3)

typedef struct ent {
    struct ent *prev, *next;
    int fd;
    atomic_uint_fast64_t word;
} ent_t;

struct ctr__conns {
    ctr__conns_cfg_t cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ent_t *head, *tail;        /* in the order of accept: oldest first */
    uint64_t admitted;         /* entries not REFUSED nor EVICTED */
    atomic_uint_fast64_t closed; /* NOTIFY_CLOSED calls (listener.c's gate) */
    int stop;
    pthread_t sweeper;
    int sweeper_started;
    uint64_t tick_ns;
};

unsigned ctr__conns_accept_bound(const ctr__conns_cfg_t *cfg)
{
    uint64_t extra = cfg->max_conns / 2 > 128 ? cfg->max_conns / 2 : 128;
    uint64_t n = cfg->max_conns + extra;
    return n > 4000000000u ? 4000000000u : (unsigned)n;
}

/* With the mutex held: shuts e's socket down and stops counting it, if
 * its word is still `seen`. Returns 1 when it did. */
static int evict(ctr__conns_t *c, ent_t *e, uint64_t seen, ctr__evict_reason_t why)
{
    uint_fast64_t w = seen;
    if (!atomic_compare_exchange_strong(&e->word, &w, W(ST_EVICTED, W_SINCE(seen))))
        return 0;   /* it moved on meanwhile */
    shutdown(e->fd, SHUT_RDWR);
    c->admitted--;
    ctr__metrics_conn_evicted(why);
    ctr__metrics_conn_open(-1);
    return 1;
}

/* With the mutex held: the oldest in HEADERS, else the longest idle. */
static int make_room(ctr__conns_t *c)
{
    ent_t *idle = NULL;
    uint64_t idle_w = 0;
    for (ent_t *e = c->head; e; e = e->next) {
        uint64_t w = atomic_load(&e->word);
        if (W_ST(w) == ST_HEADERS && evict(c, e, w, CTR__EVICT_STALLED_AT_LIMIT))
            return 1;
        if (W_ST(w) == ST_IDLE && (!idle || W_SINCE(w) < W_SINCE(idle_w))) {
            idle = e;
            idle_w = w;
        }
    }
    return idle && evict(c, idle, idle_w, CTR__EVICT_IDLE_AT_LIMIT);
}

void ctr__conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                       enum MHD_ConnectionNotificationCode code)
{
    ctr__conns_t *c = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        ent_t *e = calloc(1, sizeof *e);
        *socket_context = e;
        if (!e || !ci)
            return;   /* untracked: served, never evicted */
        e->fd = ci->connect_fd;
        uint64_t now = ctr__mono_ns();
        pthread_mutex_lock(&c->mu);
        int st = ST_HEADERS;
        if (c->admitted >= c->cfg.max_conns && !make_room(c))
            st = ST_REFUSED;
        atomic_init(&e->word, W(st, now));
        if (st == ST_REFUSED) {
            ctr__metrics_conn_refused();
        } else {
            c->admitted++;
            ctr__metrics_conn_open(1);
        }
        e->prev = c->tail;
        if (c->tail)
            c->tail->next = e;
        else
            c->head = e;
        c->tail = e;
        pthread_mutex_unlock(&c->mu);
        return;
    }
    atomic_fetch_add(&c->closed, 1);
    ent_t *e = *socket_context;
    *socket_context = NULL;
    if (!e)
        return;
    pthread_mutex_lock(&c->mu);
    if (e->prev || c->head == e) {   /* linked (it always is once tracked) */
        if (e->prev)
            e->prev->next = e->next;
        else
            c->head = e->next;
        if (e->next)
            e->next->prev = e->prev;
        else
            c->tail = e->prev;
        int st = W_ST(atomic_load(&e->word));
        if (st != ST_REFUSED && st != ST_EVICTED) {
            c->admitted--;
            ctr__metrics_conn_open(-1);
        }
    }
    pthread_mutex_unlock(&c->mu);
    free(e);
}

uint64_t ctr__conns_closed(ctr__conns_t *c)
{
    return atomic_load(&c->closed);
}

static ent_t *ent_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* Moves e from one of the states in `from` (a bit set) to `to`. */
static int move(ent_t *e, unsigned from, int to)
{
    uint_fast64_t w = atomic_load(&e->word);
    uint64_t now = ctr__mono_ns();
    while ((1u << W_ST(w)) & from)
        if (atomic_compare_exchange_weak(&e->word, &w, W(to, now)))
            return 1;
    return 0;
}

ctr__conn_verdict_t ctr__conns_on_headers(struct MHD_Connection *conn)
{
    ent_t *e = ent_of(conn);
    if (!e)
        return CTR__CONN_OK;
    if (move(e, 1u << ST_HEADERS | 1u << ST_IDLE, ST_BODY))
        return CTR__CONN_OK;
    int st = W_ST(atomic_load(&e->word));
    return st == ST_REFUSED ? CTR__CONN_REFUSED : st == ST_EVICTED ? CTR__CONN_GONE : CTR__CONN_OK;
}

void ctr__conns_on_body(struct MHD_Connection *conn)
{
    ent_t *e = ent_of(conn);
    if (e)
        move(e, 1u << ST_BODY, ST_BUSY);
}

void ctr__conns_on_done(struct MHD_Connection *conn)
{
    ent_t *e = ent_of(conn);
    if (e)
        move(e, 1u << ST_BODY | 1u << ST_BUSY, ST_IDLE);
}

/* With the mutex held: closes what is past its deadline. */
static void sweep(ctr__conns_t *c, uint64_t now)
{
    const ctr__conns_cfg_t *g = &c->cfg;
    for (ent_t *e = c->head; e; e = e->next) {
        uint_fast64_t w = atomic_load(&e->word);
        int st = W_ST(w);
        /* A state begun after `now` (another thread moved it) is young. */
        uint64_t age = now > W_SINCE(w) ? now - W_SINCE(w) : 0;
        if (st == ST_HEADERS && g->header_timeout_ns && age > g->header_timeout_ns)
            evict(c, e, w, CTR__EVICT_HEADERS_TIMEOUT);
        else if (st == ST_BODY && g->body_timeout_ns && age > g->body_timeout_ns)
            evict(c, e, w, CTR__EVICT_BODY_TIMEOUT);
        else if (st == ST_IDLE && g->header_timeout_ns && g->idle_timeout_ns &&
                 age > g->idle_timeout_ns + g->header_timeout_ns)
            evict(c, e, w, CTR__EVICT_HEADERS_TIMEOUT);
        else if (st == ST_REFUSED && age > REFUSED_GRACE_NS &&
                 atomic_compare_exchange_strong(&e->word, &w, W(ST_EVICTED, W_SINCE(w))))
            shutdown(e->fd, SHUT_RDWR);   /* counted as refused already */
    }
}

static void *sweeper(void *arg)
{
    ctr__conns_t *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        sweep(c, ctr__mono_ns());
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + c->tick_ns;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int ctr__conns_start(const ctr__conns_cfg_t *cfg, ctr__conns_t **out, char *err, size_t errlen)
{
    *out = NULL;
    ctr__conns_t *c = calloc(1, sizeof *c);
    if (!c)
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    c->cfg = *cfg;
    atomic_init(&c->closed, 0);
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    /* A tenth of the shortest deadline, between 10 and 100 ms. */
    uint64_t shortest = 1000000000u;
    if (cfg->header_timeout_ns && cfg->header_timeout_ns < shortest)
        shortest = cfg->header_timeout_ns;
    if (cfg->body_timeout_ns && cfg->body_timeout_ns < shortest)
        shortest = cfg->body_timeout_ns;
    c->tick_ns = shortest / 10 < 10000000u ? 10000000u : shortest / 10 > 100000000u ? 100000000u : shortest / 10;
    if (pthread_create(&c->sweeper, NULL, sweeper, c)) {
        ctr__conns_stop(c);
        return ctr_error(err, errlen, CTR_ENOMEM, "cannot start the connection sweeper thread");
    }
    c->sweeper_started = 1;
    *out = c;
    return 0;
}

void ctr__conns_stop(ctr__conns_t *c)
{
    if (!c)
        return;
    if (c->sweeper_started) {
        pthread_mutex_lock(&c->mu);
        c->stop = 1;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->sweeper, NULL);
    }
    /* The daemon is stopped, so every connection was NOTIFY_CLOSED and the
     * list is empty; should one not have been, its entry is freed here. */
    while (c->head) {
        ent_t *e = c->head;
        c->head = e->next;
        free(e);
    }
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
