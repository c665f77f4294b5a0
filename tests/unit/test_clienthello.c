/* ClientHello peek: a real OpenSSL ClientHello, and built ones split over
 * records and segments at every offset, each against an unreadable page. */
#include "clienthello.h"
#include "data/clienthello_openssl.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#define CAP 16384

static uint8_t scratch[CAP];

static int parse(const void *data, size_t len, size_t cap, struct client_hello *ch)
{
    return clienthello_parse(guard_place(data, len), len, scratch, cap, ch);
}

static void put16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* Appends extension type with data[0..n). */
static size_t ext(uint8_t *p, unsigned type, const void *data, size_t n)
{
    put16(p, type);
    put16(p + 2, n);
    memcpy(p + 4, data, n);
    return 4 + n;
}

/* A ClientHello handshake message (no record layer) with the given SNI,
 * ALPN protocols ("h2,http/1.1") and padding extension size; NULL omits. */
static size_t hello(uint8_t *out, const char *sni, const char *alpn, size_t pad)
{
    uint8_t *p = out + 4, *exts;
    uint8_t buf[8192];
    size_t n;

    *p++ = 3;
    *p++ = 3;
    memset(p, 0xAB, 32);
    p += 32;
    *p++ = 0; /* no session id */
    put16(p, 4);
    memcpy(p + 2, "\x13\x01\x13\x02", 4);
    p += 6;
    *p++ = 1;
    *p++ = 0; /* null compression */
    exts = p;
    p += 2;
    if (sni) {
        size_t l = strlen(sni);
        put16(buf, l + 3);
        buf[2] = 0;
        put16(buf + 3, l);
        memcpy(buf + 5, sni, l);
        p += ext(p, 0, buf, l + 5);
    }
    if (alpn) {
        size_t k = 2;
        for (const char *a = alpn; *a;) {
            const char *comma = strchr(a, ',');
            size_t l = comma ? (size_t)(comma - a) : strlen(a);
            buf[k++] = (uint8_t)l;
            memcpy(buf + k, a, l);
            k += l;
            a += l + (comma ? 1 : 0);
        }
        put16(buf, k - 2);
        p += ext(p, 16, buf, k);
    }
    if (pad) {
        memset(buf, 0, pad);
        p += ext(p, 21, buf, pad);
    }
    put16(exts, (size_t)(p - exts - 2));
    n = (size_t)(p - out);
    out[0] = 1;
    out[1] = (uint8_t)((n - 4) >> 16);
    out[2] = (uint8_t)((n - 4) >> 8);
    out[3] = (uint8_t)(n - 4);
    return n;
}

/* Wraps msg in handshake records cut at the given message offsets. */
static size_t records(uint8_t *out, const uint8_t *msg, size_t n, const size_t *cuts, int ncuts)
{
    size_t at = 0, o = 0;

    for (int i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : n;
        out[o] = 0x16;
        out[o + 1] = 3;
        out[o + 2] = 1;
        put16(out + o + 3, end - at);
        memcpy(out + o + 5, msg + at, end - at);
        o += 5 + end - at;
        at = end;
    }
    return o;
}

static void expect_names(const struct client_hello *ch, const char *sni, const char *alpn0)
{
    size_t pos = 0, len;
    const uint8_t *name;

    if (!sni) {
        cr_assert_null(ch->sni);
    } else {
        cr_assert_eq(ch->sni_len, strlen(sni));
        cr_assert_arr_eq(ch->sni, sni, strlen(sni));
    }
    if (!alpn0) {
        cr_assert_null(ch->alpn);
        return;
    }
    cr_assert_eq(clienthello_alpn_next(ch, &pos, &name, &len), 1);
    cr_assert_eq(len, strlen(alpn0));
    cr_assert_arr_eq(name, alpn0, len);
}

Test(clienthello, openssl)
{
    struct client_hello ch;
    size_t pos = 0, len, n = clienthello_openssl_len;
    const uint8_t *name;

    cr_assert_eq(parse(clienthello_openssl, n, CAP, &ch), 0);
    expect_names(&ch, "example.com", "h2");
    cr_assert_eq(clienthello_alpn_next(&ch, &pos, &name, &len), 1);
    cr_assert_eq(clienthello_alpn_next(&ch, &pos, &name, &len), 1);
    cr_assert_arr_eq(name, "http/1.1", 8);
    cr_assert_eq(clienthello_alpn_next(&ch, &pos, &name, &len), 0);
    for (size_t k = 0; k < n; k++) {
        cr_assert_eq(parse(clienthello_openssl, k, CAP, &ch), -EAGAIN, "%zu", k);
        cr_assert_gt(ch.need, k, "need %zu at %zu", ch.need, k);
        cr_assert_leq(ch.need, n);
    }
}

Test(clienthello, split_over_records_and_segments)
{
    uint8_t msg[2048], stream[4096];
    /* A post-quantum-sized ClientHello: about 1.8 KB. */
    size_t n = hello(msg, "api.example.com", "h2,http/1.1", 1500);

    for (size_t cut = 1; cut < n; cut += 37) {
        size_t cuts[2] = {cut, cut + (n - cut) / 2};
        int ncuts = cuts[1] > cut && cuts[1] < n ? 2 : 1;
        size_t len = records(stream, msg, n, cuts, ncuts);
        struct client_hello ch;

        for (size_t k = 0; k < len; k += 13)
            cr_assert_eq(parse(stream, k, CAP, &ch), -EAGAIN, "cut %zu, %zu bytes", cut, k);
        cr_assert_eq(parse(stream, len, CAP, &ch), 0, "cut %zu", cut);
        expect_names(&ch, "api.example.com", "h2");
    }
}

Test(clienthello, without_sni_or_alpn)
{
    uint8_t msg[512], stream[600];
    struct client_hello ch;
    size_t n = hello(msg, NULL, NULL, 0), len = records(stream, msg, n, NULL, 0);

    cr_assert_eq(parse(stream, len, CAP, &ch), 0);
    expect_names(&ch, NULL, NULL);
    /* No extensions block at all (as TLS 1.0 clients may send). */
    msg[3] = (uint8_t)(msg[3] - 2);
    len = records(stream, msg, n - 2, NULL, 0);
    cr_assert_eq(parse(stream, len, CAP, &ch), 0);
}

Test(clienthello, too_large)
{
    uint8_t msg[8192], stream[9000];
    size_t n = hello(msg, "a.example", NULL, 6000), cut = 3000;
    size_t len = records(stream, msg, n, &cut, 1);
    struct client_hello ch;

    cr_assert_eq(parse(stream, len, 4096, &ch), -E2BIG);
    cr_assert_eq(parse(stream, len, CAP, &ch), 0);
}

/* Builds a message, lets mutate() break it, wraps it in one record. */
struct bad_case {
    const char *name;
    size_t at;        /* offset into the message to overwrite ... */
    const char *with; /* ... with these bytes (hex) */
};

Test(clienthello, malformed)
{
    /* Offsets into hello(msg, "ab.example", "h2", 0): 4 hdr, 2 version, 32
     * random, 1 sid, 2+4 suites, 1+1 compression = 47, extensions length
     * at 47, SNI ext at 49 (type 49, len 51, list len 53, name type 55,
     * name len 56, name 58..67), ALPN ext at 68 (list len 72, name len 74). */
    static const struct bad_case cases[] = {
        {"handshake type ServerHello", 0, "02"},
        {"version 2.0", 4, "02"},
        {"session id 33 bytes", 38, "21"},
        {"odd cipher suites length", 39, "0003"},
        {"no compression methods", 45, "00"},
        {"extensions longer than the message", 47, "0100"},
        {"SNI list longer than its extension", 53, "00FF"},
        {"empty host name", 56, "0000"},
        {"host name with a space", 60, "20"},
        {"host name with a NUL", 60, "00"},
        {"duplicate SNI (ALPN retyped)", 68, "0000"},
        {"ALPN empty name", 74, "00"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t msg[512], stream[600];
        size_t n = hello(msg, "ab.example", "h2", 0);
        struct client_hello ch;

        cr_assert_eq(n, 77, "layout changed: %zu", n);
        unhex(cases[i].with, msg + cases[i].at);
        cr_assert_eq(parse(stream, records(stream, msg, n, NULL, 0), CAP, &ch), -EPROTO, "%s",
                     cases[i].name);
    }
}

Test(clienthello, not_a_handshake_record)
{
    static const struct {
        const char *name, *hex;
    } cases[] = {
        {"application data", "17 0301 0005 0100000100"}, {"HTTP", "474554202F"},
        {"record version 2", "16 0201 0005 0100000100"}, {"empty record", "16 0301 0000"},
        {"record over 16 KiB", "16 0301 4001"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t buf[64];
        size_t n = unhex(cases[i].hex, buf);
        struct client_hello ch;

        cr_assert_eq(parse(buf, n, CAP, &ch), -EPROTO, "%s", cases[i].name);
    }
}

Test(clienthello, trailing_bytes_in_body)
{
    uint8_t msg[512], stream[600];
    size_t n = hello(msg, "x.example", NULL, 0);
    struct client_hello ch;

    /* One byte more in the message than the extensions account for. */
    msg[n] = 0;
    msg[3] = (uint8_t)(msg[3] + 1);
    cr_assert_eq(parse(stream, records(stream, msg, n + 1, NULL, 0), CAP, &ch), -EPROTO);
}
