/* libFuzzer target for the configuration parser: any text either parses
 * (and then dumps to text that parses to the same listener and backend
 * counts) or fails with one error line naming the file. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct config cfg, again;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512] = "", *out = NULL;
    size_t outlen = 0;
    FILE *f;

    if (config_parse(&cfg, "f.yaml", (const char *)data, size, err, sizeof(err)) != 0) {
        if (strncmp(err, "f.yaml:", 7) != 0 || strchr(err, '\n'))
            abort();
        return 0;
    }
    f = open_memstream(&out, &outlen);
    if (!f) {
        config_free(&cfg);
        return 0;
    }
    config_dump(&cfg, f);
    fclose(f);
    if (config_parse(&again, "dump", out, outlen, err, sizeof(err)) != 0 ||
        again.n_listeners != cfg.n_listeners || again.n_backends != cfg.n_backends)
        abort();
    config_free(&again);
    config_free(&cfg);
    free(out);
    return 0;
}
