/* CRC32C: the SSE4.2 crc32 instruction where the CPU has it, a bitwise
 * loop elsewhere. Headers are short, so no table is worth its cache lines. */
#include "crc32c.h"

#include <string.h>

#define CRC32C_POLY_REFLECTED 0x82f63b78U

static uint32_t crc32c_bitwise(uint32_t crc, const uint8_t *p, size_t len)
{
    while (len--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (CRC32C_POLY_REFLECTED & (0U - (crc & 1U)));
    }
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const uint8_t *p,
                                                               size_t len)
{
    uint64_t c = crc;

    for (; len >= 8; p += 8, len -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
    }
    crc = (uint32_t)c;
    for (; len; p++, len--)
        crc = __builtin_ia32_crc32qi(crc, *p);
    return crc;
}

static int have_sse42(void)
{
    return __builtin_cpu_supports("sse4.2");
}
#else
static uint32_t crc32c_sse42(uint32_t crc, const uint8_t *p, size_t len)
{
    return crc32c_bitwise(crc, p, len);
}

static int have_sse42(void)
{
    return 0;
}
#endif

uint32_t crc32c(uint32_t crc, const void *p, size_t len)
{
    crc = ~crc;
    crc = have_sse42() ? crc32c_sse42(crc, p, len) : crc32c_bitwise(crc, p, len);
    return ~crc;
}
