/* quant.h - quantized embedding rows: their byte layout and the exact
 * arithmetic that turns one into floats (the tables of ctr_table_dtype_t).
 *
 * Row formats. A table of `dim`-wide rows stores each row in
 * ctr_table_row_bytes(dtype, dim) bytes; no alignment is required of a
 * row (the decoders load bytes unaligned and read scale and bias with
 * memcpy), so a table may pack rows back to back.
 *
 *   fp32          dim IEEE binary32, little-endian: 4*dim bytes.
 *   fp16          dim IEEE binary16, little-endian: 2*dim bytes.
 *                 x[a] = the half's exact value as a float (every half,
 *                 subnormals, infinities and NaNs included, is representable;
 *                 a NaN keeps its payload shifted up 13 bits, with the quiet
 *                 bit set, which is what F16C's vcvtph2ps does).
 *   int8_rowwise  FBGEMM's fused 8-bit row-wise layout: dim uint8 q[a], then
 *                 float scale, then float bias (binary32, little-endian,
 *                 unaligned): dim + 8 bytes.
 *                 x[a] = fmaf((float)q[a], scale, bias)   (one rounding).
 *                 q is UNSIGNED [0, 255] with bias = the row's minimum, as
 *                 in FBGEMM. A valid row has finite scale >= 0, finite bias,
 *                 and fmaf(255, scale, bias) finite (so every x[a] is);
 *                 ctr__quant_check_row() says which rule a row breaks.
 *
 * Variants. Each decoder has a scalar reference (quant.c) and AVX2+F16C
 * (quant_avx2.c) and AVX-512F (quant_avx512.c) versions that give the same
 * bits: half -> float is exact in every version, and int8 decodes with one
 * fused multiply-add per element in every version (vfmadd / fmaf, both
 * correctly rounded). The accumulate forms add the decoded x[a] to acc[a]
 * with one plain float add, as ctr_pool_fn does for fp32 rows. */
#ifndef CTR_QUANT_H
#define CTR_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "ctr/kernels.h"
#include "ctr/model.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "quant.c reads little-endian rows in place: a big-endian host needs byte swaps"
#endif

/* The dtypes (ctr_table_dtype_t), their row sizes and names are public:
 * ctr/model.h. */

/* Bytes after the q[] of an int8_rowwise row: float scale, float bias. */
#define CTR_QUANT_INT8_TRAILER 8

/* The scalar definition of half -> float, with integer bit operations only. */
float ctr__half_to_float(uint16_t h);

/* out[a] = x[a] of the row, a < dim (decode), or acc[a] += x[a] (acc). */
typedef void (*ctr__dequant_fn)(const void *row, size_t dim, float *out);

/* The gather's forms, so that it makes one indirect call per feature and
 * batch (rows) or per bag (pool), as for fp32, never one per row. `table`
 * is the first stored row; rows and slots index it in rows of
 * ctr_table_row_bytes(dtype, dim) bytes and are checked by the caller.
 *   rows: for i < n: out + i * ldo = x of row rows[i * stride].
 *   pool: ctr_pool_fn's definition (ctr/kernels.h) over decoded rows:
 *         acc = 0; for each slot in order that is not CTR_EMPTY_SLOT:
 *         acc[a] += x[a] (plain float adds); out = acc (sum), or
 *         acc[a] / (float)count (mean); an empty bag gives zeros. So a
 *         quantized bag pools to the bits of the fp32 pool over the
 *         decoded table. */
typedef void (*ctr__dequant_rows_fn)(const void *table, size_t dim, const uint32_t *rows,
                                     size_t stride, size_t n, float *out, size_t ldo);
typedef void (*ctr__dequant_pool_fn)(const void *table, size_t dim, const uint32_t *slots,
                                     size_t n_slots, ctr_pool_t pool, float *out);

typedef struct {
    const char *name;           /* "scalar", "avx2", "avx512" */
    ctr__dequant_fn fp16;
    ctr__dequant_fn fp16_acc;
    ctr__dequant_fn int8;
    ctr__dequant_fn int8_acc;
    ctr__dequant_rows_fn fp16_rows;
    ctr__dequant_rows_fn int8_rows;
    ctr__dequant_pool_fn fp16_pool;
    ctr__dequant_pool_fn int8_pool;
} ctr__quant_ops_t;

/* The decoders of kernel variant `id` (SCALAR, AVX2, AVX512; BLAS and AUTO
 * get the widest this CPU runs), or NULL when this CPU or OS cannot run
 * them (AVX2 and AVX-512 also need F16C). Static storage. */
const ctr__quant_ops_t *ctr__quant_ops_get(ctr_kernel_id_t id);

/* Encodes dim floats into one int8_rowwise row (dim + 8 bytes) in
 * FBGEMM's convention: bias = min, scale = (max - min) / 255, unsigned
 * q[a] = lrintf((x[a] - bias) / scale) clamped to [0, 255] (round to
 * nearest even). FBGEMM multiplies by 255 / (range + 1e-8) instead of
 * dividing by scale, so a q may differ from FBGEMM's by one at a tie; the
 * decode, which is what the format defines, is the same. Each element
 * decodes to within scale/2 of x[a] (plus a few ulps of rounding). A row whose scale comes out 0 (a constant
 * row, or a range below 255 float steps at denormal scale) is written with
 * scale 0 and every q 0, so it decodes to bias = min exactly.
 * Returns 0, or CTR_EINVAL (row untouched) when x holds a NaN or infinity,
 * or CTR_ERANGE when max - min overflows. */
int ctr__quant_encode_int8_row(const float *x, size_t dim, uint8_t *row);

/* 0 if `row` (index row_index, for the message) is a valid row of `dtype`,
 * else CTR_EFORMAT with err naming the row and the rule it breaks.
 * fp16 and fp32 rows are always valid here (their NaNs and infinities are
 * the model checker's business, as for fp32 today). */
int ctr__quant_check_row(ctr_table_dtype_t dtype, const void *row, size_t dim, size_t row_index,
                         char *err, size_t errlen);

/* Per-ISA entries (quant_avx2.c, quant_avx512.c). */
#define CTR__QUANT_DECLARE(sfx)                                                          \
    void ctr__dequant_fp16_##sfx(const void *row, size_t dim, float *out);               \
    void ctr__dequant_fp16_acc_##sfx(const void *row, size_t dim, float *acc);           \
    void ctr__dequant_int8_##sfx(const void *row, size_t dim, float *out);               \
    void ctr__dequant_int8_acc_##sfx(const void *row, size_t dim, float *acc);           \
    void ctr__dequant_fp16_rows_##sfx(const void *table, size_t dim, const uint32_t *rows, \
                                      size_t stride, size_t n, float *out, size_t ldo);  \
    void ctr__dequant_int8_rows_##sfx(const void *table, size_t dim, const uint32_t *rows, \
                                      size_t stride, size_t n, float *out, size_t ldo);  \
    void ctr__dequant_fp16_pool_##sfx(const void *table, size_t dim, const uint32_t *slots, \
                                      size_t n_slots, ctr_pool_t pool, float *out);      \
    void ctr__dequant_int8_pool_##sfx(const void *table, size_t dim, const uint32_t *slots, \
                                      size_t n_slots, ctr_pool_t pool, float *out);
CTR__QUANT_DECLARE(avx2)
CTR__QUANT_DECLARE(avx512)

/* Test-only: quant_avx512.c compiled against SIMDe (-DCTR_AVX512_SIMDE
 * -mavx2 -mfma -mf16c) into build/tests/quant_avx512_simde.o, so the
 * AVX-512 decoders' logic is checked bit for bit on CPUs without AVX-512
 * (it needs AVX2, FMA and F16C). Not part of libctr. */
CTR__QUANT_DECLARE(avx512_simde)
extern const ctr__quant_ops_t ctr__quant_ops_avx512_simde;

#endif
