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

int ctr__model_name_matches(const ctr__http_req_t *r, const ctr__gen_t *g)
{
    const char *v = ctr__http_param(r, "version");
    return !strcmp(ctr__http_param(r, "name"), g->name) && (!*v || version_matches(v, g->digest));
}

enum MHD_Result ctr__model_not_found(ctr__http_req_t *r, const ctr__gen_t *g)
{
    if (strcmp(ctr__http_param(r, "name"), g->name))
        return ctr__http_error(r, CTR_ENOTFOUND, "model_not_found",
                               "no model named \"%s\" here; this server serves \"%.100s\"",
                               ctr__http_param(r, "name"), g->name);
    char short_v[CTR__VERSION_SHORT_HEX + 1];
    const char *hex = strchr(g->digest, ':');
    snprintf(short_v, sizeof short_v, "%s", hex ? hex + 1 : g->digest);
    return ctr__http_error(r, CTR_ENOTFOUND, "version_not_found",
                           "model \"%.100s\" has no version \"%s\"; it serves \"%s\" (or \"%s\")",
                           g->name, ctr__http_param(r, "version"), g->digest, short_v);
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

/* GET /v1/models */
enum MHD_Result ctr__info_models(ctr__http_req_t *r)
{
    ctr__gen_t *g = ctr__modelstore_acquire(r->h->d.store);
    ctr__buf_t b;
    if (ctr__buf_init(&b, g->info_json_len + 32)) {
        ctr__gen_release(g);
        return MHD_NO;
    }
    ctr__buf_puts(&b, "{\"models\":[");
    ctr__buf_put(&b, g->info_json, g->info_json_len);
    ctr__buf_puts(&b, "]}\n");
    ctr__gen_release(g);
    return ctr__http_reply(r, CTR__JSON_TYPE, &b);
}

/* GET /v2/models/{name}, .../versions/{version} */
enum MHD_Result ctr__info_v2_model(ctr__http_req_t *r)
{
    enum MHD_Result ok = MHD_NO;
    ctr__buf_t b;
    ctr__gen_t *g = ctr__modelstore_acquire(r->h->d.store);
    if (!ctr__model_name_matches(r, g)) {
        ok = ctr__model_not_found(r, g);
    } else if (!ctr__buf_init(&b, g->v2_json_len + 2)) {
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
    ctr__gen_t *g = ctr__modelstore_acquire(r->h->d.store);
    if (!ctr__model_name_matches(r, g)) {
        ok = ctr__model_not_found(r, g);
    } else if (draining) {
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

/* GET /metrics */
enum MHD_Result ctr__info_metrics(ctr__http_req_t *r)
{
    ctr__http_t *h = r->h;
    ctr__metrics_snapshot_t s;
    ctr__buf_t b;
    memset(&s, 0, sizeof s);
    s.draining = ctr__http_draining(h);
    ctr__gen_t *g = ctr__modelstore_acquire(h->d.store);
    s.model_name = g->name;
    s.digest = g->digest;
    s.generation = g->id;
    s.loaded_real_ns = g->loaded_real_ns;
    s.kernel = h->d.kernel->name;
    s.bit_exact = h->d.kernel->bit_exact;
    s.queued_examples = ctr__batcher_queued(h->d.batcher);
    s.queue_limit = h->d.cfg->queue_limit;
    s.in_flight = atomic_load(&h->in_flight);
    ctr__audit_stats(h->d.audit, &s.audit);
    if (ctr__buf_init(&b, 16384)) {
        ctr__gen_release(g);
        return MHD_NO;
    }
    ctr__metrics_render(&b, &s);
    ctr__gen_release(g);
    return ctr__http_reply(r, "text/plain; version=0.0.4; charset=utf-8", &b);
}
