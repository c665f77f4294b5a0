/* Inbound PROXY protocol header parser (v1 text and v2 binary), as
 * specified in HAProxy's doc/proxy-protocol.txt. Pure: no I/O, no
 * allocation, no logging; outputs point into the caller's buffer. */
#ifndef RINGRELAY_PROXY_PARSE_H
#define RINGRELAY_PROXY_PARSE_H

#include "addr.h"
#include "proxy.h"

#include <stddef.h>
#include <stdint.h>

enum proxy_in { PROXY_IN_OFF, PROXY_IN_V1, PROXY_IN_V2, PROXY_IN_ANY };

/* A v1 line is at most 107 bytes with its CRLF. */
#define PROXY_V1_MAX 107
/* The default and the ceiling for the v2 cap (fixed part + 0xffff). */
#define PROXY_V2_CAP_DEFAULT 4096
#define PROXY_V2_CAP_MAX (PROXY_V2_FIXED_LEN + 0xffff)

/* The spec caps a UNIQUE_ID at 128 bytes. */
#define PROXY_UNIQUE_ID_MAX 128

struct proxy_header {
    int version; /* 1 or 2 */
    /* Whether src and dst hold the addresses the header carries. Not for
     * LOCAL, v1 UNKNOWN, or families other than TCP over IPv4/IPv6: the
     * connection's own endpoints stand. */
    int has_addr;
    int local; /* v2 LOCAL command: a health check or the like */
    union sockaddr_inet src, dst;
    const uint8_t *tlv; /* v2 TLVs, all validated; NULL when none */
    size_t tlv_len;
    const char *why; /* when malformed: what, as a short phrase */
};

/* Parses the header at the start of buf[0..len) in the given mode (not
 * PROXY_IN_OFF); v2_cap bounds a v2 header's total size. Returns the bytes
 * the header takes (never more: what follows is the stream's), -EAGAIN
 * while everything so far could still begin a valid header, or -EPROTO
 * with h->why set. */
int proxy_parse(const uint8_t *buf, size_t len, enum proxy_in mode, size_t v2_cap,
                struct proxy_header *h);

/* Walks the TLVs of a parsed header: *pos starts at 0. Returns 1 with the
 * next TLV's type, value and length, or 0 at the end. */
int proxy_tlv_next(const struct proxy_header *h, size_t *pos, uint8_t *type, const uint8_t **value,
                   uint16_t *len);

#endif
