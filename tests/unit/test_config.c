/* The configuration file: the example parses with its values and defaults,
 * --dump-config reads back to the same configuration, and every bad file in
 * the table gets its exact error line. */
#include "config.h"
#include "log.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct config cfg, again;

/* Parses into cfg (and again below into again), freeing what it held. */
static int parse(const char *text, char *err, size_t errlen)
{
    config_free(&cfg);
    return config_parse(&cfg, "t.yaml", text, strlen(text), err, errlen);
}

static int parse_file(const char *file, const char *text, size_t len, char *err, size_t errlen)
{
    config_free(&cfg);
    return config_parse(&cfg, file, text, len, err, errlen);
}

static int parse_again(const char *file, const char *text, size_t len, char *err, size_t errlen)
{
    config_free(&again);
    return config_parse(&again, file, text, len, err, errlen);
}

#define L_ONE "listeners:\n  - name: a\n    bind: 127.0.0.1:8443\n"

#define MINIMAL                                                                                    \
    "listeners:\n"                                                                                 \
    "  - name: a\n"                                                                                \
    "    bind: 127.0.0.1:8443\n"                                                                   \
    "backends:\n"                                                                                  \
    "  - name: b\n"                                                                                \
    "    servers:\n"                                                                               \
    "      - address: 127.0.0.1:9443\n"

Test(config, minimal_gets_defaults)
{
    char err[256] = "";
    const struct config_backend *b;

    cr_assert_eq(parse(MINIMAL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.workers, 0);
    cr_assert_eq(cfg.io, IO_AUTO);
    cr_assert_eq(cfg.log_level, LOG_LEVEL_INFO);
    cr_assert_str_eq(cfg.stats_socket, "");
    cr_assert_str_eq(cfg.access_log.path, "");
    cr_assert_eq(cfg.access_log.mode, ACCESS_LOG_ALL);
    cr_assert_eq(cfg.drain_timeout_ms, 30000);
    cr_assert_str_eq(cfg.user, "");
    cr_assert_eq(cfg.n_listeners, 1);
    cr_assert_eq(cfg.listeners[0].n_bind, 1);
    cr_assert_eq(cfg.listeners[0].proxy_protocol_in, PROXY_IN_OFF);
    cr_assert_eq(cfg.listeners[0].header_timeout_ms, 5000);
    cr_assert_str_eq(cfg.listeners[0].default_backend, "b", "the only backend is the default");
    cr_assert_eq(cfg.listeners[0].default_index, 0);
    b = &cfg.backends[0];
    cr_assert_eq(b->proxy_protocol, PROXY_V2);
    cr_assert_eq(b->balance, BALANCE_ROUND_ROBIN);
    cr_assert_eq(b->connect_timeout_ms, 5000);
    cr_assert_eq(b->retries, 2);
    cr_assert_eq(b->health.mode, CHECK_PROXY_LOCAL, "auto: a v2 backend is checked with LOCAL");
    cr_assert_eq(b->health.interval_ms, 2000);
    cr_assert_eq(b->health.rise, 2);
    cr_assert_eq(b->health.fall, 3);
    cr_assert_eq(b->n_servers, 1);
    cr_assert_eq(b->servers[0].weight, 1);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    char *buf = malloc(1 << 16);

    cr_assert(f && buf, "open %s", path);
    *len = fread(buf, 1, (1 << 16) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

Test(config, the_shipped_example)
{
    char err[512] = "";
    size_t len;
    char *text = slurp("conf/ringrelay.yaml", &len);
    const struct config_listener *l;
    const struct config_backend *k;

    cr_assert_eq(parse_file("conf/ringrelay.yaml", text, len, err, sizeof(err)), 0, "%s", err);
    l = &cfg.listeners[0];
    cr_assert_eq(l->n_bind, 2);
    cr_assert_eq(l->n_routes, 2);
    cr_assert_eq(l->routes[1].backend_index, 1);
    k = &cfg.backends[0];
    cr_assert_eq(k->tlvs, TLV_AUTHORITY | TLV_ALPN | TLV_UNIQUE_ID | TLV_CRC32C);
    cr_assert_eq(k->health.mode, CHECK_TLS);
    cr_assert_eq(k->idle_timeout_ms, 600000);
    cr_assert_eq(k->n_servers, 2);
    cr_assert_eq(k->servers[0].weight, 10);
    cr_assert_eq(k->servers[0].max_connections, 50000);
    cr_assert(k->servers[1].is_unix);
    cr_assert_str_eq(k->servers[1].path, "/run/kong/proxy.sock");
    free(text);
}

/* Positions in the file are not configuration. */
static void clear_marks(struct config *c)
{
    for (int i = 0; i < c->n_listeners; i++) {
        memset(&c->listeners[i].mark, 0, sizeof(struct config_mark));
        memset(&c->listeners[i].default_mark, 0, sizeof(struct config_mark));
        for (int r = 0; r < c->listeners[i].n_routes; r++)
            memset(&c->listeners[i].routes[r].mark, 0, sizeof(struct config_mark));
    }
    for (int i = 0; i < c->n_backends; i++)
        memset(&c->backends[i].mark, 0, sizeof(struct config_mark));
    memset(&c->listeners_mark, 0, sizeof(struct config_mark));
    memset(&c->backends_mark, 0, sizeof(struct config_mark));
}

/* Every byte of a and b the same, the arrays they point to included. */
static int same_config(const struct config *a, const struct config *b)
{
    static struct config x, y;

    x = *a;
    y = *b;
    for (int l = 0; l < a->n_listeners && l < b->n_listeners; l++) {
        if (a->listeners[l].n_routes != b->listeners[l].n_routes ||
            memcmp(a->listeners[l].routes, b->listeners[l].routes,
                   (size_t)a->listeners[l].n_routes * sizeof(struct config_route)) != 0)
            return 0;
        x.listeners[l].routes = y.listeners[l].routes = NULL;
    }
    for (int i = 0; i < a->n_backends && i < b->n_backends; i++) {
        if (a->backends[i].n_servers != b->backends[i].n_servers ||
            memcmp(a->backends[i].servers, b->backends[i].servers,
                   (size_t)a->backends[i].n_servers * sizeof(struct config_server)) != 0)
            return 0;
        x.backends[i].servers = y.backends[i].servers = NULL;
    }
    return memcmp(&x, &y, sizeof(x)) == 0;
}

Test(config, dump_reads_back_the_same)
{
    char err[256] = "", *out = NULL;
    size_t len, outlen = 0;
    char *text = slurp("conf/ringrelay.yaml", &len);
    FILE *f = open_memstream(&out, &outlen);

    cr_assert_eq(parse_file("conf/ringrelay.yaml", text, len, err, sizeof(err)), 0);
    config_dump(&cfg, f);
    fclose(f);
    cr_assert_eq(parse_again("dump", out, outlen, err, sizeof(err)), 0, "%s\n%s", err, out);
    clear_marks(&cfg);
    clear_marks(&again);
    cr_assert(same_config(&cfg, &again),
              "the dump does not read back to the same configuration:\n%s", out);
    free(out);
    free(text);
}

Test(config, dump_escapes_what_it_quotes)
{
    static const char text[] = L_ONE "backends:\n  - name: b\n    servers:\n"
                                     "      - address: 'unix:/run/a\"b\\c.sock'\n";
    char err[256] = "", *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);

    cr_assert_eq(parse(text, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(cfg.backends[0].servers[0].path, "/run/a\"b\\c.sock");
    config_dump(&cfg, f);
    fclose(f);
    cr_assert_eq(parse_again("dump", out, outlen, err, sizeof(err)), 0, "%s\n%s", err, out);
    cr_assert_str_eq(again.backends[0].servers[0].path, "/run/a\"b\\c.sock");
    free(out);
}

struct bad {
    const char *text;
    const char *error; /* the whole line */
};

#define L "listeners:\n  - name: a\n    bind: 127.0.0.1:8443\n"
#define B "backends:\n  - name: b\n    servers:\n      - address: 127.0.0.1:9443\n"

static const struct bad bads[] = {
    {"", "t.yaml:1:1: listeners: the file is empty; required"},
    {"listeners: [\n", "t.yaml:2:1: did not find expected node content while parsing a flow "
                       "node"},
    {B, "t.yaml:1:1: listeners: required"},
    {L, "t.yaml:1:1: backends: required"},
    {"- a\n", "t.yaml:1:1: expected a mapping of keys to values"},
    {L "backends: []\n", "t.yaml:4:11: backends: at least one backend is needed"},
    {"listeners: []\n" B, "t.yaml:1:12: listeners: at least one listener is needed"},
    {L B "bogus: 1\n",
     "t.yaml:8:1: bogus: unknown key (expected one of: workers, io, splice, stats_socket, "
     "stats_socket_group, stats_socket_level, access_log, admin, shutdown_grace, resolvers, "
     "resolve_interval, drain_timeout, "
     "user, group, "
     "max_connections, accept_backlog, log_level, listeners, backends)"},
    {L B "admin: {listen: 127.0.0.1}\n",
     "t.yaml:8:17: admin.listen: expected IPV4:PORT or [IPV6]:PORT with port 1-65535, got "
     "'127.0.0.1'"},
    {L B "admin: {listen: \"127.0.0.1:9100\", allow: [10.0.0.1/8]}\n",
     "t.yaml:8:43: admin.allow: '10.0.0.1/8' has bits set below the /8 prefix; did you mean "
     "10.0.0.0/8?"},
    {L B "admin: {listen: \"127.0.0.1:8443\"}\n",
     "t.yaml:2:11: listeners[0]: bind address 127.0.0.1:8443 is also admin.listen: give the "
     "admin listener a port of its own"},
    {L B "shutdown_grace: soon\n",
     "t.yaml:8:17: shutdown_grace: expected a duration like 500ms, 5s, 2m or 1h, got 'soon'"},
    {L B "access_log: {path: relative.log}\n",
     "t.yaml:8:20: access_log.path: expected an "
     "absolute path under 108 bytes or stderr, got 'relative.log'"},
    {L B "access_log: {mode: some}\n",
     "t.yaml:8:20: access_log.mode: expected one of all, errors, off, got 'some'"},
    {L B "drain_timeout: forever\n", "t.yaml:8:16: drain_timeout: expected a duration like 500ms, "
                                     "5s, 2m or 1h, got 'forever'"},
    {L B "user: \"a b\"\n", "t.yaml:8:7: user: expected a name of letters, digits, '-', '_' or "
                            "'.' (at most 63), got 'a b'"},
    {L B "io: kqueue\n", "t.yaml:8:5: io: expected one of auto, uring, epoll, got 'kqueue'"},
    {L B "workers: 0\n", "t.yaml:8:10: workers: expected auto or a number from 1 to 1024, got "
                         "'0'"},
    {L B "workers: 2\nworkers: 3\n", "t.yaml:9:1: workers: given twice"},
    {L B "log_level: loud\n",
     "t.yaml:8:12: log_level: expected error, warn, info or debug, got 'loud'"},
    {L B "stats_socket: relative.sock\n", "t.yaml:8:15: stats_socket: expected an absolute path "
                                          "under 108 bytes, got 'relative.sock'"},
    {L B "max_connections: -5\n", "t.yaml:8:18: max_connections: expected a whole number from 0 "
                                  "to 10000000, got '-5'"},
    {"listeners:\n  - name: a\n    bind: 127.0.0.1:0\n" B,
     "t.yaml:3:11: listeners[0].bind: expected IPV4:PORT or [IPV6]:PORT with port 1-65535, got "
     "'127.0.0.1:0'"},
    {"listeners:\n  - name: a\n" B, "t.yaml:2:5: listeners[0].bind: required"},
    {"listeners:\n  - bind: 127.0.0.1:1\n" B, "t.yaml:2:5: listeners[0].name: required"},
    {"listeners:\n  - name: a b\n    bind: 127.0.0.1:1\n" B,
     "t.yaml:2:11: listeners[0].name: expected a name of letters, digits, '-', '_' or '.' (at "
     "most 63), got 'a b'"},
    {"listeners:\n  - name: a\n    bind: 127.0.0.1:1\n    proxy_protocol_in: v3\n" B,
     "t.yaml:4:24: listeners[0].proxy_protocol_in: expected one of off, v1, v2, any, got 'v3'"},
    {"listeners:\n  - name: a\n    bind: 127.0.0.1:1\n    proxy_protocol_in: v2\n" B,
     "t.yaml:2:11: listeners[0]: proxy_protocol_in needs trusted_sources (the proxies in front "
     "that send the header)"},
    {"listeners:\n  - name: a\n    bind: 127.0.0.1:1\n    trusted_sources: [10.0.0.0/8]\n" B,
     "t.yaml:2:11: listeners[0]: trusted_sources has no effect with proxy_protocol_in: off"},
    {"listeners:\n  - name: a\n    bind: 127.0.0.1:1\n    proxy_protocol_in: any\n"
     "    trusted_sources: [10.1.2.3/8]\n" B,
     "t.yaml:5:23: listeners[0].trusted_sources: '10.1.2.3/8' has bits set below the /8 prefix; "
     "did you mean 10.0.0.0/8?"},
    {"listeners:\n  - name: a\n    bind: 127.0.0.1:1\n    header_timeout: 5 s\n" B,
     "t.yaml:4:21: listeners[0].header_timeout: expected a duration like 500ms, 5s, 2m or 1h, "
     "got '5 s'"},
    {"listeners:\n  - name: a\n    bind: 127.0.0.1:1\n    header_timeout: 0s\n" B,
     "t.yaml:4:21: listeners[0].header_timeout: 0s is out of range 1ms-3600000ms"},
    {"listeners:\n  - name: a\n    bind: 127.0.0.1:1\n    routes:\n      - { sni: a.example }\n" B,
     "t.yaml:5:9: listeners[0].routes[0].backend: required"},
    {"listeners:\n  - name: a\n    bind: 127.0.0.1:1\n    routes:\n"
     "      - { sni: a.example, backend: nope }\n" B,
     "t.yaml:5:36: listeners[0].routes[0].backend: no backend is named 'nope' (there are: b)"},
    {"listeners:\n  - name: a\n    bind: 127.0.0.1:1\n    routes:\n"
     "      - { sni: \"a..example\", backend: b }\n" B,
     "t.yaml:5:16: listeners[0].routes[0].sni: expected a host name or *.suffix, got "
     "'a..example'"},
    {"listeners:\n  - name: a\n    bind: 127.0.0.1:1\n    default_backend: nope\n" B,
     "t.yaml:4:22: listeners[0].default_backend: no backend is named 'nope' (there are: b)"},
    {L B "  - name: c\n    servers:\n      - address: 127.0.0.1:9444\n",
     "t.yaml:2:11: listeners[0].default_backend: required when there is more than one backend "
     "(there are: b, c)"},
    {L B "  - name: b\n    servers:\n      - address: 127.0.0.1:9444\n",
     "t.yaml:8:11: backends[1]: name 'b' is used by an earlier backend"},
    {L "  - name: a\n    bind: 127.0.0.1:8444\n" B,
     "t.yaml:4:11: listeners[1]: name 'a' is used by an earlier listener"},
    {L "  - name: c\n    bind: 127.0.0.1:8443\n" B,
     "t.yaml:4:11: listeners[1]: bind address 127.0.0.1:8443 is bound twice"},
    {L "backends:\n  - name: b\n    servers: []\n",
     "t.yaml:5:11: backends[0]: backend 'b' has no servers"},
    {L "backends:\n  - name: b\n    servers:\n      - address: 192.168.0.5:70000\n",
     "t.yaml:7:18: backends[0].servers[0].address: expected IPV4:PORT, [IPV6]:PORT, NAME:PORT "
     "(port 1-65535) or unix:/path, got '192.168.0.5:70000'"},
    {L "backends:\n  - name: b\n    servers:\n      - address: unix:run/x.sock\n",
     "t.yaml:7:18: backends[0].servers[0].address: expected unix:/absolute/path (under 108 "
     "bytes)"},
    {L "backends:\n  - name: b\n    servers:\n      - { address: 127.0.0.1:1, weight: 0 }\n",
     "t.yaml:7:41: backends[0].servers[0].weight: expected a whole number from 1 to 1000, got "
     "'0'"},
    {L "backends:\n  - name: b\n    servers:\n      - { address: 127.0.0.1:1, port: 2 }\n",
     "t.yaml:7:33: backends[0].servers[0].port: unknown key (expected one of: address, name, "
     "weight, "
     "max_connections)"},
    {L "backends:\n  - name: b\n    balance: random\n    servers:\n      - address: 127.0.0.1:1\n",
     "t.yaml:6:14: backends[0].balance: expected one of round_robin, least_conn, "
     "client_ip_hash, got 'random'"},
    {L "backends:\n  - name: b\n    health_check: { mode: http }\n    servers:\n"
       "      - address: 127.0.0.1:1\n",
     "t.yaml:6:27: backends[0].health_check.mode: expected one of tcp, proxy_local, tls, off, "
     "auto, "
     "got 'http'"},
    {L "backends:\n  - name: b\n    health_check: { rise: 0 }\n    servers:\n"
       "      - address: 127.0.0.1:1\n",
     "t.yaml:6:27: backends[0].health_check.rise: expected a whole number from 1 to 100, got "
     "'0'"},
    {L "backends:\n  - name: b\n    tlvs: [authority, bogus]\n    servers:\n"
       "      - address: 127.0.0.1:1\n",
     "t.yaml:6:23: backends[0].tlvs: expected authority, alpn, unique_id, crc32c or a type "
     "number like 0xEA, got 'bogus'"},
    {L "backends:\n  - name: b\n    proxy_protocol: v1\n    tlvs: [crc32c]\n    servers:\n"
       "      - address: 127.0.0.1:1\n",
     "t.yaml:5:11: backends[0]: tlvs need proxy_protocol: v2 (backend 'b')"},
    {L "backends:\n  - name: b\n    retries: 11\n    servers:\n      - address: 127.0.0.1:1\n",
     "t.yaml:6:14: backends[0].retries: expected a whole number from 0 to 10, got '11'"},
    {L "backends:\n  - name: b\n    sni: \"*.example\"\n    servers:\n"
       "      - address: 127.0.0.1:1\n",
     "t.yaml:6:10: backends[0].sni: expected a host name, got '*.example'"},
    {L "backends:\n  - name: b\n    servers: { address: 127.0.0.1:1 }\n",
     "t.yaml:6:14: backends[0].servers: expected a list"},
    {L "backends:\n  - name: b\n    connect_timeout: [1s]\n    servers:\n"
       "      - address: 127.0.0.1:1\n",
     "t.yaml:6:22: backends[0].connect_timeout: expected a value, not a list or mapping"},
    {L "backends:\n  - name: b\n    tlvs: [unique_id, 0x05]\n    servers:\n"
       "      - address: 127.0.0.1:1\n",
     "t.yaml:6:23: backends[0].tlvs: '0x05' is TLV type 0x05, which the list already names"},
    {L B "---\nworkers: 2\n", "t.yaml:8:1: a second YAML document (after '---'); put the whole "
                              "configuration in one"},
    {"listeners:\n  - name: a\n    bind: 127.0.0.1:1\n    routes:\n"
     "      - { sni: a.example, backend: b }\n      - { sni: A.Example, backend: b }\n" B,
     "t.yaml:6:36: listeners[0].routes[1]: 'A.Example' already has a route (routes[0])"},
    {L "backends:\n  - name: b\n    tlvs: [0xEA]\n    servers:\n      - address: 127.0.0.1:1\n",
     "t.yaml:5:11: backends[0]: tlvs: copying TLV types needs proxy_protocol_in on a listener "
     "that uses backend 'b' (they come from a trusted inbound header)"},
};

Test(config, bad_files_name_line_column_and_key)
{
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        char err[512] = "";
        int ret = parse(bads[i].text, err, sizeof(err));

        cr_expect_eq(ret, -EINVAL, "case %zu parsed:\n%s", i, bads[i].text);
        cr_expect_str_eq(err, bads[i].error, "case %zu: got\n%s\nwant\n%s", i, err, bads[i].error);
    }
}

/* libyaml slows down more than linearly with nesting; a deep file is
 * refused as soon as the 65th level opens, in flow or block style. */
Test(config, deep_nesting_is_refused_at_once)
{
    static const char *const opens[] = {"[", "- "};
    size_t levels = 100000;

    for (size_t k = 0; k < 2; k++) {
        size_t w = strlen(opens[k]), len = 12 + levels * w;
        char *text = malloc(len + 1), err[256] = "";
        memcpy(text, "listeners:\n ", 12);
        for (size_t i = 0; i < levels; i++)
            memcpy(text + 12 + i * w, opens[k], w);
        text[len] = '\0';
        cr_assert_eq(parse(text, err, sizeof(err)), -EINVAL);
        cr_assert(strstr(err, "nested more than 64 levels deep"), "%s", err);
        free(text);
    }
}

static char changes[4][128];
static int n_changes;

static void record(const char *key, const char *was, const char *now)
{
    if (n_changes < 4)
        snprintf(changes[n_changes++], sizeof(changes[0]), "%s: %s -> %s", key, was, now);
}

/* Keys the table marks start-only keep their running value, each change
 * reported; the others take the new one. */
Test(config, reload_keeps_start_only_keys)
{
    static const char *const old_text = MINIMAL "workers: 2\nio: epoll\nlog_level: warn\n";
    static const char *const new_text = MINIMAL "workers: 1\nio: epoll\nlog_level: debug\n"
                                                "access_log: {path: /tmp/x.log}\n";
    char err[256] = "";

    cr_assert_eq(parse(old_text, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(parse_again("n.yaml", new_text, strlen(new_text), err, sizeof(err)), 0, "%s", err);
    config_keep_start_only(&again, &cfg, record);
    cr_assert_eq(n_changes, 2);
    cr_assert_str_eq(changes[0], "workers: 2 -> 1");
    cr_assert_str_eq(changes[1], "access_log.path: \"\" -> \"/tmp/x.log\"");
    cr_assert_eq(again.workers, 2, "kept");
    cr_assert_str_eq(again.access_log.path, "", "kept");
    cr_assert_eq(again.log_level, LOG_LEVEL_DEBUG, "log_level is not start-only");
}
