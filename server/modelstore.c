/* modelstore.c - refcounted model generations and hot reload (see
 * modelstore.h). */
#include "modelstore.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "clock.h"
#include "ctr/common.h"
#include "log.h"
#include "metrics.h"
#include "model_mem.h"

typedef struct reload_req {
    struct reload_req *next;
    char *path;                 /* NULL: the store's current path */
    ctr__reload_done_fn done;
    void *ctx;
} reload_req_t;

/* Every generation of every model gets its own uid, so a scoring thread's
 * buffers keyed by uid never mistake one model (or a freed generation's
 * reused address) for another. */
static atomic_uint_fast64_t next_uid = 1;

struct ctr__modelstore {
    char name[CTR__MODEL_NAME_MAX + 1];  /* served name, fixed */
    size_t index;
    pthread_mutex_t lock;       /* guards cur */
    ctr__gen_t *cur;
    pthread_mutex_t reload_lock;/* one reload at a time; guards path, next_id */
    char *path;
    uint64_t next_id;
    const ctr_kernel_t *kernel;

    pthread_mutex_t q_lock;     /* guards the queue below */
    pthread_cond_t q_cond;
    reload_req_t *q_head, *q_tail;
    int stopping;
    int thread_started;
    pthread_t thread;
};

static void gen_free(ctr__gen_t *g)
{
    if (!g)
        return;
    free(g->info_json);
    free(g->v2_json);
    if (g->model)
        ctr_model_close(g->model);
    free(g);
}

void ctr__gen_retain(ctr__gen_t *g)
{
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
}

void ctr__gen_release(ctr__gen_t *g)
{
    if (!g)
        return;
    if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
        return;
    ctr__log(CTR_LOG_INFO, "model generation retired", CTR_LOG_S("model", g->name), CTR_LOG_U("generation", g->id),
             CTR_LOG_S("digest", g->digest), CTR_LOG_END);
    gen_free(g);
}

uint64_t ctr__gen_resident_bytes(ctr__gen_t *g, uint64_t max_age_ns)
{
    uint64_t now = ctr__mono_ns(), at = atomic_load_explicit(&g->resident_at_ns, memory_order_acquire);
    if (at && now - at < max_age_ns)
        return atomic_load_explicit(&g->resident_bytes, memory_order_relaxed);
    uint64_t b = 0;
    if (ctr__mapped_resident_bytes((dev_t)g->file_dev, (ino_t)g->file_ino, &b))
        b = 0;
    atomic_store_explicit(&g->resident_bytes, b, memory_order_relaxed);
    atomic_store_explicit(&g->resident_at_ns, now, memory_order_release);
    return b;
}

/* Provenance is stored as JSON text; embed it parsed when it parses. */
static json_t *provenance(const ctr_model_def_t *def)
{
    if (!def->provenance_json)
        return json_null();
    json_t *p = json_loads(def->provenance_json, JSON_REJECT_DUPLICATES, NULL);
    return p ? p : json_string(def->provenance_json);
}

static json_t *u64(uint64_t v)
{
    if (v <= (uint64_t)INT64_MAX)
        return json_integer((json_int_t)v);
    char s[24];
    snprintf(s, sizeof s, "%llu", (unsigned long long)v);
    return json_string(s);
}

static char *iso_time(uint64_t real_ns, char *buf, size_t cap)
{
    time_t t = (time_t)(real_ns / 1000000000u);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static json_t *layer_list(const ctr_mlp_def_t *mlp)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < mlp->n; i++)
        json_array_append_new(a, json_pack("{s:I, s:I}", "in", (json_int_t)mlp->layers[i].in,
                                           "out", (json_int_t)mlp->layers[i].out));
    return a;
}

static const char *mapping_name(ctr_mapping_t m)
{
    return m == CTR_MAP_MOD ? "mod" : "hash";
}

static const char *pool_name(ctr_pool_t p)
{
    return p == CTR_POOL_MEAN ? "mean" : "sum";
}

/* What sits between the embeddings and the top MLP (docs/MODEL_FORMAT.md):
 * null for an MLP. */
static json_t *interaction(const ctr_model_def_t *d)
{
    switch (d->arch) {
    case CTR_ARCH_DOT:
        return json_pack("{s:s, s:b}", "order", d->dot_order == CTR_DOT_UPPER ? "upper" : "lower",
                         "self", d->dot_self);
    case CTR_ARCH_DCNV2: {
        json_t *cross = json_array();
        for (size_t l = 0; cross && l < d->dcn.n_cross; l++)
            json_array_append_new(cross, json_pack("{s:I, s:I}", "dim",
                                                   (json_int_t)d->dcn.cross[l].dim, "rank",
                                                   (json_int_t)d->dcn.cross[l].rank));
        return json_pack("{s:s, s:o, s:o}", "structure",
                         d->dcn.structure == CTR_DCN_PARALLEL ? "parallel" : "stacked", "cross",
                         cross, "deep", layer_list(&d->dcn.deep));
    }
    case CTR_ARCH_WUKONG: {
        json_t *layers = json_array();
        for (size_t l = 0; layers && l < d->wukong.n_layers; l++) {
            const ctr_wukong_layer_def_t *w = &d->wukong.layers[l];
            json_array_append_new(layers, json_pack("{s:I, s:I, s:I, s:I, s:b, s:o}", "n_in",
                                                    (json_int_t)w->n_in, "n_f", (json_int_t)w->n_f,
                                                    "n_l", (json_int_t)w->n_l, "k",
                                                    (json_int_t)w->k, "residual", w->res != NULL,
                                                    "fmb", layer_list(&w->fmb)));
        }
        return json_pack("{s:f, s:s, s:b, s:o}", "ln_eps", (double)d->ln_eps, "fmb_ln",
                         d->wukong.fmb_ln == CTR_FMB_LN_FLAT ? "flat" : "none", "fmb_out_act",
                         d->wukong.fmb_out_act, "layers", layers);
    }
    case CTR_ARCH_MLP:
    default:
        return json_null();
    }
}

/* The /v1/models entry and the KServe v2 model metadata body. */
static int gen_describe(ctr__gen_t *g, const ctr_kernel_t *k, char *err, size_t errlen)
{
    const ctr_model_def_t *d = g->def;
    char when[32];
    json_t *dense = json_array(), *cat = json_array(), *layers = json_array();
    json_t *dnames = json_array(), *cnames = json_array(), *bags = json_array();
    json_t *mods = json_array();
    size_t n_single = 0;
    for (size_t i = 0; i < d->n_dense; i++) {
        json_t *o = json_pack("{s:s, s:s}", "name", d->dense[i].name, "transform",
                              ctr_transform_name(d->dense[i].transform));
        if (o && d->dense[i].transform == CTR_TRANSFORM_STANDARDIZE) {
            json_object_set_new(o, "mean", json_real(d->dense[i].mean));
            json_object_set_new(o, "std", json_real(d->dense[i].std));
        }
        json_array_append_new(dense, o);
        json_array_append_new(dnames, json_string(d->dense[i].name));
    }
    for (size_t i = 0; i < d->n_cat; i++) {
        const ctr_cat_def_t *c = &d->cat[i];
        json_t *o = json_pack("{s:s, s:I, s:I, s:o, s:s, s:I}", "name", c->name, "buckets",
                              (json_int_t)c->buckets, "dim", (json_int_t)c->dim, "seed",
                              u64(c->seed), "mapping", mapping_name(c->mapping), "slot",
                              (json_int_t)ctr_model_slot_of(d, i));
        if (o && c->bag_max)
            json_object_set_new(o, "bag", json_pack("{s:I, s:s}", "max", (json_int_t)c->bag_max,
                                                    "pool", pool_name(c->pool)));
        if (o && c->shares)
            json_object_set_new(o, "shares", json_string(d->cat[c->shares - 1].name));
        json_array_append_new(cat, o);
        if (c->bag_max)
            json_array_append_new(bags, json_pack("{s:s, s:I, s:s, s:s}", "name", c->name, "max",
                                                  (json_int_t)c->bag_max, "pool",
                                                  pool_name(c->pool), "mapping",
                                                  mapping_name(c->mapping)));
        else
            json_array_append_new(cnames, json_string(c->name)), n_single++;
        if (c->mapping == CTR_MAP_MOD)
            json_array_append_new(mods, json_string(c->name));
    }
    for (size_t i = 0; i < d->n_layers; i++)
        json_array_append_new(layers, json_pack("{s:I, s:I, s:s}", "in", (json_int_t)d->layers[i].in,
                                                "out", (json_int_t)d->layers[i].out, "activation",
                                                i + 1 < d->n_layers ? ctr_activation_name(d->activation) : "sigmoid"));
    json_t *info = json_pack(
        "{s:s, s:s, s:I, s:s, s:s, s:o, s:{s:s, s:b}, s:{s:o, s:o}, s:o, s:s, s:f, s:I, s:o,"
        " s:s, s:I, s:o, s:o}",
        "name", g->name, "digest", g->digest, "generation", (json_int_t)g->id,
        "path", ctr_model_path(g->model), "loaded_at", iso_time(g->loaded_real_ns, when, sizeof when),
        "file_bytes", u64(ctr_model_file_size(g->model)),
        "kernel", "name", k->name, "bit_exact", k->bit_exact,
        "schema", "dense", dense, "categorical", cat,
        "layers", layers, "activation", ctr_activation_name(d->activation), "beta", (double)d->beta,
        "input_dim", (json_int_t)ctr_model_input_dim(d), "provenance", provenance(d),
        "arch", ctr_arch_name(d->arch), "slots", (json_int_t)ctr_model_slots(d),
        "bottom", layer_list(&d->bottom), "interaction", interaction(d));
    char short_version[CTR__VERSION_SHORT_HEX + 1];
    snprintf(short_version, sizeof short_version, "%s", g->digest + strlen("sha256:"));
    /* Inputs: dense, sparse (the single-valued categorical features, in
     * schema order), then one per bag feature, [B, L] with L <= its max
     * (docs/DECODER.md "v2"). */
    json_t *v2 = json_pack(
        "{s:s, s:[s,s], s:s, s:[{s:s, s:s, s:[i,I]}, {s:s, s:s, s:[i,I]}], s:[{s:s, s:s, s:[i,i]}],"
        " s:{s:o, s:o, s:s, s:s, s:b, s:s, s:o, s:o}}",
        "name", g->name, "versions", g->digest, short_version, "platform", "ctrd",
        "inputs", "name", "dense", "datatype", "FP32", "shape", -1, (json_int_t)d->n_dense,
        "name", "sparse", "datatype", "BYTES", "shape", -1, (json_int_t)n_single,
        "outputs", "name", "score", "datatype", "FP32", "shape", -1, 1,
        "parameters", "dense_features", dnames, "sparse_features", cnames,
        "digest", g->digest, "kernel", k->name, "bit_exact", k->bit_exact,
        "arch", ctr_arch_name(d->arch), "bag_features", json_incref(bags), "mod_features", mods);
    if (v2)
        for (size_t i = 0; i < d->n_cat; i++)
            if (d->cat[i].bag_max)
                json_array_append_new(json_object_get(v2, "inputs"),
                                      json_pack("{s:s, s:s, s:[i,I]}", "name", d->cat[i].name,
                                                "datatype", "BYTES", "shape", -1,
                                                (json_int_t)d->cat[i].bag_max));
    json_decref(bags);
    if (!info || !v2)
        goto fail;
    g->info_json = json_dumps(info, JSON_COMPACT);
    g->v2_json = json_dumps(v2, JSON_COMPACT);
    json_decref(info);
    json_decref(v2);
    info = v2 = NULL;
    if (!g->info_json || !g->v2_json)
        goto fail;
    g->info_json_len = strlen(g->info_json);
    g->v2_json_len = strlen(g->v2_json);
    return 0;
fail:
    json_decref(info);
    json_decref(v2);
    return ctr_error(err, errlen, CTR_ENOMEM, "out of memory describing model \"%s\"", g->name);
}

/* name NULL: the header's (truncated to CTR__MODEL_NAME_MAX; the registry
 * refuses a name that long). */
static int gen_load(const char *name, size_t index, const char *path, const ctr_kernel_t *k,
                    uint64_t id, ctr__gen_t **out, char *err, size_t errlen)
{
    int rc;
    ctr__gen_t *g = calloc(1, sizeof *g);
    if (!g)
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    if ((rc = ctr_model_open(path, &g->model, err, errlen)))
        goto fail;
    if ((rc = ctr_model_verify(g->model, err, errlen)))
        goto fail;
    g->def = ctr_model_def(g->model);
    snprintf(g->name_buf, sizeof g->name_buf, "%s", name ? name : g->def->name);
    g->name = g->name_buf;
    g->model_index = index;
    g->digest = ctr_model_digest(g->model);
    g->id = id;
    g->uid = atomic_fetch_add_explicit(&next_uid, 1, memory_order_relaxed);
    /* Which file got mapped, for its resident bytes: a file moved into
     * place between the open and this stat would only make that figure 0
     * (the loader keeps no descriptor to fstat). */
    struct stat st;
    if (!stat(path, &st)) {
        g->file_dev = (uint64_t)st.st_dev;
        g->file_ino = (uint64_t)st.st_ino;
    }
    g->loaded_real_ns = ctr__real_ns();
    atomic_init(&g->refs, 1);
    if ((rc = gen_describe(g, k, err, errlen)))
        goto fail;
    *out = g;
    return 0;
fail:
    gen_free(g);
    return rc;
}

ctr__gen_t *ctr__modelstore_acquire(ctr__modelstore_t *s)
{
    pthread_mutex_lock(&s->lock);
    ctr__gen_t *g = s->cur;
    ctr__gen_retain(g);
    pthread_mutex_unlock(&s->lock);
    return g;
}

int ctr__modelstore_reload(ctr__modelstore_t *s, const char *path, ctr__reload_result_t *res)
{
    memset(res, 0, sizeof *res);
    uint64_t t0 = ctr__mono_ns();
    pthread_mutex_lock(&s->reload_lock);
    const char *p = path ? path : s->path;
    ctr__gen_t *ng = NULL, *old;
    char *newpath = NULL;
    res->rc = gen_load(s->name, s->index, p, s->kernel, s->next_id, &ng, res->message,
                       sizeof res->message);
    if (!res->rc && path && !(newpath = strdup(path))) {
        res->rc = ctr_error(res->message, sizeof res->message, CTR_ENOMEM, "out of memory");
        gen_free(ng);
        ng = NULL;
    }
    pthread_mutex_lock(&s->lock);
    old = s->cur;
    snprintf(res->previous_digest, sizeof res->previous_digest, "%s", old->digest);
    if (!res->rc && !strcmp(ng->digest, old->digest)) {
        /* Same model (e.g. SIGHUP without a new file): keep the serving
         * generation rather than churn the mapping. */
        res->unchanged = 1;
    } else if (!res->rc) {
        s->cur = ng;
        s->next_id++;
        ng = NULL;
    }
    res->generation = s->cur->id;
    snprintf(res->digest, sizeof res->digest, "%s", s->cur->digest);
    pthread_mutex_unlock(&s->lock);
    if (!res->rc && !res->unchanged)
        ctr__gen_release(old);          /* freed when its last request is done */
    gen_free(ng);                        /* NULL unless unchanged */
    if (newpath) {
        free(s->path);
        s->path = newpath;
    }
    pthread_mutex_unlock(&s->reload_lock);
    res->elapsed_ns = ctr__mono_ns() - t0;

    ctr__metrics_reload(s->index, res->rc == 0);
    if (res->rc)
        ctr__log(CTR_LOG_ERROR, "model reload failed; the old model keeps serving",
                 CTR_LOG_S("model", s->name), CTR_LOG_S("path", p), CTR_LOG_S("error", res->message),
                 CTR_LOG_S("code", ctr_strerror(res->rc)), CTR_LOG_S("digest", res->digest),
                 CTR_LOG_U("generation", res->generation), CTR_LOG_END);
    else
        ctr__log(CTR_LOG_INFO, res->unchanged ? "model reload: same digest, kept" : "model reloaded",
                 CTR_LOG_S("model", s->name), CTR_LOG_S("path", path ? path : "(current)"), CTR_LOG_S("digest", res->digest),
                 CTR_LOG_S("previous_digest", res->previous_digest),
                 CTR_LOG_U("generation", res->generation),
                 CTR_LOG_D("seconds", (double)res->elapsed_ns / 1e9), CTR_LOG_END);
    return res->rc;
}

static void *reload_thread(void *arg)
{
    ctr__modelstore_t *s = arg;
    pthread_mutex_lock(&s->q_lock);
    for (;;) {
        while (!s->q_head && !s->stopping)
            pthread_cond_wait(&s->q_cond, &s->q_lock);
        reload_req_t *r = s->q_head;
        if (!r)
            break;                  /* stopping and nothing left */
        s->q_head = r->next;
        if (!s->q_head)
            s->q_tail = NULL;
        int stopping = s->stopping;
        pthread_mutex_unlock(&s->q_lock);

        ctr__reload_result_t res;
        if (stopping) {
            memset(&res, 0, sizeof res);
            res.rc = ctr_error(res.message, sizeof res.message, CTR_EBUSY, "the server is shutting down");
        } else {
            ctr__modelstore_reload(s, r->path, &res);
        }
        if (r->done)
            r->done(r->ctx, &res);
        free(r->path);
        free(r);
        pthread_mutex_lock(&s->q_lock);
    }
    pthread_mutex_unlock(&s->q_lock);
    return NULL;
}

int ctr__modelstore_reload_async(ctr__modelstore_t *s, const char *path,
                                 ctr__reload_done_fn done, void *ctx)
{
    reload_req_t *r = calloc(1, sizeof *r);
    if (!r || (path && !(r->path = strdup(path)))) {
        free(r);
        return CTR_ENOMEM;
    }
    r->done = done;
    r->ctx = ctx;
    pthread_mutex_lock(&s->q_lock);
    if (s->stopping) {
        pthread_mutex_unlock(&s->q_lock);
        free(r->path);
        free(r);
        return CTR_EBUSY;
    }
    if (s->q_tail)
        s->q_tail->next = r;
    else
        s->q_head = r;
    s->q_tail = r;
    pthread_cond_signal(&s->q_cond);
    pthread_mutex_unlock(&s->q_lock);
    return 0;
}

int ctr__modelstore_open(const char *name, const char *path, size_t index,
                         const ctr_kernel_t *kernel, ctr__modelstore_t **out,
                         char *err, size_t errlen)
{
    int rc;
    ctr__modelstore_t *s = calloc(1, sizeof *s);
    if (!s)
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->reload_lock, NULL);
    pthread_mutex_init(&s->q_lock, NULL);
    pthread_cond_init(&s->q_cond, NULL);
    s->kernel = kernel;
    s->next_id = 2;
    if (!(s->path = strdup(path))) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
        goto fail;
    }
    s->index = index;
    if ((rc = gen_load(name, index, path, kernel, 1, &s->cur, err, errlen)))
        goto fail;
    /* A bare --model PATH keeps its first header name for good: a reload
     * never renames what clients address. */
    snprintf(s->name, sizeof s->name, "%s", s->cur->name);
    if (pthread_create(&s->thread, NULL, reload_thread, s)) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "cannot start the reload thread");
        goto fail;
    }
    s->thread_started = 1;
    *out = s;
    return 0;
fail:
    ctr__modelstore_close(s);
    return rc;
}

const char *ctr__modelstore_name(const ctr__modelstore_t *s)
{
    return s->name;
}

size_t ctr__modelstore_index(const ctr__modelstore_t *s)
{
    return s->index;
}

void ctr__modelstore_stop_reloads(ctr__modelstore_t *s)
{
    pthread_mutex_lock(&s->q_lock);
    s->stopping = 1;
    pthread_cond_broadcast(&s->q_cond);
    pthread_mutex_unlock(&s->q_lock);
    if (s->thread_started)
        pthread_join(s->thread, NULL);
    s->thread_started = 0;
}

void ctr__modelstore_close(ctr__modelstore_t *s)
{
    if (!s)
        return;
    ctr__modelstore_stop_reloads(s);
    ctr__gen_release(s->cur);
    free(s->path);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->reload_lock);
    pthread_mutex_destroy(&s->q_lock);
    pthread_cond_destroy(&s->q_cond);
    free(s);
}
