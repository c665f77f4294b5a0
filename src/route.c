/* SNI route table: parsing and matching. */
#include "route.h"

#include <errno.h>
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
        if (ch == '.' && s[i + 1] == '.')
            return 0;
    }
    return 1;
}

int route_parse(const char *s, struct route *r, const char **what)
{
    const char *eq = strchr(s, '=');
    size_t n;

    memset(r, 0, sizeof(*r));
    *what = "name";
    if (!eq)
        return -EINVAL;
    n = (size_t)(eq - s);
    if (n > 2 && s[0] == '*' && s[1] == '.') {
        r->wildcard = 1;
        s++;
        n--;
        if (!valid_name(s + 1, n - 1))
            return -EINVAL;
    } else if (!valid_name(s, n)) {
        return -EINVAL;
    }
    if (n > CLIENTHELLO_SNI_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        r->name[i] = lower(s[i]);
    r->len = n;
    *what = "address";
    return addr_parse(eq + 1, &r->backend);
}

static int same_name(const char *a, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != lower((char)b[i]))
            return 0;
    return 1;
}

const struct route *route_pick(const struct route *routes, int n, const uint8_t *sni,
                               size_t len)
{
    const struct route *best = NULL;

    if (!sni)
        return NULL;
    for (int i = 0; i < n; i++) {
        const struct route *r = &routes[i];
        if (!r->wildcard) {
            if (r->len == len && same_name(r->name, sni, len))
                return r;
        } else if (len > r->len && same_name(r->name, sni + len - r->len, r->len) &&
                   (!best || r->len > best->len)) {
            best = r;
        }
    }
    return best;
}
