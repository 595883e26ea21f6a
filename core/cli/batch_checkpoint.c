/* Atomic checkpoints of `sluice batch` (see batch_checkpoint.h). */
#include "cli/batch_checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int batch_ckpt_read(const char *path, struct batch_ckpt *c)
{
    memset(c, 0, sizeof *c);
    if (access(path, F_OK) != 0)
        return errno == ENOENT ? 1 : -1;
    json_t *o = json_load_file(path, 0, NULL);
    const char *hash = json_string_value(json_object_get(o, "input_hash"));
    if (!o || !hash) {
        json_decref(o);
        return -1;
    }
    c->input_hash = strtoull(hash, NULL, 16);
    c->partial_bytes =
        (uint64_t)json_integer_value(json_object_get(o, "partial_bytes"));
    c->done = (uint64_t)json_integer_value(json_object_get(o, "done"));
    c->failed = (uint64_t)json_integer_value(json_object_get(o, "failed"));
    c->prompt_tokens =
        (uint64_t)json_integer_value(json_object_get(o, "prompt_tokens"));
    c->completion_tokens =
        (uint64_t)json_integer_value(json_object_get(o, "completion_tokens"));
    c->spend_usd = json_number_value(json_object_get(o, "spend_usd"));
    json_decref(o);
    return 0;
}

int batch_ckpt_write(const char *path, FILE *partial,
                     const struct batch_ckpt *c)
{
    if (partial && (fflush(partial) != 0 || fsync(fileno(partial)) != 0))
        return -1;
    char tmp[4096], hash[32];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(hash, sizeof hash, "%016" PRIx64, c->input_hash);
    json_t *o = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:f}", "input_hash", hash,
                          "partial_bytes", (json_int_t)c->partial_bytes, "done",
                          (json_int_t)c->done, "failed", (json_int_t)c->failed,
                          "prompt_tokens", (json_int_t)c->prompt_tokens,
                          "completion_tokens", (json_int_t)c->completion_tokens,
                          "spend_usd", c->spend_usd);
    FILE *f = o ? fopen(tmp, "w") : NULL;
    int rc = f && json_dumpf(o, f, JSON_COMPACT) == 0 ? 0 : -1;
    json_decref(o);
    if (f) {
        if (fflush(f) != 0 || fsync(fileno(f)) != 0)
            rc = -1;
        if (fclose(f) != 0)
            rc = -1;
    }
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -1;
    return rc;
}
