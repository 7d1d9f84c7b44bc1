/* modelstore.h - one served model, as refcounted generations, and its
 * hot reload. ctrd serves several of these side by side, each under its
 * own name (registry.h); every guarantee below holds per model.
 *
 * A generation is one loaded and verified model file. The store holds a
 * reference to the current one; every request takes its own reference
 * when it is decoded (ctr__modelstore_acquire) and drops it when it is
 * answered, so a request is decoded, batched and scored with one model
 * even when a reload swaps the current generation meanwhile. The last
 * ctr__gen_release of a retired generation unmaps its file.
 *
 * Reload: the new file is opened and verified (every tensor checksum)
 * beside the serving one, then swapped in under a lock; a file that fails
 * leaves the old generation serving. Reloads are serialized; the async
 * form runs them on the store's own thread, so neither signal handling nor
 * HTTP threads wait on a multi-second verify. */
#ifndef CTR_SERVER_MODELSTORE_H
#define CTR_SERVER_MODELSTORE_H

#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#include "ctr/kernels.h"
#include "ctr/model.h"

typedef struct ctr__modelstore ctr__modelstore_t;

/* The short form of a model version (/v2/models/{name}/versions/{version}):
 * the digest's first this many hex digits. */
#define CTR__VERSION_SHORT_HEX 12

/* A served model's name: 1 to this many bytes (registry.h says which). */
#define CTR__MODEL_NAME_MAX 64

/* Fields are read-only for users; refs belongs to the store. */
typedef struct ctr__gen {
    ctr_model_t *model;
    const ctr_model_def_t *def;
    const char *name;             /* the served name (name_buf), fixed for
                                     the model's life: the name it was given
                                     (--model NAME=PATH), else its first
                                     file's header name */
    const char *digest;           /* "sha256:..." */
    uint64_t id;                  /* 1, 2, ... in load order, per model */
    uint64_t uid;                 /* unique over every model's generations
                                     in this process (batcher buffers) */
    size_t model_index;           /* the model's place in the registry */
    char name_buf[CTR__MODEL_NAME_MAX + 1];
    uint64_t file_dev, file_ino;  /* the file mapped (stat after opening) */
    /* ctr__gen_resident_bytes's cache: the figure and when it was taken
     * (monotonic ns, 0: never). */
    atomic_uint_fast64_t resident_bytes, resident_at_ns;
    uint64_t loaded_real_ns;
    char *info_json;              /* this model's /v1/models entry (object) */
    size_t info_json_len;
    char *v2_json;                /* GET /v2/models/{name} body */
    size_t v2_json_len;
    atomic_long refs;
} ctr__gen_t;

typedef struct {
    int rc;                       /* 0 or CTR_E* */
    int unchanged;                /* same digest as the serving model: kept */
    char message[512];            /* the loader's message on failure */
    uint64_t generation;          /* serving generation afterwards */
    char digest[80];              /* serving digest afterwards */
    char previous_digest[80];
    uint64_t elapsed_ns;
} ctr__reload_result_t;

typedef void (*ctr__reload_done_fn)(void *ctx, const ctr__reload_result_t *res);

/* Loads and verifies path as generation 1 and starts the reload thread.
 * name: the served name (at most CTR__MODEL_NAME_MAX bytes; the registry
 * validates it), NULL: the file's header name. index: the model's place
 * in the registry (metrics, batcher queue). kernel is reported in
 * /v1/models. *out owned by the caller. */
int ctr__modelstore_open(const char *name, const char *path, size_t index,
                         const ctr_kernel_t *kernel, ctr__modelstore_t **out,
                         char *err, size_t errlen);

/* The served name (lives as long as s) and the registry index. */
const char *ctr__modelstore_name(const ctr__modelstore_t *s);
size_t ctr__modelstore_index(const ctr__modelstore_t *s);
/* Stops the reload thread after the reload in progress, answering the
 * queued ones CTR_EBUSY; later async reloads get CTR_EBUSY. Idempotent.
 * For shutdown, before the HTTP server stops. */
void ctr__modelstore_stop_reloads(ctr__modelstore_t *s);
/* Stops reloads and drops the store's reference; generations still held by requests are
 * freed when those are released. */
void ctr__modelstore_close(ctr__modelstore_t *s);

/* The current generation with one reference for the caller. */
ctr__gen_t *ctr__modelstore_acquire(ctr__modelstore_t *s);
void ctr__gen_retain(ctr__gen_t *g);
/* Bytes of g's mapped file resident in memory (model_mem.h), measured at
 * most once per max_age_ns (any thread; a figure up to that old otherwise).
 * 0 if it cannot be measured. */
uint64_t ctr__gen_resident_bytes(ctr__gen_t *g, uint64_t max_age_ns);
void ctr__gen_release(ctr__gen_t *g);

/* Reloads now, on the calling thread. path NULL: the current path; a
 * given path becomes the current one on success. Logs and counts the
 * outcome. Returns res->rc. */
int ctr__modelstore_reload(ctr__modelstore_t *s, const char *path,
                           ctr__reload_result_t *res);

/* Queues a reload for the store's thread; done (may be NULL) is called
 * there with the result. Returns 0, CTR_ENOMEM, or CTR_EBUSY after close. */
int ctr__modelstore_reload_async(ctr__modelstore_t *s, const char *path,
                                 ctr__reload_done_fn done, void *ctx);

#endif
