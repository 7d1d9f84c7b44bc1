/* gendata.c - synthetic Criteo-shaped rows from a hidden model (data.h).
 *
 * The hidden model, drawn from model_seed:
 *  - I1..I13: a latent u ~ N(0, 1) per row and feature, written as the
 *    count floor(exp(mu + s u)) - 1 (so -1 appears, like Criteo's I2); it
 *    adds w u to the logit, and two features add a curved term -c u^2.
 *  - C1..C26: vocabularies of 3 to 50,000 values drawn from a Zipf law
 *    (power-law frequencies, a long tail of rare values), written as 8 hex
 *    digits; each value (and "missing") adds its own effect ~ N(0, sigma_j)
 *    (some features are pure noise), and six features carry 4-d latent
 *    factors whose pairwise dot products add interactions that a linear
 *    model cannot express.
 *  - missing rates per column close to Criteo's (I12 77%, C22 76%, ...).
 *  - the bias is set so that about 25.6% of rows are positive.
 *  - with bag_features N > 0, bag columns B1..BN: each row holds 0..max_bag
 *    values (uniform), drawn with repetition from a Zipf vocabulary of
 *    500 to 8000 values, written as 8 hex digits joined by '|'; every
 *    value carries an effect ~ N(0, sigma_b) and the bag adds the sum of
 *    its values' effects (sum pooling, a repeated value counts twice).
 *    These draws come from streams of their own, so the Criteo columns of
 *    a row are the same with or without bags (its label is not).
 * Labels are Bernoulli(sigmoid(logit)). The generator reports the AUC and
 * logloss of its own probabilities on the rows it wrote: the reference a
 * trained model can approach but not beat (up to sampling noise). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/data.h"
#include "ctr/metrics.h"
#include "ctr/rng.h"

#define ND CTR_CRITEO_N_DENSE
#define NC CTR_CRITEO_N_CAT
#define NF 4        /* latent factor width */

static const double dense_missing[ND] = {0.45, 0.0, 0.2, 0.21, 0.03, 0.22, 0.04,
                                         0.0, 0.04, 0.45, 0.04, 0.77, 0.21};
static const uint32_t vocab[NC] = {1400, 550, 50000, 30000, 300, 20, 10000, 600, 3,
                                   25000, 5000, 40000, 3000, 27, 10000, 35000, 10,
                                   4000, 2000, 4, 45000, 15, 15, 30000, 80, 20000};
static const double cat_missing[NC] = {0, 0, 0.03, 0.03, 0, 0.12, 0, 0, 0, 0.03, 0,
                                       0.03, 0, 0, 0, 0.03, 0, 0, 0.44, 0.44, 0.03,
                                       0.76, 0, 0.03, 0.44, 0.44};
/* features carrying latent factors (interactions) */
static const int factor_feat[] = {4, 5, 13, 16, 21, 24};

typedef struct {
    double mu[ND], s[ND], w[ND], curve[ND];
    double *cdf[NC];          /* Zipf CDF over the vocabulary */
    double *eff[NC];          /* vocab + 1 effects: [0] = missing */
    double *fac[NC];          /* (vocab + 1) * NF, or NULL */
    uint32_t salt[NC];
    double bias;
    /* bag columns */
    uint32_t nb, max_bag;
    uint32_t *bvocab, *bsalt;
    double **bcdf, **beff;   /* [nb]: Zipf CDF, vocab effects */
} hidden_t;

#define MAX_BAG_FEATURES 64

static double runif(uint64_t *s) /* (0, 1) */
{
    return ((double)(ctr_splitmix64_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double rnorm(uint64_t *s)
{
    double u = runif(s), v = runif(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static void hidden_free(hidden_t *h)
{
    for (int j = 0; j < NC; j++) {
        free(h->cdf[j]);
        free(h->eff[j]);
        free(h->fac[j]);
    }
    for (uint32_t b = 0; b < h->nb; b++) {
        if (h->bcdf)
            free(h->bcdf[b]);
        if (h->beff)
            free(h->beff[b]);
    }
    free(h->bcdf);
    free(h->beff);
    free(h->bvocab);
    free(h->bsalt);
}

static uint32_t zipf_draw(const double *cdf, uint32_t n, double u)
{
    uint32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

typedef struct {
    double u[ND];
    int64_t count[ND];
    int dmiss[ND];
    uint32_t val[NC]; /* 0 = missing, else 1..vocab */
} draw_t;

static double draw_row(const hidden_t *h, uint64_t *s, draw_t *d)
{
    double z = 0;
    for (int k = 0; k < ND; k++) {
        double u = rnorm(s);
        d->u[k] = u;
        d->count[k] = (int64_t)floor(exp(h->mu[k] + h->s[k] * u)) - 1;
        d->dmiss[k] = runif(s) < dense_missing[k];
        if (!d->dmiss[k])
            z += h->w[k] * u - h->curve[k] * u * u;
    }
    for (int j = 0; j < NC; j++) {
        double m = runif(s), u = runif(s);
        d->val[j] = m < cat_missing[j] ? 0 : 1 + zipf_draw(h->cdf[j], vocab[j], u);
        z += h->eff[j][d->val[j]];
    }
    size_t nfe = CTR_ARRAY_LEN(factor_feat);
    for (size_t a = 0; a < nfe; a++)
        for (size_t b = a + 1; b < nfe; b++) {
            const double *fa = h->fac[factor_feat[a]] + (size_t)d->val[factor_feat[a]] * NF;
            const double *fb = h->fac[factor_feat[b]] + (size_t)d->val[factor_feat[b]] * NF;
            for (int q = 0; q < NF; q++)
                z += fa[q] * fb[q];
        }
    return z;
}

/* One row's bags from the bag stream s: values bval[b * max_bag + k] (1..
 * vocab) for k < bn[b]; returns their summed effects. */
static double draw_bags(const hidden_t *h, uint64_t *s, uint32_t *bn, uint32_t *bval)
{
    double z = 0;
    for (uint32_t b = 0; b < h->nb; b++) {
        bn[b] = (uint32_t)(runif(s) * (h->max_bag + 1));
        if (bn[b] > h->max_bag)
            bn[b] = h->max_bag;
        for (uint32_t k = 0; k < bn[b]; k++) {
            uint32_t v = 1 + zipf_draw(h->bcdf[b], h->bvocab[b], runif(s));
            bval[(size_t)b * h->max_bag + k] = v;
            z += h->beff[b][v];
        }
    }
    return z;
}

/* Zipf CDF over n values with exponent zs into cdf[n]. */
static void zipf_cdf(double *cdf, uint32_t n, double zs)
{
    double tot = 0;
    for (uint32_t v = 0; v < n; v++)
        tot += pow(v + 1.0, -zs);
    double c = 0;
    for (uint32_t v = 0; v < n; v++) {
        c += pow(v + 1.0, -zs) / tot;
        cdf[v] = c;
    }
    cdf[n - 1] = 1.0;
}

/* The bag columns' vocabularies and effects, from a stream of their own
 * (the rest of the hidden model does not move with them). */
static int hidden_bags(hidden_t *h, uint64_t model_seed, uint32_t nb, uint32_t max_bag)
{
    static const uint32_t bag_vocab[] = {2000, 500, 8000, 1000, 4000};
    h->nb = nb;
    h->max_bag = max_bag;
    if (!nb)
        return 0;
    if (!(h->bvocab = calloc(nb, sizeof(uint32_t))) || !(h->bsalt = calloc(nb, sizeof(uint32_t))) ||
        !(h->bcdf = calloc(nb, sizeof(double *))) || !(h->beff = calloc(nb, sizeof(double *))))
        return CTR_ENOMEM;
    uint64_t s = model_seed * 0x9e3779b97f4a7c15ull + 0xba65;
    for (uint32_t b = 0; b < nb; b++) {
        uint32_t n = h->bvocab[b] = bag_vocab[b % CTR_ARRAY_LEN(bag_vocab)];
        double zs = 1.05 + 0.3 * runif(&s);
        double sigma = 0.15 + 0.15 * runif(&s);
        h->bsalt[b] = (uint32_t)ctr_splitmix64_next(&s);
        if (!(h->bcdf[b] = malloc(n * sizeof(double))) ||
            !(h->beff[b] = malloc((n + 1) * sizeof(double))))
            return CTR_ENOMEM;
        zipf_cdf(h->bcdf[b], n, zs);
        for (uint32_t v = 0; v <= n; v++)
            h->beff[b][v] = sigma * rnorm(&s);
    }
    return 0;
}

static double sigm(double z)
{
    return 1.0 / (1.0 + exp(-z));
}

static int hidden_init(hidden_t *h, uint64_t model_seed, uint32_t nb, uint32_t max_bag)
{
    memset(h, 0, sizeof(*h));
    if (hidden_bags(h, model_seed, nb, max_bag))
        return CTR_ENOMEM;
    uint64_t s = model_seed * 0x2545f4914f6cdd1dull + 0x1234567;
    for (int k = 0; k < ND; k++) {
        h->mu[k] = 0.5 + 3.0 * runif(&s);
        h->s[k] = 0.5 + 1.5 * runif(&s);
        h->w[k] = (runif(&s) < 0.25 ? 0.0 : 0.25 * rnorm(&s));
        h->curve[k] = k == 2 || k == 6 ? 0.2 : 0.0;
    }
    for (int j = 0; j < NC; j++) {
        uint32_t n = vocab[j];
        double zs = 1.05 + 0.3 * runif(&s);
        /* Big vocabularies carry weaker per-value effects: their tails are
         * seen too rarely to learn, as in real logs. */
        double u = runif(&s), u2 = runif(&s);
        double sigma = u < 0.2 ? 0.0 : n > 5000 ? 0.05 + 0.1 * u2 : 0.2 + 0.4 * u2;
        h->salt[j] = (uint32_t)ctr_splitmix64_next(&s);
        h->cdf[j] = malloc(n * sizeof(double));
        h->eff[j] = malloc((n + 1) * sizeof(double));
        if (!h->cdf[j] || !h->eff[j])
            return CTR_ENOMEM;
        zipf_cdf(h->cdf[j], n, zs);
        for (uint32_t v = 0; v <= n; v++)
            h->eff[j][v] = sigma * rnorm(&s);
    }
    for (size_t a = 0; a < CTR_ARRAY_LEN(factor_feat); a++) {
        int j = factor_feat[a];
        h->fac[j] = malloc(((size_t)vocab[j] + 1) * NF * sizeof(double));
        if (!h->fac[j])
            return CTR_ENOMEM;
        for (size_t q = 0; q < ((size_t)vocab[j] + 1) * NF; q++)
            h->fac[j][q] = 0.35 * rnorm(&s);
    }
    /* Bias for a ~25.6% positive rate, by bisection on a private sample. */
    enum { NS = 20000 };
    double *zs = malloc(NS * sizeof(double));
    uint32_t *bn = malloc((nb + 1) * sizeof(uint32_t));
    uint32_t *bval = malloc(((size_t)nb * max_bag + 1) * sizeof(uint32_t));
    if (!zs || !bn || !bval) {
        free(zs);
        free(bn);
        free(bval);
        return CTR_ENOMEM;
    }
    uint64_t s2 = model_seed ^ 0xb1a5b1a5b1a5ull, s3 = model_seed ^ 0xba6ba6ba6ull;
    draw_t d;
    for (int i = 0; i < NS; i++) {
        zs[i] = draw_row(h, &s2, &d);
        if (nb)
            zs[i] += draw_bags(h, &s3, bn, bval);
    }
    free(bn);
    free(bval);
    double lo = -10, hi = 10;
    for (int it = 0; it < 50; it++) {
        double mid = (lo + hi) / 2, mean = 0;
        for (int i = 0; i < NS; i++)
            mean += sigm(zs[i] + mid);
        if (mean / NS < 0.256)
            lo = mid;
        else
            hi = mid;
    }
    free(zs);
    h->bias = (lo + hi) / 2;
    return 0;
}

static uint32_t value_hash(uint32_t salt, uint32_t v)
{
    uint64_t x = ((uint64_t)salt << 32 | v) * 0x9e3779b97f4a7c15ull;
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 32;
    return (uint32_t)x;
}

int ctr_gendata_write(FILE *f, const ctr_gendata_opts_t *o, ctr_gendata_report_t *rep,
                      char *err, size_t errlen)
{
    hidden_t h;
    const uint32_t nb = o->bag_features, mb = nb ? o->max_bag : 0;
    float *p = NULL;
    uint8_t *y = NULL;
    char *line = NULL;
    uint32_t *bn = NULL, *bval = NULL;
    int rc;
    if (nb > MAX_BAG_FEATURES || (nb && (mb < 1 || mb > CTR_MAX_BAG))) {
        memset(&h, 0, sizeof h);
        rc = ctr_error(err, errlen, CTR_EINVAL, "gen-data: at most %d bag features of 1..%d values",
                       MAX_BAG_FEATURES, CTR_MAX_BAG);
        goto out;
    }
    if ((rc = hidden_init(&h, o->model_seed, nb, mb)))
        goto oom;
    p = malloc((o->rows ? o->rows : 1) * sizeof(float));
    y = malloc(o->rows ? o->rows : 1);
    /* The Criteo part fits in 1 KiB; each bag value takes 9 bytes. */
    size_t cap = 1024 + (size_t)nb * (mb * 9 + 1);
    line = malloc(cap);
    bn = malloc((nb + 1) * sizeof(uint32_t));
    bval = malloc(((size_t)nb * mb + 1) * sizeof(uint32_t));
    if (!p || !y || !line || !bn || !bval)
        goto oom;
    uint64_t s = o->seed * 0xd1342543de82ef95ull + 0x5eed;
    ctr_splitmix64_next(&s);
    uint64_t sb = o->seed * 0x9e3779b97f4a7c15ull + 0xba65ba65;
    ctr_splitmix64_next(&sb);
    uint64_t positives = 0;
    /* Without bags Criteo TSV; with them a CSV with a header row. */
    const char sep = nb ? ',' : '\t';
    if (nb) {
        int n = fprintf(f, "label");
        for (int k = 0; k < ND; k++)
            n = fprintf(f, ",I%d", k + 1);
        for (int j = 0; j < NC; j++)
            n = fprintf(f, ",C%d", j + 1);
        for (uint32_t b = 0; b < nb; b++)
            n = fprintf(f, ",B%u", b + 1);
        if (n < 0 || fputc('\n', f) == EOF) {
            rc = ctr_error(err, errlen, CTR_EIO, "gen-data: write failed");
            goto out;
        }
    }
    draw_t d;
    for (uint64_t i = 0; i < o->rows; i++) {
        double z = draw_row(&h, &s, &d) + h.bias;
        if (nb)
            z += draw_bags(&h, &sb, bn, bval);
        double pr = sigm(z);
        int lab = runif(&s) < pr;
        positives += (uint64_t)lab;
        p[i] = (float)pr;
        y[i] = (uint8_t)lab;
        size_t n = (size_t)snprintf(line, cap, "%d", lab);
        for (int k = 0; k < ND; k++) {
            if (d.dmiss[k])
                line[n++] = sep;
            else
                n += (size_t)snprintf(line + n, cap - n, "%c%lld", sep, (long long)d.count[k]);
        }
        for (int j = 0; j < NC; j++) {
            if (!d.val[j])
                line[n++] = sep;
            else
                n += (size_t)snprintf(line + n, cap - n, "%c%08x", sep,
                                      value_hash(h.salt[j], d.val[j]));
        }
        for (uint32_t b = 0; b < nb; b++) {
            line[n++] = sep;
            for (uint32_t k = 0; k < bn[b]; k++)
                {
                if (k)
                    line[n++] = CTR_GENDATA_BAG_SEP;
                n += (size_t)snprintf(line + n, cap - n, "%08x",
                                      value_hash(h.bsalt[b], bval[(size_t)b * mb + k]));
            }
        }
        line[n++] = '\n';
        if (fwrite(line, 1, n, f) != n) {
            rc = ctr_error(err, errlen, CTR_EIO, "gen-data: write failed");
            goto out;
        }
    }
    if (rep) {
        rep->rows = o->rows;
        rep->positives = positives;
        rep->auc = ctr_metrics_auc(p, y, o->rows);
        rep->logloss = ctr_metrics_logloss(p, y, o->rows);
    }
    rc = 0;
    goto out;
oom:
    rc = ctr_error(err, errlen, CTR_ENOMEM, "gen-data: out of memory");
out:
    free(p);
    free(y);
    free(line);
    free(bn);
    free(bval);
    hidden_free(&h);
    return rc;
}
