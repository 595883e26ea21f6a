#include "mock_server.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "mock_admin.h"
#include "mock_batches.h"
#include "mock_call.h"
#include "mock_endpoints.h"
#include "mock_http.h"
#include "mock_openai.h"

#define MAX_BODY_BYTES (64 << 20)
/* evhttp has one timeout for everything; keep it long so hung requests
 * and slow streams stay open as long as a test needs. */
#define IDLE_TIMEOUT_S 3600

/* ---- routing ---- */

struct route {
    const char *path; /* after the optional /v1 prefix */
    enum evhttp_cmd_type method;
    mock_handler_fn fn;
    size_t counter; /* offsetof(struct mock_stats, ...) */
};

static const struct route routes[] = {
    {"/chat/completions", EVHTTP_REQ_POST, mock_handle_chat,
     offsetof(struct mock_stats, chat_completions)},
    {"/completions", EVHTTP_REQ_POST, mock_handle_completions,
     offsetof(struct mock_stats, completions)},
    {"/responses", EVHTTP_REQ_POST, mock_handle_responses,
     offsetof(struct mock_stats, responses)},
    {"/embeddings", EVHTTP_REQ_POST, mock_handle_embeddings,
     offsetof(struct mock_stats, embeddings)},
    {"/models", EVHTTP_REQ_GET, mock_handle_models,
     offsetof(struct mock_stats, models)},
};

static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct mock_conn *conn = arg;
    struct mock_worker *w = conn->worker;
    if (conn->active)
        mock_call_client_gone(conn->active);
    mock_conns_remove(&w->conns, conn);
    free(conn);
    mock_stats_conn_close(&w->app->stats);
}

/* The table entry of the request's connection, made on its first request. */
static struct mock_conn *conn_for(struct mock_worker *w,
                                  struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct mock_conn *c = mock_conns_find(&w->conns, evcon);
    if (c || !evcon)
        return c;
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->evcon = evcon;
    c->worker = w;
    if (mock_conns_add(&w->conns, c)) {
        free(c);
        return NULL;
    }
    evhttp_connection_set_closecb(evcon, on_conn_close, c);
    /* Streams are many small writes: without TCP_NODELAY, Nagle holds the
     * second one until the peer's delayed ACK (40 ms per stream). */
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    int one = 1;
    if (bev)
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one,
                   sizeof(one));
    mock_stats_conn_open(&w->app->stats);
    return c;
}

static void model_by_id(struct mock_worker *w, struct evhttp_request *req,
                        struct mock_conn *conn, const char *id)
{
    char *decoded = evhttp_uridecode(id, 0, NULL);
    json_t *m = mock_model_json(decoded ? decoded : id);
    free(decoded);
    mock_reply(w, req, conn, 200, mock_json_evbuffer(m), 0);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct mock_worker *w = arg;
    struct mock_stats *s = &w->app->stats;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path)
        path = "";
    if (!strncmp(path, "/mock/", 6)) {
        mock_admin_handle(w, req, path);
        return;
    }

    mock_stats_begin(s);
    struct mock_conn *conn = conn_for(w, req);
    unsigned long num = atomic_fetch_add(&w->app->next_id, 1) + 1;
    char rid[40];
    snprintf(rid, sizeof(rid), "req_mock_%lu", num);
    mock_set_header(req, "x-request-id", rid);

    const char *rest = !strncmp(path, "/v1/", 4) ? path + 3 : path;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const struct route *r = &routes[i];
        if (strcmp(rest, r->path))
            continue;
        mock_stats_add((atomic_long *)(void *)((char *)s + r->counter), 1);
        if (method != r->method) {
            mock_reply_error(w, req, conn, 405, "Method not allowed.", NULL, 0);
            return;
        }
        r->fn(w, req, conn, num);
        return;
    }
    if (mock_batches_handle(w, req, conn, rest))
        return;
    if (!strncmp(rest, "/models/", 8) && rest[8] && method == EVHTTP_REQ_GET) {
        mock_stats_add(&s->models, 1);
        model_by_id(w, req, conn, rest + 8);
        return;
    }
    mock_stats_add(&s->not_found, 1);
    char msg[300];
    snprintf(msg, sizeof(msg), "Unknown request URL: %s %.200s.",
             evhttp_request_get_command(req) == EVHTTP_REQ_POST ? "POST"
                                                                : "GET",
             path);
    mock_reply_error(w, req, conn, 404, msg, NULL, 0);
}

/* ---- worker lifecycle ---- */

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct mock_worker *w = arg;
    event_base_loopbreak(w->base);
}

int mock_worker_init(struct mock_worker *w, struct mock_app *app, int stop_fd)
{
    memset(w, 0, sizeof(*w));
    w->app = app;
    if (mock_conns_init(&w->conns))
        return -1;
    w->base = event_base_new();
    if (!w->base)
        return -1;
    w->http = evhttp_new(w->base);
    w->stop = event_new(w->base, stop_fd, EV_READ | EV_PERSIST, on_stop, w);
    if (!w->http || !w->stop || event_add(w->stop, NULL))
        return -1;
    evhttp_set_gencb(w->http, on_request, w);
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_HEAD | EVHTTP_REQ_PATCH |
                                            EVHTTP_REQ_OPTIONS);
    evhttp_set_max_body_size(w->http, MAX_BODY_BYTES);
    evhttp_set_timeout(w->http, IDLE_TIMEOUT_S);
    evhttp_set_default_content_type(w->http, "application/json");
    return 0;
}

int mock_worker_listen(struct mock_worker *w, const struct sockaddr *addr,
                       socklen_t len, struct sockaddr_storage *bound)
{
    struct evconnlistener *l =
        evconnlistener_new_bind(w->base, NULL, NULL,
                                LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_FREE |
                                    LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                4096, addr, (int)len);
    if (!l)
        return -1;
    if (!evhttp_bind_listener(w->http, l)) {
        evconnlistener_free(l);
        return -1;
    }
    socklen_t blen = sizeof(*bound);
    return getsockname(evconnlistener_get_fd(l), (struct sockaddr *)bound,
                       &blen);
}

void *mock_worker_run(void *worker)
{
    struct mock_worker *w = worker;
    event_base_dispatch(w->base);
    return NULL;
}

void mock_worker_free(struct mock_worker *w)
{
    /* evhttp_free closes every connection; their close callbacks end the
     * calls still running (hung requests, streams). */
    if (w->http)
        evhttp_free(w->http);
    if (w->conns.buckets)
        mock_conns_destroy(&w->conns);
    if (w->stop)
        event_free(w->stop);
    if (w->base)
        event_base_free(w->base);
    memset(w, 0, sizeof(*w));
}
