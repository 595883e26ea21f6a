/* Unit tests for the cache plugin on the SDK's fake host: the test plays
 * the core (a miss's upstream answer is set before on_response). The fake
 * host has no whole-stream assembly, timers or upstream calls, so these
 * cover the exact layer; streams and the semantic layer are covered by
 * tests/integration/test_cache.py against the real gateway. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/testing.h"

const struct sluice_plugin *sluice_plugin_v1(void);

#define Q(text)                                                                \
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"" text    \
    "\"}],\"temperature\":0}"
#define ANSWER(finish)                                                         \
    "{\"id\":\"chatcmpl-up1\",\"object\":\"chat.completion\",\"created\":1,"   \
    "\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":"         \
    "\"assistant\",\"content\":\"four\"},\"finish_reason\":\"" finish "\"}],"  \
    "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1,"                  \
    "\"total_tokens\":10}}"

struct fx {
    struct sluice_test_host *t;
    const struct sluice_plugin *p;
    void *self;
};

struct rq {
    struct sluice_req *r;
    void *state;
};

static void fx_open(struct fx *f, const char *json)
{
    f->t = sluice_test_host_new();
    f->p = sluice_plugin_v1();
    f->self = sluice_test_open(f->t, f->p, json);
    if (!f->self)
        fail_msg("%s", sluice_test_open_error(f->t));
}

static double metric(struct fx *f, const char *name)
{
    return sluice_test_metric(f->t, name);
}

static struct rq rq_new(struct fx *f, const char *body, const char *tenant)
{
    struct rq q;
    q.r = sluice_test_req_new(f->t, body);
    sluice_test_req_set_identity(q.r, tenant, "u", "", "");
    q.state = calloc(1, f->p->req_state_size);
    return q;
}

static void end(struct fx *f, struct rq *q)
{
    f->p->on_cleanup(f->self, q->r, q->state);
    sluice_test_req_free(q->r);
    free(q->state);
}

/* One request: looked up, and when it went upstream, answered. Returns
 * the x-sluice-cache header it got (static copy). */
static const char *ask(struct fx *f, const char *body, const char *tenant,
                       int status, enum sluice_outcome outcome,
                       const char *answer, char *served, size_t cap)
{
    static char header[32];
    struct rq q = rq_new(f, body, tenant);
    enum sluice_action a = f->p->on_request(f->self, q.r, q.state);
    const char *h = sluice_test_resp_added_header(q.r, "x-sluice-cache");
    snprintf(header, sizeof header, "%s", h ? h : "(none)");
    if (a == SLUICE_RESPOND) {
        assert_int_equal(sluice_test_reject_status(q.r), 200);
        if (served)
            snprintf(served, cap, "%s", sluice_test_response_body(q.r));
    } else {
        assert_int_equal(a, SLUICE_CONTINUE);
        sluice_test_req_set_response(q.r, status, outcome);
        if (answer)
            sluice_test_req_set_resp_body(q.r, answer);
        f->p->on_response(f->self, q.r, q.state);
    }
    end(f, &q);
    return header;
}

#define OK 200, SLUICE_OUTCOME_OK

static void test_exact_hit_after_miss(void **unused)
{
    (void)unused;
    struct fx f;
    char served[2048];
    fx_open(&f, NULL);
    assert_string_equal(ask(&f, Q("2+2"), "acme", OK, ANSWER("stop"), NULL, 0),
                        "miss");
    assert_true(metric(&f, "sluice_cache_stored_total") == 1);
    assert_string_equal(
        ask(&f, Q("2+2"), "acme", OK, NULL, served, sizeof served),
        "hit-exact");
    json_t *j = json_loads(served, 0, NULL);
    assert_non_null(j);
    assert_string_not_equal(json_string_value(json_object_get(j, "id")),
                            "chatcmpl-up1");
    assert_int_equal(json_integer_value(json_object_get(j, "created")),
                     1767225600); /* the fake wall clock, in seconds */
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_object_get(j, "usage"),
                                         "prompt_tokens_details"),
                         "cached_tokens")),
                     9);
    json_decref(j);
    assert_true(metric(&f, "sluice_cache_hits_exact_total") == 1);
    assert_true(metric(&f, "sluice_cache_misses_total") == 1);
    assert_true(metric(&f, "sluice_cache_entries") == 1);
    /* user does not split the key */
    assert_string_equal(
        ask(&f,
            "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
            "\"2+2\"}],\"temperature\":0,\"user\":\"zed\"}",
            "acme", OK, NULL, NULL, 0),
        "hit-exact");
    /* another question is a miss */
    assert_string_equal(ask(&f, Q("2+3"), "acme", OK, ANSWER("stop"), NULL, 0),
                        "miss");
    sluice_test_host_free(f.t);
}

static void test_tenants_do_not_share(void **unused)
{
    (void)unused;
    struct fx f;
    fx_open(&f, NULL);
    ask(&f, Q("hello"), "acme", OK, ANSWER("stop"), NULL, 0);
    assert_string_equal(
        ask(&f, Q("hello"), "other", OK, ANSWER("stop"), NULL, 0), "miss");
    assert_string_equal(ask(&f, Q("hello"), "acme", OK, NULL, NULL, 0),
                        "hit-exact");
    sluice_test_host_free(f.t);

    fx_open(&f, "{\"scope\":\"global\"}");
    ask(&f, Q("hello"), "acme", OK, ANSWER("stop"), NULL, 0);
    assert_string_equal(ask(&f, Q("hello"), "other", OK, NULL, NULL, 0),
                        "hit-exact");
    sluice_test_host_free(f.t);
}

static const char *ask_with(struct fx *f, const char *body, const char *hname,
                            const char *hvalue)
{
    static char header[32];
    struct rq q = rq_new(f, body, "acme");
    if (hname)
        sluice_test_req_set_header(q.r, hname, hvalue);
    enum sluice_action a = f->p->on_request(f->self, q.r, q.state);
    const char *h = sluice_test_resp_added_header(q.r, "x-sluice-cache");
    snprintf(header, sizeof header, "%s%s", h ? h : "(none)",
             a == SLUICE_RESPOND ? "/served" : "");
    if (a == SLUICE_CONTINUE) {
        sluice_test_req_set_response(q.r, 200, SLUICE_OUTCOME_OK);
        sluice_test_req_set_resp_body(
            q.r, "{\"id\":\"chatcmpl-2\",\"object\":\"chat.completion\","
                 "\"choices\":[{\"message\":{\"content\":\"fresh\"},"
                 "\"finish_reason\":\"stop\"}]}");
        f->p->on_response(f->self, q.r, q.state);
    }
    end(f, &q);
    return header;
}

static void test_bypass(void **unused)
{
    (void)unused;
    struct fx f;
    fx_open(&f, NULL);
    ask(&f, Q("x"), "acme", OK, ANSWER("stop"), NULL, 0);
    assert_string_equal(ask_with(&f, Q("x"), NULL, NULL), "hit-exact/served");
    assert_string_equal(ask_with(&f, Q("x"), "x-sluice-cache", "bypass"),
                        "bypass");
    assert_string_equal(ask_with(&f, Q("x"), "Cache-Control", "no-store"),
                        "bypass");
    assert_string_equal(
        ask_with(&f, Q("x"), "Cache-Control", "max-age=0, no-store"), "bypass");
    /* no-store stored nothing: the old answer is still served */
    char served[2048];
    ask(&f, Q("x"), "acme", OK, NULL, served, sizeof served);
    assert_non_null(strstr(served, "four"));
    /* no-cache skips the lookup and refreshes the entry */
    assert_string_equal(ask_with(&f, Q("x"), "Cache-Control", "no-cache"),
                        "bypass");
    ask(&f, Q("x"), "acme", OK, NULL, served, sizeof served);
    assert_non_null(strstr(served, "fresh"));
    assert_true(metric(&f, "sluice_cache_bypass_total{reason=\"header\"}") ==
                1);
    assert_true(metric(&f, "sluice_cache_bypass_total{reason=\"no_store\"}") ==
                2);
    assert_true(metric(&f, "sluice_cache_bypass_total{reason=\"no_cache\"}") ==
                1);
    sluice_test_host_free(f.t);
}

static void test_temperature(void **unused)
{
    (void)unused;
    struct fx f;
    const char *hot = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                      "\"content\":\"x\"}],\"temperature\":0.7}";
    const char *unset = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                        "\"content\":\"x\"}]}";
    fx_open(&f, NULL);
    assert_string_equal(ask_with(&f, hot, NULL, NULL), "bypass");
    assert_string_equal(ask_with(&f, unset, NULL, NULL), "bypass");
    assert_true(
        metric(&f, "sluice_cache_bypass_total{reason=\"temperature\"}") == 2);
    sluice_test_host_free(f.t);

    fx_open(&f, "{\"max_temperature\":1}");
    assert_string_equal(ask_with(&f, hot, NULL, NULL), "miss");
    assert_string_equal(ask_with(&f, hot, NULL, NULL), "hit-exact/served");
    assert_string_equal(ask_with(&f, unset, NULL, NULL), "miss");
    sluice_test_host_free(f.t);
}

static void test_only_complete_answers_stored(void **unused)
{
    (void)unused;
    struct fx f;
    fx_open(&f, NULL);
    ask(&f, Q("a"), "acme", 500, SLUICE_OUTCOME_HTTP_ERROR,
        "{\"error\":{\"message\":\"boom\"}}", NULL, 0);
    ask(&f, Q("a"), "acme", 200, SLUICE_OUTCOME_TRUNCATED, ANSWER("stop"), NULL,
        0);
    ask(&f, Q("a"), "acme", OK, ANSWER("tool_calls"), NULL, 0);
    ask(&f, Q("a"), "acme", OK, ANSWER("content_filter"), NULL, 0);
    ask(&f, Q("a"), "acme", OK, "{\"object\":\"chat.completion\"", NULL, 0);
    assert_true(metric(&f, "sluice_cache_not_stored_total") == 5);
    assert_true(metric(&f, "sluice_cache_stored_total") == 0);
    assert_string_equal(ask(&f, Q("a"), "acme", OK, ANSWER("length"), NULL, 0),
                        "miss");
    assert_string_equal(ask(&f, Q("a"), "acme", OK, NULL, NULL, 0),
                        "hit-exact");
    sluice_test_host_free(f.t);

    fx_open(&f, "{\"finish_reasons\":[\"stop\",\"tool_calls\"]}");
    ask(&f, Q("a"), "acme", OK, ANSWER("tool_calls"), NULL, 0);
    assert_string_equal(ask(&f, Q("a"), "acme", OK, NULL, NULL, 0),
                        "hit-exact");
    sluice_test_host_free(f.t);
}

static void test_ttl_on_fake_clock(void **unused)
{
    (void)unused;
    struct fx f;
    fx_open(&f, "{\"ttl\":\"30s\"}");
    ask(&f, Q("t"), "acme", OK, ANSWER("stop"), NULL, 0);
    sluice_test_clock_advance_ms(f.t, 29999);
    assert_string_equal(ask(&f, Q("t"), "acme", OK, NULL, NULL, 0),
                        "hit-exact");
    sluice_test_clock_advance_ms(f.t, 1);
    assert_string_equal(ask(&f, Q("t"), "acme", OK, ANSWER("stop"), NULL, 0),
                        "miss");
    assert_true(metric(&f, "sluice_cache_expired_total") == 1);
    sluice_test_host_free(f.t);
}

static void test_entry_cap_lru(void **unused)
{
    (void)unused;
    struct fx f;
    fx_open(&f, "{\"max_entries\":2}");
    ask(&f, Q("1"), "acme", OK, ANSWER("stop"), NULL, 0);
    ask(&f, Q("2"), "acme", OK, ANSWER("stop"), NULL, 0);
    ask(&f, Q("1"), "acme", OK, NULL, NULL, 0); /* 1 most recent */
    ask(&f, Q("3"), "acme", OK, ANSWER("stop"), NULL, 0);
    assert_string_equal(ask(&f, Q("1"), "acme", OK, NULL, NULL, 0),
                        "hit-exact");
    assert_string_equal(ask(&f, Q("3"), "acme", OK, NULL, NULL, 0),
                        "hit-exact");
    assert_string_equal(ask(&f, Q("2"), "acme", OK, ANSWER("stop"), NULL, 0),
                        "miss");
    assert_true(metric(&f, "sluice_cache_evictions_total") == 2);
    sluice_test_host_free(f.t);
}

static void test_other_endpoints_untouched(void **unused)
{
    (void)unused;
    struct fx f;
    fx_open(&f, NULL);
    struct rq q = rq_new(&f, "{\"model\":\"e\",\"input\":\"x\"}", "acme");
    sluice_test_req_set_endpoint(q.r, "/v1/embeddings");
    assert_int_equal(f.p->on_request(f.self, q.r, q.state), SLUICE_CONTINUE);
    assert_null(sluice_test_resp_added_header(q.r, "x-sluice-cache"));
    end(&f, &q);
    sluice_test_host_free(f.t);
}

static void test_cache_only_level(void **unused)
{
    (void)unused;
    struct fx f;
    fx_open(&f, "{\"cache_only_when\":\"degrade.cache_only\","
                "\"cache_only_retry_after\":\"7s\"}");
    const struct sluice_host *h = sluice_test_host(f.t);
    ask(&f, Q("known"), "acme", OK, ANSWER("stop"), NULL, 0);
    h->health_set(h, "degrade.cache_only", 1);
    assert_string_equal(ask(&f, Q("known"), "acme", OK, NULL, NULL, 0),
                        "hit-exact");
    /* a miss, and what the cache never answers, get 503 + Retry-After */
    const char *bodies[] = {Q("unknown"),
                            "{\"model\":\"m\",\"messages\":[{\"role\":"
                            "\"user\",\"content\":\"x\"}],\"temperature\":1}"};
    for (size_t i = 0; i < 2; i++) {
        struct rq q = rq_new(&f, bodies[i], "acme");
        assert_int_equal(f.p->on_request(f.self, q.r, q.state), SLUICE_RESPOND);
        assert_int_equal(sluice_test_reject_status(q.r), 503);
        assert_int_equal(sluice_test_reject_retry_after_ms(q.r), 7000);
        end(&f, &q);
    }
    assert_true(metric(&f, "sluice_cache_cache_only_rejections_total") == 2);
    h->health_set(h, "degrade.cache_only", 0);
    assert_string_equal(
        ask(&f, Q("unknown"), "acme", OK, ANSWER("stop"), NULL, 0), "miss");
    sluice_test_host_free(f.t);
}

static void test_config_errors(void **unused)
{
    (void)unused;
    struct sluice_test_host *t = sluice_test_host_new();
    assert_null(
        sluice_test_open(t, sluice_plugin_v1(), "{\"scope\":\"team\"}"));
    assert_null(
        sluice_test_open(t, sluice_plugin_v1(), "{\"ttl\":\"forever\"}"));
    assert_null(sluice_test_open(t, sluice_plugin_v1(),
                                 "{\"semantic\":{\"threshold\":1.5}}"));
    assert_non_null(strstr(sluice_test_open_error(t), "semantic.threshold"));
    assert_null(sluice_test_open(t, sluice_plugin_v1(),
                                 "{\"semantic\":{\"ef_search\":2}}"));
    assert_non_null(strstr(sluice_test_open_error(t), "semantic.ef_search"));
    sluice_test_host_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_hit_after_miss),
        cmocka_unit_test(test_tenants_do_not_share),
        cmocka_unit_test(test_bypass),
        cmocka_unit_test(test_temperature),
        cmocka_unit_test(test_only_complete_answers_stored),
        cmocka_unit_test(test_ttl_on_fake_clock),
        cmocka_unit_test(test_entry_cap_lru),
        cmocka_unit_test(test_other_endpoints_untouched),
        cmocka_unit_test(test_cache_only_level),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
