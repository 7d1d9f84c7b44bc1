/* model_int.h - internals of the .ctrm model file, shared by its writer
 * (model_write.c), its reader (model_read.c, model_header.c) and the name
 * rules (model_names.c). The byte layout is the comment block at the top
 * of model_read.c; docs/MODEL_FORMAT.md is the long form. */
#ifndef CTR_MODEL_INT_H
#define CTR_MODEL_INT_H

#include <assert.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ctr/model.h"
#include "ctr/sha256.h"

/* ---- format constants ------------------------------------------------- */

#define MAGIC "CTRMODEL"
#define FORMAT_VERSION 1u          /* a def that needs nothing newer (model.h) */
#define FORMAT_VERSION_MAX 2u      /* the newest this build reads and writes */
#define PREAMBLE_BYTES 32u
#define HEADER_MAX (16u << 20)
#define ALIGN 64u
#define NAME_MAX_BYTES 64          /* feature names */
#define MODEL_NAME_MAX_BYTES 128
#define TENSOR_NAME_MAX_BYTES 128
#define SHA_HEX CTR_SHA256_HEX_LEN
/* The header's JSON text: the writer's bytes and the reader's provenance
 * copy are both dumped this way. */
#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(17))

typedef struct __attribute__((packed)) {
    char magic[8];
    uint32_t version;
    uint32_t flags;
    uint64_t header_len;
    uint64_t data_offset;
} preamble_t;
static_assert(sizeof(preamble_t) == PREAMBLE_BYTES, "preamble is 32 bytes on disk");
static_assert(sizeof(off_t) == 8, "models beyond 2 GiB need a 64-bit off_t");
static_assert(sizeof(float) == 4, "tensors are IEEE-754 binary32");

/* ---- arithmetic on untrusted sizes ------------------------------------ */

static inline bool ctr__add_u64(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_add_overflow(a, b, r); }
static inline bool ctr__mul_u64(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_mul_overflow(a, b, r); }

/* round_up(x, ALIGN) without overflow; false if it would wrap. */
static inline bool ctr__align_up(uint64_t x, uint64_t *r)
{
    uint64_t t;
    if (!ctr__add_u64(x, ALIGN - 1, &t))
        return false;
    *r = t & ~(uint64_t)(ALIGN - 1);
    return true;
}

/* Index of the first non-finite float in p[0..n), or n. */
static inline size_t ctr__first_nonfinite(const float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i]))
            return i;
    return n;
}

/* ---- names (model_names.c) -------------------------------------------- */

/* Writes s (untrusted, len bytes) into out as printable text for an error
 * message: non-printable bytes (and quotes, unless it is JSON text that
 * keeps its own escapes) become \xNN, long strings are cut. Returns out. */
const char *ctr__printable_ex(const char *s, size_t len, char *out, size_t outlen, bool json);
/* The same for a name or a value (json false). */
const char *ctr__printable(const char *s, size_t len, char *out, size_t outlen);

/* Feature and tensor names: 1..max bytes of printable ASCII without quotes
 * (' or ") or backslash, so they print as-is in messages, logs and JSON. */
bool ctr__name_valid(const char *s, size_t len, size_t max);
/* Model names: 1..MODEL_NAME_MAX_BYTES bytes without control bytes (the
 * caller checks UTF-8). */
bool ctr__model_name_valid(const char *s, size_t len);

/* Open-addressing name -> index table (linear probing, power-of-two size,
 * at most half full). Used for feature lookup on the server's hot path and
 * for duplicate detection in both writer and reader. The names are
 * borrowed: they must outlive the table. */
typedef struct {
    const char *name;
    uint32_t len;
    uint32_t index1; /* index + 1; 0 = empty slot */
} ctr__name_slot_t;

typedef struct {
    ctr__name_slot_t *slots;
    size_t mask;
} ctr__name_index_t;

/* Sized for n inserts. 0 or CTR_ENOMEM. */
int ctr__name_index_init(ctr__name_index_t *ix, size_t n);
/* Safe on a zeroed or freed table. */
void ctr__name_index_free(ctr__name_index_t *ix);
/* The index stored for name, or -1 (also on a zeroed table). */
long ctr__name_index_find(const ctr__name_index_t *ix, const char *name, size_t len);
/* Returns false if name is already present (nothing inserted). The caller
 * sized the table for every insert, so there is always a free slot. */
bool ctr__name_index_add(ctr__name_index_t *ix, const char *name, size_t len, uint32_t index);

/* ---- the reader's state (model_read.c, model_header.c) ---------------- */

typedef struct {
    const char *name;
    int rank;
    uint64_t shape[2];
    uint64_t offset, nbytes;
    unsigned char sha[CTR_SHA256_LEN];
    unsigned refs;
    bool is_table;
    ctr_table_dtype_t dtype;  /* f32 for every tensor but a quantized table */
    bool padded;   /* a weight served from a padded copy (model_pad.c): its
                    * mapped pages are dropped after each read (model_read.c) */
} ctr__rtensor_t;

struct ctr_model {
    char *path;
    const unsigned char *map;
    size_t map_len;
    uint64_t file_size;
    uint64_t data_offset;
    char *header;        /* NUL-terminated copy of the header JSON */
    size_t header_len;
    char digest[8 + SHA_HEX];
    ctr_model_def_t def;
    ctr_dense_def_t *dense;
    ctr_cat_def_t *cat;
    ctr__rtensor_t *tensors;
    size_t n_tensors;
    char *strings; /* names; total <= header_len + 1 (each is a JSON token) */
    size_t strings_used, strings_cap;
    char *provenance;
    int table_advice;  /* MADV_RANDOM or MADV_NORMAL for the large tables
                        * (model_read.c, choose_table_advice) */
    ctr__name_index_t features;
    void **owned;   /* the version-2 graph's arrays (ctr__model_calloc) and
                     * the padded weight copies (model_pad.c) */
    size_t n_owned, owned_cap;
};

/* calloc(n, size) (at least one byte) freed by ctr_model_close; NULL when
 * out of memory. */
void *ctr__model_calloc(struct ctr_model *m, size_t n, size_t size);
/* Adds p (a malloc'd block) to what ctr_model_close frees: 0 or CTR_ENOMEM. */
int ctr__model_own(struct ctr_model *m, void *p);

/* Parses and checks m->header (m->header_len bytes; the preamble said
 * `version`) against the mapping: fills m->def, its arrays, the tensor
 * list, m->features and m->provenance, every pointer into m->map. Needs
 * m->map, m->file_size, m->data_offset and the m->strings arena (header_len
 * + 1 bytes). 0, or CTR_EFORMAT / CTR_EUNSUPPORTED / CTR_ENOMEM with err
 * naming the place in the header; m is then freed by ctr_model_close. */
int ctr__model_parse_header(struct ctr_model *m, uint32_t version, char *err, size_t errlen);

/* ---- the graph rules (model_check.c) ---------------------------------- */

/* Checks what a model description must satisfy beyond each field's own
 * type and range: enum values in range, the fields each architecture uses
 * and no others, table sharing, bags, every shape chained through the
 * graph (bottom, interaction, top MLP), the pointers each layer needs.
 * The reader runs it on the def it parsed, before reading the tensor list
 * (a tensor the header names has a non-NULL placeholder pointer by then),
 * the writer before writing, so
 * both refuse the same models in the same words. Table pointers are not
 * looked at (the writer may stream them). Messages name the field by its
 * path in the header ("interaction.layers[1].n_in"), after prefix.
 * Returns 0, or code with err filled. */
int ctr__model_check(const ctr_model_def_t *def, int code, const char *prefix, char *err, size_t errlen);

#endif
