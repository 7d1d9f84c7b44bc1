/* audit.c - the audit log format: CRC32C, segment header, record encoder
 * and the reader (see ctr/audit.h; docs/AUDIT_LOG.md is the long form).
 *
 * Everything is little-endian and written byte by byte through the put/get
 * helpers, so no struct is ever read in place from a file.
 *
 * Segment header, 160 bytes at offset 0:
 *
 *     0   u8[8]  magic "CTRAUDIT"
 *     8   u32    format version (1)
 *     12  u32    header bytes (160)
 *     16  u64    server start time, ns since the Unix epoch (CLOCK_REALTIME)
 *     24  u64    segment creation time, ns
 *     32  u64    segment index within the server run (1, 2, ...)
 *     40  u64    seq of the first record the segment may hold
 *     48  u32    pid of ctrd
 *     52  u32    durability: 0 async, 1 write, 2 fsync
 *     56  u8[68] host name, NUL-padded (at most 67 bytes)
 *     124 u8[32] ctrd version, NUL-padded (at most 31 bytes)
 *     156 u32    CRC32C of bytes 0..155
 *
 * Record = frame (16 bytes) + payload:
 *
 *     0   u32    magic 0x31524443 ("CDR1")
 *     4   u32    payload length P (80 <= P <= 64 MiB)
 *     8   u32    CRC32C of bytes 0..7 (magic and length)
 *     12  u32    CRC32C of the P payload bytes
 *
 * Payload, fixed part (80 bytes):
 *
 *     0   u8     record type (1: scored request)
 *     1   u8     kernel id (0 scalar, 1 avx2, 2 avx512, 3 blas)
 *     2   u8     flags: bit 0 kernel is bit-exact, bit 1 shared-column map
 *                present, bit 2 request id sent by the client
 *     3   u8     request id length L
 *     4   u32    examples N (>= 1)
 *     8   u16    dense features D
 *     10  u16    categorical features C
 *     12  u32    reserved, 0
 *     16  u64    seq (writer's record number, from 1 per server run)
 *     24  u64    time the request arrived, ns (CLOCK_REALTIME)
 *     32  u64    time its batch was scored, ns
 *     40  u64    model generation (1 at start, +1 per reload)
 *     48  u8[32] model digest (SHA-256 of the model header, raw bytes)
 *
 * then: L request id bytes; N scores as f32 bits; if flag bit 1, a bitmap
 * of ceil((D + C) / 8) bytes (bit k of byte k / 8 for feature k, dense
 * first) marking columns whose value is the same in every example, stored
 * once; the shared values (dense, then categorical, in column order); and
 * for each example its other values (dense, then categorical).
 *
 * A dense value is one tag byte, maybe followed by data:
 *     0x00..0x7f  the integer 0..127
 *     0x80        missing
 *     0x81        f64 bits follow (8 bytes); never NaN
 *     0x82        zigzag LEB128 integer v follows, |v| <= 2^53, not 0..127
 * An integer form is used only when it converts back to the same double
 * bits (so never for -0.0). A categorical value is one tag byte:
 *     0x00..0x7f  that many raw bytes follow (0..127)
 *     0x81..0xbf  lowercase hex text of 2k characters, k = tag & 0x3f:
 *                 k bytes follow, each two digits, high nibble first
 *     0xff        missing
 * Hex packing is used exactly when the value is 2..126 characters of
 * [0-9a-f] and of even length, so every value has one encoding. */
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

#include "ctr/common.h"

/* ---- CRC32C --------------------------------------------------------- */

static uint32_t crc_table[8][256];

static void crc_table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

/* Slicing-by-8. */
uint32_t ctr__crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    static int ready;
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        crc_table_init();   /* idempotent: racing threads write the same values */
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    const uint8_t *p = buf;
    uint32_t c = ~crc;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint32_t lo = (uint32_t)w ^ c, hi = (uint32_t)(w >> 32);
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
            crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
            crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
            crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
    return ~c;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2")))
uint32_t ctr__crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint64_t c = ~crc;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = _mm_crc32_u8(c32, *p++);
    return ~c32;
}

int ctr__crc32c_hw_available(void)
{
    return __builtin_cpu_supports("sse4.2");
}
#else
uint32_t ctr__crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
    return ctr__crc32c_sw(crc, buf, len);
}

int ctr__crc32c_hw_available(void)
{
    return 0;
}
#endif

static int crc_mode; /* 0 unknown, 1 sw, 2 hw */

static int crc_pick(void)
{
    int m = __atomic_load_n(&crc_mode, __ATOMIC_RELAXED);
    if (!m) {
        m = ctr__crc32c_hw_available() ? 2 : 1;
        __atomic_store_n(&crc_mode, m, __ATOMIC_RELAXED);
    }
    return m;
}

uint32_t ctr_crc32c(uint32_t crc, const void *buf, size_t len)
{
    return crc_pick() == 2 ? ctr__crc32c_hw(crc, buf, len) : ctr__crc32c_sw(crc, buf, len);
}

const char *ctr_crc32c_impl(void)
{
    return crc_pick() == 2 ? "sse4.2" : "table";
}

/* ---- little-endian helpers ----------------------------------------- */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32); }

/* ---- segment header ------------------------------------------------- */

/* The on-disk header as a struct, only to pin its size; it is never
 * read or written in place. */
typedef struct {
    char magic[8];
    uint32_t version, header_bytes;
    uint64_t server_start_ns, created_ns, segment_index, first_seq;
    uint32_t pid, durability;
    char host[68];
    char version_str[32];
    uint32_t crc;
} seg_disk_t;
_Static_assert(sizeof(seg_disk_t) == CTR_AUDIT_SEGMENT_HEADER_BYTES, "segment header is 160 bytes");
_Static_assert(offsetof(seg_disk_t, host) == 56 && offsetof(seg_disk_t, version_str) == 124 &&
               offsetof(seg_disk_t, crc) == 156, "segment header layout");
_Static_assert(sizeof(((ctr_audit_segment_t *)0)->host) == 68, "host field");
_Static_assert(sizeof(((ctr_audit_segment_t *)0)->version_str) == 32, "version field");

typedef struct {
    uint32_t magic, payload_len, hcrc, pcrc;
} frame_disk_t;
_Static_assert(sizeof(frame_disk_t) == CTR_AUDIT_FRAME_BYTES, "frame is 16 bytes");

typedef struct {
    uint8_t type, kernel, flags, id_len;
    uint32_t n;
    uint16_t n_dense, n_cat;
    uint32_t reserved;
    uint64_t seq, t_received_ns, t_scored_ns, generation;
    uint8_t digest[32];
} fixed_disk_t;
_Static_assert(sizeof(fixed_disk_t) == CTR_AUDIT_FIXED_BYTES, "fixed payload part is 80 bytes");
_Static_assert(offsetof(fixed_disk_t, seq) == 16 && offsetof(fixed_disk_t, digest) == 48,
               "fixed payload layout");

#define REC_TYPE_SCORED 1u
#define FLAG_BIT_EXACT 1u
#define FLAG_SHARED 2u
#define FLAG_CLIENT_ID 4u
#define FLAGS_KNOWN 7u

#define TAG_MISSING 0x80u
#define TAG_F64 0x81u
#define TAG_VARINT 0x82u
#define INT_LIMIT 9007199254740992.0 /* 2^53 */
#define CAT_TAG_HEX 0x80u
#define CAT_TAG_MISSING 0xffu
#define CAT_HEX_MAX 63u  /* 0x81..0xbf: 1..63 packed bytes */

void ctr_audit_segment_encode(const ctr_audit_segment_t *h, uint8_t out[CTR_AUDIT_SEGMENT_HEADER_BYTES])
{
    memset(out, 0, CTR_AUDIT_SEGMENT_HEADER_BYTES);
    memcpy(out, CTR_AUDIT_SEGMENT_MAGIC, 8);
    put32(out + 8, CTR_AUDIT_FORMAT_VERSION);
    put32(out + 12, CTR_AUDIT_SEGMENT_HEADER_BYTES);
    put64(out + 16, h->server_start_ns);
    put64(out + 24, h->created_ns);
    put64(out + 32, h->segment_index);
    put64(out + 40, h->first_seq);
    put32(out + 48, h->pid);
    put32(out + 52, h->durability);
    memcpy(out + 56, h->host, strnlen(h->host, CTR_AUDIT_HOST_MAX));
    memcpy(out + 124, h->version_str, strnlen(h->version_str, CTR_AUDIT_VERSION_MAX));
    put32(out + 156, ctr_crc32c(0, out, 156));
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
    h->version = get32(p + 8);
    if (h->version != CTR_AUDIT_FORMAT_VERSION)
        return ctr_error(err, errlen, CTR_EVERSION, "audit format version %u; this build reads %u",
                         h->version, CTR_AUDIT_FORMAT_VERSION);
    uint32_t hb = get32(p + 12);
    h->server_start_ns = get64(p + 16);
    h->created_ns = get64(p + 24);
    h->segment_index = get64(p + 32);
    h->first_seq = get64(p + 40);
    h->pid = get32(p + 48);
    h->durability = get32(p + 52);
    copy_field(h->host, p + 56, CTR_AUDIT_HOST_MAX);
    copy_field(h->version_str, p + 124, CTR_AUDIT_VERSION_MAX);
    if (get32(p + 156) != ctr_crc32c(0, p, 156))
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
        put64(p, bits);
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
 * returns the bytes written, or 0 if it would not fit in cap. */
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
    if (!out) {
        /* Sizing pass. */
        uint64_t size = head;
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
     * of out needs its own size checked. */
    if (head > cap)
        return 0;
    uint8_t *p = out, *end = out + cap;
    uint8_t flags = (uint8_t)((in->bit_exact ? FLAG_BIT_EXACT : 0) | (any_shared ? FLAG_SHARED : 0) |
                              (in->client_request_id ? FLAG_CLIENT_ID : 0));
    p[0] = REC_TYPE_SCORED;
    p[1] = (uint8_t)in->kernel_id;
    p[2] = flags;
    p[3] = (uint8_t)in->request_id_len;
    put32(p + 4, (uint32_t)n);
    put16(p + 8, (uint16_t)nd);
    put16(p + 10, (uint16_t)nc);
    put32(p + 12, 0);
    put64(p + 16, in->seq);
    put64(p + 24, in->t_received_ns);
    put64(p + 32, in->t_scored_ns);
    put64(p + 40, in->generation);
    memcpy(p + 48, in->digest, 32);
    p += CTR_AUDIT_FIXED_BYTES;
    memcpy(p, in->request_id, in->request_id_len);
    p += in->request_id_len;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &in->scores[i], 4);
        put32(p, bits);
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
    put32(p, CTR_AUDIT_RECORD_MAGIC);
    put32(p + 4, (uint32_t)plen);
    put32(p + 8, ctr_crc32c(0, p, 8));
    put32(p + 12, ctr_crc32c(0, p + CTR_AUDIT_FRAME_BYTES, plen));
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
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < 32; i++) {
        out[7 + 2 * i] = hex[digest[i] >> 4];
        out[8 + 2 * i] = hex[digest[i] & 15];
    }
    out[71] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int ctr_audit_digest_parse(const char *s, uint8_t digest[32])
{
    if (!strncmp(s, "sha256:", 7))
        s += 7;
    if (strlen(s) != 64)
        return CTR_EINVAL;
    for (int i = 0; i < 32; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return CTR_EINVAL;
        digest[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

/* ---- reader --------------------------------------------------------- */

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
        uint64_t bits = get64(p);
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
    if (p[0] != REC_TYPE_SCORED)
        return ctr_error(err, errlen, CTR_EFORMAT, "unknown record type %u", p[0]);
    uint8_t flags = p[2];
    if (flags & ~FLAGS_KNOWN)
        return ctr_error(err, errlen, CTR_EFORMAT, "unknown flags 0x%02x", flags);
    rec->kernel_id = p[1];
    rec->bit_exact = !!(flags & FLAG_BIT_EXACT);
    rec->client_request_id = !!(flags & FLAG_CLIENT_ID);
    size_t id_len = p[3];
    size_t n = get32(p + 4), nd = get16(p + 8), nc = get16(p + 10), cols = nd + nc;
    rec->seq = get64(p + 16);
    rec->t_received_ns = get64(p + 24);
    rec->t_scored_ns = get64(p + 32);
    rec->generation = get64(p + 40);
    memcpy(rec->digest, p + 48, 32);
    p += CTR_AUDIT_FIXED_BYTES;
    if (n < 1)
        return ctr_error(err, errlen, CTR_EFORMAT, "record holds no examples");
    if ((size_t)(end - p) < id_len || (size_t)(end - p - id_len) / 4 < n)
        return ctr_error(err, errlen, CTR_EFORMAT, "%zu examples and a %zu-byte id do not fit in %zu bytes",
                         n, id_len, len);
    memcpy(r->request_id, p, id_len);
    r->request_id[id_len] = '\0';
    p += id_len;
    if (grow((void **)&r->scores, &r->scores_cap, n, sizeof(float)))
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = get32(p + 4 * i);
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
        return ctr_error(err, errlen, CTR_EFORMAT, "%zu bytes left after the last value", (size_t)(end - p));
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
    ctr_audit_reader_t *r = calloc(1, sizeof *r);
    if (!r)
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    r->buf = buf;
    r->len = len;
    int rc = reader_init(r, err, errlen);
    if (rc) {
        ctr_audit_reader_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

int ctr_audit_reader_open(const char *path, ctr_audit_reader_t **out, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ctr_error(err, errlen, CTR_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return ctr_error(err, errlen, CTR_EIO, "%s: not a regular file", path);
    }
    size_t cap = (size_t)st.st_size, len = 0;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) {
        close(fd);
        return ctr_error(err, errlen, CTR_ENOMEM, "%s: out of memory for %zu bytes", path, cap);
    }
    /* The file may still grow (a live server) or shrink: read what is
     * there up to the size seen at open. */
    while (len < cap) {
        ssize_t k = read(fd, buf + len, cap - len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return ctr_error(err, errlen, CTR_EIO, "%s: read: %s", path, strerror(e));
        }
        if (k == 0)
            break;
        len += (size_t)k;
    }
    close(fd);
    ctr_audit_reader_t *r;
    int rc = ctr_audit_reader_open_mem(buf, len, &r, err, errlen);
    if (rc) {
        free(buf);
        return rc;
    }
    r->owned = buf;
    *out = r;
    return 0;
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
    if (get32(p) != CTR_AUDIT_RECORD_MAGIC || get32(p + 8) != ctr_crc32c(0, p, 8))
        return FR_BADHEADER;
    uint32_t len = get32(p + 4);
    if (len < CTR_AUDIT_FIXED_BYTES || len > CTR_AUDIT_MAX_PAYLOAD)
        return FR_BADHEADER;
    *plen = len;
    if (rem - CTR_AUDIT_FRAME_BYTES < len)
        return FR_TORN;
    return get32(p + 12) == ctr_crc32c(0, p + CTR_AUDIT_FRAME_BYTES, len) ? FR_GOOD : FR_BADPAYLOAD;
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
        if (rem >= 4 && get32(r->buf + pos) != CTR_AUDIT_RECORD_MAGIC && !all_zero(r->buf + pos, rem)) {
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
        if (get32(r->buf + q) != CTR_AUDIT_RECORD_MAGIC)
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
