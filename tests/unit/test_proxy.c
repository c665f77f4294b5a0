/* PROXY header encoder: exact bytes against the spec's vectors. */
#include "addr.h"
#include "crc32c.h"
#include "proxy.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static union sockaddr_inet A(const char *s) {
    union sockaddr_inet a;
    cr_assert_eq(addr_parse(s, &a), 0, "parse %s", s);
    return a;
}

struct v2_case {
    const char *src, *dst, *hex;
};

static const struct v2_case v2_cases[] = {
    /* The example in HAProxy's doc/proxy-protocol.txt. */
    {"192.0.2.1:123", "192.0.2.2:5678",
     "0D0A0D0A000D0A515549540A 21 11 000C C0000201 C0000202 007B 162E"},
    {"127.0.0.2:44444", "127.0.0.1:8443",
     "0D0A0D0A000D0A515549540A 21 11 000C 7F000002 7F000001 AD9C 20FB"},
    {"[2001:db8::1]:1", "[::1]:65535",
     "0D0A0D0A000D0A515549540A 21 21 0024 20010DB8000000000000000000000001 "
     "00000000000000000000000000000001 0001 FFFF"},
    /* v4-mapped on a dual-stack listener goes out as TCP4. */
    {"[::ffff:10.1.2.3]:1000", "[::ffff:10.0.0.1]:443",
     "0D0A0D0A000D0A515549540A 21 11 000C 0A010203 0A000001 03E8 01BB"},
};

Test(proxy_v2, vectors)
{
    for (size_t i = 0; i < sizeof(v2_cases) / sizeof(v2_cases[0]); i++) {
        union sockaddr_inet s = A(v2_cases[i].src), d = A(v2_cases[i].dst);
        uint8_t want[128], got[PROXY_HDR_MAX];
        size_t wn = unhex(v2_cases[i].hex, want);
        int n = proxy_v2_encode(got, sizeof(got), &s.sa, &d.sa);
        cr_assert_eq(n, (int)wn, "case %zu: length %d, want %zu", i, n, wn);
        cr_assert_arr_eq(got, want, wn, "case %zu bytes", i);
    }
}

Test(proxy_v2, local_when_address_unknown)
{
    static const uint8_t want[] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51,
                                   0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0x00, 0x00};
    union sockaddr_inet v4 = A("10.0.0.1:1"), v6 = A("[2001:db8::1]:2");
    uint8_t got[PROXY_HDR_MAX];

    cr_assert_eq(proxy_v2_encode(got, sizeof(got), NULL, &v4.sa), 16);
    cr_assert_arr_eq(got, want, sizeof(want));
    /* A true IPv6 address with an IPv4 one cannot share a header. */
    cr_assert_eq(proxy_v2_encode(got, sizeof(got), &v6.sa, &v4.sa), 16);
    cr_assert_arr_eq(got, want, sizeof(want));
}

Test(proxy_v2, too_small_buffer)
{
    union sockaddr_inet s = A("[::1]:1"), d = A("[::1]:2");
    uint8_t got[PROXY_HDR_MAX];

    cr_assert_eq(proxy_v2_encode(got, 51, &s.sa, &d.sa), -ENOSPC);
    cr_assert_eq(proxy_v2_encode(got, 52, &s.sa, &d.sa), 52);
    cr_assert_eq(proxy_v2_encode(got, 15, NULL, NULL), -ENOSPC);
}

struct v1_case {
    const char *src, *dst, *line;
};

static const struct v1_case v1_cases[] = {
    {"192.0.2.1:123", "192.0.2.2:5678", "PROXY TCP4 192.0.2.1 192.0.2.2 123 5678\r\n"},
    {"[::1]:40000", "[2001:db8::2]:443", "PROXY TCP6 ::1 2001:db8::2 40000 443\r\n"},
    {"[::ffff:127.0.0.2]:5", "[::ffff:127.0.0.1]:6", "PROXY TCP4 127.0.0.2 127.0.0.1 5 6\r\n"},
    /* The longest possible line: 104 bytes, within the spec's 107. */
    {"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
     "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
     "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
     "65535 65535\r\n"},
};

Test(proxy_v1, vectors)
{
    for (size_t i = 0; i < sizeof(v1_cases) / sizeof(v1_cases[0]); i++) {
        union sockaddr_inet s = A(v1_cases[i].src), d = A(v1_cases[i].dst);
        uint8_t got[PROXY_HDR_MAX];
        int n = proxy_v1_encode(got, sizeof(got), &s.sa, &d.sa);
        cr_assert_eq(n, (int)strlen(v1_cases[i].line), "case %zu length %d", i, n);
        cr_assert_arr_eq(got, v1_cases[i].line, (size_t)n, "case %zu", i);
        cr_assert_leq(n, 107);
    }
}

Test(proxy_v1, unknown)
{
    uint8_t got[PROXY_HDR_MAX];

    cr_assert_eq(proxy_v1_encode(got, sizeof(got), NULL, NULL), 15);
    cr_assert_arr_eq(got, "PROXY UNKNOWN\r\n", 15);
}

Test(proxy, off_writes_nothing)
{
    union sockaddr_inet s = A("1.2.3.4:5"), d = A("5.6.7.8:9");
    uint8_t got[PROXY_HDR_MAX] = {0xAA};

    cr_assert_eq(proxy_encode(PROXY_OFF, got, sizeof(got), &s.sa, &d.sa), 0);
    cr_assert_eq(got[0], 0xAA);
    cr_assert_eq(proxy_encode(PROXY_V2, got, sizeof(got), &s.sa, &d.sa), 28);
    cr_assert_eq(proxy_encode(PROXY_V1, got, sizeof(got), &s.sa, &d.sa), 32);
}

Test(proxy_v2, tlvs_and_crc32c)
{
    union sockaddr_inet s = A("10.0.0.1:8080"), d = A("10.0.0.2:443");
    uint8_t buf[512], want[512];
    size_t len = (size_t)proxy_v2_encode(buf, sizeof(buf), &s.sa, &d.sa);
    size_t wn = unhex("0D0A0D0A000D0A515549540A 21 11 001F 0A000001 0A000002 1F90 01BB "
                      "02 000B 6578616D706C652E636F6D 01 0002 6832",
                      want);

    cr_assert_eq(proxy_v2_add_tlv(buf, sizeof(buf), &len, 0x02, "example.com", 11), 0);
    cr_assert_eq(proxy_v2_add_tlv(buf, sizeof(buf), &len, 0x01, "h2", 2), 0);
    cr_assert_eq(len, wn);
    cr_assert_arr_eq(buf, want, wn);
    cr_assert_eq(proxy_v2_add_crc32c(buf, sizeof(buf), &len), 0);
    cr_assert_eq(len, wn + 7);
    cr_assert_eq(buf[15], 0x26, "length covers the CRC TLV");
    /* Zero the CRC value and recompute: it is the CRC of that. */
    {
        uint8_t copy[512];
        uint32_t crc, got = (uint32_t)buf[len - 4] << 24 | (uint32_t)buf[len - 3] << 16 |
                            (uint32_t)buf[len - 2] << 8 | buf[len - 1];
        memcpy(copy, buf, len);
        memset(copy + len - 4, 0, 4);
        crc = crc32c(0, copy, len);
        cr_assert_eq(crc, got);
    }
    cr_assert_eq(proxy_v2_add_tlv(buf, len + 3, &len, 0x04, "x", 1), -ENOSPC);
}
