/* Result and output lines of the batch runner as text, without building
 * a JSON tree: an answer's body is checked and minified in one pass and
 * spliced into the stored result; the stored result is spliced into the
 * output file line. Each returns NULL (or false) when the input is not
 * the simple shape, and the caller takes the jansson path. */
#ifndef BATCH_RESULT_TEXT_H
#define BATCH_RESULT_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Copies `in` without the whitespace between tokens into out (room for
 * len bytes) when it is exactly one valid JSON value (UTF-8, nesting up
 * to 64); sets *out_len. false when it is not. */
bool batch_json_minify(const char *in, size_t len, char *out, size_t *out_len);

/* The stored result of a 2xx answer:
 * {"response":{"status_code":S,"request_id":"R","body":B},"error":null}.
 * NULL when the body is not JSON or the request id needs escaping.
 * malloc'd. */
char *batch_result_ok_text(int status, const char *request_id, const char *body,
                           size_t body_len);

/* The output file line (without the newline) of a stored result that
 * starts with {"response": -- {"id":"<id>","custom_id":<cid>,"response":..}
 * -- appended to *buf (realloc'd; len and cap updated). 1 done, 0 not the
 * shape (nothing appended), -1 out of memory. */
int batch_output_line_append(char **buf, size_t *len, size_t *cap,
                             const char *id, const char *custom_id,
                             const char *result);

#endif
