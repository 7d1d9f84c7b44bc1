/* train.c - the training run (contract in train.h): load and split the
 * data, build the network (train_net.c), the epochs, the final evaluation
 * through the serving path (score.c), and the model file with its
 * provenance (tables quantized on request, and then evaluated as
 * written). */
#include "ctr/train.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctr/common.h"
#include "ctr/rng.h"
#include "ctr/sha256.h"
#include "quant.h"
#include "quant_encode.h"
#include "score_int.h"
#include "train_graph.h"
#include "train_int.h"

/* ---- random numbers: splitmix64 (rng.h), the same on every platform ---- */

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)ctr_splitmix64_next(s) * n) >> 64);
}

static void shuffle(uint32_t *idx, size_t n, uint64_t *s)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(s, i);
        uint32_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

/* ---- options ---- */

void ctr_train_opts_init(ctr_train_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->data.format = CTR_DATA_CRITEO;
    o->valid_frac = 0.1;
    o->split_seed = 1;
    o->name = "ctr";
    o->activation = CTR_ACT_SMELU;
    o->beta = 1.0;
    o->n_hidden = 2;
    o->hidden[0] = 512;
    o->hidden[1] = 256;
    o->dim = 16;
    o->epochs = 1;
    o->batch = 256;
    o->lr = 1e-3;
    o->emb_lr = 0.1;
    o->lr_decay = 1;
    o->emb_init = 0.05;
    o->optimizer = CTR_OPTIM_ADAM;
    o->seed = 1;
    o->n_bottom = 1;
    o->bottom[0] = 64;
    o->n_cross = 3;
    o->n_deep = 2;
    o->deep[0] = 256;
    o->deep[1] = 128;
    o->n_wukong = 2;
    o->n_f = o->n_l = 8;
    o->k = 24;
    o->n_fmb = 1;
    o->fmb[0] = 256;
    o->ln_eps = 1e-5;
    o->init_seed = o->order_seed = 1; /* used only with has_init_seed / has_order_seed */
}

static uint64_t init_seed(const ctr_train_opts_t *o)
{
    return o->has_init_seed ? o->init_seed : o->seed;
}

static uint64_t order_seed(const ctr_train_opts_t *o)
{
    return o->has_order_seed ? o->order_seed : o->seed;
}

/* ---- provenance: how the model was made, stored in its file ---- */

static json_t *metrics_json(const ctr_metrics_t *m)
{
    json_t *j = json_object();
    json_object_set_new(j, "n", json_integer((json_int_t)m->n));
    json_object_set_new(j, "auc", isnan(m->auc) ? json_null() : json_real(m->auc));
    json_object_set_new(j, "logloss", isnan(m->logloss) ? json_null() : json_real(m->logloss));
    json_object_set_new(j, "mean_pred", isnan(m->mean_pred) ? json_null() : json_real(m->mean_pred));
    json_object_set_new(j, "pos_rate", isnan(m->pos_rate) ? json_null() : json_real(m->pos_rate));
    return j;
}

static json_t *widths_json(size_t n, const uint32_t *w)
{
    json_t *a = json_array();
    for (size_t l = 0; l < n; l++)
        json_array_append_new(a, json_integer(w[l]));
    return a;
}

/* An interaction model's architecture and sizes (`hidden` is its top MLP). */
static void arch_provenance(const ctr_train_opts_t *o, json_t *h)
{
    json_object_set_new(h, "arch", json_string(ctr_arch_name(o->arch)));
    if (o->no_bottom)
        json_object_set_new(h, "no_bottom", json_true());
    else
        json_object_set_new(h, "bottom", widths_json(o->n_bottom, o->bottom));
    if (o->arch == CTR_ARCH_DOT) {
        json_object_set_new(h, "dot_order", json_string(o->dot_order == CTR_DOT_UPPER ? "upper" : "lower"));
        json_object_set_new(h, "dot_self", json_boolean(o->dot_self));
    } else if (o->arch == CTR_ARCH_DCNV2) {
        int par = o->dcn_structure == CTR_DCN_PARALLEL;
        json_object_set_new(h, "structure", json_string(par ? "parallel" : "stacked"));
        json_object_set_new(h, "cross", json_integer(o->n_cross));
        json_object_set_new(h, "rank", json_integer(o->rank));
        if (par)
            json_object_set_new(h, "deep", widths_json(o->n_deep, o->deep));
    } else if (o->arch == CTR_ARCH_WUKONG) {
        json_object_set_new(h, "layers", json_integer(o->n_wukong));
        json_object_set_new(h, "nf", json_integer(o->n_f));
        json_object_set_new(h, "nl", json_integer(o->n_l));
        json_object_set_new(h, "k", json_integer(o->k));
        json_object_set_new(h, "fmb", widths_json(o->n_fmb, o->fmb));
        json_object_set_new(h, "fmb_ln", json_string(o->fmb_ln == CTR_FMB_LN_FLAT ? "flat" : "none"));
        json_object_set_new(h, "fmb_out_act", json_boolean(o->fmb_out_act));
        json_object_set_new(h, "ln_eps", json_real(o->ln_eps));
    }
}

/* The provenance JSON (caller frees): the tool and version, the data
 * file's base name and SHA-256, the split, every hyperparameter, the final
 * metrics. No timings and no directory: the same run writes the same
 * bytes. NULL when out of memory. */
static char *provenance(const ctr_train_opts_t *o, const ctr_model_def_t *def,
                        const ctr_train_report_t *rep)
{
    json_t *root = json_object();
    json_object_set_new(root, "tool", json_string("ctrtool train"));
    json_object_set_new(root, "ctrd_version", json_string(CTR_VERSION));

    json_t *data = json_object();
    const char *base = strrchr(o->data_path, '/');
    json_object_set_new(data, "file", json_string(base ? base + 1 : o->data_path));
    json_object_set_new(data, "sha256", json_string(rep->data_sha256));
    json_object_set_new(data, "format", json_string(ctr_data_format_name(o->data.format)));
    json_object_set_new(data, "label", json_string(o->data.label ? o->data.label : "label"));
    if (o->data.format == CTR_DATA_CSV) {
        char d[2] = {o->data.delimiter ? o->data.delimiter : ',', '\0'};
        json_object_set_new(data, "delimiter", json_string(d));
    }
    json_object_set_new(data, "rows", json_integer((json_int_t)rep->rows));
    json_object_set_new(data, "bad_rows_skipped", json_integer((json_int_t)rep->bad_rows));
    json_object_set_new(data, "valid_frac", json_real(o->valid_frac));
    json_object_set_new(data, "split_seed", json_integer((json_int_t)o->split_seed));
    json_object_set_new(data, "train_rows", json_integer((json_int_t)rep->n_train));
    json_object_set_new(data, "valid_rows", json_integer((json_int_t)rep->n_valid));
    if (o->data.n_bags) {
        /* Read back by ctr_data_opts_for_model: how to split the bags. */
        json_t *bags = json_array();
        for (size_t i = 0; i < o->data.n_bags; i++) {
            const ctr_data_bag_t *b = &o->data.bags[i];
            char sep[2] = {b->sep, '\0'};
            json_t *jb = json_object();
            json_object_set_new(jb, "column", json_string(b->column));
            json_object_set_new(jb, "sep", json_string(sep));
            json_object_set_new(jb, "max", json_integer(b->max));
            json_array_append_new(bags, jb);
        }
        json_object_set_new(data, "bags", bags);
    }
    json_object_set_new(root, "data", data);
    json_object_set_new(root, "seed", json_integer((json_int_t)o->seed));
    /* Only when one differs from the seed: a run with --seed alone (or the
     * same value thrice) writes the same file as before the split. */
    if (init_seed(o) != o->seed || order_seed(o) != o->seed) {
        json_object_set_new(root, "init_seed", json_integer((json_int_t)init_seed(o)));
        json_object_set_new(root, "order_seed", json_integer((json_int_t)order_seed(o)));
    }

    json_t *h = json_object();
    json_object_set_new(h, "activation", json_string(ctr_activation_name(o->activation)));
    json_object_set_new(h, "beta", json_real(o->beta));
    json_t *hid = json_array();
    for (size_t l = 0; l < o->n_hidden; l++)
        json_array_append_new(hid, json_integer(o->hidden[l]));
    json_object_set_new(h, "hidden", hid);
    json_object_set_new(h, "dim", json_integer(o->dim));
    json_t *bk = json_array();
    for (size_t j = 0; j < def->n_cat; j++)
        json_array_append_new(bk, json_integer(def->cat[j].buckets));
    json_object_set_new(h, "buckets", bk);
    json_t *tr = json_array();
    for (size_t k = 0; k < def->n_dense; k++)
        json_array_append_new(tr, json_string(ctr_transform_name(def->dense[k].transform)));
    json_object_set_new(h, "transforms", tr);
    json_object_set_new(h, "hash_seed", json_integer((json_int_t)o->hash_seed));
    if (o->data.n_bags)
        json_object_set_new(h, "pool", json_string(o->pool == CTR_POOL_MEAN ? "mean" : "sum"));
    json_object_set_new(h, "epochs", json_integer(o->epochs));
    json_object_set_new(h, "batch", json_integer((json_int_t)o->batch));
    json_object_set_new(h, "optimizer", json_string(o->optimizer == CTR_OPTIM_ADAM ? "adam" : "adagrad"));
    json_object_set_new(h, "lr", json_real(o->lr));
    json_object_set_new(h, "lr_decay", json_string(o->lr_decay ? "linear" : "none"));
    json_object_set_new(h, "emb_optimizer", json_string("rowwise_adagrad"));
    json_object_set_new(h, "emb_lr", json_real(o->emb_lr));
    json_object_set_new(h, "emb_l2", json_real(o->emb_l2));
    json_object_set_new(h, "emb_init", json_real(o->emb_init));
    if (o->emb_dtype != CTR_TABLE_F32) /* an fp32 model's provenance stays as it was */
        json_object_set_new(h, "emb_dtype", json_string(ctr_table_dtype_name(o->emb_dtype)));
    if (o->arch != CTR_ARCH_MLP) /* an MLP's provenance stays as it was */
        arch_provenance(o, h);
    json_object_set_new(root, "hyperparameters", h);

    json_t *m = json_object();
    json_object_set_new(m, "train", metrics_json(&rep->train));
    if (rep->n_valid)
        json_object_set_new(m, "valid", metrics_json(&rep->valid));
    json_object_set_new(root, "metrics", m);
    if (o->emb_dtype != CTR_TABLE_F32) {
        /* "metrics" are the written model's; these the fp32 weights'. */
        json_t *mf = json_object();
        json_object_set_new(mf, "train", metrics_json(&rep->train_f32));
        if (rep->n_valid)
            json_object_set_new(mf, "valid", metrics_json(&rep->valid_f32));
        json_object_set_new(root, "metrics_fp32", mf);
    }

    char *s = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(root);
    return s;
}

/* ---- what the run works on ---- */

/* Rows of the dataset, encoded, in the order they were taken: the
 * training rows or the validation rows. rows has ns slots per example. */
typedef struct {
    size_t n, nd, ns;
    float *dense;
    uint32_t *rows;
    uint8_t *labels;
} subset_t;

static void subset_free(subset_t *s)
{
    free(s->dense);
    free(s->rows);
    free(s->labels);
}

static int subset_take(subset_t *s, const ctr_dataset_t *ds, const uint32_t *idx, size_t n)
{
    s->n = n;
    s->nd = ds->n_dense;
    s->ns = ds->slots;
    s->dense = malloc(n * s->nd * sizeof(float) + 1);
    s->rows = malloc(n * s->ns * sizeof(uint32_t) + 1);
    s->labels = malloc(n + 1);
    if (!s->dense || !s->rows || !s->labels)
        return CTR_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        memcpy(s->dense + i * s->nd, ds->dense + (size_t)idx[i] * s->nd, s->nd * sizeof(float));
        memcpy(s->rows + i * s->ns, ds->rows + (size_t)idx[i] * s->ns, s->ns * sizeof(uint32_t));
        s->labels[i] = ds->labels[idx[i]];
    }
    return 0;
}

/* Metrics of def on s, scored on pool through the serving path; all NaN
 * (n 0) for an empty subset. */
static int eval_subset(const ctr_model_def_t *def, const ctr_kernel_t *k, ctr__pool_t *pool,
                       const subset_t *s, ctr_metrics_t *m)
{
    memset(m, 0, sizeof(*m));
    m->auc = m->logloss = m->mean_pred = m->pos_rate = NAN;
    if (!s->n)
        return 0;
    float *sc = malloc(s->n * sizeof(float));
    if (!sc)
        return CTR_ENOMEM;
    int rc = ctr__score_pool(def, k, s->n, s->dense, s->rows, sc, pool);
    if (!rc)
        rc = ctr_metrics_compute(sc, s->labels, s->n, m);
    free(sc);
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Seconds as h:mm:ss, clamped to 99:59:59. */
static void fmt_eta(double s, char *buf, size_t len)
{
    if (!(s >= 0) || s > 359999)
        s = 359999;
    unsigned t = (unsigned)(s + 0.5);
    snprintf(buf, len, "%u:%02u:%02u", t / 3600, t / 60 % 60, t % 60);
}

/* ---- the run, phase by phase ---- */

/* Everything one run holds. Each phase fills its part; run_free releases
 * whatever exists, whichever phase stopped the run. */
typedef struct {
    const ctr_train_opts_t *o;
    ctr_train_report_t *rep;
    FILE *lg;                  /* o->log; NULL = quiet */
    ctr_data_opts_t dopt;      /* o->data with Criteo's default columns */
    size_t nd, nc, L;          /* dense features, tables, layers */
    const ctr_kernel_t *k;
    ctr_dense_def_t *dense;    /* [nd] */
    ctr_cat_def_t *cat;        /* [nc] */
    ctr_layer_def_t *layers;   /* [L] */
    ctr_model_def_t def;       /* over dense, cat and layers */
    ctr_dataset_t ds;          /* the whole file, until it is split */
    uint32_t *idx;             /* [rows]: the split order, then each epoch's */
    uint8_t *is_valid;         /* [rows] */
    subset_t tr, va;           /* training and validation rows, encoded */
    double pos_rate;           /* training rows, smoothed: the initial output bias */
    ctr__pool_t *pool;
    ctr__net_t net;
    int net_ok;
    ctr__graph_t graph;        /* instead of net: arch dot, dcnv2 or wukong */
    int graph_ok;
    float *bd;                 /* one mini-batch: [batch][nd] */
    uint32_t *br;              /* [batch][slots] */
    uint8_t *bl;               /* [batch] */
    char *prov;                /* the provenance JSON */
    uint8_t *qrows;            /* emb_dtype != F32: every table as stored */
    float *qtab;               /* and decoded, back to back */
} run_t;

static void run_free(run_t *r)
{
    free(r->qrows);
    free(r->qtab);
    free(r->prov);
    free(r->bd);
    free(r->br);
    free(r->bl);
    if (r->net_ok)
        ctr__net_free(&r->net);
    if (r->graph_ok)
        ctr__graph_free(&r->graph);
    ctr__pool_free(r->pool);
    subset_free(&r->tr);
    subset_free(&r->va);
    ctr_dataset_free(&r->ds);
    free(r->idx);
    free(r->is_valid);
    free(r->layers);
    free(r->cat);
    free(r->dense);
}

/* Fills r->dopt, nd, nc and L, and checks every option that needs no data.
 * Allocates nothing; CTR_EINVAL names the first bad option. */
static int check_opts(run_t *r, char *err, size_t errlen)
{
    const ctr_train_opts_t *o = r->o;
    r->dopt = o->data;
    r->dopt.label_optional = 0;
    if (r->dopt.format == CTR_DATA_CRITEO) {
        if (!r->dopt.dense) {
            r->dopt.n_dense = CTR_CRITEO_N_DENSE;
            r->dopt.dense = ctr_criteo_dense_names;
        }
        if (!r->dopt.cat) {
            r->dopt.n_cat = CTR_CRITEO_N_CAT;
            r->dopt.cat = ctr_criteo_cat_names;
        }
    }
    size_t nd = r->nd = r->dopt.n_dense, nc = r->nc = r->dopt.n_cat;
    r->L = o->n_hidden + 1;
    if (!o->data_path || !strcmp(o->data_path, "-"))
        return ctr_error(err, errlen, CTR_EINVAL, "train needs a data file (its SHA-256 goes into the model)");
    if (nd + nc == 0)
        return ctr_error(err, errlen, CTR_EINVAL, "no features: name dense and/or categorical columns");
    if (o->n_hidden > CTR_TRAIN_MAX_HIDDEN)
        return ctr_error(err, errlen, CTR_EINVAL, "at most %d hidden layers", CTR_TRAIN_MAX_HIDDEN);
    for (size_t l = 0; l < o->n_hidden; l++)
        if (o->hidden[l] == 0 || o->hidden[l] > 65536)
            return ctr_error(err, errlen, CTR_EINVAL, "hidden layer width %u: must be 1..65536", o->hidden[l]);
    if (o->activation != CTR_ACT_SMELU && o->activation != CTR_ACT_RELU)
        return ctr_error(err, errlen, CTR_EINVAL, "activation must be smelu or relu");
    if (!(o->beta > 0) || o->beta > 1e6)
        return ctr_error(err, errlen, CTR_EINVAL, "beta must be > 0");
    if (nc && (o->dim == 0 || o->dim > 1024))
        return ctr_error(err, errlen, CTR_EINVAL, "dim must be 1..1024");
    if (nc && o->n_buckets > 1 && o->n_buckets != nc)
        return ctr_error(err, errlen, CTR_EINVAL,
                         "--buckets: give one value or one per categorical feature (%zu), not %zu",
                         nc, o->n_buckets);
    if (o->n_transforms > 1 && o->n_transforms != nd)
        return ctr_error(err, errlen, CTR_EINVAL,
                         "--transform: give one value or one per dense feature (%zu), not %zu",
                         nd, o->n_transforms);
    if (!o->epochs || !o->batch || o->batch > 65536)
        return ctr_error(err, errlen, CTR_EINVAL, "epochs must be >= 1 and batch 1..65536");
    if (!(o->valid_frac >= 0 && o->valid_frac <= 0.9))
        return ctr_error(err, errlen, CTR_EINVAL, "valid-frac must be in [0, 0.9]");
    if (!(o->lr > 0) || !(o->emb_lr > 0) || !(o->emb_l2 >= 0) || !(o->emb_init >= 0))
        return ctr_error(err, errlen, CTR_EINVAL, "learning rates must be > 0, emb-l2 and emb-init >= 0");
    if (o->pool != CTR_POOL_SUM && o->pool != CTR_POOL_MEAN)
        return ctr_error(err, errlen, CTR_EINVAL, "pool must be sum or mean");
    if (!ctr_table_row_bytes(o->emb_dtype, 1))
        return ctr_error(err, errlen, CTR_EINVAL, "emb-dtype: unknown table dtype %d", (int)o->emb_dtype);
    for (size_t i = 0; i < o->data.n_bags; i++) {
        /* The reader checks the rest (a categorical column, the separator). */
        if (!o->data.bags[i].column)
            return ctr_error(err, errlen, CTR_EINVAL, "--bag: no column named");
        if (o->data.bags[i].max < 1 || o->data.bags[i].max > CTR_MAX_BAG)
            return ctr_error(err, errlen, CTR_EINVAL, "--bag %s: at most 1..%d values",
                             o->data.bags[i].column, CTR_MAX_BAG);
    }
    return 0;
}

/* Selects the kernel, hashes the data file into rep->data_sha256 and
 * defines the features from the options: names, buckets, dims and hash
 * seeds of the tables (CTR_EINVAL for buckets outside 1..2^30), names and
 * transforms of the dense features (their statistics come with the data). */
static int define_features(run_t *r, char *err, size_t errlen)
{
    const ctr_train_opts_t *o = r->o;
    int rc;
    if (!(r->dense = calloc(r->nd + 1, sizeof(*r->dense))) ||
        !(r->cat = calloc(r->nc + 1, sizeof(*r->cat))) ||
        !(r->layers = calloc(r->L, sizeof(*r->layers))))
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    if (!(r->k = ctr_kernel_select(CTR_KERNEL_AUTO, err, errlen)))
        return CTR_EUNSUPPORTED;
    if ((rc = ctr_sha256_file(o->data_path, r->rep->data_sha256, err, errlen)))
        return rc;
    for (size_t j = 0; j < r->nc; j++) {
        ctr_cat_def_t *c = &r->cat[j];
        c->name = r->dopt.cat[j];
        c->buckets = o->buckets ? o->buckets[o->n_buckets == 1 ? 0 : j] : 65536;
        c->dim = o->dim;
        c->seed = o->hash_seed + j;
        for (size_t i = 0; i < o->data.n_bags; i++)
            if (!strcmp(o->data.bags[i].column, c->name)) {
                c->bag_max = o->data.bags[i].max;
                c->pool = o->pool;
            }
        if (c->buckets == 0 || c->buckets > (1u << 30))
            return ctr_error(err, errlen, CTR_EINVAL, "%s: buckets must be 1..2^30", c->name);
    }
    ctr_transform_t dflt = r->dopt.format == CTR_DATA_CRITEO ? CTR_TRANSFORM_LOG1P : CTR_TRANSFORM_STANDARDIZE;
    for (size_t q = 0; q < r->nd; q++) {
        r->dense[q].name = r->dopt.dense[q];
        r->dense[q].transform = o->n_transforms ? o->transforms[o->n_transforms == 1 ? 0 : q] : dflt;
        r->dense[q].mean = 0.0;
        r->dense[q].std = 1.0;
    }
    return 0;
}

/* The hold-out split: a permutation of the rows from split_seed whose
 * first nv rows are held out. Leaves idx = the training rows in file
 * order, then the validation rows in file order. */
static void split_rows(run_t *r, size_t nv)
{
    size_t n = r->ds.n, nt = n - nv;
    for (size_t i = 0; i < n; i++)
        r->idx[i] = (uint32_t)i;
    uint64_t ss = ctr__train_rng_stream(r->o->split_seed, 0x5b117);
    shuffle(r->idx, n, &ss);
    for (size_t i = 0; i < nv; i++)
        r->is_valid[r->idx[i]] = 1;
    size_t a = 0, b = nt;
    for (size_t i = 0; i < n; i++)
        r->idx[r->is_valid[i] ? b++ : a++] = (uint32_t)i;
}

/* Standardisation statistics from the nt training rows (idx[0..nt)) only,
 * over the values present. */
static void fit_standardize(run_t *r, size_t nt)
{
    size_t nd = r->nd;
    for (size_t q = 0; q < nd; q++) {
        if (r->dense[q].transform != CTR_TRANSFORM_STANDARDIZE)
            continue;
        double s1 = 0, s2 = 0;
        size_t cnt = 0;
        for (size_t i = 0; i < nt; i++) {
            double v = r->ds.raw_dense[(size_t)r->idx[i] * nd + q];
            if (isnan(v))
                continue;
            s1 += v;
            cnt++;
        }
        double mean = cnt ? s1 / (double)cnt : 0.0;
        for (size_t i = 0; i < nt; i++) {
            double v = r->ds.raw_dense[(size_t)r->idx[i] * nd + q];
            if (!isnan(v))
                s2 += (v - mean) * (v - mean);
        }
        double sd = cnt > 1 ? sqrt(s2 / (double)cnt) : 0.0;
        r->dense[q].mean = mean;
        r->dense[q].std = sd > 1e-12 ? sd : 1.0;
    }
}

/* Reads the data file (2 .. 2^32-1 rows), splits it, fits the dense
 * statistics on the training rows and encodes every row into r->tr and
 * r->va; the dataset itself is freed. Fills rep's row counts and load
 * time and r->pos_rate, and reports the split on the log. */
static int load_data(run_t *r, char *err, size_t errlen)
{
    const ctr_train_opts_t *o = r->o;
    ctr_train_report_t *rep = r->rep;
    int rc;
    double t0 = now_s();
    if (r->lg)
        fprintf(r->lg, "train: reading %s\n", o->data_path);
    if ((rc = ctr_dataset_load(o->data_path, &r->dopt, NULL, r->cat, o->skip_bad, r->lg, &r->ds,
                               err, errlen)))
        return rc;
    rep->rows = r->ds.n;
    rep->bad_rows = r->ds.bad_rows;
    if (r->ds.n < 2 || r->ds.n > UINT32_MAX)
        return ctr_error(err, errlen, CTR_EINVAL, "%s: %zu rows; need 2 .. 2^32-1", o->data_path, r->ds.n);

    size_t nv = (size_t)floor((double)r->ds.n * o->valid_frac + 0.5), nt = r->ds.n - nv;
    if (nt == 0)
        return ctr_error(err, errlen, CTR_EINVAL, "%s: no training rows left after the validation split",
                         o->data_path);
    if (!(r->idx = malloc(r->ds.n * sizeof(uint32_t))) || !(r->is_valid = calloc(r->ds.n, 1)))
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    split_rows(r, nv);
    fit_standardize(r, nt);
    if ((rc = ctr_dataset_encode_dense(&r->ds, r->dense)))
        return ctr_error(err, errlen, rc, "out of memory");
    free(r->ds.raw_dense);
    r->ds.raw_dense = NULL;
    if ((rc = subset_take(&r->tr, &r->ds, r->idx, nt)) || (rc = subset_take(&r->va, &r->ds, r->idx + nt, nv)))
        return ctr_error(err, errlen, rc, "out of memory");
    ctr_dataset_free(&r->ds);
    rep->n_train = nt;
    rep->n_valid = nv;
    rep->load_seconds = now_s() - t0;

    size_t pos = 0;
    for (size_t i = 0; i < nt; i++)
        pos += r->tr.labels[i];
    r->pos_rate = ((double)pos + 0.5) / ((double)nt + 1.0);
    if (r->lg)
        fprintf(r->lg, "train: %zu rows (%llu bad skipped): %zu train, %zu valid; positive rate %.4f; "
                       "loaded in %.1f s; kernel %s\n",
                (size_t)rep->rows, (unsigned long long)rep->bad_rows, nt, nv,
                (double)pos / (double)nt, rep->load_seconds, r->k->name);
    return 0;
}

/* An interaction model (train_graph.c) instead of the MLP network: the
 * shape from the options, its parameters from the seed, def over them. */
static int build_graph(run_t *r, unsigned threads, char *err, size_t errlen)
{
    const ctr_train_opts_t *o = r->o;
    const ctr__graph_shape_t sh = {
        .arch = o->arch, .n_dense = r->nd, .n_cat = r->nc, .cat = r->cat,
        .act = o->activation, .beta = (float)o->beta,
        .n_bottom = o->n_bottom, .bottom = o->bottom, .no_bottom = o->no_bottom,
        .n_top = o->n_hidden, .top = o->hidden,
        .dot_order = o->dot_order, .dot_self = o->dot_self,
        .structure = o->dcn_structure, .n_cross = o->n_cross, .rank = o->rank,
        .n_deep = o->n_deep, .deep = o->deep,
        .n_wk = o->n_wukong, .n_f = o->n_f, .n_l = o->n_l, .k = o->k, .n_fmb = o->n_fmb, .fmb = o->fmb,
        .fmb_ln = o->fmb_ln, .fmb_out_act = o->fmb_out_act, .ln_eps = (float)o->ln_eps,
    };
    int rc = ctr__graph_init(&r->graph, &sh, o->batch, threads, 0, err, errlen);
    if (rc)
        return rc;
    r->graph_ok = 1;
    r->graph.opt = o->optimizer;
    r->graph.lr = (float)o->lr;
    r->graph.emb_lr = (float)o->emb_lr;
    r->graph.emb_l2 = (float)o->emb_l2;
    double pr = r->pos_rate;
    ctr__graph_init_params(&r->graph, init_seed(o), (float)log(pr / (1.0 - pr)), (float)o->emb_init);
    ctr__graph_export(&r->graph, &r->def, r->cat);
    return 0;
}

/* The layer shapes and r->def, the thread pool, the network with its
 * parameters initialised from the init seed (the output bias at the training
 * rows' log-odds) and the mini-batch buffers. From here on def's layers
 * and tables point into the network. */
static int build_network(run_t *r, char *err, size_t errlen)
{
    const ctr_train_opts_t *o = r->o;
    int rc;
    uint32_t in = (uint32_t)r->nd;
    for (size_t j = 0; j < r->nc; j++)
        in += o->dim;
    for (size_t l = 0; l < r->L; l++) {
        r->layers[l].in = in;
        r->layers[l].out = l < o->n_hidden ? o->hidden[l] : 1;
        in = r->layers[l].out;
    }
    r->def = (ctr_model_def_t){
        .name = o->name ? o->name : "ctr",
        .n_dense = r->nd, .dense = r->dense, .n_cat = r->nc, .cat = r->cat,
        .n_layers = r->L, .layers = r->layers,
        .activation = o->activation, .beta = (float)o->beta,
    };
    unsigned threads = ctr__pool_threads(o->threads);
    if ((rc = ctr__pool_new(threads, &r->pool, err, errlen)))
        return rc;
    if (o->arch != CTR_ARCH_MLP) {
        if ((rc = build_graph(r, threads, err, errlen)))
            return rc;
        goto batch;
    }
    if (ctr__net_init(&r->net, &r->def, o->batch, threads, 0))
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory for the network");
    r->net_ok = 1;
    r->net.opt = o->optimizer;
    r->net.lr = (float)o->lr;
    r->net.emb_lr = (float)o->emb_lr;
    r->net.emb_l2 = (float)o->emb_l2;
    double pr = r->pos_rate;
    ctr__net_init_params(&r->net, init_seed(o), (float)log(pr / (1.0 - pr)), (float)o->emb_init);
    ctr__net_export(&r->net, r->layers, r->cat);

batch:
    if (!(r->bd = malloc(o->batch * (r->nd + 1) * sizeof(float))) ||
        !(r->br = malloc(o->batch * (r->tr.ns + 1) * sizeof(uint32_t))) || !(r->bl = malloc(o->batch)))
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    return 0;
}

/* Copies training rows idx[b0 .. b0+bn) into the mini-batch buffers. */
static void fill_batch(run_t *r, size_t b0, size_t bn)
{
    size_t nd = r->nd, ns = r->tr.ns;
    for (size_t q = 0; q < bn; q++) {
        uint32_t i = r->idx[b0 + q];
        memcpy(r->bd + q * nd, r->tr.dense + (size_t)i * nd, nd * sizeof(float));
        memcpy(r->br + q * ns, r->tr.rows + (size_t)i * ns, ns * sizeof(uint32_t));
        r->bl[q] = r->tr.labels[i];
    }
}

/* The epochs. Each shuffles the training rows from the order seed and the epoch
 * number and takes one optimizer step per mini-batch, the rates falling
 * linearly to 0 over the whole run with lr_decay. On the log: a progress
 * line (on a terminal or with o->progress) and, when there are validation
 * rows, their metrics after each epoch (time not counted as training).
 * Fills rep's training time and rate. */
static int run_epochs(run_t *r, char *err, size_t errlen)
{
    const ctr_train_opts_t *o = r->o;
    FILE *lg = r->lg;
    size_t nt = r->tr.n;
    int rc;
    int tty = lg && isatty(fileno(lg));
    int show = lg && (o->progress || tty);
    double t_train = now_s(), t_shown = t_train, t_eval = 0;
    uint64_t done = 0, total = (uint64_t)nt * o->epochs;
    for (unsigned ep = 0; ep < o->epochs; ep++) {
        for (size_t i = 0; i < nt; i++)
            r->idx[i] = (uint32_t)i;
        uint64_t s = ctr__train_rng_stream(order_seed(o), 0xe90c0000ull + ep);
        shuffle(r->idx, nt, &s);
        double ep_loss = 0;
        size_t ep_rows = 0;
        for (size_t b0 = 0; b0 < nt; b0 += o->batch) {
            size_t bn = nt - b0 < o->batch ? nt - b0 : o->batch;
            fill_batch(r, b0, bn);
            if (o->lr_decay) {
                /* Linear decay to 0 at the last step, from integers only. */
                double f = 1.0 - (double)done / (double)total;
                r->net.lr = r->graph.lr = (float)(o->lr * f);
                r->net.emb_lr = r->graph.emb_lr = (float)(o->emb_lr * f);
            }
            ep_loss += r->graph_ok ? ctr__graph_step(&r->graph, r->k, r->pool, bn, r->bd, r->br, r->bl, 1)
                                   : ctr__net_step(&r->net, r->k, r->pool, bn, r->bd, r->br, r->bl, 1);
            ep_rows += bn;
            done += bn;
            double t = now_s();
            if (show && (t - t_shown >= (tty ? 0.5 : 10.0) || b0 + bn >= nt)) {
                t_shown = t;
                double rate = (double)done / (t - t_train - t_eval);
                char eta[16];
                fmt_eta((double)(total - done) / rate, eta, sizeof(eta));
                fprintf(lg, "%sepoch %u/%u %5.1f%%  %.0f rows/s  logloss %.4f  ETA %s%s",
                        tty ? "\r" : "", ep + 1, o->epochs, 100.0 * (double)(b0 + bn) / (double)nt,
                        rate, ep_loss / (double)ep_rows, eta, tty ? "\033[K" : "\n");
                fflush(lg);
            }
        }
        if (show && tty)
            fputc('\n', lg);
        if (lg && r->va.n) {
            double te = now_s();
            ctr_metrics_t vm;
            if ((rc = eval_subset(&r->def, r->k, r->pool, &r->va, &vm)))
                return ctr_error(err, errlen, rc, "scoring the validation rows failed: %s", ctr_strerror(rc));
            fprintf(lg, "epoch %u/%u: train logloss %.5f (running); valid AUC %.5f logloss %.5f\n",
                    ep + 1, o->epochs, ep_loss / (double)ep_rows, vm.auc, vm.logloss);
            t_eval += now_s() - te;
        }
    }
    r->rep->train_seconds = now_s() - t_train - t_eval;
    r->rep->rows_per_s = r->rep->train_seconds > 0 ? (double)total / r->rep->train_seconds : 0;
    return 0;
}

/* The trained model's metrics on the training and validation rows into
 * rep, scored through the serving path. */
static int evaluate(run_t *r, char *err, size_t errlen)
{
    int rc;
    if ((rc = eval_subset(&r->def, r->k, r->pool, &r->tr, &r->rep->train)) ||
        (rc = eval_subset(&r->def, r->k, r->pool, &r->va, &r->rep->valid)))
        return ctr_error(err, errlen, rc, "scoring the data failed: %s", ctr_strerror(rc));
    return 0;
}

/* emb_dtype != F32: makes rep->train and valid the metrics of the model
 * as it will be written. Each table is encoded here by the writer's own
 * encoder (ctr__quant_encode_rows) into r->qrows, which the defs then
 * hand to ctr_model_write to copy as they are; the stored rows are
 * decoded by the scalar reference (the bits every kernel gives, so these
 * are the scores ctrd and ctrtool eval give the written model) and scored
 * through the serving path. The fp32 weights' metrics move to train_f32
 * and valid_f32. Costs the stored tables and one decoded fp32 copy of
 * them in memory. */
static int evaluate_quantized(run_t *r, char *err, size_t errlen)
{
    ctr_train_report_t *rep = r->rep;
    ctr_table_dtype_t dt = r->o->emb_dtype;
    size_t nc = r->nc, floats = 0, bytes = 0;
    int rc = 0;
    rep->train_f32 = rep->train;
    rep->valid_f32 = rep->valid;
    if (dt == CTR_TABLE_F32 || !nc)
        return 0;
    for (size_t j = 0; j < nc; j++) {
        floats += ((size_t)r->cat[j].buckets + 1) * r->cat[j].dim;
        bytes += ((size_t)r->cat[j].buckets + 1) * ctr_table_row_bytes(dt, r->cat[j].dim);
    }
    ctr_cat_def_t *ec = calloc(nc, sizeof(*ec));
    if (!ec || !(r->qrows = malloc(bytes)) || !(r->qtab = malloc(floats * sizeof(float)))) {
        free(ec);
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory for the %s tables (%zu + %zu bytes)",
                         ctr_table_dtype_name(dt), bytes, floats * sizeof(float));
    }
    const ctr__quant_ops_t *ops = ctr__quant_ops_get(CTR_KERNEL_SCALAR);
    ctr__dequant_fn dec = dt == CTR_TABLE_F16 ? ops->fp16 : ops->int8;
    uint8_t *q = r->qrows;
    float *x = r->qtab;
    for (size_t j = 0; j < nc && !rc; j++) {
        ctr_cat_def_t *c = &r->cat[j];
        size_t rows = (size_t)c->buckets + 1, rb = ctr_table_row_bytes(dt, c->dim);
        char why[256];
        if ((rc = ctr__quant_encode_rows(dt, c->table, rows, c->dim, 0, q, why, sizeof why))) {
            rc = ctr_error(err, errlen, rc, "table %s as %s: %s", c->name, ctr_table_dtype_name(dt), why);
            break;
        }
        ec[j] = *c;
        ec[j].table = x;
        for (size_t i = 0; i < rows; i++, x += c->dim)
            dec(q + i * rb, c->dim, x);
        c->dtype = dt;
        c->qrows = q;
        q += rows * rb;
    }
    ctr_model_def_t ev = r->def;
    ev.cat = ec;
    if (!rc && ((rc = eval_subset(&ev, r->k, r->pool, &r->tr, &rep->train)) ||
                (rc = eval_subset(&ev, r->k, r->pool, &r->va, &rep->valid))))
        rc = ctr_error(err, errlen, rc, "scoring the data with %s tables failed: %s", ctr_table_dtype_name(dt),
                       ctr_strerror(rc));
    free(ec);
    return rc;
}

/* Writes the model with its provenance to out_path, then the run's summary
 * on the log. */
static int write_model(run_t *r, const char *out_path, char *err, size_t errlen)
{
    const ctr_train_report_t *rep = r->rep;
    int rc;
    if ((rc = evaluate_quantized(r, err, errlen)))
        return rc;
    if (!(r->prov = provenance(r->o, &r->def, rep)))
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    r->def.provenance_json = r->prov;
    if ((rc = ctr_model_write(out_path, &r->def, NULL, NULL, err, errlen)))
        return rc;
    if (r->lg) {
        fprintf(r->lg, "train: %.1f s, %.0f rows/s; train AUC %.5f logloss %.5f", rep->train_seconds,
                rep->rows_per_s, rep->train.auc, rep->train.logloss);
        if (rep->n_valid)
            fprintf(r->lg, "; valid AUC %.5f logloss %.5f (mean pred %.4f, positive rate %.4f)",
                    rep->valid.auc, rep->valid.logloss, rep->valid.mean_pred, rep->valid.pos_rate);
        if (r->o->emb_dtype != CTR_TABLE_F32) {
            fprintf(r->lg, "\ntrain: those are the written model's, its tables %s; the fp32 weights: train AUC "
                           "%.5f logloss %.5f", ctr_table_dtype_name(r->o->emb_dtype), rep->train_f32.auc,
                    rep->train_f32.logloss);
            if (rep->n_valid)
                fprintf(r->lg, "; valid AUC %.5f logloss %.5f", rep->valid_f32.auc, rep->valid_f32.logloss);
        }
        fprintf(r->lg, "\ntrain: wrote %s\n", out_path);
    }
    return 0;
}

int ctr_train_run(const ctr_train_opts_t *o, const char *out_path, ctr_train_report_t *rep_out,
                  char *err, size_t errlen)
{
    ctr_train_report_t rep_local, *rep = rep_out ? rep_out : &rep_local;
    memset(rep, 0, sizeof(*rep));
    run_t r = {.o = o, .rep = rep, .lg = o->log};
    int rc;
    if ((rc = check_opts(&r, err, errlen)) ||
        (rc = define_features(&r, err, errlen)) ||
        (rc = load_data(&r, err, errlen)) ||
        (rc = build_network(&r, err, errlen)) ||
        (rc = run_epochs(&r, err, errlen)) ||
        (rc = evaluate(&r, err, errlen)) ||
        (rc = write_model(&r, out_path, err, errlen)))
        goto fail;
    run_free(&r);
    return 0;
fail:
    run_free(&r);
    return rc;
}
