/* The command line: what to do (run, check, dump, help, version), which
 * file, and the flags that set configuration keys. A flag is kept as the
 * text given: the configuration table parses, bounds and checks it, as it
 * does the file's keys (config_load). Pure: no I/O. */
#ifndef RINGRELAY_OPTIONS_H
#define RINGRELAY_OPTIONS_H

#include "config.h"

#include <stddef.h>
#include <stdio.h>

#define OPTIONS_MAX_ARGS 256 /* flags that set keys, on one command line */

struct options {
    const char *config_path; /* -c FILE, or the default file; NULL: the flags describe it */
    int config_check;        /* -t: check the file and exit */
    int config_dump;         /* --dump-config: print the effective file and exit */
    struct config_arg args[OPTIONS_MAX_ARGS];
    int n_args;
};

enum options_result { OPTIONS_RUN = 0, OPTIONS_HELP = 1, OPTIONS_VERSION = 2 };

/* Fills *o from argv; every flag's value is checked against its key.
 * Returns OPTIONS_RUN, HELP or VERSION, or -EINVAL with one line naming the
 * offending flag in err. */
int options_parse(struct options *o, int argc, char *const argv[], char *err, size_t errlen);

/* --help. */
void options_usage(FILE *out);

#endif
