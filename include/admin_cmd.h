/* The stats socket's write commands (the runtime API): parsed here, done
 * by the process. Pure: no I/O, no allocation.
 *
 *   set server BACKEND/SERVER state ready|drain|maint
 *   set server BACKEND/SERVER weight N
 *   shutdown sessions server BACKEND/SERVER
 *   disable listener NAME
 *   enable listener NAME
 *
 * SERVER is ADDR:PORT (or unix:/path) as show servers prints it, or the
 * name the server has in the configuration. */
#ifndef RINGRELAY_ADMIN_CMD_H
#define RINGRELAY_ADMIN_CMD_H

#include "config.h"
#include "pool.h"

#include <stddef.h>
#include <stdint.h>

#define ADMIN_WEIGHT_MAX 1000 /* as the configuration's weight */

enum admin_op {
    ADMIN_SERVER_STATE,
    ADMIN_SERVER_WEIGHT,
    ADMIN_SHUTDOWN_SESSIONS,
    ADMIN_LISTENER_DISABLE,
    ADMIN_LISTENER_ENABLE,
};

struct admin_cmd {
    enum admin_op op;
    char backend[CONFIG_NAME_MAX];
    char server[CONFIG_PATH_MAX + 8]; /* as show servers prints it, or a name */
    char listener[CONFIG_NAME_MAX];
    enum server_admin state;
    uint32_t weight;
};

/* Whether line (n bytes, no newline) asks for a change: its first word is
 * set, shutdown, disable or enable. */
int admin_cmd_is_write(const char *line, size_t n);

/* Parses one write command. Returns 0, or -EINVAL with one line in err
 * that names what is wrong and how the command is spelled. */
int admin_cmd_parse(const char *line, size_t n, struct admin_cmd *out, char *err, size_t errlen);

#endif
