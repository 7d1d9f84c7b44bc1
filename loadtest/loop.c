/* loop.c - the event loop of one ctrload run (see loop.h for what is
 * measured and counted).
 *
 * One thread, epoll, a timerfd for the next thing due (a request, a
 * timeout, a reconnect, the progress line, the window's end). Every
 * connection is in at most one list:
 *   idle     connected, nothing out; FIFO so load spreads over connections
 *   timed    connecting or busy; deadlines are now + timeout when entered,
 *            so appending keeps the list sorted and the head is next
 *   closed   waiting to reconnect at reconnect_at (backoff after failures)
 * Connections are never reopened while epoll events are being handled:
 * a closed connection waits for the next turn of the loop, so a stale
 * event can never reach a new socket. */
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "ctr/common.h"

#define NS 1000000000ull
#define MS 1000000ull
#define MAX_BACKOFF_NS (1000 * MS)
#define READ_BUF (64u << 10)

enum { C_CLOSED = 0, C_CONNECTING, C_IDLE, C_BUSY };
enum { L_NONE = 0, L_IDLE, L_TIMED, L_CLOSED };

typedef struct conn {
    int fd;
    int state;
    int list;
    struct conn *prev, *next;
    uint64_t deadline;        /* timed list */
    uint64_t idle_since;
    uint64_t reconnect_at;
    unsigned fail_streak;
    int want_out;             /* EPOLLOUT registered */
    /* The request out on this connection. */
    const ctr__msg_t *msg;
    uint64_t seq, due, sent;
    int counted;
    size_t wr_off;
    char id[CTR__ID_LEN];
    ctr__http1_t http;
} conn_t;

typedef struct {
    conn_t *head, *tail;
    size_t n;
} list_t;

typedef struct {
    const ctr__run_opts_t *o;
    ctr__run_result_t *r;
    int ep, tfd;
    conn_t *conns;
    size_t n_conns;
    list_t idle, timed, closed;
    uint64_t armed;           /* timerfd expiry currently set, 0 = none */

    uint64_t t0, mstart, end_send, hard_end;
    int running, measuring;
    struct rusage ru0;

    /* open loop: the next request due */
    ctr__sched_t sched;
    int sched_done;
    uint64_t next_due, next_seq;
    uint64_t counted_left;    /* max_requests budget; UINT64_MAX = none */

    /* progress */
    uint64_t next_tick, tick_sent, tick_done;
    int progress_printed;

    size_t n_busy;
    uint64_t last_done;       /* last answer or failure of a counted request */
    int first_connect_errno;
    char *rbuf;
} run_t;

/* Monotonic clock, ns. */
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static const struct {
    const char *key, *text;
} err_names[CTR__ERR_N] = {
    [CTR__ERR_TIMEOUT] = {"timeout", "no complete response within --timeout"},
    [CTR__ERR_RESET] = {"reset", "connection reset while a request was out"},
    [CTR__ERR_CLOSED_EARLY] = {"closed_before_response", "server closed the connection before answering"},
    [CTR__ERR_CLOSED_MID] = {"closed_mid_response", "server closed the connection mid-response"},
    [CTR__ERR_PROTOCOL] = {"protocol", "malformed HTTP response"},
    [CTR__ERR_UNFINISHED] = {"unfinished", "still waiting for an answer when the run ended"},
    [CTR__ERR_UNSENT] = {"unsent", "due but never sent (no free connection before the run ended)"},
    [CTR__ERR_REFUSED] = {"connect_refused", "connection attempts refused"},
    [CTR__ERR_CONNECT] = {"connect_failed", "connection attempts failed"},
    [CTR__ERR_CONNECT_TIMEOUT] = {"connect_timeout", "connection attempts timed out"},
};

const char *ctr__err_key(ctr__err_kind_t k) { return err_names[k].key; }
const char *ctr__err_text(ctr__err_kind_t k) { return err_names[k].text; }

/* ---- lists ---------------------------------------------------------------- */

static list_t *list_of(run_t *R, int l)
{
    return l == L_IDLE ? &R->idle : l == L_TIMED ? &R->timed : l == L_CLOSED ? &R->closed : NULL;
}

static void list_remove(run_t *R, conn_t *c)
{
    list_t *l = list_of(R, c->list);
    if (!l)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = NULL;
    c->list = L_NONE;
    l->n--;
}

static void list_append(run_t *R, conn_t *c, int which)
{
    list_remove(R, c);
    list_t *l = list_of(R, which);
    c->list = which;
    c->prev = l->tail;
    c->next = NULL;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
    l->n++;
}

/* ---- counting ------------------------------------------------------------- */

static void note_err(run_t *R, ctr__err_kind_t k, const char *detail)
{
    R->r->err[k]++;
    if (k < CTR__ERR_FIRST_CONN)
        R->r->failed++;
    if (!R->r->err_example[k][0] && detail)
        snprintf(R->r->err_example[k], sizeof R->r->err_example[k], "%s", detail);
}

/* Connection-level events count once the window has started. */
static void note_conn_err(run_t *R, ctr__err_kind_t k, int e)
{
    if (!R->first_connect_errno)
        R->first_connect_errno = e ? e : ETIMEDOUT;
    if (R->measuring)
        note_err(R, k, e ? strerror(e) : NULL);
}

/* ---- connections ---------------------------------------------------------- */

static void conn_close(run_t *R, conn_t *c, uint64_t now, int backoff)
{
    if (c->state == C_BUSY)
        R->n_busy--;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = C_CLOSED;
    c->msg = NULL;
    c->want_out = 0;
    uint64_t delay = 0;
    if (backoff) {
        if (c->fail_streak)
            delay = MS << (c->fail_streak - 1 < 10 ? c->fail_streak - 1 : 10);
        if (delay > MAX_BACKOFF_NS)
            delay = MAX_BACKOFF_NS;
        c->fail_streak++;
    }
    c->reconnect_at = now + delay;
    list_append(R, c, L_CLOSED);
}

static int set_events(run_t *R, conn_t *c, int out)
{
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    c->want_out = out;
    return epoll_ctl(R->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void become_idle(run_t *R, conn_t *c, uint64_t now)
{
    if (c->state == C_BUSY)
        R->n_busy--;
    c->state = C_IDLE;
    c->msg = NULL;
    c->idle_since = now;
    list_append(R, c, L_IDLE);
}

static void conn_start(run_t *R, conn_t *c, uint64_t now)
{
    const ctr__run_opts_t *o = R->o;
    list_remove(R, c);
    int fd = socket(o->addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        note_conn_err(R, CTR__ERR_CONNECT, errno);
        conn_close(R, c, now, 1);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(R->ep, EPOLL_CTL_ADD, fd, &ev)) {
        note_conn_err(R, CTR__ERR_CONNECT, errno);
        conn_close(R, c, now, 1);
        return;
    }
    c->want_out = 1;
    if (connect(fd, o->addr, o->addrlen) == 0) {
        R->r->connects++;
        set_events(R, c, 0);
        become_idle(R, c, now);
        return;
    }
    if (errno != EINPROGRESS) {
        int e = errno;
        note_conn_err(R, e == ECONNREFUSED ? CTR__ERR_REFUSED : CTR__ERR_CONNECT, e);
        conn_close(R, c, now, 1);
        return;
    }
    c->state = C_CONNECTING;
    c->deadline = now + o->timeout_ns;
    list_append(R, c, L_TIMED);
}

/* The request on c failed: count it (if in the window) and reconnect. */
static void req_fail(run_t *R, conn_t *c, ctr__err_kind_t k, const char *detail, uint64_t now)
{
    if (c->counted) {
        note_err(R, k, detail);
        R->last_done = now;
    }
    conn_close(R, c, now, 1);
}

/* ---- sending -------------------------------------------------------------- */

/* Writes what is left of c's request; 0 when all is out or waiting for
 * EPOLLOUT, -1 after a failure (c closed). */
static int conn_write(run_t *R, conn_t *c, uint64_t now)
{
    const ctr__msg_t *m = c->msg;
    size_t id_off = m->id_off, len = m->len;
    while (c->wr_off < len) {
        struct iovec iov[3];
        int n = 0;
        size_t off = c->wr_off;
        if (id_off == CTR__NO_ID) {
            iov[n++] = (struct iovec){(char *)m->buf + off, len - off};
        } else {
            size_t id_end = id_off + CTR__ID_LEN;
            if (off < id_off)
                iov[n++] = (struct iovec){(char *)m->buf + off, id_off - off};
            if (off < id_end) {
                size_t s = off > id_off ? off - id_off : 0;
                iov[n++] = (struct iovec){c->id + s, CTR__ID_LEN - s};
            }
            size_t s = off > id_end ? off : id_end;
            if (s < len)
                iov[n++] = (struct iovec){(char *)m->buf + s, len - s};
        }
        struct msghdr mh;
        memset(&mh, 0, sizeof mh);
        mh.msg_iov = iov;
        mh.msg_iovlen = (size_t)n;
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!c->want_out)
                    set_events(R, c, 1);
                return 0;
            }
            req_fail(R, c, CTR__ERR_RESET, strerror(errno), now);
            return -1;
        }
        c->wr_off += (size_t)w;
        R->r->bytes_sent += (uint64_t)w;
    }
    if (c->want_out)
        set_events(R, c, 0);
    return 0;
}

/* Sends request seq (due at due) on idle connection c. */
static void send_on(run_t *R, conn_t *c, uint64_t seq, uint64_t due, int counted)
{
    const ctr__run_opts_t *o = R->o;
    ctr__run_result_t *r = R->r;
    const ctr__msg_t *m = &o->msgs->v[seq % o->msgs->n];
    uint64_t idle_since = c->idle_since > R->t0 ? c->idle_since : R->t0;
    list_remove(R, c);
    c->state = C_BUSY;
    R->n_busy++;
    c->msg = m;
    c->seq = seq;
    c->counted = counted;
    c->wr_off = 0;
    ctr__format_id(c->id, o->id_base + seq);
    ctr__http1_reset(&c->http);
    uint64_t now = now_ns();
    c->sent = now;
    c->due = o->closed_loop ? now : due;
    c->deadline = now + o->timeout_ns;
    list_append(R, c, L_TIMED);
    R->tick_sent++;
    if (counted) {
        uint64_t ready = o->closed_loop || idle_since > c->due ? idle_since : c->due;
        ctr__hist_add(&r->lag, now > ready ? now - ready : 0);
        if (!o->closed_loop && idle_since > due) {
            r->waited_for_conn++;
            if (idle_since - due > r->conn_wait_max_ns)
                r->conn_wait_max_ns = idle_since - due;
        }
        r->sent++;
        r->examples_sent += m->n_examples;
    }
    conn_write(R, c, now);
}

/* Moves the open-loop schedule to its next request. */
static void sched_advance(run_t *R)
{
    const ctr__run_opts_t *o = R->o;
    if (R->counted_left == 0) {
        R->sched_done = 1;
        return;
    }
    uint64_t off = ctr__sched_next(&R->sched);
    if (off == CTR__SCHED_END || R->t0 + off >= R->end_send) {
        R->sched_done = 1;
        return;
    }
    R->next_due = R->t0 + off;
    R->next_seq++;
    if (off >= o->warmup_ns) {
        R->r->scheduled++;
        if (R->counted_left != UINT64_MAX)
            R->counted_left--;
    }
}

/* Sends whatever is due on idle connections. */
static void dispatch(run_t *R, uint64_t now)
{
    const ctr__run_opts_t *o = R->o;
    if (!R->running)
        return;
    if (o->closed_loop) {
        while (R->idle.head && now < R->end_send && R->counted_left) {
            int counted = now >= R->mstart;
            if (counted && R->counted_left != UINT64_MAX)
                R->counted_left--;
            send_on(R, R->idle.head, R->next_seq++, now, counted);
            now = now_ns();
        }
        return;
    }
    while (!R->sched_done && R->idle.head && R->next_due <= now) {
        send_on(R, R->idle.head, R->next_seq - 1, R->next_due, R->next_due >= R->mstart);
        sched_advance(R);
        now = now_ns();
    }
}

/* ---- receiving ------------------------------------------------------------ */

static void complete(run_t *R, conn_t *c, uint64_t now)
{
    ctr__run_result_t *r = R->r;
    int status = c->http.status;
    R->tick_done++;
    if (c->counted) {
        r->completed++;
        if (status >= 100 && status < 600)
            r->status[status]++;
        if (status >= 200 && status < 300) {
            r->ok++;
            r->examples_ok += c->msg->n_examples;
        } else if (!r->first_error_status) {
            r->first_error_status = status;
            size_t n = c->http.snippet_len;
            memcpy(r->first_error_body, c->http.snippet, n);
            r->first_error_body[n] = 0;
        }
        ctr__hist_add(&r->lat, now - c->due);
        ctr__hist_add(&r->lat_uncorr, now - c->sent);
        R->last_done = now;
    }
    c->fail_streak = 0;
    if (c->http.keep_alive) {
        list_remove(R, c);
        become_idle(R, c, now);
        dispatch(R, now);
    } else {
        r->server_closes += R->measuring;
        conn_close(R, c, now, 0);
    }
}

static void on_readable(run_t *R, conn_t *c)
{
    for (;;) {
        ssize_t n = read(c->fd, R->rbuf, READ_BUF);
        uint64_t now = now_ns();
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            int e = errno;
            if (c->state == C_BUSY)
                req_fail(R, c, CTR__ERR_RESET, strerror(e), now);
            else
                conn_close(R, c, now, 1);
            return;
        }
        if (n == 0) {
            if (c->state != C_BUSY) {            /* keep-alive ended by the server */
                R->r->server_closes += R->measuring;
                conn_close(R, c, now, 0);
            } else if (c->wr_off < c->msg->len || ctr__http1_idle(&c->http)) {
                req_fail(R, c, CTR__ERR_CLOSED_EARLY, NULL, now);
            } else if (ctr__http1_eof(&c->http) == CTR__HTTP1_DONE) {
                c->http.keep_alive = 0;
                complete(R, c, now);
            } else {
                req_fail(R, c, CTR__ERR_CLOSED_MID, c->http.error, now);
            }
            return;
        }
        R->r->bytes_recv += (uint64_t)n;
        if (c->state != C_BUSY) {
            /* Bytes nobody asked for. */
            if (c->state == C_IDLE && R->measuring)
                note_err(R, CTR__ERR_PROTOCOL, "data from the server on an idle connection");
            conn_close(R, c, now, 1);
            return;
        }
        size_t used;
        int rc = ctr__http1_feed(&c->http, R->rbuf, (size_t)n, &used);
        if (rc == CTR__HTTP1_ERROR) {
            req_fail(R, c, CTR__ERR_PROTOCOL, c->http.error, now);
            return;
        }
        if (rc == CTR__HTTP1_DONE) {
            if (used < (size_t)n) {
                req_fail(R, c, CTR__ERR_PROTOCOL, "data after the response", now);
                return;
            }
            if (c->wr_off < c->msg->len)      /* answered early (413 ...): the rest can't follow */
                c->http.keep_alive = 0;
            complete(R, c, now);
            return;
        }
    }
}

static void on_event(run_t *R, conn_t *c, uint32_t ev)
{
    uint64_t now = now_ns();
    switch (c->state) {
    case C_CONNECTING: {
        int e = 0;
        socklen_t el = sizeof e;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el))
            e = errno;
        if (!e && !(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        if (e || (ev & (EPOLLERR | EPOLLHUP))) {
            if (!e)
                e = ECONNREFUSED;
            note_conn_err(R, e == ECONNREFUSED ? CTR__ERR_REFUSED : CTR__ERR_CONNECT, e);
            conn_close(R, c, now, 1);
            return;
        }
        R->r->connects++;
        set_events(R, c, 0);
        list_remove(R, c);
        become_idle(R, c, now);
        dispatch(R, now);
        return;
    }
    case C_BUSY:
        if ((ev & EPOLLOUT) && c->wr_off < c->msg->len) {
            if (conn_write(R, c, now))
                return;
        }
        if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
            on_readable(R, c);
        return;
    case C_IDLE:
        if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
            on_readable(R, c);
        return;
    default:
        return;                                   /* stale event of a closed connection */
    }
}

/* ---- timers --------------------------------------------------------------- */

static void expire(run_t *R, uint64_t now)
{
    while (R->timed.head && R->timed.head->deadline <= now) {
        conn_t *c = R->timed.head;
        if (c->state == C_CONNECTING) {
            note_conn_err(R, CTR__ERR_CONNECT_TIMEOUT, 0);
            conn_close(R, c, now, 1);
        } else {
            req_fail(R, c, CTR__ERR_TIMEOUT, NULL, now);
        }
    }
}

static int may_connect(const run_t *R, uint64_t now)
{
    if (now >= R->hard_end)
        return 0;
    if (R->o->closed_loop)
        return now < R->end_send && R->counted_left;
    return !R->sched_done;
}

static void reconnect(run_t *R, uint64_t now)
{
    if (!R->closed.head || !may_connect(R, now))
        return;
    conn_t *c = R->closed.head;
    while (c) {
        conn_t *nx = c->next;
        if (c->reconnect_at <= now)
            conn_start(R, c, now);
        c = nx;
    }
}

static uint64_t next_wake(run_t *R, uint64_t now)
{
    uint64_t w = R->hard_end;
    if (R->end_send > now && R->end_send < w)
        w = R->end_send;
    if (!R->measuring && R->mstart < w)
        w = R->mstart;
    if (!R->o->closed_loop && !R->sched_done && R->idle.head && R->next_due < w)
        w = R->next_due;
    if (R->timed.head && R->timed.head->deadline < w)
        w = R->timed.head->deadline;
    if (R->closed.head && may_connect(R, now))
        for (conn_t *c = R->closed.head; c; c = c->next)
            if (c->reconnect_at < w)
                w = c->reconnect_at;
    if (R->o->progress && R->next_tick < w)
        w = R->next_tick;
    return w;
}

static int wait_events(run_t *R, uint64_t now, struct epoll_event *evs, int max)
{
    uint64_t w = next_wake(R, now);
    int timeout_ms = 1000;                         /* a safety net; the timerfd is exact */
    if (w <= now) {
        timeout_ms = 0;
    } else if (w != R->armed) {
        struct itimerspec its;
        memset(&its, 0, sizeof its);
        its.it_value.tv_sec = (time_t)(w / NS);
        its.it_value.tv_nsec = (long)(w % NS);
        if (timerfd_settime(R->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
            R->armed = w;
    }
    int n = epoll_wait(R->ep, evs, max, timeout_ms);
    return n < 0 ? 0 : n;
}

/* ---- progress ------------------------------------------------------------- */

static void progress(run_t *R, uint64_t now)
{
    const ctr__run_opts_t *o = R->o;
    if (!o->progress || now < R->next_tick)
        return;
    double t = (double)(now - R->t0) / 1e9;
    double total = (double)(o->warmup_ns + o->duration_ns) / 1e9;
    uint64_t errs = R->r->failed;
    for (int k = CTR__ERR_FIRST_CONN; k < CTR__ERR_N; k++)
        errs += R->r->err[k];
    uint64_t non2xx = R->r->completed - R->r->ok;
    char p99[32] = "-";
    if (R->r->lat.count)
        snprintf(p99, sizeof p99, "%.3f ms", (double)ctr__hist_percentile(&R->r->lat, 99) / 1e6);
    fprintf(o->progress, "\r\033[K  %5.1f/%.0fs %s sent %llu/s  answered %llu/s  non-2xx %llu  errors %llu  p99 %s",
            t, total, R->measuring ? "" : "(warmup)", (unsigned long long)R->tick_sent,
            (unsigned long long)R->tick_done, (unsigned long long)non2xx, (unsigned long long)errs, p99);
    fflush(o->progress);
    R->progress_printed = 1;
    R->tick_sent = R->tick_done = 0;
    while (R->next_tick <= now)
        R->next_tick += NS;
}

/* ---- the run -------------------------------------------------------------- */

static void start_measuring(run_t *R)
{
    R->measuring = 1;
    getrusage(RUSAGE_SELF, &R->ru0);
}

static double ru_secs(const struct rusage *a)
{
    return (double)a->ru_utime.tv_sec + (double)a->ru_utime.tv_usec / 1e6 +
           (double)a->ru_stime.tv_sec + (double)a->ru_stime.tv_usec / 1e6;
}

/* Opens every connection before the clock starts; fails only if none
 * could be made within the timeout. */
static int connect_all(run_t *R, char *err, size_t errlen)
{
    uint64_t now = now_ns();
    uint64_t deadline = now + R->o->timeout_ns;
    R->hard_end = R->end_send = deadline + 1;
    for (size_t i = 0; i < R->n_conns; i++)
        conn_start(R, &R->conns[i], now);
    struct epoll_event evs[256];
    while (R->timed.n && (now = now_ns()) < deadline) {
        int n = epoll_wait(R->ep, evs, 256, (int)((deadline - now) / MS) + 1);
        for (int i = 0; i < n; i++)
            if (evs[i].data.ptr)
                on_event(R, evs[i].data.ptr, evs[i].events);
        expire(R, now_ns());
    }
    expire(R, deadline);
    if (R->idle.n)
        return 0;
    int e = R->first_connect_errno ? R->first_connect_errno : ETIMEDOUT;
    return ctr_error(err, errlen, CTR_EIO, "cannot connect to %s: %s", R->o->target,
                     e == ETIMEDOUT ? "no answer (connect timed out)" : strerror(e));
}

int ctr__run(const ctr__run_opts_t *o, ctr__run_result_t *r, char *err, size_t errlen)
{
    run_t R;
    memset(&R, 0, sizeof R);
    memset(r, 0, sizeof *r);
    ctr__hist_init(&r->lat);
    ctr__hist_init(&r->lat_uncorr);
    ctr__hist_init(&r->lag);
    R.o = o;
    R.r = r;
    R.ep = R.tfd = -1;
    R.counted_left = o->max_requests ? o->max_requests : UINT64_MAX;
    int rc = CTR_ENOMEM;
    CTR_ASSERT(o->msgs && o->msgs->n && o->msgs->framed && o->connections > 0);

    /* Timer slack: the kernel may otherwise delay our wake-ups by 50 us. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

    R.n_conns = o->connections;
    R.conns = calloc(R.n_conns, sizeof *R.conns);
    R.rbuf = malloc(READ_BUF);
    if (!R.conns || !R.rbuf) {
        ctr_error(err, errlen, rc, "out of memory for %zu connections", R.n_conns);
        goto out;
    }
    for (size_t i = 0; i < R.n_conns; i++)
        R.conns[i].fd = -1;
    R.ep = epoll_create1(EPOLL_CLOEXEC);
    R.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (R.ep < 0 || R.tfd < 0) {
        rc = ctr_error(err, errlen, CTR_EIO, "epoll/timerfd: %s", strerror(errno));
        goto out;
    }
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(R.ep, EPOLL_CTL_ADD, R.tfd, &tev)) {
        rc = ctr_error(err, errlen, CTR_EIO, "epoll: %s", strerror(errno));
        goto out;
    }

    rc = connect_all(&R, err, errlen);
    if (rc)
        goto out;

    uint64_t now = now_ns();
    R.t0 = now;
    R.mstart = R.t0 + o->warmup_ns;
    R.end_send = R.mstart + o->duration_ns;
    R.hard_end = R.end_send + o->timeout_ns;
    R.next_tick = R.t0 + NS;
    R.running = 1;
    if (o->warmup_ns == 0)
        start_measuring(&R);
    if (!o->closed_loop) {
        if (o->trace)
            ctr__sched_init_trace(&R.sched, o->trace, o->n_trace, o->speed);
        else
            ctr__sched_init(&R.sched, o->arrival, o->rate, o->seed);
        R.next_seq = 0;
        sched_advance(&R);
    }

    struct epoll_event evs[256];
    for (;;) {
        now = now_ns();
        if (!R.measuring && now >= R.mstart)
            start_measuring(&R);
        expire(&R, now);
        reconnect(&R, now);
        dispatch(&R, now);
        progress(&R, now);
        if (now >= R.hard_end)
            break;
        if (o->stop && *o->stop) {
            r->interrupted = 1;
            break;
        }
        int sending = o->closed_loop ? (now < R.end_send && R.counted_left) : !R.sched_done;
        if (!sending && R.n_busy == 0)
            break;
        int n = wait_events(&R, now, evs, 256);
        for (int i = 0; i < n; i++) {
            if (!evs[i].data.ptr) {
                uint64_t x;
                ssize_t rd = read(R.tfd, &x, sizeof x);
                (void)rd;
                R.armed = 0;
                continue;
            }
            on_event(&R, evs[i].data.ptr, evs[i].events);
        }
    }
    now = now_ns();
    if (!R.measuring)
        start_measuring(&R);

    /* Whatever is left when the run ends. */
    for (conn_t *c = R.timed.head; c; c = c->next)
        if (c->state == C_BUSY && c->counted)
            note_err(&R, CTR__ERR_UNFINISHED, NULL);
    if (!o->closed_loop) {
        /* Interrupted: what was not due yet was never part of the run. */
        uint64_t horizon = r->interrupted ? now : UINT64_MAX;
        while (!R.sched_done && R.next_due <= horizon) {
            if (R.next_due >= R.mstart)
                note_err(&R, CTR__ERR_UNSENT, NULL);
            sched_advance(&R);
        }
        if (r->interrupted && !R.sched_done && R.next_due >= R.mstart)
            r->scheduled--;                   /* generated but not yet due */
    }
    r->hit_max_requests = R.counted_left == 0 ||
                          (o->trace && R.sched.i > o->n_trace);
    struct rusage ru1;
    getrusage(RUSAGE_SELF, &ru1);
    r->window_s = (double)o->duration_ns / 1e9;
    if (r->hit_max_requests && R.last_done > R.mstart && R.last_done - R.mstart < o->duration_ns)
        r->window_s = (double)(R.last_done - R.mstart) / 1e9;   /* ran out of requests early */
    if (r->interrupted)
        r->window_s = now > R.end_send ? r->window_s : now > R.mstart ? (double)(now - R.mstart) / 1e9 : 0;
    r->elapsed_s = (double)(now - R.mstart) / 1e9;
    r->cpu_s = ru_secs(&ru1) - ru_secs(&R.ru0);
    r->cpu_frac = r->elapsed_s > 0 ? r->cpu_s / r->elapsed_s : 0;
    if (R.progress_printed) {
        fprintf(o->progress, "\r\033[K");
        fflush(o->progress);
    }
    rc = 0;
out:
    for (size_t i = 0; R.conns && i < R.n_conns; i++)
        if (R.conns[i].fd >= 0)
            close(R.conns[i].fd);
    if (R.ep >= 0)
        close(R.ep);
    if (R.tfd >= 0)
        close(R.tfd);
    free(R.conns);
    free(R.rbuf);
    return rc;
}
