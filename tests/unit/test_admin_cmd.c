/* The runtime API's command lines: each spelling parsed, and each mistake
 * named in one line. */
#include "admin_cmd.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

static int parse(const char *line, struct admin_cmd *c, char *err)
{
    return admin_cmd_parse(line, strlen(line), c, err, 200);
}

Test(admin_cmd, each_command)
{
    struct admin_cmd c;
    char err[200];

    cr_assert_eq(parse("set server kong/10.0.0.5:8443 state drain", &c, err), 0, "%s", err);
    cr_assert(c.op == ADMIN_SERVER_STATE && c.state == SERVER_DRAIN);
    cr_assert_str_eq(c.backend, "kong");
    cr_assert_str_eq(c.server, "10.0.0.5:8443");
    cr_assert_eq(parse("set server kong/[::1]:8443 weight 0", &c, err), 0, "%s", err);
    cr_assert(c.op == ADMIN_SERVER_WEIGHT && c.weight == 0);
    cr_assert_str_eq(c.server, "[::1]:8443");
    cr_assert_eq(parse("set  server kong/k1  state  maint", &c, err), 0, "%s", err);
    cr_assert(c.state == SERVER_MAINT);
    cr_assert_str_eq(c.server, "k1");
    cr_assert_eq(parse("shutdown sessions server unixy/unix:/run/kong.sock", &c, err), 0);
    cr_assert(c.op == ADMIN_SHUTDOWN_SESSIONS);
    cr_assert_str_eq(c.server, "unix:/run/kong.sock");
    cr_assert_eq(parse("disable listener web", &c, err), 0);
    cr_assert(c.op == ADMIN_LISTENER_DISABLE);
    cr_assert_str_eq(c.listener, "web");
    cr_assert_eq(parse("enable listener web", &c, err), 0);
    cr_assert(c.op == ADMIN_LISTENER_ENABLE);
}

Test(admin_cmd, mistakes_named)
{
    static const struct {
        const char *line, *says;
    } bad[] = {
        {"set server kong/a weight 1001", "weight '1001': expected a whole number from 0 to 1000"},
        {"set server kong/a weight 5x", "weight '5x'"},
        {"set server kong/a weight +5", "weight '+5'"},
        {"set server kong/a weight", "expected set server BACKEND/SERVER state"},
        {"set server kong/a state up", "expected state ready, drain or maint"},
        {"set server kong state drain", "'kong': expected BACKEND/SERVER"},
        {"set server /a state drain", "'/a': expected BACKEND/SERVER"},
        {"set server kong/ state drain", "'kong/': expected BACKEND/SERVER"},
        {"set listener web", "expected set server BACKEND/SERVER ..."},
        {"shutdown sessions kong/a", "expected shutdown sessions server BACKEND/SERVER"},
        {"disable listener", "expected disable listener NAME"},
        {"enable listener a b", "expected enable listener NAME"},
        {"set server kong/a state drain now please a b c d", "expected"},
    };
    struct admin_cmd c;
    char err[200];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(parse(bad[i].line, &c, err), -EINVAL, "%s", bad[i].line);
        cr_assert(strstr(err, bad[i].says), "%s: %s", bad[i].line, err);
        cr_assert(!strchr(err, '\n'));
    }
}

Test(admin_cmd, write_commands_known_by_their_first_word)
{
    cr_assert(admin_cmd_is_write("set server a/b state drain", 26));
    cr_assert(admin_cmd_is_write("  disable listener x", 20));
    cr_assert(!admin_cmd_is_write("show servers", 12));
    cr_assert(!admin_cmd_is_write("settle", 6));
}
