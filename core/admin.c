/* Operational endpoints. /admin/status shows what an operator needs during
 * an incident: workers, upstreams, plugin instances and their live state
 * as each plugin reports it, and the health map policies see. */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "health.h"
#include "http/http_server.h"
#include "metrics.h"
#include "models_list.h"
#include "policy/policy.h"
#include "respond.h"
#include "runtime.h"
#include "worker.h"

static void reply_json(struct http_exchange *ex, int status, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!text) {
        respond_plain_error(ex, 500, "could not render status", NULL, NULL);
        return;
    }
    http_reply(ex, status, "Content-Type: application/json\r\n", text,
               strlen(text));
    free(text);
}

/* With auth on, what the main listener serves besides the API needs a key
 * too: /v1/models any valid key, /metrics and /admin/status a key marked
 * "admin" (they show upstream URLs and load). /healthz stays open for load
 * balancers; a separate admin_listen is trusted like its network. Sends
 * the 401/403 itself when the answer is no. */
static bool key_allows(struct http_exchange *ex, const struct config *c,
                       bool need_admin)
{
    size_t len = 0;
    const char *auth = http_header(ex, "authorization", &len);
    if (!c->auth_enabled)
        return true;
    const struct client_key *k = NULL;
    if (auth && len > 7 && strncasecmp(auth, "Bearer ", 7) == 0) {
        const char *token = auth + 7;
        size_t token_len = len - 7;
        while (token_len && *token == ' ')
            token++, token_len--;
        k = token_len ? config_find_key(c, token, token_len) : NULL;
    }
    if (!k) {
        respond_plain_error(ex, 401,
                            "This endpoint needs an API key: send it in the "
                            "Authorization header as 'Bearer YOUR_KEY'.",
                            NULL, "WWW-Authenticate: Bearer\r\n");
        return false;
    }
    if (need_admin && !k->admin) {
        respond_plain_error(ex, 403,
                            "This endpoint needs an API key marked admin in "
                            "the gateway config.",
                            NULL, NULL);
        return false;
    }
    return true;
}

static void healthz(struct http_exchange *ex)
{
    bool draining = atomic_load(&g_runtime.draining);
    json_t *j = json_pack("{s:s}", "status", draining ? "draining" : "ok");
    reply_json(ex, draining ? 503 : 200, j);
}

static void metrics(struct http_exchange *ex)
{
    size_t len = 0;
    char *text = metrics_render(g_runtime.metrics, &len);
    if (!text) {
        respond_plain_error(ex, 500, "could not render metrics", NULL, NULL);
        return;
    }
    http_reply(ex, 200, "Content-Type: text/plain; version=0.0.4\r\n", text,
               len);
    free(text);
}

/* A plugin's status_json, called with a growing buffer. */
static json_t *plugin_status(const struct instance *inst)
{
    if (!inst->desc->status_json)
        return json_null();
    size_t cap = 1024;
    for (int tries = 0; tries < 4; tries++) {
        char *buf = malloc(cap);
        if (!buf)
            return json_null();
        size_t need = inst->desc->status_json(inst->self, buf, cap);
        if (need < cap) {
            buf[need] = '\0';
            json_t *j = json_loads(buf, JSON_DECODE_ANY, NULL);
            free(buf);
            return j ? j : json_string("(invalid status JSON)");
        }
        free(buf);
        cap = need + 1;
    }
    return json_null();
}

static void status(struct http_exchange *ex, struct worker *w)
{
    const struct generation *g = w->gen;
    const struct config *c = g->cfg;
    json_t *workers = json_array();
    json_t *ups = json_array();
    json_t *plugins = json_array();

    for (unsigned i = 0; i < g_runtime.worker_count; i++)
        json_array_append_new(workers, json_pack("{s:i}", "index", i));
    for (size_t i = 0; i < c->upstream_count; i++) {
        const struct upstream_config *u = &c->upstreams[i];
        json_t *models = json_array();
        for (size_t m = 0; m < u->model_count; m++)
            json_array_append_new(models, json_string(u->models[m]));
        char down_name[96];
        double down = 0;
        snprintf(down_name, sizeof down_name, "upstream.%s.down", u->name);
        health_get(down_name, &down);
        /* base_url is configuration, not a secret; the key is never shown,
         * only whether it is present. */
        json_array_append_new(
            ups, json_pack("{s:s, s:s, s:o, s:b, s:b, s:b}", "name", u->name,
                           "base_url", u->base_url, "models", models, "enabled",
                           config_upstream_enabled(u), "key_set",
                           u->api_key_env[0] && getenv(u->api_key_env) &&
                               *getenv(u->api_key_env),
                           "down", down >= 1.0));
    }
    for (size_t i = 0; i < g->count; i++) {
        const struct instance *inst = &g->inst[i];
        json_array_append_new(
            plugins, json_pack("{s:s, s:s, s:s, s:o}", "name", inst->name,
                               "plugin", inst->desc->name, "version",
                               inst->desc->version ? inst->desc->version : "",
                               "state", plugin_status(inst)));
    }
    char health[16384];
    size_t hlen = health_json(health, sizeof health);
    json_t *hj = hlen < sizeof health ? json_loads(health, 0, NULL) : NULL;

    json_t *root = json_pack(
        "{s:s, s:I, s:s, s:b, s:i, s:o, s:o, s:o, s:o, s:I}", "version",
        SLUICE_VERSION, "config_generation", (json_int_t)g->id, "config",
        c->source_path, "draining", atomic_load(&g_runtime.draining),
        "connections", (int)http_conn_budget_in_use(), "workers", workers,
        "upstreams", ups, "plugins", plugins, "health", hj ? hj : json_object(),
        "policy_memory_bytes",
        (json_int_t)(w->policy ? policy_memory_used(w->policy) : 0));
    reply_json(ex, 200, root);
}

void admin_models(struct http_exchange *ex, struct worker *w)
{
    if (key_allows(ex, w->gen->cfg, false))
        models_list_serve(ex, w);
}

bool admin_handle(struct http_exchange *ex, struct worker *w)
{
    const char *path = http_path(ex);
    const char *method = http_method(ex);
    void (*handler)(struct http_exchange *) = NULL;

    if (strcmp(path, "/healthz") == 0)
        handler = healthz;
    else if (strcmp(path, "/metrics") == 0)
        handler = metrics;
    else if (strcmp(path, "/admin/status") != 0)
        return false;
    if (strcmp(method, "GET") != 0) {
        respond_plain_error(ex, 405, "Method not allowed: use GET.", NULL,
                            "Allow: GET\r\n");
        return true;
    }
    /* Only on the main listener (a separate admin_listen has its own). */
    const struct config *c = w->gen->cfg;
    if (handler != healthz && !c->admin_listen[0] && !key_allows(ex, c, true))
        return true;
    if (handler)
        handler(ex);
    else
        status(ex, w);
    return true;
}
