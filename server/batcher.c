/* batcher.c - dynamic batching and the scoring threads (see batcher.h). */
#include "batcher.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "ctr/common.h"
#include "ctr/forward.h"
#include "log.h"
#include "metrics.h"

/* A thread's forward-pass scratch for one model, shaped for one of its
 * generations (uid). */
typedef struct {
    uint64_t uid;
    ctr_scratch_t *scratch;
} model_scratch_t;

typedef struct {
    ctr__batcher_t *b;
    pthread_t thread;
    size_t index;
    /* One scratch per model, so alternating between models (the fair
     * share) allocates nothing; rebuilt only when a model's generation
     * changes shape. The gather buffers fit the largest model seen. */
    model_scratch_t *per_model;   /* [n_models] */
    ctr__encode_buf_t enc;        /* gathered inputs of the batch */
    float *scores;                /* [max_batch] */
    ctr__job_t **jobs;            /* [max_batch] the batch being scored */
    ctr__audit_item_t **items;    /* [max_batch] handed to the audit hook */
} worker_t;

/* One model's queue. A batch holds jobs of one queue only, so one kernel
 * call never mixes models. */
typedef struct {
    ctr__job_t *head, *tail;
    size_t queued;                /* examples in the queue */
    int leader;                   /* a thread is collecting this queue's batch */
    pthread_cond_t leader_cond;   /* its leader: a new job or its deadline */
} mqueue_t;

struct ctr__batcher {
    ctr__batcher_config_t cfg;
    pthread_mutex_t lock;
    pthread_cond_t work_cond;     /* idle threads: a queue with work and no leader */
    mqueue_t *q;                  /* [n_models] */
    size_t rr;                    /* the queue to look at first for the next batch */
    int draining, stopping;
    size_t n_started;
    worker_t *workers;
    /* Inline slots (batcher.h): buffers for requests scored on an HTTP
     * thread; inline_free[0..n_inline_free) are the idle ones. */
    worker_t *inline_slots;
    size_t *inline_free, n_inline_free;
};

int ctr__batch_shape(const ctr__gen_t *g, size_t max_batch, ctr__encode_buf_t *buf, ctr_scratch_t **scratch,
                     uint64_t *uid)
{
    if (*uid == g->uid && *scratch)
        return 0;
    size_t nd = g->def->n_dense * max_batch, nc = ctr_model_slots(g->def) * max_batch;
    ctr_scratch_free(*scratch);
    *scratch = NULL;
    *uid = 0;
    if (nd > buf->dense_cap) {
        float *p = realloc(buf->dense, (nd ? nd : 1) * sizeof *p);
        if (!p)
            return CTR_ENOMEM;
        buf->dense = p;
        buf->dense_cap = nd;
    }
    if (nc > buf->rows_cap) {
        uint32_t *p = realloc(buf->rows, (nc ? nc : 1) * sizeof *p);
        if (!p)
            return CTR_ENOMEM;
        buf->rows = p;
        buf->rows_cap = nc;
    }
    if (ctr_scratch_new(g->def, max_batch, scratch, NULL, 0))
        return CTR_ENOMEM;
    *uid = g->uid;
    return 0;
}

void ctr__encode_buf_free(ctr__encode_buf_t *buf)
{
    free(buf->dense);
    free(buf->rows);
    memset(buf, 0, sizeof *buf);
}

/* Shapes w's buffers for generation g. Called per batch, allocates only
 * when the model's generation changed shape or a larger model arrives. */
static int worker_shape(worker_t *w, const ctr__gen_t *g)
{
    model_scratch_t *ms = &w->per_model[g->model_index];
    return ctr__batch_shape(g, w->b->cfg.max_batch, &w->enc, &ms->scratch, &ms->uid);
}

/* Scores the count jobs in w->jobs (n examples, one generation) and hands
 * them to the audit hook. The jobs must not be touched afterwards: their
 * release may free them. Queued jobs have t_enqueue_ns set; inline ones
 * never waited. */
static void score_batch(worker_t *w, size_t count, size_t n, int queued)
{
    ctr__batcher_t *b = w->b;
    ctr__gen_t *g = w->jobs[0]->gen;
    const ctr_model_def_t *def = g->def;
    uint64_t t0 = ctr__mono_ns();
    for (size_t i = 0; i < count; i++) {
        w->jobs[i]->t_start_ns = t0;
        if (queued)
            ctr__metrics_queue_wait(g->model_index, t0 - w->jobs[i]->t_enqueue_ns);
    }
    ctr__metrics_scored(queued ? CTR__PATH_BATCHED : CTR__PATH_INLINE, count);
    int rc = worker_shape(w, g);
    ctr_scratch_t *scratch = w->per_model[g->model_index].scratch;
    if (!rc && count == 1) {
        /* One request (possibly above max_batch): score in place. */
        ctr_request_t *r = w->jobs[0]->req;
        rc = ctr_forward(def, b->cfg.kernel, r->n, r->dense, r->rows, r->scores, NULL, scratch);
    } else if (!rc) {
        size_t nd = def->n_dense, nc = ctr_model_slots(def), off = 0;
        for (size_t i = 0; i < count; i++) {
            const ctr_request_t *r = w->jobs[i]->req;
            memcpy(w->enc.dense + off * nd, r->dense, r->n * nd * sizeof(float));
            memcpy(w->enc.rows + off * nc, r->rows, r->n * nc * sizeof(uint32_t));
            off += r->n;
        }
        rc = ctr_forward(def, b->cfg.kernel, n, w->enc.dense, w->enc.rows, w->scores, NULL, scratch);
        off = 0;
        for (size_t i = 0; i < count; i++) {
            ctr_request_t *r = w->jobs[i]->req;
            memcpy(r->scores, w->scores + off, r->n * sizeof(float));
            off += r->n;
        }
    }
    uint64_t t1 = ctr__mono_ns();
    ctr__metrics_batch(g->model_index, n, t1 - t0);
    if (rc)
        ctr__log(CTR_LOG_ERROR, "scoring a batch failed", CTR_LOG_S("error", ctr_strerror(rc)),
                 CTR_LOG_S("model", g->name), CTR_LOG_U("examples", n),
                 CTR_LOG_U("requests", count), CTR_LOG_END);
    for (size_t i = 0; i < count; i++) {
        ctr__audit_item_t *it = &w->jobs[i]->item;
        it->score_status = rc;
        it->generation = g->id;
        it->load_seq = g->uid;
        w->items[i] = it;
    }
    ctr__audit_batch_t batch = {
        .model = g->model,
        .generation = g->id,
        .kernel = b->cfg.kernel,
        .t_scored_ns = ctr__real_ns(),
    };
    ctr__audit_submit(b->cfg.audit, &batch, w->items, count);
}

static struct timespec mono_ts(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    return ts;
}

/* The queue a free thread should lead next: round-robin from b->rr over
 * the queues with work and no leader, so each model with work gets its
 * turn at the threads, however deep another's queue is. -1: none. Under
 * b->lock. */
static long pick_queue(const ctr__batcher_t *b)
{
    size_t n = b->cfg.n_models;
    for (size_t k = 0; k < n; k++) {
        size_t m = (b->rr + k) % n;
        if (b->q[m].head && !b->q[m].leader)
            return (long)m;
    }
    return -1;
}

static int any_queued(const ctr__batcher_t *b)
{
    for (size_t m = 0; m < b->cfg.n_models; m++)
        if (b->q[m].head)
            return 1;
    return 0;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    ctr__batcher_t *b = w->b;
    char name[16];
    snprintf(name, sizeof name, "ctrd-score-%zu", w->index);
    pthread_setname_np(pthread_self(), name);

    size_t mb = b->cfg.max_batch;
    pthread_mutex_lock(&b->lock);
    for (;;) {
        if (b->stopping && !any_queued(b))
            break;
        long pick = pick_queue(b);
        if (pick < 0) {
            pthread_cond_wait(&b->work_cond, &b->lock);
            continue;
        }
        /* Lead queue m: grow the batch from its head until it is full, the
         * next job belongs to another generation, or the first job's
         * deadline passes. Only the queue's leader pops it, so its head
         * and the jobs already counted stay put while we wait. */
        size_t m = (size_t)pick;
        mqueue_t *q = &b->q[m];
        b->rr = (m + 1) % b->cfg.n_models;
        q->leader = 1;
        ctr__job_t *first = q->head, *last = NULL;
        uint64_t uid = first->gen->uid;
        size_t n = 0, count = 0;
        if (pick_queue(b) >= 0)
            pthread_cond_signal(&b->work_cond);   /* another queue waits for a leader */
        for (;;) {
            ctr__job_t *c = last ? last->next : first;
            while (c && c->gen->uid == uid && (count == 0 || (n + c->req->n <= mb && count < mb))) {
                n += c->req->n;
                count++;
                last = c;
                c = c->next;
            }
            if (c || n >= mb || b->draining || b->stopping)
                break;          /* full, or a generation boundary */
            uint64_t deadline = first->t_enqueue_ns + b->cfg.max_delay_ns;
            if (ctr__mono_ns() >= deadline)
                break;
            struct timespec ts = mono_ts(deadline);
            pthread_cond_timedwait(&q->leader_cond, &b->lock, &ts);
        }
        q->head = last->next;
        if (!q->head)
            q->tail = NULL;
        q->queued -= n;
        q->leader = 0;
        size_t i = 0;
        for (ctr__job_t *j = first; i < count; j = j->next)
            w->jobs[i++] = j;
        if (b->stopping)
            pthread_cond_broadcast(&b->work_cond);  /* nobody may sleep through the end */
        else if (pick_queue(b) >= 0)
            pthread_cond_signal(&b->work_cond);     /* someone lead the next */
        pthread_mutex_unlock(&b->lock);

        score_batch(w, count, n, 1);

        pthread_mutex_lock(&b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

int ctr__batcher_submit(ctr__batcher_t *b, ctr__job_t *job)
{
    size_t n = job->req->n;
    CTR_ASSERT(n >= 1 && job->gen && job->item.release);
    CTR_ASSERT(job->gen->model_index < b->cfg.n_models);
    mqueue_t *q = &b->q[job->gen->model_index];
    pthread_mutex_lock(&b->lock);
    if (b->stopping || (q->queued > 0 && q->queued + n > b->cfg.queue_limit)) {
        pthread_mutex_unlock(&b->lock);
        return CTR_EBUSY;
    }
    job->next = NULL;
    job->t_enqueue_ns = ctr__mono_ns();
    if (q->tail)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
    q->queued += n;
    /* Wake the leader only when its batch may now be complete (enough
     * examples, or a generation boundary); otherwise it sleeps until its
     * deadline. A wake-up per request would cost a context switch each. */
    if (q->leader) {
        if (q->queued >= b->cfg.max_batch || job->gen->uid != q->head->gen->uid)
            pthread_cond_signal(&q->leader_cond);
    } else {
        pthread_cond_signal(&b->work_cond);
    }
    pthread_mutex_unlock(&b->lock);
    return 0;
}

int ctr__batcher_score_inline(ctr__batcher_t *b, ctr__job_t *job)
{
    if (job->req->n > b->cfg.inline_max)
        return 0;
    pthread_mutex_lock(&b->lock);
    if (b->stopping || b->q[job->gen->model_index].queued > 0 || b->n_inline_free == 0) {
        pthread_mutex_unlock(&b->lock);
        return 0;
    }
    size_t slot = b->inline_free[--b->n_inline_free];
    pthread_mutex_unlock(&b->lock);

    worker_t *w = &b->inline_slots[slot];
    w->jobs[0] = job;
    score_batch(w, 1, job->req->n, 0);

    pthread_mutex_lock(&b->lock);
    b->inline_free[b->n_inline_free++] = slot;
    pthread_mutex_unlock(&b->lock);
    return 1;
}

void ctr__batcher_drain(ctr__batcher_t *b)
{
    pthread_mutex_lock(&b->lock);
    b->draining = 1;
    for (size_t m = 0; m < b->cfg.n_models; m++)
        pthread_cond_broadcast(&b->q[m].leader_cond);
    pthread_cond_broadcast(&b->work_cond);
    pthread_mutex_unlock(&b->lock);
}

size_t ctr__batcher_queued(ctr__batcher_t *b, long model)
{
    size_t n = 0;
    pthread_mutex_lock(&b->lock);
    for (size_t m = 0; m < b->cfg.n_models; m++)
        if (model < 0 || (size_t)model == m)
            n += b->q[m].queued;
    pthread_mutex_unlock(&b->lock);
    return n;
}

static void worker_free(worker_t *w, size_t n_models)
{
    for (size_t m = 0; w->per_model && m < n_models; m++)
        ctr_scratch_free(w->per_model[m].scratch);
    free(w->per_model);
    ctr__encode_buf_free(&w->enc);
    free(w->scores);
    free(w->jobs);
    free(w->items);
}

int ctr__batcher_start(const ctr__batcher_config_t *cfg, ctr__batcher_t **out,
                       char *err, size_t errlen)
{
    int rc;
    pthread_condattr_t ca;
    if (cfg->threads < 1 || cfg->max_batch < 1 || cfg->n_models < 1 || !cfg->kernel || !cfg->audit)
        return ctr_error(err, errlen, CTR_EINVAL, "batcher: threads, max_batch and models must be >= 1");
    ctr__batcher_t *b = calloc(1, sizeof *b);
    if (!b)
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    b->cfg = *cfg;
    b->cfg.prealloc = NULL;
    pthread_mutex_init(&b->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->work_cond, &ca);
    b->q = calloc(cfg->n_models, sizeof *b->q);
    for (size_t m = 0; b->q && m < cfg->n_models; m++)
        pthread_cond_init(&b->q[m].leader_cond, &ca);
    pthread_condattr_destroy(&ca);
    if (!b->q) {
        free(b);
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    }
    if (!(b->workers = calloc(cfg->threads, sizeof *b->workers))) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
        goto fail;
    }
    size_t n_inline = cfg->inline_max ? cfg->threads : 0;
    if (n_inline && (!(b->inline_slots = calloc(n_inline, sizeof *b->inline_slots)) ||
                     !(b->inline_free = calloc(n_inline, sizeof *b->inline_free)))) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < cfg->threads + n_inline; i++) {
        worker_t *w = i < cfg->threads ? &b->workers[i] : &b->inline_slots[i - cfg->threads];
        w->b = b;
        w->index = i;
        w->scores = malloc(cfg->max_batch * sizeof *w->scores);
        w->jobs = malloc(cfg->max_batch * sizeof *w->jobs);
        w->items = malloc(cfg->max_batch * sizeof *w->items);
        w->per_model = calloc(cfg->n_models, sizeof *w->per_model);
        int shaped = 0;
        for (size_t m = 0; cfg->prealloc && !shaped && m < cfg->n_models; m++)
            shaped = cfg->prealloc[m] && w->scores && w->jobs && w->items && w->per_model
                         ? worker_shape(w, cfg->prealloc[m]) : 0;
        if (!w->scores || !w->jobs || !w->items || !w->per_model || shaped) {
            rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory for %zu scoring threads' buffers", cfg->threads);
            goto fail;
        }
        if (i >= cfg->threads)
            b->inline_free[b->n_inline_free++] = i - cfg->threads;
    }
    for (size_t i = 0; i < cfg->threads; i++) {
        if (pthread_create(&b->workers[i].thread, NULL, worker_main, &b->workers[i])) {
            rc = ctr_error(err, errlen, CTR_ENOMEM, "cannot start scoring thread %zu", i);
            goto fail;
        }
        b->n_started++;
    }
    *out = b;
    return 0;
fail:
    ctr__batcher_stop(b);
    return rc;
}

void ctr__batcher_stop(ctr__batcher_t *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    b->stopping = 1;
    b->draining = 1;
    for (size_t m = 0; m < b->cfg.n_models; m++)
        pthread_cond_broadcast(&b->q[m].leader_cond);
    pthread_cond_broadcast(&b->work_cond);
    pthread_mutex_unlock(&b->lock);
    for (size_t i = 0; i < b->n_started; i++)
        pthread_join(b->workers[i].thread, NULL);
    if (b->workers)
        for (size_t i = 0; i < b->cfg.threads; i++)
            worker_free(&b->workers[i], b->cfg.n_models);
    if (b->inline_slots)
        for (size_t i = 0; i < b->cfg.threads; i++)
            worker_free(&b->inline_slots[i], b->cfg.n_models);
    free(b->workers);
    free(b->inline_slots);
    free(b->inline_free);
    pthread_mutex_destroy(&b->lock);
    for (size_t m = 0; m < b->cfg.n_models; m++)
        pthread_cond_destroy(&b->q[m].leader_cond);
    pthread_cond_destroy(&b->work_cond);
    free(b->q);
    free(b);
}
