/* metrics.c - counters, histograms and their Prometheus rendering (see
 * metrics.h). Histogram buckets are stored non-cumulative and summed at
 * render time, so recording is one relaxed increment per value. */
#include "metrics.h"

#include <fcntl.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "ctr/common.h"

static const char *const endpoint_labels[CTR__EP_COUNT] = {
    "/v1/score", "/v2/models/{name}/infer", "/v2/models/{name}", "/healthz",
    "/readyz", "/v1/models", "/metrics", "/v1/admin/reload", "/v1/admin/promote", "other",
};

/* Statuses ctrd sends; anything else lands in the last slot. */
static const int statuses[] = {200, 400, 401, 403, 404, 405, 409, 411, 413, 415, 422, 500, 503, 0};
#define N_STATUS CTR_ARRAY_LEN(statuses)

/* Latency buckets (upper bounds, ns) and batch size buckets (examples). */
static const uint64_t lat_bounds[] = {
    25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
    25000000, 50000000, 100000000, 250000000, 500000000, 1000000000,
    2500000000u, 5000000000u, 10000000000u,
};
#define N_LAT (CTR_ARRAY_LEN(lat_bounds) + 1)
static const uint64_t size_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192};
#define N_SIZE (CTR_ARRAY_LEN(size_bounds) + 1)

typedef struct {
    atomic_uint_fast64_t bucket[N_LAT];
    atomic_uint_fast64_t sum;   /* ns */
} lat_hist_t;

/* Model slots of the request series: 0 = no model, 1 + index. */
#define N_MSLOT (CTR__MODELS_MAX + 1)

static struct {
    atomic_uint_fast64_t requests[CTR__EP_COUNT][N_MSLOT][N_STATUS];
    lat_hist_t e2e[CTR__EP_COUNT][N_MSLOT];
    lat_hist_t queue_wait[CTR__MODELS_MAX];
    lat_hist_t compute[CTR__MODELS_MAX];
    atomic_uint_fast64_t batch_bucket[CTR__MODELS_MAX][N_SIZE];
    atomic_uint_fast64_t batch_sum[CTR__MODELS_MAX];
    atomic_uint_fast64_t examples[CTR__MODELS_MAX];
    atomic_uint_fast64_t reload_ok[CTR__MODELS_MAX], reload_fail[CTR__MODELS_MAX];
    atomic_uint_fast64_t rejected[CTR__MODELS_MAX];
    atomic_uint_fast64_t scored[CTR__PATH_COUNT];
    atomic_uint_fast64_t conn_evicted[CTR__EVICT_COUNT], conn_refused;
    atomic_int_fast64_t conn_open;
    uint64_t start_real_ns;
} M;

__attribute__((constructor)) static void metrics_init(void)
{
    M.start_real_ns = ctr__real_ns();
}

#define INC(x, v) atomic_fetch_add_explicit(&(x), (v), memory_order_relaxed)
#define GET(x) ((uint64_t)atomic_load_explicit(&(x), memory_order_relaxed))

static void lat_observe(lat_hist_t *h, uint64_t ns)
{
    size_t i = 0;
    while (i < CTR_ARRAY_LEN(lat_bounds) && ns > lat_bounds[i])
        i++;
    INC(h->bucket[i], 1);
    INC(h->sum, ns);
}

void ctr__metrics_request(ctr__endpoint_t ep, long model, int status, uint64_t e2e_ns)
{
    if ((unsigned)ep >= CTR__EP_COUNT)
        ep = CTR__EP_OTHER;
    size_t ms = model >= 0 && model < CTR__MODELS_MAX ? (size_t)model + 1 : 0;
    size_t s = 0;
    while (statuses[s] && statuses[s] != status)
        s++;
    INC(M.requests[ep][ms][s], 1);
    lat_observe(&M.e2e[ep][ms], e2e_ns);
}

void ctr__metrics_batch(size_t model, size_t n_examples, uint64_t compute_ns)
{
    CTR_ASSERT(model < CTR__MODELS_MAX);
    INC(M.examples[model], n_examples);
    size_t i = 0;
    while (i < CTR_ARRAY_LEN(size_bounds) && n_examples > size_bounds[i])
        i++;
    INC(M.batch_bucket[model][i], 1);
    INC(M.batch_sum[model], n_examples);
    lat_observe(&M.compute[model], compute_ns);
}

void ctr__metrics_queue_wait(size_t model, uint64_t ns)
{
    CTR_ASSERT(model < CTR__MODELS_MAX);
    lat_observe(&M.queue_wait[model], ns);
}

void ctr__metrics_reload(size_t model, int ok)
{
    CTR_ASSERT(model < CTR__MODELS_MAX);
    if (ok)
        INC(M.reload_ok[model], 1);
    else
        INC(M.reload_fail[model], 1);
}

void ctr__metrics_rejected(size_t model)
{
    CTR_ASSERT(model < CTR__MODELS_MAX);
    INC(M.rejected[model], 1);
}

void ctr__metrics_scored(ctr__score_path_t path, size_t requests)
{
    INC(M.scored[path], requests);
}

void ctr__metrics_conn_evicted(ctr__evict_reason_t why)
{
    INC(M.conn_evicted[why], 1);
}

void ctr__metrics_conn_refused(void)
{
    INC(M.conn_refused, 1);
}

void ctr__metrics_conn_open(int delta)
{
    atomic_fetch_add_explicit(&M.conn_open, delta, memory_order_relaxed);
}

/* Resident set size from /proc/self/statm, in bytes (0 if unreadable). */
static uint64_t rss_bytes(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    unsigned long long size, resident;
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
        return 0;
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Bytes the allocator has handed out and not had back, over every arena and
 * mmapped chunk. RSS alone cannot tell a leak from glibc keeping freed memory
 * in its per-thread arenas; this can: it returns to its level between
 * bursts unless something is not freed. */
static uint64_t heap_in_use_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
}

static void head(ctr__buf_t *b, const char *name, const char *type, const char *help)
{
    ctr__buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One histogram's series; labels is "" or `endpoint="..."` (any labels
 * but le, comma-separated). */
static void lat_render(ctr__buf_t *b, const char *name, const char *labels, const lat_hist_t *h)
{
    uint64_t cum = 0;
    const char *sep = *labels ? "," : "";
    for (size_t i = 0; i < N_LAT; i++) {
        cum += GET(h->bucket[i]);
        if (i < CTR_ARRAY_LEN(lat_bounds))
            ctr__buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
                            (double)lat_bounds[i] / 1e9, (unsigned long long)cum);
        else
            ctr__buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
    }
    const char *open = *labels ? "{" : "", *close = *labels ? "}" : "";
    ctr__buf_printf(b, "%s_sum%s%s%s %.9f\n", name, open, labels, close, (double)GET(h->sum) / 1e9);
    ctr__buf_printf(b, "%s_count%s%s%s %llu\n", name, open, labels, close, (unsigned long long)cum);
}

/* ",model=\"NAME\"" for model slot ms (1 + index), "" for slot 0; the
 * name escaped as a label value (registry names need none, but cheap). */
static void model_label(char *out, size_t cap, const ctr__metrics_snapshot_t *s, size_t ms)
{
    out[0] = '\0';
    if (ms == 0 || ms > s->n_models)
        return;
    size_t w = (size_t)snprintf(out, cap, ",model=\"");
    for (const char *p = s->models[ms - 1].name; *p && w + 3 < cap; p++) {
        if (*p == '"' || *p == '\\')
            out[w++] = '\\';
        out[w++] = *p == '\n' ? 'n' : *p;
    }
    snprintf(out + w, cap - w, "\"");
}

/* A series with only the model label: one sample per model, v[m] for
 * model m (registry order). */
static void per_model(ctr__buf_t *b, const ctr__metrics_snapshot_t *s, const char *name, const char *type,
                      const char *help, const uint64_t *v)
{
    char ml[8 + 2 * CTR__MODEL_NAME_MAX + 8];
    head(b, name, type, help);
    for (size_t m = 0; m < s->n_models; m++) {
        model_label(ml, sizeof ml, s, m + 1);
        ctr__buf_printf(b, "%s{%s} %llu\n", name, ml + 1, (unsigned long long)v[m]);
    }
}

void ctr__metrics_render(ctr__buf_t *b, const ctr__metrics_snapshot_t *s)
{
    uint64_t per[CTR__MODELS_MAX];   /* one per-model series at a time */
    head(b, "ctrd_http_requests_total", "counter",
         "HTTP requests answered, by endpoint and status code (scoring endpoints: and model).");
    char ml[8 + 2 * CTR__MODEL_NAME_MAX + 8];
    for (size_t e = 0; e < CTR__EP_COUNT; e++) {
        int scoring = e == CTR__EP_SCORE || e == CTR__EP_INFER;
        for (size_t ms = 0; ms < (scoring ? s->n_models + 1 : 1); ms++) {
            model_label(ml, sizeof ml, s, ms);
            for (size_t k = 0; k < N_STATUS; k++) {
                uint64_t v = GET(M.requests[e][ms][k]);
                if (!v && !(statuses[k] == 200 && scoring && ms > 0))
                    continue;
                if (statuses[k])
                    ctr__buf_printf(b, "ctrd_http_requests_total{endpoint=\"%s\",code=\"%d\"%s} %llu\n",
                                    endpoint_labels[e], statuses[k], ml, (unsigned long long)v);
                else
                    ctr__buf_printf(b, "ctrd_http_requests_total{endpoint=\"%s\",code=\"other\"%s} %llu\n",
                                    endpoint_labels[e], ml, (unsigned long long)v);
            }
        }
    }

    head(b, "ctrd_request_duration_seconds", "histogram",
         "End-to-end time from request headers to response queued, by endpoint (scoring endpoints: and model).");
    for (size_t e = 0; e < CTR__EP_COUNT; e++) {
        int scoring = e == CTR__EP_SCORE || e == CTR__EP_INFER;
        for (size_t ms = 0; ms < (scoring ? s->n_models + 1 : 1); ms++) {
            uint64_t any = 0;
            for (size_t i = 0; i < N_LAT; i++)
                any |= GET(M.e2e[e][ms].bucket[i]);
            if (!any && !(scoring && ms > 0))
                continue;
            char labels[64 + sizeof ml];
            model_label(ml, sizeof ml, s, ms);
            snprintf(labels, sizeof labels, "endpoint=\"%s\"%s", endpoint_labels[e], ml);
            lat_render(b, "ctrd_request_duration_seconds", labels, &M.e2e[e][ms]);
        }
    }
    /* The batcher's own histograms, one series set per model: a batch
     * holds one model's requests, and a slow model must not hide in a
     * fast one's figures. */
    head(b, "ctrd_queue_wait_seconds", "histogram", "Time a request waited in its model's batch queue, by model.");
    for (size_t m = 0; m < s->n_models; m++) {
        model_label(ml, sizeof ml, s, m + 1);
        lat_render(b, "ctrd_queue_wait_seconds", ml + 1, &M.queue_wait[m]);
    }
    head(b, "ctrd_compute_seconds", "histogram",
         "Time to score one batch (gather, forward pass, scatter), by model.");
    for (size_t m = 0; m < s->n_models; m++) {
        model_label(ml, sizeof ml, s, m + 1);
        lat_render(b, "ctrd_compute_seconds", ml + 1, &M.compute[m]);
    }
    head(b, "ctrd_batch_size_examples", "histogram", "Examples per scored batch, by model.");
    for (size_t m = 0; m < s->n_models; m++) {
        model_label(ml, sizeof ml, s, m + 1);
        uint64_t cum = 0;
        for (size_t i = 0; i < N_SIZE; i++) {
            cum += GET(M.batch_bucket[m][i]);
            if (i < CTR_ARRAY_LEN(size_bounds))
                ctr__buf_printf(b, "ctrd_batch_size_examples_bucket{%s,le=\"%llu\"} %llu\n", ml + 1,
                                (unsigned long long)size_bounds[i], (unsigned long long)cum);
            else
                ctr__buf_printf(b, "ctrd_batch_size_examples_bucket{%s,le=\"+Inf\"} %llu\n", ml + 1,
                                (unsigned long long)cum);
        }
        ctr__buf_printf(b, "ctrd_batch_size_examples_sum{%s} %llu\nctrd_batch_size_examples_count{%s} %llu\n",
                        ml + 1, (unsigned long long)GET(M.batch_sum[m]), ml + 1, (unsigned long long)cum);
    }

    for (size_t m = 0; m < s->n_models; m++)
        per[m] = GET(M.examples[m]);
    per_model(b, s, "ctrd_examples_scored_total", "counter", "Examples scored, by model.", per);
    head(b, "ctrd_requests_scored_total", "counter",
         "Requests scored, by path: inline on their HTTP thread (nothing was queued) or batched.");
    ctr__buf_printf(b, "ctrd_requests_scored_total{path=\"inline\"} %llu\n"
                       "ctrd_requests_scored_total{path=\"batched\"} %llu\n",
                    (unsigned long long)GET(M.scored[CTR__PATH_INLINE]),
                    (unsigned long long)GET(M.scored[CTR__PATH_BATCHED]));
    for (size_t m = 0; m < s->n_models; m++)
        per[m] = GET(M.rejected[m]);
    per_model(b, s, "ctrd_queue_rejected_total", "counter",
              "Requests refused with 503 because their model's queue was full.", per);
    head(b, "ctrd_queue_examples", "gauge", "Examples waiting in the batch queues, every model's.");
    ctr__buf_printf(b, "ctrd_queue_examples %llu\n", (unsigned long long)s->queued_examples);
    for (size_t m = 0; m < s->n_models; m++)
        per[m] = s->models[m].queued_examples;
    per_model(b, s, "ctrd_model_queue_examples", "gauge", "Examples waiting in a model's batch queue.", per);
    head(b, "ctrd_queue_limit_examples", "gauge", "--queue-limit (of each model's queue).");
    ctr__buf_printf(b, "ctrd_queue_limit_examples %llu\n", (unsigned long long)s->queue_limit);
    head(b, "ctrd_requests_in_flight", "gauge", "Requests received and not yet answered.");
    ctr__buf_printf(b, "ctrd_requests_in_flight %llu\n", (unsigned long long)s->in_flight);
    static const char *const evict_names[CTR__EVICT_COUNT] = {
        "headers_timeout", "body_timeout", "idle_at_limit", "stalled_at_limit"};
    head(b, "ctrd_connections_open", "gauge", "Connections open and counted against --max-connections.");
    int64_t open_now = (int64_t)atomic_load_explicit(&M.conn_open, memory_order_relaxed);
    ctr__buf_printf(b, "ctrd_connections_open %lld\n", (long long)(open_now > 0 ? open_now : 0));
    head(b, "ctrd_connections_evicted_total", "counter",
         "Connections closed by ctrd: past a header or body deadline, or to make room at --max-connections.");
    for (int i = 0; i < CTR__EVICT_COUNT; i++)
        ctr__buf_printf(b, "ctrd_connections_evicted_total{reason=\"%s\"} %llu\n", evict_names[i],
                        (unsigned long long)GET(M.conn_evicted[i]));
    head(b, "ctrd_connections_refused_total", "counter",
         "Connections refused with 503 at --max-connections (nothing to evict).");
    ctr__buf_printf(b, "ctrd_connections_refused_total %llu\n", (unsigned long long)GET(M.conn_refused));
    head(b, "ctrd_draining", "gauge", "1 after SIGTERM while in-flight requests finish.");
    ctr__buf_printf(b, "ctrd_draining %d\n", s->draining ? 1 : 0);

    head(b, "ctrd_model_info", "gauge",
         "A model being served (value 1): its file's name, digest and the kernel, by model.");
    for (size_t m = 0; m < s->n_models; m++) {
        const ctr__metrics_model_t *mm = &s->models[m];
        model_label(ml, sizeof ml, s, m + 1);
        ctr__buf_puts(b, "ctrd_model_info{name=\"");
        ctr__buf_prom_label(b, mm->header_name ? mm->header_name : "");
        ctr__buf_puts(b, "\",digest=\"");
        ctr__buf_prom_label(b, mm->digest ? mm->digest : "");
        ctr__buf_puts(b, "\",kernel=\"");
        ctr__buf_prom_label(b, s->kernel ? s->kernel : "");
        ctr__buf_printf(b, "\",bit_exact=\"%s\"%s} 1\n", s->bit_exact ? "true" : "false", ml);
    }
    for (size_t m = 0; m < s->n_models; m++)
        per[m] = s->models[m].generation;
    per_model(b, s, "ctrd_model_generation", "gauge",
              "Model generation: 1 at start, +1 per successful reload, by model.", per);
    head(b, "ctrd_model_loaded_timestamp_seconds", "gauge", "When the serving generation was loaded (Unix time), by model.");
    for (size_t m = 0; m < s->n_models; m++) {
        model_label(ml, sizeof ml, s, m + 1);
        ctr__buf_printf(b, "ctrd_model_loaded_timestamp_seconds{%s} %.3f\n", ml + 1,
                        (double)s->models[m].loaded_real_ns / 1e9);
    }
    for (size_t m = 0; m < s->n_models; m++)
        per[m] = s->models[m].mapped_bytes;
    per_model(b, s, "ctrd_model_mapped_bytes", "gauge",
              "Bytes of the serving generation's file mapped read-only, by model (two models of one file share their pages).",
              per);
    for (size_t m = 0; m < s->n_models; m++)
        per[m] = s->models[m].resident_bytes;
    per_model(b, s, "ctrd_model_resident_bytes", "gauge",
              "Bytes of the serving generation's file in memory, by model (mincore, at most 10 s old; shared pages count for each model).",
              per);
    head(b, "ctrd_model_reloads_total", "counter", "Model reloads (SIGHUP or admin call), by result and model.");
    for (size_t m = 0; m < s->n_models; m++) {
        model_label(ml, sizeof ml, s, m + 1);
        ctr__buf_printf(b, "ctrd_model_reloads_total{result=\"success\"%s} %llu\n", ml,
                        (unsigned long long)GET(M.reload_ok[m]));
        ctr__buf_printf(b, "ctrd_model_reloads_total{result=\"failure\"%s} %llu\n", ml,
                        (unsigned long long)GET(M.reload_fail[m]));
    }

    head(b, "ctrd_audit_enabled", "gauge", "1 when an audit log is being written.");
    ctr__buf_printf(b, "ctrd_audit_enabled %d\n", s->audit.enabled ? 1 : 0);
    head(b, "ctrd_audit_records_total", "counter", "Audit records written.");
    ctr__buf_printf(b, "ctrd_audit_records_total %llu\n", (unsigned long long)s->audit.records);
    head(b, "ctrd_audit_bytes_total", "counter", "Audit bytes written.");
    ctr__buf_printf(b, "ctrd_audit_bytes_total %llu\n", (unsigned long long)s->audit.bytes);
    head(b, "ctrd_audit_lag_records", "gauge", "Audit records submitted and not yet written.");
    ctr__buf_printf(b, "ctrd_audit_lag_records %llu\n", (unsigned long long)s->audit.lag_records);
    head(b, "ctrd_audit_dropped_total", "counter", "Audit records dropped (durability async, queue full).");
    ctr__buf_printf(b, "ctrd_audit_dropped_total %llu\n", (unsigned long long)s->audit.dropped);
    head(b, "ctrd_audit_errors_total", "counter", "Audit write failures.");
    ctr__buf_printf(b, "ctrd_audit_errors_total %llu\n", (unsigned long long)s->audit.errors);
    head(b, "ctrd_audit_examples_total", "counter", "Examples in the audit records written.");
    ctr__buf_printf(b, "ctrd_audit_examples_total %llu\n", (unsigned long long)s->audit.examples);
    head(b, "ctrd_audit_rejected_total", "counter", "Records refused after waiting for audit buffer space (503).");
    ctr__buf_printf(b, "ctrd_audit_rejected_total %llu\n", (unsigned long long)s->audit.rejected);
    head(b, "ctrd_audit_segments_total", "counter", "Audit segment files opened.");
    ctr__buf_printf(b, "ctrd_audit_segments_total %llu\n", (unsigned long long)s->audit.segments);
    head(b, "ctrd_audit_syncs_total", "counter", "fdatasync calls on the audit log.");
    ctr__buf_printf(b, "ctrd_audit_syncs_total %llu\n", (unsigned long long)s->audit.syncs);
    head(b, "ctrd_audit_fallback", "gauge", "1 when the audit writer uses pwrite/fdatasync (io_uring unavailable).");
    ctr__buf_printf(b, "ctrd_audit_fallback %d\n", s->audit.fallback ? 1 : 0);
    head(b, "ctrd_audit_lag_seconds", "gauge", "Age of the oldest audit record not yet written.");
    ctr__buf_printf(b, "ctrd_audit_lag_seconds %.6f\n", (double)s->audit.lag_ns / 1e9);
    head(b, "ctrd_audit_write_duration_seconds", "histogram", "One audit write submission (and its linked fdatasync).");
    {
        uint64_t acum = 0;
        for (size_t i = 0; i < CTR__AUDIT_WRITE_BUCKETS; i++) {
            acum += s->audit.write_hist[i];
            if (i < CTR__AUDIT_WRITE_BUCKETS - 1)
                ctr__buf_printf(b, "ctrd_audit_write_duration_seconds_bucket{le=\"%g\"} %llu\n",
                                (double)ctr__audit_write_bounds_ns[i] / 1e9, (unsigned long long)acum);
            else
                ctr__buf_printf(b, "ctrd_audit_write_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                                (unsigned long long)acum);
        }
        ctr__buf_printf(b, "ctrd_audit_write_duration_seconds_sum %.9f\nctrd_audit_write_duration_seconds_count %llu\n",
                        (double)s->audit.write_sum_ns / 1e9, (unsigned long long)acum);
    }

    ctr__shadow_render(b, s->shadow);

    uint64_t rss = rss_bytes();
    head(b, "ctrd_resident_memory_bytes", "gauge", "Resident set size (/proc/self/statm), mapped model pages included.");
    ctr__buf_printf(b, "ctrd_resident_memory_bytes %llu\n", (unsigned long long)rss);
    head(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    ctr__buf_printf(b, "process_resident_memory_bytes %llu\n", (unsigned long long)rss);
    head(b, "ctrd_heap_in_use_bytes", "gauge",
         "Heap bytes allocated and not freed (mallinfo2 uordblks + hblkhd); RSS minus this is memory the allocator keeps for reuse.");
    ctr__buf_printf(b, "ctrd_heap_in_use_bytes %llu\n", (unsigned long long)heap_in_use_bytes());
    head(b, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
    ctr__buf_printf(b, "process_start_time_seconds %.3f\n", (double)M.start_real_ns / 1e9);
}
