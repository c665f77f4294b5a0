/* The configuration's tables: every key of the file, one row each, with
 * its bounds, default, place in struct config, command-line flag and
 * --help line, like nginx's directive tables. Data only. */
#include "config_table.h"

#include <stddef.h>

static const char *const io_names[] = {"auto", "uring", "epoll", NULL};
static const char *const splice_names[] = {"auto", "never", "always", NULL};
static const char *const pp_names[] = {"off", "v1", "v2", NULL};
static const char *const pp_in_names[] = {"off", "v1", "v2", "any", NULL};
static const char *const balance_names[] = {"round_robin", "least_conn", "client_ip_hash", NULL};
static const char *const check_names[] = {"tcp", "proxy_local", "tls", "off", "auto", NULL};
const char *const config_tlv_names[] = {"authority", "alpn", "unique_id", "crc32c", NULL};
static const char *const access_mode_names[] = {"all", "errors", "off", NULL};
static const char *const access_format_names[] = {"text", "json", NULL};
static const char *const stats_level_names[] = {"read", "admin", NULL};
const char *const config_level_names[] = {"error", "warn", "info", "debug", NULL};

/* The rows read best one setting to a few lines: clang-format would put
 * every field on a line of its own. */
// clang-format off
#define DAY_MS (24U * 3600U * 1000U)
#define AT(type, field) .off = offsetof(type, field)
#define MARK(type, field) .mark_off = (offsetof(type, field) + 1)
#define END {.key = NULL}

static const struct setting server_settings[] = {
    {.key = "address", .kind = K_SERVER_ADDR, .flag = "--backend", .arg = "ADDR:PORT",
     .describes = 1, .help = "where to relay connections (or NAME:PORT, resolved by DNS, or "
                             "unix:/path)"},
    {.key = "name", .kind = K_NAME, AT(struct config_server, name), .def = "\"\""},
    {.key = "weight", .kind = K_UINT, AT(struct config_server, weight), .min = 1, .max = 1000,
     .def = "1"},
    {.key = "max_connections", .kind = K_UINT, AT(struct config_server, max_connections),
     .max = 10000000, .def = "0"},
    END,
};

static const struct setting health_settings[] = {
    {.key = "mode", .kind = K_CHOICE, AT(struct config_health, mode), .choices = check_names,
     .def = "auto"},
    {.key = "interval", .kind = K_DURATION, AT(struct config_health, interval_ms), .min = 100,
     .max = DAY_MS, .def = "2s"},
    {.key = "timeout", .kind = K_DURATION, AT(struct config_health, timeout_ms), .min = 10,
     .max = 60000, .def = "1s"},
    {.key = "rise", .kind = K_UINT, AT(struct config_health, rise), .min = 1, .max = 100,
     .def = "2"},
    {.key = "fall", .kind = K_UINT, AT(struct config_health, fall), .min = 1, .max = 100,
     .def = "3"},
    END,
};

static const struct setting access_log_settings[] = {
    {.key = "path", .kind = K_LOG_PATH, AT(struct config_access_log, path), .def = "\"\"",
     .flag = "--access-log", .arg = "PATH|stderr", .restart = 1,
     .help = "one line per finished connection (SIGUSR1 reopens)"},
    {.key = "mode", .kind = K_CHOICE, AT(struct config_access_log, mode),
     .choices = access_mode_names, .def = "all", .flag = "--access-log-mode",
     .help = "which connections get a line"},
    {.key = "format", .kind = K_CHOICE, AT(struct config_access_log, format),
     .choices = access_format_names, .def = "text", .flag = "--access-log-format", .restart = 1,
     .help = "how each line is written"},
    END,
};

static const struct setting admin_settings[] = {
    {.key = "listen", .kind = K_INET_ADDR, AT(struct config_admin, listen), .def = "\"\"",
     .flag = "--admin-listen", .arg = "ADDR:PORT", .restart = 1,
     .help = "serve GET /ready, /metrics and /stats.json over HTTP on this TCP address"},
    {.key = "allow", .kind = K_CIDRS, AT(struct config_admin, allow),
     .count_off = offsetof(struct config_admin, n_allow), .max_elems = CONFIG_MAX_TRUSTED,
     .def = "[\"127.0.0.0/8\", \"::1/128\"]", .flag = "--admin-allow", .arg = "CIDR", .restart = 1,
     .help = "who may use it (repeatable; others are refused and counted)"},
    END,
};

static const struct section admin_section = {admin_settings, sizeof(struct config_admin)};
static const struct section access_log_section = {access_log_settings,
                                                  sizeof(struct config_access_log)};
static const struct section server_section = {server_settings, sizeof(struct config_server)};
static const struct section health_section = {health_settings, sizeof(struct config_health)};

static const struct setting backend_settings[] = {
    {.key = "name", .kind = K_NAME, AT(struct config_backend, name),
     MARK(struct config_backend, mark)},
    {.key = "proxy_protocol", .kind = K_CHOICE, AT(struct config_backend, proxy_protocol),
     .choices = pp_names, .def = "v2", .flag = "--proxy-protocol",
     .help = "header written to the backend"},
    {.key = "tlvs", .kind = K_TLVS, .def = "[]", .flag = "--tlvs", .arg = "LIST",
     .help = "TLVs on the v2 header: authority, alpn, unique_id, crc32c, and types (0xEA) "
             "copied from a trusted inbound header"},
    {.key = "balance", .kind = K_CHOICE, AT(struct config_backend, balance),
     .choices = balance_names, .def = "round_robin"},
    {.key = "connect_timeout", .kind = K_DURATION, AT(struct config_backend, connect_timeout_ms),
     .min = 1, .max = 3600000, .def = "5s", .flag = "--connect-timeout", .arg = "DUR",
     .help = "backend connect timeout"},
    {.key = "idle_timeout", .kind = K_DURATION, AT(struct config_backend, idle_timeout_ms),
     .max = 7 * DAY_MS, .def = "5m", .flag = "--idle-timeout", .arg = "DUR",
     .help = "close connections idle this long; 0 = never"},
    {.key = "retries", .kind = K_UINT, AT(struct config_backend, retries), .max = 10,
     .def = "2"},
    {.key = "sni", .kind = K_HOST, AT(struct config_backend, sni), .def = "\"\""},
    {.key = "health_check", .kind = K_MAP, AT(struct config_backend, health),
     .sub = &health_section, .def = "{}"},
    {.key = "resolvers", .kind = K_ADDRS, AT(struct config_backend, resolvers),
     .count_off = offsetof(struct config_backend, n_resolvers), .max_elems = CONFIG_MAX_RESOLVERS,
     .def = "[]"},
    {.key = "resolve_interval", .kind = K_DURATION,
     AT(struct config_backend, resolve_interval_ms), .max = DAY_MS, .def = "0s"},
    {.key = "servers", .kind = K_SEQ, AT(struct config_backend, servers), .sub = &server_section,
     .count_off = offsetof(struct config_backend, n_servers), .grow = 1,
     .elem_size = sizeof(struct config_server), .max_elems = CONFIG_MAX_SERVERS},
    END,
};

static const struct setting route_settings[] = {
    {.key = "sni", .kind = K_ROUTE_SNI, AT(struct config_route, sni)},
    {.key = "backend", .kind = K_NAME, AT(struct config_route, backend),
     MARK(struct config_route, mark)},
    END,
};

static const struct section route_section = {route_settings, sizeof(struct config_route)};

static const struct setting listener_settings[] = {
    {.key = "name", .kind = K_NAME, AT(struct config_listener, name),
     MARK(struct config_listener, mark)},
    {.key = "bind", .kind = K_BINDS, .flag = "--listen", .arg = "ADDR:PORT", .describes = 1,
     .help = "address to accept on (repeatable; IPv6 as [::1]:8443)"},
    {.key = "proxy_protocol_in", .kind = K_CHOICE, AT(struct config_listener, proxy_protocol_in),
     .choices = pp_in_names, .def = "off", .flag = "--proxy-protocol-in",
     .help = "header expected from trusted sources"},
    {.key = "trusted_sources", .kind = K_CIDRS, AT(struct config_listener, trusted),
     .count_off = offsetof(struct config_listener, n_trusted), .max_elems = CONFIG_MAX_TRUSTED,
     .def = "[]", .flag = "--trusted-source",
     .arg = "CIDR", .help = "who may send that header (repeatable; required with "
                            "--proxy-protocol-in; others sending one are refused)"},
    {.key = "header_timeout", .kind = K_DURATION, AT(struct config_listener, header_timeout_ms),
     .min = 1, .max = 3600000, .def = "5s", .flag = "--header-timeout", .arg = "DUR",
     .help = "wait this long for the inbound header"},
    {.key = "header_max_size", .kind = K_UINT, AT(struct config_listener, header_max_size),
     .min = 16, .max = CONFIG_HEADER_MAX_LIMIT, .def = "4096", .flag = "--header-max-size",
     .arg = "N", .help = "largest inbound v2 header, bytes"},
    {.key = "max_connections_per_source", .kind = K_UINT,
     AT(struct config_listener, max_per_source), .max = 10000000, .def = "0",
     .flag = "--max-connections-per-source", .arg = "N",
     .help = "open connections one client address may hold; more are refused at once "
             "(0: no limit)"},
    {.key = "max_connection_rate_per_source", .kind = K_UINT,
     AT(struct config_listener, rate_per_source), .max = 10000000, .def = "0",
     .flag = "--max-connection-rate-per-source", .arg = "N",
     .help = "new connections one client address may open per second; more are reset "
             "(0: no limit)"},
    {.key = "deny", .kind = K_CIDRS, AT(struct config_listener, deny),
     .count_off = offsetof(struct config_listener, n_deny), .max_elems = CONFIG_MAX_TRUSTED,
     .def = "[]", .flag = "--deny", .arg = "CIDR",
     .help = "client addresses refused at once (repeatable; checked before --allow)"},
    {.key = "allow", .kind = K_CIDRS, AT(struct config_listener, allow),
     .count_off = offsetof(struct config_listener, n_allow), .max_elems = CONFIG_MAX_TRUSTED,
     .def = "[]", .flag = "--allow", .arg = "CIDR",
     .help = "when given, only these client addresses are served (repeatable)"},
    {.key = "peek_timeout", .kind = K_DURATION, AT(struct config_listener, peek_timeout_ms),
     .min = 1, .max = 3600000, .def = "5s", .flag = "--peek-timeout", .arg = "DUR",
     .help = "wait this long for the ClientHello"},
    {.key = "routes", .kind = K_SEQ, AT(struct config_listener, routes), .sub = &route_section,
     .count_off = offsetof(struct config_listener, n_routes), .grow = 1,
     .elem_size = sizeof(struct config_route), .max_elems = CONFIG_MAX_ROUTES, .def = "[]",
     .flag = "--route", .arg = "NAME=ADDR:PORT", .describes = 1,
     .help = "send TLS connections for server name NAME (or *.suffix) to ADDR:PORT; others "
             "go to --backend (repeatable)"},
    {.key = "default_backend", .kind = K_NAME, AT(struct config_listener, default_backend),
     MARK(struct config_listener, default_mark), .def = "\"\""},
    END,
};

static const struct section listener_section = {listener_settings,
                                                sizeof(struct config_listener)};
static const struct section backend_section = {backend_settings, sizeof(struct config_backend)};

static const struct setting top_settings[] = {
    {.key = "workers", .kind = K_WORKERS, AT(struct config, workers), .def = "auto",
     .flag = "--workers", .arg = "N", .restart = 1,
     .help = "worker threads: auto (one per usable CPU) or 1-1024"},
    {.key = "io", .kind = K_CHOICE, AT(struct config, io), .choices = io_names, .def = "auto",
     .flag = "--io", .restart = 1, .help = "I/O back end (auto: io_uring when it works)"},
    {.key = "splice", .kind = K_CHOICE, AT(struct config, splice), .choices = splice_names,
     .def = "auto", .flag = "--splice", .help = "splice(2) for bulk transfers"},
    {.key = "stats_socket", .kind = K_PATH, AT(struct config, stats_socket), .def = "\"\"",
     .flag = "--stats-socket", .arg = "PATH", .restart = 1,
     .help = "serve counters on this unix socket (ringrelay stats)"},
    {.key = "stats_socket_group", .kind = K_NAME, AT(struct config, stats_socket_group),
     .def = "\"\"", .flag = "--stats-socket-group", .arg = "NAME", .restart = 1,
     .help = "the group that may read it (mode 0660)"},
    {.key = "stats_socket_level", .kind = K_CHOICE, AT(struct config, stats_socket_level),
     .choices = stats_level_names, .def = "read", .flag = "--stats-socket-level", .restart = 1,
     .help = "read: counters only; admin: also set server, shutdown sessions, disable listener"},
    {.key = "access_log", .kind = K_MAP, AT(struct config, access_log), .sub = &access_log_section,
     .def = "{}"},
    {.key = "admin", .kind = K_MAP, AT(struct config, admin), .sub = &admin_section,
     .def = "{}"},
    {.key = "shutdown_grace", .kind = K_DURATION, AT(struct config, shutdown_grace_ms),
     .max = DAY_MS, .def = "0s", .flag = "--shutdown-grace", .arg = "DUR",
     .help = "on SIGTERM, report not ready but keep accepting this long before draining "
             "(time for health checks and BGP to move traffic away)"},
    {.key = "resolvers", .kind = K_ADDRS, AT(struct config, resolvers),
     .count_off = offsetof(struct config, n_resolvers), .max_elems = CONFIG_MAX_RESOLVERS,
     .def = "[]", .flag = "--resolver", .arg = "ADDR:PORT",
     .help = "DNS server for servers given by name (repeatable; none: /etc/resolv.conf)"},
    {.key = "resolve_interval", .kind = K_DURATION, AT(struct config, resolve_interval_ms),
     .min = 1000, .max = DAY_MS, .def = "10s", .flag = "--resolve-interval", .arg = "DUR",
     .help = "how often servers given by name are resolved again"},
    {.key = "drain_timeout", .kind = K_DURATION, AT(struct config, drain_timeout_ms),
     .max = DAY_MS, .def = "30s", .flag = "--drain-timeout", .arg = "DUR",
     .help = "on SIGTERM, let open connections finish this long; SIGINT stops at once"},
    {.key = "user", .kind = K_NAME, AT(struct config, user), .def = "\"\"", .flag = "--user",
     .arg = "NAME", .restart = 1, .help = "run as this user once listening"},
    {.key = "group", .kind = K_NAME, AT(struct config, group), .def = "\"\"",
     .flag = "--group", .arg = "NAME", .restart = 1, .help = "and this group"},
    {.key = "max_connections", .kind = K_UINT, AT(struct config, max_connections),
     .max = 10000000, .def = "0", .flag = "--max-connections", .arg = "N", .restart = 1,
     .help = "concurrent connections over all workers; 0: what the open-file limit allows, "
             "up to 10000"},
    {.key = "accept_backlog", .kind = K_UINT, AT(struct config, accept_backlog), .min = 1,
     .max = 65535, .def = "4096", .flag = "--accept-backlog", .arg = "N", .restart = 1,
     .help = "connections the kernel queues per listening socket before they are accepted "
             "(capped by net.core.somaxconn)"},
    {.key = "log_level", .kind = K_LOG_LEVEL, AT(struct config, log_level), .def = "info",
     .flag = "--log-level", .arg = "LEVEL", .help = "error, warn, info or debug"},
    {.key = "listeners", .kind = K_SEQ, AT(struct config, listeners), .sub = &listener_section,
     .count_off = offsetof(struct config, n_listeners), MARK(struct config, listeners_mark),
     .elem_size = sizeof(struct config_listener), .max_elems = CONFIG_MAX_LISTENERS},
    {.key = "backends", .kind = K_SEQ, AT(struct config, backends), .sub = &backend_section,
     .count_off = offsetof(struct config, n_backends), MARK(struct config, backends_mark),
     .elem_size = sizeof(struct config_backend), .max_elems = CONFIG_MAX_BACKENDS},
    END,
};

const struct section config_top_section = {top_settings, sizeof(struct config)};
// clang-format on
