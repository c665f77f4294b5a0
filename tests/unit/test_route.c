/* SNI routes: parsing and picking (exact, longest wildcard, case). */
#include "route.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

static const char *const table[] = {
    "api.example.com=10.0.0.1:443", "*.example.com=10.0.0.2:443",
    "*.eu.example.com=10.0.0.3:443", "Example.ORG=[2001:db8::1]:8443",
};

static int n_routes;
static struct route routes[8];

static void load(void)
{
    const char *what;

    n_routes = 0;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        cr_assert_eq(route_parse(table[i], &routes[n_routes++], &what), 0, "%s", table[i]);
}

static const char *pick(const char *sni)
{
    const struct route *r = route_pick(routes, n_routes, (const uint8_t *)sni, strlen(sni));
    return r ? r->name : "(default)";
}

Test(route, pick)
{
    load();
    cr_assert_str_eq(pick("api.example.com"), "api.example.com");
    cr_assert_str_eq(pick("API.Example.Com"), "api.example.com");
    cr_assert_str_eq(pick("www.example.com"), ".example.com");
    cr_assert_str_eq(pick("a.b.example.com"), ".example.com");
    cr_assert_str_eq(pick("x.eu.example.com"), ".eu.example.com");
    cr_assert_str_eq(pick("example.com"), "(default)");
    cr_assert_str_eq(pick("badexample.com"), "(default)");
    cr_assert_str_eq(pick("example.org"), "example.org");
    cr_assert_str_eq(pick("www.example.org"), "(default)");
    cr_assert_null(route_pick(routes, n_routes, NULL, 0));
}

Test(route, parse_errors)
{
    static const struct {
        const char *in, *what;
    } bad[] = {
        {"example.com", "name"},       {"=10.0.0.1:443", "name"},
        {"*.=10.0.0.1:443", "name"},   {"*=10.0.0.1:443", "name"},
        {"a..b=10.0.0.1:443", "name"}, {"a b=10.0.0.1:443", "name"},
        {"w*.x=10.0.0.1:443", "name"}, {"a.com=10.0.0.1", "address"},
        {"a.com=host:443", "address"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct route r;
        const char *what = NULL;

        cr_assert_eq(route_parse(bad[i].in, &r, &what), -EINVAL, "%s", bad[i].in);
        cr_assert_str_eq(what, bad[i].what, "%s", bad[i].in);
    }
}
