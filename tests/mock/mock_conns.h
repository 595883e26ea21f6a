/* Per-worker table of the client connections that sent a request, keyed
 * by evhttp connection. evhttp 2.1 has no per-connection user data, and
 * we need one to count connections and to find the request a close
 * interrupts. Single-threaded: each worker owns its table. */
#ifndef SLUICE_MOCK_CONNS_H
#define SLUICE_MOCK_CONNS_H

#include <stddef.h>

struct evhttp_connection;
struct mock_call;
struct mock_worker;

struct mock_conn {
    struct evhttp_connection *evcon;
    struct mock_worker *worker;
    struct mock_call *active; /* deferred reply or stream in progress */
    struct mock_conn *next;   /* hash chain */
};

struct mock_conn_table {
    struct mock_conn **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
};

int mock_conns_init(struct mock_conn_table *t);
/* Frees the table and any entries still in it. */
void mock_conns_destroy(struct mock_conn_table *t);
struct mock_conn *mock_conns_find(const struct mock_conn_table *t,
                                  const struct evhttp_connection *evcon);
/* Returns -1 on allocation failure (the entry is then not added). */
int mock_conns_add(struct mock_conn_table *t, struct mock_conn *c);
void mock_conns_remove(struct mock_conn_table *t, struct mock_conn *c);

#endif
