/* http1.h - incremental HTTP/1.1 response parser for ctrload.
 *
 * Bytes are fed as they arrive, in pieces of any size. The parser keeps
 * the header block (up to CTR__HTTP1_MAX_HEADER bytes) and the first
 * CTR__HTTP1_SNIPPET bytes of the body (shown in reports for error
 * answers); the rest of the body is counted and dropped. Bodies are
 * delimited by Content-Length, by chunked transfer coding (chunk
 * extensions and trailers are skipped), or, without either, by the server
 * closing the connection. 1xx interim responses are skipped; 204 and 304
 * have no body. A response is keep-alive unless it says "Connection:
 * close" (HTTP/1.1) or lacks "Connection: keep-alive" (HTTP/1.0).
 *
 * Anything malformed (bad status line, bad or conflicting Content-Length,
 * bad chunk size, over-long headers) is an error with a short reason. */
#ifndef CTR_LOADTEST_HTTP1_H
#define CTR_LOADTEST_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#define CTR__HTTP1_MAX_HEADER 8192
#define CTR__HTTP1_SNIPPET 200

enum {
    CTR__HTTP1_MORE = 0,     /* need more bytes */
    CTR__HTTP1_DONE = 1,     /* one complete (final) response */
    CTR__HTTP1_ERROR = -1,   /* malformed: see error */
};

typedef struct {
    int state;
    int status;              /* valid once the headers are parsed */
    int keep_alive;
    int chunked, until_close, no_body;
    uint64_t body_left;      /* Content-Length or current chunk */
    uint64_t body_bytes;     /* body bytes seen so far */
    uint64_t total_bytes;    /* every byte consumed, headers included */
    size_t hdr_len;
    size_t snippet_len;
    size_t line_len;         /* chunk-size / trailer line being read */
    int line_overflow;
    const char *error;       /* static text when CTR__HTTP1_ERROR */
    char line[64];
    char snippet[CTR__HTTP1_SNIPPET];
    char hdr[CTR__HTTP1_MAX_HEADER];
} ctr__http1_t;

/* Prepares p for the next response. */
void ctr__http1_reset(ctr__http1_t *p);
/* Consumes bytes from buf[n]; *used tells how many (fewer than n only on
 * DONE or ERROR). Returns CTR__HTTP1_MORE, _DONE or _ERROR. */
int ctr__http1_feed(ctr__http1_t *p, const char *buf, size_t n, size_t *used);
/* The connection reached end of file: DONE if the body was delimited by
 * the close, else ERROR (a response cut short). */
int ctr__http1_eof(ctr__http1_t *p);
/* 1 if nothing of a response has been received yet. */
int ctr__http1_idle(const ctr__http1_t *p);

#endif
