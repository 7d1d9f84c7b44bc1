/* listener.c - ctrd's accept thread (see listener.h). */
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "ctr/common.h"
#include "log.h"

struct ctr__listener {
    struct MHD_Daemon *daemon;
    ctr__conns_t *conns;
    unsigned gate;
    uint64_t handed;               /* connections given to libmicrohttpd */
    int fd;
    atomic_int stop;
    pthread_t thread;
    int started;
};

/* Margin over the gate: a connection is counted closed (NOTIFY_CLOSED)
 * a moment before its worker counts it out, and a few may have been
 * accepted by libmicrohttpd itself before the socket was handed over. */
#define LIMIT_MARGIN 64u

unsigned ctr__listener_mhd_limit(unsigned gate)
{
    return gate > 4000000000u - LIMIT_MARGIN ? 4000000000u : gate + LIMIT_MARGIN;
}

/* Connections handed over and not closed yet; negative (0) when some
 * libmicrohttpd accepted itself before the hand-over have closed. */
static int64_t open_now(const ctr__listener_t *l)
{
    return (int64_t)(l->handed - ctr__conns_closed(l->conns));
}

/* Out of descriptors or memory: accept() would fail again at once, so the
 * thread waits a little (the connection stays in the backlog meanwhile)
 * and says so at most once a second. */
static void back_off(int err)
{
    static _Thread_local uint64_t last_log_ns;
    uint64_t now = ctr__mono_ns();
    if (now - last_log_ns >= 1000000000ull) {
        last_log_ns = now;
        ctr__log(CTR_LOG_ERROR, "accept failed: retrying in 10 ms", CTR_LOG_S("error", strerror(err)), CTR_LOG_END);
    }
    struct timespec ts = {0, 10000000L};
    nanosleep(&ts, NULL);
}

static void *accept_main(void *arg)
{
    ctr__listener_t *l = arg;
    pthread_setname_np(pthread_self(), "ctrd-accept");
    for (;;) {
        /* At the gate: leave newcomers in the backlog until one closes. */
        while (open_now(l) >= (int64_t)l->gate && !atomic_load(&l->stop)) {
            struct timespec ts = {0, 1000000L};
            nanosleep(&ts, NULL);
        }
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
        if (atomic_load(&l->stop)) {
            if (fd >= 0)
                close(fd);
            break;
        }
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN || errno == EPROTO)
                continue;
            back_off(errno);
            continue;
        }
        /* libmicrohttpd owns fd from here (it closes it on failure). A
         * failure before NOTIFY_STARTED (no memory for the connection's
         * pool) is never counted closed: the gate stays one tighter. */
        l->handed++;
        MHD_add_connection(l->daemon, fd, (struct sockaddr *)&ss, len);
    }
    return NULL;
}

int ctr__listener_start(struct MHD_Daemon *daemon, ctr__conns_t *conns, unsigned gate, ctr__listener_t **out,
                        char *err, size_t errlen)
{
    *out = NULL;
    ctr__listener_t *l = calloc(1, sizeof *l);
    if (!l)
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    l->daemon = daemon;
    l->conns = conns;
    l->gate = gate ? gate : 1;
    atomic_init(&l->stop, 0);
    l->fd = MHD_quiesce_daemon(daemon);
    if (l->fd == MHD_INVALID_SOCKET) {
        free(l);
        return ctr_error(err, errlen, CTR_EIO, "libmicrohttpd did not hand over its listening socket");
    }
    /* The socket is ours from here, but may only be closed after
     * MHD_stop_daemon: on failure too, the caller frees l after that. */
    *out = l;
    /* libmicrohttpd made it non-blocking for its poll loop; this thread
     * sleeps in accept() instead. */
    int fl = fcntl(l->fd, F_GETFL);
    if (fl < 0 || fcntl(l->fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        return ctr_error(err, errlen, CTR_EIO, "listening socket: %s", strerror(errno));
    int rc = pthread_create(&l->thread, NULL, accept_main, l);
    if (rc)
        return ctr_error(err, errlen, CTR_EIO, "cannot start the accept thread: %s", strerror(rc));
    l->started = 1;
    return 0;
}

void ctr__listener_stop(ctr__listener_t *l)
{
    if (!l || !l->started)
        return;
    atomic_store(&l->stop, 1);
    /* On Linux, shutdown() of a listening socket wakes a blocked accept()
     * (EINVAL) and stops the listen: new connects are refused from here. */
    shutdown(l->fd, SHUT_RDWR);
    pthread_join(l->thread, NULL);
    l->started = 0;
}

void ctr__listener_free(ctr__listener_t *l)
{
    if (!l)
        return;
    ctr__listener_stop(l);
    if (l->fd >= 0)
        close(l->fd);
    free(l);
}
