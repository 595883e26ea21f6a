/* Reuse of a pure policy's decisions (decide_is_pure): a request that
 * answers the script's reads as an earlier one did gets that one's
 * decision without running Lua; anything else runs the script. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "policy/policy.h"
#include "policy/policy_decision.h"
#include "policy/policy_memo.h"
#include "policy_fakes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct policy *load_ok(const char *text)
{
    char err[512] = "";
    struct policy *p = load_text(text, err, sizeof err, NULL, 0);
    if (p == NULL)
        fail_msg("load: %s", err);
    return p;
}

static void decide_ok(struct policy *p, struct fake_req *r,
                      struct policy_decision *d)
{
    char err[512];
    struct policy_req_view v = view_of(r);
    if (policy_decide(p, &v, d, err, sizeof err) != POLICY_OK)
        fail_msg("decide: %s", err);
}

static const char *first_tag(const struct policy_decision *d)
{
    return d->tag_count ? d->tags[0] : "";
}

/* Reads a header, and the model only for some teams. */
static const char *const team_script =
    "decide_is_pure = true\n"
    "function decide(req, ctx)\n"
    "  local team = req.header('x-team')\n"
    "  if team == nil then return nil end\n"
    "  if team == 'research' and req.model == 'gpt-4o' then\n"
    "    ctx.vars.route = 'big'\n"
    "    return { tags = { team }, priority = 'batch', model = 'o3' }\n"
    "  end\n"
    "  return { tags = { team == '' and 'blank' or team } }\n"
    "end\n";

static void test_same_reads_reuse_the_decision(void **state)
{
    (void)state;
    struct policy *p = load_ok(team_script);
    struct policy_decision d;

    struct fake_req research = {.model = "gpt-4o",
                                .headers = {{"x-team", "research"}}};
    decide_ok(p, &research, &d);
    assert_false(d.reused);
    assert_int_equal(policy_memo_counts(p).stored, 1);

    /* Fields the script never read may differ. */
    struct fake_req again = research;
    again.tenant = "someone-else";
    again.headers[1][0] = "x-other";
    again.headers[1][1] = "1";
    decide_ok(p, &again, &d);
    assert_true(d.reused);
    assert_string_equal(first_tag(&d), "research");
    assert_string_equal(d.priority, "batch");
    assert_string_equal(d.model, "o3");
    assert_int_equal(d.var_count, 1);
    assert_string_equal(d.vars[0][0], "route");
    assert_string_equal(d.vars[0][1], "big");

    /* A different answer to a read runs the script. */
    struct fake_req small = {.model = "gpt-4o-mini",
                             .headers = {{"x-team", "research"}}};
    decide_ok(p, &small, &d);
    assert_false(d.reused);
    assert_string_equal(first_tag(&d), "research");
    assert_string_equal(d.model, "");
    assert_string_equal(d.priority, "");

    struct fake_req sales = {.model = "gpt-4o",
                             .headers = {{"x-team", "sales"}}};
    decide_ok(p, &sales, &d);
    assert_false(d.reused);
    assert_string_equal(first_tag(&d), "sales");
    decide_ok(p, &sales, &d);
    assert_true(d.reused);
    assert_string_equal(first_tag(&d), "sales");
    assert_string_equal(d.model, "");

    /* An absent header and an empty one are different answers. */
    struct fake_req none = {.model = "gpt-4o"};
    decide_ok(p, &none, &d);
    assert_false(d.reused);
    assert_int_equal(d.tag_count, 0);
    struct fake_req empty = {.model = "gpt-4o", .headers = {{"x-team", ""}}};
    decide_ok(p, &empty, &d);
    assert_false(d.reused);
    assert_string_equal(first_tag(&d), "blank");
    decide_ok(p, &none, &d);
    assert_true(d.reused);
    assert_int_equal(d.tag_count, 0);

    decide_ok(p, &small, &d);
    assert_true(d.reused);
    assert_string_equal(d.model, "");

    struct policy_memo_stats c = policy_memo_counts(p);
    assert_int_equal(c.stored, 5);
    assert_int_equal(c.hits, 4);
    assert_false(c.disabled);
    policy_free(p);
}

static void test_impure_script_is_never_reused(void **state)
{
    (void)state;
    struct policy *p = load_ok("function decide(req)\n"
                               "  return { tags = { req.model } }\n"
                               "end\n");
    struct fake_req r = {.model = "gpt-4o"};
    struct policy_decision d;
    for (int i = 0; i < 3; i++) {
        decide_ok(p, &r, &d);
        assert_false(d.reused);
    }
    struct policy_memo_stats c = policy_memo_counts(p);
    assert_int_equal(c.hits + c.stored, 0);
    policy_free(p);
}

/* The clock, health, randomness, logging and the body are more than the
 * reads: a call that uses one is never kept. */
static void test_calls_beyond_req_are_not_kept(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "return { tags = { tostring(sluice.now()) } }",
        "return { tags = { tostring(sluice.health('breaker.x')) } }",
        "return { tags = { tostring(math.random(1, 1000000)) } }",
        "math.randomseed(7) return nil",
        "sluice.log('seen', req.model) return nil",
        "print('seen') return nil",
        "return { tags = { req.body.model } }",
    };
    test_env_state = (struct fake_env){.now = 1000.5};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "decide_is_pure = true\n"
                 "function decide(req)\n"
                 "  local m = req.model\n"
                 "  %s\n"
                 "end\n",
                 bodies[i]);
        struct policy *p = load_ok(text);
        struct fake_req r = {.model = "gpt-4o", .body = "{\"model\":\"x\"}"};
        struct policy_decision d;
        for (int k = 0; k < 3; k++) {
            test_env_state.now += 1;
            decide_ok(p, &r, &d);
            if (d.reused)
                fail_msg("reused after: %s", bodies[i]);
        }
        assert_int_equal(policy_memo_counts(p).stored, 0);
        if (strstr(bodies[i], "req.body"))
            assert_int_equal(r.body_reads, 3);
        policy_free(p);
    }
    test_env_state = (struct fake_env){0};
}

/* Each script keeps state in its own way. Every call must still give the
 * answer of a fresh run ("1", "2", "3": the state advanced), because the
 * first call's change of state turns reuse off before anything is kept. */
static void test_state_change_turns_reuse_off(void **state)
{
    (void)state;
    static const char *const scripts[] = {
        /* a global */
        "count = 0\n"
        "function decide(req) count = count + 1\n"
        "  return { tags = { tostring(count) } } end\n",
        /* a global through _G, from a helper */
        "local function bump() _G.count = (_G.count or 0) + 1 end\n"
        "function decide(req) bump()\n"
        "  return { tags = { tostring(count) } } end\n",
        /* a local of the script (an upvalue of decide) */
        "local count = 0\n"
        "function decide(req) count = count + 1\n"
        "  return { tags = { tostring(count) } } end\n",
        /* a table the script made at load */
        "local seen = {}\n"
        "function decide(req) seen[#seen + 1] = req.model\n"
        "  return { tags = { tostring(#seen) } } end\n",
        /* a field of a nested table */
        "local state = { stats = { n = 0 } }\n"
        "function decide(req) state.stats.n = state.stats.n + 1\n"
        "  return { tags = { tostring(state.stats.n) } } end\n",
        /* a library table */
        "function decide(req) string.calls = (string.calls or 0) + 1\n"
        "  return { tags = { tostring(string.calls) } } end\n",
        /* a string replaced by an equal-length one */
        "last = 'x'\n"
        "function decide(req)\n"
        "  local was = last\n"
        "  last = was == 'x' and 'y' or (was == 'y' and 'z' or 'w')\n"
        "  return { tags = { ({ x = '1', y = '2', z = '3' })[was] } } end\n",
    };
    for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, "decide_is_pure = true\n%s", scripts[i]);
        struct policy *p = load_ok(text);
        struct fake_req r = {.model = "gpt-4o"};
        struct policy_decision d;
        for (int k = 1; k <= 3; k++) {
            decide_ok(p, &r, &d);
            char want[8];
            snprintf(want, sizeof want, "%d", k);
            if (d.reused || strcmp(first_tag(&d), want) != 0)
                fail_msg("script %zu, call %d: tag %s%s", i, k, first_tag(&d),
                         d.reused ? " (reused)" : "");
        }
        struct policy_memo_stats c = policy_memo_counts(p);
        assert_true(c.disabled);
        assert_int_equal(c.stored, 0);
        policy_free(p);
    }
}

/* Reading state is fine, and so is a local table made per call. */
static void test_reading_state_is_pure(void **state)
{
    (void)state;
    struct policy *p = load_ok("decide_is_pure = true\n"
                               "local PRICES = { ['gpt-4o'] = 10, o3 = 40 }\n"
                               "LIMIT = 20\n"
                               "function decide(req)\n"
                               "  local out = {}\n"
                               "  out.tags = { PRICES[req.model] > LIMIT\n"
                               "               and 'dear' or 'cheap' }\n"
                               "  return out\n"
                               "end\n");
    struct fake_req cheap = {.model = "gpt-4o"}, dear = {.model = "o3"};
    struct policy_decision d;
    for (int round = 0; round < 2; round++) {
        decide_ok(p, &cheap, &d);
        assert_int_equal(d.reused, round == 1);
        assert_string_equal(first_tag(&d), "cheap");
        decide_ok(p, &dear, &d);
        assert_int_equal(d.reused, round == 1);
        assert_string_equal(first_tag(&d), "dear");
    }
    assert_false(policy_memo_counts(p).disabled);
    policy_free(p);
}

/* Failed calls (an error, the instruction budget) are never kept, and do
 * not stop other paths from being reused. */
static void test_failures_are_not_kept(void **state)
{
    (void)state;
    struct policy *p = load_ok("decide_is_pure = true\n"
                               "function decide(req)\n"
                               "  if req.model == 'spin' then\n"
                               "    while true do end\n"
                               "  end\n"
                               "  if req.model == 'bad' then error('bad') end\n"
                               "  return { tags = { req.model } }\n"
                               "end\n");
    struct fake_req good = {.model = "gpt-4o"};
    struct fake_req spin = {.model = "spin"}, bad = {.model = "bad"};
    struct policy_decision d;
    char err[512];
    decide_ok(p, &good, &d);
    for (int round = 0; round < 2; round++) {
        struct policy_req_view vs = view_of(&spin), vb = view_of(&bad);
        assert_int_equal(policy_decide(p, &vs, &d, err, sizeof err),
                         POLICY_ERROR);
        assert_non_null(strstr(err, "instruction budget"));
        assert_int_equal(policy_decide(p, &vb, &d, err, sizeof err),
                         POLICY_ERROR);
        assert_non_null(strstr(err, "bad"));
        decide_ok(p, &good, &d);
        assert_true(d.reused);
        assert_string_equal(first_tag(&d), "gpt-4o");
    }
    struct policy_memo_stats c = policy_memo_counts(p);
    assert_int_equal(c.stored, 1);
    assert_int_equal(c.hits, 2);
    assert_false(c.disabled);
    policy_free(p);
}

/* A script whose calls mostly run anyway (here: all read the clock) stops
 * paying for recording and checking after one window of 4096 calls. */
static void test_reuse_that_does_not_pay_is_turned_off(void **state)
{
    (void)state;
    struct policy *p = load_ok("decide_is_pure = true\n"
                               "function decide(req)\n"
                               "  return { tags = { req.model .. "
                               "math.floor(sluice.now()) } }\n"
                               "end\n");
    struct fake_req r = {.model = "m"};
    struct policy_decision d;
    test_env_state = (struct fake_env){.now = 7};
    for (int i = 0; i < 4100; i++) {
        decide_ok(p, &r, &d);
        assert_false(d.reused);
        assert_string_equal(first_tag(&d), "m7");
    }
    assert_true(policy_memo_counts(p).disabled);
    test_env_state = (struct fake_env){0};
    policy_free(p);
}

/* A state too large to check after every call is not trusted. */
static void test_huge_state_is_not_reused(void **state)
{
    (void)state;
    struct policy *p = load_ok("decide_is_pure = true\n"
                               "local big = {}\n"
                               "for i = 1, 6000 do big[i] = i end\n"
                               "function decide(req)\n"
                               "  return { tags = { tostring(big[7]) } }\n"
                               "end\n");
    struct fake_req r = {.model = "gpt-4o"};
    struct policy_decision d;
    decide_ok(p, &r, &d);
    decide_ok(p, &r, &d);
    assert_false(d.reused);
    assert_string_equal(first_tag(&d), "7");
    assert_true(policy_memo_counts(p).disabled);
    policy_free(p);
}

static void test_declaration_must_be_boolean(void **state)
{
    (void)state;
    char err[512] = "";
    struct policy *p = load_text("decide_is_pure = 'yes'\n"
                                 "function decide(req) end\n",
                                 err, sizeof err, NULL, 0);
    assert_null(p);
    assert_non_null(strstr(err, "decide_is_pure must be true or false"));

    p = load_ok("decide_is_pure = false\n"
                "n = 0\n"
                "function decide(req) n = n + 1 end\n");
    struct fake_req r = {.model = "gpt-4o"};
    struct policy_decision d;
    decide_ok(p, &r, &d);
    decide_ok(p, &r, &d); /* false: nothing kept */
    assert_int_equal(policy_memo_counts(p).stored, 0);
    policy_free(p);
}

/* A path that asks a different question after the same answers proves
 * the script depends on more than req (what the state check cannot see,
 * such as tostring of a fresh table): the memo turns itself off. */
static void test_contradiction_turns_reuse_off(void **state)
{
    (void)state;
    struct policy_memo *m = policy_memo_new();
    struct fake_req a = {.model = "gpt-4o"}, b = {.model = "o3"};
    struct policy_req_view va = view_of(&a), vb = view_of(&b);
    struct policy_decision d;
    size_t len;
    policy_decision_clear(&d);

    const struct policy_req_view *rec = policy_memo_record(m, &va);
    rec->model(rec->ctx, &len); /* the first call read the model */
    assert_true(policy_memo_store(m, &d));
    assert_non_null(policy_memo_find(m, &va));
    assert_null(policy_memo_find(m, &vb));

    policy_memo_record(m, &vb); /* the next read nothing */
    assert_false(policy_memo_store(m, &d));
    assert_false(policy_memo_enabled(m));
    assert_non_null(strstr(policy_memo_why_off(m), "read the same"));
    assert_null(policy_memo_find(m, &va));
    policy_memo_free(m);
}

/* Answers that never repeat fill the tree again and again: each decision
 * stays right, and after four fillings reuse is turned off as useless. */
static void test_answers_that_never_repeat(void **state)
{
    (void)state;
    struct policy *p = load_ok("decide_is_pure = true\n"
                               "function decide(req)\n"
                               "  return { tags = { tostring("
                               "req.input_tokens) } }\n"
                               "end\n");
    struct policy_decision d;
    char want[32];
    for (uint64_t i = 0; i < 2000; i++) {
        struct fake_req r = {.model = "m", .input_tokens = i};
        decide_ok(p, &r, &d);
        snprintf(want, sizeof want, "%llu", (unsigned long long)i);
        assert_string_equal(first_tag(&d), want);
        assert_false(d.reused);
    }
    struct policy_memo_stats c = policy_memo_counts(p);
    assert_int_equal(c.resets, 4);
    assert_true(c.disabled);
    policy_free(p);
}

/* Many paths to the same few decisions share them: a thousand users fit
 * without emptying the tree, and all are reused the second time. */
static void test_many_paths_share_decisions(void **state)
{
    (void)state;
    struct policy *p = load_ok("decide_is_pure = true\n"
                               "function decide(req)\n"
                               "  if req.user:sub(1, 1) == 'a' then\n"
                               "    return { priority = 'batch' } end\n"
                               "  return nil\n"
                               "end\n");
    struct policy_decision d;
    char user[32];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 1000; i++) {
            snprintf(user, sizeof user, "%c-user-%d", i % 2 ? 'a' : 'b', i);
            struct fake_req r = {.model = "m", .user = user};
            decide_ok(p, &r, &d);
            assert_int_equal(d.reused, round == 1);
            assert_string_equal(d.priority, i % 2 ? "batch" : "");
        }
    }
    struct policy_memo_stats c = policy_memo_counts(p);
    assert_int_equal(c.resets, 0);
    assert_int_equal(c.hits, 1000);
    policy_free(p);
}

/* The same script with and without decide_is_pure, on random requests
 * from small pools of values: every decision, and every failure, must be
 * the same, and most must be reused. */
static const char *const branchy_script =
    "local TIERS = { gold = 'realtime', free = 'low' }\n"
    "function decide(req, ctx)\n"
    "  if req.header('x-block') == 'yes' then\n"
    "    return { action = 'reject', status = 403, message = 'blocked' }\n"
    "  end\n"
    "  if req.model == 'boom' then error('no such model') end\n"
    "  if req.model == 'auto' then\n"
    "    if req.message_count > 2 or req.stream then\n"
    "      return { model = 'gpt-4o', tags = { 'auto', req.tier or 'none' } }\n"
    "    end\n"
    "    return { model = 'gpt-4o-mini' }\n"
    "  end\n"
    "  if req.model == 'clock' then\n"
    "    return { tags = { sluice.now() > 1500 and 'late' or 'early' } }\n"
    "  end\n"
    "  local p = TIERS[req.tier or '']\n"
    "  if p == nil and req.var('team') then\n"
    "    ctx.vars.team = req.var('team')\n"
    "    p = req.max_tokens > 100 and 'batch' or nil\n"
    "  end\n"
    "  if p == nil then return nil end\n"
    "  return { priority = p, degrade = req.priority == 'batch' and 1 or nil "
    "}\n"
    "end\n";

static uint32_t next_random(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

static void test_reuse_matches_running_the_script(void **state)
{
    (void)state;
    char text[2048];
    snprintf(text, sizeof text, "decide_is_pure = true\n%s", branchy_script);
    struct policy *pure = load_ok(text);
    snprintf(text, sizeof text, "decide_is_pure = false\n%s", branchy_script);
    struct policy *plain = load_ok(text);

    static const char *const models[] = {"auto", "gpt-4o", "boom", "clock",
                                         "o3"};
    static const char *const tiers[] = {"gold", "free", NULL, "silver"};
    static const char *const blocks[] = {NULL, "yes", "no"};
    static const char *const teams[] = {NULL, "red", "blue"};
    static const char *const prios[] = {"standard", "batch"};
    uint32_t seed = 12345;
#define PICK(a) (a[next_random(&seed) % (sizeof a / sizeof a[0])])
    test_env_state = (struct fake_env){.now = 1000};
    for (int i = 0; i < 5000; i++) {
        struct fake_req r = {0};
        r.model = PICK(models);
        r.tier = PICK(tiers);
        r.priority = PICK(prios);
        const char *block = PICK(blocks), *team = PICK(teams);
        if (block != NULL) {
            r.headers[0][0] = "x-block";
            r.headers[0][1] = block;
        }
        if (team != NULL) {
            r.vars[0][0] = "team";
            r.vars[0][1] = team;
        }
        uint32_t bits = next_random(&seed);
        r.message_count = bits & 3;
        r.stream = (bits >> 2 & 1) != 0;
        r.max_tokens = (bits >> 3 & 1) ? 50 : 500;
        test_env_state.now = i < 2500 ? 1000 : 2000;

        struct policy_req_view v = view_of(&r);
        struct policy_decision a, b;
        char ea[512] = "", eb[512] = "";
        enum policy_status sa = policy_decide(pure, &v, &a, ea, sizeof ea);
        enum policy_status sb = policy_decide(plain, &v, &b, eb, sizeof eb);
        if (sa != sb || (sa == POLICY_OK && !policy_decision_equal(&a, &b)))
            fail_msg("request %d (model %s tier %s): %s / %s", i, r.model,
                     r.tier ? r.tier : "nil", ea, eb);
        if (sa != POLICY_OK && strstr(ea, "no such model") == NULL)
            fail_msg("request %d: unexpected error %s", i, ea);
    }
#undef PICK
    struct policy_memo_stats c = policy_memo_counts(pure);
    print_message("  %llu reused, %llu kept\n", (unsigned long long)c.hits,
                  (unsigned long long)c.stored);
    assert_false(c.disabled);
    assert_true(c.hits > 3000);
    test_env_state = (struct fake_env){0};
    policy_free(pure);
    policy_free(plain);
}

/* The bundled default policy is pure, and its reused decisions are the
 * ones it would make. */
static void test_default_policy_is_reused(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/default.lua", POLICY_EXAMPLES_DIR);
    char err[512] = "";
    struct policy *p =
        policy_load(path, &test_limits, &test_env, err, sizeof err);
    if (p == NULL)
        fail_msg("%s", err);
    struct policy_decision d;
    struct fake_req asked = {.tier = "standard",
                             .headers = {{"x-priority", "Realtime"}}};
    struct fake_req batch = {.tier = "batch"};
    struct fake_req plain = {.tier = "standard"};
    for (int round = 0; round < 2; round++) {
        decide_ok(p, &asked, &d);
        assert_int_equal(d.reused, round == 1);
        assert_string_equal(d.priority, "realtime");
        decide_ok(p, &batch, &d);
        assert_int_equal(d.reused, round == 1);
        assert_string_equal(d.priority, "batch");
        decide_ok(p, &plain, &d);
        assert_int_equal(d.reused, round == 1);
        assert_string_equal(d.priority, "");
    }
    policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_reads_reuse_the_decision),
        cmocka_unit_test(test_impure_script_is_never_reused),
        cmocka_unit_test(test_calls_beyond_req_are_not_kept),
        cmocka_unit_test(test_state_change_turns_reuse_off),
        cmocka_unit_test(test_reading_state_is_pure),
        cmocka_unit_test(test_failures_are_not_kept),
        cmocka_unit_test(test_reuse_that_does_not_pay_is_turned_off),
        cmocka_unit_test(test_huge_state_is_not_reused),
        cmocka_unit_test(test_declaration_must_be_boolean),
        cmocka_unit_test(test_contradiction_turns_reuse_off),
        cmocka_unit_test(test_answers_that_never_repeat),
        cmocka_unit_test(test_many_paths_share_decisions),
        cmocka_unit_test(test_reuse_matches_running_the_script),
        cmocka_unit_test(test_default_policy_is_reused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
