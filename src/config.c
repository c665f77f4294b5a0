/* Configuration: loading a file or what the command line describes, the
 * flags over it, then the rules across keys, written once and told in the
 * words the user used. */
#include "config_table.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

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

static int fail_at(struct walk *w, const struct config_mark *m, const char *path, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

/* "FILE:LINE:COL: PATH: message" for a file, "message" when told in flags. */
static int fail_at(struct walk *w, const struct config_mark *m, const char *path, const char *fmt,
                   ...)
{
    char msg[300];
    va_list ap;

    va_start(ap, fmt);
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): a false report
    vsnprintf(msg, sizeof(msg), fmt, ap);
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
            return fail_at(w, &b->mark, path, "name '%s' is used by an earlier backend", b->name);
        if (b->n_servers == 0)
            return fail_at(w, &b->mark, path, "backend '%s' has no servers", b->name);
        if (b->resolve_interval_ms && b->resolve_interval_ms < 1000)
            return fail_at(w, &b->mark, path,
                           "resolve_interval: at least 1s, or 0s for the top level's (backend "
                           "'%s')",
                           b->name);
        for (int s = 0; s < b->n_servers; s++)
            for (int t = 0; b->servers[s].name[0] && t < s; t++)
                if (strcmp(b->servers[s].name, b->servers[t].name) == 0)
                    return fail_at(w, &b->mark, path,
                                   "server name '%s' is used twice in backend '%s'",
                                   b->servers[s].name, b->name);
        /* A bare connect is, to a server that expects a PROXY header, a
         * client that never sent one: nginx logs it as an error. */
        if (b->health.mode == CHECK_AUTO)
            b->health.mode = b->proxy_protocol == PROXY_OFF ? CHECK_TCP : CHECK_PROXY_LOCAL;
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
        return fail_at(w, &c->backends[b].mark, path,
                       "%s: copying TLV types needs %s on a "
                       "listener that uses backend '%s' (they come from a trusted inbound "
                       "header)",
                       say(w, "tlvs"), say(w, "proxy_protocol_in"), c->backends[b].name);
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
        return fail_at(w, &l->mark, path,
                       "required when there is more than one backend "
                       "(there are: %s)",
                       have);
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
        return fail_at(w, &l->mark, path,
                       "%s needs %s (the proxies in front that send the "
                       "header)",
                       say(w, "proxy_protocol_in"), say(w, "trusted_sources"));
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
        for (int b = 0; b < l->n_bind; b++)
            if (c->admin.listen.sa.sa_family && same_addr(&c->admin.listen, &l->bind[b]))
                return fail_at(w, &l->mark, path,
                               "bind address %s is also admin.listen: give the admin "
                               "listener a port of its own",
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
            ret = config_fail(w, &ev.start_mark, NULL,
                              "a second YAML document (after '---'); put "
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

int config_parse(struct config *c, const char *file, const char *text, size_t len, char *err,
                 size_t errlen)
{
    return config_load(c, file, text, len, NULL, 0, err, errlen);
}
