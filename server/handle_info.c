/* handle_info.c - the GET endpoints: liveness, readiness, model and server
 * metadata (v1 and KServe v2), Prometheus metrics (see routes.h; bodies in
 * docs/API.md). Each answers at once on the thread that read it. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "ctr/common.h"
#include "routes.h"

/* A {version} this model answers to: its digest "sha256:<hex>" or the
 * short form, the digest's first CTR__VERSION_SHORT_HEX hex digits (both
 * listed in "versions" of GET /v2/models/{name}). */
static int version_matches(const char *v, const char *digest)
{
    const char *hex = strchr(digest, ':');
    hex = hex ? hex + 1 : digest;
    return !strcmp(v, digest) ||
           (strlen(v) == CTR__VERSION_SHORT_HEX && strlen(hex) >= CTR__VERSION_SHORT_HEX &&
            !strncmp(v, hex, CTR__VERSION_SHORT_HEX));
}

/* 404 model_not_found naming what is served (the first few names: the
 * message is bounded). */
static enum MHD_Result no_such_model(ctr__http_req_t *r, const char *name, size_t len)
{
    const ctr__registry_t *reg = r->h->d.models;
    char served[160];
    size_t w = 0;
    served[0] = '\0';
    for (size_t i = 0; i < ctr__registry_count(reg) && w < sizeof served; i++) {
        int n = snprintf(served + w, sizeof served - w, "%s\"%s\"", i ? ", " : "",
                         ctr__modelstore_name(ctr__registry_at(reg, i)));
        if (n < 0 || (size_t)n >= sizeof served - w) {
            snprintf(served + w, sizeof served - w, ", ...");
            break;
        }
        w += (size_t)n;
    }
    return ctr__http_error(r, CTR_ENOTFOUND, "model_not_found",
                           "no model named \"%.*s\" here; this server serves %s",
                           (int)(len < 100 ? len : 100), name, served);
}

ctr__gen_t *ctr__model_lookup(ctr__http_req_t *r, const char *name, size_t len,
                              const char *version, enum MHD_Result *answered)
{
    const ctr__registry_t *reg = r->h->d.models;
    ctr__modelstore_t *ms = name ? ctr__registry_find(reg, name, len) : ctr__registry_at(reg, 0);
    if (!ms) {
        r->model = -1;
        *answered = no_such_model(r, name, len);
        return NULL;
    }
    ctr__gen_t *g = ctr__modelstore_acquire(ms);
    r->model = (long)g->model_index;
    if (version && *version && !version_matches(version, g->digest)) {
        char short_v[CTR__VERSION_SHORT_HEX + 1];
        const char *hex = strchr(g->digest, ':');
        snprintf(short_v, sizeof short_v, "%s", hex ? hex + 1 : g->digest);
        *answered = ctr__http_error(r, CTR_ENOTFOUND, "version_not_found",
                                    "model \"%.100s\" has no version \"%s\"; it serves \"%s\" (or \"%s\")",
                                    g->name, version, g->digest, short_v);
        ctr__gen_release(g);
        return NULL;
    }
    return g;
}

ctr__gen_t *ctr__model_of_path(ctr__http_req_t *r, enum MHD_Result *answered)
{
    const char *name = ctr__http_param(r, "name");
    return ctr__model_lookup(r, name, strlen(name), ctr__http_param(r, "version"), answered);
}

/* GET /healthz, /v2/health/live */
enum MHD_Result ctr__info_live(ctr__http_req_t *r)
{
    return ctr__http_reply_text(r, "{\"status\":\"ok\",\"live\":true}\n");
}

/* GET /readyz, /v2/health/ready: 503 once the drain began. */
enum MHD_Result ctr__info_ready(ctr__http_req_t *r)
{
    if (ctr__http_draining(r->h))
        return ctr__http_draining_error(r);
    return ctr__http_reply_text(r, "{\"status\":\"ok\",\"ready\":true}\n");
}

/* GET /v2, /v2/ */
enum MHD_Result ctr__info_v2_server(ctr__http_req_t *r)
{
    return ctr__http_reply_text(
        r, "{\"name\":\"ctrd\",\"version\":\"" CTR__SERVER_VERSION "\",\"extensions\":[\"binary_tensor_data\"]}\n");
}

/* GET /v1/models: every model, the default first. */
enum MHD_Result ctr__info_models(ctr__http_req_t *r)
{
    const ctr__registry_t *reg = r->h->d.models;
    size_t n = ctr__registry_count(reg);
    ctr__gen_t *g[CTR__MODELS_MAX];
    size_t total = 32;
    for (size_t i = 0; i < n; i++) {
        g[i] = ctr__modelstore_acquire(ctr__registry_at(reg, i));
        total += g[i]->info_json_len + 1;
    }
    ctr__buf_t b;
    enum MHD_Result ok = MHD_NO;
    if (!ctr__buf_init(&b, total)) {
        ctr__buf_puts(&b, "{\"models\":[");
        for (size_t i = 0; i < n; i++) {
            if (i)
                ctr__buf_putc(&b, ',');
            ctr__buf_put(&b, g[i]->info_json, g[i]->info_json_len);
        }
        ctr__buf_puts(&b, "]}\n");
        ok = ctr__http_reply(r, CTR__JSON_TYPE, &b);
    }
    for (size_t i = 0; i < n; i++)
        ctr__gen_release(g[i]);
    return ok;
}

/* GET /v2/models/{name}, .../versions/{version} */
enum MHD_Result ctr__info_v2_model(ctr__http_req_t *r)
{
    enum MHD_Result ok = MHD_NO;
    ctr__buf_t b;
    ctr__gen_t *g = ctr__model_of_path(r, &ok);
    if (!g)
        return ok;
    if (!ctr__buf_init(&b, g->v2_json_len + 2)) {
        ctr__buf_put(&b, g->v2_json, g->v2_json_len);
        ctr__buf_putc(&b, '\n');
        ok = ctr__http_reply(r, CTR__JSON_TYPE, &b);
    }
    ctr__gen_release(g);
    return ok;
}

/* GET /v2/models/{name}/ready, .../versions/{version}/ready */
enum MHD_Result ctr__info_v2_model_ready(ctr__http_req_t *r)
{
    int draining = ctr__http_draining(r->h);
    enum MHD_Result ok = MHD_NO;
    ctr__buf_t b;
    ctr__gen_t *g = ctr__model_of_path(r, &ok);
    if (!g)
        return ok;
    if (draining) {
        ok = ctr__http_draining_error(r);
    } else if (!ctr__buf_init(&b, 128)) {
        ctr__buf_puts(&b, "{\"name\":");
        ctr__buf_json_str(&b, g->name, strlen(g->name));
        ctr__buf_puts(&b, ",\"ready\":true}\n");
        ok = ctr__http_reply(r, CTR__JSON_TYPE, &b);
    }
    ctr__gen_release(g);
    return ok;
}

/* How old a model's resident-bytes figure may be: measuring costs about
 * a millisecond per GiB mapped (model_mem.h), too much for every scrape of
 * a large model, and residency moves slowly. */
#define RESIDENT_MAX_AGE_NS 10000000000ull

/* GET /metrics */
enum MHD_Result ctr__info_metrics(ctr__http_req_t *r)
{
    ctr__http_t *h = r->h;
    const ctr__registry_t *reg = h->d.models;
    ctr__metrics_snapshot_t s;
    ctr__gen_t *g[CTR__MODELS_MAX];
    ctr__buf_t b;
    memset(&s, 0, sizeof s);
    s.draining = ctr__http_draining(h);
    s.n_models = ctr__registry_count(reg);
    for (size_t i = 0; i < s.n_models; i++) {
        ctr__metrics_model_t *m = &s.models[i];
        g[i] = ctr__modelstore_acquire(ctr__registry_at(reg, i));
        m->name = g[i]->name;
        m->header_name = g[i]->def->name;
        m->digest = g[i]->digest;
        m->generation = g[i]->id;
        m->loaded_real_ns = g[i]->loaded_real_ns;
        m->mapped_bytes = ctr_model_file_size(g[i]->model);
        m->resident_bytes = ctr__gen_resident_bytes(g[i], RESIDENT_MAX_AGE_NS);
        if (m->resident_bytes > m->mapped_bytes)
            m->resident_bytes = m->mapped_bytes;    /* the last page, rounded up */
        m->queued_examples = ctr__batcher_queued(h->d.batcher, (long)i);
    }
    s.kernel = h->d.kernel->name;
    s.bit_exact = h->d.kernel->bit_exact;
    s.queued_examples = ctr__batcher_queued(h->d.batcher, -1);
    s.queue_limit = h->d.cfg->queue_limit;
    s.in_flight = atomic_load(&h->in_flight);
    ctr__audit_stats(h->d.audit, &s.audit);
    s.shadow = h->d.shadow;
    enum MHD_Result ok = MHD_NO;
    if (!ctr__buf_init(&b, 16384 + 4096 * s.n_models)) {
        ctr__metrics_render(&b, &s);
        ok = ctr__http_reply(r, "text/plain; version=0.0.4; charset=utf-8", &b);
    }
    for (size_t i = 0; i < s.n_models; i++)
        ctr__gen_release(g[i]);
    return ok;
}
