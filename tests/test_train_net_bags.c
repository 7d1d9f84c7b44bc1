/* test_train_net_bags.c - the trainer's network (model/train_net.c) with
 * bag features:
 *  - the pooled input equals the serving gather (ctr_forward_gather) bit
 *    for bit, sum and mean;
 *  - every weight and table gradient against double-precision finite
 *    differences of a reference network that pools in double, on a batch
 *    with a value twice in one bag (counted twice), an empty bag and a
 *    full one; tolerances as in test_train.c (2e-5 + 2e-3 |fd|: float
 *    forward and backward against a double reference, h = 1e-5);
 *  - the parameters after a few update steps are the same bits on 1 and 3
 *    threads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/features.h"
#include "ctr/forward.h"
#include "ctr/kernels.h"
#include "ctr/model.h"
#include "testutil.h"
#include "train_int.h"

enum { ND = 2, NC = 3, DIM = 3, BUCKETS = 5, BN = 9, HID = 6, BAG1 = 4, BAG2 = 2 };
enum { SLOTS = 1 + BAG1 + BAG2 };

static const ctr_kernel_t *K;

typedef struct {
    const uint32_t *dims;
    double *W[2];
    double *T[NC];
    const ctr_cat_def_t *cat;
} ref_net_t;

static double smelu_d(double x)
{
    return x <= -1 ? 0 : x >= 1 ? x : (x + 1) * (x + 1) / 4;
}

/* Mean logloss of the batch, in double, pooling bags in double. */
static double ref_loss(const ref_net_t *r, const float *dense, const uint32_t *rows, const uint8_t *y)
{
    double loss = 0, x[64], z[64];
    for (size_t b = 0; b < BN; b++) {
        size_t in = 0;
        for (size_t k = 0; k < ND; k++)
            x[in++] = dense[b * ND + k];
        const uint32_t *rs = rows + b * SLOTS;
        for (size_t j = 0; j < NC; j++) {
            size_t w = ctr_features_width(&r->cat[j]), m = 0;
            double acc[DIM] = {0};
            for (size_t q = 0; q < w; q++) {
                if (r->cat[j].bag_max && rs[q] == CTR_EMPTY_SLOT)
                    continue;
                for (size_t e = 0; e < DIM; e++)
                    acc[e] += r->T[j][(size_t)rs[q] * DIM + e];
                m++;
            }
            for (size_t e = 0; e < DIM; e++)
                x[in++] = r->cat[j].pool == CTR_POOL_MEAN && m ? acc[e] / (double)m : acc[e];
            rs += w;
        }
        for (size_t l = 0; l < 2; l++) {
            uint32_t ni = r->dims[l], no = r->dims[l + 1];
            for (uint32_t o = 0; o < no; o++) {
                double a = r->W[l][(size_t)ni * no + o];
                for (uint32_t i = 0; i < ni; i++)
                    a += x[i] * r->W[l][(size_t)i * no + o];
                z[o] = a;
            }
            for (uint32_t o = 0; o < no; o++)
                x[o] = l == 1 ? z[o] : smelu_d(z[o]);
        }
        double p = 1.0 / (1.0 + exp(-x[0]));
        loss -= y[b] ? log(p) : log1p(-p);
    }
    return loss / BN;
}

/* The batch: C single-valued, B1 a bag of up to 4 (one example holds a row
 * twice, one is empty, one full), B2 a bag of up to 2. */
static void batch(float *dense, uint32_t *rows, uint8_t *y)
{
    test_rng_t rng = {91};
    for (size_t i = 0; i < BN * ND; i++)
        dense[i] = test_rng_uniform(&rng, -1.5f, 1.5f);
    for (size_t b = 0; b < BN; b++) {
        uint32_t *rs = rows + b * SLOTS;
        rs[0] = (uint32_t)(b % 4);
        size_t m1 = b % 5; /* 0..4 values */
        for (size_t q = 0; q < BAG1; q++)
            rs[1 + q] = q < m1 ? (uint32_t)(1 + (b + 2 * q) % BUCKETS) : CTR_EMPTY_SLOT;
        if (b == 3) { /* the same row twice in one bag */
            rs[1] = 2;
            rs[2] = 2;
        }
        size_t m2 = 1 + b % 2;
        for (size_t q = 0; q < BAG2; q++)
            rs[1 + BAG1 + q] = q < m2 ? (uint32_t)((b * 3 + q) % (BUCKETS + 1)) : CTR_EMPTY_SLOT;
        y[b] = (uint8_t)(b % 3 == 0);
    }
}

static void setup(ctr_cat_def_t *cat, ctr_layer_def_t *layers, ctr_model_def_t *def, ctr_pool_t pool)
{
    cat[0] = (ctr_cat_def_t){.name = "c", .buckets = BUCKETS, .dim = DIM};
    cat[1] = (ctr_cat_def_t){.name = "b1", .buckets = BUCKETS, .dim = DIM, .seed = 1, .bag_max = BAG1, .pool = pool};
    cat[2] = (ctr_cat_def_t){.name = "b2", .buckets = BUCKETS, .dim = DIM, .seed = 2, .bag_max = BAG2, .pool = pool};
    layers[0] = (ctr_layer_def_t){.in = ND + NC * DIM, .out = HID};
    layers[1] = (ctr_layer_def_t){.in = HID, .out = 1};
    *def = (ctr_model_def_t){.n_dense = ND, .n_cat = NC, .cat = cat, .n_layers = 2, .layers = layers,
                             .activation = CTR_ACT_SMELU, .beta = 1.0f};
}

static void grad_check(ctr_pool_t pool)
{
    const char *pname = pool == CTR_POOL_MEAN ? "mean" : "sum";
    ctr_cat_def_t cat[NC];
    ctr_layer_def_t layers[2];
    ctr_model_def_t def;
    setup(cat, layers, &def, pool);
    CHECK_EQ_SIZE(ctr_model_slots(&def), SLOTS);
    ctr__net_t net;
    if (ctr__net_init(&net, &def, BN, 1, 1)) {
        CHECK(!"net init");
        return;
    }
    ctr__net_init_params(&net, 5, 0.1f, 0.8f);
    float dense[BN * ND];
    uint32_t rows[BN * SLOTS];
    uint8_t y[BN];
    batch(dense, rows, y);
    double loss = ctr__net_step(&net, K, NULL, BN, dense, rows, y, 0);

    /* The pooled input is the serving gather's, bit for bit. */
    ctr_layer_def_t el[2];
    ctr_cat_def_t ec[NC];
    memcpy(ec, cat, sizeof ec);
    ctr__net_export(&net, el, ec);
    ctr_model_def_t edef = def;
    edef.cat = ec;
    edef.layers = el;
    float x[BN * (ND + NC * DIM)];
    CHECK(ctr_forward_gather(&edef, BN, dense, rows, x, ND + NC * DIM) == 0);
    CHECKF(!memcmp(x, net.A[0], sizeof x), "%s: the trainer's pooled input differs from ctr_forward_gather", pname);

    ref_net_t r = {net.dims, {NULL, NULL}, {NULL}, cat};
    for (size_t l = 0; l < 2; l++) {
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
    double l0 = ref_loss(&r, dense, rows, y);
    CHECKF(fabs(l0 - loss / BN) < 1e-5, "%s: loss %.8f vs reference %.8f", pname, loss / BN, l0);

    const double h = 1e-5;
    int bad = 0, checked = 0;
    for (size_t l = 0; l < 2; l++) {
        size_t n = ((size_t)net.dims[l] + 1) * net.dims[l + 1];
        for (size_t i = 0; i < n; i++) {
            double keep = r.W[l][i];
            r.W[l][i] = keep + h;
            double lp = ref_loss(&r, dense, rows, y);
            r.W[l][i] = keep - h;
            double lm = ref_loss(&r, dense, rows, y);
            r.W[l][i] = keep;
            double fd = (lp - lm) / (2 * h), g = net.gW[l][i];
            checked++;
            if (fabs(g - fd) > 2e-5 + 2e-3 * fabs(fd) && bad++ < 5)
                fprintf(stderr, "%s: layer %zu param %zu: backprop %.8g, finite difference %.8g\n",
                        pname, l, i, g, fd);
        }
    }
    /* gT holds only the rows the batch touched (others keep their zeros,
     * and so does the finite difference). */
    for (size_t j = 0; j < NC; j++)
        for (size_t i = 0; i < (BUCKETS + 1) * DIM; i++) {
            double keep = r.T[j][i];
            r.T[j][i] = keep + h;
            double lp = ref_loss(&r, dense, rows, y);
            r.T[j][i] = keep - h;
            double lm = ref_loss(&r, dense, rows, y);
            r.T[j][i] = keep;
            double fd = (lp - lm) / (2 * h), g = net.gT[j][i];
            checked++;
            if (fabs(g - fd) > 2e-5 + 2e-3 * fabs(fd) && bad++ < 5)
                fprintf(stderr, "%s: table %zu entry %zu: backprop %.8g, finite difference %.8g\n",
                        pname, j, i, g, fd);
        }
    CHECKF(bad == 0, "%s: %d of %d gradients disagree", pname, bad, checked);
    printf("bags, %s pooling: %d gradients agree with finite differences\n", pname, checked);
    for (size_t l = 0; l < 2; l++)
        free(r.W[l]);
    for (size_t j = 0; j < NC; j++)
        free(r.T[j]);
    ctr__net_free(&net);
}

/* A few update steps on 1 and on 3 threads: the same bits. */
static void thread_invariance(ctr_pool_t pool)
{
    ctr_cat_def_t cat[NC];
    ctr_layer_def_t layers[2];
    ctr_model_def_t def;
    setup(cat, layers, &def, pool);
    float dense[BN * ND];
    uint32_t rows[BN * SLOTS];
    uint8_t y[BN];
    batch(dense, rows, y);
    ctr__net_t net[2];
    ctr__pool_t *tp[2] = {NULL, NULL};
    char err[256];
    for (int t = 0; t < 2; t++) {
        CHECK(ctr__pool_new(t ? 3 : 1, &tp[t], err, sizeof err) == 0);
        CHECK(ctr__net_init(&net[t], &def, BN, t ? 3 : 1, 0) == 0);
        ctr__net_init_params(&net[t], 9, 0.0f, 0.3f);
        net[t].lr = 1e-2f;
        net[t].emb_lr = 5e-2f;
        for (int s = 0; s < 4; s++)
            ctr__net_step(&net[t], K, tp[t], BN, dense, rows, y, 1);
    }
    for (size_t j = 0; j < NC; j++)
        CHECKF(!memcmp(net[0].table[j], net[1].table[j], (BUCKETS + 1) * DIM * sizeof(float)),
               "table %zu differs between 1 and 3 threads", j);
    for (size_t l = 0; l < 2; l++)
        CHECKF(!memcmp(net[0].W[l], net[1].W[l],
                       ((size_t)net[0].dims[l] + 1) * net[0].dims[l + 1] * sizeof(float)),
               "layer %zu differs between 1 and 3 threads", l);
    for (int t = 0; t < 2; t++) {
        ctr__net_free(&net[t]);
        ctr__pool_free(tp[t]);
    }
}

int main(void)
{
    char err[256];
    K = ctr_kernel_select(CTR_KERNEL_AUTO, err, sizeof err);
    if (!K) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    grad_check(CTR_POOL_SUM);
    grad_check(CTR_POOL_MEAN);
    thread_invariance(CTR_POOL_SUM);
    thread_invariance(CTR_POOL_MEAN);
    return test_main_end();
}
