/* The end of every request, however it ended: response hooks, log hooks,
 * access log, metrics, free. */
#include "request_end.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "gateway.h"
#include "http/http_server.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "request.h"
#include "respond.h"
#include "runtime.h"
#include "self_request.h"
#include "traffic_metrics.h"
#include "worker.h"

/* One JSON line per request. Only hashes and names: never keys. */
static void write_access_log(struct sluice_req *r, uint64_t now)
{
    if (!access_log_enabled())
        return;
    size_t mlen = 0;
    const char *model = request_target_model(r, &mlen);
    if (!model)
        model = "";
    const char *api_model = r->api.model ? r->api.model : "";
    size_t api_model_len = r->api.model ? r->api.model_len : 0;
    const char *endpoint = r->endpoint ? r->endpoint : "";
    const char *upstream = r->upstream ? r->upstream->name : "";
    const char *tenant = r->identity[SLUICE_ID_TENANT];
    const char *key = r->identity[SLUICE_ID_KEY];
    /* Every string field capped: s% takes the capped length. */
#define FIELD(s, len) (s), access_log_field_len((s), (len))
#define STR(s) FIELD((s), strlen(s))
    json_t *line = json_pack(
        "{s:s%, s:s%, s:i, s:s%, s:s%, s:s%, s:s%, s:s%, s:s, s:i, s:f, s:f, "
        "s:I, s:I, s:b}",
        "id", STR(r->id), "endpoint", STR(endpoint), "status", r->final_status,
        "model", FIELD(api_model, api_model_len), "target_model",
        FIELD(model, mlen), "upstream", STR(upstream), "tenant", STR(tenant),
        "key", STR(key), "priority", gateway_priority_name(r->priority),
        "attempts", r->attempt_count, "duration_ms",
        (double)(now - r->started_ns) / 1e6, "ttfb_ms",
        r->first_byte_ns ? (double)(r->first_byte_ns - r->started_ns) / 1e6
                         : 0.0,
        "prompt_tokens", (json_int_t)r->usage.prompt_tokens,
        "completion_tokens", (json_int_t)r->usage.completion_tokens, "stream",
        r->api.stream);
    if (line && r->tags) /* the policy's tags, as in x-sluice-tags */
        json_object_set_new(line, "tags", json_stringn(STR(r->tags)));
#undef STR
#undef FIELD
    if (!line)
        return;
    if (r->client_gone)
        json_object_set_new(line, "client_gone", json_true());
    if (r->self)
        json_object_set_new(line, "internal", json_true());
    char *text = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    if (text) {
        size_t len = strlen(text);
        text[len] = '\n';
        access_log_write(text, len + 1);
        free(text);
    }
}

void request_count(struct sluice_req *r)
{
    if (r->counted)
        return;
    r->counted = true;
    traffic_count_request(r->final_status, r->endpoint,
                          r->upstream ? r->upstream->name : NULL);
    metric_observe(g_runtime.m.request_seconds,
                   (double)(worker_now_ns() - r->started_ns) / 1e9);
    if (r->usage.known) {
        metric_add(g_runtime.m.prompt_tokens, r->usage.prompt_tokens);
        metric_add(g_runtime.m.completion_tokens, r->usage.completion_tokens);
    }
}

void request_finish(struct sluice_req *r)
{
    if (r->busy > 0) {
        r->finish_pending = true;
        return;
    }
    if (r->logged)
        return;
    if (r->attempt_count > 0 && !r->response_reported) {
        r->response_reported = true;
        pipeline_response(r);
    }
    r->logged = true;
    /* The cached clock may date from the start of this loop turn; a fast
     * local answer would otherwise log a duration of 0. */
    worker_refresh_clock(r->w);
    pipeline_log(r);
    self_request_end(r); /* the answer of a request without a client */

    uint64_t now = worker_now_ns();
    if (r->client_gone && !r->final_status)
        r->final_status = 499; /* nginx's "client closed request" */
    write_access_log(r, now);
    request_count(r);
    metric_gauge_add(g_runtime.m.active, -1);
    if (r->ex) {
        /* Should not happen: every path answers first. Never hang. */
        http_set_close_cb(r->ex, NULL, NULL);
        if (!http_headers_sent(r->ex)) {
            respond_plain_error(r->ex, 500, "internal gateway error", NULL,
                                NULL);
        } else {
            http_stream_end(r->ex);
        }
        r->ex = NULL;
    }
    request_free(r);
}
