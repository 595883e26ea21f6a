/* token_bucket unit tests on the fake host: exact arithmetic on a fake
 * clock (nothing sleeps), headers, tiers, waits, eviction, config errors.
 * The Redis tests live in test_token_bucket_redis.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <pthread.h>

#include "../common/rl_duration.h"
#include "../common/rl_key.h"
#include "../common/rl_map.h"
#include "../common/rl_test_plugin.h"
#include "token_bucket.h"

#define CHAT                                                                   \
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"           \
    "\"hello there\"}],\"max_tokens\":100}"

int run_redis_tests(void);

static uint64_t input_tokens(struct tp *x, const char *body)
{
    struct sluice_req *r = sluice_test_req_new(x->t, body);
    uint64_t n = x->h->req_input_tokens(r);
    sluice_test_req_free(r);
    return n;
}

/* A request that reaches the provider and uses exactly its estimate. */
static enum sluice_action served(struct tp *x, const char *body)
{
    struct treq *q = treq_new(x, body);
    enum sluice_action a = treq_run(x, q);
    uint64_t max = x->h->req_max_tokens(q->r);
    sluice_test_req_set_usage(q->r, x->h->req_input_tokens(q->r),
                              max ? max : 256, 0);
    treq_respond(x, q, 200, SLUICE_OUTCOME_OK);
    treq_end(x, q);
    return a;
}

static void test_burst_then_refill(void **state)
{
    struct tp x;
    (void)state;
    tp_init(&x, "{\"requests_per_period\": 60, \"burst_requests\": 10}");
    for (int i = 0; i < 10; i++)
        assert_int_equal(tp_once(&x, NULL), SLUICE_CONTINUE);
    struct treq *q = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_status(q->r), 429);
    assert_int_equal(sluice_test_reject_retry_after_ms(q->r), 1000);
    assert_string_equal(hdr(q, "Retry-After"), "1");
    treq_end(&x, q);

    /* One request per second refills; 999 ms is not enough. */
    sluice_test_clock_advance_ms(x.t, 999);
    q = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_retry_after_ms(q->r), 1);
    assert_string_equal(hdr(q, "Retry-After"), "1");
    treq_end(&x, q);
    sluice_test_clock_advance_ms(x.t, 1);
    assert_int_equal(tp_once(&x, NULL), SLUICE_CONTINUE);

    /* Hammering every ms for 10 s gets exactly 10 more through. */
    int admitted = 0;
    q = treq_new(&x, NULL);
    for (int ms = 0; ms < 10000; ms++) {
        sluice_test_clock_advance_ms(x.t, 1);
        memset(q->st, 0, x.p->req_state_size);
        admitted += treq_run(&x, q) == SLUICE_CONTINUE;
    }
    treq_end(&x, q);
    assert_int_equal(admitted, 10);
    assert_int_equal(
        sluice_test_metric(x.t, "sluice_token_bucket_allowed_total"), 21);
    tp_free(&x);
}

static void test_idle_refills_to_burst_only(void **state)
{
    struct tp x;
    (void)state;
    tp_init(&x, "{\"requests_per_period\": 5, \"period_s\": 1}");
    sluice_test_clock_advance_ms(x.t, 3600 * 1000);
    int admitted = 0;
    for (int i = 0; i < 20; i++)
        admitted += tp_once(&x, NULL) == SLUICE_CONTINUE;
    assert_int_equal(admitted, 5);
    tp_free(&x);
}

static void test_two_dimensions(void **state)
{
    struct tp x;
    (void)state;
    /* Tokens bind: each request costs input + 100. */
    tp_init(&x, "{\"requests_per_period\": 100, \"tokens_per_period\": 1000}");
    uint64_t cost = input_tokens(&x, CHAT) + 100;
    uint64_t fit = 1000 / cost;
    for (uint64_t i = 0; i < fit; i++)
        assert_int_equal(served(&x, CHAT), SLUICE_CONTINUE);
    struct treq *q = treq_new(&x, CHAT);
    assert_int_equal(treq_run(&x, q), SLUICE_RESPOND);
    assert_string_equal(sluice_test_reject_type(q->r), "tokens");
    /* Exactly the missing tokens at 1000 per 60 s, rounded up to ms. */
    uint64_t missing = cost - (1000 - fit * cost);
    uint64_t want_ns = missing * 60000000000ull / 1000;
    assert_int_equal(sluice_test_reject_retry_after_ms(q->r),
                     (want_ns + 999999) / 1000000);
    treq_end(&x, q);
    tp_free(&x);

    /* Requests bind. */
    tp_init(&x, "{\"requests_per_period\": 2, \"tokens_per_period\": "
                "1000000}");
    assert_int_equal(served(&x, CHAT), SLUICE_CONTINUE);
    assert_int_equal(served(&x, CHAT), SLUICE_CONTINUE);
    q = treq_new(&x, CHAT);
    assert_int_equal(treq_run(&x, q), SLUICE_RESPOND);
    assert_string_equal(sluice_test_reject_type(q->r), "requests");
    assert_int_equal(sluice_test_reject_retry_after_ms(q->r), 30000);
    treq_end(&x, q);
    tp_free(&x);

    /* A request larger than the token bucket can never pass. */
    tp_init(&x, "{\"tokens_per_period\": 50}");
    q = treq_new(&x, CHAT);
    assert_int_equal(treq_run(&x, q), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_status(q->r), 429);
    assert_int_equal(sluice_test_reject_retry_after_ms(q->r), 0);
    assert_non_null(strstr(sluice_test_reject_message(q->r), "too large"));
    treq_end(&x, q);
    tp_free(&x);
}

static void test_reconcile_refund_and_debit(void **state)
{
    struct tp x;
    (void)state;
    tp_init(&x, "{\"tokens_per_period\": 6000, \"period_s\": 60}");
    uint64_t cost = input_tokens(&x, CHAT) + 100;

    /* Refund: used 10 of the reserved cost. */
    struct treq *q = treq_new(&x, CHAT);
    assert_int_equal(treq_run(&x, q), SLUICE_CONTINUE);
    char want[32];
    snprintf(want, sizeof want, "%llu", (unsigned long long)(6000 - cost));
    assert_string_equal(hdr(q, "x-ratelimit-remaining-tokens"), want);
    sluice_test_req_set_usage(q->r, 4, 6, 0);
    treq_respond(&x, q, 200, SLUICE_OUTCOME_OK);
    treq_end(&x, q);
    assert_int_equal(
        sluice_test_metric(x.t, "sluice_token_bucket_tokens_refunded_total"),
        cost - 10);
    q = treq_new(&x, CHAT);
    assert_int_equal(treq_run(&x, q), SLUICE_CONTINUE);
    snprintf(want, sizeof want, "%llu", (unsigned long long)(6000 - 10 - cost));
    assert_string_equal(hdr(q, "x-ratelimit-remaining-tokens"), want);

    /* Debit: this one used 5900 more than reserved; the bucket owes. */
    sluice_test_req_set_usage(q->r, 1000, cost + 4900, 0);
    treq_respond(&x, q, 200, SLUICE_OUTCOME_OK);
    treq_end(&x, q);
    q = treq_new(&x, CHAT);
    assert_int_equal(treq_run(&x, q), SLUICE_RESPOND);
    /* Used so far: 10 + 5900 + cost; capacity 6000 at 100/s. */
    uint64_t used = 10 + 5900 + cost;
    uint64_t need = used + cost - 6000;
    assert_int_equal(sluice_test_reject_retry_after_ms(q->r),
                     (need * 10000000ull + 999999) / 1000000);
    treq_end(&x, q);

    /* Failed upstream calls give the whole reservation back. */
    sluice_test_clock_advance_ms(x.t, 61000); /* debt paid, full */
    q = treq_new(&x, CHAT);
    assert_int_equal(treq_run(&x, q), SLUICE_CONTINUE);
    treq_respond(&x, q, 0, SLUICE_OUTCOME_CONNECT_ERROR);
    treq_end(&x, q);
    q = treq_new(&x, CHAT);
    assert_int_equal(treq_run(&x, q), SLUICE_CONTINUE);
    snprintf(want, sizeof want, "%llu", (unsigned long long)(6000 - cost));
    assert_string_equal(hdr(q, "x-ratelimit-remaining-tokens"), want);
    treq_end(&x, q); /* no response hook at all: on_log settles */
    q = treq_new(&x, CHAT);
    assert_int_equal(treq_run(&x, q), SLUICE_CONTINUE);
    assert_string_equal(hdr(q, "x-ratelimit-remaining-tokens"), want);
    treq_end(&x, q);
    tp_free(&x);
}

static void test_retry_after_and_headers(void **state)
{
    struct tp x;
    (void)state;
    tp_init(&x, "{\"requests_per_period\": 3, \"period_s\": 7}");
    struct treq *q = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q), SLUICE_CONTINUE);
    assert_string_equal(hdr(q, "x-ratelimit-limit-requests"), "3");
    assert_string_equal(hdr(q, "x-ratelimit-remaining-requests"), "2");
    /* One request's worth: 7 s / 3 = 2.333... s, rounded up to the ms. */
    assert_string_equal(hdr(q, "x-ratelimit-reset-requests"), "2.334s");
    assert_string_equal(hdr(q, "x-ratelimit-limit-tokens"), "(none)");
    treq_end(&x, q);
    tp_once(&x, NULL);
    tp_once(&x, NULL);
    q = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_retry_after_ms(q->r), 2334);
    assert_string_equal(hdr(q, "Retry-After"), "3");
    assert_string_equal(hdr(q, "x-ratelimit-remaining-requests"), "0");
    assert_string_equal(hdr(q, "x-ratelimit-reset-requests"), "7s");
    assert_string_equal(sluice_test_reject_type(q->r), "requests");
    assert_non_null(strstr(sluice_test_response_body(q->r),
                           "\"code\":\"rate_limit_exceeded\""));
    treq_end(&x, q);
    /* 2333333333.33 ns later the first slot is back; 1 ns earlier not. */
    sluice_test_clock_advance_ns(x.t, 2333333333ull);
    assert_int_equal(tp_once(&x, NULL), SLUICE_RESPOND);
    sluice_test_clock_advance_ns(x.t, 1);
    assert_int_equal(tp_once(&x, NULL), SLUICE_CONTINUE);
    tp_free(&x);

    /* Long periods print as Go durations. */
    tp_init(&x, "{\"requests_per_period\": 1, \"period_s\": 3723}");
    q = treq_new(&x, NULL);
    treq_run(&x, q);
    assert_string_equal(hdr(q, "x-ratelimit-reset-requests"), "1h2m3s");
    treq_end(&x, q);
    q = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q), SLUICE_RESPOND);
    assert_string_equal(hdr(q, "Retry-After"), "3723");
    treq_end(&x, q);
    tp_free(&x);

    /* headers: false keeps them out, Retry-After stays. */
    tp_init(&x, "{\"requests_per_period\": 1, \"headers\": false}");
    tp_once(&x, NULL);
    q = treq_new(&x, NULL);
    treq_run(&x, q);
    assert_string_equal(hdr(q, "x-ratelimit-limit-requests"), "(none)");
    assert_string_equal(hdr(q, "Retry-After"), "60");
    treq_end(&x, q);
    tp_free(&x);
}

static enum sluice_action as_user(struct tp *x, const char *user,
                                  const char *tier)
{
    struct treq *q = treq_new(x, NULL);
    sluice_test_req_set_identity(q->r, "acme", user, tier, "k");
    enum sluice_action a = treq_run(x, q);
    treq_end(x, q);
    return a;
}

static int admitted_for(struct tp *x, const char *user, const char *tier)
{
    int n = 0;
    for (int i = 0; i < 50; i++)
        n += as_user(x, user, tier) == SLUICE_CONTINUE;
    return n;
}

static void test_tiers(void **state)
{
    struct tp x;
    (void)state;
    tp_init(&x, "{\"requests_per_period\": 10, \"scope\": \"{user}\","
                "\"tiers\": {\"free\": {\"requests_per_period\": 2},"
                "\"paid\": {\"requests_per_period\": 5, "
                "\"burst_requests\": 7}}}");
    assert_int_equal(admitted_for(&x, "ann", "free"), 2);
    assert_int_equal(admitted_for(&x, "bob", "paid"), 7);
    assert_int_equal(admitted_for(&x, "cat", "gold"), 10);
    assert_int_equal(admitted_for(&x, "dan", ""), 10);
    tp_free(&x);
}

static void test_lua_overrides(void **state)
{
    struct tp x;
    (void)state;
    tp_init(&x, "{\"requests_per_period\": 10, \"scope\": \"{user}\","
                "\"var_prefix\": \"rl.user\","
                "\"tiers\": {\"free\": {\"requests_per_period\": 2}}}");
    int n = 0;
    for (int i = 0; i < 20; i++) {
        struct treq *q = treq_new(&x, NULL);
        sluice_test_req_set_identity(q->r, "acme", "eve", "", "k");
        x.h->var_set(q->r, "rl.user.requests_per_period",
                     (struct sluice_str){"3", 1});
        n += treq_run(&x, q) == SLUICE_CONTINUE;
        treq_end(&x, q);
    }
    assert_int_equal(n, 3);
    /* The policy may pick the tier. */
    n = 0;
    for (int i = 0; i < 20; i++) {
        struct treq *q = treq_new(&x, NULL);
        sluice_test_req_set_identity(q->r, "acme", "fay", "paid", "k");
        x.h->var_set(q->r, "rl.user.tier", (struct sluice_str){"free", 4});
        n += treq_run(&x, q) == SLUICE_CONTINUE;
        treq_end(&x, q);
    }
    assert_int_equal(n, 2);
    /* Garbage is ignored (and logged once). */
    struct treq *q = treq_new(&x, NULL);
    sluice_test_req_set_identity(q->r, "acme", "gus", "", "k");
    x.h->var_set(q->r, "rl.user.requests_per_period",
                 (struct sluice_str){"lots", 4});
    assert_int_equal(treq_run(&x, q), SLUICE_CONTINUE);
    assert_string_equal(hdr(q, "x-ratelimit-limit-requests"), "10");
    treq_end(&x, q);
    assert_non_null(strstr(sluice_test_log(x.t), "rl.user"));
    tp_free(&x);
}

static void test_key_templates(void **state)
{
    struct tp x;
    struct rl_key_tmpl t;
    char err[256], buf[RL_KEY_MAX + 1];
    (void)state;
    tp_init(&x, "{\"requests_per_period\": 1}");
    struct sluice_req *r = sluice_test_req_new(
        x.t, "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","
             "\"content\":\"hi\"}]}");
    sluice_test_req_set_identity(r, "acme", "u:1", "paid", "ab12");
    sluice_test_req_set_header(r, "X-Service", "billing");

    assert_int_equal(rl_key_compile(&t, "{tenant}:{model}", err, sizeof err),
                     0);
    rl_key_render(&t, x.h, r, (struct sluice_str){0}, buf, sizeof buf);
    assert_string_equal(buf, "acme:gpt-4o");
    rl_key_free(&t);

    assert_int_equal(rl_key_compile(&t,
                                    "svc={header.x-service}/{user}/"
                                    "{tier}/{key}",
                                    err, sizeof err),
                     0);
    rl_key_render(&t, x.h, r, (struct sluice_str){0}, buf, sizeof buf);
    assert_string_equal(buf, "svc=billing/u%3A1/paid/ab12"); /* ':' escaped */
    rl_key_render(&t, x.h, r, (struct sluice_str){"free", 4}, buf, sizeof buf);
    assert_string_equal(buf, "svc=billing/u%3A1/free/ab12");
    rl_key_free(&t);

    assert_int_equal(rl_key_compile(&t, "global", err, sizeof err), 0);
    rl_key_render(&t, x.h, r, (struct sluice_str){0}, buf, sizeof buf);
    assert_string_equal(buf, "global");
    rl_key_free(&t);

    /* Missing header: empty. Long values: bounded, still distinct. */
    char big[600];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(
        rl_key_compile(&t, "{header.x-long}|{var.v}", err, sizeof err), 0);
    rl_key_render(&t, x.h, r, (struct sluice_str){0}, buf, sizeof buf);
    assert_string_equal(buf, "|");
    sluice_test_req_set_header(r, "x-long", big);
    size_t n1 =
        rl_key_render(&t, x.h, r, (struct sluice_str){0}, buf, sizeof buf);
    assert_int_equal(n1, RL_KEY_MAX);
    assert_int_equal(buf[RL_KEY_MAX - 17], '#');
    char first[RL_KEY_MAX + 1];
    memcpy(first, buf, sizeof first);
    x.h->var_set(r, "v", (struct sluice_str){"b", 1});
    rl_key_render(&t, x.h, r, (struct sluice_str){0}, buf, sizeof buf);
    assert_string_not_equal(buf, first);
    rl_key_free(&t);

    assert_int_equal(rl_key_compile(&t, "{nope}", err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown placeholder {nope}"));
    assert_int_equal(rl_key_compile(&t, "{tenant", err, sizeof err), -1);
    assert_int_equal(rl_key_compile(&t, "", err, sizeof err), -1);
    sluice_test_req_free(r);

    /* Through the plugin: {tenant} keeps tenants apart. */
    tp_free(&x);
    tp_init(&x, "{\"requests_per_period\": 1, \"scope\": \"{tenant}\"}");
    struct treq *q = treq_new(&x, NULL);
    sluice_test_req_set_identity(q->r, "a", "", "", "");
    assert_int_equal(treq_run(&x, q), SLUICE_CONTINUE);
    treq_end(&x, q);
    q = treq_new(&x, NULL);
    sluice_test_req_set_identity(q->r, "b", "", "", "");
    assert_int_equal(treq_run(&x, q), SLUICE_CONTINUE);
    treq_end(&x, q);
    q = treq_new(&x, NULL);
    sluice_test_req_set_identity(q->r, "a", "", "", "");
    assert_int_equal(treq_run(&x, q), SLUICE_RESPOND);
    treq_end(&x, q);
    tp_free(&x);
}

static void test_wait_mode(void **state)
{
    struct tp x;
    (void)state;
    tp_init(&x, "{\"requests_per_period\": 60, \"burst_requests\": 1, "
                "\"mode\": \"wait\", \"max_wait_ms\": 2500}");
    struct treq *q[5];
    for (int i = 0; i < 5; i++)
        q[i] = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q[0]), SLUICE_CONTINUE);
    /* Each later request reserves the next slot, one second apart. */
    assert_int_equal(treq_run(&x, q[1]), SLUICE_SUSPEND);
    assert_int_equal(sluice_test_resume_after_ms(q[1]->r), 1000);
    assert_int_equal(treq_run(&x, q[2]), SLUICE_SUSPEND);
    assert_int_equal(sluice_test_resume_after_ms(q[2]->r), 2000);
    /* 3 s is past max_wait: 429 with the exact wait. */
    assert_int_equal(treq_run(&x, q[3]), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_retry_after_ms(q[3]->r), 3000);
    assert_int_equal(
        sluice_test_metric(x.t, "sluice_token_bucket_waited_total"), 2);

    sluice_test_clock_advance_ms(x.t, 1000);
    assert_int_equal(treq_resume(&x, q[1]), SLUICE_CONTINUE);
    assert_string_equal(hdr(q[1], "x-ratelimit-remaining-requests"), "0");
    /* q[2] leaves while waiting: its slot goes back. */
    treq_end(&x, q[2]);
    assert_int_equal(treq_run(&x, q[4]), SLUICE_SUSPEND);
    assert_int_equal(sluice_test_resume_after_ms(q[4]->r), 1000);
    sluice_test_clock_advance_ms(x.t, 1000);
    assert_int_equal(treq_resume(&x, q[4]), SLUICE_CONTINUE);
    treq_end(&x, q[0]);
    treq_end(&x, q[1]);
    treq_end(&x, q[3]);
    treq_end(&x, q[4]);
    assert_int_equal(
        sluice_test_metric(x.t, "sluice_token_bucket_allowed_total"), 3);
    tp_free(&x);

    /* A steady overload in wait mode: everyone gets through, in order,
     * exactly at the limit's pace. */
    tp_init(&x, "{\"requests_per_period\": 10, \"period_s\": 1, "
                "\"burst_requests\": 1, \"mode\": \"wait\", "
                "\"max_wait_ms\": 60000}");
    struct treq *w[100];
    for (int i = 0; i < 100; i++) {
        w[i] = treq_new(&x, NULL);
        enum sluice_action a = treq_run(&x, w[i]);
        uint64_t delay =
            a == SLUICE_SUSPEND ? sluice_test_resume_after_ms(w[i]->r) : 0;
        assert_true(a == SLUICE_CONTINUE || a == SLUICE_SUSPEND);
        /* Arrivals every 50 ms, releases every 100 ms. */
        assert_int_equal((uint64_t)i * 50 + delay, (uint64_t)i * 100);
        sluice_test_clock_advance_ms(x.t, 50);
    }
    for (int i = 0; i < 100; i++) {
        if (w[i]->act == SLUICE_SUSPEND)
            assert_int_equal(treq_resume(&x, w[i]), SLUICE_CONTINUE);
        treq_end(&x, w[i]);
    }
    assert_int_equal(
        sluice_test_metric(x.t, "sluice_token_bucket_allowed_total"), 100);
    tp_free(&x);
}

/* A retry (on_attempt) takes a request and its token estimate again; the
 * failed attempt's estimate comes back, and a retry whose client leaves
 * while it waits for its token gives the reservation back once. */
static void test_each_attempt_charged(void **state)
{
    struct tp x;
    (void)state;
    tp_init(&x, "{\"tokens_per_period\": 6000, \"requests_per_period\": 2, "
                "\"burst_requests\": 1, \"period_s\": 60, \"mode\": \"wait\", "
                "\"max_wait_ms\": 60000}");
    uint64_t cost = input_tokens(&x, CHAT) + 100;
    struct treq *q = treq_new(&x, CHAT);
    assert_int_equal(treq_run(&x, q), SLUICE_CONTINUE);
    /* The attempt fails; the core retries through on_attempt. */
    sluice_test_req_set_response(q->r, 503, SLUICE_OUTCOME_HTTP_ERROR);
    x.p->on_upstream_response(x.self, q->r, q->st);
    sluice_test_req_set_phase(q->r, SLUICE_TEST_PHASE_REQUEST);
    assert_int_equal(x.p->on_attempt(x.self, q->r, q->st), SLUICE_SUSPEND);
    assert_int_equal(sluice_test_resume_after_ms(q->r), 30000);
    assert_int_equal(
        sluice_test_metric(x.t, "sluice_token_bucket_tokens_refunded_total"),
        cost);
    /* The request ends while the retry waits (the retry deadline passed,
     * or the client left). The retry's reserved slot is free again once
     * the answer is final (on_response), before on_log, which runs after
     * the client has its answer: a request sent right after it waits only
     * for the slot after the first attempt's. */
    x.p->on_response(x.self, q->r, q->st);
    struct treq *next = treq_new(&x, CHAT);
    assert_int_equal(treq_run(&x, next), SLUICE_SUSPEND);
    assert_int_equal(sluice_test_resume_after_ms(next->r), 30000);
    /* on_log gives nothing back a second time: the slot after that one is
     * taken by the next request, so a third waits for the one after. */
    treq_end(&x, q);
    assert_int_equal(
        sluice_test_metric(x.t, "sluice_token_bucket_tokens_refunded_total"),
        cost);
    q = treq_new(&x, CHAT);
    assert_int_equal(treq_run(&x, q), SLUICE_SUSPEND);
    assert_int_equal(sluice_test_resume_after_ms(q->r), 60000);
    treq_end(&x, q);
    treq_end(&x, next);
    tp_free(&x);
}

static void test_upstream_429_pause(void **state)
{
    struct tp x;
    (void)state;
    tp_init(&x, "{\"requests_per_period\": 600, \"pause_on_upstream_429\": "
                "true}");
    struct treq *q = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q), SLUICE_CONTINUE);
    sluice_test_req_set_resp_header(q->r, "Retry-After", "5");
    treq_respond(&x, q, 429, SLUICE_OUTCOME_HTTP_ERROR);
    treq_end(&x, q);
    q = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_retry_after_ms(q->r), 5000);
    treq_end(&x, q);
    /* The first slot comes exactly at the end of the pause; the bucket
     * then refills from empty (no burst right after a 429). */
    sluice_test_clock_advance_ms(x.t, 5000);
    assert_int_equal(tp_once(&x, NULL), SLUICE_CONTINUE);
    assert_int_equal(tp_once(&x, NULL), SLUICE_RESPOND);
    assert_int_equal(
        sluice_test_metric(x.t, "sluice_token_bucket_upstream_pauses_total"),
        1);
    sluice_test_clock_advance_ms(x.t, 60000);
    /* retry-after-ms wins; no header: the configured pause. */
    q = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q), SLUICE_CONTINUE);
    sluice_test_req_set_resp_header(q->r, "retry-after-ms", "250");
    treq_respond(&x, q, 429, SLUICE_OUTCOME_HTTP_ERROR);
    treq_end(&x, q);
    q = treq_new(&x, NULL);
    assert_int_equal(treq_run(&x, q), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_retry_after_ms(q->r), 250);
    treq_end(&x, q);
    tp_free(&x);

    /* Off by default. */
    tp_init(&x, "{\"requests_per_period\": 600}");
    q = treq_new(&x, NULL);
    treq_run(&x, q);
    sluice_test_req_set_resp_header(q->r, "Retry-After", "5");
    treq_respond(&x, q, 429, SLUICE_OUTCOME_HTTP_ERROR);
    treq_end(&x, q);
    assert_int_equal(tp_once(&x, NULL), SLUICE_CONTINUE);
    tp_free(&x);
}

/* Reuses one request object to send many keys fast. */
static enum sluice_action send_key(struct tp *x, struct treq *q,
                                   const char *key)
{
    sluice_test_req_set_header(q->r, "x-k", key);
    memset(q->st, 0, x->p->req_state_size);
    return treq_run(x, q);
}

static void test_idle_eviction(void **state)
{
    struct tp x;
    char key[32];
    (void)state;
    /* Each key is idle 1 s after its request (60/min, full bucket). */
    tp_init(&x, "{\"requests_per_period\": 60, \"scope\": "
                "\"{header.x-k}\"}");
    struct token_bucket *tb = x.self;
    struct treq *q = treq_new(&x, NULL);
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(send_key(&x, q, key), SLUICE_CONTINUE);
        sluice_test_clock_advance_ms(x.t, 1);
    }
    /* About one second's worth of keys is live; nothing was forced out. */
    assert_in_range(rl_map_count(tb->map), 1000, 1100);
    assert_int_equal(rl_map_forced_evictions(tb->map), 0);
    /* A sweep after everything went idle frees it all. */
    sluice_test_clock_advance_ms(x.t, 1001);
    rl_map_sweep(tb->map, x.h->now_ns(x.h));
    assert_int_equal(rl_map_count(tb->map), 0);
    treq_end(&x, q);
    tp_free(&x);
}

static void test_million_keys_bounded(void **state)
{
    struct tp x;
    char key[32];
    (void)state;
    /* Keys stay busy for an hour, so only the max_keys cap bounds them. */
    tp_init(&x, "{\"requests_per_period\": 1, \"period_s\": 3600, "
                "\"scope\": \"{header.x-k}\", \"max_keys\": 10000}");
    struct token_bucket *tb = x.self;
    struct treq *q = treq_new(&x, NULL);
    size_t peak_bytes = 0;
    for (int i = 0; i < 1000000; i++) {
        snprintf(key, sizeof key, "user-%07d", i);
        assert_int_equal(send_key(&x, q, key), SLUICE_CONTINUE);
        if (rl_map_bytes(tb->map) > peak_bytes)
            peak_bytes = rl_map_bytes(tb->map);
        sluice_test_clock_advance_ns(x.t, 1000);
    }
    size_t keys = rl_map_count(tb->map);
    assert_true(keys <= 10000 + 64);
    assert_int_equal(x.h->gauge_set != NULL, 1);
    assert_true(sluice_test_metric(x.t, "sluice_token_bucket_keys") <= 10064);
    assert_true(sluice_test_metric(x.t, "sluice_token_bucket_evicted_total") >=
                1000000 - 10064);
    /* Bytes per key: entry + state + key + table share, well under 200. */
    size_t per_key = rl_map_entry_overhead(tb->map) + 12;
    printf("token_bucket: %zu keys, peak %zu bytes (%zu per key incl. "
           "tables), entry %zu bytes + key\n",
           keys, peak_bytes, peak_bytes / keys, per_key - 12);
    assert_true(peak_bytes < 10064 * 200);
    treq_end(&x, q);
    tp_free(&x);
}

struct thread_arg {
    struct tp *x;
    int admitted;
};

static void *hammer(void *arg)
{
    struct thread_arg *a = arg;
    for (int i = 0; i < 5000; i++) {
        struct treq *q = treq_new(a->x, NULL);
        sluice_test_req_set_header(q->r, "x-k", i % 2 ? "odd" : "even");
        a->admitted += treq_run(a->x, q) == SLUICE_CONTINUE;
        treq_end(a->x, q);
    }
    return NULL;
}

static void test_shared_by_workers(void **state)
{
    struct tp x;
    pthread_t th[4];
    struct thread_arg a[4];
    (void)state;
    /* No refill during the test: exactly 2 x 3000 pass, whoever asks. */
    tp_init(&x, "{\"requests_per_period\": 3000, \"period_s\": 86400, "
                "\"scope\": \"{header.x-k}\"}");
    for (int i = 0; i < 4; i++) {
        a[i] = (struct thread_arg){&x, 0};
        pthread_create(&th[i], NULL, hammer, &a[i]);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += a[i].admitted;
    }
    assert_int_equal(total, 6000);
    tp_free(&x);
}

static void expect_error(const char *json, const char *want)
{
    struct tp x;
    char err[256] = "";
    int rc = tp_try(&x, json, err, sizeof err);
    if (rc == 0 || !strstr(err, want))
        fprintf(stderr, "config %s: got \"%s\", want \"%s\"\n", json, err,
                want);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, want));
    tp_free(&x);
}

static void test_config_errors(void **state)
{
    (void)state;
    expect_error("{\"requests_per_period\": 0}",
                 "config.requests_per_period: must be > 0");
    expect_error("{\"requests_per_period\": 10, \"period_s\": 0}",
                 "config.period_s: must be > 0");
    expect_error("{\"requests_per_period\": 10, \"rpm\": 5}",
                 "config.rpm: unknown key");
    expect_error("{\"requests_per_period\": 10, \"mode\": \"queue\"}",
                 "config.mode: must be one of \"reject\", \"wait\"");
    expect_error("{}", "requests_per_period: set it, tokens_per_period or "
                       "both");
    expect_error("{\"tokens_per_period\": 10, \"burst_requests\": 5}",
                 "burst_requests: needs requests_per_period");
    expect_error("{\"requests_per_period\": 10, \"scope\": \"{who}\"}",
                 "scope: unknown placeholder {who}");
    expect_error("{\"requests_per_period\": 10, \"tiers\": {\"free\": "
                 "{\"rpm\": 1}}}",
                 "config.tiers.free.rpm: unknown key");
    expect_error("{\"requests_per_period\": 10, \"tiers\": {\"free\": "
                 "{\"requests_per_period\": -1}}}",
                 "config.tiers.free.requests_per_period: must be > 0");
    expect_error("{\"requests_per_period\": 10, \"tiers\": [1]}",
                 "config.tiers: must be an object");
    expect_error("{\"requests_per_period\": 10, \"backend\": \"redis\", "
                 "\"redis_url\": \"http://x\"}",
                 "redis_url: only redis:// URLs are supported");
    expect_error("{\"requests_per_period\": 10, \"backend\": \"redis\", "
                 "\"redis_url\": \"redis://127.0.0.1:99999\"}",
                 "redis_url: bad port");
    expect_error("{\"tokens_per_period\": 1000000000000, \"period_s\": 86400,"
                 " \"backend\": \"redis\"}",
                 "tokens_per_period: too large for exact Redis arithmetic");
    expect_error("{\"requests_per_period\": 10, \"redis_timeout_ms\": 0}",
                 "config.redis_timeout_ms: must be >= 1");
}

static void test_durations(void **state)
{
    uint64_t ns;
    char buf[32];
    (void)state;
#define DUR(s) rl_duration_parse((struct sluice_str){s, strlen(s)}, &ns)
    assert_true(DUR("1s"));
    assert_int_equal(ns, 1000000000ull);
    assert_true(DUR("120ms"));
    assert_int_equal(ns, 120000000ull);
    assert_true(DUR("6m0s"));
    assert_int_equal(ns, 360000000000ull);
    assert_true(DUR("1h2m3.5s"));
    assert_int_equal(ns, 3723500000000ull);
    assert_true(DUR("0.25"));
    assert_int_equal(ns, 250000000ull);
    assert_true(DUR("17us"));
    assert_int_equal(ns, 17000ull);
    assert_false(DUR("1m30"));
    assert_false(DUR("abc"));
    assert_false(DUR("5d"));
    assert_false(DUR(""));
#undef DUR
    assert_true(rl_retry_after_parse((struct sluice_str){"7", 1}, 0, &ns));
    assert_int_equal(ns, 7000000000ull);
    /* 2026-01-01T00:00:10Z against a wall clock at 00:00:00. */
    const char *date = "Thu, 01 Jan 2026 00:00:10 GMT";
    assert_true(rl_retry_after_parse((struct sluice_str){date, strlen(date)},
                                     1767225600000, &ns));
    assert_int_equal(ns, 10000000000ull);
    rl_duration_format(0, buf, sizeof buf);
    assert_string_equal(buf, "0s");
    rl_duration_format(1, buf, sizeof buf);
    assert_string_equal(buf, "1ms");
    rl_duration_format(17000000, buf, sizeof buf);
    assert_string_equal(buf, "17ms");
    rl_duration_format(6500000000ull, buf, sizeof buf);
    assert_string_equal(buf, "6.5s");
    rl_duration_format(360000000000ull, buf, sizeof buf);
    assert_string_equal(buf, "6m0s");
}

static void test_status_json(void **state)
{
    struct tp x;
    char buf[512];
    (void)state;
    tp_init(&x, "{\"requests_per_period\": 5, \"scope\": \"{tenant}\"}");
    tp_once(&x, NULL);
    size_t n = x.p->status_json(x.self, buf, sizeof buf);
    assert_true(n > 0 && n < sizeof buf);
    assert_non_null(strstr(buf, "\"keys\":1"));
    assert_non_null(strstr(buf, "\"scope\":\"{tenant}\""));
    assert_int_equal(x.p->status_json(x.self, buf, 4), n);
    tp_free(&x);
}

int main(void)
{
    /* e.g. RL_TEST_FILTER='test_wait*' to run a few */
    if (getenv("RL_TEST_FILTER"))
        cmocka_set_test_filter(getenv("RL_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refill),
        cmocka_unit_test(test_idle_refills_to_burst_only),
        cmocka_unit_test(test_two_dimensions),
        cmocka_unit_test(test_reconcile_refund_and_debit),
        cmocka_unit_test(test_retry_after_and_headers),
        cmocka_unit_test(test_tiers),
        cmocka_unit_test(test_lua_overrides),
        cmocka_unit_test(test_key_templates),
        cmocka_unit_test(test_wait_mode),
        cmocka_unit_test(test_each_attempt_charged),
        cmocka_unit_test(test_upstream_429_pause),
        cmocka_unit_test(test_idle_eviction),
        cmocka_unit_test(test_million_keys_bounded),
        cmocka_unit_test(test_shared_by_workers),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_status_json),
    };
    int failed = cmocka_run_group_tests_name("token_bucket", tests, NULL, NULL);
    return failed | run_redis_tests();
}
