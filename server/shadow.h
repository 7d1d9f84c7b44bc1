/* shadow.h - the shadow candidate: a deterministic sample of PRIMARY's
 * requests is scored again with CANDIDATE after PRIMARY's response went
 * out, and the two are compared (/metrics ctrd_shadow_*, one type-2 audit
 * record per request: docs/AUDIT_LOG.md "Shadow records").
 *
 * Off the response path by construction:
 *  - the sampling decision is a hash of the request id (else of the body),
 *    taken while decoding (ctr__shadow_sampled);
 *  - the handoff happens when the request is freed, after its 200 went out
 *    (ctr__shadow_offer): the decoded request's arena is MOVED into one of
 *    a fixed set of slots, nothing is copied or allocated, and a full
 *    queue (--shadow-queue-limit examples, or every slot busy) drops the
 *    request at once, counted, never waited for or retried;
 *  - one thread, at SCHED_IDLE (nice 19 where refused), takes queued
 *    requests in batches of at most --max-batch examples (a larger request
 *    in chunks), re-encodes their raw values with the candidate's feature
 *    definitions (its own buckets and seeds: the mirror of `ctrtool audit
 *    verify`'s re-scoring), scores them with its own scratch, and hands one
 *    record per request to the audit writer, whose release records the
 *    comparison in the metrics and frees the slot. The histogram counts
 *    exactly the examples whose record reached the log (or every compared
 *    one with no audit log), so `ctrtool audit pd --shadow` over the log
 *    reproduces it.
 *
 * Compatibility: the candidate must take the primary's inputs unchanged:
 * the same dense and categorical features, by name and in order, and per
 * categorical feature the same bag_max and mapping kind (buckets, seeds,
 * table dims and the architecture may differ). It is checked for each
 * candidate generation (a reload may bring another file) once, by the
 * generation's uid; an incompatible generation's examples are dropped
 * (reason "incompatible") and logged once.
 *
 * Lifetime: ctr__shadow_start after the audit writer opened;
 * ctr__shadow_stop after the HTTP server stopped (no more offers) and
 * before the audit writer closes; ctr__shadow_free after it closed (every
 * record released). */
#ifndef CTR_SERVER_SHADOW_H
#define CTR_SERVER_SHADOW_H

#include <stddef.h>
#include <stdint.h>

#include "audit_writer.h"
#include "buf.h"
#include "ctr/kernels.h"
#include "ctr/model.h"
#include "decode.h"
#include "modelstore.h"

typedef struct ctr__shadow ctr__shadow_t;

/* The hash seed of the sampling rule: "ctrd". */
#define CTR__SHADOW_SEED 0x63747264u
/* At most this many requests are held (queued or being recorded). */
#define CTR__SHADOW_SLOTS_MAX 2048

/* Why sampled examples were not compared (ctrd_shadow_dropped_examples_total). */
typedef enum {
    CTR__SHADOW_DROP_QUEUE_FULL = 0, /* queue at --shadow-queue-limit, or no free slot */
    CTR__SHADOW_DROP_INCOMPATIBLE,   /* the candidate generation cannot take them */
    CTR__SHADOW_DROP_FAILED,         /* re-encoding or the candidate's forward pass failed */
    CTR__SHADOW_DROP_INACTIVE,       /* the shadow went off (promote, shutdown) while they waited */
    CTR__SHADOW_DROP_AUDIT,          /* the audit writer dropped or refused the record */
    CTR__SHADOW_DROP_COUNT
} ctr__shadow_drop_t;

typedef struct {
    ctr__modelstore_t *primary;   /* required */
    ctr__modelstore_t *candidate; /* NULL: it did not load; the shadow is inactive */
    const char *primary_name, *candidate_name; /* labels (live as long as the shadow) */
    double sample;                /* --shadow-sample, [0, 1] */
    double threshold;             /* --shadow-threshold, (0, 1) */
    size_t queue_limit;           /* --shadow-queue-limit, examples, >= 1 */
    size_t max_batch;             /* --max-batch, >= 1 */
    const ctr_kernel_t *kernel;
    ctr__audit_t *audit;          /* borrowed */
    int audit_enabled;            /* 0: no log, every compared example counts */
} ctr__shadow_config_t;

/* Starts the shadow thread and checks the candidate's first generation
 * (an incompatible one is logged, not refused). *out owned by the caller.
 * 0, or CTR_ENOMEM / CTR_EINVAL (err says). */
int ctr__shadow_start(const ctr__shadow_config_t *cfg, ctr__shadow_t **out, char *err, size_t errlen);

/* The sampling rule on its own: h = XXH3_64bits_withSeed(key, len,
 * CTR__SHADOW_SEED); 1 iff h < sample * 2^64 (sample >= 1: always, <= 0:
 * never, without hashing). */
int ctr__shadow_sample_key(double sample, const void *key, size_t len);

/* 1 when the request of model model_index should go to the shadow: the
 * shadow is active, it is the primary's, and its key (the client's
 * request id when req has one, else the body's len bytes) is sampled.
 * Call after decoding, before the body is freed. sh may be NULL (no
 * shadow: 0). */
int ctr__shadow_sampled(const ctr__shadow_t *sh, size_t model_index, const ctr_request_t *req,
                        const void *body, size_t len);

/* Hands a sampled request, answered 200, to the shadow. On 1 the shadow
 * took *req (its arena; req is left empty) and the reference on gen, the
 * generation that scored it; primary is its audit item (seq,
 * generation, arrival time are copied). On 0 (dropped and counted) the
 * caller still owns both. Never blocks beyond a short mutex. */
int ctr__shadow_offer(ctr__shadow_t *sh, ctr_request_t *req, ctr__gen_t *gen,
                      const ctr__audit_item_t *primary);

/* Promote (POST /v1/admin/promote). begin: claims the active shadow for
 * one promote: 0 with the primary's store and the candidate's current
 * file path copied into path (pathlen bytes); CTR_ENOTFOUND when no
 * shadow is active (none, no candidate, already promoted, or a promote
 * under way). end: ok 1 deactivates the shadow for good (queued requests
 * are dropped as "inactive", never waited for); ok 0 gives it back. */
int ctr__shadow_promote_begin(ctr__shadow_t *sh, ctr__modelstore_t **primary, char *path, size_t pathlen);
void ctr__shadow_promote_end(ctr__shadow_t *sh, int ok);
const char *ctr__shadow_primary_name(const ctr__shadow_t *sh);
const char *ctr__shadow_candidate_name(const ctr__shadow_t *sh);

/* Drops what is still queued (reason "inactive": nobody waits for the
 * shadow at exit), lets a batch being scored finish, joins the threads.
 * Later offers are dropped ("inactive"). NULL: no-op. */
void ctr__shadow_stop(ctr__shadow_t *sh);
/* Frees sh once every record handed to the audit writer was released
 * (after ctr__audit_close). NULL: no-op. */
void ctr__shadow_free(ctr__shadow_t *sh);

/* The ctrd_shadow_* series (HELP, TYPE, samples), labelled
 * primary="P",candidate="C". NULL: nothing. */
void ctr__shadow_render(ctr__buf_t *b, ctr__shadow_t *sh);

/* ---- the pieces, for tests ---------------------------------------------- */

/* 0 when the candidate def can take the primary's requests (see the top);
 * else CTR_EINVAL with why saying what differs. */
int ctr__shadow_compatible(const ctr_model_def_t *primary, const ctr_model_def_t *cand,
                           char *why, size_t whylen);

/* Encodes examples [i0, i0 + n) of req's raw values with def (compatible
 * with req's model) into dense[n][n_dense] and rows[n][slots], as the
 * decoder would have for def. 0, or CTR_EINVAL for a value def's mapping
 * refuses. */
int ctr__shadow_encode(const ctr_model_def_t *def, const ctr_request_t *req, size_t i0, size_t n,
                       float *dense, uint32_t *rows);

#endif
