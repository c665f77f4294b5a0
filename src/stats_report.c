/* The stats socket's answers, and its request parser. */
#include "stats_report.h"

#include "admin_cmd.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define REQUEST_MAX 4096

const char stats_help[] =
    "commands (one per line; the connection closes after the answer):\n"
    "  show stats        listeners, backends and servers as tables\n"
    "  show stats json   every counter as one JSON object\n"
    "  show servers      each server: state, connections, failures, bytes\n"
    "  show conns        the open connections of every worker\n"
    "  show metrics      the Prometheus text format\n"
    "  show ready        ready, or why not (what /ready answers)\n"
    "  help              this list\n"
    "with stats_socket_level: admin, also (one line answered ok: or error:):\n"
    "  set server BACKEND/SERVER state ready|drain|maint\n"
    "  set server BACKEND/SERVER weight N        0 to 1000\n"
    "  shutdown sessions server BACKEND/SERVER   reset its open connections\n"
    "  disable listener NAME / enable listener NAME\n"
    "  (SERVER: ADDR:PORT as show servers prints it, or its name)\n"
    "HTTP/1.x: GET (or HEAD) / (a status page), /metrics (Prometheus), /stats.json, "
    "/ready (200 or 503)\n";

static const char *const from_name[2] = {"client", "server"};

static uint64_t hist_count(const struct stats_hist *h)
{
    uint64_t n = 0;

    for (int i = 0; i < STATS_BUCKETS; i++)
        n += stat_get(&h->bucket[i]);
    return n;
}

static uint64_t active(const _Atomic uint64_t *opened, const _Atomic uint64_t *closed)
{
    return stat_get(opened) - stat_get(closed);
}

const char *stats_server_state(const struct stats_report *r, int i)
{
    if (r->server_up[i] < 0)
        return "gone";
    if (r->server_admin[i] != SERVER_READY)
        return server_admin_name[r->server_admin[i]];
    if (r->server_weight[i] == 0)
        return "drain";
    return r->server_up[i] ? "up" : "down";
}

static const char *server_health(const struct stats_report *r, int i)
{
    return r->server_up[i] < 0 ? "-" : r->server_up[i] ? "up" : "down";
}

/* "5/1": the weight in use, then as configured. */
static const char *server_weight(const struct stats_report *r, int i, char *buf, size_t cap)
{
    if (r->server_up[i] < 0)
        return "-";
    snprintf(buf, cap, "%u/%u", r->server_weight[i], r->server_weight_cfg[i]);
    return buf;
}

static uint64_t server_fails(const struct stats_server *s)
{
    uint64_t n = 0;

    for (int f = 0; f < FAIL_KINDS; f++)
        n += stat_get(&s->fails[f]);
    return n;
}

/* ---- show stats, show servers ---- */

static void text_process(const struct stats_report *r, FILE *out)
{
    fprintf(out,
            "ringrelay %s  io=%s  workers=%d  uptime=%llus  config generation=%llu%s  "
            "reloads=%llu%s  %s%s\n",
            r->version, r->io, r->n_workers, (unsigned long long)(r->uptime_ms / 1000),
            (unsigned long long)r->generation, r->reload_pending ? " (reload pending)" : "",
            (unsigned long long)r->reloads,
            r->draining  ? "  DRAINING"
            : r->leaving ? "  LEAVING"
                         : "",
            r->not_ready[0] ? "not ready: " : "ready", r->not_ready);
    fprintf(out, "active connections %llu (max %u)", (unsigned long long)stat_get(&r->sum.w.active),
            r->max_connections);
    if (stat_get(&r->sum.w.accept_errors))
        fprintf(out, "  accept errors %llu", (unsigned long long)stat_get(&r->sum.w.accept_errors));
    if (r->stats_busy)
        fprintf(out, "  stats clients refused %llu", (unsigned long long)r->stats_busy);
    if (r->admin_refused)
        fprintf(out, "  admin clients refused %llu", (unsigned long long)r->admin_refused);
    if (r->have_memory)
        fprintf(out, "  memory allocated %llu KiB, resident %llu KiB",
                (unsigned long long)(r->mem_allocated >> 10),
                (unsigned long long)(r->mem_resident >> 10));
    fprintf(out, "\n\n");
}

static void text_listeners(const struct stats_report *r, FILE *out)
{
    fprintf(out, "%-20s %10s %8s %8s %8s %8s %8s %8s\n", "LISTENER", "accepted", "active",
            "refused", "hdr_in", "hdr_bad", "hdr_tmo", "untrust");
    for (int i = 0; i < r->names.n_listeners; i++) {
        const struct stats_listener *l = &r->sum.l[i];
        fprintf(out, "%-20s %10llu %8llu %8llu %8llu %8llu %8llu %8llu\n", r->names.listener[i],
                (unsigned long long)stat_get(&l->accepted),
                (unsigned long long)active(&l->accepted, &l->closed),
                (unsigned long long)stat_get(&l->refused),
                (unsigned long long)stat_get(&l->header_in),
                (unsigned long long)stat_get(&l->header_bad),
                (unsigned long long)stat_get(&l->header_timeouts),
                (unsigned long long)stat_get(&l->header_untrusted));
    }
    fputc('\n', out);
}

static void text_backends(const struct stats_report *r, FILE *out)
{
    fprintf(out, "%-20s %10s %8s %8s %8s %14s %14s\n", "BACKEND", "conns", "active", "retries",
            "no_srv", "bytes_client", "bytes_server");
    for (int i = 0; i < r->names.n_backends; i++) {
        const struct stats_backend *b = &r->sum.b[i];
        fprintf(
            out, "%-20s %10llu %8llu %8llu %8llu %14llu %14llu\n", r->names.backend[i],
            (unsigned long long)stat_get(&b->conns),
            (unsigned long long)active(&b->conns, &b->closed),
            (unsigned long long)stat_get(&b->retries), (unsigned long long)stat_get(&b->no_server),
            (unsigned long long)stat_get(&b->bytes[0]), (unsigned long long)stat_get(&b->bytes[1]));
    }
    fputc('\n', out);
}

void stats_report_servers(const struct stats_report *r, FILE *out)
{
    char weight[32];

    fprintf(out, "%-16s %-24s %-16s %-5s %-6s %-5s %-11s %8s %8s %8s %8s %14s %14s\n", "BACKEND",
            "SERVER", "NAME", "STATE", "HEALTH", "ADMIN", "WEIGHT", "conns", "active", "fails",
            "noproxy", "bytes_client", "bytes_server");
    for (int i = 0; i < r->names.n_servers; i++) {
        const struct stats_server *s = &r->sum.s[i];
        fprintf(
            out, "%-16s %-24s %-16s %-5s %-6s %-5s %-11s %8llu %8llu %8llu %8llu %14llu %14llu\n",
            r->names.backend[r->names.server[i].backend], r->names.server[i].key,
            r->server_name[i][0] ? r->server_name[i] : "-", stats_server_state(r, i),
            server_health(r, i), r->server_up[i] < 0 ? "-" : server_admin_name[r->server_admin[i]],
            server_weight(r, i, weight, sizeof(weight)), (unsigned long long)stat_get(&s->conns),
            (unsigned long long)active(&s->conns, &s->closed), (unsigned long long)server_fails(s),
            (unsigned long long)stat_get(&s->no_proxy), (unsigned long long)stat_get(&s->bytes[0]),
            (unsigned long long)stat_get(&s->bytes[1]));
    }
}

const char *const stats_dns_state[3] = {"never resolved", "ok", "failing"};

static void text_dns(const struct stats_report *r, FILE *out)
{
    if (!r->n_dns)
        return;
    fprintf(out, "\n%-16s %-32s %-14s %5s %10s %8s %7s  %s\n", "BACKEND", "DNS NAME", "STATE",
            "addrs", "resolved", "failed", "changed", "last error");
    for (int i = 0; i < r->n_dns; i++) {
        const struct resolver_stat *d = &r->dns[i];
        fprintf(out, "%-16s %-32s %-14s %5d %10llu %8llu %7llu  %s\n", d->backend, d->host,
                stats_dns_state[d->state], d->addresses, (unsigned long long)d->resolutions,
                (unsigned long long)d->failures, (unsigned long long)d->changes,
                d->error[0] ? d->error : "-");
    }
}

void stats_report_text(const struct stats_report *r, FILE *out)
{
    text_process(r, out);
    text_listeners(r, out);
    text_backends(r, out);
    stats_report_servers(r, out);
    text_dns(r, out);
}

/* ---- JSON ---- */

static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static void json_u64(FILE *out, const char *key, uint64_t v, int comma)
{
    fprintf(out, "%s\"%s\":%llu", comma ? "," : "", key, (unsigned long long)v);
}

static void json_hist(FILE *out, const char *key, const struct stats_hist *h)
{
    fprintf(out, ",\"%s\":{\"count\":%llu,\"sum_us\":%llu,\"buckets_le_us\":[", key,
            (unsigned long long)hist_count(h), (unsigned long long)stat_get(&h->sum_us));
    for (int i = 0; i < STATS_BUCKETS; i++)
        fprintf(out, "%s[%llu,%llu]", i ? "," : "",
                i + 1 < STATS_BUCKETS ? 1ULL << (i + STATS_BUCKET_SHIFT) : 0ULL,
                (unsigned long long)stat_get(&h->bucket[i]));
    fprintf(out, "]}");
}

static void json_process(const struct stats_report *r, FILE *out)
{
    fprintf(out, "\"process\":{\"version\":");
    json_str(out, r->version);
    fprintf(out, ",\"pid\":%d,\"io\":\"%s\",\"workers\":%d", r->pid, r->io, r->n_workers);
    json_u64(out, "start_time", r->start_time, 1);
    json_u64(out, "uptime_ms", r->uptime_ms, 1);
    json_u64(out, "generation", r->generation, 1);
    json_u64(out, "generation_applied", r->generation_applied, 1);
    fprintf(out, ",\"reload_pending\":%s", r->reload_pending ? "true" : "false");
    json_u64(out, "reloads", r->reloads, 1);
    json_u64(out, "reload_failures", r->reload_failures, 1);
    json_u64(out, "stats_busy", r->stats_busy, 1);
    json_u64(out, "admin_refused", r->admin_refused, 1);
    json_u64(out, "commands", r->commands, 1);
    json_u64(out, "commands_refused", r->commands_refused, 1);
    json_u64(out, "max_connections", r->max_connections, 1);
    json_u64(out, "active", stat_get(&r->sum.w.active), 1);
    fprintf(out, ",\"draining\":%s,\"leaving\":%s,\"ready\":%s,\"not_ready\":",
            r->draining ? "true" : "false", r->leaving ? "true" : "false",
            r->not_ready[0] ? "false" : "true");
    json_str(out, r->not_ready);
    fprintf(out, ",\"successor\":{\"pid\":%d,\"ended\":", r->successor);
    if (r->successor_end[0])
        json_str(out, r->successor_end);
    else
        fputs("null", out);
    fputc('}', out);
    if (r->have_memory) {
        json_u64(out, "memory_allocated", r->mem_allocated, 1);
        json_u64(out, "memory_resident", r->mem_resident, 1);
    }
    fprintf(out, "}");
}

static void json_workers(const struct stats_report *r, FILE *out)
{
    fprintf(out, ",\"workers\":[");
    for (int i = 0; i < r->n_workers; i++) {
        const struct stats_worker *w = &r->workers[i];
        fprintf(out, "%s{\"id\":%d", i ? "," : "", i);
        json_u64(out, "active", stat_get(&w->active), 1);
        json_u64(out, "pipes_in_use", stat_get(&w->pipes_in_use), 1);
        json_u64(out, "pipes_exhausted", stat_get(&w->pipes_exhausted), 1);
        json_u64(out, "access_log_dropped", stat_get(&w->log_dropped), 1);
        json_u64(out, "accept_errors", stat_get(&w->accept_errors), 1);
        fprintf(out, "}");
    }
    fprintf(out, "]");
}

static void json_listeners(const struct stats_report *r, FILE *out)
{
    fprintf(out, ",\"listeners\":[");
    for (int i = 0; i < r->names.n_listeners; i++) {
        const struct stats_listener *l = &r->sum.l[i];
        fprintf(out, "%s{\"name\":", i ? "," : "");
        json_str(out, r->names.listener[i]);
        fprintf(out, ",\"configured\":%s,\"disabled\":%s",
                r->names.listener_index[i] >= 0 ? "true" : "false",
                r->listener_off[i] ? "true" : "false");
        json_u64(out, "accepted", stat_get(&l->accepted), 1);
        json_u64(out, "active", active(&l->accepted, &l->closed), 1);
        json_u64(out, "refused", stat_get(&l->refused), 1);
        json_u64(out, "refused_source", stat_get(&l->refused_source), 1);
        json_u64(out, "header_in", stat_get(&l->header_in), 1);
        json_u64(out, "header_bad", stat_get(&l->header_bad), 1);
        json_u64(out, "header_timeouts", stat_get(&l->header_timeouts), 1);
        json_u64(out, "header_untrusted", stat_get(&l->header_untrusted), 1);
        json_u64(out, "peek_timeouts", stat_get(&l->peek_timeouts), 1);
        json_u64(out, "routed", stat_get(&l->routed), 1);
        fprintf(out, ",\"ends\":{");
        for (int e = 1; e < END_KINDS; e++)
            json_u64(out, stats_end[e].name, stat_get(&l->ends[e]), e > 1);
        fprintf(out, "}}");
    }
    fprintf(out, "]");
}

static void json_server(const struct stats_report *r, int i, int comma, FILE *out)
{
    const struct stats_server *s = &r->sum.s[i];

    fprintf(out, "%s{\"name\":", comma ? "," : "");
    json_str(out, r->names.server[i].key);
    fprintf(out, ",\"server_name\":");
    json_str(out, r->server_name[i]);
    fprintf(out, ",\"state\":\"%s\",\"health\":\"%s\",\"admin\":\"%s\"", stats_server_state(r, i),
            server_health(r, i), r->server_up[i] < 0 ? "-" : server_admin_name[r->server_admin[i]]);
    json_u64(out, "weight", r->server_weight[i], 1);
    json_u64(out, "weight_configured", r->server_weight_cfg[i], 1);
    json_u64(out, "health_changes", r->health_changes[i], 1);
    json_u64(out, "conns", stat_get(&s->conns), 1);
    json_u64(out, "active", active(&s->conns, &s->closed), 1);
    fprintf(out, ",\"connect_failures\":{");
    for (int f = 0; f < FAIL_KINDS; f++)
        json_u64(out, stats_fail_name[f], stat_get(&s->fails[f]), f > 0);
    fprintf(out, "}");
    json_u64(out, "no_proxy", stat_get(&s->no_proxy), 1);
    json_u64(out, "bytes_from_client", stat_get(&s->bytes[0]), 1);
    json_u64(out, "bytes_from_server", stat_get(&s->bytes[1]), 1);
    fprintf(out, "}");
}

static void json_backends(const struct stats_report *r, FILE *out)
{
    fprintf(out, ",\"backends\":[");
    for (int i = 0; i < r->names.n_backends; i++) {
        const struct stats_backend *b = &r->sum.b[i];
        int n = 0;
        fprintf(out, "%s{\"name\":", i ? "," : "");
        json_str(out, r->names.backend[i]);
        fprintf(out, ",\"configured\":%s", r->names.backend_index[i] >= 0 ? "true" : "false");
        json_u64(out, "conns", stat_get(&b->conns), 1);
        json_u64(out, "active", active(&b->conns, &b->closed), 1);
        json_u64(out, "retries", stat_get(&b->retries), 1);
        json_u64(out, "no_server", stat_get(&b->no_server), 1);
        json_u64(out, "bytes_from_client", stat_get(&b->bytes[0]), 1);
        json_u64(out, "bytes_from_server", stat_get(&b->bytes[1]), 1);
        json_hist(out, "connect_time", &b->connect);
        json_hist(out, "first_byte_time", &b->first_byte);
        json_hist(out, "duration", &b->duration);
        fprintf(out, ",\"servers\":[");
        for (int s = 0; s < r->names.n_servers; s++)
            if (r->names.server[s].backend == i)
                json_server(r, s, n++ > 0, out);
        fprintf(out, "]}");
    }
    fprintf(out, "]");
}

static void json_dns(const struct stats_report *r, FILE *out)
{
    fprintf(out, ",\"dns\":[");
    for (int i = 0; i < r->n_dns; i++) {
        const struct resolver_stat *d = &r->dns[i];
        fprintf(out, "%s{\"backend\":", i ? "," : "");
        json_str(out, d->backend);
        fprintf(out, ",\"name\":");
        json_str(out, d->host);
        fprintf(out, ",\"state\":\"%s\",\"addresses\":%d", stats_dns_state[d->state], d->addresses);
        json_u64(out, "resolutions", d->resolutions, 1);
        json_u64(out, "failures", d->failures, 1);
        json_u64(out, "changes", d->changes, 1);
        fprintf(out, ",\"error\":");
        json_str(out, d->error);
        fputc('}', out);
    }
    fputc(']', out);
}

void stats_report_json(const struct stats_report *r, FILE *out)
{
    fputc('{', out);
    json_process(r, out);
    json_workers(r, out);
    json_listeners(r, out);
    json_backends(r, out);
    json_dns(r, out);
    fprintf(out, "}\n");
}

/* ---- Prometheus text format ---- */

/* A label value: backslash, quote and newline escaped. */
static void prom_label(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fprintf(out, "\\%c", *s);
        else if (*s == '\n')
            fprintf(out, "\\n");
        else
            fputc(*s, out);
    }
    fputc('"', out);
}

static void prom_head(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP ringrelay_%s %s\n# TYPE ringrelay_%s %s\n", name, help, name, type);
}

static void prom_process(const struct stats_report *r, FILE *out)
{
    prom_head(out, "build_info", "gauge", "Version and io back end; always 1.");
    fprintf(out, "ringrelay_build_info{version=\"%s\",io=\"%s\"} 1\n", r->version, r->io);
    prom_head(out, "start_time_seconds", "gauge",
              "When the process started, seconds since the epoch.");
    fprintf(out, "ringrelay_start_time_seconds %llu\n", (unsigned long long)r->start_time);
    prom_head(out, "uptime_seconds", "gauge", "Seconds since the process started.");
    fprintf(out, "ringrelay_uptime_seconds %llu.%03llu\n",
            (unsigned long long)(r->uptime_ms / 1000), (unsigned long long)(r->uptime_ms % 1000));
    prom_head(out, "config_generation", "gauge",
              "Configurations loaded: 1 at start, one more per reload.");
    fprintf(out, "ringrelay_config_generation %llu\n", (unsigned long long)r->generation);
    prom_head(out, "config_generation_applied", "gauge",
              "The newest configuration generation every worker has taken for new connections.");
    fprintf(out, "ringrelay_config_generation_applied %llu\n",
            (unsigned long long)r->generation_applied);
    prom_head(out, "reload_pending", "gauge",
              "1 while a reload or DNS change is queued, or handed and not yet taken by every "
              "worker.");
    fprintf(out, "ringrelay_reload_pending %d\n", r->reload_pending ? 1 : 0);
    prom_head(out, "reloads_total", "counter", "Reloads applied.");
    fprintf(out, "ringrelay_reloads_total %llu\n", (unsigned long long)r->reloads);
    prom_head(out, "reload_failures_total", "counter", "Reloads refused (bad file or address).");
    fprintf(out, "ringrelay_reload_failures_total %llu\n", (unsigned long long)r->reload_failures);
    prom_head(out, "stats_clients_refused_total", "counter",
              "Stats and admin clients closed to make room for newer ones: every slot taken, "
              "or 64 MiB of answers held for slow readers.");
    fprintf(out, "ringrelay_stats_clients_refused_total %llu\n", (unsigned long long)r->stats_busy);
    prom_head(out, "max_connections", "gauge", "Connections the process may hold at once.");
    fprintf(out, "ringrelay_max_connections %u\n", r->max_connections);
    prom_head(out, "draining", "gauge",
              "1 while stopping: no new connections, open ones finishing.");
    fprintf(out, "ringrelay_draining %d\n", r->draining);
    prom_head(out, "leaving", "gauge",
              "1 from SIGTERM until shutdown_grace ends: not ready, still accepting.");
    fprintf(out, "ringrelay_leaving %d\n", r->leaving);
    prom_head(out, "ready", "gauge",
              "1 while /ready answers 200: accepting, and every listener's default backend "
              "has a server up.");
    fprintf(out, "ringrelay_ready %d\n", !r->not_ready[0]);
    prom_head(out, "admin_clients_refused_total", "counter",
              "Admin listener clients refused: their address is not in admin.allow.");
    fprintf(out, "ringrelay_admin_clients_refused_total %llu\n",
            (unsigned long long)r->admin_refused);
    prom_head(out, "stats_commands_total", "counter",
              "Write commands done on the stats socket (set server, shutdown sessions, "
              "disable and enable listener).");
    fprintf(out, "ringrelay_stats_commands_total %llu\n", (unsigned long long)r->commands);
    prom_head(out, "stats_commands_refused_total", "counter",
              "Write commands refused: the stats socket is read-only (stats_socket_level: read).");
    fprintf(out, "ringrelay_stats_commands_refused_total %llu\n",
            (unsigned long long)r->commands_refused);
    if (!r->have_memory)
        return;
    prom_head(out, "memory_allocated_bytes", "gauge",
              "Bytes allocated (jemalloc stats.allocated).");
    fprintf(out, "ringrelay_memory_allocated_bytes %llu\n", (unsigned long long)r->mem_allocated);
    prom_head(out, "memory_resident_bytes", "gauge",
              "Bytes resident in the allocator (jemalloc stats.resident).");
    fprintf(out, "ringrelay_memory_resident_bytes %llu\n", (unsigned long long)r->mem_resident);
}

/* One sample per worker of the worker field at offset off. */
static void prom_workers(const struct stats_report *r, FILE *out, const char *name,
                         const char *type, const char *help, size_t off)
{
    prom_head(out, name, type, help);
    for (int i = 0; i < r->n_workers; i++)
        fprintf(out, "ringrelay_%s{worker=\"%d\"} %llu\n", name, i,
                (unsigned long long)stat_get(
                    (const _Atomic uint64_t *)((const char *)&r->workers[i] + off)));
}

/* One sample per listener of the counter at offset off (or, with off2,
 * the difference off - off2). */
static void prom_listeners(const struct stats_report *r, FILE *out, const char *name,
                           const char *type, const char *help, size_t off, long off2)
{
    prom_head(out, name, type, help);
    for (int i = 0; i < r->names.n_listeners; i++) {
        const char *l = (const char *)&r->sum.l[i];
        uint64_t v = stat_get((const _Atomic uint64_t *)(l + off));
        if (off2 >= 0)
            v -= stat_get((const _Atomic uint64_t *)(l + off2));
        fprintf(out, "ringrelay_%s{listener=", name);
        prom_label(out, r->names.listener[i]);
        fprintf(out, "} %llu\n", (unsigned long long)v);
    }
}

static void prom_listener_ends(const struct stats_report *r, FILE *out)
{
    fputs("# HELP ringrelay_listener_connections_ended_total Connections ended, by reason (the "
          "access log's end field):",
          out);
    for (int e = 1; e < END_KINDS; e++)
        fprintf(out, " %s%s", stats_end[e].name, e + 1 < END_KINDS ? "," : ".\n");
    fputs("# TYPE ringrelay_listener_connections_ended_total counter\n", out);
    for (int i = 0; i < r->names.n_listeners; i++) {
        for (int e = 1; e < END_KINDS; e++) {
            fprintf(out, "ringrelay_listener_connections_ended_total{listener=");
            prom_label(out, r->names.listener[i]);
            fprintf(out, ",reason=\"%s\"} %llu\n", stats_end[e].name,
                    (unsigned long long)stat_get(&r->sum.l[i].ends[e]));
        }
    }
}

#define L_OFF(f) offsetof(struct stats_listener, f)

static void prom_all_listeners(const struct stats_report *r, FILE *out)
{
    prom_listeners(r, out, "listener_accepted_connections_total", "counter",
                   "Connections accepted.", L_OFF(accepted), -1);
    prom_listeners(r, out, "listener_active_connections", "gauge", "Connections open.",
                   L_OFF(accepted), (long)L_OFF(closed));
    prom_listeners(r, out, "listener_refused_connections_total", "counter",
                   "Connections refused: max_connections reached.", L_OFF(refused), -1);
    prom_listeners(r, out, "listener_refused_source_connections_total", "counter",
                   "Connections refused: the client address had max_connections_per_source open.",
                   L_OFF(refused_source), -1);
    prom_listeners(r, out, "listener_proxy_headers_total", "counter",
                   "Inbound PROXY headers accepted from trusted sources.", L_OFF(header_in), -1);
    prom_listeners(r, out, "listener_proxy_header_errors_total", "counter",
                   "Trusted sources that sent something other than a PROXY header.",
                   L_OFF(header_bad), -1);
    prom_listeners(r, out, "listener_proxy_header_timeouts_total", "counter",
                   "Trusted sources that sent no PROXY header in time.", L_OFF(header_timeouts),
                   -1);
    prom_listeners(r, out, "listener_untrusted_proxy_headers_total", "counter",
                   "PROXY headers from untrusted clients, refused.", L_OFF(header_untrusted), -1);
    prom_listeners(r, out, "listener_peek_timeouts_total", "counter",
                   "Clients with no whole ClientHello in time.", L_OFF(peek_timeouts), -1);
    prom_listeners(r, out, "listener_routed_connections_total", "counter",
                   "Connections sent to a backend by an SNI route.", L_OFF(routed), -1);
    prom_listener_ends(r, out);
    prom_head(out, "listener_disabled", "gauge",
              "1 while an operator has the listener disabled: its clients are reset.");
    for (int i = 0; i < r->names.n_listeners; i++) {
        if (r->names.listener_index[i] < 0)
            continue;
        fprintf(out, "ringrelay_listener_disabled{listener=");
        prom_label(out, r->names.listener[i]);
        fprintf(out, "} %d\n", r->listener_off[i]);
    }
}

static void prom_backend_label(const struct stats_report *r, FILE *out, const char *name, int i)
{
    fprintf(out, "ringrelay_%s{backend=", name);
    prom_label(out, r->names.backend[i]);
}

static void prom_backends(const struct stats_report *r, FILE *out, const char *name,
                          const char *type, const char *help, size_t off, long off2)
{
    prom_head(out, name, type, help);
    for (int i = 0; i < r->names.n_backends; i++) {
        const char *b = (const char *)&r->sum.b[i];
        uint64_t v = stat_get((const _Atomic uint64_t *)(b + off));
        if (off2 >= 0)
            v -= stat_get((const _Atomic uint64_t *)(b + off2));
        prom_backend_label(r, out, name, i);
        fprintf(out, "} %llu\n", (unsigned long long)v);
    }
}

static void prom_hist(const struct stats_report *r, FILE *out, const char *name, const char *help,
                      size_t off)
{
    prom_head(out, name, "histogram", help);
    for (int i = 0; i < r->names.n_backends; i++) {
        const struct stats_hist *h = (const struct stats_hist *)((const char *)&r->sum.b[i] + off);
        uint64_t cum = 0, sum = stat_get(&h->sum_us);
        for (int k = 0; k < STATS_BUCKETS; k++) {
            cum += stat_get(&h->bucket[k]);
            fprintf(out, "ringrelay_%s_bucket{backend=", name);
            prom_label(out, r->names.backend[i]);
            if (k + 1 < STATS_BUCKETS)
                fprintf(out, ",le=\"%.6f\"} %llu\n",
                        (double)(1ULL << (k + STATS_BUCKET_SHIFT)) / 1e6, (unsigned long long)cum);
            else
                fprintf(out, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        }
        fprintf(out, "ringrelay_%s_sum{backend=", name);
        prom_label(out, r->names.backend[i]);
        fprintf(out, "} %llu.%06llu\n", (unsigned long long)(sum / 1000000),
                (unsigned long long)(sum % 1000000));
        fprintf(out, "ringrelay_%s_count{backend=", name);
        prom_label(out, r->names.backend[i]);
        fprintf(out, "} %llu\n", (unsigned long long)cum);
    }
}

#define B_OFF(f) offsetof(struct stats_backend, f)

static void prom_all_backends(const struct stats_report *r, FILE *out)
{
    prom_backends(r, out, "backend_connections_total", "counter",
                  "Connections given to the backend.", B_OFF(conns), -1);
    prom_backends(r, out, "backend_active_connections", "gauge", "Connections open.", B_OFF(conns),
                  (long)B_OFF(closed));
    prom_backends(r, out, "backend_retries_total", "counter",
                  "Connects tried again on another server.", B_OFF(retries), -1);
    prom_backends(r, out, "backend_no_server_total", "counter",
                  "Clients refused: every server down, full or tried.", B_OFF(no_server), -1);
    prom_head(out, "backend_bytes_total", "counter",
              "Bytes relayed, by where they came from (client or server).");
    for (int i = 0; i < r->names.n_backends; i++) {
        for (int d = 0; d < 2; d++) {
            prom_backend_label(r, out, "backend_bytes_total", i);
            fprintf(out, ",from=\"%s\"} %llu\n", from_name[d],
                    (unsigned long long)stat_get(&r->sum.b[i].bytes[d]));
        }
    }
    prom_hist(r, out, "backend_connect_seconds", "Time to connect to a server.", B_OFF(connect));
    prom_hist(r, out, "backend_first_byte_seconds",
              "Time from connect to the server's first byte (a TLS ServerHello).",
              B_OFF(first_byte));
    prom_hist(r, out, "backend_connection_duration_seconds",
              "Time from accept to close, of connections given to the backend.", B_OFF(duration));
}

static void prom_server_label(const struct stats_report *r, FILE *out, const char *name, int i)
{
    prom_backend_label(r, out, name, r->names.server[i].backend);
    fprintf(out, ",server=");
    prom_label(out, r->names.server[i].key);
}

static void prom_servers(const struct stats_report *r, FILE *out, const char *name,
                         const char *type, const char *help, size_t off, long off2)
{
    prom_head(out, name, type, help);
    for (int i = 0; i < r->names.n_servers; i++) {
        const char *s = (const char *)&r->sum.s[i];
        uint64_t v = stat_get((const _Atomic uint64_t *)(s + off));
        if (off2 >= 0)
            v -= stat_get((const _Atomic uint64_t *)(s + off2));
        prom_server_label(r, out, name, i);
        fprintf(out, "} %llu\n", (unsigned long long)v);
    }
}

#define S_OFF(f) offsetof(struct stats_server, f)

static void prom_all_servers(const struct stats_report *r, FILE *out)
{
    prom_head(out, "server_up", "gauge", "1 up, 0 down (health checks); absent when removed.");
    for (int i = 0; i < r->names.n_servers; i++) {
        if (r->server_up[i] < 0)
            continue;
        prom_server_label(r, out, "server_up", i);
        fprintf(out, "} %d\n", r->server_up[i]);
    }
    prom_head(out, "server_weight", "gauge",
              "The weight picks use: as configured, or as set on the stats socket.");
    for (int i = 0; i < r->names.n_servers; i++) {
        if (r->server_up[i] < 0)
            continue;
        prom_server_label(r, out, "server_weight", i);
        fprintf(out, "} %u\n", r->server_weight[i]);
    }
    prom_head(out, "server_admin_state", "gauge",
              "1 for the state an operator set (set server ... state): ready, drain or maint.");
    for (int i = 0; i < r->names.n_servers; i++) {
        for (int a = 0; r->server_up[i] >= 0 && a < 3; a++) {
            prom_server_label(r, out, "server_admin_state", i);
            fprintf(out, ",state=\"%s\"} %d\n", server_admin_name[a], r->server_admin[i] == a);
        }
    }
    prom_head(out, "server_health_changes_total", "counter", "Times the server went up or down.");
    for (int i = 0; i < r->names.n_servers; i++) {
        prom_server_label(r, out, "server_health_changes_total", i);
        fprintf(out, "} %llu\n", (unsigned long long)r->health_changes[i]);
    }
    prom_servers(r, out, "server_connections_total", "counter", "Connections established.",
                 S_OFF(conns), -1);
    prom_servers(r, out, "server_active_connections", "gauge", "Connections open.", S_OFF(conns),
                 (long)S_OFF(closed));
    prom_head(out, "server_connect_failures_total", "counter", "Connects that failed, by cause.");
    for (int i = 0; i < r->names.n_servers; i++) {
        for (int f = 0; f < FAIL_KINDS; f++) {
            prom_server_label(r, out, "server_connect_failures_total", i);
            fprintf(out, ",cause=\"%s\"} %llu\n", stats_fail_name[f],
                    (unsigned long long)stat_get(&r->sum.s[i].fails[f]));
        }
    }
    prom_servers(r, out, "server_no_proxy_total", "counter",
                 "Connections the server ended or answered right after the PROXY header, as if "
                 "it did not expect one.",
                 S_OFF(no_proxy), -1);
    prom_head(out, "server_bytes_total", "counter",
              "Bytes relayed, by where they came from (client or server).");
    for (int i = 0; i < r->names.n_servers; i++) {
        for (int d = 0; d < 2; d++) {
            prom_server_label(r, out, "server_bytes_total", i);
            fprintf(out, ",from=\"%s\"} %llu\n", from_name[d],
                    (unsigned long long)stat_get(&r->sum.s[i].bytes[d]));
        }
    }
}

/* One sample per name of the resolver_stat field at offset off. */
static void prom_dns(const struct stats_report *r, FILE *out, const char *name, const char *type,
                     const char *help, size_t off)
{
    prom_head(out, name, type, help);
    for (int i = 0; i < r->n_dns; i++) {
        const char *d = (const char *)&r->dns[i];
        fprintf(out, "ringrelay_%s{backend=", name);
        prom_label(out, r->dns[i].backend);
        fprintf(out, ",name=");
        prom_label(out, r->dns[i].host);
        if (off == offsetof(struct resolver_stat, addresses))
            fprintf(out, "} %d\n", r->dns[i].addresses);
        else
            fprintf(out, "} %llu\n",
                    (unsigned long long)*(const uint64_t *)(const void *)(d + off));
    }
}

#define D_OFF(f) offsetof(struct resolver_stat, f)

static void prom_all_dns(const struct stats_report *r, FILE *out)
{
    if (!r->n_dns)
        return;
    prom_dns(r, out, "dns_addresses", "gauge",
             "Addresses a server's DNS name has now (the last good answer while it fails).",
             D_OFF(addresses));
    prom_dns(r, out, "dns_resolutions_total", "counter", "Answers and failures, both.",
             D_OFF(resolutions));
    prom_dns(r, out, "dns_failures_total", "counter",
             "Resolutions that failed (NXDOMAIN, SERVFAIL, timeout, no address).", D_OFF(failures));
    prom_dns(r, out, "dns_changes_total", "counter",
             "Times the name's addresses changed, and its servers with them.", D_OFF(changes));
}

#define W_OFF(f) offsetof(struct stats_worker, f)

void stats_report_prometheus(const struct stats_report *r, FILE *out)
{
    prom_process(r, out);
    prom_workers(r, out, "worker_active_connections", "gauge", "Connections open, by worker.",
                 W_OFF(active));
    prom_workers(r, out, "worker_pipes_in_use", "gauge", "Splice pipes held.", W_OFF(pipes_in_use));
    prom_workers(r, out, "worker_pipes_exhausted_total", "counter",
                 "Times every pipe was busy and a connection copied instead.",
                 W_OFF(pipes_exhausted));
    prom_workers(r, out, "worker_access_log_dropped_total", "counter",
                 "Access log lines dropped: the worker's ring was full.", W_OFF(log_dropped));
    prom_workers(r, out, "worker_accept_errors_total", "counter",
                 "Accepts that failed for want of a descriptor or memory; accepting paused "
                 "with a back-off.",
                 W_OFF(accept_errors));
    prom_all_listeners(r, out);
    prom_all_backends(r, out);
    prom_all_servers(r, out);
    prom_all_dns(r, out);
}

void stats_report_ready(const struct stats_report *r, FILE *out)
{
    fprintf(out, "%s\n", r->not_ready[0] ? r->not_ready : "ready");
}

/* ---- requests ---- */

static const struct {
    const char *line, *path;
    enum stats_cmd cmd;
} commands[] = {
    {"help", NULL, STATS_CMD_HELP},
    {"show stats", NULL, STATS_CMD_STATS},
    {"show stats json", "/stats.json", STATS_CMD_STATS_JSON},
    {"show servers", NULL, STATS_CMD_SERVERS},
    {"show conns", NULL, STATS_CMD_CONNS},
    {"show metrics", "/metrics", STATS_CMD_METRICS},
    {"show ready", "/ready", STATS_CMD_READY},
    {NULL, "/", STATS_CMD_PAGE},
};

static enum stats_cmd command_named(const char *s, size_t n, int http)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        const char *name = http ? commands[i].path : commands[i].line;
        if (name && strlen(name) == n && memcmp(name, s, n) == 0)
            return commands[i].cmd;
    }
    return http ? STATS_CMD_NOT_FOUND : STATS_CMD_UNKNOWN;
}

/* Whether the n bytes at s hold a control byte: below space or DEL, a tab
 * allowed where tab_ok (it separates a command's words). */
static int has_control(const char *s, size_t n, int tab_ok)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        if ((b < ' ' && !(tab_ok && b == '\t')) || b == 0x7f)
            return 1;
    }
    return 0;
}

/* Whether a line is meant as HTTP: a first word of capitals and then a
 * target ('/' or '*'), or " HTTP/" anywhere in it. Line commands are in
 * lower case, so an HTTP client's bad request line is answered in HTTP. */
static int http_like(const char *line, size_t n)
{
    size_t i = 0;

    while (i < n && line[i] >= 'A' && line[i] <= 'Z')
        i++;
    if (i && i + 1 < n && line[i] == ' ' && (line[i + 1] == '/' || line[i + 1] == '*'))
        return 1;
    return memmem(line, n, " HTTP/", 6) != NULL;
}

/* Exactly "METHOD SP TARGET SP HTTP/1.0" (or 1.1), METHOD GET or HEAD,
 * TARGET from '/' up to an optional query string, nothing else: the
 * command the path names. Returns STATS_HTTP_GET or STATS_HTTP_HEAD, or
 * -EPROTO. */
static int http_request(const char *line, size_t n, enum stats_cmd *cmd)
{
    const char *end = line + n, *path, *sp;
    size_t plen;
    int method;

    if (has_control(line, n, 0))
        return -EPROTO;
    if (n > 4 && memcmp(line, "GET ", 4) == 0)
        method = STATS_HTTP_GET, path = line + 4;
    else if (n > 5 && memcmp(line, "HEAD ", 5) == 0)
        method = STATS_HTTP_HEAD, path = line + 5;
    else
        return -EPROTO;
    sp = memchr(path, ' ', (size_t)(end - path));
    if (path[0] != '/' || !sp || end - sp != 9 ||
        (memcmp(sp + 1, "HTTP/1.0", 8) != 0 && memcmp(sp + 1, "HTTP/1.1", 8) != 0))
        return -EPROTO;
    plen = (size_t)(sp - path);
    for (size_t i = 0; i < plen; i++)
        if (path[i] == '?')
            plen = i;
    *cmd = command_named(path, plen, 1);
    return method;
}

int stats_request_parse(const char *buf, size_t len, enum stats_cmd *cmd, int *http)
{
    const char *nl = memchr(buf, '\n', len < REQUEST_MAX ? len : REQUEST_MAX);
    size_t n;

    if (!nl) {
        *http = http_like(buf, len < REQUEST_MAX ? len : REQUEST_MAX) ? STATS_HTTP_GET : 0;
        return len >= REQUEST_MAX ? -EPROTO : -EAGAIN;
    }
    n = (size_t)(nl - buf);
    if (n && buf[n - 1] == '\r')
        n--;
    *http = http_like(buf, n);
    if (!*http) {
        while (n && buf[n - 1] == ' ')
            n--;
        if (has_control(buf, n, 1))
            return -EPROTO; /* a NUL or CR inside would cut the command short */
        *cmd = command_named(buf, n, 0);
        if (*cmd == STATS_CMD_UNKNOWN && admin_cmd_is_write(buf, n))
            *cmd = STATS_CMD_WRITE;
        return (int)(nl - buf) + 1;
    }
    if ((*http = http_request(buf, n, cmd)) < 0) {
        *http = STATS_HTTP_GET; /* answered in HTTP all the same */
        return -EPROTO;
    }
    /* The head ends with an empty line. */
    for (const char *p = nl + 1; p < buf + len; p++) {
        if (p - buf >= REQUEST_MAX)
            return -EPROTO;
        if (*p == '\n' && (p[-1] == '\n' || (p[-1] == '\r' && p - 2 >= buf && p[-2] == '\n')))
            return (int)(p - buf) + 1;
    }
    return len >= REQUEST_MAX ? -EPROTO : -EAGAIN;
}
