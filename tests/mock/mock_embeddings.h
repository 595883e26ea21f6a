/* POST /v1/embeddings: request parsing and response body. */
#ifndef SLUICE_MOCK_EMBEDDINGS_H
#define SLUICE_MOCK_EMBEDDINGS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* Writes the response body for `body` into out and the token count into
 * *prompt_tokens. On a bad request returns -1 with message and param. */
int mock_embeddings_reply(const json_t *body, uint64_t seed,
                          struct evbuffer *out, long *prompt_tokens,
                          const char **param, char *err, size_t errlen);
/* Token estimate without building vectors (for the hidden capacity). */
long mock_embeddings_tokens(const json_t *body);

#endif
