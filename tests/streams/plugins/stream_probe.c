/* Test plugin for the SDK 1.1 stream services, driven by request headers:
 *
 *   on_response  keeps the last whole answer a 2xx request left
 *                (resp_whole_body(): streams assembled), shown by status_json
 *                as {"whole": <answer or null>, "read": N, "empty": M}.
 *   x-probe-replay: stored   answers with that kept answer through respond()
 *                            (a cache hit): a stream for `stream: true`.
 *   x-probe-replay: tools    answers with a fixed chat.completion holding two
 *                            tool calls and usage (a static fallback).
 *   x-probe-gate: PATH       holds the request (resume_after polling) until
 *                            the file PATH exists, so a test can line up
 *                            coalesce followers behind a leader without
 *                            racing the upstream.
 *
 * Sets whole_streams, so the core assembles the pipeline's streams.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/host.h"
#include "sluice/plugin.h"

static const char TOOLS[] =
    "{\"id\":\"chatcmpl-probe\",\"object\":\"chat.completion\",\"created\":"
    "1733000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,"
    "\"message\":{\"role\":\"assistant\",\"content\":null,\"refusal\":null,"
    "\"tool_calls\":[{\"id\":\"call_w\",\"type\":\"function\",\"function\":{"
    "\"name\":\"get_weather\",\"arguments\":\"{\\\"location\\\":\\\"Paris, "
    "France\\\",\\\"unit\\\":\\\"celsius\\\",\\\"days\\\":[1,2,3,4,5,6,7,8,9,"
    "10,11,12,13,14]}\"}},{\"id\":\"call_t\",\"type\":\"function\","
    "\"function\":{\"name\":\"get_time\",\"arguments\":\"{\\\"tz\\\":"
    "\\\"CET\\\"}\"}}]},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],"
    "\"usage\":{\"prompt_tokens\":21,\"completion_tokens\":34,"
    "\"total_tokens\":55}}";

struct probe {
    const struct sluice_host *host;
    pthread_mutex_t lock;
    char *whole; /* last whole answer, NUL-terminated */
    unsigned long read, empty;
};

struct probe_req {
    char *served; /* what respond() was given; kept until on_log */
};

static bool header_is(const struct sluice_host *h, struct sluice_req *r,
                      const char *name, const char *value)
{
    struct sluice_str v = h->req_header(r, name);
    return v.len == strlen(value) && memcmp(v.ptr, value, v.len) == 0;
}

static enum sluice_action probe_on_request(void *self, struct sluice_req *r,
                                           void *state)
{
    struct probe *p = self;
    struct probe_req *st = state;
    const struct sluice_host *h = p->host;

    struct sluice_str gate = h->req_header(r, "x-probe-gate");
    if (gate.len && gate.len < 512) {
        char path[512];
        memcpy(path, gate.ptr, gate.len);
        path[gate.len] = '\0';
        if (access(path, F_OK) != 0) {
            h->resume_after(r, 5);
            return SLUICE_SUSPEND;
        }
    }
    if (header_is(h, r, "x-probe-replay", "tools")) {
        struct sluice_str body = {TOOLS, sizeof TOOLS - 1};
        return h->respond(r, 200, "application/json", body);
    }
    if (header_is(h, r, "x-probe-replay", "stored")) {
        pthread_mutex_lock(&p->lock);
        st->served = p->whole ? strdup(p->whole) : NULL;
        pthread_mutex_unlock(&p->lock);
        if (!st->served)
            return h->reject(r, 404, "invalid_request_error", "nothing_stored",
                             "No answer stored yet.", 0);
        struct sluice_str body = {st->served, strlen(st->served)};
        return h->respond(r, 200, "application/json", body);
    }
    return SLUICE_CONTINUE;
}

static void probe_on_response(void *self, struct sluice_req *r, void *state)
{
    struct probe *p = self;
    const struct sluice_host *h = p->host;
    (void)state;
    if (h->resp_status(r) < 200 || h->resp_status(r) > 299)
        return;
    struct sluice_str whole = h->resp_whole_body(r);
    char *copy = whole.len ? strndup(whole.ptr, whole.len) : NULL;
    pthread_mutex_lock(&p->lock);
    if (copy) {
        free(p->whole);
        p->whole = copy;
        p->read++;
    } else {
        p->empty++;
    }
    pthread_mutex_unlock(&p->lock);
}

static void probe_on_log(void *self, struct sluice_req *r, void *state)
{
    struct probe_req *st = state;
    (void)self;
    (void)r;
    free(st->served);
    st->served = NULL;
}

static size_t probe_status_json(void *self, char *buf, size_t cap)
{
    struct probe *p = self;
    pthread_mutex_lock(&p->lock);
    int n = snprintf(buf, cap, "{\"whole\":%s,\"read\":%lu,\"empty\":%lu}",
                     p->whole ? p->whole : "null", p->read, p->empty);
    pthread_mutex_unlock(&p->lock);
    return n > 0 ? (size_t)n : 0;
}

static int probe_create(const struct sluice_host *host, const void *config,
                        struct sluice_str raw_json, void **self,
                        struct sluice_error *err)
{
    (void)config;
    (void)raw_json;
    if (!SLUICE_HOST_HAS(host, resp_whole_body)) {
        snprintf(err->message, sizeof err->message,
                 "needs a 1.1 host (resp_whole_body)");
        return -1;
    }
    struct probe *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return -1;
    }
    p->host = host;
    pthread_mutex_init(&p->lock, NULL);
    *self = p;
    return 0;
}

static void probe_destroy(void *self)
{
    struct probe *p = self;
    if (!p)
        return;
    pthread_mutex_destroy(&p->lock);
    free(p->whole);
    free(p);
}

static const struct sluice_plugin probe_plugin = {
    SLUICE_PLUGIN_HEADER,
    .name = "stream_probe",
    .version = "1.0.0",
    .summary = "test plugin: whole answers, replay as a stream, a gate",
    .req_state_size = sizeof(struct probe_req),
    .create = probe_create,
    .destroy = probe_destroy,
    .on_request = probe_on_request,
    .on_response = probe_on_response,
    .on_log = probe_on_log,
    .status_json = probe_status_json,
    .whole_streams = true,
};

SLUICE_PLUGIN_EXPORT(probe_plugin)
