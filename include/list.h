/* Intrusive circular doubly-linked list. */
#ifndef RINGRELAY_LIST_H
#define RINGRELAY_LIST_H

#include <stddef.h>

struct list_head {
    struct list_head *prev, *next;
};

static inline void list_init(struct list_head *h)
{
    h->prev = h->next = h;
}

static inline int list_empty(const struct list_head *h)
{
    return h->next == h;
}

static inline void list_del(struct list_head *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

static inline void list_add_tail(struct list_head *h, struct list_head *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

/* clang-format takes (p) for a cast and would glue the minus to it. */
// clang-format off
#define list_entry(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))
// clang-format on

#endif
