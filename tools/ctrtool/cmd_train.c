/* cmd_train.c - ctrtool train, eval, pd, score and gen-data.
 *
 * Offline scores go through ctr_forward with a kernel from
 * ctr_kernel_select, exactly as the server scores a request, so a score
 * printed here equals the served one bit for bit. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/data.h"
#include "ctr/forward.h"
#include "ctr/kernels.h"
#include "ctr/metrics.h"
#include "ctr/model.h"
#include "ctr/score.h"
#include "ctr/train.h"
#include "ctrtool_int.h"

/* ---- option parsing: --name VALUE or --name=VALUE ---- */

typedef struct {
    int argc, i;
    char **argv;
    const char *cmd;
    const char *name;  /* the option just matched */
    const char *val;
} args_t;

/* Returns 1 if argv[i] is --name (with its value in a->val when has_val). */
static int opt(args_t *a, const char *name, int has_val)
{
    const char *s = a->argv[a->i];
    size_t n = strlen(name);
    if (strncmp(s, name, n))
        return 0;
    a->name = name;
    if (s[n] == '=' && has_val) {
        a->val = s + n + 1;
        return 1;
    }
    if (s[n] != '\0')
        return 0;
    if (!has_val)
        return 1;
    if (a->i + 1 >= a->argc) {
        fprintf(stderr, "ctrtool %s: %s needs a value\n", a->cmd, name);
        exit(2);
    }
    a->val = a->argv[++a->i];
    return 1;
}

static void bad_value(const args_t *a, const char *what)
{
    fprintf(stderr, "ctrtool %s: %s: '%s' is not %s\n", a->cmd, a->name, a->val, what);
    exit(2);
}

static uint64_t num_u64(const args_t *a, uint64_t max)
{
    char *e;
    errno = 0;
    unsigned long long v = strtoull(a->val, &e, 10);
    if (!*a->val || *e || errno || a->val[0] == '-' || v > max)
        bad_value(a, "a valid non-negative integer");
    return v;
}

static double num_f(const args_t *a)
{
    char *e;
    double v = strtod(a->val, &e);
    if (!*a->val || *e || !isfinite(v))
        bad_value(a, "a number");
    return v;
}

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

static void split_list(const char *s, list_t *l)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    list_free(l);
    l->v = malloc(cap * sizeof(char *));
    l->buf = strdup(s);
    if (!l->v || !l->buf) {
        fprintf(stderr, "ctrtool: out of memory\n");
        exit(1);
    }
    if (!*s)
        return;
    for (char *p = l->buf;;) {
        char *c = strchr(p, ',');
        l->v[l->n++] = p;
        if (!c)
            break;
        *c = '\0';
        p = c + 1;
    }
}

static size_t u32_list(const args_t *a, uint32_t *dst, size_t max, uint32_t lo, uint32_t hi)
{
    list_t l = {0};
    split_list(a->val, &l);
    if (l.n > max)
        bad_value(a, "a list of acceptable length");
    for (size_t i = 0; i < l.n; i++) {
        char *e;
        errno = 0;
        unsigned long x = strtoul(l.v[i], &e, 10);
        if (!*l.v[i] || *e || errno || l.v[i][0] == '-' || x < lo || x > hi)
            bad_value(a, "a comma-separated list of integers in range");
        dst[i] = (uint32_t)x;
    }
    size_t n = l.n;
    list_free(&l);
    return n;
}

static const ctr_kernel_t *pick_kernel(const char *cmd, const char *name)
{
    int id = ctr_kernel_parse(name ? name : "auto");
    if (id < 0) {
        fprintf(stderr, "ctrtool %s: unknown kernel '%s' (auto|scalar|avx2|avx512|blas)\n", cmd, name);
        exit(2);
    }
    char err[256];
    const ctr_kernel_t *k = ctr_kernel_select((ctr_kernel_id_t)id, err, sizeof(err));
    if (!k)
        fprintf(stderr, "ctrtool %s: %s\n", cmd, err);
    return k;
}

/* Data-format options shared by eval, pd and score. */
typedef struct {
    const char *format, *label, *delimiter;
    int skip_bad;
    const char *kernel;
    unsigned threads;
} fmt_args_t;

static int fmt_opt(args_t *a, fmt_args_t *f)
{
    if (opt(a, "--format", 1))
        f->format = a->val;
    else if (opt(a, "--label", 1))
        f->label = a->val;
    else if (opt(a, "--delimiter", 1))
        f->delimiter = a->val;
    else if (opt(a, "--skip-bad", 0))
        f->skip_bad = 1;
    else if (opt(a, "--kernel", 1))
        f->kernel = a->val;
    else if (opt(a, "--threads", 1))
        f->threads = (unsigned)num_u64(a, 256);
    else
        return 0;
    return 1;
}

static char parse_delim(const char *cmd, const char *s)
{
    if (!s)
        return 0;
    if (!strcmp(s, "tab") || !strcmp(s, "\\t"))
        return '\t';
    if (strlen(s) != 1 || s[0] == '"' || s[0] == '\n' || s[0] == '\r') {
        fprintf(stderr, "ctrtool %s: --delimiter must be one character (or 'tab')\n", cmd);
        exit(2);
    }
    return s[0];
}

/* The format and label a model was trained with, from its provenance, as
 * defaults for reading evaluation data. */
static void defaults_from_model(const ctr_model_def_t *def, char *fmt, size_t fl, char *label,
                                size_t ll, char *delim)
{
    snprintf(fmt, fl, "criteo");
    snprintf(label, ll, "label");
    *delim = 0;
    if (!def->provenance_json)
        return;
    json_t *root = json_loads(def->provenance_json, 0, NULL);
    json_t *data = root ? json_object_get(root, "data") : NULL;
    const char *f = data ? json_string_value(json_object_get(data, "format")) : NULL;
    const char *l = data ? json_string_value(json_object_get(data, "label")) : NULL;
    const char *d = data ? json_string_value(json_object_get(data, "delimiter")) : NULL;
    if (f && ctr_data_parse_format(f) >= 0)
        snprintf(fmt, fl, "%s", f);
    if (l)
        snprintf(label, ll, "%s", l);
    if (d && strlen(d) == 1 && d[0] != '"' && d[0] != '\n' && d[0] != '\r')
        *delim = d[0];
    json_decref(root);
}

/* Reading options for data scored by a model: flags first, then what the
 * model's provenance says it was trained on, then Criteo TSV. */
static int data_opts(const char *cmd, const fmt_args_t *f, const ctr_model_def_t *def,
                     ctr_data_opts_t *o, char *fmt_buf, char *label_buf)
{
    char delim;
    memset(o, 0, sizeof(*o));
    defaults_from_model(def, fmt_buf, 16, label_buf, 256, &delim);
    const char *fs = f->format ? f->format : fmt_buf;
    int fmt = ctr_data_parse_format(fs);
    if (fmt < 0) {
        fprintf(stderr, "ctrtool %s: unknown format '%s' (criteo|csv)\n", cmd, fs);
        return 2;
    }
    o->format = (ctr_data_format_t)fmt;
    o->label = f->label ? f->label : (fmt == CTR_DATA_CSV ? label_buf : NULL);
    o->delimiter = f->delimiter ? parse_delim(cmd, f->delimiter) : delim;
    return 0;
}

static int open_model(const char *cmd, const char *path, ctr_model_t **m)
{
    char err[512];
    if (ctr_model_open(path, m, err, sizeof(err))) {
        fprintf(stderr, "ctrtool %s: %s\n", cmd, err);
        return 1;
    }
    return 0;
}

/* Loads data for a model and scores it. On success the caller frees
 * *scores and ds. */
static int load_and_score(const char *cmd, const ctr_model_def_t *def, const ctr_kernel_t *k,
                          const char *data, const fmt_args_t *f, int label_optional,
                          ctr_dataset_t *ds, float **scores)
{
    ctr_data_opts_t o;
    char fmt_buf[16], label_buf[256], err[512];
    int rc = data_opts(cmd, f, def, &o, fmt_buf, label_buf);
    if (rc)
        return rc;
    o.label_optional = label_optional;
    if (ctr_dataset_load_for_model(data, &o, def, f->skip_bad, stderr, ds, err, sizeof(err))) {
        fprintf(stderr, "ctrtool %s: %s\n", cmd, err);
        return 1;
    }
    *scores = malloc((ds->n ? ds->n : 1) * sizeof(float));
    if (!*scores || ctr_score_dataset(def, k, ds->n, ds->dense, ds->rows, *scores, f->threads)) {
        fprintf(stderr, "ctrtool %s: scoring failed\n", cmd);
        free(*scores);
        ctr_dataset_free(ds);
        return 1;
    }
    return 0;
}

/* ---- train ---- */

static void train_usage(FILE *f)
{
    fprintf(f,
        "usage: ctrtool train --data FILE --out MODEL.ctrm [options]\n"
        "data:\n"
        "  --format criteo|csv        criteo (default): label, I1..I13, C1..C26, tab-separated\n"
        "  --label COL --dense C,.. --categorical C,..   columns (csv; criteo: subsets)\n"
        "  --delimiter C              csv field separator (default ',')\n"
        "  --skip-bad                 count and skip malformed rows (default: stop)\n"
        "  --valid-frac F             rows held out for validation (0.1)\n"
        "  --split-seed S             which rows are held out (1)\n"
        "model:\n"
        "  --activation smelu|relu    hidden activation (smelu)\n"
        "  --beta B                   SmeLU half-width (1.0)\n"
        "  --hidden W,W,..            hidden widths (512,256); '' or none = logistic regression\n"
        "  --dim D                    embedding width (16; 1 for logistic regression)\n"
        "  --buckets N[,N..]          hash buckets per table, one or one per feature (65536)\n"
        "  --transform T[,T..]        identity|log1p|standardize (criteo: log1p, csv: standardize)\n"
        "  --hash-seed S              categorical hash seed (0; table j uses S + j)\n"
        "  --name NAME                model name (ctr)\n"
        "optimisation:\n"
        "  --epochs N (1)  --batch N (256)  --seed S (1)  --threads N (online CPUs)\n"
        "  --optimizer adam|adagrad   for the MLP (adam), --lr (0.001)\n"
        "  --emb-lr (0.1) --emb-l2 (0)    row-wise Adagrad for the embedding tables\n"
        "  --emb-init X               embedding rows start uniform in [-X, X] (0.05)\n"
        "  --lr-decay linear|none     both rates fall linearly to 0 over the run (linear)\n"
        "  --progress                 progress line on stderr even when it is not a terminal\n"
        "  --quiet                    nothing on stderr but errors\n");
}

int ctr__cmd_train(int argc, char **argv)
{
    ctr_train_opts_t o;
    ctr_train_opts_init(&o);
    o.log = stderr;
    args_t a = {argc, 1, argv, "train", NULL, NULL};
    const char *out = NULL, *label = NULL;
    list_t dense = {0}, cat = {0};
    int have_dense = 0, have_cat = 0, have_dim = 0, quiet = 0;
    uint32_t buckets[1024];
    ctr_transform_t transforms[1024];
    const char *fmt = NULL, *delim = NULL;
    for (; a.i < argc; a.i++) {
        if (opt(&a, "--help", 0) || opt(&a, "-h", 0)) {
            train_usage(stdout);
            return 0;
        } else if (opt(&a, "--data", 1)) {
            o.data_path = a.val;
        } else if (opt(&a, "--out", 1)) {
            out = a.val;
        } else if (opt(&a, "--format", 1)) {
            fmt = a.val;
        } else if (opt(&a, "--label", 1)) {
            label = a.val;
        } else if (opt(&a, "--dense", 1)) {
            split_list(a.val, &dense);
            have_dense = 1;
        } else if (opt(&a, "--categorical", 1)) {
            split_list(a.val, &cat);
            have_cat = 1;
        } else if (opt(&a, "--delimiter", 1)) {
            delim = a.val;
        } else if (opt(&a, "--skip-bad", 0)) {
            o.skip_bad = 1;
        } else if (opt(&a, "--valid-frac", 1)) {
            o.valid_frac = num_f(&a);
        } else if (opt(&a, "--split-seed", 1)) {
            o.split_seed = num_u64(&a, UINT64_MAX);
        } else if (opt(&a, "--activation", 1)) {
            if (!strcmp(a.val, "smelu"))
                o.activation = CTR_ACT_SMELU;
            else if (!strcmp(a.val, "relu"))
                o.activation = CTR_ACT_RELU;
            else
                bad_value(&a, "smelu or relu");
        } else if (opt(&a, "--beta", 1)) {
            o.beta = num_f(&a);
        } else if (opt(&a, "--hidden", 1)) {
            if (!*a.val || !strcmp(a.val, "none"))
                o.n_hidden = 0;
            else
                o.n_hidden = u32_list(&a, o.hidden, CTR_TRAIN_MAX_HIDDEN, 1, 65536);
        } else if (opt(&a, "--dim", 1)) {
            o.dim = (uint32_t)num_u64(&a, 1024);
            have_dim = 1;
        } else if (opt(&a, "--buckets", 1)) {
            o.n_buckets = u32_list(&a, buckets, CTR_ARRAY_LEN(buckets), 1, 1u << 30);
            o.buckets = buckets;
        } else if (opt(&a, "--transform", 1)) {
            list_t l = {0};
            split_list(a.val, &l);
            if (l.n > CTR_ARRAY_LEN(transforms))
                bad_value(&a, "a list of acceptable length");
            for (size_t i = 0; i < l.n; i++) {
                if (!strcmp(l.v[i], "identity"))
                    transforms[i] = CTR_TRANSFORM_IDENTITY;
                else if (!strcmp(l.v[i], "log1p"))
                    transforms[i] = CTR_TRANSFORM_LOG1P;
                else if (!strcmp(l.v[i], "standardize"))
                    transforms[i] = CTR_TRANSFORM_STANDARDIZE;
                else
                    bad_value(&a, "a list of identity|log1p|standardize");
            }
            o.n_transforms = l.n;
            list_free(&l);
            o.transforms = transforms;
        } else if (opt(&a, "--hash-seed", 1)) {
            o.hash_seed = num_u64(&a, UINT64_MAX);
        } else if (opt(&a, "--name", 1)) {
            o.name = a.val;
        } else if (opt(&a, "--epochs", 1)) {
            o.epochs = (unsigned)num_u64(&a, 100000);
        } else if (opt(&a, "--batch", 1)) {
            o.batch = (size_t)num_u64(&a, 65536);
        } else if (opt(&a, "--seed", 1)) {
            o.seed = num_u64(&a, UINT64_MAX);
        } else if (opt(&a, "--threads", 1)) {
            o.threads = (unsigned)num_u64(&a, 256);
        } else if (opt(&a, "--optimizer", 1)) {
            if (!strcmp(a.val, "adam"))
                o.optimizer = CTR_OPT_ADAM;
            else if (!strcmp(a.val, "adagrad"))
                o.optimizer = CTR_OPT_ADAGRAD;
            else
                bad_value(&a, "adam or adagrad");
        } else if (opt(&a, "--lr", 1)) {
            o.lr = num_f(&a);
        } else if (opt(&a, "--emb-lr", 1)) {
            o.emb_lr = num_f(&a);
        } else if (opt(&a, "--emb-l2", 1)) {
            o.emb_l2 = num_f(&a);
        } else if (opt(&a, "--lr-decay", 1)) {
            if (!strcmp(a.val, "linear"))
                o.lr_decay = 1;
            else if (!strcmp(a.val, "none"))
                o.lr_decay = 0;
            else
                bad_value(&a, "linear or none");
        } else if (opt(&a, "--emb-init", 1)) {
            o.emb_init = num_f(&a);
        } else if (opt(&a, "--progress", 0)) {
            o.progress = 1;
        } else if (opt(&a, "--quiet", 0)) {
            quiet = 1;
        } else {
            fprintf(stderr, "ctrtool train: unknown option '%s'\n", argv[a.i]);
            train_usage(stderr);
            return 2;
        }
    }
    if (!o.data_path || !out) {
        fprintf(stderr, "ctrtool train: --data and --out are required\n");
        train_usage(stderr);
        return 2;
    }
    if (fmt) {
        int f = ctr_data_parse_format(fmt);
        if (f < 0) {
            fprintf(stderr, "ctrtool train: unknown format '%s' (criteo|csv)\n", fmt);
            return 2;
        }
        o.data.format = (ctr_data_format_t)f;
    }
    o.data.label = label;
    o.data.delimiter = parse_delim("train", delim);
    if (o.data.format == CTR_DATA_CSV && !have_dense && !have_cat) {
        fprintf(stderr, "ctrtool train: --format csv needs --dense and/or --categorical columns\n");
        return 2;
    }
    /* Criteo without a list: every I / C column; an explicit "" = none. */
    if (have_dense) {
        o.data.n_dense = dense.n;
        o.data.dense = (const char *const *)dense.v;
    }
    if (have_cat) {
        o.data.n_cat = cat.n;
        o.data.cat = (const char *const *)cat.v;
    }
    if (!have_dim && o.n_hidden == 0)
        o.dim = 1;
    if (quiet)
        o.log = NULL;
    char err[512];
    ctr_train_report_t rep;
    int rc = ctr_train_run(&o, out, &rep, err, sizeof(err));
    list_free(&dense);
    list_free(&cat);
    if (rc) {
        fprintf(stderr, "ctrtool train: %s\n", err);
        return 1;
    }
    return 0;
}

/* ---- eval ---- */

int ctr__cmd_eval(int argc, char **argv)
{
    args_t a = {argc, 1, argv, "eval", NULL, NULL};
    const char *model = NULL, *data = NULL;
    fmt_args_t f = {0};
    int json = 0;
    for (; a.i < argc; a.i++) {
        if (opt(&a, "--help", 0) || opt(&a, "-h", 0)) {
            printf("usage: ctrtool eval --model M --data FILE [--json] [--format criteo|csv]\n"
                   "       [--label COL] [--delimiter C] [--skip-bad] [--kernel K] [--threads N]\n"
                   "Prints N, AUC, logloss, mean prediction against the positive rate.\n"
                   "Format and label default to those the model was trained with.\n");
            return 0;
        } else if (opt(&a, "--model", 1)) {
            model = a.val;
        } else if (opt(&a, "--data", 1)) {
            data = a.val;
        } else if (opt(&a, "--json", 0)) {
            json = 1;
        } else if (!fmt_opt(&a, &f)) {
            fprintf(stderr, "ctrtool eval: unknown option '%s'\n", argv[a.i]);
            return 2;
        }
    }
    if (!model || !data) {
        fprintf(stderr, "usage: ctrtool eval --model M --data FILE [--json] ...\n");
        return 2;
    }
    ctr_model_t *m;
    if (open_model("eval", model, &m))
        return 1;
    const ctr_model_def_t *def = ctr_model_def(m);
    const ctr_kernel_t *k = pick_kernel("eval", f.kernel);
    ctr_dataset_t ds;
    float *sc = NULL;
    int rc = k ? load_and_score("eval", def, k, data, &f, 0, &ds, &sc) : 1;
    if (rc) {
        ctr_model_close(m);
        return rc;
    }
    ctr_metrics_t mt;
    if (ctr_metrics_compute(sc, ds.labels, ds.n, &mt)) {
        fprintf(stderr, "ctrtool eval: out of memory\n");
        rc = 1;
    } else if (json) {
        json_t *j = json_object();
        json_object_set_new(j, "model", json_string(ctr_model_digest(m)));
        json_object_set_new(j, "kernel", json_string(k->name));
        json_object_set_new(j, "n", json_integer((json_int_t)mt.n));
        json_object_set_new(j, "bad_rows_skipped", json_integer((json_int_t)ds.bad_rows));
        json_object_set_new(j, "positives", json_integer((json_int_t)mt.positives));
        json_object_set_new(j, "auc", isnan(mt.auc) ? json_null() : json_real(mt.auc));
        json_object_set_new(j, "logloss", isnan(mt.logloss) ? json_null() : json_real(mt.logloss));
        json_object_set_new(j, "mean_pred", isnan(mt.mean_pred) ? json_null() : json_real(mt.mean_pred));
        json_object_set_new(j, "pos_rate", isnan(mt.pos_rate) ? json_null() : json_real(mt.pos_rate));
        char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(10));
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(j);
    } else {
        printf("model       %s (%s)\n", model, ctr_model_digest(m));
        printf("rows        %zu (%zu positive)%s\n", mt.n, mt.positives,
               ds.bad_rows ? " after skipping bad rows" : "");
        printf("AUC         %.6f\n", mt.auc);
        printf("logloss     %.6f\n", mt.logloss);
        printf("mean pred   %.6f  vs positive rate %.6f (ratio %.4f)\n", mt.mean_pred, mt.pos_rate,
               mt.mean_pred / mt.pos_rate);
    }
    free(sc);
    ctr_dataset_free(&ds);
    ctr_model_close(m);
    return rc;
}

/* ---- pd ---- */

int ctr__cmd_pd(int argc, char **argv)
{
    args_t a = {argc, 1, argv, "pd", NULL, NULL};
    const char *models[2] = {NULL, NULL}, *data = NULL;
    size_t n_models = 0;
    fmt_args_t f = {0};
    int json = 0;
    for (; a.i < argc; a.i++) {
        if (opt(&a, "--help", 0) || opt(&a, "-h", 0)) {
            printf("usage: ctrtool pd --model A --model B --data FILE [--json] [--format ...]\n"
                   "       [--label COL] [--delimiter C] [--skip-bad] [--kernel K] [--threads N]\n"
                   "Relative prediction difference (1/N) sum 2|a-b|/(a+b), the fraction of\n"
                   "examples whose side of 0.5 flips, and each model's AUC (labelled data).\n");
            return 0;
        } else if (opt(&a, "--model", 1)) {
            if (n_models == 2) {
                fprintf(stderr, "ctrtool pd: exactly two --model\n");
                return 2;
            }
            models[n_models++] = a.val;
        } else if (opt(&a, "--data", 1)) {
            data = a.val;
        } else if (opt(&a, "--json", 0)) {
            json = 1;
        } else if (!fmt_opt(&a, &f)) {
            fprintf(stderr, "ctrtool pd: unknown option '%s'\n", argv[a.i]);
            return 2;
        }
    }
    if (n_models != 2 || !data) {
        fprintf(stderr, "usage: ctrtool pd --model A --model B --data FILE [--json] ...\n");
        return 2;
    }
    ctr_model_t *m[2] = {NULL, NULL};
    ctr_dataset_t ds[2];
    float *sc[2] = {NULL, NULL};
    int loaded = 0, rc = 1;
    const ctr_kernel_t *k = pick_kernel("pd", f.kernel);
    if (!k)
        return 1;
    for (int i = 0; i < 2; i++) {
        if (open_model("pd", models[i], &m[i]))
            goto out;
        if ((rc = load_and_score("pd", ctr_model_def(m[i]), k, data, &f, 1, &ds[i], &sc[i])))
            goto out;
        loaded++;
        rc = 1;
    }
    if (ds[0].n != ds[1].n) {
        fprintf(stderr, "ctrtool pd: the models read %zu and %zu rows of %s (different bad rows "
                        "under --skip-bad?)\n", ds[0].n, ds[1].n, data);
        goto out;
    }
    size_t n = ds[0].n;
    int labelled = n > 0;
    for (size_t i = 0; i < n; i++)
        labelled &= ds[0].labels[i] != CTR_DATASET_NO_LABEL;
    double pd = ctr_metrics_pd(sc[0], sc[1], n), flip = ctr_metrics_flip_rate(sc[0], sc[1], n);
    double auc[2] = {NAN, NAN};
    if (labelled)
        for (int i = 0; i < 2; i++)
            auc[i] = ctr_metrics_auc(sc[i], ds[0].labels, n);
    if (json) {
        json_t *j = json_object();
        json_object_set_new(j, "n", json_integer((json_int_t)n));
        json_object_set_new(j, "pd", isnan(pd) ? json_null() : json_real(pd));
        json_object_set_new(j, "flip_rate", isnan(flip) ? json_null() : json_real(flip));
        json_t *arr = json_array();
        for (int i = 0; i < 2; i++) {
            json_t *o = json_object();
            json_object_set_new(o, "path", json_string(models[i]));
            json_object_set_new(o, "digest", json_string(ctr_model_digest(m[i])));
            json_object_set_new(o, "auc", isnan(auc[i]) ? json_null() : json_real(auc[i]));
            json_array_append_new(arr, o);
        }
        json_object_set_new(j, "models", arr);
        char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(10));
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(j);
    } else {
        printf("rows        %zu\n", n);
        printf("PD          %.6g   (relative prediction difference)\n", pd);
        printf("flip rate   %.6g   (side of 0.5 differs)\n", flip);
        for (int i = 0; i < 2; i++)
            printf("AUC %c       %.6f   %s\n", 'A' + i, auc[i], models[i]);
    }
    rc = 0;
out:
    for (int i = 0; i < 2; i++) {
        if (i < loaded) {
            free(sc[i]);
            ctr_dataset_free(&ds[i]);
        }
        ctr_model_close(m[i]);
    }
    return rc;
}

/* ---- score ---- */

#define SCORE_CHUNK 1024

int ctr__cmd_score(int argc, char **argv)
{
    args_t a = {argc, 1, argv, "score", NULL, NULL};
    const char *model = NULL, *data = NULL, *out = NULL;
    fmt_args_t f = {0};
    for (; a.i < argc; a.i++) {
        if (opt(&a, "--help", 0) || opt(&a, "-h", 0)) {
            printf("usage: ctrtool score --model M --data FILE|- [--out FILE] [--kernel K]\n"
                   "       [--format criteo|csv] [--label COL] [--delimiter C] [--skip-bad]\n"
                   "One score per input row (%%.9g: parses back to the same float32), computed\n"
                   "like the server does. Rows need no label. With --skip-bad a bad row\n"
                   "prints 'nan', so output lines stay aligned with input rows.\n");
            return 0;
        } else if (opt(&a, "--model", 1)) {
            model = a.val;
        } else if (opt(&a, "--data", 1)) {
            data = a.val;
        } else if (opt(&a, "--out", 1)) {
            out = a.val;
        } else if (!fmt_opt(&a, &f)) {
            fprintf(stderr, "ctrtool score: unknown option '%s'\n", argv[a.i]);
            return 2;
        }
    }
    if (!model || !data) {
        fprintf(stderr, "usage: ctrtool score --model M --data FILE [--out FILE] [--kernel K]\n");
        return 2;
    }
    ctr_model_t *m;
    if (open_model("score", model, &m))
        return 1;
    const ctr_model_def_t *def = ctr_model_def(m);
    const ctr_kernel_t *k = pick_kernel("score", f.kernel);
    ctr_data_opts_t o;
    char fmt_buf[16], label_buf[256], err[512];
    const char **names = calloc(def->n_dense + def->n_cat + 1, sizeof(char *));
    float *dense = malloc((def->n_dense + 1) * SCORE_CHUNK * sizeof(float));
    uint32_t *rows = malloc((def->n_cat + 1) * SCORE_CHUNK * sizeof(uint32_t));
    float *sc = malloc(SCORE_CHUNK * sizeof(float));
    uint8_t *bad = malloc(SCORE_CHUNK);
    ctr_scratch_t *scr;
    ctr_scratch_new(def, SCORE_CHUNK, &scr, NULL, 0);  /* NULL on failure, checked below */
    ctr_data_reader_t *r = NULL;
    FILE *fo = NULL;
    uint64_t n_bad = 0, n_rows = 0;
    int rc = 1;
    if (!k || data_opts("score", &f, def, &o, fmt_buf, label_buf))
        goto out;
    if (!names || !dense || !rows || !sc || !bad || !scr) {
        fprintf(stderr, "ctrtool score: out of memory\n");
        goto out;
    }
    o.label_optional = 1;
    ctr_data_opts_for_model(&o, def, names);
    if (ctr_data_open(data, &o, &r, err, sizeof(err))) {
        fprintf(stderr, "ctrtool score: %s\n", err);
        goto out;
    }
    fo = out ? fopen(out, "w") : stdout;
    if (!fo) {
        fprintf(stderr, "ctrtool score: %s: %s\n", out, strerror(errno));
        goto out;
    }
    for (int eof = 0; !eof;) {
        size_t n = 0, good = 0;
        while (n < SCORE_CHUNK) {
            const ctr_data_row_t *row;
            int x = ctr_data_next(r, &row, err, sizeof(err));
            if (x == 0) {
                eof = 1;
                break;
            }
            if (x == CTR_EFORMAT && f.skip_bad) {
                if (n_bad < 10)
                    fprintf(stderr, "skipped: %s\n", err);
                n_bad++;
                bad[n++] = 1;
                continue;
            }
            if (x < 0) {
                fprintf(stderr, "ctrtool score: %s\n", err);
                goto out;
            }
            /* Good rows are packed; bad[] keeps the output order. */
            ctr_data_encode_row(def, row, dense + good * def->n_dense, rows + good * def->n_cat);
            good++;
            bad[n++] = 0;
        }
        if (good && ctr_forward(def, k, good, dense, rows, sc, NULL, scr)) {
            fprintf(stderr, "ctrtool score: forward pass failed\n");
            goto out;
        }
        for (size_t i = 0, g = 0; i < n; i++) {
            if (bad[i])
                fputs("nan\n", fo);
            else
                fprintf(fo, "%.9g\n", sc[g++]);
        }
        n_rows += n;
    }
    if (fflush(fo) || ferror(fo)) {
        fprintf(stderr, "ctrtool score: write failed: %s\n", strerror(errno));
        goto out;
    }
    if (n_bad)
        fprintf(stderr, "ctrtool score: %llu of %llu rows were bad (printed as nan)\n",
                (unsigned long long)n_bad, (unsigned long long)n_rows);
    rc = 0;
out:
    if (fo && fo != stdout && fclose(fo) && !rc) {
        fprintf(stderr, "ctrtool score: %s: %s\n", out, strerror(errno));
        rc = 1;
    }
    ctr_data_close(r);
    ctr_scratch_free(scr);
    free(bad);
    free(sc);
    free(rows);
    free(dense);
    free(names);
    ctr_model_close(m);
    return rc;
}

/* ---- gen-data ---- */

int ctr__cmd_gen_data(int argc, char **argv)
{
    args_t a = {argc, 1, argv, "gen-data", NULL, NULL};
    ctr_gendata_opts_t o = {.rows = 0, .seed = 1, .model_seed = 1};
    const char *out = NULL;
    int have_rows = 0, json = 0;
    for (; a.i < argc; a.i++) {
        if (opt(&a, "--help", 0) || opt(&a, "-h", 0)) {
            printf("usage: ctrtool gen-data --rows N --out FILE|- [--seed S] [--model-seed M] [--json]\n"
                   "Synthetic Criteo-shaped TSV rows (label, I1..I13, C1..C26) drawn from a hidden\n"
                   "model fixed by --model-seed; --seed picks the rows (use another seed with the\n"
                   "same model seed for a test set). Reports the hidden model's own AUC on the rows.\n");
            return 0;
        } else if (opt(&a, "--rows", 1)) {
            o.rows = num_u64(&a, UINT64_C(1) << 40);
            have_rows = 1;
        } else if (opt(&a, "--seed", 1)) {
            o.seed = num_u64(&a, UINT64_MAX);
        } else if (opt(&a, "--model-seed", 1)) {
            o.model_seed = num_u64(&a, UINT64_MAX);
        } else if (opt(&a, "--out", 1)) {
            out = a.val;
        } else if (opt(&a, "--json", 0)) {
            json = 1;
        } else {
            fprintf(stderr, "ctrtool gen-data: unknown option '%s'\n", argv[a.i]);
            return 2;
        }
    }
    if (!have_rows || !out) {
        fprintf(stderr, "usage: ctrtool gen-data --rows N --out FILE|- [--seed S] [--model-seed M]\n");
        return 2;
    }
    int to_stdout = !strcmp(out, "-");
    char tmp[4096];
    if (!to_stdout && snprintf(tmp, sizeof(tmp), "%s.tmp", out) >= (int)sizeof(tmp)) {
        fprintf(stderr, "ctrtool gen-data: path too long\n");
        return 2;
    }
    FILE *f = to_stdout ? stdout : fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "ctrtool gen-data: %s: %s\n", tmp, strerror(errno));
        return 1;
    }
    char err[256];
    ctr_gendata_report_t rep;
    int rc = ctr_gendata_write(f, &o, &rep, err, sizeof(err));
    if (!rc && (fflush(f) || ferror(f)))
        rc = ctr_error(err, sizeof(err), CTR_EIO, "write failed: %s", strerror(errno));
    if (!to_stdout && fclose(f) && !rc)
        rc = ctr_error(err, sizeof(err), CTR_EIO, "close failed: %s", strerror(errno));
    if (!rc && !to_stdout && rename(tmp, out))
        rc = ctr_error(err, sizeof(err), CTR_EIO, "rename to %s: %s", out, strerror(errno));
    if (rc) {
        if (!to_stdout)
            remove(tmp);
        fprintf(stderr, "ctrtool gen-data: %s\n", err);
        return 1;
    }
    if (json)
        fprintf(stderr, "{\"rows\":%llu,\"positives\":%llu,\"generator_auc\":%.6f,\"generator_logloss\":%.6f}\n",
                (unsigned long long)rep.rows, (unsigned long long)rep.positives, rep.auc, rep.logloss);
    else
        fprintf(stderr, "gen-data: %llu rows to %s, positive rate %.4f; the hidden model's own "
                        "AUC %.4f, logloss %.4f (what a perfect learner could reach)\n",
                (unsigned long long)rep.rows, out, rep.rows ? (double)rep.positives / (double)rep.rows : 0.0,
                rep.auc, rep.logloss);
    return 0;
}
