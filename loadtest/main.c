/* main.c - ctrload: flags, --help, and the run / sweep / replay drivers.
 *
 *   bodies    request bodies, prepared before the clock starts
 *   replay    logged requests as bodies (pluggable log sources)
 *   schedule  open-loop due times
 *   loop      the epoll event loop of one run
 *   http1     response parser
 *   hist      latency histograms
 *   report    text / JSON / CSV and the verdict
 *
 * Exit status: 0 the run happened (read the verdict); 1 with --strict when
 * the verdict was not clean or the p99 target was missed; 2 on bad flags,
 * bad data, or a server that could not be reached at all. */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bodies.h"
#include "ctr/common.h"
#include "ctr/data.h"
#include "loop.h"
#include "replay.h"
#include "report.h"
#include "schedule.h"

#define DEFAULT_OPEN_CONNECTIONS 64
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
            DEFAULT_OPEN_CONNECTIONS, DEFAULT_SYNTHETIC_BODIES);
}

typedef struct {
    const char *url;
    double rate;
    size_t concurrency;
    double sweep_from, sweep_to, sweep_step;
    int sweep, sweep_all;
    double slo_p99_ms;
    double max_error_pct;
    uint64_t duration_ns, warmup_ns, timeout_ns;
    int duration_set, warmup_set;
    int arrival;
    size_t connections;
    int synthetic;
    int synthetic_cats;            /* ctr__cats_t; -1: not given (zipf) */
    const char *data;
    int format;
    const char *label, *dense, *categorical;
    char delimiter;
    uint64_t max_rows;
    int skip_bad;
    size_t examples;
    int protocol;
    const char *model_name;
    int context_split;
    size_t bodies;
    uint64_t seed;
    int print_request;
    const char **replay;
    size_t n_replay;
    const char *replay_format;
    double replay_speed;
    int replay_loop;
    const char *json, *csv, *dist_csv;
    int quiet, progress;           /* progress: -1 auto */
    int strict;
    double max_lag_ms, max_cpu_pct;
} opts_t;

/* Ctrl-C (or SIGTERM) ends the current run and the sweep early, and the
 * report shows what was measured; a second one kills as usual. */
static volatile int stop_flag;

static void on_stop(int signo)
{
    stop_flag = 1;
    signal(signo, SIG_DFL);
}

static void install_stop(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int die(const char *fmt, ...)
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

/* ---- URL ------------------------------------------------------------------ */

typedef struct {
    char host[256];
    char port[8];
    char authority[300];      /* Host header */
    char path[1024];          /* "" = the protocol's endpoint */
} url_t;

static int parse_url(const char *s, url_t *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    if (!strncasecmp(s, "https://", 8))
        return ctr_error(err, errlen, CTR_EUNSUPPORTED,
                         "--url %s: only http:// is supported (ctrload does not speak TLS)", s);
    if (strncasecmp(s, "http://", 7))
        return ctr_error(err, errlen, CTR_EINVAL, "--url %s: expected http://HOST[:PORT][/PATH]", s);
    const char *a = s + 7;
    size_t alen = strcspn(a, "/?#");
    const char *rest = a + alen;
    if (!alen || alen >= sizeof u->authority)
        return ctr_error(err, errlen, CTR_EINVAL, "--url %s: no host", s);
    memcpy(u->authority, a, alen);
    if (memchr(a, '@', alen))
        return ctr_error(err, errlen, CTR_EINVAL, "--url %s: user info in URLs is not supported", s);
    const char *hs = a, *he, *pp = NULL;
    if (*a == '[') {
        const char *rb = memchr(a, ']', alen);
        if (!rb)
            return ctr_error(err, errlen, CTR_EINVAL, "--url %s: unterminated [IPv6] host", s);
        hs = a + 1;
        he = rb;
        if (rb + 1 < a + alen) {
            if (rb[1] != ':')
                return ctr_error(err, errlen, CTR_EINVAL, "--url %s: bad port", s);
            pp = rb + 2;
        }
    } else {
        const char *colon = memchr(a, ':', alen);
        he = colon ? colon : a + alen;
        if (colon)
            pp = colon + 1;
    }
    if (he == hs || (size_t)(he - hs) >= sizeof u->host)
        return ctr_error(err, errlen, CTR_EINVAL, "--url %s: no host", s);
    memcpy(u->host, hs, (size_t)(he - hs));
    if (pp) {
        size_t plen = (size_t)(a + alen - pp);
        char tmp[8];
        uint64_t port;
        if (!plen || plen >= sizeof tmp)
            return ctr_error(err, errlen, CTR_EINVAL, "--url %s: bad port", s);
        memcpy(tmp, pp, plen);
        tmp[plen] = 0;
        if (parse_u64(tmp, &port) || port < 1 || port > 65535)
            return ctr_error(err, errlen, CTR_EINVAL, "--url %s: bad port \"%s\"", s, tmp);
        snprintf(u->port, sizeof u->port, "%u", (unsigned)port);
    } else {
        strcpy(u->port, "80");
    }
    if (*rest == '#')
        rest = "";
    if (strlen(rest) + 1 >= sizeof u->path)
        return ctr_error(err, errlen, CTR_EINVAL, "--url: path too long");
    if (*rest == '?') {
        u->path[0] = '/';
        memcpy(u->path + 1, rest, strlen(rest) + 1);
    } else if (strcmp(rest, "/") != 0) {
        snprintf(u->path, sizeof u->path, "%s", rest);
        char *hash = strchr(u->path, '#');
        if (hash)
            *hash = 0;
    }
    for (const char *p = u->path; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return ctr_error(err, errlen, CTR_EINVAL, "--url %s: spaces or control characters in the path", s);
    return 0;
}

/* ---- flags ---------------------------------------------------------------- */

static int parse_args(int argc, char **argv, opts_t *o)
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
        return die("out of memory");
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        char *val = NULL;
        char name[64];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (strncmp(arg, "--", 2))
            return die("unexpected argument \"%s\" (ctrload --help lists the flags)", arg);
        const char *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (nlen >= sizeof name)
            return die("unknown flag %s", arg);
        memcpy(name, arg, nlen);
        name[nlen] = 0;
        if (eq)
            val = (char *)eq + 1;
#define FLAG(s) (!strcmp(name, s))
#define NEED()                                                                   \
    do {                                                                         \
        if (!val) {                                                              \
            if (i + 1 >= argc)                                                   \
                return die("%s needs a value (ctrload --help)", name);          \
            val = argv[++i];                                                     \
        }                                                                        \
    } while (0)
#define NOVAL()                                                                  \
    do {                                                                         \
        if (val)                                                                 \
            return die("%s takes no value", name);                               \
    } while (0)
        uint64_t u;
        if (FLAG("--url")) {
            NEED();
            o->url = val;
        } else if (FLAG("--rate")) {
            NEED();
            if (parse_double(val, &o->rate) || !(o->rate > 0) || o->rate > 1e7)
                return die("--rate %s: expected requests per second, > 0", val);
        } else if (FLAG("--concurrency")) {
            NEED();
            if (parse_u64(val, &u) || u < 1 || u > MAX_CONNECTIONS)
                return die("--concurrency %s: expected 1 to %d", val, MAX_CONNECTIONS);
            o->concurrency = (size_t)u;
        } else if (FLAG("--sweep")) {
            NEED();
            char extra;
            if (sscanf(val, "%lf:%lf:%lf%c", &o->sweep_from, &o->sweep_to, &o->sweep_step, &extra) != 3 ||
                !(o->sweep_from > 0) || !(o->sweep_to >= o->sweep_from) || !(o->sweep_step > 0))
                return die("--sweep %s: expected FROM:TO:STEP rates, e.g. 1000:20000:1000", val);
            if ((o->sweep_to - o->sweep_from) / o->sweep_step + 1 > MAX_SWEEP_STEPS)
                return die("--sweep %s: more than %d steps", val, MAX_SWEEP_STEPS);
            o->sweep = 1;
        } else if (FLAG("--sweep-all")) {
            NOVAL();
            o->sweep_all = 1;
        } else if (FLAG("--slo-p99-ms")) {
            NEED();
            if (parse_double(val, &o->slo_p99_ms) || !(o->slo_p99_ms > 0))
                return die("--slo-p99-ms %s: expected milliseconds, > 0", val);
        } else if (FLAG("--max-error-pct")) {
            NEED();
            if (parse_double(val, &o->max_error_pct) || o->max_error_pct < 0 || o->max_error_pct > 100)
                return die("--max-error-pct %s: expected 0 to 100", val);
        } else if (FLAG("--duration") || FLAG("--warmup") || FLAG("--timeout")) {
            NEED();
            uint64_t ns;
            if (parse_duration(val, &ns))
                return die("%s %s: expected a duration such as 10s, 500ms, 2m", name, val);
            if (FLAG("--duration")) {
                if (!ns)
                    return die("--duration must be more than 0");
                o->duration_ns = ns;
                o->duration_set = 1;
            } else if (FLAG("--warmup")) {
                o->warmup_ns = ns;
                o->warmup_set = 1;
            } else {
                if (ns < 1000000)
                    return die("--timeout must be at least 1ms");
                o->timeout_ns = ns;
            }
        } else if (FLAG("--arrival")) {
            NEED();
            o->arrival = ctr__arrival_parse(val);
            if (o->arrival < 0)
                return die("--arrival %s: expected constant or poisson", val);
        } else if (FLAG("--connections")) {
            NEED();
            if (parse_u64(val, &u) || u < 1 || u > MAX_CONNECTIONS)
                return die("--connections %s: expected 1 to %d", val, MAX_CONNECTIONS);
            o->connections = (size_t)u;
        } else if (FLAG("--synthetic")) {
            NOVAL();
            o->synthetic = 1;
        } else if (FLAG("--synthetic-cats")) {
            NEED();
            o->synthetic_cats = ctr__cats_parse(val);
            if (o->synthetic_cats < 0)
                return die("--synthetic-cats %s: expected zipf or uniform", val);
        } else if (FLAG("--data")) {
            NEED();
            o->data = val;
        } else if (FLAG("--format")) {
            NEED();
            o->format = ctr_data_parse_format(val);
            if (o->format < 0)
                return die("--format %s: expected criteo or csv", val);
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
                return die("--delimiter %s: expected one character (or \\t)", val);
        } else if (FLAG("--max-rows")) {
            NEED();
            if (parse_u64(val, &o->max_rows) || !o->max_rows)
                return die("--max-rows %s: expected a positive count", val);
        } else if (FLAG("--skip-bad")) {
            NOVAL();
            o->skip_bad = 1;
        } else if (FLAG("--examples-per-request")) {
            NEED();
            if (parse_u64(val, &u) || u < 1 || u > 1000000)
                return die("--examples-per-request %s: expected 1 to 1000000", val);
            o->examples = (size_t)u;
        } else if (FLAG("--protocol")) {
            NEED();
            if (!strcmp(val, "v1"))
                o->protocol = CTR__PROTO_V1;
            else if (!strcmp(val, "v2"))
                o->protocol = CTR__PROTO_V2;
            else
                return die("--protocol %s: expected v1 or v2", val);
        } else if (FLAG("--model-name")) {
            NEED();
            o->model_name = val;
        } else if (FLAG("--context-split")) {
            NOVAL();
            o->context_split = 1;
        } else if (FLAG("--bodies")) {
            NEED();
            if (parse_u64(val, &u) || u < 1 || u > 10000000)
                return die("--bodies %s: expected 1 to 10000000", val);
            o->bodies = (size_t)u;
        } else if (FLAG("--seed")) {
            NEED();
            if (parse_u64(val, &o->seed))
                return die("--seed %s: expected a non-negative integer", val);
        } else if (FLAG("--print-request")) {
            NOVAL();
            o->print_request = 1;
        } else if (FLAG("--replay")) {
            if (val)
                o->replay[o->n_replay++] = val;
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2))
                o->replay[o->n_replay++] = argv[++i];
            if (!o->n_replay)
                return die("--replay needs at least one log file");
        } else if (FLAG("--replay-format")) {
            NEED();
            o->replay_format = val;
        } else if (FLAG("--replay-speed")) {
            NEED();
            if (parse_double(val, &o->replay_speed) || !(o->replay_speed > 0))
                return die("--replay-speed %s: expected a factor > 0 (2 = twice as fast)", val);
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
                return die("--max-lag-ms %s: expected milliseconds, > 0", val);
        } else if (FLAG("--max-cpu-pct")) {
            NEED();
            if (parse_double(val, &o->max_cpu_pct) || !(o->max_cpu_pct > 0))
                return die("--max-cpu-pct %s: expected a percentage of one core, > 0", val);
        } else if (FLAG("--version")) {
            printf("ctrload %s\n", CTR_VERSION);
            exit(0);
        } else {
            return die("unknown flag %s (ctrload --help lists the flags)", name);
        }
#undef FLAG
#undef NEED
#undef NOVAL
    }

    if (!o->url)
        return die("--url is required, e.g. --url http://127.0.0.1:8080 (ctrload --help)");
    int modes = (o->rate > 0) + (o->concurrency > 0) + o->sweep;
    if (modes > 1)
        return die("choose one of --rate, --concurrency, --sweep");
    if (!modes && !o->n_replay && !o->print_request)
        return die("say how to load the server: --rate R (open loop), --concurrency C (closed "
                   "loop) or --sweep FROM:TO:STEP (ctrload --help)");
    if (o->sweep && o->slo_p99_ms <= 0)
        return die("--sweep needs the p99 target: --slo-p99-ms X");
    if (o->concurrency && o->connections && o->connections != o->concurrency)
        return die("--connections %zu with --concurrency %zu: a closed loop keeps one request in "
                   "flight per connection, so they must be equal (leave --connections out)",
                   o->connections, o->concurrency);
    if (o->data && o->synthetic)
        return die("--data and --synthetic exclude each other");
    if (o->synthetic_cats >= 0 && (o->data || o->n_replay))
        return die("--synthetic-cats shapes synthetic requests: it does not go with --%s",
                   o->data ? "data" : "replay");
    if (o->n_replay && (o->data || o->synthetic))
        return die("--replay sends the logged requests: it excludes --data and --synthetic");
    if (o->n_replay && o->protocol != CTR__PROTO_V1)
        return die("--replay sends logged /v1/score bodies: it needs --protocol v1");
    if (o->n_replay && o->examples != 1)
        return die("--replay sends the logged requests as they were: --examples-per-request does not apply");
    if (o->protocol == CTR__PROTO_V2 && !o->model_name)
        return die("--protocol v2 needs --model-name NAME (the served model's name: GET /v1/models)");
    if (o->format == CTR_DATA_CSV && !o->data)
        return die("--format csv goes with --data FILE");
    if (o->n_replay && !o->warmup_set)
        o->warmup_ns = 0;
    return 0;
}

/* ---- driving runs --------------------------------------------------------- */

static FILE *open_out(const char *path)
{
    if (!strcmp(path, "-"))
        return stdout;
    FILE *f = fopen(path, "w");
    if (!f)
        fprintf(stderr, "ctrload: cannot write %s: %s\n", path, strerror(errno));
    return f;
}

static int close_out(FILE *f, const char *path)
{
    if (f == stdout)
        return fflush(f);
    if (fclose(f)) {
        fprintf(stderr, "ctrload: writing %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int meets_slo(const opts_t *o, const ctr__run_result_t *r, const ctr__verdict_t *v)
{
    uint64_t denom = r->scheduled ? r->scheduled : r->sent;
    uint64_t bad = r->failed + (r->completed - r->ok);
    double err_pct = denom ? 100.0 * (double)bad / (double)denom : 100.0;
    double p99 = (double)ctr__hist_percentile(&r->lat, 99) / 1e6;
    return v->clean && r->lat.count > 0 && p99 <= o->slo_p99_ms && err_pct <= o->max_error_pct;
}

/* Error exits of main: status 2, resources freed at `out`. */
#define FAIL(...)                                                                \
    do {                                                                         \
        status = die(__VA_ARGS__);                                               \
        goto out;                                                                \
    } while (0)
#define FAIL2()                                                                  \
    do {                                                                         \
        status = 2;                                                              \
        goto out;                                                                \
    } while (0)

int main(int argc, char **argv)
{
    opts_t o;
    char err[512] = "";
    int status = 0;
    ctr__msgset_t msgs;
    memset(&msgs, 0, sizeof msgs);
    struct addrinfo *ai = NULL;
    uint64_t *trace = NULL;
    ctr__run_result_t *res = NULL;
    FILE *jf = NULL, *cf = NULL;
    signal(SIGPIPE, SIG_IGN);
    int prc = parse_args(argc, argv, &o);
    if (prc) {
        free(o.replay);
        return prc;
    }

    url_t url;
    if (parse_url(o.url, &url, err, sizeof err))
        FAIL("%s", err);
    char path[1100];
    if (url.path[0])
        snprintf(path, sizeof path, "%s", url.path);
    else if (o.protocol == CTR__PROTO_V2)
        snprintf(path, sizeof path, "/v2/models/%s/infer", o.model_name);
    else
        snprintf(path, sizeof path, "/v1/score");
    char full_url[1500];
    snprintf(full_url, sizeof full_url, "http://%s%s", url.authority, path);

    /* Bodies, before any clock. */
    int all_timed = 0;
    char source[600];
    int rc;
    if (o.n_replay) {
        rc = ctr__replay_load(o.replay, o.n_replay, o.replay_format, &msgs, &all_timed, err, sizeof err);
        snprintf(source, sizeof source, "replay of %s%s (%zu requests)", o.replay[0],
                 o.n_replay > 1 ? " ..." : "", msgs.n);
    } else {
        ctr__bodies_opts_t bo;
        memset(&bo, 0, sizeof bo);
        bo.protocol = (ctr__proto_t)o.protocol;
        bo.examples = o.examples;
        bo.context_split = o.context_split;
        bo.seed = o.seed;
        bo.synthetic = o.data ? 0 : o.bodies;
        bo.synthetic_cats = o.synthetic_cats == CTR__CATS_UNIFORM ? CTR__CATS_UNIFORM : CTR__CATS_ZIPF;
        bo.data_path = o.data;
        bo.format = (ctr_data_format_t)o.format;
        bo.label = o.label;
        bo.dense_cols = o.dense;
        bo.cat_cols = o.categorical;
        bo.delimiter = o.delimiter;
        bo.max_rows = o.max_rows;
        bo.skip_bad = o.skip_bad;
        rc = ctr__bodies_build(&bo, &msgs, stderr, err, sizeof err);
        if (o.data)
            snprintf(source, sizeof source, "data %s (%zu distinct requests)", o.data, msgs.n);
        else
            snprintf(source, sizeof source, "synthetic%s (%zu distinct requests)",
                     bo.synthetic_cats == CTR__CATS_UNIFORM ? ", uniform categoricals" : "", msgs.n);
    }
    if (rc)
        FAIL("%s", err);
    if (ctr__msgset_frame(&msgs, url.authority, path, err, sizeof err))
        FAIL("%s", err);
    if (o.print_request) {
        ctr__msg_t *m = &msgs.v[0];
        if (m->id_off != CTR__NO_ID)
            ctr__format_id(m->buf + m->id_off, 0);
        fwrite(m->buf, 1, m->len, stdout);
        fputc('\n', stdout);
        goto out;
    }

    /* Where to. */
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(url.host, url.port, &hints, &ai);
    if (gai)
        FAIL("cannot resolve \"%s\": %s", url.host, gai_strerror(gai));
    char target[300];
    snprintf(target, sizeof target, "%s", url.authority);

    /* What kind of run. */
    ctr__run_opts_t ro;
    memset(&ro, 0, sizeof ro);
    ro.addr = ai->ai_addr;
    ro.addrlen = ai->ai_addrlen;
    ro.target = target;
    ro.msgs = &msgs;
    ro.arrival = (ctr__arrival_t)o.arrival;
    ro.rate = o.rate;
    ro.seed = o.seed;
    ro.speed = o.replay_speed;
    ro.warmup_ns = o.warmup_ns;
    ro.duration_ns = o.duration_ns;
    ro.timeout_ns = o.timeout_ns;
    ro.id_base = ((uint64_t)(getpid() & 0xffff) << 48) | (((uint64_t)time(NULL) & 0xffff) << 32);
    int show_progress = o.progress >= 0 ? o.progress : (!o.quiet && isatty(STDERR_FILENO));
    ro.progress = show_progress ? stderr : NULL;
    ro.stop = &stop_flag;
    install_stop();

    ctr__run_desc_t d;
    memset(&d, 0, sizeof d);
    d.url = full_url;
    d.protocol = o.protocol == CTR__PROTO_V2 ? "v2" : "v1";
    d.source = source;
    d.examples = o.n_replay ? 0 : o.examples;
    d.max_lag_ms = o.max_lag_ms;
    d.max_cpu = o.max_cpu_pct / 100.0;
    d.timeout_s = (double)o.timeout_ns / 1e9;
    d.warmup_s = (double)o.warmup_ns / 1e9;
    d.arrival = ctr__arrival_name((ctr__arrival_t)o.arrival);

    if (o.concurrency) {
        ro.closed_loop = 1;
        ro.connections = o.concurrency;
        d.mode = "closed";
        d.concurrency = o.concurrency;
    } else {
        ro.connections = o.connections ? o.connections : DEFAULT_OPEN_CONNECTIONS;
        d.mode = "open";
        d.rate = o.rate;
    }
    if (o.n_replay) {
        d.mode = o.concurrency ? "closed" : "replay";
        if (!o.replay_loop)
            ro.max_requests = msgs.n;
        if (!o.rate && !o.concurrency && !o.sweep) {
            if (!all_timed)
                FAIL("the replay log has no \"t_ns\" on every line, so it has no pacing of its "
                           "own: give --rate R or --concurrency C");
            trace = malloc(msgs.n * sizeof *trace);
            if (!trace)
                FAIL("out of memory");
            for (size_t i = 0; i < msgs.n; i++)
                trace[i] = msgs.v[i].t_ns - msgs.v[0].t_ns;
            ro.trace = trace;
            ro.n_trace = msgs.n;
            ro.warmup_ns = 0;
            d.arrival = "trace";
            uint64_t span = (uint64_t)llround((double)trace[msgs.n - 1] / o.replay_speed);
            if (!o.duration_set)
                ro.duration_ns = span + 1000000;
        } else if (!o.duration_set && !o.replay_loop && o.rate > 0) {
            ro.duration_ns = (uint64_t)llround((double)msgs.n / o.rate * 1e9) + 1000000;
        }
        d.warmup_s = (double)ro.warmup_ns / 1e9;
    }
    d.connections = ro.connections;
    /* One descriptor per connection: lift the soft limit as far as allowed. */
    struct rlimit rl;
    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < ro.connections + 64) {
        rl.rlim_cur = rl.rlim_max < ro.connections + 64 ? rl.rlim_max : ro.connections + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    d.duration_s = (double)ro.duration_ns / 1e9;

    res = malloc(sizeof *res);
    if (!res)
        FAIL("out of memory");
    if (o.json && !(jf = open_out(o.json)))
        FAIL2();
    if (o.csv && !(cf = open_out(o.csv)))
        FAIL2();
    if (cf)
        ctr__report_csv_header(cf);
    FILE *txt = (o.json && !strcmp(o.json, "-")) || (o.csv && !strcmp(o.csv, "-")) ? stderr : stdout;

    if (!o.sweep) {
        rc = ctr__run(&ro, res, err, sizeof err);
        if (rc)
            FAIL("%s", err);
        ctr__verdict_t v;
        ctr__verdict(&d, res, &v);
        int meets = o.slo_p99_ms > 0 ? meets_slo(&o, res, &v) : -1;
        if (res->interrupted)
            fprintf(stderr, "ctrload: interrupted: the report covers the first %.1f s\n", res->window_s);
        else if (o.n_replay && !o.replay_loop && !res->hit_max_requests)
            fprintf(stderr, "ctrload: --duration ended the replay before every logged request was sent\n");
        if (!o.quiet) {
            ctr__report_text(txt, &d, res, &v);
            if (meets >= 0)
                fprintf(txt, "slo          corrected p99 %.3f ms, target %.3g ms: %s\n",
                        (double)ctr__hist_percentile(&res->lat, 99) / 1e6, o.slo_p99_ms,
                        meets ? "met" : "MISSED");
        }
        if (jf) {
            ctr__report_json_run(jf, &d, res, &v, meets);
            fputc('\n', jf);
        }
        if (cf)
            ctr__report_csv_row(cf, &d, res, &v, meets);
        if (o.dist_csv) {
            FILE *df = open_out(o.dist_csv);
            if (!df)
                FAIL2();
            ctr__report_dist_csv(df, res);
            if (close_out(df, o.dist_csv))
                FAIL2();
        }
        if (o.strict && (!v.clean || meets == 0))
            status = 1;
    } else {
        size_t n_steps = (size_t)floor((o.sweep_to - o.sweep_from) / o.sweep_step + 1e-9) + 1;
        double best = -1;
        int fails_in_row = 0;
        if (jf)
            fprintf(jf, "{\"sweep\":{\"from\":%.6g,\"to\":%.6g,\"step\":%.6g,\"slo_p99_ms\":%.6g,"
                        "\"max_error_pct\":%.6g},\n\"steps\":[\n",
                    o.sweep_from, o.sweep_to, o.sweep_step, o.slo_p99_ms, o.max_error_pct);
        if (!o.quiet)
            fprintf(txt, "sweep %s, %.6g to %.6g req/s by %.6g, target p99 <= %.6g ms, %zu connections, "
                         "%.3g s each after %.3g s warmup\n\n"
                         "%10s %10s %10s %9s %9s %9s %9s %9s %8s %6s  %s\n",
                    full_url, o.sweep_from, o.sweep_to, o.sweep_step, o.slo_p99_ms, ro.connections,
                    d.duration_s, d.warmup_s, "rate", "sent/s", "2xx/s", "p50", "p90", "p99", "p99.9",
                    "max", "errors", "clean", "meets");
        int any_unclean = 0;
        size_t ran = 0;
        for (size_t s = 0; s < n_steps; s++) {
            double rate = o.sweep_from + (double)s * o.sweep_step;
            ro.rate = rate;
            d.rate = rate;
            ro.id_base += (uint64_t)1 << 32;
            rc = ctr__run(&ro, res, err, sizeof err);
            if (rc)
                FAIL("%s", err);
            ran++;
            ctr__verdict_t v;
            ctr__verdict(&d, res, &v);
            int meets = meets_slo(&o, res, &v);
            any_unclean |= !v.clean;
            if (meets && rate > best)
                best = rate;
            ctr__pct_t p;
            ctr__pct(&res->lat, &p);
            if (!o.quiet) {
                fprintf(txt, "%10.6g %10.1f %10.1f %9.3f %9.3f %9.3f %9.3f %9.3f %8llu %6s  %s\n", rate,
                        (double)res->sent / res->window_s, (double)res->ok / res->window_s, p.p50, p.p90,
                        p.p99, p.p999, p.max,
                        (unsigned long long)(res->failed + res->completed - res->ok), v.clean ? "yes" : "NO",
                        meets ? "yes" : "no");
                for (int i = 0; i < v.n_reasons; i++)
                    fprintf(txt, "%10s - %s\n", "", v.reasons[i]);
                fflush(txt);
            }
            if (jf) {
                if (s)
                    fprintf(jf, ",\n");
                ctr__report_json_run(jf, &d, res, &v, meets);
            }
            if (cf)
                ctr__report_csv_row(cf, &d, res, &v, meets);
            /* Higher rates are pointless once the server is past its
             * capacity: two misses in a row after a rate that met the
             * target, or answers falling 10% short of the offered rate. */
            if (res->interrupted) {
                if (!o.quiet)
                    fprintf(txt, "(interrupted: the last rate ran %.1f s, the sweep stops here)\n", res->window_s);
                break;
            }
            fails_in_row = meets ? 0 : fails_in_row + 1;
            int saturated = (double)res->ok < 0.9 * (double)res->scheduled;
            if (!o.sweep_all && s + 1 < n_steps && ((best > 0 && fails_in_row >= 2) || saturated)) {
                if (!o.quiet)
                    fprintf(txt, "(%s: stopping here; --sweep-all runs every rate)\n",
                            saturated ? "the server answered under 90% of the offered rate"
                                      : "two rates in a row missed the target");
                break;
            }
        }
        if (!o.quiet) {
            if (best > 0)
                fprintf(txt, "\nhighest rate meeting p99 <= %.6g ms: %.6g req/s\n", o.slo_p99_ms, best);
            else
                fprintf(txt, "\nno rate met p99 <= %.6g ms\n", o.slo_p99_ms);
            if (any_unclean)
                fprintf(txt, "(some runs were not clean: ctrload itself could not keep up there; such "
                             "runs never count as meeting the target)\n");
        }
        if (jf) {
            fprintf(jf, "\n],\n\"steps_run\":%zu,\"best_rate\":", ran);
            if (best > 0)
                fprintf(jf, "%.6g", best);
            else
                fprintf(jf, "null");
            fprintf(jf, "}\n");
        }
        if (o.strict && best <= 0)
            status = 1;
    }
out:
    if (jf && close_out(jf, o.json))
        status = 2;
    if (cf && close_out(cf, o.csv))
        status = 2;
    free(res);
    free(trace);
    free(o.replay);
    if (ai)
        freeaddrinfo(ai);
    ctr__msgset_free(&msgs);
    return status;
}
