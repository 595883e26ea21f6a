#include "tokens_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "utf8_repair.h"

extern const unsigned char tok_o200k_blob[], tok_o200k_blob_end[];
extern const unsigned char tok_cl100k_blob[], tok_cl100k_blob_end[];

static struct tok_encoding encodings[TOK_ENCODING_COUNT];
static bool ready[TOK_ENCODING_COUNT];
static pthread_once_t once[TOK_ENCODING_COUNT] = {PTHREAD_ONCE_INIT,
                                                  PTHREAD_ONCE_INIT};

static void build(enum tok_encoding_id id)
{
    struct tok_encoding *e = &encodings[id];
    const unsigned char *blob =
        id == TOK_O200K_BASE ? tok_o200k_blob : tok_cl100k_blob;
    const unsigned char *blob_end =
        id == TOK_O200K_BASE ? tok_o200k_blob_end : tok_cl100k_blob_end;
    e->id = id;
    if (!tok_rank_table_init(&e->ranks, blob, (size_t)(blob_end - blob)))
        return;
    if (!tok_pretok_init(&e->pretok, id)) {
        tok_rank_table_free(&e->ranks);
        return;
    }
    ready[id] = true;
}

static void build_o200k(void)
{
    build(TOK_O200K_BASE);
}

static void build_cl100k(void)
{
    build(TOK_CL100K_BASE);
}

const struct tok_encoding *tok_encoding_get(enum tok_encoding_id id)
{
    if ((unsigned)id >= TOK_ENCODING_COUNT)
        return NULL;
    pthread_once(&once[id], id == TOK_O200K_BASE ? build_o200k : build_cl100k);
    return ready[id] ? &encodings[id] : NULL;
}

enum tok_encoding_id tok_encoding_of(const struct tok_encoding *e)
{
    return e->id;
}

const unsigned char *tok_token_bytes(const struct tok_encoding *e, uint32_t id,
                                     size_t *len)
{
    if (id >= e->ranks.n)
        return NULL;
    return tok_rank_bytes(&e->ranks, id, len);
}

/* Merges one piece; appends its ids to out (when not NULL) from *k on and
 * returns how many tokens it made, (size_t)-1 when out of memory. */
static size_t piece_tokens(const struct tok_rank_table *t,
                           const unsigned char *p, size_t n, uint32_t *out,
                           size_t cap, size_t k, size_t heap_from)
{
    if (n == 1 || n <= TOK_MAX_TOKEN_BYTES) {
        uint32_t r = tok_rank_find(t, p, n);
        if (r != TOK_NO_RANK) {
            if (out && k < cap)
                out[k] = r;
            return 1;
        }
    }
    if (n >= heap_from) {
        /* Ids straight into out when they fit (the merge knows them). */
        if (!out)
            return tok_bpe_merge_heap_ids(t, p, n, NULL, NULL);
        if (cap >= k && cap - k >= n)
            return tok_bpe_merge_heap_ids(t, p, n, NULL, out + k);
        uint32_t *ids = malloc(sizeof(*ids) * n);
        if (!ids)
            return (size_t)-1;
        size_t m = tok_bpe_merge_heap_ids(t, p, n, NULL, ids);
        for (size_t i = 0; m != (size_t)-1 && i < m && k + i < cap; i++)
            out[k + i] = ids[i];
        free(ids);
        return m;
    }
    uint32_t small[TOK_BPE_HEAP_FROM + 1];
    uint32_t *starts =
        n <= TOK_BPE_HEAP_FROM ? small : malloc(sizeof(*starts) * n);
    if (!starts)
        return (size_t)-1;
    size_t m = tok_bpe_merge_scan(t, p, n, starts);
    if (m != (size_t)-1 && out)
        for (size_t i = 0; i < m && k + i < cap; i++) {
            size_t end = i + 1 < m ? starts[i + 1] : n;
            out[k + i] = tok_rank_find(t, p + starts[i], end - starts[i]);
        }
    if (starts != small)
        free(starts);
    return m;
}

size_t tok_encode_with(const struct tok_encoding *e, const char *text,
                       size_t len, uint32_t *out, size_t cap,
                       const struct tok_encode_opts *opts)
{
    const unsigned char *s = (const unsigned char *)text;
    unsigned char *repaired = NULL;
    if (tok_utf8_valid_prefix(s, len) < len) {
        if (len > SIZE_MAX / 3 || !(repaired = malloc(len * 3)))
            return (size_t)-1;
        len = tok_utf8_repair(s, len, repaired);
        s = repaired;
    }
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md) {
        free(repaired);
        return (size_t)-1;
    }
    struct tok_piece_iter it;
    tok_piece_iter_init(&it, &e->pretok, s, len, md, opts->ascii_fast);
    size_t k = 0, a, b;
    while (tok_piece_next(&it, &a, &b)) {
        size_t m =
            piece_tokens(&e->ranks, s + a, b - a, out, cap, k, opts->heap_from);
        if (m == (size_t)-1) {
            k = (size_t)-1;
            break;
        }
        k += m;
    }
    pcre2_match_data_free(md);
    free(repaired);
    return k;
}

static const struct tok_encode_opts fast = {true, TOK_BPE_HEAP_FROM + 1};

size_t tok_count(const struct tok_encoding *e, const char *text, size_t len)
{
    return tok_encode_with(e, text, len, NULL, 0, &fast);
}

size_t tok_encode(const struct tok_encoding *e, const char *text, size_t len,
                  uint32_t *out, size_t cap)
{
    return tok_encode_with(e, text, len, out, cap, &fast);
}
