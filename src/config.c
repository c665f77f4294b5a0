/* Configuration: one table of settings per section drives parsing,
 * bounds, defaults and the rules across keys, for the file and (through
 * config_args.c) the command line alike, like nginx's directive tables. */
#include "config_table.h"

#include "log.h"
#include "route.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

static const char *const io_names[] = {"auto", "uring", "epoll", NULL};
static const char *const splice_names[] = {"auto", "never", "always", NULL};
static const char *const pp_names[] = {"off", "v1", "v2", NULL};
static const char *const pp_in_names[] = {"off", "v1", "v2", "any", NULL};
static const char *const balance_names[] = {"round_robin", "least_conn", "client_ip_hash", NULL};
static const char *const check_names[] = {"tcp", "proxy_local", "tls", "off", NULL};
const char *const config_tlv_names[] = {"authority", "alpn", "unique_id", "crc32c", NULL};
static const char *const access_mode_names[] = {"all", "errors", "off", NULL};
static const char *const access_format_names[] = {"text", "json", NULL};
const char *const config_level_names[] = {"error", "warn", "info", "debug", NULL};

#define DAY_MS (24U * 3600U * 1000U)
#define AT(type, field) .off = offsetof(type, field)
#define MARK(type, field) .mark_off = (offsetof(type, field) + 1)
#define END {.key = NULL}

static const struct setting server_settings[] = {
    {.key = "address", .kind = K_SERVER_ADDR, .flag = "--backend", .arg = "ADDR:PORT",
     .describes = 1, .help = "where to relay connections (or unix:/path)"},
    {.key = "weight", .kind = K_UINT, AT(struct config_server, weight), .min = 1, .max = 1000,
     .def = "1"},
    {.key = "max_connections", .kind = K_UINT, AT(struct config_server, max_connections),
     .max = 10000000, .def = "0"},
    END,
};

static const struct setting health_settings[] = {
    {.key = "mode", .kind = K_CHOICE, AT(struct config_health, mode), .choices = check_names,
     .def = "tcp"},
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
    {.key = "trusted_sources", .kind = K_CIDRS, .def = "[]", .flag = "--trusted-source",
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
    {.key = "access_log", .kind = K_MAP, AT(struct config, access_log), .sub = &access_log_section,
     .def = "{}"},
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

int config_parse_duration(const char *s, uint32_t *ms)
{
    unsigned long long v = 0, mult = 1000;
    const char *p = s;

    if (*p < '0' || *p > '9')
        return -EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (unsigned long long)(*p - '0');
        if (v > UINT32_MAX)
            return -EINVAL;
    }
    if (strcmp(p, "ms") == 0)
        mult = 1;
    else if (strcmp(p, "s") == 0 || *p == '\0')
        mult = 1000;
    else if (strcmp(p, "m") == 0)
        mult = 60ULL * 1000;
    else if (strcmp(p, "h") == 0)
        mult = 3600ULL * 1000;
    else
        return -EINVAL;
    if (v * mult > UINT32_MAX)
        return -EINVAL;
    *ms = (uint32_t)(v * mult);
    return 0;
}

/* ---- the walk ---- */

/* Keeps an error to one printable line whatever the file held. */
void config_one_line(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

/* Fills err with "FILE:LINE:COL: PATH.KEY: message", or for a value from
 * the command line "--FLAG: message": the same message either way. */
int config_fail(struct walk *w, const yaml_mark_t *m, const char *key, const char *fmt, ...)
{
    const char *file = w->file ? w->file : "command line";
    char msg[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized): a false report
    va_end(ap);
    if (w->origin == FROM_ARGS && m->index > 0 && m->index <= (size_t)w->n_args)
        snprintf(w->err, w->errlen, "%s: %s", w->args[m->index - 1].flag, msg);
    else if (!*w->path && !key)
        snprintf(w->err, w->errlen, "%s:%zu:%zu: %s", file, m->line + 1, m->column + 1, msg);
    else
        snprintf(w->err, w->errlen, "%s:%zu:%zu: %s%s%s: %s", file, m->line + 1, m->column + 1,
                 w->path, *w->path && key ? "." : "", key ? key : "", msg);
    config_one_line(w->err);
    return -EINVAL;
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int pick_name(const char *s, const char *const *names)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

void config_list_names(const char *const *names, char *buf, size_t cap)
{
    size_t n = 0;

    buf[0] = '\0';
    for (int i = 0; names[i] && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? ", " : "", names[i]);
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n >= CONFIG_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
            return 0;
    return 1;
}

static int parse_u32(const char *s, uint32_t *out)
{
    unsigned long long v = 0;

    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned long long)(*s - '0');
        if (v > UINT32_MAX)
            return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* The items of sequence node n, or an error if it is not one. */
static int seq_items(struct walk *w, yaml_node_t *n, const char *key, yaml_node_item_t **first,
                     yaml_node_item_t **end)
{
    *first = *end = NULL;
    if (n->type != YAML_SEQUENCE_NODE)
        return config_fail(w, &n->start_mark, key, "expected a list");
    *first = n->data.sequence.items.start;
    *end = n->data.sequence.items.top;
    return 0;
}

static int set_binds(struct walk *w, yaml_node_t *n, struct config_listener *l)
{
    yaml_node_item_t *it, *end, one;
    const char *s;

    if (n->type == YAML_SCALAR_NODE) {
        one = (yaml_node_item_t)(n - w->doc->nodes.start + 1);
        it = &one;
        end = it + 1;
    } else if (seq_items(w, n, "bind", &it, &end) < 0) {
        return -EINVAL;
    }
    l->n_bind = 0;
    for (; it < end; it++) {
        yaml_node_t *v = yaml_document_get_node(w->doc, *it);
        if (l->n_bind == CONFIG_MAX_BINDS)
            return config_fail(w, &v->start_mark, "bind", "at most %d addresses", CONFIG_MAX_BINDS);
        if (!(s = scalar(v)) || addr_parse(s, &l->bind[l->n_bind]) < 0)
            return config_fail(w, &v->start_mark, "bind",
                        "expected IPV4:PORT or [IPV6]:PORT with port 1-65535, got '%s'",
                        s ? s : "a non-scalar");
        l->n_bind++;
    }
    if (l->n_bind == 0)
        return config_fail(w, &n->start_mark, "bind", "expected at least one address");
    return 0;
}

static int set_cidrs(struct walk *w, yaml_node_t *n, struct config_listener *l)
{
    yaml_node_item_t *it, *end;
    char net[CIDR_STRLEN];
    const char *s;
    int ret;

    if (seq_items(w, n, "trusted_sources", &it, &end) < 0)
        return -EINVAL;
    l->n_trusted = 0;
    for (; it < end; it++) {
        yaml_node_t *v = yaml_document_get_node(w->doc, *it);
        struct cidr *c = &l->trusted[l->n_trusted];
        if (l->n_trusted == CONFIG_MAX_TRUSTED)
            return config_fail(w, &v->start_mark, "trusted_sources", "at most %d ranges",
                        CONFIG_MAX_TRUSTED);
        if (!(s = scalar(v)) || (ret = cidr_parse(s, c)) == -EINVAL)
            return config_fail(w, &v->start_mark, "trusted_sources",
                        "expected an address or ADDR/BITS, got '%s'", s ? s : "a non-scalar");
        if (ret == -EDOM) {
            for (int b = c->bits; b < (c->family == AF_INET ? 32 : 128); b++)
                c->addr[b / 8] &= (uint8_t)~(0x80 >> (b % 8));
            return config_fail(w, &v->start_mark, "trusted_sources",
                        "'%s' has bits set below the /%u prefix; did you mean %s?", s, c->bits,
                        cidr_format(c, net, sizeof(net)));
        }
        l->n_trusted++;
    }
    return 0;
}

static int set_tlvs(struct walk *w, yaml_node_t *n, struct config_backend *b)
{
    yaml_node_item_t *it, *end;
    const char *s;
    char *e;

    if (seq_items(w, n, "tlvs", &it, &end) < 0)
        return -EINVAL;
    b->tlvs = 0;
    b->n_tlv_pass = 0;
    for (; it < end; it++) {
        yaml_node_t *v = yaml_document_get_node(w->doc, *it);
        unsigned long type;
        int i;

        if (!(s = scalar(v)))
            return config_fail(w, &v->start_mark, "tlvs", "expected a TLV name or number");
        if ((i = pick_name(s, config_tlv_names)) >= 0) {
            b->tlvs |= 1U << i;
            continue;
        }
        type = strtoul(s, &e, 0);
        if (*s < '0' || *s > '9' || *e || type > 0xff || b->n_tlv_pass == CONFIG_MAX_TLV_PASS)
            return config_fail(w, &v->start_mark, "tlvs",
                        "expected authority, alpn, unique_id, crc32c or a type number like "
                        "0xEA, got '%s'", s);
        b->tlv_pass[b->n_tlv_pass++] = (uint8_t)type;
    }
    return 0;
}

static int set_server_addr(struct walk *w, const yaml_mark_t *m, const char *s,
                           struct config_server *sv)
{
    if (strncmp(s, "unix:", 5) == 0) {
        if (s[5] != '/' || strlen(s + 5) >= CONFIG_PATH_MAX)
            return config_fail(w, m, "address", "expected unix:/absolute/path (under %d bytes)",
                        CONFIG_PATH_MAX);
        sv->is_unix = 1;
        strcpy(sv->path, s + 5); // NOLINT: length checked above
        return 0;
    }
    if (addr_parse(s, &sv->inet) < 0)
        return config_fail(w, m, "address",
                    "expected IPV4:PORT, [IPV6]:PORT (port 1-65535) or unix:/path, got '%s'", s);
    sv->is_unix = 0;
    return 0;
}

/* A number: K_UINT, K_DURATION, or K_WORKERS (which also takes "auto"). */
static int set_number(struct walk *w, const struct setting *st, char *field, const char *s,
                      const yaml_mark_t *m)
{
    uint32_t u = 0;
    int i;

    if (st->kind == K_WORKERS) {
        if (strcmp(s, "auto") == 0)
            i = 0;
        else if (parse_u32(s, &u) == 0 && u >= 1 && u <= 1024)
            i = (int)u;
        else
            return config_fail(w, m, st->key, "expected auto or a number from 1 to 1024, got '%s'", s);
        memcpy(field, &i, sizeof(i));
        return 0;
    }
    if (st->kind == K_UINT && (parse_u32(s, &u) < 0 || u < st->min || u > st->max))
        return config_fail(w, m, st->key, "expected a whole number from %u to %u, got '%s'", st->min,
                    st->max, s);
    if (st->kind == K_DURATION && config_parse_duration(s, &u) < 0)
        return config_fail(w, m, st->key, "expected a duration like 500ms, 5s, 2m or 1h, got '%s'", s);
    if (u < st->min || u > st->max)
        return config_fail(w, m, st->key, "%s is out of range %ums-%ums", s, st->min, st->max);
    memcpy(field, &u, sizeof(u));
    return 0;
}

/* One of a list of words: K_CHOICE, K_LOG_LEVEL. */
static int set_choice(struct walk *w, const struct setting *st, char *field, const char *s,
                      const yaml_mark_t *m)
{
    char names[160];
    int i;

    if (st->kind == K_LOG_LEVEL) {
        if (pick_name(s, config_level_names) < 0)
            return config_fail(w, m, st->key, "expected error, warn, info or debug, got '%s'", s);
        i = log_level_parse(s);
    } else if ((i = pick_name(s, st->choices)) < 0) {
        config_list_names(st->choices, names, sizeof(names));
        return config_fail(w, m, st->key, "expected one of %s, got '%s'", names, s);
    }
    memcpy(field, &i, sizeof(i));
    return 0;
}

/* Text: K_NAME, K_HOST, K_ROUTE_SNI, K_PATH, K_LOG_PATH. */
static int set_text(struct walk *w, const struct setting *st, char *field, const char *s,
                    const yaml_mark_t *m)
{
    int i;

    switch (st->kind) {
    case K_NAME:
        if (*s && !valid_name(s))
            return config_fail(w, m, st->key, "expected a name of letters, digits, '-', '_' or '.' "
                        "(at most %d), got '%s'", CONFIG_NAME_MAX - 1, s);
        snprintf(field, CONFIG_NAME_MAX, "%s", s);
        return 0;
    case K_HOST:
    case K_ROUTE_SNI:
        /* A backend's sni may be "" (none); a route's names something. */
        i = *s || st->kind == K_ROUTE_SNI ? route_name_check(s, strlen(s)) : 0;
        if (i < 0 || (st->kind == K_HOST && i == 1))
            return config_fail(w, m, st->key, "expected a host name%s, got '%s'",
                        st->kind == K_ROUTE_SNI ? " or *.suffix" : "", s);
        snprintf(field, CLIENTHELLO_SNI_MAX + 1, "%s", s);
        return 0;
    default: /* K_PATH, K_LOG_PATH */
        if ((*s && *s != '/' && !(st->kind == K_LOG_PATH && strcmp(s, "stderr") == 0)) ||
            strlen(s) >= CONFIG_PATH_MAX)
            return config_fail(w, m, st->key, "expected an absolute path under %d bytes%s, got '%s'",
                        CONFIG_PATH_MAX, st->kind == K_LOG_PATH ? " or stderr" : "", s);
        snprintf(field, CONFIG_PATH_MAX, "%s", s);
        return 0;
    }
}

/* Sets a scalar-valued setting from text (the file's, a flag's or the
 * default). */
static int set_scalar(struct walk *w, const struct setting *st, void *base, const char *s,
                      const yaml_mark_t *m)
{
    char *field = (char *)base + st->off;

    switch (st->kind) {
    case K_UINT:
    case K_DURATION:
    case K_WORKERS:
        return set_number(w, st, field, s, m);
    case K_CHOICE:
    case K_LOG_LEVEL:
        return set_choice(w, st, field, s, m);
    case K_NAME:
    case K_HOST:
    case K_ROUTE_SNI:
    case K_PATH:
    case K_LOG_PATH:
        return set_text(w, st, field, s, m);
    default:
        return config_fail(w, m, st->key, "internal: not a scalar setting");
    }
}

/* Where the elements of sequence st start in the struct at base. */
char *config_seq_elems(const struct setting *st, const void *base)
{
    char *elems;

    if (!st->grow)
        return (char *)base + st->off;
    memcpy(&elems, (const char *)base + st->off, sizeof(elems));
    return elems;
}

int config_seq_count(const struct setting *st, const void *base)
{
    int count;

    memcpy(&count, (const char *)base + st->count_off, sizeof(count));
    return count;
}

/* A list of nested sections: in place, or (grow) in an array made for it. */
static int walk_seq(struct walk *w, const struct setting *st, yaml_node_t *n, void *base)
{
    size_t len = strlen(w->path);
    yaml_node_item_t *it, *end;
    char *elems;
    int count = 0, ret;

    if (seq_items(w, n, st->key, &it, &end) < 0)
        return -EINVAL;
    if (end - it > st->max_elems)
        return config_fail(w, &n->start_mark, st->key, "at most %d entries", st->max_elems);
    if (st->grow) {
        elems = end > it ? calloc((size_t)(end - it), st->elem_size) : NULL;
        if (end > it && !elems)
            return -ENOMEM;
        memcpy((char *)base + st->off, &elems, sizeof(elems));
    }
    elems = config_seq_elems(st, base);
    for (; it < end; it++, count++) {
        yaml_node_t *v = yaml_document_get_node(w->doc, *it);
        snprintf(w->path + len, sizeof(w->path) - len, "%s%s[%d]", len ? "." : "", st->key,
                 count);
        /* Counted before it is filled, so that config_free() finds what a
         * failure halfway through it leaves. */
        memcpy((char *)base + st->count_off, &(int){count + 1}, sizeof(int));
        ret = config_walk_section(w, st->sub, v, elems + (size_t)count * st->elem_size);
        w->path[len] = '\0';
        if (ret < 0)
            return ret;
    }
    memcpy((char *)base + st->count_off, &count, sizeof(count));
    return 0;
}

/* Applies one key's value node. */
int config_apply(struct walk *w, const struct setting *st, yaml_node_t *v, void *base)
{
    size_t len = strlen(w->path);
    const char *s;
    int ret;

    if (st->mark_off && w->origin == FROM_FILE) {
        struct config_mark mk = {(int)v->start_mark.line + 1, (int)v->start_mark.column + 1};
        memcpy((char *)base + st->mark_off - 1, &mk, sizeof(mk));
    }
    switch (st->kind) {
    case K_BINDS:
        return set_binds(w, v, base);
    case K_CIDRS:
        return set_cidrs(w, v, base);
    case K_TLVS:
        return set_tlvs(w, v, base);
    case K_SEQ:
        return walk_seq(w, st, v, base);
    case K_MAP:
        snprintf(w->path + len, sizeof(w->path) - len, "%s%s", len ? "." : "", st->key);
        ret = config_walk_section(w, st->sub, v, (char *)base + st->off);
        w->path[len] = '\0';
        return ret;
    case K_SERVER_ADDR:
        if (!(s = scalar(v)))
            return config_fail(w, &v->start_mark, st->key, "expected a value, not a list or mapping");
        return set_server_addr(w, &v->start_mark, s, base);
    default:
        if (!(s = scalar(v)))
            return config_fail(w, &v->start_mark, st->key, "expected a value, not a list or mapping");
        return set_scalar(w, st, base, s, &v->start_mark);
    }
}

/* Applies a setting's default by parsing its text as a tiny document. */
static int apply_default(struct walk *w, const struct setting *st, void *base)
{
    yaml_parser_t parser;
    yaml_document_t doc, *outer = w->doc;
    enum origin outer_origin = w->origin;
    yaml_node_t *root;
    int ret = -EINVAL;

    if (!yaml_parser_initialize(&parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)st->def, strlen(st->def));
    if (yaml_parser_load(&parser, &doc)) {
        root = yaml_document_get_root_node(&doc);
        w->doc = &doc;
        w->origin = FROM_DEFAULT;
        ret = root ? config_apply(w, st, root, base) : -EINVAL;
        w->doc = outer;
        w->origin = outer_origin;
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    return ret;
}

/* One mapping against its section's table: known keys once each, required
 * ones present, defaults for the rest. */
int config_walk_section(struct walk *w, const struct section *sec, yaml_node_t *n, void *base)
{
    char names[300];
    uint64_t seen = 0;
    int ret;

    if (n->type != YAML_MAPPING_NODE)
        return config_fail(w, &n->start_mark, NULL, "expected a mapping of keys to values");
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(w->doc, p->value);
        const char *key = scalar(k);
        int i;

        for (i = 0; key && sec->settings[i].key; i++)
            if (strcmp(key, sec->settings[i].key) == 0)
                break;
        if (!key || !sec->settings[i].key) {
            size_t m = 0;
            for (int j = 0; sec->settings[j].key && m < sizeof(names); j++)
                m += (size_t)snprintf(names + m, sizeof(names) - m, "%s%s", j ? ", " : "",
                                      sec->settings[j].key);
            return config_fail(w, &k->start_mark, key ? key : "?", "unknown key (expected one of: %s)",
                        names);
        }
        if (seen & (1ULL << i))
            return config_fail(w, &k->start_mark, key, "given twice");
        seen |= 1ULL << i;
        if ((ret = config_apply(w, &sec->settings[i], v, base)) < 0)
            return ret;
    }
    for (int i = 0; sec->settings[i].key; i++) {
        const struct setting *st = &sec->settings[i];
        if (seen & (1ULL << i))
            continue;
        if (!st->def)
            return config_fail(w, &n->start_mark, st->key, "required");
        if ((ret = apply_default(w, st, base)) < 0)
            return ret;
    }
    return 0;
}

/* ---- rules across keys, once every value is in ---- */

/* A rule about key subject is told in the words the user used: flags when
 * the command line describes the configuration or set subject, keys (with
 * the file's position) otherwise. */
static void speak_of(struct walk *w, const char *subject)
{
    w->cli_words = !w->file || config_arg_given(w, config_setting_by_key(subject));
}

/* key as the user would write it: the key, or its flag. */
static const char *say(const struct walk *w, const char *key)
{
    const struct setting *st = w->cli_words ? config_setting_by_key(key) : NULL;

    return st ? st->flag : key;
}

/* "key: value", or "--flag value". */
static const char *say_is(const struct walk *w, const char *key, const char *value, char *buf,
                          size_t cap)
{
    snprintf(buf, cap, "%s%s %s", say(w, key), w->cli_words ? "" : ":", value);
    return buf;
}

static int fail_at(struct walk *w, const struct config_mark *m, const char *path,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* "FILE:LINE:COL: PATH: message" for a file, "message" when told in flags. */
static int fail_at(struct walk *w, const struct config_mark *m, const char *path,
                   const char *fmt, ...)
{
    char msg[300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized): a false report
    va_end(ap);
    if (w->cli_words || !w->file)
        snprintf(w->err, w->errlen, "%s", msg);
    else
        snprintf(w->err, w->errlen, "%s:%d:%d: %s: %s", w->file, m->line, m->col, path, msg);
    config_one_line(w->err);
    return -EINVAL;
}

static int backend_index(const struct config *c, const char *name)
{
    for (int i = 0; i < c->n_backends; i++)
        if (strcmp(c->backends[i].name, name) == 0)
            return i;
    return -1;
}

static int check_backends(struct walk *w, struct config *c)
{
    char path[64], v2[48];

    int servers = 0;

    w->cli_words = !w->file;
    if (c->n_backends == 0)
        return fail_at(w, &c->backends_mark, "backends", "at least one backend is needed");
    for (int i = 0; i < c->n_backends; i++)
        servers += c->backends[i].n_servers;
    if (servers > CONFIG_MAX_SERVERS_TOTAL)
        return fail_at(w, &c->backends_mark, "backends", "%d servers in all; at most %d", servers,
                       CONFIG_MAX_SERVERS_TOTAL);

    for (int i = 0; i < c->n_backends; i++) {
        struct config_backend *b = &c->backends[i];
        snprintf(path, sizeof(path), "backends[%d]", i);
        w->cli_words = !w->file;
        if (backend_index(c, b->name) != i)
            return fail_at(w, &b->mark, path, "name '%s' is used by an earlier backend",
                           b->name);
        if (b->n_servers == 0)
            return fail_at(w, &b->mark, path, "backend '%s' has no servers", b->name);
        speak_of(w, "tlvs");
        if ((b->tlvs || b->n_tlv_pass) && b->proxy_protocol != PROXY_V2)
            return fail_at(w, &b->mark, path, "%s need %s (backend '%s')", say(w, "tlvs"),
                           say_is(w, "proxy_protocol", "v2", v2, sizeof(v2)), b->name);
    }
    return 0;
}

/* Whether some listener that takes inbound headers sends connections to
 * backend b (by default or by a route). */
static int fed_by_inbound(const struct config *c, int b)
{
    for (int l = 0; l < c->n_listeners; l++) {
        const struct config_listener *li = &c->listeners[l];
        int uses = li->default_index == b;
        for (int r = 0; r < li->n_routes && !uses; r++)
            uses = li->routes[r].backend_index == b;
        if (uses && li->proxy_protocol_in != PROXY_IN_OFF)
            return 1;
    }
    return 0;
}

/* TLVs copied from an inbound header need one to copy from. */
static int check_tlv_copies(struct walk *w, const struct config *c)
{
    char path[64];

    for (int b = 0; b < c->n_backends; b++) {
        if (!c->backends[b].n_tlv_pass || fed_by_inbound(c, b))
            continue;
        snprintf(path, sizeof(path), "backends[%d]", b);
        speak_of(w, "tlvs");
        return fail_at(w, &c->backends[b].mark, path, "%s: copying TLV types needs %s on a "
                       "listener that uses backend '%s' (they come from a trusted inbound "
                       "header)", say(w, "tlvs"), say(w, "proxy_protocol_in"),
                       c->backends[b].name);
    }
    return 0;
}

static int route_cmp(const void *a, const void *b)
{
    const struct config_route *x = *(const struct config_route *const *)a;
    const struct config_route *y = *(const struct config_route *const *)b;
    int d = strcasecmp(x->sni, y->sni);

    return d ? d : x < y ? -1 : x > y;
}

/* No server name routed twice (names match whatever their case). */
static int check_route_names(struct walk *w, struct config_listener *l, int li)
{
    const struct config_route **by_name =
        malloc((size_t)l->n_routes * sizeof(const struct config_route *) + 1);
    char path[96];
    int ret = 0;

    if (!by_name)
        return -ENOMEM;
    for (int r = 0; r < l->n_routes; r++)
        by_name[r] = &l->routes[r];
    qsort(by_name, (size_t)l->n_routes, sizeof(const struct config_route *), route_cmp);
    for (int r = 1; r < l->n_routes && ret == 0; r++) {
        const struct config_route *dup = by_name[r];
        if (strcasecmp(by_name[r - 1]->sni, dup->sni) != 0)
            continue;
        snprintf(path, sizeof(path), "listeners[%d].routes[%d]", li, (int)(dup - l->routes));
        speak_of(w, "routes");
        if (w->cli_words)
            ret = fail_at(w, &dup->mark, path, "%s: '%s' already has a route", say(w, "routes"),
                          dup->sni);
        else
            ret = fail_at(w, &dup->mark, path, "'%s' already has a route (routes[%d])", dup->sni,
                          (int)(by_name[r - 1] - l->routes));
    }
    free(by_name);
    return ret;
}

static int check_routes(struct walk *w, struct config *c, struct config_listener *l, int li)
{
    char path[96], have[CONFIG_MAX_BACKENDS * 8];
    size_t n = 0;

    w->cli_words = !w->file;
    have[0] = '\0';
    for (int i = 0; i < c->n_backends && n < sizeof(have); i++)
        n += (size_t)snprintf(have + n, sizeof(have) - n, "%s%s", i ? ", " : "",
                              c->backends[i].name);
    for (int r = 0; r < l->n_routes; r++) {
        struct config_route *rt = &l->routes[r];
        snprintf(path, sizeof(path), "listeners[%d].routes[%d].backend", li, r);
        if ((rt->backend_index = backend_index(c, rt->backend)) < 0)
            return fail_at(w, &rt->mark, path, "no backend is named '%s' (there are: %s)",
                           rt->backend, have);
    }
    snprintf(path, sizeof(path), "listeners[%d].default_backend", li);
    if (!l->default_backend[0] && c->n_backends == 1)
        snprintf(l->default_backend, sizeof(l->default_backend), "%s", c->backends[0].name);
    if (!l->default_backend[0])
        return fail_at(w, &l->mark, path, "required when there is more than one backend "
                       "(there are: %s)", have);
    if ((l->default_index = backend_index(c, l->default_backend)) < 0)
        return fail_at(w, &l->default_mark, path, "no backend is named '%s' (there are: %s)",
                       l->default_backend, have);
    return check_route_names(w, l, li);
}

static int same_addr(const union sockaddr_inet *a, const union sockaddr_inet *b)
{
    if (a->sa.sa_family != b->sa.sa_family)
        return 0;
    if (a->sa.sa_family == AF_INET)
        return a->in.sin_port == b->in.sin_port && a->in.sin_addr.s_addr == b->in.sin_addr.s_addr;
    return a->in6.sin6_port == b->in6.sin6_port &&
           memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, sizeof(a->in6.sin6_addr)) == 0;
}

/* Inbound headers need a trust list, and a trust list needs them. */
static int check_inbound(struct walk *w, const struct config_listener *l, const char *path)
{
    char off[48];

    speak_of(w, "proxy_protocol_in");
    if (l->proxy_protocol_in != PROXY_IN_OFF && l->n_trusted == 0)
        return fail_at(w, &l->mark, path, "%s needs %s (the proxies in front that send the "
                       "header)", say(w, "proxy_protocol_in"), say(w, "trusted_sources"));
    speak_of(w, "trusted_sources");
    if (l->proxy_protocol_in == PROXY_IN_OFF && l->n_trusted)
        return fail_at(w, &l->mark, path, "%s has no effect with %s", say(w, "trusted_sources"),
                       say_is(w, "proxy_protocol_in", "off", off, sizeof(off)));
    return 0;
}

static int check_listeners(struct walk *w, struct config *c)
{
    char path[64], addrbuf[ADDR_STRLEN];

    w->cli_words = !w->file;
    if (c->n_listeners == 0)
        return fail_at(w, &c->listeners_mark, "listeners", "at least one listener is needed");

    for (int i = 0; i < c->n_listeners; i++) {
        struct config_listener *l = &c->listeners[i];
        snprintf(path, sizeof(path), "listeners[%d]", i);
        w->cli_words = !w->file;
        for (int j = 0; j < i; j++)
            if (strcmp(c->listeners[j].name, l->name) == 0)
                return fail_at(w, &l->mark, path, "name '%s' is used by an earlier listener",
                               l->name);
        for (int j = 0; j <= i; j++)
            for (int a = 0; a < c->listeners[j].n_bind; a++)
                for (int b = 0; b < l->n_bind; b++)
                    if ((j < i || a < b) && same_addr(&c->listeners[j].bind[a], &l->bind[b]))
                        return fail_at(w, &l->mark, path, "bind address %s is bound twice",
                                       addr_format(&l->bind[b].sa, addrbuf, sizeof(addrbuf)));
        if (check_inbound(w, l, path) < 0 || check_routes(w, c, l, i) < 0)
            return -EINVAL;
    }
    return check_tlv_copies(w, c);
}

/* ---- loading ---- */

/* libyaml's loader slows down more than linearly with nesting (60,000
 * levels take seconds); no configuration needs more than a few. */
#define CONFIG_MAX_DEPTH 64

static int yaml_error(struct walk *w, const yaml_parser_t *p)
{
    snprintf(w->err, w->errlen, "%s:%zu:%zu: %s%s%s", w->file, p->problem_mark.line + 1,
             p->problem_mark.column + 1, p->problem ? p->problem : "bad YAML",
             p->context ? " " : "", p->context ? p->context : "");
    config_one_line(w->err);
    return -EINVAL;
}

/* Reads the file's events once before loading it: refuses nesting deeper
 * than CONFIG_MAX_DEPTH as soon as it is met (so no file takes long), and a
 * second document, which would otherwise be silently ignored. */
static int prescan(struct walk *w, const char *text, size_t len)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    int depth = 0, docs = 0, ret = 1;

    if (!yaml_parser_initialize(&parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    while (ret > 0) {
        if (!yaml_parser_parse(&parser, &ev)) {
            ret = yaml_error(w, &parser);
            break;
        }
        if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT)
            depth++;
        else if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT)
            depth--;
        if (depth > CONFIG_MAX_DEPTH)
            ret = config_fail(w, &ev.start_mark, NULL, "nested more than %d levels deep",
                       CONFIG_MAX_DEPTH);
        else if (ev.type == YAML_DOCUMENT_START_EVENT && ++docs > 1)
            ret = config_fail(w, &ev.start_mark, NULL, "a second YAML document (after '---'); put "
                       "the whole configuration in one");
        else if (ev.type == YAML_STREAM_END_EVENT)
            ret = 0;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return ret;
}

/* The file's text into c, every key checked and defaulted. */
static int walk_file(struct walk *w, struct config *c, const char *text, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_node_t *root;
    yaml_mark_t start = {0, 0, 0};
    int ret;

    if ((ret = prescan(w, text, len)) < 0)
        return ret;
    if (!yaml_parser_initialize(&parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        ret = yaml_error(w, &parser);
        yaml_parser_delete(&parser);
        return ret;
    }
    w->doc = &doc;
    w->origin = FROM_FILE;
    root = yaml_document_get_root_node(&doc);
    if (!root)
        ret = config_fail(w, &start, "listeners", "the file is empty; required");
    else
        ret = config_walk_section(w, &config_top_section, root, c);
    w->doc = NULL;
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return ret;
}

int config_load(struct config *c, const char *file, const char *text, size_t len,
                const struct config_arg *args, int n, char *err, size_t errlen)
{
    struct walk w = {.file = file, .args = args, .n_args = n, .err = err, .errlen = errlen};
    int ret;

    memset(c, 0, sizeof(*c));
    if ((ret = config_check_no_file(&w, file != NULL)) < 0)
        return ret;
    ret = file ? walk_file(&w, c, text, len) : config_walk_described(&w, c);
    if (ret == 0)
        ret = config_apply_flags(&w, &config_top_section, c);
    if (ret == 0)
        ret = check_backends(&w, c);
    if (ret == 0)
        ret = check_listeners(&w, c);
    if (ret < 0)
        config_free(c);
    return ret;
}

/* Frees the arrays made for the sequences of sec in the struct at base. */
static void free_section(const struct section *sec, void *base)
{
    for (const struct setting *st = sec->settings; st->key; st++) {
        char *elems;
        if (st->kind != K_SEQ)
            continue;
        elems = config_seq_elems(st, base);
        for (int e = 0; elems && e < config_seq_count(st, base); e++)
            free_section(st->sub, elems + (size_t)e * st->elem_size);
        if (st->grow) {
            void *none = NULL;
            free(elems);
            memcpy((char *)base + st->off, &none, sizeof(none));
            memset((char *)base + st->count_off, 0, sizeof(int));
        }
    }
}

void config_free(struct config *c)
{
    free_section(&config_top_section, c);
}

int config_parse(struct config *c, const char *file, const char *text, size_t len, char *err,
                 size_t errlen)
{
    return config_load(c, file, text, len, NULL, 0, err, errlen);
}

