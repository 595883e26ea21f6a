/* Labelled metrics for plugins. Each family carries the instance="NAME"
 * label like the plain ones (host.c), plus the plugin's own labels with
 * the cardinality bound the SDK promises: max_values per label (then
 * "other"), at most HOST_VEC_MAX_SERIES series per family. */
#include "host_metrics.h"

#include <stdio.h>

#include "log.h"
#include "metrics.h"
#include "runtime.h"

static struct sluice_metric_vec *
make_vec(const struct sluice_host *h, enum metric_kind kind, const char *name,
         const char *help, const char *const *labels, size_t n_labels,
         size_t max_values, const double *bounds, size_t n_bounds)
{
    const struct instance *inst = ((const struct instance_host *)h)->inst;
    struct metric_label spec[METRIC_VEC_MAX_LABELS];
    size_t series = 1;
    char instance[96];

    if (!labels || n_labels < 1 || n_labels > METRIC_VEC_MAX_LABELS ||
        max_values < 1 || max_values > HOST_VEC_MAX_VALUES) {
        log_msg(LOG_WARN, "metrics",
                "plugin %s: refusing %.128s: 1 to %d labels and max_values "
                "1..%d",
                inst->name, name ? name : "(null)", METRIC_VEC_MAX_LABELS,
                HOST_VEC_MAX_VALUES);
        return NULL;
    }
    for (size_t i = 0; i < n_labels; i++) {
        spec[i].name = labels[i];
        spec[i].max_values = max_values;
        series *= max_values + 1;
    }
    if (series > HOST_VEC_MAX_SERIES) {
        log_msg(LOG_WARN, "metrics",
                "plugin %s: refusing %.128s: up to %zu series, more than %d",
                inst->name, name ? name : "(null)", series,
                HOST_VEC_MAX_SERIES);
        return NULL;
    }
    snprintf(instance, sizeof instance, "instance=\"%s\"", inst->name);
    struct metric_vec *v = NULL;
    switch (kind) {
    case METRIC_COUNTER:
        v = metrics_counter_vec(g_runtime.metrics, name, help, instance, spec,
                                n_labels);
        break;
    case METRIC_GAUGE:
        v = metrics_gauge_vec(g_runtime.metrics, name, help, instance, spec,
                              n_labels);
        break;
    case METRIC_HISTOGRAM:
        v = metrics_histogram_vec(g_runtime.metrics, name, help, instance, spec,
                                  n_labels, bounds, n_bounds);
        break;
    }
    return (struct sluice_metric_vec *)v;
}

static struct sluice_metric_vec *
h_counter_vec(const struct sluice_host *h, const char *name, const char *help,
              const char *const *labels, size_t n_labels, size_t max_values)
{
    return make_vec(h, METRIC_COUNTER, name, help, labels, n_labels, max_values,
                    NULL, 0);
}

static struct sluice_metric_vec *h_gauge_vec(const struct sluice_host *h,
                                             const char *name, const char *help,
                                             const char *const *labels,
                                             size_t n_labels, size_t max_values)
{
    return make_vec(h, METRIC_GAUGE, name, help, labels, n_labels, max_values,
                    NULL, 0);
}

static struct sluice_metric_vec *
h_histogram_vec(const struct sluice_host *h, const char *name, const char *help,
                const char *const *labels, size_t n_labels, size_t max_values,
                const double *bounds, size_t n_bounds)
{
    return make_vec(h, METRIC_HISTOGRAM, name, help, labels, n_labels,
                    max_values, bounds, n_bounds);
}

static struct sluice_metric *h_metric_with(struct sluice_metric_vec *v,
                                           const char *const *values)
{
    return (struct sluice_metric *)metric_vec_with((struct metric_vec *)v,
                                                   values);
}

void host_metrics_fill(struct sluice_host *h)
{
    h->counter_vec = h_counter_vec;
    h->gauge_vec = h_gauge_vec;
    h->histogram_vec = h_histogram_vec;
    h->metric_with = h_metric_with;
}
