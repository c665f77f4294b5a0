/* Command-line parsing: defaults, every flag, and one-line errors. */
#include "log.h"
#include "options.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#define ARGV(...) ((char *const[]){"ringrelay", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"ringrelay", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(o, err, ...) options_parse(o, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), err, sizeof(err))

Test(options, defaults)
{
    struct options o;
    char err[256];

    cr_assert_eq(PARSE(&o, err, "--listen", "127.0.0.1:8443", "--backend", "127.0.0.1:9443"),
                 OPTIONS_RUN);
    cr_assert_eq(o.n_listen, 1);
    cr_assert_eq(o.proxy, PROXY_V2);
    cr_assert_eq(o.io, IO_AUTO);
    cr_assert_eq(o.splice, SPLICE_AUTO);
    cr_assert_eq(o.workers, 0);
    cr_assert_eq(o.connect_timeout_ms, 5000);
    cr_assert_eq(o.idle_timeout_ms, 300000);
    cr_assert_eq(o.max_connections, 0);
    cr_assert_eq(o.log_level, LOG_LEVEL_INFO);
}

Test(options, every_flag)
{
    struct options o;
    char err[256];

    cr_assert_eq(PARSE(&o, err, "--listen", "127.0.0.1:1", "--listen=[::1]:2", "--backend",
                       "[::1]:3", "--proxy-protocol", "v1", "--workers", "3", "--io", "epoll",
                       "--splice", "never", "--connect-timeout", "250ms", "--idle-timeout", "2m",
                       "--max-connections", "500", "--log-level", "debug"),
                 OPTIONS_RUN, "%s", err);
    cr_assert_eq(o.n_listen, 2);
    cr_assert_eq(o.listen[1].sa.sa_family, AF_INET6);
    cr_assert_eq(o.backend.sa.sa_family, AF_INET6);
    cr_assert_eq(o.proxy, PROXY_V1);
    cr_assert_eq(o.workers, 3);
    cr_assert_eq(o.io, IO_EPOLL);
    cr_assert_eq(o.splice, SPLICE_NEVER);
    cr_assert_eq(o.connect_timeout_ms, 250);
    cr_assert_eq(o.idle_timeout_ms, 120000);
    cr_assert_eq(o.max_connections, 500);
    cr_assert_eq(o.log_level, LOG_LEVEL_DEBUG);
}

Test(options, inbound_proxy)
{
    struct options o;
    char err[256];

    cr_assert_eq(PARSE(&o, err, "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2"),
                 OPTIONS_RUN);
    cr_assert_eq(o.proxy_in, PROXY_IN_OFF);
    cr_assert_eq(o.header_timeout_ms, 5000);
    cr_assert_eq(o.header_max, 4096);
    cr_assert_eq(PARSE(&o, err, "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2",
                       "--proxy-protocol-in", "any", "--trusted-source", "192.0.2.0/24",
                       "--trusted-source=2001:db8::1", "--header-timeout", "1500ms",
                       "--header-max-size", "16384"),
                 OPTIONS_RUN, "%s", err);
    cr_assert_eq(o.proxy_in, PROXY_IN_ANY);
    cr_assert_eq(o.n_trusted, 2);
    cr_assert_eq(o.trusted[0].bits, 24);
    cr_assert_eq(o.trusted[1].family, AF_INET6);
    cr_assert_eq(o.header_timeout_ms, 1500);
    cr_assert_eq(o.header_max, 16384);
    cr_assert_eq(PARSE(&o, err, "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2",
                       "--route", "a.example=127.0.0.1:3", "--route", "*.example=[::1]:4",
                       "--peek-timeout", "2s"),
                 OPTIONS_RUN, "%s", err);
    cr_assert_eq(o.n_routes, 2);
    cr_assert(o.routes[1].wildcard);
    cr_assert_eq(o.peek_timeout_ms, 2000);
    cr_assert_eq(PARSE(&o, err, "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2",
                       "--proxy-protocol-in", "v2", "--trusted-source", "10.0.0.0/8", "--tlvs",
                       "authority,alpn,unique_id,crc32c,0xEA,5"),
                 OPTIONS_RUN, "%s", err);
    cr_assert_eq(o.tlvs, TLV_AUTHORITY | TLV_ALPN | TLV_UNIQUE_ID | TLV_CRC32C);
    cr_assert_eq(o.n_tlv_pass, 2);
    cr_assert_eq(o.tlv_pass[0], 0xEA);
    cr_assert_eq(o.tlv_pass[1], 5);
}

Test(options, help_and_version)
{
    struct options o;
    char err[256];

    cr_assert_eq(PARSE(&o, err, "--help"), OPTIONS_HELP);
    cr_assert_eq(PARSE(&o, err, "--listen", "1.2.3.4:5", "--version"), OPTIONS_VERSION);
}

struct bad {
    const char *const argv[10];
    const char *flag; /* the error line must start with this */
};

static const struct bad bads[] = {
    {{"--listen", "foo", "--backend", "1.1.1.1:1"}, "--listen: 'foo'"},
    {{"--listen", "127.0.0.1:0", "--backend", "1.1.1.1:1"}, "--listen: '127.0.0.1:0'"},
    {{"--listen", "127.0.0.1:70000", "--backend", "1.1.1.1:1"}, "--listen: "},
    {{"--listen", "127.0.0.1:1", "--backend", "x:1"}, "--backend: 'x:1'"},
    {{"--listen", "127.0.0.1:1"}, "--backend: required"},
    {{"--backend", "127.0.0.1:1"}, "--listen: required"},
    {{"--bogus"}, "--bogus: unknown option"},
    {{"--bogus", "1"}, "--bogus: unknown option"},
    {{"--listen"}, "--listen: missing value"},
    {{"--workers", "0"}, "--workers: '0'"},
    {{"--workers", "two"}, "--workers: 'two'"},
    {{"--connect-timeout", "xyz"}, "--connect-timeout: 'xyz'"},
    {{"--connect-timeout", "0"}, "--connect-timeout: '0'"},
    {{"--idle-timeout", "5y"}, "--idle-timeout: '5y'"},
    {{"--io", "nope"}, "--io: 'nope'"},
    {{"--proxy-protocol", "v3"}, "--proxy-protocol: 'v3'"},
    {{"--splice", "sometimes"}, "--splice: 'sometimes'"},
    {{"--log-level", "loud"}, "--log-level: 'loud'"},
    {{"--max-connections", "-1"}, "--max-connections: '-1'"},
    {{"stray"}, "stray: unexpected argument"},
    {{"--listen", "127.0.0.1:1", "--backend", "1.1.1.1:1", "--proxy-protocol-in", "v2"},
     "--proxy-protocol-in: needs at least one --trusted-source"},
    {{"--listen", "127.0.0.1:1", "--backend", "1.1.1.1:1", "--trusted-source", "10.0.0.0/8"},
     "--trusted-source: has no effect"},
    {{"--trusted-source", "10.1.2.3/8"},
     "--trusted-source: '10.1.2.3/8': address has bits set below the /8 prefix; did you mean "
     "10.0.0.0/8?"},
    {{"--trusted-source", "10.0.0.0/40"}, "--trusted-source: '10.0.0.0/40'"},
    {{"--proxy-protocol-in", "v3"}, "--proxy-protocol-in: 'v3'"},
    {{"--header-timeout", "0"}, "--header-timeout: '0'"},
    {{"--header-max-size", "16385"}, "--header-max-size: '16385': expected a size from 16"},
    {{"--header-max-size", "15"}, "--header-max-size: '15'"},
    {{"--route", "example.com"}, "--route: 'example.com': bad name"},
    {{"--route", "a.com=nowhere"}, "--route: 'a.com=nowhere': bad address"},
    {{"--route", "a.com=1.1.1.1:1", "--route", "A.com=2.2.2.2:2"},
     "--route: 'A.com=2.2.2.2:2': that name already has a route"},
    {{"--peek-timeout", "soon"}, "--peek-timeout: 'soon'"},
    {{"--tlvs", "authority,bogus"}, "--tlvs: 'authority,bogus'"},
    {{"--tlvs", "0x100"}, "--tlvs: '0x100'"},
    {{"--listen", "127.0.0.1:1", "--backend", "1.1.1.1:1", "--proxy-protocol", "v1", "--tlvs",
      "crc32c"},
     "--tlvs: only a v2 header"},
    {{"--listen", "127.0.0.1:1", "--backend", "1.1.1.1:1", "--tlvs", "0xEA"},
     "--tlvs: copying TLV types needs --proxy-protocol-in"},
};

Test(options, errors_name_the_flag)
{
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        char *argv[12] = {"ringrelay"};
        struct options o;
        char err[256] = "";
        int argc = 1;

        for (int k = 0; bads[i].argv[k]; k++)
            argv[argc++] = (char *)bads[i].argv[k];
        cr_assert_eq(options_parse(&o, argc, argv, err, sizeof(err)), -EINVAL, "case %zu", i);
        cr_assert_eq(strncmp(err, bads[i].flag, strlen(bads[i].flag)), 0,
                     "case %zu: '%s' does not start with '%s'", i, err, bads[i].flag);
        cr_assert_null(strchr(err, '\n'), "one line");
    }
}

Test(options, durations)
{
    static const struct {
        const char *s;
        uint32_t ms;
    } ok[] = {{"0", 0}, {"7", 7000}, {"500ms", 500}, {"5s", 5000}, {"2m", 120000},
              {"1h", 3600000}, {"4294967295ms", 4294967295u}};
    static const char *const bad[] = {"", "s", "-1s", "1.5s", "5d", "5 s", "4294968s", "1hh"};
    uint32_t ms;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        cr_assert_eq(config_parse_duration(ok[i].s, &ms), 0, "%s", ok[i].s);
        cr_assert_eq(ms, ok[i].ms, "%s", ok[i].s);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(config_parse_duration(bad[i], &ms), -EINVAL, "accepted '%s'", bad[i]);
}
