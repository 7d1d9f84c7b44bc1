/* ctrtool inspect / verify - look at a .ctrm model file.
 *
 * inspect prints what a loaded model holds: the preamble as it sits on
 * disk, name, digest, schema, the architecture and its graph (one line per
 * operation with its shapes), each table's dtype and bytes and their
 * total, parameter count, MFLOP per example, the tensor table and the
 * provenance (--json: the header JSON itself, with
 * digest and size).
 * verify re-hashes every tensor against the header's SHA-256 values.
 * Both open the file with ctr_model_open, so a file they accept is one the
 * server accepts. Exit status: 0 ok, 1 bad model, 2 usage. */
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctr/common.h"
#include "ctr/model.h"
#include "ctr/model_stats.h"
#include "ctr/opts.h"
#include "ctrtool_int.h"

static double mib(uint64_t bytes) { return (double)bytes / (1024.0 * 1024.0); }

/* `inspect [--json] MODEL` and `verify MODEL`: one positional model. */
typedef struct {
    const char *path_v[1];
    ctr_opt_list_t path;
    int json;
} model_args_t;

static const ctr_opt_t inspect_rows[] = {
    {"json", NULL, CTR_OPT_BOOL, 0, CTR_OPT_AT(model_args_t, json), .help = "print {\"digest\", \"file_size\", \"header\"}"},
    {NULL, NULL, CTR_OPT_LIST, CTR_OPT_REQUIRED, CTR_OPT_AT(model_args_t, path), .metavar = "MODEL", .help = "a .ctrm file"},
};

static const ctr_opts_t inspect_spec = {
    inspect_rows, CTR_ARRAY_LEN(inspect_rows),
    "usage: ctrtool inspect [--json] MODEL\n"
    "  prints the preamble, name, digest, schema (each table's dtype and bytes),\n"
    "  architecture and graph, parameter count, MFLOP per example, tensors and\n"
    "  provenance\n\n",
    NULL,
};

static const ctr_opts_t verify_spec = {
    inspect_rows + 1, 1,
    "usage: ctrtool verify MODEL\n"
    "  checks the file's structure and recomputes every tensor's SHA-256\n\n",
    NULL,
};

static ctr_model_t *open_or_report(const char *cmd, const char *path)
{
    char err[1024] = "";
    ctr_model_t *m = NULL;
    int rc = ctr_model_open(path, &m, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "ctrtool %s: %s: %s (%s)\n", cmd, path, err, ctr_strerror(rc));
        return NULL;
    }
    return m;
}

/* The 32-byte preamble as stored (docs/MODEL_FORMAT.md): ctr_model_open
 * already checked it, this only shows it. */
static void print_preamble(const char *path)
{
    unsigned char p[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? pread(fd, p, sizeof(p), 0) : -1;
    if (fd >= 0)
        close(fd);
    if (n != (ssize_t)sizeof(p)) {
        printf("  preamble     (unreadable)\n");
        return;
    }
    uint32_t version, flags;
    uint64_t header_len, data_offset;
    memcpy(&version, p + 8, 4);
    memcpy(&flags, p + 12, 4);
    memcpy(&header_len, p + 16, 8);
    memcpy(&data_offset, p + 24, 8);
    printf("  preamble     magic \"%.8s\", version %" PRIu32 ", flags 0x%" PRIx32 ", header_len %" PRIu64
           ", data_offset %" PRIu64 "\n",
           (const char *)p, version, flags, header_len, data_offset);
}

static void print_tensors(json_t *tensors)
{
    size_t i;
    json_t *t;
    printf("tensors: %zu\n", json_array_size(tensors));
    printf("    %-24s %-12s %-18s %12s %14s  %s\n", "name", "dtype", "shape", "offset", "bytes", "sha256");
    json_array_foreach(tensors, i, t) {
        char shape[64] = "[";
        size_t k;
        json_t *d;
        json_array_foreach(json_object_get(t, "shape"), k, d) {
            size_t len = strlen(shape);
            snprintf(shape + len, sizeof(shape) - len, "%s%" JSON_INTEGER_FORMAT, k ? "," : "",
                     json_integer_value(d));
        }
        strncat(shape, "]", sizeof(shape) - strlen(shape) - 1);
        printf("    %-24s %-12s %-18s %12" JSON_INTEGER_FORMAT " %14" JSON_INTEGER_FORMAT "  %.16s...\n",
               json_string_value(json_object_get(t, "name")), json_string_value(json_object_get(t, "dtype")),
               shape, json_integer_value(json_object_get(t, "offset")),
               json_integer_value(json_object_get(t, "nbytes")),
               json_string_value(json_object_get(t, "sha256")));
    }
}

/* Tensors in the file: one per owned table and per weight, bias, gamma
 * and beta of the graph (what `verify` checked). Parameters and FLOPs come
 * from ctr_model_stats (ctr/model_stats.h), the engine's own count. */
static uint64_t count_tensors(const ctr_model_def_t *d)
{
    uint64_t t = 2 * ((uint64_t)d->bottom.n + d->dcn.deep.n + d->n_layers);
    for (size_t j = 0; j < d->n_cat; j++)
        t += !d->cat[j].shares;
    for (size_t l = 0; d->arch == CTR_ARCH_DCNV2 && l < d->dcn.n_cross; l++)
        t += d->dcn.cross[l].rank ? 3 : 2;
    for (size_t i = 0; d->arch == CTR_ARCH_WUKONG && i < d->wukong.n_layers; i++) {
        const ctr_wukong_layer_def_t *L = &d->wukong.layers[i];
        t += 4 + 2 * (uint64_t)L->fmb.n + (L->fmb_ln_gamma ? 2 : 0) + (L->res != NULL);
    }
    return t;
}

/* Bytes a table takes in the file and in memory: rows x the dtype's row
 * (docs/MODEL_FORMAT.md "Table dtypes"); a sharer's is its owner's. */
static uint64_t table_bytes(const ctr_cat_def_t *c)
{
    return ((uint64_t)c->buckets + 1) * ctr_table_row_bytes(c->dtype, c->dim);
}

/* Bytes of every tensor: the graph's floats and each owned table as stored. */
static uint64_t tensor_bytes(const ctr_model_def_t *d)
{
    ctr_model_stats_t st;
    ctr_model_stats(d, &st);
    uint64_t b = st.params * sizeof(float);
    for (size_t j = 0; j < d->n_cat; j++)
        if (!d->cat[j].shares)
            b += table_bytes(&d->cat[j]);
    return b;
}

/* "tables: N bytes in K tables (f32 a, f16 b, int8_rowwise c); X as f32". */
static void print_table_totals(const ctr_model_def_t *d)
{
    uint64_t bytes = 0, f32 = 0;
    size_t owned = 0, by[3] = {0};
    for (size_t j = 0; j < d->n_cat; j++) {
        const ctr_cat_def_t *c = &d->cat[j];
        if (c->shares)
            continue;
        owned++;
        bytes += table_bytes(c);
        f32 += ((uint64_t)c->buckets + 1) * c->dim * sizeof(float);
        if ((unsigned)c->dtype < CTR_ARRAY_LEN(by))
            by[c->dtype]++;
    }
    printf("    tables: %" PRIu64 " bytes (%.2f MiB) in %zu tables (", bytes, mib(bytes), owned);
    const char *sep = "";
    for (unsigned t = 0; t < CTR_ARRAY_LEN(by); t++)
        if (by[t]) {
            printf("%s%s %zu", sep, ctr_table_dtype_name((ctr_table_dtype_t)t), by[t]);
            sep = ", ";
        }
    printf("); %.4f of their %" PRIu64 " bytes as f32\n", f32 ? (double)bytes / (double)f32 : 1.0, f32);
}

/* The width d every embedding has in an interaction model. */
static size_t emb_dim(const ctr_model_def_t *d)
{
    return d->n_cat ? d->cat[0].dim : d->bottom.n ? d->bottom.layers[d->bottom.n - 1].out : 0;
}

/* ---- the graph, one line per operation ------------------------------------ */

static void print_layers(const char *prefix, const ctr_layer_def_t *L, size_t n, const char *act, const char *last)
{
    for (size_t l = 0; l < n; l++) {
        char name[48];
        const char *a = l + 1 < n || !last ? act : last;
        snprintf(name, sizeof(name), "%s.%zu", prefix, l);
        printf("    %-18s linear %" PRIu32 " -> %" PRIu32 "%s%s\n", name, L[l].in, L[l].out, a[0] ? ", " : "", a);
    }
}

static void print_graph(const ctr_model_def_t *d)
{
    const char *act = ctr_activation_name(d->activation);
    size_t n = (d->n_dense > 0) + d->n_cat, dim = emb_dim(d);
    for (size_t j = 0; j < d->n_cat; j++)
        if (d->cat[j].bag_max)
            printf("    %-18s pool %s over up to %" PRIu32 " rows of %" PRIu32 "\n", d->cat[j].name,
                   d->cat[j].pool == CTR_POOL_MEAN ? "mean" : "sum", d->cat[j].bag_max, d->cat[j].dim);
    print_layers("bottom", d->bottom.layers, d->bottom.n, act, NULL);
    switch (d->arch) {
    case CTR_ARCH_MLP:
        printf("    %-18s [%zu dense; %zu embeddings] -> %zu\n", "concat", d->n_dense, d->n_cat,
               ctr_model_input_dim(d));
        break;
    case CTR_ARCH_DOT:
        printf("    %-18s X: %zu x %zu\n", "embeddings", n, dim);
        size_t pairs = d->dot_self ? n * (n + 1) / 2 : n * (n - 1) / 2;
        printf("    %-18s %s triangle%s: %zu dot products of %zu -> %zu\n", "dot",
               d->dot_order == CTR_DOT_UPPER ? "upper" : "lower", d->dot_self ? " and diagonal" : "", pairs, dim,
               pairs);
        if (d->n_dense)
            printf("    %-18s [dense_emb %zu; %zu] -> %zu\n", "concat", dim, pairs, ctr_model_input_dim(d));
        break;
    case CTR_ARCH_DCNV2: {
        size_t D = d->dcn.n_cross ? d->dcn.cross[0].dim : 0;
        if (!D) {
            D = d->bottom.n ? n * dim : d->n_dense;
            for (size_t j = 0; !d->bottom.n && j < d->n_cat; j++)
                D += d->cat[j].dim;
        }
        printf("    %-18s x_0: %zu (%s)\n", "embeddings", D,
               d->bottom.n || !d->n_dense ? "flatten(X)" : "raw dense values, then the embeddings");
        for (size_t l = 0; l < d->dcn.n_cross; l++) {
            const ctr_cross_def_t *x = &d->dcn.cross[l];
            char name[32];
            snprintf(name, sizeof(name), "cross.%zu", l);
            if (x->rank)
                printf("    %-18s x_0 * (U V x + b) + x: %" PRIu32 " -> %" PRIu32 " -> %" PRIu32 " (rank %" PRIu32
                       ")\n", name, x->dim, x->rank, x->dim, x->rank);
            else
                printf("    %-18s x_0 * (W x + b) + x: %" PRIu32 " x %" PRIu32 "\n", name, x->dim, x->dim);
        }
        if (d->dcn.structure == CTR_DCN_PARALLEL) {
            print_layers("deep", d->dcn.deep.layers, d->dcn.deep.n, act, NULL);
            printf("    %-18s [x_L %zu; deep %" PRIu32 "] -> %zu\n", "concat", D,
                   d->dcn.deep.layers[d->dcn.deep.n - 1].out, ctr_model_input_dim(d));
        }
        break;
    }
    case CTR_ARCH_WUKONG: {
        printf("    %-18s X: %zu x %zu\n", "embeddings", n, dim);
        for (size_t i = 0; i < d->wukong.n_layers; i++) {
            const ctr_wukong_layer_def_t *L = &d->wukong.layers[i];
            char name[48];
            snprintf(name, sizeof(name), "wukong.%zu.fmb", i);
            printf("    %-18s Z = X^T Y: [%zu x %" PRIu32 "] x [%" PRIu32 " x %" PRIu32 "] -> %zu x %" PRIu32 "\n",
                   name, dim, L->n_in, L->n_in, L->k, dim, L->k);
            printf("    %-18s F = X Z: [%" PRIu32 " x %zu] x [%zu x %" PRIu32 "] -> %" PRIu32 " x %" PRIu32 "%s\n", "",
                   L->n_in, dim, dim, L->k, L->n_in, L->k,
                   d->wukong.fmb_ln == CTR_FMB_LN_FLAT ? ", flattened, LayerNorm" : ", flattened");
            print_layers(name, L->fmb.layers, L->fmb.n, act, d->wukong.fmb_out_act ? act : "");
            printf("    %-18s reshape -> %" PRIu32 " x %zu\n", "", L->n_f, dim);
            snprintf(name, sizeof(name), "wukong.%zu.lcb", i);
            printf("    %-18s W_L X: [%" PRIu32 " x %" PRIu32 "] x [%" PRIu32 " x %zu]\n", name, L->n_l, L->n_in,
                   L->n_in, dim);
            snprintf(name, sizeof(name), "wukong.%zu.out", i);
            if (L->res)
                printf("    %-18s LN_d([F; L] + res X), res [%" PRIu32 " x %" PRIu32 "] -> %" PRIu32 " x %zu\n",
                       name, L->n_f + L->n_l, L->n_in, L->n_f + L->n_l, dim);
            else
                printf("    %-18s LN_d([F; L] + X) -> %" PRIu32 " x %zu\n", name, L->n_f + L->n_l, dim);
        }
        printf("    %-18s -> %zu\n", "flatten", ctr_model_input_dim(d));
        break;
    }
    }
    print_layers("mlp", d->layers, d->n_layers, act, "sigmoid");
}

static void print_model(const ctr_model_t *m)
{
    const ctr_model_def_t *d = ctr_model_def(m);
    size_t hlen;
    const char *header = ctr_model_header_json(m, &hlen);
    json_t *root = json_loadb(header, hlen, 0, NULL);

    printf("%s\n", ctr_model_path(m));
    printf("  file         %" PRIu64 " bytes (%.2f MiB)\n", ctr_model_file_size(m), mib(ctr_model_file_size(m)));
    print_preamble(ctr_model_path(m));
    printf("  name         %s\n", d->name);
    printf("  digest       %s\n", ctr_model_digest(m));

    printf("schema: %zu dense, %zu categorical, %zu row slots, MLP input width %zu\n", d->n_dense, d->n_cat,
           ctr_model_slots(d), ctr_model_input_dim(d));
    for (size_t i = 0; i < d->n_dense; i++) {
        const ctr_dense_def_t *x = &d->dense[i];
        if (x->transform == CTR_TRANSFORM_STANDARDIZE)
            printf("    dense %-24s standardize (mean %.9g, std %.9g)\n", x->name, x->mean, x->std);
        else
            printf("    dense %-24s %s\n", x->name, ctr_transform_name(x->transform));
    }
    if (d->n_cat)
        printf("    %-30s %12s %6s %7s %22s %10s %-12s %16s\n", "categorical", "buckets", "dim", "mapping", "seed",
               "bag", "dtype", "table bytes");
    for (size_t j = 0; j < d->n_cat; j++) {
        const ctr_cat_def_t *c = &d->cat[j];
        char bag[24] = "-", seed[24] = "-", table[96];
        if (c->bag_max)
            snprintf(bag, sizeof(bag), "%s<=%" PRIu32, c->pool == CTR_POOL_MEAN ? "mean" : "sum", c->bag_max);
        if (c->mapping == CTR_MAP_HASH)
            snprintf(seed, sizeof(seed), "%" PRIu64, c->seed);
        if (c->shares)
            snprintf(table, sizeof(table), "shares %s", d->cat[c->shares - 1].name);
        else
            snprintf(table, sizeof(table), "%16" PRIu64, table_bytes(c));
        printf("    %-30s %12" PRIu32 " %6" PRIu32 " %7s %22s %10s %-12s %s\n", c->name, c->buckets, c->dim,
               c->mapping == CTR_MAP_MOD ? "mod" : "hash", seed, bag, ctr_table_dtype_name(c->dtype), table);
    }
    if (d->n_cat)
        print_table_totals(d);

    printf("arch: %s", ctr_arch_name(d->arch));
    if (d->arch == CTR_ARCH_WUKONG)
        printf(" (LayerNorm eps %.9g, FMB LayerNorm %s, FMB output %s)", (double)d->ln_eps,
               d->wukong.fmb_ln == CTR_FMB_LN_FLAT ? "flat" : "none",
               d->wukong.fmb_out_act ? "activated" : "linear");
    printf("; activation %s (beta %.9g)\n", ctr_activation_name(d->activation), (double)d->beta);
    printf("graph:\n");
    print_graph(d);
    ctr_model_stats_t st;
    ctr_model_stats(d, &st);
    printf("parameters: %" PRIu64 " (dense %" PRIu64 ", embeddings %" PRIu64 "), %.2f MiB as f32\n",
           st.emb_params + st.params, st.params, st.emb_params, mib((st.emb_params + st.params) * sizeof(float)));
    printf("compute: %.6g MFLOP per example (2 x multiply-adds of the matrix products; %.6g with "
           "activations, pooling, LayerNorm and adds)\n", 2.0 * st.macs / 1e6, st.flops / 1e6);

    if (root)
        print_tensors(json_object_get(root, "tensors"));
    json_t *prov = root ? json_object_get(root, "provenance") : NULL;
    char *text = prov ? json_dumps(prov, JSON_INDENT(2) | JSON_REAL_PRECISION(17)) : NULL;
    printf("provenance: %s\n", text ? text : d->provenance_json);
    free(text);
    json_decref(root);
}

int ctr__cmd_inspect(int argc, char **argv)
{
    model_args_t a = {.json = 0};
    a.path = (ctr_opt_list_t){a.path_v, 0, 1};
    ctr_opts_result_t res;
    int st = ctr__tool_args("inspect", &inspect_spec, &a, sizeof a, argc, argv, &res);
    if (st >= 0)
        return st;
    const char *path = a.path.v[0];
    bool json = a.json;
    ctr_model_t *m = open_or_report("inspect", path);
    if (!m)
        return 1;
    if (json) {
        size_t hlen;
        const char *header = ctr_model_header_json(m, &hlen);
        /* The header bytes verbatim: they are what the digest covers. */
        printf("{\"digest\":\"%s\",\"file_size\":%" PRIu64 ",\"header\":", ctr_model_digest(m),
               ctr_model_file_size(m));
        fwrite(header, 1, hlen, stdout);
        printf("}\n");
    } else {
        print_model(m);
    }
    ctr_model_close(m);
    return fflush(stdout) ? 1 : 0;
}

int ctr__cmd_verify(int argc, char **argv)
{
    model_args_t a = {.json = 0};
    a.path = (ctr_opt_list_t){a.path_v, 0, 1};
    ctr_opts_result_t res;
    int st = ctr__tool_args("verify", &verify_spec, &a, sizeof a, argc, argv, &res);
    if (st >= 0)
        return st;
    const char *path = a.path.v[0];
    ctr_model_t *m = open_or_report("verify", path);
    if (!m)
        return 1;
    char err[1024] = "";
    int rc = ctr_model_verify(m, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "ctrtool verify: %s: %s (%s)\n", path, err, ctr_strerror(rc));
        ctr_model_close(m);
        return 1;
    }
    printf("ok: %" PRIu64 " tensors, %" PRIu64 " bytes verified, %s\n", count_tensors(ctr_model_def(m)),
           tensor_bytes(ctr_model_def(m)), ctr_model_digest(m));
    ctr_model_close(m);
    return 0;
}
