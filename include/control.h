/* The runtime API's commands done on the running process: a server's
 * admin state and weight, its sessions reset, a listener disabled and
 * enabled. Each change is one log line naming who asked. */
#ifndef RINGRELAY_CONTROL_H
#define RINGRELAY_CONTROL_H

#include "admin_cmd.h"
#include "process.h"

#include <stdio.h>

/* Does cmd, asked by who ("uid=0 pid=42"), on the running configuration,
 * and writes one line to out: "ok: ..." or "error: ..." (then nothing
 * changed). Returns 0 if done, -1 if not. The stats thread calls it. */
int control_command(struct process *r, const struct admin_cmd *cmd, const char *who, FILE *out);

/* After a reload (what: "reload: FILE", say): one log line listing the
 * servers and listeners whose runtime state (not ready, a weight set,
 * disabled) the new configuration kept. */
void control_log_kept(const struct runtime *rt, const char *what);

#endif
