/* ringrelay stats: asks the stats socket and prints the answer. */
#include "stats_client.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/ringrelay/stats.sock"

static const char usage[] =
    "usage: ringrelay stats [--socket PATH] [--json | --prometheus | --servers | --conns]\n"
    "Reads the counters of a running relay from its stats socket (default " DEFAULT_SOCKET ").\n";

/* Sends cmd to the stats socket at path and copies the answer to out
 * (with the first cap - 1 bytes also in first, NUL-terminated, if given).
 * Returns 0, or the exit status after saying what failed (as me). */
static int ask(const char *me, const char *path, const char *cmd, FILE *out, char *first,
               size_t cap)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    char buf[16384];
    size_t have = 0;
    ssize_t n;
    int fd;

    if (strlen(path) >= sizeof(a.sun_path)) {
        fprintf(stderr, "%s: %s: path too long\n", me, path);
        return 2;
    }
    memcpy(a.sun_path, path, strlen(path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1 || connect(fd, (struct sockaddr *)&a, sizeof(a)) == -1) {
        fprintf(stderr, "%s: %s: %s (is the relay running with stats_socket set?)\n", me, path,
                strerror(errno));
        if (fd != -1)
            close(fd);
        return 1;
    }
    if (send(fd, cmd, strlen(cmd), MSG_NOSIGNAL) != (ssize_t)strlen(cmd)) {
        fprintf(stderr, "%s: %s: %s\n", me, path, strerror(errno));
        close(fd);
        return 1;
    }
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        if (out)
            fwrite(buf, 1, (size_t)n, out);
        for (ssize_t i = 0; first && i < n && have + 1 < cap; i++)
            first[have++] = buf[i];
    }
    if (first)
        first[have] = '\0';
    close(fd);
    if (n < 0) {
        fprintf(stderr, "%s: %s: %s\n", me, path, strerror(errno));
        return 1;
    }
    return 0;
}

int stats_client_main(int argc, char **argv)
{
    const char *path = DEFAULT_SOCKET, *cmd = "show stats\n";

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            cmd = "show stats json\n";
        else if (strcmp(argv[i], "--prometheus") == 0)
            cmd = "show metrics\n";
        else if (strcmp(argv[i], "--servers") == 0)
            cmd = "show servers\n";
        else if (strcmp(argv[i], "--conns") == 0)
            cmd = "show conns\n";
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "ringrelay stats: %s: unknown option\n%s", argv[i], usage);
            return 2;
        }
    }
    return ask("ringrelay stats", path, cmd, stdout, NULL, 0);
}

static const char server_usage[] =
    "usage: ringrelay server [--socket PATH] drain|ready|maint BACKEND/SERVER\n"
    "       ringrelay server [--socket PATH] weight BACKEND/SERVER N\n"
    "Sets a server's state or weight in a running relay through its stats socket "
    "(default " DEFAULT_SOCKET "), which needs stats_socket_level: admin. SERVER is ADDR:PORT as\n"
    "ringrelay stats --servers prints it, or the server's name. Prints the relay's one-line\n"
    "answer (a line per server a name stands for); exits 0 when all are ok, 1 when not.\n";

int server_client_main(int argc, char **argv)
{
    const char *path = DEFAULT_SOCKET, *words[3] = {NULL, NULL, NULL};
    char cmd[1024], answer[16384];
    const char *line, *next;
    int ok = 1;
    int n = 0, ret;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(server_usage, stdout);
            return 0;
        } else if (argv[i][0] == '-' || n == 3) {
            fprintf(stderr, "ringrelay server: %s: unexpected\n%s", argv[i], server_usage);
            return 2;
        } else
            words[n++] = argv[i];
    }
    if (n == 2 && (strcmp(words[0], "drain") == 0 || strcmp(words[0], "ready") == 0 ||
                   strcmp(words[0], "maint") == 0))
        ret = snprintf(cmd, sizeof(cmd), "set server %s state %s\n", words[1], words[0]);
    else if (n == 3 && strcmp(words[0], "weight") == 0)
        ret = snprintf(cmd, sizeof(cmd), "set server %s weight %s\n", words[1], words[2]);
    else {
        fprintf(stderr,
                "ringrelay server: expected drain|ready|maint BACKEND/SERVER, or weight "
                "BACKEND/SERVER N\n%s",
                server_usage);
        return 2;
    }
    if (ret < 0 || (size_t)ret >= sizeof(cmd) || strchr(words[1], '\n') ||
        (words[2] && strchr(words[2], '\n'))) {
        fprintf(stderr, "ringrelay server: %s: too long, or not one line\n", words[1]);
        return 2;
    }
    ret = ask("ringrelay server", path, cmd, NULL, answer, sizeof(answer));
    if (ret)
        return ret;
    if (!answer[0]) {
        fprintf(stderr, "ringrelay server: no answer\n");
        return 1;
    }
    /* One line per server the name stands for (a DNS name's addresses). */
    for (line = answer; *line; line = next) {
        int len = (int)strcspn(line, "\n");
        next = line[len] ? line + len + 1 : line + len;
        if (strncmp(line, "ok:", 3) == 0) {
            printf("%.*s\n", len, line);
        } else {
            fprintf(stderr, "ringrelay server: %.*s\n", len, line);
            ok = 0;
        }
    }
    return ok ? 0 : 1;
}
