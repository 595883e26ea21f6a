#include "rank_table.h"

#include <stdlib.h>
#include <string.h>

bool tok_rank_table_init(struct tok_rank_table *t, const unsigned char *blob,
                         size_t size)
{
    memset(t, 0, sizeof(*t));
    uint32_t n = 0;
    for (size_t pos = 0; pos < size; pos += 1 + (size_t)blob[pos]) {
        if (blob[pos] == 0 || pos + 1 + blob[pos] > size)
            return false;
        n++;
    }
    uint32_t cap = 1;
    while (cap < n * 2u)
        cap <<= 1; /* load factor <= 0.5 keeps probes short */
    t->offset = malloc(sizeof(*t->offset) * n);
    t->slots = malloc(sizeof(*t->slots) * cap);
    t->pair_rank = malloc(sizeof(*t->pair_rank) * 65536);
    t->filter_mask = (1u << 15) - 1; /* 2^21 bits: ~3% false positives */
    t->filter = calloc((size_t)t->filter_mask + 1, sizeof(*t->filter));
    t->inner = calloc(65536 / 64, sizeof(*t->inner));
    if (!t->offset || !t->slots || !t->pair_rank || !t->filter || !t->inner) {
        tok_rank_table_free(t);
        return false;
    }
    t->blob = blob;
    t->n = n;
    t->mask = cap - 1;
    for (uint32_t i = 0; i < cap; i++)
        t->slots[i] = (struct tok_rank_slot){0, TOK_NO_RANK, 0};
    for (int b = 0; b < 256; b++)
        t->byte_rank[b] = TOK_NO_RANK;
    for (int b = 0; b < 65536; b++)
        t->pair_rank[b] = TOK_NO_RANK;
    size_t pos = 0;
    for (uint32_t r = 0; r < n; r++) {
        size_t len = blob[pos];
        const unsigned char *p = blob + pos + 1;
        t->offset[r] = (uint32_t)(pos + 1);
        pos += 1 + len;
        if (len == 1)
            t->byte_rank[p[0]] = r;
        else if (len == 2)
            t->pair_rank[p[0] | (unsigned)p[1] << 8] = r;
        uint64_t head = tok_head_of(p, len), h = tok_hash_bytes(p, len, head);
        uint32_t i = tok_index_of(h, t->mask);
        while (t->slots[i].rank != TOK_NO_RANK)
            i = (i + 1) & t->mask;
        t->slots[i] = (struct tok_rank_slot){head, r, tok_meta_of(len, h)};
        t->filter[tok_filter_word(h, t->filter_mask)] |= tok_filter_bits(h);
        for (size_t j = 0; j + 1 < len; j++) {
            unsigned k = p[j] | (unsigned)p[j + 1] << 8;
            t->inner[k >> 6] |= 1ull << (k & 63);
        }
    }
    /* Every byte must have a rank, or some input could not be encoded. */
    for (int b = 0; b < 256; b++)
        if (t->byte_rank[b] == TOK_NO_RANK) {
            tok_rank_table_free(t);
            return false;
        }
    return true;
}

void tok_rank_table_free(struct tok_rank_table *t)
{
    free(t->offset);
    free(t->slots);
    free(t->pair_rank);
    free(t->filter);
    free(t->inner);
    t->filter = NULL;
    t->inner = NULL;
    t->offset = NULL;
    t->slots = NULL;
    t->pair_rank = NULL;
}
