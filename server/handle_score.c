/* handle_score.c - POST /v1/score and POST /v2/models/{name}/infer (see
 * routes.h; bodies in docs/API.md).
 *
 * on_req finds the model first (v2: the path's {name}; v1: the body's
 * "model", found without decoding when several models are served, else
 * the default), then decodes the body against that model's current
 * generation (the request keeps its reference until it is freed). A small request that
 * finds the queue empty is scored right here (batcher.h, "Inline
 * scoring"); when the audit hook also releases at once, on_req answers
 * with no suspension at all. Otherwise on_req suspends the connection and
 * queues the request in the batcher (or, scored inline, waits for the
 * audit writer); the audit hook's release, on a scoring thread or the
 * audit writer's, resumes it and on_resume answers with the scores, or
 * with the error that withheld them. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "routes.h"

#define DECODE_MAX_DEPTH 32

_Static_assert(CTR_REQUEST_MODEL_MAX == CTR__MODEL_NAME_MAX, "a body's model name holds any model's");

/* A decimal byte count without sign, spaces or excess: 0 or -1. */
static int parse_length(const char *s, size_t *out)
{
    size_t v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (SIZE_MAX - 9) / 10)
            return -1;
        v = v * 10 + (size_t)(*s - '0');
    }
    *out = v;
    return 0;
}

/* Audit hook release (audit_writer.h): any thread. */
static void job_released(ctr__audit_item_t *item, int status)
{
    ctr__job_t *job = (ctr__job_t *)((char *)item - offsetof(ctr__job_t, item));
    ctr__http_req_t *r = (ctr__http_req_t *)((char *)job - offsetof(ctr__http_req_t, u.score.job));
    r->u.score.release_status = status;
    /* Inline with a release at once: on_req is still on the stack and
     * answers itself; the connection was never suspended. */
    if (!r->u.score.answer_in_req)
        ctr__http_resume(r);
}

static enum MHD_Result score(ctr__http_req_t *r, int v2)
{
    ctr__http_t *h = r->h;
    ctr__score_state_t *s = &r->u.score;
    ctr_decode_error_t e;
    int rc;

    s->v2 = v2;
    enum MHD_Result answered = MHD_NO;
    if (v2) {
        s->gen = ctr__model_of_path(r, &answered);
    } else if (ctr__registry_count(h->d.models) > 1) {
        /* Which schema to decode with is the body's "model": look for it
         * first. With one model there is no choice to make, so the common
         * case pays nothing and a wrong name is caught after decoding. */
        char name[CTR__MODEL_NAME_MAX + 1];
        size_t nlen = 0;
        if (r->body && ctr__decode_v1_model(r->body, r->len, name, sizeof name - 1, &nlen)) {
            /* A name longer than any model's was cut: looked up at one
             * byte past the longest, it is no model's (404). */
            if (nlen > CTR__MODEL_NAME_MAX)
                nlen = CTR__MODEL_NAME_MAX + 1;
            name[nlen < sizeof name ? nlen : sizeof name - 1] = '\0';
            s->gen = ctr__model_lookup(r, name, nlen, NULL, &answered);
        } else {
            s->gen = ctr__model_lookup(r, NULL, 0, NULL, &answered);
        }
    } else {
        s->gen = ctr__model_lookup(r, NULL, 0, NULL, &answered);
    }
    if (!s->gen)
        return answered;

    ctr_decode_limits_t lim = {.max_examples = h->d.cfg->max_examples, .max_depth = DECODE_MAX_DEPTH};
    memset(&e, 0, sizeof e);
    e.example = -1;
    const char *body = r->body ? r->body : "";
    const char *ihcl = v2 ? ctr__http_header(r, CTR__INFER_HEADER_LEN) : NULL;
    if (ihcl) {
        /* Triton's binary tensor data: a JSON header of that many bytes,
         * then the tensors' bytes (docs/API.md). */
        size_t hl;
        if (parse_length(ihcl, &hl))
            return ctr__http_error(r, CTR_EINVAL, "bad_header_length",
                                   CTR__INFER_HEADER_LEN " must be a decimal byte count, got \"%.40s\"",
                                   ihcl);
        rc = ctr__decode_v2_binary(s->gen->model, body, r->len, hl, &lim, &s->req, &e);
    } else if (v2)
        rc = ctr__decode_v2(s->gen->model, body, r->len, &lim, &s->req, &e);
    else
        rc = ctr__decode_v1(s->gen->model, body, r->len, &lim, &s->req, &e);
    /* The shadow's sample is keyed by the body when the request has no
     * id of its own: decide while the body is here. */
    if (!rc)
        s->shadow_sampled = ctr__shadow_sampled(h->d.shadow, s->gen->model_index, &s->req, r->body, r->len);
    /* The body is not needed any more: give its memory back now. */
    free(r->body);
    r->body = NULL;
    r->cap = r->len = 0;
    if (rc)
        return ctr__http_error_at(r, rc, CTR__SUBJECT_REQUEST, e.name ? e.name : "bad_request",
                                  e.message[0] ? e.message : ctr_strerror(rc), e.example, e.feature);
    s->req_valid = 1;
    r->log_examples = s->req.n;
    r->log_request_id = s->req.request_id;
    if (s->req.has_model && (s->req.has_model == 2 || strcmp(s->req.model, s->gen->name))) {
        /* One model served (with several, the body's model was picked
         * above): the body names another, unknown one. */
        size_t ml = s->req.has_model == 2 ? CTR_REQUEST_MODEL_MAX + 1 : strlen(s->req.model);
        ctr__gen_t *other = ctr__model_lookup(r, s->req.model, ml, NULL, &answered);
        if (!other)
            return answered;
        ctr__gen_release(other);
        return ctr__http_error(r, CTR_EINTERNAL, "internal_error",
                               "the body's model was not the one it was decoded with");
    }
    if (s->req.n == 0)
        return ctr__http_error(r, CTR_EINVAL, "missing_examples", "the request holds no examples");
    if (!s->req.request_id[0])
        ctr__http_request_id(h, s->req.request_id, sizeof s->req.request_id);

    s->job.req = &s->req;
    s->job.gen = s->gen;
    s->job.item.req = &s->req;
    s->job.item.t_received_ns = r->t_received_real_ns;
    s->job.item.release = job_released;
    /* Suspend before the job can be released elsewhere: by a scoring
     * thread (queued), or by the audit writer (inline, durability write or
     * fsync), possibly before this call returns. */
    s->answer_in_req = ctr__audit_releases_at_once(h->d.audit);
    if (!s->answer_in_req)
        ctr__http_suspend(r);
    if (ctr__batcher_score_inline(h->d.batcher, &s->job))
        return s->answer_in_req ? ctr__score_resume(r) : MHD_YES;
    if (s->answer_in_req) {
        s->answer_in_req = 0;
        ctr__http_suspend(r);
    }
    rc = ctr__batcher_submit(h->d.batcher, &s->job);
    if (rc) {
        s->queue_refused = 1;
        s->release_status = rc;
        ctr__http_resume(r);
    }
    return MHD_YES;
}

enum MHD_Result ctr__score_v1(ctr__http_req_t *r)
{
    return score(r, 0);
}

enum MHD_Result ctr__score_v2(ctr__http_req_t *r)
{
    return score(r, 1);
}

enum MHD_Result ctr__score_resume(ctr__http_req_t *r)
{
    ctr__score_state_t *s = &r->u.score;
    int rs = s->release_status;
    if (s->queue_refused) {
        ctr__metrics_rejected(s->gen->model_index);
        if (ctr__http_draining(r->h))
            return ctr__http_error(r, CTR_EBUSY, "draining",
                                   "the server is shutting down; retry on another instance");
        return ctr__http_error(r, CTR_EBUSY, "queue_full",
                               "the scoring queue is full (--queue-limit %llu examples); retry shortly",
                               (unsigned long long)r->h->d.cfg->queue_limit);
    }
    if (rs == CTR_EBUSY)
        return ctr__http_error(r, CTR_EBUSY, "audit_busy", "the audit log cannot keep up; retry shortly");
    /* A record that could not be written withholds the score: 503 with
     * Retry-After like audit_busy (the next write may succeed, or another
     * instance may take it), whatever the writer's code (CTR_EIO). */
    if (rs < 0)
        return ctr__http_error(r, CTR_EBUSY, "audit_failed",
                               "the audit record could not be written; the score is withheld");
    /* A failed forward pass is ours, never the client's: 500. */
    if (s->job.item.score_status)
        return ctr__http_error(r, CTR_EIO, "scoring_failed", "%s", ctr_strerror(s->job.item.score_status));
    ctr__buf_t b;
    if (ctr__buf_init(&b, ctr__score_json_size_hint(s->req.n)))
        return MHD_NO;
    enum MHD_Result ok;
    if (s->v2 && s->req.binary_output) {
        r->reply_infer_header_len = ctr__score_v2_binary(&b, &s->req, s->gen->name, s->gen->digest);
        ok = ctr__http_reply(r, CTR__BINARY_TYPE, &b);
    } else {
        if (s->v2)
            ctr__score_v2_json(&b, &s->req, s->gen->name, s->gen->digest);
        else
            ctr__score_v1_json(&b, &s->req, s->gen->name, s->gen->digest);
        ok = ctr__http_reply(r, CTR__JSON_TYPE, &b);
    }
    s->answered_ok = ok == MHD_YES;
    return ok;
}

void ctr__score_free(ctr__http_req_t *r)
{
    ctr__score_state_t *s = &r->u.score;
    /* The response is out: a sampled request moves, arena and generation
     * reference, to the shadow (shadow.h); dropped, it is freed here. */
    if (s->shadow_sampled && s->answered_ok && s->req_valid &&
        ctr__shadow_offer(r->h->d.shadow, &s->req, s->gen, &s->job.item)) {
        s->req_valid = 0;
        s->gen = NULL;
    }
    if (s->req_valid)
        ctr__request_release(&s->req);
    ctr__gen_release(s->gen);
}
