/* routes.h - the route table and its matcher (routes.c), and the endpoint
 * handlers the table names (one file per family: handle_score.c,
 * handle_info.c, handle_admin.c).
 *
 * Adding an endpoint: one row in routes.c and its handler; a versioned
 * path ("/v2/models/{name}/versions/{version}/infer") is one more row
 * naming an existing handler. */
#ifndef CTR_SERVER_ROUTES_H
#define CTR_SERVER_ROUTES_H

#include "http_int.h"

typedef struct {
    const ctr__route_t *route;     /* the row for this path and method */
    ctr__endpoint_t ep;            /* of the first row matching the path */
    ctr__route_params_t params;    /* the route's named segments */
    char allow[64];                /* methods of the rows matching the path */
} ctr__route_match_t;

/* Looks path and method up in the table. Returns 0 (m->route set),
 * CTR_ENOTFOUND when no row's pattern matches the path (m->ep is
 * CTR__EP_OTHER), or CTR_EMETHOD when some do but none for this method
 * (m->allow lists theirs, "GET, HEAD" for a GET row, ", "-joined in table
 * order). */
int ctr__route_match(const char *path, const char *method, ctr__route_match_t *m);

/* handle_score.c: POST /v1/score, POST /v2/models/{name}[/versions/{version}]/infer */
enum MHD_Result ctr__score_v1(ctr__http_req_t *r);
enum MHD_Result ctr__score_v2(ctr__http_req_t *r);
enum MHD_Result ctr__score_resume(ctr__http_req_t *r);
void ctr__score_free(ctr__http_req_t *r);

/* handle_info.c: health, readiness, model and server metadata, metrics */
enum MHD_Result ctr__info_live(ctr__http_req_t *r);
enum MHD_Result ctr__info_ready(ctr__http_req_t *r);
enum MHD_Result ctr__info_models(ctr__http_req_t *r);
enum MHD_Result ctr__info_v2_server(ctr__http_req_t *r);
enum MHD_Result ctr__info_v2_model(ctr__http_req_t *r);
enum MHD_Result ctr__info_v2_model_ready(ctr__http_req_t *r);
enum MHD_Result ctr__info_metrics(ctr__http_req_t *r);
/* The model named name (len bytes; NULL: the default model) with one
 * reference to its current generation, r->model set to its index. When
 * version is not NULL nor "" it must be a version of that generation (its
 * digest, or the digest's first CTR__VERSION_SHORT_HEX hex digits). NULL
 * after answering 404 model_not_found (no such model; the message lists
 * the served ones) or version_not_found, in r's error form, *answered
 * holding the answer. */
ctr__gen_t *ctr__model_lookup(ctr__http_req_t *r, const char *name, size_t len,
                              const char *version, enum MHD_Result *answered);
/* The same for the {name} and {version} of a /v2/models/... path. */
ctr__gen_t *ctr__model_of_path(ctr__http_req_t *r, enum MHD_Result *answered);

/* handle_admin.c: POST /v1/admin/reload, POST /v1/admin/promote (answered
 * on resume by ctr__admin_reload_resume too) */
enum MHD_Result ctr__admin_reload(ctr__http_req_t *r);
enum MHD_Result ctr__admin_promote(ctr__http_req_t *r);
enum MHD_Result ctr__admin_reload_resume(ctr__http_req_t *r);

#endif
