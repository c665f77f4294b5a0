/* The configuration module's own: the tables of settings (one per
 * section of the file), and the walk that applies a YAML document to them.
 * config_table.c holds the tables, config_walk.c the walk, config_args.c
 * the command line through them, config_dump.c the tables read the other
 * way (--dump-config, and what a reload must keep), and config.c the
 * loading and the rules across keys, over all of them. Nothing outside
 * the config_*.c files includes this. */
#ifndef RINGRELAY_CONFIG_TABLE_H
#define RINGRELAY_CONFIG_TABLE_H

#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

enum kind {
    K_UINT,        /* min..max */
    K_DURATION,    /* milliseconds, min..max */
    K_CHOICE,      /* an int: the index in choices */
    K_NAME,        /* letters, digits, '-', '_', '.' */
    K_HOST,        /* a host name, for SNI */
    K_ROUTE_SNI,   /* a host name or *.suffix */
    K_PATH,        /* an absolute path, or "" */
    K_LOG_PATH,    /* an absolute path, "stderr", or "" */
    K_WORKERS,     /* auto or 1..1024 */
    K_LOG_LEVEL,   /* error..debug */
    K_BINDS,       /* one ADDR:PORT or a list of them */
    K_CIDRS,       /* a list of CIDR ranges: off, count_off, max_elems */
    K_INET_ADDR,   /* one IPV4:PORT or [IPV6]:PORT, or "" for none */
    K_ADDRS,       /* a list of IPV4:PORT or [IPV6]:PORT: off, count_off, max_elems */
    K_TLVS,        /* a list of TLV names and type numbers */
    K_SERVER_ADDR, /* ADDR:PORT or unix:/path */
    K_MAP,         /* a nested section */
    K_SEQ,         /* a list of nested sections */
};

struct section;

struct setting {
    const char *key;
    /* The command-line flag that sets it (NULL: none), with what its value
     * looks like and one line for --help (the default is added to it). */
    const char *flag, *arg, *help;
    size_t off;      /* where the value lands in the section's struct */
    const char *def; /* default, as the text a file would hold; NULL: required */
    const char *const *choices;
    const struct section *sub;   /* K_MAP, K_SEQ */
    size_t count_off, elem_size; /* K_SEQ: where the count lands, element size */
    size_t mark_off;             /* 1 + where to keep the value's position (0: nowhere) */
    enum kind kind;
    uint32_t min, max;
    int max_elems;
    uint8_t grow;      /* K_SEQ: off holds a pointer to an array made to fit */
    uint8_t restart;   /* start-only: a reload keeps the running value, and says so */
    uint8_t describes; /* --listen, --backend, --route: the flag builds the
                        * configuration when there is no file; refused with one */
};

struct section {
    const struct setting *settings;
    size_t size; /* of the struct a mapping of this section fills */
};

/* The top of the file: every setting is below it. */
extern const struct section config_top_section;
extern const char *const config_tlv_names[];
extern const char *const config_level_names[];

/* Where the nodes being walked come from. */
enum origin {
    FROM_FILE,
    FROM_DEFAULT, /* a setting's default, as text */
    FROM_ARGS,    /* the command line: a node's start_mark.index is 1 + the index of
                   * the argument it came from, 0 for structure around them */
};

struct walk {
    yaml_document_t *doc;
    enum origin origin;
    const char *file; /* NULL: no file, the command line describes it all */
    const struct config_arg *args;
    int n_args;
    int cli_words;  /* a broken rule is told in flags (--trusted-source), not keys */
    char path[256]; /* the key path so far: listeners[0].routes[1] */
    char *err;
    size_t errlen;
};

/* Fills w->err with "FILE:LINE:COL: PATH.KEY: message", or for a value from
 * the command line "--FLAG: message". Returns -EINVAL. */
int config_fail(struct walk *w, const yaml_mark_t *m, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Keeps an error to one printable line whatever the input held. */
void config_one_line(char *s);

/* "a, b, c" from a NULL-terminated list of names. */
void config_list_names(const char *const *names, char *buf, size_t cap);

/* Applies one key's value node v to the struct at base. */
int config_apply(struct walk *w, const struct setting *st, yaml_node_t *v, void *base);

/* One mapping against its section's table: known keys once each, required
 * ones present, defaults for the rest. */
int config_walk_section(struct walk *w, const struct section *sec, yaml_node_t *n, void *base);

/* A sequence's elements and their count, in the struct at base. */
char *config_seq_elems(const struct setting *st, const void *base);
int config_seq_count(const struct setting *st, const void *base);

/* Calls fn on every setting of sec and the sections below it, in table
 * order, until fn returns non-zero; returns that. */
int config_each_setting(const struct section *sec, int (*fn)(const struct setting *, void *),
                        void *arg);

/* The setting with this key that has a flag; NULL if none. */
const struct setting *config_setting_by_key(const char *key);

/* Whether some argument of w sets the key of st. */
int config_arg_given(const struct walk *w, const struct setting *st);

/* What --listen, --backend and --route describe, walked into c as if it
 * were a file. */
int config_walk_described(struct walk *w, struct config *c);

/* Refuses --listen, --backend and --route together with a file. */
int config_check_no_file(struct walk *w, int with_file);

/* Puts the flags over the struct at base that sec describes, and over
 * every section below it: a listener's flag sets every listener's key. */
int config_apply_flags(struct walk *w, const struct section *sec, void *base);

#endif
