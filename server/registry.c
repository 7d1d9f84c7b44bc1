/* registry.c - the served models by name (see registry.h). */
#include "registry.h"

#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "log.h"

struct ctr__registry {
    size_t n;
    ctr__modelstore_t *models[CTR__MODELS_MAX];
};

int ctr__registry_name_check(const char *name, size_t len, char *err, size_t errlen)
{
    if (len == 0)
        return ctr_error(err, errlen, CTR_EINVAL, "a model name may not be empty");
    if (len > CTR__MODEL_NAME_MAX)
        return ctr_error(err, errlen, CTR_EINVAL, "model name \"%.*s...\" is %zu bytes, at most %d allowed",
                         32, name, len, CTR__MODEL_NAME_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= ' ' || c >= 0x7f || strchr("/?#%\"\\", c))
            return ctr_error(err, errlen, CTR_EINVAL,
                             "model name \"%.*s\": byte %zu (0x%02x) is not allowed (printable ASCII "
                             "without space, '/', '?', '#', '%%', '\"', '\\\\')",
                             (int)len, name, i, c);
    }
    return 0;
}

int ctr__registry_open(const ctr__model_spec_t *specs, size_t n, const ctr_kernel_t *kernel,
                       ctr__registry_t **out, char *err, size_t errlen)
{
    int rc;
    char why[512];
    size_t spec_of[CTR__MODELS_MAX];    /* registry index -> specs index */
    if (n == 0)
        return ctr_error(err, errlen, CTR_EINVAL, "no model to serve");
    if (n > CTR__MODELS_MAX)
        return ctr_error(err, errlen, CTR_ERANGE, "%zu models given, at most %d", n, CTR__MODELS_MAX);
    ctr__registry_t *r = calloc(1, sizeof *r);
    if (!r)
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *nm = specs[i].name;
        size_t k = r->n;            /* its index: an optional model skipped moves the rest up */
        /* A given name is checked before its (possibly slow) load. */
        if (nm && (rc = ctr__registry_name_check(nm, strlen(nm), why, sizeof why))) {
            ctr_error(err, errlen, rc, "--model %s=%s: %s", nm, specs[i].path, why);
            goto fail;
        }
        if ((rc = ctr__modelstore_open(nm, specs[i].path, k, kernel, &r->models[k], why, sizeof why))) {
            if (specs[i].optional) {
                ctr__log(CTR_LOG_ERROR, "shadow candidate not loaded: serving without it, the shadow is off",
                         CTR_LOG_S("model", nm ? nm : ""), CTR_LOG_S("file", specs[i].path),
                         CTR_LOG_S("reason", why), CTR_LOG_S("code", ctr_strerror(rc)), CTR_LOG_END);
                r->models[k] = NULL;
                continue;
            }
            ctr_error(err, errlen, rc, "model %zu (%s%s%s): %s", i + 1, nm ? nm : "", nm ? "=" : "",
                      specs[i].path, why);
            goto fail;
        }
        r->n = k + 1;
        spec_of[k] = i;
        const char *got = ctr__modelstore_name(r->models[k]);
        if (!nm) {
            /* The header's name, which the store truncated: check the
             * file's own text, so an over-long one is refused, not cut. */
            ctr__gen_t *g = ctr__modelstore_acquire(r->models[k]);
            rc = ctr__registry_name_check(g->def->name, strlen(g->def->name), why, sizeof why);
            ctr__gen_release(g);
            if (rc) {
                ctr_error(err, errlen, rc, "--model %s: its header's %s; give it one with --model NAME=PATH",
                          specs[i].path, why);
                goto fail;
            }
        }
        for (size_t j = 0; j < k; j++) {
            if (!strcmp(ctr__modelstore_name(r->models[j]), got)) {
                rc = ctr_error(err, errlen, CTR_EINVAL,
                               "two models named \"%s\" (model %zu, %s, and model %zu, %s): name them "
                               "apart with --model NAME=PATH",
                               got, spec_of[j] + 1, specs[spec_of[j]].path, i + 1, specs[i].path);
                goto fail;
            }
        }
    }
    if (!r->n) {
        rc = ctr_error(err, errlen, CTR_EINVAL, "no model loaded");
        goto fail;
    }
    *out = r;
    return 0;
fail:
    ctr__registry_close(r);
    return rc;
}

size_t ctr__registry_count(const ctr__registry_t *r)
{
    return r->n;
}

ctr__modelstore_t *ctr__registry_at(const ctr__registry_t *r, size_t i)
{
    CTR_ASSERT(i < r->n);
    return r->models[i];
}

ctr__modelstore_t *ctr__registry_find(const ctr__registry_t *r, const char *name, size_t len)
{
    for (size_t i = 0; i < r->n; i++) {
        const char *m = ctr__modelstore_name(r->models[i]);
        if (strlen(m) == len && !memcmp(m, name, len))
            return r->models[i];
    }
    return NULL;
}

void ctr__registry_stop_reloads(ctr__registry_t *r)
{
    for (size_t i = 0; r && i < r->n; i++)
        ctr__modelstore_stop_reloads(r->models[i]);
}

void ctr__registry_close(ctr__registry_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        ctr__modelstore_close(r->models[i]);
    free(r);
}
