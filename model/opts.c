/* opts.c - the table-driven flag parser (see ctr/opts.h).
 *
 * One pass each over the defaults, the environment and argv, every text
 * going through set_value(), the single place that knows how a type is
 * parsed, bounded and stored. A malformed table is a programmer error and
 * aborts (check_table), so a typo in a row shows up the first time the
 * program or its test runs, not as a confusing message to a user. */
#include "ctr/opts.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctr/common.h"
#include "ctr/json_text.h"

/* ---- primitive parsers ------------------------------------------------ */

int ctr_opts_parse_u64(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return CTR_EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return CTR_EINVAL;
    *out = v;
    return 0;
}

/* Decimal with an optional k/m/g (x1024) suffix, then optional i and b. */
static int parse_bytes(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return CTR_EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return CTR_EINVAL;
    if (*end) {
        unsigned shift;
        switch (*end) {
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        default: return CTR_EINVAL;
        }
        end++;
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'b' || *end == 'B')
            end++;
        if (*end || v > (UINT64_MAX >> shift))
            return CTR_EINVAL;
        v <<= shift;
    }
    *out = v;
    return 0;
}

static int parse_i64(const char *s, int64_t *out)
{
    const char *d = s && (*s == '-' || *s == '+') ? s + 1 : s;
    if (!d || !isdigit((unsigned char)*d))
        return CTR_EINVAL;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return CTR_EINVAL;
    *out = v;
    return 0;
}

int ctr_opts_parse_double(const char *s, double *out)
{
    if (!s || !*s || isspace((unsigned char)*s))
        return CTR_EINVAL;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(v))
        return CTR_EINVAL;
    *out = v;
    return 0;
}

int ctr_opts_parse_duration(const char *s, uint64_t *ns)
{
    if (!s || !*s || isspace((unsigned char)*s))
        return CTR_EINVAL;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || errno || !(v >= 0) || !isfinite(v))
        return CTR_EINVAL;
    double mult;
    if (!*end || !strcmp(end, "s"))
        mult = 1e9;
    else if (!strcmp(end, "ms"))
        mult = 1e6;
    else if (!strcmp(end, "us"))
        mult = 1e3;
    else if (!strcmp(end, "ns"))
        mult = 1;
    else if (!strcmp(end, "m"))
        mult = 60e9;
    else if (!strcmp(end, "h"))
        mult = 3600e9;
    else
        return CTR_EINVAL;
    if (v * mult > 1e18)
        return CTR_EINVAL;
    *ns = (uint64_t)llround(v * mult);
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    if (!*s || !strcmp(s, "0") || !strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off"))
        *out = 0;
    else if (!strcmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on"))
        *out = 1;
    else
        return CTR_EINVAL;
    return 0;
}

/* ---- fields of any width ---------------------------------------------- */

static size_t natural_size(ctr_opt_type_t t)
{
    switch (t) {
    case CTR_OPT_STR: return sizeof(const char *);
    case CTR_OPT_UINT: case CTR_OPT_BYTES: case CTR_OPT_DURATION: return sizeof(uint64_t);
    case CTR_OPT_INT: return sizeof(int64_t);
    case CTR_OPT_DOUBLE: return sizeof(double);
    case CTR_OPT_BOOL: case CTR_OPT_ENUM: return sizeof(int);
    case CTR_OPT_LIST: return sizeof(ctr_opt_list_t);
    default: return 0;
    }
}

static size_t field_size(const ctr_opt_t *o)
{
    return o->size ? o->size : natural_size(o->type);
}

static void store_uint(void *p, size_t size, uint64_t v)
{
    switch (size) {
    case 1: { uint8_t x = (uint8_t)v; memcpy(p, &x, 1); break; }
    case 2: { uint16_t x = (uint16_t)v; memcpy(p, &x, 2); break; }
    case 4: { uint32_t x = (uint32_t)v; memcpy(p, &x, 4); break; }
    default: memcpy(p, &v, 8);
    }
}

static uint64_t load_uint(const void *p, size_t size)
{
    switch (size) {
    case 1: { uint8_t x; memcpy(&x, p, 1); return x; }
    case 2: { uint16_t x; memcpy(&x, p, 2); return x; }
    case 4: { uint32_t x; memcpy(&x, p, 4); return x; }
    default: { uint64_t x; memcpy(&x, p, 8); return x; }
    }
}

static void store_int(void *p, size_t size, int64_t v)
{
    switch (size) {
    case 1: { int8_t x = (int8_t)v; memcpy(p, &x, 1); break; }
    case 2: { int16_t x = (int16_t)v; memcpy(p, &x, 2); break; }
    case 4: { int32_t x = (int32_t)v; memcpy(p, &x, 4); break; }
    default: memcpy(p, &v, 8);
    }
}

static int64_t load_int(const void *p, size_t size)
{
    switch (size) {
    case 1: { int8_t x; memcpy(&x, p, 1); return x; }
    case 2: { int16_t x; memcpy(&x, p, 2); return x; }
    case 4: { int32_t x; memcpy(&x, p, 4); return x; }
    default: { int64_t x; memcpy(&x, p, 8); return x; }
    }
}

static double load_double(const void *p, size_t size)
{
    if (size == sizeof(float)) {
        float x;
        memcpy(&x, p, sizeof x);
        return x;
    }
    double x;
    memcpy(&x, p, sizeof x);
    return x;
}

/* ---- the table ---------------------------------------------------------- */

static int size_ok(const ctr_opt_t *o)
{
    size_t s = field_size(o);
    switch (o->type) {
    case CTR_OPT_UINT: case CTR_OPT_BYTES: case CTR_OPT_DURATION: case CTR_OPT_INT:
        return s == 1 || s == 2 || s == 4 || s == 8;
    case CTR_OPT_DOUBLE: return s == sizeof(float) || s == sizeof(double);
    case CTR_OPT_BOOL: case CTR_OPT_ENUM: return s == 1 || s == 2 || s == 4;
    case CTR_OPT_CUSTOM: return 1;
    default: return s == natural_size(o->type);
    }
}

/* Programmer errors in a table abort here, on the first parse. */
static void check_table(const ctr_opts_t *spec)
{
    int positional = 0;
    CTR_ASSERT(spec->n_opts <= CTR_OPTS_MAX);
    for (size_t i = 0; i < spec->n_opts; i++) {
        const ctr_opt_t *o = &spec->opts[i];
        if (o->type == CTR_OPT_HEADING)
            continue;
        CTR_ASSERT(o->type <= CTR_OPT_CUSTOM);
        CTR_ASSERT(o->name || o->type == CTR_OPT_LIST);
        CTR_ASSERT(!o->name || (o->name[0] && o->name[0] != '-'));
        positional += !o->name;
        CTR_ASSERT(size_ok(o));
        CTR_ASSERT(o->type != CTR_OPT_ENUM || o->enums);
        CTR_ASSERT(o->type != CTR_OPT_CUSTOM || o->parse);
        CTR_ASSERT(o->type != CTR_OPT_LIST || (!o->env && !o->def));
        CTR_ASSERT(!(o->flags & CTR_OPT_REQUIRED) || !o->def);
        CTR_ASSERT(o->type == CTR_OPT_LIST || o->max >= o->min);
        CTR_ASSERT(o->imax >= o->imin && !(o->dmax < o->dmin));
        for (size_t j = 0; j < i && o->name; j++)
            CTR_ASSERT(!spec->opts[j].name || strcmp(spec->opts[j].name, o->name));
    }
    CTR_ASSERT(positional <= 1);
}

static const ctr_opt_t *find_flag(const ctr_opts_t *spec, const char *name, size_t len)
{
    for (size_t i = 0; i < spec->n_opts; i++) {
        const ctr_opt_t *o = &spec->opts[i];
        if (o->type != CTR_OPT_HEADING && o->name && strlen(o->name) == len && !strncmp(o->name, name, len))
            return o;
    }
    return NULL;
}

static const ctr_opt_t *find_positional(const ctr_opts_t *spec)
{
    for (size_t i = 0; i < spec->n_opts; i++)
        if (spec->opts[i].type == CTR_OPT_LIST && !spec->opts[i].name)
            return &spec->opts[i];
    return NULL;
}

const char *ctr_opts_enum_name(const ctr_opt_enum_t *e, int value)
{
    for (; e && e->name; e++)
        if (e->value == value)
            return e->name;
    return NULL;
}

/* "a, b, c" (sep ", ") or "a|b|c": the names without aliases. */
static void enum_names(const ctr_opt_enum_t *names, const char *sep, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = 0;
    for (const ctr_opt_enum_t *e = names; e->name; e++) {
        if (ctr_opts_enum_name(names, e->value) != e->name)
            continue;       /* an alias of an earlier name */
        int n = snprintf(out + len, cap - len, "%s%s", len ? sep : "", e->name);
        if (n < 0 || (size_t)n >= cap - len)
            break;
        len += (size_t)n;
    }
}

/* "--port", "environment variable CTRD_PORT" or the positional metavar. */
static const char *label(const ctr_opt_t *o, int env, char *buf, size_t cap)
{
    if (env)
        snprintf(buf, cap, "environment variable %s", o->env);
    else if (o->name)
        snprintf(buf, cap, "--%s", o->name);
    else
        snprintf(buf, cap, "%s", o->metavar ? o->metavar : "argument");
    return buf;
}

/* "0..65535", "(0, 1e+07]", "1..inf": the bounds as text for messages. */
static void range_text(const ctr_opt_t *o, char *out, size_t cap)
{
    const char *open = o->flags & CTR_OPT_MIN_EXCL ? "(" : "";
    switch (o->type) {
    case CTR_OPT_INT:
        snprintf(out, cap, "%s%" PRId64 "..%" PRId64, open, o->imin, o->imax);
        break;
    case CTR_OPT_DOUBLE:
        if (*open)
            snprintf(out, cap, "(%g, %g%s", o->dmin, o->dmax, isinf(o->dmax) ? ")" : "]");
        else
            snprintf(out, cap, "%g..%g", o->dmin, o->dmax);
        break;
    default:
        if (*open)
            snprintf(out, cap, "(%" PRIu64 ", %" PRIu64 "]", o->min, o->max);
        else
            snprintf(out, cap, "%" PRIu64 "..%" PRIu64, o->min, o->max);
    }
}

static int out_of_range(const ctr_opt_t *o, const char *from, const char *text, char *err, size_t errlen)
{
    char r[96];
    range_text(o, r, sizeof r);
    return ctr_error(err, errlen, CTR_ERANGE, "%s: %s is outside %s", from, text, r);
}

/* Parses text into o's field; from names the source in messages. */
static int set_value(const ctr_opt_t *o, void *settings, const char *text, const char *from,
                     char *err, size_t errlen)
{
    void *field = (char *)settings + o->off;
    size_t size = field_size(o);
    switch (o->type) {
    case CTR_OPT_STR:
        memcpy(field, &text, sizeof text);
        return 0;
    case CTR_OPT_UINT:
    case CTR_OPT_BYTES:
    case CTR_OPT_DURATION: {
        uint64_t v;
        int rc = o->type == CTR_OPT_UINT ? ctr_opts_parse_u64(text, &v)
                 : o->type == CTR_OPT_BYTES ? parse_bytes(text, &v) : ctr_opts_parse_duration(text, &v);
        if (rc)
            return ctr_error(err, errlen, CTR_EINVAL, "%s: expected %s, got \"%s\"", from,
                             o->type == CTR_OPT_UINT ? "a non-negative integer"
                             : o->type == CTR_OPT_BYTES ? "a non-negative integer (k/m/g suffix allowed)"
                                                        : "a duration such as 10s, 500ms, 2m",
                             text);
        uint64_t top = size == 8 ? UINT64_MAX : (UINT64_C(1) << (8 * size)) - 1;
        if ((o->min || o->max) &&
            (v < o->min || v > o->max || (v == o->min && (o->flags & CTR_OPT_MIN_EXCL))))
            return out_of_range(o, from, text, err, errlen);
        if (v > top)
            return ctr_error(err, errlen, CTR_ERANGE, "%s: %s is outside 0..%" PRIu64, from, text, top);
        store_uint(field, size, v);
        return 0;
    }
    case CTR_OPT_INT: {
        int64_t v;
        if (parse_i64(text, &v))
            return ctr_error(err, errlen, CTR_EINVAL, "%s: expected an integer, got \"%s\"", from, text);
        int64_t hi = size == 8 ? INT64_MAX : (INT64_C(1) << (8 * size - 1)) - 1, lo = -hi - 1;
        if ((o->imin || o->imax) &&
            (v < o->imin || v > o->imax || (v == o->imin && (o->flags & CTR_OPT_MIN_EXCL))))
            return out_of_range(o, from, text, err, errlen);
        if (v < lo || v > hi)
            return ctr_error(err, errlen, CTR_ERANGE, "%s: %s is outside %" PRId64 "..%" PRId64, from, text,
                             lo, hi);
        store_int(field, size, v);
        return 0;
    }
    case CTR_OPT_DOUBLE: {
        double v;
        if (ctr_opts_parse_double(text, &v))
            return ctr_error(err, errlen, CTR_EINVAL, "%s: expected a number, got \"%s\"", from, text);
        if ((o->dmin != 0 || o->dmax != 0) &&
            (v < o->dmin || v > o->dmax || (v == o->dmin && (o->flags & CTR_OPT_MIN_EXCL))))
            return out_of_range(o, from, text, err, errlen);
        if (size == sizeof(float)) {
            /* strtof, not (float)v: one rounding, as a float field's text means */
            float f = strtof(text, NULL);
            if (fabs(v) > FLT_MAX || !isfinite(f))
                return ctr_error(err, errlen, CTR_ERANGE, "%s: %s is too large", from, text);
            memcpy(field, &f, sizeof f);
        } else {
            memcpy(field, &v, sizeof v);
        }
        return 0;
    }
    case CTR_OPT_BOOL: {
        int v;
        if (parse_bool(text, &v))
            return ctr_error(err, errlen, CTR_EINVAL, "%s: expected true/false or 1/0, got \"%s\"", from, text);
        store_int(field, size, (o->flags & CTR_OPT_NEGATE) ? !v : v);
        return 0;
    }
    case CTR_OPT_ENUM:
        for (const ctr_opt_enum_t *e = o->enums; e->name; e++) {
            if ((o->flags & CTR_OPT_ICASE) ? !strcasecmp(e->name, text) : !strcmp(e->name, text)) {
                store_int(field, size, e->value);
                return 0;
            }
        }
        {
            char names[256];
            enum_names(o->enums, ", ", names, sizeof names);
            return ctr_error(err, errlen, CTR_EINVAL, "%s: unknown value \"%s\" (expected %s)", from, text, names);
        }
    case CTR_OPT_LIST: {
        ctr_opt_list_t *l = field;
        if (l->n >= l->cap)
            return ctr_error(err, errlen, CTR_ERANGE, "%s: at most %zu, got one more: \"%s\"", from, l->cap, text);
        l->v[l->n++] = text;
        return 0;
    }
    case CTR_OPT_CUSTOM: {
        char why[256] = "";
        int rc = o->parse(text, field, why, sizeof why);
        if (rc)
            return ctr_error(err, errlen, rc < 0 ? rc : CTR_EINVAL, "%s: %s, got \"%s\"", from,
                             *why ? why : "bad value", text);
        return 0;
    }
    case CTR_OPT_HEADING:
        break;
    }
    return ctr_error(err, errlen, CTR_EINVAL, "%s: not an option", from);
}

/* ---- parsing ------------------------------------------------------------- */

/* The command line, after the defaults and the environment. */
static int parse_argv(const ctr_opts_t *spec, void *settings, int argc, char *const *argv,
                      ctr_opts_result_t *res, char *err, size_t errlen)
{
    char from[128];
    int rc;
    const ctr_opt_t *pos = find_positional(spec);
    int flags_done = 0;
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!flags_done && (!strcmp(arg, "-h") || !strcmp(arg, "--help"))) {
            res->help = 1;
            return 0;
        }
        if (!flags_done && !strcmp(arg, "--")) {
            flags_done = 1;
            continue;
        }
        if (flags_done || arg[0] != '-' || !arg[1]) {
            if (!pos)
                return ctr_error(err, errlen, CTR_EINVAL, "unexpected argument \"%s\" (flags start with --)", arg);
            if ((rc = set_value(pos, settings, arg, label(pos, 0, from, sizeof from), err, errlen)))
                return rc;
            res->from[pos - spec->opts] = CTR_OPT_FROM_FLAG;
            continue;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const ctr_opt_t *o = arg[1] == '-' ? find_flag(spec, name, nlen) : NULL;
        if (!o)
            return ctr_error(err, errlen, CTR_EINVAL, "unknown flag \"%.*s\"",
                             arg[1] == '-' ? (int)nlen + 2 : (int)strlen(arg), arg);
        label(o, 0, from, sizeof from);
        const char *val;
        if (eq) {
            val = eq + 1;
        } else if (o->type == CTR_OPT_BOOL) {
            val = "1";
        } else if (a + 1 < argc && !((o->flags & CTR_OPT_GREEDY) && !strncmp(argv[a + 1], "--", 2))) {
            val = argv[++a];
        } else {
            char names[256] = "";
            const char *mv = o->metavar;
            if (!mv && o->type == CTR_OPT_ENUM) {
                enum_names(o->enums, "|", names, sizeof names);
                mv = names;
            }
            return mv ? ctr_error(err, errlen, CTR_EINVAL, "%s needs a value (%s)", from, mv)
                      : ctr_error(err, errlen, CTR_EINVAL, "%s needs a value", from);
        }
        if ((rc = set_value(o, settings, val, from, err, errlen)))
            return rc;
        while ((o->flags & CTR_OPT_GREEDY) && a + 1 < argc && strncmp(argv[a + 1], "--", 2))
            if ((rc = set_value(o, settings, argv[++a], from, err, errlen)))
                return rc;
        res->from[o - spec->opts] = CTR_OPT_FROM_FLAG;
    }
    return 0;
}

int ctr_opts_parse(const ctr_opts_t *spec, void *settings, int argc, char *const *argv,
                   ctr_opts_result_t *res, char *err, size_t errlen)
{
    char from[128];
    int rc;
    check_table(spec);
    memset(res, 0, sizeof *res);
    res->spec = spec;

    for (size_t i = 0; i < spec->n_opts; i++) {
        const ctr_opt_t *o = &spec->opts[i];
        if (o->type == CTR_OPT_HEADING || !o->def)
            continue;
        snprintf(from, sizeof from, "the default of --%s", o->name);
        if ((rc = set_value(o, settings, o->def, from, err, errlen)))
            return rc;
        res->from[i] = CTR_OPT_FROM_DEFAULT;
    }
    /* A bad environment variable is reported before any flag's error, but
     * after the flags were scanned for --help: help works whatever the
     * environment holds. */
    char env_err[512] = "";
    int env_rc = 0;
    for (size_t i = 0; i < spec->n_opts; i++) {
        const ctr_opt_t *o = &spec->opts[i];
        const char *v = o->type != CTR_OPT_HEADING && o->env ? getenv(o->env) : NULL;
        if (!v)
            continue;
        if ((rc = set_value(o, settings, v, label(o, 1, from, sizeof from), env_err, sizeof env_err))) {
            env_rc = rc;
            break;
        }
        res->from[i] = CTR_OPT_FROM_ENV;
    }
    rc = parse_argv(spec, settings, argc, argv, res, err, errlen);
    if (res->help)
        return 0;
    if (env_rc)
        return ctr_error(err, errlen, env_rc, "%s", env_err);
    if (rc)
        return rc;

    for (size_t i = 0; i < spec->n_opts; i++) {
        const ctr_opt_t *o = &spec->opts[i];
        if (o->type == CTR_OPT_HEADING || !(o->flags & CTR_OPT_REQUIRED))
            continue;
        label(o, 0, from, sizeof from);
        if (o->type == CTR_OPT_LIST) {
            const ctr_opt_list_t *l = (const ctr_opt_list_t *)((const char *)settings + o->off);
            size_t need = o->min ? (size_t)o->min : 1;
            if (l->n >= need)
                continue;
            if (!o->name)
                return need == 1 ? ctr_error(err, errlen, CTR_EINVAL, "missing %s", from)
                                 : ctr_error(err, errlen, CTR_EINVAL, "missing %s (at least %zu)", from, need);
            if (!l->n)
                return need == 1 ? ctr_error(err, errlen, CTR_EINVAL, "%s is required", from)
                                 : ctr_error(err, errlen, CTR_EINVAL, "%s is required, %zu times", from, need);
            return ctr_error(err, errlen, CTR_EINVAL, "%s: %zu given, %zu needed", from, l->n, need);
        }
        if (res->from[i] == CTR_OPT_FROM_FLAG || res->from[i] == CTR_OPT_FROM_ENV)
            continue;
        return o->env ? ctr_error(err, errlen, CTR_EINVAL, "%s is required (or set %s)", from, o->env)
                      : ctr_error(err, errlen, CTR_EINVAL, "%s is required", from);
    }
    return 0;
}

ctr_opt_from_t ctr_opts_from(const ctr_opts_result_t *res, const char *name)
{
    const ctr_opts_t *spec = res->spec;
    for (size_t i = 0; spec && i < spec->n_opts; i++) {
        const ctr_opt_t *o = &spec->opts[i];
        if (o->type != CTR_OPT_HEADING && (name ? o->name && !strcmp(o->name, name) : !o->name && o->type == CTR_OPT_LIST))
            return (ctr_opt_from_t)res->from[i];
    }
    return CTR_OPT_UNSET;
}

/* ---- usage --------------------------------------------------------------- */

static void format_duration(uint64_t ns, char *out, size_t cap)
{
    if (ns && ns % UINT64_C(3600000000000) == 0)
        snprintf(out, cap, "%" PRIu64 "h", ns / UINT64_C(3600000000000));
    else if (ns && ns % UINT64_C(60000000000) == 0)
        snprintf(out, cap, "%" PRIu64 "m", ns / UINT64_C(60000000000));
    else if (ns % UINT64_C(1000000000) == 0)
        snprintf(out, cap, "%" PRIu64 "s", ns / UINT64_C(1000000000));
    else if (ns % UINT64_C(1000000) == 0)
        snprintf(out, cap, "%" PRIu64 "ms", ns / UINT64_C(1000000));
    else if (ns % UINT64_C(1000) == 0)
        snprintf(out, cap, "%" PRIu64 "us", ns / UINT64_C(1000));
    else
        snprintf(out, cap, "%" PRIu64 "ns", ns);
}

/* The default shown in the help: the row's text, else the value in defaults. */
static int default_text(const ctr_opt_t *o, const void *defaults, char *out, size_t cap)
{
    if (o->type == CTR_OPT_BOOL || o->type == CTR_OPT_LIST || (o->flags & CTR_OPT_REQUIRED))
        return 0;
    if (o->def) {
        snprintf(out, cap, "%s", o->def);
        return 1;
    }
    if (!defaults)
        return 0;
    const void *field = (const char *)defaults + o->off;
    size_t size = field_size(o);
    switch (o->type) {
    case CTR_OPT_STR: {
        const char *s;
        memcpy(&s, field, sizeof s);
        if (!s || !*s)
            return 0;
        snprintf(out, cap, "%s", s);
        return 1;
    }
    case CTR_OPT_UINT: case CTR_OPT_BYTES:
        snprintf(out, cap, "%" PRIu64, load_uint(field, size));
        return 1;
    case CTR_OPT_DURATION:
        format_duration(load_uint(field, size), out, cap);
        return 1;
    case CTR_OPT_INT:
        snprintf(out, cap, "%" PRId64, load_int(field, size));
        return 1;
    case CTR_OPT_DOUBLE:
        snprintf(out, cap, "%g", load_double(field, size));
        return 1;
    case CTR_OPT_ENUM: {
        const char *n = ctr_opts_enum_name(o->enums, (int)load_int(field, size));
        if (!n)
            return 0;
        snprintf(out, cap, "%s", n);
        return 1;
    }
    default:
        return 0;
    }
}

static void left_text(const ctr_opt_t *o, char *out, size_t cap)
{
    char names[256] = "";
    const char *mv = o->metavar;
    if (!mv && o->type == CTR_OPT_ENUM) {
        enum_names(o->enums, "|", names, sizeof names);
        mv = names;
    }
    if (!o->name)
        snprintf(out, cap, "%s", mv ? mv : "ARG...");
    else if (o->type == CTR_OPT_BOOL || !mv)
        snprintf(out, cap, "--%s", o->name);
    else
        snprintf(out, cap, "--%s %s", o->name, mv);
}

#define USAGE_LEFT_MAX 30

void ctr_opts_usage(FILE *f, const ctr_opts_t *spec, const void *defaults)
{
    size_t lw = 0, ew = 0;
    char left[320], def[160];
    if (spec->usage)
        fputs(spec->usage, f);
    for (size_t i = 0; i < spec->n_opts; i++) {
        const ctr_opt_t *o = &spec->opts[i];
        if (o->type == CTR_OPT_HEADING || (o->flags & CTR_OPT_HIDDEN))
            continue;
        left_text(o, left, sizeof left);
        size_t l = strlen(left);
        if (l <= USAGE_LEFT_MAX && l > lw)
            lw = l;
        if (o->env && strlen(o->env) > ew)
            ew = strlen(o->env);
    }
    for (size_t i = 0; i < spec->n_opts; i++) {
        const ctr_opt_t *o = &spec->opts[i];
        if (o->type == CTR_OPT_HEADING) {
            fprintf(f, "%s\n", o->help ? o->help : "");
            continue;
        }
        if (o->flags & CTR_OPT_HIDDEN)
            continue;
        left_text(o, left, sizeof left);
        size_t col = 2 + lw + 2 + (ew ? ew + 2 : 0);
        if (strlen(left) > lw)
            fprintf(f, "  %s\n%*s", left, (int)(2 + lw + 2), "");
        else
            fprintf(f, "  %-*s  ", (int)lw, left);
        if (ew)
            fprintf(f, "%-*s  ", (int)ew, o->env ? o->env : "");
        /* help, its continuation lines indented to the help column */
        for (const char *h = o->help ? o->help : ""; *h;) {
            const char *nl = strchr(h, '\n');
            size_t n = nl ? (size_t)(nl - h) : strlen(h);
            fwrite(h, 1, n, f);
            if (!nl)
                break;
            h = nl + 1;
            fprintf(f, "\n%*s", (int)col, "");
        }
        if (default_text(o, defaults, def, sizeof def))
            fprintf(f, " [%s]", def);
        fputc('\n', f);
    }
    if (spec->epilog)
        fputs(spec->epilog, f);
}

/* ---- JSON ---------------------------------------------------------------- */

/* The output cursor: counts everything, writes while it fits (keeping a
 * byte for the NUL), and once something did not fit writes nothing more,
 * so the text is always a prefix of the full one. */
typedef struct {
    char *p;
    size_t len, wlen, cap;
    int cut;
} jw_t;

static void jw_put(jw_t *w, const char *s, size_t n)
{
    if (!w->cut && w->wlen + n < w->cap) {
        memcpy(w->p + w->wlen, s, n);
        w->wlen += n;
    } else {
        w->cut = 1;
    }
    w->len += n;
}

/* A string either lands whole or cuts the text before it. */
static void jw_str(jw_t *w, const char *s)
{
    size_t room = !w->cut && w->cap > w->wlen + 1 ? w->cap - w->wlen - 1 : 0;
    size_t n = ctr_json_escape(room ? w->p + w->wlen : NULL, room, s, strlen(s),
                               CTR_JSON_INVALID_REPLACE, NULL);
    if (n > room)
        w->cut = 1;
    else
        w->wlen += n;
    w->len += n;
}

static void jw_printf(jw_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jw_printf(jw_t *w, const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    jw_put(w, buf, n > 0 ? (size_t)n : 0);
}

size_t ctr_opts_json(const ctr_opts_t *spec, const void *settings, char *out, size_t cap)
{
    jw_t w = {out, 0, 0, cap, cap == 0};
    int first = 1;
    jw_put(&w, "{", 1);
    for (size_t i = 0; i < spec->n_opts; i++) {
        const ctr_opt_t *o = &spec->opts[i];
        if (o->type == CTR_OPT_HEADING || !o->name || (o->flags & CTR_OPT_NO_JSON))
            continue;
        const void *field = (const char *)settings + o->off;
        size_t size = field_size(o);
        if (!first)
            jw_put(&w, ",", 1);
        first = 0;
        jw_str(&w, o->name);
        jw_put(&w, ":", 1);
        switch (o->type) {
        case CTR_OPT_STR: {
            const char *s;
            memcpy(&s, field, sizeof s);
            if (!s)
                jw_put(&w, "null", 4);
            else if (o->flags & CTR_OPT_SECRET)
                jw_put(&w, "\"(set)\"", 7);
            else
                jw_str(&w, s);
            break;
        }
        case CTR_OPT_UINT: case CTR_OPT_BYTES: case CTR_OPT_DURATION:
            jw_printf(&w, "%" PRIu64, load_uint(field, size));
            break;
        case CTR_OPT_INT:
            jw_printf(&w, "%" PRId64, load_int(field, size));
            break;
        case CTR_OPT_DOUBLE: {
            double v = load_double(field, size);
            if (isfinite(v))
                jw_printf(&w, "%.17g", v);
            else
                jw_put(&w, "null", 4);
            break;
        }
        case CTR_OPT_BOOL:
            /* keyed by the flag's name: a negated switch is on when the field is 0 */
            if ((o->flags & CTR_OPT_NEGATE) ? load_int(field, size) == 0 : load_int(field, size) != 0)
                jw_put(&w, "true", 4);
            else
                jw_put(&w, "false", 5);
            break;
        case CTR_OPT_ENUM: {
            const char *n = ctr_opts_enum_name(o->enums, (int)load_int(field, size));
            if (n)
                jw_str(&w, n);
            else
                jw_put(&w, "null", 4);
            break;
        }
        case CTR_OPT_LIST: {
            const ctr_opt_list_t *l = field;
            jw_put(&w, "[", 1);
            for (size_t k = 0; k < l->n; k++) {
                if (k)
                    jw_put(&w, ",", 1);
                jw_str(&w, l->v[k]);
            }
            jw_put(&w, "]", 1);
            break;
        }
        default:
            jw_put(&w, "null", 4);
        }
    }
    jw_put(&w, "}", 1);
    if (cap)
        out[w.wlen] = 0;
    return w.len;
}
