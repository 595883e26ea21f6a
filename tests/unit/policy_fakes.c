/* Shared by the policy unit tests: fakes of what the gateway gives a
 * policy (the request view, the health/clock environment) and loading a
 * script from text. */
#include "policy_fakes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

const struct policy_limits test_limits = {
    .instruction_budget = 1000000,
    .memory_limit_bytes = 4u << 20,
    .max_pattern_work = 1000000,
};

char *write_temp(const void *text, size_t len)
{
    char *path = strdup("/tmp/sluice_test_policy_XXXXXX.lua");
    int fd = path != NULL ? mkstemps(path, 4) : -1;
    if (fd < 0 || write(fd, text, len) != (ssize_t)len) {
        perror("write_temp");
        abort();
    }
    close(fd);
    return path;
}

struct policy *load_text(const char *text, char *err, size_t errlen,
                         char *path_out, size_t path_len)
{
    char *path = write_temp(text, strlen(text));
    struct policy *p = policy_load(path, &test_limits, &test_env, err, errlen);
    if (path_out != NULL)
        snprintf(path_out, path_len, "%s", path);
    unlink(path);
    free(path);
    return p;
}

static const char *text_of(const char *s, size_t *len)
{
    if (s != NULL)
        *len = strlen(s);
    return s;
}

static const char *fr_model(void *c, size_t *len)
{
    return text_of(((struct fake_req *)c)->model, len);
}
static const char *fr_endpoint(void *c, size_t *len)
{
    return text_of(((struct fake_req *)c)->endpoint, len);
}
static const char *fr_tenant(void *c, size_t *len)
{
    return text_of(((struct fake_req *)c)->tenant, len);
}
static const char *fr_user(void *c, size_t *len)
{
    return text_of(((struct fake_req *)c)->user, len);
}
static const char *fr_tier(void *c, size_t *len)
{
    return text_of(((struct fake_req *)c)->tier, len);
}
static const char *fr_body(void *c, size_t *len)
{
    struct fake_req *r = c;
    r->body_reads++;
    return text_of(r->body, len);
}
static const char *fr_priority(void *c)
{
    return ((struct fake_req *)c)->priority;
}
static bool fr_stream(void *c)
{
    return ((struct fake_req *)c)->stream;
}
static uint64_t fr_message_count(void *c)
{
    return ((struct fake_req *)c)->message_count;
}
static uint64_t fr_message_bytes(void *c)
{
    return ((struct fake_req *)c)->message_bytes;
}
static uint64_t fr_input_tokens(void *c)
{
    return ((struct fake_req *)c)->input_tokens;
}
static uint64_t fr_max_tokens(void *c)
{
    return ((struct fake_req *)c)->max_tokens;
}

static const char *lookup(const char *(*pairs)[2], size_t n, const char *name,
                          size_t *len)
{
    for (size_t i = 0; i < n && pairs[i][0] != NULL; i++)
        if (strcasecmp(pairs[i][0], name) == 0)
            return text_of(pairs[i][1], len);
    return NULL;
}
static const char *fr_header(void *c, const char *name, size_t *len)
{
    struct fake_req *r = c;
    return lookup(r->headers, 8, name, len);
}
static const char *fr_var(void *c, const char *name, size_t *len)
{
    struct fake_req *r = c;
    return lookup(r->vars, 4, name, len);
}

struct policy_req_view view_of(struct fake_req *r)
{
    return (struct policy_req_view){
        .ctx = r,
        .model = fr_model,
        .endpoint = fr_endpoint,
        .tenant = fr_tenant,
        .user = fr_user,
        .tier = fr_tier,
        .header = fr_header,
        .stream = fr_stream,
        .message_count = fr_message_count,
        .message_bytes = fr_message_bytes,
        .input_tokens = fr_input_tokens,
        .max_tokens = fr_max_tokens,
        .priority = fr_priority,
        .body = fr_body,
        .var = fr_var,
    };
}

/* ---- fake gateway health and clock ---- */

static bool fe_health(void *c, const char *name, double *value)
{
    struct fake_env *e = c;
    for (size_t i = 0; i < 8 && e->names[i] != NULL; i++) {
        if (strcmp(e->names[i], name) == 0) {
            *value = e->values[i];
            return true;
        }
    }
    return false;
}

static double fe_now(void *c)
{
    return ((struct fake_env *)c)->now;
}

struct fake_env test_env_state;
const struct policy_env test_env = {
    .ctx = &test_env_state, .health = fe_health, .now_s = fe_now};
