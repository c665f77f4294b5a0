/* Rise/fall hysteresis for server health. */
#include "health.h"

int health_feed(struct health *h, int ok, uint32_t rise, uint32_t fall)
{
    if (!ok == !h->up) { /* a failure while down, or a success while up */
        h->streak = 0;
        return 0;
    }
    if (++h->streak < (h->up ? fall : rise))
        return 0;
    h->up = !h->up;
    h->streak = 0;
    return 1;
}
