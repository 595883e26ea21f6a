/* Invalid UTF-8 -> U+FFFD, one per maximal invalid subpart (the WHATWG
 * decoder, which is what Node's Buffer.toString and TextDecoder apply). The
 * npm tiktoken package only ever sees JavaScript strings, so that is the
 * text it tokenizes when handed bytes that are not UTF-8. */
#ifndef SLUICE_TOKENS_UTF8_REPAIR_H
#define SLUICE_TOKENS_UTF8_REPAIR_H

#include <stddef.h>

/* Length of the longest valid UTF-8 prefix of s. */
size_t tok_utf8_valid_prefix(const unsigned char *s, size_t len);

/* Writes the repaired text of s to out (room for 3 * len + 4 bytes: it
 * may write a few bytes past the end of the result) and returns its
 * length. */
size_t tok_utf8_repair(const unsigned char *s, size_t len, unsigned char *out);

#endif
