/* sink: accepts any number of connections, strips a leading PROXY v1/v2
 * header from each, and discards and counts everything else. */
#include "pp_strip.h"
#include "tool.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define READ_MAX (1 << 20)
/* Reads per ready event, so one busy connection cannot starve the others. */
#define READS_PER_EVENT 8

struct sink_conn {
    struct tool_watch w; /* first: tool_server_drop() frees the block */
    bool in_header;
    struct pp_strip pp;
};

struct sink {
    struct tool_server srv; /* first: the server's callbacks get &srv */
    struct tool_addr addr;
    const char *stats_path;
    bool copy;
};

static char read_buf[READ_MAX];

static const char usage[] =
    "usage: sink [options] ADDR:PORT\n"
    "\n"
    "Listens on ADDR:PORT, accepts any number of connections, strips a leading\n"
    "PROXY protocol v1 line or v2 header from each, and discards the rest. On\n"
    "SIGTERM or SIGINT (or after DURATION) it writes one line and exits; SIGUSR1\n"
    "writes the same line without exiting:\n"
    "  accepted=A open=O hdr_v1=N hdr_v2=N hdr_none=N hdr_bad=N bytes=B errors=E\n"
    "(bytes counts payload only, headers excluded).\n"
    "\n"
    "  -s, --stats-file PATH  write the line to PATH (replaced atomically)\n"
    "                         instead of stdout\n"
    "  -d, --duration DUR     exit after this long anyway (default 3600s)\n"
    "      --copy             copy payload into memory instead of letting the\n"
    "                         kernel drop it (MSG_TRUNC)\n"
    "  -h, --help\n";

/* Fills s from argv. Returns 0, or -1 after printing why. */
static int parse_args(struct sink *s, int argc, char **argv)
{
    static const struct tool_opt opts[] = {
        {"stats-file", 's', TOOL_OPT_STRING, offsetof(struct sink, stats_path), 0, 0},
        {"duration", 'd', TOOL_OPT_SECONDS, offsetof(struct sink, srv.duration), 0, 0},
        {"copy", 0, TOOL_OPT_FLAG, offsetof(struct sink, copy), 0, 0},
        {NULL, 0, 0, 0, 0, 0}};

    s->srv.duration = 3600;
    return tool_parse_args(argc, argv, opts, s, usage, &s->addr);
}

/* Writes the counters as one line to the stats file or stdout. */
static void stats_write(struct tool_server *srv)
{
    const struct sink *s = (const struct sink *)srv;
    char tmp[4096];
    FILE *f;

    if (!s->stats_path) {
        tool_stats_print(stdout, &srv->st);
        return;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", s->stats_path);
    f = fopen(tmp, "w");
    if (!f) {
        perror("sink: stats file");
        return;
    }
    tool_stats_print(f, &srv->st);
    if (fclose(f) != 0 || rename(tmp, s->stats_path) == -1)
        perror("sink: stats file");
}

static struct tool_watch *conn_new(struct tool_server *srv, int fd)
{
    struct sink_conn *c = calloc(1, sizeof(*c));

    (void)srv;
    (void)fd;
    if (!c)
        return NULL;
    c->in_header = true;
    pp_strip_init(&c->pp);
    return &c->w;
}

/* Reads the start of a stream and feeds it to the header stripper. Returns
 * the bytes read (0 at end of stream) or -errno. */
static ssize_t read_header(struct sink *s, struct sink_conn *c)
{
    ssize_t n = recv(c->w.fd, read_buf, READ_MAX, 0);
    size_t used;
    enum pp_result r;

    if (n <= 0)
        return n == 0 ? 0 : -errno;
    r = pp_strip_feed(&c->pp, (const uint8_t *)read_buf, (size_t)n, &used);
    if (r == PP_MORE)
        return n;
    c->in_header = false;
    pp_count(&s->srv.st.hdr, &c->pp, r);
    s->srv.st.bytes += (size_t)n - used + (r == PP_NONE ? c->pp.have : 0);
    return n;
}

/* Drains a readable connection; closes it at end of stream or on error. */
static void conn_read(struct tool_server *srv, struct tool_watch *w, uint32_t events)
{
    struct sink *s = (struct sink *)srv;
    struct sink_conn *c = (struct sink_conn *)w;
    int flags = s->copy ? 0 : MSG_TRUNC;

    (void)events;
    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t n;

        if (c->in_header)
            n = read_header(s, c);
        else if ((n = recv(w->fd, read_buf, READ_MAX, flags)) > 0)
            srv->st.bytes += (size_t)n;
        else if (n == -1)
            n = -errno;
        if (n == -EAGAIN || n == -EINTR)
            return;
        if (n <= 0) {
            tool_server_drop(srv, w, (int)n);
            return;
        }
    }
}

int main(int argc, char **argv)
{
    static struct sink s = {
        .srv = {.conn_new = conn_new, .conn_ready = conn_read, .report = stats_write}};

    if (parse_args(&s, argc, argv) != 0)
        return 2;
    return tool_server_serve(&s.srv, &s.addr, "sink", argv[argc - 1]);
}
