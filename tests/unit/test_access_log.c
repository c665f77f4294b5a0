/* Access log lines: every field in text and JSON, absent values, and
 * bytes from the wire (SNI) that must not break a line. */
#include "access_log.h"
#include "registry.h"
#include "stats.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static struct registry_names *names;

static void setup(void)
{
    names = calloc(1, sizeof(*names));
    strcpy(names->listener[0], "public");
    strcpy(names->backend[1], "kong");
    strcpy(names->server[2].key, "10.0.0.5:8443");
}

static void teardown(void)
{
    free(names);
}

static struct access_record sample(void)
{
    struct access_record r = {0};

    r.start_us = 1000000;
    r.end_us = 1000000 + 1755;
    r.conn_id = 7;
    r.worker = 1;
    r.end = END_BACKEND_CLOSED;
    r.flags = ACCESS_HAS_DIRECT | ACCESS_HAS_BACKEND | ACCESS_HAS_SERVER;
    r.listener = 0;
    r.backend = 1;
    r.server = 2;
    r.t_open = 55;
    r.t_first = 840;
    r.bytes[0] = 517;
    r.bytes[1] = 4650;
    addr_parse("192.0.2.9:5555", &r.client);
    addr_parse("10.0.0.2:41238", &r.direct);
    strcpy(r.sni, "api.example.com");
    strcpy(r.alpn, "h2");
    return r;
}

/* 2026-11-26T04:17:41.000Z: the wall clock 1 s after the monotonic zero. */
#define OFFSET_US (1795666661LL * 1000000 - 1000000)

Test(access_log, text_line, .init = setup, .fini = teardown)
{
    struct access_record r = sample();
    char buf[1024];
    size_t n = access_log_format(&r, ACCESS_LOG_TEXT, 0xe8a162653dc06a9cULL, OFFSET_US, names, buf,
                                 sizeof(buf));

    buf[n] = '\0';
    cr_assert_str_eq(buf, "2026-11-26T04:17:41.000Z id=e8a162653dc06a9c-1.7 client=192.0.2.9:5555 "
                          "peer=10.0.0.2:41238 listener=public sni=api.example.com alpn=h2 "
                          "backend=kong server=10.0.0.5:8443 connect_ms=0.055 "
                          "first_byte_ms=0.785 duration_ms=1.755 from_client=517 "
                          "from_server=4650 end=backend_closed\n");
}

Test(access_log, json_line_with_absent_values, .init = setup, .fini = teardown)
{
    struct access_record r = sample();
    char buf[1024];
    size_t n;

    r.flags = 0;
    r.t_open = r.t_first = 0;
    r.sni[0] = r.alpn[0] = '\0';
    r.end = END_CONNECT_FAILED;
    n = access_log_format(&r, ACCESS_LOG_JSON, 1, OFFSET_US, names, buf, sizeof(buf));
    buf[n] = '\0';
    cr_assert_str_eq(buf, "{\"time\":\"2026-11-26T04:17:41.000Z\",\"id\":\"0000000000000001-1.7\","
                          "\"client\":\"192.0.2.9:5555\",\"peer\":null,\"listener\":\"public\","
                          "\"sni\":null,\"alpn\":null,\"backend\":null,\"server\":null,"
                          "\"connect_ms\":null,\"first_byte_ms\":null,\"duration_ms\":1.755,"
                          "\"from_client\":517,\"from_server\":4650,\"end\":\"connect_failed\"}\n");
}

Test(access_log, wire_bytes_escaped_and_line_cut, .init = setup, .fini = teardown)
{
    struct access_record r = sample();
    char buf[1024], small[64];
    size_t n;

    strcpy(r.sni, "a b\"\n\\");
    n = access_log_format(&r, ACCESS_LOG_JSON, 1, OFFSET_US, names, buf, sizeof(buf));
    buf[n] = '\0';
    cr_assert(strstr(buf, "\"sni\":\"a\\u0020b\\\"\\u000a\\\\\""), "%s", buf);
    n = access_log_format(&r, ACCESS_LOG_TEXT, 1, OFFSET_US, names, buf, sizeof(buf));
    buf[n] = '\0';
    cr_assert(strstr(buf, " sni=a\\x20b\"\\x0a\\ "), "%s", buf);
    cr_assert_eq(strchr(buf, '\n'), buf + n - 1, "one line");
    n = access_log_format(&r, ACCESS_LOG_TEXT, 1, OFFSET_US, names, small, sizeof(small));
    cr_assert_eq(n, sizeof(small), "cut to the buffer");
    cr_assert_eq(small[n - 1], '\n', "still ends the line");
}

/* The longest values the record holds, every byte escaped, still make one
 * whole JSON object in the writer's line (2048 bytes). */
Test(access_log, longest_json_line_is_whole, .init = setup, .fini = teardown)
{
    struct access_record r = sample();
    char buf[2048];
    size_t n;

    memset(r.sni, 0x01, sizeof(r.sni) - 1);
    r.sni[sizeof(r.sni) - 1] = '\0';
    memset(r.alpn, 0x7f, sizeof(r.alpn) - 1);
    r.alpn[sizeof(r.alpn) - 1] = '\0';
    n = access_log_format(&r, ACCESS_LOG_JSON, 1, OFFSET_US, names, buf, sizeof(buf));
    cr_assert_lt(n, sizeof(buf), "cut at %zu bytes", n);
    cr_assert_eq(buf[n - 2], '}', "the object is closed");
    cr_assert_eq(buf[n - 1], '\n');
}
