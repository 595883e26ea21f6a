#include "rl_key.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    enum rl_key_src src;
} placeholders[] = {
    {"tenant", RL_KEY_TENANT},     {"user", RL_KEY_USER},
    {"tier", RL_KEY_TIER},         {"key", RL_KEY_CLIENT_KEY},
    {"model", RL_KEY_MODEL},       {"target_model", RL_KEY_TARGET_MODEL},
    {"upstream", RL_KEY_UPSTREAM}, {"endpoint", RL_KEY_ENDPOINT},
};

static int add_part(struct rl_key_tmpl *t, enum rl_key_src src,
                    const char *text, size_t len)
{
    struct rl_key_part *p = realloc(t->parts, (t->n + 1) * sizeof *p);
    if (!p)
        return -1;
    t->parts = p;
    p[t->n].src = src;
    p[t->n].len = len;
    p[t->n].text = strndup(text ? text : "", len);
    if (!p[t->n].text)
        return -1;
    t->n++;
    return 0;
}

static int parse_placeholder(struct rl_key_tmpl *t, const char *name,
                             size_t len, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof placeholders / sizeof placeholders[0]; i++)
        if (strlen(placeholders[i].name) == len &&
            memcmp(placeholders[i].name, name, len) == 0)
            return add_part(t, placeholders[i].src, NULL, 0);
    if (len > 7 && memcmp(name, "header.", 7) == 0)
        return add_part(t, RL_KEY_HEADER, name + 7, len - 7);
    if (len > 4 && memcmp(name, "var.", 4) == 0)
        return add_part(t, RL_KEY_VAR, name + 4, len - 4);
    snprintf(err, errlen,
             "unknown placeholder {%.*s} (use tenant, user, tier, key, "
             "model, target_model, upstream, endpoint, header.NAME or "
             "var.NAME)",
             (int)len, name);
    return -1;
}

int rl_key_compile(struct rl_key_tmpl *t, const char *src, char *err,
                   size_t errlen)
{
    memset(t, 0, sizeof *t);
    if (!src || !*src) {
        snprintf(err, errlen, "must not be empty (use \"global\")");
        return -1;
    }
    const char *p = src;
    while (*p) {
        const char *open = strchr(p, '{');
        if (open != p) {
            size_t n = open ? (size_t)(open - p) : strlen(p);
            if (memchr(p, '}', n)) {
                snprintf(err, errlen, "unbalanced '}'");
                goto fail;
            }
            if (add_part(t, RL_KEY_LITERAL, p, n))
                goto nomem;
            p += n;
            continue;
        }
        const char *close = strchr(open, '}');
        if (!close) {
            snprintf(err, errlen, "unterminated '{'");
            goto fail;
        }
        if (parse_placeholder(t, open + 1, (size_t)(close - open - 1), err,
                              errlen))
            goto fail;
        p = close + 1;
    }
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    rl_key_free(t);
    return -1;
}

void rl_key_free(struct rl_key_tmpl *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->parts[i].text);
    free(t->parts);
    memset(t, 0, sizeof *t);
}

/* Appends while hashing everything (FNV-1a: deterministic across
 * instances, which Redis keys need), keeping at most `keep` bytes. */
struct sink {
    char *buf;
    size_t len, keep, total;
    uint64_t hash;
};

static void put(struct sink *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        s->hash = (s->hash ^ (unsigned char)p[i]) * 0x100000001b3ull;
        if (s->len < s->keep)
            s->buf[s->len++] = p[i];
    }
    s->total += n;
}

static void put_escaped(struct sink *s, struct sluice_str v)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.ptr[i];
        if (c <= ' ' || c >= 0x7f || c == '%' || c == ':' || c == '{' ||
            c == '}') {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            put(s, e, 3);
        } else {
            put(s, (const char *)&c, 1);
        }
    }
}

static struct sluice_str value_of(const struct rl_key_part *p,
                                  const struct sluice_host *h,
                                  const struct sluice_req *r,
                                  struct sluice_str tier_override)
{
    switch (p->src) {
    case RL_KEY_TENANT:
        return h->req_identity(r, SLUICE_ID_TENANT);
    case RL_KEY_USER:
        return h->req_identity(r, SLUICE_ID_USER);
    case RL_KEY_TIER:
        return tier_override.len ? tier_override
                                 : h->req_identity(r, SLUICE_ID_TIER);
    case RL_KEY_CLIENT_KEY:
        return h->req_identity(r, SLUICE_ID_KEY);
    case RL_KEY_MODEL:
        return h->req_model(r);
    case RL_KEY_TARGET_MODEL:
        return h->req_target_model(r);
    case RL_KEY_UPSTREAM:
        return h->req_upstream(r);
    case RL_KEY_ENDPOINT:
        return h->req_endpoint(r);
    case RL_KEY_HEADER:
        return h->req_header(r, p->text);
    case RL_KEY_VAR:
        return h->var_get(r, p->text);
    case RL_KEY_LITERAL:
        break;
    }
    return (struct sluice_str){p->text, p->len};
}

size_t rl_key_render(const struct rl_key_tmpl *t, const struct sluice_host *h,
                     const struct sluice_req *r,
                     struct sluice_str tier_override, char *buf, size_t cap)
{
    /* Room for the head, '#' and 16 hex digits of the hash. */
    struct sink s = {buf, 0, RL_KEY_MAX, 0, 0xcbf29ce484222325ull};

    if (cap <= RL_KEY_MAX)
        s.keep = cap ? cap - 1 : 0;
    for (size_t i = 0; i < t->n; i++) {
        const struct rl_key_part *p = &t->parts[i];
        struct sluice_str v = value_of(p, h, r, tier_override);
        if (p->src == RL_KEY_LITERAL)
            put(&s, v.ptr, v.len);
        else if (v.ptr)
            put_escaped(&s, v);
    }
    if (s.total > s.keep && s.keep >= 17) {
        s.len = s.keep - 17;
        s.len += (size_t)snprintf(buf + s.len, 18, "#%016llx",
                                  (unsigned long long)s.hash);
    }
    if (cap)
        buf[s.len] = '\0';
    return s.len;
}
