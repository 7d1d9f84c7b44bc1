/* audit_int.h - the audit log's byte layout, and what its codec
 * (audit_record.c) and reader (audit_read.c) share: the byte helpers, the
 * tags and flags, and structs that pin the on-disk sizes (see ctr/audit.h;
 * docs/AUDIT_LOG.md is the long form; checksums: crc32c_int.h).
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
 *     0   u8     record type (1: scored request, 2: shadow record)
 *     1   u8     kernel id (0 scalar, 1 avx2, 2 avx512, 3 blas)
 *     2   u8     flags: bit 0 kernel is bit-exact, bit 1 shared-column map
 *                present, bit 2 request id sent by the client
 *     3   u8     request id length L
 *     4   u32    examples N (>= 1)
 *     8   u16    dense features D
 *     10  u16    categorical columns C (one per row slot: ctr_model_slots)
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
 * bits (so never for -0.0). A categorical value (the raw text its
 * feature's mapping reads: an integer as decimal for `hash`, as lowercase
 * hex for `mod`) is one tag byte:
 *     0x00..0x7f  that many raw bytes follow (0..127)
 *     0x81..0xbf  lowercase hex text of 2k characters, k = tag & 0x3f:
 *                 k bytes follow, each two digits, high nibble first
 *     0xff        missing
 * Hex packing is used exactly when the value is 2..126 characters of
 * [0-9a-f] and of even length, so every value has one encoding.
 *
 * A shadow record (type 2: the same request scored by a shadow candidate
 * after the primary's response went out) is the payload above, its own
 * fields the candidate's, followed by a trailer of 48 + 4N bytes that ends
 * the payload:
 *
 *     0   u64    seq of the primary's record (0: it was not logged)
 *     8   u64    the primary's model generation
 *     16  u8[32] the primary's model digest
 *     48  N x f32 bits: the primary's scores
 *
 * A type-1 record has no trailer; a payload whose length is not exactly
 * its type's is corrupt. */
#ifndef CTR_AUDIT_INT_H
#define CTR_AUDIT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "ctr/audit.h"

/* Little-endian stores and loads, a byte at a time: any alignment, any
 * host byte order. */
static inline void ctr__put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void ctr__put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static inline void ctr__put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static inline uint16_t ctr__get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t ctr__get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t ctr__get64(const uint8_t *p) { return (uint64_t)ctr__get32(p) | ((uint64_t)ctr__get32(p + 4) << 32); }

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
#define REC_TYPE_SHADOW 2u
/* The shadow trailer's fixed part (primary seq, generation, digest); the
 * primary's N scores follow it. */
#define SHADOW_TRAILER_FIXED 48u
#define FLAG_BIT_EXACT 1u
#define FLAG_SHARED 2u
#define FLAG_CLIENT_ID 4u
#define FLAGS_KNOWN 7u

#define TAG_MISSING 0x80u
#define TAG_F64 0x81u
#define TAG_VARINT 0x82u
#define CAT_TAG_HEX 0x80u
#define CAT_TAG_MISSING 0xffu
#define CAT_HEX_MAX 63u  /* 0x81..0xbf: 1..63 packed bytes */

#endif
