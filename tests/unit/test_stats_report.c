/* The stats socket's request parser, histogram buckets, and the shapes of
 * the reports for a known set of counters. */
#include "stats_report.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct request_case {
    const char *in;
    int ret; /* bytes taken, or -EAGAIN / -EPROTO */
    enum stats_cmd cmd;
    int http;
};

static const struct request_case requests[] = {
    {"show stats\n", 11, STATS_CMD_STATS, 0},
    {"show stats json\r\n", 17, STATS_CMD_STATS_JSON, 0},
    {"show stats  \n", 13, STATS_CMD_STATS, 0},
    {"show servers\nshow stats\n", 13, STATS_CMD_SERVERS, 0},
    {"show conns\n", 11, STATS_CMD_CONNS, 0},
    {"show metrics\n", 13, STATS_CMD_METRICS, 0},
    {"help\n", 5, STATS_CMD_HELP, 0},
    {"show everything\n", 16, STATS_CMD_UNKNOWN, 0},
    {"\n", 1, STATS_CMD_UNKNOWN, 0},
    {"show stats", -EAGAIN, 0, 0},
    {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 34, STATS_CMD_METRICS, 1},
    {"GET /metrics?x=1 HTTP/1.0\r\n\r\n", 29, STATS_CMD_METRICS, 1},
    {"GET /stats.json HTTP/1.1\n\n", 26, STATS_CMD_STATS_JSON, 1},
    {"GET /nope HTTP/1.1\r\n\r\n", 22, STATS_CMD_NOT_FOUND, 1},
    {"GET /metrics HTTP/1.1\r\nHost: x\r\n", -EAGAIN, 0, 1},
    {"HEAD /metrics HTTP/1.1\r\n\r\n", 26, STATS_CMD_METRICS, STATS_HTTP_HEAD},
    {"HEAD /stats.json HTTP/1.0\r\n\r\n", 29, STATS_CMD_STATS_JSON, STATS_HTTP_HEAD},
    {"POST /metrics HTTP/1.1\r\n\r\n", -EPROTO, 0, 1},
    {"GET  HTTP/1.1\r\n\r\n", -EPROTO, 0, 1},
    {"GET / HTTP/1.1\r\n\r\n", 18, STATS_CMD_PAGE, 1},
    /* Not exactly METHOD SP TARGET SP HTTP/1.0|1.1: 400, never a command. */
    {"GET /ready HTTP/2.0\r\n\r\n", -EPROTO, 0, 1},
    {"GET /ready\r\n", -EPROTO, 0, 1},
    {"GET /ready HTTP/1.1x\r\n\r\n", -EPROTO, 0, 1},
    {"HEAD /ready HTTP/2\r\n\r\n", -EPROTO, 0, 1},
    {"GET /ready  HTTP/1.1\r\n\r\n", -EPROTO, 0, 1},
    {"GET ready HTTP/1.1\r\n\r\n", -EPROTO, 0, 1},
    {"GET /ready HTTP/1.1 x\r\n\r\n", -EPROTO, 0, 1},
    {"get /ready HTTP/1.1\r\n\r\n", -EPROTO, 0, 1},
    {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", -EPROTO, 0, 1},
    {"OPTIONS * HTTP/1.1\r\n\r\n", -EPROTO, 0, 1},
    {"GET /re\tady HTTP/1.1\r\n\r\n", -EPROTO, 0, 1},
    {"SHOW STATS\n", 11, STATS_CMD_UNKNOWN, 0},
    {"set server a/b\tstate drain\n", 27, STATS_CMD_WRITE, 0},
    {"show stats\r junk\n", -EPROTO, 0, 0},
    {"show stats\x7f\n", -EPROTO, 0, 0},
    {"show stats\x1b[A\n", -EPROTO, 0, 0},
};

/* A NUL inside a command line would cut it short where a C string ends:
 * refused, whatever follows. */
Test(stats_report, control_bytes_refuse_a_line)
{
    static const char with_nul[] = "set server web/s2\0junk state drain\n";
    static const char weight_nul[] = "set server web/s2 weight 5\0\n";
    enum stats_cmd cmd = STATS_CMD_UNKNOWN;
    int http = -1;

    cr_assert_eq(stats_request_parse(with_nul, sizeof(with_nul) - 1, &cmd, &http), -EPROTO);
    cr_assert_eq(http, STATS_LINE);
    cr_assert_eq(stats_request_parse(weight_nul, sizeof(weight_nul) - 1, &cmd, &http), -EPROTO);
}

Test(stats_report, requests)
{
    for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
        const struct request_case *t = &requests[i];
        enum stats_cmd cmd = STATS_CMD_UNKNOWN;
        int http = -1;
        int ret = stats_request_parse(t->in, strlen(t->in), &cmd, &http);
        cr_assert_eq(ret, t->ret, "case %zu: got %d want %d", i, ret, t->ret);
        if (ret > 0) {
            cr_assert_eq(cmd, t->cmd, "case %zu: command %d want %d", i, cmd, t->cmd);
            cr_assert_eq(http, t->http, "case %zu", i);
        }
    }
}

Test(stats_report, request_too_long)
{
    char buf[5000];
    enum stats_cmd cmd;
    int http;

    memset(buf, 'a', sizeof(buf));
    cr_assert_eq(stats_request_parse(buf, sizeof(buf), &cmd, &http), -EPROTO);
    cr_assert_eq(stats_request_parse(buf, 4095, &cmd, &http), -EAGAIN);
}

Test(stats_report, buckets)
{
    /* Bucket i holds values up to 2^(i+4) us. */
    cr_assert_eq(stats_bucket(0), 0);
    cr_assert_eq(stats_bucket(16), 0);
    cr_assert_eq(stats_bucket(17), 1);
    cr_assert_eq(stats_bucket(32), 1);
    cr_assert_eq(stats_bucket(33), 2);
    cr_assert_eq(stats_bucket(1000000), 16); /* 1 s <= 2^20 us */
    cr_assert_eq(stats_bucket(UINT64_MAX), STATS_BUCKETS - 1);
}

static char *render(void (*fn)(const struct stats_report *, FILE *), const struct stats_report *r)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    fn(r, f);
    fclose(f);
    return text;
}

static struct stats_report *sample(void)
{
    struct stats_report *r = calloc(1, sizeof(*r));

    r->version = "0.1.0";
    r->io = "epoll";
    r->n_workers = 1;
    r->generation = 3;
    r->stats_busy = 2;
    r->names.n_listeners = 1;
    strcpy(r->names.listener[0], "tls\"in");
    r->names.n_backends = 1;
    strcpy(r->names.backend[0], "kong");
    r->names.n_servers = 1;
    strcpy(r->names.server[0].key, "10.0.0.1:8443");
    atomic_store(&r->sum.l[0].accepted, 7);
    atomic_store(&r->sum.l[0].closed, 5);
    atomic_store(&r->sum.l[0].ends[END_CLIENT_CLOSED], 5);
    atomic_store(&r->sum.b[0].conns, 7);
    stats_hist_add(&r->sum.b[0].connect, 20);
    stats_hist_add(&r->sum.b[0].connect, 3000000);
    atomic_store(&r->sum.s[0].fails[FAIL_REFUSED], 2);
    r->server_up[0] = 1;
    r->server_weight[0] = r->server_weight_cfg[0] = 1;
    return r;
}

Test(stats_report, prometheus_samples)
{
    struct stats_report *r = sample();
    char *text = render(stats_report_prometheus, r);

    cr_assert(
        strstr(text, "ringrelay_listener_accepted_connections_total{listener=\"tls\\\"in\"} 7\n"));
    cr_assert(strstr(text, "ringrelay_listener_active_connections{listener=\"tls\\\"in\"} 2\n"));
    cr_assert(strstr(text, "ringrelay_listener_connections_ended_total{listener=\"tls\\\"in\","
                           "reason=\"client_closed\"} 5\n"));
    cr_assert(strstr(
        text, "ringrelay_backend_connect_seconds_bucket{backend=\"kong\",le=\"0.000016\"} 0\n"));
    cr_assert(strstr(
        text, "ringrelay_backend_connect_seconds_bucket{backend=\"kong\",le=\"0.000032\"} 1\n"));
    cr_assert(
        strstr(text, "ringrelay_backend_connect_seconds_bucket{backend=\"kong\",le=\"+Inf\"} 2\n"));
    cr_assert(strstr(text, "ringrelay_backend_connect_seconds_sum{backend=\"kong\"} 3.000020\n"));
    cr_assert(strstr(text, "ringrelay_server_connect_failures_total{backend=\"kong\","
                           "server=\"10.0.0.1:8443\",cause=\"refused\"} 2\n"));
    cr_assert(strstr(text, "ringrelay_server_up{backend=\"kong\",server=\"10.0.0.1:8443\"} 1\n"));
    cr_assert(strstr(text, "# TYPE ringrelay_stats_clients_refused_total counter\n"
                           "ringrelay_stats_clients_refused_total 2\n"));
    free(text);
    free(r);
}

Test(stats_report, json_escapes_and_nests)
{
    struct stats_report *r = sample();
    char *text = render(stats_report_json, r);

    cr_assert(strstr(text, "\"name\":\"tls\\\"in\""), "%s", text);
    cr_assert(
        strstr(text,
               "\"servers\":[{\"name\":\"10.0.0.1:8443\",\"server_name\":\"\",\"state\":\"up\""),
        "%s", text);
    cr_assert(strstr(text, "\"connect_failures\":{\"refused\":2,"), "%s", text);
    cr_assert(strstr(text, "\"reload_failures\":0,\"stats_busy\":2,"), "%s", text);
    cr_assert_eq(text[strlen(text) - 1], '\n');
    free(text);
    free(r);
}

Test(stats_report, text_shows_refused_stats_clients)
{
    struct stats_report *r = sample();
    char *text = render(stats_report_text, r);

    cr_assert(strstr(text, "  stats clients refused 2\n"), "%s", text);
    free(text);
    r->stats_busy = 0;
    text = render(stats_report_text, r);
    cr_assert(!strstr(text, "stats clients refused"), "%s", text);
    free(text);
    free(r);
}
