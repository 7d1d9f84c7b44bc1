/* audit_writer.h - the audit log writer, where the audit log plugs into
 * the server.
 *
 * Every scored request hands one record to the audit writer before its
 * response is released: after a batch is scored, its scoring thread calls
 * ctr__audit_submit() once with every request of the batch, and the writer
 * calls each item's release() exactly once when that request's response
 * may go out. With durability "write" that is after the record reached the
 * file; "fsync" after it is synced; "async" at once. release() may run
 * inside ctr__audit_submit (no audit, async) or later on the writer's own
 * thread; it is cheap and never blocks (it resumes an HTTP connection).
 *
 * A release status < 0 means the record could not be written and the
 * response must not claim success: CTR_EBUSY (the writer is behind) is
 * answered 503 audit_busy, CTR_EIO (a write failed: disk full, I/O error)
 * 503 audit_failed, both with Retry-After (server/handle_score.c). (With
 * --audit-on-error continue the writer counts the error and releases with
 * 0 instead.)
 *
 * Errors: every function here returns (and releases with) 0 or a CTR_E*
 * code, never a -errno; the writer's system calls work in -errno inside
 * audit_writer.c and are converted at these functions' boundary.
 *
 * Lifetimes: everything an item points to (the request, its arena, the
 * model generation in the batch) stays valid until that item's release()
 * has been called. The writer copies what it keeps longer.
 *
 * The implementation is audit_writer.c (liburing writer thread, group
 * commit, segments; docs/AUDIT_LOG.md). */
#ifndef CTR_SERVER_AUDIT_WRITER_H
#define CTR_SERVER_AUDIT_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "ctr/audit.h"
#include "ctr/kernels.h"
#include "ctr/model.h"
#include "decode.h"

typedef struct ctr__audit ctr__audit_t;

typedef enum {
    CTR__AUDIT_ASYNC = 0,  /* release at once; records written behind, drops counted */
    CTR__AUDIT_WRITE = 1,  /* release after write(2) of the record */
    CTR__AUDIT_FSYNC = 2,  /* release after the record is synced */
} ctr__audit_durability_t;

typedef struct {
    int enabled;                  /* 0: --no-audit */
    const char *dir;              /* --audit-dir, NULL: the writer's default */
    ctr__audit_durability_t durability;
    uint64_t segment_bytes;       /* --audit-segment-bytes */
    int on_error_fail;            /* --audit-on-error: 1 fail, 0 continue */
    /* Tuning (0: the writer's default, or CTRD_AUDIT_BUFFER_BYTES /
     * CTRD_AUDIT_WAIT_MS from the environment): */
    uint64_t buffer_bytes;        /* each of the two record buffers */
    uint64_t wait_ns;             /* how long a record waits for buffer space before 503 */
} ctr__audit_config_t;

typedef struct ctr__audit_item ctr__audit_item_t;
typedef void (*ctr__audit_release_fn)(ctr__audit_item_t *item, int status);

/* One scored request. Embedded in the server's per-request state: the
 * server sets req, t_received_ns and release; the batcher sets
 * score_status before submitting. */
struct ctr__audit_item {
    const ctr_request_t *req;     /* inputs (raw and encoded) and scores */
    uint64_t t_received_ns;       /* CLOCK_REALTIME ns when it arrived */
    uint64_t generation;          /* model generation (see batch) */
    /* Orders the generations of every model by load (modelstore.h uid);
     * 0: generation. One larger than any before is a reload. */
    uint64_t load_seq;
    int score_status;             /* 0, or CTR_E*: scoring failed, scores invalid */
    ctr__audit_release_fn release;
    /* Set by the writer: the record's seq once reserved, 0 when it was
     * not logged (no log, dropped, refused); read after release. */
    uint64_t seq;
    /* NULL: a scored request (type-1 record); else the request's shadow
     * comparison, its record type 2 (ctr_audit_input_t.shadow). */
    const ctr_audit_shadow_t *shadow;
};

/* What every item of one submit has in common; valid until the last of
 * the submit's items has been released. */
typedef struct {
    const ctr_model_t *model;     /* digest via ctr_model_digest() */
    uint64_t generation;          /* 1, 2, ... in load order */
    const ctr_kernel_t *kernel;   /* name and bit_exact */
    uint64_t t_scored_ns;         /* CLOCK_REALTIME ns when scoring ended */
} ctr__audit_batch_t;

/* Write latency histogram buckets (upper bounds, ns); the last bucket of
 * write_hist counts everything above the last bound. */
#define CTR__AUDIT_WRITE_BUCKETS 18
extern const uint64_t ctr__audit_write_bounds_ns[CTR__AUDIT_WRITE_BUCKETS - 1];

/* Counters for /metrics (ctrd_audit_*). */
typedef struct {
    int enabled;
    uint64_t records;             /* records written */
    uint64_t bytes;               /* bytes written */
    uint64_t lag_records;         /* submitted, not yet written */
    uint64_t dropped;             /* async records lost (queue overflow) */
    uint64_t errors;              /* write failures */
    /* Added by the audit writer (server/audit_writer.c): */
    int fallback;                 /* 1: pwrite/fdatasync, io_uring unavailable or off */
    uint64_t examples;            /* examples in the records written */
    uint64_t rejected;            /* records refused after waiting for buffer space (503) */
    uint64_t segments;            /* segment files opened */
    uint64_t syncs;               /* fdatasync calls */
    uint64_t lag_ns;              /* age of the oldest record not yet written */
    uint64_t write_hist[CTR__AUDIT_WRITE_BUCKETS]; /* per write submission (+ sync), non-cumulative */
    uint64_t write_sum_ns;
} ctr__audit_stats_t;

/* Opens the writer (creates the directory, the first segment, its thread).
 * On success *out is owned by the caller (ctr__audit_close). Returns 0,
 * CTR_ENOMEM, or CTR_EIO (directory or first segment: errno in err). */
int ctr__audit_open(const ctr__audit_config_t *cfg, ctr__audit_t **out,
                    char *err, size_t errlen);

/* Hands n scored requests to the writer; see the contract above. */
void ctr__audit_submit(ctr__audit_t *a, const ctr__audit_batch_t *batch,
                       ctr__audit_item_t *const *items, size_t n);

/* 1 when every release happens inside ctr__audit_submit (no audit log,
 * or durability async), so a caller on an HTTP thread may answer right
 * after submitting without suspending the connection. */
int ctr__audit_releases_at_once(const ctr__audit_t *a);

/* Writes and syncs everything submitted so far; on drain, before exit.
 * Returns 0 or CTR_EIO (a write or the sync failed) / CTR_EBUSY (timeout)
 * with err filled. */
int ctr__audit_flush(ctr__audit_t *a, uint64_t timeout_ns, char *err, size_t errlen);

void ctr__audit_close(ctr__audit_t *a);

void ctr__audit_stats(ctr__audit_t *a, ctr__audit_stats_t *st);

/* One line for the start-up log: "disabled", "writing to DIR (write)". */
const char *ctr__audit_describe(ctr__audit_t *a);

#endif
