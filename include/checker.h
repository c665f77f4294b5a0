/* Health checks, off the data path: one thread per backend whose
 * health_check mode is not off, probing each server at its interval with
 * the same probes as ringrelay doctor, and setting the pool's up/down
 * through its atomics. Workers report connect failures (passive checks). */
#ifndef RINGRELAY_CHECKER_H
#define RINGRELAY_CHECKER_H

#include "runtime.h"

struct checker;

/* Starts the threads for rt. Returns NULL only when out of memory or
 * threads; a runtime without checks gets a checker that does nothing. */
struct checker *checker_start(struct runtime *rt);

/* Stops and joins the threads (each finishes its probe first). */
void checker_stop(struct checker *ck);

/* A worker's connect to server s of backend b failed (ok 0) or succeeded:
 * fall failures in a row take the server down until a check passes. Only
 * for backends with health checks, which can bring it back. */
void checker_connect_result(struct runtime *rt, int b, int s, int ok);

#endif
