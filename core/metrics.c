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
 * base units spelled out). The first registration's help text wins.
 * Labelled families with bounded cardinality are in metrics_vec.c. */
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
#include "metrics_internal.h"

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
    double bounds[METRICS_MAX_BUCKETS];
    _Atomic uint64_t buckets[METRICS_MAX_BUCKETS + 1];
    _Atomic uint64_t sum_bits; /* bits of a double, updated by CAS */
};

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

const char *metrics_check_name(const char *name, enum metric_kind kind)
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
        if (word_is(word, len, metrics_kind_name(kind)))
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
const char *metrics_check_labels(const char *labels)
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
    metrics_vecs_free(reg->vecs);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

struct metric_family *metrics_find_family(struct metrics_registry *reg,
                                          const char *name)
{
    for (struct metric_family *f = reg->first; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

/* Histogram `x` writes x_bucket, x_sum and x_count: refuse a second
 * histogram named like one of those, or one whose samples those are. */
bool metrics_clashes_with_histogram(struct metrics_registry *reg,
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

bool metrics_valid_bounds(const double *bounds, size_t n)
{
    if (n > METRICS_MAX_BUCKETS || (n > 0 && !bounds))
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
struct metric *metrics_find_or_add(struct metrics_registry *reg,
                                   enum metric_kind kind, const char *name,
                                   const char *help, const char *labels,
                                   const double *bounds, size_t n,
                                   const char **why)
{
    struct metric_family *f = metrics_find_family(reg, name);

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
        if (kind == METRIC_HISTOGRAM &&
            metrics_clashes_with_histogram(reg, name)) {
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
    why = metrics_check_name(name, kind);
    if (!why && labels[0])
        why = metrics_check_labels(labels);
    if (!why && (!help || !help[0]))
        why = "needs help text";
    if (!why && kind == METRIC_HISTOGRAM && !metrics_valid_bounds(bounds, n))
        why = "bounds must be finite, ascending and at most 32";
    if (!why) {
        pthread_mutex_lock(&reg->lock);
        m = metrics_find_or_add(reg, kind, name, help, labels, bounds, n, &why);
        pthread_mutex_unlock(&reg->lock);
        if (m)
            return m;
    }
    log_msg(LOG_WARN, "metrics", "refusing %s %.128s%s%.256s%s: %s",
            metrics_kind_name(kind), name ? name : "(null)",
            labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
            why ? why : "out of memory");
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

static bool text_reserve(struct metrics_text *t, size_t extra)
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

void metrics_text_put(struct metrics_text *t, const char *s, size_t n)
{
    if (!text_reserve(t, n))
        return;
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

void metrics_text_puts(struct metrics_text *t, const char *s)
{
    metrics_text_put(t, s, strlen(s));
}

void metrics_text_printf(struct metrics_text *t, const char *fmt, ...)
{
    va_list ap;
    char small[128];

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        metrics_text_put(t, small, (size_t)n);
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
static void put_help(struct metrics_text *t, const char *help)
{
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            metrics_text_puts(t, "\\\\");
        else if (*p == '\n')
            metrics_text_puts(t, "\\n");
        else
            metrics_text_put(t, p, 1);
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

static void put_double(struct metrics_text *t, double v)
{
    char num[40];
    format_double(num, sizeof num, v);
    metrics_text_puts(t, num);
}

static void put_sample_start(struct metrics_text *t, const char *name,
                             const char *suffix, const char *labels)
{
    metrics_text_puts(t, name);
    metrics_text_puts(t, suffix);
    if (labels[0])
        metrics_text_printf(t, "{%s}", labels);
    metrics_text_puts(t, " ");
}

static void render_histogram(struct metrics_text *t, const char *name,
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
        metrics_text_printf(t, "%s_bucket{%s%sle=\"%s\"} %llu\n", name,
                            m->labels, sep, le, (unsigned long long)cumulative);
    }
    put_sample_start(t, name, "_sum", m->labels);
    put_double(t, bits_double(atomic_load_explicit(&m->sum_bits,
                                                   memory_order_relaxed)));
    metrics_text_puts(t, "\n");
    put_sample_start(t, name, "_count", m->labels);
    metrics_text_printf(t, "%llu\n", (unsigned long long)cumulative);
}

const char *metrics_kind_name(enum metric_kind kind)
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

static void render_family(struct metrics_text *t, const struct metric_family *f)
{
    metrics_text_printf(t, "# HELP %s ", f->name);
    put_help(t, f->help);
    metrics_text_printf(t, "\n# TYPE %s %s\n", f->name,
                        metrics_kind_name(f->kind));
    for (const struct metric *m = f->first; m; m = m->next) {
        if (f->kind == METRIC_HISTOGRAM) {
            render_histogram(t, f->name, m);
            continue;
        }
        put_sample_start(t, f->name, "", m->labels);
        if (f->kind == METRIC_COUNTER)
            metrics_text_printf(t, "%llu",
                                (unsigned long long)atomic_load_explicit(
                                    &m->value, memory_order_relaxed));
        else
            put_double(t, metric_value(m));
        metrics_text_puts(t, "\n");
    }
}

char *metrics_render(struct metrics_registry *reg, size_t *len)
{
    struct metrics_text t = {0};

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
