/* One probe of a backend server: connect, write a PROXY header (or none),
 * and optionally complete a real TLS handshake. Non-blocking, step by
 * step, for health checks (many at once in one loop); probe_run() is the
 * same, blocking, for ringrelay doctor. */
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

/* A probe under way: its socket and what it waits for. */
enum probe_stage { PROBE_CONNECT, PROBE_TLS, PROBE_DONE };

struct probe_seen { /* the start of the server's first line, to quote when it is not TLS */
    char text[48];
    size_t n;
    int line_done;
};

struct probe_run {
    struct probe p;
    int fd; /* -1 once done */
    enum probe_stage stage;
    short events; /* POLLIN or POLLOUT: what the next step waits for */
    SSL *ssl;
    struct probe_seen seen; /* pointed to by the SSL's BIO: a probe_run does not move */
};

/* Starts p in pr. Returns -EINPROGRESS while it goes on (wait for
 * pr->events on pr->fd, then probe_step(); each stage has p->timeout_ms,
 * then probe_expire()), or a verdict as probe_run() returns, with why;
 * pr then holds nothing. */
int probe_begin(struct probe_run *pr, const struct probe *p, char *why, size_t cap);
int probe_step(struct probe_run *pr, char *why, size_t cap);
int probe_expire(struct probe_run *pr, char *why, size_t cap);

/* Lets go of a probe under way without a verdict (the checker stops). */
void probe_abort(struct probe_run *pr);

/* Runs p, blocking: each stage (connect; header and handshake) bounded by
 * p->timeout_ms. Returns 1 when it worked (why: what completed), 0 when it failed
 * (why: what, in words an operator can act on), or -1 when this process
 * could not make the probe (out of descriptors or memory): no verdict on
 * the server. */
int probe_run(const struct probe *p, char *why, size_t cap);

#endif
