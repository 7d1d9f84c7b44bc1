/* loop.h - one ctrload run: an epoll event loop driving HTTP/1.1
 * keep-alive connections, open or closed loop, with timeouts on every wait.
 *
 * Open loop: request i is due at start + schedule offset i (schedule.h),
 * whatever happened before. When it comes due it goes out on an idle
 * connection; if every connection is busy it waits, in due order, for the
 * first one to free up (no pipelining: one request per connection at a
 * time). Its latency is counted from when it was due ("corrected": what a
 * user arriving at that moment would see) and from when it was actually
 * written ("uncorrected": what a closed-loop tool like wrk reports).
 *
 * Closed loop: each of C connections sends its next request as soon as
 * the previous answer is in; latency is from the send.
 *
 * What is counted: requests due (open) or sent (closed) inside the
 * measured window [start + warmup, start + warmup + duration). Sending
 * stops at the window's end; requests still due are sent and answers
 * awaited for a grace period (= the timeout), after which whatever is
 * left is counted as unsent or unfinished. So a run always ends by
 * warmup + duration + timeout.
 *
 * The client's own lag: for each request, the time from when it could
 * have gone out (due, and a connection idle) to when it did. A loop that
 * cannot keep up shows here; a server that holds every connection shows in
 * the wait for a free connection instead (waited_for_conn). */
#ifndef CTR_LOADTEST_LOOP_H
#define CTR_LOADTEST_LOOP_H

#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "bodies.h"
#include "hist.h"
#include "http1.h"
#include "schedule.h"

typedef enum {
    /* A request that got no (complete) answer. */
    CTR__ERR_TIMEOUT = 0,     /* no complete response within --timeout */
    CTR__ERR_RESET,           /* connection reset while the request was out */
    CTR__ERR_CLOSED_EARLY,    /* server closed before any byte of the response */
    CTR__ERR_CLOSED_MID,      /* server closed mid-response */
    CTR__ERR_PROTOCOL,        /* malformed response */
    CTR__ERR_UNFINISHED,      /* still in flight when the run ended */
    CTR__ERR_UNSENT,          /* due, but not sent by the end of the run */
    /* Connection attempts (no request attached). */
    CTR__ERR_REFUSED,         /* connect: refused */
    CTR__ERR_CONNECT,         /* connect: other failure (unreachable, no ports, ...) */
    CTR__ERR_CONNECT_TIMEOUT, /* connect: no answer within --timeout */
    CTR__ERR_N
} ctr__err_kind_t;

#define CTR__ERR_FIRST_CONN CTR__ERR_REFUSED

/* "timeout", "reset", ... (JSON key) and a sentence for people. */
const char *ctr__err_key(ctr__err_kind_t k);
const char *ctr__err_text(ctr__err_kind_t k);

typedef struct {
    const struct sockaddr *addr;
    socklen_t addrlen;
    const char *target;           /* "host:port" for messages */
    const ctr__msgset_t *msgs;    /* framed */

    int closed_loop;
    size_t connections;           /* closed loop: = concurrency */
    ctr__arrival_t arrival;       /* open loop */
    double rate;
    uint64_t seed;
    const uint64_t *trace;        /* arrival trace: offsets (ns), n_trace */
    size_t n_trace;
    double speed;

    uint64_t warmup_ns, duration_ns, timeout_ns;
    uint64_t max_requests;        /* counted requests; 0 = no limit */
    uint64_t id_base;             /* request ids are id_base + sequence */
    FILE *progress;               /* live line once a second; NULL = none */
    volatile int *stop;           /* set (by a signal handler) to end the run
                                     now; NULL = none */
} ctr__run_opts_t;

typedef struct {
    uint64_t scheduled;           /* open loop: due in the window */
    uint64_t sent, completed, ok; /* completed: any full response; ok: 2xx */
    uint64_t failed;              /* sum of the request errors */
    uint64_t status[600];
    uint64_t err[CTR__ERR_N];
    char err_example[CTR__ERR_N][96];  /* first occurrence, e.g. strerror */
    uint64_t examples_sent, examples_ok;
    uint64_t connects;            /* successful connects, warmup included */
    uint64_t server_closes;       /* keep-alive ended by the server (not an error) */
    uint64_t waited_for_conn;     /* due while every connection was busy */
    uint64_t conn_wait_max_ns;
    uint64_t bytes_sent, bytes_recv;
    ctr__hist_t lat;              /* corrected: from due (closed loop: from send) */
    ctr__hist_t lat_uncorr;       /* from the actual send */
    ctr__hist_t lag;              /* client's own send lag */
    double window_s;              /* the measured window */
    double elapsed_s;             /* window start to the end of the run */
    double cpu_s;                 /* user + system CPU over elapsed_s */
    double cpu_frac;              /* cpu_s / elapsed_s, of one core */
    int hit_max_requests;         /* stopped at max_requests / end of trace */
    int interrupted;              /* ended early through *stop */
    int first_error_status;       /* first non-2xx answer and its body's start */
    char first_error_body[CTR__HTTP1_SNIPPET + 1];
} ctr__run_result_t;

/* Runs one load; r is filled (caller allocates, it is large). Returns 0,
 * or a negative code with a sentence in err when no connection to the
 * server could be made at all, or on a local failure (epoll, memory). */
int ctr__run(const ctr__run_opts_t *o, ctr__run_result_t *r, char *err, size_t errlen);

#endif
