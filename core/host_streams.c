/* Streams in the host table: see host_streams.h. */
#include "host_streams.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "request.h"
#include "respond.h"
#include "runtime.h"
#include "stream_answer.h"
#include "stream_assemble.h"

/* The same cap as a buffered non-streamed answer (proxy.c). */
#define MAX_WHOLE_BYTES (64u << 20)

struct stream_whole {
    struct stream_assembly *assembly;
    char *json; /* the result, made on first read */
    size_t len;
    bool made;
};

static bool assembled_kind(const struct sluice_req *r,
                           enum stream_assemble_kind *kind)
{
    if (r->kind == API_CHAT)
        *kind = STREAM_ASSEMBLE_CHAT;
    else if (r->kind == API_COMPLETIONS)
        *kind = STREAM_ASSEMBLE_COMPLETIONS;
    else
        return false;
    return true;
}

/* Once per stream: a handful of instances to look at. */
static bool pipeline_wants_whole(const struct generation *g)
{
    for (size_t i = 0; i < g->count; i++)
        if (g->inst[i].desc->whole_streams)
            return true;
    return false;
}

struct stream_whole *stream_whole_start(const struct sluice_req *r)
{
    enum stream_assemble_kind kind;
    if (!assembled_kind(r, &kind) || !pipeline_wants_whole(r->gen))
        return NULL;
    struct stream_whole *w = calloc(1, sizeof *w);
    if (w && !(w->assembly = stream_assembly_new(kind, MAX_WHOLE_BYTES))) {
        free(w);
        w = NULL;
    }
    return w;
}

void stream_whole_event(struct stream_whole *w, const char *data, size_t len)
{
    stream_assembly_event(w->assembly, data, len);
}

void stream_whole_free(struct stream_whole *w)
{
    if (!w)
        return;
    stream_assembly_free(w->assembly);
    free(w->json);
    free(w);
}

static struct sluice_str resp_whole_body(const struct sluice_req *r)
{
    struct sluice_str none = {NULL, 0};
    if (!r->api.stream) {
        if (!r->resp_body || r->stream_to_client)
            return none;
        size_t len = evbuffer_get_length(r->resp_body);
        const char *p = (const char *)evbuffer_pullup(r->resp_body, -1);
        return (struct sluice_str){len ? p : NULL, len};
    }
    /* Only a stream the relay saw end cleanly; the assembly also checks
     * [DONE] and every choice's finish_reason. */
    struct stream_whole *w = r->whole;
    if (!w || r->outcome != SLUICE_OUTCOME_OK)
        return none;
    if (!w->made) {
        w->made = true;
        w->json = stream_assembly_result(w->assembly, &w->len);
    }
    return w->json ? (struct sluice_str){w->json, w->len} : none;
}

static bool is_json_type(const char *content_type)
{
    static const char json[] = "application/json";
    return !content_type ||
           strncasecmp(content_type, json, sizeof json - 1) == 0;
}

bool host_streams_respond(struct sluice_req *r, int status,
                          const char *content_type, struct sluice_str body)
{
    enum stream_assemble_kind kind;
    if (!r->api.stream || status < 200 || status > 299 || !body.ptr ||
        !is_json_type(content_type) || !assembled_kind(r, &kind))
        return false;
    size_t len = 0;
    char *sse = stream_answer_render(kind, body.ptr, body.len,
                                     r->api.include_usage, &len);
    if (!sse)
        return false;
    respond_set_body(r, status, "text/event-stream", sse, len);
    free(sse);
    kv_set(r, &r->client_headers, "Cache-Control", "no-cache", 8);
    return true;
}

void host_streams_init(struct sluice_host *h)
{
    h->resp_whole_body = resp_whole_body;
}
