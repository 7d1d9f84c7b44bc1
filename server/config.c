/* config.c - ctrd's flags, their environment twins and defaults (see
 * config.h): one ctr/opts.h table, and the rules that tie flags together. */
#include "config.h"

#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctr/common.h"
#include "ctr/kernels.h"
#include "ctr/opts.h"
#include "log.h"

static const ctr_opt_enum_t durabilities[] = {
    {"async", CTR__AUDIT_ASYNC}, {"write", CTR__AUDIT_WRITE}, {"fsync", CTR__AUDIT_FSYNC}, {NULL, 0}};
static const ctr_opt_enum_t on_error[] = {{"fail", 1}, {"continue", 0}, {NULL, 0}};
/* Any case, and "warning" for warn, as log levels have always been read. */
static const ctr_opt_enum_t levels[] = {
    {"debug", CTR_LOG_DEBUG}, {"info", CTR_LOG_INFO}, {"warn", CTR_LOG_WARN},
    {"error", CTR_LOG_ERROR}, {"warning", CTR_LOG_WARN}, {NULL, 0}};

#define AT(f) CTR_OPT_AT(ctr__config_t, f)
#define U CTR_OPT_UINT

/* --model and CTRD_MODEL: every occurrence's text is kept as given and
 * split into models by ctr__config_parse, which knows where each came from
 * (a LIST row has no environment twin, hence a custom one). */
static int model_arg(const char *text, void *field, char *err, size_t errlen)
{
    ctr__model_args_t *a = field;
    if (a->n >= CTR_ARRAY_LEN(a->text))
        return ctr_error(err, errlen, CTR_ERANGE, "at most %d models", CTR__MODELS_MAX);
    a->text[a->n++] = text;
    return 0;
}

static const ctr_opt_t opts[] = {
    {"model", "CTRD_MODEL", CTR_OPT_CUSTOM, CTR_OPT_NO_JSON, AT(model_args), .parse = model_arg, .metavar = "[NAME=]PATH",
     .help = "model file (.ctrm) to serve as NAME (without NAME=: the name in its header);\n"
             "repeat for several models, the first is the default;\n"
             "CTRD_MODEL: the same, comma-separated (a=/m/a.ctrm,b=/m/b.ctrm)"},
    {"host", "CTRD_HOST", CTR_OPT_STR, 0, AT(host), .def = "0.0.0.0", .metavar = "ADDR", .help = "address to listen on (IPv4 or IPv6 literal)"},
    {"port", "CTRD_PORT", U, 0, AT(port), .def = "8080", .min = 0, .max = 65535, .metavar = "N", .help = "TCP port; 0 picks a free one (logged)"},
    {"threads", "CTRD_THREADS", U, 0, AT(threads), .def = "0", .min = 0, .max = 1024, .metavar = "N", .help = "scoring threads; 0 = online cores"},
    {"http-threads", "CTRD_HTTP_THREADS", U, 0, AT(http_threads), .def = "0", .min = 0, .max = 256, .metavar = "N", .help = "HTTP (libmicrohttpd) threads; 0 = max(2, cores)"},
    {"max-batch", "CTRD_MAX_BATCH", U, 0, AT(max_batch), .def = "256", .min = 1, .max = 65536, .metavar = "N", .help = "most examples scored in one batch"},
    {"max-delay-us", "CTRD_MAX_DELAY_US", U, 0, AT(max_delay_us), .def = "200", .min = 0, .max = 10000000, .metavar = "US", .help = "longest wait for a batch to fill, from its first example"},
    {"inline-max-examples", "CTRD_INLINE_MAX_EXAMPLES", U, 0, AT(inline_max_examples), .def = "16", .min = 0, .max = 65536, .metavar = "N", .help = "score a request of at most N examples on its HTTP thread when nothing is queued; 0 = always queue"},
    {"queue-limit", "CTRD_QUEUE_LIMIT", U, 0, AT(queue_limit), .def = "8192", .min = 1, .max = 100000000, .metavar = "N", .help = "queued examples beyond which requests get 503"},
    {"max-body-bytes", "CTRD_MAX_BODY_BYTES", CTR_OPT_BYTES, 0, AT(max_body_bytes), .def = "1048576", .min = 64, .max = (uint64_t)1 << 32, .metavar = "N", .help = "largest request body; more gets 413"},
    {"max-examples", "CTRD_MAX_EXAMPLES", U, 0, AT(max_examples), .def = "1024", .min = 1, .max = 1000000, .metavar = "N", .help = "most examples per request; more gets 413"},
    {"max-connections", "CTRD_MAX_CONNECTIONS", U, 0, AT(max_connections), .def = "1024", .min = 1, .max = 1000000, .metavar = "N", .help = "concurrent connections; at the limit a new one evicts a stalled or idle one, else gets 503"},
    {"conn-timeout-s", "CTRD_CONN_TIMEOUT_S", U, 0, AT(conn_timeout_s), .def = "30", .min = 0, .max = 86400, .metavar = "S", .help = "close a connection idle this long; 0 = never"},
    {"header-timeout-ms", "CTRD_HEADER_TIMEOUT_MS", U, 0, AT(header_timeout_ms), .def = "5000", .min = 0, .max = 3600000, .metavar = "MS", .help = "deadline for request headers from accept (or keep-alive idle), not reset by trickling; 0 = none"},
    {"body-timeout-ms", "CTRD_BODY_TIMEOUT_MS", U, 0, AT(body_timeout_ms), .def = "10000", .min = 0, .max = 3600000, .metavar = "MS", .help = "deadline for the request body from its headers; 0 = none"},
    {"drain-timeout-s", "CTRD_DRAIN_TIMEOUT_S", U, 0, AT(drain_timeout_s), .def = "25", .min = 0, .max = 3600, .metavar = "S", .help = "on SIGTERM, longest wait for in-flight requests"},
    {"audit-dir", "CTRD_AUDIT_DIR", CTR_OPT_STR, 0, AT(audit_dir), .metavar = "DIR", .help = "audit log directory"},
    {"no-audit", "CTRD_NO_AUDIT", CTR_OPT_BOOL, 0, AT(no_audit), .def = "0", .help = "do not write an audit log"},
    {"audit-durability", "CTRD_AUDIT_DURABILITY", CTR_OPT_ENUM, 0, AT(audit_durability), .def = "write", .enums = durabilities, .metavar = "MODE", .help = "async|write|fsync"},
    {"audit-segment-bytes", "CTRD_AUDIT_SEGMENT_BYTES", CTR_OPT_BYTES, 0, AT(audit_segment_bytes), .def = "268435456", .min = 4096, .max = (uint64_t)1 << 40, .metavar = "N", .help = "audit segment size before rotation"},
    {"audit-on-error", "CTRD_AUDIT_ON_ERROR", CTR_OPT_ENUM, 0, AT(audit_on_error_fail), .def = "fail", .enums = on_error, .metavar = "MODE", .help = "fail|continue when a record cannot be written"},
    {"admin-token", "CTRD_ADMIN_TOKEN", CTR_OPT_STR, CTR_OPT_SECRET, AT(admin_token), .metavar = "TOKEN", .help = "bearer token for /v1/admin/*; unset = admin endpoints off"},
    {"tls-cert", "CTRD_TLS_CERT", CTR_OPT_STR, 0, AT(tls_cert), .metavar = "FILE", .help = "PEM certificate: serve HTTPS"},
    {"tls-key", "CTRD_TLS_KEY", CTR_OPT_STR, 0, AT(tls_key), .metavar = "FILE", .help = "PEM private key for --tls-cert"},
    {"kernel", "CTRD_KERNEL", CTR_OPT_ENUM, 0, AT(kernel), .def = "auto", .enums = ctr_kernel_choices, .metavar = "NAME", .help = "auto|scalar|avx2|avx512|blas (blas is not bit-exact)"},
    {"log-level", "CTRD_LOG_LEVEL", CTR_OPT_ENUM, CTR_OPT_ICASE, AT(log_level), .def = "info", .enums = levels, .metavar = "LEVEL", .help = "debug|info|warn|error"},
    {"shadow", "CTRD_SHADOW", CTR_OPT_STR, 0, AT(shadow), .metavar = "CANDIDATE:PRIMARY",
     .help = "also score a sample of PRIMARY's requests with CANDIDATE, after PRIMARY's response\n"
             "went out, and compare them (/metrics ctrd_shadow_*, type-2 audit records); both\n"
             "are --model names; a CANDIDATE that does not load leaves the shadow off"},
    {"shadow-sample", "CTRD_SHADOW_SAMPLE", CTR_OPT_DOUBLE, 0, AT(shadow_sample), .def = "1", .dmin = 0, .dmax = 1, .metavar = "F",
     .help = "fraction of PRIMARY's requests shadowed, 0..1, picked by a hash of the request id (else of the body)"},
    {"shadow-threshold", "CTRD_SHADOW_THRESHOLD", CTR_OPT_DOUBLE, 0, AT(shadow_threshold), .def = "0.5", .metavar = "T",
     .help = "decision threshold of the shadow's flip count, 0 < T < 1: a flip is (primary >= T) != (candidate >= T)"},
    {"shadow-queue-limit", "CTRD_SHADOW_QUEUE_LIMIT", U, 0, AT(shadow_queue_limit), .def = "8192", .min = 1, .max = 100000000, .metavar = "N",
     .help = "examples waiting for the shadow candidate beyond which sampled requests are dropped (counted)"},
    {"check", NULL, CTR_OPT_STR, CTR_OPT_NO_JSON, AT(check_url), .metavar = "URL", .help = "probe mode: exit 0 if URL answers 200, else 1"},
    {"version", NULL, CTR_OPT_BOOL, CTR_OPT_NO_JSON, AT(show_version), .help = "print the version and exit"},
};

static const ctr_opts_t spec = {
    opts, CTR_ARRAY_LEN(opts),
    "usage: ctrd --model [NAME=]PATH ... [flags]   serve models over HTTP\n"
    "       ctrd --check URL                              exit 0 if URL answers 200\n\n"
    "Every flag also reads its environment variable; flags win.\n\n",
    NULL,
};

/* One model's text, "NAME=PATH" or "PATH" (len bytes), into cfg->models.
 * It is NAME=PATH when it has a '=' with a NAME before it holding no '/'
 * (so "./a=b.ctrm" and "/m/x=1.ctrm" are paths). The text must stay put:
 * the spec points into it, NUL-terminated by the caller. */
static int add_model(ctr__config_t *cfg, char *text, const char *from, char *err, size_t errlen)
{
    char why[256];
    if (cfg->n_models >= CTR__MODELS_MAX)
        return ctr_error(err, errlen, CTR_ERANGE, "%s: more than %d models", from, CTR__MODELS_MAX);
    ctr__model_spec_t *m = &cfg->models[cfg->n_models];
    char *eq = strchr(text, '=');
    m->name = NULL;
    m->path = text;
    if (eq && !memchr(text, '/', (size_t)(eq - text))) {
        if (ctr__registry_name_check(text, (size_t)(eq - text), why, sizeof why))
            return ctr_error(err, errlen, CTR_EINVAL, "%s \"%s\": %s", from, text, why);
        *eq = '\0';
        m->name = text;
        m->path = eq + 1;
    }
    if (!*m->path)
        return ctr_error(err, errlen, CTR_EINVAL, "%s: model %s has no path (NAME=PATH or PATH)", from,
                         m->name ? m->name : "");
    for (size_t i = 0; m->name && i < cfg->n_models; i++)
        if (cfg->models[i].name && !strcmp(cfg->models[i].name, m->name))
            return ctr_error(err, errlen, CTR_EINVAL, "%s: two models named \"%s\" (%s and %s)", from,
                             m->name, cfg->models[i].path, m->path);
    cfg->n_models++;
    return 0;
}

/* --model flags (each one model) or else CTRD_MODEL (comma-separated),
 * copied to cfg->model_text_buf so that they can be cut in place. */
static int collect_models(ctr__config_t *cfg, const ctr_opts_result_t *res, char *err, size_t errlen)
{
    const ctr__model_args_t *a = &cfg->model_args;
    ctr_opt_from_t from = ctr_opts_from(res, "model");
    int rc;
    char *w = cfg->model_text_buf, *end = w + sizeof cfg->model_text_buf;
    if (from == CTR_OPT_FROM_ENV) {
        size_t len = strlen(a->text[0]);
        if (len >= sizeof cfg->model_text_buf)
            return ctr_error(err, errlen, CTR_ERANGE, "CTRD_MODEL is %zu bytes long, at most %zu", len,
                             sizeof cfg->model_text_buf - 1);
        memcpy(w, a->text[0], len + 1);
        for (char *p = w, *next; p; p = next) {
            next = strchr(p, ',');
            if (next)
                *next++ = '\0';
            if (!*p)
                continue;           /* "a=x.ctrm," and ",," name nothing */
            if ((rc = add_model(cfg, p, "CTRD_MODEL", err, errlen)))
                return rc;
        }
        return 0;
    }
    if (from != CTR_OPT_FROM_FLAG)
        return 0;
    /* The environment's text came first; a --model flag drops it. */
    size_t first = getenv("CTRD_MODEL") ? 1 : 0;
    for (size_t i = first; i < a->n; i++) {
        size_t len = strlen(a->text[i]);
        if (len + 1 > (size_t)(end - w))
            return ctr_error(err, errlen, CTR_ERANGE, "--model: the models' texts pass %zu bytes",
                             sizeof cfg->model_text_buf);
        memcpy(w, a->text[i], len + 1);
        if ((rc = add_model(cfg, w, "--model", err, errlen)))
            return rc;
        w += len + 1;
    }
    return 0;
}

/* --shadow's text cut at its ':' into the two names. Names may hold ':'
 * themselves: with several, the one cut whose halves are both --model
 * NAMEs. The candidate's spec becomes optional (registry.h): its failing
 * load must not stop the primary. Whether a name given by a file's header
 * exists is known only after loading (main.c). */
static int parse_shadow(ctr__config_t *cfg, const ctr_opts_result_t *res, char *err, size_t errlen)
{
    const char *from = ctr_opts_from(res, "shadow") == CTR_OPT_FROM_ENV ? "CTRD_SHADOW" : "--shadow";
    const char *t = cfg->shadow, *cut = NULL;
    char why[256];
    size_t colons = 0;
    for (const char *p = t; *p; p++)
        colons += *p == ':';
    for (const char *p = strchr(t, ':'); p && !cut; p = strchr(p + 1, ':')) {
        if (colons == 1) {
            cut = p;
            break;
        }
        int named = 0;
        for (size_t i = 0; i < cfg->n_models; i++) {
            const char *nm = cfg->models[i].name;
            if (nm && strlen(nm) == (size_t)(p - t) && !memcmp(nm, t, (size_t)(p - t)))
                named |= 1;
            if (nm && !strcmp(nm, p + 1))
                named |= 2;
        }
        if (named == 3)
            cut = p;
    }
    if (!cut)
        return ctr_error(err, errlen, CTR_EINVAL, "%s \"%s\": expected CANDIDATE:PRIMARY, two --model names",
                         from, t);
    size_t cl = (size_t)(cut - t), pl = strlen(cut + 1);
    if (ctr__registry_name_check(t, cl, why, sizeof why) || ctr__registry_name_check(cut + 1, pl, why, sizeof why))
        return ctr_error(err, errlen, CTR_EINVAL, "%s \"%s\": %s", from, t, why);
    memcpy(cfg->shadow_candidate, t, cl);
    cfg->shadow_candidate[cl] = '\0';
    memcpy(cfg->shadow_primary, cut + 1, pl + 1);
    if (!strcmp(cfg->shadow_candidate, cfg->shadow_primary))
        return ctr_error(err, errlen, CTR_EINVAL, "%s \"%s\": the candidate and the primary are one model", from, t);
    int bare = 0, cand = 0, prim = 0;
    for (size_t i = 0; i < cfg->n_models; i++) {
        const char *nm = cfg->models[i].name;
        bare |= !nm;
        if (nm && !strcmp(nm, cfg->shadow_candidate)) {
            cfg->models[i].optional = 1;
            cand = 1;
        }
        prim |= nm && !strcmp(nm, cfg->shadow_primary);
    }
    /* Without a bare --model PATH every name is known now. */
    if (!bare && (!cand || !prim))
        return ctr_error(err, errlen, CTR_EINVAL, "%s \"%s\": no --model is named \"%s\"", from, t,
                         !cand ? cfg->shadow_candidate : cfg->shadow_primary);
    return 0;
}

int ctr__config_parse(ctr__config_t *cfg, int argc, char **argv, char *err, size_t errlen)
{
    ctr_opts_result_t res;
    memset(cfg, 0, sizeof *cfg);
    int rc = ctr_opts_parse(&spec, cfg, argc, argv, &res, err, errlen);
    if (rc)
        return rc;
    if ((cfg->show_help = res.help))
        return 0;
    /* --audit-dir and --no-audit exclude each other; a flag beats the
     * other one's environment twin (an image sets CTRD_AUDIT_DIR, and
     * `ctrd --no-audit` must still work there). */
    int audit_dir_flag = ctr_opts_from(&res, "audit-dir") == CTR_OPT_FROM_FLAG;
    int no_audit_flag = ctr_opts_from(&res, "no-audit") == CTR_OPT_FROM_FLAG;
    if (audit_dir_flag && no_audit_flag)
        return ctr_error(err, errlen, CTR_EINVAL, "--audit-dir and --no-audit exclude each other");
    if (no_audit_flag && cfg->no_audit)
        cfg->audit_dir = NULL;
    else if (audit_dir_flag)
        cfg->no_audit = 0;
    if (cfg->show_version || cfg->check_url)
        return 0;

    if ((rc = collect_models(cfg, &res, err, errlen)))
        return rc;
    if (!cfg->n_models)
        return ctr_error(err, errlen, CTR_EINVAL, "no model: pass --model [NAME=]PATH or set CTRD_MODEL");
    if (!!cfg->tls_cert != !!cfg->tls_key)
        return ctr_error(err, errlen, CTR_EINVAL, "--tls-cert and --tls-key go together");
    if (cfg->audit_dir && cfg->no_audit)
        return ctr_error(err, errlen, CTR_EINVAL, "CTRD_AUDIT_DIR and CTRD_NO_AUDIT exclude each other");
    /* Both ends open, which the table's inclusive bounds cannot say: 0 and
     * 1 would make every score (or none) pass, so no flip could show. */
    if (!(cfg->shadow_threshold > 0 && cfg->shadow_threshold < 1))
        return ctr_error(err, errlen, CTR_ERANGE, "%s %g: must be above 0 and below 1",
                         ctr_opts_from(&res, "shadow-threshold") == CTR_OPT_FROM_ENV ? "CTRD_SHADOW_THRESHOLD"
                                                                                    : "--shadow-threshold",
                         cfg->shadow_threshold);
    if (cfg->shadow && !*cfg->shadow)
        cfg->shadow = NULL;
    if (cfg->shadow && (rc = parse_shadow(cfg, &res, err, errlen)))
        return rc;
    if (cfg->admin_token && !*cfg->admin_token)
        cfg->admin_token = NULL;
    if (cfg->admin_token && strlen(cfg->admin_token) < 16)
        ctr__log(CTR_LOG_WARN, "the admin token is shorter than 16 characters", CTR_LOG_END);
    return 0;
}

void ctr__config_usage(FILE *f)
{
    ctr_opts_usage(f, &spec, NULL);
}

const char *ctr__config_enum_name(const char *flag, int value)
{
    for (size_t i = 0; i < CTR_ARRAY_LEN(opts); i++) {
        if (opts[i].type == CTR_OPT_ENUM && !strcmp(opts[i].name, flag)) {
            const char *n = ctr_opts_enum_name(opts[i].enums, value);
            return n ? n : "?";
        }
    }
    return "?";
}

size_t ctr__config_json(const ctr__config_t *cfg, char *out, size_t cap)
{
    if (!cap)
        return 0;
    ctr_opts_json(&spec, cfg, out, cap);
    return strlen(out);
}

long ctr__config_cores(void)
{
    cpu_set_t set;
    if (!sched_getaffinity(0, sizeof set, &set) && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? online : 1;
}
