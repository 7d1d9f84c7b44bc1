/* json_num.c - exact JSON number parsing (see json_num.h). */
#include "json_num.h"

#include <float.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Significant digits kept for the strtod fallback. Deciding the rounding of
 * any decimal to double needs at most 767 of them; past those only "is
 * anything nonzero left" matters, which one sticky digit carries. */
#define NUM_MAX_SIG 800
#define NUM_EXP_CLAMP 1000000000LL /* |exponent literal| beyond this is inf or 0 anyway */

static const double pow10_exact[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale;

static void c_locale_init(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* strtod, immune to whatever setlocale() the process did. */
static double strtod_c(const char *s)
{
    pthread_once(&c_locale_once, c_locale_init);
    if (c_locale)
        return strtod_l(s, NULL, c_locale);
    return strtod(s, NULL);
}

static int is_digit(unsigned char c)
{
    return (unsigned)(c - '0') < 10u;
}

/* The slow path: rewrite the token as <sign><digits>e<exp> with at most
 * NUM_MAX_SIG significant digits (+ a sticky 1) and hand it to strtod. */
static double slow_double(const unsigned char *s, const unsigned char *end, int neg,
                          long long explit)
{
    char buf[NUM_MAX_SIG + 48];
    size_t k = 0;
    long long frac = 0, dropped = 0;
    int in_frac = 0, sticky = 0, started = 0;

    if (neg)
        buf[k++] = '-';
    for (; s < end; s++) {
        unsigned char c = *s;
        if (c == '.') {
            in_frac = 1;
            continue;
        }
        if (!is_digit(c))
            break;
        if (in_frac)
            frac++;
        if (!started && c == '0')
            continue;
        started = 1;
        if (k - (size_t)neg < NUM_MAX_SIG)
            buf[k++] = (char)c;
        else {
            dropped++;
            if (c != '0')
                sticky = 1;
        }
    }
    if (!started)
        return neg ? -0.0 : 0.0;
    if (sticky) {
        buf[k++] = '1';
        dropped--;
    }
    snprintf(buf + k, sizeof(buf) - k, "e%lld", explit - frac + dropped);
    return strtod_c(buf);
}

long ctr__json_num_parse(const char *p0, size_t avail, int flags, ctr__json_num_t *out)
{
    const unsigned char *p = (const unsigned char *)p0, *s = p, *end = p + avail;
    uint64_t m = 0;
    int nd = 0, neg = 0, trunc = 0, is_int = 1;
    long long dexp = 0, explit = 0;

    out->d = 0.0;
    out->i = 0;
    out->is_int = out->int_ok = out->overflow = 0;

    if (s < end && *s == '-') {
        neg = 1;
        s++;
    }
    if (s >= end || !is_digit(*s))
        return -(long)(s - p + 1);
    const unsigned char *digits = s;
    if (*s == '0') {
        s++;
        if (s < end && is_digit(*s))
            return -(long)(s - p + 1);
    } else {
        for (; s < end && is_digit(*s); s++) {
            unsigned d = *s - '0';
            if (nd < 19) {
                m = m * 10 + d;
                nd++;
            } else {
                dexp++;
                if (d)
                    trunc = 1;
            }
        }
    }
    if (s < end && *s == '.') {
        is_int = 0;
        s++;
        if (s >= end || !is_digit(*s))
            return -(long)(s - p + 1);
        for (; s < end && is_digit(*s); s++) {
            unsigned d = *s - '0';
            if (nd < 19) {
                if (nd || d) {
                    m = m * 10 + d;
                    nd++;
                }
                dexp--;
            } else if (d) {
                trunc = 1;
            }
        }
    }
    if (s < end && (*s == 'e' || *s == 'E')) {
        int eneg = 0;
        is_int = 0;
        s++;
        if (s < end && (*s == '+' || *s == '-')) {
            eneg = *s == '-';
            s++;
        }
        if (s >= end || !is_digit(*s))
            return -(long)(s - p + 1);
        for (; s < end && is_digit(*s); s++)
            if (explit < NUM_EXP_CLAMP)
                explit = explit * 10 + (*s - '0');
        if (eneg)
            explit = -explit;
        dexp += explit;
    }
    long len = (long)(s - p);

    out->is_int = (unsigned)is_int;
    if (is_int && dexp == 0) { /* at most 19 digits: m is exact */
        if (!neg && m <= (uint64_t)INT64_MAX) {
            out->int_ok = 1;
            out->i = (int64_t)m;
        } else if (neg && m <= (uint64_t)INT64_MAX + 1) {
            out->int_ok = 1;
            out->i = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
        }
    }

    /* m * 10^dexp is the value up to the dropped digits (trunc). */
    if (m == 0) { /* every digit was zero: 0e999 is 0, not an overflow */
        if (flags & CTR__NUM_WANT_DOUBLE)
            out->d = neg ? -0.0 : 0.0;
        return len;
    }
#if FLT_EVAL_METHOD == 0
    if (!trunc && (dexp == 0 || (m <= (1ull << 53) && dexp >= -22 && dexp <= 22))) {
        if (flags & CTR__NUM_WANT_DOUBLE) {
            double d = (double)m;
            if (dexp > 0)
                d *= pow10_exact[dexp];
            else if (dexp < 0)
                d /= pow10_exact[-dexp];
            out->d = neg ? -d : d;
        }
        return len;
    }
#endif
    /* The value lies in [10^(nd-1+dexp), 10^(nd+dexp)); DBL_MAX < 10^309. */
    if (!(flags & CTR__NUM_WANT_DOUBLE) && nd + dexp <= 308)
        return len;
    double d = slow_double(digits, s, neg, explit);
    if (isinf(d))
        out->overflow = 1;
    if (flags & CTR__NUM_WANT_DOUBLE)
        out->d = d;
    return len;
}
