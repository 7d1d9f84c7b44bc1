/* audit_record.c - the audit log's codec: the segment header (encode and
 * decode), the record encoder, and the names and digest text of a record
 * (see ctr/audit.h; the byte layout is at the top of audit_int.h). The
 * record decoder is the reader's (audit_read.c), which reuses its buffers
 * from record to record. */
#include "ctr/audit.h"

#include <math.h>
#include <string.h>

#include "audit_int.h"
#include "crc32c_int.h"
#include "ctr/common.h"
#include "ctr/sha256.h"

#define INT_LIMIT 9007199254740992.0 /* 2^53 */

void ctr_audit_segment_encode(const ctr_audit_segment_t *h, uint8_t out[CTR_AUDIT_SEGMENT_HEADER_BYTES])
{
    memset(out, 0, CTR_AUDIT_SEGMENT_HEADER_BYTES);
    memcpy(out, CTR_AUDIT_SEGMENT_MAGIC, 8);
    ctr__put32(out + 8, CTR_AUDIT_FORMAT_VERSION);
    ctr__put32(out + 12, CTR_AUDIT_SEGMENT_HEADER_BYTES);
    ctr__put64(out + 16, h->server_start_ns);
    ctr__put64(out + 24, h->created_ns);
    ctr__put64(out + 32, h->segment_index);
    ctr__put64(out + 40, h->first_seq);
    ctr__put32(out + 48, h->pid);
    ctr__put32(out + 52, h->durability);
    memcpy(out + 56, h->host, strnlen(h->host, CTR_AUDIT_HOST_MAX));
    memcpy(out + 124, h->version_str, strnlen(h->version_str, CTR_AUDIT_VERSION_MAX));
    ctr__put32(out + 156, ctr__crc32c(0, out, 156));
}

/* Copies a NUL-padded field, replacing bytes that are not printable ASCII
 * (a damaged header must not put control bytes on a terminal). */
static void copy_field(char *dst, const uint8_t *src, size_t n)
{
    size_t i = 0;
    for (; i < n && src[i]; i++)
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? (char)src[i] : '?';
    dst[i] = '\0';
}

int ctr_audit_segment_decode(const void *buf, size_t len, ctr_audit_segment_t *h,
                             char *err, size_t errlen)
{
    const uint8_t *p = buf;
    memset(h, 0, sizeof *h);
    if (len < CTR_AUDIT_SEGMENT_HEADER_BYTES)
        return ctr_error(err, errlen, CTR_EFORMAT, "%zu bytes: shorter than a segment header (%u)",
                         len, CTR_AUDIT_SEGMENT_HEADER_BYTES);
    if (memcmp(p, CTR_AUDIT_SEGMENT_MAGIC, 8))
        return ctr_error(err, errlen, CTR_EFORMAT, "not an audit segment (bad magic)");
    h->version = ctr__get32(p + 8);
    if (h->version != CTR_AUDIT_FORMAT_VERSION)
        return ctr_error(err, errlen, CTR_EVERSION, "audit format version %u; this build reads %u",
                         h->version, CTR_AUDIT_FORMAT_VERSION);
    uint32_t hb = ctr__get32(p + 12);
    h->server_start_ns = ctr__get64(p + 16);
    h->created_ns = ctr__get64(p + 24);
    h->segment_index = ctr__get64(p + 32);
    h->first_seq = ctr__get64(p + 40);
    h->pid = ctr__get32(p + 48);
    h->durability = ctr__get32(p + 52);
    copy_field(h->host, p + 56, CTR_AUDIT_HOST_MAX);
    copy_field(h->version_str, p + 124, CTR_AUDIT_VERSION_MAX);
    if (ctr__get32(p + 156) != ctr__crc32c(0, p, 156))
        return ctr_error(err, errlen, CTR_ECHECKSUM, "segment header CRC mismatch");
    if (hb != CTR_AUDIT_SEGMENT_HEADER_BYTES)
        return ctr_error(err, errlen, CTR_EFORMAT, "segment header claims %u bytes, version 1 has %u",
                         hb, CTR_AUDIT_SEGMENT_HEADER_BYTES);
    return 0;
}

/* ---- encoder -------------------------------------------------------- */

static int dense_is_int(double v, int64_t *out)
{
    if (!(v >= -INT_LIMIT && v <= INT_LIMIT))
        return 0;                     /* NaN, infinities, too large */
    int64_t i = (int64_t)v;
    if ((double)i != v || (i == 0 && signbit(v)))
        return 0;
    *out = i;
    return 1;
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static size_t dense_size(double v)
{
    int64_t i;
    if (isnan(v))
        return 1;
    if (dense_is_int(v, &i))
        return (i >= 0 && i < 0x80) ? 1 : 1 + varint_len(zigzag(i));
    return 9;
}

static uint8_t *dense_put(uint8_t *p, double v)
{
    int64_t i;
    if (isnan(v)) {
        *p++ = TAG_MISSING;
    } else if (dense_is_int(v, &i)) {
        if (i >= 0 && i < 0x80) {
            *p++ = (uint8_t)i;
        } else {
            *p++ = TAG_VARINT;
            uint64_t z = zigzag(i);
            while (z >= 0x80) {
                *p++ = (uint8_t)(z | 0x80);
                z >>= 7;
            }
            *p++ = (uint8_t)z;
        }
    } else {
        uint64_t bits;
        memcpy(&bits, &v, 8);
        *p++ = TAG_F64;
        ctr__put64(p, bits);
        p += 8;
    }
    return p;
}

static int dense_same(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return !memcmp(&a, &b, sizeof a);
}

static int cat_same(const ctr_audit_input_t *in, size_t k1, size_t k2)
{
    uint8_t l1 = in->cat_len[k1], l2 = in->cat_len[k2];
    if (l1 != l2)
        return 0;
    return l1 == CTR_AUDIT_CAT_MISSING || !memcmp(in->cat_bytes + in->cat_off[k1],
                                                  in->cat_bytes + in->cat_off[k2], l1);
}

static int column_shared(const ctr_audit_input_t *in, size_t col)
{
    if (in->n < 2)
        return 0;
    if (col < in->n_dense) {
        double v0 = in->dense_raw[col];
        for (size_t i = 1; i < in->n; i++)
            if (!dense_same(v0, in->dense_raw[i * in->n_dense + col]))
                return 0;
        return 1;
    }
    size_t j = col - in->n_dense;
    for (size_t i = 1; i < in->n; i++)
        if (!cat_same(in, j, i * in->n_cat + j))
            return 0;
    return 1;
}

/* Lowercase hex of even length (Criteo's values, hashes, ids) is packed
 * two digits a byte; it unpacks to the same bytes. The tests below run on
 * every value of every record, and random digits defeat branch
 * prediction, so they are table lookups without data-dependent branches:
 * hex_val[c] is HEX_OK | the digit's value, 0 for any other byte. */
#define HEX_OK 0x10u
static const uint8_t hex_val[256] = {
    ['0'] = 0x10, ['1'] = 0x11, ['2'] = 0x12, ['3'] = 0x13, ['4'] = 0x14, ['5'] = 0x15,
    ['6'] = 0x16, ['7'] = 0x17, ['8'] = 0x18, ['9'] = 0x19, ['a'] = 0x1a, ['b'] = 0x1b,
    ['c'] = 0x1c, ['d'] = 0x1d, ['e'] = 0x1e, ['f'] = 0x1f,
};

static int is_hex_pair_string(const char *s, size_t l)
{
    if (l < 2 || l % 2 || l / 2 > CAT_HEX_MAX)
        return 0;
    unsigned ok = HEX_OK;
    for (size_t i = 0; i < l; i++)
        ok &= hex_val[(unsigned char)s[i]];
    return ok != 0;
}

static size_t cat_size(const ctr_audit_input_t *in, size_t k)
{
    uint8_t l = in->cat_len[k];
    if (l == CTR_AUDIT_CAT_MISSING)
        return 1;
    return is_hex_pair_string(in->cat_bytes + in->cat_off[k], l) ? 1 + (size_t)l / 2 : 1 + (size_t)l;
}

static uint8_t *cat_put(uint8_t *p, const ctr_audit_input_t *in, size_t k)
{
    uint8_t l = in->cat_len[k];
    const unsigned char *s = (const unsigned char *)in->cat_bytes + in->cat_off[k];
    if (l == CTR_AUDIT_CAT_MISSING) {
        *p++ = CAT_TAG_MISSING;
        return p;
    }
    if (l >= 2 && l % 2 == 0 && l / 2 <= CAT_HEX_MAX) {
        /* Pack optimistically; keep it only if every byte was a digit. */
        unsigned ok = HEX_OK;
        for (size_t i = 0; i < l; i += 2) {
            unsigned hi = hex_val[s[i]], lo = hex_val[s[i + 1]];
            ok &= hi & lo;
            p[1 + i / 2] = (uint8_t)((hi & 15) << 4 | (lo & 15));
        }
        if (ok) {
            p[0] = (uint8_t)(CAT_TAG_HEX | (l / 2));
            return p + 1 + l / 2;
        }
    }
    *p++ = l;
    memcpy(p, s, l);
    return p + l;
}

/* Walks the record once. Without out: returns its payload size, or 0
 * when it cannot be logged. With out (cap bytes): writes the payload and
 * returns the bytes written, or 0 if it would not fit in cap. A shadow
 * record (in->shadow) is the same walk with its trailer at the end of the
 * payload (audit_int.h). */
#define MAX_VALUE_BYTES (1 + CTR_AUDIT_CAT_MAX)
static size_t record_walk(const ctr_audit_input_t *in, uint8_t *out, size_t cap)
{
    size_t n = in->n, nd = in->n_dense, nc = in->n_cat, cols = nd + nc;
    if (n < 1 || n > UINT32_MAX / 4 || nd > 0xffff || nc > 0xffff ||
        in->request_id_len > CTR_AUDIT_REQUEST_ID_MAX)
        return 0;
    if (!out)
        for (size_t k = 0; k < n * nc; k++)
            if (in->cat_len[k] > CTR_AUDIT_CAT_MAX && in->cat_len[k] != CTR_AUDIT_CAT_MISSING)
                return 0;
    uint8_t shared_map[(0xffff * 2 + 7) / 8];
    int any_shared = 0;
    if (n > 1) {
        memset(shared_map, 0, (cols + 7) / 8);
        for (size_t c = 0; c < cols; c++)
            if (column_shared(in, c)) {
                shared_map[c / 8] |= (uint8_t)(1u << (c % 8));
                any_shared = 1;
            }
    }
#define SHARED(c) (any_shared && (shared_map[(c) / 8] >> ((c) % 8) & 1))
    uint64_t head = CTR_AUDIT_FIXED_BYTES + in->request_id_len + 4 * (uint64_t)n +
                    (any_shared ? (cols + 7) / 8 : 0);
    uint64_t trailer = in->shadow ? SHADOW_TRAILER_FIXED + 4 * (uint64_t)n : 0;
    if (!out) {
        /* Sizing pass. */
        uint64_t size = head + trailer;
        for (size_t c = 0; c < cols && any_shared; c++)
            if (SHARED(c))
                size += c < nd ? dense_size(in->dense_raw[c]) : cat_size(in, c - nd);
        for (size_t i = 0; i < n && size <= CTR_AUDIT_MAX_PAYLOAD; i++) {
            for (size_t j = 0; j < nd; j++)
                if (!SHARED(j))
                    size += dense_size(in->dense_raw[i * nd + j]);
            for (size_t j = 0; j < nc; j++)
                if (!SHARED(nd + j))
                    size += cat_size(in, i * nc + j);
        }
        return size > CTR_AUDIT_MAX_PAYLOAD ? 0 : (size_t)size;
    }
    /* Writing pass: the exact size is known, so only a value near the end
     * of out needs its own size checked. The values end where the trailer
     * begins. */
    if (head + trailer > cap)
        return 0;
    uint8_t *p = out, *end = out + cap - trailer;
    uint8_t flags = (uint8_t)((in->bit_exact ? FLAG_BIT_EXACT : 0) | (any_shared ? FLAG_SHARED : 0) |
                              (in->client_request_id ? FLAG_CLIENT_ID : 0));
    p[0] = in->shadow ? REC_TYPE_SHADOW : REC_TYPE_SCORED;
    p[1] = (uint8_t)in->kernel_id;
    p[2] = flags;
    p[3] = (uint8_t)in->request_id_len;
    ctr__put32(p + 4, (uint32_t)n);
    ctr__put16(p + 8, (uint16_t)nd);
    ctr__put16(p + 10, (uint16_t)nc);
    ctr__put32(p + 12, 0);
    ctr__put64(p + 16, in->seq);
    ctr__put64(p + 24, in->t_received_ns);
    ctr__put64(p + 32, in->t_scored_ns);
    ctr__put64(p + 40, in->generation);
    memcpy(p + 48, in->digest, 32);
    p += CTR_AUDIT_FIXED_BYTES;
    memcpy(p, in->request_id, in->request_id_len);
    p += in->request_id_len;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &in->scores[i], 4);
        ctr__put32(p, bits);
        p += 4;
    }
#define FITS(sz) ((size_t)(end - p) >= MAX_VALUE_BYTES || (size_t)(end - p) >= (sz))
    if (any_shared) {
        memcpy(p, shared_map, (cols + 7) / 8);
        p += (cols + 7) / 8;
        for (size_t c = 0; c < cols; c++) {
            if (!SHARED(c))
                continue;
            if (c < nd) {
                if (!FITS(dense_size(in->dense_raw[c])))
                    return 0;
                p = dense_put(p, in->dense_raw[c]);
            } else {
                if (!FITS(cat_size(in, c - nd)))
                    return 0;
                p = cat_put(p, in, c - nd);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < nd; j++) {
            if (SHARED(j))
                continue;
            double v = in->dense_raw[i * nd + j];
            if (!FITS(dense_size(v)))
                return 0;
            p = dense_put(p, v);
        }
        for (size_t j = 0; j < nc; j++) {
            if (SHARED(nd + j))
                continue;
            size_t k = i * nc + j;
            if (in->cat_len[k] > CTR_AUDIT_CAT_MAX && in->cat_len[k] != CTR_AUDIT_CAT_MISSING)
                return 0;
            if (!FITS(cat_size(in, k)))
                return 0;
            p = cat_put(p, in, k);
        }
    }
#undef FITS
#undef SHARED
    if (in->shadow) {
        const ctr_audit_shadow_t *sh = in->shadow;
        ctr__put64(p, sh->primary_seq);
        ctr__put64(p + 8, sh->primary_generation);
        memcpy(p + 16, sh->primary_digest, 32);
        p += SHADOW_TRAILER_FIXED;
        for (size_t i = 0; i < n; i++) {
            uint32_t bits;
            memcpy(&bits, &sh->primary_scores[i], 4);
            ctr__put32(p, bits);
            p += 4;
        }
    }
    return (size_t)(p - out);
}

size_t ctr_audit_record_size(const ctr_audit_input_t *in)
{
    size_t s = record_walk(in, NULL, 0);
    return s ? CTR_AUDIT_FRAME_BYTES + s : 0;
}

size_t ctr_audit_record_encode(const ctr_audit_input_t *in, void *out, size_t size)
{
    uint8_t *p = out;
    if (size <= CTR_AUDIT_FRAME_BYTES)
        return 0;
    size_t plen = size - CTR_AUDIT_FRAME_BYTES;
    if (record_walk(in, p + CTR_AUDIT_FRAME_BYTES, plen) != plen)
        return 0;
    ctr__put32(p, CTR_AUDIT_RECORD_MAGIC);
    ctr__put32(p + 4, (uint32_t)plen);
    ctr__put32(p + 8, ctr__crc32c(0, p, 8));
    ctr__put32(p + 12, ctr__crc32c(0, p + CTR_AUDIT_FRAME_BYTES, plen));
    return size;
}

/* ---- names ---------------------------------------------------------- */

const char *ctr_audit_kernel_name(unsigned kernel_id)
{
    static const char *const names[] = {"scalar", "avx2", "avx512", "blas"};
    return kernel_id < CTR_ARRAY_LEN(names) ? names[kernel_id] : "unknown";
}

void ctr_audit_digest_str(const uint8_t digest[32], char *out)
{
    memcpy(out, "sha256:", 7);
    ctr_hex_encode(digest, CTR_SHA256_LEN, out + 7);
}

/* Upper-case digits are accepted: a digest typed or pasted by a person. */
int ctr_audit_digest_parse(const char *s, uint8_t digest[32])
{
    if (!strncmp(s, "sha256:", 7))
        s += 7;
    if (strlen(s) != CTR_SHA256_HEX_LEN)
        return CTR_EINVAL;
    return ctr_hex_decode(s, CTR_SHA256_LEN, digest, 0);
}
