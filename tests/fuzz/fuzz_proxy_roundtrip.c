/* libFuzzer property for the PROXY encoder: whatever addresses and TLVs the
 * input describes, the encoded header parses back (v1 and v2, TLVs in
 * order, the CRC32C checked) to exactly what was encoded, and the parser
 * takes exactly its bytes. */
#include "proxy.h"
#include "proxy_parse.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

/* Reads an address of the family picked by the input; advances the input. */
static void take_addr(const uint8_t **d, size_t *n, int v6, union sockaddr_inet *a)
{
    uint8_t raw[18] = {0};
    size_t want = v6 ? 18 : 6;

    memcpy(raw, *d, *n < want ? *n : want);
    *d += *n < want ? *n : want;
    *n -= *n < want ? *n : want;
    memset(a, 0, sizeof(*a));
    if (v6) {
        a->in6.sin6_family = AF_INET6;
        memcpy(&a->in6.sin6_addr, raw, 16);
        a->in6.sin6_port = (uint16_t)(raw[16] << 8 | raw[17]);
        /* A v4-mapped pair is written as TCP4: compare after unmapping. */
    } else {
        a->in.sin_family = AF_INET;
        memcpy(&a->in.sin_addr, raw, 4);
        a->in.sin_port = (uint16_t)(raw[4] << 8 | raw[5]);
    }
}

static int same_addr(const union sockaddr_inet *a, const union sockaddr_inet *b)
{
    union sockaddr_inet x = *a, y = *b;

    addr_unmap_v4(&x);
    addr_unmap_v4(&y);
    if (x.sa.sa_family != y.sa.sa_family)
        return 0;
    if (x.sa.sa_family == AF_INET)
        return x.in.sin_addr.s_addr == y.in.sin_addr.s_addr && x.in.sin_port == y.in.sin_port;
    return memcmp(&x.in6.sin6_addr, &y.in6.sin6_addr, 16) == 0 &&
           x.in6.sin6_port == y.in6.sin6_port;
}

static int same_family(const union sockaddr_inet *a, const union sockaddr_inet *b)
{
    union sockaddr_inet x = *a, y = *b;

    addr_unmap_v4(&x);
    addr_unmap_v4(&y);
    return x.sa.sa_family == y.sa.sa_family;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[PROXY_V2_CAP_MAX];
    union sockaddr_inet src, dst;
    struct proxy_header h;
    uint8_t types[64];
    size_t offs[64], lens[64], len, pos = 0, n_tlv = 0;
    const uint8_t *tlv_data, *v;
    uint16_t vlen;
    uint8_t type;
    int v6, v2, crc, ret;

    if (size < 1)
        return 0;
    v6 = data[0] & 1;
    v2 = (data[0] >> 1) & 1;
    crc = (data[0] >> 2) & 1;
    data++;
    size--;
    take_addr(&data, &size, v6, &src);
    take_addr(&data, &size, v6, &dst);
    ret = proxy_encode(v2 ? PROXY_V2 : PROXY_V1, buf, sizeof(buf), &src.sa, &dst.sa);
    if (ret <= 0)
        abort();
    len = (size_t)ret;
    /* The rest: TLVs as (type, length byte, value). */
    tlv_data = data;
    while (v2 && size >= 2 && n_tlv < 64) {
        size_t l = data[1] < size - 2 ? data[1] : size - 2;
        if (data[0] == PROXY_TLV_CRC32C || data[0] == PROXY_TLV_SSL || data[0] == PROXY_TLV_NOOP ||
            data[0] == PROXY_TLV_UNIQUE_ID) /* types the parser checks the shape of */
            types[n_tlv] = 0xE0;
        else
            types[n_tlv] = data[0];
        offs[n_tlv] = (size_t)(data + 2 - tlv_data);
        lens[n_tlv] = l;
        if (proxy_v2_add_tlv(buf, sizeof(buf), &len, types[n_tlv], data + 2, l) < 0)
            break; /* over the 16-bit length: the header stays as it was */
        n_tlv++;
        data += 2 + l;
        size -= 2 + l;
    }
    if (v2 && crc && proxy_v2_add_crc32c(buf, sizeof(buf), &len) < 0)
        crc = 0;
    ret = proxy_parse(buf, len, PROXY_IN_ANY, sizeof(buf), &h);
    if (ret != (int)len || h.version != (v2 ? 2 : 1))
        abort();
    /* One address v4-mapped and the other not: the families differ, and the
     * header says so (v1 UNKNOWN, v2 LOCAL) rather than mixing them. */
    if (h.has_addr != same_family(&src, &dst))
        abort();
    if (h.has_addr && (!same_addr(&h.src, &src) || !same_addr(&h.dst, &dst)))
        abort();
    for (size_t i = 0; i < n_tlv; i++) {
        if (!proxy_tlv_next(&h, &pos, &type, &v, &vlen) || type != types[i] || vlen != lens[i] ||
            memcmp(v, tlv_data + offs[i], vlen) != 0)
            abort();
    }
    if (v2 && crc && (!proxy_tlv_next(&h, &pos, &type, &v, &vlen) || type != PROXY_TLV_CRC32C))
        abort();
    if (proxy_tlv_next(&h, &pos, &type, &v, &vlen))
        abort();
    return 0;
}
