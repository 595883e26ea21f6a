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

/* The pair cache of one count, made when its first long piece comes:
 * sized to the text, from 2 KB to 128 KB. */
struct lazy_cache {
    struct tok_pair_cache pc;
    size_t text_len;
    bool made;
};

static struct tok_pair_cache *pair_cache_of(struct lazy_cache *c,
                                            const struct tok_rank_table *t)
{
    if (!c->made) {
        unsigned bits = 8;
        while (bits < 14 && (size_t)1 << bits < c->text_len / 64)
            bits++;
        if (!tok_pair_cache_init(&c->pc, t, bits))
            return NULL;
        c->made = true;
    }
    return &c->pc;
}

/* The long-piece merge with the count's pair cache. */
static size_t merge_long(const struct tok_rank_table *t, const unsigned char *p,
                         size_t n, uint32_t *ids, struct lazy_cache *c)
{
    struct tok_pair_cache *pc = pair_cache_of(c, t);
    if (!pc)
        return (size_t)-1;
    return tok_bpe_merge_long(t, p, n, NULL, ids, TOK_BPE_BUCKETS_FROM, pc);
}

/* Short pieces that need merging recur (the same word or run of U+FFFD
 * again and again): one count remembers each one's tokens, keyed by its
 * bytes, in a direct-mapped table sized to the text. An entry points back
 * at the piece's first occurrence in the text, so a hit is checked
 * against the bytes themselves. */
/* Pieces up to this long are remembered (most recurring words and runs
 * of U+FFFD are shorter; CJK phrases without spaces are not). */
#define MEMO_MAX 256

struct memo_entry {
    uint32_t off; /* of the piece in the text; UINT32_MAX: empty */
    uint16_t len, count;
    uint32_t ids_at; /* its ids in the pool (when ids are asked for) */
};

struct piece_memo {
    const unsigned char *text;
    size_t text_len;
    struct memo_entry *e;
    uint32_t mask;
    bool on, made;
    uint32_t *ids;
    size_t ids_n, ids_cap;
};

static struct memo_entry *memo_slot(struct piece_memo *mo,
                                    const unsigned char *p, size_t n)
{
    if (!mo->made) {
        mo->made = true;
        size_t entries = 64;
        while (entries < 65536 && entries < mo->text_len / 16)
            entries *= 2;
        mo->e = malloc(sizeof(*mo->e) * entries);
        if (!mo->e)
            return NULL; /* no memo: merely slower */
        for (size_t i = 0; i < entries; i++)
            mo->e[i].off = UINT32_MAX;
        mo->mask = (uint32_t)entries - 1;
    }
    if (!mo->e)
        return NULL;
    uint64_t h = tok_hash_bytes(p, n, tok_head_of(p, n));
    return &mo->e[(uint32_t)(h >> 32) & mo->mask];
}

static void memo_free(struct piece_memo *mo)
{
    free(mo->e);
    free(mo->ids);
}

/* Remembers piece p (n bytes, m tokens, ids when not NULL) in slot me. */
static void memo_put(struct piece_memo *mo, struct memo_entry *me,
                     const unsigned char *p, size_t n, const uint32_t *ids,
                     size_t m)
{
    /* The pool of ids only grows. */
    if (ids && mo->ids_cap - mo->ids_n < m) {
        size_t ncap = mo->ids_cap < 1024 ? 1024 : mo->ids_cap * 2;
        uint32_t *x = realloc(mo->ids, sizeof(*x) * ncap);
        if (!x)
            return;
        mo->ids = x;
        mo->ids_cap = ncap;
    }
    *me = (struct memo_entry){(uint32_t)(p - mo->text), (uint16_t)n,
                              (uint16_t)m, (uint32_t)mo->ids_n};
    if (ids) {
        memcpy(mo->ids + mo->ids_n, ids, sizeof(*ids) * m);
        mo->ids_n += m;
    }
}

/* Copies m ids to out from k on, as far as cap allows. */
static void put_ids(uint32_t *out, size_t cap, size_t k, const uint32_t *ids,
                    size_t m)
{
    for (size_t i = 0; i < m && k + i < cap; i++)
        out[k + i] = ids[i];
}

/* The long merge of p[0..n), its ids appended to out (when not NULL) from
 * k on; how many tokens, (size_t)-1 when out of memory. */
static size_t long_tokens(const struct tok_rank_table *t,
                          const unsigned char *p, size_t n, uint32_t *out,
                          size_t cap, size_t k, struct lazy_cache *c)
{
    /* Ids straight into out when they fit (the merge knows them). */
    if (!out)
        return merge_long(t, p, n, NULL, c);
    if (cap >= k && cap - k >= n)
        return merge_long(t, p, n, out + k, c);
    uint32_t *ids = malloc(sizeof(*ids) * n);
    if (!ids)
        return (size_t)-1;
    size_t m = merge_long(t, p, n, ids, c);
    if (m != (size_t)-1)
        put_ids(out, cap, k, ids, m);
    free(ids);
    return m;
}

/* The flat merge of p[0..n) (n <= TOK_BPE_FLAT_MAX), as long_tokens. */
static size_t flat_tokens(const struct tok_rank_table *t,
                          const unsigned char *p, size_t n, uint32_t *out,
                          size_t cap, size_t k)
{
    uint32_t ids[TOK_BPE_FLAT_MAX];
    size_t m = tok_bpe_merge_flat(t, p, n, NULL, out ? ids : NULL);
    if (out)
        put_ids(out, cap, k, ids, m);
    return m;
}

/* A long piece (production path) is cut wherever two adjacent bytes occur
 * together in no token: no token, so no merge, can ever span that point,
 * so tiktoken's merge of the piece is the merges of the parts one after
 * the other. Each part is a token, or merged flat when short enough, else
 * by the long merge. 1 MB of random letters becomes parts of about 100
 * bytes (o200k; 7 of the 676 letter pairs are in no token) merged in
 * cache, not one merge over 16 MB of nodes. */
static size_t split_tokens(const struct tok_rank_table *t,
                           const unsigned char *p, size_t n, uint32_t *out,
                           size_t cap, size_t k, struct lazy_cache *c)
{
    size_t total = 0, a = 0;
    for (size_t i = 1; i <= n; i++) {
        if (i < n && tok_inner_pair(t, p[i - 1], p[i]))
            continue;
        const unsigned char *q = p + a;
        size_t len = i - a, m;
        uint32_t r =
            len <= TOK_MAX_TOKEN_BYTES ? tok_rank_find(t, q, len) : TOK_NO_RANK;
        if (r != TOK_NO_RANK) {
            if (out && k + total < cap)
                out[k + total] = r;
            m = 1;
        } else if (len <= TOK_BPE_FLAT_MAX) {
            m = flat_tokens(t, q, len, out, cap, k + total);
        } else {
            m = long_tokens(t, q, len, out, cap, k + total, c);
        }
        if (m == (size_t)-1)
            return m;
        total += m;
        a = i;
    }
    return total;
}

/* Pieces from this long on are cut as long ones are (split_tokens): runs
 * of punctuation and U+FFFD from random bytes often split into parts that
 * are tokens already. */
#define SPLIT_FROM 4

/* Merges one piece; appends its ids to out (when not NULL) from *k on and
 * returns how many tokens it made, (size_t)-1 when out of memory. */
__attribute__((always_inline)) static inline size_t
piece_tokens(const struct tok_rank_table *t, const unsigned char *p, size_t n,
             uint32_t *out, size_t cap, size_t k,
             const struct tok_encode_opts *opts, struct lazy_cache *c,
             struct piece_memo *mo)
{
    if (n == 1 || n <= TOK_MAX_TOKEN_BYTES) {
        uint32_t r = tok_rank_find(t, p, n);
        if (r != TOK_NO_RANK) {
            if (out && k < cap)
                out[k] = r;
            return 1;
        }
    }
    if (n >= opts->heap_from)
        return opts->flat ? split_tokens(t, p, n, out, cap, k, c)
                          : long_tokens(t, p, n, out, cap, k, c);
    struct memo_entry *me = NULL;
    /* (The loop's path keeps ids of up to TOK_BPE_HEAP_FROM on the stack.) */
    size_t memo_max = opts->flat ? MEMO_MAX : TOK_BPE_HEAP_FROM;
    if (mo->on && n <= memo_max && (me = memo_slot(mo, p, n)) &&
        me->off != UINT32_MAX && me->len == n &&
        memcmp(mo->text + me->off, p, n) == 0) {
        if (out)
            put_ids(out, cap, k, mo->ids + me->ids_at, me->count);
        return me->count;
    }
    if (opts->flat && n <= TOK_BPE_FLAT_MAX) {
        uint32_t ids[TOK_BPE_FLAT_MAX];
        size_t m = n >= SPLIT_FROM
                       ? split_tokens(t, p, n, out ? ids : NULL, n, 0, c)
                       : flat_tokens(t, p, n, out ? ids : NULL, n, 0);
        if (out)
            put_ids(out, cap, k, ids, m);
        if (me)
            memo_put(mo, me, p, n, out ? ids : NULL, m);
        return m;
    }
    uint32_t small[TOK_BPE_HEAP_FROM + 1], small_ids[TOK_BPE_HEAP_FROM + 1];
    uint32_t *starts =
        n <= TOK_BPE_HEAP_FROM ? small : malloc(sizeof(*starts) * n);
    if (!starts)
        return (size_t)-1;
    size_t m = tok_bpe_merge_scan(t, p, n, starts);
    uint32_t *ids = !out ? NULL : me ? small_ids : out + k;
    if (m != (size_t)-1 && ids)
        for (size_t i = 0; i < m && (me || k + i < cap); i++) {
            size_t end = i + 1 < m ? starts[i + 1] : n;
            ids[i] = tok_rank_find(t, p + starts[i], end - starts[i]);
        }
    if (starts != small)
        free(starts);
    if (me && m != (size_t)-1) {
        if (out)
            put_ids(out, cap, k, ids, m);
        memo_put(mo, me, p, n, out ? ids : NULL, m);
    }
    return m;
}

size_t tok_encode_with(const struct tok_encoding *e, const char *text,
                       size_t len, uint32_t *out, size_t cap,
                       const struct tok_encode_opts *opts)
{
    const unsigned char *s = (const unsigned char *)text;
    unsigned char *repaired = NULL;
    if (tok_utf8_valid_prefix(s, len) < len) {
        if (len > SIZE_MAX / 3 - 4 || !(repaired = malloc(len * 3 + 4)))
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
    struct lazy_cache cache = {{NULL, 0}, len, false};
    /* The memo on the production path only: the reference merges every
     * piece itself. Offsets into the text must fit its 32 bits. */
    struct piece_memo memo = {
        s, len, NULL, 0, opts->memo && len < UINT32_MAX, false, NULL, 0, 0};
    while (tok_piece_next(&it, &a, &b)) {
        size_t m = piece_tokens(&e->ranks, s + a, b - a, out, cap, k, opts,
                                &cache, &memo);
        if (m == (size_t)-1) {
            k = (size_t)-1;
            break;
        }
        k += m;
    }
    tok_pair_cache_free(&cache.pc);
    memo_free(&memo);
    pcre2_match_data_free(md);
    free(repaired);
    return k;
}

static const struct tok_encode_opts fast = {true, TOK_BPE_FLAT_MAX + 1, true,
                                            true};

size_t tok_count(const struct tok_encoding *e, const char *text, size_t len)
{
    return tok_encode_with(e, text, len, NULL, 0, &fast);
}

size_t tok_encode(const struct tok_encoding *e, const char *text, size_t len,
                  uint32_t *out, size_t cap)
{
    return tok_encode_with(e, text, len, out, cap, &fast);
}
