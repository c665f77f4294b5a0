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

/* SIGHUP: reads the file again. A bad one changes nothing; a good one goes
 * to the workers for new connections, while open ones finish on the
 * configuration they started with. Returns 0, or -1 when refused. */
int reload_apply(struct process *r, struct checker **checks);

/* A name's addresses changed: the running configuration (the text it was
 * read from, not the file as it may be now) made again with the servers
 * the names have now, and handed over as a reload would, health and
 * runtime state kept. Returns 0, or -1 (logged) when it could not be. */
int reload_resolved(struct process *r, struct checker **checks);

#endif
