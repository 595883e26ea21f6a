/* One worker thread of the mock: its own event_base, evhttp and
 * connection table; listeners share the port through SO_REUSEPORT. */
#ifndef SLUICE_MOCK_SERVER_H
#define SLUICE_MOCK_SERVER_H

#include <pthread.h>
#include <sys/socket.h>

#include "mock.h"
#include "mock_conns.h"

struct event;
struct event_base;
struct evhttp;

struct mock_worker {
    struct mock_app *app;
    struct event_base *base;
    struct evhttp *http;
    struct event *stop; /* readable stop pipe: leave the loop */
    struct mock_conn_table conns;
    pthread_t thread;
};

/* stop_fd: read end of a pipe that becomes readable at shutdown. */
int mock_worker_init(struct mock_worker *w, struct mock_app *app, int stop_fd);
/* Binds a SO_REUSEPORT listener; writes the bound address to *bound. */
int mock_worker_listen(struct mock_worker *w, const struct sockaddr *addr,
                       socklen_t len, struct sockaddr_storage *bound);
void *mock_worker_run(void *worker);
/* Closes every connection (ending their calls) and frees the worker. */
void mock_worker_free(struct mock_worker *w);

#endif
