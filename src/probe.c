/* Backend probes: connect, header, TLS handshake; each step bounded. */
#include "probe.h"

#include "addr.h"
#include "proxy.h"
#include "syserr.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* The start of the server's first line, kept to quote when it is not TLS. */
struct seen {
    char text[48];
    size_t n;
    int line_done;
};

static void seen_add(struct seen *s, const char *data, size_t len)
{
    for (size_t i = 0; i < len && !s->line_done && s->n < sizeof(s->text) - 1; i++) {
        char ch = data[i];
        if (ch == '\r' || ch == '\n')
            s->line_done = 1;
        else
            s->text[s->n++] = ch >= 0x20 && ch < 0x7f ? ch : '.';
    }
    s->text[s->n] = '\0';
}

static long record_read(BIO *bio, int op, const char *data, size_t len, int argi, long argl,
                        int ret, size_t *done)
{
    if (op == (BIO_CB_READ | BIO_CB_RETURN) && ret > 0)
        seen_add((struct seen *)BIO_get_callback_arg(bio), data, *done);
    return ret;
}

/* OpenSSL stops at a record header that is not TLS: read on to the end of
 * the server's first line, so it can be quoted whole. */
static void seen_finish(struct seen *s, int fd)
{
    char buf[64];
    ssize_t n;

    if (!s->n || s->text[0] == 0x16 || s->text[0] == 0x15)
        return;
    while (!s->line_done && s->n < sizeof(s->text) - 1 &&
           (n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
        seen_add(s, buf, (size_t)n);
}

/* Connects with a bounded wait (SO_SNDTIMEO bounds connect too); returns
 * the fd, its reads and writes bounded the same, or -errno. */
static int probe_connect(const struct probe *p)
{
    struct timeval tv = {.tv_sec = p->timeout_ms / 1000,
                         .tv_usec = (long)(p->timeout_ms % 1000) * 1000};
    int fd = socket(p->sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0), err;

    if (fd == -1)
        return -errno;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, p->sa, p->salen) == -1) {
        err = -errno;
        close(fd);
        return err == -EINPROGRESS ? -ETIMEDOUT : err;
    }
    return fd;
}

/* Writes the probe's header: p's addresses, or else our own address as
 * the client's (over a unix socket there is none: v1 UNKNOWN, v2 LOCAL). */
static int probe_header(int fd, const struct probe *p)
{
    union {
        union sockaddr_inet in;
        struct sockaddr_un un;
    } self, peer;
    socklen_t sl = sizeof(self), pl = sizeof(peer);
    const struct sockaddr *src = p->src, *dst = p->dst;
    uint8_t hdr[PROXY_HDR_MAX];
    enum probe_header h = p->header;
    int n = 0;

    if (h == PROBE_HDR_NONE)
        return 0;
    if (!src || !dst) {
        if (getsockname(fd, &self.in.sa, &sl) == -1 || getpeername(fd, &peer.in.sa, &pl) == -1)
            return -errno;
        src = &self.in.sa;
        dst = &peer.in.sa;
    }
    if (h == PROBE_HDR_V1)
        n = proxy_v1_encode(hdr, sizeof(hdr), src, dst);
    else if (h == PROBE_HDR_V2)
        n = proxy_v2_encode(hdr, sizeof(hdr), src, dst);
    else if (h == PROBE_HDR_LOCAL)
        n = proxy_v2_encode(hdr, sizeof(hdr), NULL, NULL);
    if (n > 0 && send(fd, hdr, (size_t)n, MSG_NOSIGNAL) != n)
        return -errno;
    return 0;
}

/* Why a handshake failed, in words an operator can act on. */
static void handshake_failure(SSL *ssl, int ret, const struct seen *seen, uint32_t timeout_ms,
                              char *out, size_t cap)
{
    int err = SSL_get_error(ssl, ret);
    unsigned long e = ERR_peek_last_error();

    if (seen->n && !(seen->text[0] == 0x16 || seen->text[0] == 0x15))
        snprintf(out, cap, "failed: the server answered in plain text: \"%s\"", seen->text);
    else if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ||
             (err == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK)))
        /* the socket's timeout, which OpenSSL sees as a read to retry */
        snprintf(out, cap, "failed: no answer within %u ms", timeout_ms);
    else if (err == SSL_ERROR_SYSCALL && errno == ECONNRESET)
        snprintf(out, cap, "failed: the server reset the connection");
    else if (err == SSL_ERROR_SYSCALL ||
             (e && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING))
        snprintf(out, cap, "failed: the server closed the connection");
    else
        snprintf(out, cap, "failed: %s", e ? ERR_reason_error_string(e) : "TLS handshake error");
}

/* The handshake after the header; returns 1 when it completed. */
static int probe_tls(const struct probe *p, int fd, char *out, size_t cap)
{
    struct seen seen = {0};
    int ret, ok = 0;
    SSL *ssl = SSL_new(p->tls);
    BIO *bio = BIO_new_socket(fd, BIO_NOCLOSE);

    if (!ssl || !bio) {
        snprintf(out, cap, "failed: OpenSSL: out of memory");
        SSL_free(ssl);
        BIO_free(bio);
        return 0;
    }
    BIO_set_callback_ex(bio, record_read);
    BIO_set_callback_arg(bio, (char *)&seen);
    SSL_set_bio(ssl, bio, bio);
    if (p->sni)
        SSL_set_tlsext_host_name(ssl, p->sni);
    ERR_clear_error();
    errno = 0;
    ret = SSL_connect(ssl);
    if (ret == 1) {
        snprintf(out, cap, "ok: %s handshake completed", SSL_get_version(ssl));
        ok = 1;
        SSL_shutdown(ssl);
    } else {
        seen_finish(&seen, fd);
        handshake_failure(ssl, ret, &seen, p->timeout_ms, out, cap);
    }
    SSL_free(ssl);
    return ok;
}

SSL_CTX *probe_tls_context(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    return ctx;
}

int probe_run(const struct probe *p, char *why, size_t cap)
{
    int fd = probe_connect(p), ret, ok;

    if (fd < 0 && err_out_of_resources(-fd)) {
        snprintf(why, cap, "not run: socket: %s", strerror(-fd));
        return -1;
    }
    if (fd < 0) {
        snprintf(why, cap, "failed: connect: %s", strerror(-fd));
        return 0;
    }
    if ((ret = probe_header(fd, p)) < 0) {
        snprintf(why, cap, "failed: sending the header: %s", strerror(-ret));
        close(fd);
        return 0;
    }
    if (p->tls) {
        ok = probe_tls(p, fd, why, cap);
    } else {
        snprintf(why, cap, "ok: connected");
        ok = 1;
    }
    close(fd);
    return ok;
}
