/* Labelled metric families with bounded cardinality (metrics.h): each
 * label keeps at most max_values distinct values, later ones read "other";
 * series are plain registry series made on first use. Known series are
 * found without a lock; a new one takes the registry lock once. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics_internal.h"

/* One label of a vec: its distinct values, each published once (written,
 * then `count` raised with release order), read without the lock. */
struct vec_label {
    char *name;
    size_t max_values;
    char **values; /* [max_values] */
    _Atomic size_t count;
};

struct metric_vec {
    struct metric_vec *next;
    struct metrics_registry *reg;
    enum metric_kind kind;
    char *name, *help, *const_labels;
    size_t n_labels;
    struct vec_label label[METRIC_VEC_MAX_LABELS];
    size_t n_bounds;
    double bounds[METRICS_MAX_BUCKETS];
    /* series by value indexes (mixed radix, index max_values = "other"),
     * set once under the registry lock and read lock-free */
    size_t n_slots;
    _Atomic(struct metric *) *series;
};

#define VALUE_NEW SIZE_MAX /* a value not seen yet, with room to keep it */

static void vec_free(struct metric_vec *v)
{
    for (size_t i = 0; i < v->n_labels; i++) {
        struct vec_label *l = &v->label[i];
        size_t n = atomic_load_explicit(&l->count, memory_order_relaxed);
        for (size_t j = 0; j < n; j++)
            free(l->values[j]);
        free(l->values);
        free(l->name);
    }
    free((void *)v->series);
    free(v->name);
    free(v->help);
    free(v->const_labels);
    free(v);
}

void metrics_vecs_free(struct metric_vec *first)
{
    while (first) {
        struct metric_vec *next = first->next;
        vec_free(first);
        first = next;
    }
}

/* Cut to METRIC_VALUE_MAX bytes, printable ASCII only: what is kept must
 * render as valid UTF-8 with nothing to escape but \ and ", and two
 * different inputs that read the same share one series. */
static void clean_value(const char *in, char *out)
{
    size_t n = 0;
    for (; in && in[n] && n < METRIC_VALUE_MAX; n++) {
        unsigned char c = (unsigned char)in[n];
        out[n] = c >= 0x20 && c < 0x7f ? (char)c : '_';
    }
    out[n] = '\0';
}

/* find_kept: the index of a value kept already, max_values for "other",
 * else VALUE_NEW. value_index: the same, but a value not kept reads
 * "other" once the label has no room left. Both lock-free. */
static size_t find_kept(struct vec_label *l, const char *value)
{
    if (value[0] == 'o' && strcmp(value, "other") == 0)
        return l->max_values;
    size_t n = atomic_load_explicit(&l->count, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        if (strcmp(l->values[i], value) == 0)
            return i;
    return VALUE_NEW;
}

static size_t value_index(struct vec_label *l, const char *value)
{
    size_t i = find_kept(l, value);
    if (i != VALUE_NEW)
        return i;
    size_t n = atomic_load_explicit(&l->count, memory_order_acquire);
    return n < l->max_values ? VALUE_NEW : l->max_values;
}

/* Registry lock held. */
static size_t intern_value(struct vec_label *l, const char *value)
{
    size_t i = value_index(l, value);
    if (i != VALUE_NEW)
        return i;
    size_t n = atomic_load_explicit(&l->count, memory_order_relaxed);
    char *copy = strdup(value);
    if (!copy)
        return l->max_values;
    l->values[n] = copy;
    atomic_store_explicit(&l->count, n + 1, memory_order_release);
    return n;
}

static size_t slot_of(const struct metric_vec *v, const size_t *idx)
{
    size_t slot = 0;
    for (size_t i = 0; i < v->n_labels; i++)
        slot = slot * (v->label[i].max_values + 1) + idx[i];
    return slot;
}

/* `a="x",b="y"` from the const labels and one value per label; values
 * given (for checking names) or read from the indexes. */
static char *vec_labels_text(const struct metric_vec *v, const size_t *idx,
                             const char *const *given)
{
    struct metrics_text t = {0};
    metrics_text_puts(&t, v->const_labels);
    for (size_t i = 0; i < v->n_labels; i++) {
        const struct vec_label *l = &v->label[i];
        const char *value = given                     ? given[i]
                            : idx[i] == l->max_values ? "other"
                                                      : l->values[idx[i]];
        if (t.len)
            metrics_text_puts(&t, ",");
        metrics_text_printf(&t, "%s=\"", l->name);
        for (const char *p = value; *p; p++) {
            if (*p == '\\' || *p == '"')
                metrics_text_put(&t, "\\", 1);
            metrics_text_put(&t, p, 1);
        }
        metrics_text_puts(&t, "\"");
    }
    if (t.failed) {
        free(t.buf);
        return NULL;
    }
    return t.buf;
}

struct metric *metric_vec_with(struct metric_vec *v, const char *const *values)
{
    char clean[METRIC_VEC_MAX_LABELS][METRIC_VALUE_MAX + 1];
    size_t idx[METRIC_VEC_MAX_LABELS];
    bool known = true;
    struct metric *m;

    if (!v)
        return NULL;
    for (size_t i = 0; i < v->n_labels; i++) {
        const char *given = values && values[i] ? values[i] : "";
        /* Kept values are clean: look the text up as given and clean only
         * what is not found, so the hot path copies nothing. */
        idx[i] = find_kept(&v->label[i], given);
        if (idx[i] == VALUE_NEW) {
            clean_value(given, clean[i]);
            idx[i] = value_index(&v->label[i], clean[i]);
        }
        known = known && idx[i] != VALUE_NEW;
    }
    if (known) {
        m = atomic_load_explicit(&v->series[slot_of(v, idx)],
                                 memory_order_acquire);
        if (m)
            return m;
    }

    /* First use of this combination: keep new values, make the series. */
    pthread_mutex_lock(&v->reg->lock);
    for (size_t i = 0; i < v->n_labels; i++)
        if (idx[i] == VALUE_NEW)
            idx[i] = intern_value(&v->label[i], clean[i]);
    size_t slot = slot_of(v, idx);
    m = atomic_load_explicit(&v->series[slot], memory_order_relaxed);
    if (!m) {
        const char *why = NULL;
        char *labels = vec_labels_text(v, idx, NULL);
        if (labels)
            m = metrics_find_or_add(v->reg, v->kind, v->name, v->help, labels,
                                    v->bounds, v->n_bounds, &why);
        free(labels);
        if (m)
            atomic_store_explicit(&v->series[slot], m, memory_order_release);
    }
    pthread_mutex_unlock(&v->reg->lock);
    return m;
}

static bool same_vec(const struct metric_vec *v, enum metric_kind kind,
                     const struct metric_label *labels, size_t n_labels,
                     const double *bounds, size_t n_bounds)
{
    if (v->kind != kind || v->n_labels != n_labels || v->n_bounds != n_bounds ||
        (n_bounds && memcmp(v->bounds, bounds, n_bounds * sizeof *bounds)))
        return false;
    for (size_t i = 0; i < n_labels; i++)
        if (strcmp(v->label[i].name, labels[i].name) != 0 ||
            v->label[i].max_values != labels[i].max_values)
            return false;
    return true;
}

static struct metric_vec *new_vec(enum metric_kind kind, const char *name,
                                  const char *help, const char *const_labels,
                                  const struct metric_label *labels,
                                  size_t n_labels, const double *bounds,
                                  size_t n_bounds, size_t n_slots)
{
    struct metric_vec *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->kind = kind;
    v->n_labels = n_labels;
    v->n_slots = n_slots;
    v->n_bounds = kind == METRIC_HISTOGRAM ? n_bounds : 0;
    if (v->n_bounds)
        memcpy(v->bounds, bounds, n_bounds * sizeof *bounds);
    v->name = strdup(name);
    v->help = strdup(help);
    v->const_labels = strdup(const_labels);
    v->series = calloc(n_slots, sizeof *v->series);
    bool ok = v->name && v->help && v->const_labels && v->series;
    for (size_t i = 0; i < n_labels; i++) {
        v->label[i].max_values = labels[i].max_values;
        v->label[i].name = strdup(labels[i].name);
        v->label[i].values = calloc(labels[i].max_values, sizeof(char *));
        ok = ok && v->label[i].name && v->label[i].values;
    }
    if (!ok) {
        vec_free(v);
        return NULL;
    }
    return v;
}

/* Checks everything a series could fail on, so that metric_vec_with only
 * fails for lack of memory. */
static const char *check_vec(enum metric_kind kind, const char *name,
                             const char *help, const char *const_labels,
                             const struct metric_label *labels, size_t n_labels,
                             const double *bounds, size_t n_bounds,
                             size_t *n_slots)
{
    const char *why = metrics_check_name(name, kind);
    if (why)
        return why;
    if (!help || !help[0])
        return "needs help text";
    if (kind == METRIC_HISTOGRAM && !metrics_valid_bounds(bounds, n_bounds))
        return "bounds must be finite, ascending and at most 32";
    if (!labels || n_labels < 1 || n_labels > METRIC_VEC_MAX_LABELS)
        return "a labelled family has 1 to 4 label names";
    *n_slots = 1;
    for (size_t i = 0; i < n_labels; i++) {
        if (!labels[i].name || labels[i].max_values < 1 ||
            labels[i].max_values >= METRIC_VEC_MAX_SERIES)
            return "each label needs a name and max_values >= 1";
        *n_slots *= labels[i].max_values + 1;
        if (*n_slots > METRIC_VEC_MAX_SERIES)
            return "too many possible series; lower max_values";
    }
    /* The label names, with placeholder values, through the usual check
     * (syntax, reserved names, clashes with the const labels). */
    struct metric_vec probe = {.const_labels = (char *)const_labels,
                               .n_labels = n_labels};
    const char *placeholders[METRIC_VEC_MAX_LABELS] = {"x", "x", "x", "x"};
    for (size_t i = 0; i < n_labels; i++)
        probe.label[i].name = (char *)labels[i].name;
    char *text = vec_labels_text(&probe, NULL, placeholders);
    if (!text)
        return "out of memory";
    why = metrics_check_labels(text);
    free(text);
    return why;
}

static struct metric_vec *
register_vec(struct metrics_registry *reg, enum metric_kind kind,
             const char *name, const char *help, const char *const_labels,
             const struct metric_label *labels, size_t n_labels,
             const double *bounds, size_t n_bounds)
{
    size_t n_slots = 0;
    struct metric_vec *v = NULL;

    if (!reg)
        return NULL;
    if (!const_labels)
        const_labels = "";
    const char *why = check_vec(kind, name, help, const_labels, labels,
                                n_labels, bounds, n_bounds, &n_slots);
    if (!why) {
        pthread_mutex_lock(&reg->lock);
        for (v = reg->vecs; v; v = v->next)
            if (strcmp(v->name, name) == 0 &&
                strcmp(v->const_labels, const_labels) == 0)
                break;
        struct metric_family *f = metrics_find_family(reg, name);
        if (v && !same_vec(v, kind, labels, n_labels, bounds, n_bounds)) {
            why = "already registered with other labels or buckets";
            v = NULL;
        } else if (!v && f && f->kind != kind) {
            why = "the name is taken by a metric of another type";
        } else if (!v && !f && kind == METRIC_HISTOGRAM &&
                   metrics_clashes_with_histogram(reg, name)) {
            why = "its samples would clash with another histogram's";
        } else if (!v) {
            v = new_vec(kind, name, help, const_labels, labels, n_labels,
                        bounds, n_bounds, n_slots);
            if (v) {
                v->reg = reg;
                v->next = reg->vecs;
                reg->vecs = v;
            }
        }
        pthread_mutex_unlock(&reg->lock);
        if (v)
            return v;
    }
    log_msg(LOG_WARN, "metrics", "refusing labelled %s %.128s: %s",
            metrics_kind_name(kind), name ? name : "(null)",
            why ? why : "out of memory");
    return NULL;
}

struct metric_vec *metrics_counter_vec(struct metrics_registry *reg,
                                       const char *name, const char *help,
                                       const char *const_labels,
                                       const struct metric_label *labels,
                                       size_t n_labels)
{
    return register_vec(reg, METRIC_COUNTER, name, help, const_labels, labels,
                        n_labels, NULL, 0);
}

struct metric_vec *metrics_gauge_vec(struct metrics_registry *reg,
                                     const char *name, const char *help,
                                     const char *const_labels,
                                     const struct metric_label *labels,
                                     size_t n_labels)
{
    return register_vec(reg, METRIC_GAUGE, name, help, const_labels, labels,
                        n_labels, NULL, 0);
}

struct metric_vec *metrics_histogram_vec(struct metrics_registry *reg,
                                         const char *name, const char *help,
                                         const char *const_labels,
                                         const struct metric_label *labels,
                                         size_t n_labels, const double *bounds,
                                         size_t n_bounds)
{
    return register_vec(reg, METRIC_HISTOGRAM, name, help, const_labels, labels,
                        n_labels, bounds, n_bounds);
}
