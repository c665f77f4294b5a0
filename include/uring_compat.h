/* What Debian 12's liburing 2.3 headers lack of the kernel interface
 * ringrelay uses where the running kernel has it. Values are the kernel's
 * uapi ones; a feature bit tells at run time whether to use them. */
#ifndef RINGRELAY_URING_COMPAT_H
#define RINGRELAY_URING_COMPAT_H

#include <liburing.h>

/* recv/send bundles (Linux 6.10): one completion covers several buffers. */
#ifndef IORING_RECVSEND_BUNDLE
#define IORING_RECVSEND_BUNDLE (1U << 4)
#endif
#ifndef IORING_FEAT_RECVSEND_BUNDLE
#define IORING_FEAT_RECVSEND_BUNDLE (1U << 14)
#endif

/* Batched waits (Linux 6.12): io_uring_getevents_arg's pad became
 * min_wait_usec; once it has passed, one completion is enough to return. */
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15)
#endif

/* Socket commands (IORING_OP_URING_CMD on a socket, Linux 6.7): liburing
 * 2.5 has io_uring_prep_cmd_sock(); 2.3's SQE lacks the names of the
 * fields they use (cmd_op in off, level and optname in addr, optlen in
 * splice_fd_in, optval in addr3). */
#ifndef SOCKET_URING_OP_SETSOCKOPT
#define SOCKET_URING_OP_SETSOCKOPT 3
#endif

#endif
