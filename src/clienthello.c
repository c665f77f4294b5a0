/* ClientHello peek (RFC 8446 4.1.2, RFC 6066 3, RFC 7301 3.1): record
 * reassembly first, then a bounds-checked walk of the message. */
#include "clienthello.h"

#include <errno.h>
#include <string.h>

#define REC_HANDSHAKE 0x16
#define REC_HDR 5
#define REC_MAX 16384 /* a plaintext record's fragment */
#define HS_CLIENT_HELLO 0x01
#define HS_HDR 4
#define EXT_SERVER_NAME 0
#define EXT_ALPN 16
#define SNI_HOST_NAME 0

/* A bounds-checked reader over one message. */
struct rd {
    const uint8_t *p, *end;
};

static int rd_u8(struct rd *r, size_t *v)
{
    if (r->end - r->p < 1)
        return -1;
    *v = r->p[0];
    r->p += 1;
    return 0;
}

static int rd_u16(struct rd *r, size_t *v)
{
    if (r->end - r->p < 2)
        return -1;
    *v = (size_t)r->p[0] << 8 | r->p[1];
    r->p += 2;
    return 0;
}

/* Takes n bytes as a sub-reader. */
static int rd_sub(struct rd *r, size_t n, struct rd *sub)
{
    if ((size_t)(r->end - r->p) < n)
        return -1;
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return 0;
}

/* A u8- or u16-length-prefixed vector as a sub-reader. */
static int rd_vec(struct rd *r, int wide, struct rd *sub)
{
    size_t n;

    if ((wide ? rd_u16(r, &n) : rd_u8(r, &n)) < 0)
        return -1;
    return rd_sub(r, n, sub);
}

static int sni_ext(struct rd e, struct client_hello *ch)
{
    struct rd list, name;
    size_t type;

    if (rd_vec(&e, 1, &list) < 0 || e.p != e.end || list.p == list.end)
        return -1;
    while (list.p < list.end) {
        if (rd_u8(&list, &type) < 0 || rd_vec(&list, 1, &name) < 0)
            return -1;
        if (type != SNI_HOST_NAME || ch->sni)
            continue;
        if (name.p == name.end || name.end - name.p > CLIENTHELLO_SNI_MAX)
            return -1;
        for (const uint8_t *q = name.p; q < name.end; q++)
            if (*q <= 0x20 || *q >= 0x7f)
                return -1;
        ch->sni = name.p;
        ch->sni_len = (size_t)(name.end - name.p);
    }
    return 0;
}

static int alpn_ext(struct rd e, struct client_hello *ch)
{
    struct rd list, name;

    if (rd_vec(&e, 1, &list) < 0 || e.p != e.end || list.p == list.end)
        return -1;
    ch->alpn = list.p;
    ch->alpn_len = (size_t)(list.end - list.p);
    while (list.p < list.end)
        if (rd_vec(&list, 0, &name) < 0 || name.p == name.end)
            return -1;
    return 0;
}

static int extensions(struct rd r, struct client_hello *ch)
{
    int seen_sni = 0, seen_alpn = 0;

    while (r.p < r.end) {
        struct rd data;
        size_t type;

        if (rd_u16(&r, &type) < 0 || rd_vec(&r, 1, &data) < 0)
            return -1;
        if (type == EXT_SERVER_NAME && (seen_sni++ || sni_ext(data, ch) < 0))
            return -1;
        if (type == EXT_ALPN && (seen_alpn++ || alpn_ext(data, ch) < 0))
            return -1;
    }
    return 0;
}

/* The ClientHello body: version, random, session id, cipher suites,
 * compression methods, then (optionally) extensions, filling it exactly. */
static int hello_body(struct rd r, struct client_hello *ch)
{
    struct rd skip, ext;
    size_t version;

    if (rd_u16(&r, &version) < 0 || (version >> 8) != 3 || rd_sub(&r, 32, &skip) < 0)
        return -1;
    if (rd_vec(&r, 0, &skip) < 0 || skip.end - skip.p > 32)
        return -1;
    if (rd_vec(&r, 1, &skip) < 0 || skip.p == skip.end || (skip.end - skip.p) % 2)
        return -1;
    if (rd_vec(&r, 0, &skip) < 0 || skip.p == skip.end)
        return -1;
    if (r.p == r.end)
        return 0;
    if (rd_vec(&r, 1, &ext) < 0 || r.p != r.end)
        return -1;
    return extensions(ext, ch);
}

/* Gathers the handshake message from the records in buf into one run of
 * bytes: in place when the first record holds it all, else in scratch.
 * Returns the message length with *msg set, or -EAGAIN/-EPROTO/-E2BIG. */
static long gather(const uint8_t *buf, size_t len, uint8_t *scratch, size_t cap,
                   const uint8_t **msg, size_t *need)
{
    size_t at = 0, got = 0, want = 0;

    while (got < HS_HDR || got < want) {
        size_t rec, take;

        if (len - at < REC_HDR) {
            *need = at + REC_HDR;
            return -EAGAIN;
        }
        rec = (size_t)buf[at + 3] << 8 | buf[at + 4];
        if (buf[at] != REC_HANDSHAKE || buf[at + 1] != 3 || rec == 0 || rec > REC_MAX)
            return -EPROTO;
        if (len - at - REC_HDR < rec) {
            *need = at + REC_HDR + rec;
            return -EAGAIN;
        }
        if (at == 0 && buf[REC_HDR] != HS_CLIENT_HELLO)
            return -EPROTO;
        if (at == 0 && rec >= HS_HDR) {
            want = HS_HDR + ((size_t)buf[REC_HDR + 1] << 16 | (size_t)buf[REC_HDR + 2] << 8 |
                             buf[REC_HDR + 3]);
            if (want > cap)
                return -E2BIG;
            if (rec >= want) {
                *msg = buf + REC_HDR;
                return (long)want;
            }
        }
        take = rec;
        if (got + take > cap)
            return -E2BIG;
        memcpy(scratch + got, buf + at + REC_HDR, take);
        got += take;
        at += REC_HDR + rec;
        if (want == 0 && got >= HS_HDR) {
            if (scratch[0] != HS_CLIENT_HELLO)
                return -EPROTO;
            want = HS_HDR + ((size_t)scratch[1] << 16 | (size_t)scratch[2] << 8 | scratch[3]);
            if (want > cap)
                return -E2BIG;
        }
    }
    /* Another handshake message may follow in the last record: not ours. */
    *msg = scratch;
    return (long)want;
}

int clienthello_parse(const uint8_t *buf, size_t len, uint8_t *scratch, size_t cap,
                      struct client_hello *ch)
{
    const uint8_t *msg = NULL;
    struct rd r;
    long n;

    memset(ch, 0, sizeof(*ch));
    if (len >= 1 && buf[0] != REC_HANDSHAKE)
        return -EPROTO;
    n = gather(buf, len, scratch, cap, &msg, &ch->need);
    if (n < 0)
        return (int)n;
    r.p = msg + HS_HDR;
    r.end = msg + n;
    if (hello_body(r, ch) < 0) {
        memset(ch, 0, sizeof(*ch));
        return -EPROTO;
    }
    return 0;
}

int clienthello_alpn_next(const struct client_hello *ch, size_t *pos, const uint8_t **name,
                          size_t *len)
{
    if (!ch->alpn || *pos >= ch->alpn_len)
        return 0;
    *len = ch->alpn[*pos];
    *name = ch->alpn + *pos + 1;
    *pos += 1 + *len;
    return 1;
}
