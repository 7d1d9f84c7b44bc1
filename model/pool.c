/* pool.c - the thread pool (contract in pool_int.h).
 *
 * A run is a generation: ctr__pool_run sets fn and ctx, bumps gen and
 * wakes everyone; each worker runs fn once per generation it sees and
 * counts itself out, the last one signalling done. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctr/common.h"
#include "pool_int.h"

struct ctr__pool {
    unsigned n;
    unsigned started;        /* threads 1..started-1 are running */
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    void (*fn)(void *, unsigned);
    void *ctx;
    unsigned long gen;
    unsigned running;
    int stop;
    struct pool_arg {
        struct ctr__pool *p;
        unsigned tid;
    } *args;
};

unsigned ctr__pool_threads(unsigned requested)
{
    if (requested)
        return requested;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 16 ? 16 : (unsigned)n;
}

static void *pool_main(void *arg)
{
    struct pool_arg *a = arg;
    ctr__pool_t *p = a->p;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->gen == seen)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->stop)
            break;
        seen = p->gen;
        void (*fn)(void *, unsigned) = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->mu);
        fn(ctx, a->tid);
        pthread_mutex_lock(&p->mu);
        if (--p->running == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int ctr__pool_new(unsigned n, ctr__pool_t **out, char *err, size_t errlen)
{
    *out = NULL;
    ctr__pool_t *p = calloc(1, sizeof(*p));
    if (!p)
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory for the thread pool");
    p->n = n ? n : 1;
    p->started = 1;
    int rc = 0;
    if (p->n > 1) {
        /* Initialised before anything can fail: ctr__pool_free destroys them. */
        pthread_mutex_init(&p->mu, NULL);
        pthread_cond_init(&p->go, NULL);
        pthread_cond_init(&p->done, NULL);
        if (!(p->th = calloc(p->n, sizeof(*p->th))) ||
            !(p->args = calloc(p->n, sizeof(*p->args)))) {
            rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory for the thread pool");
            goto fail;
        }
        for (; p->started < p->n; p->started++) {
            unsigned t = p->started;
            p->args[t] = (struct pool_arg){p, t};
            int e = pthread_create(&p->th[t], NULL, pool_main, &p->args[t]);
            if (e) {
                rc = ctr_error(err, errlen, ctr_errno_code(e), "cannot start thread %u of %u: %s",
                               t + 1, p->n, strerror(e));
                goto fail;
            }
        }
    }
    *out = p;
    return 0;
fail:
    ctr__pool_free(p);
    return rc;
}

void ctr__pool_free(ctr__pool_t *p)
{
    if (!p)
        return;
    if (p->n > 1) {
        pthread_mutex_lock(&p->mu);
        p->stop = 1;
        pthread_cond_broadcast(&p->go);
        pthread_mutex_unlock(&p->mu);
        for (unsigned t = 1; t < p->started; t++)
            pthread_join(p->th[t], NULL);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->go);
        pthread_cond_destroy(&p->done);
    }
    free(p->th);
    free(p->args);
    free(p);
}

unsigned ctr__pool_size(const ctr__pool_t *p)
{
    return p ? p->n : 1;
}

void ctr__pool_run(ctr__pool_t *p, void (*fn)(void *, unsigned), void *ctx)
{
    if (!p || p->n == 1) {
        fn(ctx, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->running = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0);
    pthread_mutex_lock(&p->mu);
    while (p->running)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
