#include "request.h"

#include <event2/buffer.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "host_services.h"
#include "host_streams.h"
#include "response_budget.h"
#include "runtime.h"
#include "upstream/content_decode.h"
#include "upstream/sse.h"
#include "upstream/upstream_client.h"
#include "worker.h"

struct sluice_req *request_new(struct worker *w, struct generation *gen,
                               struct http_exchange *ex)
{
    struct sluice_req *r = malloc(sizeof *r);
    if (!r)
        return NULL;
    memset(r, 0, offsetof(struct sluice_req, arena));
    r->magic = REQUEST_MAGIC;
    r->w = w;
    r->gen = gen;
    r->ex = ex;
    arena_init(&r->arena);
    r->ticket =
        ((uint64_t)w->index << 56) | (++w->next_ticket & ((1ull << 56) - 1));
    r->started_ns = worker_now_ns();
    r->priority = SLUICE_PRIO_STANDARD;
    r->degrade_level = -1;
    r->identity[SLUICE_ID_TENANT] = "default";
    r->identity[SLUICE_ID_USER] = "";
    r->identity[SLUICE_ID_TIER] = "";
    r->identity[SLUICE_ID_KEY] = "";
    generation_ref(gen);
    worker_request_started(w, gen);
    return r;
}

void request_free(struct sluice_req *r)
{
    if (!r)
        return;
    host_services_request_end(r); /* plugin calls, then on_cleanup */
    if (r->resume_timer)
        event_free(r->resume_timer);
    if (r->retry_timer)
        event_free(r->retry_timer);
    if (r->resp_body)
        evbuffer_free(r->resp_body);
    response_budget_release(r->resp_budget_taken);
    content_decoder_free(r->decoder);
    if (r->sse)
        sse_parser_free(r->sse);
    stream_whole_free(r->whole);
    json_decref(r->json);
    api_request_release(&r->api);
    free(r->local_body);
    worker_request_ended(r->w, r->gen);
    generation_unref(r->gen);
    arena_free(&r->arena);
    r->magic = 0;
    free(r);
}

int kv_set(struct sluice_req *r, struct kv_list *l, const char *name,
           const char *value, size_t len)
{
    size_t i;
    for (i = 0; i < l->n; i++)
        if (strcasecmp(l->items[i].name, name) == 0)
            break;
    if (i == l->n) {
        if (l->n == REQUEST_MAX_KV)
            return SLUICE_ENOMEM;
        l->items[i].name = arena_strndup(&r->arena, name, strlen(name));
        if (!l->items[i].name)
            return SLUICE_ENOMEM;
        l->n++;
    }
    l->items[i].value = arena_strndup(&r->arena, value ? value : "", len);
    l->items[i].value_len = len;
    return l->items[i].value ? SLUICE_OK : SLUICE_ENOMEM;
}

const char *kv_get(const struct kv_list *l, const char *name, size_t *len)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcasecmp(l->items[i].name, name) == 0) {
            if (len)
                *len = l->items[i].value_len;
            return l->items[i].value;
        }
    }
    return NULL;
}

json_t *request_json(struct sluice_req *r)
{
    /* The body was validated by api_request_decode (what jansson accepts
     * with JSON_REJECT_DUPLICATES), so this only fails out of memory. */
    if (!r->json && r->body)
        r->json =
            json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, NULL);
    return r->json;
}

const char *request_target_model(const struct sluice_req *r, size_t *len)
{
    if (r->target_model) {
        *len = strlen(r->target_model);
        return r->target_model;
    }
    *len = r->api.model_len;
    return r->api.model;
}

const char *request_resp_header(const struct sluice_req *r, const char *name,
                                size_t *len)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i < r->resp_header_count; i++) {
        const char *h = r->resp_headers[i];
        if (strncasecmp(h, name, nlen) == 0 && h[nlen] == ':') {
            const char *v = h + nlen + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t vlen = strlen(v);
            while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
                vlen--;
            if (len)
                *len = vlen;
            return v;
        }
    }
    return NULL;
}
