/* schedule.c - open-loop due times (see schedule.h). */
#include "schedule.h"

#include <math.h>
#include <string.h>

#include "ctr/rng.h"

double ctr__rng_uniform(uint64_t *state)
{
    return (double)(ctr_splitmix64_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

void ctr__sched_init(ctr__sched_t *s, ctr__arrival_t kind, double rate, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->rate = rate;
    s->period_ns = 1e9 / rate;
    s->rng = seed ^ 0x5eed5c4ed01ea5e5ull;
    s->speed = 1.0;
}

void ctr__sched_init_trace(ctr__sched_t *s, const uint64_t *offsets, size_t n, double speed)
{
    memset(s, 0, sizeof *s);
    s->kind = CTR__ARRIVAL_TRACE;
    s->trace = offsets;
    s->n_trace = n;
    s->speed = speed > 0 ? speed : 1.0;
}

uint64_t ctr__sched_next(ctr__sched_t *s)
{
    uint64_t i = s->i++;
    switch (s->kind) {
    case CTR__ARRIVAL_CONSTANT:
        /* Multiplied, not accumulated: no drift over a long run. */
        return (uint64_t)llround((double)i * s->period_ns);
    case CTR__ARRIVAL_POISSON: {
        uint64_t at = (uint64_t)llround(s->t);
        /* 1 - u is in (0, 1]: log never sees 0. */
        s->t += -log(1.0 - ctr__rng_uniform(&s->rng)) * s->period_ns;
        return at;
    }
    case CTR__ARRIVAL_TRACE:
        if (i >= s->n_trace)
            return CTR__SCHED_END;
        return (uint64_t)llround((double)s->trace[i] / s->speed);
    }
    return CTR__SCHED_END;
}

const char *ctr__arrival_name(ctr__arrival_t a)
{
    switch (a) {
    case CTR__ARRIVAL_CONSTANT: return "constant";
    case CTR__ARRIVAL_POISSON: return "poisson";
    case CTR__ARRIVAL_TRACE: return "trace";
    }
    return "?";
}
