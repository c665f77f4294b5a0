/* What the first bytes of a stream look like, to explain a connection that
 * did not send what the listener expects. Pure. */
#ifndef RINGRELAY_SNIFF_H
#define RINGRELAY_SNIFF_H

#include <stddef.h>
#include <stdint.h>

enum sniff_kind {
    SNIFF_PROXY_V1, /* "PROXY ", or as much of it as arrived */
    SNIFF_PROXY_V2, /* the v2 signature, or as much of it as arrived */
    SNIFF_TLS,      /* a TLS handshake record: 0x16 0x03 */
    SNIFF_HTTP,     /* an HTTP/1 request line: "GET /..." */
    SNIFF_OTHER,
};

/* Classifies p[0..len); len 0 gives SNIFF_OTHER. */
enum sniff_kind sniff_first_bytes(const uint8_t *p, size_t len);

/* Whether p[0..len) starts like a TLS record (handshake, alert, change
 * cipher spec or application data, version 3.x). */
int sniff_tls_record(const uint8_t *p, size_t len);

/* Whether the first bytes could be a PROXY header of either version. */
static inline int sniff_is_proxy(enum sniff_kind k)
{
    return k == SNIFF_PROXY_V1 || k == SNIFF_PROXY_V2;
}

#endif
