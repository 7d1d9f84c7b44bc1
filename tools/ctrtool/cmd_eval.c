/* cmd_eval.c - ctrtool eval, pd and score: a data set scored with a model.
 *
 * Offline scores go through ctr_forward with a kernel from
 * ctr_kernel_select, exactly as the server scores a request, so a score
 * printed here equals the served one bit for bit. The data's format, label
 * and delimiter default to those the model was trained with (its
 * provenance), then Criteo TSV. */
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
#include "ctr/opts.h"
#include "ctr/score.h"
#include "ctrtool_int.h"

/* ---- reading data for a model ---- */

/* Data-format flags shared by eval, pd and score. */
typedef struct {
    int format;                   /* ctr_data_format_t; -1: the model's */
    const char *label;            /* NULL: the model's */
    char delimiter;               /* 0: the model's */
    int skip_bad;
    ctr_kernel_id_t kernel;
    unsigned threads;
} fmt_args_t;

#define FMT_ARGS_INIT {.format = -1}

/* Their rows, for a settings struct T with a fmt_args_t f. */
#define FMT_ROWS(T)                                                                                     \
    {"format", NULL, CTR_OPT_ENUM, 0, CTR_OPT_AT(T, f.format), .enums = ctr__tool_formats,             \
     .help = "data format [the model's, else criteo]"},                                                 \
    {"label", NULL, CTR_OPT_STR, 0, CTR_OPT_AT(T, f.label), .metavar = "COL",                          \
     .help = "label column (csv) [the model's]"},                                                       \
    {"delimiter", NULL, CTR_OPT_CUSTOM, 0, CTR_OPT_AT(T, f.delimiter), .parse = ctr__tool_parse_delim,  \
     .metavar = "C", .help = "csv field separator, 'tab' for a tab [the model's, else ',']"},          \
    {"skip-bad", NULL, CTR_OPT_BOOL, 0, CTR_OPT_AT(T, f.skip_bad),                                      \
     .help = "count and skip malformed rows (default: stop)"},                                          \
    {"kernel", NULL, CTR_OPT_ENUM, 0, CTR_OPT_AT(T, f.kernel), .def = "auto", .enums = ctr_kernel_choices, \
     .metavar = "K", .help = "auto|scalar|avx2|avx512|blas"}

/* The format and label a model was trained with, from its provenance, as
 * defaults for reading evaluation data. */
static void defaults_from_model(const ctr_model_def_t *def, int *fmt, char *label, size_t ll, char *delim)
{
    *fmt = CTR_DATA_CRITEO;
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
        *fmt = ctr_data_parse_format(f);
    if (l)
        snprintf(label, ll, "%s", l);
    if (d && strlen(d) == 1 && d[0] != '"' && d[0] != '\n' && d[0] != '\r')
        *delim = d[0];
    json_decref(root);
}

/* Reading options for data scored by a model: flags first, then what the
 * model's provenance says it was trained on, then Criteo TSV. */
static void data_opts(const fmt_args_t *f, const ctr_model_def_t *def, ctr_data_opts_t *o,
                      char *label_buf, size_t ll)
{
    char delim;
    int fmt;
    memset(o, 0, sizeof(*o));
    defaults_from_model(def, &fmt, label_buf, ll, &delim);
    if (f->format >= 0)
        fmt = f->format;
    o->format = (ctr_data_format_t)fmt;
    o->label = f->label ? f->label : (fmt == CTR_DATA_CSV ? label_buf : NULL);
    o->delimiter = f->delimiter ? f->delimiter : delim;
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
    char label_buf[256], err[512];
    data_opts(f, def, &o, label_buf, sizeof label_buf);
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

/* ---- eval ---- */

typedef struct {
    const char *model, *data;
    int json;
    fmt_args_t f;
} eval_args_t;

static const ctr_opt_t eval_rows[] = {
    {"model", NULL, CTR_OPT_STR, CTR_OPT_REQUIRED, CTR_OPT_AT(eval_args_t, model), .metavar = "M", .help = "model file (.ctrm)"},
    {"data", NULL, CTR_OPT_STR, CTR_OPT_REQUIRED, CTR_OPT_AT(eval_args_t, data), .metavar = "FILE", .help = "labelled rows (- = stdin)"},
    {"json", NULL, CTR_OPT_BOOL, 0, CTR_OPT_AT(eval_args_t, json), .help = "one JSON object instead of the table"},
    FMT_ROWS(eval_args_t),
    {"threads", NULL, CTR_OPT_UINT, 0, CTR_OPT_AT(eval_args_t, f.threads), .min = 0, .max = 256, .metavar = "N", .help = "scoring threads; 0 = online CPUs (the scores do not depend on it)"},
};

static const ctr_opts_t eval_spec = {
    eval_rows, CTR_ARRAY_LEN(eval_rows),
    "usage: ctrtool eval --model M --data FILE [--json] [options]\n"
    "Prints N, AUC, logloss, mean prediction against the positive rate.\n"
    "Format and label default to those the model was trained with.\n\n",
    NULL,
};

int ctr__cmd_eval(int argc, char **argv)
{
    eval_args_t a = {.f = FMT_ARGS_INIT};
    ctr_opts_result_t res;
    int st = ctr__tool_args("eval", &eval_spec, &a, sizeof a, argc, argv, &res);
    if (st >= 0)
        return st;
    ctr_model_t *m;
    if (open_model("eval", a.model, &m))
        return 1;
    const ctr_model_def_t *def = ctr_model_def(m);
    const ctr_kernel_t *k = ctr__tool_kernel("eval", a.f.kernel);
    ctr_dataset_t ds;
    float *sc = NULL;
    int rc = k ? load_and_score("eval", def, k, a.data, &a.f, 0, &ds, &sc) : 1;
    if (rc) {
        ctr_model_close(m);
        return rc;
    }
    ctr_metrics_t mt;
    if (ctr_metrics_compute(sc, ds.labels, ds.n, &mt)) {
        fprintf(stderr, "ctrtool eval: out of memory\n");
        rc = 1;
    } else if (a.json) {
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
        printf("model       %s (%s)\n", a.model, ctr_model_digest(m));
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

typedef struct {
    const char *model_v[2];
    ctr_opt_list_t models;
    const char *data;
    int json;
    fmt_args_t f;
} pd_args_t;

static const ctr_opt_t pd_rows[] = {
    {"model", NULL, CTR_OPT_LIST, CTR_OPT_REQUIRED, CTR_OPT_AT(pd_args_t, models), .min = 2, .metavar = "M", .help = "twice: model A, then model B"},
    {"data", NULL, CTR_OPT_STR, CTR_OPT_REQUIRED, CTR_OPT_AT(pd_args_t, data), .metavar = "FILE", .help = "rows to score, labelled or not (- = stdin)"},
    {"json", NULL, CTR_OPT_BOOL, 0, CTR_OPT_AT(pd_args_t, json), .help = "one JSON object instead of the table"},
    FMT_ROWS(pd_args_t),
    {"threads", NULL, CTR_OPT_UINT, 0, CTR_OPT_AT(pd_args_t, f.threads), .min = 0, .max = 256, .metavar = "N", .help = "scoring threads; 0 = online CPUs (the scores do not depend on it)"},
};

static const ctr_opts_t pd_spec = {
    pd_rows, CTR_ARRAY_LEN(pd_rows),
    "usage: ctrtool pd --model A --model B --data FILE [--json] [options]\n"
    "Relative prediction difference (1/N) sum 2|a-b|/(a+b), the fraction of\n"
    "examples whose side of 0.5 flips, and each model's AUC (labelled data).\n\n",
    NULL,
};

int ctr__cmd_pd(int argc, char **argv)
{
    pd_args_t a = {.f = FMT_ARGS_INIT};
    a.models = (ctr_opt_list_t){a.model_v, 0, 2};
    ctr_opts_result_t res;
    int st = ctr__tool_args("pd", &pd_spec, &a, sizeof a, argc, argv, &res);
    if (st >= 0)
        return st;
    const char *const *models = a.models.v;
    ctr_model_t *m[2] = {NULL, NULL};
    ctr_dataset_t ds[2];
    float *sc[2] = {NULL, NULL};
    int loaded = 0, rc = 1;
    const ctr_kernel_t *k = ctr__tool_kernel("pd", a.f.kernel);
    if (!k)
        return 1;
    for (int i = 0; i < 2; i++) {
        if (open_model("pd", models[i], &m[i]))
            goto out;
        if ((rc = load_and_score("pd", ctr_model_def(m[i]), k, a.data, &a.f, 1, &ds[i], &sc[i])))
            goto out;
        loaded++;
        rc = 1;
    }
    if (ds[0].n != ds[1].n) {
        fprintf(stderr, "ctrtool pd: the models read %zu and %zu rows of %s (different bad rows "
                        "under --skip-bad?)\n", ds[0].n, ds[1].n, a.data);
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
    if (a.json) {
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

typedef struct {
    const char *model, *data, *out;
    fmt_args_t f;
} score_args_t;

static const ctr_opt_t score_rows[] = {
    {"model", NULL, CTR_OPT_STR, CTR_OPT_REQUIRED, CTR_OPT_AT(score_args_t, model), .metavar = "M", .help = "model file (.ctrm)"},
    {"data", NULL, CTR_OPT_STR, CTR_OPT_REQUIRED, CTR_OPT_AT(score_args_t, data), .metavar = "FILE|-", .help = "rows to score (- = stdin); no label needed"},
    {"out", NULL, CTR_OPT_STR, 0, CTR_OPT_AT(score_args_t, out), .metavar = "FILE", .help = "where the scores go [stdout]"},
    FMT_ROWS(score_args_t),
    /* accepted as eval and pd do; scoring here runs on one thread */
    {"threads", NULL, CTR_OPT_UINT, CTR_OPT_HIDDEN, CTR_OPT_AT(score_args_t, f.threads), .min = 0, .max = 256, .metavar = "N"},
};

static const ctr_opts_t score_spec = {
    score_rows, CTR_ARRAY_LEN(score_rows),
    "usage: ctrtool score --model M --data FILE|- [--out FILE] [options]\n"
    "One score per input row (%.9g: parses back to the same float32), computed\n"
    "like the server does. Rows need no label. With --skip-bad a bad row\n"
    "prints 'nan', so output lines stay aligned with input rows.\n\n",
    NULL,
};

int ctr__cmd_score(int argc, char **argv)
{
    score_args_t a = {.f = FMT_ARGS_INIT};
    ctr_opts_result_t res;
    int st = ctr__tool_args("score", &score_spec, &a, sizeof a, argc, argv, &res);
    if (st >= 0)
        return st;
    ctr_model_t *m;
    if (open_model("score", a.model, &m))
        return 1;
    const ctr_model_def_t *def = ctr_model_def(m);
    const ctr_kernel_t *k = ctr__tool_kernel("score", a.f.kernel);
    ctr_data_opts_t o;
    char label_buf[256], err[512];
    const char **names = calloc(def->n_dense + def->n_cat + 1, sizeof(char *));
    float *dense = malloc((def->n_dense + 1) * SCORE_CHUNK * sizeof(float));
    size_t slots = ctr_model_slots(def); /* row slots per example (features.h) */
    uint32_t *rows = malloc((slots + 1) * SCORE_CHUNK * sizeof(uint32_t));
    float *sc = malloc(SCORE_CHUNK * sizeof(float));
    uint8_t *bad = malloc(SCORE_CHUNK);
    ctr_scratch_t *scr = NULL;
    ctr_scratch_new(def, SCORE_CHUNK, &scr, NULL, 0);  /* NULL on failure, checked below */
    ctr_data_reader_t *r = NULL;
    FILE *fo = NULL;
    uint64_t n_bad = 0, n_rows = 0;
    int rc = 1;
    if (!k)
        goto out;
    if (!names || !dense || !rows || !sc || !bad || !scr) {
        fprintf(stderr, "ctrtool score: out of memory\n");
        goto out;
    }
    data_opts(&a.f, def, &o, label_buf, sizeof label_buf);
    o.label_optional = 1;
    ctr_data_opts_for_model(&o, def, names);
    if (ctr_data_open(a.data, &o, &r, err, sizeof(err))) {
        fprintf(stderr, "ctrtool score: %s\n", err);
        goto out;
    }
    fo = a.out ? fopen(a.out, "w") : stdout;
    if (!fo) {
        fprintf(stderr, "ctrtool score: %s: %s\n", a.out, strerror(errno));
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
            if (x == CTR_EFORMAT && a.f.skip_bad) {
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
            /* Good rows are packed; bad[] keeps the output order. A value
             * the feature's mapping refuses (`mod`, not hex) makes a bad
             * row too. */
            if (ctr_data_encode_row(def, row, dense + good * def->n_dense, rows + good * slots,
                                    err, sizeof(err))) {
                if (!a.f.skip_bad) {
                    fprintf(stderr, "ctrtool score: %s: %s\n", a.data, err);
                    goto out;
                }
                if (n_bad < 10)
                    fprintf(stderr, "skipped: %s: %s\n", a.data, err);
                n_bad++;
                bad[n++] = 1;
                continue;
            }
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
        fprintf(stderr, "ctrtool score: %s: %s\n", a.out, strerror(errno));
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
