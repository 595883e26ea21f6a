/* Metrics registry: values, exact exposition text, the format rules that
 * `promtool check metrics` enforces (promtool itself is not installed, so
 * check_exposition() below checks them), and concurrent updates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

/* ---- a checker for the text format (0.0.4) ---- */

#define MAX_FAMILIES 64

struct family_seen {
    char name[128];
    char type[16];
    bool help, type_seen, closed;
};

struct checker {
    struct family_seen fams[MAX_FAMILIES];
    size_t n;
    struct family_seen *current;
    /* the histogram series being read: its labels without le */
    char hist_labels[512];
    double last_le;
    unsigned long long last_bucket, inf_bucket;
    bool in_series, saw_inf;
};

static bool name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == ':';
}

static bool name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

/* Reads a metric name at *p; false unless [a-zA-Z_:][a-zA-Z0-9_:]*. */
static bool read_name(const char **p, char *out, size_t cap)
{
    size_t n = 0;
    if (!name_start(**p))
        return false;
    while (name_char(**p) && n + 1 < cap)
        out[n++] = *(*p)++;
    out[n] = '\0';
    return true;
}

static struct family_seen *family(struct checker *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->fams[i].name, name) == 0)
            return &c->fams[i];
    assert_true(c->n < MAX_FAMILIES);
    struct family_seen *f = &c->fams[c->n++];
    snprintf(f->name, sizeof f->name, "%s", name);
    return f;
}

/* Starting a family closes the previous one; a closed family may not come
 * back (families are not interleaved). */
static struct family_seen *enter_family(struct checker *c, const char *name)
{
    struct family_seen *f = family(c, name);
    if (c->current != f) {
        if (c->current)
            c->current->closed = true;
        if (f->closed)
            fail_msg("family %s is interleaved with another", name);
        c->current = f;
        c->in_series = false;
    }
    return f;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void check_comment(struct checker *c, const char *line)
{
    char name[128];
    const char *p;
    bool is_help = strncmp(line, "# HELP ", 7) == 0;

    if (!is_help && strncmp(line, "# TYPE ", 7) != 0)
        return; /* other comments are allowed */
    p = line + 7;
    if (!read_name(&p, name, sizeof name))
        fail_msg("bad name in: %s", line);
    struct family_seen *f = enter_family(c, name);
    if (is_help) {
        if (f->help)
            fail_msg("second HELP for %s", name);
        f->help = true;
        assert_true(*p == ' ');
        if (p[1] == '\0')
            fail_msg("no help text for %s (a promtool lint error)", name);
        for (p++; *p; p++) /* only \\ and \n escapes */
            if (*p == '\\' && (p[1] == '\\' || p[1] == 'n'))
                p++;
            else if (*p == '\\')
                fail_msg("bad escape in HELP: %s", line);
        return;
    }
    if (f->type_seen)
        fail_msg("second TYPE for %s", name);
    f->type_seen = true;
    assert_true(*p++ == ' ');
    snprintf(f->type, sizeof f->type, "%s", p);
    if (strcmp(p, "counter") && strcmp(p, "gauge") && strcmp(p, "histogram") &&
        strcmp(p, "summary") && strcmp(p, "untyped"))
        fail_msg("bad type: %s", line);
    if ((strcmp(p, "counter") == 0) != ends_with(name, "_total"))
        fail_msg("%s: only counters, and all of them, end in _total", name);
}

/* Parses {a="x",b="y"} at *p; copies the pairs except le into `rest` and
 * le's value into `le`. */
static void read_labels(const char **p, char *rest, size_t cap, char *le,
                        size_t le_cap)
{
    size_t n = 0;
    rest[0] = le[0] = '\0';
    if (**p != '{')
        return;
    (*p)++;
    while (**p != '}') {
        char lname[64], value[256];
        size_t v = 0;
        const char *start = *p;
        if (**p == ':' || !read_name(p, lname, sizeof lname))
            fail_msg("bad label name at: %s", start);
        assert_true(strchr(lname, ':') == NULL);
        assert_true(*(*p)++ == '=');
        assert_true(*(*p)++ == '"');
        while (**p != '"') {
            assert_true(**p != '\0' && **p != '\n');
            if (**p == '\\') {
                char e = (*p)[1];
                if (e != '\\' && e != '"' && e != 'n')
                    fail_msg("bad escape in label value at: %s", *p);
                value[v++] = *(*p)++;
            }
            value[v++] = *(*p)++;
            assert_true(v < sizeof value - 2);
        }
        value[v] = '\0';
        (*p)++;
        if (strcmp(lname, "le") == 0) {
            snprintf(le, le_cap, "%s", value);
        } else {
            int w = snprintf(rest + n, cap - n, "%s%s=\"%s\"", n ? "," : "",
                             lname, value);
            assert_true(w > 0 && (size_t)w < cap - n);
            n += (size_t)w;
        }
        if (**p == ',')
            (*p)++;
        else
            assert_true(**p == '}');
    }
    (*p)++;
}

static double parse_value(const char *s)
{
    char *end;
    if (strcmp(s, "+Inf") == 0)
        return INFINITY;
    if (strcmp(s, "-Inf") == 0)
        return -INFINITY;
    if (strcmp(s, "NaN") == 0)
        return NAN;
    double v = strtod(s, &end);
    if (end == s || *end != '\0')
        fail_msg("bad sample value '%s'", s);
    return v;
}

static void check_histogram_sample(struct checker *c, const char *suffix,
                                   const char *labels, const char *le,
                                   double value)
{
    if (strcmp(suffix, "_bucket") == 0) {
        assert_true(le[0] != '\0');
        double bound = parse_value(le);
        bool new_series =
            !c->in_series || strcmp(labels, c->hist_labels) != 0 || c->saw_inf;
        if (new_series) {
            c->in_series = true;
            snprintf(c->hist_labels, sizeof c->hist_labels, "%s", labels);
            c->last_le = -INFINITY;
            c->last_bucket = 0;
            c->saw_inf = false;
        }
        assert_true(bound > c->last_le);
        assert_true((unsigned long long)value >= c->last_bucket);
        c->last_le = bound;
        c->last_bucket = (unsigned long long)value;
        if (isinf(bound)) {
            c->saw_inf = true;
            c->inf_bucket = c->last_bucket;
        }
    } else if (strcmp(suffix, "_count") == 0) {
        assert_true(c->saw_inf);
        assert_string_equal(labels, c->hist_labels);
        assert_true((unsigned long long)value == c->inf_bucket);
    } else {
        assert_string_equal(suffix, "_sum");
        assert_true(le[0] == '\0');
    }
}

static void check_sample(struct checker *c, const char *line)
{
    char name[128], labels[512], le[256];
    const char *p = line;

    if (!read_name(&p, name, sizeof name))
        fail_msg("bad sample name: %s", line);
    read_labels(&p, labels, sizeof labels, le, sizeof le);
    if (*p++ != ' ')
        fail_msg("no space before the value: %s", line);
    double value = parse_value(p);

    /* The family this sample belongs to is the current one: its name, or
     * its name plus a histogram suffix. */
    struct family_seen *f = c->current;
    if (!f || !f->type_seen)
        fail_msg("sample before its TYPE: %s", line);
    if (strcmp(f->type, "histogram") == 0) {
        size_t base = strlen(f->name);
        if (strncmp(name, f->name, base) != 0)
            fail_msg("sample %s outside its family %s", name, f->name);
        check_histogram_sample(c, name + base, labels, le, value);
    } else if (strcmp(name, f->name) != 0) {
        fail_msg("sample %s outside its family %s", name, f->name);
    }
}

/* Fails the test unless `text` is valid text exposition. */
static void check_exposition(const char *text)
{
    struct checker c = {0};
    const char *p = text;

    while (*p) {
        const char *nl = strchr(p, '\n');
        if (!nl)
            fail_msg("last line has no newline");
        char line[1024];
        size_t len = (size_t)(nl - p);
        assert_true(len > 0 && len < sizeof line);
        memcpy(line, p, len);
        line[len] = '\0';
        if (line[0] == '#')
            check_comment(&c, line);
        else
            check_sample(&c, line);
        p = nl + 1;
    }
}

static char *render(struct metrics_registry *reg)
{
    size_t len = 0;
    char *text = metrics_render(reg, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    check_exposition(text);
    return text;
}

/* ---- tests ---- */

static void test_exposition_golden(void **state)
{
    static const double bounds[] = {0.005, 0.1, 1};
    struct metrics_registry *reg = metrics_registry_new();
    (void)state;

    struct metric *ok =
        metrics_counter(reg, "sluice_requests_total",
                        "Requests.\nBy class \\ status.", "class=\"2xx\"");
    struct metric *err = metrics_counter(
        reg, "sluice_requests_total", "ignored: first wins", "class=\"5xx\"");
    struct metric *active =
        metrics_gauge(reg, "sluice_active_requests", "In flight.", NULL);
    struct metric *secs =
        metrics_histogram(reg, "sluice_request_seconds", "Latency.",
                          "upstream=\"mock\"", bounds, 3);
    struct metric *bare = metrics_histogram(reg, "sluice_ttfb_seconds",
                                            "First byte.", NULL, bounds, 1);
    assert_non_null(ok);
    assert_non_null(err);
    assert_non_null(active);
    assert_non_null(secs);
    assert_non_null(bare);

    metric_add(ok, 3);
    metric_add(err, 1);
    metric_set(active, 2.5);
    metric_gauge_add(active, -1);
    metric_observe(secs, 0.00390625); /* exact binary fractions: the sum */
    metric_observe(secs, 0.0625);     /* prints without rounding noise */
    metric_observe(secs, 1);          /* on a bound: counts as <= */
    metric_observe(secs, 5);
    metric_observe(bare, 0.5);

    char *text = render(reg);
    assert_string_equal(
        text,
        "# HELP sluice_requests_total Requests.\\nBy class \\\\ status.\n"
        "# TYPE sluice_requests_total counter\n"
        "sluice_requests_total{class=\"2xx\"} 3\n"
        "sluice_requests_total{class=\"5xx\"} 1\n"
        "# HELP sluice_active_requests In flight.\n"
        "# TYPE sluice_active_requests gauge\n"
        "sluice_active_requests 1.5\n"
        "# HELP sluice_request_seconds Latency.\n"
        "# TYPE sluice_request_seconds histogram\n"
        "sluice_request_seconds_bucket{upstream=\"mock\",le=\"0.005\"} 1\n"
        "sluice_request_seconds_bucket{upstream=\"mock\",le=\"0.1\"} 2\n"
        "sluice_request_seconds_bucket{upstream=\"mock\",le=\"1\"} 3\n"
        "sluice_request_seconds_bucket{upstream=\"mock\",le=\"+Inf\"} 4\n"
        "sluice_request_seconds_sum{upstream=\"mock\"} 6.06640625\n"
        "sluice_request_seconds_count{upstream=\"mock\"} 4\n"
        "# HELP sluice_ttfb_seconds First byte.\n"
        "# TYPE sluice_ttfb_seconds histogram\n"
        "sluice_ttfb_seconds_bucket{le=\"0.005\"} 0\n"
        "sluice_ttfb_seconds_bucket{le=\"+Inf\"} 1\n"
        "sluice_ttfb_seconds_sum 0.5\n"
        "sluice_ttfb_seconds_count 1\n");
    free(text);
    metrics_registry_free(reg);
}

static void test_values(void **state)
{
    static const double bounds[] = {1, 2};
    struct metrics_registry *reg = metrics_registry_new();
    (void)state;

    struct metric *c = metrics_counter(reg, "a_total", "A.", NULL);
    struct metric *g = metrics_gauge(reg, "b", "B.", NULL);
    struct metric *h = metrics_histogram(reg, "c", "C.", NULL, bounds, 2);
    assert_true(metric_value(c) == 0);
    metric_add(c, 5);
    metric_add(c, 7);
    assert_true(metric_value(c) == 12);
    metric_set(g, -3.25);
    assert_true(metric_value(g) == -3.25);
    metric_gauge_add(g, 0.25);
    assert_true(metric_value(g) == -3);
    metric_observe(h, 0.5);
    metric_observe(h, 10);
    assert_true(metric_value(h) == 2);

    /* Updates meant for another kind, or on a failed (NULL) handle, are
     * ignored rather than corrupting anything. */
    metric_add(g, 1);
    metric_set(c, 99);
    metric_observe(c, 1);
    metric_add(NULL, 1);
    metric_set(NULL, 1);
    metric_gauge_add(NULL, 1);
    metric_observe(NULL, 1);
    assert_true(metric_value(NULL) == 0);
    assert_true(metric_value(c) == 12);
    assert_true(metric_value(g) == -3);
    metrics_registry_free(reg);
}

static void test_special_gauge_values(void **state)
{
    struct metrics_registry *reg = metrics_registry_new();
    (void)state;

    metric_set(metrics_gauge(reg, "g", "G.", "k=\"nan\""), NAN);
    metric_set(metrics_gauge(reg, "g", "G.", "k=\"inf\""), INFINITY);
    metric_set(metrics_gauge(reg, "g", "G.", "k=\"ninf\""), -INFINITY);
    metric_set(metrics_gauge(reg, "g", "G.", "k=\"tenth\""), 0.1);
    metric_set(metrics_gauge(reg, "g", "G.", "k=\"tiny\""), 1e-7);
    metric_set(metrics_gauge(reg, "g", "G.", "k=\"big\""), 12345678901.0);
    char *text = render(reg);
    assert_string_equal(text, "# HELP g G.\n"
                              "# TYPE g gauge\n"
                              "g{k=\"nan\"} NaN\n"
                              "g{k=\"inf\"} +Inf\n"
                              "g{k=\"ninf\"} -Inf\n"
                              "g{k=\"tenth\"} 0.1\n"
                              "g{k=\"tiny\"} 1e-07\n"
                              "g{k=\"big\"} 12345678901\n");
    free(text);
    metrics_registry_free(reg);
}

static void test_label_values_escaped(void **state)
{
    struct metrics_registry *reg = metrics_registry_new();
    (void)state;

    /* Labels arrive preformatted: escaped values are kept as they are. */
    const char *labels = "path=\"C:\\\\tmp\",say=\"\\\"hi\\\"\",nl=\"a\\nb\"";
    struct metric *m = metrics_counter(reg, "x_total", "X.", labels);
    assert_non_null(m);
    metric_add(m, 1);
    char *text = render(reg);
    assert_string_equal(text, "# HELP x_total X.\n"
                              "# TYPE x_total counter\n"
                              "x_total{path=\"C:\\\\tmp\",say=\"\\\"hi\\\"\","
                              "nl=\"a\\nb\"} 1\n");
    free(text);
    metrics_registry_free(reg);
}

static void test_reregistration_returns_same_handle(void **state)
{
    static const double bounds[] = {1, 2};
    static const double other_bounds[] = {1, 3};
    struct metrics_registry *reg = metrics_registry_new();
    (void)state;

    struct metric *a = metrics_counter(reg, "r_total", "R.", "i=\"x\"");
    metric_add(a, 41);
    /* What a reload does: register again, keep counting. */
    struct metric *again = metrics_counter(reg, "r_total", "R.", "i=\"x\"");
    assert_ptr_equal(a, again);
    metric_add(again, 1);
    assert_true(metric_value(a) == 42);
    assert_ptr_not_equal(metrics_counter(reg, "r_total", "R.", "i=\"y\""), a);

    struct metric *g = metrics_gauge(reg, "g", "G.", NULL);
    assert_ptr_equal(metrics_gauge(reg, "g", "G.", ""), g); /* "" == NULL */

    struct metric *h = metrics_histogram(reg, "h", "H.", NULL, bounds, 2);
    assert_ptr_equal(metrics_histogram(reg, "h", "H.", NULL, bounds, 2), h);
    /* Other buckets cannot share the counts. */
    assert_null(metrics_histogram(reg, "h", "H.", NULL, other_bounds, 2));
    metrics_registry_free(reg);
}

/* Each refused registration is logged with its reason (on stderr). */
static void test_invalid_names_rejected(void **state)
{
    static const double bounds[] = {1, 2};
    static const double unsorted[] = {2, 1};
    static const double with_inf[] = {1, INFINITY};
    double many[33];
    struct metrics_registry *reg = metrics_registry_new();
    (void)state;

    for (int i = 0; i < 33; i++)
        many[i] = i;
    assert_null(metrics_counter(NULL, "x_total", "X.", NULL));

    /* The text format's syntax: [a-zA-Z_:][a-zA-Z0-9_:]* */
    const char *bad_syntax[] = {NULL, "", "1x", "x-y", "x y", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad_syntax / sizeof *bad_syntax; i++)
        assert_null(metrics_gauge(reg, bad_syntax[i], "X.", NULL));

    /* promtool's lint rules, which `promtool check metrics` fails on. */
    const char *lint_counters[] = {
        "requests",                       /* counters end in _total */
        "ns:requests_total",              /* ':' is for recording rules */
        "httpRequests_total",             /* camelCase */
        "sluice_counter_total",           /* names its type */
        "sluice_latency_ms_total",        /* abbreviated unit */
        "sluice_wait_milliseconds_total", /* prefixed unit */
        "sluice_uptime_minutes_total",    /* non-base unit */
    };
    for (size_t i = 0; i < sizeof lint_counters / sizeof *lint_counters; i++)
        if (metrics_counter(reg, lint_counters[i], "X.", NULL))
            fail_msg("accepted counter %s", lint_counters[i]);
    const char *lint_gauges[] = {
        "queued_total", /* only counters end in _total */
        "queue_count",  /* only histogram samples end in _count ... */
        "queue_sum",    "queue_bucket", "queue_gauge", /* names its type */
        "memory_kb",    "memory_bits",
    };
    for (size_t i = 0; i < sizeof lint_gauges / sizeof *lint_gauges; i++)
        if (metrics_gauge(reg, lint_gauges[i], "X.", NULL))
            fail_msg("accepted gauge %s", lint_gauges[i]);
    assert_null(metrics_gauge(reg, "no_help", "", NULL));
    assert_null(metrics_gauge(reg, "no_help", NULL, NULL));
    /* The first word is a namespace: promtool lets it be anything. */
    assert_non_null(metrics_gauge(reg, "s_memory_bytes", "OK.", NULL));
    assert_non_null(metrics_gauge(reg, "HTTP_up", "OK.", NULL));

    /* Labels must be name="value" pairs with valid escapes. */
    const char *bad_labels[] = {
        "instance=per_user",
        "a=\"x",
        "a=\"x\",",
        "=\"x\"",
        "1a=\"x\"",
        "__a=\"x\"",
        "a=\"x\",a=\"y\"",
        "a:b=\"x\"",
        "a=\"bad \\t escape\"",
        "a=\"raw\nnewline\"",
        "a=\"x\"b=\"y\"",
        "le=\"1\"",
        "quantile=\"0.5\"",
        "upstreamName=\"x\"",
    };
    for (size_t i = 0; i < sizeof bad_labels / sizeof bad_labels[0]; i++)
        if (metrics_gauge(reg, "lbl", "L.", bad_labels[i]))
            fail_msg("accepted labels: %s", bad_labels[i]);
    assert_non_null(metrics_gauge(reg, "lbl", "L.", "a=\"\",_b=\"x\""));

    /* Buckets: finite, ascending, at most 32; le belongs to them. */
    assert_null(metrics_histogram(reg, "h", "H.", "le=\"1\"", bounds, 2));
    assert_null(metrics_histogram(reg, "h", "H.", NULL, unsorted, 2));
    assert_null(metrics_histogram(reg, "h", "H.", NULL, with_inf, 2));
    assert_null(metrics_histogram(reg, "h", "H.", NULL, many, 33));
    assert_null(metrics_histogram(reg, "h", "H.", NULL, NULL, 2));
    assert_non_null(metrics_histogram(reg, "h", "H.", NULL, many, 32));
    assert_non_null(metrics_histogram(reg, "h0", "H.", NULL, NULL, 0));

    /* One type per family, and no sample name written twice. */
    assert_non_null(metrics_gauge(reg, "k", "K.", NULL));
    assert_null(metrics_histogram(reg, "k", "K.", NULL, bounds, 2));
    assert_null(metrics_histogram(reg, "k", "K.", "a=\"b\"", bounds, 2));
    assert_null(metrics_histogram(reg, "h_count", "H.", NULL, bounds, 2));
    assert_non_null(metrics_histogram(reg, "q_sum", "Q.", NULL, bounds, 2));
    assert_null(metrics_histogram(reg, "q", "Q.", NULL, bounds, 2));

    char *text = render(reg);
    free(text);
    metrics_registry_free(reg);
}

static void test_empty_registry(void **state)
{
    struct metrics_registry *reg = metrics_registry_new();
    size_t len = 99;
    (void)state;

    char *text = metrics_render(reg, &len);
    assert_non_null(text);
    assert_int_equal(len, 0);
    assert_string_equal(text, "");
    free(text);
    metrics_registry_free(reg);
    metrics_registry_free(NULL);
}

/* ---- labelled families (vecs): bounded cardinality ---- */

static const char *const *V2(const char *a, const char *b)
{
    static _Thread_local const char *v[2];
    v[0] = a;
    v[1] = b;
    return v;
}

static void test_vec_series_and_overflow(void **state)
{
    static const struct metric_label labels[] = {{"upstream", 2}, {"code", 3}};
    struct metrics_registry *reg = metrics_registry_new();
    (void)state;

    struct metric_vec *v = metrics_counter_vec(
        reg, "sluice_calls_total", "Calls.", "instance=\"i\"", labels, 2);
    assert_non_null(v);
    struct metric *a200 = metric_vec_with(v, V2("a", "200"));
    assert_non_null(a200);
    assert_ptr_equal(metric_vec_with(v, V2("a", "200")), a200);
    metric_add(a200, 2);
    metric_add(metric_vec_with(v, V2("b", "500")), 1);
    /* A third upstream is past the cap of 2: it counts as "other", and so
     * does a value that is literally "other" (one series, not two). */
    struct metric *other = metric_vec_with(v, V2("c", "200"));
    assert_ptr_equal(metric_vec_with(v, V2("other", "200")), other);
    assert_ptr_equal(metric_vec_with(v, V2("d", "200")), other);
    assert_ptr_not_equal(other, a200);
    metric_add(other, 3);
    /* Values are escaped; bytes outside printable ASCII read '_', and a
     * long value is cut, so neither breaks the text format. */
    metric_add(metric_vec_with(v, V2("a", "4\"\\x")), 1);
    metric_add(metric_vec_with(v, V2("a", "\n\xc3")), 1);
    /* Codes: 200, 500, 4"\x kept; the next ones are "other". */
    metric_add(metric_vec_with(v, V2("b", "__")), 1);
    metric_add(metric_vec_with(v, V2("b", NULL)), 1);
    assert_null(metric_vec_with(NULL, V2("a", "200")));

    char *text = render(reg);
    assert_string_equal(
        text,
        "# HELP sluice_calls_total Calls.\n"
        "# TYPE sluice_calls_total counter\n"
        "sluice_calls_total{instance=\"i\",upstream=\"a\",code=\"200\"} 2\n"
        "sluice_calls_total{instance=\"i\",upstream=\"b\",code=\"500\"} 1\n"
        "sluice_calls_total{instance=\"i\",upstream=\"other\",code=\"200\"} "
        "3\n"
        "sluice_calls_total{instance=\"i\",upstream=\"a\",code=\"4\\\"\\\\x\"}"
        " 1\n"
        "sluice_calls_total{instance=\"i\",upstream=\"a\",code=\"other\"} 1\n"
        "sluice_calls_total{instance=\"i\",upstream=\"b\",code=\"other\"} "
        "2\n");
    free(text);

    /* At most (2+1) x (3+1) series whatever comes. */
    char up[16], code[16];
    for (int i = 0; i < 200; i++) {
        snprintf(up, sizeof up, "u%d", i);
        snprintf(code, sizeof code, "%d", i);
        metric_add(metric_vec_with(v, V2(up, code)), 1);
    }
    text = render(reg);
    size_t series = 0;
    for (const char *p = text; (p = strstr(p, "\nsluice_calls_total{")); p++)
        series++;
    assert_true(series <= 12);
    free(text);

    /* A value that reads like a kept one after cleaning is that value's
     * series, also once the label is full. */
    static const struct metric_label k2[] = {{"k", 2}};
    struct metric_vec *kv =
        metrics_counter_vec(reg, "k_total", "K.", NULL, k2, 1);
    struct metric *a_ = metric_vec_with(kv, (const char *const[]){"a\n"});
    assert_ptr_equal(metric_vec_with(kv, (const char *const[]){"a\x01"}), a_);
    struct metric *b = metric_vec_with(kv, (const char *const[]){"b"});
    struct metric *k_other = metric_vec_with(kv, (const char *const[]){"c"});
    assert_ptr_not_equal(k_other, a_);
    assert_ptr_not_equal(k_other, b);
    assert_ptr_equal(metric_vec_with(kv, (const char *const[]){"a\x02"}), a_);

    char long_value[300];
    memset(long_value, 'z', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = '\0';
    struct metrics_registry *r2 = metrics_registry_new();
    static const struct metric_label one[] = {{"model", 4}};
    struct metric_vec *lv = metrics_gauge_vec(r2, "m", "M.", NULL, one, 1);
    metric_set(metric_vec_with(lv, (const char *const[]){long_value}), 1);
    text = render(r2);
    char want[METRIC_VALUE_MAX + 32];
    snprintf(want, sizeof want, "\nm{model=\"%.*s\"} 1\n", METRIC_VALUE_MAX,
             long_value);
    assert_non_null(strstr(text, want)); /* cut at METRIC_VALUE_MAX */
    free(text);
    metrics_registry_free(r2);
    metrics_registry_free(reg);
}

static void test_vec_histogram_and_registration(void **state)
{
    static const double bounds[] = {0.1, 1};
    static const struct metric_label prio[] = {{"priority", 5}};
    static const struct metric_label other_prio[] = {{"priority", 6}};
    struct metrics_registry *reg = metrics_registry_new();
    (void)state;

    struct metric_vec *h = metrics_histogram_vec(
        reg, "sluice_wait_seconds", "Wait.", NULL, prio, 1, bounds, 2);
    assert_non_null(h);
    metric_observe(metric_vec_with(h, (const char *const[]){"batch"}), 0.5);
    /* Registering again (a reload) gives the same family and counts. */
    assert_ptr_equal(metrics_histogram_vec(reg, "sluice_wait_seconds", "Wait.",
                                           NULL, prio, 1, bounds, 2),
                     h);
    assert_null(metrics_histogram_vec(reg, "sluice_wait_seconds", "Wait.", NULL,
                                      other_prio, 1, bounds, 2));
    assert_null(metrics_counter_vec(reg, "sluice_wait_seconds", "Wait.",
                                    "a=\"b\"", prio, 1));
    char *text = render(reg);
    assert_string_equal(
        text, "# HELP sluice_wait_seconds Wait.\n"
              "# TYPE sluice_wait_seconds histogram\n"
              "sluice_wait_seconds_bucket{priority=\"batch\",le=\"0.1\"} 0\n"
              "sluice_wait_seconds_bucket{priority=\"batch\",le=\"1\"} 1\n"
              "sluice_wait_seconds_bucket{priority=\"batch\",le=\"+Inf\"} 1\n"
              "sluice_wait_seconds_sum{priority=\"batch\"} 0.5\n"
              "sluice_wait_seconds_count{priority=\"batch\"} 1\n");
    free(text);

    /* Label names pass the same checks as preformatted labels. */
    static const struct metric_label bad[][1] = {
        {{"le", 2}},       {{"upstreamName", 2}},
        {{"a-b", 2}},      {{"__x", 2}},
        {{"instance", 2}}, {{NULL, 2}},
        {{"zero_cap", 0}}, {{"huge", METRIC_VEC_MAX_SERIES}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (metrics_counter_vec(reg, "bad_total", "B.", "instance=\"x\"",
                                bad[i], 1))
            fail_msg("accepted label %s", bad[i][0].name);
    static const struct metric_label dup[] = {{"a", 2}, {"a", 2}};
    assert_null(metrics_counter_vec(reg, "bad_total", "B.", NULL, dup, 2));
    static const struct metric_label wide[] = {
        {"a", 200}, {"b", 200}, {"c", 1}};
    assert_null(metrics_counter_vec(reg, "bad_total", "B.", NULL, wide, 3));
    assert_null(metrics_counter_vec(reg, "bad_total", "B.", NULL, prio, 0));
    assert_null(metrics_counter_vec(reg, "bad", "B.", NULL, prio, 1));
    assert_null(metrics_gauge_vec(reg, "g", "", NULL, prio, 1));
    metrics_registry_free(reg);
}

/* ---- concurrency: exact sums from 4 threads (run under TSan too) ---- */

#define THREADS 4
#define ROUNDS 100000

struct shared {
    struct metrics_registry *reg;
    struct metric *counter, *gauge, *histogram;
    struct metric_vec *vec;
};

static void *update_worker(void *arg)
{
    struct shared *s = arg;
    for (int i = 0; i < ROUNDS; i++) {
        metric_add(s->counter, 1);
        metric_gauge_add(s->gauge, 1);
        metric_observe(s->histogram, (i & 1) ? 0.5 : 2);
        /* New label values race with each other and with scrapes. */
        char up[16];
        snprintf(up, sizeof up, "u%d", i % 13);
        metric_add(metric_vec_with(s->vec, (const char *const[]){up}), 1);
    }
    return NULL;
}

/* Registration (reload) and scraping while workers update. */
static void *register_and_render_worker(void *arg)
{
    struct shared *s = arg;
    char labels[32];
    for (int i = 0; i < 200; i++) {
        snprintf(labels, sizeof labels, "n=\"%d\"", i % 50);
        metric_add(metrics_counter(s->reg, "late_total", "Late.", labels), 1);
        char *text = metrics_render(s->reg, NULL);
        assert_non_null(text);
        free(text);
    }
    return NULL;
}

static void test_concurrent_updates(void **state)
{
    static const double bounds[] = {1};
    struct shared s;
    pthread_t threads[THREADS + 1];
    (void)state;

    s.reg = metrics_registry_new();
    s.counter = metrics_counter(s.reg, "conc_total", "C.", NULL);
    s.gauge = metrics_gauge(s.reg, "conc_level", "L.", NULL);
    s.histogram =
        metrics_histogram(s.reg, "conc_seconds", "S.", NULL, bounds, 1);
    static const struct metric_label up[] = {{"upstream", 8}};
    s.vec = metrics_counter_vec(s.reg, "conc_vec_total", "V.", NULL, up, 1);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, update_worker, &s),
                         0);
    assert_int_equal(
        pthread_create(&threads[THREADS], NULL, register_and_render_worker, &s),
        0);
    for (int i = 0; i <= THREADS; i++)
        pthread_join(threads[i], NULL);

    assert_true(metric_value(s.counter) == THREADS * ROUNDS);
    assert_true(metric_value(s.gauge) == THREADS * ROUNDS);
    assert_true(metric_value(s.histogram) == THREADS * ROUNDS);
    char *text = render(s.reg);
    assert_non_null(strstr(text, "conc_total 400000\n"));
    assert_non_null(strstr(text, "conc_level 400000\n"));
    assert_non_null(strstr(text, "conc_seconds_bucket{le=\"1\"} 200000\n"));
    assert_non_null(strstr(text, "conc_seconds_bucket{le=\"+Inf\"} 400000\n"));
    /* 200000 * 0.5 + 200000 * 2, exact in binary floating point */
    assert_non_null(strstr(text, "conc_seconds_sum 500000\n"));
    assert_non_null(strstr(text, "late_total{n=\"49\"} 4\n"));
    /* 13 values over a cap of 8: 8 series + "other", and no update lost. */
    double vec_total = 0;
    size_t vec_series = 0;
    for (const char *p = text; (p = strstr(p, "\nconc_vec_total{")); p++) {
        vec_series++;
        vec_total += strtod(strchr(p, '}') + 1, NULL);
    }
    assert_int_equal(vec_series, 9);
    assert_true(vec_total == THREADS * ROUNDS);
    free(text);
    metrics_registry_free(s.reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exposition_golden),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_special_gauge_values),
        cmocka_unit_test(test_label_values_escaped),
        cmocka_unit_test(test_reregistration_returns_same_handle),
        cmocka_unit_test(test_invalid_names_rejected),
        cmocka_unit_test(test_empty_registry),
        cmocka_unit_test(test_vec_series_and_overflow),
        cmocka_unit_test(test_vec_histogram_and_registration),
        cmocka_unit_test(test_concurrent_updates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
