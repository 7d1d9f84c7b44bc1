/* bodies.c - request bodies from data files or the synthetic generator,
 * and their HTTP framing (see bodies.h for the shapes). */
#include "bodies.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/rng.h"
#include "schedule.h"

#define DEFAULT_MAX_ROWS 100000
#define DEFAULT_MAX_BYTES (256u << 20)
#define MAX_COLS 4096

/* ---- growable string ---------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf_t;

static void sb_reserve(sbuf_t *b, size_t more)
{
    if (b->oom || b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) {
        b->oom = 1;
        return;
    }
    b->p = np;
    b->cap = cap;
}

static void sb_put(sbuf_t *b, const char *s, size_t n)
{
    sb_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_puts(sbuf_t *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_putc(sbuf_t *b, char c) { sb_put(b, &c, 1); }

static void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        sb_put(b, tmp, (size_t)n);
        return;
    }
    sb_reserve(b, (size_t)n);
    if (b->oom)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* A JSON string literal; bytes >= 0x80 pass through (the data's UTF-8). */
static void sb_json_str(sbuf_t *b, const char *s, size_t n)
{
    sb_putc(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        sb_put(b, s + run, i - run);
        run = i + 1;
        if (c == '"' || c == '\\') {
            sb_putc(b, '\\');
            sb_putc(b, (char)c);
        } else {
            sb_printf(b, "\\u%04x", c);
        }
    }
    sb_put(b, s + run, n - run);
    sb_putc(b, '"');
}

/* Integers as "%.0f" would write them, without printf (most values). */
static void sb_num(sbuf_t *b, double v)
{
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        char tmp[24], *e = tmp + sizeof tmp, *p = e;
        uint64_t u = (uint64_t)fabs(v);
        do {
            *--p = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (signbit(v))
            *--p = '-';
        sb_put(b, p, (size_t)(e - p));
    } else {
        sb_printf(b, "%.17g", v);
    }
}

/* ---- rows ---------------------------------------------------------------- */

/* Rows kept in memory: dense values (NaN = missing) and categorical bytes
 * in one arena (len 0xffff = missing). */
typedef struct {
    size_t n_dense, n_cat;
    const char **names;        /* n_dense + n_cat, dense first */
    size_t n, cap;
    double *dense;
    size_t *cat_off;
    uint16_t *cat_len;
    char *arena;
    size_t arena_len, arena_cap;
} rows_t;

#define CAT_MISSING 0xffffu

static void rows_free(rows_t *r)
{
    free(r->dense);
    free(r->cat_off);
    free(r->cat_len);
    free(r->arena);
    memset(r, 0, sizeof *r);
}

static int rows_push(rows_t *r, const double *dense, const char *const *cat, const size_t *cat_len)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        double *d = realloc(r->dense, cap * (r->n_dense ? r->n_dense : 1) * sizeof *d);
        if (!d)
            return CTR_ENOMEM;
        r->dense = d;
        size_t *o = realloc(r->cat_off, cap * (r->n_cat ? r->n_cat : 1) * sizeof *o);
        if (!o)
            return CTR_ENOMEM;
        r->cat_off = o;
        uint16_t *l = realloc(r->cat_len, cap * (r->n_cat ? r->n_cat : 1) * sizeof *l);
        if (!l)
            return CTR_ENOMEM;
        r->cat_len = l;
        r->cap = cap;
    }
    size_t need = 0;
    for (size_t j = 0; j < r->n_cat; j++)
        if (cat[j])
            need += cat_len[j];
    if (r->arena_len + need > r->arena_cap) {
        size_t cap = r->arena_cap ? r->arena_cap : 4096;
        while (cap < r->arena_len + need)
            cap *= 2;
        char *a = realloc(r->arena, cap);
        if (!a)
            return CTR_ENOMEM;
        r->arena = a;
        r->arena_cap = cap;
    }
    memcpy(r->dense + r->n * r->n_dense, dense, r->n_dense * sizeof *dense);
    for (size_t j = 0; j < r->n_cat; j++) {
        size_t k = r->n * r->n_cat + j;
        size_t len = cat[j] ? cat_len[j] : 0;
        if (cat[j] && len >= CAT_MISSING)
            len = CAT_MISSING - 1;
        r->cat_off[k] = r->arena_len;
        r->cat_len[k] = cat[j] ? (uint16_t)len : CAT_MISSING;
        if (cat[j]) {
            memcpy(r->arena + r->arena_len, cat[j], len);
            r->arena_len += len;
        }
    }
    r->n++;
    return 0;
}

/* ---- one request body ---------------------------------------------------- */

static int dense_eq(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

/* Body of the request made of rows idx[0..b) of r, appended to set. */
static int emit_body(const ctr__bodies_opts_t *o, const rows_t *r, const size_t *idx, size_t b,
                     ctr__msgset_t *set)
{
    sbuf_t s = {0};
    size_t nd = r->n_dense, nc = r->n_cat;
    size_t id_off;
    /* shared[f]: feature f moves to "context" (v1, context_split, b >= 2). */
    unsigned char shared[MAX_COLS];
    memset(shared, 0, nd + nc);
    if (o->protocol == CTR__PROTO_V1 && o->context_split && b >= 2) {
        for (size_t k = 0; k < nd; k++) {
            double v0 = r->dense[idx[0] * nd + k];
            int same = !isnan(v0);
            for (size_t i = 1; i < b && same; i++)
                same = dense_eq(r->dense[idx[i] * nd + k], v0);
            shared[k] = (unsigned char)same;
        }
        for (size_t j = 0; j < nc; j++) {
            size_t k0 = idx[0] * nc + j;
            int same = r->cat_len[k0] != CAT_MISSING;
            for (size_t i = 1; i < b && same; i++) {
                size_t ki = idx[i] * nc + j;
                same = r->cat_len[ki] == r->cat_len[k0] &&
                       !memcmp(r->arena + r->cat_off[ki], r->arena + r->cat_off[k0], r->cat_len[k0]);
            }
            shared[nd + j] = (unsigned char)same;
        }
    }
    if (o->protocol == CTR__PROTO_V1) {
        sb_putc(&s, '{');
        if (o->model_name) {
            sb_puts(&s, "\"model\":");
            sb_json_str(&s, o->model_name, strlen(o->model_name));
            sb_putc(&s, ',');
        }
        sb_puts(&s, "\"request_id\":\"");
        id_off = s.len;
        sb_puts(&s, "0000000000000000\"");
        int any_ctx = 0;
        for (size_t f = 0; f < nd + nc; f++)
            any_ctx |= shared[f];
        if (any_ctx) {
            sb_puts(&s, ",\"context\":{");
            int first = 1;
            for (size_t f = 0; f < nd + nc; f++) {
                if (!shared[f])
                    continue;
                if (!first)
                    sb_putc(&s, ',');
                first = 0;
                sb_json_str(&s, r->names[f], strlen(r->names[f]));
                sb_putc(&s, ':');
                if (f < nd) {
                    sb_num(&s, r->dense[idx[0] * nd + f]);
                } else {
                    size_t k = idx[0] * nc + (f - nd);
                    sb_json_str(&s, r->arena + r->cat_off[k], r->cat_len[k]);
                }
            }
            sb_putc(&s, '}');
        }
        sb_puts(&s, ",\"examples\":[");
        for (size_t i = 0; i < b; i++) {
            sb_puts(&s, i ? ",{" : "{");
            int first = 1;
            for (size_t k = 0; k < nd; k++) {
                double v = r->dense[idx[i] * nd + k];
                if (shared[k] || isnan(v))
                    continue;
                if (!first)
                    sb_putc(&s, ',');
                first = 0;
                sb_json_str(&s, r->names[k], strlen(r->names[k]));
                sb_putc(&s, ':');
                sb_num(&s, v);
            }
            for (size_t j = 0; j < nc; j++) {
                size_t k = idx[i] * nc + j;
                if (shared[nd + j] || r->cat_len[k] == CAT_MISSING)
                    continue;
                if (!first)
                    sb_putc(&s, ',');
                first = 0;
                sb_json_str(&s, r->names[nd + j], strlen(r->names[nd + j]));
                sb_putc(&s, ':');
                sb_json_str(&s, r->arena + r->cat_off[k], r->cat_len[k]);
            }
            sb_putc(&s, '}');
        }
        sb_puts(&s, "]}");
    } else {
        sb_puts(&s, "{\"id\":\"");
        id_off = s.len;
        sb_puts(&s, "0000000000000000\",\"inputs\":[");
        sb_printf(&s, "{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[%zu,%zu],\"data\":[", b, nd);
        for (size_t i = 0; i < b; i++)
            for (size_t k = 0; k < nd; k++) {
                if (i || k)
                    sb_putc(&s, ',');
                double v = r->dense[idx[i] * nd + k];
                if (isnan(v))
                    sb_puts(&s, "null");
                else
                    sb_num(&s, v);
            }
        sb_printf(&s, "]},{\"name\":\"sparse\",\"datatype\":\"BYTES\",\"shape\":[%zu,%zu],\"data\":[", b, nc);
        for (size_t i = 0; i < b; i++)
            for (size_t j = 0; j < nc; j++) {
                if (i || j)
                    sb_putc(&s, ',');
                size_t k = idx[i] * nc + j;
                if (r->cat_len[k] == CAT_MISSING)
                    sb_puts(&s, "null");
                else
                    sb_json_str(&s, r->arena + r->cat_off[k], r->cat_len[k]);
            }
        sb_puts(&s, "]}]}");
    }
    if (s.oom) {
        free(s.p);
        return CTR_ENOMEM;
    }
    return ctr__msgset_add(set, s.p, s.len, id_off, (uint32_t)b, CTR__NO_TIME);
}

/* ---- synthetic rows ------------------------------------------------------ */

/* Criteo-shaped: 13 integer counts with power-law values and Criteo-like
 * missing rates, 26 categorical features whose values are 8 hex digits,
 * either drawn with a Zipf-like law from vocabularies of 10 to ~300k
 * values (CTR__CATS_ZIPF) or uniformly random (CTR__CATS_UNIFORM). */
static const double syn_dense_missing[13] = {0.45, 0.0, 0.21, 0.22, 0.03, 0.22, 0.04,
                                             0.0,  0.04, 0.45, 0.04, 0.77, 0.22};
static const double syn_cat_missing[26] = {0, 0, 0.03, 0.03, 0, 0.12, 0, 0, 0, 0.03, 0, 0.03, 0,
                                           0, 0, 0.03, 0, 0, 0.44, 0.44, 0.03, 0.76, 0, 0.03,
                                           0.44, 0.44};

/* Criteo's 39 column names, dense first (the rows' order). */
static void criteo_names(const char **names)
{
    for (size_t k = 0; k < CTR_CRITEO_N_DENSE; k++)
        names[k] = ctr_criteo_dense_names[k];
    for (size_t j = 0; j < CTR_CRITEO_N_CAT; j++)
        names[CTR_CRITEO_N_DENSE + j] = ctr_criteo_cat_names[j];
}

/* With context_split, the "user side" (I1..I6, C1..C13) is drawn once per
 * request and shared by its examples: one user, many candidate ads. */
#define SYN_USER_DENSE 6
#define SYN_USER_CAT 13

/* The laws' constants, per feature: log1p(max) of dense value k (max 10 ..
 * 1e5) and log(vocabulary + 1) of categorical feature k (10 .. ~316k). */
typedef struct {
    double dense_log_max[13];
    double cat_log_vocab[26];
} syn_law_t;

static void syn_law_init(syn_law_t *l)
{
    for (size_t k = 0; k < 13; k++)
        l->dense_log_max[k] = log1p(pow(10.0, 1 + (double)((k * 7) % 5)));
    for (size_t k = 0; k < 26; k++) {
        double vocab = round(pow(10.0, 1 + 4.5 * (double)((k * 7) % 26) / 25.0));
        l->cat_log_vocab[k] = log(vocab + 1);
    }
}

static void hex8(char out[9], uint32_t x)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 7; i >= 0; i--) {
        out[i] = hex[x & 15];
        x >>= 4;
    }
    out[8] = 0;
}

static void syn_value(const syn_law_t *l, ctr__cats_t cats, uint64_t *rng, size_t k, int is_cat,
                      double *dv, char *cv, int *present)
{
    if (!is_cat) {
        *present = ctr__rng_uniform(rng) >= syn_dense_missing[k];
        *dv = floor(exp(ctr__rng_uniform(rng) * l->dense_log_max[k])) - 1;
        return;
    }
    *present = ctr__rng_uniform(rng) >= syn_cat_missing[k];
    if (cats == CTR__CATS_UNIFORM) {
        hex8(cv, (uint32_t)(ctr_splitmix64_next(rng) >> 32));
        return;
    }
    uint64_t rank = (uint64_t)(exp(ctr__rng_uniform(rng) * l->cat_log_vocab[k]) - 1);
    uint64_t h = ((uint64_t)(k + 1) << 40) ^ rank ^ 0xc7c7c7c7ull;
    hex8(cv, (uint32_t)(ctr_splitmix64_next(&h) >> 32));
}

static int build_synthetic(const ctr__bodies_opts_t *o, ctr__msgset_t *set, char *err, size_t errlen)
{
    rows_t r = {0};
    r.n_dense = 13;
    r.n_cat = 26;
    const char *names[CTR_CRITEO_N_DENSE + CTR_CRITEO_N_CAT];
    criteo_names(names);
    r.names = names;
    size_t b = o->examples;
    size_t *idx = malloc(b * sizeof *idx);
    uint64_t rng = o->seed * 0x9e3779b97f4a7c15ull + 12345;
    uint64_t max_bytes = o->max_bytes ? o->max_bytes : DEFAULT_MAX_BYTES;
    ctr__cats_t cats = o->synthetic_cats;
    syn_law_t law;
    syn_law_init(&law);
    int rc = idx ? 0 : CTR_ENOMEM;
    for (size_t q = 0; !rc && q < o->synthetic; q++) {
        r.n = 0;
        r.arena_len = 0;
        double ud[13];
        char uc[26][9];
        int up[39];
        for (size_t k = 0; k < 13; k++)
            syn_value(&law, cats, &rng, k, 0, &ud[k], uc[0], &up[k]);
        double unused_d;
        for (size_t j = 0; j < 26; j++)
            syn_value(&law, cats, &rng, j, 1, &unused_d, uc[j], &up[13 + j]);
        for (size_t i = 0; !rc && i < b; i++) {
            double dense[13];
            char cv[26][9];
            const char *cat[26];
            size_t cl[26];
            for (size_t k = 0; k < 13; k++) {
                int present;
                double v;
                syn_value(&law, cats, &rng, k, 0, &v, cv[0], &present);
                if (o->context_split && k < SYN_USER_DENSE) {
                    v = ud[k];
                    present = up[k];
                }
                dense[k] = present ? v : NAN;
            }
            for (size_t j = 0; j < 26; j++) {
                int present;
                double unused;
                syn_value(&law, cats, &rng, j, 1, &unused, cv[j], &present);
                if (o->context_split && j < SYN_USER_CAT) {
                    memcpy(cv[j], uc[j], 9);
                    present = up[13 + j];
                }
                cat[j] = present ? cv[j] : NULL;
                cl[j] = 8;
            }
            rc = rows_push(&r, dense, cat, cl);
            idx[i] = i;
        }
        if (!rc)
            rc = emit_body(o, &r, idx, b, set);
        if (!rc && set->bytes > max_bytes && q + 1 < o->synthetic)
            break;                               /* enough distinct bodies */
    }
    free(idx);
    r.names = NULL;
    rows_free(&r);
    if (rc)
        return ctr_error(err, errlen, rc, "preparing synthetic requests: %s", ctr_strerror(rc));
    return 0;
}

/* ---- rows from a file ---------------------------------------------------- */

/* Splits a comma list into out (pointers into the copy *buf). */
static int split_list(const char *s, char **buf, const char **out, size_t max, size_t *n)
{
    *n = 0;
    if (!s || !*s)
        return 0;
    *buf = strdup(s);
    if (!*buf)
        return CTR_ENOMEM;
    for (char *save = NULL, *t = strtok_r(*buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (*n == max)
            return CTR_ETOOBIG;
        out[(*n)++] = t;
    }
    return 0;
}

static int build_from_file(const ctr__bodies_opts_t *o, ctr__msgset_t *set, FILE *log,
                           char *err, size_t errlen)
{
    ctr_data_opts_t dopts;
    memset(&dopts, 0, sizeof dopts);
    dopts.format = o->format;
    dopts.label = o->label;
    dopts.label_optional = 1;
    dopts.delimiter = o->delimiter;
    char *dbuf = NULL, *cbuf = NULL;
    const char **dn = calloc(MAX_COLS, sizeof *dn), **cn = calloc(MAX_COLS, sizeof *cn);
    const char **names = calloc(2 * MAX_COLS, sizeof *names);
    size_t nd = 0, nc = 0;
    rows_t r = {0};
    size_t *idx = NULL;
    ctr_data_reader_t *rd = NULL;
    int rc = CTR_ENOMEM;
    if (!dn || !cn || !names)
        goto fail;
    if (o->format == CTR_DATA_CSV) {
        if ((rc = split_list(o->dense_cols, &dbuf, dn, MAX_COLS / 2, &nd)) ||
            (rc = split_list(o->cat_cols, &cbuf, cn, MAX_COLS / 2, &nc))) {
            rc = ctr_error(err, errlen, rc, "--dense/--categorical: %s",
                           rc == CTR_ETOOBIG ? "too many columns" : ctr_strerror(rc));
            goto fail;
        }
        if (!nd && !nc) {
            rc = ctr_error(err, errlen, CTR_EINVAL,
                           "--format csv needs the feature columns: --dense COL,... and/or --categorical COL,...");
            goto fail;
        }
        dopts.n_dense = nd;
        dopts.dense = dn;
        dopts.n_cat = nc;
        dopts.cat = cn;
        for (size_t k = 0; k < nd; k++)
            names[k] = dn[k];
        for (size_t j = 0; j < nc; j++)
            names[nd + j] = cn[j];
    } else {
        nd = CTR_CRITEO_N_DENSE;
        nc = CTR_CRITEO_N_CAT;
        criteo_names(names);
    }
    r.n_dense = nd;
    r.n_cat = nc;
    r.names = names;
    rc = ctr_data_open(o->data_path, &dopts, &rd, err, errlen);
    if (rc)
        goto fail;
    uint64_t max_rows = o->max_rows ? o->max_rows : DEFAULT_MAX_ROWS;
    uint64_t bad = 0;
    while (r.n < max_rows) {
        const ctr_data_row_t *row;
        rc = ctr_data_next(rd, &row, err, errlen);
        if (rc == 0)
            break;
        if (rc == CTR_EFORMAT && o->skip_bad) {
            if (bad++ < 3 && log)
                fprintf(log, "ctrload: skipping bad row: %s\n", err);
            continue;
        }
        if (rc < 0)
            goto fail;
        rc = rows_push(&r, row->dense, row->cat, row->cat_len);
        if (rc)
            goto fail;
    }
    if (bad && log)
        fprintf(log, "ctrload: skipped %llu bad rows of %s\n", (unsigned long long)bad, o->data_path);
    if (!r.n) {
        rc = ctr_error(err, errlen, CTR_EFORMAT, "%s: no usable rows", o->data_path);
        goto fail;
    }
    /* One body per B consecutive rows; a file shorter than B wraps. */
    size_t b = o->examples;
    size_t n_bodies = r.n / b ? r.n / b : 1;
    uint64_t max_bytes = o->max_bytes ? o->max_bytes : DEFAULT_MAX_BYTES;
    idx = malloc(b * sizeof *idx);
    rc = CTR_ENOMEM;
    if (!idx)
        goto fail;
    for (size_t q = 0; q < n_bodies; q++) {
        for (size_t i = 0; i < b; i++)
            idx[i] = (q * b + i) % r.n;
        rc = emit_body(o, &r, idx, b, set);
        if (rc) {
            ctr_error(err, errlen, rc, "preparing requests: %s", ctr_strerror(rc));
            goto fail;
        }
        if (set->bytes > max_bytes)
            break;
    }
    rc = 0;
fail:
    ctr_data_close(rd);
    free(idx);
    r.names = NULL;
    rows_free(&r);
    free(dbuf);
    free(cbuf);
    free(dn);
    free(cn);
    free(names);
    if (rc == CTR_ENOMEM && err && !*err)
        ctr_error(err, errlen, rc, "reading %s: out of memory", o->data_path);
    return rc;
}

int ctr__bodies_build(const ctr__bodies_opts_t *o, FILE *log, ctr__msgset_t **out,
                      char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = 0;
    if (o->examples < 1)
        return ctr_error(err, errlen, CTR_EINVAL, "--examples-per-request must be at least 1");
    if (o->context_split && o->protocol != CTR__PROTO_V1)
        return ctr_error(err, errlen, CTR_EINVAL, "--context-split needs --protocol v1 (v2 has no context)");
    if (!o->synthetic && !o->data_path)
        return ctr_error(err, errlen, CTR_EINVAL, "no data: give --data FILE or --synthetic");
    ctr__msgset_t *set = calloc(1, sizeof *set);
    if (!set)
        return ctr_error(err, errlen, CTR_ENOMEM, "preparing requests: out of memory");
    int rc = o->synthetic ? build_synthetic(o, set, err, errlen) : build_from_file(o, set, log, err, errlen);
    if (rc)
        goto fail;
    *out = set;
    return 0;
fail:
    ctr__msgset_free(set);
    return rc;
}

/* ---- message sets -------------------------------------------------------- */

int ctr__msgset_add(ctr__msgset_t *s, char *buf, size_t len, size_t id_off,
                    uint32_t n_examples, uint64_t t_ns)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        ctr__msg_t *v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            free(buf);
            return CTR_ENOMEM;
        }
        s->v = v;
        s->cap = cap;
    }
    ctr__msg_t *m = &s->v[s->n++];
    m->buf = buf;
    m->len = len;
    m->id_off = id_off;
    m->n_examples = n_examples;
    m->t_ns = t_ns;
    s->bytes += len;
    s->examples += n_examples;
    return 0;
}

int ctr__msgset_frame(ctr__msgset_t *s, const char *host_header, const char *path,
                      char *err, size_t errlen)
{
    CTR_ASSERT(!s->framed);
    s->bytes = 0;
    for (size_t i = 0; i < s->n; i++) {
        ctr__msg_t *m = &s->v[i];
        char head[1024];
        int hl = snprintf(head, sizeof head,
                          "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ctrload\r\n"
                          "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                          path, host_header, m->len);
        if (hl < 0 || (size_t)hl >= sizeof head)
            return ctr_error(err, errlen, CTR_EINVAL, "URL too long");
        char *nb = malloc((size_t)hl + m->len);
        if (!nb)
            return ctr_error(err, errlen, CTR_ENOMEM, "framing requests: out of memory");
        memcpy(nb, head, (size_t)hl);
        memcpy(nb + hl, m->buf, m->len);
        free(m->buf);
        m->buf = nb;
        m->len += (size_t)hl;
        if (m->id_off != CTR__NO_ID)
            m->id_off += (size_t)hl;
        s->bytes += m->len;
    }
    s->framed = 1;
    return 0;
}

size_t ctr__msg_body_off(const ctr__msg_t *m)
{
    const char *e = memmem(m->buf, m->len, "\r\n\r\n", 4);
    return e ? (size_t)(e - m->buf) + 4 : 0;
}

void ctr__msgset_free(ctr__msgset_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i].buf);
    free(s->v);
    free(s);
}

void ctr__format_id(char out[CTR__ID_LEN], uint64_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = CTR__ID_LEN - 1; i >= 0; i--) {
        out[i] = hex[n & 15];
        n >>= 4;
    }
}
