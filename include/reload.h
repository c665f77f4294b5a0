/* Loading the configuration: at start, and again on SIGHUP. */
#ifndef RINGRELAY_RELOAD_H
#define RINGRELAY_RELOAD_H

#include "checker.h"
#include "process.h"

#include <stddef.h>

/* Reads a whole file (at most 1 MiB) into a NUL-terminated buffer the
 * caller frees. NULL with err filled. */
char *reload_read_file(const char *path, size_t *len, char *err, size_t errlen);

/* A runtime from -c FILE (with the flags over it) or from the flags alone;
 * NULL with err filled. */
struct runtime *reload_load_runtime(const struct options *o, char *err, size_t errlen);

/* SIGHUP: reads the file again. A bad one changes nothing; a good one goes
 * to the workers for new connections, while open ones finish on the
 * configuration they started with. Returns 0, or -1 when refused. */
int reload_apply(struct process *r, struct checker **checks);

#endif
