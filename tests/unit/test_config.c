/* Config loader and client-key store: defaults, every validation rule (with
 * its JSON path), error collection, secret hygiene, path resolution,
 * routing, fallbacks, key lookup, refcounting, and the shipped configs. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <dirent.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

#define FIXTURES SLUICE_SOURCE_DIR "/tests/unit/configs"

/* A valid upstream list, spliced into configs that test something else. */
#define MOCK_UPSTREAM                                                          \
    "\"upstreams\": [{\"name\": \"mock\", \"base_url\": "                      \
    "\"http://127.0.0.1:9099/v1\", \"models\": [\"*\"]}]"

static char err[8192];

static struct config *parse(const char *json)
{
    return config_parse(json, "/tmp", "test.json", err, sizeof err);
}

/* Parses json expecting failure; returns the error text. */
static const char *parse_fail(const char *json)
{
    struct config *c = parse(json);
    if (c) {
        config_unref(c);
        fail_msg("expected an error for: %s", json);
    }
    return err;
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle))
        fail_msg("expected \"%s\" in:\n%s", needle, haystack);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_defaults(void **state)
{
    struct config *c = parse("{" MOCK_UPSTREAM "}");
    assert_non_null(c);
    assert_string_equal(c->listen, "127.0.0.1:8080");
    assert_string_equal(c->admin_listen, "");
    assert_int_equal(c->workers, 0);
    assert_int_equal(c->max_connections, 10000);
    assert_int_equal(c->max_body_bytes, 4194304);
    assert_int_equal(c->max_header_bytes, 32768);
    assert_int_equal(c->max_headers, 100);
    assert_int_equal(c->header_timeout_ms, 10000);
    assert_int_equal(c->body_timeout_ms, 30000);
    assert_int_equal(c->idle_timeout_ms, 60000);
    assert_int_equal(c->send_timeout_ms, 60000);
    assert_int_equal(c->drain_timeout_ms, 30000);
    assert_int_equal(c->stream_high_water, 262144);
    assert_false(c->auth_enabled);
    assert_int_equal(c->key_count, 0);
    assert_int_equal(c->retry.max_attempts, 3);
    assert_int_equal(c->retry.base_delay_ms, 100);
    assert_int_equal(c->retry.max_delay_ms, 2000);
    assert_int_equal(c->retry.deadline_ms, 10000);
    assert_true(c->retry.on_other_upstream);
    assert_string_equal(c->policy.script, "");
    assert_true(c->policy.fail_open);
    assert_int_equal(c->policy.instruction_budget, 100000);
    assert_int_equal(c->policy.memory_limit_bytes, 8192 * 1024);
    assert_int_equal(c->policy.max_pattern_work, 100000);
    assert_false(c->policy.watch);
    assert_string_equal(c->plugin_dir, SLUICE_BUILD_DIR "/plugins");
    assert_int_equal(c->pipeline_count, 0);
    assert_string_equal(c->log_level, "info");
    assert_string_equal(c->access_log, "-");
    assert_string_equal(c->source_path, "test.json");

    assert_int_equal(c->upstream_count, 1);
    const struct upstream_config *u = &c->upstreams[0];
    assert_string_equal(u->name, "mock");
    assert_string_equal(u->base_url, "http://127.0.0.1:9099/v1");
    assert_string_equal(u->api_key_env, "");
    assert_false(u->require_key);
    assert_int_equal(u->max_connections, 64);
    assert_int_equal(u->connect_timeout_ms, 3000);
    assert_int_equal(u->first_byte_timeout_ms, 120000);
    assert_int_equal(u->idle_timeout_ms, 60000);
    assert_false(u->use_curl); /* http_client defaults to "native" */
    config_unref(c);
}

/* upstreams[].http_client: "native" (default) or "curl", stored as use_curl;
 * anything else is an error at its path, without echoing the value. */
static void test_http_client(void **state)
{
    struct config *c =
        parse("{\"upstreams\": [{\"name\": \"a\", \"base_url\": "
              "\"http://a\", \"models\": [\"m1\"], \"http_client\": "
              "\"curl\"}, {\"name\": \"b\", \"base_url\": \"http://b\", "
              "\"models\": [\"*\"], \"http_client\": \"native\"}, "
              "{\"name\": \"c\", \"base_url\": \"https://c\", "
              "\"models\": [\"*\"]}]}");
    if (!c)
        fail_msg("rejected:\n%s", err);
    assert_true(c->upstreams[0].use_curl);
    assert_false(c->upstreams[1].use_curl);
    assert_false(c->upstreams[2].use_curl);
    config_unref(c);

    static const char *const bad[] = {
        "\"CURL\"", "\"libcurl\"", "\"\"", "true", "1", "null", "[\"curl\"]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"upstreams\": [{\"name\": \"a\", \"base_url\": "
                 "\"http://a\", \"models\": [\"*\"]}, {\"name\": \"b\", "
                 "\"base_url\": \"http://b\", \"models\": [\"*\"], "
                 "\"http_client\": %s}]}",
                 bad[i]);
        const char *e = parse_fail(json);
        if (strcmp(e, "upstreams[1].http_client: must be \"native\" or "
                      "\"curl\"\n") != 0)
            fail_msg("case %zu (%s): got:\n%s", i, bad[i], e);
    }
    /* a typo of the key itself gets the usual hint */
    assert_contains(parse_fail("{\"upstreams\": [{\"name\": \"a\", "
                               "\"base_url\": \"http://a\", \"models\": "
                               "[\"*\"], \"http_clinet\": \"curl\"}]}"),
                    "upstreams[0].http_clinet: unknown key (did you mean "
                    "\"http_client\"?)");
}

static void test_values_applied(void **state)
{
    struct config *c =
        parse("{\"listen\": \"[::1]:9000\", \"admin_listen\": \":9001\", "
              "\"workers\": 4, \"limits\": {\"max_body_bytes\": 1024, "
              "\"stream_high_water_bytes\": 8192}, "
              "\"retry\": {\"max_attempts\": 1, \"on_other_upstream\": false}, "
              "\"policy\": {\"fail\": \"closed\", \"memory_limit_kb\": 100, "
              "\"watch\": true}, \"log\": {\"level\": \"debug\", "
              "\"access_log\": \"\"}, " MOCK_UPSTREAM "}");
    assert_non_null(c);
    assert_string_equal(c->listen, "[::1]:9000");
    assert_string_equal(c->admin_listen, ":9001");
    assert_int_equal(c->workers, 4);
    assert_int_equal(c->max_body_bytes, 1024);
    assert_int_equal(c->stream_high_water, 8192);
    assert_int_equal(c->retry.max_attempts, 1);
    assert_false(c->retry.on_other_upstream);
    assert_false(c->policy.fail_open);
    assert_int_equal(c->policy.memory_limit_bytes, 100 * 1024);
    assert_true(c->policy.watch);
    assert_string_equal(c->log_level, "debug");
    assert_string_equal(c->access_log, "");
    config_unref(c);
}

/* One rule per row: a config fragment and the error it must produce. */
struct rule_case {
    const char *json;
    const char *expect;
};

static const struct rule_case rule_cases[] = {
    /* structure */
    {"[]", "(root): must be an object"},
    {"{}", "upstreams: required (at least one upstream)"},
    {"{\"upstreams\": []}", "upstreams: must be a non-empty array"},
    {"{\"upstreams\": {}}", "upstreams: must be a non-empty array"},
    {"{\"upstreams\": [1]}", "upstreams[0]: must be an object"},
    {"{\"lisen\": \":80\", " MOCK_UPSTREAM "}",
     "lisen: unknown key (did you mean \"listen\"?)"},
    {"{\"zzz\": 1, " MOCK_UPSTREAM "}", "zzz: unknown key"},
    {"{\"limits\": {\"max_conections\": 5}, " MOCK_UPSTREAM "}",
     "limits.max_conections: unknown key (did you mean \"max_connections\"?)"},
    {"{\"limits\": 5, " MOCK_UPSTREAM "}", "limits: must be an object"},
    {"{\"pipeline\": {}, " MOCK_UPSTREAM "}", "pipeline: must be an array"},
    /* types and ranges */
    {"{\"workers\": 257, " MOCK_UPSTREAM "}", "workers: must be <= 256"},
    {"{\"workers\": -1, " MOCK_UPSTREAM "}", "workers: must be >= 0"},
    {"{\"workers\": 1.5, " MOCK_UPSTREAM "}", "workers: must be an integer"},
    {"{\"workers\": \"2\", " MOCK_UPSTREAM "}", "workers: must be an integer"},
    {"{\"limits\": {\"max_connections\": 0}, " MOCK_UPSTREAM "}",
     "limits.max_connections: must be >= 1"},
    {"{\"limits\": {\"max_body_bytes\": 1000}, " MOCK_UPSTREAM "}",
     "limits.max_body_bytes: must be >= 1024"},
    {"{\"limits\": {\"max_body_bytes\": 1073741825}, " MOCK_UPSTREAM "}",
     "limits.max_body_bytes: must be <= 1073741824"},
    {"{\"limits\": {\"max_header_bytes\": 512}, " MOCK_UPSTREAM "}",
     "limits.max_header_bytes: must be >= 1024"},
    {"{\"limits\": {\"header_timeout_ms\": 0}, " MOCK_UPSTREAM "}",
     "limits.header_timeout_ms: must be >= 1"},
    {"{\"limits\": {\"idle_timeout_ms\": 3600001}, " MOCK_UPSTREAM "}",
     "limits.idle_timeout_ms: must be <= 3600000"},
    {"{\"retry\": {\"max_attempts\": 0}, " MOCK_UPSTREAM "}",
     "retry.max_attempts: must be >= 1"},
    {"{\"retry\": {\"base_delay_ms\": 500, \"max_delay_ms\": "
     "100}, " MOCK_UPSTREAM "}",
     "retry.max_delay_ms: must be >= base_delay_ms"},
    {"{\"retry\": {\"on_other_upstream\": 1}, " MOCK_UPSTREAM "}",
     "retry.on_other_upstream: must be true or false"},
    {"{\"policy\": {\"fail\": \"maybe\"}, " MOCK_UPSTREAM "}",
     "policy.fail: must be \"open\" or \"closed\""},
    {"{\"policy\": {\"memory_limit_kb\": 1}, " MOCK_UPSTREAM "}",
     "policy.memory_limit_kb: must be >= 64"},
    {"{\"policy\": {\"script\": 5}, " MOCK_UPSTREAM "}",
     "policy.script: must be a string"},
    {"{\"log\": {\"level\": \"loud\"}, " MOCK_UPSTREAM "}",
     "log.level: must be one of: error, warn, info, debug"},
    /* listen addresses */
    {"{\"listen\": \"8080\", " MOCK_UPSTREAM "}",
     "listen: must be host:port, [ipv6]:port or :port"},
    {"{\"listen\": \"host:70000\", " MOCK_UPSTREAM "}", "listen: must be"},
    {"{\"listen\": \"host:\", " MOCK_UPSTREAM "}", "listen: must be"},
    {"{\"listen\": \"1.2.3:80\", " MOCK_UPSTREAM "}", "listen: must be"},
    {"{\"listen\": \"[::1]8080\", " MOCK_UPSTREAM "}", "listen: must be"},
    {"{\"listen\": \"[zz::1]:80\", " MOCK_UPSTREAM "}", "listen: must be"},
    {"{\"listen\": \"ho st:80\", " MOCK_UPSTREAM "}", "listen: must be"},
    {"{\"admin_listen\": \"x\", " MOCK_UPSTREAM "}", "admin_listen: must be"},
    {"{\"admin_listen\": \"127.0.0.1:8080\", " MOCK_UPSTREAM "}",
     "admin_listen: must differ from listen"},
    /* upstreams */
    {"{\"upstreams\": [{\"base_url\": \"http://a\", \"models\": [\"*\"]}]}",
     "upstreams[0].name: required"},
    {"{\"upstreams\": [{\"name\": \"a\", \"models\": [\"*\"]}]}",
     "upstreams[0].base_url: required"},
    {"{\"upstreams\": [{\"name\": \"a\", \"base_url\": \"http://a\"}]}",
     "upstreams[0].models: required"},
    {"{\"upstreams\": [{\"name\": \"a b\", \"base_url\": \"http://a\", "
     "\"models\": [\"*\"]}]}",
     "upstreams[0].name: must be 1 to 63 characters from [A-Za-z0-9_.-]"},
    {"{\"upstreams\": [{\"name\": "
     "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", "
     "\"base_url\": \"http://a\", \"models\": [\"*\"]}]}",
     "upstreams[0].name: must be 1 to 63 characters"},
    {"{\"upstreams\": [{\"name\": \"a\", \"base_url\": \"ftp://a\", "
     "\"models\": [\"*\"]}]}",
     "upstreams[0].base_url: must start with http:// or https://"},
    {"{\"upstreams\": [{\"name\": \"a\", \"base_url\": \"https://\", "
     "\"models\": [\"*\"]}]}",
     "upstreams[0].base_url: must name a host"},
    {"{\"upstreams\": [{\"name\": \"a\", \"base_url\": \"http://a/v1?x=1\", "
     "\"models\": [\"*\"]}]}",
     "upstreams[0].base_url: must not contain spaces"},
    {"{\"upstreams\": [{\"name\": \"a\", \"base_url\": \"http://a\", "
     "\"models\": []}]}",
     "upstreams[0].models: must be a non-empty array"},
    {"{\"upstreams\": [{\"name\": \"a\", \"base_url\": \"http://a\", "
     "\"models\": [\"x\", 3]}]}",
     "upstreams[0].models[1]: must be a string"},
    {"{\"upstreams\": [{\"name\": \"a\", \"base_url\": \"http://a\", "
     "\"models\": [\"x\", \"x\"]}]}",
     "upstreams[0].models[1]: duplicate model"},
    {"{\"upstreams\": [{\"name\": \"a\", \"base_url\": \"http://a\", "
     "\"models\": [\"*\"], \"require_key\": true}]}",
     "upstreams[0].require_key: needs api_key_env"},
    {"{\"upstreams\": [{\"name\": \"a\", \"base_url\": \"http://a\", "
     "\"models\": [\"*\"], \"api_key_env\": \"my_key\"}]}",
     "upstreams[0].api_key_env: must be the NAME of an environment variable"},
    {"{\"upstreams\": [{\"name\": \"a\", \"base_url\": \"http://a\", "
     "\"models\": [\"*\"], \"max_connections\": 0}]}",
     "upstreams[0].max_connections: must be >= 1"},
    {"{\"upstreams\": [{\"name\": \"a\", \"base_url\": \"http://a\", "
     "\"models\": [\"*\"], \"connect_timeout_ms\": 0}]}",
     "upstreams[0].connect_timeout_ms: must be >= 1"},
    {"{\"upstreams\": [{\"name\": \"a\", \"base_url\": \"http://a\", "
     "\"models\": [\"*\"], \"modles\": []}]}",
     "upstreams[0].modles: unknown key (did you mean \"models\"?)"},
    {"{\"upstreams\": [{\"name\": \"a\", \"base_url\": \"http://a\", "
     "\"models\": [\"*\"]}, {\"name\": \"a\", \"base_url\": \"http://b\", "
     "\"models\": [\"*\"]}]}",
     "upstreams[1].name: duplicate upstream name"},
    /* fallbacks */
    {"{" MOCK_UPSTREAM ", \"fallbacks\": {\"gpt-4o\": [{\"upstream\": "
     "\"nowhere\"}]}}",
     "fallbacks[\"gpt-4o\"][0].upstream: unknown upstream (configured: mock)"},
    {"{" MOCK_UPSTREAM ", \"fallbacks\": {\"gpt-4o\": []}}",
     "fallbacks[\"gpt-4o\"]: must be a non-empty array"},
    {"{" MOCK_UPSTREAM ", \"fallbacks\": {\"gpt-4o\": [{}]}}",
     "fallbacks[\"gpt-4o\"][0]: needs \"upstream\", \"model\" or both"},
    {"{" MOCK_UPSTREAM ", \"fallbacks\": {\"gpt\": [{\"upstrem\": \"x\"}]}}",
     "fallbacks.gpt[0].upstrem: unknown key"},
    {"{\"upstreams\": [{\"name\": \"a\", \"base_url\": \"http://a\", "
     "\"models\": [\"m1\"]}], \"fallbacks\": {\"m1\": [{\"model\": "
     "\"m2\"}]}}",
     "fallbacks.m1[0].model: no upstream serves this model"},
    {"{\"upstreams\": [{\"name\": \"a\", \"base_url\": \"http://a\", "
     "\"models\": [\"m1\"]}], \"fallbacks\": {\"m2\": [{\"upstream\": "
     "\"a\"}]}}",
     "fallbacks.m2[0].upstream: this upstream does not serve the model"},
    {"{" MOCK_UPSTREAM ", \"fallbacks\": []}", "fallbacks: must be an object"},
    {"{" MOCK_UPSTREAM ", \"fallbacks\": {\"\": [{\"upstream\": \"mock\"}]}}",
     "fallbacks[\"\"]: model name must not be empty"},
    /* pipeline */
    {"{" MOCK_UPSTREAM ", \"pipeline\": [{\"plugin\": \"a\"}, {\"plugin\": "
     "\"b\"}, {\"plugin\": \"c\", \"config\": []}]}",
     "pipeline[2].config: must be an object"},
    {"{" MOCK_UPSTREAM ", \"pipeline\": [{\"name\": \"x\"}]}",
     "pipeline[0].plugin: required"},
    {"{" MOCK_UPSTREAM ", \"pipeline\": [\"a\"]}",
     "pipeline[0]: must be an object"},
    {"{" MOCK_UPSTREAM ", \"pipeline\": [{\"plugin\": \"a/b\"}]}",
     "pipeline[0].plugin: must be 1 to 63 characters"},
    {"{" MOCK_UPSTREAM ", \"pipeline\": [{\"plugin\": \"a\", \"name\": "
     "\"x\"}, {\"plugin\": \"b\", \"name\": \"x\"}]}",
     "pipeline[1].name: duplicate instance name"},
    {"{" MOCK_UPSTREAM ", \"pipeline\": [{\"plugin\": \"a\", \"cfg\": {}}]}",
     "pipeline[0].cfg: unknown key"},
    /* auth */
    {"{" MOCK_UPSTREAM ", \"auth\": {\"enabled\": true}}",
     "auth.enabled: no client keys configured"},
    {"{" MOCK_UPSTREAM ", \"auth\": {\"keys\": [{\"tenant\": \"a\"}]}}",
     "auth.keys[0].sha256: required"},
    {"{" MOCK_UPSTREAM ", \"auth\": {\"keys\": [{\"sha256\": \"abcd\"}]}}",
     "auth.keys[0].sha256: must be 64 hex characters"},
    {"{" MOCK_UPSTREAM ", \"auth\": {\"keys\": [{\"sha256\": "
     "\"zz010c48ed27f33748dac106b71ab1fd420ca52275d0bd5371ed43d41550aa19\""
     "}]}}",
     "auth.keys[0].sha256: must be 64 hex characters"},
    {"{" MOCK_UPSTREAM ", \"auth\": {\"keys\": [{\"sha256\": "
     "\"4b010c48ed27f33748dac106b71ab1fd420ca52275d0bd5371ed43d41550aa19\", "
     "\"priority\": \"urgent\"}]}}",
     "auth.keys[0].priority: must be one of: critical, realtime, standard, "
     "batch, low"},
    {"{" MOCK_UPSTREAM ", \"auth\": {\"keys\": [{\"sha256\": "
     "\"4b010c48ed27f33748dac106b71ab1fd420ca52275d0bd5371ed43d41550aa19\", "
     "\"tier\": \"pa id\"}]}}",
     "auth.keys[0].tier: must be 1 or more characters"},
    {"{" MOCK_UPSTREAM ", \"auth\": {\"keys\": [{\"sha256\": "
     "\"4b010c48ed27f33748dac106b71ab1fd420ca52275d0bd5371ed43d41550aa19\"}, "
     "{\"sha256\": "
     "\"4B010C48ED27F33748DAC106B71AB1FD420CA52275D0BD5371ED43D41550AA19\""
     "}]}}",
     "auth.keys[1]: duplicate key (same sha256 as auth.keys[0])"},
    {"{" MOCK_UPSTREAM ", \"auth\": {\"key_file\": \"/nonexistent/k.json\"}}",
     "auth.key_file: /nonexistent/k.json: cannot open"},
    {"{" MOCK_UPSTREAM ", \"auth\": {\"key_file\": 3}}",
     "auth.key_file: must be a non-empty string"},
    {"{" MOCK_UPSTREAM ", \"auth\": {\"enabld\": true}}",
     "auth.enabld: unknown key (did you mean \"enabled\"?)"},
    /* JSON itself */
    {"{\"workers\": 1, \"workers\": 2, " MOCK_UPSTREAM "}",
     "test.json:1:24: duplicate object key"},
};

static void test_rules(void **state)
{
    for (size_t i = 0; i < sizeof rule_cases / sizeof rule_cases[0]; i++) {
        const char *e = parse_fail(rule_cases[i].json);
        if (!strstr(e, rule_cases[i].expect))
            fail_msg("case %zu: expected \"%s\" in:\n%s", i,
                     rule_cases[i].expect, e);
    }
}

/* Values that must be accepted. */
static void test_valid_values(void **state)
{
    static const char *const ok[] = {
        "{\"listen\": \":8080\", " MOCK_UPSTREAM "}",
        "{\"listen\": \"0.0.0.0:0\", " MOCK_UPSTREAM "}",
        "{\"listen\": \"localhost:65535\", " MOCK_UPSTREAM "}",
        "{\"listen\": \"[::]:80\", " MOCK_UPSTREAM "}",
        "{\"listen\": \"[fe80::1]:80\", \"admin_listen\": "
        "\"[::1]:81\", " MOCK_UPSTREAM "}",
        "{\"workers\": 256, " MOCK_UPSTREAM "}",
        "{\"limits\": {\"max_body_bytes\": 1073741824}, " MOCK_UPSTREAM "}",
        "{\"upstreams\": [{\"name\": \"A.b_c-1\", \"base_url\": "
        "\"https://h:443/x/\", \"models\": [\"m\"], \"api_key_env\": "
        "\"MY_KEY_2\"}]}",
        "{" MOCK_UPSTREAM ", \"fallbacks\": {\"*\": [{\"upstream\": "
        "\"mock\", \"model\": \"other\"}]}}",
        "{" MOCK_UPSTREAM ", \"auth\": {\"enabled\": false, \"keys\": []}}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct config *c = parse(ok[i]);
        if (!c)
            fail_msg("case %zu rejected:\n%s", i, err);
        config_unref(c);
    }
}

static void test_all_errors_collected(void **state)
{
    struct config *c =
        config_load(FIXTURES "/many_errors.json", err, sizeof err);
    assert_null(c);
    static const char *const expected[] = {
        "listen: must be host:port",
        "workers: must be <= 256",
        "limits.max_body_bytes: must be >= 1024",
        "limits.max_conections: unknown key",
        "upstreams[0].base_url: must start with http:// or https://",
        ("upstreams[0].api_key_env: must be the NAME of an environment "
         "variable, not the key itself"),
        "upstreams[1].name: duplicate upstream name",
        "fallbacks[\"gpt-4o\"][0].upstream: unknown upstream",
        "policy.fail: must be \"open\" or \"closed\"",
        "pipeline[1].config: must be an object",
        "pipeline[2]: must be an object",
        "log.level: must be one of",
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        assert_contains(err, expected[i]);
    assert_int_equal(count_lines(err), sizeof expected / sizeof expected[0]);
    assert_null(strstr(err, "FAKEKEY"));
}

static void test_error_buffer_truncation(void **state)
{
    /* 40 unknown keys into a small buffer: whole lines, then a count. */
    char json[4096] = "{";
    for (int i = 0; i < 40; i++) {
        char k[32];
        snprintf(k, sizeof k, "\"bogus_%02d\": 1, ", i);
        strcat(json, k);
    }
    strcat(json, MOCK_UPSTREAM "}");
    char small[300];
    assert_null(config_parse(json, "/tmp", "t", small, sizeof small));
    assert_true(strlen(small) < sizeof small);
    assert_contains(small, "bogus_00: unknown key\n");
    assert_contains(small, "more errors\n");
    assert_null(config_parse(json, "/tmp", "t", NULL, 0));
}

/* Secrets put in the wrong place are refused without being repeated. */
static void test_secrets_not_echoed(void **state)
{
    static const struct {
        const char *json;
        const char *secret;
    } cases[] = {
        {"{\"upstreams\": [{\"name\": \"a\", \"base_url\": \"http://a\", "
         "\"models\": [\"*\"], \"api_key_env\": \"sk-FAKE1234567890\"}]}",
         "FAKE1234567890"},
        {"{\"upstreams\": [{\"name\": \"a\", \"base_url\": \"http://a\", "
         "\"models\": [\"*\"], \"api_key_env\": "
         "\"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123"
         "456789\"}]}",
         "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"},
        {"{\"upstreams\": [{\"name\": \"a\", \"base_url\": "
         "\"https://user:hunter2secret@a/v1\", \"models\": [\"*\"]}]}",
         "hunter2secret"},
        {"{" MOCK_UPSTREAM ", \"auth\": {\"keys\": [{\"sha256\": "
         "\"sk-sluice-plaintext-oops\"}]}}",
         "plaintext-oops"},
        {"{" MOCK_UPSTREAM ", \"sk-live-key-as-a-key\": 1}", "live-key"},
        {"{" MOCK_UPSTREAM ", \"log\": {\"level\": \"sk-level-secret\"}}",
         "level-secret"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *e = parse_fail(cases[i].json);
        if (strstr(e, cases[i].secret))
            fail_msg("case %zu echoed the secret:\n%s", i, e);
    }
    parse_fail(cases[0].json);
    assert_contains(err, "upstreams[0].api_key_env: must be the NAME of an "
                         "environment variable, not the key itself");
    parse_fail(cases[2].json);
    assert_contains(err, "upstreams[0].base_url: must not contain "
                         "credentials");
}

static void test_malformed_json(void **state)
{
    const char *file = FIXTURES "/malformed.json";
    assert_null(config_load(file, err, sizeof err));
    char prefix[PATH_MAX + 16];
    snprintf(prefix, sizeof prefix, "%s:4:", file);
    assert_contains(err, prefix);
    assert_int_equal(count_lines(err), 1);

    assert_null(config_load(FIXTURES "/does-not-exist.json", err, sizeof err));
    assert_contains(err, "does-not-exist.json: cannot open");

    assert_null(parse("{\"upstreams\": [ "));
    assert_contains(err, "test.json:1:");
}

static void test_relative_paths(void **state)
{
    struct config *c = config_load(FIXTURES "/paths.json", err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    char parent[PATH_MAX];
    assert_non_null(realpath(FIXTURES "/..", parent));
    char want[PATH_MAX + 64];

    snprintf(want, sizeof want, "%s/policies/test.lua", parent);
    assert_string_equal(c->policy.script, want);
    snprintf(want, sizeof want, "%s/configs/plugins", parent);
    assert_string_equal(c->plugin_dir, want);
    snprintf(want, sizeof want, "%s/configs/lib/custom.so", parent);
    assert_string_equal(c->pipeline[0].path, want);
    snprintf(want, sizeof want, "%s/configs/logs/access.log", parent);
    assert_string_equal(c->access_log, want);
    snprintf(want, sizeof want, "%s/configs/paths.json", parent);
    assert_string_equal(c->source_path, want);
    /* trailing slash dropped; keys came from the relative key_file */
    assert_string_equal(c->upstreams[0].base_url, "http://127.0.0.1:9099/v1");
    assert_int_equal(c->key_count, 2);
    config_unref(c);

    /* config_parse: base_dir plays the config file's directory. */
    c = config_parse("{" MOCK_UPSTREAM ", \"policy\": {\"script\": "
                     "\"p.lua\"}, \"plugin_dir\": \"/abs/./dir/\"}",
                     "/srv/sluice/etc", "t", err, sizeof err);
    assert_non_null(c);
    assert_string_equal(c->policy.script, "/srv/sluice/etc/p.lua");
    assert_string_equal(c->plugin_dir, "/abs/dir");
    config_unref(c);
}

static void test_key_file(void **state)
{
    const char *json = "{" MOCK_UPSTREAM ", \"auth\": {\"key_file\": "
                       "\"keys_bad.json\", \"keys\": [{\"sha256\": "
                       "\"6b3c09816508536c103ba89a3796824caca41c08290f96425c"
                       "a851f1c4c53d1d\"}]}}";
    assert_null(config_parse(json, FIXTURES, "t", err, sizeof err));
    assert_contains(err, "auth.key_file[1].sha256: must be 64 hex characters");
    assert_contains(err, "auth.key_file[2].priority: must be one of");
    assert_null(strstr(err, "plaintext-key"));
    assert_int_equal(count_lines(err), 2);

    json = "{" MOCK_UPSTREAM ", \"auth\": {\"key_file\": "
           "\"keys_malformed.json\"}}";
    assert_null(config_parse(json, FIXTURES, "t", err, sizeof err));
    assert_contains(err, "auth.key_file: " FIXTURES "/keys_malformed.json:");

    json = "{" MOCK_UPSTREAM ", \"auth\": {\"key_file\": \"paths.json\"}}";
    assert_null(config_parse(json, FIXTURES, "t", err, sizeof err));
    assert_contains(err, "must hold a JSON array of key objects");

    json = "{" MOCK_UPSTREAM ", \"auth\": {\"key_file\": \".\"}}";
    assert_null(config_parse(json, FIXTURES, "t", err, sizeof err));
    assert_contains(err, "not a regular file");

    /* the same key in the file and inline */
    json = "{" MOCK_UPSTREAM ", \"auth\": {\"key_file\": \"keys.json\", "
           "\"keys\": [{\"sha256\": \"6b3c09816508536c103ba89a3796824caca41"
           "c08290f96425ca851f1c4c53d1d\"}]}}";
    assert_null(config_parse(json, FIXTURES, "t", err, sizeof err));
    assert_contains(err, "auth.key_file[1]: duplicate key (same sha256 as "
                         "auth.keys[0])");
}

static void test_pipeline(void **state)
{
    struct config *c =
        parse("{" MOCK_UPSTREAM ", \"pipeline\": ["
              "{\"plugin\": \"token_bucket\", \"config\": {\"rpm\": 5}},"
              "{\"plugin\": \"token_bucket\"},"
              "{\"plugin\": \"breaker\", \"name\": \"token_bucket_3\"},"
              "{\"plugin\": \"token_bucket\"},"
              "{\"plugin\": \"noop\", \"name\": \"first\"}]}");
    if (!c)
        fail_msg("%s", err);
    assert_int_equal(c->pipeline_count, 5);
    assert_string_equal(c->pipeline[0].name, "token_bucket");
    assert_string_equal(c->pipeline[1].name, "token_bucket_2");
    assert_string_equal(c->pipeline[2].name, "token_bucket_3");
    assert_string_equal(c->pipeline[2].plugin, "breaker");
    assert_string_equal(c->pipeline[3].name, "token_bucket_4");
    assert_string_equal(c->pipeline[4].name, "first");
    assert_string_equal(c->pipeline[0].path, "");
    for (size_t i = 0; i < c->pipeline_count; i++)
        assert_true(json_is_object(c->pipeline[i].config));
    assert_int_equal(
        json_integer_value(json_object_get(c->pipeline[0].config, "rpm")), 5);
    assert_int_equal(json_object_size(c->pipeline[1].config), 0);
    config_unref(c);
}

static void test_refcounting(void **state)
{
    struct config *c =
        parse("{" MOCK_UPSTREAM ", \"pipeline\": [{\"plugin\": \"a\", "
              "\"config\": {\"x\": [1, 2]}}]}");
    assert_non_null(c);
    json_t *conf = c->pipeline[0].config;
    /* The document is gone; the config holds the only reference. */
    assert_int_equal(conf->refcount, 1);
    assert_ptr_equal(config_ref(c), c);
    assert_int_equal(atomic_load(&c->refs), 2);
    config_unref(c);
    assert_int_equal(atomic_load(&c->refs), 1);
    json_incref(conf); /* a plugin instance keeps it past the config */
    config_unref(c);
    assert_int_equal(conf->refcount, 1);
    json_decref(conf);
    config_unref(NULL);
    assert_null(config_ref(NULL));
}

static const char *const routing_json =
    "{\"upstreams\": ["
    "{\"name\": \"openai\", \"base_url\": \"https://api.openai.com/v1\", "
    "\"api_key_env\": \"SLUICE_TEST_OPENAI_KEY\", \"require_key\": true, "
    "\"models\": [\"gpt-4o\", \"gpt-4o-mini\"]},"
    "{\"name\": \"local\", \"base_url\": \"http://127.0.0.1:1/v1\", "
    "\"api_key_env\": \"SLUICE_TEST_LOCAL_KEY\", "
    "\"models\": [\"llama\", \"gpt-4o-mini\"]},"
    "{\"name\": \"mock\", \"base_url\": \"http://127.0.0.1:9099/v1\", "
    "\"models\": [\"*\"]}],"
    "\"fallbacks\": {\"gpt-4o\": [{\"upstream\": \"mock\"}, {\"model\": "
    "\"gpt-4o-mini\"}], \"*\": [{\"upstream\": \"mock\"}]}}";

static const char *route(const struct config *c, const char *model)
{
    const struct upstream_config *u =
        config_route_model(c, model, strlen(model));
    return u ? u->name : "(none)";
}

static void test_routing(void **state)
{
    struct config *c = parse(routing_json);
    if (!c)
        fail_msg("%s", err);

    unsetenv("SLUICE_TEST_OPENAI_KEY");
    unsetenv("SLUICE_TEST_LOCAL_KEY");
    assert_false(config_upstream_enabled(&c->upstreams[0]));
    assert_true(config_upstream_enabled(&c->upstreams[1])); /* optional key */
    assert_string_equal(route(c, "gpt-4o"), "mock");
    assert_string_equal(route(c, "gpt-4o-mini"), "local");
    assert_string_equal(route(c, "anything"), "mock");

    setenv("SLUICE_TEST_OPENAI_KEY", "", 1); /* empty counts as unset */
    assert_string_equal(route(c, "gpt-4o"), "mock");

    setenv("SLUICE_TEST_OPENAI_KEY", "sk-test", 1);
    assert_true(config_upstream_enabled(&c->upstreams[0]));
    assert_string_equal(route(c, "gpt-4o"), "openai");
    assert_string_equal(route(c, "gpt-4o-mini"), "openai");
    /* exact match only: a prefix or a longer name is another model */
    assert_string_equal(route(c, "gpt-4o-"), "mock");
    assert_string_equal(route(c, "gpt-4"), "mock");
    /* length-counted: the bytes after model_len are not part of the name */
    const struct upstream_config *u = config_route_model(c, "gpt-4o-mini", 6);
    assert_string_equal(u->name, "openai");
    u = config_route_model(c, "gpt-4o\0x", 8);
    assert_string_equal(u->name, "mock");
    unsetenv("SLUICE_TEST_OPENAI_KEY");

    assert_non_null(config_upstream(c, "local", 5));
    assert_non_null(config_upstream(c, "localhost", 5));
    assert_null(config_upstream(c, "loc", 3));
    assert_null(config_upstream(c, "nope", 4));
    config_unref(c);

    /* no wildcard and no enabled upstream: nothing routes */
    c = parse("{\"upstreams\": [{\"name\": \"o\", \"base_url\": \"http://o\", "
              "\"api_key_env\": \"SLUICE_TEST_OPENAI_KEY\", \"require_key\": "
              "true, \"models\": [\"gpt-4o\"]}]}");
    assert_non_null(c);
    assert_null(config_route_model(c, "gpt-4o", 6));
    config_unref(c);
}

static void test_fallbacks(void **state)
{
    struct config *c = parse(routing_json);
    assert_non_null(c);
    const struct fallback_chain *f = config_fallbacks(c, "gpt-4o", 6);
    assert_non_null(f);
    assert_string_equal(f->model, "gpt-4o");
    assert_int_equal(f->step_count, 2);
    assert_string_equal(f->steps[0].upstream, "mock");
    assert_string_equal(f->steps[0].model, "");
    assert_string_equal(f->steps[1].upstream, "");
    assert_string_equal(f->steps[1].model, "gpt-4o-mini");

    f = config_fallbacks(c, "llama", 5);
    assert_non_null(f);
    assert_string_equal(f->model, "*");
    config_unref(c);

    c = parse("{" MOCK_UPSTREAM "}");
    assert_null(config_fallbacks(c, "gpt-4o", 6));
    config_unref(c);
}

static void test_key_lookup(void **state)
{
    struct config *c =
        config_parse("{" MOCK_UPSTREAM ", \"auth\": {\"enabled\": true, "
                     "\"key_file\": \"keys.json\"}}",
                     FIXTURES, "t", err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    assert_true(c->auth_enabled);
    assert_int_equal(c->key_count, 2);

    const char *alice = "sk-sluice-test-alice";
    const struct client_key *k = config_find_key(c, alice, strlen(alice));
    assert_non_null(k);
    assert_string_equal(k->tenant, "acme");
    assert_string_equal(k->user, "alice");
    assert_string_equal(k->tier, "paid");
    assert_string_equal(k->priority, "realtime");

    const char *bob = "sk-sluice-test-bob"; /* stored as upper-case hex */
    k = config_find_key(c, bob, strlen(bob));
    assert_non_null(k);
    assert_string_equal(k->tenant, "globex");
    assert_string_equal(k->tier, "default");
    assert_string_equal(k->priority, "");

    assert_null(config_find_key(c, "sk-sluice-test-carol", 20));
    assert_null(config_find_key(c, alice, strlen(alice) - 1));
    assert_null(config_find_key(c, "", 0));
    config_unref(c);

    c = parse("{" MOCK_UPSTREAM "}");
    assert_null(config_find_key(c, alice, strlen(alice)));
    config_unref(c);
}

/* Many keys: each is found again after sorting, in any position. */
static void test_key_lookup_many(void **state)
{
    enum { N = 600 };
    json_t *keys = json_array();
    char token[32];
    for (int i = 0; i < N; i++) {
        snprintf(token, sizeof token, "tok-%d", i);
        unsigned char d[32];
        unsigned int dl;
        EVP_Digest(token, strlen(token), d, &dl, EVP_sha256(), NULL);
        char hex[65];
        for (int b = 0; b < 32; b++)
            snprintf(hex + 2 * b, 3, "%02x", d[b]);
        char user[32];
        snprintf(user, sizeof user, "u%d", i);
        json_array_append_new(
            keys, json_pack("{s:s, s:s}", "sha256", hex, "user", user));
    }
    json_t *root = json_pack("{s:{s:b, s:o}, s:[{s:s, s:s, s:[s]}]}", "auth",
                             "enabled", 1, "keys", keys, "upstreams", "name",
                             "mock", "base_url", "http://m", "models", "*");
    char *text = json_dumps(root, 0);
    json_decref(root);
    struct config *c = parse(text);
    free(text);
    if (!c)
        fail_msg("%s", err);
    assert_int_equal(c->key_count, N);
    for (size_t i = 1; i < c->key_count; i++)
        assert_true(memcmp(c->keys[i - 1].sha256, c->keys[i].sha256, 32) < 0);
    for (int i = 0; i < N; i++) {
        snprintf(token, sizeof token, "tok-%d", i);
        const struct client_key *k = config_find_key(c, token, strlen(token));
        assert_non_null(k);
        char user[32];
        snprintf(user, sizeof user, "u%d", i);
        assert_string_equal(k->user, user);
    }
    assert_null(config_find_key(c, "tok-600", 7));
    config_unref(c);
}

static void load_ok(const char *file)
{
    struct config *c = config_load(file, err, sizeof err);
    if (!c)
        fail_msg("%s did not load:\n%s", file, err);
    config_unref(c);
}

static void test_shipped_configs(void **state)
{
    load_ok(SLUICE_SOURCE_DIR "/config/sluice.json");

    struct config *c =
        config_load(SLUICE_SOURCE_DIR "/config/sluice.json", err, sizeof err);
    assert_non_null(c);
    assert_string_equal(c->listen, "127.0.0.1:8080");
    assert_string_equal(c->admin_listen, "");
    assert_int_equal(c->upstream_count, 2);
    assert_string_equal(c->upstreams[0].name, "openai");
    assert_true(c->upstreams[0].require_key);
    assert_string_equal(c->upstreams[1].name, "mock");
    assert_string_equal(c->policy.script,
                        SLUICE_SOURCE_DIR "/policies/default.lua");
    assert_int_equal(c->pipeline_count, 0);
    /* With no provider key everything lands on the bundled mock. */
    const char *saved = getenv("OPENAI_API_KEY");
    char *copy = saved ? strdup(saved) : NULL;
    unsetenv("OPENAI_API_KEY");
    assert_string_equal(route(c, "gpt-4o"), "mock");
    if (copy) {
        setenv("OPENAI_API_KEY", copy, 1);
        free(copy);
    }
    config_unref(c);

    const char *dir = SLUICE_SOURCE_DIR "/examples/configs";
    DIR *d = opendir(dir);
    assert_non_null(d);
    int loaded = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        char file[PATH_MAX];
        snprintf(file, sizeof file, "%s/%s", dir, e->d_name);
        load_ok(file);
        loaded++;
    }
    closedir(d);
    assert_true(loaded >= 4);

    c = config_load(SLUICE_SOURCE_DIR "/examples/configs/bench-noop.json", err,
                    sizeof err);
    assert_non_null(c);
    assert_int_equal(c->workers, 1);
    assert_int_equal(c->pipeline_count, 3);
    assert_string_equal(c->pipeline[2].name, "noop_3");
    config_unref(c);
}

static void test_default_path(void **state)
{
    const char *p = config_default_path();
    assert_non_null(p);
    size_t len = strlen(p);
    assert_true(len > 11);
    assert_string_equal(p + len - 11, "sluice.json");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_http_client),
        cmocka_unit_test(test_values_applied),
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_valid_values),
        cmocka_unit_test(test_all_errors_collected),
        cmocka_unit_test(test_error_buffer_truncation),
        cmocka_unit_test(test_secrets_not_echoed),
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_key_file),
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_refcounting),
        cmocka_unit_test(test_routing),
        cmocka_unit_test(test_fallbacks),
        cmocka_unit_test(test_key_lookup),
        cmocka_unit_test(test_key_lookup_many),
        cmocka_unit_test(test_shipped_configs),
        cmocka_unit_test(test_default_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
