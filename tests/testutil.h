/* testutil.h - the few helpers every test program uses.
 *
 * CHECK(cond) records a failure with file and line and carries on, so one
 * run shows every broken assertion; test_main_end() returns the exit
 * status: 0 if all checks held, 1 otherwise.
 *
 * CHECK_EQ_* compare two values the way libuv's ASSERT_EQ does, so a red
 * test explains itself: on failure they print file:line, the expression
 * text and both values. Each evaluates its arguments once, counts as one
 * check like CHECK, and is an expression worth 1 when the check held and 0
 * when it failed, so a loop can stop at its first failure and say where:
 *     if (!CHECK_EQ_BITS(got[i], want[i])) { fprintf(stderr, "  row %zu\n", i); break; }
 *
 *   CHECK_EQ_INT(a, b)    signed integers (intmax_t)
 *   CHECK_EQ_UINT(a, b)   unsigned integers (uintmax_t; uint64_t hashes,
 *                         bit patterns), printed in decimal and hex
 *   CHECK_EQ_SIZE(a, b)   size_t
 *   CHECK_EQ_STR(a, b)    C strings (either may be NULL; NULL equals only
 *                         NULL), printed quoted with escapes
 *   CHECK_EQ_DBL(a, b)    exact ==, in double (NaN equals nothing)
 *   CHECK_EQ_FLT(a, b)    exact ==, both operands must be float (a double
 *                         does not compile: no silent narrowing)
 *   CHECK_EQ_BITS(a, b)   two floats bit for bit (so -0 != +0 and a NaN
 *                         equals the same NaN), printed as %.9g and as hex
 *                         bits; both must be float
 *   CHECK_NEAR(a, b, tol) |a - b| <= tol in double (NaN never near)
 *
 * Exit 77 means skipped: keep it for what no install can give (a CPU
 * without AVX-512, valgrind on a sanitizer build). A program or tool that
 * `make all` or `make deps` provides and is missing is a failure:
 * test_require_program(). */
#ifndef CTR_TESTUTIL_H
#define CTR_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/model.h"

extern int ctr_test_failures;
extern int ctr_test_checks;

#define CHECK(cond) CHECKF(cond, "%s", #cond)
#define CHECKF(cond, ...)                                                  \
    do {                                                                   \
        ctr_test_checks++;                                                 \
        if (!(cond)) {                                                     \
            ctr_test_failures++;                                           \
            fprintf(stderr, "%s:%d: check failed: ", __FILE__, __LINE__);  \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

#define SKIP(...)                                                          \
    do {                                                                   \
        printf("skipped: ");                                               \
        printf(__VA_ARGS__);                                               \
        printf("\n");                                                      \
        exit(77);                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                 \
    test_check_int(__FILE__, __LINE__, #a, #b, (intmax_t)(a), (intmax_t)(b))
#define CHECK_EQ_UINT(a, b)                                                \
    test_check_uint(__FILE__, __LINE__, #a, #b, (uintmax_t)(a), (uintmax_t)(b))
#define CHECK_EQ_SIZE(a, b)                                                \
    test_check_size(__FILE__, __LINE__, #a, #b, (size_t)(a), (size_t)(b))
#define CHECK_EQ_STR(a, b) test_check_str(__FILE__, __LINE__, #a, #b, (a), (b))
#define CHECK_EQ_DBL(a, b)                                                 \
    test_check_dbl(__FILE__, __LINE__, #a, #b, (double)(a), (double)(b))
#define CHECK_EQ_FLT(a, b)                                                 \
    test_check_flt(__FILE__, __LINE__, #a, #b, TEST_FLOAT_ONLY(a), TEST_FLOAT_ONLY(b))
#define CHECK_EQ_BITS(a, b)                                                \
    test_check_bits(__FILE__, __LINE__, #a, #b, TEST_FLOAT_ONLY(a), TEST_FLOAT_ONLY(b))
#define CHECK_NEAR(a, b, tol)                                              \
    test_check_near(__FILE__, __LINE__, #a, #b, #tol, (double)(a), (double)(b),   \
                    (double)(tol))

/* A compile error unless x is a float: a double passed to a float check
 * would be rounded first and could compare equal when it is not. */
#define TEST_FLOAT_ONLY(x) _Generic((x), float: (x))

/* The functions behind CHECK_EQ_*: count the check, print on failure,
 * return 1 if it held. Call them through the macros. */
int test_check_int(const char *file, int line, const char *ea, const char *eb,
                   intmax_t a, intmax_t b);
int test_check_uint(const char *file, int line, const char *ea, const char *eb,
                    uintmax_t a, uintmax_t b);
int test_check_size(const char *file, int line, const char *ea, const char *eb,
                    size_t a, size_t b);
int test_check_str(const char *file, int line, const char *ea, const char *eb,
                   const char *a, const char *b);
int test_check_dbl(const char *file, int line, const char *ea, const char *eb,
                   double a, double b);
int test_check_flt(const char *file, int line, const char *ea, const char *eb,
                   float a, float b);
int test_check_bits(const char *file, int line, const char *ea, const char *eb,
                    float a, float b);
int test_check_near(const char *file, int line, const char *ea, const char *eb,
                    const char *etol, double a, double b, double tol);

int test_main_end(void);

/* Exits 1 (a failure, not a skip) naming path when it is not an executable
 * file: under `make test` every program is built first, so a missing one
 * means the build is broken. */
void test_require_program(const char *path);

/* Deterministic xorshift64* generator for test data. */
typedef struct { uint64_t s; } test_rng_t;
uint64_t test_rng_next(test_rng_t *r);
float test_rng_uniform(test_rng_t *r, float lo, float hi); /* [lo, hi) */

/* A random model with the given shape, written to path. hidden has n_hidden
 * widths; dims of all tables = dim. Returns 0 or a CTR_E* code. */
int test_make_model(const char *path, uint64_t seed, size_t n_dense,
                    size_t n_cat, uint32_t buckets, uint32_t dim,
                    const uint32_t *hidden, size_t n_hidden,
                    ctr_activation_t act, float beta);

/* A fresh directory under $TMPDIR (or /tmp) for this test's files. */
const char *test_tmpdir(void);
/* test_tmpdir()/name, in one of 4 rotating buffers (so a call can take two). */
const char *test_path(const char *name);
/* A whole file into malloc'd memory (*len bytes), or NULL. */
unsigned char *test_slurp(const char *path, size_t *len);
/* Writes len bytes to path (a new file: unlinked first); asserts success. */
void test_spit(const char *path, const void *buf, size_t len);

#endif
