/* Unit tests for the admission plugin on the SDK's fake host. The test
 * plays the core: it calls on_request again when the plugin woke the
 * request (sluice_test_wakes) or when its resume_after deadline passed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/testing.h"
#include "wfq.h"

const struct sluice_plugin *sluice_plugin_v1(void);

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

static double metric(struct fx *f, const char *name)
{
    return sluice_test_metric(f->t, name);
}

static struct rq rq_make(struct fx *f, const char *upstream, const char *tenant,
                         enum sluice_priority prio)
{
    struct rq q;
    q.r = sluice_test_req_new(f->t, "{\"model\":\"m\",\"messages\":[]}");
    sluice_test_req_set_upstream(q.r, upstream);
    sluice_test_req_set_identity(q.r, tenant, "", "", "");
    f->h->set_priority(q.r, prio);
    q.state = calloc(1, f->p->req_state_size);
    return q;
}

static enum sluice_action go(struct fx *f, struct rq *q)
{
    return f->p->on_request(f->self, q->r, q->state);
}

/* What the core does when a wake or the timer fires. */
static enum sluice_action again(struct fx *f, struct rq *q)
{
    sluice_test_req_mark_resumed(q->r);
    return go(f, q);
}

static void end(struct fx *f, struct rq *q)
{
    f->p->on_log(f->self, q->r, q->state);
    sluice_test_req_free(q->r);
    free(q->state);
    q->r = NULL;
}

static unsigned wakes(struct rq *q)
{
    return sluice_test_wakes(q->r);
}

static struct rq admitted(struct fx *f, const char *upstream)
{
    struct rq q = rq_make(f, upstream, "t", SLUICE_PRIO_STANDARD);
    assert_int_equal(go(f, &q), SLUICE_CONTINUE);
    return q;
}

static struct rq queued(struct fx *f, const char *upstream, const char *tenant,
                        enum sluice_priority prio)
{
    struct rq q = rq_make(f, upstream, tenant, prio);
    assert_int_equal(go(f, &q), SLUICE_SUSPEND);
    return q;
}

/* ---- cap and queue ---- */

static void test_cap_respected(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"max_concurrency\":2,\"queue_timeout_ms\":5000}");
    struct rq a = admitted(&f, "up"), b = admitted(&f, "up");
    struct rq c = queued(&f, "up", "t", SLUICE_PRIO_STANDARD);
    assert_int_equal(sluice_test_resume_after_ms(c.r), 5000);
    assert_true(metric(&f, "sluice_admission_in_flight") == 2);
    assert_true(
        metric(&f, "sluice_admission_queue_depth{priority=\"standard\"}") == 1);
    assert_true(metric(&f, "sluice_admission_queued_total") == 1);
    assert_int_equal(wakes(&c), 0);
    end(&f, &a);
    assert_int_equal(wakes(&c), 1);
    assert_true(
        metric(&f, "sluice_admission_queue_depth{priority=\"standard\"}") == 0);
    assert_true(metric(&f, "sluice_admission_in_flight") == 2); /* handed */
    assert_int_equal(again(&f, &c), SLUICE_CONTINUE);
    /* Still capped: a new one waits. */
    struct rq d = queued(&f, "up", "t", SLUICE_PRIO_STANDARD);
    end(&f, &b);
    assert_int_equal(again(&f, &d), SLUICE_CONTINUE);
    end(&f, &c);
    end(&f, &d);
    assert_true(metric(&f, "sluice_admission_in_flight") == 0);
    assert_true(metric(&f, "sluice_admission_admitted_total") == 4);
    /* Every admitted request observed its wait. */
    assert_true(
        metric(&f, "sluice_admission_wait_seconds{priority=\"standard\"}") ==
        4);
    fx_close(&f);
}

static void test_upstreams_are_separate(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"max_concurrency\":1,\"upstream_limits\":{\"b\":"
                "{\"max_concurrency\":2}}}");
    struct rq a1 = admitted(&f, "a");
    struct rq a2 = queued(&f, "a", "t", SLUICE_PRIO_STANDARD);
    struct rq b1 = admitted(&f, "b"), b2 = admitted(&f, "b");
    struct rq b3 = queued(&f, "b", "t", SLUICE_PRIO_STANDARD);
    end(&f, &b1);
    assert_int_equal(wakes(&a2), 0);
    assert_int_equal(wakes(&b3), 1);
    assert_int_equal(again(&f, &b3), SLUICE_CONTINUE);
    end(&f, &a1);
    assert_int_equal(again(&f, &a2), SLUICE_CONTINUE);
    end(&f, &a2);
    end(&f, &b2);
    end(&f, &b3);
    assert_true(metric(&f, "sluice_admission_in_flight") == 0);
    fx_close(&f);
}

static void test_realtime_overtakes_batch(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"max_concurrency\":1}");
    struct rq hold = admitted(&f, "up");
    struct rq b1 = queued(&f, "up", "t", SLUICE_PRIO_BATCH);
    struct rq b2 = queued(&f, "up", "t", SLUICE_PRIO_BATCH);
    struct rq low = queued(&f, "up", "t", SLUICE_PRIO_LOW);
    struct rq rt = queued(&f, "up", "t", SLUICE_PRIO_REALTIME);
    struct rq crit = queued(&f, "up", "u", SLUICE_PRIO_CRITICAL);
    assert_true(
        metric(&f, "sluice_admission_queue_depth{priority=\"batch\"}") == 2);
    assert_true(
        metric(&f, "sluice_admission_queue_depth{priority=\"realtime\"}") == 1);

    struct rq *order[] = {&crit, &rt, &b1, &b2, &low};
    struct rq *holder = &hold;
    for (size_t i = 0; i < 5; i++) {
        end(&f, holder);
        for (size_t j = i; j < 5; j++)
            assert_int_equal(wakes(order[j]), j == i ? 1 : 0);
        assert_int_equal(again(&f, order[i]), SLUICE_CONTINUE);
        holder = order[i];
    }
    end(&f, holder);
    assert_true(metric(&f, "sluice_admission_in_flight") == 0);
    assert_true(
        metric(&f, "sluice_admission_wait_seconds{priority=\"critical\"}") ==
        1);
    fx_close(&f);
}

/* ---- fairness ---- */

static void test_wfq_lone_tenant_not_starved(void **unused)
{
    enum { N = 10000 };
    struct wfq q;
    struct wfq_item *a = calloc(N, sizeof *a), b;
    (void)unused;

    assert_int_equal(wfq_init(&q, 4), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(wfq_push(&q, &a[i], 2, "A", 1, WFQ_WEIGHT_ONE), 0);
    assert_int_equal(wfq_push(&q, &b, 2, "B", 1, WFQ_WEIGHT_ONE), 0);
    assert_ptr_equal(wfq_pop(&q), &a[0]);
    assert_ptr_equal(wfq_pop(&q), &b); /* after at most one of A's */
    for (int i = 1; i < N; i++)
        assert_ptr_equal(wfq_pop(&q), &a[i]); /* A keeps its own order */
    assert_null(wfq_pop(&q));

    /* B arrives later, after A was served for a while: still next-but-one. */
    for (int i = 0; i < N; i++)
        assert_int_equal(wfq_push(&q, &a[i], 2, "A", 1, WFQ_WEIGHT_ONE), 0);
    for (int i = 0; i < 500; i++)
        assert_ptr_equal(wfq_pop(&q), &a[i]);
    assert_int_equal(wfq_push(&q, &b, 2, "B", 1, WFQ_WEIGHT_ONE), 0);
    assert_ptr_equal(wfq_pop(&q), &a[500]);
    assert_ptr_equal(wfq_pop(&q), &b);
    wfq_fini(&q);
    free(a);
}

static void test_wfq_weights(void **unused)
{
    enum { N = 300 };
    struct wfq q;
    struct wfq_item *a = calloc(N, sizeof *a), *b = calloc(N, sizeof *b);
    int served_a = 0, served_b = 0;
    (void)unused;

    assert_int_equal(wfq_init(&q, 4), 0);
    /* A weighs 1, B weighs 2: while both are backlogged B gets 2 of 3. */
    for (int i = 0; i < N; i++) {
        wfq_push(&q, &a[i], 2, "A", 1, WFQ_WEIGHT_ONE);
        wfq_push(&q, &b[i], 2, "B", 1, 2 * WFQ_WEIGHT_ONE);
    }
    for (int i = 0; i < 300; i++) {
        struct wfq_item *it = wfq_pop(&q);
        if (it >= a && it < a + N)
            served_a++;
        else
            served_b++;
    }
    assert_int_equal(served_a, 100);
    assert_int_equal(served_b, 200);
    while (wfq_pop(&q))
        ;

    /* A weighs 3: a lone B request waits at most 3 of A's. */
    for (int i = 0; i < N; i++)
        wfq_push(&q, &a[i], 2, "A", 1, 3 * WFQ_WEIGHT_ONE);
    wfq_push(&q, &b[0], 2, "B", 1, WFQ_WEIGHT_ONE);
    int before_b = 0;
    while (wfq_pop(&q) != &b[0])
        before_b++;
    assert_true(before_b <= 3);
    wfq_fini(&q);
    free(a);
    free(b);
}

static void test_wfq_remove_keeps_order(void **unused)
{
    struct wfq q;
    struct wfq_item it[6];
    (void)unused;

    assert_int_equal(wfq_init(&q, 4), 0);
    wfq_push(&q, &it[0], 3, "A", 1, WFQ_WEIGHT_ONE);
    wfq_push(&q, &it[1], 3, "A", 1, WFQ_WEIGHT_ONE);
    wfq_push(&q, &it[2], 3, "A", 1, WFQ_WEIGHT_ONE);
    wfq_push(&q, &it[3], 3, "B", 1, WFQ_WEIGHT_ONE);
    wfq_push(&q, &it[4], 1, "C", 1, WFQ_WEIGHT_ONE);
    assert_int_equal(wfq_depth_upto(&q, 2), 1);
    assert_int_equal(wfq_depth_upto(&q, 4), 5);
    assert_ptr_equal(wfq_last(&q, 3), &it[2]);
    wfq_remove(&q, &it[0]); /* head */
    wfq_remove(&q, &it[2]); /* tail */
    wfq_remove(&q, &it[3]); /* whole flow */
    assert_int_equal(wfq_depth(&q, 3), 1);
    /* A's cancelled tail does not push A's next arrival back. */
    wfq_push(&q, &it[5], 3, "A", 1, WFQ_WEIGHT_ONE);
    assert_true(it[5].finish == it[1].finish + WFQ_UNIT);
    assert_ptr_equal(wfq_pop(&q), &it[4]);
    assert_ptr_equal(wfq_pop(&q), &it[1]);
    assert_ptr_equal(wfq_pop(&q), &it[5]);
    assert_null(wfq_pop(&q));
    wfq_fini(&q);
}

/* Shares in exact integers: room 20 over three tenants of weight 1 is
 * 6.67 each, so a tenant may reach 6 but not 7. */
static void test_wfq_fair_victim_exact(void **unused)
{
    struct wfq q;
    struct wfq_item a[14], b[6], c[7];
    (void)unused;

    assert_int_equal(wfq_init(&q, 4), 0);
    for (int i = 0; i < 14; i++)
        wfq_push(&q, &a[i], 2, "A", 1, WFQ_WEIGHT_ONE);
    for (int i = 0; i < 6; i++)
        wfq_push(&q, &b[i], 2, "B", 1, WFQ_WEIGHT_ONE);
    for (int i = 0; i < 6; i++) {
        struct wfq_item *v = wfq_fair_victim(&q, 2, "C", 1, WFQ_WEIGHT_ONE, 20);
        assert_ptr_equal(v, &a[13 - i]); /* A is the one over, newest first */
        wfq_remove(&q, v);
        wfq_push(&q, &c[i], 2, "C", 1, WFQ_WEIGHT_ONE);
    }
    /* 8:6:6 now; C at 6 would reach 7 > 6.67. */
    assert_null(wfq_fair_victim(&q, 2, "C", 1, WFQ_WEIGHT_ONE, 20));
    /* B (6) may not take A's (8) place either: 7 > 6.67. */
    assert_null(wfq_fair_victim(&q, 2, "B", 1, WFQ_WEIGHT_ONE, 20));
    /* A fourth tenant (share 5) displaces A's newest: A is 3 over. */
    assert_ptr_equal(wfq_fair_victim(&q, 2, "D", 1, WFQ_WEIGHT_ONE, 20), &a[7]);
    /* No room at the level: nobody gets in. */
    assert_null(wfq_fair_victim(&q, 2, "D", 1, WFQ_WEIGHT_ONE, 0));
    /* Another level is empty: nothing to displace there. */
    assert_null(wfq_fair_victim(&q, 3, "D", 1, WFQ_WEIGHT_ONE, 20));
    wfq_fini(&q);
}

/* Through the hooks, with a backlog that fits in the fake host. */
static void test_lone_tenant_through_hooks(void **unused)
{
    enum { N = 200 };
    struct fx f;
    struct rq *a = calloc(N, sizeof *a);
    (void)unused;

    fx_open(&f, "{\"max_concurrency\":1,\"tenant_weights\":{\"A\":1,"
                "\"B\":1}}");
    struct rq holder = admitted(&f, "up");
    for (int i = 0; i < N; i++)
        a[i] = queued(&f, "up", "A", SLUICE_PRIO_STANDARD);
    end(&f, &holder);
    assert_int_equal(again(&f, &a[0]), SLUICE_CONTINUE);
    struct rq b = queued(&f, "up", "B", SLUICE_PRIO_STANDARD);
    end(&f, &a[0]);
    assert_int_equal(wakes(&a[1]), 1); /* one of A's went first */
    assert_int_equal(again(&f, &a[1]), SLUICE_CONTINUE);
    end(&f, &a[1]);
    assert_int_equal(wakes(&b), 1); /* then B's only request */
    assert_int_equal(again(&f, &b), SLUICE_CONTINUE);
    end(&f, &b);
    for (int i = 2; i < N; i++) {
        assert_int_equal(wakes(&a[i]), 1);
        assert_int_equal(again(&f, &a[i]), SLUICE_CONTINUE);
        end(&f, &a[i]);
    }
    assert_true(metric(&f, "sluice_admission_in_flight") == 0);
    free(a);
    fx_close(&f);
}

/* ---- full queue, timeouts ---- */

static void test_queue_full_estimated_wait(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"max_concurrency\":1,\"max_queue\":2}");
    struct rq first = admitted(&f, "up");
    sluice_test_clock_advance_ms(f.t, 200); /* one slot held for 200 ms */
    end(&f, &first);
    struct rq hold = admitted(&f, "up");
    struct rq q1 = queued(&f, "up", "t", SLUICE_PRIO_STANDARD);
    struct rq q2 = queued(&f, "up", "t", SLUICE_PRIO_STANDARD);
    struct rq over = rq_make(&f, "up", "t", SLUICE_PRIO_STANDARD);
    assert_int_equal(go(&f, &over), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_status(over.r), 429);
    assert_string_equal(sluice_test_reject_type(over.r), "rate_limit_error");
    assert_non_null(
        strstr(sluice_test_response_body(over.r), "\"code\":\"queue_full\""));
    /* Two ahead plus itself, 200 ms each, one slot. */
    assert_int_equal(sluice_test_reject_retry_after_ms(over.r), 600);
    assert_string_equal(sluice_test_resp_added_header(over.r, "Retry-After"),
                        "1");
    assert_true(metric(&f, "sluice_admission_rejected_total") == 1);
    end(&f, &over);
    end(&f, &hold);
    assert_int_equal(again(&f, &q1), SLUICE_CONTINUE);
    end(&f, &q1);
    assert_int_equal(again(&f, &q2), SLUICE_CONTINUE);
    end(&f, &q2);
    assert_true(metric(&f, "sluice_admission_in_flight") == 0);
    fx_close(&f);
}

static void test_queue_full_503_without_sample(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"max_concurrency\":2,\"max_queue\":0,"
                "\"queue_full_status\":503}");
    struct rq a = admitted(&f, "up"), b = admitted(&f, "up");
    struct rq c = rq_make(&f, "up", "t", SLUICE_PRIO_CRITICAL);
    assert_int_equal(go(&f, &c), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_status(c.r), 503);
    /* No hold time measured yet: 1 s per slot-turn, 2 slots. */
    assert_int_equal(sluice_test_reject_retry_after_ms(c.r), 500);
    end(&f, &c);
    end(&f, &a);
    end(&f, &b);
    fx_close(&f);
}

static void test_timeout_504(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"max_concurrency\":1,\"queue_timeout_ms\":1000}");
    struct rq hold = admitted(&f, "up");
    struct rq w = queued(&f, "up", "t", SLUICE_PRIO_BATCH);
    /* A timer that fires early (or a stray resume) keeps it waiting. */
    sluice_test_clock_advance_ms(f.t, 400);
    assert_int_equal(again(&f, &w), SLUICE_SUSPEND);
    assert_int_equal(sluice_test_resume_after_ms(w.r), 600);
    sluice_test_clock_advance_ms(f.t, 600);
    assert_int_equal(again(&f, &w), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_status(w.r), 504);
    assert_string_equal(sluice_test_reject_type(w.r), "timeout_error");
    assert_non_null(
        strstr(sluice_test_response_body(w.r), "\"code\":\"queue_timeout\""));
    assert_true(metric(&f, "sluice_admission_timeouts_total") == 1);
    assert_true(
        metric(&f, "sluice_admission_queue_depth{priority=\"batch\"}") == 0);
    end(&f, &w);
    end(&f, &hold); /* nothing left to wake */
    assert_true(metric(&f, "sluice_admission_in_flight") == 0);
    fx_close(&f);
}

static void test_granted_then_timer_still_admits(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"max_concurrency\":1,\"queue_timeout_ms\":1000}");
    struct rq hold = admitted(&f, "up");
    struct rq w = queued(&f, "up", "t", SLUICE_PRIO_STANDARD);
    sluice_test_clock_advance_ms(f.t, 999);
    end(&f, &hold); /* grant + wake just before the deadline */
    sluice_test_clock_advance_ms(f.t, 5);
    /* The core ran the timer first: the slot is still ours. */
    assert_int_equal(again(&f, &w), SLUICE_CONTINUE);
    end(&f, &w);
    assert_true(metric(&f, "sluice_admission_in_flight") == 0);
    fx_close(&f);
}

/* ---- cancellation never leaks a slot ---- */

static void test_cancelled_queued_leaves_queue(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"max_concurrency\":1}");
    struct rq hold = admitted(&f, "up");
    struct rq w1 = queued(&f, "up", "t", SLUICE_PRIO_STANDARD);
    struct rq w2 = queued(&f, "up", "t", SLUICE_PRIO_STANDARD);
    end(&f, &w1); /* client went away while waiting */
    assert_true(metric(&f, "sluice_admission_cancelled_total") == 1);
    assert_true(
        metric(&f, "sluice_admission_queue_depth{priority=\"standard\"}") == 1);
    end(&f, &hold);
    assert_int_equal(wakes(&w2), 1);
    assert_int_equal(again(&f, &w2), SLUICE_CONTINUE);
    end(&f, &w2);
    assert_true(metric(&f, "sluice_admission_in_flight") == 0);
    assert_true(
        metric(&f, "sluice_admission_queue_depth{priority=\"standard\"}") == 0);
    fx_close(&f);
}

static void test_cancelled_granted_passes_slot_on(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"max_concurrency\":1}");
    struct rq hold = admitted(&f, "up");
    struct rq w1 = queued(&f, "up", "t", SLUICE_PRIO_STANDARD);
    struct rq w2 = queued(&f, "up", "t", SLUICE_PRIO_STANDARD);
    end(&f, &hold);
    assert_int_equal(wakes(&w1), 1);
    end(&f, &w1); /* granted, but gone before it resumed */
    assert_int_equal(wakes(&w2), 1);
    assert_int_equal(again(&f, &w2), SLUICE_CONTINUE);
    end(&f, &w2);
    assert_true(metric(&f, "sluice_admission_in_flight") == 0);
    char buf[1024];
    f.p->status_json(f.self, buf, sizeof buf);
    assert_non_null(strstr(buf, "\"in_flight\":0"));
    fx_close(&f);
}

/* A failed attempt hands its slot on at once: while it waits out its retry
 * backoff, the next request runs; the retry then queues like a new one. */
static void test_failed_attempt_frees_slot_during_backoff(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"max_concurrency\":1}");
    struct rq failing = admitted(&f, "up");
    struct rq other = queued(&f, "up", "t", SLUICE_PRIO_STANDARD);
    sluice_test_req_set_response(failing.r, 500, SLUICE_OUTCOME_HTTP_ERROR);
    assert_int_equal(
        f.p->on_upstream_response(f.self, failing.r, failing.state),
        SLUICE_CONTINUE);
    assert_int_equal(wakes(&other), 1);
    assert_int_equal(again(&f, &other), SLUICE_CONTINUE);
    /* The retry waits for a slot behind the request that took it. */
    assert_int_equal(f.p->on_attempt(f.self, failing.r, failing.state),
                     SLUICE_SUSPEND);
    assert_true(metric(&f, "sluice_admission_in_flight") == 1);
    end(&f, &other);
    assert_int_equal(wakes(&failing), 1);
    sluice_test_req_mark_resumed(failing.r);
    assert_int_equal(f.p->on_attempt(f.self, failing.r, failing.state),
                     SLUICE_CONTINUE);
    /* A failure without any answer (connect error) frees it as well. */
    struct rq next = queued(&f, "up", "t", SLUICE_PRIO_STANDARD);
    sluice_test_req_set_response(failing.r, 0, SLUICE_OUTCOME_CONNECT_ERROR);
    f.p->on_upstream_response(f.self, failing.r, failing.state);
    assert_int_equal(wakes(&next), 1);
    assert_int_equal(again(&f, &next), SLUICE_CONTINUE);
    end(&f, &failing); /* gave up: holds nothing, frees nothing */
    assert_true(metric(&f, "sluice_admission_in_flight") == 1);
    /* A successful answer keeps its slot until the request ends. */
    struct rq waits = queued(&f, "up", "t", SLUICE_PRIO_STANDARD);
    sluice_test_req_set_response(next.r, 200, SLUICE_OUTCOME_OK);
    f.p->on_upstream_response(f.self, next.r, next.state);
    assert_int_equal(wakes(&waits), 0);
    end(&f, &next);
    assert_int_equal(wakes(&waits), 1);
    assert_int_equal(again(&f, &waits), SLUICE_CONTINUE);
    end(&f, &waits);
    assert_true(metric(&f, "sluice_admission_in_flight") == 0);
    fx_close(&f);
}

/* ---- shedding ---- */

static void test_urgent_sheds_batch_when_full(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"max_concurrency\":1,\"max_queue\":2}");
    struct rq hold = admitted(&f, "up");
    struct rq b1 = queued(&f, "up", "t", SLUICE_PRIO_BATCH);
    struct rq b2 = queued(&f, "up", "t", SLUICE_PRIO_BATCH);
    /* Same priority: refused. */
    struct rq b3 = rq_make(&f, "up", "t", SLUICE_PRIO_BATCH);
    assert_int_equal(go(&f, &b3), SLUICE_RESPOND);
    end(&f, &b3);
    struct rq rt = queued(&f, "up", "t", SLUICE_PRIO_REALTIME);
    assert_int_equal(wakes(&b2), 1); /* the one that would go last */
    assert_int_equal(again(&f, &b2), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_status(b2.r), 429);
    end(&f, &b2);
    assert_true(metric(&f, "sluice_admission_shed_total") == 1);
    end(&f, &hold);
    assert_int_equal(again(&f, &rt), SLUICE_CONTINUE);
    end(&f, &rt);
    assert_int_equal(again(&f, &b1), SLUICE_CONTINUE);
    end(&f, &b1);
    assert_true(metric(&f, "sluice_admission_in_flight") == 0);
    fx_close(&f);

    fx_open(&f, "{\"max_concurrency\":1,\"max_queue\":1,"
                "\"shed_lower_priority\":false}");
    hold = admitted(&f, "up");
    b1 = queued(&f, "up", "t", SLUICE_PRIO_BATCH);
    rt = rq_make(&f, "up", "t", SLUICE_PRIO_REALTIME);
    assert_int_equal(go(&f, &rt), SLUICE_RESPOND);
    end(&f, &rt);
    end(&f, &b1);
    end(&f, &hold);
    fx_close(&f);
}

/* ---- fair share when the queue is full ---- */

static void refused_full(struct rq *q)
{
    assert_int_equal(sluice_test_reject_status(q->r), 429);
    assert_non_null(
        strstr(sluice_test_response_body(q->r), "\"code\":\"queue_full\""));
}

/* Drains a queue of `n` waiters served one at a time by `holder`'s slot;
 * every one must be admitted. */
static void drain(struct fx *f, struct rq *holder, struct rq **w, size_t n)
{
    end(f, holder);
    for (size_t served = 0; served < n; served++) {
        struct rq *next = NULL;
        for (size_t i = 0; i < n && !next; i++)
            if (w[i]->r && wakes(w[i]) == 1)
                next = w[i];
        assert_non_null(next);
        assert_int_equal(again(f, next), SLUICE_CONTINUE);
        end(f, next);
    }
    assert_true(metric(f, "sluice_admission_in_flight") == 0);
}

static void test_fair_share_displaces_flooder(void **unused)
{
    struct fx f;
    struct rq big[4], small[3];
    (void)unused;

    /* The big tenant filled the queue (4 of 4): its share with the small
     * tenant is 4 x 1/2 = 2 each. */
    fx_open(&f, "{\"max_concurrency\":1,\"max_queue\":4}");
    struct rq hold = admitted(&f, "up");
    for (int i = 0; i < 4; i++)
        big[i] = queued(&f, "up", "big", SLUICE_PRIO_STANDARD);

    /* Under its share: queued, and big's newest is answered queue_full. */
    small[0] = queued(&f, "up", "small", SLUICE_PRIO_STANDARD);
    assert_int_equal(wakes(&big[3]), 1);
    assert_int_equal(wakes(&big[2]), 0);
    assert_int_equal(again(&f, &big[3]), SLUICE_RESPOND);
    refused_full(&big[3]);
    end(&f, &big[3]);
    small[1] = queued(&f, "up", "small", SLUICE_PRIO_STANDARD);
    assert_int_equal(again(&f, &big[2]), SLUICE_RESPOND);
    refused_full(&big[2]);
    end(&f, &big[2]);
    assert_true(metric(&f, "sluice_admission_displaced_total") == 2);

    /* Both at their share now: neither displaces the other. */
    small[2] = rq_make(&f, "up", "small", SLUICE_PRIO_STANDARD);
    assert_int_equal(go(&f, &small[2]), SLUICE_RESPOND);
    refused_full(&small[2]);
    end(&f, &small[2]);
    struct rq more = rq_make(&f, "up", "big", SLUICE_PRIO_STANDARD);
    assert_int_equal(go(&f, &more), SLUICE_RESPOND);
    refused_full(&more);
    end(&f, &more);
    assert_int_equal(wakes(&big[0]) + wakes(&big[1]) + wakes(&small[0]) +
                         wakes(&small[1]),
                     0);
    assert_true(metric(&f, "sluice_admission_displaced_total") == 2);
    assert_true(metric(&f, "sluice_admission_rejected_total") == 4);
    assert_true(
        metric(&f, "sluice_admission_queue_depth{priority=\"standard\"}") == 4);

    struct rq *w[] = {&big[0], &big[1], &small[0], &small[1]};
    drain(&f, &hold, w, 4);
    fx_close(&f);
}

static void test_fair_share_weights_and_furthest_over(void **unused)
{
    struct fx f;
    struct rq a[4], b[2], c[3];
    (void)unused;

    /* Weights small:3, big:1 over a queue of 4: small may hold 3. */
    fx_open(&f, "{\"max_concurrency\":1,\"max_queue\":4,"
                "\"tenant_weights\":{\"small\":3}}");
    struct rq hold = admitted(&f, "up");
    struct rq big[4], sm[4];
    for (int i = 0; i < 4; i++)
        big[i] = queued(&f, "up", "big", SLUICE_PRIO_STANDARD);
    for (int i = 0; i < 3; i++) {
        sm[i] = queued(&f, "up", "small", SLUICE_PRIO_STANDARD);
        assert_int_equal(wakes(&big[3 - i]), 1); /* newest first */
        assert_int_equal(again(&f, &big[3 - i]), SLUICE_RESPOND);
        end(&f, &big[3 - i]);
    }
    sm[3] = rq_make(&f, "up", "small", SLUICE_PRIO_STANDARD);
    assert_int_equal(go(&f, &sm[3]), SLUICE_RESPOND); /* 4 > 3 */
    end(&f, &sm[3]);
    struct rq *w1[] = {&big[0], &sm[0], &sm[1], &sm[2]};
    drain(&f, &hold, w1, 4);
    fx_close(&f);

    /* Three tenants, queue of 6 held 4:2 by A and B. C's share is 2; the
     * victim is the tenant furthest over its share (A at 4 of 2), never B
     * (at its share), and C stops at its share. */
    fx_open(&f, "{\"max_concurrency\":1,\"max_queue\":6}");
    hold = admitted(&f, "up");
    for (int i = 0; i < 4; i++)
        a[i] = queued(&f, "up", "A", SLUICE_PRIO_STANDARD);
    for (int i = 0; i < 2; i++)
        b[i] = queued(&f, "up", "B", SLUICE_PRIO_STANDARD);
    for (int i = 0; i < 2; i++) {
        c[i] = queued(&f, "up", "C", SLUICE_PRIO_STANDARD);
        assert_int_equal(wakes(&a[3 - i]), 1);
        assert_int_equal(again(&f, &a[3 - i]), SLUICE_RESPOND);
        end(&f, &a[3 - i]);
    }
    assert_int_equal(wakes(&b[0]) + wakes(&b[1]), 0);
    c[2] = rq_make(&f, "up", "C", SLUICE_PRIO_STANDARD);
    assert_int_equal(go(&f, &c[2]), SLUICE_RESPOND);
    end(&f, &c[2]);
    struct rq *w2[] = {&a[0], &a[1], &b[0], &b[1], &c[0], &c[1]};
    drain(&f, &hold, w2, 6);
    fx_close(&f);
}

static void test_fair_share_keeps_priorities_strict(void **unused)
{
    struct fx f;
    struct rq big[3];
    (void)unused;

    /* A queue full of standard requests: a newcomer at batch has no room
     * at its level (the standard ones keep theirs), so it is refused and
     * nobody is displaced. */
    fx_open(&f, "{\"max_concurrency\":1,\"max_queue\":3}");
    struct rq hold = admitted(&f, "up");
    for (int i = 0; i < 3; i++)
        big[i] = queued(&f, "up", "big", SLUICE_PRIO_STANDARD);
    struct rq low = rq_make(&f, "up", "small", SLUICE_PRIO_BATCH);
    assert_int_equal(go(&f, &low), SLUICE_RESPOND);
    refused_full(&low);
    end(&f, &low);
    assert_int_equal(wakes(&big[2]), 0);
    assert_true(metric(&f, "sluice_admission_displaced_total") == 0);

    /* A realtime request sheds big's newest (the less urgent level goes
     * first); the standard level then holds 2 of the 3 places, so a
     * standard newcomer's share is 2 x 1/2 = 1 and big (2) is over it. */
    struct rq rt = rq_make(&f, "up", "other", SLUICE_PRIO_REALTIME);
    assert_int_equal(go(&f, &rt), SLUICE_SUSPEND);
    assert_int_equal(wakes(&big[2]), 1);
    assert_int_equal(again(&f, &big[2]), SLUICE_RESPOND);
    end(&f, &big[2]);
    struct rq sm = queued(&f, "up", "small", SLUICE_PRIO_STANDARD);
    assert_int_equal(wakes(&big[1]), 1);
    assert_int_equal(again(&f, &big[1]), SLUICE_RESPOND);
    end(&f, &big[1]);
    struct rq *w[] = {&rt, &big[0], &sm};
    drain(&f, &hold, w, 3);
    fx_close(&f);
}

/* ---- status, config ---- */

static void test_status_json(void **unused)
{
    struct fx f;
    (void)unused;
    fx_open(&f, "{\"max_concurrency\":1}");
    struct rq hold = admitted(&f, "up");
    struct rq w = queued(&f, "up", "t", SLUICE_PRIO_LOW);
    sluice_test_clock_advance_ms(f.t, 50);
    end(&f, &hold);
    char buf[1024];
    f.p->status_json(f.self, buf, sizeof buf);
    assert_non_null(strstr(buf, "\"upstream\":\"up\""));
    assert_non_null(strstr(buf, "\"in_flight\":1"));
    assert_non_null(strstr(buf, "\"low\":0"));
    assert_non_null(strstr(buf, "\"ewma_hold_ms\":50"));
    assert_int_equal(again(&f, &w), SLUICE_CONTINUE);
    end(&f, &w);
    fx_close(&f);
}

static int create_error(const char *json, char *msg, size_t len)
{
    struct sluice_test_host *t = sluice_test_host_new();
    int rc = sluice_test_open(t, sluice_plugin_v1(), json) ? 0 : -1;

    snprintf(msg, len, "%s", sluice_test_open_error(t));
    sluice_test_host_free(t);
    return rc;
}

static void test_config_errors(void **unused)
{
    char msg[256];
    (void)unused;
    assert_int_equal(
        create_error("{\"queue_full_status\":500}", msg, sizeof msg), -1);
    assert_int_equal(
        create_error("{\"tenant_weights\":{\"a\":0}}", msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "tenant_weights.a"));
    assert_int_equal(create_error("{\"tenant_weights\":[1]}", msg, sizeof msg),
                     -1);
    assert_int_equal(create_error("{\"upstream_limits\":{\"x\":{\"cap\":1}}}",
                                  msg, sizeof msg),
                     -1);
    assert_non_null(strstr(msg, "unknown key"));
    assert_int_equal(
        create_error("{\"upstream_limits\":{\"x\":{\"max_concurrency\":0}}}",
                     msg, sizeof msg),
        -1);
    assert_int_equal(create_error("{\"max_concurrency\":0}", msg, sizeof msg),
                     -1);
    assert_int_equal(
        create_error("{\"upstream_limits\":{\"openai\":{\"max_queue\":"
                     "2000000}}}",
                     msg, sizeof msg),
        -1);
    assert_string_equal(msg, "config.upstream_limits.openai.max_queue: must "
                             "be <= 1000000");
    assert_int_equal(create_error("{\"queue_full_status\":503,"
                                  "\"tenant_weights\":{\"a\":2.5}}",
                                  msg, sizeof msg),
                     0);
}

/* ---- threads (run under TSan) ---- */

#define STRESS_CAP 1

struct stress {
    struct fx *f;
    _Atomic int active[2];
    _Atomic int over_cap;
};

struct stress_worker {
    struct stress *s;
    unsigned seed;
};

static unsigned next_rand(unsigned *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void *stress_run(void *arg)
{
    struct stress_worker *w = arg;
    struct fx *f = w->s->f;
    static const char *const tenants[] = {"A", "B", "C"};
    static const char *const ups[] = {"u0", "u1"};

    for (int i = 0; i < 2000; i++) {
        unsigned x = next_rand(&w->seed);
        int up = x & 1;
        struct rq q = rq_make(f, ups[up], tenants[(x >> 1) % 3],
                              (enum sluice_priority)((x >> 3) % 5));
        enum sluice_action a = go(f, &q);
        if (a == SLUICE_SUSPEND) {
            if ((x >> 6) % 7 == 0) { /* the client gives up */
                end(f, &q);
                continue;
            }
            while (wakes(&q) == 0)
                sched_yield();
            a = again(f, &q);
        }
        if (a == SLUICE_CONTINUE) {
            int now = atomic_fetch_add(&w->s->active[up], 1) + 1;
            if (now > STRESS_CAP)
                atomic_fetch_add(&w->s->over_cap, 1);
            if ((x >> 9) % 4 == 0)
                sched_yield(); /* hold the slot a little */
            atomic_fetch_sub(&w->s->active[up], 1);
        }
        end(f, &q);
        if (i % 200 == 0) {
            char buf[2048];
            f->p->status_json(f->self, buf, sizeof buf);
        }
    }
    return NULL;
}

static void test_threads(void **unused)
{
    enum { THREADS = 6 };
    struct fx f;
    struct stress s = {.f = &f};
    struct stress_worker w[THREADS];
    pthread_t th[THREADS];
    (void)unused;

    fx_open(&f, "{\"max_concurrency\":1,\"max_queue\":2,"
                "\"tenant_weights\":{\"A\":2}}");
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct stress_worker){&s, 2654435761u * (unsigned)(i + 1)};
        pthread_create(&th[i], NULL, stress_run, &w[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&s.over_cap), 0);
    print_message("queued %.0f shed %.0f rejected %.0f cancelled %.0f\n",
                  metric(&f, "sluice_admission_queued_total"),
                  metric(&f, "sluice_admission_shed_total"),
                  metric(&f, "sluice_admission_rejected_total"),
                  metric(&f, "sluice_admission_cancelled_total"));
    assert_true(metric(&f, "sluice_admission_queued_total") > 0);
    assert_true(metric(&f, "sluice_admission_rejected_total") > 0);
    assert_true(metric(&f, "sluice_admission_in_flight") == 0);
    static const char *const names[] = {"critical", "realtime", "standard",
                                        "batch", "low"};
    for (int i = 0; i < 5; i++) {
        char name[96];
        snprintf(name, sizeof name,
                 "sluice_admission_queue_depth{priority=\"%s\"}", names[i]);
        assert_true(metric(&f, name) == 0);
    }
    char buf[2048];
    f.p->status_json(f.self, buf, sizeof buf);
    assert_null(strstr(buf, "\"in_flight\":1"));
    fx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_respected),
        cmocka_unit_test(test_upstreams_are_separate),
        cmocka_unit_test(test_realtime_overtakes_batch),
        cmocka_unit_test(test_wfq_lone_tenant_not_starved),
        cmocka_unit_test(test_wfq_weights),
        cmocka_unit_test(test_wfq_remove_keeps_order),
        cmocka_unit_test(test_wfq_fair_victim_exact),
        cmocka_unit_test(test_lone_tenant_through_hooks),
        cmocka_unit_test(test_queue_full_estimated_wait),
        cmocka_unit_test(test_queue_full_503_without_sample),
        cmocka_unit_test(test_timeout_504),
        cmocka_unit_test(test_granted_then_timer_still_admits),
        cmocka_unit_test(test_cancelled_queued_leaves_queue),
        cmocka_unit_test(test_cancelled_granted_passes_slot_on),
        cmocka_unit_test(test_failed_attempt_frees_slot_during_backoff),
        cmocka_unit_test(test_urgent_sheds_batch_when_full),
        cmocka_unit_test(test_fair_share_displaces_flooder),
        cmocka_unit_test(test_fair_share_weights_and_furthest_over),
        cmocka_unit_test(test_fair_share_keeps_priorities_strict),
        cmocka_unit_test(test_status_json),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
