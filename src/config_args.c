/* The command line through the configuration tables: a flag is a row of
 * them, its value parsed and checked by the same walk as the file's;
 * --listen, --backend and --route build the document a file would hold. */
#include "config_table.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Calls fn on every setting of sec and the sections below it, in table
 * order, until fn returns non-zero; returns that. */
int config_each_setting(const struct section *sec, int (*fn)(const struct setting *, void *),
                        void *arg)
{
    int ret;

    for (const struct setting *st = sec->settings; st->key; st++) {
        if ((ret = fn(st, arg)) != 0)
            return ret;
        if (st->sub && (ret = config_each_setting(st->sub, fn, arg)) != 0)
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

    config_each_setting(&config_top_section, match_flag, &f);
    return f.found;
}

/* The setting with this key that has a flag. */
const struct setting *config_setting_by_key(const char *key)
{
    struct find f = {key, 0, NULL};

    config_each_setting(&config_top_section, match_key, &f);
    return f.found;
}

const char *config_flag(const char *s, size_t len)
{
    const struct setting *st = setting_by_flag(s, len);

    return st ? st->flag : NULL;
}

/* Whether some argument sets the key of st. */
int config_arg_given(const struct walk *w, const struct setting *st)
{
    for (int i = 0; st && i < w->n_args; i++)
        if (strcmp(w->args[i].flag, st->flag) == 0)
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
    d->ok = yaml_document_initialize(&d->doc, NULL, NULL, NULL, 1, 1) != 0;
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
static void argdoc_route(struct walk *w, struct argdoc *d, int routes, int backends, int arg, int n)
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
            snprintf(w->err, w->errlen,
                     "--route: expected NAME=ADDR:PORT with NAME a host "
                     "name or *.suffix, like api.example.com=10.0.0.5:8443, got '%s'",
                     w->args[i].value);
            config_one_line(w->err);
            return -EINVAL;
        }
    }
    if (listen < 0 || backend < 0) {
        snprintf(w->err, w->errlen,
                 listen < 0 ? "--listen: required (at least one ADDR:PORT)"
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
    return k == K_BINDS || k == K_CIDRS || k == K_ADDRS || k == K_TLVS;
}

/* The value node for st from its flags: a list of every value given, or
 * the last one given. Returns the node's id, 0 if the flag was not given. */
static int argdoc_value(const struct walk *w, struct argdoc *d, const struct setting *st)
{
    int seq = 0, last = -1;

    for (int i = 0; i < w->n_args; i++) {
        const char *v = w->args[i].value, *comma;
        if (strcmp(w->args[i].flag, st->flag) != 0)
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

    if (!config_arg_given(w, st))
        return 0;
    if (argdoc_init(&d) < 0)
        return -ENOMEM;
    id = argdoc_value(w, &d, st);
    ret = d.ok ? 0 : -ENOMEM;
    if (ret == 0 && id) {
        w->doc = &d.doc;
        w->origin = FROM_ARGS;
        ret = config_apply(w, st, yaml_document_get_node(&d.doc, id), base);
        w->doc = outer;
        w->origin = outer_origin;
    }
    yaml_document_delete(&d.doc);
    return ret;
}

/* Puts the flags over the struct at base that sec describes, and over
 * every section below it: a listener's flag sets every listener's key. */
int config_apply_flags(struct walk *w, const struct section *sec, void *base)
{
    int ret, count;

    for (const struct setting *st = sec->settings; st->key; st++) {
        char *field = (char *)base + st->off;
        if (st->kind == K_MAP) {
            ret = config_apply_flags(w, st->sub, field);
        } else if (st->kind == K_SEQ) {
            char *elems = config_seq_elems(st, base);
            count = config_seq_count(st, base);
            ret = 0;
            for (int e = 0; e < count && ret == 0; e++)
                ret = config_apply_flags(w, st->sub, elems + (size_t)e * st->elem_size);
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

static int describing(const struct setting *st, void *arg)
{
    return st->describes && config_arg_given(arg, st);
}

/* The flags that describe listeners and backends replace a file's. */
int config_check_no_file(struct walk *w, int with_file)
{
    if (!with_file || !config_each_setting(&config_top_section, describing, w))
        return 0;
    snprintf(w->err, w->errlen,
             "--listen, --backend and --route describe what the file's "
             "listeners and backends do; give one or the other, not both");
    return -EINVAL;
}

int config_check_args(const struct config_arg *args, int n, int with_file, char *err, size_t errlen)
{
    struct walk w = {.origin = FROM_ARGS, .args = args, .n_args = n, .err = err, .errlen = errlen};
    struct config *scratch;
    int ret = check_flags(&w, &config_top_section);

    if (ret == 0)
        ret = config_check_no_file(&w, with_file);
    if (ret < 0 || with_file || !config_each_setting(&config_top_section, describing, &w))
        return ret;
    /* What --listen, --backend and --route describe, whole. */
    if (!(scratch = calloc(1, sizeof(*scratch))))
        return -ENOMEM;
    ret = config_walk_described(&w, scratch);
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
        config_list_names(st->choices, names, sizeof(names));
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
    config_each_setting(&config_top_section, usage_describing, out);
    config_each_setting(&config_top_section, usage_setting, out);
}

/* What the command line describes into c, as if it were a file. */
int config_walk_described(struct walk *w, struct config *c)
{
    struct argdoc d;
    int ret;

    if (argdoc_init(&d) < 0)
        return -ENOMEM;
    ret = argdoc_describe(w, &d);
    if (ret == 0) {
        w->doc = &d.doc;
        w->origin = FROM_ARGS;
        ret = config_walk_section(w, &config_top_section, yaml_document_get_root_node(&d.doc), c);
        w->doc = NULL;
    }
    yaml_document_delete(&d.doc);
    return ret;
}
