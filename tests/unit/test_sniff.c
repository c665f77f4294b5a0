/* First-bytes classification used to explain refused connections. */
#include "sniff.h"

#include <criterion/criterion.h>
#include <string.h>

struct sniff_case {
    const char *bytes;
    size_t len;
    enum sniff_kind kind;
};

#define S(lit) lit, sizeof(lit) - 1

static const struct sniff_case cases[] = {
    {S("\x16\x03\x01\x02\x00\x01"), SNIFF_TLS},
    {S("\x16"), SNIFF_TLS},
    {S("\x16\x02"), SNIFF_OTHER},
    {S("GET / HTTP/1.1\r\n"), SNIFF_HTTP},
    {S("CONNECT example.com:443 HTTP/1.1\r\n"), SNIFF_HTTP},
    {S("PRI * HTTP/2.0\r\n\r\nSM"), SNIFF_HTTP},
    {S("GETX / HTTP/1.1"), SNIFF_OTHER},
    {S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), SNIFF_PROXY_V1},
    {S("PRO"), SNIFF_PROXY_V1},
    {S("\r\n\r\n\0\r\nQUIT\n\x21"), SNIFF_PROXY_V2},
    {S("\r\n"), SNIFF_PROXY_V2},
    {S("SSH-2.0-OpenSSH"), SNIFF_OTHER},
    {S(""), SNIFF_OTHER},
};

Test(sniff, first_bytes)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_assert_eq(sniff_first_bytes((const uint8_t *)cases[i].bytes, cases[i].len),
                     cases[i].kind, "case %zu", i);
}

Test(sniff, tls_record)
{
    cr_assert(sniff_tls_record((const uint8_t *)"\x15\x03\x03\x00\x02\x02\x46", 7));
    cr_assert(sniff_tls_record((const uint8_t *)"\x16\x03\x03", 3));
    cr_assert(sniff_tls_record((const uint8_t *)"\x17", 1));
    cr_assert_not(sniff_tls_record((const uint8_t *)"HTTP/1.1 400", 12));
    cr_assert_not(sniff_tls_record((const uint8_t *)"\x16\x01", 2));
    cr_assert_not(sniff_tls_record((const uint8_t *)"", 0));
}
