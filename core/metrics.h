/* Prometheus metrics. Handles are created at start-up or reload (main
 * thread) and updated lock-free from any thread (relaxed atomics). The
 * registry renders the text exposition format for GET /metrics, valid for
 * `promtool check metrics`: one # HELP / # TYPE per family, then samples.
 *
 * A family is identified by name; several handles may share a family when
 * they differ by label set (e.g. instance="per_user").
 */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include <stddef.h>
#include <stdint.h>

enum metric_kind { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metric;
struct metrics_registry;

struct metrics_registry *metrics_registry_new(void);
void metrics_registry_free(struct metrics_registry *reg);

/* labels: preformatted Prometheus label pairs without braces, e.g.
 * `instance="per_user",upstream="mock"`, or NULL. Returns the existing
 * handle when name+labels were already registered (reload keeps counts).
 * NULL when the name is invalid or the kind conflicts with the family. */
struct metric *metrics_counter(struct metrics_registry *reg, const char *name,
                               const char *help, const char *labels);
struct metric *metrics_gauge(struct metrics_registry *reg, const char *name,
                             const char *help, const char *labels);
/* bounds ascending, n <= 32; +Inf implicit. */
struct metric *metrics_histogram(struct metrics_registry *reg, const char *name,
                                 const char *help, const char *labels,
                                 const double *bounds, size_t n);

void metric_add(struct metric *m, uint64_t v);     /* counters */
void metric_set(struct metric *m, double v);       /* gauges */
void metric_gauge_add(struct metric *m, double d); /* gauges */
void metric_observe(struct metric *m, double v);   /* histograms */
/* Current value (counter total, gauge value, histogram count). */
double metric_value(const struct metric *m);

/* ---- labelled families with bounded cardinality ----
 * A vec is a family with fixed label names whose series are made on first
 * use. Each label keeps at most `max_values` distinct values; later values
 * (and the value "other" itself) read "other", so the family never holds
 * more than the product of (max_values + 1) series (at most
 * METRIC_VEC_MAX_SERIES; a larger product is refused). Values are cut at
 * METRIC_VALUE_MAX bytes and bytes outside printable ASCII read '_'.
 * Lookups of known series are lock-free; a new series takes the registry
 * lock once. Registering the same vec again (a reload) returns it. */
#define METRIC_VEC_MAX_LABELS 4
#define METRIC_VEC_MAX_SERIES 16384
#define METRIC_VALUE_MAX 128

struct metric_vec;

struct metric_label {
    const char *name;
    size_t max_values; /* 1..METRIC_VEC_MAX_SERIES */
};

/* const_labels: preformatted like `labels` above (instance="x"), or NULL. */
struct metric_vec *metrics_counter_vec(struct metrics_registry *reg,
                                       const char *name, const char *help,
                                       const char *const_labels,
                                       const struct metric_label *labels,
                                       size_t n_labels);
struct metric_vec *metrics_gauge_vec(struct metrics_registry *reg,
                                     const char *name, const char *help,
                                     const char *const_labels,
                                     const struct metric_label *labels,
                                     size_t n_labels);
struct metric_vec *metrics_histogram_vec(struct metrics_registry *reg,
                                         const char *name, const char *help,
                                         const char *const_labels,
                                         const struct metric_label *labels,
                                         size_t n_labels, const double *bounds,
                                         size_t n_bounds);

/* The series for `values` (one per label, in order; NULL reads ""). NULL
 * only when `v` is NULL or memory ran out; any thread. */
struct metric *metric_vec_with(struct metric_vec *v, const char *const *values);

/* Renders every family; returns malloc'd text and its length. */
char *metrics_render(struct metrics_registry *reg, size_t *len);

#endif
