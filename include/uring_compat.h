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

#endif
