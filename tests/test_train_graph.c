/* test_train_graph.c - the interaction trainer (model/train_graph.c) on
 * whole small models: DLRM dot (lower and upper order, with and without
 * the diagonal) and DCNv2 (full and low rank, stacked and parallel, with
 * and without a bottom MLP) and Wukong (a learned and an identity
 * residual, with and without the flat FMB LayerNorm and the FMB's output
 * activation, with and without FMB hidden layers, no layers), over a schema with a single-valued feature,
 * a sum bag and a mean bag that shares the first feature's table.
 *
 *  - every parameter's gradient (every lin's weights and bias, every
 *    table entry) against central finite differences of the mean logloss
 *    computed in double by a reference forward written here from
 *    docs/MODEL_FORMAT.md;
 *  - the trainer's logits equal the serving pass's (ctr_forward on the
 *    exported description) bit for bit;
 *  - a few optimizer steps give bit-identical parameters with 1 or 3
 *    threads and with the scalar kernel or the widest one.
 *
 * The bound |g - fd| <= 1e-5 + 1e-3 |fd|: the finite difference is taken
 * in double with h = 1e-4 on a loss whose third derivatives are O(10) at
 * these sizes, so its own error (h^2 f''' / 6, plus 1e-16 / h of rounding)
 * is below 1e-7; the backward runs in float, where each gradient is a few
 * dozen products summed through at most ~8 layers, each adding a relative
 * error of a few 2^-24 to terms of size <= 1 / bn: well under 1e-6
 * absolute, with cancellation the only way to a larger relative error on
 * a tiny gradient, which the absolute term covers. SmeLU is C^1, so a
 * pre-activation within h of a knot moves the difference by O(h / beta),
 * not O(1); ReLU cases draw inputs away from 0 by the same argument
 * failing only with probability ~h. A wrong term (a missed factor 2 on the
 * diagonal, a mean bag not divided, a transposed weight) is off by O(1)
 * of the gradient and fails by orders of magnitude. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/features.h"
#include "ctr/forward.h"
#include "ctr/kernels.h"
#include "ctr/model.h"
#include "pool_int.h"
#include "testutil.h"
#include "train_graph.h"

enum { ND = 3, NC = 3, DIM = 3, BUCKETS = 4, BN = 9, SLOTS = 1 + 3 + 2 };

static const ctr_kernel_t *K;

/* Feature 0 single, 1 a sum bag of 3, 2 a mean bag of 2 on table 0. */
static const ctr_cat_def_t CATS[NC] = {
    {.name = "a", .buckets = BUCKETS, .dim = DIM},
    {.name = "b", .buckets = BUCKETS, .dim = DIM, .bag_max = 3, .pool = CTR_POOL_SUM},
    {.name = "c", .buckets = BUCKETS, .dim = DIM, .bag_max = 2, .pool = CTR_POOL_MEAN, .shares = 1},
};

typedef struct {
    const ctr__graph_t *g;
    double **W;   /* per lin, (in + bias) * out */
    double **T;   /* per owned table */
} ref_t;

static double act_d(ctr_activation_t act, double z, double beta)
{
    if (act == CTR_ACT_RELU)
        return z > 0 ? z : 0;
    if (z <= -beta)
        return 0;
    if (z >= beta)
        return z;
    return (z + beta) * (z + beta) / (4 * beta);
}

/* y = lin(x), with act when the lin has it. */
static void lin_d(const ref_t *r, size_t li, const double *x, double *y)
{
    const ctr__glin_t *L = &r->g->lin[li];
    const double *W = r->W[li];
    for (uint32_t o = 0; o < L->out; o++) {
        double acc = L->bias ? W[(size_t)L->in * L->out + o] : 0;
        for (uint32_t i = 0; i < L->in; i++)
            acc += x[i] * W[(size_t)i * L->out + o];
        y[o] = L->act ? act_d(r->g->sh.act, acc, r->g->sh.beta) : acc;
    }
}

#define MAXW 256

/* An MLP over x (copied), its output into y; returns its width. */
static size_t mlp_d(const ref_t *r, const ctr__gmlp_t *m, const double *x, size_t in, double *y)
{
    double a[MAXW], b[MAXW];
    memcpy(a, x, in * sizeof(double));
    for (size_t l = 0; l < m->n; l++) {
        lin_d(r, m->first + l, a, b);
        in = r->g->lin[m->first + l].out;
        memcpy(a, b, in * sizeof(double));
    }
    memcpy(y, a, in * sizeof(double));
    return in;
}

/* LayerNorm of w values in place, gamma and beta from gb = [gamma | beta]. */
static void ln_d(double *v, size_t w, const double *gb, double eps)
{
    double mean = 0, var = 0;
    for (size_t a = 0; a < w; a++)
        mean += v[a];
    mean /= (double)w;
    for (size_t a = 0; a < w; a++)
        var += (v[a] - mean) * (v[a] - mean);
    var /= (double)w;
    double inv = 1 / sqrt(var + eps);
    for (size_t a = 0; a < w; a++)
        v[a] = (v[a] - mean) * inv * gb[a] + gb[w + a];
}

/* Wukong's layers over X (ne rows of d) as docs/MODEL_FORMAT.md writes
 * them, the last X' into T; returns its width. */
static size_t wukong_d(const ref_t *r, const double *X, double *T)
{
    const ctr__graph_t *g = r->g;
    const size_t d = DIM, k = g->sh.k, n_f = g->sh.n_f, n_l = g->sh.n_l;
    const double eps = g->sh.ln_eps;
    double x[MAXW], s[MAXW], z[MAXW], f[MAXW], fo[MAXW];
    size_t n_cur = g->ne;
    memcpy(x, X, n_cur * d * sizeof(double));
    for (size_t i = 0; i < g->sh.n_wk; i++) {
        const ctr__twk_layer_t *W = &g->wk[i];
        const size_t n_in = W->n_in, n_out = W->n_out;
        CHECK(n_in == n_cur);
        const double *Y = r->W[W->y], *LC = r->W[W->lcb];
        for (size_t a = 0; a < d; a++) /* Z = X^T Y */
            for (size_t j = 0; j < k; j++) {
                z[a * k + j] = 0;
                for (size_t m = 0; m < n_in; m++)
                    z[a * k + j] += x[m * d + a] * Y[m * k + j];
            }
        for (size_t m = 0; m < n_in; m++) /* F = X Z */
            for (size_t j = 0; j < k; j++) {
                f[m * k + j] = 0;
                for (size_t a = 0; a < d; a++)
                    f[m * k + j] += x[m * d + a] * z[a * k + j];
            }
        if (W->fln != SIZE_MAX)
            ln_d(f, n_in * k, r->W[W->fln], eps);
        CHECK(mlp_d(r, &W->fmb, f, n_in * k, fo) == n_f * d);
        memcpy(s, fo, n_f * d * sizeof(double));
        for (size_t o = 0; o < n_l; o++) /* L = W_L X; the lin holds W_L^T */
            for (size_t a = 0; a < d; a++) {
                double acc = 0;
                for (size_t m = 0; m < n_in; m++)
                    acc += LC[m * n_l + o] * x[m * d + a];
                s[(n_f + o) * d + a] = acc;
            }
        for (size_t o = 0; o < n_out; o++) /* + R */
            for (size_t a = 0; a < d; a++) {
                double acc = 0;
                if (W->res == SIZE_MAX)
                    acc = x[o * d + a];
                else
                    for (size_t m = 0; m < n_in; m++)
                        acc += r->W[W->res][m * n_out + o] * x[m * d + a];
                s[o * d + a] += acc;
            }
        for (size_t o = 0; o < n_out; o++)
            ln_d(s + o * d, d, r->W[W->ln], eps);
        n_cur = n_out;
        memcpy(x, s, n_cur * d * sizeof(double));
    }
    memcpy(T, x, n_cur * d * sizeof(double));
    return n_cur * d;
}

static double ref_loss(const ref_t *r, const float *dense, const uint32_t *rows, const uint8_t *y)
{
    const ctr__graph_t *g = r->g;
    const size_t d = DIM;
    double loss = 0;
    for (size_t b = 0; b < BN; b++) {
        double X[MAXW] = {0}, T[MAXW], dn[ND];
        for (size_t k = 0; k < ND; k++)
            dn[k] = dense[b * ND + k];
        const uint32_t *rr = rows + b * SLOTS;
        for (size_t j = 0, s = 0; j < NC; j++) {
            const double *tab = r->T[CATS[j].shares ? CATS[j].shares - 1 : j];
            double *e = X + g->emb_off + j * d;
            size_t m = CATS[j].bag_max ? CATS[j].bag_max : 1, cnt = 0;
            for (size_t q = 0; q < m; q++, s++) {
                if (rr[s] == CTR_EMPTY_SLOT)
                    continue;
                cnt++;
                for (size_t a = 0; a < d; a++)
                    e[a] += tab[(size_t)rr[s] * d + a];
            }
            if (CATS[j].bag_max && CATS[j].pool == CTR_POOL_MEAN && cnt)
                for (size_t a = 0; a < d; a++)
                    e[a] /= (double)cnt;
        }
        if (g->has_bottom)
            mlp_d(r, &g->bottom, dn, ND, X);
        else if (g->sh.arch == CTR_ARCH_DCNV2)
            memcpy(X, dn, ND * sizeof(double));
        size_t tin = 0;
        if (g->sh.arch == CTR_ARCH_DOT) {
            size_t ne = g->ne;
            double G[16][16];
            for (size_t i = 0; i < ne; i++)
                for (size_t j = 0; j < ne; j++) {
                    G[i][j] = 0;
                    for (size_t a = 0; a < d; a++)
                        G[i][j] += X[i * d + a] * X[j * d + a];
                }
            for (size_t a = 0; a < d && ND; a++)
                T[tin++] = X[a];
            for (size_t i = 0; i < ne; i++) {
                if (g->sh.dot_order == CTR_DOT_UPPER)
                    for (size_t j = g->sh.dot_self ? i : i + 1; j < ne; j++)
                        T[tin++] = G[i][j];
                else
                    for (size_t j = 0; j < i + (g->sh.dot_self != 0); j++)
                        T[tin++] = G[i][j];
            }
        } else if (g->sh.arch == CTR_ARCH_WUKONG) {
            tin = wukong_d(r, X, T);
        } else {
            size_t D = g->ldx;
            double x[MAXW], t[MAXW], v[MAXW];
            memcpy(x, X, D * sizeof(double));
            for (size_t l = 0; l < g->sh.n_cross; l++) {
                size_t li = g->cross[l];
                if (g->sh.rank) {
                    lin_d(r, li, x, v);
                    lin_d(r, li + 1, v, t);
                } else {
                    lin_d(r, li, x, t);
                }
                for (size_t a = 0; a < D; a++)
                    x[a] = X[a] * t[a] + x[a];
            }
            memcpy(T, x, D * sizeof(double));
            tin = D;
            if (g->sh.structure == CTR_DCN_PARALLEL)
                tin += mlp_d(r, &g->deep, X, D, T + D);
        }
        CHECK(tin == g->tin);
        double z;
        mlp_d(r, &g->top, T, tin, &z);
        double p = 1.0 / (1.0 + exp(-z));
        loss -= y[b] ? log(p) : log1p(-p);
    }
    return loss / BN;
}

static void make_batch(float *dense, uint32_t *rows, uint8_t *y)
{
    test_rng_t rng = {91};
    for (size_t i = 0; i < BN * ND; i++)
        dense[i] = test_rng_uniform(&rng, -1.5f, 1.5f);
    for (size_t b = 0; b < BN; b++) {
        uint32_t *rr = rows + b * SLOTS;
        rr[0] = (uint32_t)(b % 3);                      /* rows 0..2 of table 0 */
        for (size_t q = 0; q < 3; q++)                  /* a sum bag, some slots empty */
            rr[1 + q] = (b + q) % 4 == 3 ? CTR_EMPTY_SLOT : (uint32_t)(1 + (b * 7 + q * 3) % 4);
        rr[4] = b % 4 == 1 ? CTR_EMPTY_SLOT : (uint32_t)((b * 5) % 5); /* mean bag on table 0 */
        rr[5] = b % 3 == 2 ? CTR_EMPTY_SLOT : (uint32_t)((b + 2) % 5);
        if (b == 4)
            rr[4] = rr[5] = CTR_EMPTY_SLOT;             /* an empty bag: zeros, no gradient */
        if (b == 5)
            rr[1] = rr[2] = 2;                          /* a row twice in one bag */
        y[b] = (uint8_t)(b % 3 == 0);
    }
}

typedef struct {
    const char *name;
    ctr__graph_shape_t sh;
} case_t;

/* The trainer's initialisation, then non-zero biases, so that the bias
 * rows are tested off their initial zeros. */
static void init_params(ctr__graph_t *g)
{
    ctr__graph_init_params(g, 7, 0.2f, 0.8f);
    test_rng_t rng = {5};
    for (size_t i = 0; i < g->n_lin; i++) {
        ctr__glin_t *L = &g->lin[i];
        for (uint32_t o = 0; L->bias && o < L->out; o++)
            L->W[(size_t)L->in * L->out + o] = test_rng_uniform(&rng, -0.4f, 0.4f);
    }
}

static void export_def(ctr__graph_t *g, ctr_model_def_t *def, ctr_cat_def_t *cat, ctr_dense_def_t *dn)
{
    static const char *names[ND] = {"x", "y", "z"};
    memcpy(cat, CATS, sizeof(CATS));
    for (size_t k = 0; k < ND; k++)
        dn[k] = (ctr_dense_def_t){.name = names[k], .transform = CTR_TRANSFORM_IDENTITY, .std = 1};
    *def = (ctr_model_def_t){.name = "t", .n_dense = ND, .dense = dn, .n_cat = NC, .cat = cat};
    ctr__graph_export(g, def, cat);
}

/* The trainer's logits (top output Z) against ctr_forward's, bit for bit. */
static void check_serving(ctr__graph_t *g, const char *name, const float *dense, const uint32_t *rows)
{
    ctr_model_def_t def;
    ctr_cat_def_t cat[NC];
    ctr_dense_def_t dn[ND];
    export_def(g, &def, cat, dn);
    char err[256];
    ctr_scratch_t *s = NULL;
    if (ctr_scratch_new(&def, BN, &s, err, sizeof(err))) {
        CHECKF(0, "%s: scratch: %s", name, err);
        return;
    }
    float sc[BN], lg[BN];
    CHECK(!ctr_forward(&def, K, BN, dense, rows, sc, lg, s));
    const ctr__glin_t *out = &g->lin[g->top.first + g->top.n - 1];
    for (size_t b = 0; b < BN; b++)
        if (!CHECK_EQ_BITS(out->Z[b], lg[b])) {
            fprintf(stderr, "  %s: example %zu\n", name, b);
            break;
        }
    ctr_scratch_free(s);
}

static void grad_check(const case_t *tc)
{
    float dense[BN * ND];
    uint32_t rows[BN * SLOTS];
    uint8_t y[BN];
    make_batch(dense, rows, y);
    ctr__graph_shape_t sh = tc->sh;
    sh.n_dense = ND;
    sh.n_cat = NC;
    sh.cat = CATS;
    ctr__graph_t g;
    char err[256];
    if (ctr__graph_init(&g, &sh, BN, 1, 1, err, sizeof(err))) {
        CHECKF(0, "%s: %s", tc->name, err);
        return;
    }
    init_params(&g);
    double loss = ctr__graph_step(&g, K, NULL, BN, dense, rows, y, 0) / BN;
    check_serving(&g, tc->name, dense, rows);

    ref_t r = {&g, calloc(g.n_lin, sizeof(double *)), calloc(NC, sizeof(double *))};
    for (size_t i = 0; i < g.n_lin; i++) {
        size_t n = ((size_t)g.lin[i].in + g.lin[i].bias) * g.lin[i].out;
        r.W[i] = malloc(n * sizeof(double));
        for (size_t e = 0; e < n; e++)
            r.W[i][e] = g.lin[i].W[e];
    }
    for (size_t j = 0; j < NC; j++) {
        if (!g.table[j])
            continue;
        r.T[j] = malloc((BUCKETS + 1) * DIM * sizeof(double));
        for (size_t e = 0; e < (BUCKETS + 1) * DIM; e++)
            r.T[j][e] = g.table[j][e];
    }
    double l0 = ref_loss(&r, dense, rows, y);
    CHECKF(fabs(l0 - loss) < 1e-5, "%s: loss %.8f vs reference %.8f", tc->name, loss, l0);

    const double h = 1e-4;
    int bad = 0, checked = 0;
    double worst = 0;
    for (size_t i = 0; i < g.n_lin + NC; i++) {
        double *p = i < g.n_lin ? r.W[i] : r.T[i - g.n_lin];
        const float *gp = i < g.n_lin ? g.lin[i].gW : g.gT[i - g.n_lin];
        size_t n = i < g.n_lin ? ((size_t)g.lin[i].in + g.lin[i].bias) * g.lin[i].out
                               : (BUCKETS + 1) * DIM;
        if (!p)
            continue;
        for (size_t e = 0; e < n; e++) {
            double keep = p[e];
            p[e] = keep + h;
            double lp = ref_loss(&r, dense, rows, y);
            p[e] = keep - h;
            double lm = ref_loss(&r, dense, rows, y);
            p[e] = keep;
            double fd = (lp - lm) / (2 * h), gv = gp[e], dev = fabs(gv - fd) / (1e-5 + 1e-3 * fabs(fd));
            checked++;
            worst = dev > worst ? dev : worst;
            if (dev > 1 && bad++ < 5)
                fprintf(stderr, "%s: %s %zu entry %zu: backprop %.8g, finite difference %.8g\n", tc->name,
                        i < g.n_lin ? "lin" : "table", i < g.n_lin ? i : i - g.n_lin, e, gv, fd);
        }
    }
    CHECKF(bad == 0, "%s: %d of %d gradients disagree", tc->name, bad, checked);
    fprintf(stderr, "%s: %d gradients, worst at %.3f of the bound\n", tc->name, checked, worst);

    /* Some steps on the batch lower its loss. */
    g.lr = 1e-2f;
    g.emb_lr = 1e-2f;
    for (int s = 0; s < 5; s++)
        ctr__graph_step(&g, K, NULL, BN, dense, rows, y, 1);
    double after = ctr__graph_step(&g, K, NULL, BN, dense, rows, y, 0) / BN;
    CHECKF(after < loss, "%s: 5 steps on one batch: loss %g -> %g", tc->name, loss, after);

    for (size_t i = 0; i < g.n_lin; i++)
        free(r.W[i]);
    for (size_t j = 0; j < NC; j++)
        free(r.T[j]);
    free(r.W);
    free(r.T);
    ctr__graph_free(&g);
}

/* Steps on batches of 70 (three phase-A chunks, the last one short) with
 * `threads` threads and kernel k; the parameters afterwards, concatenated. */
static float *train_some(const case_t *tc, const ctr_kernel_t *k, unsigned threads, size_t *n_out)
{
    enum { B = 70, STEPS = 4 };
    ctr__graph_shape_t sh = tc->sh;
    sh.n_dense = ND;
    sh.n_cat = NC;
    sh.cat = CATS;
    ctr__graph_t g;
    ctr__pool_t *pool = NULL;
    char err[256];
    if (ctr__graph_init(&g, &sh, B, threads, 0, err, sizeof(err)) || ctr__pool_new(threads, &pool, err, sizeof(err))) {
        CHECKF(0, "%s", err);
        return NULL;
    }
    ctr__graph_init_params(&g, 11, -1.0f, 0.3f);
    g.lr = 3e-3f;
    g.emb_lr = 0.05f;
    test_rng_t rng = {123};
    float dense[B * ND];
    uint32_t rows[B * SLOTS];
    uint8_t y[B];
    for (int s = 0; s < STEPS; s++) {
        for (size_t i = 0; i < B * ND; i++)
            dense[i] = test_rng_uniform(&rng, -2, 2);
        for (size_t i = 0; i < B * SLOTS; i++) {
            uint32_t v = (uint32_t)(test_rng_next(&rng) % 6);
            rows[i] = v == 5 && i % SLOTS ? CTR_EMPTY_SLOT : v % 5;
        }
        for (size_t b = 0; b < B; b++)
            y[b] = (uint8_t)(test_rng_next(&rng) % 4 == 0);
        g.opt = s % 2 ? CTR_OPTIM_ADAM : CTR_OPTIM_ADAGRAD;
        ctr__graph_step(&g, k, pool, B, dense, rows, y, 1);
    }
    size_t n = 0;
    for (size_t i = 0; i < g.n_lin; i++)
        n += ((size_t)g.lin[i].in + g.lin[i].bias) * g.lin[i].out;
    n += (BUCKETS + 1) * DIM * 2;
    float *all = malloc(n * sizeof(float)), *p = all;
    for (size_t i = 0; i < g.n_lin; i++) {
        size_t m = ((size_t)g.lin[i].in + g.lin[i].bias) * g.lin[i].out;
        memcpy(p, g.lin[i].W, m * sizeof(float));
        p += m;
    }
    for (size_t j = 0; j < 2; j++, p += (BUCKETS + 1) * DIM)
        memcpy(p, g.table[j], (BUCKETS + 1) * DIM * sizeof(float));
    *n_out = n;
    ctr__pool_free(pool);
    ctr__graph_free(&g);
    return all;
}

static void check_invariance(const case_t *tc)
{
    const ctr_kernel_t *scalar = ctr_kernel_get(CTR_KERNEL_SCALAR);
    size_t n1, n2, n3;
    float *a = train_some(tc, K, 1, &n1), *b = train_some(tc, K, 3, &n2), *c = train_some(tc, scalar, 2, &n3);
    if (a && b && c && CHECK_EQ_SIZE(n1, n2) && CHECK_EQ_SIZE(n1, n3)) {
        CHECKF(!memcmp(a, b, n1 * sizeof(float)), "%s: 1 vs 3 threads differ", tc->name);
        CHECKF(!memcmp(a, c, n1 * sizeof(float)), "%s: %s vs scalar differ", tc->name, K->name);
    }
    free(a);
    free(b);
    free(c);
}

static void swap_params(ctr__graph_t *g)
{
    for (size_t i = 0; i < g->n_lin; i++) {
        float *t = g->lin[i].W;
        g->lin[i].W = g->lin[i].gW;
        g->lin[i].gW = t;
    }
    for (size_t j = 0; j < NC; j++) {
        float *t = g->table[j];
        g->table[j] = g->gT[j];
        g->gT[j] = t;
    }
}

/* For tests/test_train_torch.sh: each case's initial model (model.ctrm),
 * its gradients on the batch of make_batch written as a model of the same
 * shape (grad.ctrm: every tensor holds dloss/d that tensor, untouched
 * table rows 0) and the batch (batch.bin: dense f32 [BN][ND], rows i64
 * [BN][SLOTS] with -1 for an empty slot, labels u8 [BN]). */
static int torch_dump(const char *dir, const case_t *cases, size_t n_cases)
{
    float dense[BN * ND];
    uint32_t rows[BN * SLOTS];
    uint8_t y[BN];
    make_batch(dense, rows, y);
    char err[256], path[1024];
    for (size_t i = 0; i < n_cases; i++) {
        ctr__graph_shape_t sh = cases[i].sh;
        sh.n_dense = ND;
        sh.n_cat = NC;
        sh.cat = CATS;
        ctr__graph_t g;
        if (ctr__graph_init(&g, &sh, BN, 1, 1, err, sizeof(err))) {
            fprintf(stderr, "%s: %s\n", cases[i].name, err);
            return 1;
        }
        init_params(&g);
        ctr__graph_step(&g, K, NULL, BN, dense, rows, y, 0);
        ctr_model_def_t def;
        ctr_cat_def_t cat[NC];
        ctr_dense_def_t dn[ND];
        int rc = 0;
        for (int pass = 0; pass < 2 && !rc; pass++) {
            if (pass)
                swap_params(&g);
            if (pass) /* Wukong's LCB and res export WT: the gradient's transpose */
                for (size_t l = 0; l < g.n_lin; l++)
                    for (uint32_t o = 0; o < g.lin[l].out; o++)
                        for (uint32_t e = 0; e < g.lin[l].in; e++)
                            g.lin[l].WT[(size_t)o * g.lin[l].in + e] = g.lin[l].W[(size_t)e * g.lin[l].out + o];
            export_def(&g, &def, cat, dn);
            snprintf(path, sizeof(path), "%s/case%zu.%s.ctrm", dir, i, pass ? "grad" : "model");
            rc = ctr_model_write(path, &def, NULL, NULL, err, sizeof(err));
        }
        ctr__graph_free(&g);
        if (rc) {
            fprintf(stderr, "%s: %s\n", path, err);
            return 1;
        }
        printf("case%zu %s\n", i, cases[i].name);
    }
    int64_t r64[BN * SLOTS];
    for (size_t i = 0; i < BN * SLOTS; i++)
        r64[i] = rows[i] == CTR_EMPTY_SLOT ? -1 : (int64_t)rows[i];
    snprintf(path, sizeof(path), "%s/batch.bin", dir);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(dense, sizeof(dense), 1, f) != 1 || fwrite(r64, sizeof(r64), 1, f) != 1 ||
        fwrite(y, sizeof(y), 1, f) != 1 || fclose(f)) {
        fprintf(stderr, "%s: write failed\n", path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    char err[256];
    K = ctr_kernel_select(CTR_KERNEL_AUTO, err, sizeof(err));
    if (!K) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    static const uint32_t bottom[] = {4}, top[] = {5, 3}, deep[] = {4, 3};
    static const uint32_t fmb[] = {4};
#define WK .fmb = fmb, .n_fmb = 1, .ln_eps = 1e-5f
#define BASE .bottom = bottom, .n_bottom = 1, .top = top, .n_top = 2, .beta = 1.0f
    const case_t cases[] = {
        {"dot lower smelu", {.arch = CTR_ARCH_DOT, .act = CTR_ACT_SMELU, BASE}},
        {"dot upper self relu", {.arch = CTR_ARCH_DOT, .act = CTR_ACT_RELU, .dot_order = CTR_DOT_UPPER,
                                 .dot_self = 1, BASE}},
        {"dot lower self smelu 0.5, no top hidden", {.arch = CTR_ARCH_DOT, .act = CTR_ACT_SMELU, .dot_self = 1,
                                                     .bottom = bottom, .n_bottom = 1, .beta = 0.5f}},
        {"dcnv2 full stacked", {.arch = CTR_ARCH_DCNV2, .act = CTR_ACT_SMELU, .n_cross = 2, BASE}},
        {"dcnv2 rank 2 stacked", {.arch = CTR_ARCH_DCNV2, .act = CTR_ACT_SMELU, .n_cross = 2, .rank = 2, BASE}},
        {"dcnv2 full parallel relu", {.arch = CTR_ARCH_DCNV2, .act = CTR_ACT_RELU, .n_cross = 2,
                                      .structure = CTR_DCN_PARALLEL, .deep = deep, .n_deep = 2, BASE}},
        {"dcnv2 rank 3 parallel", {.arch = CTR_ARCH_DCNV2, .act = CTR_ACT_SMELU, .n_cross = 3, .rank = 3,
                                   .structure = CTR_DCN_PARALLEL, .deep = deep, .n_deep = 1, BASE}},
        {"dcnv2 no bottom, full", {.arch = CTR_ARCH_DCNV2, .act = CTR_ACT_SMELU, .n_cross = 1, .no_bottom = 1,
                                   BASE}},
        {"dcnv2 no cross layers", {.arch = CTR_ARCH_DCNV2, .act = CTR_ACT_SMELU, BASE}},
        {"wukong learned then identity residual", {.arch = CTR_ARCH_WUKONG, .act = CTR_ACT_SMELU, .n_wk = 2,
                                                   .n_f = 2, .n_l = 1, .k = 2, WK, BASE}},
        {"wukong flat LN, fmb out act, relu", {.arch = CTR_ARCH_WUKONG, .act = CTR_ACT_RELU, .n_wk = 2,
                                               .n_f = 2, .n_l = 2, .k = 3, WK, .fmb_ln = CTR_FMB_LN_FLAT,
                                               .fmb_out_act = 1, BASE}},
        {"wukong 1 layer, learned residual, flat LN, no FMB hidden", {.arch = CTR_ARCH_WUKONG,
            .act = CTR_ACT_SMELU, .n_wk = 1, .n_f = 1, .n_l = 2, .k = 2, .ln_eps = 1e-5f,
            .fmb_ln = CTR_FMB_LN_FLAT, .fmb_out_act = 1, BASE}},
        {"wukong no layers", {.arch = CTR_ARCH_WUKONG, .act = CTR_ACT_SMELU, .ln_eps = 1e-5f, BASE}},
    };
    if (argc == 3 && !strcmp(argv[1], "--torch-dump"))
        return torch_dump(argv[2], cases, CTR_ARRAY_LEN(cases));
    for (size_t i = 0; i < CTR_ARRAY_LEN(cases); i++) {
        grad_check(&cases[i]);
        check_invariance(&cases[i]);
    }

    /* Shapes the trainer refuses, naming the field. */
    ctr__graph_shape_t bad = {.arch = CTR_ARCH_DCNV2, .n_dense = ND, .n_cat = NC, .cat = CATS,
                              .act = CTR_ACT_SMELU, .beta = 1, .n_cross = 1, .rank = 99};
    ctr__graph_t g;
    CHECK(ctr__graph_init(&g, &bad, 8, 1, 0, err, sizeof(err)) == CTR_EINVAL && strstr(err, "rank"));
    bad.rank = 0;
    bad.structure = CTR_DCN_PARALLEL;
    CHECK(ctr__graph_init(&g, &bad, 8, 1, 0, err, sizeof(err)) == CTR_EINVAL && strstr(err, "deep"));
    bad.arch = CTR_ARCH_MLP;
    CHECK(ctr__graph_init(&g, &bad, 8, 1, 0, err, sizeof(err)) == CTR_EINVAL && strstr(err, "arch"));
    bad.arch = CTR_ARCH_WUKONG;
    bad.ln_eps = 1e-5f;
    bad.n_wk = 1;
    bad.k = 4;
    bad.n_l = 2;
    CHECK(ctr__graph_init(&g, &bad, 8, 1, 0, err, sizeof(err)) == CTR_EINVAL && strstr(err, "nf"));
    bad.n_f = 2;
    bad.ln_eps = 0;
    CHECK(ctr__graph_init(&g, &bad, 8, 1, 0, err, sizeof(err)) == CTR_EINVAL && strstr(err, "ln-eps"));
    bad.arch = CTR_ARCH_DOT;
    bad.n_cat = 1;
    bad.n_dense = 0;
    CHECK(ctr__graph_init(&g, &bad, 8, 1, 0, err, sizeof(err)) == CTR_EINVAL && strstr(err, "pairs"));
    return test_main_end();
}
