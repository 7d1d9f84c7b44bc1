/* quant_encode.c - the reference encoders of the table dtypes and the
 * check of stored rows (contract in quant_encode.h). */
#include "quant_encode.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "ctr/common.h"
#include "quant.h"

uint16_t ctr__float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) /* NaN: quiet, payload's top bits kept */
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x477ff000u) /* >= 65520 (halfway past 65504, ties to even): inf */
        return (uint16_t)(sign | 0x7c00u);
    if (ax >= 0x38800000u) { /* >= 2^-14: a normal half; the rounding carry
                              * may run into the exponent, which is right */
        uint32_t h = ((((ax >> 23) - 127 + 15) << 10) | ((ax >> 13) & 0x3ffu));
        const uint32_t rem = ax & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
            h++;
        return (uint16_t)(sign | h);
    }
    if (ax <= 0x33000000u) /* <= 2^-25: half of the smallest subnormal, ties to 0 */
        return sign;
    /* A subnormal half counts units of 2^-24: the float is
     * mant * 2^(e - 150), so the units are mant >> (126 - e), rounded. */
    const uint32_t e = ax >> 23, mant = (ax & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e, half = 1u << (shift - 1);
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    if (rem > half || (rem == half && (h & 1u)))
        h++;
    return (uint16_t)(sign | h);
}

int ctr__quant_encode_rows(ctr_table_dtype_t dtype, const float *x, size_t rows, size_t dim,
                           uint64_t first_row, uint8_t *out, char *err, size_t errlen)
{
    const size_t row_bytes = ctr_table_row_bytes(dtype, dim);
    if (!row_bytes)
        return ctr_error(err, errlen, CTR_EINVAL, "unknown table dtype %d", (int)dtype);
    for (size_t r = 0; r < rows; r++) {
        const float *v = x + r * dim;
        uint8_t *o = out + r * row_bytes;
        for (size_t a = 0; a < dim; a++)
            if (!isfinite(v[a]))
                return ctr_error(err, errlen, CTR_EINVAL, "row %" PRIu64 " element %zu is %g (values must be finite)",
                                 first_row + r, a, (double)v[a]);
        switch (dtype) {
        case CTR_TABLE_F32:
            memcpy(o, v, row_bytes);
            break;
        case CTR_TABLE_F16:
            for (size_t a = 0; a < dim; a++) {
                uint16_t h = ctr__float_to_half(v[a]);
                if ((h & 0x7c00u) == 0x7c00u)
                    return ctr_error(err, errlen, CTR_ERANGE,
                                     "row %" PRIu64 " element %zu is %g, beyond f16's range (|x| <= 65504)",
                                     first_row + r, a, (double)v[a]);
                memcpy(o + 2 * a, &h, sizeof h);
            }
            break;
        case CTR_TABLE_INT8_ROWWISE: {
            char why[160];
            if (ctr__quant_encode_int8_row(v, dim, o) ||
                ctr__quant_check_row(dtype, o, dim, (size_t)(first_row + r), why, sizeof why))
                return ctr_error(err, errlen, CTR_ERANGE,
                                 "row %" PRIu64 ": its range of values overflows int8_rowwise's float scale",
                                 first_row + r);
            break;
        }
        }
    }
    return 0;
}

int ctr__quant_check_rows(ctr_table_dtype_t dtype, const uint8_t *data, size_t rows, size_t dim,
                          uint64_t first_row, char *err, size_t errlen)
{
    const size_t row_bytes = ctr_table_row_bytes(dtype, dim);
    if (dtype == CTR_TABLE_F16) {
        for (size_t k = 0; k < rows * dim; k++) {
            uint16_t h;
            memcpy(&h, data + 2 * k, sizeof h);
            if ((h & 0x7c00u) == 0x7c00u)
                return ctr_error(err, errlen, CTR_EFORMAT,
                                 "row %" PRIu64 " element %zu is %s (f16 0x%04x; values must be finite)",
                                 first_row + k / dim, k % dim, (h & 0x3ffu) ? "NaN" : "infinite", h);
        }
        return 0;
    }
    if (dtype == CTR_TABLE_INT8_ROWWISE)
        for (size_t r = 0; r < rows; r++)
            if (ctr__quant_check_row(dtype, data + r * row_bytes, dim, (size_t)(first_row + r), err, errlen))
                return CTR_EFORMAT;
    return 0;
}
