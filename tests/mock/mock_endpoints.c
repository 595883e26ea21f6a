#include "mock_endpoints.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <string.h>

#include "mock_call.h"
#include "mock_embeddings.h"
#include "mock_http.h"
#include "mock_openai.h"
#include "mock_server.h"

#define ERR_LEN 512

static const char *injected_message(int status)
{
    switch (status) {
    case 401:
        return "Incorrect API key provided (mock injected error).";
    case 429:
        return "Rate limit reached (mock injected error). Please try again "
               "later.";
    case 500:
        return "The server had an error while processing your request "
               "(mock injected error).";
    case 503:
        return "The server is overloaded or not ready yet (mock injected "
               "error).";
    default:
        return "Mock injected error.";
    }
}

/* Command line, then /mock/config, then x-mock-* headers, then the
 * body's "mock" object: later sources win knob by knob. */
static int resolve_faults(struct mock_worker *w, struct evhttp_request *req,
                          const json_t *body, struct mock_faults *f,
                          const char **param, char *err, size_t len)
{
    *f = w->app->opt.defaults;
    mock_control_apply(&w->app->control, f);

    struct mock_faults from_headers = {0};
    if (mock_faults_from_headers(evhttp_request_get_input_headers(req),
                                 &from_headers, param, err, len))
        return -1;
    mock_faults_overlay(f, &from_headers);

    const json_t *m = json_object_get(body, "mock");
    if (m && !json_is_null(m)) {
        struct mock_faults from_body = {0};
        const char *key;
        if (mock_faults_from_json(m, &from_body, &key, err, len)) {
            *param = "mock";
            return -1;
        }
        mock_faults_overlay(f, &from_body);
    }
    return 0;
}

/* Hidden capacity and x-ratelimit-* headers. Answers 429 itself and
 * returns false when over capacity. */
static bool admit(struct mock_worker *w, struct evhttp_request *req,
                  struct mock_conn *conn, const struct mock_faults *f,
                  long cost)
{
    struct mock_admission a;
    bool ok = mock_capacity_admit(&w->app->capacity, cost, &a);
    bool forced_429 = mock_faults_has(f, MOCK_STATUS) && f->status == 429;
    if (!a.requests_on && !a.tokens_on && f->ratelimit_headers)
        mock_admission_synthetic(&a, cost, forced_429, f->retry_after);
    mock_admission_headers(&a, evhttp_request_get_output_headers(req));
    if (mock_faults_has(f, MOCK_RETRY_AFTER))
        mock_set_header_long(req, "Retry-After", f->retry_after);
    if (ok)
        return true;
    mock_set_header_long(req, "Retry-After", a.retry_after_s);
    char msg[160];
    snprintf(msg, sizeof(msg),
             "Rate limit reached for requests (mock hidden capacity). Please "
             "try again in %lds.",
             a.retry_after_s);
    mock_reply_error(w, req, conn, 429, msg, NULL, 0);
    return false;
}

/* Hang or injected error status. True when the fault took the request. */
static bool inject(struct mock_worker *w, struct evhttp_request *req,
                   struct mock_conn *conn, const struct mock_faults *f)
{
    if (f->hang && conn) {
        struct mock_call *c = mock_call_new(w, conn, req, MOCK_CALL_HANG);
        if (c)
            return true;
    }
    if (!mock_faults_has(f, MOCK_STATUS) || f->status < 400)
        return false;
    int status = (int)f->status;
    const char *msg = mock_faults_has(f, MOCK_ERROR_MESSAGE)
                          ? f->error_message
                          : injected_message(status);
    mock_reply_error(w, req, conn, status, msg, NULL, f->latency_ms);
    return true;
}

static void handle_generate(struct mock_worker *w, struct evhttp_request *req,
                            struct mock_conn *conn, unsigned long num,
                            enum mock_api api)
{
    char err[ERR_LEN];
    const char *param = NULL;
    struct mock_faults f;
    struct mock_gen g;
    memset(&g, 0, sizeof(g));

    json_t *body = mock_read_body(req, err, sizeof(err));
    if (!body || resolve_faults(w, req, body, &f, &param, err, sizeof(err)) ||
        mock_gen_parse(&g, api, body, &param, err, sizeof(err))) {
        mock_reply_error(w, req, conn, 400, err, param, 0);
        goto out;
    }
    if (mock_gen_plan(&g, &f, num)) {
        mock_reply_error(w, req, conn, 500, "mock: out of memory", NULL, 0);
        goto out;
    }
    if (!admit(w, req, conn, &f, mock_gen_cost(&g)) || inject(w, req, conn, &f))
        goto out;

    struct mock_call *c;
    if (g.stream && conn &&
        (c = mock_call_new(w, conn, req, MOCK_CALL_STREAM))) {
        c->gen = g; /* the call owns it now */
        memset(&g, 0, sizeof(g));
        c->f = f;
        mock_call_start(c, f.latency_ms);
        goto out;
    }
    /* Not streamed (or no memory for a stream): one JSON body. */
    mock_reply(w, req, conn, 200, mock_json_evbuffer(mock_gen_body(&g)),
               f.latency_ms);
out:
    mock_gen_free(&g);
    json_decref(body);
}

void mock_handle_chat(struct mock_worker *w, struct evhttp_request *req,
                      struct mock_conn *conn, unsigned long num)
{
    handle_generate(w, req, conn, num, MOCK_API_CHAT);
}

void mock_handle_completions(struct mock_worker *w, struct evhttp_request *req,
                             struct mock_conn *conn, unsigned long num)
{
    handle_generate(w, req, conn, num, MOCK_API_COMPLETIONS);
}

void mock_handle_responses(struct mock_worker *w, struct evhttp_request *req,
                           struct mock_conn *conn, unsigned long num)
{
    handle_generate(w, req, conn, num, MOCK_API_RESPONSES);
}

void mock_handle_embeddings(struct mock_worker *w, struct evhttp_request *req,
                            struct mock_conn *conn, unsigned long num)
{
    char err[ERR_LEN];
    const char *param = NULL;
    struct mock_faults f;
    long tokens = 0;
    struct evbuffer *out = evbuffer_new();
    json_t *body = mock_read_body(req, err, sizeof(err));
    if (!out || !body ||
        resolve_faults(w, req, body, &f, &param, err, sizeof(err)) ||
        mock_embeddings_reply(body, w->app->opt.seed, out, &tokens, &param, err,
                              sizeof(err))) {
        mock_reply_error(w, req, conn, 400, out ? err : "mock: out of memory",
                         param, 0);
        goto out;
    }
    if (!admit(w, req, conn, &f, tokens) || inject(w, req, conn, &f))
        goto out;
    mock_reply(w, req, conn, 200, out, f.latency_ms);
    out = NULL;
out:
    if (out)
        evbuffer_free(out);
    json_decref(body);
}

void mock_handle_models(struct mock_worker *w, struct evhttp_request *req,
                        struct mock_conn *conn, unsigned long num)
{
    mock_reply(w, req, conn, 200, mock_json_evbuffer(mock_models_json()), 0);
}
