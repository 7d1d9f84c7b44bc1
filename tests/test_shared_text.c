/* test_shared_text.c - libctr's shared text helpers: the JSON string
 * escaper (json_text.h: both invalid-UTF-8 modes, and snprintf-like
 * cutting, which ctrd's fixed log buffers rely on), hex and SHA-256
 * (sha256.h), and splitmix64 (rng.h) against its published outputs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctr/common.h"
#include "ctr/json_text.h"
#include "ctr/rng.h"
#include "ctr/sha256.h"
#include "testutil.h"

/* Escapes s with room for everything; returns the text (static). */
static const char *esc(const char *s, size_t n, ctr_json_invalid_t mode)
{
    static char out[CTR_JSON_ESCAPE_MAX(64) + 1];
    size_t written = 0;
    size_t len = ctr_json_escape(out, sizeof out - 1, s, n, mode, &written);
    CHECK_EQ_SIZE(written, len);
    out[len] = '\0';
    return out;
}

static void test_json_escape(void)
{
    CHECK_EQ_STR(esc("abc", 3, CTR_JSON_INVALID_REPLACE), "\"abc\"");
    CHECK_EQ_STR(esc("", 0, CTR_JSON_INVALID_REPLACE), "\"\"");
    CHECK_EQ_STR(esc("a\"b\\c", 5, CTR_JSON_INVALID_REPLACE), "\"a\\\"b\\\\c\"");
    CHECK_EQ_STR(esc("\n\r\t\x01\x1f", 5, CTR_JSON_INVALID_REPLACE), "\"\\n\\r\\t\\u0001\\u001f\"");
    CHECK_EQ_STR(esc("a\0b", 3, CTR_JSON_INVALID_REPLACE), "\"a\\u0000b\"");
    CHECK_EQ_STR(esc("\x7f", 1, CTR_JSON_INVALID_REPLACE), "\"\x7f\"");
    /* Valid UTF-8 passes as it is in both modes. */
    CHECK_EQ_STR(esc("\xc3\xa9\xe2\x82\xac", 5, CTR_JSON_INVALID_REPLACE), "\"\xc3\xa9\xe2\x82\xac\"");
    CHECK_EQ_STR(esc("\xc3\xa9", 2, CTR_JSON_INVALID_BYTES), "\"\xc3\xa9\"");
    /* Invalid: U+FFFD per bad byte, or every high byte as \u00XX. */
    CHECK_EQ_STR(esc("a\xff\xc3\xa9", 4, CTR_JSON_INVALID_REPLACE), "\"a\\ufffd\xc3\xa9\"");
    CHECK_EQ_STR(esc("a\xff\xc3\xa9", 4, CTR_JSON_INVALID_BYTES), "\"a\\u00ff\\u00c3\\u00a9\"");
    CHECK_EQ_STR(esc("\xed\xa0\x80", 3, CTR_JSON_INVALID_REPLACE), "\"\\ufffd\\ufffd\\ufffd\"");
    CHECK_EQ_STR(esc("\xc0\xaf", 2, CTR_JSON_INVALID_BYTES), "\"\\u00c0\\u00af\"");
    CHECK_EQ_SIZE(ctr_utf8_len((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4);
    CHECK_EQ_SIZE(ctr_utf8_len((const unsigned char *)"\xf0\x9f\x98", 3), 0);
    CHECK_EQ_SIZE(ctr_utf8_len((const unsigned char *)"\xf4\x90\x80\x80", 4), 0);
}

/* Cut output: like snprintf, whole escapes only, never past cap, and the
 * written count is what is really there - after a cut, later shorter
 * pieces must not land (a fixed log buffer appends right after them). */
static void test_json_escape_cut(void)
{
    const char *s = "ab\"cd\nefghijklmnopqrstuvwxyz";
    size_t n = strlen(s);
    char full[128];
    size_t len = ctr_json_escape(full, sizeof full, s, n, CTR_JSON_INVALID_REPLACE, NULL);
    for (size_t cap = 0; cap <= len; cap++) {
        char out[128];
        memset(out, '#', sizeof out);
        size_t written = 99;
        size_t need = ctr_json_escape(out, cap, s, n, CTR_JSON_INVALID_REPLACE, &written);
        CHECK_EQ_SIZE(need, len);
        CHECKF(written <= cap, "cap %zu: wrote %zu", cap, written);
        CHECKF(!memcmp(out, full, written), "cap %zu: a cut output is a prefix of the full one", cap);
        CHECKF(out[cap] == '#' || cap == sizeof out, "cap %zu: nothing past cap", cap);
        if (cap == len)
            CHECK_EQ_SIZE(written, len);
    }
    /* "\"ab" then the 2-byte escape of '"' does not fit in 4: the cut is
     * at 3 and the later one-byte pieces must not land after it. */
    char out[8];
    size_t written = 0;
    ctr_json_escape(out, 4, s, n, CTR_JSON_INVALID_REPLACE, &written);
    CHECK_EQ_SIZE(written, 3);
}

static void test_hex_sha256(void)
{
    uint8_t md[CTR_SHA256_LEN];
    char hex[CTR_SHA256_HEX_LEN + 1];
    CHECK_EQ_INT(ctr_sha256("abc", 3, md), 0);
    ctr_hex_encode(md, sizeof md, hex);
    CHECK_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    uint8_t back[CTR_SHA256_LEN];
    CHECK_EQ_INT(ctr_hex_decode(hex, sizeof back, back, 1), 0);
    CHECK(!memcmp(back, md, sizeof md));
    CHECK_EQ_INT(ctr_hex_decode("AB", 1, back, 1), CTR_EINVAL);
    CHECK_EQ_INT(ctr_hex_decode("AB", 1, back, 0), 0);
    CHECK_EQ_UINT(back[0], 0xab);
    CHECK_EQ_INT(ctr_hex_decode("0g", 1, back, 0), CTR_EINVAL);

    char path[] = "/tmp/ctr-sha256-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK(write(fd, "abc", 3) == 3);
        close(fd);
        char err[256];
        CHECK_EQ_INT(ctr_sha256_file(path, hex, err, sizeof err), 0);
        CHECK_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        unlink(path);
        CHECK_EQ_INT(ctr_sha256_file(path, hex, err, sizeof err), CTR_EIO);
        CHECKF(strstr(err, path) != NULL, "the error names the file: %s", err);
    }
}

/* splitmix64 from seed 1234567: the reference outputs of Vigna's
 * splitmix64.c, so every copy that moved onto rng.h kept its numbers. */
static void test_splitmix64(void)
{
    uint64_t s = 1234567;
    static const uint64_t want[] = {6457827717110365317ull, 3203168211198807973ull,
                                    9817491932198370423ull, 4593380528125082431ull,
                                    16408922859458223821ull};
    for (size_t i = 0; i < CTR_ARRAY_LEN(want); i++)
        CHECK_EQ_UINT(ctr_splitmix64_next(&s), want[i]);
    CHECK_EQ_UINT(ctr_splitmix64(1234567), want[0]);
    CHECK_EQ_UINT(ctr_mix64(1234567 + CTR_SPLITMIX64_GAMMA), want[0]);
}

int main(void)
{
    test_json_escape();
    test_json_escape_cut();
    test_hex_sha256();
    test_splitmix64();
    return test_main_end();
}
