/* model_parse_int.h - the .ctrm header parser's state and JSON helpers
 * (model_hjson.c), shared by model_header.c (top level, schema, tensors,
 * tensor references) and model_header_graph.c (the version-2 layer graph:
 * bottom MLP, interaction, MLP layer lists).
 *
 * Messages name the place as a path into the header, e.g.
 * "schema.categorical[3].buckets", built by the caller in `where`; every
 * message starts with "header: ". */
#ifndef CTR_MODEL_PARSE_INT_H
#define CTR_MODEL_PARSE_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model_int.h"

/* A tensor named by the header (a table, weight, bias, ...): resolved to
 * a tensor and shape-checked after the graph is checked and the tensor
 * list is parsed (so that a graph that does not chain is reported as such,
 * not as a tensor of the wrong shape). */
typedef struct {
    json_t *name;        /* the JSON string naming the tensor (root owns it) */
    char where[96];      /* the referring object's path */
    const char *key;     /* its key ("weight"; a static string) */
    char what[112];      /* what the shape must match, for messages */
    int rank;
    uint64_t d0, d1;     /* expected shape (d1 unused for rank 1) */
    bool is_table;
    ctr_cat_def_t *cat;  /* the owning feature of a table (dtype, qrows) */
    const float **out;   /* where the pointer into the mapping goes */
    size_t tensor;       /* index in m->tensors, once resolved */
} ctr__tref_t;

typedef struct {
    struct ctr_model *m;
    char *err;
    size_t errlen;
    uint32_t version;
    ctr__tref_t *refs;
    size_t n_refs, refs_cap;
} ctr__parse_t;

/* Copies s into the model's string arena (sized for the whole header). */
const char *ctr__hp_strdup(struct ctr_model *m, const char *s, size_t len);
/* A short rendering of a JSON value for "got ..." in messages. */
const char *ctr__hp_show(const json_t *v, char *out, size_t outlen);
/* "header: <where>.<key>: <message>" into p->err; returns code. */
int ctr__hp_bad(ctr__parse_t *p, int code, const char *where, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int ctr__hp_nomem(ctr__parse_t *p);
/* Refuses any key of obj not in the NULL-terminated list allowed. */
int ctr__hp_keys(ctr__parse_t *p, json_t *obj, const char *where, const char *const *allowed);
int ctr__hp_key(ctr__parse_t *p, json_t *obj, const char *where, const char *key, json_t **out);
int ctr__hp_object(ctr__parse_t *p, json_t *obj, const char *where, const char *key, json_t **out);
int ctr__hp_array(ctr__parse_t *p, json_t *obj, const char *where, const char *key, json_t **out);
int ctr__hp_string(ctr__parse_t *p, json_t *obj, const char *where, const char *key, const char **s,
                   size_t *len);
int ctr__hp_uint(ctr__parse_t *p, json_t *obj, const char *where, const char *key, uint64_t min, uint64_t max,
                 uint64_t *out);
int ctr__hp_finite(ctr__parse_t *p, json_t *obj, const char *where, const char *key, double *out);
/* A finite number > 0 that stays finite and > 0 as a float. */
int ctr__hp_positive_float(ctr__parse_t *p, json_t *obj, const char *where, const char *key, float *out);
int ctr__hp_bool(ctr__parse_t *p, json_t *obj, const char *where, const char *key, int *out);
/* obj[key], a string, as one of names[0..n): its index in *out; an unknown
 * value is CTR_EUNSUPPORTED listing the known ones. */
int ctr__hp_enum(ctr__parse_t *p, json_t *obj, const char *where, const char *key, const char *const *names,
                 size_t n, int *out);
/* A feature or tensor name under "name": valid, copied into the arena. */
int ctr__hp_name(ctr__parse_t *p, json_t *obj, const char *where, size_t max, const char **out);
/* Records the tensor named by obj[key] (a string) with its expected shape
 * and sets *out to a non-NULL placeholder until it is resolved; what NULL:
 * messages say "<where>.<key>". */
int ctr__hp_ref(ctr__parse_t *p, json_t *obj, const char *where, const char *key, const char *what, int rank,
                uint64_t d0, uint64_t d1, bool is_table, const float **out);

/* ---- the version-2 graph (model_header_graph.c) ----------------------- */

/* A JSON array of layers {"in","out","weight","bias"} at path where
 * ("bottom.layers"): its entries are "<where>[i]". Allocates *out (owned
 * by the model) and records the tensor references. Checks each layer's
 * own fields only; the chain is ctr__model_check's. */
int ctr__hp_layers(ctr__parse_t *p, json_t *arr, const char *where, ctr_layer_def_t **out, size_t *n);
/* The top-level "bottom" and "interaction" of a version-2 header, per
 * m->def.arch (already parsed, as is the schema). */
int ctr__hp_graph(ctr__parse_t *p, json_t *root);

#endif
