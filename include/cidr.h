/* Address ranges ("192.0.2.0/24", "2001:db8::/32", or one address) and
 * matching a socket address against them. Pure: no I/O, no allocation. */
#ifndef RINGRELAY_CIDR_H
#define RINGRELAY_CIDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t bits;
    uint8_t addr[16]; /* network order; 4 bytes used for AF_INET */
};

/* "A.B.C.D/N" (N 0-32), "V6/N" (N 0-128), or a bare address (a host).
 * Returns 0, -EINVAL for bad syntax, or -EDOM when bits below the prefix
 * are set (10.1.2.3/8: the caller can suggest 10.0.0.0/8). */
int cidr_parse(const char *s, struct cidr *out);

/* Writes "A.B.C.D/N" or "V6/N" into buf (at least CIDR_STRLEN). */
#define CIDR_STRLEN 50
char *cidr_format(const struct cidr *c, char *buf, size_t cap);

/* Whether sa falls in c. An IPv4-mapped IPv6 address matches as IPv4. */
int cidr_match(const struct cidr *c, const struct sockaddr *sa);

/* Whether c covers every address of its family (0.0.0.0/0, ::/0). */
static inline int cidr_is_everything(const struct cidr *c)
{
    return c->bits == 0;
}

#endif
