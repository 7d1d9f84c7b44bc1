/* http1.c - incremental HTTP/1.1 response parser (see http1.h). */
#include "http1.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

enum {
    S_HEAD = 0,      /* reading the status line and headers */
    S_BODY,          /* Content-Length or until close */
    S_CHUNK_SIZE,    /* a chunk-size line */
    S_CHUNK_DATA,
    S_CHUNK_CRLF,    /* the CRLF after chunk data */
    S_TRAILER,       /* trailer lines until an empty one */
    S_DONE,
};

void ctr__http1_reset(ctr__http1_t *p)
{
    p->state = S_HEAD;
    p->status = 0;
    p->keep_alive = 1;
    p->chunked = p->until_close = p->no_body = 0;
    p->body_left = p->body_bytes = p->total_bytes = 0;
    p->hdr_len = p->snippet_len = p->line_len = 0;
    p->line_overflow = 0;
    p->error = NULL;
}

int ctr__http1_idle(const ctr__http1_t *p)
{
    return p->state == S_HEAD && p->hdr_len == 0;
}

static int fail(ctr__http1_t *p, const char *why)
{
    p->error = why;
    return CTR__HTTP1_ERROR;
}

/* Does the comma-separated header value v[n] hold token tok? */
static int has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && !strncasecmp(v + s, tok, tl))
            return 1;
    }
    return 0;
}

/* Is tok the last token of v[n]? (Transfer-Encoding: gzip, chunked) */
static int last_token_is(const char *v, size_t n, const char *tok)
{
    size_t e = n;
    while (e > 0 && (v[e - 1] == ' ' || v[e - 1] == '\t'))
        e--;
    size_t s = e;
    while (s > 0 && v[s - 1] != ',')
        s--;
    while (s < e && (v[s] == ' ' || v[s] == '\t'))
        s++;
    return e - s == strlen(tok) && !strncasecmp(v + s, tok, e - s);
}

/* Parses the complete header block hdr[0..len) (ending in CRLF CRLF). */
static int parse_head(ctr__http1_t *p, size_t len)
{
    const char *h = p->hdr, *end = p->hdr + len;
    if (len < 12 || memcmp(h, "HTTP/1.", 7) || (h[7] != '0' && h[7] != '1') || h[8] != ' ')
        return fail(p, "bad status line");
    int minor = h[7] - '0';
    if (!isdigit((unsigned char)h[9]) || !isdigit((unsigned char)h[10]) ||
        !isdigit((unsigned char)h[11]) || (len > 12 && h[12] != ' ' && h[12] != '\r'))
        return fail(p, "bad status code");
    p->status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
    if (p->status < 100)
        return fail(p, "bad status code");
    const char *line = memchr(h, '\n', len);
    if (!line)
        return fail(p, "bad status line");
    line++;
    int have_cl = 0, te_chunked = 0, te_other = 0, conn_close = 0, conn_ka = 0;
    uint64_t cl = 0;
    while (line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            return fail(p, "bad header line");
        const char *le = eol;
        if (le > line && le[-1] == '\r')
            le--;
        if (le == line)
            break;                             /* the empty line */
        const char *colon = memchr(line, ':', (size_t)(le - line));
        if (!colon || colon == line)
            return fail(p, "bad header line");
        size_t nlen = (size_t)(colon - line);
        const char *v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
            v++;
        size_t vlen = (size_t)(le - v);
        if (nlen == 14 && !strncasecmp(line, "Content-Length", 14)) {
            uint64_t x = 0;
            size_t i = 0;
            if (!vlen)
                return fail(p, "bad Content-Length");
            for (; i < vlen && isdigit((unsigned char)v[i]); i++) {
                if (x > (UINT64_MAX - 9) / 10)
                    return fail(p, "bad Content-Length");
                x = x * 10 + (uint64_t)(v[i] - '0');
            }
            while (i < vlen && (v[i] == ' ' || v[i] == '\t'))
                i++;
            if (i != vlen || (have_cl && x != cl))
                return fail(p, "bad Content-Length");
            have_cl = 1;
            cl = x;
        } else if (nlen == 17 && !strncasecmp(line, "Transfer-Encoding", 17)) {
            if (last_token_is(v, vlen, "chunked"))
                te_chunked = 1;
            else if (vlen)
                te_other = 1;
        } else if (nlen == 10 && !strncasecmp(line, "Connection", 10)) {
            if (has_token(v, vlen, "close"))
                conn_close = 1;
            if (has_token(v, vlen, "keep-alive"))
                conn_ka = 1;
        }
        line = eol + 1;
    }
    p->keep_alive = minor == 1 ? !conn_close : (conn_ka && !conn_close);
    if ((p->status >= 100 && p->status < 200) || p->status == 204 || p->status == 304) {
        p->no_body = 1;
        return CTR__HTTP1_DONE;
    }
    if (te_chunked) {                          /* chunked wins over Content-Length */
        p->chunked = 1;
        p->state = S_CHUNK_SIZE;
        p->line_len = 0;
        return CTR__HTTP1_MORE;
    }
    if (te_other) {                            /* body ends at close */
        p->until_close = 1;
        p->keep_alive = 0;
        p->state = S_BODY;
        return CTR__HTTP1_MORE;
    }
    if (have_cl) {
        p->body_left = cl;
        p->state = S_BODY;
        return cl ? CTR__HTTP1_MORE : CTR__HTTP1_DONE;
    }
    p->until_close = 1;
    p->keep_alive = 0;
    p->state = S_BODY;
    return CTR__HTTP1_MORE;
}

static void keep_snippet(ctr__http1_t *p, const char *b, size_t n)
{
    size_t room = sizeof p->snippet - p->snippet_len;
    if (n > room)
        n = room;
    memcpy(p->snippet + p->snippet_len, b, n);
    p->snippet_len += n;
}

/* Appends b[n] to the line buffer up to LF; returns bytes used and sets
 * *complete when the LF was found. Over-long lines are remembered as such
 * (chunk extensions and trailers can be long; only the start matters). */
static size_t take_line(ctr__http1_t *p, const char *b, size_t n, int *complete)
{
    const char *lf = memchr(b, '\n', n);
    size_t take = lf ? (size_t)(lf - b) + 1 : n;
    size_t room = sizeof p->line - 1 - p->line_len;
    size_t copy = take < room ? take : room;
    if (take > room)
        p->line_overflow = 1;
    memcpy(p->line + p->line_len, b, copy);
    p->line_len += copy;
    *complete = lf != NULL;
    return take;
}

int ctr__http1_feed(ctr__http1_t *p, const char *buf, size_t n, size_t *used)
{
    size_t i = 0;
    int rc = CTR__HTTP1_MORE;
    while (i < n && rc == CTR__HTTP1_MORE) {
        switch (p->state) {
        case S_HEAD: {
            /* Copy up to the end of the header block, searching from a few
             * bytes back so a CRLFCRLF split across pieces is found. */
            size_t old = p->hdr_len;
            size_t room = sizeof p->hdr - old;
            size_t take = n - i < room ? n - i : room;
            memcpy(p->hdr + old, buf + i, take);
            size_t from = old > 3 ? old - 3 : 0;
            size_t end = 0;
            for (size_t k = from; k + 1 < old + take; k++) {
                if (p->hdr[k] == '\n' &&
                    (p->hdr[k + 1] == '\n' ||
                     (k + 2 < old + take && p->hdr[k + 1] == '\r' && p->hdr[k + 2] == '\n'))) {
                    end = k + (p->hdr[k + 1] == '\n' ? 2 : 3);
                    break;
                }
            }
            if (!end) {
                if (old + take >= sizeof p->hdr)
                    return *used = i, fail(p, "response headers over 8 KiB");
                p->hdr_len = old + take;
                i += take;
                break;
            }
            i += end - old;
            p->hdr_len = end;
            rc = parse_head(p, end);
            if (rc == CTR__HTTP1_DONE && p->status < 200) {
                /* 100 Continue and friends: the real response follows. */
                uint64_t tb = p->total_bytes + (end - old);
                ctr__http1_reset(p);
                p->total_bytes = tb;
                rc = CTR__HTTP1_MORE;
                continue;
            }
            p->total_bytes += end - old;
            continue;
        }
        case S_BODY: {
            size_t take = n - i;
            if (!p->until_close && take > p->body_left)
                take = (size_t)p->body_left;
            keep_snippet(p, buf + i, take);
            i += take;
            p->body_bytes += take;
            p->total_bytes += take;
            if (!p->until_close) {
                p->body_left -= take;
                if (!p->body_left)
                    rc = CTR__HTTP1_DONE;
            }
            continue;
        }
        case S_CHUNK_SIZE: {
            int complete;
            size_t t = take_line(p, buf + i, n - i, &complete);
            i += t;
            p->total_bytes += t;
            if (!complete)
                break;
            uint64_t sz = 0;
            size_t k = 0, digits = 0;
            while (k < p->line_len && isxdigit((unsigned char)p->line[k])) {
                if (sz >> 59)
                    return *used = i, fail(p, "bad chunk size");
                int c = p->line[k];
                sz = sz * 16 + (uint64_t)(isdigit(c) ? c - '0' : (tolower(c) - 'a' + 10));
                k++;
                digits++;
            }
            if (!digits || (k < p->line_len && p->line[k] != ';' && p->line[k] != '\r' &&
                            p->line[k] != '\n' && p->line[k] != ' ' && p->line[k] != '\t'))
                return *used = i, fail(p, "bad chunk size");
            p->line_len = 0;
            p->line_overflow = 0;
            if (sz == 0) {
                p->state = S_TRAILER;
            } else {
                p->body_left = sz;
                p->state = S_CHUNK_DATA;
            }
            continue;
        }
        case S_CHUNK_DATA: {
            size_t take = n - i;
            if (take > p->body_left)
                take = (size_t)p->body_left;
            keep_snippet(p, buf + i, take);
            i += take;
            p->body_bytes += take;
            p->total_bytes += take;
            p->body_left -= take;
            if (!p->body_left) {
                p->state = S_CHUNK_CRLF;
                p->line_len = 0;
            }
            continue;
        }
        case S_CHUNK_CRLF:
        case S_TRAILER: {
            int complete;
            size_t t = take_line(p, buf + i, n - i, &complete);
            i += t;
            p->total_bytes += t;
            if (!complete)
                break;
            int empty = !p->line_overflow &&
                        (p->line_len == 1 || (p->line_len == 2 && p->line[0] == '\r'));
            p->line_len = 0;
            p->line_overflow = 0;
            if (p->state == S_CHUNK_CRLF) {
                if (!empty)
                    return *used = i, fail(p, "chunk data longer than its size");
                p->state = S_CHUNK_SIZE;
            } else if (empty) {
                rc = CTR__HTTP1_DONE;
            }
            continue;
        }
        default:
            return *used = i, fail(p, "data after the response");
        }
    }
    if (rc == CTR__HTTP1_DONE)
        p->state = S_DONE;
    *used = i;
    return rc;
}

int ctr__http1_eof(ctr__http1_t *p)
{
    if (p->state == S_DONE)
        return CTR__HTTP1_DONE;
    if (p->state == S_BODY && p->until_close) {
        p->state = S_DONE;
        return CTR__HTTP1_DONE;
    }
    return fail(p, "connection closed mid-response");
}
