/* noop: a plugin that does nothing, as cheaply as a plugin can.
 *
 * It is the reference for plugin authors (examples/ copies it) and what the
 * benchmarks load to measure the cost of the pipeline itself. Everything a
 * plugin needs is here: a config table, create/destroy, a metric, request
 * hooks and the one exported symbol. Read it top to bottom.
 *
 * Build:  sluice_add_plugin(noop noop.c)   (in-tree CMake)
 *         cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags sluice)
 *            -o noop.so noop.c             (out of tree)
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#include <sluice/host.h>
#include <sluice/plugin.h>

/* The config struct. The core validates the instance's JSON "config"
 * object against noop_config_keys below, applies defaults and fills this
 * struct before create() runs; the plugin never parses JSON itself. */
struct noop_config {
    bool count_requests;
};

static const struct sluice_cfg_field noop_config_keys[] = {
    {
        .name = "count_requests",
        .type = SLUICE_CFG_BOOL,
        .default_value = "false",
        .offset = offsetof(struct noop_config, count_requests),
        .help = "count requests in sluice_noop_requests_total",
    },
    {0}, /* the table ends with an all-zero entry */
};

/* One instance per pipeline entry. Workers share it, so after create()
 * it is read-only; the metric handle is updated atomically by the host. */
struct noop {
    const struct sluice_host *host; /* valid until destroy() */
    struct sluice_metric *requests; /* NULL unless count_requests */
};

/* Main thread, before workers start. Allocate the instance and create
 * metric handles here: hooks must not register metrics. */
static int noop_create(const struct sluice_host *host, const void *config,
                       struct sluice_str raw_json, void **self,
                       struct sluice_error *err)
{
    const struct noop_config *cfg = config;
    struct noop *n = calloc(1, sizeof *n);

    (void)raw_json; /* only SLUICE_CFG_JSON keys need the raw text */
    (void)err;      /* fill err->message before returning non-zero */
    if (!n)
        return SLUICE_ENOMEM;
    n->host = host;
    if (cfg->count_requests)
        n->requests = host->counter(host, "sluice_noop_requests_total",
                                    "Requests seen by the noop plugin.");
    *self = n;
    return SLUICE_OK;
}

/* Main thread, once no worker can reach the instance any more. */
static void noop_destroy(void *self)
{
    free(self);
}

/* Request phase, on the request's worker thread, in config order. Reading
 * the model is the minimal touch of the host a real plugin makes. */
static enum sluice_action noop_on_request(void *self, struct sluice_req *r,
                                          void *state)
{
    const struct noop *n = self;
    struct sluice_str model = n->host->req_model(r);

    (void)model;
    (void)state; /* req_state_size is 0: no per-request state */
    if (n->requests)
        n->host->counter_add(n->requests, 1);
    return SLUICE_CONTINUE;
}

/* The upstream exchange is over; usage is known if the provider sent it. */
static void noop_on_response(void *self, struct sluice_req *r, void *state)
{
    const struct noop *n = self;
    struct sluice_usage usage = n->host->resp_usage(r);

    (void)usage;
    (void)state;
}

/* Exactly once per request that reached on_request, however it ended. */
static void noop_on_log(void *self, struct sluice_req *r, void *state)
{
    const struct noop *n = self;
    int status = n->host->resp_status(r);

    (void)status;
    (void)state;
}

/* The descriptor. SLUICE_PLUGIN_HEADER stamps the ABI version and struct
 * size the plugin was compiled against; hooks left out are NULL. */
static const struct sluice_plugin noop_plugin = {
    SLUICE_PLUGIN_HEADER,
    .name = "noop",
    .version = "1.0.0",
    .summary = "does nothing; the reference plugin and benchmark baseline",
    .config = noop_config_keys,
    .config_size = sizeof(struct noop_config),
    .create = noop_create,
    .destroy = noop_destroy,
    .on_request = noop_on_request,
    .on_response = noop_on_response,
    .on_log = noop_on_log,
};

/* The one exported symbol: sluice_plugin_v1(). Everything else stays
 * hidden (-fvisibility=hidden), which scripts/check-plugin-exports.sh
 * checks. */
SLUICE_PLUGIN_EXPORT(noop_plugin)
