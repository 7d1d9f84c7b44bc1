/* options.c - ctrload's flags: --help, parsing, defaults and the checks
 * between flags (see options.h). */
#include "options.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"

#define DEFAULT_SYNTHETIC_BODIES 1000
#define MAX_CONNECTIONS 10000
#define MAX_SWEEP_STEPS 1000

static void usage(FILE *f)
{
    fprintf(f,
"usage: ctrload --url http://HOST:PORT (--rate R | --concurrency C | --sweep FROM:TO:STEP) [flags]\n"
"       ctrload --url http://HOST:PORT --replay LOG... [--rate R | --concurrency C]\n"
"\n"
"ctrload sends scoring requests to ctrd (or any server speaking its API) and\n"
"reports throughput, status codes, errors and latency percentiles.\n"
"\n"
"Two ways to load a server:\n"
"  --rate R            open loop: R requests/s on a fixed schedule, whatever the\n"
"                      server does. Latency is counted from when each request was\n"
"                      due (\"corrected\"), so a server stall shows in the\n"
"                      percentiles; the figure from the actual send (\"uncorrected\",\n"
"                      what closed-loop tools report) is printed beside it.\n"
"  --concurrency C     closed loop: C requests in flight, each sent when the last\n"
"                      answer came in (like wrk). Good for peak throughput; it\n"
"                      under-counts stalls (coordinated omission).\n"
"  --sweep FROM:TO:STEP --slo-p99-ms X\n"
"                      open-loop runs at rates FROM, FROM+STEP, ... TO; prints a\n"
"                      table and the highest rate whose corrected p99 <= X ms with\n"
"                      a clean verdict and errors <= --max-error-pct. Stops early\n"
"                      (unless --sweep-all) when the server answers under 90%% of\n"
"                      the offered rate, or after two misses that follow a pass.\n"
"\n"
"Timing:\n"
"  --duration D        measured time per run [10s]   (D: 500ms, 10s, 2m, 1.5)\n"
"  --warmup D          load before measuring, not counted [2s; 0 with --replay]\n"
"  --timeout D         longest wait for a connect or an answer [2s]; after\n"
"                      --duration, answers are awaited this long, so a run always\n"
"                      ends by warmup + duration + timeout\n"
"  --arrival constant|poisson   open-loop gaps: even, or exponential [constant]\n"
"  --connections N     keep-alive connections, one request in flight on each\n"
"                      [open loop: %d; closed loop: = --concurrency]. Open loop:\n"
"                      when all are busy, due requests wait (and that wait counts\n"
"                      in the corrected latency).\n"
"\n"
"Requests (all prepared before the clock starts):\n"
"  --synthetic         Criteo-shaped rows: I1..I13 integers, C1..C26 8-hex-digit\n"
"                      strings, realistic missing values [the default]\n"
"  --synthetic-cats zipf|uniform   how the synthetic C1..C26 values are drawn:\n"
"                      zipf: from vocabularies of 10 to ~300k values with a\n"
"                      Zipf-like law, so traffic touches a small hot set of\n"
"                      table rows, as real traffic does; uniform: 8 uniformly\n"
"                      random hex digits, so every table row is equally likely\n"
"                      (the worst case for tables larger than RAM) [zipf]\n"
"  --data FILE         rows from a file, cycled: Criteo TSV (label, I1..I13,\n"
"                      C1..C26; the label may be absent; .xz/.gz read as is)\n"
"  --format criteo|csv   with --format csv also: --dense COL,... --categorical\n"
"                      COL,... [--label COL] [--delimiter C]; the column names are\n"
"                      the feature names sent\n"
"  --max-rows N        read at most N rows of --data [100000]; --skip-bad to skip\n"
"                      malformed rows instead of stopping\n"
"  --examples-per-request B   examples in each request [1]\n"
"  --protocol v1|v2    v1: POST /v1/score {\"request_id\",\"examples\":[{...}]} [v1]\n"
"                      v2: KServe POST /v2/models/NAME/infer (needs --model-name)\n"
"  --model-name NAME   the model's name for v2 (GET /v1/models shows it)\n"
"  --context-split     v1: features equal in every example of a request go to\n"
"                      \"context\" (synthetic: I1..I6, C1..C13 are drawn once per\n"
"                      request, as one user scored against many ads)\n"
"  --bodies N          distinct synthetic requests to prepare [%d]\n"
"  --seed S            synthetic values and poisson gaps [1]\n"
"  --print-request     print the first request (HTTP) and exit\n"
"\n"
"Replay:\n"
"  --replay LOG...     send logged requests with their features unchanged. LOG is\n"
"                      JSON lines, one /v1/score body per line, with an optional\n"
"                      \"t_ns\" (nanoseconds) taken out before sending, e.g.\n"
"                        {\"t_ns\":1700000000000000000,\"examples\":[{\"I1\":3,\"C1\":\"68fd1e64\"}]}\n"
"                      The audit log is not read directly yet: turn it into this\n"
"                      form with `ctrtool audit dump LOG... > requests.jsonl`.\n"
"                      Pacing: the logged t_ns (scaled by --replay-speed X), or\n"
"                      --rate / --concurrency. Each request is sent once, unless\n"
"                      --replay-loop (cycle until --duration).\n"
"  --replay-format F   the logs' format when sniffing is not enough [jsonl]\n"
"\n"
"Output:\n"
"  --json OUT, --csv OUT   the results as JSON / CSV (\"-\" = stdout)\n"
"  --dist-csv OUT      latency distribution (percentile, corrected, uncorrected)\n"
"  --quiet             no summary table; --progress / --no-progress force the live\n"
"                      line (default: on when stderr is a terminal)\n"
"  --slo-p99-ms X      on a single run too: says whether corrected p99 <= X ms\n"
"  --strict            exit 1 when the verdict is not clean or --slo-p99-ms is missed\n"
"  --max-lag-ms X      verdict: ctrload's own p99 send lag bound [1]\n"
"  --max-cpu-pct P     verdict: ctrload's CPU bound, %% of one core [90]\n"
"  --max-error-pct P   sweep: failed and non-2xx requests allowed [0.1]\n"
"\n"
"The verdict. ctrload checks itself: if it could not send on schedule (its own\n"
"send lag) or used a whole core, the figures may describe the client, and the\n"
"report says NOT CLEAN with the reason (JSON: verdict.clean = false).\n"
"\n"
"Examples:\n"
"  ctrload --url http://127.0.0.1:8080 --rate 2000 --duration 30s\n"
"  ctrload --url http://127.0.0.1:8080 --concurrency 32 --examples-per-request 64\n"
"  ctrload --url http://127.0.0.1:8080 --sweep 1000:20000:1000 --slo-p99-ms 1 --csv sweep.csv\n"
"  ctrload --url http://127.0.0.1:8080 --rate 500 --data criteo_sample.tsv.xz --protocol v2 --model-name demo\n"
"  ctrload --url http://127.0.0.1:8080 --replay requests.jsonl\n"
"\n"
"--url may carry a path (it replaces the protocol's endpoint); any host name\n"
"works, http:// only. Ctrl-C ends a run early and still prints the report.\n"
"\n"
"Exit status: 0 ran; 1 --strict and not clean / target missed; 2 bad flags or\n"
"data, or the server could not be reached. docs/LOADTEST.md has the details.\n",
            CTR__LOAD_OPEN_CONNECTIONS, DEFAULT_SYNTHETIC_BODIES);
}

int ctr__load_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ctrload: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 2;
}

/* "10s", "500ms", "250us", "2m", "1h", "1.5" (seconds) -> ns. */
static int parse_duration(const char *s, uint64_t *ns)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v >= 0) || !isfinite(v))
        return -1;
    double mult = 1e9;
    if (!*end || !strcmp(end, "s"))
        mult = 1e9;
    else if (!strcmp(end, "ms"))
        mult = 1e6;
    else if (!strcmp(end, "us"))
        mult = 1e3;
    else if (!strcmp(end, "m"))
        mult = 60e9;
    else if (!strcmp(end, "h"))
        mult = 3600e9;
    else
        return -1;
    if (v * mult > 1e18)
        return -1;
    *ns = (uint64_t)llround(v * mult);
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || errno)
        return -1;
    *out = v;
    return 0;
}

int ctr__load_opts_parse(int argc, char **argv, ctr__load_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->duration_ns = 10000000000ull;
    o->warmup_ns = 2000000000ull;
    o->timeout_ns = 2000000000ull;
    o->arrival = CTR__ARRIVAL_CONSTANT;
    o->format = CTR_DATA_CRITEO;
    o->examples = 1;
    o->protocol = CTR__PROTO_V1;
    o->bodies = DEFAULT_SYNTHETIC_BODIES;
    o->seed = 1;
    o->replay_speed = 1.0;
    o->progress = -1;
    o->max_lag_ms = 1.0;
    o->max_cpu_pct = 90;
    o->max_error_pct = 0.1;
    o->slo_p99_ms = -1;
    o->synthetic_cats = -1;
    o->replay = calloc((size_t)argc + 1, sizeof *o->replay);
    if (!o->replay)
        return ctr__load_die("out of memory");
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        char *val = NULL;
        char name[64];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (strncmp(arg, "--", 2))
            return ctr__load_die("unexpected argument \"%s\" (ctrload --help lists the flags)", arg);
        const char *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (nlen >= sizeof name)
            return ctr__load_die("unknown flag %s", arg);
        memcpy(name, arg, nlen);
        name[nlen] = 0;
        if (eq)
            val = (char *)eq + 1;
#define FLAG(s) (!strcmp(name, s))
#define NEED()                                                                   \
    do {                                                                         \
        if (!val) {                                                              \
            if (i + 1 >= argc)                                                   \
                return ctr__load_die("%s needs a value (ctrload --help)", name);          \
            val = argv[++i];                                                     \
        }                                                                        \
    } while (0)
#define NOVAL()                                                                  \
    do {                                                                         \
        if (val)                                                                 \
            return ctr__load_die("%s takes no value", name);                               \
    } while (0)
        uint64_t u;
        if (FLAG("--url")) {
            NEED();
            o->url = val;
        } else if (FLAG("--rate")) {
            NEED();
            if (parse_double(val, &o->rate) || !(o->rate > 0) || o->rate > 1e7)
                return ctr__load_die("--rate %s: expected requests per second, > 0", val);
        } else if (FLAG("--concurrency")) {
            NEED();
            if (parse_u64(val, &u) || u < 1 || u > MAX_CONNECTIONS)
                return ctr__load_die("--concurrency %s: expected 1 to %d", val, MAX_CONNECTIONS);
            o->concurrency = (size_t)u;
        } else if (FLAG("--sweep")) {
            NEED();
            char extra;
            if (sscanf(val, "%lf:%lf:%lf%c", &o->sweep_from, &o->sweep_to, &o->sweep_step, &extra) != 3 ||
                !(o->sweep_from > 0) || !(o->sweep_to >= o->sweep_from) || !(o->sweep_step > 0))
                return ctr__load_die("--sweep %s: expected FROM:TO:STEP rates, e.g. 1000:20000:1000", val);
            if ((o->sweep_to - o->sweep_from) / o->sweep_step + 1 > MAX_SWEEP_STEPS)
                return ctr__load_die("--sweep %s: more than %d steps", val, MAX_SWEEP_STEPS);
            o->sweep = 1;
        } else if (FLAG("--sweep-all")) {
            NOVAL();
            o->sweep_all = 1;
        } else if (FLAG("--slo-p99-ms")) {
            NEED();
            if (parse_double(val, &o->slo_p99_ms) || !(o->slo_p99_ms > 0))
                return ctr__load_die("--slo-p99-ms %s: expected milliseconds, > 0", val);
        } else if (FLAG("--max-error-pct")) {
            NEED();
            if (parse_double(val, &o->max_error_pct) || o->max_error_pct < 0 || o->max_error_pct > 100)
                return ctr__load_die("--max-error-pct %s: expected 0 to 100", val);
        } else if (FLAG("--duration") || FLAG("--warmup") || FLAG("--timeout")) {
            NEED();
            uint64_t ns;
            if (parse_duration(val, &ns))
                return ctr__load_die("%s %s: expected a duration such as 10s, 500ms, 2m", name, val);
            if (FLAG("--duration")) {
                if (!ns)
                    return ctr__load_die("--duration must be more than 0");
                o->duration_ns = ns;
                o->duration_set = 1;
            } else if (FLAG("--warmup")) {
                o->warmup_ns = ns;
                o->warmup_set = 1;
            } else {
                if (ns < 1000000)
                    return ctr__load_die("--timeout must be at least 1ms");
                o->timeout_ns = ns;
            }
        } else if (FLAG("--arrival")) {
            NEED();
            int a = ctr__arrival_parse(val);
            if (a < 0)
                return ctr__load_die("--arrival %s: expected constant or poisson", val);
            o->arrival = (ctr__arrival_t)a;
        } else if (FLAG("--connections")) {
            NEED();
            if (parse_u64(val, &u) || u < 1 || u > MAX_CONNECTIONS)
                return ctr__load_die("--connections %s: expected 1 to %d", val, MAX_CONNECTIONS);
            o->connections = (size_t)u;
        } else if (FLAG("--synthetic")) {
            NOVAL();
            o->synthetic = 1;
        } else if (FLAG("--synthetic-cats")) {
            NEED();
            o->synthetic_cats = ctr__cats_parse(val);
            if (o->synthetic_cats < 0)
                return ctr__load_die("--synthetic-cats %s: expected zipf or uniform", val);
        } else if (FLAG("--data")) {
            NEED();
            o->data = val;
        } else if (FLAG("--format")) {
            NEED();
            int f = ctr_data_parse_format(val);
            if (f < 0)
                return ctr__load_die("--format %s: expected criteo or csv", val);
            o->format = (ctr_data_format_t)f;
        } else if (FLAG("--label")) {
            NEED();
            o->label = val;
        } else if (FLAG("--dense")) {
            NEED();
            o->dense = val;
        } else if (FLAG("--categorical")) {
            NEED();
            o->categorical = val;
        } else if (FLAG("--delimiter")) {
            NEED();
            if (!strcmp(val, "\\t") || !strcmp(val, "tab"))
                o->delimiter = '\t';
            else if (strlen(val) == 1)
                o->delimiter = val[0];
            else
                return ctr__load_die("--delimiter %s: expected one character (or \\t)", val);
        } else if (FLAG("--max-rows")) {
            NEED();
            if (parse_u64(val, &o->max_rows) || !o->max_rows)
                return ctr__load_die("--max-rows %s: expected a positive count", val);
        } else if (FLAG("--skip-bad")) {
            NOVAL();
            o->skip_bad = 1;
        } else if (FLAG("--examples-per-request")) {
            NEED();
            if (parse_u64(val, &u) || u < 1 || u > 1000000)
                return ctr__load_die("--examples-per-request %s: expected 1 to 1000000", val);
            o->examples = (size_t)u;
        } else if (FLAG("--protocol")) {
            NEED();
            if (!strcmp(val, "v1"))
                o->protocol = CTR__PROTO_V1;
            else if (!strcmp(val, "v2"))
                o->protocol = CTR__PROTO_V2;
            else
                return ctr__load_die("--protocol %s: expected v1 or v2", val);
        } else if (FLAG("--model-name")) {
            NEED();
            o->model_name = val;
        } else if (FLAG("--context-split")) {
            NOVAL();
            o->context_split = 1;
        } else if (FLAG("--bodies")) {
            NEED();
            if (parse_u64(val, &u) || u < 1 || u > 10000000)
                return ctr__load_die("--bodies %s: expected 1 to 10000000", val);
            o->bodies = (size_t)u;
        } else if (FLAG("--seed")) {
            NEED();
            if (parse_u64(val, &o->seed))
                return ctr__load_die("--seed %s: expected a non-negative integer", val);
        } else if (FLAG("--print-request")) {
            NOVAL();
            o->print_request = 1;
        } else if (FLAG("--replay")) {
            if (val)
                o->replay[o->n_replay++] = val;
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2))
                o->replay[o->n_replay++] = argv[++i];
            if (!o->n_replay)
                return ctr__load_die("--replay needs at least one log file");
        } else if (FLAG("--replay-format")) {
            NEED();
            o->replay_format = val;
        } else if (FLAG("--replay-speed")) {
            NEED();
            if (parse_double(val, &o->replay_speed) || !(o->replay_speed > 0))
                return ctr__load_die("--replay-speed %s: expected a factor > 0 (2 = twice as fast)", val);
        } else if (FLAG("--replay-loop")) {
            NOVAL();
            o->replay_loop = 1;
        } else if (FLAG("--json")) {
            NEED();
            o->json = val;
        } else if (FLAG("--csv")) {
            NEED();
            o->csv = val;
        } else if (FLAG("--dist-csv")) {
            NEED();
            o->dist_csv = val;
        } else if (FLAG("--quiet")) {
            NOVAL();
            o->quiet = 1;
        } else if (FLAG("--progress")) {
            NOVAL();
            o->progress = 1;
        } else if (FLAG("--no-progress")) {
            NOVAL();
            o->progress = 0;
        } else if (FLAG("--strict")) {
            NOVAL();
            o->strict = 1;
        } else if (FLAG("--max-lag-ms")) {
            NEED();
            if (parse_double(val, &o->max_lag_ms) || !(o->max_lag_ms > 0))
                return ctr__load_die("--max-lag-ms %s: expected milliseconds, > 0", val);
        } else if (FLAG("--max-cpu-pct")) {
            NEED();
            if (parse_double(val, &o->max_cpu_pct) || !(o->max_cpu_pct > 0))
                return ctr__load_die("--max-cpu-pct %s: expected a percentage of one core, > 0", val);
        } else if (FLAG("--version")) {
            printf("ctrload %s\n", CTR_VERSION);
            exit(0);
        } else {
            return ctr__load_die("unknown flag %s (ctrload --help lists the flags)", name);
        }
#undef FLAG
#undef NEED
#undef NOVAL
    }

    if (!o->url)
        return ctr__load_die("--url is required, e.g. --url http://127.0.0.1:8080 (ctrload --help)");
    int modes = (o->rate > 0) + (o->concurrency > 0) + o->sweep;
    if (modes > 1)
        return ctr__load_die("choose one of --rate, --concurrency, --sweep");
    if (!modes && !o->n_replay && !o->print_request)
        return ctr__load_die("say how to load the server: --rate R (open loop), --concurrency C (closed "
                   "loop) or --sweep FROM:TO:STEP (ctrload --help)");
    if (o->sweep && o->slo_p99_ms <= 0)
        return ctr__load_die("--sweep needs the p99 target: --slo-p99-ms X");
    if (o->concurrency && o->connections && o->connections != o->concurrency)
        return ctr__load_die("--connections %zu with --concurrency %zu: a closed loop keeps one request in "
                   "flight per connection, so they must be equal (leave --connections out)",
                   o->connections, o->concurrency);
    if (o->data && o->synthetic)
        return ctr__load_die("--data and --synthetic exclude each other");
    if (o->synthetic_cats >= 0 && (o->data || o->n_replay))
        return ctr__load_die("--synthetic-cats shapes synthetic requests: it does not go with --%s",
                   o->data ? "data" : "replay");
    if (o->n_replay && (o->data || o->synthetic))
        return ctr__load_die("--replay sends the logged requests: it excludes --data and --synthetic");
    if (o->n_replay && o->protocol != CTR__PROTO_V1)
        return ctr__load_die("--replay sends logged /v1/score bodies: it needs --protocol v1");
    if (o->n_replay && o->examples != 1)
        return ctr__load_die("--replay sends the logged requests as they were: --examples-per-request does not apply");
    if (o->protocol == CTR__PROTO_V2 && !o->model_name)
        return ctr__load_die("--protocol v2 needs --model-name NAME (the served model's name: GET /v1/models)");
    if (o->format == CTR_DATA_CSV && !o->data)
        return ctr__load_die("--format csv goes with --data FILE");
    if (o->n_replay && !o->warmup_set)
        o->warmup_ns = 0;
    return 0;
}

void ctr__load_opts_free(ctr__load_opts_t *o)
{
    free(o->replay);
    o->replay = NULL;
    o->n_replay = 0;
}
