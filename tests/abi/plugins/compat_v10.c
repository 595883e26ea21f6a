/* compat_v10: a plugin compiled against the frozen SDK 1.0 headers
 * (tests/abi/sdk-1.0/), standing for a binary built before ABI 1.1. It
 * must load and work on the current core: it adds "x-compat: 1.0" to
 * every answer, reads the request through the 1.0 host table, and counts
 * its on_log calls. */
#include <stddef.h>
#include <stdlib.h>

#include <sluice/host.h>
#include <sluice/plugin.h>

#if SLUICE_ABI_MINOR != 0
#error "compat_v10 must be built against the SDK 1.0 headers"
#endif

struct compat {
    const struct sluice_host *host;
    struct sluice_metric *logs;
};

static int compat_create(const struct sluice_host *h, const void *config,
                         struct sluice_str raw_json, void **self,
                         struct sluice_error *err)
{
    struct compat *c = calloc(1, sizeof *c);
    (void)config;
    (void)raw_json;
    (void)err;
    if (!c)
        return SLUICE_ENOMEM;
    c->host = h;
    c->logs = h->counter(h, "sluice_compat_v10_logs_total", "on_log calls.");
    *self = c;
    return SLUICE_OK;
}

static void compat_destroy(void *self)
{
    free(self);
}

static enum sluice_action compat_on_request(void *self, struct sluice_req *r,
                                            void *state)
{
    struct compat *c = self;
    const struct sluice_host *h = c->host;
    (void)state;
    h->resp_add_header(r, "x-compat", (struct sluice_str){"1.0", 3});
    struct sluice_str model = h->req_model(r);
    h->resp_add_header(r, "x-compat-model", model);
    return SLUICE_CONTINUE;
}

static void compat_on_log(void *self, struct sluice_req *r, void *state)
{
    struct compat *c = self;
    (void)r;
    (void)state;
    c->host->counter_add(c->logs, 1);
}

static const struct sluice_plugin compat_v10 = {
    SLUICE_PLUGIN_HEADER,
    .name = "compat_v10",
    .version = "1.0.0",
    .summary = "test: a plugin built against the SDK 1.0 headers",
    .req_state_size = 8,
    .create = compat_create,
    .destroy = compat_destroy,
    .on_request = compat_on_request,
    .on_log = compat_on_log,
};

SLUICE_PLUGIN_EXPORT(compat_v10)
