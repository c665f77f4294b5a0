/* Address ranges: parsing, formatting, matching. */
#include "cidr.h"

#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* Whether addr has any bit set at or after position bits. */
static int host_bits_set(const uint8_t *addr, int len, int bits)
{
    for (int i = bits / 8; i < len; i++) {
        uint8_t mask = i == bits / 8 ? (uint8_t)(0xff >> (bits % 8)) : 0xff;
        if (addr[i] & mask)
            return 1;
    }
    return 0;
}

static int parse_bits(const char *s, int max)
{
    int v = 0;

    if (*s == '\0' || (s[0] == '0' && s[1] != '\0'))
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
        if (v > max)
            return -1;
    }
    return v;
}

int cidr_parse(const char *s, struct cidr *out)
{
    char host[INET6_ADDRSTRLEN];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    int len, bits;

    if (n == 0 || n >= sizeof(host))
        return -EINVAL;
    memcpy(host, s, n);
    host[n] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, host, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, host, out->addr) == 1)
        out->family = AF_INET6;
    else
        return -EINVAL;
    len = out->family == AF_INET ? 4 : 16;
    bits = slash ? parse_bits(slash + 1, len * 8) : len * 8;
    if (bits < 0)
        return -EINVAL;
    out->bits = (uint8_t)bits;
    return host_bits_set(out->addr, len, bits) ? -EDOM : 0;
}

char *cidr_format(const struct cidr *c, char *buf, size_t cap)
{
    char host[INET6_ADDRSTRLEN];

    inet_ntop(c->family, c->addr, host, sizeof(host));
    snprintf(buf, cap, "%s/%u", host, c->bits);
    return buf;
}

/* Whether the first bits of a and b agree. */
static int prefix_equal(const uint8_t *a, const uint8_t *b, int bits)
{
    int whole = bits / 8, rest = bits % 8;

    if (memcmp(a, b, (size_t)whole) != 0)
        return 0;
    return rest == 0 || ((a[whole] ^ b[whole]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

int cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
    const uint8_t *a;
    size_t n = addr_bytes(sa, &a);

    return n && (n == 4 ? AF_INET : AF_INET6) == c->family && prefix_equal(a, c->addr, c->bits);
}
