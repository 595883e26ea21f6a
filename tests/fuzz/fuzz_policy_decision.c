/* libFuzzer harness for the Lua policy engine. The input is spliced into
 *
 *     function decide(req, ctx) return <input>
 *     end
 *
 * so most inputs are table literals for the return-value validation, and
 * the rest is arbitrary Lua against the sandbox. Each input is loaded and
 * decided twice (the state must survive a failed call); the decision's
 * invariants are checked; nothing may crash, hang or leak. */
#include "policy/policy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const fuzz_body =
    "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":"
    "\"hi\"},null],\"max_tokens\":64,\"n\":1.5}";

static const char *fuzz_text(void *ctx, size_t *len)
{
    *len = strlen(ctx);
    return ctx;
}

static const char *fuzz_body_text(void *ctx, size_t *len)
{
    *len = strlen(fuzz_body);
    return fuzz_body;
}

static const char *fuzz_lookup(void *ctx, const char *name, size_t *len)
{
    if (strcmp(name, "x-priority") != 0 && strcmp(name, "note") != 0)
        return NULL;
    *len = 5;
    return "batch";
}

static bool fuzz_stream(void *ctx)
{
    return true;
}

static uint64_t fuzz_count(void *ctx)
{
    return 42;
}

static const char *fuzz_priority(void *ctx)
{
    return "standard";
}

static bool fuzz_health(void *ctx, const char *name, double *value)
{
    *value = 0.5;
    return strncmp(name, "budget.", 7) == 0;
}

static double fuzz_now(void *ctx)
{
    return 1000.0;
}

static char script_path[64];

static void remove_script(void)
{
    unlink(script_path);
}

static int write_script(const uint8_t *data, size_t size)
{
    if (script_path[0] == '\0') {
        snprintf(script_path, sizeof script_path,
                 "/tmp/sluice_fuzz_policy_XXXXXX.lua");
        int fd = mkstemps(script_path, 4);
        if (fd < 0)
            abort();
        close(fd);
        atexit(remove_script);
    }
    FILE *f = fopen(script_path, "wb");
    if (f == NULL)
        return -1;
    fputs("function decide(req, ctx) return ", f);
    fwrite(data, 1, size, f);
    /* On its own line, so a trailing "--" comment cannot swallow it. */
    fputs("\nend\n", f);
    return fclose(f);
}

static bool terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

/* What every consumer of a decision relies on. */
static void check_decision(const struct policy_decision *d)
{
    bool ok = terminated(d->reject_message, sizeof d->reject_message) &&
              terminated(d->upstream, sizeof d->upstream) &&
              terminated(d->model, sizeof d->model) &&
              terminated(d->priority, sizeof d->priority) &&
              d->degrade_level >= -1 && d->degrade_level <= 9 &&
              d->tag_count <= POLICY_MAX_TAGS && d->var_count <= 8 &&
              (d->reject ? d->reject_status >= 400 && d->reject_status <= 599
                         : d->reject_status == 0);
    for (size_t i = 0; ok && i < d->tag_count; i++)
        ok = terminated(d->tags[i], sizeof d->tags[i]) && d->tags[i][0];
    for (size_t i = 0; ok && i < d->var_count; i++)
        ok = terminated(d->vars[i][0], sizeof d->vars[i][0]) &&
             terminated(d->vars[i][1], sizeof d->vars[i][1]);
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096 || write_script(data, size) != 0)
        return 0;

    const struct policy_limits limits = {
        .instruction_budget = 100000,
        .memory_limit_bytes = 2u << 20,
        .max_pattern_work = 100000,
    };
    const struct policy_env env = {
        .ctx = NULL, .health = fuzz_health, .now_s = fuzz_now};
    char err[512];
    struct policy *p = policy_load(script_path, &limits, &env, err, sizeof err);
    if (p == NULL)
        return 0;

    const struct policy_req_view view = {
        .ctx = (void *)"gpt-4o",
        .model = fuzz_text,
        .endpoint = fuzz_text,
        .tenant = fuzz_text,
        .user = fuzz_text,
        .tier = fuzz_text,
        .header = fuzz_lookup,
        .stream = fuzz_stream,
        .message_count = fuzz_count,
        .message_bytes = fuzz_count,
        .input_tokens = fuzz_count,
        .max_tokens = fuzz_count,
        .priority = fuzz_priority,
        .body = fuzz_body_text,
        .var = fuzz_lookup,
    };
    for (int i = 0; i < 2; i++) {
        struct policy_decision d;
        policy_decide(p, &view, &d, err, sizeof err);
        check_decision(&d);
    }
    policy_free(p);
    return 0;
}
