/* schedule.h - when each request of an open-loop run is due.
 *
 * The due times are fixed before the run starts: they are a function of
 * the arrival process, the rate and the seed only, never of how the server
 * or the client behaved. (They are produced one at a time, so a long run
 * needs no memory for them, but the sequence is the same whatever happens
 * at run time.) Times are offsets in ns from the start of the run.
 *
 *   constant  request i is due at i / rate
 *   poisson   exponential gaps with mean 1 / rate (a Poisson process)
 *   trace     the offsets of a recorded log (replay), scaled by 1 / speed */
#ifndef CTR_LOADTEST_SCHEDULE_H
#define CTR_LOADTEST_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    CTR__ARRIVAL_CONSTANT = 0,
    CTR__ARRIVAL_POISSON = 1,
    CTR__ARRIVAL_TRACE = 2,
} ctr__arrival_t;

#define CTR__SCHED_END UINT64_MAX

typedef struct {
    ctr__arrival_t kind;
    double rate;               /* requests per second (constant, poisson) */
    double period_ns;          /* 1e9 / rate */
    uint64_t i;                /* index of the next request */
    double t;                  /* poisson: offset of the next request, ns */
    uint64_t rng;
    const uint64_t *trace;     /* trace: offsets, non-decreasing; not owned */
    size_t n_trace;
    double speed;
} ctr__sched_t;

void ctr__sched_init(ctr__sched_t *s, ctr__arrival_t kind, double rate, uint64_t seed);
/* offsets[n] must stay alive while s is used. speed > 0 (2 = twice as fast). */
void ctr__sched_init_trace(ctr__sched_t *s, const uint64_t *offsets, size_t n, double speed);
/* Offset of the next due request in ns, CTR__SCHED_END after a trace's last. */
uint64_t ctr__sched_next(ctr__sched_t *s);

/* "constant", "poisson", "trace": for reports. */
const char *ctr__arrival_name(ctr__arrival_t a);

/* Uniform in [0, 1), from the top 53 bits of the next splitmix64 number
 * (include/ctr/rng.h: ctrload's one generator, for schedules and bodies). */
double ctr__rng_uniform(uint64_t *state);

#endif
