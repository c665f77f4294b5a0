/* The configuration tables read the other way: --dump-config writes the
 * effective configuration as YAML config_load() reads back, and a reload
 * compares the keys that cannot change. */
#include "config_table.h"

#include "addr.h"
#include "cidr.h"

#include <stdio.h>
#include <string.h>

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
        else if (sv->host[0])
            fprintf(out, "\"%s:%u\"", sv->host, ntohs(sv->inet.in.sin_port));
        else
            fprintf(out, "\"%s\"", addr_format(&sv->inet.sa, buf, sizeof(buf)));
        return;
    }
    fprintf(out, "[");
    if (st->kind == K_BINDS)
        for (int i = 0; i < l->n_bind; i++)
            fprintf(out, "%s\"%s\"", i ? ", " : "", addr_format(&l->bind[i].sa, buf, sizeof(buf)));
    if (st->kind == K_ADDRS) {
        const union sockaddr_inet *list =
            (const union sockaddr_inet *)(const void *)((const char *)base + st->off);
        int count = config_seq_count(st, base);
        for (int i = 0; i < count; i++)
            fprintf(out, "%s\"%s\"", i ? ", " : "", addr_format(&list[i].sa, buf, sizeof(buf)));
    }
    if (st->kind == K_CIDRS) {
        const struct cidr *list = (const struct cidr *)(const void *)((const char *)base + st->off);
        int count = config_seq_count(st, base);
        for (int i = 0; i < count; i++)
            fprintf(out, "%s\"%s\"", i ? ", " : "", cidr_format(&list[i], buf, sizeof(buf)));
    }
    if (st->kind == K_TLVS) {
        for (int t = 0; config_tlv_names[t]; t++)
            if (b->tlvs & (1U << t))
                fprintf(out, "%s%s", n++ ? ", " : "", config_tlv_names[t]);
        for (int t = 0; t < b->n_tlv_pass; t++)
            fprintf(out, "%s0x%02X", n++ ? ", " : "", b->tlv_pass[t]);
    }
    fprintf(out, "]");
}

static void dump_value(FILE *out, const struct setting *st, const void *base)
{
    const char *field = (const char *)base + st->off;
    char buf[ADDR_STRLEN];
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
            fprintf(out, "%s", (st->kind == K_LOG_LEVEL ? config_level_names : st->choices)[i]);
        break;
    case K_NAME:
    case K_HOST:
    case K_ROUTE_SNI:
    case K_PATH:
    case K_LOG_PATH:
        dump_string(out, "", field);
        break;
    case K_INET_ADDR:
        if (((const union sockaddr_inet *)(const void *)field)->sa.sa_family)
            fprintf(out, "\"%s\"",
                    addr_format((const struct sockaddr *)(const void *)field, buf, sizeof(buf)));
        else
            fprintf(out, "\"\"");
        break;
    case K_BINDS:
    case K_CIDRS:
    case K_ADDRS:
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
    int count = config_seq_count(st, base);
    const char *elems = config_seq_elems(st, base);

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
    dump_section(out, &config_top_section, c, 0, 0);
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
    case K_INET_ADDR:
        return sizeof(union sockaddr_inet);
    case K_CIDRS: /* and its count, at count_off */
        return (size_t)st->max_elems * sizeof(struct cidr);
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
    /* Room for the longest value: a full list of CIDR ranges. */
    char was[CONFIG_MAX_TRUSTED * (CIDR_STRLEN + 4)], now[sizeof(was)], key[96];

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
        if (st->kind == K_CIDRS)
            memcpy((char *)nbase + st->count_off, (const char *)obase + st->count_off, sizeof(int));
    }
}

void config_keep_start_only(struct config *nc, const struct config *old,
                            void (*changed)(const char *key, const char *was, const char *now))
{
    keep_section(&config_top_section, nc, old, "", changed);
}
