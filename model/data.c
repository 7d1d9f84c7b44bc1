/* data.c - Criteo TSV / CSV row readers (contract in data.h); the
 * in-memory encoded dataset built from them is dataset.c.
 *
 * The reader owns one buffer of max_line + 2 bytes. Lines are located in it
 * with memchr, split into fields in place (separators become NUL bytes,
 * quoted CSV fields are unescaped in place) and the row handed out points
 * into the buffer, so reading costs no allocation per row. A line longer
 * than the buffer is reported and skipped up to its newline. Compressed
 * input is piped through `xz -dc` / `gzip -dc`, spawned without a shell;
 * the decompressor's exit status is checked at end of file, so a truncated
 * or corrupt archive is an error, never a silently short data set.
 *
 * Bag columns are split without copying either: their values point into
 * the field, whose own text (cat[j]) stays whole. The value arrays hold
 * sum over columns of max(1, bag max) entries, sized at open. */
#include "ctr/data.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctr/common.h"
#include "ctr/features.h"
#include "data_int.h"

extern char **environ;

#define CRITEO_FIELDS (1 + CTR_CRITEO_N_DENSE + CTR_CRITEO_N_CAT)


int ctr_data_parse_format(const char *s)
{
    if (!strcmp(s, "criteo") || !strcmp(s, "tsv"))
        return CTR_DATA_CRITEO;
    if (!strcmp(s, "csv"))
        return CTR_DATA_CSV;
    return -1;
}

const char *ctr_data_format_name(ctr_data_format_t f)
{
    return f == CTR_DATA_CSV ? "csv" : "criteo";
}

void ctr_data_opts_for_model(ctr_data_opts_t *o, const ctr_model_def_t *def,
                             const char **names)
{
    for (size_t k = 0; k < def->n_dense; k++)
        names[k] = def->dense[k].name;
    for (size_t j = 0; j < def->n_cat; j++)
        names[def->n_dense + j] = def->cat[j].name;
    o->n_dense = def->n_dense;
    o->dense = names;
    o->n_cat = def->n_cat;
    o->cat = names + def->n_dense;
    o->n_bags = 0;
    o->bags = NULL;
    o->bag_model = def;
}

/* ---- raw input: file, stdin or decompressor pipe ---- */

static int spawn_decompressor(ctr_data_reader_t *r, const char *prog,
                              char *err, size_t errlen)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return ctr_error(err, errlen, CTR_EIO, "%s: pipe: %s", r->path, strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    char *argv[] = {(char *)prog, "-dc", "--", r->path, NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, prog, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    if (rc) {
        close(p[0]);
        return ctr_error(err, errlen, CTR_EIO,
                         "%s: compressed with %s, but `%s -dc` could not be run: %s",
                         r->path, prog, prog, strerror(rc));
    }
    r->fd = p[0];
    r->child = pid;
    r->child_name = prog;
    return 0;
}

/* Reaps the decompressor at end of input; its failure is ours. */
static int reap_child(ctr_data_reader_t *r, char *err, size_t errlen)
{
    if (!r->child)
        return 0;
    int st;
    pid_t pid = r->child;
    r->child = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return ctr_error(err, errlen, CTR_EIO, "%s: waitpid: %s", r->path, strerror(errno));
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (WIFEXITED(st))
        return ctr_error(err, errlen, CTR_EIO,
                         "%s: `%s -dc` failed with exit status %d (corrupt or truncated file?)",
                         r->path, r->child_name, WEXITSTATUS(st));
    return ctr_error(err, errlen, CTR_EIO, "%s: `%s -dc` was killed by signal %d",
                     r->path, r->child_name, WTERMSIG(st));
}

/* Reads more bytes into buf[end..cap). Returns 0, or a negative code. */
static int fill(ctr_data_reader_t *r, char *err, size_t errlen)
{
    for (;;) {
        ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (n > 0) {
            r->end += (size_t)n;
            return 0;
        }
        if (n == 0) {
            r->eof = 1;
            return reap_child(r, err, errlen);
        }
        if (errno != EINTR)
            return ctr_error(err, errlen, CTR_EIO, "%s: read: %s", r->path, strerror(errno));
    }
}

/* Next line, NUL-terminated in place, without its \n or \r\n. Returns 1,
 * 0 at end of input, CTR_EFORMAT for an over-long line (skipped), or
 * another negative code. */
static int next_line(ctr_data_reader_t *r, char **s, size_t *len, char *err, size_t errlen)
{
    for (;;) {
        char *b = r->buf + r->beg;
        char *nl = memchr(b, '\n', r->end - r->beg);
        size_t n;
        if (nl) {
            n = (size_t)(nl - b);
            r->beg += n + 1;
        } else if (r->eof) {
            if (r->end == r->beg)
                return 0;
            n = r->end - r->beg;
            r->beg = r->end;
        } else {
            if (r->beg > 0) {
                memmove(r->buf, b, r->end - r->beg);
                r->end -= r->beg;
                r->beg = 0;
            }
            if (r->end == r->cap) {
                /* Over-long: drop bytes up to the next newline. */
                r->line++;
                uint64_t line = r->line;
                for (;;) {
                    r->beg = r->end = 0;
                    int rc = fill(r, err, errlen);
                    if (rc)
                        return rc;
                    if (r->eof) {
                        r->beg = r->end; /* the long line was the last */
                        break;
                    }
                    char *q = memchr(r->buf, '\n', r->end);
                    if (q) {
                        r->beg = (size_t)(q - r->buf) + 1;
                        break;
                    }
                }
                return ctr_error(err, errlen, CTR_EFORMAT,
                                 "%s:%llu: line longer than %zu bytes",
                                 r->path, (unsigned long long)line, r->cap - 1);
            }
            int rc = fill(r, err, errlen);
            if (rc)
                return rc;
            continue;
        }
        r->line++;
        if (n > 0 && b[n - 1] == '\r')
            n--;
        b[n] = '\0';
        *s = b;
        *len = n;
        return 1;
    }
}

/* ---- splitting ---- */

static int grow_fields(ctr_data_reader_t *r, size_t want)
{
    if (want <= r->fcap)
        return 0;
    size_t cap = r->fcap ? r->fcap * 2 : 64;
    while (cap < want)
        cap *= 2;
    char **fs = realloc(r->fs, cap * sizeof(*fs));
    if (!fs)
        return CTR_ENOMEM;
    r->fs = fs;
    size_t *fl = realloc(r->fl, cap * sizeof(*fl));
    if (!fl)
        return CTR_ENOMEM;
    r->fl = fl;
    r->fcap = cap;
    return 0;
}

/* Splits s (NUL-terminated) on delim; for CSV, handles quoted fields and
 * unescapes them in place. Counts every field; records at most fcap. */
static int split(ctr_data_reader_t *r, char *s, size_t len, size_t *nf,
                 char *err, size_t errlen)
{
    size_t k = 0;
    char *end = s + len;
    char d = r->delim;
    if (r->format == CTR_DATA_CRITEO) {
        for (char *p = s;;) {
            char *q = memchr(p, d, (size_t)(end - p));
            if (!q)
                q = end;
            if (k < r->fcap) {
                r->fs[k] = p;
                r->fl[k] = (size_t)(q - p);
            }
            k++;
            if (q == end)
                break;
            *q = '\0';
            p = q + 1;
        }
        *nf = k;
        return 0;
    }
    char *p = s;
    for (;;) {
        char *start = p, *w = p;
        if (*p == '"') {
            p++;
            for (;;) {
                if (p == end)
                    return ctr_error(err, errlen, CTR_EFORMAT,
                                     "%s:%llu: field %zu: unterminated quoted field "
                                     "(quoted line breaks are not supported)",
                                     r->path, (unsigned long long)r->line, k + 1);
                if (*p == '"') {
                    if (p + 1 < end && p[1] == '"') {
                        *w++ = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                *w++ = *p++;
            }
            if (p != end && *p != d)
                return ctr_error(err, errlen, CTR_EFORMAT,
                                 "%s:%llu: field %zu: characters after the closing quote",
                                 r->path, (unsigned long long)r->line, k + 1);
        } else {
            while (p != end && *p != d) {
                if (*p == '"')
                    return ctr_error(err, errlen, CTR_EFORMAT,
                                     "%s:%llu: field %zu: a quote inside an unquoted field",
                                     r->path, (unsigned long long)r->line, k + 1);
                p++;
            }
            w = p;
        }
        if (k < r->fcap) {
            r->fs[k] = start;
            r->fl[k] = (size_t)(w - start);
        }
        k++;
        int last = p == end;
        *w = '\0';
        if (last)
            break;
        p++;
    }
    *nf = k;
    return 0;
}

/* ---- opening ---- */

static int set_names(ctr_data_reader_t *r, const ctr_data_opts_t *o)
{
    size_t n = r->n_dense + r->n_cat;
    r->names = calloc(n ? n : 1, sizeof(char *));
    if (!r->names)
        return CTR_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *nm = i < r->n_dense ? o->dense[i] : o->cat[i - r->n_dense];
        if (!(r->names[i] = strdup(nm)))
            return CTR_ENOMEM;
    }
    return 0;
}

static const char *criteo_name(size_t col, char *buf, size_t len)
{
    if (col == 0)
        return "label";
    if (col <= CTR_CRITEO_N_DENSE)
        snprintf(buf, len, "I%zu", col);
    else
        snprintf(buf, len, "C%zu", col - CTR_CRITEO_N_DENSE);
    return buf;
}

/* Criteo column index of name, or -1. */
static long criteo_col(const char *name)
{
    char buf[8];
    for (size_t c = 0; c < CRITEO_FIELDS; c++)
        if (!strcmp(name, criteo_name(c, buf, sizeof(buf))))
            return (long)c;
    return -1;
}

const char *const ctr_criteo_dense_names[CTR_CRITEO_N_DENSE] = {
    "I1", "I2", "I3", "I4", "I5", "I6", "I7", "I8", "I9", "I10", "I11", "I12", "I13"};
const char *const ctr_criteo_cat_names[CTR_CRITEO_N_CAT] = {
    "C1",  "C2",  "C3",  "C4",  "C5",  "C6",  "C7",  "C8",  "C9",  "C10", "C11", "C12", "C13",
    "C14", "C15", "C16", "C17", "C18", "C19", "C20", "C21", "C22", "C23", "C24", "C25", "C26"};

static int open_criteo(ctr_data_reader_t *r, const ctr_data_opts_t *o, char *err, size_t errlen)
{
    ctr_data_opts_t oo = *o;
    if (!oo.dense) {
        oo.n_dense = CTR_CRITEO_N_DENSE;
        oo.dense = ctr_criteo_dense_names;
    }
    if (!oo.cat) {
        oo.n_cat = CTR_CRITEO_N_CAT;
        oo.cat = ctr_criteo_cat_names;
    }
    if (o->label && strcmp(o->label, "label"))
        return ctr_error(err, errlen, CTR_EINVAL,
                         "%s: format criteo has its label in the first column; "
                         "--label %s needs --format csv", r->path, o->label);
    r->n_fields = CRITEO_FIELDS;
    r->label_col = 0;
    r->n_dense = oo.n_dense;
    r->n_cat = oo.n_cat;
    r->dense_col = calloc(oo.n_dense + 1, sizeof(size_t));
    r->cat_col = calloc(oo.n_cat + 1, sizeof(size_t));
    if (!r->dense_col || !r->cat_col || set_names(r, &oo))
        return CTR_ENOMEM;
    for (size_t k = 0; k < oo.n_dense; k++) {
        long c = criteo_col(oo.dense[k]);
        if (c < 1 || c > CTR_CRITEO_N_DENSE)
            return ctr_error(err, errlen, CTR_ENOTFOUND,
                             "%s: dense feature '%s' is not a Criteo integer column (I1..I13)",
                             r->path, oo.dense[k]);
        r->dense_col[k] = (size_t)c;
    }
    for (size_t j = 0; j < oo.n_cat; j++) {
        long c = criteo_col(oo.cat[j]);
        if (c < 1)
            return ctr_error(err, errlen, CTR_ENOTFOUND,
                             "%s: categorical feature '%s' is not a Criteo column (I1..I13, C1..C26)",
                             r->path, oo.cat[j]);
        r->cat_col[j] = (size_t)c;
    }
    return grow_fields(r, CRITEO_FIELDS + 1);
}

static int open_csv(ctr_data_reader_t *r, const ctr_data_opts_t *o, char *err, size_t errlen)
{
    if (grow_fields(r, 64))
        return CTR_ENOMEM;
    char *s;
    size_t len, nf;
    int rc;
    /* The header is the first line; an over-long one cannot be skipped. */
    rc = next_line(r, &s, &len, err, errlen);
    if (rc == 0)
        return ctr_error(err, errlen, CTR_EFORMAT, "%s: empty file: expected a CSV header row", r->path);
    if (rc < 0)
        return rc == CTR_EFORMAT ? CTR_EFORMAT : rc;
    if (len >= 3 && !memcmp(s, "\xef\xbb\xbf", 3)) {
        s += 3;
        len -= 3;
    }
    size_t n_delim = 0;
    for (size_t i = 0; i < len; i++)
        n_delim += s[i] == r->delim;
    if (grow_fields(r, n_delim + 2))
        return CTR_ENOMEM;
    if ((rc = split(r, s, len, &nf, err, errlen)))
        return rc;
    r->n_fields = nf;

    const char *label = o->label ? o->label : "label";
    r->n_dense = o->n_dense;
    r->n_cat = o->n_cat;
    r->dense_col = calloc(o->n_dense + 1, sizeof(size_t));
    r->cat_col = calloc(o->n_cat + 1, sizeof(size_t));
    if (!r->dense_col || !r->cat_col || set_names(r, o))
        return CTR_ENOMEM;
    r->label_col = -1;
    size_t n_sel = 1 + o->n_dense + o->n_cat;
    for (size_t i = 0; i < n_sel; i++) {
        const char *want = i == 0 ? label : r->names[i - 1];
        long found = -1;
        for (size_t c = 0; c < nf; c++) {
            if (r->fl[c] == strlen(want) && !memcmp(r->fs[c], want, r->fl[c])) {
                if (found >= 0)
                    return ctr_error(err, errlen, CTR_EFORMAT,
                                     "%s:1: column '%s' appears twice in the header", r->path, want);
                found = (long)c;
            }
        }
        if (found < 0) {
            if (i == 0 && r->label_optional)
                continue;
            return ctr_error(err, errlen, CTR_ENOTFOUND,
                             "%s:1: no column named '%s' in the header", r->path, want);
        }
        if (i == 0)
            r->label_col = found;
        else if (i <= o->n_dense)
            r->dense_col[i - 1] = (size_t)found;
        else
            r->cat_col[i - 1 - o->n_dense] = (size_t)found;
    }
    for (size_t i = 0; i + 1 < n_sel; i++)
        for (size_t k = i + 1; k + 1 < n_sel; k++)
            if (!strcmp(r->names[i], r->names[k]))
                return ctr_error(err, errlen, CTR_EINVAL, "column '%s' is selected twice",
                                 r->names[i]);
    for (size_t i = 0; i + 1 < n_sel; i++)
        if (!strcmp(r->names[i], label))
            return ctr_error(err, errlen, CTR_EINVAL,
                             "column '%s' is the label and cannot also be a feature", label);
    return 0;
}

/* Categorical column index of name, or -1. */
static long cat_index(const ctr_data_reader_t *r, const char *name)
{
    for (size_t j = 0; j < r->n_cat; j++)
        if (!strcmp(r->names[r->n_dense + j], name))
            return (long)j;
    return -1;
}

static int set_bag(ctr_data_reader_t *r, const char *column, char sep, uint64_t max,
                   const char *source, char *err, size_t errlen)
{
    long j = cat_index(r, column);
    if (j < 0)
        return ctr_error(err, errlen, CTR_EINVAL,
                         "%s: bag column '%s' is not one of the categorical columns", source, column);
    if (r->bag_sep[j])
        return ctr_error(err, errlen, CTR_EINVAL, "%s: bag column '%s' is named twice", source, column);
    if (max < 1 || max > CTR_MAX_BAG)
        return ctr_error(err, errlen, CTR_EINVAL, "%s: bag column '%s': at most %llu values; must be 1..%d",
                         source, column, (unsigned long long)max, CTR_MAX_BAG);
    if (sep == '\0' || sep == '\n' || sep == '\r' || sep == '"' ||
        (r->format == CTR_DATA_CRITEO && sep == '\t'))
        return ctr_error(err, errlen, CTR_EINVAL,
                         "%s: bag column '%s': separator 0x%02x cannot be used%s", source, column,
                         (unsigned char)sep, r->format == CTR_DATA_CRITEO && sep == '\t'
                                                 ? " (the tab separates criteo's fields)" : "");
    r->bag_sep[j] = sep;
    r->bag_max[j] = (uint32_t)max;
    return 0;
}

/* The model's bag features whose separator its provenance records
 * ({"data":{"bags":[{"column":..,"sep":..,"max":..}]}}, ctrtool train):
 * each a bag column of at most bag_max values, unless opts named it. A
 * provenance that is not JSON or records no bags gives none. */
static int model_bags(ctr_data_reader_t *r, const ctr_model_def_t *def, char *err, size_t errlen)
{
    if (!def->provenance_json)
        return 0;
    json_t *root = json_loads(def->provenance_json, 0, NULL);
    json_t *bags = json_object_get(json_object_get(root, "data"), "bags");
    int rc = 0;
    for (size_t i = 0; !rc && i < json_array_size(bags); i++) {
        json_t *b = json_array_get(bags, i);
        const char *col = json_string_value(json_object_get(b, "column"));
        const char *sep = json_string_value(json_object_get(b, "sep"));
        if (!col || !sep || strlen(sep) != 1)
            continue;
        long j = cat_index(r, col);
        if (j < 0 || r->bag_sep[j])
            continue;
        for (size_t f = 0; f < def->n_cat; f++)
            if (def->cat[f].bag_max && !strcmp(def->cat[f].name, col)) {
                rc = set_bag(r, col, sep[0], def->cat[f].bag_max, "model", err, errlen);
                break;
            }
    }
    json_decref(root);
    return rc;
}

static int resolve_bags(ctr_data_reader_t *r, const ctr_data_opts_t *o, char *err, size_t errlen)
{
    int rc;
    for (size_t i = 0; i < o->n_bags; i++)
        if ((rc = set_bag(r, o->bags[i].column ? o->bags[i].column : "", o->bags[i].sep,
                          o->bags[i].max, r->path, err, errlen)))
            return rc;
    return o->bag_model ? model_bags(r, o->bag_model, err, errlen) : 0;
}

int ctr_data_open(const char *path, const ctr_data_opts_t *o, ctr_data_reader_t **out,
                  char *err, size_t errlen)
{
    *out = NULL;
    ctr_data_reader_t *r = calloc(1, sizeof(*r));
    int rc = CTR_ENOMEM;
    if (!r)
        return CTR_ENOMEM;
    r->fd = -1;
    r->format = o->format;
    r->delim = o->format == CTR_DATA_CRITEO ? '\t' : (o->delimiter ? o->delimiter : ',');
    r->label_optional = o->label_optional;
    size_t max_line = o->max_line ? o->max_line : CTR_DATA_MAX_LINE_DEFAULT;
    r->cap = max_line + 1; /* the line and its \n */
    if (!(r->path = strdup(path)) || !(r->buf = malloc(r->cap + 1)))
        goto fail;

    if (!strcmp(path, "-")) {
        r->fd = 0;
    } else if ((r->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = ctr_error(err, errlen, CTR_EIO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    /* Peek at the magic bytes; plain text stays in the buffer. */
    while (r->end < 6 && !r->eof)
        if ((rc = fill(r, err, errlen)))
            goto fail;
    const char *prog = NULL;
    if (r->end >= 6 && !memcmp(r->buf, "\xfd" "7zXZ\0", 6))
        prog = "xz";
    else if (r->end >= 2 && !memcmp(r->buf, "\x1f\x8b", 2))
        prog = "gzip";
    if (prog) {
        if (r->fd == 0) {
            rc = ctr_error(err, errlen, CTR_EUNSUPPORTED,
                           "stdin: compressed input on stdin is not supported; pass the file path");
            goto fail;
        }
        close(r->fd);
        r->fd = -1;
        r->beg = r->end = 0;
        r->eof = 0;
        if ((rc = spawn_decompressor(r, prog, err, errlen)))
            goto fail;
    }

    rc = o->format == CTR_DATA_CSV ? open_csv(r, o, err, errlen) : open_criteo(r, o, err, errlen);
    if (rc)
        goto fail;
    r->dense = calloc(r->n_dense + 1, sizeof(double));
    r->cat = calloc(r->n_cat + 1, sizeof(char *));
    r->cat_len = calloc(r->n_cat + 1, sizeof(size_t));
    r->bag_sep = calloc(r->n_cat + 1, 1);
    r->bag_max = calloc(r->n_cat + 1, sizeof(uint32_t));
    r->val_off = calloc(r->n_cat + 1, sizeof(size_t));
    if (!r->dense || !r->cat || !r->cat_len || !r->bag_sep || !r->bag_max || !r->val_off) {
        rc = CTR_ENOMEM;
        goto fail;
    }
    if ((rc = resolve_bags(r, o, err, errlen)))
        goto fail;
    size_t n_val = 0;
    for (size_t j = 0; j < r->n_cat; j++)
        n_val += r->bag_sep[j] ? r->bag_max[j] : 1;
    r->val = calloc(n_val + 1, sizeof(char *));
    r->val_len = calloc(n_val + 1, sizeof(size_t));
    if (!r->val || !r->val_len) {
        rc = CTR_ENOMEM;
        goto fail;
    }
    r->row.dense = r->dense;
    r->row.cat = r->cat;
    r->row.cat_len = r->cat_len;
    r->row.val_off = r->val_off;
    r->row.val = r->val;
    r->row.val_len = r->val_len;
    *out = r;
    return 0;
fail:
    if (rc == CTR_ENOMEM && err && errlen)
        ctr_error(err, errlen, rc, "%s: out of memory", path);
    ctr_data_close(r);
    return rc;
}

void ctr_data_close(ctr_data_reader_t *r)
{
    if (!r)
        return;
    if (r->fd > 0)
        close(r->fd);
    if (r->child) {
        /* Closed early: the decompressor dies of SIGPIPE; just reap it. */
        int st;
        while (waitpid(r->child, &st, 0) < 0 && errno == EINTR)
            ;
    }
    if (r->names)
        for (size_t i = 0; i < r->n_dense + r->n_cat; i++)
            free(r->names[i]);
    free(r->names);
    free(r->dense_col);
    free(r->cat_col);
    free(r->fs);
    free(r->fl);
    free(r->dense);
    free(r->cat);
    free(r->cat_len);
    free(r->bag_sep);
    free(r->bag_max);
    free(r->val_off);
    free(r->val);
    free(r->val_len);
    free(r->buf);
    free(r->path);
    free(r);
}

/* ---- field parsing ---- */

static void trim(const char **s, size_t *len)
{
    while (*len && (**s == ' ' || **s == '\t'))
        (*s)++, (*len)--;
    while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}


int ctr_data_next(ctr_data_reader_t *r, const ctr_data_row_t **row, char *err, size_t errlen)
{
    char *s;
    size_t len, nf;
    int rc;
    do {
        rc = next_line(r, &s, &len, err, errlen);
        if (rc <= 0)
            return rc;
    } while (len == 0);
    unsigned long long ln = (unsigned long long)r->line;
    if ((rc = split(r, s, len, &nf, err, errlen)))
        return rc;

    size_t shift = 0;
    if (nf != r->n_fields) {
        if (r->format == CTR_DATA_CRITEO && r->label_optional && nf == r->n_fields - 1) {
            shift = 1;
        } else {
            return ctr_error(err, errlen, CTR_EFORMAT,
                             "%s:%llu: expected %zu %s-separated fields%s, found %zu%s",
                             r->path, ln, r->n_fields,
                             r->format == CTR_DATA_CRITEO ? "tab" : "delimiter",
                             r->format == CTR_DATA_CRITEO && r->label_optional
                                 ? " (or 39 without a label)" : "",
                             nf,
                             r->format == CTR_DATA_CSV ? " (as many as the header has)" : "");
        }
    }
    char show_buf[64];

    r->row.line = r->line;
    r->row.label = -1;
    if (r->label_col >= 0 && !shift) {
        const char *f = r->fs[r->label_col];
        size_t fl = r->fl[r->label_col];
        if (r->format == CTR_DATA_CSV)
            trim(&f, &fl);
        char *e = NULL;
        double v = NAN;
        if (r->format == CTR_DATA_CSV && fl > 0)
            v = strtod(f, &e); /* "1.0", "0e0": still 0 or 1 */
        if (fl == 1 && (f[0] == '0' || f[0] == '1'))
            r->row.label = f[0] - '0';
        else if (fl == 0 && r->label_optional)
            r->row.label = -1;
        else if (e == f + fl && (v == 0.0 || v == 1.0))
            r->row.label = (int)v;
        else
            return ctr_error(err, errlen, CTR_EFORMAT, "%s:%llu: label: '%s' is not 0 or 1%s",
                             r->path, ln, ctr__data_show(f, fl, show_buf, sizeof(show_buf)),
                             fl == 0 ? " (it is empty)" : "");
    }

    for (size_t k = 0; k < r->n_dense; k++) {
        size_t c = r->dense_col[k] - shift;
        const char *f = r->fs[c];
        size_t fl = r->fl[c];
        if (r->format == CTR_DATA_CSV)
            trim(&f, &fl);
        if (fl == 0) {
            r->dense[k] = NAN;
            continue;
        }
        char *e;
        errno = 0;
        if (r->format == CTR_DATA_CRITEO) {
            int sign_or_digit = (f[0] >= '0' && f[0] <= '9') || f[0] == '-' || f[0] == '+';
            long long v = sign_or_digit ? strtoll(f, &e, 10) : 0;
            if (!sign_or_digit || e != f + fl)
                return ctr_error(err, errlen, CTR_EFORMAT,
                                 "%s:%llu: %s: '%s' is not an integer", r->path, ln,
                                 r->names[k], ctr__data_show(f, fl, show_buf, sizeof(show_buf)));
            if (errno == ERANGE)
                return ctr_error(err, errlen, CTR_EFORMAT,
                                 "%s:%llu: %s: '%s' is out of the 64-bit integer range",
                                 r->path, ln, r->names[k], ctr__data_show(f, fl, show_buf, sizeof(show_buf)));
            r->dense[k] = (double)v;
        } else {
            /* The field is NUL-terminated after its (untrimmed) end; a
             * trailing blank is allowed by the length check. */
            double v = strtod(f, &e);
            if (e != f + fl || !isfinite(v))
                return ctr_error(err, errlen, CTR_EFORMAT,
                                 "%s:%llu: %s: '%s' is not a finite number", r->path, ln,
                                 r->names[k], ctr__data_show(f, fl, show_buf, sizeof(show_buf)));
            r->dense[k] = v;
        }
    }

    size_t nv = 0;
    for (size_t j = 0; j < r->n_cat; j++) {
        size_t c = r->cat_col[j] - shift;
        const char *f = r->fs[c];
        size_t fl = r->fl[c];
        const char *col = r->names[r->n_dense + j];
        r->cat[j] = fl ? f : NULL;
        r->cat_len[j] = fl;
        r->val_off[j] = nv;
        if (!r->bag_sep[j]) {
            if (fl > CTR_MAX_CAT_BYTES)
                return ctr_error(err, errlen, CTR_EFORMAT,
                                 "%s:%llu: %s: value of %zu bytes is over the %d-byte limit ('%s')",
                                 r->path, ln, col, fl, CTR_MAX_CAT_BYTES,
                                 ctr__data_show(f, fl, show_buf, sizeof(show_buf)));
            if (fl) {
                r->val[nv] = f;
                r->val_len[nv++] = fl;
            }
            continue;
        }
        /* A bag: the values between separators, every one non-empty. */
        const char *p = f, *end = f + fl;
        const char sep = r->bag_sep[j];
        for (size_t k = 0; fl; k++) {
            const char *q = memchr(p, sep, (size_t)(end - p));
            if (!q)
                q = end;
            size_t vl = (size_t)(q - p);
            if (vl == 0)
                return ctr_error(err, errlen, CTR_EFORMAT,
                                 "%s:%llu: %s: value %zu of the bag is empty ('%s', separator '%c')",
                                 r->path, ln, col, k + 1, ctr__data_show(f, fl, show_buf, sizeof(show_buf)),
                                 sep);
            if (k == r->bag_max[j])
                return ctr_error(err, errlen, CTR_EFORMAT,
                                 "%s:%llu: %s: more than %u values in the bag (its limit)",
                                 r->path, ln, col, r->bag_max[j]);
            if (vl > CTR_MAX_CAT_BYTES)
                return ctr_error(err, errlen, CTR_EFORMAT,
                                 "%s:%llu: %s: value %zu of the bag, of %zu bytes, is over the "
                                 "%d-byte limit ('%s')",
                                 r->path, ln, col, k + 1, vl, CTR_MAX_CAT_BYTES,
                                 ctr__data_show(p, vl, show_buf, sizeof(show_buf)));
            r->val[nv] = p;
            r->val_len[nv++] = vl;
            if (q == end)
                break;
            p = q + 1;
        }
    }
    r->val_off[r->n_cat] = nv;
    *row = &r->row;
    return 1;
}
