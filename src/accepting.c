/* Pausing and resuming a worker's accepts, and the back-off after an accept
 * failed for want of a descriptor or memory. */
#include "accepting.h"

#include "io.h"

#define ACCEPT_BACKOFF_MIN_MS 100 /* doubling up to the max while accept fails */
#define ACCEPT_BACKOFF_MAX_MS 1000

void accepting_reset(struct worker *w)
{
    w->accept_backoff_ms = ACCEPT_BACKOFF_MIN_MS;
}

void accepting_pause(struct worker *w, uint8_t reason)
{
    if (!w->accept_paused)
        w->io->accept_stop(w);
    w->accept_paused |= reason;
}

void accepting_resume(struct worker *w, uint8_t reason)
{
    if (!(w->accept_paused & reason))
        return;
    w->accept_paused &= (uint8_t)~reason;
    if (!w->accept_paused)
        w->io->accept_start(w);
}

/* An accept that works starts the back-off over (accepting_reset()). */
void accepting_back_off(struct worker *w)
{
    accepting_pause(w, ACCEPT_PAUSE_ERROR);
    w->accept_resume_ms = w->now_ms + w->accept_backoff_ms;
    if (w->accept_backoff_ms < ACCEPT_BACKOFF_MAX_MS)
        w->accept_backoff_ms *= 2;
}

void accepting_tick(struct worker *w)
{
    if ((w->accept_paused & ACCEPT_PAUSE_ERROR) && w->now_ms >= w->accept_resume_ms)
        accepting_resume(w, ACCEPT_PAUSE_ERROR);
}
