/* Command-line options: parsed into a read-only struct before anything
 * starts. Pure: no I/O; errors come back as one line in a caller buffer. */
#ifndef RINGRELAY_OPTIONS_H
#define RINGRELAY_OPTIONS_H

#include "config.h"
#include "route.h"

#include <stddef.h>
#include <stdint.h>

struct options {
    union sockaddr_inet listen[CONFIG_MAX_LISTENERS];
    int n_listen;
    union sockaddr_inet backend;
    struct sockaddr_un backend_unix; /* --backend unix:/path */
    enum proxy_version proxy;
    enum proxy_in proxy_in;
    struct cidr trusted[CONFIG_MAX_TRUSTED]; /* who may send an inbound header */
    int n_trusted;
    uint32_t header_timeout_ms;
    uint32_t header_max; /* largest inbound v2 header accepted, bytes */
    struct route routes[CONFIG_MAX_ROUTES]; /* by SNI; --backend is the default */
    int n_routes;
    uint32_t peek_timeout_ms; /* wait this long for a whole ClientHello */
    uint32_t max_per_source;  /* open connections per client address; 0: no limit */
    uint32_t tlvs;            /* TLV_* */
    uint8_t tlv_pass[CONFIG_MAX_TLV_PASS]; /* types copied from a trusted inbound header */
    int n_tlv_pass;
    int workers; /* 0: one per usable CPU */
    enum io_kind io;
    enum splice_mode splice;
    uint32_t connect_timeout_ms;
    uint32_t idle_timeout_ms; /* 0: none */
    uint32_t max_connections; /* 0: fit the open-file limit */
    int log_level;
    const char *stats_socket; /* "": none */
    uint32_t drain_timeout_ms;
    const char *access_log;   /* a path, "stderr", or "": none */
    int access_log_mode;      /* enum access_log_mode */
    int access_log_format;    /* enum access_log_format */
    const char *user, *group; /* "": stay who started it */
    uint64_t given;          /* OPT_* bits: flags on the command line */
    const char *config_path; /* -c FILE; NULL: none given */
    int config_check;        /* -t: check the file and exit */
    int config_dump;         /* --dump-config: print the effective file and exit */
};

/* Bits of options.given, for flags that override a configuration file. */
#define OPT_LISTEN (1ULL << 0)
#define OPT_BACKEND (1ULL << 1)
#define OPT_PROXY (1ULL << 2)
#define OPT_IO (1ULL << 3)
#define OPT_SPLICE (1ULL << 4)
#define OPT_LOG_LEVEL (1ULL << 5)
#define OPT_WORKERS (1ULL << 6)
#define OPT_MAX_CONNECTIONS (1ULL << 7)
#define OPT_CONNECT_TIMEOUT (1ULL << 8)
#define OPT_IDLE_TIMEOUT (1ULL << 9)
#define OPT_PROXY_IN (1ULL << 10)
#define OPT_TRUSTED (1ULL << 11)
#define OPT_HEADER_TIMEOUT (1ULL << 12)
#define OPT_HEADER_MAX (1ULL << 13)
#define OPT_ROUTE (1ULL << 14)
#define OPT_PEEK_TIMEOUT (1ULL << 15)
#define OPT_TLVS (1ULL << 16)
#define OPT_STATS_SOCKET (1ULL << 17)
#define OPT_DRAIN_TIMEOUT (1ULL << 18)
#define OPT_ACCESS_LOG (1ULL << 19)
#define OPT_ACCESS_LOG_MODE (1ULL << 20)
#define OPT_ACCESS_LOG_FORMAT (1ULL << 21)
#define OPT_USER (1ULL << 22)
#define OPT_GROUP (1ULL << 23)
#define OPT_MAX_PER_SOURCE (1ULL << 24)

enum options_result { OPTIONS_RUN = 0, OPTIONS_HELP = 1, OPTIONS_VERSION = 2 };

/* Fills *o with defaults, then applies argv. Returns OPTIONS_RUN, HELP or
 * VERSION, or -EINVAL with one line naming the offending flag in err. */
int options_parse(struct options *o, int argc, char *const argv[], char *err, size_t errlen);

extern const char options_usage[];

#endif
