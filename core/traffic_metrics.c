/* Request and upstream metrics by code, endpoint and upstream. The label
 * values are bounded here (endpoints) and by the vecs (codes, upstreams),
 * so neither a client nor a config can grow /metrics without limit. */
#include "traffic_metrics.h"

#include <string.h>

#include "metrics.h"

static struct metric_vec *requests, *attempts, *retries, *first_byte;

/* The routes whose traffic is worth a series of its own. */
static const char *const endpoints[] = {
    "/v1/chat/completions", "/v1/completions", "/v1/embeddings",
    "/v1/responses",        "/v1/models",
};
#define N_ENDPOINTS (sizeof endpoints / sizeof *endpoints)

static const char *endpoint_label(const char *path)
{
    for (size_t i = 0; path && i < N_ENDPOINTS; i++)
        if (strcmp(path, endpoints[i]) == 0)
            return endpoints[i];
    return "other";
}

static const char *upstream_label(const char *upstream)
{
    return upstream && upstream[0] ? upstream : "none";
}

void traffic_metrics_init(struct metrics_registry *reg)
{
    static const double latency[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                     0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                     5,      10,    30,     60,    120};
    /* +1 for "none" among the upstream values */
    static const struct metric_label by_request[] = {
        {"code", TRAFFIC_MAX_CODES},
        {"endpoint", N_ENDPOINTS},
        {"upstream", TRAFFIC_MAX_UPSTREAMS + 1},
    };
    static const struct metric_label by_upstream[] = {
        {"upstream", TRAFFIC_MAX_UPSTREAMS},
    };

    requests = metrics_counter_vec(
        reg, "sluice_requests_total",
        "Requests answered, by HTTP status, endpoint and upstream.", NULL,
        by_request, 3);
    attempts = metrics_counter_vec(reg, "sluice_upstream_attempts_total",
                                   "Upstream calls started, retries included.",
                                   NULL, by_upstream, 1);
    retries = metrics_counter_vec(reg, "sluice_upstream_retries_total",
                                  "Upstream calls that were retries.", NULL,
                                  by_upstream, 1);
    first_byte = metrics_histogram_vec(
        reg, "sluice_upstream_first_byte_seconds",
        "Time from request arrival to the upstream's response headers.", NULL,
        by_upstream, 1, latency, sizeof latency / sizeof *latency);
}

void traffic_count_request(int status, const char *path, const char *upstream)
{
    if (status < 100 || status > 599)
        status = 599;
    /* three digits without printf: this runs for every request */
    char code[4] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10),
                    (char)('0' + status % 10), '\0'};
    const char *values[] = {code, endpoint_label(path),
                            upstream_label(upstream)};
    metric_add(metric_vec_with(requests, values), 1);
}

void traffic_count_attempt(const char *upstream)
{
    const char *values[] = {upstream_label(upstream)};
    metric_add(metric_vec_with(attempts, values), 1);
}

void traffic_count_retry(const char *upstream)
{
    const char *values[] = {upstream_label(upstream)};
    metric_add(metric_vec_with(retries, values), 1);
}

void traffic_observe_first_byte(const char *upstream, double seconds)
{
    const char *values[] = {upstream_label(upstream)};
    metric_observe(metric_vec_with(first_byte, values), seconds);
}
