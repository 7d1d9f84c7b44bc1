/* main.c - ctrd: flags, start-up, signals, drain. Everything else lives in
 * the modules it wires together:
 *
 *   config        flags and CTRD_* variables     registry    the served models by name
 *                                                modelstore  one model's generations, reload
 *   http          connections (routes: table,    batcher     queue + scoring threads
 *                 handle_*: the endpoints)
 *   audit_writer  the audit log writer           metrics     Prometheus registry
 *   log           JSON lines on stderr           check       --check URL probe
 *
 * Signals go through a self-pipe: the handler only writes the signal
 * number to a pipe, and this thread reads it and does the work: SIGHUP
 * queues a reload, SIGTERM/SIGINT drain and exit 0; a second SIGTERM/
 * SIGINT cuts the drain short. (Not a signalfd: that needs the signals
 * blocked in every thread, and libraries such as OpenBLAS start threads
 * before main runs.) */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "audit_writer.h"
#include "batcher.h"
#include "check.h"
#include "clock.h"
#include "config.h"
#include "ctr/common.h"
#include "ctr/kernels.h"
#include "http.h"
#include "log.h"
#include "registry.h"
#include "shadow.h"

static int sig_pipe[2] = {-1, -1};

static void on_signal(int signo)
{
    int saved = errno;
    unsigned char b = (unsigned char)signo;
    ssize_t w = write(sig_pipe[1], &b, 1);   /* full pipe: signal coalesced */
    (void)w;
    errno = saved;
}

/* Next signal number from the pipe, waiting up to timeout_ms (-1: for
 * ever); 0 on timeout. */
static int next_signal(int timeout_ms)
{
    struct pollfd pf = {sig_pipe[0], POLLIN, 0};
    int n = poll(&pf, 1, timeout_ms);
    if (n <= 0)
        return 0;
    unsigned char b;
    return read(sig_pipe[0], &b, 1) == 1 ? b : 0;
}

static int install_signals(void)
{
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK))
        return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL) || sigaction(SIGHUP, &sa, NULL))
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Waits until no request is in flight or the deadline passes; returns
 * early (1) when another SIGTERM/SIGINT arrives. */
static int wait_idle(const ctr__http_t *http, uint64_t deadline)
{
    while (ctr__http_in_flight(http) > 0 && ctr__mono_ns() < deadline) {
        int sig = next_signal(10);
        if (sig) {
            if (sig == SIGTERM || sig == SIGINT) {
                ctr__log(CTR_LOG_WARN, "second stop signal: ending the drain now", CTR_LOG_END);
                return 1;
            }
        }
    }
    return 0;
}

/* --shadow's models in the registry. The primary must be served; so must
 * the candidate, unless it was a --model NAME=PATH whose file did not load
 * (registry.c logged why): then *cand stays NULL and the shadow is off.
 * 0, or -1 after logging a configuration error. */
static int resolve_shadow(const ctr__config_t *cfg, const ctr__registry_t *models,
                          ctr__modelstore_t **primary, ctr__modelstore_t **cand)
{
    int optional = 0;
    for (size_t i = 0; i < cfg->n_models; i++)
        optional |= cfg->models[i].optional;
    *primary = ctr__registry_find(models, cfg->shadow_primary, strlen(cfg->shadow_primary));
    *cand = ctr__registry_find(models, cfg->shadow_candidate, strlen(cfg->shadow_candidate));
    const char *missing = !*primary ? cfg->shadow_primary : !*cand && !optional ? cfg->shadow_candidate : NULL;
    if (!missing)
        return 0;
    char err[256];
    snprintf(err, sizeof err, "--shadow %s: no model is named \"%s\"", cfg->shadow, missing);
    ctr__log(CTR_LOG_ERROR, "bad configuration", CTR_LOG_S("error", err), CTR_LOG_END);
    fprintf(stderr, "ctrd: %s (ctrd --help lists the flags)\n", err);
    return -1;
}

int main(int argc, char **argv)
{
    ctr__config_t cfg;
    char err[768], cfgjson[2048];
    int rc, exit_code = 1;
    ctr__registry_t *models = NULL;
    ctr__audit_t *audit = NULL;
    ctr__batcher_t *batcher = NULL;
    ctr__http_t *http = NULL;
    ctr__shadow_t *shadow = NULL;

    if (ctr__config_parse(&cfg, argc, argv, err, sizeof err)) {
        ctr__log(CTR_LOG_ERROR, "bad configuration", CTR_LOG_S("error", err), CTR_LOG_END);
        fprintf(stderr, "ctrd: %s (ctrd --help lists the flags)\n", err);
        return 2;
    }
    if (cfg.show_help) {
        ctr__config_usage(stdout);
        return 0;
    }
    if (cfg.show_version) {
        printf("ctrd %s\n", CTR__SERVER_VERSION);
        return 0;
    }
    if (cfg.check_url)
        return ctr__check_url(cfg.check_url, 5000);
    ctr__log_set_level(cfg.log_level);

    if (install_signals()) {
        ctr__log(CTR_LOG_ERROR, "cannot install signal handlers", CTR_LOG_S("error", strerror(errno)), CTR_LOG_END);
        return 1;
    }

    ctr__config_json(&cfg, cfgjson, sizeof cfgjson);
    ctr__log(CTR_LOG_INFO, "starting", CTR_LOG_S("version", CTR__SERVER_VERSION),
             CTR_LOG_I("pid", getpid()), CTR_LOG_RAW("config", cfgjson), CTR_LOG_END);

    const ctr_kernel_t *kernel = ctr_kernel_select(cfg.kernel, err, sizeof err);
    if (!kernel) {
        ctr__log(CTR_LOG_ERROR, "kernel unavailable", CTR_LOG_S("kernel", ctr__config_enum_name("kernel", (int)cfg.kernel)),
                 CTR_LOG_S("error", err), CTR_LOG_END);
        goto out;
    }
    ctr__log(kernel->bit_exact ? CTR_LOG_INFO : CTR_LOG_WARN,
             kernel->bit_exact ? "kernel selected" : "kernel selected: NOT bit-exact, scores depend on batch composition",
             CTR_LOG_S("kernel", kernel->name), CTR_LOG_B("bit_exact", kernel->bit_exact), CTR_LOG_END);

    uint64_t t0 = ctr__mono_ns();
    if ((rc = ctr__registry_open(cfg.models, cfg.n_models, kernel, &models, err, sizeof err))) {
        ctr__log(CTR_LOG_ERROR, "cannot load the model", CTR_LOG_S("error", err),
                 CTR_LOG_S("code", ctr_strerror(rc)), CTR_LOG_END);
        fprintf(stderr, "ctrd: %s\n", err);
        goto out;
    }
    /* A shadow candidate that did not load is not served (n_models may be
     * one less than the flags name). */
    size_t n_models = ctr__registry_count(models);
    ctr__modelstore_t *sh_primary = NULL, *sh_cand = NULL;
    if (cfg.shadow && resolve_shadow(&cfg, models, &sh_primary, &sh_cand)) {
        exit_code = 2;
        goto out;
    }
    /* Each model's first generation, held until the batcher has shaped its
     * buffers for them. */
    const ctr__gen_t *first[CTR__MODELS_MAX] = {0};
    for (size_t i = 0; i < n_models; i++) {
        ctr__gen_t *g = ctr__modelstore_acquire(ctr__registry_at(models, i));
        first[i] = g;
        ctr__log(CTR_LOG_INFO, "model loaded", CTR_LOG_S("model", g->name), CTR_LOG_B("default", i == 0),
                 CTR_LOG_S("path", ctr_model_path(g->model)), CTR_LOG_S("name", g->def->name),
                 CTR_LOG_S("digest", g->digest), CTR_LOG_U("dense", g->def->n_dense),
                 CTR_LOG_U("categorical", g->def->n_cat), CTR_LOG_U("layers", g->def->n_layers),
                 CTR_LOG_S("table_advice", ctr_model_table_advice(g->model)),
                 CTR_LOG_D("seconds", (double)(ctr__mono_ns() - t0) / 1e9), CTR_LOG_END);
    }

    ctr__audit_config_t acfg = {
        .enabled = !cfg.no_audit,
        .dir = cfg.audit_dir,
        .durability = cfg.audit_durability,
        .segment_bytes = cfg.audit_segment_bytes,
        .on_error_fail = cfg.audit_on_error_fail,
    };
    if ((rc = ctr__audit_open(&acfg, &audit, err, sizeof err))) {
        for (size_t i = 0; i < n_models; i++)
            ctr__gen_release((ctr__gen_t *)first[i]);
        ctr__log(CTR_LOG_ERROR, "cannot open the audit log", CTR_LOG_S("error", err), CTR_LOG_END);
        goto out;
    }
    ctr__log(CTR_LOG_INFO, "audit", CTR_LOG_S("state", ctr__audit_describe(audit)), CTR_LOG_END);

    long cores = ctr__config_cores();
    ctr__batcher_config_t bcfg = {
        .threads = cfg.threads ? (size_t)cfg.threads : (size_t)(cores > 0 ? cores : 1),
        .max_batch = (size_t)cfg.max_batch,
        .max_delay_ns = cfg.max_delay_us * 1000u,
        .queue_limit = (size_t)cfg.queue_limit,
        .n_models = n_models,
        .inline_max = (size_t)cfg.inline_max_examples,
        .kernel = kernel,
        .audit = audit,
        .prealloc = first,
    };
    rc = ctr__batcher_start(&bcfg, &batcher, err, sizeof err);
    for (size_t i = 0; i < n_models; i++)
        ctr__gen_release((ctr__gen_t *)first[i]);
    if (rc) {
        ctr__log(CTR_LOG_ERROR, "cannot start the batcher", CTR_LOG_S("error", err), CTR_LOG_END);
        goto out;
    }
    if (sh_primary) {
        ctr__audit_stats_t ast;
        ctr__audit_stats(audit, &ast);
        ctr__shadow_config_t scfg = {
            .primary = sh_primary,
            .candidate = sh_cand,
            .primary_name = cfg.shadow_primary,
            .candidate_name = cfg.shadow_candidate,
            .sample = cfg.shadow_sample,
            .threshold = cfg.shadow_threshold,
            .queue_limit = (size_t)cfg.shadow_queue_limit,
            .max_batch = (size_t)cfg.max_batch,
            .kernel = kernel,
            .audit = audit,
            .audit_enabled = ast.enabled,
        };
        if ((rc = ctr__shadow_start(&scfg, &shadow, err, sizeof err))) {
            ctr__log(CTR_LOG_ERROR, "cannot start the shadow", CTR_LOG_S("error", err), CTR_LOG_END);
            goto out;
        }
        ctr__log(CTR_LOG_INFO, "shadow", CTR_LOG_S("primary", cfg.shadow_primary),
                 CTR_LOG_S("candidate", cfg.shadow_candidate), CTR_LOG_B("active", sh_cand != NULL),
                 CTR_LOG_D("sample", cfg.shadow_sample), CTR_LOG_D("threshold", cfg.shadow_threshold),
                 CTR_LOG_U("queue_limit", cfg.shadow_queue_limit), CTR_LOG_END);
    }
    ctr__http_deps_t deps = {&cfg, models, batcher, audit, kernel, shadow};
    if ((rc = ctr__http_start(&deps, &http, err, sizeof err))) {
        ctr__log(CTR_LOG_ERROR, "cannot start the HTTP server", CTR_LOG_S("error", err), CTR_LOG_END);
        goto out;
    }
    ctr__log(CTR_LOG_INFO, "ready", CTR_LOG_U("port", ctr__http_port(http)),
             CTR_LOG_U("models", n_models), CTR_LOG_U("scoring_threads", bcfg.threads), CTR_LOG_U("max_batch", bcfg.max_batch),
             CTR_LOG_U("max_delay_us", cfg.max_delay_us), CTR_LOG_END);

    for (;;) {
        int sig = next_signal(-1);
        if (!sig)
            continue;
        if (sig == SIGHUP) {
            /* Every model, each on its own store thread: one slow or
             * failing file neither delays nor affects the others. */
            ctr__log(CTR_LOG_INFO, "SIGHUP: reloading every model", CTR_LOG_U("models", n_models),
                     CTR_LOG_END);
            for (size_t i = 0; i < n_models; i++)
                if (ctr__modelstore_reload_async(ctr__registry_at(models, i), NULL, NULL, NULL))
                    ctr__log(CTR_LOG_ERROR, "cannot queue the reload",
                             CTR_LOG_S("model", ctr__modelstore_name(ctr__registry_at(models, i))),
                             CTR_LOG_END);
            continue;
        }
        ctr__log(CTR_LOG_INFO, "draining", CTR_LOG_S("signal", sig == SIGINT ? "SIGINT" : "SIGTERM"),
                 CTR_LOG_U("in_flight", ctr__http_in_flight(http)),
                 CTR_LOG_U("drain_timeout_s", cfg.drain_timeout_s), CTR_LOG_END);
        break;
    }

    /* Drain: readiness off, no new connections, batches close at once;
     * wait for what is in flight, then score anything left and answer
     * queued reloads, so no connection is suspended when the HTTP server
     * stops. */
    uint64_t t_drain = ctr__mono_ns();
    uint64_t deadline = t_drain + cfg.drain_timeout_s * 1000000000u;
    ctr__http_drain(http);
    ctr__batcher_drain(batcher);
    int cut = wait_idle(http, deadline);
    size_t left = ctr__http_in_flight(http);
    ctr__registry_stop_reloads(models);
    ctr__batcher_stop(batcher);
    batcher = NULL;
    if ((rc = ctr__audit_flush(audit, 5000000000u, err, sizeof err)))
        ctr__log(CTR_LOG_ERROR, "audit flush failed", CTR_LOG_S("error", err), CTR_LOG_END);
    /* Responses released just now still need their resumed call. */
    if (!cut)
        wait_idle(http, ctr__mono_ns() + 250000000u);
    if (left)
        ctr__log(CTR_LOG_WARN, "drain timeout: closing requests still in flight",
                 CTR_LOG_U("requests", left), CTR_LOG_END);
    ctr__http_stop(http);
    http = NULL;
    /* No request can reach the shadow any more: drop what it still
     * queues, let a batch being scored finish, and write its records
     * before the log closes. */
    if (shadow) {
        ctr__shadow_stop(shadow);
        if ((rc = ctr__audit_flush(audit, 5000000000u, err, sizeof err)))
            ctr__log(CTR_LOG_ERROR, "audit flush failed (shadow records)", CTR_LOG_S("error", err), CTR_LOG_END);
    }
    ctr__log(CTR_LOG_INFO, "stopped", CTR_LOG_D("drain_seconds", (double)(ctr__mono_ns() - t_drain) / 1e9),
             CTR_LOG_END);
    exit_code = 0;
out:
    ctr__http_stop(http);
    ctr__batcher_stop(batcher);
    ctr__shadow_stop(shadow);
    if (audit)
        ctr__audit_close(audit);
    ctr__shadow_free(shadow);
    ctr__registry_close(models);
    return exit_code;
}
