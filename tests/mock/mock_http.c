#include "mock_http.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>

#include "mock_call.h"
#include "mock_openai.h"
#include "mock_server.h"

const char *mock_reason(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return NULL; /* evhttp's own phrase */
    }
}

static int dump_to_evbuffer(const char *buf, size_t len, void *data)
{
    return evbuffer_add(data, buf, len);
}

struct evbuffer *mock_json_evbuffer(json_t *j)
{
    struct evbuffer *b = evbuffer_new();
    if (b && j)
        json_dump_callback(j, dump_to_evbuffer, b, JSON_COMPACT);
    json_decref(j);
    return b;
}

void mock_send_json(struct evhttp_request *req, int status, json_t *j)
{
    struct evbuffer *b = mock_json_evbuffer(j);
    evhttp_send_reply(req, status, mock_reason(status), b);
    if (b)
        evbuffer_free(b);
}

void mock_reply(struct mock_worker *w, struct evhttp_request *req,
                struct mock_conn *conn, int status, struct evbuffer *body,
                long delay_ms)
{
    struct mock_call *c = NULL;
    if (!body) { /* out of memory */
        mock_stats_status(&w->app->stats, 500);
        mock_stats_end(&w->app->stats);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    if (delay_ms > 0 && conn &&
        (c = mock_call_new(w, conn, req, MOCK_CALL_REPLY))) {
        c->status = status;
        evbuffer_add_buffer(c->out, body);
        evbuffer_free(body);
        mock_call_start(c, delay_ms);
        return;
    }
    mock_stats_status(&w->app->stats, status);
    mock_stats_end(&w->app->stats);
    evhttp_send_reply(req, status, mock_reason(status), body);
    evbuffer_free(body);
}

static const char *error_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 429:
        return "rate_limit_error";
    default:
        return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

void mock_reply_error(struct mock_worker *w, struct evhttp_request *req,
                      struct mock_conn *conn, int status, const char *msg,
                      const char *param, long delay_ms)
{
    const char *code = status == 429 ? "rate_limit_exceeded" : NULL;
    json_t *e = mock_error_json(msg, error_type(status), param, code);
    mock_reply(w, req, conn, status, mock_json_evbuffer(e), delay_ms);
}

void mock_set_header(struct evhttp_request *req, const char *name,
                     const char *value)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_remove_header(h, name);
    evhttp_add_header(h, name, value);
}

void mock_set_header_long(struct evhttp_request *req, const char *name, long v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%ld", v);
    mock_set_header(req, name, buf);
}

json_t *mock_read_body(struct evhttp_request *req, char *err, size_t len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    json_error_t je;
    json_t *j =
        n ? json_loadb((const char *)evbuffer_pullup(in, -1), n, 0, &je) : NULL;
    if (!n)
        snprintf(err, len,
                 "We could not parse the JSON body of your request: "
                 "the body is empty.");
    else if (!j)
        snprintf(err, len,
                 "We could not parse the JSON body of your request: %s "
                 "(line %d, column %d).",
                 je.text, je.line, je.column);
    else if (!json_is_object(j))
        snprintf(err, len, "The JSON body of your request must be an object.");
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}
