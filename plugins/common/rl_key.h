/* Key templates: which requests share a limit.
 *
 * "global", "{tenant}", "{user}", "{tier}", "{key}", "{model}",
 * "{target_model}", "{upstream}", "{endpoint}", "{header.x-service}",
 * "{var.NAME}" and any mix with literal text ("{tenant}:{model}").
 * Substituted values are escaped (%XX for '%', ':', '{', '}', spaces and
 * control bytes), so "a:b" + "c" never meets "a" + "b:c", and a value can
 * not break a Redis hash tag. A missing value renders as "". Keys longer
 * than RL_KEY_MAX keep their head and end in "#" + a 64-bit hash of the
 * whole key, so memory per key stays bounded. */
#ifndef RL_KEY_H
#define RL_KEY_H

#include <stddef.h>

#include "sluice/host.h"

#define RL_KEY_MAX 200

enum rl_key_src {
    RL_KEY_LITERAL,
    RL_KEY_TENANT,
    RL_KEY_USER,
    RL_KEY_TIER,
    RL_KEY_CLIENT_KEY,
    RL_KEY_MODEL,
    RL_KEY_TARGET_MODEL,
    RL_KEY_UPSTREAM,
    RL_KEY_ENDPOINT,
    RL_KEY_HEADER,
    RL_KEY_VAR,
};

struct rl_key_part {
    enum rl_key_src src;
    char *text; /* literal text, header or var name (NUL-terminated) */
    size_t len;
};

struct rl_key_tmpl {
    struct rl_key_part *parts;
    size_t n;
};

/* Returns 0, or -1 with a message like "unknown placeholder {foo}". */
int rl_key_compile(struct rl_key_tmpl *t, const char *src, char *err,
                   size_t errlen);
void rl_key_free(struct rl_key_tmpl *t);

/* Writes the request's key into buf (cap > RL_KEY_MAX) and returns its
 * length. tier_override, when non-empty, stands in for {tier}. */
size_t rl_key_render(const struct rl_key_tmpl *t, const struct sluice_host *h,
                     const struct sluice_req *r,
                     struct sluice_str tier_override, char *buf, size_t cap);

#endif
