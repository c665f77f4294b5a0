/* First-bytes classification for diagnosis. */
#include "sniff.h"

#include "proxy.h"

#include <string.h>

static int prefix_of(const uint8_t *p, size_t len, const char *sig, size_t sig_len)
{
    return memcmp(p, sig, len < sig_len ? len : sig_len) == 0;
}

static int http_request(const uint8_t *p, size_t len)
{
    static const char *const methods[] = {"GET ",    "POST ",        "HEAD ",    "PUT ",
                                          "DELETE ", "PATCH ",       "OPTIONS ", "CONNECT ",
                                          "TRACE ",  "PRI * HTTP/2", NULL};

    for (int i = 0; methods[i]; i++) {
        size_t n = strlen(methods[i]);
        if (len >= n && memcmp(p, methods[i], n) == 0)
            return 1;
    }
    return 0;
}

int sniff_tls_record(const uint8_t *p, size_t len)
{
    return len >= 1 && p[0] >= 0x14 && p[0] <= 0x17 && (len < 2 || p[1] == 0x03);
}

enum sniff_kind sniff_first_bytes(const uint8_t *p, size_t len)
{
    if (len == 0)
        return SNIFF_OTHER;
    if (prefix_of(p, len, "PROXY ", 6))
        return SNIFF_PROXY_V1;
    if (prefix_of(p, len, PROXY_V2_SIG, PROXY_V2_SIG_LEN))
        return SNIFF_PROXY_V2;
    if (p[0] == 0x16 && (len < 2 || p[1] == 0x03))
        return SNIFF_TLS;
    if (http_request(p, len))
        return SNIFF_HTTP;
    return SNIFF_OTHER;
}
