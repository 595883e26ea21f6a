#include "mock_batch_run.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock_embeddings.h"
#include "mock_faults.h"
#include "mock_openai.h"

int mock_buf_add(struct mock_buf *b, const char *s, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = (b->cap + len + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, len);
    b->len += len;
    b->p[b->len] = '\0';
    return 0;
}

static void put_line(struct mock_buf *b, json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (text) {
        mock_buf_add(b, text, strlen(text));
        mock_buf_add(b, "\n", 1);
        free(text);
    }
}

static json_t *result_line(unsigned long num, const char *custom_id, int status,
                           json_t *body, json_t *error)
{
    char id[48], rid[48];
    snprintf(id, sizeof id, "batch_req_mock_%lu", num);
    snprintf(rid, sizeof rid, "req_mock_batch_%lu", num);
    json_t *resp = body ? json_pack("{s:i,s:s,s:o}", "status_code", status,
                                    "request_id", rid, "body", body)
                        : json_null();
    return json_pack("{s:s,s:s,s:o,s:o}", "id", id, "custom_id",
                     custom_id ? custom_id : "", "response", resp, "error",
                     error ? error : json_null());
}

/* The answer the mock's endpoint would give to `body` at `url`. */
static json_t *answer(const char *url, const json_t *body, uint64_t seed,
                      unsigned long num, int *status)
{
    char err[300];
    const char *param = NULL;
    struct mock_faults f = {0};
    const json_t *m = json_object_get(body, "mock");
    if (m && !json_is_null(m) &&
        mock_faults_from_json(m, &f, &param, err, sizeof err) != 0) {
        *status = 400;
        return mock_error_json(err, "invalid_request_error", "mock", NULL);
    }
    if (mock_faults_has(&f, MOCK_STATUS) && f.status >= 400) {
        *status = (int)f.status;
        return mock_error_json("Mock injected error.",
                               f.status >= 500 ? "server_error"
                                               : "invalid_request_error",
                               NULL, NULL);
    }
    if (strcmp(url, "/v1/embeddings") == 0) {
        struct evbuffer *out = evbuffer_new();
        long tokens = 0;
        json_t *j = NULL;
        if (out && mock_embeddings_reply(body, seed, out, &tokens, &param, err,
                                         sizeof err) == 0)
            j = json_loadb((const char *)evbuffer_pullup(out, -1),
                           evbuffer_get_length(out), 0, NULL);
        if (out)
            evbuffer_free(out);
        *status = j ? 200 : 400;
        return j ? j
                 : mock_error_json(err, "invalid_request_error", param, NULL);
    }
    enum mock_api api = strcmp(url, "/v1/completions") == 0
                            ? MOCK_API_COMPLETIONS
                        : strcmp(url, "/v1/responses") == 0 ? MOCK_API_RESPONSES
                                                            : MOCK_API_CHAT;
    struct mock_gen g;
    memset(&g, 0, sizeof g);
    json_t *j = NULL;
    if (mock_gen_parse(&g, api, body, &param, err, sizeof err) == 0 &&
        mock_gen_plan(&g, &f, num) == 0)
        j = mock_gen_body(&g);
    mock_gen_free(&g);
    *status = j ? 200 : 400;
    return j ? j : mock_error_json(err, "invalid_request_error", param, NULL);
}

bool mock_batch_run_line(const char *line, size_t len, uint64_t seed,
                         unsigned long num, struct mock_buf *out,
                         struct mock_buf *err)
{
    json_t *in = json_loadb(line, len, 0, NULL);
    const char *cid = json_string_value(json_object_get(in, "custom_id"));
    const char *url = json_string_value(json_object_get(in, "url"));
    json_t *body = json_object_get(in, "body");
    int status = 400;
    json_t *ans = NULL;
    if (cid && url && json_is_object(body))
        ans = answer(url, body, seed, num, &status);
    else
        ans = mock_error_json("The line is not a batch request.",
                              "invalid_request_error", NULL, NULL);
    bool ok = status >= 200 && status < 300;
    json_t *e = NULL;
    if (!ok) {
        const char *msg = json_string_value(
            json_object_get(json_object_get(ans, "error"), "message"));
        e = json_pack("{s:s,s:s}", "code",
                      status >= 500 ? "server_error" : "invalid_request",
                      "message", msg ? msg : "the request failed");
    }
    put_line(ok ? out : err, result_line(num, cid, status, ans, e));
    json_decref(in);
    return ok;
}

void mock_batch_skip_line(const char *line, size_t len, unsigned long num,
                          const char *code, const char *message,
                          struct mock_buf *err)
{
    json_t *in = json_loadb(line, len, 0, NULL);
    const char *cid = json_string_value(json_object_get(in, "custom_id"));
    put_line(err, result_line(num, cid, 0, NULL,
                              json_pack("{s:s,s:s}", "code", code, "message",
                                        message)));
    json_decref(in);
}
