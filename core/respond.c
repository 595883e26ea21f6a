/* Local answers: errors and bodies the gateway writes itself. */
#include "respond.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "http/http_server.h"
#include "http/openai_error.h"
#include "request.h"
#include "request_end.h"
#include "runtime.h"
#include "traffic_metrics.h"

void respond_set_error(struct sluice_req *r, int status, const char *type,
                       const char *code, const char *message, const char *param,
                       uint64_t retry_after_ms)
{
    size_t len = 0;
    char *body = openai_error_body(status, type, message, param, code, &len);
    free(r->local_body);
    r->local_body = body;
    r->local_body_len = body ? len : 0;
    r->local_status = status;
    r->local_content_type = "application/json";
    r->has_local_response = true;
    if (retry_after_ms > 0) {
        char secs[24];
        int n = snprintf(secs, sizeof secs, "%llu",
                         (unsigned long long)((retry_after_ms + 999) / 1000));
        kv_set(r, &r->client_headers, "Retry-After", secs, (size_t)n);
    }
}

void respond_set_body(struct sluice_req *r, int status,
                      const char *content_type, const char *body, size_t len)
{
    free(r->local_body);
    r->local_body = malloc(len + 1);
    if (r->local_body) {
        memcpy(r->local_body, body, len);
        r->local_body[len] = '\0';
    }
    r->local_body_len = r->local_body ? len : 0;
    r->local_status = status;
    r->local_content_type =
        arena_strndup(&r->arena, content_type, strlen(content_type));
    r->has_local_response = true;
}

/* "name: value\r\n" at buf+at, whole or not at all, NUL-terminated. By
 * hand: this runs for several headers of every response, and snprintf
 * costs far more than the copy. */
static size_t append(char *buf, size_t cap, size_t at, const char *name,
                     const char *value, size_t value_len)
{
    /* Values can come from the client (the model name) or plugins: a CR or
     * LF would let them forge headers or split the response. */
    for (size_t i = 0; i < value_len; i++)
        if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f)
            return at;
    size_t name_len = strlen(name);
    if (at >= cap || cap - at < name_len + value_len + 5)
        return at;
    char *p = buf + at;
    memcpy(p, name, name_len);
    p += name_len;
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, value, value_len);
    p += value_len;
    *p++ = '\r';
    *p++ = '\n';
    *p = '\0';
    return (size_t)(p - buf);
}

size_t respond_client_headers(struct sluice_req *r, char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = '\0';
    at = append(buf, cap, at, "x-request-id", r->id, strlen(r->id));
    if (r->attempt_count > 0 && r->upstream) {
        size_t mlen;
        const char *model = request_target_model(r, &mlen);
        at = append(buf, cap, at, "x-sluice-upstream", r->upstream->name,
                    strlen(r->upstream->name));
        at = append(buf, cap, at, "x-sluice-model", model, mlen);
        if (r->attempt_count > 1) {
            char n[16];
            int len = snprintf(n, sizeof n, "%u", r->attempt_count);
            at = append(buf, cap, at, "x-sluice-attempts", n, (size_t)len);
        }
    }
    if (r->tags) /* the policy's tags, comma-joined */
        at = append(buf, cap, at, "x-sluice-tags", r->tags, strlen(r->tags));
    size_t flen = 0;
    const char *fb = kv_get(&r->vars, "sluice.fallback", &flen);
    if (fb)
        at = append(buf, cap, at, "x-sluice-fallback", fb, flen);
    else if (r->fallback_reason)
        at = append(buf, cap, at, "x-sluice-fallback", r->fallback_reason,
                    strlen(r->fallback_reason));
    for (size_t i = 0; i < r->client_headers.n; i++)
        at = append(buf, cap, at, r->client_headers.items[i].name,
                    r->client_headers.items[i].value,
                    r->client_headers.items[i].value_len);
    return at < cap ? at : cap - 1;
}

void respond_send_local(struct sluice_req *r)
{
    r->phase = PHASE_DONE;
    if (r->ex && !r->client_headers_sent) {
        char headers[4096];
        size_t at = respond_client_headers(r, headers, sizeof headers);
        snprintf(headers + at, sizeof headers - at, "Content-Type: %s\r\n",
                 r->local_content_type ? r->local_content_type
                                       : "application/json");
        r->final_status = r->local_status;
        r->client_headers_sent = true;
        request_count(r); /* before the client can see the answer */
        http_set_close_cb(r->ex, NULL, NULL);
        http_reply(r->ex, r->local_status, headers, r->local_body,
                   r->local_body_len);
        r->ex = NULL;
    }
    request_finish(r);
}

void respond_plain_error(struct http_exchange *ex, int status,
                         const char *message, const char *param,
                         const char *extra_headers)
{
    size_t len = 0;
    char *body = openai_error_body(status, NULL, message, param, NULL, &len);
    char headers[512];
    snprintf(headers, sizeof headers, "Content-Type: application/json\r\n%s",
             extra_headers ? extra_headers : "");
    traffic_count_request(status, NULL, NULL); /* not an API request */
    http_reply(ex, status, headers, body, body ? len : 0);
    free(body);
}
