/* Command-line parsing: the few words that say what to do, and flags
 * handed to the configuration table as they were given. */
#include "options.h"

#include <errno.h>
#include <string.h>

void options_usage(FILE *out)
{
    fputs("usage: ringrelay --listen ADDR:PORT [--listen ...] --backend ADDR:PORT [options]\n"
          "       ringrelay [-c FILE] [options]   run from a configuration file\n"
          "       ringrelay -t [-c FILE]          check a configuration file and exit\n"
          "       ringrelay --dump-config [-c FILE]  print it with every default, and exit\n"
          "       ringrelay doctor ADDR:PORT [--sni NAME]\n"
          "       ringrelay stats [--socket PATH] [--json|--prometheus|--servers|--conns]\n"
          "       ringrelay server [--socket PATH] drain|ready|maint|weight BACKEND/SRV [N]\n"
          "\n"
          "Accepts TCP connections, connects each to the backend, writes a PROXY protocol\n"
          "header carrying the client's address, then relays the bytes both ways untouched.\n"
          "Each flag sets the configuration key of the same name (with a file, a listener's\n"
          "or a backend's flag sets it in every listener or backend).\n"
          "\n",
          out);
    config_flags_usage(out);
    fputs("  --help, --version\n"
          "\n"
          "DUR: 500ms, 5s, 2m, 1h, or a number of seconds.\n"
          "FILE: " CONFIG_DEFAULT_PATH " unless -c names another.\n"
          "\n"
          "doctor probes a TLS backend with no header, PROXY v1, v2 and v2 LOCAL, each\n"
          "followed by a TLS handshake, and says which header it expects.\n",
          out);
}

/* One flag that sets a key: "--flag value" or "--flag=value", at argv[*i]. */
static int take_flag(struct options *o, int argc, char *const argv[], int *i, char *err,
                     size_t errlen)
{
    const char *arg = argv[*i], *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    const char *flag = config_flag(arg, len);

    if (!flag) {
        snprintf(err, errlen, "%.*s: unknown option (see --help)", (int)len, arg);
        return -EINVAL;
    }
    if (!eq && *i + 1 >= argc) {
        snprintf(err, errlen, "%s: missing value", flag);
        return -EINVAL;
    }
    if (o->n_args == OPTIONS_MAX_ARGS) {
        snprintf(err, errlen, "%s: more than %d flags on one command line", flag, OPTIONS_MAX_ARGS);
        return -EINVAL;
    }
    o->args[o->n_args].flag = flag;
    o->args[o->n_args++].value = eq ? eq + 1 : argv[++*i];
    return 0;
}

/* Whether the flags describe listeners and backends themselves. */
static int describes(const struct options *o)
{
    for (int i = 0; i < o->n_args; i++)
        if (strcmp(o->args[i].flag, "--listen") == 0 || strcmp(o->args[i].flag, "--backend") == 0 ||
            strcmp(o->args[i].flag, "--route") == 0)
            return 1;
    return 0;
}

int options_parse(struct options *o, int argc, char *const argv[], char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return OPTIONS_HELP;
        if (strcmp(arg, "--version") == 0)
            return OPTIONS_VERSION;
        if (strcmp(arg, "-t") == 0 || strcmp(arg, "--dump-config") == 0) {
            *(arg[1] == 't' ? &o->config_check : &o->config_dump) = 1;
        } else if (strcmp(arg, "-c") == 0) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "-c: missing value (the configuration file)");
                return -EINVAL;
            }
            o->config_path = argv[++i];
        } else if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "%s: unexpected argument (options start with --)", arg);
            return -EINVAL;
        } else if (take_flag(o, argc, argv, &i, err, errlen) < 0) {
            return -EINVAL;
        }
    }
    /* Neither -c nor flags that describe listeners and backends: the usual file. */
    if (!o->config_path && !describes(o))
        o->config_path = CONFIG_DEFAULT_PATH;
    if (config_check_args(o->args, o->n_args, o->config_path != NULL, err, errlen) < 0)
        return -EINVAL;
    return OPTIONS_RUN;
}
