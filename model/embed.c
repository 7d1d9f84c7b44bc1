/* embed.c - the embedding gather: encoded rows -> each example's
 * embeddings in x, from tables of every dtype (fp32, fp16, int8_rowwise),
 * single-valued features and bags alike (contract in forward_int.h).
 *
 * A quantized row decodes straight into x (no temporary); a quantized bag
 * decodes and accumulates in slot order, then a mean divides by (float)
 * count: ctr_pool_fn's definition over the decoded rows (quant.h), so a
 * quantized model scores the bits of the fp32 model made by decoding its
 * tables, on every kernel variant.
 *
 * Cost: all row addresses of a chunk are checked and prefetched first, so
 * the cache misses of a batch (tables far larger than the cache) overlap
 * instead of queueing one by one. A model whose tables are all fp32 takes
 * the loops it always took (with bags or without); otherwise fp32 rows
 * are copied example by example, each bag is one pool call (fp32 or
 * quantized) and each quantized single-valued feature is one decoder call
 * for the whole chunk, so no row pays an indirect call. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/features.h"
#include "forward_int.h"
#include "kernels_int.h"
#include "quant.h"

/* One embedding row. The common widths get a copy of constant size, which
 * the compiler turns into a few vector moves: a libc memcpy call per row
 * (26 per example) was 3% of the server's CPU. */
static inline void copy_row(float *dst, const float *src, size_t dim)
{
    switch (dim) {
    case 4: memcpy(dst, src, 4 * sizeof(float)); break;
    case 8: memcpy(dst, src, 8 * sizeof(float)); break;
    case 16: memcpy(dst, src, 16 * sizeof(float)); break;
    case 32: memcpy(dst, src, 32 * sizeof(float)); break;
    case 64: memcpy(dst, src, 64 * sizeof(float)); break;
    case 128: memcpy(dst, src, 128 * sizeof(float)); break;
    default: memcpy(dst, src, dim * sizeof(float)); break;
    }
}

/* The feature that owns c's table (c itself, or the one it shares). Its
 * dtype is the table's: a sharer's own dtype field is not read. */
static inline const ctr_cat_def_t *owner_of(const ctr_model_def_t *def, const ctr_cat_def_t *c)
{
    return c->shares ? &def->cat[c->shares - 1] : c;
}

static inline const float *table_of(const ctr_model_def_t *def, const ctr_cat_def_t *c)
{
    return owner_of(def, c)->table;
}

/* A table as stored: its first row, the bytes of each, its dtype. */
typedef struct {
    const uint8_t *base;
    size_t rb;
    ctr_table_dtype_t dtype;
} tab_t;

static inline tab_t tab_of(const ctr_model_def_t *def, const ctr_cat_def_t *c)
{
    const ctr_cat_def_t *own = owner_of(def, c);
    switch (own->dtype) {
    case CTR_TABLE_F16: return (tab_t){own->qrows, 2 * (size_t)c->dim, CTR_TABLE_F16};
    case CTR_TABLE_INT8_ROWWISE:
        return (tab_t){own->qrows, (size_t)c->dim + CTR_QUANT_INT8_TRAILER, CTR_TABLE_INT8_ROWWISE};
    case CTR_TABLE_F32:
    default: return (tab_t){(const uint8_t *)own->table, 4 * (size_t)c->dim, CTR_TABLE_F32};
    }
}

/* Every 64-byte line of the `bytes` at p: a quantized row (dim + 8 or
 * 2 dim bytes, packed back to back) need not start on a line. */
static inline void prefetch_row(const void *p, size_t bytes)
{
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)63;
    const uintptr_t end = (uintptr_t)p + bytes;
    for (; a < end; a += 64)
        __builtin_prefetch((const void *)a);
}

/* An fp32 row: version 1's prefetch, a line every 16 floats from the
 * row's start. Exact for the usual widths (multiples of 16, in a 64-byte
 * aligned table), and measured 2-3% faster than prefetch_row's line
 * arithmetic on a cache-resident table. */
static inline void prefetch_f32_row(const float *src, size_t dim)
{
    for (size_t k = 0; k < dim; k += 16)
        __builtin_prefetch(src + k);
}

int ctr__check_table(const ctr_model_def_t *def, size_t j, char *err, size_t errlen)
{
    const ctr_cat_def_t *c = &def->cat[j], *own = owner_of(def, c);
    if (own->dtype == CTR_TABLE_F32) {
        if (!own->table)
            return ctr_error(err, errlen, CTR_EINVAL, "categorical %zu (%s): no table", j, c->name);
        return 0;
    }
    if (!ctr_table_row_bytes(own->dtype, own->dim))
        return ctr_error(err, errlen, CTR_EINVAL, "categorical %zu (%s): unknown table dtype %d",
                         j, c->name, (int)own->dtype);
    if (!own->qrows)
        return ctr_error(err, errlen, CTR_EINVAL, "categorical %zu (%s): no %s rows", j, c->name,
                         ctr_table_dtype_name(own->dtype));
    return 0;
}

/* What a model's features need of the gather's passes. */
enum { NEED_F32_ROWS = 1, NEED_BAGS = 2, NEED_QUANT_ROWS = 4, NEED_QUANT_BAGS = 8 };

static unsigned needs(const ctr_model_def_t *def)
{
    unsigned need = 0;
    for (size_t j = 0; j < def->n_cat; j++) {
        const ctr_cat_def_t *c = &def->cat[j];
        const int quant = owner_of(def, c)->dtype != CTR_TABLE_F32;
        if (c->bag_max)
            need |= NEED_BAGS | (quant ? NEED_QUANT_BAGS : 0);
        else
            need |= quant ? NEED_QUANT_ROWS : NEED_F32_ROWS;
    }
    return need;
}

/* ctr__fwd_embeddings for fp32 tables without bags: the loop of version 1. */
static int single_rows(const ctr_model_def_t *def, size_t n, const uint32_t *rows,
                       float *x, size_t ldx, size_t off)
{
    const size_t n_cat = def->n_cat;
    for (size_t r = 0; r < n; r++)
        for (size_t j = 0; j < n_cat; j++) {
            const ctr_cat_def_t *c = &def->cat[j];
            const uint32_t row = rows[r * n_cat + j];
            if (row > c->buckets)
                return CTR_ERANGE;
            prefetch_f32_row(table_of(def, c) + (size_t)row * c->dim, c->dim);
        }
    for (size_t r = 0; r < n; r++) {
        float *dst = x + r * ldx + off;
        for (size_t j = 0; j < n_cat; j++) {
            const ctr_cat_def_t *c = &def->cat[j];
            copy_row(dst, table_of(def, c) + (size_t)rows[r * n_cat + j] * c->dim, c->dim);
            dst += c->dim;
        }
    }
    return 0;
}

/* The first pass of the gathers with bags: every row slot checked
 * (CTR_ERANGE past its table; an empty slot only in a bag) and every row
 * prefetched, so the cache misses of a batch overlap instead of queueing
 * one by one. all_f32 is a constant at each call: the fp32 path compiles
 * to version 2's loop, with no dtype test per row. */
static inline __attribute__((always_inline)) int check_prefetch(const ctr_model_def_t *def, size_t n,
                                                                const uint32_t *rows, const bool all_f32)
{
    const size_t n_cat = def->n_cat, slots = ctr_model_slots(def);
    for (size_t r = 0; r < n; r++) {
        const uint32_t *rr = rows + r * slots;
        for (size_t j = 0; j < n_cat; j++) {
            const ctr_cat_def_t *c = &def->cat[j];
            const tab_t t = all_f32 ? (tab_t){(const uint8_t *)table_of(def, c), 4 * (size_t)c->dim, CTR_TABLE_F32}
                                    : tab_of(def, c);
            const size_t m = c->bag_max ? c->bag_max : 1;
            for (size_t q = 0; q < m; q++) {
                const uint32_t row = rr[q];
                if (row == CTR_EMPTY_SLOT && c->bag_max)
                    continue;
                if (row > c->buckets)
                    return CTR_ERANGE;
                if (t.dtype == CTR_TABLE_F32)
                    prefetch_f32_row((const float *)t.base + (size_t)row * c->dim, c->dim);
                else
                    prefetch_row(t.base + (size_t)row * t.rb, t.rb);
            }
            rr += m;
        }
    }
    return 0;
}

/* ctr__fwd_embeddings for fp32 tables with bags: the loop of version 2
 * before quantized tables, kept apart so that fp32 models pay nothing for
 * them. */
static int f32_bags(const ctr_model_def_t *def, ctr_pool_fn pool, size_t n, const uint32_t *rows,
                    float *x, size_t ldx, size_t off)
{
    const size_t n_cat = def->n_cat, slots = ctr_model_slots(def);
    int rc = check_prefetch(def, n, rows, true);
    if (rc)
        return rc;
    for (size_t r = 0; r < n; r++) {
        const uint32_t *rr = rows + r * slots;
        float *dst = x + r * ldx + off;
        for (size_t j = 0; j < n_cat; j++) {
            const ctr_cat_def_t *c = &def->cat[j];
            const float *t = table_of(def, c);
            if (c->bag_max) {
                pool(t, c->dim, rr, c->bag_max, c->pool, dst);
                rr += c->bag_max;
            } else {
                copy_row(dst, t + (size_t)*rr * c->dim, c->dim);
                rr++;
            }
            dst += c->dim;
        }
    }
    return 0;
}

int ctr__fwd_embeddings(const ctr_model_def_t *def, const ctr__ops_t *o, size_t n,
                        const uint32_t *rows, float *x, size_t ldx, size_t off)
{
    const size_t n_cat = def->n_cat, slots = ctr_model_slots(def);
    const unsigned need = needs(def);
    if (!(need & ~NEED_F32_ROWS))
        return single_rows(def, n, rows, x, ldx, off);
    if (!(need & (NEED_QUANT_ROWS | NEED_QUANT_BAGS)))
        return f32_bags(def, o->pool, n, rows, x, ldx, off);
    int rc = check_prefetch(def, n, rows, false);
    if (rc)
        return rc;
    const ctr__quant_ops_t *qo = o->quant;
    for (size_t r = 0; r < n && (need & (NEED_F32_ROWS | NEED_BAGS)); r++) {
        const uint32_t *rr = rows + r * slots;
        float *dst = x + r * ldx + off;
        for (size_t j = 0; j < n_cat; j++) {
            const ctr_cat_def_t *c = &def->cat[j];
            const tab_t t = tab_of(def, c);
            if (c->bag_max) {
                switch (t.dtype) {
                case CTR_TABLE_F16: qo->fp16_pool(t.base, c->dim, rr, c->bag_max, c->pool, dst); break;
                case CTR_TABLE_INT8_ROWWISE:
                    qo->int8_pool(t.base, c->dim, rr, c->bag_max, c->pool, dst);
                    break;
                case CTR_TABLE_F32:
                default: o->pool((const float *)t.base, c->dim, rr, c->bag_max, c->pool, dst); break;
                }
                rr += c->bag_max;
            } else {
                if (t.dtype == CTR_TABLE_F32) /* quantized: below, a feature at a time */
                    copy_row(dst, (const float *)t.base + (size_t)*rr * c->dim, c->dim);
                rr++;
            }
            dst += c->dim;
        }
    }
    if (!(need & NEED_QUANT_ROWS))
        return 0;
    size_t col = off, slot = 0;
    for (size_t j = 0; j < n_cat; j++) {
        const ctr_cat_def_t *c = &def->cat[j];
        const tab_t t = tab_of(def, c);
        if (!c->bag_max && t.dtype != CTR_TABLE_F32)
            (t.dtype == CTR_TABLE_F16 ? qo->fp16_rows : qo->int8_rows)(t.base, c->dim, rows + slot,
                                                                        slots, n, x + col, ldx);
        col += c->dim;
        slot += c->bag_max ? c->bag_max : 1;
    }
    return 0;
}

/* The widest bit-exact variant's pooling (the same bits as any other). */
static ctr_pool_fn best_pool(void)
{
    static const ctr_kernel_id_t ids[] = {CTR_KERNEL_AVX512, CTR_KERNEL_AVX2};
    for (size_t i = 0; i < CTR_ARRAY_LEN(ids); i++) {
        const ctr_kernel_t *k = ctr_kernel_get(ids[i]);
        if (k && k->pool)
            return k->pool;
    }
    return ctr__pool_scalar;
}

int ctr_forward_gather(const ctr_model_def_t *def, size_t n, const float *dense,
                       const uint32_t *rows, float *x, size_t ldx)
{
    if (def->n_dense)
        for (size_t r = 0; r < n; r++)
            memcpy(x + r * ldx, dense + r * def->n_dense, def->n_dense * sizeof(float));
    ctr__ops_t o = {.pool = best_pool(), .quant = ctr__quant_ops_get(CTR_KERNEL_AUTO)};
    return ctr__fwd_embeddings(def, &o, n, rows, x, ldx, def->n_dense);
}
