/* The walk: a YAML document (the file's, a default's or the command
 * line's) applied to the tables, each value parsed and bounded by the kind
 * of its key, errors as one line naming where the value came from. */
#include "config_table.h"

#include "log.h"
#include "proxy.h"
#include "route.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

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
    char msg[400]; /* the longest: unknown key, with every key of the top level */
    va_list ap;

    va_start(ap, fmt);
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): a false report
    vsnprintf(msg, sizeof(msg), fmt, ap);
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

/* A list of CIDR ranges into st's array (off) and count (count_off). */
static int set_cidrs(struct walk *w, const struct setting *st, yaml_node_t *n, void *base)
{
    struct cidr *list = (struct cidr *)(void *)((char *)base + st->off);
    yaml_node_item_t *it, *end;
    char net[CIDR_STRLEN];
    const char *s;
    int ret, count = 0;

    if (seq_items(w, n, st->key, &it, &end) < 0)
        return -EINVAL;
    for (; it < end; it++, count++) {
        yaml_node_t *v = yaml_document_get_node(w->doc, *it);
        struct cidr *c = &list[count];
        if (count == st->max_elems)
            return config_fail(w, &v->start_mark, st->key, "at most %d ranges", st->max_elems);
        if (!(s = scalar(v)) || (ret = cidr_parse(s, c)) == -EINVAL)
            return config_fail(w, &v->start_mark, st->key,
                               "expected an address or ADDR/BITS, got '%s'",
                               s ? s : "a non-scalar");
        if (ret == -EDOM) {
            for (int b = c->bits; b < (c->family == AF_INET ? 32 : 128); b++)
                c->addr[b / 8] &= (uint8_t) ~(0x80 >> (b % 8));
            return config_fail(w, &v->start_mark, st->key,
                               "'%s' has bits set below the /%u prefix; did you mean %s?", s,
                               c->bits, cidr_format(c, net, sizeof(net)));
        }
    }
    memcpy((char *)base + st->count_off, &count, sizeof(count));
    return 0;
}

/* A list of ADDR:PORT into st's array (off) and count (count_off). */
static int set_addrs(struct walk *w, const struct setting *st, yaml_node_t *n, void *base)
{
    union sockaddr_inet *list = (union sockaddr_inet *)(void *)((char *)base + st->off);
    yaml_node_item_t *it, *end;
    const char *s;
    int count = 0;

    if (seq_items(w, n, st->key, &it, &end) < 0)
        return -EINVAL;
    for (; it < end; it++, count++) {
        yaml_node_t *v = yaml_document_get_node(w->doc, *it);
        if (count == st->max_elems)
            return config_fail(w, &v->start_mark, st->key, "at most %d addresses", st->max_elems);
        if (!(s = scalar(v)) || addr_parse(s, &list[count]) < 0)
            return config_fail(w, &v->start_mark, st->key,
                               "expected IPV4:PORT or [IPV6]:PORT with port 1-65535, got '%s'",
                               s ? s : "a non-scalar");
    }
    memcpy((char *)base + st->count_off, &count, sizeof(count));
    return 0;
}

/* The TLV type each name in config_tlv_names writes. */
static const uint8_t tlv_name_types[] = {PROXY_TLV_AUTHORITY, PROXY_TLV_ALPN, PROXY_TLV_UNIQUE_ID,
                                         PROXY_TLV_CRC32C};

/* TLV names and type numbers; each type at most once, as a header would
 * otherwise carry it twice (unique_id and 0x05 are the same). */
static int set_tlvs(struct walk *w, yaml_node_t *n, struct config_backend *b)
{
    yaml_node_item_t *it, *end;
    uint8_t seen[256] = {0};
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
            type = tlv_name_types[i];
        } else {
            type = strtoul(s, &e, 0);
            if (*s < '0' || *s > '9' || *e || type > 0xff || b->n_tlv_pass == CONFIG_MAX_TLV_PASS)
                return config_fail(w, &v->start_mark, "tlvs",
                                   "expected authority, alpn, unique_id, crc32c or a type number "
                                   "like 0xEA, got '%s'",
                                   s);
        }
        if (seen[type]++)
            return config_fail(w, &v->start_mark, "tlvs",
                               "'%s' is TLV type 0x%02lX, which the list already names", s, type);
        if (i >= 0)
            b->tlvs |= 1U << i;
        else
            b->tlv_pass[b->n_tlv_pass++] = (uint8_t)type;
    }
    return 0;
}

/* "kong-1.internal:8443": a DNS name (as an SNI would be, no wildcard,
 * not an IPv4 address) and a port 1-65535, into sv. Returns 0 or -EINVAL. */
static int dns_name_port(const char *s, struct config_server *sv)
{
    const char *colon = strrchr(s, ':');
    size_t n = colon ? (size_t)(colon - s) : 0;
    uint32_t port;
    int digits_only = 1;

    if (!colon || n == 0 || n >= sizeof(sv->host) || route_name_check(s, n) != 0 ||
        parse_u32(colon + 1, &port) < 0 || port == 0 || port > 65535)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        digits_only &= (s[i] >= '0' && s[i] <= '9') || s[i] == '.';
    if (digits_only) /* a malformed address, not a name */
        return -EINVAL;
    memcpy(sv->host, s, n);
    sv->host[n] = '\0';
    memset(&sv->inet, 0, sizeof(sv->inet));
    sv->inet.in.sin_port = htons((uint16_t)port);
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
    sv->is_unix = 0;
    sv->host[0] = '\0';
    if (addr_parse(s, &sv->inet) == 0)
        return 0;
    if (dns_name_port(s, sv) == 0)
        return 0;
    return config_fail(w, m, "address",
                       "expected IPV4:PORT, [IPV6]:PORT, NAME:PORT (port 1-65535) or unix:/path, "
                       "got '%s'",
                       s);
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
            return config_fail(w, m, st->key, "expected auto or a number from 1 to 1024, got '%s'",
                               s);
        memcpy(field, &i, sizeof(i));
        return 0;
    }
    if (st->kind == K_UINT && (parse_u32(s, &u) < 0 || u < st->min || u > st->max))
        return config_fail(w, m, st->key, "expected a whole number from %u to %u, got '%s'",
                           st->min, st->max, s);
    if (st->kind == K_DURATION && config_parse_duration(s, &u) < 0)
        return config_fail(w, m, st->key, "expected a duration like 500ms, 5s, 2m or 1h, got '%s'",
                           s);
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
            return config_fail(w, m, st->key,
                               "expected a name of letters, digits, '-', '_' or '.' "
                               "(at most %d), got '%s'",
                               CONFIG_NAME_MAX - 1, s);
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
            return config_fail(w, m, st->key,
                               "expected an absolute path under %d bytes%s, got '%s'",
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
    case K_INET_ADDR:
        memset(field, 0, sizeof(union sockaddr_inet));
        if (*s && addr_parse(s, (union sockaddr_inet *)(void *)field) < 0)
            return config_fail(w, m, st->key,
                               "expected IPV4:PORT or [IPV6]:PORT with port 1-65535, got '%s'", s);
        return 0;
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
        memcpy((char *)base + st->off, &elems, sizeof(elems)); /* base owns it now */
    } else {
        elems = (char *)base + st->off;
    }
    for (; it < end; it++, count++) {
        yaml_node_t *v = yaml_document_get_node(w->doc, *it);
        snprintf(w->path + len, sizeof(w->path) - len, "%s%s[%d]", len ? "." : "", st->key, count);
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
        return set_cidrs(w, st, v, base);
    case K_ADDRS:
        return set_addrs(w, st, v, base);
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
            return config_fail(w, &v->start_mark, st->key,
                               "expected a value, not a list or mapping");
        return set_server_addr(w, &v->start_mark, s, base);
    default:
        if (!(s = scalar(v)))
            return config_fail(w, &v->start_mark, st->key,
                               "expected a value, not a list or mapping");
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
    } else {
        root = NULL;
    }
    yaml_parser_delete(&parser);
    if (!root) /* a table row's mistake, not the user's: still one line that says so */
        snprintf(w->err, w->errlen, "internal: the default of %s, '%s', is not YAML", st->key,
                 st->def);
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
            return config_fail(w, &k->start_mark, key ? key : "?",
                               "unknown key (expected one of: %s)", names);
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
    if (c)
        free_section(&config_top_section, c);
}
