/* libFuzzer target for address and CIDR parsing: any string either fails
 * cleanly or parses to something that formats and parses back to the same
 * value; matching a parsed address against a parsed range never reads
 * outside either. */
#include "addr.h"
#include "cidr.h"
#include "route.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[256], text[ADDR_STRLEN > CIDR_STRLEN ? ADDR_STRLEN : CIDR_STRLEN];
    union sockaddr_inet a, b;
    struct sockaddr_un u;
    struct cidr c, d;
    int have_addr;

    if (size >= sizeof(s))
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    have_addr = addr_parse(s, &a) == 0;
    if (have_addr) {
        addr_format(&a.sa, text, sizeof(text));
        if (addr_parse(text, &b) != 0 || addr_len(&a.sa) != addr_len(&b.sa) ||
            memcmp(&a, &b, addr_len(&a.sa)) != 0)
            abort();
    }
    if (addr_parse_unix(s, &u) == 0 && u.sun_path[0] != '/')
        abort();
    if (cidr_parse(s, &c) == 0) {
        cidr_format(&c, text, sizeof(text));
        if (cidr_parse(text, &d) != 0 || d.family != c.family || d.bits != c.bits ||
            memcmp(d.addr, c.addr, c.family == AF_INET ? 4 : 16) != 0)
            abort();
        if (have_addr)
            (void)cidr_match(&c, &a.sa);
    }
    (void)route_name_check(s, size);
    return 0;
}
