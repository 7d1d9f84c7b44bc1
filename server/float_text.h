/* float_text.h - scores as text: exactly the bytes printf("%.9g") gives,
 * which parse back (strtof) to the same float32, without printf's cost. */
#ifndef CTR_SERVER_FLOAT_TEXT_H
#define CTR_SERVER_FLOAT_TEXT_H

#include <stddef.h>

/* "-1.23456789e-100" and its terminator fit. */
#define CTR__FLOAT_TEXT_MAX 32

/* Writes f as "%.9g" would (NaN and infinities too) and a terminating NUL;
 * returns the length without it. */
size_t ctr__float_text(char out[CTR__FLOAT_TEXT_MAX], float f);

#endif
