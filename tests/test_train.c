/* test_train.c - the trainer: SmeLU and whole-network gradients against
 * double-precision finite differences; training on gen-data learns (near
 * the generator's own AUC); same seed -> identical file bytes, whatever
 * the thread count; a CSV with a header and reordered columns trains the
 * same model as the equivalent TSV; bad rows stop training with their line
 * number or are counted with skip_bad; offline scores equal one-at-a-time
 * ctr_forward scores, and PD of a model with itself is exactly 0; the
 * thread pool runs its function once per thread per run. */
#include <math.h>
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
#include "testutil.h"
#include "train_int.h"

static const ctr_kernel_t *K;

static char *tmp_path(const char *name)
{
    static char buf[16][512];
    static int k;
    char *p = buf[k++ % 16];
    snprintf(p, 512, "%s/%s", test_tmpdir(), name);
    return p;
}

/* ---- SmeLU against its definition and finite differences ---- */

static double smelu_d(double x, double beta)
{
    if (x <= -beta)
        return 0.0;
    if (x >= beta)
        return x;
    return (x + beta) * (x + beta) / (4.0 * beta);
}

static void test_smelu_grad(void)
{
    const float betas[] = {0.5f, 1.0f, 2.0f};
    for (size_t bi = 0; bi < 3; bi++) {
        float beta = betas[bi];
        for (int i = -400; i <= 400; i++) {
            float x = (float)i * 0.01f + 0.003f; /* avoid sitting exactly on a knot */
            double h = 1e-6;
            double fd = (smelu_d((double)x + h, beta) - smelu_d((double)x - h, beta)) / (2 * h);
            float g = ctr_smelu_grad(x, beta);
            CHECKF(fabs(g - fd) < 1e-5, "smelu'(%g; beta %g) = %g, finite difference %g", x, beta, g, fd);
            double v = smelu_d(x, beta);
            CHECKF(fabs(ctr_smelu(x, beta) - v) <= 1e-6 * (1 + fabs(v)), "smelu(%g) = %g want %g",
                   x, ctr_smelu(x, beta), v);
        }
        /* Continuity at the knots: value and slope. */
        CHECK(ctr_smelu(-beta, beta) == 0.0f && ctr_smelu_grad(-beta, beta) == 0.0f);
        CHECK(fabsf(ctr_smelu(beta, beta) - beta) <= 1e-6f * beta);
        CHECK(fabsf(ctr_smelu_grad(beta, beta) - 1.0f) <= 1e-6f);
    }
}

/* ---- whole-network gradient check ---- */

typedef struct {
    size_t nl, nd, nc;
    const uint32_t *dims;
    double **W;   /* (in + 1) * out, bias last, like the trainer */
    double **T;   /* tables */
    uint32_t dim;
    ctr_activation_t act;
    double beta;
} ref_net_t;

static double ref_loss(const ref_net_t *r, size_t bn, const float *dense, const uint32_t *rows,
                       const uint8_t *y)
{
    double loss = 0, x[64], z[64];
    for (size_t b = 0; b < bn; b++) {
        size_t in = 0;
        for (size_t k = 0; k < r->nd; k++)
            x[in++] = dense[b * r->nd + k];
        for (size_t j = 0; j < r->nc; j++)
            for (uint32_t e = 0; e < r->dim; e++)
                x[in++] = r->T[j][(size_t)rows[b * r->nc + j] * r->dim + e];
        for (size_t l = 0; l < r->nl; l++) {
            uint32_t ni = r->dims[l], no = r->dims[l + 1];
            for (uint32_t o = 0; o < no; o++) {
                double acc = r->W[l][(size_t)ni * no + o];
                for (uint32_t i = 0; i < ni; i++)
                    acc += x[i] * r->W[l][(size_t)i * no + o];
                z[o] = acc;
            }
            for (uint32_t o = 0; o < no; o++)
                x[o] = l + 1 == r->nl ? z[o]
                       : r->act == CTR_ACT_SMELU ? smelu_d(z[o], r->beta) : (z[o] > 0 ? z[o] : 0);
        }
        double p = 1.0 / (1.0 + exp(-x[0]));
        loss -= y[b] ? log(p) : log1p(-p);
    }
    return loss / (double)bn;
}

static void grad_check(size_t n_hidden, ctr_activation_t act, float beta)
{
    enum { ND = 3, NC = 2, DIM = 3, BUCKETS = 4, BN = 7 };
    uint32_t hidden[] = {6, 5};
    ctr_cat_def_t cat[NC] = {{.name = "a", .buckets = BUCKETS, .dim = DIM, .seed = 0},
                             {.name = "b", .buckets = BUCKETS, .dim = DIM, .seed = 1}};
    ctr_layer_def_t layers[3];
    uint32_t in = ND + NC * DIM;
    for (size_t l = 0; l <= n_hidden; l++) {
        layers[l].in = in;
        layers[l].out = l < n_hidden ? hidden[l] : 1;
        in = layers[l].out;
    }
    ctr_model_def_t def = {.n_dense = ND, .n_cat = NC, .cat = cat, .n_layers = n_hidden + 1,
                           .layers = layers, .activation = act, .beta = beta};
    ctr__net_t net;
    if (ctr__net_init(&net, &def, BN, 1, 1)) {
        CHECK(!"net init");
        return;
    }
    ctr__net_init_params(&net, 5, 0.1f, 0.8f);
    test_rng_t rng = {77};
    for (size_t l = 0; l <= n_hidden; l++) /* non-zero biases (not in WT) */
        for (uint32_t o = 0; o < net.dims[l + 1]; o++)
            net.W[l][(size_t)net.dims[l] * net.dims[l + 1] + o] = test_rng_uniform(&rng, -0.5f, 0.5f);
    float dense[BN * ND];
    uint32_t rows[BN * NC];
    uint8_t y[BN];
    for (size_t i = 0; i < BN * ND; i++)
        dense[i] = test_rng_uniform(&rng, -1.5f, 1.5f);
    for (size_t b = 0; b < BN; b++) {
        rows[b * NC + 0] = (uint32_t)(b % 3);          /* rows 0..2 used, 3 and 4 not */
        rows[b * NC + 1] = (uint32_t)(1 + b % 4);
        y[b] = (uint8_t)(b % 3 == 0);
    }
    double loss = ctr__net_step(&net, K, NULL, BN, dense, rows, y, 0);

    ref_net_t r = {n_hidden + 1, ND, NC, net.dims, NULL, NULL, DIM, act, beta};
    r.W = calloc(n_hidden + 1, sizeof(double *));
    r.T = calloc(NC, sizeof(double *));
    for (size_t l = 0; l <= n_hidden; l++) {
        size_t n = ((size_t)net.dims[l] + 1) * net.dims[l + 1];
        r.W[l] = malloc(n * sizeof(double));
        for (size_t i = 0; i < n; i++)
            r.W[l][i] = net.W[l][i];
    }
    for (size_t j = 0; j < NC; j++) {
        r.T[j] = malloc((BUCKETS + 1) * DIM * sizeof(double));
        for (size_t i = 0; i < (BUCKETS + 1) * DIM; i++)
            r.T[j][i] = net.table[j][i];
    }
    double l0 = ref_loss(&r, BN, dense, rows, y);
    CHECKF(fabs(l0 - loss / BN) < 1e-5, "loss %.8f vs reference %.8f", loss / BN, l0);

    const double h = 1e-5;
    int bad = 0, checked = 0;
    for (size_t l = 0; l <= n_hidden; l++) {
        size_t n = ((size_t)net.dims[l] + 1) * net.dims[l + 1];
        for (size_t i = 0; i < n; i++) {
            double keep = r.W[l][i];
            r.W[l][i] = keep + h;
            double lp = ref_loss(&r, BN, dense, rows, y);
            r.W[l][i] = keep - h;
            double lm = ref_loss(&r, BN, dense, rows, y);
            r.W[l][i] = keep;
            double fd = (lp - lm) / (2 * h), g = net.gW[l][i];
            checked++;
            if (fabs(g - fd) > 2e-5 + 2e-3 * fabs(fd)) {
                if (bad++ < 5)
                    fprintf(stderr, "layer %zu param %zu: backprop %.8g, finite difference %.8g\n",
                            l, i, g, fd);
            }
        }
    }
    for (size_t j = 0; j < NC; j++)
        for (size_t i = 0; i < (BUCKETS + 1) * DIM; i++) {
            double keep = r.T[j][i];
            r.T[j][i] = keep + h;
            double lp = ref_loss(&r, BN, dense, rows, y);
            r.T[j][i] = keep - h;
            double lm = ref_loss(&r, BN, dense, rows, y);
            r.T[j][i] = keep;
            double fd = (lp - lm) / (2 * h), g = net.gT[j][i];
            checked++;
            if (fabs(g - fd) > 2e-5 + 2e-3 * fabs(fd)) {
                if (bad++ < 5)
                    fprintf(stderr, "table %zu entry %zu: backprop %.8g, finite difference %.8g\n",
                            j, i, g, fd);
            }
        }
    CHECKF(bad == 0, "%d of %d gradients disagree (hidden %zu, %s beta %g)", bad, checked,
           n_hidden, ctr_activation_name(act), beta);
    /* One update step moves the loss down. */
    double before = ctr__net_step(&net, K, NULL, BN, dense, rows, y, 0);
    net.lr = 1e-2f;
    net.emb_lr = 1e-2f;
    for (int s = 0; s < 5; s++)
        ctr__net_step(&net, K, NULL, BN, dense, rows, y, 1);
    double after = ctr__net_step(&net, K, NULL, BN, dense, rows, y, 0);
    CHECKF(after < before, "5 steps on one batch: loss %g -> %g", before, after);

    for (size_t l = 0; l <= n_hidden; l++)
        free(r.W[l]);
    for (size_t j = 0; j < NC; j++)
        free(r.T[j]);
    free(r.W);
    free(r.T);
    ctr__net_free(&net);
}

/* ---- training end to end ---- */

static ctr_gendata_report_t gen(const char *path, uint64_t rows, uint64_t seed)
{
    ctr_gendata_opts_t o = {.rows = rows, .seed = seed, .model_seed = 3};
    ctr_gendata_report_t rep = {0};
    char err[256];
    FILE *f = fopen(path, "w");
    if (!f || ctr_gendata_write(f, &o, &rep, err, sizeof(err))) {
        fprintf(stderr, "gen-data failed\n");
        exit(1);
    }
    fclose(f);
    return rep;
}

static void small_opts(ctr_train_opts_t *o, const char *data)
{
    static const uint32_t buckets[] = {4096};
    ctr_train_opts_init(o);
    o->data_path = data;
    o->n_hidden = 2;
    o->hidden[0] = 32;
    o->hidden[1] = 16;
    o->dim = 8;
    o->n_buckets = 1;
    o->buckets = buckets;
    o->epochs = 1;
    o->emb_lr = 0.1;
    o->lr = 5e-3;
    o->batch = 128;
    o->threads = 2;
    o->seed = 1;
}

static int train(const ctr_train_opts_t *o, const char *out, ctr_train_report_t *rep)
{
    char err[512];
    int rc = ctr_train_run(o, out, rep, err, sizeof(err));
    if (rc)
        fprintf(stderr, "train %s: %s\n", out, err);
    return rc;
}

static int same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int x = fgetc(fa), y = fgetc(fb);
        if (x != y)
            same = 0;
        if (x == EOF || y == EOF)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

/* Every tensor of two models, byte for byte. */
static int same_tensors(const ctr_model_def_t *a, const ctr_model_def_t *b)
{
    if (a->n_dense != b->n_dense || a->n_cat != b->n_cat || a->n_layers != b->n_layers)
        return 0;
    for (size_t j = 0; j < a->n_cat; j++) {
        if (a->cat[j].buckets != b->cat[j].buckets || a->cat[j].dim != b->cat[j].dim ||
            strcmp(a->cat[j].name, b->cat[j].name) ||
            memcmp(a->cat[j].table, b->cat[j].table,
                   ((size_t)a->cat[j].buckets + 1) * a->cat[j].dim * sizeof(float)))
            return 0;
    }
    for (size_t k = 0; k < a->n_dense; k++)
        if (strcmp(a->dense[k].name, b->dense[k].name) || a->dense[k].transform != b->dense[k].transform)
            return 0;
    for (size_t l = 0; l < a->n_layers; l++) {
        const ctr_layer_def_t *x = &a->layers[l], *y = &b->layers[l];
        if (x->in != y->in || x->out != y->out || memcmp(x->bias, y->bias, x->out * sizeof(float)))
            return 0;
        for (size_t i = 0; i < x->in; i++) /* a loaded layer's rows may be padded */
            if (memcmp(x->weight + i * (x->ldw ? x->ldw : x->out), y->weight + i * (y->ldw ? y->ldw : y->out),
                       x->out * sizeof(float)))
                return 0;
    }
    return 1;
}

static void test_learns_and_determinism(void)
{
    char *trn = tmp_path("train.tsv"), *tst = tmp_path("test.tsv");
    gen(trn, 50000, 11);
    ctr_gendata_report_t gt = gen(tst, 8000, 12);
    ctr_train_opts_t o;
    small_opts(&o, trn);
    ctr_train_report_t rep;
    char *m1 = tmp_path("m1.ctrm"), *m2 = tmp_path("m2.ctrm"), *m3 = tmp_path("m3.ctrm");
    if (train(&o, m1, &rep)) {
        CHECK(!"train");
        return;
    }
    CHECK(rep.rows == 50000 && rep.n_valid == 5000 && rep.n_train == 45000);

    ctr_model_t *m;
    char err[512];
    if (ctr_model_open(m1, &m, err, sizeof(err))) {
        CHECKF(0, "open: %s", err);
        return;
    }
    const ctr_model_def_t *def = ctr_model_def(m);
    ctr_data_opts_t fmt = {.format = CTR_DATA_CRITEO};
    ctr_dataset_t ds;
    CHECK(ctr_dataset_load_for_model(tst, &fmt, def, 0, NULL, &ds, err, sizeof(err)) == 0);
    float *s1 = malloc(ds.n * sizeof(float)), *s2 = malloc(ds.n * sizeof(float));
    CHECK(ctr_score_dataset(def, K, ds.n, ds.dense, ds.rows, s1, 2) == 0);
    double auc = ctr_metrics_auc(s1, ds.labels, ds.n);
    printf("gen-data: generator AUC %.4f, trained model test AUC %.4f (valid %.4f)\n", gt.auc, auc,
           rep.valid.auc);
    CHECKF(auc > 0.72, "test AUC %.4f: the model did not learn", auc);
    CHECKF(auc > gt.auc - 0.1, "test AUC %.4f too far below the generator's own %.4f", auc, gt.auc);
    CHECKF(auc < gt.auc + 0.01, "test AUC %.4f above the generator's own %.4f?", auc, gt.auc);

    /* Offline scores are the served scores: one example at a time through
     * ctr_forward gives the same bits; scoring twice gives PD exactly 0. */
    ctr_scratch_t *scr;
    CHECK(ctr_scratch_new(def, 1, &scr, NULL, 0) == 0);
    size_t mismatch = 0;
    for (size_t i = 0; i < ds.n; i += 7) {
        float one;
        ctr_forward(def, K, 1, ds.dense + i * def->n_dense, ds.rows + i * def->n_cat, &one, NULL, scr);
        mismatch += memcmp(&one, &s1[i], sizeof(float)) != 0;
    }
    CHECKF(mismatch == 0, "%zu examples scored alone differ from the batch score", mismatch);
    ctr_scratch_free(scr);
    CHECK(ctr_score_dataset(def, K, ds.n, ds.dense, ds.rows, s2, 1) == 0);
    CHECK(ctr_metrics_pd(s1, s2, ds.n) == 0.0 && ctr_metrics_flip_rate(s1, s2, ds.n) == 0.0);
    free(s1);
    free(s2);
    ctr_dataset_free(&ds);
    ctr_model_close(m);

    /* Same seed, other thread count: identical bytes. Other seed: not. */
    o.threads = 1;
    CHECK(train(&o, m2, NULL) == 0);
    CHECKF(same_file(m1, m2), "same seed, 1 vs 2 threads: model files differ");
    o.threads = 3;
    o.seed = 2;
    CHECK(train(&o, m3, NULL) == 0);
    CHECK(!same_file(m1, m3));
}

/* The TSV rewritten as CSV: header, columns in another order, quoted
 * values, CRLF. With the same columns and transforms it must train the
 * very same tensors. */
static void test_csv_equivalence(void)
{
    char *tsv = tmp_path("eq.tsv"), *csv = tmp_path("eq.csv");
    gen(tsv, 4000, 21);
    FILE *in = fopen(tsv, "r"), *out = fopen(csv, "w");
    if (!in || !out) {
        CHECK(!"open");
        return;
    }
    /* order: C26..C1, label, I13..I1 */
    for (int j = 26; j >= 1; j--)
        fprintf(out, "C%d,", j);
    fprintf(out, "label");
    for (int k = 13; k >= 1; k--)
        fprintf(out, ",I%d", k);
    fprintf(out, "\r\n");
    char line[2048];
    while (fgets(line, sizeof(line), in)) {
        char *f[40];
        size_t n = 0;
        line[strcspn(line, "\n")] = '\0';
        for (char *p = line; n < 40;) {
            f[n++] = p;
            char *t = strchr(p, '\t');
            if (!t)
                break;
            *t = '\0';
            p = t + 1;
        }
        if (n != 40) {
            CHECK(!"gen-data line without 40 fields");
            break;
        }
        for (int j = 26; j >= 1; j--)
            fprintf(out, j % 5 == 0 && *f[13 + j] ? "\"%s\"," : "%s,", f[13 + j]);
        fprintf(out, "%s", f[0]);
        for (int k = 13; k >= 1; k--)
            fprintf(out, ",%s", f[k]);
        fprintf(out, "\r\n");
    }
    fclose(in);
    fclose(out);

    ctr_train_opts_t o;
    small_opts(&o, tsv);
    char *mt = tmp_path("eq_tsv.ctrm"), *mc = tmp_path("eq_csv.ctrm");
    CHECK(train(&o, mt, NULL) == 0);
    static const char *dense[13], *cat[26];
    static char names[39][8];
    for (int k = 0; k < 13; k++)
        snprintf(names[k], 8, "I%d", k + 1), dense[k] = names[k];
    for (int j = 0; j < 26; j++)
        snprintf(names[13 + j], 8, "C%d", j + 1), cat[j] = names[13 + j];
    static const ctr_transform_t log1p_t = CTR_TRANSFORM_LOG1P;
    o.data_path = csv;
    o.data.format = CTR_DATA_CSV;
    o.data.label = "label";
    o.data.n_dense = 13;
    o.data.dense = dense;
    o.data.n_cat = 26;
    o.data.cat = cat;
    o.n_transforms = 1;
    o.transforms = &log1p_t;
    CHECK(train(&o, mc, NULL) == 0);
    ctr_model_t *a, *b;
    char err[512];
    if (ctr_model_open(mt, &a, err, sizeof(err)) || ctr_model_open(mc, &b, err, sizeof(err))) {
        CHECKF(0, "open: %s", err);
        return;
    }
    CHECKF(same_tensors(ctr_model_def(a), ctr_model_def(b)), "CSV and TSV models differ");
    ctr_model_close(a);
    ctr_model_close(b);
}

static void test_bad_rows(void)
{
    char *src = tmp_path("src.tsv"), *bad = tmp_path("bad.tsv");
    gen(src, 1000, 31);
    FILE *in = fopen(src, "r"), *out = fopen(bad, "w");
    char line[2048];
    for (int n = 1; fgets(line, sizeof(line), in); n++) {
        if (n == 7)
            fputs("1\t2\t3\n", out);                   /* wrong field count */
        else if (n == 500)
            fprintf(out, "x%s", strchr(line, '\t')); /* bad label */
        else
            fputs(line, out);
    }
    fclose(in);
    fclose(out);
    ctr_train_opts_t o;
    small_opts(&o, bad);
    char err[512];
    char *m = tmp_path("bad.ctrm");
    int rc = ctr_train_run(&o, m, NULL, err, sizeof(err));
    CHECK(rc == CTR_EFORMAT);
    CHECKF(strstr(err, "bad.tsv:7: expected 40 tab-separated fields, found 3"), "%s", err);
    o.skip_bad = 1;
    ctr_train_report_t rep;
    rc = ctr_train_run(&o, m, &rep, err, sizeof(err));
    CHECKF(rc == 0, "%s", err);
    CHECKF(rep.bad_rows == 2 && rep.rows == 998, "bad %llu rows %llu",
           (unsigned long long)rep.bad_rows, (unsigned long long)rep.rows);
}

static void pool_probe(void *ctx, unsigned tid)
{
    unsigned *calls = ctx;
    __atomic_fetch_add(&calls[tid], 1, __ATOMIC_RELAXED);
}

static void test_pool(void)
{
    CHECK(ctr__pool_threads(5) == 5);
    unsigned d = ctr__pool_threads(0);
    CHECKF(d >= 1 && d <= 16, "default thread count %u", d);
    for (unsigned n = 0; n <= 4; n++) {
        ctr__pool_t *p;
        char err[256];
        if (ctr__pool_new(n, &p, err, sizeof(err))) {
            CHECKF(0, "pool of %u: %s", n, err);
            continue;
        }
        unsigned size = ctr__pool_size(p), calls[8] = {0};
        CHECKF(size == (n ? n : 1), "pool of %u has %u threads", n, size);
        for (int r = 0; r < 100; r++)
            ctr__pool_run(p, pool_probe, calls);
        for (unsigned t = 0; t < 8; t++)
            CHECKF(calls[t] == (t < size ? 100u : 0u), "pool of %u: tid %u ran %u times", n, t, calls[t]);
        ctr__pool_free(p);
    }
    ctr__pool_free(NULL);
}

int main(void)
{
    char err[256];
    K = ctr_kernel_select(CTR_KERNEL_AUTO, err, sizeof(err));
    if (!K) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    test_pool();
    test_smelu_grad();
    grad_check(2, CTR_ACT_SMELU, 1.0f);
    grad_check(2, CTR_ACT_SMELU, 0.25f);
    grad_check(1, CTR_ACT_SMELU, 2.0f);
    grad_check(0, CTR_ACT_SMELU, 1.0f); /* logistic regression */
    test_learns_and_determinism();
    test_csv_equivalence();
    test_bad_rows();
    return test_main_end();
}
