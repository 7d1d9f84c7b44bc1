/* model_read.c - the .ctrm model file: its byte layout, and the mmapped
 * reader (ctr_model_open, ctr_model_verify and the views in ctr/model.h).
 *
 * Byte layout (docs/MODEL_FORMAT.md is the long form; all integers are
 * little-endian, offsets in bytes):
 *
 *   0    preamble, 32 bytes
 *          0  magic[8]      "CTRMODEL"
 *          8  u32 version   1 or 2 (the header's "version")
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
 * Header JSON (model_write.c emits exactly this key order, compact, reals
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
 * Version 2 (the interaction models; a writer emits it only for a def
 * that needs it, ctr_model_def_version) adds, in this key order:
 *
 *   {"format":"ctrm","version":2,"name":STR,"arch":"mlp"|"dot"|"dcnv2"|"wukong",
 *    "schema":{"dense":[...as v1...],
 *              "categorical":[{"name":"C1","table":"emb.C1","buckets":U32,"dim":U32,
 *                              "mapping":"hash","seed":"U64","hash":"xxh3_64",
 *                              "bag":{"max":1..1024,"pool":"sum"|"mean"}},   (bag optional)
 *                             {"name":"C2","table":"emb.C1",...,"mapping":"mod"}]},
 *    "bottom":{"layers":[LAYER,...]},                            (optional; never in mlp)
 *    "interaction":                                              (not in mlp)
 *       dot:    {"order":"lower"|"upper","self":BOOL}
 *       dcnv2:  {"structure":"stacked"|"parallel",
 *                "cross":[{"dim":D,"rank":0,"weight":T,"bias":T} |
 *                         {"dim":D,"rank":R,"v":T,"u":T,"bias":T}],
 *                "deep":[LAYER,...]}
 *       wukong: {"ln_eps":F,"fmb_ln":"none"|"flat","fmb_out_act":BOOL,
 *                "layers":[{"n_in","n_f","n_l","k":U32,"y":T,
 *                           "fmb_ln_gamma":T,"fmb_ln_beta":T,   (flat only)
 *                           "fmb":[LAYER,...],"lcb":T,"res":T,  (res: n_f + n_l != n_in only)
 *                           "ln_gamma":T,"ln_beta":T}]},
 *    "mlp":{...as v1...},"tensors":[...],"data_bytes":U64,"provenance":{...}}
 *
 * A feature whose "table" names a table an earlier feature names shares
 * it (same buckets, dim, mapping, seed); the tensor is stored once. Shapes
 * (weights [in, out] as in v1): cross weight [D,D], v [D,R], u [R,D],
 * bias [D]; y [n_in,k]; fmb_ln_* [n_in*k]; lcb [n_l,n_in];
 * res [n_f+n_l,n_in]; ln_* [d]. The graph rules are model_check.c's.
 *
 * Model digest: "sha256:" + hex SHA-256 of the header bytes. The header
 * holds every tensor's SHA-256, so the digest covers all the data and costs
 * one hash of a few KB at load; ctr_model_verify re-hashes the data.
 *
 * Reading: every preamble field (here), every header key (type and range),
 * every tensor extent (with overflow-checked arithmetic) and the graph
 * (model_header.c, model_check.c) are checked before any pointer is handed out; a
 * hostile file gets an error message, never an out-of-bounds read. The
 * mapping is read-only; a file must not be modified in place while mapped
 * (writers rename a new file over it instead, which leaves existing
 * mappings intact). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctr/common.h"
#include "ctr/model.h"
#include "ctr/sha256.h"
#include "model_int.h"
#include "model_pad.h"
#include "quant_encode.h"

static int check_preamble(struct ctr_model *m, preamble_t *pre, char *err, size_t errlen)
{
    char q[64];
    if (m->file_size < PREAMBLE_BYTES)
        return ctr_error(err, errlen, CTR_EFORMAT, "file is %" PRIu64 " bytes, smaller than the %u-byte preamble",
                         m->file_size, PREAMBLE_BYTES);
    memcpy(pre, m->map, sizeof(*pre));
    if (memcmp(pre->magic, MAGIC, 8))
        return ctr_error(err, errlen, CTR_EFORMAT, "bad magic \"%s\" (expected \"%s\"): not a ctrm model file",
                         ctr__printable(pre->magic, 8, q, sizeof(q)), MAGIC);
    if (pre->version < 1 || pre->version > FORMAT_VERSION_MAX)
        return ctr_error(err, errlen, CTR_EVERSION, "format version %" PRIu32 " (this build reads versions 1 to %u)",
                         pre->version, FORMAT_VERSION_MAX);
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
    ctr__align_up(PREAMBLE_BYTES + pre->header_len, &want);
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

/* Bytes of memory this process may fill: physical memory, or the cgroup
 * (v2) limit when lower, as in a container. */
static uint64_t memory_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t mem = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    FILE *f = fopen("/sys/fs/cgroup/memory.max", "re"); /* "max" when unlimited */
    unsigned long long lim;
    if (f) {
        if (fscanf(f, "%llu", &lim) == 1 && lim < mem)
            mem = lim;
        fclose(f);
    }
    return mem;
}

/* MADV_RANDOM only for tables memory cannot hold: a miss then reads one
 * page, not read_ahead_kb around it (14x the rows/s of uniformly random
 * rows on a 32 GB model in 23.5 GiB of RAM). Tables that fit are better
 * re-warmed by the read-around once their pages were evicted (10-23x the
 * examples/s on a 12 GB model on the same machine). The line is half of
 * memory, between those two measured points; CTR_TABLE_ADVICE=random or
 * normal overrides it. docs/OPERATIONS.md, "Sizing a machine for a model". */
static void choose_table_advice(struct ctr_model *m)
{
    const char *env = getenv("CTR_TABLE_ADVICE");
    if (env && !strcmp(env, "random")) {
        m->table_advice = MADV_RANDOM;
        return;
    }
    if (env && !strcmp(env, "normal")) {
        m->table_advice = MADV_NORMAL;
        return;
    }
    uint64_t tables = 0;
    for (size_t i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].is_table)
            tables += m->tensors[i].nbytes;
    m->table_advice = tables > memory_bytes() / 2 ? MADV_RANDOM : MADV_NORMAL;
}

const char *ctr_model_table_advice(const ctr_model_t *m)
{
    return m->table_advice == MADV_RANDOM ? "random" : "normal";
}

/* Readahead on a table read one row at a time, when memory cannot hold
 * the tables, reads pages nobody wants and evicts useful ones
 * (choose_table_advice); the small MLP is wanted in memory at once. */
static void advise(const struct ctr_model *m)
{
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        return;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const ctr__rtensor_t *t = &m->tensors[i];
        uintptr_t a = (uintptr_t)(m->map + m->data_offset + t->offset);
        uintptr_t start = a & ~(uintptr_t)(page - 1), end = a + t->nbytes;
        if (t->is_table && t->nbytes >= ((uint64_t)2 << 20))
            (void)madvise((void *)start, end - start, m->table_advice);
        else if (!t->is_table)
            (void)madvise((void *)start, end - start, MADV_WILLNEED);
    }
}

/* Drops the pages wholly inside t's extent from the process: on this
 * read-only shared mapping MADV_DONTNEED unmaps them, and touching them
 * again reads them back from the file. */
static void drop_pages(const struct ctr_model *m, const ctr__rtensor_t *t)
{
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        return;
    uintptr_t a = (uintptr_t)(m->map + m->data_offset + t->offset), e = a + t->nbytes;
    uintptr_t start = (a + (uintptr_t)page - 1) & ~(uintptr_t)(page - 1);
    uintptr_t end = e & ~(uintptr_t)(page - 1);
    if (end > start)
        (void)madvise((void *)start, end - start, MADV_DONTNEED);
}

/* A padded layer runs from its copy, so the mapped original is marked and
 * its pages dropped (again after ctr_model_verify reads them): the
 * weights are not resident twice. */
static int keep_copy(void *mv, void *copy, const float *orig, size_t n)
{
    struct ctr_model *m = mv;
    if (ctr__model_own(m, copy))
        return CTR_ENOMEM;
    for (size_t i = 0; i < m->n_tensors; i++) {
        ctr__rtensor_t *t = &m->tensors[i];
        if ((const void *)(m->map + m->data_offset + t->offset) == (const void *)orig &&
            t->nbytes == n * sizeof(float)) {
            t->padded = true;
            drop_pages(m, t);
        }
    }
    return 0;
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
    unsigned char md[CTR_SHA256_LEN];
    if (ctr_sha256(m->header, m->header_len, md)) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "SHA-256 of the header failed");
        goto fail;
    }
    memcpy(m->digest, "sha256:", 7);
    ctr_hex_encode(md, CTR_SHA256_LEN, m->digest + 7);

    if ((rc = ctr__model_parse_header(m, pre.version, err, errlen)))
        goto fail;
    choose_table_advice(m);
    advise(m);
    /* Layers of the widths whose rows alias in the caches run from a
     * padded copy (model_pad.c says why); the mapping stays as it is. */
    if (ctr__pad_weights(&m->def, keep_copy, m)) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "%s: out of memory padding the weight rows", path);
        goto fail;
    }
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
    ctr__name_index_free(&m->features);
    free(m->provenance);
    free(m->strings);
    free(m->tensors);
    for (size_t i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    free(m->cat);
    free(m->dense);
    free(m->header);
    free(m->path);
    free(m);
}

/* Every value a tensor stores decodes to a finite float: f32 and f16
 * elements are finite, and each int8_rowwise row's scale and bias obey
 * the format's rules (quant.h). The scores of a model that passes can
 * still be anything, but never NaN from the file. */
static int check_values(const ctr__rtensor_t *t, const unsigned char *data, char *err, size_t errlen)
{
    if (t->dtype == CTR_TABLE_F32) {
        size_t n = t->nbytes / sizeof(float), bad_at = ctr__first_nonfinite((const float *)data, n);
        if (bad_at < n)
            return ctr_error(err, errlen, CTR_EFORMAT, "tensor \"%s\": element %zu is %g (values must be finite)",
                             t->name, bad_at, (double)((const float *)data)[bad_at]);
        return 0;
    }
    char why[192];
    if (ctr__quant_check_rows(t->dtype, data, t->shape[0], t->shape[1], 0, why, sizeof why))
        return ctr_error(err, errlen, CTR_EFORMAT, "tensor \"%s\" (%s table): %s", t->name,
                         ctr_table_dtype_name(t->dtype), why);
    return 0;
}

int ctr_model_verify(const ctr_model_t *m, char *err, size_t errlen)
{
    long page = sysconf(_SC_PAGESIZE);
    uint64_t prev_end = 0;
    if (!m)
        return ctr_error(err, errlen, CTR_EINVAL, "ctr_model_verify: NULL model");
    for (size_t i = 0; i < m->n_tensors; i++) {
        const ctr__rtensor_t *t = &m->tensors[i];
        const unsigned char *data = m->map + m->data_offset + t->offset;
        unsigned char md[CTR_SHA256_LEN];
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
        int hrc = ctr_sha256(data, t->nbytes, md);
        if (page > 0)
            (void)madvise((void *)start, span,
                          t->is_table && t->nbytes >= ((uint64_t)2 << 20) ? m->table_advice : MADV_NORMAL);
        if (hrc)
            return ctr_error(err, errlen, CTR_ENOMEM, "SHA-256 failed");
        if (memcmp(md, t->sha, CTR_SHA256_LEN)) {
            ctr_hex_encode(t->sha, CTR_SHA256_LEN, want);
            ctr_hex_encode(md, CTR_SHA256_LEN, got);
            return ctr_error(err, errlen, CTR_ECHECKSUM,
                             "tensor \"%s\": SHA-256 mismatch (header says %.16s..., data hashes to %.16s...)",
                             t->name, want, got);
        }
        int vrc = check_values(t, data, err, errlen);
        if (vrc)
            return vrc;
        if (t->padded)
            drop_pages(m, t);
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

