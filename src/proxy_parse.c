/* Inbound PROXY header parser: one v1 line or one v2 block, validated the
 * way the spec asks, never reading past len nor consuming past the header. */
#include "proxy_parse.h"

#include "crc32c.h"
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#define V1_PREFIX "PROXY "
#define V1_PREFIX_LEN 6
#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1
#define V2_AF_UNSPEC 0x0
#define V2_AF_INET 0x1
#define V2_AF_INET6 0x2
#define V2_AF_UNIX 0x3
#define V2_PROTO_STREAM 0x1
#define V2_PROTO_DGRAM 0x2
#define SSL_TLV_FIXED 5 /* client (1) + verify (4) before its sub-TLVs */

static int malformed(struct proxy_header *h, const char *why)
{
    h->why = why;
    return -EPROTO;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* Whether the first n bytes of buf agree with the first n of want. */
static int prefix_ok(const uint8_t *buf, size_t len, const char *want, size_t want_len)
{
    return memcmp(buf, want, len < want_len ? len : want_len) == 0;
}

/* A decimal port: 1-5 digits, no sign, no leading zero, at most 65535. */
static int v1_port(const char *s, in_port_t *port)
{
    size_t n = strlen(s);
    unsigned long v = 0;

    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *port = htons((uint16_t)v);
    return 0;
}

/* Fills a from text address and port of the given family. */
static int v1_addr(int family, const char *host, const char *port, union sockaddr_inet *a)
{
    memset(a, 0, sizeof(*a));
    if (family == AF_INET) {
        a->in.sin_family = AF_INET;
        if (inet_pton(AF_INET, host, &a->in.sin_addr) != 1)
            return -1;
        return v1_port(port, &a->in.sin_port);
    }
    a->in6.sin6_family = AF_INET6;
    if (inet_pton(AF_INET6, host, &a->in6.sin6_addr) != 1)
        return -1;
    return v1_port(port, &a->in6.sin6_port);
}

/* Splits line at single spaces into at most max fields; an empty field
 * (two spaces, or one at either end) fails. Returns the count or -1. */
static int v1_split(char *line, char **field, int max)
{
    int n = 0;

    for (char *p = line;; p++) {
        if (n == max)
            return -1;
        field[n++] = p;
        p = strchr(p, ' ');
        if (!p)
            break;
        *p = '\0';
    }
    for (int i = 0; i < n; i++)
        if (field[i][0] == '\0')
            return -1;
    return n;
}

/* The line between "PROXY " and CRLF, NUL-terminated in a copy. */
static int v1_fields(char *line, struct proxy_header *h)
{
    char *f[6];
    int family, n;

    if (strncmp(line, "UNKNOWN", 7) == 0 && (line[7] == '\0' || line[7] == ' '))
        return 0; /* the rest of an UNKNOWN line is to be ignored */
    n = v1_split(line, f, 6);
    if (n != 5)
        return malformed(h, "v1 line does not have the 5 fields after PROXY");
    if (strcmp(f[0], "TCP4") == 0)
        family = AF_INET;
    else if (strcmp(f[0], "TCP6") == 0)
        family = AF_INET6;
    else
        return malformed(h, "v1 protocol is not TCP4, TCP6 or UNKNOWN");
    if (v1_addr(family, f[1], f[3], &h->src) < 0 || v1_addr(family, f[2], f[4], &h->dst) < 0)
        return malformed(h, "v1 address or port is not valid");
    h->has_addr = 1;
    return 0;
}

static int parse_v1(const uint8_t *buf, size_t len, struct proxy_header *h)
{
    size_t scan = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
    char line[PROXY_V1_MAX];
    size_t end;
    int ret;

    if (!prefix_ok(buf, len, V1_PREFIX, V1_PREFIX_LEN))
        return malformed(h, "not a PROXY v1 header");
    for (end = 0; end < scan; end++)
        if (buf[end] == '\r' || buf[end] == '\n')
            break;
    if (end == scan)
        return len >= PROXY_V1_MAX ? malformed(h, "v1 line longer than 107 bytes") : -EAGAIN;
    if (buf[end] == '\n')
        return malformed(h, "v1 line ends in LF without CR");
    if (end + 2 > PROXY_V1_MAX)
        return malformed(h, "v1 line longer than 107 bytes");
    if (end + 1 == len)
        return -EAGAIN;
    if (buf[end + 1] != '\n')
        return malformed(h, "v1 line has a CR without LF");
    if (end < V1_PREFIX_LEN)
        return malformed(h, "not a PROXY v1 header");
    for (size_t i = 0; i < end; i++)
        if (buf[i] < 0x20 || buf[i] > 0x7e)
            return malformed(h, "v1 line has a control or non-ASCII byte");
    memcpy(line, buf + V1_PREFIX_LEN, end - V1_PREFIX_LEN);
    line[end - V1_PREFIX_LEN] = '\0';
    ret = v1_fields(line, h);
    if (ret < 0)
        return ret;
    h->version = 1;
    return (int)(end + 2);
}

/* The CRC32C TLV's value must equal the CRC of the whole header with that
 * value zeroed. */
static int v2_crc_ok(const uint8_t *buf, size_t total, const uint8_t *value)
{
    static const uint8_t zero[4];
    size_t at = (size_t)(value - buf);
    uint32_t crc, want;

    crc = crc32c(0, buf, at);
    crc = crc32c(crc, zero, 4);
    crc = crc32c(crc, buf + at + 4, total - at - 4);
    want = (uint32_t)value[0] << 24 | (uint32_t)value[1] << 16 | (uint32_t)value[2] << 8 | value[3];
    return crc == want;
}

/* Checks that p[0..len) is a sequence of whole TLVs, each one sound. */
static int v2_tlvs(const uint8_t *buf, size_t total, const uint8_t *p, size_t len, int nested,
                   struct proxy_header *h)
{
    while (len > 0) {
        uint16_t l;
        uint8_t type;

        if (len < 3)
            return malformed(h, "v2 stray bytes after the last TLV");
        type = p[0];
        l = get16(p + 1);
        if ((size_t)l + 3 > len)
            return malformed(h, "v2 TLV runs past the header");
        if (!nested && type == PROXY_TLV_CRC32C && (l != 4 || !v2_crc_ok(buf, total, p + 3)))
            return malformed(h, "v2 CRC32C does not match");
        if (!nested && type == PROXY_TLV_UNIQUE_ID && l > PROXY_UNIQUE_ID_MAX)
            return malformed(h, "v2 UNIQUE_ID longer than 128 bytes");
        if (!nested && type == PROXY_TLV_SSL && l < SSL_TLV_FIXED)
            return malformed(h, "v2 SSL TLV is too short");
        if (!nested && type == PROXY_TLV_SSL &&
            v2_tlvs(buf, total, p + 3 + SSL_TLV_FIXED, l - SSL_TLV_FIXED, 1, h) < 0)
            return -EPROTO;
        p += 3 + (size_t)l;
        len -= 3 + (size_t)l;
    }
    return 0;
}

static void v2_addresses(const uint8_t *a, int family, struct proxy_header *h)
{
    memset(&h->src, 0, sizeof(h->src));
    memset(&h->dst, 0, sizeof(h->dst));
    if (family == V2_AF_INET) {
        h->src.in.sin_family = h->dst.in.sin_family = AF_INET;
        memcpy(&h->src.in.sin_addr, a, 4);
        memcpy(&h->dst.in.sin_addr, a + 4, 4);
        memcpy(&h->src.in.sin_port, a + 8, 2);
        memcpy(&h->dst.in.sin_port, a + 10, 2);
    } else {
        h->src.in6.sin6_family = h->dst.in6.sin6_family = AF_INET6;
        memcpy(&h->src.in6.sin6_addr, a, 16);
        memcpy(&h->dst.in6.sin6_addr, a + 16, 16);
        memcpy(&h->src.in6.sin6_port, a + 32, 2);
        memcpy(&h->dst.in6.sin6_port, a + 34, 2);
    }
    h->has_addr = 1;
}

/* The fixed part after the signature, as far as len reaches: version,
 * command, family, transport. */
static int v2_fixed(const uint8_t *buf, size_t len, struct proxy_header *h)
{
    int family = len > 13 ? buf[13] >> 4 : 0, proto = len > 13 ? buf[13] & 0xf : 0;

    if (len <= 12)
        return 0;
    if (buf[12] >> 4 != 2)
        return malformed(h, "v2 version is not 2");
    if ((buf[12] & 0xf) != V2_CMD_LOCAL && (buf[12] & 0xf) != V2_CMD_PROXY)
        return malformed(h, "v2 command is neither LOCAL nor PROXY");
    if (family > V2_AF_UNIX)
        return malformed(h, "v2 address family is unknown");
    if (proto > V2_PROTO_DGRAM)
        return malformed(h, "v2 transport protocol is unknown");
    if (proto == V2_PROTO_DGRAM)
        return malformed(h, "v2 header describes a datagram flow on a stream");
    return 0;
}

static int parse_v2(const uint8_t *buf, size_t len, size_t cap, struct proxy_header *h)
{
    static const uint16_t addr_len[] = {0, 12, 36, 216};
    size_t total, alen;
    int family, ret;

    if (!prefix_ok(buf, len, PROXY_V2_SIG, PROXY_V2_SIG_LEN))
        return malformed(h, "not a PROXY v2 header");
    ret = v2_fixed(buf, len, h);
    if (ret < 0)
        return ret;
    if (len < PROXY_V2_FIXED_LEN)
        return -EAGAIN;
    family = buf[13] >> 4;
    alen = addr_len[family];
    total = PROXY_V2_FIXED_LEN + (size_t)get16(buf + 14);
    if (total > cap)
        return malformed(h, "v2 header longer than the configured cap");
    if (total - PROXY_V2_FIXED_LEN < alen)
        return malformed(h, "v2 length shorter than the address block");
    if (len < total)
        return -EAGAIN;
    ret = v2_tlvs(buf, total, buf + PROXY_V2_FIXED_LEN + alen, total - PROXY_V2_FIXED_LEN - alen, 0,
                  h);
    if (ret < 0)
        return ret;
    h->version = 2;
    h->local = (buf[12] & 0xf) == V2_CMD_LOCAL;
    if (!h->local && (family == V2_AF_INET || family == V2_AF_INET6) &&
        (buf[13] & 0xf) == V2_PROTO_STREAM)
        v2_addresses(buf + PROXY_V2_FIXED_LEN, family, h);
    if (total > PROXY_V2_FIXED_LEN + alen) {
        h->tlv = buf + PROXY_V2_FIXED_LEN + alen;
        h->tlv_len = total - PROXY_V2_FIXED_LEN - alen;
    }
    return (int)total;
}

int proxy_parse(const uint8_t *buf, size_t len, enum proxy_in mode, size_t v2_cap,
                struct proxy_header *h)
{
    memset(h, 0, sizeof(*h));
    if (len == 0)
        return -EAGAIN;
    if (mode == PROXY_IN_ANY)
        mode = buf[0] == PROXY_V2_SIG[0] ? PROXY_IN_V2 : PROXY_IN_V1;
    if (mode == PROXY_IN_V1)
        return parse_v1(buf, len, h);
    if (mode == PROXY_IN_V2)
        return parse_v2(buf, len, v2_cap < PROXY_V2_CAP_MAX ? v2_cap : PROXY_V2_CAP_MAX, h);
    return malformed(h, "inbound PROXY protocol is off");
}

int proxy_tlv_next(const struct proxy_header *h, size_t *pos, uint8_t *type, const uint8_t **value,
                   uint16_t *len)
{
    const uint8_t *p;

    if (!h->tlv || *pos >= h->tlv_len)
        return 0;
    p = h->tlv + *pos;
    *type = p[0];
    *len = get16(p + 1);
    *value = p + 3;
    *pos += 3 + (size_t)*len;
    return 1;
}
