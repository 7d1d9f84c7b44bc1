/* pool_int.h - a fixed set of threads that run one function together
 * (the trainer's two phases per step, offline scoring).
 *
 * ctr__pool_run hands fn(ctx, tid) to every thread, the caller's included
 * as tid 0, and returns when all have finished; the threads wait between
 * runs. Work is split by the callers (an atomic task counter), so the
 * results never depend on which thread ran which piece. */
#ifndef CTR_POOL_INT_H
#define CTR_POOL_INT_H

#include <stddef.h>

typedef struct ctr__pool ctr__pool_t;

/* A thread count: requested, or when 0 the online CPUs, at most 16. */
unsigned ctr__pool_threads(unsigned requested);

/* n threads in all, the caller included (n <= 1 runs everything inline,
 * starting none). Returns 0 with *out owned by the caller (ctr__pool_free),
 * or CTR_ENOMEM / the code of pthread_create's errno, with err filled. */
int ctr__pool_new(unsigned n, ctr__pool_t **out, char *err, size_t errlen);

/* Stops and joins the threads. NULL is a no-op. */
void ctr__pool_free(ctr__pool_t *p);

/* Threads in the pool, the caller included; 1 for NULL. */
unsigned ctr__pool_size(const ctr__pool_t *p);

/* Runs fn(ctx, tid) on every thread, tid = 0..n-1, and waits for all. A
 * NULL pool runs fn(ctx, 0) inline. */
void ctr__pool_run(ctr__pool_t *p, void (*fn)(void *ctx, unsigned tid), void *ctx);

#endif
