/* The access log: one line per finished connection. A worker only copies
 * a fixed-size record into its own ring (single producer, single
 * consumer; when the ring is full the record is dropped and counted); one
 * writer thread formats the lines and writes them, so a slow disk never
 * blocks a worker. */
#ifndef RINGRELAY_ACCESS_LOG_H
#define RINGRELAY_ACCESS_LOG_H

#include "addr.h"
#include "config.h"

#include <stdatomic.h>
#include <stdint.h>

#define ACCESS_SNI_MAX 128 /* longer names are cut */
#define ACCESS_ALPN_MAX 16

#define ACCESS_HAS_DIRECT 0x1 /* direct differs: the client came through a PROXY header */
#define ACCESS_HAS_BACKEND 0x2
#define ACCESS_HAS_SERVER 0x4

struct access_record {
    uint64_t start_us, end_us; /* CLOCK_MONOTONIC */
    uint32_t conn_id;
    uint16_t worker;
    uint8_t end; /* enum conn_end */
    uint8_t flags;
    uint16_t listener, backend, server; /* stats slots, for their names */
    uint32_t t_open, t_first;           /* us after start; 0: never */
    uint64_t bytes[2];                  /* from the client, from the server */
    union sockaddr_inet client, direct;
    char sni[ACCESS_SNI_MAX];
    char alpn[ACCESS_ALPN_MAX];
};

struct access_ring;
struct access_log;

/* Opens path ("stderr" or a file, appended to) and starts the writer for
 * n_workers rings. NULL with err filled. */
struct access_log *access_log_start(const char *path, enum access_log_format format, int n_workers,
                                    uint64_t instance, char *err, size_t errlen);

/* Writes what the rings still hold, stops the writer, closes the file. */
void access_log_stop(struct access_log *al);

/* Asks the writer to reopen the file (after logrotate moved it). */
void access_log_reopen(struct access_log *al);

/* Worker id's ring. */
struct access_ring *access_log_ring(struct access_log *al, int id);

/* A slot for the next record, or NULL when the ring is full. */
struct access_record *access_ring_slot(struct access_ring *r);

/* Hands the record filled in the slot to the writer. */
void access_ring_commit(struct access_ring *r);

struct registry_names;

/* Formats one record as a line (text or JSON, with the newline), naming
 * listener, backend and server from names; wall_offset_us turns the
 * monotonic times into wall-clock ones. Returns the length (cut at cap). */
size_t access_log_format(const struct access_record *rec, enum access_log_format format,
                         uint64_t instance, int64_t wall_offset_us,
                         const struct registry_names *names, char *buf, size_t cap);

#endif
