/* ctrtool inspect / verify - look at a .ctrm model file.
 *
 * inspect prints what a loaded model holds: the preamble as it sits on
 * disk, name, digest, schema, MLP, parameter counts, the tensor table and
 * the provenance (--json: the header JSON itself, with digest and size).
 * verify re-hashes every tensor against the header's SHA-256 values.
 * Both open the file with ctr_model_open, so a file they accept is one the
 * server accepts. Exit status: 0 ok, 1 bad model, 2 usage. */
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctr/common.h"
#include "ctr/model.h"
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
    "  prints the preamble, name, digest, schema, MLP, parameter counts,\n"
    "  tensors and provenance\n\n",
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
    printf("    %-24s %-5s %-18s %12s %14s  %s\n", "name", "dtype", "shape", "offset", "bytes", "sha256");
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
        printf("    %-24s %-5s %-18s %12" JSON_INTEGER_FORMAT " %14" JSON_INTEGER_FORMAT "  %.16s...\n",
               json_string_value(json_object_get(t, "name")), json_string_value(json_object_get(t, "dtype")),
               shape, json_integer_value(json_object_get(t, "offset")),
               json_integer_value(json_object_get(t, "nbytes")),
               json_string_value(json_object_get(t, "sha256")));
    }
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

    printf("schema: %zu dense, %zu categorical, MLP input width %zu\n", d->n_dense, d->n_cat,
           ctr_model_input_dim(d));
    for (size_t i = 0; i < d->n_dense; i++) {
        const ctr_dense_def_t *x = &d->dense[i];
        if (x->transform == CTR_TRANSFORM_STANDARDIZE)
            printf("    dense %-24s standardize (mean %.9g, std %.9g)\n", x->name, x->mean, x->std);
        else
            printf("    dense %-24s %s\n", x->name, ctr_transform_name(x->transform));
    }
    uint64_t emb_params = 0, mlp_params = 0;
    if (d->n_cat)
        printf("    %-30s %12s %6s %22s %12s\n", "categorical", "buckets", "dim", "seed", "table MiB");
    for (size_t j = 0; j < d->n_cat; j++) {
        const ctr_cat_def_t *c = &d->cat[j];
        uint64_t n = ((uint64_t)c->buckets + 1) * c->dim;
        emb_params += n;
        printf("    %-30s %12" PRIu32 " %6" PRIu32 " %22" PRIu64 " %12.2f\n", c->name, c->buckets, c->dim,
               c->seed, mib(n * sizeof(float)));
    }

    printf("mlp: %s (beta %.9g), %zu layer%s\n", ctr_activation_name(d->activation), (double)d->beta,
           d->n_layers, d->n_layers == 1 ? "" : "s");
    for (size_t l = 0; l < d->n_layers; l++) {
        const ctr_layer_def_t *L = &d->layers[l];
        mlp_params += (uint64_t)L->in * L->out + L->out;
        printf("    layer %-3zu %8" PRIu32 " -> %-8" PRIu32 " %s\n", l, L->in, L->out,
               l + 1 < d->n_layers ? ctr_activation_name(d->activation) : "sigmoid");
    }
    printf("parameters: %" PRIu64 " (MLP %" PRIu64 ", embeddings %" PRIu64 "), %.2f MiB as f32\n",
           mlp_params + emb_params, mlp_params, emb_params, mib((mlp_params + emb_params) * sizeof(float)));

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
    const ctr_model_def_t *d = ctr_model_def(m);
    uint64_t bytes = 0;
    for (size_t j = 0; j < d->n_cat; j++)
        bytes += ((uint64_t)d->cat[j].buckets + 1) * d->cat[j].dim * sizeof(float);
    for (size_t l = 0; l < d->n_layers; l++)
        bytes += ((uint64_t)d->layers[l].in * d->layers[l].out + d->layers[l].out) * sizeof(float);
    printf("ok: %zu tensors, %" PRIu64 " bytes verified, %s\n", d->n_cat + 2 * d->n_layers, bytes,
           ctr_model_digest(m));
    ctr_model_close(m);
    return 0;
}
