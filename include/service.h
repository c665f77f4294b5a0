/* Life under a service manager: readiness and status for systemd
 * (sd_notify), the watchdog's interval, dropping root once the sockets are
 * open, and starting a successor process for a hot upgrade. */
#ifndef RINGRELAY_SERVICE_H
#define RINGRELAY_SERVICE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Sends one notification ("READY=1\nSTATUS=...") to $NOTIFY_SOCKET, if
 * set; nothing otherwise. */
void service_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The watchdog interval systemd asked for, in microseconds; 0: none. */
uint64_t service_watchdog_usec(void);

/* Looks up a group by name. Returns 0 or -ENOENT with err filled. */
int service_group(const char *name, gid_t *gid, char *err, size_t errlen);

/* Becomes user (and group, or the user's own) for good, keeping only
 * CAP_NET_BIND_SERVICE so a reload can still bind ports below 1024.
 * Returns 0 or -errno with err filled. */
int service_drop_privileges(const char *user, const char *group, char *err, size_t errlen);

/* Starts the binary at exe with argv, as the successor of this process
 * (it binds beside this one, then asks it to drain). Returns its pid or
 * -errno. */
pid_t service_spawn_successor(const char *exe, char *const argv[]);

/* The process this one succeeds (it started us for an upgrade), or 0. */
pid_t service_predecessor(void);

#endif
