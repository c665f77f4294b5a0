/* ringrelay doctor: what PROXY header does a TLS backend expect? Probes it
 * with no header, a v1 header, a v2 header and a v2 LOCAL header, each
 * followed by a real TLS handshake, and says what to configure. The backend
 * is an IPv4, IPv6 or unix socket address, as --backend takes it. */
#include "doctor.h"

#include "addr.h"
#include "probe.h"

#include <stdio.h>
#include <string.h>

#define PROBE_TIMEOUT_MS 3000

enum { PROBE_NONE, PROBE_V1, PROBE_V2, PROBE_LOCAL, PROBES };

static const char *const probe_name[PROBES] = {"no header", "PROXY v1", "PROXY v2",
                                               "PROXY v2 LOCAL"};
static const enum probe_header probe_header_of[PROBES] = {PROBE_HDR_NONE, PROBE_HDR_V1,
                                                          PROBE_HDR_V2, PROBE_HDR_LOCAL};

/* The one sentence: what the backend expects, and what to write. */
static void verdict(const char *target, const int ok[PROBES])
{
    printf("verdict: ");
    if (ok[PROBE_V1] && ok[PROBE_V2] && !ok[PROBE_NONE])
        printf("%s expects a PROXY header and takes v1 or v2: run ringrelay with "
               "--proxy-protocol v2 (the default).\n",
               target);
    else if (ok[PROBE_V2] && !ok[PROBE_NONE])
        printf("%s expects a PROXY v2 header: run ringrelay with --proxy-protocol v2 "
               "(the default).\n",
               target);
    else if (ok[PROBE_V1] && !ok[PROBE_NONE])
        printf("%s expects a PROXY v1 header: run ringrelay with --proxy-protocol v1.\n", target);
    else if (ok[PROBE_NONE] && !ok[PROBE_V1] && !ok[PROBE_V2])
        printf("%s does not expect a PROXY header: add proxy_protocol to its listen line "
               "(nginx/Kong: listen ... ssl proxy_protocol;) so it learns client addresses, "
               "or run ringrelay with --proxy-protocol off.\n",
               target);
    else if (ok[PROBE_NONE])
        printf("%s accepts connections with and without a PROXY header: run ringrelay with "
               "--proxy-protocol v2 so it gets client addresses.\n",
               target);
    else
        printf("no probe completed a TLS handshake with %s: check the address, that it "
               "speaks TLS on that port, and the results above.\n",
               target);
}

static int usage(void)
{
    fputs("usage: ringrelay doctor ADDR:PORT|unix:/PATH [--sni NAME]\n", stderr);
    return 2;
}

/* What a v1 or v2 probe names as client and server over a unix socket,
 * where the socket has no addresses but the relay's header would carry a
 * TCP client's: loopback, port 1 to port 1. */
static void loopback_ends(struct sockaddr_in *src, struct sockaddr_in *dst)
{
    *src = (struct sockaddr_in){
        .sin_family = AF_INET, .sin_port = htons(1), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    *dst = *src;
}

int doctor_main(int argc, char **argv)
{
    union {
        union sockaddr_inet in;
        struct sockaddr_un un;
    } a;
    struct sockaddr_in src, dst;
    const char *sni = NULL;
    char result[160];
    int ok[PROBES], any = 0, on_unix = argc >= 2 && strncmp(argv[1], "unix:", 5) == 0;
    SSL_CTX *ctx;

    if (argc < 2 || (on_unix ? addr_parse_unix(argv[1], &a.un) : addr_parse(argv[1], &a.in)) < 0) {
        if (argc >= 2)
            fprintf(stderr,
                    "ringrelay doctor: '%s': expected IPV4:PORT, [IPV6]:PORT or "
                    "unix:/absolute/path (under %zu bytes)\n",
                    argv[1], sizeof(a.un.sun_path));
        return usage();
    }
    loopback_ends(&src, &dst);
    if (argc == 4 && strcmp(argv[2], "--sni") == 0)
        sni = argv[3];
    else if (argc != 2)
        return usage();
    ctx = probe_tls_context();
    if (!ctx) {
        fprintf(stderr, "ringrelay doctor: OpenSSL: cannot make a TLS context\n");
        return 1;
    }
    printf("probing %s%s%s: each probe sends its header, then a TLS ClientHello\n", argv[1],
           sni ? " with SNI " : "", sni ? sni : "");
    for (int p = 0; p < PROBES; p++) {
        struct probe pr = {.sa = &a.in.sa,
                           .salen = addr_len(&a.in.sa),
                           .header = probe_header_of[p],
                           .src = on_unix ? (const struct sockaddr *)&src : NULL,
                           .dst = on_unix ? (const struct sockaddr *)&dst : NULL,
                           .tls = ctx,
                           .sni = sni,
                           .timeout_ms = PROBE_TIMEOUT_MS};
        ok[p] = probe_run(&pr, result, sizeof(result)) > 0;
        any |= ok[p];
        printf("  %-15s %s\n", probe_name[p], result);
    }
    SSL_CTX_free(ctx);
    verdict(argv[1], ok);
    return any ? 0 : 1;
}
