/* The main thread's one loop, for every phase of the process: it waits
 * for signals and does what the signal table says each does in the phase
 * it is in, and runs what every phase needs (the watchdog, the
 * rate-limited log, systemd's status line) and what the phases that take
 * a new configuration need (a queued reload, a DNS change). */
#ifndef RINGRELAY_MAINLOOP_H
#define RINGRELAY_MAINLOOP_H

#include "process.h"

#include <stdint.h>
#include <sys/types.h>

enum phase {
    PHASE_HANDOVER, /* a successor, serving, waits to be ready before it takes over */
    PHASE_RUN,
    PHASE_LEAVE, /* SIGTERM came: shutdown_grace, still accepting */
    PHASE_DRAIN, /* not accepting: open connections finish */
    PHASES
};

/* The signals the main thread takes (blocked in every thread). */
void mainloop_signals(sigset_t *set);

/* Runs the loop in phase until done(r) (NULL: never) is true or
 * until_ms (monotonic; 0: never) passes, and returns 0; or until SIGTERM
 * or SIGINT ends the phase, and returns that signal, its sender in *from.
 * What the caller does next is the phase's to decide (the README's
 * Signals table). */
int mainloop_run(struct process *r, enum phase phase, uint64_t until_ms,
                 int (*done)(struct process *r), pid_t *from);

#endif
