/* PROXY protocol v1/v2 header encoder. */
#include "proxy.h"

#include "addr.h"
#include "crc32c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define V2_VERSION_PROXY 0x21
#define V2_VERSION_LOCAL 0x20
#define V2_FAM_TCP4 0x11
#define V2_FAM_TCP6 0x21

/* Brings src and dst to one family: IPv4 when both are IPv4 or IPv4-mapped.
 * Returns AF_INET, AF_INET6, or AF_UNSPEC when they cannot be expressed. */
static int normalise_pair(const struct sockaddr *src, const struct sockaddr *dst,
                          union sockaddr_inet *s, union sockaddr_inet *d)
{
    if (!src || !dst)
        return AF_UNSPEC;
    if ((src->sa_family != AF_INET && src->sa_family != AF_INET6) ||
        (dst->sa_family != AF_INET && dst->sa_family != AF_INET6))
        return AF_UNSPEC;
    memcpy(s, src, addr_len(src));
    memcpy(d, dst, addr_len(dst));
    addr_unmap_v4(s);
    addr_unmap_v4(d);
    if (s->sa.sa_family != d->sa.sa_family)
        return AF_UNSPEC;
    return s->sa.sa_family;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

int proxy_v2_encode(uint8_t *buf, size_t cap, const struct sockaddr *src,
                    const struct sockaddr *dst)
{
    union sockaddr_inet s, d;
    int fam = normalise_pair(src, dst, &s, &d);
    uint16_t alen = fam == AF_INET ? 12 : fam == AF_INET6 ? 36 : 0;
    uint8_t *p = buf + PROXY_V2_FIXED_LEN;

    if (cap < (size_t)PROXY_V2_FIXED_LEN + alen)
        return -ENOSPC;
    memcpy(buf, PROXY_V2_SIG, PROXY_V2_SIG_LEN); // NOLINT(bugprone-not-null-terminated-result)
    buf[12] = fam == AF_UNSPEC ? V2_VERSION_LOCAL : V2_VERSION_PROXY;
    buf[13] = fam == AF_INET ? V2_FAM_TCP4 : fam == AF_INET6 ? V2_FAM_TCP6 : 0;
    put16(buf + 14, alen);
    if (fam == AF_INET) {
        memcpy(p, &s.in.sin_addr, 4);
        memcpy(p + 4, &d.in.sin_addr, 4);
        memcpy(p + 8, &s.in.sin_port, 2);
        memcpy(p + 10, &d.in.sin_port, 2);
    } else if (fam == AF_INET6) {
        memcpy(p, &s.in6.sin6_addr, 16);
        memcpy(p + 16, &d.in6.sin6_addr, 16);
        memcpy(p + 32, &s.in6.sin6_port, 2);
        memcpy(p + 34, &d.in6.sin6_port, 2);
    }
    return PROXY_V2_FIXED_LEN + alen;
}

int proxy_v1_encode(uint8_t *buf, size_t cap, const struct sockaddr *src,
                    const struct sockaddr *dst)
{
    char sh[INET6_ADDRSTRLEN], dh[INET6_ADDRSTRLEN];
    union sockaddr_inet s, d;
    int fam = normalise_pair(src, dst, &s, &d);
    int n;

    if (fam == AF_INET) {
        inet_ntop(AF_INET, &s.in.sin_addr, sh, sizeof(sh));
        inet_ntop(AF_INET, &d.in.sin_addr, dh, sizeof(dh));
        n = snprintf((char *)buf, cap, "PROXY TCP4 %s %s %u %u\r\n", sh, dh, ntohs(s.in.sin_port),
                     ntohs(d.in.sin_port));
    } else if (fam == AF_INET6) {
        inet_ntop(AF_INET6, &s.in6.sin6_addr, sh, sizeof(sh));
        inet_ntop(AF_INET6, &d.in6.sin6_addr, dh, sizeof(dh));
        n = snprintf((char *)buf, cap, "PROXY TCP6 %s %s %u %u\r\n", sh, dh, ntohs(s.in6.sin6_port),
                     ntohs(d.in6.sin6_port));
    } else {
        n = snprintf((char *)buf, cap, "PROXY UNKNOWN\r\n");
    }
    /* snprintf NUL-terminates; the header itself excludes the NUL. */
    if (n < 0 || (size_t)n >= cap)
        return -ENOSPC;
    return n;
}

int proxy_v2_add_tlv(uint8_t *buf, size_t cap, size_t *len, uint8_t type, const void *value,
                     size_t vlen)
{
    size_t body = *len - PROXY_V2_FIXED_LEN + 3 + vlen;

    if (*len + 3 + vlen > cap || body > 0xffff || vlen > 0xffff)
        return -ENOSPC;
    buf[*len] = type;
    put16(buf + *len + 1, (uint16_t)vlen);
    if (vlen)
        memcpy(buf + *len + 3, value, vlen);
    *len += 3 + vlen;
    put16(buf + 14, (uint16_t)body);
    return 0;
}

int proxy_v2_add_crc32c(uint8_t *buf, size_t cap, size_t *len)
{
    static const uint8_t zero[4];
    uint32_t crc;
    int ret = proxy_v2_add_tlv(buf, cap, len, PROXY_TLV_CRC32C, zero, sizeof(zero));

    if (ret < 0)
        return ret;
    crc = crc32c(0, buf, *len);
    buf[*len - 4] = (uint8_t)(crc >> 24);
    buf[*len - 3] = (uint8_t)(crc >> 16);
    buf[*len - 2] = (uint8_t)(crc >> 8);
    buf[*len - 1] = (uint8_t)crc;
    return 0;
}

int proxy_encode(enum proxy_version v, uint8_t *buf, size_t cap, const struct sockaddr *src,
                 const struct sockaddr *dst)
{
    switch (v) {
    case PROXY_V2:
        return proxy_v2_encode(buf, cap, src, dst);
    case PROXY_V1:
        return proxy_v1_encode(buf, cap, src, dst);
    case PROXY_OFF:
        break;
    }
    return 0;
}
