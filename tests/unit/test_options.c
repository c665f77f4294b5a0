/* The command line: every flag is a key of the configuration table, so a
 * flag and the file's key take the same values, bounds, defaults and
 * messages. Defaults, every flag, and one-line errors. */
#include "log.h"
#include "options.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define ARGV(...) ((char *const[]){"ringrelay", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"ringrelay", __VA_ARGS__}) / sizeof(char *)))
#define LOAD(err, ...) load(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), err, sizeof(err))

#define MINIMAL                                                                                    \
    "listeners:\n  - name: a\n    bind: 127.0.0.1:8443\n"                                          \
    "backends:\n  - name: b\n    servers:\n      - address: 127.0.0.1:9443\n"

static struct options o;
static struct config cfg;

/* Parses argv and loads what it says as the relay would, with MINIMAL
 * standing in for the file when the flags do not describe everything.
 * Returns options_parse()'s answer, or config_load()'s error. */
static int load(int argc, char *const argv[], char *err, size_t errlen)
{
    int ret = options_parse(&o, argc, argv, err, errlen);

    config_free(&cfg);
    if (ret != OPTIONS_RUN)
        return ret;
    if (o.config_path)
        return config_load(&cfg, "t.yaml", MINIMAL, strlen(MINIMAL), o.args, o.n_args, err, errlen);
    return config_load(&cfg, NULL, NULL, 0, o.args, o.n_args, err, errlen);
}

Test(options, defaults)
{
    char err[256] = "";
    const struct config_backend *b = &cfg.backends[0];

    cr_assert_eq(LOAD(err, "--listen", "127.0.0.1:8443", "--backend", "127.0.0.1:9443"), 0, "%s",
                 err);
    cr_assert_null(o.config_path, "the flags describe it all");
    cr_assert_eq(cfg.n_listeners, 1);
    cr_assert_str_eq(cfg.listeners[0].name, "cli");
    cr_assert_eq(cfg.listeners[0].n_bind, 1);
    cr_assert_eq(cfg.n_backends, 1);
    cr_assert_eq(b->proxy_protocol, PROXY_V2);
    cr_assert_eq(b->retries, 0, "one server: nothing to retry");
    cr_assert_eq(b->health.mode, CHECK_OFF);
    cr_assert_eq(cfg.io, IO_AUTO);
    cr_assert_eq(cfg.splice, SPLICE_AUTO);
    cr_assert_eq(cfg.workers, 0);
    cr_assert_eq(b->connect_timeout_ms, 5000);
    cr_assert_eq(b->idle_timeout_ms, 300000);
    cr_assert_eq(cfg.max_connections, 0);
    cr_assert_eq(cfg.accept_backlog, 4096);
    cr_assert_eq(cfg.log_level, LOG_LEVEL_INFO);
}

Test(options, every_flag)
{
    char err[256] = "";

    cr_assert_eq(LOAD(err, "--listen", "127.0.0.1:1", "--listen=[::1]:2", "--backend", "[::1]:3",
                      "--proxy-protocol", "v1", "--workers", "3", "--io", "epoll", "--splice",
                      "never", "--connect-timeout", "250ms", "--idle-timeout", "2m",
                      "--max-connections", "500", "--log-level", "debug", "--accept-backlog", "128",
                      "--drain-timeout", "1s", "--access-log", "stderr", "--access-log-mode",
                      "errors", "--access-log-format", "json", "--stats-socket", "/run/x.sock",
                      "--stats-socket-group", "adm", "--user", "nobody", "--group", "nogroup",
                      "--max-connections-per-source", "7"),
                 0, "%s", err);
    cr_assert_eq(cfg.listeners[0].n_bind, 2);
    cr_assert_eq(cfg.listeners[0].bind[1].sa.sa_family, AF_INET6);
    cr_assert_eq(cfg.backends[0].servers[0].inet.sa.sa_family, AF_INET6);
    cr_assert_eq(cfg.backends[0].proxy_protocol, PROXY_V1);
    cr_assert_eq(cfg.workers, 3);
    cr_assert_eq(cfg.io, IO_EPOLL);
    cr_assert_eq(cfg.splice, SPLICE_NEVER);
    cr_assert_eq(cfg.backends[0].connect_timeout_ms, 250);
    cr_assert_eq(cfg.backends[0].idle_timeout_ms, 120000);
    cr_assert_eq(cfg.max_connections, 500);
    cr_assert_eq(cfg.log_level, LOG_LEVEL_DEBUG);
    cr_assert_eq(cfg.accept_backlog, 128);
    cr_assert_eq(cfg.drain_timeout_ms, 1000);
    cr_assert_str_eq(cfg.access_log.path, "stderr");
    cr_assert_eq(cfg.access_log.mode, ACCESS_LOG_ERRORS);
    cr_assert_eq(cfg.access_log.format, ACCESS_LOG_JSON);
    cr_assert_str_eq(cfg.stats_socket, "/run/x.sock");
    cr_assert_str_eq(cfg.stats_socket_group, "adm");
    cr_assert_str_eq(cfg.user, "nobody");
    cr_assert_str_eq(cfg.group, "nogroup");
    cr_assert_eq(cfg.listeners[0].max_per_source, 7);
}

Test(options, inbound_proxy)
{
    char err[256] = "";
    const struct config_listener *l = &cfg.listeners[0];

    cr_assert_eq(LOAD(err, "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2"), 0, "%s", err);
    cr_assert_eq(l->proxy_protocol_in, PROXY_IN_OFF);
    cr_assert_eq(l->header_timeout_ms, 5000);
    cr_assert_eq(l->header_max_size, 4096);
    cr_assert_eq(LOAD(err, "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2",
                      "--proxy-protocol-in", "any", "--trusted-source", "192.0.2.0/24",
                      "--trusted-source=2001:db8::1", "--header-timeout", "1500ms",
                      "--header-max-size", "16384"),
                 0, "%s", err);
    cr_assert_eq(l->proxy_protocol_in, PROXY_IN_ANY);
    cr_assert_eq(l->n_trusted, 2);
    cr_assert_eq(l->trusted[0].bits, 24);
    cr_assert_eq(l->trusted[1].family, AF_INET6);
    cr_assert_eq(l->header_timeout_ms, 1500);
    cr_assert_eq(l->header_max_size, 16384);
    cr_assert_eq(LOAD(err, "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2", "--route",
                      "a.example=127.0.0.1:3", "--route", "*.example=[::1]:4", "--peek-timeout",
                      "2s"),
                 0, "%s", err);
    cr_assert_eq(l->n_routes, 2);
    cr_assert_str_eq(l->routes[1].sni, "*.example");
    cr_assert_eq(cfg.n_backends, 3, "a backend per route");
    cr_assert_eq(l->routes[1].backend_index, 2);
    cr_assert_eq(cfg.backends[2].servers[0].inet.sa.sa_family, AF_INET6);
    cr_assert_eq(l->peek_timeout_ms, 2000);
    cr_assert_eq(LOAD(err, "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2",
                      "--proxy-protocol-in", "v2", "--trusted-source", "10.0.0.0/8", "--tlvs",
                      "authority,alpn,unique_id,crc32c,0xEA,7"),
                 0, "%s", err);
    cr_assert_eq(cfg.backends[0].tlvs, TLV_AUTHORITY | TLV_ALPN | TLV_UNIQUE_ID | TLV_CRC32C);
    cr_assert_eq(cfg.backends[0].n_tlv_pass, 2);
    cr_assert_eq(cfg.backends[0].tlv_pass[0], 0xEA);
    cr_assert_eq(cfg.backends[0].tlv_pass[1], 7);
}

Test(options, flags_over_a_file_set_every_listener_and_backend)
{
    char err[256] = "";

    cr_assert_eq(LOAD(err, "--connect-timeout", "2s", "--header-timeout", "3s", "--workers", "2"),
                 0, "%s", err);
    cr_assert_str_eq(o.config_path, CONFIG_DEFAULT_PATH);
    cr_assert_eq(cfg.backends[0].connect_timeout_ms, 2000);
    cr_assert_eq(cfg.listeners[0].header_timeout_ms, 3000);
    cr_assert_eq(cfg.workers, 2);
    cr_assert_eq(cfg.backends[0].retries, 2, "the file's defaults stand");
    cr_assert_eq(LOAD(err, "-c", "x.yaml", "--listen", "127.0.0.1:1"), -EINVAL);
    cr_assert_str_eq(err, "--listen, --backend and --route describe what the file's listeners "
                          "and backends do; give one or the other, not both");
}

Test(options, help_and_version)
{
    char err[256];

    cr_assert_eq(options_parse(&o, ARGC("--help"), ARGV("--help"), err, sizeof(err)), OPTIONS_HELP);
    cr_assert_eq(options_parse(&o, ARGC("--listen", "1.2.3.4:5", "--version"),
                               ARGV("--listen", "1.2.3.4:5", "--version"), err, sizeof(err)),
                 OPTIONS_VERSION);
}

Test(options, help_lists_every_flag_with_its_default)
{
    char buf[16384];
    FILE *f = fmemopen(buf, sizeof(buf), "w");

    options_usage(f);
    fclose(f);
    cr_assert(strstr(buf, "--connect-timeout DUR"), "%s", buf);
    cr_assert(strstr(buf, "(default 5s)"));
    cr_assert(strstr(buf, "--accept-backlog N"));
    cr_assert(strstr(buf, "--io auto|uring|epoll"));
    for (char *line = buf, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1)
        cr_assert_leq(nl - line, 80, "a --help line over 80 columns: %.*s", (int)(nl - line), line);
}

struct bad {
    const char *const argv[10];
    const char *error; /* the error line must start with this */
};

static const struct bad bads[] = {
    {{"--listen", "foo", "--backend", "1.1.1.1:1"},
     "--listen: expected IPV4:PORT or [IPV6]:PORT with port 1-65535, got 'foo'"},
    {{"--listen", "127.0.0.1:0", "--backend", "1.1.1.1:1"}, "--listen: expected IPV4:PORT"},
    {{"--listen", "127.0.0.1:70000", "--backend", "1.1.1.1:1"}, "--listen: "},
    {{"--listen", "127.0.0.1:1", "--backend", "x..y:1"},
     "--backend: expected IPV4:PORT, [IPV6]:PORT, NAME:PORT (port 1-65535) or unix:/path, got "
     "'x..y:1'"},
    {{"--listen", "127.0.0.1:1"}, "--backend: required"},
    {{"--backend", "127.0.0.1:1"}, "--listen: required"},
    {{"--bogus"}, "--bogus: unknown option"},
    {{"--bogus", "1"}, "--bogus: unknown option"},
    {{"--listen"}, "--listen: missing value"},
    {{"--workers", "0"}, "--workers: expected auto or a number from 1 to 1024, got '0'"},
    {{"--workers", "1025"}, "--workers: expected auto or a number from 1 to 1024, got '1025'"},
    {{"--workers", "two"}, "--workers: expected auto or a number from 1 to 1024, got 'two'"},
    {{"--connect-timeout", "xyz"},
     "--connect-timeout: expected a duration like 500ms, 5s, 2m "
     "or 1h, got 'xyz'"},
    {{"--connect-timeout", "0"}, "--connect-timeout: 0 is out of range 1ms-3600000ms"},
    {{"--idle-timeout", "5y"}, "--idle-timeout: expected a duration"},
    {{"--io", "nope"}, "--io: expected one of auto, uring, epoll, got 'nope'"},
    {{"--proxy-protocol", "v3"}, "--proxy-protocol: expected one of off, v1, v2, got 'v3'"},
    {{"--splice", "sometimes"}, "--splice: expected one of auto, never, always, got 'sometimes'"},
    {{"--log-level", "loud"}, "--log-level: expected error, warn, info or debug, got 'loud'"},
    {{"--max-connections", "-1"},
     "--max-connections: expected a whole number from 0 to 10000000, got '-1'"},
    {{"--accept-backlog", "0"},
     "--accept-backlog: expected a whole number from 1 to 65535, got '0'"},
    {{"stray"}, "stray: unexpected argument"},
    {{"--listen", "127.0.0.1:1", "--backend", "1.1.1.1:1", "--proxy-protocol-in", "v2"},
     "--proxy-protocol-in needs --trusted-source (the proxies in front that send the header)"},
    {{"--listen", "127.0.0.1:1", "--backend", "1.1.1.1:1", "--trusted-source", "10.0.0.0/8"},
     "--trusted-source has no effect with --proxy-protocol-in off"},
    {{"--trusted-source", "10.1.2.3/8"},
     "--trusted-source: '10.1.2.3/8' has bits set below the /8 prefix; did you mean "
     "10.0.0.0/8?"},
    {{"--trusted-source", "10.0.0.0/40"},
     "--trusted-source: expected an address or ADDR/BITS, "
     "got '10.0.0.0/40'"},
    {{"--proxy-protocol-in", "v3"}, "--proxy-protocol-in: expected one of off, v1, v2, any"},
    {{"--header-timeout", "0"}, "--header-timeout: 0 is out of range"},
    {{"--header-max-size", "16385"},
     "--header-max-size: expected a whole number from 16 to 16384, got '16385'"},
    {{"--header-max-size", "15"}, "--header-max-size: expected a whole number from 16 to 16384"},
    {{"--route", "example.com"},
     "--route: expected NAME=ADDR:PORT with NAME a host name or "
     "*.suffix, like api.example.com=10.0.0.5:8443, got "
     "'example.com'"},
    {{"--route", "a.com=nowhere", "--listen", "127.0.0.1:1", "--backend", "1.1.1.1:1"},
     "--route: expected IPV4:PORT, [IPV6]:PORT, NAME:PORT (port 1-65535) or unix:/path, got "
     "'nowhere'"},
    {{"--route", "a.com=10.0.0.1", "--listen", "127.0.0.1:1", "--backend", "1.1.1.1:1"},
     "--route: expected IPV4:PORT, [IPV6]:PORT, NAME:PORT (port 1-65535) or unix:/path, got "
     "'10.0.0.1'"},
    {{"--route", "a.com=host:99999", "--listen", "127.0.0.1:1", "--backend", "1.1.1.1:1"},
     "--route: expected IPV4:PORT, [IPV6]:PORT, NAME:PORT (port 1-65535) or unix:/path, got "
     "'host:99999'"},
    {{"--route", "=10.0.0.1:443", "--listen", "127.0.0.1:1", "--backend", "1.1.1.1:1"},
     "--route: expected a host name or *.suffix, got ''"},
    {{"--route", "a..com=1.1.1.1:1", "--listen", "127.0.0.1:1", "--backend", "1.1.1.1:1"},
     "--route: expected a host name or *.suffix, got 'a..com'"},
    {{"--route", "a.com=1.1.1.1:1", "--route", "A.com=2.2.2.2:2", "--listen", "127.0.0.1:1",
      "--backend", "1.1.1.1:1"},
     "--route: 'A.com' already has a route"},
    {{"--peek-timeout", "soon"}, "--peek-timeout: expected a duration"},
    {{"--tlvs", "authority,bogus"},
     "--tlvs: expected authority, alpn, unique_id, crc32c or a "
     "type number like 0xEA, got 'bogus'"},
    {{"--tlvs", "0x100"}, "--tlvs: expected authority"},
    {{"--tlvs", "unique_id,0x05"}, "--tlvs: '0x05' is TLV type 0x05, which the list already names"},
    {{"--tlvs", "alpn", "--tlvs", "alpn"},
     "--tlvs: 'alpn' is TLV type 0x01, which the list already names"},
    {{"--listen", "127.0.0.1:1", "--backend", "1.1.1.1:1", "--proxy-protocol", "v1", "--tlvs",
      "crc32c"},
     "--tlvs need --proxy-protocol v2 (backend 'backend')"},
    {{"--listen", "127.0.0.1:1", "--backend", "1.1.1.1:1", "--tlvs", "0xEA"},
     "--tlvs: copying TLV types needs --proxy-protocol-in"},
    {{"--proxy-protocol-in", "v2"}, "--proxy-protocol-in needs --trusted-source",
     /* over a file, in the flags' words */},
};

Test(options, errors_name_the_flag)
{
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        char *argv[12] = {"ringrelay"};
        char err[512] = "";
        int argc = 1;

        for (int k = 0; bads[i].argv[k]; k++)
            argv[argc++] = (char *)bads[i].argv[k];
        cr_assert_eq(load(argc, argv, err, sizeof(err)), -EINVAL, "case %zu", i);
        cr_assert_eq(strncmp(err, bads[i].error, strlen(bads[i].error)), 0,
                     "case %zu: '%s' does not start with '%s'", i, err, bads[i].error);
        cr_assert_null(strchr(err, '\n'), "one line");
    }
}

/* One key, one meaning, one message: a bad value gets the same words from
 * the file ("FILE:L:C: KEY: message") and the flag ("--FLAG: message"), and
 * a value one accepts the other accepts too. */
Test(options, a_flag_and_its_key_say_the_same)
{
    static const struct {
        const char *flag, *yaml, *value;
        int ok;
    } cases[] = {
        {"--max-connections", "max_connections: ", "0", 1},
        {"--max-connections", "max_connections: ", "10000001", 0},
        {"--workers", "workers: ", "1025", 0},
        {"--workers", "workers: ", "auto", 1},
        {"--io", "io: ", "kqueue", 0},
        {"--drain-timeout", "drain_timeout: ", "0", 1},
        {"--drain-timeout", "drain_timeout: ", "forever", 0},
        {"--accept-backlog", "accept_backlog: ", "70000", 0},
        {"--stats-socket", "stats_socket: ", "relative.sock", 0},
        {"--access-log", "access_log: {path: ", "relative.log", 0},
        {"--user", "user: ", "a b", 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[512], cli_err[512] = "", file_err[512] = "";
        char *argv[] = {"ringrelay", (char *)cases[i].flag, (char *)cases[i].value, NULL};
        int cli = load(3, argv, cli_err, sizeof(cli_err)), file;
        const char *cli_msg = strstr(cli_err, ": "), *file_msg;

        snprintf(yaml, sizeof(yaml), "%s%s\"%s\"%s\n", MINIMAL, cases[i].yaml, cases[i].value,
                 strchr(cases[i].yaml, '{') ? "}" : "");
        config_free(&cfg);
        file = config_parse(&cfg, "t.yaml", yaml, strlen(yaml), file_err, sizeof(file_err));
        cr_assert_eq(cli == 0, cases[i].ok, "%s %s: %s", cases[i].flag, cases[i].value, cli_err);
        cr_assert_eq(file == 0, cases[i].ok, "%s%s: %s", cases[i].yaml, cases[i].value, file_err);
        if (cases[i].ok)
            continue;
        file_msg =
            strstr(file_err, ": ") ? strstr(strstr(strstr(file_err, ": ") + 2, " "), "") : NULL;
        cr_assert_not_null(cli_msg);
        cr_assert_not_null(file_msg);
        /* "--workers: MSG" and "t.yaml:9:10: workers: MSG" end the same. */
        cr_assert_geq(strlen(file_err), strlen(cli_msg));
        cr_assert_str_eq(file_err + strlen(file_err) - strlen(cli_msg), cli_msg,
                         "the file says '%s', the flag '%s'", file_err, cli_err);
    }
}

Test(options, durations)
{
    static const struct {
        const char *s;
        uint32_t ms;
    } ok[] = {{"0", 0},
              {"7", 7000},
              {"500ms", 500},
              {"5s", 5000},
              {"2m", 120000},
              {"1h", 3600000},
              {"4294967295ms", 4294967295u}};
    static const char *const bad[] = {"", "s", "-1s", "1.5s", "5d", "5 s", "4294968s", "1hh"};
    uint32_t ms;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        cr_assert_eq(config_parse_duration(ok[i].s, &ms), 0, "%s", ok[i].s);
        cr_assert_eq(ms, ok[i].ms, "%s", ok[i].s);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(config_parse_duration(bad[i], &ms), -EINVAL, "accepted '%s'", bad[i]);
}
