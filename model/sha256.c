/* sha256.c - SHA-256 through libcrypto's EVP interface, and hex text (see
 * sha256.h). */
#include "ctr/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <string.h>
#include <unistd.h>

#include "ctr/common.h"

int ctr_sha256(const void *data, size_t n, uint8_t out[CTR_SHA256_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(ctx, data, n) && EVP_DigestFinal_ex(ctx, out, NULL);
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : CTR_ENOMEM;
}

int ctr_sha256_file(const char *path, char hex[CTR_SHA256_HEX_LEN + 1],
                    char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ctr_error(err, errlen, CTR_EIO, "%s: %s", path, strerror(errno));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char buf[1 << 16], dig[CTR_SHA256_LEN];
    int rc = 0;
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "sha256: cannot initialise");
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = ctr_error(err, errlen, CTR_EIO, "%s: read: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        if (!EVP_DigestUpdate(md, buf, (size_t)n)) {
            rc = ctr_error(err, errlen, CTR_ENOMEM, "sha256: update failed");
            goto out;
        }
    }
    if (!EVP_DigestFinal_ex(md, dig, NULL)) {
        rc = ctr_error(err, errlen, CTR_ENOMEM, "sha256: final failed");
        goto out;
    }
    ctr_hex_encode(dig, CTR_SHA256_LEN, hex);
out:
    EVP_MD_CTX_free(md);
    close(fd);
    return rc;
}

void ctr_hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c, int lowercase_only)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (!lowercase_only && c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int ctr_hex_decode(const char *s, size_t n, uint8_t *out, int lowercase_only)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i], lowercase_only), lo = hi < 0 ? -1 : hexval(s[2 * i + 1], lowercase_only);
        if (hi < 0 || lo < 0)
            return CTR_EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}
