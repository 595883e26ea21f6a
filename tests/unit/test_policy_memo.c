/* Reuse of a pure policy's decisions (decide_is_pure): a request that
 * answers the script's reads as an earlier one did gets that one's
 * decision without running Lua; anything else runs the script. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "policy/policy.h"
#include "policy_fakes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct policy_limits test_limits = {
    .instruction_budget = 1000000,
    .memory_limit_bytes = 4u << 20,
    .max_pattern_work = 1000000,
};

/* Loads a script from text; NULL with err set when the load fails. */
static struct policy *load_text(const char *text, char *err, size_t errlen)
{
    char path[] = "/tmp/sluice_test_memo_XXXXXX.lua";
    int fd = mkstemps(path, 4);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct policy *p = policy_load(path, &test_limits, &test_env, err, errlen);
    unlink(path);
    return p;
}

static struct policy *load_ok(const char *text)
{
    char err[512] = "";
    struct policy *p = load_text(text, err, sizeof err);
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

static void expect_global_write_refused(const char *text, const char *name)
{
    struct policy *p = load_ok(text);
    struct fake_req r = {.model = "gpt-4o"};
    struct policy_req_view v = view_of(&r);
    struct policy_decision d;
    char err[512] = "", needle[64];
    assert_int_equal(policy_decide(p, &v, &d, err, sizeof err), POLICY_ERROR);
    snprintf(needle, sizeof needle, "may not write the global '%s'", name);
    if (strstr(err, needle) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err, needle);
    /* It names the line of the write. */
    assert_non_null(strstr(err, ":3:"));
    assert_int_equal(policy_memo_counts(p).stored, 0);
    policy_free(p);
}

/* A counter in a global would make reused decisions wrong: the write
 * fails instead. Writes at load time are the script's set-up and fine. */
static void test_pure_script_cannot_write_globals(void **state)
{
    (void)state;
    expect_global_write_refused("decide_is_pure = true; count = 0\n"
                                "function decide(req)\n"
                                "  count = count + 1\n"
                                "end\n",
                                "count");
    expect_global_write_refused("decide_is_pure = true\n"
                                "function decide(req)\n"
                                "  _G.seen = req.model\n"
                                "end\n",
                                "seen");
    expect_global_write_refused("decide_is_pure = true; local seen\n"
                                "-- a helper's write is caught too\n"
                                "local function note(m) last = m end\n"
                                "function decide(req) note(req.model) end\n",
                                "last");
}

static void test_declaration_must_be_boolean(void **state)
{
    (void)state;
    char err[512] = "";
    struct policy *p = load_text("decide_is_pure = 'yes'\n"
                                 "function decide(req) end\n",
                                 err, sizeof err);
    assert_null(p);
    assert_non_null(strstr(err, "decide_is_pure must be true or false"));

    p = load_ok("decide_is_pure = false\n"
                "n = 0\n"
                "function decide(req) n = n + 1 end\n");
    struct fake_req r = {.model = "gpt-4o"};
    struct policy_decision d;
    decide_ok(p, &r, &d);
    decide_ok(p, &r, &d); /* globals stay writable */
    assert_int_equal(policy_memo_counts(p).stored, 0);
    policy_free(p);
}

/* A script that asks different questions after the same answers is not
 * pure: the memo catches it and stops reusing. (A counter in an upvalue,
 * which the global guard cannot see.) */
static void test_contradiction_turns_reuse_off(void **state)
{
    (void)state;
    struct policy *p = load_ok("decide_is_pure = true\n"
                               "local calls = 0\n"
                               "function decide(req)\n"
                               "  calls = calls + 1\n"
                               "  if calls == 1 then\n"
                               "    return { tags = { req.model } }\n"
                               "  end\n"
                               "  return { tags = { 'call ' .. calls } }\n"
                               "end\n");
    struct fake_req a = {.model = "gpt-4o"}, b = {.model = "o3"};
    struct policy_decision d;
    decide_ok(p, &a, &d);
    assert_string_equal(first_tag(&d), "gpt-4o");
    decide_ok(p, &b, &d); /* reads nothing where a read model */
    assert_string_equal(first_tag(&d), "call 2");
    assert_true(policy_memo_counts(p).disabled);
    decide_ok(p, &a, &d);
    assert_false(d.reused);
    assert_string_equal(first_tag(&d), "call 3");
    assert_int_equal(policy_memo_counts(p).hits, 0);
    policy_free(p);
}

/* Answers that never repeat fill the tree; it is emptied at its cap and
 * every decision stays right. */
static void test_memory_is_bounded(void **state)
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
    }
    struct policy_memo_stats c = policy_memo_counts(p);
    assert_true(c.resets > 0);
    assert_int_equal(c.stored, 2000);
    /* What was stored since the last reset is still served. */
    struct fake_req last = {.model = "m", .input_tokens = 1999};
    decide_ok(p, &last, &d);
    assert_true(d.reused);
    assert_string_equal(first_tag(&d), "1999");
    policy_free(p);
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
        cmocka_unit_test(test_pure_script_cannot_write_globals),
        cmocka_unit_test(test_declaration_must_be_boolean),
        cmocka_unit_test(test_contradiction_turns_reuse_off),
        cmocka_unit_test(test_memory_is_bounded),
        cmocka_unit_test(test_default_policy_is_reused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
