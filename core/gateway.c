/* Request entry: routing table → API flow (auth, decode, pipeline) or an
 * operational endpoint. The API flow continues in pipeline.c and proxy.c. */
#include "gateway.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "admin.h"
#include "config/config.h"
#include "http/http_server.h"
#include "log.h"
#include "pipeline.h"
#include "plugin_routes.h"
#include "proxy.h"
#include "request.h"
#include "respond.h"
#include "runtime.h"
#include "worker.h"

struct api_route {
    const char *path;
    enum api_kind kind;
};

static const struct api_route api_routes[] = {
    {"/v1/chat/completions", API_CHAT},
    {"/v1/completions", API_COMPLETIONS},
    {"/v1/embeddings", API_EMBEDDINGS},
    {"/v1/responses", API_RESPONSES},
};

void gateway_addr_with_port(char *out, size_t cap, const char *addr,
                            uint16_t port)
{
    const char *colon = strrchr(addr, ':');
    size_t host_len = colon ? (size_t)(colon - addr) : strlen(addr);
    snprintf(out, cap, "%.*s:%u", (int)host_len, addr, (unsigned)port);
}

static void on_client_close(struct http_exchange *ex, void *arg)
{
    struct sluice_req *r = arg;
    (void)ex;
    worker_refresh_clock(r->w);
    r->ex = NULL;
    r->client_gone = true;
    metric_add(g_runtime.m.client_disconnects, 1);
    proxy_client_gone(r);
}

/* The low `digits` hex digits of v, most significant first (not
 * snprintf: ids are made on every request, and snprintf cost ~1.4k
 * instructions). */
static void put_hex(char *out, uint64_t v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < digits; i++)
        out[i] = hex[(v >> (4 * (digits - 1 - i))) & 15];
}

/* "req-" and 20 hex digits: the worker's ticket, then the low bits of
 * the start time. */
static void put_generated_id(char *out, uint64_t ticket, uint16_t salt)
{
    memcpy(out, "req-", 4);
    put_hex(out + 4, ticket, 16);
    put_hex(out + 20, salt, 4);
    out[24] = '\0';
}

/* x-request-id: kept when the client sent a sane one, else generated. */
static void assign_id(struct sluice_req *r)
{
    size_t len = 0;
    const char *given = http_header(r->ex, "x-request-id", &len);
    bool sane = given && len > 0 && len < sizeof r->id;
    for (size_t i = 0; sane && i < len; i++)
        sane = isalnum((unsigned char)given[i]) || given[i] == '-' ||
               given[i] == '_' || given[i] == '.';
    if (sane) {
        memcpy(r->id, given, len);
        r->id[len] = '\0';
    } else {
        put_generated_id(r->id, r->ticket, (uint16_t)(r->started_ns & 0xffff));
    }
}

/* Identity from the bearer token; false (with a 401 set) when auth is on
 * and the key is missing or unknown. */
static bool identify(struct sluice_req *r)
{
    const struct config *c = r->gen->cfg;
    size_t len = 0;
    const char *auth = http_header(r->ex, "authorization", &len);
    const char *token = NULL;
    size_t token_len = 0;

    if (auth && len > 7 && strncasecmp(auth, "Bearer ", 7) == 0) {
        token = auth + 7;
        token_len = len - 7;
        while (token_len && *token == ' ')
            token++, token_len--;
    }
    if (!c->auth_enabled)
        return true;
    if (!token || !token_len) {
        respond_set_error(r, 401, "authentication_error", "missing_api_key",
                          "You didn't provide an API key. Send it in the "
                          "Authorization header as 'Bearer YOUR_KEY'.",
                          NULL, 0);
        return false;
    }
    const struct client_key *k = config_find_key(c, token, token_len);
    if (!k) {
        /* Never echo the presented key back. */
        respond_set_error(r, 401, "authentication_error", "invalid_api_key",
                          "Incorrect API key provided.", NULL, 0);
        return false;
    }
    /* The key's id: the first 8 bytes of its hash, in hex. */
    char *id = arena_alloc(&r->arena, 17);
    if (id) {
        uint64_t head = 0;
        for (int i = 0; i < 8; i++)
            head = head << 8 | k->sha256[i];
        put_hex(id, head, 16);
        id[16] = '\0';
    }
    r->identity[SLUICE_ID_TENANT] = k->tenant[0] ? k->tenant : "default";
    r->identity[SLUICE_ID_USER] = k->user;
    r->identity[SLUICE_ID_TIER] = k->tier;
    r->identity[SLUICE_ID_KEY] = id ? id : "";
    if (k->priority[0]) {
        int p = gateway_priority_parse(k->priority, strlen(k->priority));
        if (p >= 0)
            r->priority = (enum sluice_priority)p;
    }
    return true;
}

static const char *const priority_names[] = {"critical", "realtime", "standard",
                                             "batch", "low"};

int gateway_priority_parse(const char *s, size_t len)
{
    for (int i = 0; i < 5; i++)
        if (strlen(priority_names[i]) == len &&
            strncasecmp(priority_names[i], s, len) == 0)
            return i;
    return -1;
}

const char *gateway_priority_name(int p)
{
    return p >= 0 && p < 5 ? priority_names[p] : "standard";
}

/* The x-priority header overrides the key's default priority; the policy
 * and plugins may change it again later. */
static void choose_priority(struct sluice_req *r)
{
    size_t len = 0;
    const char *p = http_header(r->ex, "x-priority", &len);
    int v = p ? gateway_priority_parse(p, len) : -1;
    if (v >= 0)
        r->priority = (enum sluice_priority)v;
}

const char *gateway_api_endpoint(const char *path, enum api_kind *kind)
{
    for (size_t i = 0; i < sizeof api_routes / sizeof api_routes[0]; i++) {
        if (strcmp(path, api_routes[i].path) == 0) {
            *kind = api_routes[i].kind;
            return api_routes[i].path;
        }
    }
    return NULL;
}

/* What every request from a client goes through first: a request object,
 * an id, the identity. `path`: the API endpoint's static string, or NULL
 * for a copy of the URL's path (it must outlive the exchange: the access
 * log line is written after the answer). NULL when it was already
 * answered (503, 401). */
static struct sluice_req *begin_request(struct http_exchange *ex,
                                        struct worker *w, const char *path)
{
    struct sluice_req *r = request_new(w, w->gen, ex);
    if (!r) {
        respond_plain_error(ex, 503, "The gateway is out of memory.", NULL,
                            NULL);
        return NULL;
    }
    if (!path)
        path = arena_strndup(&r->arena, http_path(ex), strlen(http_path(ex)));
    r->endpoint = path;
    http_set_close_cb(ex, on_client_close, r);
    assign_id(r);
    metric_gauge_add(g_runtime.m.active, 1);

    if (!identify(r)) {
        respond_send_local(r);
        return NULL;
    }
    choose_priority(r);
    return r;
}

void gateway_api_start(struct sluice_req *r, const char *body, size_t body_len)
{
    struct api_error aerr;
    if (!api_request_decode(r->kind, body, body_len, &r->api, &aerr)) {
        respond_set_error(r, aerr.status, "invalid_request_error", NULL,
                          aerr.message, aerr.param[0] ? aerr.param : NULL, 0);
        respond_send_local(r);
        return;
    }
    /* Own copy: plugins may read the body in on_log, after the client (and
     * its exchange) is gone. The decoded model may point into the body:
     * move it to the copy too. */
    if (body != r->body) {
        r->body = arena_strndup(&r->arena, body, body_len);
        r->body_len = body_len;
        if (!r->body) {
            if (!r->api.model_copy) { /* it pointed into the exchange's body */
                r->api.model = NULL;
                r->api.model_len = 0;
            }
            respond_set_error(r, 503, "api_error", NULL,
                              "The gateway is out of memory.", NULL, 0);
            respond_send_local(r);
            return;
        }
        if (!r->api.model_copy)
            r->api.model = r->body + (r->api.model - body);
    }

    r->upstream =
        config_route_model(r->gen->cfg, r->api.model, r->api.model_len);
    if (!r->upstream) {
        char msg[256];
        size_t shown = r->api.model_len > 128 ? 128 : r->api.model_len;
        while (shown < r->api.model_len &&
               ((unsigned char)r->api.model[shown] & 0xC0) == 0x80)
            shown--; /* never cut inside a UTF-8 sequence */
        snprintf(msg, sizeof msg,
                 "The model '%.*s' does not exist or no configured upstream "
                 "serves it.",
                 (int)shown, r->api.model);
        respond_set_error(r, 404, "invalid_request_error", "model_not_found",
                          msg, "model", 0);
        respond_send_local(r);
        return;
    }
    pipeline_run(r);
}

static void start_api_request(struct http_exchange *ex, struct worker *w,
                              enum api_kind kind, const char *path)
{
    struct sluice_req *r = begin_request(ex, w, path);
    if (!r)
        return;
    r->kind = kind;
    size_t body_len = 0;
    const char *body = http_body(ex, &body_len);
    gateway_api_start(r, body, body_len);
}

/* A plugin answers it: same id, auth, limits and access log as the API,
 * then the route's handler instead of the policy and the pipeline. */
static void start_route_request(struct http_exchange *ex, struct worker *w,
                                const struct plugin_route *route)
{
    struct sluice_req *r = begin_request(ex, w, NULL);
    if (r)
        plugin_route_start(r, route);
}

static void dispatch(struct http_exchange *ex, struct worker *w,
                     bool allow_admin)
{
    const char *method = http_method(ex);
    const char *path = http_path(ex);

    worker_refresh_clock(w);
    enum api_kind kind;
    const char *api_path = gateway_api_endpoint(path, &kind);
    if (api_path) {
        if (strcmp(method, "POST") != 0) {
            respond_plain_error(ex, 405,
                                "Method not allowed: use POST for this "
                                "endpoint.",
                                NULL, "Allow: POST\r\n");
            return;
        }
        start_api_request(ex, w, kind, api_path);
        return;
    }
    if (strcmp(path, "/v1/models") == 0) {
        if (strcmp(method, "GET") != 0) {
            respond_plain_error(ex, 405, "Method not allowed: use GET.", NULL,
                                "Allow: GET\r\n");
            return;
        }
        admin_models(ex, w);
        return;
    }
    if (allow_admin && admin_handle(ex, w))
        return;
    const struct plugin_route *route = NULL;
    char allow[96];
    switch (plugin_routes_match(w->gen->routes, method, path, &route, allow,
                                sizeof allow)) {
    case ROUTE_FOUND:
        start_route_request(ex, w, route);
        return;
    case ROUTE_WRONG_METHOD:
        respond_plain_error(ex, 405, "Method not allowed for this endpoint.",
                            NULL, allow);
        return;
    case ROUTE_NONE:
        break;
    }
    char msg[300];
    snprintf(msg, sizeof msg, "Unknown request URL: %s %.200s", method, path);
    respond_plain_error(ex, 404, msg, NULL, NULL);
}

void gateway_on_request(struct http_exchange *ex, void *worker)
{
    struct worker *w = worker;
    dispatch(ex, w, !w->gen->cfg->admin_listen[0]);
}

void gateway_on_admin_request(struct http_exchange *ex, void *worker)
{
    struct worker *w = worker;
    worker_refresh_clock(w);
    if (!admin_handle(ex, w))
        respond_plain_error(ex, 404, "Unknown admin URL.", NULL, NULL);
}
