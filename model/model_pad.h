/* model_pad.h - pad weight rows at load (model_pad.c). */
#ifndef CTR_MODEL_PAD_H
#define CTR_MODEL_PAD_H

#include <stddef.h>

#include "ctr/model.h"

/* Layers with out a multiple of CTR__PAD_ALIAS floats (at least that
 * many) get rows of out + CTR__PAD_EXTRA floats. */
#define CTR__PAD_ALIAS 256
#define CTR__PAD_EXTRA 16

/* Takes a padded copy (free() releases it) of the n floats at orig, which
 * the layer stops using (a loaded model drops their mapped pages): 0, or
 * nonzero when it could not (the copy is then freed by ctr__pad_weights
 * and the layer keeps orig). */
typedef int (*ctr__pad_keep_fn)(void *ctx, void *copy, const float *orig, size_t n);

/* The row stride a layer `out` wide gets: out + CTR__PAD_EXTRA for the
 * aliasing widths, else out. */
size_t ctr__pad_ldw(size_t out);

/* For every layer of def's MLPs (top layers, bottom, dcn.deep, each
 * Wukong layer's fmb) whose ldw is 0 and whose out is an aliasing width:
 * a 64-byte aligned copy of the weight with rows ctr__pad_ldw(out) floats
 * apart (the padding zero), handed to keep; the layer's weight then points
 * at it and its ldw is set. The layer arrays are written through def's
 * const pointers: the caller owns them (the reader's ctr__model_calloc
 * arrays, ctr_model_random's). 0, or CTR_ENOMEM (layers padded so far stay
 * padded and valid). */
int ctr__pad_weights(const ctr_model_def_t *def, ctr__pad_keep_fn keep, void *ctx);

#endif
