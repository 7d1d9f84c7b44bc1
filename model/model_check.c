/* model_check.c - the rules a model graph obeys (ctr__model_check in
 * model_int.h), one function for the reader and the writer so that a file
 * the writer makes is one the reader takes, and the other way round.
 *
 * The order: enum values, the categorical features (mapping, bag, table
 * sharing), the fields each architecture owns (no others may be set), the
 * embeddings (one width d, the bottom MLP), the interaction, then the top
 * MLP, whose input is ctr_model_input_dim (model_shape.c) of a graph that
 * is known to chain by then. Widths are computed in 64 bits: a hostile
 * header can hold any 32-bit value in every field. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "ctr/common.h"
#include "ctr/model.h"
#include "model_int.h"

typedef struct {
    const ctr_model_def_t *def;
    int code;
    const char *prefix;
    char *err;
    size_t errlen;
} chk_t;

static int fail(chk_t *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(chk_t *c, const char *path, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return ctr_error(c->err, c->errlen, c->code, "%s%s: %s", c->prefix, path, msg);
}

static const char *mapping_name(ctr_mapping_t m)
{
    return m == CTR_MAP_HASH ? "hash" : m == CTR_MAP_MOD ? "mod" : "unknown";
}

/* A stack of layers at path ("bottom.layers"): in and out > 0, weight and
 * bias present, layers[0].in == first_in ("is X but <first_desc> Y"),
 * layers[l].in == layers[l - 1].out. */
static int check_stack(chk_t *c, const char *path, const ctr_layer_def_t *L, size_t n, uint64_t first_in,
                       const char *first_desc)
{
    char at[128];
    if (n && !L)
        return fail(c, path, "%zu layers with a NULL array", n);
    for (size_t l = 0; l < n; l++) {
        snprintf(at, sizeof(at), "%s[%zu]", path, l);
        if (!L[l].in || !L[l].out || !L[l].weight || !L[l].bias)
            return fail(c, at, "in and out must be > 0, weight and bias non-NULL");
        if (L[l].ldw && (L[l].ldw < L[l].out || (L[l].out == 1 && L[l].ldw != 1)))
            return fail(c, at, "ldw %" PRIu32 " is under out %" PRIu32 " (or out is 1 and ldw is not)",
                        L[l].ldw, L[l].out);
        uint64_t want = l ? L[l - 1].out : first_in;
        if (L[l].in != want) {
            snprintf(at, sizeof(at), "%s[%zu].in", path, l);
            if (l)
                return fail(c, at, "is %" PRIu32 " but the previous layer's out is %" PRIu64, L[l].in, want);
            return fail(c, at, "is %" PRIu32 " but %s %" PRIu64, L[l].in, first_desc, want);
        }
    }
    return 0;
}

static int check_cats(chk_t *c)
{
    const ctr_model_def_t *def = c->def;
    char at[128];
    for (size_t j = 0; j < def->n_cat; j++) {
        const ctr_cat_def_t *x = &def->cat[j];
#define AT(key) (snprintf(at, sizeof(at), "schema.categorical[%zu]%s", j, key), at)
        if (x->mapping != CTR_MAP_HASH && x->mapping != CTR_MAP_MOD)
            return fail(c, AT(".mapping"), "unknown mapping %d", (int)x->mapping);
        if (x->mapping == CTR_MAP_MOD && x->seed)
            return fail(c, AT(".seed"), "is %" PRIu64 ", but mapping mod has no seed (it must be 0)", x->seed);
        if (x->bag_max > CTR_MAX_BAG)
            return fail(c, AT(".bag.max"), "is %" PRIu32 ", over the limit of %d", x->bag_max, CTR_MAX_BAG);
        if (x->pool != CTR_POOL_SUM && x->pool != CTR_POOL_MEAN)
            return fail(c, AT(".bag.pool"), "unknown pool %d", (int)x->pool);
        if (!x->bag_max && x->pool != CTR_POOL_SUM)
            return fail(c, AT(".bag.pool"), "is mean on a single-valued feature (bag_max 0)");
        if (!x->shares)
            continue;
        size_t o = x->shares - 1;
        if (o >= j)
            return fail(c, AT(".table"), "shares the table of schema.categorical[%zu], which does not come before it",
                        o);
        const ctr_cat_def_t *w = &def->cat[o];
        if (w->shares)
            return fail(c, AT(".table"), "shares the table of schema.categorical[%zu], which itself shares a table",
                        o);
#define OWNER "but its table's owner schema.categorical[%zu] (\"%s\") has"
        if (x->buckets != w->buckets)
            return fail(c, AT(".buckets"), "is %" PRIu32 " " OWNER " %" PRIu32, x->buckets, o, w->name, w->buckets);
        if (x->dim != w->dim)
            return fail(c, AT(".dim"), "is %" PRIu32 " " OWNER " %" PRIu32, x->dim, o, w->name, w->dim);
        if (x->mapping != w->mapping)
            return fail(c, AT(".mapping"), "is %s " OWNER " %s", mapping_name(x->mapping), o, w->name,
                        mapping_name(w->mapping));
        if (x->seed != w->seed)
            return fail(c, AT(".seed"), "is %" PRIu64 " " OWNER " %" PRIu64, x->seed, o, w->name, w->seed);
#undef OWNER
#undef AT
    }
    /* An audit record holds at most 65,535 categorical columns, one a
     * slot (include/ctr/audit.h): a model with more could be served but
     * never logged or replayed. */
    size_t slots = ctr_model_slots(def);
    if (slots > CTR_MAX_SLOTS)
        return fail(c, "schema.categorical", "the features take %zu row slots (one each, bag.max for a bag), "
                    "over the limit of %d", slots, CTR_MAX_SLOTS);
    return 0;
}

/* Only the fields of def->arch may be set (a reader gives zeros for the
 * others, so anything else would not survive a round trip). */
static int check_owned_fields(chk_t *c)
{
    const ctr_model_def_t *def = c->def;
    const char *an = ctr_arch_name(def->arch);
    if (def->arch == CTR_ARCH_MLP && (def->bottom.n || def->bottom.layers))
        return fail(c, "bottom", "arch mlp has no bottom MLP (its top MLP takes the dense values as they are)");
    if (def->arch != CTR_ARCH_DOT && (def->dot_order || def->dot_self))
        return fail(c, "interaction", "dot_order or dot_self is set, but arch is %s", an);
    const ctr_dcn_def_t *dc = &def->dcn;
    if (def->arch != CTR_ARCH_DCNV2 && (dc->structure || dc->n_cross || dc->cross || dc->deep.n || dc->deep.layers))
        return fail(c, "interaction", "dcn is set, but arch is %s", an);
    const ctr_wukong_def_t *wk = &def->wukong;
    if (def->arch != CTR_ARCH_WUKONG &&
        (wk->n_layers || wk->layers || wk->fmb_ln || wk->fmb_out_act || def->ln_eps != 0))
        return fail(c, "interaction", "wukong or ln_eps is set, but arch is %s", an);
    return 0;
}

/* Width d of every embedding (see model_shape.c); 0 without any. */
static uint64_t emb_dim(const ctr_model_def_t *def)
{
    if (def->n_cat)
        return def->cat[0].dim;
    if (def->bottom.n && def->bottom.layers)
        return def->bottom.layers[def->bottom.n - 1].out;
    return 0;
}

/* The embeddings X of an interaction arch: one width d, the bottom MLP
 * dense -> d (optional in DCNv2 only). */
static int check_embeddings(chk_t *c)
{
    const ctr_model_def_t *def = c->def;
    const char *an = ctr_arch_name(def->arch);
    uint64_t d = emb_dim(def);
    char at[128];
    for (size_t j = 1; j < def->n_cat; j++)
        if (def->cat[j].dim != d) {
            snprintf(at, sizeof(at), "schema.categorical[%zu].dim", j);
            return fail(c, at, "is %" PRIu32 " but arch %s needs every embedding as wide as "
                        "schema.categorical[0].dim, %" PRIu64, def->cat[j].dim, an, d);
        }
    if (def->n_dense && !def->bottom.n && def->arch != CTR_ARCH_DCNV2)
        return fail(c, "bottom", "arch %s needs a bottom MLP (dense -> d) for its %zu dense feature%s", an,
                    def->n_dense, def->n_dense == 1 ? "" : "s");
    if (!def->n_dense && def->bottom.n)
        return fail(c, "bottom", "there are no dense features to feed it");
    if (!def->bottom.n)
        return 0;
    int rc = check_stack(c, "bottom.layers", def->bottom.layers, def->bottom.n, def->n_dense,
                         "the number of dense features is");
    if (rc)
        return rc;
    uint32_t out = def->bottom.layers[def->bottom.n - 1].out;
    if (out != d) {
        snprintf(at, sizeof(at), "bottom.layers[%zu].out", def->bottom.n - 1);
        return fail(c, at, "is %" PRIu32 " but the embeddings are d = %" PRIu64 " wide (schema.categorical[0].dim)",
                    out, d);
    }
    return 0;
}

static int check_dot(chk_t *c)
{
    const ctr_model_def_t *def = c->def;
    if (def->dot_order != CTR_DOT_LOWER && def->dot_order != CTR_DOT_UPPER)
        return fail(c, "interaction.order", "unknown order %d", (int)def->dot_order);
    if (def->dot_self != 0 && def->dot_self != 1)
        return fail(c, "interaction.self", "expected 0 or 1 (got %d)", def->dot_self);
    return 0;
}

static int check_dcn(chk_t *c)
{
    const ctr_model_def_t *def = c->def;
    const ctr_dcn_def_t *dc = &def->dcn;
    char at[128];
    /* x_0: flatten(X), or the raw dense values then the embeddings. */
    uint64_t width = def->bottom.n ? (def->n_dense > 0) * emb_dim(def) : def->n_dense;
    for (size_t j = 0; j < def->n_cat; j++)
        width += def->cat[j].dim;
    if (dc->structure != CTR_DCN_STACKED && dc->structure != CTR_DCN_PARALLEL)
        return fail(c, "interaction.structure", "unknown structure %d", (int)dc->structure);
    if (dc->n_cross && !dc->cross)
        return fail(c, "interaction.cross", "%zu layers with a NULL array", dc->n_cross);
    for (size_t l = 0; l < dc->n_cross; l++) {
        const ctr_cross_def_t *x = &dc->cross[l];
#define AT(key) (snprintf(at, sizeof(at), "interaction.cross[%zu]%s", l, key), at)
        if (x->dim != width)
            return fail(c, AT(".dim"), "is %" PRIu32 " but x_0 is %" PRIu64 " wide (%s)", x->dim, width,
                        def->bottom.n ? "flatten(X): n embeddings of d"
                                      : "the dense values, then the embeddings");
        if (x->rank > x->dim)
            return fail(c, AT(".rank"), "is %" PRIu32 ", more than dim %" PRIu32 " (rank 0 is full rank)", x->rank,
                        x->dim);
        if (!x->rank && (!x->w || x->v || x->u))
            return fail(c, AT(""), "a full-rank layer (rank 0) has a weight and no v or u");
        if (x->rank && (x->w || !x->v || !x->u))
            return fail(c, AT(""), "a low-rank layer (rank %" PRIu32 ") has v and u and no weight", x->rank);
        if (!x->bias)
            return fail(c, AT(".bias"), "missing (NULL)");
#undef AT
    }
    if (dc->structure == CTR_DCN_STACKED) {
        if (dc->deep.n)
            return fail(c, "interaction.deep", "%zu layer%s, but only a parallel DCNv2 has deep layers", dc->deep.n,
                        dc->deep.n == 1 ? "" : "s");
        return 0;
    }
    if (!dc->deep.n)
        return fail(c, "interaction.deep", "a parallel DCNv2 needs at least one deep layer");
    return check_stack(c, "interaction.deep", dc->deep.layers, dc->deep.n, width, "x_0's width is");
}

static int check_wukong(chk_t *c)
{
    const ctr_model_def_t *def = c->def;
    const ctr_wukong_def_t *wk = &def->wukong;
    uint64_t d = emb_dim(def), n_prev = (def->n_dense > 0) + def->n_cat;
    char at[128], desc[64];
    if (wk->fmb_ln != CTR_FMB_LN_NONE && wk->fmb_ln != CTR_FMB_LN_FLAT)
        return fail(c, "interaction.fmb_ln", "unknown fmb_ln %d", (int)wk->fmb_ln);
    if (wk->fmb_out_act != 0 && wk->fmb_out_act != 1)
        return fail(c, "interaction.fmb_out_act", "expected 0 or 1 (got %d)", wk->fmb_out_act);
    if (!isfinite(def->ln_eps) || !(def->ln_eps > 0))
        return fail(c, "interaction.ln_eps", "expected a finite number > 0 (got %g)", (double)def->ln_eps);
    if (wk->n_layers && !wk->layers)
        return fail(c, "interaction.layers", "%zu layers with a NULL array", wk->n_layers);
    for (size_t i = 0; i < wk->n_layers; i++) {
        const ctr_wukong_layer_def_t *L = &wk->layers[i];
#define AT(key) (snprintf(at, sizeof(at), "interaction.layers[%zu]%s", i, key), at)
        if (!L->n_in || !L->n_f || !L->n_l || !L->k)
            return fail(c, AT(""), "n_in, n_f, n_l and k must be > 0 (got %" PRIu32 ", %" PRIu32 ", %" PRIu32
                        ", %" PRIu32 ")", L->n_in, L->n_f, L->n_l, L->k);
        if (L->n_in != n_prev) {
            if (i)
                return fail(c, AT(".n_in"), "is %" PRIu32 ", the previous layer gives %" PRIu64 " (n_f + n_l)",
                            L->n_in, n_prev);
            return fail(c, AT(".n_in"), "is %" PRIu32 ", the schema gives n = %" PRIu64
                        " embeddings (the dense one, if any, and one per categorical feature)", L->n_in, n_prev);
        }
        uint64_t n_out = (uint64_t)L->n_f + L->n_l;
        if (n_out > UINT32_MAX)
            return fail(c, AT(""), "n_f + n_l is %" PRIu64 ", over 2^32 - 1", n_out);
        if (!L->y)
            return fail(c, AT(".y"), "missing (NULL)");
        if (wk->fmb_ln == CTR_FMB_LN_FLAT && (!L->fmb_ln_gamma || !L->fmb_ln_beta))
            return fail(c, AT(L->fmb_ln_gamma ? ".fmb_ln_beta" : ".fmb_ln_gamma"), "missing, and fmb_ln is flat");
        if (wk->fmb_ln == CTR_FMB_LN_NONE && (L->fmb_ln_gamma || L->fmb_ln_beta))
            return fail(c, AT(L->fmb_ln_gamma ? ".fmb_ln_gamma" : ".fmb_ln_beta"), "present, but fmb_ln is none");
        if (!L->fmb.n)
            return fail(c, AT(".fmb"), "expected at least one layer");
        snprintf(desc, sizeof(desc), "n_in * k (%" PRIu32 " * %" PRIu32 ") is", L->n_in, L->k);
        int rc = check_stack(c, AT(".fmb"), L->fmb.layers, L->fmb.n, (uint64_t)L->n_in * L->k, desc);
        if (rc)
            return rc;
        uint32_t out = L->fmb.layers[L->fmb.n - 1].out;
        if (out != (uint64_t)L->n_f * d) {
            snprintf(at, sizeof(at), "interaction.layers[%zu].fmb[%zu].out", i, L->fmb.n - 1);
            return fail(c, at, "is %" PRIu32 " but n_f * d (%" PRIu32 " * %" PRIu64 ") is %" PRIu64, out, L->n_f, d,
                        (uint64_t)L->n_f * d);
        }
        if (!L->lcb)
            return fail(c, AT(".lcb"), "missing (NULL)");
        if (n_out == L->n_in && L->res)
            return fail(c, AT(".res"), "present, but n_f + n_l == n_in (%" PRIu32 "): the residual is the identity",
                        L->n_in);
        if (n_out != L->n_in && !L->res)
            return fail(c, AT(".res"), "missing: n_f + n_l (%" PRIu64 ") != n_in (%" PRIu32
                        ") needs a learned residual [n_f + n_l][n_in]", n_out, L->n_in);
        if (!L->ln_gamma || !L->ln_beta)
            return fail(c, AT(L->ln_gamma ? ".ln_beta" : ".ln_gamma"), "missing (NULL)");
        n_prev = n_out;
#undef AT
    }
    return 0;
}

int ctr__model_check(const ctr_model_def_t *def, int code, const char *prefix, char *err, size_t errlen)
{
    chk_t c = {def, code, prefix ? prefix : "", err, errlen};
    int rc;
    if (def->arch != CTR_ARCH_MLP && def->arch != CTR_ARCH_DOT && def->arch != CTR_ARCH_DCNV2 &&
        def->arch != CTR_ARCH_WUKONG)
        return fail(&c, "arch", "unknown architecture %d", (int)def->arch);
    if ((rc = check_cats(&c)) || (rc = check_owned_fields(&c)))
        return rc;
    if (def->arch != CTR_ARCH_MLP && (rc = check_embeddings(&c)))
        return rc;
    switch (def->arch) {
    case CTR_ARCH_DOT: rc = check_dot(&c); break;
    case CTR_ARCH_DCNV2: rc = check_dcn(&c); break;
    case CTR_ARCH_WUKONG: rc = check_wukong(&c); break;
    case CTR_ARCH_MLP: break;
    }
    if (rc)
        return rc;
    if (!def->n_layers || !def->layers)
        return fail(&c, "mlp.layers", "expected at least one layer");
    char desc[64];
    if (def->arch == CTR_ARCH_MLP)
        snprintf(desc, sizeof(desc), "the schema gives (n_dense + sum of dims)");
    else
        snprintf(desc, sizeof(desc), "the %s interaction gives", ctr_arch_name(def->arch));
    if ((rc = check_stack(&c, "mlp.layers", def->layers, def->n_layers, ctr_model_input_dim(def), desc)))
        return rc;
    if (def->layers[def->n_layers - 1].out != 1)
        return fail(&c, "mlp.layers", "the last layer must have out == 1 (got %" PRIu32 ")",
                    def->layers[def->n_layers - 1].out);
    return 0;
}
