/* cost_tracker unit tests: integer price arithmetic, budgets (reserve,
 * settle, thresholds once, windows), and the plugin on the fake host
 * (fake wall clock, no sleeps). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cost_tracker.h"
#include "ct_money.h"
#include "sluice/testing.h"

const struct sluice_plugin *sluice_plugin_v1(void);

/* 2026-12-07T12:00:00Z */
#define NOON_MS 1796644800000ll
#define DAY_MS 86400000ll

/* ---- money and prices ---- */

static void test_decimal_parsing(void **state)
{
    uint64_t v;
    (void)state;
    assert_true(ct_parse_decimal("2.50", 4, 6, &v));
    assert_int_equal(v, 2500000);
    assert_true(ct_parse_decimal("0.075", 5, 6, &v));
    assert_int_equal(v, 75000);
    assert_true(ct_parse_decimal("10", 2, 6, &v));
    assert_int_equal(v, 10000000);
    assert_true(ct_parse_decimal("25.5", 4, 12, &v));
    assert_int_equal(v, 25500000000000ull);
    assert_false(ct_parse_decimal("0.0000001", 9, 6, &v)); /* 7 decimals */
    assert_false(ct_parse_decimal("-1", 2, 6, &v));
    assert_false(ct_parse_decimal("1e3", 3, 6, &v));
    assert_false(ct_parse_decimal(".", 1, 6, &v));
    assert_false(ct_parse_decimal("99999999999999999999", 20, 6, &v));
}

static void test_usd_formatting(void **state)
{
    char b[32];
    (void)state;
    ct_format_usd(0, b, sizeof b);
    assert_string_equal(b, "0");
    ct_format_usd(3150000, b, sizeof b);
    assert_string_equal(b, "0.00000315");
    ct_format_usd(CT_PICO_PER_USD * 12 + 500000000000ull, b, sizeof b);
    assert_string_equal(b, "12.5");
    ct_format_usd(1, b, sizeof b);
    assert_string_equal(b, "0.000000000001");
}

static struct ct_prices shipped(void)
{
    struct ct_prices t = {0};
    char err[200];
    assert_int_equal(
        ct_prices_merge(&t, ct_default_prices, true, err, sizeof err), 0);
    return t;
}

static void test_shipped_table_and_lookup(void **state)
{
    struct ct_prices t = shipped();
    (void)state;
    assert_int_equal(t.batch_discount_percent, 50);
    const struct ct_price *p = ct_prices_find(&t, "gpt-4o", 6);
    assert_non_null(p);
    assert_int_equal(p->input, 2500000);
    assert_int_equal(p->cached_input, 1250000);
    assert_int_equal(p->output, 10000000);
    /* Dated versions take the longest prefix at a '-'. */
    const char *m = "gpt-4o-mini-2024-07-18";
    p = ct_prices_find(&t, m, strlen(m));
    assert_non_null(p);
    assert_int_equal(p->input, 150000);
    m = "gpt-4o-2024-08-06";
    assert_int_equal(ct_prices_find(&t, m, strlen(m))->input, 2500000);
    /* A variant is not its base model: unknown, not silently priced. */
    m = "gpt-4o-audio-preview";
    assert_null(ct_prices_find(&t, m, strlen(m)));
    m = "o3-mini-2025-01-31";
    assert_int_equal(ct_prices_find(&t, m, strlen(m))->input, 1100000);
    /* Not a prefix at a word boundary: unknown. */
    assert_null(ct_prices_find(&t, "gpt-4ox", 7));
    assert_null(ct_prices_find(&t, "mystery", 7));
    /* No cached price: cached input is billed as input. */
    p = ct_prices_find(&t, "gpt-3.5-turbo", 13);
    assert_int_equal(p->cached_input, p->input);
    ct_prices_free(&t);
}

static void test_config_prices_override_and_errors(void **state)
{
    struct ct_prices t = shipped();
    char err[200];
    (void)state;
    assert_int_equal(ct_prices_merge(&t,
                                     "{\"gpt-4o\":{\"input\":\"1\",\"output\":"
                                     "2},\"mine\":{\"input\":0.5,\"output\":"
                                     "\"0\"}}",
                                     false, err, sizeof err),
                     0);
    assert_int_equal(ct_prices_find(&t, "gpt-4o", 6)->input, 1000000);
    assert_int_equal(ct_prices_find(&t, "gpt-4o", 6)->output, 2000000);
    assert_int_equal(ct_prices_find(&t, "mine", 4)->input, 500000);
    assert_int_equal(ct_prices_merge(&t, "{\"x\":{\"input\":\"-1\"}}", false,
                                     err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "prices.x.input"));
    assert_int_equal(ct_prices_merge(&t,
                                     "{\"x\":{\"input\":1,\"output\":1,"
                                     "\"outptu\":1}}",
                                     false, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "outptu"));
    ct_prices_free(&t);
}

/* A million small requests sum exactly: no float drift. */
static void test_cost_sums_without_drift(void **state)
{
    struct ct_prices t = shipped();
    const struct ct_price *p = ct_prices_find(&t, "gpt-4o-mini", 11);
    uint64_t sum = 0;
    double fsum = 0;
    (void)state;
    for (int i = 0; i < 1000000; i++) {
        sum += ct_cost(p, 7, 0, 3, 0);
        fsum += 7 * 0.15 / 1e6 + 3 * 0.60 / 1e6;
    }
    /* 1M x (7 x 0.15 + 3 x 0.60) / 1M = 2.85 USD exactly. */
    assert_int_equal(sum, 2850000000000ull);
    char b[32];
    ct_format_usd(sum, b, sizeof b);
    assert_string_equal(b, "2.85");
    assert_true(fsum != 2.85); /* what a double accumulates instead */
    /* Cached tokens at the cached price, the rest at input. */
    const struct ct_price *o = ct_prices_find(&t, "gpt-4o", 6);
    assert_int_equal(ct_cost(o, 1000, 400, 100, 0),
                     600 * 2500000ull + 400 * 1250000ull + 100 * 10000000ull);
    /* Batch discount 50%. */
    assert_int_equal(ct_cost(o, 1000, 0, 0, 50), 1000 * 2500000ull / 2);
    ct_prices_free(&t);
}

/* ---- budgets ---- */

static struct ct_budget_def def(uint64_t limit_usd_micro, enum ct_period p)
{
    struct ct_budget_def d = {.name = "b",
                              .scope = CT_SCOPE_TENANT,
                              .period = p,
                              .limit = limit_usd_micro * 1000000ull,
                              .thresholds = {50, 75, 90, 100},
                              .n_thresholds = 4};
    return d;
}

static void test_reserve_settle_arithmetic(void **state)
{
    struct ct_budget_def d = def(1000, CT_DAILY); /* 1000 micro-USD */
    struct ct_budgets b;
    (void)state;
    assert_int_equal(ct_budgets_init(&b, &d, 1, 100), 0);
    struct ct_entry *e = ct_budgets_entry(&b, 0, "acme", 4);
    struct ct_entry *refs[] = {e};
    const uint64_t u = 1000000; /* 1 micro-USD in pico */

    /* Four reservations of 250 fill it; the fifth does not fit. */
    for (int i = 0; i < 4; i++)
        assert_int_equal(ct_reserve(&b, refs, 1, 250 * u, NOON_MS), -1);
    assert_int_equal(ct_reserve(&b, refs, 1, 1, NOON_MS), 0);
    struct ct_entry_view v = ct_entry_view(&b, e, NOON_MS);
    assert_int_equal(v.reserved, 1000 * u);
    assert_int_equal(v.spent, 0);
    /* Settling with less frees the difference, exactly. */
    ct_settle(&b, refs, 1, 250 * u, 100 * u, NOON_MS, NULL, 0);
    v = ct_entry_view(&b, e, NOON_MS);
    assert_int_equal(v.reserved, 750 * u);
    assert_int_equal(v.spent, 100 * u);
    assert_int_equal(ct_reserve(&b, refs, 1, 150 * u, NOON_MS), -1);
    assert_int_equal(ct_reserve(&b, refs, 1, 1, NOON_MS), 0);
    /* Releasing (actual 0) gives the whole reservation back. */
    ct_settle(&b, refs, 1, 150 * u, 0, NOON_MS, NULL, 0);
    v = ct_entry_view(&b, e, NOON_MS);
    assert_int_equal(v.reserved, 750 * u);
    assert_int_equal(v.spent, 100 * u);
    ct_budgets_free(&b);
}

static void test_reserve_is_all_or_nothing(void **state)
{
    struct ct_budget_def d[2] = {def(1000, CT_DAILY), def(100, CT_MONTHLY)};
    struct ct_budgets b;
    (void)state;
    d[1].name = "small";
    assert_int_equal(ct_budgets_init(&b, d, 2, 100), 0);
    struct ct_entry *refs[] = {ct_budgets_entry(&b, 0, "a", 1),
                               ct_budgets_entry(&b, 1, "a", 1)};
    assert_int_equal(ct_reserve(&b, refs, 2, 200 * 1000000ull, NOON_MS), 1);
    /* The budget that fitted was not charged either. */
    assert_int_equal(ct_entry_view(&b, refs[0], NOON_MS).reserved, 0);
    ct_budgets_free(&b);
}

static void test_thresholds_fire_once(void **state)
{
    struct ct_budget_def d = def(100, CT_DAILY);
    struct ct_budgets b;
    struct ct_crossing c[8];
    const uint64_t u = 1000000;
    (void)state;
    assert_int_equal(ct_budgets_init(&b, &d, 1, 100), 0);
    struct ct_entry *refs[] = {ct_budgets_entry(&b, 0, "a", 1)};
    assert_int_equal(ct_settle(&b, refs, 1, 0, 49 * u, NOON_MS, c, 8), 0);
    assert_int_equal(ct_settle(&b, refs, 1, 0, 1 * u, NOON_MS, c, 8), 1);
    assert_int_equal(c[0].percent, 50); /* exactly at the line crosses */
    assert_int_equal(ct_settle(&b, refs, 1, 0, 1 * u, NOON_MS, c, 8), 0);
    assert_int_equal(ct_settle(&b, refs, 1, 0, 20 * u, NOON_MS, c, 8), 0);
    /* One settlement over two lines reports both, once. */
    assert_int_equal(ct_settle(&b, refs, 1, 0, 30 * u, NOON_MS, c, 8), 3);
    assert_int_equal(c[0].percent, 75);
    assert_int_equal(c[1].percent, 90);
    assert_int_equal(c[2].percent, 100);
    assert_int_equal(ct_settle(&b, refs, 1, 0, 30 * u, NOON_MS, c, 8), 0);
    /* A new day: the spend starts over and the lines fire again. */
    assert_int_equal(ct_settle(&b, refs, 1, 0, 50 * u, NOON_MS + DAY_MS, c, 8),
                     1);
    ct_budgets_free(&b);
}

static void test_windows_reset(void **state)
{
    struct ct_budget_def d[3] = {def(100, CT_DAILY), def(100, CT_MONTHLY),
                                 def(100, CT_TOTAL)};
    struct ct_budgets b;
    const uint64_t u = 1000000;
    (void)state;
    assert_int_equal(ct_budgets_init(&b, d, 3, 100), 0);
    struct ct_entry *refs[] = {ct_budgets_entry(&b, 0, "a", 1),
                               ct_budgets_entry(&b, 1, "a", 1),
                               ct_budgets_entry(&b, 2, "a", 1)};
    ct_settle(&b, refs, 3, 0, 60 * u, NOON_MS, NULL, 0);
    /* 23:59:59.999 the same day: nothing resets. */
    int64_t t = NOON_MS + 12 * 3600000ll - 1;
    assert_int_equal(ct_entry_view(&b, refs[0], t).spent, 60 * u);
    /* Midnight: the daily budget resets, monthly and total do not. */
    t = NOON_MS + 12 * 3600000ll;
    assert_int_equal(ct_entry_view(&b, refs[0], t).spent, 0);
    assert_int_equal(ct_entry_view(&b, refs[1], t).spent, 60 * u);
    /* 2027-01-01T00:00:00Z: the month resets, total never. */
    t = 1798761600000ll;
    assert_int_equal(ct_entry_view(&b, refs[1], t).spent, 0);
    assert_int_equal(ct_entry_view(&b, refs[2], t).spent, 60 * u);
    assert_int_equal(ct_window_end_ms(CT_DAILY, NOON_MS),
                     NOON_MS + 12 * 3600000ll);
    assert_int_equal(ct_window_end_ms(CT_MONTHLY, NOON_MS), 1798761600000ll);
    assert_int_equal(ct_window_end_ms(CT_TOTAL, NOON_MS), 0);
    char name[32];
    ct_window_name(CT_MONTHLY, NOON_MS, name, sizeof name);
    assert_string_equal(name, "2026-12");
    ct_budgets_free(&b);
}

/* ---- the plugin on the fake host ---- */

struct fx {
    struct sluice_test_host *t;
    const struct sluice_host *h;
    const struct sluice_plugin *p;
    void *self;
};

static void fx_open(struct fx *x, const char *json)
{
    x->t = sluice_test_host_new();
    x->h = sluice_test_host(x->t);
    x->p = sluice_plugin_v1();
    sluice_test_clock_set_wall_ms(x->t, NOON_MS);
    x->self = sluice_test_open(x->t, x->p, json);
    if (!x->self)
        fprintf(stderr, "open: %s\n", sluice_test_open_error(x->t));
    assert_non_null(x->self);
}

struct rq {
    struct sluice_req *r;
    void *st;
};

static struct rq rq_new(struct fx *x, const char *model, int max_tokens,
                        bool stream)
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":"
             "\"hello there\"}],\"max_tokens\":%d%s}",
             model, max_tokens, stream ? ",\"stream\":true" : "");
    struct rq q = {sluice_test_req_new(x->t, body),
                   calloc(1, x->p->req_state_size)};
    sluice_test_req_set_identity(q.r, "acme", "u1", "", "k1");
    return q;
}

static void rq_answer(struct fx *x, struct rq *q, uint64_t in, uint64_t out)
{
    sluice_test_req_set_response(q->r, 200, SLUICE_OUTCOME_OK);
    x->p->on_upstream_response(x->self, q->r, q->st);
    sluice_test_req_set_usage(q->r, in, out, 0);
    x->p->on_response(x->self, q->r, q->st);
}

static void rq_end(struct fx *x, struct rq *q)
{
    x->p->on_cleanup(x->self, q->r, q->st);
    sluice_test_req_free(q->r);
    free(q->st);
}

/* $0.001 tenant budget on gpt-4o: 2.5 pico/token... */
#define BUDGET_CFG(extra)                                                      \
    "{\"ledger_path\":\"\",\"budgets\":[{\"name\":\"acme-day\",\"scope\":"     \
    "\"tenant\",\"period\":\"daily\",\"limit_usd\":\"0.001\"" extra "}]}"

static void test_refusal_is_openai_429_with_reset(void **state)
{
    struct fx x;
    (void)state;
    fx_open(&x, BUDGET_CFG(""));
    /* max_tokens 40 on gpt-4o: 40 x 10 USD/1M = 0.0004 + input. Two fit,
     * the third does not while both are in flight. */
    struct rq a = rq_new(&x, "gpt-4o", 40, false);
    struct rq b = rq_new(&x, "gpt-4o", 40, false);
    struct rq c = rq_new(&x, "gpt-4o", 40, false);
    assert_int_equal(x.p->on_request(x.self, a.r, a.st), SLUICE_CONTINUE);
    assert_int_equal(x.p->on_request(x.self, b.r, b.st), SLUICE_CONTINUE);
    assert_int_equal(x.p->on_request(x.self, c.r, c.st), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_status(c.r), 429);
    /* Noon: the daily budget resets in 12 h. */
    assert_int_equal(sluice_test_reject_retry_after_ms(c.r), 12 * 3600000ull);
    const char *body = sluice_test_response_body(c.r);
    assert_non_null(strstr(body, "\"code\":\"budget_exceeded\""));
    assert_non_null(strstr(body, "acme-day"));
    assert_non_null(strstr(body, "2026-12-08T00:00:00Z"));
    assert_float_equal(
        sluice_test_metric(
            x.t,
            "sluice_cost_tracker_budget_refused_total{budget=\"acme-day\"}"),
        1, 0);
    rq_end(&x, &c);
    /* a settles small; the freed room admits a new request. */
    rq_answer(&x, &a, 3, 5);
    assert_string_equal(sluice_test_resp_added_header(a.r, "x-sluice-cost"),
                        "0.0000575"); /* 3 x 2.5 + 5 x 10 micro-USD */
    assert_string_equal(
        sluice_test_resp_added_header(a.r, "x-sluice-cost-basis"), "usage");
    rq_end(&x, &a);
    struct rq d = rq_new(&x, "gpt-4o", 40, false);
    assert_int_equal(x.p->on_request(x.self, d.r, d.st), SLUICE_CONTINUE);
    rq_end(&x, &d); /* cleanup without an answer releases */
    rq_end(&x, &b);
    sluice_test_host_free(x.t);
}

static void test_cleanup_releases_the_reservation(void **state)
{
    struct fx x;
    (void)state;
    fx_open(&x, BUDGET_CFG(""));
    /* Each request reserves ~0.0004+; 100 of them ending without an answer
     * must not leak room. */
    for (int i = 0; i < 100; i++) {
        struct rq q = rq_new(&x, "gpt-4o", 40, false);
        assert_int_equal(x.p->on_request(x.self, q.r, q.st), SLUICE_CONTINUE);
        if (i % 2) { /* upstream failed */
            sluice_test_req_set_response(q.r, 503, SLUICE_OUTCOME_HTTP_ERROR);
            x.p->on_response(x.self, q.r, q.st);
        }
        rq_end(&x, &q);
    }
    sluice_test_host_free(x.t);
}

static void test_stream_and_plain_cost_the_same(void **state)
{
    struct fx x;
    (void)state;
    fx_open(&x, "{\"ledger_path\":\"\"}");
    struct rq s = rq_new(&x, "gpt-4o-mini", 100, true);
    struct rq p = rq_new(&x, "gpt-4o-mini", 100, false);
    assert_int_equal(x.p->on_request(x.self, s.r, s.st), SLUICE_CONTINUE);
    assert_int_equal(x.p->on_request(x.self, p.r, p.st), SLUICE_CONTINUE);
    /* The stream's headers leave first: they carry the reservation. */
    sluice_test_req_set_response(s.r, 200, SLUICE_OUTCOME_OK);
    x.p->on_upstream_response(x.self, s.r, s.st);
    assert_string_equal(
        sluice_test_resp_added_header(s.r, "x-sluice-cost-basis"), "reserved");
    sluice_test_req_set_phase(s.r, SLUICE_TEST_PHASE_STREAMING);
    sluice_test_req_set_usage(s.r, 10, 20, 0);
    x.p->on_response(x.self, s.r, s.st);
    rq_answer(&x, &p, 10, 20);
    double spend = sluice_test_metric(
        x.t, "sluice_cost_tracker_spend_nanousd_total{tenant=\"acme\",model="
             "\"gpt-4o-mini\",feature=\"\"}");
    /* 2 x (10 x 0.15 + 20 x 0.60) micro-USD = 27000 nano-USD. */
    assert_float_equal(spend, 27000, 0);
    rq_end(&x, &s);
    rq_end(&x, &p);
    sluice_test_host_free(x.t);
}

static void test_downgrade_past_soft_threshold(void **state)
{
    struct fx x;
    (void)state;
    fx_open(&x, "{\"ledger_path\":\"\",\"downgrade\":{\"gpt-4o\":"
                "\"gpt-4o-mini\"},\"budgets\":[{\"name\":\"acme-day\","
                "\"scope\":\"tenant\",\"period\":\"daily\",\"limit_usd\":"
                "\"0.01\",\"downgrade_at\":50}]}");
    struct rq q = rq_new(&x, "gpt-4o", 10, false);
    assert_int_equal(x.p->on_request(x.self, q.r, q.st), SLUICE_CONTINUE);
    struct sluice_str m = x.h->req_target_model(q.r);
    assert_int_equal(m.len, 6); /* below 50%: unchanged */
    rq_answer(&x, &q, 0, 500);  /* 500 x 10 micro-USD = 0.005 = 50% */
    rq_end(&x, &q);
    assert_float_equal(
        sluice_test_health(x.t, "budget.acme-day.acme.used_ratio"), 0.5, 1e-9);
    assert_float_equal(
        sluice_test_metric(x.t, "sluice_cost_tracker_budget_threshold_crossed_"
                                "total{budget=\"acme-day\",threshold=\"50\"}"),
        1, 0);
    q = rq_new(&x, "gpt-4o", 10, false);
    assert_int_equal(x.p->on_request(x.self, q.r, q.st), SLUICE_CONTINUE);
    m = x.h->req_target_model(q.r);
    assert_int_equal(m.len, 11);
    assert_memory_equal(m.ptr, "gpt-4o-mini", 11);
    rq_end(&x, &q);
    sluice_test_host_free(x.t);
}

static void test_unknown_model_counts_zero_with_warning(void **state)
{
    struct fx x;
    (void)state;
    fx_open(&x, "{\"ledger_path\":\"\"}");
    struct rq q = rq_new(&x, "mystery-model", 10, false);
    assert_int_equal(x.p->on_request(x.self, q.r, q.st), SLUICE_CONTINUE);
    rq_answer(&x, &q, 10, 10);
    assert_string_equal(sluice_test_resp_added_header(q.r, "x-sluice-cost"),
                        "0");
    assert_true(sluice_test_metric(x.t, "sluice_cost_tracker_unknown_model_"
                                        "total{model=\"mystery-model\"}") >= 1);
    rq_end(&x, &q);
    sluice_test_host_free(x.t);
}

static void test_ledger_keeps_spend_and_recovers_orphans(void **state)
{
    char path[] = "/tmp/ct-ledger-XXXXXX";
    char cfg[512];
    struct fx x;
    (void)state;
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    snprintf(cfg, sizeof cfg,
             "{\"ledger_path\":\"%s\",\"budgets\":[{\"name\":\"g\",\"scope\":"
             "\"global\",\"period\":\"total\",\"limit_usd\":\"1\"}]}",
             path);
    fx_open(&x, cfg);
    struct ct_ledger *lg = ((struct cost_tracker *)x.self)->ledger;
    struct rq q = rq_new(&x, "gpt-4o", 100, false);
    /* The request waits until its reservation row is committed. */
    assert_int_equal(x.p->on_request(x.self, q.r, q.st), SLUICE_SUSPEND);
    ct_ledger_flush(lg);
    assert_int_equal(sluice_test_wakes(q.r), 1);
    sluice_test_req_mark_resumed(q.r);
    assert_int_equal(x.p->on_request(x.self, q.r, q.st), SLUICE_CONTINUE);
    rq_answer(&x, &q, 0, 100); /* 0.001 USD */
    rq_end(&x, &q);
    /* A reservation a "crashed" process left behind: its row stays. */
    struct rq lost = rq_new(&x, "gpt-4o", 200, false);
    assert_int_equal(x.p->on_request(x.self, lost.r, lost.st), SLUICE_SUSPEND);
    ct_ledger_flush(lg);
    sluice_test_req_mark_resumed(lost.r);
    assert_int_equal(x.p->on_request(x.self, lost.r, lost.st), SLUICE_CONTINUE);
    sluice_test_req_free(lost.r); /* no cleanup: the process "died" */
    free(lost.st);
    sluice_test_host_free(x.t); /* ledger closed, row still `reserved` */

    /* Same process, so recovery ran already: simulate the new process by
     * recovering explicitly, as its first open would. */
    char err[200];
    struct ct_ledger *l = ct_ledger_open(path, err, sizeof err);
    assert_non_null(l);
    assert_int_equal(ct_ledger_recover(l), 1);
    ct_ledger_close(l);
    fx_open(&x, cfg);
    double used = sluice_test_health(x.t, "budget.g.used_ratio");
    /* 0.001 settled + the orphan's worst case (200 x 10 + input). */
    assert_true(used > 0.003 && used < 0.0031);
    sluice_test_host_free(x.t);
    unlink(path);
    char side[64];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

static void test_webhook_posts_each_crossing_with_retries(void **state)
{
    struct fx x;
    (void)state;
    fx_open(&x, "{\"ledger_path\":\"\",\"webhook_upstream\":\"alerts\","
                "\"webhook_retries\":2,\"webhook_retry_ms\":100,\"budgets\":[{"
                "\"name\":\"w\",\"scope\":\"tenant\",\"period\":\"daily\","
                "\"limit_usd\":\"0.001\",\"thresholds\":[50,100]}]}");
    struct rq q = rq_new(&x, "gpt-4o", 10, false);
    assert_int_equal(x.p->on_request(x.self, q.r, q.st), SLUICE_CONTINUE);
    rq_answer(&x, &q, 0, 60); /* 0.0006 USD: crosses 50% only */
    rq_end(&x, &q);
    assert_int_equal(sluice_test_calls_pending(x.t), 1);
    assert_string_equal(sluice_test_call_upstream(x.t, 0), "alerts");
    assert_string_equal(sluice_test_call_path(x.t, 0), "/v1/budget-alerts");
    const char *body = sluice_test_call_body(x.t, 0);
    assert_non_null(strstr(body, "\"budget\":\"w\""));
    assert_non_null(strstr(body, "\"value\":\"acme\""));
    assert_non_null(strstr(body, "\"threshold\":50"));
    /* A 500 is retried after webhook_retry_ms, then doubling. */
    sluice_test_call_finish(x.t, 0, 500, SLUICE_OUTCOME_HTTP_ERROR, "");
    assert_int_equal(sluice_test_calls_pending(x.t), 0);
    sluice_test_clock_advance_ms(x.t, 99);
    assert_int_equal(sluice_test_timers_run(x.t, 0), 0);
    sluice_test_clock_advance_ms(x.t, 1);
    assert_int_equal(sluice_test_timers_run(x.t, 0), 1);
    assert_int_equal(sluice_test_calls_pending(x.t), 1);
    sluice_test_call_finish(x.t, 0, 200, SLUICE_OUTCOME_OK, "{}");
    assert_float_equal(
        sluice_test_metric(x.t, "sluice_cost_tracker_webhook_delivered_total"),
        1, 0);
    /* The same line does not fire again; the next one does, and a
     * receiver that keeps failing is given up after 1 + 2 attempts. */
    q = rq_new(&x, "gpt-4o", 10, false);
    assert_int_equal(x.p->on_request(x.self, q.r, q.st), SLUICE_CONTINUE);
    rq_answer(&x, &q, 0, 10); /* 0.0007 */
    rq_end(&x, &q);
    assert_int_equal(sluice_test_calls_pending(x.t), 0);
    q = rq_new(&x, "gpt-4o", 25, false); /* fits: 0.0007 + 250 + input */
    assert_int_equal(x.p->on_request(x.self, q.r, q.st), SLUICE_CONTINUE);
    rq_answer(&x, &q, 0, 30); /* 0.001: 100% */
    rq_end(&x, &q);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sluice_test_calls_pending(x.t), 1);
        assert_non_null(
            strstr(sluice_test_call_body(x.t, 0), "\"threshold\":100"));
        sluice_test_call_finish(x.t, 0, 503, SLUICE_OUTCOME_HTTP_ERROR, "");
        sluice_test_clock_advance_ms(x.t, 1000);
        sluice_test_timers_run(x.t, 0);
    }
    assert_int_equal(sluice_test_calls_pending(x.t), 0);
    assert_float_equal(
        sluice_test_metric(x.t, "sluice_cost_tracker_webhook_failed_total"), 1,
        0);
    sluice_test_host_free(x.t);
}

/* The feature tag comes from the policy var, else from the header. */
static void test_feature_from_var_or_header(void **state)
{
    struct fx x;
    (void)state;
    fx_open(&x, "{\"ledger_path\":\"\",\"budgets\":[{\"name\":\"f\",\"scope\":"
                "\"feature\",\"period\":\"total\",\"limit_usd\":\"1\"}]}");
    struct rq a = rq_new(&x, "gpt-4o", 10, false);
    sluice_test_req_set_header(a.r, "x-sluice-feature", "from-header");
    struct rq b = rq_new(&x, "gpt-4o", 10, false);
    sluice_test_req_set_header(b.r, "x-sluice-feature", "from-header");
    x.h->var_set(b.r, "cost.feature", (struct sluice_str){"from-var", 8});
    struct rq c = rq_new(&x, "gpt-4o", 10, false); /* no tag: no budget */
    struct rq *all[] = {&a, &b, &c};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(x.p->on_request(x.self, all[i]->r, all[i]->st),
                         SLUICE_CONTINUE);
        rq_answer(&x, all[i], 0, 100); /* 0.001 USD */
        rq_end(&x, all[i]);
    }
    assert_float_equal(
        sluice_test_health(x.t, "budget.f.from-header.used_ratio"), 0.001,
        1e-12);
    assert_float_equal(sluice_test_health(x.t, "budget.f.from-var.used_ratio"),
                       0.001, 1e-12);
    assert_float_equal(
        sluice_test_metric(x.t, "sluice_cost_tracker_spend_nanousd_total{"
                                "tenant=\"acme\",model=\"gpt-4o\",feature="
                                "\"from-var\"}"),
        1000000, 0);
    sluice_test_host_free(x.t);
}

/* A fallback to a pricier model reserves the difference before it goes. */
static void test_fallback_to_pricier_model_reserves_the_difference(void **state)
{
    struct fx x;
    (void)state;
    fx_open(&x, BUDGET_CFG(""));                        /* 0.001 USD */
    struct rq a = rq_new(&x, "gpt-4o-mini", 60, false); /* ~0.00004 */
    struct rq b = rq_new(&x, "gpt-4o", 60, false);      /* ~0.00063 */
    assert_int_equal(x.p->on_request(x.self, a.r, a.st), SLUICE_CONTINUE);
    assert_int_equal(x.p->on_request(x.self, b.r, b.st), SLUICE_CONTINUE);
    /* a's first attempt failed; its fallback goes to gpt-4o. */
    assert_int_equal(
        x.h->upstream_set_model(a.r, (struct sluice_str){"gpt-4o", 6}),
        SLUICE_OK);
    sluice_test_req_set_response(a.r, 503, SLUICE_OUTCOME_HTTP_ERROR);
    assert_int_equal(x.p->on_attempt(x.self, a.r, a.st), SLUICE_RESPOND);
    assert_int_equal(sluice_test_reject_status(a.r), 429);
    assert_non_null(strstr(sluice_test_response_body(a.r), "budget_exceeded"));
    x.p->on_response(x.self, a.r, a.st);
    rq_end(&x, &a);
    rq_end(&x, &b); /* b releases: now the same fallback fits */
    a = rq_new(&x, "gpt-4o-mini", 60, false);
    assert_int_equal(x.p->on_request(x.self, a.r, a.st), SLUICE_CONTINUE);
    assert_int_equal(
        x.h->upstream_set_model(a.r, (struct sluice_str){"gpt-4o", 6}),
        SLUICE_OK);
    sluice_test_req_set_response(a.r, 503, SLUICE_OUTCOME_HTTP_ERROR);
    assert_int_equal(x.p->on_attempt(x.self, a.r, a.st), SLUICE_CONTINUE);
    /* ...and holds it: a gpt-4o request that fitted before does not now. */
    b = rq_new(&x, "gpt-4o", 60, false);
    assert_int_equal(x.p->on_request(x.self, b.r, b.st), SLUICE_RESPOND);
    rq_end(&x, &b);
    rq_answer(&x, &a, 10, 60); /* priced at gpt-4o */
    assert_string_equal(sluice_test_resp_added_header(a.r, "x-sluice-cost"),
                        "0.000625");
    rq_end(&x, &a);
    sluice_test_host_free(x.t);
}

static void test_needs_a_1_1_core(void **state)
{
    struct sluice_test_host *t = sluice_test_host_new();
    (void)state;
    sluice_test_host_pretend_1_0(t);
    assert_null(
        sluice_test_open(t, sluice_plugin_v1(), "{\"ledger_path\":\"\"}"));
    assert_non_null(strstr(sluice_test_open_error(t), "1.1"));
    sluice_test_host_free(t);
}

static void test_config_errors(void **state)
{
    struct sluice_test_host *t = sluice_test_host_new();
    (void)state;
    assert_null(sluice_test_open(
        t, sluice_plugin_v1(),
        "{\"budgets\":[{\"name\":\"x\",\"limit_usd\":\"abc\"}]}"));
    assert_non_null(strstr(sluice_test_open_error(t), "limit_usd"));
    assert_null(sluice_test_open(
        t, sluice_plugin_v1(),
        "{\"budgets\":[{\"name\":\"x y\",\"limit_usd\":\"1\"}]}"));
    assert_non_null(strstr(sluice_test_open_error(t), "name"));
    assert_null(sluice_test_open(t, sluice_plugin_v1(),
                                 "{\"budgets\":[{\"name\":\"x\",\"limit_usd\":"
                                 "1,\"thresholds\":[90,50]}]}"));
    assert_non_null(strstr(sluice_test_open_error(t), "ascending"));
    sluice_test_host_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decimal_parsing),
        cmocka_unit_test(test_usd_formatting),
        cmocka_unit_test(test_shipped_table_and_lookup),
        cmocka_unit_test(test_config_prices_override_and_errors),
        cmocka_unit_test(test_cost_sums_without_drift),
        cmocka_unit_test(test_reserve_settle_arithmetic),
        cmocka_unit_test(test_reserve_is_all_or_nothing),
        cmocka_unit_test(test_thresholds_fire_once),
        cmocka_unit_test(test_windows_reset),
        cmocka_unit_test(test_refusal_is_openai_429_with_reset),
        cmocka_unit_test(test_cleanup_releases_the_reservation),
        cmocka_unit_test(test_stream_and_plain_cost_the_same),
        cmocka_unit_test(test_downgrade_past_soft_threshold),
        cmocka_unit_test(test_unknown_model_counts_zero_with_warning),
        cmocka_unit_test(test_ledger_keeps_spend_and_recovers_orphans),
        cmocka_unit_test(test_webhook_posts_each_crossing_with_retries),
        cmocka_unit_test(test_feature_from_var_or_header),
        cmocka_unit_test(
            test_fallback_to_pricier_model_reserves_the_difference),
        cmocka_unit_test(test_needs_a_1_1_core),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
