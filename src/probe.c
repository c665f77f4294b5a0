/* Backend probes: connect, header, TLS handshake; each step bounded. */
#include "probe.h"

#include "addr.h"
#include "mono.h"
#include "proxy.h"
#include "syserr.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <time.h>
#include <sys/un.h>
#include <unistd.h>

static void seen_add(struct probe_seen *s, const char *data, size_t len)
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
        seen_add((struct probe_seen *)BIO_get_callback_arg(bio), data, *done);
    return ret;
}

/* OpenSSL stops at a record header that is not TLS: read on to the end of
 * the server's first line, so it can be quoted whole. */
static void seen_finish(struct probe_seen *s, int fd)
{
    char buf[64];
    ssize_t n;

    if (!s->n || s->text[0] == 0x16 || s->text[0] == 0x15)
        return;
    while (!s->line_done && s->n < sizeof(s->text) - 1 &&
           (n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
        seen_add(s, buf, (size_t)n);
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
static void handshake_failure(SSL *ssl, int ret, const struct probe_seen *seen, uint32_t timeout_ms,
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

/* The handshake after the header, begun: the SSL on pr's socket, with
 * what the server sends recorded to quote. Returns 0, or a verdict. */
static int tls_begin(struct probe_run *pr, char *why, size_t cap)
{
    BIO *bio;

    pr->ssl = SSL_new(pr->p.tls);
    bio = BIO_new_socket(pr->fd, BIO_NOCLOSE);
    if (!pr->ssl || !bio) {
        snprintf(why, cap, "failed: OpenSSL: out of memory");
        BIO_free(bio);
        return 0;
    }
    BIO_set_callback_ex(bio, record_read);
    BIO_set_callback_arg(bio, (char *)&pr->seen);
    SSL_set_bio(pr->ssl, bio, bio);
    if (pr->p.sni)
        SSL_set_tlsext_host_name(pr->ssl, pr->p.sni);
    pr->stage = PROBE_TLS;
    return -EINPROGRESS;
}

/* One more step of the handshake: -EINPROGRESS with pr->events, or the
 * verdict. */
static int tls_step(struct probe_run *pr, char *why, size_t cap)
{
    int ret, err;

    ERR_clear_error();
    errno = 0;
    ret = SSL_connect(pr->ssl);
    if (ret == 1) {
        snprintf(why, cap, "ok: %s handshake completed", SSL_get_version(pr->ssl));
        SSL_shutdown(pr->ssl);
        return 1;
    }
    err = SSL_get_error(pr->ssl, ret);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        pr->events = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        return -EINPROGRESS;
    }
    seen_finish(&pr->seen, pr->fd);
    handshake_failure(pr->ssl, ret, &pr->seen, pr->p.timeout_ms, why, cap);
    return 0;
}

SSL_CTX *probe_tls_context(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    return ctx;
}

/* Lets go of what a probe holds, once it has a verdict. */
static int finish(struct probe_run *pr, int verdict)
{
    if (verdict == -EINPROGRESS)
        return verdict;
    SSL_free(pr->ssl);
    pr->ssl = NULL;
    if (pr->fd >= 0)
        close(pr->fd);
    pr->fd = -1;
    pr->stage = PROBE_DONE;
    return verdict;
}

/* Connected (or not: SO_ERROR says): the header, then the handshake. */
static int connected(struct probe_run *pr, char *why, size_t cap)
{
    int err = 0, ret;
    socklen_t len = sizeof(err);

    if (getsockopt(pr->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
        err = errno;
    if (err) {
        snprintf(why, cap, "failed: connect: %s", strerror(err));
        return 0;
    }
    if ((ret = probe_header(pr->fd, &pr->p)) < 0) {
        snprintf(why, cap, "failed: sending the header: %s", strerror(-ret));
        return 0;
    }
    if (!pr->p.tls) {
        snprintf(why, cap, "ok: connected");
        return 1;
    }
    ret = tls_begin(pr, why, cap);
    return ret == -EINPROGRESS ? tls_step(pr, why, cap) : ret;
}

int probe_begin(struct probe_run *pr, const struct probe *p, char *why, size_t cap)
{
    memset(pr, 0, sizeof(*pr));
    pr->p = *p;
    pr->stage = PROBE_CONNECT;
    pr->fd = socket(p->sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (pr->fd == -1) {
        int err = errno;
        snprintf(why, cap, "%s: socket: %s", err_out_of_resources(err) ? "not run" : "failed",
                 strerror(err));
        return finish(pr, err_out_of_resources(err) ? -1 : 0);
    }
    if (connect(pr->fd, p->sa, p->salen) == 0)
        return finish(pr, connected(pr, why, cap));
    if (errno != EINPROGRESS) {
        snprintf(why, cap, "failed: connect: %s", strerror(errno));
        return finish(pr, 0);
    }
    pr->events = POLLOUT;
    return -EINPROGRESS;
}

int probe_step(struct probe_run *pr, char *why, size_t cap)
{
    if (pr->stage == PROBE_CONNECT)
        return finish(pr, connected(pr, why, cap));
    return finish(pr, tls_step(pr, why, cap));
}

int probe_expire(struct probe_run *pr, char *why, size_t cap)
{
    if (pr->stage == PROBE_TLS)
        seen_finish(&pr->seen, pr->fd);
    if (pr->stage == PROBE_CONNECT)
        snprintf(why, cap, "failed: connect: %s", strerror(ETIMEDOUT));
    else if (pr->seen.n && !(pr->seen.text[0] == 0x16 || pr->seen.text[0] == 0x15))
        snprintf(why, cap, "failed: the server answered in plain text: \"%s\"", pr->seen.text);
    else
        snprintf(why, cap, "failed: no answer within %u ms", pr->p.timeout_ms);
    return finish(pr, 0);
}

void probe_abort(struct probe_run *pr)
{
    (void)finish(pr, 0);
}

int probe_run(const struct probe *p, char *why, size_t cap)
{
    struct probe_run pr;
    int ret = probe_begin(&pr, p, why, cap);
    enum probe_stage stage = pr.stage;
    uint64_t deadline = mono_ms() + p->timeout_ms;

    while (ret == -EINPROGRESS) {
        struct pollfd pf = {.fd = pr.fd, .events = (short)pr.events};
        uint64_t now = mono_ms();
        int n = now < deadline ? poll(&pf, 1, (int)(deadline - now)) : 0;
        if (n == -1 && errno == EINTR)
            continue;
        ret = n > 0 ? probe_step(&pr, why, cap) : probe_expire(&pr, why, cap);
        if (pr.stage != stage) { /* each stage has the whole timeout */
            stage = pr.stage;
            deadline = mono_ms() + p->timeout_ms;
        }
    }
    return ret;
}
