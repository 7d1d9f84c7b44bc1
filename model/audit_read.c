/* audit_read.c - the audit log reader: reads a segment into memory, walks
 * its frames, classifies what it finds (record, corrupt span, torn tail)
 * and decodes record payloads into reused buffers (see ctr/audit.h; the
 * byte layout is at the top of audit_int.h; the recovery rules are in
 * docs/AUDIT_LOG.md). Nothing read is trusted: every length and count is
 * checked against the bytes that are there before it is used. */
#include "ctr/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit_int.h"
#include "crc32c_int.h"
#include "ctr/common.h"

struct ctr_audit_reader {
    const uint8_t *buf;
    size_t len, pos;
    uint8_t *owned;               /* buf when read from a file */
    ctr_audit_segment_t seg;
    int header_status;            /* 0 or CTR_ECHECKSUM */
    int header_torn;
    int done;
    /* Decode buffers, grown as needed; bounded by the payload size. */
    float *scores;
    size_t scores_cap;
    uint32_t *col;
    size_t col_cap;
    double *dense;
    size_t dense_cap;
    uint32_t *cat_off;
    uint8_t *cat_len;
    size_t cat_cap;
    char *text;                   /* unpacked categorical bytes */
    size_t text_cap;
    float *primary;               /* a shadow record's primary scores */
    size_t primary_cap;
    char request_id[CTR_AUDIT_REQUEST_ID_MAX + 1];
};

#define COL_SHARED 0x80000000u

static int grow(void **p, size_t *cap, size_t want, size_t elem)
{
    if (want <= *cap)
        return 0;
    size_t n = *cap ? *cap : 64;
    while (n < want)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return CTR_ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

static int grow_cat(ctr_audit_reader_t *r, size_t want)
{
    if (want <= r->cat_cap)
        return 0;
    size_t n = r->cat_cap ? r->cat_cap : 64;
    while (n < want)
        n *= 2;
    uint32_t *o = realloc(r->cat_off, n * sizeof *o);
    if (!o)
        return CTR_ENOMEM;
    r->cat_off = o;
    uint8_t *l = realloc(r->cat_len, n);
    if (!l)
        return CTR_ENOMEM;
    r->cat_len = l;
    r->cat_cap = n;
    return 0;
}

/* Reads one dense value at *pp (bounded by end): 0 or -1. */
static int dense_get(const uint8_t **pp, const uint8_t *end, double *out)
{
    const uint8_t *p = *pp;
    if (p >= end)
        return -1;
    uint8_t t = *p++;
    if (t < 0x80) {
        *out = (double)t;
    } else if (t == TAG_MISSING) {
        *out = NAN;
    } else if (t == TAG_F64) {
        if (end - p < 8)
            return -1;
        uint64_t bits = ctr__get64(p);
        p += 8;
        double v;
        memcpy(&v, &bits, 8);
        if (isnan(v))
            return -1;
        *out = v;
    } else if (t == TAG_VARINT) {
        uint64_t z = 0;
        int shift = 0;
        for (;;) {
            if (p >= end || shift > 63)
                return -1;
            uint8_t b = *p++;
            z |= (uint64_t)(b & 0x7f) << shift;
            if (!(b & 0x80))
                break;
            shift += 7;
        }
        int64_t v = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
        if (v > (int64_t)1 << 53 || v < -((int64_t)1 << 53))
            return -1;
        *out = (double)v;
    } else {
        return -1;
    }
    *pp = p;
    return 0;
}

/* Reads one categorical value into out (>= 2 * CAT_HEX_MAX bytes free):
 * its length, or -1 when malformed, CTR_AUDIT_CAT_MISSING when missing. */
static int cat_get(const uint8_t **pp, const uint8_t *end, char *out)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = *pp;
    if (p >= end)
        return -1;
    uint8_t t = *p++;
    int len;
    if (t == CAT_TAG_MISSING) {
        len = CTR_AUDIT_CAT_MISSING;
    } else if (t <= CTR_AUDIT_CAT_MAX) {
        if ((size_t)(end - p) < t)
            return -1;
        memcpy(out, p, t);
        p += t;
        len = t;
    } else if (t > CAT_TAG_HEX && t <= (CAT_TAG_HEX | CAT_HEX_MAX)) {
        size_t k = t & ~CAT_TAG_HEX;
        if ((size_t)(end - p) < k)
            return -1;
        for (size_t i = 0; i < k; i++) {
            out[2 * i] = hex[p[i] >> 4];
            out[2 * i + 1] = hex[p[i] & 15];
        }
        p += k;
        len = (int)(2 * k);
    } else {
        return -1;
    }
    *pp = p;
    return len;
}

int ctr_audit_reader_decode(ctr_audit_reader_t *r, const uint8_t *payload, size_t len,
                            ctr_audit_record_t *rec, char *err, size_t errlen)
{
    const uint8_t *p = payload, *end = payload + len;
    memset(rec, 0, sizeof *rec);
    if (len < CTR_AUDIT_FIXED_BYTES || len > CTR_AUDIT_MAX_PAYLOAD)
        return ctr_error(err, errlen, CTR_EFORMAT, "payload of %zu bytes", len);
    unsigned type = p[0];
    if (type != REC_TYPE_SCORED && type != REC_TYPE_SHADOW)
        return ctr_error(err, errlen, CTR_EFORMAT, "unknown record type %u", type);
    uint8_t flags = p[2];
    if (flags & ~FLAGS_KNOWN)
        return ctr_error(err, errlen, CTR_EFORMAT, "unknown flags 0x%02x", flags);
    rec->kernel_id = p[1];
    rec->bit_exact = !!(flags & FLAG_BIT_EXACT);
    rec->client_request_id = !!(flags & FLAG_CLIENT_ID);
    size_t id_len = p[3];
    size_t n = ctr__get32(p + 4), nd = ctr__get16(p + 8), nc = ctr__get16(p + 10), cols = nd + nc;
    rec->seq = ctr__get64(p + 16);
    rec->t_received_ns = ctr__get64(p + 24);
    rec->t_scored_ns = ctr__get64(p + 32);
    rec->generation = ctr__get64(p + 40);
    memcpy(rec->digest, p + 48, 32);
    p += CTR_AUDIT_FIXED_BYTES;
    if (n < 1)
        return ctr_error(err, errlen, CTR_EFORMAT, "record holds no examples");
    /* A shadow record's trailer ends the payload: the values end where it
     * begins, and must end exactly there. */
    const uint8_t *trailer = NULL;
    if (type == REC_TYPE_SHADOW) {
        size_t tlen = SHADOW_TRAILER_FIXED + 4 * n;
        if ((size_t)(end - p) < tlen)
            return ctr_error(err, errlen, CTR_EFORMAT, "shadow record of %zu examples: its %zu-byte trailer "
                             "does not fit in a %zu-byte payload", n, tlen, len);
        end -= tlen;
        trailer = end;
    }
    if ((size_t)(end - p) < id_len || (size_t)(end - p - id_len) / 4 < n)
        return ctr_error(err, errlen, CTR_EFORMAT, "%zu examples and a %zu-byte id do not fit in %zu bytes",
                         n, id_len, len);
    memcpy(r->request_id, p, id_len);
    r->request_id[id_len] = '\0';
    p += id_len;
    if (grow((void **)&r->scores, &r->scores_cap, n, sizeof(float)))
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = ctr__get32(p + 4 * i);
        memcpy(&r->scores[i], &bits, 4);
    }
    p += 4 * n;
    if (grow((void **)&r->col, &r->col_cap, cols ? cols : 1, sizeof(uint32_t)))
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    const uint8_t *map = NULL;
    if (flags & FLAG_SHARED) {
        if (n < 2)
            return ctr_error(err, errlen, CTR_EFORMAT, "shared columns in a one-example record");
        if ((size_t)(end - p) < (cols + 7) / 8)
            return ctr_error(err, errlen, CTR_EFORMAT, "shared-column map past the end");
        map = p;
        p += (cols + 7) / 8;
        if (cols % 8 && (map[cols / 8] >> (cols % 8)))
            return ctr_error(err, errlen, CTR_EFORMAT, "shared-column map has bits past the last feature");
    }
    size_t sd = 0, sc = 0, ud = 0, uc = 0;
    for (size_t c = 0; c < cols; c++) {
        int sh = map && (map[c / 8] >> (c % 8) & 1);
        if (c < nd)
            r->col[c] = sh ? COL_SHARED | (uint32_t)sd++ : (uint32_t)ud++;
        else
            r->col[c] = sh ? COL_SHARED | (uint32_t)sc++ : (uint32_t)uc++;
    }
    if (map && !(sd + sc))
        return ctr_error(err, errlen, CTR_EFORMAT, "empty shared-column map");
    /* Every stored value takes at least one byte: bound the counts by the
     * bytes left before allocating anything for them. */
    uint64_t rest = (uint64_t)(end - p);
    uint64_t n_dense_vals = sd + (uint64_t)n * ud, n_cat_vals = sc + (uint64_t)n * uc;
    if (n_dense_vals + n_cat_vals > rest)
        return ctr_error(err, errlen, CTR_EFORMAT, "%llu feature values cannot fit in %llu bytes",
                         (unsigned long long)(n_dense_vals + n_cat_vals), (unsigned long long)rest);
    if (grow((void **)&r->dense, &r->dense_cap, n_dense_vals ? n_dense_vals : 1, sizeof(double)) ||
        grow_cat(r, n_cat_vals ? n_cat_vals : 1))
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    /* Layout of the decoded arrays: shared values first, then per example.
     * Categorical bytes are unpacked into r->text: at most twice the
     * payload (hex packing halves a value, nothing packs tighter). */
    if (grow((void **)&r->text, &r->text_cap, 2 * len + 2 * CAT_HEX_MAX, 1))
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    size_t di = 0, ci = 0, tu = 0;
    int l;
    for (size_t c = 0; c < cols && map; c++) {
        if (!(r->col[c] & COL_SHARED))
            continue;
        if (c < nd) {
            if (dense_get(&p, end, &r->dense[di++]))
                return ctr_error(err, errlen, CTR_EFORMAT, "shared value of dense feature %zu is malformed", c);
            continue;
        }
        if ((l = cat_get(&p, end, r->text + tu)) < 0)
            return ctr_error(err, errlen, CTR_EFORMAT, "shared value of categorical feature %zu is malformed", c - nd);
        r->cat_off[ci] = (uint32_t)tu;
        r->cat_len[ci++] = (uint8_t)l;
        tu += l == CTR_AUDIT_CAT_MISSING ? 0 : (size_t)l;
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < nd; j++)
            if (!(r->col[j] & COL_SHARED) && dense_get(&p, end, &r->dense[di++]))
                return ctr_error(err, errlen, CTR_EFORMAT, "example %zu: dense value %zu is malformed", i, j);
        for (size_t j = 0; j < nc; j++) {
            if (r->col[nd + j] & COL_SHARED)
                continue;
            if ((l = cat_get(&p, end, r->text + tu)) < 0)
                return ctr_error(err, errlen, CTR_EFORMAT, "example %zu: categorical value %zu is malformed", i, j);
            r->cat_off[ci] = (uint32_t)tu;
            r->cat_len[ci++] = (uint8_t)l;
            tu += l == CTR_AUDIT_CAT_MISSING ? 0 : (size_t)l;
        }
    }
    if (p != end)
        return ctr_error(err, errlen, CTR_EFORMAT, "%zu bytes left after the last value%s", (size_t)(end - p),
                         trailer ? " (before the shadow trailer)" : "");
    if (trailer) {
        if (grow((void **)&r->primary, &r->primary_cap, n, sizeof(float)))
            return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
        rec->primary_seq = ctr__get64(trailer);
        rec->primary_generation = ctr__get64(trailer + 8);
        memcpy(rec->primary_digest, trailer + 16, 32);
        for (size_t i = 0; i < n; i++) {
            uint32_t bits = ctr__get32(trailer + SHADOW_TRAILER_FIXED + 4 * i);
            memcpy(&r->primary[i], &bits, 4);
        }
        rec->primary_scores = r->primary;
    }
    rec->type = type;
    rec->request_id = r->request_id;
    rec->request_id_len = id_len;
    rec->n = n;
    rec->n_dense = nd;
    rec->n_cat = nc;
    rec->scores = r->scores;
    rec->col_ = r->col;
    rec->dense_s_ = sd;
    rec->cat_s_ = sc;
    rec->dense_u_ = ud;
    rec->cat_u_ = uc;
    rec->dense_ = r->dense;
    rec->cat_off_ = r->cat_off;
    rec->cat_len_ = r->cat_len;
    rec->bytes_ = (const uint8_t *)r->text;
    return 0;
}

double ctr_audit_record_dense(const ctr_audit_record_t *r, size_t i, size_t j)
{
    CTR_ASSERT(i < r->n && j < r->n_dense);
    uint32_t c = r->col_[j];
    if (c & COL_SHARED)
        return r->dense_[c & ~COL_SHARED];
    return r->dense_[r->dense_s_ + i * r->dense_u_ + c];
}

int ctr_audit_record_cat(const ctr_audit_record_t *r, size_t i, size_t j,
                         const char **bytes, size_t *len)
{
    CTR_ASSERT(i < r->n && j < r->n_cat);
    uint32_t c = r->col_[r->n_dense + j];
    size_t k;
    if (c & COL_SHARED) {
        k = c & ~COL_SHARED;
    } else {
        k = r->cat_s_ + i * r->cat_u_ + c;
    }
    if (r->cat_len_[k] == CTR_AUDIT_CAT_MISSING) {
        *bytes = NULL;
        *len = 0;
        return 0;
    }
    *bytes = (const char *)r->bytes_ + r->cat_off_[k];
    *len = r->cat_len_[k];
    return 1;
}

static int reader_init(ctr_audit_reader_t *r, char *err, size_t errlen)
{
    if (r->len < CTR_AUDIT_SEGMENT_HEADER_BYTES) {
        /* A crash right after the file was created: only a torn header. */
        if (r->len >= 8 && memcmp(r->buf, CTR_AUDIT_SEGMENT_MAGIC, 8))
            return ctr_error(err, errlen, CTR_EFORMAT, "not an audit segment (bad magic)");
        if (r->len && memcmp(r->buf, CTR_AUDIT_SEGMENT_MAGIC, r->len < 8 ? r->len : 8))
            return ctr_error(err, errlen, CTR_EFORMAT, "not an audit segment (bad magic)");
        r->header_torn = 1;
        return 0;
    }
    char e[160];
    int rc = ctr_audit_segment_decode(r->buf, r->len, &r->seg, e, sizeof e);
    if (rc == CTR_ECHECKSUM) {
        r->header_status = rc;
    } else if (rc) {
        return ctr_error(err, errlen, rc, "%s", e);
    }
    r->pos = CTR_AUDIT_SEGMENT_HEADER_BYTES;
    return 0;
}

int ctr_audit_reader_open_mem(const void *buf, size_t len, ctr_audit_reader_t **out,
                              char *err, size_t errlen)
{
    ctr_audit_reader_t *r;
    int rc;
    *out = NULL;
    if (!(r = calloc(1, sizeof *r)))
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    r->buf = buf;
    r->len = len;
    if ((rc = reader_init(r, err, errlen)))
        goto fail;
    *out = r;
    return 0;
fail:
    ctr_audit_reader_close(r);
    return rc;
}

int ctr_audit_reader_open(const char *path, ctr_audit_reader_t **out, char *err, size_t errlen)
{
    ctr_audit_reader_t *r;
    struct stat st;
    uint8_t *buf = NULL;
    size_t cap, len = 0;
    int rc;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ctr_error(err, errlen, CTR_EIO, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        rc = ctr_error(err, errlen, CTR_EIO, "%s: not a regular file", path);
        goto fail;
    }
    cap = (size_t)st.st_size;
    if (!(buf = malloc(cap ? cap : 1))) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "%s: out of memory for %zu bytes", path, cap);
        goto fail;
    }
    /* The file may still grow (a live server) or shrink: read what is
     * there up to the size seen at open. */
    while (len < cap) {
        ssize_t k = read(fd, buf + len, cap - len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            rc = ctr_error(err, errlen, CTR_EIO, "%s: read: %s", path, strerror(errno));
            goto fail;
        }
        if (k == 0)
            break;
        len += (size_t)k;
    }
    close(fd);
    fd = -1;
    if ((rc = ctr_audit_reader_open_mem(buf, len, &r, err, errlen)))
        goto fail;
    r->owned = buf;
    *out = r;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

void ctr_audit_reader_close(ctr_audit_reader_t *r)
{
    if (!r)
        return;
    free(r->owned);
    free(r->scores);
    free(r->col);
    free(r->dense);
    free(r->cat_off);
    free(r->cat_len);
    free(r->text);
    free(r->primary);
    free(r);
}

const ctr_audit_segment_t *ctr_audit_reader_segment(const ctr_audit_reader_t *r)
{
    return &r->seg;
}

int ctr_audit_reader_header_status(const ctr_audit_reader_t *r)
{
    return r->header_status;
}

typedef enum { FR_GOOD, FR_BADPAYLOAD, FR_TORN, FR_BADHEADER } frame_t;

/* Classifies the frame at pos (>= 16 bytes must remain). */
static frame_t frame_at(const ctr_audit_reader_t *r, size_t pos, uint32_t *plen)
{
    const uint8_t *p = r->buf + pos;
    size_t rem = r->len - pos;
    if (ctr__get32(p) != CTR_AUDIT_RECORD_MAGIC || ctr__get32(p + 8) != ctr__crc32c(0, p, 8))
        return FR_BADHEADER;
    uint32_t len = ctr__get32(p + 4);
    if (len < CTR_AUDIT_FIXED_BYTES || len > CTR_AUDIT_MAX_PAYLOAD)
        return FR_BADHEADER;
    *plen = len;
    if (rem - CTR_AUDIT_FRAME_BYTES < len)
        return FR_TORN;
    return ctr__get32(p + 12) == ctr__crc32c(0, p + CTR_AUDIT_FRAME_BYTES, len) ? FR_GOOD : FR_BADPAYLOAD;
}

static void span_set(ctr_audit_span_t *s, uint64_t off, uint64_t bytes, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void span_set(ctr_audit_span_t *s, uint64_t off, uint64_t bytes, const char *fmt, ...)
{
    if (!s)
        return;
    s->offset = off;
    s->bytes = bytes;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof s->why, fmt, ap);
    va_end(ap);
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

ctr_audit_event_t ctr_audit_reader_next(ctr_audit_reader_t *r, ctr_audit_record_t *rec,
                                        ctr_audit_span_t *span)
{
    ctr_audit_record_t scratch;
    if (!rec)
        rec = &scratch;
    if (r->done)
        return CTR_AUDIT_END;
    if (r->header_torn) {
        r->done = 1;
        span_set(span, 0, r->len, "file ends inside the segment header (%zu of %u bytes)", r->len,
                 CTR_AUDIT_SEGMENT_HEADER_BYTES);
        return CTR_AUDIT_TORN;
    }
    if (r->pos >= r->len) {
        r->done = 1;
        return CTR_AUDIT_END;
    }
    size_t pos = r->pos, rem = r->len - pos;
    if (rem < CTR_AUDIT_FRAME_BYTES) {
        r->done = 1;
        if (rem >= 4 && ctr__get32(r->buf + pos) != CTR_AUDIT_RECORD_MAGIC && !all_zero(r->buf + pos, rem)) {
            span_set(span, pos, rem, "%zu trailing bytes that are not a record frame", rem);
            return CTR_AUDIT_CORRUPT;
        }
        span_set(span, pos, rem, "file ends inside a record frame (%zu of %u bytes)", rem,
                 CTR_AUDIT_FRAME_BYTES);
        return CTR_AUDIT_TORN;
    }
    uint32_t plen = 0;
    switch (frame_at(r, pos, &plen)) {
    case FR_GOOD: {
        char e[128];
        r->pos = pos + CTR_AUDIT_FRAME_BYTES + plen;
        if (ctr_audit_reader_decode(r, r->buf + pos + CTR_AUDIT_FRAME_BYTES, plen, rec, e, sizeof e)) {
            span_set(span, pos, CTR_AUDIT_FRAME_BYTES + (uint64_t)plen, "checksum ok but payload invalid: %s", e);
            return CTR_AUDIT_CORRUPT;
        }
        rec->offset = pos;
        rec->size = CTR_AUDIT_FRAME_BYTES + plen;
        return CTR_AUDIT_RECORD;
    }
    case FR_BADPAYLOAD:
        r->pos = pos + CTR_AUDIT_FRAME_BYTES + plen;
        span_set(span, pos, CTR_AUDIT_FRAME_BYTES + (uint64_t)plen, "payload CRC32C mismatch");
        return CTR_AUDIT_CORRUPT;
    case FR_TORN:
        r->done = 1;
        span_set(span, pos, rem, "final record incomplete: %zu of %u bytes", rem,
                 CTR_AUDIT_FRAME_BYTES + plen);
        return CTR_AUDIT_TORN;
    case FR_BADHEADER:
        break;
    }
    if (all_zero(r->buf + pos, rem)) {
        r->done = 1;
        span_set(span, pos, rem, "zero-filled tail of %zu bytes", rem);
        return CTR_AUDIT_TORN;
    }
    /* Resynchronize: the next offset holding a frame whose header checks
     * out (magic, length bounds and header CRC). */
    for (size_t q = pos + 1; q + CTR_AUDIT_FRAME_BYTES <= r->len; q++) {
        if (ctr__get32(r->buf + q) != CTR_AUDIT_RECORD_MAGIC)
            continue;
        uint32_t l2;
        if (frame_at(r, q, &l2) != FR_BADHEADER) {
            r->pos = q;
            span_set(span, pos, q - pos, "bad record frame; skipped %zu bytes to the next frame", q - pos);
            return CTR_AUDIT_CORRUPT;
        }
    }
    r->done = 1;
    span_set(span, pos, rem, "bad record frame; no valid frame in the last %zu bytes", rem);
    return CTR_AUDIT_CORRUPT;
}
