#include "cache_answer.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool finish_allowed(const json_t *choice,
                           const struct cache_finish_rules *rules)
{
    const json_t *fr = json_object_get(choice, "finish_reason");
    if (!json_is_string(fr))
        return false;
    for (size_t i = 0; i < rules->count; i++)
        if (strcmp(json_string_value(fr), rules->reasons[i]) == 0)
            return true;
    return false;
}

bool cache_answer_storable(const char *body, size_t len,
                           const struct cache_finish_rules *rules)
{
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    bool ok = false;

    if (!json_is_object(root) || json_object_get(root, "error"))
        goto out;
    const json_t *obj = json_object_get(root, "object");
    if (!json_is_string(obj) ||
        (strcmp(json_string_value(obj), "chat.completion") != 0 &&
         strcmp(json_string_value(obj), "text_completion") != 0))
        goto out;
    const json_t *choices = json_object_get(root, "choices");
    if (!json_is_array(choices) || json_array_size(choices) == 0)
        goto out;
    ok = true;
    for (size_t i = 0; i < json_array_size(choices) && ok; i++)
        ok = finish_allowed(json_array_get(choices, i), rules);
out:
    json_decref(root);
    return ok;
}

/* "chatcmpl-abc" -> "chatcmpl-"; no dash: by object type. */
static void id_prefix(const json_t *root, char *out, size_t cap)
{
    const char *id = json_string_value(json_object_get(root, "id"));
    const char *dash = id ? strchr(id, '-') : NULL;
    if (dash && (size_t)(dash - id) + 2 <= cap && dash - id <= 16) {
        memcpy(out, id, (size_t)(dash - id) + 1);
        out[dash - id + 1] = '\0';
        return;
    }
    const char *obj = json_string_value(json_object_get(root, "object"));
    snprintf(out, cap, "%s",
             obj && strcmp(obj, "text_completion") == 0 ? "cmpl-"
                                                        : "chatcmpl-");
}

static void mark_cached(json_t *root)
{
    json_t *usage = json_object_get(root, "usage");
    if (!json_is_object(usage))
        return;
    json_t *prompt = json_object_get(usage, "prompt_tokens");
    if (!json_is_integer(prompt))
        return;
    json_t *details = json_object_get(usage, "prompt_tokens_details");
    if (!json_is_object(details)) {
        details = json_object();
        json_object_set_new(usage, "prompt_tokens_details", details);
    }
    json_object_set_new(details, "cached_tokens",
                        json_integer(json_integer_value(prompt)));
}

char *cache_answer_serve(const char *body, size_t len, uint64_t random,
                         int64_t created_s, size_t *out_len)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    char prefix[24], id[64];

    if (!json_is_object(root)) {
        json_decref(root);
        return NULL;
    }
    id_prefix(root, prefix, sizeof prefix);
    snprintf(id, sizeof id, "%ssluice%016" PRIx64 "%08" PRIx32, prefix, random,
             (uint32_t)(random >> 17) ^ (uint32_t)created_s);
    json_object_set_new(root, "id", json_string(id));
    json_object_set_new(root, "created", json_integer(created_s));
    mark_cached(root);
    char *out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (out)
        *out_len = strlen(out);
    return out;
}

#define HEX_DIGITS 24
#define CREATED_DIGITS 10

char *cache_answer_template(const char *body, size_t len, size_t *out_len)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    json_t *out = json_object();
    char prefix[24], id[64];
    const char *key;
    json_t *v;

    if (!json_is_object(root) || !out) {
        json_decref(root);
        json_decref(out);
        return NULL;
    }
    id_prefix(root, prefix, sizeof prefix);
    snprintf(id, sizeof id, "%ssluice%0*d", prefix, HEX_DIGITS, 0);
    mark_cached(root);
    /* id and created first, at offsets cache_answer_fill can find */
    json_object_set_new(out, "id", json_string(id));
    json_object_set_new(out, "created", json_integer(1000000000));
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "id") != 0 && strcmp(key, "created") != 0)
            json_object_set(out, key, v);
    }
    char *text = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(out);
    json_decref(root);
    if (text)
        *out_len = strlen(text);
    return text;
}

char *cache_answer_fill(const char *t, size_t len, uint64_t random,
                        int64_t created_s)
{
    static const char head[] = "{\"id\":\"", mid[] = "\",\"created\":";
    const size_t hl = sizeof head - 1, ml = sizeof mid - 1;
    if (len < hl || memcmp(t, head, hl) != 0 || created_s < 1000000000 ||
        created_s > 9999999999)
        return NULL;
    const char *q = memchr(t + hl, '"', len - hl);
    if (!q || (size_t)(q - t) < hl + 6 + HEX_DIGITS ||
        memcmp(q - HEX_DIGITS - 6, "sluice", 6) != 0 ||
        (size_t)(t + len - q) < ml + CREATED_DIGITS + 1 ||
        memcmp(q, mid, ml) != 0 || q[ml + CREATED_DIGITS] != ',')
        return NULL;
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    memcpy(out, t, len);
    out[len] = '\0';
    static const char hex[] = "0123456789abcdef";
    char *h = out + (q - t) - HEX_DIGITS;
    uint64_t r2 = random * 0x9E3779B97F4A7C15ull ^ (uint64_t)created_s;
    for (int i = 0; i < 16; i++)
        h[i] = hex[(random >> (60 - 4 * i)) & 15];
    for (int i = 0; i < 8; i++)
        h[16 + i] = hex[(r2 >> (60 - 4 * i)) & 15];
    char *c = out + (q - t) + ml;
    for (int i = CREATED_DIGITS - 1; i >= 0; i--, created_s /= 10)
        c[i] = (char)('0' + created_s % 10);
    return out;
}
