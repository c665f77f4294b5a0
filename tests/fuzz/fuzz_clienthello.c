/* libFuzzer target for the ClientHello peek. The first input byte picks
 * the size cap; the rest is the stream. Checks the contract: outputs inside
 * the buffers, a need beyond what was given, the same verdict again. */
#include "clienthello.h"

#include <errno.h>
#include <stdlib.h>

static uint8_t scratch[16384];

static int inside(const uint8_t *p, size_t n, const uint8_t *buf, size_t len)
{
    return (p >= buf && p + n <= buf + len) || (p >= scratch && p + n <= scratch + sizeof(scratch));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t caps[] = {64, 512, 4096, 16384};
    struct client_hello ch;
    size_t cap, pos = 0, len;
    const uint8_t *name;
    int ret;

    if (size < 1)
        return 0;
    cap = caps[data[0] % 4];
    data++;
    size--;
    ret = clienthello_parse(data, size, scratch, cap, &ch);
    if (ret == -EAGAIN && ch.need <= size)
        abort();
    if (ret != 0)
        return 0;
    if (ch.sni && (!inside(ch.sni, ch.sni_len, data, size) || ch.sni_len == 0))
        abort();
    if (ch.alpn && !inside(ch.alpn, ch.alpn_len, data, size))
        abort();
    while (clienthello_alpn_next(&ch, &pos, &name, &len))
        if (len == 0 || pos > ch.alpn_len)
            abort();
    return 0;
}
