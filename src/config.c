/* Configuration file: one table of settings per section drives parsing,
 * validation, defaults and --dump-config, like nginx's directive tables. */
#include "config.h"

#include "log.h"
#include "route.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

enum kind {
    K_UINT,        /* min..max */
    K_DURATION,    /* milliseconds, min..max */
    K_CHOICE,      /* an int: the index in choices */
    K_NAME,        /* letters, digits, '-', '_', '.' */
    K_HOST,        /* a host name, for SNI */
    K_ROUTE_SNI,   /* a host name or *.suffix */
    K_PATH,        /* an absolute path, or "" */
    K_LOG_PATH,    /* an absolute path, "stderr", or "" */
    K_WORKERS,     /* auto or 1..1024 */
    K_LOG_LEVEL,   /* error..debug */
    K_BINDS,       /* one ADDR:PORT or a list of them */
    K_CIDRS,       /* a list of CIDR ranges */
    K_TLVS,        /* a list of TLV names and type numbers */
    K_SERVER_ADDR, /* ADDR:PORT or unix:/path */
    K_MAP,         /* a nested section */
    K_SEQ,         /* a list of nested sections */
};

struct section;

struct setting {
    const char *key;
    /* The command-line flag that sets it (NULL: none), with what its value
     * looks like and one line for --help (the default is added to it). */
    const char *flag, *arg, *help;
    size_t off;      /* where the value lands in the section's struct */
    const char *def; /* default, as the text a file would hold; NULL: required */
    const char *const *choices;
    const struct section *sub;   /* K_MAP, K_SEQ */
    size_t count_off, elem_size; /* K_SEQ: where the count lands, element size */
    size_t mark_off;             /* 1 + where to keep the value's position (0: nowhere) */
    enum kind kind;
    uint32_t min, max;
    int max_elems;
    uint8_t grow;      /* K_SEQ: off holds a pointer to an array made to fit */
    uint8_t restart;   /* start-only: a reload keeps the running value, and says so */
    uint8_t describes; /* --listen, --backend, --route: the flag builds the
                        * configuration when there is no file; refused with one */
};

struct section {
    const struct setting *settings;
    size_t size; /* of the struct a mapping of this section fills */
};

static const char *const io_names[] = {"auto", "uring", "epoll", NULL};
static const char *const splice_names[] = {"auto", "never", "always", NULL};
static const char *const pp_names[] = {"off", "v1", "v2", NULL};
static const char *const pp_in_names[] = {"off", "v1", "v2", "any", NULL};
static const char *const balance_names[] = {"round_robin", "least_conn", "client_ip_hash", NULL};
static const char *const check_names[] = {"tcp", "proxy_local", "tls", "off", NULL};
static const char *const tlv_names[] = {"authority", "alpn", "unique_id", "crc32c", NULL};
static const char *const access_mode_names[] = {"all", "errors", "off", NULL};
static const char *const access_format_names[] = {"text", "json", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};

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

static const struct section top_section = {top_settings, sizeof(struct config)};

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

/* Where the nodes being walked come from. */
enum origin {
    FROM_FILE,
    FROM_DEFAULT, /* a setting's default, as text */
    FROM_ARGS,    /* the command line: a node's start_mark.index is 1 + the index of
                   * the argument it came from, 0 for structure around them */
};

struct walk {
    yaml_document_t *doc;
    enum origin origin;
    const char *file; /* NULL: no file, the command line describes it all */
    const struct config_arg *args;
    int n_args;
    int cli_words;  /* a broken rule is told in flags (--trusted-source), not keys */
    char path[256]; /* the key path so far: listeners[0].routes[1] */
    char *err;
    size_t errlen;
};

static int fail(struct walk *w, const yaml_mark_t *m, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Keeps an error to one printable line whatever the file held. */
static void one_line(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

/* Fills err with "FILE:LINE:COL: PATH.KEY: message", or for a value from
 * the command line "--FLAG: message": the same message either way. */
static int fail(struct walk *w, const yaml_mark_t *m, const char *key, const char *fmt, ...)
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
    one_line(w->err);
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

static void list_names(const char *const *names, char *buf, size_t cap)
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
        return fail(w, &n->start_mark, key, "expected a list");
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
            return fail(w, &v->start_mark, "bind", "at most %d addresses", CONFIG_MAX_BINDS);
        if (!(s = scalar(v)) || addr_parse(s, &l->bind[l->n_bind]) < 0)
            return fail(w, &v->start_mark, "bind",
                        "expected IPV4:PORT or [IPV6]:PORT with port 1-65535, got '%s'",
                        s ? s : "a non-scalar");
        l->n_bind++;
    }
    if (l->n_bind == 0)
        return fail(w, &n->start_mark, "bind", "expected at least one address");
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
            return fail(w, &v->start_mark, "trusted_sources", "at most %d ranges",
                        CONFIG_MAX_TRUSTED);
        if (!(s = scalar(v)) || (ret = cidr_parse(s, c)) == -EINVAL)
            return fail(w, &v->start_mark, "trusted_sources",
                        "expected an address or ADDR/BITS, got '%s'", s ? s : "a non-scalar");
        if (ret == -EDOM) {
            for (int b = c->bits; b < (c->family == AF_INET ? 32 : 128); b++)
                c->addr[b / 8] &= (uint8_t)~(0x80 >> (b % 8));
            return fail(w, &v->start_mark, "trusted_sources",
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
            return fail(w, &v->start_mark, "tlvs", "expected a TLV name or number");
        if ((i = pick_name(s, tlv_names)) >= 0) {
            b->tlvs |= 1U << i;
            continue;
        }
        type = strtoul(s, &e, 0);
        if (*s < '0' || *s > '9' || *e || type > 0xff || b->n_tlv_pass == CONFIG_MAX_TLV_PASS)
            return fail(w, &v->start_mark, "tlvs",
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
            return fail(w, m, "address", "expected unix:/absolute/path (under %d bytes)",
                        CONFIG_PATH_MAX);
        sv->is_unix = 1;
        strcpy(sv->path, s + 5); // NOLINT: length checked above
        return 0;
    }
    if (addr_parse(s, &sv->inet) < 0)
        return fail(w, m, "address",
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
            return fail(w, m, st->key, "expected auto or a number from 1 to 1024, got '%s'", s);
        memcpy(field, &i, sizeof(i));
        return 0;
    }
    if (st->kind == K_UINT && (parse_u32(s, &u) < 0 || u < st->min || u > st->max))
        return fail(w, m, st->key, "expected a whole number from %u to %u, got '%s'", st->min,
                    st->max, s);
    if (st->kind == K_DURATION && config_parse_duration(s, &u) < 0)
        return fail(w, m, st->key, "expected a duration like 500ms, 5s, 2m or 1h, got '%s'", s);
    if (u < st->min || u > st->max)
        return fail(w, m, st->key, "%s is out of range %ums-%ums", s, st->min, st->max);
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
        if (pick_name(s, level_names) < 0)
            return fail(w, m, st->key, "expected error, warn, info or debug, got '%s'", s);
        i = log_level_parse(s);
    } else if ((i = pick_name(s, st->choices)) < 0) {
        list_names(st->choices, names, sizeof(names));
        return fail(w, m, st->key, "expected one of %s, got '%s'", names, s);
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
            return fail(w, m, st->key, "expected a name of letters, digits, '-', '_' or '.' "
                        "(at most %d), got '%s'", CONFIG_NAME_MAX - 1, s);
        snprintf(field, CONFIG_NAME_MAX, "%s", s);
        return 0;
    case K_HOST:
    case K_ROUTE_SNI:
        /* A backend's sni may be "" (none); a route's names something. */
        i = *s || st->kind == K_ROUTE_SNI ? route_name_check(s, strlen(s)) : 0;
        if (i < 0 || (st->kind == K_HOST && i == 1))
            return fail(w, m, st->key, "expected a host name%s, got '%s'",
                        st->kind == K_ROUTE_SNI ? " or *.suffix" : "", s);
        snprintf(field, CLIENTHELLO_SNI_MAX + 1, "%s", s);
        return 0;
    default: /* K_PATH, K_LOG_PATH */
        if ((*s && *s != '/' && !(st->kind == K_LOG_PATH && strcmp(s, "stderr") == 0)) ||
            strlen(s) >= CONFIG_PATH_MAX)
            return fail(w, m, st->key, "expected an absolute path under %d bytes%s, got '%s'",
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
        return fail(w, m, st->key, "internal: not a scalar setting");
    }
}

static int walk_section(struct walk *w, const struct section *sec, yaml_node_t *n, void *base);

/* Where the elements of sequence st start in the struct at base. */
static char *seq_elems(const struct setting *st, const void *base)
{
    char *elems;

    if (!st->grow)
        return (char *)base + st->off;
    memcpy(&elems, (const char *)base + st->off, sizeof(elems));
    return elems;
}

static int seq_count(const struct setting *st, const void *base)
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
        return fail(w, &n->start_mark, st->key, "at most %d entries", st->max_elems);
    if (st->grow) {
        elems = end > it ? calloc((size_t)(end - it), st->elem_size) : NULL;
        if (end > it && !elems)
            return -ENOMEM;
        memcpy((char *)base + st->off, &elems, sizeof(elems));
    }
    elems = seq_elems(st, base);
    for (; it < end; it++, count++) {
        yaml_node_t *v = yaml_document_get_node(w->doc, *it);
        snprintf(w->path + len, sizeof(w->path) - len, "%s%s[%d]", len ? "." : "", st->key,
                 count);
        /* Counted before it is filled, so that config_free() finds what a
         * failure halfway through it leaves. */
        memcpy((char *)base + st->count_off, &(int){count + 1}, sizeof(int));
        ret = walk_section(w, st->sub, v, elems + (size_t)count * st->elem_size);
        w->path[len] = '\0';
        if (ret < 0)
            return ret;
    }
    memcpy((char *)base + st->count_off, &count, sizeof(count));
    return 0;
}

/* Applies one key's value node. */
static int apply(struct walk *w, const struct setting *st, yaml_node_t *v, void *base)
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
        ret = walk_section(w, st->sub, v, (char *)base + st->off);
        w->path[len] = '\0';
        return ret;
    case K_SERVER_ADDR:
        if (!(s = scalar(v)))
            return fail(w, &v->start_mark, st->key, "expected a value, not a list or mapping");
        return set_server_addr(w, &v->start_mark, s, base);
    default:
        if (!(s = scalar(v)))
            return fail(w, &v->start_mark, st->key, "expected a value, not a list or mapping");
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
        ret = root ? apply(w, st, root, base) : -EINVAL;
        w->doc = outer;
        w->origin = outer_origin;
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    return ret;
}

/* One mapping against its section's table: known keys once each, required
 * ones present, defaults for the rest. */
static int walk_section(struct walk *w, const struct section *sec, yaml_node_t *n, void *base)
{
    char names[300];
    uint64_t seen = 0;
    int ret;

    if (n->type != YAML_MAPPING_NODE)
        return fail(w, &n->start_mark, NULL, "expected a mapping of keys to values");
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
            return fail(w, &k->start_mark, key ? key : "?", "unknown key (expected one of: %s)",
                        names);
        }
        if (seen & (1ULL << i))
            return fail(w, &k->start_mark, key, "given twice");
        seen |= 1ULL << i;
        if ((ret = apply(w, &sec->settings[i], v, base)) < 0)
            return ret;
    }
    for (int i = 0; sec->settings[i].key; i++) {
        const struct setting *st = &sec->settings[i];
        if (seen & (1ULL << i))
            continue;
        if (!st->def)
            return fail(w, &n->start_mark, st->key, "required");
        if ((ret = apply_default(w, st, base)) < 0)
            return ret;
    }
    return 0;
}

/* ---- the command line: flags are rows of the same tables ---- */

/* Calls fn on every setting of sec and the sections below it, in table
 * order, until fn returns non-zero; returns that. */
static int each_setting(const struct section *sec, int (*fn)(const struct setting *, void *),
                        void *arg)
{
    int ret;

    for (const struct setting *st = sec->settings; st->key; st++) {
        if ((ret = fn(st, arg)) != 0)
            return ret;
        if (st->sub && (ret = each_setting(st->sub, fn, arg)) != 0)
            return ret;
    }
    return 0;
}

struct find {
    const char *name; /* a flag or a key */
    size_t len;
    const struct setting *found;
};

static int match_flag(const struct setting *st, void *arg)
{
    struct find *f = arg;

    if (!st->flag || strlen(st->flag) != f->len || memcmp(st->flag, f->name, f->len) != 0)
        return 0;
    f->found = st;
    return 1;
}

static int match_key(const struct setting *st, void *arg)
{
    struct find *f = arg;

    if (!st->flag || strcmp(st->key, f->name) != 0)
        return 0;
    f->found = st;
    return 1;
}

static const struct setting *setting_by_flag(const char *s, size_t len)
{
    struct find f = {s, len, NULL};

    each_setting(&top_section, match_flag, &f);
    return f.found;
}

/* The setting with this key that has a flag. */
static const struct setting *setting_by_key(const char *key)
{
    struct find f = {key, 0, NULL};

    each_setting(&top_section, match_key, &f);
    return f.found;
}

const char *config_flag(const char *s, size_t len)
{
    const struct setting *st = setting_by_flag(s, len);

    return st ? st->flag : NULL;
}

/* Whether some argument sets the key of st. */
static int arg_given(const struct walk *w, const struct setting *st)
{
    for (int i = 0; st && i < w->n_args; i++)
        if (w->args[i].flag == st->flag)
            return 1;
    return 0;
}

/* A document built from the command line; ok turns 0 if libyaml ran out of
 * memory on the way. */
struct argdoc {
    yaml_document_t doc;
    int ok;
};

static int argdoc_init(struct argdoc *d)
{
    yaml_version_directive_t *v = NULL;

    d->ok = yaml_document_initialize(&d->doc, v, NULL, NULL, 1, 1) != 0;
    return d->ok ? 0 : -ENOMEM;
}

/* A scalar of len bytes of s, from argument arg (-1: none). Returns its id. */
static int argdoc_scalar(struct argdoc *d, const char *s, size_t len, int arg)
{
    int id = d->ok ? yaml_document_add_scalar(&d->doc, NULL, (yaml_char_t *)s, (int)len,
                                              YAML_PLAIN_SCALAR_STYLE)
                   : 0;

    if (!id)
        d->ok = 0;
    else
        d->doc.nodes.start[id - 1].start_mark.index = (size_t)arg + 1;
    return id;
}

static int argdoc_str(struct argdoc *d, const char *s, int arg)
{
    return argdoc_scalar(d, s, strlen(s), arg);
}

static int argdoc_node(struct argdoc *d, int seq, int arg)
{
    int id = !d->ok ? 0
             : seq  ? yaml_document_add_sequence(&d->doc, NULL, YAML_ANY_SEQUENCE_STYLE)
                    : yaml_document_add_mapping(&d->doc, NULL, YAML_ANY_MAPPING_STYLE);

    if (!id)
        d->ok = 0;
    else
        d->doc.nodes.start[id - 1].start_mark.index = (size_t)arg + 1;
    return id;
}

static void argdoc_pair(struct argdoc *d, int map, const char *key, int value)
{
    int k = argdoc_str(d, key, -1);

    if (!k || !value || !yaml_document_append_mapping_pair(&d->doc, map, k, value))
        d->ok = 0;
}

static void argdoc_item(struct argdoc *d, int seq, int item)
{
    if (!item || !d->ok || !yaml_document_append_sequence_item(&d->doc, seq, item))
        d->ok = 0;
}

/* A backend the command line makes: one server, no retries and no health
 * checks (there is no second server to turn to). */
static void argdoc_backend(struct argdoc *d, int backends, const char *name, const char *addr,
                           size_t len, int arg)
{
    int b = argdoc_node(d, 0, -1), health = argdoc_node(d, 0, -1);
    int servers = argdoc_node(d, 1, arg), server = argdoc_node(d, 0, arg);

    argdoc_pair(d, b, "name", argdoc_str(d, name, -1));
    argdoc_pair(d, b, "retries", argdoc_str(d, "0", -1));
    argdoc_pair(d, health, "mode", argdoc_str(d, "off", -1));
    argdoc_pair(d, b, "health_check", health);
    argdoc_pair(d, server, "address", argdoc_scalar(d, addr, len, arg));
    argdoc_item(d, servers, server);
    argdoc_pair(d, b, "servers", servers);
    argdoc_item(d, backends, b);
}

/* The index of the first argument with flag, or of the last with last set;
 * -1 if none. */
static int arg_find(const struct walk *w, const char *flag, int last)
{
    int found = -1;

    for (int i = 0; i < w->n_args; i++) {
        if (strcmp(w->args[i].flag, flag) != 0)
            continue;
        found = i;
        if (!last)
            break;
    }
    return found;
}

/* One --route NAME=ADDR:PORT: a route to a backend of its own. */
static void argdoc_route(struct walk *w, struct argdoc *d, int routes, int backends, int arg,
                         int n)
{
    const char *v = w->args[arg].value, *eq = strchr(v, '='); /* checked: there is one */
    char name[CONFIG_NAME_MAX];
    int r;

    snprintf(name, sizeof(name), "route%d", n);
    r = argdoc_node(d, 0, arg);
    argdoc_pair(d, r, "sni", argdoc_scalar(d, v, (size_t)(eq - v), arg));
    argdoc_pair(d, r, "backend", argdoc_str(d, name, -1));
    argdoc_item(d, routes, r);
    argdoc_backend(d, backends, name, eq + 1, strlen(eq + 1), arg);
}

/* The configuration --listen, --backend and --route describe, as the
 * document a file would hold: one listener "cli" with every --listen, its
 * default backend "backend" with --backend, a backend "routeN" per route. */
static int argdoc_describe(struct walk *w, struct argdoc *d)
{
    int listen = arg_find(w, "--listen", 0), backend = arg_find(w, "--backend", 1);
    int root, listeners, l, binds, routes, backends, n_routes = 0;
    const char *v;

    for (int i = 0; i < w->n_args; i++) {
        if (strcmp(w->args[i].flag, "--route") == 0 && !strchr(w->args[i].value, '=')) {
            snprintf(w->err, w->errlen, "--route: expected NAME=ADDR:PORT with NAME a host "
                     "name or *.suffix, like api.example.com=10.0.0.5:8443, got '%s'",
                     w->args[i].value);
            one_line(w->err);
            return -EINVAL;
        }
    }
    if (listen < 0 || backend < 0) {
        snprintf(w->err, w->errlen, listen < 0 ? "--listen: required (at least one ADDR:PORT)"
                                               : "--backend: required (ADDR:PORT)");
        return -EINVAL;
    }
    root = argdoc_node(d, 0, -1);
    listeners = argdoc_node(d, 1, -1);
    l = argdoc_node(d, 0, -1);
    binds = argdoc_node(d, 1, listen);
    routes = argdoc_node(d, 1, arg_find(w, "--route", 0));
    backends = argdoc_node(d, 1, arg_find(w, "--route", 0));
    argdoc_pair(d, root, "listeners", listeners);
    argdoc_item(d, listeners, l);
    argdoc_pair(d, l, "name", argdoc_str(d, "cli", -1));
    argdoc_pair(d, l, "bind", binds);
    argdoc_pair(d, l, "routes", routes);
    argdoc_pair(d, l, "default_backend", argdoc_str(d, "backend", -1));
    argdoc_pair(d, root, "backends", backends);
    v = w->args[backend].value;
    argdoc_backend(d, backends, "backend", v, strlen(v), backend);
    for (int i = 0; i < w->n_args; i++) {
        if (strcmp(w->args[i].flag, "--listen") == 0)
            argdoc_item(d, binds, argdoc_str(d, w->args[i].value, i));
        else if (strcmp(w->args[i].flag, "--route") == 0)
            argdoc_route(w, d, routes, backends, i, ++n_routes);
    }
    return d->ok ? 0 : -ENOMEM;
}

/* Whether values of this kind come as a list: every use of the flag adds
 * to it (and --tlvs takes several at once, comma-separated). */
static int list_kind(enum kind k)
{
    return k == K_BINDS || k == K_CIDRS || k == K_TLVS;
}

/* The value node for st from its flags: a list of every value given, or
 * the last one given. Returns the node's id, 0 if the flag was not given. */
static int argdoc_value(const struct walk *w, struct argdoc *d, const struct setting *st)
{
    int seq = 0, last = -1;

    for (int i = 0; i < w->n_args; i++) {
        const char *v = w->args[i].value, *comma;
        if (w->args[i].flag != st->flag)
            continue;
        last = i;
        if (!list_kind(st->kind))
            continue;
        if (!seq)
            seq = argdoc_node(d, 1, i);
        for (; st->kind == K_TLVS && (comma = strchr(v, ',')); v = comma + 1)
            argdoc_item(d, seq, argdoc_scalar(d, v, (size_t)(comma - v), i));
        argdoc_item(d, seq, argdoc_str(d, v, i));
    }
    if (last < 0)
        return 0;
    return seq ? seq : argdoc_str(d, w->args[last].value, last);
}

/* Sets st in the struct at base from the flags that name it, if any. */
static int apply_flag(struct walk *w, const struct setting *st, void *base)
{
    yaml_document_t *outer = w->doc;
    enum origin outer_origin = w->origin;
    struct argdoc d;
    int id, ret;

    if (!arg_given(w, st))
        return 0;
    if (argdoc_init(&d) < 0)
        return -ENOMEM;
    id = argdoc_value(w, &d, st);
    ret = d.ok ? 0 : -ENOMEM;
    if (ret == 0 && id) {
        w->doc = &d.doc;
        w->origin = FROM_ARGS;
        ret = apply(w, st, yaml_document_get_node(&d.doc, id), base);
        w->doc = outer;
        w->origin = outer_origin;
    }
    yaml_document_delete(&d.doc);
    return ret;
}

/* Puts the flags over the struct at base that sec describes, and over
 * every section below it: a listener's flag sets every listener's key. */
static int apply_flags(struct walk *w, const struct section *sec, void *base)
{
    int ret, count;

    for (const struct setting *st = sec->settings; st->key; st++) {
        char *field = (char *)base + st->off;
        if (st->kind == K_MAP) {
            ret = apply_flags(w, st->sub, field);
        } else if (st->kind == K_SEQ) {
            char *elems = seq_elems(st, base);
            count = seq_count(st, base);
            ret = 0;
            for (int e = 0; e < count && ret == 0; e++)
                ret = apply_flags(w, st->sub, elems + (size_t)e * st->elem_size);
        } else {
            ret = st->flag && !st->describes ? apply_flag(w, st, base) : 0;
        }
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* Each flag's value alone, in a scratch struct of the section it is in. */
static int check_flags(struct walk *w, const struct section *sec)
{
    void *scratch = calloc(1, sec->size);
    int ret = scratch ? 0 : -ENOMEM;

    for (const struct setting *st = sec->settings; st->key && ret == 0; st++) {
        if (st->sub)
            ret = check_flags(w, st->sub);
        else if (st->flag && st->kind != K_SEQ)
            ret = apply_flag(w, st, scratch);
    }
    free(scratch);
    return ret;
}

static int walk_described(struct walk *w, struct config *c);
static int describing(const struct setting *st, void *arg);

/* The flags that describe listeners and backends replace a file's. */
static int check_no_file(struct walk *w, int with_file)
{
    if (!with_file || !each_setting(&top_section, describing, w))
        return 0;
    snprintf(w->err, w->errlen, "--listen, --backend and --route describe what the file's "
             "listeners and backends do; give one or the other, not both");
    return -EINVAL;
}

int config_check_args(const struct config_arg *args, int n, int with_file, char *err,
                      size_t errlen)
{
    struct walk w = {.origin = FROM_ARGS, .args = args, .n_args = n, .err = err,
                     .errlen = errlen};
    struct config *scratch;
    int ret = check_flags(&w, &top_section);

    if (ret == 0)
        ret = check_no_file(&w, with_file);
    if (ret < 0 || with_file || !each_setting(&top_section, describing, &w))
        return ret;
    /* What --listen, --backend and --route describe, whole. */
    if (!(scratch = calloc(1, sizeof(*scratch))))
        return -ENOMEM;
    ret = walk_described(&w, scratch);
    config_free(scratch);
    free(scratch);
    return ret;
}

/* Writes text from column col, wrapped before column 80 and indented to
 * column indent on each new line. */
static void usage_wrap(FILE *out, const char *text, int col, int indent)
{
    while (*text) {
        const char *end = strchr(text, ' ');
        int word = end ? (int)(end - text) : (int)strlen(text);
        if (col > indent && col + 1 + word > 79) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', out);
            col++;
        }
        fprintf(out, "%.*s", word, text);
        col += word;
        text += word;
        while (*text == ' ')
            text++;
    }
    fputc('\n', out);
}

/* --help: a flag with its value, what it does and its default. */
static int usage_line(const struct setting *st, void *arg)
{
    FILE *out = arg;
    char what[200], names[160], help[400];
    int col;

    if (!st->flag)
        return 0;
    if (st->choices) {
        list_names(st->choices, names, sizeof(names));
        for (char *p = names; (p = strstr(p, ", ")) != NULL;)
            memmove(p + 1, p + 2, strlen(p + 2) + 1), *p = '|';
    }
    snprintf(what, sizeof(what), "  %s %s", st->flag, st->choices ? names : st->arg);
    if (st->def && strcmp(st->def, "\"\"") != 0 && strcmp(st->def, "[]") != 0)
        snprintf(help, sizeof(help), "%s (default %s)", st->help, st->def);
    else
        snprintf(help, sizeof(help), "%s", st->help);
    col = fprintf(out, "%-30s", what);
    if (col > 30) {
        fprintf(out, "\n%30s", "");
        col = 30;
    }
    usage_wrap(out, help, col, 30);
    return 0;
}

static int usage_describing(const struct setting *st, void *arg)
{
    return st->describes ? usage_line(st, arg) : 0;
}

static int usage_setting(const struct setting *st, void *arg)
{
    return st->describes ? 0 : usage_line(st, arg);
}

void config_flags_usage(FILE *out)
{
    each_setting(&top_section, usage_describing, out);
    each_setting(&top_section, usage_setting, out);
}

/* ---- rules across keys, once every value is in ---- */

/* A rule about key subject is told in the words the user used: flags when
 * the command line describes the configuration or set subject, keys (with
 * the file's position) otherwise. */
static void speak_of(struct walk *w, const char *subject)
{
    w->cli_words = !w->file || arg_given(w, setting_by_key(subject));
}

/* key as the user would write it: the key, or its flag. */
static const char *say(const struct walk *w, const char *key)
{
    const struct setting *st = w->cli_words ? setting_by_key(key) : NULL;

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
    one_line(w->err);
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
    one_line(w->err);
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
            ret = fail(w, &ev.start_mark, NULL, "nested more than %d levels deep",
                       CONFIG_MAX_DEPTH);
        else if (ev.type == YAML_DOCUMENT_START_EVENT && ++docs > 1)
            ret = fail(w, &ev.start_mark, NULL, "a second YAML document (after '---'); put "
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
        ret = fail(w, &start, "listeners", "the file is empty; required");
    else
        ret = walk_section(w, &top_section, root, c);
    w->doc = NULL;
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return ret;
}

/* What the command line describes into c, as if it were a file. */
static int walk_described(struct walk *w, struct config *c)
{
    struct argdoc d;
    int ret;

    if (argdoc_init(&d) < 0)
        return -ENOMEM;
    ret = argdoc_describe(w, &d);
    if (ret == 0) {
        w->doc = &d.doc;
        w->origin = FROM_ARGS;
        ret = walk_section(w, &top_section, yaml_document_get_root_node(&d.doc), c);
        w->doc = NULL;
    }
    yaml_document_delete(&d.doc);
    return ret;
}

static int describing(const struct setting *st, void *arg)
{
    return st->describes && arg_given(arg, st);
}

int config_load(struct config *c, const char *file, const char *text, size_t len,
                const struct config_arg *args, int n, char *err, size_t errlen)
{
    struct walk w = {.file = file, .args = args, .n_args = n, .err = err, .errlen = errlen};
    int ret;

    memset(c, 0, sizeof(*c));
    if ((ret = check_no_file(&w, file != NULL)) < 0)
        return ret;
    ret = file ? walk_file(&w, c, text, len) : walk_described(&w, c);
    if (ret == 0)
        ret = apply_flags(&w, &top_section, c);
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
        elems = seq_elems(st, base);
        for (int e = 0; elems && e < seq_count(st, base); e++)
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
    free_section(&top_section, c);
}

int config_parse(struct config *c, const char *file, const char *text, size_t len, char *err,
                 size_t errlen)
{
    return config_load(c, file, text, len, NULL, 0, err, errlen);
}

/* ---- --dump-config: the same tables, read the other way ---- */

static void dump_duration(FILE *out, uint32_t ms)
{
    if (ms && ms % 3600000 == 0)
        fprintf(out, "%uh", ms / 3600000);
    else if (ms && ms % 60000 == 0)
        fprintf(out, "%um", ms / 60000);
    else if (ms % 1000 == 0)
        fprintf(out, "%us", ms / 1000);
    else
        fprintf(out, "%ums", ms);
}

/* A double-quoted YAML string: quotes, backslashes and control bytes escaped. */
static void dump_string(FILE *out, const char *prefix, const char *s)
{
    fprintf(out, "\"%s", prefix);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(out, "\\x%02x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

/* The settings whose value is a list, or needs the whole struct. */
static void dump_list(FILE *out, const struct setting *st, const void *base)
{
    char buf[ADDR_STRLEN > CIDR_STRLEN ? ADDR_STRLEN : CIDR_STRLEN];
    const struct config_listener *l = base;
    const struct config_backend *b = base;
    const struct config_server *sv = base;
    int n = 0;

    if (st->kind == K_SERVER_ADDR) {
        if (sv->is_unix)
            dump_string(out, "unix:", sv->path);
        else
            fprintf(out, "\"%s\"", addr_format(&sv->inet.sa, buf, sizeof(buf)));
        return;
    }
    fprintf(out, "[");
    if (st->kind == K_BINDS)
        for (int i = 0; i < l->n_bind; i++)
            fprintf(out, "%s\"%s\"", i ? ", " : "", addr_format(&l->bind[i].sa, buf, sizeof(buf)));
    if (st->kind == K_CIDRS)
        for (int i = 0; i < l->n_trusted; i++)
            fprintf(out, "%s\"%s\"", i ? ", " : "", cidr_format(&l->trusted[i], buf, sizeof(buf)));
    if (st->kind == K_TLVS) {
        for (int t = 0; tlv_names[t]; t++)
            if (b->tlvs & (1U << t))
                fprintf(out, "%s%s", n++ ? ", " : "", tlv_names[t]);
        for (int t = 0; t < b->n_tlv_pass; t++)
            fprintf(out, "%s0x%02X", n++ ? ", " : "", b->tlv_pass[t]);
    }
    fprintf(out, "]");
}

static void dump_value(FILE *out, const struct setting *st, const void *base)
{
    const char *field = (const char *)base + st->off;
    uint32_t u;
    int i;

    switch (st->kind) {
    case K_UINT:
    case K_DURATION:
        memcpy(&u, field, sizeof(u));
        if (st->kind == K_UINT)
            fprintf(out, "%u", u);
        else
            dump_duration(out, u);
        break;
    case K_CHOICE:
    case K_LOG_LEVEL:
    case K_WORKERS:
        memcpy(&i, field, sizeof(i));
        if (st->kind == K_WORKERS && !i)
            fprintf(out, "auto");
        else if (st->kind == K_WORKERS)
            fprintf(out, "%d", i);
        else
            fprintf(out, "%s", (st->kind == K_LOG_LEVEL ? level_names : st->choices)[i]);
        break;
    case K_NAME:
    case K_HOST:
    case K_ROUTE_SNI:
    case K_PATH:
    case K_LOG_PATH:
        dump_string(out, "", field);
        break;
    case K_BINDS:
    case K_CIDRS:
    case K_TLVS:
    case K_SERVER_ADDR:
        dump_list(out, st, base);
        break;
    default:
        break;
    }
}

static void dump_section(FILE *out, const struct section *sec, const void *base, int indent,
                         int first_dash);

static void dump_seq(FILE *out, const struct setting *st, const void *base, int indent)
{
    int count = seq_count(st, base);
    const char *elems = seq_elems(st, base);

    if (count == 0) {
        fprintf(out, " []\n");
        return;
    }
    fprintf(out, "\n");
    for (int e = 0; e < count; e++)
        dump_section(out, st->sub, elems + (size_t)e * st->elem_size, indent + 2, 1);
}

/* Writes one section at indent; first_dash starts it as a list item. */
static void dump_section(FILE *out, const struct section *sec, const void *base, int indent,
                         int first_dash)
{
    for (int i = 0; sec->settings[i].key; i++) {
        const struct setting *st = &sec->settings[i];
        if (i == 0 && first_dash)
            fprintf(out, "%*s- %s:", indent - 2, "", st->key);
        else
            fprintf(out, "%*s%s:", indent, "", st->key);
        if (st->kind == K_SEQ) {
            dump_seq(out, st, base, indent);
        } else if (st->kind == K_MAP) {
            fprintf(out, "\n");
            dump_section(out, st->sub, (const char *)base + st->off, indent + 2, 0);
        } else {
            fprintf(out, " ");
            dump_value(out, st, base);
            fprintf(out, "\n");
        }
    }
}

void config_dump(const struct config *c, FILE *out)
{
    dump_section(out, &top_section, c, 0, 0);
}

/* ---- reload: what it must keep ---- */

/* Bytes of the field a scalar setting fills; 0 for the others. */
static size_t field_size(const struct setting *st)
{
    switch (st->kind) {
    case K_UINT:
    case K_DURATION:
        return sizeof(uint32_t);
    case K_CHOICE:
    case K_LOG_LEVEL:
    case K_WORKERS:
        return sizeof(int);
    case K_NAME:
        return CONFIG_NAME_MAX;
    case K_PATH:
    case K_LOG_PATH:
        return CONFIG_PATH_MAX;
    default:
        return 0;
    }
}

/* A setting's value as --dump-config writes it. */
static void value_text(const struct setting *st, const void *base, char *buf, size_t cap)
{
    FILE *f = fmemopen(buf, cap, "w");

    buf[0] = '\0';
    if (f) {
        dump_value(f, st, base);
        fclose(f);
    }
}

static void keep_section(const struct section *sec, void *nbase, const void *obase,
                         const char *prefix,
                         void (*changed)(const char *, const char *, const char *))
{
    char was[CONFIG_PATH_MAX + 8], now[CONFIG_PATH_MAX + 8], key[96];

    for (const struct setting *st = sec->settings; st->key; st++) {
        snprintf(key, sizeof(key), "%s%s", prefix, st->key);
        if (st->kind == K_MAP) {
            strcat(key, "."); // NOLINT: keys are short
            keep_section(st->sub, (char *)nbase + st->off, (const char *)obase + st->off, key,
                         changed);
            continue;
        }
        if (!st->restart || !field_size(st))
            continue;
        value_text(st, obase, was, sizeof(was));
        value_text(st, nbase, now, sizeof(now));
        if (strcmp(was, now) == 0)
            continue;
        changed(key, was, now);
        memcpy((char *)nbase + st->off, (const char *)obase + st->off, field_size(st));
    }
}

void config_keep_start_only(struct config *nc, const struct config *old,
                            void (*changed)(const char *key, const char *was, const char *now))
{
    keep_section(&top_section, nc, old, "", changed);
}
