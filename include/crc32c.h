/* CRC32C (Castagnoli), as the PROXY v2 CRC32C TLV uses it. Pure. */
#ifndef RINGRELAY_CRC32C_H
#define RINGRELAY_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues crc over len bytes at p; start with crc = 0. The result is the
 * finished value (pre- and post-inverted), ready to store big-endian. */
uint32_t crc32c(uint32_t crc, const void *p, size_t len);

#endif
