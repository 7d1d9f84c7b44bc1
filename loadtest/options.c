/* options.c - ctrload's flags: --help, the flag table, defaults and the
 * checks between flags (see options.h). */
#include "options.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"

#define DEFAULT_SYNTHETIC_BODIES 1000
#define MAX_CONNECTIONS 10000
#define MAX_SWEEP_STEPS 1000
#define STR_(x) #x
#define STR(x) STR_(x)

/* --help is written by hand, not generated from the table: it explains the
 * two loops, the timing and the verdict, which a flag list cannot. A new
 * flag goes in the table below and here. */
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
"  --model-name NAME   the served model to load (GET /v1/models lists them): v2\n"
"                      sends to /v2/models/NAME/infer; v1 puts \"model\":\"NAME\"\n"
"                      first in each body [v1: none, the server's default model]\n"
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

/* --sweep FROM:TO:STEP: positive rates, FROM <= TO, at most
 * MAX_SWEEP_STEPS runs. */
static int parse_sweep(const char *text, void *field, char *err, size_t errlen)
{
    ctr__load_sweep_t *sw = field;
    char extra;
    if (sscanf(text, "%lf:%lf:%lf%c", &sw->from, &sw->to, &sw->step, &extra) != 3 || !(sw->from > 0) ||
        !(sw->to >= sw->from) || !(sw->step > 0))
        return ctr_error(err, errlen, CTR_EINVAL, "expected FROM:TO:STEP rates, e.g. 1000:20000:1000");
    if ((sw->to - sw->from) / sw->step + 1 > MAX_SWEEP_STEPS)
        return ctr_error(err, errlen, CTR_ERANGE, "more than %d steps", MAX_SWEEP_STEPS);
    sw->on = 1;
    return 0;
}

/* --delimiter: one character, or \t / tab. */
static int parse_delimiter(const char *text, void *field, char *err, size_t errlen)
{
    char *c = field;
    if (!strcmp(text, "\\t") || !strcmp(text, "tab"))
        *c = '\t';
    else if (strlen(text) == 1)
        *c = text[0];
    else
        return ctr_error(err, errlen, CTR_EINVAL, "expected one character (or \\t)");
    return 0;
}

static const ctr_opt_enum_t arrivals[] = {
    {"constant", CTR__ARRIVAL_CONSTANT}, {"poisson", CTR__ARRIVAL_POISSON}, {NULL, 0}};
static const ctr_opt_enum_t cats[] = {{"zipf", CTR__CATS_ZIPF}, {"uniform", CTR__CATS_UNIFORM}, {NULL, 0}};
static const ctr_opt_enum_t formats[] = {{"criteo", CTR_DATA_CRITEO}, {"csv", CTR_DATA_CSV}, {NULL, 0}};
static const ctr_opt_enum_t protocols[] = {{"v1", CTR__PROTO_V1}, {"v2", CTR__PROTO_V2}, {NULL, 0}};

#define AT(m) CTR_OPT_AT(ctr__load_opts_t, m)
#define POSITIVE .flags = CTR_OPT_MIN_EXCL, .dmin = 0, .dmax = INFINITY

/* Every flag, in --help's order. Defaults not written here are set in
 * ctr__load_opts_parse: -1 for "not given" (--slo-p99-ms,
 * --synthetic-cats, --progress). */
static const ctr_opt_t flags[] = {
    {.name = "url", .type = CTR_OPT_STR, AT(url), .metavar = "URL"},
    {.name = "rate", .type = CTR_OPT_DOUBLE, AT(rate), .flags = CTR_OPT_MIN_EXCL, .dmin = 0, .dmax = 1e7,
     .metavar = "R"},
    {.name = "concurrency", .type = CTR_OPT_UINT, AT(concurrency), .min = 1, .max = MAX_CONNECTIONS,
     .metavar = "C"},
    {.name = "sweep", .type = CTR_OPT_CUSTOM, AT(sweep), .parse = parse_sweep, .metavar = "FROM:TO:STEP"},
    {.name = "sweep-all", .type = CTR_OPT_BOOL, AT(sweep_all)},
    {.name = "slo-p99-ms", .type = CTR_OPT_DOUBLE, AT(slo_p99_ms), POSITIVE, .metavar = "X"},
    {.name = "max-error-pct", .type = CTR_OPT_DOUBLE, AT(max_error_pct), .def = "0.1", .dmin = 0, .dmax = 100,
     .metavar = "P"},
    {.name = "duration", .type = CTR_OPT_DURATION, AT(duration_ns), .def = "10s", .metavar = "D"},
    {.name = "warmup", .type = CTR_OPT_DURATION, AT(warmup_ns), .def = "2s", .metavar = "D"},
    {.name = "timeout", .type = CTR_OPT_DURATION, AT(timeout_ns), .def = "2s", .metavar = "D"},
    {.name = "arrival", .type = CTR_OPT_ENUM, AT(arrival), .def = "constant", .enums = arrivals},
    {.name = "connections", .type = CTR_OPT_UINT, AT(connections), .min = 1, .max = MAX_CONNECTIONS,
     .metavar = "N"},
    {.name = "synthetic", .type = CTR_OPT_BOOL, AT(synthetic)},
    {.name = "synthetic-cats", .type = CTR_OPT_ENUM, AT(synthetic_cats), .enums = cats},
    {.name = "data", .type = CTR_OPT_STR, AT(data), .metavar = "FILE"},
    {.name = "format", .type = CTR_OPT_ENUM, AT(format), .def = "criteo", .enums = formats},
    {.name = "dense", .type = CTR_OPT_STR, AT(dense), .metavar = "COL,..."},
    {.name = "categorical", .type = CTR_OPT_STR, AT(categorical), .metavar = "COL,..."},
    {.name = "label", .type = CTR_OPT_STR, AT(label), .metavar = "COL"},
    {.name = "delimiter", .type = CTR_OPT_CUSTOM, AT(delimiter), .parse = parse_delimiter, .metavar = "C"},
    {.name = "max-rows", .type = CTR_OPT_UINT, AT(max_rows), .min = 1, .max = UINT64_MAX, .metavar = "N"},
    {.name = "skip-bad", .type = CTR_OPT_BOOL, AT(skip_bad)},
    {.name = "examples-per-request", .type = CTR_OPT_UINT, AT(examples), .def = "1", .min = 1, .max = 1000000,
     .metavar = "B"},
    {.name = "protocol", .type = CTR_OPT_ENUM, AT(protocol), .def = "v1", .enums = protocols},
    {.name = "model-name", .type = CTR_OPT_STR, AT(model_name), .metavar = "NAME"},
    {.name = "context-split", .type = CTR_OPT_BOOL, AT(context_split)},
    {.name = "bodies", .type = CTR_OPT_UINT, AT(bodies), .def = STR(DEFAULT_SYNTHETIC_BODIES), .min = 1,
     .max = 10000000, .metavar = "N"},
    {.name = "seed", .type = CTR_OPT_UINT, AT(seed), .def = "1", .metavar = "S"},
    {.name = "print-request", .type = CTR_OPT_BOOL, AT(print_request)},
    {.name = "replay", .type = CTR_OPT_LIST, AT(replay), .flags = CTR_OPT_GREEDY, .metavar = "LOG..."},
    {.name = "replay-format", .type = CTR_OPT_STR, AT(replay_format), .metavar = "F"},
    {.name = "replay-speed", .type = CTR_OPT_DOUBLE, AT(replay_speed), .def = "1", POSITIVE, .metavar = "X"},
    {.name = "replay-loop", .type = CTR_OPT_BOOL, AT(replay_loop)},
    {.name = "json", .type = CTR_OPT_STR, AT(json), .metavar = "OUT"},
    {.name = "csv", .type = CTR_OPT_STR, AT(csv), .metavar = "OUT"},
    {.name = "dist-csv", .type = CTR_OPT_STR, AT(dist_csv), .metavar = "OUT"},
    {.name = "quiet", .type = CTR_OPT_BOOL, AT(quiet)},
    {.name = "progress", .type = CTR_OPT_BOOL, AT(progress)},
    {.name = "no-progress", .type = CTR_OPT_BOOL, AT(progress), .flags = CTR_OPT_NEGATE},
    {.name = "strict", .type = CTR_OPT_BOOL, AT(strict)},
    {.name = "max-lag-ms", .type = CTR_OPT_DOUBLE, AT(max_lag_ms), .def = "1", POSITIVE, .metavar = "X"},
    {.name = "max-cpu-pct", .type = CTR_OPT_DOUBLE, AT(max_cpu_pct), .def = "90", POSITIVE, .metavar = "P"},
    {.name = "version", .type = CTR_OPT_BOOL, AT(version)},
};

static const ctr_opts_t spec = {flags, CTR_ARRAY_LEN(flags), NULL, NULL};

/* What no single flag can check. The duration bounds are here rather
 * than in the table: a range in nanoseconds reads worse than the rule. */
static int check(ctr__load_opts_t *o)
{
    if (!o->duration_ns)
        return ctr__load_die("--duration must be more than 0");
    if (o->timeout_ns < 1000000)
        return ctr__load_die("--timeout must be at least 1ms");
    if (!o->url)
        return ctr__load_die("--url is required, e.g. --url http://127.0.0.1:8080 (ctrload --help)");
    int modes = (o->rate > 0) + (o->concurrency > 0) + o->sweep.on;
    if (modes > 1)
        return ctr__load_die("choose one of --rate, --concurrency, --sweep");
    if (!modes && !o->replay.n && !o->print_request)
        return ctr__load_die("say how to load the server: --rate R (open loop), --concurrency C (closed "
                             "loop) or --sweep FROM:TO:STEP (ctrload --help)");
    if (o->sweep.on && o->slo_p99_ms <= 0)
        return ctr__load_die("--sweep needs the p99 target: --slo-p99-ms X");
    if (o->concurrency && o->connections && o->connections != o->concurrency)
        return ctr__load_die("--connections %zu with --concurrency %zu: a closed loop keeps one request in "
                             "flight per connection, so they must be equal (leave --connections out)",
                             o->connections, o->concurrency);
    if (o->data && o->synthetic)
        return ctr__load_die("--data and --synthetic exclude each other");
    if (o->synthetic_cats >= 0 && (o->data || o->replay.n))
        return ctr__load_die("--synthetic-cats shapes synthetic requests: it does not go with --%s",
                             o->data ? "data" : "replay");
    if (o->replay.n && (o->data || o->synthetic))
        return ctr__load_die("--replay sends the logged requests: it excludes --data and --synthetic");
    if (o->replay.n && o->protocol != CTR__PROTO_V1)
        return ctr__load_die("--replay sends logged /v1/score bodies: it needs --protocol v1");
    if (o->replay.n && o->examples != 1)
        return ctr__load_die("--replay sends the logged requests as they were: --examples-per-request does not apply");
    if (o->replay.n && o->model_name)
        return ctr__load_die("--replay sends the logged bodies as they are: --model-name does not apply (a log "
                             "of several models names each request's model: ctrtool audit dump --requests "
                             "--model NAME=PATH ...)");
    if (o->protocol == CTR__PROTO_V2 && !o->model_name)
        return ctr__load_die("--protocol v2 needs --model-name NAME (the served model's name: GET /v1/models)");
    if (o->format == CTR_DATA_CSV && !o->data)
        return ctr__load_die("--format csv goes with --data FILE");
    if (o->replay.n && !o->warmup_set)
        o->warmup_ns = 0;
    return 0;
}

int ctr__load_opts_parse(int argc, char **argv, ctr__load_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->slo_p99_ms = -1;
    o->synthetic_cats = -1;
    o->progress = -1;
    o->replay.v = calloc((size_t)argc + 1, sizeof *o->replay.v);
    if (!o->replay.v)
        return ctr__load_die("out of memory");
    o->replay.cap = (size_t)argc;
    ctr_opts_result_t res;
    char err[512];
    if (ctr_opts_parse(&spec, o, argc, argv, &res, err, sizeof err))
        return ctr__load_die("%s", err);
    if (res.help) {
        usage(stdout);
        exit(0);
    }
    if (o->version) {
        printf("ctrload %s\n", CTR_VERSION);
        exit(0);
    }
    o->duration_set = ctr_opts_from(&res, "duration") == CTR_OPT_FROM_FLAG;
    o->warmup_set = ctr_opts_from(&res, "warmup") == CTR_OPT_FROM_FLAG;
    return check(o);
}

void ctr__load_opts_free(ctr__load_opts_t *o)
{
    free(o->replay.v);
    memset(&o->replay, 0, sizeof o->replay);
}
