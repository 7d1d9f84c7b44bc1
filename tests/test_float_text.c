/* test_float_text.c - ctr__float_text gives exactly the bytes of
 * printf("%.9g") for every float it is fed: every third float of
 * [1/64, 1) (the range of most click probabilities), every float around each power of ten and each
 * rounding tie it can meet, and random bit patterns over the whole range
 * (NaN, infinities, zeros, subnormals included); and each text parses back
 * to the same float. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/float_text.h"
#include "testutil.h"

static long compared, mismatched;

static void compare(float f)
{
    char want[64], got[CTR__FLOAT_TEXT_MAX];
    snprintf(want, sizeof want, "%.9g", (double)f);
    size_t n = ctr__float_text(got, f);
    compared++;
    /* Millions of floats go through here: only the first few mismatches
     * are checked one by one (and print both texts); the count is checked
     * in main. */
    if (n != strlen(want) || strcmp(want, got) != 0) {
        if (mismatched++ < 10) {
            uint32_t bits;
            memcpy(&bits, &f, sizeof bits);
            CHECK_EQ_STR(got, want);
            CHECK_EQ_SIZE(n, strlen(want));
            fprintf(stderr, "  the float with bits 0x%08x\n", bits);
        }
        return;
    }
    if (isfinite(f)) {
        float back = strtof(got, NULL);
        if (memcmp(&back, &f, sizeof f) != 0 && mismatched++ < 10) {
            CHECK_EQ_BITS(back, f);
            fprintf(stderr, "  \"%s\" does not parse back\n", got);
        }
    }
}

static void compare_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    compare(f);
}

int main(void)
{
    /* Every third float in [1/64, 1): 16.8M of them, where most scores lie. */
    uint32_t lo, hi;
    float a = 1.0f / 64.0f, b = 1.0f;
    memcpy(&lo, &a, 4);
    memcpy(&hi, &b, 4);
    for (uint32_t u = lo; u < hi; u += 3)
        compare_bits(u);
    long dense = compared;
    CHECKF(mismatched == 0, "%ld of %ld floats in [1/64, 1) differ from printf", mismatched, dense);

    /* 64 floats either side of every power of ten a float can reach, and of
     * each 9-digit step's midpoint near them (where ties and the carry into
     * a tenth digit happen). */
    for (int p = -45; p <= 38; p++) {
        float t = (float)pow(10.0, p);
        for (int s = 0; s < 2; s++) {
            float x = s ? -t : t;
            uint32_t u;
            memcpy(&u, &x, 4);
            for (int i = -64; i <= 64; i++)
                compare_bits(u + (uint32_t)i);
        }
    }
    /* Exact ties: integers n + 0.5 (exact in float below 2^23) at nine
     * digits sit where the tenth digit is 5 and nothing follows. */
    for (int n = 0; n < 2000; n++) {
        compare((float)(100000000.0 + n * 64.0));
        compare((float)(n + 0.5) / 1024.0f);
        compare(ldexpf(1.0f, n % 200 - 100) * 0.99999994f);
    }
    float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, 1.0f, -1.0f, 1e9f, 999999999.0f,
                       999999936.0f, 1e-4f, 9.99999975e-05f, 1e-5f, 0x1p-60f, 0x1.fffffep-61f,
                       0x1p-149f, 0x1.fffffep127f, 0.5f, 0.1f, 123456789.0f, 1.5e-5f};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
        compare(special[i]);

    /* Random bit patterns over the whole float range. */
    uint64_t st = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 3000000; i++) {
        st ^= st << 13;
        st ^= st >> 7;
        st ^= st << 17;
        compare_bits((uint32_t)st);
    }
    CHECKF(mismatched == 0, "%ld of %ld floats differ from printf or do not parse back", mismatched, compared);
    printf("%ld floats compared with printf(\"%%.9g\"), %ld differ\n", compared, mismatched);
    return test_main_end();
}
