/* model_shape.c - widths that follow from a model description: the top
 * MLP's input, row slots per example, the format version a def needs.
 * Pure functions of ctr_model_def_t, shared by reader, writer, engine and
 * tools so that they agree. */
#include <stddef.h>

#include "ctr/model.h"

/* Embeddings in X for the interaction architectures: the dense one (when
 * there are dense features) and one per categorical feature. */
static size_t n_embeddings(const ctr_model_def_t *def)
{
    return (def->n_dense > 0) + def->n_cat;
}

static size_t emb_dim(const ctr_model_def_t *def)
{
    if (def->n_cat)
        return def->cat[0].dim;
    if (def->bottom.n)
        return def->bottom.layers[def->bottom.n - 1].out;
    return 0;
}

/* DCNv2's x_0: flatten(X), or the raw dense values then the embeddings
 * when there is no bottom MLP. */
static size_t dcn_width(const ctr_model_def_t *def)
{
    size_t w = def->bottom.n ? (def->n_dense > 0) * emb_dim(def) : def->n_dense;
    for (size_t j = 0; j < def->n_cat; j++)
        w += def->cat[j].dim;
    return w;
}

size_t ctr_model_input_dim(const ctr_model_def_t *def)
{
    size_t n = n_embeddings(def), d = emb_dim(def);
    switch (def->arch) {
    case CTR_ARCH_DOT:
        return (def->n_dense > 0) * d + (def->dot_self ? n * (n + 1) / 2 : n * (n - 1) / 2);
    case CTR_ARCH_DCNV2: {
        size_t w = dcn_width(def);
        if (def->dcn.structure == CTR_DCN_PARALLEL && def->dcn.deep.n)
            w += def->dcn.deep.layers[def->dcn.deep.n - 1].out;
        return w;
    }
    case CTR_ARCH_WUKONG:
        if (def->wukong.n_layers) {
            const ctr_wukong_layer_def_t *L = &def->wukong.layers[def->wukong.n_layers - 1];
            return (size_t)(L->n_f + L->n_l) * d;
        }
        return n * d;
    case CTR_ARCH_MLP:
    default: {
        size_t w = def->n_dense;
        for (size_t j = 0; j < def->n_cat; j++)
            w += def->cat[j].dim;
        return w;
    }
    }
}

size_t ctr_model_slots(const ctr_model_def_t *def)
{
    size_t s = 0;
    for (size_t j = 0; j < def->n_cat; j++)
        s += def->cat[j].bag_max ? def->cat[j].bag_max : 1;
    return s;
}

size_t ctr_model_slot_of(const ctr_model_def_t *def, size_t j)
{
    size_t s = 0;
    for (size_t i = 0; i < j && i < def->n_cat; i++)
        s += def->cat[i].bag_max ? def->cat[i].bag_max : 1;
    return s;
}

unsigned ctr_model_def_version(const ctr_model_def_t *def)
{
    if (def->arch != CTR_ARCH_MLP || def->bottom.n)
        return 2;
    for (size_t j = 0; j < def->n_cat; j++) {
        const ctr_cat_def_t *c = &def->cat[j];
        if (c->mapping != CTR_MAP_HASH || c->bag_max || c->shares || c->dtype != CTR_TABLE_F32)
            return 2;
    }
    return 1;
}
