/* registry.h - the models one ctrd serves, by name.
 *
 * Each model is a modelstore (modelstore.h): its own generations, its own
 * reload thread, its own reload guarantees. The registry only names them:
 * it is filled once at start-up and never changes, so lookups take no
 * lock. The first model is the default (a /v1/score body without
 * "model"). Models are found by their served name: the NAME of
 * --model NAME=PATH, or the file's header name for a bare --model PATH.
 *
 * Names (ctr__registry_name_check): 1 to CTR__MODEL_NAME_MAX bytes of
 * printable ASCII without space, '/', and the characters a URL path
 * segment cannot carry plainly ('?', '#', '%', '"', '\\'), so every name
 * is its own /v2/models/{name} segment. Two models with one name are
 * refused at start-up.
 *
 * A shadow candidate (shadow.h) is a model of the registry like any
 * other; the registry only knows that its load may fail (optional). */
#ifndef CTR_SERVER_REGISTRY_H
#define CTR_SERVER_REGISTRY_H

#include <stddef.h>

#include "ctr/kernels.h"
#include "modelstore.h"

/* At most this many models per process: the per-model metrics and queues
 * are fixed arrays of this size. */
#define CTR__MODELS_MAX 16

typedef struct ctr__registry ctr__registry_t;

typedef struct {
    const char *name;   /* NULL: the file's header name */
    const char *path;
    /* A shadow candidate's (--shadow): when its file does not load, the
     * registry logs why and goes on without it. */
    int optional;
} ctr__model_spec_t;

/* 0 if name may be a served name; else CTR_EINVAL with err saying why. */
int ctr__registry_name_check(const char *name, size_t len, char *err, size_t errlen);

/* Loads and verifies every model (in order; the first is the default).
 * Fails on the first model that does not load (but an optional one: that
 * one is logged as an error naming its file and why, and skipped; the
 * models after it take its index), a bad or duplicate name, or more than
 * CTR__MODELS_MAX models; err names the model and its path. *out owned by
 * the caller. */
int ctr__registry_open(const ctr__model_spec_t *specs, size_t n, const ctr_kernel_t *kernel,
                       ctr__registry_t **out, char *err, size_t errlen);

size_t ctr__registry_count(const ctr__registry_t *r);
/* Model i (0 = the default), i < count. */
ctr__modelstore_t *ctr__registry_at(const ctr__registry_t *r, size_t i);
/* The model named name (len bytes), NULL if none. */
ctr__modelstore_t *ctr__registry_find(const ctr__registry_t *r, const char *name, size_t len);

/* Stops every model's reloads (shutdown; see ctr__modelstore_stop_reloads). */
void ctr__registry_stop_reloads(ctr__registry_t *r);
/* Closes every model; NULL is a no-op. */
void ctr__registry_close(ctr__registry_t *r);

#endif
