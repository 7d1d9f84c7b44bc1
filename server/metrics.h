/* metrics.h - the process's counters and histograms, rendered as
 * Prometheus text (exposition format 0.0.4) by GET /metrics.
 *
 * One registry per process (like a Prometheus client library's default
 * registry): the recording functions are lock-free (relaxed atomics) and
 * safe from any thread. Names are listed in docs/OPERATIONS.md. */
#ifndef CTR_SERVER_METRICS_H
#define CTR_SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "audit_writer.h"
#include "buf.h"
#include "registry.h"
#include "shadow.h"

/* The endpoint label of /metrics series; each route table row (routes.c)
 * names one, and several rows may share one. */
typedef enum {
    CTR__EP_SCORE = 0,      /* POST /v1/score */
    CTR__EP_INFER,          /* POST /v2/models/{name}/infer */
    CTR__EP_V2_META,        /* GET /v2, /v2/models/{name}, .../ready */
    CTR__EP_HEALTH,         /* GET /healthz, /v2/health/live */
    CTR__EP_READY,          /* GET /readyz, /v2/health/ready */
    CTR__EP_MODELS,         /* GET /v1/models */
    CTR__EP_METRICS,        /* GET /metrics */
    CTR__EP_RELOAD,         /* POST /v1/admin/reload */
    CTR__EP_PROMOTE,        /* POST /v1/admin/promote */
    CTR__EP_OTHER,          /* anything else (404s) */
    CTR__EP_COUNT
} ctr__endpoint_t;

/* Per-model series carry a model="NAME" label (the last label, so the
 * label sets of a one-model server only grew): requests and their latency
 * on the scoring endpoints, examples scored, reloads, and the model
 * gauges. model is the registry index (registry.h), or -1 for a request
 * that never reached a model (refused before its body was read, or naming
 * a model not served: no label, so a client cannot grow the label set). */

/* A request answered with `status` after e2e_ns since its headers came in. */
void ctr__metrics_request(ctr__endpoint_t ep, long model, int status, uint64_t e2e_ns);
/* A scored batch of model's, n_examples examples that took compute_ns. */
void ctr__metrics_batch(size_t model, size_t n_examples, uint64_t compute_ns);
/* One request of model's: its wait from enqueue to the start of its batch. */
void ctr__metrics_queue_wait(size_t model, uint64_t ns);
void ctr__metrics_reload(size_t model, int ok);
/* A request of model `model` (its registry index) turned away with 503
 * because that model's queue was full (or the server was draining). */
void ctr__metrics_rejected(size_t model);

/* Where requests were scored (batcher.h): on their HTTP thread, or queued
 * and batched by a scoring thread. */
typedef enum {
    CTR__PATH_INLINE = 0,
    CTR__PATH_BATCHED,
    CTR__PATH_COUNT
} ctr__score_path_t;
void ctr__metrics_scored(ctr__score_path_t path, size_t requests);

/* Why a connection was closed from outside libmicrohttpd (conns.c). */
typedef enum {
    CTR__EVICT_HEADERS_TIMEOUT = 0, /* headers not in by --header-timeout-ms */
    CTR__EVICT_BODY_TIMEOUT,        /* body not in by --body-timeout-ms */
    CTR__EVICT_IDLE_AT_LIMIT,       /* idle keep-alive, its slot given to a new one */
    CTR__EVICT_STALLED_AT_LIMIT,    /* still sending headers, slot given to a new one */
    CTR__EVICT_COUNT
} ctr__evict_reason_t;
void ctr__metrics_conn_evicted(ctr__evict_reason_t why);
/* A connection over --max-connections with nothing to evict (503). */
void ctr__metrics_conn_refused(void);
/* The open-connections gauge (admitted ones), moved by delta. */
void ctr__metrics_conn_open(int delta);

/* One served model's point-in-time values. */
typedef struct {
    const char *name;             /* served name: the model label */
    const char *header_name;      /* the file's own name */
    const char *digest;
    uint64_t generation;
    uint64_t loaded_real_ns;
    uint64_t mapped_bytes;        /* its file, mapped read-only */
    uint64_t resident_bytes;      /* of those, in memory (model_mem.h) */
    uint64_t queued_examples;
} ctr__metrics_model_t;

/* Point-in-time values the registry does not own, read at render time. */
typedef struct {
    const char *kernel;
    int bit_exact;
    ctr__metrics_model_t models[CTR__MODELS_MAX];
    size_t n_models;              /* registry order: index = model */
    uint64_t queued_examples, queue_limit;
    uint64_t in_flight;
    int draining;
    ctr__audit_stats_t audit;
    ctr__shadow_t *shadow;        /* NULL: no --shadow (no ctrd_shadow_* series) */
} ctr__metrics_snapshot_t;

void ctr__metrics_render(ctr__buf_t *b, const ctr__metrics_snapshot_t *s);

#endif
