/* float_text.c - a float as printf("%.9g") prints it (see float_text.h).
 *
 * Nine significant digits are enough for any float32 to parse back to the
 * same bits. glibc's printf gets them with arbitrary-precision arithmetic;
 * at 64 scores per response that was 6% of the server's CPU. A float is
 * m * 2^e with m < 2^24, so for the range scores live in the nine digits
 * follow exactly from one 128-bit product and shift:
 *     q = round(m * 10^(8-k) * 2^e),  10^8 <= q < 10^9,
 * rounded half to even as printf does in the default rounding mode. Outside
 * that range (zero, tiny, huge) it calls snprintf. */
#include "float_text.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef unsigned __int128 u128;

static u128 pow10_u128(int n)
{
    u128 p = 1;
    while (n-- > 0)
        p *= 10;
    return p;
}

/* The exponent style: d.dddddddde-XX, trailing zeros and a bare '.' dropped. */
static size_t put_exponent_style(char *out, size_t pos, const char digits[9], int k)
{
    int last = 8;
    while (last > 0 && digits[last] == '0')
        last--;
    out[pos++] = digits[0];
    if (last > 0) {
        out[pos++] = '.';
        memcpy(out + pos, digits + 1, (size_t)last);
        pos += (size_t)last;
    }
    out[pos++] = 'e';
    out[pos++] = k < 0 ? '-' : '+';
    int a = k < 0 ? -k : k;
    if (a >= 100)
        out[pos++] = (char)('0' + a / 100);
    out[pos++] = (char)('0' + a / 10 % 10);
    out[pos++] = (char)('0' + a % 10);
    return pos;
}

/* The fixed style for -4 <= k <= 8: k+1 integer digits (or "0." and -k-1
 * zeros), the rest after the point, trailing zeros and a bare '.' dropped. */
static size_t put_fixed_style(char *out, size_t pos, const char digits[9], int k)
{
    int last = 8;
    while (last > 0 && digits[last] == '0')
        last--;
    if (k >= 0) {
        memcpy(out + pos, digits, (size_t)k + 1);
        pos += (size_t)k + 1;
        if (last > k) {
            out[pos++] = '.';
            memcpy(out + pos, digits + k + 1, (size_t)(last - k));
            pos += (size_t)(last - k);
        }
        return pos;
    }
    out[pos++] = '0';
    out[pos++] = '.';
    for (int z = 0; z < -k - 1; z++)
        out[pos++] = '0';
    memcpy(out + pos, digits, (size_t)last + 1);
    return pos + (size_t)last + 1;
}

size_t ctr__float_text(char out[CTR__FLOAT_TEXT_MAX], float f)
{
    double d = fabs((double)f);
    /* 2^-60 keeps 10^(8-k) below 10^28 and the product below 2^118; below
     * 1e9 no digit lies left of the ninth. */
    if (!(d >= 0x1p-60 && d < 1e9)) {
        int n = snprintf(out, CTR__FLOAT_TEXT_MAX, "%.9g", (double)f);
        return n > 0 ? (size_t)n : 0;
    }
    int e;
    double frac = frexp(d, &e);                   /* d = frac 2^e, frac in [0.5, 1) */
    uint64_t m = (uint64_t)ldexp(frac, 24);       /* exact: a float has 24 bits */
    int shift = 24 - e;                           /* d = m / 2^shift */
    /* log10(d) lies in [(e-1) log10 2, e log10 2): start from the floor of
     * the lower end (1233/4096 ~ log10 2) and let the loop step up once. */
    int lo = (e - 1) * 1233;
    int k = lo >= 0 ? lo / 4096 : -((-lo + 4095) / 4096);
    u128 q = 0, rem = 0, n = 0;
    for (int tries = 0; tries < 4; tries++) {
        n = (u128)m * pow10_u128(8 - k);
        if (shift <= 0) {
            q = n << -shift;
            rem = 0;
        } else {
            q = n >> shift;
            rem = n & (((u128)1 << shift) - 1);
        }
        if (q < 100000000u)
            k--;
        else if (q >= 1000000000u)
            k++;
        else
            break;
    }
    if (shift > 0) {
        u128 half = (u128)1 << (shift - 1);
        if (rem > half || (rem == half && (q & 1)))
            q++;
    }
    if (q == 1000000000u) { /* 999999999.5 rounded up: one more digit left */
        q = 100000000u;
        k++;
    }
    char digits[9];
    uint32_t v = (uint32_t)q;
    for (int i = 8; i >= 0; i--) {
        digits[i] = (char)('0' + v % 10);
        v /= 10;
    }
    size_t pos = 0;
    if (f < 0)
        out[pos++] = '-';
    /* %g: exponent style when the exponent is below -4 or at least the
     * precision (9); the range check above rules the latter out. */
    pos = k < -4 ? put_exponent_style(out, pos, digits, k) : put_fixed_style(out, pos, digits, k);
    out[pos] = '\0';
    return pos;
}
