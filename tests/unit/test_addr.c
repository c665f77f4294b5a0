/* Address parsing and formatting. */
#include "addr.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

struct good {
    const char *in, *out;
    int family;
};

static const struct good goods[] = {
    {"127.0.0.1:8443", "127.0.0.1:8443", AF_INET},
    {"0.0.0.0:1", "0.0.0.0:1", AF_INET},
    {"255.255.255.255:65535", "255.255.255.255:65535", AF_INET},
    {"[::1]:8443", "[::1]:8443", AF_INET6},
    {"[::]:80", "[::]:80", AF_INET6},
    {"[2001:DB8::1]:443", "[2001:db8::1]:443", AF_INET6},
    {"[::ffff:1.2.3.4]:9", "[::ffff:1.2.3.4]:9", AF_INET6},
};

static const char *const bads[] = {
    "",           "foo",          "127.0.0.1", "127.0.0.1:", "127.0.0.1:0",  "1.2.3.4:65536",
    "1.2.3.4:-1", "1.2.3.4:80x",  "1.2.3:80",  "::1:80",     "[::1]",        "[::1]80",
    "[::1]:",     "[1.2.3.4]:80", "[::1:80",   ":80",        "localhost:80", "1.2.3.4:99999999999",
    "[]:80",
};

Test(addr, parse_and_format)
{
    for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
        union sockaddr_inet a;
        char buf[ADDR_STRLEN];
        cr_assert_eq(addr_parse(goods[i].in, &a), 0, "%s", goods[i].in);
        cr_assert_eq(a.sa.sa_family, goods[i].family, "%s", goods[i].in);
        cr_assert_str_eq(addr_format(&a.sa, buf, sizeof(buf)), goods[i].out);
    }
}

Test(addr, rejects)
{
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        union sockaddr_inet a;
        cr_assert_eq(addr_parse(bads[i], &a), -EINVAL, "accepted '%s'", bads[i]);
    }
}

Test(addr, unmap_v4)
{
    union sockaddr_inet a;
    char buf[ADDR_STRLEN];

    cr_assert_eq(addr_parse("[::ffff:10.0.0.7]:99", &a), 0);
    addr_unmap_v4(&a);
    cr_assert_eq(a.sa.sa_family, AF_INET);
    cr_assert_str_eq(addr_format(&a.sa, buf, sizeof(buf)), "10.0.0.7:99");
    cr_assert_eq(addr_parse("[2001:db8::7]:99", &a), 0);
    addr_unmap_v4(&a);
    cr_assert_eq(a.sa.sa_family, AF_INET6);
}

Test(addr, unix_paths)
{
    struct sockaddr_un u;
    char buf[ADDR_STRLEN];
    char longpath[200] = "unix:/";

    cr_assert_eq(addr_parse_unix("unix:/run/kong/proxy.sock", &u), 0);
    cr_assert_eq(u.sun_family, AF_UNIX);
    cr_assert_str_eq(u.sun_path, "/run/kong/proxy.sock");
    cr_assert_str_eq(addr_format((struct sockaddr *)&u, buf, sizeof(buf)),
                     "unix:/run/kong/proxy.sock");
    cr_assert_eq(addr_len((struct sockaddr *)&u), sizeof(struct sockaddr_un));
    cr_assert_eq(addr_parse_unix("unix:run/x.sock", &u), -EINVAL, "relative path");
    cr_assert_eq(addr_parse_unix("/run/x.sock", &u), -EINVAL, "no unix: prefix");
    memset(longpath + 6, 'a', 120);
    cr_assert_eq(addr_parse_unix(longpath, &u), -EINVAL, "longer than sun_path");
}
