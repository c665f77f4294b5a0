/* ringrelay stats and ringrelay server: the stats socket's command-line
 * clients. */
#ifndef RINGRELAY_STATS_CLIENT_H
#define RINGRELAY_STATS_CLIENT_H

/* argv[0] is "stats". Returns the exit status. */
int stats_client_main(int argc, char **argv);

/* argv[0] is "server": ringrelay server drain|ready|maint|weight. Returns
 * the exit status. */
int server_client_main(int argc, char **argv);

#endif
