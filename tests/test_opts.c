/* test_opts.c - the flag parser (ctr/opts.h): every type, both --flag VALUE
 * and --flag=VALUE, defaults < environment < flags, each error message
 * word for word, enums landing as their values, bounds, lists, positional
 * arguments, the usage text and the JSON dump. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/opts.h"
#include "testutil.h"

enum color { RED = 10, GREEN = 20, BLUE = 30 };

typedef struct {
    const char *name;
    uint64_t port;
    int64_t offset;
    double rate;
    float beta;
    uint64_t bytes;
    uint64_t wait_ns;
    int quiet;
    int progress;
    enum color color;
    int level;
    uint32_t small;
    int8_t tiny;
    ctr_opt_list_t models;
    ctr_opt_list_t files;
    ctr_opt_list_t replay;
    struct { double from, to, step; } sweep;
    const char *token;
    const char *hidden;
} settings_t;

static const ctr_opt_enum_t colors[] = {{"red", RED}, {"green", GREEN}, {"blue", BLUE}, {NULL, 0}};
static const ctr_opt_enum_t levels[] = {
    {"debug", 0}, {"info", 1}, {"warn", 2}, {"error", 3}, {"warning", 2}, {NULL, 0}};

/* FROM:TO:STEP, as ctrload's --sweep. */
static int parse_sweep(const char *text, void *field, char *err, size_t errlen)
{
    double *v = field;
    char extra;
    if (sscanf(text, "%lf:%lf:%lf%c", &v[0], &v[1], &v[2], &extra) != 3 || !(v[2] > 0))
        return ctr_error(err, errlen, CTR_EINVAL, "expected FROM:TO:STEP");
    return 0;
}

#define AT(m) CTR_OPT_AT(settings_t, m)

static const ctr_opt_t rows[] = {
    {.type = CTR_OPT_HEADING, .help = "things:"},
    {.name = "name", .env = "CTR_TEST_OPTS_NAME", .type = CTR_OPT_STR, AT(name), .def = "anon", .metavar = "NAME", .help = "a name"},
    {.name = "port", .env = "CTR_TEST_OPTS_PORT", .type = CTR_OPT_UINT, AT(port), .def = "8080", .min = 0, .max = 65535, .metavar = "N", .help = "TCP port"},
    {.name = "offset", .type = CTR_OPT_INT, AT(offset), .def = "0", .imin = -100, .imax = 100, .metavar = "N", .help = "signed"},
    {.name = "rate", .env = "CTR_TEST_OPTS_RATE", .type = CTR_OPT_DOUBLE, .flags = CTR_OPT_MIN_EXCL, AT(rate), .dmin = 0, .dmax = 1e7, .metavar = "R", .help = "per second"},
    {.name = "beta", .type = CTR_OPT_DOUBLE, AT(beta), .metavar = "B", .help = "a float\nsecond line"},
    {.name = "bytes", .type = CTR_OPT_BYTES, AT(bytes), .def = "1m", .min = 64, .max = (uint64_t)1 << 32, .metavar = "N", .help = "size"},
    {.name = "wait", .type = CTR_OPT_DURATION, AT(wait_ns), .def = "2s", .min = 1000000, .max = UINT64_MAX, .metavar = "D", .help = "how long"},
    {.name = "quiet", .env = "CTR_TEST_OPTS_QUIET", .type = CTR_OPT_BOOL, AT(quiet), .def = "0", .help = "say less"},
    {.name = "no-progress", .type = CTR_OPT_BOOL, .flags = CTR_OPT_NEGATE, AT(progress), .help = "no live line"},
    {.name = "color", .env = "CTR_TEST_OPTS_COLOR", .type = CTR_OPT_ENUM, AT(color), .def = "green", .enums = colors, .help = "paint"},
    {.name = "level", .type = CTR_OPT_ENUM, .flags = CTR_OPT_ICASE, AT(level), .def = "info", .enums = levels, .metavar = "LEVEL", .help = "log level"},
    {.name = "small", .type = CTR_OPT_UINT, AT(small), .metavar = "N", .help = "32 bits, no bounds"},
    {.name = "tiny", .type = CTR_OPT_INT, AT(tiny), .metavar = "N", .help = "8 bits"},
    {.name = "model", .type = CTR_OPT_LIST, AT(models), .metavar = "M", .help = "twice at most"},
    {.name = "replay", .type = CTR_OPT_LIST, .flags = CTR_OPT_GREEDY, AT(replay), .metavar = "LOG...", .help = "logs"},
    {.name = "sweep", .type = CTR_OPT_CUSTOM, AT(sweep), .parse = parse_sweep, .metavar = "FROM:TO:STEP", .help = "rates"},
    {.name = "token", .type = CTR_OPT_STR, .flags = CTR_OPT_SECRET, AT(token), .metavar = "T", .help = "secret"},
    {.name = "hidden", .type = CTR_OPT_STR, .flags = CTR_OPT_HIDDEN | CTR_OPT_NO_JSON, AT(hidden), .metavar = "X", .help = "not shown"},
    {.name = NULL, .type = CTR_OPT_LIST, AT(files), .metavar = "FILE...", .help = "inputs"},
};

static const ctr_opts_t spec = {rows, CTR_ARRAY_LEN(rows), "usage: prog [flags] FILE...\n", "the end\n"};

static const char *model_buf[2], *file_buf[8], *replay_buf[8];

static void init(settings_t *s)
{
    memset(s, 0, sizeof *s);
    s->progress = -1;
    s->models = (ctr_opt_list_t){model_buf, 0, 2};
    s->files = (ctr_opt_list_t){file_buf, 0, 8};
    s->replay = (ctr_opt_list_t){replay_buf, 0, 8};
}

static char err[512];
static ctr_opts_result_t res;

/* Parses the NULL-ended arguments after the program name into s. */
static int parse(settings_t *s, ...)
{
    char *argv[32] = {"prog"};
    int argc = 1;
    va_list ap;
    va_start(ap, s);
    for (char *a; argc < 31 && (a = va_arg(ap, char *));)
        argv[argc++] = a;
    va_end(ap);
    init(s);
    err[0] = 0;
    return ctr_opts_parse(&spec, s, argc, argv, &res, err, sizeof err);
}

#define EXPECT_ERR(code, msg, ...)                                                        \
    do {                                                                                  \
        settings_t s_;                                                                    \
        int rc_ = parse(&s_, __VA_ARGS__, (char *)NULL);                                  \
        CHECKF(rc_ == (code), "rc %d (%s), expected %d", rc_, ctr_strerror(rc_), code);   \
        CHECKF(!strcmp(err, msg), "message \"%s\", expected \"%s\"", err, msg);           \
    } while (0)

static void test_defaults(void)
{
    settings_t s;
    CHECK(parse(&s, (char *)NULL) == 0);
    CHECK(!strcmp(s.name, "anon"));
    CHECK(s.port == 8080 && s.offset == 0 && s.rate == 0 && s.beta == 0);
    CHECK(s.bytes == 1048576 && s.wait_ns == 2000000000ull);
    CHECK(s.quiet == 0 && s.progress == -1);
    CHECK(s.color == GREEN && s.level == 1);
    CHECK(s.models.n == 0 && s.files.n == 0 && !s.token);
    CHECK(!res.help);
    CHECK(ctr_opts_from(&res, "port") == CTR_OPT_FROM_DEFAULT);
    CHECK(ctr_opts_from(&res, "beta") == CTR_OPT_UNSET);
    CHECK(ctr_opts_from(&res, "nonesuch") == CTR_OPT_UNSET);
    CHECK(ctr_opts_from(&res, NULL) == CTR_OPT_UNSET);
}

static void test_types_both_syntaxes(void)
{
    settings_t s;
    CHECK(parse(&s, "--name", "x", "--port", "9", "--offset", "-7", "--rate", "2.5", "--beta", "0.25",
                "--bytes", "64k", "--wait", "500ms", "--quiet", "--no-progress", "--color", "blue",
                "--level", "WARN", "--small", "4294967295", "--tiny", "-128", "--sweep", "1:10:3",
                "--token", "t0k", (char *)NULL) == 0);
    CHECKF(!strcmp(s.name, "x") && s.port == 9 && s.offset == -7 && s.rate == 2.5 && s.beta == 0.25f, "%s", err);
    CHECK(s.bytes == 65536 && s.wait_ns == 500000000ull && s.quiet == 1 && s.progress == 0);
    CHECK(s.color == BLUE && s.level == 2 && s.small == 4294967295u && s.tiny == -128);
    CHECK(s.sweep.from == 1 && s.sweep.to == 10 && s.sweep.step == 3 && !strcmp(s.token, "t0k"));
    CHECK(ctr_opts_from(&res, "port") == CTR_OPT_FROM_FLAG);

    CHECK(parse(&s, "--name=x=y", "--port=9", "--offset=+7", "--rate=1e7", "--beta=-1", "--bytes=2MiB",
                "--wait=1.5", "--quiet=false", "--no-progress=0", "--color=red", "--level=warning",
                "--small=0", "--tiny=127", "--sweep=1:2:1", "--name=", (char *)NULL) == 0);
    CHECKF(!strcmp(s.name, "") && s.port == 9 && s.offset == 7 && s.rate == 1e7 && s.beta == -1.0f, "%s", err);
    CHECK(s.bytes == 2097152 && s.wait_ns == 1500000000ull && s.quiet == 0 && s.progress == 1);
    CHECK(s.color == RED && s.level == 2 && s.small == 0 && s.tiny == 127);

    /* every byte suffix, every duration unit */
    CHECK(parse(&s, "--bytes", "1g", (char *)NULL) == 0 && s.bytes == 1073741824ull);
    CHECK(parse(&s, "--bytes", "3KB", (char *)NULL) == 0 && s.bytes == 3072);
    CHECK(parse(&s, "--bytes", "100", (char *)NULL) == 0 && s.bytes == 100);
    CHECK(parse(&s, "--wait", "2500us", (char *)NULL) == 0 && s.wait_ns == 2500000);
    CHECK(parse(&s, "--wait", "2m", (char *)NULL) == 0 && s.wait_ns == 120000000000ull);
    CHECK(parse(&s, "--wait", "1h", (char *)NULL) == 0 && s.wait_ns == 3600000000000ull);
    CHECK(parse(&s, "--wait", "10s", (char *)NULL) == 0 && s.wait_ns == 10000000000ull);
    CHECK(parse(&s, "--wait", "2000000ns", (char *)NULL) == 0 && s.wait_ns == 2000000);
    /* a bool's every spelling */
    const char *on[] = {"1", "true", "TRUE", "yes", "on"}, *off[] = {"0", "false", "no", "Off", ""};
    for (size_t i = 0; i < 5; i++) {
        char a[32], b[32];
        snprintf(a, sizeof a, "--quiet=%s", on[i]);
        snprintf(b, sizeof b, "--quiet=%s", off[i]);
        CHECK(parse(&s, a, (char *)NULL) == 0 && s.quiet == 1);
        CHECK(parse(&s, "--quiet", b, (char *)NULL) == 0 && s.quiet == 0);
    }
    /* a switch never takes the next argument */
    CHECK(parse(&s, "--quiet", "f1", (char *)NULL) == 0 && s.quiet == 1 && s.files.n == 1);
    /* the last occurrence wins */
    CHECK(parse(&s, "--port", "1", "--port=2", (char *)NULL) == 0 && s.port == 2);
    /* a value may look like a flag */
    CHECK(parse(&s, "--name", "--port", (char *)NULL) == 0 && !strcmp(s.name, "--port") && s.port == 8080);
    CHECK(parse(&s, "--offset", "-100", (char *)NULL) == 0 && s.offset == -100);
}

static void test_enum_values(void)
{
    settings_t s;
    CHECK(parse(&s, "--color", "red", (char *)NULL) == 0 && s.color == RED && (int)s.color == 10);
    CHECK(parse(&s, "--level", "Debug", (char *)NULL) == 0 && s.level == 0);
    CHECK(parse(&s, "--level", "ERROR", (char *)NULL) == 0 && s.level == 3);
    CHECK(!strcmp(ctr_opts_enum_name(levels, 2), "warn"));
    CHECK(!strcmp(ctr_opts_enum_name(colors, BLUE), "blue"));
    CHECK(ctr_opts_enum_name(colors, 99) == NULL);
    EXPECT_ERR(CTR_EINVAL, "--color: unknown value \"Red\" (expected red, green, blue)", "--color", "Red");
    EXPECT_ERR(CTR_EINVAL, "--level: unknown value \"loud\" (expected debug, info, warn, error)", "--level=loud");
}

static void test_env(void)
{
    settings_t s;
    setenv("CTR_TEST_OPTS_PORT", "1234", 1);
    setenv("CTR_TEST_OPTS_NAME", "envname", 1);
    setenv("CTR_TEST_OPTS_QUIET", "true", 1);
    setenv("CTR_TEST_OPTS_COLOR", "blue", 1);
    setenv("CTR_TEST_OPTS_RATE", "3", 1);
    CHECK(parse(&s, (char *)NULL) == 0);
    CHECK(s.port == 1234 && !strcmp(s.name, "envname") && s.quiet == 1 && s.color == BLUE && s.rate == 3);
    CHECK(ctr_opts_from(&res, "port") == CTR_OPT_FROM_ENV);
    /* flags beat the environment */
    CHECK(parse(&s, "--port", "99", "--name=flag", "--quiet=0", "--color", "red", (char *)NULL) == 0);
    CHECK(s.port == 99 && !strcmp(s.name, "flag") && s.quiet == 0 && s.color == RED && s.rate == 3);
    CHECK(ctr_opts_from(&res, "port") == CTR_OPT_FROM_FLAG && ctr_opts_from(&res, "rate") == CTR_OPT_FROM_ENV);

    setenv("CTR_TEST_OPTS_PORT", "abc", 1);
    EXPECT_ERR(CTR_EINVAL, "environment variable CTR_TEST_OPTS_PORT: expected a non-negative integer, got \"abc\"",
               "--port", "1");
    setenv("CTR_TEST_OPTS_PORT", "70000", 1);
    EXPECT_ERR(CTR_ERANGE, "environment variable CTR_TEST_OPTS_PORT: 70000 is outside 0..65535", "--port", "1");
    unsetenv("CTR_TEST_OPTS_PORT");
    setenv("CTR_TEST_OPTS_QUIET", "maybe", 1);
    EXPECT_ERR(CTR_EINVAL, "environment variable CTR_TEST_OPTS_QUIET: expected true/false or 1/0, got \"maybe\"",
               "--quiet");
    /* --help works whatever the environment holds; a bad variable is
     * reported before a bad flag */
    CHECK(parse(&s, "--port", "1", "--help", (char *)NULL) == 0 && res.help);
    EXPECT_ERR(CTR_EINVAL, "environment variable CTR_TEST_OPTS_QUIET: expected true/false or 1/0, got \"maybe\"",
               "--port", "x");
    setenv("CTR_TEST_OPTS_QUIET", "", 1);
    CHECK(parse(&s, (char *)NULL) == 0 && s.quiet == 0);
    setenv("CTR_TEST_OPTS_COLOR", "mauve", 1);
    EXPECT_ERR(CTR_EINVAL, "environment variable CTR_TEST_OPTS_COLOR: unknown value \"mauve\" (expected red, green, blue)",
               "--color", "red");
    unsetenv("CTR_TEST_OPTS_NAME");
    unsetenv("CTR_TEST_OPTS_QUIET");
    unsetenv("CTR_TEST_OPTS_COLOR");
    unsetenv("CTR_TEST_OPTS_RATE");
}

static void test_errors(void)
{
    EXPECT_ERR(CTR_EINVAL, "unknown flag \"--bogus\"", "--bogus");
    EXPECT_ERR(CTR_EINVAL, "unknown flag \"--bogus\"", "--bogus=3");
    EXPECT_ERR(CTR_EINVAL, "unknown flag \"-x\"", "-x");
    EXPECT_ERR(CTR_EINVAL, "unknown flag \"--por\"", "--por", "1");       /* no prefix matching */
    EXPECT_ERR(CTR_EINVAL, "--port needs a value (N)", "--port");
    EXPECT_ERR(CTR_EINVAL, "--color needs a value (red|green|blue)", "--color");
    EXPECT_ERR(CTR_EINVAL, "--port: expected a non-negative integer, got \"x\"", "--port", "x");
    EXPECT_ERR(CTR_EINVAL, "--port: expected a non-negative integer, got \"-1\"", "--port=-1");
    EXPECT_ERR(CTR_EINVAL, "--port: expected a non-negative integer, got \"\"", "--port=");
    EXPECT_ERR(CTR_EINVAL, "--port: expected a non-negative integer, got \" 1\"", "--port", " 1");
    EXPECT_ERR(CTR_EINVAL, "--port: expected a non-negative integer, got \"1x\"", "--port", "1x");
    EXPECT_ERR(CTR_EINVAL, "--port: expected a non-negative integer, got \"99999999999999999999\"", "--port",
               "99999999999999999999");
    EXPECT_ERR(CTR_ERANGE, "--port: 70000 is outside 0..65535", "--port", "70000");
    EXPECT_ERR(CTR_ERANGE, "--port: 70000 is outside 0..65535", "--port=70000");
    EXPECT_ERR(CTR_EINVAL, "--offset: expected an integer, got \"1.5\"", "--offset", "1.5");
    EXPECT_ERR(CTR_ERANGE, "--offset: -101 is outside -100..100", "--offset", "-101");
    EXPECT_ERR(CTR_EINVAL, "--rate: expected a number, got \"fast\"", "--rate", "fast");
    EXPECT_ERR(CTR_EINVAL, "--rate: expected a number, got \"nan\"", "--rate", "nan");
    EXPECT_ERR(CTR_EINVAL, "--rate: expected a number, got \"inf\"", "--rate", "inf");
    EXPECT_ERR(CTR_ERANGE, "--rate: 0 is outside (0, 1e+07]", "--rate", "0");
    EXPECT_ERR(CTR_ERANGE, "--rate: 2e7 is outside (0, 1e+07]", "--rate", "2e7");
    EXPECT_ERR(CTR_ERANGE, "--beta: 1e39 is too large", "--beta", "1e39");
    EXPECT_ERR(CTR_EINVAL, "--bytes: expected a non-negative integer (k/m/g suffix allowed), got \"2x\"", "--bytes", "2x");
    EXPECT_ERR(CTR_ERANGE, "--bytes: 10 is outside 64..4294967296", "--bytes", "10");
    EXPECT_ERR(CTR_ERANGE, "--bytes: 5g is outside 64..4294967296", "--bytes", "5g");
    EXPECT_ERR(CTR_EINVAL, "--wait: expected a duration such as 10s, 500ms, 2m, got \"soon\"", "--wait", "soon");
    EXPECT_ERR(CTR_EINVAL, "--wait: expected a duration such as 10s, 500ms, 2m, got \"-1s\"", "--wait", "-1s");
    EXPECT_ERR(CTR_ERANGE, "--wait: 0 is outside 1000000..18446744073709551615", "--wait", "0");
    EXPECT_ERR(CTR_EINVAL, "--quiet: expected true/false or 1/0, got \"maybe\"", "--quiet=maybe");
    EXPECT_ERR(CTR_ERANGE, "--small: 4294967296 is outside 0..4294967295", "--small", "4294967296");
    EXPECT_ERR(CTR_ERANGE, "--tiny: 128 is outside -128..127", "--tiny", "128");
    EXPECT_ERR(CTR_EINVAL, "--sweep: expected FROM:TO:STEP, got \"1:2\"", "--sweep", "1:2");
    EXPECT_ERR(CTR_ERANGE, "--model: at most 2, got one more: \"c\"", "--model", "a", "--model=b", "--model", "c");
    EXPECT_ERR(CTR_EINVAL, "--replay needs a value (LOG...)", "--replay", "--port", "1");
    EXPECT_ERR(CTR_ERANGE, "FILE...: at most 8, got one more: \"9\"", "1", "2", "3", "4", "5", "6", "7", "8", "9");
}

static const ctr_opt_t req_rows[] = {
    {.name = "data", .env = "CTR_TEST_OPTS_DATA", .type = CTR_OPT_STR, .flags = CTR_OPT_REQUIRED, AT(name), .metavar = "F"},
    {.name = "out", .type = CTR_OPT_STR, .flags = CTR_OPT_REQUIRED, AT(token), .metavar = "F"},
    {.name = "model", .type = CTR_OPT_LIST, .flags = CTR_OPT_REQUIRED, .min = 2, AT(models), .metavar = "M"},
    {.name = NULL, .type = CTR_OPT_LIST, .flags = CTR_OPT_REQUIRED, AT(files), .metavar = "LOG"},
};
static const ctr_opts_t req_spec = {req_rows, CTR_ARRAY_LEN(req_rows), NULL, NULL};

static int parse_req(settings_t *s, int argc, char **argv)
{
    init(s);
    err[0] = 0;
    return ctr_opts_parse(&req_spec, s, argc, argv, &res, err, sizeof err);
}

static void test_required(void)
{
    settings_t s;
    char *a1[] = {"p", "--out", "o", "--model", "a", "--model", "b", "log"};
    CHECK(parse_req(&s, 8, a1) == CTR_EINVAL && !strcmp(err, "--data is required (or set CTR_TEST_OPTS_DATA)"));
    setenv("CTR_TEST_OPTS_DATA", "d", 1);
    CHECKF(parse_req(&s, 8, a1) == 0, "%s", err);
    CHECK(!strcmp(s.name, "d") && !strcmp(s.token, "o") && s.models.n == 2 && s.files.n == 1);
    unsetenv("CTR_TEST_OPTS_DATA");
    char *a2[] = {"p", "--data", "d", "--model", "a", "--model", "b", "log"};
    CHECK(parse_req(&s, 8, a2) == CTR_EINVAL && !strcmp(err, "--out is required"));
    char *a3[] = {"p", "--data", "d", "--out", "o", "--model", "a", "log"};
    CHECK(parse_req(&s, 8, a3) == CTR_EINVAL && !strcmp(err, "--model: 1 given, 2 needed"));
    char *a3b[] = {"p", "--data", "d", "--out", "o", "log"};
    CHECK(parse_req(&s, 6, a3b) == CTR_EINVAL && !strcmp(err, "--model is required, 2 times"));
    char *a4[] = {"p", "--data", "d", "--out", "o", "--model", "a", "--model", "b"};
    CHECK(parse_req(&s, 9, a4) == CTR_EINVAL && !strcmp(err, "missing LOG"));
    /* --help wins over missing flags */
    char *a5[] = {"p", "--help"};
    CHECK(parse_req(&s, 2, a5) == 0 && res.help);
}

static void test_positional_help_and_greedy(void)
{
    settings_t s;
    CHECK(parse(&s, "a", "--port", "1", "-", "b", (char *)NULL) == 0);
    CHECK(s.files.n == 3 && !strcmp(s.files.v[0], "a") && !strcmp(s.files.v[1], "-") && !strcmp(s.files.v[2], "b"));
    CHECK(ctr_opts_from(&res, NULL) == CTR_OPT_FROM_FLAG);
    CHECK(parse(&s, "--port", "1", "--", "--port", "-x", (char *)NULL) == 0);
    CHECK(s.port == 1 && s.files.n == 2 && !strcmp(s.files.v[0], "--port") && !strcmp(s.files.v[1], "-x"));
    CHECK(parse(&s, "--model", "a", "--model=b", (char *)NULL) == 0);
    CHECK(s.models.n == 2 && !strcmp(s.models.v[0], "a") && !strcmp(s.models.v[1], "b"));
    CHECK(parse(&s, "--replay", "a", "b", "c", "--port", "2", "d", (char *)NULL) == 0);
    CHECK(s.replay.n == 3 && !strcmp(s.replay.v[2], "c") && s.port == 2 && s.files.n == 1);
    CHECK(parse(&s, "--replay=a", "b", (char *)NULL) == 0 && s.replay.n == 2);
    /* help stops the parse: what follows is not looked at */
    CHECK(parse(&s, "--port", "1", "-h", "--bogus", (char *)NULL) == 0 && res.help && s.port == 1);
    CHECK(parse(&s, "--help", (char *)NULL) == 0 && res.help);
    CHECK(parse(&s, "--", "--help", (char *)NULL) == 0 && !res.help && s.files.n == 1);
    /* without a positional row an argument is refused */
    static const ctr_opt_t one[] = {{.name = "port", .type = CTR_OPT_UINT, AT(port)}};
    static const ctr_opts_t one_spec = {one, 1, NULL, NULL};
    char *argv[] = {"p", "extra"};
    init(&s);
    CHECK(ctr_opts_parse(&one_spec, &s, 2, argv, &res, err, sizeof err) == CTR_EINVAL);
    CHECKF(!strcmp(err, "unexpected argument \"extra\" (flags start with --)"), "%s", err);
    /* a row without default leaves the caller's value */
    init(&s);
    s.port = 77;
    char *argv0[] = {"p"};
    CHECK(ctr_opts_parse(&one_spec, &s, 1, argv0, &res, err, sizeof err) == 0 && s.port == 77);
}

static char *read_all(FILE *f)
{
    static char buf[8192];
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    return buf;
}

static void test_usage(void)
{
    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (!f)
        return;
    settings_t d;
    init(&d);
    d.beta = 0.5f;
    d.small = 3;
    ctr_opts_usage(f, &spec, &d);
    const char *u = read_all(f);
    const char *want =
        "usage: prog [flags] FILE...\n"
        "things:\n"
        "  --name NAME             CTR_TEST_OPTS_NAME   a name [anon]\n"
        "  --port N                CTR_TEST_OPTS_PORT   TCP port [8080]\n"
        "  --offset N                                   signed [0]\n"
        "  --rate R                CTR_TEST_OPTS_RATE   per second [0]\n"
        "  --beta B                                     a float\n"
        "                                               second line [0.5]\n"
        "  --bytes N                                    size [1m]\n"
        "  --wait D                                     how long [2s]\n"
        "  --quiet                 CTR_TEST_OPTS_QUIET  say less\n"
        "  --no-progress                                no live line\n"
        "  --color red|green|blue  CTR_TEST_OPTS_COLOR  paint [green]\n"
        "  --level LEVEL                                log level [info]\n"
        "  --small N                                    32 bits, no bounds [3]\n"
        "  --tiny N                                     8 bits [0]\n"
        "  --model M                                    twice at most\n"
        "  --replay LOG...                              logs\n"
        "  --sweep FROM:TO:STEP                         rates\n"
        "  --token T                                    secret\n"
        "  FILE...                                      inputs\n"
        "the end\n";
    CHECKF(!strcmp(u, want), "usage:\n%s", u);
    /* without defaults: only the rows' own default texts */
    FILE *g = tmpfile();
    if (g) {
        ctr_opts_usage(g, &spec, NULL);
        u = read_all(g);
        CHECKF(strstr(u, "  --rate R                CTR_TEST_OPTS_RATE   per second\n"), "%s", u);
        CHECKF(strstr(u, "  --port N                CTR_TEST_OPTS_PORT   TCP port [8080]\n"), "%s", u);
        fclose(g);
    }
    /* a flag wider than the column puts its help on the next line */
    static const ctr_opt_t wide[] = {
        {.name = "a", .type = CTR_OPT_STR, AT(name), .metavar = "X", .help = "short"},
        {.name = "a-very-long-flag-name-indeed", .type = CTR_OPT_STR, AT(token), .metavar = "VALUE", .help = "long"},
    };
    static const ctr_opts_t wide_spec = {wide, 2, NULL, NULL};
    FILE *h = tmpfile();
    if (h) {
        ctr_opts_usage(h, &wide_spec, NULL);
        u = read_all(h);
        CHECKF(!strcmp(u, "  --a X  short\n  --a-very-long-flag-name-indeed VALUE\n         long\n"), "%s", u);
        fclose(h);
    }
    fclose(f);
}

static void test_json(void)
{
    settings_t s;
    CHECK(parse(&s, "--name", "a\"b\n", "--rate", "0.5", "--token", "secret", "--model", "m1", "--quiet",
                "--level", "WARNING", "--offset", "-3", (char *)NULL) == 0);
    char out[2048];
    size_t n = ctr_opts_json(&spec, &s, out, sizeof out);
    const char *want =
        "{\"name\":\"a\\\"b\\n\",\"port\":8080,\"offset\":-3,\"rate\":0.5,\"beta\":0,\"bytes\":1048576,"
        "\"wait\":2000000000,\"quiet\":true,\"no-progress\":false,\"color\":\"green\",\"level\":\"warn\","
        "\"small\":0,\"tiny\":0,\"model\":[\"m1\"],\"replay\":[],\"sweep\":null,\"token\":\"(set)\"}";
    CHECKF(!strcmp(out, want), "json\n%s\nexpected\n%s", out, want);
    CHECK(n == strlen(want));
    /* cut short: a prefix, NUL-terminated, the full length returned */
    char small[20];
    memset(small, 'x', sizeof small);
    size_t m = ctr_opts_json(&spec, &s, small, sizeof small);
    CHECK(m == n);
    CHECKF(memchr(small, 0, sizeof small) && !strncmp(small, want, strlen(small)), "%.20s", small);
    CHECK(ctr_opts_json(&spec, &s, NULL, 0) == n);
    s.token = NULL;
    ctr_opts_json(&spec, &s, out, sizeof out);
    CHECK(strstr(out, "\"token\":null") != NULL);
}

static void test_primitives(void)
{
    uint64_t u;
    double d;
    CHECK(ctr_opts_parse_u64("18446744073709551615", &u) == 0 && u == UINT64_MAX);
    CHECK(ctr_opts_parse_u64("18446744073709551616", &u) == CTR_EINVAL);
    CHECK(ctr_opts_parse_u64("+1", &u) == CTR_EINVAL && ctr_opts_parse_u64("", &u) == CTR_EINVAL);
    CHECK(ctr_opts_parse_double("-2.5e-3", &d) == 0 && d == -2.5e-3);
    CHECK(ctr_opts_parse_double("1e999", &d) == CTR_EINVAL);
    CHECK(ctr_opts_parse_duration("0", &u) == 0 && u == 0);
    CHECK(ctr_opts_parse_duration("1.5ms", &u) == 0 && u == 1500000);
    CHECK(ctr_opts_parse_duration("10x", &u) == CTR_EINVAL);
    CHECK(ctr_opts_parse_duration("1e10h", &u) == CTR_EINVAL);
}

int main(void)
{
    test_defaults();
    test_types_both_syntaxes();
    test_enum_values();
    test_env();
    test_errors();
    test_required();
    test_positional_help_and_greedy();
    test_usage();
    test_json();
    test_primitives();
    return test_main_end();
}
