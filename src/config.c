/* Configuration file: one table of settings per section drives parsing,
 * validation, defaults and --dump-config, like nginx's directive tables. */
#include "config.h"

#include "log.h"
#include "route.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
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
    size_t off;      /* where the value lands in the section's struct */
    const char *def; /* default, as the text a file would hold; NULL: required */
    const char *const *choices;
    const struct section *sub;   /* K_MAP, K_SEQ */
    size_t count_off, elem_size; /* K_SEQ: where the count lands, element size */
    size_t mark_off;             /* 1 + where to keep the value's position (0: nowhere) */
    enum kind kind;
    uint32_t min, max;
    int max_elems;
};

struct section {
    const struct setting *settings;
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
    {.key = "address", .kind = K_SERVER_ADDR},
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
    {.key = "path", .kind = K_LOG_PATH, AT(struct config_access_log, path), .def = "\"\""},
    {.key = "mode", .kind = K_CHOICE, AT(struct config_access_log, mode),
     .choices = access_mode_names, .def = "all"},
    {.key = "format", .kind = K_CHOICE, AT(struct config_access_log, format),
     .choices = access_format_names, .def = "text"},
    END,
};

static const struct section access_log_section = {access_log_settings};
static const struct section server_section = {server_settings};
static const struct section health_section = {health_settings};

static const struct setting backend_settings[] = {
    {.key = "name", .kind = K_NAME, AT(struct config_backend, name),
     MARK(struct config_backend, mark)},
    {.key = "proxy_protocol", .kind = K_CHOICE, AT(struct config_backend, proxy_protocol),
     .choices = pp_names, .def = "v2"},
    {.key = "tlvs", .kind = K_TLVS, .def = "[]"},
    {.key = "balance", .kind = K_CHOICE, AT(struct config_backend, balance),
     .choices = balance_names, .def = "round_robin"},
    {.key = "connect_timeout", .kind = K_DURATION, AT(struct config_backend, connect_timeout_ms),
     .min = 1, .max = 3600000, .def = "5s"},
    {.key = "idle_timeout", .kind = K_DURATION, AT(struct config_backend, idle_timeout_ms),
     .max = 7 * DAY_MS, .def = "5m"},
    {.key = "retries", .kind = K_UINT, AT(struct config_backend, retries), .max = 10,
     .def = "2"},
    {.key = "sni", .kind = K_HOST, AT(struct config_backend, sni), .def = "\"\""},
    {.key = "health_check", .kind = K_MAP, AT(struct config_backend, health),
     .sub = &health_section, .def = "{}"},
    {.key = "servers", .kind = K_SEQ, AT(struct config_backend, servers), .sub = &server_section,
     .count_off = offsetof(struct config_backend, n_servers),
     .elem_size = sizeof(struct config_server), .max_elems = CONFIG_MAX_SERVERS},
    END,
};

static const struct setting route_settings[] = {
    {.key = "sni", .kind = K_ROUTE_SNI, AT(struct config_route, sni)},
    {.key = "backend", .kind = K_NAME, AT(struct config_route, backend),
     MARK(struct config_route, mark)},
    END,
};

static const struct section route_section = {route_settings};

static const struct setting listener_settings[] = {
    {.key = "name", .kind = K_NAME, AT(struct config_listener, name),
     MARK(struct config_listener, mark)},
    {.key = "bind", .kind = K_BINDS},
    {.key = "proxy_protocol_in", .kind = K_CHOICE, AT(struct config_listener, proxy_protocol_in),
     .choices = pp_in_names, .def = "off"},
    {.key = "trusted_sources", .kind = K_CIDRS, .def = "[]"},
    {.key = "header_timeout", .kind = K_DURATION, AT(struct config_listener, header_timeout_ms),
     .min = 1, .max = 3600000, .def = "5s"},
    {.key = "header_max_size", .kind = K_UINT, AT(struct config_listener, header_max_size),
     .min = 16, .max = CONFIG_HEADER_MAX_LIMIT, .def = "4096"},
    {.key = "max_connections_per_source", .kind = K_UINT,
     AT(struct config_listener, max_per_source), .max = 10000000, .def = "0"},
    {.key = "peek_timeout", .kind = K_DURATION, AT(struct config_listener, peek_timeout_ms),
     .min = 1, .max = 3600000, .def = "5s"},
    {.key = "routes", .kind = K_SEQ, AT(struct config_listener, routes), .sub = &route_section,
     .count_off = offsetof(struct config_listener, n_routes),
     .elem_size = sizeof(struct config_route), .max_elems = CONFIG_MAX_ROUTES, .def = "[]"},
    {.key = "default_backend", .kind = K_NAME, AT(struct config_listener, default_backend),
     MARK(struct config_listener, default_mark), .def = "\"\""},
    END,
};

static const struct section listener_section = {listener_settings};
static const struct section backend_section = {backend_settings};

static const struct setting top_settings[] = {
    {.key = "workers", .kind = K_WORKERS, AT(struct config, workers), .def = "auto"},
    {.key = "io", .kind = K_CHOICE, AT(struct config, io), .choices = io_names, .def = "auto"},
    {.key = "splice", .kind = K_CHOICE, AT(struct config, splice), .choices = splice_names,
     .def = "auto"},
    {.key = "stats_socket", .kind = K_PATH, AT(struct config, stats_socket), .def = "\"\""},
    {.key = "stats_socket_group", .kind = K_NAME, AT(struct config, stats_socket_group),
     .def = "\"\""},
    {.key = "access_log", .kind = K_MAP, AT(struct config, access_log), .sub = &access_log_section,
     .def = "{}"},
    {.key = "drain_timeout", .kind = K_DURATION, AT(struct config, drain_timeout_ms),
     .max = DAY_MS, .def = "30s"},
    {.key = "user", .kind = K_NAME, AT(struct config, user), .def = "\"\""},
    {.key = "group", .kind = K_NAME, AT(struct config, group), .def = "\"\""},
    {.key = "max_connections", .kind = K_UINT, AT(struct config, max_connections),
     .max = 10000000, .def = "0"},
    {.key = "log_level", .kind = K_LOG_LEVEL, AT(struct config, log_level), .def = "info"},
    {.key = "listeners", .kind = K_SEQ, AT(struct config, listeners), .sub = &listener_section,
     .count_off = offsetof(struct config, n_listeners), MARK(struct config, listeners_mark),
     .elem_size = sizeof(struct config_listener), .max_elems = CONFIG_MAX_LISTENERS},
    {.key = "backends", .kind = K_SEQ, AT(struct config, backends), .sub = &backend_section,
     .count_off = offsetof(struct config, n_backends), MARK(struct config, backends_mark),
     .elem_size = sizeof(struct config_backend), .max_elems = CONFIG_MAX_BACKENDS},
    END,
};

static const struct section top_section = {top_settings};

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

struct walk {
    yaml_document_t *doc;
    yaml_document_t *file_doc; /* the file's own document (not a default's) */
    const char *file;
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

/* Fills err with "FILE:LINE:COL: PATH.KEY: message". */
static int fail(struct walk *w, const yaml_mark_t *m, const char *key, const char *fmt, ...)
{
    char msg[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized): a false report
    va_end(ap);
    if (!*w->path && !key)
        snprintf(w->err, w->errlen, "%s:%zu:%zu: %s", w->file, m->line + 1, m->column + 1, msg);
    else
        snprintf(w->err, w->errlen, "%s:%zu:%zu: %s%s%s: %s", w->file, m->line + 1,
                 m->column + 1, w->path, *w->path && key ? "." : "", key ? key : "", msg);
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

/* Sets a scalar-valued setting from text (the file's or the default). */
static int set_scalar(struct walk *w, const struct setting *st, void *base, const char *s,
                      const yaml_mark_t *m)
{
    char *field = (char *)base + st->off, names[160];
    uint32_t u;
    int i;

    switch (st->kind) {
    case K_UINT:
        if (parse_u32(s, &u) < 0 || u < st->min || u > st->max)
            return fail(w, m, st->key, "expected a whole number from %u to %u, got '%s'",
                        st->min, st->max, s);
        memcpy(field, &u, sizeof(u));
        return 0;
    case K_DURATION:
        if (config_parse_duration(s, &u) < 0)
            return fail(w, m, st->key, "expected a duration like 500ms, 5s, 2m or 1h, got '%s'",
                        s);
        if (u < st->min || u > st->max)
            return fail(w, m, st->key, "%s is out of range %ums-%ums", s, st->min, st->max);
        memcpy(field, &u, sizeof(u));
        return 0;
    case K_CHOICE:
        if ((i = pick_name(s, st->choices)) < 0) {
            list_names(st->choices, names, sizeof(names));
            return fail(w, m, st->key, "expected one of %s, got '%s'", names, s);
        }
        memcpy(field, &i, sizeof(i));
        return 0;
    case K_LOG_LEVEL:
        if ((i = pick_name(s, level_names)) < 0)
            return fail(w, m, st->key, "expected error, warn, info or debug, got '%s'", s);
        i = log_level_parse(s);
        memcpy(field, &i, sizeof(i));
        return 0;
    case K_WORKERS:
        if (strcmp(s, "auto") == 0)
            i = 0;
        else if (parse_u32(s, &u) == 0 && u >= 1 && u <= 1024)
            i = (int)u;
        else
            return fail(w, m, st->key, "expected auto or a number from 1 to 1024, got '%s'", s);
        memcpy(field, &i, sizeof(i));
        return 0;
    case K_NAME:
        if (*s && !valid_name(s))
            return fail(w, m, st->key, "expected a name of letters, digits, '-', '_' or '.' "
                        "(at most %d), got '%s'", CONFIG_NAME_MAX - 1, s);
        snprintf(field, CONFIG_NAME_MAX, "%s", s);
        return 0;
    case K_HOST:
    case K_ROUTE_SNI: {
        struct route r;
        const char *what;
        char probe[CLIENTHELLO_SNI_MAX + 16];
        if (*s && (snprintf(probe, sizeof(probe), "%s=127.0.0.1:1", s) >= (int)sizeof(probe) ||
                   route_parse(probe, &r, &what) < 0 || (st->kind == K_HOST && r.wildcard)))
            return fail(w, m, st->key, "expected a host name%s, got '%s'",
                        st->kind == K_ROUTE_SNI ? " or *.suffix" : "", s);
        snprintf(field, CLIENTHELLO_SNI_MAX + 1, "%s", s);
        return 0;
    }
    case K_PATH:
    case K_LOG_PATH:
        if ((*s && *s != '/' && !(st->kind == K_LOG_PATH && strcmp(s, "stderr") == 0)) ||
            strlen(s) >= CONFIG_PATH_MAX)
            return fail(w, m, st->key, "expected an absolute path under %d bytes%s, got '%s'",
                        CONFIG_PATH_MAX, st->kind == K_LOG_PATH ? " or stderr" : "", s);
        snprintf(field, CONFIG_PATH_MAX, "%s", s);
        return 0;
    default:
        return fail(w, m, st->key, "internal: not a scalar setting");
    }
}

static int walk_section(struct walk *w, const struct section *sec, yaml_node_t *n, void *base);

/* A list of nested sections. */
static int walk_seq(struct walk *w, const struct setting *st, yaml_node_t *n, void *base)
{
    size_t len = strlen(w->path);
    yaml_node_item_t *it, *end;
    int count = 0, ret;

    if (seq_items(w, n, st->key, &it, &end) < 0)
        return -EINVAL;
    for (; it < end; it++, count++) {
        yaml_node_t *v = yaml_document_get_node(w->doc, *it);
        if (count == st->max_elems)
            return fail(w, &v->start_mark, st->key, "at most %d entries", st->max_elems);
        snprintf(w->path + len, sizeof(w->path) - len, "%s%s[%d]", len ? "." : "", st->key,
                 count);
        ret = walk_section(w, st->sub, v, (char *)base + st->off + (size_t)count * st->elem_size);
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

    if (st->mark_off && w->doc == w->file_doc) {
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
    yaml_node_t *root;
    int ret = -EINVAL;

    if (!yaml_parser_initialize(&parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)st->def, strlen(st->def));
    if (yaml_parser_load(&parser, &doc)) {
        root = yaml_document_get_root_node(&doc);
        w->doc = &doc;
        ret = root ? apply(w, st, root, base) : -EINVAL;
        w->doc = outer;
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

/* ---- checks across the file, once every value is in ---- */

static int fail_at(struct walk *w, const struct config_mark *m, const char *path,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fail_at(struct walk *w, const struct config_mark *m, const char *path,
                   const char *fmt, ...)
{
    char msg[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized): a false report
    va_end(ap);
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
    char path[64];

    if (c->n_backends == 0)
        return fail_at(w, &c->backends_mark, "backends", "at least one backend is needed");

    for (int i = 0; i < c->n_backends; i++) {
        struct config_backend *b = &c->backends[i];
        snprintf(path, sizeof(path), "backends[%d]", i);
        if (backend_index(c, b->name) != i)
            return fail_at(w, &b->mark, path, "name '%s' is used by an earlier backend",
                           b->name);
        if (b->n_servers == 0)
            return fail_at(w, &b->mark, path, "backend '%s' has no servers", b->name);
        if ((b->tlvs || b->n_tlv_pass) && b->proxy_protocol != PROXY_V2)
            return fail_at(w, &b->mark, path, "tlvs need proxy_protocol: v2 (backend '%s')",
                           b->name);
    }
    return 0;
}

static int check_routes(struct walk *w, struct config *c, struct config_listener *l, int li)
{
    char path[96], have[CONFIG_MAX_BACKENDS * 8];
    size_t n = 0;

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
    return 0;
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

static int check_listeners(struct walk *w, struct config *c)
{
    char path[64], addrbuf[ADDR_STRLEN];

    if (c->n_listeners == 0)
        return fail_at(w, &c->listeners_mark, "listeners", "at least one listener is needed");

    for (int i = 0; i < c->n_listeners; i++) {
        struct config_listener *l = &c->listeners[i];
        snprintf(path, sizeof(path), "listeners[%d]", i);
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
        if (l->proxy_protocol_in != PROXY_IN_OFF && l->n_trusted == 0)
            return fail_at(w, &l->mark, path, "proxy_protocol_in needs trusted_sources (the "
                           "proxies in front that send the header)");
        if (l->proxy_protocol_in == PROXY_IN_OFF && l->n_trusted)
            return fail_at(w, &l->mark, path, "trusted_sources has no effect with "
                           "proxy_protocol_in: off");
        if (check_routes(w, c, l, i) < 0)
            return -EINVAL;
    }
    return 0;
}

int config_parse(struct config *c, const char *file, const char *text, size_t len, char *err,
                 size_t errlen)
{
    struct walk w = {.file = file, .err = err, .errlen = errlen};
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_node_t *root;
    yaml_mark_t start = {0, 0, 0};
    int ret;

    memset(c, 0, sizeof(*c));
    if (!yaml_parser_initialize(&parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "%s:%zu:%zu: %s%s%s", file, parser.problem_mark.line + 1,
                 parser.problem_mark.column + 1, parser.problem ? parser.problem : "bad YAML",
                 parser.context ? " " : "", parser.context ? parser.context : "");
        one_line(err);
        yaml_parser_delete(&parser);
        return -EINVAL;
    }
    w.doc = w.file_doc = &doc;
    root = yaml_document_get_root_node(&doc);
    if (!root)
        ret = fail(&w, &start, "listeners", "the file is empty; required");
    else
        ret = walk_section(&w, &top_section, root, c);
    if (ret == 0)
        ret = check_backends(&w, c);
    if (ret == 0)
        ret = check_listeners(&w, c);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return ret;
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

static void dump_value(FILE *out, const struct setting *st, const void *base)
{
    const char *field = (const char *)base + st->off;
    char buf[ADDR_STRLEN > CIDR_STRLEN ? ADDR_STRLEN : CIDR_STRLEN];
    uint32_t u;
    int i;

    switch (st->kind) {
    case K_UINT:
        memcpy(&u, field, sizeof(u));
        fprintf(out, "%u", u);
        break;
    case K_DURATION:
        memcpy(&u, field, sizeof(u));
        dump_duration(out, u);
        break;
    case K_CHOICE:
        memcpy(&i, field, sizeof(i));
        fprintf(out, "%s", st->choices[i]);
        break;
    case K_LOG_LEVEL:
        memcpy(&i, field, sizeof(i));
        fprintf(out, "%s", level_names[i]);
        break;
    case K_WORKERS:
        memcpy(&i, field, sizeof(i));
        if (i)
            fprintf(out, "%d", i);
        else
            fprintf(out, "auto");
        break;
    case K_NAME:
    case K_HOST:
    case K_ROUTE_SNI:
    case K_PATH:
    case K_LOG_PATH:
        dump_string(out, "", field);
        break;
    case K_BINDS: {
        const struct config_listener *l = base;
        fprintf(out, "[");
        for (int b = 0; b < l->n_bind; b++)
            fprintf(out, "%s\"%s\"", b ? ", " : "", addr_format(&l->bind[b].sa, buf, sizeof(buf)));
        fprintf(out, "]");
        break;
    }
    case K_CIDRS: {
        const struct config_listener *l = base;
        fprintf(out, "[");
        for (int t = 0; t < l->n_trusted; t++)
            fprintf(out, "%s\"%s\"", t ? ", " : "", cidr_format(&l->trusted[t], buf, sizeof(buf)));
        fprintf(out, "]");
        break;
    }
    case K_TLVS: {
        const struct config_backend *b = base;
        int n = 0;
        fprintf(out, "[");
        for (int t = 0; tlv_names[t]; t++)
            if (b->tlvs & (1U << t))
                fprintf(out, "%s%s", n++ ? ", " : "", tlv_names[t]);
        for (int t = 0; t < b->n_tlv_pass; t++)
            fprintf(out, "%s0x%02X", n++ ? ", " : "", b->tlv_pass[t]);
        fprintf(out, "]");
        break;
    }
    case K_SERVER_ADDR: {
        const struct config_server *sv = base;
        if (sv->is_unix)
            dump_string(out, "unix:", sv->path);
        else
            fprintf(out, "\"%s\"", addr_format(&sv->inet.sa, buf, sizeof(buf)));
        break;
    }
    default:
        break;
    }
}

static void dump_section(FILE *out, const struct section *sec, const void *base, int indent,
                         int first_dash);

static void dump_seq(FILE *out, const struct setting *st, const void *base, int indent)
{
    int count;

    memcpy(&count, (const char *)base + st->count_off, sizeof(count));
    if (count == 0) {
        fprintf(out, " []\n");
        return;
    }
    fprintf(out, "\n");
    for (int e = 0; e < count; e++)
        dump_section(out, st->sub, (const char *)base + st->off + (size_t)e * st->elem_size,
                     indent + 2, 1);
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
