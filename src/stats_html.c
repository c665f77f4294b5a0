/* The status page: one self-contained HTML document, inline style and a
 * few lines of script that fetch it again every two seconds. A server
 * that is not up is a coloured row with its state in words, so it stands
 * out without colour too. */
#include "stats_report.h"

#include <stdio.h>

static const char page_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width\">\n<title>ringrelay status</title>\n"
    "<style>\n"
    "body{font:14px/1.4 sans-serif;margin:1em 2em;color:#222;background:#fff}\n"
    "h1{font-size:1.3em;margin:.2em 0}h2{font-size:1.1em;margin:1.2em 0 .3em}\n"
    "table{border-collapse:collapse;margin-bottom:.5em}\n"
    "th,td{padding:.2em .7em;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}\n"
    "th{background:#f2f2f2}td.l,th.l{text-align:left}\n"
    ".state{font-weight:bold;text-transform:uppercase;text-align:left}\n"
    "tr.down td{background:#f8d0d0}tr.drain td,tr.maint td{background:#fbe7b5}\n"
    "tr.gone td{color:#888}tr.disabled td{background:#fbe7b5}\n"
    ".ready{color:#175e17;font-weight:bold}.notready{color:#a00;font-weight:bold}\n"
    ".muted{color:#777}\n"
    "</style>\n"
    "<script>\n"
    "setInterval(function(){fetch(location.href,{cache:'no-store'}).then(function(r){"
    "return r.text()}).then(function(t){document.body.innerHTML=new DOMParser()"
    ".parseFromString(t,'text/html').body.innerHTML}).catch(function(){})},2000);\n"
    "</script>\n</head><body>\n";

/* s with &, <, > and " escaped. */
static void html(FILE *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", out);
            break;
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        case '"':
            fputs("&quot;", out);
            break;
        default:
            fputc(*s, out);
        }
    }
}

static unsigned long long get(const _Atomic uint64_t *c)
{
    return (unsigned long long)stat_get(c);
}

/* A count with a thousands separator, for reading at a glance. */
static void count(FILE *out, unsigned long long v)
{
    char digits[32];
    int n = snprintf(digits, sizeof(digits), "%llu", v);

    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0)
            fputc(',', out);
        fputc(digits[i], out);
    }
}

static void bytes(FILE *out, double v)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;

    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    fprintf(out, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

/* A rate, or a dash before there are two samples to make it from. */
static void rate(FILE *out, const struct stats_report *r, double v, int as_bytes)
{
    if (!r->have_rates) {
        fputs("<span class=\"muted\">&ndash;</span>", out);
        return;
    }
    if (as_bytes) {
        bytes(out, v);
        fputs("/s", out);
    } else {
        fprintf(out, "%.1f/s", v);
    }
}

static void process(const struct stats_report *r, FILE *out)
{
    fprintf(out,
            "<h1>ringrelay %s</h1>\n<p>pid %d &middot; io %s &middot; %d workers &middot; "
            "up %llus &middot; configuration %llu (%llu reloads) &middot; ",
            r->version, r->pid, r->io, r->n_workers, (unsigned long long)(r->uptime_ms / 1000),
            (unsigned long long)r->generation, (unsigned long long)r->reloads);
    fputs("active connections ", out);
    count(out, get(&r->sum.w.active));
    fprintf(out, " of %u</p>\n<p id=\"readiness\">", r->max_connections);
    if (r->not_ready[0]) {
        fputs("<span class=\"notready\">NOT READY</span>: ", out);
        html(out, r->not_ready);
    } else {
        fputs("<span class=\"ready\">READY</span>", out);
    }
    fputs("</p>\n", out);
}

static void listeners(const struct stats_report *r, FILE *out)
{
    fputs("<h2>Listeners</h2>\n<table id=\"listeners\"><tr><th class=\"l\">listener</th>"
          "<th class=\"l\">state</th><th>active</th><th>accepted</th><th>rate</th>"
          "<th>refused</th><th class=\"l\">ends, by reason</th></tr>\n",
          out);
    for (int i = 0; i < r->names.n_listeners; i++) {
        const struct stats_listener *l = &r->sum.l[i];
        const char *state = r->names.listener_index[i] < 0 ? "gone"
                            : r->listener_off[i]           ? "disabled"
                                                           : "enabled";
        int shown = 0;

        fprintf(out, "<tr class=\"%s\" data-listener=\"", state);
        html(out, r->names.listener[i]);
        fputs("\"><td class=\"l\">", out);
        html(out, r->names.listener[i]);
        fprintf(out, "</td><td class=\"state\">%s</td><td>", state);
        count(out, get(&l->accepted) - get(&l->closed));
        fputs("</td><td>", out);
        count(out, get(&l->accepted));
        fputs("</td><td>", out);
        rate(out, r, r->listener_rate[i], 0);
        fputs("</td><td>", out);
        count(out, get(&l->refused) + get(&l->refused_source));
        fputs("</td><td class=\"l\">", out);
        for (int e = 1; e < END_KINDS; e++) {
            if (!get(&l->ends[e]))
                continue;
            fprintf(out, "%s%s ", shown++ ? ", " : "", stats_end[e].name);
            count(out, get(&l->ends[e]));
        }
        fputs(shown ? "</td></tr>\n" : "<span class=\"muted\">none yet</span></td></tr>\n", out);
    }
    fputs("</table>\n", out);
}

static void server_row(const struct stats_report *r, int i, FILE *out)
{
    const struct stats_server *s = &r->sum.s[i];
    const char *state = stats_server_state(r, i);
    uint64_t fails = 0;

    for (int f = 0; f < FAIL_KINDS; f++)
        fails += stat_get(&s->fails[f]);
    fprintf(out, "<tr class=\"%s\" data-server=\"", state);
    html(out, r->names.server[i].key);
    fputs("\"><td class=\"l\">", out);
    html(out, r->names.server[i].key);
    fputs("</td><td class=\"l\">", out);
    html(out, r->server_name[i]);
    fprintf(out, "</td><td class=\"state\">%s</td>", state);
    if (r->server_up[i] < 0)
        fputs("<td class=\"l\">-</td><td class=\"l\">-</td><td>-</td>", out);
    else
        fprintf(out, "<td class=\"l\">%s</td><td class=\"l\">%s</td><td>%u / %u</td>",
                r->server_up[i] ? "up" : "down", server_admin_name[r->server_admin[i]],
                r->server_weight[i], r->server_weight_cfg[i]);
    fputs("<td>", out);
    count(out, get(&s->conns) - get(&s->closed));
    fputs("</td><td>", out);
    count(out, get(&s->conns));
    fputs("</td><td>", out);
    count(out, fails);
    fputs("</td><td>", out);
    bytes(out, (double)get(&s->bytes[0]));
    fputs("</td><td>", out);
    bytes(out, (double)get(&s->bytes[1]));
    fputs("</td></tr>\n", out);
}

static void backends(const struct stats_report *r, FILE *out)
{
    for (int i = 0; i < r->names.n_backends; i++) {
        const struct stats_backend *b = &r->sum.b[i];

        if (r->names.backend_index[i] < 0)
            continue;
        fputs("<h2>Backend ", out);
        html(out, r->names.backend[i]);
        fputs("</h2>\n<p>active ", out);
        count(out, get(&b->conns) - get(&b->closed));
        fputs(" &middot; connections ", out);
        count(out, get(&b->conns));
        fputs(" &middot; ", out);
        rate(out, r, r->backend_rate[i], 0);
        fputs(" &middot; from clients ", out);
        rate(out, r, r->backend_bps[i][0], 1);
        fputs(", from servers ", out);
        rate(out, r, r->backend_bps[i][1], 1);
        fputs(" &middot; no server ", out);
        count(out, get(&b->no_server));
        fputs(" &middot; retries ", out);
        count(out, get(&b->retries));
        fputs("</p>\n<table class=\"servers\" data-backend=\"", out);
        html(out, r->names.backend[i]);
        fputs("\"><tr><th class=\"l\">server</th><th class=\"l\">name</th>"
              "<th class=\"l\">state</th><th class=\"l\">health</th><th class=\"l\">admin</th>"
              "<th>weight set / conf.</th><th>active</th><th>connections</th>"
              "<th>connect failures</th><th>from clients</th><th>from servers</th></tr>\n",
              out);
        for (int s = 0; s < r->names.n_servers; s++)
            if (r->names.server[s].backend == i)
                server_row(r, s, out);
        fputs("</table>\n", out);
    }
}

static void dns(const struct stats_report *r, FILE *out)
{
    if (!r->n_dns)
        return;
    fputs("<h2>Servers given by DNS name</h2>\n<table id=\"dns\"><tr><th class=\"l\">backend</th>"
          "<th class=\"l\">name</th><th class=\"l\">state</th><th>addresses</th>"
          "<th>resolutions</th><th>failures</th><th>changes</th><th class=\"l\">last error</th>"
          "</tr>\n",
          out);
    for (int i = 0; i < r->n_dns; i++) {
        const struct resolver_stat *d = &r->dns[i];
        fprintf(out, "<tr class=\"%s\"><td class=\"l\">", d->state == RESOLVER_OK ? "up" : "down");
        html(out, d->backend);
        fputs("</td><td class=\"l\">", out);
        html(out, d->host);
        fprintf(out, "</td><td class=\"state\">%s</td><td>%d</td><td>", stats_dns_state[d->state],
                d->addresses);
        count(out, d->resolutions);
        fputs("</td><td>", out);
        count(out, d->failures);
        fputs("</td><td>", out);
        count(out, d->changes);
        fputs("</td><td class=\"l\">", out);
        html(out, d->error);
        fputs("</td></tr>\n", out);
    }
    fputs("</table>\n", out);
}

void stats_report_html(const struct stats_report *r, FILE *out)
{
    fputs(page_head, out);
    process(r, out);
    listeners(r, out);
    backends(r, out);
    dns(r, out);
    fputs("<p class=\"muted\">Refreshes every 2 s. The same numbers: <a href=\"/metrics\">"
          "/metrics</a>, <a href=\"/stats.json\">/stats.json</a>, <a href=\"/ready\">/ready</a>."
          "</p>\n</body></html>\n",
          out);
}
