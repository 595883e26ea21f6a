/* Differential fuzz target for the request decoder.
 *
 * Each input is a request body. It is checked two ways:
 *   1. jscan_document() against jansson's json_loadb(JSON_REJECT_DUPLICATES):
 *      the same accept/reject verdict, the same error class (UTF-8 or
 *      not), text, line and column; and on success the jscan_iter cursor
 *      must read back exactly jansson's tree (types, decoded strings,
 *      integers, reals bit for bit, object members by key).
 *   2. api_request_decode() against the old jansson-based decoder
 *      (api_request_ref.c) for every endpoint kind: the same verdict,
 *      status, param, message and every field of struct api_request.
 * Any disagreement aborts.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_request.h"
#include "api_request_ref.h"
#include "json_scan.h"

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_api_request: %s: ", #cond);                  \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

static void same_value(const struct jscan_doc *doc, const struct jscan_val *v,
                       json_t *j);

static void same_string(const struct jscan_doc *doc, const struct jscan_val *v,
                        const char *s, size_t len)
{
    CHECK(v->type == JSCAN_STRING, "type %d, want string", v->type);
    CHECK(v->len == len, "string length %zu, want %zu", v->len, len);
    char *buf = malloc(len + 1);
    CHECK(buf != NULL, "oom");
    jscan_string_decode(doc, v, buf);
    CHECK(memcmp(buf, s, len) == 0, "string bytes differ");
    CHECK(jscan_string_equals(doc, v, s, len), "jscan_string_equals");
    if (!v->escaped)
        CHECK(memcmp(jscan_string_raw(doc, v), s, len) == 0, "raw bytes");
    free(buf);
}

static void same_value(const struct jscan_doc *doc, const struct jscan_val *v,
                       json_t *j)
{
    struct jscan_iter it;
    struct jscan_val key, val, found;
    size_t n = 0;
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        CHECK(v->type == JSCAN_OBJECT, "type %d, want object", v->type);
        jscan_iter_begin(&it, doc, v);
        while (jscan_iter_next(&it, &key, &val)) {
            char *k = malloc(key.len + 1);
            CHECK(k != NULL, "oom");
            jscan_string_decode(doc, &key, k);
            json_t *member = json_object_getn(j, k, key.len);
            CHECK(member != NULL, "member %.*s missing in jansson's tree",
                  (int)key.len, k);
            same_value(doc, &val, member);
            CHECK(jscan_object_find(doc, v, k, key.len, &found) &&
                      found.pos == val.pos && found.end == val.end,
                  "jscan_object_find");
            free(k);
            n++;
        }
        CHECK(n == json_object_size(j), "%zu members, want %zu", n,
              json_object_size(j));
        return;
    case JSON_ARRAY:
        CHECK(v->type == JSCAN_ARRAY, "type %d, want array", v->type);
        jscan_iter_begin(&it, doc, v);
        while (jscan_iter_next(&it, NULL, &val)) {
            CHECK(n < json_array_size(j), "too many elements");
            same_value(doc, &val, json_array_get(j, n));
            n++;
        }
        CHECK(n == json_array_size(j), "%zu elements, want %zu", n,
              json_array_size(j));
        return;
    case JSON_STRING:
        same_string(doc, v, json_string_value(j), json_string_length(j));
        return;
    case JSON_INTEGER:
        CHECK(v->type == JSCAN_INTEGER, "type %d, want integer", v->type);
        CHECK(jscan_integer_get(doc, v) == json_integer_value(j), "integer");
        CHECK(jscan_number_get(doc, v) == json_number_value(j), "as double");
        return;
    case JSON_REAL: {
        CHECK(v->type == JSCAN_REAL, "type %d, want real", v->type);
        double a = jscan_number_get(doc, v), b = json_real_value(j);
        CHECK(memcmp(&a, &b, sizeof a) == 0, "real %.17g, want %.17g", a, b);
        return;
    }
    case JSON_TRUE:
        CHECK(v->type == JSCAN_TRUE, "type %d, want true", v->type);
        return;
    case JSON_FALSE:
        CHECK(v->type == JSCAN_FALSE, "type %d, want false", v->type);
        return;
    case JSON_NULL:
        CHECK(v->type == JSCAN_NULL, "type %d, want null", v->type);
        return;
    }
}

static void check_scan(const char *data, size_t size)
{
    json_error_t jerr;
    json_t *j = json_loadb(data, size, JSON_REJECT_DUPLICATES, &jerr);
    struct jscan_doc doc;
    struct jscan_error serr;
    enum jscan_status st = jscan_document(&doc, data, size, &serr);
    if (!j) {
        CHECK(st != JSCAN_OK, "scanner accepted what jansson refused: %s",
              jerr.text);
        CHECK((st == JSCAN_UTF8) ==
                  (json_error_code(&jerr) == json_error_invalid_utf8),
              "error class: scanner %d '%s', jansson '%s'", st, serr.text,
              jerr.text);
        CHECK(serr.line == jerr.line && serr.column == jerr.column,
              "position %d:%d, jansson %d:%d ('%s' / '%s')", serr.line,
              serr.column, jerr.line, jerr.column, serr.text, jerr.text);
        CHECK(strcmp(serr.text, jerr.text) == 0, "text '%s', jansson '%s'",
              serr.text, jerr.text);
        return;
    }
    CHECK(st == JSCAN_OK, "scanner refused what jansson accepted: %s",
          serr.text);
    struct jscan_val root;
    jscan_doc_root(&doc, &root);
    same_value(&doc, &root, j);
    jscan_doc_free(&doc);
    json_decref(j);
}

static void check_decode(enum api_kind kind, const char *data, size_t size)
{
    struct api_request a, b;
    struct api_error ea, eb;
    bool ok = api_request_decode(kind, data, size, &a, &ea);
    json_t *root = ref_api_request_decode(kind, data, size, &b, &eb);
    CHECK(ok == (root != NULL), "kind %d: verdict %d, reference %d ('%s')",
          kind, ok, root != NULL, ok ? eb.message : ea.message);
    if (!ok) {
        CHECK(ea.status == eb.status, "status %d, reference %d", ea.status,
              eb.status);
        CHECK(strcmp(ea.param, eb.param) == 0, "param '%s', reference '%s'",
              ea.param, eb.param);
        CHECK(strcmp(ea.message, eb.message) == 0,
              "message '%s', reference '%s'", ea.message, eb.message);
        struct api_request zero;
        memset(&zero, 0, sizeof zero);
        CHECK(memcmp(&a, &zero, sizeof a) == 0, "fields not zeroed");
        return;
    }
    CHECK(a.model_len == b.model_len &&
              memcmp(a.model, b.model, a.model_len) == 0,
          "model '%.*s', reference '%.*s'", (int)a.model_len, a.model,
          (int)b.model_len, b.model);
    CHECK(a.stream == b.stream, "stream");
    CHECK(a.include_usage == b.include_usage, "include_usage");
    CHECK(a.has_temperature == b.has_temperature, "has_temperature");
    CHECK(memcmp(&a.temperature, &b.temperature, sizeof a.temperature) == 0,
          "temperature %.17g, reference %.17g", a.temperature, b.temperature);
    CHECK(a.max_tokens == b.max_tokens, "max_tokens");
    CHECK(a.message_count == b.message_count, "message_count %llu, ref %llu",
          (unsigned long long)a.message_count,
          (unsigned long long)b.message_count);
    CHECK(a.text_bytes == b.text_bytes, "text_bytes %llu, reference %llu",
          (unsigned long long)a.text_bytes, (unsigned long long)b.text_bytes);
    CHECK(a.input_tokens == b.input_tokens, "input_tokens");
    api_request_release(&a);
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a private copy, so reads past the end are caught by ASan */
    char *body = malloc(size ? size : 1);
    if (!body)
        return 0;
    memcpy(body, data, size);
    check_scan(body, size);
    for (int k = API_CHAT; k <= API_RESPONSES; k++)
        check_decode((enum api_kind)k, body, size);
    free(body);
    return 0;
}
