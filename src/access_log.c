/* Access log rings and their writer thread. */
#include "access_log.h"

#include "log.h"
#include "registry.h"
#include "stats.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RING_SIZE 4096 /* records per worker: a power of two */
#define WRITER_PERIOD_MS 20
#define LINE_MAX_BYTES 2048

struct access_ring {
    _Alignas(64) atomic_uint_fast64_t head; /* written by the worker */
    _Alignas(64) atomic_uint_fast64_t tail; /* written by the writer */
    _Alignas(64) struct access_record rec[RING_SIZE];
};

struct access_log {
    int fd;
    int owns_fd;
    char path[CONFIG_PATH_MAX];
    enum access_log_format format;
    uint64_t instance;
    int n_rings;
    struct access_ring **rings;
    atomic_int reopen, stop;
    pthread_t thread;
    struct registry_names *names;
    char *out; /* a batch of lines */
    size_t out_cap;
};

struct access_record *access_ring_slot(struct access_ring *r)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);

    if (head - atomic_load_explicit(&r->tail, memory_order_acquire) >= RING_SIZE)
        return NULL;
    return &r->rec[head & (RING_SIZE - 1)];
}

void access_ring_commit(struct access_ring *r)
{
    atomic_store_explicit(&r->head, atomic_load_explicit(&r->head, memory_order_relaxed) + 1,
                          memory_order_release);
}

struct access_ring *access_log_ring(struct access_log *al, int id)
{
    return al && id < al->n_rings ? al->rings[id] : NULL;
}

/* ---- formatting ---- */

struct line {
    char *buf;
    size_t cap, len;
};

static void put(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct line *l, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (l->len >= l->cap)
        return;
    va_start(ap, fmt);
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): a false report
    n = vsnprintf(l->buf + l->len, l->cap - l->len, fmt, ap);
    va_end(ap);
    l->len = n < 0 ? l->len : l->len + (size_t)n > l->cap ? l->cap : l->len + (size_t)n;
}

/* A value from the wire (SNI, ALPN) or the configuration: printable ASCII
 * only; any other byte as \xHH in text (the line stays one field per word)
 * and as \u00HH in JSON (the only escape JSON has for it), quotes and
 * backslashes escaped for JSON; '-' (text) or null (JSON) when empty. */
static void put_text(struct line *l, const char *s, int json)
{
    if (!*s) {
        put(l, json ? "null" : "-");
        return;
    }
    if (json)
        put(l, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x21 || ch > 0x7e)
            put(l, json ? "\\u%04x" : "\\x%02x", ch);
        else if (json && (ch == '"' || ch == '\\'))
            put(l, "\\%c", ch);
        else
            put(l, "%c", ch);
    }
    if (json)
        put(l, "\"");
}

static void put_field(struct line *l, const char *key, const char *value, int json)
{
    put(l, json ? ",\"%s\":" : " %s=", key);
    put_text(l, value, json);
}

static void put_num(struct line *l, const char *key, unsigned long long v, int json)
{
    put(l, json ? ",\"%s\":%llu" : " %s=%llu", key, v);
}

/* Microseconds as milliseconds with three decimals; absent as -1 / null. */
static void put_ms(struct line *l, const char *key, uint64_t us, int have, int json)
{
    if (!have)
        put(l, json ? ",\"%s\":null" : " %s=-", key);
    else
        put(l, json ? ",\"%s\":%llu.%03llu" : " %s=%llu.%03llu", key,
            (unsigned long long)(us / 1000), (unsigned long long)(us % 1000));
}

static void put_time(struct line *l, uint64_t wall_us, int json)
{
    time_t sec = (time_t)(wall_us / 1000000);
    struct tm tm;
    char when[32];

    gmtime_r(&sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    put(l, json ? "{\"time\":\"%s.%03lluZ\"" : "%s.%03lluZ", when,
        (unsigned long long)(wall_us / 1000 % 1000));
}

size_t access_log_format(const struct access_record *rec, enum access_log_format format,
                         uint64_t instance, int64_t wall_offset_us,
                         const struct registry_names *names, char *buf, size_t cap)
{
    int json = format == ACCESS_LOG_JSON;
    struct line l = {buf, cap - 1, 0}; /* room for the newline */
    char id[64], client[ADDR_STRLEN], direct[ADDR_STRLEN] = "";

    snprintf(id, sizeof(id), "%016llx-%u.%u", (unsigned long long)instance, rec->worker,
             rec->conn_id);
    addr_format(&rec->client.sa, client, sizeof(client));
    if (rec->flags & ACCESS_HAS_DIRECT)
        addr_format(&rec->direct.sa, direct, sizeof(direct));
    put_time(&l, (uint64_t)((int64_t)rec->start_us + wall_offset_us), json);
    put_field(&l, "id", id, json);
    put_field(&l, "client", client, json);
    put_field(&l, "peer", direct, json);
    put_field(&l, "listener", names->listener[rec->listener], json);
    put_field(&l, "sni", rec->sni, json);
    put_field(&l, "alpn", rec->alpn, json);
    put_field(&l, "backend", rec->flags & ACCESS_HAS_BACKEND ? names->backend[rec->backend] : "",
              json);
    put_field(&l, "server", rec->flags & ACCESS_HAS_SERVER ? names->server[rec->server].key : "",
              json);
    put_ms(&l, "connect_ms", rec->t_open, rec->t_open != 0, json);
    put_ms(&l, "first_byte_ms", rec->t_first - rec->t_open, rec->t_first != 0, json);
    put_ms(&l, "duration_ms", rec->end_us - rec->start_us, 1, json);
    put_num(&l, "from_client", (unsigned long long)rec->bytes[0], json);
    put_num(&l, "from_server", (unsigned long long)rec->bytes[1], json);
    put_field(&l, "end", stats_end[rec->end < END_KINDS ? rec->end : END_NONE].name, json);
    if (json)
        put(&l, "}");
    buf[l.len] = '\n';
    return l.len + 1;
}

/* ---- the writer ---- */

static int64_t wall_offset_us(void)
{
    struct timespec real, mono;

    clock_gettime(CLOCK_REALTIME, &real);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    return ((int64_t)real.tv_sec - (int64_t)mono.tv_sec) * 1000000 +
           ((int64_t)real.tv_nsec - (int64_t)mono.tv_nsec) / 1000;
}

static int open_target(const char *path)
{
    if (strcmp(path, "stderr") == 0)
        return STDERR_FILENO;
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

static void write_all(struct access_log *al, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(al->fd, p, n);
        if (w == -1 && errno == EINTR)
            continue;
        if (w <= 0) {
            log_rl(LOG_LEVEL_ERROR, "access log %s: %s: lines lost", al->path,
                   w == 0 ? "short write" : strerror(errno));
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void reopen(struct access_log *al)
{
    int fd;

    if (!al->owns_fd)
        return;
    fd = open_target(al->path);
    if (fd == -1) {
        log_error("access log %s: reopen: %s; still writing to the old file", al->path,
                  strerror(errno));
        return;
    }
    close(al->fd);
    al->fd = fd;
    log_info("access log %s reopened", al->path);
}

/* Formats and writes everything the rings hold. Returns the records. */
static size_t drain_rings(struct access_log *al)
{
    int64_t off = wall_offset_us();
    size_t done = 0, used = 0;

    registry_read(al->names);
    for (int i = 0; i < al->n_rings; i++) {
        struct access_ring *r = al->rings[i];
        uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
        for (; tail != head; tail++, done++) {
            if (al->out_cap - used < LINE_MAX_BYTES) {
                write_all(al, al->out, used);
                used = 0;
            }
            used += access_log_format(&r->rec[tail & (RING_SIZE - 1)], al->format, al->instance,
                                      off, al->names, al->out + used, LINE_MAX_BYTES);
            atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
        }
    }
    write_all(al, al->out, used);
    return done;
}

static void *writer_main(void *arg)
{
    struct access_log *al = arg;

    pthread_setname_np(pthread_self(), "rr-access-log");
    while (!atomic_load(&al->stop)) {
        if (atomic_exchange(&al->reopen, 0))
            reopen(al);
        if (drain_rings(al) == 0)
            usleep(WRITER_PERIOD_MS * 1000);
    }
    drain_rings(al);
    return NULL;
}

void access_log_reopen(struct access_log *al)
{
    if (al)
        atomic_store(&al->reopen, 1);
}

static void access_log_free(struct access_log *al)
{
    for (int i = 0; al->rings && i < al->n_rings; i++)
        free(al->rings[i]);
    free(al->rings);
    free(al->names);
    free(al->out);
    if (al->owns_fd && al->fd >= 0)
        close(al->fd);
    free(al);
}

struct access_log *access_log_start(const char *path, enum access_log_format format, int n_workers,
                                    uint64_t instance, char *err, size_t errlen)
{
    struct access_log *al = calloc(1, sizeof(*al));
    int ret;

    if (!al)
        goto nomem;
    snprintf(al->path, sizeof(al->path), "%s", path);
    al->format = format;
    al->instance = instance;
    al->n_rings = n_workers;
    al->fd = open_target(path);
    al->owns_fd = al->fd != STDERR_FILENO;
    if (al->fd == -1) {
        snprintf(err, errlen, "access log %s: %s", path, strerror(errno));
        free(al);
        return NULL;
    }
    al->out_cap = 64 * LINE_MAX_BYTES;
    al->rings = calloc((size_t)n_workers, sizeof(struct access_ring *));
    al->names = malloc(sizeof(*al->names));
    al->out = malloc(al->out_cap);
    if (!al->rings || !al->names || !al->out)
        goto nomem;
    for (int i = 0; i < n_workers; i++) {
        al->rings[i] = aligned_alloc(64, sizeof(struct access_ring));
        if (!al->rings[i])
            goto nomem;
        atomic_init(&al->rings[i]->head, 0);
        atomic_init(&al->rings[i]->tail, 0);
    }
    if ((ret = pthread_create(&al->thread, NULL, writer_main, al)) != 0) {
        snprintf(err, errlen, "access log %s: %s", path, strerror(ret));
        access_log_free(al);
        return NULL;
    }
    return al;

nomem:
    snprintf(err, errlen, "access log %s: out of memory", path);
    if (al)
        access_log_free(al);
    return NULL;
}

void access_log_stop(struct access_log *al)
{
    if (!al)
        return;
    atomic_store(&al->stop, 1);
    pthread_join(al->thread, NULL);
    access_log_free(al);
}
