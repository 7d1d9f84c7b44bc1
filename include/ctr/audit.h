/* audit.h - the prediction audit log format: segment header, framed and
 * checksummed records, and a reader that classifies what it finds.
 *
 * An audit segment is one file: a fixed 160-byte header, then records
 * back to back. Every record is a 16-byte frame (magic, payload length,
 * CRC32C of those 8 bytes, CRC32C of the payload) and its payload: the
 * request's time, id, model digest, kernel, and every feature value as the
 * model consumed it, and every score's float32 bits. Checksums are CRC32C
 * (Castagnoli), computed inside libctr (model/crc32c.c). A shadow record
 * (type 2, ctr_audit_shadow_t below) is such a payload with a trailer
 * holding the primary's record seq, generation, digest and scores; a
 * reader from before type 2 reports it as CORRUPT. Byte layout,
 * field by field: docs/AUDIT_LOG.md and the comment block in
 * model/audit_int.h; the codec is model/audit_record.c, the reader
 * model/audit_read.c.
 *
 * The writer (server/audit_writer.c) encodes with ctr_audit_segment_encode,
 * ctr_audit_record_size and ctr_audit_record_encode; ctrtool reads with
 * ctr_audit_reader_*. The reader trusts nothing: every length and count is
 * checked against the bytes that are there before it is used, so a hostile
 * or damaged file yields CORRUPT or TORN events, never a crash or a
 * misread record. */
#ifndef CTR_AUDIT_H
#define CTR_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#define CTR_AUDIT_FORMAT_VERSION 1u
#define CTR_AUDIT_SEGMENT_MAGIC "CTRAUDIT"   /* 8 bytes, no NUL */
#define CTR_AUDIT_SEGMENT_HEADER_BYTES 160u
#define CTR_AUDIT_FRAME_BYTES 16u
#define CTR_AUDIT_RECORD_MAGIC 0x31524443u   /* "CDR1" little-endian */
#define CTR_AUDIT_FIXED_BYTES 80u            /* fixed part of a payload */
/* Largest payload a writer may produce and a reader accepts. */
#define CTR_AUDIT_MAX_PAYLOAD (64u << 20)
#define CTR_AUDIT_REQUEST_ID_MAX 255u
#define CTR_AUDIT_CAT_MISSING 0xffu          /* cat_len of a missing value */
#define CTR_AUDIT_CAT_MAX 127u               /* longest categorical value */
#define CTR_AUDIT_HOST_MAX 67u
#define CTR_AUDIT_VERSION_MAX 31u

/* ---- segment header ------------------------------------------------- */

typedef struct {
    uint32_t version;             /* CTR_AUDIT_FORMAT_VERSION */
    uint32_t durability;          /* 0 async, 1 write, 2 fsync (informative) */
    uint64_t server_start_ns;     /* CLOCK_REALTIME ns when ctrd started */
    uint64_t created_ns;          /* CLOCK_REALTIME ns when this file was opened */
    uint64_t segment_index;       /* 1, 2, ... within one server run */
    uint64_t first_seq;           /* seq of the first record this segment may hold */
    uint32_t pid;
    char host[CTR_AUDIT_HOST_MAX + 1];       /* NUL-terminated */
    char version_str[CTR_AUDIT_VERSION_MAX + 1]; /* ctrd version, NUL-terminated */
} ctr_audit_segment_t;

/* Writes the 160-byte header (longer host/version strings are cut). */
void ctr_audit_segment_encode(const ctr_audit_segment_t *h,
                              uint8_t out[CTR_AUDIT_SEGMENT_HEADER_BYTES]);
/* CTR_EFORMAT (not a segment: bad magic or size), CTR_EVERSION,
 * CTR_ECHECKSUM (header CRC; *h is filled all the same), else 0 with *h
 * filled. */
int ctr_audit_segment_decode(const void *buf, size_t len, ctr_audit_segment_t *h,
                             char *err, size_t errlen);

/* ---- records ------------------------------------------------------- */

/* What the writer logs for one scored request. Raw values follow
 * server/decode.h: dense as parsed (NaN = missing), categorical bytes at
 * cat_bytes + cat_off[k], cat_len[k] bytes, cat_len == CTR_AUDIT_CAT_MISSING
 * when missing (k = i * n_cat + j). n_cat counts categorical columns, one
 * per row slot of the model (ctr_model_slots: a bag of at most B values
 * has B columns, its unused ones missing); docs/AUDIT_LOG.md "Bags". */
/* A shadow record (type 2, docs/AUDIT_LOG.md "Shadow records"): a
 * request of PRIMARY's that ctrd also scored with a shadow candidate
 * after PRIMARY's response went out. The record's own fields (digest,
 * generation, kernel, scores) are the candidate's, its inputs the same
 * values the primary's record holds, so `ctrtool audit verify` replays it
 * like any record; this trailer names the primary's record and repeats
 * the primary's scores, so `ctrtool audit pd --shadow` compares the two
 * from this record alone. */
typedef struct {
    uint64_t primary_seq;         /* seq of the primary's record; 0 when it
                                     was not logged (async drop) */
    uint64_t primary_generation;
    uint8_t primary_digest[32];   /* raw SHA-256 */
    const float *primary_scores;  /* [n]: the bits the response printed */
} ctr_audit_shadow_t;

typedef struct {
    uint64_t seq;                 /* writer's record number (1, 2, ...) */
    uint64_t t_received_ns;       /* CLOCK_REALTIME: request arrived */
    uint64_t t_scored_ns;         /* CLOCK_REALTIME: its batch was scored */
    uint64_t generation;          /* server's model generation */
    uint8_t digest[32];           /* model digest: raw SHA-256 bytes */
    unsigned kernel_id;           /* ctr_kernel_id_t */
    int bit_exact;                /* the kernel promises bit-exact scores */
    int client_request_id;        /* the id came from the client */
    const char *request_id;
    size_t request_id_len;        /* <= CTR_AUDIT_REQUEST_ID_MAX */
    size_t n, n_dense, n_cat;     /* n >= 1; n_dense, n_cat (columns) <= 65535 */
    const double *dense_raw;
    const uint32_t *cat_off;
    const uint8_t *cat_len;
    const char *cat_bytes;
    const float *scores;          /* [n] */
    const ctr_audit_shadow_t *shadow; /* NULL: a scored request (type 1);
                                     else a shadow record (type 2) */
} ctr_audit_input_t;

/* Exact size in bytes (frame included) of the record for in, or 0 when
 * it cannot be logged (counts out of range, payload over
 * CTR_AUDIT_MAX_PAYLOAD). */
size_t ctr_audit_record_size(const ctr_audit_input_t *in);
/* Encodes the record into out, which holds size = ctr_audit_record_size()
 * bytes. Returns size, or 0 if size does not match. */
size_t ctr_audit_record_encode(const ctr_audit_input_t *in, void *out, size_t size);

/* A decoded record: a view into the reader's buffers, valid until the
 * reader's next call. Feature values through the accessors below. */
typedef struct {
    uint64_t offset;              /* file offset of the frame */
    uint32_t size;                /* frame + payload bytes */
    uint64_t seq;
    uint64_t t_received_ns, t_scored_ns;
    uint64_t generation;
    uint8_t digest[32];
    unsigned kernel_id;
    int bit_exact;
    int client_request_id;
    const char *request_id;       /* NUL-terminated copy */
    size_t request_id_len;
    size_t n, n_dense, n_cat;
    const float *scores;          /* [n] */
    unsigned type;                /* 1 scored request, 2 shadow record */
    /* type 2 only (else zero): the primary's record seq, generation,
     * digest and score bits ([n], unaligned-safe copy like scores). */
    uint64_t primary_seq, primary_generation;
    uint8_t primary_digest[32];
    const float *primary_scores;
    /* Internal to the accessors. */
    const uint32_t *col_;         /* per feature: shared flag | index */
    size_t dense_s_, cat_s_;      /* shared columns (stored first) */
    size_t dense_u_, cat_u_;      /* per-example (not shared) columns */
    const double *dense_;
    const uint32_t *cat_off_;
    const uint8_t *cat_len_;
    const uint8_t *bytes_;
} ctr_audit_record_t;

/* Example i's dense feature j as logged: NaN when missing. */
double ctr_audit_record_dense(const ctr_audit_record_t *r, size_t i, size_t j);
/* Example i's categorical column j (a row slot: feature f's columns start
 * at ctr_model_slot_of(def, f)): returns 1 and sets *bytes and *len when
 * present, 0 when missing or an empty bag slot. */
int ctr_audit_record_cat(const ctr_audit_record_t *r, size_t i, size_t j,
                         const char **bytes, size_t *len);

const char *ctr_audit_kernel_name(unsigned kernel_id);  /* "avx2", "?" */
/* "sha256:<64 hex>" into out (>= 72 bytes). */
void ctr_audit_digest_str(const uint8_t digest[32], char *out);
/* Parses "sha256:<64 hex>" (or the 64 hex digits alone). 0 or CTR_EINVAL. */
int ctr_audit_digest_parse(const char *s, uint8_t digest[32]);

/* ---- reader -------------------------------------------------------- */

typedef struct ctr_audit_reader ctr_audit_reader_t;

typedef enum {
    CTR_AUDIT_END = 0,            /* no more bytes */
    CTR_AUDIT_RECORD = 1,         /* a record that checks out: rec filled */
    CTR_AUDIT_CORRUPT = 2,        /* bytes in the middle that are not a good
                                     record (bad CRC, impossible length,
                                     undecodable payload): skipped */
    CTR_AUDIT_TORN = 3,           /* the final record is incomplete (a crash
                                     mid-write): skipped; always last */
} ctr_audit_event_t;

/* Where an event lies and why, for CORRUPT and TORN. */
typedef struct {
    uint64_t offset;
    uint64_t bytes;
    char why[128];
} ctr_audit_span_t;

/* Reads the whole file into memory (no mmap: a file truncated under us
 * must not SIGBUS) and checks its header. A file cut inside its header (a
 * crash right after the segment was created: the bytes there match the
 * start of the magic) opens with a zeroed segment, and its one event is
 * TORN. A header with a bad CRC is reported by
 * ctr_audit_reader_header_status() and records are still read. On success
 * *out is owned by the caller (ctr_audit_reader_close); on failure it is
 * NULL and err says why. */
int ctr_audit_reader_open(const char *path, ctr_audit_reader_t **out,
                          char *err, size_t errlen);
/* Same over a caller's buffer, which must outlive the reader (tests, fuzz). */
int ctr_audit_reader_open_mem(const void *buf, size_t len, ctr_audit_reader_t **out,
                              char *err, size_t errlen);
void ctr_audit_reader_close(ctr_audit_reader_t *r);

const ctr_audit_segment_t *ctr_audit_reader_segment(const ctr_audit_reader_t *r);
/* 0, or CTR_ECHECKSUM when the header CRC failed (fields may be wrong). */
int ctr_audit_reader_header_status(const ctr_audit_reader_t *r);

/* The next event; rec is filled for RECORD, span for CORRUPT and TORN. */
ctr_audit_event_t ctr_audit_reader_next(ctr_audit_reader_t *r, ctr_audit_record_t *rec,
                                        ctr_audit_span_t *span);

/* Decodes one payload (what follows a frame) on its own: 0 or CTR_EFORMAT
 * with err filled. Used by the reader; exposed for tests and fuzzing. */
int ctr_audit_reader_decode(ctr_audit_reader_t *r, const uint8_t *payload, size_t len,
                            ctr_audit_record_t *rec, char *err, size_t errlen);

#endif
