/* Socket addresses: parse "ADDR:PORT" / "[V6]:PORT" and format them back.
 * Pure: no I/O, no allocation. */
#ifndef RINGRELAY_ADDR_H
#define RINGRELAY_ADDR_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

/* Large enough for an IPv4 or IPv6 address with port. */
union sockaddr_inet {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

/* "[ffff:...:ffff]:65535" or "unix:" and a sun_path, plus NUL. */
#define ADDR_STRLEN 120

/* Parses "A.B.C.D:PORT" or "[IPV6]:PORT" (numeric only, port 1-65535) into
 * *out. Returns 0 or -EINVAL. */
int addr_parse(const char *s, union sockaddr_inet *out);

/* Parses "unix:/absolute/path" into *out. Returns 0 or -EINVAL. */
int addr_parse_unix(const char *s, struct sockaddr_un *out);

/* Writes "A.B.C.D:PORT", "[IPV6]:PORT" or "unix:/path" into buf (at least
 * ADDR_STRLEN); "unknown" for any other family. Returns buf. */
char *addr_format(const struct sockaddr *sa, char *buf, size_t cap);

/* The length to pass to bind/connect for this address's family. */
socklen_t addr_len(const struct sockaddr *sa);

/* The raw address bytes of an IPv4 or IPv6 socket address, an IPv4-mapped
 * IPv6 one taken as IPv4: sets *p and returns 4 or 16; 0 for other
 * families. */
size_t addr_bytes(const struct sockaddr *sa, const uint8_t **p);

/* Rewrites an IPv4-mapped IPv6 address (::ffff:a.b.c.d) as plain IPv4 in
 * place; other addresses are left alone. */
void addr_unmap_v4(union sockaddr_inet *a);

#endif
