/* The runtime API's command lines: words split on spaces, checked in
 * order, the first problem named. */
#include "admin_cmd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORDS_MAX 8

struct words {
    const char *w[WORDS_MAX];
    size_t len[WORDS_MAX];
    int n;
};

/* Splits line into words; more than WORDS_MAX make n WORDS_MAX + 1. */
static void split(const char *line, size_t n, struct words *ws)
{
    size_t i = 0;

    ws->n = 0;
    while (i < n) {
        size_t start;
        while (i < n && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i == n)
            break;
        if (ws->n == WORDS_MAX) {
            ws->n++;
            return;
        }
        start = i;
        while (i < n && line[i] != ' ' && line[i] != '\t')
            i++;
        ws->w[ws->n] = line + start;
        ws->len[ws->n++] = i - start;
    }
}

static int is(const struct words *ws, int i, const char *word)
{
    return i < ws->n && ws->len[i] == strlen(word) && memcmp(ws->w[i], word, ws->len[i]) == 0;
}

/* Copies word i into out (cap bytes with its NUL). Returns 0, or -1 if it
 * does not fit. */
static int copy(const struct words *ws, int i, char *out, size_t cap)
{
    if (ws->len[i] >= cap)
        return -1;
    memcpy(out, ws->w[i], ws->len[i]);
    out[ws->len[i]] = '\0';
    return 0;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes the problem into err; returns -EINVAL. */
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): a false report
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

#define SERVER_USAGE "BACKEND/SERVER (as show servers prints them)"

/* Word i as BACKEND/SERVER. */
static int server_ref(const struct words *ws, int i, struct admin_cmd *out, char *err,
                      size_t errlen)
{
    const char *slash;
    char ref[CONFIG_NAME_MAX + CONFIG_PATH_MAX + 8];

    if (i >= ws->n)
        return fail(err, errlen, "%s", "expected " SERVER_USAGE);
    if (copy(ws, i, ref, sizeof(ref)) < 0)
        return fail(err, errlen, "%s", "server name too long: expected " SERVER_USAGE);
    slash = strchr(ref, '/');
    if (!slash || slash == ref || !slash[1])
        return fail(err, errlen, "'%s': expected " SERVER_USAGE, ref);
    if ((size_t)(slash - ref) >= sizeof(out->backend) || strlen(slash + 1) >= sizeof(out->server))
        return fail(err, errlen, "'%s': backend or server name too long", ref);
    memcpy(out->backend, ref, (size_t)(slash - ref));
    out->backend[slash - ref] = '\0';
    memcpy(out->server, slash + 1, strlen(slash + 1) + 1);
    return 0;
}

/* Word i as a weight, 0 to ADMIN_WEIGHT_MAX. */
static int weight(const struct words *ws, int i, uint32_t *out, char *err, size_t errlen)
{
    char num[16], *end;
    unsigned long v;

    if (i >= ws->n || copy(ws, i, num, sizeof(num)) < 0)
        return fail(err, errlen, "%s", "expected a weight from 0 to 1000");
    errno = 0;
    v = strtoul(num, &end, 10);
    if (num[0] < '0' || num[0] > '9' || *end || errno || v > ADMIN_WEIGHT_MAX)
        return fail(err, errlen, "weight '%s': expected a whole number from 0 to 1000", num);
    *out = (uint32_t)v;
    return 0;
}

static int set_server(const struct words *ws, struct admin_cmd *out, char *err, size_t errlen)
{
    if (server_ref(ws, 2, out, err, errlen) < 0)
        return -EINVAL;
    if (is(ws, 3, "state") && ws->n == 5) {
        out->op = ADMIN_SERVER_STATE;
        for (int a = 0; a < 3; a++)
            if (is(ws, 4, server_admin_name[a])) {
                out->state = (enum server_admin)a;
                return 0;
            }
        return fail(err, errlen, "%s", "expected state ready, drain or maint");
    }
    if (is(ws, 3, "weight") && ws->n == 5) {
        out->op = ADMIN_SERVER_WEIGHT;
        return weight(ws, 4, &out->weight, err, errlen);
    }
    return fail(err, errlen, "%s",
                "expected set server BACKEND/SERVER state ready|drain|maint, or weight N");
}

int admin_cmd_is_write(const char *line, size_t n)
{
    struct words ws;

    split(line, n, &ws);
    return is(&ws, 0, "set") || is(&ws, 0, "shutdown") || is(&ws, 0, "disable") ||
           is(&ws, 0, "enable");
}

int admin_cmd_parse(const char *line, size_t n, struct admin_cmd *out, char *err, size_t errlen)
{
    struct words ws;

    memset(out, 0, sizeof(*out));
    split(line, n, &ws);
    if (is(&ws, 0, "set")) {
        if (!is(&ws, 1, "server"))
            return fail(err, errlen, "%s", "expected set server BACKEND/SERVER ...");
        return set_server(&ws, out, err, errlen);
    }
    if (is(&ws, 0, "shutdown")) {
        if (!is(&ws, 1, "sessions") || !is(&ws, 2, "server") || ws.n != 4)
            return fail(err, errlen, "%s", "expected shutdown sessions server BACKEND/SERVER");
        out->op = ADMIN_SHUTDOWN_SESSIONS;
        return server_ref(&ws, 3, out, err, errlen);
    }
    if (is(&ws, 0, "disable") || is(&ws, 0, "enable")) {
        const char *verb = is(&ws, 0, "disable") ? "disable" : "enable";
        if (!is(&ws, 1, "listener") || ws.n != 3)
            return fail(err, errlen, "expected %s listener NAME", verb);
        if (copy(&ws, 2, out->listener, sizeof(out->listener)) < 0)
            return fail(err, errlen, "%s", "listener name too long");
        out->op = verb[0] == 'd' ? ADMIN_LISTENER_DISABLE : ADMIN_LISTENER_ENABLE;
        return 0;
    }
    return fail(err, errlen, "%s", "unknown command; try: help");
}
