/* ringrelay doctor ADDR:PORT [--sni NAME]: which PROXY header a TLS backend
 * expects, found by trying each, and the configuration line that follows. */
#ifndef RINGRELAY_DOCTOR_H
#define RINGRELAY_DOCTOR_H

/* argv[0] is "doctor". Prints the probes and a verdict; returns the exit
 * status: 0 when some probe completed a handshake, 1 when none did, 2 on
 * bad usage. */
int doctor_main(int argc, char **argv);

#endif
