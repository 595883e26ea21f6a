/* Test helper: prints what the tokenizer makes of a file, for the golden
 * comparison (tests/tokens/golden.py) and for debugging.
 *   tok_tool ids ENCODING FILE        one id per line, whole file
 *   tok_tool chunks ENCODING FILE     per NUL-separated chunk: count and
 *                                     ids, "n id id id..." per line
 *   tok_tool ref ENCODING FILE        ids by the reference path
 *   tok_tool heap ENCODING FILE       chunks, heap merge for every piece */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokens_internal.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n == cap)
            buf = realloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    *len = n;
    return buf;
}

static void print_ids(const struct tok_encoding *e, const char *s, size_t n,
                      const struct tok_encode_opts *o)
{
    size_t cnt = tok_encode_with(e, s, n, NULL, 0, o);
    uint32_t *ids = malloc(sizeof(*ids) * (cnt + 1));
    tok_encode_with(e, s, n, ids, cnt, o);
    printf("%zu", cnt);
    for (size_t i = 0; i < cnt; i++)
        printf(" %u", ids[i]);
    printf("\n");
    free(ids);
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    int id = tok_encoding_lookup(argv[2], strlen(argv[2]));
    const struct tok_encoding *e = id < 0 ? NULL : tok_encoding_get(id);
    size_t len;
    char *text = slurp(argv[3], &len);
    if (!e || !text)
        return 2;
    struct tok_encode_opts fast = {true, TOK_BPE_FLAT_MAX + 1, true, true};
    struct tok_encode_opts ref = {false, SIZE_MAX, false, false};
    struct tok_encode_opts heap = {true, 2, false, true};
    const struct tok_encode_opts *o = &fast;
    if (strcmp(argv[1], "ref") == 0)
        o = &ref;
    else if (strcmp(argv[1], "heap") == 0)
        o = &heap;
    if (strcmp(argv[1], "chunks") == 0 || o == &heap) {
        for (size_t a = 0; a <= len;) {
            const char *z = memchr(text + a, 0, len - a);
            size_t b = z ? (size_t)(z - text) : len;
            print_ids(e, text + a, b - a, o);
            a = b + 1;
        }
    } else {
        print_ids(e, text, len, o);
    }
    free(text);
    return 0;
}
