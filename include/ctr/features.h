/* features.h - turning raw feature values into MLP inputs.
 *
 * This is the one code path shared by training, offline scoring and the
 * server, so the three agree bit for bit:
 *  - dense: raw value (double, as parsed) -> transform in double -> float.
 *    A missing dense value becomes 0.0f.
 *  - categorical: h = XXH3_64bits_withSeed(bytes, len, seed) and
 *    row = 1 + floor(h * buckets / 2^64) (128-bit product, high half).
 *    An integer value hashes exactly like its shortest decimal string
 *    ("-12"), so 12 and "12" land in the same row. A missing value uses
 *    row 0. */
#ifndef CTR_FEATURES_H
#define CTR_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "ctr/model.h"

#define CTR_MISSING_ROW 0u
#define CTR_EMPTY_SLOT UINT32_MAX  /* an unused slot of a bag (model.h) */
#define CTR_MAX_CAT_BYTES 64     /* longest categorical value accepted */

float ctr_features_dense(const ctr_dense_def_t *d, double raw);
float ctr_features_dense_missing(const ctr_dense_def_t *d);

uint32_t ctr_features_cat_row(const ctr_cat_def_t *c, const void *bytes, size_t len);
uint32_t ctr_features_cat_row_int(const ctr_cat_def_t *c, int64_t v);

/* Writes v's decimal form into buf (>= 21 bytes), returns its length. */
size_t ctr_features_int_key(int64_t v, char *buf);

#endif
