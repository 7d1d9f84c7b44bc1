/* decode_int.h - what the request decoders share: the decoder state, error
 * reporting, the arena, value conversion and the body's top-level object
 * (decode.c), used by the v1 reader (decode_v1.c) and the v2 reader
 * (decode_v2.c). Internal to those three files. The helpers on the hot
 * path (a key, the schema name of a feature, an example's slots) are
 * static inline here. */
#ifndef CTR_SERVER_DECODE_INT_H
#define CTR_SERVER_DECODE_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/features.h"
#include "ctr/model.h"
#include "decode.h"
#include "json_scan.h"

#define CTR__DEC_KEY_CAP 128 /* unescaped keys: feature names are <= 64 bytes */

typedef unsigned char uchar;

/* What stopped the fast pass. A syntax error leaves CTR__DEC_GOING: the
 * validator finds it again and reports it (decode.c). */
enum { CTR__DEC_GOING = 0, CTR__DEC_SEMANTIC, CTR__DEC_NOMEM };

typedef struct {
    ctr__json_scan_t sc;        /* the body, max_depth, the last syntax error */
    const ctr_model_t *m;
    const ctr_model_def_t *def;
    size_t nd, nc, nf, words;   /* words: uint64 per presence bitmap */
    size_t ns;                  /* row slots per example (ctr_model_slots) */
    size_t n_single, n_bags;    /* single-valued and bag categorical features */
    size_t max_examples;
    ctr_decode_error_t *e;
    ctr_request_t *req;
    int stop;                   /* CTR__DEC_* */
    int code;                   /* the CTR_E* code of a semantic error */
    size_t guess;               /* schema index the next key is tried as */
    int v2;
    /* v2 binary tensor data (ctr__decode_v2_binary): the bytes after the
     * JSON header, which sc covers alone. binary = 0: a plain JSON body. */
    int binary;
    const uchar *bin;
    size_t bin_len;
    size_t cat_extra;           /* arena bytes for categorical values beyond the JSON's */
    char wbuf[48];              /* ctr__dec_where(): message prefix */

    size_t cap;                 /* examples the arena holds */
    size_t cat_used;            /* bytes of req->cat_bytes in use */
    uint32_t *slot_of;          /* [nc]: feature j's first slot */
    uint32_t *single;           /* [n_single]: v2 "sparse" column -> feature */
    uint8_t *bag_done;          /* [nc]: v2, the bag's input was decoded */
    uint64_t *pres;             /* v1: [cap][words] keys seen per example */
    /* v1 context, merged into every example at the end. */
    double *ctx_raw;
    float *ctx_enc;
    uint32_t *ctx_row, *ctx_off;    /* [ns] */
    uint8_t *ctx_len;
    uint64_t *ctx_pres;
} ctr__dec_t;

/* A syntax error the fast pass met: the validator reports it. */
#define SYN(d, p, why) ctr__json_fail(&(d)->sc, (p), CTR__JSON_MALFORMED, (why))

/* After an object key: the ':' and the first byte of the member's value,
 * or NULL after a syntax error. Every object reader of the decoders. */
static inline const uchar *ctr__dec_colon(ctr__dec_t *d, const uchar *p)
{
    const uchar *end = d->sc.end;
    p = ctr__json_ws(p, end);
    if (p >= end || *p != ':')
        return SYN(d, p, "expected ':' after an object key");
    p = ctr__json_ws(p + 1, end);
    if (p >= end)
        return SYN(d, p, "unexpected end of body, expected a value");
    return p;
}

/* ---- error reporting (decode.c) ----------------------------------------- */

/* Records the first semantic error: code (a CTR_E* code) and name (the
 * error body's "code", e.g. "wrong_type"); the fast pass stops at it.
 * Returns NULL so readers can `return ctr__dec_sem(...)`. feature may be
 * NULL. */
const uchar *ctr__dec_sem(ctr__dec_t *d, int code, const char *name, long example,
                          const char *feature, size_t flen, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/* Message prefix naming where a value sits ("examples[3]: ", "context: ",
 * v2 "example 3: "), in d->wbuf. */
const char *ctr__dec_where(ctr__dec_t *d, long ex);

/* The name of feature f (schema order: dense, then categorical). */
static inline const char *ctr__dec_feat_name(const ctr__dec_t *d, size_t f)
{
    return f < d->nd ? d->def->dense[f].name : d->def->cat[f - d->nd].name;
}

/* ---- keys --------------------------------------------------------------- */

/* A key at p (the opening quote): in place when it has no escape and is
 * plain ASCII (the common case), else unescaped into buf (CTR__DEC_KEY_CAP
 * bytes). *klen > CTR__DEC_KEY_CAP means too long to be any name. */
static inline const uchar *ctr__dec_key(ctr__dec_t *d, const uchar *p, char *buf,
                                        const char **key, size_t *klen)
{
    const uchar *end = d->sc.end, *q = ctr__json_plain_run(p + 1, end);
    if (q < end && *q == '"') {
        *key = (const char *)(p + 1);
        *klen = (size_t)(q - p - 1);
        return q + 1;
    }
    *key = buf;
    return ctr__json_scan_string(&d->sc, p + 1, buf, CTR__DEC_KEY_CAP, klen);
}

static inline int ctr__dec_key_is(const char *k, size_t klen, const char *word)
{
    size_t n = strlen(word);
    return klen == n && !memcmp(k, word, n);
}

/* ---- arena and values (decode.c) ---------------------------------------- */

/* One allocation for cap examples; v1 adds the presence bitmaps and the
 * context row. Fills slot_of and single; v2 also sets every bag of the cap
 * examples empty (a bag input not sent is an empty bag). 0, or -1 with
 * d->stop = CTR__DEC_NOMEM. */
int ctr__dec_arena_alloc(ctr__dec_t *d, size_t cap, int v1);

/* Where one example's (or the v1 context's) values go: dense by feature
 * index, categorical by slot (row, off, len are [ns]). */
typedef struct {
    double *raw;
    float *enc;
    uint32_t *row, *off;
    uint8_t *len;
} ctr__dec_slots_t;

static inline ctr__dec_slots_t ctr__dec_example_slots(ctr__dec_t *d, size_t i)
{
    ctr_request_t *r = d->req;
    return (ctr__dec_slots_t){r->dense_raw + i * d->nd, r->dense + i * d->nd,
                              r->rows + i * d->ns, r->cat_off + i * d->ns, r->cat_len + i * d->ns};
}

/* Feature j has no value: its slots from slot_of[j] hold row 0 (a
 * single-valued feature) or are all empty (a bag), raw "missing". */
static inline void ctr__dec_cat_absent(const ctr__dec_t *d, const ctr__dec_slots_t *s, size_t j)
{
    const ctr_cat_def_t *c = &d->def->cat[j];
    size_t k = d->slot_of[j], w = ctr_features_width(c);
    uint32_t row = c->bag_max ? CTR_EMPTY_SLOT : CTR_MISSING_ROW;
    for (size_t t = 0; t < w; t++) {
        s->row[k + t] = row;
        s->off[k + t] = 0;
        s->len[k + t] = CTR_CAT_MISSING_LEN;
    }
}

/* The value readers: p is the value's first byte; they return the byte
 * after it, or NULL with the error recorded. ex names the example in
 * errors (-1: the v1 context). A categorical value of feature j goes to
 * slot k of s (slot_of[j] for a single value, slot_of[j] + m for the m-th
 * value of a bag), mapped by the feature's mapping (features.h); a value
 * the mapping refuses (`mod`: not a non-negative integer or 1..16 hex
 * digits) is the error invalid_value. */

/* Dense feature f: a number or null. */
const uchar *ctr__dec_dense_value(ctr__dec_t *d, const uchar *p, size_t f,
                                  const ctr__dec_slots_t *s, long ex);
/* A string (opening quote at p), appended to cat_bytes. */
const uchar *ctr__dec_cat_string(ctr__dec_t *d, const uchar *p, size_t j, size_t k,
                                 const ctr__dec_slots_t *s, long ex);
/* The same for a v2 BYTES element, where "" is the missing value: with
 * present NULL ("sparse") the feature is then absent; else (a bag) ""
 * is padding: nothing is written and *present is 0 (1 for a value). */
const uchar *ctr__dec_cat_string_v2(ctr__dec_t *d, const uchar *p, size_t j, size_t k,
                                    const ctr__dec_slots_t *s, long ex, int *present);
/* Bytes already checked (binary tensor data): len <= CTR_MAX_CAT_BYTES,
 * appended to cat_bytes. 0, or -1 with the error recorded. */
int ctr__dec_cat_put(ctr__dec_t *d, size_t j, size_t k, const ctr__dec_slots_t *s,
                     const void *src, size_t len, long ex);
/* An integer token, stored as its raw text (ctr_features_int_raw).
 * present not NULL: a v2 bag, where -1 is padding: then nothing is
 * written and *present is 0; else it is 1. */
const uchar *ctr__dec_cat_int(ctr__dec_t *d, const uchar *p, size_t j, size_t k,
                              const ctr__dec_slots_t *s, long ex, int *present);
/* An integer already read (binary tensor data). 0, or -1. */
int ctr__dec_cat_i64(ctr__dec_t *d, size_t j, size_t k, const ctr__dec_slots_t *s, int64_t v,
                     long ex);

/* ---- the body's top-level object (decode.c) ----------------------------- */

/* request_id (v1) / id (v2): a string of at most CTR_REQUEST_ID_MAX bytes
 * without control characters, or null. key names it in errors. */
const uchar *ctr__dec_request_id(ctr__dec_t *d, const uchar *p, const char *key);

/* The body must be a JSON object: the position after its '{' and the
 * whitespace after it. */
const uchar *ctr__dec_body_open(ctr__dec_t *d, const uchar *p);

/* One member of the body's object: the key must be one of keys[]
 * (expected lists them for the error) and may appear once (*seen: a bit
 * per key). Returns the value's first byte with *which = the key's index. */
const uchar *ctr__dec_top_member(ctr__dec_t *d, const uchar *p, const char *const *keys,
                                 int nkeys, const char *expected, unsigned *seen, int *which);

/* After a member's value (at *pp): 1 when another member follows, 0 when
 * the object closed, -1 on a syntax error. Moves *pp past the ',' and its
 * whitespace, or past the '}'. */
int ctr__dec_top_next(ctr__dec_t *d, const uchar **pp);

/* Nothing but whitespace may follow the body's object: 0 or -1. */
int ctr__dec_body_end(ctr__dec_t *d, const uchar *p);

/* ---- the two readers ---------------------------------------------------- */

/* One pass over the body (decode_v1.c, decode_v2.c): 0, or -1 with the
 * first error recorded. v1 expects its arena allocated; v2 allocates it
 * once it knows the batch size. */
int ctr__dec_v1_parse(ctr__dec_t *d);
int ctr__dec_v2_parse(ctr__dec_t *d);

#endif
