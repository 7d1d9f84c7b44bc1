/* cmd_train.c - ctrtool train: a model from a data file (ctr_train_run).
 *
 * The flags land straight in ctr_train_opts_t where the types fit; the
 * comma lists (--hidden, --bottom, --deep, --buckets, --transform,
 * --dense, --categorical) and the repeatable --bag COL:SEP:MAX are parsed
 * here and copied or pointed at from it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/data.h"
#include "ctr/model.h"
#include "ctr/opts.h"
#include "ctr/train.h"
#include "ctrtool_int.h"

#define MAX_LIST 1024

typedef struct {
    size_t n;
    uint32_t v[MAX_LIST];
} u32_list_t;

typedef struct {
    size_t n;
    ctr_transform_t v[MAX_LIST];
} transform_list_t;

#define MAX_BAGS 256

/* --bag COL:SEP:MAX, once per bag column; the names live in text. */
typedef struct {
    size_t n;
    ctr_data_bag_t v[MAX_BAGS];
    char text[MAX_BAGS][128];
} bag_list_t;

typedef struct {
    ctr_train_opts_t o;
    bag_list_t bags;
    const char *out;
    const char *dense, *categorical;  /* comma lists of column names; "" = none */
    u32_list_t hidden, buckets, bottom, deep, fmb;
    transform_list_t transforms;
    int quiet;
} train_args_t;

/* Up to max comma-separated integers in lo..hi; "" is the empty list. */
static int u32_list(const char *text, u32_list_t *l, size_t max, uint64_t lo, uint64_t hi,
                    char *err, size_t errlen)
{
    l->n = 0;
    if (!*text)
        return 0;
    for (const char *p = text;; p++) {
        char item[32];
        size_t len = strcspn(p, ",");
        uint64_t v;
        if (l->n == max)
            return ctr_error(err, errlen, CTR_ERANGE, "expected at most %zu values", max);
        if (len >= sizeof item)
            return ctr_error(err, errlen, CTR_EINVAL, "expected a comma-separated list of integers in %llu..%llu",
                             (unsigned long long)lo, (unsigned long long)hi);
        memcpy(item, p, len);
        item[len] = 0;
        if (ctr_opts_parse_u64(item, &v) || v < lo || v > hi)
            return ctr_error(err, errlen, CTR_EINVAL, "expected a comma-separated list of integers in %llu..%llu",
                             (unsigned long long)lo, (unsigned long long)hi);
        l->v[l->n++] = (uint32_t)v;
        p += len;
        if (!*p)
            return 0;
    }
}

static int parse_hidden(const char *text, void *field, char *err, size_t errlen)
{
    if (!strcmp(text, "none"))
        text = "";
    return u32_list(text, field, CTR_TRAIN_MAX_HIDDEN, 1, 65536, err, errlen);
}

static int parse_buckets(const char *text, void *field, char *err, size_t errlen)
{
    return u32_list(text, field, MAX_LIST, 1, 1u << 30, err, errlen);
}

static const ctr_opt_enum_t transforms[] = {
    {"identity", CTR_TRANSFORM_IDENTITY}, {"log1p", CTR_TRANSFORM_LOG1P},
    {"standardize", CTR_TRANSFORM_STANDARDIZE}, {NULL, 0}};

static int parse_transforms(const char *text, void *field, char *err, size_t errlen)
{
    transform_list_t *l = field;
    l->n = 0;
    if (!*text)
        return 0;
    for (const char *p = text;; p++) {
        size_t len = strcspn(p, ",");
        const ctr_opt_enum_t *t = transforms;
        while (t->name && (strlen(t->name) != len || strncmp(t->name, p, len)))
            t++;
        if (!t->name)
            return ctr_error(err, errlen, CTR_EINVAL, "expected a list of identity|log1p|standardize");
        if (l->n == MAX_LIST)
            return ctr_error(err, errlen, CTR_ERANGE, "expected at most %d values", MAX_LIST);
        l->v[l->n++] = (ctr_transform_t)t->value;
        p += len;
        if (!*p)
            return 0;
    }
}

/* COL:SEP:MAX, read from the right so that a column name may hold ':'. */
static int parse_bag(const char *text, void *field, char *err, size_t errlen)
{
    bag_list_t *l = field;
    const char *c = strrchr(text, ':');
    uint64_t max;
    if (!c || c - text < 3 || c[-2] != ':' || ctr_opts_parse_u64(c + 1, &max) || max < 1 ||
        max > CTR_MAX_BAG)
        return ctr_error(err, errlen, CTR_EINVAL,
                         "expected COL:SEP:MAX (a column, one separator character, 1..%d values)",
                         CTR_MAX_BAG);
    size_t len = (size_t)(c - 2 - text);
    if (l->n == MAX_BAGS)
        return ctr_error(err, errlen, CTR_ERANGE, "at most %d bag columns", MAX_BAGS);
    if (len >= sizeof l->text[0])
        return ctr_error(err, errlen, CTR_EINVAL, "column name too long");
    memcpy(l->text[l->n], text, len);
    l->text[l->n][len] = '\0';
    l->v[l->n] = (ctr_data_bag_t){l->text[l->n], c[-1], (uint32_t)max};
    l->n++;
    return 0;
}

/* --emb-dtype: the table dtype names of ctr/model.h, with their aliases. */
static int parse_emb_dtype(const char *text, void *field, char *err, size_t errlen)
{
    int d = ctr_table_dtype_parse(text);
    if (d < 0)
        return ctr_error(err, errlen, CTR_EINVAL, "expected f32|f16|fp16|int8|int8_rowwise");
    *(ctr_table_dtype_t *)field = (ctr_table_dtype_t)d;
    return 0;
}

static const ctr_opt_enum_t pools[] = {{"sum", CTR_POOL_SUM}, {"mean", CTR_POOL_MEAN}, {NULL, 0}};
static const ctr_opt_enum_t activations[] = {{"smelu", CTR_ACT_SMELU}, {"relu", CTR_ACT_RELU}, {NULL, 0}};
static const ctr_opt_enum_t optimizers[] = {{"adam", CTR_OPTIM_ADAM}, {"adagrad", CTR_OPTIM_ADAGRAD}, {NULL, 0}};
static const ctr_opt_enum_t decays[] = {{"linear", 1}, {"none", 0}, {NULL, 0}};
/* The architectures ctrtool train builds (ctrtool synth's names). */
static const ctr_opt_enum_t archs[] = {{"mlp", CTR_ARCH_MLP}, {"dot", CTR_ARCH_DOT}, {"dcnv2", CTR_ARCH_DCNV2}, {"wukong", CTR_ARCH_WUKONG}, {NULL, 0}};
static const ctr_opt_enum_t fmb_lns[] = {{"none", CTR_FMB_LN_NONE}, {"flat", CTR_FMB_LN_FLAT}, {NULL, 0}};
static const ctr_opt_enum_t dot_orders[] = {{"lower", CTR_DOT_LOWER}, {"upper", CTR_DOT_UPPER}, {NULL, 0}};
static const ctr_opt_enum_t structures[] = {{"stacked", CTR_DCN_STACKED}, {"parallel", CTR_DCN_PARALLEL}, {NULL, 0}};

#define AT(m) CTR_OPT_AT(train_args_t, m)
#define H(text) {.type = CTR_OPT_HEADING, .help = text}

static const ctr_opt_t train_rows[] = {
    H("data:"),
    {"data", NULL, CTR_OPT_STR, CTR_OPT_REQUIRED, AT(o.data_path), .metavar = "FILE", .help = "training rows (.gz/.xz read as is)"},
    {"out", NULL, CTR_OPT_STR, CTR_OPT_REQUIRED, AT(out), .metavar = "MODEL.ctrm", .help = "the model file to write"},
    {"format", NULL, CTR_OPT_ENUM, 0, AT(o.data.format), .enums = ctr__tool_formats, .help = "criteo: label, I1..I13, C1..C26, tab-separated"},
    {"label", NULL, CTR_OPT_STR, 0, AT(o.data.label), .metavar = "COL", .help = "label column (csv) [label]"},
    {"dense", NULL, CTR_OPT_STR, 0, AT(dense), .metavar = "C,..", .help = "dense columns (csv; criteo: a subset of I1..I13)"},
    {"categorical", NULL, CTR_OPT_STR, 0, AT(categorical), .metavar = "C,..", .help = "categorical columns (csv; criteo: a subset of C1..C26)"},
    {"delimiter", NULL, CTR_OPT_CUSTOM, 0, AT(o.data.delimiter), .parse = ctr__tool_parse_delim, .metavar = "C", .help = "csv field separator, 'tab' for a tab [,]"},
    {"bag", NULL, CTR_OPT_CUSTOM, 0, AT(bags), .parse = parse_bag, .metavar = "COL:SEP:MAX", .help = "categorical column COL holds up to MAX values separated by SEP (repeatable)"},
    {"skip-bad", NULL, CTR_OPT_BOOL, 0, AT(o.skip_bad), .help = "count and skip malformed rows (default: stop)"},
    {"valid-frac", NULL, CTR_OPT_DOUBLE, 0, AT(o.valid_frac), .metavar = "F", .help = "rows held out for validation"},
    {"split-seed", NULL, CTR_OPT_UINT, 0, AT(o.split_seed), .metavar = "S", .help = "which rows are held out"},
    H("model:"),
    {"activation", NULL, CTR_OPT_ENUM, 0, AT(o.activation), .enums = activations, .help = "hidden activation"},
    {"beta", NULL, CTR_OPT_DOUBLE, 0, AT(o.beta), .metavar = "B", .help = "SmeLU half-width"},
    {"hidden", NULL, CTR_OPT_CUSTOM, 0, AT(hidden), .parse = parse_hidden, .metavar = "W,W,..", .help = "hidden widths; '' or none = logistic regression [512,256]"},
    {"dim", NULL, CTR_OPT_UINT, 0, AT(o.dim), .min = 0, .max = 1024, .metavar = "D", .help = "embedding width (1 for logistic regression)"},
    {"buckets", NULL, CTR_OPT_CUSTOM, 0, AT(buckets), .parse = parse_buckets, .metavar = "N[,N..]", .help = "hash buckets per table, one or one per feature [65536]"},
    {"transform", NULL, CTR_OPT_CUSTOM, 0, AT(transforms), .parse = parse_transforms, .metavar = "T[,T..]", .help = "identity|log1p|standardize [criteo: log1p, csv: standardize]"},
    {"hash-seed", NULL, CTR_OPT_UINT, 0, AT(o.hash_seed), .metavar = "S", .help = "categorical hash seed; table j uses S + j"},
    {"pool", NULL, CTR_OPT_ENUM, 0, AT(o.pool), .enums = pools, .help = "how every bag feature pools its rows"},
    {"name", NULL, CTR_OPT_STR, 0, AT(o.name), .metavar = "NAME", .help = "model name"},
    {"emb-dtype", NULL, CTR_OPT_CUSTOM, 0, AT(o.emb_dtype), .parse = parse_emb_dtype, .metavar = "T",
     .help = "f32|f16|int8: how the written model stores its tables (training is fp32;\n"
             "the final metrics are the written model's, the fp32 ones beside them) [f32]"},
    H("architecture (with dot, dcnv2 or wukong, --hidden is the top MLP's widths):"),
    {"arch", NULL, CTR_OPT_ENUM, 0, AT(o.arch), .enums = archs, .help = "the architecture: an MLP, DLRM's dot interaction, DCNv2, Wukong"},
    {"bottom", NULL, CTR_OPT_CUSTOM, 0, AT(bottom), .parse = parse_hidden, .metavar = "W,W,..", .help = "dense MLP hidden widths (dot, dcnv2, wukong; a last layer of --dim is added) [64]"},
    {"no-bottom", NULL, CTR_OPT_BOOL, 0, AT(o.no_bottom), .help = "dcnv2: raw dense values in x_0, no dense MLP"},
    {"dot-order", NULL, CTR_OPT_ENUM, 0, AT(o.dot_order), .enums = dot_orders, .help = "dot: lower (DLRM) | upper (TorchRec) pair order"},
    {"dot-self", NULL, CTR_OPT_BOOL, 0, AT(o.dot_self), .help = "dot: include each embedding with itself"},
    {"structure", NULL, CTR_OPT_ENUM, 0, AT(o.dcn_structure), .enums = structures, .help = "dcnv2: the top MLP over x_L, or over [x_L; deep(x_0)]"},
    {"cross", NULL, CTR_OPT_UINT, 0, AT(o.n_cross), .min = 0, .max = 64, .metavar = "N", .help = "dcnv2: cross layers"},
    {"rank", NULL, CTR_OPT_UINT, 0, AT(o.rank), .min = 0, .max = 65536, .metavar = "R", .help = "dcnv2: low rank (0: full W)"},
    {"deep", NULL, CTR_OPT_CUSTOM, 0, AT(deep), .parse = parse_hidden, .metavar = "W,W,..", .help = "dcnv2 parallel: the deep MLP's widths [256,128]"},
    {"layers", NULL, CTR_OPT_UINT, 0, AT(o.n_wukong), .min = 0, .max = 64, .metavar = "N", .help = "wukong: layers"},
    {"nf", NULL, CTR_OPT_UINT, 0, AT(o.n_f), .min = 1, .max = 4096, .metavar = "N", .help = "wukong: FMB embeddings a layer"},
    {"nl", NULL, CTR_OPT_UINT, 0, AT(o.n_l), .min = 1, .max = 4096, .metavar = "N", .help = "wukong: LCB embeddings a layer"},
    {"k", NULL, CTR_OPT_UINT, 0, AT(o.k), .min = 1, .max = 4096, .metavar = "N", .help = "wukong: columns of Y (the FM's rank)"},
    {"fmb", NULL, CTR_OPT_CUSTOM, 0, AT(fmb), .parse = parse_hidden, .metavar = "W,W,..", .help = "wukong: FMB MLP hidden widths (a last layer of nf x dim is added) [256]"},
    {"fmb-ln", NULL, CTR_OPT_ENUM, 0, AT(o.fmb_ln), .enums = fmb_lns, .metavar = "L", .help = "wukong: none|flat LayerNorm before the FMB MLP"},
    {"fmb-out-act", NULL, CTR_OPT_BOOL, 0, AT(o.fmb_out_act), .help = "wukong: activation after the FMB MLP's last layer"},
    {"ln-eps", NULL, CTR_OPT_DOUBLE, CTR_OPT_MIN_EXCL, AT(o.ln_eps), .dmin = 0, .dmax = 1, .metavar = "E", .help = "wukong: LayerNorm epsilon"},
    H("optimisation:"),
    {"epochs", NULL, CTR_OPT_UINT, 0, AT(o.epochs), .min = 0, .max = 100000, .metavar = "N", .help = "passes over the training rows"},
    {"batch", NULL, CTR_OPT_UINT, 0, AT(o.batch), .min = 0, .max = 65536, .metavar = "N", .help = "examples per step"},
    {"seed", NULL, CTR_OPT_UINT, 0, AT(o.seed), .metavar = "S", .help = "initialisation and shuffle order"},
    {"init-seed", NULL, CTR_OPT_UINT, 0, AT(o.init_seed), .metavar = "S", .help = "initialisation of weights and tables (not given: --seed)"},
    {"order-seed", NULL, CTR_OPT_UINT, 0, AT(o.order_seed), .metavar = "S", .help = "the shuffle order of every epoch (not given: --seed)"},
    {"threads", NULL, CTR_OPT_UINT, 0, AT(o.threads), .min = 0, .max = 256, .metavar = "N", .help = "0 = online CPUs"},
    {"optimizer", NULL, CTR_OPT_ENUM, 0, AT(o.optimizer), .enums = optimizers, .help = "for the MLP"},
    {"lr", NULL, CTR_OPT_DOUBLE, 0, AT(o.lr), .metavar = "X", .help = "MLP learning rate"},
    {"emb-lr", NULL, CTR_OPT_DOUBLE, 0, AT(o.emb_lr), .metavar = "X", .help = "row-wise Adagrad rate for the embedding tables"},
    {"emb-l2", NULL, CTR_OPT_DOUBLE, 0, AT(o.emb_l2), .metavar = "X", .help = "L2 on embedding rows"},
    {"emb-init", NULL, CTR_OPT_DOUBLE, 0, AT(o.emb_init), .metavar = "X", .help = "embedding rows start uniform in [-X, X]"},
    {"lr-decay", NULL, CTR_OPT_ENUM, 0, AT(o.lr_decay), .enums = decays, .help = "linear: both rates fall linearly to 0 over the run"},
    {"progress", NULL, CTR_OPT_BOOL, 0, AT(o.progress), .help = "progress line on stderr even when it is not a terminal"},
    {"quiet", NULL, CTR_OPT_BOOL, 0, AT(quiet), .help = "nothing on stderr but errors"},
};

static const ctr_opts_t train_spec = {
    train_rows, CTR_ARRAY_LEN(train_rows),
    "usage: ctrtool train --data FILE --out MODEL.ctrm [options]\n",
    NULL,
};

/* A comma list split into items; "" is the empty list. */
typedef struct {
    size_t n;
    char **v;
    char *buf;
} list_t;

static void list_free(list_t *l)
{
    free(l->v);
    free(l->buf);
    memset(l, 0, sizeof(*l));
}

static int split_list(const char *s, list_t *l)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    l->n = 0;
    l->v = malloc(cap * sizeof(char *));
    l->buf = strdup(s);
    if (!l->v || !l->buf)
        return CTR_ENOMEM;
    if (!*s)
        return 0;
    for (char *p = l->buf;;) {
        char *c = strchr(p, ',');
        l->v[l->n++] = p;
        if (!c)
            break;
        *c = '\0';
        p = c + 1;
    }
    return 0;
}

int ctr__cmd_train(int argc, char **argv)
{
    train_args_t *a = calloc(1, sizeof *a);
    if (!a) {
        fprintf(stderr, "ctrtool train: out of memory\n");
        return 1;
    }
    ctr_train_opts_init(&a->o);
    a->o.log = stderr;
    ctr_opts_result_t res;
    int rc = ctr__tool_args("train", &train_spec, a, sizeof *a, argc, argv, &res);
    if (rc >= 0) {
        free(a);
        return rc;
    }
    ctr_train_opts_t *o = &a->o;
    list_t dense = {0}, cat = {0};
    int have_dense = ctr_opts_from(&res, "dense") == CTR_OPT_FROM_FLAG;
    int have_cat = ctr_opts_from(&res, "categorical") == CTR_OPT_FROM_FLAG;
    if (o->data.format == CTR_DATA_CSV && !have_dense && !have_cat) {
        fprintf(stderr, "ctrtool train: --format csv needs --dense and/or --categorical columns\n");
        free(a);
        return 2;
    }
    rc = 1;
    /* Criteo without a list: every I / C column; an explicit "" = none. */
    if (have_dense) {
        if (split_list(a->dense, &dense))
            goto oom;
        o->data.n_dense = dense.n;
        o->data.dense = (const char *const *)dense.v;
    }
    if (have_cat) {
        if (split_list(a->categorical, &cat))
            goto oom;
        o->data.n_cat = cat.n;
        o->data.cat = (const char *const *)cat.v;
    }
    if (ctr_opts_from(&res, "hidden") == CTR_OPT_FROM_FLAG) {
        o->n_hidden = a->hidden.n;
        memcpy(o->hidden, a->hidden.v, a->hidden.n * sizeof *a->hidden.v);
    }
    if (ctr_opts_from(&res, "buckets") == CTR_OPT_FROM_FLAG) {
        o->n_buckets = a->buckets.n;
        o->buckets = a->buckets.v;
    }
    if (ctr_opts_from(&res, "transform") == CTR_OPT_FROM_FLAG) {
        o->n_transforms = a->transforms.n;
        o->transforms = a->transforms.v;
    }
    if (ctr_opts_from(&res, "bottom") == CTR_OPT_FROM_FLAG) {
        o->n_bottom = a->bottom.n;
        memcpy(o->bottom, a->bottom.v, a->bottom.n * sizeof *a->bottom.v);
    }
    if (ctr_opts_from(&res, "deep") == CTR_OPT_FROM_FLAG) {
        o->n_deep = a->deep.n;
        memcpy(o->deep, a->deep.v, a->deep.n * sizeof *a->deep.v);
    }
    if (ctr_opts_from(&res, "fmb") == CTR_OPT_FROM_FLAG) {
        o->n_fmb = a->fmb.n;
        memcpy(o->fmb, a->fmb.v, a->fmb.n * sizeof *a->fmb.v);
    }
    o->has_init_seed = ctr_opts_from(&res, "init-seed") == CTR_OPT_FROM_FLAG;
    o->has_order_seed = ctr_opts_from(&res, "order-seed") == CTR_OPT_FROM_FLAG;
    o->data.n_bags = a->bags.n;
    o->data.bags = a->bags.v;
    if (ctr_opts_from(&res, "dim") != CTR_OPT_FROM_FLAG && o->n_hidden == 0 && o->arch == CTR_ARCH_MLP)
        o->dim = 1;
    if (a->quiet)
        o->log = NULL;
    char err[512];
    ctr_train_report_t rep;
    if (ctr_train_run(o, a->out, &rep, err, sizeof(err)))
        fprintf(stderr, "ctrtool train: %s\n", err);
    else
        rc = 0;
    goto out;
oom:
    fprintf(stderr, "ctrtool train: out of memory\n");
out:
    list_free(&dense);
    list_free(&cat);
    free(a);
    return rc;
}
