/* detmath.c - deterministic exp and log1p (see detmath_int.h).
 *
 * exp: x = k*ln2 + r with |r| <= ln2/2, e^r by its Taylor series to r^14
 * (truncation error < 0.347^15/15! ~ 1.2e-19, far below double rounding),
 * evaluated by Horner from the smallest term, then scaled by 2^k exactly.
 * ln2 is split in a high part with trailing zero bits (k*LN2_HI is exact
 * for |k| < 2^11) and a low part, so r carries no large reduction error.
 *
 * log1p: u = 1 + x = m * 2^e with m in [sqrt(1/2), sqrt(2)), log m =
 * 2 atanh(s), s = (m-1)/(m+1), |s| < 0.1716, series to s^25 (truncation
 * < 1e-20). The rounding of 1 + x is undone by the classic correction
 * log1p(x) ~ log(u) * x / (u - 1), exact enough for x below 2^-20. */
#include "detmath_int.h"

#include <math.h>
#include <stddef.h>

static const double LN2_HI = 6.93147180369123816490e-01; /* 0x3fe62e42fee00000 */
static const double LN2_LO = 1.90821492927058770002e-10; /* 0x3dea39ef35793c76 */
static const double LOG2E = 1.44269504088896338700e+00;

/* 1/n! for n = 14 down to 2, correctly rounded. */
static const double INV_FACT[] = {
    1.1470745597729725e-11, 1.6059043836821613e-10, 2.08767569878681e-09,
    2.505210838544172e-08,  2.755731922398589e-07,  2.7557319223985893e-06,
    2.48015873015873e-05,   0.0001984126984126984,  0.001388888888888889,
    0.008333333333333333,   0.041666666666666664,   0.16666666666666666,
    0.5,
};

double ctr__exp(double x)
{
    if (x != x)
        return x;
    if (x > 709.782712893384)
        return INFINITY;
    if (x < -745.2)
        return 0.0;
    double kd = floor(x * LOG2E + 0.5);
    int k = (int)kd;
    double r = (x - kd * LN2_HI) - kd * LN2_LO;
    /* Horner from the r^14 term down; the last two steps add r and 1. */
    double p = INV_FACT[0];
    for (size_t i = 1; i < sizeof(INV_FACT) / sizeof(INV_FACT[0]); i++)
        p = p * r + INV_FACT[i];
    p = p * r * r + r + 1.0;
    /* Scale in two steps so 2^k never overflows/underflows on its own. */
    if (k > 1000)
        return ldexp(ldexp(p, k - 1000), 1000);
    if (k < -1000)
        return ldexp(ldexp(p, k + 1000), -1000);
    return ldexp(p, k);
}

/* 1/n for n = 25, 23, ..., 3: the compiler folds each quotient with IEEE
 * division, so these are the bits the loop once divided out at run time
 * (12 dependent divisions per call, 10% of the server's CPU at 64
 * examples per request). */
static const double INV_ODD[] = {
    1.0 / 25.0, 1.0 / 23.0, 1.0 / 21.0, 1.0 / 19.0, 1.0 / 17.0, 1.0 / 15.0,
    1.0 / 13.0, 1.0 / 11.0, 1.0 / 9.0,  1.0 / 7.0,  1.0 / 5.0,  1.0 / 3.0,
};

double ctr__log1p(double x)
{
    if (!(x >= 0.0))
        return x != x ? x : NAN;
    if (x == INFINITY)
        return x;
    double u = 1.0 + x;
    if (u == 1.0)
        return x; /* log1p(x) = x - x^2/2 + ...; x < 2^-53 here */
    int e;
    double m = frexp(u, &e); /* u = m 2^e, m in [0.5, 1) */
    if (m < 0.70710678118654752440) {
        m *= 2.0;
        e -= 1;
    }
    double s = (m - 1.0) / (m + 1.0);
    double s2 = s * s;
    double t = 0.0;
    for (size_t i = 0; i < sizeof(INV_ODD) / sizeof(INV_ODD[0]); i++)
        t = (t + INV_ODD[i]) * s2;
    double logm = 2.0 * s + 2.0 * s * t;
    double lu = ((double)e * LN2_LO + logm) + (double)e * LN2_HI;
    if (x < 0x1p-20)
        return lu * (x / (u - 1.0));
    return lu;
}
