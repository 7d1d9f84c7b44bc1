/* features.h - turning raw feature values into model inputs.
 *
 * This is the one code path shared by training, offline scoring and the
 * server, so the three agree bit for bit:
 *  - dense: raw value (double, as parsed) -> transform in double -> float.
 *    A missing dense value becomes 0.0f.
 *  - categorical, mapping `hash` (CTR_MAP_HASH): h =
 *    XXH3_64bits_withSeed(bytes, len, seed) and row = 1 + floor(h *
 *    buckets / 2^64) (128-bit product, high half). An integer value hashes
 *    exactly like its shortest decimal string ("-12"), so 12 and "12" land
 *    in the same row. A missing value uses row 0.
 *  - categorical, mapping `mod` (CTR_MAP_MOD, TorchRec's Criteo ids): an
 *    integer v >= 0 gives row v mod (buckets + 1); a string must be 1..16
 *    hex digits (either case, no sign, no "0x"), read as an unsigned
 *    64-bit integer, then the same modulo. A negative integer or any other
 *    string is refused (CTR_EINVAL). A missing value uses row 0 (which a
 *    value that is a multiple of buckets + 1 also lands in, as in
 *    TorchRec).
 *
 * Rows of an example are uint32_t slots, ctr_model_slots(def) of them
 * (model.h): categorical feature j owns ctr_features_width() slots from
 * ctr_model_slot_of(def, j). A single-valued feature fills its one slot
 * (row 0 when missing). A bag fills its first m slots with the rows of its
 * m values in the order given and leaves the rest CTR_EMPTY_SLOT; an
 * absent or empty bag is all CTR_EMPTY_SLOT. */
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

/* ---- mappings ----------------------------------------------------------- */

#define CTR_MOD_HEX_MAX 16       /* longest hex string of a `mod` value */

/* 1..16 hex digits (0-9, a-f, A-F; nothing else) as an unsigned 64-bit
 * integer: 0 with *v set, or CTR_EINVAL. */
int ctr_features_hex_u64(const void *bytes, size_t len, uint64_t *v);

/* `mod`: v mod (buckets + 1). */
uint32_t ctr_features_mod_row(const ctr_cat_def_t *c, uint64_t v);

/* The row of a present value given as bytes, by c's mapping: 0 with *row
 * set, or CTR_EINVAL (`mod` and not 1..16 hex digits). `hash` never fails
 * (ctr_features_cat_row). */
int ctr_features_map(const ctr_cat_def_t *c, const void *bytes, size_t len, uint32_t *row);

/* The row of an integer value by c's mapping: `hash` hashes its decimal
 * text (ctr_features_cat_row_int); `mod` takes v mod (buckets + 1) and
 * refuses v < 0 (CTR_EINVAL). */
int ctr_features_map_int(const ctr_cat_def_t *c, int64_t v, uint32_t *row);

/* The text an integer value is kept as (the raw value of the audit log,
 * which ctr_features_map turns back into the same row): `hash` its
 * decimal form (ctr_features_int_key), `mod` (v >= 0 only) its lowercase
 * hex digits without leading zeros ("0" for 0). buf >= 21 bytes; returns
 * the length. */
size_t ctr_features_int_raw(const ctr_cat_def_t *c, int64_t v, char *buf);

/* ---- slots and bags ----------------------------------------------------- */

/* Slots feature c occupies per example: max(1, bag_max). */
static inline size_t ctr_features_width(const ctr_cat_def_t *c)
{
    return c->bag_max ? c->bag_max : 1;
}

/* Completes feature c's slots once m values (m <= width) are in
 * slots[0..m): a bag's slots [m, bag_max) become CTR_EMPTY_SLOT; a
 * single-valued feature without a value (m == 0) gets CTR_MISSING_ROW. */
void ctr_features_slots_finish(const ctr_cat_def_t *c, uint32_t *slots, size_t m);

/* Encodes feature c's m values (bytes vals[k], lens[k] long) into its
 * ctr_features_width(c) slots: each through the mapping, in order, then
 * ctr_features_slots_finish. m == 0: missing (single-valued) or an empty
 * bag. Returns 0; CTR_ERANGE when m is more than the feature takes (over
 * bag_max, or 2+ values for a single-valued one); CTR_EINVAL for a value
 * the mapping refuses, with *bad (if not NULL) its index. The slots are
 * then unspecified. */
int ctr_features_encode_values(const ctr_cat_def_t *c, const char *const *vals,
                               const size_t *lens, size_t m, uint32_t *slots, size_t *bad);

#endif
