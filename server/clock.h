/* clock.h - the two clocks the server reads: monotonic for latencies and
 * deadlines, real time for log and audit timestamps. */
#ifndef CTR_SERVER_CLOCK_H
#define CTR_SERVER_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t ctr__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t ctr__real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
