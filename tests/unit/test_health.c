/* Rise/fall hysteresis: a flapping server does not flap the state. */
#include "health.h"

#include <criterion/criterion.h>
#include <string.h>

/* Feeds results ('+' ok, '-' failed) and returns the states after each
 * ('U' up, 'D' down), a '!' after each change. */
static const char *run(const char *results, uint32_t rise, uint32_t fall)
{
    static char out[128];
    struct health h = {.up = 1};
    size_t n = 0;

    for (const char *r = results; *r; r++) {
        int changed = health_feed(&h, *r == '+', rise, fall);
        out[n++] = h.up ? 'U' : 'D';
        if (changed)
            out[n++] = '!';
    }
    out[n] = '\0';
    return out;
}

Test(health, rise_and_fall)
{
    cr_assert_str_eq(run("+-+--+---", 2, 3), "UUUUUUUUD!");
    cr_assert_str_eq(run("---+-++", 2, 3), "UUD!DDDU!");
    cr_assert_str_eq(run("-", 1, 1), "D!");
    cr_assert_str_eq(run("-+", 1, 1), "D!U!");
    /* Down, a success, a failure: the streak starts again. */
    cr_assert_str_eq(run("---+-+-++", 2, 3), "UUD!DDDDDU!");
}
