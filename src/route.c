/* SNI route table: names checked once, then looked up by hash. */
#include "route.h"

#include "clienthello.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static char lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* Letters, digits, '-', '_' and '.', with no empty label. */
static int valid_name(const char *s, size_t n)
{
    if (n == 0 || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = lower(s[i]);
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
              ch == '.'))
            return 0;
        if (ch == '.' && i + 1 < n && s[i + 1] == '.')
            return 0;
    }
    return 1;
}

int route_name_check(const char *s, size_t n)
{
    if (n > CLIENTHELLO_SNI_MAX)
        return -EINVAL;
    if (n > 2 && s[0] == '*' && s[1] == '.')
        return valid_name(s + 2, n - 2) ? 1 : -EINVAL;
    return valid_name(s, n) ? 0 : -EINVAL;
}

/* FNV-1a of the lower-cased bytes, then a finalizer that spreads it over
 * the low bits the mask keeps. */
static uint64_t name_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)lower(s[i])) * 0x100000001b3ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    return h ^ (h >> 33);
}

static int same_name(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower(a[i]) != lower(b[i]))
            return 0;
    return 1;
}

/* The slot holding key, or the empty slot where it would go. */
static struct route_slot *slot_for(const struct route_table *t, const char *key, size_t len,
                                   uint64_t hash)
{
    for (uint32_t i = (uint32_t)hash & t->mask;; i = (i + 1) & t->mask) {
        struct route_slot *s = &t->slots[i];
        if (!s->key || (s->hash == hash && s->len == len && same_name(s->key, key, len)))
            return s;
    }
}

int route_table_init(struct route_table *t, int n)
{
    uint32_t size = 8;

    while (size < 2U * (uint32_t)(n > 0 ? n : 0))
        size <<= 1;
    t->slots = calloc(size, sizeof(*t->slots));
    t->mask = size - 1;
    t->n = 0;
    return t->slots ? 0 : -ENOMEM;
}

void route_table_free(struct route_table *t)
{
    free(t->slots);
    t->slots = NULL;
    t->n = 0;
}

int route_table_add(struct route_table *t, const char *name, int backend)
{
    /* A wildcard is kept as its ".suffix": no host name starts with '.'. */
    const char *key = name[0] == '*' ? name + 1 : name;
    size_t len = strlen(key);
    uint64_t hash = name_hash(key, len);
    struct route_slot *s;

    s = slot_for(t, key, len, hash);
    if (s->key)
        return -EEXIST;
    if (2U * (uint32_t)(t->n + 1) > t->mask + 1)
        return -ENOSPC;
    *s = (struct route_slot){.key = key, .hash = hash, .len = (uint16_t)len, .backend = backend};
    t->n++;
    return 0;
}

static int lookup(const struct route_table *t, const char *key, size_t len)
{
    const struct route_slot *s = slot_for(t, key, len, name_hash(key, len));

    return s->key ? s->backend : -1;
}

int route_table_pick(const struct route_table *t, const uint8_t *sni, size_t len)
{
    const char *name = (const char *)sni;
    int b;

    if (!sni || !t->n || len == 0 || len > CLIENTHELLO_SNI_MAX || name[0] == '.')
        return -1;
    if ((b = lookup(t, name, len)) >= 0)
        return b;
    /* Each ".suffix" after the first label, longest first. */
    for (size_t i = 1; i < len; i++)
        if (name[i] == '.' && (b = lookup(t, name + i, len - i)) >= 0)
            return b;
    return -1;
}
