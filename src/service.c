/* systemd notification, privileges, and the upgrade hand-over. */
#include "service.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#define PREDECESSOR_ENV "RINGRELAY_UPGRADE_FROM"

extern char **environ;

void service_notify(const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (!getenv("NOTIFY_SOCKET"))
        return;
    va_start(ap, fmt);
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): a false report
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    (void)sd_notify(0, msg);
}

uint64_t service_watchdog_usec(void)
{
    uint64_t usec = 0;

    return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

int service_group(const char *name, gid_t *gid, char *err, size_t errlen)
{
    struct group *g = getgrnam(name);

    if (!g) {
        snprintf(err, errlen, "group %s: no such group", name);
        return -ENOENT;
    }
    *gid = g->gr_gid;
    return 0;
}

/* Keeps CAP_NET_BIND_SERVICE permitted and effective, nothing else. */
static int keep_bind_capability(void)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[2] = {{0}};

    d[0].permitted = d[0].effective = 1U << CAP_NET_BIND_SERVICE;
    return syscall(SYS_capset, &h, d) == -1 ? -errno : 0;
}

int service_drop_privileges(const char *user, const char *group, char *err, size_t errlen)
{
    struct passwd *pw = getpwnam(user);
    gid_t gid;
    int ret;

    if (!pw) {
        snprintf(err, errlen, "user %s: no such user", user);
        return -ENOENT;
    }
    gid = pw->pw_gid;
    if (*group && (ret = service_group(group, &gid, err, errlen)) < 0)
        return ret;
    if (geteuid() != 0) {
        if (geteuid() == pw->pw_uid && getegid() == gid)
            return 0;
        snprintf(err, errlen, "user %s: only root can switch to another user", user);
        return -EPERM;
    }
    /* glibc applies set*id to every thread; capabilities stay with this
     * one (the only thread that binds), through PR_SET_KEEPCAPS. */
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) == -1 || setgroups(1, &gid) == -1 ||
        setresgid(gid, gid, gid) == -1 || setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1 ||
        prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) == -1 || (errno = -keep_bind_capability()) != 0) {
        snprintf(err, errlen, "user %s: cannot switch: %s", user, strerror(errno));
        return -errno;
    }
    (void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0); /* core dumps and /proc stay readable */
    return 0;
}

pid_t service_spawn_successor(const char *exe, char *const argv[])
{
    posix_spawnattr_t attr;
    sigset_t none;
    char var[64];
    pid_t pid;
    int ret;

    snprintf(var, sizeof(var), "%d", getpid());
    if (setenv(PREDECESSOR_ENV, var, 1) == -1)
        return -errno;
    sigemptyset(&none);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    ret = posix_spawn(&pid, exe, NULL, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    unsetenv(PREDECESSOR_ENV);
    return ret ? -ret : pid;
}

pid_t service_predecessor(void)
{
    const char *v = getenv(PREDECESSOR_ENV);
    long pid = v ? strtol(v, NULL, 10) : 0;

    unsetenv(PREDECESSOR_ENV);
    return pid > 1 && pid == getppid() ? (pid_t)pid : 0;
}
