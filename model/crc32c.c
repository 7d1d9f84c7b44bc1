/* crc32c.c - CRC32C, slicing-by-8 in software and SSE4.2's crc32
 * instruction in hardware, picked once at first use (see crc32c_int.h). */
#include "crc32c_int.h"

#include <string.h>

static uint32_t crc_table[8][256];

static void crc_table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

/* Slicing-by-8. */
uint32_t ctr__crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    static int ready;
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        crc_table_init();   /* idempotent: racing threads write the same values */
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    const uint8_t *p = buf;
    uint32_t c = ~crc;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint32_t lo = (uint32_t)w ^ c, hi = (uint32_t)(w >> 32);
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
            crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
            crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
            crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
    return ~c;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2")))
uint32_t ctr__crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint64_t c = ~crc;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = _mm_crc32_u8(c32, *p++);
    return ~c32;
}

int ctr__crc32c_hw_available(void)
{
    return __builtin_cpu_supports("sse4.2");
}
#else
uint32_t ctr__crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
    return ctr__crc32c_sw(crc, buf, len);
}

int ctr__crc32c_hw_available(void)
{
    return 0;
}
#endif

static int crc_mode; /* 0 unknown, 1 sw, 2 hw */

static int crc_pick(void)
{
    int m = __atomic_load_n(&crc_mode, __ATOMIC_RELAXED);
    if (!m) {
        m = ctr__crc32c_hw_available() ? 2 : 1;
        __atomic_store_n(&crc_mode, m, __ATOMIC_RELAXED);
    }
    return m;
}

uint32_t ctr__crc32c(uint32_t crc, const void *buf, size_t len)
{
    return crc_pick() == 2 ? ctr__crc32c_hw(crc, buf, len) : ctr__crc32c_sw(crc, buf, len);
}

const char *ctr__crc32c_impl(void)
{
    return crc_pick() == 2 ? "sse4.2" : "table";
}
