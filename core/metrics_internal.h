/* Internals shared by metrics.c (the registry, names, rendering) and
 * metrics_vec.c (labelled families). Not for other files: use metrics.h. */
#ifndef SLUICE_METRICS_INTERNAL_H
#define SLUICE_METRICS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "metrics.h"

#define METRICS_MAX_BUCKETS 32

struct metric_family {
    struct metric_family *next;
    char *name;
    char *help;
    enum metric_kind kind;
    struct metric *first, *last;
};

struct metrics_registry {
    pthread_mutex_t lock; /* family and label lists, never the values */
    struct metric_family *first, *last;
    struct metric_vec *vecs; /* labelled families, for re-registration */
};

/* A growable text buffer; after a failed allocation `failed` is set and
 * later writes are dropped. */
struct metrics_text {
    char *buf;
    size_t len, cap;
    bool failed; /* an allocation failed; the result is dropped */
};

void metrics_text_put(struct metrics_text *t, const char *s, size_t n);
void metrics_text_puts(struct metrics_text *t, const char *s);
__attribute__((format(printf, 2, 3))) void
metrics_text_printf(struct metrics_text *t, const char *fmt, ...);

/* Why a name, or a preformatted label set, would break the exposition
 * (syntax and promtool's lint rules), or NULL. */
const char *metrics_check_name(const char *name, enum metric_kind kind);
const char *metrics_check_labels(const char *labels);
bool metrics_valid_bounds(const double *bounds, size_t n);
const char *metrics_kind_name(enum metric_kind kind);

/* With reg->lock held. */
struct metric_family *metrics_find_family(struct metrics_registry *reg,
                                          const char *name);
bool metrics_clashes_with_histogram(struct metrics_registry *reg,
                                    const char *name);
/* The existing series for name+labels, else a new one; NULL with *why. */
struct metric *metrics_find_or_add(struct metrics_registry *reg,
                                   enum metric_kind kind, const char *name,
                                   const char *help, const char *labels,
                                   const double *bounds, size_t n,
                                   const char **why);

/* metrics_vec.c: frees the registry's list of vecs (teardown). */
void metrics_vecs_free(struct metric_vec *first);

#endif
