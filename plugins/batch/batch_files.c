/* The Files API: POST /v1/files (multipart upload, purpose=batch, checked
 * line by line), GET /v1/files, GET /v1/files/{id}, GET
 * /v1/files/{id}/content, DELETE /v1/files/{id}. A file belongs to the
 * tenant that uploaded it; any other tenant gets the same 404 as for a
 * file that does not exist. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "batch_jsonl.h"
#include "batch_store.h"

static bool str_is(struct sluice_str s, const char *lit)
{
    return s.ptr && s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

static bool model_known(void *arg, const char *model)
{
    return batch_route_model(arg, model) >= 0;
}

static enum sluice_action not_found(struct batch *b, struct sluice_req *r,
                                    const char *id)
{
    char msg[160];
    snprintf(msg, sizeof msg, "No such File object: %.60s", id);
    return batch_error(b, r, 404, "id", NULL, msg);
}

static enum sluice_action upload(void *arg, struct sluice_req *r, void *state)
{
    struct batch *b = arg;
    const struct sluice_host *h = b->h;
    (void)state;
    struct sluice_form_part parts[8];
    size_t n = 0;
    const char *why = NULL;
    int rc = h->multipart_parse(h, h->req_header(r, "content-type"),
                                h->req_body(r), parts, 8, &n, &why);
    if (rc != SLUICE_OK)
        return batch_error(b, r, 400, NULL, NULL,
                           why ? why : "the upload is not multipart/form-data");
    const struct sluice_form_part *purpose = NULL, *file = NULL;
    for (size_t i = 0; i < n; i++) {
        if (str_is(parts[i].name, "purpose"))
            purpose = &parts[i];
        else if (str_is(parts[i].name, "file"))
            file = &parts[i];
    }
    if (!purpose)
        return batch_error(b, r, 400, "purpose", NULL,
                           "Missing required parameter: 'purpose'.");
    if (!str_is(purpose->data, "batch"))
        return batch_error(b, r, 400, "purpose", "invalid_value",
                           "This gateway stores files for purpose 'batch' "
                           "only.");
    if (!file || !file->filename.ptr)
        return batch_error(b, r, 400, "file", NULL,
                           "Missing required parameter: 'file'.");

    struct jsonl_check check;
    if (batch_jsonl_check(file->data.ptr, file->data.len,
                          (size_t)b->cfg->max_lines, model_known, (void *)h,
                          false, &check) != 0) {
        h->counter_add(b->m_rejected, 1);
        return batch_error(b, r, 400, "file", "invalid_file", check.error);
    }

    struct batch_file_row f = {0};
    batch_new_id(f.id, sizeof f.id, "file-", h->random_u64(h),
                 h->random_u64(h));
    batch_tenant(b, r, f.tenant, sizeof f.tenant);
    snprintf(f.purpose, sizeof f.purpose, "batch");
    snprintf(f.filename, sizeof f.filename, "%.*s", (int)file->filename.len,
             file->filename.ptr);
    f.bytes = (int64_t)file->data.len;
    f.created_at = h->wall_ms(h) / 1000;

    pthread_mutex_lock(&b->upload_mu);
    int64_t used = batch_db_bytes_stored(b->db);
    enum sluice_action a;
    if (used < 0) {
        a = batch_error(b, r, 503, NULL, NULL, "the file index is unreadable");
    } else if (used + f.bytes > b->cfg->max_storage_bytes) {
        a = batch_error(b, r, 413, "file", "storage_full",
                        "The gateway's batch file storage is full "
                        "(max_storage_bytes); delete files first.");
    } else if (batch_store_write(b->cfg->dir, f.id, file->data.ptr,
                                 file->data.len) != 0 ||
               batch_db_file_insert(b->db, &f) != 0) {
        batch_store_remove(b->cfg->dir, f.id);
        a = batch_error(b, r, 503, NULL, NULL, "the file could not be stored");
    } else {
        h->counter_add(b->m_uploads, 1);
        a = batch_json_reply(b, r, 200, batch_render_file(&f));
    }
    pthread_mutex_unlock(&b->upload_mu);
    return a;
}

static enum sluice_action list(void *arg, struct sluice_req *r, void *state)
{
    struct batch *b = arg;
    (void)state;
    char tenant[128];
    batch_tenant(b, r, tenant, sizeof tenant);
    enum { MAX = 1000 };
    struct batch_file_row *rows = calloc(MAX, sizeof *rows);
    if (!rows)
        return batch_error(b, r, 503, NULL, NULL, "out of memory");
    int n = batch_db_file_list(b->db, tenant, rows, MAX);
    json_t *data = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(data, batch_render_file(&rows[i]));
    free(rows);
    return batch_json_reply(b, r, 200,
                            json_pack("{s:s,s:o,s:b}", "object", "list", "data",
                                      data, "has_more", 0));
}

static enum sluice_action get(void *arg, struct sluice_req *r, void *state)
{
    struct batch *b = arg;
    (void)state;
    char id[64], tenant[128];
    const char *rest = "";
    if (!batch_path_id(b, r, "/v1/files/", id, sizeof id, &rest))
        return not_found(b, r, "");
    batch_tenant(b, r, tenant, sizeof tenant);
    struct batch_file_row f;
    if (batch_db_file_get(b->db, id, tenant, &f) != 0)
        return not_found(b, r, id);
    if (rest[0] == '\0')
        return batch_json_reply(b, r, 200, batch_render_file(&f));
    if (strcmp(rest, "/content") != 0)
        return batch_error(b, r, 404, NULL, NULL, "Unknown files route.");
    size_t len = 0;
    char *data = batch_store_read(b->cfg->dir, f.id, &len);
    if (!data)
        return batch_error(b, r, 503, NULL, NULL,
                           "the file's content is missing from storage");
    struct sluice_str body = {data, len};
    enum sluice_action a = b->h->respond(r, 200, "application/jsonl", body);
    free(data);
    return a;
}

static enum sluice_action del(void *arg, struct sluice_req *r, void *state)
{
    struct batch *b = arg;
    (void)state;
    char id[64], tenant[128];
    const char *rest = "";
    if (!batch_path_id(b, r, "/v1/files/", id, sizeof id, &rest) || rest[0])
        return not_found(b, r, "");
    batch_tenant(b, r, tenant, sizeof tenant);
    if (batch_db_file_delete(b->db, id, tenant) != 0)
        return not_found(b, r, id);
    batch_store_remove(b->cfg->dir, id);
    return batch_json_reply(
        b, r, 200,
        json_pack("{s:s,s:s,s:b}", "id", id, "object", "file", "deleted", 1));
}

int batch_files_routes(struct batch *b)
{
    const struct sluice_host *h = b->h;
    if (h->route_add(h, "POST", "/v1/files", upload, b) != SLUICE_OK ||
        h->route_add(h, "GET", "/v1/files", list, b) != SLUICE_OK ||
        h->route_add(h, "GET", "/v1/files/", get, b) != SLUICE_OK ||
        h->route_add(h, "DELETE", "/v1/files/", del, b) != SLUICE_OK)
        return -1;
    return 0;
}
