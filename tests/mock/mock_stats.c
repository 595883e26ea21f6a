#include "mock_stats.h"

void mock_stats_add(atomic_long *counter, long delta)
{
    atomic_fetch_add_explicit(counter, delta, memory_order_relaxed);
}

/* Raises *peak to now unless it is already higher. */
static void raise_peak(atomic_long *peak, long now)
{
    long max = atomic_load_explicit(peak, memory_order_relaxed);
    while (now > max &&
           !atomic_compare_exchange_weak_explicit(
               peak, &max, now, memory_order_relaxed, memory_order_relaxed)) {
    }
}

void mock_stats_begin(struct mock_stats *s)
{
    mock_stats_add(&s->requests, 1);
    long now =
        atomic_fetch_add_explicit(&s->in_flight, 1, memory_order_relaxed) + 1;
    raise_peak(&s->max_in_flight, now);
}

void mock_stats_conn_open(struct mock_stats *s)
{
    mock_stats_add(&s->connections_accepted, 1);
    long now = atomic_fetch_add_explicit(&s->connections_open, 1,
                                         memory_order_relaxed) +
               1;
    raise_peak(&s->peak_connections, now);
}

void mock_stats_conn_close(struct mock_stats *s)
{
    mock_stats_add(&s->connections_open, -1);
}

void mock_stats_status(struct mock_stats *s, int status)
{
    if (status >= 200 && status < 300)
        mock_stats_add(&s->status_2xx, 1);
    else if (status >= 400 && status < 500)
        mock_stats_add(&s->status_4xx, 1);
    else if (status >= 500)
        mock_stats_add(&s->status_5xx, 1);
    if (status == 429)
        mock_stats_add(&s->rate_limited, 1);
}

void mock_stats_end(struct mock_stats *s)
{
    mock_stats_add(&s->in_flight, -1);
}

void mock_stats_reset(struct mock_stats *s)
{
#define MOCK_STATS_ZERO(name, gauge)                                           \
    if (!(gauge))                                                              \
        atomic_store_explicit(&s->name, 0, memory_order_relaxed);
    MOCK_STATS_FIELDS(MOCK_STATS_ZERO)
#undef MOCK_STATS_ZERO
    atomic_store_explicit(
        &s->max_in_flight,
        atomic_load_explicit(&s->in_flight, memory_order_relaxed),
        memory_order_relaxed);
    atomic_store_explicit(
        &s->peak_connections,
        atomic_load_explicit(&s->connections_open, memory_order_relaxed),
        memory_order_relaxed);
}

json_t *mock_stats_json(struct mock_stats *s)
{
    json_t *o = json_object();
#define MOCK_STATS_PUT(name, gauge)                                            \
    json_object_set_new(                                                       \
        o, #name,                                                              \
        json_integer(atomic_load_explicit(&s->name, memory_order_relaxed)));
    MOCK_STATS_FIELDS(MOCK_STATS_PUT)
#undef MOCK_STATS_PUT
    return o;
}
