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

static int ask(const char *path, const char *cmd)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    char buf[16384];
    ssize_t n;
    int fd;

    if (strlen(path) >= sizeof(a.sun_path)) {
        fprintf(stderr, "ringrelay stats: %s: path too long\n", path);
        return 2;
    }
    memcpy(a.sun_path, path, strlen(path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1 || connect(fd, (struct sockaddr *)&a, sizeof(a)) == -1) {
        fprintf(stderr, "ringrelay stats: %s: %s (is the relay running with stats_socket set?)\n",
                path, strerror(errno));
        if (fd != -1)
            close(fd);
        return 1;
    }
    if (send(fd, cmd, strlen(cmd), MSG_NOSIGNAL) != (ssize_t)strlen(cmd)) {
        fprintf(stderr, "ringrelay stats: %s: %s\n", path, strerror(errno));
        close(fd);
        return 1;
    }
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        fwrite(buf, 1, (size_t)n, stdout);
    close(fd);
    if (n < 0) {
        fprintf(stderr, "ringrelay stats: %s: %s\n", path, strerror(errno));
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
    return ask(path, cmd);
}
