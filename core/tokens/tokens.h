/* Exact BPE token counting, identical to OpenAI's tiktoken (encode_ordinary:
 * special-token text such as "<|endoftext|>" is ordinary text). Encodings
 * are built once, on first use, and then shared read-only by every thread. */
#ifndef SLUICE_TOKENS_H
#define SLUICE_TOKENS_H

#include <stddef.h>
#include <stdint.h>

enum tok_encoding_id {
    TOK_O200K_BASE = 0,
    TOK_CL100K_BASE = 1,
    TOK_ENCODING_COUNT
};

struct tok_encoding;

/* The encoding, built on the first call (thread-safe); NULL only if the
 * embedded tables or the pattern cannot be set up (logged once). */
const struct tok_encoding *tok_encoding_get(enum tok_encoding_id id);

/* "o200k_base" / "cl100k_base" (len bytes) -> id, or -1. */
int tok_encoding_lookup(const char *name, size_t len);
const char *tok_encoding_name(enum tok_encoding_id id);
enum tok_encoding_id tok_encoding_of(const struct tok_encoding *e);

/* Number of tokens in text (len bytes, any bytes: invalid UTF-8 is first
 * replaced by U+FFFD as a JavaScript or Python string would carry it). */
size_t tok_count(const struct tok_encoding *e, const char *text, size_t len);

/* Token ids of text, as tok_count counts them. Writes at most cap ids to
 * out and returns the total number (call again with a bigger buffer when
 * the result exceeds cap). Returns (size_t)-1 on allocation failure. */
size_t tok_encode(const struct tok_encoding *e, const char *text, size_t len,
                  uint32_t *out, size_t cap);

/* The bytes of token id (NULL when out of range), for tests and tools. */
const unsigned char *tok_token_bytes(const struct tok_encoding *e, uint32_t id,
                                     size_t *len);

#endif
