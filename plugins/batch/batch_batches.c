/* The Batches API: POST /v1/batches, GET /v1/batches (newest first,
 * `limit` and `after`), GET /v1/batches/{id}, POST
 * /v1/batches/{id}/cancel. Creating a batch only records it
 * (`validating`); the runner does the rest. */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "batch_jsonl.h"
#include "batch_store.h"

/* "24h", "90m", "3600s": seconds, or -1. OpenAI accepts only "24h"; the
 * shorter forms let an operator (and the tests) see expiry happen. */
static int64_t window_seconds(const char *w)
{
    char *end = NULL;
    if (!isdigit((unsigned char)w[0]))
        return -1;
    long long v = strtoll(w, &end, 10);
    if (!end || end[0] == '\0' || end[1] != '\0')
        return -1;
    long long mult = end[0] == 'h'   ? 3600
                     : end[0] == 'm' ? 60
                     : end[0] == 's' ? 1
                                     : 0;
    if (mult == 0 || v <= 0 || v > 7 * 86400 / mult)
        return -1;
    return v * mult;
}

static enum sluice_action batch_not_found(struct batch *b, struct sluice_req *r,
                                          const char *id)
{
    char msg[160];
    snprintf(msg, sizeof msg, "No such Batch object: %.60s", id);
    return batch_error(b, r, 404, "id", NULL, msg);
}

static enum sluice_action create(void *arg, struct sluice_req *r, void *state)
{
    struct batch *b = arg;
    const struct sluice_host *h = b->h;
    (void)state;
    struct sluice_str raw = h->req_body(r);
    json_t *in = raw.ptr ? json_loadb(raw.ptr, raw.len, 0, NULL) : NULL;
    if (!json_is_object(in)) {
        json_decref(in);
        return batch_error(b, r, 400, NULL, NULL,
                           "The body must be a JSON object.");
    }
    const char *file_id =
        json_string_value(json_object_get(in, "input_file_id"));
    const char *endpoint = json_string_value(json_object_get(in, "endpoint"));
    const char *window =
        json_string_value(json_object_get(in, "completion_window"));
    json_t *meta = json_object_get(in, "metadata");
    enum sluice_action a;
    struct batch_row row = {0};
    struct batch_file_row f;
    int64_t secs = window ? window_seconds(window) : -1;
    batch_tenant(b, r, row.tenant, sizeof row.tenant);

    if (!file_id || strlen(file_id) >= sizeof row.input_file_id) {
        a = batch_error(b, r, 400, "input_file_id", NULL,
                        "Missing required parameter: 'input_file_id'.");
    } else if (!endpoint || !batch_endpoint_ok(endpoint)) {
        a = batch_error(b, r, 400, "endpoint", "invalid_value",
                        "endpoint must be /v1/chat/completions, "
                        "/v1/completions, /v1/embeddings or /v1/responses.");
    } else if (secs < 0) {
        a = batch_error(b, r, 400, "completion_window", "invalid_value",
                        "completion_window must be a duration such as "
                        "'24h'.");
    } else if (meta && !json_is_null(meta) &&
               (!json_is_object(meta) || json_object_size(meta) > 16)) {
        a = batch_error(b, r, 400, "metadata", "invalid_value",
                        "metadata must be an object of at most 16 keys.");
    } else if (batch_db_file_get(b->db, file_id, row.tenant, &f) != 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "No such File object: %.60s", file_id);
        a = batch_error(b, r, 404, "input_file_id", NULL, msg);
    } else if (strcmp(f.purpose, "batch") != 0) {
        a = batch_error(b, r, 400, "input_file_id", "invalid_value",
                        "The input file's purpose must be 'batch'.");
    } else {
        batch_new_id(row.id, sizeof row.id, "batch_", h->random_u64(h),
                     h->random_u64(h));
        struct sluice_str v;
        v = h->req_identity(r, SLUICE_ID_USER);
        snprintf(row.user, sizeof row.user, "%.*s", (int)v.len,
                 v.ptr ? v.ptr : "");
        v = h->req_identity(r, SLUICE_ID_TIER);
        snprintf(row.tier, sizeof row.tier, "%.*s", (int)v.len,
                 v.ptr ? v.ptr : "");
        v = h->req_identity(r, SLUICE_ID_KEY);
        snprintf(row.key, sizeof row.key, "%.*s", (int)v.len,
                 v.ptr ? v.ptr : "");
        snprintf(row.input_file_id, sizeof row.input_file_id, "%s", file_id);
        snprintf(row.endpoint, sizeof row.endpoint, "%s", endpoint);
        snprintf(row.completion_window, sizeof row.completion_window, "%s",
                 window);
        snprintf(row.status, sizeof row.status, "validating");
        row.created_at = h->wall_ms(h) / 1000;
        row.expires_at = row.created_at + secs;
        row.metadata = meta && json_is_object(meta)
                           ? json_dumps(meta, JSON_COMPACT)
                           : NULL;
        if (batch_db_batch_insert(b->db, &row) != 0)
            a = batch_error(b, r, 503, NULL, NULL,
                            "the batch could not be recorded");
        else
            a = batch_json_reply(b, r, 200, batch_render_batch(&row));
        batch_row_clear(&row);
    }
    json_decref(in);
    return a;
}

static enum sluice_action list(void *arg, struct sluice_req *r, void *state)
{
    struct batch *b = arg;
    (void)state;
    char tenant[128], after[64], lim[16];
    bool has_after = batch_query(b, r, "after", after, sizeof after);
    int limit = 20;
    if (batch_query(b, r, "limit", lim, sizeof lim)) {
        limit = atoi(lim);
        if (limit < 1 || limit > 100)
            return batch_error(b, r, 400, "limit", "invalid_value",
                               "limit must be between 1 and 100.");
    }
    batch_tenant(b, r, tenant, sizeof tenant);
    struct batch_row *rows = calloc((size_t)limit, sizeof *rows);
    if (!rows)
        return batch_error(b, r, 503, NULL, NULL, "out of memory");
    int more = 0;
    int n = batch_db_batch_list(b->db, tenant, has_after ? after : NULL, rows,
                                limit, &more);
    json_t *data = json_array();
    for (int i = 0; i < n; i++) {
        json_array_append_new(data, batch_render_batch(&rows[i]));
        batch_row_clear(&rows[i]);
    }
    json_t *o = json_pack("{s:s,s:o,s:b}", "object", "list", "data", data,
                          "has_more", more);
    json_object_set_new(o, "first_id",
                        n > 0 ? json_string(rows[0].id) : json_null());
    json_object_set_new(o, "last_id",
                        n > 0 ? json_string(rows[n - 1].id) : json_null());
    free(rows);
    return batch_json_reply(b, r, 200, o);
}

static enum sluice_action get(void *arg, struct sluice_req *r, void *state)
{
    struct batch *b = arg;
    (void)state;
    char id[64], tenant[128];
    const char *rest = "";
    if (!batch_path_id(b, r, "/v1/batches/", id, sizeof id, &rest) || rest[0])
        return batch_not_found(b, r, "");
    batch_tenant(b, r, tenant, sizeof tenant);
    struct batch_row row;
    if (batch_db_batch_get(b->db, id, tenant, &row) != 0)
        return batch_not_found(b, r, id);
    enum sluice_action a =
        batch_json_reply(b, r, 200, batch_render_batch(&row));
    batch_row_clear(&row);
    return a;
}

static enum sluice_action cancel(void *arg, struct sluice_req *r, void *state)
{
    struct batch *b = arg;
    (void)state;
    char id[64], tenant[128];
    const char *rest = "";
    if (!batch_path_id(b, r, "/v1/batches/", id, sizeof id, &rest) ||
        strcmp(rest, "/cancel") != 0)
        return batch_not_found(b, r, "");
    batch_tenant(b, r, tenant, sizeof tenant);
    struct batch_row row;
    if (batch_db_batch_get(b->db, id, tenant, &row) != 0)
        return batch_not_found(b, r, id);
    batch_row_clear(&row);
    int64_t now = b->h->wall_ms(b->h) / 1000;
    /* Only a batch still running can be cancelled; the runner finishes
     * the move once the lines in flight have come back. */
    if (batch_db_batch_move(b->db, id, "in_progress", "cancelling", now) != 0 &&
        batch_db_batch_move(b->db, id, "validating", "cancelling", now) != 0 &&
        strcmp(row.status, "cancelling") != 0) {
        char msg[120];
        snprintf(msg, sizeof msg, "Cannot cancel a batch with status '%s'.",
                 row.status);
        return batch_error(b, r, 400, NULL, "batch_not_cancellable", msg);
    }
    if (batch_db_batch_get(b->db, id, tenant, &row) != 0)
        return batch_not_found(b, r, id);
    enum sluice_action a =
        batch_json_reply(b, r, 200, batch_render_batch(&row));
    batch_row_clear(&row);
    return a;
}

int batch_batches_routes(struct batch *b)
{
    const struct sluice_host *h = b->h;
    if (h->route_add(h, "POST", "/v1/batches", create, b) != SLUICE_OK ||
        h->route_add(h, "GET", "/v1/batches", list, b) != SLUICE_OK ||
        h->route_add(h, "GET", "/v1/batches/", get, b) != SLUICE_OK ||
        h->route_add(h, "POST", "/v1/batches/", cancel, b) != SLUICE_OK)
        return -1;
    return 0;
}
