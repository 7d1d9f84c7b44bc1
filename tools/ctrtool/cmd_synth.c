/* ctrtool synth - a random model of any size and architecture, for
 * benchmarks and demos.
 *
 * Tables are streamed through the writer's fill callback from a
 * counter-based generator (splitmix64 of seed, table, index), so a model
 * far larger than memory is written with bounded memory and the same
 * arguments always give the same file. An MLP without bags, shared tables
 * or mod mapping is made here exactly as before (the same flags give the
 * same bytes); every other model comes from ctr/model_random.h.
 * --emb-dtype f16|int8 has the writer encode the tables as they stream
 * (the same file as ctrtool quantize of the f32 one, but for the
 * provenance), so a quantized model larger than memory needs no fp32
 * file first. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/model.h"
#include "ctr/model_random.h"
#include "ctr/model_stats.h"
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
    /* Architectures (version 2): */
    ctr_arch_t arch;
    hidden_arg_t bottom, deep, fmb;
    int no_bottom, dot_self, fmb_out_act, learned_res;
    ctr_dot_order_t dot_order;
    ctr_dcn_structure_t structure;
    uint64_t n_cross, rank, n_wukong, n_f, n_l, k, max_bag;
    ctr_fmb_ln_t fmb_ln;
    float ln_eps;
    const char *bags, *shared;
    ctr_pool_t pool;
    ctr_mapping_t mapping;
    ctr_table_dtype_t emb_dtype;
} synth_args_t;

static const ctr_opt_enum_t activations[] = {{"smelu", CTR_ACT_SMELU}, {"relu", CTR_ACT_RELU}, {NULL, 0}};
static const ctr_opt_enum_t archs[] = {{"mlp", CTR_ARCH_MLP}, {"dot", CTR_ARCH_DOT},
                                       {"dcnv2", CTR_ARCH_DCNV2}, {"wukong", CTR_ARCH_WUKONG}, {NULL, 0}};
static const ctr_opt_enum_t dot_orders[] = {{"lower", CTR_DOT_LOWER}, {"upper", CTR_DOT_UPPER}, {NULL, 0}};
static const ctr_opt_enum_t structures[] = {{"stacked", CTR_DCN_STACKED}, {"parallel", CTR_DCN_PARALLEL}, {NULL, 0}};
static const ctr_opt_enum_t fmb_lns[] = {{"none", CTR_FMB_LN_NONE}, {"flat", CTR_FMB_LN_FLAT}, {NULL, 0}};
static const ctr_opt_enum_t pools[] = {{"sum", CTR_POOL_SUM}, {"mean", CTR_POOL_MEAN}, {NULL, 0}};
/* --emb-dtype: ctr/model.h's table dtype names and aliases. */
static int parse_emb_dtype(const char *text, void *field, char *err, size_t errlen)
{
    int d = ctr_table_dtype_parse(text);
    if (d < 0)
        return ctr_error(err, errlen, CTR_EINVAL, "expected f32|f16|fp16|int8|int8_rowwise");
    *(ctr_table_dtype_t *)field = (ctr_table_dtype_t)d;
    return 0;
}

static const ctr_opt_enum_t mappings[] = {{"hash", CTR_MAP_HASH}, {"mod", CTR_MAP_MOD}, {NULL, 0}};

#define AT(m) CTR_OPT_AT(synth_args_t, m)

static const ctr_opt_t synth_rows[] = {
    {"out", NULL, CTR_OPT_STR, CTR_OPT_REQUIRED, AT(out), .metavar = "MODEL", .help = "the model file to write"},
    {"rows-per-table", NULL, CTR_OPT_UINT, CTR_OPT_REQUIRED, AT(rows), .min = 1, .max = UINT32_MAX - 1, .metavar = "N", .help = "rows of every embedding table"},
    {"dense", NULL, CTR_OPT_UINT, 0, AT(n_dense), .def = "13", .min = 0, .max = 4096, .metavar = "N", .help = "dense features I1..IN (log1p)"},
    {"categorical", NULL, CTR_OPT_UINT, 0, AT(n_cat), .def = "26", .min = 0, .max = 4096, .metavar = "N", .help = "categorical features C1..CN"},
    {"dim", NULL, CTR_OPT_UINT, 0, AT(dim), .def = "16", .min = 1, .max = 4096, .metavar = "N", .help = "embedding width"},
    {"hidden", NULL, CTR_OPT_CUSTOM, 0, AT(hidden), .def = "512,256", .parse = parse_hidden, .metavar = "W,W,...", .help = "hidden widths of the (top) MLP; '' = none"},
    {"activation", NULL, CTR_OPT_ENUM, 0, AT(act), .def = "smelu", .enums = activations, .metavar = "A", .help = "smelu|relu"},
    {"beta", NULL, CTR_OPT_DOUBLE, CTR_OPT_MIN_EXCL, AT(beta), .def = "1.0", .dmin = 0, .dmax = INFINITY, .metavar = "B", .help = "SmeLU beta"},
    {"seed", NULL, CTR_OPT_UINT, 0, AT(seed), .def = "1", .metavar = "S", .help = "the random values"},
    {"name", NULL, CTR_OPT_STR, 0, AT(name), .def = "synth", .metavar = "NAME", .help = "model name"},
    {"mapping", NULL, CTR_OPT_ENUM, 0, AT(mapping), .def = "hash", .enums = mappings, .metavar = "M", .help = "hash|mod: how values find their rows"},
    {"bag-features", NULL, CTR_OPT_STR, 0, AT(bags), .def = "", .metavar = "C1,C2:mean", .help = "bag features (pooled by --pool, or :sum / :mean)"},
    {"max-bag", NULL, CTR_OPT_UINT, 0, AT(max_bag), .def = "4", .min = 1, .max = CTR_MAX_BAG, .metavar = "N", .help = "values a bag holds at most"},
    {"pool", NULL, CTR_OPT_ENUM, 0, AT(pool), .def = "sum", .enums = pools, .metavar = "P", .help = "sum|mean: how a bag is pooled"},
    {"emb-dtype", NULL, CTR_OPT_CUSTOM, 0, AT(emb_dtype), .def = "f32", .parse = parse_emb_dtype, .metavar = "T", .help = "f32|f16|int8: how the tables are stored (encoded as streamed)"},
    {"shared", NULL, CTR_OPT_STR, 0, AT(shared), .def = "", .metavar = "C3=C1,...", .help = "features reading an earlier feature's table"},
    {NULL, NULL, CTR_OPT_HEADING, 0, 0, .help = "Architecture (--hidden is the top MLP's widths):"},
    {"arch", NULL, CTR_OPT_ENUM, 0, AT(arch), .def = "mlp", .enums = archs, .metavar = "A", .help = "mlp|dot|dcnv2|wukong"},
    {"bottom", NULL, CTR_OPT_CUSTOM, 0, AT(bottom), .def = "512,256", .parse = parse_hidden, .metavar = "W,W,...", .help = "dense MLP hidden widths (dot, dcnv2, wukong; a last layer of --dim is added)"},
    {"no-bottom", NULL, CTR_OPT_BOOL, 0, AT(no_bottom), .help = "dcnv2: raw dense values in x_0, no dense MLP"},
    {"dot-order", NULL, CTR_OPT_ENUM, 0, AT(dot_order), .def = "lower", .enums = dot_orders, .metavar = "O", .help = "dot: lower (DLRM) | upper (TorchRec) pair order"},
    {"dot-self", NULL, CTR_OPT_BOOL, 0, AT(dot_self), .help = "dot: include each embedding with itself"},
    {"structure", NULL, CTR_OPT_ENUM, 0, AT(structure), .def = "stacked", .enums = structures, .metavar = "S", .help = "dcnv2: stacked|parallel"},
    {"cross", NULL, CTR_OPT_UINT, 0, AT(n_cross), .def = "3", .max = 64, .metavar = "N", .help = "dcnv2: cross layers"},
    {"rank", NULL, CTR_OPT_UINT, 0, AT(rank), .def = "0", .max = 65536, .metavar = "R", .help = "dcnv2: low rank (0: full W)"},
    {"deep", NULL, CTR_OPT_CUSTOM, 0, AT(deep), .def = "512,256", .parse = parse_hidden, .metavar = "W,W,...", .help = "dcnv2 parallel: the deep MLP's widths"},
    {"layers", NULL, CTR_OPT_UINT, 0, AT(n_wukong), .def = "2", .max = 64, .metavar = "N", .help = "wukong: layers"},
    {"nf", NULL, CTR_OPT_UINT, 0, AT(n_f), .def = "8", .max = 4096, .metavar = "N", .help = "wukong: FMB embeddings a layer"},
    {"nl", NULL, CTR_OPT_UINT, 0, AT(n_l), .def = "8", .max = 4096, .metavar = "N", .help = "wukong: LCB embeddings a layer"},
    {"k", NULL, CTR_OPT_UINT, 0, AT(k), .def = "24", .min = 1, .max = 4096, .metavar = "N", .help = "wukong: columns of Y (the FM's rank)"},
    {"fmb", NULL, CTR_OPT_CUSTOM, 0, AT(fmb), .def = "512,512", .parse = parse_hidden, .metavar = "W,W,...", .help = "wukong: FMB MLP hidden widths (a last layer of nf x dim is added)"},
    {"fmb-ln", NULL, CTR_OPT_ENUM, 0, AT(fmb_ln), .def = "none", .enums = fmb_lns, .metavar = "L", .help = "wukong: none|flat LayerNorm before the FMB MLP"},
    {"fmb-out-act", NULL, CTR_OPT_BOOL, 0, AT(fmb_out_act), .help = "wukong: activation after the FMB MLP's last layer"},
    {"learned-res", NULL, CTR_OPT_BOOL, 0, AT(learned_res), .help = "wukong: a learned residual even where the identity fits"},
    {"ln-eps", NULL, CTR_OPT_DOUBLE, CTR_OPT_MIN_EXCL, AT(ln_eps), .def = "1e-5", .dmin = 0, .dmax = 1, .metavar = "E", .help = "wukong: LayerNorm epsilon"},
};

static const ctr_opts_t synth_spec = {
    synth_rows, CTR_ARRAY_LEN(synth_rows),
    "usage: ctrtool synth --out MODEL --rows-per-table N [options]\n",
    "Table size: categorical x (rows+1) x dim x 4 bytes; rows may be\n"
    "large enough that the file exceeds RAM (it is streamed).\n",
};

static void copy_widths(ctr_widths_t *to, const hidden_arg_t *from)
{
    to->n = from->n;
    memcpy(to->w, from->w, from->n * sizeof(uint32_t));
}

/* Every model but the plain MLP: ctr/model_random.h builds it, tables
 * streamed by ctr_model_random_fill. */
static int synth_v2(const synth_args_t *a)
{
    ctr_model_random_opts_t o;
    ctr_model_random_defaults(&o, a->arch);
    o.name = a->name;
    o.n_dense = a->n_dense;
    o.n_cat = a->n_cat;
    o.d = (uint32_t)a->dim;
    o.rows = (uint32_t)a->rows;
    o.mapping = a->mapping;
    o.act = a->act;
    o.beta = a->beta;
    copy_widths(&o.top, &a->hidden);
    copy_widths(&o.bottom, &a->bottom);
    o.no_bottom = a->no_bottom;
    o.dot_order = a->dot_order;
    o.dot_self = a->dot_self;
    o.dcn_structure = a->structure;
    o.n_cross = a->n_cross;
    o.rank = (uint32_t)a->rank;
    copy_widths(&o.deep, &a->deep);
    o.n_wukong = a->n_wukong;
    o.n_f = (uint32_t)a->n_f;
    o.n_l = (uint32_t)a->n_l;
    o.k = (uint32_t)a->k;
    copy_widths(&o.fmb, &a->fmb);
    o.fmb_ln = a->fmb_ln;
    o.fmb_out_act = a->fmb_out_act;
    o.learned_res = a->learned_res;
    o.ln_eps = a->ln_eps;
    o.bag_features = a->bags;
    o.max_bag = (uint32_t)a->max_bag;
    o.pool = a->pool;
    o.shared = a->shared;
    o.no_tables = 1;
    o.seed = a->seed;
    char err[512];
    ctr_model_random_t *m = NULL;
    if (ctr_model_random_new(&o, &m, err, sizeof err)) {
        fprintf(stderr, "ctrtool synth: %s\n", err);
        return 2;
    }
    char prov[320];
    snprintf(prov, sizeof(prov),
             "{\"tool\":\"ctrtool synth\",\"seed\":%llu,\"rows_per_table\":%llu,\"arch\":\"%s\"}",
             (unsigned long long)a->seed, (unsigned long long)a->rows, ctr_arch_name(a->arch));
    ctr_model_def_t def = *ctr_model_random_def(m);
    def.provenance_json = prov;
    ctr_cat_def_t *cat = calloc(def.n_cat + 1, sizeof(*cat));
    if (!cat) {
        fprintf(stderr, "ctrtool synth: out of memory\n");
        ctr_model_random_free(m);
        return 1;
    }
    memcpy(cat, def.cat, def.n_cat * sizeof(*cat));
    for (size_t j = 0; j < def.n_cat; j++)
        cat[j].dtype = a->emb_dtype;  /* sharers carry their owner's, as the writer requires */
    def.cat = cat;
    ctr_model_stats_t st;
    ctr_model_stats(&def, &st);
    int status = 1;
    if (ctr_model_write(a->out, &def, ctr_model_random_fill, m, err, sizeof(err))) {
        fprintf(stderr, "ctrtool synth: %s: %s\n", a->out, err);
    } else {
        printf("wrote %s: %s, %llu dense, %llu categorical x %llu rows x %llu dim, %zu slots, "
               "%.3gM parameters + %.3gM in tables, %.3g MFLOP/example\n",
               a->out, ctr_arch_name(a->arch), (unsigned long long)a->n_dense,
               (unsigned long long)a->n_cat, (unsigned long long)a->rows + 1,
               (unsigned long long)a->dim, ctr_model_slots(&def), (double)st.params / 1e6,
               (double)st.emb_params / 1e6, (double)st.flops / 1e6);
        status = 0;
    }
    free(cat);
    ctr_model_random_free(m);
    return status;
}

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
    if (a.arch != CTR_ARCH_MLP || *a.bags || *a.shared || a.mapping != CTR_MAP_HASH)
        return synth_v2(&a);
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
                                 .dim = (uint32_t)dim, .seed = ctr_splitmix64(seed + j),
                                 .dtype = a.emb_dtype};
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
        layers[l] = (ctr_layer_def_t){in, o, w, b, 0};
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
