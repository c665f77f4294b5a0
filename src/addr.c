/* Parsing and formatting of IPv4/IPv6 socket addresses. */
#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *s, in_port_t *port)
{
    unsigned long v = 0;

    if (*s == '\0')
        return -EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > 65535)
            return -EINVAL;
    }
    if (v == 0)
        return -EINVAL;
    *port = htons((in_port_t)v);
    return 0;
}

int addr_parse(const char *s, union sockaddr_inet *out)
{
    char host[INET6_ADDRSTRLEN];
    const char *colon, *hs = s;
    size_t hlen;

    memset(out, 0, sizeof(*out));
    if (*s == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':')
            return -EINVAL;
        hs = s + 1;
        hlen = (size_t)(end - hs);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -EINVAL;
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return -EINVAL;
    memcpy(host, hs, hlen);
    host[hlen] = '\0';

    if (*s == '[') {
        out->in6.sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, host, &out->in6.sin6_addr) != 1)
            return -EINVAL;
        return parse_port(colon + 1, &out->in6.sin6_port);
    }
    out->in.sin_family = AF_INET;
    if (inet_pton(AF_INET, host, &out->in.sin_addr) != 1)
        return -EINVAL;
    return parse_port(colon + 1, &out->in.sin_port);
}

char *addr_format(const struct sockaddr *sa, char *buf, size_t cap)
{
    char host[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(buf, cap, "%s:%u", host, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(buf, cap, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else if (sa->sa_family == AF_UNIX) {
        snprintf(buf, cap, "unix:%s", ((const struct sockaddr_un *)(const void *)sa)->sun_path);
    } else {
        snprintf(buf, cap, "unknown");
    }
    return buf;
}

int addr_parse_unix(const char *s, struct sockaddr_un *out)
{
    if (strncmp(s, "unix:/", 6) != 0 || strlen(s + 5) >= sizeof(out->sun_path))
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    out->sun_family = AF_UNIX;
    memcpy(out->sun_path, s + 5, strlen(s + 5) + 1);
    return 0;
}

socklen_t addr_len(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_UNIX)
        return sizeof(struct sockaddr_un);
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

size_t addr_bytes(const struct sockaddr *sa, const uint8_t **p)
{
    if (sa->sa_family == AF_INET) {
        *p = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
        return 4;
    }
    if (sa->sa_family != AF_INET6)
        return 0;
    *p = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
    if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)*p)) {
        *p += 12;
        return 4;
    }
    return 16;
}

void addr_unmap_v4(union sockaddr_inet *a)
{
    struct sockaddr_in in;

    if (a->sa.sa_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&a->in6.sin6_addr))
        return;
    memset(&in, 0, sizeof(in));
    in.sin_family = AF_INET;
    in.sin_port = a->in6.sin6_port;
    memcpy(&in.sin_addr, &a->in6.sin6_addr.s6_addr[12], 4);
    a->in = in;
}
