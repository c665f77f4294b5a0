/* Command-line parsing into struct options. */
#include "options.h"

#include "config.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char options_usage[] =
    "usage: ringrelay --listen ADDR:PORT [--listen ...] --backend ADDR:PORT [options]\n"
    "       ringrelay -t [-c FILE]          check a configuration file and exit\n"
    "       ringrelay --dump-config [-c FILE]  print it with every default, and exit\n"
    "       ringrelay doctor ADDR:PORT [--sni NAME]\n"
    "       ringrelay stats [--socket PATH] [--json|--prometheus|--servers|--conns]\n"
    "\n"
    "Accepts TCP connections, connects each to the backend, writes a PROXY protocol\n"
    "header carrying the client's address, then relays the bytes both ways untouched.\n"
    "\n"
    "  --listen ADDR:PORT        address to accept on (repeatable; IPv6 as [::1]:8443)\n"
    "  --backend ADDR:PORT       where to relay connections (or unix:/path)\n"
    "  --proxy-protocol v2|v1|off  header written to the backend (default v2)\n"
    "  --proxy-protocol-in off|v1|v2|any\n"
    "                            header expected from trusted sources (default off)\n"
    "  --trusted-source CIDR     who may send that header (repeatable; required with\n"
    "                            --proxy-protocol-in; others sending one are refused)\n"
    "  --header-timeout DUR      wait this long for the inbound header (default 5s)\n"
    "  --header-max-size N       largest inbound v2 header, 16-16384 bytes (default 4096)\n"
    "  --route NAME=ADDR:PORT    send TLS connections for server name NAME (or *.suffix)\n"
    "                            to ADDR:PORT; others go to --backend (repeatable)\n"
    "  --peek-timeout DUR        wait this long for the ClientHello (default 5s)\n"
    "  --tlvs LIST               TLVs on the v2 header: authority, alpn, unique_id, crc32c,\n"
    "                            and types (0xEA) copied from a trusted inbound header\n"
    "  --workers N               worker threads, one per core (default: usable CPUs)\n"
    "  --io auto|uring|epoll     I/O back end (default auto: io_uring when it works)\n"
    "  --splice auto|never|always  splice(2) for bulk transfers (default auto)\n"
    "  --connect-timeout DUR     backend connect timeout (default 5s)\n"
    "  --idle-timeout DUR        close connections idle this long; 0 = never (default 300s)\n"
    "  --max-connections N       concurrent connections, all workers (default: 10000,\n"
    "                            or what the open-file limit allows)\n"
    "  --max-connections-per-source N  open connections one client address may\n"
    "                            hold; more are refused at once (default 0: no limit)\n"
    "  --log-level LEVEL         error, warn, info or debug (default info)\n"
    "  --stats-socket PATH       serve counters on this unix socket (ringrelay stats)\n"
    "  --access-log PATH|stderr  one line per finished connection (SIGUSR1 reopens)\n"
    "  --access-log-mode all|errors|off  which connections get a line (default all)\n"
    "  --access-log-format text|json     (default text)\n"
    "  --drain-timeout DUR       on SIGTERM, let open connections finish this long\n"
    "                            (default 30s); SIGINT stops at once\n"
    "  --user NAME, --group NAME run as this user and group once listening\n"
    "  --help, --version\n"
    "\n"
    "DUR: 500ms, 5s, 2m, 1h, or a bare number of seconds.\n"
    "\n"
    "doctor probes a TLS backend with no header, PROXY v1, v2 and v2 LOCAL, each\n"
    "followed by a TLS handshake, and says which header it expects.\n";

static int parse_uint(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    unsigned long long v = 0;

    if (*s == '\0')
        return -EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        v = v * 10 + (unsigned long long)(*s - '0');
        if (v > max)
            return -EINVAL;
    }
    if (v < min)
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

/* Returns the index of s in the NULL-terminated list, or -1. */
static int pick(const char *s, const char *const *names)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static void set_defaults(struct options *o)
{
    memset(o, 0, sizeof(*o));
    o->proxy = PROXY_V2;
    o->proxy_in = PROXY_IN_OFF;
    o->header_timeout_ms = 5000;
    o->header_max = PROXY_V2_CAP_DEFAULT;
    o->peek_timeout_ms = 5000;
    o->io = IO_AUTO;
    o->splice = SPLICE_AUTO;
    o->connect_timeout_ms = 5000;
    o->idle_timeout_ms = 300000;
    o->max_connections = 0;
    o->log_level = LOG_LEVEL_INFO;
    o->stats_socket = "";
    o->drain_timeout_ms = 30000;
    o->access_log = "";
    o->user = "";
    o->group = "";
}

static const char *const known_flags[] = {
    "--listen", "--backend", "--proxy-protocol", "--io", "--splice", "--log-level", "--workers",
    "--max-connections", "--connect-timeout", "--idle-timeout", "--proxy-protocol-in",
    "--trusted-source", "--header-timeout", "--header-max-size", "--route", "--peek-timeout",
    "--tlvs", "--stats-socket", "--drain-timeout", "--access-log", "--access-log-mode",
    "--access-log-format", "--user", "--group", "--max-connections-per-source", NULL};

static int apply_trusted(struct options *o, const char *val, char *err, size_t errlen)
{
    struct cidr *c = &o->trusted[o->n_trusted];
    char net[CIDR_STRLEN];
    int ret;

    if (o->n_trusted == CONFIG_MAX_TRUSTED) {
        snprintf(err, errlen, "--trusted-source: at most %d ranges", CONFIG_MAX_TRUSTED);
        return -EINVAL;
    }
    ret = cidr_parse(val, c);
    if (ret == -EDOM) {
        /* Zero the host bits to suggest the network meant. */
        for (int b = c->bits; b < (c->family == AF_INET ? 32 : 128); b++)
            c->addr[b / 8] &= (uint8_t)~(0x80 >> (b % 8));
        snprintf(err, errlen, "--trusted-source: '%s': address has bits set below the /%u "
                 "prefix; did you mean %s?", val, c->bits, cidr_format(c, net, sizeof(net)));
        return -EINVAL;
    }
    if (ret < 0) {
        snprintf(err, errlen, "--trusted-source: '%s': expected an address or ADDR/BITS, "
                 "like 192.0.2.0/24 or 2001:db8::/32", val);
        return -EINVAL;
    }
    o->n_trusted++;
    return 0;
}

/* One --tlvs item: a name, or a type number to copy from inbound. */
static int apply_tlv_item(struct options *o, const char *item)
{
    static const char *const names[] = {"authority", "alpn", "unique_id", "crc32c", NULL};
    int i = pick(item, names);
    char *end;
    unsigned long type;

    if (i >= 0) {
        o->tlvs |= 1U << i;
        return 0;
    }
    type = strtoul(item, &end, 0);
    if (*item < '0' || *item > '9' || *end || type > 0xff || o->n_tlv_pass == CONFIG_MAX_TLV_PASS)
        return -EINVAL;
    o->tlv_pass[o->n_tlv_pass++] = (uint8_t)type;
    return 0;
}

static int apply_tlvs(struct options *o, const char *val, char *err, size_t errlen)
{
    char list[256], *save = NULL;

    if (strlen(val) >= sizeof(list) || !*val)
        goto bad;
    memcpy(list, val, strlen(val) + 1);
    for (char *item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save))
        if (apply_tlv_item(o, item) < 0)
            goto bad;
    return 0;
bad:
    snprintf(err, errlen, "--tlvs: '%s': expected a list of authority, alpn, unique_id, crc32c "
             "and type numbers like 0xEA (at most %d)", val, CONFIG_MAX_TLV_PASS);
    return -EINVAL;
}

static int apply_route(struct options *o, const char *val, char *err, size_t errlen)
{
    struct route *r = &o->routes[o->n_routes];
    const char *what;

    if (o->n_routes == CONFIG_MAX_ROUTES) {
        snprintf(err, errlen, "--route: at most %d routes", CONFIG_MAX_ROUTES);
        return -EINVAL;
    }
    if (route_parse(val, r, &what) < 0) {
        snprintf(err, errlen, "--route: '%s': bad %s; expected NAME=ADDR:PORT with NAME a host "
                 "name or *.suffix, like api.example.com=10.0.0.5:8443", val, what);
        return -EINVAL;
    }
    for (int i = 0; i < o->n_routes; i++) {
        if (o->routes[i].wildcard == r->wildcard && strcmp(o->routes[i].name, r->name) == 0) {
            snprintf(err, errlen, "--route: '%s': that name already has a route", val);
            return -EINVAL;
        }
    }
    o->n_routes++;
    return 0;
}

/* --stats-socket and --access-log: an absolute path that fits a unix
 * socket's address ("stderr" too for the log). */
static int apply_path(struct options *o, const char *flag, const char *val, char *err,
                      size_t errlen)
{
    int log = strcmp(flag, "--access-log") == 0;

    if ((val[0] != '/' && !(log && strcmp(val, "stderr") == 0)) ||
        strlen(val) >= CONFIG_PATH_MAX) {
        snprintf(err, errlen, "%s: '%s': expected an absolute path under %d bytes%s", flag, val,
                 CONFIG_PATH_MAX, log ? ", or stderr" : "");
        return -EINVAL;
    }
    *(log ? &o->access_log : &o->stats_socket) = val;
    return 0;
}

/* Applies one flag with its value. Returns 0 or -EINVAL with err filled. */
static int apply(struct options *o, const char *flag, const char *val, char *err, size_t errlen)
{
    static const char *const proxies[] = {"off", "v1", "v2", NULL};
    static const char *const proxies_in[] = {"off", "v1", "v2", "any", NULL};
    static const char *const ios[] = {"auto", "uring", "epoll", NULL};
    static const char *const splices[] = {"auto", "never", "always", NULL};
    static const char *const access_modes[] = {"all", "errors", "off", NULL};
    static const char *const access_formats[] = {"text", "json", NULL};
    uint32_t u;
    int i;

    if (strcmp(flag, "--listen") == 0) {
        if (o->n_listen == CONFIG_MAX_LISTENERS) {
            snprintf(err, errlen, "--listen: at most %d addresses", CONFIG_MAX_LISTENERS);
            return -EINVAL;
        }
        if (addr_parse(val, &o->listen[o->n_listen]) < 0)
            goto bad_addr;
        o->n_listen++;
    } else if (strcmp(flag, "--backend") == 0) {
        memset(&o->backend, 0, sizeof(o->backend));
        memset(&o->backend_unix, 0, sizeof(o->backend_unix));
        if (addr_parse(val, &o->backend) < 0 && addr_parse_unix(val, &o->backend_unix) < 0)
            goto bad_addr;
    } else if (strcmp(flag, "--proxy-protocol") == 0) {
        if ((i = pick(val, proxies)) < 0)
            goto bad_choice;
        o->proxy = (enum proxy_version)i;
    } else if (strcmp(flag, "--proxy-protocol-in") == 0) {
        if ((i = pick(val, proxies_in)) < 0)
            goto bad_choice;
        o->proxy_in = (enum proxy_in)i;
    } else if (strcmp(flag, "--trusted-source") == 0) {
        return apply_trusted(o, val, err, errlen);
    } else if (strcmp(flag, "--tlvs") == 0) {
        return apply_tlvs(o, val, err, errlen);
    } else if (strcmp(flag, "--route") == 0) {
        return apply_route(o, val, err, errlen);
    } else if (strcmp(flag, "--peek-timeout") == 0) {
        if (config_parse_duration(val, &o->peek_timeout_ms) < 0 || o->peek_timeout_ms == 0)
            goto bad_duration;
    } else if (strcmp(flag, "--header-timeout") == 0) {
        if (config_parse_duration(val, &o->header_timeout_ms) < 0 || o->header_timeout_ms == 0)
            goto bad_duration;
    } else if (strcmp(flag, "--header-max-size") == 0) {
        if (parse_uint(val, 16, CONFIG_HEADER_MAX_LIMIT, &o->header_max) < 0) {
            snprintf(err, errlen, "%s: '%s': expected a size from 16 to %u bytes", flag, val,
                     CONFIG_HEADER_MAX_LIMIT);
            return -EINVAL;
        }
    } else if (strcmp(flag, "--io") == 0) {
        if ((i = pick(val, ios)) < 0)
            goto bad_choice;
        o->io = (enum io_kind)i;
    } else if (strcmp(flag, "--splice") == 0) {
        if ((i = pick(val, splices)) < 0)
            goto bad_choice;
        o->splice = (enum splice_mode)i;
    } else if (strcmp(flag, "--log-level") == 0) {
        if ((o->log_level = log_level_parse(val)) < 0)
            goto bad_choice;
    } else if (strcmp(flag, "--workers") == 0) {
        if (parse_uint(val, 1, 1024, &u) < 0)
            goto bad_number;
        o->workers = (int)u;
    } else if (strcmp(flag, "--max-connections") == 0) {
        if (parse_uint(val, 1, 10000000, &o->max_connections) < 0)
            goto bad_number;
    } else if (strcmp(flag, "--connect-timeout") == 0) {
        if (config_parse_duration(val, &o->connect_timeout_ms) < 0 || o->connect_timeout_ms == 0)
            goto bad_duration;
    } else if (strcmp(flag, "--idle-timeout") == 0) {
        if (config_parse_duration(val, &o->idle_timeout_ms) < 0)
            goto bad_duration;
    } else if (strcmp(flag, "--max-connections-per-source") == 0) {
        if (parse_uint(val, 0, 10000000, &o->max_per_source) < 0) {
            snprintf(err, errlen, "%s: '%s': expected a whole number (0: no limit)", flag, val);
            return -EINVAL;
        }
    } else if (strcmp(flag, "--drain-timeout") == 0) {
        if (config_parse_duration(val, &o->drain_timeout_ms) < 0)
            goto bad_duration;
    } else if (strcmp(flag, "--stats-socket") == 0 || strcmp(flag, "--access-log") == 0) {
        return apply_path(o, flag, val, err, errlen);
    } else if (strcmp(flag, "--access-log-mode") == 0) {
        if ((o->access_log_mode = pick(val, access_modes)) < 0)
            goto bad_choice;
    } else if (strcmp(flag, "--access-log-format") == 0) {
        if ((o->access_log_format = pick(val, access_formats)) < 0)
            goto bad_choice;
    } else if (strcmp(flag, "--user") == 0 || strcmp(flag, "--group") == 0) {
        if (!*val || strlen(val) >= CONFIG_NAME_MAX) {
            snprintf(err, errlen, "%s: '%s': expected a name", flag, val);
            return -EINVAL;
        }
        *(flag[2] == 'u' ? &o->user : &o->group) = val;
    } else {
        snprintf(err, errlen, "%s: unknown option (see --help)", flag);
        return -EINVAL;
    }
    return 0;

bad_addr:
    snprintf(err, errlen, "%s: '%s': expected IPV4:PORT or [IPV6]:PORT with port 1-65535%s",
             flag, val, strcmp(flag, "--backend") == 0 ? ", or unix:/path" : "");
    return -EINVAL;
bad_choice:
    snprintf(err, errlen, "%s: '%s': not one of the accepted values (see --help)", flag, val);
    return -EINVAL;
bad_number:
    snprintf(err, errlen, "%s: '%s': expected a positive whole number", flag, val);
    return -EINVAL;
bad_duration:
    snprintf(err, errlen, "%s: '%s': expected a duration like 500ms, 5s, 2m", flag, val);
    return -EINVAL;
}

/* Inbound headers need a trust list, and a trust list needs them. */
static int check_inbound(const struct options *o, char *err, size_t errlen)
{
    if (o->proxy_in != PROXY_IN_OFF && o->n_trusted == 0) {
        snprintf(err, errlen, "--proxy-protocol-in: needs at least one --trusted-source "
                 "(the addresses of the proxies in front that send the header)");
        return -EINVAL;
    }
    if ((o->tlvs || o->n_tlv_pass) && o->proxy != PROXY_V2) {
        snprintf(err, errlen, "--tlvs: only a v2 header carries TLVs (--proxy-protocol v2)");
        return -EINVAL;
    }
    if (o->n_tlv_pass && o->proxy_in == PROXY_IN_OFF) {
        snprintf(err, errlen, "--tlvs: copying TLV types needs --proxy-protocol-in (they come "
                 "from a trusted inbound header)");
        return -EINVAL;
    }
    if (o->proxy_in == PROXY_IN_OFF && o->n_trusted > 0) {
        snprintf(err, errlen, "--trusted-source: has no effect with --proxy-protocol-in off");
        return -EINVAL;
    }
    return OPTIONS_RUN;
}

int options_parse(struct options *o, int argc, char *const argv[], char *err, size_t errlen)
{
    set_defaults(o);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val;
        char flag[64];
        const char *eq = strchr(arg, '=');

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return OPTIONS_HELP;
        if (strcmp(arg, "--version") == 0)
            return OPTIONS_VERSION;
        if (strcmp(arg, "-t") == 0 || strcmp(arg, "--dump-config") == 0) {
            *(arg[1] == 't' ? &o->config_check : &o->config_dump) = 1;
            continue;
        }
        if (strcmp(arg, "-c") == 0) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "-c: missing value (the configuration file)");
                return -EINVAL;
            }
            o->config_path = argv[++i];
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "%s: unexpected argument (options start with --)", arg);
            return -EINVAL;
        }
        /* Both "--flag value" and "--flag=value". */
        if (eq && (size_t)(eq - arg) < sizeof(flag)) {
            memcpy(flag, arg, (size_t)(eq - arg));
            flag[eq - arg] = '\0';
            val = eq + 1;
        } else {
            snprintf(flag, sizeof(flag), "%s", arg);
            if (pick(flag, known_flags) < 0) {
                snprintf(err, errlen, "%s: unknown option (see --help)", flag);
                return -EINVAL;
            }
            if (i + 1 >= argc) {
                snprintf(err, errlen, "%s: missing value", flag);
                return -EINVAL;
            }
            val = argv[++i];
        }
        if (apply(o, flag, val, err, errlen) < 0)
            return -EINVAL;
        /* known_flags lists the flags in OPT_* bit order. */
        o->given |= 1ULL << pick(flag, known_flags);
    }
    if (o->config_check || o->config_dump || o->config_path)
        return OPTIONS_RUN;
    if (o->n_listen == 0 && !(o->given & OPT_BACKEND)) {
        o->config_path = CONFIG_DEFAULT_PATH; /* neither flags nor -c: the usual file */
        return OPTIONS_RUN;
    }
    if (o->n_listen == 0) {
        snprintf(err, errlen, "--listen: required (at least one ADDR:PORT)");
        return -EINVAL;
    }
    if (o->backend.sa.sa_family == 0 && o->backend_unix.sun_family == 0) {
        snprintf(err, errlen, "--backend: required (ADDR:PORT)");
        return -EINVAL;
    }
    return check_inbound(o, err, errlen);
}
