#include "mock_faults.h"

#include <errno.h>
#include <event2/http.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mock_text.h"

enum knob_type { KNOB_INT, KNOB_BOOL, KNOB_STRING };

struct knob {
    const char *name;   /* key in "mock" and /mock/config */
    const char *header; /* request header */
    enum knob_type type;
    unsigned bit;
    size_t offset;
    long min, max;
};

#define HOUR_MS 3600000L

static const struct knob knobs[] = {
    {"latency_ms", "x-mock-latency-ms", KNOB_INT, MOCK_LATENCY_MS,
     offsetof(struct mock_faults, latency_ms), 0, HOUR_MS},
    {"chunk_interval_ms", "x-mock-chunk-interval-ms", KNOB_INT,
     MOCK_CHUNK_INTERVAL_MS, offsetof(struct mock_faults, chunk_interval_ms), 0,
     HOUR_MS},
    {"chunks", "x-mock-chunks", KNOB_INT, MOCK_CHUNKS,
     offsetof(struct mock_faults, chunks), 1, 100000},
    {"completion_tokens", "x-mock-completion-tokens", KNOB_INT,
     MOCK_COMPLETION_TOKENS, offsetof(struct mock_faults, completion_tokens), 0,
     2000000},
    {"status", "x-mock-status", KNOB_INT, MOCK_STATUS,
     offsetof(struct mock_faults, status), 200, 599},
    {"retry_after", "x-mock-retry-after", KNOB_INT, MOCK_RETRY_AFTER,
     offsetof(struct mock_faults, retry_after), 0, 86400},
    {"error_message", "x-mock-error-message", KNOB_STRING, MOCK_ERROR_MESSAGE,
     offsetof(struct mock_faults, error_message), 0, 0},
    {"hang", "x-mock-hang", KNOB_BOOL, MOCK_HANG,
     offsetof(struct mock_faults, hang), 0, 0},
    {"reset_after_chunks", "x-mock-reset-after-chunks", KNOB_INT,
     MOCK_RESET_AFTER_CHUNKS, offsetof(struct mock_faults, reset_after_chunks),
     0, 100000},
    {"malformed_sse", "x-mock-malformed-sse", KNOB_BOOL, MOCK_MALFORMED_SSE,
     offsetof(struct mock_faults, malformed_sse), 0, 0},
    {"no_usage", "x-mock-no-usage", KNOB_BOOL, MOCK_NO_USAGE,
     offsetof(struct mock_faults, no_usage), 0, 0},
    {"ratelimit_headers", "x-mock-ratelimit-headers", KNOB_BOOL,
     MOCK_RATELIMIT_HEADERS, offsetof(struct mock_faults, ratelimit_headers), 0,
     0},
};

#define NKNOBS (sizeof(knobs) / sizeof(knobs[0]))

static int parse_long_str(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s)
        return -1;
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static int parse_bool_str(const char *s, bool *out)
{
    if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes")) {
        *out = true;
        return 0;
    }
    if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no")) {
        *out = false;
        return 0;
    }
    return -1;
}

static int json_long(const json_t *v, long *out)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < LONG_MIN || i > LONG_MAX)
            return -1;
        *out = (long)i;
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d != floor(d) || fabs(d) > 1e15)
            return -1;
        *out = (long)d;
        return 0;
    }
    if (json_is_string(v))
        return parse_long_str(json_string_value(v), out);
    return -1;
}

static int json_bool(const json_t *v, bool *out)
{
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_integer(v)) {
        *out = json_integer_value(v) != 0;
        return 0;
    }
    if (json_is_string(v))
        return parse_bool_str(json_string_value(v), out);
    return -1;
}

/* Stores one knob; header values arrive as JSON strings. */
static int set_knob(const struct knob *k, const json_t *jv,
                    struct mock_faults *f, char *err, size_t errlen)
{
    char *field = (char *)f + k->offset;
    switch (k->type) {
    case KNOB_INT: {
        long v;
        if (json_long(jv, &v) || v < k->min || v > k->max) {
            snprintf(err, errlen, "mock: %s must be an integer in [%ld, %ld]",
                     k->name, k->min, k->max);
            return -1;
        }
        *(long *)(void *)field = v;
        break;
    }
    case KNOB_BOOL: {
        bool v;
        if (json_bool(jv, &v)) {
            snprintf(err, errlen, "mock: %s must be a boolean", k->name);
            return -1;
        }
        *(bool *)(void *)field = v;
        break;
    }
    case KNOB_STRING: {
        if (!json_is_string(jv)) {
            snprintf(err, errlen, "mock: %s must be a string", k->name);
            return -1;
        }
        const char *s = json_string_value(jv);
        size_t n = mock_utf8_prefix(s, json_string_length(jv),
                                    MOCK_ERROR_MESSAGE_MAX - 1);
        memcpy(field, s, n);
        field[n] = '\0';
        break;
    }
    }
    f->set |= k->bit;
    return 0;
}

int mock_faults_from_json(const json_t *obj, struct mock_faults *out,
                          const char **bad_key, char *err, size_t errlen)
{
    const char *key;
    const json_t *value;
    if (!json_is_object(obj)) {
        *bad_key = NULL;
        snprintf(err, errlen, "mock: expected a JSON object");
        return -1;
    }
    json_object_foreach((json_t *)obj, key, value)
    {
        const struct knob *k = NULL;
        for (size_t i = 0; i < NKNOBS && !k; i++)
            if (!strcmp(knobs[i].name, key))
                k = &knobs[i];
        *bad_key = key;
        if (!k) {
            snprintf(err, errlen, "mock: unknown key '%s'", key);
            return -1;
        }
        if (json_is_null(value))
            continue;
        if (set_knob(k, value, out, err, errlen))
            return -1;
    }
    return 0;
}

int mock_faults_from_headers(const struct evkeyvalq *headers,
                             struct mock_faults *out, const char **bad_key,
                             char *err, size_t errlen)
{
    for (size_t i = 0; i < NKNOBS; i++) {
        const char *v =
            evhttp_find_header((struct evkeyvalq *)headers, knobs[i].header);
        if (!v)
            continue;
        *bad_key = knobs[i].header;
        json_t *jv = json_string(v); /* NULL if not UTF-8 */
        int rc = jv ? set_knob(&knobs[i], jv, out, err, errlen) : -1;
        if (!jv)
            snprintf(err, errlen, "mock: %s is not valid UTF-8",
                     knobs[i].header);
        json_decref(jv);
        if (rc)
            return -1;
    }
    return 0;
}

void mock_faults_overlay(struct mock_faults *dst, const struct mock_faults *src)
{
    for (size_t i = 0; i < NKNOBS; i++) {
        const struct knob *k = &knobs[i];
        if (!(src->set & k->bit))
            continue;
        size_t size = k->type == KNOB_INT    ? sizeof(long)
                      : k->type == KNOB_BOOL ? sizeof(bool)
                                             : MOCK_ERROR_MESSAGE_MAX;
        memcpy((char *)dst + k->offset, (const char *)src + k->offset, size);
        dst->set |= k->bit;
    }
}

json_t *mock_faults_json(const struct mock_faults *f)
{
    json_t *o = json_object();
    for (size_t i = 0; i < NKNOBS; i++) {
        const struct knob *k = &knobs[i];
        const char *field = (const char *)f + k->offset;
        if (!(f->set & k->bit))
            continue;
        if (k->type == KNOB_INT)
            json_object_set_new(
                o, k->name, json_integer(*(const long *)(const void *)field));
        else if (k->type == KNOB_BOOL)
            json_object_set_new(
                o, k->name, json_boolean(*(const bool *)(const void *)field));
        else
            json_object_set_new(o, k->name, json_string(field));
    }
    return o;
}
