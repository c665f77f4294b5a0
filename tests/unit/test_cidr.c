/* Address ranges: parsing, host-bit errors, matching with v4-mapped. */
#include "addr.h"
#include "cidr.h"

#include <criterion/criterion.h>
#include <errno.h>

struct parse_case {
    const char *in;
    int ret;
    const char *out;
};

static const struct parse_case parse_cases[] = {
    {"192.0.2.0/24", 0, "192.0.2.0/24"},
    {"10.0.0.1", 0, "10.0.0.1/32"},
    {"0.0.0.0/0", 0, "0.0.0.0/0"},
    {"10.1.2.3/8", -EDOM, NULL},
    {"10.1.2.3/32", 0, "10.1.2.3/32"},
    {"10.0.0.0/33", -EINVAL, NULL},
    {"10.0.0.0/", -EINVAL, NULL},
    {"10.0.0.0/08", -EINVAL, NULL},
    {"10.0.0.0/-1", -EINVAL, NULL},
    {"10.0.0/8", -EINVAL, NULL},
    {"/8", -EINVAL, NULL},
    {"", -EINVAL, NULL},
    {"2001:db8::/32", 0, "2001:db8::/32"},
    {"2001:db8::1/32", -EDOM, NULL},
    {"::/0", 0, "::/0"},
    {"::1", 0, "::1/128"},
    {"::/129", -EINVAL, NULL},
    {"[::1]/128", -EINVAL, NULL},
    {"10.0.0.0/8 ", -EINVAL, NULL},
};

Test(cidr, parse)
{
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        const struct parse_case *t = &parse_cases[i];
        struct cidr c;
        char buf[CIDR_STRLEN];

        cr_assert_eq(cidr_parse(t->in, &c), t->ret, "'%s'", t->in);
        if (t->out)
            cr_assert_str_eq(cidr_format(&c, buf, sizeof(buf)), t->out, "'%s'", t->in);
    }
}

struct match_case {
    const char *cidr, *addr;
    int match;
};

static const struct match_case match_cases[] = {
    {"192.0.2.0/24", "192.0.2.77:1", 1},
    {"192.0.2.0/24", "192.0.3.1:1", 0},
    {"192.0.2.0/25", "192.0.2.128:1", 0},
    {"192.0.2.0/25", "192.0.2.127:1", 1},
    {"127.0.0.1", "127.0.0.1:5", 1},
    {"127.0.0.1", "127.0.0.2:5", 0},
    {"0.0.0.0/0", "203.0.113.9:5", 1},
    {"0.0.0.0/0", "[2001:db8::1]:5", 0},
    {"10.0.0.0/8", "[::ffff:10.9.8.7]:5", 1},
    {"10.0.0.0/8", "[::ffff:11.9.8.7]:5", 0},
    {"2001:db8::/32", "[2001:db8:ffff::1]:5", 1},
    {"2001:db8::/33", "[2001:db8:8000::1]:5", 0},
    {"::/0", "10.0.0.1:5", 0},
    {"::1", "[::1]:5", 1},
};

Test(cidr, match)
{
    for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
        const struct match_case *t = &match_cases[i];
        union sockaddr_inet a;
        struct cidr c;

        cr_assert_eq(cidr_parse(t->cidr, &c), 0, "%s", t->cidr);
        cr_assert_eq(addr_parse(t->addr, &a), 0, "%s", t->addr);
        cr_assert_eq(cidr_match(&c, &a.sa), t->match, "%s in %s", t->addr, t->cidr);
    }
}
