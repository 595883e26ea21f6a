#include "cache_key.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* Every value is fed as a one-byte type tag followed by its content, and
 * strings carry their length, so no two different JSON values feed the
 * same bytes ("ab"+"c" vs "a"+"bc", "1" vs 1). */
static void feed_tag(XXH3_state_t *st, char tag)
{
    XXH3_128bits_update(st, &tag, 1);
}

static void feed_bytes(XXH3_state_t *st, const void *p, size_t len)
{
    uint64_t n = len;
    XXH3_128bits_update(st, &n, sizeof n);
    if (len)
        XXH3_128bits_update(st, p, len);
}

static void feed_str(XXH3_state_t *st, const char *s, size_t len)
{
    feed_tag(st, 's');
    feed_bytes(st, s, len);
}

/* A content array holding exactly one {"type":"text","text":S} part. */
static const json_t *single_text_part(const json_t *v)
{
    if (!json_is_array(v) || json_array_size(v) != 1)
        return NULL;
    const json_t *part = json_array_get(v, 0);
    const json_t *type = json_object_get(part, "type");
    const json_t *text = json_object_get(part, "text");
    if (json_object_size(part) != 2 || !json_is_string(type) ||
        strcmp(json_string_value(type), "text") != 0 || !json_is_string(text))
        return NULL;
    return text;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void feed_value(XXH3_state_t *st, const json_t *v);

static void feed_object(XXH3_state_t *st, const json_t *v)
{
    size_t n = json_object_size(v), count = 0;
    const char *stack[32];
    const char **names = n <= 32 ? stack : malloc(n * sizeof *names);
    const char *name;
    json_t *value;

    feed_tag(st, '{');
    if (!names) { /* no memory: an unsorted key still never collides */
        feed_tag(st, '!');
        json_object_foreach((json_t *)v, name, value)
        {
            feed_bytes(st, name, strlen(name));
            feed_value(st, value);
        }
        return;
    }
    json_object_foreach((json_t *)v, name, value) names[count++] = name;
    qsort(names, count, sizeof *names, by_name);
    for (size_t i = 0; i < count; i++) {
        const json_t *val = json_object_get(v, names[i]);
        const json_t *text;
        feed_bytes(st, names[i], strlen(names[i]));
        if (strcmp(names[i], "content") == 0 && (text = single_text_part(val)))
            val = text; /* [{"type":"text","text":"x"}] is "x" */
        feed_value(st, val);
    }
    feed_tag(st, '}');
    if (names != stack)
        free(names);
}

static void feed_number(XXH3_state_t *st, double d)
{
    char num[40];
    int n;
    /* 0.0 and 0 mean the same to the provider: both hash as "0". */
    if (d == floor(d) && fabs(d) < 9e15)
        n = snprintf(num, sizeof num, "%lld", (long long)d);
    else
        n = snprintf(num, sizeof num, "%.17g", d);
    feed_tag(st, 'n');
    feed_bytes(st, num, (size_t)n);
}

static void feed_value(XXH3_state_t *st, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        feed_object(st, v);
        break;
    case JSON_ARRAY:
        feed_tag(st, '[');
        for (size_t i = 0; i < json_array_size(v); i++)
            feed_value(st, json_array_get(v, i));
        feed_tag(st, ']');
        break;
    case JSON_STRING:
        feed_str(st, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        feed_number(st, (double)json_integer_value(v));
        if (llabs(json_integer_value(v)) >= 9000000000000000ll) {
            char num[32]; /* beyond a double's exact range: the digits */
            int n = snprintf(num, sizeof num, "%lld",
                             (long long)json_integer_value(v));
            feed_bytes(st, num, (size_t)n);
        }
        break;
    case JSON_REAL:
        feed_number(st, json_real_value(v));
        break;
    case JSON_TRUE:
        feed_tag(st, 't');
        break;
    case JSON_FALSE:
        feed_tag(st, 'f');
        break;
    case JSON_NULL:
        feed_tag(st, 'z');
        break;
    }
}

static bool ignored(const struct cache_key_rules *rules, const char *name)
{
    for (size_t i = 0; i < rules->ignored_count; i++)
        if (strcmp(rules->ignored[i], name) == 0)
            return true;
    return false;
}

/* The last chat message when it is a user message with one plain text. */
static const json_t *last_user_text(const json_t *messages)
{
    size_t n = json_array_size(messages);
    if (!n)
        return NULL;
    const json_t *last = json_array_get(messages, n - 1);
    const json_t *role = json_object_get(last, "role");
    const json_t *content = json_object_get(last, "content");
    if (!json_is_string(role) || strcmp(json_string_value(role), "user") != 0)
        return NULL;
    if (json_is_string(content))
        return content;
    return single_text_part(content);
}

/* Feeds the body's fields; `skip` (a messages array or a prompt string)
 * is fed without its embedded text when not NULL. */
static int feed_body(XXH3_state_t *st, const struct cache_key_rules *rules,
                     struct cache_part scope, struct cache_part endpoint,
                     const json_t *body, const json_t *skip)
{
    size_t n = json_object_size(body), count = 0;
    const char *name;
    json_t *value;

    const char **names = malloc((n ? n : 1) * sizeof *names);
    if (!names)
        return -1;
    json_object_foreach((json_t *)body, name, value)
    {
        if (!ignored(rules, name))
            names[count++] = name;
    }
    qsort(names, count, sizeof *names, by_name);

    XXH3_128bits_reset_withSeed(st, rules->seed);
    feed_bytes(st, scope.ptr, scope.len);
    feed_bytes(st, endpoint.ptr, endpoint.len);
    feed_tag(st, skip ? 'S' : 'E'); /* semantic scopes never equal a key */
    for (size_t i = 0; i < count; i++) {
        const json_t *v = json_object_get(body, names[i]);
        feed_bytes(st, names[i], strlen(names[i]));
        if (v == skip && json_is_array(v)) { /* messages but the last text */
            size_t m = json_array_size(v);
            feed_tag(st, '[');
            for (size_t j = 0; j + 1 < m; j++)
                feed_value(st, json_array_get(v, j));
            const json_t *last = json_array_get(v, m - 1);
            const char *k;
            json_t *lv;
            json_object_foreach((json_t *)last, k, lv)
            {
                if (strcmp(k, "content") != 0) { /* role, name, ... */
                    feed_bytes(st, k, strlen(k));
                    feed_value(st, lv);
                }
            }
            feed_tag(st, ']');
        } else if (v == skip) {
            feed_tag(st, 'P'); /* the prompt, compared by meaning */
        } else {
            feed_value(st, v);
        }
    }
    free(names);
    return 0;
}

static void digest(XXH3_state_t *st, unsigned char out[CACHE_KEY_BYTES])
{
    XXH128_canonical_t canon;
    XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(st));
    memcpy(out, canon.digest, CACHE_KEY_BYTES);
}

int cache_key_exact(const struct cache_key_rules *rules,
                    struct cache_part scope, struct cache_part endpoint,
                    const json_t *body, unsigned char out[CACHE_KEY_BYTES])
{
    if (!json_is_object(body))
        return -1;
    XXH3_state_t *st = XXH3_createState();
    if (!st || feed_body(st, rules, scope, endpoint, body, NULL)) {
        XXH3_freeState(st);
        return -1;
    }
    digest(st, out);
    XXH3_freeState(st);
    return 0;
}

int cache_key_semantic(const struct cache_key_rules *rules,
                       struct cache_part scope, struct cache_part endpoint,
                       const json_t *body, unsigned char out[CACHE_KEY_BYTES],
                       struct cache_part *text)
{
    const json_t *skip = NULL, *t = NULL;

    if (!json_is_object(body))
        return -1;
    const json_t *messages = json_object_get(body, "messages");
    const json_t *prompt = json_object_get(body, "prompt");
    if (json_is_array(messages) && (t = last_user_text(messages)))
        skip = messages;
    else if (!messages && json_is_string(prompt))
        skip = t = prompt;
    if (!skip || ignored(rules, messages ? "messages" : "prompt") ||
        json_string_length(t) == 0)
        return -1;
    XXH3_state_t *st = XXH3_createState();
    if (!st || feed_body(st, rules, scope, endpoint, body, skip)) {
        XXH3_freeState(st);
        return -1;
    }
    digest(st, out);
    XXH3_freeState(st);
    text->ptr = json_string_value(t);
    text->len = json_string_length(t);
    return 0;
}

double cache_key_temperature(const json_t *body, double missing)
{
    const json_t *t = json_object_get(body, "temperature");
    if (!t || json_is_null(t))
        return missing;
    return json_is_number(t) ? json_number_value(t) : NAN;
}
