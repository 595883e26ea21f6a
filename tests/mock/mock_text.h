/* Deterministic reply text and token estimates. A completion token is one
 * word of the reply, so usage.completion_tokens is exact by construction;
 * prompt tokens are estimated as characters / 4. */
#ifndef SLUICE_MOCK_TEXT_H
#define SLUICE_MOCK_TEXT_H

#include <stddef.h>

/* Number of UTF-8 code points in s[0..len). */
size_t mock_utf8_chars(const char *s, size_t len);
/* Byte length of the longest prefix of at most max_bytes that does not
 * split a UTF-8 sequence. */
size_t mock_utf8_prefix(const char *s, size_t len, size_t max_bytes);
/* ceil(chars / 4), at least 1. */
long mock_tokens_for_chars(size_t chars);

struct mock_text {
    char *buf; /* words separated by single spaces, NUL-terminated */
    size_t len;
    long nwords;
    size_t *starts; /* starts[i] = offset of word i; starts[nwords] = len+1 */
};

/* Words in the natural reply to `about` (the last user message):
 * "mock reply to: <its first 40 characters>". */
long mock_text_natural_words(const char *about, size_t about_len);
/* Builds exactly `words` words: the natural reply, cut short or extended
 * with filler words. Returns -1 on allocation failure. */
int mock_text_make(struct mock_text *t, const char *about, size_t about_len,
                   long words);
/* Piece `chunk` of `nchunks` (words spread evenly; every piece after the
 * first carries its leading space, so the pieces concatenate to buf). */
void mock_text_piece(const struct mock_text *t, long chunk, long nchunks,
                     const char **p, size_t *n);
void mock_text_free(struct mock_text *t);

#endif
