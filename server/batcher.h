/* batcher.h - dynamic batching: a bounded queue per model, scoring threads
 * shared by every model.
 *
 * HTTP threads submit decoded requests (jobs) to their model's queue;
 * scoring threads gather consecutive jobs of the same model generation
 * into a batch of at most
 * max_batch examples, waiting at most max_delay from the arrival of the
 * batch's first example, score it with ctr_forward and hand the batch to
 * the audit hook, which releases each job (audit_writer.h). A job larger than
 * max_batch is scored alone, in place.
 *
 * Threads: each queue has at most one leader at a time, collecting its
 * batch (waiting on the deadline); when it closes the batch it hands
 * leadership on and scores, so filling the next batch overlaps scoring
 * this one. A batch never mixes models (nor generations). Fairness: a
 * free thread leads the next queue with work in round-robin order after
 * the last one led, so a model with waiting requests gets a thread
 * within one batch of each other model's, however deep their queues are.
 * Each thread owns a scratch per model and gather buffers, sized at
 * start-up and rebuilt only when a generation with another shape
 * arrives: nothing is allocated per batch or example.
 *
 * Back-pressure: queue_limit counts examples waiting (not yet taken into a
 * batch) in each model's queue: a flood on one model fills only its own.
 * A submit that would pass it is refused with CTR_EBUSY (503 +
 * Retry-After), except into an empty queue, so one large request is never
 * refused forever.
 *
 * Inline scoring: a request of at most inline_max examples that arrives
 * while no example waits in its model's queue is scored on the calling (HTTP)
 * thread, in one of `threads` inline slots, and handed to the audit hook
 * there: no queue, no wake-up of a scoring thread and, when the audit
 * hook releases at once, no suspend/resume of the connection. Under load
 * the queue is not empty (or every slot is busy) and requests batch as
 * before. Scores do not depend on the batch, so both paths give the same
 * bits (tests/test_inline.sh). */
#ifndef CTR_SERVER_BATCHER_H
#define CTR_SERVER_BATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "audit_writer.h"
#include "ctr/forward.h"
#include "ctr/kernels.h"
#include "modelstore.h"
#include "decode.h"

typedef struct ctr__batcher ctr__batcher_t;

/* One request in the queue; embedded in the caller's per-request state,
 * which must stay alive until item.release has been called. */
typedef struct ctr__job {
    struct ctr__job *next;        /* queue link, batcher's */
    ctr_request_t *req;           /* decoded; scores written by the batcher */
    ctr__gen_t *gen;              /* the generation req was decoded with;
                                     the caller holds the reference */
    uint64_t t_enqueue_ns;        /* monotonic, set by submit */
    uint64_t t_start_ns;          /* monotonic, when its batch closed */
    ctr__audit_item_t item;       /* caller sets req, t_received_ns, release */
} ctr__job_t;

typedef struct {
    size_t threads;               /* >= 1 */
    size_t max_batch;             /* >= 1 */
    uint64_t max_delay_ns;
    size_t queue_limit;           /* examples, per model */
    size_t n_models;              /* >= 1; a job's gen->model_index < this */
    size_t inline_max;            /* examples; 0: never score inline */
    const ctr_kernel_t *kernel;
    ctr__audit_t *audit;          /* borrowed */
    const ctr__gen_t *const *prealloc; /* optional, [n_models] (entries may be
                                     NULL): size every thread's buffers for
                                     these generations at start-up */
} ctr__batcher_config_t;

/* Starts the scoring threads. *out owned by the caller (ctr__batcher_stop). */
/* The buffers a thread encodes batches into: [max_batch][n_dense] dense
 * inputs and [max_batch][slots] row ids, grown to the largest model seen
 * (never shrunk). */
typedef struct {
    float *dense;
    uint32_t *rows;
    size_t dense_cap, rows_cap;   /* floats / row ids they hold */
} ctr__encode_buf_t;

/* Makes buf and *scratch fit batches of up to max_batch examples of
 * generation g: allocates only when *uid (the generation *scratch was
 * built for) is not g's, or buf is too small. The batcher's workers and
 * the shadow's scorer share it. 0 or CTR_ENOMEM. */
int ctr__batch_shape(const ctr__gen_t *g, size_t max_batch, ctr__encode_buf_t *buf, ctr_scratch_t **scratch,
                     uint64_t *uid);

/* Frees what buf holds. */
void ctr__encode_buf_free(ctr__encode_buf_t *buf);

int ctr__batcher_start(const ctr__batcher_config_t *cfg, ctr__batcher_t **out,
                       char *err, size_t errlen);

/* Queues job (job->req->n >= 1). Returns 0, or CTR_EBUSY when the queue is
 * full or the batcher is stopping: then the job is not taken. */
int ctr__batcher_submit(ctr__batcher_t *b, ctr__job_t *job);

/* Scores job on the calling thread and hands it to the audit hook, if
 * the inline policy above allows: returns 1 when it did (job->item.release
 * has been called, or will be by the audit writer), 0 when the job was
 * not taken (submit it). */
int ctr__batcher_score_inline(ctr__batcher_t *b, ctr__job_t *job);

/* Drain mode: stop waiting for batches to fill, score what comes at once. */
void ctr__batcher_drain(ctr__batcher_t *b);

/* Scores everything queued, joins the threads and frees b. */
void ctr__batcher_stop(ctr__batcher_t *b);

/* Examples waiting in model's queue, or in every queue for model -1
 * (for /metrics). */
size_t ctr__batcher_queued(ctr__batcher_t *b, long model);

#endif
