/* libFuzzer target for the inbound PROXY parser (and the first-bytes
 * sniffer that explains a refusal). The first input byte picks the mode and
 * the v2 cap; the rest is the stream. Checks the parser's contract: a
 * result within the input, the same verdict for a prefix, TLVs that walk
 * exactly to the end. */
#include "proxy_parse.h"
#include "sniff.h"

#include <errno.h>
#include <stdlib.h>

static void check_tlvs(const struct proxy_header *h, const uint8_t *buf, size_t consumed)
{
    size_t pos = 0;
    const uint8_t *v;
    uint8_t type;
    uint16_t len;

    if (!h->tlv)
        return;
    if (h->tlv < buf || h->tlv + h->tlv_len > buf + consumed)
        abort();
    while (proxy_tlv_next(h, &pos, &type, &v, &len))
        if (v + len > h->tlv + h->tlv_len)
            abort();
    if (pos != h->tlv_len)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t caps[] = {16, 28, 107, 4096};
    struct proxy_header h, again;
    enum proxy_in mode;
    size_t cap;
    int ret;

    if (size < 1)
        return 0;
    mode = (enum proxy_in)(1 + data[0] % 3); /* v1, v2, any */
    cap = caps[(data[0] >> 2) % 4];
    data++;
    size--;
    (void)sniff_first_bytes(data, size);
    ret = proxy_parse(data, size, mode, cap, &h);
    if (ret == -EPROTO && !h.why)
        abort();
    if (ret == -EAGAIN || ret == -EPROTO)
        return 0;
    if (ret <= 0 || (size_t)ret > size)
        abort();
    check_tlvs(&h, data, (size_t)ret);
    /* The header alone parses the same; one byte less needs more. */
    if (proxy_parse(data, (size_t)ret, mode, cap, &again) != ret)
        abort();
    if (proxy_parse(data, (size_t)ret - 1, mode, cap, &again) != -EAGAIN)
        abort();
    return 0;
}
