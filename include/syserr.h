/* What an errno value says about whose fault a failure is. */
#ifndef RINGRELAY_SYSERR_H
#define RINGRELAY_SYSERR_H

#include <errno.h>

/* Whether err means this process ran short of descriptors or memory: a
 * local shortage to wait out, which says nothing about the peer. */
static inline int err_out_of_resources(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

#endif
