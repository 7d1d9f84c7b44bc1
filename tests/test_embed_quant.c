/* test_embed_quant.c - the gather over quantized tables (model/embed.c).
 *
 * Oracle: a model whose tables are fp16 or int8_rowwise (in memory:
 * c->dtype and c->qrows, rows written here) scores, bit for bit, what the
 * same model scores with fp32 tables made by decoding each row with the
 * scalar reference (quant.h). Checked for MLP, DOT, DCNv2 and Wukong
 * (tests/model_v2_defs.h shapes), widths 3, 16, 17, 32, 64 and 128, with
 * single-valued features, sum and mean bags (empty bags, empty slots
 * anywhere in a bag), a shared table, and tables all int8, all fp16 or
 * mixed with fp32; with every kernel variant the CPU runs (scalar, avx2,
 * avx512, blas, and the AVX-512 source through SIMDe), at batch sizes 1,
 * 3, 64 and 257, and every bit-exact variant gives each example the bits
 * it gets alone. The embeddings themselves are compared with each
 * decoder set, the SIMDe one included, with guard columns either side.
 * Also: each quantized def written to a file (ctr_model_write copies the
 * rows), opened and verified scores the same bits; CTR_ERANGE for a row
 * past a quantized table (single and bag); a quantized feature without
 * rows or of an unknown dtype refused. */
#include <math.h>

#include "ctr/common.h"
#include "ctr/features.h"
#include "ctr/forward.h"
#include "ctr/kernels.h"
#include "forward_int.h"
#include "kernels_int.h"
#include "model_v2_defs.h"
#include "quant.h"
#include "testutil.h"

#define N_EX 257

static const ctr_kernel_t simde_avx512 = {
    "avx512-simde", CTR_KERNEL_AVX512, 1, ctr__linear_avx512_simde,
    ctr__ln_rows_avx512_simde, ctr__pool_avx512_simde, ctr__fma_avx512_simde,
    ctr__add_avx512_simde};

/* Every kernel variant this CPU runs, scalar first (blas last but one). */
static size_t kernel_variants(const ctr_kernel_t **v)
{
    size_t n = 0;
    const ctr_kernel_id_t ids[] = {CTR_KERNEL_SCALAR, CTR_KERNEL_AVX2, CTR_KERNEL_AVX512,
                                   CTR_KERNEL_BLAS};
    for (size_t i = 0; i < CTR_ARRAY_LEN(ids); i++)
        if (ctr_kernel_get(ids[i]))
            v[n++] = ctr_kernel_get(ids[i]);
        else
            printf("kernel %d: not run (not built in, or this CPU lacks it)\n", (int)ids[i]);
    if (ctr_cpu_has_avx2_fma())
        v[n++] = &simde_avx512;
    return n;
}

/* Every decoder set this CPU runs, scalar first, SIMDe's AVX-512 last. */
static size_t quant_variants(const ctr__quant_ops_t **v)
{
    size_t n = 0;
    const ctr_kernel_id_t ids[] = {CTR_KERNEL_SCALAR, CTR_KERNEL_AVX2, CTR_KERNEL_AVX512};
    for (size_t i = 0; i < CTR_ARRAY_LEN(ids); i++)
        if (ctr__quant_ops_get(ids[i]))
            v[n++] = ctr__quant_ops_get(ids[i]);
    if (ctr__quant_ops_get(CTR_KERNEL_AVX2)) /* the SIMDe build needs AVX2, FMA, F16C */
        v[n++] = &ctr__quant_ops_avx512_simde;
    return n;
}

/* ---- models --------------------------------------------------------- */

/* One model twice: m.def with fp32 tables holding the decoded rows (the
 * oracle) and qdef with the same layers and the quantized rows. */
typedef struct {
    v2_model_t m;
    ctr_cat_def_t qcat[V2_MAX_FEAT];
    ctr_model_def_t qdef;
    uint8_t *qrows[V2_MAX_FEAT];
    float *dec[V2_MAX_FEAT];
} qmodel_t;

/* Finite halves around 1, with both zeros and subnormals now and then. */
static void write_half_row(test_rng_t *rng, uint8_t *p, size_t dim)
{
    for (size_t a = 0; a < dim; a++) {
        uint32_t u = (uint32_t)test_rng_next(rng), h;
        uint32_t sign = (u & 1) << 15, man = (u >> 1) & 0x3ff;
        switch ((u >> 11) % 32) {
        case 0: h = 0; break;
        case 1: h = 0x8000; break;
        case 2: h = sign | (man ? man : 1); break;            /* subnormal */
        default: h = sign | ((8 + (u >> 16) % 9) << 10) | man; /* 2^-7 .. 2^2 */
        }
        p[2 * a] = (uint8_t)h;
        p[2 * a + 1] = (uint8_t)(h >> 8);
    }
}

/* Mostly the encoder's rows of x; now and then a constant row (scale 0)
 * or raw random q, scale and bias. */
static void write_int8_row(test_rng_t *rng, const float *x, size_t dim, uint8_t *row)
{
    float tmp[128];
    CTR_ASSERT(dim <= 128);
    switch (test_rng_next(rng) % 8) {
    case 0:
        for (size_t a = 0; a < dim; a++)
            tmp[a] = x[0];
        CTR_ASSERT(ctr__quant_encode_int8_row(tmp, dim, row) == 0);
        break;
    case 1: {
        for (size_t a = 0; a < dim; a++)
            row[a] = (uint8_t)test_rng_next(rng);
        float scale = test_rng_uniform(rng, 0.0f, 0.01f), bias = test_rng_uniform(rng, -1.0f, 1.0f);
        memcpy(row + dim, &scale, 4);
        memcpy(row + dim + 4, &bias, 4);
        break;
    }
    default: CTR_ASSERT(ctr__quant_encode_int8_row(x, dim, row) == 0);
    }
}

/* dtype[j] for each owner j; sharers follow their owner. */
static qmodel_t *qmodel_new(const v2_opts_t *opt, const ctr_table_dtype_t *dtype, uint64_t seed)
{
    qmodel_t *q = calloc(1, sizeof(*q));
    CTR_ASSERT(q);
    v2_build(&q->m, opt, seed);
    test_rng_t rng = {seed * 7 + 1};
    const ctr__quant_ops_t *ref = ctr__quant_ops_get(CTR_KERNEL_SCALAR);
    ctr_cat_def_t *cat = q->m.cat;
    for (size_t j = 0; j < opt->n_cat; j++) {
        ctr_cat_def_t *c = &cat[j];
        if (c->shares) {
            const ctr_cat_def_t *qown = &q->qcat[c->shares - 1];
            c->table = cat[c->shares - 1].table;
            q->qcat[j] = *c;
            q->qcat[j].dtype = qown->dtype;
            q->qcat[j].qrows = qown->qrows;
            q->qcat[j].table = qown->table;
            continue;
        }
        q->qcat[j] = *c;
        if (dtype[j] == CTR_TABLE_F32)
            continue;
        const size_t rows = (size_t)c->buckets + 1, rb = ctr_table_row_bytes(dtype[j], c->dim);
        /* Exactly the table's bytes: a read past the last row is an ASan error. */
        q->qrows[j] = malloc(rows * rb);
        q->dec[j] = malloc(rows * c->dim * sizeof(float));
        CTR_ASSERT(q->qrows[j] && q->dec[j]);
        for (size_t r = 0; r < rows; r++) {
            uint8_t *row = q->qrows[j] + r * rb;
            float *d = q->dec[j] + r * c->dim;
            if (dtype[j] == CTR_TABLE_F16) {
                write_half_row(&rng, row, c->dim);
                ref->fp16(row, c->dim, d);
            } else {
                write_int8_row(&rng, c->table + r * c->dim, c->dim, row);
                ref->int8(row, c->dim, d);
            }
        }
        c->table = q->dec[j];
        q->qcat[j].dtype = dtype[j];
        q->qcat[j].qrows = q->qrows[j];
        q->qcat[j].table = NULL;
    }
    q->qdef = q->m.def;
    q->qdef.cat = q->qcat;
    return q;
}

static void qmodel_free(qmodel_t *q)
{
    for (size_t j = 0; j < V2_MAX_FEAT; j++) {
        free(q->qrows[j]);
        free(q->dec[j]);
    }
    v2_free(&q->m);
    free(q);
}

/* ---- examples ------------------------------------------------------- */

typedef struct {
    size_t slots;
    float dense[N_EX * V2_MAX_FEAT];
    uint32_t *rows;
} examples_t;

/* Rows over the whole table (0 and buckets often); bags with empty slots
 * anywhere, and wholly empty bags. */
static void make_examples(const ctr_model_def_t *def, uint64_t seed, examples_t *ex)
{
    test_rng_t rng = {seed};
    ex->slots = ctr_model_slots(def);
    ex->rows = malloc(N_EX * ex->slots * sizeof(uint32_t));
    CTR_ASSERT(ex->rows);
    for (size_t i = 0; i < N_EX * def->n_dense; i++)
        ex->dense[i] = test_rng_uniform(&rng, -2.0f, 2.0f);
    for (size_t r = 0; r < N_EX; r++) {
        uint32_t *rr = ex->rows + r * ex->slots;
        for (size_t j = 0; j < def->n_cat; j++) {
            const ctr_cat_def_t *c = &def->cat[j];
            const size_t m = c->bag_max ? c->bag_max : 1;
            const int empty_bag = c->bag_max && test_rng_next(&rng) % 6 == 0;
            for (size_t s = 0; s < m; s++) {
                uint64_t u = test_rng_next(&rng);
                uint32_t row = u % 5 == 0 ? 0 : u % 5 == 1 ? c->buckets : (uint32_t)((u >> 8) % (c->buckets + 1));
                if (c->bag_max && (empty_bag || (u >> 40) % 3 == 0))
                    row = CTR_EMPTY_SLOT;
                rr[s] = row;
            }
            rr += m;
        }
    }
}

/* ---- checks --------------------------------------------------------- */

static size_t first_diff(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)))
            return i;
    return n;
}

/* Scores of examples [0, N_EX) run in chunks of `batch`. */
static int score_chunks(const ctr_model_def_t *def, const ctr_kernel_t *k, const examples_t *ex,
                        size_t batch, ctr_scratch_t *s, float *out)
{
    for (size_t at = 0; at < N_EX; at += batch) {
        size_t n = N_EX - at < batch ? N_EX - at : batch;
        int rc = ctr_forward(def, k, n, ex->dense + at * def->n_dense, ex->rows + at * ex->slots,
                             out + at, NULL, s);
        if (rc)
            return rc;
    }
    return 0;
}

static void check_scores(const char *label, qmodel_t *q, const examples_t *ex,
                         const ctr_kernel_t **kv, size_t nk)
{
    static const size_t batches[] = {N_EX, 1, 3, 64};
    char err[300];
    ctr_scratch_t *s = NULL;
    CHECKF(ctr_scratch_new(&q->qdef, N_EX, &s, err, sizeof err) == 0, "%s: scratch: %s", label, err);
    if (!s)
        return;
    float want[N_EX], got[N_EX], full[N_EX], scalar[N_EX];
    for (size_t v = 0; v < nk; v++) {
        const ctr_kernel_t *k = kv[v];
        for (size_t b = 0; b < CTR_ARRAY_LEN(batches); b++) {
            int rw = score_chunks(&q->m.def, k, ex, batches[b], s, want);
            int rg = score_chunks(&q->qdef, k, ex, batches[b], s, got);
            CHECKF(rw == 0 && rg == 0, "%s %s batch %zu: forward %d / %d", label, k->name, batches[b], rw, rg);
            size_t i = first_diff(want, got, N_EX);
            CHECKF(i == N_EX, "%s %s batch %zu: example %zu scores %a quantized, %a from the decoded fp32 tables",
                   label, k->name, batches[b], i, i < N_EX ? (double)got[i] : 0.0, i < N_EX ? (double)want[i] : 0.0);
            if (b == 0) {
                memcpy(full, got, sizeof got);
            } else if (k->bit_exact) {
                /* The same example alone, in a batch of 3, 64 or 257: the same bits. */
                i = first_diff(full, got, N_EX);
                CHECKF(i == N_EX, "%s %s: example %zu scores differently in batches of %zu and %d",
                       label, k->name, i, batches[b], N_EX);
            }
        }
        if (!k->bit_exact)
            continue;
        /* 257 at once through a scratch of 64: ctr_forward's own chunks. */
        ctr_scratch_t *s64 = NULL;
        CTR_ASSERT(ctr_scratch_new(&q->qdef, 64, &s64, err, sizeof err) == 0);
        CHECK_EQ_INT(ctr_forward(&q->qdef, k, N_EX, ex->dense, ex->rows, got, NULL, s64), 0);
        size_t c = first_diff(full, got, N_EX);
        CHECKF(c == N_EX, "%s %s: example %zu differs when ctr_forward chunks by 64", label, k->name, c);
        ctr_scratch_free(s64);
        if (v == 0) {
            memcpy(scalar, full, sizeof full);
        } else {
            size_t i = first_diff(scalar, full, N_EX);
            CHECKF(i == N_EX, "%s %s: example %zu differs from the scalar variant", label, k->name, i);
        }
    }
    ctr_scratch_free(s);
}

/* The embeddings alone, with each decoder set: x filled with a pattern
 * first, so columns written that should not be (guards at both sides)
 * and columns left unwritten both show. */
static void check_gather(const char *label, qmodel_t *q, const examples_t *ex,
                         const ctr__quant_ops_t **qv, size_t nq)
{
    size_t width = 0;
    for (size_t j = 0; j < q->qdef.n_cat; j++)
        width += q->qdef.cat[j].dim;
    const size_t off = 3, ld = off + width + 5, total = N_EX * ld;
    float *want = malloc(total * sizeof(float)), *got = malloc(total * sizeof(float));
    CTR_ASSERT(want && got);
    const uint32_t pattern = 0x7fc0beefu;
    for (size_t i = 0; i < total; i++)
        memcpy(&want[i], &pattern, 4);
    ctr__ops_t o = {.pool = ctr__pool_scalar, .quant = qv[0]};
    CHECK_EQ_INT(ctr__fwd_embeddings(&q->m.def, &o, N_EX, ex->rows, want, ld, off), 0);
    for (size_t v = 0; v < nq; v++) {
        for (size_t i = 0; i < total; i++)
            memcpy(&got[i], &pattern, 4);
        o.quant = qv[v];
        CHECK_EQ_INT(ctr__fwd_embeddings(&q->qdef, &o, N_EX, ex->rows, got, ld, off), 0);
        size_t i = first_diff(want, got, total);
        CHECKF(i == total, "%s decoders %s: x[%zu][%zu] is %a, the decoded fp32 table gives %a", label,
               qv[v]->name, i / ld, i % ld, i < total ? (double)got[i] : 0.0, i < total ? (double)want[i] : 0.0);
    }
    /* ctr_forward_gather (the widest decoders) too, dense values first. */
    if (q->qdef.arch == CTR_ARCH_MLP) {
        const size_t ldg = q->qdef.n_dense + width;
        float *a = malloc(N_EX * ldg * sizeof(float)), *b = malloc(N_EX * ldg * sizeof(float));
        CTR_ASSERT(a && b);
        CHECK_EQ_INT(ctr_forward_gather(&q->m.def, N_EX, ex->dense, ex->rows, a, ldg), 0);
        CHECK_EQ_INT(ctr_forward_gather(&q->qdef, N_EX, ex->dense, ex->rows, b, ldg), 0);
        CHECKF(first_diff(a, b, N_EX * ldg) == N_EX * ldg, "%s: ctr_forward_gather differs", label);
        free(a);
        free(b);
    }
    free(want);
    free(got);
}

/* A row past a quantized table, single-valued and in a bag. */
static void check_range(const char *label, qmodel_t *q, const examples_t *ex, const ctr_kernel_t *k)
{
    ctr_scratch_t *s = NULL;
    char err[300];
    CTR_ASSERT(ctr_scratch_new(&q->qdef, 4, &s, err, sizeof err) == 0);
    uint32_t *rows = malloc(ex->slots * sizeof(uint32_t));
    CTR_ASSERT(rows);
    float score;
    for (size_t j = 0; j < q->qdef.n_cat; j++) {
        const ctr_cat_def_t *c = &q->qdef.cat[j];
        const ctr_cat_def_t *own = c->shares ? &q->qdef.cat[c->shares - 1] : c;
        if (own->dtype == CTR_TABLE_F32)
            continue;
        const size_t at = ctr_model_slot_of(&q->qdef, j), m = c->bag_max ? c->bag_max : 1;
        for (size_t slot = 0; slot < m; slot += m > 1 ? m - 1 : 1) {
            memcpy(rows, ex->rows, ex->slots * sizeof(uint32_t));
            rows[at + slot] = c->buckets + 1;
            CHECKF(ctr_forward(&q->qdef, k, 1, ex->dense, rows, &score, NULL, s) == CTR_ERANGE,
                   "%s: row %u of %s (%s, slot %zu) is past the table", label, c->buckets + 1, c->name,
                   ctr_table_dtype_name(own->dtype), slot);
            rows[at + slot] = UINT32_MAX - 1;
            CHECKF(ctr_forward(&q->qdef, k, 1, ex->dense, rows, &score, NULL, s) == CTR_ERANGE,
                   "%s: row UINT32_MAX - 1 of %s is past the table", label, c->name);
            if (q->qdef.arch == CTR_ARCH_MLP) {
                float x[V2_MAX_FEAT * 129];
                CHECK_EQ_INT(ctr_forward_gather(&q->qdef, 1, ex->dense, rows, x,
                                                ctr_model_input_dim(&q->qdef)), CTR_ERANGE);
            }
        }
    }
    free(rows);
    ctr_scratch_free(s);
}

/* The quantized def through a file (the writer copies qrows, the reader
 * maps them, verify checks every row): the loaded model scores the bits
 * of the in-memory oracle. */
static void check_file(const char *label, qmodel_t *q, const examples_t *ex, const ctr_kernel_t *k)
{
    char err[400] = "";
    const char *path = test_path("q.ctrm");
    int rc = ctr_model_write(path, &q->qdef, NULL, NULL, err, sizeof err);
    CHECKF(rc == 0, "%s: write: %s", label, err);
    ctr_model_t *m = NULL;
    if (rc || !CHECK_EQ_INT(ctr_model_open(path, &m, err, sizeof err), 0)) {
        fprintf(stderr, "  %s: open: %s\n", label, err);
        return;
    }
    CHECKF(ctr_model_verify(m, err, sizeof err) == 0, "%s: verify: %s", label, err);
    const ctr_model_def_t *ld = ctr_model_def(m);
    for (size_t j = 0; j < ld->n_cat; j++)
        CHECKF(ld->cat[j].dtype == q->qdef.cat[j].dtype && (ld->cat[j].dtype == CTR_TABLE_F32) == !ld->cat[j].qrows,
               "%s: %s loads as %s", label, ld->cat[j].name, ctr_table_dtype_name(ld->cat[j].dtype));
    ctr_scratch_t *s = NULL;
    CHECKF(ctr_scratch_new(ld, N_EX, &s, err, sizeof err) == 0, "%s: scratch of the loaded model: %s", label, err);
    float want[N_EX], got[N_EX];
    if (s) {
        CHECK_EQ_INT(score_chunks(&q->m.def, k, ex, N_EX, s, want), 0);
        CHECK_EQ_INT(score_chunks(ld, k, ex, 7, s, got), 0);
        size_t i = first_diff(want, got, N_EX);
        CHECKF(i == N_EX, "%s: the loaded file scores example %zu %a, the decoded fp32 tables %a", label, i,
               i < N_EX ? (double)got[i] : 0.0, i < N_EX ? (double)want[i] : 0.0);
    }
    ctr_scratch_free(s);
    ctr_model_close(m);
}

/* ---- the matrix ----------------------------------------------------- */

typedef struct {
    const char *label;
    v2_opts_t o;
    unsigned bag0; /* C1's bag_max when bags (0: the def's 3) */
} config_t;

static const config_t configs[] = {
    {"mlp d3", {.arch = CTR_ARCH_MLP, .n_dense = 2, .n_cat = 4, .d = 3, .buckets = 40, .bags = true,
                .share = true}, 6},
    {"mlp d16", {.arch = CTR_ARCH_MLP, .n_dense = 2, .n_cat = 4, .d = 16, .buckets = 50, .share = true}, 0},
    {"mlp d17 bags", {.arch = CTR_ARCH_MLP, .n_dense = 1, .n_cat = 5, .d = 17, .buckets = 30, .bags = true,
                      .share = true}, 9},
    {"mlp d32 bags", {.arch = CTR_ARCH_MLP, .n_cat = 3, .d = 32, .buckets = 20, .bags = true}, 4},
    {"mlp d64", {.arch = CTR_ARCH_MLP, .n_dense = 3, .n_cat = 3, .d = 64, .buckets = 20, .bags = true,
                 .share = true}, 0},
    {"mlp d128", {.arch = CTR_ARCH_MLP, .n_dense = 1, .n_cat = 3, .d = 128, .buckets = 10, .bags = true}, 5},
    {"dot d3 bags", {.arch = CTR_ARCH_DOT, .n_dense = 2, .n_cat = 4, .d = 3, .buckets = 30, .bags = true,
                     .share = true, .order = CTR_DOT_UPPER}, 7},
    {"dot d17", {.arch = CTR_ARCH_DOT, .n_dense = 3, .n_cat = 3, .d = 17, .buckets = 25}, 0},
    {"dot d64 bags", {.arch = CTR_ARCH_DOT, .n_cat = 3, .d = 64, .buckets = 15, .bags = true, .self = 1}, 0},
    {"dcnv2 d3 raw", {.arch = CTR_ARCH_DCNV2, .n_dense = 2, .n_cat = 4, .d = 3, .buckets = 30, .bags = true,
                      .share = true, .n_cross = 3, .rank = 2}, 5},
    {"dcnv2 d16 parallel", {.arch = CTR_ARCH_DCNV2, .n_dense = 3, .n_cat = 3, .d = 16, .buckets = 20,
                            .bottom = true, .structure = CTR_DCN_PARALLEL, .n_cross = 2, .rank = 4,
                            .bags = true}, 0},
    {"dcnv2 d17", {.arch = CTR_ARCH_DCNV2, .n_dense = 1, .n_cat = 2, .d = 17, .buckets = 20, .bottom = true,
                   .n_cross = 2, .rank = 3}, 0},
    {"wukong d3", {.arch = CTR_ARCH_WUKONG, .n_dense = 2, .n_cat = 4, .d = 3, .buckets = 30, .n_wk = 2,
                   .n_f = 2, .n_l = 2, .k = 2, .bags = true, .share = true}, 6},
    {"wukong d17 flat", {.arch = CTR_ARCH_WUKONG, .n_dense = 1, .n_cat = 3, .d = 17, .buckets = 20, .n_wk = 2,
                         .n_f = 1, .n_l = 2, .k = 3, .fmb_ln = CTR_FMB_LN_FLAT, .fmb_out_act = 1,
                         .bags = true}, 0},
    {"wukong d32", {.arch = CTR_ARCH_WUKONG, .n_dense = 2, .n_cat = 3, .d = 32, .buckets = 20, .n_wk = 1,
                    .n_f = 2, .n_l = 2, .k = 2, .share = true}, 0},
    {"wukong d128 bags", {.arch = CTR_ARCH_WUKONG, .n_cat = 3, .d = 128, .buckets = 10, .n_wk = 1,
                          .n_f = 2, .n_l = 1, .k = 2, .bags = true}, 4},
};

static const char *const pattern_names[] = {"all int8", "all fp16", "mixed"};

static void run_config(const config_t *cfg, size_t pattern, uint64_t seed, const ctr_kernel_t **kv,
                       size_t nk, const ctr__quant_ops_t **qv, size_t nq)
{
    ctr_table_dtype_t dt[V2_MAX_FEAT];
    for (size_t j = 0; j < V2_MAX_FEAT; j++)
        dt[j] = pattern == 0 ? CTR_TABLE_INT8_ROWWISE
              : pattern == 1 ? CTR_TABLE_F16
                             : (ctr_table_dtype_t)((j + seed) % 3);
    qmodel_t *q = qmodel_new(&cfg->o, dt, seed);
    if (cfg->o.bags && cfg->bag0) { /* a longer bag than the def's 3 */
        q->m.cat[0].bag_max = cfg->bag0;
        q->qcat[0].bag_max = cfg->bag0;
    }
    char label[120];
    snprintf(label, sizeof label, "%s, %s", cfg->label, pattern_names[pattern]);
    examples_t *ex = calloc(1, sizeof(*ex));
    CTR_ASSERT(ex);
    make_examples(&q->qdef, seed + 99, ex);
    check_gather(label, q, ex, qv, nq);
    check_scores(label, q, ex, kv, nk);
    check_range(label, q, ex, kv[0]);
    check_file(label, q, ex, kv[nk > 2 ? 2 : 0]);
    free(ex->rows);
    free(ex);
    qmodel_free(q);
}

/* A quantized feature without its rows, or of a dtype this build does
 * not know, is refused by ctr_scratch_new, naming the feature. */
static void check_refusals(void)
{
    const ctr_table_dtype_t dt[V2_MAX_FEAT] = {CTR_TABLE_INT8_ROWWISE, CTR_TABLE_F16, CTR_TABLE_F32};
    qmodel_t *q = qmodel_new(&configs[0].o, dt, 5);
    ctr_scratch_t *s = NULL;
    char err[300] = "";
    q->qcat[1].qrows = NULL;
    CHECK_EQ_INT(ctr_scratch_new(&q->qdef, 4, &s, err, sizeof err), CTR_EINVAL);
    CHECKF(strstr(err, "C2") && strstr(err, "f16"), "message: %s", err);
    q->qcat[1].qrows = q->qrows[1];
    q->qcat[0].dtype = (ctr_table_dtype_t)9;
    CHECK_EQ_INT(ctr_scratch_new(&q->qdef, 4, &s, err, sizeof err), CTR_EINVAL);
    CHECKF(strstr(err, "C1") && strstr(err, "dtype 9"), "message: %s", err);
    q->qcat[0].dtype = CTR_TABLE_INT8_ROWWISE;
    CHECK_EQ_INT(ctr_scratch_new(&q->qdef, 4, &s, err, sizeof err), 0);
    ctr_scratch_free(s);
    qmodel_free(q);
}

int main(void)
{
    const ctr_kernel_t *kv[8];
    const ctr__quant_ops_t *qv[8];
    size_t nk = kernel_variants(kv), nq = quant_variants(qv);
    printf("kernels:");
    for (size_t i = 0; i < nk; i++)
        printf(" %s", kv[i]->name);
    printf("\ndecoders:");
    for (size_t i = 0; i < nq; i++)
        printf(" %s", qv[i]->name);
    printf("\n");
    for (size_t c = 0; c < CTR_ARRAY_LEN(configs); c++)
        for (size_t p = 0; p < CTR_ARRAY_LEN(pattern_names); p++) {
            int before = ctr_test_failures;
            run_config(&configs[c], p, 1000 + c * 10 + p, kv, nk, qv, nq);
            printf("%-20s %-9s %s\n", configs[c].label, pattern_names[p],
                   ctr_test_failures == before ? "same bits" : "FAILED");
        }
    check_refusals();
    return test_main_end();
}
