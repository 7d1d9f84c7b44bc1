/* routes.c - the route table and its matcher (see routes.h).
 *
 * A pattern is literal text with named segments: "{name}" matches 1 to
 * CTR__ROUTE_PARAM_MAX bytes up to the next '/' or the end. A path matches
 * a pattern only as a whole (no prefixes, no trailing '/' tolerance). The
 * first row matching path and method wins; rows whose pattern matches but
 * whose method does not make the 405's Allow header. */
#include "routes.h"

#include <stdio.h>
#include <string.h>

#include "ctr/common.h"

#define BODY CTR__ROUTE_BODY
#define JSON CTR__ROUTE_JSON
#define WORK CTR__ROUTE_WORK
#define V2 CTR__ROUTE_V2
#define MODEL "/v2/models/{name}"
#define VERSION MODEL "/versions/{version}"

static const ctr__route_t routes[] = {
    /* method, pattern, metrics endpoint, flags, on_req, on_resume, on_free */
    {"POST", "/v1/score", CTR__EP_SCORE, BODY | JSON | WORK,
     ctr__score_v1, ctr__score_resume, ctr__score_free},
    {"GET", "/healthz", CTR__EP_HEALTH, 0, ctr__info_live, NULL, NULL},
    {"GET", "/readyz", CTR__EP_READY, 0, ctr__info_ready, NULL, NULL},
    {"GET", "/v1/models", CTR__EP_MODELS, 0, ctr__info_models, NULL, NULL},
    {"GET", "/metrics", CTR__EP_METRICS, 0, ctr__info_metrics, NULL, NULL},
    {"POST", "/v1/admin/reload", CTR__EP_RELOAD, BODY | WORK,
     ctr__admin_reload, ctr__admin_reload_resume, NULL},
    {"POST", "/v1/admin/promote", CTR__EP_PROMOTE, BODY | WORK,
     ctr__admin_promote, ctr__admin_reload_resume, NULL},
    {"GET", "/v2", CTR__EP_V2_META, V2, ctr__info_v2_server, NULL, NULL},
    {"GET", "/v2/", CTR__EP_V2_META, V2, ctr__info_v2_server, NULL, NULL},
    {"GET", "/v2/health/live", CTR__EP_HEALTH, V2, ctr__info_live, NULL, NULL},
    {"GET", "/v2/health/ready", CTR__EP_READY, V2, ctr__info_ready, NULL, NULL},
    {"GET", MODEL, CTR__EP_V2_META, V2, ctr__info_v2_model, NULL, NULL},
    {"GET", MODEL "/ready", CTR__EP_V2_META, V2, ctr__info_v2_model_ready, NULL, NULL},
    {"POST", MODEL "/infer", CTR__EP_INFER, BODY | JSON | WORK | V2,
     ctr__score_v2, ctr__score_resume, ctr__score_free},
    /* The same with a version: the model's digest or its short form
     * (ctr__model_name_matches); another answers 404 version_not_found. */
    {"GET", VERSION, CTR__EP_V2_META, V2, ctr__info_v2_model, NULL, NULL},
    {"GET", VERSION "/ready", CTR__EP_V2_META, V2, ctr__info_v2_model_ready, NULL, NULL},
    {"POST", VERSION "/infer", CTR__EP_INFER, BODY | JSON | WORK | V2,
     ctr__score_v2, ctr__score_resume, ctr__score_free},
};

/* 1 if path matches pat as a whole; its named segments go into ps. */
static int match_pattern(const char *pat, const char *path, ctr__route_params_t *ps)
{
    ps->n = 0;
    while (*pat) {
        if (*pat != '{') {
            if (*pat++ != *path++)
                return 0;
            continue;
        }
        const char *name = pat + 1, *close = strchr(name, '}');
        CTR_ASSERT(close && ps->n < CTR__ROUTE_MAX_PARAMS);
        size_t n = strcspn(path, "/");
        if (n == 0 || n > CTR__ROUTE_PARAM_MAX)
            return 0;
        ps->p[ps->n].name = name;
        ps->p[ps->n].name_len = (size_t)(close - name);
        memcpy(ps->p[ps->n].value, path, n);
        ps->p[ps->n].value[n] = '\0';
        ps->n++;
        path += n;
        pat = close + 1;
    }
    return *path == '\0';
}

static int method_matches(const ctr__route_t *row, const char *method)
{
    if (!strcmp(row->method, "GET"))
        return !strcmp(method, "GET") || !strcmp(method, "HEAD");
    return !strcmp(row->method, method);
}

/* Appends row's methods to allow, once per method. */
static void add_allow(char *allow, size_t cap, const char **given, size_t *n_given,
                      const ctr__route_t *row)
{
    for (size_t i = 0; i < *n_given; i++)
        if (!strcmp(given[i], row->method))
            return;
    if (*n_given < CTR_ARRAY_LEN(routes))
        given[(*n_given)++] = row->method;
    const char *m = !strcmp(row->method, "GET") ? "GET, HEAD" : row->method;
    size_t len = strlen(allow);
    snprintf(allow + len, cap - len, "%s%s", len ? ", " : "", m);
}

int ctr__route_match(const char *path, const char *method, ctr__route_match_t *m)
{
    const char *given[CTR_ARRAY_LEN(routes)];
    size_t n_given = 0;
    int seen = 0;
    m->route = NULL;
    m->ep = CTR__EP_OTHER;
    m->allow[0] = '\0';
    for (size_t i = 0; i < CTR_ARRAY_LEN(routes); i++) {
        if (!match_pattern(routes[i].pattern, path, &m->params))
            continue;
        if (method_matches(&routes[i], method)) {
            m->route = &routes[i];
            m->ep = routes[i].ep;
            m->allow[0] = '\0';
            return 0;
        }
        if (!seen++)
            m->ep = routes[i].ep;
        add_allow(m->allow, sizeof m->allow, given, &n_given, &routes[i]);
    }
    m->params.n = 0;
    return seen ? CTR_EMETHOD : CTR_ENOTFOUND;
}
