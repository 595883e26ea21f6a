/* hello_plugin: an out-of-tree sluice plugin, built only against the
 * installed SDK (pkg-config sluice). It shows the whole plugin shape:
 * a declarative config table, create/destroy, a request hook that can
 * refuse, an upstream-response hook that adds a header, and a metric.
 *
 * Response headers are added in on_upstream_response, not on_response:
 * on_response runs when the answer is complete, and a streamed answer's
 * headers left with its first event (resp_add_header then returns
 * SLUICE_EPHASE). on_upstream_response runs before anything is sent, for
 * streamed and buffered answers alike.
 *
 * Config:
 *   greeting      string  value of the x-hello response header ("hello")
 *   block_header  string  requests carrying this header are refused with
 *                         403 ("x-hello-block")
 */
#include <sluice/host.h>
#include <sluice/plugin.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct hello_config {
    const char *greeting;
    const char *block_header;
};

struct hello {
    const struct sluice_host *host;
    struct hello_config cfg;
    struct sluice_metric *greeted;
    struct sluice_metric *blocked;
};

static const struct sluice_cfg_field hello_fields[] = {
    {.name = "greeting",
     .type = SLUICE_CFG_STRING,
     .default_value = "\"hello\"",
     .offset = offsetof(struct hello_config, greeting),
     .help = "value of the x-hello response header"},
    {.name = "block_header",
     .type = SLUICE_CFG_STRING,
     .default_value = "\"x-hello-block\"",
     .offset = offsetof(struct hello_config, block_header),
     .help = "requests carrying this header are refused with 403"},
    {0},
};

static int hello_create(const struct sluice_host *host, const void *config,
                        struct sluice_str raw_json, void **self,
                        struct sluice_error *err)
{
    struct hello *h = calloc(1, sizeof *h);
    (void)raw_json;
    if (!h) {
        strcpy(err->message, "out of memory");
        return -1;
    }
    h->host = host;
    memcpy(&h->cfg, config, sizeof h->cfg);
    h->greeted = host->counter(host, "sluice_hello_greeted_total",
                               "Responses that got the x-hello header.");
    h->blocked = host->counter(host, "sluice_hello_blocked_total",
                               "Requests refused because of block_header.");
    *self = h;
    return 0;
}

static void hello_destroy(void *self)
{
    free(self);
}

static enum sluice_action hello_on_request(void *self, struct sluice_req *r,
                                           void *state)
{
    struct hello *h = self;
    (void)state;
    if (h->host->req_header(r, h->cfg.block_header).ptr) {
        h->host->counter_add(h->blocked, 1);
        return h->host->reject(r, 403, "permission_error", "blocked",
                               "Blocked by the hello plugin.", 0);
    }
    return SLUICE_CONTINUE;
}

static enum sluice_action
hello_on_upstream_response(void *self, struct sluice_req *r, void *state)
{
    struct hello *h = self;
    struct sluice_str v = {h->cfg.greeting, strlen(h->cfg.greeting)};
    (void)state;
    if (h->host->resp_add_header(r, "x-hello", v) == SLUICE_OK)
        h->host->counter_add(h->greeted, 1);
    return SLUICE_CONTINUE;
}

static const struct sluice_plugin hello_plugin = {
    SLUICE_PLUGIN_HEADER,
    .name = "hello",
    .version = "1.0.0",
    .summary = "example out-of-tree plugin: greets responses, blocks by header",
    .config = hello_fields,
    .config_size = sizeof(struct hello_config),
    .create = hello_create,
    .destroy = hello_destroy,
    .on_request = hello_on_request,
    .on_upstream_response = hello_on_upstream_response,
};

SLUICE_PLUGIN_EXPORT(hello_plugin)
