/* Inbound PROXY parser: tables in the spirit of nginx's and Envoy's PROXY
 * tests. Every input ends against an unreadable page, and every valid
 * header is also fed in every shorter prefix. */
#include "addr.h"
#include "crc32c.h"
#include "proxy_parse.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SIG "0D0A0D0A000D0A515549540A "

static int parse(const void *data, size_t len, enum proxy_in mode, size_t cap,
                 struct proxy_header *h)
{
    return proxy_parse(guard_place(data, len), len, mode, cap, h);
}

static const char *fmt(const union sockaddr_inet *a, char *buf)
{
    return addr_format(&a->sa, buf, ADDR_STRLEN);
}

/* Two 108-byte AF_UNIX paths, "/run/a.sock" and "/run/b.sock", NUL-padded. */
#define UNIX_PATH_A                                                                                \
    "2F72756E2F612E736F636B000000000000000000000000000000000000000000000000000000000000000000"     \
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"     \
    "0000000000000000000000000000000000000000"
#define UNIX_PATH_B                                                                                \
    "2F72756E2F622E736F636B000000000000000000000000000000000000000000000000000000000000000000"     \
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"     \
    "0000000000000000000000000000000000000000"
#define UNIX_PATHS UNIX_PATH_A UNIX_PATH_B

/* A valid header: its bytes, what follows it, and what it carries. */
struct ok_case {
    const char *name;
    enum proxy_in mode;
    const char *text;      /* v1: the line; else NULL */
    const char *hex;       /* v2: the bytes; else NULL */
    const char *src, *dst; /* NULL when the connection's own addresses stand */
    int local;
    size_t tlv_len;
};

static const struct ok_case ok_cases[] = {
    {"v1 tcp4", PROXY_IN_V1, "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", NULL,
     "192.168.0.1:56324", "192.168.0.11:443", 0, 0},
    {"v1 tcp6", PROXY_IN_ANY, "PROXY TCP6 2001:db8::1 ::1 1 8443\r\n", NULL, "[2001:db8::1]:1",
     "[::1]:8443", 0, 0},
    {"v1 port 0", PROXY_IN_V1, "PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\n", NULL, "1.2.3.4:0",
     "5.6.7.8:65535", 0, 0},
    {"v1 unknown short", PROXY_IN_V1, "PROXY UNKNOWN\r\n", NULL, NULL, NULL, 0, 0},
    {"v1 unknown, the 107-byte worst case", PROXY_IN_ANY,
     "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:"
     "ffff 65535 65535\r\n",
     NULL, NULL, NULL, 0, 0},
    {"v1 tcp6 longest", PROXY_IN_V1,
     "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
     "65535 65535\r\n",
     NULL, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
     "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", 0, 0},
    {"v2 tcp4 (spec example)", PROXY_IN_V2, NULL, SIG "21 11 000C C0000201 C0000202 007B 162E",
     "192.0.2.1:123", "192.0.2.2:5678", 0, 0},
    {"v2 tcp4 in any", PROXY_IN_ANY, NULL, SIG "21 11 000C 7F000002 7F000001 AD9C 20FB",
     "127.0.0.2:44444", "127.0.0.1:8443", 0, 0},
    {"v2 tcp6", PROXY_IN_V2, NULL,
     SIG "21 21 0024 20010DB8000000000000000000000001 00000000000000000000000000000001 0001 FFFF",
     "[2001:db8::1]:1", "[::1]:65535", 0, 0},
    {"v2 tcp4 transport unspec", PROXY_IN_V2, NULL, SIG "21 10 000C 01020304 05060708 0001 0002",
     NULL, NULL, 0, 0},
    {"v2 local, no address", PROXY_IN_V2, NULL, SIG "20 00 0000", NULL, NULL, 1, 0},
    {"v2 local with a tcp4 block", PROXY_IN_V2, NULL, SIG "20 11 000C 01020304 05060708 0001 0002",
     NULL, NULL, 1, 0},
    {"v2 proxy unspec", PROXY_IN_V2, NULL, SIG "21 00 0000", NULL, NULL, 0, 0},
    {"v2 unix stream", PROXY_IN_V2, NULL, SIG "21 31 00D8 " UNIX_PATHS, NULL, NULL, 0, 0},
    {"v2 unix stream + noop", PROXY_IN_V2, NULL, SIG "21 31 00DC " UNIX_PATHS " 04 0001 00", NULL,
     NULL, 0, 4},
    {"v2 local unix", PROXY_IN_V2, NULL, SIG "20 31 00D8 " UNIX_PATHS, NULL, NULL, 1, 0},
    {"v2 tcp4 + authority, unique id, noop", PROXY_IN_V2, NULL,
     SIG "21 11 0027 0A000001 0A000002 1F90 01BB 02 000B 6578616D706C652E636F6D 05 0004 "
         "01020304 04 0003 000000",
     "10.0.0.1:8080", "10.0.0.2:443", 0, 27},
    {"v2 tcp4 + ssl with version sub-TLV", PROXY_IN_V2, NULL,
     SIG "21 11 001C 0A000001 0A000002 1F90 01BB 20 000D 01 00000000 21 0005 544C537631",
     "10.0.0.1:8080", "10.0.0.2:443", 0, 16},
    {"v2 tcp4 + AWS 0xEA", PROXY_IN_V2, NULL,
     SIG "21 11 0019 0A000001 0A000002 1F90 01BB EA 000A 01 7670 632D 3132 3334 35",
     "10.0.0.1:8080", "10.0.0.2:443", 0, 13},
};

static size_t case_bytes(const struct ok_case *c, uint8_t *out)
{
    if (c->text) {
        memcpy(out, c->text, strlen(c->text));
        return strlen(c->text);
    }
    return unhex(c->hex, out);
}

static void check_ok(const struct ok_case *c, const struct proxy_header *h)
{
    char a[ADDR_STRLEN], b[ADDR_STRLEN];

    cr_assert_eq(h->version, c->text ? 1 : 2, "%s: version", c->name);
    cr_assert_eq(h->local, c->local, "%s: local", c->name);
    cr_assert_eq(h->has_addr, c->src != NULL, "%s: has_addr", c->name);
    if (c->src) {
        cr_assert_str_eq(fmt(&h->src, a), c->src, "%s: src", c->name);
        cr_assert_str_eq(fmt(&h->dst, b), c->dst, "%s: dst", c->name);
    }
    cr_assert_eq(h->tlv_len, c->tlv_len, "%s: tlv_len %zu", c->name, h->tlv_len);
}

Test(proxy_parse, valid_headers)
{
    for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
        const struct ok_case *c = &ok_cases[i];
        uint8_t buf[512];
        size_t n = case_bytes(c, buf);
        struct proxy_header h;

        cr_assert_leq(n, c->text ? (size_t)PROXY_V1_MAX : sizeof(buf), "%s", c->name);
        cr_assert_eq(parse(buf, n, c->mode, PROXY_V2_CAP_DEFAULT, &h), (int)n,
                     "%s: whole header (%s)", c->name, h.why ? h.why : "");
        check_ok(c, &h);
    }
}

Test(proxy_parse, split_at_every_offset)
{
    for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
        const struct ok_case *c = &ok_cases[i];
        uint8_t buf[512];
        size_t n = case_bytes(c, buf);
        struct proxy_header h;

        for (size_t k = 0; k < n; k++)
            cr_assert_eq(parse(buf, k, c->mode, PROXY_V2_CAP_DEFAULT, &h), -EAGAIN,
                         "%s: %zu of %zu bytes", c->name, k, n);
    }
}

Test(proxy_parse, never_consumes_what_follows)
{
    static const char tail[] = "\x16\x03\x01\x02\x00GET / HTTP/1.1\r\n\r\n";
    for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
        const struct ok_case *c = &ok_cases[i];
        uint8_t buf[512];
        size_t n = case_bytes(c, buf);
        struct proxy_header h;

        memcpy(buf + n, tail, sizeof(tail) - 1);
        cr_assert_eq(parse(buf, n + sizeof(tail) - 1, c->mode, PROXY_V2_CAP_DEFAULT, &h), (int)n,
                     "%s", c->name);
        check_ok(c, &h);
    }
}

struct bad_case {
    const char *name;
    enum proxy_in mode;
    const char *text;
    const char *hex;
    const char *why; /* a word the reason must contain */
};

static const struct bad_case bad_cases[] = {
    {"v1 108-byte line", PROXY_IN_V1,
     "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:"
     "ffff 65535 65535 \r\n",
     NULL, "107"},
    {"v1 no CRLF in 107 bytes", PROXY_IN_V1,
     "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:"
     "ffff 65535 65535..",
     NULL, "107"},
    {"v1 lone LF", PROXY_IN_V1, "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", NULL, "LF"},
    {"v1 lone CR", PROXY_IN_V1, "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", NULL, "CR"},
    {"v1 CR inside", PROXY_IN_V1, "PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n", NULL, "CR"},
    {"v1 leading zero port", PROXY_IN_V1, "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", NULL, "port"},
    {"v1 port 65536", PROXY_IN_V1, "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", NULL, "port"},
    {"v1 port 6 digits", PROXY_IN_V1, "PROXY TCP4 1.2.3.4 5.6.7.8 1 100000\r\n", NULL, "port"},
    {"v1 signed port", PROXY_IN_V1, "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", NULL, "port"},
    {"v1 hex port", PROXY_IN_V1, "PROXY TCP4 1.2.3.4 5.6.7.8 0x1 2\r\n", NULL, "port"},
    {"v1 leading zero address", PROXY_IN_V1, "PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n", NULL,
     "address"},
    {"v1 v6 address in TCP4", PROXY_IN_V1, "PROXY TCP4 ::1 5.6.7.8 1 2\r\n", NULL, "address"},
    {"v1 v4 address in TCP6", PROXY_IN_V1, "PROXY TCP6 1.2.3.4 ::1 1 2\r\n", NULL, "address"},
    {"v1 short address", PROXY_IN_V1, "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", NULL, "address"},
    {"v1 double space", PROXY_IN_V1, "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", NULL, "fields"},
    {"v1 trailing space", PROXY_IN_V1, "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", NULL, "fields"},
    {"v1 extra field", PROXY_IN_V1, "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", NULL, "fields"},
    {"v1 missing field", PROXY_IN_V1, "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", NULL, "fields"},
    {"v1 unknown protocol", PROXY_IN_V1, "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", NULL, "TCP4"},
    {"v1 UNKNOWNX", PROXY_IN_V1, "PROXY UNKNOWNX\r\n", NULL, "fields"},
    {"v1 lower case", PROXY_IN_V1, "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", NULL, "v1"},
    {"v1 empty line", PROXY_IN_V1, "PROXY \r\n", NULL, "fields"},
    {"v1 no space after PROXY", PROXY_IN_V1, "PROXY\r\n", NULL, "v1"},
    {"v1 control byte", PROXY_IN_V1, "PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", NULL, "control"},
    {"v1 TLS ClientHello", PROXY_IN_V1, NULL, "16 03 01 02 00 01 00 01 FC 03 03", "v1"},
    {"v1 HTTP request", PROXY_IN_ANY, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", NULL, "v1"},
    {"v2 only, v1 sent", PROXY_IN_V2, "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", NULL, "v2"},
    {"v1 only, v2 sent", PROXY_IN_V1, NULL, SIG "21 11 000C 01020304 05060708 0001 0002", "v1"},
    {"v2 bad signature", PROXY_IN_V2, NULL, "0D0A0D0A000D0A515549540B 21 11 0000", "v2"},
    {"v2 version 1", PROXY_IN_V2, NULL, SIG "11 11 000C 01020304 05060708 0001 0002", "version"},
    {"v2 version 3", PROXY_IN_V2, NULL, SIG "31 11 000C 01020304 05060708 0001 0002", "version"},
    {"v2 command 2", PROXY_IN_V2, NULL, SIG "22 11 000C 01020304 05060708 0001 0002", "command"},
    {"v2 command F", PROXY_IN_V2, NULL, SIG "2F 11 000C 01020304 05060708 0001 0002", "command"},
    {"v2 family 4", PROXY_IN_V2, NULL, SIG "21 41 000C 01020304 05060708 0001 0002", "family"},
    {"v2 transport 3", PROXY_IN_V2, NULL, SIG "21 13 000C 01020304 05060708 0001 0002",
     "transport"},
    {"v2 datagram", PROXY_IN_V2, NULL, SIG "21 12 000C 01020304 05060708 0001 0002", "datagram"},
    {"v2 tcp4 length 11", PROXY_IN_V2, NULL, SIG "21 11 000B 01020304 05060708 0001 00", "shorter"},
    {"v2 unix length 215", PROXY_IN_V2, NULL, SIG "21 31 00D7 " UNIX_PATH_A UNIX_PATH_A, "shorter"},
    {"v2 tcp6 length 35", PROXY_IN_V2, NULL,
     SIG "21 21 0023 20010DB8000000000000000000000001 00000000000000000000000000000001 0001 FF",
     "shorter"},
    {"v2 local tcp4 length 0", PROXY_IN_V2, NULL, SIG "20 11 0000", "shorter"},
    {"v2 TLV past the length", PROXY_IN_V2, NULL,
     SIG "21 11 0012 01020304 05060708 0001 0002 04 0004 0000 00", "past"},
    {"v2 stray byte after TLV", PROXY_IN_V2, NULL,
     SIG "21 11 0011 01020304 05060708 0001 0002 04 0001 00 00", "stray"},
    {"v2 two stray bytes", PROXY_IN_V2, NULL, SIG "21 11 000E 01020304 05060708 0001 0002 04 00",
     "stray"},
    {"v2 unique id 129 bytes", PROXY_IN_V2, NULL,
     SIG "21 11 0090 01020304 05060708 0001 0002 05 0081 "
         "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
         "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
         "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
         "000000000000000000",
     "UNIQUE_ID"},
    {"v2 ssl TLV too short", PROXY_IN_V2, NULL,
     SIG "21 11 0013 01020304 05060708 0001 0002 20 0004 01000000", "SSL"},
    {"v2 ssl sub-TLV past the SSL TLV", PROXY_IN_V2, NULL,
     SIG "21 11 001A 01020304 05060708 0001 0002 20 000B 01 00000000 21 0005 544C53", "past"},
    {"v2 crc32c of 3 bytes", PROXY_IN_V2, NULL,
     SIG "21 11 0012 01020304 05060708 0001 0002 03 0003 000000", "CRC32C"},
    {"v2 crc32c wrong", PROXY_IN_V2, NULL,
     SIG "21 11 0013 01020304 05060708 0001 0002 03 0004 DEADBEEF", "CRC32C"},
};

static size_t bad_bytes(const struct bad_case *c, uint8_t *out)
{
    if (c->text) {
        memcpy(out, c->text, strlen(c->text));
        return strlen(c->text);
    }
    return unhex(c->hex, out);
}

Test(proxy_parse, malformed_headers)
{
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        uint8_t buf[512];
        size_t n = bad_bytes(c, buf);
        struct proxy_header h;

        cr_assert_eq(parse(buf, n, c->mode, PROXY_V2_CAP_DEFAULT, &h), -EPROTO, "%s", c->name);
        cr_assert(h.why && strstr(h.why, c->why), "%s: reason '%s' lacks '%s'", c->name,
                  h.why ? h.why : "(none)", c->why);
        /* No prefix of a malformed header may be taken as a header. */
        for (size_t k = 0; k < n; k++) {
            int ret = parse(buf, k, c->mode, PROXY_V2_CAP_DEFAULT, &h);
            cr_assert(ret == -EAGAIN || ret == -EPROTO, "%s: %zu bytes gave %d", c->name, k, ret);
        }
    }
}

Test(proxy_parse, early_verdict_on_a_client_hello)
{
    static const uint8_t hello[] = {0x16, 0x03, 0x01};
    struct proxy_header h;

    /* Diagnosis needs the verdict at the first byte, not after 107. */
    cr_assert_eq(parse(hello, 1, PROXY_IN_ANY, PROXY_V2_CAP_DEFAULT, &h), -EPROTO);
    cr_assert_eq(parse(hello, 1, PROXY_IN_V2, PROXY_V2_CAP_DEFAULT, &h), -EPROTO);
    cr_assert_eq(parse(hello, 3, PROXY_IN_V1, PROXY_V2_CAP_DEFAULT, &h), -EPROTO);
}

/* A TCP4 header whose NOOP TLV pads it to total bytes. */
static uint8_t *padded_header(size_t total)
{
    uint8_t *buf = calloc(1, total);
    size_t tlv = total - 16 - 12 - 3;

    cr_assert(buf);
    unhex(SIG "21 11 0000 01020304 05060708 0001 0002 04", buf);
    buf[14] = (uint8_t)((total - 16) >> 8);
    buf[15] = (uint8_t)(total - 16);
    buf[29] = (uint8_t)(tlv >> 8);
    buf[30] = (uint8_t)tlv;
    return buf;
}

Test(proxy_parse, length_0xffff_and_the_cap)
{
    size_t total = 16 + 0xffff;
    uint8_t *buf = padded_header(total);
    struct proxy_header h;

    cr_assert_eq(parse(buf, total, PROXY_IN_V2, PROXY_V2_CAP_MAX, &h), (int)total);
    cr_assert_eq(parse(buf, total - 1, PROXY_IN_V2, PROXY_V2_CAP_MAX, &h), -EAGAIN);
    /* Over the cap it fails at once, from the fixed part alone. */
    cr_assert_eq(parse(buf, 16, PROXY_IN_V2, PROXY_V2_CAP_DEFAULT, &h), -EPROTO);
    cr_assert(strstr(h.why, "cap"));
    free(buf);
    buf = padded_header(PROXY_V2_CAP_DEFAULT);
    cr_assert_eq(parse(buf, PROXY_V2_CAP_DEFAULT, PROXY_IN_V2, PROXY_V2_CAP_DEFAULT, &h),
                 PROXY_V2_CAP_DEFAULT);
    free(buf);
}

Test(proxy_parse, crc32c_right)
{
    uint8_t buf[64];
    size_t n = unhex(SIG "21 11 0013 01020304 05060708 0001 0002 03 0004 00000000", buf);
    uint32_t crc = crc32c(0, buf, n);
    struct proxy_header h;

    buf[n - 4] = (uint8_t)(crc >> 24);
    buf[n - 3] = (uint8_t)(crc >> 16);
    buf[n - 2] = (uint8_t)(crc >> 8);
    buf[n - 1] = (uint8_t)crc;
    cr_assert_eq(parse(buf, n, PROXY_IN_V2, PROXY_V2_CAP_DEFAULT, &h), (int)n, "%s", h.why);
    buf[20] ^= 1; /* any other byte changed breaks it */
    cr_assert_eq(parse(buf, n, PROXY_IN_V2, PROXY_V2_CAP_DEFAULT, &h), -EPROTO);
}

Test(crc32c, check_value)
{
    /* The standard check value of CRC-32C (Castagnoli). */
    cr_assert_eq(crc32c(0, "123456789", 9), 0xE3069283U);
    cr_assert_eq(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xE3069283U);
    cr_assert_eq(crc32c(0, "", 0), 0U);
}

Test(proxy_parse, tlv_walk)
{
    const struct ok_case *c = NULL;
    uint8_t buf[256], type;
    size_t n, pos = 0;
    const uint8_t *v;
    uint16_t len;
    struct proxy_header h;

    for (size_t i = 0; !c; i++)
        if (strstr(ok_cases[i].name, "authority"))
            c = &ok_cases[i];
    n = case_bytes(c, buf);
    cr_assert_eq(parse(buf, n, PROXY_IN_V2, PROXY_V2_CAP_DEFAULT, &h), (int)n);
    cr_assert_eq(proxy_tlv_next(&h, &pos, &type, &v, &len), 1);
    cr_assert_eq(type, PROXY_TLV_AUTHORITY);
    cr_assert_eq(len, 11);
    cr_assert_arr_eq(v, "example.com", 11);
    cr_assert_eq(proxy_tlv_next(&h, &pos, &type, &v, &len), 1);
    cr_assert_eq(type, PROXY_TLV_UNIQUE_ID);
    cr_assert_eq(len, 4);
    cr_assert_eq(proxy_tlv_next(&h, &pos, &type, &v, &len), 1);
    cr_assert_eq(type, PROXY_TLV_NOOP);
    cr_assert_eq(proxy_tlv_next(&h, &pos, &type, &v, &len), 0);
}

Test(proxy_parse, off_and_empty)
{
    struct proxy_header h;

    cr_assert_eq(parse("", 0, PROXY_IN_ANY, PROXY_V2_CAP_DEFAULT, &h), -EAGAIN);
    cr_assert_eq(parse("PROXY ", 6, PROXY_IN_OFF, PROXY_V2_CAP_DEFAULT, &h), -EPROTO);
}
