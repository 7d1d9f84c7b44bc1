/* model_random.c - random, valid models of every architecture (contract
 * in ctr/model_random.h).
 *
 * Every array the description points at is allocated here and listed in
 * m->allocs, so one free releases the model. Each tensor draws from its
 * own stream of the counter-based generator:
 *   tables      1000 + owner index (as ctrtool synth's MLP tables)
 *   top layer l 2l (weight), 2l + 1 (bias)  (as ctrtool synth's MLP)
 *   bottom i    2000 + 2i, +1
 *   cross l     3000 + 8l + {0 w, 1 v, 2 u, 3 bias}
 *   deep i      4000 + 2i, +1
 *   wukong i    5000 + 64i + {0 y, 1/2 fmb LN gamma/beta, 3 lcb, 4 res,
 *               5/6 LN gamma/beta, 16 + 2j / 17 + 2j FMB layer j} */
#include "ctr/model_random.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/rng.h"

struct ctr_model_random {
    ctr_model_def_t def;
    uint64_t seed;
    float emb_scale;
    void **allocs;
    size_t n_allocs, cap;
};

float ctr_model_random_value(uint64_t seed, uint64_t stream, uint64_t i, float scale)
{
    uint64_t h = ctr_splitmix64(seed ^ ctr_splitmix64(stream * 0x100000001b3ull + i));
    return ((float)(h >> 40) * (1.0f / 8388608.0f) - 1.0f) * scale;
}

void ctr_model_random_defaults(ctr_model_random_opts_t *o, ctr_arch_t arch)
{
    *o = (ctr_model_random_opts_t){
        .arch = arch, .name = "random", .n_dense = 13, .n_cat = 26, .d = 16,
        .rows = 1000, .mapping = CTR_MAP_HASH, .act = CTR_ACT_SMELU, .beta = 1.0f,
        .emb_scale = 0.5f, .top = {2, {64, 32}}, .bottom = {1, {32}},
        .dot_order = CTR_DOT_LOWER, .dcn_structure = CTR_DCN_STACKED, .n_cross = 2,
        .deep = {2, {64, 32}}, .n_wukong = 2, .n_f = 8, .n_l = 8, .k = 8,
        .fmb = {1, {64}}, .fmb_ln = CTR_FMB_LN_NONE, .ln_eps = 1e-5f,
        .max_bag = 4, .pool = CTR_POOL_SUM, .seed = 1,
    };
}

/* ---- owned memory --------------------------------------------------- */

static void *take(ctr_model_random_t *m, size_t n, size_t size)
{
    if (m->n_allocs == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 64;
        void **a = realloc(m->allocs, cap * sizeof(*a));
        if (!a)
            return NULL;
        m->allocs = a;
        m->cap = cap;
    }
    void *p = calloc(n ? n : 1, size);
    if (p)
        m->allocs[m->n_allocs++] = p;
    return p;
}

/* n values of stream, uniform in center +- scale. */
static float *values(ctr_model_random_t *m, size_t n, uint64_t stream, float center, float scale)
{
    float *p = take(m, n, sizeof(float));
    if (p)
        for (size_t i = 0; i < n; i++)
            p[i] = center + ctr_model_random_value(m->seed, stream, i, scale);
    return p;
}

/* A [in][out] weight of unit gain times `gain`. */
static float *weight(ctr_model_random_t *m, size_t in, size_t out, uint64_t stream, float gain)
{
    return values(m, in * out, stream, 0.0f, sqrtf(3.0f / (float)(in ? in : 1)) * gain);
}

/* An MLP from `in` through hidden widths to `last` (0: no last layer
 * added). Hidden layers get gain 1.4 (the activation halves the variance). */
static int make_mlp(ctr_model_random_t *m, uint32_t in, const ctr_widths_t *hidden,
                    uint32_t last, uint64_t stream0, float last_gain, ctr_mlp_def_t *out)
{
    size_t n = hidden->n + (last != 0);
    ctr_layer_def_t *L = take(m, n, sizeof(*L));
    if (!L)
        return CTR_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        uint32_t o = i < hidden->n ? hidden->w[i] : last;
        int is_last = i + 1 == n;
        float *w = weight(m, in, o, stream0 + 2 * i, is_last ? last_gain : 1.4f);
        float *b = values(m, o, stream0 + 2 * i + 1, 0.0f, 0.1f);
        if (!w || !b)
            return CTR_ENOMEM;
        L[i] = (ctr_layer_def_t){in, o, w, b, 0};
        in = o;
    }
    *out = (ctr_mlp_def_t){n, L};
    return 0;
}

/* ---- bags and sharing ----------------------------------------------- */

static long find_cat(const ctr_model_def_t *def, const char *name, size_t len)
{
    for (size_t j = 0; j < def->n_cat; j++)
        if (strlen(def->cat[j].name) == len && !memcmp(def->cat[j].name, name, len))
            return (long)j;
    return -1;
}

static int parse_bags(const ctr_model_random_opts_t *o, ctr_cat_def_t *cat,
                      const ctr_model_def_t *def, char *err, size_t errlen)
{
    if (!o->bag_features || !*o->bag_features)
        return 0;
    if (o->max_bag < 1 || o->max_bag > CTR_MAX_BAG)
        return ctr_error(err, errlen, CTR_EINVAL, "max_bag is %u, expected 1..%d", o->max_bag, CTR_MAX_BAG);
    for (const char *p = o->bag_features; *p;) {
        size_t len = strcspn(p, ",");
        size_t nlen = strcspn(p, ":,");
        ctr_pool_t pool = o->pool;
        if (nlen < len) {
            const char *suf = p + nlen + 1;
            size_t slen = len - nlen - 1;
            if (slen == 3 && !memcmp(suf, "sum", 3))
                pool = CTR_POOL_SUM;
            else if (slen == 4 && !memcmp(suf, "mean", 4))
                pool = CTR_POOL_MEAN;
            else
                return ctr_error(err, errlen, CTR_EINVAL, "bag feature \"%.*s\": pool must be sum or mean",
                                 (int)len, p);
        }
        long j = find_cat(def, p, nlen);
        if (j < 0)
            return ctr_error(err, errlen, CTR_EINVAL, "bag feature \"%.*s\" is not a categorical feature",
                             (int)nlen, p);
        cat[j].bag_max = o->max_bag;
        cat[j].pool = pool;
        p += len;
        if (*p == ',')
            p++;
    }
    return 0;
}

static int parse_shared(const ctr_model_random_opts_t *o, ctr_cat_def_t *cat,
                        const ctr_model_def_t *def, char *err, size_t errlen)
{
    if (!o->shared || !*o->shared)
        return 0;
    for (const char *p = o->shared; *p;) {
        size_t len = strcspn(p, ",");
        size_t alen = strcspn(p, "=,");
        if (alen >= len)
            return ctr_error(err, errlen, CTR_EINVAL, "shared \"%.*s\": expected SHARER=OWNER", (int)len, p);
        long a = find_cat(def, p, alen), b = find_cat(def, p + alen + 1, len - alen - 1);
        if (a < 0 || b < 0)
            return ctr_error(err, errlen, CTR_EINVAL, "shared \"%.*s\": not two categorical features",
                             (int)len, p);
        if (b >= a)
            return ctr_error(err, errlen, CTR_EINVAL, "shared \"%.*s\": the owner must come first in the schema",
                             (int)len, p);
        cat[a].shares = (uint32_t)b + 1;
        p += len;
        if (*p == ',')
            p++;
    }
    for (size_t j = 0; j < def->n_cat; j++)
        if (cat[j].shares && cat[cat[j].shares - 1].shares)
            return ctr_error(err, errlen, CTR_EINVAL, "shared: %s's owner %s shares a table itself",
                             cat[j].name, cat[cat[j].shares - 1].name);
    return 0;
}

/* ---- the architectures ---------------------------------------------- */

static int make_dcn(ctr_model_random_t *m, const ctr_model_random_opts_t *o, size_t D,
                    char *err, size_t errlen)
{
    ctr_model_def_t *def = &m->def;
    ctr_cross_def_t *c = take(m, o->n_cross, sizeof(*c));
    if (!c)
        return CTR_ENOMEM;
    for (size_t l = 0; l < o->n_cross; l++) {
        uint64_t s = 3000 + 8 * l;
        c[l] = (ctr_cross_def_t){.dim = (uint32_t)D, .rank = o->rank};
        if (o->rank) {
            c[l].v = weight(m, D, o->rank, s + 1, 1.0f);
            c[l].u = weight(m, o->rank, D, s + 2, 0.5f);
            if (!c[l].v || !c[l].u)
                return CTR_ENOMEM;
        } else if (!(c[l].w = weight(m, D, D, s, 0.5f))) {
            return CTR_ENOMEM;
        }
        if (!(c[l].bias = values(m, D, s + 3, 0.0f, 0.05f)))
            return CTR_ENOMEM;
    }
    def->dcn = (ctr_dcn_def_t){.structure = o->dcn_structure, .n_cross = o->n_cross, .cross = c};
    if (o->dcn_structure == CTR_DCN_PARALLEL) {
        if (!o->deep.n)
            return ctr_error(err, errlen, CTR_EINVAL, "dcnv2 parallel needs a deep MLP (deep widths)");
        return make_mlp(m, (uint32_t)D, &o->deep, 0, 4000, 1.4f, &def->dcn.deep);
    }
    return 0;
}

static int make_wukong(ctr_model_random_t *m, const ctr_model_random_opts_t *o, size_t n0,
                       char *err, size_t errlen)
{
    ctr_model_def_t *def = &m->def;
    const uint32_t d = o->d;
    if (o->n_wukong && (o->n_f + o->n_l == 0 || o->k == 0))
        return ctr_error(err, errlen, CTR_EINVAL, "wukong: n_f + n_l and k must be >= 1");
    ctr_wukong_layer_def_t *L = take(m, o->n_wukong, sizeof(*L));
    if (!L)
        return CTR_ENOMEM;
    uint32_t n_in = (uint32_t)n0;
    for (size_t i = 0; i < o->n_wukong; i++) {
        uint64_t s = 5000 + 64 * i;
        uint32_t n_out = o->n_f + o->n_l;
        L[i] = (ctr_wukong_layer_def_t){.n_in = n_in, .n_f = o->n_f, .n_l = o->n_l, .k = o->k};
        /* Y scaled by 1 / sqrt(n_in * d): F = X (X^T Y) sums over both. */
        if (!(L[i].y = values(m, (size_t)n_in * o->k, s, 0.0f, sqrtf(3.0f / (float)(n_in * d)))))
            return CTR_ENOMEM;
        if (o->fmb_ln == CTR_FMB_LN_FLAT &&
            (!(L[i].fmb_ln_gamma = values(m, (size_t)n_in * o->k, s + 1, 1.0f, 0.2f)) ||
             !(L[i].fmb_ln_beta = values(m, (size_t)n_in * o->k, s + 2, 0.0f, 0.1f))))
            return CTR_ENOMEM;
        if (o->n_f) {
            int rc = make_mlp(m, n_in * o->k, &o->fmb, o->n_f * d, s + 16, 1.0f, &L[i].fmb);
            if (rc)
                return rc;
        }
        if (o->n_l && !(L[i].lcb = weight(m, o->n_l, n_in, s + 3, 1.0f)))
            return CTR_ENOMEM;
        if ((n_out != n_in || o->learned_res) && !(L[i].res = weight(m, n_out, n_in, s + 4, 1.0f)))
            return CTR_ENOMEM;
        if (!(L[i].ln_gamma = values(m, d, s + 5, 1.0f, 0.2f)) ||
            !(L[i].ln_beta = values(m, d, s + 6, 0.0f, 0.1f)))
            return CTR_ENOMEM;
        n_in = n_out;
    }
    def->wukong = (ctr_wukong_def_t){.n_layers = o->n_wukong, .layers = L, .fmb_ln = o->fmb_ln,
                                     .fmb_out_act = o->fmb_out_act};
    return 0;
}

int ctr_model_random_new(const ctr_model_random_opts_t *o, ctr_model_random_t **out,
                         char *err, size_t errlen)
{
    ctr_model_random_t *m = NULL;
    int rc = CTR_ENOMEM;
    if (!out)
        return ctr_error(err, errlen, CTR_EINVAL, "ctr_model_random_new: NULL out");
    *out = NULL;
    if (!o)
        return ctr_error(err, errlen, CTR_EINVAL, "ctr_model_random_new: NULL options");
    if (o->n_dense + o->n_cat == 0)
        return ctr_error(err, errlen, CTR_EINVAL, "no features: n_dense and n_cat are both 0");
    if (!o->d || !o->rows || o->rows == UINT32_MAX)
        return ctr_error(err, errlen, CTR_EINVAL, "d and rows must be >= 1 (rows < 2^32 - 1)");
    if (!(o->beta > 0.0f) || !(o->ln_eps > 0.0f))
        return ctr_error(err, errlen, CTR_EINVAL, "beta and ln_eps must be > 0");
    if ((unsigned)o->arch > CTR_ARCH_WUKONG)
        return ctr_error(err, errlen, CTR_EINVAL, "unknown arch %d", (int)o->arch);
    int bottom = o->arch != CTR_ARCH_MLP && o->n_dense > 0 && !o->no_bottom;
    if (o->arch != CTR_ARCH_MLP && o->arch != CTR_ARCH_DCNV2 && o->n_dense > 0 && o->no_bottom)
        return ctr_error(err, errlen, CTR_EINVAL, "%s with dense features needs a bottom MLP",
                         ctr_arch_name(o->arch));
    if (!(m = calloc(1, sizeof(*m))))
        goto fail;
    m->seed = o->seed;
    m->emb_scale = o->emb_scale;
    ctr_model_def_t *def = &m->def;
    char (*names)[24] = take(m, o->n_dense + o->n_cat, 24);
    ctr_dense_def_t *dense = take(m, o->n_dense, sizeof(*dense));
    ctr_cat_def_t *cat = take(m, o->n_cat, sizeof(*cat));
    if (!names || !dense || !cat)
        goto fail;
    for (size_t i = 0; i < o->n_dense; i++) {
        snprintf(names[i], 24, "I%zu", i + 1);
        dense[i] = (ctr_dense_def_t){names[i], CTR_TRANSFORM_LOG1P, 0, 1};
    }
    for (size_t j = 0; j < o->n_cat; j++) {
        snprintf(names[o->n_dense + j], 24, "C%zu", j + 1);
        cat[j] = (ctr_cat_def_t){.name = names[o->n_dense + j], .buckets = o->rows, .dim = o->d,
                                 .seed = o->mapping == CTR_MAP_HASH ? ctr_splitmix64(o->seed + j) : 0,
                                 .mapping = o->mapping};
    }
    *def = (ctr_model_def_t){
        .name = o->name ? o->name : "random", .arch = o->arch, .n_dense = o->n_dense,
        .dense = dense, .n_cat = o->n_cat, .cat = cat, .activation = o->act, .beta = o->beta,
        /* Fields of another architecture stay zero (the writer insists). */
        .dot_order = o->arch == CTR_ARCH_DOT ? o->dot_order : CTR_DOT_LOWER,
        .dot_self = o->arch == CTR_ARCH_DOT ? o->dot_self : 0,
        .ln_eps = o->arch == CTR_ARCH_WUKONG ? o->ln_eps : 0.0f,
    };
    if ((rc = parse_bags(o, cat, def, err, errlen)) || (rc = parse_shared(o, cat, def, err, errlen)))
        goto fail;
    rc = CTR_ENOMEM;
    for (size_t j = 0; j < o->n_cat; j++) {
        if (cat[j].shares) {
            const ctr_cat_def_t *own = &cat[cat[j].shares - 1];
            cat[j].seed = own->seed;
            continue;
        }
        if (!o->no_tables &&
            !(cat[j].table = values(m, ((size_t)o->rows + 1) * o->d, 1000 + j, 0.0f, o->emb_scale)))
            goto fail;
    }
    for (size_t j = 0; j < o->n_cat; j++)
        if (cat[j].shares)
            cat[j].table = cat[cat[j].shares - 1].table;
    if (bottom && (rc = make_mlp(m, (uint32_t)o->n_dense, &o->bottom, o->d, 2000, 1.4f, &def->bottom)))
        goto fail;
    size_t n0 = (o->n_dense > 0) + o->n_cat;
    switch (o->arch) {
    case CTR_ARCH_DCNV2: {
        size_t D = (bottom ? o->d : o->n_dense) + o->n_cat * (size_t)o->d;
        if (o->rank > D) {
            rc = ctr_error(err, errlen, CTR_EINVAL, "dcnv2 rank %u is over the width %zu", o->rank, D);
            goto fail;
        }
        rc = make_dcn(m, o, D, err, errlen);
        break;
    }
    case CTR_ARCH_WUKONG:
        rc = make_wukong(m, o, n0, err, errlen);
        break;
    case CTR_ARCH_DOT:
        rc = n0 < 2 && !o->dot_self
                 ? ctr_error(err, errlen, CTR_EINVAL, "dot needs two embeddings or dot_self")
                 : 0;
        break;
    case CTR_ARCH_MLP:
    default:
        rc = 0;
        break;
    }
    if (rc)
        goto fail;
    ctr_mlp_def_t top;
    if ((rc = make_mlp(m, (uint32_t)ctr_model_input_dim(def), &o->top, 1, 0, 1.0f, &top)))
        goto fail;
    def->n_layers = top.n;
    def->layers = top.layers;
    *out = m;
    return 0;
fail:
    if (rc == CTR_ENOMEM)
        ctr_error(err, errlen, CTR_ENOMEM, "out of memory (random model)");
    ctr_model_random_free(m);
    return rc;
}

void ctr_model_random_free(ctr_model_random_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_allocs; i++)
        free(m->allocs[i]);
    free(m->allocs);
    free(m);
}

const ctr_model_def_t *ctr_model_random_def(const ctr_model_random_t *m)
{
    return &m->def;
}

int ctr_model_random_fill(void *ctx, size_t cat_index, uint64_t first_row,
                          uint64_t n_rows, float *out)
{
    const ctr_model_random_t *m = ctx;
    if (cat_index >= m->def.n_cat)
        return CTR_EINVAL;
    const ctr_cat_def_t *c = &m->def.cat[cat_index];
    size_t owner = c->shares ? c->shares - 1 : cat_index;
    uint64_t first = first_row * c->dim, n = n_rows * c->dim;
    for (uint64_t i = 0; i < n; i++)
        out[i] = ctr_model_random_value(m->seed, 1000 + owner, first + i, m->emb_scale);
    return 0;
}
