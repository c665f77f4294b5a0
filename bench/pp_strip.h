/* Strips a leading PROXY protocol v1 or v2 header from the start of a byte
 * stream fed in arbitrary pieces, and counts headers by kind. Pure: no I/O,
 * no allocation. */
#ifndef BENCH_PP_STRIP_H
#define BENCH_PP_STRIP_H

#include <stddef.h>
#include <stdint.h>

/* The longest v1 line, "PROXY ... \r\n" included (spec: 107 bytes). */
#define PP_V1_MAX 107

enum pp_result {
    PP_MORE, /* every byte fed belongs to an unfinished header */
    PP_DONE, /* the header ended; bytes after *used are payload */
    PP_NONE, /* no header: held bytes, then bytes after *used, are payload */
    PP_BAD,  /* a header started but is malformed */
};

enum pp_kind {
    PP_KIND_UNKNOWN,
    PP_KIND_V1,
    PP_KIND_V2,
    PP_KIND_NONE,
};

struct pp_strip {
    enum pp_kind kind;
    uint32_t have;  /* header bytes seen so far */
    uint32_t total; /* v2: full header length once the fixed part is in */
    uint8_t held[PP_V1_MAX + 1];
};

/* How many streams began with each kind of header. */
struct pp_counts {
    unsigned long long v1, v2, none, bad;
};

/* Starts a stream. */
void pp_strip_init(struct pp_strip *st);

/* Feeds the next len bytes of the stream. Sets *used to how many of them the
 * header took. On PP_NONE the first st->have bytes of st->held were taken
 * from earlier pieces and are payload too; hand them on before data+*used.
 * Once PP_DONE or PP_NONE has been returned, do not feed the stream again. */
enum pp_result pp_strip_feed(struct pp_strip *st, const uint8_t *data, size_t len, size_t *used);

/* Counts the stream's header in n once pp_strip_feed() has returned r, which
 * must be PP_DONE, PP_NONE or PP_BAD. */
void pp_count(struct pp_counts *n, const struct pp_strip *st, enum pp_result r);

#endif
