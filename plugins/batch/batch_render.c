/* OpenAI wire shapes of the file and batch objects. */
#include <jansson.h>
#include <string.h>

#include "batch.h"

void *batch_render_file(const struct batch_file_row *f)
{
    return json_pack("{s:s,s:s,s:I,s:I,s:s,s:s,s:s,s:n,s:n}", "id", f->id,
                     "object", "file", "bytes", (json_int_t)f->bytes,
                     "created_at", (json_int_t)f->created_at, "filename",
                     f->filename, "purpose", f->purpose, "status", "processed",
                     "expires_at", "status_details");
}

static json_t *stamp(int64_t v)
{
    return v ? json_integer(v) : json_null();
}

static json_t *text_or_null(const char *s)
{
    return s && s[0] ? json_string(s) : json_null();
}

static json_t *raw_or_null(const char *s)
{
    json_t *v = s ? json_loads(s, 0, NULL) : NULL;
    return v ? v : json_null();
}

void *batch_render_batch(const struct batch_row *b)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(b->id));
    json_object_set_new(o, "object", json_string("batch"));
    json_object_set_new(o, "endpoint", json_string(b->endpoint));
    json_object_set_new(o, "errors", raw_or_null(b->errors));
    json_object_set_new(o, "input_file_id", json_string(b->input_file_id));
    json_object_set_new(o, "completion_window",
                        json_string(b->completion_window));
    json_object_set_new(o, "status", json_string(b->status));
    json_object_set_new(o, "output_file_id", text_or_null(b->output_file_id));
    json_object_set_new(o, "error_file_id", text_or_null(b->error_file_id));
    const char *names[] = {"created_at",    "in_progress_at", "expires_at",
                           "finalizing_at", "completed_at",   "failed_at",
                           "expired_at",    "cancelling_at",  "cancelled_at"};
    const int64_t vals[] = {
        b->created_at,    b->in_progress_at, b->expires_at,
        b->finalizing_at, b->completed_at,   b->failed_at,
        b->expired_at,    b->cancelling_at,  b->cancelled_at};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        json_object_set_new(o, names[i], stamp(vals[i]));
    json_object_set_new(
        o, "request_counts",
        json_pack("{s:I,s:I,s:I}", "total", (json_int_t)b->total, "completed",
                  (json_int_t)b->completed, "failed", (json_int_t)b->failed));
    json_object_set_new(
        o, "usage",
        json_pack("{s:I,s:I,s:I}", "input_tokens", (json_int_t)b->prompt_tokens,
                  "output_tokens", (json_int_t)b->completion_tokens,
                  "total_tokens",
                  (json_int_t)(b->prompt_tokens + b->completion_tokens)));
    json_object_set_new(o, "metadata", raw_or_null(b->metadata));
    return o;
}
