/* Pre-tokenisation: splits text into the pieces tiktoken's pattern for the
 * encoding finds, each then merged on its own. PCRE2 (JIT) runs the exact
 * pattern; a hand-written scanner handles pieces that are pure ASCII with
 * ASCII around them and defers to PCRE2 for everything else. */
#ifndef SLUICE_TOKENS_PRETOK_H
#define SLUICE_TOKENS_PRETOK_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>

#include "tokens.h"

struct tok_pretok {
    pcre2_code *re;
    bool o200k; /* which of the two rule sets the ASCII scanner applies */
};

bool tok_pretok_init(struct tok_pretok *pt, enum tok_encoding_id id);
void tok_pretok_free(struct tok_pretok *pt);

struct tok_piece_iter {
    const struct tok_pretok *pt;
    const unsigned char *s; /* valid UTF-8 */
    size_t len, pos;
    bool ascii_fast; /* false: PCRE2 for every piece (the reference) */
    pcre2_match_data *md;
};

/* md from pcre2_match_data_create(1, NULL), owned by the caller. */
void tok_piece_iter_init(struct tok_piece_iter *it, const struct tok_pretok *pt,
                         const unsigned char *s, size_t len,
                         pcre2_match_data *md, bool ascii_fast);

/* Length of the ASCII piece at s[pos], or 0 when it cannot be decided
 * without looking at a non-ASCII character. */
size_t tok_ascii_piece(bool o200k, const unsigned char *s, size_t len,
                       size_t pos);

/* The piece at it->pos by PCRE2 (it->pos < it->len). */
bool tok_piece_next_pcre2(struct tok_piece_iter *it, size_t *start,
                          size_t *end);

/* Next piece as [*start, *end); false at the end of the text. */
static inline bool tok_piece_next(struct tok_piece_iter *it, size_t *start,
                                  size_t *end)
{
    if (it->pos >= it->len)
        return false;
    if (it->ascii_fast) {
        size_t n = tok_ascii_piece(it->pt->o200k, it->s, it->len, it->pos);
        if (n) {
            *start = it->pos;
            *end = it->pos += n;
            return true;
        }
    }
    return tok_piece_next_pcre2(it, start, end);
}

#endif
