/* TLS ClientHello peek: the SNI host name and ALPN list from the first
 * handshake message of a stream, without terminating TLS. Pure: no I/O, no
 * allocation; outputs point into the caller's buffers. */
#ifndef RINGRELAY_CLIENTHELLO_H
#define RINGRELAY_CLIENTHELLO_H

#include <stddef.h>
#include <stdint.h>

/* The longest DNS name. */
#define CLIENTHELLO_SNI_MAX 253

struct client_hello {
    const uint8_t *sni; /* host_name of server_name, NULL when absent */
    size_t sni_len;
    const uint8_t *alpn; /* ALPN protocol_name_list: (u8 length, name)*; NULL when absent */
    size_t alpn_len;
    size_t need; /* after -EAGAIN: bytes of stream needed before trying again */
};

/* Parses the ClientHello at the start of buf[0..len): one handshake message
 * that may span several TLS records, each of which may arrive in pieces.
 * When it spans records it is reassembled into scratch (cap bytes), which
 * also bounds its size. Returns 0 with *ch filled, -EAGAIN (ch->need says
 * how much stream to wait for), -EPROTO when this is not a well-formed
 * ClientHello, or -E2BIG when the message is larger than cap. */
int clienthello_parse(const uint8_t *buf, size_t len, uint8_t *scratch, size_t cap,
                      struct client_hello *ch);

/* Walks an ALPN list: *pos starts at 0. Returns 1 with the next protocol
 * name, 0 at the end. */
int clienthello_alpn_next(const struct client_hello *ch, size_t *pos, const uint8_t **name,
                          size_t *len);

#endif
