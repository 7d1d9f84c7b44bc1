/* quant_encode.h - fp32 rows -> stored table rows, and the check of
 * stored rows that the reader and the writer share: the file side of
 * the table dtypes (quant.h defines the layouts and the decode, which is
 * what the format promises; the encoders here are the reference writer's
 * choice, and any writer may encode differently). */
#ifndef CTR_QUANT_ENCODE_H
#define CTR_QUANT_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "ctr/model.h"

/* float -> IEEE half, rounding to nearest even (what F16C's vcvtps2ph
 * gives with imm 0): overflow past 65504 gives an infinity, a NaN stays a
 * quiet NaN with the top 10 bits of its payload. Integer operations only. */
uint16_t ctr__float_to_half(float f);

/* Encodes `rows` rows of dim finite floats (x, row-major) into out
 * (rows * ctr_table_row_bytes(dtype, dim) bytes): f16 by
 * ctr__float_to_half, int8_rowwise by ctr__quant_encode_int8_row, f32 as
 * is. Every row encoded is then checked as a reader checks it. Returns 0,
 * or CTR_ERANGE / CTR_EINVAL with err naming the row (first_row + its
 * index) and element: a value beyond f16's range (an f16 table holds
 * only finite values), a row whose range overflows, a non-finite input. */
int ctr__quant_encode_rows(ctr_table_dtype_t dtype, const float *x, size_t rows, size_t dim,
                           uint64_t first_row, uint8_t *out, char *err, size_t errlen);

/* 0 if the `rows` stored rows of dtype at data are valid as the reader
 * requires (f16: every element finite; int8_rowwise: ctr__quant_check_row;
 * f32 is the caller's own check), else CTR_EFORMAT with err saying "row
 * R element A ..." or "row R: ...", R counted from first_row. */
int ctr__quant_check_rows(ctr_table_dtype_t dtype, const uint8_t *data, size_t rows, size_t dim,
                          uint64_t first_row, char *err, size_t errlen);

#endif
