/* sha256.h - SHA-256 (libcrypto) and lowercase hex: model tensor checksums,
 * model digests, training-data provenance, audit digests. */
#ifndef CTR_SHA256_H
#define CTR_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define CTR_SHA256_LEN 32
#define CTR_SHA256_HEX_LEN 64

/* Hash of n bytes into out. Returns 0 or CTR_ENOMEM (libcrypto failed). */
int ctr_sha256(const void *data, size_t n, uint8_t out[CTR_SHA256_LEN]);

/* Hash of a whole file, as 64 lowercase hex digits and a NUL. Returns 0,
 * CTR_EIO (err names the path and errno) or CTR_ENOMEM. */
int ctr_sha256_file(const char *path, char hex[CTR_SHA256_HEX_LEN + 1],
                    char *err, size_t errlen);

/* n bytes as 2n lowercase hex digits and a NUL into out (2n + 1 bytes). */
void ctr_hex_encode(const uint8_t *in, size_t n, char *out);

/* 2n hex digits from s into n bytes. Upper case is refused when
 * lowercase_only (canonical text such as the model header, where "AB" and
 * "ab" must not both spell one file). Returns 0, or CTR_EINVAL on a
 * character that is not a hex digit. */
int ctr_hex_decode(const char *s, size_t n, uint8_t *out, int lowercase_only);

#endif
