/* ringrelay stats: the stats socket's command-line client. */
#ifndef RINGRELAY_STATS_CLIENT_H
#define RINGRELAY_STATS_CLIENT_H

/* argv[0] is "stats". Returns the exit status. */
int stats_client_main(int argc, char **argv);

#endif
