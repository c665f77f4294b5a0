/* One probe of a backend server: connect, write a PROXY header (or none),
 * and optionally complete a real TLS handshake. Used by ringrelay doctor
 * and by health checks; blocking, with a bound on every step. */
#ifndef RINGRELAY_PROBE_H
#define RINGRELAY_PROBE_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum probe_header { PROBE_HDR_NONE, PROBE_HDR_V1, PROBE_HDR_V2, PROBE_HDR_LOCAL };

struct probe {
    const struct sockaddr *sa; /* an inet or unix address */
    socklen_t salen;
    enum probe_header header;
    /* What a v1 or v2 header names as client and server; NULL: the
     * socket's own ends (over a unix socket there are none: v1 UNKNOWN,
     * v2 LOCAL). */
    const struct sockaddr *src, *dst;
    SSL_CTX *tls;        /* NULL: no handshake, success is the connect and header */
    const char *sni;     /* for the handshake; NULL: none */
    uint32_t timeout_ms; /* for connect, and for each read or write after it */
};

/* A client context for probes: no certificate check (the question is
 * framing, not trust). NULL when OpenSSL cannot make one. */
SSL_CTX *probe_tls_context(void);

/* Runs p. Returns 1 when it worked (why: what completed), 0 when it failed
 * (why: what, in words an operator can act on), or -1 when this process
 * could not make the probe (out of descriptors or memory): no verdict on
 * the server. */
int probe_run(const struct probe *p, char *why, size_t cap);

#endif
