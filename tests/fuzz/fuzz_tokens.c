/* libFuzzer target for the tokenizer: on any bytes, the production path
 * (ASCII pre-tokeniser + PCRE2, heap merge for long pieces) gives exactly
 * the ids of the reference (PCRE2 for every piece, tiktoken's quadratic
 * merge). The first byte picks the encoding, the heap threshold and the
 * rank-bucket threshold; the heap and flat merges are also run against the
 * loop on the raw bytes as one piece, their token ids against the rank
 * table. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokens_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum tok_encoding_id id = (data[0] & 1) ? TOK_CL100K_BASE : TOK_O200K_BASE;
    const struct tok_encoding *e = tok_encoding_get(id);
    if (!e)
        abort();
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    /* Heap from 2 bytes up, or the production path (flat merge up to its
     * threshold, the memo). */
    struct tok_encode_opts fast = {
        true, (data[0] & 2) ? 2 : TOK_BPE_FLAT_MAX + 1, true, true};
    struct tok_encode_opts ref = {false, SIZE_MAX, false, false};
    size_t cap = 3 * len + 1; /* repaired text is at most 3x */
    uint32_t *a = malloc(sizeof(*a) * cap), *b = malloc(sizeof(*b) * cap);
    size_t na = tok_encode_with(e, text, len, a, cap, &fast);
    size_t nb = tok_encode_with(e, text, len, b, cap, &ref);
    if (na != nb || memcmp(a, b, na * sizeof(*a)) != 0)
        abort();
    if (tok_count(e, text, len) != na)
        abort();
    if (len >= 2 && len <= 160) { /* quadratic: keep runs fast */
        uint32_t ids[160];
        /* Rank buckets from 2 bytes on, or the production threshold. */
        size_t x =
            tok_bpe_merge_long(&e->ranks, data + 1, len, a, ids,
                               (data[0] & 4) ? 2 : TOK_BPE_BUCKETS_FROM, NULL);
        size_t y = tok_bpe_merge_scan(&e->ranks, data + 1, len, b);
        if (x != y || memcmp(a, b, x * sizeof(*a)) != 0)
            abort();
        /* The ids the long merge tracks are the ranks of its tokens. */
        for (size_t i = 0; i < x; i++) {
            size_t end = i + 1 < x ? b[i + 1] : len;
            if (ids[i] != tok_rank_find(&e->ranks, data + 1 + b[i], end - b[i]))
                abort();
        }
        /* The flat merge: the same starts and ids. */
        if (len <= TOK_BPE_FLAT_MAX) {
            uint32_t fids[TOK_BPE_FLAT_MAX];
            size_t z = tok_bpe_merge_flat(&e->ranks, data + 1, len, a, fids);
            if (z != y || memcmp(a, b, z * sizeof(*a)) != 0 ||
                memcmp(fids, ids, z * sizeof(*ids)) != 0)
                abort();
        }
    }
    free(a);
    free(b);
    return 0;
}
