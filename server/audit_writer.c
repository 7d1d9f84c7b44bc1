/* audit_writer.c - the audit log writer behind audit_writer.h. Record format:
 * ctr/audit.h, model/audit_record.c; the long form is docs/AUDIT_LOG.md.
 *
 * Threads and memory. Two record buffers of a fixed size, allocated at
 * open: scoring threads encode records into the "fill" buffer while the
 * writer thread writes the other one. A scoring thread reserves space for
 * a run of records under the lock (which also fixes their sequence numbers
 * and file order), encodes them outside it, and marks the reservation
 * done; the writer takes the fill buffer as soon as it holds records and
 * no reservation is open, swaps in the empty one and writes the whole
 * buffer with one submission, so every record that arrived while the
 * previous write was in flight rides in the next one (group commit).
 * Nothing grows: a record that finds no room waits for the writer (in
 * durability async it is dropped and counted instead), up to wait_ns, and
 * is then refused with CTR_EBUSY, which the server answers 503.
 *
 * Durability. Each buffer goes out as one io_uring write at an explicit
 * offset, with IORING_OP_FSYNC (datasync) linked behind it in fsync mode;
 * then every request in it is released: write mode after the write
 * completed (the bytes are in the page cache: a killed process loses
 * nothing answered), fsync mode after the sync, async at once on submit.
 * When io_uring cannot be set up (seccomp profiles of container runtimes
 * block it: -ENOSYS, -EPERM) or CTRD_AUDIT_NO_URING=1, the same happens
 * with pwrite and fdatasync; that is logged once.
 *
 * Failures. A write or sync that fails (disk full, I/O error) is undone
 * with ftruncate back to the last good record, so the file never holds a
 * half record followed by good ones; if even that fails the segment is
 * abandoned (its tail reads as torn) and the next write opens a new one.
 * The records of a failed write are released with CTR_EIO under
 * --audit-on-error fail (no unlogged score leaves the server: the server
 * answers 503 audit_failed) or with 0 under continue, and counted in
 * errors either way. The writer retries on the next buffer, so it recovers
 * by itself when space comes back.
 *
 * Error codes. The file helpers below (segment_*, sync_fd, plain_write,
 * write_chunk) return 0 or -errno, as the system calls and io_uring
 * completions give them, and log with strerror. No -errno leaves this
 * file: the public functions convert at their boundary (ctr__audit_open and
 * ctr__audit_flush with ctr_error(..., CTR_EIO, ...), releases with CTR_EIO
 * or CTR_EBUSY), so a -errno can never be mistaken for a CTR_E* code.
 *
 * Segments. Files named ctrd-<start time>-<pid>-<index>.audit, created with
 * O_EXCL (a restart never appends to an old file), each opening with a
 * segment header, rotated before a write would take them past
 * segment_bytes (a single record larger than that gets a segment of its
 * own). A closed segment is synced. A model reload is seen as a newer
 * load in the records (item load_seq, in load order over every model, as
 * several models' records interleave): the log is synced before the first
 * record of a newly loaded generation is released. */
#include "audit_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "ctr/audit.h"
#include "ctr/common.h"
#include "log.h"

#define DEFAULT_BUFFER_BYTES (4u << 20)
#define MIN_BUFFER_BYTES (64u << 10)
#define DEFAULT_WAIT_NS 2000000000ull
#define MIN_RECORD_BYTES (CTR_AUDIT_FRAME_BYTES + CTR_AUDIT_FIXED_BYTES + 4)
#define CHUNK 32                  /* records reserved under one lock */
#define ERROR_LOG_EVERY_NS 10000000000ull

const uint64_t ctr__audit_write_bounds_ns[CTR__AUDIT_WRITE_BUCKETS - 1] = {
    10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
    10000000, 25000000, 50000000, 100000000, 250000000, 500000000, 1000000000,
    2500000000u,
};

/* One record in a buffer. */
typedef struct {
    ctr__audit_item_t *item;      /* NULL once released (async) */
    uint32_t end;                 /* buffer offset just past the record */
    uint32_t examples;
    uint64_t load_seq;            /* the item's load_seq (or generation) */
} ent_t;

typedef struct {
    uint8_t *data;
    size_t cap, used;
    unsigned writers;             /* reservations still being encoded */
    ent_t *ents;
    size_t n_ents, cap_ents;
    uint64_t last_seq;            /* seq of the last record reserved */
    uint64_t t_first_ns;          /* monotonic: first reservation */
} abuf_t;

struct ctr__audit {
    int enabled;
    ctr__audit_durability_t durability;
    int on_error_fail;
    uint64_t segment_bytes, wait_ns;
    uint64_t delay_us;            /* CTRD_AUDIT_DELAY_US: a slow disk, for tests */
    char *dir;
    char describe[8800];
    uint64_t start_real_ns;
    char host[CTR_AUDIT_HOST_MAX + 1];

    pthread_mutex_t lock;
    pthread_cond_t space_cond;    /* submitters: room in the fill buffer */
    pthread_cond_t work_cond;     /* the writer: records or a flush */
    pthread_cond_t done_cond;     /* flush: written and synced */
    abuf_t bufs[2];
    abuf_t *fill;
    uint64_t next_seq;            /* next seq to hand out */
    uint64_t done_seq;            /* every seq below is written (or failed) */
    uint64_t flush_req, flush_done;  /* flush calls asked / served */
    uint64_t flush_target;        /* highest seq a pending flush waits for */
    int flush_rc;
    int stop;
    int thread_started;
    pthread_t thread;

    /* The writer thread's own. */
    int fd, dirfd;
    uint64_t seg_off, seg_index;
    uint64_t max_load_seq;        /* the newest load written so far */
    struct io_uring ring;
    int uring;
    int failing;
    uint64_t last_err_log_ns;
    uint64_t err_suppressed;

    atomic_uint_fast64_t records, bytes, examples, dropped, errors, rejected, segments, syncs;
    atomic_uint_fast64_t hist[CTR__AUDIT_WRITE_BUCKETS], hist_sum;
    atomic_int fallback;
};

#define INC(x, v) atomic_fetch_add_explicit(&(x), (v), memory_order_relaxed)
#define GET(x) ((uint64_t)atomic_load_explicit(&(x), memory_order_relaxed))

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    return *end ? dflt : (uint64_t)x;
}

/* ---- segments --------------------------------------------------------- */

static int mkdir_p(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0750) && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0750) && errno != EEXIST)
        return -1;
    return 0;
}

static int sync_fd(ctr__audit_t *a, int fd)
{
    INC(a->syncs, 1);
    return fdatasync(fd) ? -errno : 0;
}

/* Syncs and closes the segment: a closed segment is always on disk. */
static int segment_close(ctr__audit_t *a)
{
    if (a->fd < 0)
        return 0;
    int rc = sync_fd(a, a->fd);
    close(a->fd);
    a->fd = -1;
    return rc;
}

/* Opens segment index seg_index + 1 and writes its header. -errno. */
static int segment_open(ctr__audit_t *a, uint64_t first_seq, char *path, size_t pathlen)
{
    time_t secs = (time_t)(a->start_real_ns / 1000000000u);
    struct tm tm;
    char stamp[32];
    gmtime_r(&secs, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    uint64_t index = a->seg_index + 1;
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        if (attempt)
            snprintf(path, pathlen, "%s/ctrd-%s-%d-%06llu-%d.audit", a->dir, stamp, (int)getpid(),
                     (unsigned long long)index, attempt);
        else
            snprintf(path, pathlen, "%s/ctrd-%s-%d-%06llu.audit", a->dir, stamp, (int)getpid(),
                     (unsigned long long)index);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        if (fd < 0 && errno != EEXIST)
            return -errno;
    }
    if (fd < 0)
        return -EEXIST;
    ctr_audit_segment_t h;
    memset(&h, 0, sizeof h);
    h.version = CTR_AUDIT_FORMAT_VERSION;
    h.durability = (uint32_t)a->durability;
    h.server_start_ns = a->start_real_ns;
    h.created_ns = ctr__real_ns();
    h.segment_index = index;
    h.first_seq = first_seq;
    h.pid = (uint32_t)getpid();
    memcpy(h.host, a->host, sizeof h.host);
    snprintf(h.version_str, sizeof h.version_str, "%s", CTR__SERVER_VERSION);
    uint8_t buf[CTR_AUDIT_SEGMENT_HEADER_BYTES];
    ctr_audit_segment_encode(&h, buf);
    ssize_t w = pwrite(fd, buf, sizeof buf, 0);
    int e = w == (ssize_t)sizeof buf ? 0 : (w < 0 ? errno : ENOSPC);
    if (!e && a->durability == CTR__AUDIT_FSYNC) {
        /* The file's data and its directory entry, before any record in
         * it is released. */
        INC(a->syncs, 1);
        if (fdatasync(fd) || (a->dirfd >= 0 && fsync(a->dirfd)))
            e = errno;
    }
    if (e) {
        close(fd);
        unlink(path);
        return -e;
    }
    a->fd = fd;
    a->seg_off = CTR_AUDIT_SEGMENT_HEADER_BYTES;
    a->seg_index = index;
    INC(a->segments, 1);
    ctr__log(CTR_LOG_DEBUG, "audit segment opened", CTR_LOG_S("path", path), CTR_LOG_U("index", index),
             CTR_LOG_END);
    return 0;
}

/* ---- writing ---------------------------------------------------------- */

static void use_fallback(ctr__audit_t *a, const char *why, int err)
{
    if (a->uring) {
        io_uring_queue_exit(&a->ring);
        a->uring = 0;
    }
    atomic_store(&a->fallback, 1);
    ctr__log(CTR_LOG_WARN, "audit: io_uring unavailable, writing with pwrite/fdatasync",
             CTR_LOG_S("reason", why), CTR_LOG_S("error", err ? strerror(err) : "none"), CTR_LOG_END);
}

static int plain_write(int fd, const uint8_t *p, size_t len, uint64_t off)
{
    while (len) {
        ssize_t w = pwrite(fd, p, len, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        if (w == 0)
            return -ENOSPC;
        p += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Appends len bytes at the end of the segment, then syncs if asked.
 * Returns 0 or -errno; on failure the segment is cut back to where it was
 * (or abandoned when that fails too). */
static int write_chunk(ctr__audit_t *a, const uint8_t *p, size_t len, int sync)
{
    if (a->delay_us)
        usleep((useconds_t)a->delay_us);
    uint64_t off = a->seg_off, t0 = ctr__mono_ns();
    int rc = 0, synced = 0;
    size_t done = 0;
    if (a->uring) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&a->ring);
        io_uring_prep_write(sqe, a->fd, p, (unsigned)len, off);
        sqe->user_data = 1;
        if (sync) {
            sqe->flags |= IOSQE_IO_LINK;
            sqe = io_uring_get_sqe(&a->ring);
            io_uring_prep_fsync(sqe, a->fd, IORING_FSYNC_DATASYNC);
            sqe->user_data = 2;
            INC(a->syncs, 1);
        }
        int s, wres = -ECANCELED, sres = -ECANCELED, lost_ring = 0;
        /* One call submits and waits. The kernel answers -EINTR only when
         * it submitted nothing, so a retry cannot write twice (and the
         * writer thread blocks signals anyway). */
        do
            s = io_uring_submit_and_wait(&a->ring, sync ? 2 : 1);
        while (s == -EINTR);
        if (s < 0) {
            /* Nothing went out; entries left in the ring would go out
             * with a later submission, so drop the ring and write plainly. */
            use_fallback(a, "io_uring_submit failed", -s);
            lost_ring = 1;
        } else {
            /* Wait for every completion, whatever happens: the buffer must
             * not be reused (or the file cut) while the kernel still
             * writes from it. */
            for (int i = 0; i < s; i++) {
                struct io_uring_cqe *cqe;
                int w;
                do
                    w = io_uring_wait_cqe(&a->ring, &cqe);
                while (w == -EINTR || w == -EAGAIN);
                if (w < 0) {
                    /* The ring itself broke. Closing it waits out or
                     * cancels the write; count the write as failed. */
                    use_fallback(a, "io_uring_wait_cqe failed", -w);
                    wres = -EIO;
                    sync = 0;
                    break;
                }
                if (cqe->user_data == 1)
                    wres = cqe->res;
                else
                    sres = cqe->res;
                io_uring_cqe_seen(&a->ring, cqe);
            }
            if (a->uring && io_uring_sq_ready(&a->ring)) {
                use_fallback(a, "io_uring submitted part of a write", 0);
                sres = -ECANCELED;
            }
        }
        if (lost_ring) {
            /* the plain path below writes the whole chunk */
        } else if ((wres == -ENOSYS || wres == -EPERM || wres == -EOPNOTSUPP || wres == -EINVAL) && a->uring) {
            /* The ring was set up but the kernel or a filter refuses the
             * operation: plain writes from now on. */
            use_fallback(a, "io_uring write refused", -wres);
        } else if (wres < 0) {
            rc = wres;
        } else {
            done = (size_t)wres;
            if (done == len && sync && sres != -ECANCELED) {
                if (sres < 0)
                    rc = sres;
                synced = 1;
            }
        }
    }
    if (!rc && done < len) {
        /* Fallback, or the rest of a short io_uring write. */
        rc = plain_write(a->fd, p + done, len - done, off + done);
    }
    if (!rc && sync && !synced)
        rc = sync_fd(a, a->fd);
    uint64_t dt = ctr__mono_ns() - t0;
    size_t b = 0;
    while (b < CTR__AUDIT_WRITE_BUCKETS - 1 && dt > ctr__audit_write_bounds_ns[b])
        b++;
    INC(a->hist[b], 1);
    INC(a->hist_sum, dt);
    if (!rc) {
        a->seg_off = off + len;
        return 0;
    }
    /* Undo: no half record may stay in front of later good ones. After a
     * failed sync the page cache state is unknown: start a new segment. */
    if (ftruncate(a->fd, (off_t)off) || (sync && synced)) {
        if (!(sync && synced))
            fdatasync(a->fd);   /* best effort for the good records before */
        close(a->fd);
        a->fd = -1;
    }
    return rc;
}

static void log_failure(ctr__audit_t *a, const char *what, int err, size_t records)
{
    uint64_t now = ctr__mono_ns();
    if (a->failing && now - a->last_err_log_ns < ERROR_LOG_EVERY_NS) {
        a->err_suppressed += records;
        return;
    }
    ctr__log(CTR_LOG_ERROR, "audit write failed", CTR_LOG_S("step", what), CTR_LOG_S("error", strerror(err)),
             CTR_LOG_U("records", records), CTR_LOG_U("records_failed_since_last_line", a->err_suppressed),
             CTR_LOG_S("policy", a->on_error_fail ? "fail: requests answered with an error"
                                                  : "continue: requests served unlogged"),
             CTR_LOG_END);
    a->failing = 1;
    a->last_err_log_ns = now;
    a->err_suppressed = 0;
}

static void release_range(ctr__audit_t *a, abuf_t *b, size_t from, size_t to, int ok)
{
    int status = ok || !a->on_error_fail ? 0 : CTR_EIO;
    for (size_t i = from; i < to; i++) {
        ent_t *e = &b->ents[i];
        if (e->item) {
            ctr__audit_item_t *it = e->item;
            e->item = NULL;
            it->release(it, status);
        }
    }
}

/* Writes buffer b (no lock held) and releases its requests. */
static void write_buffer(ctr__audit_t *a, abuf_t *b)
{
    int sync = a->durability == CTR__AUDIT_FSYNC;
    for (size_t i = 0; i < b->n_ents; i++) {
        if (b->ents[i].load_seq > a->max_load_seq) {
            if (a->max_load_seq)
                sync = 1;   /* a reload: the old model's records are synced */
            a->max_load_seq = b->ents[i].load_seq;
        }
    }
    uint64_t first_seq = b->last_seq + 1 - b->n_ents;
    size_t e = 0, start = 0;
    while (e < b->n_ents) {
        char path[4200];
        int rc;
        if (a->fd < 0 && (rc = segment_open(a, first_seq + e, path, sizeof path))) {
            log_failure(a, "open segment", -rc, b->n_ents - e);
            INC(a->errors, b->n_ents - e);
            release_range(a, b, e, b->n_ents, 0);
            return;
        }
        /* The records that fit in this segment; at least one in a fresh one. */
        uint64_t room = a->segment_bytes > a->seg_off ? a->segment_bytes - a->seg_off : 0;
        size_t k = e;
        while (k < b->n_ents && (b->ents[k].end - start <= room ||
                                 (k == e && a->seg_off == CTR_AUDIT_SEGMENT_HEADER_BYTES)))
            k++;
        if (k == e) {
            int crc = segment_close(a);
            if (crc)
                log_failure(a, "sync on rotation", -crc, 0);
            continue;
        }
        size_t end = b->ents[k - 1].end;
        rc = write_chunk(a, b->data + start, end - start, sync);
        uint64_t ex = 0;
        for (size_t i = e; i < k; i++)
            ex += b->ents[i].examples;
        if (rc) {
            log_failure(a, sync ? "write+fdatasync" : "write", -rc, k - e);
            INC(a->errors, k - e);
            release_range(a, b, e, k, 0);
        } else {
            if (a->failing) {
                ctr__log(CTR_LOG_INFO, "audit writes succeed again",
                         CTR_LOG_U("records_failed_since_last_line", a->err_suppressed), CTR_LOG_END);
                a->failing = 0;
            }
            INC(a->records, k - e);
            INC(a->bytes, end - start);
            INC(a->examples, ex);
            release_range(a, b, e, k, 1);
        }
        e = k;
        start = end;
    }
}

static void *writer_main(void *arg)
{
    ctr__audit_t *a = arg;
    pthread_setname_np(pthread_self(), "ctrd-audit");
    /* Signals are for the main thread: none interrupts a write here. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_mutex_lock(&a->lock);
    for (;;) {
        abuf_t *b = a->fill;
        if (b->n_ents && !b->writers) {
            a->fill = b == &a->bufs[0] ? &a->bufs[1] : &a->bufs[0];
            uint64_t last = b->last_seq;
            pthread_mutex_unlock(&a->lock);
            write_buffer(a, b);
            pthread_mutex_lock(&a->lock);
            b->used = 0;
            b->n_ents = 0;
            a->done_seq = last + 1;
            pthread_cond_broadcast(&a->space_cond);
            pthread_cond_broadcast(&a->done_cond);
            continue;
        }
        if (a->flush_req > a->flush_done && a->done_seq >= a->flush_target) {
            uint64_t req = a->flush_req;
            pthread_mutex_unlock(&a->lock);
            int rc = a->fd >= 0 ? sync_fd(a, a->fd) : 0;
            pthread_mutex_lock(&a->lock);
            a->flush_rc = rc;
            a->flush_done = req;
            pthread_cond_broadcast(&a->done_cond);
            continue;
        }
        if (a->stop && !b->n_ents)
            break;
        pthread_cond_wait(&a->work_cond, &a->lock);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

/* ---- the hook --------------------------------------------------------- */

static int buf_init(abuf_t *b, size_t cap)
{
    b->cap = cap;
    b->cap_ents = cap / MIN_RECORD_BYTES + 1;
    b->data = malloc(cap);
    b->ents = malloc(b->cap_ents * sizeof *b->ents);
    return b->data && b->ents ? 0 : CTR_ENOMEM;
}

int ctr__audit_open(const ctr__audit_config_t *cfg, ctr__audit_t **out,
                    char *err, size_t errlen)
{
    int rc;
    ctr__audit_t *a = calloc(1, sizeof *a);
    if (!a)
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    a->fd = a->dirfd = -1;
    pthread_mutex_init(&a->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->space_cond, &ca);
    pthread_cond_init(&a->work_cond, &ca);
    pthread_cond_init(&a->done_cond, &ca);
    pthread_condattr_destroy(&ca);
    if (!cfg->enabled) {
        snprintf(a->describe, sizeof a->describe, "disabled (--no-audit)");
        *out = a;
        return 0;
    }
    if (!cfg->dir || !*cfg->dir) {
        /* No place was named: rather than write into whatever the working
         * directory is, say loudly that nothing is logged. */
        snprintf(a->describe, sizeof a->describe,
                 "disabled: no --audit-dir given (pass --audit-dir DIR to log every prediction, "
                 "or --no-audit to silence this)");
        ctr__log(CTR_LOG_WARN, "audit log disabled: no --audit-dir given", CTR_LOG_END);
        *out = a;
        return 0;
    }
    a->enabled = 1;
    a->durability = cfg->durability;
    a->on_error_fail = cfg->on_error_fail;
    a->segment_bytes = cfg->segment_bytes ? cfg->segment_bytes : ((uint64_t)256 << 20);
    uint64_t bufsz = cfg->buffer_bytes ? cfg->buffer_bytes : env_u64("CTRD_AUDIT_BUFFER_BYTES", DEFAULT_BUFFER_BYTES);
    if (bufsz < MIN_BUFFER_BYTES)
        bufsz = MIN_BUFFER_BYTES;
    if (bufsz > ((uint64_t)1 << 31))
        bufsz = (uint64_t)1 << 31;
    a->wait_ns = cfg->wait_ns ? cfg->wait_ns : env_u64("CTRD_AUDIT_WAIT_MS", DEFAULT_WAIT_NS / 1000000u) * 1000000u;
    a->delay_us = env_u64("CTRD_AUDIT_DELAY_US", 0);
    a->start_real_ns = ctr__real_ns();
    a->next_seq = a->done_seq = 1;
    if (gethostname(a->host, sizeof a->host))
        snprintf(a->host, sizeof a->host, "unknown");
    a->host[sizeof a->host - 1] = '\0';
    if (!(a->dir = strdup(cfg->dir))) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
        goto fail;
    }
    if (buf_init(&a->bufs[0], (size_t)bufsz) || buf_init(&a->bufs[1], (size_t)bufsz)) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory for audit buffers of %llu bytes",
                       (unsigned long long)bufsz);
        goto fail;
    }
    a->fill = &a->bufs[0];
    if (mkdir_p(a->dir)) {
        rc = ctr_error(err, errlen, CTR_EIO, "audit directory %s: %s", a->dir, strerror(errno));
        goto fail;
    }
    a->dirfd = open(a->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (a->dirfd < 0) {
        rc = ctr_error(err, errlen, CTR_EIO, "audit directory %s: %s", a->dir, strerror(errno));
        goto fail;
    }
    char path[4200];
    int orc = segment_open(a, 1, path, sizeof path);
    if (orc) {
        rc = ctr_error(err, errlen, CTR_EIO, "cannot create an audit segment in %s: %s", a->dir, strerror(-orc));
        goto fail;
    }
    const char *nu = getenv("CTRD_AUDIT_NO_URING");
    if (nu && *nu && strcmp(nu, "0")) {
        use_fallback(a, "CTRD_AUDIT_NO_URING is set", 0);
    } else {
        int urc = io_uring_queue_init(8, &a->ring, 0);
        if (urc) {
            use_fallback(a, "io_uring_queue_init failed", -urc);
        } else {
            a->uring = 1;
        }
    }
    if (pthread_create(&a->thread, NULL, writer_main, a)) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "cannot start the audit writer thread");
        goto fail;
    }
    a->thread_started = 1;
    static const char *const modes[] = {"async", "write", "fsync"};
    snprintf(a->describe, sizeof a->describe,
             "writing to %s (durability %s, %s, segments of %llu bytes, on error %s, 2 buffers of %llu bytes, "
             "first segment %s)",
             a->dir, modes[a->durability], a->uring ? "io_uring" : "pwrite/fdatasync fallback",
             (unsigned long long)a->segment_bytes, a->on_error_fail ? "fail" : "continue",
             (unsigned long long)bufsz, path);
    *out = a;
    return 0;
fail:
    ctr__audit_close(a);
    return rc;
}

/* Fills the record input for one item. */
static void item_input(const ctr__audit_batch_t *batch, const uint8_t digest[32],
                       const ctr__audit_item_t *it, ctr_audit_input_t *in)
{
    const ctr_request_t *r = it->req;
    memset(in, 0, sizeof *in);
    in->t_received_ns = it->t_received_ns;
    in->t_scored_ns = batch->t_scored_ns;
    in->generation = it->generation ? it->generation : batch->generation;
    memcpy(in->digest, digest, 32);
    in->kernel_id = batch->kernel ? (unsigned)batch->kernel->id : 0;
    in->bit_exact = batch->kernel ? batch->kernel->bit_exact : 1;
    in->client_request_id = r->has_request_id;
    in->request_id = r->request_id;
    in->request_id_len = strnlen(r->request_id, sizeof r->request_id);
    in->n = r->n;
    in->n_dense = r->n_dense;
    in->n_cat = r->n_cat;
    in->dense_raw = r->dense_raw;
    in->cat_off = r->cat_off;
    in->cat_len = r->cat_len;
    in->cat_bytes = r->cat_bytes;
    in->scores = r->scores;
    in->shadow = it->shadow;
}

int ctr__audit_releases_at_once(const ctr__audit_t *a)
{
    return !a->enabled || a->durability == CTR__AUDIT_ASYNC;
}

void ctr__audit_submit(ctr__audit_t *a, const ctr__audit_batch_t *batch,
                       ctr__audit_item_t *const *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        items[i]->seq = 0;
    if (!a->enabled) {
        for (size_t i = 0; i < n; i++)
            items[i]->release(items[i], 0);
        return;
    }
    uint8_t digest[32];
    if (ctr_audit_digest_parse(ctr_model_digest(batch->model), digest))
        memset(digest, 0, sizeof digest);
    int async = a->durability == CTR__AUDIT_ASYNC;
    size_t i = 0;
    uint64_t deadline = 0;
    while (i < n) {
        /* Size a run of records, then reserve as many as fit at once. */
        ctr__audit_item_t *run[CHUNK];
        ctr_audit_input_t in[CHUNK];
        size_t size[CHUNK], m = 0;
        while (i < n && m < CHUNK) {
            ctr__audit_item_t *it = items[i++];
            if (it->score_status) {
                it->release(it, 0);     /* no score leaves: nothing to log */
                continue;
            }
            item_input(batch, digest, it, &in[m]);
            size_t s = ctr_audit_record_size(&in[m]);
            /* bufs[0].cap: both buffers have it, fixed at open. Not
             * a->fill, which the writer swaps under a->lock (not held
             * here): reading it would be a data race (ThreadSanitizer). */
            if (!s || s > a->bufs[0].cap) {
                INC(a->errors, 1);
                ctr__log(CTR_LOG_ERROR, "audit: record cannot be logged (too large or out of range)",
                         CTR_LOG_S("request_id", it->req->request_id), CTR_LOG_U("bytes", s),
                         CTR_LOG_U("examples", it->req->n), CTR_LOG_END);
                it->release(it, a->on_error_fail ? CTR_EIO : 0);
                continue;
            }
            run[m] = it;
            size[m++] = s;
        }
        size_t k = 0;
        while (k < m) {
            pthread_mutex_lock(&a->lock);
            abuf_t *b = a->fill;
            while (b->cap - b->used < size[k] || b->n_ents == b->cap_ents) {
                if (async) {
                    pthread_mutex_unlock(&a->lock);
                    INC(a->dropped, 1);
                    run[k]->release(run[k], 0);
                    k++;
                    goto next;
                }
                if (!deadline)
                    deadline = ctr__mono_ns() + a->wait_ns;
                pthread_cond_signal(&a->work_cond);
                struct timespec ts = {(time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u)};
                if (pthread_cond_timedwait(&a->space_cond, &a->lock, &ts) == ETIMEDOUT &&
                    a->fill->cap - a->fill->used < size[k]) {
                    pthread_mutex_unlock(&a->lock);
                    /* Refuse what is left of the run: the log cannot keep up. */
                    INC(a->rejected, m - k);
                    for (; k < m; k++)
                        run[k]->release(run[k], CTR_EBUSY);
                    goto next;
                }
                b = a->fill;
            }
            size_t first = k, off0 = b->used;
            while (k < m && b->cap - b->used >= size[k] && b->n_ents < b->cap_ents) {
                run[k]->seq = in[k].seq = a->next_seq++;
                b->used += size[k];
                ent_t *e = &b->ents[b->n_ents++];
                e->item = async ? NULL : run[k];
                e->end = (uint32_t)b->used;
                e->examples = (uint32_t)in[k].n;
                e->load_seq = run[k]->load_seq ? run[k]->load_seq : in[k].generation;
                b->last_seq = in[k].seq;
                k++;
            }
            if (b->n_ents == k - first)
                b->t_first_ns = ctr__mono_ns();
            b->writers++;
            pthread_mutex_unlock(&a->lock);

            size_t off = off0;
            for (size_t j = first; j < k; j++) {
                size_t w = ctr_audit_record_encode(&in[j], b->data + off, size[j]);
                CTR_ASSERT(w == size[j]);
                off += size[j];
            }

            pthread_mutex_lock(&a->lock);
            if (--b->writers == 0)
                pthread_cond_signal(&a->work_cond);
            pthread_mutex_unlock(&a->lock);
            if (async)
                for (size_t j = first; j < k; j++)
                    run[j]->release(run[j], 0);
        next:;
        }
    }
}

int ctr__audit_flush(ctr__audit_t *a, uint64_t timeout_ns, char *err, size_t errlen)
{
    if (!a->enabled)
        return 0;
    uint64_t deadline = ctr__mono_ns() + timeout_ns;
    struct timespec ts = {(time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u)};
    pthread_mutex_lock(&a->lock);
    uint64_t target = a->next_seq;
    uint64_t errors0 = GET(a->errors);
    if (target > a->flush_target)
        a->flush_target = target;
    uint64_t req = ++a->flush_req;
    pthread_cond_signal(&a->work_cond);
    int rc = 0;
    while (a->flush_done < req) {
        if (pthread_cond_timedwait(&a->done_cond, &a->lock, &ts) == ETIMEDOUT) {
            rc = ctr_error(err, errlen, CTR_EBUSY, "audit flush: %llu records still unwritten after %.1f s",
                           (unsigned long long)(target - a->done_seq), (double)timeout_ns / 1e9);
            break;
        }
    }
    if (!rc && a->flush_rc)
        rc = ctr_error(err, errlen, CTR_EIO, "audit flush: fdatasync: %s", strerror(-a->flush_rc));
    pthread_mutex_unlock(&a->lock);
    if (!rc && GET(a->errors) != errors0)
        rc = ctr_error(err, errlen, CTR_EIO, "audit flush: %llu records failed to write",
                       (unsigned long long)(GET(a->errors) - errors0));
    return rc;
}

void ctr__audit_close(ctr__audit_t *a)
{
    if (!a)
        return;
    if (a->thread_started) {
        pthread_mutex_lock(&a->lock);
        a->stop = 1;
        pthread_cond_signal(&a->work_cond);
        pthread_mutex_unlock(&a->lock);
        pthread_join(a->thread, NULL);
    }
    segment_close(a);
    if (a->dirfd >= 0)
        close(a->dirfd);
    if (a->uring)
        io_uring_queue_exit(&a->ring);
    for (int i = 0; i < 2; i++) {
        free(a->bufs[i].data);
        free(a->bufs[i].ents);
    }
    free(a->dir);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->space_cond);
    pthread_cond_destroy(&a->work_cond);
    pthread_cond_destroy(&a->done_cond);
    free(a);
}

void ctr__audit_stats(ctr__audit_t *a, ctr__audit_stats_t *st)
{
    memset(st, 0, sizeof *st);
    st->enabled = a->enabled;
    if (!a->enabled)
        return;
    st->records = GET(a->records);
    st->bytes = GET(a->bytes);
    st->dropped = GET(a->dropped);
    st->errors = GET(a->errors);
    st->fallback = atomic_load(&a->fallback);
    st->examples = GET(a->examples);
    st->rejected = GET(a->rejected);
    st->segments = GET(a->segments);
    st->syncs = GET(a->syncs);
    for (int i = 0; i < CTR__AUDIT_WRITE_BUCKETS; i++)
        st->write_hist[i] = GET(a->hist[i]);
    st->write_sum_ns = GET(a->hist_sum);
    pthread_mutex_lock(&a->lock);
    st->lag_records = a->next_seq - a->done_seq;
    abuf_t *other = a->fill == &a->bufs[0] ? &a->bufs[1] : &a->bufs[0];
    uint64_t oldest = other->n_ents ? other->t_first_ns : a->fill->n_ents ? a->fill->t_first_ns : 0;
    pthread_mutex_unlock(&a->lock);
    if (oldest) {
        uint64_t now = ctr__mono_ns();
        st->lag_ns = now > oldest ? now - oldest : 0;
    }
}

const char *ctr__audit_describe(ctr__audit_t *a)
{
    return a->describe;
}
