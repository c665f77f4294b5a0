/* The configuration file: YAML (parsed by libyaml) into struct config, driven
 * by one table of settings per section that gives each key's type, bounds,
 * default and place. Parsing works on text already read: no I/O, no
 * logging; errors come back as one line naming file, line, column and key. */
#ifndef RINGRELAY_CONFIG_H
#define RINGRELAY_CONFIG_H

#include "addr.h"
#include "cidr.h"
#include "clienthello.h"
#include "proxy.h"
#include "proxy_parse.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_DEFAULT_PATH "/etc/ringrelay/ringrelay.yaml"

/* Limits: every one is in the README's table, the example file and the
 * man page. */
#define CONFIG_FILE_MAX (4U << 20) /* bytes in a configuration file */
#define CONFIG_NAME_MAX 64
#define CONFIG_MAX_LISTENERS 16
#define CONFIG_MAX_BINDS 8
#define CONFIG_MAX_TRUSTED 64
#define CONFIG_MAX_ROUTES 16384 /* per listener */
#define CONFIG_MAX_BACKENDS 32
#define CONFIG_MAX_SERVERS 4096       /* per backend */
#define CONFIG_MAX_SERVERS_TOTAL 4096 /* over all backends */
/* Retries per connection, and so the servers one connection tries. */
#define CONFIG_MAX_RETRIES 10
#define CONFIG_MAX_TLV_PASS 16
#define CONFIG_MAX_RESOLVERS 8 /* DNS servers per backend, or for all */
#define CONFIG_HOST_MAX 254    /* a DNS name, with its NUL */
#define CONFIG_PATH_MAX 108    /* sun_path */
/* The most of a stream looked at for a ClientHello. */
#define CONFIG_PEEK_MAX 16384U
/* An inbound v2 header must fit one relay buffer. */
#define CONFIG_HEADER_MAX_LIMIT 16384U

/* TLVs written on the outbound v2 header (tlvs:). */
#define TLV_AUTHORITY 0x01
#define TLV_ALPN 0x02
#define TLV_UNIQUE_ID 0x04
#define TLV_CRC32C 0x08

enum io_kind { IO_AUTO, IO_URING, IO_EPOLL };
enum splice_mode { SPLICE_AUTO, SPLICE_NEVER, SPLICE_ALWAYS };
enum balance { BALANCE_ROUND_ROBIN, BALANCE_LEAST_CONN, BALANCE_CLIENT_IP_HASH };
/* CHECK_AUTO, the default, is resolved at load: proxy_local for a backend
 * that is sent PROXY headers, tcp for one that is not. */
enum check_mode { CHECK_TCP, CHECK_PROXY_LOCAL, CHECK_TLS, CHECK_OFF, CHECK_AUTO };
enum access_log_mode { ACCESS_LOG_ALL, ACCESS_LOG_ERRORS, ACCESS_LOG_OFF };
enum access_log_format { ACCESS_LOG_TEXT, ACCESS_LOG_JSON };
/* What clients of the stats socket may do: read, or also change servers
 * and listeners (set server, shutdown sessions, disable listener). */
enum stats_level { STATS_LEVEL_READ, STATS_LEVEL_ADMIN };

/* One line per finished connection. */
struct config_access_log {
    char path[CONFIG_PATH_MAX]; /* a file, "stderr", or "" for none */
    enum access_log_mode mode;
    enum access_log_format format;
};

/* The admin HTTP listener (/ready, /metrics, /stats.json). */
struct config_admin {
    union sockaddr_inet listen; /* sa_family 0: none */
    struct cidr allow[CONFIG_MAX_TRUSTED];
    int n_allow;
};

/* Where a value came from, for errors found after the walk. */
struct config_mark {
    int line, col; /* 1-based; 0: not from the file */
};

struct config_server {
    char name[CONFIG_NAME_MAX]; /* "": none; the runtime API then knows it by its address */
    int is_unix;
    /* A DNS name ("" for an address): in the file, inet holds only the
     * port; in a runtime, the server is one of the name's addresses, or
     * (sa_family 0) stands for a name that has none yet, and stays down. */
    char host[CONFIG_HOST_MAX];
    union sockaddr_inet inet;
    char path[CONFIG_PATH_MAX]; /* for unix: servers */
    uint32_t weight;
    uint32_t max_connections; /* 0: no limit */
};

struct config_health {
    enum check_mode mode;
    uint32_t interval_ms, timeout_ms;
    uint32_t rise, fall;
};

struct config_backend {
    char name[CONFIG_NAME_MAX];
    struct config_mark mark;
    enum proxy_version proxy_protocol;
    uint32_t tlvs; /* TLV_* */
    uint8_t tlv_pass[CONFIG_MAX_TLV_PASS];
    int n_tlv_pass;
    enum balance balance;
    uint32_t connect_timeout_ms, idle_timeout_ms;
    uint32_t retries;
    char sni[CLIENTHELLO_SNI_MAX + 1]; /* for tls health checks; "" = none */
    struct config_health health;
    struct config_server *servers; /* n_servers, allocated by config_load */
    int n_servers;
    /* For servers given by DNS name: the DNS servers to ask (none: the
     * process's) and how often (0: the process's). */
    union sockaddr_inet resolvers[CONFIG_MAX_RESOLVERS];
    int n_resolvers;
    uint32_t resolve_interval_ms;
};

struct config_route {
    char sni[CLIENTHELLO_SNI_MAX + 1]; /* as written: a name or "*.suffix" */
    char backend[CONFIG_NAME_MAX];
    struct config_mark mark;
    int backend_index; /* resolved after the walk */
};

struct config_listener {
    char name[CONFIG_NAME_MAX];
    struct config_mark mark;
    union sockaddr_inet bind[CONFIG_MAX_BINDS];
    int n_bind;
    enum proxy_in proxy_protocol_in;
    struct cidr trusted[CONFIG_MAX_TRUSTED];
    int n_trusted;
    uint32_t header_timeout_ms, header_max_size, peek_timeout_ms;
    uint32_t max_per_source;  /* open connections per client address; 0: no limit */
    uint32_t rate_per_source; /* new connections per second per client address; 0: no limit */
    struct cidr allow[CONFIG_MAX_TRUSTED], deny[CONFIG_MAX_TRUSTED]; /* who may connect */
    int n_allow, n_deny;
    struct config_route *routes; /* n_routes, allocated by config_load */
    int n_routes;
    char default_backend[CONFIG_NAME_MAX];
    struct config_mark default_mark;
    int default_index;
};

struct config {
    int workers; /* 0: auto */
    enum io_kind io;
    enum splice_mode splice;
    char stats_socket[CONFIG_PATH_MAX]; /* "": none */
    char stats_socket_group[CONFIG_NAME_MAX];
    enum stats_level stats_socket_level;
    struct config_access_log access_log;
    struct config_admin admin;
    uint32_t shutdown_grace_ms; /* on SIGTERM: not ready, still accepting, this long */
    /* DNS for servers given by name: whom to ask (none: /etc/resolv.conf)
     * and how often; a backend may say otherwise. */
    union sockaddr_inet resolvers[CONFIG_MAX_RESOLVERS];
    int n_resolvers;
    uint32_t resolve_interval_ms;
    uint32_t drain_timeout_ms;
    char user[CONFIG_NAME_MAX], group[CONFIG_NAME_MAX]; /* to run as, once bound; "": stay */
    uint32_t max_connections;                           /* 0: fit the open-file limit */
    uint32_t accept_backlog; /* listen(2) backlog of every listening socket */
    int log_level;
    struct config_listener listeners[CONFIG_MAX_LISTENERS];
    int n_listeners;
    struct config_backend backends[CONFIG_MAX_BACKENDS];
    int n_backends;
    struct config_mark listeners_mark, backends_mark;
};

/* A command-line flag that sets a configuration key, as given: flag is
 * the table's own spelling ("--workers"), value the text after it. */
struct config_arg {
    const char *flag;
    const char *value;
};

/* Loads a configuration into *c (every field is set): from YAML text (len
 * bytes) read from file, or with file NULL from what the flags describe
 * (--listen, --backend, --route). Then each of the n flags in args sets its
 * key: a process-wide key once, a listener's or a backend's key in every
 * listener or backend. Values from either place are parsed, bounded and
 * checked by the same table, and the rules across keys run once, after
 * both. Returns 0, or -EINVAL with one line in err: "FILE:LINE:COL:
 * KEY.PATH: what was expected" for the file, "--FLAG: what was expected"
 * for a flag. On success c holds arrays for config_free(); on failure
 * nothing is left allocated. */
int config_load(struct config *c, const char *file, const char *text, size_t len,
                const struct config_arg *args, int n, char *err, size_t errlen);

/* Frees what config_load() allocated in c; c is then empty. */
void config_free(struct config *c);

/* config_load() of a file with no flags. */
int config_parse(struct config *c, const char *file, const char *text, size_t len, char *err,
                 size_t errlen);

/* The table's spelling of command-line flag s (len bytes, no "=value"), or
 * NULL if no key has that flag. */
const char *config_flag(const char *s, size_t len);

/* Checks each flag's value on its own, as config_load() would, so that a
 * bad value is reported before any file is read; without a file, also
 * what the flags describe. Returns 0 or -EINVAL with err filled. */
int config_check_args(const struct config_arg *args, int n, int with_file, char *err,
                      size_t errlen);

/* What a reload cannot change: for each key marked start-only in the table
 * whose value differs between the running configuration old and the new
 * one nc, calls changed(key, old value, new value) with both as text, and
 * puts the old value back into nc. */
void config_keep_start_only(struct config *nc, const struct config *old,
                            void (*changed)(const char *key, const char *was, const char *now));

/* The table's usage text for the flags, one line per flag (for --help). */
void config_flags_usage(FILE *out);

/* Parses "250ms", "5s", "2m", "1h" or a bare number of seconds into ms.
 * Returns 0 or -EINVAL (also on overflow of 32 bits). */
int config_parse_duration(const char *s, uint32_t *ms);

/* Writes the effective configuration as YAML that config_parse reads back
 * to the same values. */
void config_dump(const struct config *c, FILE *out);

#endif
