/* test_testutil.c - the CHECK_EQ_* helpers themselves: each one that fails
 * prints file:line, the expression text and both values, counts one
 * failure, and returns 0; each that holds counts one check, prints
 * nothing and returns 1. The failures are provoked with stderr sent to a
 * file, read back, then taken off the count. */
#include <math.h>
#include <unistd.h>

#include "testutil.h"

static char captured[8192];
static int saved_fd = -1;
static FILE *cap;

static void capture_begin(void)
{
    fflush(stderr);
    cap = tmpfile();
    if (!cap) {
        perror("tmpfile");
        exit(1);
    }
    saved_fd = dup(fileno(stderr));
    dup2(fileno(cap), fileno(stderr));
}

static const char *capture_end(void)
{
    fflush(stderr);
    dup2(saved_fd, fileno(stderr));
    close(saved_fd);
    rewind(cap);
    size_t n = fread(captured, 1, sizeof captured - 1, cap);
    captured[n] = 0;
    fclose(cap);
    return captured;
}

/* Runs a check expected to fail; its output must hold each of want[]. */
#define EXPECT_FAIL(check, ...)                                            \
    do {                                                                   \
        int failures0 = ctr_test_failures, checks0 = ctr_test_checks;      \
        capture_begin();                                                   \
        int held = (check);                                                \
        const char *out = capture_end();                                   \
        int counted = ctr_test_failures - failures0 == 1 &&                \
                      ctr_test_checks - checks0 == 1;                      \
        ctr_test_failures = failures0;                                     \
        CHECKF(!held && counted, "%s: held %d, counted %d", #check, held,  \
               counted);                                                   \
        const char *want[] = {__FILE__ ":", __VA_ARGS__};                  \
        for (size_t w = 0; w < sizeof want / sizeof want[0]; w++)          \
            CHECKF(strstr(out, want[w]), "%s: \"%s\" not in: %s", #check,  \
                   want[w], out);                                          \
    } while (0)

/* Runs a check expected to hold: it returns 1 and prints nothing. */
#define EXPECT_PASS(check)                                                 \
    do {                                                                   \
        int failures0 = ctr_test_failures;                                 \
        capture_begin();                                                   \
        int held = (check);                                                \
        const char *out = capture_end();                                   \
        CHECKF(held && ctr_test_failures == failures0 && !out[0],          \
               "%s: held %d, printed: %s", #check, held, out);             \
    } while (0)

static int calls;
static int next_value(void)
{
    return ++calls;
}

int main(void)
{
    int three = 3;
    EXPECT_PASS(CHECK_EQ_INT(three, 3));
    EXPECT_FAIL(CHECK_EQ_INT(three, -4), "three == -4", "3 vs -4");
    EXPECT_PASS(CHECK_EQ_UINT(UINT64_MAX, 0xffffffffffffffffull));
    EXPECT_FAIL(CHECK_EQ_UINT(255u, 256u), "255u == 256u", "255 (0xff) vs 256 (0x100)");
    size_t len = 5;
    EXPECT_PASS(CHECK_EQ_SIZE(len, strlen("hello")));
    EXPECT_FAIL(CHECK_EQ_SIZE(len, 6), "len == 6", "5 vs 6");
    EXPECT_PASS(CHECK_EQ_STR("abc", "abc"));
    EXPECT_PASS(CHECK_EQ_STR(NULL, NULL));
    EXPECT_FAIL(CHECK_EQ_STR("ab\nc", "ab\"c"), "\"ab\\nc\" vs \"ab\\\"c\"");
    EXPECT_FAIL(CHECK_EQ_STR(NULL, "x"), "NULL vs \"x\"");
    EXPECT_PASS(CHECK_EQ_DBL(0.1 + 0.2, 0.30000000000000004));
    EXPECT_FAIL(CHECK_EQ_DBL(0.1 + 0.2, 0.3), "0.1 + 0.2 == 0.3",
                "0.30000000000000004 vs 0.29999999999999999");
    EXPECT_FAIL(CHECK_EQ_DBL(NAN, NAN), "nan vs nan");
    float third = 1.0f / 3.0f;
    EXPECT_PASS(CHECK_EQ_FLT(third, 1.0f / 3.0f));
    EXPECT_PASS(CHECK_EQ_FLT(0.0f, -0.0f));
    EXPECT_FAIL(CHECK_EQ_FLT(third, 0.333333f), "third == 0.333333f",
                "0.333333343 vs 0.333332986");
    EXPECT_PASS(CHECK_EQ_BITS(third, 1.0f / 3.0f));
    EXPECT_PASS(CHECK_EQ_BITS((float)NAN, (float)NAN));
    EXPECT_FAIL(CHECK_EQ_BITS(0.0f, -0.0f), "bit for bit", "0 (0x00000000) vs -0 (0x80000000)");
    EXPECT_FAIL(CHECK_EQ_BITS(third, nextafterf(third, 1.0f)),
                "0.333333343 (0x3eaaaaab) vs 0.333333373 (0x3eaaaaac)");
    EXPECT_PASS(CHECK_NEAR(1.0, 1.0 + 1e-13, 1e-12));
    EXPECT_PASS(CHECK_NEAR(INFINITY, INFINITY, 0.0));
    EXPECT_FAIL(CHECK_NEAR(1.0, 1.5, 0.25), "|1.0 - 1.5| <= 0.25", "1 vs 1.5", "0.5 > 0.25");
    EXPECT_FAIL(CHECK_NEAR(NAN, 0.0, 1.0), "nan vs 0");

    /* Each argument is evaluated once, pass or fail. */
    calls = 0;
    EXPECT_PASS(CHECK_EQ_INT(next_value(), 1));
    EXPECT_FAIL(CHECK_EQ_INT(next_value(), 7), "next_value() == 7", "2 vs 7");
    CHECK_EQ_INT(calls, 2);
    return test_main_end();
}
