/* A server's state across configurations, by slot: what an operator set
 * stays, a weight set at runtime gives way to a changed configured one,
 * health stays where checks ran before and run now, and a server new to
 * its slot (or back after being removed) starts fresh. */
#include "server_state.h"

#include <criterion/criterion.h>

Test(server_state, a_fresh_server_is_as_configured)
{
    struct server_state *st = server_state_bind(1, 1, "b", "10.0.0.1:1", NULL, 5, 0, 1);

    cr_assert_eq(st, server_state_of(1));
    cr_assert_eq(atomic_load(&st->admin), SERVER_READY);
    cr_assert_eq(atomic_load(&st->weight), 5);
    cr_assert_eq(atomic_load(&st->up), 1, "servers start up");
    cr_assert_eq(atomic_load(&st->proven), 0, "checked: not proven until a check passes");
    st = server_state_bind(2, 1, "b", "10.0.0.2:1", NULL, 1, 0, 0);
    cr_assert_eq(atomic_load(&st->proven), 1, "no checks: nothing to pass");
    st = server_state_bind(3, 1, "b", "name:1", NULL, 1, 1, 0);
    cr_assert_eq(atomic_load(&st->up) + atomic_load(&st->proven), 0, "no address: down");
}

Test(server_state, kept_what_the_operator_set_and_the_health)
{
    struct server_state *st = server_state_bind(4, 1, "b", "10.0.0.4:1", NULL, 2, 0, 1);

    atomic_store(&st->admin, SERVER_DRAIN);
    atomic_store(&st->up, 0);
    atomic_store(&st->proven, 1);
    st = server_state_bind(4, 0, "b", "10.0.0.4:1", NULL, 2, 0, 1);
    cr_assert_eq(atomic_load(&st->admin), SERVER_DRAIN, "a reload keeps a drain");
    cr_assert_eq(atomic_load(&st->up), 0, "and a server that is down stays down");
    cr_assert_eq(atomic_load(&st->proven), 1);
    st = server_state_bind(4, 0, "b", "10.0.0.4:1", NULL, 2, 0, 0);
    cr_assert_eq(atomic_load(&st->up), 1, "checks turned off: up");
    st = server_state_bind(4, 0, "b", "10.0.0.4:1", NULL, 2, 0, 1);
    cr_assert_eq(atomic_load(&st->proven), 0, "checks turned on: wait for them");
    cr_assert_eq(atomic_load(&st->admin), SERVER_DRAIN, "the drain through all of it");
    st = server_state_bind(4, 1, "b", "10.0.0.4:1", NULL, 2, 0, 1);
    cr_assert_eq(atomic_load(&st->admin), SERVER_READY, "removed and back: fresh");
}

Test(server_state, a_weight_set_gives_way_to_a_changed_file)
{
    struct server_state *st = server_state_bind(5, 1, "b", "10.0.0.5:1", NULL, 2, 0, 1);

    atomic_store(&st->weight, 7);
    st->weight_set = 1;
    st = server_state_bind(5, 0, "b", "10.0.0.5:1", NULL, 2, 0, 1);
    cr_assert_eq(atomic_load(&st->weight), 7, "the same file: the runtime weight stays");
    st = server_state_bind(5, 0, "b", "10.0.0.5:1", NULL, 3, 0, 1);
    cr_assert_eq(atomic_load(&st->weight), 3, "the file's weight changed: it wins");
    cr_assert_eq(st->weight_set, 0);
}

/* A DNS name set to drain holds for addresses it gains later, until it is
 * set ready; a name the configuration no longer has is forgotten. */
Test(server_state, a_drained_name_drains_its_new_addresses)
{
    struct server_state *st;

    cr_assert_eq(server_state_name_set("b", "kong.internal", SERVER_DRAIN), 0);
    server_state_names_mark();
    st = server_state_bind(6, 1, "b", "10.0.0.6:1", "kong.internal", 1, 0, 1);
    server_state_names_sweep();
    cr_assert_eq(atomic_load(&st->admin), SERVER_DRAIN, "a new address of a drained name");
    st = server_state_bind(7, 1, "other", "10.0.0.7:1", "kong.internal", 1, 0, 1);
    cr_assert_eq(atomic_load(&st->admin), SERVER_READY, "the same name in another backend");
    cr_assert_eq(server_state_name_set("b", "kong.internal", SERVER_READY), 0);
    st = server_state_bind(8, 1, "b", "10.0.0.8:1", "kong.internal", 1, 0, 1);
    cr_assert_eq(atomic_load(&st->admin), SERVER_READY, "set ready: new addresses ready");
    cr_assert_eq(server_state_name_set("b", "gone.internal", SERVER_MAINT), 0);
    server_state_names_mark();
    server_state_names_sweep(); /* a configuration without gone.internal */
    server_state_names_mark();
    st = server_state_bind(9, 1, "b", "10.0.0.9:1", "gone.internal", 1, 0, 1);
    server_state_names_sweep();
    cr_assert_eq(atomic_load(&st->admin), SERVER_READY, "a removed name was forgotten");
}
