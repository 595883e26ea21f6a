/* phase_probe: a test plugin that acts in the phase its config names, and
 * counts every hook call, so tests/abi/test_phases.py can check through
 * the real gateway that each phase's answer reaches the client and that
 * on_log runs exactly once however the request ended.
 *
 *   "act_in": "none"                  continue everywhere
 *             "request"               reject 429 in on_request
 *             "upstream_response"     replace the upstream answer with 503
 *             "suspend"               suspend once in on_request, resume
 *                                     20 ms later and continue
 *   "log_delay_ms": N                 on_log blocks its worker for N ms, so
 *                                     that what runs after the log hooks
 *                                     shows late
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <sluice/host.h>
#include <sluice/plugin.h>

enum act_in { ACT_NONE, ACT_REQUEST, ACT_UPSTREAM_RESPONSE, ACT_SUSPEND };

static const char *const act_in_choices[] = {
    "none", "request", "upstream_response", "suspend", NULL};

struct probe_config {
    int act_in;
    int64_t log_delay_ms;
};

static const struct sluice_cfg_field probe_keys[] = {
    {
        .name = "act_in",
        .type = SLUICE_CFG_ENUM,
        .default_value = "\"none\"",
        .choices = act_in_choices,
        .offset = offsetof(struct probe_config, act_in),
        .help = "the phase in which to act",
    },
    {
        .name = "log_delay_ms",
        .type = SLUICE_CFG_INT,
        .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
        .default_value = "0",
        .min = 0,
        .max = 10000,
        .offset = offsetof(struct probe_config, log_delay_ms),
        .help = "how long on_log blocks its worker",
    },
    {0},
};

struct probe {
    const struct sluice_host *host;
    enum act_in act_in;
    int64_t log_delay_ms;
    struct sluice_metric *requests, *resumes, *upstream_responses, *responses,
        *logs, *late_header_refused;
};

static int probe_create(const struct sluice_host *h, const void *config,
                        struct sluice_str raw_json, void **self,
                        struct sluice_error *err)
{
    const struct probe_config *cfg = config;
    struct probe *p = calloc(1, sizeof *p);

    (void)raw_json;
    (void)err;
    if (!p)
        return SLUICE_ENOMEM;
    p->host = h;
    p->act_in = (enum act_in)cfg->act_in;
    p->log_delay_ms = cfg->log_delay_ms;
    p->requests =
        h->counter(h, "sluice_phase_probe_requests_total", "on_request calls.");
    p->resumes = h->counter(h, "sluice_phase_probe_resumes_total",
                            "on_request calls after a suspension.");
    p->upstream_responses =
        h->counter(h, "sluice_phase_probe_upstream_responses_total",
                   "on_upstream_response calls.");
    p->responses = h->counter(h, "sluice_phase_probe_responses_total",
                              "on_response calls.");
    p->logs = h->counter(h, "sluice_phase_probe_logs_total", "on_log calls.");
    p->late_header_refused =
        h->counter(h, "sluice_phase_probe_late_header_refused_total",
                   "on_response header adds refused with SLUICE_EPHASE.");
    *self = p;
    return SLUICE_OK;
}

static void probe_destroy(void *self)
{
    free(self);
}

static enum sluice_action probe_on_request(void *self, struct sluice_req *r,
                                           void *state)
{
    struct probe *p = self;
    const struct sluice_host *h = p->host;
    static const char resumed[] = "1";

    (void)state;
    h->counter_add(p->requests, 1);
    switch (p->act_in) {
    case ACT_REQUEST:
        return h->reject(r, 429, "rate_limit_exceeded", "probe_reject",
                         "rejected in on_request", 1500);
    case ACT_SUSPEND:
        if (!h->req_resumed(r)) {
            h->resume_after(r, 20);
            return SLUICE_SUSPEND;
        }
        h->counter_add(p->resumes, 1);
        h->resp_add_header(r, "x-probe-resumed",
                           (struct sluice_str){resumed, 1});
        return SLUICE_CONTINUE;
    default:
        return SLUICE_CONTINUE;
    }
}

static enum sluice_action
probe_on_upstream_response(void *self, struct sluice_req *r, void *state)
{
    struct probe *p = self;

    (void)state;
    p->host->counter_add(p->upstream_responses, 1);
    if (p->act_in == ACT_UPSTREAM_RESPONSE)
        return p->host->reject(r, 503, "server_error", "probe_reject",
                               "rejected in on_upstream_response", 0);
    return SLUICE_CONTINUE;
}

static void probe_on_response(void *self, struct sluice_req *r, void *state)
{
    struct probe *p = self;
    static const char one[] = "1";
    (void)state;
    p->host->counter_add(p->responses, 1);
    /* Reaches a buffered answer; a stream's headers are gone by now. */
    if (p->host->resp_add_header(r, "x-probe-late",
                                 (struct sluice_str){one, 1}) == SLUICE_EPHASE)
        p->host->counter_add(p->late_header_refused, 1);
}

static void probe_on_log(void *self, struct sluice_req *r, void *state)
{
    struct probe *p = self;
    (void)r;
    (void)state;
    if (p->log_delay_ms) {
        struct timespec t = {p->log_delay_ms / 1000,
                             p->log_delay_ms % 1000 * 1000000};
        nanosleep(&t, NULL);
    }
    p->host->counter_add(p->logs, 1);
}

static const struct sluice_plugin phase_probe = {
    SLUICE_PLUGIN_HEADER,
    .name = "phase_probe",
    .version = "1.0.0",
    .summary = "test plugin: acts in a chosen phase, counts hook calls",
    .config = probe_keys,
    .config_size = sizeof(struct probe_config),
    .create = probe_create,
    .destroy = probe_destroy,
    .on_request = probe_on_request,
    .on_upstream_response = probe_on_upstream_response,
    .on_response = probe_on_response,
    .on_log = probe_on_log,
};
SLUICE_PLUGIN_EXPORT(phase_probe)
