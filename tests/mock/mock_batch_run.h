/* Runs one line of a batch input file with the mock's own answers (chat,
 * completions, responses, embeddings) and writes the OpenAI batch output
 * line for it. Pure: no I/O, no shared state. */
#ifndef SLUICE_MOCK_BATCH_RUN_H
#define SLUICE_MOCK_BATCH_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Appends the result line (with '\n') of input line `line` to *out (a
 * 2xx answer) or *err (anything else); both are malloc'd buffers grown
 * as needed. `num` numbers the ids. Returns true for a 2xx answer. */
struct mock_buf {
    char *p;
    size_t len, cap;
};
bool mock_batch_run_line(const char *line, size_t len, uint64_t seed,
                         unsigned long num, struct mock_buf *out,
                         struct mock_buf *err);
/* The error-file line of a line that was never run (cancelled batch). */
void mock_batch_skip_line(const char *line, size_t len, unsigned long num,
                          const char *code, const char *message,
                          struct mock_buf *err);
int mock_buf_add(struct mock_buf *b, const char *s, size_t len);

#endif
