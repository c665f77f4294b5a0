/* Health checks, off the data path: one thread for every server of the
 * backends whose health_check mode is not off, probing many at once
 * (non-blocking, in an epoll loop of its own, at most rt->check_inflight
 * open together) with the same probes as ringrelay doctor, each server
 * again an interval after its last probe ended, and setting the pool's
 * up/down through its atomics. Workers report connect failures (passive
 * checks). */
#ifndef RINGRELAY_CHECKER_H
#define RINGRELAY_CHECKER_H

#include "runtime.h"

/* Probes open at once: one per checked server at start, within these;
 * their descriptors are in the budget (fd_budget.h). */
#define CHECKER_INFLIGHT_MIN 4
#define CHECKER_INFLIGHT_MAX 1024

struct checker;

/* Starts the thread for rt. Returns NULL only when out of memory or
 * threads; a runtime without checks gets a checker that does nothing. */
struct checker *checker_start(struct runtime *rt);

/* Stops and joins the thread at once: probes under way are dropped, so a
 * reload never waits for one. */
void checker_stop(struct checker *ck);

/* A worker's connect to server s of backend b failed (ok 0) or succeeded:
 * fall failures in a row take the server down until a check passes. Only
 * for backends with health checks, which can bring it back. */
void checker_connect_result(struct runtime *rt, int b, int s, int ok);

#endif
