/* plan.c - what every run of one invocation shares, prepared before the
 * clock starts (see plan.h). */
#include "plan.h"

#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "ctr/common.h"
#include "replay_drive.h"
#include "url.h"

/* The requests, unframed, and a line saying where they come from. */
static int load_messages(const ctr__load_opts_t *o, ctr__plan_t *p, int *all_timed,
                         char *err, size_t errlen)
{
    if (o->replay.n)
        return ctr__replay_drive_load(o, all_timed, p->source, sizeof p->source, &p->msgs, err, errlen);
    ctr__bodies_opts_t bo;
    memset(&bo, 0, sizeof bo);
    bo.protocol = o->protocol;
    bo.model_name = o->protocol == CTR__PROTO_V1 ? o->model_name : NULL;
    bo.examples = o->examples;
    bo.context_split = o->context_split;
    bo.seed = o->seed;
    bo.synthetic = o->data ? 0 : o->bodies;
    bo.synthetic_cats = o->synthetic_cats == CTR__CATS_UNIFORM ? CTR__CATS_UNIFORM : CTR__CATS_ZIPF;
    bo.data_path = o->data;
    bo.format = o->format;
    bo.label = o->label;
    bo.dense_cols = o->dense;
    bo.cat_cols = o->categorical;
    bo.delimiter = o->delimiter;
    bo.max_rows = o->max_rows;
    bo.skip_bad = o->skip_bad;
    int rc = ctr__bodies_build(&bo, stderr, &p->msgs, err, errlen);
    if (rc)
        return rc;
    if (o->data)
        snprintf(p->source, sizeof p->source, "data %s (%zu distinct requests)", o->data, p->msgs->n);
    else
        snprintf(p->source, sizeof p->source, "synthetic%s (%zu distinct requests)",
                 bo.synthetic_cats == CTR__CATS_UNIFORM ? ", uniform categoricals" : "", p->msgs->n);
    return 0;
}

/* What every run shares: where, what, how long, open or closed loop. */
static void describe_runs(const ctr__load_opts_t *o, ctr__plan_t *p, volatile int *stop)
{
    ctr__run_opts_t *ro = &p->ro;
    ctr__run_desc_t *d = &p->d;
    ro->addr = p->ai->ai_addr;
    ro->addrlen = p->ai->ai_addrlen;
    ro->target = p->target;
    ro->msgs = p->msgs;
    ro->arrival = o->arrival;
    ro->rate = o->rate;
    ro->seed = o->seed;
    ro->speed = o->replay_speed;
    ro->warmup_ns = o->warmup_ns;
    ro->duration_ns = o->duration_ns;
    ro->timeout_ns = o->timeout_ns;
    ro->id_base = ((uint64_t)(getpid() & 0xffff) << 48) | (((uint64_t)time(NULL) & 0xffff) << 32);
    int show_progress = o->progress >= 0 ? o->progress : (!o->quiet && isatty(STDERR_FILENO));
    ro->progress = show_progress ? stderr : NULL;
    ro->stop = stop;

    d->url = p->full_url;
    d->protocol = o->protocol == CTR__PROTO_V2 ? "v2" : "v1";
    d->source = p->source;
    d->examples = o->replay.n ? 0 : o->examples;
    d->max_lag_ms = o->max_lag_ms;
    d->max_cpu = o->max_cpu_pct / 100.0;
    d->timeout_s = (double)o->timeout_ns / 1e9;
    d->warmup_s = (double)o->warmup_ns / 1e9;
    d->arrival = ctr__arrival_name(o->arrival);

    if (o->concurrency) {
        ro->closed_loop = 1;
        ro->connections = o->concurrency;
        d->mode = "closed";
        d->concurrency = o->concurrency;
    } else {
        ro->connections = o->connections ? o->connections : CTR__LOAD_OPEN_CONNECTIONS;
        d->mode = "open";
        d->rate = o->rate;
    }
}

static int open_outputs(const ctr__load_opts_t *o, ctr__plan_t *p, char *err, size_t errlen)
{
    p->json_path = o->json;
    p->csv_path = o->csv;
    if (o->json && !(p->json = ctr__report_open(o->json, err, errlen)))
        return CTR_EIO;
    if (o->csv && !(p->csv = ctr__report_open(o->csv, err, errlen)))
        return CTR_EIO;
    if (p->csv)
        ctr__report_csv_header(p->csv);
    p->txt = (o->json && !strcmp(o->json, "-")) || (o->csv && !strcmp(o->csv, "-")) ? stderr : stdout;
    return 0;
}

int ctr__plan_open(const ctr__load_opts_t *o, volatile int *stop, ctr__plan_t **out,
                   char *err, size_t errlen)
{
    *out = NULL;
    ctr__plan_t *p = calloc(1, sizeof *p);
    if (!p)
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    ctr__url_t url;
    int rc = ctr__url_parse(o->url, &url, err, errlen);
    if (rc)
        goto fail;
    char path[1100];
    if (url.path[0])
        snprintf(path, sizeof path, "%s", url.path);
    else if (o->protocol == CTR__PROTO_V2)
        snprintf(path, sizeof path, "/v2/models/%s/infer", o->model_name);
    else
        snprintf(path, sizeof path, "/v1/score");
    snprintf(p->full_url, sizeof p->full_url, "http://%s%s", url.authority, path);

    /* Bodies, before any clock. */
    int all_timed = 0;
    if ((rc = load_messages(o, p, &all_timed, err, errlen)) ||
        (rc = ctr__msgset_frame(p->msgs, url.authority, path, err, errlen)))
        goto fail;
    if (o->print_request) {
        *out = p;
        return 0;
    }

    /* Where to. */
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(url.host, url.port, &hints, &p->ai);
    if (gai) {
        p->ai = NULL;
        rc = ctr_error(err, errlen, CTR_EINVAL, "cannot resolve \"%s\": %s", url.host, gai_strerror(gai));
        goto fail;
    }
    snprintf(p->target, sizeof p->target, "%s", url.authority);

    describe_runs(o, p, stop);
    if (o->replay.n &&
        (rc = ctr__replay_drive_pace(o, p->msgs, all_timed, &p->ro, &p->d, &p->trace, err, errlen)))
        goto fail;
    p->d.connections = p->ro.connections;
    /* One descriptor per connection: lift the soft limit as far as allowed. */
    struct rlimit rl;
    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < p->ro.connections + 64) {
        rl.rlim_cur = rl.rlim_max < p->ro.connections + 64 ? rl.rlim_max : p->ro.connections + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    p->d.duration_s = (double)p->ro.duration_ns / 1e9;

    if ((rc = open_outputs(o, p, err, errlen)))
        goto fail;
    *out = p;
    return 0;
fail:
    ctr__plan_close(p);
    return rc;
}

void ctr__plan_print_request(const ctr__plan_t *p, FILE *f)
{
    ctr__msg_t *m = &p->msgs->v[0];
    if (m->id_off != CTR__NO_ID)
        ctr__format_id(m->buf + m->id_off, 0);
    fwrite(m->buf, 1, m->len, f);
    fputc('\n', f);
}

int ctr__plan_close(ctr__plan_t *p)
{
    if (!p)
        return 0;
    int rc = 0;
    char err[512] = "";
    if (p->json && ctr__report_close(p->json, p->json_path, err, sizeof err)) {
        if (err[0])
            fprintf(stderr, "ctrload: %s\n", err);
        rc = -1;
    }
    err[0] = 0;
    if (p->csv && ctr__report_close(p->csv, p->csv_path, err, sizeof err)) {
        if (err[0])
            fprintf(stderr, "ctrload: %s\n", err);
        rc = -1;
    }
    free(p->trace);
    if (p->ai)
        freeaddrinfo(p->ai);
    ctr__msgset_free(p->msgs);
    free(p);
    return rc;
}
