/* replay.c - replay sources (see replay.h) and loading logs into a
 * message set. */
#include "replay.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"

#define MAX_LINE (64u << 20)

/* ---- jsonl ----------------------------------------------------------------*/

typedef struct {
    FILE *f;
    const char *path;
    char *line;
    size_t cap;
    uint64_t lineno;
} jsonl_t;

static int jsonl_sniff(const unsigned char *head, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (head[i] == ' ' || head[i] == '\t' || head[i] == '\r' || head[i] == '\n')
            continue;
        return head[i] == '{' || head[i] == '#';
    }
    return n == 0;                           /* an empty file is an empty log */
}

static int jsonl_open(const char *path, void **state, char *err, size_t errlen)
{
    jsonl_t *j = calloc(1, sizeof *j);
    if (!j)
        return ctr_error(err, errlen, CTR_ENOMEM, "%s: out of memory", path);
    j->f = fopen(path, "r");
    if (!j->f) {
        int e = errno;
        free(j);
        return ctr_error(err, errlen, CTR_EIO, "%s: %s", path, strerror(e));
    }
    j->path = path;
    *state = j;
    return 0;
}

static uint32_t count_examples(json_t *body)
{
    json_t *ex = json_object_get(body, "examples");
    return json_is_array(ex) ? (uint32_t)json_array_size(ex) : 0;
}

static int jsonl_next(void *state, ctr__replay_rec_t *rec, char *err, size_t errlen)
{
    jsonl_t *j = state;
    for (;;) {
        ssize_t n = getline(&j->line, &j->cap, j->f);
        if (n < 0) {
            if (ferror(j->f))
                return ctr_error(err, errlen, CTR_EIO, "%s: read error", j->path);
            return 0;
        }
        j->lineno++;
        while (n > 0 && (j->line[n - 1] == '\n' || j->line[n - 1] == '\r' ||
                         j->line[n - 1] == ' ' || j->line[n - 1] == '\t'))
            n--;
        size_t s = 0;
        while (s < (size_t)n && (j->line[s] == ' ' || j->line[s] == '\t'))
            s++;
        if (s == (size_t)n || j->line[s] == '#')
            continue;
        if ((size_t)n > MAX_LINE)
            return ctr_error(err, errlen, CTR_EFORMAT, "%s:%llu: line over %u MiB", j->path,
                             (unsigned long long)j->lineno, MAX_LINE >> 20);
        json_error_t je;
        json_t *v = json_loadb(j->line + s, (size_t)n - s, 0, &je);
        if (!v)
            return ctr_error(err, errlen, CTR_EFORMAT, "%s:%llu: not JSON: %s (column %d)", j->path,
                             (unsigned long long)j->lineno, je.text, je.column);
        int rc = 0;
        json_t *body = v;
        json_t *t = json_object_get(v, "t_ns");
        json_t *wrapped = json_object_get(v, "body");
        if (!json_is_object(v)) {
            rc = ctr_error(err, errlen, CTR_EFORMAT, "%s:%llu: expected a JSON object (a /v1/score body)",
                           j->path, (unsigned long long)j->lineno);
            goto out;
        }
        if (json_is_object(wrapped))
            body = wrapped;
        if (!json_is_array(json_object_get(body, "examples"))) {
            rc = ctr_error(err, errlen, CTR_EFORMAT,
                           "%s:%llu: not a /v1/score body: no \"examples\" array", j->path,
                           (unsigned long long)j->lineno);
            goto out;
        }
        rec->t_ns = CTR__NO_TIME;
        if (t) {
            if (!json_is_integer(t) || json_integer_value(t) < 0) {
                rc = ctr_error(err, errlen, CTR_EFORMAT,
                               "%s:%llu: \"t_ns\" must be a non-negative integer (nanoseconds)",
                               j->path, (unsigned long long)j->lineno);
                goto out;
            }
            rec->t_ns = (uint64_t)json_integer_value(t);
        }
        rec->n_examples = count_examples(body);
        if (!t && body == v) {
            /* Byte for byte as logged. */
            rec->len = (size_t)n - s;
            rec->body = malloc(rec->len + 1);
            if (rec->body) {
                memcpy(rec->body, j->line + s, rec->len);
                rec->body[rec->len] = 0;
            }
        } else {
            if (body == v)
                json_object_del(v, "t_ns");
            rec->body = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
            rec->len = rec->body ? strlen(rec->body) : 0;
        }
        if (!rec->body)
            rc = ctr_error(err, errlen, CTR_ENOMEM, "%s: out of memory", j->path);
        else
            rc = 1;
    out:
        json_decref(v);
        return rc;
    }
}

static void jsonl_close(void *state)
{
    jsonl_t *j = state;
    if (!j)
        return;
    if (j->f)
        fclose(j->f);
    free(j->line);
    free(j);
}

static const ctr__replay_source_t sources[] = {
    {"jsonl", "JSON lines, one /v1/score body per line, optional \"t_ns\"", jsonl_sniff, jsonl_open,
     jsonl_next, jsonl_close},
};

static const ctr__replay_source_t *pick(const char *path, const char *format, char *err, size_t errlen)
{
    if (format) {
        for (size_t i = 0; i < CTR_ARRAY_LEN(sources); i++)
            if (!strcmp(sources[i].name, format))
                return &sources[i];
        ctr_error(err, errlen, CTR_EINVAL, "--replay-format: unknown format \"%s\" (known: jsonl)", format);
        return NULL;
    }
    unsigned char head[256];
    FILE *f = fopen(path, "rb");
    if (!f) {
        ctr_error(err, errlen, CTR_EIO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t n = fread(head, 1, sizeof head, f);
    fclose(f);
    for (size_t i = 0; i < CTR_ARRAY_LEN(sources); i++)
        if (sources[i].sniff(head, n))
            return &sources[i];
    ctr_error(err, errlen, CTR_EFORMAT,
              "%s: not a log ctrload can replay (expected JSON lines of /v1/score bodies; "
              "turn an audit log into that with `ctrtool audit dump`)", path);
    return NULL;
}

typedef struct {
    uint64_t t;
    size_t i;
} order_t;

static int cmp_order(const void *a, const void *b)
{
    const order_t *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

int ctr__replay_load(const char *const *paths, size_t n, const char *format, int *all_timed,
                     ctr__msgset_t **out, char *err, size_t errlen)
{
    *out = NULL;
    ctr__msgset_t *set = calloc(1, sizeof *set);
    if (!set)
        return ctr_error(err, errlen, CTR_ENOMEM, "replay: out of memory");
    int rc = 0;
    for (size_t p = 0; p < n; p++) {
        const ctr__replay_source_t *src = pick(paths[p], format, err, errlen);
        if (!src) {
            rc = CTR_EINVAL;
            goto fail;
        }
        void *st = NULL;
        rc = src->open(paths[p], &st, err, errlen);
        if (rc)
            goto fail;
        for (;;) {
            ctr__replay_rec_t rec;
            memset(&rec, 0, sizeof rec);
            rc = src->next(st, &rec, err, errlen);
            if (rc <= 0)
                break;
            rc = ctr__msgset_add(set, rec.body, rec.len, CTR__NO_ID, rec.n_examples, rec.t_ns);
            if (rc) {
                ctr_error(err, errlen, rc, "%s: out of memory", paths[p]);
                break;
            }
        }
        src->close(st);
        if (rc < 0)
            goto fail;
    }
    if (!set->n) {
        rc = ctr_error(err, errlen, CTR_EFORMAT, "the replay log%s held no requests", n > 1 ? "s" : "");
        goto fail;
    }
    int timed = 1;
    for (size_t i = 0; i < set->n; i++)
        timed &= set->v[i].t_ns != CTR__NO_TIME;
    if (timed) {
        /* Files may interleave in time: send in time order. */
        size_t m = set->n;
        order_t *o = malloc(m * sizeof *o);
        ctr__msg_t *tmp = malloc(m * sizeof *tmp);
        if (!o || !tmp) {
            free(o);
            free(tmp);
            rc = ctr_error(err, errlen, CTR_ENOMEM, "replay: out of memory");
            goto fail;
        }
        for (size_t i = 0; i < m; i++) {
            o[i].t = set->v[i].t_ns;
            o[i].i = i;
        }
        qsort(o, m, sizeof *o, cmp_order);
        for (size_t i = 0; i < m; i++)
            tmp[i] = set->v[o[i].i];
        memcpy(set->v, tmp, m * sizeof *tmp);
        free(o);
        free(tmp);
    }
    *all_timed = timed;
    *out = set;
    return 0;
fail:
    ctr__msgset_free(set);
    return rc;
}
