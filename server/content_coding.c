/* content_coding.c - HTTP content codings on memory (see content_coding.h). */
#include "content_coding.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "ctr/common.h"

/* v is token, case-insensitive, with spaces or tabs around it. */
static int value_is(const char *v, const char *token)
{
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(token);
    if (strncasecmp(v, token, n))
        return 0;
    v += n;
    while (*v == ' ' || *v == '\t')
        v++;
    return *v == '\0';
}

int ctr__coding_parse(const char *ce)
{
    if (!ce || value_is(ce, "") || value_is(ce, "identity"))
        return CTR__ENC_IDENTITY;
    if (value_is(ce, "gzip") || value_is(ce, "x-gzip"))
        return CTR__ENC_GZIP;
    if (value_is(ce, "deflate"))
        return CTR__ENC_DEFLATE;
    return -1;
}

int ctr__coding_accepts_gzip(const char *ae)
{
    if (!ae)
        return 0;
    const char *p = ae;
    int gzip = -1, star = -1;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *tok = p;
        while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
            p++;
        size_t tl = (size_t)(p - tok);
        int q0 = 0;
        /* Parameters up to the next ',': only q matters (q=0: refused). */
        while (*p && *p != ',') {
            if ((*p == 'q' || *p == 'Q') && (p[-1] == ';' || p[-1] == ' ' || p[-1] == '\t')) {
                const char *q = p + 1;
                while (*q == ' ' || *q == '\t')
                    q++;
                if (*q == '=') {
                    q++;
                    while (*q == ' ' || *q == '\t')
                        q++;
                    /* qvalue: "0", "0.", "0.0", ... up to three digits */
                    q0 = q[0] == '0';
                    for (int i = 2; q0 && q[1] == '.' && i < 5 && q[i] >= '0' && q[i] <= '9'; i++)
                        q0 = q[i] == '0';
                }
            }
            p++;
        }
        if (tl == 4 && !strncasecmp(tok, "gzip", 4))
            gzip = !q0;
        else if (tl == 1 && *tok == '*')
            star = !q0;
    }
    /* "gzip" named decides; "*" covers it only when it is not named. */
    return gzip >= 0 ? gzip : star > 0;
}

int ctr__coding_inflate(int enc, const char *in, size_t len, uint64_t max,
                        char **out_p, size_t *out_len, char *msg, size_t msglen)
{
    const char *what = enc == CTR__ENC_GZIP ? "gzip" : "deflate";
    *out_p = NULL;
    *out_len = 0;
    if (msglen)
        msg[0] = '\0';
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, enc == CTR__ENC_GZIP ? 16 + MAX_WBITS : MAX_WBITS) != Z_OK)
        return CTR_ENOMEM;
    /* Room for max + 1 bytes and the '\0': one byte more than allowed
     * tells a body over the limit from one exactly at it. */
    uint64_t cap_max = max + 2;
    uint64_t cap = (uint64_t)len * 4 + 4096;
    if (cap > cap_max)
        cap = cap_max;
    char *out = malloc((size_t)cap);
    int rc = 0, zr = Z_OK;
    size_t in_off = 0;
    if (!out) {
        rc = CTR_ENOMEM;
        goto done;
    }
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)(cap - 1);
    for (;;) {
        if (z.avail_in == 0 && in_off < len) {
            size_t n = len - in_off < (1u << 30) ? len - in_off : (1u << 30);
            z.next_in = (Bytef *)(uintptr_t)(in + in_off);
            z.avail_in = (uInt)n;
            in_off += n;
        }
        zr = inflate(&z, Z_NO_FLUSH);
        if (zr == Z_STREAM_END || z.total_out > max)
            break;
        if (zr == Z_NEED_DICT || zr == Z_DATA_ERROR || zr == Z_MEM_ERROR || zr == Z_STREAM_ERROR)
            break;
        if (z.avail_out == 0) {
            uint64_t ncap = cap * 2 > cap_max ? cap_max : cap * 2;
            char *p = ncap > cap ? realloc(out, (size_t)ncap) : NULL;
            if (!p) {
                rc = CTR_ENOMEM;
                goto done;
            }
            out = p;
            z.next_out = (Bytef *)(out + z.total_out);
            z.avail_out = (uInt)(ncap - 1 - z.total_out);
            cap = ncap;
        } else if (z.avail_in == 0 && in_off == len) {
            break;     /* the input ended before the stream did */
        }
    }
    if (z.total_out > max) {
        rc = CTR_ETOOBIG;
        snprintf(msg, msglen, "the %s body decompresses to over %llu bytes (--max-body-bytes)", what,
                 (unsigned long long)max);
    } else if (zr == Z_MEM_ERROR) {
        rc = CTR_ENOMEM;
    } else if (zr != Z_STREAM_END) {
        rc = CTR_EINVAL;
        snprintf(msg, msglen, "the body is not valid %s data (Content-Encoding: %s)%s%s", what, what,
                 z.msg ? ": " : "", z.msg ? z.msg : "");
    } else if (z.avail_in || in_off < len) {
        rc = CTR_EINVAL;
        snprintf(msg, msglen, "bytes after the end of the %s data", what);
    }
done:
    if (rc) {
        free(out);
    } else {
        out[z.total_out] = '\0';
        *out_p = out;
        *out_len = z.total_out;
    }
    inflateEnd(&z);
    return rc;
}

char *ctr__coding_gzip(const char *in, size_t *len)
{
    if (*len > UINT32_MAX)
        return NULL;
    z_stream z;
    memset(&z, 0, sizeof z);
    /* Level 1 and a 4 KiB window: cheap, and JSON of scores compresses
     * well with it anyway. */
    if (deflateInit2(&z, 1, Z_DEFLATED, 16 + 12, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    uLong cap = deflateBound(&z, (uLong)*len);
    char *out = malloc(cap);
    if (out) {
        z.next_in = (Bytef *)(uintptr_t)in;
        z.avail_in = (uInt)*len;
        z.next_out = (Bytef *)out;
        z.avail_out = (uInt)cap;
        if (deflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out < *len) {
            *len = z.total_out;
        } else {
            free(out);
            out = NULL;
        }
    }
    deflateEnd(&z);
    return out;
}
