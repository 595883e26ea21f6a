#include "coalesce_key.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

bool coalesce_temperature_zero(const json_t *body)
{
    const json_t *t = json_object_get(body, "temperature");
    return json_is_number(t) && json_number_value(t) == 0;
}

static void feed(XXH3_state_t *st, const void *p, size_t len)
{
    uint64_t n = len; /* the length prefix keeps "ab"+"c" apart from "a"+"bc" */
    XXH3_128bits_update(st, &n, sizeof n);
    if (len)
        XXH3_128bits_update(st, p, len);
}

static int feed_dump(const char *buf, size_t size, void *data)
{
    XXH3_128bits_update(data, buf, size);
    return 0;
}

static bool ignored(const struct coalesce_key_rules *rules, const char *name,
                    const json_t *value)
{
    if (strcmp(name, "model") == 0)
        return true;
    if (strcmp(name, "stream") == 0 && json_is_false(value))
        return true;
    for (size_t i = 0; i < rules->ignored_count; i++)
        if (strcmp(rules->ignored[i], name) == 0)
            return true;
    return false;
}

/* A value's compact JSON (keys sorted) streamed into the hash, then a NUL,
 * which JSON text never contains, so values stay apart. */
static void feed_value(XXH3_state_t *st, const json_t *v)
{
    if (json_is_real(v)) {
        double d = json_real_value(v);
        /* 0.0 and 0 mean the same to the provider: hash both as "0". */
        if (d == floor(d) && fabs(d) < 9e15) {
            char num[32];
            int n = snprintf(num, sizeof num, "%lld", (long long)d);
            XXH3_128bits_update(st, num, (size_t)n);
            XXH3_128bits_update(st, "", 1);
            return;
        }
    }
    json_dump_callback(v, feed_dump, st,
                       JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    XXH3_128bits_update(st, "", 1);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int coalesce_key_make(const struct coalesce_key_rules *rules,
                      struct coalesce_part scope, struct coalesce_part model,
                      struct coalesce_part endpoint, const json_t *body,
                      unsigned char out[COALESCE_KEY_BYTES])
{
    size_t n = json_object_size(body), count = 0;
    const char **names = NULL;
    const char *name;
    json_t *value;
    XXH3_state_t *st = NULL;
    int rc = -1;

    if (!json_is_object(body))
        return -1;
    names = malloc((n ? n : 1) * sizeof *names);
    st = XXH3_createState();
    if (!names || !st)
        goto out;
    json_object_foreach((json_t *)body, name, value)
    {
        if (!ignored(rules, name, value))
            names[count++] = name;
    }
    qsort(names, count, sizeof *names, by_name);

    XXH3_128bits_reset_withSeed(st, rules->seed);
    feed(st, scope.ptr, scope.len);
    feed(st, model.ptr, model.len);
    feed(st, endpoint.ptr, endpoint.len);
    for (size_t i = 0; i < count; i++) {
        feed(st, names[i], strlen(names[i]));
        feed_value(st, json_object_get(body, names[i]));
    }
    XXH128_canonical_t canon;
    XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(st));
    memcpy(out, canon.digest, COALESCE_KEY_BYTES);
    rc = 0;
out:
    XXH3_freeState(st);
    free(names);
    return rc;
}
