/* The registry: which counter slot each listener, backend and server of a
 * configuration has. A name seen before keeps its slot, so its counters
 * (stats.h) and its state (server_state.h) outlive a reload that keeps
 * the name; a slot whose name the configuration no longer has is reused
 * last. Written by the main thread, read by the stats thread and the
 * access log; workers only use the slot numbers in their runtime. */
#ifndef RINGRELAY_REGISTRY_H
#define RINGRELAY_REGISTRY_H

#include "runtime.h"
#include "stats.h"

#include <stdint.h>

/* Gives rt's listeners, backends and servers their slots (rt->st_*), and
 * each server its slot's state (server_state_bind(): a server the
 * configuration before did not have starts fresh). Main thread, before
 * workers see rt. */
void registry_assign(struct runtime *rt);

/* The names behind the slots, for readers. */
struct registry_names {
    int n_listeners, n_backends, n_servers; /* slots used */
    char listener[STATS_MAX_LISTENERS][CONFIG_NAME_MAX];
    char backend[STATS_MAX_BACKENDS][CONFIG_NAME_MAX];
    struct {
        uint16_t backend; /* its backend's slot */
        char key[CONFIG_PATH_MAX + 8];
    } server[STATS_MAX_SERVERS];
    /* In the running configuration: its index there, or -1. */
    int32_t listener_index[STATS_MAX_LISTENERS], backend_index[STATS_MAX_BACKENDS];
    int32_t server_index[STATS_MAX_SERVERS]; /* backend * CONFIG_MAX_SERVERS + server */
};

void registry_read(struct registry_names *out);

#endif
