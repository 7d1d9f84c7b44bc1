/* rng.h - splitmix64, the one pseudo-random generator of ctr (trainer
 * initialisation and data order, synthetic data and models, ctrload's
 * schedules and bodies). Integer-only, so a seed gives the same numbers on
 * every platform and compiler: trained models and synthetic data are
 * byte-identical everywhere. Header-only: it sits in inner loops. */
#ifndef CTR_RNG_H
#define CTR_RNG_H

#include <stdint.h>

#define CTR_SPLITMIX64_GAMMA 0x9e3779b97f4a7c15ull

/* The splitmix64 output function: a bijective 64-bit mix. */
static inline uint64_t ctr_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Advances *state and returns the next number of its sequence. */
static inline uint64_t ctr_splitmix64_next(uint64_t *state)
{
    return ctr_mix64(*state += CTR_SPLITMIX64_GAMMA);
}

/* Counter-based form: the number a state of x - gamma would give next, so
 * f(seed ^ i) addresses any element of a stream without walking it. */
static inline uint64_t ctr_splitmix64(uint64_t x)
{
    return ctr_mix64(x + CTR_SPLITMIX64_GAMMA);
}

#endif
