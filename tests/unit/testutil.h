/* Helpers shared by the unit tests: hex vectors and inputs placed against
 * an unreadable page, so a parser that reads one byte too far crashes. */
#ifndef RINGRELAY_TESTUTIL_H
#define RINGRELAY_TESTUTIL_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Decodes hex digits, skipping spaces, into out; returns the byte count. */
static inline size_t unhex(const char *hex, uint8_t *out)
{
    size_t n = 0;

    for (const char *p = hex; *p;) {
        unsigned v;
        if (*p == ' ') {
            p++;
            continue;
        }
        cr_assert_eq(sscanf(p, "%2x", &v), 1, "bad hex at '%s'", p);
        out[n++] = (uint8_t)v;
        p += 2;
    }
    return n;
}

#define GUARD_DATA_PAGES 20

/* Copies len bytes so that they end exactly where an unreadable page
 * begins; returns the copy. The region is reused by the next call. */
static inline const uint8_t *guard_place(const void *data, size_t len)
{
    static uint8_t *region;
    size_t page = (size_t)sysconf(_SC_PAGESIZE), room = GUARD_DATA_PAGES * page;

    if (!region) {
        region =
            mmap(NULL, room + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        cr_assert_neq(region, MAP_FAILED);
        cr_assert_eq(mprotect(region + room, page, PROT_NONE), 0);
    }
    cr_assert_leq(len, room);
    memcpy(region + room - len, data, len);
    return region + room - len;
}

#endif
