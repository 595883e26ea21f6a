/* GET /v1/models: the model names the config routes, plus, for upstreams
 * that serve "*", the names they list at their own /v1/models, asked over
 * the worker's upstream client and cached per worker. Model pickers in
 * clients show this list, so an empty one (everything behind "*") made
 * the gateway look like it served nothing. */
#include "models_list.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "api_request.h"
#include "config/config.h"
#include "http/http_server.h"
#include "respond.h"
#include "runtime.h"
#include "upstream/upstream_client.h"
#include "worker.h"

#define LIST_TTL_NS (60ull * 1000000000ull) /* a good list is kept 60 s */
#define RETRY_TTL_NS                                                           \
    (5ull * 1000000000ull)        /* a failed ask, retried after 5 s */
#define LIST_MAX_BYTES (1u << 20) /* a larger answer is refused */
#define LIST_MAX_IDS 1000         /* names kept from one upstream */
#define ASK_TIMEOUT_MS 5000u      /* cap on each phase of the ask */

/* One "*" upstream's list on one worker. */
struct upstream_list {
    uint64_t gen_id;     /* generation it was asked for */
    uint64_t expires_ns; /* 0: never asked */
    json_t *ids;         /* array of names, or NULL when the ask failed */
    struct upstream_call *call; /* the ask in flight, or NULL */
    struct evbuffer *body;
    int status;
    struct models_cache *cache;
};

/* A client waiting for the asks in flight. */
struct waiter {
    struct http_exchange *ex;
    struct waiter *next;
};

struct models_cache {
    struct worker *w;
    struct upstream_list lists[CONFIG_MAX_UPSTREAMS];
    struct waiter *waiters;
};

/* Indexed by worker; each worker touches only its own. Static so that a
 * list still held at exit is reachable, not a leak. */
static struct models_cache *caches[MAX_WORKERS];

static bool serves_any(const struct upstream_config *u)
{
    for (size_t m = 0; m < u->model_count; m++)
        if (strcmp(u->models[m], "*") == 0)
            return true;
    return false;
}

static void add_model(json_t *data, json_t *seen, const char *id,
                      const char *owner)
{
    if (strcmp(id, "*") == 0 || json_object_get(seen, id))
        return;
    json_object_set_new(seen, id, json_true());
    json_array_append_new(
        data,
        json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object", "model",
                  "created", (json_int_t)(g_runtime.started_wall_ms / 1000),
                  "owned_by", owner));
}

static void reply(struct http_exchange *ex, const struct models_cache *mc)
{
    const struct config *c = mc->w->gen->cfg;
    json_t *data = json_array();
    json_t *seen = json_object();
    /* Configured names first, then what "*" upstreams list, in config
     * order; a name listed twice shows once, owned by the first. */
    for (size_t i = 0; i < c->upstream_count; i++) {
        const struct upstream_config *u = &c->upstreams[i];
        if (config_upstream_enabled(u))
            for (size_t m = 0; m < u->model_count; m++)
                add_model(data, seen, u->models[m], u->name);
    }
    for (size_t i = 0; i < c->upstream_count; i++) {
        const struct upstream_config *u = &c->upstreams[i];
        const json_t *ids = mc->lists[i].ids;
        if (!config_upstream_enabled(u) || !serves_any(u) || !ids)
            continue;
        for (size_t k = 0; k < json_array_size(ids); k++)
            add_model(data, seen, json_string_value(json_array_get(ids, k)),
                      u->name);
    }
    json_decref(seen);
    json_t *root = json_pack("{s:s, s:o}", "object", "list", "data", data);
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!text) {
        respond_plain_error(ex, 500, "could not render the model list", NULL,
                            NULL);
        return;
    }
    http_reply(ex, 200, "Content-Type: application/json\r\n", text,
               strlen(text));
    free(text);
}

/* The names in an OpenAI list answer ({"data":[{"id":...}]}), only those a
 * request could name; NULL when it is no such answer. */
static json_t *ids_of(const char *body, size_t len)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    json_t *data = json_object_get(root, "data");
    json_t *ids = json_is_array(data) ? json_array() : NULL;
    for (size_t i = 0; ids && i < json_array_size(data); i++) {
        const char *id =
            json_string_value(json_object_get(json_array_get(data, i), "id"));
        size_t n = id ? strlen(id) : 0;
        bool printable = n > 0 && n <= API_MODEL_NAME_MAX;
        for (size_t k = 0; printable && k < n; k++)
            printable = (unsigned char)id[k] >= 0x20 && id[k] != 0x7f;
        if (printable && json_array_size(ids) < LIST_MAX_IDS)
            json_array_append_new(ids, json_string(id));
    }
    json_decref(root);
    return ids;
}

static bool asking(const struct models_cache *mc)
{
    for (size_t i = 0; i < CONFIG_MAX_UPSTREAMS; i++)
        if (mc->lists[i].call)
            return true;
    return false;
}

static void answer_waiters(struct models_cache *mc)
{
    if (asking(mc))
        return;
    struct waiter *list = mc->waiters;
    mc->waiters = NULL;
    while (list) {
        struct waiter *next = list->next;
        http_set_close_cb(list->ex, NULL, NULL);
        reply(list->ex, mc);
        free(list);
        list = next;
    }
}

static void ask_done(struct upstream_list *l, bool ok)
{
    json_decref(l->ids);
    l->ids = NULL;
    if (ok && l->status == 200 && l->body)
        l->ids = ids_of((const char *)evbuffer_pullup(l->body, -1),
                        evbuffer_get_length(l->body));
    l->expires_ns = worker_now_ns() + (l->ids ? LIST_TTL_NS : RETRY_TTL_NS);
    l->call = NULL;
    if (l->body)
        evbuffer_free(l->body);
    l->body = NULL;
    answer_waiters(l->cache);
}

static void on_headers(struct upstream_call *c, void *arg, int status,
                       const char *const *headers, size_t n)
{
    (void)c;
    (void)headers;
    (void)n;
    ((struct upstream_list *)arg)->status = status;
}

static bool on_body(struct upstream_call *c, void *arg, const char *data,
                    size_t len)
{
    struct upstream_list *l = arg;
    if (evbuffer_get_length(l->body) + len > LIST_MAX_BYTES) {
        upstream_call_cancel(c); /* no on_done after a cancel */
        ask_done(l, false);
        return true;
    }
    evbuffer_add(l->body, data, len);
    return true;
}

static void on_done(struct upstream_call *c, void *arg,
                    enum upstream_result result, const char *detail)
{
    (void)c;
    (void)detail;
    ask_done(arg, result == UPSTREAM_DONE);
}

static const struct upstream_callbacks ask_callbacks = {
    .on_headers = on_headers,
    .on_body = on_body,
    .on_done = on_done,
};

static uint32_t capped(uint32_t ms)
{
    return ms && ms < ASK_TIMEOUT_MS ? ms : ASK_TIMEOUT_MS;
}

static void ask(struct models_cache *mc, size_t i,
                const struct upstream_config *u, uint64_t gen_id)
{
    struct upstream_list *l = &mc->lists[i];
    char url[600], auth[600];
    const char *headers[2] = {NULL, NULL};
    const char *key = u->api_key_env[0] ? getenv(u->api_key_env) : NULL;
    if (key && *key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        headers[0] = auth;
    }
    snprintf(url, sizeof url, "%s/models", u->base_url);
    struct upstream_request req = {
        .url = url,
        .method = "GET",
        .headers = headers,
        .connect_timeout_ms = capped(u->connect_timeout_ms),
        .first_byte_timeout_ms = capped(u->first_byte_timeout_ms),
        .idle_timeout_ms = capped(u->idle_timeout_ms),
        .max_host_connections = u->max_connections,
        .use_curl = u->use_curl,
    };
    l->cache = mc;
    l->gen_id = gen_id;
    l->status = 0;
    l->body = evbuffer_new();
    if (!l->body) {
        l->expires_ns = worker_now_ns() + RETRY_TTL_NS;
        return;
    }
    /* A transport may end the call inside the start (on_done clears it):
     * until then the list counts as asked for. */
    struct upstream_call *starting = (struct upstream_call *)l;
    l->call = starting;
    struct upstream_call *call =
        upstream_call_start(mc->w->upstream, &req, &ask_callbacks, l);
    if (l->call != starting)
        return; /* already done */
    l->call = call;
    if (!call)
        ask_done(l, false);
}

static void client_closed(struct http_exchange *ex, void *arg)
{
    struct models_cache *mc = arg;
    for (struct waiter **p = &mc->waiters; *p; p = &(*p)->next)
        if ((*p)->ex == ex) {
            struct waiter *gone = *p;
            *p = gone->next;
            free(gone);
            return;
        }
}

void models_list_serve(struct http_exchange *ex, struct worker *w)
{
    struct models_cache *mc = caches[w->index];
    if (!mc) {
        mc = caches[w->index] = calloc(1, sizeof *mc);
        if (!mc) {
            respond_plain_error(ex, 503, "The gateway is out of memory.", NULL,
                                NULL);
            return;
        }
        mc->w = w;
    }
    const struct generation *g = w->gen;
    uint64_t now = worker_now_ns();
    for (size_t i = 0; i < g->cfg->upstream_count; i++) {
        const struct upstream_config *u = &g->cfg->upstreams[i];
        struct upstream_list *l = &mc->lists[i];
        if (l->call || !config_upstream_enabled(u) || !serves_any(u))
            continue;
        if (l->gen_id != g->id || now >= l->expires_ns)
            ask(mc, i, u, g->id);
    }
    if (!asking(mc)) {
        reply(ex, mc);
        return;
    }
    struct waiter *wt = calloc(1, sizeof *wt);
    if (!wt) {
        reply(ex, mc); /* without the lists still on their way */
        return;
    }
    wt->ex = ex;
    wt->next = mc->waiters;
    mc->waiters = wt;
    http_set_close_cb(ex, client_closed, mc);
}
