/* Process-wide state (g_runtime) and the core's own metrics. Generations
 * and reload are in generation.c. */
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traffic_metrics.h"

struct runtime g_runtime;

/* ---- core metrics ---- */

void runtime_init_metrics(void)
{
    static const double latency[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                     0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                     5,      10,    30,     60,    120};
    struct metrics_registry *reg = g_runtime.metrics;
    struct core_metrics *m = &g_runtime.m;
    size_t nl = sizeof latency / sizeof latency[0];

    m->request_seconds = metrics_histogram(
        reg, "sluice_request_duration_seconds",
        "Time from request arrival to the end of the response.", NULL, latency,
        nl);
    m->active = metrics_gauge(reg, "sluice_active_requests",
                              "API requests in progress.", NULL);
    traffic_metrics_init(reg); /* requests and upstream calls, labelled */
    m->fallbacks = metrics_counter(
        reg, "sluice_fallbacks_total",
        "Requests moved to the next step of a fallback chain.", NULL);
    m->prompt_tokens =
        metrics_counter(reg, "sluice_prompt_tokens_total",
                        "Prompt tokens reported by upstreams.", NULL);
    m->completion_tokens =
        metrics_counter(reg, "sluice_completion_tokens_total",
                        "Completion tokens reported by upstreams.", NULL);
    m->policy_errors = metrics_counter(reg, "sluice_policy_errors_total",
                                       "Lua policy calls that failed.", NULL);
    m->policy_reused = metrics_counter(
        reg, "sluice_policy_decisions_reused_total",
        "Decisions of a pure policy (decide_is_pure) reused without running "
        "Lua.",
        NULL);
    m->reloads_ok = metrics_counter(reg, "sluice_reloads_total",
                                    "Configuration reloads.", "result=\"ok\"");
    m->reloads_failed =
        metrics_counter(reg, "sluice_reloads_total", "Configuration reloads.",
                        "result=\"refused\"");
    m->upstream_pauses = metrics_counter(
        reg, "sluice_upstream_pauses_total",
        "Times a stream's upstream transfer was paused for a slow client.",
        NULL);
    m->response_budget_exceeded = metrics_counter(
        reg, "sluice_response_budget_exceeded_total",
        "Requests refused with 503 because buffered upstream answers "
        "reached limits.max_buffered_response_bytes.",
        NULL);
    m->response_decoded = metrics_counter(
        reg, "sluice_upstream_compressed_responses_total",
        "Upstream answers compressed although identity was asked for "
        "(decoded by the gateway).",
        NULL);
    m->client_disconnects = metrics_counter(
        reg, "sluice_client_disconnects_total",
        "Requests whose client went away before the answer was complete.",
        NULL);
}
