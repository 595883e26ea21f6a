/* What tests, the fuzz target and the bench see beyond tokens.h. */
#ifndef SLUICE_TOKENS_INTERNAL_H
#define SLUICE_TOKENS_INTERNAL_H

#include <stdbool.h>

#include "bpe_merge.h"
#include "pretok.h"
#include "rank_table.h"
#include "tokens.h"

struct tok_encoding {
    enum tok_encoding_id id;
    struct tok_rank_table ranks;
    struct tok_pretok pretok;
};

struct tok_encode_opts {
    bool ascii_fast;  /* hand-written pre-tokeniser for ASCII pieces */
    size_t heap_from; /* pieces this long or longer use the heap merge */
    bool flat;        /* shorter ones (up to TOK_BPE_FLAT_MAX) the flat
                       * merge rather than tiktoken's loop */
    bool memo;        /* remember the tokens of pieces that recur */
};

/* The production path uses {true, TOK_BPE_FLAT_MAX + 1, true, true}; the
 * reference {false, SIZE_MAX, false, false}: PCRE2 for every piece and
 * tiktoken's quadratic merge. */
size_t tok_encode_with(const struct tok_encoding *e, const char *text,
                       size_t len, uint32_t *out, size_t cap,
                       const struct tok_encode_opts *opts);

#endif
