/* Plugin config tables: the 1.1 key types (durations, sizes, lists, maps of
 * objects, JSON text) filled and refused with JSON-path errors, 1.0 tables
 * still read with their own row size, load-time table checks, and the
 * plugin-help text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg_units.h"
#include "config/plugin_config.h"

struct limits {
    int64_t max_concurrency;
    int64_t max_queue;
};

struct conf {
    int64_t ttl_ns;
    int64_t max_body;
    struct sluice_cfg_list ignore;
    struct sluice_cfg_list statuses;
    struct sluice_cfg_map weights;
    struct sluice_cfg_map limits;
    struct limits fallback; /* an OBJECT filled in place */
    const char *answer;
};

#define OFF(f) offsetof(struct conf, f)
#define LOFF(f) offsetof(struct limits, f)
#define RANGE (SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX)

static const struct sluice_cfg_field limit_keys[] = {
    {.name = "max_concurrency",
     .type = SLUICE_CFG_INT,
     .flags = RANGE | SLUICE_CFG_MARK_UNSET,
     .min = 1,
     .max = 1000000,
     .offset = LOFF(max_concurrency)},
    {.name = "max_queue",
     .type = SLUICE_CFG_INT,
     .flags = RANGE | SLUICE_CFG_MARK_UNSET,
     .min = 0,
     .max = 1000000,
     .offset = LOFF(max_queue)},
    {0},
};
static const struct sluice_cfg_field limits_elem = {.type = SLUICE_CFG_OBJECT,
                                                    .fields = limit_keys,
                                                    .size =
                                                        sizeof(struct limits)};
static const struct sluice_cfg_field string_elem = {.type = SLUICE_CFG_STRING};
static const struct sluice_cfg_field status_elem = {
    .type = SLUICE_CFG_STRING, .flags = SLUICE_CFG_NUMBER_AS_TEXT};
static const struct sluice_cfg_field weight_elem = {
    .type = SLUICE_CFG_DOUBLE, .flags = RANGE, .min = 0.001, .max = 1000};

static const struct sluice_cfg_field keys[] = {
    {.name = "ttl",
     .type = SLUICE_CFG_DURATION,
     .flags = RANGE,
     .default_value = "\"30s\"",
     .min = 0.001,
     .max = 86400,
     .offset = OFF(ttl_ns),
     .help = "how long"},
    {.name = "max_body",
     .type = SLUICE_CFG_SIZE,
     .flags = SLUICE_CFG_HAS_MAX,
     .default_value = "\"64MiB\"",
     .max = 1e9,
     .offset = OFF(max_body)},
    {.name = "ignore",
     .type = SLUICE_CFG_ARRAY,
     .default_value = "[\"user\",\"stream_options\"]",
     .offset = OFF(ignore),
     .elem = &string_elem,
     .max_items = 3},
    {.name = "statuses",
     .type = SLUICE_CFG_ARRAY,
     .flags = SLUICE_CFG_ONE_OR_MANY,
     .default_value = "\"5xx\"",
     .offset = OFF(statuses),
     .elem = &status_elem},
    {.name = "weights",
     .type = SLUICE_CFG_MAP,
     .offset = OFF(weights),
     .elem = &weight_elem},
    {.name = "upstream_limits",
     .type = SLUICE_CFG_MAP,
     .offset = OFF(limits),
     .elem = &limits_elem,
     .help = "per upstream"},
    {.name = "fallback",
     .type = SLUICE_CFG_OBJECT,
     .default_value = "{}",
     .offset = OFF(fallback),
     .fields = limit_keys,
     .size = sizeof(struct limits)},
    {.name = "answer",
     .type = SLUICE_CFG_JSON_TEXT,
     .flags = SLUICE_CFG_JSON_IN_STRING,
     .offset = OFF(answer)},
    {0},
};

static const struct sluice_plugin plugin = {
    SLUICE_PLUGIN_HEADER,
    .name = "t",
    .config = keys,
    .config_size = sizeof(struct conf),
};

struct filled {
    json_t *json;
    struct plugin_config_mem *mem;
    struct conf c;
    char err[256];
};

static int fill(struct filled *f, const struct sluice_plugin *p,
                const char *text)
{
    memset(f, 0, sizeof *f);
    f->json = json_loads(text, 0, NULL);
    assert_non_null(f->json);
    return plugin_config_fill(p, f->json, "pipeline[2].config", &f->c, &f->mem,
                              f->err, sizeof f->err);
}

static void done(struct filled *f)
{
    plugin_config_mem_free(f->mem);
    json_decref(f->json);
}

static void expect_error(const char *text, const char *want)
{
    struct filled f;
    assert_int_equal(fill(&f, &plugin, text), -1);
    if (strcmp(f.err, want) != 0)
        fail_msg("%s: got \"%s\", want \"%s\"", text, f.err, want);
    assert_null(f.mem);
    done(&f);
}

static void test_units(void **unused)
{
    int64_t v;
    (void)unused;
    assert_true(cfg_duration_parse("250ms", &v));
    assert_int_equal(v, 250000000);
    assert_true(cfg_duration_parse("1h30m", &v));
    assert_int_equal(v, 5400LL * 1000000000);
    assert_true(cfg_duration_parse("1.5s", &v));
    assert_int_equal(v, 1500000000);
    assert_true(cfg_duration_parse("2d", &v));
    assert_int_equal(v, 172800LL * 1000000000);
    assert_false(cfg_duration_parse("30", &v));
    assert_false(cfg_duration_parse("1m30", &v));
    assert_false(cfg_duration_parse("-1s", &v));
    assert_false(cfg_duration_parse("1 s", &v));
    assert_false(cfg_duration_parse("300000000h", &v)); /* past int64 ns */

    assert_true(cfg_size_parse("64MiB", &v));
    assert_int_equal(v, 64LL << 20);
    assert_true(cfg_size_parse("10KB", &v));
    assert_int_equal(v, 10000);
    assert_true(cfg_size_parse("1.5 GiB", &v));
    assert_int_equal(v, 3LL << 29);
    assert_true(cfg_size_parse("512", &v));
    assert_int_equal(v, 512);
    assert_false(cfg_size_parse("1.5", &v));
    assert_false(cfg_size_parse("12parsecs", &v));
    assert_false(cfg_size_parse("", &v));
}

static void test_defaults(void **unused)
{
    struct filled f;
    (void)unused;
    assert_int_equal(fill(&f, &plugin, "{}"), 0);
    assert_int_equal(f.c.ttl_ns, 30LL * 1000000000);
    assert_int_equal(f.c.max_body, 64LL << 20);
    assert_int_equal(f.c.ignore.count, 2);
    assert_string_equal(*SLUICE_CFG_ITEM(f.c.ignore, const char *, 1),
                        "stream_options");
    assert_int_equal(f.c.statuses.count, 1); /* "5xx" is a list of one */
    assert_string_equal(*SLUICE_CFG_ITEM(f.c.statuses, const char *, 0), "5xx");
    assert_int_equal(f.c.weights.count, 0);
    assert_int_equal(f.c.limits.count, 0);
    /* MARK_UNSET: absent keys are told apart from 0. */
    assert_int_equal(f.c.fallback.max_queue, -1);
    assert_null(f.c.answer);
    /* Defaults are part of the effective config the plugin sees. */
    assert_non_null(json_object_get(f.json, "ttl"));
    done(&f);
}

static void test_nested_values(void **unused)
{
    struct filled f;
    (void)unused;
    assert_int_equal(
        fill(&f, &plugin,
             "{\"ttl\":\"1h\",\"max_body\":\"10KB\",\"ignore\":[],"
             "\"statuses\":[\"5xx\",429],\"weights\":{\"a\":2,\"b\":0.5},"
             "\"upstream_limits\":{\"openai\":{\"max_concurrency\":32},"
             "\"mock\":{\"max_queue\":0}},\"fallback\":{\"max_queue\":7},"
             "\"answer\":{\"ok\": true}}"),
        0);
    assert_int_equal(f.c.ttl_ns, 3600LL * 1000000000);
    assert_int_equal(f.c.max_body, 10000);
    assert_int_equal(f.c.ignore.count, 0);
    assert_int_equal(f.c.statuses.count, 2);
    assert_string_equal(*SLUICE_CFG_ITEM(f.c.statuses, const char *, 1), "429");
    assert_int_equal(f.c.weights.count, 2);
    assert_string_equal(f.c.weights.keys[1], "b");
    assert_true(*SLUICE_CFG_VALUE(f.c.weights, double, 1) == 0.5);
    assert_int_equal(f.c.limits.count, 2);
    assert_string_equal(f.c.limits.keys[0], "openai");
    const struct limits *l = SLUICE_CFG_VALUE(f.c.limits, struct limits, 0);
    assert_int_equal(l->max_concurrency, 32);
    assert_int_equal(l->max_queue, -1);
    l = SLUICE_CFG_VALUE(f.c.limits, struct limits, 1);
    assert_int_equal(l->max_concurrency, -1);
    assert_int_equal(l->max_queue, 0);
    assert_int_equal(f.c.fallback.max_queue, 7);
    assert_string_equal(f.c.answer, "{\"ok\":true}");
    done(&f);

    /* A string holding JSON text is kept as written. */
    assert_int_equal(fill(&f, &plugin, "{\"answer\":\"{\\\"a\\\": 1}\"}"), 0);
    assert_string_equal(f.c.answer, "{\"a\": 1}");
    done(&f);
    /* A number of seconds is a duration too. */
    assert_int_equal(fill(&f, &plugin, "{\"ttl\":0.25}"), 0);
    assert_int_equal(f.c.ttl_ns, 250000000);
    done(&f);
}

static void test_errors_name_the_json_path(void **unused)
{
    (void)unused;
    expect_error("{\"upstream_limits\":{\"openai\":{\"max_queue\":2000000}}}",
                 "pipeline[2].config.upstream_limits.openai.max_queue: must "
                 "be <= 1000000");
    expect_error("{\"upstream_limits\":{\"openai\":{\"cap\":1}}}",
                 "pipeline[2].config.upstream_limits.openai.cap: unknown key "
                 "(see `sluice plugin-help`)");
    expect_error("{\"upstream_limits\":{\"openai\":3}}",
                 "pipeline[2].config.upstream_limits.openai: must be an "
                 "object");
    expect_error("{\"upstream_limits\":[]}",
                 "pipeline[2].config.upstream_limits: must be an object");
    expect_error("{\"ignore\":[\"a\",1]}",
                 "pipeline[2].config.ignore[1]: must be a string");
    expect_error("{\"ignore\":\"user\"}",
                 "pipeline[2].config.ignore: must be an array");
    expect_error("{\"ignore\":[\"a\",\"b\",\"c\",\"d\"]}",
                 "pipeline[2].config.ignore: must have at most 3 elements");
    expect_error("{\"weights\":{\"a\":0}}",
                 "pipeline[2].config.weights.a: must be >= 0.001");
    expect_error("{\"ttl\":\"soon\"}",
                 "pipeline[2].config.ttl: must be a duration such as "
                 "\"250ms\", \"30s\" or \"1h\" (a number: seconds)");
    expect_error("{\"ttl\":\"2d\"}",
                 "pipeline[2].config.ttl: must be <= 86400s");
    expect_error("{\"max_body\":\"2GB\"}",
                 "pipeline[2].config.max_body: must be <= 1000000000 bytes");
    expect_error("{\"max_body\":-1}",
                 "pipeline[2].config.max_body: must be a size such as "
                 "\"512KiB\", \"64MiB\" or \"10KB\" (a number: bytes)");
    expect_error("{\"statuses\":[true]}",
                 "pipeline[2].config.statuses[0]: must be a string");
    expect_error("{\"answer\":\"{nope\"}",
                 "pipeline[2].config.answer: not valid JSON: string or '}' "
                 "expected near 'nope'");
}

/* The 1.0 row: no elem/fields/size/max_items, and no cfg_field_size in the
 * descriptor. The core must step through it with the 1.0 row size. */
struct field_v10 {
    const char *name;
    enum sluice_cfg_type type;
    uint32_t flags;
    const char *default_value;
    double min, max;
    const char *const *choices;
    size_t offset;
    const char *help;
};

struct conf_v10 {
    int64_t a;
    bool b;
};

static void test_v10_table(void **unused)
{
    static const struct field_v10 v10[] = {
        {"a", SLUICE_CFG_INT, 0, "5", 0, 0, NULL, offsetof(struct conf_v10, a),
         NULL},
        {"b", SLUICE_CFG_BOOL, 0, "true", 0, 0, NULL,
         offsetof(struct conf_v10, b), NULL},
        {0},
    };
    struct sluice_plugin p = {
        .abi_major = 1,
        .abi_minor = 0,
        .struct_size =
            offsetof(struct sluice_plugin, status_json) + sizeof(void *),
        .name = "old",
        .config = (const struct sluice_cfg_field *)(const void *)v10,
        .config_size = sizeof(struct conf_v10),
    };
    json_t *j = json_loads("{\"a\": 9}", 0, NULL);
    struct conf_v10 out;
    struct plugin_config_mem *mem;
    char err[200];
    (void)unused;

    assert_int_equal(plugin_config_field_size(&p), sizeof(struct field_v10));
    assert_int_equal(
        plugin_config_fill(&p, j, "config", &out, &mem, err, sizeof err), 0);
    assert_int_equal(out.a, 9);
    assert_true(out.b);
    assert_int_equal(plugin_config_check(&p, err, sizeof err), 0);
    plugin_config_mem_free(mem);
    json_decref(j);
}

static void test_table_checks(void **unused)
{
    char msg[256];
    (void)unused;
    assert_int_equal(plugin_config_check(&plugin, msg, sizeof msg), 0);

    static const struct sluice_cfg_field bad_default[] = {
        {.name = "max_queue",
         .type = SLUICE_CFG_INT,
         .flags = RANGE,
         .max = 10,
         .default_value = "11",
         .offset = 0},
        {0},
    };
    static const struct sluice_cfg_field bad_elem = {.type = SLUICE_CFG_OBJECT,
                                                     .fields = bad_default,
                                                     .size = sizeof(int64_t)};
    static const struct sluice_cfg_field nested[] = {
        {.name = "limits",
         .type = SLUICE_CFG_MAP,
         .offset = 0,
         .elem = &bad_elem},
        {0},
    };
    struct sluice_plugin p = plugin;
    p.config = nested;
    p.config_size = sizeof(struct sluice_cfg_map);
    assert_int_equal(plugin_config_check(&p, msg, sizeof msg), -1);
    assert_string_equal(msg, "config key 'limits.<name>.max_queue': default "
                             "is out of bounds");

    static const struct sluice_cfg_field no_elem[] = {
        {.name = "tags", .type = SLUICE_CFG_ARRAY, .offset = 0},
        {0},
    };
    p.config = no_elem;
    assert_int_equal(plugin_config_check(&p, msg, sizeof msg), -1);
    assert_string_equal(msg, "config key 'tags': list or map without an "
                             "element type (elem)");

    static const struct sluice_cfg_field bad_duration[] = {
        {.name = "ttl",
         .type = SLUICE_CFG_DURATION,
         .default_value = "\"soon\"",
         .offset = 0},
        {0},
    };
    p.config = bad_duration;
    assert_int_equal(plugin_config_check(&p, msg, sizeof msg), -1);
    assert_string_equal(msg, "config key 'ttl': default is not a duration");
}

static void test_help_shows_nested_keys(void **unused)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    (void)unused;

    plugin_config_describe(&plugin, out);
    fclose(out);
    assert_non_null(strstr(text, "upstream_limits.<name>.max_queue"));
    assert_non_null(strstr(text, "map of object"));
    assert_non_null(strstr(text, "fallback.max_concurrency"));
    assert_non_null(strstr(text, "string or list"));
    assert_non_null(strstr(text, "duration"));
    assert_non_null(strstr(text, ">= 0.001s, <= 86400s"));
    assert_non_null(strstr(text, "\"64MiB\""));
    assert_non_null(strstr(text, "map of number"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_nested_values),
        cmocka_unit_test(test_errors_name_the_json_path),
        cmocka_unit_test(test_v10_table),
        cmocka_unit_test(test_table_checks),
        cmocka_unit_test(test_help_shows_nested_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
