/* model_header_graph.c - the version-2 graph of a .ctrm header: the
 * "bottom" MLP and the "interaction" of each architecture (dot, dcnv2,
 * wukong), and the layer lists every MLP in the file is written as
 * (model_parse_int.h).
 *
 * This file reads each key (type, range, allowed keys) and records the
 * tensors it names with the shapes their users expect; whether the graph
 * chains (widths, counts, which optional tensors must be there) is
 * ctr__model_check's, which runs once the tensors are resolved, so reader
 * and writer share one set of rules. Every array lives until
 * ctr_model_close (ctr__model_calloc). */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/model.h"
#include "model_int.h"
#include "model_parse_int.h"

int ctr__hp_layers(ctr__parse_t *p, json_t *arr, const char *where, ctr_layer_def_t **out, size_t *n)
{
    static const char *const keys[] = {"in", "out", "weight", "bias", NULL};
    size_t count = json_array_size(arr);
    ctr_layer_def_t *L = ctr__model_calloc(p->m, count, sizeof(*L));
    if (!L)
        return ctr__hp_nomem(p);
    *out = L;
    *n = count;
    for (size_t l = 0; l < count; l++) {
        json_t *o = json_array_get(arr, l);
        char at[128], g[64];
        uint64_t in, w;
        int rc;
        snprintf(at, sizeof(at), "%s[%zu]", where, l);
        if (!json_is_object(o))
            return ctr__hp_bad(p, CTR_EFORMAT, at, NULL, "expected an object (got %s)",
                               ctr__hp_show(o, g, sizeof(g)));
        if ((rc = ctr__hp_keys(p, o, at, keys)) || (rc = ctr__hp_uint(p, o, at, "in", 1, UINT32_MAX, &in)) ||
            (rc = ctr__hp_uint(p, o, at, "out", 1, UINT32_MAX, &w)) ||
            (rc = ctr__hp_ref(p, o, at, "weight", NULL, 2, in, w, false, &L[l].weight)) ||
            (rc = ctr__hp_ref(p, o, at, "bias", NULL, 1, w, 0, false, &L[l].bias)))
            return rc;
        L[l].in = (uint32_t)in;
        L[l].out = (uint32_t)w;
    }
    return 0;
}

/* A tensor reference that may be left out (ctr__model_check says when it
 * must be there and when it must not). */
static int optional_ref(ctr__parse_t *p, json_t *o, const char *where, const char *key, int rank, uint64_t d0,
                        uint64_t d1, const float **out)
{
    if (!json_object_get(o, key))
        return 0;
    return ctr__hp_ref(p, o, where, key, NULL, rank, d0, d1, false, out);
}

static int parse_dot(ctr__parse_t *p, json_t *it)
{
    static const char *const keys[] = {"order", "self", NULL};
    static const char *const orders[] = {"lower", "upper"};
    ctr_model_def_t *def = &p->m->def;
    int rc, e;
    if ((rc = ctr__hp_keys(p, it, "interaction", keys)) ||
        (rc = ctr__hp_enum(p, it, "interaction", "order", orders, 2, &e)) ||
        (rc = ctr__hp_bool(p, it, "interaction", "self", &def->dot_self)))
        return rc;
    def->dot_order = (ctr_dot_order_t)e;
    return 0;
}

static int parse_dcn(ctr__parse_t *p, json_t *it)
{
    static const char *const keys[] = {"structure", "cross", "deep", NULL};
    static const char *const ckeys[] = {"dim", "rank", "weight", "v", "u", "bias", NULL};
    static const char *const structures[] = {"stacked", "parallel"};
    ctr_dcn_def_t *dc = &p->m->def.dcn;
    json_t *cross, *deep;
    ctr_layer_def_t *L;
    int rc, e;
    if ((rc = ctr__hp_keys(p, it, "interaction", keys)) ||
        (rc = ctr__hp_enum(p, it, "interaction", "structure", structures, 2, &e)) ||
        (rc = ctr__hp_array(p, it, "interaction", "cross", &cross)) ||
        (rc = ctr__hp_array(p, it, "interaction", "deep", &deep)))
        return rc;
    dc->structure = (ctr_dcn_structure_t)e;
    size_t n = json_array_size(cross);
    ctr_cross_def_t *x = ctr__model_calloc(p->m, n, sizeof(*x));
    if (!x)
        return ctr__hp_nomem(p);
    dc->cross = x;
    dc->n_cross = n;
    for (size_t l = 0; l < n; l++) {
        json_t *o = json_array_get(cross, l);
        char at[64], g[64];
        uint64_t dim, rank;
        snprintf(at, sizeof(at), "interaction.cross[%zu]", l);
        if (!json_is_object(o))
            return ctr__hp_bad(p, CTR_EFORMAT, at, NULL, "expected an object (got %s)",
                               ctr__hp_show(o, g, sizeof(g)));
        if ((rc = ctr__hp_keys(p, o, at, ckeys)) || (rc = ctr__hp_uint(p, o, at, "dim", 1, UINT32_MAX, &dim)) ||
            (rc = ctr__hp_uint(p, o, at, "rank", 0, UINT32_MAX, &rank)) ||
            (rc = optional_ref(p, o, at, "weight", 2, dim, dim, &x[l].w)) ||
            (rc = optional_ref(p, o, at, "v", 2, dim, rank, &x[l].v)) ||
            (rc = optional_ref(p, o, at, "u", 2, rank, dim, &x[l].u)) ||
            (rc = ctr__hp_ref(p, o, at, "bias", NULL, 1, dim, 0, false, &x[l].bias)))
            return rc;
        x[l].dim = (uint32_t)dim;
        x[l].rank = (uint32_t)rank;
    }
    if ((rc = ctr__hp_layers(p, deep, "interaction.deep", &L, &dc->deep.n)))
        return rc;
    dc->deep.layers = L;
    return 0;
}

static int parse_wukong(ctr__parse_t *p, json_t *it)
{
    static const char *const keys[] = {"ln_eps", "fmb_ln", "fmb_out_act", "layers", NULL};
    static const char *const lkeys[] = {"n_in", "n_f", "n_l", "k", "y", "fmb_ln_gamma", "fmb_ln_beta",
                                        "fmb", "lcb", "res", "ln_gamma", "ln_beta", NULL};
    static const char *const fmb_lns[] = {"none", "flat"};
    ctr_model_def_t *def = &p->m->def;
    ctr_wukong_def_t *wk = &def->wukong;
    json_t *layers;
    int rc, e;
    if ((rc = ctr__hp_keys(p, it, "interaction", keys)) ||
        (rc = ctr__hp_positive_float(p, it, "interaction", "ln_eps", &def->ln_eps)) ||
        (rc = ctr__hp_enum(p, it, "interaction", "fmb_ln", fmb_lns, 2, &e)) ||
        (rc = ctr__hp_bool(p, it, "interaction", "fmb_out_act", &wk->fmb_out_act)) ||
        (rc = ctr__hp_array(p, it, "interaction", "layers", &layers)))
        return rc;
    wk->fmb_ln = (ctr_fmb_ln_t)e;
    /* d as ctr__model_check will require it: every embedding's width. */
    uint64_t d = def->n_cat ? def->cat[0].dim : def->bottom.n ? def->bottom.layers[def->bottom.n - 1].out : 0;
    size_t n = json_array_size(layers);
    ctr_wukong_layer_def_t *W = ctr__model_calloc(p->m, n, sizeof(*W));
    if (!W)
        return ctr__hp_nomem(p);
    wk->layers = W;
    wk->n_layers = n;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(layers, i), *fmb;
        ctr_wukong_layer_def_t *L = &W[i];
        char at[64], fat[80], g[64];
        uint64_t n_in, n_f, n_l, k;
        ctr_layer_def_t *F;
        snprintf(at, sizeof(at), "interaction.layers[%zu]", i);
        snprintf(fat, sizeof(fat), "interaction.layers[%zu].fmb", i);
        if (!json_is_object(o))
            return ctr__hp_bad(p, CTR_EFORMAT, at, NULL, "expected an object (got %s)",
                               ctr__hp_show(o, g, sizeof(g)));
        if ((rc = ctr__hp_keys(p, o, at, lkeys)) || (rc = ctr__hp_uint(p, o, at, "n_in", 1, UINT32_MAX, &n_in)) ||
            (rc = ctr__hp_uint(p, o, at, "n_f", 1, UINT32_MAX, &n_f)) ||
            (rc = ctr__hp_uint(p, o, at, "n_l", 1, UINT32_MAX, &n_l)) ||
            (rc = ctr__hp_uint(p, o, at, "k", 1, UINT32_MAX, &k)))
            return rc;
        L->n_in = (uint32_t)n_in;
        L->n_f = (uint32_t)n_f;
        L->n_l = (uint32_t)n_l;
        L->k = (uint32_t)k;
        if ((rc = ctr__hp_ref(p, o, at, "y", NULL, 2, n_in, k, false, &L->y)) ||
            (rc = optional_ref(p, o, at, "fmb_ln_gamma", 1, n_in * k, 0, &L->fmb_ln_gamma)) ||
            (rc = optional_ref(p, o, at, "fmb_ln_beta", 1, n_in * k, 0, &L->fmb_ln_beta)) ||
            (rc = ctr__hp_array(p, o, at, "fmb", &fmb)) ||
            (rc = ctr__hp_layers(p, fmb, fat, &F, &L->fmb.n)))
            return rc;
        L->fmb.layers = F;
        if ((rc = ctr__hp_ref(p, o, at, "lcb", NULL, 2, n_l, n_in, false, &L->lcb)) ||
            (rc = optional_ref(p, o, at, "res", 2, n_f + n_l, n_in, &L->res)) ||
            (rc = ctr__hp_ref(p, o, at, "ln_gamma", NULL, 1, d, 0, false, &L->ln_gamma)) ||
            (rc = ctr__hp_ref(p, o, at, "ln_beta", NULL, 1, d, 0, false, &L->ln_beta)))
            return rc;
    }
    return 0;
}

int ctr__hp_graph(ctr__parse_t *p, json_t *root)
{
    static const char *const bkeys[] = {"layers", NULL};
    ctr_model_def_t *def = &p->m->def;
    json_t *bottom = json_object_get(root, "bottom"), *it, *layers;
    int rc;
    if (def->arch == CTR_ARCH_MLP) {
        if (bottom)
            return ctr__hp_bad(p, CTR_EFORMAT, "", "bottom",
                               "arch mlp has no bottom MLP (its top MLP takes the dense values as they are)");
        if (json_object_get(root, "interaction"))
            return ctr__hp_bad(p, CTR_EFORMAT, "", "interaction", "arch mlp has no interaction");
        return 0;
    }
    if (bottom) {
        ctr_layer_def_t *L;
        char g[64];
        if (!json_is_object(bottom))
            return ctr__hp_bad(p, CTR_EFORMAT, "", "bottom", "expected an object (got %s)",
                               ctr__hp_show(bottom, g, sizeof(g)));
        if ((rc = ctr__hp_keys(p, bottom, "bottom", bkeys)) ||
            (rc = ctr__hp_array(p, bottom, "bottom", "layers", &layers)))
            return rc;
        if (!json_array_size(layers))
            return ctr__hp_bad(p, CTR_EFORMAT, "bottom", "layers",
                               "expected at least one layer (leave \"bottom\" out for none)");
        if ((rc = ctr__hp_layers(p, layers, "bottom.layers", &L, &def->bottom.n)))
            return rc;
        def->bottom.layers = L;
    }
    if ((rc = ctr__hp_object(p, root, "", "interaction", &it)))
        return rc;
    switch (def->arch) {
    case CTR_ARCH_DOT: return parse_dot(p, it);
    case CTR_ARCH_DCNV2: return parse_dcn(p, it);
    case CTR_ARCH_WUKONG: return parse_wukong(p, it);
    case CTR_ARCH_MLP: break;
    }
    return 0;
}
