/* model.c - the .ctrm model file: streaming writer and mmapped reader.
 *
 * Byte layout (docs/MODEL_FORMAT.md is the long form; all integers are
 * little-endian, offsets in bytes):
 *
 *   0    preamble, 32 bytes
 *          0  magic[8]      "CTRMODEL"
 *          8  u32 version   1
 *         12  u32 flags     0 (reserved; a reader refuses any other value)
 *         16  u64 header_len   bytes of JSON, 1 .. 16 MiB
 *         24  u64 data_offset  round_up(32 + header_len, 64)
 *   32   header: header_len bytes of UTF-8 JSON (no BOM, no trailing NUL)
 *        zero bytes up to data_offset
 *   data_offset
 *        tensors, each at data_offset + offset (offset a multiple of 64),
 *        in the order of the header's "tensors" array, ascending and
 *        non-overlapping, zero bytes between them;
 *        file size == data_offset + data_bytes, where data_bytes is where
 *        the last tensor ends.
 *
 * Header JSON (this writer emits exactly this key order, compact, reals
 * with 17 significant digits, so one def always gives the same bytes):
 *
 *   {"format":"ctrm","version":1,"name":STR,
 *    "schema":{"dense":[{"name":"I1","transform":"log1p"|"identity"},
 *                       {"name":"I2","transform":"standardize","mean":D,"std":D}],
 *              "categorical":[{"name":"C1","table":"emb.C1","buckets":U32,
 *                              "dim":U32,"seed":"U64 in decimal","hash":"xxh3_64"}]},
 *    "mlp":{"activation":"smelu"|"relu","beta":D,
 *           "layers":[{"in":U32,"out":U32,"weight":"mlp.0.weight","bias":"mlp.0.bias"}]},
 *    "tensors":[{"name":"mlp.0.weight","dtype":"f32","shape":[in,out],
 *                "offset":U64,"nbytes":U64,"sha256":"64 lowercase hex"}],
 *    "data_bytes":U64,
 *    "provenance":{...}}
 *
 * The seed is a decimal string because it is a full 64-bit value (JSON
 * parsers such as jansson stop at 2^63, JavaScript at 2^53); a reader also
 * accepts a plain non-negative integer. Tables are [buckets + 1, dim]
 * (row 0 is the missing value's row), weights [in, out] row-major, biases
 * [out]. Writer order: every layer's weight and bias, then the tables (the
 * small, always-touched MLP first, the big randomly-read tables after).
 * Unknown keys are refused: a key that changes meaning comes with a new
 * version.
 *
 * Model digest: "sha256:" + hex SHA-256 of the header bytes. The header
 * holds every tensor's SHA-256, so the digest covers all the data and costs
 * one hash of a few KB at load; ctr_model_verify re-hashes the data.
 *
 * Writing: the header length does not depend on the checksums (fixed-width
 * hex), so the writer lays out the tensors from a header built with zero
 * checksums, streams each tensor (in chunks of CHUNK_BYTES, through the
 * fill callback for tables given as NULL) hashing as it goes, then writes
 * the final header in front: memory stays bounded for any model size.
 *
 * Reading: every preamble field, every header key (type and range), every
 * tensor extent (with overflow-checked arithmetic) and the layer chain are
 * checked before any pointer is handed out; a hostile file gets an error
 * message, never an out-of-bounds read. The mapping is read-only; a file
 * must not be modified in place while mapped (writers rename a new file
 * over it instead, which leaves existing mappings intact). */
#include "ctr/model.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "ctr/common.h"

#define MAGIC "CTRMODEL"
#define FORMAT_VERSION 1u
#define PREAMBLE_BYTES 32u
#define HEADER_MAX (16u << 20)
#define ALIGN 64u
#define CHUNK_BYTES ((size_t)64 << 20)
#define NAME_MAX_BYTES 64          /* feature names */
#define MODEL_NAME_MAX_BYTES 128
#define TENSOR_NAME_MAX_BYTES 128
#define SHA_HEX 64
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

/* ---- shared helpers ---------------------------------------------------- */

static bool add_u64(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_add_overflow(a, b, r); }
static bool mul_u64(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_mul_overflow(a, b, r); }

/* round_up(x, ALIGN) without overflow; false if it would wrap. */
static bool align_up(uint64_t x, uint64_t *r)
{
    uint64_t t;
    if (!add_u64(x, ALIGN - 1, &t))
        return false;
    *r = t & ~(uint64_t)(ALIGN - 1);
    return true;
}

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Lowercase hex only: the header is canonical, "AB" and "ab" are not both
 * valid spellings of one file. */
static bool hex_decode(const char *s, size_t n, unsigned char *out)
{
    for (size_t i = 0; i < n; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0)
                return false;
            v = v * 16 + d;
        }
        out[i] = (unsigned char)v;
    }
    return true;
}

/* Writes s (untrusted, len bytes) into out as printable text for an error
 * message: non-printable bytes (and quotes, unless it is JSON text that
 * keeps its own escapes) become \xNN, long strings are cut. */
static const char *printable_ex(const char *s, size_t len, char *out, size_t outlen, bool json)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 8 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= 48) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 0x20 && c < 0x7f && (json || (c != '"' && c != '\\')))
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
    }
    out[o] = '\0';
    return out;
}

static const char *printable(const char *s, size_t len, char *out, size_t outlen)
{
    return printable_ex(s, len, out, outlen, false);
}

static int sha256(const void *data, size_t n, unsigned char out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(ctx, data, n) && EVP_DigestFinal_ex(ctx, out, NULL);
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : CTR_ENOMEM;
}

/* Feature and tensor names: printable ASCII without quotes or backslash, so
 * they print as-is in messages, logs and JSON. */
static bool valid_name(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\'' || c == '\\')
            return false;
    }
    return true;
}

/* Model names may be any UTF-8 (checked by jansson) but no control bytes. */
static bool valid_model_name(const char *s, size_t len)
{
    if (len == 0 || len > MODEL_NAME_MAX_BYTES)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* Open-addressing name -> index table (linear probing, power-of-two size,
 * at most half full). Used for feature lookup on the server's hot path and
 * for duplicate detection in both writer and reader. */
typedef struct {
    const char *name;
    uint32_t len;
    uint32_t index1; /* index + 1; 0 = empty slot */
} name_slot_t;

typedef struct {
    name_slot_t *slots;
    size_t mask;
} name_index_t;

static int name_index_init(name_index_t *ix, size_t n)
{
    size_t size = 8;
    while (size < 2 * n)
        size *= 2;
    ix->slots = calloc(size, sizeof(*ix->slots));
    ix->mask = size - 1;
    return ix->slots ? 0 : CTR_ENOMEM;
}

static void name_index_free(name_index_t *ix)
{
    free(ix->slots);
    ix->slots = NULL;
}

static long name_index_find(const name_index_t *ix, const char *name, size_t len)
{
    if (!ix->slots)
        return -1;
    for (size_t i = XXH3_64bits(name, len) & ix->mask;; i = (i + 1) & ix->mask) {
        const name_slot_t *s = &ix->slots[i];
        if (!s->index1)
            return -1;
        if (s->len == len && !memcmp(s->name, name, len))
            return (long)s->index1 - 1;
    }
}

/* Returns false if name is already present (nothing inserted). The caller
 * sized the table for every insert, so there is always a free slot. */
static bool name_index_add(name_index_t *ix, const char *name, size_t len, uint32_t index)
{
    for (size_t i = XXH3_64bits(name, len) & ix->mask;; i = (i + 1) & ix->mask) {
        name_slot_t *s = &ix->slots[i];
        if (!s->index1) {
            *s = (name_slot_t){name, (uint32_t)len, index + 1};
            return true;
        }
        if (s->len == len && !memcmp(s->name, name, len))
            return false;
    }
}

const char *ctr_transform_name(ctr_transform_t t)
{
    switch (t) {
    case CTR_TRANSFORM_IDENTITY: return "identity";
    case CTR_TRANSFORM_LOG1P: return "log1p";
    case CTR_TRANSFORM_STANDARDIZE: return "standardize";
    }
    return "unknown";
}

const char *ctr_activation_name(ctr_activation_t a)
{
    switch (a) {
    case CTR_ACT_NONE: return "none";
    case CTR_ACT_SMELU: return "smelu";
    case CTR_ACT_RELU: return "relu";
    }
    return "unknown";
}

size_t ctr_model_input_dim(const ctr_model_def_t *def)
{
    size_t n = def->n_dense;
    for (size_t j = 0; j < def->n_cat; j++)
        n += def->cat[j].dim;
    return n;
}

/* ---- writer ------------------------------------------------------------ */

typedef struct {
    char name[TENSOR_NAME_MAX_BYTES + 1];
    int rank;
    uint64_t shape[2];
    uint64_t offset, nbytes;
    const float *data; /* NULL: streamed through the fill callback */
    size_t cat_index;  /* for streamed tables */
    uint32_t dim;
    char sha[SHA_HEX + 1];
} wtensor_t;

static int validate_def(const ctr_model_def_t *def, ctr_table_fill_fn fill,
                        char *err, size_t errlen)
{
    int rc = 0;
    name_index_t ix = {0};
    if (!def->name || !valid_model_name(def->name, strlen(def->name)))
        return ctr_error(err, errlen, CTR_EINVAL,
                         "model name: expected 1..%d bytes of UTF-8 without control characters",
                         MODEL_NAME_MAX_BYTES);
    json_t *probe = json_string(def->name);
    if (!probe)
        return ctr_error(err, errlen, CTR_EINVAL, "model name: not valid UTF-8");
    json_decref(probe);
    if ((def->n_dense && !def->dense) || (def->n_cat && !def->cat))
        return ctr_error(err, errlen, CTR_EINVAL, "n_dense/n_cat > 0 with a NULL array");
    if (def->n_dense + def->n_cat == 0 || def->n_dense + def->n_cat > INT32_MAX)
        return ctr_error(err, errlen, CTR_EINVAL, "a model needs 1..2^31-1 features, got %zu",
                         def->n_dense + def->n_cat);
    if (!def->n_layers || !def->layers)
        return ctr_error(err, errlen, CTR_EINVAL, "a model needs at least one layer");
    if (def->activation != CTR_ACT_SMELU && def->activation != CTR_ACT_RELU)
        return ctr_error(err, errlen, CTR_EINVAL, "activation must be smelu or relu (got %d)",
                         (int)def->activation);
    if (!(def->beta > 0) || !isfinite(def->beta))
        return ctr_error(err, errlen, CTR_EINVAL, "beta must be finite and > 0 (got %g)",
                         (double)def->beta);
    if (name_index_init(&ix, def->n_dense + def->n_cat))
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    uint64_t in_dim = def->n_dense;
    for (size_t i = 0; i < def->n_dense + def->n_cat; i++) {
        bool is_dense = i < def->n_dense;
        size_t k = is_dense ? i : i - def->n_dense;
        const char *kind = is_dense ? "dense" : "categorical";
        const char *name = is_dense ? def->dense[k].name : def->cat[k].name;
        if (!name || !valid_name(name, strlen(name), NAME_MAX_BYTES)) {
            rc = ctr_error(err, errlen, CTR_EINVAL,
                           "%s[%zu].name: expected 1..%d bytes of printable ASCII without quotes or backslash",
                           kind, k, NAME_MAX_BYTES);
            goto out;
        }
        if (!name_index_add(&ix, name, strlen(name), (uint32_t)i)) {
            rc = ctr_error(err, errlen, CTR_EINVAL, "%s[%zu]: duplicate feature name \"%s\"", kind, k, name);
            goto out;
        }
        if (is_dense) {
            const ctr_dense_def_t *d = &def->dense[k];
            if (d->transform != CTR_TRANSFORM_IDENTITY && d->transform != CTR_TRANSFORM_LOG1P &&
                d->transform != CTR_TRANSFORM_STANDARDIZE) {
                rc = ctr_error(err, errlen, CTR_EINVAL, "dense \"%s\": unknown transform %d", name, (int)d->transform);
                goto out;
            }
            if (d->transform == CTR_TRANSFORM_STANDARDIZE &&
                (!isfinite(d->mean) || !isfinite(d->std) || !(d->std > 0))) {
                rc = ctr_error(err, errlen, CTR_EINVAL,
                               "dense \"%s\": standardize needs a finite mean and a finite std > 0 (got %g, %g)",
                               name, d->mean, d->std);
                goto out;
            }
        } else {
            const ctr_cat_def_t *c = &def->cat[k];
            if (!c->buckets || !c->dim) {
                rc = ctr_error(err, errlen, CTR_EINVAL, "categorical \"%s\": buckets and dim must be > 0", name);
                goto out;
            }
            if (!c->table && !fill) {
                rc = ctr_error(err, errlen, CTR_EINVAL,
                               "categorical \"%s\": table is NULL and no fill callback was given", name);
                goto out;
            }
            in_dim += c->dim;
        }
    }
    for (size_t l = 0; l < def->n_layers; l++) {
        const ctr_layer_def_t *L = &def->layers[l];
        uint64_t want = l ? def->layers[l - 1].out : in_dim;
        if (!L->in || !L->out || !L->weight || !L->bias) {
            rc = ctr_error(err, errlen, CTR_EINVAL, "layers[%zu]: in and out must be > 0, weight and bias non-NULL", l);
            goto out;
        }
        if (L->in != want) {
            rc = ctr_error(err, errlen, CTR_EINVAL, "layers[%zu].in is %" PRIu32 " but %s gives %" PRIu64, l,
                           L->in, l ? "the previous layer's out" : "the schema (n_dense + sum of dims)", want);
            goto out;
        }
    }
    if (def->layers[def->n_layers - 1].out != 1)
        rc = ctr_error(err, errlen, CTR_EINVAL, "the last layer must have out == 1 (got %" PRIu32 ")",
                       def->layers[def->n_layers - 1].out);
out:
    name_index_free(&ix);
    return rc;
}

/* Builds the header JSON text (malloc'd) for the given tensor layout. */
static int build_header(const ctr_model_def_t *def, const wtensor_t *t, size_t nt,
                        uint64_t data_bytes, json_t *provenance, char **out, size_t *len)
{
    json_t *root = NULL, *dense = NULL, *cat = NULL, *layers = NULL, *tensors = NULL;
    int rc = CTR_ENOMEM;
    *out = NULL;
    if (!(dense = json_array()) || !(cat = json_array()) || !(layers = json_array()) ||
        !(tensors = json_array()))
        goto fail;
    for (size_t i = 0; i < def->n_dense; i++) {
        const ctr_dense_def_t *d = &def->dense[i];
        json_t *o = d->transform == CTR_TRANSFORM_STANDARDIZE
                        ? json_pack("{s:s,s:s,s:f,s:f}", "name", d->name, "transform",
                                    ctr_transform_name(d->transform), "mean", d->mean, "std", d->std)
                        : json_pack("{s:s,s:s}", "name", d->name, "transform",
                                    ctr_transform_name(d->transform));
        if (json_array_append_new(dense, o))
            goto fail;
    }
    for (size_t j = 0; j < def->n_cat; j++) {
        const ctr_cat_def_t *c = &def->cat[j];
        char table[TENSOR_NAME_MAX_BYTES + 1], seed[24];
        snprintf(table, sizeof(table), "emb.%s", c->name);
        snprintf(seed, sizeof(seed), "%" PRIu64, c->seed);
        json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:s,s:s}", "name", c->name, "table", table,
                              "buckets", (json_int_t)c->buckets, "dim", (json_int_t)c->dim,
                              "seed", seed, "hash", "xxh3_64");
        if (json_array_append_new(cat, o))
            goto fail;
    }
    for (size_t l = 0; l < def->n_layers; l++) {
        char w[32], b[32];
        snprintf(w, sizeof(w), "mlp.%zu.weight", l);
        snprintf(b, sizeof(b), "mlp.%zu.bias", l);
        json_t *o = json_pack("{s:I,s:I,s:s,s:s}", "in", (json_int_t)def->layers[l].in,
                              "out", (json_int_t)def->layers[l].out, "weight", w, "bias", b);
        if (json_array_append_new(layers, o))
            goto fail;
    }
    for (size_t i = 0; i < nt; i++) {
        json_t *shape = t[i].rank == 2 ? json_pack("[I,I]", (json_int_t)t[i].shape[0], (json_int_t)t[i].shape[1])
                                       : json_pack("[I]", (json_int_t)t[i].shape[0]);
        json_t *o = json_pack("{s:s,s:s,s:o,s:I,s:I,s:s}", "name", t[i].name, "dtype", "f32",
                              "shape", shape, "offset", (json_int_t)t[i].offset,
                              "nbytes", (json_int_t)t[i].nbytes, "sha256", t[i].sha);
        if (json_array_append_new(tensors, o))
            goto fail;
    }
    root = json_pack("{s:s,s:i,s:s,s:{s:O,s:O},s:{s:s,s:f,s:O},s:O,s:I,s:O}",
                     "format", "ctrm", "version", (int)FORMAT_VERSION, "name", def->name,
                     "schema", "dense", dense, "categorical", cat,
                     "mlp", "activation", ctr_activation_name(def->activation),
                     "beta", (double)def->beta, "layers", layers,
                     "tensors", tensors, "data_bytes", (json_int_t)data_bytes,
                     "provenance", provenance);
    if (!root)
        goto fail;
    *out = json_dumps(root, DUMP_FLAGS);
    if (!*out)
        goto fail;
    *len = strlen(*out);
    rc = 0;
fail:
    json_decref(root);
    json_decref(dense);
    json_decref(cat);
    json_decref(layers);
    json_decref(tensors);
    return rc;
}

static int pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
    const char *p = buf;
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Index of the first non-finite float in p[0..n), or n. */
static size_t first_nonfinite(const float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i]))
            return i;
    return n;
}

/* Streams one tensor to fd at base + t->offset, hashing it; fills t->sha. */
static int write_tensor(int fd, uint64_t base, wtensor_t *t, ctr_table_fill_fn fill,
                        void *fill_ctx, float **buf, size_t *buf_cap, const char *tmp,
                        char *err, size_t errlen)
{
    unsigned char md[32];
    int rc;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory (SHA-256 context)");
        goto out;
    }
    /* Whole rows per chunk so the fill callback sees row ranges. */
    uint64_t row_floats = t->data ? 1 : t->dim;
    uint64_t total = t->nbytes / sizeof(float);
    uint64_t step = CHUNK_BYTES / sizeof(float) / row_floats;
    if (!step)
        step = 1;
    step *= row_floats;
    for (uint64_t done = 0; done < total; done += step) {
        uint64_t n = total - done < step ? total - done : step;
        const float *src;
        if (t->data) {
            src = t->data + done;
        } else {
            if (*buf_cap < n) {
                free(*buf);
                *buf = malloc(n * sizeof(float));
                *buf_cap = *buf ? n : 0;
                if (!*buf) {
                    rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory (%" PRIu64 "-byte fill buffer)",
                                   n * (uint64_t)sizeof(float));
                    goto out;
                }
            }
            rc = fill(fill_ctx, t->cat_index, done / row_floats, n / row_floats, *buf);
            if (rc) {
                rc = ctr_error(err, errlen, rc < 0 ? rc : CTR_EIO,
                               "tensor \"%s\": fill callback failed at row %" PRIu64 " (%s)", t->name,
                               done / row_floats, ctr_strerror(rc));
                goto out;
            }
            src = *buf;
        }
        size_t bad = first_nonfinite(src, n);
        if (bad < n) {
            rc = ctr_error(err, errlen, CTR_ERANGE, "tensor \"%s\": element %" PRIu64 " is %g (values must be finite)",
                           t->name, done + bad, (double)src[bad]);
            goto out;
        }
        if (!EVP_DigestUpdate(ctx, src, n * sizeof(float))) {
            rc = ctr_error(err, errlen, CTR_ENOMEM, "SHA-256 update failed");
            goto out;
        }
        if (pwrite_all(fd, src, n * sizeof(float), base + t->offset + done * sizeof(float))) {
            rc = ctr_error(err, errlen, CTR_EIO, "write %s: %s", tmp, strerror(errno));
            goto out;
        }
    }
    if (!EVP_DigestFinal_ex(ctx, md, NULL)) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "SHA-256 final failed");
        goto out;
    }
    hex_encode(md, 32, t->sha);
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* After rename, the directory entry itself must reach the disk. */
static void fsync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else if ((size_t)(slash - path) < sizeof(dir))
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    else
        return;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
}

int ctr_model_write(const char *path, const ctr_model_def_t *def,
                    ctr_table_fill_fn fill, void *fill_ctx,
                    char *err, size_t errlen)
{
    if (!path || !def)
        return ctr_error(err, errlen, CTR_EINVAL, "ctr_model_write: NULL path or def");
    int rc = validate_def(def, fill, err, errlen);
    if (rc)
        return rc;

    size_t nt = 2 * def->n_layers + def->n_cat;
    wtensor_t *t = calloc(nt, sizeof(*t));
    json_t *prov = NULL;
    char *header = NULL, *tmp = NULL;
    float *buf = NULL;
    size_t buf_cap = 0, header_len = 0;
    int fd = -1;
    bool created = false;
    if (!t || !(tmp = malloc(strlen(path) + 5))) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
        goto fail;
    }
    sprintf(tmp, "%s.tmp", path);

    if (def->provenance_json) {
        json_error_t je;
        prov = json_loads(def->provenance_json, JSON_REJECT_DUPLICATES, &je);
        if (!prov) {
            rc = ctr_error(err, errlen, CTR_EINVAL, "provenance_json: invalid JSON at line %d, column %d: %s",
                           je.line, je.column, je.text);
            goto fail;
        }
        if (!json_is_object(prov)) {
            rc = ctr_error(err, errlen, CTR_EINVAL, "provenance_json: expected a JSON object");
            goto fail;
        }
    } else if (!(prov = json_object())) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
        goto fail;
    }

    /* Layout: offsets depend only on the shapes. */
    uint64_t end = 0;
    for (size_t i = 0; i < nt; i++) {
        wtensor_t *w = &t[i];
        if (i < 2 * def->n_layers) {
            const ctr_layer_def_t *L = &def->layers[i / 2];
            if (i % 2 == 0) {
                snprintf(w->name, sizeof(w->name), "mlp.%zu.weight", i / 2);
                w->rank = 2, w->shape[0] = L->in, w->shape[1] = L->out, w->data = L->weight;
            } else {
                snprintf(w->name, sizeof(w->name), "mlp.%zu.bias", i / 2);
                w->rank = 1, w->shape[0] = L->out, w->data = L->bias;
            }
            w->dim = 1;
        } else {
            size_t j = i - 2 * def->n_layers;
            const ctr_cat_def_t *c = &def->cat[j];
            snprintf(w->name, sizeof(w->name), "emb.%s", c->name);
            w->rank = 2, w->shape[0] = (uint64_t)c->buckets + 1, w->shape[1] = c->dim;
            w->data = c->table, w->cat_index = j, w->dim = c->dim;
        }
        uint64_t elems;
        if (!mul_u64(w->shape[0], w->rank == 2 ? w->shape[1] : 1, &elems) ||
            !mul_u64(elems, sizeof(float), &w->nbytes) || !align_up(end, &w->offset) ||
            !add_u64(w->offset, w->nbytes, &end) || end > INT64_MAX) {
            rc = ctr_error(err, errlen, CTR_ERANGE, "tensor \"%s\": model too large", w->name);
            goto fail;
        }
        memset(w->sha, '0', SHA_HEX);
    }

    size_t final_len;
    if ((rc = build_header(def, t, nt, end, prov, &header, &header_len))) {
        rc = ctr_error(err, errlen, rc, "building the header JSON: out of memory");
        goto fail;
    }
    if (header_len > HEADER_MAX) {
        rc = ctr_error(err, errlen, CTR_ETOOBIG, "header JSON is %zu bytes, over the %u-byte limit",
                       header_len, HEADER_MAX);
        goto fail;
    }
    uint64_t data_offset, file_size;
    align_up(PREAMBLE_BYTES + (uint64_t)header_len, &data_offset);
    if (!add_u64(data_offset, end, &file_size) || file_size > INT64_MAX) {
        rc = ctr_error(err, errlen, CTR_ERANGE, "model too large");
        goto fail;
    }

    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = ctr_error(err, errlen, CTR_EIO, "open %s: %s", tmp, strerror(errno));
        goto fail;
    }
    created = true;
    /* Sets the exact size up front: padding is the file's implicit zeros. */
    if (ftruncate(fd, (off_t)file_size)) {
        rc = ctr_error(err, errlen, CTR_EIO, "ftruncate %s to %" PRIu64 " bytes: %s", tmp, file_size,
                       strerror(errno));
        goto fail;
    }
    for (size_t i = 0; i < nt; i++)
        if ((rc = write_tensor(fd, data_offset, &t[i], fill, fill_ctx, &buf, &buf_cap, tmp, err, errlen)))
            goto fail;

    free(header);
    header = NULL;
    if ((rc = build_header(def, t, nt, end, prov, &header, &final_len))) {
        rc = ctr_error(err, errlen, rc, "building the header JSON: out of memory");
        goto fail;
    }
    CTR_ASSERT(final_len == header_len); /* checksums are fixed-width hex */

    preamble_t pre;
    memcpy(pre.magic, MAGIC, 8);
    pre.version = FORMAT_VERSION;
    pre.flags = 0;
    pre.header_len = header_len;
    pre.data_offset = data_offset;
    if (pwrite_all(fd, &pre, sizeof(pre), 0) || pwrite_all(fd, header, header_len, PREAMBLE_BYTES)) {
        rc = ctr_error(err, errlen, CTR_EIO, "write %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (fsync(fd)) {
        rc = ctr_error(err, errlen, CTR_EIO, "fsync %s: %s", tmp, strerror(errno));
        goto fail;
    }
    int cr = close(fd);
    fd = -1;
    if (cr) {
        rc = ctr_error(err, errlen, CTR_EIO, "close %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path)) {
        rc = ctr_error(err, errlen, CTR_EIO, "rename %s to %s: %s", tmp, path, strerror(errno));
        goto fail;
    }
    fsync_parent_dir(path);
    rc = 0;
    goto done;
fail:
    if (fd >= 0)
        close(fd);
    if (created)
        unlink(tmp);
done:
    free(buf);
    free(header);
    free(tmp);
    free(t);
    json_decref(prov);
    return rc;
}

/* ---- reader ------------------------------------------------------------ */

typedef struct {
    const char *name;
    int rank;
    uint64_t shape[2];
    uint64_t offset, nbytes;
    unsigned char sha[32];
    unsigned refs;
    bool is_table;
} rtensor_t;

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
    ctr_layer_def_t *layers;
    rtensor_t *tensors;
    size_t n_tensors;
    char *strings; /* names; total <= header_len + 1 (each is a JSON token) */
    size_t strings_used, strings_cap;
    char *provenance;
    name_index_t features;
};

/* Parse state. Messages name the place as a path into the header, e.g.
 * "schema.categorical[3].buckets", built by the caller in `where`. */
typedef struct {
    struct ctr_model *m;
    char *err;
    size_t errlen;
} parse_t;

static const char *arena_dup(struct ctr_model *m, const char *s, size_t len)
{
    CTR_ASSERT(m->strings_used + len + 1 <= m->strings_cap);
    char *p = m->strings + m->strings_used;
    memcpy(p, s, len);
    p[len] = '\0';
    m->strings_used += len + 1;
    return p;
}

/* A short rendering of a JSON value for "got ..." in messages. */
static const char *show(const json_t *v, char *out, size_t outlen)
{
    if (!v)
        return "nothing";
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!s)
        return "?";
    printable_ex(s, strlen(s), out, outlen, true);
    free(s);
    return out;
}

static int bad(parse_t *p, int code, const char *where, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int bad(parse_t *p, int code, const char *where, const char *key, const char *fmt, ...)
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

static int check_keys(parse_t *p, json_t *obj, const char *where, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = !strcmp(key, *a);
        if (!ok) {
            char q[256];
            return bad(p, CTR_EFORMAT, where, NULL, "unknown key \"%s\"", printable(key, strlen(key), q, sizeof(q)));
        }
    }
    return 0;
}

static int get_key(parse_t *p, json_t *obj, const char *where, const char *key, json_t **out)
{
    *out = json_object_get(obj, key);
    return *out ? 0 : bad(p, CTR_EFORMAT, where, key, "missing");
}

static int get_object(parse_t *p, json_t *obj, const char *where, const char *key, json_t **out)
{
    char g[64];
    int rc = get_key(p, obj, where, key, out);
    if (!rc && !json_is_object(*out))
        rc = bad(p, CTR_EFORMAT, where, key, "expected an object (got %s)", show(*out, g, sizeof(g)));
    return rc;
}

static int get_array(parse_t *p, json_t *obj, const char *where, const char *key, json_t **out)
{
    char g[64];
    int rc = get_key(p, obj, where, key, out);
    if (!rc && !json_is_array(*out))
        rc = bad(p, CTR_EFORMAT, where, key, "expected an array (got %s)", show(*out, g, sizeof(g)));
    return rc;
}

static int get_string(parse_t *p, json_t *obj, const char *where, const char *key,
                      const char **s, size_t *len)
{
    json_t *v;
    char g[64];
    int rc = get_key(p, obj, where, key, &v);
    if (rc)
        return rc;
    if (!json_is_string(v))
        return bad(p, CTR_EFORMAT, where, key, "expected a string (got %s)", show(v, g, sizeof(g)));
    *s = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}

static int get_uint(parse_t *p, json_t *obj, const char *where, const char *key,
                    uint64_t min, uint64_t max, uint64_t *out)
{
    json_t *v;
    char g[64], want[64];
    int rc = get_key(p, obj, where, key, &v);
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
    else
        snprintf(want, sizeof(want), "in %" PRIu64 "..%" PRIu64, min, max);
    return bad(p, CTR_EFORMAT, where, key, "expected an integer %s (got %s)", want, show(v, g, sizeof(g)));
}

static int get_finite(parse_t *p, json_t *obj, const char *where, const char *key, double *out)
{
    json_t *v;
    char g[64];
    int rc = get_key(p, obj, where, key, &v);
    if (rc)
        return rc;
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return bad(p, CTR_EFORMAT, where, key, "expected a finite number (got %s)", show(v, g, sizeof(g)));
    *out = json_number_value(v);
    return 0;
}

/* A feature or tensor name: valid, copied into the model's arena. */
static int get_name(parse_t *p, json_t *obj, const char *where, size_t max, const char **out)
{
    const char *s;
    size_t len;
    char q[256];
    int rc = get_string(p, obj, where, "name", &s, &len);
    if (rc)
        return rc;
    if (!valid_name(s, len, max))
        return bad(p, CTR_EFORMAT, where, "name",
                   "\"%s\" is not a valid name (1..%zu bytes of printable ASCII, no quotes or backslash)",
                   printable(s, len, q, sizeof(q)), max);
    *out = arena_dup(p->m, s, len);
    return 0;
}

static int parse_seed(parse_t *p, json_t *obj, const char *where, uint64_t *out)
{
    json_t *v;
    char g[64];
    int rc = get_key(p, obj, where, "seed", &v);
    if (rc)
        return rc;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        uint64_t x = 0;
        bool ok = len > 0 && len <= 20 && !(len > 1 && s[0] == '0');
        for (size_t i = 0; ok && i < len; i++)
            ok = s[i] >= '0' && s[i] <= '9' && mul_u64(x, 10, &x) && add_u64(x, (uint64_t)(s[i] - '0'), &x);
        if (ok) {
            *out = x;
            return 0;
        }
    }
    return bad(p, CTR_EFORMAT, where, "seed", "expected a 64-bit unsigned integer in a decimal string (got %s)",
               show(v, g, sizeof(g)));
}

static int parse_dense(parse_t *p, json_t *arr)
{
    static const char *const keys[] = {"name", "transform", "mean", "std", NULL};
    struct ctr_model *m = p->m;
    for (size_t i = 0; i < m->def.n_dense; i++) {
        json_t *o = json_array_get(arr, i);
        ctr_dense_def_t *d = &m->dense[i];
        char where[64], g[64];
        const char *s;
        size_t len;
        int rc;
        snprintf(where, sizeof(where), "schema.dense[%zu]", i);
        if (!json_is_object(o))
            return bad(p, CTR_EFORMAT, where, NULL, "expected an object (got %s)", show(o, g, sizeof(g)));
        if ((rc = check_keys(p, o, where, keys)) || (rc = get_name(p, o, where, NAME_MAX_BYTES, &d->name)) ||
            (rc = get_string(p, o, where, "transform", &s, &len)))
            return rc;
        if (!strcmp(s, "identity"))
            d->transform = CTR_TRANSFORM_IDENTITY;
        else if (!strcmp(s, "log1p"))
            d->transform = CTR_TRANSFORM_LOG1P;
        else if (!strcmp(s, "standardize"))
            d->transform = CTR_TRANSFORM_STANDARDIZE;
        else
            return bad(p, CTR_EUNSUPPORTED, where, "transform",
                       "unknown transform \"%s\" (this build knows identity, log1p, standardize)",
                       printable(s, len, g, sizeof(g)));
        if (d->transform == CTR_TRANSFORM_STANDARDIZE) {
            if ((rc = get_finite(p, o, where, "mean", &d->mean)) || (rc = get_finite(p, o, where, "std", &d->std)))
                return rc;
            if (!(d->std > 0))
                return bad(p, CTR_EFORMAT, where, "std", "must be > 0 (got %g)", d->std);
        } else {
            if (json_object_get(o, "mean") || json_object_get(o, "std"))
                return bad(p, CTR_EFORMAT, where, NULL, "mean and std belong to transform standardize only");
            d->mean = 0;
            d->std = 1;
        }
    }
    return 0;
}

static int parse_cat(parse_t *p, json_t *arr, json_t **table_refs)
{
    static const char *const keys[] = {"name", "table", "buckets", "dim", "seed", "hash", NULL};
    struct ctr_model *m = p->m;
    for (size_t j = 0; j < m->def.n_cat; j++) {
        json_t *o = json_array_get(arr, j);
        ctr_cat_def_t *c = &m->cat[j];
        char where[64], g[64];
        const char *s;
        size_t len;
        uint64_t v;
        int rc;
        snprintf(where, sizeof(where), "schema.categorical[%zu]", j);
        if (!json_is_object(o))
            return bad(p, CTR_EFORMAT, where, NULL, "expected an object (got %s)", show(o, g, sizeof(g)));
        if ((rc = check_keys(p, o, where, keys)) || (rc = get_name(p, o, where, NAME_MAX_BYTES, &c->name)) ||
            (rc = get_string(p, o, where, "table", &s, &len)))
            return rc;
        table_refs[j] = json_object_get(o, "table");
        if ((rc = get_uint(p, o, where, "buckets", 1, UINT32_MAX, &v)))
            return rc;
        c->buckets = (uint32_t)v;
        if ((rc = get_uint(p, o, where, "dim", 1, UINT32_MAX, &v)))
            return rc;
        c->dim = (uint32_t)v;
        if ((rc = parse_seed(p, o, where, &c->seed)) || (rc = get_string(p, o, where, "hash", &s, &len)))
            return rc;
        if (strcmp(s, "xxh3_64") || len != 7)
            return bad(p, CTR_EUNSUPPORTED, where, "hash",
                       "hash \"%s\" is not supported (this build hashes with xxh3_64)",
                       printable(s, len, g, sizeof(g)));
    }
    return 0;
}

static int parse_mlp(parse_t *p, json_t *mlp, json_t **refs)
{
    static const char *const keys[] = {"activation", "beta", "layers", NULL};
    static const char *const lkeys[] = {"in", "out", "weight", "bias", NULL};
    struct ctr_model *m = p->m;
    const char *s;
    size_t len;
    char g[64];
    double beta;
    json_t *layers;
    int rc;
    if ((rc = check_keys(p, mlp, "mlp", keys)) || (rc = get_string(p, mlp, "mlp", "activation", &s, &len)))
        return rc;
    if (!strcmp(s, "smelu"))
        m->def.activation = CTR_ACT_SMELU;
    else if (!strcmp(s, "relu"))
        m->def.activation = CTR_ACT_RELU;
    else
        return bad(p, CTR_EUNSUPPORTED, "mlp", "activation",
                   "unknown activation \"%s\" (this build knows smelu, relu)", printable(s, len, g, sizeof(g)));
    if ((rc = get_finite(p, mlp, "mlp", "beta", &beta)))
        return rc;
    if (!(beta > 0) || beta > 3.4028234663852886e38 || !((float)beta > 0))
        return bad(p, CTR_EFORMAT, "mlp", "beta", "expected a number > 0 that fits a float (got %g)", beta);
    m->def.beta = (float)beta;
    if ((rc = get_array(p, mlp, "mlp", "layers", &layers)))
        return rc;
    m->def.n_layers = json_array_size(layers);
    if (!m->def.n_layers)
        return bad(p, CTR_EFORMAT, "mlp", "layers", "expected at least one layer");
    if (!(m->layers = calloc(m->def.n_layers, sizeof(*m->layers))))
        return ctr_error(p->err, p->errlen, CTR_ENOMEM, "out of memory");
    m->def.layers = m->layers;
    uint64_t want = ctr_model_input_dim(&m->def);
    for (size_t l = 0; l < m->def.n_layers; l++) {
        json_t *o = json_array_get(layers, l);
        char where[64];
        uint64_t in, out;
        snprintf(where, sizeof(where), "mlp.layers[%zu]", l);
        if (!json_is_object(o))
            return bad(p, CTR_EFORMAT, where, NULL, "expected an object (got %s)", show(o, g, sizeof(g)));
        if ((rc = check_keys(p, o, where, lkeys)) || (rc = get_uint(p, o, where, "in", 1, UINT32_MAX, &in)) ||
            (rc = get_uint(p, o, where, "out", 1, UINT32_MAX, &out)) ||
            (rc = get_string(p, o, where, "weight", &s, &len)) || (rc = get_string(p, o, where, "bias", &s, &len)))
            return rc;
        if (in != want)
            return bad(p, CTR_EFORMAT, where, "in", "is %" PRIu64 " but %s %" PRIu64, in,
                       l ? "the previous layer's out is" : "the schema gives (n_dense + sum of dims)", want);
        m->layers[l].in = (uint32_t)in;
        m->layers[l].out = (uint32_t)out;
        refs[2 * l] = json_object_get(o, "weight");
        refs[2 * l + 1] = json_object_get(o, "bias");
        want = out;
    }
    if (want != 1)
        return bad(p, CTR_EFORMAT, "mlp.layers", NULL, "the last layer must have out == 1 (got %" PRIu64 ")", want);
    return 0;
}

static int parse_tensors(parse_t *p, json_t *arr, uint64_t data_bytes, name_index_t *tix)
{
    static const char *const keys[] = {"name", "dtype", "shape", "offset", "nbytes", "sha256", NULL};
    struct ctr_model *m = p->m;
    uint64_t prev_end = 0;
    for (size_t i = 0; i < m->n_tensors; i++) {
        json_t *o = json_array_get(arr, i), *shape;
        rtensor_t *t = &m->tensors[i];
        char where[64], g[64];
        const char *s;
        size_t len;
        int rc;
        snprintf(where, sizeof(where), "tensors[%zu]", i);
        if (!json_is_object(o))
            return bad(p, CTR_EFORMAT, where, NULL, "expected an object (got %s)", show(o, g, sizeof(g)));
        if ((rc = check_keys(p, o, where, keys)) || (rc = get_name(p, o, where, TENSOR_NAME_MAX_BYTES, &t->name)))
            return rc;
        if (!name_index_add(tix, t->name, strlen(t->name), (uint32_t)i))
            return bad(p, CTR_EFORMAT, where, "name", "duplicate tensor name \"%s\"", t->name);
        snprintf(where, sizeof(where), "tensor \"%s\"", t->name);
        if ((rc = get_string(p, o, where, "dtype", &s, &len)))
            return rc;
        if (len != 3 || strcmp(s, "f32"))
            return bad(p, CTR_EUNSUPPORTED, where, "dtype",
                       "dtype \"%s\" is not supported yet (this build reads f32 only)",
                       printable(s, len, g, sizeof(g)));
        if ((rc = get_array(p, o, where, "shape", &shape)))
            return rc;
        t->rank = (int)json_array_size(shape);
        if (t->rank < 1 || t->rank > 2)
            return bad(p, CTR_EFORMAT, where, "shape", "expected 1 or 2 dimensions (got %s)",
                       show(shape, g, sizeof(g)));
        uint64_t elems = 1;
        for (int k = 0; k < t->rank; k++) {
            json_t *d = json_array_get(shape, (size_t)k);
            if (!json_is_integer(d) || json_integer_value(d) <= 0)
                return bad(p, CTR_EFORMAT, where, "shape", "expected positive integers (got %s)",
                           show(shape, g, sizeof(g)));
            t->shape[k] = (uint64_t)json_integer_value(d);
            if (!mul_u64(elems, t->shape[k], &elems))
                return bad(p, CTR_EFORMAT, where, "shape", "element count overflows (%s)", show(shape, g, sizeof(g)));
        }
        if ((rc = get_uint(p, o, where, "offset", 0, INT64_MAX, &t->offset)) ||
            (rc = get_uint(p, o, where, "nbytes", 0, INT64_MAX, &t->nbytes)) ||
            (rc = get_string(p, o, where, "sha256", &s, &len)))
            return rc;
        if (len != SHA_HEX || !hex_decode(s, 32, t->sha))
            return bad(p, CTR_EFORMAT, where, "sha256", "expected 64 lowercase hex digits (got \"%s\")",
                       printable(s, len, g, sizeof(g)));
        uint64_t want;
        if (!mul_u64(elems, sizeof(float), &want))
            return bad(p, CTR_EFORMAT, where, "nbytes", "shape %s of f32 needs more than 2^64 bytes",
                       show(shape, g, sizeof(g)));
        if (t->nbytes != want)
            return bad(p, CTR_EFORMAT, where, "nbytes", "is %" PRIu64 " but shape %s of f32 needs %" PRIu64,
                       t->nbytes, show(shape, g, sizeof(g)), want);
        if (t->offset % ALIGN)
            return bad(p, CTR_EFORMAT, where, "offset", "%" PRIu64 " is not a multiple of %u", t->offset, ALIGN);
        uint64_t end, abs_end;
        if (!add_u64(t->offset, t->nbytes, &end) || end > data_bytes)
            return ctr_error(p->err, p->errlen, CTR_EFORMAT,
                             "tensor \"%s\": offset %" PRIu64 " + %" PRIu64 " bytes is past data_bytes %" PRIu64,
                             t->name, t->offset, t->nbytes, data_bytes);
        if (!add_u64(m->data_offset, end, &abs_end) || abs_end > m->file_size)
            return ctr_error(p->err, p->errlen, CTR_EFORMAT,
                             "tensor \"%s\": data_offset %" PRIu64 " + offset %" PRIu64 " + %" PRIu64
                             " bytes runs past end of file (size %" PRIu64 "): truncated?",
                             t->name, m->data_offset, t->offset, t->nbytes, m->file_size);
        if (i && t->offset < prev_end)
            return ctr_error(p->err, p->errlen, CTR_EFORMAT,
                             "tensor \"%s\": offset %" PRIu64 " overlaps tensor \"%s\", which ends at %" PRIu64
                             " (tensors must be in ascending offset order without overlap)",
                             t->name, t->offset, m->tensors[i - 1].name, prev_end);
        prev_end = end;
    }
    if (prev_end != data_bytes)
        return ctr_error(p->err, p->errlen, CTR_EFORMAT,
                         "header: data_bytes is %" PRIu64 " but the last tensor ends at %" PRIu64, data_bytes,
                         prev_end);
    return 0;
}

/* Resolves a tensor reference from the schema or the MLP and checks shape. */
static int link_tensor(parse_t *p, const name_index_t *tix, json_t *ref, const char *where,
                       const char *what, const char *key, int rank, uint64_t d0, uint64_t d1, bool is_table,
                       const float **out)
{
    struct ctr_model *m = p->m;
    char q[256];
    long i = name_index_find(tix, json_string_value(ref), json_string_length(ref));
    if (i < 0)
        return bad(p, CTR_EFORMAT, where, key, "tensor \"%s\" is not in tensors",
                   printable(json_string_value(ref), json_string_length(ref), q, sizeof(q)));
    rtensor_t *t = &m->tensors[i];
    if (t->refs++)
        return bad(p, CTR_EFORMAT, where, key, "tensor \"%s\" is used twice", t->name);
    if (t->rank != rank || t->shape[0] != d0 || (rank == 2 && t->shape[1] != d1)) {
        char want[64], got[64];
        snprintf(want, sizeof(want), rank == 2 ? "[%" PRIu64 ",%" PRIu64 "]" : "[%" PRIu64 "]", d0, d1);
        if (t->rank == 2)
            snprintf(got, sizeof(got), "[%" PRIu64 ",%" PRIu64 "]", t->shape[0], t->shape[1]);
        else
            snprintf(got, sizeof(got), "[%" PRIu64 "]", t->shape[0]);
        return ctr_error(p->err, p->errlen, CTR_EFORMAT, "tensor \"%s\": shape %s does not match %s (expected %s)",
                         t->name, got, what, want);
    }
    t->is_table = is_table;
    *out = (const float *)(m->map + m->data_offset + t->offset);
    return 0;
}

static int parse_header(parse_t *p, uint32_t version)
{
    static const char *const keys[] = {"format", "version", "name", "schema", "mlp",
                                       "tensors", "data_bytes", "provenance", NULL};
    static const char *const skeys[] = {"dense", "categorical", NULL};
    struct ctr_model *m = p->m;
    json_error_t je;
    json_t *root = NULL, *schema, *dense, *cat, *mlp, *tensors, *prov, **refs = NULL;
    name_index_t tix = {0};
    const char *s;
    size_t len;
    uint64_t v, data_bytes;
    char g[64];
    int rc;

    root = json_loadb(m->header, m->header_len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        rc = ctr_error(p->err, p->errlen, CTR_EFORMAT,
                       "header: invalid JSON at line %d, column %d (file offset %" PRIu64 "): %s", je.line,
                       je.column, (uint64_t)PREAMBLE_BYTES + (uint64_t)(je.position > 0 ? je.position : 0),
                       je.text);
        goto fail;
    }
    if (!json_is_object(root)) {
        rc = bad(p, CTR_EFORMAT, "top level", NULL, "expected an object (got %s)", show(root, g, sizeof(g)));
        goto fail;
    }
    if ((rc = check_keys(p, root, "top level", keys)) || (rc = get_string(p, root, "", "format", &s, &len)))
        goto fail;
    if (len != 4 || strcmp(s, "ctrm")) {
        rc = bad(p, CTR_EFORMAT, "", "format", "expected \"ctrm\" (got \"%s\")", printable(s, len, g, sizeof(g)));
        goto fail;
    }
    if ((rc = get_uint(p, root, "", "version", 0, INT64_MAX, &v)))
        goto fail;
    if (v != version) {
        rc = bad(p, CTR_EFORMAT, "", "version", "%" PRIu64 " does not match the preamble's version %" PRIu32, v,
                 version);
        goto fail;
    }
    if ((rc = get_string(p, root, "", "name", &s, &len)))
        goto fail;
    if (!valid_model_name(s, len)) {
        rc = bad(p, CTR_EFORMAT, "", "name", "expected 1..%d bytes without control characters (got \"%s\")",
                 MODEL_NAME_MAX_BYTES, printable(s, len, g, sizeof(g)));
        goto fail;
    }
    m->def.name = arena_dup(m, s, len);

    if ((rc = get_object(p, root, "", "schema", &schema)) || (rc = check_keys(p, schema, "schema", skeys)) ||
        (rc = get_array(p, schema, "schema", "dense", &dense)) ||
        (rc = get_array(p, schema, "schema", "categorical", &cat)))
        goto fail;
    m->def.n_dense = json_array_size(dense);
    m->def.n_cat = json_array_size(cat);
    m->dense = calloc(m->def.n_dense + 1, sizeof(*m->dense));
    m->cat = calloc(m->def.n_cat + 1, sizeof(*m->cat));
    refs = calloc(m->def.n_cat + 1, sizeof(*refs));
    if (!m->dense || !m->cat || !refs || name_index_init(&m->features, m->def.n_dense + m->def.n_cat)) {
        rc = ctr_error(p->err, p->errlen, CTR_ENOMEM, "out of memory");
        goto fail;
    }
    m->def.dense = m->dense;
    m->def.cat = m->cat;
    if ((rc = parse_dense(p, dense)) || (rc = parse_cat(p, cat, refs)))
        goto fail;
    for (size_t i = 0; i < m->def.n_dense + m->def.n_cat; i++) {
        bool is_dense = i < m->def.n_dense;
        size_t k = is_dense ? i : i - m->def.n_dense;
        const char *name = is_dense ? m->dense[k].name : m->cat[k].name;
        if (!name_index_add(&m->features, name, strlen(name), (uint32_t)i)) {
            char where[64];
            snprintf(where, sizeof(where), "schema.%s[%zu]", is_dense ? "dense" : "categorical", k);
            rc = bad(p, CTR_EFORMAT, where, "name", "duplicate feature name \"%s\"", name);
            goto fail;
        }
    }
    if (m->def.n_dense + m->def.n_cat == 0) {
        rc = bad(p, CTR_EFORMAT, "schema", NULL, "no features");
        goto fail;
    }

    json_t **lrefs, *layers;
    if ((rc = get_object(p, root, "", "mlp", &mlp)) || (rc = get_array(p, mlp, "mlp", "layers", &layers)))
        goto fail;
    /* refs: the n_cat table names, then weight and bias of each layer. */
    lrefs = realloc(refs, (m->def.n_cat + 2 * json_array_size(layers) + 1) * sizeof(*refs));
    if (!lrefs) {
        rc = ctr_error(p->err, p->errlen, CTR_ENOMEM, "out of memory");
        goto fail;
    }
    refs = lrefs;
    if ((rc = parse_mlp(p, mlp, refs + m->def.n_cat)))
        goto fail;

    if ((rc = get_uint(p, root, "", "data_bytes", 0, INT64_MAX, &data_bytes)) ||
        (rc = get_array(p, root, "", "tensors", &tensors)))
        goto fail;
    m->n_tensors = json_array_size(tensors);
    if (!(m->tensors = calloc(m->n_tensors + 1, sizeof(*m->tensors))) || name_index_init(&tix, m->n_tensors)) {
        rc = ctr_error(p->err, p->errlen, CTR_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = parse_tensors(p, tensors, data_bytes, &tix)))
        goto fail;
    for (size_t j = 0; j < m->def.n_cat; j++) {
        char where[64], what[96];
        snprintf(where, sizeof(where), "schema.categorical[%zu]", j);
        snprintf(what, sizeof(what), "categorical \"%s\"", m->cat[j].name);
        if ((rc = link_tensor(p, &tix, refs[j], where, what, "table", 2, (uint64_t)m->cat[j].buckets + 1,
                              m->cat[j].dim, true, &m->cat[j].table)))
            goto fail;
    }
    for (size_t l = 0; l < m->def.n_layers; l++) {
        char where[64];
        snprintf(where, sizeof(where), "mlp.layers[%zu]", l);
        if ((rc = link_tensor(p, &tix, refs[m->def.n_cat + 2 * l], where, where, "weight", 2, m->layers[l].in,
                              m->layers[l].out, false, &m->layers[l].weight)) ||
            (rc = link_tensor(p, &tix, refs[m->def.n_cat + 2 * l + 1], where, where, "bias", 1, m->layers[l].out, 0,
                              false, &m->layers[l].bias)))
            goto fail;
    }
    for (size_t i = 0; i < m->n_tensors; i++)
        if (!m->tensors[i].refs) {
            rc = ctr_error(p->err, p->errlen, CTR_EFORMAT,
                           "tensor \"%s\": not used by the schema or the MLP", m->tensors[i].name);
            goto fail;
        }
    uint64_t data_end;
    if (!add_u64(m->data_offset, data_bytes, &data_end) || data_end != m->file_size) {
        rc = ctr_error(p->err, p->errlen, CTR_EFORMAT,
                       "file is %" PRIu64 " bytes but data ends at %" PRIu64 " (data_offset %" PRIu64
                       " + data_bytes %" PRIu64 "): %s",
                       m->file_size, data_end, m->data_offset, data_bytes,
                       data_end < m->file_size ? "trailing bytes" : "truncated");
        goto fail;
    }

    if ((rc = get_object(p, root, "", "provenance", &prov)))
        goto fail;
    if (!(m->provenance = json_dumps(prov, DUMP_FLAGS))) {
        rc = ctr_error(p->err, p->errlen, CTR_ENOMEM, "out of memory");
        goto fail;
    }
    m->def.provenance_json = m->provenance;
    rc = 0;
fail:
    name_index_free(&tix);
    free(refs);
    json_decref(root);
    return rc;
}

static int check_preamble(struct ctr_model *m, preamble_t *pre, char *err, size_t errlen)
{
    char q[64];
    if (m->file_size < PREAMBLE_BYTES)
        return ctr_error(err, errlen, CTR_EFORMAT, "file is %" PRIu64 " bytes, smaller than the %u-byte preamble",
                         m->file_size, PREAMBLE_BYTES);
    memcpy(pre, m->map, sizeof(*pre));
    if (memcmp(pre->magic, MAGIC, 8))
        return ctr_error(err, errlen, CTR_EFORMAT, "bad magic \"%s\" (expected \"%s\"): not a ctrm model file",
                         printable(pre->magic, 8, q, sizeof(q)), MAGIC);
    if (pre->version != FORMAT_VERSION)
        return ctr_error(err, errlen, CTR_EVERSION,
                         "format version %" PRIu32 " (this build reads version %u)", pre->version, FORMAT_VERSION);
    if (pre->flags)
        return ctr_error(err, errlen, CTR_EFORMAT, "preamble flags 0x%" PRIx32 ": reserved, must be 0", pre->flags);
    if (pre->header_len == 0 || pre->header_len > HEADER_MAX)
        return ctr_error(err, errlen, CTR_EFORMAT, "header_len %" PRIu64 " outside 1..%u", pre->header_len,
                         HEADER_MAX);
    if (pre->header_len > m->file_size - PREAMBLE_BYTES)
        return ctr_error(err, errlen, CTR_EFORMAT,
                         "header_len %" PRIu64 " runs past end of file (size %" PRIu64 "): truncated?",
                         pre->header_len, m->file_size);
    uint64_t want;
    align_up(PREAMBLE_BYTES + pre->header_len, &want);
    if (pre->data_offset != want)
        return ctr_error(err, errlen, CTR_EFORMAT, "data_offset %" PRIu64 " (expected %" PRIu64
                         " = 32 + header_len %" PRIu64 " rounded up to 64)", pre->data_offset, want, pre->header_len);
    if (pre->data_offset > m->file_size)
        return ctr_error(err, errlen, CTR_EFORMAT, "data_offset %" PRIu64 " is past end of file (size %" PRIu64
                         "): truncated?", pre->data_offset, m->file_size);
    for (uint64_t i = PREAMBLE_BYTES + pre->header_len; i < pre->data_offset; i++)
        if (m->map[i])
            return ctr_error(err, errlen, CTR_EFORMAT, "nonzero byte 0x%02x in the header padding at offset %" PRIu64,
                             m->map[i], i);
    return 0;
}

/* Readahead helps nothing on a table read one row at a time, and would
 * evict useful pages; the small MLP is wanted in memory at once. */
static void advise(const struct ctr_model *m)
{
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        return;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const rtensor_t *t = &m->tensors[i];
        uintptr_t a = (uintptr_t)(m->map + m->data_offset + t->offset);
        uintptr_t start = a & ~(uintptr_t)(page - 1), end = a + t->nbytes;
        if (t->is_table && t->nbytes >= ((uint64_t)2 << 20))
            (void)madvise((void *)start, end - start, MADV_RANDOM);
        else if (!t->is_table)
            (void)madvise((void *)start, end - start, MADV_WILLNEED);
    }
}

int ctr_model_open(const char *path, ctr_model_t **out, char *err, size_t errlen)
{
    struct ctr_model *m = NULL;
    struct stat st;
    preamble_t pre;
    int fd = -1, rc;
    if (!path || !out)
        return ctr_error(err, errlen, CTR_EINVAL, "ctr_model_open: NULL argument");
    *out = NULL;
    if (!(m = calloc(1, sizeof(*m))) || !(m->path = strdup(path))) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
        goto fail;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st)) {
        rc = ctr_error(err, errlen, CTR_EIO, "open %s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = ctr_error(err, errlen, CTR_EIO, "%s: not a regular file", path);
        goto fail;
    }
    m->file_size = (uint64_t)st.st_size;
    if (m->file_size > SIZE_MAX) {
        rc = ctr_error(err, errlen, CTR_ETOOBIG, "%s: %" PRIu64 " bytes do not fit the address space", path,
                       m->file_size);
        goto fail;
    }
    if (m->file_size >= PREAMBLE_BYTES) {
        m->map = mmap(NULL, m->file_size, PROT_READ, MAP_SHARED, fd, 0);
        if (m->map == MAP_FAILED) {
            m->map = NULL;
            rc = ctr_error(err, errlen, CTR_EIO, "mmap %s (%" PRIu64 " bytes): %s", path, m->file_size,
                           strerror(errno));
            goto fail;
        }
        m->map_len = m->file_size;
    }
    close(fd);
    fd = -1;
    if ((rc = check_preamble(m, &pre, err, errlen)))
        goto fail;
    m->data_offset = pre.data_offset;
    m->header_len = pre.header_len;
    m->strings_cap = m->header_len + 1;
    if (!(m->header = malloc(m->header_len + 1)) || !(m->strings = malloc(m->strings_cap))) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
        goto fail;
    }
    memcpy(m->header, m->map + PREAMBLE_BYTES, m->header_len);
    m->header[m->header_len] = '\0';
    unsigned char md[32];
    if (sha256(m->header, m->header_len, md)) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "SHA-256 of the header failed");
        goto fail;
    }
    memcpy(m->digest, "sha256:", 7);
    hex_encode(md, 32, m->digest + 7);

    parse_t p = {m, err, errlen};
    if ((rc = parse_header(&p, pre.version)))
        goto fail;
    advise(m);
    *out = m;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    ctr_model_close(m);
    return rc;
}

void ctr_model_close(ctr_model_t *m)
{
    if (!m)
        return;
    if (m->map)
        munmap((void *)m->map, m->map_len);
    name_index_free(&m->features);
    free(m->provenance);
    free(m->strings);
    free(m->tensors);
    free(m->layers);
    free(m->cat);
    free(m->dense);
    free(m->header);
    free(m->path);
    free(m);
}

int ctr_model_verify(const ctr_model_t *m, char *err, size_t errlen)
{
    long page = sysconf(_SC_PAGESIZE);
    uint64_t prev_end = 0;
    if (!m)
        return ctr_error(err, errlen, CTR_EINVAL, "ctr_model_verify: NULL model");
    for (size_t i = 0; i < m->n_tensors; i++) {
        const rtensor_t *t = &m->tensors[i];
        const unsigned char *data = m->map + m->data_offset + t->offset;
        unsigned char md[32];
        char want[SHA_HEX + 1], got[SHA_HEX + 1];
        for (uint64_t k = prev_end; k < t->offset; k++)
            if (m->map[m->data_offset + k])
                return ctr_error(err, errlen, CTR_EFORMAT,
                                 "nonzero padding byte before tensor \"%s\" at file offset %" PRIu64, t->name,
                                 m->data_offset + k);
        prev_end = t->offset + t->nbytes;
        /* One sequential pass: ask for readahead, then put the advice back. */
        uintptr_t start = page > 0 ? (uintptr_t)data & ~(uintptr_t)(page - 1) : (uintptr_t)data;
        size_t span = (size_t)((uintptr_t)data + t->nbytes - start);
        if (page > 0)
            (void)madvise((void *)start, span, MADV_SEQUENTIAL);
        int hrc = sha256(data, t->nbytes, md);
        if (page > 0)
            (void)madvise((void *)start, span,
                          t->is_table && t->nbytes >= ((uint64_t)2 << 20) ? MADV_RANDOM : MADV_NORMAL);
        if (hrc)
            return ctr_error(err, errlen, CTR_ENOMEM, "SHA-256 failed");
        if (memcmp(md, t->sha, 32)) {
            hex_encode(t->sha, 32, want);
            hex_encode(md, 32, got);
            return ctr_error(err, errlen, CTR_ECHECKSUM,
                             "tensor \"%s\": SHA-256 mismatch (header says %.16s..., data hashes to %.16s...)",
                             t->name, want, got);
        }
        size_t n = t->nbytes / sizeof(float), bad_at = first_nonfinite((const float *)data, n);
        if (bad_at < n)
            return ctr_error(err, errlen, CTR_EFORMAT, "tensor \"%s\": element %zu is %g (values must be finite)",
                             t->name, bad_at, (double)((const float *)data)[bad_at]);
    }
    return 0;
}

const ctr_model_def_t *ctr_model_def(const ctr_model_t *m) { return &m->def; }
const char *ctr_model_digest(const ctr_model_t *m) { return m->digest; }
const char *ctr_model_path(const ctr_model_t *m) { return m->path; }
uint64_t ctr_model_file_size(const ctr_model_t *m) { return m->file_size; }

const char *ctr_model_header_json(const ctr_model_t *m, size_t *len)
{
    if (len)
        *len = m->header_len;
    return m->header;
}

long ctr_model_find_feature(const ctr_model_t *m, const char *name, size_t len)
{
    if (!name || len == 0 || len > NAME_MAX_BYTES)
        return -1;
    return name_index_find(&m->features, name, len);
}
