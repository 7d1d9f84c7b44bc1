/* config.h - ctrd's settings: command-line flags, each with an environment
 * twin (--max-batch <-> CTRD_MAX_BATCH); defaults, then the environment,
 * then flags, so flags win. One table in config.c drives the parse, the
 * help and the start-up log line (ctr/opts.h). DESIGN.md's synopsis and
 * docs/OPERATIONS.md list them. Strings point into argv/environ or static
 * defaults: they live as long as the process. The enum options arrive
 * parsed: nothing compares their text again. */
#ifndef CTR_SERVER_CONFIG_H
#define CTR_SERVER_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "audit_writer.h"
#include "ctr/common.h"
#include "ctr/kernels.h"
#include "log.h"
#include "registry.h"

#define CTR__SERVER_VERSION CTR_VERSION

/* The texts of --model (each occurrence) and CTRD_MODEL, as the parser
 * met them (the environment's first); ctr__config_parse turns them into
 * models[]. One more than the models: the environment's text. */
typedef struct {
    const char *text[CTR__MODELS_MAX + 1];
    size_t n;
} ctr__model_args_t;

/* The models' texts, cut into NAME and PATH in place, live here: CTRD_MODEL
 * split at its commas, or the --model flags' texts one after another. */
#define CTR__MODEL_TEXT_MAX 8192

typedef struct {
    /* --model [NAME=]PATH, repeatable, or CTRD_MODEL=[NAME=]PATH,... (flags
     * win: any --model flag drops the variable's models). models[0] is the
     * default model; name NULL: the file's header name. At least one. */
    ctr__model_spec_t models[CTR__MODELS_MAX];
    size_t n_models;
    ctr__model_args_t model_args; /* the raw texts (parser's) */
    char model_text_buf[CTR__MODEL_TEXT_MAX];
    const char *host;             /* --host: address to bind */
    uint64_t port;                /* --port: 0 = any free port (logged) */
    uint64_t threads;             /* --threads: scoring threads, 0 = online cores */
    uint64_t http_threads;        /* --http-threads: libmicrohttpd pool, 0 = max(2, cores) */
    uint64_t max_batch;           /* --max-batch: examples per batch */
    uint64_t max_delay_us;        /* --max-delay-us: wait from first queued example */
    uint64_t inline_max_examples; /* --inline-max-examples: inline scoring bound, 0 off */
    uint64_t queue_limit;         /* --queue-limit: queued examples before 503 */
    uint64_t max_body_bytes;      /* --max-body-bytes: larger bodies get 413 */
    uint64_t max_examples;        /* --max-examples: more examples get 413 */
    uint64_t max_connections;     /* --max-connections */
    uint64_t conn_timeout_s;      /* --conn-timeout-s: idle connection timeout */
    uint64_t header_timeout_ms;   /* --header-timeout-ms: accept -> request headers, 0 = none */
    uint64_t body_timeout_ms;     /* --body-timeout-ms: headers -> whole body, 0 = none */
    uint64_t drain_timeout_s;     /* --drain-timeout-s: SIGTERM grace period */
    const char *audit_dir;        /* --audit-dir DIR */
    int no_audit;                 /* --no-audit */
    ctr__audit_durability_t audit_durability; /* --audit-durability async|write|fsync */
    uint64_t audit_segment_bytes; /* --audit-segment-bytes */
    int audit_on_error_fail;      /* --audit-on-error fail (1) | continue (0) */
    const char *admin_token;      /* --admin-token: enables /v1/admin/reload */
    const char *tls_cert;         /* --tls-cert FILE (PEM) */
    const char *tls_key;          /* --tls-key FILE (PEM) */
    ctr_kernel_id_t kernel;       /* --kernel auto|scalar|avx2|avx512|blas */
    ctr_log_level_t log_level;    /* --log-level debug|info|warn|error */
    const char *check_url;        /* --check URL: probe mode, no server */
    /* --shadow CANDIDATE:PRIMARY (NULL: none), cut into the two names;
     * the candidate's spec (a --model NAME=PATH of that name) is marked
     * optional. */
    const char *shadow;
    char shadow_candidate[CTR__MODEL_NAME_MAX + 1], shadow_primary[CTR__MODEL_NAME_MAX + 1];
    double shadow_sample;         /* --shadow-sample: [0, 1] */
    double shadow_threshold;      /* --shadow-threshold: (0, 1) */
    uint64_t shadow_queue_limit;  /* --shadow-queue-limit: examples */
    int show_help, show_version;
} ctr__config_t;

/* Fills cfg from defaults, getenv() and argv (argv[0] is the program).
 * Returns 0, or CTR_EINVAL / CTR_ERANGE with err naming the flag or
 * variable at fault. Checks values (ranges, enums, --tls-cert without
 * --tls-key, ...), but not whether files exist. --help sets show_help
 * whatever the environment holds. */
int ctr__config_parse(ctr__config_t *cfg, int argc, char **argv,
                      char *err, size_t errlen);

/* The flag table as help text: flag, variable, meaning, default. */
void ctr__config_usage(FILE *f);

/* The name of an enum option's value ("avx2" for --kernel's
 * CTR_KERNEL_AVX2), "?" when flag or value is not in the table. */
const char *ctr__config_enum_name(const char *flag, int value);

/* One JSON object of the effective settings for the start-up log line,
 * keyed by flag name (enums by their names); the admin token is shown only
 * as set/unset. Returns the length written (truncated to cap - 1). */
size_t ctr__config_json(const ctr__config_t *cfg, char *out, size_t cap);

/* The CPUs this process may run on: its affinity mask (a container's
 * cpuset, taskset), else the online cores; at least 1. The default for
 * --threads and --http-threads. */
long ctr__config_cores(void);

#endif
