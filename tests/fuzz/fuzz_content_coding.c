/* fuzz_content_coding.c - libFuzzer target for the request body
 * decompression of v2 (server/content_coding.c, Content-Encoding gzip and
 * deflate) and its header parsers.
 *
 * Input: byte 0 picks the coding (bit 0: gzip or deflate), byte 1 the
 * bound (max = 1 + byte1 * 256 bytes, so a bomb is cheap to find), the rest
 * is the compressed body. Checks: the inflater never returns more than the
 * bound, its output is '\0'-terminated, an error leaves no output; an
 * accepted body gzipped again (ctr__coding_gzip) inflates back to the same
 * bytes. The raw input, as text, also goes through ctr__coding_parse and
 * ctr__coding_accepts_gzip (no crash, a known answer).
 *
 * Seeds: tests/fuzz/corpus/content_coding/ (valid gzip and zlib bodies, a
 * bomb, truncated and trailing data); replayed under ASan+UBSan by
 * test_fuzz_replay.sh in make test. Build and run: make fuzz. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/content_coding.h"
#include "ctr/common.h"
#include "fuzz.h"

static void fail(const char *why)
{
    fprintf(stderr, "fuzz_content_coding: %s\n", why);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    int enc = ctr__coding_parse(text);
    if (enc < -1 || enc > CTR__ENC_DEFLATE)
        fail("ctr__coding_parse out of range");
    int acc = ctr__coding_accepts_gzip(text);
    if (acc != 0 && acc != 1)
        fail("ctr__coding_accepts_gzip not 0 or 1");
    free(text);

    if (size < 2)
        return 0;
    enc = (data[0] & 1) ? CTR__ENC_GZIP : CTR__ENC_DEFLATE;
    uint64_t max = 1 + (uint64_t)data[1] * 256;
    char *out = (char *)1, msg[200];
    size_t n = 12345;
    int rc = ctr__coding_inflate(enc, (const char *)data + 2, size - 2, max, &out, &n, msg, sizeof msg);
    if (rc) {
        if (out || n)
            fail("an error left output");
        if (rc != CTR_ETOOBIG && rc != CTR_EINVAL && rc != CTR_ENOMEM)
            fail("unexpected error code");
        if (rc != CTR_ENOMEM && !msg[0])
            fail("an error without a message");
        return 0;
    }
    if (!out || n > max)
        fail("output over the bound");
    if (out[n] != '\0')
        fail("output not terminated");
    size_t zn = n;
    char *z = ctr__coding_gzip(out, &zn);
    if (z) {
        char *back;
        size_t bn;
        if (ctr__coding_inflate(CTR__ENC_GZIP, z, zn, max, &back, &bn, msg, sizeof msg))
            fail("our own gzip does not inflate");
        if (bn != n || memcmp(back, out, n))
            fail("gzip round trip changed the bytes");
        free(back);
        free(z);
    }
    free(out);
    return 0;
}
