/* detmath_int.h - deterministic elementary functions for the scoring path.
 *
 * libm's exp/log may give different last bits on different machines (glibc
 * picks FMA or non-FMA code paths at run time, other libcs differ), and a
 * score must not. These use only IEEE double +, -, *, / and exact scaling
 * (frexp/ldexp), in a fixed order, with fp contraction off, so they return
 * the same bits everywhere. Accuracy is documented per function. */
#ifndef CTR_DETMATH_INT_H
#define CTR_DETMATH_INT_H

/* e^x. Relative error below 2^-51 (about 4.4e-16) on the whole range;
 * overflows to +inf above 709.78, underflows to 0 below -745. */
double ctr__exp(double x);

/* log(1 + x) for x >= 0 (negative input: NaN). Absolute error below
 * 2^-52 * (1 + |log(1+x)|). */
double ctr__log1p(double x);

#endif
