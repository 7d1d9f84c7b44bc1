/* model_stats.c - parameters and arithmetic per example of a model
 * description (ctr/model_stats.h), following the forward pass's
 * operations (forward*.c) one for one. */
#include "ctr/model_stats.h"

#include <string.h>

static void mlp(const ctr_mlp_def_t *m, ctr_model_stats_t *st)
{
    for (size_t i = 0; i < m->n; i++) {
        const ctr_layer_def_t *L = &m->layers[i];
        st->params += (uint64_t)L->in * L->out + L->out;
        st->macs += (uint64_t)L->in * L->out;
        st->flops += L->out; /* activation (counted on every layer) */
    }
}

void ctr_model_stats(const ctr_model_def_t *def, ctr_model_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    uint64_t other = 0, d = def->n_cat ? def->cat[0].dim : 0;
    for (size_t j = 0; j < def->n_cat; j++) {
        const ctr_cat_def_t *c = &def->cat[j];
        if (!c->shares)
            st->emb_params += ((uint64_t)c->buckets + 1) * c->dim;
        if (c->bag_max)
            other += (uint64_t)c->bag_max * c->dim;
    }
    ctr_model_stats_t sub = {0};
    mlp(&def->bottom, &sub);
    if (!d && def->bottom.n)
        d = def->bottom.layers[def->bottom.n - 1].out;
    uint64_t n = (def->n_dense > 0) + def->n_cat;
    switch (def->arch) {
    case CTR_ARCH_DOT:
        sub.macs += n * n * d;
        break;
    case CTR_ARCH_DCNV2:
        for (size_t l = 0; l < def->dcn.n_cross; l++) {
            const ctr_cross_def_t *c = &def->dcn.cross[l];
            uint64_t D = c->dim;
            uint64_t m = c->rank ? 2 * D * c->rank : D * D;
            sub.params += m + D;
            sub.macs += m;
            other += 2 * D;
        }
        if (def->dcn.structure == CTR_DCN_PARALLEL)
            mlp(&def->dcn.deep, &sub);
        break;
    case CTR_ARCH_WUKONG:
        for (size_t i = 0; i < def->wukong.n_layers; i++) {
            const ctr_wukong_layer_def_t *L = &def->wukong.layers[i];
            uint64_t n_in = L->n_in, n_out = (uint64_t)L->n_f + L->n_l, k = L->k;
            sub.params += n_in * k + (uint64_t)L->n_l * n_in + 2 * d;
            sub.macs += 2 * n_in * d * k + (uint64_t)L->n_l * n_in * d;
            if (def->wukong.fmb_ln == CTR_FMB_LN_FLAT) {
                sub.params += 2 * n_in * k;
                other += 7 * n_in * k;
            }
            mlp(&L->fmb, &sub);
            if (L->res) {
                sub.params += n_out * n_in;
                sub.macs += n_out * n_in * d;
            }
            other += n_out * d + 7 * n_out * d; /* residual add, LayerNorm */
        }
        break;
    case CTR_ARCH_MLP:
    default:
        break;
    }
    ctr_mlp_def_t top = {def->n_layers, def->layers};
    mlp(&top, &sub);
    st->params = sub.params;
    st->macs = sub.macs;
    st->flops = 2 * sub.macs + sub.flops + other;
}
