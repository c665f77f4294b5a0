/* PROXY protocol v1/v2 header stripper for the benchmark peers. */
#include "pp_strip.h"

#include <string.h>

#define V2_FIXED 16
#define V2_SIG_LEN 12

static const uint8_t v2_sig[V2_SIG_LEN] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                           0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
static const char v1_sig[] = "PROXY ";

void pp_strip_init(struct pp_strip *st)
{
    memset(st, 0, sizeof(*st));
}

/* Decides the kind from the first byte; the rest of the signature is checked
 * byte by byte as it arrives. */
static enum pp_kind first_byte_kind(uint8_t b)
{
    if (b == v2_sig[0])
        return PP_KIND_V2;
    if (b == (uint8_t)v1_sig[0])
        return PP_KIND_V1;
    return PP_KIND_NONE;
}

/* One byte of a v1 line. Returns PP_MORE, PP_DONE, PP_NONE or PP_BAD. */
static enum pp_result v1_byte(struct pp_strip *st, uint8_t b)
{
    if (st->have < sizeof(v1_sig) - 1 && b != (uint8_t)v1_sig[st->have])
        return PP_NONE;
    if (st->have >= PP_V1_MAX)
        return PP_BAD;
    st->held[st->have++] = b;
    if (b == '\n')
        return st->have >= 2 && st->held[st->have - 2] == '\r' ? PP_DONE : PP_BAD;
    return PP_MORE;
}

/* One byte of the fixed 16-byte part of a v2 header. */
static enum pp_result v2_fixed_byte(struct pp_strip *st, uint8_t b)
{
    if (st->have < V2_SIG_LEN && b != v2_sig[st->have])
        return PP_NONE;
    if (st->have == V2_SIG_LEN && (b & 0xf0) != 0x20)
        return PP_BAD;
    st->held[st->have++] = b;
    if (st->have == V2_FIXED)
        st->total = V2_FIXED + ((uint32_t)st->held[14] << 8 | st->held[15]);
    return st->have == V2_FIXED && st->total == V2_FIXED ? PP_DONE : PP_MORE;
}

/* Skips the address block and TLVs of a v2 header: no need to keep them. */
static enum pp_result v2_skip(struct pp_strip *st, size_t avail, size_t *used)
{
    size_t want = st->total - st->have;
    size_t n = avail < want ? avail : want;

    st->have += (uint32_t)n;
    *used += n;
    return st->have == st->total ? PP_DONE : PP_MORE;
}

enum pp_result pp_strip_feed(struct pp_strip *st, const uint8_t *data, size_t len, size_t *used)
{
    enum pp_result r = PP_MORE;

    *used = 0;
    while (*used < len) {
        if (st->kind == PP_KIND_UNKNOWN)
            st->kind = first_byte_kind(data[*used]);
        if (st->kind == PP_KIND_V2 && st->have >= V2_FIXED)
            return v2_skip(st, len - *used, used);
        if (st->kind == PP_KIND_V1)
            r = v1_byte(st, data[*used]);
        else if (st->kind == PP_KIND_V2)
            r = v2_fixed_byte(st, data[*used]);
        else
            r = PP_NONE;
        if (r == PP_NONE) {
            st->kind = PP_KIND_NONE;
            return r;
        }
        (*used)++;
        if (r != PP_MORE)
            return r;
    }
    return r;
}

void pp_count(struct pp_counts *n, const struct pp_strip *st, enum pp_result r)
{
    if (r == PP_BAD)
        n->bad++;
    else if (r == PP_NONE)
        n->none++;
    else if (st->kind == PP_KIND_V1)
        n->v1++;
    else
        n->v2++;
}
