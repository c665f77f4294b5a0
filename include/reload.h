/* Loading the configuration: at start, and again on SIGHUP. */
#ifndef RINGRELAY_RELOAD_H
#define RINGRELAY_RELOAD_H

#include "checker.h"
#include "process.h"
#include "resolver.h"

#include <stddef.h>

/* Reads a whole file (at most 1 MiB) into a NUL-terminated buffer the
 * caller frees. NULL with err filled. */
char *reload_read_file(const char *path, size_t *len, char *err, size_t errlen);

/* A runtime from -c FILE (with the flags over it) or from the flags
 * alone, its servers given by name resolved by dns (NULL: none): the
 * names dns does not know yet now, its thread stopped. The file's text
 * goes to *text (the caller frees it; NULL without a file). NULL with err
 * filled. */
struct runtime *reload_load_runtime(const struct options *o, struct resolver *dns, char **text,
                                    size_t *len, char *err, size_t errlen);

/* The main thread's reload work, at each of its wakes: notes that the
 * workers took the configuration last handed to them (it is applied
 * then), and once they all have, does what is queued: a SIGHUP's reload
 * (r->reload_queued: the file read as it is now; a bad one changes
 * nothing) before a DNS change (r->dns_queued: the running
 * configuration's text made again with the names' new addresses).
 * Nothing waits: a configuration the workers cannot take yet (each
 * holds connections on WORKER_GENS older ones) stays handed, logged once,
 * and what comes meanwhile stays queued. Returns 1 while anything is
 * handed or queued (the caller wakes again soon), else 0. */
int reload_tick(struct process *r, struct checker **checks);

#endif
