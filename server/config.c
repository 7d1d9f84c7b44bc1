/* config.c - flags, their environment twins and defaults (see config.h). */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "ctr/common.h"
#include "ctr/kernels.h"
#include "log.h"

enum opt_type { OPT_STR, OPT_UINT, OPT_BYTES, OPT_BOOL };

typedef struct {
    const char *flag;       /* without the leading "--" */
    const char *env;        /* NULL: no twin */
    enum opt_type type;
    size_t off;
    const char *def;        /* default as text, NULL: unset */
    uint64_t min, max;      /* for OPT_UINT / OPT_BYTES */
    const char *arg;        /* metavariable in the help text */
    const char *help;
} opt_t;

#define OFF(f) offsetof(ctr__config_t, f)
#define U64MAX UINT64_MAX

static const opt_t opts[] = {
    {"model", "CTRD_MODEL", OPT_STR, OFF(model), NULL, 0, 0, "PATH", "model file (.ctrm) to serve"},
    {"host", "CTRD_HOST", OPT_STR, OFF(host), "0.0.0.0", 0, 0, "ADDR", "address to listen on (IPv4 or IPv6 literal)"},
    {"port", "CTRD_PORT", OPT_UINT, OFF(port), "8080", 0, 65535, "N", "TCP port; 0 picks a free one (logged)"},
    {"threads", "CTRD_THREADS", OPT_UINT, OFF(threads), "0", 0, 1024, "N", "scoring threads; 0 = online cores"},
    {"http-threads", "CTRD_HTTP_THREADS", OPT_UINT, OFF(http_threads), "0", 0, 256, "N", "HTTP (libmicrohttpd) threads; 0 = max(2, cores)"},
    {"max-batch", "CTRD_MAX_BATCH", OPT_UINT, OFF(max_batch), "256", 1, 65536, "N", "most examples scored in one batch"},
    {"max-delay-us", "CTRD_MAX_DELAY_US", OPT_UINT, OFF(max_delay_us), "200", 0, 10000000, "US", "longest wait for a batch to fill, from its first example"},
    {"queue-limit", "CTRD_QUEUE_LIMIT", OPT_UINT, OFF(queue_limit), "8192", 1, 100000000, "N", "queued examples beyond which requests get 503"},
    {"max-body-bytes", "CTRD_MAX_BODY_BYTES", OPT_BYTES, OFF(max_body_bytes), "1048576", 64, (uint64_t)1 << 32, "N", "largest request body; more gets 413"},
    {"max-examples", "CTRD_MAX_EXAMPLES", OPT_UINT, OFF(max_examples), "1024", 1, 1000000, "N", "most examples per request; more gets 413"},
    {"max-connections", "CTRD_MAX_CONNECTIONS", OPT_UINT, OFF(max_connections), "1024", 1, 1000000, "N", "concurrent connections"},
    {"conn-timeout-s", "CTRD_CONN_TIMEOUT_S", OPT_UINT, OFF(conn_timeout_s), "30", 0, 86400, "S", "close a connection idle this long; 0 = never"},
    {"drain-timeout-s", "CTRD_DRAIN_TIMEOUT_S", OPT_UINT, OFF(drain_timeout_s), "25", 0, 3600, "S", "on SIGTERM, longest wait for in-flight requests"},
    {"audit-dir", "CTRD_AUDIT_DIR", OPT_STR, OFF(audit_dir), NULL, 0, 0, "DIR", "audit log directory"},
    {"no-audit", "CTRD_NO_AUDIT", OPT_BOOL, OFF(no_audit), "0", 0, 0, NULL, "do not write an audit log"},
    {"audit-durability", "CTRD_AUDIT_DURABILITY", OPT_STR, OFF(audit_durability), "write", 0, 0, "MODE", "async|write|fsync"},
    {"audit-segment-bytes", "CTRD_AUDIT_SEGMENT_BYTES", OPT_BYTES, OFF(audit_segment_bytes), "268435456", 4096, (uint64_t)1 << 40, "N", "audit segment size before rotation"},
    {"audit-on-error", "CTRD_AUDIT_ON_ERROR", OPT_STR, OFF(audit_on_error), "fail", 0, 0, "MODE", "fail|continue when a record cannot be written"},
    {"admin-token", "CTRD_ADMIN_TOKEN", OPT_STR, OFF(admin_token), NULL, 0, 0, "TOKEN", "bearer token for /v1/admin/*; unset = admin endpoints off"},
    {"tls-cert", "CTRD_TLS_CERT", OPT_STR, OFF(tls_cert), NULL, 0, 0, "FILE", "PEM certificate: serve HTTPS"},
    {"tls-key", "CTRD_TLS_KEY", OPT_STR, OFF(tls_key), NULL, 0, 0, "FILE", "PEM private key for --tls-cert"},
    {"kernel", "CTRD_KERNEL", OPT_STR, OFF(kernel), "auto", 0, 0, "NAME", "auto|scalar|avx2|avx512|blas (blas is not bit-exact)"},
    {"log-level", "CTRD_LOG_LEVEL", OPT_STR, OFF(log_level), "info", 0, 0, "LEVEL", "debug|info|warn|error"},
    {"check", NULL, OPT_STR, OFF(check_url), NULL, 0, 0, "URL", "probe mode: exit 0 if URL answers 200, else 1"},
};

/* Decimal, optionally with a k/m/g (x1024) suffix for byte counts. */
static int parse_uint(const char *s, int bytes, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    if (bytes && *end) {
        unsigned shift = 0;
        switch (*end) {
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        default: return -1;
        }
        end++;
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'b' || *end == 'B')
            end++;
        if (v > (UINT64_MAX >> shift))
            return -1;
        v <<= shift;
    }
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    if (!strcmp(s, "") || !strcmp(s, "0") || !strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off"))
        *out = 0;
    else if (!strcmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on"))
        *out = 1;
    else
        return -1;
    return 0;
}

/* Sets one option from text; `from` names the source for messages. */
static int set_opt(ctr__config_t *cfg, const opt_t *o, const char *val,
                   const char *from, char *err, size_t errlen)
{
    char *base = (char *)cfg + o->off;
    switch (o->type) {
    case OPT_STR:
        *(const char **)base = val;
        return 0;
    case OPT_BOOL:
        if (parse_bool(val, (int *)base))
            return ctr_error(err, errlen, CTR_EINVAL, "%s: expected true/false or 1/0, got \"%s\"", from, val);
        return 0;
    case OPT_UINT:
    case OPT_BYTES: {
        uint64_t v;
        if (parse_uint(val, o->type == OPT_BYTES, &v))
            return ctr_error(err, errlen, CTR_EINVAL, "%s: expected a non-negative integer%s, got \"%s\"",
                             from, o->type == OPT_BYTES ? " (k/m/g suffix allowed)" : "", val);
        if (v < o->min || v > o->max)
            return ctr_error(err, errlen, CTR_EINVAL, "%s: %llu is outside %llu..%llu", from,
                             (unsigned long long)v, (unsigned long long)o->min, (unsigned long long)o->max);
        *(uint64_t *)base = v;
        return 0;
    }
    }
    return CTR_EINVAL;
}

static int check_enum(const char *what, const char *v, const char *const *allowed,
                      char *err, size_t errlen)
{
    for (size_t i = 0; allowed[i]; i++)
        if (!strcmp(v, allowed[i]))
            return 0;
    return ctr_error(err, errlen, CTR_EINVAL, "--%s: unknown value \"%s\"", what, v);
}

int ctr__config_parse(ctr__config_t *cfg, int argc, char **argv, char *err, size_t errlen)
{
    int rc, audit_dir_flag = 0, no_audit_flag = 0;
    char from[96];
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < CTR_ARRAY_LEN(opts); i++)
        if (opts[i].def && (rc = set_opt(cfg, &opts[i], opts[i].def, opts[i].flag, err, errlen)))
            return rc;
    for (size_t i = 0; i < CTR_ARRAY_LEN(opts); i++) {
        const char *v = opts[i].env ? getenv(opts[i].env) : NULL;
        if (!v)
            continue;
        snprintf(from, sizeof from, "environment variable %s", opts[i].env);
        if ((rc = set_opt(cfg, &opts[i], v, from, err, errlen)))
            return rc;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            cfg->show_help = 1;
            continue;
        }
        if (!strcmp(arg, "--version")) {
            cfg->show_version = 1;
            continue;
        }
        if (strncmp(arg, "--", 2))
            return ctr_error(err, errlen, CTR_EINVAL, "unexpected argument \"%s\" (flags start with --)", arg);
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const opt_t *o = NULL;
        for (size_t i = 0; i < CTR_ARRAY_LEN(opts); i++)
            if (strlen(opts[i].flag) == nlen && !strncmp(opts[i].flag, name, nlen))
                o = &opts[i];
        if (!o)
            return ctr_error(err, errlen, CTR_EINVAL, "unknown flag \"%.*s\" (ctrd --help lists them)", (int)nlen + 2, arg);
        const char *val;
        if (o->type == OPT_BOOL && !eq) {
            val = "1";
        } else if (eq) {
            val = eq + 1;
        } else {
            if (a + 1 >= argc)
                return ctr_error(err, errlen, CTR_EINVAL, "--%s needs a value (%s)", o->flag, o->arg);
            val = argv[++a];
        }
        snprintf(from, sizeof from, "--%s", o->flag);
        if ((rc = set_opt(cfg, o, val, from, err, errlen)))
            return rc;
        audit_dir_flag |= !strcmp(o->flag, "audit-dir");
        no_audit_flag |= !strcmp(o->flag, "no-audit");
    }
    /* --audit-dir and --no-audit exclude each other; a flag beats the
     * other one's environment twin (an image sets CTRD_AUDIT_DIR, and
     * `ctrd --no-audit` must still work there). */
    if (audit_dir_flag && no_audit_flag)
        return ctr_error(err, errlen, CTR_EINVAL, "--audit-dir and --no-audit exclude each other");
    if (no_audit_flag && cfg->no_audit)
        cfg->audit_dir = NULL;
    else if (audit_dir_flag)
        cfg->no_audit = 0;
    if (cfg->show_help || cfg->show_version || cfg->check_url)
        return 0;

    static const char *const durab[] = {"async", "write", "fsync", NULL};
    static const char *const onerr[] = {"fail", "continue", NULL};
    if ((rc = check_enum("audit-durability", cfg->audit_durability, durab, err, errlen)) ||
        (rc = check_enum("audit-on-error", cfg->audit_on_error, onerr, err, errlen)))
        return rc;
    if (ctr_kernel_parse(cfg->kernel) < 0)
        return ctr_error(err, errlen, CTR_EINVAL, "--kernel: unknown kernel \"%s\" (auto, scalar, avx2, avx512, blas)", cfg->kernel);
    if (ctr__log_parse_level(cfg->log_level) < 0)
        return ctr_error(err, errlen, CTR_EINVAL, "--log-level: unknown level \"%s\" (debug, info, warn, error)", cfg->log_level);
    if (!cfg->model || !*cfg->model)
        return ctr_error(err, errlen, CTR_EINVAL, "no model: pass --model PATH or set CTRD_MODEL");
    if (!!cfg->tls_cert != !!cfg->tls_key)
        return ctr_error(err, errlen, CTR_EINVAL, "--tls-cert and --tls-key go together");
    if (cfg->audit_dir && cfg->no_audit)
        return ctr_error(err, errlen, CTR_EINVAL, "CTRD_AUDIT_DIR and CTRD_NO_AUDIT exclude each other");
    if (cfg->admin_token && !*cfg->admin_token)
        cfg->admin_token = NULL;
    if (cfg->admin_token && strlen(cfg->admin_token) < 16)
        ctr__log(CTR_LOG_WARN, "the admin token is shorter than 16 characters", CTR_LOG_END);
    return 0;
}

void ctr__config_usage(FILE *f)
{
    fprintf(f, "usage: ctrd --model PATH [flags]    serve a model over HTTP\n"
               "       ctrd --check URL             exit 0 if URL answers 200\n\n"
               "Every flag also reads its environment variable; flags win.\n\n");
    for (size_t i = 0; i < CTR_ARRAY_LEN(opts); i++) {
        const opt_t *o = &opts[i];
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->flag, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(f, "  %-30s %-26s %s", left, o->env ? o->env : "", o->help);
        if (o->def && o->type != OPT_BOOL)
            fprintf(f, " [%s]", o->def);
        fputc('\n', f);
    }
}

size_t ctr__config_json(const ctr__config_t *cfg, char *out, size_t cap)
{
    ctr__buf_t b;
    ctr__buf_init_fixed(&b, out, cap);
    ctr__buf_putc(&b, '{');
    int first = 1;
    for (size_t i = 0; i < CTR_ARRAY_LEN(opts); i++) {
        const opt_t *o = &opts[i];
        const char *base = (const char *)cfg + o->off;
        if (o->off == OFF(check_url))
            continue;
        if (!first)
            ctr__buf_putc(&b, ',');
        first = 0;
        ctr__buf_json_str(&b, o->flag, strlen(o->flag));
        ctr__buf_putc(&b, ':');
        switch (o->type) {
        case OPT_STR: {
            const char *v = *(const char *const *)base;
            if (o->off == OFF(admin_token))
                ctr__buf_puts(&b, v ? "\"(set)\"" : "null");
            else if (v)
                ctr__buf_json_str(&b, v, strlen(v));
            else
                ctr__buf_puts(&b, "null");
            break;
        }
        case OPT_BOOL: ctr__buf_puts(&b, *(const int *)base ? "true" : "false"); break;
        default: ctr__buf_printf(&b, "%llu", (unsigned long long)*(const uint64_t *)base);
        }
    }
    ctr__buf_putc(&b, '}');
    return b.len;
}
