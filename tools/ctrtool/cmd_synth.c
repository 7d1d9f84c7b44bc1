/* ctrtool synth - a random model of any size, for benchmarks and demos.
 *
 * Tables are streamed through the writer's fill callback from a
 * counter-based generator (splitmix64 of seed, table, index), so a model
 * far larger than memory is written with bounded memory and the same
 * arguments always give the same file. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/model.h"
#include "ctrtool_int.h"

#define SYNTH_MAX_LAYERS 16

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Uniform in [-scale, scale), from the top 24 bits: exact in float. */
static float synth_value(uint64_t seed, uint64_t stream, uint64_t i, float scale)
{
    uint64_t h = splitmix64(seed ^ splitmix64(stream * 0x100000001b3ull + i));
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

static int parse_hidden(const char *s, uint32_t *w, size_t *n)
{
    *n = 0;
    if (!*s)
        return 0;
    while (*s) {
        char *end;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || v == 0 || v > 65536 || *n == SYNTH_MAX_LAYERS - 1)
            return -1;
        w[(*n)++] = (uint32_t)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return 0;
}

static void synth_usage(FILE *f)
{
    fprintf(f,
            "usage: ctrtool synth --out MODEL --rows-per-table N [options]\n"
            "  --dense N          dense features I1..IN (default 13, log1p)\n"
            "  --categorical N    categorical features C1..CN (default 26)\n"
            "  --dim N            embedding width (default 16)\n"
            "  --hidden W,W,...   hidden layer widths (default 512,256; '' = none)\n"
            "  --activation A     smelu|relu (default smelu)\n"
            "  --beta B           SmeLU beta (default 1.0)\n"
            "  --seed S           (default 1)\n"
            "  --name NAME        model name (default synth)\n"
            "Table size: categorical x (rows+1) x dim x 4 bytes; rows may be\n"
            "large enough that the file exceeds RAM (it is streamed).\n");
}

int ctr__cmd_synth(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},
        {"rows-per-table", required_argument, 0, 'r'},
        {"dense", required_argument, 0, 'D'},
        {"categorical", required_argument, 0, 'C'},
        {"dim", required_argument, 0, 'd'},
        {"hidden", required_argument, 0, 'H'},
        {"activation", required_argument, 0, 'a'},
        {"beta", required_argument, 0, 'b'},
        {"seed", required_argument, 0, 's'},
        {"name", required_argument, 0, 'n'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *out = NULL, *name = "synth", *hidden_s = "512,256";
    unsigned long long rows = 0, seed = 1;
    unsigned long n_dense = 13, n_cat = 26, dim = 16;
    float beta = 1.0f;
    ctr_activation_t act = CTR_ACT_SMELU;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'r': rows = strtoull(optarg, NULL, 10); break;
        case 'D': n_dense = strtoul(optarg, NULL, 10); break;
        case 'C': n_cat = strtoul(optarg, NULL, 10); break;
        case 'd': dim = strtoul(optarg, NULL, 10); break;
        case 'H': hidden_s = optarg; break;
        case 'a':
            if (!strcmp(optarg, "smelu"))
                act = CTR_ACT_SMELU;
            else if (!strcmp(optarg, "relu"))
                act = CTR_ACT_RELU;
            else {
                fprintf(stderr, "ctrtool synth: --activation must be smelu or relu, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'b': beta = strtof(optarg, NULL); break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 'n': name = optarg; break;
        case 'h': synth_usage(stdout); return 0;
        default: synth_usage(stderr); return 2;
        }
    }
    uint32_t hidden[SYNTH_MAX_LAYERS];
    size_t n_hidden;
    if (!out || rows == 0 || rows >= UINT32_MAX || n_dense > 4096 || n_cat > 4096 ||
        dim == 0 || dim > 4096 || !(beta > 0) || n_dense + n_cat == 0 ||
        parse_hidden(hidden_s, hidden, &n_hidden)) {
        fprintf(stderr, "ctrtool synth: need --out and --rows-per-table (1..2^32-2); "
                        "sizes must be positive and --hidden a list like 512,256\n");
        synth_usage(stderr);
        return 2;
    }

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
        cat[j] = (ctr_cat_def_t){names[n_dense + j], (uint32_t)rows, (uint32_t)dim,
                                 splitmix64(seed + j), NULL};
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
