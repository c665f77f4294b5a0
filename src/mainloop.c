/* The main thread's loop: one for every phase, and one table of what each
 * signal does in each. */
#include "mainloop.h"

#include "access_log.h"
#include "log.h"
#include "mono.h"
#include "reload.h"
#include "resolver.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

enum sig_act {
    ACT_IGNORE,  /* logged: it means nothing in this phase */
    ACT_RELOAD,  /* a reload queued (done once the workers have the last one) */
    ACT_UPGRADE, /* start the successor */
    ACT_REAP,    /* reap children: a successor that ended */
    ACT_REOPEN,  /* reopen the access log */
    ACT_END,     /* end the phase: the caller decides what comes next */
};

static const char *const phase_name[PHASES] = {"handing over", "running", "leaving", "draining"};

/* The README's Signals table, the same rows and columns. */
static const struct {
    int sig;
    enum sig_act act[PHASES];
} table[] = {
    /*         hand-over    run          leave       drain */
    {SIGHUP, {ACT_RELOAD, ACT_RELOAD, ACT_IGNORE, ACT_IGNORE}},
    {SIGUSR1, {ACT_REOPEN, ACT_REOPEN, ACT_REOPEN, ACT_REOPEN}},
    {SIGUSR2, {ACT_IGNORE, ACT_UPGRADE, ACT_IGNORE, ACT_IGNORE}},
    {SIGCHLD, {ACT_REAP, ACT_REAP, ACT_REAP, ACT_REAP}},
    {SIGTERM, {ACT_END, ACT_END, ACT_END, ACT_END}},
    {SIGINT, {ACT_END, ACT_END, ACT_END, ACT_END}},
};

#define WAKE_HANDOVER_MS 20 /* readiness is looked at this often */
#define WAKE_DRAIN_MS 50    /* the open connections are counted this often */
#define WAKE_RELOAD_MS 10   /* while a reload is handed or queued */
#define STATUS_MS 1000      /* systemd's status line while leaving or draining */

void mainloop_signals(sigset_t *set)
{
    sigemptyset(set);
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        sigaddset(set, table[i].sig);
}

static enum sig_act action(int sig, enum phase phase)
{
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (table[i].sig == sig)
            return table[i].act[phase];
    return ACT_IGNORE;
}

/* Does what sig means in phase; returns 1 if it ends the phase. */
static int on_signal(struct process *r, int sig, enum phase phase)
{
    switch (action(sig, phase)) {
    case ACT_RELOAD:
        if (reload_queue_hup(&r->reloads_q))
            log_info("SIGHUP: a reload is queued already; it reads the file when it runs");
        return 0;
    case ACT_UPGRADE:
        process_upgrade(r);
        return 0;
    case ACT_REAP:
        process_reap(r);
        return 0;
    case ACT_REOPEN:
        access_log_reopen(r->alog);
        return 0;
    case ACT_END:
        return 1;
    case ACT_IGNORE:
        break;
    }
    log_warn("%s while %s: ignored", strsignal(sig), phase_name[phase]);
    return 0;
}

/* How long to wait for a signal: the phase's pace, and no later than
 * until_ms. */
static uint64_t wait_ms(const struct process *r, enum phase phase, int busy, uint64_t now,
                        uint64_t until_ms)
{
    uint64_t ms = phase == PHASE_HANDOVER ? WAKE_HANDOVER_MS
                  : phase == PHASE_DRAIN  ? WAKE_DRAIN_MS
                  : busy                  ? WAKE_RELOAD_MS
                                          : r->tick_ms;

    if (until_ms && until_ms - now < ms)
        ms = until_ms - now;
    return ms;
}

int mainloop_run(struct process *r, enum phase phase, uint64_t until_ms,
                 int (*done)(struct process *r), pid_t *from)
{
    uint64_t status_ms = mono_ms();
    int busy = 0;

    for (;;) {
        uint64_t now = mono_ms(), ms;
        struct timespec ts;
        siginfo_t si = {0};
        int sig;

        if ((done && done(r)) || (until_ms && now >= until_ms))
            return 0;
        ms = wait_ms(r, phase, busy, now, until_ms);
        ts = (struct timespec){.tv_sec = (time_t)(ms / 1000),
                               .tv_nsec = (long)(ms % 1000) * 1000000L};
        sig = sigtimedwait(&r->sigs, &si, &ts);
        log_rl_flush(0);
        if (sig > 0 && on_signal(r, sig, phase)) {
            *from = si.si_pid;
            return sig;
        }
        process_watchdog(r);
        if ((phase == PHASE_LEAVE || phase == PHASE_DRAIN) && mono_ms() - status_ms >= STATUS_MS) {
            process_notify_status(r, phase_name[phase]);
            status_ms = mono_ms();
        }
        if (phase == PHASE_DRAIN)
            continue; /* nothing new is taken: no reload, no DNS change */
        if (resolver_changed(r->dns))
            reload_queue_dns(&r->reloads_q);
        busy = reload_tick(r, &r->checks);
    }
}
