/* The runtime API's commands done on the running process: a server's
 * admin state and weight, its sessions reset, a listener disabled and
 * enabled. Each change is one log line naming who asked. */
#ifndef RINGRELAY_CONTROL_H
#define RINGRELAY_CONTROL_H

#include "admin_cmd.h"
#include "process.h"

#include <stdio.h>

/* A round of the workers not done within this long is answered without
 * the ones that did not answer. */
#define CONTROL_ROUND_MS 1000

/* Does cmd, asked by who ("uid=0 pid=42"), on the running configuration,
 * and writes one line to out: "ok: ..." or "error: ..." (then nothing
 * changed). Returns 0 if done, -1 if not, or 1 when the workers do it
 * (shutdown sessions: one round to all of them, for every server cmd
 * names): *round is then polled with control_round_end(). The stats
 * thread calls these, and only it. */
int control_command(struct process *r, const struct admin_cmd *cmd, const char *who, FILE *out,
                    void **round);

/* show conns: a round in which each worker writes its connections;
 * returns as control_command(). */
int control_conns(struct process *r, FILE *out, void **round);

/* -EINPROGRESS while some worker has not done its part of round (for at
 * most CONTROL_ROUND_MS); then the answer written to out, round let go,
 * and 0 or -1. */
int control_round_end(struct process *r, void *round, FILE *out);

/* Lets go of a round nobody waits for any more. */
void control_round_drop(struct process *r, void *round);

/* Frees every round let go of: only once the workers have stopped. */
void control_free_rounds(struct process *r);

/* After a reload (what: "reload: FILE", say): one log line listing the
 * servers and listeners whose runtime state (not ready, a weight set,
 * disabled) the new configuration kept. */
void control_log_kept(const struct runtime *rt, const char *what);

#endif
