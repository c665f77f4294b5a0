/* Health state of one server: rise/fall hysteresis over check results, and
 * passive marking from the data path. Pure: the checker thread and the
 * workers feed it results; it says when the server changes state. */
#ifndef RINGRELAY_HEALTH_H
#define RINGRELAY_HEALTH_H

#include <stdint.h>

struct health {
    int up;          /* servers start up, as HAProxy's do */
    uint32_t streak; /* consecutive results that disagree with up */
};

/* Feeds one check result. A server that is up goes down after fall
 * failures in a row; one that is down comes up after rise successes in a
 * row; a result that agrees with the state resets the streak. Returns 1
 * when the state changed (log it once), else 0. */
int health_feed(struct health *h, int ok, uint32_t rise, uint32_t fall);

#endif
