/* bodies.h - every request ctrload sends, prepared before the clock starts.
 *
 * A message set holds complete HTTP requests (request line, headers,
 * body). Bodies come from a data file (Criteo TSV or CSV, read through
 * include/ctr/data.h), from the synthetic generator, or from a replay log
 * (replay.h); ctr__msgset_frame then puts the HTTP head in front of each.
 * A run cycles through the set: request number s uses message s % n.
 *
 * Generated bodies carry a request id slot of CTR__ID_LEN bytes at id_off,
 * which the event loop fills with a per-request id at send time (written
 * with writev from a small per-connection buffer, so the shared message
 * is never modified). Replayed bodies are sent byte for byte as logged
 * and have no slot.
 *
 * Body shapes (features named as the data names them; missing values are
 * left out in v1 and null in v2):
 *   v1  {"model":"NAME","request_id":"<id>","context":{...},"examples":[{"I1":3,"C1":"68fd1e64",...},...]}
 *       ("model" only with model_name, first so that ctrd picks the model
 *        without scanning the body; "context" only with context_split:
 *        features equal in every example of the request move there, as
 *        for one user and many ads)
 *   v2  {"id":"<id>","inputs":[
 *         {"name":"dense","datatype":"FP32","shape":[B,13],"data":[...]},
 *         {"name":"sparse","datatype":"BYTES","shape":[B,26],"data":[...]}]}
 *       (row-major; dense and categorical columns in the data's order,
 *        which must be the model's) */
#ifndef CTR_LOADTEST_BODIES_H
#define CTR_LOADTEST_BODIES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ctr/data.h"

#define CTR__ID_LEN 16
#define CTR__NO_ID ((size_t)-1)
#define CTR__NO_TIME UINT64_MAX

typedef struct {
    char *buf;            /* owned */
    size_t len;
    size_t id_off;        /* CTR__NO_ID: no id slot */
    uint32_t n_examples;
    uint64_t t_ns;        /* replay: logged time; CTR__NO_TIME if none */
} ctr__msg_t;

typedef struct {
    ctr__msg_t *v;
    size_t n, cap;
    uint64_t bytes;       /* sum of len */
    uint64_t examples;    /* sum of n_examples */
    int framed;
} ctr__msgset_t;

typedef enum { CTR__PROTO_V1 = 1, CTR__PROTO_V2 = 2 } ctr__proto_t;

/* How synthetic categorical values are drawn (--synthetic-cats).
 *   zipf     from per-feature vocabularies of 10 to ~300k values with a
 *            Zipf-like law: traffic touches a small hot set of table rows
 *            (the default, and what real traffic looks like)
 *   uniform  8 uniformly random hex digits: every table row is equally
 *            likely (the worst case for tables larger than RAM)
 * Missing rates are the same in both. */
typedef enum { CTR__CATS_ZIPF = 0, CTR__CATS_UNIFORM = 1 } ctr__cats_t;

typedef struct {
    ctr__proto_t protocol;
    const char *model_name;       /* v1: "model" of every body (a served model's
                                   * name); NULL: none, the server's default */
    size_t examples;              /* examples per request, >= 1 */
    int context_split;            /* v1 only */
    uint64_t seed;                /* synthetic values */
    size_t synthetic;             /* > 0: this many synthetic requests */
    ctr__cats_t synthetic_cats;   /* synthetic categorical values (0 = zipf) */
    const char *data_path;        /* else: rows from this file */
    ctr_data_format_t format;
    const char *label;            /* csv: label column (may be absent); NULL = "label" */
    const char *dense_cols;       /* csv: comma-separated column lists */
    const char *cat_cols;
    char delimiter;               /* csv; 0 = ',' */
    uint64_t max_rows;            /* read at most this many rows; 0 = 100000 */
    int skip_bad;                 /* count bad rows and go on */
    uint64_t max_bytes;           /* cap on all bodies together; 0 = 256 MiB */
} ctr__bodies_opts_t;

/* Builds the bodies into a new set, *out (the caller's: ctr__msgset_free).
 * Bad rows are reported on log (first few) when skipped. Returns 0, or a
 * CTR_E* code with a sentence in err ("FILE:LINE: ..." for a bad row) and
 * *out = NULL. */
int ctr__bodies_build(const ctr__bodies_opts_t *o, FILE *log, ctr__msgset_t **out,
                      char *err, size_t errlen);

/* Appends a message; takes ownership of buf (freed on failure too). */
int ctr__msgset_add(ctr__msgset_t *s, char *buf, size_t len, size_t id_off,
                    uint32_t n_examples, uint64_t t_ns);
/* Puts "POST path HTTP/1.1" and headers in front of every body. */
int ctr__msgset_frame(ctr__msgset_t *s, const char *host_header, const char *path,
                      char *err, size_t errlen);
/* Offset of the body in a framed message. */
size_t ctr__msg_body_off(const ctr__msg_t *m);
/* Frees the messages and the set; NULL is fine. */
void ctr__msgset_free(ctr__msgset_t *s);

/* Writes n as CTR__ID_LEN lowercase hex digits into out (no NUL). */
void ctr__format_id(char out[CTR__ID_LEN], uint64_t n);

#endif
