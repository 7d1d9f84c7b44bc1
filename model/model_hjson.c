/* model_hjson.c - typed access to the .ctrm header's JSON for the parser
 * (model_parse_int.h): every getter checks presence, JSON type and range,
 * and on failure writes a message that names the key by its path and
 * shows what was there. Also the string arena, the model's owned arrays
 * and the list of tensor references. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "model_int.h"
#include "model_parse_int.h"

const char *ctr__hp_strdup(struct ctr_model *m, const char *s, size_t len)
{
    CTR_ASSERT(m->strings_used + len + 1 <= m->strings_cap);
    char *p = m->strings + m->strings_used;
    memcpy(p, s, len);
    p[len] = '\0';
    m->strings_used += len + 1;
    return p;
}

int ctr__model_own(struct ctr_model *m, void *p)
{
    if (m->n_owned == m->owned_cap) {
        size_t cap = m->owned_cap ? 2 * m->owned_cap : 8;
        void **o = realloc(m->owned, cap * sizeof(*o));
        if (!o)
            return CTR_ENOMEM;
        m->owned = o;
        m->owned_cap = cap;
    }
    m->owned[m->n_owned++] = p;
    return 0;
}

void *ctr__model_calloc(struct ctr_model *m, size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (p && ctr__model_own(m, p)) {
        free(p);
        return NULL;
    }
    return p;
}

const char *ctr__hp_show(const json_t *v, char *out, size_t outlen)
{
    if (!v)
        return "nothing";
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!s)
        return "?";
    ctr__printable_ex(s, strlen(s), out, outlen, true);
    free(s);
    return out;
}

int ctr__hp_bad(ctr__parse_t *p, int code, const char *where, const char *key, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t wl = strlen(where);
    const char *sep = !key || !wl ? "" : where[wl - 1] == '"' ? " " : ".";
    return ctr_error(p->err, p->errlen, code, "header: %s%s%s: %s", where, sep, key ? key : "", msg);
}

int ctr__hp_nomem(ctr__parse_t *p)
{
    return ctr_error(p->err, p->errlen, CTR_ENOMEM, "out of memory");
}

int ctr__hp_keys(ctr__parse_t *p, json_t *obj, const char *where, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = !strcmp(key, *a);
        if (!ok) {
            char q[256];
            return ctr__hp_bad(p, CTR_EFORMAT, where, NULL, "unknown key \"%s\"",
                               ctr__printable(key, strlen(key), q, sizeof(q)));
        }
    }
    return 0;
}

int ctr__hp_key(ctr__parse_t *p, json_t *obj, const char *where, const char *key, json_t **out)
{
    *out = json_object_get(obj, key);
    return *out ? 0 : ctr__hp_bad(p, CTR_EFORMAT, where, key, "missing");
}

int ctr__hp_object(ctr__parse_t *p, json_t *obj, const char *where, const char *key, json_t **out)
{
    char g[64];
    int rc = ctr__hp_key(p, obj, where, key, out);
    if (!rc && !json_is_object(*out))
        rc = ctr__hp_bad(p, CTR_EFORMAT, where, key, "expected an object (got %s)", ctr__hp_show(*out, g, sizeof(g)));
    return rc;
}

int ctr__hp_array(ctr__parse_t *p, json_t *obj, const char *where, const char *key, json_t **out)
{
    char g[64];
    int rc = ctr__hp_key(p, obj, where, key, out);
    if (!rc && !json_is_array(*out))
        rc = ctr__hp_bad(p, CTR_EFORMAT, where, key, "expected an array (got %s)", ctr__hp_show(*out, g, sizeof(g)));
    return rc;
}

int ctr__hp_string(ctr__parse_t *p, json_t *obj, const char *where, const char *key, const char **s, size_t *len)
{
    json_t *v;
    char g[64];
    int rc = ctr__hp_key(p, obj, where, key, &v);
    if (rc)
        return rc;
    if (!json_is_string(v))
        return ctr__hp_bad(p, CTR_EFORMAT, where, key, "expected a string (got %s)", ctr__hp_show(v, g, sizeof(g)));
    *s = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}

int ctr__hp_uint(ctr__parse_t *p, json_t *obj, const char *where, const char *key, uint64_t min, uint64_t max,
                 uint64_t *out)
{
    json_t *v;
    char g[64], want[64];
    int rc = ctr__hp_key(p, obj, where, key, &v);
    if (rc)
        return rc;
    if (json_is_integer(v) && json_integer_value(v) >= 0 && (uint64_t)json_integer_value(v) >= min &&
        (uint64_t)json_integer_value(v) <= max) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    if (max >= INT64_MAX && min == 0)
        snprintf(want, sizeof(want), ">= 0");
    else if (max >= INT64_MAX)
        snprintf(want, sizeof(want), "> %" PRIu64, min - 1);
    else if (min == 1 && max == UINT32_MAX)
        snprintf(want, sizeof(want), "> 0 and < 2^32");
    else if (min == 0 && max == UINT32_MAX)
        snprintf(want, sizeof(want), ">= 0 and < 2^32");
    else
        snprintf(want, sizeof(want), "in %" PRIu64 "..%" PRIu64, min, max);
    return ctr__hp_bad(p, CTR_EFORMAT, where, key, "expected an integer %s (got %s)", want,
                       ctr__hp_show(v, g, sizeof(g)));
}

int ctr__hp_finite(ctr__parse_t *p, json_t *obj, const char *where, const char *key, double *out)
{
    json_t *v;
    char g[64];
    int rc = ctr__hp_key(p, obj, where, key, &v);
    if (rc)
        return rc;
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return ctr__hp_bad(p, CTR_EFORMAT, where, key, "expected a finite number (got %s)",
                           ctr__hp_show(v, g, sizeof(g)));
    *out = json_number_value(v);
    return 0;
}

int ctr__hp_positive_float(ctr__parse_t *p, json_t *obj, const char *where, const char *key, float *out)
{
    double x;
    int rc = ctr__hp_finite(p, obj, where, key, &x);
    if (rc)
        return rc;
    if (!(x > 0) || x > 3.4028234663852886e38 || !((float)x > 0))
        return ctr__hp_bad(p, CTR_EFORMAT, where, key, "expected a number > 0 that fits a float (got %g)", x);
    *out = (float)x;
    return 0;
}

int ctr__hp_bool(ctr__parse_t *p, json_t *obj, const char *where, const char *key, int *out)
{
    json_t *v;
    char g[64];
    int rc = ctr__hp_key(p, obj, where, key, &v);
    if (rc)
        return rc;
    if (!json_is_boolean(v))
        return ctr__hp_bad(p, CTR_EFORMAT, where, key, "expected true or false (got %s)",
                           ctr__hp_show(v, g, sizeof(g)));
    *out = json_is_true(v);
    return 0;
}

int ctr__hp_enum(ctr__parse_t *p, json_t *obj, const char *where, const char *key, const char *const *names,
                 size_t n, int *out)
{
    const char *s;
    size_t len;
    char g[64], known[128] = "";
    int rc = ctr__hp_string(p, obj, where, key, &s, &len);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (strlen(names[i]) == len && !memcmp(s, names[i], len)) {
            *out = (int)i;
            return 0;
        }
        size_t kl = strlen(known);
        snprintf(known + kl, sizeof(known) - kl, "%s%s", i ? ", " : "", names[i]);
    }
    return ctr__hp_bad(p, CTR_EUNSUPPORTED, where, key, "unknown %s \"%s\" (this build knows %s)", key,
                       ctr__printable(s, len, g, sizeof(g)), known);
}

int ctr__hp_name(ctr__parse_t *p, json_t *obj, const char *where, size_t max, const char **out)
{
    const char *s;
    size_t len;
    char q[256];
    int rc = ctr__hp_string(p, obj, where, "name", &s, &len);
    if (rc)
        return rc;
    if (!ctr__name_valid(s, len, max))
        return ctr__hp_bad(p, CTR_EFORMAT, where, "name",
                           "\"%s\" is not a valid name (1..%zu bytes of printable ASCII, no quotes or backslash)",
                           ctr__printable(s, len, q, sizeof(q)), max);
    *out = ctr__hp_strdup(p->m, s, len);
    return 0;
}

static const float unresolved;

int ctr__hp_ref(ctr__parse_t *p, json_t *obj, const char *where, const char *key, const char *what, int rank,
                uint64_t d0, uint64_t d1, bool is_table, const float **out)
{
    const char *s;
    size_t len;
    int rc = ctr__hp_string(p, obj, where, key, &s, &len);
    if (rc)
        return rc;
    if (p->n_refs == p->refs_cap) {
        size_t cap = p->refs_cap ? 2 * p->refs_cap : 32;
        ctr__tref_t *r = realloc(p->refs, cap * sizeof(*r));
        if (!r)
            return ctr__hp_nomem(p);
        p->refs = r;
        p->refs_cap = cap;
    }
    ctr__tref_t *r = &p->refs[p->n_refs++];
    memset(r, 0, sizeof(*r));
    r->name = json_object_get(obj, key);
    snprintf(r->where, sizeof(r->where), "%s", where);
    r->key = key;
    if (what)
        snprintf(r->what, sizeof(r->what), "%s", what);
    else
        snprintf(r->what, sizeof(r->what), "%s.%s", where, key);
    r->rank = rank;
    r->d0 = d0;
    r->d1 = d1;
    r->is_table = is_table;
    r->out = out;
    /* Non-NULL from here on, so that ctr__model_check (which runs before
     * the tensor list is read) sees which tensors the header names; never
     * read, and replaced by the tensor's address when it is resolved. */
    *out = &unresolved;
    return 0;
}
