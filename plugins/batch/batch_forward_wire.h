/* The pure parts of forwarding a batch to its upstream's Batch API: the
 * status mapping, the multipart upload body, reading the provider's
 * answers. No I/O; unit-tested in test_batch.c. */
#ifndef BATCH_FORWARD_WIRE_H
#define BATCH_FORWARD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch_db.h"

/* The status the local batch shows for the provider's `provider` status,
 * given the local one. A provider batch that ended (completed, expired,
 * cancelled) shows as `finalizing` until its files are stored here; a
 * local `cancelling` stays until the provider has ended too. NULL: the
 * provider status is not one OpenAI defines (the local status stays). */
const char *batch_forward_local_status(const char *provider, const char *local);
/* completed, expired, cancelled: the provider's files are final. */
bool batch_forward_ended(const char *provider);

/* A multipart/form-data body with purpose=batch and the file; malloc'd.
 * *ctype receives the Content-Type value (with the boundary). */
char *batch_forward_multipart(uint64_t nonce, const char *filename,
                              const char *data, size_t len, char *ctype,
                              size_t ctype_cap, size_t *out_len);

/* Reads a provider batch object into f (id, status, counts, file ids);
 * *total gets request_counts.total. False when it is not one. */
bool batch_forward_read_batch(const char *body, size_t len,
                              struct batch_forward_row *f, int64_t *total);
/* The "id" of a provider object (file upload answer), into out. */
bool batch_forward_read_id(const char *body, size_t len, char *out, size_t cap);
/* A one-sentence reason for a failed provider call: its error message
 * when it sent one, else the status. */
void batch_forward_reason(const char *what, const char *upstream, int status,
                          const char *body, size_t len, char *out, size_t cap);
/* Sums usage.prompt_tokens / completion_tokens (or input/output_tokens)
 * of each line's response.body in a batch output file. */
void batch_forward_usage(const char *data, size_t len, int64_t *prompt,
                         int64_t *completion);

/* The metadata key naming the local batch in the provider batch, so a
 * creation whose answer was lost can be found again. */
#define BATCH_FORWARD_META_KEY "sluice_batch_id"
/* In a provider's file list ({"data": [...]}), the id of the file named
 * `filename`, into out. False when there is none. */
bool batch_forward_find_file(const char *body, size_t len, const char *filename,
                             char *out, size_t cap);
/* In a provider's batch list, the batch whose metadata names local_id, as
 * malloc'd JSON text; NULL when there is none. */
char *batch_forward_find_batch(const char *body, size_t len,
                               const char *local_id);

#endif
