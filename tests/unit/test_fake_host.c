/* The fake host (libsluice_testing) gives plugins the answers the core
 * gives: SLUICE_EPHASE outside the phase a call belongs to, no CR/LF or
 * Authorization through header calls, reject() statuses clamped and the
 * core's OpenAI error body; and sluice_test_open() opens an instance from
 * JSON with the core's config rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/testing.h"

#define BODY                                                                   \
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"

static struct sluice_str str(const char *s)
{
    struct sluice_str v = {s, strlen(s)};
    return v;
}

static void test_phase_rules(void **unused)
{
    struct sluice_test_host *t = sluice_test_host_new();
    const struct sluice_host *h = sluice_test_host(t);
    struct sluice_req *r = sluice_test_req_new(t, BODY);
    (void)unused;

    assert_int_equal(h->upstream_set_name(r, str("b")), SLUICE_OK);
    assert_int_equal(h->resp_add_header(r, "x-a", str("1")), SLUICE_OK);
    /* The upstream answered: routing belongs to on_request. */
    sluice_test_req_set_response(r, 200, SLUICE_OUTCOME_OK);
    assert_int_equal(h->upstream_set_name(r, str("c")), SLUICE_EPHASE);
    assert_int_equal(h->upstream_set_model(r, str("m2")), SLUICE_EPHASE);
    assert_int_equal(h->upstream_set_header(r, "x-b", str("1")), SLUICE_EPHASE);
    assert_int_equal(h->set_priority(r, SLUICE_PRIO_LOW), SLUICE_EPHASE);
    assert_string_equal(h->req_upstream(r).ptr, "b");
    h->resume_after(r, 50);
    assert_true(sluice_test_resume_after_ms(r) == UINT64_MAX);
    assert_int_equal(h->resp_add_header(r, "x-c", str("1")), SLUICE_OK);
    /* Headers sent to the client: too late to add one. */
    sluice_test_req_set_phase(r, SLUICE_TEST_PHASE_STREAMING);
    assert_int_equal(h->resp_add_header(r, "x-d", str("1")), SLUICE_EPHASE);
    assert_null(sluice_test_resp_added_header(r, "x-d"));
    sluice_test_req_free(r);
    sluice_test_host_free(t);
}

static void test_header_rules(void **unused)
{
    struct sluice_test_host *t = sluice_test_host_new();
    const struct sluice_host *h = sluice_test_host(t);
    struct sluice_req *r = sluice_test_req_new(t, BODY);
    (void)unused;

    sluice_test_req_set_header(r, "Authorization", "Bearer sk-secret");
    assert_int_equal(h->req_header(r, "authorization").len, 0);
    assert_int_equal(h->upstream_set_header(r, "Authorization", str("x")),
                     SLUICE_EINVAL);
    assert_int_equal(h->upstream_set_header(r, "x-a", str("1\r\nx-b: 2")),
                     SLUICE_EINVAL);
    assert_int_equal(h->upstream_set_header(r, "x-a\n", str("1")),
                     SLUICE_EINVAL);
    assert_null(sluice_test_upstream_header(r, "x-a"));
    assert_int_equal(h->resp_add_header(r, "x-a:", str("1")), SLUICE_EINVAL);
    assert_int_equal(h->resp_add_header(r, "x-a", str("1\n")), SLUICE_EINVAL);
    assert_int_equal(h->var_set(r, "v", str("a\rb")), SLUICE_EINVAL);
    assert_int_equal(h->upstream_set_model(r, str("")), SLUICE_EINVAL);
    sluice_test_req_free(r);
    sluice_test_host_free(t);
}

static void test_reject_like_the_core(void **unused)
{
    struct sluice_test_host *t = sluice_test_host_new();
    const struct sluice_host *h = sluice_test_host(t);
    struct sluice_req *r = sluice_test_req_new(t, BODY);
    (void)unused;

    assert_int_equal(h->reject(r, 429, NULL, "limited", "slow down", 1500),
                     SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_status(r), 429);
    assert_string_equal(sluice_test_response_body(r),
                        "{\"error\":{\"message\":\"slow down\",\"type\":"
                        "\"rate_limit_error\",\"param\":null,\"code\":"
                        "\"limited\"}}");
    assert_string_equal(sluice_test_resp_added_header(r, "Retry-After"), "2");
    sluice_test_req_free(r);

    /* Not an error status: the core answers 500. */
    r = sluice_test_req_new(t, BODY);
    h->reject(r, 200, "api_error", NULL, "oops", 0);
    assert_int_equal(sluice_test_reject_status(r), 500);
    assert_string_equal(sluice_test_response_body(r),
                        "{\"error\":{\"message\":\"oops\",\"type\":"
                        "\"api_error\",\"param\":null,\"code\":null}}");
    sluice_test_req_free(r);
    sluice_test_host_free(t);
}

/* A plugin with a list, a map of objects and a duration. */
struct limits {
    int64_t max_queue;
};
struct conf {
    struct sluice_cfg_map limits;
    int64_t ttl_ns;
};
static const struct sluice_cfg_field limit_keys[] = {
    {.name = "max_queue",
     .type = SLUICE_CFG_INT,
     .flags = SLUICE_CFG_HAS_MIN | SLUICE_CFG_HAS_MAX,
     .max = 1000000,
     .offset = offsetof(struct limits, max_queue)},
    {0},
};
static const struct sluice_cfg_field limits_elem = {.type = SLUICE_CFG_OBJECT,
                                                    .fields = limit_keys,
                                                    .size =
                                                        sizeof(struct limits)};
static const struct sluice_cfg_field keys[] = {
    {.name = "upstream_limits",
     .type = SLUICE_CFG_MAP,
     .offset = offsetof(struct conf, limits),
     .elem = &limits_elem},
    {.name = "ttl",
     .type = SLUICE_CFG_DURATION,
     .default_value = "\"250ms\"",
     .offset = offsetof(struct conf, ttl_ns)},
    {0},
};

struct inst {
    struct conf c;
    char raw[256];
    int *destroyed;
};
static int destroyed;

static int create(const struct sluice_host *h, const void *config,
                  struct sluice_str raw_json, void **self,
                  struct sluice_error *err)
{
    const struct conf *c = config;
    struct inst *in = calloc(1, sizeof *in);
    (void)h;
    if (c->limits.count == 1 &&
        SLUICE_CFG_VALUE(c->limits, struct limits, 0)->max_queue == 7) {
        snprintf(err->message, sizeof err->message, "max_queue 7: no");
        free(in);
        return SLUICE_EINVAL;
    }
    in->c = *c;
    snprintf(in->raw, sizeof in->raw, "%.*s", (int)raw_json.len, raw_json.ptr);
    in->destroyed = &destroyed;
    *self = in;
    return SLUICE_OK;
}

static void destroy(void *self)
{
    struct inst *in = self;
    (*in->destroyed)++;
    free(in);
}

static const struct sluice_plugin plugin = {
    SLUICE_PLUGIN_HEADER, .name = "probe",
    .config = keys,       .config_size = sizeof(struct conf),
    .create = create,     .destroy = destroy,
};

static void test_open_from_json(void **unused)
{
    struct sluice_test_host *t = sluice_test_host_new();
    (void)unused;

    destroyed = 0;
    struct inst *in =
        sluice_test_open(t, &plugin, "{\"upstream_limits\":{\"a\":{}}}");
    assert_non_null(in);
    assert_int_equal(in->c.ttl_ns, 250000000);
    assert_string_equal(in->c.limits.keys[0], "a");
    /* create() sees the effective config, defaults included. */
    assert_non_null(strstr(in->raw, "\"ttl\":\"250ms\""));

    assert_null(sluice_test_open(
        t, &plugin, "{\"upstream_limits\":{\"a\":{\"max_queue\":-1}}}"));
    assert_string_equal(sluice_test_open_error(t),
                        "config.upstream_limits.a.max_queue: must be >= 0");
    assert_null(sluice_test_open(
        t, &plugin, "{\"upstream_limits\":{\"a\":{\"max_queue\":7}}}"));
    assert_string_equal(sluice_test_open_error(t), "config: max_queue 7: no");
    assert_null(sluice_test_open(t, &plugin, "{\"ttl\":"));
    assert_non_null(strstr(sluice_test_open_error(t), "config: "));

    struct inst *second = sluice_test_open(t, &plugin, NULL);
    assert_non_null(second);
    sluice_test_close(t, second);
    assert_int_equal(destroyed, 1);
    sluice_test_host_free(t); /* destroys the first */
    assert_int_equal(destroyed, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_phase_rules),
        cmocka_unit_test(test_header_rules),
        cmocka_unit_test(test_reject_like_the_core),
        cmocka_unit_test(test_open_from_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
