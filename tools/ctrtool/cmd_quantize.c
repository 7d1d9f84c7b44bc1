/* ctrtool quantize - rewrite a model with some or all of its embedding
 * tables stored as f16 or int8_rowwise (ctr_table_dtype_t).
 *
 * The model is opened (mmapped) with ctr_model_open, its description
 * copied, the chosen tables' dtype set, and the copy handed to
 * ctr_model_write, which encodes each chosen table from its mapped fp32
 * rows in chunks with the reference encoder (model/quant_encode.c): a model
 * larger than memory is quantized without reading it into memory (the
 * tables' pages advised sequential: advise_sequential). Every
 * other tensor (weights, biases, tables not chosen) is written as it was.
 *
 * A shared table is quantized once, by its owner; naming a sharer names
 * its owner's table. A table already stored in the dtype asked for is
 * copied as is. A table already quantized to another dtype is decoded and
 * streamed to the writer through its fill callback: --dtype f32 gives
 * back the fp32 model that scores exactly as the quantized one (the
 * format's promise, which tests/test_ctrtool_quantize.sh checks bit for
 * bit against the engine's gather), and f16 <-> int8 re-encodes decoded
 * values (a second rounding: the report says "decoded").
 *
 * The source's checksums are verified first (--no-verify skips it): the
 * writer hashes what it writes, so a source corrupted on disk would
 * otherwise come out with valid checksums.
 *
 * The provenance (always a JSON object in a file) is kept and gets a
 * "quantized" member: the tool, the source file's name and digest and each
 * table's dtype; an earlier "quantized" member moves into its "previous".
 * Exit status: 0 written, 1 failure, 2 usage. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctr/common.h"
#include "ctr/model.h"
#include "ctr/opts.h"
#include "ctrtool_int.h"

typedef struct {
    const char *in, *out, *tables;
    int dtype;
    int verify;
} quant_args_t;

static int parse_dtype(const char *text, void *field, char *err, size_t errlen)
{
    int d = ctr_table_dtype_parse(text);
    if (d < 0)
        return ctr_error(err, errlen, CTR_EINVAL, "unknown dtype '%s': expected f32|f16|fp16|int8|int8_rowwise",
                         text);
    *(int *)field = d;
    return 0;
}

#define AT(m) CTR_OPT_AT(quant_args_t, m)

static const ctr_opt_t quant_rows[] = {
    {"in", NULL, CTR_OPT_STR, CTR_OPT_REQUIRED, AT(in), .metavar = "MODEL", .help = "the model to quantize (any architecture, format version)"},
    {"out", NULL, CTR_OPT_STR, CTR_OPT_REQUIRED, AT(out), .metavar = "MODEL", .help = "the model file to write (may be --in: written aside, then renamed)"},
    {"dtype", NULL, CTR_OPT_CUSTOM, CTR_OPT_REQUIRED, AT(dtype), .parse = parse_dtype, .metavar = "T",
     .help = "f16 (= fp16): IEEE halves, 2 bytes a value;\n"
             "int8 (= int8_rowwise): a byte a value + a float scale and bias a row;\n"
             "f32: decode quantized tables back to fp32"},
    {"tables", NULL, CTR_OPT_STR, 0, AT(tables), .metavar = "C1,C2,..",
     .help = "categorical features (or tensors emb.C1,..) whose tables to convert;\n"
             "a feature sharing a table names its owner's [every table]"},
    {"no-verify", NULL, CTR_OPT_BOOL, CTR_OPT_NEGATE, AT(verify),
     .help = "skip checking the source's SHA-256s first (one more pass over it)"},
};

static const ctr_opts_t quant_spec = {
    quant_rows, CTR_ARRAY_LEN(quant_rows),
    "usage: ctrtool quantize --in MODEL --out MODEL --dtype f16|int8|f32 [--tables C1,C2,..]\n"
    "  stores embedding tables as f16 or int8_rowwise (docs/MODEL_FORMAT.md), or back\n"
    "  as f32; weights, biases and the other tables are copied; the source is\n"
    "  streamed, not loaded\n\n",
    "Prints each table's dtype and bytes before and after. A table already\n"
    "quantized is decoded first: --dtype f32 gives back the fp32 model that\n"
    "scores exactly as the quantized one; f16 <-> int8 rounds a second time.\n",
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t table_bytes(const ctr_cat_def_t *c, ctr_table_dtype_t dtype)
{
    return ((uint64_t)c->buckets + 1) * ctr_table_row_bytes(dtype, c->dim);
}

/* The feature index a --tables item names (a feature, or a tensor
 * "emb.NAME"), its owner's when it shares a table; -1 if none. */
static long find_table(const ctr_model_def_t *d, const char *item, size_t len)
{
    for (int pass = 0; pass < 2; pass++) {
        const char *name = item;
        size_t n = len;
        if (pass == 1) {
            if (len <= 4 || strncmp(item, "emb.", 4))
                break;
            name += 4;
            n -= 4;
        }
        for (size_t j = 0; j < d->n_cat; j++)
            if (strlen(d->cat[j].name) == n && !strncmp(d->cat[j].name, name, n))
                return d->cat[j].shares ? (long)d->cat[j].shares - 1 : (long)j;
    }
    return -1;
}

/* Marks the owners --tables names in sel[] (every owner without it).
 * Returns 0, or 2 after a message naming the item not found. */
static int select_tables(const ctr_model_def_t *d, const char *list, bool *sel)
{
    if (!list) {
        for (size_t j = 0; j < d->n_cat; j++)
            sel[j] = !d->cat[j].shares;
        return 0;
    }
    for (const char *p = list;; p++) {
        size_t len = strcspn(p, ",");
        long j = len ? find_table(d, p, len) : -1;
        for (size_t k = 0; j < 0 && k < d->n_dense; k++)
            if (strlen(d->dense[k].name) == len && !strncmp(d->dense[k].name, p, len)) {
                fprintf(stderr, "ctrtool quantize: --tables: '%.*s' is a dense feature: only embedding tables "
                                "are quantized\n", (int)len, p);
                return 2;
            }
        if (j < 0) {
            fprintf(stderr, "ctrtool quantize: --tables: %s '%.*s': the model's categorical features are",
                    len ? "no table or categorical feature named" : "empty name", (int)len, p);
            for (size_t k = 0; k < d->n_cat && k < 32; k++)
                fprintf(stderr, "%s%s", k ? ", " : " ", d->cat[k].name);
            if (d->n_cat > 32)
                fprintf(stderr, ", ... (%zu in all)", d->n_cat);
            fprintf(stderr, "%s\n", d->n_cat ? "" : " none");
            return 2;
        }
        sel[j] = true;
        p += len;
        if (!*p)
            return 0;
    }
}

/* The source's provenance with a "quantized" member added (NULL when out
 * of memory); dumped as the writer dumps it. */
static char *provenance(const ctr_model_t *m, const char *in, const ctr_model_def_t *d)
{
    const ctr_model_def_t *src = ctr_model_def(m);
    json_t *root = src->provenance_json ? json_loads(src->provenance_json, 0, NULL) : NULL;
    if (!json_is_object(root)) {
        json_decref(root);
        root = json_object();
    }
    json_t *q = json_object();
    const char *base = strrchr(in, '/');
    json_object_set_new(q, "tool", json_string("ctrtool quantize"));
    json_object_set_new(q, "ctrd_version", json_string(CTR_VERSION));
    json_object_set_new(q, "from", json_string(base ? base + 1 : in));
    json_object_set_new(q, "from_digest", json_string(ctr_model_digest(m)));
    json_t *tables = json_object();
    for (size_t j = 0; j < d->n_cat; j++)
        if (!d->cat[j].shares)
            json_object_set_new(tables, d->cat[j].name, json_string(ctr_table_dtype_name(d->cat[j].dtype)));
    json_object_set_new(q, "tables", tables);
    json_t *prev = json_object_get(root, "quantized");
    if (prev)
        json_object_set(q, "previous", prev);
    json_object_set_new(root, "quantized", q);
    char *s = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(root);
    return s;
}

/* The writer reads every table once, front to back, through the reader's
 * mapping, which ctr_model_open advises MADV_RANDOM for serving (a row at
 * a time): a table not in the page cache would come in 4 KB a fault, at
 * a few MB/s. Sequential advice on the tables' pages (this process's
 * mapping only: the file and other processes keep theirs) gives readahead
 * and lets the kernel drop the pages behind the encoder first. Advice
 * only: a failure changes nothing but speed. */
static void advise_sequential(const ctr_model_def_t *d)
{
    long page = sysconf(_SC_PAGESIZE);
    for (size_t j = 0; page > 0 && j < d->n_cat; j++) {
        const ctr_cat_def_t *c = &d->cat[j];
        const void *p = c->table ? (const void *)c->table : c->qrows;
        if (c->shares || !p)
            continue;
        uintptr_t a = (uintptr_t)p, start = a & ~(uintptr_t)(page - 1);
        (void)madvise((void *)start, (size_t)(a + table_bytes(c, c->dtype) - start), MADV_SEQUENTIAL);
    }
}

typedef struct {
    const ctr_model_def_t *src;
} decode_ctx_t;

/* ctr_table_fill_fn: rows of the source's stored table cat_index as
 * floats, decoded as the format defines them (the engine's decode). */
static int decode_fill(void *vctx, size_t cat_index, uint64_t first_row, uint64_t n_rows, float *out)
{
    const decode_ctx_t *ctx = vctx;
    const ctr_cat_def_t *c = &ctx->src->cat[cat_index];
    size_t rb = ctr_table_row_bytes(c->dtype, c->dim);
    if (!c->qrows || !rb)
        return CTR_EINVAL;
    return ctr_table_decode_rows(c->dtype, (const uint8_t *)c->qrows + first_row * rb, n_rows, c->dim, out);
}

/* One line per table and the totals, after the write. */
static void report(const ctr_model_def_t *src, const ctr_model_def_t *d, const bool *sel, const char *in,
                   const char *out, uint64_t in_size, double seconds)
{
    uint64_t before = 0, after = 0;
    size_t larger = 0;
    printf("quantize: %s -> %s\n", in, out);
    printf("    %-24s %-28s %12s %6s %16s %16s %7s\n", "table", "dtype", "rows", "dim", "bytes before", "bytes after",
           "ratio");
    for (size_t j = 0; j < d->n_cat; j++) {
        const ctr_cat_def_t *s = &src->cat[j], *c = &d->cat[j];
        if (c->shares) {
            printf("    %-24s shares %s\n", c->name, d->cat[c->shares - 1].name);
            continue;
        }
        uint64_t b = table_bytes(s, s->dtype), a = table_bytes(c, c->dtype);
        char what[64];
        if (s->dtype == c->dtype)
            snprintf(what, sizeof what, "%s (%s)", ctr_table_dtype_name(c->dtype), sel[j] ? "already" : "kept");
        else
            snprintf(what, sizeof what, "%s -> %s%s", ctr_table_dtype_name(s->dtype), ctr_table_dtype_name(c->dtype),
                     s->dtype != CTR_TABLE_F32 ? " (decoded)" : "");
        printf("    %-24s %-28s %12" PRIu64 " %6" PRIu32 " %16" PRIu64 " %16" PRIu64 " %7.4f\n", c->name, what,
               (uint64_t)c->buckets + 1, c->dim, b, a, b ? (double)a / (double)b : 1.0);
        before += b;
        after += a;
        if (a > b) /* int8's 8-byte trailer outweighs narrow rows (dim < 3 vs f32) */
            larger++;
    }
    if (larger)
        printf("note: %zu table(s) grew: an %s row takes dim + 8 bytes, so int8 pays off only from dim 3 "
               "(vs f32) or dim 9 (vs f16)\n", larger, ctr_table_dtype_name(CTR_TABLE_INT8_ROWWISE));
    struct stat st;
    uint64_t out_size = stat(out, &st) ? 0 : (uint64_t)st.st_size;
    printf("tables: %" PRIu64 " -> %" PRIu64 " bytes (%.4f); file: %" PRIu64 " -> %" PRIu64
           " bytes (%.4f); %.2f s\n",
           before, after, before ? (double)after / (double)before : 1.0, in_size, out_size,
           in_size ? (double)out_size / (double)in_size : 1.0, seconds);
}

int ctr__cmd_quantize(int argc, char **argv)
{
    quant_args_t a = {.dtype = CTR_TABLE_F32, .verify = 1};
    ctr_opts_result_t res;
    int st = ctr__tool_args("quantize", &quant_spec, &a, sizeof a, argc, argv, &res);
    if (st >= 0)
        return st;
    double t0 = now_s();
    char err[1024] = "";
    ctr_model_t *m = NULL;
    int rc = ctr_model_open(a.in, &m, err, sizeof err);
    if (rc) {
        fprintf(stderr, "ctrtool quantize: %s: %s (%s)\n", a.in, err, ctr_strerror(rc));
        return 1;
    }
    /* The writer hashes what it writes: a source corrupted on disk would
     * come out with valid checksums, so its own are checked first. */
    if (a.verify && (rc = ctr_model_verify(m, err, sizeof err))) {
        fprintf(stderr, "ctrtool quantize: %s: %s (%s)\n", a.in, err, ctr_strerror(rc));
        ctr_model_close(m);
        return 1;
    }
    const ctr_model_def_t *src = ctr_model_def(m);
    ctr_model_def_t def = *src;
    ctr_cat_def_t *cat = calloc(src->n_cat + 1, sizeof *cat);
    bool *sel = calloc(src->n_cat + 1, sizeof *sel);
    char *prov = NULL;
    int status = 1;
    if (!cat || !sel) {
        fprintf(stderr, "ctrtool quantize: out of memory\n");
        goto done;
    }
    if (!src->n_cat) {
        fprintf(stderr, "ctrtool quantize: %s: the model has no embedding tables\n", a.in);
        goto done;
    }
    if ((status = select_tables(src, a.tables, sel)))
        goto done;
    status = 1;
    memcpy(cat, src->cat, src->n_cat * sizeof *cat);
    def.cat = cat;
    ctr_table_dtype_t to = (ctr_table_dtype_t)a.dtype;
    for (size_t j = 0; j < src->n_cat; j++) {
        ctr_cat_def_t *c = &cat[j];
        if (!sel[j] || c->dtype == to)
            continue;  /* copied as stored: qrows, or the fp32 table */
        /* The writer encodes the mapped fp32 rows in chunks, or the rows
         * decode_fill decodes from the stored ones (table NULL). */
        if (c->dtype != CTR_TABLE_F32)
            c->table = NULL;
        c->dtype = to;
        c->qrows = NULL;
    }
    for (size_t j = 0; j < src->n_cat; j++)
        if (cat[j].shares) {
            const ctr_cat_def_t *o = &cat[cat[j].shares - 1];
            cat[j].dtype = o->dtype;
            cat[j].qrows = o->qrows;
            cat[j].table = o->table;
        }
    if (!(prov = provenance(m, a.in, &def))) {
        fprintf(stderr, "ctrtool quantize: out of memory\n");
        goto done;
    }
    def.provenance_json = prov;
    advise_sequential(src);
    decode_ctx_t dctx = {src};
    if ((rc = ctr_model_write(a.out, &def, decode_fill, &dctx, err, sizeof err))) {
        fprintf(stderr, "ctrtool quantize: %s: %s (%s)\n", a.out, err, ctr_strerror(rc));
        goto done;
    }
    report(src, &def, sel, a.in, a.out, ctr_model_file_size(m), now_s() - t0);
    status = fflush(stdout) ? 1 : 0;
done:
    free(prov);
    free(sel);
    free(cat);
    ctr_model_close(m);
    return status;
}
