/* The JSONL input of `sluice batch`: OpenAI batch lines (custom_id,
 * method, url, body), each with its exact input token count and its most
 * output tokens (max_tokens and friends), for pacing and the dry run. */
#ifndef SLUICE_CLI_BATCH_INPUT_H
#define SLUICE_CLI_BATCH_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct batch_in_line {
    char *custom_id;
    char *path; /* url without the leading "/v1": "/chat/completions" */
    char *body; /* JSON text */
    char *model;
    uint64_t input_tokens;
    uint64_t max_output; /* 0: the line sets no limit */
    bool estimated;      /* model without a known encoding: bytes/4 */
};

struct batch_input {
    struct batch_in_line *lines;
    size_t count;
    uint64_t hash; /* FNV-1a of the file: a checkpoint belongs to it */
};

/* 0, or -1 with the reason (naming the line) in err. */
int batch_input_load(const char *path, struct batch_input *in, char *err,
                     size_t errlen);
void batch_input_free(struct batch_input *in);

#endif
