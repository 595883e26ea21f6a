/* Unit tests for the breaker plugin on the SDK's fake host (fake clock, no
 * sleeps). The state machine is also driven directly for the cases the
 * hooks cannot reach (a cool-down deadline later than now + timeout). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "breaker_fsm.h"
#include "sluice/testing.h"

const struct sluice_plugin *sluice_plugin_v1(void);

#define MS 1000000ull

struct fx {
    struct sluice_test_host *t;
    const struct sluice_host *h;
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
    f->h = sluice_test_host(f->t);
    f->p = sluice_plugin_v1();
    f->self = sluice_test_open(f->t, f->p, json);
    if (!f->self)
        fail_msg("%s", sluice_test_open_error(f->t));
}

/* The host destroys the instance. */
static void fx_close(struct fx *f)
{
    sluice_test_host_free(f->t);
}

static int create_error(const char *json, char *msg, size_t len)
{
    struct sluice_test_host *t = sluice_test_host_new();
    int rc = sluice_test_open(t, sluice_plugin_v1(), json) ? 0 : -1;

    snprintf(msg, len, "%s", sluice_test_open_error(t));
    sluice_test_host_free(t);
    return rc;
}

static struct rq rq_new(struct fx *f, const char *upstream, const char *model)
{
    char body[256];
    struct rq q;

    snprintf(body, sizeof body,
             "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\","
             "\"content\":\"hi\"}]}",
             model ? model : "m");
    q.r = sluice_test_req_new(f->t, body);
    sluice_test_req_set_upstream(q.r, upstream);
    q.state = calloc(1, f->p->req_state_size);
    return q;
}

static void rq_free(struct rq *q)
{
    sluice_test_req_free(q->r);
    free(q->state);
}

static enum sluice_action go(struct fx *f, struct rq *q)
{
    return f->p->on_request(f->self, q->r, q->state);
}

/* The upstream answered; on_response then on_log, then the request ends. */
static void finish(struct fx *f, struct rq *q, int status,
                   enum sluice_outcome outcome)
{
    sluice_test_req_set_response(q->r, status, outcome);
    f->p->on_response(f->self, q->r, q->state);
    f->p->on_log(f->self, q->r, q->state);
    rq_free(q);
}

/* A whole request against `upstream` that goes ahead and ends so. */
static void one(struct fx *f, const char *upstream, int status,
                enum sluice_outcome outcome)
{
    struct rq q = rq_new(f, upstream, NULL);
    assert_int_equal(go(f, &q), SLUICE_CONTINUE);
    finish(f, &q, status, outcome);
}

static void fail_n(struct fx *f, const char *upstream, int n)
{
    for (int i = 0; i < n; i++)
        one(f, upstream, 503, SLUICE_OUTCOME_HTTP_ERROR);
}

static double health(struct fx *f, const char *name)
{
    return sluice_test_health(f->t, name);
}

/* Expects the next request to `upstream` to be refused with 503. */
static uint64_t expect_reject(struct fx *f, const char *upstream)
{
    struct rq q = rq_new(f, upstream, NULL);
    assert_int_equal(go(f, &q), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_status(q.r), 503);
    uint64_t retry = sluice_test_reject_retry_after_ms(q.r);
    f->p->on_log(f->self, q.r, q.state);
    rq_free(&q);
    return retry;
}

/* ---- consecutive failures ---- */

static void test_consecutive_failures_open(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{}");
    fail_n(&f, "up", 4);
    assert_true(health(&f, "breaker.up.state") == 0);
    one(&f, "up", 200, SLUICE_OUTCOME_OK); /* resets the run */
    fail_n(&f, "up", 4);
    assert_true(health(&f, "breaker.up.open") == 0);
    fail_n(&f, "up", 1);
    assert_true(health(&f, "breaker.up.open") == 1);
    assert_true(health(&f, "breaker.up.state") == 1);
    assert_true(health(&f, "upstream.up.down") == 1);
    assert_true(sluice_test_metric(f.t, "sluice_breaker_transitions_total") ==
                1);
    assert_true(sluice_test_metric(f.t, "sluice_breaker_open_keys") == 1);
    assert_true(sluice_test_metric(f.t, "sluice_breaker_state") == 1);
    assert_non_null(strstr(sluice_test_log(f.t),
                           "breaker up: closed -> open (5 consecutive"));
    expect_reject(&f, "up");
    assert_true(sluice_test_metric(f.t, "sluice_breaker_rejected_total") == 1);
    /* Other upstreams are not affected. */
    one(&f, "other", 200, SLUICE_OUTCOME_OK);
    fx_close(&f);
}

/* ---- failure rate over the window ---- */

static void test_rate_needs_min_volume(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"consecutive_failures\":0,\"min_volume\":10,"
                "\"failure_rate\":0.5}");
    /* 9 requests, 5 failed: rate > 50% but below the minimum volume. */
    for (int i = 0; i < 9; i++)
        one(&f, "up", i % 2 ? 200 : 500,
            i % 2 ? SLUICE_OUTCOME_OK : SLUICE_OUTCOME_HTTP_ERROR);
    assert_true(health(&f, "breaker.up.open") == 0);
    one(&f, "up", 200, SLUICE_OUTCOME_OK);           /* 10 requests, 5 failed */
    assert_true(health(&f, "breaker.up.open") == 0); /* successes never trip */
    one(&f, "up", 500, SLUICE_OUTCOME_HTTP_ERROR);   /* 11, 6 failed */
    assert_true(health(&f, "breaker.up.open") == 1);
    assert_non_null(strstr(sluice_test_log(f.t), "failure rate 6 of 11"));
    fx_close(&f);
}

static void test_rate_below_threshold_stays_closed(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"consecutive_failures\":0,\"min_volume\":10,"
                "\"failure_rate\":0.5}");
    for (int i = 0; i < 100; i++)
        one(&f, "up", i % 3 ? 200 : 502,
            i % 3 ? SLUICE_OUTCOME_OK : SLUICE_OUTCOME_HTTP_ERROR);
    assert_true(health(&f, "breaker.up.open") == 0);
    fx_close(&f);
}

static void test_window_expiry(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"consecutive_failures\":0,\"min_volume\":4,"
                "\"failure_rate\":0.5,\"window_s\":10}");
    fail_n(&f, "up", 3);
    sluice_test_clock_advance_ms(f.t, 11000); /* those three age out */
    fail_n(&f, "up", 1);
    assert_true(health(&f, "breaker.up.open") == 0);
    sluice_test_clock_advance_ms(f.t, 5000);
    fail_n(&f, "up", 2);
    assert_true(health(&f, "breaker.up.open") == 0);
    fail_n(&f, "up", 1); /* 4 of 4 within 10 s */
    assert_true(health(&f, "breaker.up.open") == 1);
    fx_close(&f);
}

/* ---- open: Retry-After, half-open, closing ---- */

static void test_retry_after_is_remaining_cooldown(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"recovery_timeout_ms\":30000}");
    fail_n(&f, "up", 5);
    sluice_test_clock_advance_ms(f.t, 10500);
    sluice_test_clock_advance_ns(f.t, 1); /* 19499.999999 ms left */
    struct rq q = rq_new(&f, "up", NULL);
    assert_int_equal(go(&f, &q), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_status(q.r), 503);
    assert_int_equal(sluice_test_reject_retry_after_ms(q.r), 19500);
    assert_string_equal(sluice_test_resp_added_header(q.r, "Retry-After"),
                        "20");
    assert_non_null(strstr(sluice_test_response_body(q.r),
                           "\"code\":\"upstream_unavailable\""));
    assert_non_null(strstr(sluice_test_reject_message(q.r), "circuit open"));
    f.p->on_log(f.self, q.r, q.state);
    rq_free(&q);
    fx_close(&f);
}

static void open_then_cool(struct fx *f)
{
    fail_n(f, "up", 5);
    sluice_test_clock_advance_ms(f->t, 30000);
}

static void test_half_open_probe_limit(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{}");
    open_then_cool(&f);
    struct rq probe = rq_new(&f, "up", NULL);
    assert_int_equal(go(&f, &probe), SLUICE_CONTINUE);
    assert_true(health(&f, "breaker.up.state") == 2);
    assert_true(health(&f, "upstream.up.down") == 0);
    /* A second request while the only probe is in flight is refused. */
    uint64_t retry = expect_reject(&f, "up");
    assert_int_equal(retry, 1000);
    finish(&f, &probe, 200, SLUICE_OUTCOME_OK);
    fx_close(&f);
}

static void test_half_open_max_calls_two(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"half_open_max_calls\":2}");
    open_then_cool(&f);
    struct rq a = rq_new(&f, "up", NULL), b = rq_new(&f, "up", NULL);
    assert_int_equal(go(&f, &a), SLUICE_CONTINUE);
    assert_int_equal(go(&f, &b), SLUICE_CONTINUE);
    expect_reject(&f, "up");
    finish(&f, &a, 200, SLUICE_OUTCOME_OK);
    finish(&f, &b, 200, SLUICE_OUTCOME_OK); /* two successes close it */
    assert_true(health(&f, "breaker.up.state") == 0);
    fx_close(&f);
}

static void test_success_threshold_closes(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"success_threshold\":2}");
    open_then_cool(&f);
    one(&f, "up", 200, SLUICE_OUTCOME_OK);
    assert_true(health(&f, "breaker.up.state") == 2);
    one(&f, "up", 200, SLUICE_OUTCOME_OK);
    assert_true(health(&f, "breaker.up.state") == 0);
    assert_true(health(&f, "breaker.up.open") == 0);
    assert_true(health(&f, "upstream.up.down") == 0);
    /* open, half-open, closed */
    assert_true(sluice_test_metric(f.t, "sluice_breaker_transitions_total") ==
                3);
    assert_true(sluice_test_metric(f.t, "sluice_breaker_state") == 0);
    assert_non_null(strstr(sluice_test_log(f.t), "half_open -> closed"));
    /* The old failures were forgotten: four new ones do not trip it. */
    fail_n(&f, "up", 4);
    assert_true(health(&f, "breaker.up.state") == 0);
    fx_close(&f);
}

static void test_half_open_failure_reopens(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"recovery_timeout_ms\":10000}");
    fail_n(&f, "up", 5);
    sluice_test_clock_advance_ms(f.t, 10000);
    one(&f, "up", 200, SLUICE_OUTCOME_OK); /* 1 of 2 successes */
    sluice_test_clock_advance_ms(f.t, 2000);
    one(&f, "up", 504, SLUICE_OUTCOME_HTTP_ERROR);
    assert_true(health(&f, "breaker.up.state") == 1);
    assert_int_equal(expect_reject(&f, "up"), 10000);
    assert_non_null(strstr(sluice_test_log(f.t), "probe failed in half-open"));
    fx_close(&f);
}

static void test_fsm_reopen_keeps_later_deadline(void **unused)
{
    struct breaker_limits l = {.consecutive_failures = 1,
                               .window_ns = 30000 * MS,
                               .failure_rate = 0.5,
                               .min_volume = 20,
                               .recovery_ns = 10000 * MS,
                               .half_open_max_calls = 2,
                               .success_threshold = 2};
    struct breaker_fsm b;
    struct breaker_change c;
    uint32_t gen;
    uint64_t retry, now = 1000 * MS;
    (void)unused;

    breaker_fsm_init(&b, &l);
    breaker_fsm_record(&b, &l, now, BREAKER_FAILURE, false, 0, &c);
    assert_int_equal(b.state, BREAKER_OPEN);
    now += 10000 * MS;
    assert_int_equal(breaker_fsm_admit(&b, &l, now, &gen, &retry, &c),
                     BREAKER_PROBE);
    assert_true(c.changed && c.to == BREAKER_HALF_OPEN);
    /* Pretend an earlier cool-down promised a later end (e.g. a longer
     * timeout before a reload): a probe failure must not shorten it. */
    b.open_until_ns = now + 60000 * MS;
    breaker_fsm_record(&b, &l, now, BREAKER_FAILURE, true, gen, &c);
    assert_int_equal(b.state, BREAKER_OPEN);
    assert_int_equal(breaker_fsm_remaining_ms(&b, now), 60000);
    /* Normal case: deadline = now + timeout. */
    now += 60000 * MS;
    assert_int_equal(breaker_fsm_admit(&b, &l, now, &gen, &retry, &c),
                     BREAKER_PROBE);
    breaker_fsm_record(&b, &l, now, BREAKER_FAILURE, true, gen, &c);
    assert_int_equal(breaker_fsm_remaining_ms(&b, now), 10000);
}

static void test_fsm_stale_probe_ignored(void **unused)
{
    struct breaker_limits l = {.consecutive_failures = 1,
                               .window_ns = 30000 * MS,
                               .failure_rate = 0.5,
                               .min_volume = 20,
                               .recovery_ns = 1000 * MS,
                               .half_open_max_calls = 2,
                               .success_threshold = 1};
    struct breaker_fsm b;
    struct breaker_change c;
    uint32_t g1, g2, g3;
    uint64_t retry, now = 5000 * MS;
    (void)unused;

    breaker_fsm_init(&b, &l);
    breaker_fsm_record(&b, &l, now, BREAKER_FAILURE, false, 0, &c);
    now += 1000 * MS;
    assert_int_equal(breaker_fsm_admit(&b, &l, now, &g1, &retry, &c),
                     BREAKER_PROBE);
    assert_int_equal(breaker_fsm_admit(&b, &l, now, &g2, &retry, &c),
                     BREAKER_PROBE);
    breaker_fsm_record(&b, &l, now, BREAKER_FAILURE, true, g1, &c);
    assert_int_equal(b.state, BREAKER_OPEN);
    now += 1000 * MS;
    assert_int_equal(breaker_fsm_admit(&b, &l, now, &g3, &retry, &c),
                     BREAKER_PROBE);
    /* The second probe of the earlier period ends: it must neither close
     * the breaker nor free the new period's slot. */
    breaker_fsm_record(&b, &l, now, BREAKER_SUCCESS, true, g2, &c);
    assert_int_equal(b.state, BREAKER_HALF_OPEN);
    assert_int_equal(b.probes_in_flight, 1);
    breaker_fsm_record(&b, &l, now, BREAKER_SUCCESS, true, g3, &c);
    assert_int_equal(b.state, BREAKER_CLOSED);
}

static void test_cooldown_noticed_without_traffic_to_key(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{}");
    fail_n(&f, "up", 5);
    assert_true(health(&f, "upstream.up.down") == 1);
    sluice_test_clock_advance_ms(f.t, 30001);
    /* The core skips "up" while it is down; any request through the
     * instance must bring it back to half-open. */
    one(&f, "other", 200, SLUICE_OUTCOME_OK);
    assert_true(health(&f, "upstream.up.down") == 0);
    assert_true(health(&f, "breaker.up.state") == 2);
    assert_true(sluice_test_metric(f.t, "sluice_breaker_half_open_keys") == 1);
    fx_close(&f);
}

/* ---- what counts as a failure ---- */

static void test_429_counted_only_when_configured(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{}");
    for (int i = 0; i < 10; i++)
        one(&f, "up", 429, SLUICE_OUTCOME_HTTP_ERROR);
    assert_true(health(&f, "breaker.up.open") == 0);
    fx_close(&f);

    fx_open(&f, "{\"failure_statuses\":\"5xx, 429\"}");
    fail_n(&f, "up", 2);
    for (int i = 0; i < 3; i++)
        one(&f, "up", 429, SLUICE_OUTCOME_HTTP_ERROR);
    assert_true(health(&f, "breaker.up.open") == 1);
    fx_close(&f);

    fx_open(&f, "{\"failure_statuses\":[429, \"502-504\"]}");
    for (int i = 0; i < 5; i++)
        one(&f, "up", 500, SLUICE_OUTCOME_HTTP_ERROR); /* not listed */
    assert_true(health(&f, "breaker.up.open") == 0);
    for (int i = 0; i < 5; i++)
        one(&f, "up", i % 2 ? 429 : 503, SLUICE_OUTCOME_HTTP_ERROR);
    assert_true(health(&f, "breaker.up.open") == 1);
    fx_close(&f);
}

static void test_timeouts_and_connect_errors(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{}");
    for (int i = 0; i < 5; i++)
        one(&f, "up", 0,
            i % 2 ? SLUICE_OUTCOME_TIMEOUT : SLUICE_OUTCOME_CONNECT_ERROR);
    assert_true(health(&f, "breaker.up.open") == 1);
    fx_close(&f);

    fx_open(&f, "{\"failure_on_timeout\":false}");
    for (int i = 0; i < 10; i++)
        one(&f, "up", 0, SLUICE_OUTCOME_TIMEOUT);
    assert_true(health(&f, "breaker.up.open") == 0);
    /* Neutral, not a success: the run of connect errors continues. */
    fail_n(&f, "up", 2);
    one(&f, "up", 0, SLUICE_OUTCOME_TIMEOUT);
    for (int i = 0; i < 3; i++)
        one(&f, "up", 0, SLUICE_OUTCOME_CONNECT_ERROR);
    assert_true(health(&f, "breaker.up.open") == 1);
    fx_close(&f);
}

static void test_client_gone_releases_probe(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{}");
    open_then_cool(&f);
    struct rq probe = rq_new(&f, "up", NULL);
    assert_int_equal(go(&f, &probe), SLUICE_CONTINUE);
    finish(&f, &probe, 0, SLUICE_OUTCOME_CLIENT_GONE);
    assert_true(health(&f, "breaker.up.state") == 2); /* no verdict */
    one(&f, "up", 200, SLUICE_OUTCOME_OK); /* the slot is free again */
    one(&f, "up", 200, SLUICE_OUTCOME_OK);
    assert_true(health(&f, "breaker.up.state") == 0);
    fx_close(&f);
}

static void test_on_log_alone_releases_probe(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{}");
    open_then_cool(&f);
    struct rq probe = rq_new(&f, "up", NULL);
    assert_int_equal(go(&f, &probe), SLUICE_CONTINUE);
    /* A later plugin answered: no upstream call, no on_response. */
    f.p->on_log(f.self, probe.r, probe.state);
    rq_free(&probe);
    one(&f, "up", 200, SLUICE_OUTCOME_OK);
    fx_close(&f);
}

static void test_every_attempt_is_judged(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{}");
    for (int i = 0; i < 5; i++) {
        /* The core retried on "backup" after "up" failed: the client saw
         * a success, yet "up" failed each time. */
        struct rq q = rq_new(&f, "up", NULL);
        assert_int_equal(go(&f, &q), SLUICE_CONTINUE);
        sluice_test_req_add_attempt(q.r, "up", "m", 503,
                                    SLUICE_OUTCOME_HTTP_ERROR);
        sluice_test_req_add_attempt(q.r, "backup", "m", 200, SLUICE_OUTCOME_OK);
        finish(&f, &q, 200, SLUICE_OUTCOME_OK);
    }
    assert_true(health(&f, "breaker.up.open") == 1);
    assert_true(health(&f, "breaker.backup.open") == 0);
    char buf[2048];
    f.p->status_json(f.self, buf, sizeof buf);
    assert_non_null(strstr(buf, "\"key\":\"backup\""));
    fx_close(&f);
}

/* ---- fallbacks ---- */

static void test_fallback_upstream(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"fallback_upstream\":\"backup\"}");
    fail_n(&f, "up", 5);
    struct rq q = rq_new(&f, "up", NULL);
    assert_int_equal(go(&f, &q), SLUICE_CONTINUE);
    struct sluice_str up = f.h->req_upstream(q.r);
    assert_int_equal(up.len, 6);
    assert_memory_equal(up.ptr, "backup", 6);
    struct sluice_str tag = f.h->var_get(q.r, "sluice.fallback");
    assert_int_equal(tag.len, 7);
    assert_memory_equal(tag.ptr, "breaker", 7);
    assert_true(sluice_test_metric(f.t, "sluice_breaker_fallbacks_total") == 1);
    finish(&f, &q, 200, SLUICE_OUTCOME_OK);
    fx_close(&f);
}

static void test_fallback_model(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"scope\":\"upstream_model\",\"fallback_model\":\"small\"}");
    for (int i = 0; i < 5; i++) {
        struct rq q = rq_new(&f, "up", "big");
        assert_int_equal(go(&f, &q), SLUICE_CONTINUE);
        finish(&f, &q, 500, SLUICE_OUTCOME_HTTP_ERROR);
    }
    assert_true(health(&f, "breaker.up/big.open") == 1);
    assert_true(isnan(health(&f, "upstream.up.down"))); /* model scope */
    struct rq q = rq_new(&f, "up", "big");
    assert_int_equal(go(&f, &q), SLUICE_CONTINUE);
    struct sluice_str m = f.h->req_target_model(q.r);
    assert_int_equal(m.len, 5);
    assert_memory_equal(m.ptr, "small", 5);
    finish(&f, &q, 200, SLUICE_OUTCOME_OK);
    /* Another model on the same upstream is unaffected. */
    struct rq q2 = rq_new(&f, "up", "other");
    assert_int_equal(go(&f, &q2), SLUICE_CONTINUE);
    assert_memory_equal(f.h->req_target_model(q2.r).ptr, "other", 5);
    finish(&f, &q2, 200, SLUICE_OUTCOME_OK);
    fx_close(&f);
}

static void test_static_response(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"static_response\":{\"choices\":[{\"message\":{\"role\":"
                "\"assistant\",\"content\":\"busy\"}}]}}");
    fail_n(&f, "up", 5);
    struct rq q = rq_new(&f, "up", NULL);
    assert_int_equal(go(&f, &q), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_status(q.r), 200);
    assert_non_null(strstr(sluice_test_response_body(q.r), "\"busy\""));
    assert_string_equal(sluice_test_resp_added_header(q.r, "Content-Type"),
                        "application/json");
    assert_memory_equal(f.h->var_get(q.r, "sluice.fallback").ptr, "breaker", 7);
    f.p->on_log(f.self, q.r, q.state);
    rq_free(&q);
    fx_close(&f);
}

static void test_open_fallback_falls_to_static(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"fallback_upstream\":\"backup\","
                "\"static_response\":\"{\\\"ok\\\":false}\"}");
    fail_n(&f, "backup", 5);
    fail_n(&f, "up", 5);
    struct rq q = rq_new(&f, "up", NULL);
    assert_int_equal(go(&f, &q), SLUICE_RESPOND);
    assert_string_equal(sluice_test_response_body(q.r), "{\"ok\":false}");
    f.p->on_log(f.self, q.r, q.state);
    rq_free(&q);
    fx_close(&f);
}

static void test_unknown_fallback_upstream_rejects(void **unused)
{
    static const char *const known[] = {"up", NULL};
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"fallback_upstream\":\"nowhere\"}");
    sluice_test_set_upstreams(f.t, known);
    fail_n(&f, "up", 5);
    expect_reject(&f, "up");
    assert_non_null(strstr(sluice_test_log(f.t), "refused by the core"));
    fx_close(&f);
}

/* ---- config ---- */

static void test_config_errors(void **unused)
{
    char msg[256];
    (void)unused;
    assert_int_equal(
        create_error("{\"failure_statuses\":\"6xx\"}", msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "failure_statuses"));
    assert_int_equal(
        create_error("{\"failure_statuses\":[700]}", msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "failure_statuses: bad token \"700\""));
    assert_int_equal(
        create_error("{\"failure_statuses\":[\"5xx\", true]}", msg, sizeof msg),
        -1);
    assert_string_equal(msg, "config.failure_statuses[1]: must be a string");
    assert_int_equal(
        create_error("{\"static_response\":\"{nope\"}", msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "static_response"));
    assert_int_equal(
        create_error("{\"fallback_model\":\"x\"}", msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "fallback_model"));
    assert_int_equal(create_error("{\"failure_rate\":0}", msg, sizeof msg), -1);
    assert_int_equal(create_error("{\"scope\":\"model\"}", msg, sizeof msg),
                     -1);
    assert_int_equal(create_error("{\"failure_statuses\":\"500-504, 4xx\"}",
                                  msg, sizeof msg),
                     0);
}

/* ---- bounded keys ---- */

static void test_key_cap_and_eviction(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"max_keys\":2,\"idle_evict_s\":60}");
    one(&f, "a", 200, SLUICE_OUTCOME_OK);
    struct rq held = rq_new(&f, "b", NULL);
    assert_int_equal(go(&f, &held), SLUICE_CONTINUE);
    /* Full, nothing idle yet: "c" passes untracked. */
    one(&f, "c", 200, SLUICE_OUTCOME_OK);
    assert_true(sluice_test_metric(f.t, "sluice_breaker_untracked_total") ==
                1); /* fails open */
    fail_n(&f, "c", 6);
    assert_true(isnan(health(&f, "breaker.c.state")));
    sluice_test_clock_advance_ms(f.t, 61000);
    /* "a" is idle and closed: evicted for "c"; "b" is held, so kept. */
    fail_n(&f, "c", 5);
    assert_true(health(&f, "breaker.c.open") == 1);
    char buf[2048];
    f.p->status_json(f.self, buf, sizeof buf);
    assert_null(strstr(buf, "\"key\":\"a\""));
    assert_non_null(strstr(buf, "\"key\":\"b\""));
    finish(&f, &held, 200, SLUICE_OUTCOME_OK);
    fx_close(&f);
}

static void test_status_json(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{}");
    fail_n(&f, "up", 5);
    sluice_test_clock_advance_ms(f.t, 1000);
    char small[8];
    size_t need = f.p->status_json(f.self, small, sizeof small);
    char *buf = malloc(need + 1);
    assert_int_equal(f.p->status_json(f.self, buf, need + 1), need);
    assert_non_null(strstr(buf, "\"scope\":\"upstream\""));
    assert_non_null(strstr(buf, "\"state\":\"open\""));
    assert_non_null(strstr(buf, "\"remaining_cooldown_ms\":29000"));
    assert_non_null(strstr(buf, "\"consecutive_failures\":5"));
    assert_non_null(strstr(buf, "\"window_failures\":5"));
    free(buf);
    fx_close(&f);
}

/* ---- threads (run under TSan) ---- */

struct worker {
    struct fx *f;
    unsigned seed;
    int iterations;
};

static unsigned next_rand(unsigned *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void *stress_worker(void *arg)
{
    struct worker *w = arg;
    struct fx *f = w->f;
    char name[8];

    for (int i = 0; i < w->iterations; i++) {
        unsigned x = next_rand(&w->seed);
        snprintf(name, sizeof name, "u%u", x % 6);
        struct rq q = rq_new(f, name, NULL);
        sluice_test_req_set_worker(q.r, w->seed % 4);
        enum sluice_action a = go(f, &q);
        if (a == SLUICE_CONTINUE) {
            int fail = (x >> 8) % 3 == 0;
            enum sluice_outcome o = (x >> 12) % 11 == 0
                                        ? SLUICE_OUTCOME_CLIENT_GONE
                                    : fail ? SLUICE_OUTCOME_HTTP_ERROR
                                           : SLUICE_OUTCOME_OK;
            finish(f, &q, fail ? 503 : 200, o);
        } else {
            f->p->on_log(f->self, q.r, q.state);
            rq_free(&q);
        }
        if (i % 500 == 0) {
            char buf[4096];
            f->p->status_json(f->self, buf, sizeof buf);
        }
    }
    return NULL;
}

static void test_threads(void **unused)
{
    struct fx f;
    pthread_t th[4];
    struct worker w[4];
    (void)unused;

    fx_open(&f, "{\"max_keys\":4,\"idle_evict_s\":0,\"recovery_timeout_ms\":"
                "1000,\"fallback_upstream\":\"u0\",\"half_open_max_calls\":"
                "2,\"static_response\":{\"x\":1}}");
    /* The fake clock may not move while threads read it, so time moves
     * between rounds: keys go open, half-open and closed across rounds. */
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < 4; i++) {
            w[i] = (struct worker){
                &f, 2654435761u * (unsigned)(i + 1 + round * 4), 3000};
            pthread_create(&th[i], NULL, stress_worker, &w[i]);
        }
        for (int i = 0; i < 4; i++)
            pthread_join(th[i], NULL);
        sluice_test_clock_advance_ms(f.t, 1500);
    }
    /* Every request let go of its key: all keys are evictable now. */
    char buf[8192];
    f.p->status_json(f.self, buf, sizeof buf);
    assert_null(strstr(buf, "\"probes_in_flight\":1"));
    assert_null(strstr(buf, "\"probes_in_flight\":2"));
    assert_true(sluice_test_metric(f.t, "sluice_breaker_transitions_total") >
                0);
    fx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consecutive_failures_open),
        cmocka_unit_test(test_rate_needs_min_volume),
        cmocka_unit_test(test_rate_below_threshold_stays_closed),
        cmocka_unit_test(test_window_expiry),
        cmocka_unit_test(test_retry_after_is_remaining_cooldown),
        cmocka_unit_test(test_half_open_probe_limit),
        cmocka_unit_test(test_half_open_max_calls_two),
        cmocka_unit_test(test_success_threshold_closes),
        cmocka_unit_test(test_half_open_failure_reopens),
        cmocka_unit_test(test_fsm_reopen_keeps_later_deadline),
        cmocka_unit_test(test_fsm_stale_probe_ignored),
        cmocka_unit_test(test_cooldown_noticed_without_traffic_to_key),
        cmocka_unit_test(test_429_counted_only_when_configured),
        cmocka_unit_test(test_timeouts_and_connect_errors),
        cmocka_unit_test(test_client_gone_releases_probe),
        cmocka_unit_test(test_on_log_alone_releases_probe),
        cmocka_unit_test(test_every_attempt_is_judged),
        cmocka_unit_test(test_fallback_upstream),
        cmocka_unit_test(test_fallback_model),
        cmocka_unit_test(test_static_response),
        cmocka_unit_test(test_open_fallback_falls_to_static),
        cmocka_unit_test(test_unknown_fallback_upstream_rejects),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_key_cap_and_eviction),
        cmocka_unit_test(test_status_json),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
