#include "batch_forward_wire.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is(const char *a, const char *b)
{
    return a && strcmp(a, b) == 0;
}

bool batch_forward_ended(const char *p)
{
    return is(p, "completed") || is(p, "expired") || is(p, "cancelled");
}

const char *batch_forward_local_status(const char *p, const char *local)
{
    bool cancelling = is(local, "cancelling");
    if (is(p, "failed"))
        return "failed";
    if (batch_forward_ended(p))
        return cancelling ? "cancelling" : "finalizing";
    if (is(p, "cancelling"))
        return "cancelling";
    if (is(p, "validating") || is(p, "in_progress") || is(p, "finalizing"))
        return cancelling ? "cancelling" : p;
    return NULL;
}

char *batch_forward_multipart(uint64_t nonce, const char *filename,
                              const char *data, size_t len, char *ctype,
                              size_t ctype_cap, size_t *out_len)
{
    char bnd[64];
    /* A boundary found in the data would cut it: change it until not. */
    for (;; nonce = nonce * 6364136223846793005ull + 1442695040888963407ull) {
        snprintf(bnd, sizeof bnd, "sluice-batch-%016llx",
                 (unsigned long long)nonce);
        if (!memmem(data, len, bnd, strlen(bnd)))
            break;
    }
    char head[512], tail[96];
    int hl = snprintf(head, sizeof head,
                      "--%s\r\nContent-Disposition: form-data; "
                      "name=\"purpose\"\r\n\r\nbatch\r\n"
                      "--%s\r\nContent-Disposition: form-data; name=\"file\"; "
                      "filename=\"%.100s\"\r\nContent-Type: "
                      "application/jsonl\r\n\r\n",
                      bnd, bnd, filename);
    int tl = snprintf(tail, sizeof tail, "\r\n--%s--\r\n", bnd);
    char *out = malloc((size_t)hl + len + (size_t)tl);
    if (!out)
        return NULL;
    memcpy(out, head, (size_t)hl);
    memcpy(out + hl, data, len);
    memcpy(out + (size_t)hl + len, tail, (size_t)tl);
    *out_len = (size_t)hl + len + (size_t)tl;
    snprintf(ctype, ctype_cap, "multipart/form-data; boundary=%s", bnd);
    return out;
}

static void copy_str(json_t *o, const char *key, char *out, size_t cap)
{
    const char *v = json_string_value(json_object_get(o, key));
    snprintf(out, cap, "%s", v ? v : "");
}

bool batch_forward_read_batch(const char *body, size_t len,
                              struct batch_forward_row *f, int64_t *total)
{
    json_t *o = body ? json_loadb(body, len, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(o, "id"));
    const char *st = json_string_value(json_object_get(o, "status"));
    bool ok = id && st && strlen(id) < sizeof f->batch_id;
    if (ok) {
        copy_str(o, "id", f->batch_id, sizeof f->batch_id);
        copy_str(o, "status", f->status, sizeof f->status);
        copy_str(o, "output_file_id", f->output_id, sizeof f->output_id);
        copy_str(o, "error_file_id", f->error_id, sizeof f->error_id);
        json_t *c = json_object_get(o, "request_counts");
        f->completed = json_integer_value(json_object_get(c, "completed"));
        f->failed = json_integer_value(json_object_get(c, "failed"));
        *total = json_integer_value(json_object_get(c, "total"));
    }
    json_decref(o);
    return ok;
}

bool batch_forward_read_id(const char *body, size_t len, char *out, size_t cap)
{
    json_t *o = body ? json_loadb(body, len, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(o, "id"));
    bool ok = id && id[0] && strlen(id) < cap && !strpbrk(id, "/?# \r\n");
    if (ok)
        snprintf(out, cap, "%s", id);
    json_decref(o);
    return ok;
}

void batch_forward_reason(const char *what, const char *upstream, int status,
                          const char *body, size_t len, char *out, size_t cap)
{
    json_t *o = body ? json_loadb(body, len, 0, NULL) : NULL;
    const char *msg = json_string_value(
        json_object_get(json_object_get(o, "error"), "message"));
    if (status == 0)
        snprintf(out, cap, "upstream '%s' did not answer the %s", upstream,
                 what);
    else
        snprintf(out, cap, "upstream '%s' refused the %s (status %d)%s%.200s",
                 upstream, what, status, msg ? ": " : "", msg ? msg : "");
    json_decref(o);
}

static int64_t tokens(json_t *usage, const char *a, const char *b)
{
    json_t *v = json_object_get(usage, a);
    if (!v)
        v = json_object_get(usage, b);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

void batch_forward_usage(const char *data, size_t len, int64_t *prompt,
                         int64_t *completion)
{
    *prompt = *completion = 0;
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(data + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - data) : len;
        json_t *line = json_loadb(data + at, end - at, 0, NULL);
        json_t *u = json_object_get(
            json_object_get(json_object_get(line, "response"), "body"),
            "usage");
        *prompt += tokens(u, "prompt_tokens", "input_tokens");
        *completion += tokens(u, "completion_tokens", "output_tokens");
        json_decref(line);
        at = end + 1;
    }
}

bool batch_forward_find_file(const char *body, size_t len, const char *filename,
                             char *out, size_t cap)
{
    json_t *o = body ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *data = json_object_get(o, "data"), *f;
    size_t i;
    bool found = false;
    json_array_foreach(data, i, f)
    {
        const char *name = json_string_value(json_object_get(f, "filename"));
        char *text = NULL;
        if (!found && is(name, filename) &&
            (text = json_dumps(f, JSON_COMPACT)) != NULL) {
            found = batch_forward_read_id(text, strlen(text), out, cap);
            free(text);
        }
    }
    json_decref(o);
    return found;
}

char *batch_forward_find_batch(const char *body, size_t len,
                               const char *local_id)
{
    json_t *o = body ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *data = json_object_get(o, "data"), *b;
    size_t i;
    char *found = NULL;
    json_array_foreach(data, i, b)
    {
        json_t *meta = json_object_get(b, "metadata");
        if (!found &&
            is(json_string_value(json_object_get(meta, BATCH_FORWARD_META_KEY)),
               local_id))
            found = json_dumps(b, JSON_COMPACT);
    }
    json_decref(o);
    return found;
}
