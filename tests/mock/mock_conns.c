#include "mock_conns.h"

#include <stdint.h>
#include <stdlib.h>

#define INITIAL_BUCKETS 1024

static size_t slot(const struct mock_conn_table *t, const void *key)
{
    uint64_t h = (uint64_t)(uintptr_t)key * 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 32) & (t->nbuckets - 1);
}

int mock_conns_init(struct mock_conn_table *t)
{
    t->count = 0;
    t->nbuckets = INITIAL_BUCKETS;
    t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
    return t->buckets ? 0 : -1;
}

void mock_conns_destroy(struct mock_conn_table *t)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct mock_conn *c = t->buckets[i];
        while (c) {
            struct mock_conn *next = c->next;
            free(c);
            c = next;
        }
    }
    free(t->buckets);
    t->buckets = NULL;
    t->count = 0;
}

struct mock_conn *mock_conns_find(const struct mock_conn_table *t,
                                  const struct evhttp_connection *evcon)
{
    for (struct mock_conn *c = t->buckets[slot(t, evcon)]; c; c = c->next)
        if (c->evcon == evcon)
            return c;
    return NULL;
}

/* Doubles the bucket array once chains average more than two entries. */
static int grow(struct mock_conn_table *t)
{
    struct mock_conn_table bigger = {.nbuckets = t->nbuckets * 2};
    bigger.buckets = calloc(bigger.nbuckets, sizeof(*bigger.buckets));
    if (!bigger.buckets)
        return -1;
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct mock_conn *c = t->buckets[i];
        while (c) {
            struct mock_conn *next = c->next;
            size_t s = slot(&bigger, c->evcon);
            c->next = bigger.buckets[s];
            bigger.buckets[s] = c;
            c = next;
        }
    }
    free(t->buckets);
    t->buckets = bigger.buckets;
    t->nbuckets = bigger.nbuckets;
    return 0;
}

int mock_conns_add(struct mock_conn_table *t, struct mock_conn *c)
{
    if (t->count >= t->nbuckets * 2 && grow(t))
        return -1;
    size_t s = slot(t, c->evcon);
    c->next = t->buckets[s];
    t->buckets[s] = c;
    t->count++;
    return 0;
}

void mock_conns_remove(struct mock_conn_table *t, struct mock_conn *c)
{
    for (struct mock_conn **p = &t->buckets[slot(t, c->evcon)]; *p;
         p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            t->count--;
            return;
        }
    }
}
