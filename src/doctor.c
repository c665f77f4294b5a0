/* ringrelay doctor: what PROXY header does a TLS backend expect? Probes it
 * with no header, a v1 header, a v2 header and a v2 LOCAL header, each
 * followed by a real TLS handshake, and says what to configure. */
#include "doctor.h"

#include "addr.h"
#include "proxy.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define PROBE_TIMEOUT_MS 3000

enum probe { PROBE_NONE, PROBE_V1, PROBE_V2, PROBE_LOCAL, PROBES };

static const char *const probe_name[PROBES] = {"no header", "PROXY v1", "PROXY v2",
                                               "PROXY v2 LOCAL"};

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

/* Connects with a bounded wait; returns the fd or -errno. */
static int probe_connect(const union sockaddr_inet *a)
{
    struct timeval tv = {.tv_sec = PROBE_TIMEOUT_MS / 1000};
    int fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0), err;

    if (fd == -1)
        return -errno;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, &a->sa, addr_len(&a->sa)) == -1) {
        err = -errno;
        close(fd);
        return err == -EINPROGRESS ? -ETIMEDOUT : err;
    }
    return fd;
}

/* Writes the probe's header: our own address as the client's. */
static int probe_header(int fd, enum probe p)
{
    union sockaddr_inet self, peer;
    socklen_t sl = sizeof(self), pl = sizeof(peer);
    uint8_t hdr[PROXY_HDR_MAX];
    int n = 0;

    if (getsockname(fd, &self.sa, &sl) == -1 || getpeername(fd, &peer.sa, &pl) == -1)
        return -errno;
    if (p == PROBE_V1)
        n = proxy_v1_encode(hdr, sizeof(hdr), &self.sa, &peer.sa);
    else if (p == PROBE_V2)
        n = proxy_v2_encode(hdr, sizeof(hdr), &self.sa, &peer.sa);
    else if (p == PROBE_LOCAL)
        n = proxy_v2_encode(hdr, sizeof(hdr), NULL, NULL);
    if (n > 0 && send(fd, hdr, (size_t)n, MSG_NOSIGNAL) != n)
        return -errno;
    return 0;
}

/* Why a handshake failed, in words an operator can act on. */
static void handshake_failure(SSL *ssl, int ret, const struct seen *seen, char *out, size_t cap)
{
    int err = SSL_get_error(ssl, ret);
    unsigned long e = ERR_peek_last_error();

    if (seen->n && !(seen->text[0] == 0x16 || seen->text[0] == 0x15))
        snprintf(out, cap, "failed: the server answered in plain text: \"%s\"", seen->text);
    else if (err == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))
        snprintf(out, cap, "failed: no answer within %d s", PROBE_TIMEOUT_MS / 1000);
    else if (err == SSL_ERROR_SYSCALL && errno == ECONNRESET)
        snprintf(out, cap, "failed: the server reset the connection");
    else if (err == SSL_ERROR_SYSCALL || (e && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING))
        snprintf(out, cap, "failed: the server closed the connection");
    else
        snprintf(out, cap, "failed: %s", e ? ERR_reason_error_string(e) : "TLS handshake error");
}

/* One probe; returns 1 when the handshake completed. */
static int probe_run(SSL_CTX *ctx, const union sockaddr_inet *a, const char *sni, enum probe p,
                     char *out, size_t cap)
{
    struct seen seen = {0};
    int fd = probe_connect(a), ret, ok = 0;
    SSL *ssl;
    BIO *bio;

    if (fd < 0) {
        snprintf(out, cap, "failed: connect: %s", strerror(-fd));
        return 0;
    }
    if ((ret = probe_header(fd, p)) < 0) {
        snprintf(out, cap, "failed: sending the header: %s", strerror(-ret));
        close(fd);
        return 0;
    }
    ssl = SSL_new(ctx);
    bio = BIO_new_socket(fd, BIO_NOCLOSE);
    BIO_set_callback_ex(bio, record_read);
    BIO_set_callback_arg(bio, (char *)&seen);
    SSL_set_bio(ssl, bio, bio);
    if (sni)
        SSL_set_tlsext_host_name(ssl, sni);
    ERR_clear_error();
    errno = 0;
    ret = SSL_connect(ssl);
    if (ret == 1) {
        snprintf(out, cap, "ok: %s handshake completed", SSL_get_version(ssl));
        ok = 1;
        SSL_shutdown(ssl);
    } else {
        seen_finish(&seen, fd);
        handshake_failure(ssl, ret, &seen, out, cap);
    }
    SSL_free(ssl);
    close(fd);
    return ok;
}

/* The one sentence: what the backend expects, and what to write. */
static void verdict(const char *target, const int ok[PROBES])
{
    printf("verdict: ");
    if (ok[PROBE_V1] && ok[PROBE_V2] && !ok[PROBE_NONE])
        printf("%s expects a PROXY header and takes v1 or v2: run ringrelay with "
               "--proxy-protocol v2 (the default).\n", target);
    else if (ok[PROBE_V2] && !ok[PROBE_NONE])
        printf("%s expects a PROXY v2 header: run ringrelay with --proxy-protocol v2 "
               "(the default).\n", target);
    else if (ok[PROBE_V1] && !ok[PROBE_NONE])
        printf("%s expects a PROXY v1 header: run ringrelay with --proxy-protocol v1.\n",
               target);
    else if (ok[PROBE_NONE] && !ok[PROBE_V1] && !ok[PROBE_V2])
        printf("%s does not expect a PROXY header: add proxy_protocol to its listen line "
               "(nginx/Kong: listen ... ssl proxy_protocol;) so it learns client addresses, "
               "or run ringrelay with --proxy-protocol off.\n", target);
    else if (ok[PROBE_NONE])
        printf("%s accepts connections with and without a PROXY header: run ringrelay with "
               "--proxy-protocol v2 so it gets client addresses.\n", target);
    else
        printf("no probe completed a TLS handshake with %s: check the address, that it "
               "speaks TLS on that port, and the results above.\n", target);
}

static int usage(void)
{
    fputs("usage: ringrelay doctor ADDR:PORT [--sni NAME]\n", stderr);
    return 2;
}

int doctor_main(int argc, char **argv)
{
    union sockaddr_inet a;
    const char *sni = NULL;
    char result[160];
    int ok[PROBES], any = 0;
    SSL_CTX *ctx;

    if (argc < 2 || addr_parse(argv[1], &a) < 0) {
        if (argc >= 2)
            fprintf(stderr, "ringrelay doctor: '%s': expected IPV4:PORT or [IPV6]:PORT\n",
                    argv[1]);
        return usage();
    }
    if (argc == 4 && strcmp(argv[2], "--sni") == 0)
        sni = argv[3];
    else if (argc != 2)
        return usage();
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        fprintf(stderr, "ringrelay doctor: OpenSSL: cannot make a TLS context\n");
        return 1;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* the question is framing, not trust */
    printf("probing %s%s%s: each probe sends its header, then a TLS ClientHello\n", argv[1],
           sni ? " with SNI " : "", sni ? sni : "");
    for (int p = 0; p < PROBES; p++) {
        ok[p] = probe_run(ctx, &a, sni, (enum probe)p, result, sizeof(result));
        any |= ok[p];
        printf("  %-15s %s\n", probe_name[p], result);
    }
    SSL_CTX_free(ctx);
    verdict(argv[1], ok);
    return any ? 0 : 1;
}
