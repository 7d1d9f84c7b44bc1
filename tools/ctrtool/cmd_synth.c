/* ctrtool synth - a random model of any size, for benchmarks and demos.
 *
 * Tables are streamed through the writer's fill callback from a
 * counter-based generator (splitmix64 of seed, table, index), so a model
 * far larger than memory is written with bounded memory and the same
 * arguments always give the same file. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/model.h"
#include "ctr/opts.h"
#include "ctr/rng.h"
#include "ctrtool_int.h"

#define SYNTH_MAX_LAYERS 16

/* Uniform in [-scale, scale), from the top 24 bits: exact in float. */
static float synth_value(uint64_t seed, uint64_t stream, uint64_t i, float scale)
{
    uint64_t h = ctr_splitmix64(seed ^ ctr_splitmix64(stream * 0x100000001b3ull + i));
    return ((float)(h >> 40) * (1.0f / 8388608.0f) - 1.0f) * scale;
}

struct synth_ctx {
    uint64_t seed;
    const ctr_cat_def_t *cat;
};

static int fill_table(void *vctx, size_t cat_index, uint64_t first_row,
                      uint64_t n_rows, float *out)
{
    const struct synth_ctx *ctx = vctx;
    uint32_t dim = ctx->cat[cat_index].dim;
    uint64_t first = first_row * dim, n = n_rows * dim;
    for (uint64_t i = 0; i < n; i++)
        out[i] = synth_value(ctx->seed, 1000 + cat_index, first + i, 0.05f);
    return 0;
}

/* --hidden W,W,...: the widths, and the text for the report line. */
typedef struct {
    size_t n;
    uint32_t w[SYNTH_MAX_LAYERS - 1];
    const char *text;
} hidden_arg_t;

static int parse_hidden(const char *text, void *field, char *err, size_t errlen)
{
    hidden_arg_t *h = field;
    h->n = 0;
    h->text = text;
    for (const char *p = text; *p; p++) {
        char item[16];
        size_t len = strcspn(p, ",");
        uint64_t v;
        if (h->n == CTR_ARRAY_LEN(h->w))
            return ctr_error(err, errlen, CTR_ERANGE, "at most %zu hidden layers", CTR_ARRAY_LEN(h->w));
        if (len >= sizeof item)
            return ctr_error(err, errlen, CTR_EINVAL, "expected a list of widths in 1..65536 like 512,256");
        memcpy(item, p, len);
        item[len] = 0;
        if (ctr_opts_parse_u64(item, &v) || v < 1 || v > 65536)
            return ctr_error(err, errlen, CTR_EINVAL, "expected a list of widths in 1..65536 like 512,256");
        h->w[h->n++] = (uint32_t)v;
        p += len;
        if (!*p)
            break;
    }
    return 0;
}

typedef struct {
    const char *out, *name;
    uint64_t rows, n_dense, n_cat, dim, seed;
    hidden_arg_t hidden;
    ctr_activation_t act;
    float beta;
} synth_args_t;

static const ctr_opt_enum_t activations[] = {{"smelu", CTR_ACT_SMELU}, {"relu", CTR_ACT_RELU}, {NULL, 0}};

#define AT(m) CTR_OPT_AT(synth_args_t, m)

static const ctr_opt_t synth_rows[] = {
    {"out", NULL, CTR_OPT_STR, CTR_OPT_REQUIRED, AT(out), .metavar = "MODEL", .help = "the model file to write"},
    {"rows-per-table", NULL, CTR_OPT_UINT, CTR_OPT_REQUIRED, AT(rows), .min = 1, .max = UINT32_MAX - 1, .metavar = "N", .help = "rows of every embedding table"},
    {"dense", NULL, CTR_OPT_UINT, 0, AT(n_dense), .def = "13", .min = 0, .max = 4096, .metavar = "N", .help = "dense features I1..IN (log1p)"},
    {"categorical", NULL, CTR_OPT_UINT, 0, AT(n_cat), .def = "26", .min = 0, .max = 4096, .metavar = "N", .help = "categorical features C1..CN"},
    {"dim", NULL, CTR_OPT_UINT, 0, AT(dim), .def = "16", .min = 1, .max = 4096, .metavar = "N", .help = "embedding width"},
    {"hidden", NULL, CTR_OPT_CUSTOM, 0, AT(hidden), .def = "512,256", .parse = parse_hidden, .metavar = "W,W,...", .help = "hidden layer widths; '' = none"},
    {"activation", NULL, CTR_OPT_ENUM, 0, AT(act), .def = "smelu", .enums = activations, .metavar = "A", .help = "smelu|relu"},
    {"beta", NULL, CTR_OPT_DOUBLE, CTR_OPT_MIN_EXCL, AT(beta), .def = "1.0", .dmin = 0, .dmax = INFINITY, .metavar = "B", .help = "SmeLU beta"},
    {"seed", NULL, CTR_OPT_UINT, 0, AT(seed), .def = "1", .metavar = "S", .help = "the random values"},
    {"name", NULL, CTR_OPT_STR, 0, AT(name), .def = "synth", .metavar = "NAME", .help = "model name"},
};

static const ctr_opts_t synth_spec = {
    synth_rows, CTR_ARRAY_LEN(synth_rows),
    "usage: ctrtool synth --out MODEL --rows-per-table N [options]\n",
    "Table size: categorical x (rows+1) x dim x 4 bytes; rows may be\n"
    "large enough that the file exceeds RAM (it is streamed).\n",
};

int ctr__cmd_synth(int argc, char **argv)
{
    synth_args_t a = {.out = NULL};
    ctr_opts_result_t res;
    int st = ctr__tool_args("synth", &synth_spec, &a, sizeof a, argc, argv, &res);
    if (st >= 0)
        return st;
    if (a.n_dense + a.n_cat == 0) {
        fprintf(stderr, "ctrtool synth: --dense and --categorical are both 0: no features\n");
        return 2;
    }
    const char *out = a.out, *name = a.name, *hidden_s = a.hidden.text;
    unsigned long long rows = a.rows, seed = a.seed;
    unsigned long n_dense = (unsigned long)a.n_dense, n_cat = (unsigned long)a.n_cat, dim = (unsigned long)a.dim;
    float beta = a.beta;
    ctr_activation_t act = a.act;
    const uint32_t *hidden = a.hidden.w;
    size_t n_hidden = a.hidden.n;

    int status = 1;
    char (*names)[24] = calloc(n_dense + n_cat, 24);
    ctr_dense_def_t *dense = calloc(n_dense + 1, sizeof(*dense));
    ctr_cat_def_t *cat = calloc(n_cat + 1, sizeof(*cat));
    ctr_layer_def_t layers[SYNTH_MAX_LAYERS];
    float *params[2 * SYNTH_MAX_LAYERS] = {0};
    if (!names || !dense || !cat)
        goto done;
    for (size_t i = 0; i < n_dense; i++) {
        snprintf(names[i], 24, "I%zu", i + 1);
        dense[i] = (ctr_dense_def_t){names[i], CTR_TRANSFORM_LOG1P, 0, 1};
    }
    for (size_t j = 0; j < n_cat; j++) {
        snprintf(names[n_dense + j], 24, "C%zu", j + 1);
        cat[j] = (ctr_cat_def_t){.name = names[n_dense + j], .buckets = (uint32_t)rows,
                                 .dim = (uint32_t)dim, .seed = ctr_splitmix64(seed + j)};
    }
    uint32_t in = (uint32_t)(n_dense + n_cat * dim);
    for (size_t l = 0; l <= n_hidden; l++) {
        uint32_t o = l < n_hidden ? hidden[l] : 1;
        float *w = params[2 * l] = malloc((size_t)in * o * sizeof(float));
        float *b = params[2 * l + 1] = malloc((size_t)o * sizeof(float));
        if (!w || !b)
            goto done;
        /* Scaled so activations keep unit-ish size through the layers and
         * scores spread over (0, 1) instead of saturating. */
        float scale = 1.7f / (float)in;
        for (size_t i = 0; i < (size_t)in * o; i++)
            w[i] = synth_value(seed, 2 * l, i, 1.0f) * scale * 1.7f;
        for (size_t i = 0; i < o; i++)
            b[i] = synth_value(seed, 2 * l + 1, i, 0.1f);
        layers[l] = (ctr_layer_def_t){in, o, w, b};
        in = o;
    }
    char prov[256];
    snprintf(prov, sizeof(prov),
             "{\"tool\":\"ctrtool synth\",\"seed\":%llu,\"rows_per_table\":%llu}", seed, rows);
    ctr_model_def_t def = {
        .name = name, .n_dense = n_dense, .dense = dense, .n_cat = n_cat, .cat = cat,
        .n_layers = n_hidden + 1, .layers = layers, .activation = act, .beta = beta,
        .provenance_json = prov,
    };
    struct synth_ctx ctx = {seed, cat};
    char err[512];
    int rc = ctr_model_write(out, &def, fill_table, &ctx, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "ctrtool synth: %s: %s\n", out, err);
        goto done;
    }
    printf("wrote %s: %lu dense, %lu categorical x %llu rows x %lu dim, hidden %s\n",
           out, n_dense, n_cat, rows + 1, dim, *hidden_s ? hidden_s : "(none)");
    status = 0;
done:
    if (status && !names)
        fprintf(stderr, "ctrtool synth: out of memory\n");
    for (size_t i = 0; i < CTR_ARRAY_LEN(params); i++)
        free(params[i]);
    free(cat);
    free(dense);
    free(names);
    return status;
}
