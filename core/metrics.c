/* Prometheus metrics registry and text exposition (format 0.0.4).
 *
 * Families and their label sets form linked lists that only grow; they are
 * changed under the registry mutex (registration, rendering). Values are
 * plain atomics updated with relaxed ordering: a scrape may see one update
 * and not another, which is fine for monitoring and costs no fences.
 *
 * Registration refuses (NULL, and a log line saying why) anything that
 * would make `promtool check metrics` fail: bad syntax, and its lint rules
 * (counters end in _total and nothing else does, help text, snake_case,
 * base units spelled out). The first registration's help text wins. */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#define MAX_BUCKETS 32
#define MAX_LABELS 32

struct metric {
    struct metric *next; /* next label set of the same family */
    struct metric_family *family;
    char *labels; /* "" when the family has no labels */
    /* counter: the total; gauge: the bits of a double */
    _Atomic uint64_t value;
    /* histograms: per-bucket (not cumulative) counts, [n_bounds] = +Inf.
     * The count is their sum, so `_count` always equals the +Inf bucket. */
    size_t n_bounds;
    double bounds[MAX_BUCKETS];
    _Atomic uint64_t buckets[MAX_BUCKETS + 1];
    _Atomic uint64_t sum_bits; /* bits of a double, updated by CAS */
};

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
    double bounds[MAX_BUCKETS];
    /* series by value indexes (mixed radix, index max_values = "other"),
     * set once under the registry lock and read lock-free */
    size_t n_slots;
    _Atomic(struct metric *) *series;
};

static void vec_free(struct metric_vec *v);

/* ---- doubles stored in 64-bit atomics ---- */

static uint64_t double_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double bits_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void atomic_add_double(_Atomic uint64_t *slot, double d)
{
    uint64_t old = atomic_load_explicit(slot, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(
        slot, &old, double_bits(bits_double(old) + d), memory_order_relaxed,
        memory_order_relaxed))
        ;
}

/* ---- names: the text format's syntax plus `promtool check metrics`
 * lint rules, so /metrics stays valid whatever a plugin registers. Each
 * check returns why it refuses, or NULL. ---- */

static bool is_lower(char c)
{
    return c >= 'a' && c <= 'z';
}

static bool is_upper(char c)
{
    return c >= 'A' && c <= 'Z';
}

static bool is_name_start(char c)
{
    return is_lower(c) || is_upper(c) || c == '_';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* promtool's [a-z][A-Z] test, for metric and label names. */
static bool is_camel_case(const char *s, size_t len)
{
    for (size_t i = 1; i < len; i++)
        if (is_lower(s[i - 1]) && is_upper(s[i]))
            return true;
    return false;
}

static bool word_is(const char *word, size_t len, const char *text)
{
    return strlen(text) == len && strncasecmp(word, text, len) == 0;
}

/* Units promtool wants spelled out in base form (promlint's tables). */
static const char *unit_problem(const char *word, size_t len)
{
    static const char *const abbreviations[] = {"s",  "ms", "us", "ns", "sec",
                                                "b",  "kb", "mb", "gb", "tb",
                                                "pb", "m",  "h",  "d"};
    static const char *const base_units[] = {
        "amperes", "bytes",  "celsius", "grams",   "joules",
        "kelvin",  "meters", "metres",  "seconds", "volts"};
    static const char *const non_base[] = {
        "minutes",    "hours",    "days",   "weeks", "kelvins",
        "fahrenheit", "rankine",  "inches", "yards", "miles",
        "bits",       "calories", "pounds", "ounces"};
    static const char *const prefixes[] = {
        "pico",  "nano", "micro", "milli", "centi", "deci", "deca",
        "hecto", "kilo", "mega",  "giga",  "tera",  "peta"};

    for (size_t i = 0; i < sizeof abbreviations / sizeof *abbreviations; i++)
        if (word_is(word, len, abbreviations[i]))
            return "abbreviated unit; spell it out (seconds, bytes)";
    for (size_t i = 0; i < sizeof non_base / sizeof *non_base; i++)
        if (word_is(word, len, non_base[i]))
            return "use the base unit (seconds, bytes, meters, ...)";
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        size_t plen = strlen(prefixes[i]);
        if (len <= plen || strncasecmp(word, prefixes[i], plen) != 0)
            continue;
        for (size_t j = 0; j < sizeof base_units / sizeof *base_units; j++)
            if (word_is(word + plen, len - plen, base_units[j]))
                return "use the base unit without a prefix (seconds, not "
                       "milliseconds)";
    }
    return NULL;
}

static const char *kind_name(enum metric_kind kind);

static const char *check_name(const char *name, enum metric_kind kind)
{
    if (!name || !is_name_start(name[0]))
        return "a name must match [a-zA-Z_][a-zA-Z0-9_]*";
    for (const char *p = name; *p; p++)
        if (!is_name_char(*p))
            return *p == ':' ? "':' is reserved for recording rules"
                             : "a name must match [a-zA-Z_][a-zA-Z0-9_]*";
    if (is_camel_case(name, strlen(name)))
        return "use snake_case, not camelCase";
    if (kind == METRIC_COUNTER && !ends_with(name, "_total"))
        return "counter names end in _total";
    if (kind != METRIC_COUNTER && ends_with(name, "_total"))
        return "only counter names end in _total";
    if (kind != METRIC_HISTOGRAM &&
        (ends_with(name, "_bucket") || ends_with(name, "_sum") ||
         ends_with(name, "_count")))
        return "only histogram samples end in _bucket, _sum or _count";

    /* Word checks: the first word may be anything (a namespace). */
    const char *word = strchr(name, '_');
    while (word) {
        word++;
        const char *end = strchr(word, '_');
        size_t len = end ? (size_t)(end - word) : strlen(word);
        if (word_is(word, len, kind_name(kind)))
            return "a name must not contain its type";
        const char *problem = unit_problem(word, len);
        if (problem)
            return problem;
        word = end;
    }
    return NULL;
}

/* Checks `a="x",b="y"`: label names [a-zA-Z_][a-zA-Z0-9_]* in snake_case,
 * not reserved (`__`, `le` for buckets, `quantile` for summaries) nor
 * repeated; values with only the escapes \\ \" \n and no raw newline. */
static const char *check_labels(const char *labels)
{
    const char *names[MAX_LABELS];
    size_t name_lens[MAX_LABELS];
    size_t n_names = 0;
    const char *p = labels;

    for (;;) {
        const char *start = p;
        if (!is_name_start(*p))
            return "labels must look like name=\"value\",...";
        while (is_name_char(*p))
            p++;
        size_t len = (size_t)(p - start);
        if ((len >= 2 && start[0] == '_' && start[1] == '_') ||
            word_is(start, len, "le") || word_is(start, len, "quantile"))
            return "a reserved label name (__*, le, quantile)";
        if (is_camel_case(start, len))
            return "use snake_case label names";
        for (size_t i = 0; i < n_names; i++)
            if (name_lens[i] == len && strncmp(names[i], start, len) == 0)
                return "a label name appears twice";
        if (n_names == MAX_LABELS)
            return "too many labels";
        names[n_names] = start;
        name_lens[n_names++] = len;
        if (p[0] != '=' || p[1] != '"')
            return "labels must look like name=\"value\",...";
        for (p += 2; *p != '"'; p++) {
            if (*p == '\0' || *p == '\n')
                return "a label value is not closed on its line";
            if (*p == '\\') {
                p++;
                if (*p != '\\' && *p != '"' && *p != 'n')
                    return "label values may only escape \\\\, \\\" and \\n";
            }
        }
        p++;
        if (*p == '\0')
            return NULL;
        if (*p++ != ',')
            return "labels must look like name=\"value\",...";
    }
}

/* ---- the registry ---- */

struct metrics_registry *metrics_registry_new(void)
{
    struct metrics_registry *reg = calloc(1, sizeof *reg);
    if (reg)
        pthread_mutex_init(&reg->lock, NULL);
    return reg;
}

void metrics_registry_free(struct metrics_registry *reg)
{
    if (!reg)
        return;
    struct metric_family *f = reg->first;
    while (f) {
        struct metric_family *next_family = f->next;
        struct metric *m = f->first;
        while (m) {
            struct metric *next = m->next;
            free(m->labels);
            free(m);
            m = next;
        }
        free(f->name);
        free(f->help);
        free(f);
        f = next_family;
    }
    while (reg->vecs) {
        struct metric_vec *next = reg->vecs->next;
        vec_free(reg->vecs);
        reg->vecs = next;
    }
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

static struct metric_family *find_family(struct metrics_registry *reg,
                                         const char *name)
{
    for (struct metric_family *f = reg->first; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

/* Histogram `x` writes x_bucket, x_sum and x_count: refuse a second
 * histogram named like one of those, or one whose samples those are. */
static bool clashes_with_histogram(struct metrics_registry *reg,
                                   const char *name)
{
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};

    for (struct metric_family *f = reg->first; f; f = f->next) {
        if (f->kind != METRIC_HISTOGRAM)
            continue;
        const char *longer = strlen(f->name) > strlen(name) ? f->name : name;
        const char *shorter = longer == name ? f->name : name;
        size_t n = strlen(shorter);
        if (strncmp(longer, shorter, n) != 0)
            continue;
        for (size_t i = 0; i < 3; i++)
            if (strcmp(longer + n, suffixes[i]) == 0)
                return true;
    }
    return false;
}

static struct metric_family *add_family(struct metrics_registry *reg,
                                        const char *name, const char *help,
                                        enum metric_kind kind)
{
    struct metric_family *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->kind = kind;
    if (!f->name || !f->help) {
        free(f->name);
        free(f->help);
        free(f);
        return NULL;
    }
    if (reg->last)
        reg->last->next = f;
    else
        reg->first = f;
    reg->last = f;
    return f;
}

static bool same_bounds(const struct metric *m, const double *bounds, size_t n)
{
    return m->n_bounds == n &&
           (n == 0 || memcmp(m->bounds, bounds, n * sizeof *bounds) == 0);
}

static bool valid_bounds(const double *bounds, size_t n)
{
    if (n > MAX_BUCKETS || (n > 0 && !bounds))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (isnan(bounds[i]) || isinf(bounds[i]))
            return false;
        if (i > 0 && !(bounds[i] > bounds[i - 1]))
            return false;
    }
    return true;
}

static struct metric *new_metric(struct metric_family *f, const char *labels,
                                 const double *bounds, size_t n)
{
    struct metric *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->labels = strdup(labels);
    if (!m->labels) {
        free(m);
        return NULL;
    }
    m->family = f;
    if (f->kind == METRIC_HISTOGRAM) {
        m->n_bounds = n;
        if (n)
            memcpy(m->bounds, bounds, n * sizeof *bounds);
    }
    if (f->last)
        f->last->next = m;
    else
        f->first = m;
    f->last = m;
    return m;
}

/* Called with reg->lock held. The existing handle for a known name+labels
 * (so counts survive a reload), else a new one; NULL with *why set. */
static struct metric *find_or_add(struct metrics_registry *reg,
                                  enum metric_kind kind, const char *name,
                                  const char *help, const char *labels,
                                  const double *bounds, size_t n,
                                  const char **why)
{
    struct metric_family *f = find_family(reg, name);

    if (f && f->kind != kind) {
        *why = "the name is taken by a metric of another type";
        return NULL;
    }
    if (f) {
        for (struct metric *m = f->first; m; m = m->next) {
            if (strcmp(m->labels, labels) != 0)
                continue;
            if (kind == METRIC_HISTOGRAM && !same_bounds(m, bounds, n)) {
                *why = "already registered with other buckets";
                return NULL;
            }
            return m;
        }
    } else {
        if (kind == METRIC_HISTOGRAM && clashes_with_histogram(reg, name)) {
            *why = "its samples would clash with another histogram's";
            return NULL;
        }
        f = add_family(reg, name, help, kind);
        if (!f)
            return NULL;
    }
    return new_metric(f, labels, bounds, n);
}

/* The one registration path: main thread at start and reload, or a
 * worker registering a label set lazily. A refusal is logged with its
 * reason, since callers only see NULL. */
static struct metric *register_metric(struct metrics_registry *reg,
                                      enum metric_kind kind, const char *name,
                                      const char *help, const char *labels,
                                      const double *bounds, size_t n)
{
    const char *why = NULL;
    struct metric *m = NULL;

    if (!reg)
        return NULL;
    if (!labels)
        labels = "";
    why = check_name(name, kind);
    if (!why && labels[0])
        why = check_labels(labels);
    if (!why && (!help || !help[0]))
        why = "needs help text";
    if (!why && kind == METRIC_HISTOGRAM && !valid_bounds(bounds, n))
        why = "bounds must be finite, ascending and at most 32";
    if (!why) {
        pthread_mutex_lock(&reg->lock);
        m = find_or_add(reg, kind, name, help, labels, bounds, n, &why);
        pthread_mutex_unlock(&reg->lock);
        if (m)
            return m;
    }
    log_msg(LOG_WARN, "metrics", "refusing %s %.128s%s%.256s%s: %s",
            kind_name(kind), name ? name : "(null)", labels[0] ? "{" : "",
            labels, labels[0] ? "}" : "", why ? why : "out of memory");
    return NULL;
}

struct metric *metrics_counter(struct metrics_registry *reg, const char *name,
                               const char *help, const char *labels)
{
    return register_metric(reg, METRIC_COUNTER, name, help, labels, NULL, 0);
}

struct metric *metrics_gauge(struct metrics_registry *reg, const char *name,
                             const char *help, const char *labels)
{
    return register_metric(reg, METRIC_GAUGE, name, help, labels, NULL, 0);
}

struct metric *metrics_histogram(struct metrics_registry *reg, const char *name,
                                 const char *help, const char *labels,
                                 const double *bounds, size_t n)
{
    return register_metric(reg, METRIC_HISTOGRAM, name, help, labels, bounds,
                           n);
}

/* ---- updates: lock-free; a NULL or wrong-kind handle is ignored so a
 * failed registration never crashes the hot path ---- */

static bool is_kind(const struct metric *m, enum metric_kind kind)
{
    return m && m->family->kind == kind;
}

void metric_add(struct metric *m, uint64_t v)
{
    if (is_kind(m, METRIC_COUNTER))
        atomic_fetch_add_explicit(&m->value, v, memory_order_relaxed);
}

void metric_set(struct metric *m, double v)
{
    if (is_kind(m, METRIC_GAUGE))
        atomic_store_explicit(&m->value, double_bits(v), memory_order_relaxed);
}

void metric_gauge_add(struct metric *m, double d)
{
    if (is_kind(m, METRIC_GAUGE))
        atomic_add_double(&m->value, d);
}

void metric_observe(struct metric *m, double v)
{
    if (!is_kind(m, METRIC_HISTOGRAM))
        return;
    size_t i = 0;
    while (i < m->n_bounds && !(v <= m->bounds[i]))
        i++; /* NaN and values above every bound land in +Inf */
    atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
    atomic_add_double(&m->sum_bits, v);
}

static uint64_t histogram_count(const struct metric *m)
{
    uint64_t count = 0;
    for (size_t i = 0; i <= m->n_bounds; i++)
        count += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
    return count;
}

double metric_value(const struct metric *m)
{
    if (!m)
        return 0;
    switch (m->family->kind) {
    case METRIC_COUNTER:
        return (double)atomic_load_explicit(&m->value, memory_order_relaxed);
    case METRIC_GAUGE:
        return bits_double(
            atomic_load_explicit(&m->value, memory_order_relaxed));
    case METRIC_HISTOGRAM:
        return (double)histogram_count(m);
    }
    return 0;
}

/* ---- rendering into a growable buffer ---- */

struct text {
    char *buf;
    size_t len, cap;
    bool failed; /* an allocation failed; the result is dropped */
};

static bool text_reserve(struct text *t, size_t extra)
{
    if (t->failed)
        return false;
    if (t->len + extra + 1 <= t->cap)
        return true;
    size_t cap = t->cap ? t->cap : 4096;
    while (cap < t->len + extra + 1)
        cap *= 2;
    char *buf = realloc(t->buf, cap);
    if (!buf) {
        t->failed = true;
        return false;
    }
    t->buf = buf;
    t->cap = cap;
    return true;
}

static void text_put(struct text *t, const char *s, size_t n)
{
    if (!text_reserve(t, n))
        return;
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static void text_puts(struct text *t, const char *s)
{
    text_put(t, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void
text_printf(struct text *t, const char *fmt, ...)
{
    va_list ap;
    char small[128];

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        text_put(t, small, (size_t)n);
        return;
    }
    if (!text_reserve(t, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(t->buf + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* HELP text escapes only backslash and newline (format 0.0.4). */
static void put_help(struct text *t, const char *help)
{
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            text_puts(t, "\\\\");
        else if (*p == '\n')
            text_puts(t, "\\n");
        else
            text_put(t, p, 1);
    }
}

/* Shortest text that reads back as the same double; Prometheus spells
 * the special values +Inf, -Inf and NaN. */
static void format_double(char *out, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(out, cap, "NaN");
    } else if (isinf(v)) {
        snprintf(out, cap, "%s", v > 0 ? "+Inf" : "-Inf");
    } else {
        snprintf(out, cap, "%.15g", v);
        if (strtod(out, NULL) != v)
            snprintf(out, cap, "%.17g", v);
    }
}

static void put_double(struct text *t, double v)
{
    char num[40];
    format_double(num, sizeof num, v);
    text_puts(t, num);
}

static void put_sample_start(struct text *t, const char *name,
                             const char *suffix, const char *labels)
{
    text_puts(t, name);
    text_puts(t, suffix);
    if (labels[0])
        text_printf(t, "{%s}", labels);
    text_puts(t, " ");
}

static void render_histogram(struct text *t, const char *name,
                             const struct metric *m)
{
    const char *sep = m->labels[0] ? "," : "";
    uint64_t cumulative = 0;
    char le[40];

    for (size_t i = 0; i <= m->n_bounds; i++) {
        cumulative +=
            atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
        if (i < m->n_bounds)
            format_double(le, sizeof le, m->bounds[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        text_printf(t, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, m->labels, sep,
                    le, (unsigned long long)cumulative);
    }
    put_sample_start(t, name, "_sum", m->labels);
    put_double(t, bits_double(atomic_load_explicit(&m->sum_bits,
                                                   memory_order_relaxed)));
    text_puts(t, "\n");
    put_sample_start(t, name, "_count", m->labels);
    text_printf(t, "%llu\n", (unsigned long long)cumulative);
}

static const char *kind_name(enum metric_kind kind)
{
    switch (kind) {
    case METRIC_COUNTER:
        return "counter";
    case METRIC_GAUGE:
        return "gauge";
    case METRIC_HISTOGRAM:
        return "histogram";
    }
    return "untyped";
}

static void render_family(struct text *t, const struct metric_family *f)
{
    text_printf(t, "# HELP %s ", f->name);
    put_help(t, f->help);
    text_printf(t, "\n# TYPE %s %s\n", f->name, kind_name(f->kind));
    for (const struct metric *m = f->first; m; m = m->next) {
        if (f->kind == METRIC_HISTOGRAM) {
            render_histogram(t, f->name, m);
            continue;
        }
        put_sample_start(t, f->name, "", m->labels);
        if (f->kind == METRIC_COUNTER)
            text_printf(t, "%llu",
                        (unsigned long long)atomic_load_explicit(
                            &m->value, memory_order_relaxed));
        else
            put_double(t, metric_value(m));
        text_puts(t, "\n");
    }
}

char *metrics_render(struct metrics_registry *reg, size_t *len)
{
    struct text t = {0};

    if (len)
        *len = 0;
    if (!reg)
        return NULL;
    text_reserve(&t, 0); /* an empty registry still renders "" */
    pthread_mutex_lock(&reg->lock);
    for (const struct metric_family *f = reg->first; f; f = f->next)
        render_family(&t, f);
    pthread_mutex_unlock(&reg->lock);
    if (t.failed) {
        free(t.buf);
        return NULL;
    }
    t.buf[t.len] = '\0';
    if (len)
        *len = t.len;
    return t.buf;
}

/* ---- labelled families (vecs) ---- */

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

/* The value's index, max_values for "other" (asked for, or no room
 * left), or VALUE_NEW. Lock-free. */
static size_t value_index(struct vec_label *l, const char *value)
{
    if (strcmp(value, "other") == 0)
        return l->max_values;
    size_t n = atomic_load_explicit(&l->count, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        if (strcmp(l->values[i], value) == 0)
            return i;
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
    struct text t = {0};
    text_puts(&t, v->const_labels);
    for (size_t i = 0; i < v->n_labels; i++) {
        const struct vec_label *l = &v->label[i];
        const char *value = given                     ? given[i]
                            : idx[i] == l->max_values ? "other"
                                                      : l->values[idx[i]];
        if (t.len)
            text_puts(&t, ",");
        text_printf(&t, "%s=\"", l->name);
        for (const char *p = value; *p; p++) {
            if (*p == '\\' || *p == '"')
                text_put(&t, "\\", 1);
            text_put(&t, p, 1);
        }
        text_puts(&t, "\"");
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
        clean_value(values ? values[i] : NULL, clean[i]);
        idx[i] = value_index(&v->label[i], clean[i]);
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
            m = find_or_add(v->reg, v->kind, v->name, v->help, labels,
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
    const char *why = check_name(name, kind);
    if (why)
        return why;
    if (!help || !help[0])
        return "needs help text";
    if (kind == METRIC_HISTOGRAM && !valid_bounds(bounds, n_bounds))
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
    why = check_labels(text);
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
        struct metric_family *f = find_family(reg, name);
        if (v && !same_vec(v, kind, labels, n_labels, bounds, n_bounds)) {
            why = "already registered with other labels or buckets";
            v = NULL;
        } else if (!v && f && f->kind != kind) {
            why = "the name is taken by a metric of another type";
        } else if (!v && !f && kind == METRIC_HISTOGRAM &&
                   clashes_with_histogram(reg, name)) {
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
            kind_name(kind), name ? name : "(null)",
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
