/* testutil.h - the few helpers every test program uses.
 *
 * CHECK(cond) records a failure with file and line and carries on, so one
 * run shows every broken assertion; test_main_end() returns the exit
 * status: 0 if all checks held, 1 otherwise. Exit 77 means skipped. */
#ifndef CTR_TESTUTIL_H
#define CTR_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>
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

int test_main_end(void);

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

#endif
