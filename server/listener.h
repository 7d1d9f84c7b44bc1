/* listener.h - accepts ctrd's connections on its own thread and hands each
 * to libmicrohttpd, spread over its thread pool.
 *
 * Why not libmicrohttpd's own accept: in its thread pool every worker
 * polls the one listening socket and the first awake takes what is
 * waiting (up to 10 in a row), so a client that opens its connections in
 * a burst (ctrload, most connection pools) lands them all on one worker.
 * Measured (2 workers, 64 ctrload connections): 64 on one worker, 0 on the
 * other, so one core served every request. MHD_add_connection places a
 * connection on the worker its socket number picks (the next one with
 * room if that one is full): 109 and 111 CPU ticks on the two workers in
 * the same run.
 *
 * The gate: libmicrohttpd 0.9.75 leaves a worker's cleanup mutex locked
 * when a connection handed over with MHD_add_connection finds that worker
 * at its connection limit (new_connection_process_, daemon.c), and the
 * worker deadlocks on its next connection (seen under a flood). So the
 * daemon's limit is set to pool * ctr__listener_mhd_limit(gate) (each
 * worker may hold every connection), and this thread stops accepting while
 * `gate` connections it handed over are open: they wait in the listen
 * backlog meanwhile, as they did at libmicrohttpd's own limit. */
#ifndef CTR_SERVER_LISTENER_H
#define CTR_SERVER_LISTENER_H

#include <microhttpd.h>

#include "conns.h"

typedef struct ctr__listener ctr__listener_t;

/* The per-worker connection limit to give libmicrohttpd (times the pool
 * size) for a gate: the gate and a margin for the connections
 * libmicrohttpd closes before it counts them out. */
unsigned ctr__listener_mhd_limit(unsigned gate);

/* Takes daemon's listening socket (MHD_quiesce_daemon: libmicrohttpd stops
 * accepting on it; the daemon needs MHD_USE_ITC) and starts the accept
 * thread, which keeps at most gate connections open (counted out by
 * conns' NOTIFY_CLOSED). 0, or a CTR_E* code with err set. *out is set
 * whenever the socket was taken, failure included: free it (after
 * MHD_stop_daemon) either way. */
int ctr__listener_start(struct MHD_Daemon *daemon, ctr__conns_t *conns, unsigned gate, ctr__listener_t **out,
                        char *err, size_t errlen);

/* Stops accepting (new connects are refused by the kernel from here) and
 * joins the thread; connections already handed over are libmicrohttpd's. */
void ctr__listener_stop(ctr__listener_t *l);

/* Closes the socket and frees l: after MHD_stop_daemon (libmicrohttpd's
 * threads may look at a quiesced socket until then). NULL is fine. */
void ctr__listener_free(ctr__listener_t *l);

#endif
