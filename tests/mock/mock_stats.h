/* Process-wide counters of the mock provider, read by GET /mock/stats.
 * Every field is an atomic updated with relaxed ordering: counters are
 * independent and only need to be exact, not ordered. */
#ifndef SLUICE_MOCK_STATS_H
#define SLUICE_MOCK_STATS_H

#include <jansson.h>
#include <stdatomic.h>

/* X(name, is_gauge): gauges describe the present (open connections,
 * requests in flight) and survive POST /mock/reset. */
#define MOCK_STATS_FIELDS(X)                                                   \
    X(requests, 0)                                                             \
    X(chat_completions, 0)                                                     \
    X(completions, 0)                                                          \
    X(responses, 0)                                                            \
    X(embeddings, 0)                                                           \
    X(models, 0)                                                               \
    X(not_found, 0)                                                            \
    X(control, 0)                                                              \
    X(status_2xx, 0)                                                           \
    X(status_4xx, 0)                                                           \
    X(status_5xx, 0)                                                           \
    X(rate_limited, 0)                                                         \
    X(client_closed, 0)                                                        \
    X(streams_started, 0)                                                      \
    X(streams_completed, 0)                                                    \
    X(streams_client_closed, 0)                                                \
    X(streams_reset, 0)                                                        \
    X(stream_bytes, 0)                                                         \
    X(connections_accepted, 0)                                                 \
    X(connections_open, 1)                                                     \
    X(peak_connections, 0)                                                     \
    X(in_flight, 1)                                                            \
    X(max_in_flight, 0)                                                        \
    X(files_uploaded, 0)                                                       \
    X(file_contents, 0)                                                        \
    X(batches_created, 0)                                                      \
    X(batch_retrievals, 0)                                                     \
    X(batch_cancels, 0)                                                        \
    X(batch_lines, 0)                                                          \
    X(file_lists, 0)                                                           \
    X(batch_lists, 0)

struct mock_stats {
#define MOCK_STATS_DECLARE(name, gauge) atomic_long name;
    MOCK_STATS_FIELDS(MOCK_STATS_DECLARE)
#undef MOCK_STATS_DECLARE
};

void mock_stats_add(atomic_long *counter, long delta);
/* A counted request starts: requests, in_flight and max_in_flight. */
void mock_stats_begin(struct mock_stats *s);
/* Its status is known (counted once, when headers are sent). */
void mock_stats_status(struct mock_stats *s, int status);
/* It is over, however it ended. */
void mock_stats_end(struct mock_stats *s);
/* A client connection sent its first request / closed: connections_open,
 * connections_accepted and peak_connections. */
void mock_stats_conn_open(struct mock_stats *s);
void mock_stats_conn_close(struct mock_stats *s);
/* Zero every counter except the gauges. */
void mock_stats_reset(struct mock_stats *s);
json_t *mock_stats_json(struct mock_stats *s);

#endif
