/* libFuzzer target for the stats socket's request parser. Checks the
 * contract: what it takes lies inside the input, ends with a newline, and
 * parsing again gives the same verdict. */
#include "stats_report.h"

#include <errno.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    enum stats_cmd cmd, again;
    int http, http2;
    int ret = stats_request_parse(buf, size, &cmd, &http);

    if (ret == -EAGAIN || ret == -EPROTO)
        return 0;
    if (ret <= 0 || (size_t)ret > size || buf[ret - 1] != '\n')
        abort();
    if (cmd > STATS_CMD_NOT_FOUND || http < STATS_LINE || http > STATS_HTTP_HEAD)
        abort();
    if (stats_request_parse(buf, (size_t)ret, &again, &http2) != ret || again != cmd ||
        http2 != http)
        abort();
    return 0;
}
