/* router unit tests on the SDK's fake host (fake clock, seeded random). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sluice/testing.h>

#include "router.h"
#include "router_split.h"

extern const struct sluice_plugin *sluice_plugin_v1(void);

#define USERS 100000
#define BODY                                                                   \
    "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"

static const char *split_cfg(int stable, int canary)
{
    static char buf[512];
    snprintf(
        buf, sizeof buf,
        "{\"splits\":{\"smart\":{\"by\":\"user\",\"variants\":["
        "{\"name\":\"stable\",\"model\":\"gpt-4o\",\"weight\":%d},"
        "{\"name\":\"canary\",\"model\":\"gpt-4o-next\",\"weight\":%d}]}}}",
        stable, canary);
    return buf;
}

struct fixture {
    struct sluice_test_host *t;
    const struct sluice_plugin *p;
    void *self;
    struct router_state st;
};

static void open_router(struct fixture *f, const char *cfg)
{
    memset(f, 0, sizeof *f);
    f->t = sluice_test_host_new();
    f->p = sluice_plugin_v1();
    f->self = sluice_test_open(f->t, f->p, cfg);
    if (!f->self)
        fail_msg("open: %s", sluice_test_open_error(f->t));
}

/* Runs on_request for one request; the caller reads it, then done(). */
static struct sluice_req *send(struct fixture *f, const char *model,
                               const char *user, const char *tier)
{
    char body[256];
    snprintf(body, sizeof body, BODY, model);
    struct sluice_req *r = sluice_test_req_new(f->t, body);
    sluice_test_req_set_identity(r, "acme", user, tier, "");
    memset(&f->st, 0, sizeof f->st);
    return r;
}

/* A request with the given body and tier. */
static struct sluice_req *send_body(struct fixture *f, const char *body,
                                    const char *tier)
{
    struct sluice_req *r = sluice_test_req_new(f->t, body);
    sluice_test_req_set_identity(r, "t", "u", tier, "");
    memset(&f->st, 0, sizeof f->st);
    return r;
}

static enum sluice_action run(struct fixture *f, struct sluice_req *r)
{
    return f->p->on_request(f->self, r, &f->st);
}

static void done(struct fixture *f, struct sluice_req *r)
{
    f->p->on_log(f->self, r, &f->st);
    f->p->on_cleanup(f->self, r, &f->st);
    sluice_test_req_free(r);
}

static const char *target(struct fixture *f, struct sluice_req *r)
{
    static char buf[128];
    struct sluice_str m = sluice_test_host(f->t)->req_target_model(r);
    snprintf(buf, sizeof buf, "%.*s", (int)m.len, m.ptr ? m.ptr : "");
    return buf;
}

static const char *upstream(struct fixture *f, struct sluice_req *r)
{
    static char buf[64];
    struct sluice_str u = sluice_test_host(f->t)->req_upstream(r);
    snprintf(buf, sizeof buf, "%.*s", (int)u.len, u.ptr ? u.ptr : "");
    return buf;
}

/* canary[i]: user i landed on the canary. */
static void assign(const char *cfg, bool *canary)
{
    struct fixture f;
    open_router(&f, cfg);
    for (int i = 0; i < USERS; i++) {
        char user[32];
        snprintf(user, sizeof user, "user-%d", i);
        struct sluice_req *r = send(&f, "smart", user, "");
        assert_int_equal(run(&f, r), SLUICE_CONTINUE);
        canary[i] = strcmp(target(&f, r), "gpt-4o-next") == 0;
        if (!canary[i])
            assert_string_equal(target(&f, r), "gpt-4o");
        done(&f, r);
    }
    sluice_test_host_free(f.t);
}

static void split_within_one_percent_and_sticky(void **unused)
{
    (void)unused;
    bool *a = calloc(USERS, 1), *b = calloc(USERS, 1);
    assign(split_cfg(90, 10), a);
    assign(split_cfg(90, 10), b); /* a restart: a fresh instance */
    size_t n = 0;
    for (int i = 0; i < USERS; i++) {
        assert_int_equal(a[i], b[i]);
        n += a[i];
    }
    double share = (double)n / USERS;
    assert_true(fabs(share - 0.10) <= 0.01);
    free(a);
    free(b);
}

static void moving_weight_moves_only_the_slice(void **unused)
{
    (void)unused;
    bool *before = calloc(USERS, 1), *after = calloc(USERS, 1);
    assign(split_cfg(90, 10), before);
    assign(split_cfg(80, 20), after);
    size_t moved = 0;
    for (int i = 0; i < USERS; i++) {
        assert_false(before[i] && !after[i]); /* no canary user goes back */
        moved += !before[i] && after[i];
    }
    /* exactly the users in [0.8, 0.9) of the hash move: about 10% */
    assert_true(fabs((double)moved / USERS - 0.10) <= 0.01);
    /* past half: the canary grows into stable's slice, nobody goes back */
    assign(split_cfg(40, 60), after);
    moved = 0;
    for (int i = 0; i < USERS; i++) {
        assert_false(before[i] && !after[i]);
        moved += !before[i] && after[i];
    }
    assert_true(fabs((double)moved / USERS - 0.50) <= 0.01);
    free(before);
    free(after);
}

static void split_pick_slices(void **unused)
{
    (void)unused;
    double w[] = {1, 0, 3};
    assert_int_equal(router_split_pick(w, 3, 0.0), 0);
    assert_int_equal(router_split_pick(w, 3, 0.2499), 0);
    assert_int_equal(router_split_pick(w, 3, 0.25), 2);
    assert_int_equal(router_split_pick(w, 3, 0.9999999), 2);
    double z[] = {0, 0};
    assert_int_equal(router_split_pick(z, 2, 0.5), -1);
}

static void aliases_and_priority_models(void **unused)
{
    (void)unused;
    struct fixture f;
    open_router(&f, "{\"aliases\":{\"fast\":\"gpt-4o-mini\",\"smart\":"
                    "\"gpt-4o\",\"quick\":\"fast\"},"
                    "\"priority_models\":{\"critical\":\"smart\","
                    "\"batch\":\"fast\"}}");
    struct sluice_req *r = send(&f, "quick", "u", "");
    run(&f, r);
    assert_string_equal(target(&f, r), "gpt-4o-mini");
    done(&f, r);

    r = send(&f, "auto", "u", "");
    sluice_test_host(f.t)->set_priority(r, SLUICE_PRIO_CRITICAL);
    run(&f, r);
    assert_string_equal(target(&f, r), "gpt-4o");
    done(&f, r);

    r = send(&f, "auto", "u", "");
    sluice_test_host(f.t)->set_priority(r, SLUICE_PRIO_BATCH);
    run(&f, r);
    assert_string_equal(target(&f, r), "gpt-4o-mini");
    done(&f, r);

    r = send(&f, "auto", "u", ""); /* standard: no entry, unchanged */
    run(&f, r);
    assert_string_equal(target(&f, r), "auto");
    done(&f, r);

    r = send(&f, "gpt-4.1", "u", ""); /* not an alias: unchanged */
    run(&f, r);
    assert_string_equal(target(&f, r), "gpt-4.1");
    done(&f, r);
    sluice_test_host_free(f.t);
}

static struct router_pool *first_pool(struct fixture *f)
{
    return &((struct router *)f->self)->pools[0];
}

static const char *POOL3 =
    "{\"pools\":{\"m\":{\"strategy\":\"p2c\",\"upstreams\":["
    "{\"name\":\"slow\"},{\"name\":\"fast\"},{\"name\":\"mid\"}]}}}";

static void p2c_prefers_the_faster_upstream(void **unused)
{
    (void)unused;
    struct fixture f;
    open_router(&f, POOL3);
    struct router_pool *p = first_pool(&f);
    router_member_observe(&p->members[0], 300000000, 0.3); /* 300 ms */
    router_member_observe(&p->members[1], 10000000, 0.3);  /* 10 ms */
    router_member_observe(&p->members[2], 50000000, 0.3);  /* 50 ms */
    int count[3] = {0};
    for (int i = 0; i < 3000; i++) {
        struct sluice_req *r = send(&f, "m", "u", "");
        run(&f, r);
        const char *u = upstream(&f, r);
        count[strcmp(u, "slow") == 0 ? 0 : strcmp(u, "fast") == 0 ? 1 : 2]++;
        done(&f, r);
    }
    /* every pair holding "fast" picks it (2 of 3 pairs), "slow" never wins */
    assert_int_equal(count[0], 0);
    assert_true(count[1] > 1800 && count[1] < 2200);
    assert_int_equal(count[0] + count[1] + count[2], 3000);
    sluice_test_host_free(f.t);
}

static void p2c_counts_requests_in_flight(void **unused)
{
    (void)unused;
    struct fixture f;
    open_router(&f, "{\"pools\":{\"m\":{\"upstreams\":[{\"name\":\"a\"},"
                    "{\"name\":\"b\"}]}}}");
    struct router_pool *p = first_pool(&f);
    router_member_observe(&p->members[0], 10000000, 0.3); /* a: 10 ms */
    router_member_observe(&p->members[1], 25000000, 0.3); /* b: 25 ms */
    /* cost = EWMA x (in flight + 1): a 10, 20, then 30 > b's 25, so the
     * third goes to b; the fourth compares a's 30 with b's 50 */
    struct router_state held[4];
    struct sluice_req *rs[4];
    for (int i = 0; i < 4; i++) {
        rs[i] = send(&f, "m", "u", "");
        run(&f, rs[i]);
        held[i] = f.st;
    }
    assert_string_equal(upstream(&f, rs[0]), "a");
    assert_string_equal(upstream(&f, rs[1]), "a");
    assert_string_equal(upstream(&f, rs[2]), "b");
    assert_string_equal(upstream(&f, rs[3]), "a");
    assert_int_equal(atomic_load(&p->members[0].inflight), 3);
    for (int i = 0; i < 4; i++) {
        f.st = held[i];
        done(&f, rs[i]);
    }
    assert_int_equal(atomic_load(&p->members[0].inflight), 0);
    assert_int_equal(atomic_load(&p->members[1].inflight), 0);
    sluice_test_host_free(f.t);
}

static void retry_elsewhere_moves_the_in_flight_count(void **unused)
{
    (void)unused;
    struct fixture f;
    open_router(&f, "{\"pools\":{\"m\":{\"strategy\":\"least_inflight\","
                    "\"upstreams\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}}");
    struct router_pool *p = first_pool(&f);
    struct sluice_req *r = send(&f, "m", "u", "");
    run(&f, r);
    int first = strcmp(upstream(&f, r), "a") == 0 ? 0 : 1;
    assert_int_equal(atomic_load(&p->members[first].inflight), 1);
    sluice_test_req_set_response(r, 503, SLUICE_OUTCOME_HTTP_ERROR);
    sluice_test_req_set_upstream(r, first ? "a" : "b"); /* the core's retry */
    assert_int_equal(f.p->on_attempt(f.self, r, &f.st), SLUICE_CONTINUE);
    assert_int_equal(atomic_load(&p->members[first].inflight), 0);
    assert_int_equal(atomic_load(&p->members[!first].inflight), 1);
    sluice_test_req_set_upstream(r, "elsewhere"); /* out of the pool */
    f.p->on_attempt(f.self, r, &f.st);
    assert_int_equal(atomic_load(&p->members[!first].inflight), 0);
    done(&f, r);
    assert_int_equal(atomic_load(&p->members[0].inflight), 0);
    assert_int_equal(atomic_load(&p->members[1].inflight), 0);
    sluice_test_host_free(f.t);
}

static void ewma_moves_towards_new_latency(void **unused)
{
    (void)unused;
    struct router_member m = {.name = "x"};
    router_member_observe(&m, 100, 0.5);
    assert_int_equal(atomic_load(&m.ewma_ns), 100);
    router_member_observe(&m, 300, 0.5);
    assert_int_equal(atomic_load(&m.ewma_ns), 200);
}

static void open_breaker_is_skipped(void **unused)
{
    (void)unused;
    struct fixture f;
    open_router(&f, "{\"pools\":{\"m\":{\"strategy\":\"weighted\","
                    "\"upstreams\":[{\"name\":\"a\",\"weight\":9},"
                    "{\"name\":\"b\",\"weight\":1}]}}}");
    const struct sluice_host *h = sluice_test_host(f.t);
    h->health_set(h, "breaker.a.open", 1);
    for (int i = 0; i < 200; i++) {
        struct sluice_req *r = send(&f, "m", "u", "");
        run(&f, r);
        assert_string_equal(upstream(&f, r), "b");
        done(&f, r);
    }
    assert_true(
        sluice_test_metric(
            f.t, "sluice_router_upstream_skipped_total{upstream=\"a\"}") ==
        200);
    /* per upstream and model (breaker scope upstream_model) too */
    h->health_set(h, "breaker.a.open", 0);
    h->health_set(h, "breaker.b/m.open", 1);
    struct sluice_req *r = send(&f, "m", "u", "");
    run(&f, r);
    assert_string_equal(upstream(&f, r), "a");
    done(&f, r);
    sluice_test_host_free(f.t);
}

static void weighted_follows_weights(void **unused)
{
    (void)unused;
    struct fixture f;
    open_router(&f, "{\"pools\":{\"m\":{\"strategy\":\"weighted\","
                    "\"upstreams\":[{\"name\":\"a\",\"weight\":3},"
                    "{\"name\":\"b\",\"weight\":1}]}}}");
    int a = 0;
    for (int i = 0; i < 4000; i++) {
        struct sluice_req *r = send(&f, "m", "u", "");
        run(&f, r);
        a += strcmp(upstream(&f, r), "a") == 0;
        done(&f, r);
    }
    assert_true(a > 2850 && a < 3150); /* 75% +- 3.75 points */
    sluice_test_host_free(f.t);
}

static void least_inflight_takes_the_idle_one(void **unused)
{
    (void)unused;
    struct fixture f;
    open_router(&f, "{\"pools\":{\"m\":{\"strategy\":\"least_inflight\","
                    "\"upstreams\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}}");
    struct sluice_req *r1 = send(&f, "m", "u", "");
    run(&f, r1);
    struct router_state s1 = f.st;
    char first[64];
    snprintf(first, sizeof first, "%s", upstream(&f, r1));
    for (int i = 0; i < 10; i++) { /* while r1 is held, the other one */
        struct sluice_req *r = send(&f, "m", "u", "");
        run(&f, r);
        assert_string_not_equal(upstream(&f, r), first);
        done(&f, r);
    }
    f.st = s1;
    done(&f, r1);
    sluice_test_host_free(f.t);
}

static void policy_vars_override(void **unused)
{
    (void)unused;
    struct fixture f;
    open_router(&f,
                "{\"aliases\":{\"fast\":\"gpt-4o-mini\"},"
                "\"splits\":{\"smart\":{\"variants\":["
                "{\"name\":\"stable\",\"model\":\"gpt-4o\",\"weight\":100},"
                "{\"name\":\"canary\",\"model\":\"gpt-4o-next\","
                "\"weight\":0}]}},"
                "\"pools\":{\"gpt-4o\":{\"upstreams\":[{\"name\":\"a\"}]}}}");
    const struct sluice_host *h = sluice_test_host(f.t);
    struct sluice_req *r = send(&f, "smart", "u", "");
    h->var_set(r, "router.variant", (struct sluice_str){"canary", 6});
    run(&f, r);
    assert_string_equal(target(&f, r), "gpt-4o-next");
    done(&f, r);

    r = send(&f, "smart", "u", "");
    h->var_set(r, "router.upstream", (struct sluice_str){"backup", 6});
    run(&f, r);
    assert_string_equal(target(&f, r), "gpt-4o");
    assert_string_equal(upstream(&f, r), "backup");
    done(&f, r);

    r = send(&f, "fast", "u", "");
    h->var_set(r, "router.skip", (struct sluice_str){"1", 1});
    run(&f, r);
    assert_string_equal(target(&f, r), "fast");
    done(&f, r);
    sluice_test_host_free(f.t);
}

static const char *BUDGETS =
    "{\"token_budgets\":{\"free\":{\"max_tokens\":256,"
    "\"max_input_tokens\":50},\"pro\":{\"max_tokens\":4096}}}";

static void token_budget_clamps_max_tokens(void **unused)
{
    (void)unused;
    struct fixture f;
    open_router(&f, BUDGETS);
    struct sluice_req *r =
        send_body(&f,
                  "{\"model\":\"m\",\"max_tokens\":1000,\"messages\":[{"
                  "\"role\":\"user\",\"content\":\"hi\"}]}",
                  "free");
    assert_int_equal(run(&f, r), SLUICE_CONTINUE);
    assert_int_equal(sluice_test_upstream_max_tokens(r), 256);
    assert_int_equal(sluice_test_host(f.t)->req_max_tokens(r), 256);
    done(&f, r);

    r = send(&f, "m", "u", "free"); /* no max_tokens: the ceiling is sent */
    run(&f, r);
    assert_int_equal(sluice_test_upstream_max_tokens(r), 256);
    done(&f, r);

    r = send_body(&f,
                  "{\"model\":\"m\",\"max_tokens\":100,\"messages\":[{\"role\":"
                  "\"user\",\"content\":\"hi\"}]}",
                  "free");
    run(&f, r); /* under the ceiling: untouched */
    assert_int_equal(sluice_test_upstream_max_tokens(r), 0);
    done(&f, r);

    r = send_body(&f,
                  "{\"model\":\"m\",\"max_tokens\":1000,\"messages\":[{"
                  "\"role\":\"user\",\"content\":\"hi\"}]}",
                  "pro");
    sluice_test_host(f.t)->var_set(r, "router.max_tokens",
                                   (struct sluice_str){"64", 2});
    run(&f, r); /* the policy lowers the ceiling (ladder level 1) */
    assert_int_equal(sluice_test_upstream_max_tokens(r), 64);
    done(&f, r);
    r = send(&f, "m", "u", "free"); /* embeddings have no answer length */
    sluice_test_req_set_endpoint(r, "/v1/embeddings");
    run(&f, r);
    assert_int_equal(sluice_test_upstream_max_tokens(r), 0);
    done(&f, r);
    assert_true(
        sluice_test_metric(f.t, "sluice_router_max_tokens_clamped_total") == 3);
    sluice_test_host_free(f.t);
}

static void token_budget_refuses_big_inputs(void **unused)
{
    (void)unused;
    struct fixture f;
    open_router(&f, BUDGETS);
    char body[2048];
    char text[1500];
    memset(text, 'a', sizeof text - 1);
    for (size_t i = 5; i < sizeof text - 1; i += 6)
        text[i] = ' ';
    text[sizeof text - 1] = '\0';
    snprintf(body, sizeof body,
             "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
             "\"%s\"}]}",
             text);
    struct sluice_req *r = send_body(&f, body, "free");
    uint64_t est = sluice_test_host(f.t)->req_input_tokens(r);
    assert_true(est > 50);
    assert_int_equal(run(&f, r), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_status(r), 400);
    char want[64];
    snprintf(want, sizeof want, "estimated at %llu tokens",
             (unsigned long long)est);
    assert_non_null(strstr(sluice_test_reject_message(r), want));
    assert_non_null(strstr(sluice_test_reject_message(r), "'free' allows 50"));
    done(&f, r);

    r = send_body(&f, body, "pro"); /* pro has no input limit */
    assert_int_equal(run(&f, r), SLUICE_CONTINUE);
    done(&f, r);
    sluice_test_host_free(f.t);
}

static void ladder_levels(void **unused)
{
    (void)unused;
    struct fixture f;
    open_router(&f, "{\"degraded_retry_after_s\":20,\"static_answers\":{"
                    "\"billing\":\"See the billing page.\",\"default\":"
                    "\"We are busy, try later.\"}}");
    const struct sluice_host *h = sluice_test_host(f.t);
    struct sluice_req *r = send(&f, "m", "u", "");
    h->var_set(r, "sluice.degrade", (struct sluice_str){"1", 1});
    assert_int_equal(run(&f, r), SLUICE_CONTINUE);
    done(&f, r);

    r = send(&f, "m", "u", "");
    h->var_set(r, "sluice.degrade", (struct sluice_str){"2", 1});
    assert_int_equal(run(&f, r), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_status(r), 503);
    assert_int_equal(sluice_test_reject_retry_after_ms(r), 20000);
    done(&f, r);

    r = send(&f, "m", "u", "");
    h->var_set(r, "sluice.degrade", (struct sluice_str){"3", 1});
    h->var_set(r, "ladder.category", (struct sluice_str){"billing", 7});
    assert_int_equal(run(&f, r), SLUICE_RESPOND);
    assert_non_null(
        strstr(sluice_test_response_body(r), "See the billing page."));
    assert_non_null(strstr(sluice_test_response_body(r), "chat.completion"));
    done(&f, r);

    r = send(&f, "m", "u", "");
    h->var_set(r, "sluice.degrade", (struct sluice_str){"3", 1});
    assert_int_equal(run(&f, r), SLUICE_RESPOND);
    assert_non_null(strstr(sluice_test_response_body(r), "We are busy"));
    done(&f, r);

    r = send(&f, "m", "u", "");
    h->var_set(r, "sluice.degrade", (struct sluice_str){"4", 1});
    assert_int_equal(run(&f, r), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_status(r), 503);
    assert_non_null(strstr(sluice_test_response_body(r), "maintenance"));
    done(&f, r);
    sluice_test_host_free(f.t);
}

static void variant_metrics(void **unused)
{
    (void)unused;
    struct fixture f;
    open_router(&f, split_cfg(0, 100));
    struct sluice_req *r = send(&f, "smart", "u", "");
    run(&f, r);
    sluice_test_req_set_response(r, 200, SLUICE_OUTCOME_OK);
    sluice_test_req_set_usage(r, 12, 30, 0);
    done(&f, r);
    r = send(&f, "smart", "u", "");
    run(&f, r);
    sluice_test_req_set_response(r, 502, SLUICE_OUTCOME_HTTP_ERROR);
    done(&f, r);
    const char *l = "{split=\"smart\",variant=\"canary\"}";
    char name[160];
    snprintf(name, sizeof name, "sluice_router_variant_requests_total%s", l);
    assert_true(sluice_test_metric(f.t, name) == 2);
    snprintf(name, sizeof name, "sluice_router_variant_errors_total%s", l);
    assert_true(sluice_test_metric(f.t, name) == 1);
    assert_true(sluice_test_metric(
                    f.t, "sluice_router_variant_completion_tokens_total{split="
                         "\"smart\",variant=\"canary\"}") == 30);
    sluice_test_host_free(f.t);
}

/* One finished request whose single attempt got `status`. */
static void finish_with(struct fixture *f, int status)
{
    struct sluice_req *r = send(f, "m", "u", "");
    run(f, r);
    sluice_test_req_add_attempt(r, "a", "m", status,
                                status < 400 ? SLUICE_OUTCOME_OK
                                             : SLUICE_OUTCOME_HTTP_ERROR);
    done(f, r);
}

static void health_for_the_ladder(void **unused)
{
    (void)unused;
    struct fixture f;
    open_router(&f, "{\"rate_window_s\":60}");
    struct sluice_req *r = send(&f, "m", "u", "");
    run(&f, r);
    assert_true(sluice_test_health(f.t, "router.in_flight") == 1);
    done(&f, r);
    assert_true(sluice_test_health(f.t, "router.in_flight") == 0);

    for (int i = 0; i < 3; i++)
        finish_with(&f, 200);
    finish_with(&f, 429);
    assert_true(sluice_test_health(f.t, "router.rate_429") == 0.25);
    sluice_test_clock_advance_ms(f.t, 30000); /* still in the window */
    finish_with(&f, 429);
    assert_true(sluice_test_health(f.t, "router.rate_429") == 0.4);
    sluice_test_clock_advance_ms(f.t, 45000); /* the first four are out */
    finish_with(&f, 200);
    assert_true(sluice_test_health(f.t, "router.rate_429") == 0.5);
    sluice_test_host_free(f.t);
}

static void bad_config_is_refused(void **unused)
{
    (void)unused;
    struct sluice_test_host *t = sluice_test_host_new();
    const struct sluice_plugin *p = sluice_plugin_v1();
    assert_null(sluice_test_open(
        t, p,
        "{\"pools\":{\"m\":{\"strategy\":\"random\",\"upstreams\":[]}}}"));
    assert_null(
        sluice_test_open(t, p,
                         "{\"splits\":{\"s\":{\"variants\":[{\"weight\":-1,"
                         "\"name\":\"x\"}]}}}"));
    assert_null(sluice_test_open(
        t, p, "{\"splits\":{\"s\":{\"variants\":[{\"name\":\"x\"}]}}}"));
    assert_null(sluice_test_open(t, p, "{\"budget_by\":\"teir\"}"));
    assert_non_null(strstr(sluice_test_open_error(t), "budget_by"));
    sluice_test_host_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_within_one_percent_and_sticky),
        cmocka_unit_test(moving_weight_moves_only_the_slice),
        cmocka_unit_test(split_pick_slices),
        cmocka_unit_test(aliases_and_priority_models),
        cmocka_unit_test(p2c_prefers_the_faster_upstream),
        cmocka_unit_test(p2c_counts_requests_in_flight),
        cmocka_unit_test(ewma_moves_towards_new_latency),
        cmocka_unit_test(retry_elsewhere_moves_the_in_flight_count),
        cmocka_unit_test(open_breaker_is_skipped),
        cmocka_unit_test(weighted_follows_weights),
        cmocka_unit_test(least_inflight_takes_the_idle_one),
        cmocka_unit_test(policy_vars_override),
        cmocka_unit_test(token_budget_clamps_max_tokens),
        cmocka_unit_test(token_budget_refuses_big_inputs),
        cmocka_unit_test(ladder_levels),
        cmocka_unit_test(variant_metrics),
        cmocka_unit_test(health_for_the_ladder),
        cmocka_unit_test(bad_config_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
