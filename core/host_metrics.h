/* Labelled metrics for plugins (SDK 1.1): counter_vec, gauge_vec,
 * histogram_vec and metric_with over the registry's bounded vecs. */
#ifndef SLUICE_HOST_METRICS_H
#define SLUICE_HOST_METRICS_H

#include "sluice/host.h"

/* Most distinct values a plugin may keep per label, and most series a
 * plugin family may reach ((max_values + 1) ^ n_labels). */
#define HOST_VEC_MAX_VALUES 64
#define HOST_VEC_MAX_SERIES 4096

/* Fills the 1.1 labelled-metrics members of the host table. */
void host_metrics_fill(struct sluice_host *h);

#endif
