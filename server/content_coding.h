/* content_coding.h - HTTP content codings on memory (content_coding.c):
 * parsing Content-Encoding and Accept-Encoding, decompressing a request
 * body within a bound (gzip, and "deflate", which HTTP defines as the zlib
 * format), gzipping a response body. zlib does the work; this module only
 * bounds it. No network code: http.c calls these. */
#ifndef CTR_SERVER_CONTENT_CODING_H
#define CTR_SERVER_CONTENT_CODING_H

#include <stddef.h>
#include <stdint.h>

enum {
    CTR__ENC_IDENTITY = 0,
    CTR__ENC_GZIP = 1,             /* "gzip", "x-gzip" */
    CTR__ENC_DEFLATE = 2,          /* "deflate": the zlib format (RFC 9110 8.4.1.2) */
};

/* The CTR__ENC_* of a Content-Encoding value (case-insensitive, spaces
 * around it allowed; NULL, "" and "identity" are CTR__ENC_IDENTITY), -1
 * for any other, a list included. */
int ctr__coding_parse(const char *content_encoding);

/* 1 when an Accept-Encoding value takes gzip: "gzip" without q=0, or,
 * when gzip is not named, "*" without q=0. */
int ctr__coding_accepts_gzip(const char *accept_encoding);

/* Decompresses in[0..len) (enc CTR__ENC_GZIP or CTR__ENC_DEFLATE) into a
 * new heap block *out of *out_len bytes plus a '\0', at most max bytes:
 * zlib never writes more than max + 1 bytes, so a decompression bomb costs
 * at most that. Returns 0; CTR_ETOOBIG (over max), CTR_EINVAL (corrupt,
 * truncated, bytes after the end) with a message in msg; or CTR_ENOMEM.
 * *out is NULL on error. */
int ctr__coding_inflate(int enc, const char *in, size_t len, uint64_t max,
                        char **out, size_t *out_len, char *msg, size_t msglen);

/* in[0..*len) gzipped (level 1) into a new heap block, *len updated; NULL
 * when that failed or would not be smaller (send the original then). */
char *ctr__coding_gzip(const char *in, size_t *len);

#endif
