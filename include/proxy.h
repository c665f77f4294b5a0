/* PROXY protocol header encoding (v1 text, v2 binary), as specified in
 * HAProxy's doc/proxy-protocol.txt. Pure: no I/O, no allocation. */
#ifndef RINGRELAY_PROXY_H
#define RINGRELAY_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum proxy_version { PROXY_OFF, PROXY_V1, PROXY_V2 };

/* The longest header ringrelay writes: a v1 line is at most 107 bytes,
 * v2 TCP6 without TLVs is 52. */
#define PROXY_HDR_MAX 108

#define PROXY_V2_SIG "\r\n\r\n\0\r\nQUIT\n"
#define PROXY_V2_SIG_LEN 12
/* The signature, version and command, family, and the length that follows. */
#define PROXY_V2_FIXED_LEN 16

/* v2 TLV types (section 2.2 of the spec). */
enum proxy_tlv_type {
    PROXY_TLV_ALPN = 0x01,
    PROXY_TLV_AUTHORITY = 0x02,
    PROXY_TLV_CRC32C = 0x03,
    PROXY_TLV_NOOP = 0x04,
    PROXY_TLV_UNIQUE_ID = 0x05,
    PROXY_TLV_SSL = 0x20,
    PROXY_TLV_NETNS = 0x30,
};

/* Writes a v2 header for a stream from src to dst into buf. Both addresses
 * IPv4, or both IPv6 (an IPv4-mapped IPv6 pair is written as TCP4); any other
 * combination, or src == NULL, gives a LOCAL header. Returns the header
 * length, or -ENOSPC if cap is too small. */
int proxy_v2_encode(uint8_t *buf, size_t cap, const struct sockaddr *src,
                    const struct sockaddr *dst);

/* Same contract, v1 text ("PROXY TCP4 ...\r\n", or "PROXY UNKNOWN\r\n"). */
int proxy_v1_encode(uint8_t *buf, size_t cap, const struct sockaddr *src,
                    const struct sockaddr *dst);

/* Appends a TLV to the v2 header of *len bytes in buf, updating its length
 * field. Returns 0, or -ENOSPC if cap or the 16-bit length would overflow. */
int proxy_v2_add_tlv(uint8_t *buf, size_t cap, size_t *len, uint8_t type, const void *value,
                     size_t vlen);

/* Appends the CRC32C TLV, computed over the whole header as the spec says;
 * it must be the last TLV added. Returns 0 or -ENOSPC. */
int proxy_v2_add_crc32c(uint8_t *buf, size_t cap, size_t *len);

/* Dispatches on version; PROXY_OFF writes nothing and returns 0. */
int proxy_encode(enum proxy_version v, uint8_t *buf, size_t cap, const struct sockaddr *src,
                 const struct sockaddr *dst);

#endif
