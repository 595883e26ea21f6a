/* Checks a batch input file line by line, as OpenAI does on upload:
 * each line a JSON object with a unique custom_id, method POST, a
 * supported url, and a body object naming a model some upstream serves.
 * The first problem is reported with its 1-based line number. */
#ifndef BATCH_JSONL_H
#define BATCH_JSONL_H

#include <stdbool.h>
#include <stddef.h>

/* Is `model` served (by name or a "*" upstream)? */
typedef bool (*batch_model_known_fn)(void *arg, const char *model);

struct jsonl_span {
    size_t off, len; /* one line within the file, without its newline */
    void *json;      /* with JSONL_PARSED: the line's json_t, caller's */
};

enum {
    JSONL_SPANS = 1,  /* return the line positions */
    JSONL_PARSED = 2, /* and each parsed line (parsed once, not again) */
};

struct jsonl_check {
    size_t lines;          /* non-empty lines */
    char url[40];          /* the url every line shares */
    char error[300];       /* set when the check fails */
    struct jsonl_span *at; /* with want_spans: malloc'd, one per line */
};

/* 0 ok, -1 with check->error. max_lines caps the count. Lines must all
 * use the same url. `want` (JSONL_SPANS, | JSONL_PARSED) says what is
 * returned in check->at; with JSONL_PARSED the caller decrefs each
 * at[i].json. */
int batch_jsonl_check(const char *data, size_t len, size_t max_lines,
                      batch_model_known_fn known, void *arg, int want,
                      struct jsonl_check *check);

/* Whether `url` is an endpoint batches may use. */
bool batch_endpoint_ok(const char *url);

#endif
