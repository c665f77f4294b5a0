/* Whether a worker accepts: pauses stack by reason (ACCEPT_PAUSE_*), and
 * accepting rests a while, longer each time in a row, when it runs out of
 * descriptors or memory. */
#ifndef RINGRELAY_ACCEPTING_H
#define RINGRELAY_ACCEPTING_H

#include "worker-t.h"

#include <stdint.h>

/* No back-off yet (a new worker, or an accept that worked). */
void accepting_reset(struct worker *w);

/* Stops accepting for reason (one of ACCEPT_PAUSE_*), on top of any other. */
void accepting_pause(struct worker *w, uint8_t reason);

/* Clears one reason accepting was paused for; accepts again if none is left. */
void accepting_resume(struct worker *w, uint8_t reason);

/* Out of descriptors or memory: pauses for the back-off, then doubles it. */
void accepting_back_off(struct worker *w);

/* At a tick: resumes accepting once the back-off is over. */
void accepting_tick(struct worker *w);

#endif
