/* model_pad.c - pad weight rows at load: one job, done by ctr_model_open
 * (and by bench_interact on its in-memory models).
 *
 * A weight is [in][out] row-major, and the linear kernel streams a panel
 * of it row after row. When out is a multiple of 256 floats the rows are a
 * multiple of 4 KiB apart, so the rows a micro-kernel panel walks map to
 * the same few L1/L2 sets and evict each other. Measured on an AMD EPYC
 * (Zen 4, AVX-512, one core; docs/BENCHMARKS-arch.md): the same layer
 * shapes reach 71-80% of the FMA peak at width 1024 but 91% at 1008, and
 * Wukong-large at batch 64 ran at 51-65%. A copy whose rows are one cache
 * line longer (out + 16 floats) no longer aliases; the kernel takes the
 * row stride (ldw) and runs the same fmaf chains, so the bits are the
 * same. The file's bytes are untouched: ctr_model_verify hashes the
 * mapping, and ctr_model_write writes a padded layer's rows packed. The
 * reader drops the original's mapped pages (keep_copy in model_read.c):
 * Wukong-large's padded weights are 66 MB, and ctrd's RSS on that model
 * fell from 321 to 256 MB. */
#include "model_pad.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"

size_t ctr__pad_ldw(size_t out)
{
    return out >= CTR__PAD_ALIAS && out % CTR__PAD_ALIAS == 0 ? out + CTR__PAD_EXTRA : out;
}

static int pad_stack(const ctr_mlp_def_t *m, ctr__pad_keep_fn keep, void *ctx)
{
    ctr_layer_def_t *L = (ctr_layer_def_t *)m->layers; /* the caller's array */
    for (size_t l = 0; l < m->n; l++) {
        const size_t in = L[l].in, out = L[l].out, ldw = ctr__pad_ldw(out);
        if (L[l].ldw || ldw == out || !L[l].weight || !in)
            continue;
        /* ldw is a multiple of 16 floats: every row starts on a line */
        float *w = aligned_alloc(64, in * ldw * sizeof(float));
        if (!w)
            return CTR_ENOMEM;
        for (size_t i = 0; i < in; i++) {
            memcpy(w + i * ldw, L[l].weight + i * out, out * sizeof(float));
            memset(w + i * ldw + out, 0, (ldw - out) * sizeof(float));
        }
        if (keep(ctx, w, L[l].weight, in * out)) {
            free(w);
            return CTR_ENOMEM;
        }
        L[l].weight = w;
        L[l].ldw = (uint32_t)ldw;
    }
    return 0;
}

int ctr__pad_weights(const ctr_model_def_t *def, ctr__pad_keep_fn keep, void *ctx)
{
    const ctr_mlp_def_t top = {def->n_layers, def->layers};
    int rc = pad_stack(&top, keep, ctx);
    if (!rc)
        rc = pad_stack(&def->bottom, keep, ctx);
    if (!rc)
        rc = pad_stack(&def->dcn.deep, keep, ctx);
    for (size_t i = 0; !rc && i < def->wukong.n_layers; i++)
        rc = pad_stack(&def->wukong.layers[i].fmb, keep, ctx);
    return rc;
}
