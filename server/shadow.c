/* shadow.c - the shadow candidate (see shadow.h).
 *
 * Slots: a fixed array, min(--shadow-queue-limit, CTR__SHADOW_SLOTS_MAX)
 * of them, allocated at start. A slot holds one request from its offer to
 * its audit release: the moved ctr_request_t (whose arena holds the raw
 * values and the primary's scores), the primary's generation reference,
 * the candidate generation it was scored with, its audit item and the
 * type-2 trailer. The candidate's scores go to a per-slot buffer that the
 * shadow thread grows when a slot first meets a larger request (a
 * handful of allocations over the process's life, none on the primary's
 * path), so the record's inputs and both score vectors live until the
 * audit writer releases the record.
 *
 * Two threads, so that the idle-priority one never holds a lock: a thread
 * at SCHED_IDLE gets the CPU only when nothing else wants it, and one
 * holding a mutex the HTTP threads, the audit writer or malloc need would
 * stall them for as long as the machine is busy (priority inversion). So
 * "ctrd-shadow" (normal priority, asleep but for a few microseconds a
 * batch) takes queued requests, acquires the candidate generation, sizes
 * buffers, hands each batch to the audit writer and frees what is dropped;
 * "ctrd-shadow-cpu" (SCHED_IDLE) only re-encodes and runs the forward pass
 * over memory nobody else touches meanwhile, between two semaphores.
 *
 * Locking: one mutex for the queue, the free list and the comparison
 * counters (the release, on the audit writer's thread or ctrd-shadow,
 * adds a request's figures at once); drop counters are atomics. */
#include "shadow.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "clock.h"
#include "ctr/audit.h"
#include "ctr/common.h"
#include "ctr/features.h"
#include "ctr/forward.h"
#include "ctr/metrics.h"
#include "batcher.h"
#include "log.h"

typedef struct slot {
    struct slot *next;            /* free list or queue */
    ctr__shadow_t *sh;
    ctr_request_t req;            /* moved in; scores -> cand once scored */
    float *primary_scores;        /* the arena's: what the response printed */
    ctr__gen_t *pgen;             /* the primary generation that scored it */
    ctr__gen_t *cgen;             /* the candidate generation (until release) */
    float *cand;                  /* [cand_cap] candidate scores */
    size_t cand_cap;
    int failed;                   /* re-encoding or scoring failed */
    ctr_audit_shadow_t trailer;
    ctr__audit_item_t item;
} slot_t;

/* One run of consecutive examples of a slot inside an encode chunk. */
typedef struct {
    slot_t *s;
    size_t from, at, n;           /* slot example from.., chunk position at.. */
} seg_t;

struct ctr__shadow {
    ctr__shadow_config_t cfg;
    size_t primary_index;
    int sample_all, sample_none;  /* --shadow-sample 1 / 0: no hash needed */

    pthread_mutex_t lock;
    pthread_cond_t work_cond;     /* the thread: work, or stop */
    pthread_cond_t idle_cond;     /* ctr__shadow_free: a slot came back */
    slot_t *slots;
    size_t n_slots, in_use;
    slot_t *free_list, *head, *tail;
    size_t queued;                /* examples queued */
    atomic_int active;            /* candidate loaded, not promoted, not stopped
                                     (written under lock; sampling reads it bare) */
    int promoting, stopping;
    int waiting;                  /* ctrd-shadow sleeps on work_cond: wake it */
    pthread_t thread, scorer;
    int thread_started, scorer_started;
    /* The batch handed to the scorer: go posted by ctrd-shadow with
     * job_gen/job_count set, done by the scorer with job_rc. */
    sem_t go, done;
    int sems;
    const ctr__gen_t *job_gen;
    size_t job_count;
    int job_rc, job_stop;

    /* Comparison counters (under lock). */
    uint64_t pd_bucket[CTR_PD_HIST_BOUNDS + 1]; /* non-cumulative */
    double pd_sum, sum_primary, sum_cand;
    uint64_t compared, flips;
    atomic_uint_fast64_t dropped[CTR__SHADOW_DROP_COUNT];
    atomic_uint_fast64_t sampled;

    /* The shadow thread's own. */
    uint64_t shape_uid, compat_uid;
    int compat_ok;
    ctr_scratch_t *scratch;
    ctr__encode_buf_t enc;        /* the re-encoded chunk */
    float *scores;                /* [max_batch] */
    slot_t **batch;               /* [max_batch] */
    ctr__audit_item_t **items;    /* [max_batch] */
    seg_t *segs;                  /* [max_batch] */
};

#define ADD(x, v) atomic_fetch_add_explicit(&(x), (v), memory_order_relaxed)
#define GET(x) ((uint64_t)atomic_load_explicit(&(x), memory_order_relaxed))

/* How long ctrd-shadow lets requests gather after a wake-up. */
#define GATHER_NS 2000000L

static const char *const drop_names[CTR__SHADOW_DROP_COUNT] = {
    "queue_full", "incompatible", "failed", "inactive", "audit"};

/* ---- the pure pieces ---------------------------------------------------- */

int ctr__shadow_sample_key(double sample, const void *key, size_t len)
{
    if (!(sample > 0))
        return 0;
    if (sample >= 1)
        return 1;
    /* sample * 2^64 < 2^64 here, but may round up to it: then every hash
     * is below it. */
    double bound = sample * 18446744073709551616.0;
    uint64_t h = XXH3_64bits_withSeed(key, len, CTR__SHADOW_SEED);
    return bound >= 18446744073709551616.0 || h < (uint64_t)bound;
}

int ctr__shadow_compatible(const ctr_model_def_t *p, const ctr_model_def_t *c, char *why, size_t whylen)
{
    if (p->n_dense != c->n_dense)
        return ctr_error(why, whylen, CTR_EINVAL, "%zu dense features, the primary has %zu", c->n_dense,
                         p->n_dense);
    if (p->n_cat != c->n_cat)
        return ctr_error(why, whylen, CTR_EINVAL, "%zu categorical features, the primary has %zu", c->n_cat,
                         p->n_cat);
    for (size_t j = 0; j < p->n_dense; j++)
        if (strcmp(p->dense[j].name, c->dense[j].name))
            return ctr_error(why, whylen, CTR_EINVAL, "dense feature %zu is \"%s\", the primary's \"%s\"", j,
                             c->dense[j].name, p->dense[j].name);
    for (size_t j = 0; j < p->n_cat; j++) {
        const ctr_cat_def_t *a = &p->cat[j], *b = &c->cat[j];
        if (strcmp(a->name, b->name))
            return ctr_error(why, whylen, CTR_EINVAL, "categorical feature %zu is \"%s\", the primary's \"%s\"",
                             j, b->name, a->name);
        if (a->bag_max != b->bag_max)
            return ctr_error(why, whylen, CTR_EINVAL, "feature \"%s\": bag_max %u, the primary's %u", b->name,
                             b->bag_max, a->bag_max);
        if (a->mapping != b->mapping)
            return ctr_error(why, whylen, CTR_EINVAL, "feature \"%s\": mapping %s, the primary's %s", b->name,
                             b->mapping == CTR_MAP_MOD ? "mod" : "hash", a->mapping == CTR_MAP_MOD ? "mod" : "hash");
    }
    return 0;
}

/* The mirror of `ctrtool audit verify`'s re-scoring (tools/ctrtool/
 * cmd_audit.c rescore): the raw values the record logs, through def's
 * encoding, so its verify reproduces the candidate's scores bit for bit. */
int ctr__shadow_encode(const ctr_model_def_t *def, const ctr_request_t *req, size_t i0, size_t n,
                       float *dense, uint32_t *rows)
{
    size_t nd = def->n_dense, nc = ctr_model_slots(def);
    if (req->n_dense != nd || req->n_cat != nc || i0 + n > req->n)
        return CTR_EINVAL;
    for (size_t i = 0; i < n; i++) {
        const double *raw = req->dense_raw + (i0 + i) * nd;
        for (size_t j = 0; j < nd; j++)
            dense[i * nd + j] = isnan(raw[j]) ? ctr_features_dense_missing(&def->dense[j])
                                              : ctr_features_dense(&def->dense[j], raw[j]);
        size_t base = (i0 + i) * nc;
        for (size_t j = 0, k = 0; j < def->n_cat; j++) {
            const ctr_cat_def_t *c = &def->cat[j];
            for (size_t t = 0; t < ctr_features_width(c); t++, k++) {
                uint32_t *row = &rows[i * nc + k];
                if (req->cat_len[base + k] == CTR_CAT_MISSING_LEN)
                    *row = c->bag_max ? CTR_EMPTY_SLOT : CTR_MISSING_ROW;
                else if (ctr_features_map(c, req->cat_bytes + req->cat_off[base + k], req->cat_len[base + k], row))
                    return CTR_EINVAL;
            }
        }
    }
    return 0;
}

/* ---- handoff (HTTP threads) --------------------------------------------- */

int ctr__shadow_sampled(const ctr__shadow_t *sh, size_t model_index, const ctr_request_t *req,
                        const void *body, size_t len)
{
    /* An inactive shadow samples nothing: after a promote, or without a
     * candidate, the primary's requests are not even counted. */
    if (!sh || model_index != sh->primary_index || sh->sample_none ||
        !atomic_load_explicit(&sh->active, memory_order_relaxed))
        return 0;
    if (sh->sample_all)
        return 1;
    if (req->has_request_id)
        return ctr__shadow_sample_key(sh->cfg.sample, req->request_id,
                                      strnlen(req->request_id, sizeof req->request_id));
    return ctr__shadow_sample_key(sh->cfg.sample, body ? body : "", body ? len : 0);
}

static void drop(ctr__shadow_t *sh, ctr__shadow_drop_t why, size_t examples)
{
    ADD(sh->dropped[why], examples);
}

int ctr__shadow_offer(ctr__shadow_t *sh, ctr_request_t *req, ctr__gen_t *gen, const ctr__audit_item_t *primary)
{
    size_t n = req->n;
    ADD(sh->sampled, 1);
    pthread_mutex_lock(&sh->lock);
    if (!sh->active) {
        pthread_mutex_unlock(&sh->lock);
        drop(sh, CTR__SHADOW_DROP_INACTIVE, n);
        return 0;
    }
    /* Like the batcher's queue: an empty queue takes any request, so a
     * request above the limit is not refused for ever. */
    slot_t *s = sh->free_list;
    if (!s || (sh->queued > 0 && sh->queued + n > sh->cfg.queue_limit)) {
        pthread_mutex_unlock(&sh->lock);
        drop(sh, CTR__SHADOW_DROP_QUEUE_FULL, n);
        return 0;
    }
    sh->free_list = s->next;
    sh->in_use++;
    s->next = NULL;
    s->req = *req;
    s->pgen = gen;
    s->trailer.primary_seq = primary->seq;
    s->trailer.primary_generation = primary->generation ? primary->generation : gen->id;
    s->item.t_received_ns = primary->t_received_ns;
    if (sh->tail)
        sh->tail->next = s;
    else
        sh->head = s;
    sh->tail = s;
    sh->queued += n;
    /* Only a sleeping thread is woken (a futex call each): one gathering
     * or scoring takes this request with the next batch. */
    if (sh->waiting)
        pthread_cond_signal(&sh->work_cond);
    pthread_mutex_unlock(&sh->lock);
    /* The arena is the slot's now. */
    memset(req, 0, sizeof *req);
    return 1;
}

/* ---- the release: comparison figures, slot back ------------------------- */

/* Frees what a slot holds; the slot itself goes back under the lock. */
static void slot_clear(slot_t *s)
{
    if (s->primary_scores)
        s->req.scores = s->primary_scores;
    ctr__request_release(&s->req);
    ctr__gen_release(s->pgen);
    ctr__gen_release(s->cgen);
    s->pgen = s->cgen = NULL;
    s->primary_scores = NULL;
    s->failed = 0;
}

static void slot_put(ctr__shadow_t *sh, slot_t *s)
{
    s->next = sh->free_list;
    sh->free_list = s;
    sh->in_use--;
    if (!sh->in_use)
        pthread_cond_broadcast(&sh->idle_cond);
}

/* Audit hook release (audit_writer.h): any thread. The record is in the
 * log (or there is no log): the example counts; else it is dropped, so
 * the histogram and `ctrtool audit pd --shadow` of the log agree. */
static void slot_released(ctr__audit_item_t *item, int status)
{
    slot_t *s = (slot_t *)((char *)item - offsetof(slot_t, item));
    ctr__shadow_t *sh = s->sh;
    size_t n = s->req.n;
    if (status || (sh->cfg.audit_enabled && !item->seq)) {
        drop(sh, CTR__SHADOW_DROP_AUDIT, n);
        slot_clear(s);
        pthread_mutex_lock(&sh->lock);
        slot_put(sh, s);
        pthread_mutex_unlock(&sh->lock);
        return;
    }
    uint64_t bucket[CTR_PD_HIST_BOUNDS + 1] = {0};
    double pd_sum = 0, sp = 0, sc = 0;
    uint64_t flips = 0;
    const float *p = s->primary_scores, *c = s->cand;
    double t = sh->cfg.threshold;
    for (size_t i = 0; i < n; i++) {
        double pd = ctr_metrics_pd_one(p[i], c[i]);
        bucket[ctr_pd_hist_bucket(pd)]++;
        pd_sum += pd;
        sp += p[i];
        sc += c[i];
        flips += ((double)p[i] >= t) != ((double)c[i] >= t);
    }
    slot_clear(s);
    pthread_mutex_lock(&sh->lock);
    for (size_t i = 0; i <= CTR_PD_HIST_BOUNDS; i++)
        sh->pd_bucket[i] += bucket[i];
    sh->pd_sum += pd_sum;
    sh->sum_primary += sp;
    sh->sum_cand += sc;
    sh->compared += n;
    sh->flips += flips;
    slot_put(sh, s);
    pthread_mutex_unlock(&sh->lock);
}

/* ---- the shadow thread -------------------------------------------------- */

/* The candidate generation g can take the primary's requests (cached per
 * uid; logged once per generation). */
static int compat(ctr__shadow_t *sh, const ctr__gen_t *g)
{
    if (sh->compat_uid == g->uid)
        return sh->compat_ok;
    char why[256];
    ctr__gen_t *p = ctr__modelstore_acquire(sh->cfg.primary);
    sh->compat_ok = !ctr__shadow_compatible(p->def, g->def, why, sizeof why);
    sh->compat_uid = g->uid;
    if (!sh->compat_ok)
        ctr__log(CTR_LOG_ERROR, "shadow candidate incompatible with the primary: its examples are dropped",
                 CTR_LOG_S("candidate", g->name), CTR_LOG_S("file", ctr_model_path(g->model)),
                 CTR_LOG_U("generation", g->id), CTR_LOG_S("digest", g->digest), CTR_LOG_S("primary", p->name),
                 CTR_LOG_S("reason", why), CTR_LOG_END);
    else
        ctr__log(CTR_LOG_INFO, "shadow candidate", CTR_LOG_S("candidate", g->name),
                 CTR_LOG_S("file", ctr_model_path(g->model)), CTR_LOG_U("generation", g->id),
                 CTR_LOG_S("digest", g->digest), CTR_LOG_S("primary", p->name), CTR_LOG_END);
    ctr__gen_release(p);
    return sh->compat_ok;
}

/* Scratch and encode buffers for g, rebuilt only when the candidate's
 * generation changes (a reload). */
static int shape(ctr__shadow_t *sh, const ctr__gen_t *g)
{
    return ctr__batch_shape(g, sh->cfg.max_batch, &sh->enc, &sh->scratch, &sh->shape_uid);
}

/* Scores the chunk gathered in sh->enc (fill examples over nseg
 * segments) and spreads the scores to the slots. */
static void flush_chunk(ctr__shadow_t *sh, const ctr__gen_t *g, size_t fill, size_t nseg)
{
    if (!fill)
        return;
    int rc = ctr_forward(g->def, sh->cfg.kernel, fill, sh->enc.dense, sh->enc.rows, sh->scores, NULL, sh->scratch);
    for (size_t i = 0; i < nseg; i++) {
        seg_t *sg = &sh->segs[i];
        if (rc)
            sg->s->failed = 1;
        else
            memcpy(sg->s->cand + sg->from, sh->scores + sg->at, sg->n * sizeof(float));
    }
    if (rc)
        sh->job_rc = rc;
}

/* Re-encodes and scores the count slots of sh->batch with g, in chunks of
 * at most max_batch examples. A slot that fails is marked. The scorer
 * thread's: no lock, no allocation, no log. */
static void score(ctr__shadow_t *sh, const ctr__gen_t *g, size_t count)
{
    size_t mb = sh->cfg.max_batch, nd = g->def->n_dense, nc = ctr_model_slots(g->def);
    size_t fill = 0, nseg = 0;
    for (size_t b = 0; b < count; b++) {
        slot_t *s = sh->batch[b];
        size_t n = s->req.n;
        for (size_t i = 0; i < n && !s->failed;) {
            size_t take = n - i < mb - fill ? n - i : mb - fill;
            if (ctr__shadow_encode(g->def, &s->req, i, take, sh->enc.dense + fill * nd, sh->enc.rows + fill * nc)) {
                s->failed = 1;
                break;
            }
            sh->segs[nseg++] = (seg_t){s, i, fill, take};
            fill += take;
            i += take;
            if (fill == mb) {
                flush_chunk(sh, g, fill, nseg);
                fill = nseg = 0;
            }
        }
    }
    flush_chunk(sh, g, fill, nseg);
}

/* Drops the count slots of sh->batch (why), freeing them. */
static void drop_batch(ctr__shadow_t *sh, size_t count, ctr__shadow_drop_t why)
{
    for (size_t b = 0; b < count; b++) {
        slot_t *s = sh->batch[b];
        drop(sh, why, s->req.n);
        slot_clear(s);
        pthread_mutex_lock(&sh->lock);
        slot_put(sh, s);
        pthread_mutex_unlock(&sh->lock);
    }
}

/* One batch taken from the queue: score with the candidate's current
 * generation, hand the records to the audit writer. */
static void process(ctr__shadow_t *sh, size_t count)
{
    ctr__gen_t *g = ctr__modelstore_acquire(sh->cfg.candidate);
    if (!compat(sh, g)) {
        drop_batch(sh, count, CTR__SHADOW_DROP_INCOMPATIBLE);
        ctr__gen_release(g);
        return;
    }
    int rc = shape(sh, g);
    if (rc) {
        ctr__log(CTR_LOG_ERROR, "shadow: cannot size the candidate's buffers", CTR_LOG_S("error", ctr_strerror(rc)),
                 CTR_LOG_END);
        drop_batch(sh, count, CTR__SHADOW_DROP_FAILED);
        ctr__gen_release(g);
        return;
    }
    /* Candidate score buffers grow here, not on the scorer. */
    for (size_t b = 0; b < count; b++) {
        slot_t *s = sh->batch[b];
        if (s->req.n > s->cand_cap) {
            float *c = realloc(s->cand, s->req.n * sizeof *c);
            if (!c) {
                s->failed = 1;
                continue;
            }
            s->cand = c;
            s->cand_cap = s->req.n;
        }
    }
    sh->job_gen = g;
    sh->job_count = count;
    sh->job_rc = 0;
    sem_post(&sh->go);
    while (sem_wait(&sh->done) && errno == EINTR)
        ;
    if (sh->job_rc)
        ctr__log(CTR_LOG_ERROR, "shadow: the candidate's forward pass failed", CTR_LOG_S("candidate", g->name),
                 CTR_LOG_S("error", ctr_strerror(sh->job_rc)), CTR_LOG_END);
    size_t m = 0, bad = 0;
    for (size_t b = 0; b < count; b++) {
        slot_t *s = sh->batch[b];
        if (s->failed) {
            sh->batch[bad++] = s;
            continue;
        }
        s->primary_scores = s->req.scores;
        s->req.scores = s->cand;
        if (ctr_audit_digest_parse(s->pgen->digest, s->trailer.primary_digest))
            memset(s->trailer.primary_digest, 0, sizeof s->trailer.primary_digest);
        s->trailer.primary_scores = s->primary_scores;
        ctr__gen_retain(g);
        s->cgen = g;
        s->item.req = &s->req;
        s->item.generation = g->id;
        s->item.load_seq = g->uid;
        s->item.score_status = 0;
        s->item.seq = 0;
        s->item.shadow = &s->trailer;
        s->item.release = slot_released;
        sh->items[m++] = &s->item;
    }
    drop_batch(sh, bad, CTR__SHADOW_DROP_FAILED);
    if (m) {
        ctr__audit_batch_t batch = {
            .model = g->model,
            .generation = g->id,
            .kernel = sh->cfg.kernel,
            .t_scored_ns = ctr__real_ns(),
        };
        ctr__audit_submit(sh->cfg.audit, &batch, sh->items, m);
    }
    ctr__gen_release(g);
}

/* Lowest CPU priority: the shadow only ever uses what the primary leaves. */
static void lower_priority(void)
{
    struct sched_param sp = {.sched_priority = 0};
    int rc = pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
    if (!rc) {
        ctr__log(CTR_LOG_INFO, "shadow thread", CTR_LOG_S("policy", "SCHED_IDLE"), CTR_LOG_END);
        return;
    }
    int nrc = setpriority(PRIO_PROCESS, (id_t)gettid(), 19);
    ctr__log(CTR_LOG_WARN, "shadow thread: SCHED_IDLE refused, running at nice 19",
             CTR_LOG_S("error", strerror(rc)), CTR_LOG_B("nice_19", nrc == 0), CTR_LOG_END);
}

/* The scorer: one batch per go, at idle priority. */
static void *scorer_main(void *arg)
{
    ctr__shadow_t *sh = arg;
    pthread_setname_np(pthread_self(), "ctrd-shadow-cpu");
    lower_priority();
    for (;;) {
        while (sem_wait(&sh->go) && errno == EINTR)
            ;
        if (sh->job_stop)
            break;
        score(sh, sh->job_gen, sh->job_count);
        sem_post(&sh->done);
    }
    return NULL;
}

static void *shadow_main(void *arg)
{
    ctr__shadow_t *sh = arg;
    pthread_setname_np(pthread_self(), "ctrd-shadow");
    size_t mb = sh->cfg.max_batch;
    pthread_mutex_lock(&sh->lock);
    for (;;) {
        if (!sh->head) {
            if (sh->stopping)
                break;
            sh->waiting = 1;
            pthread_cond_wait(&sh->work_cond, &sh->lock);
            sh->waiting = 0;
            /* Woken by the first request after a quiet spell: let more
             * gather (nobody waits for the shadow), so that one wake-up
             * and one scorer hand-off serve a batch, not a request. */
            if (sh->head && sh->queued < mb && !sh->stopping) {
                pthread_mutex_unlock(&sh->lock);
                struct timespec ts = {0, GATHER_NS};
                nanosleep(&ts, NULL);
                pthread_mutex_lock(&sh->lock);
            }
            continue;
        }
        /* Requests in arrival order up to max_batch examples (at least
         * one: a larger request is scored alone, in chunks). */
        size_t count = 0, n = 0;
        while (sh->head && count < mb && (count == 0 || n + sh->head->req.n <= mb)) {
            slot_t *s = sh->head;
            sh->head = s->next;
            n += s->req.n;
            sh->batch[count++] = s;
        }
        if (!sh->head)
            sh->tail = NULL;
        sh->queued -= n;
        int active = sh->active;
        pthread_mutex_unlock(&sh->lock);
        if (active)
            process(sh, count);
        else
            drop_batch(sh, count, CTR__SHADOW_DROP_INACTIVE);
        pthread_mutex_lock(&sh->lock);
    }
    pthread_mutex_unlock(&sh->lock);
    return NULL;
}

/* ---- start, promote, stop ----------------------------------------------- */

int ctr__shadow_start(const ctr__shadow_config_t *cfg, ctr__shadow_t **out, char *err, size_t errlen)
{
    if (!cfg->primary || !cfg->kernel || !cfg->audit || cfg->max_batch < 1 || cfg->queue_limit < 1)
        return ctr_error(err, errlen, CTR_EINVAL, "shadow: incomplete configuration");
    ctr__shadow_t *sh = calloc(1, sizeof *sh);
    if (!sh)
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    sh->cfg = *cfg;
    sh->primary_index = ctr__modelstore_index(cfg->primary);
    sh->sample_all = cfg->sample >= 1;
    sh->sample_none = !(cfg->sample > 0);
    pthread_mutex_init(&sh->lock, NULL);
    pthread_cond_init(&sh->work_cond, NULL);
    pthread_cond_init(&sh->idle_cond, NULL);
    size_t mb = cfg->max_batch;
    sh->n_slots = cfg->queue_limit < CTR__SHADOW_SLOTS_MAX ? cfg->queue_limit : CTR__SHADOW_SLOTS_MAX;
    sh->slots = calloc(sh->n_slots, sizeof *sh->slots);
    sh->scores = malloc(mb * sizeof *sh->scores);
    sh->batch = malloc(mb * sizeof *sh->batch);
    sh->items = malloc(mb * sizeof *sh->items);
    sh->segs = malloc(mb * sizeof *sh->segs);
    if (!sh->slots || !sh->scores || !sh->batch || !sh->items || !sh->segs)
        goto nomem;
    for (size_t i = sh->n_slots; i-- > 0;) {
        sh->slots[i].sh = sh;
        sh->slots[i].next = sh->free_list;
        sh->free_list = &sh->slots[i];
    }
    if (cfg->candidate) {
        /* The first generation's check, logged now rather than at the
         * first sampled request; its buffers sized before traffic. */
        ctr__gen_t *g = ctr__modelstore_acquire(cfg->candidate);
        if (compat(sh, g) && shape(sh, g)) {
            ctr__gen_release(g);
            goto nomem;
        }
        ctr__gen_release(g);
        sh->active = 1;
    }
    if (sem_init(&sh->go, 0, 0) || sem_init(&sh->done, 0, 0))
        goto nomem;
    sh->sems = 1;
    if (pthread_create(&sh->scorer, NULL, scorer_main, sh)) {
        ctr__shadow_free(sh);
        return ctr_error(err, errlen, CTR_ENOMEM, "cannot start the shadow threads");
    }
    sh->scorer_started = 1;
    if (pthread_create(&sh->thread, NULL, shadow_main, sh)) {
        ctr__shadow_free(sh);
        return ctr_error(err, errlen, CTR_ENOMEM, "cannot start the shadow threads");
    }
    sh->thread_started = 1;
    *out = sh;
    return 0;
nomem:
    ctr__shadow_free(sh);
    return ctr_error(err, errlen, CTR_ENOMEM, "out of memory (shadow buffers)");
}

int ctr__shadow_promote_begin(ctr__shadow_t *sh, ctr__modelstore_t **primary, char *path, size_t pathlen)
{
    if (!sh)
        return CTR_ENOTFOUND;
    pthread_mutex_lock(&sh->lock);
    int ok = sh->active && !sh->promoting && !sh->stopping;
    if (ok)
        sh->promoting = 1;
    pthread_mutex_unlock(&sh->lock);
    if (!ok)
        return CTR_ENOTFOUND;
    ctr__gen_t *g = ctr__modelstore_acquire(sh->cfg.candidate);
    snprintf(path, pathlen, "%s", ctr_model_path(g->model));
    ctr__gen_release(g);
    *primary = sh->cfg.primary;
    return 0;
}

void ctr__shadow_promote_end(ctr__shadow_t *sh, int ok)
{
    pthread_mutex_lock(&sh->lock);
    sh->promoting = 0;
    if (ok)
        sh->active = 0;
    pthread_cond_signal(&sh->work_cond);
    pthread_mutex_unlock(&sh->lock);
    if (ok)
        ctr__log(CTR_LOG_INFO, "shadow promoted: the shadow is off", CTR_LOG_S("primary", sh->cfg.primary_name),
                 CTR_LOG_S("candidate", sh->cfg.candidate_name), CTR_LOG_END);
}

const char *ctr__shadow_primary_name(const ctr__shadow_t *sh)
{
    return sh->cfg.primary_name;
}

const char *ctr__shadow_candidate_name(const ctr__shadow_t *sh)
{
    return sh->cfg.candidate_name;
}

void ctr__shadow_stop(ctr__shadow_t *sh)
{
    if (!sh)
        return;
    if (sh->thread_started) {
        pthread_mutex_lock(&sh->lock);
        sh->stopping = 1;
        /* What is still queued is dropped ("inactive"), not scored: the
         * idle-priority scorer may get little CPU while the server drains,
         * and nobody waits for the shadow's figures at exit. */
        sh->active = 0;
        pthread_cond_signal(&sh->work_cond);
        pthread_mutex_unlock(&sh->lock);
        pthread_join(sh->thread, NULL);
        sh->thread_started = 0;
    }
    if (sh->scorer_started) {
        sh->job_stop = 1;
        sem_post(&sh->go);
        pthread_join(sh->scorer, NULL);
        sh->scorer_started = 0;
    }
    pthread_mutex_lock(&sh->lock);
    sh->active = 0;
    pthread_mutex_unlock(&sh->lock);
}

void ctr__shadow_free(ctr__shadow_t *sh)
{
    if (!sh)
        return;
    ctr__shadow_stop(sh);
    /* Every record was released when the audit writer closed; a slot still
     * out would be a bug there, and freeing under it worse: wait a while,
     * then leave the memory to the exiting process rather than hang. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&sh->lock);
    while (sh->in_use && pthread_cond_timedwait(&sh->idle_cond, &sh->lock, &until) != ETIMEDOUT)
        ;
    size_t out = sh->in_use;
    pthread_mutex_unlock(&sh->lock);
    if (out) {
        ctr__log(CTR_LOG_ERROR, "shadow: requests never released by the audit writer; not freed",
                 CTR_LOG_U("requests", out), CTR_LOG_END);
        return;
    }
    for (size_t i = 0; sh->slots && i < sh->n_slots; i++)
        free(sh->slots[i].cand);
    free(sh->slots);
    ctr_scratch_free(sh->scratch);
    ctr__encode_buf_free(&sh->enc);
    free(sh->scores);
    free(sh->batch);
    free(sh->items);
    free(sh->segs);
    if (sh->sems) {
        sem_destroy(&sh->go);
        sem_destroy(&sh->done);
    }
    pthread_mutex_destroy(&sh->lock);
    pthread_cond_destroy(&sh->work_cond);
    pthread_cond_destroy(&sh->idle_cond);
    free(sh);
}

/* ---- /metrics ----------------------------------------------------------- */

static void head(ctr__buf_t *b, const char *name, const char *type, const char *help)
{
    ctr__buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void ctr__shadow_render(ctr__buf_t *b, ctr__shadow_t *sh)
{
    if (!sh)
        return;
    char lab[300];
    ctr__buf_t lb;
    ctr__buf_init_fixed(&lb, lab, sizeof lab);
    ctr__buf_puts(&lb, "primary=\"");
    ctr__buf_prom_label(&lb, sh->cfg.primary_name);
    ctr__buf_puts(&lb, "\",candidate=\"");
    ctr__buf_prom_label(&lb, sh->cfg.candidate_name);
    ctr__buf_puts(&lb, "\"");

    uint64_t bucket[CTR_PD_HIST_BOUNDS + 1];
    pthread_mutex_lock(&sh->lock);
    memcpy(bucket, sh->pd_bucket, sizeof bucket);
    double pd_sum = sh->pd_sum, sp = sh->sum_primary, sc = sh->sum_cand;
    uint64_t compared = sh->compared, flips = sh->flips;
    size_t queued = sh->queued;
    int active = atomic_load(&sh->active);
    pthread_mutex_unlock(&sh->lock);

    head(b, "ctrd_shadow_active", "gauge",
         "1 while the shadow candidate is scored on the primary's sampled requests (0: no candidate loaded, promoted).");
    ctr__buf_printf(b, "ctrd_shadow_active{%s} %d\n", lab, active);
    head(b, "ctrd_shadow_sample_ratio", "gauge", "--shadow-sample: the fraction of the primary's requests sampled.");
    ctr__buf_printf(b, "ctrd_shadow_sample_ratio{%s} %.17g\n", lab, sh->cfg.sample);
    head(b, "ctrd_shadow_threshold", "gauge", "--shadow-threshold: a flip is (primary >= T) != (candidate >= T).");
    ctr__buf_printf(b, "ctrd_shadow_threshold{%s} %.17g\n", lab, sh->cfg.threshold);
    head(b, "ctrd_shadow_requests_sampled_total", "counter",
         "Requests of the primary sampled and answered 200, handed to the shadow.");
    ctr__buf_printf(b, "ctrd_shadow_requests_sampled_total{%s} %llu\n", lab, (unsigned long long)GET(sh->sampled));
    head(b, "ctrd_shadow_queue_examples", "gauge", "Examples waiting for the candidate.");
    ctr__buf_printf(b, "ctrd_shadow_queue_examples{%s} %zu\n", lab, queued);
    head(b, "ctrd_shadow_examples_total", "counter", "Examples scored by both models and compared.");
    ctr__buf_printf(b, "ctrd_shadow_examples_total{%s} %llu\n", lab, (unsigned long long)compared);
    head(b, "ctrd_shadow_dropped_examples_total", "counter",
         "Sampled examples not compared, by reason: queue_full, incompatible, failed, inactive, audit.");
    for (size_t i = 0; i < CTR__SHADOW_DROP_COUNT; i++)
        ctr__buf_printf(b, "ctrd_shadow_dropped_examples_total{%s,reason=\"%s\"} %llu\n", lab, drop_names[i],
                        (unsigned long long)GET(sh->dropped[i]));
    head(b, "ctrd_shadow_flips_total", "counter", "Compared examples whose decision at --shadow-threshold differs.");
    ctr__buf_printf(b, "ctrd_shadow_flips_total{%s} %llu\n", lab, (unsigned long long)flips);
    head(b, "ctrd_shadow_score_sum_total", "counter", "Sum of the compared examples' scores, by model role.");
    ctr__buf_printf(b, "ctrd_shadow_score_sum_total{%s,role=\"primary\"} %.17g\n", lab, sp);
    ctr__buf_printf(b, "ctrd_shadow_score_sum_total{%s,role=\"candidate\"} %.17g\n", lab, sc);
    head(b, "ctrd_shadow_score_mean", "gauge", "Mean score of the compared examples, by model role (0 before any).");
    ctr__buf_printf(b, "ctrd_shadow_score_mean{%s,role=\"primary\"} %.17g\n", lab,
                    compared ? sp / (double)compared : 0.0);
    ctr__buf_printf(b, "ctrd_shadow_score_mean{%s,role=\"candidate\"} %.17g\n", lab,
                    compared ? sc / (double)compared : 0.0);
    head(b, "ctrd_shadow_pd", "histogram",
         "Per-example relative prediction difference 2|p - c| / (p + c) between primary and candidate (0 when both < 1e-7).");
    uint64_t cum = 0;
    for (size_t i = 0; i <= CTR_PD_HIST_BOUNDS; i++) {
        cum += bucket[i];
        if (i < CTR_PD_HIST_BOUNDS)
            ctr__buf_printf(b, "ctrd_shadow_pd_bucket{%s,le=\"%g\"} %llu\n", lab, ctr_pd_hist_bounds[i],
                            (unsigned long long)cum);
        else
            ctr__buf_printf(b, "ctrd_shadow_pd_bucket{%s,le=\"+Inf\"} %llu\n", lab, (unsigned long long)cum);
    }
    ctr__buf_printf(b, "ctrd_shadow_pd_sum{%s} %.17g\n", lab, pd_sum);
    ctr__buf_printf(b, "ctrd_shadow_pd_count{%s} %llu\n", lab, (unsigned long long)cum);
}
