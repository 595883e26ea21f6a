/* The core's request and upstream metrics, labelled with a bounded number
 * of series (metrics.h vecs):
 *   sluice_requests_total{code,endpoint,upstream}
 *   sluice_upstream_attempts_total{upstream}
 *   sluice_upstream_retries_total{upstream}
 *   sluice_upstream_first_byte_seconds{upstream}
 * endpoint is one of the API routes or "other"; upstream is the configured
 * name ("none" before one was chosen), at most TRAFFIC_MAX_UPSTREAMS names
 * then "other"; at most TRAFFIC_MAX_CODES distinct codes then "other".
 * Updates are lock-free once a series exists; any thread. */
#ifndef SLUICE_TRAFFIC_METRICS_H
#define SLUICE_TRAFFIC_METRICS_H

#define TRAFFIC_MAX_UPSTREAMS 32
#define TRAFFIC_MAX_CODES 48

struct metrics_registry;

/* Registers the families (main thread, at start). */
void traffic_metrics_init(struct metrics_registry *reg);

/* A finished request: its final status, request path (NULL: not an API
 * request) and upstream name (NULL: none was chosen). */
void traffic_count_request(int status, const char *path, const char *upstream);
/* An upstream call started (first attempt, retry, fallback, plugin call). */
void traffic_count_attempt(const char *upstream);
/* A retry was scheduled on `upstream`. */
void traffic_count_retry(const char *upstream);
/* A request's first upstream response headers, `seconds` after arrival. */
void traffic_observe_first_byte(const char *upstream, double seconds);

#endif
